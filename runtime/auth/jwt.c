/* HS256 access tokens through libjwt 1.10. A process-wide key set (one
 * signing key plus older keys still accepted) is picked by the `kid` header.
 * The time claims (exp, iat, nbf) and the shape of sub (a UUID) are checked
 * here; revocation (denylist), the user and roles are left to callers. */
#include "auth/auth.h"
#include "b64url.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KID_MAX 64
#define TOKEN_MAX 4096 /* anything longer is not one of ours */
#define HEAD_MAX 512   /* encoded header segment */
#define SIG_LEN 43     /* base64url of a 32-byte HMAC-SHA256 */

typedef struct {
    char kid[KID_MAX + 1];
    unsigned char *secret;
    size_t len;
} key;

/* keys[0] signs; every key verifies. Written only by init/cleanup. */
static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;
static key *keys;
static size_t nkeys;

/* ---- verified tokens ------------------------------------------------- */
/* Verifying a token costs a header parse, libjwt's decode (base64, a JSON
 * parse, the HMAC) and the claim copies: ~6 % of a GET /tasks/:id's server
 * CPU (bench/README.md, "Session 2026-12-05 b"). A client sends the same
 * token with every request, so the tokens last verified under the current
 * key set are kept with their claims: a token equal byte for byte to one of
 * them has the same signature and claims, and only the time checks run
 * again. A token refused for its signature or shape is not kept. A slot
 * holds a copy of a token, as the request itself does; nothing reads it but
 * the comparison, which takes the same time wherever the bytes differ.
 * Replacing or dropping the key set empties the slots (vcache_gen: a
 * verification that raced with the change does not store its answer). */
#define VCACHE_SLOTS 64
#define VCACHE_TOKEN_MAX 512 /* ours are ~250 bytes; longer ones are verified each time */

typedef struct {
    size_t len; /* 0: empty */
    char token[VCACHE_TOKEN_MAX];
    tk_auth_claims claims;
    int64_t nbf;
} vslot;

static pthread_mutex_t vcache_lock = PTHREAD_MUTEX_INITIALIZER;
static vslot vcache[VCACHE_SLOTS];
static unsigned long vcache_gen; /* written under keys_lock (write) and vcache_lock */

/* Caller holds keys_lock for writing. */
static void vcache_clear(void)
{
    pthread_mutex_lock(&vcache_lock);
    vcache_gen++;
    for (size_t i = 0; i < VCACHE_SLOTS; i++)
        vcache[i].len = 0;
    pthread_mutex_unlock(&vcache_lock);
}

static size_t vcache_slot(const char *token, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * 1099511628211ULL;
    return (size_t)(h % VCACHE_SLOTS);
}

