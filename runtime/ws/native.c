/* The native realtime protocol at /ws (API.md §8, §10). One JSON object per
 * text frame. The client authenticates with ?token= or, first thing, with
 * {"type":"auth","token"} (closed with 4401 on a bad token, on any other
 * first message, or when nothing comes within WS_AUTH_TIMEOUT; with 4429
 * when the user already has WS_MAX_CONN_PER_USER sockets), then sends join, leave
 * and ping. The server answers ready, joined, left, pong and
 * {"type":"error","code","message"} with codes of API.md §1, and sends
 * events as {"type":"event","event","room","data"}. */
#include <stdio.h>
#include <string.h>

#include "ws/internal.h"

/* Sends {"type":"error","code":...,"message":...[,"room":...]}. */
static void send_error(tk_ws_conn *c, const char *code, const char *message, const char *room)
{
    tk_jbuf b;
    tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
    tk_jbuf_adds(&b, "{\"type\":\"error\",\"code\":");
    tk_jbuf_add_jstr(&b, code, strlen(code));
    tk_jbuf_adds(&b, ",\"message\":");
    tk_jbuf_add_jstr(&b, message, strlen(message));
    if (room) {
        tk_jbuf_adds(&b, ",\"room\":");
        tk_jbuf_add_jstr(&b, room, strlen(room));
    }
    tk_jbuf_adds(&b, "}");
    (void)tk_ws_conn_send_jbuf(c, &b);
}

/* Sends {"type":<type>,"room":<room>}. */
static void send_room(tk_ws_conn *c, const char *type, const char *room, size_t room_len)
{
    tk_jbuf b;
    tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
    tk_jbuf_adds(&b, "{\"type\":");
    tk_jbuf_add_jstr(&b, type, strlen(type));
    tk_jbuf_adds(&b, ",\"room\":");
    tk_jbuf_add_jstr(&b, room, room_len);
    tk_jbuf_adds(&b, "}");
    (void)tk_ws_conn_send_jbuf(c, &b);
}

static void send_ready(tk_ws_conn *c)
{
    tk_jbuf b;
    tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
    tk_jbuf_adds(&b, "{\"type\":\"ready\",\"userId\":");
    tk_jbuf_add_jstr(&b, c->user_id, strlen(c->user_id));
    tk_jbuf_adds(&b, "}");
    (void)tk_ws_conn_send_jbuf(c, &b);
}

static void authenticate(tk_ws_conn *c, const char *token)
{
    int rc = tk_ws_conn_authenticate(c, token);
    if (rc == -2) {
        tk_ws_conn_close(c, TK_WS_CLOSE_TOO_MANY, "too many connections for this user", 1);
        return;
    }
    if (rc != 0) {
        tk_ws_conn_close(c, TK_WS_CLOSE_UNAUTHORIZED, "invalid or expired token", 1);
        return;
    }
    send_ready(c);
}

void tk_ws_native_open(tk_ws_conn *c, const char *token)
{
    if (token != NULL) {
        authenticate(c, token);
        return;
    }
    tk_ws_conn_await_auth(c);
}

static const char *message_for(const char *code)
{
    if (strcmp(code, "not_found") == 0)
        return "no such room, or you may not read it";
    if (strcmp(code, "unavailable") == 0)
        return "a dependency is unavailable; try again";
    if (strcmp(code, "validation_failed") == 0)
        return "cannot join this room";
    if (strcmp(code, "internal") == 0)
        return "internal error";
    return "join refused";
}

void tk_ws_native_join_done(tk_ws_conn *c, const tk_ws_join *job)
{
    if (job->ok)
        send_room(c, "joined", job->room, strlen(job->room));
    else
        send_error(c, job->code, message_for(job->code), job->room);
}

