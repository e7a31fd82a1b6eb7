/* HTTP/1.1 edge checks on the header section (RFC 9110 §5, RFC 9112 §6):
 * one framing or a refusal, field names that are tokens, field values
 * without control bytes, exactly one Host on HTTP/1.1. Chunked request
 * bodies are refused with 411: libmicrohttpd 0.9.75 answers some chunked
 * inputs itself with 500 or waits on them, so only Content-Length frames a
 * body here. What happens after a refusal (close) is server.c's business. */
#include "http/edge.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int token_ok(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return 0;
    return 1;
}

/* Field values: VCHAR, obs-text, SP and HTAB; no other control byte. */
static int value_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* A transfer-coding list: tokens (with parameters) separated by commas and
 * blanks. Only decides 501 (well formed, not supported) against 400. */
static int coding_list_ok(const char *s)
{
    int tokens = 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (is_tchar(c))
            tokens = 1;
        else if (c != ',' && c != ' ' && c != '\t' && c != ';' && c != '=' && c != '"')
            return 0;
    }
    return tokens;
}

/* Content-Length = 1*DIGIT; more than 19 digits cannot be a size here. */
static int parse_length(const char *s, uint64_t *out)
{
    uint64_t n = 0;
    size_t i = 0;
    for (; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 19)
            return 0;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0)
        return 0;
    *out = n;
    return 1;
}

static unsigned refuse(tk_http_edge_verdict *v, unsigned status, const char *code,
                       const char *message)
{
    v->status = status;
    v->code = code;
    v->message = message;
    return status;
}

unsigned tk_http_edge_check(const char *version, const tk_http_header *h, size_t n,
                            uint64_t body_limit, tk_http_edge_verdict *out)
{
    memset(out, 0, sizeof *out);
    int http11 = version != NULL && strcmp(version, "HTTP/1.1") == 0;
    size_t hosts = 0, lengths = 0, codings = 0;
    const char *cl = NULL, *te = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!token_ok(h[i].name))
            return refuse(out, 400, "bad_request", "malformed header field name");
        if (!value_ok(h[i].value))
            return refuse(out, 400, "bad_request", "control character in a header field value");
        if (strcasecmp(h[i].name, "Host") == 0) {
            hosts++;
        } else if (strcasecmp(h[i].name, "Content-Length") == 0) {
            lengths++;
            cl = h[i].value;
        } else if (strcasecmp(h[i].name, "Transfer-Encoding") == 0) {
            codings++;
            te = h[i].value;
        }
    }
    if (hosts > 1 || (http11 && hosts == 0))
        return refuse(out, 400, "bad_request", "an HTTP/1.1 request needs exactly one Host header");
    if (codings > 0) {
        if (codings > 1 || lengths > 0 || !http11)
            return refuse(out, 400, "bad_request", "ambiguous message framing");
        if (strcasecmp(te, "chunked") == 0)
            return refuse(out, 411, "length_required",
                          "a request body needs a Content-Length header");
        if (coding_list_ok(te))
            return refuse(out, 501, "not_implemented", "unsupported transfer coding");
        return refuse(out, 400, "bad_request", "malformed Transfer-Encoding header");
    }
    if (lengths > 1)
        return refuse(out, 400, "bad_request", "more than one Content-Length header");
    if (cl != NULL) {
        if (!parse_length(cl, &out->content_length))
            return refuse(out, 400, "bad_request", "malformed Content-Length header");
        out->has_body = out->content_length > 0;
        if (out->content_length > body_limit)
            return refuse(out, 413, "payload_too_large", "request body is larger than allowed");
    }
    return 0;
}

int tk_http_edge_layout_ok(const tk_http_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* name NUL (was ':') blanks value: anything else is a folded line */
        uintptr_t after_name = (uintptr_t)h[i].name + strlen(h[i].name) + 1;
        uintptr_t value = (uintptr_t)h[i].value;
        if (value < after_name || value - after_name > 256)
            return 0;
        for (const char *p = h[i].name + strlen(h[i].name) + 1; p < h[i].value; p++)
            if (*p != ' ' && *p != '\t')
                return 0;
        /* value NUL (was CR or LF), then NUL (LF, or the next empty line)
         * or the next name right after a bare LF; a byte of the line there
         * means the value held a NUL */
        const char *end = h[i].value + strlen(h[i].value);
        if (i + 1 < n && end + 1 == h[i + 1].name)
            continue;
        if (end[1] != '\0')
            return 0;
    }
    return 1;
}

int tk_http_edge_bearer_ok(const char *authorization, const char *token)
{
    if (authorization == NULL || token == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return 0;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    /* Hashing first makes the comparison independent of both lengths. */
    char a[65], b[65];
    tk_auth_sha256_hex(given, strlen(given), a);
    tk_auth_sha256_hex(token, strlen(token), b);
    return tk_auth_ct_equal(a, b, 64);
}

int tk_http_edge_bind_addr(const char *host, int port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *in4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (host == NULL || *host == '\0') {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)port);
        return TK_OK;
    }
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        return TK_OK;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return TK_OK;
    }
    memset(out, 0, sizeof *out);
    return TK_EINVAL;
}
