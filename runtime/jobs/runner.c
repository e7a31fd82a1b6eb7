/* The job runner: two lanes, each a thread that polls, claims one due job,
 * runs it and records the outcome. The mail lane takes only `email` jobs and
 * the other lane everything else, so mail (a verification or reset link a
 * user is waiting for) never queues behind a webhook receiver that takes its
 * full timeout to answer. A claim is one committed statement that counts the
 * attempt and leases the row (run_at moves JOB_LEASE_MS ahead): no
 * transaction and no pool connection is held while the job talks to the
 * network, and a process killed mid-job leaves a row that runs again when
 * its lease ends. The outcome is recorded after, only by the claim that
 * still holds the row (same attempt count). Kinds: `email`, the runner's
 * own (sent over SMTP, or written to MAIL_DIR without SMTP_URL; jobs/mail.c
 * builds and delivers), and every other kind, run by the Lua handler a
 * script or plugin registered for it (lib.jobs.handle) in the other lane's
 * VM of the current script generation, with the primitives tk.http (an
 * outbound POST with the private-address guard, jobs/http.c) and
 * tk.auth.hmac_sha256. Webhook delivery is such a handler (plugins/webhooks).
 * The other lane claims only the kinds that VM has a handler for
 * (lib.jobs.kinds, read again with every generation): a job of a kind this
 * instance does not handle (a plugin enabled elsewhere, a rolling deploy)
 * stays pending, attempts untouched, for an instance that does, and shows
 * in the gauge taskapi_jobs_unhandled{kind} and one warning per kind. */
#include "jobs/runner.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "jobs/mail.h"
#include "lua/vm.h"
#include "obs/log.h"
#include "obs/metrics.h"

/* One lane: a thread taking the jobs its TAKE statement selects. */
typedef struct {
    tk_jobs *jobs;
    const char *name;
    const char *take_sql;
    pthread_t thread;
    int started;
    time_t backlog_read_at; /* CLOCK_MONOTONIC seconds; 0: never */
    void *vm;               /* job_vm * of the other lane (Lua kinds); NULL for mail */
    /* The unhandled kinds warned about (other lane): once per kind and
     * generation of the VM (warned_gen), not at every reading. */
    char **warned;
    int nwarned, warned_gen;
} lane;

enum { LANE_MAIL, LANE_OTHER, LANE_COUNT };

struct tk_jobs {
    const tk_config *cfg;
    tk_db_pool *pool;
    tk_jobs_generation_fn current; /* the current scripts, for the Lua handlers */
    void *current_ud;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    lane lanes[LANE_COUNT];
};

/* Columns of the TAKE statements. */
enum {
    COL_ID,
    COL_KIND,
    COL_ATTEMPTS,
    COL_MAX_ATTEMPTS,
    COL_MAIL_TO,
    COL_SUBJECT,
    COL_TEMPLATE,
    COL_HTML,
    COL_WEBHOOK_ID,
    COL_EVENT,
    COL_BODY,
    COL_DISABLE_AFTER,
    COL_ALLOW_PRIVATE,
    COL_TO_NAME,
    COL_TEXT,
    COL_PAYLOAD
};

/* What both lanes claim: the due job that comes first (run_at, id) among
 * the lane's kinds. The claim is its own (autocommitted) statement: it
 * counts the attempt and leases the row for $1 ms, so `attempts` below is
 * this attempt's number. */
#define CLAIM_HEAD                                                                                 \
    "UPDATE jobs SET attempts = attempts + 1, "                                                    \
    "run_at = clock_timestamp() + make_interval(secs => $1::float8 / 1000) WHERE id = "
#define CLAIM_TAIL                                                                                 \
    " RETURNING id, kind, attempts, max_attempts, payload->>'to' AS mail_to, "                     \
    "payload->>'subject' AS subject, payload->>'template' AS template, "                           \
    "payload->>'html' AS html, payload->>'webhookId' AS webhook_id, "                              \
    "payload->>'event' AS event, payload->>'body' AS body, "                                       \
    "payload->>'disableAfter' AS disable_after, payload->>'allowPrivate' AS allow_private, "       \
    "payload->>'toName' AS to_name, payload->>'text' AS text, payload::text AS payload "
