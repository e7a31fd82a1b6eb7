/* Redis connections (hiredis 0.14): REDIS_URL parsing, a blocking connect
 * with timeouts that also runs AUTH and SELECT as the URL asks, and the one
 * pool of such connections that the request paths share (rate limits,
 * read-your-writes). hiredis has no URL parser of its own; this one
 * understands redis://[[user]:password@]host[:port][/db] and
 * unix:///path[?db=N]. The pub/sub bridge (bridge.h) keeps its own two
 * connections: they block in SUBSCRIBE and on a queue. */
#ifndef TK_REDIS_CONN_H
#define TK_REDIS_CONN_H

#include <hiredis/hiredis.h>

#include "common.h"

typedef struct {
    char host[256];     /* host name or address; empty for a unix socket */
    char path[256];     /* unix socket path, or empty */
    int port;           /* 6379 */
    char user[128];     /* ACL user, or empty */
    char password[256]; /* or empty */
    int db;             /* 0 */
} tk_redis_url;

/* Parses url into out. Returns 0 or TK_ECONFIG with the reason in err
 * (never the password). */
int tk_redis_url_parse(const char *url, tk_redis_url *out, char *err, size_t errlen) TK_WUR;

/* Connects to u within timeout_ms, sets the same timeout on every later
 * command, then authenticates and selects the database. Returns 0 with a
 * context the caller frees with redisFree, or TK_EUNAVAIL with the reason
 * in err. */
int tk_redis_conn_open(const tk_redis_url *u, int timeout_ms, redisContext **out, char *err,
                       size_t errlen) TK_WUR;

/* ---- the pool ---------------------------------------------------------- */

/* Blocking connections for short commands, kept idle between uses. While
 * Redis is down the pool answers "no connection" at once: after a failed
 * connect (or a connection given back broken) nobody connects for
 * backoff_ms, and then one caller at a time tries again, so an outage costs
 * one connect attempt per back-off period, not one per request. The start
 * of an outage is logged once (a warning naming `consequence`) and the
 * recovery once. Thread-safe. */

typedef struct tk_redis_pool tk_redis_pool;

#define TK_REDIS_POOL_IDLE 32        /* idle connections kept at most */
#define TK_REDIS_POOL_TIMEOUT_MS 100 /* connect and command timeout */
#define TK_REDIS_POOL_BACKOFF_MS 1000

/* Parses url (copied) into a new pool; nothing is connected yet.
 * `consequence` (borrowed, a string literal: it must outlive the pool)
 * completes the outage warning, e.g. "rate limits count in process".
 * Returns 0, TK_ECONFIG (reason in err) or TK_ENOMEM. Free with
 * tk_redis_pool_free. */
int tk_redis_pool_new(const char *url, int timeout_ms, int backoff_ms, const char *consequence,
                      tk_redis_pool **out, char *err, size_t errlen) TK_WUR;

/* Closes the idle connections and frees the pool; every connection must
 * have been released. NULL is a no-op. */
void tk_redis_pool_free(tk_redis_pool *p);

/* An idle connection, or a new one. NULL while Redis is down (during the
 * back-off, or when the connect fails): the caller then does without
 * Redis. A connection returned belongs to the caller until
 * tk_redis_pool_release. */
redisContext *tk_redis_pool_acquire(tk_redis_pool *p);

/* Gives c (from tk_redis_pool_acquire) back. broken: a command on it failed
 * (no answer, or not the answer expected); c->err set counts as broken too.
 * A broken connection is closed, the idle ones with it (after a failure
 * they are likely dead too), and the pool backs off as after a failed
 * connect. */
void tk_redis_pool_release(tk_redis_pool *p, redisContext *c, int broken);

typedef struct {
    long long connects; /* connect attempts */
    long long failures; /* failed connects and connections released broken */
    int up;             /* 0 during an outage, else 1 */
    int idle;           /* idle connections */
} tk_redis_pool_stats;

void tk_redis_pool_get_stats(tk_redis_pool *p, tk_redis_pool_stats *out);

#endif
