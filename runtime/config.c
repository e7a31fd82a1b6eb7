/* Environment parsing: defaults, range checks, one clear error per bad value. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "http/cidr.h"
#include "jobs/mail.h"
#include "obs/log.h"

static int get_int(const char *name, long long def, long long min, long long max, long long *out,
                   char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        *out = def;
        return TK_OK;
    }
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max) {
        tk_errf(err, errlen, "%s must be an integer between %lld and %lld (got \"%s\")", name, min,
                max, v);
        return TK_ECONFIG;
    }
    *out = n;
    return TK_OK;
}

static int get_str(const char *v, const char *def, char **out)
{
    if (v == NULL || *v == '\0')
        v = def;
    if (v == NULL) {
        *out = NULL;
        return TK_OK;
    }
    *out = strdup(v);
    return *out ? TK_OK : TK_ENOMEM;
}

static int get_bool(const char *name, int *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    *out = 0;
    if (v == NULL || *v == '\0')
        return TK_OK;
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "on") ||
        !strcasecmp(v, "yes")) {
        *out = 1;
        return TK_OK;
    }
    if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
        !strcasecmp(v, "no"))
        return TK_OK;
    tk_errf(err, errlen, "%s must be on/off, true/false or 1/0 (got \"%s\")", name, v);
    return TK_ECONFIG;
}

int tk_config_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return TK_EINVAL;
    unsigned long long mul = 1;
    if (!strcasecmp(end, "") || !strcasecmp(end, "b"))
        mul = 1;
    else if (!strcasecmp(end, "kb") || !strcasecmp(end, "k"))
        mul = 1024;
    else if (!strcasecmp(end, "mb") || !strcasecmp(end, "m"))
        mul = 1024 * 1024;
    else
        return TK_EINVAL;
    if (n == 0 || n > (1ULL << 30) / mul)
        return TK_EINVAL;
    *out = (size_t)(n * mul);
    return TK_OK;
}

/* PLUGINS: names of [a-z0-9_-] (1..64 chars) separated by commas and
 * optional blanks. */
static int plugin_list_ok(const char *s)
{
    int len = 0, names = 0;
    for (const char *p = s;; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-') {
            if (++len > 64)
                return 0;
        } else if (c == ',' || c == '\0') {
            if (len == 0)
                return 0; /* an empty name: ",," or a trailing comma */
            names++;
            len = 0;
            if (c == '\0')
                return names > 0;
        } else if (c == ' ' || c == '\t') {
            /* blanks around names; "a b" is caught by the plugin loader */
        } else {
            return 0;
        }
    }
}

#define PLUGINS_CONFIG_MAX (1024 * 1024)
#define SECRET_FILE_MAX (64 * 1024)

/* Reads the file `path` named by variable `var` (for the messages) into a
 * malloc'd NUL-terminated string *out (the caller frees), refusing files
 * larger than `max` bytes or holding a NUL byte. The messages name the
 * variable and the path, never the content. */
static int read_small_file(const char *var, const char *path, size_t max, char **out, char *err,
                           size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        tk_errf(err, errlen, "%s: cannot read %s: %s", var, path, strerror(errno));
        return TK_ECONFIG;
    }
    int rc = TK_ECONFIG;
    char *buf = malloc(max + 1);
    if (buf == NULL) {
        rc = TK_ENOMEM;
        goto out;
    }
    size_t n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        tk_errf(err, errlen, "%s: cannot read %s: %s", var, path, strerror(errno));
        goto out;
    }
    if (n > max) {
        tk_errf(err, errlen, "%s: %s is larger than %zu bytes", var, path, max);
        goto out;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        tk_errf(err, errlen, "%s: %s contains a NUL byte", var, path);
        goto out;
    }
    *out = buf;
    buf = NULL;
    rc = TK_OK;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- secrets from files ----------------------------------------------------
 * Each of these may be given as NAME_FILE instead: the path of a file holding
 * the value (as container platforms mount secrets), trailing line breaks
 * stripped. Setting both NAME and NAME_FILE is an error. */
static const char *const SECRET_VARS[] = {"DATABASE_URL",      "REDIS_URL", "JWT_SECRET",
                                          "JWT_PREVIOUS_KEYS", "SMTP_URL",  "DATABASE_READ_URL"};
