/* The event bus: the process-wide switchboard for what happens after a
 * commit — realtime events, and the control messages that end
 * subscriptions (kick a user from a room, close a room, revoke a token, a
 * changed user). It sits below its producers (HTTP, the scripts) and its two
 * consumers, and includes neither: main.c attaches
 *  - a local sink (the WebSocket server: ws/server.h) that delivers to this
 *    instance's connections, and
 *  - a relay (the Redis bridge: redis/bridge.h) that carries each message to
 *    every other instance, whose messages come back in through
 *    tk_bus_deliver_remote and go to the local sink only.
 * Token revocations and user changes are messages of their own kind: the bus
 * applies them to this instance's deny list and user cache (auth/) whether
 * or not any socket is open. Every message is posted under one lock, so
 * every instance sees one instance's messages in the order they were
 * published; publishing returns once the relay has written the message
 * (bounded wait, see redis/bridge.h); in a group (tk_bus_group_begin), the
 * group's end does. Across instances the order is not
 * total: a message published here goes to this instance's clients at once,
 * and can overtake one another instance wrote to Redis just before that this
 * instance has not read yet. Thread-safe; callable from any thread. */
#ifndef TK_EVENTS_BUS_H
#define TK_EVENTS_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef enum {
    TK_EVENT_EMIT = 'e',       /* room, arg = event name, data = JSON of the event's data */
    TK_EVENT_KICK = 'k',       /* room, arg = user id: that user's connections leave the room */
    TK_EVENT_CLOSE_ROOM = 'c', /* room: every connection leaves it */
    TK_EVENT_REVOKE = 'r',     /* arg = jti, data = its expiry (unix seconds, decimal) or empty:
                               connections authenticated with it are closed (4401) */
    TK_EVENT_RECHECK = 'v',    /* room: ask the join policy again for every connection in it;
                               those it now refuses leave (e.g. a project made private) */
    TK_EVENT_USER = 'u',       /* arg = user id: the user was deleted, disabled or changed the
                               password: every instance drops it from the user check cache
                               (auth/users.h) and closes its connections (4401) */
} tk_event_kind;

/* A message as the bus passes it around; every pointer is borrowed. room
 * and arg are NUL-terminated, printable, without newlines, at most
 * TK_EVENT_NAME_MAX bytes; data is data_len bytes. */
typedef struct {
    tk_event_kind kind;
    const char *room;
    const char *arg;
    const char *data;
    size_t data_len;
} tk_event;

#define TK_EVENT_NAME_MAX 200

/* Returns 1 when s is a valid room or argument text (see tk_event). */
int tk_event_name_ok(const char *s, int allow_empty);

/* Publishes m locally and to the other instances. Copies what it needs.
 * Returns 0, TK_EINVAL (a malformed field) or TK_ENOMEM. Without an
 * attached server the message is only counted (check mode, tests). */
int tk_bus_publish(const tk_event *m) TK_WUR;

/* Between these two, this thread's tk_bus_publish collects its messages
 * (copies, returning 0) and tk_bus_group_end publishes them as one: to the
 * sink in one post (the WebSocket server handles them back to back, no
 * client message between them), with no other thread's message between
 * them, then waits for the relay once. For an event and the subscription
 * change it implies (member:removed and its kick): published apart, a
 * client's re-join could be answered between the two and be undone by the
 * kick without a word. A failure to deliver is logged by the end. Nest
 * freely (the outermost end publishes); every begin needs its end. At most
 * TK_BUS_GROUP_MAX messages go as one; more are published in parts. */
#define TK_BUS_GROUP_MAX 16
void tk_bus_group_begin(void);
void tk_bus_group_end(void);

/* The relay's callback for a message from another instance: local delivery
 * only (a revoked jti is also added to this instance's denylist, a changed
 * user dropped from its user cache). */
void tk_bus_deliver_remote(void *arg, const tk_event *m);

/* -1 when no relay is attached, 1 when it is connected, 0 when not. */
int tk_bus_redis_state(void);

typedef struct {
    long long published;   /* messages handed to the bus */
    long long remote;      /* messages received from other instances */
    long long connections; /* open WebSocket connections (both protocols) */
    long long delivered;   /* frames queued to clients */
    long long dropped;     /* messages not sent to Redis (down or queue full) */
    long long overflows;   /* clients disconnected for a full send queue */
} tk_bus_stats;

void tk_bus_get_stats(tk_bus_stats *out);

/* The local sink: delivers to this instance's realtime connections. post
 * copies the n messages ms and queues them as one (handled back to back),
 * returning 0, or TK_ENOMEM with none queued; stats fills connections,
 * delivered and overflows. */
typedef struct {
    void *arg;
    int (*post)(void *arg, const tk_event *ms, int n);
    void (*stats)(void *arg, tk_bus_stats *out);
} tk_bus_sink;

/* The relay to the other instances. publish queues m (copied) and returns a
 * ticket for wait (0: nothing to wait for); wait returns once the message is
 * written or a bounded time passed; connected is 1 or 0; stats fills
 * dropped. The relay must not go away while a ticket it gave is waited on
 * (stopping the Redis bridge waits for its tickets). */
typedef struct {
    void *arg;
    uint64_t (*publish)(void *arg, const tk_event *m);
    void (*wait)(void *arg, uint64_t ticket);
    int (*connected)(void *arg);
    void (*stats)(void *arg, tk_bus_stats *out);
} tk_bus_relay;

/* Attaches the local sink and the relay (either may be NULL: copied); call
 * with NULL, NULL before stopping what they point to. */
void tk_bus_attach(const tk_bus_sink *sink, const tk_bus_relay *relay);

#endif
