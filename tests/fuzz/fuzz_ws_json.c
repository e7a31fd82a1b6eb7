/* Fuzz target: the JSON reader realtime clients' messages go through
 * (runtime/ws/json.c: libjansson plus this server's limits) and the string
 * escaper of the frames the server writes. Checks: parse answers 0 (with a
 * document), TK_EINVAL or TK_ENOMEM (without one); an accepted document
 * nests at most TK_JSON_MAX_DEPTH deep, holds no NUL in any string or key,
 * has only double numbers, and survives dump-and-parse unchanged; a refused
 * input that jansson alone accepts is one the limits refuse (too deep, a
 * NUL in a string); every string, written back with tk_jbuf_add_jstr,
 * parses to the same bytes; arbitrary bytes through the escaper come back
 * unchanged exactly when they are UTF-8 without NUL. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "ws/json.h"

/* Parses s as tk_json_parse reads a one-string document; 1 when it comes
 * back as exactly those bytes, 0 when refused. */
static int roundtrip(const char *s, size_t len)
{
    tk_jbuf b;
    tk_jbuf_init(&b, 16);
    tk_jbuf_add_jstr(&b, s, len);
    FUZZ_CHECK(tk_jbuf_ok(&b));
    const char *text = tk_jbuf_text(&b);
    FUZZ_CHECK(strlen(text) == b.len);
    json_t *doc = NULL;
    int rc = tk_json_parse(text, b.len, &doc);
    tk_jbuf_cleanup(&b);
    if (rc == TK_ENOMEM)
        return -1;
    if (rc != TK_OK) {
        FUZZ_CHECK(rc == TK_EINVAL && doc == NULL);
        return 0;
    }
    FUZZ_CHECK(json_is_string(doc) && json_string_length(doc) == len &&
               memcmp(json_string_value(doc), s, len) == 0);
    json_decref(doc);
    return 1;
}

static void check_string(const char *s, size_t len)
{
    FUZZ_CHECK(s != NULL && s[len] == '\0' && strlen(s) == len);
    FUZZ_CHECK(roundtrip(s, len) != 0);
}

/* Deepest nesting of arrays/objects (the root container counts 1). Also
 * says (via *nul) whether a string or key holds a NUL. */
static int depth_of(const json_t *v, int *nul)
{
    int deepest = 0;
    if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
        *nul = 1;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int d = depth_of(json_array_get(v, i), nul);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    if (json_is_object(v)) {
        json_t *o = (json_t *)v;
        for (void *it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it)) {
            if (strlen(json_object_iter_key(it)) != json_object_iter_key_len(it))
                *nul = 1;
            int d = depth_of(json_object_iter_value(it), nul);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    return 0;
}

static void walk(json_t *v, int depth)
{
    FUZZ_CHECK(depth <= TK_JSON_MAX_DEPTH);
    switch (json_typeof(v)) {
    case JSON_STRING:
        check_string(json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        FUZZ_CHECK(0 && "integers are read as doubles");
        break;
    case JSON_ARRAY:
        FUZZ_CHECK(depth < TK_JSON_MAX_DEPTH);
        for (size_t i = 0; i < json_array_size(v); i++)
            walk(json_array_get(v, i), depth + 1);
        FUZZ_CHECK(json_array_get(v, json_array_size(v)) == NULL);
        break;
    case JSON_OBJECT:
        FUZZ_CHECK(depth < TK_JSON_MAX_DEPTH);
        for (void *it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it)) {
            const char *k = json_object_iter_key(it);
            check_string(k, json_object_iter_key_len(it));
            FUZZ_CHECK(json_object_get(v, k) == json_object_iter_value(it));
            walk(json_object_iter_value(it), depth + 1);
        }
        break;
    default:
        break;
    }
}

/* Whether the text holds the escape \u0000 (any hex case). Also true for an
 * escaped backslash followed by "u0000", which only weakens the check. */
static int has_nul_escape(const char *in, size_t size)
{
    for (size_t i = 0; i + 6 <= size; i++)
        if (in[i] == '\\' && (in[i + 1] == 'u' || in[i + 1] == 'U') && in[i + 2] == '0' &&
            in[i + 3] == '0' && in[i + 4] == '0' && in[i + 5] == '0')
            return 1;
    return 0;
}

/* Deepest [ / { nesting of the text, strings skipped: a too-deep value that
 * a later duplicate key replaced is refused too, though jansson's document
 * no longer holds it. */
static int raw_depth(const char *in, size_t size)
{
    int depth = 0, deepest = 0, in_str = 0;
    for (size_t i = 0; i < size; i++) {
        char c = in[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            deepest = ++depth > deepest ? depth : deepest;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return deepest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    const char *in = (const char *)data;
    json_t *doc = (json_t *)data; /* must come back NULL on a refusal */
    int rc = tk_json_parse(in, size, &doc);
    FUZZ_CHECK(rc == TK_OK || rc == TK_EINVAL || rc == TK_ENOMEM);
    FUZZ_CHECK((rc == TK_OK) == (doc != NULL));
    if (rc == TK_OK) {
        walk(doc, 0);
        /* what was read is what is written and read again */
        char *text = json_dumps(doc, JSON_ENCODE_ANY | JSON_COMPACT);
        if (text != NULL) {
            json_t *again = NULL;
            int rc2 = tk_json_parse(text, strlen(text), &again);
            FUZZ_CHECK(rc2 == TK_ENOMEM || (rc2 == TK_OK && json_equal(doc, again)));
            json_decref(again);
            free(text);
        }
    } else if (rc == TK_EINVAL) {
        /* jansson without the limits: if it takes the input, a limit refused it */
        json_error_t err;
        json_t *plain = json_loadb(in, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (plain != NULL) {
            /* a \u0000 anywhere refuses the message, also in a value that a
             * later duplicate key replaced (gone from jansson's document) */
            int nul = has_nul_escape(in, size);
            int depth = depth_of(plain, &nul);
            FUZZ_CHECK(nul || depth > TK_JSON_MAX_DEPTH || raw_depth(in, size) > TK_JSON_MAX_DEPTH);
            json_decref(plain);
        }
    }
    json_decref(doc);
    /* Arbitrary bytes through the escaper come back unchanged exactly when
     * they can be a JSON string: UTF-8 (jansson checks it) without NUL. */
    if (rc != TK_ENOMEM && size <= 4096) {
        json_t *probe = json_stringn(in, size);
        int ok = probe != NULL && memchr(in, '\0', size) == NULL;
        json_decref(probe);
        int back = roundtrip(in, size);
        FUZZ_CHECK(back == -1 || back == ok);
    }
    return 0;
}