/* The first due job of one kind, locked: the head of that kind in
 * jobs_pending_kind_idx (kind, run_at, id) WHERE status = 'pending'. */
#define FIRST_DUE(kind)                                                                            \
    "SELECT id, run_at FROM jobs WHERE status = 'pending' AND kind = " kind                        \
    " AND run_at <= now() "                                                                        \
    "ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"

/* The mail lane: kind 'email'. The other lane: $2, a text[] of the kinds
 * its VM handles (never 'email': lib.jobs.handle refuses it), each kind's
 * first due job, then the earliest of those. One index probe per kind,
 * however many due jobs of other kinds (or of its own) wait: `kind =
 * ANY($2)` in one scan would read every due job of its kinds to sort them.
 * Each kind's head is locked while the statement runs, the one taken kept. */
static const char TAKE_MAIL_SQL[] =
    CLAIM_HEAD "(SELECT f.id FROM (" FIRST_DUE("'email'") ") f)" CLAIM_TAIL;
static const char TAKE_OTHER_SQL[] =
    CLAIM_HEAD "(SELECT c.id FROM unnest($2::text[]) AS k(kind) CROSS JOIN LATERAL "
               "(" FIRST_DUE("k.kind") ") c ORDER BY c.run_at, c.id LIMIT 1)" CLAIM_TAIL;

/* The settle statements: $1 the job, $2 the attempt the claim counted. A
 * row whose lease ran out and was claimed again has another count and is
 * left to that claim. Times are clock_timestamp(), when the attempt ended. */
#define HELD " WHERE id = $1 AND attempts = $2::integer AND status = 'pending'"
static const char DONE_SQL[] =
    "UPDATE jobs SET status = 'done', finished_at = clock_timestamp(), last_error = NULL" HELD;

/* Backoff: JOB_BACKOFF_BASE_MS after the first failure, doubling after each
 * one, at most an hour. The last attempt fails the job for good. */
static const char RETRY_SQL[] =
    "UPDATE jobs SET last_error = $3, "
    "status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END, "
    "finished_at = CASE WHEN attempts >= max_attempts THEN clock_timestamp() END, "
    "run_at = clock_timestamp() + make_interval(secs => least(3600.0, "
    "$4::float8 / 1000 * power(2, least(attempts - 1, 30))))" HELD;

/* A job that will never run: its target is gone or switched off. Nothing
 * was attempted, so the claim's count is taken back. */
static const char CANCEL_SQL[] = "UPDATE jobs SET status = 'failed', attempts = attempts - 1, "
                                 "last_error = $3, finished_at = clock_timestamp()" HELD;

/* A job whose attempt failed and that must not be tried again. */
static const char GIVE_UP_SQL[] =
    "UPDATE jobs SET status = 'failed', last_error = $3, finished_at = clock_timestamp()" HELD;

/* ---- email --------------------------------------------------------------- */

/* DONE: delivered. RETRY: this attempt failed, try again later (or fail
 * for good after max_attempts). GIVE_UP: this attempt failed, never again.
 * CANCEL: nothing was attempted and nothing will be. */
typedef enum { OUTCOME_DONE, OUTCOME_RETRY, OUTCOME_GIVE_UP, OUTCOME_CANCEL } outcome;

/* Delivers one email job: builds the message (jobs/mail.c) and hands it to
 * the SMTP server, or writes it into MAIL_DIR when there is none. The log
 * names the recipient and the subject only: the body carries one-time links. */