static int same_bytes(const char *a, const char *b, size_t len)
{
    unsigned char d = 0;
    for (size_t i = 0; i < len; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* 1 with *c and *nbf filled when token is in the cache. */
static int vcache_get(const char *token, size_t len, tk_auth_claims *c, int64_t *nbf)
{
    if (len == 0 || len > VCACHE_TOKEN_MAX)
        return 0;
    vslot *v = &vcache[vcache_slot(token, len)];
    int hit = 0;
    pthread_mutex_lock(&vcache_lock);
    if (v->len == len && same_bytes(v->token, token, len)) {
        *c = v->claims;
        *nbf = v->nbf;
        hit = 1;
    }
    pthread_mutex_unlock(&vcache_lock);
    return hit;
}

static void vcache_put(unsigned long gen, const char *token, size_t len, const tk_auth_claims *c,
                       int64_t nbf)
{
    if (len == 0 || len > VCACHE_TOKEN_MAX)
        return;
    vslot *v = &vcache[vcache_slot(token, len)];
    pthread_mutex_lock(&vcache_lock);
    if (gen == vcache_gen) {
        memcpy(v->token, token, len);
        v->len = len;
        v->claims = *c;
        v->nbf = nbf;
    }
    pthread_mutex_unlock(&vcache_lock);
}

/* ---- key set --------------------------------------------------------- */

/* A kid goes into JSON unescaped, so keep it to [A-Za-z0-9._-]{1,64}. */
static int kid_ok(const char *s, size_t n)
{
    if (n == 0 || n > KID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void keys_free(key *set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (set[i].secret != NULL)
            explicit_bzero(set[i].secret, set[i].len);
        free(set[i].secret);
    }
    free(set);
}

/* Appends (kid, secret) to set[*n]; 0, TK_EINVAL or TK_ENOMEM. */
static int key_add(key *set, size_t *n, const char *kid, size_t kidlen, const char *secret,
                   size_t len)
{
    if (!kid_ok(kid, kidlen) || len == 0 || len > INT_MAX)
        return TK_EINVAL;
    for (size_t i = 0; i < *n; i++) {
        if (strlen(set[i].kid) == kidlen && memcmp(set[i].kid, kid, kidlen) == 0)
            return TK_EINVAL; /* two keys under one kid would be ambiguous */
    }
    set[*n].secret = malloc(len);
    if (set[*n].secret == NULL)
        return TK_ENOMEM;
    memcpy(set[*n].secret, secret, len);
    set[*n].len = len;
    memcpy(set[*n].kid, kid, kidlen);
    set[*n].kid[kidlen] = '\0';
    (*n)++;
    return 0;
}

/* Also accepts being called again: the new set replaces the old one. */
int tk_auth_keys_init(const char *kid, const char *secret, const char *previous)
{
    key *set = NULL;
    size_t n = 0;
    size_t cap = 1;
    int rc = TK_EINVAL;

    if (kid == NULL || secret == NULL)
        goto fail;
    if (previous != NULL && previous[0] != '\0') {
        cap++;
        for (const char *p = previous; *p != '\0'; p++)
            cap += (*p == ',');
    }
    set = calloc(cap, sizeof(*set));
    if (set == NULL) {
        rc = TK_ENOMEM;
        goto fail;
    }
    rc = key_add(set, &n, kid, strlen(kid), secret, strlen(secret));
    if (rc != 0)
        goto fail;
    if (previous != NULL && previous[0] != '\0') {
        const char *p = previous;
        for (;;) {
            const char *end = strchr(p, ',');
            if (end == NULL)
                end = p + strlen(p);
            const char *colon = memchr(p, ':', (size_t)(end - p));
            if (colon == NULL) {
                rc = TK_EINVAL;
                goto fail;
            }
            rc = key_add(set, &n, p, (size_t)(colon - p), colon + 1, (size_t)(end - colon - 1));
            if (rc != 0)
                goto fail;
            if (*end == '\0')
                break;
            p = end + 1; /* a trailing comma leaves an empty entry: EINVAL */
        }
    }

    pthread_rwlock_wrlock(&keys_lock);
    key *old = keys;
    size_t nold = nkeys;
    keys = set;
    nkeys = n;
    vcache_clear();
    pthread_rwlock_unlock(&keys_lock);
    keys_free(old, nold);
    return 0;
fail:
    if (set != NULL)
        keys_free(set, n);
    return rc;
}

void tk_auth_keys_cleanup(void)
{
    pthread_rwlock_wrlock(&keys_lock);
    key *old = keys;
    size_t nold = nkeys;
    keys = NULL;
    nkeys = 0;
    vcache_clear();
    pthread_rwlock_unlock(&keys_lock);
    if (old != NULL)
        keys_free(old, nold);
}

/* Caller holds keys_lock. */
static const key *key_find(const char *kid)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (strcmp(keys[i].kid, kid) == 0)
            return &keys[i];
    }
    return NULL;
}

/* ---- header pre-parse ------------------------------------------------ */
/* libjwt 1.10 wants the key before it has read the header, so the header is
 * read here first (libjansson), strictly: a flat JSON object with "alg" and
 * "kid" exactly once. What libjwt later makes of it is cross-checked against
 * this. */

/* Reads the decoded header: a flat JSON object (every member a scalar, no
 * key twice) with "alg" and "kid" strings. libjansson refuses what is not
 * RFC 8259 JSON (trailing bytes, invalid UTF-8, lone surrogates, "\u0000");
 * JSON_REJECT_DUPLICATES compares decoded keys, so "\u006bid" is a second
 * "kid". Copies alg and kid (when they fit) into their buffers. */
static int head_parse(const char *json, size_t len, char *alg, size_t alen, char *kid, size_t klen)
{
    json_error_t err;
    json_t *head = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    json_t *v;
    int rc = -1;

    if (!json_is_object(head))
        goto done;
    for (void *it = json_object_iter(head); it != NULL; it = json_object_iter_next(head, it)) {
        v = json_object_iter_value(it);
        if (json_is_object(v) || json_is_array(v))
            goto done;
    }
    v = json_object_get(head, "alg");
    if (!json_is_string(v) || json_string_length(v) >= alen)
        goto done;
    memcpy(alg, json_string_value(v), json_string_length(v) + 1);
    v = json_object_get(head, "kid");
    if (!json_is_string(v) || json_string_length(v) >= klen)
        goto done;
    memcpy(kid, json_string_value(v), json_string_length(v) + 1);
    rc = 0;
done:
    json_decref(head);
    return rc;
}

/* Checks the token's shape (three base64url segments, a 43-char signature)
 * and reads the header: alg must be "HS256"; the kid goes to kid[]. */
static int head_kid(const char *token, char kid[KID_MAX + 1])
{
    unsigned char json[HEAD_MAX * 3 / 4 + 1];
    char alg[16];
    const char *dot[2] = {NULL, NULL};
    size_t ndots = 0;
    size_t len = strnlen(token, TOKEN_MAX + 1);
    long jlen;

    if (len > TOKEN_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 2)
                return -1;
            dot[ndots++] = token + i;
        } else if (tk_b64url_value((unsigned char)token[i]) < 0) {
            return -1;
        }
    }
    if (ndots != 2 || dot[0] == token || dot[1] == dot[0] + 1 ||
        token + len - dot[1] - 1 != SIG_LEN)
        return -1;
    if ((size_t)(dot[0] - token) > HEAD_MAX)
        return -1;
    jlen = tk_b64url_decode(token, (size_t)(dot[0] - token), json, 1);
    if (jlen <= 0)
        return -1;
    if (head_parse((const char *)json, (size_t)jlen, alg, sizeof(alg), kid, KID_MAX + 1) != 0)
        return -1;
    if (strcmp(alg, "HS256") != 0 || !kid_ok(kid, strlen(kid)))
        return -1;
    return 0;
}

