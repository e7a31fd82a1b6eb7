/* Join checks on their own threads (policy.h). Thread i runs VM i of the
 * realtime consumer of the current script generation (lua/gen.h), taken
 * anew for each job; a job is one protected call of
 * app.realtime.can_join(user, room). A raised error with a string `code`
 * (lib.errors, e.g. "unavailable" when the database is down) becomes that
 * code; any other error is logged and answered "internal". */
#include "ws/policy.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/gen.h"
#include "lua/vm.h"
#include "obs/log.h"

typedef struct {
    tk_ws_policy *p;
    int index; /* the VM of each generation this thread runs */
    pthread_t thread;
    int started;
} policy_thread;

struct tk_ws_policy {
    tk_ws_policy_done_fn done;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tk_ws_join *head, *tail;
    int stopping;
    int warned; /* the app has no realtime.can_join (logged once) */
    tk_lua_host *host;
    int consumer;
    policy_thread threads[TK_WS_POLICY_THREADS];
};

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (lua_istable(L, 1))
            return 1; /* an error object (lib.errors): keep it as it is */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void deny(tk_ws_join *j, const char *code)
{
    j->ok = 0;
    snprintf(j->code, sizeof j->code, "%s", code);
}

/* Answers one job in vm. Leaves the stack empty. */
static void run_job(tk_ws_policy *p, tk_lua_vm *vm, tk_ws_join *j)
{
    lua_State *L = tk_lua_vm_state(vm);
    lua_settop(L, 0);
    tk_lua_vm_begin_request(vm);
    lua_pushcfunction(L, traceback);                       /* 1 handler */
    tk_lua_vm_push_app(vm);                                /* 2 app */
    if (lua_getfield(L, 2, "realtime") != LUA_TTABLE ||    /* 3 app.realtime */
        lua_getfield(L, 3, "can_join") != LUA_TFUNCTION) { /* 4 can_join */
        pthread_mutex_lock(&p->mu);
        int warn = !p->warned;
        p->warned = 1;
        pthread_mutex_unlock(&p->mu);
        if (warn)
            tk_log_warn("realtime: the app exports no realtime.can_join(user, room); "
                        "every join is refused");
        deny(j, "not_found");
        goto out;
    }
    lua_createtable(L, 0, 2); /* 5 user */
    lua_pushstring(L, j->user_id);
    lua_setfield(L, 5, "id");
    lua_pushstring(L, j->role);
    lua_setfield(L, 5, "role");
    lua_pushstring(L, j->room);            /* 6 room */
    if (lua_pcall(L, 2, 2, 1) != LUA_OK) { /* -3 +1 error */
        int e = lua_gettop(L);
        const char *code = NULL;
        if (lua_istable(L, e) && lua_getfield(L, e, "code") == LUA_TSTRING) /* +1 */
            code = lua_tostring(L, -1);
        if (code != NULL && strlen(code) < sizeof j->code) {
            deny(j, code);
        } else {
            const char *msg =
                lua_type(L, e) == LUA_TSTRING ? lua_tostring(L, e) : luaL_typename(L, e);
            tk_log_error("realtime.can_join(%s) failed: %s", j->room, msg);
            deny(j, "internal");
        }
        goto out;
    }
    if (lua_toboolean(L, -2)) { /* true [, ignored] */
        j->ok = 1;
        j->code[0] = '\0';
    } else {
        size_t n = 0;
        const char *code = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        deny(j, code && n > 0 && n < sizeof j->code ? code : "not_found");
    }
out:
    lua_settop(L, 0);
}

static void *thread_main(void *arg)
{
    policy_thread *t = arg;
    tk_ws_policy *p = t->p;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stopping && p->head == NULL)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        tk_ws_join *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->next = NULL;
        /* The generation current now: a reload between two jobs moves
         * this thread with HTTP, never apart from it. */
        tk_lua_gen *g = tk_lua_host_acquire(p->host);
        run_job(p, tk_lua_gen_vm(g, p->consumer, t->index), j);
        tk_lua_gen_release(g);
        p->done(p->arg, j); /* takes j */
    }
    return NULL;
}

tk_lua_consumer tk_ws_policy_consumer(void)
{
    tk_lua_consumer c = {.name = "realtime", .nvms = TK_WS_POLICY_THREADS, .worker_id = -1};
    return c;
}

int tk_ws_policy_start(tk_lua_host *host, int consumer, tk_ws_policy_done_fn done, void *arg,
                       tk_ws_policy **out, char *err, size_t errlen)
{
    tk_ws_policy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return TK_ENOMEM;
    p->done = done;
    p->arg = arg;
    p->host = host;
    p->consumer = consumer;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < TK_WS_POLICY_THREADS; i++) {
        policy_thread *t = &p->threads[i];
        t->p = p;
        t->index = i;
        if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
            tk_errf(err, errlen, "cannot start a realtime policy thread");
            tk_ws_policy_stop(p);
            return TK_ENOMEM;
        }
        t->started = 1;
    }
    *out = p;
    return TK_OK;
}

void tk_ws_policy_submit(tk_ws_policy *p, tk_ws_join *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void tk_ws_policy_stop(tk_ws_policy *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < TK_WS_POLICY_THREADS; i++) {
        if (p->threads[i].started)
            pthread_join(p->threads[i].thread, NULL);
    }
    while (p->head) {
        tk_ws_join *j = p->head;
        p->head = j->next;
        free(j);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
