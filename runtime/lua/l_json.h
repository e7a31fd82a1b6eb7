/* tk.json: the one JSON writer for answers, events and stored documents
 * (see l_json.c), and the buffer userdata tk.db writes rows into. */
#ifndef TK_LUA_JSON_H
#define TK_LUA_JSON_H

#include <lua.h>
#include <stddef.h>
#include <string.h>

#include "ws/json.h"

/* Registry name of the metatable of encoded fragments (full userdata
 * holding JSON text that the encoder splices in verbatim). */
#define TK_JSON_FRAGMENT_MT "tk.json.fragment"

/* Registry name of the metatable that marks a Lua table as a JSON array
 * (also in vm.h; the same definition, so this header stands alone for the
 * module build). */
#define TK_JSON_ARRAY_MT "json.array"

/* Appends n bytes: the common case (room left) inline, else tk_jbuf_add. */
static inline void tk_json_put(tk_jbuf *b, const char *s, size_t n)
{
    if (!b->failed && b->reserve + b->len + n < b->cap) {
        memcpy(b->p + b->reserve + b->len, s, n);
        b->len += n;
        b->p[b->reserve + b->len] = '\0';
    } else {
        tk_jbuf_add(b, s, n);
    }
}

/* Appends s as a JSON string, escaping only '"', '\\' and control
 * characters (the same text as tk_jbuf_add_jstr, found with a table). */
void tk_json_put_string(tk_jbuf *b, const char *s, size_t n);
/* The same without the quotes. */
void tk_json_put_escaped(tk_jbuf *b, const char *s, size_t n);

/* Pushes a new empty tk_jbuf (ws/json.h) owned by a userdata: its memory
 * is freed by the garbage collector, so code that fills it may raise. */
tk_jbuf *tk_json_push_buffer(lua_State *L);

/* Pushes a fragment (a full userdata with TK_JSON_FRAGMENT_MT) holding a
 * copy of the JSON text s; the caller vouches that it is valid JSON. */
void tk_json_push_fragment(lua_State *L, const char *s, size_t len);

/* Pushes an empty fragment (room for `reserve` bytes) and returns its
 * buffer, for C to write the JSON text in place; the garbage collector frees
 * it. Check tk_jbuf_ok before handing it to scripts. */
tk_jbuf *tk_json_push_fragment_buffer(lua_State *L, size_t reserve);

/* require "tk.json" */
int tk_lua_open_json(lua_State *L);

#endif
