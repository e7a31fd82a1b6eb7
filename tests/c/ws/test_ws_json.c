/* The JSON reader of runtime/ws/json.c (libjansson plus this server's
 * limits) and its output buffer: the messages realtime clients send, every
 * rejection a hostile client could try (truncation, trailing bytes, bad
 * escapes, lone surrogates, invalid UTF-8, control characters, "\u0000",
 * depth, out-of-range numbers), and the escaper's output. */
#include "test_util.h"
#include "ws/json.h"

static int parses_n(const char *s, size_t n)
{
    json_t *d = NULL;
    int rc = tk_json_parse(s, n, &d);
    if (rc != TK_OK && d != NULL)
        return -1; /* a refusal must not hand out a document */
    json_decref(d);
    return rc == TK_OK;
}

static int parses(const char *s)
{
    return parses_n(s, strlen(s));
}

TEST(reads_a_native_message)
{
    const char *s = " {\"type\": \"join\", \"room\": \"project:abc\", \"n\": -1.5e3, \"ok\": true,"
                    " \"no\": false, \"nil\": null, \"list\": [1, \"two\", {}]} ";
    json_t *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    ASSERT(json_is_object(d));
    ASSERT_EQ_INT(json_object_size(d), 7);
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "type")), "join");
    const json_t *room = json_object_get(d, "room");
    ASSERT_STR_EQ(json_string_value(room), "project:abc");
    ASSERT_EQ_INT(json_string_length(room), 11);
    ASSERT(json_is_number(json_object_get(d, "n")));
    ASSERT(json_real_value(json_object_get(d, "n")) == -1500.0);
    ASSERT(json_is_true(json_object_get(d, "ok")));
    ASSERT(json_is_false(json_object_get(d, "no")));
    ASSERT(json_is_null(json_object_get(d, "nil")));
    const json_t *list = json_object_get(d, "list");
    ASSERT_EQ_INT(json_array_size(list), 3);
    /* numbers are doubles, as the old reader and JavaScript have them */
    ASSERT(json_is_real(json_array_get(list, 0)));
    ASSERT_STR_EQ(json_string_value(json_array_get(list, 1)), "two");
    ASSERT(json_is_object(json_array_get(list, 2)));
    ASSERT_NULL(json_array_get(list, 3));
    /* misses chain without checks */
    ASSERT_NULL(json_object_get(d, "missing"));
    ASSERT_NULL(json_string_value(json_object_get(json_object_get(d, "x"), "y")));
    ASSERT_NULL(json_string_value(json_object_get(d, "n")));
    ASSERT_EQ_INT(json_string_length(json_object_get(d, "n")), 0);
    json_decref(d);
    return 0;
}

TEST(reads_a_socketio_event_array)
{
    const char *s = "[\"join:project\",{\"projectId\":\"0b\\u00e9\\ud83d\\ude00\"}]";
    json_t *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    ASSERT(json_is_array(d));
    ASSERT_STR_EQ(json_string_value(json_array_get(d, 0)), "join:project");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(d, 1), "projectId")),
                  "0b\xc3\xa9\xf0\x9f\x98\x80");
    json_decref(d);
    return 0;
}

TEST(escapes_decode)
{
    const char *s = "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9z\"";
    json_t *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    ASSERT_EQ_INT(json_string_length(d), 16);
    ASSERT_MEM_EQ(json_string_value(d), "a\"b\\c/d\b\f\n\r\tA\xc3\xa9z", 16);
    json_decref(d);
    return 0;
}

