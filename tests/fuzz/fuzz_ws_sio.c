/* Fuzz target: Socket.IO packets as a client sends them over the websocket
 * transport (runtime/ws/sio.c): the input is one Engine.IO text message;
 * a "4" message is read as a Socket.IO packet (type, namespace, ack id) and
 * an EVENT's payload as the join/leave request it may be. Checks: a refused
 * packet carries a close code and reason; namespace and payload lie inside
 * the input; ack ids are bounded; a join/leave names a room of the right
 * shape, NUL-terminated within the room limit. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "ws/internal.h"

static int inside(const char *p, size_t plen, const char *base, size_t n)
{
    return p >= base && p + plen <= base + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1000000 || data[0] != '4') /* WS_MAX_MESSAGE at most */
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    tk_ws_sio_packet pk;
    const char *why = NULL;
    int code = tk_ws_sio_parse_packet(p, n, &pk, &why);
    if (code != 0) {
        FUZZ_CHECK(code == TK_WS_CLOSE_PROTOCOL || code == TK_WS_CLOSE_UNSUPPORTED);
        FUZZ_CHECK(why != NULL && why[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(pk.type == p[0]);
    FUZZ_CHECK((pk.ns_len == 1 && pk.ns[0] == '/') || inside(pk.ns, pk.ns_len, p, n));
    FUZZ_CHECK(inside(pk.json, pk.json_len, p, n));
    FUZZ_CHECK(pk.ack_id >= -1 && pk.ack_id <= 1000000000000000L);
    if (pk.type == '2') {
        char room[TK_WS_ROOM_NAME_MAX + 1];
        memset(room, 'x', sizeof room);
        int kind = tk_ws_sio_parse_event(pk.json, pk.json_len, room, sizeof room);
        FUZZ_CHECK(kind >= -1 && kind <= TK_WS_SIO_LEAVE);
        if (kind == TK_WS_SIO_JOIN || kind == TK_WS_SIO_LEAVE) {
            FUZZ_CHECK(memchr(room, '\0', sizeof room) != NULL);
            FUZZ_CHECK(strncmp(room, "project:", 8) == 0 && room[8] != '\0');
            for (const char *r = room; *r; r++)
                FUZZ_CHECK((unsigned char)*r > 0x20 && *r != 0x7f);
        }
    } else if (pk.type == '0' && pk.json_len > 0) {
        json_t *doc = NULL; /* the CONNECT payload, read as on_connect does */
        if (tk_json_parse(pk.json, pk.json_len, &doc) == TK_OK) {
            const json_t *t = json_object_get(doc, "token");
            FUZZ_CHECK(t == NULL || !json_is_string(t) ||
                       (strlen(json_string_value(t)) == json_string_length(t) &&
                        json_string_length(t) <= pk.json_len));
        }
        json_decref(doc);
    }
    return 0;
}
