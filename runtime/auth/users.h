/* The user behind an access token, checked on every authenticated request:
 * the user must still exist, not be disabled, and the token must carry the
 * user's current token version (a password change bumps it, so every older
 * token stops working). A small process-wide cache keyed by user id, with a
 * short TTL (USER_CACHE_TTL_MS), saves the query on most requests; a change
 * made through any instance drops the entry at once on every instance
 * (tk_auth_users_invalidate, carried across instances by the realtime bus
 * as a TK_EVENT_USER message). Thread-safe. */
#ifndef TK_AUTH_USERS_H
#define TK_AUTH_USERS_H

#include <stdint.h>

#include "auth/auth.h"
#include "common.h"
#include "db/pool.h"

/* What the check needs to know about one user. */
typedef struct {
    int found;    /* 0: no such user (deleted) */
    int disabled; /* users.disabled_at is set */
    int64_t ver;  /* users.token_version */
} tk_auth_user_state;

/* Looks user `id` (a UUID, text) up. Returns 0 with *out filled (found 0
 * when there is no such user) or TK_EUNAVAIL/TK_EDB when it cannot say. */
typedef int (*tk_auth_user_fetch_fn)(void *arg, const char *id, tk_auth_user_state *out);

/* The fetch the server uses: one query through the pool. */
typedef struct {
    tk_db_pool *pool; /* borrowed; must outlive the cache's use */
    int timeout_ms;   /* wait for a free connection */
} tk_auth_users_db;

/* A tk_auth_user_fetch_fn; arg is a tk_auth_users_db. */
int tk_auth_users_fetch_db(void *arg, const char *id, tk_auth_user_state *out);

/* Installs the lookup (arg borrowed until tk_auth_users_cleanup) and the
 * cache TTL in milliseconds (0: no caching, one query per request). Empties
 * the cache. Until this is called, tk_auth_users_check accepts everyone. */
void tk_auth_users_init(int64_t ttl_ms, tk_auth_user_fetch_fn fetch, void *arg);

/* Forgets everything and the lookup (at shutdown). */
void tk_auth_users_cleanup(void);

/* Drops the cached state of user `id` on this instance (a malformed id is
 * ignored). A lookup that was in flight when this is called is not cached. */
void tk_auth_users_invalidate(const char *id);

/* Checks the user behind verified claims c at now_ms (a monotonic clock in
 * milliseconds). Returns 0 when the token may be used; TK_EAUTH with *why
 * (a static text) when the user is gone, disabled or the token predates
 * the user's current token version; TK_EUNAVAIL when the lookup failed. */
int tk_auth_users_check(const tk_auth_claims *c, int64_t now_ms, const char **why) TK_WUR;

typedef struct {
    long long hits, misses, invalidations;
} tk_auth_users_stats;

void tk_auth_users_get_stats(tk_auth_users_stats *out);

#endif
