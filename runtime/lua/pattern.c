/* Lua 5.4 string patterns (reference manual section 6.4.1) with a step
 * counter: a backtracking matcher written for the sandbox, so that a pattern
 * such as ("a?"):rep(30)..("a"):rep(30) ends with an error once it has used
 * the request's instruction budget instead of running for hours in C, where
 * the count hook never fires. One step (entering the matcher, or looking at
 * one subject character while expanding or balancing) is charged as two
 * instructions of LUA_INSTRUCTION_BUDGET (it takes about as long). The Lua-facing functions keep
 * the stock signatures, results and error messages. */
#include "lua/pattern.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#include "lua/vm.h"

#define ESC '%'
#define MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define MAX_DEPTH 200   /* nested matcher calls before "pattern too complex" */
/* One budget unit is 1000 VM instructions; a matcher step costs about twice
 * an instruction (measured: the bomb below and `while true do end` against
 * the same budget), so 500 steps use one unit. */
#define STEPS_PER_UNIT 500
#define CAP_OPEN (-1)     /* capture started, not closed yet */
#define CAP_POSITION (-2) /* () */

typedef struct {
    const char *subj;     /* subject */
    const char *subj_end; /* one past its last byte */
    const char *pat_end;  /* one past the pattern's last byte */
    lua_State *L;
    tk_lua_ctx *ctx; /* NULL: unbounded (no VM context) */
    int steps;       /* left before the next charge to ctx->budget */
    int depth;       /* matcher calls still allowed on the C stack */
    int level;       /* captures in use */
    struct {
        const char *start;
        ptrdiff_t len; /* or CAP_OPEN / CAP_POSITION */
    } cap[MAX_CAPTURES];
} matcher;

static void matcher_init(matcher *m, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp)
{
    m->L = L;
    m->subj = s;
    m->subj_end = s + ls;
    m->pat_end = p + lp;
    m->ctx = tk_lua_ctx_get(L);
    m->steps = STEPS_PER_UNIT;
}

/* Before each match attempt: no captures, the full depth. */
static void matcher_reset(matcher *m)
{
    m->level = 0;
    m->depth = MAX_DEPTH;
}

/* Charges one step; raises once the request's budget is spent. */
static void step(matcher *m)
{
    if (--m->steps > 0)
        return;
    m->steps = STEPS_PER_UNIT;
    if (m->ctx != NULL && --m->ctx->budget < 0)
        luaL_error(m->L,
                   "instruction budget exceeded in a string pattern (LUA_INSTRUCTION_BUDGET): "
                   "simplify the pattern or match a shorter subject");
}

/* ---- single characters and classes -------------------------------------- */

/* Does c belong to class letter `cl` (%a, %d, ...; upper case negates)? Any
 * other letter stands for itself. */
static int in_class(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    case 'z':
        r = c == 0;
        break; /* deprecated in 5.2, still read by 5.4 */
    default:
        return cl == c;
    }
    r = r != 0;
    return isupper(cl) ? !r : r;
}

