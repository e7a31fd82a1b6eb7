/* The `auth` module for scripts: thin wrappers over runtime/auth. Argument
 * misuse raises (luaL_check*, luaL_argcheck); expected failures return
 * nil, message. Policy (who may log in, which role sees what) stays in Lua.
 * bcrypt runs on the calling thread (~50 ms at cost 10). */
#include "lua/l_auth.h"

#include "auth/auth.h"
#include "auth/users.h"
#include "events/bus.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUF_MT "tk.auth.buf"
#define COST_DEFAULT 10
#define COST_MIN 4
#define COST_MAX 31
#define PW_MAX 72

/* A malloc'd C string owned by a userdata, so that a push that raises (out
 * of memory) cannot leak it: __gc frees whatever is still held. */
typedef struct {
    char *s;
} l_buf;

static int buf_gc(lua_State *L)
{
    l_buf *b = luaL_checkudata(L, 1, BUF_MT);
    free(b->s);
    b->s = NULL;
    return 0;
}

/* Pushes an empty l_buf. */
static l_buf *buf_new(lua_State *L)
{
    l_buf *b = lua_newuserdatauv(L, sizeof(*b), 0); /* +1 buf */
    b->s = NULL;
    luaL_setmetatable(L, BUF_MT);
    return b;
}

static int fail(lua_State *L, const char *msg)
{
    luaL_pushfail(L);       /* +1 nil */
    lua_pushstring(L, msg); /* +1 msg */
    return 2;
}

/* Pushes {sub=, role=, jti=, iat=, exp=, ver=}. */
static void push_claims(lua_State *L, const tk_auth_claims *c)
{
    lua_createtable(L, 0, 6);    /* +1 claims */
    lua_pushstring(L, c->sub);   /* +1 */
    lua_setfield(L, -2, "sub");  /* -1 */
    lua_pushstring(L, c->role);  /* +1 */
    lua_setfield(L, -2, "role"); /* -1 */
    lua_pushstring(L, c->jti);   /* +1 */
    lua_setfield(L, -2, "jti");  /* -1 */
    lua_pushinteger(L, c->iat);  /* +1 */
    lua_setfield(L, -2, "iat");  /* -1 */
    lua_pushinteger(L, c->exp);  /* +1 */
    lua_setfield(L, -2, "exp");  /* -1 */
    lua_pushinteger(L, c->ver);  /* +1 */
    lua_setfield(L, -2, "ver");  /* -1 */
}

/* Checks that argument arg is a string of 1..max bytes with no NUL. */
static const char *check_field(lua_State *L, int arg, size_t max)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    luaL_argcheck(L, len > 0 && len <= max && strlen(s) == len, arg,
                  "expected a non-empty string without NUL bytes");
    return s;
}

/* auth.hash_password(pw [, cost]) -> hash | nil, err */
static int l_auth_hash_password(lua_State *L)
{
    char out[TK_AUTH_HASH_MAX];
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    lua_Integer cost = luaL_optinteger(L, 2, COST_DEFAULT);
    int rc;

    luaL_argcheck(L, cost >= COST_MIN && cost <= COST_MAX, 2, "cost must be 4..31");
    if (len > PW_MAX)
        return fail(L, "password too long");
    if (memchr(pw, '\0', len) != NULL)
        return fail(L, "password contains a NUL byte");
    rc = tk_auth_password_hash(pw, len, (int)cost, out, sizeof(out));
    if (rc != 0)
        return fail(L, tk_strerror(rc));
    lua_pushstring(L, out); /* +1 hash */
    return 1;
}

/* auth.verify_password(pw, hash_or_nil) -> boolean */
static int l_auth_verify_password(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    const char *hash = lua_isnoneornil(L, 2) ? NULL : luaL_checkstring(L, 2);

    lua_pushboolean(L, tk_auth_password_verify(pw, len, hash)); /* +1 */
    return 1;
}

/* auth.sign_access(sub, role, ttl [, ver]) -> token, claims | nil, err
 * sub must be a UUID; ver is the user's token version (default 0). */
static int l_auth_sign_access(lua_State *L)
{
    const char *sub = check_field(L, 1, sizeof(((tk_auth_claims *)0)->sub) - 1);
    const char *role = check_field(L, 2, sizeof(((tk_auth_claims *)0)->role) - 1);
    lua_Integer ttl = luaL_checkinteger(L, 3);
    lua_Integer ver = luaL_optinteger(L, 4, 0);
    unsigned char id[16];
    tk_auth_claims c;
    l_buf *b;
    int rc;

    luaL_argcheck(L, tk_auth_uuid_parse(sub, id) == 0, 1, "expected a UUID");
    luaL_argcheck(L, ttl > 0, 3, "ttl must be positive");
    luaL_argcheck(L, ver >= 0 && ver <= INT32_MAX, 4, "ver must be 0..2^31-1");
    b = buf_new(L); /* +1 buf: owns the token until it is pushed */
    rc = tk_auth_jwt_sign(sub, role, ver, ttl, &b->s, &c);
    if (rc != 0)
        return fail(L, tk_strerror(rc));
    lua_pushstring(L, b->s); /* +1 token */
    free(b->s);
    b->s = NULL;
    push_claims(L, &c); /* +1 claims */
    return 2;
}

