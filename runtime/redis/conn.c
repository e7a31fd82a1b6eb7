/* REDIS_URL parsing, connecting, and the shared connection pool (conn.h). */
#include "redis/conn.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "obs/log.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies n bytes of s into out (size outlen), decoding %XX. */
static int decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || o + 1 >= outlen)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

static int parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    if (n == 0 || n > 9)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int tk_redis_url_parse(const char *url, tk_redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (url == NULL || *url == '\0') {
        tk_errf(err, errlen, "REDIS_URL: empty");
        return TK_ECONFIG;
    }
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7, *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/' || decode(p, n, u->path, sizeof u->path) != 0) {
            tk_errf(err, errlen, "REDIS_URL: expected unix:///path/to/socket");
            return TK_ECONFIG;
        }
        if (q && (strncmp(q, "?db=", 4) != 0 ||
                  parse_int(q + 4, strlen(q + 4), 0, 1000000, &u->db) != 0)) {
            tk_errf(err, errlen, "REDIS_URL: the only unix socket option is ?db=N");
            return TK_ECONFIG;
        }
        return TK_OK;
    }
    if (strncmp(url, "rediss://", 9) == 0) {
        tk_errf(err, errlen, "REDIS_URL: TLS (rediss://) is not supported; use redis://");
        return TK_ECONFIG;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        tk_errf(err, errlen, "REDIS_URL: expected redis://[[user]:password@]host[:port][/db]");
        return TK_ECONFIG;
    }
    const char *p = url + 8;
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *x = p; x < end; x++)
        if (*x == '@')
            at = x; /* the last @ ends the credentials */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (decode(p, (size_t)(colon - p), u->user, sizeof u->user) != 0 ||
                decode(colon + 1, (size_t)(at - colon - 1), u->password, sizeof u->password) != 0) {
                tk_errf(err, errlen, "REDIS_URL: malformed credentials");
                return TK_ECONFIG;
            }
        } else if (decode(p, (size_t)(at - p), u->password, sizeof u->password) != 0) {
            /* redis://secret@host: a bare credential is the password */
            tk_errf(err, errlen, "REDIS_URL: malformed credentials");
            return TK_ECONFIG;
        }
        p = at + 1;
    }
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL) {
            tk_errf(err, errlen, "REDIS_URL: malformed IPv6 address");
            return TK_ECONFIG;
        }
        host = p + 1;
        host_end = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':') {
                tk_errf(err, errlen, "REDIS_URL: malformed host");
                return TK_ECONFIG;
            }
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon ? colon : end;
        if (colon)
            port = colon + 1;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof u->host) {
        tk_errf(err, errlen, "REDIS_URL: missing host");
        return TK_ECONFIG;
    }
    memcpy(u->host, host, hl);
    u->host[hl] = '\0';
    if (port && parse_int(port, (size_t)(end - port), 1, 65535, &u->port) != 0) {
        tk_errf(err, errlen, "REDIS_URL: port must be 1..65535");
        return TK_ECONFIG;
    }
    if (slash && slash[1] != '\0' &&
        parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &u->db) != 0) {
        tk_errf(err, errlen, "REDIS_URL: the path must be a database number");
        return TK_ECONFIG;
    }
    return TK_OK;
}

/* Runs one command that must answer +OK (AUTH, SELECT). */
static int expect_ok(redisContext *c, redisReply *r, const char *what, char *err, size_t errlen)
{
    int rc = TK_OK;
    if (r == NULL) {
        tk_errf(err, errlen, "%s: %s", what, c->errstr[0] ? c->errstr : "no answer");
        rc = TK_EUNAVAIL;
    } else if (r->type == REDIS_REPLY_ERROR) {
        tk_errf(err, errlen, "%s refused: %s", what, r->str);
        rc = TK_EUNAVAIL;
    }
    freeReplyObject(r);
    return rc;
}

