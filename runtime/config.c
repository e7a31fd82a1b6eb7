/* Environment parsing: defaults, range checks, one clear error per bad value. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
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

static int get_str(const char *name, const char *def, char **out)
{
    const char *v = getenv(name);
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

/* Reads PLUGINS_CONFIG once at start-up: plugin settings change with a
 * restart, like every other variable. The JSON is parsed and checked by the
 * plugin loader (scripts/lib/plugins.lua), so `taskapi check` reports it. */
static int read_plugins_config(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        tk_errf(err, errlen, "PLUGINS_CONFIG: cannot read %s: %s", path, strerror(errno));
        return TK_ECONFIG;
    }
    int rc = TK_ECONFIG;
    char *buf = malloc(PLUGINS_CONFIG_MAX + 1);
    if (buf == NULL) {
        rc = TK_ENOMEM;
        goto out;
    }
    size_t n = fread(buf, 1, PLUGINS_CONFIG_MAX + 1, f);
    if (ferror(f)) {
        tk_errf(err, errlen, "PLUGINS_CONFIG: cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (n > PLUGINS_CONFIG_MAX) {
        tk_errf(err, errlen, "PLUGINS_CONFIG: %s is larger than 1 MiB", path);
        goto out;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        tk_errf(err, errlen, "PLUGINS_CONFIG: %s contains a NUL byte", path);
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
        rc = get_str(name, def, &cfg->field);                                                      \
        if (rc)                                                                                    \
            goto fail;                                                                             \
    } while (0)

int tk_config_load(tk_config *cfg, char *err, size_t errlen)
{
    int rc;
    memset(cfg, 0, sizeof *cfg);

    const char *env = getenv("TASKAPI_ENV");
    cfg->production = env && strcmp(env, "production") == 0;

    INT_VAR(port, "PORT", 8080, 1, 65535);
    INT_VAR(workers, "WORKERS", 16, 1, 1024);
    STR_VAR(database_url, "DATABASE_URL", NULL);
    INT_VAR(db_pool_size, "DB_POOL_SIZE", 20, 1, 1000);
    INT_VAR(db_pool_timeout_ms, "DB_POOL_TIMEOUT_MS", 5000, 10, 600000);
    STR_VAR(redis_url, "REDIS_URL", NULL);
    STR_VAR(jwt_key_id, "JWT_KEY_ID", "k1");
    STR_VAR(jwt_previous_keys, "JWT_PREVIOUS_KEYS", NULL);
    INT_VAR(access_token_ttl, "ACCESS_TOKEN_TTL", 900, 10, 86400);
    INT_VAR(refresh_token_ttl, "REFRESH_TOKEN_TTL", 30 * 86400, 60, 365LL * 86400);
    STR_VAR(cors_origins, "CORS_ORIGINS", NULL);
    STR_VAR(trust_proxy, "TRUST_PROXY", NULL);
    STR_VAR(smtp_url, "SMTP_URL", NULL);
    STR_VAR(mail_from, "MAIL_FROM", "taskapi <no-reply@localhost>");
    STR_VAR(scripts_dir, "SCRIPTS_DIR", "scripts");
    STR_VAR(plugins_dir, "PLUGINS_DIR", "plugins");
    STR_VAR(migrations_dir, "MIGRATIONS_DIR", "migrations");
    INT_VAR(ws_port, "WS_PORT", 8081, 1, 65535);
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
        rc = read_plugins_config(cfg->plugins_config_path, &cfg->plugins_config, err, errlen);
        if (rc)
            goto fail;
    }
    INT_VAR(lua_instruction_budget, "LUA_INSTRUCTION_BUDGET", 100000000LL, 100000LL,
            1000000000000LL);
    rc = get_bool("REQUIRE_VERIFIED_EMAIL", &cfg->require_verified_email, err, errlen);
    if (rc)
        goto fail;
    STR_VAR(pid_file, "PID_FILE", "var/taskapi.pid");
    INT_VAR(reload_debounce_ms, "RELOAD_DEBOUNCE_MS", 200, 10, 60000);
    INT_VAR(shutdown_timeout_ms, "SHUTDOWN_TIMEOUT_MS", 20000, 100, 3600000);
    cfg->watch_scripts = 1;
    if (getenv("WATCH_SCRIPTS") && *getenv("WATCH_SCRIPTS")) {
        rc = get_bool("WATCH_SCRIPTS", &cfg->watch_scripts, err, errlen);
        if (rc)
            goto fail;
    }
    rc = get_bool("TASKAPI_DEBUG_QUERIES", &cfg->debug_queries, err, errlen);
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

    const char *secret = getenv("JWT_SECRET");
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
    return TK_OK;
fail:
    if (rc == TK_ENOMEM)
        tk_errf(err, errlen, "out of memory reading the configuration");
    tk_config_cleanup(cfg);
    return rc;
}

void tk_config_cleanup(tk_config *cfg)
{
    char **strs[] = {&cfg->database_url,  &cfg->redis_url,         &cfg->jwt_secret,
                     &cfg->jwt_key_id,    &cfg->jwt_previous_keys, &cfg->cors_origins,
                     &cfg->smtp_url,      &cfg->mail_from,         &cfg->app_base_url,
                     &cfg->scripts_dir,   &cfg->plugins_dir,       &cfg->migrations_dir,
                     &cfg->pid_file,      &cfg->plugins,           &cfg->plugins_config_path,
                     &cfg->plugins_config};
    for (size_t i = 0; i < TK_ARRAY_LEN(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
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

int tk_config_proxy_trusted(const tk_config *cfg, const char *addr)
{
    return list_has(cfg->trust_proxy, addr);
}
