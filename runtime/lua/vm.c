/* VM creation, the sandbox and the script loader. Scripts see only the
 * functions listed below and the runtime's own modules; they are loaded
 * as text (never bytecode) with chunk names that carry file:line. */
#include "lua/vm.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/bindings.h"
#include "lua/pattern.h"
#include "lua/profile.h"
#include "obs/log.h"
#include "obs/stages.h"

struct tk_lua_vm {
    lua_State *L;
    tk_lua_ctx ctx;
    size_t mem_used;
    size_t mem_limit;          /* LUA_MEMORY_LIMIT: a script that needs more is a bug */
    unsigned long long allocs; /* allocator calls that obtained memory (new or grown) */
    int app_ref;
    int dispatch_ref;
    int nroutes;
    tk_snapshot *owned_snapshot; /* the VM's reference to what it loads from */
};

static const char CTX_KEY = 'c';

tk_lua_ctx *tk_lua_ctx_get(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY); /* +1 ctx */
    tk_lua_ctx *ctx = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return ctx;
}

/* Allocator with a hard cap per VM, so a runaway script fails with "not
 * enough memory" instead of taking the process down. It also counts the
 * calls that obtain memory (a new block or a larger one), which the server
 * reports per request (X-Lua-Allocs under TASKAPI_DEBUG_QUERIES). */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    tk_lua_vm *vm = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        vm->mem_used -= old;
        free(ptr);
        return NULL;
    }
    if (nsize > old && vm->mem_used + (nsize - old) > vm->mem_limit)
        return NULL;
    vm->allocs += nsize > old; /* new blocks and growth; shrinking is not counted */
    void *np = realloc(ptr, nsize);
    if (np != NULL)
        vm->mem_used = vm->mem_used - old + nsize;
    return np;
}

/* ---- the loader ------------------------------------------------------- */

/* Loads file `rel` of the VM's snapshot as a text chunk named
 * "@<display path>". Pushes the function, or returns an error status with the
 * message pushed (like luaL_loadfile). */
static int load_script(lua_State *L, const char *rel)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    size_t len = 0;
    const char *src = tk_snapshot_get(ctx->snapshot, rel, &len);
    char display[4096];
    tk_snapshot_display(ctx->snapshot, rel, display, sizeof display);
    if (src == NULL) {
        lua_pushfstring(L, "cannot read %s: no such file", display); /* +1 msg */
        return LUA_ERRFILE;
    }
    lua_pushfstring(L, "@%s", display);                               /* +1 chunk name */
    int st = luaL_loadbufferx(L, src, len, lua_tostring(L, -1), "t"); /* +1 fn or msg */
    lua_remove(L, -2);                                                /* -1 chunk name */
    return st;
}

int tk_lua_check_syntax(const tk_snapshot *snap, void (*report)(const char *msg, void *ud),
                        void *ud)
{
    lua_State *L = luaL_newstate(); /* compiles only: no library, nothing runs */
    if (L == NULL)
        return -1;
    int failed = 0;
    for (int i = 0; i < tk_snapshot_count(snap); i++) {
        const char *rel = tk_snapshot_name(snap, i);
        size_t len = 0;
        const char *src = tk_snapshot_get(snap, rel, &len);
        char display[4096];
        tk_snapshot_display(snap, rel, display, sizeof display);
        lua_pushfstring(L, "@%s", display);                                      /* +1 chunk name */
        if (luaL_loadbufferx(L, src, len, lua_tostring(L, -1), "t") != LUA_OK) { /* +1 */
            report(lua_tostring(L, -1), ud);
            failed++;
        }
        lua_settop(L, 0);
    }
    lua_close(L);
    return failed;
}

static int module_name_ok(const char *name)
{
    if (*name == '\0' || *name == '.')
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || (c == '.' && p[1] != '.' && p[1] != '\0');
        if (!ok)
            return 0;
    }
    return 1;
}

/* require(name): the runtime's modules first, then SCRIPTS_DIR/<name>.lua
 * or SCRIPTS_DIR/<name>/init.lua. Upvalue 1: the loaded table. */
