/* tk.realtime: the controls scripts have over live realtime subscriptions.
 * Call them after the change they follow is committed (lib.events does).
 * Each one applies on every instance: it travels the same ordered path as
 * events (events/bus.h), through Redis when REDIS_URL is set.
 *   realtime.kick(room, user_id)  -> true | nil, err   that user's connections leave room
 *   realtime.close_room(room)     -> true | nil, err   every connection leaves room
 *   realtime.recheck(room)        -> true | nil, err   the join policy is asked again for
 *                                                      every connection in room; those it
 *                                                      refuses now leave it
 *   realtime.revoke(jti [, exp])  -> true | nil, err   connections authenticated with jti
 *                                                      are closed with 4401; with exp, other
 *                                                      instances deny the jti until then too
 *   realtime.redis_state()        -> "disabled" | "ok" | "unavailable"
 *   realtime.stats()              -> {published, remote, connections, delivered, dropped,
 *                                     overflows}
 * Bad arguments raise. */
#include <lauxlib.h>
#include <stdio.h>

#include "events/bus.h"
#include "lua/bindings.h"
#include "lua/vm.h"
#include "obs/log.h"

static const char *check_name(lua_State *L, int arg)
{
    const char *s = luaL_checkstring(L, arg);
    luaL_argcheck(L, tk_event_name_ok(s, 0), arg,
                  "expected 1..200 printable characters without newlines");
    return s;
}

static int publish(lua_State *L, const tk_event *m)
{
    int rc = tk_bus_publish(m);
    if (rc != TK_OK) {
        tk_log(TK_LOG_WARN, tk_lua_ctx_get(L)->request_id, "realtime: message not sent: %s",
               tk_strerror(rc));
        luaL_pushfail(L);
        lua_pushstring(L, tk_strerror(rc));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_realtime_kick(lua_State *L)
{
    tk_event m = {.kind = TK_EVENT_KICK, .room = check_name(L, 1), .arg = check_name(L, 2)};
    return publish(L, &m);
}

static int l_realtime_close_room(lua_State *L)
{
    tk_event m = {.kind = TK_EVENT_CLOSE_ROOM, .room = check_name(L, 1), .arg = ""};
    return publish(L, &m);
}

static int l_realtime_recheck(lua_State *L)
{
    tk_event m = {.kind = TK_EVENT_RECHECK, .room = check_name(L, 1), .arg = ""};
    return publish(L, &m);
}

static int l_realtime_revoke(lua_State *L)
{
    const char *jti = check_name(L, 1);
    lua_Integer exp = luaL_optinteger(L, 2, 0);
    char num[24] = "";
    if (exp > 0)
        snprintf(num, sizeof num, "%lld", (long long)exp);
    tk_event m = {.kind = TK_EVENT_REVOKE, .room = "", .arg = jti, .data = num};
    for (const char *p = num; *p; p++)
        m.data_len++;
    return publish(L, &m);
}

static int l_realtime_redis_state(lua_State *L)
{
    if (tk_lua_ctx_get(L)->cfg->redis_url == NULL) {
        lua_pushliteral(L, "disabled");
        return 1;
    }
    lua_pushstring(L, tk_bus_redis_state() == 1 ? "ok" : "unavailable");
    return 1;
}

static void set_num(lua_State *L, const char *k, long long v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int l_realtime_stats(lua_State *L)
{
    tk_bus_stats st;
    tk_bus_get_stats(&st);
    lua_createtable(L, 0, 6); /* +1 */
    set_num(L, "published", st.published);
    set_num(L, "remote", st.remote);
    set_num(L, "connections", st.connections);
    set_num(L, "delivered", st.delivered);
    set_num(L, "dropped", st.dropped);
    set_num(L, "overflows", st.overflows);
    return 1;
}

int tk_lua_open_realtime(lua_State *L)
{
    static const luaL_Reg fns[] = {{"kick", l_realtime_kick},
                                   {"close_room", l_realtime_close_room},
                                   {"recheck", l_realtime_recheck},
                                   {"revoke", l_realtime_revoke},
                                   {"redis_state", l_realtime_redis_state},
                                   {"stats", l_realtime_stats},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
