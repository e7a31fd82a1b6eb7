/* The event bus (bus.h): one static struct under a mutex holding copies of
 * the attached sink and relay; they only copy and queue, so the lock is held
 * for microseconds and publishing never waits on the network under it. */
#include "events/bus.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/users.h"
#include "obs/log.h"

static struct {
    pthread_mutex_t mu;
    tk_bus_sink sink;   /* sink.post NULL: none */
    tk_bus_relay relay; /* relay.publish NULL: none */
    long long published, remote;
} bus = {.mu = PTHREAD_MUTEX_INITIALIZER};

int tk_event_name_ok(const char *s, int allow_empty)
{
    if (s == NULL)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return (n > 0 || allow_empty) && n <= TK_EVENT_NAME_MAX;
}

static int msg_ok(const tk_event *m)
{
    switch (m->kind) {
    case TK_EVENT_EMIT:
    case TK_EVENT_KICK:
        return tk_event_name_ok(m->room, 0) && tk_event_name_ok(m->arg, 0);
    case TK_EVENT_CLOSE_ROOM:
    case TK_EVENT_RECHECK:
        return tk_event_name_ok(m->room, 0) && tk_event_name_ok(m->arg, 1);
    case TK_EVENT_REVOKE:
    case TK_EVENT_USER:
        return tk_event_name_ok(m->room, 1) && tk_event_name_ok(m->arg, 0);
    default:
        return 0;
    }
}

/* Posts ms[0..n) to the sink as one and to the relay one by one, under the
 * lock (so other publishers' messages come before or after them, not
 * between), then waits for the relay to write them. */
static int publish_n(const tk_event *ms, int n)
{
    int rc = TK_OK, nt = 0;
    uint64_t tickets[TK_BUS_GROUP_MAX];
    pthread_mutex_lock(&bus.mu);
    bus.published += n;
    for (int i = 0; i < n; i++)
        if (ms[i].kind == TK_EVENT_USER)
            tk_auth_users_invalidate(ms[i].arg); /* here at once; remote instances on arrival */
    if (bus.sink.post)
        rc = bus.sink.post(bus.sink.arg, ms, n);
    tk_bus_relay relay = bus.relay;
    if (relay.publish)
        for (int i = 0; i < n; i++) {
            uint64_t t = relay.publish(relay.arg, &ms[i]); /* counts its own drops */
            if (t)
                tickets[nt++] = t;
        }
    pthread_mutex_unlock(&bus.mu);
    /* Outside the lock; the relay cannot go away meanwhile (bus.h). */
    for (int i = 0; i < nt; i++)
        relay.wait(relay.arg, tickets[i]);
    return rc;
}

/* This thread's open group (tk_bus_group_begin): copies of its messages. */
static _Thread_local struct {
    int depth;
    int n;
    tk_event m[TK_BUS_GROUP_MAX];
    char *mem[TK_BUS_GROUP_MAX]; /* room, arg and data of m[i], one allocation */
} group;

static void group_flush(void)
{
    if (group.n == 0)
        return;
    int rc = publish_n(group.m, group.n);
    if (rc != TK_OK)
        tk_log_warn("events: %d messages not delivered to this instance's connections: %s", group.n,
                    tk_strerror(rc));
    for (int i = 0; i < group.n; i++)
        free(group.mem[i]);
    group.n = 0;
}

/* Copies m into the open group; returns 0, or TK_ENOMEM (not added). */
static int group_add(const tk_event *m)
{
    if (group.n == TK_BUS_GROUP_MAX)
        group_flush();
    size_t rl = strlen(m->room), al = strlen(m->arg);
    char *mem = malloc(rl + al + m->data_len + 3);
    if (mem == NULL)
        return TK_ENOMEM;
    memcpy(mem, m->room, rl + 1);
    memcpy(mem + rl + 1, m->arg, al + 1);
    if (m->data_len)
        memcpy(mem + rl + al + 2, m->data, m->data_len);
    mem[rl + al + 2 + m->data_len] = '\0';
    group.m[group.n] = (tk_event){.kind = m->kind,
                                  .room = mem,
                                  .arg = mem + rl + 1,
                                  .data = mem + rl + al + 2,
                                  .data_len = m->data_len};
    group.mem[group.n++] = mem;
    return TK_OK;
}

void tk_bus_group_begin(void)
{
    group.depth++;
}

void tk_bus_group_end(void)
{
    if (group.depth == 0 || --group.depth > 0)
        return;
    group_flush();
}

int tk_bus_publish(const tk_event *m)
{
    if (!msg_ok(m) || (m->data == NULL && m->data_len > 0))
        return TK_EINVAL;
    if (group.depth > 0 && group_add(m) == TK_OK)
        return TK_OK;
    return publish_n(m, 1);
}

void tk_bus_attach(const tk_bus_sink *sink, const tk_bus_relay *relay)
{
    pthread_mutex_lock(&bus.mu);
    bus.sink = sink ? *sink : (tk_bus_sink){0};
    bus.relay = relay ? *relay : (tk_bus_relay){0};
    pthread_mutex_unlock(&bus.mu);
}

void tk_bus_deliver_remote(void *arg, const tk_event *m)
{
    (void)arg;
    if (!msg_ok(m))
        return;
    if (m->kind == TK_EVENT_REVOKE && m->data_len > 0 && m->data_len < 24) {
        /* The token was revoked on another instance: deny it here too. */
        char num[24];
        memcpy(num, m->data, m->data_len);
        num[m->data_len] = '\0';
        char *end = NULL;
        long long exp = strtoll(num, &end, 10);
        if (end && *end == '\0' && exp > 0 && tk_auth_deny_add(m->arg, (int64_t)exp) != TK_OK)
            tk_log_warn("events: cannot record a revoked token (out of memory)");
    }
    if (m->kind == TK_EVENT_USER)
        tk_auth_users_invalidate(m->arg); /* changed through another instance */
    pthread_mutex_lock(&bus.mu);
    bus.remote++;
    if (bus.sink.post && bus.sink.post(bus.sink.arg, m, 1) != TK_OK)
        tk_log_warn("events: dropped a message from another instance (out of memory)");
    pthread_mutex_unlock(&bus.mu);
}

int tk_bus_redis_state(void)
{
    pthread_mutex_lock(&bus.mu);
    int st = bus.relay.connected ? bus.relay.connected(bus.relay.arg) : -1;
    pthread_mutex_unlock(&bus.mu);
    return st;
}

void tk_bus_get_stats(tk_bus_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&bus.mu);
    out->published = bus.published;
    out->remote = bus.remote;
    if (bus.sink.stats)
        bus.sink.stats(bus.sink.arg, out);
    if (bus.relay.stats)
        bus.relay.stats(bus.relay.arg, out);
    pthread_mutex_unlock(&bus.mu);
}
