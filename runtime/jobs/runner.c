/* The job runner thread: poll, take one due job under a row lock, run it,
 * record the outcome, commit. */
#include "jobs/runner.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/log.h"

struct tk_jobs {
    const tk_config *cfg;
    tk_db_pool *pool;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

static const char TAKE_SQL[] =
    "SELECT id, kind, attempts, max_attempts, payload->>'to' AS mail_to, "
    "payload->>'subject' AS subject, payload->>'template' AS template, "
    "payload->>'link' AS link "
    "FROM jobs WHERE status = 'pending' AND run_at <= now() "
    "ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED";

static const char DONE_SQL[] =
    "UPDATE jobs SET status = 'done', attempts = attempts + 1, finished_at = now(), "
    "last_error = NULL WHERE id = $1";

static const char RETRY_SQL[] =
    "UPDATE jobs SET attempts = attempts + 1, last_error = $2, "
    "status = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE 'pending' END, "
    "finished_at = CASE WHEN attempts + 1 >= max_attempts THEN now() END, "
    "run_at = now() + make_interval(secs => least(3600, power(2, attempts + 1)::int)) "
    "WHERE id = $1";

/* Delivers one email job. Until SMTP lands the mail goes to the log,
 * link included, so a developer can follow it. Returns 0 or an error. */
static int deliver_email(const tk_config *cfg, PGresult *r, char *err, size_t errlen)
{
    const char *to = PQgetvalue(r, 0, 4);
    const char *subject = PQgetvalue(r, 0, 5);
    const char *tmpl = PQgetvalue(r, 0, 6);
    const char *link = PQgetvalue(r, 0, 7);
    if (*to == '\0') {
        tk_errf(err, errlen, "email job without a recipient");
        return TK_EINVAL;
    }
    tk_log(TK_LOG_INFO, NULL, "mail from=\"%s\" to=\"%s\" template=%s subject=\"%s\" link=%s",
           cfg->mail_from, to, tmpl, subject, link);
    return TK_OK;
}

/* Takes and runs one job. Returns 1 if a job ran, 0 if none was due, <0 on
 * a database failure. */
static int run_one(const tk_config *cfg, tk_db_pool *pool)
{
    char err[512];
    tk_db_conn *c = NULL;
    if (tk_db_pool_acquire(pool, 1000, &c, err, sizeof err) != TK_OK)
        return TK_EUNAVAIL;
    int ran = 0, rc;
    PGresult *r = NULL;
    if ((rc = tk_db_conn_command(c, "BEGIN", err, sizeof err)) != TK_OK)
        goto out;
    r = tk_db_conn_exec(c, TAKE_SQL, 0, NULL, NULL);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        tk_log_warn("jobs: cannot take a job: %s",
                    r ? PQresultErrorMessage(r) : "connection lost");
        rc = TK_EDB;
        goto rollback;
    }
    if (PQntuples(r) == 0) {
        rc = tk_db_conn_command(c, "COMMIT", err, sizeof err);
        goto out;
    }
    char id[32];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    const char *kind = PQgetvalue(r, 0, 1);
    char why[256] = "";
    int jrc;
    if (strcmp(kind, "email") == 0) {
        jrc = deliver_email(cfg, r, why, sizeof why);
    } else {
        tk_errf(why, sizeof why, "no handler for job kind '%s'", kind);
        jrc = TK_EINVAL;
    }
    PQclear(r);
    const char *params[2] = {id, why};
    r = tk_db_conn_exec(c, jrc == TK_OK ? DONE_SQL : RETRY_SQL, jrc == TK_OK ? 1 : 2, params,
                        NULL);
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        tk_log_warn("jobs: cannot record job %s: %s", id,
                    r ? PQresultErrorMessage(r) : "connection lost");
        rc = TK_EDB;
        goto rollback;
    }
    if (jrc != TK_OK)
        tk_log_warn("jobs: job %s failed: %s", id, why);
    rc = tk_db_conn_command(c, "COMMIT", err, sizeof err);
    ran = rc == TK_OK;
    goto out;
rollback:
    if (!tk_db_conn_broken(c) && tk_db_conn_command(c, "ROLLBACK", err, sizeof err) != TK_OK)
        tk_log_warn("jobs: rollback failed: %s", err);
out:
    PQclear(r);
    tk_db_pool_release(pool, c);
    return rc != TK_OK ? rc : ran;
}

int tk_jobs_run_due(const tk_config *cfg, tk_db_pool *pool)
{
    int n = 0, rc;
    while ((rc = run_one(cfg, pool)) == 1)
        n++;
    return n;
}

static void *jobs_main(void *arg)
{
    tk_jobs *j = arg;
    int was_down = 0;
    for (;;) {
        int rc;
        while ((rc = run_one(j->cfg, j->pool)) == 1) {
            pthread_mutex_lock(&j->mu);
            int stop = j->stopping;
            pthread_mutex_unlock(&j->mu);
            if (stop)
                break;
        }
        if (rc < 0 && !was_down)
            tk_log_warn("jobs: database unavailable; will retry");
        else if (rc >= 0 && was_down)
            tk_log_info("jobs: database back");
        was_down = rc < 0;

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

int tk_jobs_start(const tk_config *cfg, tk_db_pool *pool, tk_jobs **out)
{
    tk_jobs *j = calloc(1, sizeof *j);
    if (j == NULL)
        return TK_ENOMEM;
    j->cfg = cfg;
    j->pool = pool;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (pthread_create(&j->thread, NULL, jobs_main, j) != 0) {
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        free(j);
        return TK_EIO;
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
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}
