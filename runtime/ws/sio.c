/* Socket.IO v4 over the websocket transport: Engine.IO protocol v4 framing
 * (open "0{...}", ping "2" from the server every pingInterval, pong "3",
 * close "1", message "4") carrying Socket.IO protocol v5 packets (CONNECT
 * "40{auth}" -> "40{"sid"}" | CONNECT_ERROR "44{"message"}", EVENT
 * "42[name, ...]" with optional ack ids, ACK "43<id>[...]", DISCONNECT
 * "41"). Only the main namespace "/" exists; binary packets and the
 * polling transport are not supported. Events arrive at clients as
 * 42["task:created", <data>]. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/internal.h"

#define PING_INTERVAL_US (25 * 1000000LL)
#define PING_TIMEOUT_US (20 * 1000000LL)
#define ACK_ID_MAX 1000000000000000L
#define PROJECT_ID_MAX 100

void tk_ws_sio_open(tk_ws_conn *c, const char *token)
{
    tk_ws_random_id(c->eio_sid, sizeof c->eio_sid, 20);
    if (token != NULL && *token != '\0')
        c->query_token = strdup(token);
    char open[256];
    int n = snprintf(open, sizeof open,
                     "0{\"sid\":\"%s\",\"upgrades\":[],\"pingInterval\":%lld,"
                     "\"pingTimeout\":%lld,\"maxPayload\":%zu}",
                     c->eio_sid, PING_INTERVAL_US / 1000, PING_TIMEOUT_US / 1000,
                     tk_ws_conn_max_message(c));
    (void)tk_ws_conn_send(c, open, (size_t)n);
    c->ping_at = tk_ws_now_us() + PING_INTERVAL_US;
    tk_ws_conn_await_auth(c); /* CONNECT must succeed within WS_AUTH_TIMEOUT */
}

void tk_ws_sio_timer(tk_ws_conn *c, int64_t now)
{
    if (c->pong_deadline > 0 && now >= c->pong_deadline) {
        c->pong_deadline = 0;
        tk_ws_conn_close(c, TK_WS_CLOSE_NORMAL, "ping timeout", 0);
        return;
    }
    if (c->ping_at > 0 && now >= c->ping_at) {
        (void)tk_ws_conn_send(c, "2", 1);
        c->ping_at = 0;
        c->pong_deadline = now + PING_TIMEOUT_US;
    }
}

void tk_ws_sio_disconnect(tk_ws_conn *c)
{
    if (c->authed)
        (void)tk_ws_conn_send(c, "41", 2);
}

/* Sends 43<id>[{"ok":true}] or 43<id>[{"ok":false,"error":code}]. */
static void send_ack(tk_ws_conn *c, long ack_id, int ok, const char *code)
{
    if (ack_id < 0)
        return;
    char head[48];
    int n = snprintf(head, sizeof head, "43%ld[", ack_id);
    tk_jbuf b;
    tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
    tk_jbuf_add(&b, head, (size_t)n);
    if (ok) {
        tk_jbuf_adds(&b, "{\"ok\":true}]");
    } else {
        tk_jbuf_adds(&b, "{\"ok\":false,\"error\":");
        tk_jbuf_add_jstr(&b, code, strlen(code));
        tk_jbuf_adds(&b, "}]");
    }
    (void)tk_ws_conn_send_jbuf(c, &b);
}

void tk_ws_sio_join_done(tk_ws_conn *c, const tk_ws_join *job)
{
    send_ack(c, job->ack_id, job->ok, job->code);
}

static void connect_error(tk_ws_conn *c, const char *ns, size_t ns_len, const char *message,
                          const char *code)
{
    tk_jbuf b;
    tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
    tk_jbuf_adds(&b, "44");
    if (!(ns_len == 1 && ns[0] == '/')) {
        tk_jbuf_add(&b, ns, ns_len);
        tk_jbuf_adds(&b, ",");
    }
    tk_jbuf_adds(&b, "{\"message\":");
    tk_jbuf_add_jstr(&b, message, strlen(message));
    if (code) {
        tk_jbuf_adds(&b, ",\"data\":{\"code\":");
        tk_jbuf_add_jstr(&b, code, strlen(code));
        tk_jbuf_adds(&b, "}");
    }
    tk_jbuf_adds(&b, "}");
    (void)tk_ws_conn_send_jbuf(c, &b);
}

