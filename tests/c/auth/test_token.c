/* Random bytes, tokens, UUIDs, SHA-256 and constant-time comparison
 * (runtime/auth/token.c). */
#include "auth/auth.h"
#include "test_util.h"

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

TEST(random_bytes)
{
    unsigned char a[64];
    unsigned char b[64];
    unsigned char big[100000];

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    ASSERT_EQ_INT(tk_auth_random_bytes(a, sizeof(a)), 0);
    ASSERT_EQ_INT(tk_auth_random_bytes(b, sizeof(b)), 0);
    ASSERT(memcmp(a, b, sizeof(a)) != 0);
    ASSERT_EQ_INT(tk_auth_random_bytes(big, sizeof(big)), 0); /* > one getrandom chunk */
    ASSERT_EQ_INT(tk_auth_random_bytes(NULL, 0), 0);
    ASSERT_EQ_INT(tk_auth_random_bytes(NULL, 1), TK_EINVAL);
    return 0;
}

TEST(token_shape)
{
    char t[TK_AUTH_TOKEN_LEN + 1];

    for (int i = 0; i < 100; i++) {
        ASSERT_EQ_INT(tk_auth_random_token(t, sizeof(t)), 0);
        ASSERT_EQ_INT(strlen(t), TK_AUTH_TOKEN_LEN);
        for (size_t j = 0; j < TK_AUTH_TOKEN_LEN; j++)
            ASSERT(is_b64url(t[j]));
        /* 256 bits = 42 full sextets + 4 bits: the last char has 2 zero bits */
        ASSERT(strchr("AEIMQUYcgkosw048", t[TK_AUTH_TOKEN_LEN - 1]) != NULL);
    }
    return 0;
}

TEST(token_small_buffer)
{
    char t[TK_AUTH_TOKEN_LEN];

    ASSERT_EQ_INT(tk_auth_random_token(t, sizeof(t)), TK_EINVAL);
    ASSERT_EQ_INT(tk_auth_random_token(NULL, 100), TK_EINVAL);
    return 0;
}

TEST(token_unique)
{
    enum { N = 1000 };
    static char t[N][TK_AUTH_TOKEN_LEN + 1];

    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(tk_auth_random_token(t[i], sizeof(t[i])), 0);
        for (int j = 0; j < i; j++)
            ASSERT_STR_NE(t[i], t[j]);
    }
    return 0;
}

TEST(uuid_shape)
{
    char u[TK_AUTH_UUID_LEN + 1];
    char v[TK_AUTH_UUID_LEN + 1];

    ASSERT_EQ_INT(tk_auth_uuid_v4(u, sizeof(u)), 0);
    ASSERT_EQ_INT(tk_auth_uuid_v4(v, sizeof(v)), 0);
    ASSERT_STR_NE(u, v);
    ASSERT_EQ_INT(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ASSERT(u[i] == '-');
        else
            ASSERT(strchr("0123456789abcdef", u[i]) != NULL && u[i] != '\0');
    }
    ASSERT(u[14] == '4');
    ASSERT(strchr("89ab", u[19]) != NULL);
    ASSERT_EQ_INT(tk_auth_uuid_v4(u, TK_AUTH_UUID_LEN), TK_EINVAL);
    return 0;
}

TEST(request_id_shape)
{
    char ids[40][TK_AUTH_UUID_LEN + 1]; /* more than one pool of 32 */

    for (int i = 0; i < 40; i++) {
        ASSERT_EQ_INT(tk_auth_request_id(ids[i], sizeof(ids[i])), 0);
        ASSERT_EQ_INT(strlen(ids[i]), 36);
        ASSERT(ids[i][14] == '4');
        ASSERT(strchr("89ab", ids[i][19]) != NULL);
        for (int j = 0; j < i; j++)
            ASSERT_STR_NE(ids[i], ids[j]);
    }
    ASSERT_EQ_INT(tk_auth_request_id(ids[0], TK_AUTH_UUID_LEN), TK_EINVAL);
    return 0;
}

TEST(sha256_vectors)
{
    char hex[65];

    tk_auth_sha256_hex("", 0, hex);
    ASSERT_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    tk_auth_sha256_hex(NULL, 0, hex);
    ASSERT_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    tk_auth_sha256_hex("abc", 3, hex);
    ASSERT_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    tk_auth_sha256_hex("a\0b", 3, hex); /* binary-safe */
    ASSERT_EQ_INT(strlen(hex), 64);
    ASSERT_STR_NE(hex, "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
    return 0;
}

TEST(ct_equal)
{
    ASSERT_EQ_INT(tk_auth_ct_equal("abc", "abc", 3), 1);
    ASSERT_EQ_INT(tk_auth_ct_equal("abc", "abd", 3), 0);
    ASSERT_EQ_INT(tk_auth_ct_equal("xbc", "abc", 3), 0);
    ASSERT_EQ_INT(tk_auth_ct_equal("a\0c", "a\0d", 3), 0);
    ASSERT_EQ_INT(tk_auth_ct_equal("a\0c", "a\0c", 3), 1);
    ASSERT_EQ_INT(tk_auth_ct_equal("abc", "xyz", 0), 1);
    /* every single-bit difference is seen */
    for (int bit = 0; bit < 8; bit++) {
        unsigned char x[2] = {0x5a, 0x00};
        unsigned char y[2] = {(unsigned char)(0x5a ^ (1 << bit)), 0x00};
        ASSERT_EQ_INT(tk_auth_ct_equal(x, y, 2), 0);
    }
    return 0;
}

TEST_MAIN(TEST_ENTRY(random_bytes), TEST_ENTRY(token_shape), TEST_ENTRY(token_small_buffer),
          TEST_ENTRY(token_unique), TEST_ENTRY(uuid_shape), TEST_ENTRY(request_id_shape),
          TEST_ENTRY(sha256_vectors), TEST_ENTRY(ct_equal))
