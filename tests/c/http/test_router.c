/* The C route table (runtime/http/router.c): static and parameter routes,
 * static-over-parameter precedence, 404 and 405 (with the exact Allow list),
 * HEAD on GET routes, conflicts, malformed patterns and size limits. */
#include "http/router.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------ */

#define ASSERT_STR_HAS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (strstr(h_, n_) == NULL)                                                                \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", h_, n_);                                  \
    } while (0)

/* Adds a route that must be accepted. */
#define ADD_OK(r, method, pattern, rid)                                                            \
    do {                                                                                           \
        char e_[256] = "";                                                                         \
        int rc_ = tk_router_add((r), (method), (pattern), (rid), 0, e_, sizeof e_);                \
        if (rc_ != TK_OK)                                                                          \
            TEST_FAIL_("tk_router_add(%s %s) = %d: %s", (method), (pattern), rc_, e_);             \
    } while (0)

/* Adds a route that must be refused with TK_EINVAL and `why` in the error. */
#define ADD_BAD(r, method, pattern, why)                                                           \
    do {                                                                                           \
        char e_[512] = "";                                                                         \
        ASSERT_EQ_INT(tk_router_add((r), (method), (pattern), 99, 0, e_, sizeof e_), TK_EINVAL);   \
        ASSERT_STR_HAS(e_, (why));                                                                 \
    } while (0)

/* Matches and expects route `id`. */
#define MATCH_ID(r, method, path, want)                                                            \
    do {                                                                                           \
        tk_route_match m_;                                                                         \
        char allow_[128];                                                                          \
        int rc_ = tk_router_match((r), (method), (path), &m_, allow_, sizeof allow_);              \
        if (rc_ != TK_OK)                                                                          \
            TEST_FAIL_("match %s %s = %d, expected route %d", (method), (path), rc_, (want));      \
        ASSERT_EQ_INT(m_.id, (want));                                                              \
    } while (0)

/* Matches and expects a 404. */
#define MATCH_404(r, method, path)                                                                 \
    do {                                                                                           \
        tk_route_match m_;                                                                         \
        char allow_[128];                                                                          \
        int rc_ = tk_router_match((r), (method), (path), &m_, allow_, sizeof allow_);              \
        if (rc_ != TK_ENOTFOUND)                                                                   \
            TEST_FAIL_("match %s %s = %d, expected TK_ENOTFOUND", (method), (path), rc_);          \
    } while (0)

/* Matches and expects a 405 with exactly `allow_list`. */
#define MATCH_405(r, method, path, allow_list)                                                     \
    do {                                                                                           \
        tk_route_match m_;                                                                         \
        char allow_[128] = "unset";                                                                \
        int rc_ = tk_router_match((r), (method), (path), &m_, allow_, sizeof allow_);              \
        if (rc_ != 1)                                                                              \
            TEST_FAIL_("match %s %s = %d, expected 1 (405)", (method), (path), rc_);               \
        ASSERT_STR_EQ(allow_, (allow_list));                                                       \
    } while (0)

/* ---- matching ----------------------------------------------------------- */

TEST(static_routes)
{
    tk_router *r;
    tk_route_match m;
    char allow[64];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ASSERT_EQ_INT(tk_router_count(r), 0);
    MATCH_404(r, "GET", "/");
    ADD_OK(r, "GET", "/", 1);
    ADD_OK(r, "GET", "/health", 2);
    ADD_OK(r, "GET", "/api/v1/tasks", 3);
    ADD_OK(r, "POST", "/api/v1/tasks", 4);
    ASSERT_EQ_INT(tk_router_count(r), 4);

    ASSERT_EQ_INT(tk_router_match(r, "GET", "/health", &m, allow, sizeof allow), TK_OK);
    ASSERT_EQ_INT(m.id, 2);
    ASSERT_EQ_INT(m.flags, 0);
    ASSERT_EQ_INT(m.nparams, 0);
    ASSERT_STR_EQ(m.pattern, "/health");
    MATCH_ID(r, "GET", "/", 1);
    MATCH_ID(r, "GET", "/api/v1/tasks", 3);
    MATCH_ID(r, "POST", "/api/v1/tasks", 4);
    tk_router_free(r);
    tk_router_free(NULL); /* a no-op */
    return 0;
}

