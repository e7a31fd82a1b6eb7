/* tk.db: parameterized queries and transactions for scripts.
 *   db.query(sql, ...)   -> rows, affected | nil, message, sqlstate, constraint
 *   db.tx(fn, ...)       -> fn's results; a raised error rolls back and is re-raised;
 *                           a failed BEGIN/COMMIT returns nil, message, sqlstate
 *   db.after_commit(fn)  -> runs fn after the current transaction commits
 *                           (at once outside a transaction; dropped on rollback)
 *   db.after_commit_mark() / db.after_commit_drop(n) -> savepoints: forget
 *                           the callbacks added after mark n
 *   db.in_tx()           -> boolean
 *   db.query_count()     -> SQL round trips of the current request
 *   db.use_primary()     -> the rest of this request reads from the primary
 *   db.replica()         -> nil without DATABASE_READ_URL, else
 *                           {state = "ok"|"lagging"|"unavailable", lag_seconds}
 *   db.projection(spec [, row]) -> a compiled projection (column -> field,
 *                           type, nullable; row: the columns rows come back with)
 *   db.query_json(sql, projection, limit, ...) -> fragment, nrows, last row, first row
 *   db.one_json(sql, projection, ...)          -> fragment, row | false
 *                           rows written as JSON straight from the result, in
 *                           the projection's key order (see tk.json fragments)
 * Values bind as text parameters: nil and json.null are NULL, booleans,
 * numbers, strings, and sequences (PostgreSQL arrays). Rows come back with
 * Lua types by column type: integers, numbers, booleans, arrays (marked as
 * JSON arrays), decoded json/jsonb (by libjansson: arrays marked, null as
 * json.null), timestamps as RFC 3339 UTC with
 * milliseconds; SQL NULL is absent (nil).
 * With a read replica (db/replica.h), a read outside a transaction (see
 * tk_lua_db_is_read) in an HTTP request goes to the replica unless the request or its
 * user wrote within READ_YOUR_WRITES_MS or the replica is down or lags;
 * any failure there is retried on the primary. */
#include <jansson.h>
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pool.h"
#include "db/replica.h"
#include "db/ryw.h"
#include "events/bus.h"
#include "lua/bindings.h"
#include "lua/l_json.h"
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
    OID_UUID = 2950,
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

/* "2026-01-15 10:00:00.123456+00" -> "2026-01-15T10:00:00.123Z" in out
 * (24 bytes); returns 0 for text not in that form (passed on as it is). */
static size_t format_timestamp(const char *s, size_t len, char *out)
{
    if (len < 19 || s[10] != ' ')
        return 0;
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
    return 24;
}

static void push_timestamp(lua_State *L, const char *s, size_t len)
{
    char out[32];
    size_t n = format_timestamp(s, len, out);
    if (n == 0)
        lua_pushlstring(L, s, len);
    else
        lua_pushlstring(L, out, n);
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

/* json/jsonb columns: libjansson parses them (it tells [] from {} where
 * cjson cannot), and the tree becomes Lua values with arrays marked as JSON
 * arrays and null as json.null, by construction. The tree is held by a
 * userdata while it is converted, so a raised error (memory) frees it. */
static int jansson_gc(lua_State *L)
{
    json_t **holder = luaL_checkudata(L, 1, "tk.db.jansson");
    json_decref(*holder);
    *holder = NULL;
    return 0;
}

static void push_jansson(lua_State *L, json_t *v)
{
    luaL_checkstack(L, 4, "json nesting");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(v)); /* +1 */
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            push_jansson(L, x);     /* +1 */
            lua_setfield(L, -2, k); /* -1 */
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        lua_createtable(L, (int)n, 0); /* +1 */
        luaL_setmetatable(L, TK_JSON_ARRAY_MT);
        for (size_t i = 0; i < n; i++) {
            push_jansson(L, json_array_get(v, i));  /* +1 */
            lua_rawseti(L, -2, (lua_Integer)i + 1); /* -1 */
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushlightuserdata(L, NULL); /* json.null */
    }
}

/* Pushes the decoded value of json text s. Raises on invalid JSON (which
 * json/jsonb columns cannot hold). */
