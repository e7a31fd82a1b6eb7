/* Password hashing with bcrypt ($2b$) through libxcrypt's reentrant calls
 * (crypt_gensalt_rn, crypt_rn) with a per-call struct crypt_data, so it is
 * thread-safe. Policy (minimum length, cost choice) is left to callers. */
#include "auth/auth.h"

#include <crypt.h>
#include <string.h>

#define PW_MAX 72 /* bcrypt ignores everything past 72 bytes; we refuse it */
#define BCRYPT_LEN 60
#define COST_MIN 4
#define COST_MAX 31

/* A real $2b$10$ hash of a throwaway password nobody knows; verifying against
 * it costs the same as verifying a real cost-10 hash. */
static const char dummy_hash[] = "$2b$10$6fIkWY9m7Ts0mSJaV1QAbeoL6o4eIKvT1zKAbXRyxeFQeuVqTXVJi";

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/';
}

/* Is h a well-formed "$2[aby]$NN$<53 chars>" string with 4 <= NN <= 31? */
static int is_bcrypt(const char *h)
{
    if (h == NULL || strnlen(h, BCRYPT_LEN + 1) != BCRYPT_LEN)
        return 0;
    if (h[0] != '$' || h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$' ||
        h[6] != '$')
        return 0;
    if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9')
        return 0;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < COST_MIN || cost > COST_MAX)
        return 0;
    for (int i = 7; i < BCRYPT_LEN; i++) {
        if (!is_b64(h[i]))
            return 0;
    }
    return 1;
}

/* Copies pw into a NUL-terminated buf[PW_MAX + 1]; 0 or TK_EINVAL. */
static int pw_copy(const char *pw, size_t len, char *buf)
{
    if (pw == NULL || len > PW_MAX || memchr(pw, '\0', len) != NULL)
        return TK_EINVAL;
    memcpy(buf, pw, len);
    buf[len] = '\0';
    return 0;
}

int tk_auth_password_hash(const char *pw, size_t len, int cost, char *out, size_t outlen)
{
    char buf[PW_MAX + 1];
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    unsigned char rbytes[16];
    struct crypt_data cd; /* 32 KiB; on the stack so no call shares it */
    const char *h;
    int rc;

    memset(&cd, 0, sizeof(cd));
    if (out == NULL || outlen < TK_AUTH_HASH_MAX || cost < COST_MIN || cost > COST_MAX) {
        rc = TK_EINVAL;
        goto fail;
    }
    out[0] = '\0';
    rc = pw_copy(pw, len, buf);
    if (rc != 0)
        goto fail;
    rc = tk_auth_random_bytes(rbytes, sizeof(rbytes));
    if (rc != 0)
        goto fail;
    if (crypt_gensalt_rn("$2b$", (unsigned long)cost, (const char *)rbytes, sizeof(rbytes), setting,
                         sizeof(setting)) == NULL) {
        rc = TK_EIO;
        goto fail;
    }
    h = crypt_rn(buf, setting, &cd, sizeof(cd));
    if (h == NULL || h[0] == '*' || strlen(h) >= outlen) {
        rc = TK_EIO;
        goto fail;
    }
    memcpy(out, h, strlen(h) + 1);
    rc = 0;
fail:
    explicit_bzero(buf, sizeof(buf));
    explicit_bzero(&cd, sizeof(cd));
    return rc;
}

int tk_auth_password_verify(const char *pw, size_t len, const char *hash)
{
    char buf[PW_MAX + 1];
    struct crypt_data cd;
    const char *setting = hash;
    const char *h;
    int real = 1;
    int ok = 0;

    memset(&cd, 0, sizeof(cd));
    if (!is_bcrypt(hash)) {
        setting = dummy_hash;
        real = 0;
    }
    if (pw_copy(pw, len, buf) != 0) {
        /* Still hash something so a refused password costs the same. */
        buf[0] = '\0';
        real = 0;
    }
    h = crypt_rn(buf, setting, &cd, sizeof(cd));
    if (h == NULL || strnlen(h, BCRYPT_LEN + 1) != BCRYPT_LEN)
        goto fail;
    /* Compare always, even for the dummy, then mask the answer. */
    ok = tk_auth_ct_equal(h, setting, BCRYPT_LEN) & real;
fail:
    explicit_bzero(buf, sizeof(buf));
    explicit_bzero(&cd, sizeof(cd));
    return ok;
}
