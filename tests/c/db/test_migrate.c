/* Tests for runtime/db/migrate.c against a real PostgreSQL named by
 * TEST_DATABASE_URL (skipped with 77 when unset). Every case gets a fresh
 * database and temporary migration directories, all removed at the end. */
#include "db/migrate.h"
#include "test_util.h"

#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Assertions beyond test_util.h                                             */
/* ------------------------------------------------------------------------ */

#define ASSERT_STR_HAS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (strstr(h_, n_) == NULL) {                                                              \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, h_,     \
                    n_);                                                                           \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

#define ASSERT_STR_HASNT(hay, needle)                                                              \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (strstr(h_, n_) != NULL) {                                                              \
            fprintf(stderr, "%s:%d: \"%s\" contains \"%s\"\n", __FILE__, __LINE__, h_, n_);        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Runs sql on ci; expects the first column of the first row. */
#define ASSERT_QUERY(ci, sql, expected)                                                            \
    do {                                                                                           \
        char q_[512];                                                                              \
        ASSERT_EQ_INT(query1((ci), (sql), q_, sizeof q_), 0);                                      \
        ASSERT_STR_EQ(q_, (expected));                                                             \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Fixtures: databases and directories, cleaned up by main                  */
/* ------------------------------------------------------------------------ */

#define MAX_FIXTURES 64

static const char *base_url;
static char *db_names[MAX_FIXTURES], *db_conninfos[MAX_FIXTURES];
static size_t n_dbs;
static char *dir_names[MAX_FIXTURES];
static size_t n_dirs;

static int admin_exec(const char *sql)
{
    PGconn *c = PQconnectdb(base_url);
    int rc = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "admin connection: %s", PQerrorMessage(c));
    } else {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            rc = 0;
        else
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

/* First value of the first row ("NULL" for SQL NULL, "<no rows>" if none). */
static int query1(const char *ci, const char *sql, char *buf, size_t len)
{
    PGconn *c = PQconnectdb(ci);
    int rc = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connection: %s", PQerrorMessage(c));
    } else {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        } else {
            const char *v = PQntuples(r) == 0      ? "<no rows>"
                            : PQgetisnull(r, 0, 0) ? "NULL"
                                                   : PQgetvalue(r, 0, 0);
            snprintf(buf, len, "%s", v);
            rc = 0;
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

static int exec_in(const char *ci, const char *sql)
{
    PGconn *c = PQconnectdb(ci);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            rc = 0;
        else
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "connection: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

/* The URL's parameters as keyword='value' pairs, with dbname replaced. */
static char *conninfo_for(const char *dbname)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(base_url, &perr);
    size_t cap = strlen(dbname) + 16, len = 0;
    char *s;

    if (opts == NULL) {
        fprintf(stderr, "bad TEST_DATABASE_URL: %s\n", perr != NULL ? perr : "out of memory");
        PQfreemem(perr);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (o->val != NULL)
            cap += strlen(o->keyword) + 2 * strlen(o->val) + 5;
    s = malloc(cap);
    if (s != NULL) {
        for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
            if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
                continue;
            len += (size_t)sprintf(s + len, "%s='", o->keyword);
            for (const char *p = o->val; *p != '\0'; p++) {
                if (*p == '\'' || *p == '\\')
                    s[len++] = '\\';
                s[len++] = *p;
            }
            len += (size_t)sprintf(s + len, "' ");
        }
        sprintf(s + len, "dbname=%s", dbname);
    }
    PQconninfoFree(opts);
    return s;
}

/* Creates an empty database for one case; returns its conninfo. */
static const char *fresh_db(void)
{
    char name[64], sql[128];
    if (n_dbs == MAX_FIXTURES)
        return NULL;
    snprintf(name, sizeof name, "tk_migrate_test_%ld_%zu", (long)getpid(), n_dbs);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (admin_exec(sql) != 0)
        return NULL;
    db_names[n_dbs] = strdup(name);
    db_conninfos[n_dbs] = conninfo_for(name);
    n_dbs++;
    return db_conninfos[n_dbs - 1];
}

static const char *fresh_dir(void)
{
    char tmpl[] = "/tmp/tk_migrate_XXXXXX";
    if (n_dirs == MAX_FIXTURES || mkdtemp(tmpl) == NULL)
        return NULL;
    dir_names[n_dirs] = strdup(tmpl);
    return dir_names[n_dirs++];
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    for (size_t i = 0; i < n_dbs; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db_names[i]);
        if (admin_exec(sql) != 0)
            fprintf(stderr, "warning: could not drop %s\n", db_names[i]);
        free(db_names[i]);
        free(db_conninfos[i]);
    }
    for (size_t i = 0; i < n_dirs; i++) {
        if (nftw(dir_names[i], rm_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
            fprintf(stderr, "warning: could not remove %s\n", dir_names[i]);
        free(dir_names[i]);
    }
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return unlink(path);
}

/* Runs migrate (or status) and captures what it prints. */
static int capture(int status, const char *ci, const char *dir, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc;
    if (f == NULL)
        abort();
    if (status)
        rc = tk_db_migrate_status(ci, dir, f, err, errlen);
    else
        rc = tk_db_migrate_run(ci, dir, f, err, errlen);
    fclose(f);
    snprintf(out, outlen, "%s", buf);
    free(buf);
    return rc;
}

#define RUN(ci, dir) capture(0, (ci), (dir), out, sizeof out, err, sizeof err)
#define STATUS(ci, dir) capture(1, (ci), (dir), out, sizeof out, err, sizeof err)

/* ------------------------------------------------------------------------ */
/* Cases                                                                     */
/* ------------------------------------------------------------------------ */

TEST(applies_in_numeric_order_and_only_once)
{
    char out[1024], err[512];
    const char *ci = fresh_db(), *dir = fresh_dir();
    ASSERT(ci != NULL && dir != NULL);

    /* Written out of order; 00010 sorts before 0002 as text, not as a number. */
    ASSERT(write_file(dir, "00010_c.sql", "CREATE TABLE c (b int REFERENCES b (id));") == 0);
    ASSERT(write_file(dir, "0002_b.sql",
                      "CREATE TABLE b (id int PRIMARY KEY, a int REFERENCES a (id));\n"
                      "INSERT INTO b VALUES (1, 1);\nSELECT count(*) FROM b;\n") == 0);
    ASSERT(write_file(dir, "0001_a.sql",
                      "CREATE TABLE a (id int PRIMARY KEY);\n"
                      "INSERT INTO a VALUES (1);\n") == 0);
    ASSERT(write_file(dir, "0003_empty.sql", "") == 0);
    ASSERT(write_file(dir, "0004_comment.sql", "-- nothing to do\n") == 0);
    /* Not migrations: each would fail if it were run. */
    const char *junk[] = {"README.md", "0005_x.txt",     "abc.sql",    "001_short.sql",
                          "0007_.sql", "0008_x.sql.bak", "_0009_x.sql"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        ASSERT(write_file(dir, junk[i], "THIS IS NOT SQL") == 0);
    char sub[512];
    snprintf(sub, sizeof sub, "%s/0006_subdir", dir);
    ASSERT(mkdir(sub, 0700) == 0);

    ASSERT_EQ_INT(RUN(ci, dir), TK_OK);
    ASSERT_STR_EQ(out, "applied 0001_a.sql\napplied 0002_b.sql\napplied 0003_empty.sql\n"
                       "applied 0004_comment.sql\napplied 00010_c.sql\n");
    ASSERT_STR_EQ(err, "");
    ASSERT_QUERY(ci,
                 "SELECT string_agg(version || ':' || name, ',' ORDER BY version) "
                 "FROM schema_migrations",
                 "1:0001_a.sql,2:0002_b.sql,3:0003_empty.sql,4:0004_comment.sql,10:00010_c.sql");

    ASSERT_EQ_INT(RUN(ci, dir), TK_OK);
    ASSERT_STR_EQ(out, "up to date\n");
    ASSERT_EQ_INT(tk_db_migrate_run(ci, dir, NULL, err, sizeof err), TK_OK);
    ASSERT_QUERY(ci, "SELECT count(*) FROM schema_migrations", "5");
    ASSERT_QUERY(ci, "SELECT count(*) FROM b", "1");
    ASSERT(remove(sub) == 0);
    return 0;
}

TEST(many_files_apply_in_order)
{
    char out[4096], err[512], name[64], sql[128];
    const char *ci = fresh_db(), *dir = fresh_dir();
    ASSERT(ci != NULL && dir != NULL);

    /* Past the listing's first allocation; each file depends on the last. */
    for (int i = 40; i >= 1; i--) {
        snprintf(name, sizeof name, "%04d_step.sql", i);
        if (i == 1)
            snprintf(sql, sizeof sql, "CREATE TABLE steps (n int); INSERT INTO steps VALUES (1);");
        else
            snprintf(sql, sizeof sql,
                     "INSERT INTO steps SELECT max(n) + 1 FROM steps "
                     "HAVING max(n) = %d;",
                     i - 1);
        ASSERT_EQ_INT(write_file(dir, name, sql), 0);
    }
    ASSERT_EQ_INT(RUN(ci, dir), TK_OK);
    ASSERT_STR_HAS(out, "applied 0001_step.sql\napplied 0002_step.sql\n");
    ASSERT_STR_HAS(out, "applied 0039_step.sql\napplied 0040_step.sql\n");
    ASSERT_QUERY(ci, "SELECT count(*) || '/' || max(n) FROM steps", "40/40");
    ASSERT_QUERY(ci, "SELECT count(*) FROM schema_migrations", "40");
    return 0;
}

TEST(empty_dir_creates_table_and_is_up_to_date)
{
    char out[256], err[256];
    const char *ci = fresh_db(), *dir = fresh_dir();
    ASSERT(ci != NULL && dir != NULL);
    ASSERT_EQ_INT(RUN(ci, dir), TK_OK);
    ASSERT_STR_EQ(out, "up to date\n");
    ASSERT_QUERY(ci, "SELECT to_regclass('schema_migrations') IS NOT NULL", "t");
    return 0;
}

TEST(broken_file_rolls_back_and_names_file)
{
    char out[1024], err[512];
    const char *ci = fresh_db(), *dir = fresh_dir();
    ASSERT(ci != NULL && dir != NULL);

    ASSERT(write_file(dir, "0001_ok.sql", "CREATE TABLE ok (x int);") == 0);
    /* The UTF-8 comment checks that the error position is counted in
     * characters when turned into a line number. */
    ASSERT(write_file(dir, "0002_bad.sql",
                      "-- crée «bad», puis échoue\n"
                      "CREATE TABLE bad (x int);\n"
                      "INSERT INTO bad VALUES (1);\n"
                      "SELEC 1;\n") == 0);
    ASSERT(write_file(dir, "0003_later.sql", "CREATE TABLE later (x int);") == 0);

    ASSERT_EQ_INT(RUN(ci, dir), TK_EDB);
    ASSERT_STR_EQ(out, "applied 0001_ok.sql\n");
    ASSERT_STR_EQ(err, "0002_bad.sql: syntax error at or near \"SELEC\" (line 4)");
    ASSERT_QUERY(ci, "SELECT to_regclass('ok') IS NOT NULL", "t");
    ASSERT_QUERY(ci, "SELECT to_regclass('bad') IS NULL", "t");
    ASSERT_QUERY(ci, "SELECT to_regclass('later') IS NULL", "t");
    ASSERT_QUERY(ci, "SELECT string_agg(version::text, ',') FROM schema_migrations", "1");
    /* The session (and its advisory lock) is gone. */
    ASSERT_QUERY(ci,
                 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                 "(SELECT oid FROM pg_database WHERE datname = current_database())",
                 "0");

    /* A run-time error, and one with a DETAIL. */
    ASSERT(write_file(dir, "0002_bad.sql", "CREATE TABLE bad (x int);\nSELECT 1 / 0;\n") == 0);
    ASSERT_EQ_INT(RUN(ci, dir), TK_EDB);
    ASSERT_STR_EQ(out, "");
    ASSERT_STR_EQ(err, "0002_bad.sql: division by zero");
    ASSERT(write_file(dir, "0002_bad.sql",
                      "CREATE TABLE bad (x int PRIMARY KEY);\n"
                      "INSERT INTO bad VALUES (1), (1);\n") == 0);
    ASSERT_EQ_INT(RUN(ci, dir), TK_EDB);
    ASSERT_STR_HAS(err, "0002_bad.sql: duplicate key value violates unique constraint");
    ASSERT_STR_HAS(err, "\"bad_pkey\"; Key (x)=(1) already exists.");
    ASSERT(strchr(err, '\n') == NULL);
    /* A short err buffer truncates the text, never overflows. */
    char small[11], tiny[1] = {'x'};
    ASSERT_EQ_INT(tk_db_migrate_run(ci, dir, NULL, small, sizeof small), TK_EDB);
    ASSERT_STR_EQ(small, "0002_bad.s");
    ASSERT_EQ_INT(tk_db_migrate_run(ci, dir, NULL, tiny, sizeof tiny), TK_EDB);
    ASSERT_EQ_INT(tiny[0], '\0');
    ASSERT_QUERY(ci, "SELECT to_regclass('bad') IS NULL", "t");

    /* Fixed, the rest goes through. */
    ASSERT(write_file(dir, "0002_bad.sql", "CREATE TABLE bad (x int);") == 0);
    ASSERT_EQ_INT(RUN(ci, dir), TK_OK);
    ASSERT_STR_EQ(out, "applied 0002_bad.sql\napplied 0003_later.sql\n");
    ASSERT_QUERY(ci,
                 "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
                 "1,2,3");
    return 0;
}

TEST(file_that_commits_itself_is_not_recorded)
{
    char out[256], err[512];
    const char *ci = fresh_db(), *dir = fresh_dir();
    ASSERT(ci != NULL && dir != NULL);
    ASSERT(write_file(dir, "0001_commit.sql", "CREATE TABLE x (a int); COMMIT;") == 0);
    ASSERT_EQ_INT(RUN(ci, dir), TK_EDB);
    ASSERT_STR_HAS(err, "0001_commit.sql: the file ended the migration's transaction");
    ASSERT_QUERY(ci, "SELECT count(*) FROM schema_migrations", "0");
    return 0;
}

TEST(status_lists_applied_pending_and_orphans)
{
    char out[1024], err[512];
    const char *ci = fresh_db(), *dir = fresh_dir();
    ASSERT(ci != NULL && dir != NULL);
    ASSERT(write_file(dir, "0001_a.sql", "CREATE TABLE a (x int);") == 0);
    ASSERT(write_file(dir, "0002_b.sql", "CREATE TABLE b (x int);") == 0);

    /* Before any run: all pending, and looking creates nothing. */
    ASSERT_EQ_INT(STATUS(ci, dir), TK_OK);
    ASSERT_STR_EQ(out, "0001_a.sql  pending\n0002_b.sql  pending\n");
    ASSERT_QUERY(ci, "SELECT to_regclass('schema_migrations') IS NULL", "t");

    ASSERT_EQ_INT(RUN(ci, dir), TK_OK);
    ASSERT(write_file(dir, "0003_c.sql", "CREATE TABLE c (x int);") == 0);
    /* Only the number counts: a renamed file is still applied. */
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/0002_b.sql", dir);
    snprintf(to, sizeof to, "%s/0002_renamed.sql", dir);
    ASSERT(rename(from, to) == 0);
    /* Timestamps print in UTC whatever the session's time zone. */
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET timezone = 'America/New_York'",
             db_names[n_dbs - 1]);
    ASSERT(admin_exec(sql) == 0);
    ASSERT(exec_in(ci, "UPDATE schema_migrations SET applied_at = '2026-11-25 10:00:00+00'") == 0);
    ASSERT(exec_in(ci, "INSERT INTO schema_migrations VALUES "
                       "(5, '0005_old.sql', '2026-11-24 08:30:00+00')") == 0);

    ASSERT_EQ_INT(STATUS(ci, dir), TK_OK);
    ASSERT_STR_EQ(out,
                  "0001_a.sql  applied 2026-11-25 10:00:00+00\n"
                  "0002_renamed.sql  applied 2026-11-25 10:00:00+00\n"
                  "0003_c.sql  pending\n"
                  "warning: version 5 (recorded as 0005_old.sql) is applied but has no file\n");

    ASSERT_EQ_INT(RUN(ci, dir), TK_OK);
    ASSERT_STR_EQ(out, "applied 0003_c.sql\n");
    ASSERT_EQ_INT(STATUS(ci, dir), TK_OK);
    ASSERT_STR_HAS(out, "0003_c.sql  applied 2");
    ASSERT_STR_HASNT(out, "pending");
    ASSERT_EQ_INT(tk_db_migrate_status(ci, dir, NULL, err, sizeof err), TK_OK);
    return 0;
}

TEST(duplicate_numbers_rejected)
{
    char out[256], err[512];
    const char *ci = fresh_db(), *dir = fresh_dir();
    ASSERT(ci != NULL && dir != NULL);
    ASSERT(write_file(dir, "0001_a.sql", "CREATE TABLE a (x int);") == 0);
    ASSERT(write_file(dir, "0001_b.sql", "CREATE TABLE b (x int);") == 0);
    ASSERT(write_file(dir, "0002_c.sql", "CREATE TABLE c (x int);") == 0);

    ASSERT_EQ_INT(RUN(ci, dir), TK_ECONFIG);
    ASSERT_STR_EQ(out, "");
    ASSERT_STR_EQ(err, "duplicate migration number 1: 0001_a.sql and 0001_b.sql");
    ASSERT_EQ_INT(STATUS(ci, dir), TK_ECONFIG);
    ASSERT_STR_HAS(err, "0001_a.sql and 0001_b.sql");
    /* Rejected before connecting: the database is untouched. */
    ASSERT_QUERY(ci, "SELECT to_regclass('schema_migrations') IS NULL", "t");

    /* The number, not its spelling, identifies a migration. */
    ASSERT(remove_file(dir, "0001_b.sql") == 0);
    ASSERT(write_file(dir, "00001_z.sql", "CREATE TABLE z (x int);") == 0);
    ASSERT_EQ_INT(RUN(ci, dir), TK_ECONFIG);
    ASSERT_STR_EQ(err, "duplicate migration number 1: 00001_z.sql and 0001_a.sql");
    return 0;
}

TEST(bad_arguments_and_unreachable_database)
{
    char out[256], err[512];
    const char *ci = fresh_db(), *dir = fresh_dir();
    ASSERT(ci != NULL && dir != NULL);

    ASSERT_EQ_INT(tk_db_migrate_run(NULL, dir, NULL, err, sizeof err), TK_EINVAL);
    ASSERT_EQ_INT(tk_db_migrate_status(ci, NULL, NULL, err, sizeof err), TK_EINVAL);
    /* err may be NULL. */
    ASSERT_EQ_INT(tk_db_migrate_run(ci, dir, NULL, NULL, 0), TK_OK);

    ASSERT_EQ_INT(RUN(ci, "/nonexistent/tk_migrations"), TK_EIO);
    ASSERT_STR_HAS(err, "/nonexistent/tk_migrations");
    ASSERT_EQ_INT(STATUS(ci, "/nonexistent/tk_migrations"), TK_EIO);

    /* Nothing listens on port 1. The password must not leak into err. */
    const char *refused[] = {
        "host=127.0.0.1 port=1 user=nobody password=s3cretPW dbname=x connect_timeout=5",
        "postgresql://nobody:s3cretPW@127.0.0.1:1/x?connect_timeout=5",
    };
    for (size_t i = 0; i < 2; i++) {
        ASSERT_EQ_INT(RUN(refused[i], dir), TK_EUNAVAIL);
        ASSERT_STR_HAS(err, "cannot connect to database");
        ASSERT_STR_HASNT(err, "s3cretPW");
        ASSERT_STR_EQ(out, "");
        ASSERT_EQ_INT(STATUS(refused[i], dir), TK_EUNAVAIL);
        ASSERT_STR_HASNT(err, "s3cretPW");
    }
    /* libpq quotes the whole URI in some parse errors. */
    ASSERT_EQ_INT(RUN("postgresql://nobody:s3cretPW@[::1", dir), TK_ECONFIG);
    ASSERT_STR_HAS(err, "invalid connection string");
    ASSERT_STR_HASNT(err, "s3cretPW");
    ASSERT_EQ_INT(RUN("host=x password='s3cretPW", dir), TK_ECONFIG);
    ASSERT_STR_HASNT(err, "s3cretPW");
    return 0;
}

/* Four processes start at once on the same directory; the advisory lock must
 * make exactly one of them apply each file, the others find nothing to do. */
static int concurrency_round(void)
{
    enum { NCHILD = 4 };
    const char *ci = fresh_db(), *dir = fresh_dir(), *outdir = fresh_dir();
    int gate[2];
    pid_t pids[NCHILD];
    ASSERT(ci != NULL && dir != NULL && outdir != NULL);

    ASSERT(write_file(dir, "0001_t.sql",
                      "CREATE TABLE t (x int);\n"
                      "INSERT INTO t VALUES (1);\n"
                      "SELECT pg_sleep(0.3);\n") == 0);
    ASSERT(write_file(dir, "0002_bump.sql", "UPDATE t SET x = x + 1;") == 0);
    ASSERT(write_file(dir, "0003_u.sql",
                      "CREATE TABLE u (id int PRIMARY KEY);\n"
                      "INSERT INTO u VALUES (1);\n") == 0);
    /* and a plugin's, tracked apart, its 0001 beside the core's */
    char pdir[512], pmig[600], papplied[700];
    snprintf(pdir, sizeof pdir, "%s/plugins", outdir);
    snprintf(pmig, sizeof pmig, "%s/p", pdir);
    ASSERT(mkdir(pdir, 0700) == 0 && mkdir(pmig, 0700) == 0);
    snprintf(pmig, sizeof pmig, "%s/p/migrations", pdir);
    ASSERT(mkdir(pmig, 0700) == 0);
    ASSERT(write_file(pmig, "0001_p.sql",
                      "CREATE TABLE pt (x int);\n"
                      "INSERT INTO pt VALUES (1);\n"
                      "SELECT pg_sleep(0.2);\n") == 0);
    snprintf(papplied, sizeof papplied, "applied %s/0001_p.sql\n", pmig);

    ASSERT(pipe(gate) == 0);
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < NCHILD; i++) {
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0) {
            char path[512], err[512], b;
            close(gate[1]);
            /* Blocks until the parent closes the pipe: all start together. */
            while (read(gate[0], &b, 1) > 0)
                ;
            close(gate[0]);
            snprintf(path, sizeof path, "%s/out.%d", outdir, i);
            FILE *f = fopen(path, "w");
            if (f == NULL)
                exit(3);
            const char *names[] = {"p"};
            int rc = tk_db_migrate_run(ci, dir, f, err, sizeof err);
            if (rc == TK_OK)
                rc = tk_db_migrate_plugins(ci, pdir, names, 1, f, err, sizeof err);
            fclose(f);
            if (rc != TK_OK)
                fprintf(stderr, "child %d: %s: %s\n", i, tk_strerror(rc), err);
            exit(rc == TK_OK ? 0 : 1);
        }
    }
    close(gate[0]);
    usleep(100 * 1000);
    close(gate[1]);

    int failed = 0;
    for (int i = 0; i < NCHILD; i++) {
        int st = 0;
        ASSERT(waitpid(pids[i], &st, 0) == pids[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "child %d: status 0x%x\n", i, st);
            failed++;
        }
    }
    ASSERT_EQ_INT(failed, 0);

    /* Across all children: each file applied once, three found nothing
     * in the core and three nothing in the plugin. */
    int applied[4] = {0, 0, 0, 0}, up_to_date = 0;
    const char *names[4] = {"applied 0001_t.sql\n", "applied 0002_bump.sql\n",
                            "applied 0003_u.sql\n", papplied};
    for (int i = 0; i < NCHILD; i++) {
        char path[512], line[256];
        snprintf(path, sizeof path, "%s/out.%d", outdir, i);
        FILE *f = fopen(path, "r");
        ASSERT(f != NULL);
        while (fgets(line, sizeof line, f) != NULL) {
            for (int k = 0; k < 4; k++)
                applied[k] += strcmp(line, names[k]) == 0;
            up_to_date += strcmp(line, "up to date\n") == 0;
        }
        fclose(f);
    }
    ASSERT_EQ_INT(applied[0], 1);
    ASSERT_EQ_INT(applied[1], 1);
    ASSERT_EQ_INT(applied[2], 1);
    ASSERT_EQ_INT(applied[3], 1);
    ASSERT_EQ_INT(up_to_date, 2 * (NCHILD - 1));
    ASSERT_QUERY(ci, "SELECT count(*) FROM pt", "1");

    ASSERT_QUERY(ci, "SELECT count(*) FROM t", "1");
    ASSERT_QUERY(ci, "SELECT x FROM t", "2");
    ASSERT_QUERY(ci, "SELECT count(*) FROM u", "1");
    ASSERT_QUERY(ci,
                 "SELECT count(*) || '/' || count(DISTINCT version) FROM schema_migrations "
                 "WHERE plugin = ''",
                 "3/3");
    ASSERT_QUERY(ci,
                 "SELECT string_agg(version || ':' || name, ',') FROM schema_migrations "
                 "WHERE plugin = 'p'",
                 "1:0001_p.sql");
    return 0;
}

TEST(concurrent_runs_apply_each_file_once)
{
    for (int round = 0; round < 3; round++)
        if (concurrency_round() != 0)
            return 1;
    return 0;
}

/* Makes dir/<name>/migrations and returns its path in buf. */
static int plugin_dir(const char *dir, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir, name);
    if (mkdir(buf, 0700) != 0)
        return -1;
    snprintf(buf, len, "%s/%s/migrations", dir, name);
    return mkdir(buf, 0700);
}

