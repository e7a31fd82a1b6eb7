/* Rooms of realtime connections: a hash table from room name ("project:<id>",
 * "user:<id>") to its members, and on each member the set of rooms it is in,
 * so that leaving everything on close is cheap. A room exists while it has
 * members. Not thread-safe: only the WebSocket service thread touches it.
 * Members are opaque pointers; the registry never dereferences them. */
#ifndef TK_WS_ROOMS_H
#define TK_WS_ROOMS_H

#include "common.h"

#define TK_WS_ROOMS_PER_MEMBER 256 /* joins beyond this fail with TK_ERANGE */
#define TK_WS_ROOM_NAME_MAX 200

typedef struct tk_ws_room tk_ws_room;
typedef struct tk_ws_rooms tk_ws_rooms;

/* The rooms one member is in; embedded in the member, zeroed at start. */
typedef struct {
    tk_ws_room **v;
    int n, cap;
} tk_ws_room_set;

int tk_ws_rooms_new(tk_ws_rooms **out) TK_WUR;

/* Frees the registry and every room still in it (member sets that point
 * into it must not be used afterwards). */
void tk_ws_rooms_free(tk_ws_rooms *r);

/* Puts `member` (with its room set `set`) into room `name`; joining twice
 * is a no-op. Returns 0, TK_EINVAL (empty or over-long name), TK_ERANGE
 * (the member is in TK_WS_ROOMS_PER_MEMBER rooms) or TK_ENOMEM. */
int tk_ws_rooms_join(tk_ws_rooms *r, const char *name, void *member, tk_ws_room_set *set) TK_WUR;

/* Takes `member` out of room `name`; returns 1 if it was in it, else 0. */
int tk_ws_rooms_leave(tk_ws_rooms *r, const char *name, void *member, tk_ws_room_set *set);

/* Takes `member` out of every room and frees set->v. */
void tk_ws_rooms_leave_all(tk_ws_rooms *r, void *member, tk_ws_room_set *set);

/* Takes out of room `name` every member for which pred(member, arg) is
 * true; `set_of(member)` gives a member's room set. Returns the count. */
int tk_ws_rooms_remove_if(tk_ws_rooms *r, const char *name, int (*pred)(void *member, void *arg),
                          void *arg, tk_ws_room_set *(*set_of)(void *member));

/* The room called `name`, or NULL when it has no members. */
tk_ws_room *tk_ws_rooms_find(tk_ws_rooms *r, const char *name);

/* 1 when the member whose set is `set` is in room `name`. */
int tk_ws_room_set_has(const tk_ws_room_set *set, const char *name);

int tk_ws_room_size(const tk_ws_room *room);
void *tk_ws_room_member(const tk_ws_room *room, int i);
const char *tk_ws_room_name(const tk_ws_room *room);

/* Number of rooms that have members. */
int tk_ws_rooms_count(const tk_ws_rooms *r);

#endif
