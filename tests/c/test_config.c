/* Configuration from the environment (runtime/config.c): defaults in a clean
 * environment, every integer variable's range with the variable named in the
 * error, sizes, log settings, the JWT secret rules and the CORS origin list.
 * Every test starts from a clean environment (clean_env). */
#include <unistd.h>

#include "auth/auth.h"
#include "config.h"
#include "obs/log.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------ */

#define ASSERT_STR_HAS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (strstr(h_, n_) == NULL)                                                                \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", h_, n_);                                  \
    } while (0)

/* Every variable of the table (config_vars.h) and its _FILE form, and the
 * one the PID_FILE default reads. */
static void clean_env(void)
{
    for (size_t i = 0; i < tk_config_nvars; i++) {
        unsetenv(tk_config_vars[i].name);
        if (tk_config_vars[i].file_name)
            unsetenv(tk_config_vars[i].file_name);
    }
    unsetenv("XDG_RUNTIME_DIR");
}

/* Loads with a single variable set (on top of a clean environment) and
 * expects TK_ECONFIG with `name` in the message; the struct is left empty. */
static int load_fails(const char *name, const char *value, char *err, size_t errlen)
{
    tk_config cfg;
    clean_env();
    setenv(name, value, 1);
    int rc = tk_config_load(&cfg, err, errlen);
    unsetenv(name);
    if (rc == TK_OK) {
        tk_config_cleanup(&cfg);
        fprintf(stderr, "%s=\"%s\" was accepted\n", name, value);
        return 1;
    }
    if (rc != TK_ECONFIG) {
        fprintf(stderr, "%s=\"%s\": rc %d, expected TK_ECONFIG\n", name, value, rc);
        return 1;
    }
    if (strstr(err, name) == NULL) {
        fprintf(stderr, "%s=\"%s\": message does not name it: %s\n", name, value, err);
        return 1;
    }
    if (cfg.jwt_secret != NULL || cfg.scripts_dir != NULL || cfg.mail_from != NULL) {
        fprintf(stderr, "%s=\"%s\": strings left behind after failure\n", name, value);
        return 1;
    }
    return 0;
}

#define ASSERT_LOAD_FAILS(name, value)                                                             \
    do {                                                                                           \
        char e_[512] = "";                                                                         \
        if (load_fails((name), (value), e_, sizeof e_) != 0)                                       \
            TEST_FAIL_("ASSERT_LOAD_FAILS(%s, %s)", (name), (value));                              \
    } while (0)

/* Loads with name=value (clean environment otherwise); must succeed. */
#define LOAD_WITH(cfg, name, value)                                                                \
    do {                                                                                           \
        char e_[512] = "";                                                                         \
        clean_env();                                                                               \
        setenv((name), (value), 1);                                                                \
        int rc_ = tk_config_load(&(cfg), e_, sizeof e_);                                           \
        unsetenv(name);                                                                            \
        if (rc_ != TK_OK)                                                                          \
            TEST_FAIL_("%s=\"%s\": rc %d: %s", (name), (value), rc_, e_);                          \
    } while (0)

/* ---- defaults ----------------------------------------------------------- */