static int capture_plugins(const char *ci, const char *dir, const char *const *names, size_t n,
                           char *out, size_t outlen, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        abort();
    int rc = tk_db_migrate_plugins(ci, dir, names, n, f, err, errlen);
    fclose(f);
    snprintf(out, outlen, "%s", buf);
    free(buf);
    return rc;
}

#define RUN_PLUGINS(ci, dir, names, n)                                                             \
    capture_plugins((ci), (dir), (names), (n), out, sizeof out, err, sizeof err)

TEST(plugin_migrations_are_tracked_per_plugin)
{
    char out[2048], err[1024], a[512], b[512], expect[2048];
    const char *ci = fresh_db(), *core = fresh_dir(), *plugins = fresh_dir();
    ASSERT(ci != NULL && core != NULL && plugins != NULL);
    ASSERT(write_file(core, "0001_core.sql", "CREATE TABLE core_t (id int PRIMARY KEY);") == 0);
    ASSERT(plugin_dir(plugins, "a", a, sizeof a) == 0);
    ASSERT(plugin_dir(plugins, "b", b, sizeof b) == 0);
    /* the same numbers in the core, in a and in b: three scopes */
    ASSERT(write_file(a, "0001_a.sql", "CREATE TABLE a_t (id int REFERENCES core_t (id));") == 0);
    ASSERT(write_file(a, "0002_a.sql", "ALTER TABLE a_t ADD COLUMN note text;") == 0);
    ASSERT(write_file(b, "0001_b.sql", "CREATE TABLE b_t (id int);") == 0);
    char nomig[512];
    snprintf(nomig, sizeof nomig, "%s/none", plugins); /* a plugin without migrations */
    ASSERT(mkdir(nomig, 0700) == 0);

    ASSERT_EQ_INT(RUN(ci, core), TK_OK);
    const char *names[] = {"a", "none", "b"};
    ASSERT_EQ_INT(RUN_PLUGINS(ci, plugins, names, 3), TK_OK);
    snprintf(expect, sizeof expect,
             "applied %s/0001_a.sql\napplied %s/0002_a.sql\n"
             "applied %s/0001_b.sql\n",
             a, a, b);
    ASSERT_STR_EQ(out, expect);
    ASSERT_QUERY(ci,
                 "SELECT string_agg(plugin || ':' || name, ',' ORDER BY plugin, version) "
                 "FROM schema_migrations",
                 ":0001_core.sql,a:0001_a.sql,a:0002_a.sql,b:0001_b.sql");
    ASSERT_EQ_INT(RUN_PLUGINS(ci, plugins, names, 3), TK_OK);
    ASSERT_STR_EQ(out, "up to date\n");
    /* the core's status lists the core's files only */
    ASSERT_EQ_INT(STATUS(ci, core), TK_OK);
    ASSERT_STR_HAS(out, "0001_core.sql  applied ");
    ASSERT_STR_HASNT(out, "warning"); /* the plugins' 0001 and 0002 are not the core's */
    ASSERT_STR_HASNT(out, "0002");
    return 0;
}