TEST(nul_in_any_string_is_refused)
{
    /* Every decoded string is a C string: a "\u0000" in a value or a key, as
     * a token, room, type or projectId or anywhere else, refuses the whole
     * message rather than being cut short by strcmp/strlen later. */
    static const char *const bad[] = {
        "\"\\u0000\"",
        "{\"type\":\"join\",\"room\":\"project:a\\u0000b\"}",
        "{\"type\":\"auth\\u0000\"}",
        "{\"type\":\"auth\",\"token\":\"abc\\u0000def\"}",
        "[\"join:project\",{\"projectId\":\"p\\u0000\"}]",
        "{\"k\\u0000ey\":1}",
        "[\"x\",\"\\u0000\"]",
    };
    for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++)
        if (parses(bad[i]) != 0)
            TEST_FAIL_("accepted %s", bad[i]);
    /* a raw NUL byte, inside or outside a string */
    ASSERT_EQ_INT(parses_n("\"a\0b\"", 5), 0);
    ASSERT_EQ_INT(parses_n("[1,\0 2]", 7), 0);
    ASSERT_EQ_INT(parses_n("{}\0", 3), 0);
    return 0;
}

TEST(duplicate_keys_last_wins)
{
    const char *s = "{\"type\":\"ping\",\"type\":\"join\"}";
    json_t *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "type")), "join");
    ASSERT_EQ_INT(json_object_size(d), 1);
    json_decref(d);
    /* also when the second spelling is escaped */
    s = "{\"type\":\"ping\",\"\\u0074ype\":\"join\"}";
    ASSERT_EQ_INT(tk_json_parse(s, strlen(s), &d), TK_OK);
    ASSERT_STR_EQ(json_string_value(json_object_get(d, "type")), "join");
    json_decref(d);
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
        "{\"a\":1}}",
        "[1] [2]",
        "tru",
        "nul",
        "falsey",
        "NaN",
        "Infinity",
        "01",
        "-01",
        "1.",
        ".5",
        "-",
        "1e",
        "1e+",
        "+1",
        "0x10",
        "\"unterminated",
        "\"bad \\x escape\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"\\udc00\\ud800\"",
        "\"tab\there\"",
        "\"nl\nhere\"",
        "\"\x1f\"",
        "'single'",
        "[1 2]",
        "{,}",
        "/* comment */ 1",
        "\xef\xbb\xbf{}", /* a byte-order mark */
        /* invalid UTF-8: stray continuation, truncated sequence, overlong,
         * an encoded surrogate, beyond U+10FFFF, bytes never used */
        "\"\x80\"",
        "\"\xc3\"",
        "\"\xe2\x82\"",
        "\"\xc0\xaf\"",
        "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xfe\"",
        "\"\xff\"",
        "{\"\xc3\":1}",
        /* numbers beyond a double */
        "1e400",
        "-1e400",
    };
    for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++)
        if (parses(bad[i]) != 0)
            TEST_FAIL_("accepted %s", bad[i]);
    char big[402]; /* an integer of 400 digits: beyond a double */
    memset(big, '9', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_EQ_INT(parses(big), 0);
    static const char *const good[] = {
        "0",
        "-0",
        "1.5e+10",
        "2E-3",
        "1e-400", /* underflows to 0, as in JavaScript */
        "12345678901234567890123",
        "\"\"",
        "[]",
        "{}",
        " [ [ ] , { } ] ",
        " \t\r\n{}\n",
        "null",
        "true",
        "false",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"",
        "\"\\ud83d\\ude00\"",
        "\"\\uffff\"",
        "\"<\\/mark>\"",
    };
    for (size_t i = 0; i < TK_ARRAY_LEN(good); i++)
        if (parses(good[i]) != 1)
            TEST_FAIL_("refused %s", good[i]);
    return 0;
}

