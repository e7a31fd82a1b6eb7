/* Read-your-writes marks. In process: a fixed table of expiry times indexed
 * by a hash of the key, where a mark only ever extends a slot's expiry, so
 * two keys sharing a slot can make a read go to the primary needlessly but
 * never make a writer's read stale. In Redis: one key per writer with the
 * window as its expiry, on connections from the shared pool (redis/conn.h:
 * 100 ms timeouts; after a failure Redis is left alone for a second). */
#include "db/ryw.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis/conn.h"

#define SLOTS 8192 /* power of two */

static int window_ms;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t slots[SLOTS]; /* monotonic ms until which the slot's writers count */
static tk_redis_pool *rpool; /* borrowed; NULL: in process only */

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

void tk_db_ryw_init(tk_redis_pool *pool, int window)
{
    window_ms = window;
    rpool = window > 0 ? pool : NULL;
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
    if (rpool == NULL)
        return;
    redisContext *c = tk_redis_pool_acquire(rpool);
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
    tk_redis_pool_release(rpool, c, !ok);
}

int tk_db_ryw_recent(const char *key)
{
    if (window_ms <= 0)
        return 0;
    unsigned s = slot_of(key);
    pthread_mutex_lock(&mu);
    int local = slots[s] > mono_ms();
    pthread_mutex_unlock(&mu);
    if (local || rpool == NULL)
        return local;
    redisContext *c = tk_redis_pool_acquire(rpool);
    if (c == NULL)
        return 1;
    char rkey[256];
    snprintf(rkey, sizeof rkey, "taskapi:lw:%s", key);
    redisReply *r = redisCommand(c, "EXISTS %s", rkey);
    int ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
    int recent = !ok || r->integer > 0;
    freeReplyObject(r);
    tk_redis_pool_release(rpool, c, !ok);
    return recent;
}

void tk_db_ryw_cleanup(void)
{
    pthread_mutex_lock(&mu);
    rpool = NULL;
    memset(slots, 0, sizeof slots);
    pthread_mutex_unlock(&mu);
}
