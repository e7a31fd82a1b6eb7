/* The pub/sub bridge (bridge.h). Two threads, two connections:
 *  - the publisher drains a locked FIFO with pipelined PUBLISHes;
 *  - the subscriber SUBSCRIBEs and reads with poll(2) (so stopping wakes it
 *    through a pipe), pings Redis when the line is quiet to notice a dead
 *    peer, hands other instances' messages to hooks.message and reports
 *    its own as they come back (hooks.echo), and calls hooks.tick.
 * Wire format of a message (binary-safe, no JSON parsing needed):
 *   "tk1\n" instance "/" seq "\n" kind "\n" room "\n" arg "\n" data
 * room and arg never contain a newline (the bus checks); seq is decimal.
 * (An instance without the "/seq" tag, or one that compares the whole field
 * with its id, still tells its own messages from the others'.) */
#include "redis/bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "obs/log.h"
#include "redis/conn.h"

#define WIRE_VERSION "tk1"
#define QUEUE_MAX 10000    /* messages waiting for the publisher */
#define BATCH_MAX 128      /* PUBLISHes per pipeline */
#define IO_TIMEOUT_MS 1000 /* connect and command timeout */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define QUIET_PING_MS 5000    /* subscriber: PING after this much silence ... */
#define PING_DEADLINE_MS 5000 /* ... and reconnect if nothing comes back */
#define STOP_FLUSH_MS 1000
#define WRITE_WAIT_MS 100 /* a publisher waits this long, at most, for its message to be sent */
#define SEQ_MAX_DIGITS 20 /* of a uint64_t */

typedef struct item {
    struct item *next;
    uint64_t seq;
    size_t len;
    char data[];
} item;

struct tk_redis_bridge {
    tk_redis_url url;
    char instance[24];
    tk_redis_bridge_hooks hooks;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    item *head, *tail;
    int qlen;
    int stopping;
    uint64_t next_seq;         /* sequence of the last queued message */
    uint64_t written_seq;      /* sequence of the last message Redis has taken */
    pthread_cond_t written_cv; /* written_seq moved, the publisher went down, or stopping */
    int waiters;               /* callers inside tk_redis_bridge_wait */
    int late;                  /* a wait timed out: no waiting until the queue drains */

    pthread_t pub_thread, sub_thread;
    int pub_started, sub_started;
    int wake[2]; /* a byte written on stop wakes the subscriber's poll */

    atomic_int pub_up, sub_up; /* sub_up changes under mu: publish reads it there */
    atomic_llong published, dropped, received;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int next_backoff(int ms)
{
    ms *= 2;
    return ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
}

static void free_items(item *it)
{
    while (it) {
        item *next = it->next;
        free(it);
        it = next;
    }
}

/* ---- publishing -------------------------------------------------------------- */

uint64_t tk_redis_bridge_publish(tk_redis_bridge *b, const tk_event *m, uint64_t *seq)
{
    if (seq)
        *seq = 0;
    if (!atomic_load(&b->pub_up)) {
        atomic_fetch_add(&b->dropped, 1);
        return 0;
    }
    size_t il = strlen(b->instance), rl = strlen(m->room), al = strlen(m->arg);
    size_t max = sizeof WIRE_VERSION - 1 + 1 + il + 1 + SEQ_MAX_DIGITS + 1 + 1 + 1 + rl + 1 + al +
                 1 + m->data_len;
    item *it = malloc(sizeof *it + max + 1);
    if (it == NULL) {
        atomic_fetch_add(&b->dropped, 1);
        return 0;
    }
    it->next = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->qlen >= QUEUE_MAX || b->stopping) {
        pthread_mutex_unlock(&b->mu);
        free(it);
        atomic_fetch_add(&b->dropped, 1);
        return 0;
    }
    /* Numbered and written under the lock: the queue is in sequence order. */
    it->seq = ++b->next_seq;
    int n = snprintf(it->data, max + 1, "%s\n%s/%llu\n%c\n%s\n%s\n", WIRE_VERSION, b->instance,
                     (unsigned long long)it->seq, (char)m->kind, m->room, m->arg);
    if (n < 0 || (size_t)n + m->data_len > max) {
        pthread_mutex_unlock(&b->mu);
        free(it);
        atomic_fetch_add(&b->dropped, 1);
        return 0;
    }
    if (m->data_len)
        memcpy(it->data + n, m->data, m->data_len);
    it->len = (size_t)n + m->data_len;
    if (b->tail)
        b->tail->next = it;
    else
        b->head = it;
    b->tail = it;
    b->qlen++;
    pthread_cond_signal(&b->cv);
    /* Subscribed now, so Redis will send it back to this instance too (or
     * the subscriber reports the loss: hooks.lost). */
    if (seq && atomic_load(&b->sub_up))
        *seq = it->seq;
    uint64_t ticket = 0;
    if (!b->late) {
        ticket = it->seq;
        b->waiters++;
    }
    pthread_mutex_unlock(&b->mu);
    return ticket;
}

