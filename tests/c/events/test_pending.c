/* The pending list (runtime/events/pending.c): each own message leaves it
 * exactly once, through its echo, its deadline or a broken stream, oldest
 * first; a second echo, or one after the deadline, delivers nothing. */
#include "events/pending.h"
#include "test_util.h"

typedef struct {
    int n;
    char args[16][32];
    char data[16][32];
} sink;

static void collect(void *arg, const tk_event *m)
{
    sink *s = arg;
    if (s->n < 16) {
        snprintf(s->args[s->n], 32, "%s", m->arg);
        snprintf(s->data[s->n], 32, "%.*s", (int)m->data_len, m->data);
    }
    s->n++;
}

static int add(tk_pending *p, uint64_t seq, const char *arg, int64_t deadline)
{
    char data[32];
    int n = snprintf(data, sizeof data, "{\"v\":%llu}", (unsigned long long)seq);
    tk_event m = {.kind = TK_EVENT_EMIT,
                  .room = "project:p",
                  .arg = arg,
                  .data = data,
                  .data_len = (size_t)n};
    return tk_pending_add(p, seq, &m, deadline);
}

TEST(seen_back_is_delivered_once)
{
    tk_pending *p = tk_pending_new();
    ASSERT_NOT_NULL(p);
    ASSERT_EQ_INT(add(p, 1, "task:updated", 1000), TK_OK);
    ASSERT_EQ_INT(tk_pending_count(p), 1);
    sink s = {0};
    ASSERT_EQ_INT(tk_pending_batch_deliver(tk_pending_seen(p, 1), collect, &s), 1);
    ASSERT_EQ_INT(s.n, 1);
    ASSERT_STR_EQ(s.args[0], "task:updated");
    ASSERT_STR_EQ(s.data[0], "{\"v\":1}"); /* a copy: the caller's buffer is gone */
    ASSERT_EQ_INT(tk_pending_count(p), 0);
    ASSERT_EQ_INT(tk_pending_next_deadline(p), -1);
    tk_pending_free(p);
    return 0;
}

TEST(seen_twice_is_delivered_once)
{
    tk_pending *p = tk_pending_new();
    ASSERT_NOT_NULL(p);
    ASSERT_EQ_INT(add(p, 7, "a", 1000), TK_OK);
    ASSERT_EQ_INT(add(p, 8, "b", 1000), TK_OK);
    sink s = {0};
    tk_pending_batch_deliver(tk_pending_seen(p, 7), collect, &s);
    ASSERT_NULL(tk_pending_seen(p, 7));
    ASSERT_EQ_INT(s.n, 1);
    ASSERT_EQ_INT(tk_pending_count(p), 1);
    tk_pending_batch_deliver(tk_pending_seen(p, 8), collect, &s);
    ASSERT_NULL(tk_pending_seen(p, 8));
    ASSERT_NULL(tk_pending_seen(p, 7));
    ASSERT_EQ_INT(s.n, 2);
    ASSERT_STR_EQ(s.args[1], "b");
    tk_pending_free(p);
    return 0;
}

TEST(timeout_delivers_once_and_a_late_echo_is_ignored)
{
    tk_pending *p = tk_pending_new();
    ASSERT_NOT_NULL(p);
    ASSERT_EQ_INT(add(p, 1, "a", 1000), TK_OK);
    ASSERT_EQ_INT(add(p, 2, "b", 1500), TK_OK);
    ASSERT_EQ_INT(tk_pending_next_deadline(p), 1000);
    sink s = {0};
    ASSERT_NULL(tk_pending_expired(p, 999));
    ASSERT_EQ_INT(tk_pending_batch_deliver(tk_pending_expired(p, 1000), collect, &s), 1);
    ASSERT_STR_EQ(s.args[0], "a");
    ASSERT_NULL(tk_pending_expired(p, 1001)); /* once */
    ASSERT_EQ_INT(tk_pending_next_deadline(p), 1500);
    /* the echo of 1 arrives after all: nothing, and 2 stays pending */
    ASSERT_NULL(tk_pending_seen(p, 1));
    ASSERT_EQ_INT(tk_pending_count(p), 1);
    tk_pending_batch_deliver(tk_pending_seen(p, 2), collect, &s);
    ASSERT_EQ_INT(s.n, 2);
    ASSERT_NULL(tk_pending_expired(p, 5000));
    ASSERT_EQ_INT(s.n, 2);
    tk_pending_free(p);
    return 0;
}

