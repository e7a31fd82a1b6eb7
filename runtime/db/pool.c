/* The libpq pool. Slots are guarded by one mutex; connecting and running
 * queries happen outside it. A connection found dead on acquire (its socket
 * readable with EOF, as after a server restart) is replaced before use. */
#include "db/pool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/log.h"

#define STMT_CACHE_SIZE 256 /* per connection; power of two */

typedef struct {
    char *sql; /* owned; NULL when the slot is free */
    unsigned hash;
    int num;
} stmt;

struct tk_db_conn {
    PGconn *pg;
    int broken;
    int nstmts;
    stmt stmts[STMT_CACHE_SIZE];
    tk_db_conn *next_idle;
};

struct tk_db_pool {
    char *conninfo;
    int size;
    int total; /* connections alive or being made */
    int in_use;
    int waiting;
    long long connects, failures;
    tk_db_conn *idle;
    struct tk_db_replica *_Atomic replica; /* reads may go there (db/replica.h) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

int tk_db_pool_new(const char *conninfo, int size, tk_db_pool **out)
{
    tk_db_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return TK_ENOMEM;
    p->conninfo = strdup(conninfo);
    if (p->conninfo == NULL) {
        free(p);
        return TK_ENOMEM;
    }
    p->size = size;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = p;
    return TK_OK;
}

static void conn_free(tk_db_conn *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < STMT_CACHE_SIZE; i++)
        free(c->stmts[i].sql);
    if (c->pg)
        PQfinish(c->pg);
    free(c);
}

void tk_db_pool_free(tk_db_pool *p)
{
    if (p == NULL)
        return;
    while (p->idle) {
        tk_db_conn *c = p->idle;
        p->idle = c->next_idle;
        conn_free(c);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->conninfo);
    free(p);
}

/* A pooled connection may have died while idle (server restart): its socket
 * is then readable and PQconsumeInput notices the EOF. */
static int conn_alive(tk_db_conn *c)
{
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK)
        return 0;
    /* A terminated backend first sends a FATAL message, then closes: keep
     * reading while the socket is readable so the EOF is seen too. */
    for (int i = 0; i < 8; i++) {
        struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0)
            break;
        if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)
            return 0;
        PGnotify *nt;
        while ((nt = PQnotifies(c->pg)) != NULL)
            PQfreemem(nt);
        PGresult *stray;
        while (!PQisBusy(c->pg) && (stray = PQgetResult(c->pg)) != NULL) {
            /* An asynchronous error (e.g. "terminating connection"): the
             * connection is not to be trusted any more. */
            int fatal = PQresultStatus(stray) == PGRES_FATAL_ERROR;
            PQclear(stray);
            if (fatal)
                return 0;
        }
    }
    return PQstatus(c->pg) == CONNECTION_OK;
}

static int conn_open(tk_db_pool *p, tk_db_conn **out, char *err, size_t errlen)
{
    tk_db_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TK_ENOMEM;
    /* fallback_: an application_name in DATABASE_URL (say, one per
     * instance, to tell them apart in pg_stat_activity) wins. */
    const char *keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    const char *vals[] = {p->conninfo, "5", "taskapi", NULL};
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        const char *msg = c->pg ? PQerrorMessage(c->pg) : "out of memory";
        tk_errf(err, errlen, "database unavailable: %.*s", (int)strcspn(msg, "\n"), msg);
        conn_free(c);
        return TK_EUNAVAIL;
    }
    PGresult *r = PQexec(c->pg, "SET TIME ZONE 'UTC'; SET client_min_messages = warning");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        tk_errf(err, errlen, "database unavailable: %s", PQerrorMessage(c->pg));
        conn_free(c);
        return TK_EUNAVAIL;
    }
    *out = c;
    return TK_OK;
}

int tk_db_pool_acquire(tk_db_pool *p, int timeout_ms, tk_db_conn **out, char *err, size_t errlen)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->idle) {
            tk_db_conn *c = p->idle;
            p->idle = c->next_idle;
            c->next_idle = NULL;
            p->in_use++;
            pthread_mutex_unlock(&p->mu);
            if (conn_alive(c)) {
                *out = c;
                return TK_OK;
            }
            tk_log_warn("database connection lost; reconnecting");
            conn_free(c);
            pthread_mutex_lock(&p->mu);
            p->in_use--;
            p->total--;
        }
        if (p->total < p->size) {
            p->total++;
            p->in_use++;
            pthread_mutex_unlock(&p->mu);
            tk_db_conn *c = NULL;
            int rc = conn_open(p, &c, err, errlen);
            pthread_mutex_lock(&p->mu);
            if (rc == TK_OK) {
                p->connects++;
                pthread_mutex_unlock(&p->mu);
                *out = c;
                return TK_OK;
            }
            p->failures++;
            p->total--;
            p->in_use--;
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        p->waiting++;
        int w = pthread_cond_timedwait(&p->cv, &p->mu, &deadline);
        p->waiting--;
        if (w == ETIMEDOUT && p->idle == NULL && p->total >= p->size) {
            pthread_mutex_unlock(&p->mu);
            tk_errf(err, errlen, "database pool exhausted: no connection free within %d ms",
                    timeout_ms);
            return TK_ETIMEDOUT;
        }
    }
}

