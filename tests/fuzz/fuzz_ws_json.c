/* Fuzz target: the JSON reader realtime clients' messages go through
 * (runtime/ws/json.c) and its string escaper. Checks: parse answers 0,
 * TK_EINVAL or TK_ENOMEM; the accessors stay in bounds on any node; every
 * decoded string reached through arrays and the keys the protocols read,
 * written back with tk_jbuf_add_jstr, parses to the same bytes. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "ws/json.h"

static const char *const keys[] = {"type", "token", "room", "projectId", "message", "data", ""};

static void roundtrip(const char *s, size_t len)
{
    tk_jbuf b;
    tk_jbuf_init(&b, 16);
    tk_jbuf_add_jstr(&b, s, len);
    FUZZ_CHECK(tk_jbuf_ok(&b));
    const char *text = tk_jbuf_text(&b);
    tk_json *doc = NULL;
    int rc = tk_json_parse(text, strlen(text), &doc);
    if (rc == TK_ENOMEM) {
        tk_jbuf_cleanup(&b);
        return;
    }
    FUZZ_CHECK(rc == TK_OK);
    size_t back_len = 0;
    const char *back = tk_json_str(doc, 0, &back_len);
    FUZZ_CHECK(back != NULL && back_len == len && memcmp(back, s, len) == 0);
    tk_json_free(doc);
    tk_jbuf_cleanup(&b);
}

static void walk(const tk_json *doc, int node, int depth)
{
    FUZZ_CHECK(depth <= TK_JSON_MAX_DEPTH + 1);
    tk_json_type t = tk_json_type_of(doc, node);
    size_t len = 0;
    const char *s = tk_json_str(doc, node, &len);
    FUZZ_CHECK((s != NULL) == (t == TK_JSON_STRING));
    if (s != NULL) {
        FUZZ_CHECK(s[len] == '\0' && strlen(s) <= len);
        roundtrip(s, len);
    }
    int n = tk_json_len(doc, node);
    FUZZ_CHECK(n >= 0);
    FUZZ_CHECK(n == 0 || t == TK_JSON_ARRAY || t == TK_JSON_OBJECT);
    if (t == TK_JSON_ARRAY) {
        for (int i = 0; i < n; i++) {
            int c = tk_json_at(doc, node, i);
            FUZZ_CHECK(c > node);
            walk(doc, c, depth + 1);
        }
        FUZZ_CHECK(tk_json_at(doc, node, n) == -1 && tk_json_at(doc, node, -1) == -1);
    } else if (t == TK_JSON_OBJECT) {
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            int c = tk_json_get(doc, node, keys[k]);
            if (c >= 0)
                walk(doc, c, depth + 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    tk_json *doc = NULL;
    int rc = tk_json_parse((const char *)data, size, &doc);
    FUZZ_CHECK(rc == TK_OK || rc == TK_EINVAL || rc == TK_ENOMEM);
    if (rc == TK_OK) {
        FUZZ_CHECK(doc != NULL);
        walk(doc, 0, 0);
        FUZZ_CHECK(tk_json_type_of(doc, -1) == TK_JSON_NULL && tk_json_get(doc, -1, "a") == -1);
    }
    tk_json_free(doc);
    /* Arbitrary bytes through the escaper must come back unchanged. */
    if (rc != TK_ENOMEM && size <= 4096)
        roundtrip((const char *)data, size);
    return 0;
}
