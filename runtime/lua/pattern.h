/* Lua 5.4 string patterns with bounded work: string.find, match, gmatch and
 * gsub for the sandbox, with the semantics of the Lua 5.4 reference manual
 * (section 6.4.1) but every matching step charged against the request's
 * instruction budget (tk_lua_ctx.budget), so no pattern can hold a worker
 * longer than a loop of Lua code could. */
#ifndef TK_LUA_PATTERN_H
#define TK_LUA_PATTERN_H

#include <lua.h>

/* Replaces find, match, gmatch and gsub in the table at `idx` (the sandbox's
 * string table, which is also the string metatable's __index) with the
 * bounded versions. In a state without a tk_lua_ctx (tests) the matchers
 * run unbounded, like the stock ones. */
void tk_lua_pattern_install(lua_State *L, int idx);

#endif