static void send_connected(tk_ws_conn *c)
{
    char ok[64];
    int n = snprintf(ok, sizeof ok, "40{\"sid\":\"%s\"}", c->sio_sid);
    (void)tk_ws_conn_send(c, ok, (size_t)n);
}

static void on_connect(tk_ws_conn *c, int main_ns, const char *ns, size_t ns_len, const char *json,
                       size_t json_len)
{
    if (!main_ns) {
        connect_error(c, ns, ns_len, "Invalid namespace", NULL);
        return;
    }
    if (c->authed) {
        send_connected(c);
        return;
    }
    const char *token = c->query_token;
    json_t *doc = NULL;
    if (json_len > 0) {
        if (tk_json_parse(json, json_len, &doc) != TK_OK || !json_is_object(doc)) {
            json_decref(doc);
            tk_ws_conn_close(c, TK_WS_CLOSE_PROTOCOL, "invalid CONNECT payload", 1);
            return;
        }
        const char *t = json_string_value(json_object_get(doc, "token"));
        if (t != NULL)
            token = t;
    }
    int rc = tk_ws_conn_authenticate(c, token);
    if (rc == 0) {
        tk_ws_random_id(c->sio_sid, sizeof c->sio_sid, 20);
        send_connected(c);
        free(c->query_token);
        c->query_token = NULL;
    } else if (rc == -2) {
        connect_error(c, "/", 1, "too many connections for this user", "rate_limited");
        tk_ws_conn_close(c, TK_WS_CLOSE_TOO_MANY, "too many connections for this user", 1);
    } else {
        connect_error(c, "/", 1, "unauthorized", "unauthorized");
    }
    json_decref(doc);
}

int tk_ws_sio_parse_event(const char *json, size_t json_len, char *room, size_t roomlen)
{
    json_t *doc = NULL;
    if (tk_json_parse(json, json_len, &doc) != TK_OK || !json_is_array(doc) ||
        !json_is_string(json_array_get(doc, 0))) {
        json_decref(doc);
        return -1;
    }
    const char *name = json_string_value(json_array_get(doc, 0));
    int kind = strcmp(name, "join:project") == 0    ? TK_WS_SIO_JOIN
               : strcmp(name, "leave:project") == 0 ? TK_WS_SIO_LEAVE
                                                    : TK_WS_SIO_OTHER;
    const json_t *v = json_object_get(json_array_get(doc, 1), "projectId");
    const char *pid = json_string_value(v); /* no NUL inside: tk_json_parse */
    size_t len = json_string_length(v);
    int valid = pid != NULL && len > 0 && len <= PROJECT_ID_MAX;
    for (size_t i = 0; valid && i < len; i++)
        if ((unsigned char)pid[i] < 0x21 || pid[i] == 0x7f)
            valid = 0;
    if (kind != TK_WS_SIO_OTHER && valid)
        snprintf(room, roomlen, "project:%s", pid);
    else
        kind = TK_WS_SIO_OTHER;
    json_decref(doc);
    return kind;
}

/* join:project / leave:project with {projectId}; other events are refused
 * through their ack (an event without an ack id is ignored). */
static void on_event(tk_ws_conn *c, long ack_id, const char *json, size_t json_len)
{
    char room[TK_WS_ROOM_NAME_MAX + 1];
    switch (tk_ws_sio_parse_event(json, json_len, room, sizeof room)) {
    case TK_WS_SIO_JOIN:
        tk_ws_conn_join(c, room, ack_id);
        break;
    case TK_WS_SIO_LEAVE:
        tk_ws_conn_leave(c, room);
        send_ack(c, ack_id, 1, NULL);
        break;
    case TK_WS_SIO_OTHER:
        send_ack(c, ack_id, 0, "validation_failed");
        break;
    default:
        tk_ws_conn_close(c, TK_WS_CLOSE_PROTOCOL, "invalid EVENT payload", 1);
        break;
    }
}

