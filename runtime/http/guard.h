/* Connection hygiene for the HTTP front end that libmicrohttpd 0.9.75 lacks.
 * Header-read deadline: a connection must deliver a request's header
 * section within a fixed time from its accept (or from the end of its
 * previous response), however slowly it trickles bytes; else it is shut
 * down (MHD's own timeout only measures idleness). Lingering close: a
 * connection answered before its announced body was read is drained for a
 * few seconds after MHD closes it, so the client reads the answer instead
 * of a reset. The per-address connection cap is MHD's (server.c sets it). */
#ifndef TK_HTTP_GUARD_H
#define TK_HTTP_GUARD_H

#include <microhttpd.h>

#include "common.h"

typedef struct tk_http_guard tk_http_guard;

/* Starts the sweeper thread; timeout_ms > 0. Free with tk_http_guard_free
 * after the MHD daemon is stopped. */
int tk_http_guard_new(int timeout_ms, tk_http_guard **out) TK_WUR;

void tk_http_guard_free(tk_http_guard *g);

/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void tk_http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code);

/* The headers of a request are in (busy = 1: no deadline until the answer
 * is sent), or its answer was sent (busy = 0: the next request's headers
 * are due within the timeout from now). Call on the MHD thread. */
void tk_http_guard_set_busy(tk_http_guard *g, struct MHD_Connection *conn, int busy);

/* The request on conn was answered before its body was read: when MHD
 * closes the connection, keep draining it for a few seconds first. Call on
 * the MHD thread. */
void tk_http_guard_linger(tk_http_guard *g, struct MHD_Connection *conn);

/* Connections shut down by the deadline so far. */
long long tk_http_guard_expired(tk_http_guard *g);

#endif
