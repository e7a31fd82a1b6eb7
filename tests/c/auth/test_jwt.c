/* HS256 access tokens (runtime/auth/jwt.c): sign/verify, key rotation by
 * kid, and every way a token must be refused. Hostile tokens are built by
 * hand here (own base64url + OpenSSL HMAC) so libjwt cannot tidy them up. */
#include "auth/auth.h"
#include "test_util.h"

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <time.h>

#define S1 "first-secret-0123456789abcdef-0123456789"
#define S2 "second-secret-0123456789abcdef-012345678"
#define U1 "6f1d8a2e-3b4c-4d5e-8f60-718293a4b5c6"
#define U7 "0c9e7f4a-1d2b-4c3d-9e4f-5a6b7c8d9e0f"
#define S3 "third-secret-0123456789abcdef-0123456789"

/* ---- helpers ------------------------------------------------------------ */

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *out++ = tab[v >> 18 & 63];
        *out++ = tab[v >> 12 & 63];
        *out++ = tab[v >> 6 & 63];
        *out++ = tab[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        *out++ = tab[v >> 18 & 63];
        *out++ = tab[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        *out++ = tab[v >> 18 & 63];
        *out++ = tab[v >> 12 & 63];
        *out++ = tab[v >> 6 & 63];
    }
    *out = '\0';
}

/* Builds header.payload.HMAC-SHA256(secret) into out[4096]. secret NULL:
 * the signature segment is `sig` verbatim. */
static void forge(char *out, const char *header, const char *payload, const char *secret,
                  const char *sig)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *p = out;

    b64url((const unsigned char *)header, strlen(header), p);
    p += strlen(p);
    *p++ = '.';
    b64url((const unsigned char *)payload, strlen(payload), p);
    p += strlen(p);
    if (secret != NULL) {
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out,
             (size_t)(p - out), mac, &maclen);
        *p++ = '.';
        b64url(mac, maclen, p);
    } else {
        *p++ = '.';
        strcpy(p, sig ? sig : "");
    }
}

static char payload_ok[256];

static const char *good_payload(void)
{
    long now = (long)time(NULL);
    snprintf(payload_ok, sizeof(payload_ok),
             "{\"sub\":\"" U7
             "\",\"role\":\"admin\",\"jti\":\"1b4e28ba-2fa1-41d2-883f-0016d3cca427\","
             "\"iat\":%ld,\"exp\":%ld}",
             now, now + 600);
    return payload_ok;
}

#define HDR_OK "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"

static int verify(const char *tok)
{
    tk_auth_claims c;
    return tk_auth_jwt_verify(tok, (int64_t)time(NULL), &c);
}

/* ---- tests ------------------------------------------------------------ */

TEST(sign_verify)
{
    tk_auth_claims c;
    tk_auth_claims v;
    char *tok = NULL;
    int64_t t0 = (int64_t)time(NULL);

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 900, &tok, &c), 0);
    ASSERT_NOT_NULL(tok);
    ASSERT_STR_EQ(c.sub, U1);
    ASSERT_STR_EQ(c.role, "user");
    ASSERT_EQ_INT(strlen(c.jti), 36);
    ASSERT_EQ_INT(c.jti[14], '4');
    ASSERT(c.iat >= t0 && c.iat <= t0 + 5);
    ASSERT_EQ_INT(c.exp - c.iat, 900);

    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, (int64_t)time(NULL), &v), 0);
    ASSERT_STR_EQ(v.sub, U1);
    ASSERT_STR_EQ(v.role, "user");
    ASSERT_STR_EQ(v.jti, c.jti);
    ASSERT_EQ_INT(v.iat, c.iat);
    ASSERT_EQ_INT(v.exp, c.exp);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, (int64_t)time(NULL), NULL), 0);
    free(tok);

    /* every token gets its own jti; claims may be NULL */
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 900, &tok, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, (int64_t)time(NULL), &v), 0);
    ASSERT_STR_NE(v.jti, c.jti);
    free(tok);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(field_limits)
{
    char *tok = NULL;
    tk_auth_claims v;

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    /* upper-case hex is a UUID too; the sub comes back as signed */
    ASSERT_EQ_INT(
        tk_auth_jwt_sign("1B4E28BA-2FA1-41D2-883F-0016D3CCA427", "admin", 7, 60, &tok, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, (int64_t)time(NULL), &v), 0);
    ASSERT_STR_EQ(v.sub, "1B4E28BA-2FA1-41D2-883F-0016D3CCA427");
    ASSERT_EQ_INT(v.ver, 7);
    free(tok);

    tok = (char *)1;
    /* a sub that is not a UUID is never signed */
    ASSERT_EQ_INT(tk_auth_jwt_sign("42", "user", 0, 60, &tok, NULL), TK_EINVAL);
    ASSERT_NULL(tok);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1 "0", "user", 0, 60, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign("1b4e28ba2fa141d2883f0016d3cca427", "user", 0, 60, &tok, NULL),
                  TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign("", "user", 0, 60, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign(NULL, "user", 0, 60, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "", 0, 60, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "0123456789abcdef", 0, 60, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "0123456789abcde", 0, 60, &tok, NULL), 0);
    free(tok);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", -1, 60, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 0, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, -5, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, INT64_MAX, &tok, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 60, NULL, NULL), TK_EINVAL);
    tk_auth_keys_cleanup();
    return 0;
}