static outcome run_email(const tk_config *cfg, PGresult *r, char *why, size_t whylen)
{
    const char *id = PQgetvalue(r, 0, COL_ID);
    const char *to = PQgetvalue(r, 0, COL_MAIL_TO);
    const char *subject = PQgetvalue(r, 0, COL_SUBJECT);
    const char *tmpl = PQgetvalue(r, 0, COL_TEMPLATE);
    if (*to == '\0') {
        tk_errf(why, whylen, "email job without a recipient");
        tk_metrics_mail(TK_METRICS_MAIL_DROPPED);
        return OUTCOME_GIVE_UP;
    }
    if (cfg->mail_disabled) {
        tk_log_info("mail: %s to %s \"%s\" not sent: MAIL_DISABLED is on (job %s)", tmpl, to,
                    subject, id);
        tk_errf(why, whylen, "not sent: MAIL_DISABLED is on");
        tk_metrics_mail(TK_METRICS_MAIL_DROPPED);
        return OUTCOME_CANCEL;
    }
    tk_mail_msg m = {.from = cfg->mail_from,
                     .to = to,
                     .to_name = PQgetvalue(r, 0, COL_TO_NAME),
                     .subject = subject,
                     .text = PQgetvalue(r, 0, COL_TEXT),
                     .html = PQgetvalue(r, 0, COL_HTML)};
    char *msg = NULL;
    size_t len = 0;
    int rc = tk_mail_build(&m, time(NULL), &msg, &len, why, whylen);
    if (rc != TK_OK) {
        tk_metrics_mail(rc == TK_EINVAL ? TK_METRICS_MAIL_DROPPED : TK_METRICS_MAIL_FAILED);
        return rc == TK_EINVAL ? OUTCOME_GIVE_UP : OUTCOME_RETRY; /* bad input never improves */
    }
    char e[512] = "";
    outcome oc = OUTCOME_RETRY;
    if (cfg->smtp_url) {
        long code = 0;
        if (tk_mail_send_smtp(cfg, cfg->mail_from, to, msg, len, &code, e, sizeof e) == TK_OK) {
            tk_log_info("mail: %s to %s \"%s\" accepted by the SMTP server (job %s)", tmpl, to,
                        subject, id);
            tk_metrics_mail(TK_METRICS_MAIL_SMTP);
            oc = OUTCOME_DONE;
        } else {
            tk_errf(why, whylen, "SMTP: %s", e);
            tk_metrics_mail(TK_METRICS_MAIL_FAILED);
        }
    } else {
        char path[4096];
        if (tk_mail_write_dir(cfg->mail_dir, msg, len, path, sizeof path, e, sizeof e) == TK_OK) {
            tk_log_info("mail: %s to %s \"%s\" written to %s (job %s)", tmpl, to, subject, path,
                        id);
            tk_metrics_mail(TK_METRICS_MAIL_MAILBOX);
            oc = OUTCOME_DONE;
        } else {
            tk_errf(why, whylen, "MAIL_DIR: %s", e);
            tk_metrics_mail(TK_METRICS_MAIL_FAILED);
        }
    }
    free(msg);
    return oc;
}

/* ---- Lua handlers ----------------------------------------------------------- */

/* The other lane's VM, of the generation `gen`; rebuilt when the current
 * generation changes (a reload), so handlers run the scripts HTTP runs. */
typedef struct {
    tk_lua_vm *vm;
    int gen;
    int failed_gen;   /* the generation whose VM failed to load (logged once) */
    time_t failed_at; /* CLOCK_MONOTONIC seconds of that failure: retried after LOAD_RETRY_S */
    /* The kinds vm has handlers for, a text[] literal for the claim's $2
     * ("{}": none, or no VM of the current generation); nkinds of them. */
    char *kinds;
    int nkinds;
} job_vm;

#define LOAD_RETRY_S 5

static time_t monotonic_s(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec;
}

/* Run in a pcall: leaves lib.jobs.kinds() as a text[] literal ({"a","b.c"})
 * and its length. */
static int call_kinds(lua_State *L)
{
    lua_settop(L, 0);
    lua_getglobal(L, "require");    /* +1 */
    lua_pushliteral(L, "lib.jobs"); /* +1 */
    lua_call(L, 1, 1);              /* -2 +1 module */
    lua_getfield(L, -1, "kinds");   /* +1 kinds */
    lua_call(L, 0, 1);              /* -1 +1 list */
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_Buffer b;
    luaL_buffinit(L, &b); /* uses the stack above the list */
    luaL_addchar(&b, '{');
    lua_Integer n = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        size_t len = 0;
        const char *k = lua_tolstring(L, -1, &len);
        if (k == NULL || len == 0)
            return luaL_error(L, "lib.jobs.kinds(): entry %d is not a kind", (int)i);
        char q[2 * 64 + 3], *w = q; /* kinds are at most 64 characters (jobs_kind_check) */
        if (len > 64)
            return luaL_error(L, "lib.jobs.kinds(): entry %d is too long", (int)i);
        *w++ = '"';
        for (size_t c = 0; c < len; c++) {
            if (k[c] == '"' || k[c] == '\\')
                *w++ = '\\';
            *w++ = k[c];
        }
        *w++ = '"';
        lua_pop(L, 1);
        if (i > 1)
            luaL_addchar(&b, ',');
        luaL_addlstring(&b, q, (size_t)(w - q));
    }
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

