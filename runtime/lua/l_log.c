/* tk.log: log.debug/info/warn/error(fmt, ...) through the runtime logger,
 * tagged with the current request id. Arguments are formatted with
 * string.format; never pass secrets. */
#include <lauxlib.h>

#include "lua/bindings.h"
#include "lua/vm.h"
#include "obs/log.h"

static int log_at(lua_State *L, tk_log_level lvl)
{
    if (!tk_log_enabled(lvl))
        return 0;
    int n = lua_gettop(L);
    if (n > 1) {
        lua_getglobal(L, "string");    /* +1 */
        lua_getfield(L, -1, "format"); /* +1 */
        lua_insert(L, 1);
        lua_pop(L, 1);
        lua_call(L, n, 1); /* -fn-args +1 text */
    }
    const char *msg = luaL_tolstring(L, -1, NULL);
    tk_log(lvl, tk_lua_ctx_get(L)->request_id, "%s", msg);
    return 0;
}

static int l_log_debug(lua_State *L)
{
    return log_at(L, TK_LOG_DEBUG);
}
static int l_log_info(lua_State *L)
{
    return log_at(L, TK_LOG_INFO);
}
static int l_log_warn(lua_State *L)
{
    return log_at(L, TK_LOG_WARN);
}
static int l_log_error(lua_State *L)
{
    return log_at(L, TK_LOG_ERROR);
}

int tk_lua_open_log(lua_State *L)
{
    static const luaL_Reg fns[] = {{"debug", l_log_debug},
                                   {"info", l_log_info},
                                   {"warn", l_log_warn},
                                   {"error", l_log_error},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
