/* The runtime modules Lua sees (require "tk.db", "tk.auth", "tk.log",
 * "tk.runtime", "tk.realtime", "tk.ratelimit", "tk.http", "tk.metrics"; "tk.json" in
 * l_json.h): one file per binding, each with its
 * tk_lua_open_<name>. */
#ifndef TK_LUA_BINDINGS_H
#define TK_LUA_BINDINGS_H

#include <lua.h>

int tk_lua_open_db(lua_State *L);
int tk_lua_open_auth(lua_State *L);
int tk_lua_open_log(lua_State *L);
int tk_lua_open_runtime(lua_State *L);
int tk_lua_open_realtime(lua_State *L);
int tk_lua_open_ratelimit(lua_State *L);
int tk_lua_open_http(lua_State *L);    /* l_http.c: outbound POST, job handlers only */
int tk_lua_open_metrics(lua_State *L); /* l_metrics.c */

/* Pushes one value of a query result as tk.db gives it to scripts: s is
 * libpq's text form (len bytes, NUL-terminated) of a column of type `type`
 * (an Oid); ints, bools, numbers, timestamps ("...T...Z"), json/jsonb
 * (decoded, empty arrays kept), one-dimensional arrays, else the text.
 * Raises on json text that does not decode. Exposed for tests/fuzz. */
void tk_lua_db_push_text(lua_State *L, const char *s, size_t len, unsigned int type);

/* Read routing for one HTTP request (tk.db): reads outside a transaction
 * may go to the read replica, except for a writer within
 * READ_YOUR_WRITES_MS (db/ryw.h), keyed by `user_id`, or "ip:<ip>" before
 * login (both may be NULL: then the primary). end_request forgets it. */
struct tk_lua_ctx;
void tk_lua_db_begin_request(struct tk_lua_ctx *ctx, const char *user_id, const char *ip);
void tk_lua_db_end_request(struct tk_lua_ctx *ctx);

/* 1 when `sql` is a read the replica may serve (lua/l_db.c says which);
 * exposed for tests. */
int tk_lua_db_is_read(const char *sql);

/* Registers every module above in the preload table at index `idx`. */
void tk_lua_preload_bindings(lua_State *L, int idx);

#endif
