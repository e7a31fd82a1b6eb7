/* The table of runtime modules offered to scripts through require. */
#include "lua/bindings.h"

#include "lua/l_json.h"

#include <lauxlib.h>

void tk_lua_preload_bindings(lua_State *L, int idx)
{
    static const luaL_Reg mods[] = {{"tk.db", tk_lua_open_db},
                                    {"tk.auth", tk_lua_open_auth},
                                    {"tk.log", tk_lua_open_log},
                                    {"tk.runtime", tk_lua_open_runtime},
                                    {"tk.realtime", tk_lua_open_realtime},
                                    {"tk.ratelimit", tk_lua_open_ratelimit},
                                    {"tk.metrics", tk_lua_open_metrics},
                                    {"tk.json", tk_lua_open_json},
                                    {"tk.http", tk_lua_open_http},
                                    {NULL, NULL}};
    for (const luaL_Reg *m = mods; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, idx, m->name);
    }
}
