/* The user check (runtime/auth/users.c): the verdicts (gone, disabled,
 * token older than a password change), the cache (hits within the TTL, a
 * new lookup after it, TTL 0 = always look up), invalidation (also of a
 * lookup in flight), lookup failures, and, with TEST_DATABASE_URL, the
 * real lookup through the pool against the migrated users table. The
 * unit part uses an in-memory user table as the lookup. */
#include "auth/users.h"
#include "test_util.h"

#include <libpq-fe.h>
#include <pthread.h>

#define U1 "6f1d8a2e-3b4c-4d5e-8f60-718293a4b5c6"
#define U2 "0c9e7f4a-1d2b-4c3d-9e4f-5a6b7c8d9e0f"

/* ---- an in-memory user table as the lookup ---------------------------- */

static struct {
    tk_auth_user_state u1, u2;
    int calls;
    int fail;
    const char *invalidate_during; /* a user id invalidated while "querying" */
} fake;

static int fake_fetch(void *arg, const char *id, tk_auth_user_state *out)
{
    (void)arg;
    __atomic_fetch_add(&fake.calls, 1, __ATOMIC_RELAXED);
    if (fake.fail)
        return TK_EUNAVAIL;
    if (fake.invalidate_during != NULL)
        tk_auth_users_invalidate(fake.invalidate_during);
    if (strcmp(id, U1) == 0)
        *out = fake.u1;
    else if (strcmp(id, U2) == 0)
        *out = fake.u2;
    else
        out->found = 0;
    return 0;
}

static void fake_reset(void)
{
    memset(&fake, 0, sizeof fake);
    fake.u1 = (tk_auth_user_state){.found = 1, .disabled = 0, .ver = 0};
    fake.u2 = (tk_auth_user_state){.found = 1, .disabled = 0, .ver = 2};
}

static tk_auth_claims claims(const char *sub, int64_t ver)
{
    tk_auth_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    c.ver = ver;
    return c;
}

static int check(const char *sub, int64_t ver, int64_t now_ms, const char **why)
{
    tk_auth_claims c = claims(sub, ver);
    const char *w = NULL;
    int rc = tk_auth_users_check(&c, now_ms, &w);
    if (why != NULL)
        *why = w;
    return rc;
}

/* ---- tests ---------------------------------------------------------------- */

TEST(not_initialised_accepts)
{
    tk_auth_users_cleanup();
    ASSERT_EQ_INT(check(U1, 0, 1000, NULL), 0);
    return 0;
}

TEST(verdicts)
{
    const char *why = NULL;
    fake_reset();
    tk_auth_users_init(0, fake_fetch, NULL);
    ASSERT_EQ_INT(check(U1, 0, 1000, &why), 0);
    ASSERT_EQ_INT(check(U2, 2, 1000, &why), 0);
    ASSERT_EQ_INT(check(U2, 3, 1000, &why), 0); /* newer is fine (another instance's view) */
    ASSERT_EQ_INT(check(U2, 1, 1000, &why), TK_EAUTH);
    ASSERT_STR_EQ(why, "access token predates a password change");
    fake.u1.disabled = 1;
    ASSERT_EQ_INT(check(U1, 0, 1000, &why), TK_EAUTH);
    ASSERT_STR_EQ(why, "user is disabled");
    fake.u1.found = 0;
    ASSERT_EQ_INT(check(U1, 0, 1000, &why), TK_EAUTH);
    ASSERT_STR_EQ(why, "user no longer exists");
    ASSERT_EQ_INT(check("1b4e28ba-2fa1-41d2-883f-0016d3cca427", 0, 1000, &why), TK_EAUTH);
    ASSERT_STR_EQ(why, "user no longer exists");
    /* never a lookup for something that is not a UUID */
    int calls = fake.calls;
    ASSERT_EQ_INT(check("42", 0, 1000, &why), TK_EAUTH);
    ASSERT_EQ_INT(fake.calls, calls);
    tk_auth_users_cleanup();
    return 0;
}

TEST(ttl_zero_looks_up_every_time)
{
    fake_reset();
    tk_auth_users_init(0, fake_fetch, NULL);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ_INT(check(U1, 0, 1000, NULL), 0);
    ASSERT_EQ_INT(fake.calls, 5);
    tk_auth_users_cleanup();
    return 0;
}

