/* The realtime server (server.h): one libwebsockets context on WS_PORT and
 * the thread that services it. The thread owns every connection, the rooms
 * and the send queues, so none of them needs a lock; other threads reach it
 * only through the inbox (a locked list plus lws_cancel_service). Per
 * connection: a bounded queue of shared frames (a slow reader is closed with
 * 1008, never buffered without limit), bounded input (WS_MAX_MESSAGE bytes
 * held at most, a started message due within WS_MESSAGE_TIMEOUT), one lws
 * timer for the auth, message and token-expiry deadlines and the Socket.IO
 * heartbeat, and lws' own ping/idle policy. Per client address (peers.h):
 * the handshakes in progress and the open sockets are capped; per user, the
 * open sockets. The native and Socket.IO protocols live in native.c and
 * sio.c. */
#include "ws/server.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "obs/log.h"
#include "ws/internal.h"
#include "ws/peers.h"

#define CMD_JOIN 'j'     /* an answered join check */
#define CMD_TLS 't'      /* load TLS_CERT_FILE / TLS_KEY_FILE again (SIGHUP) */
#define INBOX_MAX 100000 /* messages waiting for the service thread */
#define ID_BUCKETS 1024  /* connection id hash */
#define JOIN_TRIES 3     /* re-checks when a kick raced a join check */
#define SHUTDOWN_WAIT_US (2 * 1000000LL)
#define IDLE_PING_SECS 30   /* lws pings a connection idle this long ... */
#define IDLE_HANGUP_SECS 75 /* ... and drops it when nothing came back */

typedef struct cmd {
    struct cmd *next;
    int kind;          /* a tk_event_kind, or CMD_JOIN */
    int64_t posted_ns; /* CLOCK_MONOTONIC when posted (TASKAPI_WS_TRACE) */
    tk_ws_join *join;
    char *room, *arg, *data;
    size_t data_len;
    char mem[]; /* room, arg and data, each NUL-terminated */
} cmd;

/* What a connection counts against its address, from WSI_CREATE to
 * WSI_DESTROY, found by its wsi. (Not the wsi's opaque user data: lws
 * overwrites that after WSI_CREATE when it adopts the socket.) */
typedef struct ticket {
    struct ticket *next;
    const struct lws *wsi;
    tk_ws_peer *peer;
    int open; /* counted in peer->open (upgraded), else in peer->pending */
} ticket;

/* TASKAPI_WS_TRACE, a measuring aid for bench/realtime: for each event
 * fanned out to a room, one line in that file saying where the service
 * thread's time went from the event's arrival to its last write (see
 * trace_end). One event is followed at a time: events that arrive while one
 * is being written are delivered unfollowed (their writes count as other
 * callbacks' time). Times in ns, CLOCK_MONOTONIC; service thread only. */
typedef struct {
    FILE *f;              /* NULL: tracing off, nothing below is touched */
    tk_ws_msg *frames[2]; /* the followed event's frames (a reference each) */
    int targets;          /* connections it was queued on */
    int writes;           /* of those frames, written */
    int encodes;          /* frames built for it: 1 per protocol present */
    int done;             /* every target written: the line is due */
    int64_t posted, start, queued, first, last;
    int64_t cpu0;   /* the thread's CPU time at start */
    int64_t svc_t0; /* when the current lws_service() call began */
    int64_t write_ns, cb_ns, svc_ns;
    long services; /* lws_service() calls that returned while following */
} fanout_trace;

struct tk_ws_server {
    const tk_config *cfg;
    struct lws_context *ctx;
    pthread_t thread;
    int thread_started;
    atomic_int stop;

    pthread_mutex_t mu; /* guards the inbox */
    cmd *head, *tail;
    long ninbox;
    int inbox_warned;

    tk_ws_policy *policy;

    /* service thread only */
    tk_ws_peers *peers;
    tk_ws_peer_key next_key; /* the address just accepted, for WSI_CREATE */
    int next_key_set;
    int64_t pending_warned_at;
    tk_ws_rooms *rooms;
    tk_ws_conn *conns;
    int nconns;
    tk_ws_conn *ids[ID_BUCKETS];
    ticket *tickets[ID_BUCKETS];
    uint64_t next_id;
    uint64_t control_seq; /* bumped by every kick / close_room */
    int shutting_down;
    int64_t shutdown_deadline;
    lws_sorted_usec_list_t tick;
    lws_sorted_usec_list_t sweep; /* once a second: frames announced but not sent */
    char scratch[TK_WS_TOKEN_MAX + 16];
    fanout_trace tr;

    atomic_llong connections, delivered, overflows;
    /* kicks, room closings and re-checks posted but not handled yet (in the
     * inbox, or in the batch being drained): while there are any, a join
     * to a room the connection is already in asks the policy too */
    atomic_long controls_pending;
};

static int is_control(int kind)
{
    return kind == TK_EVENT_KICK || kind == TK_EVENT_CLOSE_ROOM || kind == TK_EVENT_RECHECK;
}

typedef struct {
    tk_ws_conn *c;
} pss;

static const lws_retry_bo_t idle_policy = {
    .secs_since_valid_ping = IDLE_PING_SECS,
    .secs_since_valid_hangup = IDLE_HANGUP_SECS,
};

/* ---- small helpers -------------------------------------------------------- */

static ticket **ticket_slot(tk_ws_server *s, const struct lws *wsi)
{
    ticket **pp = &s->tickets[((uintptr_t)wsi >> 4) % ID_BUCKETS];
    while (*pp && (*pp)->wsi != wsi)
        pp = &(*pp)->next;
    return pp;
}

static ticket *ticket_of(tk_ws_server *s, const struct lws *wsi)
{
    return *ticket_slot(s, wsi);
}

int64_t tk_ws_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

