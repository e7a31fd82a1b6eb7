/* The web client's static files (see static.h). Files are read from WEB_DIR
 * on every request (the client is a few small files; an edit shows without a
 * restart), hashed for a strong ETag and gzipped when that saves bytes. Only
 * whitelisted extensions under safe names are served; everything else is a
 * 404 in the API's error shape. */
#include "http/static.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define STATIC_MAX_FILE (4 * 1024 * 1024)
#define STATIC_MAX_SEGMENT 100
#define STATIC_GZIP_MIN 512

int tk_static_owns(const char *path)
{
    return strcmp(path, "/app") == 0 || strncmp(path, "/app/", 5) == 0;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int tk_static_resolve(const char *path, char *rel, size_t len)
{
    if (strncmp(path, "/app/", 5) != 0 || len == 0)
        return TK_ENOTFOUND;
    const char *p = path + 5;
    size_t n = 0, seg = 0;
    for (; *p; p++) {
        char c = *p;
        if (c == '/') {
            if (seg == 0)
                return TK_ENOTFOUND; /* "//" */
            seg = 0;
        } else {
            if (!name_char(c) || (seg == 0 && c == '.') || ++seg > STATIC_MAX_SEGMENT)
                return TK_ENOTFOUND;
        }
        if (n + 1 >= len)
            return TK_ENOTFOUND;
        rel[n++] = c;
    }
    rel[n] = '\0';
    if (seg == 0) { /* "" or a trailing "/": the folder's index */
        static const char index[] = "index.html";
        if (n + sizeof index > len)
            return TK_ENOTFOUND;
        memcpy(rel + n, index, sizeof index);
    }
    return TK_OK;
}

static const struct {
    const char *ext, *type;
    int compress;
} types[] = {
    {"html", "text/html; charset=utf-8", 1},
    {"js", "text/javascript; charset=utf-8", 1},
    {"mjs", "text/javascript; charset=utf-8", 1},
    {"css", "text/css; charset=utf-8", 1},
    {"json", "application/json; charset=utf-8", 1},
    {"webmanifest", "application/manifest+json; charset=utf-8", 1},
    {"svg", "image/svg+xml; charset=utf-8", 1},
    {"txt", "text/plain; charset=utf-8", 1},
    {"png", "image/png", 0},
    {"ico", "image/x-icon", 0},
    {"woff2", "font/woff2", 0},
};

static int type_index(const char *name)
{
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot == NULL || (slash && dot < slash))
        return -1;
    for (size_t i = 0; i < TK_ARRAY_LEN(types); i++)
        if (strcasecmp(dot + 1, types[i].ext) == 0)
            return (int)i;
    return -1;
}

const char *tk_static_type(const char *name)
{
    int i = type_index(name);
    return i < 0 ? NULL : types[i].type;
}

/* Next comma-separated item of a header value: [*start, *end) trimmed. */
static const char *next_item(const char *p, const char **start, const char **end)
{
    while (*p == ',' || *p == ' ' || *p == '\t')
        p++;
    *start = p;
    while (*p && *p != ',')
        p++;
    const char *e = p;
    while (e > *start && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *end = e;
    return p;
}

int tk_static_etag_matches(const char *inm, const char *etag)
{
    if (inm == NULL || etag == NULL)
        return 0;
    size_t elen = strlen(etag);
    const char *p = inm, *a, *b;
    while (*p) {
        p = next_item(p, &a, &b);
        if (b - a == 1 && *a == '*')
            return 1;
        if (b - a > 2 && a[0] == 'W' && a[1] == '/')
            a += 2;
        if ((size_t)(b - a) == elen && memcmp(a, etag, elen) == 0)
            return 1;
    }
    return 0;
}

int tk_static_accepts_gzip(const char *ae)
{
    if (ae == NULL)
        return 0;
    const char *p = ae, *a, *b;
    while (*p) {
        p = next_item(p, &a, &b);
        /* A plain scan, not memchr: GCC 12's -O2 -Wstringop-overread cannot
         * see that b never precedes a and refuses the Release build. */
        const char *semi = a;
        while (semi < b && *semi != ';')
            semi++;
        if (semi == b)
            semi = NULL;
        const char *ne = semi ? semi : b;
        while (ne > a && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        if (!((ne - a == 4 && strncasecmp(a, "gzip", 4) == 0) || (ne - a == 1 && *a == '*')))
            continue;
        if (semi == NULL)
            return 1;
        const char *q = strstr(semi, "q=");
        if (q == NULL || q >= b)
            return 1;
        return strtod(q + 2, NULL) > 0.0;
    }
    return 0;
}

/* The host part of a Host header ("example.com:8080" -> "example.com",
 * "[::1]:8080" -> "[::1]"), checked character by character. 0 if malformed. */
static int host_name(const char *host, char *out, size_t len)
{
    if (host == NULL || *host == '\0')
        return 0;
    size_t n = 0;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (close == NULL)
            return 0;
        n = (size_t)(close - host) + 1;
        for (size_t i = 1; i + 1 < n; i++)
            if (!strchr("0123456789abcdefABCDEF:.", host[i]))
                return 0;
    } else {
        for (; host[n] && host[n] != ':'; n++) {
            char c = host[n];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-'))
                return 0;
        }
    }
    if (n == 0 || n >= len)
        return 0;
    memcpy(out, host, n);
    out[n] = '\0';
    return 1;
}

void tk_static_csp(const tk_config *cfg, const char *host, char *buf, size_t len)
{
    char name[256], ws[600] = "";
    if (host_name(host, name, sizeof name))
        snprintf(ws, sizeof ws, " ws://%s:%d wss://%s:%d", name, cfg->ws_port, name, cfg->ws_port);
    snprintf(buf, len,
             "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'%s; manifest-src 'self'; form-action 'self'; base-uri 'none'; "
             "frame-ancestors 'none'",
             ws);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t tk_static_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *w = s;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (r[0] == '%' && (hi = hex_value(r[1])) >= 0 && (lo = hex_value(r[2])) >= 0 &&
            (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* ---- answers ------------------------------------------------------------- */

static int answer_error(unsigned status, const char *code, const char *message,
                        struct MHD_Response **resp, unsigned *st)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    *resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (*resp == NULL)
        return TK_ENOMEM;
    MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    *st = status;
    return TK_OK;
}

/* Reads dir/rel into a new buffer (caller frees). TK_ENOTFOUND for anything
 * but a regular file (symbolic links included) of at most STATIC_MAX_FILE. */
static int read_file(const char *dir, const char *rel, char **out, size_t *outlen)
{
    char full[4096];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, rel) >= sizeof full)
        return TK_ENOTFOUND;
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOMEM ? TK_ENOMEM : TK_ENOTFOUND;
    int rc = TK_ENOTFOUND;
    char *data = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_MAX_FILE)
        goto done;
    size_t size = (size_t)st.st_size, got = 0;
    rc = TK_ENOMEM;
    data = malloc(size + 1);
    if (data == NULL)
        goto done;
    rc = TK_ENOTFOUND;
    while (got < size) {
        ssize_t k = read(fd, data + got, size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            goto done;
        got += (size_t)k;
    }
    *out = data;
    *outlen = got;
    data = NULL;
    rc = TK_OK;
done:
    free(data);
    close(fd);
    return rc;
}

/* FNV-1a, 64 bits: a content hash for the ETag (not a security boundary). */
static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* gzip of in[0..n) into a new buffer (caller frees), or NULL when it fails
 * or would not be smaller. */
static char *gzip(const char *in, size_t n, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)n);
    char *out = malloc(cap);
    if (out != NULL) {
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END || z.total_out >= n) {
            free(out);
            out = NULL;
        } else {
            *outlen = z.total_out;
        }
    }
    deflateEnd(&z);
    return out;
}

