/* The reader and the output buffer of json.h. Reading is libjansson's
 * (strict RFC 8259, UTF-8 validated, surrogates paired); this file adds the
 * depth limit, which jansson only has at 2048 levels of its recursive
 * descent, by scanning the input before jansson sees it. */
#include "ws/json.h"

#include <stdlib.h>
#include <string.h>

/* Is any array or object in s nested deeper than TK_JSON_MAX_DEPTH? Brackets
 * inside strings do not count. For valid JSON the count is exact. For input
 * jansson refuses, it agrees with jansson's own nesting up to the byte where
 * jansson gives up (both end a string at the same unescaped quote), so
 * jansson never descends deeper than the limit either way. */
static int too_deep(const char *s, size_t len)
{
    long depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++; /* the escaped byte cannot end the string */
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > TK_JSON_MAX_DEPTH)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

int tk_json_parse(const char *s, size_t len, json_t **out)
{
    *out = NULL;
    if (too_deep(s, len))
        return TK_EINVAL;
    /* Without JSON_ALLOW_NUL a "\u0000" anywhere refuses the document;
     * without JSON_DISABLE_EOF_CHECK trailing bytes do. */
    json_error_t err;
    json_t *doc = json_loadb(s, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &err);
    if (doc == NULL)
        return json_error_code(&err) == json_error_out_of_memory ? TK_ENOMEM : TK_EINVAL;
    *out = doc;
    return TK_OK;
}

/* ---- output buffer ------------------------------------------------------- */

void tk_jbuf_init(tk_jbuf *b, size_t reserve)
{
    memset(b, 0, sizeof *b);
    b->reserve = reserve;
}

void tk_jbuf_cleanup(tk_jbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

int tk_jbuf_ok(const tk_jbuf *b)
{
    return !b->failed;
}

static int grow(tk_jbuf *b, size_t more)
{
    if (b->failed)
        return -1;
    size_t need = b->reserve + b->len + more + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (np == NULL) {
        b->failed = 1;
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

void tk_jbuf_reserve(tk_jbuf *b, size_t n)
{
    (void)grow(b, n);
}

void tk_jbuf_add(tk_jbuf *b, const char *s, size_t n)
{
    if (grow(b, n) != 0)
        return;
    memcpy(b->p + b->reserve + b->len, s, n);
    b->len += n;
    b->p[b->reserve + b->len] = '\0';
}

void tk_jbuf_adds(tk_jbuf *b, const char *s)
{
    tk_jbuf_add(b, s, strlen(s));
}

void tk_jbuf_add_jstr(tk_jbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    tk_jbuf_add(b, "\"", 1);
    size_t run = 0; /* bytes at s[run_start..] that need no escaping */
    const char *start = s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        tk_jbuf_add(b, start, run);
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            tk_jbuf_add(b, esc, 2);
        } else if (c == '\n') {
            tk_jbuf_add(b, "\\n", 2);
        } else if (c == '\r') {
            tk_jbuf_add(b, "\\r", 2);
        } else if (c == '\t') {
            tk_jbuf_add(b, "\\t", 2);
        } else {
            tk_jbuf_add(b, esc, 6);
        }
        start = s + i + 1;
        run = 0;
    }
    tk_jbuf_add(b, start, run);
    tk_jbuf_add(b, "\"", 1);
}

const char *tk_jbuf_text(const tk_jbuf *b)
{
    if (b->failed || b->p == NULL)
        return "";
    return b->p + b->reserve;
}
