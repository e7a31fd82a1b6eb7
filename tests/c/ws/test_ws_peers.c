/* The per-address counts of runtime/ws/peers.c: IPv4 and its v4-mapped IPv6
 * form are one address, entries vanish when both counts are back to zero,
 * other families are refused, and the text form names the address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "test_util.h"
#include "ws/peers.h"

static struct sockaddr_in v4(const char *addr)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sa.sin_addr);
    return sa;
}

static struct sockaddr_in6 v6(const char *addr)
{
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, addr, &sa.sin6_addr);
    return sa;
}

TEST(counts_per_address)
{
    tk_ws_peers *p = NULL;
    ASSERT_EQ_INT(tk_ws_peers_new(&p), TK_OK);
    struct sockaddr_in a = v4("127.0.0.1"), b = v4("127.0.0.2");
    struct sockaddr_in6 a6 = v6("::ffff:127.0.0.1"), c6 = v6("2001:db8::1");
    tk_ws_peer_key ka, kb, ka6, kc6;
    ASSERT_EQ_INT(tk_ws_peer_key_of((struct sockaddr *)&a, &ka), TK_OK);
    ASSERT_EQ_INT(tk_ws_peer_key_of((struct sockaddr *)&b, &kb), TK_OK);
    ASSERT_EQ_INT(tk_ws_peer_key_of((struct sockaddr *)&a6, &ka6), TK_OK);
    ASSERT_EQ_INT(tk_ws_peer_key_of((struct sockaddr *)&c6, &kc6), TK_OK);

    ASSERT_NULL(tk_ws_peers_find(p, &ka));
    tk_ws_peer *ea = tk_ws_peers_get(p, &ka);
    ASSERT_NOT_NULL(ea);
    ea->pending = 2;
    ASSERT(tk_ws_peers_get(p, &ka6) == ea); /* the dual-stack form is the same address */
    ASSERT(tk_ws_peers_find(p, &ka) == ea);
    tk_ws_peer *eb = tk_ws_peers_get(p, &kb);
    ASSERT_NOT_NULL(eb);
    ASSERT(eb != ea);
    eb->open = 1;
    ASSERT_NOT_NULL(tk_ws_peers_get(p, &kc6));
    ASSERT_EQ_INT(tk_ws_peers_count(p), 3);

    ea->pending = 1;
    tk_ws_peers_put(p, ea); /* still counted: stays */
    ASSERT(tk_ws_peers_find(p, &ka) == ea);
    ea->pending = 0;
    tk_ws_peers_put(p, ea);
    ASSERT_NULL(tk_ws_peers_find(p, &ka));
    ASSERT_EQ_INT(tk_ws_peers_count(p), 2);
    eb->open = 0;
    tk_ws_peers_put(p, eb);
    ASSERT_EQ_INT(tk_ws_peers_count(p), 1);
    tk_ws_peers_free(p); /* frees what is left */
    return 0;
}

TEST(key_text_and_families)
{
    struct sockaddr_in a = v4("10.1.2.3");
    struct sockaddr_in6 b = v6("2001:db8::7");
    tk_ws_peer_key k;
    char text[64];
    ASSERT_EQ_INT(tk_ws_peer_key_of((struct sockaddr *)&a, &k), TK_OK);
    tk_ws_peer_key_text(&k, text, sizeof text);
    ASSERT_STR_EQ(text, "10.1.2.3");
    ASSERT_EQ_INT(tk_ws_peer_key_of((struct sockaddr *)&b, &k), TK_OK);
    tk_ws_peer_key_text(&k, text, sizeof text);
    ASSERT_STR_EQ(text, "2001:db8::7");
    struct sockaddr other;
    memset(&other, 0, sizeof other);
    other.sa_family = AF_UNIX;
    ASSERT_EQ_INT(tk_ws_peer_key_of(&other, &k), TK_EINVAL);
    return 0;
}

TEST(many_addresses)
{
    tk_ws_peers *p = NULL;
    ASSERT_EQ_INT(tk_ws_peers_new(&p), TK_OK);
    for (int i = 0; i < 10000; i++) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)i);
        tk_ws_peer_key k;
        ASSERT_EQ_INT(tk_ws_peer_key_of((struct sockaddr *)&a, &k), TK_OK);
        tk_ws_peer *e = tk_ws_peers_get(p, &k);
        ASSERT_NOT_NULL(e);
        e->pending++;
    }
    ASSERT_EQ_INT(tk_ws_peers_count(p), 10000);
    tk_ws_peers_free(p);
    return 0;
}

TEST_MAIN(TEST_ENTRY(counts_per_address), TEST_ENTRY(key_text_and_families),
          TEST_ENTRY(many_addresses))
