/* A small strict JSON reader for the messages realtime clients send (auth,
 * join, Socket.IO event arrays), and a growable text buffer with a JSON
 * string escaper for what the server writes. The reader parses one document
 * into a flat node array; values are looked up by key or index. It is not a
 * general JSON library: numbers are doubles, depth is capped, and the whole
 * document must fit in memory (the caller bounds the input size). */
#ifndef TK_WS_JSON_H
#define TK_WS_JSON_H

#include <stddef.h>

#include "common.h"

#define TK_JSON_MAX_DEPTH 32

typedef enum {
    TK_JSON_NULL = 0,
    TK_JSON_FALSE,
    TK_JSON_TRUE,
    TK_JSON_NUMBER,
    TK_JSON_STRING,
    TK_JSON_ARRAY,
    TK_JSON_OBJECT,
} tk_json_type;

typedef struct tk_json tk_json;

/* Parses `len` bytes at `s` (no NUL needed). Returns 0 with a document the
 * caller frees with tk_json_free, TK_EINVAL for anything that is not exactly
 * one JSON value (surrounding white space allowed), or TK_ENOMEM. */
int tk_json_parse(const char *s, size_t len, tk_json **out) TK_WUR;
void tk_json_free(tk_json *doc);

/* Nodes are small integers; the root is 0; -1 means "none" and is accepted
 * (and propagated) by every accessor, so lookups chain without checks. */
tk_json_type tk_json_type_of(const tk_json *doc, int node); /* TK_JSON_NULL for -1 */

/* Member `key` of an object, or -1 (not an object, or no such key). */
int tk_json_get(const tk_json *doc, int node, const char *key);

/* Element i (0-based) of an array, or -1. */
int tk_json_at(const tk_json *doc, int i, int idx);

/* Element count of an array or member count of an object, else 0. */
int tk_json_len(const tk_json *doc, int node);

/* The decoded string (NUL-terminated, borrowed from doc) of a string node,
 * or NULL for any other node. *len (may be NULL) gets its byte length; a
 * decoded "\u0000" makes strlen() shorter than *len. */
const char *tk_json_str(const tk_json *doc, int node, size_t *len);

/* ---- output buffer ------------------------------------------------------- */

/* A growable byte buffer that remembers an allocation failure: appends after
 * a failure do nothing and tk_jbuf_ok() says 0. `reserve` leading bytes are
 * left free at the front (for libwebsockets' LWS_PRE). Free with
 * tk_jbuf_cleanup, or take the memory with tk_jbuf_take. */
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
