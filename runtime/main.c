/* The taskapi command line: serve | migrate [status] | routes | check |
 * users grant-admin|disable|enable EMAIL | version. Each subcommand reads the same
 * environment configuration; errors go to stderr as one line. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/users.h"
#include "config.h"
#include "db/migrate.h"
#include "db/pool.h"
#include "db/replica.h"
#include "db/ryw.h"
#include "events/bus.h"
#include "http/ratelimit.h"
#include "http/server.h"
#include "http/tls.h"
#include "jobs/runner.h"
#include "lua/gen.h"
#include "lua/profile.h"
#include "lua/vm.h"
#include "lua/watch.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/stages.h"
#include "redis/bridge.h"
#include "redis/conn.h"
#include "ws/policy.h"
#include "ws/server.h"

static const char USAGE[] =
    "usage: taskapi <command>\n"
    "\n"
    "commands:\n"
    "  serve                     serve the API on PORT (default 8080)\n"
    "  migrate                   apply pending migrations from MIGRATIONS_DIR\n"
    "  migrate status            list migrations and whether each is applied\n"
    "  routes                    print the route table the scripts define\n"
    "  check                     load the scripts and report errors (exit 1 on error)\n"
    "  reload                    make the running server reload its scripts (SIGHUP via PID_FILE)\n"
    "  status                    what the running server on PORT runs (GET /api/v1/admin/status;\n"
    "                            TASKAPI_TOKEN: a global admin's access token)\n"
    "  users grant-admin EMAIL   make an existing user a global admin\n"
    "  users disable EMAIL       refuse the user's logins and tokens (enable: undo)\n"
    "  env                       print the name of every environment variable the server reads\n"
    "                            (secrets also as NAME_FILE), one a line\n"
    "  version                   print the version\n"
    "\n"
    "Configuration comes from environment variables; see README.md.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "taskapi: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", USAGE);
    return 2;
}

static int load_config(tk_config *cfg)
{
    char err[512];
    if (tk_config_load(cfg, err, sizeof err) != TK_OK) {
        fprintf(stderr, "taskapi: %s\n", err);
        return -1;
    }
    tk_log_init((tk_log_level)cfg->log_level, cfg->log_json);
    return 0;
}

static int need_database(const tk_config *cfg)
{
    if (cfg->database_url == NULL) {
        fprintf(stderr, "taskapi: DATABASE_URL is not set\n");
        return -1;
    }
    return 0;
}

/* ---- serve ---------------------------------------------------------------- */

/* A reload (SIGHUP on the main thread, inotify on the watcher's): one new
 * generation for HTTP and realtime alike (lua/gen.h), swapped once. */
/* The job runner's view of the scripts: the current generation's snapshot
 * (a reference of its own) and number. */
static tk_snapshot *current_generation(void *ud, int *gen)
{
    tk_lua_gen *g = tk_lua_host_acquire(ud);
    if (g == NULL)
        return NULL;
    tk_snapshot *snap = tk_snapshot_ref((tk_snapshot *)tk_lua_gen_snapshot(g));
    if (gen != NULL)
        *gen = tk_lua_gen_id(g);
    tk_lua_gen_release(g);
    return snap;
}

static void reload_from_watch(void *ud)
{
    char err[2048];
    if (tk_lua_host_load(ud, err, sizeof err) != TK_OK)
        return; /* the host logged and counted it; the running generation stays */
}

/* Opens the pid file without following a symlink and only if it is a
 * regular file of this user: the default lives in a shared directory
 * (/tmp without XDG_RUNTIME_DIR), where another user could plant one.
 * Returns the descriptor or -1 with errno set. */
static int open_pid_file(const char *path, int flags)
{
    int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    return fd;
}

