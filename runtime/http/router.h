/* The C route table: the scripts declare routes (method + pattern such as
 * /api/v1/tasks/:id); C compiles them here and matches every request without
 * entering Lua, answering 404 and 405 (with the Allow list) itself. */
#ifndef TK_HTTP_ROUTER_H
#define TK_HTTP_ROUTER_H

#include "common.h"

#define TK_ROUTER_MAX_PARAMS 8
#define TK_ROUTER_MAX_PATH 2048

typedef struct tk_router tk_router;

typedef struct {
    int id;              /* the id given to tk_router_add */
    int flags;           /* the flags given to tk_router_add */
    const char *pattern; /* borrowed from the router */
    int nparams;
    const char *names[TK_ROUTER_MAX_PARAMS];  /* borrowed from the router */
    const char *values[TK_ROUTER_MAX_PARAMS]; /* point into buf */
    char buf[TK_ROUTER_MAX_PATH];
} tk_route_match;

/* Returns a new empty router in *out; free with tk_router_free. */
int tk_router_new(tk_router **out) TK_WUR;
void tk_router_free(tk_router *r);

/* Adds a route. Copies method and pattern. Fails with TK_EINVAL and a reason
 * in err for a malformed pattern or a route that conflicts with one already
 * added (same method and same shape, e.g. /a/:x and /a/:y). */
int tk_router_add(tk_router *r, const char *method, const char *pattern, int id, int flags,
                  char *err, size_t errlen) TK_WUR;

/* The id of the route already added that method + pattern conflicts with
 * (same method, same shape), or 0 when none does (or out of memory): lets a
 * caller name both definitions after tk_router_add refused one. */
int tk_router_conflict(const tk_router *r, const char *method, const char *pattern);

/* Matches method + path. Returns TK_OK with m filled; TK_ENOTFOUND when no
 * pattern matches the path; 1 when the path matches but not the method, with
 * the allowed methods ("GET, PATCH") written into allow. Static segments win
 * over parameters. */
int tk_router_match(const tk_router *r, const char *method, const char *path, tk_route_match *m,
                    char *allow, size_t allowlen) TK_WUR;

/* Number of routes added. */
int tk_router_count(const tk_router *r);

#endif
