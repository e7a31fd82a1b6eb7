/* The header-read deadline (see guard.h). Every connection MHD accepts gets
 * an entry in one list under one mutex; a sweeper thread wakes a few times
 * per timeout and shuts down (shutdown(2), both ways) the socket of each
 * entry waiting for headers past its deadline. MHD then sees the end of the
 * stream and closes the connection as it would for a client that left.
 * MHD announces CLOSED before it closes the descriptor, and the entry leaves
 * the list then, under the mutex: the sweeper never touches a reused fd. */
#include "http/guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

typedef struct entry {
    int fd;
    int busy;      /* a request is being handled: no deadline */
    int shut;      /* already shut down */
    long long due; /* monotonic ms */
    struct entry *prev, *next;
} entry;

struct tk_http_guard {
    int timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    entry *head;
    int stopping;
    pthread_t thread;
    atomic_llong expired;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *sweeper(void *arg)
{
    tk_http_guard *g = arg;
    long long step =
        g->timeout_ms / 4 > 250 ? 250 : (g->timeout_ms / 4 > 10 ? g->timeout_ms / 4 : 10);
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += step * 1000000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        long long now = now_ms();
        for (entry *e = g->head; e; e = e->next) {
            if (!e->busy && !e->shut && now >= e->due) {
                shutdown(e->fd, SHUT_RDWR);
                e->shut = 1;
                atomic_fetch_add(&g->expired, 1);
            }
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int tk_http_guard_new(int timeout_ms, tk_http_guard **out)
{
    tk_http_guard *g = calloc(1, sizeof *g);
    if (g == NULL)
        return TK_ENOMEM;
    g->timeout_ms = timeout_ms;
    atomic_init(&g->expired, 0);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->thread, NULL, sweeper, g) != 0) {
        pthread_cond_destroy(&g->cv);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return TK_EIO;
    }
    *out = g;
    return TK_OK;
}

void tk_http_guard_free(tk_http_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    /* MHD_stop_daemon announced CLOSED for every connection: nothing left */
    while (g->head) {
        entry *e = g->head;
        g->head = e->next;
        free(e);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void tk_http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    tk_http_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        entry *e = ci ? calloc(1, sizeof *e) : NULL;
        *socket_context = e;
        if (e == NULL)
            return; /* out of memory: this connection goes without a deadline */
        e->fd = ci->connect_fd;
        e->due = now_ms() + g->timeout_ms;
        pthread_mutex_lock(&g->mu);
        e->next = g->head;
        if (g->head)
            g->head->prev = e;
        g->head = e;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    entry *e = *socket_context;
    if (e == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    if (e->prev)
        e->prev->next = e->next;
    else
        g->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    pthread_mutex_unlock(&g->mu);
    free(e);
    *socket_context = NULL;
}

void tk_http_guard_set_busy(tk_http_guard *g, struct MHD_Connection *conn, int busy)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    entry *e = ci ? ci->socket_context : NULL;
    if (e == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    e->busy = busy;
    if (!busy)
        e->due = now_ms() + g->timeout_ms;
    pthread_mutex_unlock(&g->mu);
}

long long tk_http_guard_expired(tk_http_guard *g)
{
    return g ? atomic_load(&g->expired) : 0;
}
