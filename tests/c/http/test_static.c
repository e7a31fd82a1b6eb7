/* The web client's static files (runtime/http/static.c): path normalisation
 * and traversal refusal, content types, ETag and Accept-Encoding parsing, the
 * CSP, and whole answers (200, gzip, 304, 301, 404, 405) from a temporary
 * WEB_DIR. */
#include <microhttpd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/static.h"
#include "test_util.h"

#define RESOLVES(path, want)                                                                       \
    do {                                                                                           \
        char rel_[256];                                                                            \
        int rc_ = tk_static_resolve((path), rel_, sizeof rel_);                                    \
        if (rc_ != TK_OK)                                                                          \
            TEST_FAIL_("resolve(\"%s\") = %d, expected \"%s\"", (path), rc_, (want));              \
        ASSERT_STR_EQ(rel_, (want));                                                               \
    } while (0)

#define REFUSED(path)                                                                              \
    do {                                                                                           \
        char rel_[256];                                                                            \
        int rc_ = tk_static_resolve((path), rel_, sizeof rel_);                                    \
        if (rc_ != TK_ENOTFOUND)                                                                   \
            TEST_FAIL_("resolve(\"%s\") = %d (\"%s\"), expected TK_ENOTFOUND", (path), rc_,        \
                       rc_ == TK_OK ? rel_ : "");                                                  \
    } while (0)

TEST(owns_only_app)
{
    ASSERT_EQ_INT(tk_static_owns("/app"), 1);
    ASSERT_EQ_INT(tk_static_owns("/app/"), 1);
    ASSERT_EQ_INT(tk_static_owns("/app/js/app.js"), 1);
    ASSERT_EQ_INT(tk_static_owns("/apps"), 0);
    ASSERT_EQ_INT(tk_static_owns("/api/v1/app"), 0);
    ASSERT_EQ_INT(tk_static_owns("/"), 0);
    return 0;
}

TEST(paths_normalise)
{
    RESOLVES("/app/", "index.html");
    RESOLVES("/app/app.js", "app.js");
    RESOLVES("/app/js/board.js", "js/board.js");
    RESOLVES("/app/img/", "img/index.html");
    RESOLVES("/app/a.b-c_d.css", "a.b-c_d.css");
    return 0;
}

TEST(traversal_is_refused)
{
    REFUSED("/app/..");
    REFUSED("/app/../etc/passwd");
    REFUSED("/app/js/../../x.js");
    REFUSED("/app/./index.html");
    REFUSED("/app/.git/config");
    REFUSED("/app/js/.hidden.js");
    REFUSED("/app//etc/passwd");
    REFUSED("/app/%2e%2e/x.js"); /* a double-encoded dot arrives with its '%' */
    REFUSED("/app/..%2fx.js");
    REFUSED("/app/a\\b.js");
    REFUSED("/app/a b.js");
    REFUSED("/app/\xc3\xa9.js");
    REFUSED("/app");
    REFUSED("/other/x.js");
    char long_seg[160] = "/app/";
    memset(long_seg + 5, 'a', 120);
    strcpy(long_seg + 125, ".js");
    REFUSED(long_seg);
    /* a result that does not fit the buffer is refused, not truncated */
    char rel[8];
    ASSERT_EQ_INT(tk_static_resolve("/app/abcdefgh.js", rel, sizeof rel), TK_ENOTFOUND);
    ASSERT_EQ_INT(tk_static_resolve("/app/abc/", rel, sizeof rel), TK_ENOTFOUND);
    return 0;
}

TEST(types_by_extension)
{
    ASSERT_STR_EQ(tk_static_type("index.html"), "text/html; charset=utf-8");
    ASSERT_STR_EQ(tk_static_type("js/app.js"), "text/javascript; charset=utf-8");
    ASSERT_STR_EQ(tk_static_type("style.CSS"), "text/css; charset=utf-8");
    ASSERT_STR_EQ(tk_static_type("board.png"), "image/png");
    ASSERT_STR_EQ(tk_static_type("icon.svg"), "image/svg+xml; charset=utf-8");
    ASSERT_STR_EQ(tk_static_type("m.webmanifest"), "application/manifest+json; charset=utf-8");
    ASSERT_NULL(tk_static_type("README.md"));
    ASSERT_NULL(tk_static_type("Makefile"));
    ASSERT_NULL(tk_static_type("js.d/file"));
    ASSERT_NULL(tk_static_type("x.js.bak"));
    return 0;
}

