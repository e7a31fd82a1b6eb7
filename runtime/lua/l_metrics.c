/* tk.metrics: counters and histograms that scripts and plugins declare and
 * /metrics exports (the registry is obs/script_metrics.h, process-wide, so
 * every worker VM counts into the same series).
 *   metrics.counter(name, help [, labels])              -> metric
 *   metrics.histogram(name, help [, labels [, buckets]]) -> metric
 *   metric:inc([n [, label_values]])      counters (n >= 0, default 1)
 *   metric:observe(v [, label_values])    histograms
 *   metrics.hook_failure(plugin, hook)    counts taskapi_plugin_hook_failures_total
 *   metrics.hook_failures()  -> {total = n, by_plugin = {name = {hook = n}}}
 * Declaring happens when the scripts load (module level, a plugin's init),
 * never while a request is served. Misuse (a bad name, a missing label)
 * raises; a sample past the series cap returns nil, err. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/bindings.h"
#include "lua/vm.h"
#include "obs/log.h"
#include "obs/script_metrics.h"

#define METRIC_MT "tk.metrics.metric"
#define FAILURES_MT "tk.metrics.failures"

static const char *const HOOK_LABELS[] = {"plugin", "hook"};

static tk_smetric **check_metric(lua_State *L)
{
    return luaL_checkudata(L, 1, METRIC_MT);
}

/* Declares a metric from (name, help, labels, buckets) at stack 1..4. */
static int declare(lua_State *L, tk_smetric_kind kind)
{
    const char *name = luaL_checkstring(L, 1);
    const char *help = luaL_checkstring(L, 2);
    if (tk_lua_ctx_get(L)->request_id != NULL)
        return luaL_error(L,
                          "metric %s: metrics are declared when the scripts load (module "
                          "level or a plugin's init), not while a request is served",
                          name);
    const char *labels[TK_SMETRIC_MAX_LABELS];
    double buckets[TK_SMETRIC_MAX_BUCKETS];
    int nlabels = 0, nbuckets = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
        if (n > TK_SMETRIC_MAX_LABELS)
            return luaL_error(L, "metric %s: at most %d labels", name, TK_SMETRIC_MAX_LABELS);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, 3, i) != LUA_TSTRING) /* +1, kept until the call: anchors it */
                return luaL_error(L, "metric %s: labels must be a list of names", name);
            labels[nlabels++] = lua_tostring(L, -1);
        }
    }
    if (kind == TK_SMETRIC_HISTOGRAM && !lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_Integer n = (lua_Integer)lua_rawlen(L, 4);
        if (n < 1 || n > TK_SMETRIC_MAX_BUCKETS)
            return luaL_error(L, "metric %s: 1..%d buckets", name, TK_SMETRIC_MAX_BUCKETS);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, 4, i); /* +1 */
            int isnum = 0;
            buckets[nbuckets++] = (double)lua_tonumberx(L, -1, &isnum);
            lua_pop(L, 1);
            if (!isnum)
                return luaL_error(L, "metric %s: buckets must be numbers", name);
        }
    }
    tk_smetric **ud = lua_newuserdatauv(L, sizeof *ud, 0); /* +1 */
    *ud = NULL;
    luaL_setmetatable(L, METRIC_MT);
    char err[512];
    if (tk_smetric_declare(kind, name, help, labels, nlabels, buckets, nbuckets, 0, ud, err,
                           sizeof err) != TK_OK)
        return luaL_error(L, "%s", err);
    return 1;
}

static int l_metrics_counter(lua_State *L)
{
    return declare(L, TK_SMETRIC_COUNTER);
}

static int l_metrics_histogram(lua_State *L)
{
    return declare(L, TK_SMETRIC_HISTOGRAM);
}

/* Reads the label values of m from the table at `idx` (or none) into
 * values, in declaration order; raises on a missing or unknown label. */
static void label_values(lua_State *L, tk_smetric *m, int idx, const char **values)
{
    int n = tk_smetric_label_count(m);
    if (lua_isnoneornil(L, idx)) {
        if (n > 0)
            luaL_error(L, "metric %s: label values missing (labels: %s...)", tk_smetric_name(m),
                       tk_smetric_label(m, 0));
        return;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    for (int k = 0; k < n; k++) {
        const char *label = tk_smetric_label(m, k);
        lua_getfield(L, idx, label); /* +1, left on the stack: anchors the string */
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "metric %s: label %s must be a string", tk_smetric_name(m), label);
        values[k] = lua_tostring(L, -1);
    }
    int keys = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* +2 key, value */
        lua_pop(L, 1);
        keys++;
    }
    if (keys != n)
        luaL_error(L, "metric %s: unknown label (declared: %d labels)", tk_smetric_name(m), n);
}

