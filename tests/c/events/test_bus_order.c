/* The bus's own-message order (runtime/events/bus.c): while the relay can
 * hand this instance's messages back, they reach the local sink when they
 * come back (once, however often they do), when they waited too long, or
 * when the stream broke; otherwise at once. First against a relay the test
 * drives by hand (it decides what "subscribed" and "came back" mean), then,
 * with TEST_REDIS_URL, against the Redis bridge and a second instance: the
 * sink sees both instances' messages in the order they were published. */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "events/bus.h"
#include "redis/bridge.h"
#include "test_util.h"

/* ---- the local sink: what reached this instance's sockets ---------------- */

#define SEEN_MAX 1024

typedef struct {
    pthread_mutex_t mu;
    const char *room_prefix; /* others on the same Redis are ignored */
    int n;
    int posts; /* sink posts (a group is one) */
    char kinds[SEEN_MAX];
    char args[SEEN_MAX][48];
} seen_t;

static seen_t seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int sink_post(void *arg, const tk_event *ms, int n)
{
    (void)arg;
    const char *p = seen.room_prefix;
    pthread_mutex_lock(&seen.mu);
    seen.posts++;
    for (int i = 0; i < n; i++) {
        const tk_event *m = &ms[i];
        if (p && strncmp(m->room, p, strlen(p)) != 0 && strncmp(m->arg, p, strlen(p)) != 0)
            continue;
        if (seen.n < SEEN_MAX) {
            seen.kinds[seen.n] = (char)m->kind;
            snprintf(seen.args[seen.n], sizeof seen.args[0], "%s", m->arg);
        }
        seen.n++;
    }
    pthread_mutex_unlock(&seen.mu);
    return TK_OK;
}

static int seen_count(void)
{
    pthread_mutex_lock(&seen.mu);
    int n = seen.n;
    pthread_mutex_unlock(&seen.mu);
    return n;
}

static void seen_reset(const char *prefix)
{
    pthread_mutex_lock(&seen.mu);
    seen.n = 0;
    seen.posts = 0;
    seen.room_prefix = prefix;
    pthread_mutex_unlock(&seen.mu);
}

static const tk_bus_sink test_sink = {.post = sink_post};

/* ---- a relay driven by the test ------------------------------------------ */

static struct {
    int subscribed; /* publish promises an echo */
    uint64_t seq;   /* the last sequence given */
    int asked_echo; /* the last publish asked for one (seq != NULL) */
    int published;
} relay_state;

static uint64_t hand_publish(void *arg, const tk_event *m, uint64_t *seq)
{
    (void)arg;
    (void)m;
    relay_state.published++;
    relay_state.seq++; /* every message has one, like the bridge's */
    relay_state.asked_echo = seq != NULL;
    if (seq)
        *seq = relay_state.subscribed ? relay_state.seq : 0;
    return 0;
}

static void hand_wait(void *arg, uint64_t ticket)
{
    (void)arg;
    (void)ticket;
}

static const tk_bus_relay hand_relay = {.publish = hand_publish, .wait = hand_wait};

static void attach_hand(int subscribed)
{
    memset(&relay_state, 0, sizeof relay_state);
    relay_state.subscribed = subscribed;
    seen_reset(NULL);
    tk_bus_attach(&test_sink, &hand_relay);
}

static int emit(const char *room, const char *arg)
{
    tk_event m = {.kind = TK_EVENT_EMIT, .room = room, .arg = arg, .data = "{}", .data_len = 2};
    return tk_bus_publish(&m);
}

