/* The strict JSON reader and the output buffer of json.h. The reader is a
 * recursive-descent parser (depth capped) that appends nodes to one array
 * and decodes strings into one side buffer sized from the input, so a parse
 * costs two allocations plus array growth. */
#include "ws/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char type;
    int next;            /* next sibling, or -1 */
    int first;           /* first child (arrays, objects), or -1 */
    int last;            /* last child, for appending */
    int count;           /* children */
    size_t key, key_len; /* offset of the member name in strs (object members) */
    size_t str, str_len; /* offset of the decoded string in strs */
    int has_key;
} node;

struct tk_json {
    node *nodes;
    int n, cap;
    char *strs; /* decoded strings, each NUL-terminated */
    size_t strs_len;
};

typedef struct {
    const char *s, *end;
    tk_json *doc;
    int nomem;
} parser;

/* ---- the reader ---------------------------------------------------------- */

static void skip_ws(parser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int new_node(parser *p, int type)
{
    tk_json *d = p->doc;
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 16;
        node *nn = realloc(d->nodes, (size_t)cap * sizeof *nn);
        if (nn == NULL) {
            p->nomem = 1;
            return -1;
        }
        d->nodes = nn;
        d->cap = cap;
    }
    node *x = &d->nodes[d->n];
    memset(x, 0, sizeof *x);
    x->type = (unsigned char)type;
    x->next = x->first = x->last = -1;
    return d->n++;
}

static void add_child(tk_json *d, int parent, int child)
{
    node *pa = &d->nodes[parent];
    if (pa->last < 0)
        pa->first = child;
    else
        d->nodes[pa->last].next = child;
    pa->last = child;
    pa->count++;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(parser *p, unsigned *out)
{
    if (p->end - p->s < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p->s[i]);
        if (h < 0)
            return -1;
        v = v * 16 + (unsigned)h;
    }
    p->s += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads a string at p->s (on the opening quote) into strs; returns 0 with
 * its offset and length. Decoded text is never longer than its source, and
 * the closing quote pays for the NUL, so strs (input length + 1) suffices. */
static int read_string(parser *p, size_t *off, size_t *len)
{
    tk_json *d = p->doc;
    p->s++; /* opening quote */
    size_t start = d->strs_len;
    char *o = d->strs + start;
    for (;;) {
        if (p->s >= p->end)
            return -1;
        unsigned char c = (unsigned char)*p->s++;
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        if (p->s >= p->end)
            return -1;
        c = (unsigned char)*p->s++;
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned cp;
            if (read_hex4(p, &cp) != 0)
                return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->end - p->s < 2 || p->s[0] != '\\' || p->s[1] != 'u')
                    return -1;
                p->s += 2;
                if (read_hex4(p, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            return -1;
        }
    }
    *o++ = '\0';
    *off = start;
    *len = (size_t)(o - (d->strs + start)) - 1;
    d->strs_len = (size_t)(o - d->strs);
    return 0;
}

static int read_number(parser *p)
{
    const char *s = p->s;
    if (s < p->end && *s == '-')
        s++;
    if (s >= p->end)
        return -1;
    if (*s == '0') {
        s++;
    } else if (*s >= '1' && *s <= '9') {
        while (s < p->end && *s >= '0' && *s <= '9')
            s++;
    } else {
        return -1;
    }
    if (s < p->end && *s == '.') {
        s++;
        if (s >= p->end || *s < '0' || *s > '9')
            return -1;
        while (s < p->end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < p->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < p->end && (*s == '+' || *s == '-'))
            s++;
        if (s >= p->end || *s < '0' || *s > '9')
            return -1;
        while (s < p->end && *s >= '0' && *s <= '9')
            s++;
    }
    p->s = s;
    return 0;
}

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0)
        return -1;
    p->s += n;
    return 0;
}

static int read_value(parser *p, int depth);

static int read_container(parser *p, int depth, int is_object)
{
    int self = new_node(p, is_object ? TK_JSON_OBJECT : TK_JSON_ARRAY);
    if (self < 0)
        return -1;
    char close = is_object ? '}' : ']';
    p->s++; /* opening bracket */
    skip_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        return self;
    }
    for (;;) {
        size_t key = 0, key_len = 0;
        skip_ws(p);
        if (is_object) {
            if (p->s >= p->end || *p->s != '"' || read_string(p, &key, &key_len) != 0)
                return -1;
            skip_ws(p);
            if (p->s >= p->end || *p->s != ':')
                return -1;
            p->s++;
        }
        int child = read_value(p, depth + 1);
        if (child < 0)
            return -1;
        if (is_object) {
            node *c = &p->doc->nodes[child];
            c->has_key = 1;
            c->key = key;
            c->key_len = key_len;
        }
        add_child(p->doc, self, child);
        skip_ws(p);
        if (p->s >= p->end)
            return -1;
        if (*p->s == ',') {
            p->s++;
            continue;
        }
        if (*p->s == close) {
            p->s++;
            return self;
        }
        return -1;
    }
}

