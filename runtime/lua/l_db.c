/* tk.db: parameterized queries and transactions for scripts.
 *   db.query(sql, ...)   -> rows, affected | nil, message, sqlstate, constraint
 *   db.tx(fn, ...)       -> fn's results; a raised error rolls back and is re-raised;
 *                           a failed BEGIN/COMMIT returns nil, message, sqlstate
 *   db.after_commit(fn)  -> runs fn after the current transaction commits
 *                           (at once outside a transaction; dropped on rollback)
 *   db.in_tx()           -> boolean
 *   db.query_count()     -> SQL round trips of the current request
 * Values bind as text parameters: nil and cjson.null are NULL, booleans,
 * numbers, strings, and sequences (PostgreSQL arrays). Rows come back with
 * Lua types by column type: integers, numbers, booleans, arrays (marked as
 * JSON arrays), decoded json/jsonb, timestamps as RFC 3339 UTC with
 * milliseconds; SQL NULL is absent (nil). */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pool.h"
#include "lua/bindings.h"
#include "lua/vm.h"
#include "obs/log.h"
#include "obs/stages.h"

#define MAX_PARAMS 64
#define SQLSTATE_UNAVAILABLE "08006"

/* PostgreSQL type OIDs we convert. */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_BOOL_ARR = 1000,
    OID_INT2_ARR = 1005,
    OID_INT4_ARR = 1007,
    OID_TEXT_ARR = 1009,
    OID_VARCHAR_ARR = 1015,
    OID_INT8_ARR = 1016,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_UUID_ARR = 2951,
    OID_JSONB = 3802
};

/* ---- parameters --------------------------------------------------------- */

/* A growable C string: the array literal is built here, not in a
 * luaL_Buffer, because each element is pushed on the Lua stack while it is
 * read (a luaL_Buffer must own the top of the stack). */
typedef struct {
    char *p;
    size_t n, cap;
} strbuf;

static int sb_add(strbuf *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}

/* Pushes the PostgreSQL array literal of the sequence at `idx`. Raises on
 * nested tables or unsupported values (the C buffer is freed first). */
static void push_array_literal(lua_State *L, int idx)
{
    strbuf b = {0};
    const char *bad = NULL;
    int oom = sb_add(&b, "{", 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= n && !oom && !bad; i++) {
        if (i > 1)
            oom |= sb_add(&b, ",", 1);
        int t = lua_rawgeti(L, idx, i); /* +1 element */
        if (t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL)) {
            oom |= sb_add(&b, "NULL", 4);
        } else if (t == LUA_TBOOLEAN) {
            oom |= sb_add(&b, lua_toboolean(L, -1) ? "t" : "f", 1);
        } else if (t == LUA_TNUMBER || t == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            oom |= sb_add(&b, "\"", 1);
            for (size_t k = 0; k < len && !oom; k++) {
                if (s[k] == '"' || s[k] == '\\')
                    oom |= sb_add(&b, "\\", 1);
                oom |= sb_add(&b, s + k, 1);
            }
            oom |= sb_add(&b, "\"", 1);
        } else {
            bad = "db: array elements must be strings, numbers, booleans or null";
        }
        lua_pop(L, 1); /* -1 element */
    }
    if (!oom && !bad)
        oom |= sb_add(&b, "}", 1);
    if (oom || bad) {
        free(b.p);
        luaL_error(L, "%s", bad ? bad : "db: out of memory building an array parameter");
    }
    lua_pushlstring(L, b.p, b.n);
    free(b.p);
}

/* Converts arguments first..top to text parameters. The strings live on the
 * Lua stack (pushed above top) until the caller pops them. Returns the count
 * or -1 with an error message pushed for a NUL byte in a string. */