TEST(plugin_migration_failure_names_the_path_and_rolls_back)
{
    char out[2048], err[1024], a[512];
    const char *ci = fresh_db(), *plugins = fresh_dir();
    ASSERT(ci != NULL && plugins != NULL);
    ASSERT(plugin_dir(plugins, "a", a, sizeof a) == 0);
    ASSERT(write_file(a, "0001_a.sql", "CREATE TABLE a_t (id int);\nSELEC 1;\n") == 0);
    const char *names[] = {"a"};
    ASSERT_EQ_INT(RUN_PLUGINS(ci, plugins, names, 1), TK_EDB);
    ASSERT_STR_HAS(err, "/a/migrations/0001_a.sql: ");
    ASSERT_STR_HAS(err, "(line 2)");
    ASSERT_QUERY(ci, "SELECT to_regclass('a_t') IS NULL", "t");
    ASSERT_QUERY(ci, "SELECT count(*) FROM schema_migrations", "0");
    const char *bad[] = {"../x"};
    ASSERT_EQ_INT(RUN_PLUGINS(ci, plugins, bad, 1), TK_EINVAL);
    return 0;
}

/* A database migrated before plugins had migrations: its table has no
 * `plugin` column and version alone is the key. Nothing applied is run
 * again, and the table takes plugin rows afterwards. */
