/* The Redis pub/sub bridge (runtime/redis/bridge.c). With TEST_REDIS_URL
 * (bin/test starts a Redis and sets it): two bridges on one Redis see each
 * other's messages intact and in order, never their own. Always: with no
 * Redis at all, or one that accepts connections and never answers, start
 * still succeeds, publishing never blocks longer than its bounded wait
 * (messages are dropped and counted), and stop is quick. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "redis/bridge.h"
#include "test_util.h"

typedef struct {
    pthread_mutex_t mu;
    int n;
    char kinds[2048];
    char rooms[8][64];
    char args[8][64];
    char data[8][64];
    size_t data_len[8];
    int order_ok;
    int last_seq;
} recorder;

/* Rooms and args of this process start with it: another user of the same
 * Redis (a test server, a parallel run) is ignored. */
static char tag[32];

static void record(void *arg, const tk_event *m)
{
    recorder *r = arg;
    if (strncmp(m->room, tag, strlen(tag)) != 0 && strncmp(m->arg, tag, strlen(tag)) != 0)
        return;
    pthread_mutex_lock(&r->mu);
    if (r->n < (int)sizeof r->kinds)
        r->kinds[r->n] = (char)m->kind;
    if (r->n < 8) {
        snprintf(r->rooms[r->n], 64, "%s", m->room);
        snprintf(r->args[r->n], 64, "%s", m->arg);
        size_t l = m->data_len < 63 ? m->data_len : 63;
        memcpy(r->data[r->n], m->data, l);
        r->data_len[r->n] = m->data_len;
    }
    if (strstr(m->room, "seq:") != NULL) {
        int s = atoi(m->arg + strlen(tag));
        if (s != r->last_seq + 1)
            r->order_ok = 0;
        r->last_seq = s;
    }
    r->n++;
    pthread_mutex_unlock(&r->mu);
}

/* Publishes like the bus does: queue, then wait for the write. */
static void send_msg(tk_redis_bridge *b, const tk_event *m)
{
    uint64_t ticket = tk_redis_bridge_publish(b, m, NULL);
    if (ticket)
        tk_redis_bridge_wait(b, ticket);
}