static int l_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_getfield(L, lua_upvalueindex(1), name); /* +1 cached */
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 1);
    lua_getfield(L, lua_upvalueindex(2), name); /* +1 preload fn */
    if (lua_isfunction(L, -1)) {
        lua_pushstring(L, name);
        lua_call(L, 1, 1); /* +1 module */
    } else {
        lua_pop(L, 1);
        if (!module_name_ok(name))
            return luaL_error(L, "module '%s' not found: bad module name", name);
        tk_lua_ctx *ctx = tk_lua_ctx_get(L);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (const char *p = name; *p; p++)
            luaL_addchar(&b, *p == '.' ? '/' : *p);
        luaL_pushresult(&b); /* +1 relative path */
        const char *rel = lua_tostring(L, -1);
        lua_pushfstring(L, "%s.lua", rel); /* +1 file */
        if (tk_snapshot_get(ctx->snapshot, lua_tostring(L, -1), NULL) == NULL) {
            lua_pop(L, 1);
            lua_pushfstring(L, "%s/init.lua", rel); /* +1 file */
            if (tk_snapshot_get(ctx->snapshot, lua_tostring(L, -1), NULL) == NULL)
                return luaL_error(L, "module '%s' not found in %s", name, ctx->cfg->scripts_dir);
        }
        if (load_script(L, lua_tostring(L, -1)) != LUA_OK) /* +1 fn or msg */
            return lua_error(L);
        lua_pushstring(L, name);
        lua_call(L, 1, 1); /* -fn +1 module */
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, lua_upvalueindex(1), name); /* loaded[name] = module */
    return 1;
}

/* load(chunk [, name [, mode [, env]]]) for text only: bytecode could break
 * out of the sandbox. */
static int l_load_text(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnone(L, 4);
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* ---- the sandbox ------------------------------------------------------- */

static const char *const base_allowed[] = {
    "assert",   "error",    "getmetatable", "ipairs", "next",      "pairs",    "pcall",
    "print",    "rawequal", "rawget",       "rawlen", "rawset",    "select",   "setmetatable",
    "tonumber", "tostring", "type",         "xpcall", "_G",        "_VERSION", "collectgarbage",
    "table",    "string",   "math",         "utf8",   "coroutine", "os",       NULL};

static const char *const os_allowed[] = {"time", "clock", "date", "difftime", NULL};

static int in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

/* Removes from table at `idx` every string key not in `allowed`. */
static void keep_only(lua_State *L, int idx, const char *const *allowed)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L); /* +1 doomed keys */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING && !in_list(allowed, lua_tostring(L, -1))) {
            lua_pushvalue(L, -1);
            lua_rawseti(L, -3, (lua_Integer)lua_rawlen(L, -3) + 1);
        }
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_pushnil(L);
        lua_rawset(L, idx);
    }
    lua_pop(L, 1); /* -1 doomed keys */
}

static int l_print(lua_State *L)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    tk_log(TK_LOG_INFO, ctx->request_id, "print: %s", lua_tostring(L, -1));
    return 0;
}

/* ---- calls that catch errors, and the spent budget -------------------------- */

#define BUDGET_MESSAGE "instruction budget exceeded (LUA_INSTRUCTION_BUDGET)"

static int budget_spent(lua_State *L)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    return ctx != NULL && ctx->budget < 0;
}

/* Continuation of pcall and xpcall (also reached directly when nothing
 * yielded). `base` is how many stack slots precede the results. Once the
 * budget is spent no protected call returns: the error travels on up to the
 * dispatcher, so `while true do pcall(loop) end` cannot outlive it. */
static int finish_pcall(lua_State *L, int status, lua_KContext base)
{
    int failed = status != LUA_OK && status != LUA_YIELD;
    if (budget_spent(L)) {
        /* rethrow a budget error as raised (it says which budget: loop or
         * pattern); anything else becomes the budget error */
        const char *msg = failed && lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (msg != NULL && strstr(msg, "instruction budget exceeded") != NULL)
            return lua_error(L);
        return luaL_error(L, BUDGET_MESSAGE);
    }
    if (failed) {
        lua_pushboolean(L, 0); /* +1 false */
        lua_insert(L, -2);     /* false, error */
        return 2;
    }
    return lua_gettop(L) - (int)base;
}

/* pcall(f, ...): the stock contract, but see finish_pcall. */
static int l_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1); /* +1 true: the first result when f returns */
    lua_insert(L, 1);      /* true, f, args... */
    int st = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, st, 0);
}

/* The message handler xpcall installs around the script's (upvalue 1). The
 * budget error is raised inside the count hook, where Lua runs the handler
 * with hooks off: the script's handler would run unbounded there, so once
 * the budget is spent the error passes through untouched. */
