/* Outbound HTTP for jobs (jobs/http.h): a libcurl POST whose socket opener
 * refuses blocked addresses. What to send and what the answer means is the
 * caller's business (the webhooks plugin, through tk.http). */
#include "jobs/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "jobs/addr_guard.h"

#define CONNECT_TIMEOUT_MS 5000L

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* curl's socket opener: refuses blocked addresses after name resolution,
 * so a host name that resolves to 127.0.0.1 is caught too. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    int *blocked = ud;
    if (purpose == CURLSOCKTYPE_IPCXN && tk_addr_blocked(&a->addr)) {
        *blocked = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000L + (t1.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Appends "name: value" to *list ("name:" for an empty value, which tells
 * curl not to send its own); returns 0 or TK_ENOMEM (the list so far stays
 * owned by *list). */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[1024];
    if (*value)
        snprintf(line, sizeof line, "%s: %s", name, value);
    else
        snprintf(line, sizeof line, "%s:", name);
    struct curl_slist *nl = curl_slist_append(*list, line);
    if (nl == NULL)
        return TK_ENOMEM;
    *list = nl;
    return TK_OK;
}

void tk_jobs_http_post(const char *url, const tk_jobs_http_header *headers, size_t nheaders,
                       const char *body, size_t len, long timeout_ms, int allow_private,
                       tk_jobs_http_result *res)
{
    memset(res, 0, sizeof *res);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CURL *h = NULL;
    struct curl_slist *list = NULL;
    char curl_err[CURL_ERROR_SIZE] = "";
    int blocked = 0;

    if (timeout_ms <= 0 || timeout_ms > TK_JOBS_HTTP_MAX_TIMEOUT_MS)
        timeout_ms = TK_JOBS_HTTP_TIMEOUT_MS;
    for (size_t i = 0; i < nheaders; i++) {
        if (add_header(&list, headers[i].name, headers[i].value) != TK_OK) {
            tk_errf(res->error, sizeof res->error, "out of memory");
            goto out;
        }
    }
    if (add_header(&list, "Expect", "") != TK_OK) { /* no 100-continue round trip */
        tk_errf(res->error, sizeof res->error, "out of memory");
        goto out;
    }
    h = curl_easy_init();
    if (h == NULL) {
        tk_errf(res->error, sizeof res->error, "cannot create a curl handle");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* direct: never a proxy from the environment */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "taskapi-jobs/" TASKAPI_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    if (!allow_private) {
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &blocked);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
    if (rc == CURLE_OK) {
        res->ok = res->status >= 200 && res->status <= 299;
        if (!res->ok)
            tk_errf(res->error, sizeof res->error, "HTTP %ld", res->status);
    } else if (blocked) {
        tk_errf(res->error, sizeof res->error, "address not allowed (loopback or private network)");
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        tk_errf(res->error, sizeof res->error, "timed out after %ld ms", timeout_ms);
    } else {
        tk_errf(res->error, sizeof res->error, "%s", *curl_err ? curl_err : curl_easy_strerror(rc));
    }
out:
    res->duration_ms = elapsed_ms(&t0);
    curl_slist_free_all(list);
    if (h)
        curl_easy_cleanup(h);
}