/* Past the single-character class starting at p: "x", "%x" or "[...]". */
static const char *class_end(matcher *m, const char *p)
{
    char c = *p++;
    if (c == ESC) {
        if (p >= m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c != '[')
        return p;
    if (p < m->pat_end && *p == '^')
        p++;
    /* the first member is taken as is, even when it is ']' */
    do {
        if (p >= m->pat_end)
            luaL_error(m->L, "malformed pattern (missing ']')");
        c = *p++;
        if (c == ESC && p < m->pat_end)
            p++;
    } while (p >= m->pat_end || *p != ']');
    return p + 1;
}

/* Is c in the set [...] that starts at p ('[') and closes at close (']')? */
static int in_set(int c, const char *p, const char *close)
{
    int yes = 1;
    p++;
    if (*p == '^') {
        yes = 0;
        p++;
    }
    while (p < close) {
        if (*p == ESC && p + 1 < close) {
            if (in_class(c, (unsigned char)p[1]))
                return yes;
            p += 2;
        } else if (p + 2 < close && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return yes;
            p += 3;
        } else {
            if ((unsigned char)*p == c)
                return yes;
            p++;
        }
    }
    return !yes;
}

/* Does subject position s hold a character of the class [p, ep)? */
static int single(matcher *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->subj_end)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case ESC:
        return in_class(c, (unsigned char)p[1]);
    case '[':
        return in_set(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- the matcher ---------------------------------------------------------- */

static const char *match(matcher *m, const char *s, const char *p);

/* %bxy at s: the balanced run, or NULL. */
static const char *balance(matcher *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->subj_end || *s != p[0])
        return NULL;
    char open = p[0], close = p[1];
    int depth = 1;
    while (++s < m->subj_end) {
        step(m);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* Greedy: as many as possible, then give back one at a time. */
static const char *expand_greedy(matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (single(m, s + n, p, ep)) {
        step(m);
        n++;
    }
    for (; n >= 0; n--) {
        const char *r = match(m, s + n, ep + 1);
        if (r != NULL)
            return r;
    }
    return NULL;
}

/* Lazy: as few as possible, one more at a time. */
static const char *expand_lazy(matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r != NULL)
            return r;
        if (!single(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(matcher *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->level].start = s;
    m->cap[m->level].len = what;
    m->level++;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->level--;
    return r;
}

static const char *close_capture(matcher *m, const char *s, const char *p)
{
    int l = m->level - 1;
    while (l >= 0 && m->cap[l].len != CAP_OPEN)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].start;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->cap[l].len = CAP_OPEN;
    return r;
}

/* %1..%9 in a pattern: the text of that (closed) capture again. */
static const char *backref(matcher *m, const char *s, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    ptrdiff_t len = m->cap[l].len;
    if (len < 0 || m->subj_end - s < len) /* a position capture never matches */
        return NULL;
    if (memcmp(m->cap[l].start, s, (size_t)len) != 0)
        return NULL;
    return s + len;
}

/* Matches pattern [p, pat_end) at subject position s: the end of the match,
 * or NULL. Straight-line items loop; alternatives recurse. */
static const char *match(matcher *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    for (;;) {
        step(m);
        if (p == m->pat_end)
            break;
        if (*p == '(') {
            s = p + 1 < m->pat_end && p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                                                  : open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            if (s != m->subj_end)
                s = NULL;
            break;
        }
        if (*p == ESC && p + 1 < m->pat_end) {
            char k = p[1];
            if (k == 'b') {
                s = balance(m, s, p + 2);
                if (s == NULL)
                    break;
                p += 4;
                continue;
            }
            if (k == 'f') {
                p += 2;
                if (p >= m->pat_end || *p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(m, p);
                int before = s == m->subj ? 0 : (unsigned char)s[-1];
                int here = s < m->subj_end ? (unsigned char)*s : 0;
                if (!in_set(before, p, ep - 1) && in_set(here, p, ep - 1)) {
                    p = ep;
                    continue;
                }
                s = NULL;
                break;
            }
            if (k >= '0' && k <= '9') {
                s = backref(m, s, k);
                if (s == NULL)
                    break;
                p += 2;
                continue;
            }
        }
        /* a single-character class, perhaps with a repetition suffix */
        const char *ep = class_end(m, p);
        char suffix = ep < m->pat_end ? *ep : '\0';
        if (suffix == '*') {
            s = expand_greedy(m, s, p, ep);
            break;
        }
        if (suffix == '-') {
            s = expand_lazy(m, s, p, ep);
            break;
        }
        int here = single(m, s, p, ep);
        if (suffix == '+') {
            s = here ? expand_greedy(m, s + 1, p, ep) : NULL;
            break;
        }
        if (suffix == '?') {
            const char *r = here ? match(m, s + 1, ep + 1) : NULL;
            if (r != NULL) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (!here) {
            s = NULL;
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return s;
}

/* ---- captures to Lua values ----------------------------------------------- */

/* Pushes capture i (or the whole match s..e when there are none and i is
 * 0). */
static void push_capture(matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (m->cap[i].start - m->subj) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].start, (size_t)len);
}

/* Pushes every capture (the whole match when there is none and s is not
 * NULL); returns how many. */
static int push_captures(matcher *m, const char *s, const char *e)
{
    int n = (m->level == 0 && s != NULL) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* ---- string.find / string.match --------------------------------------------- */

/* The 5.4 rule for a starting position: negative counts from the end,
 * anything before the start is the start. */
static size_t start_index(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

/* True when the pattern has none of the magic characters, so a plain
 * substring search gives the same answer. */
static int is_plain(const char *p, size_t lp)
{
    static const char magic[] = "^$*+?.([%-";
    for (size_t i = 0; i < lp; i++)
        if (memchr(magic, p[i], sizeof magic - 1) != NULL)
            return 0;
    return 1;
}

static const char *find_plain(const char *s, size_t ls, const char *p, size_t lp)
{
    if (lp == 0)
        return s;
    if (lp > ls)
        return NULL;
    return memmem(s, ls, p, lp);
}

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || is_plain(p, lp))) {
        const char *hit = find_plain(s + init, ls - init, p, lp);
        if (hit == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)((hit - s) + lp));
        return 2;
    }
    matcher m;
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher_init(&m, L, s, ls, p, lp);
    const char *at = s + init;
    do {
        matcher_reset(&m);
        const char *e = match(&m, at, p);
        if (e != NULL) {
            if (!find)
                return push_captures(&m, at, e);
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&m, NULL, NULL) + 2;
        }
    } while (at++ < m.subj_end && !anchored);
    luaL_pushfail(L);
    return 1;
}

static int l_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int l_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* ---- string.gmatch ---------------------------------------------------------- */

typedef struct {
    matcher m;
    const char *pat;
    const char *next;       /* where the next search starts */
    const char *last_match; /* end of the previous match (no empty match there again) */
} gmatch_state;

/* Upvalues: subject, pattern, state (all kept alive by the closure). */
static int gmatch_step(lua_State *L)
{
    gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L; /* the iterator may run on another coroutine */
    g->m.ctx = tk_lua_ctx_get(L);
    for (const char *at = g->next; at <= g->m.subj_end; at++) {
        matcher_reset(&g->m);
        const char *e = match(&g->m, at, g->pat);
        if (e != NULL && e != g->last_match) {
            g->next = g->last_match = e;
            return push_captures(&g->m, at, e);
        }
    }
    g->next = g->m.subj_end + 1; /* done: later calls find nothing */
    return 0;
}

static int l_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls)
        init = ls + 1;
    lua_settop(L, 2);
    gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0); /* +1 state */
    matcher_init(&g->m, L, s, ls, p, lp);
    g->pat = p;
    g->next = s + init;
    g->last_match = NULL;
    lua_pushcclosure(L, gmatch_step, 3); /* -3 +1 iterator */
    return 1;
}

