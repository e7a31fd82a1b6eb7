/* The Lua sampling profiler: per-thread CPU timers that raise a flag, and
 * a table of folded stacks the count hook fills (see lua/profile.h). */
#include "lua/profile.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obs/log.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define MAX_FRAMES 96
#define STACK_MAX 8192 /* bytes of one folded stack; deeper stacks are cut at the root */

typedef struct {
    char *key; /* the folded stack, owned */
    uint64_t hash;
    unsigned long long count;
} slot;

/* Everything below the mutex is shared by the sampling threads. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot *table;
static size_t table_cap, table_used;
static char *out_path;                  /* TASKAPI_LUA_PROFILE, owned */
static char *scripts_dir, *plugins_dir; /* prefixes shown as scripts/ and plugins/ */
static unsigned long long dropped;      /* samples lost to a full memory */

static atomic_int enabled;
static long interval_ns;
static pthread_key_t thread_key;

static __thread volatile sig_atomic_t tick; /* set by SIGPROF on this thread */
static __thread int armed;                  /* this thread's timer exists */
static __thread timer_t thread_timer;

static void on_sigprof(int sig)
{
    (void)sig;
    tick = 1;
}

/* Thread exit: its timer goes with it. */
static void thread_gone(void *unused)
{
    (void)unused;
    if (armed) {
        timer_delete(thread_timer);
        armed = 0;
    }
}

int tk_lua_profile_start(const tk_config *cfg, char *err, size_t errlen)
{
    if (cfg->lua_profile == NULL || cfg->lua_profile[0] == '\0')
        return TK_OK;
    out_path = strdup(cfg->lua_profile);
    scripts_dir = strdup(cfg->scripts_dir ? cfg->scripts_dir : "scripts");
    plugins_dir = strdup(cfg->plugins_dir ? cfg->plugins_dir : "plugins");
    if (out_path == NULL || scripts_dir == NULL || plugins_dir == NULL) {
        tk_errf(err, errlen, "out of memory");
        goto fail;
    }
    /* the file must be writable now, not only at exit after the whole run */
    FILE *f = fopen(out_path, "w");
    if (f == NULL) {
        tk_errf(err, errlen, "TASKAPI_LUA_PROFILE: cannot write %s: %s", out_path, strerror(errno));
        goto fail;
    }
    fclose(f);
    if (pthread_key_create(&thread_key, thread_gone) != 0) {
        tk_errf(err, errlen, "TASKAPI_LUA_PROFILE: no thread key");
        goto fail;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigprof;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, NULL) != 0) {
        tk_errf(err, errlen, "TASKAPI_LUA_PROFILE: sigaction: %s", strerror(errno));
        pthread_key_delete(thread_key);
        goto fail;
    }
    interval_ns = 1000000000L / (cfg->lua_profile_hz > 0 ? cfg->lua_profile_hz : 1000);
    atomic_store(&enabled, 1);
    tk_log_info(
        "Lua profiler on: %d samples per CPU second per worker, folded stacks to %s at exit",
        cfg->lua_profile_hz, out_path);
    return TK_OK;
fail:
    free(out_path);
    free(scripts_dir);
    free(plugins_dir);
    out_path = scripts_dir = plugins_dir = NULL;
    return TK_EIO;
}

int tk_lua_profile_enabled(void)
{
    return atomic_load_explicit(&enabled, memory_order_relaxed);
}

void tk_lua_profile_thread_begin(void)
{
    tick = 0;
    if (armed || !tk_lua_profile_enabled())
        return;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGPROF;
    sev.sigev_notify_thread_id = gettid();
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &thread_timer) != 0) {
        tk_log_warn("Lua profiler: no timer for this thread: %s", strerror(errno));
        armed = -1; /* do not retry on every request */
        return;
    }
    armed = 1;
    pthread_setspecific(thread_key, &armed);
    struct itimerspec its;
    its.it_interval.tv_sec = interval_ns / 1000000000L;
    its.it_interval.tv_nsec = interval_ns % 1000000000L;
    its.it_value = its.it_interval;
    timer_settime(thread_timer, 0, &its, NULL);
}

int tk_lua_profile_due(void)
{
    return tick;
}

/* ---- the folded stacks ----------------------------------------------------- */