static int record(lua_State *L, tk_smetric *m, double v, int labels_idx)
{
    const char *values[TK_SMETRIC_MAX_LABELS];
    label_values(L, m, labels_idx, values);
    int rc = tk_smetric_record(m, values, v);
    if (rc == TK_EINVAL)
        return luaL_error(L,
                          "metric %s: bad sample (a counter only goes up; label values are "
                          "at most %d bytes)",
                          tk_smetric_name(m), TK_SMETRIC_MAX_VALUE);
    if (rc != TK_OK) {
        luaL_pushfail(L);
        lua_pushfstring(L, "metric %s: %s", tk_smetric_name(m),
                        rc == TK_ERANGE ? "too many label sets; sample dropped" : tk_strerror(rc));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_metric_inc(lua_State *L)
{
    tk_smetric *m = *check_metric(L);
    if (tk_smetric_kind_of(m) != TK_SMETRIC_COUNTER)
        return luaL_error(L, "metric %s is a histogram: use observe", tk_smetric_name(m));
    double n = (double)luaL_optnumber(L, 2, 1);
    return record(L, m, n, 3);
}

static int l_metric_observe(lua_State *L)
{
    tk_smetric *m = *check_metric(L);
    if (tk_smetric_kind_of(m) != TK_SMETRIC_HISTOGRAM)
        return luaL_error(L, "metric %s is a counter: use inc", tk_smetric_name(m));
    double v = (double)luaL_checknumber(L, 2);
    return record(L, m, v, 3);
}

static int hook_metric(lua_State *L, tk_smetric **out)
{
    char err[256];
    if (tk_smetric_declare(TK_SMETRIC_COUNTER, "taskapi_plugin_hook_failures_total",
                           "Plugin hooks that failed (raised, spent their budget, or returned a "
                           "change that was refused), by plugin and hook.",
                           HOOK_LABELS, 2, NULL, 0, 1, out, err, sizeof err) != TK_OK)
        return luaL_error(L, "%s", err);
    return 0;
}

static int l_metrics_hook_failure(lua_State *L)
{
    const char *values[2] = {luaL_checkstring(L, 1), luaL_checkstring(L, 2)};
    tk_smetric *m;
    hook_metric(L, &m);
    if (tk_smetric_record(m, values, 1) != TK_OK) /* past the series cap: dropped */
        tk_log(TK_LOG_WARN, tk_lua_ctx_get(L)->request_id,
               "taskapi_plugin_hook_failures_total: sample for plugin %s dropped", values[0]);
    return 0;
}

typedef struct {
    char plugin[64], hook[64];
    lua_Integer n;
} failure;

typedef struct {
    failure *list;
    int n, cap;
} failures;

/* Copies one series out (under the registry's lock: no Lua here). */
static void add_failure(const char *const *values, double value, void *ud)
{
    failures *f = ud;
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 16;
        failure *nl = realloc(f->list, (size_t)cap * sizeof *nl);
        if (nl == NULL)
            return; /* out of memory: the status shows fewer */
        f->list = nl;
        f->cap = cap;
    }
    failure *x = &f->list[f->n++];
    snprintf(x->plugin, sizeof x->plugin, "%s", values[0]);
    snprintf(x->hook, sizeof x->hook, "%s", values[1]);
    x->n = (lua_Integer)value;
}

static int failures_gc(lua_State *L)
{
    failures *f = luaL_checkudata(L, 1, FAILURES_MT);
    free(f->list);
    f->list = NULL;
    return 0;
}

static int l_metrics_hook_failures(lua_State *L)
{
    tk_smetric *m;
    hook_metric(L, &m);
    failures *f = lua_newuserdatauv(L, sizeof *f, 0); /* +1 holder: its __gc frees the copy */
    memset(f, 0, sizeof *f);
    luaL_setmetatable(L, FAILURES_MT);
    tk_smetric_each(m, add_failure, f);
    lua_createtable(L, 0, 2); /* +1 result */
    lua_newtable(L);          /* +1 by_plugin */
    lua_Integer total = 0;
    int ok = lua_checkstack(L, 4);
    for (int i = 0; ok && i < f->n; i++) {
        total += f->list[i].n;
        if (lua_getfield(L, -1, f->list[i].plugin) != LUA_TTABLE) { /* +1 */
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, f->list[i].plugin);
        }
        lua_pushinteger(L, f->list[i].n);
        lua_setfield(L, -2, f->list[i].hook);
        lua_pop(L, 1);
    }
    free(f->list);
    f->list = NULL;
    lua_setfield(L, -2, "by_plugin"); /* -1 */
    lua_pushinteger(L, total);
    lua_setfield(L, -2, "total");
    return 1;
}

int tk_lua_open_metrics(lua_State *L)
{
    static const luaL_Reg fns[] = {{"counter", l_metrics_counter},
                                   {"histogram", l_metrics_histogram},
                                   {"hook_failure", l_metrics_hook_failure},
                                   {"hook_failures", l_metrics_hook_failures},
                                   {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"inc", l_metric_inc}, {"observe", l_metric_observe}, {NULL, NULL}};
    if (luaL_newmetatable(L, METRIC_MT)) { /* +1 */
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, FAILURES_MT)) { /* +1 */
        lua_pushcfunction(L, failures_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    /* Declared with the module (lib.plugins requires it at every load), so
     * /metrics names the series before the first failure. */
    tk_smetric *failures_metric;
    hook_metric(L, &failures_metric);
    luaL_newlib(L, fns);
    return 1;
}
