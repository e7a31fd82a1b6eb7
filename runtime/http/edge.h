/* The HTTP/1.1 edge checks (RFC 9110/9112) on a request's header section:
 * framing (one Content-Length or nothing; Transfer-Encoding refused), field
 * syntax, Host. Pure functions over the header list libmicrohttpd hands
 * over, so they run before any body byte is read and are unit-tested and
 * fuzzed on their own. Routing, auth and rate limits are left to server.c. */
#ifndef TK_HTTP_EDGE_H
#define TK_HTTP_EDGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"

/* One header line as received: borrowed strings, duplicates kept, in order. */
typedef struct {
    const char *name;
    const char *value;
} tk_http_header;

/* What the checks decided. status is 0 when the request may go on, else the
 * answer to give (400, 411, 413 or 501) and close; code and message are
 * static texts for the error body. */
typedef struct {
    unsigned status;
    const char *code;
    const char *message;
    uint64_t content_length; /* 0 when absent */
    int has_body;            /* a body is announced (Content-Length > 0) */
} tk_http_edge_verdict;

/* Checks the header section of a request of HTTP `version` ("HTTP/1.1",
 * "HTTP/1.0") against the rules above; body_limit is BODY_LIMIT. Borrows
 * everything; fills *out and returns out->status. */
unsigned tk_http_edge_check(const char *version, const tk_http_header *h, size_t n,
                            uint64_t body_limit, tk_http_edge_verdict *out);

/* libmicrohttpd 0.9.75 cannot say that a line was folded (obs-fold) or held
 * a NUL: it hands over a mangled name, or a value cut at the NUL. Both show
 * in where its strings lie: each value follows its name's terminator after
 * optional blanks, and each value's terminator is followed by the rest of
 * the line terminator (NUL bytes) or the next name. Returns 1 when h[0..n)
 * (pointers straight from MHD_get_connection_values) lie as they should,
 * else 0. Reads at most a few bytes around each string, all inside MHD's
 * parsed header block. */
int tk_http_edge_layout_ok(const tk_http_header *h, size_t n);

/* Checks an `Authorization` header against `Bearer <token>` in time that
 * does not depend on where they differ. Returns 1 on a match. */
int tk_http_edge_bearer_ok(const char *authorization, const char *token);

/* The listening address for HOST (an IPv4 or IPv6 literal; NULL or "" is
 * every IPv4 address, as before HOST existed) and port. Returns TK_OK or
 * TK_EINVAL. */
int tk_http_edge_bind_addr(const char *host, int port, struct sockaddr_storage *out) TK_WUR;

#endif