static int collect_params(lua_State *L, int first, const char **values)
{
    int top = lua_gettop(L);
    int n = top - first + 1;
    if (n > MAX_PARAMS)
        luaL_error(L, "db.query: at most %d parameters", MAX_PARAMS);
    /* One converted string may be pushed per parameter, plus scratch. */
    luaL_checkstack(L, n + 8, "db.query: too many parameters");
    for (int i = 0; i < n; i++) {
        int idx = first + i;
        int t = lua_type(L, idx);
        values[i] = NULL;
        switch (t) {
        case LUA_TNIL:
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, idx) != NULL)
                luaL_argerror(L, idx, "cannot bind a userdata");
            break;
        case LUA_TBOOLEAN:
            values[i] = lua_toboolean(L, idx) ? "true" : "false";
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) {
                lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
            } else {
                char num[64];
                snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, idx));
                lua_pushstring(L, num);
            }
            values[i] = lua_tostring(L, -1);
            break;
        case LUA_TSTRING: {
            size_t len;
            values[i] = lua_tolstring(L, idx, &len);
            if (memchr(values[i], '\0', len) != NULL) {
                lua_pushfstring(L, "parameter $%d contains a NUL character", i + 1);
                return -1;
            }
            break;
        }
        case LUA_TTABLE:
            push_array_literal(L, idx);
            values[i] = lua_tostring(L, -1);
            break;
        default:
            luaL_argerror(L, idx, "cannot bind this type");
        }
    }
    return n;
}

/* ---- results ------------------------------------------------------------ */

/* "2026-01-15 10:00:00.123456+00" -> "2026-01-15T10:00:00.123Z" */
static void push_timestamp(lua_State *L, const char *s, size_t len)
{
    if (len < 19 || s[10] != ' ') {
        lua_pushlstring(L, s, len);
        return;
    }
    char out[32];
    memcpy(out, s, 10);
    out[10] = 'T';
    memcpy(out + 11, s + 11, 8);
    out[19] = '.';
    const char *p = s + 19;
    int k = 0;
    if (*p == '.') {
        p++;
        for (; k < 3 && *p >= '0' && *p <= '9'; k++, p++)
            out[20 + k] = *p;
    }
    for (; k < 3; k++)
        out[20 + k] = '0';
    out[23] = 'Z';
    lua_pushlstring(L, out, 24);
}

/* Parses a one-dimensional array literal {a,"b c",NULL} into a table marked
 * as a JSON array; elements converted with `elem_oid` rules. */
static void push_array(lua_State *L, const char *s, int elem_int, int elem_bool)
{
    lua_createtable(L, 4, 0); /* +1 array */
    luaL_setmetatable(L, TK_JSON_ARRAY_MT);
    if (*s != '{')
        return;
    s++;
    lua_Integer n = 0;
    luaL_Buffer b;
    while (*s && *s != '}') {
        int quoted = 0;
        luaL_buffinit(L, &b);
        if (*s == '"') {
            quoted = 1;
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && s[1])
                    s++;
                luaL_addchar(&b, *s++);
            }
            if (*s == '"')
                s++;
        } else {
            while (*s && *s != ',' && *s != '}')
                luaL_addchar(&b, *s++);
        }
        luaL_pushresult(&b); /* +1 element text */
        const char *e = lua_tostring(L, -1);
        if (!quoted && strcmp(e, "NULL") == 0) {
            lua_pop(L, 1);
            lua_pushlightuserdata(L, NULL); /* cjson.null */
        } else if (elem_int) {
            lua_Integer v = strtoll(e, NULL, 10);
            lua_pop(L, 1);
            lua_pushinteger(L, v);
        } else if (elem_bool) {
            int v = e[0] == 't';
            lua_pop(L, 1);
            lua_pushboolean(L, v);
        }
        lua_rawseti(L, -2, ++n); /* -1 */
        if (*s == ',')
            s++;
    }
}

/* cjson decodes [] and {} to the same empty table. Before decoding, every
 * empty array outside a string is rewritten as [SENTINEL]; after decoding,
 * tables holding just the sentinel become empty tables marked as arrays. */
#define EMPTY_ARRAY_SENTINEL "\\u0001tk.empty-array\\u0001"
#define EMPTY_ARRAY_DECODED "\001tk.empty-array\001"

/* Returns a malloc'd rewritten copy of s, or NULL when s has no empty array
 * (or on allocation failure, in which case decoding proceeds unmarked). */