TEST(etag_matching)
{
    ASSERT_EQ_INT(tk_static_etag_matches("\"abc\"", "\"abc\""), 1);
    ASSERT_EQ_INT(tk_static_etag_matches("W/\"abc\"", "\"abc\""), 1);
    ASSERT_EQ_INT(tk_static_etag_matches("\"x\", \"abc\"", "\"abc\""), 1);
    ASSERT_EQ_INT(tk_static_etag_matches("*", "\"abc\""), 1);
    ASSERT_EQ_INT(tk_static_etag_matches("\"abcd\"", "\"abc\""), 0);
    ASSERT_EQ_INT(tk_static_etag_matches("abc", "\"abc\""), 0);
    ASSERT_EQ_INT(tk_static_etag_matches("", "\"abc\""), 0);
    ASSERT_EQ_INT(tk_static_etag_matches(NULL, "\"abc\""), 0);
    return 0;
}

TEST(accept_encoding_parsing)
{
    ASSERT_EQ_INT(tk_static_accepts_gzip("gzip, deflate, br"), 1);
    ASSERT_EQ_INT(tk_static_accepts_gzip("br;q=1.0, GZIP;q=0.5"), 1);
    ASSERT_EQ_INT(tk_static_accepts_gzip("*"), 1);
    ASSERT_EQ_INT(tk_static_accepts_gzip("gzip;q=0"), 0);
    ASSERT_EQ_INT(tk_static_accepts_gzip("deflate, br"), 0);
    ASSERT_EQ_INT(tk_static_accepts_gzip("x-gzip2"), 0);
    ASSERT_EQ_INT(tk_static_accepts_gzip(""), 0);
    ASSERT_EQ_INT(tk_static_accepts_gzip(NULL), 0);
    return 0;
}

TEST(csp_names_the_realtime_port)
{
    tk_config cfg = {0};
    cfg.ws_port = 8081;
    char csp[1024];
    tk_static_csp(&cfg, "example.com:8080", csp, sizeof csp);
    ASSERT(strstr(csp, "script-src 'self';") != NULL);
    ASSERT(strstr(csp, "connect-src 'self' ws://example.com:8081 wss://example.com:8081;") != NULL);
    ASSERT(strstr(csp, "frame-ancestors 'none'") != NULL);
    ASSERT(strstr(csp, "unsafe") == NULL);
    tk_static_csp(&cfg, "[::1]:8080", csp, sizeof csp);
    ASSERT(strstr(csp, "ws://[::1]:8081") != NULL);
    /* a malformed Host never reaches the header */
    tk_static_csp(&cfg, "evil.com; script-src *", csp, sizeof csp);
    ASSERT(strstr(csp, "connect-src 'self';") != NULL);
    ASSERT(strstr(csp, "evil") == NULL);
    tk_static_csp(&cfg, NULL, csp, sizeof csp);
    ASSERT(strstr(csp, "connect-src 'self';") != NULL);
    return 0;
}

#define UNESCAPES(in, want)                                                                        \
    do {                                                                                           \
        char b_[64];                                                                               \
        snprintf(b_, sizeof b_, "%s", (in));                                                       \
        size_t n_ = tk_static_unescape(NULL, NULL, b_);                                            \
        ASSERT_STR_EQ(b_, (want));                                                                 \
        ASSERT_EQ_INT(n_, strlen(want));                                                           \
    } while (0)

TEST(unescape_keeps_encoded_nul)
{
    UNESCAPES("/app/a%20b.js", "/app/a b.js");
    UNESCAPES("/app/%2e%2E/x", "/app/../x");
    UNESCAPES("/app/%252e", "/app/%2e");
    UNESCAPES("/app/index.html%00.png", "/app/index.html%00.png");
    UNESCAPES("%0", "%0");
    UNESCAPES("%zz%4", "%zz%4");
    UNESCAPES("%C3%A9", "\xc3\xa9");
    UNESCAPES("", "");
    char rel[64];
    ASSERT_EQ_INT(tk_static_resolve("/app/index.html%00.png", rel, sizeof rel), TK_ENOTFOUND);
    return 0;
}

/* ---- whole answers from a temporary WEB_DIR ------------------------------ */

static char dir[64];

