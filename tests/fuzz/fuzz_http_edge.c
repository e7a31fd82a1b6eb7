/* libFuzzer target for the HTTP/1.1 edge checks (runtime/http/edge.c).
 * The input is a header section: the first byte picks the version, the rest
 * is split into lines at '\n' (a '\r' before it is dropped) and each line
 * into name and value at the first ':' (blanks after it skipped), laid out
 * the way libmicrohttpd 0.9.75 leaves them in its read buffer (':' and line
 * ends turned into NUL). Runs the header check, the layout check and the
 * bearer check, and aborts on a verdict outside the contract. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/edge.h"

#define MAX_HEADERS 64
#define LIMIT 1048576

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    const char *version = (data[0] & 1) ? "HTTP/1.1" : "HTTP/1.0";
    size_t len = size - 1;
    /* the section, then a NUL line end and an empty line as MHD leaves them */
    char *buf = malloc(len + 3);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, len);
    buf[len] = buf[len + 1] = buf[len + 2] = '\0';
    tk_http_header h[MAX_HEADERS];
    size_t n = 0, i = 0;
    while (i < len && n < MAX_HEADERS) {
        char *line = buf + i;
        char *nl = memchr(line, '\n', len - i);
        size_t line_len = nl ? (size_t)(nl - line) : len - i;
        i += line_len + (nl ? 1 : 0);
        if (nl)
            *nl = '\0';
        if (line_len > 0 && line[line_len - 1] == '\r')
            line[--line_len] = '\0';
        char *colon = memchr(line, ':', line_len);
        if (colon == NULL)
            continue; /* MHD refuses such a line itself */
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        h[n].name = line;
        h[n].value = value;
        n++;
    }

    tk_http_edge_verdict v;
    unsigned status = tk_http_edge_check(version, h, n, LIMIT, &v);
    if (status != v.status)
        abort();
    if (status != 0 && status != 400 && status != 411 && status != 413 && status != 501)
        abort();
    if (status != 0 && (v.code == NULL || v.message == NULL))
        abort();
    if (status == 0 && v.content_length > LIMIT)
        abort();
    if (status == 0 && v.has_body != (v.content_length > 0))
        abort();
    (void)tk_http_edge_layout_ok(h, n);
    if (n > 0)
        (void)tk_http_edge_bearer_ok(h[0].value, "0123456789abcdef");
    free(buf);
    return 0;
}
