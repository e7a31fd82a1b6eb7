/* Script snapshots: a sorted array of (relative name, text). */
#include "lua/snapshot.h"

#include <openssl/evp.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILES 4096
#define MAX_FILE_SIZE (4u * 1024 * 1024)
#define MAX_DEPTH 8

typedef struct {
    char *name;
    char *text;
    size_t len;
} entry;

/* The plugin settings file as this generation read it (tk_snapshot_settings). */
typedef struct {
    pthread_mutex_t mu;
    int read;   /* 1 once the first VM asked */
    char *text; /* NULL: not readable (err says why) */
    size_t len;
    char err[512];
} settings_memo;

struct tk_snapshot {
    atomic_int refs; /* a generation's VMs and consumers each hold one */
    char *scripts_dir, *plugins_dir;
    entry *files;
    int n, cap;
    settings_memo *settings; /* mutable behind a const snapshot */
};

static int read_text(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return TK_EIO;
    int rc = TK_EIO;
    char *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (size_t)st.st_size > MAX_FILE_SIZE)
        goto out;
    buf = malloc((size_t)st.st_size + 1);
    rc = TK_ENOMEM;
    if (buf == NULL)
        goto out;
    rc = TK_EIO;
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        goto out;
    buf[st.st_size] = '\0';
    *text = buf;
    *len = (size_t)st.st_size;
    buf = NULL;
    rc = TK_OK;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int add_file(tk_snapshot *s, const char *name, const char *path, char *err, size_t errlen)
{
    if (s->n == MAX_FILES) {
        tk_errf(err, errlen, "too many script files (more than %d)", MAX_FILES);
        return TK_EIO;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        entry *nf = realloc(s->files, (size_t)cap * sizeof *nf);
        if (nf == NULL)
            return TK_ENOMEM;
        s->files = nf;
        s->cap = cap;
    }
    entry e = {0};
    e.name = strdup(name);
    if (e.name == NULL)
        return TK_ENOMEM;
    int rc = read_text(path, &e.text, &e.len);
    if (rc != TK_OK) {
        tk_errf(err, errlen, "cannot read %s: %s", path,
                rc == TK_ENOMEM ? "out of memory" : strerror(errno ? errno : EIO));
        free(e.name);
        return rc;
    }
    s->files[s->n++] = e;
    return TK_OK;
}

/* Walks dir/rel recursively, adding *.lua files as prefix + rel/name. */
static int walk(tk_snapshot *s, const char *root, const char *rel, const char *prefix, int depth,
                char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (d == NULL) {
        tk_errf(err, errlen, "cannot open directory %s: %s", path, strerror(errno));
        return TK_EIO;
    }
    int rc = TK_OK;
    struct dirent *de;
    while (rc == TK_OK && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char sub[2048], full[4096];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0)
            continue; /* vanished or a dangling link: editors do this */
        if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH)
                rc = walk(s, root, sub, prefix, depth + 1, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            size_t l = strlen(de->d_name);
            if (l > 4 && strcmp(de->d_name + l - 4, ".lua") == 0) {
                char name[2304];
                snprintf(name, sizeof name, "%s%s", prefix, sub);
                rc = add_file(s, name, full, err, errlen);
            }
        }
    }
    closedir(d);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