TEST(an_own_event_is_delivered_when_it_comes_back_once)
{
    attach_hand(1);
    ASSERT_EQ_INT(emit("project:p", "a"), TK_OK);
    ASSERT_EQ_INT(relay_state.asked_echo, 1);
    ASSERT_EQ_INT(seen_count(), 0); /* not yet: it is on its way round */
    tk_bus_echo(NULL, relay_state.seq);
    ASSERT_EQ_INT(seen_count(), 1);
    ASSERT_STR_EQ(seen.args[0], "a");
    tk_bus_echo(NULL, relay_state.seq); /* seen twice: once */
    ASSERT_EQ_INT(seen_count(), 1);
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(in_the_order_of_the_stream_with_the_other_instances)
{
    attach_hand(1);
    ASSERT_EQ_INT(emit("project:p", "v5"), TK_OK);
    uint64_t mine = relay_state.seq;
    /* v4 of another instance was in the stream before it */
    tk_event v4 = {
        .kind = TK_EVENT_EMIT, .room = "project:p", .arg = "v4", .data = "", .data_len = 0};
    tk_bus_deliver_remote(NULL, &v4);
    tk_bus_echo(NULL, mine);
    ASSERT_EQ_INT(seen_count(), 2);
    ASSERT_STR_EQ(seen.args[0], "v4");
    ASSERT_STR_EQ(seen.args[1], "v5");
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(a_group_goes_to_the_sockets_as_one_when_its_last_message_is_back)
{
    attach_hand(1);
    tk_bus_group_begin();
    ASSERT_EQ_INT(emit("project:p", "member:removed"), TK_OK);
    tk_event kick = {
        .kind = TK_EVENT_KICK, .room = "project:p", .arg = "u1", .data = "", .data_len = 0};
    ASSERT_EQ_INT(tk_bus_publish(&kick), TK_OK);
    tk_bus_group_end();
    uint64_t last = relay_state.seq;
    ASSERT_EQ_INT(relay_state.published, 2);
    tk_bus_echo(NULL, last - 1); /* the event is back: it waits for its kick */
    ASSERT_EQ_INT(seen_count(), 0);
    tk_bus_echo(NULL, last);
    ASSERT_EQ_INT(seen_count(), 2);
    ASSERT_EQ_INT(seen.posts, 1); /* one post: handled back to back */
    ASSERT_STR_EQ(seen.args[0], "member:removed");
    ASSERT_EQ_INT(seen.kinds[1], TK_EVENT_KICK);
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(a_group_without_redis_goes_direct_as_one)
{
    attach_hand(0);
    tk_bus_group_begin();
    ASSERT_EQ_INT(emit("project:p", "member:removed"), TK_OK);
    tk_event kick = {
        .kind = TK_EVENT_KICK, .room = "project:p", .arg = "u1", .data = "", .data_len = 0};
    ASSERT_EQ_INT(tk_bus_publish(&kick), TK_OK);
    ASSERT_EQ_INT(seen_count(), 0); /* collected until the group ends */
    tk_bus_group_end();
    ASSERT_EQ_INT(seen_count(), 2);
    ASSERT_EQ_INT(seen.posts, 1);
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(one_that_does_not_come_back_is_delivered_locally_once_and_a_late_echo_ignored)
{
    attach_hand(1);
    ASSERT_EQ_INT(emit("project:p", "a"), TK_OK);
    uint64_t a = relay_state.seq;
    int ms = tk_bus_echo_tick(NULL);
    ASSERT_GT_INT(ms, 0);
    ASSERT_LE_INT(ms, TK_BUS_ECHO_WAIT_MS);
    ASSERT_EQ_INT(seen_count(), 0);
    tk_bus_stats st;
    tk_bus_get_stats(&st);
    long long late0 = st.echo_late;
    usleep((TK_BUS_ECHO_WAIT_MS + 100) * 1000);
    tk_bus_echo_tick(NULL);
    ASSERT_EQ_INT(seen_count(), 1);
    tk_bus_echo_tick(NULL);
    tk_bus_echo(NULL, a); /* late */
    ASSERT_EQ_INT(seen_count(), 1);
    tk_bus_get_stats(&st);
    ASSERT_EQ_INT(st.echo_late - late0, 1);
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(redis_down_means_local_delivery_at_once)
{
    attach_hand(0); /* the relay cannot promise an echo */
    ASSERT_EQ_INT(emit("project:p", "a"), TK_OK);
    ASSERT_EQ_INT(relay_state.published, 1); /* still offered to the others */
    ASSERT_EQ_INT(seen_count(), 1);
    tk_bus_echo(NULL, relay_state.seq); /* it came round after all: ignored */
    ASSERT_EQ_INT(seen_count(), 1);
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(a_broken_stream_delivers_what_waits_once_in_order)
{
    attach_hand(1);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_INT(emit("project:p", i == 0 ? "a" : i == 1 ? "b" : "c"), TK_OK);
    ASSERT_EQ_INT(seen_count(), 0);
    tk_bus_echo_lost(NULL);
    ASSERT_EQ_INT(seen_count(), 3);
    for (uint64_t s = 1; s <= 3; s++)
        tk_bus_echo(NULL, s);
    tk_bus_echo_lost(NULL);
    ASSERT_EQ_INT(seen_count(), 3);
    ASSERT_STR_EQ(seen.args[0], "a");
    ASSERT_STR_EQ(seen.args[2], "c");
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(going_direct_delivers_what_waits_first)
{
    attach_hand(1);
    ASSERT_EQ_INT(emit("project:p", "a"), TK_OK);
    relay_state.subscribed = 0; /* the subscription went, not yet reported */
    ASSERT_EQ_INT(emit("project:p", "b"), TK_OK);
    ASSERT_EQ_INT(seen_count(), 2);
    ASSERT_STR_EQ(seen.args[0], "a");
    ASSERT_STR_EQ(seen.args[1], "b");
    tk_bus_echo_lost(NULL);
    ASSERT_EQ_INT(seen_count(), 2);
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(revocations_and_user_changes_act_at_once_and_once)
{
    attach_hand(1);
    ASSERT_EQ_INT(emit("project:p", "a"), TK_OK); /* waits for its echo */
    tk_event r = {.kind = TK_EVENT_REVOKE, .room = "", .arg = "jti-1", .data = "", .data_len = 0};
    ASSERT_EQ_INT(tk_bus_publish(&r), TK_OK);
    ASSERT_EQ_INT(relay_state.asked_echo, 0);
    ASSERT_EQ_INT(relay_state.published, 2); /* the other instances get it */
    tk_event u = {.kind = TK_EVENT_USER, .room = "", .arg = "user-1", .data = "", .data_len = 0};
    ASSERT_EQ_INT(tk_bus_publish(&u), TK_OK);
    ASSERT_EQ_INT(relay_state.asked_echo, 0);
    ASSERT_EQ_INT(seen_count(), 2);
    ASSERT_EQ_INT(seen.kinds[0], 'r');
    ASSERT_EQ_INT(seen.kinds[1], 'u');
    for (uint64_t s = 1; s <= 3; s++) /* all three come back */
        tk_bus_echo(NULL, s);
    ASSERT_EQ_INT(seen_count(), 3);
    ASSERT_STR_EQ(seen.args[2], "a");
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(without_a_relay_delivery_is_direct)
{
    seen_reset(NULL);
    tk_bus_attach(&test_sink, NULL);
    ASSERT_EQ_INT(emit("project:p", "a"), TK_OK);
    ASSERT_EQ_INT(seen_count(), 1);
    tk_bus_echo(NULL, 1);
    tk_bus_echo_lost(NULL);
    ASSERT_EQ_INT(seen_count(), 1);
    tk_bus_attach(NULL, NULL);
    return 0;
}

TEST(detaching_delivers_what_waits_to_the_old_sink)
{
    attach_hand(1);
    ASSERT_EQ_INT(emit("project:p", "a"), TK_OK);
    ASSERT_EQ_INT(seen_count(), 0);
    tk_bus_attach(NULL, NULL);
    ASSERT_EQ_INT(seen_count(), 1);
    tk_bus_echo(NULL, relay_state.seq);
    ASSERT_EQ_INT(seen_count(), 1);
    return 0;
}

/* ---- with Redis ------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int wait_count(int n, double secs)
{
    double end = now_s() + secs;
    while (now_s() < end && seen_count() < n)
        usleep(5000);
    return seen_count() >= n;
}

static void ignore(void *arg, const tk_event *m)
{
    (void)arg;
    (void)m;
}

static const tk_redis_bridge_hooks to_bus = {.message = tk_bus_deliver_remote,
                                             .echo = tk_bus_echo,
                                             .lost = tk_bus_echo_lost,
                                             .tick = tk_bus_echo_tick};

TEST(with_redis_two_instances_alternating_arrive_in_order_once)
{
    const char *url = getenv("TEST_REDIS_URL");
    if (url == NULL || *url == '\0')
        TEST_SKIP("TEST_REDIS_URL is not set");
    static char tag[32];
    snprintf(tag, sizeof tag, "o%ld-", (long)getpid());
    char err[256];
    tk_redis_bridge *mine = NULL, *other = NULL;
    ASSERT_EQ_INT(tk_redis_bridge_start(url, &to_bus, &mine, err, sizeof err), TK_OK);
    const tk_redis_bridge_hooks quiet = {.message = ignore};
    ASSERT_EQ_INT(tk_redis_bridge_start(url, &quiet, &other, err, sizeof err), TK_OK);
    double end = now_s() + 5;
    while (now_s() < end && !(tk_redis_bridge_connected(mine) && tk_redis_bridge_connected(other)))
        usleep(10000);
    ASSERT(tk_redis_bridge_connected(mine) && tk_redis_bridge_connected(other));
    seen_reset(tag);
    tk_bus_relay relay = tk_redis_bridge_bus_relay(mine);
    tk_bus_attach(&test_sink, &relay);
    tk_bus_stats st0;
    tk_bus_get_stats(&st0);

    /* One task changed alternately through the other instance and this
     * one, each change published once the one before was. */
    enum { N = 200 };
    char room[64], arg[64];
    snprintf(room, sizeof room, "%sproject:p", tag);
    for (int v = 1; v <= N; v++) {
        snprintf(arg, sizeof arg, "%sv%d", tag, v);
        tk_event m = {.kind = TK_EVENT_EMIT, .room = room, .arg = arg, .data = "{}", .data_len = 2};
        if (v % 2) {
            uint64_t t = tk_redis_bridge_publish(other, &m, NULL);
            if (t)
                tk_redis_bridge_wait(other, t);
        } else {
            ASSERT_EQ_INT(tk_bus_publish(&m), TK_OK);
        }
    }
    ASSERT(wait_count(N, 10));
    usleep(300000);
    ASSERT_EQ_INT(seen_count(), N); /* none twice */
    for (int v = 1; v <= N; v++) {
        snprintf(arg, sizeof arg, "%sv%d", tag, v);
        ASSERT_STR_EQ(seen.args[v - 1], arg);
    }
    tk_bus_stats st;
    tk_bus_get_stats(&st);
    ASSERT_EQ_INT(st.echo_late - st0.echo_late, 0); /* each came back in time */
    tk_bus_attach(NULL, NULL);
    tk_redis_bridge_stop(other);
    tk_redis_bridge_stop(mine);
    return 0;
}

TEST(with_redis_unreachable_events_are_delivered_locally_once)
{
    char err[256];
    tk_redis_bridge *b = NULL;
    ASSERT_EQ_INT(tk_redis_bridge_start("redis://127.0.0.1:1", &to_bus, &b, err, sizeof err),
                  TK_OK);
    seen_reset(NULL);
    tk_bus_relay relay = tk_redis_bridge_bus_relay(b);
    tk_bus_attach(&test_sink, &relay);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ_INT(emit("project:p", "a"), TK_OK);
    ASSERT_EQ_INT(seen_count(), 5); /* at once */
    tk_bus_echo_tick(NULL);
    ASSERT_EQ_INT(seen_count(), 5);
    tk_bus_attach(NULL, NULL);
    tk_redis_bridge_stop(b);
    ASSERT_EQ_INT(seen_count(), 5);
    return 0;
}

TEST_MAIN(TEST_ENTRY(an_own_event_is_delivered_when_it_comes_back_once),
          TEST_ENTRY(in_the_order_of_the_stream_with_the_other_instances),
          TEST_ENTRY(a_group_goes_to_the_sockets_as_one_when_its_last_message_is_back),
          TEST_ENTRY(a_group_without_redis_goes_direct_as_one),
          TEST_ENTRY(one_that_does_not_come_back_is_delivered_locally_once_and_a_late_echo_ignored),
          TEST_ENTRY(redis_down_means_local_delivery_at_once),
          TEST_ENTRY(a_broken_stream_delivers_what_waits_once_in_order),
          TEST_ENTRY(going_direct_delivers_what_waits_first),
          TEST_ENTRY(revocations_and_user_changes_act_at_once_and_once),
          TEST_ENTRY(without_a_relay_delivery_is_direct),
          TEST_ENTRY(detaching_delivers_what_waits_to_the_old_sink),
          TEST_ENTRY(with_redis_two_instances_alternating_arrive_in_order_once),
          TEST_ENTRY(with_redis_unreachable_events_are_delivered_locally_once))
