/* The HTTP/1.1 edge checks (runtime/http/edge.c): framing (Content-Length,
 * Transfer-Encoding and both), field names and values, Host, the layout
 * test that finds folded lines and NUL bytes behind libmicrohttpd 0.9.75,
 * the metrics bearer check and the HOST bind address. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "http/edge.h"
#include "test_util.h"

#define LIMIT 1048576

/* Runs the check on a list of "name", "value" pairs and expects `want`. */
static unsigned check(const char *version, const char *const *kv, size_t pairs,
                      tk_http_edge_verdict *v)
{
    tk_http_header h[16];
    for (size_t i = 0; i < pairs; i++) {
        h[i].name = kv[2 * i];
        h[i].value = kv[2 * i + 1];
    }
    return tk_http_edge_check(version, h, pairs, LIMIT, v);
}

#define EXPECT(want, version, ...)                                                                 \
    do {                                                                                           \
        static const char *const kv_[] = {__VA_ARGS__};                                            \
        tk_http_edge_verdict v_;                                                                   \
        unsigned got_ = check((version), kv_, TK_ARRAY_LEN(kv_) / 2, &v_);                         \
        if (got_ != (want))                                                                        \
            TEST_FAIL_("%s: got %u (%s), expected %u", kv_[0], got_,                               \
                       v_.message ? v_.message : "accepted", (unsigned)(want));                    \
        ASSERT_EQ_INT(v_.status, got_);                                                            \
        if (got_ != 0)                                                                             \
            ASSERT(v_.code != NULL && v_.message != NULL);                                         \
    } while (0)

TEST(plain_requests_pass)
{
    tk_http_edge_verdict v;
    EXPECT(0, "HTTP/1.1", "Host", "a");
    EXPECT(0, "HTTP/1.1", "Host", "", "Accept", "*/*"); /* an empty Host is allowed */
    EXPECT(0, "HTTP/1.0", "Accept", "*/*");             /* no Host needed on 1.0 */
    EXPECT(0, "HTTP/1.1", "Host", "a", "Content-Length", "0");
    EXPECT(0, "HTTP/1.1", "host", "a", "content-length", "1048576");  /* exactly the limit */
    EXPECT(0, "HTTP/1.1", "Host", "a", "X-Obs", "caf\xc3\xa9\ttab");  /* obs-text and HTAB */
    EXPECT(0, "HTTP/1.1", "Host", "a", "!#$%&'*+-.^_`|~09azAZ", "v"); /* every tchar */
    const char *kv[] = {"Host", "a", "Content-Length", "000017"};
    ASSERT_EQ_INT(check("HTTP/1.1", kv, 2, &v), 0);
    ASSERT_EQ_INT(v.content_length, 17);
    ASSERT_EQ_INT(v.has_body, 1);
    const char *kv0[] = {"Host", "a", "Content-Length", "0"};
    ASSERT_EQ_INT(check("HTTP/1.1", kv0, 2, &v), 0);
    ASSERT_EQ_INT(v.has_body, 0);
    return 0;
}

TEST(host_rules)
{
    EXPECT(400, "HTTP/1.1", "Accept", "*/*");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Host", "b");
    EXPECT(400, "HTTP/1.1", "Host", "a", "HOST", "a"); /* even the same value */
    EXPECT(400, "HTTP/1.0", "Host", "a", "Host", "b");
    return 0;
}

TEST(field_syntax)
{
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-A ", "b"); /* blank before the colon */
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-A\t", "b");
    EXPECT(400, "HTTP/1.1", "Host", "a", "", "b");     /* no name */
    EXPECT(400, "HTTP/1.1", "Host", "a", "X(A)", "b"); /* not a token */
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-A: chunked", "b");
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-\xc3\xa9", "b");
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-A", "b\rc"); /* bare CR */
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-A", "b\nc");
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-A", "\x01");
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-A", "b\x0b");
    EXPECT(400, "HTTP/1.1", "Host", "a", "X-A", "b\x7f");
    EXPECT(400, "HTTP/1.1", "Host", "a\x1f");
    return 0;
}

TEST(content_length)
{
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "-1");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "+2");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "1e3");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "1 2");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "0x10");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "12345678901234567890"); /* 20 digits */
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "99999999999999999999");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "5", "Content-Length", "5");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "5", "content-length", "6");
    EXPECT(413, "HTTP/1.1", "Host", "a", "Content-Length", "1048577");
    EXPECT(413, "HTTP/1.1", "Host", "a", "Content-Length", "2147483648");
    EXPECT(413, "HTTP/1.1", "Host", "a", "Content-Length", "9999999999999999999"); /* 19 */
    return 0;
}

TEST(transfer_encoding)
{
    EXPECT(411, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "chunked");
    EXPECT(411, "HTTP/1.1", "Host", "a", "transfer-encoding", "CHUNKED");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "chunked", "Content-Length", "5");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Content-Length", "5", "Transfer-Encoding", "chunked");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "chunked", "Transfer-Encoding",
           "chunked");
    EXPECT(400, "HTTP/1.0", "Transfer-Encoding", "chunked");
    EXPECT(501, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "xchunked");
    EXPECT(501, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "chunked, identity");
    EXPECT(501, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "gzip, chunked");
    EXPECT(501, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "chunked\t");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Transfer-Encoding",
           "\x0b"
           "chunked");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Transfer-Encoding", ",");
    EXPECT(400, "HTTP/1.1", "Host", "a", "Transfer-Encoding", "chunked@");
    return 0;
}