void tk_db_pool_release(tk_db_pool *p, tk_db_conn *c)
{
    if (c == NULL)
        return;
    int broken =
        c->broken || PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE;
    if (broken)
        conn_free(c);
    pthread_mutex_lock(&p->mu);
    p->in_use--;
    if (broken) {
        p->total--;
    } else {
        c->next_idle = p->idle;
        p->idle = c;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void tk_db_pool_get_stats(tk_db_pool *p, tk_db_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->size = p->size;
    out->in_use = p->in_use;
    out->waiting = p->waiting;
    out->idle = 0;
    for (tk_db_conn *c = p->idle; c; c = c->next_idle)
        out->idle++;
    out->connects = p->connects;
    out->failures = p->failures;
    pthread_mutex_unlock(&p->mu);
}

static unsigned hash_str(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void mark_if_broken(tk_db_conn *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK)
        c->broken = 1;
}

PGresult *tk_db_conn_exec(tk_db_conn *c, const char *sql, int nparams, const char *const *values,
                          const int *lengths)
{
    unsigned h = hash_str(sql);
    unsigned idx = h & (STMT_CACHE_SIZE - 1);
    stmt *slot = NULL;
    /* Linear probing over a few slots; a full neighbourhood falls back to an
     * unprepared statement rather than evicting (statements are few). */
    for (int probe = 0; probe < 8; probe++) {
        stmt *s = &c->stmts[(idx + (unsigned)probe) & (STMT_CACHE_SIZE - 1)];
        if (s->sql == NULL) {
            slot = s;
            break;
        }
        if (s->hash == h && strcmp(s->sql, sql) == 0) {
            char name[24];
            snprintf(name, sizeof name, "tk%d", s->num);
            PGresult *r = PQexecPrepared(c->pg, name, nparams, values, lengths, NULL, 0);
            if (r == NULL || PQstatus(c->pg) != CONNECTION_OK) {
                mark_if_broken(c);
                if (c->broken) {
                    PQclear(r);
                    return NULL;
                }
            }
            return r;
        }
    }
    if (slot == NULL)
        goto unprepared;

    char name[24];
    int num = c->nstmts + 1;
    snprintf(name, sizeof name, "tk%d", num);
    PGresult *pr = PQprepare(c->pg, name, sql, nparams, NULL);
    if (pr == NULL || PQresultStatus(pr) != PGRES_COMMAND_OK) {
        mark_if_broken(c);
        if (c->broken) {
            PQclear(pr);
            return NULL;
        }
        return pr; /* the error result (syntax error, ...) goes to the caller */
    }
    PQclear(pr);
    slot->sql = strdup(sql);
    if (slot->sql == NULL) {
        /* Keep going unprepared; the named statement leaks on the server
         * until the connection closes, which is harmless. */
        goto unprepared;
    }
    slot->hash = h;
    slot->num = num;
    c->nstmts = num;
    PGresult *r = PQexecPrepared(c->pg, name, nparams, values, lengths, NULL, 0);
    if (r == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        mark_if_broken(c);
        if (c->broken) {
            PQclear(r);
            return NULL;
        }
    }
    return r;

unprepared:;
    PGresult *ur = PQexecParams(c->pg, sql, nparams, NULL, values, lengths, NULL, 0);
    if (ur == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        mark_if_broken(c);
        if (c->broken) {
            PQclear(ur);
            return NULL;
        }
    }
    return ur;
}

int tk_db_conn_command(tk_db_conn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = TK_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        mark_if_broken(c);
        tk_errf(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
        rc = c->broken ? TK_EUNAVAIL : TK_EDB;
    }
    PQclear(r);
    return rc;
}

int tk_db_conn_commit(tk_db_conn *c, char *err, size_t errlen)
{
    PGresult *r = PQexec(c->pg, "COMMIT");
    int rc = TK_OK;
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        mark_if_broken(c);
        tk_errf(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
        rc = c->broken ? TK_EUNAVAIL : TK_EDB;
    } else if (strcmp(PQcmdStatus(r), "ROLLBACK") == 0) {
        tk_errf(err, errlen, "transaction rolled back by the server");
        rc = TK_EDB;
    }
    PQclear(r);
    return rc;
}

int tk_db_conn_broken(tk_db_conn *c)
{
    return c->broken || PQstatus(c->pg) != CONNECTION_OK;
}

PGconn *tk_db_conn_pg(tk_db_conn *c)
{
    return c->pg;
}

void tk_db_pool_set_replica(tk_db_pool *p, struct tk_db_replica *r)
{
    atomic_store(&p->replica, r);
}

struct tk_db_replica *tk_db_pool_replica(tk_db_pool *p)
{
    return atomic_load_explicit(&p->replica, memory_order_acquire);
}
