/* Address ranges (cidr.h): inet_pton does the address syntax, this file only
 * the prefix lengths and the matching. */
#include "http/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char addr[16];
    int bits; /* 0..128, on the IPv6 (mapped) form */
} block;

struct tk_cidr_list {
    size_t n;
    block b[];
};

/* Parses an address into its 16-byte (IPv4-mapped for v4) form. Returns 4,
 * 6, or 0 when it is neither. */
static int addr_parse(const char *s, unsigned char out[16])
{
    unsigned char v4[4];
    if (inet_pton(AF_INET, s, v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, v4, 4);
        return 4;
    }
    if (inet_pton(AF_INET6, s, out) == 1)
        return 6;
    return 0;
}

static int in_block(const block *b, const unsigned char a[16])
{
    int full = b->bits / 8, rest = b->bits % 8;
    if (memcmp(b->addr, a, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (b->addr[full] & mask) == (a[full] & mask);
}

/* Parses one entry (trimmed, NUL-terminated) into b. */
static int entry_parse(char *e, block *b)
{
    char *slash = strchr(e, '/');
    long bits = -1;
    if (slash != NULL) {
        char *end;
        *slash = '\0';
        if (slash[1] < '0' || slash[1] > '9')
            return TK_EINVAL;
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (errno != 0 || *end != '\0' || end - (slash + 1) > 3)
            return TK_EINVAL;
    }
    int fam = addr_parse(e, b->addr);
    if (fam == 0)
        return TK_EINVAL;
    int max = fam == 4 ? 32 : 128;
    if (bits < 0)
        bits = max;
    if (bits > max)
        return TK_EINVAL;
    b->bits = (int)bits + (fam == 4 ? 96 : 0);
    /* host bits must be zero */
    for (int i = b->bits; i < 128; i++)
        if (b->addr[i / 8] & (0x80 >> (i % 8)))
            return TK_EINVAL;
    return 0;
}

int tk_cidr_list_parse(const char *s, tk_cidr_list **out, char *err, size_t errlen)
{
    size_t cap = 1;
    for (const char *p = s ? s : ""; *p; p++)
        cap += *p == ',';
    tk_cidr_list *l = calloc(1, sizeof *l + cap * sizeof(block));
    if (l == NULL)
        return TK_ENOMEM;
    const char *p = s ? s : "";
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        char e[64];
        size_t n = (size_t)(end - start);
        int bad = n >= sizeof e;
        if (!bad) {
            memcpy(e, start, n);
            e[n] = '\0';
            bad = entry_parse(e, &l->b[l->n]) != 0;
        }
        if (bad) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "\"%.*s\" is not an IPv4/IPv6 address or CIDR block",
                         (int)(n > 80 ? 80 : n), start);
            free(l);
            return TK_EINVAL;
        }
        l->n++;
    }
    *out = l;
    return 0;
}

void tk_cidr_list_free(tk_cidr_list *l)
{
    free(l);
}

int tk_cidr_list_match(const tk_cidr_list *l, const char *addr)
{
    unsigned char a[16];
    if (l == NULL || addr == NULL || addr_parse(addr, a) == 0)
        return 0;
    for (size_t i = 0; i < l->n; i++)
        if (in_block(&l->b[i], a))
            return 1;
    return 0;
}

size_t tk_cidr_list_count(const tk_cidr_list *l)
{
    return l ? l->n : 0;
}
