/* tk.json's string escaping (lua/l_json.h): tk_json_put_escaped scans eight
 * bytes at a time; it must write exactly what the byte-at-a-time escaper it
 * replaced wrote (reference() below), for any bytes: UTF-8, control
 * characters, '"', '\\', '/' (never escaped), DEL and stray high bytes, at
 * any length and alignment. The input lives in a block of exactly its size,
 * so a read past its end shows under ASan. */
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua/l_json.h"
#include "test_util.h"

/* The escaper as it was: one table lookup per byte. */
static void reference(tk_jbuf *b, const char *s, size_t n)
{
    static const unsigned char ESC[256] = {1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 1,
                                           2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                           1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2, ['\\'] = 2};
    static const char SHORT[128] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',
                                    ['\r'] = 'r', ['"'] = '"',  ['\\'] = '\\'};
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (ESC[c] == 0)
            continue;
        tk_jbuf_add(b, s + run, i - run);
        run = i + 1;
        if (ESC[c] == 2) {
            char e[2] = {'\\', SHORT[c]};
            tk_jbuf_add(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            tk_jbuf_add(b, e, 6);
        }
    }
    tk_jbuf_add(b, s + run, n - run);
}

/* Escapes s (n bytes, copied into a block of exactly n) both ways; 0 when
 * the texts are equal, else prints both. */
static int same_as_reference(const char *s, size_t n)
{
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        return 1;
    memcpy(copy, s, n);
    tk_jbuf got, want;
    tk_jbuf_init(&got, 0);
    tk_jbuf_init(&want, 0);
    tk_json_put_escaped(&got, copy, n);
    reference(&want, copy, n);
    int differ = !tk_jbuf_ok(&got) || !tk_jbuf_ok(&want) || got.len != want.len ||
                 memcmp(tk_jbuf_text(&got), tk_jbuf_text(&want), got.len) != 0;
    if (differ)
        fprintf(stderr, "input of %zu bytes: got \"%s\", want \"%s\"\n", n, tk_jbuf_text(&got),
                tk_jbuf_text(&want));
    tk_jbuf_cleanup(&got);
    tk_jbuf_cleanup(&want);
    free(copy);
    return differ;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* Appends one random character to s at *n: mostly plain ASCII, often one
 * of the bytes that matter. */
static void random_char(char *s, size_t *n)
{
    static const char *const utf8[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                       "\xc2\x80", "\xef\xbf\xbf", "\xe2\x80\xa8"};
    uint32_t r = next_random() % 100;
    if (r < 45) {
        s[(*n)++] = (char)(' ' + next_random() % 95); /* printable ASCII, '/' included */
    } else if (r < 55) {
        s[(*n)++] = '"';
    } else if (r < 62) {
        s[(*n)++] = '\\';
    } else if (r < 68) {
        s[(*n)++] = '/';
    } else if (r < 78) {
        s[(*n)++] = (char)(next_random() % 0x20); /* control, NUL included */
    } else if (r < 81) {
        s[(*n)++] = 0x7f;
    } else if (r < 85) {
        s[(*n)++] = (char)(0x80 + next_random() % 0x80); /* a stray high byte */
    } else {
        const char *u = utf8[next_random() % (sizeof utf8 / sizeof utf8[0])];
        size_t len = strlen(u);
        memcpy(s + *n, u, len);
        *n += len;
    }
}

TEST(fixed_cases)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"a/b", "a/b"},
        {"say \"hi\"", "say \\\"hi\\\""},
        {"back\\slash", "back\\\\slash"},
        {"\b\f\n\r\t", "\\b\\f\\n\\r\\t"},
        {"\x01\x1f\x7f", "\\u0001\\u001f\x7f"},
        {"0123456789abcdef\"", "0123456789abcdef\\\""},
        {"01234567\n", "01234567\\n"},
        {"\xe2\x82\xac 12345678 caf\xc3\xa9", "\xe2\x82\xac 12345678 caf\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tk_jbuf b;
        tk_jbuf_init(&b, 0);
        tk_json_put_escaped(&b, cases[i].in, strlen(cases[i].in));
        ASSERT(tk_jbuf_ok(&b));
        ASSERT_STR_EQ(tk_jbuf_text(&b), cases[i].out);
        tk_jbuf_cleanup(&b);
        ASSERT_EQ_INT(same_as_reference(cases[i].in, strlen(cases[i].in)), 0);
    }
    /* a NUL inside: written as \u0000, the rest kept */
    ASSERT_EQ_INT(same_as_reference("ab\0cd\0efghijklmn", 16), 0);
    return 0;
}

/* Every single byte value, at every position of a 24-byte run of 'x'. */
TEST(every_byte_everywhere)
{
    char s[24];
    for (int c = 0; c < 256; c++) {
        for (size_t at = 0; at < sizeof s; at++) {
            memset(s, 'x', sizeof s);
            s[at] = (char)c;
            for (size_t n = at + 1; n <= sizeof s; n += 7)
                ASSERT_EQ_INT(same_as_reference(s, n), 0);
        }
    }
    return 0;
}

/* Two bytes to escape next to each other, and a marked byte above a
 * borrowing one (the SWAR scan's only source of false marks). */
TEST(neighbours)
{
    static const char specials[] = {'\0', '\x01', '\x1f', ' ',    '!',    '"',    '#',    '/',
                                    '[',  '\\',   ']',    '\x7f', '\x80', '\xa0', '\xdc', '\xff'};
    char s[16];
    for (size_t i = 0; i < sizeof specials; i++) {
        for (size_t j = 0; j < sizeof specials; j++) {
            for (size_t at = 0; at + 1 < sizeof s; at++) {
                memset(s, 'y', sizeof s);
                s[at] = specials[i];
                s[at + 1] = specials[j];
                ASSERT_EQ_INT(same_as_reference(s, sizeof s), 0);
            }
        }
    }
    return 0;
}

TEST(random_strings)
{
    char s[512];
    for (int round = 0; round < 20000; round++) {
        size_t n = 0, want = next_random() % 120;
        if (round % 10 == 0)
            want = next_random() % 480; /* some long ones */
        while (n < want)
            random_char(s, &n);
        /* every start offset: the eight-byte loads at every alignment */
        size_t off = (size_t)round % 8;
        if (off > n)
            off = n;
        ASSERT_EQ_INT(same_as_reference(s + off, n - off), 0);
    }
    return 0;
}

/* Long runs with nothing to escape, then one at the very end. */
TEST(long_clean_runs)
{
    char s[300];
    for (size_t n = 1; n <= sizeof s; n++) {
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('a' + i % 26);
        ASSERT_EQ_INT(same_as_reference(s, n), 0);
        s[n - 1] = '"';
        ASSERT_EQ_INT(same_as_reference(s, n), 0);
    }
    return 0;
}

TEST_MAIN(TEST_ENTRY(fixed_cases), TEST_ENTRY(every_byte_everywhere), TEST_ENTRY(neighbours),
          TEST_ENTRY(random_strings), TEST_ENTRY(long_clean_runs))
