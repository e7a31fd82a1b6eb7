/* libmicrohttpd front end and the Lua worker pool.
 *
 * One MHD polling thread parses requests. For each request the access
 * handler is called (1) with the headers, (2) with each body chunk and (3)
 * once the body is complete; at (3) the C checks run and either a response
 * is queued at once or the connection is suspended and the request queued
 * for a worker. The worker builds the response and resumes the connection;
 * MHD then calls the handler again (4), which queues the response. */
#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/users.h"
#include "db/migrate.h"
#include "db/replica.h"
#include "events/bus.h"
#include "http/edge.h"
#include "http/guard.h"
#include "http/ratelimit.h"
#include "http/router.h"
#include "http/static.h"
#include "http/tls.h"
#include "lua/bindings.h"
#include "lua/vm.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/stages.h"
#include "obs/status.h"

typedef struct {
    char *name, *value;
} kv;

typedef struct {
    kv *items;
    int n, cap;
} kv_list;

typedef struct tk_req {
    tk_server *srv;
    tk_lua_gen *gen;         /* held from route match to completion: the request runs on it */
    const tk_router *router; /* the generation's, compiled by routes_compile */
    struct MHD_Connection *conn;
    char method[16];
    char *path;
    char rid[132];
    char *body;
    size_t body_len, body_cap;
    int too_large;
    int has_body; /* Content-Length > 0: refusing before the body means closing */
    int queued;   /* handed to a worker; waiting for its response */
    int started;  /* the first call of the access handler is done */
    struct MHD_Response *resp;
    unsigned status;
    tk_route_match match;
    tk_auth_claims claims;
    int has_user;
    char ip[64];         /* client address as text */
    int matched;         /* match holds a route */
    tk_rate_result rate; /* the tightest bucket this request hit */
    int rated;
    kv_list headers, query;
    char *origin;
    struct timespec t0;
    tk_stages stages; /* TASKAPI_TRACE_STAGES */
    struct tk_req *next;
} tk_req;

typedef struct {
    tk_server *srv;
    int id;
    pthread_t thread;
} worker;

struct tk_server {
    const tk_config *cfg;
    tk_db_pool *pool;
    struct MHD_Daemon *daemon;
    tk_http_guard *guard; /* header-read deadline */
    tk_lua_host *host;    /* the script generations (borrowed) */
    int consumer;         /* our index in the host: worker w runs VM w - 1 of it */
    worker *workers;
    int nworkers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tk_req *head, *tail;
    int stopping;
    atomic_int in_flight;
    atomic_int quiesced; /* the listening socket is closed */
};

/* ---- small helpers ------------------------------------------------------ */

static void kv_list_free(kv_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].value);
    }
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

static int kv_list_add(kv_list *l, const char *name, const char *value)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        kv *ni = realloc(l->items, (size_t)cap * sizeof *ni);
        if (ni == NULL)
            return TK_ENOMEM;
        l->items = ni;
        l->cap = cap;
    }
    char *n = strdup(name), *v = strdup(value ? value : "");
    if (!n || !v) {
        free(n);
        free(v);
        return TK_ENOMEM;
    }
    l->items[l->n].name = n;
    l->items[l->n].value = v;
    l->n++;
    return TK_OK;
}

static const char *kv_get(const kv_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcasecmp(l->items[i].name, name) == 0)
            return l->items[i].value;
    return NULL;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    tk_req *r = cls;
    if (kv_list_add(&r->headers, key, value) != TK_OK)
        return MHD_NO;
    return MHD_YES;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    tk_req *r = cls;
    if (kv_list_add(&r->query, key, value) != TK_OK)
        return MHD_NO;
    return MHD_YES;
}

static void req_free(tk_req *r)
{
    if (r == NULL)
        return;
    free(r->path);
    free(r->body);
    free(r->origin);
    kv_list_free(&r->headers);
    kv_list_free(&r->query);
    if (r->resp)
        MHD_destroy_response(r->resp);
    tk_lua_gen_release(r->gen);
    free(r);
}

static int rid_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n >= 1 && n <= 128;
}