TEST(defaults_in_a_clean_environment)
{
    tk_config cfg;
    char err[256] = "";

    clean_env();
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(cfg.port, 8080);
    ASSERT_EQ_INT(cfg.workers, 16);
    ASSERT_NULL(cfg.database_url);
    ASSERT_EQ_INT(cfg.db_pool_size, 20);
    ASSERT_EQ_INT(cfg.db_pool_timeout_ms, 5000);
    ASSERT_NULL(cfg.redis_url);
    ASSERT_STR_EQ(cfg.jwt_key_id, "k1");
    ASSERT_NULL(cfg.jwt_previous_keys);
    ASSERT_EQ_INT(cfg.access_token_ttl, 900);
    ASSERT_EQ_INT(cfg.refresh_token_ttl, 30 * 86400);
    ASSERT_NULL(cfg.cors_origins);
    ASSERT_EQ_INT(cfg.body_limit, 1024 * 1024);
    ASSERT_NULL(cfg.smtp_url);
    ASSERT_EQ_INT(cfg.smtp_starttls, TK_SMTP_STARTTLS_REQUIRE);
    ASSERT_NULL(cfg.smtp_ca_file);
    ASSERT_STR_EQ(cfg.mail_dir, "var/mail");
    ASSERT_EQ_INT(cfg.mail_disabled, 0);
    ASSERT_STR_EQ(cfg.mail_from, "taskapi <no-reply@localhost>");
    ASSERT_STR_EQ(cfg.app_base_url, "http://localhost:8080");
    ASSERT_EQ_INT(cfg.log_level, TK_LOG_INFO);
    ASSERT_EQ_INT(cfg.log_json, 0);
    ASSERT_STR_EQ(cfg.scripts_dir, "scripts");
    ASSERT_STR_EQ(cfg.web_dir, "web");
    ASSERT_EQ_INT(cfg.ws_handshake_timeout, 5);
    ASSERT_EQ_INT(cfg.ws_auth_timeout, 10);
    ASSERT_EQ_INT(cfg.ws_message_timeout, 10);
    ASSERT_EQ_INT(cfg.ws_max_message, 65536);
    ASSERT_EQ_INT(cfg.ws_max_pending_per_ip, 16);
    ASSERT_EQ_INT(cfg.ws_max_conn_per_ip, 256);
    ASSERT_EQ_INT(cfg.ws_max_conn_per_user, 32);
    ASSERT_STR_EQ(cfg.plugins_dir, "plugins");
    ASSERT_STR_EQ(cfg.migrations_dir, "migrations");
    ASSERT_EQ_INT(cfg.ws_port, 8081);
    ASSERT_EQ_INT(cfg.rate_limit_per_min, 100);
    ASSERT_EQ_INT(cfg.auth_rate_limit_per_min, 10);
    ASSERT_EQ_INT(cfg.bcrypt_cost, 10);
    ASSERT_EQ_INT(cfg.require_verified_email, 0);
    ASSERT_EQ_INT(cfg.production, 0);
    ASSERT_EQ_INT(cfg.job_poll_ms, 500);
    ASSERT_EQ_INT(cfg.lua_instruction_budget, 100000000);
    ASSERT_STR_EQ(cfg.pid_file, "/tmp/taskapi-8080.pid"); /* XDG_RUNTIME_DIR unset */
    ASSERT_EQ_INT(cfg.watch_scripts, 1);
    ASSERT_EQ_INT(cfg.reload_debounce_ms, 200);
    ASSERT_EQ_INT(cfg.shutdown_timeout_ms, 20000);
    ASSERT_EQ_INT(cfg.debug_queries, 0);
    ASSERT_EQ_INT(cfg.user_cache_ttl_ms, 5000);
    ASSERT_NULL(cfg.database_read_url);
    ASSERT_EQ_INT(cfg.db_read_pool_size, 20); /* DB_POOL_SIZE's */
    ASSERT_EQ_INT(cfg.read_your_writes_ms, 5000);
    ASSERT_EQ_INT(cfg.replica_max_lag_ms, 2000);
    ASSERT_EQ_INT(cfg.replica_check_ms, 1000);
    ASSERT_NULL(cfg.trust_proxy);
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, "127.0.0.1"), 0);
    /* no JWT_SECRET outside production: a random one, flagged */
    ASSERT_NOT_NULL(cfg.jwt_secret);
    ASSERT_EQ_INT(cfg.jwt_secret_generated, 1);
    ASSERT_EQ_INT(strlen(cfg.jwt_secret), TK_AUTH_TOKEN_LEN);
    tk_config_cleanup(&cfg);
    ASSERT_NULL(cfg.jwt_secret);
    ASSERT_NULL(cfg.scripts_dir);
    tk_config_cleanup(&cfg); /* twice is harmless */
    return 0;
}

TEST(generated_secrets_differ)
{
    tk_config a, b;
    char err[256];

    clean_env();
    ASSERT_EQ_INT(tk_config_load(&a, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(tk_config_load(&b, err, sizeof err), TK_OK);
    ASSERT_STR_NE(a.jwt_secret, b.jwt_secret);
    tk_config_cleanup(&a);
    tk_config_cleanup(&b);
    return 0;
}

TEST(empty_values_mean_default)
{
    tk_config cfg;

    LOAD_WITH(cfg, "PORT", "");
    ASSERT_EQ_INT(cfg.port, 8080);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "SCRIPTS_DIR", "");
    ASSERT_STR_EQ(cfg.scripts_dir, "scripts");
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "JWT_SECRET", "");
    ASSERT_EQ_INT(cfg.jwt_secret_generated, 1);
    tk_config_cleanup(&cfg);
    return 0;
}

