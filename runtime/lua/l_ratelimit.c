/* tk.ratelimit: the runtime's rate-limit counters for scripts (e.g. failed
 * logins per email).
 *   ratelimit.hit(key, limit, window)  -> allowed, {limit, remaining, reset}
 *   ratelimit.peek(key, limit, window) -> allowed, {limit, remaining, reset}
 * Keys share one table with the C-side limits; scripts should prefix theirs
 * ("login-email:..."). */
#include <lauxlib.h>
#include <time.h>

#include "http/ratelimit.h"
#include "lua/bindings.h"

static int push_result(lua_State *L, const tk_rate_result *r)
{
    lua_pushboolean(L, r->allowed);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r->limit);
    lua_setfield(L, -2, "limit");
    lua_pushinteger(L, r->remaining);
    lua_setfield(L, -2, "remaining");
    lua_pushinteger(L, r->reset);
    lua_setfield(L, -2, "reset");
    return 2;
}

static void args(lua_State *L, const char **key, int *limit, int *window)
{
    *key = luaL_checkstring(L, 1);
    lua_Integer l = luaL_checkinteger(L, 2), w = luaL_checkinteger(L, 3);
    luaL_argcheck(L, l >= 1 && l <= 2000000000, 2, "limit must be 1..2e9");
    luaL_argcheck(L, w >= 1 && w <= 86400, 3, "window must be 1..86400 seconds");
    *limit = (int)l;
    *window = (int)w;
}

static int l_ratelimit_hit(lua_State *L)
{
    const char *key;
    int limit, window;
    args(L, &key, &limit, &window);
    tk_rate_result r;
    (void)tk_ratelimit_hit(key, limit, window, (int64_t)time(NULL), &r);
    return push_result(L, &r);
}

static int l_ratelimit_peek(lua_State *L)
{
    const char *key;
    int limit, window;
    args(L, &key, &limit, &window);
    tk_rate_result r;
    tk_ratelimit_peek(key, limit, window, (int64_t)time(NULL), &r);
    return push_result(L, &r);
}

int tk_lua_open_ratelimit(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"hit", l_ratelimit_hit}, {"peek", l_ratelimit_peek}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