static void add_page_headers(const tk_config *cfg, const tk_static_request *q,
                             struct MHD_Response *resp, const char *etag)
{
    char csp[1024];
    tk_static_csp(cfg, q->host, csp, sizeof csp);
    MHD_add_response_header(resp, "Content-Security-Policy", csp);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (etag)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
}

/* /app/config.json: what the client cannot know from its own URL. */
static int answer_config(const tk_config *cfg, const tk_static_request *q,
                         struct MHD_Response **resp, unsigned *status)
{
    char body[96];
    int n = snprintf(body, sizeof body, "{\"httpPort\":%d,\"wsPort\":%d}", cfg->port, cfg->ws_port);
    *resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (*resp == NULL)
        return TK_ENOMEM;
    MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    add_page_headers(cfg, q, *resp, NULL);
    *status = 200;
    return TK_OK;
}

int tk_static_answer(const tk_config *cfg, const tk_static_request *q, struct MHD_Response **resp,
                     unsigned *status)
{
    *resp = NULL;
    if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) {
        int rc = answer_error(405, "method_not_allowed", "method not allowed on this resource",
                              resp, status);
        if (rc == TK_OK)
            MHD_add_response_header(*resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        return rc;
    }
    if (strcmp(q->path, "/app") == 0) {
        *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (*resp == NULL)
            return TK_ENOMEM;
        MHD_add_response_header(*resp, MHD_HTTP_HEADER_LOCATION, "/app/");
        *status = 301;
        return TK_OK;
    }
    if (strcmp(q->path, "/app/config.json") == 0)
        return answer_config(cfg, q, resp, status);

    char rel[1024];
    int ti;
    char *data = NULL;
    size_t len = 0;
    if (tk_static_resolve(q->path, rel, sizeof rel) != TK_OK || (ti = type_index(rel)) < 0)
        return answer_error(404, "not_found", "no such resource", resp, status);
    int rc = read_file(cfg->web_dir, rel, &data, &len);
    if (rc == TK_ENOTFOUND)
        return answer_error(404, "not_found", "no such resource", resp, status);
    if (rc != TK_OK)
        return rc;

    char etag[40], etag_gz[44];
    uint64_t h = fnv1a(data, len);
    snprintf(etag, sizeof etag, "\"%016llx\"", (unsigned long long)h);
    snprintf(etag_gz, sizeof etag_gz, "\"%016llx-gz\"", (unsigned long long)h);
    int gz =
        types[ti].compress && len >= STATIC_GZIP_MIN && tk_static_accepts_gzip(q->accept_encoding);

    if (tk_static_etag_matches(q->if_none_match, etag) ||
        tk_static_etag_matches(q->if_none_match, etag_gz)) {
        free(data);
        *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (*resp == NULL)
            return TK_ENOMEM;
        add_page_headers(cfg, q, *resp, gz ? etag_gz : etag);
        *status = 304;
        return TK_OK;
    }
    if (gz) {
        size_t zlen = 0;
        char *z = gzip(data, len, &zlen);
        if (z != NULL) {
            free(data);
            data = z;
            len = zlen;
        } else {
            gz = 0;
        }
    }
    /* MHD takes the buffer on success and frees it with free(). */
    *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (*resp == NULL) {
        free(data);
        return TK_ENOMEM;
    }
    MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_TYPE, types[ti].type);
    if (gz)
        MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    add_page_headers(cfg, q, *resp, gz ? etag_gz : etag);
    *status = 200;
    return TK_OK;
}
