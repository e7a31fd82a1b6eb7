/* tk_json_put_escaped (lua/l_json.c), which skips 8 bytes at a time while
 * none needs escaping: the same text as a byte-by-byte escaper for every
 * byte value at every position of strings of every length up to 40, and
 * for random strings of mixed text. */
#include "lua/l_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* The reference: JSON's escapes, one byte at a time. */
static size_t ref_escape(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        switch (c) {
        case '"':
            o += (size_t)sprintf(out + o, "\\\"");
            break;
        case '\\':
            o += (size_t)sprintf(out + o, "\\\\");
            break;
        case '\b':
            o += (size_t)sprintf(out + o, "\\b");
            break;
        case '\t':
            o += (size_t)sprintf(out + o, "\\t");
            break;
        case '\n':
            o += (size_t)sprintf(out + o, "\\n");
            break;
        case '\f':
            o += (size_t)sprintf(out + o, "\\f");
            break;
        case '\r':
            o += (size_t)sprintf(out + o, "\\r");
            break;
        default:
            if (c < 0x20)
                o += (size_t)sprintf(out + o, "\\u%04x", c);
            else
                out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}

static int same_as_ref(const unsigned char *s, size_t n)
{
    char want[6 * 64 + 1];
    size_t wn = ref_escape(s, n, want);
    tk_jbuf b;
    tk_jbuf_init(&b, 0);
    tk_json_put_escaped(&b, (const char *)s, n);
    int ok = tk_jbuf_ok(&b) && b.len == wn && memcmp(b.p, want, wn) == 0;
    if (!ok)
        fprintf(stderr, "# differs for a string of %zu bytes: got %.*s want %s\n", n, (int)b.len,
                b.p, want);
    tk_jbuf_cleanup(&b);
    return ok;
}

TEST(every_byte_at_every_position)
{
    unsigned char s[40];
    for (size_t n = 1; n <= sizeof s; n++)
        for (size_t pos = 0; pos < n; pos++)
            for (int c = 0; c < 256; c++) {
                memset(s, 'a', n);
                s[pos] = (unsigned char)c;
                ASSERT(same_as_ref(s, n));
            }
    ASSERT(same_as_ref((const unsigned char *)"", 0));
    return 0;
}

TEST(random_text)
{
    /* mostly printable, some UTF-8 (bytes >= 0x80), a few escapes */
    static const unsigned char pool[] =
        "abc XYZ 019 \xc3\xa9\xe2\x82\xac\xff\x80 \"\\\n\t\x01\x1f\x7f/";
    unsigned char s[64];
    srand(7);
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand() % (int)sizeof s);
        for (size_t i = 0; i < n; i++)
            s[i] = pool[rand() % (int)(sizeof pool - 1)];
        ASSERT(same_as_ref(s, n));
    }
    return 0;
}

TEST_MAIN(TEST_ENTRY(every_byte_at_every_position), TEST_ENTRY(random_text))
