/* Read-your-writes for the read replica: who wrote within the last
 * READ_YOUR_WRITES_MS (a user id, or "ip:<address>" before login), so that
 * their reads go to the primary meanwhile. With REDIS_URL a write is marked
 * in Redis (SET taskapi:lw:<key> <unix ms> PX <window>) and every instance
 * sees it; it is always marked in process too, which is all there is
 * without Redis. While Redis cannot be asked, everyone counts as having
 * written (reads go to the primary: slower, never stale). Thread-safe. */
#ifndef TK_DB_RYW_H
#define TK_DB_RYW_H

#include "common.h"
#include "redis/conn.h"

/* Sets the window (0: off) and the Redis pool (NULL: in process only;
 * borrowed until tk_db_ryw_cleanup). Call once at start-up. */
void tk_db_ryw_init(tk_redis_pool *pool, int window_ms);

/* Marks `key` as having just written. */
void tk_db_ryw_note(const char *key);

/* 1 when `key` wrote within the window (or Redis cannot say), else 0. */
int tk_db_ryw_recent(const char *key);

/* Forgets the marks and stops using the pool (at shutdown, before the
 * pool is freed). */
void tk_db_ryw_cleanup(void);

#endif
