/* tk.json: a JSON writer for Lua values, written for this server's answers.
 *   json.encode(v)      -> text; raises on what JSON cannot hold (functions,
 *                          userdata, NaN/Infinity, non-string keys in an
 *                          object, nesting deeper than 64, so cycles too)
 *   json.shape(keys)    -> a metatable for objects of one shape: their keys
 *                          are written in the order of `keys` (absent ones
 *                          skipped); any other key follows, sorted
 *   json.null           -> the null sentinel (a NULL light userdata: cjson's)
 *   json.array_mt       -> the metatable that marks a table as an array
 *   json.is_fragment(v) -> true for pre-encoded JSON (from tk.db.*_json)
 *   json.b64url_encode(s) / json.b64url_decode(s) -> base64url without
 *                          padding, for cursors (decode: nil if malformed)
 * Output is deterministic: arrays (tables marked with a metatable named
 * "json.array", or plain sequences) in index order, shaped objects in their
 * declared order, other objects "id" first and then bytewise-sorted keys;
 * an empty unmarked table is {}. Integers print without ".0", other numbers
 * with 14 significant digits (as lua-cjson did). Strings are escaped only
 * where JSON requires it ('"', '\\', U+0000..U+001F): '/' stays '/'.
 * Fragments are spliced in as they are.
 *
 * Why a writer of our own: it walks the Lua tables once, straight into one
 * buffer (lua-cjson cannot order keys nor tell [] from {}, and libjansson
 * would first build a json_t tree: one allocation per value). Measured in
 * bench/README.md "JSON". */
#include "lua/l_json.h"
#include "b64url.h"

#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define BUFFER_MT "tk.json.buffer"
#define SMALL_KEYS 32

/* ---- the buffer ----------------------------------------------------------- */

/* The buffer of one encoding lives in a userdata on the Lua stack, so a
 * raised error (bad value, memory) frees it through __gc. */
static int buffer_gc(lua_State *L)
{
    tk_jbuf_cleanup(luaL_checkudata(L, 1, BUFFER_MT));
    return 0;
}

tk_jbuf *tk_json_push_buffer(lua_State *L)
{
    tk_jbuf *b = lua_newuserdatauv(L, sizeof *b, 0); /* +1 */
    tk_jbuf_init(b, 0);
    if (luaL_newmetatable(L, BUFFER_MT)) { /* +1 */
        lua_pushcfunction(L, buffer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2); /* -1 */
    return b;
}

/* 1: escaped as \u00XX, 2: as \ + the letter in SHORT */
static const unsigned char ESC[256] = {1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 1,
                                       2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                       1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2, ['\\'] = 2};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
#define SWAR 1
/* The bytes of the 8 at s that JSON escapes (< 0x20, '"', '\\'), as the top
 * bit of each such byte: a byte v < n makes (v - n) borrow into its top
 * bit, which ~v then keeps only for bytes < 0x80; '"' and '\\' are first
 * turned into 0 by XOR. A borrow can also mark a byte above (at a higher
 * address than) one truly marked, never below it: the lowest mark is
 * always a byte to escape, which is all the scan uses. */
static inline uint64_t escape_marks(const char *s)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t v;
    memcpy(&v, s, sizeof v);
    uint64_t q = v ^ (ones * '"'), bs = v ^ (ones * '\\');
    return ((v - ones * 0x20) | (q - ones) | (bs - ones)) & ~v & high;
}
#endif

/* The position of the first byte from i on that JSON escapes, or n. */
static inline size_t next_escape(const char *s, size_t i, size_t n)
{
#ifdef SWAR
    for (; i + 8 <= n; i += 8) {
        uint64_t m = escape_marks(s + i);
        if (m != 0)
            return i + ((size_t)__builtin_ctzll(m) >> 3);
    }
#endif
    while (i < n && ESC[(unsigned char)s[i]] == 0)
        i++;
    return i;
}

void tk_json_put_escaped(tk_jbuf *b, const char *s, size_t n)
{
    static const char SHORT[128] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',
                                    ['\r'] = 'r', ['"'] = '"',  ['\\'] = '\\'};
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = next_escape(s, 0, n); i < n; i = next_escape(s, i + 1, n)) {
        unsigned char c = (unsigned char)s[i];
        tk_json_put(b, s + run, i - run);
        run = i + 1;
        if (ESC[c] == 2) {
            char e[2] = {'\\', SHORT[c]};
            tk_json_put(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            tk_json_put(b, e, 6);
        }
    }
    tk_json_put(b, s + run, n - run);
}

