/* tk.ratelimit: the runtime's rate-limit counters for scripts (e.g. failed
 * logins per email).
 *   ratelimit.hit(key, limit, window)  -> allowed, {limit, remaining, reset, start}
 *   ratelimit.peek(key, limit, window) -> allowed, {limit, remaining, reset, start}
 *   ratelimit.undo(key, window, start)  takes back one hit of the window `start`
 *     (the `start` hit returned): count an attempt first, atomically, and
 *     give it back when it turned out not to be a failure
 * Keys share one table with the C-side limits; scripts should prefix theirs
 * ("login-email:..."). */
#include <lauxlib.h>
#include <time.h>

#include "http/ratelimit.h"
#include "lua/bindings.h"

static int push_result(lua_State *L, const tk_rate_result *r)
{
    lua_pushboolean(L, r->allowed);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, r->limit);
    lua_setfield(L, -2, "limit");
    lua_pushinteger(L, r->remaining);
    lua_setfield(L, -2, "remaining");
    lua_pushinteger(L, r->reset);
    lua_setfield(L, -2, "reset");
    lua_pushinteger(L, (lua_Integer)r->start);
    lua_setfield(L, -2, "start");
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

static int l_ratelimit_undo(lua_State *L)
{
    const char *key = luaL_checkstring(L, 1);
    lua_Integer w = luaL_checkinteger(L, 2), start = luaL_checkinteger(L, 3);
    luaL_argcheck(L, w >= 1 && w <= 86400, 2, "window must be 1..86400 seconds");
    tk_ratelimit_undo(key, (int)w, (int64_t)start, (int64_t)time(NULL));
    return 0;
}

int tk_lua_open_ratelimit(lua_State *L)
{
    static const luaL_Reg fns[] = {{"hit", l_ratelimit_hit},
                                   {"peek", l_ratelimit_peek},
                                   {"undo", l_ratelimit_undo},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
