/* The libpq pool (runtime/db/pool.c) against a real PostgreSQL named by
 * TEST_DATABASE_URL (skipped with 77 when unset): acquire/release/reuse,
 * the prepared-statement cache, exhaustion and waiting, an unreachable
 * server, and recovery after the server kills a pooled connection. */
#include "db/pool.h"
#include "test_util.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static const char *db_url;

/* ---- helpers ------------------------------------------------------------ */

#define ASSERT_STR_HAS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (strstr(h_, n_) == NULL)                                                                \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", h_, n_);                                  \
    } while (0)

#define ASSERT_STR_HASNT(hay, needle)                                                              \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (strstr(h_, n_) != NULL)                                                                \
            TEST_FAIL_("\"%s\" contains \"%s\"", h_, n_);                                          \
    } while (0)

#define ACQUIRE(p, ms, c)                                                                          \
    do {                                                                                           \
        char e_[256] = "";                                                                         \
        int rc_ = tk_db_pool_acquire((p), (ms), &(c), e_, sizeof e_);                              \
        if (rc_ != TK_OK)                                                                          \
            TEST_FAIL_("acquire: %d: %s", rc_, e_);                                                \
    } while (0)

/* Runs sql (no parameters) on c and expects one row whose first value is
 * `want`. */
#define ASSERT_EXEC1(c, sql, want)                                                                 \
    do {                                                                                           \
        PGresult *r_ = tk_db_conn_exec((c), (sql), 0, NULL, NULL);                                 \
        if (r_ == NULL)                                                                            \
            TEST_FAIL_("%s: connection failed", (sql));                                            \
        if (PQresultStatus(r_) != PGRES_TUPLES_OK || PQntuples(r_) != 1) {                         \
            fprintf(stderr, "%s: %s", (sql), PQresultErrorMessage(r_));                            \
            PQclear(r_);                                                                           \
            TEST_FAIL_("%s did not return one row", (sql));                                        \
        }                                                                                          \
        int same_ = strcmp(PQgetvalue(r_, 0, 0), (want)) == 0;                                     \
        if (!same_)                                                                                \
            fprintf(stderr, "%s: got \"%s\"\n", (sql), PQgetvalue(r_, 0, 0));                      \
        PQclear(r_);                                                                               \
        ASSERT(same_);                                                                             \
    } while (0)

/* Runs a command without rows on c through the statement path. */
#define ASSERT_EXEC_CMD(c, sql)                                                                    \
    do {                                                                                           \
        PGresult *r_ = tk_db_conn_exec((c), (sql), 0, NULL, NULL);                                 \
        if (r_ == NULL)                                                                            \
            TEST_FAIL_("%s: connection failed", (sql));                                            \
        int ok_ = PQresultStatus(r_) == PGRES_COMMAND_OK;                                          \
        if (!ok_)                                                                                  \
            fprintf(stderr, "%s: %s", (sql), PQresultErrorMessage(r_));                            \
        PQclear(r_);                                                                               \
        ASSERT(ok_);                                                                               \
    } while (0)

#define ASSERT_STATS(p, in_use_, idle_)                                                            \
    do {                                                                                           \
        tk_db_pool_stats s_;                                                                       \
        tk_db_pool_get_stats((p), &s_);                                                            \
        ASSERT_EQ_INT(s_.in_use, (in_use_));                                                       \
        ASSERT_EQ_INT(s_.idle, (idle_));                                                           \
    } while (0)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs sql on a separate connection; returns 0 when it succeeded. */
static int admin_exec(const char *sql)
{
    PGconn *c = PQconnectdb(db_url);
    int rc = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "admin connection: %s", PQerrorMessage(c));
    } else {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            rc = 0;
        else
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

/* Terminates backend `pid` from another connection and waits for it to be
 * gone (PostgreSQL 14+ waits with the timeout argument). */
static int kill_backend(int pid)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d, 5000)", pid);
    return admin_exec(sql);
}

/* ---- acquire / release -------------------------------------------------- */

