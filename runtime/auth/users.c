/* The user check behind every authenticated request (users.h). The cache is
 * a fixed, direct-mapped table of user states keyed by the binary UUID: a
 * collision just evicts, costing one query later. One mutex guards it; the
 * lookup itself runs outside the lock. An invalidation epoch keeps a lookup
 * that raced with an invalidation from caching what it read. */
#include "auth/users.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 4096 /* power of two */

typedef struct {
    unsigned char id[16];
    int used;
    tk_auth_user_state st;
    int64_t until_ms; /* valid while now_ms < until_ms */
} slot;

static struct {
    pthread_mutex_t mu;
    slot slots[SLOTS];
    uint64_t epoch; /* bumped by every invalidation */
    int64_t ttl_ms;
    tk_auth_user_fetch_fn fetch;
    void *arg;
    atomic_llong hits, misses, invalidations;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t slot_of(const unsigned char id[16])
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (int i = 0; i < 16; i++) {
        h ^= id[i];
        h *= 1099511628211ull;
    }
    return (size_t)(h & (SLOTS - 1));
}

void tk_auth_users_init(int64_t ttl_ms, tk_auth_user_fetch_fn fetch, void *arg)
{
    pthread_mutex_lock(&cache.mu);
    memset(cache.slots, 0, sizeof cache.slots);
    cache.epoch++;
    cache.ttl_ms = ttl_ms < 0 ? 0 : ttl_ms;
    cache.fetch = fetch;
    cache.arg = arg;
    pthread_mutex_unlock(&cache.mu);
}

void tk_auth_users_cleanup(void)
{
    tk_auth_users_init(0, NULL, NULL);
}

void tk_auth_users_invalidate(const char *id)
{
    unsigned char bin[16];
    if (tk_auth_uuid_parse(id, bin) != 0)
        return;
    size_t i = slot_of(bin);
    pthread_mutex_lock(&cache.mu);
    if (cache.slots[i].used && memcmp(cache.slots[i].id, bin, 16) == 0)
        cache.slots[i].used = 0;
    cache.epoch++;
    pthread_mutex_unlock(&cache.mu);
    atomic_fetch_add(&cache.invalidations, 1);
}

/* Decides from a user's state. */
static int judge(const tk_auth_claims *c, const tk_auth_user_state *st, const char **why)
{
    if (!st->found) {
        *why = "user no longer exists";
        return TK_EAUTH;
    }
    if (st->disabled) {
        *why = "user is disabled";
        return TK_EAUTH;
    }
    if (c->ver < st->ver) {
        *why = "access token predates a password change";
        return TK_EAUTH;
    }
    return 0;
}

int tk_auth_users_check(const tk_auth_claims *c, int64_t now_ms, const char **why)
{
    unsigned char bin[16];
    tk_auth_user_state st;

    *why = "invalid access token";
    if (tk_auth_uuid_parse(c->sub, bin) != 0)
        return TK_EAUTH; /* tk_auth_jwt_verify never lets this through */
    size_t i = slot_of(bin);

    pthread_mutex_lock(&cache.mu);
    tk_auth_user_fetch_fn fetch = cache.fetch;
    void *arg = cache.arg;
    slot *s = &cache.slots[i];
    if (fetch == NULL) {
        pthread_mutex_unlock(&cache.mu);
        return 0; /* not initialised: no user check (tools, unit tests) */
    }
    if (s->used && memcmp(s->id, bin, 16) == 0 && now_ms < s->until_ms) {
        st = s->st;
        pthread_mutex_unlock(&cache.mu);
        atomic_fetch_add(&cache.hits, 1);
        return judge(c, &st, why);
    }
    uint64_t epoch = cache.epoch;
    pthread_mutex_unlock(&cache.mu);
    atomic_fetch_add(&cache.misses, 1);

    memset(&st, 0, sizeof st);
    int rc = fetch(arg, c->sub, &st);
    if (rc != 0) {
        *why = "cannot check the user now";
        return TK_EUNAVAIL;
    }
    pthread_mutex_lock(&cache.mu);
    if (cache.epoch == epoch && cache.fetch == fetch && cache.ttl_ms > 0) {
        memcpy(s->id, bin, 16);
        s->used = 1;
        s->st = st;
        s->until_ms = now_ms + cache.ttl_ms;
    }
    pthread_mutex_unlock(&cache.mu);
    return judge(c, &st, why);
}

void tk_auth_users_get_stats(tk_auth_users_stats *out)
{
    out->hits = atomic_load(&cache.hits);
    out->misses = atomic_load(&cache.misses);
    out->invalidations = atomic_load(&cache.invalidations);
}

/* ---- the lookup through the pool ------------------------------------------ */

static const char *const user_sql =
    "SELECT disabled_at IS NOT NULL, token_version FROM users WHERE id = $1::uuid";

int tk_auth_users_fetch_db(void *arg, const char *id, tk_auth_user_state *out)
{
    const tk_auth_users_db *db = arg;
    tk_db_conn *conn = NULL;
    char err[256];
    int rc = tk_db_pool_acquire(db->pool, db->timeout_ms, &conn, err, sizeof err);
    if (rc != TK_OK)
        return TK_EUNAVAIL;
    const char *params[1] = {id};
    PGresult *res = tk_db_conn_exec(conn, user_sql, 1, params, NULL);
    rc = TK_EDB;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        goto out;
    memset(out, 0, sizeof *out);
    if (PQntuples(res) == 1) {
        out->found = 1;
        out->disabled = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        out->ver = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    rc = 0;
out:
    PQclear(res);
    tk_db_pool_release(db->pool, conn);
    return rc;
}
