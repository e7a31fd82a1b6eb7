/* The strict JSON reader and the output buffer of runtime/ws/json.c: the
 * messages realtime clients send, every rejection a hostile client could
 * try (truncation, trailing bytes, bad escapes, lone surrogates, control
 * characters, depth), and the escaper's output. */
#include "test_util.h"
#include "ws/json.h"

static int parses(const char *s)
{
    tk_json *d = NULL;
    int rc = tk_json_parse(s, strlen(s), &d);
    tk_json_free(d);
    return rc == TK_OK;
}

TEST(reads_a_native_message)
{
    const char *s = " {\"type\": \"join\", \"room\": \"project:abc\", \"n\": -1.5e3, \"ok\": true,"
                    " \"no\": false, \"nil\": null, \"list\": [1, \"two\", {}]} ";
    tk_json *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    ASSERT_EQ_INT(tk_json_type_of(d, 0), TK_JSON_OBJECT);
    ASSERT_EQ_INT(tk_json_len(d, 0), 7);
    ASSERT_STR_EQ(tk_json_str(d, tk_json_get(d, 0, "type"), NULL), "join");
    size_t len = 0;
    ASSERT_STR_EQ(tk_json_str(d, tk_json_get(d, 0, "room"), &len), "project:abc");
    ASSERT_EQ_INT(len, 11);
    ASSERT_EQ_INT(tk_json_type_of(d, tk_json_get(d, 0, "n")), TK_JSON_NUMBER);
    ASSERT_EQ_INT(tk_json_type_of(d, tk_json_get(d, 0, "ok")), TK_JSON_TRUE);
    ASSERT_EQ_INT(tk_json_type_of(d, tk_json_get(d, 0, "no")), TK_JSON_FALSE);
    ASSERT_EQ_INT(tk_json_type_of(d, tk_json_get(d, 0, "nil")), TK_JSON_NULL);
    int list = tk_json_get(d, 0, "list");
    ASSERT_EQ_INT(tk_json_len(d, list), 3);
    ASSERT_STR_EQ(tk_json_str(d, tk_json_at(d, list, 1), NULL), "two");
    ASSERT_EQ_INT(tk_json_type_of(d, tk_json_at(d, list, 2)), TK_JSON_OBJECT);
    ASSERT_EQ_INT(tk_json_at(d, list, 3), -1);
    /* misses chain without checks */
    ASSERT_EQ_INT(tk_json_get(d, 0, "missing"), -1);
    ASSERT_NULL(tk_json_str(d, tk_json_get(d, -1, "x"), NULL));
    ASSERT_NULL(tk_json_str(d, tk_json_get(d, 0, "n"), NULL));
    ASSERT_EQ_INT(tk_json_type_of(d, -1), TK_JSON_NULL);
    tk_json_free(d);
    return 0;
}

TEST(reads_a_socketio_event_array)
{
    const char *s = "[\"join:project\",{\"projectId\":\"0b\\u00e9\\ud83d\\ude00\"}]";
    tk_json *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    ASSERT_EQ_INT(tk_json_type_of(d, 0), TK_JSON_ARRAY);
    ASSERT_STR_EQ(tk_json_str(d, tk_json_at(d, 0, 0), NULL), "join:project");
    ASSERT_STR_EQ(tk_json_str(d, tk_json_get(d, tk_json_at(d, 0, 1), "projectId"), NULL),
                  "0b\xc3\xa9\xf0\x9f\x98\x80");
    tk_json_free(d);
    return 0;
}

TEST(escapes_decode)
{
    const char *s = "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u0000z\"";
    tk_json *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    size_t len = 0;
    const char *v = tk_json_str(d, 0, &len);
    ASSERT_EQ_INT(len, 15);
    ASSERT_MEM_EQ(v, "a\"b\\c/d\b\f\n\r\tA\0z", 15);
    ASSERT_EQ_INT(strlen(v), 13); /* the NUL from \u0000 shortens strlen */
    tk_json_free(d);
    return 0;
}

TEST(duplicate_keys_last_wins)
{
    const char *s = "{\"type\":\"ping\",\"type\":\"join\"}";
    tk_json *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    ASSERT_STR_EQ(tk_json_str(d, tk_json_get(d, 0, "type"), NULL), "join");
    tk_json_free(d);
    return 0;
}

