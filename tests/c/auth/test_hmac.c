/* HMAC-SHA256 for webhook signatures (runtime/auth/hmac.c), against the
 * test vectors of RFC 4231. */
#include "auth/auth.h"
#include "test_util.h"

TEST(rfc4231_vectors)
{
    char out[65];
    unsigned char key1[20], key3[20], data3[50], key6[131];

    memset(key1, 0x0b, sizeof key1);
    ASSERT_EQ_INT(tk_auth_hmac_sha256_hex(key1, sizeof key1, "Hi There", 8, out), 0);
    ASSERT_STR_EQ(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    ASSERT_EQ_INT(tk_auth_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, out), 0);
    ASSERT_STR_EQ(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    memset(key3, 0xaa, sizeof key3);
    memset(data3, 0xdd, sizeof data3);
    ASSERT_EQ_INT(tk_auth_hmac_sha256_hex(key3, sizeof key3, data3, sizeof data3, out), 0);
    ASSERT_STR_EQ(out, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

    /* a key longer than the block size is hashed first */
    memset(key6, 0xaa, sizeof key6);
    const char *msg6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    ASSERT_EQ_INT(tk_auth_hmac_sha256_hex(key6, sizeof key6, msg6, strlen(msg6), out), 0);
    ASSERT_STR_EQ(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    return 0;
}

TEST(empty_key_and_body)
{
    char out[65];
    ASSERT_EQ_INT(tk_auth_hmac_sha256_hex("", 0, "", 0, out), 0);
    ASSERT_STR_EQ(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    ASSERT_EQ_INT(tk_auth_hmac_sha256_hex(NULL, 0, NULL, 0, out), 0);
    ASSERT_STR_EQ(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    return 0;
}

TEST_MAIN(TEST_ENTRY(rfc4231_vectors), TEST_ENTRY(empty_key_and_body))