static const char *const security_headers[][2] = {
    {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
    {"Strict-Transport-Security", "max-age=15552000; includeSubDomains"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Cross-Origin-Opener-Policy", "same-origin"},
    {"Cross-Origin-Resource-Policy", "same-origin"},
    {"X-DNS-Prefetch-Control", "off"},
    {"X-Permitted-Cross-Domain-Policies", "none"},
};

/* The decimal text of v in buf (what snprintf's "%d" writes, without its
 * format machinery: three of these on every rate-limited answer). */
static const char *int_text(int v, char buf[16])
{
    char *p = buf + 15;
    *p = '\0';
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return p;
}

/* Adds the headers every answer carries. `fresh`: resp was just made here
 * and holds no header of the security set (a page's own CSP), so none needs
 * looking up first. */
static void add_common_headers(tk_req *r, struct MHD_Response *resp, int fresh)
{
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    if (r->rated) {
        char v[16];
        MHD_add_response_header(resp, "RateLimit-Limit", int_text(r->rate.limit, v));
        MHD_add_response_header(resp, "RateLimit-Remaining", int_text(r->rate.remaining, v));
        const char *reset = int_text(r->rate.reset, v);
        MHD_add_response_header(resp, "RateLimit-Reset", reset);
        if (!r->rate.allowed)
            MHD_add_response_header(resp, "Retry-After", reset);
    }
    for (size_t i = 0; i < TK_ARRAY_LEN(security_headers); i++) /* a page's own CSP stays */
        if (fresh || MHD_get_response_header(resp, security_headers[i][0]) == NULL)
            MHD_add_response_header(resp, security_headers[i][0], security_headers[i][1]);
    if (r->origin && tk_config_origin_allowed(r->srv->cfg, r->origin)) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "X-Request-Id, ETag, Location, RateLimit-Limit, "
                                "RateLimit-Remaining, RateLimit-Reset, Retry-After, "
                                "Idempotent-Replayed");
    }
    if (r->srv->cfg->cors_origins)
        MHD_add_response_header(resp, "Vary", "Origin");
}

/* Builds a response owning a copy of body. Never NULL unless out of memory. */
static struct MHD_Response *make_response(tk_req *r, const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return NULL;
    if (len > 0)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json; charset=utf-8");
    add_common_headers(r, resp, 1);
    return resp;
}

static void set_error(tk_req *r, unsigned status, const char *code, const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = make_response(r, body, (size_t)n);
    r->status = status;
}

static enum MHD_Result queue(tk_req *r)
{
    if (r->resp == NULL)
        return MHD_NO; /* out of memory: MHD closes the connection */
    /* Draining for shutdown: a proxy's keep-alive connection is closed
     * after this answer, so it opens its next one elsewhere. */
    if (tk_shutting_down() && MHD_get_response_header(r->resp, "Connection") == NULL)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return MHD_queue_response(r->conn, r->status, r->resp);
}

/* ---- generations --------------------------------------------------------- */

/* The HTTP form of a generation (tk_lua_consumer.compile): its route table
 * as a router. A conflict names both definitions. */
static int routes_compile(void *ud, const tk_lua_gen *g, void **data, char *err, size_t errlen)
{
    (void)ud;
    tk_router *r = NULL;
    if (tk_router_new(&r) != TK_OK)
        return TK_ENOMEM;
    for (int id = 1; id <= tk_lua_gen_route_count(g); id++) {
        const tk_lua_route *rt = tk_lua_gen_route(g, id);
        const char *where = rt->where ? rt->where : "app.routes";
        char why[512];
        int rc = tk_router_add(r, rt->method, rt->pattern, id, 0, why, sizeof why);
        if (rc != TK_OK) {
            const tk_lua_route *other =
                tk_lua_gen_route(g, tk_router_conflict(r, rt->method, rt->pattern));
            if (other != NULL && other->where != NULL)
                tk_errf(err, errlen, "%s: %s (defined at %s)", where, why, other->where);
            else
                tk_errf(err, errlen, "%s: %s", where, why);
            tk_router_free(r);
            return rc;
        }
    }
    *data = r;
    return TK_OK;
}

static void routes_drop(void *data)
{
    tk_router_free(data);
}

tk_lua_consumer tk_server_consumer(const tk_config *cfg)
{
    tk_lua_consumer c = {.name = "http",
                         .nvms = cfg->workers,
                         .worker_id = 1,
                         .compile = routes_compile,
                         .drop = routes_drop};
    return c;
}

void tk_server_reload_stats(tk_server *s, long long *reloads, long long *failures, int *gen)
{
    tk_lua_host_stats(s->host, reloads, failures, gen);
}

/* ---- the worker side ---------------------------------------------------- */

/* Pushes l as a table. With `lower` (the request headers): names
 * lower-cased, and Authorization left out: the C checks have verified the
 * bearer token and Lua gets its claims as req.user, so the token itself
 * never reaches a script (nor a script's logs), and is not copied. */
