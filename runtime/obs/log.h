/* Structured logging to stderr (or LOG_FILE), one line per record, as text or JSON
 * (LOG_FORMAT). Thread-safe: each record is formatted into a local buffer and
 * written with one write(2). Never pass secrets (passwords, tokens) here. */
#ifndef TK_OBS_LOG_H
#define TK_OBS_LOG_H

#include "common.h"

typedef enum { TK_LOG_DEBUG = 0, TK_LOG_INFO, TK_LOG_WARN, TK_LOG_ERROR } tk_log_level;

/* Sets the minimum level and the format (json != 0: one JSON object a line). */
void tk_log_init(tk_log_level min, int json);

/* Parses "debug|info|warn|error"; returns 0 or TK_EINVAL. */
int tk_log_level_parse(const char *s, tk_log_level *out) TK_WUR;

int tk_log_enabled(tk_log_level lvl);

/* Sends records to the file at `path` (appended, created 0640) instead of
 * stderr. Call before other threads start. */
int tk_log_open_file(const char *path, char *err, size_t errlen) TK_WUR;

/* Opens LOG_FILE's path again (after logrotate moved it) in place of the
 * old file; safe while other threads log. No-op when logging to stderr. */
int tk_log_reopen(char *err, size_t errlen) TK_WUR;

/* Back to stderr; frees the path. Call after other threads stopped. */
void tk_log_close_file(void);

/* Writes one record. `rid` is the request id or NULL; `msg` is printf-style. */
void tk_log(tk_log_level lvl, const char *rid, const char *fmt, ...) TK_PRINTF(3, 4);

#define tk_log_debug(...) tk_log(TK_LOG_DEBUG, NULL, __VA_ARGS__)
#define tk_log_info(...) tk_log(TK_LOG_INFO, NULL, __VA_ARGS__)
#define tk_log_warn(...) tk_log(TK_LOG_WARN, NULL, __VA_ARGS__)
#define tk_log_error(...) tk_log(TK_LOG_ERROR, NULL, __VA_ARGS__)

#endif
