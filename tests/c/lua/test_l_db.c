/* The tk.db Lua module (runtime/lua/l_db.c) in a real VM against a real
 * PostgreSQL named by TEST_DATABASE_URL (skipped with 77 when unset): type
 * conversion both ways, error triples, db.tx (commit, rollback, re-raise,
 * nesting), db.after_commit, db.in_tx and db.query_count. The VM loads a
 * minimal app.lua from a temporary scripts directory; each snippet asserts
 * in Lua and the C side checks its status. */
#include "config.h"
#include "db/pool.h"
#include "lua/bindings.h"
#include "lua/vm.h"
#include "test_util.h"

#include <lauxlib.h>
#include <libpq-fe.h>
#include <unistd.h>

static const char *db_url;
static char scripts_dir[64];
static char table_name[64];
static tk_config cfg;
static tk_db_pool *pool;
static tk_lua_vm *vm;
static lua_State *L;

/* ---- helpers ------------------------------------------------------------ */

/* Runs a Lua chunk; on an error prints it and fails the test. Every chunk
 * starts with `db`, `cjson`, `T` (the test table's name) in scope. */
#define PRELUDE "local db = require 'tk.db'; local cjson = require 'cjson'; local T = TK_TABLE\n"

#define LUA_RUN(code)                                                                              \
    do {                                                                                           \
        tk_lua_vm_begin_request(vm);                                                               \
        int st_ = luaL_dostring(L, PRELUDE code);                                                  \
        if (st_ != LUA_OK) {                                                                       \
            const char *e_ = lua_tostring(L, -1);                                                  \
            fprintf(stderr, "%s:%d: lua: %s\n", __FILE__, __LINE__, e_ ? e_ : "(not a string)");   \
            lua_settop(L, 0);                                                                      \
            return 1;                                                                              \
        }                                                                                          \
        lua_settop(L, 0);                                                                          \
    } while (0)

/* No connection may stay checked out once a snippet has returned. */
#define ASSERT_POOL_IDLE()                                                                         \
    do {                                                                                           \
        tk_db_pool_stats s_;                                                                       \
        tk_db_pool_get_stats(pool, &s_);                                                           \
        ASSERT_EQ_INT(s_.in_use, 0);                                                               \
        ASSERT_NULL(tk_lua_vm_ctx(vm)->tx_conn);                                                   \
    } while (0)

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Runs sql on a separate connection (cleanup that must work even when the
 * VM is in a bad state). */
static void admin_exec(const char *sql)
{
    PGconn *c = PQconnectdb(db_url);
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "admin connection: %s", PQerrorMessage(c));
    }
    PQfinish(c);
}

static int setup(void)
{
    char path[128], err[512] = "";
    char tmpl[] = "/tmp/tk_l_db_XXXXXX";

    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(scripts_dir, sizeof scripts_dir, "%s", tmpl);
    snprintf(path, sizeof path, "%s/app.lua", scripts_dir);
    if (write_file(path, "return {routes = {}, dispatch = function() end}\n") != 0)
        return -1;
    snprintf(table_name, sizeof table_name, "tk_l_db_test_%ld", (long)getpid());

    memset(&cfg, 0, sizeof cfg);
    cfg.scripts_dir = scripts_dir;
    cfg.db_pool_size = 2;
    cfg.db_pool_timeout_ms = 2000;
    cfg.lua_instruction_budget = 100000000; /* the default; 0 would stop every snippet */
    if (tk_db_pool_new(db_url, cfg.db_pool_size, &pool) != TK_OK)
        return -1;
    if (tk_lua_vm_new(&cfg, pool, 1, &vm, err, sizeof err) != TK_OK) {
        fprintf(stderr, "tk_lua_vm_new: %s\n", err);
        return -1;
    }
    L = tk_lua_vm_state(vm);
    lua_pushstring(L, table_name);
    lua_setglobal(L, "TK_TABLE");
    /* A real table (not TEMP: the pool may hand out another connection). */
    char sql[256];
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (id serial PRIMARY KEY, email text NOT NULL"
             " CONSTRAINT %s_email_key UNIQUE)",
             table_name, table_name);
    admin_exec(sql);
    return 0;
}

static void teardown(void)
{
    char sql[128];
    tk_lua_vm_free(vm);
    tk_db_pool_free(pool);
    if (table_name[0] != '\0') {
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table_name);
        admin_exec(sql);
    }
    if (scripts_dir[0] != '\0') {
        char path[128];
        snprintf(path, sizeof path, "%s/app.lua", scripts_dir);
        unlink(path);
        rmdir(scripts_dir);
    }
}

/* ---- results: column types ---------------------------------------------- */

/* Which statements the read replica may serve: reads only; a miss either
 * way is safe (see l_db.c), but writes must never be taken for reads. */
TEST(read_classification)
{
    ASSERT(tk_lua_db_is_read("SELECT 1"));
    ASSERT(tk_lua_db_is_read("  select id, updated_at FROM tasks WHERE title = 'insert into x'"));
    ASSERT(tk_lua_db_is_read("WITH t AS (SELECT 1) SELECT * FROM t -- delete\n"));
    ASSERT(tk_lua_db_is_read("/* update */ SELECT \"delete\" FROM x"));
    ASSERT(tk_lua_db_is_read("VALUES (1)"));
    ASSERT(!tk_lua_db_is_read("INSERT INTO t VALUES (1)"));
    ASSERT(!tk_lua_db_is_read("UPDATE t SET a = 1"));
    ASSERT(!tk_lua_db_is_read("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"));
    ASSERT(!tk_lua_db_is_read("SELECT * FROM t FOR UPDATE"));
    ASSERT(!tk_lua_db_is_read("SELECT nextval('s')"));
    ASSERT(!tk_lua_db_is_read("SELECT pg_advisory_xact_lock(1)"));
    ASSERT(!tk_lua_db_is_read("SELECT pg_notify('c', 'x')"));
    ASSERT(!tk_lua_db_is_read("SELECT $$x$$"));
    ASSERT(!tk_lua_db_is_read("BEGIN"));
    ASSERT(!tk_lua_db_is_read(""));
    return 0;
}