TEST(cache_hits_within_ttl)
{
    tk_auth_users_stats st0, st1;
    fake_reset();
    tk_auth_users_init(500, fake_fetch, NULL);
    tk_auth_users_get_stats(&st0);
    ASSERT_EQ_INT(check(U1, 0, 1000, NULL), 0);
    ASSERT_EQ_INT(check(U1, 0, 1200, NULL), 0);
    ASSERT_EQ_INT(check(U1, 0, 1499, NULL), 0);
    ASSERT_EQ_INT(fake.calls, 1);
    /* a change the cache has not heard of is seen once the TTL is over */
    fake.u1.found = 0;
    ASSERT_EQ_INT(check(U1, 0, 1499, NULL), 0);
    ASSERT_EQ_INT(check(U1, 0, 1500, NULL), TK_EAUTH);
    ASSERT_EQ_INT(fake.calls, 2);
    /* "gone" is cached too: a flood of a deleted user's tokens is one query */
    ASSERT_EQ_INT(check(U1, 0, 1600, NULL), TK_EAUTH);
    ASSERT_EQ_INT(fake.calls, 2);
    /* users are cached separately */
    ASSERT_EQ_INT(check(U2, 2, 1600, NULL), 0);
    ASSERT_EQ_INT(check(U2, 1, 1601, NULL), TK_EAUTH); /* judged from the cache */
    ASSERT_EQ_INT(fake.calls, 3);
    tk_auth_users_get_stats(&st1);
    ASSERT_EQ_INT(st1.misses - st0.misses, 3);
    ASSERT_EQ_INT(st1.hits - st0.hits, 5);
    tk_auth_users_cleanup();
    return 0;
}

TEST(invalidation)
{
    fake_reset();
    tk_auth_users_init(60000, fake_fetch, NULL);
    ASSERT_EQ_INT(check(U2, 2, 1000, NULL), 0);
    ASSERT_EQ_INT(check(U1, 0, 1000, NULL), 0);
    ASSERT_EQ_INT(fake.calls, 2);
    /* the password changes: version 3; only U2's entry goes */
    fake.u2.ver = 3;
    tk_auth_users_invalidate(U2);
    ASSERT_EQ_INT(check(U2, 2, 1001, NULL), TK_EAUTH);
    ASSERT_EQ_INT(check(U2, 3, 1002, NULL), 0);
    ASSERT_EQ_INT(check(U1, 0, 1003, NULL), 0);
    ASSERT_EQ_INT(fake.calls, 3);
    /* malformed ids are ignored */
    tk_auth_users_invalidate("nope");
    tk_auth_users_invalidate(NULL);
    ASSERT_EQ_INT(check(U1, 0, 1004, NULL), 0);
    ASSERT_EQ_INT(fake.calls, 3);
    /* upper-case ids name the same user */
    fake.u1.found = 0;
    tk_auth_users_invalidate("6F1D8A2E-3B4C-4D5E-8F60-718293A4B5C6");
    ASSERT_EQ_INT(check(U1, 0, 1005, NULL), TK_EAUTH);
    tk_auth_users_cleanup();
    return 0;
}

TEST(invalidation_during_a_lookup_is_not_lost)
{
    fake_reset();
    tk_auth_users_init(60000, fake_fetch, NULL);
    /* the lookup reads the old state, then the change lands: not cached */
    fake.invalidate_during = U1;
    ASSERT_EQ_INT(check(U1, 0, 1000, NULL), 0);
    fake.invalidate_during = NULL;
    fake.u1.found = 0;
    ASSERT_EQ_INT(check(U1, 0, 1001, NULL), TK_EAUTH);
    ASSERT_EQ_INT(fake.calls, 2);
    tk_auth_users_cleanup();
    return 0;
}

TEST(lookup_failure)
{
    const char *why = NULL;
    fake_reset();
    tk_auth_users_init(60000, fake_fetch, NULL);
    fake.fail = 1;
    ASSERT_EQ_INT(check(U1, 0, 1000, &why), TK_EUNAVAIL);
    ASSERT_NOT_NULL(why);
    /* a failure is not cached */
    fake.fail = 0;
    ASSERT_EQ_INT(check(U1, 0, 1001, NULL), 0);
    ASSERT_EQ_INT(fake.calls, 2);
    tk_auth_users_cleanup();
    return 0;
}

