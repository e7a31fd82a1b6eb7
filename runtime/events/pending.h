/* The pending list: this instance's own messages handed to the relay and not
 * yet seen back on its subscription, in publishing order. The bus keeps one
 * while a relay is attached, so that its own messages reach its own sockets
 * from the same ordered stream every instance reads (bus.h); each message
 * leaves the list exactly once: seen back, given up on (deadline), or taken
 * out for local delivery when the stream broke. Plain data, no clock, no
 * lock: the caller passes the time and locks. */
#ifndef TK_EVENTS_PENDING_H
#define TK_EVENTS_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "events/bus.h"

typedef struct tk_pending tk_pending;

/* Messages taken out of the list, oldest first; the caller delivers them
 * with tk_pending_batch_deliver (which frees them). NULL is an empty batch. */
typedef struct tk_pending_batch tk_pending_batch;

/* Returns an empty list, or NULL when out of memory. Free with
 * tk_pending_free. */
tk_pending *tk_pending_new(void);

/* Frees the list and the messages still in it. NULL is a no-op. */
void tk_pending_free(tk_pending *p);

/* Appends a copy of m under seq, due at deadline_ms. seq must be greater
 * than that of every message added before (the relay's publishing order).
 * Returns 0, TK_EINVAL (seq 0 or out of order) or TK_ENOMEM. */
int tk_pending_add(tk_pending *p, uint64_t seq, const tk_event *m, int64_t deadline_ms) TK_WUR;

/* The message seq came back on the subscription: takes it out if it is
 * pending, with every older one still pending (the stream is ordered, so
 * those will not come back any more). Returns them oldest first; NULL when
 * there are none (seq seen before, given up on, or not waited for, and
 * nothing older waits): nothing to deliver. */
tk_pending_batch *tk_pending_seen(tk_pending *p, uint64_t seq);

/* Takes out the messages due at now_ms (deadline <= now_ms). */
tk_pending_batch *tk_pending_expired(tk_pending *p, int64_t now_ms);

/* Takes out every message (the stream broke: none will come back). */
tk_pending_batch *tk_pending_take_all(tk_pending *p);

/* The earliest deadline in the list, or -1 when it is empty. */
int64_t tk_pending_next_deadline(const tk_pending *p);

/* How many messages are pending. */
size_t tk_pending_count(const tk_pending *p);

/* Calls fn(arg, m) for each message of b, oldest first (m is borrowed for
 * the call), and frees b. Returns how many there were. b may be NULL. */
size_t tk_pending_batch_deliver(tk_pending_batch *b, void (*fn)(void *arg, const tk_event *m),
                                void *arg);

/* How many messages b holds (NULL: 0). */
size_t tk_pending_batch_count(const tk_pending_batch *b);
/* Copies b's messages into out[0..count), oldest first; their strings stay
 * b's, valid until tk_pending_batch_free(b). */
void tk_pending_batch_events(const tk_pending_batch *b, tk_event *out);
/* Frees b without delivering it; returns how many messages it held. */
size_t tk_pending_batch_free(tk_pending_batch *b);

#endif