/* Builds the bytes MHD 0.9.75 leaves after parsing `block` (lines ending in
 * CRLF or LF, the empty line included): ':' after each name and every CR/LF
 * become NUL, the value starts after the blanks; h[] points into buf. */
static size_t mhd_layout(char *buf, const char *block, size_t len, tk_http_header *h)
{
    memcpy(buf, block, len);
    size_t n = 0, i = 0;
    while (i < len && buf[i] != '\r' && buf[i] != '\n') {
        h[n].name = buf + i;
        char *colon = memchr(buf + i, ':', len - i);
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        h[n].value = v;
        char *end = v;
        while (*end != '\r' && *end != '\n')
            end++;
        if (*end == '\r')
            *end++ = '\0';
        *end++ = '\0';
        i = (size_t)(end - buf);
        n++;
    }
    for (; i < len; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = '\0';
    return n;
}

#define LAYOUT(want, block)                                                                        \
    do {                                                                                           \
        char buf_[256];                                                                            \
        tk_http_header h_[8];                                                                      \
        size_t n_ = mhd_layout(buf_, (block), sizeof(block) - 1, h_);                              \
        ASSERT_EQ_INT(tk_http_edge_layout_ok(h_, n_), (want));                                     \
    } while (0)

TEST(layout)
{
    LAYOUT(1, "Host: a\r\nX-A: b\r\n\r\n");
    LAYOUT(1, "Host: a\nX-A: b\n\n"); /* bare LF */
    LAYOUT(1, "Host:a\r\nX-A:   \t b\r\nX-B:\r\n\r\n");
    LAYOUT(1, "Host: a\r\nX-A: b\x00\r\n\r\n"); /* a NUL right before CRLF cuts nothing */
    LAYOUT(0, "Host: a\r\nX-A: b\x00"
              "c\r\n\r\n");
    LAYOUT(0, "X-A: b\x00"
              "c\r\nHost: a\r\n\r\n");
    LAYOUT(0, "X-A: b\x00"
              "c\nHost: a\n\n");

    /* a folded line as MHD joins it: the continuation is copied over the
     * name's terminator, so the value no longer follows the name */
    char buf[64] = "Transfer-Encoding\0\0\0\0Host\0a\0\0\0";
    memcpy(buf + 17, "chunked", 8);
    tk_http_header h[2] = {{buf, buf + 18}, {buf + 26, buf + 31}};
    ASSERT_EQ_INT(tk_http_edge_layout_ok(h, 2), 0);
    /* or the name moved elsewhere */
    static char moved[] = "X-A b";
    char rest[16] = "Host\0a\0\0\0";
    tk_http_header m[2] = {{moved, rest + 5}, {rest, rest + 5}};
    ASSERT_EQ_INT(tk_http_edge_layout_ok(m, 2), 0);
    return 0;
}

TEST(bearer)
{
    ASSERT_EQ_INT(tk_http_edge_bearer_ok("Bearer 0123456789abcdef", "0123456789abcdef"), 1);
    ASSERT_EQ_INT(tk_http_edge_bearer_ok("bearer  0123456789abcdef", "0123456789abcdef"), 1);
    ASSERT_EQ_INT(tk_http_edge_bearer_ok("Bearer 0123456789abcdeF", "0123456789abcdef"), 0);
    ASSERT_EQ_INT(tk_http_edge_bearer_ok("Bearer 0123456789abcde", "0123456789abcdef"), 0);
    ASSERT_EQ_INT(tk_http_edge_bearer_ok("Bearer 0123456789abcdefg", "0123456789abcdef"), 0);
    ASSERT_EQ_INT(tk_http_edge_bearer_ok("Basic 0123456789abcdef", "0123456789abcdef"), 0);
    ASSERT_EQ_INT(tk_http_edge_bearer_ok("Bearer ", "0123456789abcdef"), 0);
    ASSERT_EQ_INT(tk_http_edge_bearer_ok(NULL, "0123456789abcdef"), 0);
    return 0;
}

TEST(bind_addr)
{
    struct sockaddr_storage ss;
    ASSERT_EQ_INT(tk_http_edge_bind_addr(NULL, 8080, &ss), TK_OK);
    ASSERT_EQ_INT(ss.ss_family, AF_INET);
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
    ASSERT_EQ_INT(ntohs(in4->sin_port), 8080);
    ASSERT_EQ_INT(in4->sin_addr.s_addr, htonl(INADDR_ANY));
    ASSERT_EQ_INT(tk_http_edge_bind_addr("", 1, &ss), TK_OK);
    ASSERT_EQ_INT(ss.ss_family, AF_INET);
    ASSERT_EQ_INT(tk_http_edge_bind_addr("127.0.0.2", 9000, &ss), TK_OK);
    ASSERT_EQ_INT(ss.ss_family, AF_INET);
    ASSERT_EQ_INT(in4->sin_addr.s_addr, htonl(0x7f000002));
    ASSERT_EQ_INT(tk_http_edge_bind_addr("::1", 9000, &ss), TK_OK);
    ASSERT_EQ_INT(ss.ss_family, AF_INET6);
    ASSERT_EQ_INT(ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port), 9000);
    ASSERT_EQ_INT(tk_http_edge_bind_addr("localhost", 9000, &ss), TK_EINVAL);
    return 0;
}

TEST_MAIN(TEST_ENTRY(plain_requests_pass), TEST_ENTRY(host_rules), TEST_ENTRY(field_syntax),
          TEST_ENTRY(content_length), TEST_ENTRY(transfer_encoding), TEST_ENTRY(layout),
          TEST_ENTRY(bearer), TEST_ENTRY(bind_addr))