/* Returns the new node's index, or -1 (syntax error or p->nomem). */
static int read_value(parser *p, int depth)
{
    if (depth > TK_JSON_MAX_DEPTH)
        return -1;
    skip_ws(p);
    if (p->s >= p->end)
        return -1;
    switch (*p->s) {
    case '{':
        return read_container(p, depth, 1);
    case '[':
        return read_container(p, depth, 0);
    case '"': {
        int self = new_node(p, TK_JSON_STRING);
        if (self < 0)
            return -1;
        size_t off, len;
        if (read_string(p, &off, &len) != 0)
            return -1;
        p->doc->nodes[self].str = off;
        p->doc->nodes[self].str_len = len;
        return self;
    }
    case 't':
        return literal(p, "true") == 0 ? new_node(p, TK_JSON_TRUE) : -1;
    case 'f':
        return literal(p, "false") == 0 ? new_node(p, TK_JSON_FALSE) : -1;
    case 'n':
        return literal(p, "null") == 0 ? new_node(p, TK_JSON_NULL) : -1;
    default:
        return read_number(p) == 0 ? new_node(p, TK_JSON_NUMBER) : -1;
    }
}

int tk_json_parse(const char *s, size_t len, tk_json **out)
{
    *out = NULL;
    tk_json *d = calloc(1, sizeof *d);
    if (d == NULL)
        return TK_ENOMEM;
    int rc = TK_ENOMEM;
    d->strs = malloc(len + 1);
    if (d->strs == NULL)
        goto fail;
    parser p = {.s = s, .end = s + len, .doc = d};
    if (read_value(&p, 0) != 0) { /* the root is node 0 */
        rc = p.nomem ? TK_ENOMEM : TK_EINVAL;
        goto fail;
    }
    skip_ws(&p);
    if (p.s != p.end) {
        rc = TK_EINVAL;
        goto fail;
    }
    *out = d;
    return TK_OK;
fail:
    tk_json_free(d);
    return rc;
}

void tk_json_free(tk_json *doc)
{
    if (doc == NULL)
        return;
    free(doc->nodes);
    free(doc->strs);
    free(doc);
}

static const node *get_node(const tk_json *doc, int i)
{
    if (doc == NULL || i < 0 || i >= doc->n)
        return NULL;
    return &doc->nodes[i];
}

tk_json_type tk_json_type_of(const tk_json *doc, int i)
{
    const node *x = get_node(doc, i);
    return x ? (tk_json_type)x->type : TK_JSON_NULL;
}

int tk_json_get(const tk_json *doc, int i, const char *key)
{
    const node *x = get_node(doc, i);
    if (x == NULL || x->type != TK_JSON_OBJECT)
        return -1;
    size_t klen = strlen(key);
    int found = -1;
    /* The last of duplicate keys wins, as in JavaScript. */
    for (int c = x->first; c >= 0; c = doc->nodes[c].next) {
        const node *m = &doc->nodes[c];
        if (m->key_len == klen && memcmp(doc->strs + m->key, key, klen) == 0)
            found = c;
    }
    return found;
}

int tk_json_at(const tk_json *doc, int i, int idx)
{
    const node *x = get_node(doc, i);
    if (x == NULL || x->type != TK_JSON_ARRAY || idx < 0)
        return -1;
    int c = x->first;
    while (c >= 0 && idx-- > 0)
        c = doc->nodes[c].next;
    return c;
}

int tk_json_len(const tk_json *doc, int i)
{
    const node *x = get_node(doc, i);
    if (x == NULL || (x->type != TK_JSON_ARRAY && x->type != TK_JSON_OBJECT))
        return 0;
    return x->count;
}

const char *tk_json_str(const tk_json *doc, int i, size_t *len)
{
    const node *x = get_node(doc, i);
    if (x == NULL || x->type != TK_JSON_STRING)
        return NULL;
    if (len)
        *len = x->str_len;
    return doc->strs + x->str;
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
