/* See status.h. One mutex-guarded record: written a few times a day. */
#include "obs/status.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static tk_status cur;

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void tk_status_loaded(int generation, const char *digest, int files, int routes,
                      const char *plugins)
{
    pthread_mutex_lock(&mu);
    cur.generation = generation;
    cur.loaded_at_ms = now_ms();
    snprintf(cur.digest, sizeof cur.digest, "%s", digest ? digest : "");
    cur.files = files;
    cur.routes = routes;
    snprintf(cur.plugins, sizeof cur.plugins, "%s", plugins ? plugins : "");
    pthread_mutex_unlock(&mu);
}

void tk_status_reload_failed(const char *err)
{
    pthread_mutex_lock(&mu);
    cur.reload_failures++;
    snprintf(cur.last_error, sizeof cur.last_error, "%s", err ? err : "");
    cur.last_error_at_ms = now_ms();
    pthread_mutex_unlock(&mu);
}

void tk_status_get(tk_status *out)
{
    pthread_mutex_lock(&mu);
    *out = cur;
    pthread_mutex_unlock(&mu);
}