/* Forges a token with the given extra claims (a JSON fragment starting with
 * a comma, or "") around a valid sub/role/jti/exp. */
static int verify_with(const char *sub, long iat, const char *extra)
{
    char payload[512];
    char tok[4096];
    long now = (long)time(NULL);

    snprintf(payload, sizeof(payload),
             "{\"sub\":\"%s\",\"role\":\"user\",\"jti\":\"1b4e28ba-2fa1-41d2-883f-0016d3cca427\","
             "\"iat\":%ld,\"exp\":%ld%s}",
             sub, iat, now + 600, extra);
    forge(tok, HDR_OK, payload, S1, NULL);
    return verify(tok);
}

TEST(time_claims)
{
    long now = (long)time(NULL);
    char extra[64];

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(verify_with(U7, now, ""), 0);
    /* iat: a little ahead is clock skew between instances, more is refused */
    ASSERT_EQ_INT(verify_with(U7, now + TK_AUTH_CLOCK_SKEW - 5, ""), 0);
    ASSERT_EQ_INT(verify_with(U7, now + TK_AUTH_CLOCK_SKEW + 5, ""), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now + 300, ""), TK_EAUTH);
    /* nbf: optional; in the past fine, in the future refused, never malformed */
    snprintf(extra, sizeof(extra), ",\"nbf\":%ld", now - 10);
    ASSERT_EQ_INT(verify_with(U7, now - 10, extra), 0);
    snprintf(extra, sizeof(extra), ",\"nbf\":%ld", now + 10);
    ASSERT_EQ_INT(verify_with(U7, now, extra), TK_EAUTH);
    snprintf(extra, sizeof(extra), ",\"nbf\":%ld", now + 3600);
    ASSERT_EQ_INT(verify_with(U7, now, extra), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":\"0\""), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":null"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":1.5"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":0"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":-5"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":1e3"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":1000.0"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":[1]"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":{}"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":true"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"nbf\":1"), 0);
    /* exp and iat must be integers too */
    ASSERT_EQ_INT(verify_with(U7, now, ",\"exp\":1e12"), TK_EAUTH);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(sub_and_ver_claims)
{
    static const char *bad_subs[] = {"7",
                                     "42",
                                     "admin",
                                     "1b4e28ba-2fa1-41d2-883f-0016d3cca42",
                                     "1b4e28ba-2fa1-41d2-883f-0016d3cca4270",
                                     "1b4e28ba-2fa1-41d2-883f_0016d3cca427",
                                     "1b4e28ba-2fa1-41d2-883f-0016d3cca42g",
                                     "{1b4e28ba-2fa1-41d2-883f-0016d3cca427}",
                                     "1b4e28ba2fa141d2883f0016d3cca427",
                                     "' OR 1=1 --"};
    long now = (long)time(NULL);
    tk_auth_claims c;
    char *tok = NULL;

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    for (size_t i = 0; i < TK_ARRAY_LEN(bad_subs); i++) {
        if (verify_with(bad_subs[i], now, "") != TK_EAUTH)
            TEST_FAIL_("sub %s accepted", bad_subs[i]);
    }
    /* ver: absent is 0; present must be an integer >= 0 */
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":0"), 0);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":12"), 0);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":-1"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":\"1\""), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":1.5"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":1.0"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":1e2"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":null"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":false"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":[3]"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":{\"v\":3}"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":-0"), 0);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":9223372036854775807"), 0);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":9223372036854775808"), TK_EAUTH);
    ASSERT_EQ_INT(verify_with(U7, now, ",\"ver\":99999999999999999999999"), TK_EAUTH);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 3, 60, &tok, &c), 0);
    ASSERT_EQ_INT(c.ver, 3);
    memset(&c, 0, sizeof(c));
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, (int64_t)now, &c), 0);
    ASSERT_EQ_INT(c.ver, 3);
    free(tok);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(no_keys)
{
    char *tok = NULL;
    char forged[4096];

    tk_auth_keys_cleanup();
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 60, &tok, NULL), TK_EINVAL);
    ASSERT_NULL(tok);
    forge(forged, HDR_OK, good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(forged), TK_EAUTH);
    return 0;
}

