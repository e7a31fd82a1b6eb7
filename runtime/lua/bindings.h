/* The runtime modules Lua sees (require "tk.db", "tk.auth", "tk.log",
 * "tk.runtime", "tk.realtime"): one file per binding, each with its
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

/* Registers every module above in the preload table at index `idx`. */
void tk_lua_preload_bindings(lua_State *L, int idx);

#endif
