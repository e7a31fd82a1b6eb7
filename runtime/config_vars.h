/* Every environment variable the server reads, in one table (an X-macro, as
 * common.h does for error codes). From it derive: the fields of tk_config,
 * the generic part of tk_config_load (integers with their ranges, strings
 * with their defaults, on/off switches, secrets readable from NAME_FILE),
 * tk_config_cleanup, the name list `taskapi env` prints (which bin/test and
 * the spec helpers use to start servers from a clean environment), and the
 * checks that README.md documents each of them (spec/unit/config_doc_spec).
 *
 *   INT(type, field, NAME, default, min, max)  an integer in [min, max]
 *   STR(field, NAME, default, secret)          a string (NULL: unset); with
 *                                              secret 1 also NAME_FILE, and
 *                                              the value is never printed
 *   BOOL(field, NAME, default)                 on/off, true/false, 1/0
 *   CUSTOM(type, field, NAME, default)         parsed by hand in config.c
 *                                              (sizes, enums, TASKAPI_ENV)
 *
 * A default given as text ("computed") is made at load time; see config.c.
 * README.md lists every variable with its default: keep both true. */
#ifndef TK_CONFIG_VARS_H
#define TK_CONFIG_VARS_H

#define TK_CONFIG_VARS(INT, STR, BOOL, CUSTOM)                                                     \
    /* the HTTP edge */                                                                            \
    INT(int, port, "PORT", 8080, 1, 65535)                                                         \
    STR(host, "HOST", NULL, 0)                                                                     \
    INT(int, http_header_timeout, "HTTP_HEADER_TIMEOUT", 10, 1, 3600)                              \
    INT(int, http_conn_per_ip, "HTTP_CONN_PER_IP", 256, 0, 10000)                                  \
    STR(metrics_token, "METRICS_TOKEN", NULL, 0)                                                   \
    STR(tls_cert_file, "TLS_CERT_FILE", NULL, 0)                                                   \
    STR(tls_key_file, "TLS_KEY_FILE", NULL, 0)                                                     \
    INT(int, workers, "WORKERS", 16, 1, 1024)                                                      \
    CUSTOM(size_t, body_limit, "BODY_LIMIT", "1mb")                                                \
    STR(cors_origins, "CORS_ORIGINS", NULL, 0)                                                     \
    STR(trust_proxy, "TRUST_PROXY", NULL, 0)                                                       \
    INT(int, rate_limit_per_min, "RATE_LIMIT_PER_MIN", 100, 1, 2000000000)                         \
    INT(int, auth_rate_limit_per_min, "AUTH_RATE_LIMIT_PER_MIN", 10, 1, 2000000000)                \
    /* the database and Redis */                                                                   \
    STR(database_url, "DATABASE_URL", NULL, 1)                                                     \
    INT(int, db_pool_size, "DB_POOL_SIZE", 20, 1, 1000)                                            \
    INT(int, db_pool_timeout_ms, "DB_POOL_TIMEOUT_MS", 5000, 10, 600000)                           \
    STR(database_read_url, "DATABASE_READ_URL", NULL, 1)                                           \
    INT(int, db_read_pool_size, "DB_READ_POOL_SIZE", 0, 0, 1000) /* 0: DB_POOL_SIZE */             \
    INT(int, read_your_writes_ms, "READ_YOUR_WRITES_MS", 5000, 0, 3600000)                         \
    INT(int, replica_max_lag_ms, "REPLICA_MAX_LAG_MS", 2000, 0, 3600000)                           \
    INT(int, replica_check_ms, "REPLICA_CHECK_MS", 1000, 50, 600000)                               \
    STR(migrations_dir, "MIGRATIONS_DIR", "migrations", 0)                                         \
    STR(redis_url, "REDIS_URL", NULL, 1)                                                           \
    /* auth */                                                                                     \
    STR(jwt_secret, "JWT_SECRET", NULL, 1)                                                         \
    STR(jwt_key_id, "JWT_KEY_ID", "k1", 0)                                                         \
    STR(jwt_previous_keys, "JWT_PREVIOUS_KEYS", NULL, 1)                                           \
    INT(int64_t, access_token_ttl, "ACCESS_TOKEN_TTL", 900, 10, 86400)                             \
    INT(int64_t, refresh_token_ttl, "REFRESH_TOKEN_TTL", 30 * 86400, 60, 365LL * 86400)            \
    INT(int, bcrypt_cost, "BCRYPT_COST", 10, 4, 15)                                                \
    BOOL(require_verified_email, "REQUIRE_VERIFIED_EMAIL", 0)                                      \
    INT(int64_t, user_cache_ttl_ms, "USER_CACHE_TTL_MS", 5000, 0, 600000)                          \
    /* mail and jobs */                                                                            \
    STR(app_base_url, "APP_BASE_URL", NULL, 0) /* computed: http://localhost:PORT */               \
    STR(smtp_url, "SMTP_URL", NULL, 1)                                                             \
    CUSTOM(int, smtp_starttls, "SMTP_STARTTLS", "require")                                         \
    STR(smtp_ca_file, "SMTP_CA_FILE", NULL, 0)                                                     \
    STR(mail_from, "MAIL_FROM", "taskapi <no-reply@localhost>", 0)                                 \
    STR(mail_dir, "MAIL_DIR", "var/mail", 0)                                                       \
    BOOL(mail_disabled, "MAIL_DISABLED", 0)                                                        \
    INT(int, job_poll_ms, "JOB_POLL_MS", 500, 10, 60000)                                           \
    INT(int, job_backoff_base_ms, "JOB_BACKOFF_BASE_MS", 2000, 10, 3600000)                        \
    INT(int, job_lease_ms, "JOB_LEASE_MS", 60000, 1000, 86400000)                                  \
    /* logs and process */                                                                         \
    CUSTOM(int, log_level, "LOG_LEVEL", "info")                                                    \
    CUSTOM(int, log_json, "LOG_FORMAT", "text")                                                    \
    STR(log_file, "LOG_FILE", NULL, 0)                                                             \
    STR(pid_file, "PID_FILE", NULL, 0) /* computed: $XDG_RUNTIME_DIR|/tmp/taskapi-PORT.pid */      \
    INT(int, shutdown_timeout_ms, "SHUTDOWN_TIMEOUT_MS", 20000, 100, 3600000)                      \
    INT(int, shutdown_drain_ms, "SHUTDOWN_DRAIN_MS", 0, 0, 600000)                                 \
    CUSTOM(int, production, "TASKAPI_ENV", "development")                                          \
    /* scripts and plugins */                                                                      \
    STR(scripts_dir, "SCRIPTS_DIR", "scripts", 0)                                                  \
    STR(web_dir, "WEB_DIR", "web", 0)                                                              \
    STR(plugins_dir, "PLUGINS_DIR", "plugins", 0)                                                  \
    STR(plugins, "PLUGINS", NULL, 0)                                                               \
    STR(plugins_config_path, "PLUGINS_CONFIG", NULL, 0)                                            \
    BOOL(watch_scripts, "WATCH_SCRIPTS", 1)                                                        \
    INT(int, reload_debounce_ms, "RELOAD_DEBOUNCE_MS", 200, 10, 60000)                             \
    CUSTOM(size_t, lua_memory_limit, "LUA_MEMORY_LIMIT", "256mb")                                  \
    INT(long long, lua_instruction_budget, "LUA_INSTRUCTION_BUDGET", 100000000LL, 100000LL,        \
        1000000000000LL)                                                                           \
    /* realtime */                                                                                 \
    INT(int, ws_port, "WS_PORT", 8081, 1, 65535)                                                   \
    INT(int, ws_handshake_timeout, "WS_HANDSHAKE_TIMEOUT", 5, 1, 300)                              \
    INT(int, ws_auth_timeout, "WS_AUTH_TIMEOUT", 10, 1, 600)                                       \
    INT(int, ws_message_timeout, "WS_MESSAGE_TIMEOUT", 10, 1, 600)                                 \
    INT(int, ws_max_message, "WS_MAX_MESSAGE", 65536, 8192, 1000000)                               \
    INT(int, ws_max_pending_per_ip, "WS_MAX_PENDING_PER_IP", 16, 0, 100000)                        \
    INT(int, ws_max_conn_per_ip, "WS_MAX_CONN_PER_IP", 256, 0, 1000000)                            \
    INT(int, ws_max_conn_per_user, "WS_MAX_CONN_PER_USER", 32, 0, 100000)                          \
    /* tests and profiling */                                                                      \
    BOOL(debug_queries, "TASKAPI_DEBUG_QUERIES", 0)                                                \
    STR(lua_profile, "TASKAPI_LUA_PROFILE", NULL, 0)                                               \
    INT(int, lua_profile_hz, "TASKAPI_LUA_PROFILE_HZ", 1000, 1, 10000)                             \
    STR(trace_stages, "TASKAPI_TRACE_STAGES", NULL, 0)                                             \
    STR(ws_trace, "TASKAPI_WS_TRACE", NULL, 0)

#endif