/* ---- sign / verify --------------------------------------------------- */

/* Copies a non-empty string that fits (with its NUL) into dst[cap]. */
static int field_copy(char *dst, size_t cap, const char *src)
{
    size_t n;

    if (src == NULL)
        return -1;
    n = strnlen(src, cap);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

static int grant_int(jwt_t *jwt, const char *name, int64_t *out)
{
    long v;

    errno = 0;
    v = jwt_get_grant_int(jwt, name);
    if (errno != 0 || v <= 0)
        return -1; /* missing, or not a positive integer (libjwt gives 0) */
    *out = v;
    return 0;
}

/* An optional integer claim >= min: absent leaves *out alone; present but
 * not such an integer (a string, a float, null, too small) is -1. libjwt
 * 1.10 cannot tell "absent" from "not an integer", so the claim is taken as
 * JSON text (as libjwt re-encodes it) and read back with libjansson: only
 * an integer (no fraction, no exponent) passes. */
static int grant_opt_int(jwt_t *jwt, const char *name, long min, int64_t *out)
{
    char *text = jwt_get_grants_json(jwt, name);
    json_error_t err;
    json_t *v;
    json_int_t n;
    int rc = -1;

    if (text == NULL)
        return 0;
    v = json_loads(text, JSON_DECODE_ANY, &err);
    free(text);
    if (!json_is_integer(v))
        goto done;
    n = json_integer_value(v);
    if (n < min || n > LONG_MAX)
        goto done;
    *out = (int64_t)n;
    rc = 0;
done:
    json_decref(v);
    return rc;
}

static int sub_ok(const char *sub)
{
    unsigned char bin[16];
    return tk_auth_uuid_parse(sub, bin) == 0;
}

int tk_auth_jwt_sign(const char *sub, const char *role, int64_t ver, int64_t ttl, char **token,
                     tk_auth_claims *claims)
{
    tk_auth_claims c;
    jwt_t *jwt = NULL;
    char *out = NULL;
    int locked = 0;
    int rc = TK_EINVAL;
    int64_t now = (int64_t)time(NULL);

    memset(&c, 0, sizeof(c));
    if (token == NULL)
        goto fail;
    *token = NULL;
    if (field_copy(c.sub, sizeof(c.sub), sub) != 0 ||
        field_copy(c.role, sizeof(c.role), role) != 0 || !sub_ok(c.sub) || ver < 0 ||
        ver > LONG_MAX || ttl <= 0 || ttl > LONG_MAX - now)
        goto fail;
    c.ver = ver;
    c.iat = now;
    c.exp = now + ttl;
    rc = tk_auth_uuid_v4(c.jti, sizeof(c.jti));
    if (rc != 0)
        goto fail;

    rc = TK_ENOMEM;
    if (jwt_new(&jwt) != 0)
        goto fail;
    pthread_rwlock_rdlock(&keys_lock);
    locked = 1;
    if (nkeys == 0) {
        rc = TK_EINVAL; /* tk_auth_keys_init was not called */
        goto fail;
    }
    /* jwt_set_alg copies the key, so the lock can go right after. */
    if (jwt_set_alg(jwt, JWT_ALG_HS256, keys[0].secret, (int)keys[0].len) != 0 ||
        jwt_add_header(jwt, "kid", keys[0].kid) != 0)
        goto fail;
    pthread_rwlock_unlock(&keys_lock);
    locked = 0;
    if (jwt_add_grant(jwt, "sub", c.sub) != 0 || jwt_add_grant(jwt, "role", c.role) != 0 ||
        jwt_add_grant(jwt, "jti", c.jti) != 0 || jwt_add_grant_int(jwt, "iat", (long)c.iat) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)c.exp) != 0 ||
        jwt_add_grant_int(jwt, "ver", (long)c.ver) != 0)
        goto fail;
    out = jwt_encode_str(jwt); /* plain malloc in 1.10: free() works */
    if (out == NULL)
        goto fail;
    *token = out;
    if (claims != NULL)
        *claims = c;
    rc = 0;
