/* Route table: patterns split into segments once at load time; matching is a
 * linear scan scoring static segments above parameters (a few dozen routes
 * make a scan cheaper than a trie's pointer chasing). */
#include "http/router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 16
#define METHOD_MAX 16 /* longer than any method a route can have */

typedef struct {
    char *method;
    char *pattern;
    int id, flags;
    int nsegs;
    char *segs[MAX_SEGS]; /* point into `storage`; ":name" for a parameter */
    char *storage;
} route;

struct tk_router {
    route *routes;
    int n, cap;
};

int tk_router_new(tk_router **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? TK_OK : TK_ENOMEM;
}

static void route_cleanup(route *rt)
{
    free(rt->method);
    free(rt->pattern);
    free(rt->storage);
}

void tk_router_free(tk_router *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->n; i++)
        route_cleanup(&r->routes[i]);
    free(r->routes);
    free(r);
}

int tk_router_count(const tk_router *r)
{
    return r->n;
}

/* Splits "/a/b/c" in place into segments. Returns the count or -1. */
static int split(char *s, char **segs)
{
    int n = 0;
    if (*s != '/')
        return -1;
    if (s[1] == '\0')
        return 0;
    s++;
    while (1) {
        if (n == MAX_SEGS)
            return -1;
        segs[n++] = s;
        char *slash = strchr(s, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        s = slash + 1;
    }
    return n;
}

/* A method goes into the Allow header as is: uppercase letters only (every
 * method a route can have is such a word), never empty. */
static int method_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > METHOD_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return 0;
    return 1;
}

static int same_shape(const route *a, const route *b)
{
    if (a->nsegs != b->nsegs || strcmp(a->method, b->method) != 0)
        return 0;
    for (int i = 0; i < a->nsegs; i++) {
        int pa = a->segs[i][0] == ':', pb = b->segs[i][0] == ':';
        if (pa != pb || (!pa && strcmp(a->segs[i], b->segs[i]) != 0))
            return 0;
    }
    return 1;
}

int tk_router_conflict(const tk_router *r, const char *method, const char *pattern)
{
    route rt = {0};
    rt.method = (char *)method; /* read only; never freed here */
    rt.storage = strdup(pattern);
    if (rt.storage == NULL)
        return 0;
    rt.nsegs = split(rt.storage, rt.segs);
    int id = 0;
    for (int i = 0; i < r->n && rt.nsegs >= 0 && id == 0; i++)
        if (same_shape(&r->routes[i], &rt))
            id = r->routes[i].id;
    free(rt.storage);
    return id;
}

int tk_router_add(tk_router *r, const char *method, const char *pattern, int id, int flags,
                  char *err, size_t errlen)
{
    route rt = {0};
    int rc = TK_ENOMEM;
    if (!method_ok(method)) {
        tk_errf(err, errlen, "bad method \"%.20s\": must be 1..%d letters A-Z", method, METHOD_MAX);
        return TK_EINVAL;
    }
    if (strlen(pattern) >= TK_ROUTER_MAX_PATH) {
        tk_errf(err, errlen, "pattern too long: %.60s...", pattern);
        return TK_EINVAL;
    }
    rt.method = strdup(method);
    rt.pattern = strdup(pattern);
    rt.storage = strdup(pattern);
    if (!rt.method || !rt.pattern || !rt.storage)
        goto fail;
    rt.id = id;
    rt.flags = flags;
    rt.nsegs = split(rt.storage, rt.segs);
    int nparams = 0;
    rc = TK_EINVAL;
    if (rt.nsegs < 0) {
        tk_errf(err, errlen, "bad pattern \"%s\": must start with / and have at most %d segments",
                pattern, MAX_SEGS);
        goto fail;
    }
    for (int i = 0; i < rt.nsegs; i++) {
        const char *s = rt.segs[i];
        if (*s == '\0' || (s[0] == ':' && s[1] == '\0')) {
            tk_errf(err, errlen, "bad pattern \"%s\": empty segment", pattern);
            goto fail;
        }
        if (s[0] == ':' && ++nparams > TK_ROUTER_MAX_PARAMS) {
            tk_errf(err, errlen, "bad pattern \"%s\": too many parameters", pattern);
            goto fail;
        }
    }
    for (int i = 0; i < r->n; i++) {
        if (same_shape(&r->routes[i], &rt)) {
            tk_errf(err, errlen, "route %s %s conflicts with %s %s", method, pattern,
                    r->routes[i].method, r->routes[i].pattern);
            goto fail;
        }
    }
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 32;
        route *nr = realloc(r->routes, (size_t)cap * sizeof *nr);
        rc = TK_ENOMEM;
        if (nr == NULL)
            goto fail;
        r->routes = nr;
        r->cap = cap;
    }
    r->routes[r->n++] = rt;
    return TK_OK;