void tk_ws_random_id(char *out, size_t outlen, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[64];
    if (n >= outlen)
        n = outlen - 1;
    if (n > sizeof raw)
        n = sizeof raw;
    if (tk_auth_random_bytes(raw, n) != TK_OK) {
        /* getrandom failing is not expected; ids stay unique per process */
        static atomic_ullong fallback;
        unsigned long long v = atomic_fetch_add(&fallback, 1) + (unsigned long long)time(NULL);
        for (size_t i = 0; i < n; i++) {
            raw[i] = (unsigned char)(v & 63);
            v = v * 6364136223846793005ULL + 1442695040888963407ULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[raw[i] & 63];
    out[n] = '\0';
}

enum { PATH_NONE = 0 };

/* Which endpoint a request path names: TK_WS_NATIVE, TK_WS_SIO or 0. */
static int path_kind(const char *path)
{
    if (strcmp(path, "/ws") == 0 || strcmp(path, "/ws/") == 0)
        return TK_WS_NATIVE;
    if (strcmp(path, "/socket.io/") == 0 || strcmp(path, "/socket.io") == 0)
        return TK_WS_SIO;
    return PATH_NONE;
}

static void log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    tk_log(level == LLL_ERR ? TK_LOG_ERROR : TK_LOG_WARN, NULL, "libwebsockets: %.*s", (int)n,
           line);
}

/* ---- frames --------------------------------------------------------------- */

tk_ws_msg *tk_ws_msg_from_jbuf(tk_jbuf *b)
{
    if (!tk_jbuf_ok(b) || b->p == NULL || b->reserve != TK_WS_JBUF_RESERVE) {
        tk_jbuf_cleanup(b);
        return NULL;
    }
    tk_ws_msg *m = (tk_ws_msg *)(void *)b->p; /* malloc'd: aligned for any type */
    m->refs = 1;
    m->len = b->len;
    b->p = NULL;
    tk_jbuf_cleanup(b);
    return m;
}

void tk_ws_msg_unref(tk_ws_msg *m)
{
    if (m != NULL && --m->refs == 0)
        free(m);
}

/* ---- send queue ----------------------------------------------------------- */

static void queue_clear(tk_ws_conn *c)
{
    while (c->qlen > 0) {
        tk_ws_msg_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    c->qhead = 0;
    c->qbytes = 0;
}

/* Queues m (takes a reference). Returns 0 or -1 (closing, no memory, or
 * overflow: then c is closed with 1008 and its queue dropped). */
static int enqueue(tk_ws_conn *c, tk_ws_msg *m)
{
    if (c->closing)
        return -1;
    if (c->qlen + 1 > TK_WS_QUEUE_MAX_MSGS || c->qbytes + m->len > TK_WS_QUEUE_MAX_BYTES) {
        atomic_fetch_add(&c->srv->overflows, 1);
        tk_log_warn("realtime: connection %llu (user %s) reads too slowly: %d frames, %zu bytes "
                    "queued; closing it (1008)",
                    (unsigned long long)c->id, c->authed ? c->user_id : "-", c->qlen, c->qbytes);
        tk_ws_conn_close(c, TK_WS_CLOSE_POLICY, "send queue overflow", 0);
        return -1;
    }
    if (c->qlen == c->qcap) {
        int cap = c->qcap ? c->qcap * 2 : 8;
        tk_ws_msg **nq = malloc((size_t)cap * sizeof *nq);
        if (nq == NULL)
            return -1;
        for (int i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = nq;
        c->qcap = cap;
        c->qhead = 0;
    }
    m->refs++;
    c->q[(c->qhead + c->qlen) % c->qcap] = m;
    c->qlen++;
    c->qbytes += m->len;
    if (c->qlen == 1)
        lws_callback_on_writable(c->wsi);
    return 0;
}

int tk_ws_conn_send_jbuf(tk_ws_conn *c, tk_jbuf *b)
{
    tk_ws_msg *m = tk_ws_msg_from_jbuf(b);
    if (m == NULL)
        return -1;
    int rc = enqueue(c, m);
    tk_ws_msg_unref(m);
    return rc;
}

int tk_ws_conn_send(tk_ws_conn *c, const char *text, size_t len)
{
    tk_jbuf b;
    tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
    tk_jbuf_add(&b, text, len);
    return tk_ws_conn_send_jbuf(c, &b);
}

void tk_ws_conn_close(tk_ws_conn *c, int code, const char *reason, int flush)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_flush = flush;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    if (!flush)
        queue_clear(c);
    lws_callback_on_writable(c->wsi);
}

/* ---- connections ---------------------------------------------------------- */

static tk_ws_room_set *set_of(void *member)
{
    return &((tk_ws_conn *)member)->rooms;
}

static tk_ws_conn *conn_by_id(tk_ws_server *s, uint64_t id)
{
    for (tk_ws_conn *c = s->ids[id % ID_BUCKETS]; c; c = c->hnext)
        if (c->id == id)
            return c;
    return NULL;
}

static void pending_free(tk_ws_conn *c)
{
    while (c->phead) {
        tk_ws_pending *p = c->phead;
        c->phead = p->next;
        free(p);
    }
    c->ptail = NULL;
    c->pcount = 0;
    c->pbytes = 0;
}

static void conn_free(tk_ws_conn *c)
{
    tk_ws_server *s = c->srv;
    tk_ws_rooms_leave_all(s->rooms, c, &c->rooms);
    queue_clear(c);
    free(c->q);
    free(c->rx);
    free(c->query_token);
    pending_free(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    tk_ws_conn **pp = &s->ids[c->id % ID_BUCKETS];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = c->hnext;
    s->nconns--;
    atomic_fetch_sub(&s->connections, 1);
    free(c);
}

int tk_ws_conn_authenticate(tk_ws_conn *c, const char *token)
{
    if (token == NULL || *token == '\0' || strlen(token) > TK_WS_TOKEN_MAX)
        return -1;
    tk_auth_claims cl;
    int64_t now = (int64_t)time(NULL);
    if (tk_auth_jwt_verify(token, now, &cl) != TK_OK || tk_auth_deny_check(cl.jti, now))
        return -1;
    char room[TK_WS_ROOM_NAME_MAX + 1];
    snprintf(room, sizeof room, "user:%s", cl.sub);
    int cap = c->srv->cfg->ws_max_conn_per_user;
    if (cap > 0 && tk_ws_room_size(tk_ws_rooms_find(c->srv->rooms, room)) >= cap) {
        tk_log_warn("realtime: user %s already has %d sockets open (WS_MAX_CONN_PER_USER); "
                    "refusing another (4429)",
                    cl.sub, cap);
        return -2;
    }
    if (tk_ws_rooms_join(c->srv->rooms, room, c, &c->rooms) != TK_OK)
        return -1;
    snprintf(c->user_id, sizeof c->user_id, "%s", cl.sub);
    snprintf(c->role, sizeof c->role, "%s", cl.role);
    snprintf(c->jti, sizeof c->jti, "%s", cl.jti);
    c->exp = cl.exp;
    c->authed = 1;
    c->auth_deadline = 0;
    /* exp is wall-clock time; the deadline is monotonic like the others */
    c->exp_deadline = tk_ws_now_us() + (cl.exp > now ? cl.exp - now : 0) * 1000000LL;
    tk_ws_conn_rearm(c);
    return 0;
}

void tk_ws_conn_await_auth(tk_ws_conn *c)
{
    c->auth_deadline = tk_ws_now_us() + c->srv->cfg->ws_auth_timeout * 1000000LL;
    tk_ws_conn_rearm(c);
}

size_t tk_ws_conn_max_message(const tk_ws_conn *c)
{
    return (size_t)c->srv->cfg->ws_max_message;
}

static void join_done(tk_ws_conn *c, const tk_ws_join *j)
{
    if (c->proto == TK_WS_NATIVE)
        tk_ws_native_join_done(c, j);
    else
        tk_ws_sio_join_done(c, j);
}

void tk_ws_conn_join(tk_ws_conn *c, const char *room, long ack_id)
{
    tk_ws_join *j = calloc(1, sizeof *j);
    if (j == NULL) {
        tk_ws_join fail = {.ack_id = ack_id};
        snprintf(fail.room, sizeof fail.room, "%s", room);
        snprintf(fail.code, sizeof fail.code, "internal");
        join_done(c, &fail);
        return;
    }
    j->conn_id = c->id;
    j->seq = c->srv->control_seq;
    j->ack_id = ack_id;
    snprintf(j->user_id, sizeof j->user_id, "%s", c->user_id);
    snprintf(j->role, sizeof j->role, "%s", c->role);
    snprintf(j->room, sizeof j->room, "%s", room);
    /* Already in the room: joined, without asking the policy, unless a
     * kick or a room closing is on its way (it may be this connection's:
     * answering "joined" now would be undone by it silently). */
    if (tk_ws_room_set_has(&c->rooms, room) && atomic_load(&c->srv->controls_pending) == 0) {
        j->ok = 1;
        join_done(c, j);
        free(j);
        return;
    }
    if (c->rooms.n >= TK_WS_ROOMS_PER_MEMBER || strlen(room) > TK_WS_ROOM_NAME_MAX) {
        snprintf(j->code, sizeof j->code, "validation_failed");
        join_done(c, j);
        free(j);
        return;
    }
    c->busy = 1;
    tk_ws_policy_submit(c->srv->policy, j);
}

int tk_ws_conn_leave(tk_ws_conn *c, const char *room)
{
    return tk_ws_rooms_leave(c->srv->rooms, room, c, &c->rooms);
}

void tk_ws_conn_leave_all(tk_ws_conn *c)
{
    tk_ws_rooms_leave_all(c->srv->rooms, c, &c->rooms);
}

void tk_ws_conn_rearm(tk_ws_conn *c)
{
    int64_t next = 0;
    int64_t d[] = {c->auth_deadline, c->ping_at, c->pong_deadline, c->msg_deadline,
                   c->exp_deadline};
    for (size_t i = 0; i < TK_ARRAY_LEN(d); i++)
        if (d[i] > 0 && (next == 0 || d[i] < next))
            next = d[i];
    if (next == 0) {
        lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
        return;
    }
    int64_t wait = next - tk_ws_now_us();
    lws_set_timer_usecs(c->wsi, wait > 0 ? (lws_usec_t)wait : 1);
}

/* Hands one complete client message to the protocol, in order: while a
 * join check is in flight, later messages wait. */
static void process(tk_ws_conn *c, const char *data, size_t len)
{
    if (c->proto == TK_WS_NATIVE)
        tk_ws_native_message(c, data, len);
    else
        tk_ws_sio_message(c, data, len);
}

static void pump(tk_ws_conn *c)
{
    while (!c->busy && !c->closing && c->phead) {
        tk_ws_pending *p = c->phead;
        c->phead = p->next;
        if (c->phead == NULL)
            c->ptail = NULL;
        c->pcount--;
        c->pbytes -= p->len;
        process(c, p->data, p->len);
        free(p);
    }
}

static void conn_input(tk_ws_conn *c, const char *data, size_t len)
{
    if (c->closing)
        return;
    if (!c->busy && c->phead == NULL) {
        process(c, data, len);
        return;
    }
    if (c->pcount >= TK_WS_PENDING_MAX || c->pbytes + len > tk_ws_conn_max_message(c)) {
        tk_ws_conn_close(c, TK_WS_CLOSE_POLICY, "too many messages in flight", 1);
        return;
    }
    tk_ws_pending *p = malloc(sizeof *p + len);
    if (p == NULL) {
        tk_ws_conn_close(c, TK_WS_CLOSE_POLICY, "out of memory", 0);
        return;
    }
    p->next = NULL;
    p->len = len;
    memcpy(p->data, data, len);
    if (c->ptail)
        c->ptail->next = p;
    else
        c->phead = p;
    c->ptail = p;
    c->pcount++;
    c->pbytes += len;
}

/* ---- lws events ----------------------------------------------------------- */

/* Answers an HTTP request with the contract's error body. Returns 0, or
 * -1 when the answer could not be written. */
static int http_error_h(struct lws *wsi, unsigned status, const char *code, const char *message,
                        const char *hname, const char *hvalue)
{
    unsigned char head[LWS_PRE + 512], *start = head + LWS_PRE, *p = start;
    unsigned char *end = head + sizeof head - 1;
    unsigned char body[LWS_PRE + 512];
    int n = snprintf((char *)body + LWS_PRE, sizeof body - LWS_PRE,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    if (n < 0 || (size_t)n >= sizeof body - LWS_PRE)
        return -1;
    static const char nostore[] = "no-store";
    if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)n, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)nostore, (int)strlen(nostore), &p, end))
        return -1;
    if (hname &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)hname,
                                    (const unsigned char *)hvalue, (int)strlen(hvalue), &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (lws_write(wsi, body + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_FINAL) != n)
        return -1;
    return 0;
}