static int l_xpcall_handler(lua_State *L)
{
    if (budget_spent(L))
        return 1;                          /* the error object, as it came */
    lua_pushvalue(L, lua_upvalueindex(1)); /* +1 the script's handler */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* xpcall(f, handler, ...): the stock contract, but see finish_pcall and
 * l_xpcall_handler. */
static int l_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);                      /* +1 the script's handler */
    lua_pushcclosure(L, l_xpcall_handler, 1); /* -1 +1 */
    lua_replace(L, 2);                        /* -1 */
    lua_pushboolean(L, 1);                    /* +1 true */
    lua_pushvalue(L, 1);                      /* +1 f */
    lua_rotate(L, 3, 2);                      /* f, handler, true, f, args... */
    int st = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, st, 2);
}

/* Wraps the function in upvalue 1 (coroutine.resume, coroutine.close: they
 * return an error instead of raising it) so that a spent budget raises. */
static int l_budget_guard(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* +1 the wrapped function */
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    if (budget_spent(L))
        return luaL_error(L, BUDGET_MESSAGE);
    return lua_gettop(L);
}

static void guard_field(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, name);             /* +1 stock function */
    lua_pushcclosure(L, l_budget_guard, 1); /* -1 +1 guarded */
    lua_setfield(L, idx, name);             /* -1 */
}

/* setmetatable(t, mt) without finalizers: Lua runs __gc with the count hook
 * off, so a finalizer could loop outside the instruction budget (and at a
 * moment no request owns). Upvalue 1: the stock setmetatable. */
static int l_setmetatable(lua_State *L)
{
    lua_pushliteral(L, "__gc");
    if (lua_istable(L, 2) && lua_rawget(L, 2) != LUA_TNIL) /* -1 +1 (dropped below) */
        return luaL_error(L, "setmetatable: __gc metamethods are not allowed in scripts");
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1)); /* +1 stock setmetatable */
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

static void open_sandbox(lua_State *L)
{
    luaL_requiref(L, "_G", luaopen_base, 1);
    luaL_requiref(L, "table", luaopen_table, 1);
    luaL_requiref(L, "string", luaopen_string, 1);
    luaL_requiref(L, "math", luaopen_math, 1);
    luaL_requiref(L, "utf8", luaopen_utf8, 1);
    luaL_requiref(L, "coroutine", luaopen_coroutine, 1);
    luaL_requiref(L, "os", luaopen_os, 1);
    lua_pop(L, 7);

    lua_pushglobaltable(L); /* +1 _G */
    keep_only(L, -1, base_allowed);
    lua_pushcfunction(L, l_load_text);
    lua_setfield(L, -2, "load");
    lua_pushcfunction(L, l_print);
    lua_setfield(L, -2, "print");
    lua_pushcfunction(L, l_pcall);
    lua_setfield(L, -2, "pcall");
    lua_pushcfunction(L, l_xpcall);
    lua_setfield(L, -2, "xpcall");
    lua_getfield(L, -1, "setmetatable");    /* +1 stock */
    lua_pushcclosure(L, l_setmetatable, 1); /* -1 +1 */
    lua_setfield(L, -2, "setmetatable");
    lua_getfield(L, -1, "coroutine"); /* +1 coroutine */
    guard_field(L, -1, "resume");
    guard_field(L, -1, "close");
    lua_pop(L, 1);
    lua_getfield(L, -1, "os"); /* +1 os */
    keep_only(L, -1, os_allowed);
    lua_pop(L, 1);
    lua_getfield(L, -1, "string"); /* +1 string */
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    tk_lua_pattern_install(L, -1); /* also s:find(...): the metatable's __index is this table */
    lua_pop(L, 1);

    /* require, with its loaded and preload tables. */
    lua_newtable(L); /* +1 loaded */
    lua_newtable(L); /* +1 preload */
    tk_lua_preload_bindings(L, lua_gettop(L));
    lua_pushcfunction(L, luaopen_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pushcclosure(L, l_require, 2); /* -2 +1 require */
    lua_setfield(L, -2, "require");
    lua_pop(L, 1); /* -1 _G */
}

/* ---- the instruction budget ------------------------------------------------ */

#define HOOK_EVERY 1000

/* Runs every HOOK_EVERY instructions: a handler that loops forever runs out
 * of budget and fails with an error the dispatcher answers with a 500,
 * instead of holding its worker. Once exhausted it keeps failing, so a
 * pcall inside the script cannot swallow it for long. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    if (--ctx->budget < 0)
        luaL_error(L, "instruction budget exceeded (LUA_INSTRUCTION_BUDGET)");
}

/* With TASKAPI_LUA_PROFILE the same hook also takes the profiler's samples
 * (lua/profile.h). It runs every PROFILE_EVERY instructions, so a sample
 * lands within that many instructions of its timer tick, and charges the
 * budget on every (HOOK_EVERY / PROFILE_EVERY)th count event: the same
 * budget. It also runs when a function is called and when it returns: a
 * tick taken inside a C function (a query, cjson) is sampled as that
 * function returns, with the C function on top and its caller's line under
 * it, and one taken in C before Lua (re)starts (building the request table,
 * the BEGIN of db.tx) as the first Lua function is entered, instead of
 * being charged to whatever Lua line happens to run next. */
#define PROFILE_EVERY 100

static __thread int budget_phase;

static void profiled_hook(lua_State *L, lua_Debug *ar)
{
    if (tk_lua_profile_due())
        tk_lua_profile_sample(L);
    if (ar->event != LUA_HOOKCOUNT)
        return;
    if (++budget_phase < HOOK_EVERY / PROFILE_EVERY)
        return;
    budget_phase = 0;
    budget_hook(L, ar);
}

int tk_lua_fenced_pcall(lua_State *L, int nargs, int nresults)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    long long outer = ctx->budget;
    if (outer <= 0) /* already spent: the request's error, not the call's */
        return luaL_error(L, BUDGET_MESSAGE);
    long long share = outer / 2, tenth = ctx->cfg->lua_instruction_budget / HOOK_EVERY / 10;
    if (share > tenth)
        share = tenth;
    if (share < 1)
        share = 1;
    ctx->budget = share;
    int st = lua_pcall(L, nargs, nresults, 0);
    long long left = ctx->budget > 0 ? ctx->budget : 0;
    ctx->budget = outer - (share - left);
    return st;
}