static void *hammer(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < 20000; i++) {
        const char *id = (i & 1) ? U1 : U2;
        int rc = check(id, 5, 1000 + i / 100, NULL);
        if (rc != 0)
            (*bad)++;
        if (i % 97 == 0)
            tk_auth_users_invalidate(id);
    }
    return NULL;
}

/* Concurrent checks and invalidations (for the sanitizers). */
TEST(threads)
{
    pthread_t th[4];
    int bad[4] = {0};
    fake_reset();
    fake.u2.ver = 5;
    tk_auth_users_init(50, fake_fetch, NULL);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, hammer, &bad[i]), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(bad[i], 0);
    tk_auth_users_cleanup();
    return 0;
}

/* ---- the real lookup --------------------------------------------------- */

static int sql(PGconn *c, const char *q, const char *p1)
{
    const char *params[1] = {p1};
    PGresult *r = PQexecParams(c, q, p1 ? 1 : 0, NULL, params, NULL, NULL, 0);
    int st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", q, PQerrorMessage(c));
    int n = ok && st == PGRES_TUPLES_OK ? PQntuples(r) : (ok ? 0 : -1);
    PQclear(r);
    return n;
}

TEST(database_lookup)
{
    const char *url = getenv("TEST_DATABASE_URL");
    if (url == NULL || *url == '\0')
        TEST_SKIP("TEST_DATABASE_URL is not set");
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        TEST_SKIP("cannot connect to TEST_DATABASE_URL");
    }
    if (sql(c,
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'users' AND "
            "column_name = 'token_version'",
            NULL) != 1) {
        PQfinish(c);
        TEST_SKIP("the test database is not migrated");
    }
    static const char id[] = "7e57ca5e-0000-4000-8000-00000000c0de";
    ASSERT_GE_INT(sql(c, "DELETE FROM users WHERE id = $1", id), 0);
    ASSERT_GE_INT(sql(c,
                      "INSERT INTO users (id, email, password_hash, name) VALUES "
                      "($1, 'users-ctest-c0de@example.com', 'x', 'ctest')",
                      id),
                  0);
    tk_db_pool *pool = NULL;
    ASSERT_EQ_INT(tk_db_pool_new(url, 2, &pool), 0);
    tk_auth_users_db db = {pool, 2000};
    tk_auth_users_init(60000, tk_auth_users_fetch_db, &db);
    const char *why = NULL;
    int rc = check(id, 0, 1000, &why);
    if (rc == 0) {
        /* a password change: version 1 */
        sql(c, "UPDATE users SET token_version = token_version + 1 WHERE id = $1", id);
        rc = check(id, 0, 1001, &why) == 0 ? 0 : 1; /* cached: not seen yet */
        tk_auth_users_invalidate(id);
        if (rc == 0 && check(id, 0, 1002, &why) != TK_EAUTH)
            rc = 2;
        if (rc == 0 && check(id, 1, 1003, &why) != 0)
            rc = 3;
        sql(c, "UPDATE users SET disabled_at = now() WHERE id = $1", id);
        tk_auth_users_invalidate(id);
        if (rc == 0 && (check(id, 1, 1004, &why) != TK_EAUTH || strcmp(why, "user is disabled")))
            rc = 4;
        sql(c, "DELETE FROM users WHERE id = $1", id);
        tk_auth_users_invalidate(id);
        if (rc == 0 &&
            (check(id, 1, 1005, &why) != TK_EAUTH || strcmp(why, "user no longer exists")))
            rc = 5;
    }
    sql(c, "DELETE FROM users WHERE id = $1", id);
    tk_auth_users_cleanup();
    tk_db_pool_free(pool);
    PQfinish(c);
    ASSERT_EQ_INT(rc, 0);
    return 0;
}

TEST_MAIN(TEST_ENTRY(not_initialised_accepts), TEST_ENTRY(verdicts),
          TEST_ENTRY(ttl_zero_looks_up_every_time), TEST_ENTRY(cache_hits_within_ttl),
          TEST_ENTRY(invalidation), TEST_ENTRY(invalidation_during_a_lookup_is_not_lost),
          TEST_ENTRY(lookup_failure), TEST_ENTRY(threads), TEST_ENTRY(database_lookup))