TEST(keys_init_errors)
{
    ASSERT_EQ_INT(tk_auth_keys_init(NULL, S1, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", NULL, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("", S1, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", "", NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k 1", S1, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k\"1", S1, NULL), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, "k0"), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, "k0:"), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, ":s"), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, "k0:s,"), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, ",k0:s"), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, "k1:other"), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, "k0:a,k0:b"), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, ""), 0);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, "k0:a:b,k-1.x_y:c"), 0); /* secret may hold ':' */
    tk_auth_keys_cleanup();
    tk_auth_keys_cleanup(); /* idempotent */
    return 0;
}

TEST(forged_with_right_key_is_accepted)
{
    char tok[4096];
    tk_auth_claims c;

    /* Sanity check of forge(): a hand-made but correct token verifies, so the
     * refusals below are about the one thing each of them changes. */
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    forge(tok, HDR_OK, good_payload(), S1, NULL);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, (int64_t)time(NULL), &c), 0);
    ASSERT_STR_EQ(c.role, "admin");
    forge(tok, "{\"kid\":\"k1\",\"alg\":\"HS256\"}", good_payload(), S1, NULL); /* no typ */
    ASSERT_EQ_INT(verify(tok), 0);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(tampered_payload)
{
    char *tok = NULL;
    char *other = NULL;
    char mixed[4096];

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 900, &tok, NULL), 0);
    char *p = strchr(tok, '.') + 5;
    *p = (*p == 'A') ? 'B' : 'A';
    ASSERT_EQ_INT(verify(tok), TK_EAUTH);
    free(tok);

    /* payload of an admin token, signature of a user token */
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 900, &tok, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "admin", 0, 900, &other, NULL), 0);
    size_t head_body = (size_t)(strrchr(other, '.') - other);
    memcpy(mixed, other, head_body);
    strcpy(mixed + head_body, strrchr(tok, '.'));
    ASSERT_EQ_INT(verify(mixed), TK_EAUTH);
    free(tok);
    free(other);

    /* a forged admin payload signed with the wrong secret */
    forge(mixed, HDR_OK, good_payload(), S2, NULL);
    ASSERT_EQ_INT(verify(mixed), TK_EAUTH);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(tampered_signature)
{
    char *tok = NULL;
    char buf[4096];

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 900, &tok, NULL), 0);
    strcpy(buf, tok);
    char *sig = strrchr(buf, '.') + 1;
    sig[0] = (sig[0] == 'A') ? 'B' : 'A';
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    /* truncated / extended / removed signature */
    strcpy(buf, tok);
    buf[strlen(buf) - 1] = '\0';
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    snprintf(buf, sizeof(buf), "%sA", tok);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    strcpy(buf, tok);
    strrchr(buf, '.')[1] = '\0';
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    strcpy(buf, tok);
    *strrchr(buf, '.') = '\0';
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    /* the untouched token still verifies */
    ASSERT_EQ_INT(verify(tok), 0);
    free(tok);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(expired)
{
    char *tok = NULL;
    tk_auth_claims c;
    tk_auth_claims v;
    char buf[4096];
    long now = (long)time(NULL);
    char payload[256];

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 60, &tok, &c), 0);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.exp - 1, &v), 0);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.exp, &v), TK_EAUTH);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.exp + 3600, &v), TK_EAUTH);
    ASSERT_EQ_INT(v.sub[0], '\0'); /* nothing leaks out of a refused token */
    free(tok);

    /* correctly signed, but exp in the past */
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"" U7 "\",\"role\":\"user\",\"jti\":\"j\",\"iat\":%ld,\"exp\":%ld}",
             now - 120, now - 60);
    forge(buf, HDR_OK, payload, S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(missing_or_bad_claims)
{
    static const char *payloads[] = {
        "{\"role\":\"user\",\"jti\":\"j\",\"iat\":1700000000,\"exp\":%ld}",
        "{\"sub\":\"" U7 "\",\"jti\":\"j\",\"iat\":1700000000,\"exp\":%ld}",
        "{\"sub\":\"" U7 "\",\"role\":\"user\",\"iat\":1700000000,\"exp\":%ld}",
        "{\"sub\":\"" U7 "\",\"role\":\"user\",\"jti\":\"j\",\"exp\":%ld}",
        "{\"sub\":\"" U7 "\",\"role\":\"user\",\"jti\":\"j\",\"iat\":1700000000,\"x\":%ld}",
        "{\"sub\":\"" U7 "\",\"role\":\"user\",\"jti\":\"j\",\"iat\":1700000000,\"exp\":\"%ld\"}",
        "{\"sub\":\"" U7 "\",\"role\":\"user\",\"jti\":\"j\",\"iat\":1700000000,\"exp\":%ld.5}",
        "{\"sub\":7,\"role\":\"user\",\"jti\":\"j\",\"iat\":1700000000,\"exp\":%ld}",
        "{\"sub\":\"\",\"role\":\"user\",\"jti\":\"j\",\"iat\":1700000000,\"exp\":%ld}",
        "{\"sub\":\"" U7 "\",\"role\":\"0123456789abcdef\",\"jti\":\"j\",\"iat\":1,\"exp\":%ld}",
        "{\"sub\":\"" U7 "\",\"role\":\"user\",\"jti\":\"j\",\"iat\":4102444800,\"exp\":%ld}",
        "[%ld]",
        "not json %ld",
    };
    char payload[256];
    char tok[4096];
    long exp = (long)time(NULL) + 600;

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    for (size_t i = 0; i < TK_ARRAY_LEN(payloads); i++) {
        snprintf(payload, sizeof(payload), payloads[i], exp);
        forge(tok, HDR_OK, payload, S1, NULL);
        if (verify(tok) != TK_EAUTH)
            TEST_FAIL_("payload %zu accepted: %s", i, payload);
    }
    tk_auth_keys_cleanup();
    return 0;
}

TEST(wrong_kid)
{
    char *tok = NULL;
    char buf[4096];

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 900, &tok, NULL), 0);
    ASSERT_EQ_INT(tk_auth_keys_init("k2", S2, NULL), 0);
    ASSERT_EQ_INT(verify(tok), TK_EAUTH);
    /* same kid, different secret */
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S2, NULL), 0);
    ASSERT_EQ_INT(verify(tok), TK_EAUTH);
    free(tok);

    /* the kid picks the key: right secret under another kid fails */
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, "k2:" S2), 0);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k2\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k2\"}", good_payload(), S2, NULL);
    ASSERT_EQ_INT(verify(buf), 0);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k9\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    /* no kid, empty kid, kid not a string, kid twice, kid nested */
    forge(buf, "{\"alg\":\"HS256\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":1}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k2\",\"kid\":\"k1\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k2\",\"kid\":\"k1\"}", good_payload(), S2, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":{\"kid\":\"k2\"}}", good_payload(), S1,
          NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    /* an escaped key name that a JSON parser reads as a second "kid" */
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k1\",\"\\u006bid\":\"k2\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k1\",\"\\u006bid\":\"k2\"}", good_payload(), S2, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(rotation)
{
    char *a = NULL;
    char *b = NULL;
    tk_auth_claims c;

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 900, &a, NULL), 0);
    /* rotate: k2 signs, k1 still verifies */
    ASSERT_EQ_INT(tk_auth_keys_init("k2", S2, "k1:" S1), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U7, "user", 0, 900, &b, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_verify(a, (int64_t)time(NULL), &c), 0);
    ASSERT_STR_EQ(c.sub, U1);
    ASSERT_EQ_INT(tk_auth_jwt_verify(b, (int64_t)time(NULL), &c), 0);
    ASSERT_STR_EQ(c.sub, U7);
    ASSERT(strcmp(a, b) != 0);
    /* rotate again: k1 retired */
    ASSERT_EQ_INT(tk_auth_keys_init("k3", S3, "k2:" S2 ",k0:zzzz"), 0);
    ASSERT_EQ_INT(verify(a), TK_EAUTH);
    ASSERT_EQ_INT(verify(b), 0);
    free(a);
    free(b);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(alg_none)
{
    char buf[4096];
    char *tok = NULL;

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    /* unsigned, with and without a (stolen) signature segment */
    forge(buf, "{\"alg\":\"none\",\"kid\":\"k1\"}", good_payload(), NULL, "");
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k1\"}", good_payload(), NULL, "");
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"none\",\"kid\":\"k1\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"None\",\"kid\":\"k1\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    /* alg given twice: HS256 first, none last (what a last-wins parser sees) */
    forge(buf, "{\"alg\":\"HS256\",\"kid\":\"k1\",\"alg\":\"none\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    /* no alg at all */
    forge(buf, "{\"kid\":\"k1\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);

    /* and the way libjwt itself makes an alg=none token */
    jwt_t *jwt = NULL;
    ASSERT_EQ_INT(jwt_new(&jwt), 0);
    ASSERT_EQ_INT(jwt_add_header(jwt, "kid", "k1"), 0);
    ASSERT_EQ_INT(jwt_add_grants_json(jwt, good_payload()), 0);
    tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    ASSERT_NOT_NULL(tok);
    ASSERT_EQ_INT(verify(tok), TK_EAUTH);
    free(tok);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(other_algs)
{
    static const jwt_alg_t algs[] = {JWT_ALG_HS384, JWT_ALG_HS512};
    char buf[4096];

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    /* HS384/HS512 with the right secret, made by libjwt */
    for (size_t i = 0; i < TK_ARRAY_LEN(algs); i++) {
        jwt_t *jwt = NULL;
        char *tok;
        ASSERT_EQ_INT(jwt_new(&jwt), 0);
        ASSERT_EQ_INT(jwt_set_alg(jwt, algs[i], (const unsigned char *)S1, (int)strlen(S1)), 0);
        ASSERT_EQ_INT(jwt_add_header(jwt, "kid", "k1"), 0);
        ASSERT_EQ_INT(jwt_add_grants_json(jwt, good_payload()), 0);
        tok = jwt_encode_str(jwt);
        jwt_free(jwt);
        ASSERT_NOT_NULL(tok);
        ASSERT_EQ_INT(verify(tok), TK_EAUTH);
        free(tok);
    }
    /* HS256 signature under another alg name */
    forge(buf, "{\"alg\":\"HS512\",\"kid\":\"k1\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"RS256\",\"kid\":\"k1\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"hs256\",\"kid\":\"k1\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    forge(buf, "{\"alg\":\"HS256 \",\"kid\":\"k1\"}", good_payload(), S1, NULL);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(garbage)
{
    static const char *bad[] = {
        "",
        ".",
        "..",
        "...",
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9..",
        "Bearer abc.def.ghi",
        "=.=.=",
        "\xff\xfe.\x01.\x02",
        "e30.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    static const char *headers[] = {
        "not json",
        "[\"alg\",\"HS256\"]",
        "{\"alg\":\"HS256\",\"kid\":\"k1\"",
        "{\"alg\":\"HS256\",\"kid\":\"k1\"}x",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",}",
        "{\"alg\":\"HS256\" \"kid\":\"k1\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":[1]}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":\"\\q\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k\\u0000\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWE\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":tru}",
        /* not flat */
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":{}}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":[]}",
        /* any key twice, also when it is neither alg nor kid */
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWT\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"\\u0061lg\":\"HS256\"}",
        /* not RFC 8259: invalid UTF-8, lone surrogates, NUL anywhere */
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":\"\xff\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":\"\xc0\xaf\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":\"\\ud800\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":\"\\udc00\\ud800\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":\"\\u0000\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\\u0000\":1}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":01}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":NaN}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\"} {}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\"}}",
        /* alg and kid: strings of the right form */
        "{\"alg\":\"HS256\\u0000\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS256HS256HS256HS256\",\"kid\":\"k1\"}",
        "{\"alg\":null,\"kid\":\"k1\"}",
        "{\"alg\":\"HS256\",\"kid\":null}",
        "{\"alg\":\"HS256\",\"kid\":\"k1 \"}",
        "{\"alg\":\"HS256\",\"kid\":\"k\xc3\xa9\"}",
        "{\"alg\":\"HS256\",\"kid\":"
        "\"k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k1k\"}",
        "\"HS256\"",
        "null",
    };
    char buf[12000];
    char *tok = NULL;

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_verify(NULL, (int64_t)time(NULL), NULL), TK_EAUTH);
    for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
        if (verify(bad[i]) != TK_EAUTH)
            TEST_FAIL_("garbage %zu accepted", i);
    }
    for (size_t i = 0; i < TK_ARRAY_LEN(headers); i++) {
        forge(buf, headers[i], good_payload(), S1, NULL);
        if (verify(buf) != TK_EAUTH)
            TEST_FAIL_("header %zu accepted: %s", i, headers[i]);
    }
    memset(buf, 'a', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    buf[100] = '.';
    buf[200] = '.';
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    for (int round = 0; round < 200; round++) {
        unsigned char raw[300];
        ASSERT_EQ_INT(tk_auth_random_bytes(raw, sizeof(raw)), 0);
        for (size_t i = 0; i < sizeof(raw); i++)
            buf[i] = (char)(raw[i] | 1); /* no NULs */
        buf[sizeof(raw)] = '\0';
        ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    }
    /* a good token with junk around it */
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 0, 900, &tok, NULL), 0);
    snprintf(buf, sizeof(buf), " %s", tok);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    snprintf(buf, sizeof(buf), "%s\n", tok);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    snprintf(buf, sizeof(buf), "%s.", tok);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    snprintf(buf, sizeof(buf), "%s.%s", tok, strrchr(tok, '.') + 1);
    ASSERT_EQ_INT(verify(buf), TK_EAUTH);
    ASSERT_EQ_INT(verify(tok), 0);
    free(tok);
    tk_auth_keys_cleanup();
    return 0;
}