/* Reads the kinds vm handles into jv (none when it cannot: logged). */
static void job_vm_read_kinds(job_vm *jv, int gen)
{
    free(jv->kinds);
    jv->kinds = NULL;
    jv->nkinds = 0;
    if (jv->vm == NULL)
        return;
    lua_State *L = tk_lua_vm_state(jv->vm);
    tk_lua_vm_begin_request(jv->vm);
    lua_settop(L, 0);
    lua_pushcfunction(L, call_kinds);
    if (lua_pcall(L, 0, 2, 0) != LUA_OK) {
        const char *e = lua_tostring(L, -1);
        tk_log_error("jobs: cannot read the job kinds of generation %d: %s; no job but mail runs",
                     gen, e ? e : "a Lua error");
    } else if ((jv->kinds = strdup(lua_tostring(L, -2))) != NULL) {
        jv->nkinds = (int)lua_tointeger(L, -1);
        tk_log_info("jobs: generation %d handles %d job kind(s): %s", gen, jv->nkinds, jv->kinds);
    }
    lua_settop(L, 0);
}

/* Makes sure jv holds a VM of the current generation and its kinds.
 * Returns 0, or a TK_E* code with the reason in err; then the lane claims
 * nothing until it loads (tried again every LOAD_RETRY_S). */
static int job_vm_current(tk_jobs *j, job_vm *jv, char *err, size_t errlen)
{
    int gen = 0;
    tk_snapshot *snap = j->current(j->current_ud, &gen);
    if (snap == NULL) {
        tk_errf(err, errlen, "no script generation");
        return TK_EUNAVAIL;
    }
    int rc = TK_OK;
    if (jv->vm == NULL || jv->gen != gen) {
        if (jv->failed_gen == gen && monotonic_s() - jv->failed_at < LOAD_RETRY_S) {
            tk_errf(err, errlen, "the scripts of generation %d did not load", gen);
            tk_snapshot_free(snap);
            return TK_ELUA;
        }
        tk_lua_vm *vm = NULL;
        rc = tk_lua_vm_new_from(j->cfg, j->pool, TK_JOBS_LUA_WORKER, snap, &vm, err, errlen);
        if (rc == TK_OK) {
            tk_lua_vm_free(jv->vm);
            jv->vm = vm;
            jv->gen = gen;
            jv->failed_gen = 0;
            job_vm_read_kinds(jv, gen);
        } else {
            if (jv->failed_gen != gen)
                tk_log_error("jobs: the scripts of generation %d did not load for the job "
                             "runner: %s; no job but mail runs until they do",
                             gen, err);
            jv->failed_gen = gen;
            jv->failed_at = monotonic_s();
            /* the old generation's VM is not used: its handlers are not the current ones */
            free(jv->kinds);
            jv->kinds = NULL;
            jv->nkinds = 0;
        }
    }
    tk_snapshot_free(snap);
    return rc;
}

/* Run in a pcall: lib.jobs.run(kind, payload, id, attempt, max_attempts);
 * leaves its two results. */
static int call_run(lua_State *L)
{
    PGresult *job = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_getglobal(L, "require");                                     /* +1 */
    lua_pushliteral(L, "lib.jobs");                                  /* +1 */
    lua_call(L, 1, 1);                                               /* -2 +1 module */
    lua_getfield(L, -1, "run");                                      /* +1 run */
    lua_pushstring(L, PQgetvalue(job, 0, COL_KIND));                 /* +1 */
    lua_pushstring(L, PQgetvalue(job, 0, COL_PAYLOAD));              /* +1 */
    lua_pushinteger(L, atoll(PQgetvalue(job, 0, COL_ID)));           /* +1 */
    lua_pushinteger(L, atoll(PQgetvalue(job, 0, COL_ATTEMPTS)));     /* +1 */
    lua_pushinteger(L, atoll(PQgetvalue(job, 0, COL_MAX_ATTEMPTS))); /* +1 */
    lua_call(L, 5, 2);                                               /* -6 +2 outcome, reason */
    return 2;
}

