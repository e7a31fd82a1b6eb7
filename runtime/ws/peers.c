/* Per-address connection counts of the realtime port (peers.h): a fixed
 * array of buckets, chains of small entries, freed as soon as an address has
 * nothing open, so the table's size follows the live connections. */
#include "ws/peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

struct tk_ws_peers {
    tk_ws_peer *b[BUCKETS];
    int n;
};

int tk_ws_peers_new(tk_ws_peers **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? TK_OK : TK_ENOMEM;
}

void tk_ws_peers_free(tk_ws_peers *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < BUCKETS; i++) {
        while (p->b[i]) {
            tk_ws_peer *e = p->b[i];
            p->b[i] = e->next;
            free(e);
        }
    }
    free(p);
}

int tk_ws_peer_key_of(const struct sockaddr *sa, tk_ws_peer_key *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(out->addr, &s6->sin6_addr, 16);
        return TK_OK;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        out->addr[10] = 0xff; /* ::ffff:a.b.c.d, as a dual-stack socket reports it */
        out->addr[11] = 0xff;
        memcpy(out->addr + 12, &s4->sin_addr, 4);
        return TK_OK;
    }
    return TK_EINVAL;
}

void tk_ws_peer_key_text(const tk_ws_peer_key *key, char *out, size_t outlen)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const char *r = memcmp(key->addr, mapped, 12) == 0
                        ? inet_ntop(AF_INET, key->addr + 12, out, (socklen_t)outlen)
                        : inet_ntop(AF_INET6, key->addr, out, (socklen_t)outlen);
    if (r == NULL && outlen > 0)
        out[0] = '\0';
}

static unsigned bucket_of(const tk_ws_peer_key *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key->addr[i]) * 16777619u;
    return h % BUCKETS;
}

tk_ws_peer *tk_ws_peers_find(tk_ws_peers *p, const tk_ws_peer_key *key)
{
    for (tk_ws_peer *e = p->b[bucket_of(key)]; e; e = e->next)
        if (memcmp(e->addr, key->addr, 16) == 0)
            return e;
    return NULL;
}

tk_ws_peer *tk_ws_peers_get(tk_ws_peers *p, const tk_ws_peer_key *key)
{
    tk_ws_peer *e = tk_ws_peers_find(p, key);
    if (e)
        return e;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    unsigned b = bucket_of(key);
    memcpy(e->addr, key->addr, 16);
    e->next = p->b[b];
    p->b[b] = e;
    p->n++;
    return e;
}

void tk_ws_peers_put(tk_ws_peers *p, tk_ws_peer *e)
{
    if (e->pending > 0 || e->open > 0)
        return;
    tk_ws_peer_key key;
    memcpy(key.addr, e->addr, 16);
    tk_ws_peer **pp = &p->b[bucket_of(&key)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = e->next;
        p->n--;
        free(e);
    }
}

int tk_ws_peers_count(const tk_ws_peers *p)
{
    return p->n;
}