static void write_pid_file(const char *path)
{
    int fd = open_pid_file(path, O_WRONLY | O_CREAT);
    if (fd < 0 || ftruncate(fd, 0) != 0 || dprintf(fd, "%ld\n", (long)getpid()) < 0) {
        tk_log_warn("cannot write PID_FILE %s: %s (taskapi reload will not find this server)", path,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    tk_log_info("PID_FILE %s (taskapi reload finds this server through it)", path);
}

/* The shutdown deadline: once SIGTERM/SIGINT has started the shutdown, this
 * thread waits SHUTDOWN_TIMEOUT_MS (or for a second SIGTERM/SIGINT) and then
 * ends the process, whatever a worker, the job runner or a peer is still
 * doing. It owns copies of what it needs: main may be freeing the rest. */
typedef struct {
    sigset_t sigs;
    int timeout_ms;
    char pid_file[1024];
} watchdog;

/* What the shutdown is stopping now (a string literal, for the watchdog's
 * log line), or NULL once everything has stopped: then the watchdog lets
 * the exit (and the sanitizers' reports) finish. */
static _Atomic(const char *) shutdown_phase = "the server";

static void shutdown_enter(const char *phase)
{
    atomic_store(&shutdown_phase, phase);
}

/* Waits up to ms for SIGINT/SIGTERM among sigs, ignoring the others
 * (SIGHUP, SIGUSR1: no reloads or reopens while stopping). Returns the
 * signal, or 0 when the time ran out. */
static int wait_stop_signal(const sigset_t *sigs, int ms)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    for (;;) {
        struct timespec now, left;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left.tv_sec = end.tv_sec - now.tv_sec;
        left.tv_nsec = end.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        if (left.tv_sec < 0)
            return 0;
        int sig = sigtimedwait(sigs, NULL, &left);
        if (sig == SIGINT || sig == SIGTERM)
            return sig;
        if (sig < 0 && errno == EAGAIN)
            return 0;
    }
}

static void *shutdown_watchdog(void *arg)
{
    watchdog *wd = arg;
    int sig = wait_stop_signal(&wd->sigs, wd->timeout_ms);
    if (sig != 0)
        tk_log_warn("%s again: not waiting for the shutdown to finish",
                    sig == SIGINT ? "SIGINT" : "SIGTERM");
    const char *phase = atomic_load(&shutdown_phase);
    if (phase == NULL)
        return NULL; /* everything stopped: main is exiting on its own */
    tk_log_error("shutdown did not finish within SHUTDOWN_TIMEOUT_MS=%d ms (still stopping %s): "
                 "exiting with requests or jobs still running",
                 wd->timeout_ms, phase);
    if (wd->pid_file[0])
        unlink(wd->pid_file);
    _exit(1);
    return NULL;
}

/* Starts the shutdown watchdog (detached; it never returns if it fires). */
static void start_shutdown_watchdog(const sigset_t *sigs, const tk_config *cfg)
{
    static watchdog wd;
    wd.sigs = *sigs;
    wd.timeout_ms = cfg->shutdown_timeout_ms;
    snprintf(wd.pid_file, sizeof wd.pid_file, "%s", cfg->pid_file ? cfg->pid_file : "");
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, shutdown_watchdog, &wd) != 0)
        tk_log_warn("cannot start the shutdown watchdog: shutting down without a deadline");
    pthread_attr_destroy(&attr);
}

/* The drain before a shutdown: the server keeps serving for ms while load
 * balancers see /health/ready fail and proxies' keep-alive connections are
 * closed one answer at a time. A second SIGTERM/SIGINT ends it early;
 * SIGHUP and SIGUSR1 wait. */
static void drain(const sigset_t *sigs, int ms)
{
    int sig = wait_stop_signal(sigs, ms);
    if (sig != 0)
        tk_log_info("%s again: ending the drain", sig == SIGINT ? "SIGINT" : "SIGTERM");
}

