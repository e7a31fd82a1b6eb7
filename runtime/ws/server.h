/* The realtime server: libwebsockets on WS_PORT with its own service thread,
 * speaking the native protocol at /ws and Socket.IO v4 (Engine.IO v4, the
 * websocket transport only) at /socket.io/ (API.md §8). Connections join
 * rooms; the bus (events/bus.h) posts events and control messages into the
 * server's inbox from any thread, and the service thread fans them out.
 * Joining a project room asks the scripts' policy on a thread of its own
 * (ws/policy.h), so a slow database never stalls the service thread. */
#ifndef TK_WS_SERVER_H
#define TK_WS_SERVER_H

#include "common.h"
#include "config.h"
#include "db/pool.h"
#include "events/bus.h"
#include "lua/gen.h"

typedef struct tk_ws_server tk_ws_server;

/* Starts the join policy on `host`'s generations (ws/policy.h: consumer is
 * the index of tk_ws_policy_consumer's registration), binds cfg->ws_port
 * and starts the service thread. Borrows cfg and host until
 * tk_ws_server_stop. Returns 0, TK_EIO (cannot listen; reason in err) or
 * TK_ENOMEM. */
int tk_ws_server_start(const tk_config *cfg, tk_lua_host *host, int consumer, tk_ws_server **out,
                       char *err, size_t errlen) TK_WUR;

/* Closes every connection with 1001 (going away), waits briefly for the
 * close handshakes, stops the threads and frees everything. NULL is a no-op. */
void tk_ws_server_stop(tk_ws_server *s);

/* Queues m for the service thread (copies it) and wakes it. Thread-safe.
 * Returns 0 or TK_ENOMEM (the message is dropped). */
int tk_ws_server_post(tk_ws_server *s, const tk_event *m) TK_WUR;

/* Queues the n messages ms as one: the service thread handles them back to
 * back, with no client message in between (an event and the kick it
 * implies). All or none: 0, or TK_ENOMEM with none queued. */
int tk_ws_server_post_many(tk_ws_server *s, const tk_event *ms, int n) TK_WUR;

typedef struct {
    long long connections, delivered, overflows;
} tk_ws_server_stats;

void tk_ws_server_get_stats(tk_ws_server *s, tk_ws_server_stats *out);

/* The server as the event bus's local sink (events/bus.h). */
tk_bus_sink tk_ws_server_bus_sink(tk_ws_server *s);

/* Loads TLS_CERT_FILE / TLS_KEY_FILE again for new WSS handshakes (on the
 * service thread; returns at once). No-op without TLS. */
void tk_ws_server_reload_tls(tk_ws_server *s);

#endif
