/* Logging: level filter, text or JSON lines, one write(2) per record so lines
 * from different threads never interleave. */
#include "obs/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static tk_log_level min_level = TK_LOG_INFO;
static int json_format = 0;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tk_log_init(tk_log_level min, int json)
{
    min_level = min;
    json_format = json;
}

int tk_log_level_parse(const char *s, tk_log_level *out)
{
    for (size_t i = 0; i < TK_ARRAY_LEN(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (tk_log_level)i;
            return TK_OK;
        }
    }
    return TK_EINVAL;
}

int tk_log_enabled(tk_log_level lvl)
{
    return lvl >= min_level;
}

/* Appends `s` JSON-escaped to buf at *pos, never past cap - 1. */
static void append_json_escaped(char *buf, size_t cap, size_t *pos, const char *s)
{
    for (; *s && *pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = (char)c;
        } else if (c < 0x20) {
            *pos += (size_t)snprintf(buf + *pos, cap - *pos, "\\u%04x", c);
        } else {
            buf[(*pos)++] = (char)c;
        }
    }
}

void tk_log(tk_log_level lvl, const char *rid, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    char line[4096];
    size_t pos = 0;
    if (json_format) {
        pos = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",", ts,
                               level_names[lvl]);
        if (rid) {
            pos += (size_t)snprintf(line + pos, sizeof line - pos, "\"requestId\":\"");
            append_json_escaped(line, sizeof line, &pos, rid);
            pos += (size_t)snprintf(line + pos, sizeof line - pos, "\",");
        }
        pos += (size_t)snprintf(line + pos, sizeof line - pos, "\"msg\":\"");
        append_json_escaped(line, sizeof line, &pos, msg);
        pos += (size_t)snprintf(line + pos, sizeof line - pos, "\"}\n");
    } else {
        pos = (size_t)snprintf(line, sizeof line, "%s %-5s %s%s%s\n", ts, level_names[lvl],
                               rid ? "[" : "", rid ? rid : "", rid ? "] " : "");
        if (pos > sizeof line)
            pos = sizeof line;
        /* Put the message before the newline written above. */
        pos--;
        pos += (size_t)snprintf(line + pos, sizeof line - pos, "%s\n", msg);
    }
    if (pos >= sizeof line) {
        pos = sizeof line - 1;
        line[pos - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
}