static void push_kv_table(lua_State *L, const kv_list *l, int lower)
{
    lua_createtable(L, 0, l->n);
    for (int i = 0; i < l->n; i++) {
        if (lower && strcasecmp(l->items[i].name, "Authorization") == 0)
            continue;
        if (lower) {
            char name[128];
            size_t k = 0;
            for (; k < sizeof name - 1 && l->items[i].name[k]; k++) {
                char c = l->items[i].name[k];
                name[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            name[k] = '\0';
            lua_pushstring(L, name);
        } else {
            lua_pushstring(L, l->items[i].name);
        }
        lua_pushstring(L, l->items[i].value);
        lua_rawset(L, -3);
    }
}

/* Pushes the request table the dispatcher gets. */
static void push_request(lua_State *L, tk_req *r, int worker_id)
{
    lua_createtable(L, 0, 14);
    lua_pushstring(L, r->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, r->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, r->match.pattern);
    lua_setfield(L, -2, "pattern");
    lua_pushstring(L, r->rid);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, worker_id);
    lua_setfield(L, -2, "worker");
    lua_createtable(L, 0, r->match.nparams);
    for (int i = 0; i < r->match.nparams; i++) {
        lua_pushstring(L, r->match.values[i]);
        lua_setfield(L, -2, r->match.names[i]);
    }
    lua_setfield(L, -2, "params");
    push_kv_table(L, &r->query, 0);
    lua_setfield(L, -2, "query");
    push_kv_table(L, &r->headers, 1);
    lua_setfield(L, -2, "headers");
    if (r->body_len > 0) {
        lua_pushlstring(L, r->body, r->body_len);
        lua_setfield(L, -2, "body_raw");
    }
    if (r->ip[0]) {
        lua_pushstring(L, r->ip);
        lua_setfield(L, -2, "ip");
    }
    if (r->has_user) {
        lua_createtable(L, 0, 5);
        lua_pushstring(L, r->claims.sub);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, r->claims.role);
        lua_setfield(L, -2, "role");
        lua_pushstring(L, r->claims.jti);
        lua_setfield(L, -2, "jti");
        lua_pushinteger(L, (lua_Integer)r->claims.exp);
        lua_setfield(L, -2, "exp");
        lua_setfield(L, -2, "user");
    }
}

static int s_debug_queries(const worker *w)
{
    return w->srv->cfg->debug_queries;
}

/* Runs the dispatcher for r on this worker's VM and stores the response. */
static int check_rate(tk_req *r);
static int check_user(tk_req *r);

static void run_request(worker *w, tk_req *r)
{
    /* Still before any Lua: a token whose user is gone gets its 401 and a
     * request over its limit its 429 here (both may wait on the network,
     * so not on MHD's thread). */
    if (check_user(r) || check_rate(r))
        return;
    TK_STAGE_MARK(&r->stages, TK_ST_LUA);
    tk_lua_vm *vm = tk_lua_gen_vm(r->gen, w->srv->consumer, w->id - 1);
    lua_State *L = tk_lua_vm_state(vm);
    tk_lua_ctx *ctx = tk_lua_vm_ctx(vm);
    ctx->request_id = r->rid;
    ctx->queries = 0;
    tk_lua_db_begin_request(ctx, r->has_user ? r->claims.sub : NULL, r->ip);
    tk_lua_vm_begin_request(vm);
    unsigned long long allocs0 = tk_lua_vm_allocs(vm);
    lua_settop(L, 0);
    tk_lua_vm_push_dispatch(vm);     /* +1 dispatch */
    lua_pushinteger(L, r->match.id); /* +1 route index */
    push_request(L, r, w->id);       /* +1 request */
    int st = lua_pcall(L, 2, 3, 0);  /* -3 +3 status, body, headers */
    TK_STAGE_MARK(&r->stages, TK_ST_LUA_END);
    if (st != LUA_OK) {
        tk_log(TK_LOG_ERROR, r->rid, "dispatcher failed: %s", lua_tostring(L, -1));
        set_error(r, 500, "internal", "internal server error");
        goto done;
    }
    if (ctx->budget < 0) {
        /* The handler ran out of instructions but swallowed the error. */
        tk_log(TK_LOG_ERROR, r->rid, "%s %s: instruction budget exceeded", r->method, r->path);
        set_error(r, 500, "internal", "internal server error");
        goto done;
    }
    lua_Integer status = lua_tointeger(L, 1);
    if (status < 100 || status > 599) {
        tk_log(TK_LOG_ERROR, r->rid, "dispatcher returned a bad status");
        set_error(r, 500, "internal", "internal server error");
        goto done;
    }
    size_t len = 0;
    const char *body = lua_tolstring(L, 2, &len);
    if (body == NULL || status == 204 || status == 304)
        len = 0;
    r->resp = make_response(r, body ? body : "", len);
    r->status = (unsigned)status;
    if (r->resp && lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
                const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
                if (strcasecmp(k, "content-type") == 0)
                    MHD_del_response_header(r->resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                            "application/json; charset=utf-8");
                MHD_add_response_header(r->resp, k, v);
            }
            lua_pop(L, 1);
        }
    }