/* One line on the certificate in use: its file and when it expires. */
static void log_tls(const char *what, const tk_tls *tls, const char *file)
{
    time_t until = (time_t)tk_tls_not_after(tls);
    struct tm tm;
    char when[32] = "?";
    if (until > 0 && gmtime_r(&until, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    tk_log_info("%s %s (valid until %s)", what, file, when);
}

static int cmd_serve(void)
{
    tk_config cfg;
    if (load_config(&cfg) != 0)
        return 1;
    int status = 1;
    tk_db_pool *pool = NULL;
    tk_db_replica *replica = NULL;
    tk_server *srv = NULL;
    tk_jobs *jobs = NULL;
    tk_watch *watch = NULL;
    tk_ws_server *ws = NULL;
    tk_redis_bridge *bridge = NULL;
    tk_redis_pool *rpool = NULL;
    tk_tls *tls = NULL;
    tk_lua_host *host = NULL;
    int rc;
    tk_auth_users_db users_db = {NULL, 0};
    char err[1024];
    if (need_database(&cfg) != 0)
        goto out;
    if (tk_auth_keys_init(cfg.jwt_key_id, cfg.jwt_secret, cfg.jwt_previous_keys) != TK_OK) {
        fprintf(stderr, "taskapi: JWT_SECRET/JWT_PREVIOUS_KEYS: malformed key list\n");
        goto out;
    }
    if (cfg.log_file && tk_log_open_file(cfg.log_file, err, sizeof err) != TK_OK) {
        fprintf(stderr, "taskapi: %s\n", err);
        goto out;
    }
    if (cfg.tls_cert_file) {
        if (tk_tls_new(cfg.tls_cert_file, cfg.tls_key_file, &tls, err, sizeof err) != TK_OK) {
            tk_log_error("cannot start: %s", err);
            goto out;
        }
        tk_tls_use(tls);
        log_tls("HTTPS and WSS with", tls, cfg.tls_cert_file);
    }
    if (cfg.jwt_secret_generated)
        tk_log_warn("JWT_SECRET is not set: using a random secret; tokens will not survive a "
                    "restart (set JWT_SECRET; required when TASKAPI_ENV=production)");

    /* Every thread inherits this mask; the main thread takes the signals. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* One pool of Redis connections for the request paths: rate limits and
     * read-your-writes borrow it. */
    if (cfg.redis_url != NULL) {
        rc = tk_redis_pool_new(cfg.redis_url, TK_REDIS_POOL_TIMEOUT_MS, TK_REDIS_POOL_BACKOFF_MS,
                               "rate limits count in process and reads after a write go to the "
                               "primary",
                               &rpool, err, sizeof err);
        if (rc != TK_OK) {
            fprintf(stderr, "taskapi: REDIS_URL: %s\n", err);
            goto out;
        }
        tk_ratelimit_use_redis(rpool);
    }
    if (tk_db_pool_new(cfg.database_url, cfg.db_pool_size, &pool) != TK_OK) {
        fprintf(stderr, "taskapi: out of memory\n");
        goto out;
    }
    if (cfg.database_read_url != NULL) {
        tk_db_ryw_init(rpool, cfg.read_your_writes_ms);
        if (tk_db_replica_start(pool, cfg.database_url, cfg.database_read_url,
                                cfg.db_read_pool_size, cfg.replica_max_lag_ms, cfg.replica_check_ms,
                                &replica) != TK_OK) {
            fprintf(stderr, "taskapi: out of memory\n");
            goto out;
        }
        tk_log_info("read replica: pool %d, reads on the primary for %d ms after a user's write "
                    "and while the replica lags more than %d ms",
                    cfg.db_read_pool_size, cfg.read_your_writes_ms, cfg.replica_max_lag_ms);
    }
    users_db.pool = pool;
    users_db.timeout_ms = cfg.db_pool_timeout_ms;
    tk_auth_users_init(cfg.user_cache_ttl_ms, tk_auth_users_fetch_db, &users_db);
    if (tk_lua_profile_start(&cfg, err, sizeof err) != TK_OK ||
        tk_stages_start(&cfg, err, sizeof err) != TK_OK) {
        tk_log_error("cannot start: %s", err);
        goto out;
    }
    /* One script generation for every consumer: HTTP's workers and router,
     * the realtime join policy's VMs. */
    if (tk_lua_host_new(&cfg, pool, &host) != TK_OK) {
        tk_log_error("cannot start: out of memory");
        goto out;
    }
    tk_lua_consumer http_c = tk_server_consumer(&cfg), rt_c = tk_ws_policy_consumer();
    int http_id = tk_lua_host_add(host, &http_c), rt_id = tk_lua_host_add(host, &rt_c);
    if (http_id < 0 || rt_id < 0 || tk_lua_host_load(host, err, sizeof err) != TK_OK ||
        tk_server_start(&cfg, pool, host, http_id, &srv, err, sizeof err) != TK_OK) {
        tk_log_error("cannot start: %s", http_id < 0 || rt_id < 0 ? "too many consumers" : err);
        goto out;
    }
    /* Realtime: the Redis bridge (only with REDIS_URL), then the WebSocket
     * server; the bus connects them to the scripts. */
    const tk_redis_bridge_hooks to_bus = {.message = tk_bus_deliver_remote,
                                          .echo = tk_bus_echo,
                                          .lost = tk_bus_echo_lost,
                                          .tick = tk_bus_echo_tick};
    if (cfg.redis_url != NULL &&
        tk_redis_bridge_start(cfg.redis_url, &to_bus, &bridge, err, sizeof err) != TK_OK) {
        tk_log_error("cannot start: %s", err);
        goto out;
    }
    rc = tk_ws_server_start(&cfg, host, rt_id, &ws, err, sizeof err);
    if (rc != TK_OK) {
        tk_log_error("cannot start the realtime server: %s", err);
        goto out;
    }
    {
        tk_bus_sink sink = tk_ws_server_bus_sink(ws);
        tk_bus_relay relay = bridge ? tk_redis_bridge_bus_relay(bridge) : (tk_bus_relay){0};
        tk_bus_attach(&sink, bridge ? &relay : NULL);
    }
    if (tk_jobs_start(&cfg, pool, current_generation, host, &jobs) != TK_OK) {
        tk_log_error("cannot start the job runner");
        goto out;
    }
    if (cfg.watch_scripts) {
        const char *dirs[] = {cfg.scripts_dir, cfg.plugins_dir, NULL};
        if (tk_watch_start(dirs, cfg.reload_debounce_ms, reload_from_watch, host, &watch) != TK_OK)
            tk_log_warn("cannot watch %s for changes; reload with SIGHUP or taskapi reload",
                        cfg.scripts_dir);
    }
    write_pid_file(cfg.pid_file);
    tk_log_info("taskapi %s listening on %s://0.0.0.0:%d (%d workers, pool %d)", TASKAPI_VERSION,
                tls ? "https" : "http", cfg.port, cfg.workers, cfg.db_pool_size);
    tk_log_info("realtime on %s://0.0.0.0:%d (/ws, /socket.io/); redis %s", tls ? "wss" : "ws",
                cfg.ws_port, bridge ? "pub/sub across instances" : "disabled (this instance only)");
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            tk_log_info("SIGHUP: reloading scripts");
            reload_from_watch(host);
            if (tls && tk_tls_reload(tls, err, sizeof err) != TK_OK)
                tk_log_error("SIGHUP: %s; the previous certificate stays", err);
            else if (tls) {
                log_tls("SIGHUP: HTTPS now with", tls, cfg.tls_cert_file);
                tk_ws_server_reload_tls(ws);
            }
            continue;
        }
        if (sig == SIGUSR1) {
            if (tk_log_reopen(err, sizeof err) != TK_OK)
                tk_log_error("SIGUSR1: %s; logging on to the old file", err);
            else
                tk_log_info("SIGUSR1: log file reopened");
            continue;
        }
        tk_shutdown_begin(); /* /health/ready 503, answers close their connections */
        if (cfg.shutdown_drain_ms > 0) {
            /* new connections are refused (a proxy retries them elsewhere at
             * no risk: nothing was sent); open ones are served and closed */
            tk_server_quiesce(srv);
            tk_log_info("%s: draining for %d ms (still serving; /health/ready answers 503)",
                        sig == SIGINT ? "SIGINT" : "SIGTERM", cfg.shutdown_drain_ms);
            drain(&sigs, cfg.shutdown_drain_ms);
        }
        tk_log_info("%s: shutting down (at most %d ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                    cfg.shutdown_timeout_ms);
        start_shutdown_watchdog(&sigs, &cfg);
        break;
    }
    status = 0;
out:
    shutdown_enter("the script watcher");
    tk_watch_stop(watch);
    tk_bus_attach(NULL, NULL);
    shutdown_enter("the realtime server");
    tk_ws_server_stop(ws);
    shutdown_enter("the Redis bridge");
    tk_redis_bridge_stop(bridge);
    shutdown_enter("the job runner"); /* before the host: it reads the current generation */
    tk_jobs_stop(jobs);
    shutdown_enter("the HTTP server and its workers");
    tk_server_stop(srv);
    tk_lua_host_free(host); /* the last generation, unless a request still holds it */
    shutdown_enter("the database pool");
    (void)tk_lua_profile_stop(); /* TASKAPI_LUA_PROFILE: the folded stacks */
    tk_stages_stop();
    if (status == 0)
        unlink(cfg.pid_file);
    tk_auth_users_cleanup(); /* before the pool it borrows goes */
    tk_db_replica_stop(replica);
    tk_db_ryw_cleanup();
    tk_db_pool_free(pool);
    tk_auth_keys_cleanup();
    tk_auth_deny_cleanup();
    tk_ratelimit_cleanup();
    tk_redis_pool_free(rpool); /* after its borrowers: ryw and the rate limits */
    tk_metrics_cleanup();
    tk_tls_free(tls);
    tk_config_cleanup(&cfg);
    shutdown_enter(NULL);
    tk_log_close_file();
    return status;
}

/* ---- migrate --------------------------------------------------------------- */

static int cmd_migrate(int argc, char **argv)
{
    int status_only = 0;
    if (argc > 2) {
        if (strcmp(argv[2], "status") != 0)
            return usage_error("unknown migrate argument '%s'", argv[2]);
        status_only = 1;
        if (argc > 3)
            return usage_error("unexpected argument '%s'", argv[3]);
    }
    tk_config cfg;
    if (load_config(&cfg) != 0)
        return 1;
    int status = 1;
    char err[1024];
    if (need_database(&cfg) != 0)
        goto out;
    int rc =
        status_only
            ? tk_db_migrate_status(cfg.database_url, cfg.migrations_dir, stdout, err, sizeof err)
            : tk_db_migrate_run(cfg.database_url, cfg.migrations_dir, stdout, err, sizeof err);
    if (rc != TK_OK) {
        fprintf(stderr, "taskapi: migrate: %s\n", err);
        goto out;
    }
    status = 0;
out:
    tk_config_cleanup(&cfg);
    return status;
}

/* ---- routes / check ------------------------------------------------------------ */

/* Prints a syntax error and remembers the first (ud: a char[512]). */
static void print_syntax_error(const char *msg, void *ud)
{
    char *first = ud;
    fprintf(stderr, "taskapi: %s\n", msg);
    if (first[0] == '\0')
        snprintf(first, 512, "%s", msg);
}

/* `routes` prints the table; `check` loads the scripts as the server would
 * (with this environment's PLUGINS settings) and also compiles every file
 * of SCRIPTS_DIR and PLUGINS_DIR, enabled here or not, so a plugin the
 * server enables but this shell does not cannot hide a syntax error. */
static int cmd_scripts(int print_routes)
{
    tk_config cfg;
    if (load_config(&cfg) != 0)
        return 1;
    int status = 1;
    char err[4096];
    tk_snapshot *snap = NULL;
    tk_lua_gen *gen = NULL;
    if (tk_snapshot_load(cfg.scripts_dir, cfg.plugins_dir, &snap, err, sizeof err) != TK_OK) {
        fprintf(stderr, "taskapi: %s\n", err);
        goto out;
    }
    int bad = 0;
    char first[512] = "";
    if (!print_routes && (bad = tk_lua_check_syntax(snap, print_syntax_error, first)) < 0) {
        fprintf(stderr, "taskapi: out of memory\n");
        goto out;
    }
    /* Load as the server would even after syntax errors: that reports what
     * only loading finds (a missing plugin, a bad schema, a route conflict
     * in HTTP's router), once. No VM beyond the one that reads the app;
     * from the snapshot just checked: the files are read once. */
    tk_lua_consumer http_c = tk_server_consumer(&cfg);
    http_c.nvms = 0;
    if (tk_lua_gen_new_from(&cfg, NULL, snap, &http_c, 1, &gen, err, sizeof err) != TK_OK) {
        if (first[0] == '\0' || strstr(err, first) == NULL)
            fprintf(stderr, "taskapi: %s\n", err);
        goto out;
    }
    if (bad > 0)
        goto out;
    if (print_routes)
        tk_lua_gen_print_routes(gen, stdout);
    else
        printf("ok: %s: %d routes, %d files compiled\n", cfg.scripts_dir,
               tk_lua_gen_route_count(gen), tk_snapshot_count(snap));
    status = 0;
out:
    tk_lua_gen_release(gen);
    tk_snapshot_free(snap);
    tk_config_cleanup(&cfg);
    return status;
}

/* ---- reload ------------------------------------------------------------------ */

typedef struct {
    char *data;
    size_t len;
} body_buf;

/* libcurl's write callback: appends, at most 1 MB. */
static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    body_buf *b = ud;
    size_t add = size * n;
    if (b->len + add > 1024 * 1024)
        return 0;
    char *grown = realloc(b->data, b->len + add + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + b->len, p, add);
    b->data = grown;
    b->len += add;
    return add;
}