static char *nested(int n, const char *open, const char *inner, const char *close)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *s = malloc((size_t)n * (lo + lc) + li + 1);
    if (s == NULL)
        abort();
    char *p = s;
    for (int i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (int i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

TEST(depth_is_capped)
{
    struct {
        int n;
        const char *open, *inner, *close;
        int ok;
    } cases[] = {
        {TK_JSON_MAX_DEPTH, "[", "", "]", 1},
        {TK_JSON_MAX_DEPTH, "[", "1", "]", 1},
        {TK_JSON_MAX_DEPTH, "{\"a\":", "{}", "}", 0}, /* 33 objects */
        {TK_JSON_MAX_DEPTH - 1, "{\"a\":", "{}", "}", 1},
        {TK_JSON_MAX_DEPTH + 1, "[", "", "]", 0},
        {TK_JSON_MAX_DEPTH + 1, "[", "1", "]", 0},
        {TK_JSON_MAX_DEPTH, "[{\"k\":", "0", "}]", 0},
        {2000, "[", "", "]", 0},   /* jansson alone would take this */
        {100000, "[", "", "]", 0}, /* or overflow its stack */
        /* brackets inside strings are text, escaped quotes do not end them */
        {TK_JSON_MAX_DEPTH, "[\"[[{\\\"[\",", "\"]\\\\\"", "]", 1},
    };
    for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
        char *s = nested(cases[i].n, cases[i].open, cases[i].inner, cases[i].close);
        int got = parses(s);
        free(s);
        if (got != cases[i].ok)
            TEST_FAIL_("case %zu: %d levels of %s%s%s: got %d", i, cases[i].n, cases[i].open,
                       cases[i].inner, cases[i].close, got);
    }
    /* unbalanced input that only looks deep to the scan is refused anyway */
    char *s = nested(TK_JSON_MAX_DEPTH + 1, "[", "", "");
    ASSERT_EQ_INT(parses(s), 0);
    free(s);
    return 0;
}

TEST(no_nul_needed_and_length_is_honoured)
{
    const char buf[] = {'{', '}', 'x'};
    json_t *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(buf, 2, &d), TK_OK);
    json_decref(d);
    d = (json_t *)buf; /* set to NULL on refusal */
    ASSERT_EQ_INT(tk_json_parse(buf, 3, &d), TK_EINVAL);
    ASSERT_NULL(d);
    ASSERT_EQ_INT(tk_json_parse(buf, 1, &d), TK_EINVAL);
    ASSERT_NULL(d);
    ASSERT_EQ_INT(tk_json_parse(buf, 0, &d), TK_EINVAL);
    ASSERT_NULL(d);
    return 0;
}

TEST(large_documents)
{
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
    json_t *d = NULL;
    int rc = tk_json_parse(s, o, &d);
    free(s);
    ASSERT_EQ_INT(rc, TK_OK);
    ASSERT_EQ_INT(json_array_size(d), n);
    ASSERT_STR_EQ(json_string_value(json_array_get(d, n - 1)), "");
    json_decref(d);
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
    json_t *d = NULL;
    ASSERT_EQ_INT(tk_json_parse(tk_jbuf_text(&b), b.len, &d), TK_OK);
    const json_t *v = json_object_get(d, "k");
    ASSERT_EQ_INT(json_string_length(v), 13);
    ASSERT_MEM_EQ(json_string_value(v), "q\"b\\n\n\r\t\x01\x1f\x7f\xc3\xa9", 13);
    json_decref(d);
    tk_jbuf_cleanup(&b);
    ASSERT_NULL(b.p);
    /* a never-written buffer reads as "" */
    tk_jbuf_init(&b, 0);
    ASSERT_STR_EQ(tk_jbuf_text(&b), "");
    tk_jbuf_cleanup(&b);
    return 0;
}

TEST_MAIN(TEST_ENTRY(reads_a_native_message), TEST_ENTRY(reads_a_socketio_event_array),
          TEST_ENTRY(escapes_decode), TEST_ENTRY(nul_in_any_string_is_refused),
          TEST_ENTRY(duplicate_keys_last_wins), TEST_ENTRY(rejects_what_is_not_one_json_value),
          TEST_ENTRY(depth_is_capped), TEST_ENTRY(no_nul_needed_and_length_is_honoured),
          TEST_ENTRY(large_documents), TEST_ENTRY(jbuf_escapes_and_reserves))
