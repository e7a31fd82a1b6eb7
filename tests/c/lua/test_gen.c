/* Script generations (runtime/lua/gen.c), on a small app.lua written here:
 *   - the route table is plain data read once (auth modes, rate buckets, a
 *     constant answer only for an unlimited route, schema summaries);
 *   - every consumer's VMs come from the generation's one snapshot and know
 *     their generation; a consumer's compile sees the final routes, and its
 *     error refuses the whole generation;
 *   - the host swaps one current pointer: numbers count up, a generation
 *     held by a request outlives the swap, a failed load changes nothing. */
#include "config.h"
#include "lua/gen.h"
#include "lua/vm.h"
#include "test_util.h"

#include <unistd.h>

static char dir[64];
static tk_config cfg;

static const char APP[] =
    "local rt = require 'tk.runtime'\n"
    "return {routes = {\n"
    "  {method = 'GET', path = '/live', auth = 'none', where = 'app.lua:3',\n"
    "   constant_status = 200, constant_body = '{\"ok\":true}'},\n"
    "  {method = 'POST', path = '/items', where = 'app.lua:5',\n"
    "   body = {type = 'object', required = {'name'},\n"
    "           properties = {name = {type = 'string'}, n = {type = 'integer'}}},\n"
    "   rate = {{bucket = 'write', limit = 5, window = 60}, {bucket = 'ip', per = 'ip',\n"
    "            limit = 100, window = 1}, {bucket = 'bad', limit = 0, window = 1}}},\n"
    "  {method = 'GET', path = '/items/:id', auth = 'optional', where = 'app.lua:10',\n"
    "   rate = {{bucket = 'read', limit = 9, window = 60}},\n"
    "   constant_status = 200, constant_body = '{}'},\n"
    "}, dispatch = function() return 200, tostring(rt.worker()) end}\n";

