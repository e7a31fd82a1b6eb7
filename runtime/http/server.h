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
#include "lua/gen.h"

typedef struct tk_server tk_server;

/* What HTTP needs of every script generation (register it with
 * tk_lua_host_add before the first load): one VM per worker (WORKERS) and
 * the generation's route table compiled into a router, which refuses a
 * malformed pattern or a conflict (naming both definitions). */
tk_lua_consumer tk_server_consumer(const tk_config *cfg);

/* Starts the workers and listens on cfg->port. Each request runs on the
 * host's generation that was current when its headers arrived, on VM
 * (worker - 1) of consumer `consumer` (the index tk_lua_host_add gave
 * tk_server_consumer's registration); the host must have loaded one.
 * Borrows cfg, pool and host until tk_server_stop. */
int tk_server_start(const tk_config *cfg, tk_db_pool *pool, tk_lua_host *host, int consumer,
                    tk_server **out, char *err, size_t errlen) TK_WUR;

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