static uint64_t hash_of(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int table_grow(void)
{
    size_t cap = table_cap ? table_cap * 2 : 1024;
    slot *nt = calloc(cap, sizeof *nt);
    if (nt == NULL)
        return -1;
    for (size_t i = 0; i < table_cap; i++) {
        if (table[i].key == NULL)
            continue;
        size_t j = table[i].hash & (cap - 1);
        while (nt[j].key != NULL)
            j = (j + 1) & (cap - 1);
        nt[j] = table[i];
    }
    free(table);
    table = nt;
    table_cap = cap;
    return 0;
}

/* Counts one sample of stack `s` (n bytes). Called with mu held. */
static void table_add(const char *s, size_t n)
{
    if ((table_used + 1) * 10 > table_cap * 7 && table_grow() != 0) {
        dropped++;
        return;
    }
    uint64_t h = hash_of(s, n);
    size_t j = h & (table_cap - 1);
    while (table[j].key != NULL) {
        if (table[j].hash == h && strncmp(table[j].key, s, n) == 0 && table[j].key[n] == '\0') {
            table[j].count++;
            return;
        }
        j = (j + 1) & (table_cap - 1);
    }
    char *k = malloc(n + 1);
    if (k == NULL) {
        dropped++;
        return;
    }
    memcpy(k, s, n);
    k[n] = '\0';
    table[j].key = k;
    table[j].hash = h;
    table[j].count = 1;
    table_used++;
}

/* The frame's name as a route author reads it: scripts/routes/tasks.lua:120
 * (SCRIPTS_DIR shown as scripts/, PLUGINS_DIR as plugins/), or "[C] name". */
static int frame_text(lua_State *L, lua_Debug *ar, char *buf, size_t len)
{
    if (!lua_getinfo(L, "Sln", ar))
        return snprintf(buf, len, "?");
    if (ar->what != NULL && strcmp(ar->what, "C") == 0)
        return snprintf(buf, len, "[C] %s", ar->name ? ar->name : "?");
    const char *src = ar->source;
    if (src == NULL || src[0] != '@')
        return snprintf(buf, len, "%s:%d", ar->short_src, ar->currentline);
    src++;
    const char *shown = "";
    size_t sl = strlen(scripts_dir), pl = strlen(plugins_dir);
    if (strncmp(src, scripts_dir, sl) == 0 && src[sl] == '/') {
        shown = "scripts";
        src += sl;
    } else if (strncmp(src, plugins_dir, pl) == 0 && src[pl] == '/') {
        shown = "plugins";
        src += pl;
    }
    return snprintf(buf, len, "%s%s:%d", shown, src, ar->currentline);
}

void tk_lua_profile_sample(lua_State *L)
{
    tick = 0;
    pthread_mutex_lock(&mu); /* also keeps stop from freeing the prefixes under us */
    if (!tk_lua_profile_enabled()) {
        pthread_mutex_unlock(&mu);
        return;
    }
    /* levels 0 (the running function) .. depth-1, written root first */
    char frames[MAX_FRAMES][256];
    int depth = 0;
    lua_Debug ar;
    while (depth < MAX_FRAMES && lua_getstack(L, depth, &ar)) {
        int n = frame_text(L, &ar, frames[depth], sizeof frames[depth]);
        if (n < 0)
            frames[depth][0] = '\0';
        /* ';' separates frames and the last ' ' the count: keep them out */
        for (char *p = frames[depth]; *p; p++)
            if (*p == ';' || *p == '\n')
                *p = '_';
        depth++;
    }
    if (depth == 0) {
        pthread_mutex_unlock(&mu);
        return;
    }
    char stack[STACK_MAX];
    size_t used = 0;
    for (int i = depth - 1; i >= 0; i--) {
        size_t fl = strlen(frames[i]);
        if (used + fl + 2 > sizeof stack)
            break;
        if (used > 0)
            stack[used++] = ';';
        memcpy(stack + used, frames[i], fl);
        used += fl;
    }
    table_add(stack, used);
    pthread_mutex_unlock(&mu);
}

static int by_key(const void *a, const void *b)
{
    const slot *x = a, *y = b;
    return strcmp(x->key, y->key);
}

int tk_lua_profile_stop(void)
{
    if (!atomic_exchange(&enabled, 0))
        return 0;
    pthread_mutex_lock(&mu);
    /* compact the used slots to the front and sort them: a stable file */
    size_t n = 0;
    for (size_t i = 0; i < table_cap; i++)
        if (table[i].key != NULL)
            table[n++] = table[i];
    if (n > 0)
        qsort(table, n, sizeof *table, by_key);
    int rc = (int)n;
    unsigned long long samples = 0;
    FILE *f = fopen(out_path, "w");
    if (f == NULL) {
        tk_log_error("TASKAPI_LUA_PROFILE: cannot write %s: %s", out_path, strerror(errno));
        rc = -1;
    }
    for (size_t i = 0; i < n; i++) {
        samples += table[i].count;
        if (f != NULL)
            fprintf(f, "%s %llu\n", table[i].key, table[i].count);
        free(table[i].key);
    }
    if (f != NULL && fclose(f) != 0) {
        tk_log_error("TASKAPI_LUA_PROFILE: cannot write %s: %s", out_path, strerror(errno));
        rc = -1;
    }
    if (rc >= 0)
        tk_log_info("Lua profile: %llu samples, %zu stacks written to %s%s", samples, n, out_path,
                    dropped ? " (some samples dropped: out of memory)" : "");
    free(table);
    table = NULL;
    table_cap = table_used = 0;
    free(out_path);
    free(scripts_dir);
    free(plugins_dir);
    out_path = scripts_dir = plugins_dir = NULL;
    pthread_mutex_unlock(&mu);
    return rc;
}