/* taskapi status: GET /api/v1/admin/status from the server on PORT (or
 * TASKAPI_URL) with TASKAPI_TOKEN, a global admin's access token; prints the
 * JSON. Over HTTPS to this host's own port the certificate is checked
 * against TLS_CERT_FILE. */
static int cmd_status(void)
{
    tk_config cfg;
    if (load_config(&cfg) != 0)
        return 1;
    int status = 1;
    const char *token = getenv("TASKAPI_TOKEN");
    const char *base = getenv("TASKAPI_URL");
    char url[512], auth[4096];
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL;
    body_buf body = {NULL, 0};
    if (token == NULL || *token == '\0' || strlen(token) > 4000) {
        fprintf(stderr, "taskapi: status needs TASKAPI_TOKEN (a global admin's access token)\n");
        goto out;
    }
    if (base && *base)
        snprintf(url, sizeof url, "%s/api/v1/admin/status", base);
    else
        snprintf(url, sizeof url, "%s://127.0.0.1:%d/api/v1/admin/status",
                 cfg.tls_cert_file ? "https" : "http", cfg.port);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (h = curl_easy_init()) == NULL ||
        (hdrs = curl_slist_append(NULL, auth)) == NULL) {
        fprintf(stderr, "taskapi: out of memory\n");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!(base && *base) && cfg.tls_cert_file) {
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg.tls_cert_file);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L); /* 127.0.0.1, our own certificate */
    }
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
        fprintf(stderr, "taskapi: status: %s: %s\n", url, curl_easy_strerror(rc));
    } else if (code != 200) {
        fprintf(stderr, "taskapi: status: HTTP %ld: %.*s\n", code, (int)body.len,
                body.data ? body.data : "");
    } else {
        printf("%.*s\n", (int)body.len, body.data ? body.data : "");
        status = 0;
    }