done:
    lua_settop(L, 0);
    if (r->resp && s_debug_queries(w)) {
        char n[24];
        snprintf(n, sizeof n, "%d", ctx->queries);
        MHD_add_response_header(r->resp, "X-Query-Count", n);
        snprintf(n, sizeof n, "%llu", tk_lua_vm_allocs(vm) - allocs0);
        MHD_add_response_header(r->resp, "X-Lua-Allocs", n);
        char reads[64];
        snprintf(reads, sizeof reads, "replica=%d primary=%d", ctx->reads_replica,
                 ctx->reads_primary);
        MHD_add_response_header(r->resp, "X-DB-Reads", reads);
    }
    tk_lua_db_end_request(ctx);
    ctx->request_id = NULL;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    tk_server *s = w->srv;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->head == NULL && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        tk_req *r = s->head;
        if (r == NULL) { /* stopping and nothing left */
            pthread_mutex_unlock(&s->mu);
            break;
        }
        s->head = r->next;
        if (s->head == NULL)
            s->tail = NULL;
        pthread_mutex_unlock(&s->mu);

        TK_STAGE_MARK(&r->stages, TK_ST_PICKED);
        if (tk_stages_on)
            tk_stages_bind(&r->stages);
        run_request(w, r);
        TK_STAGE_MARK(&r->stages, TK_ST_BUILT);
        MHD_resume_connection(r->conn);
    }
    return NULL;
}

static void enqueue(tk_server *s, tk_req *r)
{
    r->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    pthread_mutex_unlock(&s->mu);
    /* After unlocking: a worker woken while we still held the mutex would
     * only block on it again (a second futex round trip per request). */
    pthread_cond_signal(&s->cv);
}

/* ---- the MHD side ------------------------------------------------------- */

/* libmicrohttpd's memory per connection (its default is 32 KiB). It holds
 * the request's header section (a larger one gets 431 from MHD: ~15 KiB of
 * headers fit, about what Node's 16 KiB default allows) and the answer's
 * header lines; bodies stream through it. MHD zeroes all of it before each
 * request of a keep-alive connection, so its size is paid on every
 * request: a quarter of the instructions of a GET /tasks/:id at 32 KiB
 * (bench/README.md, "Session 2026-12-06"). */
#define HTTP_CONN_MEMORY (16 * 1024)

#define XFF_MAX 4096 /* X-Forwarded-For lines joined; a longer chain is cut on the left */

/* Behind a proxy in TRUST_PROXY (addresses or CIDR blocks), the client is
 * the right-most X-Forwarded-For entry that is not itself a trusted proxy.
 * Every X-Forwarded-For line counts, joined in order (a proxy may append a
 * line of its own instead of extending the client's). The walk stops at
 * the first malformed entry, keeping the last good hop; entries further
 * left are the client's own to choose and never read. */
static void client_address(tk_server *s, tk_req *r)
{
    if (r->ip[0] == '\0' || !tk_config_proxy_trusted(s->cfg, r->ip))
        return;
    char joined[XFF_MAX];
    size_t used = 0;
    int cut = 0;
    for (int i = 0; i < r->headers.n; i++) {
        if (strcasecmp(r->headers.items[i].name, "X-Forwarded-For") != 0)
            continue;
        const char *v = r->headers.items[i].value;
        size_t n = strlen(v);
        if (used > 0) {
            if (used + 1 >= sizeof joined)
                break;
            joined[used++] = ',';
        }
        if (used + n >= sizeof joined) {
            /* keep the right-hand end: that is where the walk starts */
            used = 0;
            cut = 1;
            if (n >= sizeof joined) {
                v += n - (sizeof joined - 1);
                n = sizeof joined - 1;
            }
        }
        memcpy(joined + used, v, n);
        used += n;
    }
    if (used == 0)
        return;
    joined[used] = '\0';
    const char *xff = joined;
    const char *end = xff + used;
    if (cut) {
        /* the left-most entry may be a piece of one: never read it */
        xff = strchr(joined, ',');
        if (xff == NULL)
            return;
        xff++;
    }
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        const char *a = start, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        char addr[64];
        size_t n = (size_t)(b - a);
        if (n == 0 || n >= sizeof addr)
            return;
        memcpy(addr, a, n);
        addr[n] = '\0';
        unsigned char bin[16];
        if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1)
            return;
        snprintf(r->ip, sizeof r->ip, "%s", addr);
        if (!tk_config_proxy_trusted(s->cfg, addr))
            return;
        end = start > xff ? start - 1 : xff;
    }
}

