/* Configuration from the environment (12-factor). Parsed once at start-up into
 * one read-only struct; a bad value stops start-up with one line naming the
 * variable. README.md lists every variable with its default. */
#ifndef TK_CONFIG_H
#define TK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "config_vars.h"

/* SMTP_STARTTLS for smtp:// URLs (smtps:// is TLS from the first byte). */
enum { TK_SMTP_STARTTLS_REQUIRE, TK_SMTP_STARTTLS_TRY, TK_SMTP_STARTTLS_OFF };

/* The fields come from the table in config_vars.h (one per variable, same
 * names as there), followed by what is derived from them at load. Secrets
 * (the table's STR entries marked secret) may instead be read from a file
 * named by NAME_FILE (trailing line breaks stripped; NAME and NAME_FILE both
 * set is an error). */
#define TK_CFG_INT_FIELD(type, field, name, def, min, max) type field;
#define TK_CFG_STR_FIELD(field, name, def, secret) char *field;
#define TK_CFG_BOOL_FIELD(field, name, def) int field;
#define TK_CFG_CUSTOM_FIELD(type, field, name, def) type field;
typedef struct {
    TK_CONFIG_VARS(TK_CFG_INT_FIELD, TK_CFG_STR_FIELD, TK_CFG_BOOL_FIELD, TK_CFG_CUSTOM_FIELD)
    /* derived at load */
    int jwt_secret_generated;        /* 1 when jwt_secret was made up at start-up */
    struct tk_cidr_list *trust_nets; /* TRUST_PROXY parsed (http/cidr.h); owned */
    char *plugins_config; /* PLUGINS_CONFIG at start-up (each generation reads its own) */
} tk_config;
#undef TK_CFG_INT_FIELD
#undef TK_CFG_STR_FIELD
#undef TK_CFG_BOOL_FIELD
#undef TK_CFG_CUSTOM_FIELD

/* One variable of the table, for `taskapi env` and the tests: its name, the
 * name of its _FILE form (secrets only, else NULL), and for integers the
 * range (is_int set). */
typedef struct {
    const char *name;
    const char *file_name;
    int is_int;
    long long min, max;
} tk_config_var;

extern const tk_config_var tk_config_vars[];
extern const size_t tk_config_nvars;

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
