/* Metrics store: one series per (method, pattern) with per-status counts and
 * a latency histogram, in a small array under a mutex (a few dozen routes),
 * plus atomics for the counters other units bump. */
#include "obs/metrics.h"

#include "obs/script_metrics.h"
#include "obs/text.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,   0.25,   0.5,   1,    2.5,   5};
#define NBUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])
#define MAX_STATUS 16

typedef struct {
    char *method, *pattern;
    unsigned statuses[MAX_STATUS];
    long long counts[MAX_STATUS];
    long long buckets[NBUCKETS]; /* non-cumulative */
    long long total;
    double sum;
} series;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long long mail_counts[TK_METRICS_MAIL_N]; /* atomic builtins */

void tk_metrics_mail(tk_metrics_mail_outcome what)
{
    if ((unsigned)what < TK_METRICS_MAIL_N)
        __atomic_add_fetch(&mail_counts[what], 1, __ATOMIC_RELAXED);
}

static long long job_counts[TK_METRICS_JOB_N]; /* atomic builtins */
static long long job_due;                      /* atomic builtins */
static double job_oldest_due;                  /* under mu */

void tk_metrics_job(tk_metrics_job_outcome what)
{
    if ((unsigned)what < TK_METRICS_JOB_N)
        __atomic_add_fetch(&job_counts[what], 1, __ATOMIC_RELAXED);
}

void tk_metrics_job_backlog(long long due, double oldest_due_seconds)
{
    __atomic_store_n(&job_due, due, __ATOMIC_RELAXED);
    pthread_mutex_lock(&mu);
    job_oldest_due = oldest_due_seconds;
    pthread_mutex_unlock(&mu);
}

/* The last reading of tk_metrics_job_unhandled, under mu. */
typedef struct {
    char *kind;
    long long due;
} unhandled_kind;
static unhandled_kind *unhandled;
static int nunhandled;

static void free_unhandled(unhandled_kind *u, int n)
{
    for (int i = 0; i < n; i++)
        free(u[i].kind);
    free(u);
}

void tk_metrics_job_unhandled(const char *const *kinds, const long long *counts, int n)
{
    unhandled_kind *u = NULL;
    int nu = 0;
    if (n > 0 && (u = calloc((size_t)n, sizeof *u)) != NULL) {
        for (int i = 0; i < n; i++) {
            if ((u[nu].kind = strdup(kinds[i])) != NULL)
                u[nu++].due = counts[i];
        }
    }
    pthread_mutex_lock(&mu);
    unhandled_kind *old = unhandled;
    int nold = nunhandled;
    unhandled = u;
    nunhandled = nu;
    pthread_mutex_unlock(&mu);
    free_unhandled(old, nold);
}

static series *all;
static int nall, capall;

static series *find_series(const char *method, const char *pattern)
{
    for (int i = 0; i < nall; i++)
        if (strcmp(all[i].method, method) == 0 && strcmp(all[i].pattern, pattern) == 0)
            return &all[i];
    if (nall == capall) {
        int cap = capall ? capall * 2 : 64;
        series *n = realloc(all, (size_t)cap * sizeof *n);
        if (n == NULL)
            return NULL;
        all = n;
        capall = cap;
    }
    series *s = &all[nall];
    memset(s, 0, sizeof *s);
    s->method = strdup(method);
    s->pattern = strdup(pattern);
    if (!s->method || !s->pattern) {
        free(s->method);
        free(s->pattern);
        return NULL;
    }
    nall++;
    return s;
}

void tk_metrics_observe_request(const char *method, const char *pattern, unsigned status,
                                double seconds)
{
    pthread_mutex_lock(&mu);
    series *s = find_series(method, pattern ? pattern : "unmatched");
    if (s != NULL) {
        for (int i = 0; i < MAX_STATUS; i++) {
            if (s->statuses[i] == status || s->statuses[i] == 0) {
                s->statuses[i] = status;
                s->counts[i]++;
                break;
            }
        }
        size_t b = 0;
        while (b < NBUCKETS && seconds > BUCKETS[b])
            b++;
        if (b < NBUCKETS)
            s->buckets[b]++;
        s->total++;
        s->sum += seconds;
    }
    pthread_mutex_unlock(&mu);
}

