/* The `auth` Lua module (runtime/lua/l_auth.c) driven from a real lua_State:
 * each snippet asserts in Lua; a failing one prints its error. */
#include "auth/auth.h"
#include "lua/l_auth.h"
#include "test_util.h"

#include <lauxlib.h>
#include <lualib.h>

static lua_State *state(void)
{
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return NULL;
    luaL_openlibs(L);
    luaL_requiref(L, "auth", tk_lua_open_auth, 1); /* +1 module, also global `auth` */
    lua_pop(L, 1);
    return L;
}

/* Runs a chunk; on error prints it, closes L and fails the test. */
#define LUA_OK_(L, code)                                                                           \
    do {                                                                                           \
        if (luaL_dostring((L), (code)) != LUA_OK) {                                                \
            const char *err_ = lua_tostring((L), -1);                                              \
            fprintf(stderr, "%s:%d: lua: %s\n", __FILE__, __LINE__, err_ ? err_ : "?");            \
            lua_close(L);                                                                          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

TEST(passwords)
{
    lua_State *L = state();
    ASSERT_NOT_NULL(L);
    LUA_OK_(L, "local h = assert(auth.hash_password('hunter22', 4))\n"
               "assert(h:sub(1, 7) == '$2b$04$', h)\n"
               "assert(#h == 60)\n"
               "assert(auth.verify_password('hunter22', h) == true)\n"
               "assert(auth.verify_password('hunter23', h) == false)\n"
               "assert(auth.verify_password('hunter22', nil) == false)\n"
               "assert(auth.verify_password('hunter22') == false)\n"
               "assert(auth.verify_password('hunter22', 'garbage') == false)\n");
    LUA_OK_(L, "local h = assert(auth.hash_password('pw'))\n"
               "assert(h:sub(1, 7) == '$2b$10$', 'default cost is 10')\n"
               "assert(auth.verify_password('pw', h))\n");
    LUA_OK_(L, "local h, err = auth.hash_password(string.rep('a', 73), 4)\n"
               "assert(h == nil and err == 'password too long', err)\n"
               "assert(auth.hash_password(string.rep('a', 72), 4))\n"
               "local h2, err2 = auth.hash_password('a\\0b', 4)\n"
               "assert(h2 == nil and type(err2) == 'string')\n");
    /* misuse raises */
    LUA_OK_(L, "assert(not pcall(auth.hash_password))\n"
               "assert(not pcall(auth.hash_password, {}))\n"
               "assert(not pcall(auth.hash_password, 'pw', 3))\n"
               "assert(not pcall(auth.hash_password, 'pw', 32))\n"
               "assert(not pcall(auth.hash_password, 'pw', 'x'))\n"
               "assert(not pcall(auth.verify_password, 'pw', {}))\n"
               "assert(not pcall(auth.verify_password))\n");
    lua_close(L);
    return 0;
}

TEST(access_tokens)
{
    lua_State *L = state();
    ASSERT_NOT_NULL(L);
    ASSERT_EQ_INT(tk_auth_keys_init("k1", "lua-test-secret-0123456789abcdef-0123", NULL), 0);
    LUA_OK_(
        L, "local tok, c = auth.sign_access('00000000-0000-4000-8000-000000000042', 'admin', 900)\n"
           "assert(type(tok) == 'string' and select(2, tok:gsub('%.', '')) == 2)\n"
           "assert(c.sub == '00000000-0000-4000-8000-000000000042' and c.role == 'admin' and "
           "#c.jti == 36)\n"
           "assert(math.type(c.iat) == 'integer' and c.exp - c.iat == 900)\n"
           "local v = assert(auth.verify_access(tok))\n"
           "assert(v.sub == '00000000-0000-4000-8000-000000000042' and v.role == 'admin' and v.jti "
           "== c.jti)\n"
           "assert(v.iat == c.iat and v.exp == c.exp)\n"
           "local bad = tok:sub(1, -2) .. (tok:sub(-1) == 'A' and 'B' or 'A')\n"
           "local r, err = auth.verify_access(tok:gsub('^.', 'x'))\n"
           "assert(r == nil and err == 'invalid')\n"
           "r, err = auth.verify_access('garbage')\n"
           "assert(r == nil and err == 'invalid')\n"
           "r, err = auth.verify_access(tok .. '\\0')\n"
           "assert(r == nil and err == 'invalid')\n"
           "r, err = auth.verify_access('')\n"
           "assert(r == nil and err == 'invalid')\n"
           "-- revoke it\n"
           "assert(auth.deny(c.jti, c.exp) == true)\n"
           "r, err = auth.verify_access(tok)\n"
           "assert(r == nil and err == 'revoked', err)\n"
           "-- other tokens unaffected\n"
           "local tok2 = auth.sign_access('00000000-0000-4000-8000-000000000043', 'user', 60)\n"
           "assert(auth.verify_access(tok2).sub == '00000000-0000-4000-8000-000000000043')\n");
    LUA_OK_(
        L,
        "assert(not pcall(auth.sign_access, '00000000-0000-4000-8000-000000000001', 'user'))\n"
        "assert(not pcall(auth.sign_access, '00000000-0000-4000-8000-000000000001', 'user', 0))\n"
        "assert(not pcall(auth.sign_access, '00000000-0000-4000-8000-000000000001', 'user', 1.5))\n"
        "assert(not pcall(auth.sign_access, '', 'user', 60))\n"
        "assert(not pcall(auth.sign_access, string.rep('x', 64), 'user', 60))\n"
        "assert(not pcall(auth.sign_access, '00000000-0000-4000-8000-000000000001', "
        "string.rep('r', 16), 60))\n"
        "assert(not pcall(auth.sign_access, '00000000-0000-4000-8000-000000000001\\0', 'user', "
        "60))\n"
        "assert(not pcall(auth.sign_access, '42', 'user', 60))\n"
        "assert(not pcall(auth.sign_access, '00000000-0000-4000-8000-000000000001', 'user', 60, "
        "-1))\n"
        "assert(select(2, auth.sign_access('00000000-0000-4000-8000-000000000001', 'user', 60, "
        "5)).ver == 5)\n"
        "assert(auth.verify_access((auth.sign_access('00000000-0000-4000-8000-000000000001', "
        "'user', 60, 5))).ver == 5)\n"
        "assert(auth.verify_access((auth.sign_access('00000000-0000-4000-8000-000000000001', "
        "'user', 60))).ver == 0)\n"
        "assert(not pcall(auth.verify_access))\n"
        "assert(not pcall(auth.verify_access, {}))\n"
        "assert(not pcall(auth.deny, 'j'))\n"
        "assert(not pcall(auth.deny, {}, 1))\n");
    /* no keys: a runtime failure, not a raise */
    tk_auth_keys_cleanup();
    LUA_OK_(L,
            "local t, err = auth.sign_access('00000000-0000-4000-8000-000000000001', 'user', 60)\n"
            "assert(t == nil and type(err) == 'string')\n");
    lua_close(L);
    tk_auth_deny_cleanup();
    return 0;
}

TEST(utilities)
{
    lua_State *L = state();
    ASSERT_NOT_NULL(L);
    LUA_OK_(L, "local seen = {}\n"
               "for i = 1, 200 do\n"
               "  local t = auth.random_token()\n"
               "  assert(#t == 43 and t:match('^[A-Za-z0-9_-]+$'), t)\n"
               "  assert(not seen[t]); seen[t] = true\n"
               "end\n"
               "local u = auth.uuid()\n"
               "assert(u:match('^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+$'), u)\n"
               "assert(#u == 36 and u ~= auth.uuid())\n"
               "assert(auth.sha256('abc') == "
               "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')\n"
               "assert(auth.sha256('') == "
               "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')\n"
               "assert(#auth.sha256('a\\0b') == 64)\n"
               "assert(auth.equal('abc', 'abc') == true)\n"
               "assert(auth.equal('abc', 'abd') == false)\n"
               "assert(auth.equal('abc', 'abcd') == false)\n"
               "assert(auth.equal('', '') == true)\n"
               "assert(auth.equal('a\\0b', 'a\\0c') == false)\n"
               "assert(not pcall(auth.equal, 'a'))\n"
               "assert(not pcall(auth.sha256))\n");
    lua_close(L);
    return 0;
}

TEST(open_returns_table)
{
    lua_State *L = luaL_newstate();
    ASSERT_NOT_NULL(L);
    ASSERT_EQ_INT(tk_lua_open_auth(L), 1);
    ASSERT_EQ_INT(lua_type(L, -1), LUA_TTABLE);
    ASSERT_EQ_INT(lua_gettop(L), 1);
    lua_getfield(L, -1, "hash_password");
    ASSERT_EQ_INT(lua_type(L, -1), LUA_TFUNCTION);
    lua_close(L);
    return 0;
}

TEST_MAIN(TEST_ENTRY(passwords), TEST_ENTRY(access_tokens), TEST_ENTRY(utilities),
          TEST_ENTRY(open_returns_table))