#define NSECRETS TK_ARRAY_LEN(SECRET_VARS)

/* Reads every NAME_FILE that is set into files[i] (the caller frees them with
 * free_secret_files). */
static int read_secret_files(char *files[NSECRETS], char *err, size_t errlen)
{
    for (size_t i = 0; i < NSECRETS; i++) {
        char fvar[64];
        snprintf(fvar, sizeof fvar, "%s_FILE", SECRET_VARS[i]);
        const char *path = getenv(fvar);
        if (path == NULL || *path == '\0')
            continue;
        const char *direct = getenv(SECRET_VARS[i]);
        if (direct && *direct) {
            tk_errf(err, errlen, "set %s or %s, not both", SECRET_VARS[i], fvar);
            return TK_ECONFIG;
        }
        int rc = read_small_file(fvar, path, SECRET_FILE_MAX, &files[i], err, errlen);
        if (rc)
            return rc;
        size_t n = strlen(files[i]);
        while (n > 0 && (files[i][n - 1] == '\n' || files[i][n - 1] == '\r'))
            files[i][--n] = '\0';
        if (n == 0) {
            tk_errf(err, errlen, "%s: %s is empty", fvar, path);
            return TK_ECONFIG;
        }
    }
    return TK_OK;
}

static void free_secret_files(char *files[NSECRETS])
{
    for (size_t i = 0; i < NSECRETS; i++) {
        if (files[i])
            explicit_bzero(files[i], strlen(files[i]));
        free(files[i]);
        files[i] = NULL;
    }
}

/* The value of variable `name`: from its _FILE when it is a secret given
 * that way, else from the environment (NULL when unset). */
static const char *env_value(char *const files[NSECRETS], const char *name)
{
    for (size_t i = 0; i < NSECRETS; i++)
        if (files[i] && strcmp(SECRET_VARS[i], name) == 0)
            return files[i];
    return getenv(name);
}

/* SMTP_URL: smtp:// or smtps:// and a host. The message never quotes the
 * value: it may carry a password. */
static int smtp_url_ok(const char *url)
{
    const char *rest;
    if (strncasecmp(url, "smtp://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "smtps://", 8) == 0)
        rest = url + 8;
    else
        return 0;
    const char *at = strrchr(rest, '@');
    const char *host = at ? at + 1 : rest;
    if (*host == '\0' || *host == '/' || *host == ':')
        return 0;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ')
            return 0;
    return 1;
}

#define INT_VAR(field, name, def, min, max)                                                        \
    do {                                                                                           \
        long long v_;                                                                              \
        rc = get_int(name, def, min, max, &v_, err, errlen);                                       \
        if (rc)                                                                                    \
            goto fail;                                                                             \
        cfg->field = v_;                                                                           \
    } while (0)

#define STR_VAR(field, name, def)                                                                  \
    do {                                                                                           \
        rc = get_str(env_value(files, name), def, &cfg->field);                                    \
        if (rc)                                                                                    \
            goto fail;                                                                             \
    } while (0)

/* The HTTP edge: HOST, METRICS_TOKEN, HTTP_HEADER_TIMEOUT, HTTP_CONN_PER_IP,
 * TLS_CERT_FILE and TLS_KEY_FILE. */
static int load_edge(tk_config *cfg, char *const files[NSECRETS], char *err, size_t errlen)
{
    int rc;
    unsigned char bin[16];
    STR_VAR(host, "HOST", NULL);
    if (cfg->host && inet_pton(AF_INET, cfg->host, bin) != 1 &&
        inet_pton(AF_INET6, cfg->host, bin) != 1) {
        tk_errf(err, errlen,
                "HOST must be an IPv4 or IPv6 address such as 127.0.0.1 (got \"%.200s\")",
                cfg->host);
        return TK_ECONFIG;
    }
    STR_VAR(metrics_token, "METRICS_TOKEN", NULL);
    if (cfg->metrics_token && strlen(cfg->metrics_token) < 16) {
        tk_errf(err, errlen, "METRICS_TOKEN must be at least 16 characters");
        return TK_ECONFIG;
    }
    INT_VAR(http_header_timeout, "HTTP_HEADER_TIMEOUT", 10, 1, 3600);
    INT_VAR(http_conn_per_ip, "HTTP_CONN_PER_IP", 256, 0, 10000);
    STR_VAR(tls_cert_file, "TLS_CERT_FILE", NULL);
    STR_VAR(tls_key_file, "TLS_KEY_FILE", NULL);
    if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL)) {
        tk_errf(err, errlen, "TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither");
        return TK_ECONFIG;
    }
    return TK_OK;
fail:
    return rc;
}

