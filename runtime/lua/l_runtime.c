/* tk.runtime: facts about the running server for scripts.
 *   runtime.config()       -> table of the non-secret configuration
 *   runtime.where(level)   -> "file:line" of a caller (for route tables)
 *   runtime.list_dir(rel)  -> sorted *.lua names in directory rel of the scripts
 *   runtime.list_dirs(rel) -> sorted subdirectory names ("plugins" lists PLUGINS_DIR)
 *   runtime.worker()       -> worker number (0 in check mode)
 *   runtime.generation()   -> {id = N, digest = "<sha256 hex>"}: the script
 *                             generation this VM belongs to (lua/gen.h), the
 *                             same for HTTP and realtime at any moment; nil
 *                             outside one (tests) and while app.lua loads
 *   runtime.request_id()   -> id of the request being served, or nil
 *   runtime.uptime()       -> seconds since start
 *   runtime.now_ms()       -> wall clock in milliseconds
 *   runtime.emit(room, event, json) -> hands an event to the realtime layer
 *                                      (local clients and, with REDIS_URL, every
 *                                      other instance; see events/bus.h)
 *   runtime.traceback(msg [, level]) -> msg with a stack traceback
 *   runtime.plugin_settings() -> {list = PLUGINS or nil, config = text of the
 *                            PLUGINS_CONFIG file as this generation read it or
 *                            nil (config_error: why), config_path, dir = PLUGINS_DIR}
 *   runtime.array_mt       -> the metatable that marks JSON arrays
 *   runtime.version        -> the server version */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "events/bus.h"
#include "lua/bindings.h"
#include "lua/gen.h"
#include "lua/vm.h"
#include "obs/log.h"
#include "obs/status.h"

static time_t started_at;

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v == NULL)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static int l_runtime_config(lua_State *L)
{
    const tk_config *c = tk_lua_ctx_get(L)->cfg;
    lua_createtable(L, 0, 16);
    set_int(L, "port", c->port);
    set_int(L, "workers", c->workers);
    set_int(L, "access_token_ttl", c->access_token_ttl);
    set_int(L, "refresh_token_ttl", c->refresh_token_ttl);
    set_int(L, "body_limit", (lua_Integer)c->body_limit);
    set_str(L, "app_base_url", c->app_base_url);
    set_str(L, "mail_from", c->mail_from);
    set_int(L, "ws_port", c->ws_port);
    set_int(L, "rate_limit_per_min", c->rate_limit_per_min);
    set_int(L, "auth_rate_limit_per_min", c->auth_rate_limit_per_min);
    set_int(L, "bcrypt_cost", c->bcrypt_cost);
    lua_pushboolean(L, c->require_verified_email);
    lua_setfield(L, -2, "require_verified_email");
    lua_pushboolean(L, c->redis_url != NULL);
    lua_setfield(L, -2, "redis");
    lua_pushboolean(L, c->production);
    lua_setfield(L, -2, "production");
    return 1;
}

static int l_runtime_where(lua_State *L)
{
    int level = (int)luaL_optinteger(L, 1, 2);
    lua_Debug ar;
    if (!lua_getstack(L, level, &ar) || !lua_getinfo(L, "Sl", &ar) || ar.currentline < 0) {
        lua_pushliteral(L, "?");
        return 1;
    }
    lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
    return 1;
}

static void push_name(const char *name, void *ud)
{
    lua_State *L = ud;
    lua_pushstring(L, name);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int list(lua_State *L, int dirs)
{
    const char *rel = luaL_checkstring(L, 1);
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    lua_newtable(L); /* +1 result */
    tk_snapshot_list(ctx->snapshot, rel, dirs, push_name, L);
    return 1;
}

static int l_runtime_list_dir(lua_State *L)
{
    return list(L, 0);
}

static int l_runtime_list_dirs(lua_State *L)
{
    return list(L, 1);
}

static int l_runtime_traceback(lua_State *L)
{
    const char *msg = luaL_optstring(L, 1, "");
    luaL_traceback(L, L, msg, (int)luaL_optinteger(L, 2, 1));
    return 1;
}

static int l_runtime_worker(lua_State *L)
{
    lua_pushinteger(L, tk_lua_ctx_get(L)->worker_id);
    return 1;
}

static int l_runtime_generation(lua_State *L)
{
    const tk_lua_gen *g = tk_lua_ctx_get(L)->gen;
    if (g == NULL || tk_lua_gen_id(g) == 0) /* 0: still loading, not yet current */
        return 0;
    lua_createtable(L, 0, 2);
    set_int(L, "id", tk_lua_gen_id(g));
    set_str(L, "digest", tk_lua_gen_digest(g));
    return 1;
}

static int l_runtime_request_id(lua_State *L)
{
    const char *rid = tk_lua_ctx_get(L)->request_id;
    if (rid)
        lua_pushstring(L, rid);
    else
        lua_pushnil(L);
    return 1;
}

static int l_runtime_uptime(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)(time(NULL) - started_at));
    return 1;
}

