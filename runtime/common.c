/* The error-code table and small helpers shared by every unit. */
#include "common.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

const char *tk_strerror(int err)
{
    switch (err) {
    case TK_OK:
        return "success";
#define TK_ERRNO_CASE(name, code, text)                                                            \
    case code:                                                                                     \
        return text;
        TK_ERRNO_MAP(TK_ERRNO_CASE)
#undef TK_ERRNO_CASE
    }
    return "unknown error";
}

void tk_errf(char *buf, size_t len, const char *fmt, ...)
{
    if (buf == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static atomic_int shutting_down;

void tk_shutdown_begin(void)
{
    atomic_store(&shutting_down, 1);
}

int tk_shutting_down(void)
{
    return atomic_load(&shutting_down);
}