static int write_app(const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/app.lua", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int compiled;

/* A consumer's compile: records the route count, refuses a route "/refuse". */
static int compile(void *ud, const tk_lua_gen *g, void **data, char *err, size_t errlen)
{
    (void)ud;
    compiled = tk_lua_gen_route_count(g);
    for (int id = 1; id <= compiled; id++)
        if (strcmp(tk_lua_gen_route(g, id)->pattern, "/refuse") == 0) {
            tk_errf(err, errlen, "%s: refused", tk_lua_gen_route(g, id)->where);
            return TK_EINVAL;
        }
    *data = malloc(1);
    return *data ? TK_OK : TK_ENOMEM;
}

static void drop(void *data)
{
    free(data);
}

static const tk_lua_consumer consumers[] = {
    {.name = "http", .nvms = 3, .worker_id = 1, .compile = compile, .drop = drop},
    {.name = "realtime", .nvms = 2, .worker_id = -1},
};

TEST(the_route_table_is_plain_data)
{
    tk_lua_gen *g = NULL;
    char err[512] = "";
    ASSERT_EQ_INT(tk_lua_gen_new(&cfg, NULL, consumers, 0, &g, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(tk_lua_gen_route_count(g), 3);
    const tk_lua_route *live = tk_lua_gen_route(g, 1), *post = tk_lua_gen_route(g, 2),
                       *get = tk_lua_gen_route(g, 3);
    ASSERT_NULL(tk_lua_gen_route(g, 4));
    ASSERT_EQ_INT(live->id, 1);
    ASSERT_STR_EQ(live->method, "GET");
    ASSERT_STR_EQ(live->pattern, "/live");
    ASSERT_EQ_INT(live->auth, TK_LUA_AUTH_NONE);
    ASSERT_STR_EQ(live->where, "app.lua:3");
    ASSERT_EQ_INT((int)live->constant_status, 200);
    ASSERT_STR_EQ(live->constant_body, "{\"ok\":true}");
    ASSERT_EQ_INT((int)live->constant_len, 11);
    ASSERT_EQ_INT(post->auth, TK_LUA_AUTH_REQUIRED);
    ASSERT_EQ_INT(post->nrates, 2); /* the malformed bucket is skipped */
    ASSERT_STR_EQ(post->rates[0].bucket, "write");
    ASSERT_EQ_INT(post->rates[0].per_ip, 0);
    ASSERT_EQ_INT(post->rates[1].per_ip, 1);
    ASSERT_EQ_INT(post->rates[1].window, 1);
    ASSERT_STR_EQ(post->body_schema, "{n:integer, name*:string}");
    ASSERT_NULL(post->query_schema);
    ASSERT_NULL(post->constant_body);
    ASSERT_EQ_INT(get->auth, TK_LUA_AUTH_OPTIONAL);
    ASSERT_NULL(get->constant_body); /* limited: every request must be counted */
    tk_lua_gen_release(g);
    return 0;
}

TEST(every_consumer_loads_from_the_one_snapshot)
{
    tk_lua_gen *g = NULL;
    char err[512] = "";
    compiled = -1;
    ASSERT_EQ_INT(tk_lua_gen_new(&cfg, NULL, consumers, 2, &g, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(compiled, 3);
    ASSERT_NOT_NULL(tk_lua_gen_data(g, 0));
    ASSERT_NULL(tk_lua_gen_data(g, 1));
    ASSERT_NULL(tk_lua_gen_vm(g, 0, 3));
    ASSERT_NULL(tk_lua_gen_vm(g, 2, 0));
    const int ids[2][3] = {{1, 2, 3}, {-1, -1, 0}};
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < consumers[c].nvms; i++) {
            tk_lua_vm *vm = tk_lua_gen_vm(g, c, i);
            ASSERT_NOT_NULL(vm);
            tk_lua_ctx *ctx = tk_lua_vm_ctx(vm);
            ASSERT(ctx->snapshot == tk_lua_gen_snapshot(g));
            ASSERT(ctx->gen == g);
            ASSERT_EQ_INT(ctx->worker_id, ids[c][i]);
        }
    ASSERT_EQ_INT((int)strlen(tk_lua_gen_digest(g)), 64);
    tk_lua_gen_release(g);
    return 0;
}

TEST(a_consumer_error_refuses_the_generation)
{
    ASSERT_EQ_INT(write_app("return {routes = {{method = 'GET', path = '/refuse', where = 'x:1'}},"
                            " dispatch = function() end}\n"),
                  0);
    tk_lua_gen *g = NULL;
    char err[512] = "";
    ASSERT_EQ_INT(tk_lua_gen_new(&cfg, NULL, consumers, 2, &g, err, sizeof err), TK_EINVAL);
    ASSERT_NULL(g);
    ASSERT_STR_EQ(err, "x:1: refused");
    ASSERT_EQ_INT(write_app("return {routes = {{method = 'GET'}}, dispatch = function() end}\n"),
                  0);
    ASSERT_EQ_INT(tk_lua_gen_new(&cfg, NULL, consumers, 2, &g, err, sizeof err), TK_EINVAL);
    ASSERT(strstr(err, "route 1 needs a method and a path") != NULL);
    ASSERT_EQ_INT(write_app(APP), 0);
    return 0;
}

TEST(the_host_swaps_one_current_generation)
{
    tk_lua_host *h = NULL;
    char err[512] = "";
    ASSERT_EQ_INT(tk_lua_host_new(&cfg, NULL, &h), TK_OK);
    ASSERT_NULL(tk_lua_host_acquire(h));
    ASSERT_EQ_INT(tk_lua_host_add(h, &consumers[0]), 0);
    ASSERT_EQ_INT(tk_lua_host_add(h, &consumers[1]), 1);
    ASSERT_EQ_INT(tk_lua_host_load(h, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(tk_lua_host_add(h, &consumers[1]), TK_EINVAL); /* after the first load */
    tk_lua_gen *first = tk_lua_host_acquire(h);
    ASSERT_EQ_INT(tk_lua_gen_id(first), 1);
    ASSERT_EQ_INT(tk_lua_host_load(h, err, sizeof err), TK_OK);
    tk_lua_gen *second = tk_lua_host_acquire(h);
    ASSERT_EQ_INT(tk_lua_gen_id(second), 2);
    /* the first stays whole while held: a request that matched on it */
    ASSERT_EQ_INT(tk_lua_gen_route_count(first), 3);
    ASSERT_NOT_NULL(tk_lua_gen_vm(first, 1, 1));
    tk_lua_gen_release(first);
    ASSERT_EQ_INT(write_app("return {routes = {}, dispatch = 1}\n"), 0);
    ASSERT_NE_INT(tk_lua_host_load(h, err, sizeof err), TK_OK);
    ASSERT(strstr(err, "dispatch") != NULL);
    tk_lua_gen *still = tk_lua_host_acquire(h);
    ASSERT(still == second);
    long long reloads = 0, failures = 0;
    int gen = 0;
    tk_lua_host_stats(h, &reloads, &failures, &gen);
    ASSERT_EQ_INT((int)reloads, 1);
    ASSERT_EQ_INT((int)failures, 1);
    ASSERT_EQ_INT(gen, 2);
    tk_lua_gen_release(still);
    tk_lua_gen_release(second);
    tk_lua_host_free(h);
    ASSERT_EQ_INT(write_app(APP), 0);
    return 0;
}

int main(void)
{
    static const tk_test_entry tests[] = {
        TEST_ENTRY(the_route_table_is_plain_data),
        TEST_ENTRY(every_consumer_loads_from_the_one_snapshot),
        TEST_ENTRY(a_consumer_error_refuses_the_generation),
        TEST_ENTRY(the_host_swaps_one_current_generation),
    };
    char tmpl[] = "/tmp/tk_gen_XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        return 1;
    snprintf(dir, sizeof dir, "%s", tmpl);
    memset(&cfg, 0, sizeof cfg);
    cfg.scripts_dir = dir;
    cfg.lua_instruction_budget = 2000000;
    if (write_app(APP) != 0)
        return 1;
    int rc = tk_test_run_all(tests, TK_ARRAY_LEN(tests));
    char path[128];
    snprintf(path, sizeof path, "%s/app.lua", dir);
    unlink(path);
    rmdir(dir);
    return rc;
}