int tk_snapshot_load(const char *scripts_dir, const char *plugins_dir, tk_snapshot **out, char *err,
                     size_t errlen)
{
    tk_snapshot *s = calloc(1, sizeof *s);
    if (s == NULL)
        return TK_ENOMEM;
    int rc = TK_ENOMEM;
    atomic_init(&s->refs, 1);
    s->scripts_dir = strdup(scripts_dir);
    s->plugins_dir = strdup(plugins_dir ? plugins_dir : "plugins");
    s->settings = calloc(1, sizeof *s->settings);
    if (!s->scripts_dir || !s->plugins_dir || !s->settings)
        goto fail;
    pthread_mutex_init(&s->settings->mu, NULL);
    rc = walk(s, scripts_dir, "", "", 0, err, errlen);
    if (rc != TK_OK)
        goto fail;
    struct stat st;
    if (plugins_dir && stat(plugins_dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = walk(s, plugins_dir, "", "plugins/", 0, err, errlen);
        if (rc != TK_OK)
            goto fail;
    }
    qsort(s->files, (size_t)s->n, sizeof *s->files, cmp_entry);
    *out = s;
    return TK_OK;
fail:
    if (rc == TK_ENOMEM)
        tk_errf(err, errlen, "out of memory reading the scripts");
    tk_snapshot_free(s);
    return rc;
}

tk_snapshot *tk_snapshot_ref(tk_snapshot *s)
{
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void tk_snapshot_free(tk_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (int i = 0; i < s->n; i++) {
        free(s->files[i].name);
        free(s->files[i].text);
    }
    free(s->files);
    if (s->settings != NULL) {
        pthread_mutex_destroy(&s->settings->mu);
        free(s->settings->text);
        free(s->settings);
    }
    free(s->scripts_dir);
    free(s->plugins_dir);
    free(s);
}

const char *tk_snapshot_name(const tk_snapshot *s, int i)
{
    return i >= 0 && i < s->n ? s->files[i].name : NULL;
}

const char *tk_snapshot_get(const tk_snapshot *s, const char *rel, size_t *len)
{
    entry key = {.name = (char *)rel};
    const entry *e = bsearch(&key, s->files, (size_t)s->n, sizeof *s->files, cmp_entry);
    if (e == NULL)
        return NULL;
    if (len)
        *len = e->len;
    return e->text;
}

void tk_snapshot_display(const tk_snapshot *s, const char *rel, char *buf, size_t len)
{
    if (strncmp(rel, "plugins/", 8) == 0)
        snprintf(buf, len, "%s/%s", s->plugins_dir, rel + 8);
    else
        snprintf(buf, len, "%s/%s", s->scripts_dir, rel);
}

void tk_snapshot_list(const tk_snapshot *s, const char *dir, int dirs,
                      void (*fn)(const char *name, void *ud), void *ud)
{
    size_t dl = strlen(dir);
    char last[256] = "";
    for (int i = 0; i < s->n; i++) {
        const char *name = s->files[i].name;
        if (dl > 0 && (strncmp(name, dir, dl) != 0 || name[dl] != '/'))
            continue;
        const char *rest = name + (dl > 0 ? dl + 1 : 0);
        const char *slash = strchr(rest, '/');
        if (!dirs && slash == NULL) {
            fn(rest, ud);
        } else if (dirs && slash != NULL) {
            size_t l = (size_t)(slash - rest);
            if (l < sizeof last && (strlen(last) != l || strncmp(last, rest, l) != 0)) {
                memcpy(last, rest, l);
                last[l] = '\0';
                fn(last, ud);
            }
        }
    }
}

int tk_snapshot_count(const tk_snapshot *s)
{
    return s->n;
}

void tk_snapshot_digest(const tk_snapshot *s, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    out[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    for (int i = 0; i < s->n; i++) { /* sorted by name: the same files give the same digest */
        char len[32];
        int n = snprintf(len, sizeof len, "%zu", s->files[i].len);
        if (EVP_DigestUpdate(ctx, s->files[i].name, strlen(s->files[i].name) + 1) != 1 ||
            EVP_DigestUpdate(ctx, len, (size_t)n + 1) != 1 ||
            EVP_DigestUpdate(ctx, s->files[i].text, s->files[i].len) != 1)
            goto out;
    }
    settings_memo *m = s->settings;
    pthread_mutex_lock(&m->mu);
    int ok = !m->text || EVP_DigestUpdate(ctx, "\0settings", 10) == 1 ||
             EVP_DigestUpdate(ctx, m->text, m->len) == 1;
    pthread_mutex_unlock(&m->mu);
    if (!ok || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != sizeof md)
        goto out;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
out:
    EVP_MD_CTX_free(ctx);
}

const char *tk_snapshot_settings(const tk_snapshot *s, const char *path, size_t *len, char *err,
                                 size_t errlen)
{
    settings_memo *m = s->settings;
    pthread_mutex_lock(&m->mu);
    if (!m->read) {
        m->read = 1;
        int rc = read_text(path, &m->text, &m->len);
        if (rc != TK_OK)
            tk_errf(m->err, sizeof m->err, "PLUGINS_CONFIG: cannot read %s: %s", path,
                    rc == TK_ENOMEM ? "out of memory" : strerror(errno ? errno : EIO));
        else if (memchr(m->text, '\0', m->len) != NULL) {
            tk_errf(m->err, sizeof m->err, "PLUGINS_CONFIG: %s holds a NUL byte", path);
            free(m->text);
            m->text = NULL;
        }
    }
    const char *text = m->text;
    if (text == NULL)
        tk_errf(err, errlen, "%s", m->err);
    else if (len != NULL)
        *len = m->len;
    pthread_mutex_unlock(&m->mu);
    return text;
}
