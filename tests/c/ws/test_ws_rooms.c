/* The room registry of runtime/ws/rooms.c: join/leave on both sides, rooms
 * that vanish with their last member, remove_if while iterating (the kick
 * and close-room paths), the per-member cap and name limits, and growth
 * past the initial bucket count. */
#include "test_util.h"
#include "ws/rooms.h"

typedef struct {
    int id;
    tk_ws_room_set set;
} member;

static tk_ws_room_set *set_of(void *m)
{
    return &((member *)m)->set;
}

static int odd(void *m, void *arg)
{
    (void)arg;
    return ((member *)m)->id % 2 == 1;
}

static int all(void *m, void *arg)
{
    (void)m;
    (void)arg;
    return 1;
}

TEST(join_and_leave)
{
    tk_ws_rooms *r = NULL;
    ASSERT_EQ_INT(tk_ws_rooms_new(&r), TK_OK);
    member a = {1, {0}}, b = {2, {0}};
    ASSERT_EQ_INT(tk_ws_rooms_join(r, "project:1", &a, &a.set), TK_OK);
    ASSERT_EQ_INT(tk_ws_rooms_join(r, "project:1", &a, &a.set), TK_OK); /* twice: no-op */
    ASSERT_EQ_INT(tk_ws_rooms_join(r, "project:1", &b, &b.set), TK_OK);
    ASSERT_EQ_INT(tk_ws_rooms_join(r, "user:1", &a, &a.set), TK_OK);
    ASSERT_EQ_INT(tk_ws_rooms_count(r), 2);
    tk_ws_room *room = tk_ws_rooms_find(r, "project:1");
    ASSERT_NOT_NULL(room);
    ASSERT_EQ_INT(tk_ws_room_size(room), 2);
    ASSERT_STR_EQ(tk_ws_room_name(room), "project:1");
    ASSERT_EQ_INT(a.set.n, 2);
    ASSERT(tk_ws_room_set_has(&a.set, "user:1"));
    ASSERT(!tk_ws_room_set_has(&b.set, "user:1"));

    ASSERT_EQ_INT(tk_ws_rooms_leave(r, "project:1", &a, &a.set), 1);
    ASSERT_EQ_INT(tk_ws_rooms_leave(r, "project:1", &a, &a.set), 0);
    ASSERT_EQ_INT(tk_ws_room_size(tk_ws_rooms_find(r, "project:1")), 1);
    ASSERT_EQ_INT(tk_ws_room_member(tk_ws_rooms_find(r, "project:1"), 0) == &b, 1);
    ASSERT_EQ_INT(tk_ws_rooms_leave(r, "project:1", &b, &b.set), 1);
    ASSERT_NULL(tk_ws_rooms_find(r, "project:1")); /* gone with its last member */
    ASSERT_EQ_INT(tk_ws_rooms_count(r), 1);
    tk_ws_rooms_leave_all(r, &a, &a.set);
    tk_ws_rooms_leave_all(r, &b, &b.set);
    ASSERT_EQ_INT(tk_ws_rooms_count(r), 0);
    ASSERT_NULL(a.set.v);
    tk_ws_rooms_free(r);
    return 0;
}

