/* The registry of script-declared metrics: an array of metrics, each with
 * its label sets (series) in creation order, all under one mutex. Metrics
 * are few (dozens) and series capped per metric, so lookups are linear. */
#include "obs/script_metrics.h"
#include "obs/text.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_METRICS 256
#define MAX_NAME 64
#define MAX_LABEL 32
#define MAX_HELP 256

static const double DEFAULT_BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

typedef struct {
    char **values;      /* nlabels label values */
    double value;       /* counter: the total; histogram: the sum */
    long long count;    /* histogram: observations */
    long long *buckets; /* histogram: non-cumulative counts, nbuckets */
} series;

struct tk_smetric {
    tk_smetric_kind kind;
    char name[MAX_NAME + 1];
    char help[MAX_HELP + 1];
    int nlabels;
    char labels[TK_SMETRIC_MAX_LABELS][MAX_LABEL + 1];
    int nbuckets;
    double buckets[TK_SMETRIC_MAX_BUCKETS];
    series *series;
    int nseries, cap;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static tk_smetric *metrics[MAX_METRICS];
static int nmetrics;

/* [a-z_][a-z0-9_]* of 1..max bytes */
static int ident_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const char *kind_name(tk_smetric_kind k)
{
    return k == TK_SMETRIC_COUNTER ? "counter" : "histogram";
}

static int check_definition(tk_smetric_kind kind, const char *name, const char *const *labels,
                            int nlabels, const double *buckets, int nbuckets, int runtime,
                            char *err, size_t errlen)
{
    if (!ident_ok(name, MAX_NAME)) {
        tk_errf(err, errlen, "metric name '%.80s' must be [a-z_][a-z0-9_]*, up to %d characters",
                name, MAX_NAME);
        return TK_EINVAL;
    }
    if (!runtime && strncmp(name, "taskapi_", 8) == 0) {
        tk_errf(err, errlen, "metric %s: names starting with taskapi_ are the runtime's", name);
        return TK_EINVAL;
    }
    if (kind == TK_SMETRIC_COUNTER && !ends_with(name, "_total")) {
        tk_errf(err, errlen, "metric %s: a counter's name must end in _total", name);
        return TK_EINVAL;
    }
    if (kind == TK_SMETRIC_HISTOGRAM && (ends_with(name, "_total") || ends_with(name, "_bucket") ||
                                         ends_with(name, "_sum") || ends_with(name, "_count"))) {
        tk_errf(err, errlen,
                "metric %s: a histogram's name must not end in _total, _bucket, _sum or _count",
                name);
        return TK_EINVAL;
    }
    if (nlabels < 0 || nlabels > TK_SMETRIC_MAX_LABELS) {
        tk_errf(err, errlen, "metric %s: at most %d labels", name, TK_SMETRIC_MAX_LABELS);
        return TK_EINVAL;
    }
    for (int i = 0; i < nlabels; i++) {
        if (!ident_ok(labels[i], MAX_LABEL) || strncmp(labels[i], "__", 2) == 0 ||
            (kind == TK_SMETRIC_HISTOGRAM && strcmp(labels[i], "le") == 0)) {
            tk_errf(err, errlen,
                    "metric %s: label '%.40s' must be [a-z_][a-z0-9_]*, up to %d characters, not "
                    "starting with __ (and not le for a histogram)",
                    name, labels[i], MAX_LABEL);
            return TK_EINVAL;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0) {
                tk_errf(err, errlen, "metric %s: label %s is named twice", name, labels[i]);
                return TK_EINVAL;
            }
    }
    if (nbuckets < 0 || nbuckets > TK_SMETRIC_MAX_BUCKETS ||
        (kind == TK_SMETRIC_COUNTER && nbuckets > 0)) {
        tk_errf(err, errlen, "metric %s: a histogram has 1..%d buckets, a counter none", name,
                TK_SMETRIC_MAX_BUCKETS);
        return TK_EINVAL;
    }
    for (int i = 0; i < nbuckets; i++)
        if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
            tk_errf(err, errlen, "metric %s: buckets must be finite and strictly increasing", name);
            return TK_EINVAL;
        }
    return TK_OK;
}

/* Same kind, labels and buckets as the declared metric m? */
static int same_definition(const tk_smetric *m, tk_smetric_kind kind, const char *const *labels,
                           int nlabels, const double *buckets, int nbuckets)
{
    if (m->kind != kind || m->nlabels != nlabels || m->nbuckets != nbuckets)
        return 0;
    for (int i = 0; i < nlabels; i++)
        if (strcmp(m->labels[i], labels[i]) != 0)
            return 0;
    for (int i = 0; i < nbuckets; i++)
        if (m->buckets[i] != buckets[i])
            return 0;
    return 1;
}

