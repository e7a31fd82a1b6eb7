/* The web client's static files: GET and HEAD under /app/ answered by C from
 * WEB_DIR, without Lua or a token, with a Content-Security-Policy of their
 * own. The server's common headers (request id, the other security headers)
 * are added by the caller; the API's strict CSP stays for everything else. */
#ifndef TK_HTTP_STATIC_H
#define TK_HTTP_STATIC_H

#include <stddef.h>

#include "config.h"

struct MHD_Response;
struct MHD_Connection;

/* What tk_static_answer needs from a request; every field is borrowed and
 * may be NULL but method and path. */
typedef struct {
    const char *method;
    const char *path;            /* decoded URL path, "/app/..." */
    const char *if_none_match;   /* If-None-Match */
    const char *accept_encoding; /* Accept-Encoding */
    const char *host;            /* Host: names the realtime endpoint in the CSP */
} tk_static_request;

/* 1 when `path` belongs to the web client ("/app" or "/app/..."), else 0. */
int tk_static_owns(const char *path);

/* Maps the decoded path "/app/<rest>" to a file name relative to WEB_DIR in
 * rel ("" and a trailing "/" mean index.html). Segments are 1..100 of
 * [A-Za-z0-9._-] and never start with '.', so "..", "." and hidden files,
 * encoded or not, backslashes, '%' and empty segments are all refused.
 * Returns TK_OK, or TK_ENOTFOUND (the caller answers 404). */
int tk_static_resolve(const char *path, char *rel, size_t len) TK_WUR;

/* The Content-Type of a file name by its extension ("text/javascript;
 * charset=utf-8"), or NULL when the extension is not served. */
const char *tk_static_type(const char *name);

/* 1 when the If-None-Match header value `inm` names etag (quoted, with or
 * without W/, in a comma list, or "*"), else 0. */
int tk_static_etag_matches(const char *inm, const char *etag);

/* 1 when Accept-Encoding `ae` accepts gzip (q=0 refuses), else 0. */
int tk_static_accepts_gzip(const char *ae);

/* Writes the web client's CSP into buf: scripts, styles, images and fetches
 * from the page's own origin, and the realtime port (WS_PORT) on the host
 * the request named (left out when Host is missing or malformed). */
void tk_static_csp(const tk_config *cfg, const char *host, char *buf, size_t len);

/* MHD's URL unescaping (MHD_OPTION_UNESCAPE_CALLBACK), in place: "%XX" with
 * two hex digits becomes that byte, except "%00", which stays as the three
 * characters so that no path or query value is cut short by an encoded NUL
 * (a static path with '%' is then a 404). Returns the new length. */
size_t tk_static_unescape(void *cls, struct MHD_Connection *conn, char *s);

/* Answers a request that tk_static_owns: 200 with the file (gzip when the
 * client takes it and it is smaller), 304 when If-None-Match names its ETag,
 * 301 from "/app" to "/app/", 404 for anything not served, 405 for methods
 * other than GET and HEAD. "/app/config.json" is generated: the ports the
 * client needs to find the realtime endpoint. On TK_OK *resp is a new
 * response the caller queues and destroys; TK_ENOMEM leaves it NULL. */
int tk_static_answer(const tk_config *cfg, const tk_static_request *q, struct MHD_Response **resp,
                     unsigned *status) TK_WUR;

#endif
