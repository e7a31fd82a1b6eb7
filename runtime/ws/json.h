/* JSON for the realtime server. Reading: the messages realtime clients send
 * (auth, join, Socket.IO event arrays) are parsed by libjansson through
 * tk_json_parse, which adds this server's limits to jansson's strict RFC 8259
 * reader; callers then read the document with jansson's own accessors
 * (json_object_get, json_array_get, json_string_value...; each accepts NULL,
 * so lookups chain without checks) and free it with json_decref. Writing: a
 * growable text buffer with a JSON string escaper, used to build the frames
 * the server sends (one allocation per frame, shared by every socket). */
#ifndef TK_WS_JSON_H
#define TK_WS_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "common.h"

/* Arrays and objects nest at most this deep in a client message. */
#define TK_JSON_MAX_DEPTH 32

/* Parses `len` bytes at `s` (no NUL needed) as exactly one JSON value of any
 * type, surrounding white space allowed. Refused (TK_EINVAL): anything that
 * is not RFC 8259 JSON (trailing bytes, invalid UTF-8, lone surrogates,
 * control characters in strings), nesting deeper than TK_JSON_MAX_DEPTH
 * (refused before jansson descends), "\u0000" in any string (so every
 * decoded string is a C string: strlen() == json_string_length()), and
 * numbers outside the range of a double. Numbers are read as doubles
 * (JSON_REAL), as JavaScript reads them. Duplicate keys: the last one wins,
 * as in JavaScript. Returns 0 with a document the caller owns (json_decref),
 * TK_EINVAL, or TK_ENOMEM; *out is NULL unless 0. */
int tk_json_parse(const char *s, size_t len, json_t **out) TK_WUR;

/* ---- output buffer ------------------------------------------------------- */

/* A growable byte buffer that remembers an allocation failure: appends after
 * a failure do nothing and tk_jbuf_ok() says 0. `reserve` leading bytes are
 * left free at the front (for libwebsockets' LWS_PRE). Free with
 * tk_jbuf_cleanup, or hand the memory on (tk_ws_msg_from_jbuf). */
typedef struct {
    char *p;
    size_t len, cap, reserve;
    int failed;
} tk_jbuf;

void tk_jbuf_init(tk_jbuf *b, size_t reserve);
void tk_jbuf_cleanup(tk_jbuf *b);
int tk_jbuf_ok(const tk_jbuf *b);
void tk_jbuf_add(tk_jbuf *b, const char *s, size_t n);
/* Makes room for n more bytes at once (a size known in advance saves the
 * reallocations of growing by doubling); a failure marks the buffer. */
void tk_jbuf_reserve(tk_jbuf *b, size_t n);
void tk_jbuf_adds(tk_jbuf *b, const char *s);
/* Appends s (n bytes) as a quoted JSON string, escaping what JSON requires. */
void tk_jbuf_add_jstr(tk_jbuf *b, const char *s, size_t n);
/* The text written so far (after the reserved bytes); NUL-terminated unless
 * the buffer failed. */
const char *tk_jbuf_text(const tk_jbuf *b);

#endif
