/* The realtime bus: the one entry point for what scripts hand to realtime
 * clients after a commit — events, and the control messages that end
 * subscriptions (kick a user from a room, close a room, revoke a token).
 * Each message goes to the local WebSocket server and, when REDIS_URL is
 * set, to the Redis bridge, which carries it to every other instance; a
 * message from another instance comes back in through
 * tk_ws_bus_deliver_remote and goes to the local server only. Both are
 * posted under one lock, so every instance sees one instance's messages in
 * the order they were published; and publishing returns once the message is
 * written to Redis (bounded wait, see redis/bridge.h), so a change made
 * after it through another instance is delivered after it. Thread-safe;
 * callable from any thread. */
#ifndef TK_WS_BUS_H
#define TK_WS_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef enum {
    TK_RT_EVENT = 'e',      /* room, arg = event name, data = JSON of the event's data */
    TK_RT_KICK = 'k',       /* room, arg = user id: that user's connections leave the room */
    TK_RT_CLOSE_ROOM = 'c', /* room: every connection leaves it */
    TK_RT_REVOKE = 'r',     /* arg = jti, data = its expiry (unix seconds, decimal) or empty:
                               connections authenticated with it are closed (4401) */
    TK_RT_RECHECK = 'v',    /* room: ask the join policy again for every connection in it;
                               those it now refuses leave (e.g. a project made private) */
    TK_RT_USER = 'u',       /* arg = user id: the user was deleted, disabled or changed the
                               password: every instance drops it from the user check cache
                               (auth/users.h) and closes its connections (4401) */
} tk_rt_kind;

/* A message as the bus passes it around; every pointer is borrowed. room
 * and arg are NUL-terminated, printable, without newlines, at most
 * TK_RT_NAME_MAX bytes; data is data_len bytes. */
typedef struct {
    tk_rt_kind kind;
    const char *room;
    const char *arg;
    const char *data;
    size_t data_len;
} tk_rt_msg;

#define TK_RT_NAME_MAX 200

struct tk_ws_server;
struct tk_redis_bridge;

/* Returns 1 when s is a valid room or argument text (see tk_rt_msg). */
int tk_rt_name_ok(const char *s, int allow_empty);

/* Publishes m locally and to the other instances. Copies what it needs.
 * Returns 0, TK_EINVAL (a malformed field) or TK_ENOMEM. Without an
 * attached server the message is only counted (check mode, tests). */
int tk_ws_bus_publish(const tk_rt_msg *m) TK_WUR;

/* Attaches the local server and the bridge (either may be NULL); call with
 * NULL, NULL before stopping them. Borrowed until detached. */
void tk_ws_bus_attach(struct tk_ws_server *ws, struct tk_redis_bridge *br);

/* The bridge's callback for a message from another instance: local delivery
 * only (a revoked jti is also added to this instance's denylist, a changed
 * user dropped from its user cache). */
void tk_ws_bus_deliver_remote(void *arg, const tk_rt_msg *m);

/* -1 when no bridge is attached, 1 when it is connected, 0 when not. */
int tk_ws_bus_redis_state(void);

typedef struct {
    long long published;   /* messages handed to the bus */
    long long remote;      /* messages received from other instances */
    long long connections; /* open WebSocket connections (both protocols) */
    long long delivered;   /* frames queued to clients */
    long long dropped;     /* messages not sent to Redis (down or queue full) */
    long long overflows;   /* clients disconnected for a full send queue */
} tk_ws_bus_stats;

void tk_ws_bus_get_stats(tk_ws_bus_stats *out);

#endif