TEST(pid_file_default_is_absolute_and_per_port)
{
    tk_config cfg;
    char err[256];

    clean_env();
    setenv("PORT", "9000", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(cfg.pid_file, "/run/user/1000/taskapi-9000.pid");
    tk_config_cleanup(&cfg);
    setenv("XDG_RUNTIME_DIR", "relative/dir", 1); /* not absolute: ignored */
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(cfg.pid_file, "/tmp/taskapi-9000.pid");
    tk_config_cleanup(&cfg);
    clean_env();
    return 0;
}

TEST(values_are_read)
{
    tk_config cfg;
    char err[256] = "";

    clean_env();
    setenv("PORT", "9090", 1);
    setenv("WORKERS", "4", 1);
    setenv("DATABASE_URL", "postgresql://u@h/db", 1);
    setenv("DB_POOL_SIZE", "3", 1);
    setenv("REDIS_URL", "redis://localhost:6379", 1);
    setenv("JWT_SECRET", "0123456789abcdef", 1); /* exactly 16 */
    setenv("JWT_KEY_ID", "k9", 1);
    setenv("MAIL_FROM", "me <me@x>", 1);
    setenv("SCRIPTS_DIR", "/srv/scripts", 1);
    setenv("WEB_DIR", "/srv/web", 1);
    setenv("BCRYPT_COST", "4", 1);
    setenv("REQUIRE_VERIFIED_EMAIL", "on", 1);
    setenv("LOG_LEVEL", "WARN", 1);
    setenv("LOG_FORMAT", "json", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(cfg.port, 9090);
    ASSERT_EQ_INT(cfg.workers, 4);
    ASSERT_STR_EQ(cfg.database_url, "postgresql://u@h/db");
    ASSERT_EQ_INT(cfg.db_pool_size, 3);
    ASSERT_STR_EQ(cfg.redis_url, "redis://localhost:6379");
    ASSERT_STR_EQ(cfg.jwt_secret, "0123456789abcdef");
    ASSERT_EQ_INT(cfg.jwt_secret_generated, 0);
    ASSERT_STR_EQ(cfg.jwt_key_id, "k9");
    ASSERT_STR_EQ(cfg.mail_from, "me <me@x>");
    ASSERT_STR_EQ(cfg.scripts_dir, "/srv/scripts");
    ASSERT_STR_EQ(cfg.web_dir, "/srv/web");
    ASSERT_EQ_INT(cfg.bcrypt_cost, 4);
    ASSERT_EQ_INT(cfg.require_verified_email, 1);
    ASSERT_EQ_INT(cfg.log_level, TK_LOG_WARN);
    ASSERT_EQ_INT(cfg.log_json, 1);
    /* the default base URL follows PORT */
    ASSERT_STR_EQ(cfg.app_base_url, "http://localhost:9090");
    tk_config_cleanup(&cfg);
    clean_env();
    return 0;
}

TEST(app_base_url_loses_trailing_slashes)
{
    tk_config cfg;

    LOAD_WITH(cfg, "APP_BASE_URL", "https://app.example.com//");
    ASSERT_STR_EQ(cfg.app_base_url, "https://app.example.com");
    tk_config_cleanup(&cfg);
    return 0;
}

/* ---- integer ranges ----------------------------------------------------- */

/* Every integer of the table: one below its minimum, one above its maximum
 * and non-numbers are refused with the variable named. */
TEST(int_vars_out_of_range)
{
    char v[64];

    size_t ints = 0;
    for (size_t i = 0; i < tk_config_nvars; i++) {
        const tk_config_var *var = &tk_config_vars[i];
        const char *name = var->name;
        tk_config cfg;

        if (!var->is_int)
            continue;
        ints++;
        snprintf(v, sizeof v, "%lld", var->min - 1);
        ASSERT_LOAD_FAILS(name, v);
        snprintf(v, sizeof v, "%lld", var->max + 1);
        ASSERT_LOAD_FAILS(name, v);
        ASSERT_LOAD_FAILS(name, "abc");
        ASSERT_LOAD_FAILS(name, "12x");
        ASSERT_LOAD_FAILS(name, "1.5");
        ASSERT_LOAD_FAILS(name, "-");
        ASSERT_LOAD_FAILS(name, "99999999999999999999999"); /* overflows long long */

        /* the bounds themselves are accepted */
        snprintf(v, sizeof v, "%lld", var->min);
        LOAD_WITH(cfg, name, v);
        tk_config_cleanup(&cfg);
        snprintf(v, sizeof v, "%lld", var->max);
        LOAD_WITH(cfg, name, v);
        tk_config_cleanup(&cfg);
    }
    ASSERT(ints >= 25);
    return 0;
}

TEST(int_error_message)
{
    tk_config cfg;
    char err[256] = "";

    clean_env();
    setenv("PORT", "70000", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
    ASSERT_STR_EQ(err, "PORT must be an integer between 1 and 65535 (got \"70000\")");
    /* a NULL buffer is allowed */
    ASSERT_EQ_INT(tk_config_load(&cfg, NULL, 0), TK_ECONFIG);
    clean_env();
    return 0;
}

TEST(bool_var)
{
    static const char *const yes[] = {"1", "true", "TRUE", "on", "yes"};
    static const char *const no[] = {"0", "false", "off", "No"};
    tk_config cfg;

    for (size_t i = 0; i < TK_ARRAY_LEN(yes); i++) {
        LOAD_WITH(cfg, "REQUIRE_VERIFIED_EMAIL", yes[i]);
        ASSERT_EQ_INT(cfg.require_verified_email, 1);
        tk_config_cleanup(&cfg);
    }
    for (size_t i = 0; i < TK_ARRAY_LEN(no); i++) {
        LOAD_WITH(cfg, "REQUIRE_VERIFIED_EMAIL", no[i]);
        ASSERT_EQ_INT(cfg.require_verified_email, 0);
        tk_config_cleanup(&cfg);
    }
    ASSERT_LOAD_FAILS("REQUIRE_VERIFIED_EMAIL", "maybe");
    ASSERT_LOAD_FAILS("REQUIRE_VERIFIED_EMAIL", "2");
    /* WATCH_SCRIPTS defaults to on, so "off" must really turn it off */
    LOAD_WITH(cfg, "WATCH_SCRIPTS", "off");
    ASSERT_EQ_INT(cfg.watch_scripts, 0);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "WATCH_SCRIPTS", "on");
    ASSERT_EQ_INT(cfg.watch_scripts, 1);
    tk_config_cleanup(&cfg);
    ASSERT_LOAD_FAILS("WATCH_SCRIPTS", "sometimes");
    LOAD_WITH(cfg, "TASKAPI_DEBUG_QUERIES", "1");
    ASSERT_EQ_INT(cfg.debug_queries, 1);
    tk_config_cleanup(&cfg);
    ASSERT_LOAD_FAILS("TASKAPI_DEBUG_QUERIES", "sure");
    return 0;
}

/* ---- sizes -------------------------------------------------------------- */

TEST(body_limit)
{
    static const struct {
        const char *in;
        size_t bytes;
    } good[] = {
        {"1mb", 1024 * 1024},    {"512kb", 512 * 1024},           {"100", 100},
        {"100b", 100},           {"2MB", 2 * 1024 * 1024},        {"8k", 8192},
        {"3m", 3 * 1024 * 1024}, {"1024mb", 1024u * 1024 * 1024}, /* the 1 GiB ceiling itself */
    };
    static const char *const bad[] = {
        "garbage", "0", "0kb",    "-1",         "1gb",   "1.5mb",
        "mb",      "",  "1025mb", "1073741825", "12 kb", "99999999999999999999999",
    };
    tk_config cfg;
    size_t n;

    for (size_t i = 0; i < TK_ARRAY_LEN(good); i++) {
        n = 0;
        ASSERT_EQ_INT(tk_config_parse_size(good[i].in, &n), TK_OK);
        ASSERT_EQ_INT(n, good[i].bytes);
        LOAD_WITH(cfg, "BODY_LIMIT", good[i].in);
        ASSERT_EQ_INT(cfg.body_limit, good[i].bytes);
        tk_config_cleanup(&cfg);
    }
    for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
        n = 12345;
        if (tk_config_parse_size(bad[i], &n) != TK_EINVAL)
            TEST_FAIL_("tk_config_parse_size(\"%s\") accepted (%zu)", bad[i], n);
        ASSERT_EQ_INT(n, 12345); /* untouched on failure */
        if (bad[i][0] != '\0')   /* empty BODY_LIMIT means the default */
            ASSERT_LOAD_FAILS("BODY_LIMIT", bad[i]);
    }
    return 0;
}

TEST(body_limit_message)
{
    tk_config cfg;
    char err[256] = "";

    clean_env();
    setenv("BODY_LIMIT", "lots", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
    ASSERT_STR_EQ(err, "BODY_LIMIT must be a size such as 1048576, 512kb or 1mb (got \"lots\")");
    clean_env();
    return 0;
}

/* ---- logging ------------------------------------------------------------ */

TEST(log_settings)
{
    tk_config cfg;

    LOAD_WITH(cfg, "LOG_LEVEL", "debug");
    ASSERT_EQ_INT(cfg.log_level, TK_LOG_DEBUG);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "LOG_LEVEL", "error");
    ASSERT_EQ_INT(cfg.log_level, TK_LOG_ERROR);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "LOG_FORMAT", "text");
    ASSERT_EQ_INT(cfg.log_json, 0);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "LOG_FORMAT", "json");
    ASSERT_EQ_INT(cfg.log_json, 1);
    tk_config_cleanup(&cfg);

    ASSERT_LOAD_FAILS("LOG_LEVEL", "verbose");
    ASSERT_LOAD_FAILS("LOG_LEVEL", "warning");
    ASSERT_LOAD_FAILS("LOG_LEVEL", "3");
    ASSERT_LOAD_FAILS("LOG_FORMAT", "xml");
    ASSERT_LOAD_FAILS("LOG_FORMAT", "jsonl");
    return 0;
}

