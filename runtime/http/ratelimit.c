/* In-process fixed-window counters: an open-addressing hash table of
 * (key, window start, count) under one mutex. */
#include "http/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
}

int tk_ratelimit_hit(const char *key, int limit, int window, int64_t now, tk_rate_result *out)
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

void tk_ratelimit_peek(const char *key, int limit, int window, int64_t now, tk_rate_result *out)
{
    pthread_mutex_lock(&mu);
    slot *s = cap ? find(slots, cap, key) : NULL;
    if (s && (s->key == NULL || now >= s->start + window))
        s = NULL;
    fill(out, s, limit, window, now, s == NULL || s->count < limit);
    pthread_mutex_unlock(&mu);
}

void tk_ratelimit_rejections_inc(void)
{
    atomic_fetch_add(&rejections, 1);
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
}