TEST(acquire_release_reuse)
{
    tk_db_pool *p;
    tk_db_conn *a, *b, *c;
    tk_db_pool_stats s;

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 2, &p), TK_OK);
    tk_db_pool_get_stats(p, &s);
    ASSERT_EQ_INT(s.size, 2);
    ASSERT_EQ_INT(s.in_use, 0);
    ASSERT_EQ_INT(s.idle, 0);
    ASSERT_EQ_INT(s.waiting, 0);
    ASSERT_EQ_INT(s.connects, 0); /* lazy: nothing connected yet */

    ACQUIRE(p, 1000, a);
    ASSERT_NOT_NULL(tk_db_conn_pg(a));
    ASSERT_EQ_INT(tk_db_conn_broken(a), 0);
    int pid = PQbackendPID(tk_db_conn_pg(a));
    ASSERT_STATS(p, 1, 0);
    ASSERT_EXEC1(a, "SELECT 1", "1");
    /* the pool sets UTC for every connection */
    ASSERT_EXEC1(a, "SHOW TIME ZONE", "UTC");
    tk_db_pool_release(p, a);
    ASSERT_STATS(p, 0, 1);

    /* reused, not reconnected */
    ACQUIRE(p, 1000, b);
    ASSERT(b == a);
    ASSERT_EQ_INT(PQbackendPID(tk_db_conn_pg(b)), pid);
    ASSERT_STATS(p, 1, 0);
    ACQUIRE(p, 1000, c);
    ASSERT(c != b);
    ASSERT_STATS(p, 2, 0);
    tk_db_pool_get_stats(p, &s);
    ASSERT_EQ_INT(s.connects, 2);
    ASSERT_EQ_INT(s.failures, 0);
    tk_db_pool_release(p, b);
    tk_db_pool_release(p, c);
    ASSERT_STATS(p, 0, 2);
    tk_db_pool_release(p, NULL); /* a no-op */
    ASSERT_STATS(p, 0, 2);
    tk_db_pool_free(p);
    tk_db_pool_free(NULL);
    return 0;
}

/* ---- statements --------------------------------------------------------- */

TEST(prepared_statement_cache)
{
    tk_db_pool *p;
    tk_db_conn *c;
    const char *v[2];
    PGresult *r;
    /* counts this connection's prepared statements, itself included */
    const char *count = "SELECT count(*) FROM pg_prepared_statements";

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, c);

    v[0] = "41";
    r = tk_db_conn_exec(c, "SELECT $1::int + 1", 1, v, NULL);
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(PQresultStatus(r), PGRES_TUPLES_OK);
    ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    /* same SQL again: same statement, new parameters */
    v[0] = "1";
    r = tk_db_conn_exec(c, "SELECT $1::int + 1", 1, v, NULL);
    ASSERT_NOT_NULL(r);
    ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "2");
    PQclear(r);
    ASSERT_EXEC1(c, count, "2");
    ASSERT_EXEC1(c, count, "2"); /* not prepared twice */

    /* different SQL: another statement */
    v[0] = "a";
    v[1] = NULL; /* SQL NULL */
    r = tk_db_conn_exec(c, "SELECT $1::text || 'b', $2::text IS NULL", 2, v, NULL);
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(PQresultStatus(r), PGRES_TUPLES_OK);
    ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "ab");
    ASSERT_STR_EQ(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    ASSERT_EXEC1(c, count, "3");

    /* explicit lengths are accepted (text parameters) */
    int lens[1] = {2};
    v[0] = "77";
    r = tk_db_conn_exec(c, "SELECT $1::int * 2", 1, v, lens);
    ASSERT_NOT_NULL(r);
    ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "154");
    PQclear(r);

    /* a command without rows */
    ASSERT_EXEC_CMD(c, "SET application_name = 'tk_pool_test'");

    tk_db_pool_release(p, c);
    tk_db_pool_free(p);
    return 0;
}

TEST(statement_errors_keep_the_connection)
{
    tk_db_pool *p;
    tk_db_conn *c;
    const char *v[1];
    PGresult *r;

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, c);

    /* a syntax error: an error result, twice (never cached as good) */
    for (int i = 0; i < 2; i++) {
        r = tk_db_conn_exec(c, "SELEC 1", 0, NULL, NULL);
        ASSERT_NOT_NULL(r);
        ASSERT_EQ_INT(PQresultStatus(r), PGRES_FATAL_ERROR);
        ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42601");
        PQclear(r);
        ASSERT_EQ_INT(tk_db_conn_broken(c), 0);
        ASSERT_EXEC1(c, "SELECT 'still usable'", "still usable");
    }

    /* an execution error in a cached statement */
    v[0] = "0";
    r = tk_db_conn_exec(c, "SELECT 10 / $1::int", 1, v, NULL);
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(PQresultStatus(r), PGRES_FATAL_ERROR);
    ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22012");
    PQclear(r);
    v[0] = "5";
    r = tk_db_conn_exec(c, "SELECT 10 / $1::int", 1, v, NULL);
    ASSERT_NOT_NULL(r);
    ASSERT_EQ_INT(PQresultStatus(r), PGRES_TUPLES_OK);
    ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "2");
    PQclear(r);

    /* a bad parameter value */
    v[0] = "not a number";
    r = tk_db_conn_exec(c, "SELECT 10 / $1::int", 1, v, NULL);
    ASSERT_NOT_NULL(r);
    ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22P02");
    PQclear(r);
    ASSERT_EQ_INT(tk_db_conn_broken(c), 0);

    /* the connection is still clean for the next user */
    tk_db_pool_release(p, c);
    ASSERT_STATS(p, 0, 1);
    tk_db_pool_free(p);
    return 0;
}

