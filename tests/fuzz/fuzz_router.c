/* Fuzz target: the C route table (runtime/http/router.c). The input is
 * lines; "+METHOD PATTERN" adds a route to a table that starts as the
 * app's own shapes, any other line "METHOD PATH" is matched. Checks: every
 * answer is one of the three, a match names an added route with its
 * parameters NUL-terminated inside the match buffer, a 405 lists methods. */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "http/router.h"

static const char *const base[][2] = {
    {"GET", "/health"},
    {"POST", "/api/v1/auth/login"},
    {"GET", "/api/v1/projects"},
    {"POST", "/api/v1/projects"},
    {"GET", "/api/v1/projects/:id"},
    {"PATCH", "/api/v1/projects/:id"},
    {"GET", "/api/v1/projects/:id/tasks"},
    {"GET", "/api/v1/tasks/:id"},
    {"DELETE", "/api/v1/projects/:projectId/members/:userId"},
    {"GET", "/api/v1/search"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    tk_router *r = NULL;
    if (tk_router_new(&r) != TK_OK)
        abort();
    char err[256];
    int nbase = (int)(sizeof base / sizeof base[0]);
    for (int i = 0; i < nbase; i++)
        FUZZ_CHECK(tk_router_add(r, base[i][0], base[i][1], i, 0, err, sizeof err) == TK_OK);
    int next_id = nbase;

    char *text = fuzz_cstr(data, size);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int add = line[0] == '+';
        char *method = line + add;
        char *sp = strchr(method, ' ');
        const char *arg = "";
        if (sp != NULL) {
            *sp = '\0';
            arg = sp + 1;
        }
        if (add) {
            err[0] = '\0';
            int rc = tk_router_add(r, method, arg, next_id, 7, err, sizeof err);
            FUZZ_CHECK(rc == TK_OK || (rc == TK_EINVAL && err[0] != '\0') || rc == TK_ENOMEM);
            FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
            if (rc == TK_OK)
                next_id++;
            FUZZ_CHECK(tk_router_count(r) == next_id);
            continue;
        }
        tk_route_match m;
        char allow[128];
        memset(allow, 'x', sizeof allow);
        int rc = tk_router_match(r, method, arg, &m, allow, sizeof allow);
        if (rc == TK_OK) {
            FUZZ_CHECK(m.id >= 0 && m.id < next_id);
            FUZZ_CHECK(m.nparams >= 0 && m.nparams <= TK_ROUTER_MAX_PARAMS);
            FUZZ_CHECK(m.pattern != NULL && m.pattern[0] == '/');
            for (int i = 0; i < m.nparams; i++) {
                FUZZ_CHECK(m.names[i] != NULL && m.names[i][0] != '\0');
                FUZZ_CHECK(m.values[i] >= m.buf && m.values[i] < m.buf + sizeof m.buf);
                size_t left = (size_t)(m.buf + sizeof m.buf - m.values[i]);
                FUZZ_CHECK(memchr(m.values[i], '\0', left) != NULL);
                FUZZ_CHECK(m.values[i][0] != '\0');
            }
        } else if (rc == 1) {
            FUZZ_CHECK(memchr(allow, '\0', sizeof allow) != NULL);
            FUZZ_CHECK(allow[0] >= 'A' && allow[0] <= 'Z'); /* methods are uppercase words */
        } else {
            FUZZ_CHECK(rc == TK_ENOTFOUND);
        }
    }
    free(text);
    tk_router_free(r);
    return 0;
}