static void push_json(lua_State *L, const char *s, size_t len)
{
    json_t **holder = lua_newuserdatauv(L, sizeof *holder, 0); /* +1 */
    *holder = NULL;
    if (luaL_newmetatable(L, "tk.db.jansson")) {
        lua_pushcfunction(L, jansson_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    json_error_t jerr;
    *holder = json_loadb(s, len, JSON_DECODE_ANY, &jerr);
    if (*holder == NULL)
        luaL_error(L, "db: a json column does not decode: %s", jerr.text);
    push_jansson(L, *holder); /* +1 */
    json_decref(*holder);
    *holder = NULL;
    lua_remove(L, -2); /* -1 holder */
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

/* Pushes row i of r as a table: column name -> value; NULL is absent. */
static void push_row(lua_State *L, PGresult *r, int i)
{
    int ncols = PQnfields(r);
    lua_createtable(L, 0, ncols); /* +1 row */
    for (int c = 0; c < ncols; c++) {
        if (PQgetisnull(r, i, c))
            continue;
        tk_lua_db_push_text(L, PQgetvalue(r, i, c), (size_t)PQgetlength(r, i, c),
                            PQftype(r, c)); /* +1 value */
        lua_setfield(L, -2, PQfname(r, c)); /* -1 */
    }
}

/* Pushes rows, affected. */
static int push_result(lua_State *L, PGresult *r)
{
    int nrows = PQntuples(r);
    lua_createtable(L, nrows, 0); /* +1 rows */
    for (int i = 0; i < nrows; i++) {
        push_row(L, r, i);         /* +1 row */
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

/* ---- read routing ---------------------------------------------------------- */

/* Words that make a statement a write, or something a hot standby refuses. */
static const char *const WRITE_WORDS[] = {"insert",
                                          "update",
                                          "delete",
                                          "merge",
                                          "truncate",
                                          "nextval",
                                          "setval",
                                          "lock",
                                          "copy",
                                          "call",
                                          "notify",
                                          "listen",
                                          "pg_notify",
                                          "set_config",
                                          "pg_advisory_lock",
                                          "pg_advisory_xact_lock",
                                          "pg_try_advisory_lock",
                                          "pg_try_advisory_xact_lock",
                                          NULL};

/* 1 when sql is a read the replica may serve: it starts with SELECT, WITH,
 * VALUES, TABLE or SHOW and names no word of WRITE_WORDS outside quotes
 * and comments (FOR UPDATE, a data-modifying WITH, a sequence). A miss
 * either way is safe: a write sent to the replica fails there and is
 * retried on the primary; a read taken for a write reads the primary. */
int tk_lua_db_is_read(const char *sql)
{
    int first = 1;
    const char *p = sql;
    while (*p) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\'' || ch == '"') { /* a literal or a quoted identifier */
            for (p++; *p && *p != (char)ch; p++) {
            }
            if (*p)
                p++;
        } else if (ch == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (ch == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else if ((ch | 32) >= 'a' && (ch | 32) <= 'z') {
            char w[32];
            size_t n = 0;
            for (; (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_';
                 p++)
                if (n < sizeof w - 1)
                    w[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            w[n] = '\0';
            if (first) {
                first = 0;
                if (strcmp(w, "select") != 0 && strcmp(w, "with") != 0 &&
                    strcmp(w, "values") != 0 && strcmp(w, "table") != 0 && strcmp(w, "show") != 0)
                    return 0;
            }
            for (int i = 0; WRITE_WORDS[i]; i++)
                if (strcmp(w, WRITE_WORDS[i]) == 0)
                    return 0;
        } else if (ch == '$' && p[1] == '$') {
            return 0; /* dollar quoting: not worth reading through */
        } else {
            p++;
        }
    }
    return !first;
}

void tk_lua_db_begin_request(tk_lua_ctx *ctx, const char *user_id, const char *ip)
{
    ctx->reader = NULL;
    if (user_id != NULL && *user_id) {
        snprintf(ctx->reader_buf, sizeof ctx->reader_buf, "%s", user_id);
        ctx->reader = ctx->reader_buf;
    } else if (ip != NULL && *ip) {
        snprintf(ctx->reader_buf, sizeof ctx->reader_buf, "ip:%s", ip);
        ctx->reader = ctx->reader_buf;
    }
    ctx->read_primary = ctx->ryw_checked = ctx->wrote = 0;
    ctx->reads_replica = ctx->reads_primary = 0;
}

void tk_lua_db_end_request(tk_lua_ctx *ctx)
{
    ctx->reader = NULL;
    ctx->read_primary = 1;
}

/* The request wrote (with a replica attached): its later reads, and its
 * user's for READ_YOUR_WRITES_MS, go to the primary. */
static void note_write(tk_lua_ctx *ctx)
{
    if (ctx->wrote)
        return;
    ctx->wrote = 1;
    ctx->read_primary = 1;
    if (ctx->reader != NULL)
        tk_db_ryw_note(ctx->reader);
}

/* Whether this read may go to replica `rep`. */
static int replica_ok(tk_lua_ctx *ctx, tk_db_replica *rep)
{
    if (ctx->reader == NULL || ctx->read_primary || !tk_db_replica_usable(rep))
        return 0;
    if (!ctx->ryw_checked) {
        ctx->ryw_checked = 1;
        if (tk_db_ryw_recent(ctx->reader))
            ctx->read_primary = 1;
    }
    return !ctx->read_primary;
}

/* Runs sql outside a transaction on a connection of `pool`. Returns 0 with
 * the result in *out (NULL: the connection was lost) or the acquire's
 * failure with the reason in err. */
static int exec_on(tk_lua_ctx *ctx, tk_db_pool *pool, const char *sql, int n,
                   const char *const *values, PGresult **out, char *err, size_t errlen)
{
    tk_db_conn *c = NULL;
    int rc = tk_db_pool_acquire(pool, ctx->cfg->db_pool_timeout_ms, &c, err, errlen);
    if (rc != TK_OK)
        return rc;
    ctx->queries++;
    *out = tk_db_conn_exec(c, sql, n, values, NULL);
    tk_db_pool_release(pool, c);
    return TK_OK;
}

/* A statement outside a transaction: a read on the replica when it may,
 * falling back to the primary on any failure there. */
static int exec_routed(tk_lua_ctx *ctx, const char *sql, int n, const char *const *values,
                       PGresult **out, char *err, size_t errlen)
{
    tk_db_replica *rep = tk_db_pool_replica(ctx->pool);
    if (rep == NULL)
        return exec_on(ctx, ctx->pool, sql, n, values, out, err, errlen);
    if (!tk_lua_db_is_read(sql)) {
        note_write(ctx);
        return exec_on(ctx, ctx->pool, sql, n, values, out, err, errlen);
    }
    if (replica_ok(ctx, rep)) {
        PGresult *r = NULL;
        int rc = exec_on(ctx, tk_db_replica_pool(rep), sql, n, values, &r, err, errlen);
        if (rc == TK_OK && r != NULL &&
            (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)) {
            tk_db_replica_count_read(rep, 1);
            ctx->reads_replica++;
            *out = r;
            return TK_OK;
        }
        if (rc == TK_EUNAVAIL || (rc == TK_OK && r == NULL))
            tk_db_replica_lost(rep);
        PQclear(r);
        tk_db_replica_count_fallback(rep);
        tk_log(TK_LOG_DEBUG, ctx->request_id,
               "a read failed on the replica; retried on the primary");
    }
    tk_db_replica_count_read(rep, 0);
    ctx->reads_primary++;
    return exec_on(ctx, ctx->pool, sql, n, values, out, err, errlen);
}

/* ---- db.query ----------------------------------------------------------- */

/* TASKAPI_TRACE_STAGES: when run_query started and when its statement
 * answered; the caller reports them once the rows are converted. */
static _Thread_local int64_t q_t0, q_t1;

/* The statement's round trip and the conversion of its rows, to the trace. */
static void stage_done(void)
{
    if (tk_stages_on)
        tk_stages_sql(q_t0, q_t1, tk_stages_now());
}

/* Runs sql with the arguments from `first` on as parameters. On success
 * returns 0 with the result in *out, held by a userdata pushed on the stack
 * (its __gc clears it if a later conversion raises). On failure returns the
 * count of values pushed for the caller to return (nil, message, sqlstate
 * [, constraint]). */
static int run_query(lua_State *L, const char *sql, int first, PGresult **out)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    const char *values[MAX_PARAMS];
    if (lua_gettop(L) < first - 1)
        lua_settop(L, first - 1); /* optional arguments left out: no parameters */
    int n = collect_params(L, first, values);
    if (n < 0) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        lua_pushstring(L, "22021"); /* character_not_in_repertoire */
        return 3;
    }
    if (ctx->pool == NULL)
        return push_unavailable(L, "db.query: no database in this mode");
    /* Allocated before the connection is taken: nothing raises while it is held. */
    PGresult **holder = lua_newuserdatauv(L, sizeof *holder, 0); /* +1 */
    *holder = NULL;
    luaL_setmetatable(L, "tk.db.result");
    q_t0 = tk_stages_on ? tk_stages_now() : 0; /* TASKAPI_TRACE_STAGES */
    PGresult *r = NULL;
    if (ctx->tx_conn != NULL) {
        ctx->queries++;
        r = tk_db_conn_exec(ctx->tx_conn, sql, n, values, NULL);
    } else {
        char err[256];
        int rc = exec_routed(ctx, sql, n, values, &r, err, sizeof err);
        if (rc != TK_OK)
            return push_unavailable(L, err);
    }
    if (r == NULL)
        return push_unavailable(L, "database connection lost during a query");
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *holder = r;
        *out = r;
        q_t1 = tk_stages_on ? tk_stages_now() : 0;
        return 0;
    }
    int nret = push_db_error(L, r);
    PQclear(r);
    return nret;
}

/* Clears the result held by the userdata at `holder` now. */
static void clear_result(lua_State *L, int holder)
{
    PGresult **h = lua_touserdata(L, holder);
    PQclear(*h);
    *h = NULL;
}

static int l_db_query(lua_State *L)
{
    const char *sql = luaL_checkstring(L, 1);
    PGresult *r = NULL;
    int nret = run_query(L, sql, 2, &r);
    if (nret > 0)
        return nret;
    int holder = lua_gettop(L);
    nret = push_result(L, r);
    clear_result(L, holder);
    stage_done();
    return nret;
}

/* ---- rows straight to JSON ------------------------------------------------ */

/* A projection: which columns a JSON object is made of, in its key order,
 * each with the field name, the JSON type and whether NULL is allowed. One
 * userdata holds it all (entries, then their strings). */
enum { P_STRING, P_INTEGER, P_BOOLEAN, P_TIMESTAMP, P_STRINGS, P_JSON };
static const char *const P_TYPES[] = {"string",  "integer", "boolean", "timestamp",
                                      "strings", "json",    NULL};
#define MAX_PROJECTED 64

typedef struct {
    const char *column;
    const char *key; /* "field": */
    size_t keylen;
    int type, nullable;
} proj_col;

/* The column layout of the last result a projection wrote: the result's
 * field names (NUL-separated) and type OIDs, and where each projected
 * column is in it. A route runs the same statement again and again, so the
 * next result usually has the very same fields; it then reuses idx[]
 * instead of searching every column by name (PQfnumber) and checking its
 * type again. Exact: only a result with the same names and types, in the
 * same order, matches. */
#define LAYOUT_COLS 64
#define LAYOUT_NAMES 2048

typedef struct {
    int ncols; /* 0: nothing cached */
    int idx[MAX_PROJECTED];
    int row_idx[MAX_PROJECTED];         /* of each row column; -1: not in the result */
    unsigned char plain[MAX_PROJECTED]; /* 1: a string column JSON never escapes (uuid) */
    Oid oids[LAYOUT_COLS];
    char names[LAYOUT_NAMES];
} layout;

typedef struct {
    int n;
    int nrow;         /* row columns; 0: rows as db.query gives them */
    const char **row; /* their names (in the userdata, after cols) */
    layout last;
    proj_col cols[];
} projection;

static int name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* db.projection({ {column, field, type [, nullable = true]}, ... } [, row]).
 * Types: string, integer, boolean, timestamp (as tk.db formats them),
 * strings (a text[]/uuid[] column: NULL is [] unless nullable), json.
 * row: a list of column names; query_json / one_json then give the rows
 * they return to Lua with these columns only (any column of the result,
 * projected or not; one the result lacks is absent like a NULL), instead
 * of every column: what the caller reads of a row it answers as JSON. */
static int l_db_projection(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)lua_rawlen(L, 1);
    if (n < 1 || n > MAX_PROJECTED)
        return luaL_error(L, "db.projection: 1..%d columns", MAX_PROJECTED);
    int nrow = 0;
    size_t bytes = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        nrow = (int)lua_rawlen(L, 2);
        if (nrow < 1 || nrow > MAX_PROJECTED)
            return luaL_error(L, "db.projection: 1..%d row columns", MAX_PROJECTED);
        for (int i = 1; i <= nrow; i++) {
            lua_rawgeti(L, 2, i);
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (s == NULL || !name_ok(s, len))
                return luaL_error(L, "db.projection: row column %d: bad name", i);
            bytes += len + 1;
            lua_pop(L, 1);
        }
    }
    for (int i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TTABLE)
            return luaL_error(L, "db.projection: entry %d is not a table", i);
        for (int k = 1; k <= 2; k++) {
            lua_rawgeti(L, -1, k);
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (s == NULL || !name_ok(s, len))
                return luaL_error(L, "db.projection: entry %d: bad %s name", i,
                                  k == 1 ? "column" : "field");
            bytes += len + 4;
            lua_pop(L, 1);
        }
        lua_rawgeti(L, -1, 3);
        luaL_checkoption(L, -1, NULL, P_TYPES);
        lua_pop(L, 2);
    }
    projection *p = lua_newuserdatauv(
        L, sizeof *p + (size_t)n * sizeof(proj_col) + (size_t)nrow * sizeof(char *) + bytes, 0);
    luaL_setmetatable(L, "tk.db.projection");
    p->n = n;
    p->nrow = nrow;
    p->row = (const char **)(p->cols + n);
    p->last.ncols = 0;
    char *w = (char *)(p->row + nrow);
    for (int i = 0; i < nrow; i++) {
        lua_rawgeti(L, 2, i + 1);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        memcpy(w, s, len + 1);
        p->row[i] = w;
        w += len + 1;
        lua_pop(L, 1);
    }
    for (int i = 0; i < n; i++) {
        proj_col *c = &p->cols[i];
        lua_rawgeti(L, 1, i + 1); /* +1 entry */
        size_t len;
        lua_rawgeti(L, -1, 1);
        const char *s = lua_tolstring(L, -1, &len);
        memcpy(w, s, len + 1);
        c->column = w;
        w += len + 1;
        lua_pop(L, 1);
        lua_rawgeti(L, -1, 2);
        s = lua_tolstring(L, -1, &len);
        c->key = w;
        c->keylen = len + 3;
        *w++ = '"';
        memcpy(w, s, len);
        w += len;
        *w++ = '"';
        *w++ = ':';
        lua_pop(L, 1);
        lua_rawgeti(L, -1, 3);
        c->type = luaL_checkoption(L, -1, NULL, P_TYPES);
        lua_pop(L, 1);
        c->nullable = lua_getfield(L, -1, "nullable") != LUA_TNIL && lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    return 1;
}

static int type_fits(int type, Oid oid)
{
    switch (type) {
    case P_STRING:
        return oid == 25 || oid == 1043 || oid == OID_UUID || oid == 1042 || oid == 19;
    case P_INTEGER:
        return oid == OID_INT2 || oid == OID_INT4 || oid == OID_INT8;
    case P_BOOLEAN:
        return oid == OID_BOOL;
    case P_TIMESTAMP:
        return oid == OID_TIMESTAMP || oid == OID_TIMESTAMPTZ;
    case P_STRINGS:
        return oid == OID_TEXT_ARR || oid == OID_VARCHAR_ARR || oid == OID_UUID_ARR;
    default:
        return oid == OID_JSON || oid == OID_JSONB;
    }
}

/* Whether r's fields are the ones of the cached layout (names and types,
 * in order). */
static int layout_matches(const layout *l, PGresult *r)
{
    int ncols = PQnfields(r);
    if (l->ncols == 0 || l->ncols != ncols)
        return 0;
    const char *name = l->names;
    for (int c = 0; c < ncols; c++) {
        if (PQftype(r, c) != l->oids[c])
            return 0;
        const char *f = PQfname(r, c);
        size_t len = strlen(f);
        if (memcmp(name, f, len + 1) != 0)
            return 0;
        name += len + 1;
    }
    return 1;
}

/* Remembers r's fields as the layout of idx[] (nothing when they do not fit). */
static void layout_store(layout *l, PGresult *r)
{
    int ncols = PQnfields(r);
    l->ncols = 0;
    if (ncols < 1 || ncols > LAYOUT_COLS)
        return;
    size_t used = 0;
    for (int c = 0; c < ncols; c++) {
        const char *f = PQfname(r, c);
        size_t len = strlen(f);
        if (used + len + 1 > sizeof l->names)
            return;
        memcpy(l->names + used, f, len + 1);
        used += len + 1;
        l->oids[c] = PQftype(r, c);
    }
    l->ncols = ncols;
}

/* Finds each projected column in r; raises for a missing one or a type
 * that does not fit (bugs in the route, never in the input). Returns the
 * result's column of each projected one, in projection order. */
static const int *resolve_columns(lua_State *L, projection *p, PGresult *r)
{
    layout *l = &p->last;
    if (layout_matches(l, r))
        return l->idx;
    l->ncols = 0;
    for (int i = 0; i < p->n; i++) {
        l->idx[i] = PQfnumber(r, p->cols[i].column);
        if (l->idx[i] < 0)
            luaL_error(L, "db: projected column %s is not in the result", p->cols[i].column);
        if (!type_fits(p->cols[i].type, PQftype(r, l->idx[i])))
            luaL_error(L, "db: column %s (type oid %d) is not a %s", p->cols[i].column,
                       (int)PQftype(r, l->idx[i]), P_TYPES[p->cols[i].type]);
        l->plain[i] = p->cols[i].type == P_STRING && PQftype(r, l->idx[i]) == OID_UUID;
    }
    for (int i = 0; i < p->nrow; i++)
        l->row_idx[i] = PQfnumber(r, p->row[i]);
    layout_store(l, r);
    return l->idx;
}

/* Writes the array literal {a,"b c",NULL} as a JSON array of strings.
 * PostgreSQL quotes an element with a backslash before '"' and '\', which
 * is also how JSON escapes them: a quoted element is copied as it is, but
 * for control characters; an unquoted one is escaped as any string. */
static void add_array_json(tk_jbuf *b, const char *s)
{
    tk_json_put(b, "[", 1);
    if (*s == '{')
        s++;
    int first = 1;
    while (*s && *s != '}') {
        if (!first)
            tk_json_put(b, ",", 1);
        first = 0;
        if (*s == '"') {
            const char *run = ++s;
            tk_json_put(b, "\"", 1);
            while (*s && *s != '"') {
                if (*s == '\\' && s[1]) { /* \" or \\: already JSON; copied as it is */
                    tk_json_put_escaped(b, run, (size_t)(s - run));
                    tk_json_put(b, s, 2);
                    s += 2;
                    run = s;
                } else {
                    s++;
                }
            }
            tk_json_put_escaped(b, run, (size_t)(s - run));
            tk_json_put(b, "\"", 1);
            if (*s == '"')
                s++;
        } else {
            const char *e = s;
            while (*e && *e != ',' && *e != '}')
                e++;
            if (e - s == 4 && memcmp(s, "NULL", 4) == 0)
                tk_json_put(b, "null", 4);
            else
                tk_json_put_string(b, s, (size_t)(e - s));
            s = e;
        }
        if (*s == ',')
            s++;
    }
    tk_json_put(b, "]", 1);
}

/* Room for one row as JSON: its text plus a margin per column for keys,
 * quotes and escapes (a guess that saves reallocations, not a limit). */
static size_t row_estimate(PGresult *r, int rows)
{
    size_t n = 0;
    int ncols = PQnfields(r), k = rows < 4 ? rows : 4;
    for (int i = 0; i < k; i++)
        for (int c = 0; c < ncols; c++)
            n += (size_t)PQgetlength(r, i, c) + 24;
    return k ? n / (size_t)k + 64 : 64;
}

/* Writes s (n < 62 bytes) as a JSON string without looking for bytes to
 * escape: for text that cannot hold any (a uuid, a formatted timestamp). */
static void put_plain_string(tk_jbuf *b, const char *s, size_t n)
{
    char q[64];
    q[0] = '"';
    memcpy(q + 1, s, n);
    q[n + 1] = '"';
    tk_json_put(b, q, n + 2);
}

/* Writes row i of r as a JSON object in the projection's key order. */
static void add_row_json(lua_State *L, tk_jbuf *b, const projection *p, const int *idx, PGresult *r,
                         int i)
{
    tk_json_put(b, "{", 1);
    for (int k = 0; k < p->n; k++) {
        const proj_col *c = &p->cols[k];
        if (k > 0)
            tk_json_put(b, ",", 1);
        tk_json_put(b, c->key, c->keylen);
        if (PQgetisnull(r, i, idx[k])) {
            if (c->type == P_STRINGS && !c->nullable)
                tk_json_put(b, "[]", 2);
            else if (c->nullable)
                tk_json_put(b, "null", 4);
            else
                luaL_error(L, "db: column %s is NULL but not declared nullable", c->column);
            continue;
        }
        const char *v = PQgetvalue(r, i, idx[k]);
        size_t len = (size_t)PQgetlength(r, i, idx[k]);
        switch (c->type) {
        case P_STRING:
            if (p->last.plain[k] && len < 62)
                put_plain_string(b, v, len); /* a uuid: hex digits and '-' */
            else
                tk_json_put_string(b, v, len);
            break;
        case P_INTEGER:
        case P_JSON: /* PostgreSQL's own text of an integer or a json value is JSON */
            tk_json_put(b, v, len);
            break;
        case P_BOOLEAN:
            if (v[0] == 't')
                tk_json_put(b, "true", 4);
            else
                tk_json_put(b, "false", 5);
            break;
        case P_TIMESTAMP: {
            char out[32];
            size_t n = format_timestamp(v, len, out);
            if (n) /* digits, '-', ':', 'T', '.', 'Z' or PostgreSQL's text of them */
                put_plain_string(b, out, n);
            else
                tk_json_put_string(b, v, len);
            break;
        }
        default:
            add_array_json(b, v);
        }
    }
    tk_json_put(b, "}", 1);
    if (!tk_jbuf_ok(b))
        luaL_error(L, "db: out of memory writing JSON");
}

/* Pushes row i of r for the caller of query_json / one_json: the
 * projection's row columns (resolve_columns found them), or all. */
static void push_projected_row(lua_State *L, const projection *p, PGresult *r, int i)
{
    if (p->nrow == 0) {
        push_row(L, r, i);
        return;
    }
    lua_createtable(L, 0, p->nrow); /* +1 row */
    for (int k = 0; k < p->nrow; k++) {
        int c = p->last.row_idx[k];
        if (c < 0 || PQgetisnull(r, i, c))
            continue;
        tk_lua_db_push_text(L, PQgetvalue(r, i, c), (size_t)PQgetlength(r, i, c),
                            PQftype(r, c)); /* +1 value */
        lua_setfield(L, -2, p->row[k]);     /* -1 */
    }
}

/* db.query_json(sql, projection, limit, ...) -> fragment, nrows, last, first
 *   fragment: a JSON array of the first `limit` rows (all when limit is
 *   nil), written in the projection's key order; nrows: rows the statement
 *   returned; last: the last row written, for the page's cursor, and first:
 *   the first row, for an access check, as db.query gives them (nil for
 *   none; only the projection's row columns when it names them). Failures
 *   as db.query. */
static int l_db_query_json(lua_State *L)
{
    const char *sql = luaL_checkstring(L, 1);
    projection *p = luaL_checkudata(L, 2, "tk.db.projection");
    lua_Integer limit = luaL_optinteger(L, 3, LUA_MAXINTEGER);
    luaL_argcheck(L, limit >= 0, 3, "must be >= 0");
    PGresult *r = NULL;
    int nret = run_query(L, sql, 4, &r);
    if (nret > 0)
        return nret;
    int holder = lua_gettop(L);
    const int *idx = resolve_columns(L, p, r);
    int nrows = PQntuples(r);
    int upto = (lua_Integer)nrows < limit ? nrows : (int)limit;
    /* Written in place in the fragment, with room for the page at once. */
    size_t room = 2 + (size_t)upto * row_estimate(r, upto);
    tk_jbuf *b = tk_json_push_fragment_buffer(L, room); /* +1 */
    tk_json_put(b, "[", 1);
    for (int i = 0; i < upto; i++) {
        if (i > 0)
            tk_json_put(b, ",", 1);
        add_row_json(L, b, p, idx, r, i);
    }
    tk_json_put(b, "]", 1);
    if (!tk_jbuf_ok(b))
        return luaL_error(L, "db: out of memory writing JSON");
    lua_pushinteger(L, nrows); /* +1 */
    if (upto > 0)
        push_projected_row(L, p, r, upto - 1); /* +1 */
    else
        lua_pushnil(L);
    if (nrows > 0)
        push_projected_row(L, p, r, 0); /* +1: the first row, for an access check */
    else
        lua_pushnil(L);
    clear_result(L, holder);
    stage_done();
    return 4;
}

/* db.one_json(sql, projection, ...) -> fragment, row | false when the
 * statement returned no row. The fragment is the first row as a JSON
 * object; row is that row as db.query gives it (for checks, ETags; only
 * the projection's row columns when it names them). */
static int l_db_one_json(lua_State *L)
{
    const char *sql = luaL_checkstring(L, 1);
    projection *p = luaL_checkudata(L, 2, "tk.db.projection");
    PGresult *r = NULL;
    int nret = run_query(L, sql, 3, &r);
    if (nret > 0)
        return nret;
    int holder = lua_gettop(L);
    if (PQntuples(r) == 0) {
        clear_result(L, holder);
        lua_pushboolean(L, 0);
        return 1;
    }
    const int *idx = resolve_columns(L, p, r);
    tk_jbuf *b = tk_json_push_fragment_buffer(L, row_estimate(r, 1)); /* +1 */
    add_row_json(L, b, p, idx, r, 0);
    if (!tk_jbuf_ok(b))
        return luaL_error(L, "db: out of memory writing JSON");
    push_projected_row(L, p, r, 0); /* +1 */
    clear_result(L, holder);
    stage_done();
    return 2;
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
        /* What one callback publishes goes out as one group (bus.h): an
         * event and the kick it implies, with no client message handled
         * between them. Nothing between begin and end can raise. */
        tk_bus_group_begin();
        int st = lua_pcall(L, 0, 0, 0);
        tk_bus_group_end();
        if (st != LUA_OK) {
            tk_log(TK_LOG_ERROR, ctx->request_id, "after_commit callback failed: %s",
                   lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                  : "(error object is not a string)");
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
    if (tk_db_pool_replica(ctx->pool) != NULL)
        note_write(ctx);
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

/* db.after_commit_mark() -> n: how many callbacks the open transaction has
 * pending (0 outside one). db.after_commit_drop(n): forgets the ones added
 * after the first n, for work rolled back to a savepoint (lib.plugins): an
 * event a failed hook published must not be delivered. */
static int l_db_after_commit_mark(lua_State *L)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    if (ctx->tx_conn == NULL) {
        lua_pushinteger(L, 0);
        return 1;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->after_commit_ref); /* +1 list */
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

static int l_db_after_commit_drop(lua_State *L)
{
    lua_Integer keep = luaL_checkinteger(L, 1);
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    if (ctx->tx_conn == NULL)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->after_commit_ref); /* +1 list */
    for (lua_Integer i = (lua_Integer)lua_rawlen(L, -1); i > keep && i > 0; i--) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
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

static int l_db_use_primary(lua_State *L)
{
    tk_lua_ctx_get(L)->read_primary = 1;
    return 0;
}

static int l_db_replica(lua_State *L)
{
    tk_lua_ctx *ctx = tk_lua_ctx_get(L);
    tk_db_replica *rep = ctx->pool ? tk_db_pool_replica(ctx->pool) : NULL;
    if (rep == NULL) {
        lua_pushnil(L);
        return 1;
    }
    tk_db_replica_stats st;
    tk_db_replica_get_stats(rep, &st);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, st.state == TK_REPLICA_OK        ? "ok"
                      : st.state == TK_REPLICA_LAGGING ? "lagging"
                                                       : "unavailable");
    lua_setfield(L, -2, "state");
    if (st.lag_seconds >= 0) {
        lua_pushnumber(L, st.lag_seconds);
        lua_setfield(L, -2, "lag_seconds");
    }
    return 1;
}

int tk_lua_open_db(lua_State *L)
{
    static const luaL_Reg fns[] = {{"query", l_db_query},
                                   {"tx", l_db_tx},
                                   {"after_commit", l_db_after_commit},
                                   {"after_commit_mark", l_db_after_commit_mark},
                                   {"after_commit_drop", l_db_after_commit_drop},
                                   {"in_tx", l_db_in_tx},
                                   {"query_count", l_db_query_count},
                                   {"query_json", l_db_query_json},
                                   {"one_json", l_db_one_json},
                                   {"projection", l_db_projection},
                                   {"use_primary", l_db_use_primary},
                                   {"replica", l_db_replica},
                                   {NULL, NULL}};
    if (luaL_newmetatable(L, "tk.db.result")) { /* +1 */
        lua_pushcfunction(L, result_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newmetatable(L, "tk.db.projection"); /* +1 */
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
