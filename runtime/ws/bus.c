/* The realtime bus (bus.h): a process-wide switchboard between the scripts,
 * the local WebSocket server and the Redis bridge; it also carries token
 * revocations and user changes to the auth caches here and on the other
 * instances. State is one static struct under a mutex; the server and the
 * bridge only copy and queue under it, so the lock is held for
 * microseconds. A publisher then waits, outside the lock and for at most
 * 100 ms, until the bridge has written its message to Redis
 * (tk_redis_bridge_wait), so other instances hear it before the answer
 * that caused it is sent. */
#include "ws/bus.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/users.h"
#include "obs/log.h"
#include "redis/bridge.h"
#include "ws/server.h"

static struct {
    pthread_mutex_t mu;
    tk_ws_server *ws;
    tk_redis_bridge *br;
    long long published, remote;
} bus = {.mu = PTHREAD_MUTEX_INITIALIZER};

int tk_rt_name_ok(const char *s, int allow_empty)
{
    if (s == NULL)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return (n > 0 || allow_empty) && n <= TK_RT_NAME_MAX;
}

static int msg_ok(const tk_rt_msg *m)
{
    switch (m->kind) {
    case TK_RT_EVENT:
    case TK_RT_KICK:
        return tk_rt_name_ok(m->room, 0) && tk_rt_name_ok(m->arg, 0);
    case TK_RT_CLOSE_ROOM:
    case TK_RT_RECHECK:
        return tk_rt_name_ok(m->room, 0) && tk_rt_name_ok(m->arg, 1);
    case TK_RT_REVOKE:
    case TK_RT_USER:
        return tk_rt_name_ok(m->room, 1) && tk_rt_name_ok(m->arg, 0);
    default:
        return 0;
    }
}

int tk_ws_bus_publish(const tk_rt_msg *m)
{
    if (!msg_ok(m) || (m->data == NULL && m->data_len > 0))
        return TK_EINVAL;
    int rc = TK_OK;
    uint64_t ticket = 0;
    pthread_mutex_lock(&bus.mu);
    bus.published++;
    if (m->kind == TK_RT_USER)
        tk_auth_users_invalidate(m->arg); /* here at once; remote instances on arrival */
    if (bus.ws)
        rc = tk_ws_server_post(bus.ws, m);
    tk_redis_bridge *br = bus.br;
    if (br)
        ticket = tk_redis_bridge_publish(br, m); /* counts its own drops */
    pthread_mutex_unlock(&bus.mu);
    /* Outside the lock; br cannot be freed meanwhile: stopping the bridge
     * waits for every ticket it handed out. */
    if (ticket)
        tk_redis_bridge_wait(br, ticket);
    return rc;
}

void tk_ws_bus_attach(tk_ws_server *ws, tk_redis_bridge *br)
{
    pthread_mutex_lock(&bus.mu);
    bus.ws = ws;
    bus.br = br;
    pthread_mutex_unlock(&bus.mu);
}

void tk_ws_bus_deliver_remote(void *arg, const tk_rt_msg *m)
{
    (void)arg;
    if (!msg_ok(m))
        return;
    if (m->kind == TK_RT_REVOKE && m->data_len > 0 && m->data_len < 24) {
        /* The token was revoked on another instance: deny it here too. */
        char num[24];
        memcpy(num, m->data, m->data_len);
        num[m->data_len] = '\0';
        char *end = NULL;
        long long exp = strtoll(num, &end, 10);
        if (end && *end == '\0' && exp > 0 && tk_auth_deny_add(m->arg, (int64_t)exp) != TK_OK)
            tk_log_warn("realtime: cannot record a revoked token (out of memory)");
    }
    if (m->kind == TK_RT_USER)
        tk_auth_users_invalidate(m->arg); /* changed through another instance */
    pthread_mutex_lock(&bus.mu);
    bus.remote++;
    if (bus.ws && tk_ws_server_post(bus.ws, m) != TK_OK)
        tk_log_warn("realtime: dropped a message from another instance (out of memory)");
    pthread_mutex_unlock(&bus.mu);
}

int tk_ws_bus_redis_state(void)
{
    pthread_mutex_lock(&bus.mu);
    int st = bus.br ? tk_redis_bridge_connected(bus.br) : -1;
    pthread_mutex_unlock(&bus.mu);
    return st;
}

void tk_ws_bus_get_stats(tk_ws_bus_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&bus.mu);
    out->published = bus.published;
    out->remote = bus.remote;
    if (bus.ws) {
        tk_ws_server_stats ss;
        tk_ws_server_get_stats(bus.ws, &ss);
        out->connections = ss.connections;
        out->delivered = ss.delivered;
        out->overflows = ss.overflows;
    }
    if (bus.br) {
        tk_redis_bridge_stats bs;
        tk_redis_bridge_get_stats(bus.br, &bs);
        out->dropped = bs.dropped;
    }
    pthread_mutex_unlock(&bus.mu);
}