static char *mark_empty_arrays(const char *s, size_t len, size_t *outlen)
{
    size_t extra = strlen(EMPTY_ARRAY_SENTINEL) + 2;
    size_t count = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[') {
            size_t j = i + 1;
            while (j < len && (s[j] == ' ' || s[j] == '\n' || s[j] == '\t' || s[j] == '\r'))
                j++;
            if (j < len && s[j] == ']')
                count++;
        }
    }
    if (count == 0)
        return NULL;
    char *out = malloc(len + count * extra + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        out[o++] = c;
        if (in_str) {
            if (c == '\\' && i + 1 < len)
                out[o++] = s[++i];
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[') {
            size_t j = i + 1;
            while (j < len && (s[j] == ' ' || s[j] == '\n' || s[j] == '\t' || s[j] == '\r'))
                j++;
            if (j < len && s[j] == ']') {
                o += (size_t)sprintf(out + o, "\"%s\"", EMPTY_ARRAY_SENTINEL);
                i = j - 1; /* the ']' is copied next */
            }
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* Walks the decoded value at the top of the stack and turns sentinel
 * arrays into empty arrays marked as JSON arrays. */
static void unmark_empty_arrays(lua_State *L, int depth)
{
    if (depth > 1000 || !lua_istable(L, -1)) /* cjson decodes 1000 levels at most */
        return;
    luaL_checkstack(L, 4, "json nesting");
    int top = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, top)) { /* +1 key +1 value */
        if (lua_istable(L, -1)) {
            int sentinel = 0;
            if (lua_rawlen(L, -1) == 1) {
                if (lua_rawgeti(L, -1, 1) == LUA_TSTRING) /* +1 first element */
                    sentinel = strcmp(lua_tostring(L, -1), EMPTY_ARRAY_DECODED) == 0;
                lua_pop(L, 1); /* -1 first element, whatever its type */
            }
            if (sentinel) {
                lua_pushnil(L);
                lua_rawseti(L, -2, 1);
                luaL_setmetatable(L, TK_JSON_ARRAY_MT);
            } else {
                unmark_empty_arrays(L, depth + 1);
            }
        }
        lua_settop(L, top + 1); /* -1 value: the key stays for lua_next */
    }
}

/* Pushes a cjson-decoded value, with empty arrays kept as arrays. Fetches
 * cjson.decode once per VM into the registry. Raises on invalid JSON
 * (which json/jsonb columns cannot hold). */
static void push_json(lua_State *L, const char *s, size_t len)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, "tk.cjson.decode") != LUA_TFUNCTION) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushstring(L, "cjson");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "decode");
        lua_remove(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "tk.cjson.decode");
    }
    size_t mlen = 0;
    char *marked = mark_empty_arrays(s, len, &mlen);
    if (marked != NULL) {
        lua_pushlstring(L, marked, mlen);
        free(marked);
    } else {
        lua_pushlstring(L, s, len);
    }
    lua_call(L, 1, 1);
    if (marked != NULL) {
        /* Wrap the value so the walk can replace it too, then unwrap. */
        lua_createtable(L, 1, 0); /* +1 wrapper */
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1); /* -1: wrapper = {value} */
        unmark_empty_arrays(L, 0);
        lua_rawgeti(L, -1, 1); /* +1 value */
        lua_remove(L, -2);     /* -1 wrapper */
    }
}

void tk_lua_db_push_text(lua_State *L, const char *s, size_t len, unsigned int type)
{
    switch (type) {
    case OID_BOOL:
        lua_pushboolean(L, s[0] == 't');
        break;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        lua_pushinteger(L, (lua_Integer)strtoll(s, NULL, 10));
        break;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        lua_pushnumber(L, (lua_Number)strtod(s, NULL));
        break;
    case OID_TIMESTAMP:
    case OID_TIMESTAMPTZ:
        push_timestamp(L, s, len);
        break;
    case OID_JSON:
    case OID_JSONB:
        push_json(L, s, len);
        break;
    case OID_TEXT_ARR:
    case OID_VARCHAR_ARR:
    case OID_UUID_ARR:
        push_array(L, s, 0, 0);
        break;
    case OID_INT2_ARR:
    case OID_INT4_ARR:
    case OID_INT8_ARR:
        push_array(L, s, 1, 0);
        break;
    case OID_BOOL_ARR:
        push_array(L, s, 0, 1);
        break;
    default:
        lua_pushlstring(L, s, len);
    }
}