void tk_ws_native_parse(const char *data, size_t len, tk_ws_native_msg *m)
{
    memset(m, 0, sizeof *m);
    int rc = tk_json_parse(data, len, &m->doc);
    if (rc != TK_OK || !json_is_object(m->doc)) {
        m->kind = rc == TK_ENOMEM ? TK_WS_NMSG_NOMEM : TK_WS_NMSG_INVALID;
        return;
    }
    const char *type = json_string_value(json_object_get(m->doc, "type"));
    if (type == NULL)
        type = "";
    m->kind = strcmp(type, "auth") == 0    ? TK_WS_NMSG_AUTH
              : strcmp(type, "ping") == 0  ? TK_WS_NMSG_PING
              : strcmp(type, "join") == 0  ? TK_WS_NMSG_JOIN
              : strcmp(type, "leave") == 0 ? TK_WS_NMSG_LEAVE
                                           : TK_WS_NMSG_OTHER;
    if (m->kind == TK_WS_NMSG_AUTH)
        m->token = json_string_value(json_object_get(m->doc, "token"));
    if (m->kind == TK_WS_NMSG_JOIN || m->kind == TK_WS_NMSG_LEAVE) {
        const json_t *room = json_object_get(m->doc, "room");
        size_t n = json_string_length(room); /* 0 when not a string */
        if (n > 0 && n <= TK_WS_ROOM_NAME_MAX)
            m->room = json_string_value(room); /* no NUL inside: tk_json_parse */
    }
}

static void bad_room(tk_ws_conn *c)
{
    send_error(c, "validation_failed", "\"room\" must be a room name such as project:<id>", NULL);
}

void tk_ws_native_message(tk_ws_conn *c, const char *data, size_t len)
{
    tk_ws_native_msg m;
    tk_ws_native_parse(data, len, &m);
    if (m.kind == TK_WS_NMSG_INVALID || m.kind == TK_WS_NMSG_NOMEM) {
        if (!c->authed)
            tk_ws_conn_close(c, TK_WS_CLOSE_UNAUTHORIZED, "authenticate first", 1);
        else if (m.kind == TK_WS_NMSG_NOMEM)
            send_error(c, "internal", "out of memory", NULL);
        else
            send_error(c, "invalid_json", "a message must be one JSON object", NULL);
        goto out;
    }
    if (!c->authed) {
        if (m.kind == TK_WS_NMSG_AUTH)
            authenticate(c, m.token);
        else
            tk_ws_conn_close(c, TK_WS_CLOSE_UNAUTHORIZED, "authenticate first", 1);
        goto out;
    }
    switch (m.kind) {
    case TK_WS_NMSG_PING: {
        static const char pong[] = "{\"type\":\"pong\"}";
        (void)tk_ws_conn_send(c, pong, sizeof pong - 1);
        break;
    }
    case TK_WS_NMSG_JOIN:
        if (m.room)
            tk_ws_conn_join(c, m.room, -1);
        else
            bad_room(c);
        break;
    case TK_WS_NMSG_LEAVE:
        if (m.room) {
            tk_ws_conn_leave(c, m.room);
            send_room(c, "left", m.room, strlen(m.room));
        } else {
            bad_room(c);
        }
        break;
    case TK_WS_NMSG_AUTH:
        send_error(c, "conflict", "already authenticated", NULL);
        break;
    default:
        send_error(c, "validation_failed", "\"type\" must be one of auth, join, leave, ping", NULL);
        break;
    }
out:
    json_decref(m.doc);
}

tk_ws_msg *tk_ws_native_event(const char *room, const char *event, const char *data, size_t len)
{
    tk_jbuf b;
    tk_jbuf_init(&b, TK_WS_JBUF_RESERVE);
    tk_jbuf_adds(&b, "{\"type\":\"event\",\"event\":");
    tk_jbuf_add_jstr(&b, event, strlen(event));
    tk_jbuf_adds(&b, ",\"room\":");
    tk_jbuf_add_jstr(&b, room, strlen(room));
    tk_jbuf_adds(&b, ",\"data\":");
    if (len > 0)
        tk_jbuf_add(&b, data, len);
    else
        tk_jbuf_adds(&b, "null");
    tk_jbuf_adds(&b, "}");
    return tk_ws_msg_from_jbuf(&b);
}
