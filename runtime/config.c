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

static int get_bool(const char *name, int def, int *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    *out = def;
    if (v == NULL || *v == '\0')
        return TK_OK;
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "on") ||
        !strcasecmp(v, "yes")) {
        *out = 1;
        return TK_OK;
    }
    if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
        !strcasecmp(v, "no")) {
        *out = 0;
        return TK_OK;
    }
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
#define SECRET_NAME(field, name, def, secret) secret ? name : NULL,
#define NO_INT(type, field, name, def, min, max)
#define NO_BOOL(field, name, def)
#define NO_CUSTOM(type, field, name, def)
/* One entry per string variable of the table: its name when it is a secret,
 * else NULL. */
static const char *const SECRET_VARS[] = {TK_CONFIG_VARS(NO_INT, SECRET_NAME, NO_BOOL, NO_CUSTOM)};
#define NSECRETS TK_ARRAY_LEN(SECRET_VARS)

/* Reads every NAME_FILE that is set into files[i] (the caller frees them with
 * free_secret_files). */
static int read_secret_files(char *files[NSECRETS], char *err, size_t errlen)
{
    for (size_t i = 0; i < NSECRETS; i++) {
        if (SECRET_VARS[i] == NULL)
            continue;
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
        if (files[i] && SECRET_VARS[i] && strcmp(SECRET_VARS[i], name) == 0)
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

/* ---- the table (config_vars.h) ---------------------------------------------- */

#define VAR_ENTRY_INT(type, field, name, def, min, max) {name, NULL, 1, min, max},
#define VAR_ENTRY_STR(field, name, def, secret) {name, secret ? name "_FILE" : NULL, 0, 0, 0},
#define VAR_ENTRY_BOOL(field, name, def) {name, NULL, 0, 0, 0},
#define VAR_ENTRY_CUSTOM(type, field, name, def) {name, NULL, 0, 0, 0},
const tk_config_var tk_config_vars[] = {
    TK_CONFIG_VARS(VAR_ENTRY_INT, VAR_ENTRY_STR, VAR_ENTRY_BOOL, VAR_ENTRY_CUSTOM)};
const size_t tk_config_nvars = TK_ARRAY_LEN(tk_config_vars);

/* Integers, strings and switches straight from the table; what needs more
 * than a range or a default is done by the functions below. */
static int load_table(tk_config *cfg, char *const files[NSECRETS], char *err, size_t errlen)
{
    int rc;
    long long n;
#define LOAD_INT(type, field, name, def, min, max)                                                 \
    if ((rc = get_int(name, def, min, max, &n, err, errlen)) != TK_OK)                             \
        return rc;                                                                                 \
    cfg->field = (type)n;
#define LOAD_STR(field, name, def, secret)                                                         \
    if ((rc = get_str(env_value(files, name), def, &cfg->field)) != TK_OK)                         \
        return rc;
#define LOAD_BOOL(field, name, def)                                                                \
    if ((rc = get_bool(name, def, &cfg->field, err, errlen)) != TK_OK)                             \
        return rc;
#define LOAD_CUSTOM(type, field, name, def)
    TK_CONFIG_VARS(LOAD_INT, LOAD_STR, LOAD_BOOL, LOAD_CUSTOM)
#undef LOAD_INT
#undef LOAD_STR
#undef LOAD_BOOL
#undef LOAD_CUSTOM
    return TK_OK;
}

/* The HTTP edge: HOST, METRICS_TOKEN, TLS_CERT_FILE and TLS_KEY_FILE,
 * TRUST_PROXY, BODY_LIMIT. */
static int check_edge(tk_config *cfg, char *err, size_t errlen)
{
    unsigned char bin[16];
    if (cfg->host && inet_pton(AF_INET, cfg->host, bin) != 1 &&
        inet_pton(AF_INET6, cfg->host, bin) != 1) {
        tk_errf(err, errlen,
                "HOST must be an IPv4 or IPv6 address such as 127.0.0.1 (got \"%.200s\")",
                cfg->host);
        return TK_ECONFIG;
    }
    if (cfg->metrics_token && strlen(cfg->metrics_token) < 16) {
        tk_errf(err, errlen, "METRICS_TOKEN must be at least 16 characters");
        return TK_ECONFIG;
    }
    if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL)) {
        tk_errf(err, errlen, "TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither");
        return TK_ECONFIG;
    }
    char why[160];
    int rc = tk_cidr_list_parse(cfg->trust_proxy, &cfg->trust_nets, why, sizeof why);
    if (rc == TK_EINVAL) {
        tk_errf(err, errlen,
                "TRUST_PROXY must be a comma list of IPv4/IPv6 addresses and CIDR blocks (%s)",
                why);
        return TK_ECONFIG;
    }
    if (rc)
        return rc;
    const char *bl = getenv("BODY_LIMIT");
    cfg->body_limit = 1024 * 1024;
    if (bl && *bl && tk_config_parse_size(bl, &cfg->body_limit) != TK_OK) {
        tk_errf(err, errlen, "BODY_LIMIT must be a size such as 1048576, 512kb or 1mb (got \"%s\")",
                bl);
        return TK_ECONFIG;
    }
    return TK_OK;
}