TEST(an_echo_delivers_the_older_ones_first)
{
    /* The stream is ordered: once 3 came back, 1 and 2 never will. */
    tk_pending *p = tk_pending_new();
    ASSERT_NOT_NULL(p);
    ASSERT_EQ_INT(add(p, 1, "a", 1000), TK_OK);
    ASSERT_EQ_INT(add(p, 2, "b", 1000), TK_OK);
    ASSERT_EQ_INT(add(p, 3, "c", 1000), TK_OK);
    ASSERT_EQ_INT(add(p, 4, "d", 1000), TK_OK);
    sink s = {0};
    ASSERT_EQ_INT(tk_pending_batch_deliver(tk_pending_seen(p, 3), collect, &s), 3);
    ASSERT_STR_EQ(s.args[0], "a");
    ASSERT_STR_EQ(s.args[1], "b");
    ASSERT_STR_EQ(s.args[2], "c");
    ASSERT_NULL(tk_pending_seen(p, 2));
    ASSERT_EQ_INT(tk_pending_count(p), 1);
    tk_pending_free(p); /* frees 4 */
    return 0;
}

TEST(an_echo_not_waited_for_delivers_only_older_ones)
{
    /* A message published without waiting for its echo (a revocation)
     * comes back too; what is older and still pending is lost. */
    tk_pending *p = tk_pending_new();
    ASSERT_NOT_NULL(p);
    ASSERT_EQ_INT(add(p, 5, "a", 1000), TK_OK);
    ASSERT_EQ_INT(add(p, 7, "b", 1000), TK_OK);
    ASSERT_NULL(tk_pending_seen(p, 4));
    ASSERT_EQ_INT(tk_pending_count(p), 2);
    sink s = {0};
    ASSERT_EQ_INT(tk_pending_batch_deliver(tk_pending_seen(p, 6), collect, &s), 1);
    ASSERT_STR_EQ(s.args[0], "a");
    ASSERT_EQ_INT(tk_pending_count(p), 1);
    tk_pending_free(p);
    return 0;
}

TEST(a_broken_stream_delivers_everything_once)
{
    tk_pending *p = tk_pending_new();
    ASSERT_NOT_NULL(p);
    for (uint64_t i = 1; i <= 5; i++)
        ASSERT_EQ_INT(add(p, i * 2, "x", 1000), TK_OK);
    sink s = {0};
    ASSERT_EQ_INT(tk_pending_batch_deliver(tk_pending_take_all(p), collect, &s), 5);
    ASSERT_STR_EQ(s.data[0], "{\"v\":2}");
    ASSERT_STR_EQ(s.data[4], "{\"v\":10}");
    ASSERT_NULL(tk_pending_take_all(p));
    ASSERT_NULL(tk_pending_seen(p, 10));
    ASSERT_NULL(tk_pending_expired(p, 99999));
    ASSERT_EQ_INT(s.n, 5);
    /* and the list goes on working */
    ASSERT_EQ_INT(add(p, 11, "y", 2000), TK_OK);
    ASSERT_EQ_INT(tk_pending_batch_deliver(tk_pending_seen(p, 11), collect, &s), 1);
    tk_pending_free(p);
    return 0;
}

TEST(sequences_must_grow)
{
    tk_pending *p = tk_pending_new();
    ASSERT_NOT_NULL(p);
    ASSERT_EQ_INT(add(p, 0, "x", 1), TK_EINVAL);
    ASSERT_EQ_INT(add(p, 5, "x", 1000), TK_OK);
    ASSERT_EQ_INT(add(p, 5, "x", 1000), TK_EINVAL);
    ASSERT_EQ_INT(add(p, 4, "x", 1000), TK_EINVAL);
    /* a deadline earlier than the one before is moved up: the list stays in order */
    ASSERT_EQ_INT(add(p, 6, "x", 900), TK_OK);
    ASSERT_NULL(tk_pending_expired(p, 950));
    ASSERT_EQ_INT(tk_pending_count(p), 2);
    sink s = {0};
    ASSERT_EQ_INT(tk_pending_batch_deliver(tk_pending_expired(p, 1000), collect, &s), 2);
    tk_pending_free(p);
    tk_pending_free(NULL);
    ASSERT_EQ_INT(tk_pending_batch_deliver(NULL, collect, NULL), 0);
    return 0;
}

TEST_MAIN(TEST_ENTRY(seen_back_is_delivered_once), TEST_ENTRY(seen_twice_is_delivered_once),
          TEST_ENTRY(timeout_delivers_once_and_a_late_echo_is_ignored),
          TEST_ENTRY(an_echo_delivers_the_older_ones_first),
          TEST_ENTRY(an_echo_not_waited_for_delivers_only_older_ones),
          TEST_ENTRY(a_broken_stream_delivers_everything_once), TEST_ENTRY(sequences_must_grow))