fail:
    if (locked)
        pthread_rwlock_unlock(&keys_lock);
    jwt_free(jwt);
    return rc;
}

int tk_auth_jwt_verify(const char *token, int64_t now, tk_auth_claims *claims)
{
    char kid[KID_MAX + 1];
    tk_auth_claims c;
    jwt_t *jwt = NULL;
    const key *k;
    const char *hkid;
    int64_t nbf = 0;
    int locked = 0;
    int rc = TK_EAUTH;
    size_t len;
    unsigned long gen;

    memset(&c, 0, sizeof(c));
    if (claims != NULL)
        memset(claims, 0, sizeof(*claims));
    if (token == NULL)
        goto fail;
    len = strnlen(token, TOKEN_MAX + 1);
    if (vcache_get(token, len, &c, &nbf))
        goto times;
    if (head_kid(token, kid) != 0)
        goto fail;
    pthread_rwlock_rdlock(&keys_lock);
    locked = 1;
    gen = vcache_gen;
    k = key_find(kid);
    if (k == NULL)
        goto fail;
    if (jwt_decode(&jwt, token, k->secret, (int)k->len) != 0)
        goto fail;
    pthread_rwlock_unlock(&keys_lock);
    locked = 0;

    /* Trust libjwt's reading of the header only where it agrees with ours. */
    hkid = jwt_get_header(jwt, "kid");
    if (jwt_get_alg(jwt) != JWT_ALG_HS256 || hkid == NULL || strcmp(hkid, kid) != 0)
        goto fail;
    if (field_copy(c.sub, sizeof(c.sub), jwt_get_grant(jwt, "sub")) != 0 ||
        field_copy(c.role, sizeof(c.role), jwt_get_grant(jwt, "role")) != 0 ||
        field_copy(c.jti, sizeof(c.jti), jwt_get_grant(jwt, "jti")) != 0 ||
        grant_int(jwt, "iat", &c.iat) != 0 || grant_int(jwt, "exp", &c.exp) != 0 ||
        grant_opt_int(jwt, "nbf", 1, &nbf) != 0 || grant_opt_int(jwt, "ver", 0, &c.ver) != 0)
        goto fail;
    if (!sub_ok(c.sub))
        goto fail;
    vcache_put(gen, token, len, &c, nbf);
times:
    if (c.exp <= now || c.iat > c.exp || c.iat > now + TK_AUTH_CLOCK_SKEW || nbf > now)
        goto fail;
    if (claims != NULL)
        *claims = c;
    rc = 0;
fail:
    if (locked)
        pthread_rwlock_unlock(&keys_lock);
    jwt_free(jwt);
    return rc;
}