static int content_type_json(const char *ct)
{
    if (ct == NULL)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* Verifies the bearer token. Returns 0 with the claims, or an error text. */
static const char *check_auth(tk_req *r)
{
    const char *h = kv_get(&r->headers, "Authorization");
    if (h == NULL)
        return "missing access token";
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return "malformed Authorization header";
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    time_t now = time(NULL);
    if (tk_auth_jwt_verify(tok, (int64_t)now, &r->claims) != TK_OK)
        return "invalid or expired access token";
    if (tk_auth_deny_check(r->claims.jti, (int64_t)now))
        return "access token has been revoked";
    r->has_user = 1;
    return NULL;
}

/* The user behind a verified token must still exist, be enabled and not
 * have changed the password since the token was signed (auth/users.h:
 * cached, one query on a miss). Returns 1 with a 401 (or 503) set. */
static int check_user(tk_req *r)
{
    if (!r->has_user)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    const char *why = NULL;
    int rc = tk_auth_users_check(&r->claims, now_ms, &why);
    if (rc == TK_OK)
        return 0;
    if (rc == TK_EAUTH) {
        set_error(r, 401, "unauthorized", why);
        if (r->resp)
            MHD_add_response_header(r->resp, "WWW-Authenticate", "Bearer");
    } else {
        tk_log(TK_LOG_WARN, r->rid, "user check failed: %s", why);
        set_error(r, 503, "unavailable", "service temporarily unavailable");
    }
    return 1;
}

/* GET /metrics: Prometheus text, answered by C without Lua; behind
 * METRICS_TOKEN (a bearer token) when that is set. */
static void serve_metrics(tk_server *s, tk_req *r)
{
    if (s->cfg->metrics_token &&
        !tk_http_edge_bearer_ok(kv_get(&r->headers, "Authorization"), s->cfg->metrics_token)) {
        set_error(r, 401, "unauthorized", "the metrics token is missing or wrong");
        if (r->resp)
            MHD_add_response_header(r->resp, "WWW-Authenticate", "Bearer");
        return;
    }
    tk_metrics_sources src = {0};
    tk_db_pool_stats ps;
    tk_db_pool_get_stats(s->pool, &ps);
    src.pool_size = ps.size;
    src.pool_in_use = ps.in_use;
    src.pool_idle = ps.idle;
    src.pool_waiting = ps.waiting;
    tk_db_replica *rep = tk_db_pool_replica(s->pool);
    if (rep != NULL) {
        tk_db_replica_stats rs;
        tk_db_replica_get_stats(rep, &rs);
        src.replica_configured = 1;
        src.replica_up = rs.state != TK_REPLICA_DOWN;
        src.replica_lag = rs.lag_seconds;
        src.reads_replica = rs.reads_replica;
        src.reads_primary = rs.reads_primary;
        src.replica_fallbacks = rs.fallbacks;
        src.replica_pool_in_use = rs.pool.in_use;
        src.replica_pool_size = rs.pool.size;
    }
    tk_server_reload_stats(s, &src.reloads, &src.reload_failures, &src.generation);
    src.ratelimit_rejections = tk_ratelimit_rejections();
    tk_bus_stats ws;
    tk_bus_get_stats(&ws);
    src.redis_state = tk_bus_redis_state();
    src.ws_connections = ws.connections;
    src.events_published = ws.published;
    src.events_delivered = ws.delivered;
    src.events_remote = ws.remote;
    src.events_dropped = ws.dropped;
    src.ws_overflows = ws.overflows;
    size_t len = 0;
    char *text = tk_metrics_render(&src, &len);
    if (text == NULL) {
        set_error(r, 500, "internal", "internal server error");
        return;
    }
    r->resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r->resp == NULL) {
        free(text);
        return;
    }
    MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    add_common_headers(r, r->resp, 1);
    r->status = 200;
}

/* Applies the route's buckets (from the Lua policy), each counted per user
 * (per client IP before login) or per client IP, under its own name, so a
 * route's own limit never reads another route's counter. Returns 1 with a
 * 429 set when a bucket is exhausted. */
