/* Prometheus metrics (API.md §9): request counts and latency histograms by
 * method, route pattern and status, kept here; everything else (database
 * pool, reloads, rate-limit rejections, realtime) is read from its owner
 * into the sources given to tk_metrics_render; the metrics scripts declare
 * (tk.metrics) come last. Thread-safe. */
#ifndef TK_OBS_METRICS_H
#define TK_OBS_METRICS_H

#include <stddef.h>

#include "common.h"

/* Records one finished request. `pattern` is the matched route pattern or
 * NULL for an unmatched path. */
void tk_metrics_observe_request(const char *method, const char *pattern, unsigned status,
                                double seconds);

/* Mail outcomes, counted by the job runner: accepted by the SMTP server,
 * written to MAIL_DIR, an attempt that failed (retried with backoff), or a
 * mail dropped for good (MAIL_DISABLED, a message that cannot be built). */
typedef enum {
    TK_METRICS_MAIL_SMTP,
    TK_METRICS_MAIL_MAILBOX,
    TK_METRICS_MAIL_FAILED,
    TK_METRICS_MAIL_DROPPED,
    TK_METRICS_MAIL_N
} tk_metrics_mail_outcome;

void tk_metrics_mail(tk_metrics_mail_outcome what);

/* Job attempts by outcome, counted by the job runner: done, failed and to
 * be retried, failed for good (max_attempts reached, or never retried), or
 * cancelled (nothing was attempted: the target is gone or switched off). */
typedef enum {
    TK_METRICS_JOB_DONE,
    TK_METRICS_JOB_RETRY,
    TK_METRICS_JOB_FAILED,
    TK_METRICS_JOB_CANCELLED,
    TK_METRICS_JOB_N
} tk_metrics_job_outcome;

void tk_metrics_job(tk_metrics_job_outcome what);

/* The job backlog as the runner last read it (every few seconds): pending
 * jobs already due, and the age in seconds of the oldest of them (0 when
 * none). Shared by every instance: all of them report the same table. */
void tk_metrics_job_backlog(long long due, double oldest_due_seconds);

/* Due pending jobs of kinds this instance's job runner has no handler for
 * (it does not claim them; they wait for an instance that has one), as the
 * runner last read them: `n` kinds with their counts, copied. The previous
 * reading is replaced whole (a kind handled again, or run by another
 * instance, drops out). */
void tk_metrics_job_unhandled(const char *const *kinds, const long long *counts, int n);

typedef struct {
    int pool_size, pool_in_use, pool_idle, pool_waiting;
    long long reloads, reload_failures;
    int generation;
    long long ratelimit_rejections;
    int redis_state; /* -1 disabled, 0 down, 1 up */
    long long ws_connections, events_published, events_delivered, events_remote;
    long long events_dropped, ws_overflows;
    /* The read replica (db/replica.h); all 0 without DATABASE_READ_URL. */
    int replica_configured, replica_up;
    double replica_lag; /* seconds, < 0 unknown */
    long long reads_replica, reads_primary, replica_fallbacks;
    int replica_pool_in_use, replica_pool_size;
} tk_metrics_sources;

/* Renders the text exposition format into a malloc'd string the caller
 * frees; *len gets its length. Returns NULL when out of memory. */
char *tk_metrics_render(const tk_metrics_sources *src, size_t *len);

/* Frees the per-route series and the scripts' metrics (obs/script_metrics.h)
 * at shutdown, after the last VM is gone. */
void tk_metrics_cleanup(void);

#endif
