/* Script generations (gen.h): built once per load from one snapshot, read
 * into a plain route table, swapped into the host's current pointer once.
 * The route table is read from VM 0's app.routes here, so no consumer
 * needs to look into a Lua state for a route's flags. */
#include "lua/gen.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "db/migrate.h"
#include "lua/vm.h"
#include "obs/log.h"
#include "obs/status.h"

struct tk_lua_gen {
    atomic_int refs;
    int id;
    tk_snapshot *snap;
    char digest[65];
    char plugins[512];
    tk_lua_route *routes; /* [nroutes], route id i at [i - 1] */
    int nroutes;
    tk_lua_consumer consumers[TK_LUA_MAX_CONSUMERS];
    int nconsumers;
    tk_lua_vm **vms[TK_LUA_MAX_CONSUMERS]; /* [consumers[c].nvms] */
    void *data[TK_LUA_MAX_CONSUMERS];      /* what consumers[c].compile built */
    tk_lua_vm *loader;                     /* VM 0 when no consumer has VMs (check mode) */
};

struct tk_lua_host {
    const tk_config *cfg;
    tk_db_pool *pool;
    tk_lua_consumer consumers[TK_LUA_MAX_CONSUMERS];
    int nconsumers;
    pthread_mutex_t mu;      /* guards current */
    pthread_mutex_t load_mu; /* one load at a time */
    tk_lua_gen *current;
    int next_id;
    atomic_llong reloads, failures;
};

/* ---- reading app.routes ------------------------------------------------------ */

/* The string field `name` of the table on top, or NULL. Borrowed from the
 * route table, which the VM keeps alive. */
static const char *field_str(lua_State *L, const char *name)
{
    lua_getfield(L, -1, name); /* +1 */
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* -1 */
    return s;
}

static int field_int(lua_State *L, const char *name, lua_Integer max)
{
    lua_getfield(L, -1, name); /* +1 */
    lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1); /* -1 */
    return v > 0 && v <= max ? (int)v : 0;
}

/* Copies s (NULL stays NULL) into *out. Returns 0 or -1 out of memory. */
static int dup(const char *s, const char **out)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    char *c = strdup(s);
    if (c == NULL)
        return -1;
    *out = c;
    return 0;
}

/* The route's rate buckets (table on top). lib.ratelimit has checked their
 * shapes when app.lua loaded; a bucket still malformed here is skipped
 * rather than trusted. */
static void read_rates(lua_State *L, tk_lua_route *rt)
{
    lua_getfield(L, -1, "rate"); /* +1 rate */
    lua_Integer n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
    for (lua_Integer i = 1; i <= n && rt->nrates < TK_LUA_ROUTE_MAX_RATES; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TTABLE) { /* +1 bucket */
            lua_pop(L, 1);
            continue;
        }
        tk_lua_rate *b = &rt->rates[rt->nrates];
        const char *name = field_str(L, "bucket");
        const char *per = field_str(L, "per");
        int named = name != NULL && strlen(name) < sizeof b->bucket;
        if (named)
            snprintf(b->bucket, sizeof b->bucket, "%s", name);
        b->per_ip = per != NULL && strcmp(per, "ip") == 0;
        b->limit = field_int(L, "limit", 2000000000);
        b->window = field_int(L, "window", 86400);
        if (named && b->limit > 0 && b->window > 0)
            rt->nrates++;
        lua_pop(L, 1); /* -1 bucket */
    }
    lua_pop(L, 1); /* -1 rate */
}

static void cat(char *buf, size_t len, const char *s)
{
    size_t n = strlen(buf);
    if (n + 1 < len)
        snprintf(buf + n, len - n, "%s", s);
}

/* Writes a one-line summary of the object schema at the top of the stack
 * into buf ("{email*:string, name:string}": * marks required; fields in
 * name order). Leaves the stack as it was. */
