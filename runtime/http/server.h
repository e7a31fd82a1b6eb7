/* The HTTP server: libmicrohttpd reads requests on its own thread, does the
 * cheap checks in C (request id, body size, content type, CORS preflight,
 * route match, JWT), then suspends the connection and hands the request to
 * a pool of Lua worker threads; a worker runs the route's handler in its own
 * VM and resumes the connection with the response. */
#ifndef TK_HTTP_SERVER_H
#define TK_HTTP_SERVER_H

#include "common.h"
#include "config.h"
#include "db/pool.h"
#include "lua/snapshot.h"

typedef struct tk_server tk_server;

/* Loads the scripts (one VM per worker), builds the route table and starts
 * listening on cfg->port. Borrows cfg and pool until tk_server_stop. */
int tk_server_start(const tk_config *cfg, tk_db_pool *pool, tk_server **out, char *err,
                    size_t errlen) TK_WUR;

/* Loads the scripts anew (a snapshot checked in fresh VMs) and, if that
 * works, makes it the generation new requests run on; requests already
 * running finish on the old one. On any error nothing changes: the error is
 * logged with file:line and counted. Safe from any thread. */
int tk_server_reload(tk_server *s);

/* A reference to the snapshot the current generation loaded (drop it with
 * tk_snapshot_free) and, if gen_id is not NULL, that generation's number:
 * what the realtime join policy loads, so both run the same scripts. */
tk_snapshot *tk_server_snapshot(tk_server *s, int *gen_id);

/* Reload counters and the current generation number. */
void tk_server_reload_stats(tk_server *s, long long *reloads, long long *failures, int *gen);

/* Stops accepting, lets running requests finish, answers the queued ones,
 * then frees everything. */
void tk_server_stop(tk_server *s);

/* Stops accepting connections (the first step of a shutdown): connections
 * the kernel already completed are taken over first, then the listening
 * socket is closed, so a proxy's next connect is refused and goes to
 * another instance, while connections already open are served on. */
void tk_server_quiesce(tk_server *s);

#endif