/* ---- the JWT secret ----------------------------------------------------- */

TEST(jwt_secret_rules)
{
    tk_config cfg;
    char err[256] = "";

    /* too short: refused, and the message does not echo the secret */
    clean_env();
    setenv("JWT_SECRET", "short-secret-15", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
    ASSERT_STR_HAS(err, "JWT_SECRET");
    ASSERT_STR_HAS(err, "16");
    ASSERT(strstr(err, "short-secret-15") == NULL);

    /* production without a secret: refused */
    clean_env();
    setenv("TASKAPI_ENV", "production", 1);
    err[0] = '\0';
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
    ASSERT_STR_HAS(err, "JWT_SECRET");
    ASSERT_STR_HAS(err, "production");

    /* production with one: accepted, not generated (mail switched off: see mail_rules) */
    setenv("JWT_SECRET", "a-long-enough-production-secret", 1);
    setenv("MAIL_DISABLED", "on", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(cfg.production, 1);
    ASSERT_EQ_INT(cfg.jwt_secret_generated, 0);
    ASSERT_STR_EQ(cfg.jwt_secret, "a-long-enough-production-secret");
    tk_config_cleanup(&cfg);

    /* any other TASKAPI_ENV is not production: a secret is generated */
    clean_env();
    setenv("TASKAPI_ENV", "staging", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(cfg.production, 0);
    ASSERT_EQ_INT(cfg.jwt_secret_generated, 1);
    ASSERT_EQ_INT(strlen(cfg.jwt_secret), TK_AUTH_TOKEN_LEN);
    tk_config_cleanup(&cfg);
    clean_env();
    return 0;
}

/* ---- mail ----------------------------------------------------------------- */

TEST(mail_rules)
{
    tk_config cfg;
    char err[512] = "";

    /* SMTP_URL: smtp:// or smtps:// with a host; the message never echoes it */
    static const char *const bad_urls[] = {"http://mail.example.com", "smtp://",
                                           "smtp://user:pw@",         "smtp://:25",
                                           "mail.example.com",        "smtp://user:pw@host name"};
    for (size_t i = 0; i < TK_ARRAY_LEN(bad_urls); i++) {
        ASSERT_LOAD_FAILS("SMTP_URL", bad_urls[i]);
        clean_env();
        setenv("SMTP_URL", bad_urls[i], 1);
        ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
        ASSERT(strstr(err, "pw") == NULL);
    }
    LOAD_WITH(cfg, "SMTP_URL", "smtp://mailer:p%40ss@mail.example.com:587");
    ASSERT_STR_EQ(cfg.smtp_url, "smtp://mailer:p%40ss@mail.example.com:587");
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "SMTP_URL", "SMTPS://mail.example.com");
    tk_config_cleanup(&cfg);

    LOAD_WITH(cfg, "SMTP_STARTTLS", "try");
    ASSERT_EQ_INT(cfg.smtp_starttls, TK_SMTP_STARTTLS_TRY);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "SMTP_STARTTLS", "OFF");
    ASSERT_EQ_INT(cfg.smtp_starttls, TK_SMTP_STARTTLS_OFF);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "SMTP_STARTTLS", "require");
    ASSERT_EQ_INT(cfg.smtp_starttls, TK_SMTP_STARTTLS_REQUIRE);
    tk_config_cleanup(&cfg);
    ASSERT_LOAD_FAILS("SMTP_STARTTLS", "yes");

    LOAD_WITH(cfg, "MAIL_FROM", "no-reply@example.com");
    tk_config_cleanup(&cfg);
    ASSERT_LOAD_FAILS("MAIL_FROM", "taskapi");
    ASSERT_LOAD_FAILS("MAIL_FROM", "x <a@b>\nBcc: v@example.com");
    LOAD_WITH(cfg, "MAIL_DIR", "/srv/mail");
    ASSERT_STR_EQ(cfg.mail_dir, "/srv/mail");
    tk_config_cleanup(&cfg);
    ASSERT_LOAD_FAILS("MAIL_DISABLED", "maybe");

    /* MAIL_DISABLED and SMTP_URL contradict each other */
    clean_env();
    setenv("MAIL_DISABLED", "on", 1);
    setenv("SMTP_URL", "smtp://mail.example.com", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
    ASSERT_STR_HAS(err, "MAIL_DISABLED");

    /* production: SMTP_URL, or mail switched off on purpose */
    clean_env();
    setenv("TASKAPI_ENV", "production", 1);
    setenv("JWT_SECRET", "a-long-enough-production-secret", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
    ASSERT_STR_HAS(err, "SMTP_URL");
    ASSERT_STR_HAS(err, "production");
    ASSERT_STR_HAS(err, "MAIL_DISABLED");
    setenv("SMTP_URL", "smtps://mail.example.com", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(cfg.mail_disabled, 0);
    tk_config_cleanup(&cfg);
    unsetenv("SMTP_URL");
    setenv("MAIL_DISABLED", "on", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(cfg.mail_disabled, 1);
    ASSERT_NULL(cfg.smtp_url);
    tk_config_cleanup(&cfg);
    clean_env();
    return 0;
}

/* ---- secrets from files ----------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

TEST(secret_files)
{
    tk_config cfg;
    char err[512] = "";
    char dir[] = "/tmp/tk-config-XXXXXX";
    ASSERT_NOT_NULL(mkdtemp(dir));
    char jwt[256], db[256], smtp[256], empty[256], blank[256], nul[256];
    snprintf(jwt, sizeof jwt, "%s/jwt", dir);
    snprintf(db, sizeof db, "%s/db", dir);
    snprintf(smtp, sizeof smtp, "%s/smtp", dir);
    snprintf(empty, sizeof empty, "%s/empty", dir);
    snprintf(blank, sizeof blank, "%s/blank", dir);
    snprintf(nul, sizeof nul, "%s/nul", dir);
    ASSERT_EQ_INT(write_file(jwt, "file-secret-0123456789abcdef\n"), 0);
    ASSERT_EQ_INT(write_file(db, "postgresql://u:pw@db/app\r\n"), 0);
    ASSERT_EQ_INT(write_file(smtp, "smtps://mailer:file-pw@mail.example.com:465"), 0);
    ASSERT_EQ_INT(write_file(empty, ""), 0);
    ASSERT_EQ_INT(write_file(blank, "\n\n"), 0);
    FILE *f = fopen(nul, "wb");
    ASSERT_NOT_NULL(f);
    fwrite("ab\0cdefghijklmnopqrstuvwxyz", 1, 28, f);
    fclose(f);

    /* values read, trailing line breaks stripped */
    clean_env();
    setenv("JWT_SECRET_FILE", jwt, 1);
    setenv("DATABASE_URL_FILE", db, 1);
    setenv("SMTP_URL_FILE", smtp, 1);
    setenv("DATABASE_READ_URL_FILE", db, 1);
    setenv("DB_POOL_SIZE", "7", 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_STR_EQ(cfg.database_read_url, "postgresql://u:pw@db/app");
    ASSERT_EQ_INT(cfg.db_read_pool_size, 7); /* follows DB_POOL_SIZE */
    ASSERT_STR_EQ(cfg.jwt_secret, "file-secret-0123456789abcdef");
    ASSERT_EQ_INT(cfg.jwt_secret_generated, 0);
    ASSERT_STR_EQ(cfg.database_url, "postgresql://u:pw@db/app");
    ASSERT_STR_EQ(cfg.smtp_url, "smtps://mailer:file-pw@mail.example.com:465");
    tk_config_cleanup(&cfg);

    /* the file's value obeys the variable's own rules (JWT_SECRET >= 16 chars) */
    ASSERT_EQ_INT(write_file(blank, "short\n"), 0);
    clean_env();
    setenv("JWT_SECRET_FILE", blank, 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
    ASSERT_STR_HAS(err, "JWT_SECRET");
    ASSERT_EQ_INT(write_file(blank, "\n\n"), 0);

    /* production takes its secrets from files too */
    clean_env();
    setenv("TASKAPI_ENV", "production", 1);
    setenv("JWT_SECRET_FILE", jwt, 1);
    setenv("SMTP_URL_FILE", smtp, 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    tk_config_cleanup(&cfg);

    /* both set: an error naming both, whatever the values */
    static const char *const names[] = {"DATABASE_URL", "REDIS_URL", "JWT_SECRET",
                                        "JWT_PREVIOUS_KEYS", "SMTP_URL"};
    for (size_t i = 0; i < TK_ARRAY_LEN(names); i++) {
        char fvar[64];
        snprintf(fvar, sizeof fvar, "%s_FILE", names[i]);
        clean_env();
        setenv(names[i], "direct-value-0123456789", 1);
        setenv(fvar, jwt, 1);
        ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
        ASSERT_STR_HAS(err, fvar);
        ASSERT(strstr(err, "direct-value") == NULL);
    }

    /* unreadable, empty, blank or NUL-holding files: the _FILE variable named,
     * the content never shown */
    const char *bad[] = {"/nonexistent/secret", empty, blank, nul, dir};
    for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
        clean_env();
        setenv("SMTP_URL_FILE", bad[i], 1);
        ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
        ASSERT_STR_HAS(err, "SMTP_URL_FILE");
        ASSERT(strstr(err, "cdefgh") == NULL);
    }
    /* a bad URL from a file: named, not shown */
    ASSERT_EQ_INT(write_file(blank, "http://user:file-pw@x\n"), 0);
    clean_env();
    setenv("SMTP_URL_FILE", blank, 1);
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_ECONFIG);
    ASSERT_STR_HAS(err, "SMTP_URL");
    ASSERT(strstr(err, "file-pw") == NULL);
    clean_env();

    const char *files[] = {jwt, db, smtp, empty, blank, nul};
    for (size_t i = 0; i < TK_ARRAY_LEN(files); i++)
        unlink(files[i]);
    rmdir(dir);
    return 0;
}

/* ---- CORS origins ------------------------------------------------------- */

TEST(app_origin_is_app_base_url_origin)
{
    tk_config cfg;

    LOAD_WITH(cfg, "APP_BASE_URL", "https://tasks.example:8443/base/");
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, "https://tasks.example:8443"), 1);
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, "https://TASKS.example:8443"), 1);
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, "https://tasks.example"), 0);
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, "http://tasks.example:8443"), 0);
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, "https://tasks.example:8443/base"), 0);
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, "https://tasks.example:84430"), 0);
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, ""), 0);
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, NULL), 0);
    /* CORS is not widened by it */
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://tasks.example:8443"), 0);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "PORT", "9000"); /* the default base follows PORT */
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, "http://localhost:9000"), 1);
    ASSERT_EQ_INT(tk_config_is_app_origin(&cfg, "http://localhost:8080"), 0);
    tk_config_cleanup(&cfg);
    return 0;
}