static void describe_schema(lua_State *L, char *buf, size_t len)
{
    buf[0] = '\0';
    lua_getfield(L, -1, "properties"); /* +1 properties */
    lua_getfield(L, -2, "required");   /* +1 required */
    lua_newtable(L);                   /* +1 keys */
    if (lua_istable(L, -3)) {
        lua_pushnil(L);
        while (lua_next(L, -4)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, -3, (lua_Integer)lua_rawlen(L, -3) + 1);
            }
        }
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i < n; i++) /* selection sort: a few fields */
        for (lua_Integer j = i + 1; j <= n; j++) {
            lua_rawgeti(L, -1, i);
            lua_rawgeti(L, -2, j);
            if (strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) > 0) { /* a[i] > a[j] */
                lua_rawseti(L, -3, i);                                  /* swap */
                lua_rawseti(L, -2, j);
            } else {
                lua_pop(L, 2);
            }
        }
    cat(buf, len, "{");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i); /* +1 name */
        const char *name = lua_tostring(L, -1);
        int req = 0;
        if (lua_istable(L, -3)) {
            lua_Integer rn = (lua_Integer)lua_rawlen(L, -3);
            for (lua_Integer k = 1; k <= rn && !req; k++) {
                lua_rawgeti(L, -3, k);
                req = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0;
                lua_pop(L, 1);
            }
        }
        lua_getfield(L, -4, name);   /* +1 field schema (from properties) */
        lua_getfield(L, -1, "type"); /* +1 type */
        const char *type = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "any";
        if (i > 1)
            cat(buf, len, ", ");
        cat(buf, len, name);
        if (req)
            cat(buf, len, "*");
        cat(buf, len, ":");
        cat(buf, len, type);
        lua_pop(L, 3);
    }
    cat(buf, len, "}");
    lua_pop(L, 3); /* keys, required, properties */
}

/* Copies the one-line summary of schema `key` of the route on top. */
static int read_schema(lua_State *L, const char *key, const char **out)
{
    *out = NULL;
    int rc = 0;
    lua_getfield(L, -1, key); /* +1 schema */
    if (lua_istable(L, -1)) {
        char desc[2048];
        describe_schema(L, desc, sizeof desc);
        rc = dup(desc, out);
    }
    lua_pop(L, 1); /* -1 */
    return rc;
}

/* The cached answer of a constant route (route on top): body copied. */
static int read_constant(lua_State *L, tk_lua_route *rt)
{
    if (rt->nrates > 0) /* limited: every request must be counted */
        return 0;
    lua_getfield(L, -1, "constant_status"); /* +1 */
    lua_getfield(L, -2, "constant_body");   /* +1 */
    int rc = 0;
    if (lua_isinteger(L, -2) && lua_type(L, -1) == LUA_TSTRING) {
        lua_Integer st = lua_tointeger(L, -2);
        size_t n = 0;
        const char *text = lua_tolstring(L, -1, &n);
        if (st >= 200 && st <= 299) {
            char *body = malloc(n + 1);
            if (body == NULL) {
                rc = -1;
            } else {
                memcpy(body, text, n);
                body[n] = '\0';
                rt->constant_body = body;
                rt->constant_len = n;
                rt->constant_status = (unsigned)st;
            }
        }
    }
    lua_pop(L, 2);
    return rc;
}

static void route_cleanup(tk_lua_route *rt)
{
    free((char *)rt->method);
    free((char *)rt->pattern);
    free((char *)rt->where);
    free((char *)rt->plugin);
    free((char *)rt->constant_body);
    free((char *)rt->query_schema);
    free((char *)rt->body_schema);
}

/* Reads app.routes of vm into g->routes. */
static int read_routes(tk_lua_gen *g, tk_lua_vm *vm, char *err, size_t errlen)
{
    lua_State *L = tk_lua_vm_state(vm);
    int n = tk_lua_vm_route_count(vm);
    g->routes = calloc((size_t)n + 1, sizeof *g->routes);
    if (g->routes == NULL)
        return TK_ENOMEM;
    int rc = TK_OK;
    tk_lua_vm_push_app(vm);        /* +1 app */
    lua_getfield(L, -1, "routes"); /* +1 routes */
    for (int i = 1; i <= n && rc == TK_OK; i++) {
        tk_lua_route *rt = &g->routes[i - 1];
        g->nroutes = i;
        rt->id = i;
        lua_rawgeti(L, -1, i); /* +1 route */
        const char *method = lua_istable(L, -1) ? field_str(L, "method") : NULL;
        const char *path = lua_istable(L, -1) ? field_str(L, "path") : NULL;
        const char *where = lua_istable(L, -1) ? field_str(L, "where") : NULL;
        if (method == NULL || path == NULL) {
            tk_errf(err, errlen, "%s: route %d needs a method and a path",
                    where ? where : "app.routes", i);
            rc = TK_EINVAL;
        } else {
            const char *auth = field_str(L, "auth");
            rt->auth = auth && strcmp(auth, "none") == 0       ? TK_LUA_AUTH_NONE
                       : auth && strcmp(auth, "optional") == 0 ? TK_LUA_AUTH_OPTIONAL
                                                               : TK_LUA_AUTH_REQUIRED;
            read_rates(L, rt);
            if (dup(method, &rt->method) || dup(path, &rt->pattern) || dup(where, &rt->where) ||
                dup(field_str(L, "plugin"), &rt->plugin) || read_constant(L, rt) ||
                read_schema(L, "query", &rt->query_schema) ||
                read_schema(L, "body", &rt->body_schema))
                rc = TK_ENOMEM;
        }
        lua_pop(L, 1); /* -1 route */
    }
    lua_pop(L, 2); /* -2 routes, app */
    return rc;
}