/* runtime.status(): the generation serving HTTP and the last refused reload
 * (obs/status.h), for taskapi status. Times are epoch milliseconds. */
static int l_runtime_status(lua_State *L)
{
    tk_status st;
    tk_status_get(&st);
    lua_createtable(L, 0, 10);
    set_int(L, "generation", st.generation);
    set_int(L, "loaded_at_ms", st.loaded_at_ms);
    set_str(L, "digest", st.digest);
    set_int(L, "files", st.files);
    set_int(L, "routes", st.routes);
    set_str(L, "plugins", st.plugins);
    set_int(L, "reload_failures", st.reload_failures);
    if (st.last_error[0]) {
        set_str(L, "last_error", st.last_error);
        set_int(L, "last_error_at_ms", st.last_error_at_ms);
    }
    set_int(L, "pid", (lua_Integer)getpid());
    return 1;
}

/* runtime.shutting_down(): true once SIGTERM started the drain. */
static int l_runtime_shutting_down(lua_State *L)
{
    lua_pushboolean(L, tk_shutting_down());
    return 1;
}

static int l_runtime_now_ms(lua_State *L)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushinteger(L, (lua_Integer)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    return 1;
}

/* Publishes an event (its data already JSON-encoded) on the realtime bus.
 * Returns true, or nil, err when it could not be queued (logged). */
static int l_runtime_emit(lua_State *L)
{
    const char *room = luaL_checkstring(L, 1);
    const char *event = luaL_checkstring(L, 2);
    size_t len;
    const char *json = luaL_checklstring(L, 3, &len);
    luaL_argcheck(L, tk_event_name_ok(room, 0), 1, "expected a room name");
    luaL_argcheck(L, tk_event_name_ok(event, 0), 2, "expected an event name");
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    tk_log(TK_LOG_DEBUG, ctx->request_id, "event %s to %s (%zu bytes)", event, room, len);
    tk_event m = {.kind = TK_EVENT_EMIT, .room = room, .arg = event, .data = json, .data_len = len};
    int rc = tk_bus_publish(&m);
    if (rc != TK_OK) {
        tk_log(TK_LOG_WARN, ctx->request_id, "event %s to %s not delivered: %s", event, room,
               tk_strerror(rc));
        luaL_pushfail(L);
        lua_pushstring(L, tk_strerror(rc));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* runtime.fenced(fn, ...) -> true, ... | false, err
 * Calls fn(...) like pcall, with a share of the request's instruction budget
 * (tk_lua_fenced_pcall): a call that spends it fails alone and the request
 * keeps the rest. lib.plugins runs every hook this way. */
static int l_runtime_fenced(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 1;
    int st = tk_lua_fenced_pcall(L, nargs, LUA_MULTRET); /* -fn -args +results|err */
    lua_pushboolean(L, st == LUA_OK);                    /* +1 ok */
    lua_insert(L, 1);                                    /* ok first */
    return lua_gettop(L);
}

/* The raw plugin settings: PLUGINS (read at start-up) and the text of the
 * PLUGINS_CONFIG file as this VM's generation read it (the snapshot reads
 * it once per generation, so a reload sees a changed file and every VM of
 * one generation the same text; config_error says why it could not be
 * read). scripts/lib/plugins.lua parses and checks them. */
static int l_runtime_plugin_settings(lua_State *L)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    const tk_config *c = ctx->cfg;
    lua_createtable(L, 0, 5);
    set_str(L, "list", c->plugins);
    if (c->plugins_config_path != NULL) {
        char err[600];
        size_t len = 0;
        const char *text =
            tk_snapshot_settings(ctx->snapshot, c->plugins_config_path, &len, err, sizeof err);
        if (text != NULL) {
            lua_pushlstring(L, text, len);
            lua_setfield(L, -2, "config");
        } else {
            set_str(L, "config_error", err);
        }
    }
    set_str(L, "config_path", c->plugins_config_path);
    set_str(L, "dir", c->plugins_dir);
    return 1;
}

int tk_lua_open_runtime(lua_State *L)
{
    static const luaL_Reg fns[] = {{"config", l_runtime_config},
                                   {"where", l_runtime_where},
                                   {"list_dir", l_runtime_list_dir},
                                   {"list_dirs", l_runtime_list_dirs},
                                   {"worker", l_runtime_worker},
                                   {"generation", l_runtime_generation},
                                   {"request_id", l_runtime_request_id},
                                   {"uptime", l_runtime_uptime},
                                   {"shutting_down", l_runtime_shutting_down},
                                   {"status", l_runtime_status},
                                   {"now_ms", l_runtime_now_ms},
                                   {"emit", l_runtime_emit},
                                   {"traceback", l_runtime_traceback},
                                   {"plugin_settings", l_runtime_plugin_settings},
                                   {"fenced", l_runtime_fenced},
                                   {NULL, NULL}};
    if (started_at == 0)
        started_at = time(NULL);
    luaL_newlib(L, fns);
    luaL_getmetatable(L, TK_JSON_ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    lua_pushstring(L, TASKAPI_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