char *tk_metrics_render(const tk_metrics_sources *src, size_t *len)
{
    tk_text o;
    tk_text_init(&o, 16384);
    o.p[0] = '\0';
    tk_text_put(
        &o,
        "# HELP taskapi_http_requests_total HTTP requests answered, by method, route and status.\n"
        "# TYPE taskapi_http_requests_total counter\n");
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nall; i++) {
        for (int k = 0; k < MAX_STATUS && all[i].statuses[k]; k++) {
            tk_text_put(&o, "taskapi_http_requests_total{method=\"%s\",route=\"", all[i].method);
            tk_text_escaped(&o, all[i].pattern, 1);
            tk_text_put(&o, "\",status=\"%u\"} %lld\n", all[i].statuses[k], all[i].counts[k]);
        }
    }
    tk_text_put(&o,
                "# HELP taskapi_http_request_duration_seconds Time from first byte to the answer.\n"
                "# TYPE taskapi_http_request_duration_seconds histogram\n");
    for (int i = 0; i < nall; i++) {
        long long cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            tk_text_put(&o, "taskapi_http_request_duration_seconds_bucket{method=\"%s\",route=\"",
                        all[i].method);
            tk_text_escaped(&o, all[i].pattern, 1);
            if (b < NBUCKETS) {
                cum += all[i].buckets[b];
                tk_text_put(&o, "\",le=\"%g\"} %lld\n", BUCKETS[b], cum);
            } else {
                tk_text_put(&o, "\",le=\"+Inf\"} %lld\n", all[i].total);
            }
        }
        tk_text_put(&o, "taskapi_http_request_duration_seconds_sum{method=\"%s\",route=\"",
                    all[i].method);
        tk_text_escaped(&o, all[i].pattern, 1);
        tk_text_put(&o, "\"} %.6f\n", all[i].sum);
        tk_text_put(&o, "taskapi_http_request_duration_seconds_count{method=\"%s\",route=\"",
                    all[i].method);
        tk_text_escaped(&o, all[i].pattern, 1);
        tk_text_put(&o, "\"} %lld\n", all[i].total);
    }
    pthread_mutex_unlock(&mu);

    tk_text_put(&o,
                "# HELP taskapi_db_pool_connections Database pool connections by state.\n"
                "# TYPE taskapi_db_pool_connections gauge\n"
                "taskapi_db_pool_connections{state=\"in_use\"} %d\n"
                "taskapi_db_pool_connections{state=\"idle\"} %d\n"
                "# HELP taskapi_db_pool_waiting Requests waiting for a database connection.\n"
                "# TYPE taskapi_db_pool_waiting gauge\ntaskapi_db_pool_waiting %d\n"
                "# HELP taskapi_db_pool_size Database pool size.\n"
                "# TYPE taskapi_db_pool_size gauge\ntaskapi_db_pool_size %d\n",
                src->pool_in_use, src->pool_idle, src->pool_waiting, src->pool_size);
    /* Always present (0 without a replica), so dashboards and alerts can
     * name them everywhere; the lag is 0 while it is unknown, with
     * taskapi_db_replica_up saying why. */
    tk_text_put(
        &o,
        "# HELP taskapi_db_replica_configured 1 when DATABASE_READ_URL names a read replica.\n"
        "# TYPE taskapi_db_replica_configured gauge\ntaskapi_db_replica_configured %d\n"
        "# HELP taskapi_db_replica_up 1 when the read replica answered its last check.\n"
        "# TYPE taskapi_db_replica_up gauge\ntaskapi_db_replica_up %d\n"
        "# HELP taskapi_db_replica_lag_seconds Replay lag of the read replica behind the primary.\n"
        "# TYPE taskapi_db_replica_lag_seconds gauge\ntaskapi_db_replica_lag_seconds %.3f\n"
        "# HELP taskapi_db_reads_total Reads outside a transaction, by the server that served "
        "them.\n"
        "# TYPE taskapi_db_reads_total counter\n"
        "taskapi_db_reads_total{target=\"replica\"} %lld\n"
        "taskapi_db_reads_total{target=\"primary\"} %lld\n"
        "# HELP taskapi_db_replica_fallbacks_total Reads that failed on the replica and were "
        "served by the primary.\n"
        "# TYPE taskapi_db_replica_fallbacks_total counter\ntaskapi_db_replica_fallbacks_total "
        "%lld\n"
        "# HELP taskapi_db_replica_pool_connections Read replica pool connections in use.\n"
        "# TYPE taskapi_db_replica_pool_connections gauge\n"
        "taskapi_db_replica_pool_connections{state=\"in_use\"} %d\n"
        "# HELP taskapi_db_replica_pool_size Read replica pool size (DB_READ_POOL_SIZE).\n"
        "# TYPE taskapi_db_replica_pool_size gauge\ntaskapi_db_replica_pool_size %d\n",
        src->replica_configured, src->replica_up, src->replica_lag > 0 ? src->replica_lag : 0.0,
        src->reads_replica, src->reads_primary, src->replica_fallbacks, src->replica_pool_in_use,
        src->replica_pool_size);
    tk_text_put(
        &o,
        "# HELP taskapi_redis_up 1 when Redis answers, 0 when it does not, -1 when disabled.\n"
        "# TYPE taskapi_redis_up gauge\ntaskapi_redis_up %d\n",
        src->redis_state);
    tk_text_put(
        &o,
        "# HELP taskapi_websocket_connections Open WebSocket and Socket.IO connections.\n"
        "# TYPE taskapi_websocket_connections gauge\ntaskapi_websocket_connections %lld\n"
        "# HELP taskapi_websocket_overflow_disconnects_total Clients closed for a full send "
        "queue.\n"
        "# TYPE taskapi_websocket_overflow_disconnects_total counter\n"
        "taskapi_websocket_overflow_disconnects_total %lld\n",
        src->ws_connections, src->ws_overflows);
    tk_text_put(
        &o,
        "# HELP taskapi_events_published_total Events published after commit.\n"
        "# TYPE taskapi_events_published_total counter\ntaskapi_events_published_total %lld\n"
        "# HELP taskapi_events_delivered_total Event messages sent to realtime clients.\n"
        "# TYPE taskapi_events_delivered_total counter\ntaskapi_events_delivered_total %lld\n"
        "# HELP taskapi_events_received_total Events received from other instances via Redis.\n"
        "# TYPE taskapi_events_received_total counter\ntaskapi_events_received_total %lld\n"
        "# HELP taskapi_events_dropped_total Events not sent to Redis (down or queue full).\n"
        "# TYPE taskapi_events_dropped_total counter\ntaskapi_events_dropped_total %lld\n",
        src->events_published, src->events_delivered, src->events_remote, src->events_dropped);
    tk_text_put(&o,
                "# HELP taskapi_rate_limit_rejections_total Requests answered 429.\n"
                "# TYPE taskapi_rate_limit_rejections_total counter\n"
                "taskapi_rate_limit_rejections_total %lld\n",
                src->ratelimit_rejections);
    tk_text_put(&o,
                "# HELP taskapi_script_reloads_total Successful script reloads.\n"
                "# TYPE taskapi_script_reloads_total counter\ntaskapi_script_reloads_total %lld\n"
                "# HELP taskapi_script_reload_failures_total Reloads refused (the old scripts kept "
                "serving).\n"
                "# TYPE taskapi_script_reload_failures_total counter\n"
                "taskapi_script_reload_failures_total %lld\n"
                "# HELP taskapi_script_generation The generation of scripts now serving.\n"
                "# TYPE taskapi_script_generation gauge\ntaskapi_script_generation %d\n",
                src->reloads, src->reload_failures, src->generation);
    long long mc[TK_METRICS_MAIL_N];
    for (int i = 0; i < TK_METRICS_MAIL_N; i++)
        mc[i] = __atomic_load_n(&mail_counts[i], __ATOMIC_RELAXED);
    tk_text_put(
        &o,
        "# HELP taskapi_mail_sent_total Mails accepted by the SMTP server or written to "
        "MAIL_DIR.\n"
        "# TYPE taskapi_mail_sent_total counter\n"
        "taskapi_mail_sent_total{transport=\"smtp\"} %lld\n"
        "taskapi_mail_sent_total{transport=\"mailbox\"} %lld\n"
        "# HELP taskapi_mail_failures_total Mail delivery attempts that failed (the job is "
        "retried with backoff).\n"
        "# TYPE taskapi_mail_failures_total counter\ntaskapi_mail_failures_total %lld\n"
        "# HELP taskapi_mail_dropped_total Mails never sent (MAIL_DISABLED, or a message that "
        "cannot be built).\n"
        "# TYPE taskapi_mail_dropped_total counter\ntaskapi_mail_dropped_total %lld\n",
        mc[TK_METRICS_MAIL_SMTP], mc[TK_METRICS_MAIL_MAILBOX], mc[TK_METRICS_MAIL_FAILED],
        mc[TK_METRICS_MAIL_DROPPED]);
    long long jc[TK_METRICS_JOB_N];
    for (int i = 0; i < TK_METRICS_JOB_N; i++)
        jc[i] = __atomic_load_n(&job_counts[i], __ATOMIC_RELAXED);
    pthread_mutex_lock(&mu);
    double oldest = job_oldest_due;
    pthread_mutex_unlock(&mu);
    tk_text_put(
        &o,
        "# HELP taskapi_jobs_total Job attempts run by this instance, by outcome.\n"
        "# TYPE taskapi_jobs_total counter\n"
        "taskapi_jobs_total{outcome=\"done\"} %lld\n"
        "taskapi_jobs_total{outcome=\"retry\"} %lld\n"
        "taskapi_jobs_total{outcome=\"failed\"} %lld\n"
        "taskapi_jobs_total{outcome=\"cancelled\"} %lld\n"
        "# HELP taskapi_jobs_due Pending jobs whose time has come (the backlog; the same "
        "table for every instance).\n"
        "# TYPE taskapi_jobs_due gauge\ntaskapi_jobs_due %lld\n"
        "# HELP taskapi_jobs_oldest_due_seconds Age of the oldest due pending job (0 when "
        "none).\n"
        "# TYPE taskapi_jobs_oldest_due_seconds gauge\ntaskapi_jobs_oldest_due_seconds %.3f\n",
        jc[TK_METRICS_JOB_DONE], jc[TK_METRICS_JOB_RETRY], jc[TK_METRICS_JOB_FAILED],
        jc[TK_METRICS_JOB_CANCELLED], __atomic_load_n(&job_due, __ATOMIC_RELAXED), oldest);
    tk_text_put(&o, "# HELP taskapi_jobs_unhandled Due pending jobs of a kind no handler of this "
                    "instance takes (jobs.handle), by kind: they wait for an instance that has "
                    "one.\n"
                    "# TYPE taskapi_jobs_unhandled gauge\n");
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nunhandled; i++) {
        tk_text_put(&o, "taskapi_jobs_unhandled{kind=\"");
        tk_text_escaped(&o, unhandled[i].kind, 1);
        tk_text_put(&o, "\"} %lld\n", unhandled[i].due);
    }
    pthread_mutex_unlock(&mu);
    tk_smetrics_render_into(&o); /* tk.metrics: the scripts' and plugins' own */
    return tk_text_take(&o, len);
}

void tk_metrics_cleanup(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nall; i++) {
        free(all[i].method);
        free(all[i].pattern);
    }
    free(all);
    all = NULL;
    nall = capall = 0;
    free_unhandled(unhandled, nunhandled);
    unhandled = NULL;
    nunhandled = 0;
    pthread_mutex_unlock(&mu);
    tk_smetrics_cleanup();
}
