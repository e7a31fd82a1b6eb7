/* What an operator asks "what runs?" about (taskapi status, GET
 * /api/v1/admin/status): the script generation serving HTTP, when it
 * loaded, the scripts' digest, the plugins it loaded, and the last reload
 * that was refused. Process-wide, written by the HTTP server on load and
 * reload, read by any thread. */
#ifndef TK_OBS_STATUS_H
#define TK_OBS_STATUS_H

#include "common.h"

typedef struct {
    int generation;         /* 0: none loaded yet */
    long long loaded_at_ms; /* epoch ms */
    char digest[65];        /* sha256 of the scripts and plugins, hex */
    int files, routes;
    char plugins[512]; /* "webhooks 1.0.0, activity 1.0.0", or "" */
    long long reload_failures;
    char last_error[1024]; /* the last refused reload ("" if none), file:line first */
    long long last_error_at_ms;
} tk_status;

void tk_status_loaded(int generation, const char *digest, int files, int routes,
                      const char *plugins);
void tk_status_reload_failed(const char *err);
void tk_status_get(tk_status *out);

#endif
