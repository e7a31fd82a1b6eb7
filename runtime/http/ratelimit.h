/* Fixed-window rate limiting counters (API.md §9), in Redis when a deployment
 * has one (INCR + EXPIRE per key and window), else in process. A key is
 * "<bucket>:<subject>" (user id, client IP, email); each window is `window`
 * seconds long. Thread-safe; expired windows are swept as the table grows.
 * The limits themselves come from the Lua policy (scripts/policies/
 * ratelimits.lua) through the route table and the tk.ratelimit binding. */
#ifndef TK_HTTP_RATELIMIT_H
#define TK_HTTP_RATELIMIT_H

#include <stdint.h>

#include "common.h"
#include "redis/conn.h"

typedef struct {
    int allowed;   /* 1 when this hit is within the limit */
    int limit;     /* the limit applied */
    int remaining; /* hits left in this window after this one */
    int reset;     /* seconds until the window ends */
    int64_t start; /* start of the window counted (unix seconds), for tk_ratelimit_undo */
} tk_rate_result;

/* One bucket of a route's limits, as the Lua policy declared it (scripts/
 * policies/ratelimits.lua, checked by scripts/lib/ratelimit.lua): routes
 * naming the same bucket count against one budget per subject. */
#define TK_RATE_MAX_BUCKETS 4
typedef struct {
    char name[128]; /* the bucket's name, part of the counter key */
    int limit;      /* hits per window, >= 1 */
    int window;     /* seconds, 1..86400 */
    int per_ip;     /* 1: per client IP; 0: per user (per client IP before login) */
} tk_rate_bucket;

typedef struct {
    int n; /* 0: the route is not limited */
    tk_rate_bucket b[TK_RATE_MAX_BUCKETS];
} tk_rate_limits;

/* Shares the counters through Redis, on connections from `pool` (borrowed
 * until tk_ratelimit_cleanup), from now on: every instance of a deployment
 * then counts against the same budget. While the pool has no connection
 * (Redis down: the pool logs it), hits are counted in process. Call once
 * at start-up. */
void tk_ratelimit_use_redis(tk_redis_pool *pool);

/* Counts one hit on `key` (copied) at `now` and says whether it is allowed.
 * A hit over the limit is not counted further. Returns 0 or TK_ENOMEM (then
 * the hit is allowed: failing open beats refusing everyone). */
int tk_ratelimit_hit(const char *key, int limit, int window, int64_t now, tk_rate_result *out);

/* Takes back one hit counted on `key` in the window that began at `start`
 * (tk_rate_result.start of that hit), if that window is still counted: for
 * limits on failures, where the hit is counted before the attempt (so
 * concurrent attempts cannot overshoot) and returned when it succeeded. */
void tk_ratelimit_undo(const char *key, int window, int64_t start, int64_t now);

/* Reports the state of `key` without counting a hit. */
void tk_ratelimit_peek(const char *key, int limit, int window, int64_t now, tk_rate_result *out);

/* Hits refused because a bucket was over its limit (for /metrics). */
long long tk_ratelimit_rejections(void);

/* Frees every counter and stops using the Redis pool (at shutdown, before
 * the pool is freed). */
void tk_ratelimit_cleanup(void);

#endif