/* ---- string.gsub ------------------------------------------------------------ */

/* Appends the replacement string (argument 3) for the match s..e. */
static void add_template(matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t len;
    const char *t = lua_tolstring(L, 3, &len);
    const char *end = t + len;
    while (t < end) {
        const char *pc = memchr(t, ESC, (size_t)(end - t));
        if (pc == NULL) {
            luaL_addlstring(b, t, (size_t)(end - t));
            break;
        }
        luaL_addlstring(b, t, (size_t)(pc - t));
        char k = pc + 1 < end ? pc[1] : '\0';
        if (k == ESC) {
            luaL_addchar(b, ESC);
        } else if (k == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (k >= '1' && k <= '9') {
            push_capture(m, k - '1', s, e); /* +1 */
            luaL_tolstring(L, -1, NULL);    /* +1 as text (positions are numbers) */
            lua_remove(L, -2);
            luaL_addvalue(b); /* -1 */
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        t = pc + 2;
    }
}

/* Appends the replacement for the match s..e: from the template, the
 * table or the function (argument 3, of type `kind`). false or nil keeps
 * the original text. */
static void add_replacement(matcher *m, luaL_Buffer *b, const char *s, const char *e, int kind)
{
    lua_State *L = m->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3); /* +1 function */
        int n = push_captures(m, s, e);
        lua_call(L, n, 1); /* -(n+1) +1 result */
    } else if (kind == LUA_TTABLE) {
        push_capture(m, 0, s, e); /* +1 key */
        lua_gettable(L, 3);       /* -1 +1 value */
    } else {
        add_template(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b); /* -1 */
}

static int l_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                         kind == LUA_TTABLE,
                     3, "string/function/table");
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher m;
    matcher_init(&m, L, s, ls, p, lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *at = s, *last_match = NULL;
    lua_Integer n = 0;
    while (n < max) {
        matcher_reset(&m);
        const char *e = match(&m, at, p);
        if (e != NULL && e != last_match) {
            n++;
            add_replacement(&m, &b, at, e, kind);
            at = last_match = e;
        } else if (at < m.subj_end) {
            step(&m);
            luaL_addchar(&b, *at++);
        } else {
            break;
        }
        if (anchored)
            break;
    }
    if (n == 0) {
        lua_pushvalue(L, 1); /* nothing replaced: the subject itself */
    } else {
        luaL_addlstring(&b, at, (size_t)(m.subj_end - at));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void tk_lua_pattern_install(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
    idx = lua_absindex(L, idx);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, idx, f->name);
    }
}
