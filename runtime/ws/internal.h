/* Internals of the realtime server, shared by server.c (libwebsockets,
 * connections, send queues, timers, the inbox and fan-out), native.c (the
 * /ws protocol) and sio.c (Engine.IO v4 + Socket.IO v5 framing). Nothing
 * here is for other modules. Everything below runs on the service thread. */
#ifndef TK_WS_INTERNAL_H
#define TK_WS_INTERNAL_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "ws/json.h"
#include "ws/policy.h"
#include "ws/rooms.h"
#include "ws/server.h"

enum { TK_WS_NATIVE = 1, TK_WS_SIO = 2 };

/* Close codes (RFC 6455 and API.md §8). */
enum {
    TK_WS_CLOSE_NORMAL = 1000,
    TK_WS_CLOSE_GOING_AWAY = 1001,
    TK_WS_CLOSE_PROTOCOL = 1002,
    TK_WS_CLOSE_UNSUPPORTED = 1003,
    TK_WS_CLOSE_POLICY = 1008,
    TK_WS_CLOSE_TOO_BIG = 1009,
    TK_WS_CLOSE_UNAUTHORIZED = 4401,
    TK_WS_CLOSE_TOO_MANY = 4429, /* the user has WS_MAX_CONN_PER_USER sockets open */
};

#define TK_WS_QUEUE_MAX_MSGS 1000           /* per-connection send queue bound ... */
#define TK_WS_QUEUE_MAX_BYTES (1024 * 1024) /* ... in messages and in bytes */
#define TK_WS_PENDING_MAX 32                /* client messages waiting behind a join check */
#define TK_WS_TOKEN_MAX 4096

/* An outgoing text frame, shared by every connection it is queued on. */
typedef struct tk_ws_msg {
    int refs;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes for libwebsockets, then the text */
} tk_ws_msg;

/* What a tk_jbuf must reserve in front so its memory can become a frame
 * without a copy (tk_ws_msg_from_jbuf). */
#define TK_WS_JBUF_RESERVE (offsetof(tk_ws_msg, buf) + LWS_PRE)

/* A client message that arrived while a join check was in flight. */
typedef struct tk_ws_pending {
    struct tk_ws_pending *next;
    size_t len;
    char data[];
} tk_ws_pending;

typedef struct tk_ws_conn {
    struct tk_ws_conn *prev, *next; /* every connection of the server */
    struct tk_ws_conn *hnext;       /* id hash chain */
    uint64_t id;
    struct lws *wsi;
    tk_ws_server *srv;
    int proto; /* TK_WS_NATIVE | TK_WS_SIO */

    /* the user, once authenticated (Socket.IO: once "/" is connected) */
    int authed;
    char user_id[64];
    char role[16];
    char jti[40];
    int64_t exp; /* the token's expiry, unix seconds */

    tk_ws_room_set rooms;

    /* send queue: a ring of shared frames */
    tk_ws_msg **q;
    int qhead, qlen, qcap;
    size_t qbytes;

    /* the message being received (fragments joined) */
    char *rx;
    size_t rx_len, rx_cap;
    int rx_skip; /* rest of an over-long or binary message is ignored */

    /* in-order processing: busy while a join check is in flight */
    int busy;
    tk_ws_pending *phead, *ptail;
    int pcount;
    size_t pbytes; /* their payload; with rx_len at most WS_MAX_MESSAGE */

    /* deadlines, monotonic microseconds, 0 = none: the token (auth), the
     * Socket.IO heartbeat (ping, pong), the message being received (msg,
     * WS_MESSAGE_TIMEOUT) and the token's expiry (exp) */
    int64_t auth_deadline, ping_at, pong_deadline, msg_deadline, exp_deadline;

    /* closing: no more deliveries; flush the queue (or not), then close;
     * close_fail: without waiting for the client's close frame */
    int closing, close_flush, close_code, close_fail;
    char close_reason[64];

    /* Socket.IO */
    char eio_sid[24];  /* Engine.IO session id */
    char sio_sid[24];  /* Socket.IO socket id */
    char *query_token; /* ?token= kept for a CONNECT without auth (malloc'd) */
} tk_ws_conn;

int64_t tk_ws_now_us(void);

/* Random base64url id of `n` chars (n < outlen) into out. */
void tk_ws_random_id(char *out, size_t outlen, size_t n);

/* Queues a copy of text on c. Returns 0, or -1 when the message was not
 * queued (c closing, out of memory, or the queue overflowed: then c is
 * being closed with 1008). */
int tk_ws_conn_send(tk_ws_conn *c, const char *text, size_t len);

/* Queues the text of a JSON buffer (see tk_jbuf); a failed buffer sends
 * nothing. Frees the buffer. */
int tk_ws_conn_send_jbuf(tk_ws_conn *c, tk_jbuf *b);

/* Starts closing c with code/reason. flush: send what is queued first. */
void tk_ws_conn_close(tk_ws_conn *c, int code, const char *reason, int flush);

/* Verifies an access token (signature, expiry, denylist); on success fills
 * the user fields, puts c in room user:<id>, clears the auth deadline, arms
 * the expiry deadline (the socket is closed with 4401 when the token
 * expires) and returns 0. Returns -1 for a bad token, -2 when the user
 * already has WS_MAX_CONN_PER_USER sockets (c is unchanged). */