/* The mail settings: SMTP_URL (or its _FILE), SMTP_STARTTLS, SMTP_CA_FILE,
 * MAIL_FROM, MAIL_DIR, MAIL_DISABLED; production needs SMTP_URL unless
 * mail is switched off on purpose. Runs after TASKAPI_ENV is read. */
static int mail_vars(tk_config *cfg, char *const files[NSECRETS], char *err, size_t errlen)
{
    int rc;
    STR_VAR(smtp_url, "SMTP_URL", NULL);
    if (cfg->smtp_url && !smtp_url_ok(cfg->smtp_url)) {
        tk_errf(err, errlen,
                "SMTP_URL must be smtp://[user:password@]host[:port] or smtps://... (value not "
                "shown: it may hold a password)");
        return TK_ECONFIG;
    }
    const char *st = getenv("SMTP_STARTTLS");
    cfg->smtp_starttls = TK_SMTP_STARTTLS_REQUIRE;
    if (st && *st) {
        if (strcasecmp(st, "require") == 0)
            cfg->smtp_starttls = TK_SMTP_STARTTLS_REQUIRE;
        else if (strcasecmp(st, "try") == 0)
            cfg->smtp_starttls = TK_SMTP_STARTTLS_TRY;
        else if (strcasecmp(st, "off") == 0)
            cfg->smtp_starttls = TK_SMTP_STARTTLS_OFF;
        else {
            tk_errf(err, errlen, "SMTP_STARTTLS must be require, try or off (got \"%.64s\")", st);
            return TK_ECONFIG;
        }
    }
    STR_VAR(smtp_ca_file, "SMTP_CA_FILE", NULL);
    STR_VAR(mail_from, "MAIL_FROM", "taskapi <no-reply@localhost>");
    if (tk_mail_mailbox_check(cfg->mail_from) != TK_OK) {
        tk_errf(err, errlen,
                "MAIL_FROM must be an address (no-reply@example.com) or a name and an address "
                "(Example <no-reply@example.com>) (got \"%.200s\")",
                cfg->mail_from);
        return TK_ECONFIG;
    }
    STR_VAR(mail_dir, "MAIL_DIR", "var/mail");
    rc = get_bool("MAIL_DISABLED", &cfg->mail_disabled, err, errlen);
    if (rc)
        return rc;
    if (cfg->mail_disabled && cfg->smtp_url) {
        tk_errf(err, errlen, "MAIL_DISABLED is on but SMTP_URL is set: choose one");
        return TK_ECONFIG;
    }
    if (cfg->production && !cfg->smtp_url && !cfg->mail_disabled) {
        tk_errf(err, errlen,
                "SMTP_URL is required when TASKAPI_ENV=production (or set MAIL_DISABLED=on to "
                "send no mail at all)");
        return TK_ECONFIG;
    }
    return TK_OK;
fail:
    return rc;
}

