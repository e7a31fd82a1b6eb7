/* A read replica (DATABASE_READ_URL): a pool of its own, attached to the
 * primary's pool so that whoever holds the primary's pool (tk.db) can send
 * reads there, and a monitor thread that measures the replica's lag every
 * REPLICA_CHECK_MS (the replica's replay position against the primary's
 * current WAL position; when it is behind, the time since the last
 * transaction it replayed). Reads go to the replica only while it answers
 * and lags at most REPLICA_MAX_LAG_MS; the routing itself (what is a read,
 * read-your-writes) is tk.db's (lua/l_db.c). Thread-safe. */
#ifndef TK_DB_REPLICA_H
#define TK_DB_REPLICA_H

#include "common.h"
#include "db/pool.h"

typedef struct tk_db_replica tk_db_replica;

/* Creates the replica's pool for `conninfo` (`size` slots), attaches it to
 * `primary` (tk_db_pool_replica) and starts the monitor, which also opens
 * a connection of its own to `primary_conninfo`. Nothing connects before
 * the monitor's first check: until the replica has answered once, reads go
 * to the primary. Returns 0 or TK_ENOMEM. */
int tk_db_replica_start(tk_db_pool *primary, const char *primary_conninfo, const char *conninfo,
                        int size, int max_lag_ms, int check_ms, tk_db_replica **out) TK_WUR;

/* Detaches from the primary's pool, stops the monitor, frees everything
 * (every replica connection must have been released). NULL is a no-op. */
void tk_db_replica_stop(tk_db_replica *r);

tk_db_pool *tk_db_replica_pool(tk_db_replica *r);

/* 1 when reads may go to the replica now: it answered the last check and
 * lags at most REPLICA_MAX_LAG_MS. */
int tk_db_replica_usable(tk_db_replica *r);

/* A read could not use the replica (no connection, lost mid-query): reads
 * go to the primary until the monitor reaches the replica again. */
void tk_db_replica_lost(tk_db_replica *r);

/* Counts a read served by the replica or by the primary, and a read that
 * tried the replica and was served by the primary instead. */
void tk_db_replica_count_read(tk_db_replica *r, int on_replica);
void tk_db_replica_count_fallback(tk_db_replica *r);

enum { TK_REPLICA_DOWN = 0, TK_REPLICA_OK = 1, TK_REPLICA_LAGGING = 2 };

typedef struct {
    int state;          /* TK_REPLICA_* */
    double lag_seconds; /* last measured; < 0 while unknown */
    long long reads_replica, reads_primary, fallbacks;
    tk_db_pool_stats pool;
} tk_db_replica_stats;

void tk_db_replica_get_stats(tk_db_replica *r, tk_db_replica_stats *out);

#endif
