/* Redis connections (hiredis 0.14): REDIS_URL parsing and a blocking
 * connect with timeouts that also runs AUTH and SELECT as the URL asks.
 * hiredis has no URL parser of its own; this one understands
 * redis://[[user]:password@]host[:port][/db] and unix:///path[?db=N]. */
#ifndef TK_REDIS_CONN_H
#define TK_REDIS_CONN_H

#include <hiredis/hiredis.h>

#include "common.h"

typedef struct {
    char host[256];     /* host name or address; empty for a unix socket */
    char path[256];     /* unix socket path, or empty */
    int port;           /* 6379 */
    char user[128];     /* ACL user, or empty */
    char password[256]; /* or empty */
    int db;             /* 0 */
} tk_redis_url;

/* Parses url into out. Returns 0 or TK_ECONFIG with the reason in err
 * (never the password). */
int tk_redis_url_parse(const char *url, tk_redis_url *out, char *err, size_t errlen) TK_WUR;

/* Connects to u within timeout_ms, sets the same timeout on every later
 * command, then authenticates and selects the database. Returns 0 with a
 * context the caller frees with redisFree, or TK_EUNAVAIL with the reason
 * in err. */
int tk_redis_conn_open(const tk_redis_url *u, int timeout_ms, redisContext **out, char *err,
                       size_t errlen) TK_WUR;

#endif
