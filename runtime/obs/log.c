/* Logging: level filter, text or JSON lines, one write(2) per record so lines
 * from different threads never interleave. Records go to stderr, or to
 * LOG_FILE: opened once on a descriptor of its own that never changes
 * number; a reopen (SIGUSR1, after logrotate moved the file) opens the path
 * again and dup2()s it onto that descriptor, which is atomic, so a thread in
 * the middle of a write never holds a closed or reused descriptor. */
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static tk_log_level min_level = TK_LOG_INFO;
static int json_format = 0;
static int log_fd = STDERR_FILENO; /* set before threads start; the number never changes */
static char *log_path;             /* LOG_FILE, or NULL for stderr */

static int open_log(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        tk_errf(err, errlen, "cannot open LOG_FILE %s: %s", path, strerror(errno));
    return fd;
}

int tk_log_open_file(const char *path, char *err, size_t errlen)
{
    int fd = open_log(path, err, errlen);
    if (fd < 0)
        return TK_EIO;
    char *copy = strdup(path);
    if (copy == NULL) {
        close(fd);
        tk_errf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    free(log_path);
    log_path = copy;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    return TK_OK;
}

int tk_log_reopen(char *err, size_t errlen)
{
    if (log_path == NULL)
        return TK_OK; /* stderr: the supervisor owns it */
    int fd = open_log(log_path, err, errlen);
    if (fd < 0)
        return TK_EIO;
    int rc = dup2(fd, log_fd) < 0 ? TK_EIO : TK_OK;
    if (rc != TK_OK)
        tk_errf(err, errlen, "cannot reopen LOG_FILE %s: %s", log_path, strerror(errno));
    close(fd);
    return rc;
}

void tk_log_close_file(void)
{
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = STDERR_FILENO;
    free(log_path);
    log_path = NULL;
}

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

/* Writes "2026-12-06T01:02:03.456Z" for tv into out (room for 32) and
 * returns its length. The part up to the seconds is formatted once per
 * second per thread: gmtime_r and strftime were a good part of the cost of
 * the access-log line every request writes. */
static size_t format_ts(char *out, const struct timeval *tv)
{
    static _Thread_local time_t sec = (time_t)-1;
    static _Thread_local char cache[24];
    static _Thread_local size_t len;
    if (tv->tv_sec != sec) {
        struct tm tm;
        gmtime_r(&tv->tv_sec, &tm);
        len = strftime(cache, sizeof cache, "%Y-%m-%dT%H:%M:%S", &tm);
        sec = tv->tv_sec;
    }
    memcpy(out, cache, len);
    int ms = (int)(tv->tv_usec / 1000);
    out[len] = '.';
    out[len + 1] = (char)('0' + ms / 100);
    out[len + 2] = (char)('0' + ms / 10 % 10);
    out[len + 3] = (char)('0' + ms % 10);
    out[len + 4] = 'Z';
    out[len + 5] = '\0';
    return len + 5;
}

#define MSG_MAX 2048 /* a message longer than MSG_MAX - 1 bytes is cut there */

void tk_log(tk_log_level lvl, const char *rid, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char ts[32];
    size_t tslen = format_ts(ts, &tv);

    char line[4096];
    size_t pos = 0;
    va_list ap;
    if (json_format) {
        char msg[MSG_MAX];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
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
        if (pos >= sizeof line) {
            pos = sizeof line - 1;
            line[pos - 1] = '\n';
        }
    } else {
        /* "<ts> <level padded to 5> [<rid>] <message>\n", formatted in
         * place: the message straight into the line, no copy of it */
        const char *lv = level_names[lvl];
        size_t lvlen = strlen(lv);
        memcpy(line, ts, tslen);
        pos = tslen;
        line[pos++] = ' ';
        memcpy(line + pos, lv, lvlen);
        pos += lvlen;
        while (lvlen++ < 5)
            line[pos++] = ' ';
        line[pos++] = ' ';
        if (rid) {
            size_t n = strnlen(rid, 256);
            line[pos++] = '[';
            memcpy(line + pos, rid, n);
            pos += n;
            line[pos++] = ']';
            line[pos++] = ' ';
        }
        size_t room = sizeof line - pos - 1; /* the newline */
        if (room > MSG_MAX)
            room = MSG_MAX;
        va_start(ap, fmt);
        int m = vsnprintf(line + pos, room, fmt, ap);
        va_end(ap);
        if (m > 0)
            pos += (size_t)m < room ? (size_t)m : room - 1;
        line[pos++] = '\n';
    }
    ssize_t w = write(log_fd, line, pos);
    (void)w;
}
