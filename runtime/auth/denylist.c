/* The in-process access-token denylist: revoked `jti`s kept until their
 * token would have expired anyway. One mutex-protected open-addressing
 * table (linear probing); expired entries are dropped by rebuilding it.
 * Other instances learn of a revocation as a TK_RT_REVOKE message over
 * Redis (ws/bus.c adds it here on arrival); without REDIS_URL a
 * revocation stays in this process. */
#include "auth/auth.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CAP_MIN 64
#define PRUNE_EVERY 60 /* seconds between sweeps driven by tk_auth_deny_check */

typedef struct {
    char *jti; /* NULL: free slot */
    uint64_t hash;
    int64_t exp;
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry *slots;
static size_t cap; /* power of two, or 0 before the first add */
static size_t count;
static int64_t last_now;   /* newest clock seen by tk_auth_deny_check */
static int64_t last_prune; /* last_now at the last sweep */

/* FNV-1a. jtis reach here only from verified tokens or our own logout. */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Caller holds lock; table non-empty. Returns the slot of jti or NULL. */
static entry *find(const char *jti, uint64_t h)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (slots[i].jti == NULL)
            return NULL;
        if (slots[i].hash == h && strcmp(slots[i].jti, jti) == 0)
            return &slots[i];
    }
}

static void place(entry *tab, size_t tcap, entry e)
{
    size_t i = e.hash & (tcap - 1);
    while (tab[i].jti != NULL)
        i = (i + 1) & (tcap - 1);
    tab[i] = e;
}

/* Moves live entries (exp > now) into a table of ncap slots; frees the rest.
 * Returns 0 or TK_ENOMEM (then nothing changed). Caller holds lock. */
static int rebuild(size_t ncap, int64_t now)
{
    entry *tab = calloc(ncap, sizeof(*tab));
    size_t n = 0;

    if (tab == NULL)
        return TK_ENOMEM;
    for (size_t i = 0; i < cap; i++) {
        if (slots[i].jti == NULL)
            continue;
        if (slots[i].exp <= now) {
            free(slots[i].jti);
            continue;
        }
        place(tab, ncap, slots[i]);
        n++;
    }
    free(slots);
    slots = tab;
    cap = ncap;
    count = n;
    last_prune = now;
    return 0;
}

static size_t live_count(int64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < cap; i++)
        n += (slots[i].jti != NULL && slots[i].exp > now);
    return n;
}

/* The smallest capacity holding live + 1 entries at a load of one half. */
static size_t fit(size_t live)
{
    size_t ncap = CAP_MIN;
    while ((live + 1) * 2 > ncap)
        ncap *= 2;
    return ncap;
}

/* Makes room for one more entry, dropping expired ones if it must grow. */
static int reserve(void)
{
    if ((count + 1) * 2 <= cap)
        return 0;
    return rebuild(fit(live_count(last_now)), last_now);
}

int tk_auth_deny_add(const char *jti, int64_t exp)
{
    uint64_t h;
    entry *e;
    char *copy = NULL;
    int rc = TK_EINVAL;

    if (jti == NULL || jti[0] == '\0')
        return rc;
    h = hash_str(jti);
    pthread_mutex_lock(&lock);
    e = cap > 0 ? find(jti, h) : NULL;
    if (e != NULL) {
        if (exp > e->exp)
            e->exp = exp;
        rc = 0;
        goto fail;
    }
    rc = TK_ENOMEM;
    copy = strdup(jti);
    if (copy == NULL || reserve() != 0)
        goto fail;
    place(slots, cap, (entry){copy, h, exp});
    count++;
    copy = NULL;
    rc = 0;
fail:
    pthread_mutex_unlock(&lock);
    free(copy);
    return rc;
}

int tk_auth_deny_check(const char *jti, int64_t now)
{
    int denied = 0;
    uint64_t h;
    entry *e;

    if (jti == NULL)
        return 0;
    h = hash_str(jti);
    pthread_mutex_lock(&lock);
    if (now > last_now)
        last_now = now;
    if (cap > 0) {
        e = find(jti, h);
        denied = e != NULL && e->exp > now;
        /* Failing to sweep only costs memory; the answer above stands. */
        if (count > 0 && last_now - last_prune >= PRUNE_EVERY &&
            rebuild(fit(live_count(last_now)), last_now) != 0)
            last_prune = last_now;
    }
    pthread_mutex_unlock(&lock);
    return denied;
}

void tk_auth_deny_cleanup(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < cap; i++)
        free(slots[i].jti);
    free(slots);
    slots = NULL;
    cap = 0;
    count = 0;
    last_now = 0;
    last_prune = 0;
    pthread_mutex_unlock(&lock);
}