out:
    free(body.data);
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    curl_global_cleanup();
    tk_config_cleanup(&cfg);
    return status;
}

static int cmd_reload(void)
{
    tk_config cfg;
    if (load_config(&cfg) != 0)
        return 1;
    int status = 1;
    int fd = open_pid_file(cfg.pid_file, O_RDONLY);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (f == NULL && fd >= 0)
        close(fd);
    long pid = 0;
    if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
        fprintf(stderr, "taskapi: no running server found in PID_FILE %s\n", cfg.pid_file);
        goto out;
    }
    if (kill((pid_t)pid, SIGHUP) != 0) {
        fprintf(stderr, "taskapi: cannot signal server %ld: %s\n", pid, strerror(errno));
        goto out;
    }
    printf("asked server %ld to reload its scripts\n", pid);
    status = 0;
out:
    if (f)
        fclose(f);
    tk_config_cleanup(&cfg);
    return status;
}

/* ---- users grant-admin | disable | enable ---------------------------------------- */

/* The users subcommands: one statement each, on the user named by EMAIL. */
static const struct {
    const char *name, *sql, *done;
} user_cmds[] = {
    {"grant-admin",
     "UPDATE users SET role = 'admin', updated_at = now() WHERE email = lower(btrim($1)) "
     "RETURNING id",
     "is now a global admin"},
    /* A disabled user's tokens are refused by every instance once its user
     * cache entry expires (USER_CACHE_TTL_MS); logins and refreshes at once. */
    {"disable",
     "UPDATE users SET disabled_at = coalesce(disabled_at, now()), updated_at = now() "
     "WHERE email = lower(btrim($1)) RETURNING id",
     "is disabled"},
    {"enable",
     "UPDATE users SET disabled_at = NULL, updated_at = now() WHERE email = lower(btrim($1)) "
     "RETURNING id",
     "is enabled"},
};