/* The mail settings: SMTP_URL, SMTP_STARTTLS, MAIL_FROM, MAIL_DISABLED;
 * production needs SMTP_URL unless mail is switched off on purpose. */
static int check_mail(tk_config *cfg, char *err, size_t errlen)
{
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
    if (tk_mail_mailbox_check(cfg->mail_from) != TK_OK) {
        tk_errf(err, errlen,
                "MAIL_FROM must be an address (no-reply@example.com) or a name and an address "
                "(Example <no-reply@example.com>) (got \"%.200s\")",
                cfg->mail_from);
        return TK_ECONFIG;
    }
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
}

/* Scripts and plugins: PLUGINS, the PLUGINS_CONFIG file, LUA_MEMORY_LIMIT. */
static int check_scripts(tk_config *cfg, char *err, size_t errlen)
{
    if (cfg->plugins && !plugin_list_ok(cfg->plugins)) {
        tk_errf(err, errlen,
                "PLUGINS must be a comma list of plugin names ([a-z0-9_-], up to 64 chars; got "
                "\"%.200s\")",
                cfg->plugins);
        return TK_ECONFIG;
    }
    if (cfg->plugins_config_path) {
        int rc = read_small_file("PLUGINS_CONFIG", cfg->plugins_config_path, PLUGINS_CONFIG_MAX,
                                 &cfg->plugins_config, err, errlen);
        if (rc)
            return rc;
    }
    const char *ml = getenv("LUA_MEMORY_LIMIT");
    cfg->lua_memory_limit = 256u * 1024 * 1024;
    if (ml && *ml &&
        (tk_config_parse_size(ml, &cfg->lua_memory_limit) != TK_OK ||
         cfg->lua_memory_limit < 16u * 1024 * 1024)) {
        tk_errf(err, errlen,
                "LUA_MEMORY_LIMIT must be a size of at least 16mb, such as 256mb (got \"%s\")", ml);
        return TK_ECONFIG;
    }
    return TK_OK;
}

/* LOG_LEVEL, LOG_FORMAT; the defaults made from other values (PID_FILE,
 * APP_BASE_URL); JWT_SECRET's rules. */
