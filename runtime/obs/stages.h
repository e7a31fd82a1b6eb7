/* Where one request's time goes (TASKAPI_TRACE_STAGES=<file>, off by
 * default): the HTTP server marks the moments a request passes from one
 * stage to the next, the database binding and the JSON encoder add what
 * happens inside Lua, and each finished request that ran its Lua handler
 * becomes one tab-separated line of the file, in microseconds:
 *
 *   method pattern status total parse body handoff prelua dispatch sql rows
 *   handler json response resume send sql_each
 *
 *   parse     MHD's first call: header copy, edge checks, route match, JWT
 *   body      until the body is in and the request goes to the queue
 *   handoff   in the worker queue, until a worker thread takes it
 *   prelua    user check and rate limit on the worker
 *   dispatch  Lua from the call of the dispatcher to its first query
 *             (request table, body parse, validation, access checks in Lua)
 *   sql       the queries' round trips (pool, send, PostgreSQL, receive)
 *   rows      converting their results into Lua tables (lua/l_db.c)
 *   json      inside lib.json's encode (pre-pass and cjson)
 *   handler   the rest of the Lua time (after the first query)
 *   response  the MHD response object with its headers
 *   resume    from the worker resuming the connection to MHD queueing it
 *   send      writing the answer, until MHD reports it complete
 *   sql_each  each query as "round trip/rows", comma separated
 *
 * The whole thing costs one branch per mark when off. bench/profile.sh
 * reads the file and prints the p50 of every stage. */
#ifndef TK_OBS_STAGES_H
#define TK_OBS_STAGES_H

#include <lua.h>
#include <stdint.h>

#include "common.h"
#include "config.h"

enum {
    TK_ST_START,    /* MHD calls the access handler with the headers */
    TK_ST_CHECKED,  /* the header checks are done */
    TK_ST_QUEUED,   /* handed to the worker queue */
    TK_ST_PICKED,   /* a worker took it */
    TK_ST_LUA,      /* user check and rate limit passed: Lua starts */
    TK_ST_LUA_END,  /* the dispatcher returned */
    TK_ST_BUILT,    /* the response is built; the connection is resumed */
    TK_ST_REQUEUED, /* MHD's thread queues the response */
    TK_ST_DONE,     /* MHD reports the answer sent */
    TK_ST_N
};

#define TK_STAGES_SQL_MAX 8

typedef struct tk_stages {
    int64_t t[TK_ST_N]; /* CLOCK_MONOTONIC, ns; 0: not reached */
    int nsql;           /* queries (only the first TK_STAGES_SQL_MAX are kept) */
    int64_t sql_start[TK_STAGES_SQL_MAX], sql_end[TK_STAGES_SQL_MAX], rows_end[TK_STAGES_SQL_MAX];
    int64_t json_ns;
} tk_stages;

/* 1 while tracing; set once by tk_stages_start before any request. */
extern int tk_stages_on;

#define TK_STAGE_MARK(st, which)                                                                   \
    do {                                                                                           \
        if (tk_stages_on)                                                                          \
            (st)->t[(which)] = tk_stages_now();                                                    \
    } while (0)

int64_t tk_stages_now(void);

/* Opens cfg->trace_stages (when set) and turns tracing on. */
int tk_stages_start(const tk_config *cfg, char *err, size_t errlen) TK_WUR;
/* Flushes and closes the file; tracing off. */
void tk_stages_stop(void);

/* On a worker thread: the queries and JSON encodes of this thread go to
 * `st` until the next bind (NULL: nowhere). */
void tk_stages_bind(tk_stages *st);
/* A query began at t0, its result arrived at t1, its rows were converted
 * by t2 (all tk_stages_now()). */
void tk_stages_sql(int64_t t0, int64_t t1, int64_t t2);
/* Wraps lib.json's encode in a VM so that its time is counted (no-op when
 * that module is not loaded). */
void tk_stages_instrument(lua_State *L);
/* Writes the line of a finished request that ran Lua (others are skipped). */
void tk_stages_record(const tk_stages *st, const char *method, const char *pattern,
                      unsigned status);

#endif
