/* Outbound HTTP for jobs: one POST through libcurl with a deadline, no
 * redirects, no proxy from the environment, and (unless allowed) the
 * private-address guard (jobs/addr_guard.c) applied after name resolution.
 * Blocking: call it from the job runner's lanes only, never while holding a
 * transaction or a pool connection. */
#ifndef TK_JOBS_HTTP_H
#define TK_JOBS_HTTP_H

#include <stddef.h>

#include "common.h"

#define TK_JOBS_HTTP_TIMEOUT_MS 10000L     /* default and ... */
#define TK_JOBS_HTTP_MAX_TIMEOUT_MS 30000L /* ... the most a caller may ask */

typedef struct {
    const char *name, *value; /* "" value: the header is not sent (curl's own) */
} tk_jobs_http_header;

typedef struct {
    long status; /* HTTP status, 0 when no answer came */
    int ok;      /* 2xx */
    long duration_ms;
    char error[256]; /* "" on success */
} tk_jobs_http_result;

/* POSTs body (len bytes) to url with the headers. Never fails as a
 * function: whatever went wrong is in res (ok = 0, error text). Borrows
 * everything for the call. */
void tk_jobs_http_post(const char *url, const tk_jobs_http_header *headers, size_t nheaders,
                       const char *body, size_t len, long timeout_ms, int allow_private,
                       tk_jobs_http_result *res);

#endif
