/* Per-request stage times (see obs/stages.h). */
#include "obs/stages.h"

#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "obs/log.h"

int tk_stages_on;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *out; /* guarded by mu */
static __thread tk_stages *bound;

int64_t tk_stages_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int tk_stages_start(const tk_config *cfg, char *err, size_t errlen)
{
    if (cfg->trace_stages == NULL || cfg->trace_stages[0] == '\0')
        return TK_OK;
    out = fopen(cfg->trace_stages, "w");
    if (out == NULL) {
        tk_errf(err, errlen, "TASKAPI_TRACE_STAGES: cannot write %s: %s", cfg->trace_stages,
                strerror(errno));
        return TK_EIO;
    }
    fprintf(out, "method\tpattern\tstatus\ttotal\tparse\tbody\thandoff\tprelua\tdispatch\tsql\trows"
                 "\thandler\tjson\tresponse\tresume\tsend\tsql_each\n");
    tk_stages_on = 1;
    tk_log_info("stage trace on: one line per request to %s", cfg->trace_stages);
    return TK_OK;
}

void tk_stages_stop(void)
{
    pthread_mutex_lock(&mu);
    if (out != NULL && fclose(out) != 0)
        tk_log_error("TASKAPI_TRACE_STAGES: write failed: %s", strerror(errno));
    out = NULL;
    pthread_mutex_unlock(&mu);
}

void tk_stages_bind(tk_stages *st)
{
    bound = st;
}

void tk_stages_sql(int64_t t0, int64_t t1, int64_t t2)
{
    tk_stages *st = bound;
    if (st == NULL)
        return;
    if (st->nsql < TK_STAGES_SQL_MAX) {
        st->sql_start[st->nsql] = t0;
        st->sql_end[st->nsql] = t1;
        st->rows_end[st->nsql] = t2;
    }
    st->nsql++;
}

/* lib.json's encode, timed. Upvalue 1: the original. */
static int timed_encode(lua_State *L)
{
    int64_t t0 = tk_stages_now();
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (bound != NULL)
        bound->json_ns += tk_stages_now() - t0;
    if (st != LUA_OK)
        return lua_error(L); /* as raised (a spent budget stays spent) */
    return lua_gettop(L);
}

void tk_stages_instrument(lua_State *L)
{
    if (!tk_stages_on)
        return;
    int top = lua_gettop(L);
    lua_getglobal(L, "require"); /* +1; its upvalue 1 is the loaded table (lua/vm.c) */
    if (lua_getupvalue(L, -1, 1) != NULL && lua_istable(L, -1) &&
        lua_getfield(L, -1, "lib.json") == LUA_TTABLE &&
        lua_getfield(L, -1, "encode") == LUA_TFUNCTION) {
        lua_pushcclosure(L, timed_encode, 1); /* -1 +1 */
        lua_setfield(L, -2, "encode");        /* -1 */
    }
    lua_settop(L, top);
}

static double us(int64_t a, int64_t b)
{
    return a && b && b > a ? (double)(b - a) / 1000.0 : 0.0;
}

void tk_stages_record(const tk_stages *st, const char *method, const char *pattern, unsigned status)
{
    const int64_t *t = st->t;
    if (!tk_stages_on || t[TK_ST_LUA] == 0 || t[TK_ST_LUA_END] == 0 || t[TK_ST_DONE] == 0)
        return;
    int nq = st->nsql < TK_STAGES_SQL_MAX ? st->nsql : TK_STAGES_SQL_MAX;
    double sql = 0, rows = 0;
    char each[TK_STAGES_SQL_MAX * 24] = "-";
    size_t used = 0;
    for (int i = 0; i < nq; i++) {
        double q = us(st->sql_start[i], st->sql_end[i]), r = us(st->sql_end[i], st->rows_end[i]);
        sql += q;
        rows += r;
        int n = snprintf(each + used, sizeof each - used, "%s%.1f/%.1f", i ? "," : "", q, r);
        if (n > 0 && (size_t)n < sizeof each - used)
            used += (size_t)n;
    }
    double lua = us(t[TK_ST_LUA], t[TK_ST_LUA_END]);
    double dispatch = nq > 0 ? us(t[TK_ST_LUA], st->sql_start[0]) : lua;
    double json = (double)st->json_ns / 1000.0;
    if (nq == 0)
        dispatch = dispatch > json ? dispatch - json : 0;
    double handler = lua - dispatch - sql - rows - json;
    if (handler < 0)
        handler = 0;
    pthread_mutex_lock(&mu);
    if (out != NULL)
        fprintf(out,
                "%s\t%s\t%u\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f"
                "\t%.1f\t%s\n",
                method, pattern ? pattern : "-", status, us(t[TK_ST_START], t[TK_ST_DONE]),
                us(t[TK_ST_START], t[TK_ST_CHECKED]), us(t[TK_ST_CHECKED], t[TK_ST_QUEUED]),
                us(t[TK_ST_QUEUED], t[TK_ST_PICKED]), us(t[TK_ST_PICKED], t[TK_ST_LUA]), dispatch,
                sql, rows, handler, json, us(t[TK_ST_LUA_END], t[TK_ST_BUILT]),
                us(t[TK_ST_BUILT], t[TK_ST_REQUEUED]), us(t[TK_ST_REQUEUED], t[TK_ST_DONE]), each);
    pthread_mutex_unlock(&mu);
}
