/* The sandbox's pattern functions (runtime/lua/pattern.c) and the
 * instruction budget (runtime/lua/vm.c):
 *   - semantics: tests/c/lua/pattern_compare.lua compares find, match,
 *     gmatch and gsub with the stock string library over many patterns and
 *     subjects (captures, position captures, %b, %f, anchors, back
 *     references, gsub with string, table and function replacements,
 *     malformed patterns and their messages);
 *   - bounds: in a real VM an exponential pattern, through string.find and
 *     through s:find (the string metatable), fails with the budget error,
 *     and so does a loop of pcalls around an endless loop, a loop of
 *     coroutine.resume, and an xpcall whose handler swallows; the next
 *     request has a fresh budget; __gc metatables are refused. */
#include "config.h"
#include "lua/pattern.h"
#include "lua/vm.h"
#include "test_util.h"

#include <lauxlib.h>
#include <lualib.h>
#include <unistd.h>

/* ---- semantics against the stock library ---------------------------------- */

TEST(same_results_as_the_stock_library)
{
    const char *src = getenv("TK_SOURCE_DIR");
    if (src == NULL)
        TEST_SKIP("TK_SOURCE_DIR is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/c/lua/pattern_compare.lua", src);
    lua_State *L = luaL_newstate();
    ASSERT_NOT_NULL(L);
    luaL_openlibs(L);
    lua_newtable(L);
    tk_lua_pattern_install(L, -1);
    lua_setglobal(L, "P");
    int st = luaL_dofile(L, path);
    if (st != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_Integer n = lua_tointeger(L, -1);
    printf("# %lld comparisons, all equal\n", (long long)n);
    lua_close(L);
    ASSERT_GT_INT(n, 50000);
    return 0;
}

/* ---- bounds in a real VM --------------------------------------------------- */

static char scripts_dir[64];
static tk_config cfg;
static tk_lua_vm *vm;
static lua_State *L;

static int vm_setup(void)
{
    char tmpl[] = "/tmp/tk_pattern_XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(scripts_dir, sizeof scripts_dir, "%s", tmpl);
    char path[128];
    snprintf(path, sizeof path, "%s/app.lua", scripts_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs("return {routes = {}, dispatch = function() end}\n", f);
    fclose(f);
    memset(&cfg, 0, sizeof cfg);
    cfg.scripts_dir = scripts_dir;
    cfg.lua_instruction_budget = 2000000; /* 2M: a few ms each */
    char err[512] = "";
    if (tk_lua_vm_new(&cfg, NULL, 1, &vm, err, sizeof err) != TK_OK) {
        fprintf(stderr, "tk_lua_vm_new: %s\n", err);
        return -1;
    }
    L = tk_lua_vm_state(vm);
    return 0;
}

static void vm_teardown(void)
{
    tk_lua_vm_free(vm);
    char path[128];
    snprintf(path, sizeof path, "%s/app.lua", scripts_dir);
    unlink(path);
    rmdir(scripts_dir);
}

/* Runs `code` as one request (inside the sandbox's globals, under the budget
 * hook); returns the Lua status and copies the error text into err. */
static int run(const char *code, char *err, size_t errlen)
{
    tk_lua_vm_begin_request(vm);
    err[0] = '\0';
    int st = luaL_loadstring(L, code);
    if (st == LUA_OK)
        st = lua_pcall(L, 0, 0, 0);
    if (st != LUA_OK)
        snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_settop(L, 0);
    return st;
}

#define ASSERT_BUDGET_ERROR(code)                                                                  \
    do {                                                                                           \
        char e_[1024];                                                                             \
        ASSERT_NE_INT(run(code, e_, sizeof e_), LUA_OK);                                           \
        if (strstr(e_, "instruction budget exceeded") == NULL)                                     \
            TEST_FAIL_("%s: expected the budget error, got \"%s\"", code, e_);                     \
    } while (0)

#define ASSERT_RUNS(code)                                                                          \
    do {                                                                                           \
        char e_[1024];                                                                             \
        if (run(code, e_, sizeof e_) != LUA_OK)                                                    \
            TEST_FAIL_("%s: %s", code, e_);                                                        \
    } while (0)

TEST(exponential_patterns_hit_the_budget)
{
    ASSERT_BUDGET_ERROR("local s = ('a'):rep(30)\n"
                        "string.find(s, ('a?'):rep(30) .. ('a'):rep(30))");
    ASSERT_BUDGET_ERROR("local s = ('a'):rep(30)\n"
                        "s:match(('a?'):rep(30) .. ('a'):rep(30))");
    ASSERT_BUDGET_ERROR("local s = ('a'):rep(30)\n"
                        "s:gsub(('a?'):rep(30) .. ('a'):rep(30), 'x')");
    ASSERT_BUDGET_ERROR("local s = ('a'):rep(30)\n"
                        "for _ in s:gmatch(('a?'):rep(30) .. ('a'):rep(30)) do end");
    ASSERT_BUDGET_ERROR("local s = ('a'):rep(5000)\n"
                        "s:find(('.-'):rep(8) .. 'b')");
    /* swallowing it with pcall does not help either, and the error still
     * names the pattern */
    char e[1024];
    ASSERT_NE_INT(run("local s = ('a'):rep(30)\n"
                      "while true do pcall(string.find, s, ('a?'):rep(30) .. ('a'):rep(30)) end",
                      e, sizeof e),
                  LUA_OK);
    if (strstr(e, "instruction budget exceeded in a string pattern") == NULL)
        TEST_FAIL_("got \"%s\"", e);
    /* the next request has its budget back, and patterns work */
    ASSERT_RUNS("assert(('key=value'):match('(%w+)=(%w+)') == 'key')\n"
                "assert(select(2, ('a,b,c'):gsub(',', ';')) == 2)");
    return 0;
}

TEST(protected_calls_cannot_outlive_the_budget)
{
    ASSERT_BUDGET_ERROR("while true do end");
    ASSERT_BUDGET_ERROR("while true do pcall(function() while true do end end) end");
    ASSERT_BUDGET_ERROR("while true do xpcall(function() while true do end end, function() end) "
                        "end");
    ASSERT_BUDGET_ERROR("while true do xpcall(function() while true do end end,\n"
                        "  function() while true do end end) end");
    ASSERT_BUDGET_ERROR("while true do\n"
                        "  local co = coroutine.create(function() while true do end end)\n"
                        "  coroutine.resume(co)\n"
                        "end");
    ASSERT_BUDGET_ERROR("while true do\n"
                        "  local f = coroutine.wrap(function() while true do end end)\n"
                        "  pcall(f)\n"
                        "end");
    ASSERT_BUDGET_ERROR("while true do\n"
                        "  pcall(pcall, pcall, function() while true do end end)\n"
                        "end");
    ASSERT_BUDGET_ERROR("while true do pcall(string.rep, 'x', -1) end");
    /* ordinary protected calls keep their contract */
    ASSERT_RUNS(
        "local ok, e = pcall(error, 'boom', 0)\n"
        "assert(ok == false and e == 'boom')\n"
        "assert(select('#', pcall(function() return 1, 2, 3 end)) == 4)\n"
        "local ok2, e2 = xpcall(function() error({code = 7}) end, function(x) return x.code end)\n"
        "assert(ok2 == false and e2 == 7)\n"
        "assert(select(2, xpcall(function(a, b) return a + b end, print, 2, 3)) == 5)\n"
        "local co = coroutine.create(function(a) local b = coroutine.yield(a + 1); error(b, 0) "
        "end)\n"
        "local r1, v1 = coroutine.resume(co, 1)\n"
        "assert(r1 and v1 == 2)\n"
        "local r2, v2 = coroutine.resume(co, 'bad')\n"
        "assert(r2 == false and v2 == 'bad')\n"
        "local co2 = coroutine.wrap(function() pcall(function() coroutine.yield(5) end) return 6 "
        "end)\n"
        "assert(co2() == 5 and co2() == 6)\n");
    return 0;
}

TEST(finalizers_are_refused)
{
    char e[1024];
    ASSERT_NE_INT(run("setmetatable({}, {__gc = function() while true do end end})", e, sizeof e),
                  LUA_OK);
    if (strstr(e, "__gc metamethods are not allowed") == NULL)
        TEST_FAIL_("got \"%s\"", e);
    ASSERT_RUNS("local t = setmetatable({}, {__index = {x = 1}})\n"
                "assert(t.x == 1)\n"
                "assert(getmetatable(setmetatable({}, nil)) == nil)");
    return 0;
}

int main(void)
{
    static const tk_test_entry tests[] = {
        TEST_ENTRY(same_results_as_the_stock_library),
        TEST_ENTRY(exponential_patterns_hit_the_budget),
        TEST_ENTRY(protected_calls_cannot_outlive_the_budget),
        TEST_ENTRY(finalizers_are_refused),
    };
    if (vm_setup() != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    int rc = tk_test_run_all(tests, TK_ARRAY_LEN(tests));
    vm_teardown();
    return rc;
}
