/* Address ranges for TRUST_PROXY (runtime/http/cidr.c): IPv4 and IPv6
 * addresses and CIDR blocks, IPv4-mapped IPv6, the edges of a block, and
 * every malformed entry refused with the entry named. */
#include "http/cidr.h"
#include "test_util.h"

static tk_cidr_list *parse_ok(const char *s)
{
    tk_cidr_list *l = NULL;
    char err[256] = "";
    if (tk_cidr_list_parse(s, &l, err, sizeof err) != 0) {
        fprintf(stderr, "\"%s\" refused: %s\n", s, err);
        return NULL;
    }
    return l;
}

TEST(single_addresses)
{
    tk_cidr_list *l = parse_ok(" 127.0.0.1 ,::1,, 10.1.2.3");
    ASSERT_NOT_NULL(l);
    ASSERT_EQ_INT(tk_cidr_list_count(l), 3);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "127.0.0.1"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "::1"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "0:0:0:0:0:0:0:1"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "10.1.2.3"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "::ffff:10.1.2.3"), 1); /* mapped form, same host */
    ASSERT_EQ_INT(tk_cidr_list_match(l, "127.0.0.2"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "::2"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "10.1.2.30"), 0);
    /* not addresses */
    ASSERT_EQ_INT(tk_cidr_list_match(l, ""), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, NULL), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "127.0.0.1:80"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "[::1]"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, " 127.0.0.1"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "localhost"), 0);
    tk_cidr_list_free(l);
    return 0;
}

TEST(ipv4_blocks)
{
    tk_cidr_list *l = parse_ok("10.0.0.0/8, 192.168.16.0/20,172.16.5.4/32, 0.0.0.0/0");
    ASSERT_NOT_NULL(l);
    tk_cidr_list_free(l);

    l = parse_ok("10.0.0.0/8,192.168.16.0/20");
    ASSERT_NOT_NULL(l);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "10.0.0.0"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "10.255.255.255"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "11.0.0.0"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "9.255.255.255"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "192.168.16.0"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "192.168.31.255"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "192.168.32.0"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "192.168.15.255"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "::ffff:10.9.8.7"), 1);
    /* an IPv4 block never matches plain IPv6 addresses with the same bits */
    ASSERT_EQ_INT(tk_cidr_list_match(l, "a00::"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "::10.9.8.7"), 0);
    tk_cidr_list_free(l);

    l = parse_ok("0.0.0.0/0");
    ASSERT_NOT_NULL(l);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "203.0.113.9"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "2001:db8::1"), 0);
    tk_cidr_list_free(l);
    return 0;
}

TEST(ipv6_blocks)
{
    tk_cidr_list *l = parse_ok("fd00::/8, 2001:db8:abcd:12::/64,::1/128");
    ASSERT_NOT_NULL(l);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "fd12:3456::1"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "fe00::"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "fc00::1"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "2001:db8:abcd:12:ffff::9"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "2001:db8:abcd:13::"), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "::1"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "127.0.0.1"), 0);
    tk_cidr_list_free(l);

    /* a prefix that ends inside a byte */
    l = parse_ok("2001:db8:8000::/33");
    ASSERT_NOT_NULL(l);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "2001:db8:8000::1"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "2001:db8:ffff:ffff::"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "2001:db8:7fff::"), 0);
    tk_cidr_list_free(l);

    /* an IPv4-mapped block covers the IPv4 addresses */
    l = parse_ok("::ffff:127.0.0.0/104");
    ASSERT_NOT_NULL(l);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "127.3.2.1"), 1);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "128.0.0.1"), 0);
    tk_cidr_list_free(l);
    return 0;
}

TEST(empty)
{
    tk_cidr_list *l = parse_ok("");
    ASSERT_NOT_NULL(l);
    ASSERT_EQ_INT(tk_cidr_list_count(l), 0);
    ASSERT_EQ_INT(tk_cidr_list_match(l, "127.0.0.1"), 0);
    tk_cidr_list_free(l);
    l = parse_ok(" , ,");
    ASSERT_NOT_NULL(l);
    ASSERT_EQ_INT(tk_cidr_list_count(l), 0);
    tk_cidr_list_free(l);
    l = NULL;
    ASSERT_EQ_INT(tk_cidr_list_parse(NULL, &l, NULL, 0), 0);
    ASSERT_EQ_INT(tk_cidr_list_count(l), 0);
    tk_cidr_list_free(l);
    ASSERT_EQ_INT(tk_cidr_list_match(NULL, "127.0.0.1"), 0);
    tk_cidr_list_free(NULL);
    return 0;
}

TEST(malformed)
{
    static const char *bad[] = {
        "127.0.0.1/33",
        "::1/129",
        "10.0.0.0/-1",
        "10.0.0.0/",
        "10.0.0.0/8x",
        "10.0.0.0/ 8",
        "10.0.0.1/8", /* host bits set */
        "fd00::1/8",
        "10.0.0",
        "256.0.0.1",
        "localhost",
        "127.0.0.1:80",
        "[::1]",
        "::1%lo",
        "10.0.0.0/0008",
        "1.2.3.4 5.6.7.8",
        "10.0.0.0/8/8",
        "aaaa:bbbb:cccc:dddd:eeee:ffff:0000:1111:2222:3333:4444:5555:6666:7777:8888",
    };
    char err[256];
    for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
        char list[256];
        tk_cidr_list *l = NULL;
        snprintf(list, sizeof list, "127.0.0.1, %s, ::1", bad[i]);
        err[0] = '\0';
        if (tk_cidr_list_parse(list, &l, err, sizeof err) != TK_EINVAL) {
            tk_cidr_list_free(l);
            TEST_FAIL_("\"%s\" was accepted", bad[i]);
        }
        ASSERT_NULL(l);
        char shown[90];
        snprintf(shown, sizeof shown, "%.80s", bad[i]);
        if (strstr(err, shown) == NULL)
            TEST_FAIL_("the message does not name \"%s\": %s", bad[i], err);
    }
    return 0;
}

TEST_MAIN(TEST_ENTRY(single_addresses), TEST_ENTRY(ipv4_blocks), TEST_ENTRY(ipv6_blocks),
          TEST_ENTRY(empty), TEST_ENTRY(malformed))