TEST(header_forms_accepted)
{
    /* The header reader takes any flat object with alg and kid once: member
     * order, extra scalar members, white space and escapes are free. */
    static const char *headers[] = {
        "{\"kid\":\"k1\",\"alg\":\"HS256\"}",
        " { \"alg\" : \"HS256\" ,\n\t\"kid\" : \"k1\" } ",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWT\",\"n\":1.5e3,\"b\":true,\"z\":null}",
        "{\"alg\":\"HS256\",\"kid\":\"\\u006b1\"}",
        "{\"\\u0061lg\":\"HS\\u0032\\u00356\",\"kid\":\"k1\",\"note\":\"\xc3\xa9\\ud83d\\ude00\"}",
    };
    char buf[4096];

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    for (size_t i = 0; i < TK_ARRAY_LEN(headers); i++) {
        forge(buf, headers[i], good_payload(), S1, NULL);
        if (verify(buf) != 0)
            TEST_FAIL_("header %zu refused: %s", i, headers[i]);
    }
    tk_auth_keys_cleanup();
    return 0;
}

static void *worker(void *arg)
{
    int *failures = arg;
    for (int i = 0; i < 200; i++) {
        char *tok = NULL;
        tk_auth_claims c;
        tk_auth_claims v;
        if (tk_auth_jwt_sign(U1, "user", 0, 60, &tok, &c) != 0 ||
            tk_auth_jwt_verify(tok, (int64_t)time(NULL), &v) != 0 || strcmp(c.jti, v.jti) != 0)
            (*failures)++;
        free(tok);
    }
    return NULL;
}