TEST(origin_allowed)
{
    tk_config cfg;

    /* unset: nothing is allowed */
    clean_env();
    char err[256];
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "http://localhost:3000"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, ""), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, NULL), 0);
    tk_config_cleanup(&cfg);

    LOAD_WITH(cfg, "CORS_ORIGINS", "https://a.example, https://b.example ,http://c.example:3000,,");
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://a.example"), 1);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://b.example"), 1);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "http://c.example:3000"), 1);
    /* exact matches only */
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://a.exampl"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://a.example.evil"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://a.example/"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "http://a.example"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://A.example"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "http://c.example"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://a.example, https://b.example"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, " https://a.example"), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, ""), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, NULL), 0);
    tk_config_cleanup(&cfg);

    /* a single origin, and a list of blanks */
    LOAD_WITH(cfg, "CORS_ORIGINS", "http://localhost:5173");
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "http://localhost:5173"), 1);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "http://localhost:517"), 0);
    tk_config_cleanup(&cfg);
    LOAD_WITH(cfg, "CORS_ORIGINS", " , ,");
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, ","), 0);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, " "), 0);
    tk_config_cleanup(&cfg);

    /* on a hand-built struct too */
    static char one[] = "https://x.example";
    memset(&cfg, 0, sizeof cfg);
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://a.example"), 0);
    cfg.cors_origins = one;
    ASSERT_EQ_INT(tk_config_origin_allowed(&cfg, "https://x.example"), 1);
    return 0;
}