TEST(rejects_what_is_not_one_json_value)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "[1,]",
        "{\"a\":}",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":1,}",
        "{\"a\":1} x",
        "[1] [2]",
        "tru",
        "nul",
        "falsey",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "\"unterminated",
        "\"bad \\x escape\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"tab\there\"",
        "\"nl\nhere\"",
        "'single'",
        "[1 2]",
        "{,}",
    };
    for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++)
        if (parses(bad[i]))
            TEST_FAIL_("accepted %s", bad[i]);
    static const char *const good[] = {"0",    "-0",   "1.5e+10", "2E-3",
                                       "\"\"", "[]",   "{}",      " [ [ ] , { } ] ",
                                       "null", "true", "false"};
    for (size_t i = 0; i < TK_ARRAY_LEN(good); i++)
        if (!parses(good[i]))
            TEST_FAIL_("refused %s", good[i]);
    return 0;
}

TEST(depth_is_capped)
{
    char deep[200];
    int n = TK_JSON_MAX_DEPTH + 1;
    for (int i = 0; i < n; i++)
        deep[i] = '[';
    for (int i = 0; i < n; i++)
        deep[n + i] = ']';
    deep[2 * n] = '\0';
    ASSERT(parses(deep));
    char deeper[200];
    n++;
    for (int i = 0; i < n; i++)
        deeper[i] = '[';
    for (int i = 0; i < n; i++)
        deeper[n + i] = ']';
    deeper[2 * n] = '\0';
    ASSERT(!parses(deeper));
    return 0;
}

TEST(no_nul_needed_and_length_is_honoured)
{
    const char buf[] = {'{', '}', 'x'};
    tk_json *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(buf, 2, &d), TK_OK);
    tk_json_free(d);
    ASSERT_EQ_INT(tk_json_parse(buf, 3, &d), TK_EINVAL);
    ASSERT_NULL(d);
    return 0;
}

TEST(large_documents)
{
    /* many nodes: the node array grows */
    size_t n = 20000;
    char *s = malloc(n * 4 + 3);
    ASSERT_NOT_NULL(s);
    size_t o = 0;
    s[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        memcpy(s + o, i ? ",\"\"" : "\"\"", i ? 3 : 2);
        o += i ? 3 : 2;
    }
    s[o++] = ']';
    tk_json *d = NULL;
    int rc = tk_json_parse(s, o, &d);
    free(s);
    ASSERT_EQ_INT(rc, TK_OK);
    ASSERT_EQ_INT(tk_json_len(d, 0), (int)n);
    ASSERT_STR_EQ(tk_json_str(d, tk_json_at(d, 0, (int)n - 1), NULL), "");
    tk_json_free(d);
    return 0;
}

TEST(jbuf_escapes_and_reserves)
{
    tk_jbuf b;
    tk_jbuf_init(&b, 24);
    tk_jbuf_adds(&b, "{\"k\":");
    tk_jbuf_add_jstr(&b, "q\"b\\n\n\r\t\x01\x1f\x7f\xc3\xa9", 13);
    tk_jbuf_adds(&b, "}");
    ASSERT(tk_jbuf_ok(&b));
    ASSERT_STR_EQ(tk_jbuf_text(&b), "{\"k\":\"q\\\"b\\\\n\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\"}");
    ASSERT_EQ_INT(b.len, strlen(tk_jbuf_text(&b)));
    ASSERT(b.p != NULL && tk_jbuf_text(&b) == b.p + 24);
    /* the escaped text parses back to the original */
    tk_json *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(tk_jbuf_text(&b), b.len, &d), TK_OK);
    size_t len;
    const char *v = tk_json_str(d, tk_json_get(d, 0, "k"), &len);
    ASSERT_EQ_INT(len, 13);
    ASSERT_MEM_EQ(v, "q\"b\\n\n\r\t\x01\x1f\x7f\xc3\xa9", 13);
    tk_json_free(d);
    tk_jbuf_cleanup(&b);
    ASSERT_NULL(b.p);
    /* a never-written buffer reads as "" */
    tk_jbuf_init(&b, 0);
    ASSERT_STR_EQ(tk_jbuf_text(&b), "");
    tk_jbuf_cleanup(&b);
    return 0;
}

TEST_MAIN(TEST_ENTRY(reads_a_native_message), TEST_ENTRY(reads_a_socketio_event_array),
          TEST_ENTRY(escapes_decode), TEST_ENTRY(duplicate_keys_last_wins),
          TEST_ENTRY(rejects_what_is_not_one_json_value), TEST_ENTRY(depth_is_capped),
          TEST_ENTRY(no_nul_needed_and_length_is_honoured), TEST_ENTRY(large_documents),
          TEST_ENTRY(jbuf_escapes_and_reserves))