/* ---- generations ---------------------------------------------------------------- */

static void gen_free(tk_lua_gen *g)
{
    for (int c = 0; c < g->nconsumers; c++) {
        if (g->data[c] != NULL && g->consumers[c].drop != NULL)
            g->consumers[c].drop(g->data[c]);
        if (g->vms[c] != NULL)
            for (int i = 0; i < g->consumers[c].nvms; i++)
                tk_lua_vm_free(g->vms[c][i]);
        free(g->vms[c]);
    }
    tk_lua_vm_free(g->loader);
    for (int i = 0; i < g->nroutes; i++)
        route_cleanup(&g->routes[i]);
    free(g->routes);
    tk_snapshot_free(g->snap);
    free(g);
}

static int worker_id(const tk_lua_consumer *c, int i)
{
    return c->worker_id < 0 ? -1 : c->worker_id + i;
}

static int vm_new(const tk_config *cfg, tk_db_pool *pool, tk_lua_gen *g, int wid, tk_lua_vm **out,
                  char *err, size_t errlen)
{
    int rc = tk_lua_vm_new_from(cfg, pool, wid, g->snap, out, err, errlen);
    if (rc == TK_OK)
        tk_lua_vm_ctx(*out)->gen = g;
    return rc;
}

/* Applies the pending migrations of the plugins the generation enabled
 * (plugins/<name>/migrations/, db/migrate.c), before it may become current:
 * at start and at every reload, so a plugin enabled by a reload finds its
 * tables. A failing file fails the generation (the start, or the reload:
 * the running one stays); an unreachable database does not (logged; the
 * next reload tries again). Each applied file is logged. `plugins` is the
 * generation's "name version, ..." list. */
static int migrate_plugins(const tk_config *cfg, const char *plugins, char *err, size_t errlen)
{
    enum { MAX_PLUGINS = 64 };
    char list[sizeof(((tk_lua_gen *)0)->plugins)], *save = NULL, *buf = NULL;
    const char *names[MAX_PLUGINS];
    size_t n = 0, len = 0;

    snprintf(list, sizeof list, "%s", plugins);
    if (list[0] == '(') {
        tk_errf(err, errlen, "plugin migrations: %s", list);
        return TK_ELUA;
    }
    for (char *item = strtok_r(list, ",", &save); item != NULL && n < MAX_PLUGINS;
         item = strtok_r(NULL, ",", &save)) {
        item += strspn(item, " ");
        item[strcspn(item, " ")] = '\0';
        if (item[0] != '\0')
            names[n++] = item;
    }
    if (n == 0 || cfg->database_url == NULL)
        return TK_OK;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return TK_ENOMEM;
    int rc = tk_db_migrate_plugins(cfg->database_url, cfg->plugins_dir, names, n, f, err, errlen);
    fclose(f);
    if (rc == TK_EUNAVAIL) {
        /* the database is down: the scripts still load, as they do without
         * plugins; the next start or reload applies what is pending */
        tk_log_warn("plugin migrations not applied (%s); the next reload tries again", err);
        rc = TK_OK;
    }
    for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, "applied ", 8) == 0)
            tk_log_info("plugin migration %s", line);
    free(buf);
    return rc;
}

int tk_lua_gen_new(const tk_config *cfg, tk_db_pool *pool, const tk_lua_consumer *consumers, int n,
                   tk_lua_gen **out, char *err, size_t errlen)
{
    if (n < 0 || n > TK_LUA_MAX_CONSUMERS)
        return TK_EINVAL;
    tk_snapshot *snap = NULL;
    int rc = tk_snapshot_load(cfg->scripts_dir, cfg->plugins_dir, &snap, err, errlen);
    if (rc != TK_OK)
        return rc;
    rc = tk_lua_gen_new_from(cfg, pool, snap, consumers, n, out, err, errlen);
    tk_snapshot_free(snap); /* the generation holds its own reference */
    return rc;
}