TEST(tracking_table_from_before_plugins_is_upgraded)
{
    char out[2048], err[1024], a[512];
    const char *ci = fresh_db(), *core = fresh_dir(), *plugins = fresh_dir();
    ASSERT(ci != NULL && core != NULL && plugins != NULL);
    ASSERT_EQ_INT(exec_in(ci, "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, "
                              "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); "
                              "INSERT INTO schema_migrations (version, name) "
                              "VALUES (1, '0001_old.sql')"),
                  0);
    ASSERT(write_file(core, "0001_old.sql", "THIS WOULD FAIL IF IT RAN") == 0);
    ASSERT(write_file(core, "0002_new.sql", "CREATE TABLE n (id int);") == 0);
    ASSERT_EQ_INT(STATUS(ci, core), TK_OK);
    ASSERT_STR_HAS(out, "0001_old.sql  applied ");
    ASSERT_STR_HAS(out, "0002_new.sql  pending");
    ASSERT_EQ_INT(RUN(ci, core), TK_OK);
    ASSERT_STR_EQ(out, "applied 0002_new.sql\n");
    ASSERT(plugin_dir(plugins, "a", a, sizeof a) == 0);
    ASSERT(write_file(a, "0001_a.sql", "CREATE TABLE a_t (id int);") == 0);
    const char *names[] = {"a"};
    ASSERT_EQ_INT(RUN_PLUGINS(ci, plugins, names, 1), TK_OK);
    ASSERT_QUERY(ci,
                 "SELECT string_agg(plugin || ':' || version, ',' ORDER BY plugin, version) "
                 "FROM schema_migrations",
                 ":1,:2,a:1");
    ASSERT_QUERY(ci,
                 "SELECT array_length(conkey, 1) FROM pg_constraint "
                 "WHERE conrelid = 'schema_migrations'::regclass AND contype = 'p'",
                 "2");
    ASSERT_EQ_INT(RUN(ci, core), TK_OK);
    ASSERT_STR_EQ(out, "up to date\n");
    return 0;
}

