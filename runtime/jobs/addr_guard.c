/* The private-address guard for outbound webhook calls (see addr_guard.h).
 * Every IPv6 form that embeds an IPv4 address is unpacked and the IPv4 rules
 * applied to it, so a private target cannot hide behind a translation
 * prefix. */
#include "jobs/addr_guard.h"

#include <netinet/in.h>
#include <string.h>

/* True if the top `bits` bits of a equal those of net. */
static int in_v4(uint32_t a, uint32_t net, int bits)
{
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (a & mask) == (net & mask);
}

#define V4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

int tk_addr_v4_blocked(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
    } blocked[] = {
        {V4(0, 0, 0, 0), 8},       /* "this network" */
        {V4(10, 0, 0, 0), 8},      /* private */
        {V4(100, 64, 0, 0), 10},   /* shared address space (CGNAT) */
        {V4(127, 0, 0, 0), 8},     /* loopback */
        {V4(169, 254, 0, 0), 16},  /* link-local (cloud metadata lives here) */
        {V4(172, 16, 0, 0), 12},   /* private */
        {V4(192, 0, 0, 0), 24},    /* IETF protocol assignments */
        {V4(192, 0, 2, 0), 24},    /* documentation */
        {V4(192, 88, 99, 0), 24},  /* 6to4 relay anycast */
        {V4(192, 168, 0, 0), 16},  /* private */
        {V4(198, 18, 0, 0), 15},   /* benchmarking */
        {V4(198, 51, 100, 0), 24}, /* documentation */
        {V4(203, 0, 113, 0), 24},  /* documentation */
        {V4(224, 0, 0, 0), 3},     /* multicast, reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
        if (in_v4(a, blocked[i].net, blocked[i].bits))
            return 1;
    return 0;
}

static uint32_t v4_at(const unsigned char *p)
{
    return V4(p[0], p[1], p[2], p[3]);
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

int tk_addr_v6_blocked(const unsigned char b[16])
{
    static const unsigned char ffff[2] = {0xff, 0xff};
    static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    static const unsigned char nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};

    /* ::a.b.c.d (IPv4-compatible; :: and ::1 are 0.0.0.0 and 0.0.0.1 here,
     * both in 0/8) and ::ffff:a.b.c.d (IPv4-mapped) */
    if (all_zero(b, 10) && (all_zero(b + 10, 2) || memcmp(b + 10, ffff, 2) == 0))
        return tk_addr_v4_blocked(v4_at(b + 12));
    /* ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765) */
    if (all_zero(b, 8) && memcmp(b + 8, ffff, 2) == 0 && all_zero(b + 10, 2))
        return tk_addr_v4_blocked(v4_at(b + 12));
    /* 64:ff9b::/96, the well-known NAT64 prefix (RFC 6052) */
    if (memcmp(b, nat64, 12) == 0)
        return tk_addr_v4_blocked(v4_at(b + 12));
    /* 64:ff9b:1::/48, local-use NAT64 (RFC 8215): translates into the
     * operator's own networks, with the IPv4 address placed by a prefix
     * length we cannot know */
    if (memcmp(b, nat64_local, 6) == 0)
        return 1;
    /* 2002:AABB:CCDD::/48, 6to4 (RFC 3056) */
    if (b[0] == 0x20 && b[1] == 0x02)
        return tk_addr_v4_blocked(v4_at(b + 2));
    /* 2001:0::/32, Teredo (RFC 4380): server address in clear, client
     * address with every bit inverted */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0)
        return tk_addr_v4_blocked(v4_at(b + 4)) || tk_addr_v4_blocked(~v4_at(b + 12));
    /* 2001:db8::/32 documentation */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return 1;
    /* 100::/64 discard-only */
    if (b[0] == 0x01 && all_zero(b + 1, 7))
        return 1;
    return (b[0] & 0xfe) == 0xfc                       /* fc00::/7 unique local */
           || b[0] == 0xff                             /* ff00::/8 multicast */
           || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)  /* fe80::/10 link-local */
           || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0); /* fec0::/10 site-local */
}

int tk_addr_blocked(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return tk_addr_v4_blocked(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6)
        return tk_addr_v6_blocked(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return 1;
}