TEST(flags_are_carried)
{
    tk_router *r;
    tk_route_match m;
    char err[128], allow[64];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ASSERT_EQ_INT(tk_router_add(r, "GET", "/me", 7, 2, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(tk_router_match(r, "GET", "/me", &m, allow, sizeof allow), TK_OK);
    ASSERT_EQ_INT(m.id, 7);
    ASSERT_EQ_INT(m.flags, 2);
    tk_router_free(r);
    return 0;
}

TEST(params_values_and_names)
{
    tk_router *r;
    tk_route_match m;
    char allow[64];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/api/v1/tasks/:id", 1);
    ADD_OK(r, "GET", "/api/v1/projects/:project_id/tasks/:task_id/comments/:cid", 2);

    ASSERT_EQ_INT(tk_router_match(r, "GET", "/api/v1/tasks/42", &m, allow, sizeof allow), TK_OK);
    ASSERT_EQ_INT(m.id, 1);
    ASSERT_STR_EQ(m.pattern, "/api/v1/tasks/:id");
    ASSERT_EQ_INT(m.nparams, 1);
    ASSERT_STR_EQ(m.names[0], "id");
    ASSERT_STR_EQ(m.values[0], "42");
    /* values point into the match's own copy of the path */
    ASSERT(m.values[0] >= m.buf && m.values[0] < m.buf + sizeof m.buf);

    ASSERT_EQ_INT(tk_router_match(r, "GET", "/api/v1/projects/p-1/tasks/t.2/comments/%20x", &m,
                                  allow, sizeof allow),
                  TK_OK);
    ASSERT_EQ_INT(m.id, 2);
    ASSERT_EQ_INT(m.nparams, 3);
    ASSERT_STR_EQ(m.names[0], "project_id");
    ASSERT_STR_EQ(m.values[0], "p-1");
    ASSERT_STR_EQ(m.names[1], "task_id");
    ASSERT_STR_EQ(m.values[1], "t.2");
    ASSERT_STR_EQ(m.names[2], "cid");
    ASSERT_STR_EQ(m.values[2], "%20x"); /* no decoding here */

    /* a parameter never matches an empty segment */
    MATCH_404(r, "GET", "/api/v1/tasks/");
    MATCH_404(r, "GET", "/api/v1/projects//tasks/1/comments/2");
    tk_router_free(r);
    return 0;
}

TEST(static_beats_param)
{
    /* whatever the order the routes were added in */
    for (int order = 0; order < 2; order++) {
        tk_router *r;
        tk_route_match m;
        char allow[64];

        ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
        if (order == 0) {
            ADD_OK(r, "GET", "/a/me", 1);
            ADD_OK(r, "GET", "/a/:id", 2);
        } else {
            ADD_OK(r, "GET", "/a/:id", 2);
            ADD_OK(r, "GET", "/a/me", 1);
        }
        ADD_OK(r, "GET", "/a/:id/b", 3);
        ADD_OK(r, "GET", "/a/me/:x", 4);
        ASSERT_EQ_INT(tk_router_match(r, "GET", "/a/me", &m, allow, sizeof allow), TK_OK);
        ASSERT_EQ_INT(m.id, 1);
        ASSERT_EQ_INT(m.nparams, 0);
        ASSERT_EQ_INT(tk_router_match(r, "GET", "/a/5", &m, allow, sizeof allow), TK_OK);
        ASSERT_EQ_INT(m.id, 2);
        ASSERT_STR_EQ(m.values[0], "5");
        ASSERT_STR_EQ(m.names[0], "id");
        /* an earlier static segment weighs more than a later one */
        MATCH_ID(r, "GET", "/a/me/b", 4);
        MATCH_ID(r, "GET", "/a/you/b", 3);
        MATCH_ID(r, "HEAD", "/a/me", 1);
        tk_router_free(r);
    }
    return 0;
}

TEST(not_found)
{
    tk_router *r;

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/tasks", 1);
    ADD_OK(r, "GET", "/tasks/:id", 2);
    MATCH_404(r, "GET", "/nope");
    MATCH_404(r, "GET", "/tasks/1/more");
    MATCH_404(r, "GET", "/");
    MATCH_404(r, "GET", "");
    MATCH_404(r, "GET", "tasks");
    MATCH_404(r, "GET", "/Tasks"); /* case-sensitive */
    MATCH_404(r, "POST", "/nope"); /* 404 wins over 405 for unknown paths */
    tk_router_free(r);
    return 0;
}

TEST(trailing_slash_is_another_path)
{
    tk_router *r;

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/tasks", 1);
    ADD_OK(r, "GET", "/users/:id", 2);
    MATCH_ID(r, "GET", "/tasks", 1);
    MATCH_404(r, "GET", "/tasks/");
    MATCH_404(r, "GET", "/tasks//");
    MATCH_404(r, "GET", "//tasks");
    MATCH_404(r, "GET", "/users/7/");
    tk_router_free(r);
    return 0;
}

TEST(segment_limit)
{
    tk_router *r;
    char pat[256], path[256];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    /* 16 segments is the most a pattern may have */
    pat[0] = '\0';
    for (int i = 0; i < 16; i++)
        strcat(pat, "/s");
    ADD_OK(r, "GET", pat, 1);
    MATCH_ID(r, "GET", pat, 1);
    /* a 17-segment path finds nothing (and does not overrun anything) */
    strcpy(path, pat);
    strcat(path, "/s");
    MATCH_404(r, "GET", path);
    for (int i = 0; i < 40; i++)
        strcat(path, "/x");
    MATCH_404(r, "GET", path);
    /* a 17-segment pattern is refused */
    strcat(pat, "/t");
    ADD_BAD(r, "GET", pat, "at most 16 segments");
    ASSERT_EQ_INT(tk_router_count(r), 1);
    tk_router_free(r);
    return 0;
}

TEST(too_many_params)
{
    tk_router *r;
    tk_route_match m;
    char allow[64];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/:a/:b/:c/:d/:e/:f/:g/:h", 1); /* TK_ROUTER_MAX_PARAMS */
    ADD_BAD(r, "GET", "/x/:a/:b/:c/:d/:e/:f/:g/:h/:i", "too many parameters");
    ASSERT_EQ_INT(tk_router_match(r, "GET", "/1/2/3/4/5/6/7/8", &m, allow, sizeof allow), TK_OK);
    ASSERT_EQ_INT(m.nparams, TK_ROUTER_MAX_PARAMS);
    ASSERT_STR_EQ(m.names[7], "h");
    ASSERT_STR_EQ(m.values[7], "8");
    tk_router_free(r);
    return 0;
}

/* ---- 405 and HEAD ------------------------------------------------------- */

TEST(method_not_allowed_allow_list)
{
    tk_router *r;

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/tasks/:id", 1);
    ADD_OK(r, "PATCH", "/tasks/:id", 2);
    ADD_OK(r, "DELETE", "/tasks/:id", 3);
    ADD_OK(r, "POST", "/tasks", 4);
    ADD_OK(r, "PUT", "/files/:name", 5);

    MATCH_405(r, "POST", "/tasks/9", "GET, PATCH, DELETE, HEAD");
    MATCH_405(r, "PUT", "/tasks/9", "GET, PATCH, DELETE, HEAD");
    /* no GET: no HEAD either */
    MATCH_405(r, "GET", "/tasks", "POST");
    MATCH_405(r, "HEAD", "/tasks", "POST");
    MATCH_405(r, "DELETE", "/files/a.txt", "PUT");
    /* the allowed ones still match */
    MATCH_ID(r, "PATCH", "/tasks/9", 2);
    MATCH_ID(r, "DELETE", "/tasks/9", 3);
    MATCH_ID(r, "POST", "/tasks", 4);
    tk_router_free(r);
    return 0;
}

TEST(allow_list_of_the_most_specific_shape)
{
    tk_router *r;

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/a/:id", 1);
    ADD_OK(r, "POST", "/a/me", 2);
    ADD_OK(r, "DELETE", "/a/me", 3);
    /* /a/me belongs to the static routes: GET there is a 405 listing them only */
    MATCH_405(r, "GET", "/a/me", "POST, DELETE");
    MATCH_ID(r, "GET", "/a/other", 1);
    MATCH_405(r, "POST", "/a/other", "GET, HEAD");
    tk_router_free(r);
    return 0;
}

TEST(allow_list_truncates_safely)
{
    tk_router *r;
    tk_route_match m;
    char allow[16];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/x", 1);
    ADD_OK(r, "PATCH", "/x", 2);
    ADD_OK(r, "DELETE", "/x", 3);
    memset(allow, 'Z', sizeof allow);
    ASSERT_EQ_INT(tk_router_match(r, "POST", "/x", &m, allow, 12), 1);
    ASSERT(memchr(allow, '\0', 12) != NULL); /* terminated inside the given length */
    ASSERT_EQ_INT(allow[12], 'Z');           /* nothing written past it */
    ASSERT(strncmp(allow, "GET", 3) == 0);
    /* no buffer at all */
    ASSERT_EQ_INT(tk_router_match(r, "POST", "/x", &m, NULL, 0), 1);
    tk_router_free(r);
    return 0;
}

TEST(head_matches_get_routes)
{
    tk_router *r;
    tk_route_match m;
    char allow[64];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/tasks/:id", 1);
    ADD_OK(r, "POST", "/tasks/:id", 2);
    ASSERT_EQ_INT(tk_router_match(r, "HEAD", "/tasks/3", &m, allow, sizeof allow), TK_OK);
    ASSERT_EQ_INT(m.id, 1);
    ASSERT_EQ_INT(m.nparams, 1);
    ASSERT_STR_EQ(m.values[0], "3");
    /* GET never matches a HEAD-less POST route and vice versa */
    MATCH_ID(r, "POST", "/tasks/3", 2);
    MATCH_405(r, "PUT", "/tasks/3", "GET, POST, HEAD");
    tk_router_free(r);
    return 0;
}

/* ---- adding routes ------------------------------------------------------ */

TEST(conflicts)
{
    tk_router *r;
    char err[256];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/a/:x", 1);
    ASSERT_EQ_INT(tk_router_add(r, "GET", "/a/:y", 2, 0, err, sizeof err), TK_EINVAL);
    ASSERT_STR_EQ(err, "route GET /a/:y conflicts with GET /a/:x");
    ADD_BAD(r, "GET", "/a/:x", "conflicts with GET /a/:x");
    ADD_OK(r, "GET", "/s/t", 3);
    ASSERT_EQ_INT(tk_router_add(r, "GET", "/s/t", 4, 0, err, sizeof err), TK_EINVAL);
    ASSERT_STR_EQ(err, "route GET /s/t conflicts with GET /s/t");
    /* the caller can find the route defined first, to name both */
    ASSERT_EQ_INT(tk_router_conflict(r, "GET", "/a/:z"), 1);
    ASSERT_EQ_INT(tk_router_conflict(r, "GET", "/s/t"), 3);
    ASSERT_EQ_INT(tk_router_conflict(r, "GET", "/s/u"), 0);
    ASSERT_EQ_INT(tk_router_conflict(r, "PUT", "/a/:x"), 0);
    ASSERT_EQ_INT(tk_router_conflict(r, "GET", "no-slash"), 0);
    /* same shape, other method; or other shape, same method: fine */
    ADD_OK(r, "POST", "/a/:y", 5);
    ADD_OK(r, "GET", "/a/static", 6);
    ADD_OK(r, "GET", "/a/:x/:y", 7);
    ADD_OK(r, "GET", "/:a/:b", 8);
    ASSERT_EQ_INT(tk_router_count(r), 6);
    /* the refused routes left no trace */
    MATCH_ID(r, "GET", "/a/1", 1);
    MATCH_ID(r, "GET", "/s/t", 3);
    /* a NULL error buffer is allowed */
    ASSERT_EQ_INT(tk_router_add(r, "GET", "/a/:z", 9, 0, NULL, 0), TK_EINVAL);
    tk_router_free(r);
    return 0;
}

TEST(malformed_patterns)
{
    tk_router *r;

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_BAD(r, "GET", "tasks", "must start with /");
    ADD_BAD(r, "GET", "", "must start with /");
    ADD_BAD(r, "GET", "tasks/:id", "bad pattern \"tasks/:id\"");
    ADD_BAD(r, "GET", "/a//b", "empty segment");
    ADD_BAD(r, "GET", "//", "empty segment");
    ADD_BAD(r, "GET", "/a/", "empty segment");
    ADD_BAD(r, "GET", "/:", "empty segment");
    ADD_BAD(r, "GET", "/a/:/b", "empty segment");
    ASSERT_EQ_INT(tk_router_count(r), 0);
    tk_router_free(r);
    return 0;
}

/* A method goes into the Allow header verbatim: only uppercase words are
 * accepted (found by tests/fuzz/fuzz_router.c: an empty method gave a 405
 * with an empty Allow list). */
TEST(malformed_methods)
{
    tk_router *r;

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_BAD(r, "", "/a", "bad method");
    ADD_BAD(r, "get", "/a", "bad method");
    ADD_BAD(r, "GET, POST", "/a", "bad method");
    ADD_BAD(r, "GET\r\nX-Injected: 1", "/a", "bad method");
    ADD_BAD(r, "ABCDEFGHIJKLMNOPQ", "/a", "bad method");
    ADD_OK(r, "ABCDEFGHIJKLMNOP", "/a", 1);
    ASSERT_EQ_INT(tk_router_count(r), 1);
    tk_router_free(r);
    return 0;
}

TEST(path_length_limit)
{
    tk_router *r;
    tk_route_match m;
    char allow[64];
    static char big[TK_ROUTER_MAX_PATH + 16];

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    ADD_OK(r, "GET", "/f/:name", 1);

    /* the longest path that fits the match buffer */
    memcpy(big, "/f/", 3);
    memset(big + 3, 'a', TK_ROUTER_MAX_PATH - 4);
    big[TK_ROUTER_MAX_PATH - 1] = '\0';
    ASSERT_EQ_INT(strlen(big), TK_ROUTER_MAX_PATH - 1);
    ASSERT_EQ_INT(tk_router_match(r, "GET", big, &m, allow, sizeof allow), TK_OK);
    ASSERT_EQ_INT(strlen(m.values[0]), TK_ROUTER_MAX_PATH - 4);

    /* one more byte: not found, never truncated into a match */
    memset(big + 3, 'a', TK_ROUTER_MAX_PATH - 3);
    big[TK_ROUTER_MAX_PATH] = '\0';
    MATCH_404(r, "GET", big);
    memset(big + 3, 'a', TK_ROUTER_MAX_PATH + 8);
    big[TK_ROUTER_MAX_PATH + 11] = '\0';
    MATCH_404(r, "GET", big);

    /* patterns are limited the same way */
    memset(big, 'p', sizeof big);
    big[0] = '/';
    big[TK_ROUTER_MAX_PATH] = '\0';
    ADD_BAD(r, "GET", big, "pattern too long");
    ASSERT_EQ_INT(tk_router_count(r), 1);
    tk_router_free(r);
    return 0;
}

TEST(many_routes)
{
    tk_router *r;
    tk_route_match m;
    char pat[64], path[64], allow[64];
    const int n = 300; /* grows the table several times */

    ASSERT_EQ_INT(tk_router_new(&r), TK_OK);
    for (int i = 0; i < n; i++) {
        snprintf(pat, sizeof pat, "/r%d/:id", i);
        ADD_OK(r, "GET", pat, i);
        snprintf(pat, sizeof pat, "/r%d", i);
        ADD_OK(r, "POST", pat, n + i);
    }
    ASSERT_EQ_INT(tk_router_count(r), 2 * n);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/r%d/v%d", i, i);
        ASSERT_EQ_INT(tk_router_match(r, "GET", path, &m, allow, sizeof allow), TK_OK);
        ASSERT_EQ_INT(m.id, i);
        snprintf(pat, sizeof pat, "v%d", i);
        ASSERT_STR_EQ(m.values[0], pat);
        snprintf(path, sizeof path, "/r%d", i);
        MATCH_ID(r, "POST", path, n + i);
        MATCH_405(r, "GET", path, "POST");
    }
    MATCH_404(r, "GET", "/r300/x");
    tk_router_free(r);
    return 0;
}

TEST_MAIN(TEST_ENTRY(static_routes), TEST_ENTRY(flags_are_carried),
          TEST_ENTRY(params_values_and_names), TEST_ENTRY(static_beats_param),
          TEST_ENTRY(not_found), TEST_ENTRY(trailing_slash_is_another_path),
          TEST_ENTRY(segment_limit), TEST_ENTRY(too_many_params),
          TEST_ENTRY(method_not_allowed_allow_list),
          TEST_ENTRY(allow_list_of_the_most_specific_shape),
          TEST_ENTRY(allow_list_truncates_safely), TEST_ENTRY(head_matches_get_routes),
          TEST_ENTRY(conflicts), TEST_ENTRY(malformed_patterns), TEST_ENTRY(malformed_methods),
          TEST_ENTRY(path_length_limit), TEST_ENTRY(many_routes))