void tk_redis_bridge_wait(tk_redis_bridge *b, uint64_t ticket)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)WRITE_WAIT_MS * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_mutex_lock(&b->mu);
    while (b->written_seq < ticket && !b->stopping && atomic_load(&b->pub_up)) {
        if (pthread_cond_timedwait(&b->written_cv, &b->mu, &ts) == ETIMEDOUT) {
            if (b->written_seq < ticket && !b->late) {
                b->late = 1; /* Redis is slow: stop making requests wait for it */
                tk_log_warn("redis: a publish took over %d ms; not waiting for Redis until "
                            "the queue drains",
                            WRITE_WAIT_MS);
            }
            break;
        }
    }
    if (--b->waiters == 0 && b->stopping)
        pthread_cond_broadcast(&b->written_cv); /* tk_redis_bridge_stop waits for this */
    pthread_mutex_unlock(&b->mu);
}

/* Wakes publishers waiting for their message (it will not be sent by this
 * connection, or Redis has taken it). Takes mu. */
static void wake_waiters(tk_redis_bridge *b, uint64_t written)
{
    pthread_mutex_lock(&b->mu);
    if (written > b->written_seq)
        b->written_seq = written;
    if (b->head == NULL)
        b->late = 0;
    pthread_cond_broadcast(&b->written_cv);
    pthread_mutex_unlock(&b->mu);
}

/* Sends a batch as one pipeline; as Redis confirms it, the publishers that
 * wait for it go on. Returns 0, or -1 when the connection failed (the
 * unconfirmed messages are counted as dropped). */
static int send_batch(tk_redis_bridge *b, redisContext *c, item *batch, int n)
{
    static const char channel[] = TK_REDIS_CHANNEL;
    for (item *it = batch; it; it = it->next)
        if (redisAppendCommand(c, "PUBLISH %b %b", channel, sizeof channel - 1, it->data,
                               it->len) != REDIS_OK)
            goto fail;
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            goto fail;
    /* Redis runs commands one at a time: once it answered a PUBLISH, the
     * message is in every subscriber's stream before anything published
     * later by anyone. The waiting publishers go on from there. */
    item *it = batch;
    for (int i = 0; i < n; i++, it = it->next) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) {
            atomic_fetch_add(&b->dropped, n - i);
            return -1;
        }
        atomic_fetch_add(&b->published, 1);
        freeReplyObject(r);
        if (it->next == NULL || i % 16 == 15)
            wake_waiters(b, it->seq);
    }
    return 0;
fail:
    atomic_fetch_add(&b->dropped, n);
    return -1;
}

/* Tells the bus that queued messages were dropped (they will not come
 * back); called with mu held, which the hook must not run under. */
static void report_lost(tk_redis_bridge *b)
{
    if (b->hooks.lost == NULL)
        return;
    pthread_mutex_unlock(&b->mu);
    b->hooks.lost(b->hooks.arg);
    pthread_mutex_lock(&b->mu);
}