TEST(many_distinct_statements)
{
    /* More statements than the per-connection cache holds: the overflow
     * runs unprepared, and every one still answers correctly. */
    tk_db_pool *p;
    tk_db_conn *c;
    char sql[64], want[32];

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, c);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 400; i++) {
            snprintf(sql, sizeof sql, "SELECT %d + 1", i);
            snprintf(want, sizeof want, "%d", i + 1);
            ASSERT_EXEC1(c, sql, want);
        }
    }
    tk_db_pool_release(p, c);
    tk_db_pool_free(p);
    return 0;
}

TEST(command_begin_rollback)
{
    tk_db_pool *p;
    tk_db_conn *c;
    char err[256] = "";

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, c);
    PGconn *pg = tk_db_conn_pg(c);
    ASSERT_EQ_INT(PQtransactionStatus(pg), PQTRANS_IDLE);
    ASSERT_EQ_INT(tk_db_conn_command(c, "BEGIN", err, sizeof err), TK_OK);
    ASSERT_EQ_INT(PQtransactionStatus(pg), PQTRANS_INTRANS);
    ASSERT_EXEC_CMD(c, "CREATE TEMP TABLE tk_pool_t (x int)");
    ASSERT_EQ_INT(tk_db_conn_command(c, "ROLLBACK", err, sizeof err), TK_OK);
    ASSERT_EQ_INT(PQtransactionStatus(pg), PQTRANS_IDLE);
    ASSERT_EXEC1(c, "SELECT to_regclass('pg_temp.tk_pool_t') IS NULL", "t");

    /* a failing command: TK_EDB with the server's message */
    ASSERT_EQ_INT(tk_db_conn_command(c, "BEGIN", err, sizeof err), TK_OK);
    ASSERT_EQ_INT(tk_db_conn_command(c, "SELEC 1", err, sizeof err), TK_EDB);
    ASSERT_STR_HAS(err, "syntax error");
    ASSERT_EQ_INT(tk_db_conn_broken(c), 0);
    ASSERT_EQ_INT(PQtransactionStatus(pg), PQTRANS_INERROR);
    ASSERT_EQ_INT(tk_db_conn_command(c, "ROLLBACK", err, sizeof err), TK_OK);
    ASSERT_EQ_INT(PQtransactionStatus(pg), PQTRANS_IDLE);
    /* a query returning rows is fine through the simple protocol too */
    ASSERT_EQ_INT(tk_db_conn_command(c, "SELECT 1", err, sizeof err), TK_OK);
    ASSERT_EQ_INT(tk_db_conn_command(c, "SELECT 1", NULL, 0), TK_OK);
    tk_db_pool_release(p, c);
    tk_db_pool_free(p);
    return 0;
}

TEST(release_inside_a_transaction_never_leaks_it)
{
    tk_db_pool *p;
    tk_db_conn *c;
    char err[256];

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, c);
    ASSERT_EQ_INT(tk_db_conn_command(c, "BEGIN", err, sizeof err), TK_OK);
    ASSERT_EXEC1(c, "SELECT set_config('tk.marker', 'dirty', true)", "dirty");
    tk_db_pool_release(p, c); /* forgotten ROLLBACK */

    ACQUIRE(p, 1000, c);
    ASSERT_EQ_INT(PQtransactionStatus(tk_db_conn_pg(c)), PQTRANS_IDLE);
    ASSERT_EXEC1(c, "SELECT coalesce(current_setting('tk.marker', true), '')", "");
    tk_db_pool_release(p, c);
    ASSERT_STATS(p, 0, 1);
    tk_db_pool_free(p);
    return 0;
}

/* ---- exhaustion and waiting --------------------------------------------- */