static void describe(const tk_smetric *m, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "a %s with labels {", kind_name(m->kind));
    for (int i = 0; i < m->nlabels && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", m->labels[i]);
    if (n < len)
        snprintf(buf + n, len - n, "}%s",
                 m->kind == TK_SMETRIC_HISTOGRAM ? " and its buckets" : "");
}

int tk_smetric_declare(tk_smetric_kind kind, const char *name, const char *help,
                       const char *const *labels, int nlabels, const double *buckets, int nbuckets,
                       int runtime, tk_smetric **out, char *err, size_t errlen)
{
    if (kind == TK_SMETRIC_HISTOGRAM && nbuckets == 0) {
        buckets = DEFAULT_BUCKETS;
        nbuckets = (int)(sizeof DEFAULT_BUCKETS / sizeof DEFAULT_BUCKETS[0]);
    }
    int rc = check_definition(kind, name, labels, nlabels, buckets, nbuckets, runtime, err, errlen);
    if (rc != TK_OK)
        return rc;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nmetrics; i++) {
        tk_smetric *m = metrics[i];
        if (strcmp(m->name, name) != 0)
            continue;
        if (!same_definition(m, kind, labels, nlabels, buckets, nbuckets)) {
            char was[256];
            describe(m, was, sizeof was);
            pthread_mutex_unlock(&mu);
            tk_errf(err, errlen,
                    "metric %s is already declared as %s; a metric's type, labels and buckets "
                    "stay fixed until the server restarts",
                    name, was);
            return TK_EINVAL;
        }
        snprintf(m->help, sizeof m->help, "%s", help ? help : "");
        pthread_mutex_unlock(&mu);
        *out = m;
        return TK_OK;
    }
    rc = TK_EINVAL;
    if (nmetrics == MAX_METRICS) {
        tk_errf(err, errlen, "metric %s: more than %d metrics declared", name, MAX_METRICS);
        goto out;
    }
    rc = TK_ENOMEM;
    tk_smetric *m = calloc(1, sizeof *m);
    if (m == NULL)
        goto out;
    m->kind = kind;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->help, sizeof m->help, "%s", help ? help : "");
    m->nlabels = nlabels;
    for (int i = 0; i < nlabels; i++)
        snprintf(m->labels[i], sizeof m->labels[i], "%s", labels[i]);
    m->nbuckets = nbuckets;
    for (int i = 0; i < nbuckets; i++)
        m->buckets[i] = buckets[i];
    metrics[nmetrics++] = m;
    *out = m;
    rc = TK_OK;
out:
    pthread_mutex_unlock(&mu);
    return rc;
}

tk_smetric_kind tk_smetric_kind_of(const tk_smetric *m)
{
    return m->kind;
}

const char *tk_smetric_name(const tk_smetric *m)
{
    return m->name;
}

int tk_smetric_label_count(const tk_smetric *m)
{
    return m->nlabels;
}

const char *tk_smetric_label(const tk_smetric *m, int i)
{
    return i >= 0 && i < m->nlabels ? m->labels[i] : NULL;
}

static void series_free(series *s, int nlabels)
{
    for (int i = 0; i < nlabels && s->values; i++)
        free(s->values[i]);
    free(s->values);
    free(s->buckets);
}

/* The series of m for `values`, created when new. Called under mu. */
static int find_series(tk_smetric *m, const char *const *values, series **out)
{
    for (int i = 0; i < m->nseries; i++) {
        int k = 0;
        while (k < m->nlabels && strcmp(m->series[i].values[k], values[k]) == 0)
            k++;
        if (k == m->nlabels) {
            *out = &m->series[i];
            return TK_OK;
        }
    }
    if (m->nseries == TK_SMETRIC_MAX_SERIES)
        return TK_ERANGE;
    if (m->nseries == m->cap) {
        int cap = m->cap ? m->cap * 2 : 8;
        series *ns = realloc(m->series, (size_t)cap * sizeof *ns);
        if (ns == NULL)
            return TK_ENOMEM;
        m->series = ns;
        m->cap = cap;
    }
    series s = {0};
    s.values = calloc((size_t)m->nlabels + 1, sizeof *s.values);
    if (s.values == NULL)
        return TK_ENOMEM;
    for (int k = 0; k < m->nlabels; k++) {
        s.values[k] = strdup(values[k]);
        if (s.values[k] == NULL)
            goto oom;
    }
    if (m->kind == TK_SMETRIC_HISTOGRAM) {
        s.buckets = calloc((size_t)m->nbuckets, sizeof *s.buckets);
        if (s.buckets == NULL)
            goto oom;
    }
    m->series[m->nseries] = s;
    *out = &m->series[m->nseries++];
    return TK_OK;
oom:
    series_free(&s, m->nlabels);
    return TK_ENOMEM;
}

