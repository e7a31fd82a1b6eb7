/* Shared definitions for the whole runtime: the one error-code list, the
 * attribute macros and a few string helpers. Every other header includes it. */
#ifndef TK_COMMON_H
#define TK_COMMON_H

#include <stddef.h>

#define TK_WUR __attribute__((warn_unused_result))
#define TK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* One list of error codes: 0 is success, every failure is negative. */
#define TK_ERRNO_MAP(X)                                                                            \
    X(ENOMEM, -1, "out of memory")                                                                 \
    X(EINVAL, -2, "invalid argument")                                                              \
    X(EIO, -3, "input/output error")                                                               \
    X(EDB, -4, "database error")                                                                   \
    X(ETIMEDOUT, -5, "timed out")                                                                  \
    X(ENOTFOUND, -6, "not found")                                                                  \
    X(EAUTH, -7, "authentication failed")                                                          \
    X(ECONFIG, -8, "bad configuration")                                                            \
    X(ELUA, -9, "script error")                                                                    \
    X(EUNAVAIL, -10, "dependency unavailable")                                                     \
    X(ERANGE, -11, "value out of range")

enum {
    TK_OK = 0,
#define TK_ERRNO_ENUM(name, code, text) TK_##name = code,
    TK_ERRNO_MAP(TK_ERRNO_ENUM)
#undef TK_ERRNO_ENUM
};

/* Returns a static, human-readable text for a TK_E* code. */
const char *tk_strerror(int err);

/* snprintf into a caller buffer that may be NULL (then nothing is written). */
void tk_errf(char *buf, size_t len, const char *fmt, ...) TK_PRINTF(3, 4);

/* Process-wide: SIGTERM/SIGINT arrived and the process is draining
 * (/health/ready answers 503, HTTP answers carry Connection: close).
 * Set once by main; read anywhere. */
void tk_shutdown_begin(void);
int tk_shutting_down(void);

#endif