/* Pushes rows, affected. */
static int push_result(lua_State *L, PGresult *r)
{
    int nrows = PQntuples(r), ncols = PQnfields(r);
    lua_createtable(L, nrows, 0); /* +1 rows */
    for (int i = 0; i < nrows; i++) {
        lua_createtable(L, 0, ncols); /* +1 row */
        for (int c = 0; c < ncols; c++) {
            if (PQgetisnull(r, i, c))
                continue;
            tk_lua_db_push_text(L, PQgetvalue(r, i, c), (size_t)PQgetlength(r, i, c),
                                PQftype(r, c)); /* +1 value */
            lua_setfield(L, -2, PQfname(r, c)); /* -1 */
        }
        lua_rawseti(L, -2, i + 1); /* -1 row */
    }
    const char *aff = PQcmdTuples(r);
    lua_pushinteger(L, aff && *aff ? strtoll(aff, NULL, 10) : nrows); /* +1 affected */
    return 2;
}

static int push_db_error(lua_State *L, PGresult *r)
{
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    luaL_pushfail(L);
    lua_pushstring(L, msg ? msg : "database error");
    lua_pushstring(L, state ? state : "XX000");
    if (cons)
        lua_pushstring(L, cons);
    else
        lua_pushnil(L);
    return 4;
}

static int push_unavailable(lua_State *L, const char *why)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    tk_log(TK_LOG_WARN, ctx->request_id, "%s", why);
    luaL_pushfail(L);
    lua_pushstring(L, "database unavailable");
    lua_pushstring(L, SQLSTATE_UNAVAILABLE);
    return 3;
}

/* ---- db.query ----------------------------------------------------------- */

static int l_db_query(lua_State *L)
{
    const char *sql = luaL_checkstring(L, 1);
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    const char *values[MAX_PARAMS];
    int n = collect_params(L, 2, values);
    if (n < 0) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        lua_pushstring(L, "22021"); /* character_not_in_repertoire */
        return 3;
    }
    if (ctx->pool == NULL)
        return push_unavailable(L, "db.query: no database in this mode");

    int64_t t0 = tk_stages_on ? tk_stages_now() : 0; /* TASKAPI_TRACE_STAGES */
    tk_db_conn *c = ctx->tx_conn;
    int own = c == NULL;
    if (own) {
        char err[256];
        int rc = tk_db_pool_acquire(ctx->pool, ctx->cfg->db_pool_timeout_ms, &c, err, sizeof err);
        if (rc != TK_OK)
            return push_unavailable(L, err);
    }
    ctx->queries++;
    PGresult *r = tk_db_conn_exec(c, sql, n, values, NULL);
    if (own)
        tk_db_pool_release(ctx->pool, c);
    if (r == NULL)
        return push_unavailable(L, "database connection lost during a query");
    int nret;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        /* Converting can raise (memory); the result must not leak then. */
        PGresult **holder = lua_newuserdatauv(L, sizeof *holder, 0); /* +1 */
        *holder = r;
        luaL_setmetatable(L, "tk.db.result");
        int64_t t1 = tk_stages_on ? tk_stages_now() : 0;
        nret = push_result(L, r);
        if (tk_stages_on)
            tk_stages_sql(t0, t1, tk_stages_now());
        PQclear(r);
        *holder = NULL;
        lua_remove(L, -nret - 1); /* -1 holder */
        return nret;
    }
    nret = push_db_error(L, r);
    PQclear(r);
    return nret;
}

static int result_gc(lua_State *L)
{
    PGresult **holder = luaL_checkudata(L, 1, "tk.db.result");
    PQclear(*holder);
    *holder = NULL;
    return 0;
}

/* ---- db.tx -------------------------------------------------------------- */

static void run_after_commit(lua_State *L, int list_ref)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, list_ref); /* +1 list */
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i); /* +1 fn */
        if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
            tk_log(TK_LOG_ERROR, ctx->request_id, "after_commit callback failed: %s",
                   lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, list_ref);
}

