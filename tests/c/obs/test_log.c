/* The text and JSON log lines (obs/log.c) as they reach LOG_FILE: the
 * timestamp, the level padded to five, the request id in brackets, the
 * message; a long message cut with the newline kept; the level filter. */
#include "obs/log.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

static char path[64];

/* Logs through fn into a fresh file and reads it back into buf. */
static size_t capture(void (*fn)(void), char *buf, size_t cap)
{
    snprintf(path, sizeof path, "/tmp/tk-test-log-%d.log", (int)getpid());
    unlink(path);
    char err[256];
    if (tk_log_open_file(path, err, sizeof err) != TK_OK)
        return 0;
    fn();
    tk_log_close_file();
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    return n;
}

static int matches(const char *s, const char *re)
{
    regex_t rx;
    if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    int ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

static void text_lines(void)
{
    tk_log_init(TK_LOG_INFO, 0);
    tk_log(TK_LOG_INFO, "rid-1", "GET %s %u %lld.%lldms", "/x", 200u, 12LL, 3LL);
    tk_log(TK_LOG_ERROR, NULL, "plain %d", 7);
    tk_log(TK_LOG_DEBUG, NULL, "filtered out");
    tk_log(TK_LOG_WARN, "r", "%s", "");
}

TEST(text_format)
{
    char buf[4096];
    ASSERT_GT_INT((int)capture(text_lines, buf, sizeof buf), 0);
    const char *ts = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z";
    char re[512];
    snprintf(re, sizeof re,
             "^%s info  \\[rid-1\\] GET /x 200 12\\.3ms\n%s error plain 7\n%s warn  \\[r\\] \n$",
             ts, ts, ts);
    ASSERT(matches(buf, re));
    return 0;
}

static void long_line(void)
{
    tk_log_init(TK_LOG_INFO, 0);
    char *big = malloc(5000);
    if (big == NULL)
        return;
    memset(big, 'x', 4999);
    big[4999] = '\0';
    tk_log(TK_LOG_INFO, "id", "%s", big);
    free(big);
}

TEST(long_message_is_cut_with_its_newline)
{
    char buf[8192];
    size_t n = capture(long_line, buf, sizeof buf);
    ASSERT_GT_INT((int)n, 2047);
    ASSERT(buf[n - 1] == '\n');
    ASSERT(memchr(buf, '\n', n - 1) == NULL); /* one line */
    const char *x = strchr(buf, 'x');
    ASSERT_NOT_NULL(x);
    ASSERT_EQ_INT((int)(buf + n - 1 - x), 2047); /* the message's first 2047 bytes */
    return 0;
}

static void json_lines(void)
{
    tk_log_init(TK_LOG_INFO, 1);
    tk_log(TK_LOG_INFO, "a\"b", "say \"%s\"\n", "hi");
    tk_log_init(TK_LOG_INFO, 0);
}

TEST(json_format)
{
    char buf[4096];
    ASSERT_GT_INT((int)capture(json_lines, buf, sizeof buf), 0);
    ASSERT(matches(buf, "^\\{\"ts\":\"[0-9T:.-]+Z\",\"level\":\"info\",\"requestId\":\"a\\\\\"b\","
                        "\"msg\":\"say \\\\\"hi\\\\\"\\\\u000a\"\\}\n$"));
    return 0;
}

TEST_MAIN(TEST_ENTRY(text_format), TEST_ENTRY(long_message_is_cut_with_its_newline),
          TEST_ENTRY(json_format))