TEST(project_migrations_apply_twice)
{
    char out[4096], err[512], dir[1024];
    const char *src = getenv("TK_SOURCE_DIR");
    if (src == NULL || src[0] == '\0') {
        TEST_SKIP("TK_SOURCE_DIR not set");
    }
    snprintf(dir, sizeof dir, "%s/migrations", src);
    const char *ci = fresh_db();
    ASSERT(ci != NULL);

    int rc = RUN(ci, dir);
    if (rc != TK_OK)
        fprintf(stderr, "%s: %s\n", tk_strerror(rc), err);
    ASSERT_EQ_INT(rc, TK_OK);
    ASSERT_STR_HAS(out, "applied 0001_users.sql\n");
    ASSERT_QUERY(ci, "SELECT to_regclass('users') IS NOT NULL", "t");
    ASSERT_EQ_INT(RUN(ci, dir), TK_OK);
    ASSERT_STR_EQ(out, "up to date\n");
    ASSERT_EQ_INT(STATUS(ci, dir), TK_OK);
    ASSERT_STR_HAS(out, "0001_users.sql  applied ");
    ASSERT_STR_HASNT(out, "pending");
    ASSERT_STR_HASNT(out, "warning");
    return 0;
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    static const tk_test_entry tests[] = {
        TEST_ENTRY(applies_in_numeric_order_and_only_once),
        TEST_ENTRY(many_files_apply_in_order),
        TEST_ENTRY(empty_dir_creates_table_and_is_up_to_date),
        TEST_ENTRY(broken_file_rolls_back_and_names_file),
        TEST_ENTRY(file_that_commits_itself_is_not_recorded),
        TEST_ENTRY(status_lists_applied_pending_and_orphans),
        TEST_ENTRY(duplicate_numbers_rejected),
        TEST_ENTRY(bad_arguments_and_unreachable_database),
        TEST_ENTRY(concurrent_runs_apply_each_file_once),
        TEST_ENTRY(plugin_migrations_are_tracked_per_plugin),
        TEST_ENTRY(plugin_migration_failure_names_the_path_and_rolls_back),
        TEST_ENTRY(tracking_table_from_before_plugins_is_upgraded),
        TEST_ENTRY(project_migrations_apply_twice),
    };

    base_url = getenv("TEST_DATABASE_URL");
    if (base_url == NULL || base_url[0] == '\0') {
        printf("skipped: TEST_DATABASE_URL not set\n");
        return TEST_SKIP_CODE;
    }
    int rc = tk_test_run_all(tests, sizeof tests / sizeof tests[0]);
    cleanup();
    return rc;
}