static int cmd_users(int argc, char **argv)
{
    size_t k = 0;
    while (argc >= 3 && k < TK_ARRAY_LEN(user_cmds) && strcmp(argv[2], user_cmds[k].name) != 0)
        k++;
    if (argc < 3 || k == TK_ARRAY_LEN(user_cmds))
        return usage_error("unknown users command '%s'", argc < 3 ? "" : argv[2]);
    if (argc != 4)
        return usage_error("users %s needs exactly one EMAIL", user_cmds[k].name);
    tk_config cfg;
    if (load_config(&cfg) != 0)
        return 1;
    int status = 1;
    PGconn *pg = NULL;
    PGresult *r = NULL;
    if (need_database(&cfg) != 0)
        goto out;
    pg = PQconnectdb(cfg.database_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "taskapi: database unavailable: %s", PQerrorMessage(pg));
        goto out;
    }
    const char *params[1] = {argv[3]};
    r = PQexecParams(pg, user_cmds[k].sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "taskapi: %s", PQresultErrorMessage(r));
        goto out;
    }
    if (PQntuples(r) == 0) {
        fprintf(stderr, "taskapi: no user with email %s\n", argv[3]);
        goto out;
    }
    printf("%s %s (user %s)\n", argv[3], user_cmds[k].done, PQgetvalue(r, 0, 0));
    status = 0;
