/* Script generations. A generation is one snapshot of SCRIPTS_DIR and
 * PLUGINS_DIR, every Lua VM of every consumer (the HTTP workers, the
 * realtime join policy, ...) loaded from that snapshot, and the app's route
 * table as plain data, which HTTP compiles into its router. The host holds
 * the current generation behind one reference-counted pointer that a reload
 * swaps once, so every consumer moves to a new generation at the same
 * moment. What consumers do with a route (matching, auth, limits) is theirs. */
#ifndef TK_LUA_GEN_H
#define TK_LUA_GEN_H

#include <stddef.h>
#include <stdio.h>

#include "common.h"
#include "config.h"
#include "db/pool.h"
#include "lua/snapshot.h"

typedef struct tk_lua_gen tk_lua_gen;
typedef struct tk_lua_host tk_lua_host;
typedef struct tk_lua_vm tk_lua_vm;

/* ---- the route table (plain data) ----------------------------------------- */

typedef enum {
    TK_LUA_AUTH_REQUIRED = 0, /* route.auth absent or "required" */
    TK_LUA_AUTH_NONE = 1,     /* "none" */
    TK_LUA_AUTH_OPTIONAL = 2, /* "optional": verified when sent */
} tk_lua_auth;

#define TK_LUA_ROUTE_MAX_RATES 4

/* One rate-limit bucket of a route, as lib.ratelimit checked it. */
typedef struct {
    char bucket[128]; /* routes naming the same bucket share its budget */
    int limit;        /* hits per window, >= 1 */
    int window;       /* seconds, 1..86400 */
    int per_ip;       /* 1: per client IP; 0: per user (per IP before login) */
} tk_lua_rate;

/* One route of app.routes. Strings are owned by the generation. */
typedef struct {
    int id;              /* app.routes[id]: what the app's dispatch is called with */
    const char *method;  /* "GET", ... */
    const char *pattern; /* "/api/v1/tasks/:id" */
    tk_lua_auth auth;
    const char *where;  /* "file:line" of the definition, or NULL */
    const char *plugin; /* the plugin that added the route, or NULL */
    int nrates;
    tk_lua_rate rates[TK_LUA_ROUTE_MAX_RATES];
    /* A constant route (lib.dispatch ran its handler once for this
     * generation: GET, no auth, no limits, no hooks): a 2xx status and the
     * body; constant_body NULL for every other route. */
    unsigned constant_status;
    const char *constant_body;
    size_t constant_len;
    const char *query_schema, *body_schema; /* one-line summaries, or NULL */
} tk_lua_route;

/* ---- consumers -------------------------------------------------------------- */

/* Something that runs scripts: it gets `nvms` VMs in every generation (its
 * thread i uses VM i only) and, optionally, its own compiled form of the
 * generation (HTTP: the router), built before the generation can become
 * current: an error there refuses the whole generation. */
typedef struct {
    const char *name; /* "http", "realtime": in error messages */
    int nvms;
    int worker_id; /* tk.runtime.worker() of VM 0, counting up; < 0: every VM gets -1 */
    /* Builds *data from g (routes are final; VMs may not be loaded yet).
     * Returns 0, or an error code with the reason in err. */
    int (*compile)(void *ud, const tk_lua_gen *g, void **data, char *err, size_t errlen);
    void (*drop)(void *data); /* frees what compile built */
    void *ud;
} tk_lua_consumer;

#define TK_LUA_MAX_CONSUMERS 4

/* ---- generations ------------------------------------------------------------ */

/* Builds a generation from the files on disk now: snapshot, VM 0 of the
 * first consumer (or a VM of its own when no consumer has any) loads
 * app.lua, the route table is read from it, each consumer compiles it, then
 * the remaining VMs load. `pool` may be NULL (check mode). Its number is 0
 * until a host makes it current. Returns 0 with one reference in *out, or
 * TK_ELUA / TK_EINVAL / TK_EIO / TK_ENOMEM with "file:line: reason" in err. */