static int http_error(struct lws *wsi, unsigned status, const char *code, const char *message)
{
    return http_error_h(wsi, status, code, message, NULL, NULL);
}

/* A WebSocket upgrade: the protocol version (RFC 6455: 13 only, else 426
 * naming it), the address's open sockets (WS_MAX_CONN_PER_IP, else 429), the
 * path, the Origin and (Socket.IO) the Engine.IO version and transport are
 * checked before the handshake. Returns 0 to go on, 1 when an error answer
 * was written, -1 to hang up. */
static int confirm_upgrade(tk_ws_server *s, struct lws *wsi)
{
    char uri[256], buf[512];
    int rc;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_VERSION) >= (int)sizeof buf ||
        lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_VERSION) <= 0 || strcmp(buf, "13") != 0) {
        rc = http_error_h(wsi, 426, "invalid_parameter",
                          "unsupported WebSocket version: Sec-WebSocket-Version 13 only",
                          "sec-websocket-version:", "13");
        return rc == 0 ? 1 : -1;
    }
    const ticket *t = ticket_of(s, wsi);
    int cap = s->cfg->ws_max_conn_per_ip;
    if (cap > 0 && t && t->peer && t->peer->open >= cap) {
        rc = http_error_h(wsi, 429, "rate_limited",
                          "too many WebSocket connections from this address", "retry-after:", "10");
        return rc == 0 ? 1 : -1;
    }
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0) {
        rc = http_error(wsi, 400, "invalid_parameter", "a WebSocket upgrade must be a GET");
        return rc == 0 ? 1 : -1;
    }
    int kind = path_kind(uri);
    if (kind == PATH_NONE) {
        rc =
            http_error(wsi, 404, "not_found", "no WebSocket endpoint here: use /ws or /socket.io/");
        return rc == 0 ? 1 : -1;
    }
    int olen = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (olen > 0) {
        if (olen >= (int)sizeof buf || lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_ORIGIN) < 0 ||
            (!tk_config_origin_allowed(s->cfg, buf) && !tk_config_is_app_origin(s->cfg, buf))) {
            rc = http_error(wsi, 403, "forbidden", "origin not allowed");
            return rc == 0 ? 1 : -1;
        }
    }
    if (kind == TK_WS_SIO) {
        const char *eio = lws_get_urlarg_by_name(wsi, "EIO=", buf, sizeof buf);
        if (eio == NULL || strcmp(eio, "4") != 0) {
            rc = http_error(wsi, 400, "invalid_parameter",
                            "unsupported Engine.IO protocol version: EIO=4 only");
            return rc == 0 ? 1 : -1;
        }
        const char *tr = lws_get_urlarg_by_name(wsi, "transport=", buf, sizeof buf);
        if (tr == NULL || strcmp(tr, "websocket") != 0) {
            rc = http_error(wsi, 400, "invalid_parameter",
                            "only the websocket transport is supported (transport=websocket)");
            return rc == 0 ? 1 : -1;
        }
    }
    return 0;
}

