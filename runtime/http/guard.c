/* Header-read deadline and lingering close (see guard.h). Every connection
 * MHD accepts gets an entry in one list under one mutex; a sweeper thread
 * wakes a few times per timeout and shuts down (shutdown(2), both ways) the
 * socket of each entry waiting for headers past its deadline. MHD then sees
 * the end of the stream and closes the connection as it would for a client
 * that left. MHD announces CLOSED before it closes the descriptor, and the
 * entry leaves the list then, under the mutex: the sweeper never touches a
 * reused descriptor. A connection marked to linger is dup(2)ed at CLOSED,
 * so MHD's close does not reset it with unread body bytes in the kernel
 * buffer; the sweeper reads and drops them until the client closes or
 * LINGER_MS passes, then closes the duplicate. */
#include "http/guard.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MS 5000
#define LINGER_MAX 1024 /* sockets draining at once; more are closed at once */

typedef struct entry {
    int fd;
    int busy;      /* a request is being handled: no deadline */
    int shut;      /* already shut down */
    int linger;    /* drain after MHD closes */
    long long due; /* monotonic ms */
    struct entry *prev, *next;
} entry;

typedef struct {
    int fd;
    long long until;
} lingering;

struct tk_http_guard {
    int timeout_ms;
    pthread_mutex_t mu;
    entry *head;
    lingering linger[LINGER_MAX]; /* [0, nlinger) */
    int nlinger;
    atomic_int stopping;
    pthread_t thread;
    atomic_llong expired;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads and drops what is there. Returns 1 while the socket stays open. */
static int drain(int fd)
{
    char buf[16384];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
    return 1;
}

static void sweep_lingering(tk_http_guard *g, int wait_ms)
{
    struct pollfd pfd[LINGER_MAX];
    pthread_mutex_lock(&g->mu);
    int n = g->nlinger;
    for (int i = 0; i < n; i++) {
        pfd[i].fd = g->linger[i].fd;
        pfd[i].events = POLLIN;
        pfd[i].revents = 0;
    }
    pthread_mutex_unlock(&g->mu);
    if (n == 0) {
        struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        return;
    }
    (void)poll(pfd, (nfds_t)n, wait_ms);
    long long now = now_ms();
    /* Only this thread removes entries, and new ones are appended: the
     * first n are still the ones polled. */
    pthread_mutex_lock(&g->mu);
    for (int i = n - 1; i >= 0; i--) {
        int open = pfd[i].revents ? drain(pfd[i].fd) : 1;
        if (!open || now >= g->linger[i].until) {
            close(g->linger[i].fd);
            g->linger[i] = g->linger[--g->nlinger];
        }
    }
    pthread_mutex_unlock(&g->mu);
}

static void *sweeper(void *arg)
{
    tk_http_guard *g = arg;
    int step = g->timeout_ms / 4;
    if (step > 250)
        step = 250;
    if (step < 10)
        step = 10;
    while (!atomic_load(&g->stopping)) {
        sweep_lingering(g, step);
        long long now = now_ms();
        pthread_mutex_lock(&g->mu);
        for (entry *e = g->head; e; e = e->next) {
            if (!e->busy && !e->shut && now >= e->due) {
                shutdown(e->fd, SHUT_RDWR);
                e->shut = 1;
                atomic_fetch_add(&g->expired, 1);
            }
        }
        pthread_mutex_unlock(&g->mu);
    }
    return NULL;
}

int tk_http_guard_new(int timeout_ms, tk_http_guard **out)
{
    tk_http_guard *g = calloc(1, sizeof *g);
    if (g == NULL)
        return TK_ENOMEM;
    g->timeout_ms = timeout_ms;
    atomic_init(&g->expired, 0);
    atomic_init(&g->stopping, 0);
    pthread_mutex_init(&g->mu, NULL);
    if (pthread_create(&g->thread, NULL, sweeper, g) != 0) {
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
    atomic_store(&g->stopping, 1);
    pthread_join(g->thread, NULL);
    /* MHD_stop_daemon announced CLOSED for every connection: nothing left */
    while (g->head) {
        entry *e = g->head;
        g->head = e->next;
        free(e);
    }
    for (int i = 0; i < g->nlinger; i++)
        close(g->linger[i].fd);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static entry *entry_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
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
    if (e->linger && g->nlinger < LINGER_MAX) {
        int fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) {
            g->linger[g->nlinger].fd = fd;
            g->linger[g->nlinger].until = now_ms() + LINGER_MS;
            g->nlinger++;
        }
    }
    pthread_mutex_unlock(&g->mu);
    free(e);
    *socket_context = NULL;
}

void tk_http_guard_set_busy(tk_http_guard *g, struct MHD_Connection *conn, int busy)
{
    entry *e = entry_of(conn);
    if (e == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    e->busy = busy;
    if (!busy)
        e->due = now_ms() + g->timeout_ms;
    pthread_mutex_unlock(&g->mu);
}

void tk_http_guard_linger(tk_http_guard *g, struct MHD_Connection *conn)
{
    entry *e = entry_of(conn);
    if (e == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    e->linger = 1;
    pthread_mutex_unlock(&g->mu);
}

long long tk_http_guard_expired(tk_http_guard *g)
{
    return g ? atomic_load(&g->expired) : 0;
}