static int check_rate(tk_req *r)
{
    const tk_lua_route *route = tk_lua_gen_route(r->gen, r->match.id);
    if (route->nrates == 0)
        return 0;
    int64_t now = (int64_t)time(NULL);
    char key[320];
    const char *ip = r->ip[0] ? r->ip : "unknown";
    for (int i = 0; i < route->nrates; i++) {
        const tk_lua_rate *b = &route->rates[i];
        if (!b->per_ip && r->has_user)
            snprintf(key, sizeof key, "rl:%s:u:%s", b->bucket, r->claims.sub);
        else
            snprintf(key, sizeof key, "rl:%s:ip:%s", b->bucket, ip);
        tk_rate_result res;
        (void)tk_ratelimit_hit(key, b->limit, b->window, now, &res);
        if (!r->rated || !res.allowed || res.remaining < r->rate.remaining) {
            r->rate = res;
            r->rated = 1;
        }
        if (!res.allowed) {
            set_error(r, 429, "rate_limited", "too many requests; retry later");
            return 1;
        }
    }
    return 0;
}

/* The C checks before Lua that need only the headers, made on the first
 * call of the access handler, before any body byte is read. Returns 1 when
 * a response is set, 0 when the request goes on. */
static int precheck(tk_server *s, tk_req *r)
{
    if (tk_static_owns(r->path)) { /* the web client at /app/: http/static.c */
        tk_static_request q = {r->method, r->path, kv_get(&r->headers, "If-None-Match"),
                               kv_get(&r->headers, "Accept-Encoding"), kv_get(&r->headers, "Host")};
        if (tk_static_answer(s->cfg, &q, &r->resp, &r->status) == TK_OK)
            add_common_headers(r, r->resp, 0);
        return 1;
    }
    if (strcmp(r->method, "OPTIONS") == 0) {
        r->resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        r->status = 204;
        if (r->resp == NULL)
            return 1;
        add_common_headers(r, r->resp, 1);
        if (r->origin && tk_config_origin_allowed(s->cfg, r->origin)) {
            MHD_add_response_header(r->resp, "Access-Control-Allow-Methods",
                                    "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS");
            MHD_add_response_header(r->resp, "Access-Control-Allow-Headers",
                                    "Authorization, Content-Type, If-Match, Idempotency-Key, "
                                    "X-Request-Id");
            MHD_add_response_header(r->resp, "Access-Control-Max-Age", "600");
        }
        return 1;
    }
    if (strcmp(r->path, "/metrics") == 0 &&
        (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)) {
        serve_metrics(s, r);
        return 1;
    }
    char allow[256];
    int m = tk_router_match(r->router, r->method, r->path, &r->match, allow, sizeof allow);
    if (m == TK_ENOTFOUND) {
        set_error(r, 404, "not_found", "no such resource");
        return 1;
    }
    if (m == TK_OK)
        r->matched = 1;
    if (m == 1) {
        set_error(r, 405, "method_not_allowed", "method not allowed on this resource");
        if (r->resp)
            MHD_add_response_header(r->resp, "Allow", allow);
        return 1;
    }
    if (r->has_body && !content_type_json(kv_get(&r->headers, "Content-Type"))) {
        set_error(r, 415, "unsupported_media_type", "request body must be application/json");
        return 1;
    }
    const tk_lua_route *route = tk_lua_gen_route(r->gen, r->match.id);
    int has_header = kv_get(&r->headers, "Authorization") != NULL;
    if (route->auth == TK_LUA_AUTH_REQUIRED ||
        (route->auth == TK_LUA_AUTH_OPTIONAL && has_header)) {
        const char *why = check_auth(r);
        if (why != NULL) {
            set_error(r, 401, "unauthorized", why);
            if (r->resp)
                MHD_add_response_header(r->resp, "WWW-Authenticate", "Bearer");
            return 1;
        }
    }
    if (route->constant_body != NULL && !r->has_body) {
        /* A constant route (GET, no auth, no limits, no plugin hooks):
         * the generation's cached answer, here on the HTTP thread. The
         * access log and metrics come from on_completed as for any
         * request. */
        r->resp = make_response(r, route->constant_body, route->constant_len);
        r->status = route->constant_status;
        if (r->resp && s->cfg->debug_queries) {
            MHD_add_response_header(r->resp, "X-Query-Count", "0");
            MHD_add_response_header(r->resp, "X-Lua-Allocs", "0");
        }
        return 1;
    }
    return 0; /* rate limits: on the worker (they may ask Redis) */
}

/* The checks once the body is in. Returns 1 when a response is set. */
static int precheck_body(tk_server *s, tk_req *r)
{
    if (r->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body is larger than %zu bytes", s->cfg->body_limit);
        set_error(r, 413, "payload_too_large", msg);
        return 1;
    }
    if (r->body_len > 0 && !content_type_json(kv_get(&r->headers, "Content-Type"))) {
        set_error(r, 415, "unsupported_media_type", "request body must be application/json");
        return 1;
    }
    return 0;
}

typedef struct {
    tk_http_header *items;
    size_t n, cap;
    int failed;
} header_refs;