TEST(scalar_types)
{
    LUA_RUN("local rows, n = db.query([[SELECT 1::int2 AS a, -2::int4 AS b,\n"
            "  9007199254740993::int8 AS c, 9223372036854775807::int8 AS cmax,\n"
            "  1.5::float4 AS d, 2.25::float8 AS e, 3.5::numeric AS f, 10::numeric AS g,\n"
            "  true AS t, false AS fa, NULL::int AS n, NULL::text AS ns, 'x y'::text AS s,\n"
            "  'v'::varchar AS v, 26::oid AS o,\n"
            "  '1b4e28ba-2fa1-41d2-883f-0016d3cca427'::uuid AS u]])\n"
            "assert(rows, n)\n"
            "assert(#rows == 1 and n == 1)\n"
            "local r = rows[1]\n"
            "assert(math.type(r.a) == 'integer' and r.a == 1)\n"
            "assert(math.type(r.b) == 'integer' and r.b == -2)\n"
            "assert(math.type(r.c) == 'integer' and r.c == 9007199254740993, 'int8 exact')\n"
            "assert(r.cmax == math.maxinteger)\n"
            "assert(math.type(r.d) == 'float' and r.d == 1.5)\n"
            "assert(math.type(r.e) == 'float' and r.e == 2.25)\n"
            "assert(math.type(r.f) == 'float' and r.f == 3.5)\n"
            "assert(math.type(r.g) == 'float' and r.g == 10)\n"
            "assert(r.t == true and r.fa == false)\n"
            "assert(r.s == 'x y' and r.v == 'v')\n"
            "assert(math.type(r.o) == 'integer' and r.o == 26)\n"
            "assert(r.u == '1b4e28ba-2fa1-41d2-883f-0016d3cca427')\n"
            "-- SQL NULL is an absent key, not a sentinel\n"
            "assert(r.n == nil and r.ns == nil)\n"
            "for k in pairs(r) do assert(k ~= 'n' and k ~= 'ns', k) end\n");
    /* rows and affected counts */
    LUA_RUN("local rows, n = assert(db.query('SELECT g FROM generate_series(1, 3) g'))\n"
            "assert(#rows == 3 and n == 3 and rows[3].g == 3)\n"
            "rows, n = assert(db.query('SELECT 1 WHERE false'))\n"
            "assert(type(rows) == 'table' and #rows == 0 and n == 0)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(array_types)
{
    LUA_RUN(
        "local BS, Q = string.char(92), string.char(34)\n"
        "local r = assert(db.query([[SELECT ARRAY['a', 'b c']::text[] AS t,\n"
        "  ARRAY['1b4e28ba-2fa1-41d2-883f-0016d3cca427', '00000000-0000-0000-0000-000000000000']"
        "::uuid[] AS u,\n"
        "  ARRAY[1, -2, 3]::int[] AS i, ARRAY[1, 2]::int2[] AS i2,\n"
        "  ARRAY[9007199254740993]::int8[] AS i8, '{}'::text[] AS e, '{}'::int[] AS ei,\n"
        "  ARRAY['x', NULL, 'q' || chr(34) || 'uo', 'back' || chr(92) || 'slash',\n"
        "        'com,ma', 'NULL', '', ' sp ', '{br}', 'end'] AS w,\n"
        "  ARRAY[1, NULL, 3]::int8[] AS ni, ARRAY[true, false, NULL]::bool[] AS bo,\n"
        "  ARRAY['v']::varchar[] AS vc]]))[1]\n"
        "local function is_array(t)\n"
        "  return type(t) == 'table' and getmetatable(t) ~= nil\n"
        "    and getmetatable(t).__name == 'json.array'\n"
        "end\n"
        "for _, k in ipairs({'t', 'u', 'i', 'i2', 'i8', 'e', 'ei', 'w', 'ni', 'bo', 'vc'}) do\n"
        "  assert(is_array(r[k]), k .. ' is not marked as a JSON array')\n"
        "end\n"
        "assert(#r.t == 2 and r.t[1] == 'a' and r.t[2] == 'b c')\n"
        "assert(#r.u == 2 and r.u[1] == '1b4e28ba-2fa1-41d2-883f-0016d3cca427')\n"
        "assert(r.u[2] == '00000000-0000-0000-0000-000000000000')\n"
        "assert(#r.i == 3 and r.i[1] == 1 and r.i[2] == -2 and r.i[3] == 3)\n"
        "assert(math.type(r.i[1]) == 'integer' and math.type(r.i2[2]) == 'integer')\n"
        "assert(r.i8[1] == 9007199254740993)\n"
        "assert(next(r.e) == nil and next(r.ei) == nil)\n"
        "local w = r.w\n"
        "assert(#w == 10, #w)\n"
        "assert(w[1] == 'x')\n"
        "assert(w[2] == cjson.null, 'NULL element is cjson.null')\n"
        "assert(w[3] == 'q' .. Q .. 'uo', w[3])\n"
        "assert(w[4] == 'back' .. BS .. 'slash', w[4])\n"
        "assert(w[5] == 'com,ma', w[5])\n"
        "assert(w[6] == 'NULL', 'a quoted NULL is a string')\n"
        "assert(w[7] == '', w[7])\n"
        "assert(w[8] == ' sp ', w[8])\n"
        "assert(w[9] == '{br}', w[9])\n"
        "assert(w[10] == 'end', w[10])\n"
        "assert(#r.ni == 3 and r.ni[1] == 1 and r.ni[2] == cjson.null and r.ni[3] == 3)\n"
        "assert(r.bo[1] == true and r.bo[2] == false and r.bo[3] == cjson.null)\n"
        "assert(r.vc[1] == 'v')\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(json_types)
{
    LUA_RUN("local r = assert(db.query([[SELECT\n"
            "  '{\"a\": [1, 2], \"b\": {\"c\": null}, \"d\": \"x\", \"e\": 1.5}'::jsonb AS j,\n"
            "  '[1, \"two\"]'::json AS k, 'null'::jsonb AS jn, '\"str\"'::jsonb AS js,\n"
            "  '{}'::jsonb AS eo]]))[1]\n"
            "assert(type(r.j) == 'table')\n"
            "assert(#r.j.a == 2 and r.j.a[1] == 1 and r.j.a[2] == 2)\n"
            "assert(type(r.j.b) == 'table' and r.j.b.c == cjson.null)\n"
            "assert(r.j.d == 'x' and r.j.e == 1.5)\n"
            "assert(r.k[1] == 1 and r.k[2] == 'two')\n"
            "assert(r.jn == cjson.null, 'a JSON null value is cjson.null, not absent')\n"
            "assert(r.js == 'str')\n"
            "assert(type(r.eo) == 'table' and next(r.eo) == nil)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

/* An empty JSON array stored in jsonb must come back as something json.lua
 * encodes as [] again (marked as a JSON array), like a PostgreSQL array. */
TEST(jsonb_empty_array_stays_an_array)
{
    LUA_RUN("local r = assert(db.query([[SELECT '[]'::jsonb AS a,\n"
            "  '{\"tags\": []}'::jsonb AS o]]))[1]\n"
            "local function is_array(t)\n"
            "  local mt = getmetatable(t)\n"
            "  return mt ~= nil and mt.__name == 'json.array'\n"
            "end\n"
            "assert(type(r.a) == 'table' and next(r.a) == nil)\n"
            "assert(is_array(r.a), 'jsonb [] lost its array-ness (would encode as {})')\n"
            "assert(is_array(r.o.tags), 'jsonb {\"tags\": []} lost its array-ness')\n");
    return 0;
}

/* Empty and non-empty arrays side by side, nested in arrays and objects:
 * every array comes back marked (libjansson tells them from objects), the
 * Lua stack stays balanced ({"a":[],"b":[5]} once crashed the process) and
 * every value intact. */
TEST(jsonb_nested_empty_and_nonempty_arrays)
{
    LUA_RUN(
        "local function is_array(t)\n"
        "  local mt = getmetatable(t)\n"
        "  return mt ~= nil and mt.__name == 'json.array'\n"
        "end\n"
        "local r = assert(db.query([==[SELECT\n"
        "  '{\"a\": [], \"b\": [5]}'::jsonb AS ab,\n"
        "  '{\"b\": [5], \"a\": []}'::json AS ba,\n"
        "  '[[], [1], [[]], {\"x\": []}, {\"y\": [\"s\"]}, [true], [null], [{}]]'::jsonb AS mix,\n"
        "  '{\"o\": {\"p\": {\"q\": [], \"r\": [[], [7, []]]}}, \"s\": [\"t\"]}'::jsonb AS deep,\n"
        "  '[[[[[[[[[[[]]]]]]]]]]]'::jsonb AS tower,\n"
        "  '{\"k\": [1.5], \"l\": [{\"m\": []}], \"n\": []}'::json AS more]==]))[1]\n"
        "assert(is_array(r.ab.a) and next(r.ab.a) == nil)\n"
        "assert(#r.ab.b == 1 and r.ab.b[1] == 5 and is_array(r.ab.b)) -- every array is marked\n"
        "assert(is_array(r.ba.a) and next(r.ba.a) == nil)\n"
        "assert(#r.ba.b == 1 and r.ba.b[1] == 5)\n"
        "local m = r.mix\n"
        "assert(#m == 8)\n"
        "assert(is_array(m[1]) and next(m[1]) == nil)\n"
        "assert(#m[2] == 1 and m[2][1] == 1)\n"
        "assert(#m[3] == 1 and is_array(m[3][1]) and next(m[3][1]) == nil)\n"
        "assert(is_array(m[4].x) and next(m[4].x) == nil)\n"
        "assert(#m[5].y == 1 and m[5].y[1] == 's')\n"
        "assert(m[6][1] == true and m[7][1] == cjson.null)\n"
        "assert(type(m[8][1]) == 'table' and next(m[8][1]) == nil and not is_array(m[8][1]))\n"
        "local p = r.deep.o.p\n"
        "assert(is_array(p.q) and next(p.q) == nil)\n"
        "assert(#p.r == 2 and is_array(p.r[1]) and next(p.r[1]) == nil)\n"
        "assert(#p.r[2] == 2 and p.r[2][1] == 7 and is_array(p.r[2][2]))\n"
        "assert(#r.deep.s == 1 and r.deep.s[1] == 't')\n"
        "local t = r.tower\n"
        "for _ = 1, 10 do assert(#t == 1); t = t[1] end\n"
        "assert(is_array(t) and next(t) == nil)\n"
        "assert(r.more.k[1] == 1.5 and is_array(r.more.l[1].m) and is_array(r.more.n))\n");
    ASSERT_EQ_INT(lua_gettop(L), 0);
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(timestamps)
{
    LUA_RUN("local r = assert(db.query([[SELECT\n"
            "  '2026-01-15 10:00:00+00'::timestamptz AS whole,\n"
            "  '2026-01-15 10:00:00.5+00'::timestamptz AS half,\n"
            "  '2026-01-15 10:00:00.123456+00'::timestamptz AS micro,\n"
            "  '2026-01-15 10:00:00.000999+00'::timestamptz AS tiny,\n"
            "  '2026-01-15 12:30:00+02'::timestamptz AS offset,\n"
            "  '2026-12-31 23:59:59.99'::timestamp AS naive]]))[1]\n"
            "assert(r.whole == '2026-01-15T10:00:00.000Z', r.whole)\n"
            "assert(r.half == '2026-01-15T10:00:00.500Z', r.half)\n"
            "assert(r.micro == '2026-01-15T10:00:00.123Z', r.micro)\n"
            "assert(r.tiny == '2026-01-15T10:00:00.000Z', r.tiny)\n"
            "assert(r.offset == '2026-01-15T10:30:00.000Z', r.offset)\n"
            "assert(r.naive == '2026-12-31T23:59:59.990Z', r.naive)\n"
            "local fmt = '^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$'\n"
            "local now = assert(db.query('SELECT now() AS t'))[1].t\n"
            "assert(now:match(fmt), now)\n");
    return 0;
}

/* ---- parameters --------------------------------------------------------- */

TEST(parameters)
{
    LUA_RUN("local r = assert(db.query([[SELECT $1::text IS NULL AS a, $2::text IS NULL AS b,\n"
            "  $3::bool AS c, $4::bool AS d, $5::int8 AS e, $6::float8 AS f, $7::text AS g,\n"
            "  $8::int8 AS h, $9::float8 AS i, $10::text AS j, $11::int AS k]],\n"
            "  nil, cjson.null, true, false, 9007199254740993, 0.1, [[it's \"q\" \\ x]],\n"
            "  math.mininteger, -2.5e-300, '', -7))[1]\n"
            "assert(r.a == true and r.b == true)\n"
            "assert(r.c == true and r.d == false)\n"
            "assert(r.e == 9007199254740993)\n"
            "assert(r.f == 0.1, 'floats keep full precision')\n"
            "assert(r.g == [[it's \"q\" \\ x]], r.g)\n"
            "assert(r.h == math.mininteger)\n"
            "assert(r.i == -2.5e-300)\n"
            "assert(r.j == '')\n"
            "assert(r.k == -7)\n"
            "-- a trailing nil is still a parameter\n"
            "r = assert(db.query('SELECT $1::int IS NULL AS n', nil))[1]\n"
            "assert(r.n == true)\n"
            "-- an integral float binds as a plain number\n"
            "r = assert(db.query('SELECT $1::float8 AS v', 3.0))[1]\n"
            "assert(r.v == 3.0)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(table_parameters_are_arrays)
{
    LUA_RUN(
        "local BS, Q = string.char(92), string.char(34)\n"
        "local strs = {'a', 'b,c', 'd' .. Q .. 'e', 'f' .. BS .. 'g', '', 'NULL', '{x}', ' s '}\n"
        "local r = assert(db.query([[SELECT $1::text[] AS t, cardinality($1::text[]) AS n,\n"
        "  $2::int[] AS i, $3::text[] AS e, $4::bool[] AS b, $5::text[] AS wn,\n"
        "  $6::uuid[] AS u, array_position($1::text[], 'NULL') AS pos]],\n"
        "  strs, {1, 2, 3}, {}, {true, false}, {'x', cjson.null, 'y'},\n"
        "  {'1b4e28ba-2fa1-41d2-883f-0016d3cca427'}))[1]\n"
        "assert(r.n == #strs, r.n)\n"
        "for i, s in ipairs(strs) do assert(r.t[i] == s, i .. ': ' .. tostring(r.t[i])) end\n"
        "assert(r.pos == 6, 'the string NULL stays a string')\n"
        "assert(#r.i == 3 and r.i[3] == 3)\n"
        "assert(next(r.e) == nil and getmetatable(r.e).__name == 'json.array')\n"
        "assert(r.b[1] == true and r.b[2] == false)\n"
        "assert(#r.wn == 3 and r.wn[2] == cjson.null and r.wn[3] == 'y')\n"
        "assert(r.u[1] == '1b4e28ba-2fa1-41d2-883f-0016d3cca427')\n"
        "-- round trip of an array read from the database\n"
        "local back = assert(db.query('SELECT $1::text[] AS t', r.t))[1].t\n"
        "for i, s in ipairs(strs) do assert(back[i] == s) end\n");
    /* misuse raises */
    LUA_RUN("assert(not pcall(db.query, 'SELECT $1::text[]', {{'nested'}}))\n"
            "assert(not pcall(db.query, 'SELECT $1::text[]', {function() end}))\n"
            "assert(not pcall(db.query, 'SELECT $1', function() end))\n"
            "assert(not pcall(db.query, 'SELECT $1', coroutine.create(function() end)))\n"
            "assert(not pcall(db.query))\n"
            "assert(not pcall(db.query, {}))\n");
    ASSERT_POOL_IDLE();
    return 0;
}

/* Long array literals (well past a luaL_Buffer's first block) bind whole. */
TEST(long_array_parameters)
{
    LUA_RUN("local tags = {}\n"
            "for i = 1, 200 do tags[i] = string.rep(string.char(96 + i % 26), 50) .. i end\n"
            "local r = assert(db.query('SELECT $1::text[] AS t, cardinality($1::text[]) AS n', "
            "tags))[1]\n"
            "assert(r.n == 200, r.n)\n"
            "for i = 1, 200 do assert(r.t[i] == tags[i], i) end\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(nul_in_string_parameter)
{
    LUA_RUN("local rows, msg, code = db.query('SELECT $1::text AS v', 'a\\0b')\n"
            "assert(rows == nil)\n"
            "assert(type(msg) == 'string' and msg:find('NUL'), msg)\n"
            "assert(code == '22021', code)\n"
            "-- also as the second parameter\n"
            "rows, msg, code = db.query('SELECT $1::text, $2::text', 'ok', '\\0')\n"
            "assert(rows == nil and code == '22021' and msg:find('$2', 1, true), msg)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(parameter_count_limit)
{
    /* 64 parameters work (numbers, each converted on the stack); 65 raise */
    LUA_RUN("local parts, args = {}, {}\n"
            "for i = 1, 64 do parts[i] = '$' .. i .. '::int'; args[i] = i end\n"
            "local r = assert(db.query('SELECT ' .. table.concat(parts, ' + ') .. ' AS s',\n"
            "  table.unpack(args)))[1]\n"
            "assert(r.s == 64 * 65 // 2, r.s)\n"
            "for i = 1, 64 do args[i] = i + 0.5 end\n"
            "for i = 1, 64 do parts[i] = '$' .. i .. '::float8' end\n"
            "r = assert(db.query('SELECT ' .. table.concat(parts, ' + ') .. ' AS s',\n"
            "  table.unpack(args)))[1]\n"
            "assert(r.s == 64 * 65 / 2 + 32, r.s)\n"
            "args[65] = 1\n"
            "local ok, err = pcall(db.query, 'SELECT 1', table.unpack(args, 1, 65))\n"
            "assert(not ok and tostring(err):find('64'), err)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

/* The Lua C API guarantees a C function only LUA_MINSTACK (20) free slots;
 * binding 64 parameters pushes one converted value per parameter, so the
 * binding must grow the stack itself (lua_checkstack). Liblua is not built
 * with sanitizers, so an overflow of its stack block is caught here with an
 * allocator that puts a guard area after every block and checks it on every
 * realloc and free. This state has no tk context, so the last parameter is a
 * string with a NUL: collect_params converts the 63 before it, then db.query
 * returns before it needs the context. */
#define GUARD_BYTES 4096
#define GUARD_FILL 0xA5

static int guard_broken;

static int guard_intact(const void *block, size_t size)
{
    const unsigned char *g = (const unsigned char *)block + size;
    for (size_t i = 0; i < GUARD_BYTES; i++)
        if (g[i] != GUARD_FILL)
            return 0;
    return 1;
}

static void *guard_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (ptr != NULL && !guard_intact(ptr, osize))
        guard_broken = 1;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    unsigned char *b = realloc(ptr, nsize + GUARD_BYTES);
    if (b != NULL)
        memset(b + nsize, GUARD_FILL, GUARD_BYTES);
    return b;
}

TEST(binding_many_parameters_stays_inside_the_lua_stack)
{
    lua_State *S = lua_newstate(guard_alloc, NULL);
    ASSERT_NOT_NULL(S);
    guard_broken = 0;
    luaL_requiref(S, "tk.db", tk_lua_open_db, 0); /* +1 module */
    lua_setglobal(S, "tkdb");                     /* -1 */
    int refused = 0;
    /* Different depths put the call at different distances from the end of
     * the stack block; some of them leave exactly the guaranteed 20 slots. */
    for (int depth = 0; depth < 300 && !guard_broken; depth++) {
        lua_settop(S, 0);
        if (!lua_checkstack(S, depth + 70))
            break;
        for (int i = 0; i < depth; i++)
            lua_pushinteger(S, i);
        lua_getglobal(S, "tkdb");     /* +1 */
        lua_getfield(S, -1, "query"); /* +1 db.query */
        lua_remove(S, -2);            /* -1 */
        lua_pushstring(S, "SELECT 1");
        for (int i = 0; i < 63; i++)
            lua_pushnumber(S, i + 0.5);
        lua_pushlstring(S, "a\0b", 3);
        if (lua_pcall(S, 65, 3, 0) == LUA_OK && lua_isnil(S, -3))
            refused++;
    }
    lua_close(S);
    ASSERT_EQ_INT(guard_broken, 0);
    ASSERT_EQ_INT(refused, 300);
    return 0;
}

/* ---- errors ------------------------------------------------------------- */

TEST(sql_errors)
{
    LUA_RUN("local rows, msg, code, cons = db.query('SELEC 1')\n"
            "assert(rows == nil and select('#', db.query('SELEC 1')) == 4)\n"
            "assert(type(msg) == 'string' and msg:find('syntax error'), msg)\n"
            "assert(code == '42601', code)\n"
            "assert(cons == nil)\n"
            "rows, msg, code = db.query('SELECT 1 / 0')\n"
            "assert(rows == nil and code == '22012', code)\n"
            "rows, msg, code = db.query('SELECT $1::int', 'abc')\n"
            "assert(rows == nil and code == '22P02', code)\n");
    LUA_RUN("assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'a@x'))\n"
            "local rows, msg, code, cons =\n"
            "  db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'a@x')\n"
            "assert(rows == nil)\n"
            "assert(type(msg) == 'string' and msg:find('duplicate key'), msg)\n"
            "assert(code == '23505', code)\n"
            "assert(cons == T .. '_email_key', cons)\n"
            "rows, msg, code, cons = db.query('INSERT INTO ' .. T .. ' (email) VALUES (NULL)')\n"
            "assert(rows == nil and code == '23502', code)\n"
            "local _, n = assert(db.query('DELETE FROM ' .. T))\n"
            "assert(n == 1, n)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

/* ---- transactions ------------------------------------------------------- */

TEST(tx_commits)
{
    LUA_RUN("assert(db.in_tx() == false)\n"
            "local a, b, c = db.tx(function(x, y)\n"
            "  assert(db.in_tx() == true)\n"
            "  assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'commit@x'))\n"
            "  return x + y, 'two', nil\n"
            "end, 1, 2)\n"
            "assert(a == 3 and b == 'two' and c == nil, tostring(a))\n"
            "assert(db.in_tx() == false)\n"
            "local rows = assert(db.query('SELECT email FROM ' .. T .. ' WHERE email = $1',\n"
            "  'commit@x'))\n"
            "assert(#rows == 1, 'committed row is visible')\n"
            "assert(db.query('DELETE FROM ' .. T))\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(tx_rolls_back_and_reraises_the_same_error)
{
    LUA_RUN("local E = setmetatable({status = 409, code = 'conflict'}, {__name = 'http.error'})\n"
            "local ok, err = pcall(db.tx, function()\n"
            "  assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'rb@x'))\n"
            "  error(E)\n"
            "end)\n"
            "assert(not ok)\n"
            "assert(rawequal(err, E), 'the very same error object comes out')\n"
            "assert(db.in_tx() == false)\n"
            "local rows = assert(db.query('SELECT 1 FROM ' .. T .. ' WHERE email = $1', 'rb@x'))\n"
            "assert(#rows == 0, 'rolled back')\n"
            "-- a string error with its position intact\n"
            "ok, err = pcall(db.tx, function() error('plain failure', 0) end)\n"
            "assert(not ok and err == 'plain failure', err)\n"
            "-- a runtime error from a failed query inside the transaction\n"
            "ok, err = pcall(db.tx, function()\n"
            "  assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'rb2@x'))\n"
            "  local _ = nil + 1\n"
            "end)\n"
            "assert(not ok and tostring(err):find('arithmetic'), err)\n"
            "rows = assert(db.query('SELECT 1 FROM ' .. T))\n"
            "assert(#rows == 0)\n");
    ASSERT_POOL_IDLE();

    /* Unprotected: the error reaches C as the status, with the same table. */
    LUA_RUN("TK_E = {code = 'raised'}\n");
    tk_lua_vm_begin_request(vm);
    ASSERT_EQ_INT(luaL_loadstring(L, PRELUDE
                                  "db.tx(function()\n"
                                  "  db.query('INSERT INTO ' .. T .. ' (email) VALUES (1)')\n"
                                  "  error(TK_E)\n"
                                  "end)\n"),
                  LUA_OK);
    ASSERT_EQ_INT(lua_pcall(L, 0, 0, 0), LUA_ERRRUN);
    lua_getglobal(L, "TK_E");
    ASSERT(lua_rawequal(L, -1, -2));
    lua_settop(L, 0);
    LUA_RUN("TK_E = nil\n"
            "assert(#assert(db.query('SELECT 1 FROM ' .. T)) == 0)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(tx_nested_joins_the_outer_one)
{
    LUA_RUN("local inner_in_tx\n"
            "local r = db.tx(function()\n"
            "  assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'outer@x'))\n"
            "  return db.tx(function(v)\n"
            "    inner_in_tx = db.in_tx()\n"
            "    -- the inner one sees the outer one's uncommitted row: same connection\n"
            "    local rows = assert(db.query('SELECT 1 FROM ' .. T .. ' WHERE email = $1',\n"
            "      'outer@x'))\n"
            "    assert(#rows == 1, 'inner transaction runs on the outer connection')\n"
            "    assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'inner@x'))\n"
            "    return v * 2\n"
            "  end, 21)\n"
            "end)\n"
            "assert(r == 42, r)\n"
            "assert(inner_in_tx == true)\n"
            "assert(#assert(db.query('SELECT 1 FROM ' .. T)) == 2)\n"
            "assert(db.query('DELETE FROM ' .. T))\n"
            "-- an error in the inner one rolls back the whole transaction\n"
            "local E = {}\n"
            "local ok, err = pcall(db.tx, function()\n"
            "  assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'o2@x'))\n"
            "  db.tx(function()\n"
            "    assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'i2@x'))\n"
            "    error(E)\n"
            "  end)\n"
            "end)\n"
            "assert(not ok and rawequal(err, E))\n"
            "assert(#assert(db.query('SELECT 1 FROM ' .. T)) == 0)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(after_commit)
{
    LUA_RUN("local log = {}\n"
            "-- outside a transaction: at once\n"
            "db.after_commit(function() log[#log + 1] = 'now' end)\n"
            "assert(log[1] == 'now')\n"
            "-- inside: only after COMMIT, in order, nested ones too\n"
            "log = {}\n"
            "db.tx(function()\n"
            "  db.after_commit(function() log[#log + 1] = 'a' end)\n"
            "  db.tx(function() db.after_commit(function() log[#log + 1] = 'b' end) end)\n"
            "  assert(#log == 0, 'not before the commit')\n"
            "end)\n"
            "assert(#log == 2 and log[1] == 'a' and log[2] == 'b', table.concat(log, ','))\n"
            "-- the callbacks see the committed data from a fresh connection\n"
            "local seen\n"
            "db.tx(function()\n"
            "  assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'ac@x'))\n"
            "  db.after_commit(function()\n"
            "    assert(db.in_tx() == false)\n"
            "    seen = #assert(db.query('SELECT 1 FROM ' .. T .. ' WHERE email = $1', 'ac@x'))\n"
            "  end)\n"
            "end)\n"
            "assert(seen == 1, seen)\n"
            "assert(db.query('DELETE FROM ' .. T))\n"
            "-- a failing callback does not undo anything nor stop the others\n"
            "log = {}\n"
            "db.tx(function()\n"
            "  db.after_commit(function() error('callback bug') end)\n"
            "  db.after_commit(function() log[#log + 1] = 'after' end)\n"
            "end)\n"
            "assert(log[1] == 'after')\n"
            "-- never after a rollback\n"
            "log = {}\n"
            "pcall(db.tx, function()\n"
            "  db.after_commit(function() log[#log + 1] = 'rolled back' end)\n"
            "  error('abort')\n"
            "end)\n"
            "assert(#log == 0, 'after_commit ran after a rollback')\n"
            "-- and the list does not leak into the next transaction\n"
            "db.tx(function() end)\n"
            "assert(#log == 0, 'a dropped callback ran later')\n"
            "assert(not pcall(db.after_commit, 'not a function'))\n");
    ASSERT_POOL_IDLE();
    return 0;
}

/* A statement failed inside db.tx and the function carried on: PostgreSQL
 * answers the COMMIT with a ROLLBACK. That is a failed commit: db.tx must not
 * report success, and no after_commit callback may run. */
TEST(tx_commit_of_an_aborted_transaction_is_a_failure)
{
    LUA_RUN("assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'dup@x'))\n"
            "local ran = false\n"
            "local r, msg, code = db.tx(function()\n"
            "  db.after_commit(function() ran = true end)\n"
            "  assert(db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)', 'new@x'))\n"
            "  local rows, err, state = db.query('INSERT INTO ' .. T .. ' (email) VALUES ($1)',\n"
            "    'dup@x')\n"
            "  assert(rows == nil and state == '23505', err)\n"
            "  return 'done'\n"
            "end)\n"
            "local n = #assert(db.query('SELECT 1 FROM ' .. T .. ' WHERE email = $1', 'new@x'))\n"
            "assert(db.query('DELETE FROM ' .. T))\n"
            "assert(n == 0, 'the server rolled back')\n"
            "assert(ran == false, 'after_commit ran although the transaction rolled back')\n"
            "assert(r == nil and type(msg) == 'string' and type(code) == 'string',\n"
            "  'db.tx reported success for a rolled-back transaction: ' .. tostring(r))\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(tx_misuse)
{
    LUA_RUN("assert(not pcall(db.tx))\n"
            "assert(not pcall(db.tx, 'SELECT 1'))\n"
            "assert(db.in_tx() == false)\n");
    ASSERT_POOL_IDLE();
    return 0;
}

TEST(query_count)
{
    tk_lua_vm_ctx(vm)->queries = 0;
    LUA_RUN("assert(db.query_count() == 0)\n"
            "assert(db.query('SELECT 1'))\n"
            "assert(db.query_count() == 1)\n"
            "db.query('SELEC 1') -- failed statements are round trips too\n"
            "assert(db.query_count() == 2)\n"
            "db.tx(function() assert(db.query('SELECT 1')) end)\n"
            "assert(db.query_count() == 5, db.query_count()) -- BEGIN, SELECT, COMMIT\n"
            "pcall(db.tx, function() error('x') end)\n"
            "assert(db.query_count() == 7, db.query_count()) -- BEGIN, ROLLBACK\n"
            "db.query('SELECT $1::text', 'a\\0') -- refused before any round trip\n"
            "assert(db.query_count() == 7, db.query_count())\n");
    ASSERT_EQ_INT(tk_lua_vm_ctx(vm)->queries, 7);
    return 0;
}

/* db.query_json / db.one_json: the projection's key order, every type,
 * NULLs, a limit, the last row, errors for a wrong projection, and bytes
 * equal to what json.encode makes of the db.query row in the same shape. */
TEST(query_json)
{
    LUA_RUN(
        "local json = require 'tk.json'\n"
        "local P = db.projection({ {'b', 'id', 'string'}, {'a', 'n', 'integer'},\n"
        "  {'f', 'flag', 'boolean'}, {'ts', 'at', 'timestamp', nullable = true},\n"
        "  {'tags', 'tags', 'strings'}, {'j', 'j', 'json', nullable = true},\n"
        "  {'s', 's', 'string', nullable = true} })\n"
        "local SQL = [==[SELECT * FROM (VALUES\n"
        "  (2, 'x/\"y\"', true, '2026-01-15 10:00:00.5+00'::timestamptz,\n"
        "   ARRAY['a/b', NULL, 'c\"d'], '{\"k\": [], \"z\": null}'::jsonb, E'line\\nnext'),\n"
        "  (3, 'w', false, NULL, NULL, NULL, NULL)) AS v(a, b, f, ts, tags, j, s) ORDER BY a]==]\n"
        "local frag, n, last = db.query_json(SQL, P, nil)\n"
        "assert(json.is_fragment(frag) and n == 2 and last.a == 3)\n"
        "local want = [==[[{\"id\":\"x/\\\"y\\\"\",\"n\":2,\"flag\":true,]==]\n"
        "  .. [==[\"at\":\"2026-01-15T10:00:00.500Z\",\"tags\":[\"a/b\",null,\"c\\\"d\"],]==]\n"
        "  .. [==[\"j\":{\"k\": [], \"z\": null},\"s\":\"line\\nnext\"},]==]\n"
        "  .. [==[{\"id\":\"w\",\"n\":3,\"flag\":false,\"at\":null,\"tags\":[],\"j\":null,]==]\n"
        "  .. [==[\"s\":null}]]==]\n"
        "assert(tostring(frag) == want, tostring(frag))\n"
        "assert(json.encode({ data = frag }) == '{\"data\":' .. want .. '}')\n"
        "-- the Lua path gives the same bytes for the same row and shape\n"
        "local r = assert(db.query(SQL))[1]\n"
        "local obj = setmetatable({ id = r.b, n = r.a, flag = r.f, at = r.ts, tags = r.tags,\n"
        "  s = r.s }, json.shape({ 'id', 'n', 'flag', 'at', 'tags', 'j', 's' }))\n"
        "local c = tostring(frag):match('^%[(.-),\"j\"')\n"
        "assert(c and json.encode(obj):sub(1, #c) == c, json.encode(obj))\n"
        "-- a limit: the first rows only, n counts all, last is the last written\n"
        "frag, n, last = db.query_json(SQL, P, 1)\n"
        "assert(n == 2 and last.a == 2 and select(2, tostring(frag):gsub('\"id\"', '')) == 1)\n"
        "frag, n, last = db.query_json(SQL .. ' LIMIT 0', P, 5)\n"
        "assert(tostring(frag) == '[]' and n == 0 and last == nil)\n"
        "-- one_json\n"
        "local one, row = db.one_json(SQL, P)\n"
        "assert(tostring(one):sub(1, 9) == '{\"id\":\"x/' and row.a == 2, tostring(one))\n"
        "assert(db.one_json(SQL .. ' LIMIT 0', P) == false)\n"
        "-- a projection that does not fit the statement is a bug: it raises\n"
        "assert(not pcall(db.query_json, 'SELECT 1 AS a', P))\n"
        "assert(not pcall(db.query_json, [[SELECT 'x' AS a, 'b' AS b, true AS f,\n"
        "  now() AS ts, ARRAY['a'] AS tags, NULL::jsonb AS j, NULL AS s]], P))\n"
        "local strict = db.projection({ {'s', 's', 'string'} })\n"
        "assert(not pcall(db.query_json, 'SELECT NULL::text AS s', strict))\n"
        "-- failures come back as db.query's\n"
        "local f, msg, state = db.query_json('SELEC 1', P)\n"
        "assert(f == nil and type(msg) == 'string' and state == '42601')\n"
        "-- bad declarations\n"
        "assert(not pcall(db.projection, {}))\n"
        "assert(not pcall(db.projection, { {'a', 'b c', 'string'} }))\n"
        "assert(not pcall(db.projection, { {'a', 'b', 'float'} }))\n");
    ASSERT_EQ_INT(lua_gettop(L), 0);
    ASSERT_POOL_IDLE();
    return 0;
}

/* One projection over statements whose columns are elsewhere, renamed or
 * of another type: the layout it remembers from the last result must never
 * be used for a result with other fields. */
TEST(query_json_layouts)
{
    LUA_RUN("local P = db.projection({ {'a', 'a', 'integer'}, {'b', 'b', 'string'} })\n"
            "local function one(sql) return tostring((db.one_json(sql, P))) end\n"
            "for _ = 1, 2 do\n"
            "  assert(one([[SELECT 1 AS a, 'x' AS b]]) == '{\"a\":1,\"b\":\"x\"}')\n"
            "  assert(one([[SELECT 'y' AS b, 2 AS a]]) == '{\"a\":2,\"b\":\"y\"}')\n"
            "  assert(one([[SELECT 0 AS z, 'w' AS b, 3 AS a]]) == '{\"a\":3,\"b\":\"w\"}')\n"
            "  assert(one([[SELECT 0 AS c, 'w' AS b, 4 AS a]]) == '{\"a\":4,\"b\":\"w\"}')\n"
            "end\n"
            "-- same names, a type that does not fit: refused, also after a good one\n"
            "assert(one([[SELECT 1 AS a, 'x' AS b]]))\n"
            "assert(not pcall(db.one_json, [[SELECT 'x' AS a, 'x' AS b]], P))\n"
            "assert(one([[SELECT 5 AS a, 'v' AS b]]) == '{\"a\":5,\"b\":\"v\"}')\n"
            "-- a duplicated name: the first column of that name, as PQfnumber finds it\n"
            "assert(one([[SELECT 6 AS a, 'u' AS b, 7 AS a]]) == '{\"a\":6,\"b\":\"u\"}')\n"
            "assert(one([[SELECT 8 AS a, 't' AS b, 9 AS a]]) == '{\"a\":8,\"b\":\"t\"}')\n"
            "-- a missing column raises, then the next good result is written\n"
            "assert(not pcall(db.one_json, [[SELECT 1 AS a]], P))\n"
            "assert(one([[SELECT 10 AS a, 's' AS b]]) == '{\"a\":10,\"b\":\"s\"}')\n"
            "-- a uuid is written without an escape scan; text in its place is escaped again\n"
            "assert(one([[SELECT 11 AS a, '6F9619FF-8B86-D011-B42D-00C04FC964FF'::uuid AS b]])\n"
            "  == '{\"a\":11,\"b\":\"6f9619ff-8b86-d011-b42d-00c04fc964ff\"}')\n"
            "assert(one([[SELECT 12 AS a, E'q\"\\\\\\n' AS b]]) == "
            "[=[{\"a\":12,\"b\":\"q\\\"\\\\\\n\"}]=])\n");
    ASSERT_EQ_INT(lua_gettop(L), 0);
    ASSERT_POOL_IDLE();
    return 0;
}

/* A projection's row columns: the rows query_json / one_json give back hold
 * those (projected or not, converted as db.query converts them), none of
 * the others; one a result lacks is absent. */
TEST(query_json_row_columns)
{
    LUA_RUN(
        "local json = require 'tk.json'\n"
        "local P = db.projection({ {'a', 'a', 'integer'}, {'b', 'b', 'string'} },\n"
        "  { 'b', 'ts', 'tags', 'gone', 'n' })\n"
        "local SQL = [[SELECT g AS a, 'x' || g AS b, '2026-01-15 10:00:00+00'::timestamptz AS ts,\n"
        "  ARRAY['t'] AS tags, NULL::int AS n, 'secret' AS other\n"
        "  FROM generate_series(1, 3) g ORDER BY g]]\n"
        "for _ = 1, 2 do -- the second time from the remembered layout\n"
        "  local frag, n, last, first = db.query_json(SQL, P, 2)\n"
        "  assert(n == 3 and tostring(frag) == '[{\"a\":1,\"b\":\"x1\"},{\"a\":2,\"b\":\"x2\"}]')\n"
        "  assert(last.b == 'x2' and first.b == 'x1' and last.a == nil and last.other == nil)\n"
        "  assert(last.ts == '2026-01-15T10:00:00.000Z' and last.tags[1] == 't' and #last.tags == "
        "1)\n"
        "  assert(getmetatable(last.tags) == json.array_mt and last.n == nil and last.gone == "
        "nil)\n"
        "  local one, row = db.one_json(SQL, P)\n"
        "  assert(tostring(one) == '{\"a\":1,\"b\":\"x1\"}' and row.b == 'x1' and row.a == nil)\n"
        "  local count = 0\n"
        "  for _ in pairs(row) do count = count + 1 end\n"
        "  assert(count == 3, count) -- b, ts, tags\n"
        "end\n"
        "assert(not pcall(db.projection, { {'a', 'a', 'integer'} }, { 'a b' }))\n"
        "assert(not pcall(db.projection, { {'a', 'a', 'integer'} }, {}))\n"
        "assert(not pcall(db.projection, { {'a', 'a', 'integer'} }, 'a'))\n");
    ASSERT_EQ_INT(lua_gettop(L), 0);
    ASSERT_POOL_IDLE();
    return 0;
}

int main(void)
{
    static const tk_test_entry tests[] = {
        TEST_ENTRY(read_classification),
        TEST_ENTRY(scalar_types),
        TEST_ENTRY(array_types),
        TEST_ENTRY(json_types),
        TEST_ENTRY(jsonb_empty_array_stays_an_array),
        TEST_ENTRY(jsonb_nested_empty_and_nonempty_arrays),
        TEST_ENTRY(timestamps),
        TEST_ENTRY(parameters),
        TEST_ENTRY(table_parameters_are_arrays),
        TEST_ENTRY(long_array_parameters),
        TEST_ENTRY(nul_in_string_parameter),
        TEST_ENTRY(binding_many_parameters_stays_inside_the_lua_stack),
        TEST_ENTRY(sql_errors),
        TEST_ENTRY(tx_commits),
        TEST_ENTRY(tx_rolls_back_and_reraises_the_same_error),
        TEST_ENTRY(tx_nested_joins_the_outer_one),
        TEST_ENTRY(after_commit),
        TEST_ENTRY(tx_commit_of_an_aborted_transaction_is_a_failure),
        TEST_ENTRY(tx_misuse),
        TEST_ENTRY(query_count),
        TEST_ENTRY(query_json),
        TEST_ENTRY(query_json_layouts),
        TEST_ENTRY(query_json_row_columns),
        /* last: while binding 64 parameters overruns the Lua stack (see the
         * test above) it corrupts the heap, which could take later tests down */
        TEST_ENTRY(parameter_count_limit),
    };

    db_url = getenv("TEST_DATABASE_URL");
    if (db_url == NULL || *db_url == '\0') {
        printf("skipped: TEST_DATABASE_URL is not set\n");
        return TEST_SKIP_CODE;
    }
    int rc = 1;
    if (setup() == 0)
        rc = tk_test_run_all(tests, TK_ARRAY_LEN(tests));
    else
        fprintf(stderr, "setup failed\n");
    teardown();
    return rc;
}
