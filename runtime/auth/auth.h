/* Auth primitives in C: bcrypt password hashing (libcrypt, $2b$), random
 * tokens, SHA-256, constant-time comparison, HS256 JWTs with a `kid` (libjwt)
 * and the in-process access-token denylist (revoked `jti`s until expiry).
 * All functions are thread-safe. Nothing here logs secrets. */
#ifndef TK_AUTH_AUTH_H
#define TK_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define TK_AUTH_HASH_MAX 128 /* buffer size for a bcrypt hash string */
#define TK_AUTH_TOKEN_LEN 43 /* base64url of 32 random bytes, no padding */
#define TK_AUTH_UUID_LEN 36

/* ---- passwords -------------------------------------------------------- */

/* Hashes `pw` (len bytes, may contain any byte but NUL) with bcrypt $2b$ at
 * `cost` into out (>= TK_AUTH_HASH_MAX). Returns 0, TK_EINVAL (len > 72 or
 * NUL inside), or TK_EIO. */
int tk_auth_password_hash(const char *pw, size_t len, int cost, char *out, size_t outlen) TK_WUR;

/* Returns 1 when `pw` matches `hash`, 0 when not. When `hash` is NULL or not
 * a bcrypt hash it still spends the time of one bcrypt check against a
 * built-in dummy hash (so "no such user" and "wrong password" take the same
 * time) and returns 0. The final comparison is constant-time. */
int tk_auth_password_verify(const char *pw, size_t len, const char *hash);

/* ---- random, hashing, comparison ------------------------------------- */

/* Fills buf with n bytes from getrandom(2). Returns 0 or TK_EIO. */
int tk_auth_random_bytes(void *buf, size_t n) TK_WUR;

/* Writes a NUL-terminated base64url token of 32 random bytes into out
 * (outlen > TK_AUTH_TOKEN_LEN). Returns 0 or TK_EIO/TK_EINVAL. */
int tk_auth_random_token(char *out, size_t outlen) TK_WUR;

/* Writes a random (v4) UUID string into out (outlen > TK_AUTH_UUID_LEN). */
int tk_auth_uuid_v4(char *out, size_t outlen) TK_WUR;

/* The same for a request id, from random bytes pooled per thread (one
 * getrandom(2) per 32 ids instead of one per request). A request id is
 * public (X-Request-Id, the logs): never use this for tokens or jti. */
int tk_auth_request_id(char *out, size_t outlen) TK_WUR;

/* Parses a UUID in its canonical text form (8-4-4-4-12 hex digits, either
 * case, nothing else) into out. Returns 0 or TK_EINVAL (out then partly
 * written). */
int tk_auth_uuid_parse(const char *s, unsigned char out[16]) TK_WUR;

/* Writes the lowercase hex SHA-256 of data into out[65] (NUL-terminated). */
void tk_auth_sha256_hex(const void *data, size_t len, char out[65]);

/* Returns 1 when the two buffers are equal, in time that depends only on n. */
int tk_auth_ct_equal(const void *a, const void *b, size_t n);

/* ---- JWT (HS256) ---------------------------------------------------- */

/* Installs the signing key (`kid`, `secret`) and, optionally, older keys
 * still accepted for verification, as "kid1:secret1,kid2:secret2". Copies
 * everything. Call once at start-up before any sign/verify. Returns 0 or
 * TK_EINVAL (empty secret, malformed list) / TK_ENOMEM. */
int tk_auth_keys_init(const char *kid, const char *secret, const char *previous) TK_WUR;

/* Frees what tk_auth_keys_init took. */
void tk_auth_keys_cleanup(void);

/* How far ahead of this server's clock a token's `iat` may be (another
 * instance's clock may run a little fast). `nbf`, which we never issue, gets
 * no such leeway: a token not valid yet is refused. */
#define TK_AUTH_CLOCK_SKEW 30

typedef struct {
    char sub[64];  /* user id: always a UUID in a verified token */
    char role[16]; /* "user" | "admin" */
    char jti[40];  /* token id (uuid) */
    int64_t iat;
    int64_t exp;
    int64_t ver; /* the user's token version when signed (claim "ver"; 0 if absent) */
} tk_auth_claims;

/* Signs an access token for sub (a UUID) / role valid `ttl` seconds from
 * now, with the user's token version `ver` (>= 0) and a fresh jti. On
 * success *token is a malloc'd string the caller frees with free(), and
 * `claims` (may be NULL) gets what was signed. Returns 0, TK_EINVAL or
 * TK_ENOMEM. */
int tk_auth_jwt_sign(const char *sub, const char *role, int64_t ver, int64_t ttl, char **token,
                     tk_auth_claims *claims) TK_WUR;

/* Verifies signature (key chosen by `kid`, alg must be HS256), the time
 * claims against `now` (unix seconds): exp in the future, iat at most
 * TK_AUTH_CLOCK_SKEW ahead, nbf (optional) not ahead; and the required
 * claims (sub a UUID; ver, optional, an integer >= 0); fills claims.
 * Returns 0 or TK_EAUTH for any invalid, expired, not-yet-valid or
 * malformed token. Does not consult the denylist or the user. The last 64
 * tokens that verified under the current key set are remembered (with their
 * claims), so a client's next request with the same token costs a comparison
 * and the time checks; tk_auth_keys_init/cleanup forget them. */
int tk_auth_jwt_verify(const char *token, int64_t now, tk_auth_claims *claims) TK_WUR;

/* ---- denylist ------------------------------------------------------- */

/* Denies `jti` until `exp` (unix seconds). Returns 0 or TK_ENOMEM. */
int tk_auth_deny_add(const char *jti, int64_t exp) TK_WUR;

/* Returns 1 when jti is denied at `now`, else 0. Prunes expired entries. */
int tk_auth_deny_check(const char *jti, int64_t now);

/* Frees the denylist (at shutdown). */
void tk_auth_deny_cleanup(void);

/* ---- HMAC (hmac.c) ------------------------------------------------- */

/* Writes the lowercase hex HMAC-SHA256 of data (len bytes) under key
 * (keylen bytes) into out[65], NUL-terminated. Returns 0, TK_EINVAL (key
 * over INT_MAX bytes) or TK_EIO (OpenSSL failed; out is then ""). */
int tk_auth_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char out[65]) TK_WUR;

#endif