int tk_ws_sio_parse_packet(const char *p, size_t n, tk_ws_sio_packet *out, const char **why)
{
    if (n == 0) {
        *why = "empty Socket.IO packet";
        return TK_WS_CLOSE_PROTOCOL;
    }
    out->type = p[0];
    size_t i = 1;
    if (out->type == '5' || out->type == '6') {
        *why = "binary packets are not supported";
        return TK_WS_CLOSE_UNSUPPORTED;
    }
    out->ns = "/";
    out->ns_len = 1;
    if (i < n && p[i] == '/') {
        size_t start = i;
        while (i < n && p[i] != ',')
            i++;
        out->ns = p + start;
        out->ns_len = i - start;
        if (i < n)
            i++; /* the comma */
    }
    out->ack_id = -1;
    if (i < n && isdigit((unsigned char)p[i])) {
        out->ack_id = 0;
        while (i < n && isdigit((unsigned char)p[i])) {
            out->ack_id = out->ack_id * 10 + (p[i++] - '0');
            if (out->ack_id > ACK_ID_MAX) {
                *why = "ack id too large";
                return TK_WS_CLOSE_PROTOCOL;
            }
        }
    }
    out->json = p + i;
    out->json_len = n - i;
    return 0;
}

/* One Socket.IO packet (the Engine.IO message payload). */
static void on_packet(tk_ws_conn *c, const char *p, size_t n)
{
    tk_ws_sio_packet pk;
    const char *why = NULL;
    int code = tk_ws_sio_parse_packet(p, n, &pk, &why);
    if (code != 0) {
        tk_ws_conn_close(c, code, why, 1);
        return;
    }
    const char *ns = pk.ns, *json = pk.json;
    size_t ns_len = pk.ns_len, json_len = pk.json_len;
    int main_ns = ns_len == 1 && ns[0] == '/';
    long ack_id = pk.ack_id;
    switch (pk.type) {
    case '0': /* CONNECT */
        on_connect(c, main_ns, ns, ns_len, json, json_len);
        break;
    case '1': /* DISCONNECT */
        if (main_ns && c->authed) {
            /* The socket stays open for a new CONNECT, which must come
             * within WS_AUTH_TIMEOUT like the first one. */
            tk_ws_conn_leave_all(c);
            c->authed = 0;
            c->exp_deadline = 0;
            tk_ws_conn_await_auth(c);
        }
        break;
    case '2': /* EVENT */
        if (main_ns && c->authed)
            on_event(c, ack_id, json, json_len);
        break;
    case '3': /* ACK: the server never asks for one */
    case '4': /* CONNECT_ERROR: server to client only */
        break;
    default:
        tk_ws_conn_close(c, TK_WS_CLOSE_PROTOCOL, "unknown Socket.IO packet type", 1);
        break;
    }
}

void tk_ws_sio_message(tk_ws_conn *c, const char *data, size_t len)
{
    if (len == 0) {
        tk_ws_conn_close(c, TK_WS_CLOSE_PROTOCOL, "empty Engine.IO packet", 1);
        return;
    }
    switch (data[0]) {
    case '2': { /* ping from the client (probe): pong with the same payload */
        tk_jbuf b;
        tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
        tk_jbuf_add(&b, "3", 1);
        tk_jbuf_add(&b, data + 1, len - 1);
        (void)tk_ws_conn_send_jbuf(c, &b);
        break;
    }
    case '3': /* pong */
        c->pong_deadline = 0;
        c->ping_at = tk_ws_now_us() + PING_INTERVAL_US;
        tk_ws_conn_rearm(c);
        break;
    case '1': /* close */
        tk_ws_conn_close(c, TK_WS_CLOSE_NORMAL, "client closed", 1);
        break;
    case '4': /* message */
        on_packet(c, data + 1, len - 1);
        break;
    case '5': /* upgrade, noop: nothing to do over websocket */
    case '6':
        break;
    default:
        tk_ws_conn_close(c, TK_WS_CLOSE_PROTOCOL, "unknown Engine.IO packet type", 1);
        break;
    }
}

tk_ws_msg *tk_ws_sio_event(const char *event, const char *data, size_t len)
{
    tk_jbuf b;
    tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
    tk_jbuf_adds(&b, "42[");
    tk_jbuf_add_jstr(&b, event, strlen(event));
    tk_jbuf_adds(&b, ",");
    if (len > 0)
        tk_jbuf_add(&b, data, len);
    else
        tk_jbuf_adds(&b, "null");
    tk_jbuf_adds(&b, "]");
    return tk_ws_msg_from_jbuf(&b);
}
