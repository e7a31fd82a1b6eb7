/* Fuzz target: tk.db's conversion of PostgreSQL text values to Lua values
 * (runtime/lua/l_db.c, tk_lua_db_push_text) in a server VM. The first byte
 * picks the column type (bool, ints, numeric, timestamptz, json/jsonb,
 * text[] and friends, uuid); the rest is the value. Checks: the conversion
 * pushes exactly one value of the type's Lua type, or raises (json that
 * does not decode), and leaves the stack balanced. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "lua/bindings.h"

static const struct {
    unsigned int oid;
    int ltype; /* the Lua type the value must have; LUA_TNONE: any */
} types[] = {
    {16, LUA_TBOOLEAN},  /* bool */
    {20, LUA_TNUMBER},   /* int8 */
    {21, LUA_TNUMBER},   /* int2 */
    {23, LUA_TNUMBER},   /* int4 */
    {1700, LUA_TNUMBER}, /* numeric */
    {701, LUA_TNUMBER},  /* float8 */
    {1184, LUA_TSTRING}, /* timestamptz */
    {1114, LUA_TSTRING}, /* timestamp */
    {114, LUA_TNONE},    /* json */
    {3802, LUA_TNONE},   /* jsonb */
    {1009, LUA_TTABLE},  /* text[] */
    {1015, LUA_TTABLE},  /* varchar[] */
    {2951, LUA_TTABLE},  /* uuid[] */
    {1007, LUA_TTABLE},  /* int4[] */
    {1016, LUA_TTABLE},  /* int8[] */
    {1000, LUA_TTABLE},  /* bool[] */
    {2950, LUA_TSTRING}, /* uuid */
    {25, LUA_TSTRING},   /* text */
};

static int convert(lua_State *L)
{
    const char *s = lua_touserdata(L, 1);
    size_t len = (size_t)lua_tointeger(L, 2);
    unsigned int oid = (unsigned int)lua_tointeger(L, 3);
    lua_settop(L, 0);
    tk_lua_db_push_text(L, s, len, oid);
    lua_pushinteger(L, lua_gettop(L)); /* the stack depth the conversion left */
    lua_insert(L, 1);
    return lua_gettop(L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    size_t pick = data[0] % (sizeof types / sizeof types[0]);
    unsigned int oid = types[pick].oid;
    char *s = fuzz_cstr(data + 1, size - 1);
    size_t len = strlen(s); /* libpq text values hold no NUL */
    tk_lua_vm *vm = fuzz_vm();
    lua_State *L = tk_lua_vm_state(vm);
    tk_lua_vm_begin_request(vm);
    int top = lua_gettop(L);
    lua_pushcfunction(L, convert);
    lua_pushlightuserdata(L, s);
    lua_pushinteger(L, (lua_Integer)len);
    lua_pushinteger(L, oid);
    int st = lua_pcall(L, 3, LUA_MULTRET, 0);
    if (st == LUA_OK) {
        FUZZ_CHECK(lua_gettop(L) == top + 2);
        FUZZ_CHECK(lua_tointeger(L, top + 1) == 1);
        int t = lua_type(L, top + 2);
        FUZZ_CHECK(types[pick].ltype == LUA_TNONE || t == types[pick].ltype);
        if (oid == 1184 || oid == 1114)
            FUZZ_CHECK(lua_rawlen(L, top + 2) <= (len > 24 ? len : 24));
    } else {
        /* Only json text that does not decode may raise. */
        FUZZ_CHECK(oid == 114 || oid == 3802);
        FUZZ_CHECK(lua_gettop(L) == top + 1);
    }
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT, 0); /* what the input allocated is freed: no false leak reports */
    free(s);
    return 0;
}