/* ---- TRUST_PROXY ---------------------------------------------------------- */

TEST(trust_proxy)
{
    tk_config cfg;

    LOAD_WITH(cfg, "TRUST_PROXY", "10.0.0.5, 127.0.0.0/8,fd00::/8 , ::1");
    ASSERT_STR_EQ(cfg.trust_proxy, "10.0.0.5, 127.0.0.0/8,fd00::/8 , ::1");
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, "10.0.0.5"), 1);
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, "10.0.0.6"), 0);
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, "127.9.8.7"), 1);
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, "fd12::1"), 1);
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, "::1"), 1);
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, "203.0.113.1"), 0);
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, ""), 0);
    ASSERT_EQ_INT(tk_config_proxy_trusted(&cfg, NULL), 0);
    tk_config_cleanup(&cfg);
    ASSERT_NULL(cfg.trust_proxy); /* freed: it leaked before */
    ASSERT_NULL(cfg.trust_nets);
    ASSERT_LOAD_FAILS("TRUST_PROXY", "10.0.0.0/33");
    ASSERT_LOAD_FAILS("TRUST_PROXY", "127.0.0.1, nginx");
    ASSERT_LOAD_FAILS("TRUST_PROXY", "10.0.0.1/8");
    return 0;
}

/* ---- the HTTP edge ------------------------------------------------------- */