int tk_lua_gen_new(const tk_config *cfg, tk_db_pool *pool, const tk_lua_consumer *consumers, int n,
                   tk_lua_gen **out, char *err, size_t errlen) TK_WUR;

/* The same from a snapshot already read (`taskapi check` compiles every
 * file of it first): the generation takes its own reference to snap. */
int tk_lua_gen_new_from(const tk_config *cfg, tk_db_pool *pool, tk_snapshot *snap,
                        const tk_lua_consumer *consumers, int n, tk_lua_gen **out, char *err,
                        size_t errlen) TK_WUR;

/* Takes another reference (returns g). Safe from any thread. */
tk_lua_gen *tk_lua_gen_ref(tk_lua_gen *g);

/* Drops one reference; the last frees the VMs, the consumers' data and the
 * snapshot. NULL is a no-op. Safe from any thread, but the last reference
 * must not be dropped by a thread that is running one of g's VMs. */
void tk_lua_gen_release(tk_lua_gen *g);

/* The generation's number (1, 2, ... in the order they became current). */
int tk_lua_gen_id(const tk_lua_gen *g);

/* sha256 (hex) of the scripts and plugins it was loaded from. */
const char *tk_lua_gen_digest(const tk_lua_gen *g);

/* The plugins it loaded, "name version, ..." ("" for none). */
const char *tk_lua_gen_plugins(const tk_lua_gen *g);

const tk_snapshot *tk_lua_gen_snapshot(const tk_lua_gen *g);

int tk_lua_gen_route_count(const tk_lua_gen *g);

/* Route `id` (1 .. count). Borrowed until g is released. */
const tk_lua_route *tk_lua_gen_route(const tk_lua_gen *g, int id);

/* VM i of consumer c (the index given to the host, or the position in the
 * array given to tk_lua_gen_new). Borrowed until g is released. */
tk_lua_vm *tk_lua_gen_vm(const tk_lua_gen *g, int c, int i);

/* What consumer c's compile built (NULL without one). */
void *tk_lua_gen_data(const tk_lua_gen *g, int c);

/* Writes the route table (method, pattern, auth, file:line, schemas): what
 * `taskapi routes` prints. */
void tk_lua_gen_print_routes(const tk_lua_gen *g, FILE *f);

/* ---- the host: the current generation ----------------------------------------- */

/* A host for cfg and pool (borrowed until tk_lua_host_free), with no
 * consumer and no generation yet. */
int tk_lua_host_new(const tk_config *cfg, tk_db_pool *pool, tk_lua_host **out) TK_WUR;

/* Registers a consumer (copied; ud borrowed) before the first load. Returns
 * its index (>= 0), or TK_EINVAL when full or already loaded. */
int tk_lua_host_add(tk_lua_host *h, const tk_lua_consumer *c) TK_WUR;

/* Builds a generation from disk and makes it current, or, on any error,
 * changes nothing. Logs and records (obs/status.h) the outcome: "loaded:"
 * or "reloaded: generation N, ..." or "reload failed; still serving
 * generation N: file:line: ...". One load at a time; safe from any thread.
 * Returns 0 or the build's error (reason in err). */
int tk_lua_host_load(tk_lua_host *h, char *err, size_t errlen) TK_WUR;

/* A reference to the current generation (release it with
 * tk_lua_gen_release), or NULL before the first load. Cheap: a mutex and
 * an atomic add. */
tk_lua_gen *tk_lua_host_acquire(tk_lua_host *h);

/* Loads that made a generation current (after the first), loads refused,
 * and the current generation's number. */
void tk_lua_host_stats(tk_lua_host *h, long long *reloads, long long *failures, int *gen);

/* Drops the current generation and frees the host. The consumers must have
 * stopped using it. NULL is a no-op. */
void tk_lua_host_free(tk_lua_host *h);

#endif