static int l_db_tx(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    int nargs = lua_gettop(L) - 1;
    if (ctx->tx_conn != NULL) {
        /* Nested: part of the enclosing transaction. */
        lua_call(L, nargs, LUA_MULTRET);
        return lua_gettop(L);
    }
    if (ctx->pool == NULL)
        return push_unavailable(L, "db.tx: no database in this mode");
    /* Everything that can raise (allocate) happens before the connection is
     * taken: from acquire to release no Lua error may escape. */
    lua_newtable(L);                               /* +1 after-commit list */
    int list_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* -1 */
    char err[512];
    tk_db_conn *c = NULL;
    int rc = tk_db_pool_acquire(ctx->pool, ctx->cfg->db_pool_timeout_ms, &c, err, sizeof err);
    if (rc == TK_OK) {
        ctx->queries++;
        rc = tk_db_conn_command(c, "BEGIN", err, sizeof err);
        if (rc != TK_OK)
            tk_db_pool_release(ctx->pool, c);
    }
    if (rc != TK_OK) {
        luaL_unref(L, LUA_REGISTRYINDEX, list_ref);
        return push_unavailable(L, err);
    }
    ctx->after_commit_ref = list_ref;
    ctx->tx_conn = c;
    int st = lua_pcall(L, nargs, LUA_MULTRET, 0); /* -fn-args +results or error */
    ctx->tx_conn = NULL;
    ctx->after_commit_ref = LUA_NOREF;
    if (st != LUA_OK) {
        char ignored[256];
        ctx->queries++;
        if (tk_db_conn_command(c, "ROLLBACK", ignored, sizeof ignored) != TK_OK)
            tk_log(TK_LOG_WARN, ctx->request_id, "rollback failed: %s", ignored);
        tk_db_pool_release(ctx->pool, c);
        luaL_unref(L, LUA_REGISTRYINDEX, list_ref);
        return lua_error(L); /* re-raise the same error object */
    }
    int nres = lua_gettop(L);
    ctx->queries++;
    if (PQtransactionStatus(tk_db_conn_pg(c)) == PQTRANS_INERROR) {
        /* A statement failed and the body went on: nothing can commit. */
        char ignored[128];
        if (tk_db_conn_command(c, "ROLLBACK", ignored, sizeof ignored) != TK_OK)
            tk_log(TK_LOG_WARN, ctx->request_id, "rollback failed: %s", ignored);
        tk_errf(err, sizeof err, "transaction aborted by an earlier failed statement");
        rc = TK_EDB;
    } else {
        rc = tk_db_conn_commit(c, err, sizeof err);
    }
    int broken = tk_db_conn_broken(c);
    tk_db_pool_release(ctx->pool, c);
    if (rc != TK_OK) {
        luaL_unref(L, LUA_REGISTRYINDEX, list_ref);
        lua_settop(L, 0);
        if (broken)
            return push_unavailable(L, err);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushstring(L, "40001");
        return 3;
    }
    run_after_commit(L, list_ref);
    return nres;
}

static int l_db_after_commit(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    if (ctx->tx_conn == NULL) {
        lua_settop(L, 1);
        lua_call(L, 0, 0);
        return 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->after_commit_ref); /* +1 list */
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    return 0;
}

static int l_db_in_tx(lua_State *L)
{
    lua_pushboolean(L, tk_lua_ctx_get(L)->tx_conn != NULL);
    return 1;
}

static int l_db_query_count(lua_State *L)
{
    lua_pushinteger(L, tk_lua_ctx_get(L)->queries);
    return 1;
}

int tk_lua_open_db(lua_State *L)
{
    static const luaL_Reg fns[] = {{"query", l_db_query},
                                   {"tx", l_db_tx},
                                   {"after_commit", l_db_after_commit},
                                   {"in_tx", l_db_in_tx},
                                   {"query_count", l_db_query_count},
                                   {NULL, NULL}};
    if (luaL_newmetatable(L, "tk.db.result")) { /* +1 */
        lua_pushcfunction(L, result_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