/* A plain HTTP request on the WebSocket port. */
static int answer_http(struct lws *wsi, const char *path)
{
    int rc;
    switch (path_kind(path)) {
    case TK_WS_SIO:
        rc = http_error(wsi, 400, "invalid_parameter",
                        "long-polling is not supported: connect with transport=websocket");
        break;
    case TK_WS_NATIVE:
        rc = http_error(wsi, 400, "invalid_parameter", "expected a WebSocket upgrade");
        break;
    default:
        rc = http_error(wsi, 404, "not_found", "no such resource");
        break;
    }
    if (rc != 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int on_established(tk_ws_server *s, struct lws *wsi, pss *ps)
{
    char uri[256];
    ps->c = NULL;
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        return -1;
    int kind = path_kind(uri);
    if (kind == PATH_NONE)
        return -1;
    tk_ws_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->wsi = wsi;
    c->srv = s;
    c->proto = kind;
    c->id = ++s->next_id;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    c->hnext = s->ids[c->id % ID_BUCKETS];
    s->ids[c->id % ID_BUCKETS] = c;
    s->nconns++;
    atomic_fetch_add(&s->connections, 1);
    ps->c = c;
    ticket *t = ticket_of(s, wsi);
    if (t && !t->open) {
        t->peer->pending--;
        t->peer->open++;
        t->open = 1;
    }
    const char *token = lws_get_urlarg_by_name(wsi, "token=", s->scratch, sizeof s->scratch);
    if (kind == TK_WS_NATIVE)
        tk_ws_native_open(c, token);
    else
        tk_ws_sio_open(c, token);
    if (s->shutting_down)
        tk_ws_conn_close(c, TK_WS_CLOSE_GOING_AWAY, "server shutting down", 0);
    return 0;
}

/* Fails the connection (RFC 6455 7.1.7): the close frame, then the TCP
 * close at once, without waiting for the client's answer as lws would
 * (lws_close_reason waits up to 5 s for it). Returns -1 for the callback. */
static int fail_connection(tk_ws_conn *c, int code, const char *reason)
{
    /* lws 4.1 has no public way to send a close frame and hang up: the
     * frame is written raw (FIN + opcode 8, unmasked, payload < 126). */
    unsigned char buf[LWS_PRE + 4 + 64], *f = buf + LWS_PRE;
    size_t n = strlen(reason);
    if (n > 64)
        n = 64;
    f[0] = 0x88;
    f[1] = (unsigned char)(n + 2);
    f[2] = (unsigned char)(code >> 8);
    f[3] = (unsigned char)(code & 0xff);
    memcpy(f + 4, reason, n);
    (void)lws_write(c->wsi, f, n + 4, LWS_WRITE_RAW); /* closing either way */
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
    return -1;
}

static int on_receive(tk_ws_conn *c, const void *in, size_t len)
{
    struct lws *wsi = c->wsi;
    if (c->closing)
        return 0; /* what a closing client still sends is dropped */
    if (lws_is_first_fragment(wsi)) {
        c->rx_len = 0;
        c->rx_skip = 0;
    }
    if (lws_frame_is_binary(wsi))
        return fail_connection(c, TK_WS_CLOSE_UNSUPPORTED, "binary frames");
    /* What the frame header announces counts at once: a frame declaring
     * 2^62 bytes is refused at its first payload bytes, not after. The
     * messages waiting behind a join check count too. */
    size_t max = tk_ws_conn_max_message(c);
    size_t announced = lws_remaining_packet_payload(wsi);
    if (len > max || c->rx_len > max - len || announced > max - len - c->rx_len)
        return fail_connection(c, TK_WS_CLOSE_TOO_BIG, "message too big");
    if (c->pbytes + c->rx_len + len > max)
        return fail_connection(c, TK_WS_CLOSE_POLICY, "too much input waiting");
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 512;
        while (cap < c->rx_len + len)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *nb = realloc(c->rx, cap);
        if (nb == NULL)
            return -1;
        c->rx = nb;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!lws_is_final_fragment(wsi)) {
        if (c->msg_deadline == 0) { /* the whole message is due within WS_MESSAGE_TIMEOUT */
            c->msg_deadline = tk_ws_now_us() + c->srv->cfg->ws_message_timeout * 1000000LL;
            tk_ws_conn_rearm(c);
        }
        return 0;
    }
    if (c->msg_deadline) {
        c->msg_deadline = 0;
        tk_ws_conn_rearm(c);
    }
    size_t n = c->rx_len;
    c->rx_len = 0;
    conn_input(c, c->rx, n);
    if (c->rx_cap > 16384) { /* do not keep a big buffer for an idle client */
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
    return 0;
}

/* lws_write of one frame, counted (delivered; TASKAPI_WS_TRACE when it is
 * the followed event's frame). Returns lws_write's result. */
static int write_frame(tk_ws_conn *c, tk_ws_msg *m)
{
    fanout_trace *tr = &c->srv->tr;
    int traced = tr->f && tr->start && (m == tr->frames[0] || m == tr->frames[1]);
    int64_t t0 = traced ? now_ns() : 0;
    int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    if (traced) {
        int64_t t1 = now_ns();
        tr->write_ns += t1 - t0;
        if (tr->writes++ == 0)
            tr->first = t0;
        tr->last = t1;
        tr->done = tr->queued && tr->writes >= tr->targets;
    }
    atomic_fetch_add(&c->srv->delivered, 1);
    return n;
}

static int on_writeable(tk_ws_conn *c)
{
    struct lws *wsi = c->wsi;
    if (c->qlen > 0 && (!c->closing || c->close_flush)) {
        tk_ws_msg *m = c->q[c->qhead];
        int n = write_frame(c, m);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        c->qbytes -= m->len;
        tk_ws_msg_unref(m);
        if (n < 0)
            return -1;
        if (c->qlen > 0 || c->closing)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->closing && c->close_fail)
        return fail_connection(c, c->close_code, c->close_reason);
    if (c->closing) {
        lws_close_reason(wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    return 0;
}

static void on_timer(tk_ws_conn *c)
{
    if (c->closing)
        return;
    int64_t now = tk_ws_now_us();
    if (c->auth_deadline > 0 && now >= c->auth_deadline) {
        c->auth_deadline = 0;
        tk_ws_conn_close(c, TK_WS_CLOSE_UNAUTHORIZED, "authentication timeout", 1);
        return;
    }
    if (c->msg_deadline > 0 && now >= c->msg_deadline && c->rx_len == 0 &&
        lws_remaining_packet_payload(c->wsi) == 0)
        c->msg_deadline = 0; /* set by sweep() for a control frame that has since ended */
    if (c->msg_deadline > 0 && now >= c->msg_deadline) {
        /* a client that holds a message open is not waited for again */
        c->msg_deadline = 0;
        tk_ws_conn_close(c, TK_WS_CLOSE_POLICY, "message not completed in time", 0);
        c->close_fail = 1;
        free(c->rx);
        c->rx = NULL;
        c->rx_len = c->rx_cap = 0;
        return;
    }
    if (c->exp_deadline > 0 && now >= c->exp_deadline && c->authed) {
        c->exp_deadline = 0;
        if (c->proto == TK_WS_SIO)
            tk_ws_sio_disconnect(c);
        tk_ws_conn_leave_all(c);
        tk_ws_conn_close(c, TK_WS_CLOSE_UNAUTHORIZED, "token expired", 1);
        return;
    }
    if (c->proto == TK_WS_SIO)
        tk_ws_sio_timer(c, now);
    if (!c->closing)
        tk_ws_conn_rearm(c);
}

/* ---- the inbox ------------------------------------------------------------ */

static int revoke_match(const tk_ws_conn *c, int kind, const char *arg)
{
    if (!c->authed)
        return 0;
    return strcmp(kind == TK_EVENT_USER ? c->user_id : c->jti, arg) == 0;
}

static int user_match(void *member, void *arg)
{
    tk_ws_conn *c = member;
    return strcmp(c->user_id, (const char *)arg) == 0;
}

static int any_match(void *member, void *arg)
{
    (void)member;
    (void)arg;
    return 1;
}

/* ---- TASKAPI_WS_TRACE ----------------------------------------------------- */

#define TRACE_GIVE_UP_NS 1000000000LL

static void trace_end(tk_ws_server *s);

static void trace_begin(tk_ws_server *s, const cmd *k)
{
    fanout_trace *tr = &s->tr;
    tr->posted = k->posted_ns;
    tr->start = now_ns();
    tr->svc_t0 = tr->start;
    tr->cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* The followed event's frame for one protocol (0 native, 1 Socket.IO),
 * just built: writes of it are counted from now on. */
static void trace_frame(tk_ws_server *s, int i, tk_ws_msg *m)
{
    s->tr.frames[i] = m;
    m->refs++;
}

static void trace_queued(tk_ws_server *s, int targets, int encodes)
{
    fanout_trace *tr = &s->tr;
    tr->queued = now_ns();
    tr->targets = targets;
    tr->encodes = encodes;
    if (tr->writes >= tr->targets) /* none, or every one written at once */
        trace_end(s);
}

/* One line per event, microseconds from the event's start on the service
 * thread (its cmd taken from the inbox): inbox = posted -> start; queue =
 * building the frames and queuing them on every target; first/last = start
 * -> first write begun / last write done. Of that last span: write = inside
 * lws_write (framing + send()); cb = the rest of this server's callbacks;
 * lws = inside lws_service but outside any callback (poll() and lws' own
 * work); cpu = the thread's CPU time; the rest of `last` the thread was off
 * CPU (waiting in poll() or for a core). services = lws_service() calls
 * from the one that took the event from the inbox to the one that made the
 * last write (1: every frame written at once, on queuing; 2: some waited
 * for the first poll() round after). */
static void trace_end(tk_ws_server *s)
{
    fanout_trace *tr = &s->tr;
    int64_t end = tr->writes ? tr->last : now_ns();
    int64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - tr->cpu0;
    int64_t svc = tr->svc_ns + (end - (tr->svc_t0 > tr->start ? tr->svc_t0 : tr->start));
    int64_t queue = (tr->queued ? tr->queued : end) - tr->start;
    int64_t lws = svc - tr->cb_ns - queue;
    fprintf(tr->f,
            "fanout targets=%d writes=%d encodes=%d inbox_us=%lld queue_us=%lld first_us=%lld "
            "last_us=%lld write_us=%lld cb_us=%lld lws_us=%lld cpu_us=%lld services=%ld%s\n",
            tr->targets, tr->writes, tr->encodes, (long long)(tr->start - tr->posted) / 1000,
            (long long)queue / 1000, (long long)(tr->writes ? tr->first - tr->start : -1000) / 1000,
            (long long)(end - tr->start) / 1000, (long long)tr->write_ns / 1000,
            (long long)(tr->cb_ns - tr->write_ns) / 1000, (long long)(lws > 0 ? lws : 0) / 1000,
            (long long)cpu / 1000, tr->services + 1, tr->writes < tr->targets ? " incomplete" : "");
    fflush(tr->f);
    tk_ws_msg_unref(tr->frames[0]);
    tk_ws_msg_unref(tr->frames[1]);
    FILE *f = tr->f;
    memset(tr, 0, sizeof *tr);
    tr->f = f;
}

/* ---- events ----------------------------------------------------------------- */

/* Sends m to c at once when nothing is queued before it (and lws holds no
 * unsent rest of an earlier write): the frame leaves in this service round
 * instead of the next poll() announcing c writable. Returns 1 when sent
 * (or c failed and is closing), 0 when the caller must queue it. */
static int send_now(tk_ws_conn *c, tk_ws_msg *m)
{
    if (c->qlen > 0 || lws_partial_buffered(c->wsi))
        return 0;
    if (write_frame(c, m) < 0) {
        tk_ws_conn_close(c, TK_WS_CLOSE_GOING_AWAY, "write failed", 0);
        c->close_fail = 1;
    }
    return 1; /* a rest lws could not send it keeps and sends itself */
}

/* The event's frame is built once per protocol (at most two frames, however
 * many members the room has) and shared by reference: it is written at once
 * to every connection with nothing queued, and each other connection's
 * queue holds a pointer and a count, never a copy. */
static void deliver_event(tk_ws_server *s, const cmd *k)
{
    tk_ws_room *room = tk_ws_rooms_find(s->rooms, k->room);
    if (room == NULL)
        return;
    if (s->tr.f && s->tr.start && now_ns() - s->tr.start > TRACE_GIVE_UP_NS)
        trace_end(s); /* a target closed with the frame queued: never complete */
    int follow = s->tr.f && !s->tr.start;
    if (follow)
        trace_begin(s, k);
    tk_ws_msg *native = NULL, *sio = NULL;
    int targets = 0, encodes = 0;
    int n = tk_ws_room_size(room);
    for (int i = 0; i < n; i++) {
        tk_ws_conn *c = tk_ws_room_member(room, i);
        if (c->closing)
            continue; /* an overflow below only marks c: the room stays intact */
        tk_ws_msg **m = c->proto == TK_WS_NATIVE ? &native : &sio;
        if (*m == NULL) {
            *m = c->proto == TK_WS_NATIVE
                     ? tk_ws_native_event(k->room, k->arg, k->data, k->data_len)
                     : tk_ws_sio_event(k->arg, k->data, k->data_len);
            if (*m == NULL)
                continue;
            encodes++;
            if (follow)
                trace_frame(s, c->proto == TK_WS_NATIVE ? 0 : 1, *m);
        }
        if (send_now(c, *m) || enqueue(c, *m) == 0)
            targets++;
    }
    if (follow)
        trace_queued(s, targets, encodes);
    tk_ws_msg_unref(native);
    tk_ws_msg_unref(sio);
}

static int by_user(const void *a, const void *b)
{
    const tk_ws_conn *x = *(tk_ws_conn *const *)a, *y = *(tk_ws_conn *const *)b;
    int d = strcmp(x->user_id, y->user_id);
    return d ? d : strcmp(x->role, y->role);
}

/* Asks the policy again, once per user (and role), about everyone in room
 * (TK_EVENT_RECHECK); handle_join takes out the users it now refuses. */
static void recheck_room(tk_ws_server *s, const char *name)
{
    tk_ws_room *room = tk_ws_rooms_find(s->rooms, name);
    int n = tk_ws_room_size(room);
    if (n == 0)
        return;
    tk_ws_conn **v = malloc((size_t)n * sizeof *v);
    if (v == NULL) { /* cannot ask: fail closed */
        tk_ws_rooms_remove_if(s->rooms, name, any_match, NULL, set_of);
        return;
    }
    for (int i = 0; i < n; i++)
        v[i] = tk_ws_room_member(room, i);
    qsort(v, (size_t)n, sizeof *v, by_user);
    for (int i = 0; i < n; i++) {
        if (i > 0 && by_user(&v[i - 1], &v[i]) == 0)
            continue;
        tk_ws_join *j = calloc(1, sizeof *j);
        if (j == NULL) {
            tk_ws_rooms_remove_if(s->rooms, name, any_match, NULL, set_of);
            break;
        }
        j->recheck = 1;
        j->ack_id = -1;
        snprintf(j->user_id, sizeof j->user_id, "%s", v[i]->user_id);
        snprintf(j->role, sizeof j->role, "%s", v[i]->role);
        snprintf(j->room, sizeof j->room, "%s", name);
        tk_ws_policy_submit(s->policy, j);
    }
    free(v);
}

typedef struct {
    const char *user_id, *role;
} user_role;

static int user_role_match(void *member, void *arg)
{
    const tk_ws_conn *c = member;
    const user_role *u = arg;
    return strcmp(c->user_id, u->user_id) == 0 && strcmp(c->role, u->role) == 0;
}

static void handle_join(tk_ws_server *s, tk_ws_join *j)
{
    if (j->recheck) {
        /* Any refusal (an error too: fail closed) takes the user's
         * connections out of the room, silently. */
        if (!j->ok) {
            user_role u = {j->user_id, j->role};
            tk_ws_rooms_remove_if(s->rooms, j->room, user_role_match, &u, set_of);
        }
        free(j);
        return;
    }
    tk_ws_conn *c = conn_by_id(s, j->conn_id);
    if (c == NULL || c->closing) {
        free(j);
        return;
    }
    if (j->seq != s->control_seq && j->tries < JOIN_TRIES) {
        /* A kick or a room closing was processed while the check ran: its
         * answer may predate the change, so ask again. */
        j->seq = s->control_seq;
        j->tries++;
        tk_ws_policy_submit(s->policy, j);
        return;
    }
    if (j->seq != s->control_seq && j->ok) {
        j->ok = 0;
        snprintf(j->code, sizeof j->code, "unavailable");
    }
    if (j->ok) {
        int rc = tk_ws_rooms_join(s->rooms, j->room, c, &c->rooms);
        if (rc != TK_OK) {
            j->ok = 0;
            snprintf(j->code, sizeof j->code, rc == TK_ENOMEM ? "internal" : "validation_failed");
        }
    } else {
        /* refused a room it is in (a kick on its way): out now, not after
         * the answer */
        (void)tk_ws_conn_leave(c, j->room);
    }
    c->busy = 0;
    join_done(c, j);
    free(j);
    pump(c);
}

static void handle(tk_ws_server *s, cmd *k)
{
    switch (k->kind) {
    case CMD_JOIN:
        handle_join(s, k->join);
        k->join = NULL;
        break;
    case CMD_TLS:
        /* new handshakes use the files' current contents; open ones keep theirs */
        if (lws_tls_cert_updated(s->ctx, s->cfg->tls_cert_file, s->cfg->tls_key_file, NULL, 0, NULL,
                                 0) != 0)
            tk_log_error("WSS: cannot load %s again; the previous certificate stays",
                         s->cfg->tls_cert_file);
        else
            tk_log_info("SIGHUP: WSS now with %s", s->cfg->tls_cert_file);
        break;
    case TK_EVENT_EMIT:
        deliver_event(s, k);
        break;
    case TK_EVENT_KICK:
        s->control_seq++;
        tk_ws_rooms_remove_if(s->rooms, k->room, user_match, k->arg, set_of);
        atomic_fetch_sub(&s->controls_pending, 1);
        break;
    case TK_EVENT_CLOSE_ROOM:
        s->control_seq++;
        tk_ws_rooms_remove_if(s->rooms, k->room, any_match, NULL, set_of);
        atomic_fetch_sub(&s->controls_pending, 1);
        break;
    case TK_EVENT_RECHECK:
        s->control_seq++; /* joins being checked now are checked again */
        recheck_room(s, k->room);
        atomic_fetch_sub(&s->controls_pending, 1);
        break;
    case TK_EVENT_REVOKE:
    case TK_EVENT_USER:
        for (tk_ws_conn *c = s->conns; c; c = c->next) {
            if (c->closing || !revoke_match(c, k->kind, k->arg))
                continue;
            if (c->proto == TK_WS_SIO)
                tk_ws_sio_disconnect(c);
            tk_ws_conn_leave_all(c);
            tk_ws_conn_close(c, TK_WS_CLOSE_UNAUTHORIZED,
                             k->kind == TK_EVENT_REVOKE ? "token revoked" : "session ended", 1);
        }
        break;
    default:
        break;
    }
}

static void drain(tk_ws_server *s)
{
    pthread_mutex_lock(&s->mu);
    cmd *k = s->head;
    s->head = s->tail = NULL;
    s->ninbox = 0;
    pthread_mutex_unlock(&s->mu);
    while (k) {
        cmd *next = k->next;
        handle(s, k);
        free(k->join);
        free(k);
        k = next;
    }
}

static void inbox_push(tk_ws_server *s, cmd *k)
{
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = k;
    else
        s->head = k;
    s->tail = k;
    s->ninbox++;
    pthread_mutex_unlock(&s->mu);
    lws_cancel_service(s->ctx);
}

/* One inbox command holding a copy of m. */
static cmd *cmd_of(const tk_event *m)
{
    size_t rl = strlen(m->room), al = strlen(m->arg);
    cmd *k = malloc(sizeof *k + rl + al + m->data_len + 3);
    if (k == NULL)
        return NULL;
    k->next = NULL;
    k->kind = m->kind;
    k->posted_ns = now_ns();
    k->join = NULL;
    k->room = k->mem;
    memcpy(k->room, m->room, rl + 1);
    k->arg = k->room + rl + 1;
    memcpy(k->arg, m->arg, al + 1);
    k->data = k->arg + al + 1;
    if (m->data_len)
        memcpy(k->data, m->data, m->data_len);
    k->data[m->data_len] = '\0';
    k->data_len = m->data_len;
    return k;
}

int tk_ws_server_post_many(tk_ws_server *s, const tk_event *ms, int n)
{
    pthread_mutex_lock(&s->mu);
    int full = s->ninbox + n > INBOX_MAX;
    int warn = full && !s->inbox_warned;
    if (full)
        s->inbox_warned = 1;
    pthread_mutex_unlock(&s->mu);
    if (full) {
        if (warn)
            tk_log_error("realtime: the service thread is behind (%d messages waiting); "
                         "dropping messages",
                         INBOX_MAX);
        return TK_ENOMEM;
    }
    cmd *head = NULL, *tail = NULL;
    int controls = 0;
    for (int i = 0; i < n; i++) {
        cmd *k = cmd_of(&ms[i]);
        if (k == NULL) { /* all or nothing: an event without its kick is worse */
            while (head) {
                cmd *next = head->next;
                free(head);
                head = next;
            }
            return TK_ENOMEM;
        }
        controls += is_control(k->kind);
        if (tail)
            tail->next = k;
        else
            head = k;
        tail = k;
    }
    if (head == NULL)
        return TK_OK;
    if (controls)
        atomic_fetch_add(&s->controls_pending, controls); /* before a join can see them */
    /* One push: the service thread takes them in one drain, handled back to
     * back, no client message between them. */
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = head;
    else
        s->head = head;
    s->tail = tail;
    s->ninbox += n;
    pthread_mutex_unlock(&s->mu);
    lws_cancel_service(s->ctx);
    return TK_OK;
}

int tk_ws_server_post(tk_ws_server *s, const tk_event *m)
{
    return tk_ws_server_post_many(s, m, 1);
}

/* The policy's callback (on a policy thread): the answer goes to the inbox. */
static void policy_done(void *arg, tk_ws_join *j)
{
    tk_ws_server *s = arg;
    cmd *k = calloc(1, sizeof *k + 3);
    if (k == NULL) {
        /* Out of memory: the connection stays busy (lws' pings do not end
         * it while the client answers them); its later messages wait until
         * TK_WS_PENDING_MAX of them close it, or the client goes away. */
        free(j);
        return;
    }
    k->kind = CMD_JOIN;
    k->join = j;
    k->room = k->arg = k->data = k->mem;
    inbox_push(s, k);
}

void tk_ws_server_reload_tls(tk_ws_server *s)
{
    if (s == NULL || s->cfg->tls_cert_file == NULL)
        return;
    cmd *k = calloc(1, sizeof *k + 3);
    if (k == NULL) {
        tk_log_error("WSS: out of memory; the previous certificate stays");
        return;
    }
    k->kind = CMD_TLS;
    k->room = k->arg = k->data = k->mem;
    inbox_push(s, k);
}

/* ---- the service thread --------------------------------------------------- */

static void begin_shutdown(tk_ws_server *s)
{
    s->shutting_down = 1;
    s->shutdown_deadline = tk_ws_now_us() + SHUTDOWN_WAIT_US;
    for (tk_ws_conn *c = s->conns; c; c = c->next) {
        tk_ws_conn_leave_all(c);
        tk_ws_conn_close(c, TK_WS_CLOSE_GOING_AWAY, "server shutting down", 0);
    }
}

/* Keeps lws_service from sleeping long while the close handshakes run. */
static void tick(lws_sorted_usec_list_t *sul)
{
    tk_ws_server *s = lws_container_of(sul, tk_ws_server, tick);
    lws_sul_schedule(s->ctx, 0, &s->tick, tick, 50 * LWS_US_PER_MS);
}

/* Once a second: libwebsockets says nothing until a frame's first payload
 * byte, so a header alone (say one announcing 2^62 bytes) is seen here. A
 * frame announcing more than WS_MAX_MESSAGE fails the connection (1009);
 * one under way starts the WS_MESSAGE_TIMEOUT deadline. */
static void sweep(lws_sorted_usec_list_t *sul)
{
    tk_ws_server *s = lws_container_of(sul, tk_ws_server, sweep);
    size_t max = (size_t)s->cfg->ws_max_message;
    for (tk_ws_conn *c = s->conns; c; c = c->next) {
        if (c->closing)
            continue;
        size_t rem = lws_remaining_packet_payload(c->wsi);
        if (rem == 0)
            continue;
        if (rem > max - c->rx_len) {
            tk_ws_conn_close(c, TK_WS_CLOSE_TOO_BIG, "message too big", 0);
            c->close_fail = 1;
        } else if (c->msg_deadline == 0) {
            c->msg_deadline = tk_ws_now_us() + s->cfg->ws_message_timeout * 1000000LL;
            tk_ws_conn_rearm(c);
        }
    }
    lws_sul_schedule(s->ctx, 0, &s->sweep, sweep, LWS_US_PER_SEC);
}

/* One lws_service() call (poll, then the callbacks of what is ready). */
static int service(tk_ws_server *s)
{
    fanout_trace *tr = &s->tr;
    if (tr->f == NULL)
        return lws_service(s->ctx, 0);
    tr->svc_t0 = now_ns();
    int rc = lws_service(s->ctx, 0);
    if (tr->start) { /* the part after the followed event began */
        tr->svc_ns += now_ns() - (tr->svc_t0 > tr->start ? tr->svc_t0 : tr->start);
        tr->services++;
    }
    return rc;
}

static void *service_main(void *arg)
{
    tk_ws_server *s = arg;
    pthread_setname_np(pthread_self(), "taskapi-ws"); /* for top -H, perf -t */
    lws_sul_schedule(s->ctx, 0, &s->sweep, sweep, LWS_US_PER_SEC);
    while (!atomic_load(&s->stop))
        if (service(s) < 0)
            break;
    begin_shutdown(s);
    lws_sul_schedule(s->ctx, 0, &s->tick, tick, 50 * LWS_US_PER_MS);
    while (s->nconns > 0 && tk_ws_now_us() < s->shutdown_deadline)
        if (lws_service(s->ctx, 0) < 0)
            break;
    lws_sul_cancel(&s->tick);
    lws_sul_cancel(&s->sweep);
    return NULL;
}

/* A new TCP connection (FILTER_NETWORK_CONNECTION): refused at once when
 * its address already has WS_MAX_PENDING_PER_IP handshakes in progress.
 * Otherwise its address is kept for the WSI_CREATE that follows. A proxy
 * named in TRUST_PROXY carries many clients: its connections are not
 * counted. */
static int filter_connection(tk_ws_server *s, const struct lws_filter_network_conn_args *a)
{
    s->next_key_set = 0;
    if (a == NULL || tk_ws_peer_key_of((const struct sockaddr *)&a->cli_addr, &s->next_key) != 0)
        return 0;
    if (s->cfg->trust_proxy) {
        char text[64];
        tk_ws_peer_key_text(&s->next_key, text, sizeof text);
        if (tk_config_proxy_trusted(s->cfg, text))
            return 0;
    }
    int cap = s->cfg->ws_max_pending_per_ip;
    const tk_ws_peer *e = tk_ws_peers_find(s->peers, &s->next_key);
    if (cap > 0 && e && e->pending >= cap) {
        int64_t now = tk_ws_now_us();
        if (now - s->pending_warned_at > 10 * 1000000LL) { /* a line per 10 s, not per refusal */
            s->pending_warned_at = now;
            tk_log_warn("realtime: an address has %d WebSocket handshakes in progress "
                        "(WS_MAX_PENDING_PER_IP); refusing its new connections",
                        cap);
        }
        return 1;
    }
    s->next_key_set = 1;
    return 0;
}

/* The wsi of the connection filter_connection just let in (WSI_CREATE comes
 * right after it, on the same thread): counted as pending for its address. */
static void ticket_new(tk_ws_server *s, struct lws *wsi)
{
    if (!s->next_key_set)
        return;
    s->next_key_set = 0;
    ticket *t = calloc(1, sizeof *t);
    if (t == NULL)
        return; /* not counted: the caps are a defence, not bookkeeping to fail on */
    t->peer = tk_ws_peers_get(s->peers, &s->next_key);
    if (t->peer == NULL) {
        free(t);
        return;
    }
    t->peer->pending++;
    t->wsi = wsi;
    ticket **slot = &s->tickets[((uintptr_t)wsi >> 4) % ID_BUCKETS];
    t->next = *slot;
    *slot = t;
}

static void ticket_free(tk_ws_server *s, struct lws *wsi)
{
    ticket **pp = ticket_slot(s, wsi);
    ticket *t = *pp;
    if (t == NULL)
        return;
    *pp = t->next;
    if (t->open)
        t->peer->open--;
    else
        t->peer->pending--;
    tk_ws_peers_put(s->peers, t->peer);
    free(t);
}

static int dispatch(tk_ws_server *s, struct lws *wsi, enum lws_callback_reasons reason, void *user,
                    void *in, size_t len)
{
    pss *ps = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return filter_connection(s, user);
    case LWS_CALLBACK_WSI_CREATE:
        ticket_new(s, wsi);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(s, wsi);
    case LWS_CALLBACK_HTTP:
        return answer_http(wsi, in ? (const char *)in : "");
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(s, wsi, ps);
    case LWS_CALLBACK_RECEIVE:
        return ps && ps->c ? on_receive(ps->c, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ps && ps->c ? on_writeable(ps->c) : 0;
    case LWS_CALLBACK_TIMER:
        if (ps && ps->c)
            on_timer(ps->c);
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (ps && ps->c) {
            conn_free(ps->c);
            ps->c = NULL;
        }
        if (reason == LWS_CALLBACK_WSI_DESTROY)
            ticket_free(s, wsi);
        return reason == LWS_CALLBACK_CLOSED ? 0
                                             : lws_callback_http_dummy(wsi, reason, user, in, len);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain(s);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    case LWS_CALLBACK_RECEIVE_PONG:
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    tk_ws_server *s = lws_context_user(lws_get_context(wsi));
    if (!s->tr.start) /* not following an event (or tracing off) */
        return dispatch(s, wsi, reason, user, in, len);
    int64_t t0 = now_ns();
    int rc = dispatch(s, wsi, reason, user, in, len);
    if (s->tr.start) { /* still following: this callback did not end the trace */
        s->tr.cb_ns += now_ns() - t0;
        if (s->tr.done)
            trace_end(s);
    }
    return rc;
}

/* ---- start / stop --------------------------------------------------------- */

int tk_ws_server_start(const tk_config *cfg, tk_lua_host *host, int consumer, tk_ws_server **out,
                       char *err, size_t errlen)
{
    static struct lws_protocols protocols[] = {
        {"taskapi-realtime", callback, sizeof(pss), 4096, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    tk_ws_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return TK_ENOMEM;
    s->cfg = cfg;
    pthread_mutex_init(&s->mu, NULL);
    if (cfg->ws_trace && cfg->ws_trace[0]) {
        s->tr.f = fopen(cfg->ws_trace, "ae");
        if (s->tr.f == NULL)
            tk_log_warn("realtime: TASKAPI_WS_TRACE: cannot open %s; not tracing", cfg->ws_trace);
    }
    int rc = tk_ws_rooms_new(&s->rooms);
    if (rc == TK_OK)
        rc = tk_ws_peers_new(&s->peers);
    if (rc != TK_OK)
        goto fail;
    rc = tk_ws_policy_start(host, consumer, policy_done, s, &s->policy, err, errlen);
    if (rc != TK_OK)
        goto fail;

    lws_set_log_level(LLL_ERR | LLL_WARN, log_emit);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = cfg->ws_port;
    info.protocols = protocols;
    info.user = s;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (cfg->tls_cert_file) { /* WSS, with the HTTPS port's certificate (OpenSSL here) */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert_file;
        info.ssl_private_key_filepath = cfg->tls_key_file;
        info.ssl_options_set = SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
    }
    info.retry_and_idle_policy = &idle_policy;
    info.timeout_secs = 10;
    /* A connection has WS_HANDSHAKE_TIMEOUT to send its upgrade headers. */
    info.timeout_secs_ah_idle = (unsigned)cfg->ws_handshake_timeout;
    info.max_http_header_data = 8192;
    info.max_http_header_pool = 256; /* handshakes in progress at once; more wait their turn */
    s->ctx = lws_create_context(&info);
    if (s->ctx == NULL) {
        tk_errf(err, errlen, "WS_PORT %d: cannot listen (in use?)", cfg->ws_port);
        rc = TK_EIO;
        goto fail;
    }
    if (pthread_create(&s->thread, NULL, service_main, s) != 0) {
        tk_errf(err, errlen, "cannot start the WebSocket service thread");
        rc = TK_ENOMEM;
        goto fail;
    }
    s->thread_started = 1;
    *out = s;
    return TK_OK;
fail:
    tk_ws_server_stop(s);
    return rc;
}

void tk_ws_server_stop(tk_ws_server *s)
{
    if (s == NULL)
        return;
    if (s->thread_started) {
        atomic_store(&s->stop, 1);
        lws_cancel_service(s->ctx);
        pthread_join(s->thread, NULL);
    }
    /* No join answer can arrive once the policy threads are gone. */
    tk_ws_policy_stop(s->policy);
    s->policy = NULL;
    if (s->ctx)
        lws_context_destroy(s->ctx); /* closes what is left: CLOSED frees each conn */
    s->ctx = NULL;
    cmd *k = s->head;
    while (k) {
        cmd *next = k->next;
        free(k->join);
        free(k);
        k = next;
    }
    for (int i = 0; i < ID_BUCKETS; i++) { /* lws_context_destroy destroyed every wsi */
        while (s->tickets[i]) {
            ticket *t = s->tickets[i];
            s->tickets[i] = t->next;
            free(t);
        }
    }
    tk_ws_rooms_free(s->rooms);
    tk_ws_peers_free(s->peers);
    if (s->tr.f) {
        tk_ws_msg_unref(s->tr.frames[0]);
        tk_ws_msg_unref(s->tr.frames[1]);
        fclose(s->tr.f);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void tk_ws_server_get_stats(tk_ws_server *s, tk_ws_server_stats *out)
{
    out->connections = atomic_load(&s->connections);
    out->delivered = atomic_load(&s->delivered);
    out->overflows = atomic_load(&s->overflows);
}

static int bus_post(void *arg, const tk_event *ms, int n)
{
    return tk_ws_server_post_many(arg, ms, n);
}

static void bus_stats(void *arg, tk_bus_stats *out)
{
    tk_ws_server_stats ss;
    tk_ws_server_get_stats(arg, &ss);
    out->connections = ss.connections;
    out->delivered = ss.delivered;
    out->overflows = ss.overflows;
}

tk_bus_sink tk_ws_server_bus_sink(tk_ws_server *s)
{
    return (tk_bus_sink){.arg = s, .post = bus_post, .stats = bus_stats};
}
