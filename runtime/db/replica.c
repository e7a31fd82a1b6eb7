/* The read replica: its pool, its state for routing, and the monitor thread
 * measuring lag. The monitor keeps one connection to each server, outside
 * both pools (a saturated pool must not hide the lag). */
#include "db/replica.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/log.h"

struct tk_db_replica {
    tk_db_pool *primary; /* borrowed */
    tk_db_pool *pool;    /* owned */
    char *primary_conninfo, *conninfo;
    int max_lag_ms, check_ms;
    atomic_int up;       /* answered the last check, and no read lost it since */
    atomic_llong lag_ms; /* last measured; -1 unknown */
    atomic_llong reads_replica, reads_primary, fallbacks;
    PGconn *mon_primary, *mon_replica; /* the monitor's own */
    char prev_lsn[64];                 /* the primary's position at the previous check */
    struct timespec prev_t;            /* when it was read */
    int stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
};

static PGconn *mon_connect(const char *conninfo)
{
    const char *keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    const char *vals[] = {conninfo, "2", "taskapi-replica-monitor", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c != NULL && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    return c;
}

/* A single-row, single-statement query on the monitor's connection *c
 * (reconnected when needed). Returns the result (TUPLES_OK, one row) or NULL;
 * a failed connection is closed for the next check to remake. */
static PGresult *mon_query(PGconn **c, const char *conninfo, const char *sql, int nparams,
                           const char *const *values)
{
    if (*c == NULL)
        *c = mon_connect(conninfo);
    if (*c == NULL)
        return NULL;
    PGresult *r = PQexecParams(*c, sql, nparams, NULL, values, NULL, NULL, 0);
    if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        return r;
    PQclear(r);
    if (PQstatus(*c) != CONNECTION_OK) {
        PQfinish(*c);
        *c = NULL;
    }
    return NULL;
}

static long long ms_since(const struct timespec *t0, const struct timespec *t1)
{
    return (long long)(t1->tv_sec - t0->tv_sec) * 1000 + (t1->tv_nsec - t0->tv_nsec) / 1000000;
}

/* One check: the primary's WAL position, then whether the replica has
 * replayed up to it; when not, the lag is the time since the last
 * transaction the replica replayed — but at most the time since the
 * previous check when it has replayed what the primary had then (WAL
 * written without a transaction, as a checkpoint on an idle primary, would
 * otherwise look like a lag as long as the idle time). A server that is
 * not in recovery (the URL names a primary, or the replica was promoted)
 * has no lag. */
static void check_once(tk_db_replica *r)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    PGresult *p = mon_query(&r->mon_primary, r->primary_conninfo,
                            "SELECT pg_current_wal_lsn()::text", 0, NULL);
    const char *lsn = p ? PQgetvalue(p, 0, 0) : NULL;
    const char *vals[2] = {lsn, r->prev_lsn[0] ? r->prev_lsn : NULL};
    PGresult *q = mon_query(&r->mon_replica, r->conninfo,
                            "SELECT pg_is_in_recovery(), "
                            "pg_last_wal_replay_lsn() >= $1::pg_lsn, "
                            "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, "
                            "pg_last_wal_replay_lsn() >= $2::pg_lsn",
                            2, vals);
    long long lag = -1;
    if (q != NULL) {
        int recovering = PQgetvalue(q, 0, 0)[0] == 't';
        int caught_up = !PQgetisnull(q, 0, 1) && PQgetvalue(q, 0, 1)[0] == 't';
        int had_prev = !PQgetisnull(q, 0, 3) && PQgetvalue(q, 0, 3)[0] == 't';
        if (!recovering) {
            lag = 0;
        } else if (lsn != NULL && caught_up) {
            lag = 0;
        } else if (lsn != NULL && !PQgetisnull(q, 0, 2)) {
            double s = strtod(PQgetvalue(q, 0, 2), NULL);
            lag = s > 0 ? (long long)(s * 1000.0) : 0;
        }
        if (lag != 0 && lsn != NULL && had_prev) {
            long long bound = ms_since(&r->prev_t, &now);
            if (lag < 0 || lag > bound)
                lag = bound;
        }
    }
    if (lsn != NULL) {
        snprintf(r->prev_lsn, sizeof r->prev_lsn, "%s", lsn);
        r->prev_t = now;
    } else {
        r->prev_lsn[0] = '\0';
    }
    int was_up = atomic_load(&r->up);
    atomic_store(&r->lag_ms, lag);
    atomic_store(&r->up, q != NULL);
    if (q != NULL && !was_up)
        tk_log_info("read replica reachable: reads may use it (lag %s)", lag < 0 ? "unknown"
                                                                         : lag <= r->max_lag_ms
                                                                             ? "within bound"
                                                                             : "above bound");
    else if (q == NULL && was_up)
        tk_log_warn("read replica unreachable: reads go to the primary");
    PQclear(p);
    PQclear(q);
}