/* Runs a claimed job of a Lua kind in jv, the VM whose kinds claimed it
 * (even if a reload made another generation current since). *unknown is set
 * when no handler takes the kind after all (lib.jobs changed under it: an
 * error, logged and retried). */
static outcome run_lua(job_vm *jv, PGresult *job, int *unknown, char *why, size_t whylen)
{
    *unknown = 0;
    lua_State *L = tk_lua_vm_state(jv->vm);
    tk_lua_vm_begin_request(jv->vm); /* a fresh instruction budget per job */
    lua_settop(L, 0);
    lua_pushcfunction(L, call_run); /* +1 */
    lua_pushlightuserdata(L, job);  /* +1 */
    outcome oc = OUTCOME_RETRY;
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) { /* -2 +1 error */
        const char *e = lua_tostring(L, -1);
        tk_errf(why, whylen, "%s", e ? e : "a Lua error");
        lua_settop(L, 0);
        return OUTCOME_RETRY;
    }
    const char *what = lua_tostring(L, -2), *reason = lua_tostring(L, -1);
    tk_errf(why, whylen, "%s", reason ? reason : "");
    if (what == NULL || strcmp(what, "retry") == 0)
        oc = OUTCOME_RETRY;
    else if (strcmp(what, "done") == 0)
        oc = OUTCOME_DONE;
    else if (strcmp(what, "give_up") == 0)
        oc = OUTCOME_GIVE_UP;
    else if (strcmp(what, "cancel") == 0)
        oc = OUTCOME_CANCEL;
    else if (strcmp(what, "unknown") == 0)
        *unknown = 1;
    lua_settop(L, 0);
    return oc;
}

/* ---- the loop ------------------------------------------------------------- */

/* Claims one job with take_sql (its $2: kinds, a text[] literal, or NULL
 * for the mail lane's): 1 with *job set (the caller PQclears it), 0 if none
 * was due, <0 on a database failure. The pool connection is held for that
 * one statement. */
static int claim(const tk_config *cfg, tk_db_pool *pool, const char *take_sql, const char *kinds,
                 PGresult **job)
{
    char err[512], lease[24];
    tk_db_conn *c = NULL;
    *job = NULL;
    if (tk_db_pool_acquire(pool, 1000, &c, err, sizeof err) != TK_OK)
        return TK_EUNAVAIL;
    snprintf(lease, sizeof lease, "%d", cfg->job_lease_ms);
    const char *params[2] = {lease, kinds};
    PGresult *r = tk_db_conn_exec(c, take_sql, kinds ? 2 : 1, params, NULL);
    tk_db_pool_release(pool, c);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        tk_log_warn("jobs: cannot take a job: %s", r ? PQresultErrorMessage(r) : "connection lost");
        PQclear(r);
        return TK_EDB;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    *job = r;
    return 1;
}

/* Records the outcome of a claimed job. Returns 0 or a TK_E* code;
 * *settled is 0 when the claim no longer held the row. */