void tk_lua_vm_begin_request(tk_lua_vm *vm)
{
    vm->ctx.budget = vm->ctx.cfg->lua_instruction_budget / HOOK_EVERY;
    if (tk_lua_profile_enabled())
        tk_lua_profile_thread_begin();
}

/* ---- the app ----------------------------------------------------------- */

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int tk_lua_vm_new(const tk_config *cfg, tk_db_pool *pool, int worker_id, tk_lua_vm **out, char *err,
                  size_t errlen)
{
    tk_snapshot *snap = NULL;
    int rc = tk_snapshot_load(cfg->scripts_dir, cfg->plugins_dir, &snap, err, errlen);
    if (rc != TK_OK)
        return rc;
    rc = tk_lua_vm_new_from(cfg, pool, worker_id, snap, out, err, errlen);
    tk_snapshot_free(snap); /* the VM holds its own reference */
    return rc;
}

int tk_lua_vm_new_from(const tk_config *cfg, tk_db_pool *pool, int worker_id, tk_snapshot *snap,
                       tk_lua_vm **out, char *err, size_t errlen)
{
    tk_lua_vm *vm = calloc(1, sizeof *vm);
    if (vm == NULL)
        return TK_ENOMEM;
    vm->owned_snapshot = tk_snapshot_ref(snap);
    vm->ctx.snapshot = snap;
    vm->ctx.worker_id = worker_id;
    vm->mem_limit = cfg->lua_memory_limit ? cfg->lua_memory_limit : 256u * 1024 * 1024;
    vm->ctx.cfg = cfg;
    vm->ctx.pool = pool;
    vm->ctx.after_commit_ref = LUA_NOREF;
    vm->app_ref = vm->dispatch_ref = LUA_NOREF;
    vm->L = lua_newstate(vm_alloc, vm);
    if (vm->L == NULL) {
        tk_lua_vm_free(vm);
        return TK_ENOMEM;
    }
    lua_State *L = vm->L;
    lua_pushlightuserdata(L, &vm->ctx);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
    luaL_newmetatable(L, TK_JSON_ARRAY_MT); /* +1 */
    lua_pushstring(L, TK_JSON_ARRAY_MT);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    open_sandbox(L);

    int rc = TK_ELUA;
    /* Loading gets ten request budgets: enough for any sane app.lua. */
    vm->ctx.budget = cfg->lua_instruction_budget / HOOK_EVERY * 10;
    if (tk_lua_profile_enabled())
        lua_sethook(L, profiled_hook, LUA_MASKCOUNT | LUA_MASKCALL | LUA_MASKRET, PROFILE_EVERY);
    else
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_pushcfunction(L, traceback); /* +1 handler */
    const char *path = "app.lua";
    if (load_script(L, path) != LUA_OK || lua_pcall(L, 0, 1, -2) != LUA_OK) {
        tk_errf(err, errlen, "%s", lua_tostring(L, -1));
        goto fail;
    }
    if (!lua_istable(L, -1)) {
        tk_errf(err, errlen, "%s/%s: must return the app table (got %s)", cfg->scripts_dir, path,
                luaL_typename(L, -1));
        goto fail;
    }
    lua_getfield(L, -1, "dispatch"); /* +1 */
    if (!lua_isfunction(L, -1)) {
        tk_errf(err, errlen, "%s/%s: the app has no dispatch function", cfg->scripts_dir, path);
        goto fail;
    }
    vm->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* -1 */
    lua_getfield(L, -1, "routes");                     /* +1 */
    if (!lua_istable(L, -1)) {
        tk_errf(err, errlen, "%s/%s: the app has no routes table", cfg->scripts_dir, path);
        goto fail;
    }
    vm->nroutes = (int)lua_rawlen(L, -1);
    lua_pop(L, 1);
    vm->app_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* -1 app */
    lua_settop(L, 0);
    tk_stages_instrument(L); /* TASKAPI_TRACE_STAGES: time JSON encoding */
    /* Generational GC: a request's tables and strings die young, while
     * the loaded scripts and caches live as long as the VM; minor
     * collections skip the old objects an incremental cycle re-marks
     * (issue #9, bench/README.md "Session 2026-12-06"). */
    lua_gc(L, LUA_GCGEN, 0, 0);
    *out = vm;
    return TK_OK;
fail:
    tk_lua_vm_free(vm);
    return rc;
}

