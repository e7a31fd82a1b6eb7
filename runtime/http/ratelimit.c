/* Fixed-window counters. In process: an open-addressing hash table of
 * (key, window start, count) under one mutex. With Redis: one key per
 * (key, window) incremented and given an expiry in one pipelined round
 * trip, on connections from the shared pool (redis/conn.h). */
#include "http/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis/conn.h"

typedef struct {
    char *key; /* NULL: empty slot */
    int64_t start;
    int64_t expires;
    int count;
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot *slots;
static size_t cap, used;
static atomic_llong rejections;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Finds the slot of key, or the empty slot where it would go. */
static slot *find(slot *t, size_t n, const char *key)
{
    size_t i = (size_t)hash(key) & (n - 1);
    for (;;) {
        if (t[i].key == NULL || strcmp(t[i].key, key) == 0)
            return &t[i];
        i = (i + 1) & (n - 1);
    }
}

/* Rebuilds the table without expired entries, growing it when needed. */
static int rehash(int64_t now)
{
    size_t live = 0;
    for (size_t i = 0; i < cap; i++)
        if (slots[i].key && slots[i].expires > now)
            live++;
    size_t ncap = 1024;
    while (ncap < live * 4)
        ncap *= 2;
    slot *nt = calloc(ncap, sizeof *nt);
    if (nt == NULL)
        return TK_ENOMEM;
    for (size_t i = 0; i < cap; i++) {
        if (slots[i].key == NULL)
            continue;
        if (slots[i].expires > now)
            *find(nt, ncap, slots[i].key) = slots[i];
        else
            free(slots[i].key);
    }
    free(slots);
    slots = nt;
    cap = ncap;
    used = live;
    return TK_OK;
}

static void fill(tk_rate_result *out, const slot *s, int limit, int window, int64_t now,
                 int allowed)
{
    out->allowed = allowed;
    out->limit = limit;
    int count = s ? s->count : 0;
    out->remaining = count >= limit ? 0 : limit - count;
    out->reset = s ? (int)(s->start + window - now) : window;
    if (out->reset < 1)
        out->reset = 1;
    out->start = s ? s->start : now - (now % window);
}

/* ---- Redis ----------------------------------------------------------------- */

static tk_redis_pool *rpool; /* borrowed; NULL: in process only */

void tk_ratelimit_use_redis(tk_redis_pool *pool)
{
    rpool = pool;
}

/* INCR + EXPIRE in one round trip. Returns the count, or -1 on failure. */
static long long redis_incr(redisContext *c, const char *key, int window, int64_t start)
{
    char rkey[320];
    snprintf(rkey, sizeof rkey, "taskapi:rl:%s:%lld", key, (long long)start);
    redisAppendCommand(c, "INCR %s", rkey);
    redisAppendCommand(c, "EXPIRE %s %d", rkey, window + 1);
    redisReply *a = NULL, *b = NULL;
    long long n = -1;
    if (redisGetReply(c, (void **)&a) == REDIS_OK && redisGetReply(c, (void **)&b) == REDIS_OK &&
        a != NULL && a->type == REDIS_REPLY_INTEGER)
        n = a->integer;
    if (a)
        freeReplyObject(a);
    if (b)
        freeReplyObject(b);
    return n;
}

/* Counts a hit in Redis; returns 0 with out filled, or -1 to fall back. */
static int redis_hit(const char *key, int limit, int window, int64_t now, tk_rate_result *out)
{
    redisContext *c = tk_redis_pool_acquire(rpool);
    if (c == NULL)
        return -1;
    int64_t start = now - (now % window);
    long long n = redis_incr(c, key, window, start);
    tk_redis_pool_release(rpool, c, n < 0);
    if (n < 0)
        return -1;
    out->allowed = n <= limit;
    out->limit = limit;
    out->remaining = n >= limit ? 0 : (int)(limit - n);
    out->reset = (int)(start + window - now);
    if (out->reset < 1)
        out->reset = 1;
    out->start = start;
    if (!out->allowed)
        atomic_fetch_add(&rejections, 1);
    return 0;
}

/* DECR that never goes below zero nor recreates an expired key. */
static const char undo_script[] = "local n = tonumber(redis.call('GET', KEYS[1]) or '0') "
                                  "if n > 0 then return redis.call('DECR', KEYS[1]) end return 0";

static int redis_undo(const char *key, int64_t start)
{
    redisContext *c = tk_redis_pool_acquire(rpool);
    if (c == NULL)
        return -1;
    char rkey[320];
    snprintf(rkey, sizeof rkey, "taskapi:rl:%s:%lld", key, (long long)start);
    redisReply *r = redisCommand(c, "EVAL %s 1 %s", undo_script, rkey);
    int ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
    if (r)
        freeReplyObject(r);
    tk_redis_pool_release(rpool, c, !ok);
    return ok ? 0 : -1;
}

static int redis_peek(const char *key, int limit, int window, int64_t now, tk_rate_result *out)
{
    redisContext *c = tk_redis_pool_acquire(rpool);
    if (c == NULL)
        return -1;
    int64_t start = now - (now % window);
    char rkey[320];
    snprintf(rkey, sizeof rkey, "taskapi:rl:%s:%lld", key, (long long)start);
    redisReply *r = redisCommand(c, "GET %s", rkey);
    long long n = -1;
    if (r != NULL && r->type == REDIS_REPLY_NIL)
        n = 0;
    else if (r != NULL && r->type == REDIS_REPLY_STRING)
        n = strtoll(r->str, NULL, 10);
    if (r)
        freeReplyObject(r);
    tk_redis_pool_release(rpool, c, n < 0);
    if (n < 0)
        return -1;
    out->allowed = n < limit;
    out->limit = limit;
    out->remaining = n >= limit ? 0 : (int)(limit - n);
    out->reset = (int)(start + window - now);
    if (out->reset < 1)
        out->reset = 1;
    return 0;
}

/* ---- in process --------------------------------------------------------------- */

static int local_hit(const char *key, int limit, int window, int64_t now, tk_rate_result *out);

int tk_ratelimit_hit(const char *key, int limit, int window, int64_t now, tk_rate_result *out)
{
    if (rpool && redis_hit(key, limit, window, now, out) == 0)
        return TK_OK;
    return local_hit(key, limit, window, now, out);
}

static int local_hit(const char *key, int limit, int window, int64_t now, tk_rate_result *out)
{
    int rc = TK_OK;
    pthread_mutex_lock(&mu);
    if ((cap == 0 || used * 2 >= cap) && rehash(now) != TK_OK) {
        fill(out, NULL, limit, window, now, 1);
        pthread_mutex_unlock(&mu);
        return TK_ENOMEM;
    }
    slot *s = find(slots, cap, key);
    if (s->key == NULL) {
        s->key = strdup(key);
        if (s->key == NULL) {
            fill(out, NULL, limit, window, now, 1);
            pthread_mutex_unlock(&mu);
            return TK_ENOMEM;
        }
        used++;
        s->start = now - (now % window);
        s->count = 0;
    } else if (now >= s->start + window) {
        s->start = now - (now % window);
        s->count = 0;
    }
    s->expires = s->start + window;
    int allowed = s->count < limit;
    if (allowed)
        s->count++;
    fill(out, s, limit, window, now, allowed);
    pthread_mutex_unlock(&mu);
    if (!allowed)
        atomic_fetch_add(&rejections, 1);
    return rc;
}

void tk_ratelimit_undo(const char *key, int window, int64_t start, int64_t now)
{
    (void)window;
    (void)now; /* the Redis pool keeps its own clock for its back-off */
    if (rpool && redis_undo(key, start) == 0)
        return;
    pthread_mutex_lock(&mu);
    slot *s = cap ? find(slots, cap, key) : NULL;
    if (s && s->key != NULL && s->start == start && s->count > 0)
        s->count--;
    pthread_mutex_unlock(&mu);
}

void tk_ratelimit_peek(const char *key, int limit, int window, int64_t now, tk_rate_result *out)
{
    if (rpool && redis_peek(key, limit, window, now, out) == 0)
        return;
    pthread_mutex_lock(&mu);
    slot *s = cap ? find(slots, cap, key) : NULL;
    if (s && (s->key == NULL || now >= s->start + window))
        s = NULL;
    fill(out, s, limit, window, now, s == NULL || s->count < limit);
    pthread_mutex_unlock(&mu);
}

long long tk_ratelimit_rejections(void)
{
    return atomic_load(&rejections);
}

void tk_ratelimit_cleanup(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < cap; i++)
        free(slots[i].key);
    free(slots);
    slots = NULL;
    cap = used = 0;
    pthread_mutex_unlock(&mu);
    rpool = NULL;
}