TEST(exhaustion_times_out)
{
    tk_db_pool *p;
    tk_db_conn *a, *b = NULL;
    char err[256] = "";
    tk_db_pool_stats s;

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, a);
    double t0 = now_ms();
    ASSERT_EQ_INT(tk_db_pool_acquire(p, 300, &b, err, sizeof err), TK_ETIMEDOUT);
    double dt = now_ms() - t0;
    ASSERT(b == NULL);
    ASSERT_GE_INT(dt, 280);
    ASSERT_LT_INT(dt, 1500);
    ASSERT_STR_HAS(err, "exhausted");
    tk_db_pool_get_stats(p, &s);
    ASSERT_EQ_INT(s.waiting, 0);
    ASSERT_EQ_INT(s.in_use, 1);
    tk_db_pool_release(p, a);
    /* free again: the next acquire is immediate */
    ACQUIRE(p, 10, b);
    ASSERT(b == a);
    tk_db_pool_release(p, b);
    tk_db_pool_free(p);
    return 0;
}

typedef struct {
    tk_db_pool *pool;
    tk_db_conn *got;
    int rc;
    double waited_ms;
    char err[256];
} waiter_arg;

static void *waiter(void *ud)
{
    waiter_arg *w = ud;
    double t0 = now_ms();
    w->rc = tk_db_pool_acquire(w->pool, 3000, &w->got, w->err, sizeof w->err);
    w->waited_ms = now_ms() - t0;
    return NULL;
}

TEST(waiter_gets_released_connection)
{
    tk_db_pool *p;
    tk_db_conn *a;
    tk_db_pool_stats s;
    pthread_t th;
    waiter_arg w = {0};

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, a);
    w.pool = p;
    ASSERT_EQ_INT(pthread_create(&th, NULL, waiter, &w), 0);
    /* wait until the thread is blocked in the pool */
    for (int i = 0; i < 200; i++) {
        tk_db_pool_get_stats(p, &s);
        if (s.waiting == 1)
            break;
        usleep(5000);
    }
    ASSERT_EQ_INT(s.waiting, 1);
    usleep(50000);
    tk_db_pool_release(p, a);
    ASSERT_EQ_INT(pthread_join(th, NULL), 0);
    ASSERT_EQ_INT(w.rc, TK_OK);
    ASSERT(w.got == a);
    ASSERT_LT_INT(w.waited_ms, 2000);
    ASSERT_GE_INT(w.waited_ms, 40);
    ASSERT_EXEC1(w.got, "SELECT 'handed over'", "handed over");
    tk_db_pool_get_stats(p, &s);
    ASSERT_EQ_INT(s.waiting, 0);
    ASSERT_EQ_INT(s.in_use, 1);
    ASSERT_EQ_INT(s.connects, 1);
    tk_db_pool_release(p, w.got);
    tk_db_pool_free(p);
    return 0;
}

/* ---- failures ----------------------------------------------------------- */

TEST(unreachable_server)
{
    tk_db_pool *p;
    tk_db_conn *c = NULL;
    char err[512] = "";
    tk_db_pool_stats s;

    ASSERT_EQ_INT(tk_db_pool_new("postgresql://postgres:s3cr3t-pw@127.0.0.1:1/x", 1, &p), TK_OK);
    ASSERT_EQ_INT(tk_db_pool_acquire(p, 500, &c, err, sizeof err), TK_EUNAVAIL);
    ASSERT(c == NULL);
    ASSERT_STR_HAS(err, "database unavailable");
    ASSERT_STR_HASNT(err, "s3cr3t-pw");
    ASSERT(strchr(err, '\n') == NULL); /* one line */
    tk_db_pool_get_stats(p, &s);
    ASSERT_EQ_INT(s.in_use, 0);
    ASSERT_EQ_INT(s.failures, 1);
    ASSERT_EQ_INT(s.connects, 0);
    /* the slot was given back: the next attempt fails the same way, not
     * with a pool timeout */
    err[0] = '\0';
    ASSERT_EQ_INT(tk_db_pool_acquire(p, 500, &c, err, sizeof err), TK_EUNAVAIL);
    ASSERT_STR_HASNT(err, "s3cr3t-pw");
    tk_db_pool_get_stats(p, &s);
    ASSERT_EQ_INT(s.failures, 2);
    ASSERT_EQ_INT(s.in_use, 0);
    tk_db_pool_free(p);
    return 0;
}

