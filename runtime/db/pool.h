/* PostgreSQL connection pool (libpq): a fixed number of slots, connections
 * made lazily, a wait with a timeout when all are busy, dead connections
 * dropped and remade (so the pool recovers by itself after the server
 * restarts), and a per-connection prepared-statement cache. */
#ifndef TK_DB_POOL_H
#define TK_DB_POOL_H

#include <libpq-fe.h>

#include "common.h"

typedef struct tk_db_pool tk_db_pool;
typedef struct tk_db_conn tk_db_conn;

typedef struct {
    int size, in_use, idle, waiting;
    long long connects, failures;
} tk_db_pool_stats;

/* Creates a pool for `conninfo` (copied) with `size` slots; no connection is
 * made yet. Free with tk_db_pool_free once every connection is released. */
int tk_db_pool_new(const char *conninfo, int size, tk_db_pool **out) TK_WUR;
void tk_db_pool_free(tk_db_pool *p);

/* Takes a live connection, waiting up to timeout_ms for a free slot.
 * Returns 0, TK_ETIMEDOUT (all busy) or TK_EUNAVAIL (cannot connect; the
 * libpq reason, without credentials, goes to err). The caller gives it back
 * with tk_db_pool_release. */
int tk_db_pool_acquire(tk_db_pool *p, int timeout_ms, tk_db_conn **out, char *err,
                       size_t errlen) TK_WUR;

/* Returns a connection to the pool; a broken one is closed and its slot
 * freed for a new connection. */
void tk_db_pool_release(tk_db_pool *p, tk_db_conn *c);

void tk_db_pool_get_stats(tk_db_pool *p, tk_db_pool_stats *out);

/* Runs `sql` with text parameters (NULL entries are SQL NULL) as a prepared
 * statement, preparing it on this connection the first time. Returns the
 * PGresult (the caller PQclears it) — check PQresultStatus — or NULL when
 * the connection failed (the connection is then marked broken). */
PGresult *tk_db_conn_exec(tk_db_conn *c, const char *sql, int nparams, const char *const *values,
                          const int *lengths);

/* Runs a parameterless command (BEGIN, COMMIT, ...) with the simple protocol.
 * Returns 0 or TK_EDB/TK_EUNAVAIL with the server message in err. */
int tk_db_conn_command(tk_db_conn *c, const char *sql, char *err, size_t errlen) TK_WUR;

/* COMMIT; a COMMIT the server turned into ROLLBACK is a failure (TK_EDB). */
int tk_db_conn_commit(tk_db_conn *c, char *err, size_t errlen) TK_WUR;

/* 1 when the connection has failed and must not be reused. */
int tk_db_conn_broken(tk_db_conn *c);

PGconn *tk_db_conn_pg(tk_db_conn *c);

/* The read replica attached to this pool (db/replica.h), or NULL: set by
 * tk_db_replica_start, cleared by tk_db_replica_stop. */
struct tk_db_replica;
void tk_db_pool_set_replica(tk_db_pool *p, struct tk_db_replica *r);
struct tk_db_replica *tk_db_pool_replica(tk_db_pool *p);

#endif