/* Collects the header lines as MHD holds them (borrowed, duplicates kept). */
static enum MHD_Result collect_ref(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    header_refs *l = cls;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        tk_http_header *ni = realloc(l->items, cap * sizeof *ni);
        if (ni == NULL) {
            l->failed = 1;
            return MHD_NO;
        }
        l->items = ni;
        l->cap = cap;
    }
    l->items[l->n].name = key;
    l->items[l->n].value = value ? value : "";
    l->n++;
    return MHD_YES;
}

/* The HTTP/1.1 edge checks (http/edge.c) on the header section. Returns 1
 * with a response set when the request is refused, -1 when out of memory. */
static int edge_check(tk_server *s, tk_req *r, const char *version)
{
    header_refs l = {0};
    (void)MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_ref, &l);
    if (l.failed) {
        free(l.items);
        return -1;
    }
    tk_http_edge_verdict v;
    if (tk_http_edge_check(version, l.items, l.n, s->cfg->body_limit, &v) == 0 &&
        !tk_http_edge_layout_ok(l.items, l.n)) {
        v.status = 400;
        v.code = "bad_request";
        v.message = "folded header line or NUL byte in a header field";
    }
    free(l.items);
    r->has_body = v.has_body;
    if (v.status == 0)
        return 0;
    set_error(r, v.status, v.code, v.message);
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    tk_server *s = cls;
    tk_req *r = *con_cls;

    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return MHD_NO;
        *con_cls = r;
        r->srv = s;
        r->conn = conn;
        r->gen = tk_lua_host_acquire(s->host);
        r->router = tk_lua_gen_data(r->gen, s->consumer);
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        TK_STAGE_MARK(&r->stages, TK_ST_START);
        snprintf(r->method, sizeof r->method, "%s", method);
        r->path = strdup(url);
        if (r->path == NULL)
            return MHD_NO;
        if (MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, r) < 0)
            return MHD_NO;
        const char *rid = kv_get(&r->headers, "X-Request-Id");
        if (rid && rid_ok(rid)) {
            snprintf(r->rid, sizeof r->rid, "%s", rid);
        } else if (tk_auth_request_id(r->rid, sizeof r->rid) != TK_OK) {
            snprintf(r->rid, sizeof r->rid, "unknown");
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->ip,
                          sizeof r->ip);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->ip,
                          sizeof r->ip);
        }
        client_address(s, r);
        const char *origin = kv_get(&r->headers, "Origin");
        if (origin)
            r->origin = strdup(origin);
        if (s->guard)
            tk_http_guard_set_busy(s->guard, conn, 1);
        /* (1) Everything the headers decide, before a byte of body: a
         * refusal of a request that announced a body is answered now and
         * the connection closed (MHD discards the body); one without a body
         * is answered at (3), which comes at once, keeping the connection. */
        int refused = edge_check(s, r, version);
        if (refused < 0)
            return MHD_NO;
        if (refused) {
            r->has_body = 1; /* framing is in doubt: never reuse the connection */
        } else {
            if (MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, r) < 0)
                return MHD_NO;
            refused = precheck(s, r);
        }
        if (refused && r->has_body) {
            if (r->resp)
                MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
            if (s->guard) /* drain the body the client may still send */
                tk_http_guard_linger(s->guard, conn);
            return queue(r);
        }
        TK_STAGE_MARK(&r->stages, TK_ST_CHECKED);
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large || r->body_len + n > s->cfg->body_limit) {
            r->too_large = 1;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 4096;
            while (cap < r->body_len + n + 1)
                cap *= 2;
            char *nb = realloc(r->body, cap);
            if (nb == NULL)
                return MHD_NO;
            r->body = nb;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }

    if (r->queued) { /* (4): the worker resumed us */
        TK_STAGE_MARK(&r->stages, TK_ST_REQUEUED);
        return queue(r);
    }

    if (r->resp != NULL || r->status != 0 || precheck_body(s, r))
        return queue(r); /* refused at (1) or by the body checks */

    r->queued = 1;
    atomic_fetch_add(&s->in_flight, 1);
    MHD_suspend_connection(conn);
    TK_STAGE_MARK(&r->stages, TK_ST_QUEUED);
    enqueue(s, r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    tk_server *s = cls;
    tk_req *r = *con_cls;
    if (r == NULL)
        return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns =
        (long long)(t1.tv_sec - r->t0.tv_sec) * 1000000000LL + (t1.tv_nsec - r->t0.tv_nsec);
    tk_metrics_observe_request(r->method, r->matched ? r->match.pattern : NULL, r->status,
                               (double)ns / 1e9);
    /* milliseconds with one decimal, in integers (cheaper than "%.1f") */
    long long tenths = (ns + 50000) / 100000;
    if (tk_log_enabled(TK_LOG_INFO))
        tk_log(TK_LOG_INFO, r->rid, "%s %s %u %lld.%lldms%s", r->method, r->path, r->status,
               tenths / 10, tenths % 10,
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    if (tk_stages_on && r->queued) {
        TK_STAGE_MARK(&r->stages, TK_ST_DONE);
        tk_stages_record(&r->stages, r->method, r->matched ? r->match.pattern : NULL, r->status);
    }
    if (r->queued)
        atomic_fetch_sub(&s->in_flight, 1);
    if (s->guard)
        tk_http_guard_set_busy(s->guard, conn, 0);
    req_free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    tk_log(TK_LOG_DEBUG, NULL, "http: %s", msg);
}

/* ---- start / stop -------------------------------------------------------- */

int tk_server_start(const tk_config *cfg, tk_db_pool *pool, tk_lua_host *host, int consumer,
                    tk_server **out, char *err, size_t errlen)
{
    int rc = TK_ENOMEM;
    tk_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return TK_ENOMEM;
    s->cfg = cfg;
    s->pool = pool;
    s->host = host;
    s->consumer = consumer;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->workers = calloc((size_t)cfg->workers, sizeof *s->workers);
    if (s->workers == NULL)
        goto fail;
    for (int i = 0; i < cfg->workers; i++) {
        s->workers[i].srv = s;
        s->workers[i].id = i + 1;
    }
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            tk_errf(err, errlen, "cannot start worker threads");
            s->stopping = 1;
            pthread_cond_broadcast(&s->cv);
            for (int k = 0; k < i; k++)
                pthread_join(s->workers[k].thread, NULL);
            s->nworkers = 0;
            rc = TK_EIO;
            goto fail;
        }
        s->nworkers = i + 1;
    }

    rc = tk_http_guard_new(cfg->http_header_timeout * 1000, &s->guard);
    if (rc != TK_OK)
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    struct sockaddr_storage bind_addr;
    if (tk_http_edge_bind_addr(cfg->host, cfg->port, &bind_addr) != TK_OK) {
        tk_errf(err, errlen, "HOST is not an IP address");
        rc = TK_ECONFIG;
        goto fail;
    }
    if (bind_addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* HTTPS when TLS_CERT_FILE is set: main.c loaded it (http/tls.c), and
     * the callback hands each handshake the current certificate. */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)tk_tls_cert_callback},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TK_TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL}};
    if (cfg->tls_cert_file)
        flags |= MHD_USE_TLS;
    else
        tls_opts[0].option = MHD_OPTION_END;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, tk_http_guard_notify, s->guard,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&bind_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)10000, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->http_conn_per_ip, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, tk_static_unescape, NULL, MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (s->daemon == NULL) {
        tk_errf(err, errlen, "cannot listen on %s port %d (in use?)",
                cfg->host ? cfg->host : "all addresses,", cfg->port);
        rc = TK_EIO;
        goto fail;
    }
    *out = s;
    return TK_OK;