void tk_json_put_string(tk_jbuf *b, const char *s, size_t n)
{
    tk_json_put(b, "\"", 1);
    tk_json_put_escaped(b, s, n);
    tk_json_put(b, "\"", 1);
}

static void add(lua_State *L, tk_jbuf *b, const char *s, size_t len)
{
    tk_json_put(b, s, len);
    if (!tk_jbuf_ok(b))
        luaL_error(L, "json.encode: out of memory");
}

static void add_string(lua_State *L, tk_jbuf *b, const char *s, size_t len)
{
    tk_json_put_string(b, s, len);
    if (!tk_jbuf_ok(b))
        luaL_error(L, "json.encode: out of memory");
}

/* ---- fragments ------------------------------------------------------------ */

/* A fragment is a userdata holding a tk_jbuf with JSON text in it. */
static int fragment_gc(lua_State *L)
{
    tk_jbuf_cleanup(luaL_checkudata(L, 1, TK_JSON_FRAGMENT_MT));
    return 0;
}

static int fragment_tostring(lua_State *L)
{
    tk_jbuf *f = luaL_checkudata(L, 1, TK_JSON_FRAGMENT_MT);
    lua_pushlstring(L, tk_jbuf_text(f), f->len);
    return 1;
}

static void fragment_metatable(lua_State *L)
{
    if (luaL_newmetatable(L, TK_JSON_FRAGMENT_MT)) { /* +1 */
        lua_pushcfunction(L, fragment_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, fragment_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "json.fragment"); /* getmetatable(f) in scripts: no access */
        lua_setfield(L, -2, "__metatable");
    }
}

tk_jbuf *tk_json_push_fragment_buffer(lua_State *L, size_t reserve)
{
    tk_jbuf *f = lua_newuserdatauv(L, sizeof *f, 0); /* +1 */
    tk_jbuf_init(f, 0);
    fragment_metatable(L);   /* +1 */
    lua_setmetatable(L, -2); /* -1 */
    if (reserve)
        tk_jbuf_reserve(f, reserve);
    return f;
}

void tk_json_push_fragment(lua_State *L, const char *s, size_t len)
{
    tk_jbuf *f = tk_json_push_fragment_buffer(L, len);
    tk_jbuf_add(f, s, len);
    if (!tk_jbuf_ok(f))
        luaL_error(L, "json: out of memory");
}

/* ---- encoding ------------------------------------------------------------- */

static void encode(lua_State *L, tk_jbuf *b, int idx, int depth);

typedef struct {
    const char *s;
    size_t len;
} key;

static int key_cmp(const void *pa, const void *pb)
{
    const key *a = pa, *b = pb;
    int a_id = a->len == 2 && memcmp(a->s, "id", 2) == 0;
    int b_id = b->len == 2 && memcmp(b->s, "id", 2) == 0;
    if (a_id != b_id)
        return b_id - a_id;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c != 0)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Writes the pairs of the table at idx whose key is not in the set at
 * `skip` (0: none), "id" first then sorted; a comma first when *first is 0.
 * The key strings stay alive in the table while they are written. */
static void encode_pairs_sorted(lua_State *L, tk_jbuf *b, int idx, int skip, int depth, int *first)
{
    key small[SMALL_KEYS];
    key *keys = small;
    size_t n = 0, cap = SMALL_KEYS;
    int slot = lua_gettop(L) + 1; /* holds a bigger key array when needed */
    lua_pushnil(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* +1 key +1 value */
        lua_pop(L, 1);         /* -1 value */
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "json.encode: an object key must be a string (got a %s)",
                       luaL_typename(L, -1));
        if (skip) {
            lua_pushvalue(L, -1);
            int listed = lua_rawget(L, skip) != LUA_TNIL;
            lua_pop(L, 1);
            if (listed)
                continue;
        }
        if (n == cap) { /* a userdata, so a raised error frees it too */
            key *more = lua_newuserdatauv(L, 2 * cap * sizeof *more, 0); /* +1 */
            memcpy(more, keys, n * sizeof *keys);
            lua_replace(L, slot);
            keys = more;
            cap *= 2;
        }
        keys[n].s = lua_tolstring(L, -1, &keys[n].len);
        n++;
    }
    if (n > 1)
        qsort(keys, n, sizeof *keys, key_cmp);
    for (size_t i = 0; i < n; i++) {
        if (!*first)
            add(L, b, ",", 1);
        *first = 0;
        add_string(L, b, keys[i].s, keys[i].len);
        add(L, b, ":", 1);
        lua_pushlstring(L, keys[i].s, keys[i].len); /* +1 key */
        lua_rawget(L, idx);                         /* -1 +1 value */
        encode(L, b, lua_gettop(L), depth);
        lua_pop(L, 1);
    }
    lua_settop(L, slot - 1);
}

