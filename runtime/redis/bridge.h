/* The Redis pub/sub bridge for realtime fan-out across instances. Every
 * instance publishes what its scripts emit on one channel and subscribes to
 * it; a message carries the publishing instance's random id and a sequence
 * number ("id/seq"). Messages of other instances go to hooks.message; an
 * instance's own come back too and are reported by sequence (hooks.echo),
 * so that the event bus delivers them from the same ordered stream as the
 * others' (events/bus.h). Publishing queues the message; one publisher
 * thread sends the queue, in order, on one connection. The publishing
 * thread then waits (at most 100 ms, and not at all while Redis is known to
 * be slow or down) until Redis has taken its message, so an event is in
 * every instance's stream before the request that caused it answers: a
 * later change made through another instance cannot overtake it. While
 * Redis is down messages are dropped and counted, and both connections are
 * remade in the background with backoff. */
#ifndef TK_REDIS_BRIDGE_H
#define TK_REDIS_BRIDGE_H

#include <stdint.h>

#include "common.h"
#include "events/bus.h"

#define TK_REDIS_CHANNEL "taskapi:realtime"

typedef struct tk_redis_bridge tk_redis_bridge;

/* What the bridge reports, with arg; called from its threads with none of
 * its locks held. message is required, the others may be NULL.
 *  - message: a message from another instance (subscriber thread); m and
 *    its fields are borrowed for the call.
 *  - echo: this instance's message with that sequence came back
 *    (subscriber thread).
 *  - lost: a message published so far may never come back (the
 *    subscription ended, or a publish failed).
 *  - tick: called on the subscriber thread while it is subscribed, again
 *    after the milliseconds it returns (at most a second later). */
typedef struct {
    void *arg;
    void (*message)(void *arg, const tk_event *m);
    void (*echo)(void *arg, uint64_t seq);
    void (*lost)(void *arg);
    int (*tick)(void *arg);
} tk_redis_bridge_hooks;

/* Parses url, tries to connect once (a failure is logged, not fatal: the
 * bridge keeps retrying) and starts the threads. hooks is copied. Returns
 * 0, TK_ECONFIG (a malformed url; reason in err) or TK_ENOMEM. Free with
 * tk_redis_bridge_stop. */
int tk_redis_bridge_start(const char *url, const tk_redis_bridge_hooks *hooks,
                          tk_redis_bridge **out, char *err, size_t errlen) TK_WUR;

/* Stops both threads (the queue is flushed if Redis is up, for at most a
 * second) and frees the bridge. NULL is a no-op. */
void tk_redis_bridge_stop(tk_redis_bridge *b);

/* Queues m for the other instances (copies it); never blocks on the
 * network. Dropped (and counted) while the publisher is disconnected or
 * the queue is full. Returns a ticket for tk_redis_bridge_wait, or 0 when
 * there is nothing to wait for. A nonzero ticket MUST be passed to
 * tk_redis_bridge_wait (tk_redis_bridge_stop waits for it). With seq
 * non-NULL, *seq is the message's sequence when it was queued while
 * subscribed (it will be reported through hooks.echo, or hooks.lost
 * called), else 0. */
uint64_t tk_redis_bridge_publish(tk_redis_bridge *b, const tk_event *m, uint64_t *seq) TK_WUR;

/* Waits until Redis has taken the message of `ticket` (answered its
 * PUBLISH), the publisher goes down, the bridge stops, or 100 ms pass
 * (then later publishers do not wait until the queue has drained). */
void tk_redis_bridge_wait(tk_redis_bridge *b, uint64_t ticket);

/* 1 when both the publisher and the subscriber are connected, else 0. */
int tk_redis_bridge_connected(tk_redis_bridge *b);

typedef struct {
    long long published; /* confirmed by Redis */
    long long dropped;   /* not sent: Redis down, queue full, or lost in a failure */
    long long received;  /* from other instances */
} tk_redis_bridge_stats;

void tk_redis_bridge_get_stats(tk_redis_bridge *b, tk_redis_bridge_stats *out);

/* The bridge as the event bus's relay to the other instances
 * (events/bus.h). */
tk_bus_relay tk_redis_bridge_bus_relay(tk_redis_bridge *b);

#endif
