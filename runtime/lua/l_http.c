/* tk.http: outbound HTTP for job handlers (jobs/http.c).
 *   http.post(url, {body =, headers = {name = value}, timeout_ms =, allow_private =})
 *     -> {ok = bool, status = n (0: no answer), duration_ms = n, error = text | nil}
 * Never fails as a function: a refused address, a timeout or a non-2xx
 * answer is in the table. Only the job runner's VM may call it (a worker
 * must not block a request for up to 30 s): elsewhere it raises. Bad
 * arguments raise. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/http.h"
#include "jobs/runner.h"
#include "lua/bindings.h"
#include "lua/vm.h"

#define MAX_HEADERS 32

/* A header name (token characters) or value (no CR, LF or NUL). */
static int header_ok(const char *s, size_t len, int name)
{
    if (name && len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n' || c == '\0')
            return 0;
        if (name && (c <= ' ' || c == ':' || c >= 0x7f))
            return 0;
    }
    return len < 900;
}

static int l_http_post(lua_State *L)
{
    tk_jobs_http_header headers[MAX_HEADERS];
    size_t nheaders = 0, len = 0;
    const char *url = luaL_checkstring(L, 1);
    const char *body = "";
    long timeout_ms = TK_JOBS_HTTP_TIMEOUT_MS;
    int allow_private = 0;

    if (tk_lua_ctx_get(L)->worker_id != TK_JOBS_LUA_WORKER)
        return luaL_error(L, "http.post: only job handlers (lib.jobs.handle) may call it");
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "body"); /* +1 */
        if (!lua_isnil(L, -1))
            body = luaL_checklstring(L, -1, &len); /* stays on the stack: borrowed */
        lua_getfield(L, 2, "timeout_ms");          /* +1 */
        if (!lua_isnil(L, -1)) {
            lua_Integer t = luaL_checkinteger(L, -1);
            luaL_argcheck(L, t >= 1 && t <= TK_JOBS_HTTP_MAX_TIMEOUT_MS, 2,
                          "timeout_ms: 1 to 30000");
            timeout_ms = (long)t;
        }
        lua_pop(L, 1);                       /* -1 */
        lua_getfield(L, 2, "allow_private"); /* +1 */
        allow_private = lua_toboolean(L, -1);
        lua_pop(L, 1);                 /* -1 */
        lua_getfield(L, 2, "headers"); /* +1 headers */
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_istable(L, -1), 2, "headers must be a table");
            int t = lua_gettop(L);
            lua_pushnil(L);               /* +1 key */
            while (lua_next(L, t) != 0) { /* +1 value */
                size_t nl, vl;
                luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING,
                              2, "headers: string names and values");
                const char *n = lua_tolstring(L, -2, &nl), *v = lua_tolstring(L, -1, &vl);
                luaL_argcheck(L, header_ok(n, nl, 1) && header_ok(v, vl, 0), 2,
                              "headers: a name or value with a forbidden character");
                luaL_argcheck(L, nheaders < MAX_HEADERS, 2, "headers: at most 32");
                /* borrowed from the headers table, which stays on the stack */
                headers[nheaders].name = n;
                headers[nheaders].value = v;
                nheaders++;
                lua_pop(L, 1); /* -1 value */
            }
        }
    }
    tk_jobs_http_result res;
    tk_jobs_http_post(url, headers, nheaders, body, len, timeout_ms, allow_private, &res);
    lua_createtable(L, 0, 4);                                      /* +1 result */
    lua_pushboolean(L, res.ok);                                    /* +1 */
    lua_setfield(L, -2, "ok");                                     /* -1 */
    lua_pushinteger(L, res.status);                                /* +1 */
    lua_setfield(L, -2, "status");                                 /* -1 */
    lua_pushinteger(L, res.duration_ms < 0 ? 0 : res.duration_ms); /* +1 */
    lua_setfield(L, -2, "duration_ms");                            /* -1 */
    if (res.error[0] != '\0') {
        lua_pushstring(L, res.error); /* +1 */
        lua_setfield(L, -2, "error"); /* -1 */
    }
    return 1;
}

int tk_lua_open_http(lua_State *L)
{
    static const luaL_Reg fns[] = {{"post", l_http_post}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
