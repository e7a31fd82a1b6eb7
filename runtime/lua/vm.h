/* Lua VM lifecycle: one lua_State per worker thread, the sandbox (explicit
 * allow list of standard functions), the script loader (require restricted
 * to SCRIPTS_DIR, chunks named @scripts/... so errors say file:line), the
 * runtime bindings (tk.db, tk.auth, tk.log, tk.runtime, cjson) and the app
 * the scripts return: its route list and its dispatch function. */
#ifndef TK_LUA_VM_H
#define TK_LUA_VM_H

#include <lua.h>

#include "common.h"
#include "config.h"
#include "db/pool.h"
#include "lua/snapshot.h"

/* Per-VM context the bindings reach through the registry. Owned by the VM. */
typedef struct tk_lua_ctx {
    int worker_id;
    const tk_config *cfg;        /* borrowed, outlives the VM */
    tk_db_pool *pool;            /* borrowed; NULL in `check` mode (no database) */
    tk_db_conn *tx_conn;         /* the open transaction's connection, or NULL */
    int after_commit_ref;        /* registry ref of the pending after-commit list */
    const char *request_id;      /* of the request being served, or NULL */
    int queries;                 /* SQL round trips of the current request */
    const tk_snapshot *snapshot; /* the scripts this VM was loaded from (borrowed) */
    long long budget;            /* instructions left for the current request (in 1000s) */
    /* Read routing (lua/l_db.c, tk_lua_db_begin_request): reads outside a
     * transaction may go to the read replica only for an HTTP request, whose
     * read-your-writes key this is (NULL: always the primary). */
    const char *reader;
    char reader_buf[80];
    int read_primary; /* 1: this request's reads go to the primary from now on */
    int ryw_checked;  /* the key's recent writes were looked up */
    int wrote;        /* the request wrote (marked for read-your-writes) */
    int reads_replica, reads_primary;
    const struct tk_lua_gen *gen; /* the generation the VM belongs to (lua/gen.h), or NULL */
} tk_lua_ctx;

typedef struct tk_lua_vm tk_lua_vm;

/* Creates a VM, opens the sandbox and the bindings, runs app.lua from a
 * fresh snapshot of SCRIPTS_DIR/PLUGINS_DIR (which the VM owns) and checks
 * what it returns. `pool` may be NULL (check mode: queries fail). On a
 * script error returns TK_ELUA with "file:line: message" in err. */
int tk_lua_vm_new(const tk_config *cfg, tk_db_pool *pool, int worker_id, tk_lua_vm **out, char *err,
                  size_t errlen) TK_WUR;

/* The same from `snap`; the VM takes a reference of its own (the caller
 * keeps its own and may drop it at once). */
int tk_lua_vm_new_from(const tk_config *cfg, tk_db_pool *pool, int worker_id, tk_snapshot *snap,
                       tk_lua_vm **out, char *err, size_t errlen) TK_WUR;

/* Compiles every file of `snap` (scripts and every plugin, enabled or not)
 * without running it, and calls report(msg, ud) with "file:line: message"
 * for each syntax error, in file name order. Returns the number of files
 * that failed, or -1 out of memory. */
int tk_lua_check_syntax(const tk_snapshot *snap, void (*report)(const char *msg, void *ud),
                        void *ud);

/* lua_pcall(L, nargs, nresults, 0) of the function below the arguments,
 * fenced: the call gets at most half of the request's instruction budget
 * that is left, and a tenth of a whole request's. A call that spends its
 * share fails alone (the budget error, as a pcall would return it) instead
 * of leaving the request without budget; what it used is taken from the
 * request's. Returns lua_pcall's status. For plugin hooks: a runaway hook
 * cannot make a request that already wrote fail afterwards. */
int tk_lua_fenced_pcall(lua_State *L, int nargs, int nresults);

/* Gives the next request a fresh instruction budget (LUA_INSTRUCTION_BUDGET). */
void tk_lua_vm_begin_request(tk_lua_vm *vm);
void tk_lua_vm_free(tk_lua_vm *vm);

lua_State *tk_lua_vm_state(tk_lua_vm *vm);
tk_lua_ctx *tk_lua_vm_ctx(tk_lua_vm *vm);

/* Number of routes the app declared. */
int tk_lua_vm_route_count(tk_lua_vm *vm);

/* Allocator calls of this VM that obtained memory, since it was created;
 * the difference over a request is that request's allocations. */
unsigned long long tk_lua_vm_allocs(const tk_lua_vm *vm);

/* Pushes the app's dispatch function onto the stack. */
void tk_lua_vm_push_dispatch(tk_lua_vm *vm);

/* Pushes the table app.lua returned, for its optional exports (such as
 * app.realtime, which the WebSocket server calls). */
void tk_lua_vm_push_app(tk_lua_vm *vm);

/* Fetches the context from any lua_State created by tk_lua_vm_new. */
tk_lua_ctx *tk_lua_ctx_get(lua_State *L);

/* Registry name of the metatable that marks a Lua table as a JSON array. */
#define TK_JSON_ARRAY_MT "json.array"

/* The plugins this VM loaded, as "name version, ..." ("" for none), for
 * the start-up and reload lines and taskapi status. */
void tk_lua_vm_plugin_list(tk_lua_vm *vm, char *buf, size_t len);

#endif
