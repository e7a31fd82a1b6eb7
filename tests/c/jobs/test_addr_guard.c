/* The webhook address guard (runtime/jobs/addr_guard.c) over a table of
 * addresses in every notation inet_pton reads: plain IPv4 and IPv6, and
 * each IPv6 form that embeds an IPv4 address (mapped, compatible,
 * translated, NAT64, 6to4, Teredo) with private, loopback and public
 * payloads. */
#include "common.h"
#include "jobs/addr_guard.h"
#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static const struct {
    const char *addr;
    int blocked;
} cases[] = {
    /* IPv4 */
    {"127.0.0.1", 1},
    {"127.255.255.254", 1},
    {"10.1.2.3", 1},
    {"172.16.0.1", 1},
    {"172.31.255.255", 1},
    {"172.32.0.1", 0},
    {"172.15.255.255", 0},
    {"192.168.1.1", 1},
    {"169.254.169.254", 1},
    {"100.64.0.1", 1},
    {"100.127.255.255", 1},
    {"100.128.0.1", 0},
    {"0.0.0.0", 1},
    {"0.1.2.3", 1},
    {"224.0.0.1", 1},
    {"239.255.255.250", 1},
    {"240.0.0.1", 1},
    {"255.255.255.255", 1},
    {"192.0.0.8", 1},
    {"192.0.2.1", 1},
    {"198.18.0.1", 1},
    {"198.19.255.255", 1},
    {"198.20.0.1", 0},
    {"198.51.100.7", 1},
    {"203.0.113.9", 1},
    {"8.8.8.8", 0},
    {"1.1.1.1", 0},
    {"93.184.216.34", 0},
    {"11.0.0.1", 0},
    {"126.255.255.255", 0},
    {"128.0.0.1", 0},
    {"223.255.255.255", 0},
    /* IPv6 */
    {"::", 1},
    {"::1", 1},
    {"fe80::1", 1},
    {"febf::1", 1},
    {"fec0::1", 1},
    {"fc00::1", 1},
    {"fd12:3456::1", 1},
    {"ff02::1", 1},
    {"2001:db8::1", 1},
    {"100::1", 1},
    {"2606:4700:4700::1111", 0},
    {"2a00:1450:4001:81b::200e", 0},
    {"fe00::1", 0},
    {"100:0:0:1::1", 0},
    /* IPv4-mapped ::ffff:a.b.c.d */
    {"::ffff:127.0.0.1", 1},
    {"::ffff:10.0.0.1", 1},
    {"::ffff:169.254.169.254", 1},
    {"::ffff:7f00:1", 1},
    {"::ffff:8.8.8.8", 0},
    /* IPv4-compatible ::a.b.c.d */
    {"::127.0.0.1", 1},
    {"::10.0.0.1", 1},
    {"::192.168.0.1", 1},
    {"::169.254.169.254", 1},
    {"::0.0.0.2", 1},
    {"::8.8.8.8", 0},
    /* IPv4-translated ::ffff:0:a.b.c.d */
    {"::ffff:0:127.0.0.1", 1},
    {"::ffff:0:10.0.0.1", 1},
    {"::ffff:0:8.8.8.8", 0},
    /* NAT64 64:ff9b::/96 and the local-use 64:ff9b:1::/48 */
    {"64:ff9b::127.0.0.1", 1},
    {"64:ff9b::10.0.0.1", 1},
    {"64:ff9b::7f00:1", 1},
    {"64:ff9b::c0a8:101", 1},
    {"64:ff9b::8.8.8.8", 0},
    {"64:ff9b:1::8.8.8.8", 1},
    {"64:ff9b:1:abcd::1", 1},
    /* 6to4 2002:AABB:CCDD::/48 */
    {"2002:7f00:1::", 1},
    {"2002:7f00:0001::1", 1},
    {"2002:a00:1::1", 1},
    {"2002:c0a8:101::1", 1},
    {"2002:a9fe:a9fe::", 1},
    {"2002:808:808::1", 0},
    /* Teredo 2001:0:SERVER::~CLIENT */
    {"2001:0:7f00:1::", 1}, /* server 127.0.0.1 */
    {"2001:0:808:808::f7f7:f7f7", 0},
    {"2001:0:808:808::80ff:fffe", 1}, /* client 127.0.0.1 */
    {"2001:0:a00:1::f7f7:f7f7", 1},   /* server 10.0.0.1 */
};

TEST(table)
{
    for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        int want = cases[i].blocked != 0;
        if (strchr(cases[i].addr, ':') == NULL) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            in->sin_family = AF_INET;
            ASSERT_EQ_INT(inet_pton(AF_INET, cases[i].addr, &in->sin_addr), 1);
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            in6->sin6_family = AF_INET6;
            ASSERT_EQ_INT(inet_pton(AF_INET6, cases[i].addr, &in6->sin6_addr), 1);
        }
        int got = tk_addr_blocked((const struct sockaddr *)&ss);
        if (got != want)
            TEST_FAIL_("%s: blocked=%d, want %d", cases[i].addr, got, want);
    }
    return 0;
}

TEST(other_families_are_blocked)
{
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNIX;
    ASSERT_EQ_INT(tk_addr_blocked(&sa), 1);
    return 0;
}

int main(void)
{
    static const tk_test_entry tests[] = {
        TEST_ENTRY(table),
        TEST_ENTRY(other_families_are_blocked),
    };
    return tk_test_run_all(tests, TK_ARRAY_LEN(tests));
}
