/* Fuzz target: native /ws client messages (runtime/ws/native.c): one text
 * frame read into its kind, token and room. Checks: the kind is one of the
 * list; a token only on auth, a room only on join/leave, NUL-terminated,
 * non-empty and within the room-name limit; the document is freed. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "ws/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1000000) /* WS_MAX_MESSAGE at most */
        return 0;
    tk_ws_native_msg m;
    tk_ws_native_parse((const char *)data, size, &m);
    FUZZ_CHECK(m.kind >= TK_WS_NMSG_INVALID && m.kind <= TK_WS_NMSG_OTHER);
    FUZZ_CHECK(m.token == NULL || m.kind == TK_WS_NMSG_AUTH);
    if (m.token != NULL)
        FUZZ_CHECK(strlen(m.token) <= size);
    FUZZ_CHECK(m.room == NULL || m.kind == TK_WS_NMSG_JOIN || m.kind == TK_WS_NMSG_LEAVE);
    if (m.room != NULL) {
        size_t n = strlen(m.room);
        FUZZ_CHECK(n > 0 && n <= TK_WS_ROOM_NAME_MAX);
    }
    if (m.kind == TK_WS_NMSG_INVALID || m.kind == TK_WS_NMSG_NOMEM)
        FUZZ_CHECK(m.token == NULL && m.room == NULL);
    if (m.kind != TK_WS_NMSG_INVALID && m.kind != TK_WS_NMSG_NOMEM)
        FUZZ_CHECK(json_is_object(m.doc));
    if (m.token != NULL) /* the whole "token", not cut short at a NUL */
        FUZZ_CHECK(strlen(m.token) == json_string_length(json_object_get(m.doc, "token")));
    json_decref(m.doc);
    return 0;
}
