/* Who may join which realtime room, answered by the scripts: the same Lua
 * permission policy the REST routes use, through the function the app
 * exports as app.realtime.can_join(user, room) -> true | false, code.
 * It needs the database, so it runs on threads of its own, each running
 * its VM of the current script generation (lua/gen.h: the generation HTTP
 * serves), on the shared pool; the WebSocket service thread submits a job
 * and gets it back through a callback. */
#ifndef TK_WS_POLICY_H
#define TK_WS_POLICY_H

#include <stdint.h>

#include "common.h"
#include "lua/gen.h"
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

/* What the policy needs of every script generation (register it with
 * tk_lua_host_add before the first load): TK_WS_POLICY_THREADS VMs. */
tk_lua_consumer tk_ws_policy_consumer(void);

/* Starts the threads; each job runs on the host's generation current when
 * a thread takes it, on that thread's VM of consumer `consumer` (the index
 * tk_lua_host_add gave tk_ws_policy_consumer's registration). Borrows host
 * until tk_ws_policy_stop. Returns 0, or TK_ENOMEM with the reason in err. */
int tk_ws_policy_start(tk_lua_host *host, int consumer, tk_ws_policy_done_fn done, void *arg,
                       tk_ws_policy **out, char *err, size_t errlen) TK_WUR;

/* Queues a job (takes ownership of the malloc'd job); `done` gets it back. */
void tk_ws_policy_submit(tk_ws_policy *p, tk_ws_join *job);

/* Stops the threads after the job each is running; frees queued jobs
 * without calling `done`. NULL is a no-op. */
void tk_ws_policy_stop(tk_ws_policy *p);

#endif