static int write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static void remove_dir(void)
{
    const char *files[] = {"index.html", "big.js", "notes.md", "sub/x.css", "link.js"};
    char path[256];
    for (size_t i = 0; i < TK_ARRAY_LEN(files); i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/sub", dir);
    rmdir(path);
    rmdir(dir);
}

#define ANSWER(q, want_status)                                                                     \
    do {                                                                                           \
        if (resp)                                                                                  \
            MHD_destroy_response(resp);                                                            \
        resp = NULL;                                                                               \
        ASSERT_EQ_INT(tk_static_answer(&cfg, &(q), &resp, &status), TK_OK);                        \
        ASSERT_NOT_NULL(resp);                                                                     \
        ASSERT_EQ_INT(status, (want_status));                                                      \
    } while (0)

#define HEADER(name) MHD_get_response_header(resp, (name))

TEST(answers)
{
    snprintf(dir, sizeof dir, "/tmp/tk-static-XXXXXX");
    if (mkdtemp(dir) == NULL)
        TEST_SKIP("mkdtemp failed");
    char big[4096];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    char target[256];
    snprintf(target, sizeof target, "%s/index.html", dir);
    char link[256];
    snprintf(link, sizeof link, "%s/link.js", dir);
    int rc = write_file("index.html", "<!doctype html><title>t</title>") |
             write_file("big.js", big) | write_file("notes.md", "# not served") | mkdir(sub, 0700) |
             write_file("sub/x.css", "b{}") | symlink(target, link);
    if (rc != 0) {
        remove_dir();
        TEST_SKIP("cannot write the temporary WEB_DIR");
    }
    tk_config cfg = {0};
    cfg.web_dir = dir;
    cfg.port = 8080;
    cfg.ws_port = 8081;
    struct MHD_Response *resp = NULL;
    unsigned status = 0;
    int failed = 1;

    tk_static_request q = {"GET", "/app/", NULL, NULL, "localhost:8080"};
    ANSWER(q, 200);
    ASSERT_STR_EQ(HEADER("Content-Type"), "text/html; charset=utf-8");
    ASSERT_STR_EQ(HEADER("Cache-Control"), "no-cache");
    ASSERT(strstr(HEADER("Content-Security-Policy"), "ws://localhost:8081") != NULL);
    ASSERT_NULL(HEADER("Content-Encoding")); /* small: not worth compressing */
    char etag[64];
    snprintf(etag, sizeof etag, "%s", HEADER("ETag"));
    ASSERT_EQ_INT(etag[0], '"');

    q.if_none_match = etag; /* revalidation */
    ANSWER(q, 304);
    ASSERT_STR_EQ(HEADER("ETag"), etag);
    q.if_none_match = "\"0000000000000000\"";
    ANSWER(q, 200);
    q.if_none_match = NULL;

    q.path = "/app/big.js";
    q.accept_encoding = "gzip, br";
    ANSWER(q, 200);
    ASSERT_STR_EQ(HEADER("Content-Encoding"), "gzip");
    ASSERT_STR_EQ(HEADER("Content-Type"), "text/javascript; charset=utf-8");
    ASSERT_STR_EQ(HEADER("Vary"), "Accept-Encoding");
    char gz_etag[64];
    snprintf(gz_etag, sizeof gz_etag, "%s", HEADER("ETag"));
    ASSERT(strstr(gz_etag, "-gz\"") != NULL);
    q.accept_encoding = NULL; /* the other representation, another tag */
    ANSWER(q, 200);
    ASSERT_NULL(HEADER("Content-Encoding"));
    ASSERT(strcmp(HEADER("ETag"), gz_etag) != 0);
    q.if_none_match = gz_etag; /* same content: still not modified */
    ANSWER(q, 304);
    q.if_none_match = NULL;

    q.path = "/app/sub/x.css";
    ANSWER(q, 200);
    ASSERT_STR_EQ(HEADER("Content-Type"), "text/css; charset=utf-8");
    q.method = "HEAD";
    ANSWER(q, 200);
    q.method = "GET";

    q.path = "/app/config.json";
    ANSWER(q, 200);
    ASSERT_STR_EQ(HEADER("Content-Type"), "application/json; charset=utf-8");

    const char *missing[] = {"/app/nope.js",           "/app/notes.md",          "/app/sub",
                             "/app/../CMakeLists.txt", "/app/sub/../index.html", "/app/link.js"};
    for (size_t i = 0; i < TK_ARRAY_LEN(missing); i++) {
        q.path = missing[i];
        ANSWER(q, 404);
        ASSERT_STR_EQ(HEADER("Content-Type"), "application/json; charset=utf-8");
        ASSERT_NULL(HEADER("Content-Security-Policy")); /* the API's, added by the server */
    }

    q.path = "/app";
    ANSWER(q, 301);
    ASSERT_STR_EQ(HEADER("Location"), "/app/");

    q.path = "/app/index.html";
    q.method = "POST";
    ANSWER(q, 405);
    ASSERT_STR_EQ(HEADER("Allow"), "GET, HEAD");
    failed = 0;
    MHD_destroy_response(resp);
    resp = NULL;
    remove_dir();
    return failed;
}

TEST_MAIN(TEST_ENTRY(owns_only_app), TEST_ENTRY(paths_normalise), TEST_ENTRY(traversal_is_refused),
          TEST_ENTRY(types_by_extension), TEST_ENTRY(etag_matching),
          TEST_ENTRY(accept_encoding_parsing), TEST_ENTRY(csp_names_the_realtime_port),
          TEST_ENTRY(unescape_keeps_encoded_nul), TEST_ENTRY(answers))
