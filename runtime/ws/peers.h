/* Connections per client address on the realtime port: how many are still
 * in the HTTP handshake (pending) and how many are open WebSockets, so that
 * one address can hold neither the handshake pool nor the server (see
 * WS_MAX_PENDING_PER_IP, WS_MAX_CONN_PER_IP). A hash table from the address
 * (IPv4 as v4-mapped IPv6) to its two counts; an entry lives while either
 * count is above zero. Not thread-safe: only the service thread uses it. */
#ifndef TK_WS_PEERS_H
#define TK_WS_PEERS_H

#include <sys/socket.h>

#include "common.h"

typedef struct tk_ws_peers tk_ws_peers;

typedef struct tk_ws_peer {
    struct tk_ws_peer *next; /* hash chain */
    unsigned char addr[16];
    int pending, open;
} tk_ws_peer;

/* A client address in the table's key form. */
typedef struct {
    unsigned char addr[16];
} tk_ws_peer_key;

int tk_ws_peers_new(tk_ws_peers **out) TK_WUR;
void tk_ws_peers_free(tk_ws_peers *p);

/* The key of sa (AF_INET or AF_INET6); TK_EINVAL for another family. */
int tk_ws_peer_key_of(const struct sockaddr *sa, tk_ws_peer_key *out) TK_WUR;

/* The address of key as text (a.b.c.d for IPv4) into out (>= 46 bytes). */
void tk_ws_peer_key_text(const tk_ws_peer_key *key, char *out, size_t outlen);

/* The entry of key, or NULL when the address has no connection. */
tk_ws_peer *tk_ws_peers_find(tk_ws_peers *p, const tk_ws_peer_key *key);

/* The entry of key, created with zero counts; NULL when out of memory. */
tk_ws_peer *tk_ws_peers_get(tk_ws_peers *p, const tk_ws_peer_key *key);

/* Frees e once both its counts are zero (call after decrementing). */
void tk_ws_peers_put(tk_ws_peers *p, tk_ws_peer *e);

/* Addresses with at least one connection (for tests and stats). */
int tk_ws_peers_count(const tk_ws_peers *p);

#endif
