/* Fuzz target: opaque page cursors (scripts/lib/cursor.lua) as list routes
 * read them from ?cursor=, in a server VM loaded with the real scripts/.
 * The first byte picks how many values the route expects (2 or 3). Checks:
 * decode answers the list or raises the contract's 400 invalid_parameter,
 * never another Lua error (a 500); a decoded list encodes again to a cursor
 * that decodes to the same values; and arbitrary strings as cursor values
 * come back byte for byte. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"

static const char chunk[] =
    "local cursor = require 'lib.cursor'\n"
    "local errors = require 'lib.errors'\n"
    "local json = require 'lib.json'\n"
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) ~= 'table' then return a == b or (a ~= a and b ~= b) end\n"
    "  return json.encode(a) == json.encode(b)\n"
    "end\n"
    "return function(s, n)\n"
    "  local ok, v = pcall(cursor.decode, s, n)\n"
    "  if not ok then\n"
    "    if not errors.is(v) then return false, 'decode: ' .. tostring(v) end\n"
    "    local b = errors.body(v)\n"
    "    if v.status ~= 400 or b.error.code ~= 'invalid_parameter' then\n"
    "      return false, 'decode raised ' .. tostring(v.status)\n"
    "    end\n"
    "  else\n"
    "    if type(v) ~= 'table' or #v ~= n then return false, 'shape' end\n"
    "    local eok, again = pcall(cursor.encode, v)\n"
    "    if eok then\n"
    "      local dok, w = pcall(cursor.decode, again, n)\n"
    "      if not dok then return false, 're-decode: ' .. tostring(w) end\n"
    "      for i = 1, n do\n"
    "        if not same(v[i], w[i]) then return false, 'value ' .. i end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  local c = cursor.encode({ s, '7c0e8a2e-1d3b-4f5a-9b6c-0d1e2f3a4b5c' })\n"
    "  if #c <= 1024 then -- longer ones are refused by design\n"
    "    local dok, back = pcall(cursor.decode, c, 2)\n"
    "    if not dok or back[1] ~= s then return false, 'round trip of a string value' end\n"
    "  end\n"
    "  return true\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fn = LUA_NOREF;
    if (size < 1 || size > 2048)
        return 0;
    tk_lua_vm *vm = fuzz_vm();
    lua_State *L = tk_lua_vm_state(vm);
    if (fn == LUA_NOREF)
        fn = fuzz_lua_fn(L, "=fuzz_cursor", chunk);
    tk_lua_vm_begin_request(vm);
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
    lua_pushlstring(L, (const char *)data + 1, size - 1);
    lua_pushinteger(L, 2 + (data[0] & 1));
    int st = lua_pcall(L, 2, 2, 0);
    if (st != LUA_OK || !lua_toboolean(L, -2)) {
        fprintf(stderr, "fuzz_cursor: %s\n", luaL_tolstring(L, -1, NULL));
        FUZZ_CHECK(!"cursor property broken");
    }
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT, 0); /* what the input allocated is freed: no false leak reports */
    return 0;
}
