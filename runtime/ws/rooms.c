/* The room registry of rooms.h: chained hash table keyed by name (FNV-1a),
 * members in a growable array per room, rooms in a growable array per
 * member. Removal is by swap with the last element, so member order in a
 * room is not stable (delivery does not depend on it). */
#include "ws/rooms.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct tk_ws_room {
    struct tk_ws_room *next; /* hash chain */
    uint32_t hash;
    void **members;
    int n, cap;
    char name[];
};

struct tk_ws_rooms {
    tk_ws_room **buckets;
    size_t nbuckets; /* a power of two */
    int count;
};

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

int tk_ws_rooms_new(tk_ws_rooms **out)
{
    tk_ws_rooms *r = calloc(1, sizeof *r);
    if (r == NULL)
        return TK_ENOMEM;
    r->nbuckets = 256;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (r->buckets == NULL) {
        free(r);
        return TK_ENOMEM;
    }
    *out = r;
    return TK_OK;
}

static void room_free(tk_ws_room *room)
{
    free(room->members);
    free(room);
}

void tk_ws_rooms_free(tk_ws_rooms *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        tk_ws_room *room = r->buckets[i];
        while (room) {
            tk_ws_room *next = room->next;
            room_free(room);
            room = next;
        }
    }
    free(r->buckets);
    free(r);
}

tk_ws_room *tk_ws_rooms_find(tk_ws_rooms *r, const char *name)
{
    uint32_t h = fnv1a(name);
    for (tk_ws_room *room = r->buckets[h & (r->nbuckets - 1)]; room; room = room->next)
        if (room->hash == h && strcmp(room->name, name) == 0)
            return room;
    return NULL;
}

/* Doubles the bucket array; on failure keeps the old one (chains just get
 * longer). */
static void rehash(tk_ws_rooms *r)
{
    size_t nb = r->nbuckets * 2;
    tk_ws_room **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        tk_ws_room *room = r->buckets[i];
        while (room) {
            tk_ws_room *next = room->next;
            room->next = b[room->hash & (nb - 1)];
            b[room->hash & (nb - 1)] = room;
            room = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = nb;
}

static void unlink_room(tk_ws_rooms *r, tk_ws_room *room)
{
    tk_ws_room **pp = &r->buckets[room->hash & (r->nbuckets - 1)];
    while (*pp != room)
        pp = &(*pp)->next;
    *pp = room->next;
    r->count--;
    room_free(room);
}

static int grow_ptrs(void ***v, int *cap, int need)
{
    if (need <= *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 4;
    while (nc < need)
        nc *= 2;
    void **nv = realloc(*v, (size_t)nc * sizeof *nv);
    if (nv == NULL)
        return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

int tk_ws_room_set_has(const tk_ws_room_set *set, const char *name)
{
    for (int i = 0; i < set->n; i++)
        if (strcmp(set->v[i]->name, name) == 0)
            return 1;
    return 0;
}

int tk_ws_rooms_join(tk_ws_rooms *r, const char *name, void *member, tk_ws_room_set *set)
{
    size_t len = strlen(name);
    if (len == 0 || len > TK_WS_ROOM_NAME_MAX)
        return TK_EINVAL;
    if (tk_ws_room_set_has(set, name))
        return TK_OK;
    if (set->n >= TK_WS_ROOMS_PER_MEMBER)
        return TK_ERANGE;
    if (grow_ptrs((void ***)&set->v, &set->cap, set->n + 1) != 0)
        return TK_ENOMEM;
    tk_ws_room *room = tk_ws_rooms_find(r, name);
    int created = 0;
    if (room == NULL) {
        room = calloc(1, sizeof *room + len + 1);
        if (room == NULL)
            return TK_ENOMEM;
        memcpy(room->name, name, len + 1);
        room->hash = fnv1a(name);
        created = 1;
    }
    if (grow_ptrs(&room->members, &room->cap, room->n + 1) != 0) {
        if (created)
            room_free(room);
        return TK_ENOMEM;
    }
    if (created) {
        if ((size_t)r->count >= r->nbuckets)
            rehash(r);
        size_t b = room->hash & (r->nbuckets - 1);
        room->next = r->buckets[b];
        r->buckets[b] = room;
        r->count++;
    }
    room->members[room->n++] = member;
    set->v[set->n++] = room;
    return TK_OK;
}

/* Removes member from room (and room from set); frees an emptied room. */
static void detach(tk_ws_rooms *r, tk_ws_room *room, void *member, tk_ws_room_set *set)
{
    for (int i = 0; i < room->n; i++) {
        if (room->members[i] == member) {
            room->members[i] = room->members[--room->n];
            break;
        }
    }
    for (int i = 0; i < set->n; i++) {
        if (set->v[i] == room) {
            set->v[i] = set->v[--set->n];
            break;
        }
    }
    if (room->n == 0)
        unlink_room(r, room);
}

int tk_ws_rooms_leave(tk_ws_rooms *r, const char *name, void *member, tk_ws_room_set *set)
{
    for (int i = 0; i < set->n; i++) {
        if (strcmp(set->v[i]->name, name) == 0) {
            detach(r, set->v[i], member, set);
            return 1;
        }
    }
    return 0;
}

void tk_ws_rooms_leave_all(tk_ws_rooms *r, void *member, tk_ws_room_set *set)
{
    while (set->n > 0)
        detach(r, set->v[set->n - 1], member, set);
    free(set->v);
    set->v = NULL;
    set->cap = 0;
}

int tk_ws_rooms_remove_if(tk_ws_rooms *r, const char *name, int (*pred)(void *member, void *arg),
                          void *arg, tk_ws_room_set *(*set_of)(void *member))
{
    tk_ws_room *room = tk_ws_rooms_find(r, name);
    if (room == NULL)
        return 0;
    int removed = 0;
    /* Backwards, so the swap-remove only moves members already looked at;
     * the room is freed with its last member, so stop there. */
    for (int i = room->n - 1; i >= 0; i--) {
        void *m = room->members[i];
        if (!pred(m, arg))
            continue;
        removed++;
        if (room->n == 1) {
            detach(r, room, m, set_of(m));
            break;
        }
        detach(r, room, m, set_of(m));
    }
    return removed;
}

int tk_ws_room_size(const tk_ws_room *room)
{
    return room ? room->n : 0;
}

void *tk_ws_room_member(const tk_ws_room *room, int i)
{
    return room->members[i];
}

const char *tk_ws_room_name(const tk_ws_room *room)
{
    return room->name;
}

int tk_ws_rooms_count(const tk_ws_rooms *r)
{
    return r->count;
}