int tk_lua_gen_new_from(const tk_config *cfg, tk_db_pool *pool, tk_snapshot *snap,
                        const tk_lua_consumer *consumers, int n, tk_lua_gen **out, char *err,
                        size_t errlen)
{
    if (n < 0 || n > TK_LUA_MAX_CONSUMERS)
        return TK_EINVAL;
    tk_lua_gen *g = calloc(1, sizeof *g);
    if (g == NULL)
        return TK_ENOMEM;
    atomic_init(&g->refs, 1);
    int rc = TK_ENOMEM;
    g->nconsumers = n;
    for (int c = 0; c < n; c++) {
        g->consumers[c] = consumers[c];
        if (consumers[c].nvms > 0 &&
            (g->vms[c] = calloc((size_t)consumers[c].nvms, sizeof *g->vms[c])) == NULL)
            goto fail;
    }
    g->snap = tk_snapshot_ref(snap);
    tk_snapshot_digest(g->snap, g->digest);

    /* VM 0: the first consumer's first VM, or a loader of its own. */
    int first = -1;
    for (int c = 0; c < n && first < 0; c++)
        if (consumers[c].nvms > 0)
            first = c;
    tk_lua_vm **vm0 = first >= 0 ? &g->vms[first][0] : &g->loader;
    rc = vm_new(cfg, pool, g, first >= 0 ? worker_id(&consumers[first], 0) : 0, vm0, err, errlen);
    if (rc != TK_OK)
        goto fail;
    rc = read_routes(g, *vm0, err, errlen);
    if (rc != TK_OK)
        goto fail;
    tk_lua_vm_plugin_list(*vm0, g->plugins, sizeof g->plugins);
    for (int c = 0; c < n; c++) {
        if (consumers[c].compile == NULL)
            continue;
        rc = consumers[c].compile(consumers[c].ud, g, &g->data[c], err, errlen);
        if (rc != TK_OK)
            goto fail;
    }
    for (int c = 0; c < n; c++)
        for (int i = 0; i < consumers[c].nvms; i++) {
            if (g->vms[c][i] != NULL)
                continue; /* VM 0 */
            rc = vm_new(cfg, pool, g, worker_id(&consumers[c], i), &g->vms[c][i], err, errlen);
            if (rc != TK_OK)
                goto fail;
            if (tk_lua_vm_route_count(g->vms[c][i]) != g->nroutes) {
                tk_errf(err, errlen, "%s VM %d loaded a different route table", consumers[c].name,
                        i + 1);
                rc = TK_ELUA;
                goto fail;
            }
        }
    if (pool != NULL) { /* serving (not `taskapi check`/`routes`) */
        rc = migrate_plugins(cfg, g->plugins, err, errlen);
        if (rc != TK_OK)
            goto fail;
    }
    *out = g;
    return TK_OK;
fail:
    if (rc == TK_ENOMEM)
        tk_errf(err, errlen, "out of memory loading the scripts");
    gen_free(g);
    return rc;
}

tk_lua_gen *tk_lua_gen_ref(tk_lua_gen *g)
{
    if (g != NULL)
        atomic_fetch_add(&g->refs, 1);
    return g;
}

void tk_lua_gen_release(tk_lua_gen *g)
{
    if (g != NULL && atomic_fetch_sub(&g->refs, 1) == 1)
        gen_free(g);
}

int tk_lua_gen_id(const tk_lua_gen *g)
{
    return g->id;
}

const char *tk_lua_gen_digest(const tk_lua_gen *g)
{
    return g->digest;
}

const char *tk_lua_gen_plugins(const tk_lua_gen *g)
{
    return g->plugins;
}

const tk_snapshot *tk_lua_gen_snapshot(const tk_lua_gen *g)
{
    return g->snap;
}

int tk_lua_gen_route_count(const tk_lua_gen *g)
{
    return g->nroutes;
}

const tk_lua_route *tk_lua_gen_route(const tk_lua_gen *g, int id)
{
    return id >= 1 && id <= g->nroutes ? &g->routes[id - 1] : NULL;
}

