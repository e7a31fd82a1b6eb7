/* The private-address guard for outbound webhook calls: decides whether an
 * address a host name resolved to may be connected to. Pure functions, no
 * I/O (the runner calls them from curl's socket opener). */
#ifndef TK_JOBS_ADDR_GUARD_H
#define TK_JOBS_ADDR_GUARD_H

#include <stdint.h>
#include <sys/socket.h>

/* True (1) when `a` (host order) is loopback, private, shared (CGNAT),
 * link-local, reserved, benchmarking, documentation, multicast, broadcast
 * or "this network"; 0 for a public address. */
int tk_addr_v4_blocked(uint32_t a);

/* True (1) when the IPv6 address (16 bytes, network order) is loopback,
 * unspecified, unique-local, link- or site-local, multicast, documentation
 * or discard-only, or carries an IPv4 address that tk_addr_v4_blocked
 * refuses: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
 * IPv4-translated (::ffff:0:a.b.c.d), NAT64 (64:ff9b::/96; the local-use
 * 64:ff9b:1::/48 is refused whole), 6to4 (2002::/16) and Teredo (2001::/32,
 * server and client addresses). */
int tk_addr_v6_blocked(const unsigned char b[16]);

/* tk_addr_v4_blocked / tk_addr_v6_blocked by family; any other family is
 * blocked. */
int tk_addr_blocked(const struct sockaddr *sa);

#endif