out:
    PQclear(r);
    PQfinish(pg);
    tk_config_cleanup(&cfg);
    return status;
}

/* `taskapi env`: the configuration table's names (config_vars.h), so
 * scripts can start a server from a clean environment without a list of
 * their own. */
static int cmd_env(void)
{
    for (size_t i = 0; i < tk_config_nvars; i++) {
        printf("%s\n", tk_config_vars[i].name);
        if (tk_config_vars[i].file_name)
            printf("%s\n", tk_config_vars[i].file_name);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "missing command");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("taskapi %s\n", TASKAPI_VERSION);
        return 0;
    }
    if (cmd[0] == '-')
        return usage_error("unknown option '%s'", cmd);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc, argv);
    if (strcmp(cmd, "users") == 0)
        return cmd_users(argc, argv);
    if (argc > 2)
        return usage_error("unexpected argument '%s'", argv[2]);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve();
    if (strcmp(cmd, "routes") == 0)
        return cmd_scripts(1);
    if (strcmp(cmd, "check") == 0)
        return cmd_scripts(0);
    if (strcmp(cmd, "reload") == 0)
        return cmd_reload();
    if (strcmp(cmd, "status") == 0)
        return cmd_status();
    if (strcmp(cmd, "env") == 0)
        return cmd_env();
    return usage_error("unknown command '%s'", cmd);
}
