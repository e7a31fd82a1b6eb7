/* Metrics that scripts and plugins declare (tk.metrics): counters and
 * histograms with labels, one process-wide registry, so every worker VM of
 * every script generation counts into the same series and /metrics shows
 * them with the runtime's own (tk_metrics_render appends them). A metric
 * lives until the process ends: a reload that declares it again with the
 * same type, labels and buckets keeps counting into it; a different
 * definition is refused. Thread-safe. */
#ifndef TK_OBS_SCRIPT_METRICS_H
#define TK_OBS_SCRIPT_METRICS_H

#include <stddef.h>

#include "common.h"
#include "obs/text.h"

typedef enum { TK_SMETRIC_COUNTER, TK_SMETRIC_HISTOGRAM } tk_smetric_kind;

#define TK_SMETRIC_MAX_LABELS 8
#define TK_SMETRIC_MAX_BUCKETS 32
#define TK_SMETRIC_MAX_SERIES 1000 /* label sets per metric */
#define TK_SMETRIC_MAX_VALUE 128   /* bytes of a label value */

typedef struct tk_smetric tk_smetric;

/* Declares metric `name` (or finds it, when already declared with the same
 * kind, labels and buckets; its help text is then replaced). Names are
 * [a-z_][a-z0-9_]* up to 64 bytes; "taskapi_" names are the runtime's
 * (allowed only with `runtime` set); a counter's name ends in "_total", a
 * histogram's does not end in _total, _bucket, _sum or _count. Labels are
 * distinct [a-z_][a-z0-9_]* names up to 32 bytes, not starting with "__"
 * ("le" not for a histogram). Buckets (histograms only; NULL/0 for the
 * defaults) strictly increase, finite. Returns 0 with *out (owned by the
 * registry until tk_smetrics_cleanup), TK_EINVAL with the reason in err, or
 * TK_ENOMEM. */
int tk_smetric_declare(tk_smetric_kind kind, const char *name, const char *help,
                       const char *const *labels, int nlabels, const double *buckets, int nbuckets,
                       int runtime, tk_smetric **out, char *err, size_t errlen) TK_WUR;

tk_smetric_kind tk_smetric_kind_of(const tk_smetric *m);
const char *tk_smetric_name(const tk_smetric *m);
int tk_smetric_label_count(const tk_smetric *m);
const char *tk_smetric_label(const tk_smetric *m, int i);

/* Adds v (>= 0) to a counter's series, or observes v in a histogram's, for
 * the label values `values` (in declaration order, nlabels of them, each at
 * most TK_SMETRIC_MAX_VALUE bytes). Returns 0, TK_ERANGE when the metric
 * already has TK_SMETRIC_MAX_SERIES label sets and this is a new one (the
 * sample is dropped), TK_EINVAL for a bad value, or TK_ENOMEM. */
int tk_smetric_record(tk_smetric *m, const char *const *values, double v) TK_WUR;

/* Calls fn(values, value, ud) for each series of counter m, in creation
 * order, under the registry's lock (fn must not call back into it). */
void tk_smetric_each(tk_smetric *m, void (*fn)(const char *const *values, double value, void *ud),
                     void *ud);

/* Appends every declared metric in the text exposition format to a
 * malloc'd string the caller frees (*len its length); NULL out of memory. */
char *tk_smetrics_render(size_t *len);

/* The same, appended to `o` (what /metrics does). */
void tk_smetrics_render_into(tk_text *o);

/* Frees every metric (at shutdown, after every VM is gone). */
void tk_smetrics_cleanup(void);

#endif