static void *pub_main(void *arg)
{
    tk_redis_bridge *b = arg;
    redisContext *c = NULL;
    int backoff = BACKOFF_MIN_MS, warned = 0;
    int64_t next_try = 0, stop_by = 0;
    char err[256];
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->stopping) {
            if (stop_by == 0)
                stop_by = now_ms() + STOP_FLUSH_MS;
            if (c == NULL || b->head == NULL || now_ms() > stop_by)
                break;
        }
        if (c == NULL && now_ms() >= next_try) {
            pthread_mutex_unlock(&b->mu);
            int rc = tk_redis_conn_open(&b->url, IO_TIMEOUT_MS, &c, err, sizeof err);
            pthread_mutex_lock(&b->mu);
            if (rc == TK_OK) {
                tk_log_info("redis: publisher connected");
                atomic_store(&b->pub_up, 1);
                backoff = BACKOFF_MIN_MS;
                warned = 0;
            } else {
                if (!warned)
                    tk_log_warn("redis: publisher cannot connect (%s); realtime events reach "
                                "only this instance until it can",
                                err);
                warned = 1;
                next_try = now_ms() + backoff;
                backoff = next_backoff(backoff);
                /* what was queued before the failure is stale: drop it */
                int had = b->qlen > 0;
                atomic_fetch_add(&b->dropped, b->qlen);
                free_items(b->head);
                b->head = b->tail = NULL;
                b->qlen = 0;
                b->late = 0;
                pthread_cond_broadcast(&b->written_cv);
                if (had)
                    report_lost(b);
            }
            continue;
        }
        if (c == NULL || b->head == NULL) {
            if (b->stopping)
                continue;
            if (c == NULL) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                int64_t wait = next_try - now_ms();
                if (wait < 1)
                    wait = 1;
                ts.tv_sec += wait / 1000;
                ts.tv_nsec += (wait % 1000) * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            } else {
                pthread_cond_wait(&b->cv, &b->mu);
            }
            continue;
        }
        /* take a batch */
        item *batch = b->head, *last = batch;
        int n = 1;
        while (n < BATCH_MAX && last->next) {
            last = last->next;
            n++;
        }
        b->head = last->next;
        if (b->head == NULL)
            b->tail = NULL;
        last->next = NULL;
        b->qlen -= n;
        pthread_mutex_unlock(&b->mu);
        int rc = send_batch(b, c, batch, n);
        free_items(batch);
        if (rc != 0) {
            tk_log_warn("redis: publish failed (%s); reconnecting",
                        c->errstr[0] ? c->errstr : "connection lost");
            redisFree(c);
            c = NULL;
            atomic_store(&b->pub_up, 0);
            wake_waiters(b, 0);
            if (b->hooks.lost) /* the failed batch will not come back */
                b->hooks.lost(b->hooks.arg);
            next_try = now_ms(); /* at once; backoff applies if that fails */
        }
        pthread_mutex_lock(&b->mu);
    }
    int had = b->qlen > 0;
    atomic_fetch_add(&b->dropped, b->qlen);
    free_items(b->head);
    b->head = b->tail = NULL;
    b->qlen = 0;
    atomic_store(&b->pub_up, 0);
    pthread_cond_broadcast(&b->written_cv);
    if (had)
        report_lost(b);
    pthread_mutex_unlock(&b->mu);
    if (c)
        redisFree(c);
    return NULL;
}

/* ---- subscribing ----------------------------------------------------------- */

/* Splits one wire message: one of this instance's own is reported by its
 * sequence (hooks.echo), another instance's handed on (hooks.message). */