/* auth.verify_access(token) -> claims | nil, "invalid" | nil, "revoked" */
static int l_auth_verify_access(lua_State *L)
{
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    int64_t now = (int64_t)time(NULL);
    tk_auth_claims c;

    if (strlen(token) != len || tk_auth_jwt_verify(token, now, &c) != 0)
        return fail(L, "invalid");
    if (tk_auth_deny_check(c.jti, now))
        return fail(L, "revoked");
    push_claims(L, &c); /* +1 claims */
    return 1;
}

/* auth.random_token() -> 43-char base64url string | nil, err */
static int l_auth_random_token(lua_State *L)
{
    char out[TK_AUTH_TOKEN_LEN + 1];
    int rc = tk_auth_random_token(out, sizeof(out));

    if (rc != 0)
        return fail(L, tk_strerror(rc));
    lua_pushstring(L, out); /* +1 token */
    return 1;
}

/* auth.sha256(s) -> 64-char lowercase hex | nil, err */
static int l_auth_sha256(lua_State *L)
{
    char hex[65];
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);

    tk_auth_sha256_hex(s, len, hex);
    if (hex[0] == '\0')
        return fail(L, tk_strerror(TK_ENOMEM));
    lua_pushstring(L, hex); /* +1 hex */
    return 1;
}

/* auth.equal(a, b) -> boolean; time depends on #a only. */
static int l_auth_equal(lua_State *L)
{
    size_t la;
    size_t lb;
    const char *a = luaL_checklstring(L, 1, &la);
    const char *b = luaL_checklstring(L, 2, &lb);
    int eq;

    if (la == lb) {
        eq = tk_auth_ct_equal(a, b, la);
    } else {
        (void)tk_auth_ct_equal(a, a, la); /* spend the same time, then say no */
        eq = 0;
    }
    lua_pushboolean(L, eq); /* +1 */
    return 1;
}

/* auth.uuid() -> v4 uuid string | nil, err */
static int l_auth_uuid(lua_State *L)
{
    char out[TK_AUTH_UUID_LEN + 1];
    int rc = tk_auth_uuid_v4(out, sizeof(out));

    if (rc != 0)
        return fail(L, tk_strerror(rc));
    lua_pushstring(L, out); /* +1 uuid */
    return 1;
}

/* auth.deny(jti, exp) -> true | nil, err */
static int l_auth_deny(lua_State *L)
{
    const char *jti = check_field(L, 1, 255);
    lua_Integer exp = luaL_checkinteger(L, 2);
    int rc = tk_auth_deny_add(jti, exp);

    if (rc != 0)
        return fail(L, tk_strerror(rc));
    lua_pushboolean(L, 1); /* +1 true */
    return 1;
}

/* auth.user_changed(id) -> true | nil, err
 * The user was deleted or disabled, or changed the password: forget what the
 * user check cached about them, here and (through the realtime bus and
 * Redis) on every other instance, so their older tokens are refused at once.
 * Call after the change is committed. */
static int l_auth_user_changed(lua_State *L)
{
    const char *id = check_field(L, 1, TK_AUTH_UUID_LEN);
    unsigned char bin[16];

    luaL_argcheck(L, tk_auth_uuid_parse(id, bin) == 0, 1, "expected a UUID");
    tk_auth_users_invalidate(id);
    tk_event m = {.kind = TK_EVENT_USER, .room = "", .arg = id};
    int rc = tk_bus_publish(&m);
    if (rc != 0)
        return fail(L, tk_strerror(rc));
    lua_pushboolean(L, 1); /* +1 true */
    return 1;
}

/* auth.hmac_sha256(key, data) -> lower-case hex HMAC-SHA256 (webhook
 * signatures and the like). */
static int l_auth_hmac_sha256(lua_State *L)
{
    size_t klen, dlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *data = luaL_checklstring(L, 2, &dlen);
    char hex[65];
    if (tk_auth_hmac_sha256_hex(key, klen, data, dlen, hex) != TK_OK)
        return luaL_error(L, "auth.hmac_sha256: %s", tk_strerror(TK_EIO));
    lua_pushlstring(L, hex, 64); /* +1 */
    return 1;
}

static const luaL_Reg funcs[] = {
    {"user_changed", l_auth_user_changed},
    {"hmac_sha256", l_auth_hmac_sha256},
    {"hash_password", l_auth_hash_password},
    {"verify_password", l_auth_verify_password},
    {"sign_access", l_auth_sign_access},
    {"verify_access", l_auth_verify_access},
    {"random_token", l_auth_random_token},
    {"sha256", l_auth_sha256},
    {"equal", l_auth_equal},
    {"uuid", l_auth_uuid},
    {"deny", l_auth_deny},
    {NULL, NULL},
};

int tk_lua_open_auth(lua_State *L)
{
    if (luaL_newmetatable(L, BUF_MT)) { /* +1 mt */
        lua_pushcfunction(L, buf_gc);   /* +1 */
        lua_setfield(L, -2, "__gc");    /* -1 */
    }
    lua_pop(L, 1);         /* -1 mt */
    luaL_newlib(L, funcs); /* +1 module */
    return 1;
}
