/* A sampling profiler for the Lua code of the workers (TASKAPI_LUA_PROFILE).
 *
 * Each thread that serves requests on a VM gets a timer on its own CPU
 * clock (TASKAPI_LUA_PROFILE_HZ ticks per CPU second). A tick only sets a
 * flag; the VM's count hook (lua/vm.c, the same hook that keeps the
 * instruction budget, called every 100 instructions and at each function
 * call and return while profiling) sees the flag at its next call and
 * records the Lua stack there, as "file:line" frames
 * (scripts/routes/tasks.lua:120). A tick inside a C function called from
 * Lua (cjson, a query) is recorded as that function returns: "[C] query"
 * on top of the Lua line that called it. The stacks are counted in one table and
 * written at shutdown in the folded format of flame graphs:
 *
 *     scripts/app.lua:40;scripts/lib/dispatch.lua:99;scripts/lib/json.lua:70 12
 *
 * Off (no TASKAPI_LUA_PROFILE), nothing here runs: the VM keeps its plain
 * budget hook and no timer or signal handler exists. */
#ifndef TK_LUA_PROFILE_H
#define TK_LUA_PROFILE_H

#include <lua.h>

#include "common.h"
#include "config.h"

/* Turns the profiler on when cfg->lua_profile names a file: installs the
 * SIGPROF handler. Call once, before the first VM is created. Returns
 * TK_OK (also when off), or TK_EIO with the reason in err. */
int tk_lua_profile_start(const tk_config *cfg, char *err, size_t errlen) TK_WUR;

/* 1 between tk_lua_profile_start (with a file) and tk_lua_profile_stop. */
int tk_lua_profile_enabled(void);

/* The calling thread is about to run a request on a VM: arms its CPU timer
 * (the first time) and forgets a tick taken outside Lua since the last
 * request. */
void tk_lua_profile_thread_begin(void);

/* From the count hook: 1 when a tick waits for a sample on this thread. */
int tk_lua_profile_due(void);

/* From the count hook: records L's current stack (and clears the tick). */
void tk_lua_profile_sample(lua_State *L);

/* Writes the folded stacks to the file (replacing it), frees the table and
 * turns sampling off. Returns the number of distinct stacks written, or -1
 * when the file could not be written (logged). No-op (0) when off. */
int tk_lua_profile_stop(void);

#endif
