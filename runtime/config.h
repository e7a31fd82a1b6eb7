/* Configuration from the environment (12-factor). Parsed once at start-up into
 * one read-only struct; a bad value stops start-up with one line naming the
 * variable. README.md lists every variable with its default. */
#ifndef TK_CONFIG_H
#define TK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* SMTP_STARTTLS for smtp:// URLs (smtps:// is TLS from the first byte). */
enum { TK_SMTP_STARTTLS_REQUIRE, TK_SMTP_STARTTLS_TRY, TK_SMTP_STARTTLS_OFF };

/* Secrets may instead be read from a file named by NAME_FILE (trailing line
 * breaks stripped; NAME and NAME_FILE both set is an error): DATABASE_URL,
 * REDIS_URL, JWT_SECRET, JWT_PREVIOUS_KEYS, SMTP_URL. */
typedef struct {
    int port;                         /* PORT, 8080 */
    int workers;                      /* WORKERS, 16: Lua worker threads */
    char *database_url;               /* DATABASE_URL, required to serve */
    int db_pool_size;                 /* DB_POOL_SIZE, 20 */
    int db_pool_timeout_ms;           /* DB_POOL_TIMEOUT_MS, 5000 */
    char *redis_url;                  /* REDIS_URL, unset */
    char *jwt_secret;                 /* JWT_SECRET, random with a warning unless production */
    int jwt_secret_generated;         /* 1 when jwt_secret was made up at start-up */
    char *jwt_key_id;                 /* JWT_KEY_ID, "k1" */
    char *jwt_previous_keys;          /* JWT_PREVIOUS_KEYS, "kid:secret,..." or NULL */
    int64_t access_token_ttl;         /* ACCESS_TOKEN_TTL seconds, 900 */
    int64_t refresh_token_ttl;        /* REFRESH_TOKEN_TTL seconds, 30 days */
    char *cors_origins;               /* CORS_ORIGINS, comma list, none */
    char *trust_proxy;                /* TRUST_PROXY, comma list of proxy addresses/CIDRs, none */
    struct tk_cidr_list *trust_nets;  /* TRUST_PROXY parsed (http/cidr.h); owned */
    int64_t user_cache_ttl_ms;        /* USER_CACHE_TTL_MS, 5000: user check cache (auth/users.h) */
    size_t body_limit;                /* BODY_LIMIT, 1 MiB ("1mb", "512kb", bytes) */
    char *smtp_url;                   /* SMTP_URL (or SMTP_URL_FILE), unset: mails go to mail_dir */
    int smtp_starttls;                /* SMTP_STARTTLS, TK_SMTP_STARTTLS_*, require */
    char *smtp_ca_file;               /* SMTP_CA_FILE, unset: the system's CAs */
    char *mail_from;                  /* MAIL_FROM, "taskapi <no-reply@localhost>" */
    char *mail_dir;                   /* MAIL_DIR, var/mail: one .eml per mail without SMTP */
    int mail_disabled;                /* MAIL_DISABLED, off: on drops every mail */
    char *app_base_url;               /* APP_BASE_URL, http://localhost:PORT */
    int log_level;                    /* LOG_LEVEL, info */
    int log_json;                     /* LOG_FORMAT json|text, text */
    char *scripts_dir;                /* SCRIPTS_DIR, ./scripts */
    char *web_dir;                    /* WEB_DIR, ./web: the web client served at /app/ */
    char *plugins_dir;                /* PLUGINS_DIR, ./plugins */
    char *migrations_dir;             /* MIGRATIONS_DIR, ./migrations */
    int ws_port;                      /* WS_PORT, 8081 */
    int ws_handshake_timeout;         /* WS_HANDSHAKE_TIMEOUT seconds, 5: upgrade headers due */
    int ws_auth_timeout;              /* WS_AUTH_TIMEOUT seconds, 10: token due after connect */
    int ws_message_timeout;           /* WS_MESSAGE_TIMEOUT seconds, 10: a started message due */
    int ws_max_message;               /* WS_MAX_MESSAGE bytes, 65536: client input held per conn */
    int ws_max_pending_per_ip;        /* WS_MAX_PENDING_PER_IP, 16 (0: no cap) */
    int ws_max_conn_per_ip;           /* WS_MAX_CONN_PER_IP, 256 (0: no cap) */
    int ws_max_conn_per_user;         /* WS_MAX_CONN_PER_USER, 32 (0: no cap) */
    int rate_limit_per_min;           /* RATE_LIMIT_PER_MIN, 100 */
    int auth_rate_limit_per_min;      /* AUTH_RATE_LIMIT_PER_MIN, 10 */
    int bcrypt_cost;                  /* BCRYPT_COST, 10 */
    int require_verified_email;       /* REQUIRE_VERIFIED_EMAIL, off */
    int production;                   /* TASKAPI_ENV=production */
    int job_poll_ms;                  /* JOB_POLL_MS, 500 */
    int job_backoff_base_ms;          /* JOB_BACKOFF_BASE_MS, 2000: first retry delay, doubling */
    char *plugins;                    /* PLUGINS, comma list of enabled plugins, unset */
    char *plugins_config_path;        /* PLUGINS_CONFIG, path of the JSON settings file, unset */
    char *plugins_config;             /* that file's text at start-up (checked readable here;
                                         each generation reads its own, lua/snapshot.h) */
    size_t lua_memory_limit;          /* LUA_MEMORY_LIMIT per VM, 256 MiB */
    long long lua_instruction_budget; /* LUA_INSTRUCTION_BUDGET per request, 100000000 */
    char *log_file;          /* LOG_FILE: records go there (reopened on SIGUSR1), else stderr */
    char *pid_file;          /* PID_FILE, $XDG_RUNTIME_DIR|/tmp/taskapi-PORT.pid */
    int watch_scripts;       /* WATCH_SCRIPTS, on: inotify reload */
    int reload_debounce_ms;  /* RELOAD_DEBOUNCE_MS, 200 */
    int debug_queries;       /* TASKAPI_DEBUG_QUERIES: X-Query-Count on every answer (tests) */
    char *ws_trace;          /* TASKAPI_WS_TRACE, unset: file a timing line per fan-out goes to */
    char *host;              /* HOST, unset: the HTTP port listens on every address */
    char *metrics_token;     /* METRICS_TOKEN, unset: /metrics is open */
    char *tls_cert_file;     /* TLS_CERT_FILE (PEM chain): HTTPS and WSS when set with the key */
    char *tls_key_file;      /* TLS_KEY_FILE (PEM private key) */
    int http_header_timeout; /* HTTP_HEADER_TIMEOUT seconds, 10 */
    int http_conn_per_ip;    /* HTTP_CONN_PER_IP, 256 (0: no cap) */
    int shutdown_timeout_ms; /* SHUTDOWN_TIMEOUT_MS, 20000: then exit regardless */
    int shutdown_drain_ms;   /* SHUTDOWN_DRAIN_MS: serve on after SIGTERM, ready 503 */
    char *lua_profile;       /* TASKAPI_LUA_PROFILE: folded Lua stacks written here at exit */
    int lua_profile_hz;      /* TASKAPI_LUA_PROFILE_HZ, 1000: samples per CPU second per worker */
    char *trace_stages;      /* TASKAPI_TRACE_STAGES: one line of stage times per request */
} tk_config;

/* Fills cfg from the environment. On a bad value returns TK_ECONFIG with one
 * line naming the variable in err. The strings are owned by cfg: free them
 * with tk_config_cleanup. */
int tk_config_load(tk_config *cfg, char *err, size_t errlen) TK_WUR;

void tk_config_cleanup(tk_config *cfg);

/* Returns 1 when `origin` is one of CORS_ORIGINS (exact match), else 0. */
int tk_config_origin_allowed(const tk_config *cfg, const char *origin);

/* Returns 1 when `origin` is APP_BASE_URL's own origin (scheme://host[:port],
 * compared without case), else 0: the web client served at /app/ there. */
int tk_config_is_app_origin(const tk_config *cfg, const char *origin);

/* Returns 1 when `addr` (an IPv4/IPv6 address text) falls in one of
 * TRUST_PROXY's addresses or CIDR blocks, else 0. */
int tk_config_proxy_trusted(const tk_config *cfg, const char *addr);

/* Parses a size such as "1048576", "512kb", "1mb" into bytes. */
int tk_config_parse_size(const char *s, size_t *out) TK_WUR;

#endif
