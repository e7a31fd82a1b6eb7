/* The exposition's text buffer (text.h). */
#include "obs/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void tk_text_init(tk_text *t, size_t cap)
{
    *t = (tk_text){.p = malloc(cap), .cap = cap};
    if (t->p == NULL)
        t->oom = 1;
    else
        t->p[0] = '\0';
}

void tk_text_put(tk_text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (w < 0) {
            t->oom = 1;
            return;
        }
        if (t->n + (size_t)w < t->cap) {
            t->n += (size_t)w;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)w;
        char *np = realloc(t->p, cap);
        if (np == NULL) {
            t->oom = 1;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

void tk_text_escaped(tk_text *t, const char *v, int quote)
{
    for (; *v; v++) {
        if (*v == '\\')
            tk_text_put(t, "\\\\");
        else if (*v == '\n')
            tk_text_put(t, "\\n");
        else if (quote && *v == '"')
            tk_text_put(t, "\\\"");
        else
            tk_text_put(t, "%c", *v);
    }
}

char *tk_text_take(tk_text *t, size_t *len)
{
    if (t->oom) {
        free(t->p);
        *t = (tk_text){0};
        return NULL;
    }
    char *p = t->p;
    *len = t->n;
    *t = (tk_text){0};
    return p;
}
