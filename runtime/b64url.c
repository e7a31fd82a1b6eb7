/* Unpadded base64url (b64url.h). */
#include "b64url.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t tk_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = ALPHABET[v >> 18];
        out[o++] = ALPHABET[v >> 12 & 63];
        out[o++] = ALPHABET[v >> 6 & 63];
        out[o++] = ALPHABET[v & 63];
    }
    if (n - i > 0) {
        unsigned v = (unsigned)in[i] << 16 | (n - i > 1 ? (unsigned)in[i + 1] << 8 : 0);
        out[o++] = ALPHABET[v >> 18];
        out[o++] = ALPHABET[v >> 12 & 63];
        if (n - i > 1)
            out[o++] = ALPHABET[v >> 6 & 63];
    }
    return o;
}

int tk_b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

long tk_b64url_decode(const char *in, size_t n, unsigned char *out, int strict)
{
    unsigned long acc = 0;
    int bits = 0;
    long len = 0;
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = tk_b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned long)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    if (strict && (acc & ((1ul << bits) - 1)) != 0)
        return -1; /* non-canonical trailing bits */
    return len;
}
