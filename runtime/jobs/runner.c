/* The job runner: two lanes, each a thread that polls, claims one due job,
 * runs it and records the outcome. The mail lane takes only `email` jobs and
 * the other lane everything else, so mail (a verification or reset link a
 * user is waiting for) never queues behind a webhook receiver that takes its
 * full timeout to answer. A claim is one committed statement that counts the
 * attempt and leases the row (run_at moves JOB_LEASE_MS ahead): no
 * transaction and no pool connection is held while the job talks to the
 * network, and a process killed mid-job leaves a row that runs again when
 * its lease ends. The outcome is recorded after, only by the claim that
 * still holds the row (same attempt count). Kinds: `email` (sent over SMTP,
 * or written to MAIL_DIR without SMTP_URL; jobs/mail.c builds and delivers)
 * and `webhook` (a signed HTTP POST through libcurl; the attempt is recorded
 * in webhook_deliveries, and the webhook's failure counter updated, in the
 * transaction that settles the job row). Which webhooks exist and which
 * events they get is the webhooks plugin's business. */
#include "jobs/runner.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "auth/auth.h"
#include "jobs/addr_guard.h"
#include "jobs/mail.h"
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
} lane;

enum { LANE_MAIL, LANE_OTHER, LANE_COUNT };

struct tk_jobs {
    const tk_config *cfg;
    tk_db_pool *pool;
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
    COL_TEXT
};

/* What both lanes claim; the lanes differ only in the kind filter. The
 * claim is its own (autocommitted) statement: it counts the attempt and
 * leases the row for $1 ms, so `attempts` below is this attempt's number. */
#define CLAIM_HEAD                                                                                 \
    "UPDATE jobs SET attempts = attempts + 1, "                                                    \
    "run_at = clock_timestamp() + make_interval(secs => $1::float8 / 1000) "                       \
    "WHERE id = (SELECT id FROM jobs WHERE status = 'pending' AND run_at <= now() AND "
#define CLAIM_TAIL                                                                                 \
    " ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) "                                        \
    "RETURNING id, kind, attempts, max_attempts, payload->>'to' AS mail_to, "                      \
    "payload->>'subject' AS subject, payload->>'template' AS template, "                           \
    "payload->>'html' AS html, payload->>'webhookId' AS webhook_id, "                              \
    "payload->>'event' AS event, payload->>'body' AS body, "                                       \
    "payload->>'disableAfter' AS disable_after, payload->>'allowPrivate' AS allow_private, "       \
    "payload->>'toName' AS to_name, payload->>'text' AS text "

static const char TAKE_MAIL_SQL[] = CLAIM_HEAD "kind = 'email'" CLAIM_TAIL;
static const char TAKE_OTHER_SQL[] = CLAIM_HEAD "kind <> 'email'" CLAIM_TAIL;

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

/* ---- webhook: the HTTP part ---------------------------------------------- */

#define WEBHOOK_TIMEOUT_MS 10000L
#define WEBHOOK_CONNECT_TIMEOUT_MS 5000L

