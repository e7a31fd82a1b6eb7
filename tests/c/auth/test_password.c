/* bcrypt hashing and verification (runtime/auth/password.c). Cost 4 keeps
 * the suite fast except where the cost itself is under test. */
#include "auth/auth.h"
#include "test_util.h"

#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

TEST(roundtrip)
{
    char h[TK_AUTH_HASH_MAX];
    const char *pw = "correct horse battery staple";

    ASSERT_EQ_INT(tk_auth_password_hash(pw, strlen(pw), 4, h, sizeof(h)), 0);
    ASSERT_EQ_INT(strlen(h), 60);
    ASSERT(strncmp(h, "$2b$04$", 7) == 0);
    ASSERT_EQ_INT(tk_auth_password_verify(pw, strlen(pw), h), 1);
    return 0;
}

TEST(prefix_cost_10)
{
    char h[TK_AUTH_HASH_MAX];

    ASSERT_EQ_INT(tk_auth_password_hash("pw", 2, 10, h, sizeof(h)), 0);
    ASSERT(strncmp(h, "$2b$10$", 7) == 0);
    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, h), 1);
    return 0;
}

TEST(salted)
{
    char a[TK_AUTH_HASH_MAX];
    char b[TK_AUTH_HASH_MAX];

    ASSERT_EQ_INT(tk_auth_password_hash("same", 4, 4, a, sizeof(a)), 0);
    ASSERT_EQ_INT(tk_auth_password_hash("same", 4, 4, b, sizeof(b)), 0);
    ASSERT_STR_NE(a, b);
    ASSERT_EQ_INT(tk_auth_password_verify("same", 4, a), 1);
    ASSERT_EQ_INT(tk_auth_password_verify("same", 4, b), 1);
    return 0;
}

TEST(wrong_password)
{
    char h[TK_AUTH_HASH_MAX];

    ASSERT_EQ_INT(tk_auth_password_hash("secret1", 7, 4, h, sizeof(h)), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("secret2", 7, h), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("secret", 6, h), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("", 0, h), 0);
    /* len is honoured: the first 6 bytes only are not the password */
    ASSERT_EQ_INT(tk_auth_password_verify("secret1", 6, h), 0);
    return 0;
}

TEST(empty_password)
{
    char h[TK_AUTH_HASH_MAX];

    ASSERT_EQ_INT(tk_auth_password_hash("", 0, 4, h, sizeof(h)), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("", 0, h), 1);
    ASSERT_EQ_INT(tk_auth_password_verify("x", 1, h), 0);
    return 0;
}

TEST(length_limit)
{
    char pw[80];
    char h[TK_AUTH_HASH_MAX];

    memset(pw, 'a', sizeof(pw));
    ASSERT_EQ_INT(tk_auth_password_hash(pw, 72, 4, h, sizeof(h)), 0);
    ASSERT_EQ_INT(tk_auth_password_verify(pw, 72, h), 1);
    ASSERT_EQ_INT(tk_auth_password_verify(pw, 71, h), 0);
    /* 73 bytes would be silently truncated by bcrypt: refused instead */
    ASSERT_EQ_INT(tk_auth_password_hash(pw, 73, 4, h, sizeof(h)), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_password_verify(pw, 73, h), 0);
    return 0;
}

TEST(nul_inside)
{
    char h[TK_AUTH_HASH_MAX];

    ASSERT_EQ_INT(tk_auth_password_hash("ab\0cd", 5, 4, h, sizeof(h)), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_password_hash("ab", 2, 4, h, sizeof(h)), 0);
    /* "ab\0cd" must not verify as "ab" */
    ASSERT_EQ_INT(tk_auth_password_verify("ab\0cd", 5, h), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("ab", 2, h), 1);
    return 0;
}

TEST(bad_arguments)
{
    char h[TK_AUTH_HASH_MAX];
    char small[32];

    ASSERT_EQ_INT(tk_auth_password_hash(NULL, 0, 4, h, sizeof(h)), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_password_hash("pw", 2, 3, h, sizeof(h)), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_password_hash("pw", 2, 32, h, sizeof(h)), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_password_hash("pw", 2, 4, small, sizeof(small)), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_password_hash("pw", 2, 4, NULL, 0), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_password_verify(NULL, 0, "$2b$04$abc"), 0);
    return 0;
}

TEST(invalid_hash)
{
    char h[TK_AUTH_HASH_MAX];
    char bad[TK_AUTH_HASH_MAX + 8];

    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, NULL), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, ""), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, "pw"), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, "*0"), 0);
    ASSERT_EQ_INT(tk_auth_password_verify("", 0, "$1$abc$def"), 0);
    ASSERT_EQ_INT(tk_auth_password_hash("pw", 2, 4, h, sizeof(h)), 0);
    /* truncated, over-long, bad cost, bad alphabet */
    snprintf(bad, sizeof(bad), "%.59s", h);
    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, bad), 0);
    snprintf(bad, sizeof(bad), "%sA", h);
    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, bad), 0);
    snprintf(bad, sizeof(bad), "%s", h);
    bad[4] = '9';
    bad[5] = '9';
    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, bad), 0);
    snprintf(bad, sizeof(bad), "%s", h);
    bad[30] = '!';
    ASSERT_EQ_INT(tk_auth_password_verify("pw", 2, bad), 0);
    /* the built-in dummy never matches, not even its own secret-less forms */
    ASSERT_EQ_INT(tk_auth_password_verify("taskapi-dummy-password-never-matches", 36, NULL), 0);
    return 0;
}

/* Best of three, so a descheduled run does not make the test flaky. */
static double time_verify(const char *pw, const char *hash)
{
    double best = 1e9;
    for (int i = 0; i < 3; i++) {
        double t0 = now_ms();
        if (tk_auth_password_verify(pw, strlen(pw), hash) != 0)
            return -1;
        double t = now_ms() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

/* A missing user (hash NULL) costs a cost-10 bcrypt, like a real check. */
TEST(dummy_costs_like_real)
{
    char h[TK_AUTH_HASH_MAX];
    double real;
    double dummy;
    double refused;

    ASSERT_EQ_INT(tk_auth_password_hash("pw", 2, 10, h, sizeof(h)), 0);
    real = time_verify("nope", h);
    dummy = time_verify("nope", NULL);
    refused = time_verify("garbage-hash", "not-a-hash");
    ASSERT(real > 0 && dummy > 0 && refused > 0);
    /* Loose bounds: only catches a skipped hash (~0 ms). */
    ASSERT(dummy > real / 4 && dummy < real * 4);
    ASSERT(refused > real / 4 && refused < real * 4);
    return 0;
}

TEST_MAIN(TEST_ENTRY(roundtrip), TEST_ENTRY(prefix_cost_10), TEST_ENTRY(salted),
          TEST_ENTRY(wrong_password), TEST_ENTRY(empty_password), TEST_ENTRY(length_limit),
          TEST_ENTRY(nul_inside), TEST_ENTRY(bad_arguments), TEST_ENTRY(invalid_hash),
          TEST_ENTRY(dummy_costs_like_real))