void tk_lua_vm_free(tk_lua_vm *vm)
{
    if (vm == NULL)
        return;
    if (vm->L)
        lua_close(vm->L);
    tk_snapshot_free(vm->owned_snapshot);
    free(vm);
}

lua_State *tk_lua_vm_state(tk_lua_vm *vm)
{
    return vm->L;
}

tk_lua_ctx *tk_lua_vm_ctx(tk_lua_vm *vm)
{
    return &vm->ctx;
}

unsigned long long tk_lua_vm_allocs(const tk_lua_vm *vm)
{
    return vm->allocs;
}

int tk_lua_vm_route_count(tk_lua_vm *vm)
{
    return vm->nroutes;
}

void tk_lua_vm_push_dispatch(tk_lua_vm *vm)
{
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, vm->dispatch_ref);
}

void tk_lua_vm_push_app(tk_lua_vm *vm)
{
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, vm->app_ref);
}

/* lib.plugins.list() as "name version, ...". Runs on the loading thread. */
static int plugin_list(lua_State *L)
{
    char *buf = lua_touserdata(L, 1);
    size_t cap = (size_t)lua_tointeger(L, 2), n = 0;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lib.plugins");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "list");
    lua_call(L, 0, 1);
    lua_Integer count = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= count && n < cap; i++) {
        lua_geti(L, -1, i);
        lua_getfield(L, -1, "name");
        lua_getfield(L, -2, "version");
        const char *name = lua_tostring(L, -2), *version = lua_tostring(L, -1);
        int w = snprintf(buf + n, cap - n, "%s%s %s", i > 1 ? ", " : "", name ? name : "?",
                         version ? version : "?");
        n += w > 0 ? (size_t)w : 0;
        lua_pop(L, 3);
    }
    return 0;
}

void tk_lua_vm_plugin_list(tk_lua_vm *vm, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    lua_pushcfunction(vm->L, plugin_list);
    lua_pushlightuserdata(vm->L, buf);
    lua_pushinteger(vm->L, (lua_Integer)len);
    if (lua_pcall(vm->L, 2, 0, 0) != LUA_OK) {
        snprintf(buf, len, "(cannot list: %s)", lua_tostring(vm->L, -1));
        lua_pop(vm->L, 1);
    }
    buf[len - 1] = '\0';
}