typedef struct {
    long status; /* HTTP status, 0 when no answer came */
    int ok;      /* 2xx */
    long duration_ms;
    char error[256]; /* "" on success */
} http_result;

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* curl's socket opener: refuses blocked addresses after name resolution,
 * so a host name that resolves to 127.0.0.1 is caught too. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    int *blocked = ud;
    if (purpose == CURLSOCKTYPE_IPCXN && tk_addr_blocked(&a->addr)) {
        *blocked = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000L + (t1.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Appends "name: value" to *list ("name:" for an empty value, which tells
 * curl not to send its own); returns 0 or TK_ENOMEM (the list so far stays
 * owned by *list). */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[512];
    if (*value)
        snprintf(line, sizeof line, "%s: %s", name, value);
    else
        snprintf(line, sizeof line, "%s:", name);
    struct curl_slist *nl = curl_slist_append(*list, line);
    if (nl == NULL)
        return TK_ENOMEM;
    *list = nl;
    return TK_OK;
}

/* POSTs `body` to `url` with the signature and event headers. Never fails
 * as a function: whatever went wrong is in res (ok = 0, error text). */
static void webhook_post(const char *url, const char *secret, const char *event,
                         const char *delivery, const char *body, int allow_private,
                         http_result *res)
{
    memset(res, 0, sizeof *res);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CURL *h = NULL;
    struct curl_slist *headers = NULL;
    char sig[65], sig_header[80], curl_err[CURL_ERROR_SIZE] = "";
    int blocked = 0;

    if (tk_auth_hmac_sha256_hex(secret, strlen(secret), body, strlen(body), sig) != TK_OK) {
        tk_errf(res->error, sizeof res->error, "cannot sign the body");
        goto out;
    }
    snprintf(sig_header, sizeof sig_header, "sha256=%s", sig);
    if (add_header(&headers, "Content-Type", "application/json") != TK_OK ||
        add_header(&headers, "X-Taskapi-Event", event) != TK_OK ||
        add_header(&headers, "X-Taskapi-Delivery", delivery) != TK_OK ||
        add_header(&headers, "X-Taskapi-Signature", sig_header) != TK_OK ||
        add_header(&headers, "Expect", "") != TK_OK) { /* no 100-continue round trip */
        tk_errf(res->error, sizeof res->error, "out of memory");
        goto out;
    }
    h = curl_easy_init();
    if (h == NULL) {
        tk_errf(res->error, sizeof res->error, "cannot create a curl handle");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* direct: never a proxy from the environment */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, WEBHOOK_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, WEBHOOK_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "taskapi-webhooks/" TASKAPI_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    if (!allow_private) {
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &blocked);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
    if (rc == CURLE_OK) {
        res->ok = res->status >= 200 && res->status <= 299;
        if (!res->ok)
            tk_errf(res->error, sizeof res->error, "HTTP %ld", res->status);
    } else if (blocked) {
        tk_errf(res->error, sizeof res->error, "address not allowed (loopback or private network)");
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        tk_errf(res->error, sizeof res->error, "timed out after %ld ms", WEBHOOK_TIMEOUT_MS);
    } else {
        tk_errf(res->error, sizeof res->error, "%s", *curl_err ? curl_err : curl_easy_strerror(rc));
    }
out:
    res->duration_ms = elapsed_ms(&t0);
    curl_slist_free_all(headers);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- webhook: the bookkeeping --------------------------------------------- */

static const char WEBHOOK_SQL[] = "SELECT url, secret, active FROM webhooks WHERE id = $1";

/* Written only while the webhook exists (it may be deleted meanwhile). */
static const char DELIVERY_SQL[] =
    "INSERT INTO webhook_deliveries "
    "(webhook_id, job_id, event, attempt, status_code, error, duration_ms, success) "
    "SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM webhooks WHERE id = $1";

/* A success resets the failure counter; the disable_after-th consecutive
 * failure switches the webhook off (an admin switches it back on). */
static const char OUTCOME_SQL[] =
    "UPDATE webhooks SET last_delivery_at = clock_timestamp(), last_status = $2::integer, "
    "consecutive_failures = CASE WHEN $3::boolean THEN 0 ELSE consecutive_failures + 1 END, "
    "disabled_at = CASE WHEN NOT $3::boolean AND active AND consecutive_failures + 1 >= "
    "$4::integer "
    "THEN clock_timestamp() ELSE disabled_at END, "
    "updated_at = CASE WHEN NOT $3::boolean AND active AND consecutive_failures + 1 >= $4::integer "
    "THEN clock_timestamp() ELSE updated_at END, "
    "active = CASE WHEN NOT $3::boolean AND consecutive_failures + 1 >= $4::integer THEN false "
    "ELSE active END "
    "WHERE id = $1 RETURNING active, consecutive_failures";

/* Runs a statement that must succeed; on failure logs and returns TK_EDB.
 * *out gets the result when wanted (the caller PQclears it). */
static int exec_ok(tk_db_conn *c, const char *sql, int n, const char *const *params, PGresult **out)
{
    PGresult *r = tk_db_conn_exec(c, sql, n, params, NULL);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        tk_log_warn("jobs: webhook bookkeeping failed: %s",
                    r ? PQresultErrorMessage(r) : "connection lost");
        PQclear(r);
        return TK_EDB;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return TK_OK;
}

/* A webhook attempt between the POST and its record. */
typedef struct {
    int posted; /* 0: nothing was sent (cancelled before) */
    http_result res;
} webhook_attempt;

/* Looks the webhook up (a pool connection for that statement only) and
 * POSTs the job's body. No connection is held during the POST. Returns 0
 * with *out set (CANCEL when the webhook is gone or off; else the attempt
 * is in *a and run_one records it), or TK_EDB / TK_EUNAVAIL. */
static int run_webhook(tk_db_pool *pool, PGresult *job, webhook_attempt *a, outcome *out,
                       char *why, size_t whylen)
{
    const char *job_id = PQgetvalue(job, 0, COL_ID);
    const char *webhook_id = PQgetvalue(job, 0, COL_WEBHOOK_ID);
    const char *event = PQgetvalue(job, 0, COL_EVENT);
    const char *body = PQgetvalue(job, 0, COL_BODY);
    int allow_private = strcmp(PQgetvalue(job, 0, COL_ALLOW_PRIVATE), "true") == 0;
    char err[256];
    memset(a, 0, sizeof *a);
    if (*webhook_id == '\0' || *event == '\0' || PQgetisnull(job, 0, COL_BODY)) {
        tk_errf(why, whylen, "webhook job without webhookId, event or body");
        *out = OUTCOME_CANCEL;
        return TK_OK;
    }
    tk_db_conn *c = NULL;
    if (tk_db_pool_acquire(pool, 1000, &c, err, sizeof err) != TK_OK)
        return TK_EUNAVAIL;
    PGresult *w = NULL;
    const char *p1[1] = {webhook_id};
    int rc = exec_ok(c, WEBHOOK_SQL, 1, p1, &w);
    tk_db_pool_release(pool, c);
    if (rc != TK_OK)
        return TK_EDB;
    if (PQntuples(w) == 0 || strcmp(PQgetvalue(w, 0, 2), "t") != 0) {
        tk_errf(why, whylen, "%s", PQntuples(w) == 0 ? "webhook deleted" : "webhook disabled");
        PQclear(w);
        *out = OUTCOME_CANCEL;
        return TK_OK;
    }
    webhook_post(PQgetvalue(w, 0, 0), PQgetvalue(w, 0, 1), event, job_id, body, allow_private,
                 &a->res);
    PQclear(w);
    a->posted = 1;
    *out = a->res.ok ? OUTCOME_DONE : OUTCOME_RETRY;
    return TK_OK;
}

/* Records a posted attempt in the settle transaction on c: the delivery
 * row and the webhook's new state, which decides *out (a webhook the
 * failure disabled gives up). Returns 0 or TK_EDB. */
static int record_webhook(tk_db_conn *c, PGresult *job, const webhook_attempt *a, outcome *out,
                          char *why, size_t whylen)
{
    const char *job_id = PQgetvalue(job, 0, COL_ID);
    const char *webhook_id = PQgetvalue(job, 0, COL_WEBHOOK_ID);
    const char *event = PQgetvalue(job, 0, COL_EVENT);
    const char *attempt = PQgetvalue(job, 0, COL_ATTEMPTS);
    const http_result *res = &a->res;
    const char *disable_after = PQgetvalue(job, 0, COL_DISABLE_AFTER);
    if (*disable_after == '\0' || atoi(disable_after) <= 0)
        disable_after = "2147483647"; /* never */
    char status[16], duration[24];
    snprintf(status, sizeof status, "%ld", res->status);
    snprintf(duration, sizeof duration, "%ld", res->duration_ms < 0 ? 0 : res->duration_ms);
    const char *status_or_null = res->status > 0 ? status : NULL;
    const char *pd[8] = {webhook_id,     job_id,
                         event,          attempt,
                         status_or_null, res->ok ? NULL : res->error,
                         duration,       res->ok ? "t" : "f"};
    if (exec_ok(c, DELIVERY_SQL, 8, pd, NULL) != TK_OK)
        return TK_EDB;
    PGresult *o = NULL;
    const char *po[4] = {webhook_id, status_or_null, res->ok ? "t" : "f", disable_after};
    if (exec_ok(c, OUTCOME_SQL, 4, po, &o) != TK_OK)
        return TK_EDB;
    int still_active = PQntuples(o) == 1 && strcmp(PQgetvalue(o, 0, 0), "t") == 0;
    int failures = PQntuples(o) == 1 ? atoi(PQgetvalue(o, 0, 1)) : 0;
    PQclear(o);

    if (res->ok) {
        tk_log_info("jobs: webhook %s: %s delivered (job %s, HTTP %ld, %ld ms)", webhook_id, event,
                    job_id, res->status, res->duration_ms);
        *out = OUTCOME_DONE;
    } else if (!still_active) {
        tk_log_warn("jobs: webhook %s disabled after %d consecutive failures (last: %s)",
                    webhook_id, failures, res->error);
        tk_errf(why, whylen, "%s; webhook disabled after %d consecutive failures", res->error,
                failures);
        *out = OUTCOME_GIVE_UP;
    } else {
        tk_errf(why, whylen, "%s", res->error);
        *out = OUTCOME_RETRY;
    }
    return TK_OK;
}

/* ---- the loop ------------------------------------------------------------- */

/* Claims one job with take_sql: 1 with *job set (the caller PQclears it), 0
 * if none was due, <0 on a database failure. The pool connection is held
 * for that one statement. */
static int claim(const tk_config *cfg, tk_db_pool *pool, const char *take_sql, PGresult **job)
{
    char err[512], lease[24];
    tk_db_conn *c = NULL;
    *job = NULL;
    if (tk_db_pool_acquire(pool, 1000, &c, err, sizeof err) != TK_OK)
        return TK_EUNAVAIL;
    snprintf(lease, sizeof lease, "%d", cfg->job_lease_ms);
    const char *params[1] = {lease};
    PGresult *r = tk_db_conn_exec(c, take_sql, 1, params, NULL);
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

/* Records the outcome of a claimed job in one transaction (with the
 * webhook's bookkeeping when one was posted). Returns 0 or a TK_E* code;
 * *settled is 0 when the claim no longer held the row. */
static int settle(const tk_config *cfg, tk_db_pool *pool, PGresult *job, const webhook_attempt *wa,
                  outcome *oc, char *why, size_t whylen, int *settled)
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
    if (wa != NULL && wa->posted && record_webhook(c, job, wa, oc, why, whylen) != TK_OK) {
        rc = TK_EDB;
        goto rollback;
    }
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

/* Claims and runs one job selected by take_sql. Returns 1 if a job ran, 0
 * if none was due, <0 on a database failure. */
static int run_one(const tk_config *cfg, tk_db_pool *pool, const char *take_sql)
{
    PGresult *job = NULL;
    int rc = claim(cfg, pool, take_sql, &job);
    if (rc <= 0)
        return rc;
    const char *id = PQgetvalue(job, 0, COL_ID);
    int attempt = atoi(PQgetvalue(job, 0, COL_ATTEMPTS));
    int last_attempt = attempt >= atoi(PQgetvalue(job, 0, COL_MAX_ATTEMPTS));
    const char *kind = PQgetvalue(job, 0, COL_KIND);
    char why[512] = "";
    outcome oc;
    webhook_attempt wa = {0};
    if (attempt > atoi(PQgetvalue(job, 0, COL_MAX_ATTEMPTS))) {
        /* its last attempt's lease ran out (the process died mid-job) */
        tk_errf(why, sizeof why, "the last attempt never finished (lease ran out)");
        oc = OUTCOME_GIVE_UP;
    } else if (strcmp(kind, "email") == 0) {
        oc = run_email(cfg, job, why, sizeof why);
    } else if (strcmp(kind, "webhook") == 0) {
        rc = run_webhook(pool, job, &wa, &oc, why, sizeof why);
        if (rc != TK_OK) {
            /* not attempted: the lease brings it back */
            PQclear(job);
            return rc;
        }
    } else {
        tk_errf(why, sizeof why, "no handler for job kind '%s'", kind);
        oc = OUTCOME_RETRY;
    }
    int settled = 0;
    rc = settle(cfg, pool, job, &wa, &oc, why, sizeof why, &settled);
    if (settled) {
        if (oc == OUTCOME_RETRY)
            tk_log_warn("jobs: job %s failed: %s", id, why);
        else if (oc == OUTCOME_GIVE_UP || oc == OUTCOME_CANCEL)
            tk_log_info("jobs: job %s given up: %s", id, why);
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

/* The backlog gauges (metrics.h), read by one lane every BACKLOG_EVERY_S:
 * both conditions are on jobs_pending_idx, so the count stays cheap however
 * many finished jobs the table keeps. */
#define BACKLOG_EVERY_S 5
static const char BACKLOG_SQL[] =
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 "
    "FROM jobs WHERE status = 'pending' AND run_at <= now()";

static void read_backlog(tk_db_pool *pool)
{
    char err[256];
    tk_db_conn *c = NULL;
    if (tk_db_pool_acquire(pool, 1000, &c, err, sizeof err) != TK_OK)
        return;
    PGresult *r = tk_db_conn_exec(c, BACKLOG_SQL, 0, NULL, NULL);
    if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        tk_metrics_job_backlog(atoll(PQgetvalue(r, 0, 0)), atof(PQgetvalue(r, 0, 1)));
    PQclear(r);
    tk_db_pool_release(pool, c);
}

static void *lane_main(void *arg)
{
    lane *ln = arg;
    tk_jobs *j = ln->jobs;
    int was_down = 0;
    for (;;) {
        int rc;
        while ((rc = run_one(j->cfg, j->pool, ln->take_sql)) == 1) {
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
                read_backlog(j->pool);
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

int tk_jobs_start(const tk_config *cfg, tk_db_pool *pool, tk_jobs **out)
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
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->lanes[LANE_MAIL] = (lane){.jobs = j, .name = "mail", .take_sql = TAKE_MAIL_SQL};
    j->lanes[LANE_OTHER] = (lane){.jobs = j, .name = "other", .take_sql = TAKE_OTHER_SQL};
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
    free(j);
    curl_global_cleanup();
}