int tk_ws_conn_authenticate(tk_ws_conn *c, const char *token);

/* Starts (again) the WS_AUTH_TIMEOUT deadline for a token to arrive. */
void tk_ws_conn_await_auth(tk_ws_conn *c);

/* WS_MAX_MESSAGE: the largest client message (Engine.IO maxPayload). */
size_t tk_ws_conn_max_message(const tk_ws_conn *c);

/* Asks the policy whether c may join room; the answer comes back to the
 * protocol's join_done (native.c / sio.c). Already in the room: answered
 * at once. c is busy (later messages wait) until the answer. */
void tk_ws_conn_join(tk_ws_conn *c, const char *room, long ack_id);

/* Leaves room (1 if c was in it) / every room. */
int tk_ws_conn_leave(tk_ws_conn *c, const char *room);
void tk_ws_conn_leave_all(tk_ws_conn *c);

/* Re-arms the libwebsockets timer for the earliest deadline of c. */
void tk_ws_conn_rearm(tk_ws_conn *c);

/* ---- native.c ------------------------------------------------------------ */

/* A new /ws connection; token is ?token= or NULL. */
void tk_ws_native_open(tk_ws_conn *c, const char *token);
void tk_ws_native_message(tk_ws_conn *c, const char *data, size_t len);
void tk_ws_native_join_done(tk_ws_conn *c, const tk_ws_join *job);
/* The event frame for native clients; NULL when out of memory. */
tk_ws_msg *tk_ws_native_event(const char *room, const char *event, const char *data, size_t len);

/* A native client message as read, without a connection (tests/fuzz). */
enum {
    TK_WS_NMSG_INVALID = 0, /* not one JSON object */
    TK_WS_NMSG_NOMEM,
    TK_WS_NMSG_AUTH,
    TK_WS_NMSG_PING,
    TK_WS_NMSG_JOIN,
    TK_WS_NMSG_LEAVE,
    TK_WS_NMSG_OTHER, /* an object whose "type" is none of the above */
};
typedef struct {
    int kind;          /* TK_WS_NMSG_* */
    const char *token; /* AUTH: "token" if a string, else NULL */
    const char *room;  /* JOIN, LEAVE: "room" if a usable room name, else NULL */
    json_t *doc;       /* owns token and room; free with json_decref (even on INVALID) */
} tk_ws_native_msg;

/* Parses one native client message (len bytes at data) into *m. */
void tk_ws_native_parse(const char *data, size_t len, tk_ws_native_msg *m);

/* ---- sio.c --------------------------------------------------------------- */

void tk_ws_sio_open(tk_ws_conn *c, const char *token);
void tk_ws_sio_message(tk_ws_conn *c, const char *data, size_t len);
void tk_ws_sio_join_done(tk_ws_conn *c, const tk_ws_join *job);
/* Heartbeat deadlines of c have come (now, monotonic us). */
void tk_ws_sio_timer(tk_ws_conn *c, int64_t now);
/* Sends "41" (Socket.IO DISCONNECT) before a server-side close. */
void tk_ws_sio_disconnect(tk_ws_conn *c);
tk_ws_msg *tk_ws_sio_event(const char *event, const char *data, size_t len);

/* The pure parsing steps of sio.c, without a connection (tests/fuzz). */
typedef struct {
    char type;        /* Socket.IO packet type, '0' CONNECT .. '4' CONNECT_ERROR */
    const char *ns;   /* namespace ("/" when absent); points into the packet */
    size_t ns_len;    /* ... or at a static "/" */
    long ack_id;      /* -1: none */
    const char *json; /* the payload after the header; points into the packet */
    size_t json_len;
} tk_ws_sio_packet;

/* Reads the header of Socket.IO packet p (n bytes: an Engine.IO message
 * without its "4"). Returns 0 with *out filled, or the close code the
 * packet earns (TK_WS_CLOSE_PROTOCOL, TK_WS_CLOSE_UNSUPPORTED) with a static
 * reason in *why. An unknown type is left to the caller. */
int tk_ws_sio_parse_packet(const char *p, size_t n, tk_ws_sio_packet *out, const char **why);

enum { TK_WS_SIO_OTHER = 0, TK_WS_SIO_JOIN = 1, TK_WS_SIO_LEAVE = 2 };

/* Reads an EVENT payload. Returns -1 when it is not an array starting with
 * a string (or out of memory); TK_WS_SIO_JOIN / TK_WS_SIO_LEAVE with
 * "project:<projectId>" written into room (roomlen > TK_WS_ROOM_NAME_MAX)
 * for a valid join:project / leave:project; TK_WS_SIO_OTHER otherwise. */
int tk_ws_sio_parse_event(const char *json, size_t json_len, char *room, size_t roomlen);

/* ---- frames -------------------------------------------------------------- */

/* Turns b (initialised with TK_WS_JBUF_RESERVE) into a frame with one
 * reference, taking its memory; NULL (and b freed) when b failed. */
tk_ws_msg *tk_ws_msg_from_jbuf(tk_jbuf *b);
void tk_ws_msg_unref(tk_ws_msg *m);

#endif