fail:
    if (rc == TK_ENOMEM)
        tk_errf(err, errlen, "out of memory starting the server");
    tk_server_stop(s);
    return rc;
}

void tk_server_quiesce(tk_server *s)
{
    if (s == NULL || s->daemon == NULL || atomic_exchange(&s->quiesced, 1))
        return;
    MHD_socket ls = MHD_quiesce_daemon(s->daemon);
    if (ls == MHD_INVALID_SOCKET)
        return;
    /* Closing a listening socket resets the connections waiting in its
     * backlog: take them over first (each is then served like any other). */
    int fl = fcntl(ls, F_GETFL);
    if (fl < 0 || fcntl(ls, F_SETFL, fl | O_NONBLOCK) < 0) {
        close(ls);
        return;
    }
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t alen = sizeof addr;
        int fd = accept4(ls, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break; /* EAGAIN: the backlog is empty */
        if (MHD_add_connection(s->daemon, fd, (struct sockaddr *)&addr, alen) != MHD_YES)
            break; /* MHD closed fd */
    }
    close(ls);
}

void tk_server_stop(tk_server *s)
{
    if (s == NULL)
        return;
    if (s->daemon) {
        /* Stop accepting, then let in-flight requests finish and be sent. */
        tk_server_quiesce(s);
        /* as long as SHUTDOWN_TIMEOUT_MS allows: main's watchdog ends it */
        for (int i = 0; i < s->cfg->shutdown_timeout_ms / 10 && atomic_load(&s->in_flight) > 0;
             i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].thread, NULL);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    tk_http_guard_free(s->guard);
    free(s->workers);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