static int settle(const tk_config *cfg, tk_db_pool *pool, PGresult *job, const outcome *oc,
                  const char *why, int *settled)
{
    char err[512], base[24];
    tk_db_conn *c = NULL;
    PGresult *r = NULL;
    int rc;
    *settled = 0;
    if ((rc = tk_db_pool_acquire(pool, 5000, &c, err, sizeof err)) != TK_OK) {
        tk_log_warn("jobs: cannot record job %s: %s", PQgetvalue(job, 0, COL_ID), err);
        return rc;
    }
    if ((rc = tk_db_conn_command(c, "BEGIN", err, sizeof err)) != TK_OK)
        goto out;
    snprintf(base, sizeof base, "%d", cfg->job_backoff_base_ms);
    const char *params[4] = {PQgetvalue(job, 0, COL_ID), PQgetvalue(job, 0, COL_ATTEMPTS), why,
                             base};
    static const struct {
        const char *sql;
        int nparams;
    } sql[] = {[OUTCOME_DONE] = {DONE_SQL, 2},
               [OUTCOME_RETRY] = {RETRY_SQL, 4},
               [OUTCOME_GIVE_UP] = {GIVE_UP_SQL, 3},
               [OUTCOME_CANCEL] = {CANCEL_SQL, 3}};
    r = tk_db_conn_exec(c, sql[*oc].sql, sql[*oc].nparams, params, NULL);
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        tk_log_warn("jobs: cannot record job %s: %s", params[0],
                    r ? PQresultErrorMessage(r) : "connection lost");
        rc = TK_EDB;
        goto rollback;
    }
    if (strcmp(PQcmdTuples(r), "1") != 0) {
        /* the lease ran out and another claim holds the row: its outcome
         * counts; what this attempt recorded goes too */
        tk_log_warn("jobs: job %s: the lease (JOB_LEASE_MS) ran out before attempt %s ended; "
                    "its outcome is dropped",
                    params[0], params[1]);
        goto rollback;
    }
    rc = tk_db_conn_commit(c, err, sizeof err);
    if (rc != TK_OK)
        tk_log_warn("jobs: cannot commit job %s: %s", params[0], err);
    *settled = rc == TK_OK;
    goto out;
rollback:
    if (!tk_db_conn_broken(c) && tk_db_conn_command(c, "ROLLBACK", err, sizeof err) != TK_OK)
        tk_log_warn("jobs: rollback failed: %s", err);
out:
    PQclear(r);
    tk_db_pool_release(pool, c);
    return rc;
}

/* Claims and runs one job for lane ln. Returns 1 if a job ran, 0 if none
 * was due, <0 on a database failure. */
static int run_one(lane *ln)
{
    tk_jobs *j = ln->jobs;
    const tk_config *cfg = j->cfg;
    PGresult *job = NULL;
    job_vm *jv = ln->vm;
    if (jv != NULL) {
        char err[512];
        if (job_vm_current(j, jv, err, sizeof err) != TK_OK || jv->nkinds == 0)
            return 0; /* no kind to claim: every due job waits for another instance */
    }
    int rc = claim(cfg, j->pool, ln->take_sql, jv ? jv->kinds : NULL, &job);
    if (rc <= 0)
        return rc;
    const char *id = PQgetvalue(job, 0, COL_ID);
    int attempt = atoi(PQgetvalue(job, 0, COL_ATTEMPTS));
    int max_attempts = atoi(PQgetvalue(job, 0, COL_MAX_ATTEMPTS));
    int last_attempt = attempt >= max_attempts;
    const char *kind = PQgetvalue(job, 0, COL_KIND);
    char why[512] = "";
    outcome oc;
    int unknown = 0;
    if (attempt > max_attempts) {
        /* its last attempt's lease ran out (the process died mid-job) */
        tk_errf(why, sizeof why, "the last attempt never finished (lease ran out)");
        oc = OUTCOME_GIVE_UP;
    } else if (strcmp(kind, "email") == 0) {
        oc = run_email(cfg, job, why, sizeof why);
    } else if (jv != NULL) {
        oc = run_lua(jv, job, &unknown, why, sizeof why);
    } else {
        tk_errf(why, sizeof why, "job kind '%s' reached the mail lane", kind);
        oc = OUTCOME_RETRY;
    }
    int settled = 0;
    rc = settle(cfg, j->pool, job, &oc, why, &settled);
    if (settled) {
        if (unknown)
            tk_log_error("jobs: job %s: %s; retried with backoff", id, why);
        else if (oc == OUTCOME_RETRY)
            tk_log_warn("jobs: job %s (%s) failed: %s", id, kind, why);
        else if (oc == OUTCOME_GIVE_UP || oc == OUTCOME_CANCEL)
            tk_log_info("jobs: job %s (%s) given up: %s", id, kind, why);
        static const tk_metrics_job_outcome counted[] = {[OUTCOME_DONE] = TK_METRICS_JOB_DONE,
                                                         [OUTCOME_RETRY] = TK_METRICS_JOB_RETRY,
                                                         [OUTCOME_GIVE_UP] = TK_METRICS_JOB_FAILED,
                                                         [OUTCOME_CANCEL] =
                                                             TK_METRICS_JOB_CANCELLED};
        tk_metrics_job(oc == OUTCOME_RETRY && last_attempt ? TK_METRICS_JOB_FAILED : counted[oc]);
    }
    PQclear(job);
    return rc != TK_OK ? rc : 1;
}