/* The verified-token cache (jwt.c, "verified tokens"): a token verified
 * once answers the same claims again, the time checks still run, a token
 * one byte away from a cached one is refused, and a new key set forgets
 * every token verified under the old one. */
TEST(verified_cache)
{
    char *tok = NULL;
    tk_auth_claims c, v;

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_sign(U1, "user", 3, 60, &tok, &c), 0);
    for (int i = 0; i < 3; i++) {
        memset(&v, 0x55, sizeof v);
        ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.iat, &v), 0);
        ASSERT_STR_EQ(v.sub, U1);
        ASSERT_STR_EQ(v.jti, c.jti);
        ASSERT_EQ_INT(v.ver, 3);
        ASSERT_EQ_INT(v.exp, c.exp);
    }
    /* cached, and still expired at exp; not yet issued beyond the skew */
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.exp, &v), TK_EAUTH);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.iat - TK_AUTH_CLOCK_SKEW - 1, &v), TK_EAUTH);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.iat, &v), 0);

    /* each byte of the signature changed in turn: never the cached answer */
    size_t n = strlen(tok);
    char *bad = strdup(tok);
    ASSERT_NOT_NULL(bad);
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = n - 43; i < n; i++) {
        char was = bad[i];
        /* bit 4 of the sextet: a data bit even in the last character */
        bad[i] = tab[(strchr(tab, was) - tab) ^ 16];
        ASSERT_EQ_INT(tk_auth_jwt_verify(bad, c.iat, &v), TK_EAUTH);
        bad[i] = was;
    }
    bad[n - 1] = '\0'; /* a prefix of a cached token */
    ASSERT_EQ_INT(tk_auth_jwt_verify(bad, c.iat, &v), TK_EAUTH);
    free(bad);

    /* the same kid with another secret: the cached token is refused */
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S2, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.iat, &v), TK_EAUTH);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, NULL), 0);
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.iat, &v), 0);
    tk_auth_keys_cleanup();
    ASSERT_EQ_INT(tk_auth_jwt_verify(tok, c.iat, &v), TK_EAUTH);
    free(tok);
    return 0;
}

TEST(threads)
{
    pthread_t th[4];
    int failures[4] = {0};

    ASSERT_EQ_INT(tk_auth_keys_init("k1", S1, "k0:" S2), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, worker, &failures[i]), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ_INT(failures[i], 0);
    tk_auth_keys_cleanup();
    return 0;
}

TEST_MAIN(TEST_ENTRY(sign_verify), TEST_ENTRY(field_limits), TEST_ENTRY(time_claims),
          TEST_ENTRY(sub_and_ver_claims), TEST_ENTRY(no_keys), TEST_ENTRY(keys_init_errors),
          TEST_ENTRY(forged_with_right_key_is_accepted), TEST_ENTRY(tampered_payload),
          TEST_ENTRY(tampered_signature), TEST_ENTRY(expired), TEST_ENTRY(missing_or_bad_claims),
          TEST_ENTRY(wrong_kid), TEST_ENTRY(rotation), TEST_ENTRY(alg_none), TEST_ENTRY(other_algs),
          TEST_ENTRY(garbage), TEST_ENTRY(header_forms_accepted), TEST_ENTRY(verified_cache),
          TEST_ENTRY(threads))