tk_lua_vm *tk_lua_gen_vm(const tk_lua_gen *g, int c, int i)
{
    if (c < 0 || c >= g->nconsumers || i < 0 || i >= g->consumers[c].nvms)
        return NULL;
    return g->vms[c][i];
}

void *tk_lua_gen_data(const tk_lua_gen *g, int c)
{
    return c >= 0 && c < g->nconsumers ? g->data[c] : NULL;
}

void tk_lua_gen_print_routes(const tk_lua_gen *g, FILE *f)
{
    static const char *const auth_names[] = {"required", "none", "optional"};
    for (int i = 0; i < g->nroutes; i++) {
        const tk_lua_route *rt = &g->routes[i];
        fprintf(f, "%-7s %-48s auth=%-8s %s%s%s\n", rt->method, rt->pattern, auth_names[rt->auth],
                rt->where ? rt->where : "", rt->plugin ? "  plugin=" : "",
                rt->plugin ? rt->plugin : "");
        if (rt->query_schema)
            fprintf(f, "        %-5s %s\n", "query", rt->query_schema);
        if (rt->body_schema)
            fprintf(f, "        %-5s %s\n", "body", rt->body_schema);
    }
}

/* ---- the host ---------------------------------------------------------------------- */

int tk_lua_host_new(const tk_config *cfg, tk_db_pool *pool, tk_lua_host **out)
{
    tk_lua_host *h = calloc(1, sizeof *h);
    if (h == NULL)
        return TK_ENOMEM;
    h->cfg = cfg;
    h->pool = pool;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->load_mu, NULL);
    *out = h;
    return TK_OK;
}

int tk_lua_host_add(tk_lua_host *h, const tk_lua_consumer *c)
{
    if (h->nconsumers == TK_LUA_MAX_CONSUMERS || h->next_id > 0)
        return TK_EINVAL;
    h->consumers[h->nconsumers] = *c;
    return h->nconsumers++;
}

/* The line an operator reads after a start or a reload (and what taskapi
 * status shows): generation, digest of the scripts, routes, plugins. */
static void announce(const tk_lua_gen *g, const char *what)
{
    tk_status_loaded(g->id, g->digest, tk_snapshot_count(g->snap), g->nroutes, g->plugins);
    tk_log_info("%s generation %d, scripts %.12s, %d files, %d routes; plugins: %s", what, g->id,
                g->digest, tk_snapshot_count(g->snap), g->nroutes,
                g->plugins[0] ? g->plugins : "none");
}

int tk_lua_host_load(tk_lua_host *h, char *err, size_t errlen)
{
    pthread_mutex_lock(&h->load_mu);
    tk_lua_gen *g = NULL;
    int rc = tk_lua_gen_new(h->cfg, h->pool, h->consumers, h->nconsumers, &g, err, errlen);
    if (rc != TK_OK) {
        if (h->current != NULL) { /* a reload: the running generation stays */
            atomic_fetch_add(&h->failures, 1);
            tk_status_reload_failed(err);
            tk_log_error("reload failed; still serving generation %d: %s", h->current->id, err);
        }
        pthread_mutex_unlock(&h->load_mu);
        return rc;
    }
    g->id = ++h->next_id;
    pthread_mutex_lock(&h->mu);
    tk_lua_gen *old = h->current;
    h->current = g; /* every consumer's next acquire gets g */
    pthread_mutex_unlock(&h->mu);
    if (old != NULL)
        atomic_fetch_add(&h->reloads, 1);
    announce(g, old != NULL ? "reloaded:" : "loaded:");
    tk_lua_gen_release(old);
    pthread_mutex_unlock(&h->load_mu);
    return TK_OK;
}

tk_lua_gen *tk_lua_host_acquire(tk_lua_host *h)
{
    pthread_mutex_lock(&h->mu);
    tk_lua_gen *g = tk_lua_gen_ref(h->current);
    pthread_mutex_unlock(&h->mu);
    return g;
}

void tk_lua_host_stats(tk_lua_host *h, long long *reloads, long long *failures, int *gen)
{
    *reloads = atomic_load(&h->reloads);
    *failures = atomic_load(&h->failures);
    pthread_mutex_lock(&h->mu);
    *gen = h->current ? h->current->id : 0;
    pthread_mutex_unlock(&h->mu);
}

void tk_lua_host_free(tk_lua_host *h)
{
    if (h == NULL)
        return;
    tk_lua_gen_release(h->current);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->load_mu);
    free(h);
}