TEST(unknown_database)
{
    tk_db_pool *p;
    tk_db_conn *c = NULL;
    char url[1024], err[512] = "";
    const char *slash = strrchr(db_url, '/');

    if (slash == NULL || strncmp(db_url, "postgres", 8) != 0)
        TEST_SKIP("TEST_DATABASE_URL is not a URL");
    snprintf(url, sizeof url, "%.*s/tk_no_such_db_xyz", (int)(slash - db_url), db_url);
    ASSERT_EQ_INT(tk_db_pool_new(url, 1, &p), TK_OK);
    ASSERT_EQ_INT(tk_db_pool_acquire(p, 500, &c, err, sizeof err), TK_EUNAVAIL);
    ASSERT_STR_HAS(err, "tk_no_such_db_xyz");
    tk_db_pool_free(p);
    return 0;
}

/* ---- recovery ----------------------------------------------------------- */

TEST(recovers_after_idle_connection_killed)
{
    tk_db_pool *p;
    tk_db_conn *c;
    tk_db_pool_stats s;

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, c);
    int pid = PQbackendPID(tk_db_conn_pg(c));
    ASSERT_GT_INT(pid, 0);
    ASSERT_EQ_INT(kill_backend(pid), 0);
    tk_db_pool_release(p, c); /* the pool cannot know yet */

    /* The pool must notice the dead connection and hand out a live one.
     * Results are gathered first so that a failure still frees everything. */
    ACQUIRE(p, 1000, c);
    int broken = tk_db_conn_broken(c);
    int new_pid = PQbackendPID(tk_db_conn_pg(c));
    PGresult *r = tk_db_conn_exec(c, "SELECT 'alive again'", 0, NULL, NULL);
    int ok = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
             strcmp(PQgetvalue(r, 0, 0), "alive again") == 0;
    if (r != NULL && !ok)
        fprintf(stderr, "query after recovery: %s", PQresultErrorMessage(r));
    PQclear(r);
    tk_db_pool_release(p, c);
    tk_db_pool_get_stats(p, &s);
    tk_db_pool_free(p);

    ASSERT_EQ_INT(broken, 0);
    ASSERT_NE_INT(new_pid, pid);
    ASSERT(ok);
    ASSERT_EQ_INT(s.connects, 2);
    ASSERT_EQ_INT(s.in_use, 0);
    ASSERT_EQ_INT(s.idle, 1);
    return 0;
}

TEST(recovers_after_connection_killed_in_use)
{
    tk_db_pool *p;
    tk_db_conn *c;

    ASSERT_EQ_INT(tk_db_pool_new(db_url, 1, &p), TK_OK);
    ACQUIRE(p, 1000, c);
    ASSERT_EXEC1(c, "SELECT 'prepared before'", "prepared before");
    int pid = PQbackendPID(tk_db_conn_pg(c));
    ASSERT_EQ_INT(kill_backend(pid), 0);

    /* the query in flight fails; the connection is then marked broken */
    PGresult *r = tk_db_conn_exec(c, "SELECT 'prepared before'", 0, NULL, NULL);
    if (r != NULL) {
        ASSERT_NE_INT(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
    }
    ASSERT_EQ_INT(tk_db_conn_broken(c), 1);
    tk_db_pool_release(p, c);
    ASSERT_STATS(p, 0, 0);

    ACQUIRE(p, 1000, c);
    ASSERT_EXEC1(c, "SELECT 'prepared before'", "prepared before");
    ASSERT_NE_INT(PQbackendPID(tk_db_conn_pg(c)), pid);
    tk_db_pool_release(p, c);
    tk_db_pool_free(p);
    return 0;
}

int main(void)
{
    static const tk_test_entry tests[] = {
        TEST_ENTRY(acquire_release_reuse),
        TEST_ENTRY(prepared_statement_cache),
        TEST_ENTRY(statement_errors_keep_the_connection),
        TEST_ENTRY(many_distinct_statements),
        TEST_ENTRY(command_begin_rollback),
        TEST_ENTRY(release_inside_a_transaction_never_leaks_it),
        TEST_ENTRY(exhaustion_times_out),
        TEST_ENTRY(waiter_gets_released_connection),
        TEST_ENTRY(unreachable_server),
        TEST_ENTRY(unknown_database),
        TEST_ENTRY(recovers_after_idle_connection_killed),
        TEST_ENTRY(recovers_after_connection_killed_in_use),
    };

    db_url = getenv("TEST_DATABASE_URL");
    if (db_url == NULL || *db_url == '\0') {
        printf("skipped: TEST_DATABASE_URL is not set\n");
        return TEST_SKIP_CODE;
    }
    return tk_test_run_all(tests, TK_ARRAY_LEN(tests));
}
