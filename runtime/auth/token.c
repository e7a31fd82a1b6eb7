/* Random bytes (getrandom(2)), base64url tokens, v4 UUIDs, SHA-256 hex
 * (OpenSSL EVP) and constant-time comparison. Storage of tokens (hashed) is
 * the database layer's business. */
#include "auth/auth.h"
#include "b64url.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>

#define TOKEN_BYTES 32

static const char hexdig[] = "0123456789abcdef";

int tk_auth_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;

    if (buf == NULL && n > 0)
        return TK_EINVAL;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return TK_EIO;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int tk_auth_random_token(char *out, size_t outlen)
{
    unsigned char raw[TOKEN_BYTES];
    int rc;

    if (out == NULL || outlen <= TK_AUTH_TOKEN_LEN)
        return TK_EINVAL;
    rc = tk_auth_random_bytes(raw, sizeof(raw));
    if (rc != 0)
        goto fail;
    out[tk_b64url_encode(raw, sizeof(raw), out)] = '\0';
fail:
    explicit_bzero(raw, sizeof(raw));
    return rc;
}

/* Formats 16 random bytes as a v4 UUID (sets the version and variant bits). */
static void uuid_format(unsigned char b[16], char *out)
{
    char *p = out;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hexdig[b[i] >> 4];
        *p++ = hexdig[b[i] & 15];
    }
    *p = '\0';
}

int tk_auth_uuid_v4(char *out, size_t outlen)
{
    unsigned char b[16];
    int rc;

    if (out == NULL || outlen <= TK_AUTH_UUID_LEN)
        return TK_EINVAL;
    rc = tk_auth_random_bytes(b, sizeof(b));
    if (rc != 0)
        return rc;
    uuid_format(b, out);
    return 0;
}

#define RID_POOL 512 /* random bytes per getrandom(2): 32 request ids */

int tk_auth_request_id(char *out, size_t outlen)
{
    static _Thread_local unsigned char pool[RID_POOL];
    static _Thread_local size_t left;
    int rc;

    if (out == NULL || outlen <= TK_AUTH_UUID_LEN)
        return TK_EINVAL;
    if (left < 16) {
        rc = tk_auth_random_bytes(pool, sizeof(pool));
        if (rc != 0)
            return rc;
        left = sizeof(pool);
    }
    uuid_format(pool + sizeof(pool) - left, out);
    left -= 16;
    return 0;
}

static int hexnib(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tk_auth_uuid_parse(const char *s, unsigned char out[16])
{
    size_t n = 0;

    if (s == NULL)
        return TK_EINVAL;
    for (size_t i = 0; i < TK_AUTH_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return TK_EINVAL;
            continue;
        }
        int hi = hexnib(s[i]);
        int lo = hi < 0 ? -1 : hexnib(s[++i]);
        if (lo < 0)
            return TK_EINVAL;
        out[n++] = (unsigned char)(hi << 4 | lo);
    }
    return s[TK_AUTH_UUID_LEN] == '\0' ? 0 : TK_EINVAL;
}

/* When EVP_Digest fails (allocation) or data is NULL with len > 0, out is
 * left as the empty string. */
void tk_auth_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const unsigned char empty[1];

    out[0] = '\0';
    if (data == NULL && len > 0)
        return;
    if (data == NULL)
        data = empty; /* EVP wants a pointer even for len 0 */
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return;
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hexdig[md[i] >> 4];
        out[2 * i + 1] = hexdig[md[i] & 15];
    }
    out[64] = '\0';
}

int tk_auth_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    unsigned char diff = 0;

    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(x[i] ^ y[i]);
    /* Map 0 -> 1 and 1..255 -> 0 without a data-dependent branch. */
    return (int)(1 & (((unsigned)diff - 1) >> 8));
}
