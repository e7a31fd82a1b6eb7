/* Helpers the fuzz targets share (tests/fuzz/fuzz_<name>.c, one libFuzzer
 * target each, built by -DFUZZ=ON and run by bin/fuzz): a NUL-terminated copy
 * of the input, base64url, and a sandboxed Lua VM loaded with the real
 * scripts/ the way the server builds one. A target reports a broken property
 * with FUZZ_CHECK, which aborts: libFuzzer saves the input as a crash. */
#ifndef TK_FUZZ_UTIL_H
#define TK_FUZZ_UTIL_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lua/vm.h"
#include "obs/log.h"

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A malloc'd NUL-terminated copy of the input (free with free()). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* base64url without padding of n bytes into out (>= 4 * (n + 2) / 3 + 1);
 * returns the length written. */
static inline size_t fuzz_b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* Line coverage of the Lua scripts as libFuzzer feedback: liblua and
 * lua-cjson are Debian's uninstrumented builds, so without this a target
 * would not see which script lines an input reached. A hook counts (chunk,
 * line) pairs into libFuzzer's extra counters; it also keeps the instruction
 * budget the VM's own count hook keeps (one hook per state). */
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t fuzz_lua_lines[1 << 16];

static inline void fuzz_lua_hook(lua_State *L, lua_Debug *ar)
{
    if (ar->event == LUA_HOOKCOUNT) {
        tk_lua_ctx *ctx = tk_lua_ctx_get(L);
        if (--ctx->budget < 0)
            luaL_error(L, "instruction budget exceeded (LUA_INSTRUCTION_BUDGET)");
        return;
    }
    if (lua_getinfo(L, "S", ar) == 0)
        return;
    uint64_t h =
        (uint64_t)(uintptr_t)ar->source * 0x9E3779B97F4A7C15ULL + (uint64_t)ar->currentline;
    h ^= h >> 29;
    fuzz_lua_lines[h % sizeof fuzz_lua_lines]++;
}

/* A VM as each server worker has (the sandbox, the bindings, app.lua of
 * the checked-in scripts/, no database), created on first use and kept for
 * the process. Exits when the scripts do not load: nothing to fuzz then. */
static inline tk_lua_vm *fuzz_vm(void)
{
    static tk_config cfg;
    static tk_lua_vm *vm;
    if (vm != NULL)
        return vm;
    char err[1024] = "";
    tk_log_init(TK_LOG_ERROR, 0);
    memset(&cfg, 0, sizeof cfg);
    cfg.scripts_dir = TK_SOURCE_DIR "/scripts";
    cfg.plugins_dir = TK_SOURCE_DIR "/plugins";
    cfg.lua_memory_limit = 64u * 1024 * 1024;
    cfg.lua_instruction_budget = 100000000;
    if (tk_lua_vm_new(&cfg, NULL, 1, &vm, err, sizeof err) != TK_OK) {
        fprintf(stderr, "fuzz: cannot load %s/scripts: %s\n", TK_SOURCE_DIR, err);
        exit(1);
    }
    lua_sethook(tk_lua_vm_state(vm), fuzz_lua_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1000);
    return vm;
}

/* Runs `code` (a chunk returning one function) in the VM and keeps the
 * function in the registry; returns its reference. */
static inline int fuzz_lua_fn(lua_State *L, const char *name, const char *code)
{
    if (luaL_loadbuffer(L, code, strlen(code), name) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK ||
        !lua_isfunction(L, -1)) {
        fprintf(stderr, "fuzz: %s: %s\n", name, lua_tostring(L, -1));
        exit(1);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

#endif