TEST(remove_if_while_iterating)
{
    tk_ws_rooms *r = NULL;
    ASSERT_EQ_INT(tk_ws_rooms_new(&r), TK_OK);
    member m[9];
    for (int i = 0; i < 9; i++) {
        m[i].id = i;
        memset(&m[i].set, 0, sizeof m[i].set);
        ASSERT_EQ_INT(tk_ws_rooms_join(r, "project:x", &m[i], &m[i].set), TK_OK);
        ASSERT_EQ_INT(tk_ws_rooms_join(r, "user:x", &m[i], &m[i].set), TK_OK);
    }
    ASSERT_EQ_INT(tk_ws_rooms_remove_if(r, "project:x", odd, NULL, set_of), 4);
    tk_ws_room *room = tk_ws_rooms_find(r, "project:x");
    ASSERT_EQ_INT(tk_ws_room_size(room), 5);
    for (int i = 0; i < tk_ws_room_size(room); i++)
        ASSERT_EQ_INT(((member *)tk_ws_room_member(room, i))->id % 2, 0);
    for (int i = 0; i < 9; i++) {
        ASSERT_EQ_INT(tk_ws_room_set_has(&m[i].set, "project:x"), i % 2 == 0);
        ASSERT(tk_ws_room_set_has(&m[i].set, "user:x"));
    }
    /* everyone: the room is freed with the last member, mid-loop */
    ASSERT_EQ_INT(tk_ws_rooms_remove_if(r, "project:x", all, NULL, set_of), 5);
    ASSERT_NULL(tk_ws_rooms_find(r, "project:x"));
    ASSERT_EQ_INT(tk_ws_rooms_remove_if(r, "project:x", all, NULL, set_of), 0);
    ASSERT_EQ_INT(tk_ws_rooms_count(r), 1);
    for (int i = 0; i < 9; i++)
        tk_ws_rooms_leave_all(r, &m[i], &m[i].set);
    ASSERT_EQ_INT(tk_ws_rooms_count(r), 0);
    tk_ws_rooms_free(r);
    return 0;
}

TEST(limits)
{
    tk_ws_rooms *r = NULL;
    ASSERT_EQ_INT(tk_ws_rooms_new(&r), TK_OK);
    member a = {1, {0}};
    ASSERT_EQ_INT(tk_ws_rooms_join(r, "", &a, &a.set), TK_EINVAL);
    char long_name[TK_WS_ROOM_NAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    ASSERT_EQ_INT(tk_ws_rooms_join(r, long_name, &a, &a.set), TK_EINVAL);
    long_name[TK_WS_ROOM_NAME_MAX] = '\0';
    ASSERT_EQ_INT(tk_ws_rooms_join(r, long_name, &a, &a.set), TK_OK);
    char name[32];
    for (int i = 1; i < TK_WS_ROOMS_PER_MEMBER; i++) {
        snprintf(name, sizeof name, "project:%d", i);
        ASSERT_EQ_INT(tk_ws_rooms_join(r, name, &a, &a.set), TK_OK);
    }
    ASSERT_EQ_INT(a.set.n, TK_WS_ROOMS_PER_MEMBER);
    ASSERT_EQ_INT(tk_ws_rooms_join(r, "one:more", &a, &a.set), TK_ERANGE);
    ASSERT_EQ_INT(tk_ws_rooms_join(r, "project:1", &a, &a.set), TK_OK); /* already in: fine */
    tk_ws_rooms_leave_all(r, &a, &a.set);
    tk_ws_rooms_free(r);
    return 0;
}

TEST(many_rooms_and_free_with_members)
{
    tk_ws_rooms *r = NULL;
    ASSERT_EQ_INT(tk_ws_rooms_new(&r), TK_OK);
    enum { N = 200 };
    static member m[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        m[i].id = i;
        for (int k = 0; k < 5; k++) {
            snprintf(name, sizeof name, "project:%d", i * 5 + k);
            ASSERT_EQ_INT(tk_ws_rooms_join(r, name, &m[i], &m[i].set), TK_OK);
        }
    }
    ASSERT_EQ_INT(tk_ws_rooms_count(r), N * 5); /* past the first 256 buckets */
    for (int i = 0; i < N * 5; i++) {
        snprintf(name, sizeof name, "project:%d", i);
        tk_ws_room *room = tk_ws_rooms_find(r, name);
        ASSERT_NOT_NULL(room);
        ASSERT_EQ_INT(((member *)tk_ws_room_member(room, 0))->id, i / 5);
    }
    /* freeing the registry with members still in it frees every room */
    tk_ws_rooms_free(r);
    for (int i = 0; i < N; i++)
        free(m[i].set.v);
    return 0;
}

TEST_MAIN(TEST_ENTRY(join_and_leave), TEST_ENTRY(remove_if_while_iterating), TEST_ENTRY(limits),
          TEST_ENTRY(many_rooms_and_free_with_members))
