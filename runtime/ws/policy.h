/* Who may join which realtime room, answered by the scripts: the same Lua
 * permission policy the REST routes use, through the function the app
 * exports as app.realtime.can_join(user, room) -> true | false, code.
 * It needs the database, so it runs on threads of its own, each with its
 * own Lua VM on the shared pool; the WebSocket service thread submits a
 * job and gets it back through a callback. */
#ifndef TK_WS_POLICY_H
#define TK_WS_POLICY_H

#include <stdint.h>

#include "common.h"
#include "config.h"
#include "db/pool.h"
#include "lua/snapshot.h"
#include "ws/rooms.h"

#define TK_WS_POLICY_THREADS 2

typedef struct tk_ws_join {
    struct tk_ws_join *next;
    uint64_t conn_id; /* the asking connection (it may be gone by the answer) */
    uint64_t seq;     /* the server's control sequence when the job was sent */
    int tries;
    long ack_id; /* Socket.IO ack id, or -1 */
    int recheck; /* not a client's join: the room's users asked again (conn_id 0) */
    char user_id[64];
    char role[16];
    char room[TK_WS_ROOM_NAME_MAX + 1];
    /* the answer */
    int ok;
    char code[32]; /* an API.md §1 error code when !ok */
} tk_ws_join;

typedef struct tk_ws_policy tk_ws_policy;

/* Called on a policy thread with the answered job; takes ownership of it
 * (free with free()). */
typedef void (*tk_ws_policy_done_fn)(void *arg, tk_ws_join *job);

/* Loads the scripts of `snap` into TK_WS_POLICY_THREADS VMs (each takes a
 * reference) and starts the threads. Borrows cfg and pool until
 * tk_ws_policy_stop. Returns 0, TK_ELUA with "file:line: message" in err, or
 * TK_ENOMEM. */
int tk_ws_policy_start(const tk_config *cfg, tk_db_pool *pool, tk_snapshot *snap,
                       tk_ws_policy_done_fn done, void *arg, tk_ws_policy **out, char *err,
                       size_t errlen) TK_WUR;

/* Queues a job (takes ownership of the malloc'd job); `done` gets it back. */
void tk_ws_policy_submit(tk_ws_policy *p, tk_ws_join *job);

/* Loads the scripts of `snap` into fresh VMs; each thread switches to its
 * new VM before its next job. On failure (TK_ELUA with the reason in err, or
 * TK_ENOMEM) nothing changes. Safe from any thread. */
int tk_ws_policy_reload(tk_ws_policy *p, tk_snapshot *snap, char *err, size_t errlen) TK_WUR;

/* Stops the threads after the job each is running; frees queued jobs
 * without calling `done`. NULL is a no-op. */
void tk_ws_policy_stop(tk_ws_policy *p);

#endif
