/* A growing text buffer for the Prometheus exposition (obs/metrics.c and
 * obs/script_metrics.c): printf-style appends; an allocation failure is
 * remembered, later appends do nothing, and tk_text_take reports it. */
#ifndef TK_OBS_TEXT_H
#define TK_OBS_TEXT_H

#include <stddef.h>

#include "common.h"

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} tk_text;

/* An empty buffer with room for `cap` bytes (oom set when even that fails). */
void tk_text_init(tk_text *t, size_t cap);

void tk_text_put(tk_text *t, const char *fmt, ...) TK_PRINTF(2, 3);

/* v with \ and newline escaped, and " too when `quote` (label values; HELP
 * text escapes only the first two). */
void tk_text_escaped(tk_text *t, const char *v, int quote);

/* The text (NUL-terminated; the caller frees it) and its length in *len,
 * or NULL (everything freed) when an allocation failed on the way. */
char *tk_text_take(tk_text *t, size_t *len);

#endif