/* An object of a json.shape: keys[] first, then any others. */
static void encode_shaped(lua_State *L, tk_jbuf *b, int idx, int keys, int set, int depth)
{
    int first = 1, written = 0;
    lua_Integer nk = (lua_Integer)lua_rawlen(L, keys);
    add(L, b, "{", 1);
    for (lua_Integer i = 1; i <= nk; i++) {
        lua_rawgeti(L, keys, i);              /* +1 key */
        lua_pushvalue(L, -1);                 /* +1 key */
        if (lua_rawget(L, idx) == LUA_TNIL) { /* -1 +1 value */
            lua_pop(L, 2);
            continue;
        }
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        if (!first)
            add(L, b, ",", 1);
        first = 0;
        add_string(L, b, k, klen);
        add(L, b, ":", 1);
        encode(L, b, lua_gettop(L), depth);
        lua_pop(L, 2);
        written++;
    }
    int total = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        total++;
    }
    if (total > written)
        encode_pairs_sorted(L, b, idx, set, depth, &first);
    add(L, b, "}", 1);
}

static void encode_array(lua_State *L, tk_jbuf *b, int idx, lua_Integer n, int depth)
{
    add(L, b, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            add(L, b, ",", 1);
        lua_rawgeti(L, idx, i); /* +1 */
        encode(L, b, lua_gettop(L), depth);
        lua_pop(L, 1);
    }
    add(L, b, "]", 1);
}

static void encode_table(lua_State *L, tk_jbuf *b, int idx, int depth)
{
    if (depth > MAX_DEPTH)
        luaL_error(L, "json.encode: nesting deeper than %d (or a cycle)", MAX_DEPTH);
    luaL_checkstack(L, 8, "json.encode: nesting");
    int top = lua_gettop(L);
    if (lua_getmetatable(L, idx)) { /* +1 mt */
        int mt = top + 1;
        if (lua_getfield(L, mt, "__jsonkeys") == LUA_TTABLE) { /* +1 keys */
            lua_getfield(L, mt, "__jsonset");                  /* +1 set */
            encode_shaped(L, b, idx, mt + 1, lua_istable(L, -1) ? mt + 2 : 0, depth + 1);
            lua_settop(L, top);
            return;
        }
        lua_getfield(L, mt, "__name"); /* +1 */
        const char *name = lua_tostring(L, -1);
        int marked = name != NULL && strcmp(name, TK_JSON_ARRAY_MT) == 0;
        lua_settop(L, top);
        if (marked) {
            encode_array(L, b, idx, (lua_Integer)lua_rawlen(L, idx), depth + 1);
            return;
        }
    }
    /* Unmarked: a sequence 1..n (n > 0) is an array, anything else an object. */
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), total = 0, ints = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        total++;
        if (lua_isinteger(L, -1)) {
            lua_Integer k = lua_tointeger(L, -1);
            ints += k >= 1 && k <= n;
        }
    }
    if (n > 0 && ints == total && total == n) {
        encode_array(L, b, idx, n, depth + 1);
        return;
    }
    int first = 1;
    add(L, b, "{", 1);
    encode_pairs_sorted(L, b, idx, 0, depth + 1, &first);
    lua_settop(L, top);
    add(L, b, "}", 1);
}