static int check_process(tk_config *cfg, char *err, size_t errlen)
{
    if (cfg->db_read_pool_size == 0)
        cfg->db_read_pool_size = cfg->db_pool_size;
    const char *ll = getenv("LOG_LEVEL");
    tk_log_level lvl = TK_LOG_INFO;
    if (ll && *ll && tk_log_level_parse(ll, &lvl) != TK_OK) {
        tk_errf(err, errlen, "LOG_LEVEL must be debug, info, warn or error (got \"%s\")", ll);
        return TK_ECONFIG;
    }
    cfg->log_level = (int)lvl;
    const char *lf = getenv("LOG_FORMAT");
    if (lf && *lf && strcmp(lf, "json") && strcmp(lf, "text")) {
        tk_errf(err, errlen, "LOG_FORMAT must be json or text (got \"%s\")", lf);
        return TK_ECONFIG;
    }
    cfg->log_json = lf && strcmp(lf, "json") == 0;

    /* An absolute default, so `taskapi reload` finds the server from any
     * directory: one file per port in the user's runtime directory. */
    if (cfg->pid_file == NULL) {
        const char *run_dir = getenv("XDG_RUNTIME_DIR");
        char pid_def[512];
        snprintf(pid_def, sizeof pid_def, "%s/taskapi-%d.pid",
                 run_dir && run_dir[0] == '/' && strlen(run_dir) < 400 ? run_dir : "/tmp",
                 cfg->port);
        if ((cfg->pid_file = strdup(pid_def)) == NULL)
            return TK_ENOMEM;
    }
    if (cfg->app_base_url == NULL) {
        char base[64];
        snprintf(base, sizeof base, "http://localhost:%d", cfg->port);
        if ((cfg->app_base_url = strdup(base)) == NULL)
            return TK_ENOMEM;
    }
    size_t n = strlen(cfg->app_base_url);
    while (n > 0 && cfg->app_base_url[n - 1] == '/')
        cfg->app_base_url[--n] = '\0';

    if (cfg->jwt_secret) {
        if (strlen(cfg->jwt_secret) < 16) {
            tk_errf(err, errlen, "JWT_SECRET must be at least 16 characters");
            return TK_ECONFIG;
        }
    } else if (cfg->production) {
        tk_errf(err, errlen, "JWT_SECRET is required when TASKAPI_ENV=production");
        return TK_ECONFIG;
    } else {
        if ((cfg->jwt_secret = malloc(TK_AUTH_TOKEN_LEN + 1)) == NULL)
            return TK_ENOMEM;
        if (tk_auth_random_token(cfg->jwt_secret, TK_AUTH_TOKEN_LEN + 1) != TK_OK) {
            tk_errf(err, errlen, "JWT_SECRET: could not generate a random secret");
            return TK_EIO;
        }
        cfg->jwt_secret_generated = 1;
    }
    return TK_OK;
}

int tk_config_load(tk_config *cfg, char *err, size_t errlen)
{
    int rc;
    char *files[NSECRETS] = {0};
    memset(cfg, 0, sizeof *cfg);
    const char *env = getenv("TASKAPI_ENV");
    cfg->production = env && strcmp(env, "production") == 0;
    if ((rc = read_secret_files(files, err, errlen)) == TK_OK &&
        (rc = load_table(cfg, files, err, errlen)) == TK_OK &&
        (rc = check_edge(cfg, err, errlen)) == TK_OK &&
        (rc = check_scripts(cfg, err, errlen)) == TK_OK &&
        (rc = check_process(cfg, err, errlen)) == TK_OK)
        rc = check_mail(cfg, err, errlen);
    free_secret_files(files);
    if (rc == TK_OK)
        return TK_OK;
    if (rc == TK_ENOMEM)
        tk_errf(err, errlen, "out of memory reading the configuration");
    tk_config_cleanup(cfg);
    return rc;
}

void tk_config_cleanup(tk_config *cfg)
{
    if (cfg->jwt_secret)
        explicit_bzero(cfg->jwt_secret, strlen(cfg->jwt_secret));
#define FREE_INT(type, field, name, def, min, max)
#define FREE_STR(field, name, def, secret)                                                         \
    free(cfg->field);                                                                              \
    cfg->field = NULL;
#define FREE_BOOL(field, name, def)
#define FREE_CUSTOM(type, field, name, def)
    TK_CONFIG_VARS(FREE_INT, FREE_STR, FREE_BOOL, FREE_CUSTOM)
#undef FREE_INT
#undef FREE_STR
#undef FREE_BOOL
#undef FREE_CUSTOM
    free(cfg->plugins_config);
    cfg->plugins_config = NULL;
    tk_cidr_list_free(cfg->trust_nets);
    cfg->trust_nets = NULL;
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
