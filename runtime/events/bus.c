/* The event bus (bus.h): one static struct under a mutex holding copies of
 * the attached sink and relay, and the pending list of this instance's own
 * messages on their way round the relay (events/pending.h). The sink and
 * the relay only copy and queue, so the lock is held for microseconds and
 * publishing never waits on the network under it. Every delivery to the
 * sink happens under the lock, so each pending message is delivered by
 * exactly one of: its echo, its deadline, a broken stream, a detach. */
#include "events/bus.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/users.h"
#include "events/pending.h"
#include "obs/log.h"

#define TICK_IDLE_MS 1000 /* tk_bus_echo_tick's answer when nothing is pending */

static struct {
    pthread_mutex_t mu;
    tk_bus_sink sink;               /* sink.post NULL: none */
    tk_bus_relay relay;             /* relay.publish NULL: none */
    tk_pending *pending;            /* own messages waiting to come back; NULL without a relay */
    int late_warned;                /* a pending message was given up on since the last echo */
    uint64_t hold_first, hold_last; /* the last group in the pending list (seqs), or 0 */
    long long published, remote, echo_late;
} bus = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Local delivery of a batch of this instance's own messages, as one post
 * (a group published together stays together: the WebSocket server handles
 * it back to back); under bus.mu. Returns how many there were. */
static size_t post_own(tk_pending_batch *b)
{
    size_t n = tk_pending_batch_count(b);
    if (n == 0)
        return 0;
    tk_event stack[TK_BUS_GROUP_MAX];
    tk_event *ms = n <= TK_BUS_GROUP_MAX ? stack : malloc(n * sizeof *ms);
    if (ms == NULL || !bus.sink.post) {
        if (ms == NULL)
            tk_log_warn("events: dropped %zu messages of this instance (out of memory)", n);
        return tk_pending_batch_free(b);
    }
    tk_pending_batch_events(b, ms);
    if (bus.sink.post(bus.sink.arg, ms, (int)n) != TK_OK)
        tk_log_warn("events: dropped %zu message(s) of this instance (out of memory)", n);
    if (ms != stack)
        free(ms);
    return tk_pending_batch_free(b);
}

/* Delivers everything pending here, now; under bus.mu. */
static void flush_pending(void)
{
    if (bus.pending)
        post_own(tk_pending_take_all(bus.pending));
    bus.hold_first = bus.hold_last = 0;
}

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

/* Publishes ms[0..n) under the lock (so other publishers' messages come
 * before or after them, not between), then waits for the relay to take
 * them. Messages that end sessions act here at once (their effect does not
 * depend on order); the others come to this instance's sockets through the
 * relay, in the order every instance sees, when it can promise to hand them
 * back (a nonzero seq). A group of several waits in the pending list until
 * its last message is back, and is then posted to the sink as one. */
static int publish_n(const tk_event *ms, int n)
{
    int rc = TK_OK, nt = 0, ndirect = 0;
    uint64_t tickets[TK_BUS_GROUP_MAX];
    tk_event direct[TK_BUS_GROUP_MAX];
    uint64_t first_seq = 0, last_seq = 0;
    pthread_mutex_lock(&bus.mu);
    bus.published += n;
    tk_bus_relay relay = bus.relay;
    for (int i = 0; i < n; i++) {
        const tk_event *m = &ms[i];
        uint64_t seq = 0;
        if (m->kind == TK_EVENT_USER)
            tk_auth_users_invalidate(m->arg); /* here at once; remote instances on arrival */
        int ordered = bus.pending != NULL && bus.sink.post != NULL && m->kind != TK_EVENT_REVOKE &&
                      m->kind != TK_EVENT_USER;
        if (relay.publish) {
            uint64_t t = relay.publish(relay.arg, m, ordered ? &seq : NULL); /* counts its drops */
            if (t)
                tickets[nt++] = t;
        }
        if (seq != 0 &&
            tk_pending_add(bus.pending, seq, m, now_ms() + TK_BUS_ECHO_WAIT_MS) == TK_OK) {
            if (first_seq == 0)
                first_seq = seq;
            last_seq = seq;
            continue;
        }
        if (ordered) {
            /* What waits to come back is older: it goes first, after what
             * of this group went direct before it. */
            if (ndirect > 0 && bus.pending && tk_pending_count(bus.pending) > 0 && bus.sink.post) {
                rc = bus.sink.post(bus.sink.arg, direct, ndirect);
                ndirect = 0;
            }
            flush_pending();
            first_seq = last_seq = 0;
        }
        direct[ndirect++] = *m;
    }
    if (first_seq != 0 && first_seq != last_seq) {
        bus.hold_first = first_seq; /* an echo inside the group waits for its end */
        bus.hold_last = last_seq;
    }
    if (ndirect > 0 && bus.sink.post)
        rc = bus.sink.post(bus.sink.arg, direct, ndirect);
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
    flush_pending(); /* to the sink they were meant for */
    tk_pending_free(bus.pending);
    bus.pending = NULL;
    bus.sink = sink ? *sink : (tk_bus_sink){0};
    bus.relay = relay ? *relay : (tk_bus_relay){0};
    if (bus.relay.publish) {
        bus.pending = tk_pending_new();
        if (bus.pending == NULL)
            tk_log_warn("events: out of memory; this instance's events reach its own sockets "
                        "directly, not in the order of the other instances");
    }
    pthread_mutex_unlock(&bus.mu);
}

void tk_bus_echo(void *arg, uint64_t seq)
{
    (void)arg;
    pthread_mutex_lock(&bus.mu);
    /* A message of a group but its last: the group goes as one when its
     * last message is back (that echo takes the earlier ones with it). */
    if (bus.pending && !(seq >= bus.hold_first && seq < bus.hold_last)) {
        tk_pending_batch *b = tk_pending_seen(bus.pending, seq);
        if (b)
            bus.late_warned = 0;
        if (seq == bus.hold_last)
            bus.hold_first = bus.hold_last = 0;
        post_own(b);
    }
    pthread_mutex_unlock(&bus.mu);
}

void tk_bus_echo_lost(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&bus.mu);
    flush_pending();
    pthread_mutex_unlock(&bus.mu);
}

int tk_bus_echo_tick(void *arg)
{
    (void)arg;
    int64_t now = now_ms();
    int ms = TICK_IDLE_MS;
    pthread_mutex_lock(&bus.mu);
    if (bus.pending) {
        size_t n = post_own(tk_pending_expired(bus.pending, now));
        bus.echo_late += (long long)n;
        if (n > 0 && !bus.late_warned) {
            bus.late_warned = 1;
            tk_log_warn("events: %zu event(s) of this instance did not come back from Redis "
                        "within %d ms; delivered to this instance's sockets directly",
                        n, TK_BUS_ECHO_WAIT_MS);
        }
        int64_t next = tk_pending_next_deadline(bus.pending);
        if (next >= 0 && next - now < ms)
            ms = next - now < 1 ? 1 : (int)(next - now);
    }
    pthread_mutex_unlock(&bus.mu);
    return ms;
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
    out->echo_late = bus.echo_late;
    if (bus.sink.stats)
        bus.sink.stats(bus.sink.arg, out);
    if (bus.relay.stats)
        bus.relay.stats(bus.relay.arg, out);
    pthread_mutex_unlock(&bus.mu);
}