static void on_message(tk_redis_bridge *b, const char *p, size_t len)
{
    const char *field[5];
    size_t flen[5];
    const char *end = p + len;
    for (int i = 0; i < 5; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return;
        field[i] = p;
        flen[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    if (flen[0] != sizeof WIRE_VERSION - 1 || memcmp(field[0], WIRE_VERSION, flen[0]) != 0)
        return;
    size_t il = strlen(b->instance);
    if (flen[1] >= il && memcmp(field[1], b->instance, il) == 0 &&
        (flen[1] == il || field[1][il] == '/')) {
        /* ours: "instance/seq" */
        uint64_t seq = 0;
        for (size_t i = il + 1; i < flen[1] && seq < UINT64_MAX / 10; i++) {
            if (field[1][i] < '0' || field[1][i] > '9')
                return;
            seq = seq * 10 + (uint64_t)(field[1][i] - '0');
        }
        if (seq && b->hooks.echo)
            b->hooks.echo(b->hooks.arg, seq);
        return;
    }
    if (flen[2] != 1 || flen[3] > TK_EVENT_NAME_MAX || flen[4] > TK_EVENT_NAME_MAX)
        return;
    char room[TK_EVENT_NAME_MAX + 1], arg[TK_EVENT_NAME_MAX + 1];
    memcpy(room, field[3], flen[3]);
    room[flen[3]] = '\0';
    memcpy(arg, field[4], flen[4]);
    arg[flen[4]] = '\0';
    tk_event m = {.kind = (tk_event_kind)field[2][0],
                  .room = room,
                  .arg = arg,
                  .data = p,
                  .data_len = (size_t)(end - p)};
    atomic_fetch_add(&b->received, 1);
    b->hooks.message(b->hooks.arg, &m);
}

static void on_reply(tk_redis_bridge *b, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
        on_message(b, r->element[2]->str, r->element[2]->len);
}

static int stopping(tk_redis_bridge *b)
{
    pthread_mutex_lock(&b->mu);
    int s = b->stopping;
    pthread_mutex_unlock(&b->mu);
    return s;
}

/* Sleeps up to ms unless the bridge stops. Returns 1 when stopping. */
static int nap(tk_redis_bridge *b, int ms)
{
    struct pollfd pf = {.fd = b->wake[0], .events = POLLIN};
    if (poll(&pf, 1, ms) > 0)
        return 1;
    return stopping(b);
}

/* The subscription went up or down. Under mu, since publish reads it there
 * to promise an echo; going down, whatever was promised will not come. */
static void set_sub_up(tk_redis_bridge *b, int up)
{
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->sub_up, up);
    pthread_mutex_unlock(&b->mu);
    if (!up && b->hooks.lost)
        b->hooks.lost(b->hooks.arg);
}

static int subscribe(tk_redis_bridge *b, redisContext **out, char *err, size_t errlen)
{
    redisContext *c = NULL;
    int rc = tk_redis_conn_open(&b->url, IO_TIMEOUT_MS, &c, err, errlen);
    if (rc != TK_OK)
        return rc;
    redisReply *r = redisCommand(c, "SUBSCRIBE %s", TK_REDIS_CHANNEL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        tk_errf(err, errlen, "SUBSCRIBE: %s",
                r == NULL ? c->errstr : (r->type == REDIS_REPLY_ERROR ? r->str : "bad answer"));
        freeReplyObject(r);
        redisFree(c);
        return TK_EUNAVAIL;
    }
    freeReplyObject(r);
    *out = c;
    return TK_OK;
}

static void *sub_main(void *arg)
{
    tk_redis_bridge *b = arg;
    redisContext *c = NULL;
    int backoff = BACKOFF_MIN_MS, warned = 0;
    int64_t last_rx = 0, ping_sent = 0, tick_due = 0;
    char err[256] = "connection lost";
    while (!stopping(b)) {
        if (c == NULL) {
            if (subscribe(b, &c, err, sizeof err) != TK_OK) {
                if (!warned)
                    tk_log_warn("redis: subscriber cannot connect (%s); events from other "
                                "instances are missed until it can",
                                err);
                warned = 1;
                if (nap(b, backoff))
                    break;
                backoff = next_backoff(backoff);
                continue;
            }
            tk_log_info("redis: subscribed to %s", TK_REDIS_CHANNEL);
            set_sub_up(b, 1);
            backoff = BACKOFF_MIN_MS;
            warned = 0;
            last_rx = now_ms();
            ping_sent = 0;
        }
        struct pollfd pf[2] = {{.fd = c->fd, .events = POLLIN},
                               {.fd = b->wake[0], .events = POLLIN}};
        int64_t wait = tick_due - now_ms();
        int n = poll(pf, 2, wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait);
        if (n < 0 && errno != EINTR)
            goto lost;
        if (pf[1].revents)
            break;
        int64_t now = now_ms();
        if (now >= tick_due) /* own messages that waited too long for their echo */
            tick_due = now + (b->hooks.tick ? b->hooks.tick(b->hooks.arg) : 1000);
        if (n > 0 && pf[0].revents) {
            if (redisBufferRead(c) != REDIS_OK)
                goto lost;
            for (;;) {
                void *r = NULL;
                if (redisGetReplyFromReader(c, &r) != REDIS_OK)
                    goto lost;
                if (r == NULL)
                    break;
                on_reply(b, r);
                freeReplyObject(r);
            }
            last_rx = now;
            ping_sent = 0;
            continue;
        }
        if (ping_sent && now - ping_sent > PING_DEADLINE_MS) {
            tk_errf(err, sizeof err, "no answer to PING");
            goto lost;
        }
        if (!ping_sent && now - last_rx > QUIET_PING_MS) {
            int done = 0;
            if (redisAppendCommand(c, "PING") != REDIS_OK)
                goto lost;
            while (!done)
                if (redisBufferWrite(c, &done) != REDIS_OK)
                    goto lost;
            ping_sent = now;
        }
        continue;
    lost:
        tk_log_warn("redis: subscriber lost its connection (%s); reconnecting",
                    c->errstr[0] ? c->errstr : err);
        set_sub_up(b, 0);
        redisFree(c);
        c = NULL;
        if (nap(b, BACKOFF_MIN_MS))
            break;
    }
    set_sub_up(b, 0);
    if (c)
        redisFree(c);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------- */

int tk_redis_bridge_start(const char *url, const tk_redis_bridge_hooks *hooks,
                          tk_redis_bridge **out, char *err, size_t errlen)
{
    tk_redis_bridge *b = calloc(1, sizeof *b);
    if (b == NULL)
        return TK_ENOMEM;
    b->wake[0] = b->wake[1] = -1;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    pthread_cond_init(&b->written_cv, NULL);
    b->hooks = *hooks;
    int rc = tk_redis_url_parse(url, &b->url, err, errlen);
    if (rc != TK_OK)
        goto fail;
    unsigned char raw[8];
    if (tk_auth_random_bytes(raw, sizeof raw) != TK_OK) {
        tk_errf(err, errlen, "cannot make an instance id");
        rc = TK_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(b->instance + 2 * i, 3, "%02x", raw[i]);
    rc = TK_ENOMEM;
    if (pipe2(b->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        b->wake[0] = b->wake[1] = -1;
        tk_errf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    /* One connection attempt now, so /health is right from the start. */
    redisContext *c = NULL;
    char why[256];
    if (tk_redis_conn_open(&b->url, IO_TIMEOUT_MS, &c, why, sizeof why) == TK_OK)
        redisFree(c);
    else
        tk_log_warn("redis: %s:%d unavailable at start-up (%s); retrying in the background",
                    b->url.path[0] ? b->url.path : b->url.host, b->url.port, why);
    if (pthread_create(&b->pub_thread, NULL, pub_main, b) != 0)
        goto fail;
    b->pub_started = 1;
    if (pthread_create(&b->sub_thread, NULL, sub_main, b) != 0)
        goto fail;
    b->sub_started = 1;
    tk_log_info("redis: realtime bridge on channel %s (instance %s)", TK_REDIS_CHANNEL,
                b->instance);
    *out = b;
    return TK_OK;
fail:
    tk_redis_bridge_stop(b);
    return rc;
}

void tk_redis_bridge_stop(tk_redis_bridge *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_cond_broadcast(&b->written_cv);
    while (b->waiters > 0) /* callers still inside tk_redis_bridge_wait */
        pthread_cond_wait(&b->written_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    if (b->wake[1] >= 0) {
        ssize_t w = write(b->wake[1], "x", 1);
        (void)w;
    }
    if (b->pub_started)
        pthread_join(b->pub_thread, NULL);
    if (b->sub_started)
        pthread_join(b->sub_thread, NULL);
    free_items(b->head);
    if (b->wake[0] >= 0)
        close(b->wake[0]);
    if (b->wake[1] >= 0)
        close(b->wake[1]);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    pthread_cond_destroy(&b->written_cv);
    free(b);
}

int tk_redis_bridge_connected(tk_redis_bridge *b)
{
    return atomic_load(&b->pub_up) && atomic_load(&b->sub_up);
}

void tk_redis_bridge_get_stats(tk_redis_bridge *b, tk_redis_bridge_stats *out)
{
    out->published = atomic_load(&b->published);
    out->dropped = atomic_load(&b->dropped);
    out->received = atomic_load(&b->received);
}

static uint64_t relay_publish(void *arg, const tk_event *m, uint64_t *seq)
{
    return tk_redis_bridge_publish(arg, m, seq);
}

static void relay_wait(void *arg, uint64_t ticket)
{
    tk_redis_bridge_wait(arg, ticket);
}

static int relay_connected(void *arg)
{
    return tk_redis_bridge_connected(arg);
}

static void relay_stats(void *arg, tk_bus_stats *out)
{
    tk_redis_bridge_stats bs;
    tk_redis_bridge_get_stats(arg, &bs);
    out->dropped = bs.dropped;
}

tk_bus_relay tk_redis_bridge_bus_relay(tk_redis_bridge *b)
{
    return (tk_bus_relay){.arg = b,
                          .publish = relay_publish,
                          .wait = relay_wait,
                          .connected = relay_connected,
                          .stats = relay_stats};
}
