/* Fuzz target: JSON at the request edge. A request body goes to Lua as
 * bytes; scripts/lib/dispatch.lua decodes it with lib.json (lua-cjson) and
 * validates it against the route's body schema. This target does the same
 * in a server VM loaded with the real scripts/, for the body schema of one
 * of the app's routes (picked by the first byte). Checks: every outcome is
 * the body accepted (and it encodes back to JSON) or an HTTP error of the
 * contract's shape (400/422); never a Lua error, which would be a 500. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"

/* parse_body of lib/dispatch.lua, step for step (it is a local there). */
static const char chunk[] =
    "local json = require 'lib.json'\n"
    "local schema = require 'lib.schema'\n"
    "local errors = require 'lib.errors'\n"
    "return function(app)\n"
    "  local routes = {}\n"
    "  for _, r in ipairs(app.routes) do\n"
    "    if r.body then routes[#routes + 1] = r end\n"
    "  end\n"
    "  assert(#routes > 0, 'no route has a body schema')\n"
    "  local function parse(route, raw)\n"
    "    local body\n"
    "    if not raw:find('%S') then\n"
    "      body = {}\n"
    "    else\n"
    "      if not raw:find('^%s*{') then\n"
    "        errors.raise(400, 'invalid_json', 'must be an object')\n"
    "      end\n"
    "      local err\n"
    "      body, err = json.decode(raw)\n"
    "      if body == nil then\n"
    "        errors.raise(400, 'invalid_json', 'not JSON: ' .. err)\n"
    "      end\n"
    "    end\n"
    "    local cleaned, details = schema.validate(route.body, body)\n"
    "    if not cleaned then errors.validation(details) end\n"
    "    assert(type(json.encode(cleaned)) == 'string')\n"
    "  end\n"
    "  return function(raw, pick)\n"
    "    local route = routes[pick % #routes + 1]\n"
    "    local ok, e = pcall(parse, route, raw)\n"
    "    if ok then return true end\n"
    "    if errors.is(e) then\n"
    "      local b = errors.body(e)\n"
    "      assert(type(b) == 'table' and type(b.error) == 'table')\n"
    "      assert(type(b.error.code) == 'string')\n"
    "      assert(type(json.encode(b)) == 'string')\n"
    "      return (e.status == 400 or e.status == 422), 'status ' .. e.status\n"
    "    end\n"
    "    return false, route.method .. ' ' .. route.path .. ': ' .. tostring(e)\n"
    "  end\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fn = LUA_NOREF;
    if (size < 1 || size > 65536)
        return 0;
    tk_lua_vm *vm = fuzz_vm();
    lua_State *L = tk_lua_vm_state(vm);
    if (fn == LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_lua_fn(L, "=fuzz_json_edge", chunk));
        tk_lua_vm_push_app(vm);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            fprintf(stderr, "fuzz_json_edge: %s\n", lua_tostring(L, -1));
            exit(1);
        }
        fn = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    tk_lua_vm_begin_request(vm);
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
    lua_pushlstring(L, (const char *)data + 1, size - 1);
    lua_pushinteger(L, data[0]);
    int st = lua_pcall(L, 2, 2, 0);
    if (st != LUA_OK || !lua_toboolean(L, -2)) {
        fprintf(stderr, "fuzz_json_edge: %s\n", luaL_tolstring(L, -1, NULL));
        FUZZ_CHECK(!"a body gives a Lua error (a 500)");
    }
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT, 0); /* what the input allocated is freed: no false leak reports */
    return 0;
}