static void encode(lua_State *L, tk_jbuf *b, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        add(L, b, "null", 4);
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            add(L, b, "true", 4);
        else
            add(L, b, "false", 5);
        return;
    case LUA_TNUMBER: {
        char num[64];
        int len;
        if (lua_isinteger(L, idx)) {
            len = snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (!isfinite(d))
                luaL_error(L, "json.encode: NaN and Infinity have no JSON form");
            len = snprintf(num, sizeof num, "%.14g", d);
        }
        add(L, b, num, (size_t)len);
        return;
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        add_string(L, b, s, len);
        return;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            add(L, b, "null", 4);
            return;
        }
        break;
    case LUA_TUSERDATA: {
        tk_jbuf *f = luaL_testudata(L, idx, TK_JSON_FRAGMENT_MT);
        if (f != NULL) {
            add(L, b, tk_jbuf_text(f), f->len);
            return;
        }
        break;
    }
    case LUA_TTABLE:
        encode_table(L, b, idx, depth);
        return;
    default:
        break;
    }
    luaL_error(L, "json.encode: cannot encode a %s", luaL_typename(L, idx));
}

/* The encoder's buffer: one per Lua state, kept in the registry and reused
 * (encoding calls no Lua code, so it is never in use twice); a buffer grown
 * past KEEP_BYTES by a big answer is given back after it. */
#define KEEP_BYTES (256 * 1024)
static const char BUFFER_KEY = 'j';

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    tk_jbuf *b;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &BUFFER_KEY) == LUA_TUSERDATA) { /* +1 at 2 */
        b = lua_touserdata(L, 2);
        if (!tk_jbuf_ok(b))
            tk_jbuf_cleanup(b);
        b->len = 0; /* what a raised error left behind */
    } else {
        lua_pop(L, 1);
        b = tk_json_push_buffer(L); /* +1 at 2 */
        lua_pushvalue(L, 2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &BUFFER_KEY);
    }
    tk_jbuf_reserve(b, 1024); /* most answers fit: no reallocation */
    encode(L, b, 1, 0);
    lua_pushlstring(L, tk_jbuf_text(b), b->len);
    if (b->cap > KEEP_BYTES)
        tk_jbuf_cleanup(b);
    b->len = 0;
    return 1;
}

/* json.shape({"id", "name", ...}) -> metatable */
static int l_shape(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    lua_createtable(L, 0, 3);              /* +1 mt */
    lua_createtable(L, (int)n, 0);         /* +1 keys */
    lua_createtable(L, 0, (int)n);         /* +1 set */
    for (lua_Integer i = 1; i <= n; i++) { /* a copy: the caller's list may change */
        if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
            return luaL_error(L, "json.shape: key %d is not a string", (int)i);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -4, i);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    lua_setfield(L, -3, "__jsonset");
    lua_setfield(L, -2, "__jsonkeys");
    lua_pushliteral(L, "json.object");
    lua_setfield(L, -2, "__name");
    return 1;
}

/* ---- base64url (the cursors of lib.cursor) ----------------------------------- */

/* json.b64url_encode(s) -> s in base64url without padding */
static int l_b64url_encode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, TK_B64URL_ENCODED_LEN(n));
    luaL_pushresultsize(&b, tk_b64url_encode(s, n, out));
    return 1;
}

/* json.b64url_decode(s) -> bytes | nil for a length that cannot be base64
 * (4k + 1) or a byte outside the alphabet (no padding). The bits after the
 * last whole byte are ignored, as lib.cursor's decoder in Lua did. */
static int l_b64url_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n / 4 * 3 + 2);
    long len = tk_b64url_decode(s, n, out, 0);
    if (len < 0) {
        lua_pushnil(L);
        return 1;
    }
    luaL_pushresultsize(&b, (size_t)len);
    return 1;
}

static int l_is_fragment(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, TK_JSON_FRAGMENT_MT) != NULL);
    return 1;
}

int tk_lua_open_json(lua_State *L)
{
    static const luaL_Reg fns[] = {{"encode", l_encode},
                                   {"shape", l_shape},
                                   {"is_fragment", l_is_fragment},
                                   {"b64url_encode", l_b64url_encode},
                                   {"b64url_decode", l_b64url_decode},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    luaL_newmetatable(L, TK_JSON_ARRAY_MT); /* +1: the server made it already */
    lua_setfield(L, -2, "array_mt");
    fragment_metatable(L);
    lua_pop(L, 1);
    return 1;
}

/* Outside the server (Lua unit specs): require "tk.json" from build/lua. */
int luaopen_tk_json(lua_State *L);
int luaopen_tk_json(lua_State *L)
{
    return tk_lua_open_json(L);
}