int tk_redis_conn_open(const tk_redis_url *u, int timeout_ms, redisContext **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c = u->path[0] ? redisConnectUnixWithTimeout(u->path, tv)
                                 : redisConnectWithTimeout(u->host, u->port, tv);
    if (c == NULL) {
        tk_errf(err, errlen, "out of memory");
        return TK_EUNAVAIL;
    }
    int rc = TK_EUNAVAIL;
    if (c->err) {
        tk_errf(err, errlen, "%s", c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        tk_errf(err, errlen, "cannot set the socket timeout");
        goto fail;
    }
    if (u->password[0]) {
        redisReply *r = u->user[0] ? redisCommand(c, "AUTH %s %s", u->user, u->password)
                                   : redisCommand(c, "AUTH %s", u->password);
        if (expect_ok(c, r, "AUTH", err, errlen) != TK_OK)
            goto fail;
    }
    if (u->db != 0) {
        redisReply *r = redisCommand(c, "SELECT %d", u->db);
        if (expect_ok(c, r, "SELECT", err, errlen) != TK_OK)
            goto fail;
    }
    *out = c;
    return TK_OK;
fail:
    redisFree(c);
    return rc;
}

/* ---- the pool ---------------------------------------------------------- */

struct tk_redis_pool {
    pthread_mutex_t mu;
    tk_redis_url url;
    int timeout_ms, backoff_ms;
    const char *consequence;
    redisContext *idle[TK_REDIS_POOL_IDLE];
    int nidle;
    int down;         /* in an outage (logged once, until a connect succeeds) */
    int probing;      /* during an outage, a caller is trying to connect */
    int64_t retry_at; /* monotonic ms: no connect before then */
    long long connects, failures;
};

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int tk_redis_pool_new(const char *url, int timeout_ms, int backoff_ms, const char *consequence,
                      tk_redis_pool **out, char *err, size_t errlen)
{
    *out = NULL;
    tk_redis_pool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        tk_errf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    if (tk_redis_url_parse(url, &p->url, err, errlen) != TK_OK) {
        free(p);
        return TK_ECONFIG;
    }
    pthread_mutex_init(&p->mu, NULL);
    p->timeout_ms = timeout_ms;
    p->backoff_ms = backoff_ms;
    p->consequence = consequence;
    *out = p;
    return TK_OK;
}

void tk_redis_pool_free(tk_redis_pool *p)
{
    if (p == NULL)
        return;
    while (p->nidle > 0)
        redisFree(p->idle[--p->nidle]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Under p->mu: enters (or prolongs) an outage. Returns 1 when it began now
 * (the caller logs it, outside the lock). Moves the idle connections to
 * `drop` (the caller frees them, outside the lock). */
static int fail_locked(tk_redis_pool *p, redisContext **drop, int *ndrop)
{
    p->failures++;
    p->retry_at = mono_ms() + p->backoff_ms;
    *ndrop = p->nidle;
    memcpy(drop, p->idle, (size_t)p->nidle * sizeof *drop);
    p->nidle = 0;
    int began = !p->down;
    p->down = 1;
    return began;
}

static void log_outage(const tk_redis_pool *p, const char *why)
{
    tk_log_warn("Redis unavailable (%s); %s until it is back (retrying every %d ms)", why,
                p->consequence, p->backoff_ms);
}

redisContext *tk_redis_pool_acquire(tk_redis_pool *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->down && (p->probing || mono_ms() < p->retry_at)) {
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    if (p->nidle > 0) {
        redisContext *c = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return c;
    }
    int probe = p->down; /* the one caller that tries during an outage */
    p->probing = probe;
    p->connects++;
    pthread_mutex_unlock(&p->mu);

    redisContext *c = NULL;
    char why[256];
    int rc = tk_redis_conn_open(&p->url, p->timeout_ms, &c, why, sizeof why);
    redisContext *drop[TK_REDIS_POOL_IDLE];
    int ndrop = 0, began = 0, recovered = 0;
    pthread_mutex_lock(&p->mu);
    if (probe)
        p->probing = 0;
    if (rc != TK_OK)
        began = fail_locked(p, drop, &ndrop);
    else if (p->down) {
        p->down = 0;
        recovered = 1;
    }
    pthread_mutex_unlock(&p->mu);
    while (ndrop > 0)
        redisFree(drop[--ndrop]);
    if (began)
        log_outage(p, why);
    if (recovered)
        tk_log_info("Redis is back");
    return c;
}

void tk_redis_pool_release(tk_redis_pool *p, redisContext *c, int broken)
{
    if (c == NULL)
        return;
    broken = broken || c->err != 0;
    char why[256];
    snprintf(why, sizeof why, "%s", c->err ? c->errstr : "unexpected reply");
    redisContext *drop[TK_REDIS_POOL_IDLE];
    int ndrop = 0, began = 0;
    pthread_mutex_lock(&p->mu);
    if (broken)
        began = fail_locked(p, drop, &ndrop);
    else if (!p->down && p->nidle < TK_REDIS_POOL_IDLE) {
        p->idle[p->nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (c != NULL)
        redisFree(c);
    while (ndrop > 0)
        redisFree(drop[--ndrop]);
    if (began)
        log_outage(p, why);
}

void tk_redis_pool_get_stats(tk_redis_pool *p, tk_redis_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->connects = p->connects;
    out->failures = p->failures;
    out->up = !p->down;
    out->idle = p->nidle;
    pthread_mutex_unlock(&p->mu);
}
