/* Unpadded base64url (RFC 4648 §5): the one codec for tokens (auth/token.c),
 * JWT segments (auth/jwt.c) and page cursors (tk.json, lib.cursor). */
#ifndef TK_B64URL_H
#define TK_B64URL_H

#include <stddef.h>

/* The encoded length of n bytes (no padding, no NUL). */
#define TK_B64URL_ENCODED_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Writes the encoding of in[0..n) into out (room for
 * TK_B64URL_ENCODED_LEN(n) bytes; no NUL); returns that length. */
size_t tk_b64url_encode(const unsigned char *in, size_t n, char *out);

/* The value of one alphabet character, or -1. */
int tk_b64url_value(unsigned char c);

/* Decodes in[0..n) into out (room for n / 4 * 3 + 2 bytes); returns the
 * decoded length, or -1 for a length of 4k + 1 or a byte outside the
 * alphabet. strict: also -1 when the bits after the last whole byte are not
 * zero (a non-canonical encoding); otherwise they are ignored. */
long tk_b64url_decode(const char *in, size_t n, unsigned char *out, int strict);

#endif