TEST(http_edge_vars)
{
    tk_config cfg;
    char err[256] = "";

    clean_env();
    ASSERT_EQ_INT(tk_config_load(&cfg, err, sizeof err), TK_OK);
    ASSERT_NULL(cfg.host); /* every address, as before HOST */
    ASSERT_NULL(cfg.metrics_token);
    ASSERT_EQ_INT(cfg.http_header_timeout, 10);
    ASSERT_EQ_INT(cfg.http_conn_per_ip, 256);
    tk_config_cleanup(&cfg);

    LOAD_WITH(cfg, "HOST", "127.0.0.1");
    ASSERT_STR_EQ(cfg.host, "127.0.0.1");
    tk_config_cleanup(&cfg);
    ASSERT_NULL(cfg.host);
    LOAD_WITH(cfg, "HOST", "::1");
    ASSERT_STR_EQ(cfg.host, "::1");
    tk_config_cleanup(&cfg);
    ASSERT_LOAD_FAILS("HOST", "localhost"); /* literals only: no resolver at start-up */
    ASSERT_LOAD_FAILS("HOST", "10.0.0.256");
    ASSERT_LOAD_FAILS("HOST", "127.0.0.1:8080");

    LOAD_WITH(cfg, "METRICS_TOKEN", "0123456789abcdef");
    ASSERT_STR_EQ(cfg.metrics_token, "0123456789abcdef");
    tk_config_cleanup(&cfg);
    ASSERT_NULL(cfg.metrics_token);
    ASSERT_LOAD_FAILS("METRICS_TOKEN", "short");
    return 0;
}

TEST_MAIN(TEST_ENTRY(trust_proxy), TEST_ENTRY(http_edge_vars),
          TEST_ENTRY(defaults_in_a_clean_environment), TEST_ENTRY(generated_secrets_differ),
          TEST_ENTRY(empty_values_mean_default),
          TEST_ENTRY(pid_file_default_is_absolute_and_per_port), TEST_ENTRY(values_are_read),
          TEST_ENTRY(app_base_url_loses_trailing_slashes), TEST_ENTRY(int_vars_out_of_range),
          TEST_ENTRY(int_error_message), TEST_ENTRY(bool_var), TEST_ENTRY(body_limit),
          TEST_ENTRY(body_limit_message), TEST_ENTRY(log_settings), TEST_ENTRY(jwt_secret_rules),
          TEST_ENTRY(mail_rules), TEST_ENTRY(secret_files), TEST_ENTRY(origin_allowed),
          TEST_ENTRY(app_origin_is_app_base_url_origin))