/* The backlog gauges (metrics.h), read by the other lane every
 * BACKLOG_EVERY_S, per kind in one statement: the due count and the oldest
 * due job over every kind, and taskapi_jobs_unhandled for the kinds this
 * instance handles neither in the mail lane nor in its VM ($1, the claim's
 * text[]). It reads jobs_pending_kind_idx alone (kind and run_at are in
 * it; the status is its condition): cheap however many finished jobs the
 * table keeps. */
#define BACKLOG_EVERY_S 5
#define MAX_UNHANDLED_KINDS 100 /* series of taskapi_jobs_unhandled; more are summed only */
static const char BACKLOG_SQL[] =
    "SELECT kind, count(*), coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8, "
    "kind = 'email' OR kind = ANY($1::text[]) "
    "FROM jobs WHERE status = 'pending' AND run_at <= now() GROUP BY kind ORDER BY kind";

static int listed(char *const *list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

static void free_list(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* One warning per unhandled kind and generation. */
static void warn_unhandled(lane *ln, const char *kind, long long due, int gen)
{
    if (ln->warned_gen != gen) {
        free_list(ln->warned, ln->nwarned);
        ln->warned = NULL;
        ln->nwarned = 0;
        ln->warned_gen = gen;
    }
    if (listed(ln->warned, ln->nwarned, kind))
        return;
    tk_log_warn("jobs: %lld due job(s) of kind '%s' wait: no handler here takes that kind "
                "(jobs.handle); they run on an instance that has one (taskapi_jobs_unhandled)",
                due, kind);
    if (ln->nwarned == MAX_UNHANDLED_KINDS)
        return;
    if (ln->warned == NULL &&
        (ln->warned = calloc(MAX_UNHANDLED_KINDS, sizeof *ln->warned)) == NULL)
        return;
    if ((ln->warned[ln->nwarned] = strdup(kind)) != NULL)
        ln->nwarned++;
}

static void read_backlog(lane *ln)
{
    tk_jobs *j = ln->jobs;
    const job_vm *jv = ln->vm;
    char err[256];
    tk_db_conn *c = NULL;
    if (tk_db_pool_acquire(j->pool, 1000, &c, err, sizeof err) != TK_OK)
        return;
    const char *params[1] = {jv->kinds ? jv->kinds : "{}"};
    PGresult *r = tk_db_conn_exec(c, BACKLOG_SQL, 1, params, NULL);
    tk_db_pool_release(j->pool, c);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return;
    }
    int rows = PQntuples(r), n = 0;
    long long due = 0;
    double oldest = 0;
    const char *kinds[MAX_UNHANDLED_KINDS];
    long long counts[MAX_UNHANDLED_KINDS];
    for (int i = 0; i < rows; i++) {
        long long k_due = atoll(PQgetvalue(r, i, 1));
        double k_oldest = atof(PQgetvalue(r, i, 2));
        due += k_due;
        if (k_oldest > oldest)
            oldest = k_oldest;
        if (strcmp(PQgetvalue(r, i, 3), "t") == 0 || n == MAX_UNHANDLED_KINDS)
            continue;
        kinds[n] = PQgetvalue(r, i, 0);
        counts[n] = k_due;
        warn_unhandled(ln, kinds[n], k_due, jv->kinds ? jv->gen : -1);
        n++;
    }
    tk_metrics_job_backlog(due, oldest);
    tk_metrics_job_unhandled(kinds, counts, n);
    PQclear(r);
}

static void *lane_main(void *arg)
{
    lane *ln = arg;
    tk_jobs *j = ln->jobs;
    int was_down = 0;
    for (;;) {
        int rc;
        while ((rc = run_one(ln)) == 1) {
            pthread_mutex_lock(&j->mu);
            int stop = j->stopping;
            pthread_mutex_unlock(&j->mu);
            if (stop)
                break;
        }
        if (rc < 0 && !was_down)
            tk_log_warn("jobs: %s lane: database unavailable; will retry", ln->name);
        else if (rc >= 0 && was_down)
            tk_log_info("jobs: %s lane: database back", ln->name);
        was_down = rc < 0;
        if (ln == &j->lanes[LANE_OTHER] && rc >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (ln->backlog_read_at == 0 || now.tv_sec - ln->backlog_read_at >= BACKLOG_EVERY_S) {
                read_backlog(ln);
                ln->backlog_read_at = now.tv_sec;
            }
        }

        pthread_mutex_lock(&j->mu);
        if (!j->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long ns = ts.tv_nsec + (long)j->cfg->job_poll_ms * 1000000L;
            ts.tv_sec += ns / 1000000000L;
            ts.tv_nsec = ns % 1000000000L;
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        }
        int stop = j->stopping;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            break;
    }
    return NULL;
}

/* One start-up line on where mail goes (never the SMTP URL's credentials). */
static void log_mail_setup(const tk_config *cfg)
{
    if (cfg->mail_disabled) {
        tk_log_warn("mail: MAIL_DISABLED is on: no mail is sent (verification, reset, notices)");
    } else if (cfg->smtp_url) {
        char where[300];
        tk_mail_url_redact(cfg->smtp_url, where, sizeof where);
        int tls = strncasecmp(cfg->smtp_url, "smtps://", 8) == 0;
        tk_log_info("mail: SMTP via %s (%s)", where,
                    tls                                              ? "TLS"
                    : cfg->smtp_starttls == TK_SMTP_STARTTLS_REQUIRE ? "STARTTLS required"
                    : cfg->smtp_starttls == TK_SMTP_STARTTLS_TRY     ? "STARTTLS when offered"
                                                                     : "no TLS");
    } else {
        tk_log_info("mail: no SMTP_URL; mails are written to %s/ (one .eml file each)",
                    cfg->mail_dir);
    }
}

int tk_jobs_start(const tk_config *cfg, tk_db_pool *pool, tk_jobs_generation_fn current,
                  void *current_ud, tk_jobs **out)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return TK_EIO;
    log_mail_setup(cfg);
    tk_jobs *j = calloc(1, sizeof *j);
    if (j == NULL) {
        curl_global_cleanup();
        return TK_ENOMEM;
    }
    j->cfg = cfg;
    j->pool = pool;
    j->current = current;
    j->current_ud = current_ud;
    static job_vm none;
    job_vm *jv = malloc(sizeof *jv);
    if (jv == NULL) {
        free(j);
        curl_global_cleanup();
        return TK_ENOMEM;
    }
    *jv = none;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->lanes[LANE_MAIL] = (lane){.jobs = j, .name = "mail", .take_sql = TAKE_MAIL_SQL};
    j->lanes[LANE_OTHER] = (lane){.jobs = j, .name = "other", .take_sql = TAKE_OTHER_SQL, .vm = jv};
    for (int i = 0; i < LANE_COUNT; i++) {
        if (pthread_create(&j->lanes[i].thread, NULL, lane_main, &j->lanes[i]) != 0) {
            tk_jobs_stop(j); /* joins the lanes already started, frees j */
            return TK_EIO;
        }
        j->lanes[i].started = 1;
    }
    *out = j;
    return TK_OK;
}

void tk_jobs_stop(tk_jobs *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    j->stopping = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < LANE_COUNT; i++)
        if (j->lanes[i].started)
            pthread_join(j->lanes[i].thread, NULL);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    job_vm *jv = j->lanes[LANE_OTHER].vm;
    if (jv != NULL) {
        tk_lua_vm_free(jv->vm);
        free(jv->kinds);
    }
    free(jv);
    free_list(j->lanes[LANE_OTHER].warned, j->lanes[LANE_OTHER].nwarned);
    free(j);
    curl_global_cleanup();
}