static void *monitor_main(void *arg)
{
    tk_db_replica *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        pthread_mutex_unlock(&r->mu);
        check_once(r);
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_sec += r->check_ms / 1000;
        t.tv_nsec += (long)(r->check_ms % 1000) * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&r->mu);
        while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &t) == 0) {
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int tk_db_replica_start(tk_db_pool *primary, const char *primary_conninfo, const char *conninfo,
                        int size, int max_lag_ms, int check_ms, tk_db_replica **out)
{
    tk_db_replica *r = calloc(1, sizeof *r);
    if (r == NULL)
        return TK_ENOMEM;
    r->primary_conninfo = strdup(primary_conninfo);
    r->conninfo = strdup(conninfo);
    if (r->primary_conninfo == NULL || r->conninfo == NULL ||
        tk_db_pool_new(conninfo, size, &r->pool) != TK_OK) {
        free(r->primary_conninfo);
        free(r->conninfo);
        free(r);
        return TK_ENOMEM;
    }
    r->primary = primary;
    r->max_lag_ms = max_lag_ms;
    r->check_ms = check_ms;
    atomic_init(&r->up, 0);
    atomic_init(&r->lag_ms, -1);
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&r->thread, NULL, monitor_main, r) != 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        tk_db_pool_free(r->pool);
        free(r->primary_conninfo);
        free(r->conninfo);
        free(r);
        return TK_ENOMEM;
    }
    tk_db_pool_set_replica(primary, r);
    *out = r;
    return TK_OK;
}

void tk_db_replica_stop(tk_db_replica *r)
{
    if (r == NULL)
        return;
    tk_db_pool_set_replica(r->primary, NULL);
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    if (r->mon_primary)
        PQfinish(r->mon_primary);
    if (r->mon_replica)
        PQfinish(r->mon_replica);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    tk_db_pool_free(r->pool);
    free(r->primary_conninfo);
    free(r->conninfo);
    free(r);
}

tk_db_pool *tk_db_replica_pool(tk_db_replica *r)
{
    return r->pool;
}

int tk_db_replica_usable(tk_db_replica *r)
{
    long long lag = atomic_load(&r->lag_ms);
    return atomic_load(&r->up) && lag >= 0 && lag <= r->max_lag_ms;
}

void tk_db_replica_lost(tk_db_replica *r)
{
    if (atomic_exchange(&r->up, 0))
        tk_log_warn("read replica lost: reads go to the primary until it answers again");
}

void tk_db_replica_count_read(tk_db_replica *r, int on_replica)
{
    atomic_fetch_add(on_replica ? &r->reads_replica : &r->reads_primary, 1);
}

void tk_db_replica_count_fallback(tk_db_replica *r)
{
    atomic_fetch_add(&r->fallbacks, 1);
}

void tk_db_replica_get_stats(tk_db_replica *r, tk_db_replica_stats *out)
{
    long long lag = atomic_load(&r->lag_ms);
    int up = atomic_load(&r->up);
    out->state = !up                       ? TK_REPLICA_DOWN
                 : tk_db_replica_usable(r) ? TK_REPLICA_OK
                                           : TK_REPLICA_LAGGING;
    out->lag_seconds = lag < 0 ? -1.0 : (double)lag / 1000.0;
    out->reads_replica = atomic_load(&r->reads_replica);
    out->reads_primary = atomic_load(&r->reads_primary);
    out->fallbacks = atomic_load(&r->fallbacks);
    tk_db_pool_get_stats(r->pool, &out->pool);
}
