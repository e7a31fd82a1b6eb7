/* The access-token denylist (runtime/auth/denylist.c): add, check, expiry,
 * growth past the first table, sweeping, and concurrent use. */
#include "auth/auth.h"
#include "test_util.h"

#include <pthread.h>

#define T0 1700000000

TEST(add_check)
{
    ASSERT_EQ_INT(tk_auth_deny_check("a", T0), 0);
    ASSERT_EQ_INT(tk_auth_deny_add("a", T0 + 100), 0);
    ASSERT_EQ_INT(tk_auth_deny_check("a", T0), 1);
    ASSERT_EQ_INT(tk_auth_deny_check("b", T0), 0);
    ASSERT_EQ_INT(tk_auth_deny_check("", T0), 0);
    ASSERT_EQ_INT(tk_auth_deny_check(NULL, T0), 0);
    /* adding twice keeps the later expiry */
    ASSERT_EQ_INT(tk_auth_deny_add("a", T0 + 50), 0);
    ASSERT_EQ_INT(tk_auth_deny_check("a", T0 + 99), 1);
    ASSERT_EQ_INT(tk_auth_deny_add("a", T0 + 200), 0);
    ASSERT_EQ_INT(tk_auth_deny_check("a", T0 + 150), 1);
    tk_auth_deny_cleanup();
    ASSERT_EQ_INT(tk_auth_deny_check("a", T0), 0);
    return 0;
}

TEST(bad_arguments)
{
    ASSERT_EQ_INT(tk_auth_deny_add(NULL, T0), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_deny_add("", T0), TK_EINVAL);
    return 0;
}

TEST(expiry)
{
    ASSERT_EQ_INT(tk_auth_deny_add("x", T0 + 10), 0);
    ASSERT_EQ_INT(tk_auth_deny_check("x", T0 + 9), 1);
    ASSERT_EQ_INT(tk_auth_deny_check("x", T0 + 10), 0); /* exp is exclusive, like JWT exp */
    ASSERT_EQ_INT(tk_auth_deny_check("x", T0 + 1000), 0);
    /* re-denied after expiry */
    ASSERT_EQ_INT(tk_auth_deny_add("x", T0 + 2000), 0);
    ASSERT_EQ_INT(tk_auth_deny_check("x", T0 + 1001), 1);
    tk_auth_deny_cleanup();
    return 0;
}

TEST(many_and_sweep)
{
    char jti[40];
    int64_t now = T0;

    /* Enough to grow the table several times; half expire early. */
    for (int i = 0; i < 5000; i++) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        ASSERT_EQ_INT(tk_auth_deny_add(jti, (i % 2) ? now + 100 : now + 10000), 0);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        ASSERT_EQ_INT(tk_auth_deny_check(jti, now), 1);
    }
    ASSERT_EQ_INT(tk_auth_deny_check("jti-5000", now), 0);
    /* later: odd ones expired (and swept); even ones still there */
    now += 500;
    for (int i = 0; i < 5000; i++) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        ASSERT_EQ_INT(tk_auth_deny_check(jti, now), (i % 2) ? 0 : 1);
    }
    /* adding after a sweep still works */
    for (int i = 5000; i < 6000; i++) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        ASSERT_EQ_INT(tk_auth_deny_add(jti, now + 100), 0);
    }
    for (int i = 0; i < 6000; i++) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        ASSERT_EQ_INT(tk_auth_deny_check(jti, now + 1), (i % 2 == 0 || i >= 5000) ? 1 : 0);
    }
    now += 20000;
    ASSERT_EQ_INT(tk_auth_deny_check("jti-0", now), 0);
    tk_auth_deny_cleanup();
    return 0;
}

typedef struct {
    int id;
    int failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    char jti[40];
    for (int i = 0; i < 2000; i++) {
        snprintf(jti, sizeof(jti), "w%d-%d", a->id, i);
        if (tk_auth_deny_add(jti, T0 + 1000) != 0)
            a->failures++;
        if (tk_auth_deny_check(jti, T0 + (i % 100) * 10) != 1)
            a->failures++;
    }
    return NULL;
}

TEST(threads)
{
    pthread_t th[4];
    worker_arg args[4];

    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){i, 0};
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(args[i].failures, 0);
    tk_auth_deny_cleanup();
    return 0;
}

TEST_MAIN(TEST_ENTRY(add_check), TEST_ENTRY(bad_arguments), TEST_ENTRY(expiry),
          TEST_ENTRY(many_and_sweep), TEST_ENTRY(threads))