fail:
    if (rc == TK_ENOMEM)
        tk_errf(err, errlen, "out of memory");
    route_cleanup(&rt);
    return rc;
}

/* Scores how well `rt` matches the segments: -1 for no match, otherwise a
 * number where a static segment earlier in the path weighs more. */
static int64_t score(const route *rt, char **segs, int nsegs)
{
    if (rt->nsegs != nsegs)
        return -1;
    int64_t s = 0;
    for (int i = 0; i < nsegs; i++) {
        s <<= 1;
        if (rt->segs[i][0] == ':') {
            if (segs[i][0] == '\0')
                return -1;
        } else if (strcmp(rt->segs[i], segs[i]) != 0) {
            return -1;
        } else {
            s |= 1;
        }
    }
    return s;
}

int tk_router_match(const tk_router *r, const char *method, const char *path, tk_route_match *m,
                    char *allow, size_t allowlen)
{
    size_t len = strlen(path);
    if (len >= sizeof m->buf)
        return TK_ENOTFOUND;
    memcpy(m->buf, path, len + 1);
    char *segs[MAX_SEGS + 1];
    int nsegs = 0;
    if (m->buf[0] != '/')
        return TK_ENOTFOUND;
    if (m->buf[1] != '\0') {
        char *s = m->buf + 1;
        while (1) {
            if (nsegs == MAX_SEGS)
                return TK_ENOTFOUND;
            segs[nsegs++] = s;
            char *slash = strchr(s, '/');
            if (slash == NULL)
                break;
            *slash = '\0';
            s = slash + 1;
        }
    }

    const route *best = NULL;
    int64_t best_score = -1, any_score = -1;
    int is_head = strcmp(method, "HEAD") == 0;
    for (int i = 0; i < r->n; i++) {
        const route *rt = &r->routes[i];
        int64_t sc = score(rt, segs, nsegs);
        if (sc < 0)
            continue;
        if (sc > any_score)
            any_score = sc;
        int method_ok =
            strcmp(rt->method, method) == 0 || (is_head && strcmp(rt->method, "GET") == 0);
        if (method_ok && sc > best_score) {
            best = rt;
            best_score = sc;
        }
    }
    if (best != NULL && best_score == any_score) {
        m->id = best->id;
        m->flags = best->flags;
        m->pattern = best->pattern;
        m->nparams = 0;
        for (int i = 0; i < nsegs; i++) {
            if (best->segs[i][0] == ':') {
                m->names[m->nparams] = best->segs[i] + 1;
                m->values[m->nparams] = segs[i];
                m->nparams++;
            }
        }
        return TK_OK;
    }
    if (any_score < 0)
        return TK_ENOTFOUND;

    /* The path exists: list the methods of the routes with the best shape. */
    size_t pos = 0;
    if (allowlen)
        allow[0] = '\0';
    int has_get = 0;
    for (int i = 0; i < r->n; i++) {
        const route *rt = &r->routes[i];
        if (score(rt, segs, nsegs) != any_score)
            continue;
        has_get |= strcmp(rt->method, "GET") == 0;
        size_t ml = strlen(rt->method);
        if (pos + ml + 3 < allowlen) {
            if (pos) {
                memcpy(allow + pos, ", ", 2);
                pos += 2;
            }
            memcpy(allow + pos, rt->method, ml + 1);
            pos += ml;
        }
    }
    if (has_get && pos + 7 < allowlen) {
        memcpy(allow + pos, ", HEAD", 7);
        pos += 6;
    }
    if (best != NULL) {
        /* A less specific pattern would accept the method, but the path is
         * owned by a more specific one: still a 405 for that path. */
    }
    return 1;
}