int tk_smetric_record(tk_smetric *m, const char *const *values, double v)
{
    if (!isfinite(v) || (m->kind == TK_SMETRIC_COUNTER && v < 0))
        return TK_EINVAL;
    for (int k = 0; k < m->nlabels; k++)
        if (strlen(values[k]) > TK_SMETRIC_MAX_VALUE)
            return TK_EINVAL;
    pthread_mutex_lock(&mu);
    series *s = NULL;
    int rc = find_series(m, values, &s);
    if (rc == TK_OK) {
        s->value += v;
        if (m->kind == TK_SMETRIC_HISTOGRAM) {
            s->count++;
            int b = 0;
            while (b < m->nbuckets && v > m->buckets[b])
                b++;
            if (b < m->nbuckets)
                s->buckets[b]++;
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void tk_smetric_each(tk_smetric *m, void (*fn)(const char *const *values, double value, void *ud),
                     void *ud)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < m->nseries; i++)
        fn((const char *const *)m->series[i].values, m->series[i].value, ud);
    pthread_mutex_unlock(&mu);
}

/* ---- exposition ----------------------------------------------------------- */

/* The shortest of %.15g and %.17g that reads back as v: 0.1, not
 * 0.10000000000000001. */
static void fmt_num(double v, char out[32])
{
    snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, 32, "%.17g", v);
}

/* name{a="x",b="y"[,le="..."]} (no braces without labels) */
static void put_series(tk_text *o, const tk_smetric *m, const char *suffix, const series *s,
                       const char *le)
{
    tk_text_put(o, "%s%s", m->name, suffix);
    if (m->nlabels == 0 && le == NULL)
        return;
    tk_text_put(o, "{");
    for (int k = 0; k < m->nlabels; k++) {
        tk_text_put(o, "%s%s=\"", k ? "," : "", m->labels[k]);
        tk_text_escaped(o, s->values[k], 1);
        tk_text_put(o, "\"");
    }
    if (le != NULL)
        tk_text_put(o, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    tk_text_put(o, "}");
}

static void render_one(tk_text *o, const tk_smetric *m)
{
    tk_text_put(o, "# HELP %s ", m->name);
    tk_text_escaped(o, m->help, 0);
    tk_text_put(o, "\n# TYPE %s %s\n", m->name, kind_name(m->kind));
    if (m->nlabels == 0 && m->nseries == 0 && m->kind == TK_SMETRIC_COUNTER)
        tk_text_put(o, "%s 0\n", m->name); /* an unlabelled counter exists from its declaration */
    for (int i = 0; i < m->nseries; i++) {
        const series *s = &m->series[i];
        if (m->kind == TK_SMETRIC_COUNTER) {
            char v[32];
            fmt_num(s->value, v);
            put_series(o, m, "", s, NULL);
            tk_text_put(o, " %s\n", v);
            continue;
        }
        long long cum = 0;
        for (int b = 0; b < m->nbuckets; b++) {
            char le[32];
            fmt_num(m->buckets[b], le);
            cum += s->buckets[b];
            put_series(o, m, "_bucket", s, le);
            tk_text_put(o, " %lld\n", cum);
        }
        put_series(o, m, "_bucket", s, "+Inf");
        tk_text_put(o, " %lld\n", s->count);
        char sum[32];
        fmt_num(s->value, sum);
        put_series(o, m, "_sum", s, NULL);
        tk_text_put(o, " %s\n", sum);
        put_series(o, m, "_count", s, NULL);
        tk_text_put(o, " %lld\n", s->count);
    }
}

void tk_smetrics_render_into(tk_text *o)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nmetrics; i++)
        render_one(o, metrics[i]);
    pthread_mutex_unlock(&mu);
}

char *tk_smetrics_render(size_t *len)
{
    tk_text o;
    tk_text_init(&o, 4096);
    tk_smetrics_render_into(&o);
    return tk_text_take(&o, len);
}

void tk_smetrics_cleanup(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nmetrics; i++) {
        tk_smetric *m = metrics[i];
        for (int k = 0; k < m->nseries; k++)
            series_free(&m->series[k], m->nlabels);
        free(m->series);
        free(m);
        metrics[i] = NULL;
    }
    nmetrics = 0;
    pthread_mutex_unlock(&mu);
}
