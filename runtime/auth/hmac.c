/* HMAC-SHA256 (OpenSSL's one-shot HMAC) for signing outgoing webhook
 * bodies. Key management and what gets signed are the callers' business. */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth.h"

int tk_auth_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    if (keylen > (size_t)INT_MAX)
        return TK_EINVAL;
    /* HMAC() wants a non-NULL key pointer even for an empty key. */
    if (HMAC(EVP_sha256(), keylen ? key : "", (int)keylen, data ? data : (const void *)"", len, md,
             &mdlen) == NULL ||
        mdlen != 32)
        return TK_EIO;
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return TK_OK;
}
