/* Read-your-writes marks. In process: a fixed table of expiry times indexed
 * by a hash of the key, where a mark only ever extends a slot's expiry, so
 * two keys sharing a slot can make a read go to the primary needlessly but
 * never make a writer's read stale. In Redis: one key per writer with the
 * window as its expiry, on a few pooled connections (100 ms timeouts; after
 * a failure Redis is left alone for a second). */
#include "db/ryw.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obs/log.h"
#include "redis/conn.h"

#define SLOTS 8192 /* power of two */
#define REDIS_IDLE 16
#define REDIS_TIMEOUT_MS 100
#define REDIS_RETRY_MS 1000

static int window_ms;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t slots[SLOTS]; /* monotonic ms until which the slot's writers count */
static int use_redis;
static tk_redis_url rurl;
static redisContext *idle[REDIS_IDLE];
static int nidle;
static int64_t down_until;
static int warned;

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static unsigned slot_of(const char *key)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const char *s = key; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h & (SLOTS - 1);
}

int tk_db_ryw_init(const char *redis_url, int window, char *err, size_t errlen)
{
    window_ms = window;
    if (redis_url == NULL || window == 0)
        return TK_OK;
    if (tk_redis_url_parse(redis_url, &rurl, err, errlen) != TK_OK)
        return TK_ECONFIG;
    use_redis = 1;
    return TK_OK;
}

static redisContext *redis_take(void)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&mu);
    if (now < down_until) {
        pthread_mutex_unlock(&mu);
        return NULL;
    }
    redisContext *c = nidle > 0 ? idle[--nidle] : NULL;
    pthread_mutex_unlock(&mu);
    if (c != NULL)
        return c;
    char err[256];
    if (tk_redis_conn_open(&rurl, REDIS_TIMEOUT_MS, &c, err, sizeof err) != TK_OK) {
        pthread_mutex_lock(&mu);
        down_until = now + REDIS_RETRY_MS;
        int first = !warned;
        warned = 1;
        pthread_mutex_unlock(&mu);
        if (first)
            tk_log_warn("read-your-writes: Redis unavailable (%s); reads go to the primary "
                        "until it is back",
                        err);
        return NULL;
    }
    return c;
}

static void redis_give(redisContext *c, int broken)
{
    if (!broken) {
        pthread_mutex_lock(&mu);
        warned = 0;
        if (nidle < REDIS_IDLE) {
            idle[nidle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&mu);
    } else {
        pthread_mutex_lock(&mu);
        down_until = mono_ms() + REDIS_RETRY_MS;
        pthread_mutex_unlock(&mu);
    }
    if (c != NULL)
        redisFree(c);
}

void tk_db_ryw_note(const char *key)
{
    if (window_ms <= 0)
        return;
    int64_t until = mono_ms() + window_ms;
    unsigned s = slot_of(key);
    pthread_mutex_lock(&mu);
    if (slots[s] < until)
        slots[s] = until;
    pthread_mutex_unlock(&mu);
    if (!use_redis)
        return;
    redisContext *c = redis_take();
    if (c == NULL)
        return;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    char rkey[256], val[32];
    snprintf(rkey, sizeof rkey, "taskapi:lw:%s", key);
    snprintf(val, sizeof val, "%lld", (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000);
    redisReply *r = redisCommand(c, "SET %s %s PX %d", rkey, val, window_ms);
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    redis_give(c, !ok || c->err != 0);
}

int tk_db_ryw_recent(const char *key)
{
    if (window_ms <= 0)
        return 0;
    unsigned s = slot_of(key);
    pthread_mutex_lock(&mu);
    int local = slots[s] > mono_ms();
    pthread_mutex_unlock(&mu);
    if (local || !use_redis)
        return local;
    redisContext *c = redis_take();
    if (c == NULL)
        return 1;
    char rkey[256];
    snprintf(rkey, sizeof rkey, "taskapi:lw:%s", key);
    redisReply *r = redisCommand(c, "EXISTS %s", rkey);
    int ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
    int recent = !ok || r->integer > 0;
    freeReplyObject(r);
    redis_give(c, !ok || c->err != 0);
    return recent;
}

void tk_db_ryw_cleanup(void)
{
    pthread_mutex_lock(&mu);
    while (nidle > 0)
        redisFree(idle[--nidle]);
    use_redis = 0;
    memset(slots, 0, sizeof slots);
    pthread_mutex_unlock(&mu);
}
