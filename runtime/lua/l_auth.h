/* The `auth` Lua module: thin bindings over runtime/auth (passwords, access
 * tokens, random tokens, hashing, the denylist). The key set must be
 * installed with tk_auth_keys_init before scripts sign or verify. */
#ifndef TK_LUA_L_AUTH_H
#define TK_LUA_L_AUTH_H

#include <lua.h>

/* luaopen-style: pushes the module table and returns 1. Also registers the
 * "tk.auth.buf" metatable it uses internally. Raises on memory error. */
int tk_lua_open_auth(lua_State *L);

#endif