int tk_config_load(tk_config *cfg, char *err, size_t errlen)
{
    int rc;
    char *files[NSECRETS] = {0};
    memset(cfg, 0, sizeof *cfg);
    rc = read_secret_files(files, err, errlen);
    if (rc)
        goto fail;

    const char *env = getenv("TASKAPI_ENV");
    cfg->production = env && strcmp(env, "production") == 0;

    INT_VAR(port, "PORT", 8080, 1, 65535);
    INT_VAR(workers, "WORKERS", 16, 1, 1024);
    STR_VAR(database_url, "DATABASE_URL", NULL);
    INT_VAR(db_pool_size, "DB_POOL_SIZE", 20, 1, 1000);
    INT_VAR(db_pool_timeout_ms, "DB_POOL_TIMEOUT_MS", 5000, 10, 600000);
    STR_VAR(database_read_url, "DATABASE_READ_URL", NULL);
    INT_VAR(db_read_pool_size, "DB_READ_POOL_SIZE", cfg->db_pool_size, 1, 1000);
    INT_VAR(read_your_writes_ms, "READ_YOUR_WRITES_MS", 5000, 0, 3600000);
    INT_VAR(replica_max_lag_ms, "REPLICA_MAX_LAG_MS", 2000, 0, 3600000);
    INT_VAR(replica_check_ms, "REPLICA_CHECK_MS", 1000, 50, 600000);
    STR_VAR(redis_url, "REDIS_URL", NULL);
    STR_VAR(jwt_key_id, "JWT_KEY_ID", "k1");
    STR_VAR(jwt_previous_keys, "JWT_PREVIOUS_KEYS", NULL);
    INT_VAR(access_token_ttl, "ACCESS_TOKEN_TTL", 900, 10, 86400);
    INT_VAR(refresh_token_ttl, "REFRESH_TOKEN_TTL", 30 * 86400, 60, 365LL * 86400);
    STR_VAR(cors_origins, "CORS_ORIGINS", NULL);
    STR_VAR(trust_proxy, "TRUST_PROXY", NULL);
    {
        char why[160];
        rc = tk_cidr_list_parse(cfg->trust_proxy, &cfg->trust_nets, why, sizeof why);
        if (rc == TK_EINVAL) {
            tk_errf(err, errlen,
                    "TRUST_PROXY must be a comma list of IPv4/IPv6 addresses and CIDR blocks "
                    "(%s)",
                    why);
            rc = TK_ECONFIG;
        }
        if (rc)
            goto fail;
    }
    INT_VAR(user_cache_ttl_ms, "USER_CACHE_TTL_MS", 5000, 0, 600000);
    STR_VAR(scripts_dir, "SCRIPTS_DIR", "scripts");
    STR_VAR(web_dir, "WEB_DIR", "web");
    STR_VAR(plugins_dir, "PLUGINS_DIR", "plugins");
    STR_VAR(migrations_dir, "MIGRATIONS_DIR", "migrations");
    INT_VAR(ws_port, "WS_PORT", 8081, 1, 65535);
    /* realtime edge limits (ws/server.c) */
    INT_VAR(ws_handshake_timeout, "WS_HANDSHAKE_TIMEOUT", 5, 1, 300);
    INT_VAR(ws_auth_timeout, "WS_AUTH_TIMEOUT", 10, 1, 600);
    INT_VAR(ws_message_timeout, "WS_MESSAGE_TIMEOUT", 10, 1, 600);
    INT_VAR(ws_max_message, "WS_MAX_MESSAGE", 65536, 8192, 1000000);
    INT_VAR(ws_max_pending_per_ip, "WS_MAX_PENDING_PER_IP", 16, 0, 100000);
    INT_VAR(ws_max_conn_per_ip, "WS_MAX_CONN_PER_IP", 256, 0, 1000000);
    INT_VAR(ws_max_conn_per_user, "WS_MAX_CONN_PER_USER", 32, 0, 100000);
    INT_VAR(rate_limit_per_min, "RATE_LIMIT_PER_MIN", 100, 1, 2000000000);
    INT_VAR(auth_rate_limit_per_min, "AUTH_RATE_LIMIT_PER_MIN", 10, 1, 2000000000);
    INT_VAR(bcrypt_cost, "BCRYPT_COST", 10, 4, 15);
    INT_VAR(job_poll_ms, "JOB_POLL_MS", 500, 10, 60000);
    INT_VAR(job_backoff_base_ms, "JOB_BACKOFF_BASE_MS", 2000, 10, 3600000);
    STR_VAR(plugins, "PLUGINS", NULL);
    if (cfg->plugins && !plugin_list_ok(cfg->plugins)) {
        tk_errf(err, errlen,
                "PLUGINS must be a comma list of plugin names ([a-z0-9_-], up to 64 chars; got "
                "\"%.200s\")",
                cfg->plugins);
        rc = TK_ECONFIG;
        goto fail;
    }
    STR_VAR(plugins_config_path, "PLUGINS_CONFIG", NULL);
    if (cfg->plugins_config_path) {
        rc = read_small_file("PLUGINS_CONFIG", cfg->plugins_config_path, PLUGINS_CONFIG_MAX,
                             &cfg->plugins_config, err, errlen);
        if (rc)
            goto fail;
    }
    INT_VAR(lua_instruction_budget, "LUA_INSTRUCTION_BUDGET", 100000000LL, 100000LL,
            1000000000000LL);
    rc = get_bool("REQUIRE_VERIFIED_EMAIL", &cfg->require_verified_email, err, errlen);
    if (rc)
        goto fail;
    /* An absolute default, so `taskapi reload` finds the server from any
     * directory: one file per port in the user's runtime directory. */
    const char *run_dir = getenv("XDG_RUNTIME_DIR");
    char pid_def[512];
    snprintf(pid_def, sizeof pid_def, "%s/taskapi-%d.pid",
             run_dir && run_dir[0] == '/' && strlen(run_dir) < 400 ? run_dir : "/tmp", cfg->port);
    STR_VAR(pid_file, "PID_FILE", pid_def);
    STR_VAR(log_file, "LOG_FILE", NULL);
    INT_VAR(reload_debounce_ms, "RELOAD_DEBOUNCE_MS", 200, 10, 60000);
    INT_VAR(shutdown_timeout_ms, "SHUTDOWN_TIMEOUT_MS", 20000, 100, 3600000);
    INT_VAR(shutdown_drain_ms, "SHUTDOWN_DRAIN_MS", 0, 0, 600000);
    cfg->watch_scripts = 1;
    if (getenv("WATCH_SCRIPTS") && *getenv("WATCH_SCRIPTS")) {
        rc = get_bool("WATCH_SCRIPTS", &cfg->watch_scripts, err, errlen);
        if (rc)
            goto fail;
    }
    rc = get_bool("TASKAPI_DEBUG_QUERIES", &cfg->debug_queries, err, errlen);
    if (rc)
        goto fail;
    /* profiling (bench/profile.sh): off unless a file is named */
    STR_VAR(lua_profile, "TASKAPI_LUA_PROFILE", NULL);
    INT_VAR(lua_profile_hz, "TASKAPI_LUA_PROFILE_HZ", 1000, 1, 10000);
    STR_VAR(trace_stages, "TASKAPI_TRACE_STAGES", NULL);
    STR_VAR(ws_trace, "TASKAPI_WS_TRACE", NULL);
    rc = load_edge(cfg, files, err, errlen);
    if (rc)
        goto fail;

    const char *ml = getenv("LUA_MEMORY_LIMIT");
    cfg->lua_memory_limit = 256u * 1024 * 1024;
    if (ml && *ml &&
        (tk_config_parse_size(ml, &cfg->lua_memory_limit) != TK_OK ||
         cfg->lua_memory_limit < 16u * 1024 * 1024)) {
        tk_errf(err, errlen,
                "LUA_MEMORY_LIMIT must be a size of at least 16mb, such as 256mb (got \"%s\")", ml);
        rc = TK_ECONFIG;
        goto fail;
    }

    const char *bl = getenv("BODY_LIMIT");
    cfg->body_limit = 1024 * 1024;
    if (bl && *bl && tk_config_parse_size(bl, &cfg->body_limit) != TK_OK) {
        tk_errf(err, errlen, "BODY_LIMIT must be a size such as 1048576, 512kb or 1mb (got \"%s\")",
                bl);
        rc = TK_ECONFIG;
        goto fail;
    }

    const char *ll = getenv("LOG_LEVEL");
    tk_log_level lvl = TK_LOG_INFO;
    if (ll && *ll && tk_log_level_parse(ll, &lvl) != TK_OK) {
        tk_errf(err, errlen, "LOG_LEVEL must be debug, info, warn or error (got \"%s\")", ll);
        rc = TK_ECONFIG;
        goto fail;
    }
    cfg->log_level = (int)lvl;
    const char *lf = getenv("LOG_FORMAT");
    if (lf && *lf && strcmp(lf, "json") && strcmp(lf, "text")) {
        tk_errf(err, errlen, "LOG_FORMAT must be json or text (got \"%s\")", lf);
        rc = TK_ECONFIG;
        goto fail;
    }
    cfg->log_json = lf && strcmp(lf, "json") == 0;

    char base[64];
    snprintf(base, sizeof base, "http://localhost:%d", cfg->port);
    STR_VAR(app_base_url, "APP_BASE_URL", base);
    size_t bl_len = strlen(cfg->app_base_url);
    while (bl_len > 0 && cfg->app_base_url[bl_len - 1] == '/')
        cfg->app_base_url[--bl_len] = '\0';

    const char *secret = env_value(files, "JWT_SECRET");
    if (secret && *secret) {
        if (strlen(secret) < 16) {
            tk_errf(err, errlen, "JWT_SECRET must be at least 16 characters");
            rc = TK_ECONFIG;
            goto fail;
        }
        cfg->jwt_secret = strdup(secret);
    } else if (cfg->production) {
        tk_errf(err, errlen, "JWT_SECRET is required when TASKAPI_ENV=production");
        rc = TK_ECONFIG;
        goto fail;
    } else {
        cfg->jwt_secret = malloc(TK_AUTH_TOKEN_LEN + 1);
        if (cfg->jwt_secret &&
            tk_auth_random_token(cfg->jwt_secret, TK_AUTH_TOKEN_LEN + 1) != TK_OK) {
            tk_errf(err, errlen, "JWT_SECRET: could not generate a random secret");
            rc = TK_EIO;
            goto fail;
        }
        cfg->jwt_secret_generated = 1;
    }
    if (cfg->jwt_secret == NULL) {
        rc = TK_ENOMEM;
        goto fail;
    }
    rc = mail_vars(cfg, files, err, errlen);
    if (rc)
        goto fail;
    free_secret_files(files);
    return TK_OK;
fail:
    if (rc == TK_ENOMEM)
        tk_errf(err, errlen, "out of memory reading the configuration");
    free_secret_files(files);
    tk_config_cleanup(cfg);
    return rc;
}

