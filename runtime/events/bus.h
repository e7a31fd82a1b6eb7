/* The event bus: the process-wide switchboard for what happens after a
 * commit — realtime events, and the control messages that end
 * subscriptions (kick a user from a room, close a room, revoke a token, a
 * changed user). It sits below its producers (HTTP, the scripts) and its two
 * consumers, and includes neither: main.c attaches
 *  - a local sink (the WebSocket server: ws/server.h) that delivers to this
 *    instance's connections, and
 *  - a relay (the Redis bridge: redis/bridge.h) that carries each message to
 *    every instance, this one included, and reports back through the
 *    tk_bus_deliver_remote / tk_bus_echo* functions below.
 * Order: the relay is one ordered stream that every instance reads. While
 * it is up, this instance's own messages go to its sockets when they come
 * back on that stream (tk_bus_echo), not when they are published, so every
 * instance delivers the messages of all instances in the same order; in
 * particular the events of one task in the order of its changes, when each
 * change was answered before the next one was made (publishing returns once
 * Redis has taken the message: bounded wait, see redis/bridge.h). Each own
 * message is delivered exactly once: when it comes back, or locally when the
 * relay cannot hand it back (Redis down, a publish failed, the subscription
 * lost: tk_bus_echo_lost) or has not within TK_BUS_ECHO_WAIT_MS (a late
 * echo is ignored). Then, and without a relay, a message goes to this
 * instance's sockets at once. Token revocations and user changes are
 * messages of their own kind: the bus applies them to this instance's deny
 * list and user cache (auth/) whether or not any socket is open, and closes
 * the sockets they end at once, without waiting for the echo. A group
 * (tk_bus_group_begin) goes to this instance's sockets as one, when its last
 * message is back.
 * Thread-safe; callable from any thread. */
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

/* Publishes m to this instance's sockets and to the other instances (see
 * the order above). Copies what it needs.
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

/* How long an own message may take to come back through the relay before
 * it is delivered locally anyway. */
#define TK_BUS_ECHO_WAIT_MS 1000

/* The relay's callbacks (arg unused). Called from the relay's threads,
 * never while the caller holds a lock the relay's publish takes.
 *
 * tk_bus_deliver_remote: a message from another instance: local delivery
 * only (a revoked jti is also added to this instance's denylist, a changed
 * user dropped from its user cache).
 *
 * tk_bus_echo: the message relay.publish numbered `seq` came back: it, if
 * still waiting, and any older own message still waiting (those will not
 * come back any more: the stream is ordered) go to this instance's
 * sockets. A message delivered already is not delivered again.
 *
 * tk_bus_echo_lost: no own message published so far will come back (the
 * subscription or a publish failed): those waiting are delivered now.
 *
 * tk_bus_echo_tick: delivers the own messages that waited
 * TK_BUS_ECHO_WAIT_MS; returns the milliseconds until it wants to be
 * called again (at most 1000). */
void tk_bus_deliver_remote(void *arg, const tk_event *m);
void tk_bus_echo(void *arg, uint64_t seq);
void tk_bus_echo_lost(void *arg);
int tk_bus_echo_tick(void *arg);

/* -1 when no relay is attached, 1 when it is connected, 0 when not. */
int tk_bus_redis_state(void);

typedef struct {
    long long published;   /* messages handed to the bus */
    long long remote;      /* messages received from other instances */
    long long echo_late;   /* own messages delivered locally after TK_BUS_ECHO_WAIT_MS */
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
 * ticket for wait (0: nothing to wait for); with seq non-NULL it also sets
 * *seq to a nonzero number when the message will come back to this instance
 * (reported through tk_bus_echo, or else tk_bus_echo_lost), and to 0 when it
 * will not (not queued, or not subscribed): the bus then delivers it
 * locally. wait returns once Redis has taken the message or a bounded time
 * passed; connected is 1 or 0; stats fills dropped. The relay must not go
 * away while a ticket it gave is waited on (stopping the Redis bridge waits
 * for its tickets). */
typedef struct {
    void *arg;
    uint64_t (*publish)(void *arg, const tk_event *m, uint64_t *seq);
    void (*wait)(void *arg, uint64_t ticket);
    int (*connected)(void *arg);
    void (*stats)(void *arg, tk_bus_stats *out);
} tk_bus_relay;

/* Attaches the local sink and the relay (either may be NULL: copied); call
 * with NULL, NULL before stopping what they point to. Own messages still
 * waiting to come back go to the previous sink first. */
void tk_bus_attach(const tk_bus_sink *sink, const tk_bus_relay *relay);

#endif