static int count(recorder *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits up to `secs` for cond(arg); returns 1 if it became true. */
static int wait_for(int (*cond)(void *), void *arg, double secs)
{
    double end = now_s() + secs;
    while (now_s() < end) {
        if (cond(arg))
            return 1;
        usleep(10000);
    }
    return cond(arg);
}

static int both_up(void *arg)
{
    tk_redis_bridge **b = arg;
    return tk_redis_bridge_connected(b[0]) && tk_redis_bridge_connected(b[1]);
}

typedef struct {
    recorder *r;
    int n;
} want;

static int got(void *arg)
{
    want *w = arg;
    return count(w->r) >= w->n;
}

TEST(two_instances_share_messages)
{
    const char *url = getenv("TEST_REDIS_URL");
    if (url == NULL || *url == '\0')
        TEST_SKIP("TEST_REDIS_URL is not set");
    snprintf(tag, sizeof tag, "t%ld-", (long)getpid());
    recorder ra = {.mu = PTHREAD_MUTEX_INITIALIZER, .order_ok = 1};
    recorder rb = {.mu = PTHREAD_MUTEX_INITIALIZER, .order_ok = 1};
    tk_redis_bridge *b[2] = {NULL, NULL};
    char room[64], arg[64];
    char err[256];
    ASSERT_EQ_INT(tk_redis_bridge_start(url,
                                        &(tk_redis_bridge_hooks){.message = record, .arg = &ra},
                                        &b[0], err, sizeof err),
                  TK_OK);
    ASSERT_EQ_INT(tk_redis_bridge_start(url,
                                        &(tk_redis_bridge_hooks){.message = record, .arg = &rb},
                                        &b[1], err, sizeof err),
                  TK_OK);
    ASSERT(wait_for(both_up, b, 5));

    static const char data[] = "{\"task\":{\"title\":\"two\\nlines\"}}\nraw newline";
    snprintf(room, sizeof room, "%sproject:p1", tag);
    tk_event m = {.kind = TK_EVENT_EMIT,
                  .room = room,
                  .arg = "task:created",
                  .data = data,
                  .data_len = sizeof data - 1};
    send_msg(b[0], &m);
    want w = {&rb, 1};
    ASSERT(wait_for(got, &w, 5));
    ASSERT_EQ_INT(rb.kinds[0], 'e');
    ASSERT_STR_EQ(rb.rooms[0], room);
    ASSERT_STR_EQ(rb.args[0], "task:created");
    ASSERT_EQ_INT(rb.data_len[0], sizeof data - 1);
    ASSERT_MEM_EQ(rb.data[0], data, sizeof data - 1);

    /* control messages, with empty fields */
    snprintf(arg, sizeof arg, "%sjti-1", tag);
    tk_event k = {.kind = TK_EVENT_REVOKE, .room = "", .arg = arg, .data = "", .data_len = 0};
    send_msg(b[0], &k);
    w.n = 2;
    ASSERT(wait_for(got, &w, 5));
    ASSERT_EQ_INT(rb.kinds[1], 'r');
    ASSERT_STR_EQ(rb.rooms[1], "");
    ASSERT_STR_EQ(rb.args[1], arg);
    ASSERT_EQ_INT(rb.data_len[1], 0);

    /* order, and nobody hears itself */
    char seq[64];
    snprintf(room, sizeof room, "%sseq:1", tag);
    for (int i = 1; i <= 500; i++) {
        snprintf(seq, sizeof seq, "%s%d", tag, i);
        tk_event s = {.kind = TK_EVENT_EMIT, .room = room, .arg = seq, .data = "{}", .data_len = 2};
        send_msg(b[1], &s);
    }
    w.r = &ra;
    w.n = 500;
    ASSERT(wait_for(got, &w, 10));
    ASSERT_EQ_INT(ra.order_ok, 1);
    ASSERT_EQ_INT(ra.last_seq, 500);
    usleep(200000);
    ASSERT_EQ_INT(count(&ra), 500); /* none of its own two */
    ASSERT_EQ_INT(count(&rb), 2);   /* none of its own 500 */

    tk_redis_bridge_stats st;
    tk_redis_bridge_get_stats(b[1], &st);
    ASSERT_EQ_INT(st.published, 500);
    ASSERT_EQ_INT(st.dropped, 0);
    ASSERT_GE_INT(st.received, 2); /* counts other users of the channel too */
    tk_redis_bridge_stop(b[0]);
    tk_redis_bridge_stop(b[1]);
    return 0;
}

TEST(no_redis_never_blocks)
{
    recorder r = {.mu = PTHREAD_MUTEX_INITIALIZER, .order_ok = 1};
    tk_redis_bridge *b = NULL;
    char err[256];
    double t0 = now_s();
    ASSERT_EQ_INT(tk_redis_bridge_start("redis://127.0.0.1:1",
                                        &(tk_redis_bridge_hooks){.message = record, .arg = &r}, &b,
                                        err, sizeof err),
                  TK_OK);
    ASSERT_LT_INT((now_s() - t0) * 1000, 3000);
    ASSERT_EQ_INT(tk_redis_bridge_connected(b), 0);
    t0 = now_s();
    for (int i = 0; i < 10000; i++) {
        tk_event m = {.kind = TK_EVENT_EMIT,
                      .room = "project:p",
                      .arg = "task:created",
                      .data = "{}",
                      .data_len = 2};
        send_msg(b, &m);
    }
    ASSERT_LT_INT((now_s() - t0) * 1000, 500);
    tk_redis_bridge_stats st;
    tk_redis_bridge_get_stats(b, &st);
    ASSERT_EQ_INT(st.dropped, 10000);
    ASSERT_EQ_INT(st.published, 0);
    t0 = now_s();
    tk_redis_bridge_stop(b);
    ASSERT_LT_INT((now_s() - t0) * 1000, 3000);
    return 0;
}

/* A "Redis" that accepts connections and never answers. */
typedef struct {
    int fd;
    int stop;
    int conns[64];
    int n;
} mute_server;

static void *mute_main(void *arg)
{
    mute_server *m = arg;
    while (!__atomic_load_n(&m->stop, __ATOMIC_SEQ_CST)) {
        struct pollfd pf = {.fd = m->fd, .events = POLLIN};
        if (poll(&pf, 1, 50) > 0) {
            int c = accept(m->fd, NULL, NULL);
            if (c >= 0 && m->n < 64)
                m->conns[m->n++] = c;
            else if (c >= 0)
                close(c);
        }
    }
    return NULL;
}

TEST(a_hung_redis_never_blocks_publishers)
{
    mute_server m = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    ASSERT(m.fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ_INT(bind(m.fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    ASSERT_EQ_INT(getsockname(m.fd, (struct sockaddr *)&a, &alen), 0);
    ASSERT_EQ_INT(listen(m.fd, 16), 0);
    pthread_t th;
    ASSERT_EQ_INT(pthread_create(&th, NULL, mute_main, &m), 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    recorder r = {.mu = PTHREAD_MUTEX_INITIALIZER, .order_ok = 1};
    tk_redis_bridge *b = NULL;
    char err[256];
    ASSERT_EQ_INT(tk_redis_bridge_start(url, &(tk_redis_bridge_hooks){.message = record, .arg = &r},
                                        &b, err, sizeof err),
                  TK_OK);
    usleep(100000); /* the publisher "connects" */
    double worst = 0, t_end = now_s() + 2.5;
    int sent = 0;
    while (now_s() < t_end) {
        tk_event msg = {.kind = TK_EVENT_EMIT,
                        .room = "project:p",
                        .arg = "task:updated",
                        .data = "{}",
                        .data_len = 2};
        double t0 = now_s();
        send_msg(b, &msg);
        double took = now_s() - t0;
        if (took > worst)
            worst = took;
        sent++;
        usleep(1000);
    }
    ASSERT_GT_INT(sent, 100);
    ASSERT_LT_INT(worst * 1000, 150); /* the 100 ms wait bound, never the 1 s I/O timeout */
    ASSERT_EQ_INT(tk_redis_bridge_connected(b), 0); /* never subscribed */
    double t0 = now_s();
    tk_redis_bridge_stop(b);
    ASSERT_LT_INT((now_s() - t0) * 1000, 3000);
    __atomic_store_n(&m.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    for (int i = 0; i < m.n; i++)
        close(m.conns[i]);
    close(m.fd);
    return 0;
}

TEST(bad_url_is_a_config_error)
{
    tk_redis_bridge *b = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(tk_redis_bridge_start("nope://x",
                                        &(tk_redis_bridge_hooks){.message = record, .arg = NULL},
                                        &b, err, sizeof err),
                  TK_ECONFIG);
    ASSERT_NULL(b);
    ASSERT(strncmp(err, "REDIS_URL", 9) == 0);
    return 0;
}

TEST_MAIN(TEST_ENTRY(two_instances_share_messages), TEST_ENTRY(no_redis_never_blocks),
          TEST_ENTRY(a_hung_redis_never_blocks_publishers), TEST_ENTRY(bad_url_is_a_config_error))