void tk_config_cleanup(tk_config *cfg)
{
    char **strs[] = {
        &cfg->database_url,      &cfg->redis_url,    &cfg->jwt_secret,   &cfg->jwt_key_id,
        &cfg->jwt_previous_keys, &cfg->cors_origins, &cfg->smtp_url,     &cfg->mail_from,
        &cfg->trust_proxy,       &cfg->app_base_url, &cfg->scripts_dir,  &cfg->plugins_dir,
        &cfg->migrations_dir,    &cfg->pid_file,     &cfg->plugins,      &cfg->plugins_config_path,
        &cfg->plugins_config,    &cfg->web_dir,      &cfg->smtp_ca_file, &cfg->mail_dir,
        &cfg->log_file,          &cfg->lua_profile,  &cfg->trace_stages, &cfg->ws_trace,
        &cfg->database_read_url};
    for (size_t i = 0; i < TK_ARRAY_LEN(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    tk_cidr_list_free(cfg->trust_nets);
    cfg->trust_nets = NULL;
    free(cfg->host);
    cfg->host = NULL;
    free(cfg->metrics_token);
    cfg->metrics_token = NULL;
    free(cfg->tls_cert_file);
    cfg->tls_cert_file = NULL;
    free(cfg->tls_key_file);
    cfg->tls_key_file = NULL;
}

/* 1 when `item` is one of the comma-separated entries of `list`. */
static int list_has(const char *list, const char *item)
{
    if (list == NULL || item == NULL || *item == '\0')
        return 0;
    size_t ilen = strlen(item);
    const char *p = list;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        if ((size_t)(end - start) == ilen && strncmp(start, item, ilen) == 0)
            return 1;
    }
    return 0;
}

int tk_config_origin_allowed(const tk_config *cfg, const char *origin)
{
    return list_has(cfg->cors_origins, origin);
}

int tk_config_is_app_origin(const tk_config *cfg, const char *origin)
{
    if (cfg->app_base_url == NULL || origin == NULL || *origin == '\0')
        return 0;
    const char *u = cfg->app_base_url, *scheme = strstr(u, "://");
    if (scheme == NULL)
        return 0;
    size_t n = strcspn(scheme + 3, "/?#") + (size_t)(scheme + 3 - u);
    return strlen(origin) == n && strncasecmp(origin, u, n) == 0;
}

int tk_config_proxy_trusted(const tk_config *cfg, const char *addr)
{
    return tk_cidr_list_match(cfg->trust_nets, addr);
}
