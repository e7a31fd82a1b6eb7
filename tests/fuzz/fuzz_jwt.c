/* Fuzz target: access-token verification (runtime/auth/jwt.c). The first
 * input byte picks the shape: the rest as a whole token string; or as the
 * header JSON, or the payload JSON, of a token correctly signed with the
 * test key, so the header parser and the claims reading are reached past
 * the signature. Checks: verify answers 0 or TK_EAUTH, and on 0 the claims
 * are NUL-terminated, unexpired and not issued after they expire. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <string.h>

#include "auth/auth.h"
#include "fuzz_util.h"

#define SECRET "fuzz-secret-0123456789abcdef"
#define NOW 1800000000LL

static const char good_head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";
static const char good_payload[] =
    "{\"sub\":\"3f1c2a64-7a55-4b8e-9c1d-2b7f0d6e9a10\","
    "\"role\":\"user\",\"jti\":\"5d0e8c2a-1b3f-4c5d-8e9f-a0b1c2d3e4f5\","
    "\"iat\":1799999000,\"exp\":1800000900}";

/* base64url(head) "." base64url(payload) "." base64url(HMAC) */
static char *signed_token(const char *head, size_t hlen, const char *payload, size_t plen)
{
    size_t cap = (hlen + plen) * 4 / 3 + 128;
    char *t = malloc(cap);
    if (t == NULL)
        abort();
    size_t n = fuzz_b64url((const unsigned char *)head, hlen, t);
    t[n++] = '.';
    n += fuzz_b64url((const unsigned char *)payload, plen, t + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)t, n, mac,
             &maclen) == NULL)
        abort();
    t[n++] = '.';
    fuzz_b64url(mac, maclen, t + n);
    return t;
}

static void check(const char *token)
{
    tk_auth_claims c;
    int rc = tk_auth_jwt_verify(token, NOW, &c);
    FUZZ_CHECK(rc == 0 || rc == TK_EAUTH);
    if (rc == 0) {
        FUZZ_CHECK(memchr(c.sub, '\0', sizeof c.sub) != NULL && c.sub[0] != '\0');
        FUZZ_CHECK(memchr(c.role, '\0', sizeof c.role) != NULL);
        FUZZ_CHECK(memchr(c.jti, '\0', sizeof c.jti) != NULL);
        FUZZ_CHECK(c.exp > NOW && c.iat <= c.exp);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (tk_auth_keys_init("k1", SECRET, "old:another-secret-0123456789") != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    char *token;
    switch (data[0] % 3) {
    case 0:
        token = fuzz_cstr(data + 1, n);
        break;
    case 1:
        token = signed_token(rest, n, good_payload, strlen(good_payload));
        break;
    default:
        token = signed_token(good_head, strlen(good_head), rest, n);
        break;
    }
    check(token);
    free(token);
    return 0;
}
