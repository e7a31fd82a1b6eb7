/* The registry behind tk.metrics (obs/script_metrics.c): names and labels
 * checked with a reason, a second declaration finding the same metric and a
 * different one refused, series kept per label set and capped, and the
 * exposition text of counters and histograms, escapes included. */
#include "obs/script_metrics.h"

#include <string.h>

#include "test_util.h"

static const char *const TO[] = {"to"};

TEST(names_and_labels_are_checked)
{
    tk_smetric *m;
    char err[512];
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_declare(TK_SMETRIC_COUNTER, "Bad-Name_total", "h", NULL, 0,
                                                NULL, 0, 0, &m, err, sizeof err));
    ASSERT(strstr(err, "must be [a-z_][a-z0-9_]*") != NULL);
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_declare(TK_SMETRIC_COUNTER, "assignments", "h", NULL, 0,
                                                NULL, 0, 0, &m, err, sizeof err));
    ASSERT(strstr(err, "must end in _total") != NULL);
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_declare(TK_SMETRIC_COUNTER, "taskapi_x_total", "h", NULL, 0,
                                                NULL, 0, 0, &m, err, sizeof err));
    ASSERT(strstr(err, "are the runtime's") != NULL);
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_declare(TK_SMETRIC_HISTOGRAM, "latency_count", "h", NULL, 0,
                                                NULL, 0, 0, &m, err, sizeof err));
    const char *const le[] = {"le"};
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_declare(TK_SMETRIC_HISTOGRAM, "latency_seconds", "h", le, 1,
                                                NULL, 0, 0, &m, err, sizeof err));
    const char *const twice[] = {"a", "a"};
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_declare(TK_SMETRIC_COUNTER, "twice_total", "h", twice, 2,
                                                NULL, 0, 0, &m, err, sizeof err));
    ASSERT(strstr(err, "named twice") != NULL);
    const double down[] = {1, 0.5};
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_declare(TK_SMETRIC_HISTOGRAM, "down_seconds", "h", NULL, 0,
                                                down, 2, 0, &m, err, sizeof err));
    ASSERT(strstr(err, "strictly increasing") != NULL);
    return 0;
}

TEST(a_second_declaration_finds_the_metric_a_different_one_is_refused)
{
    tk_smetric *a, *b, *c;
    char err[512];
    ASSERT_EQ_INT(TK_OK, tk_smetric_declare(TK_SMETRIC_COUNTER, "assigned_total", "first", TO, 1,
                                            NULL, 0, 0, &a, err, sizeof err));
    ASSERT_EQ_INT(TK_OK, tk_smetric_declare(TK_SMETRIC_COUNTER, "assigned_total", "second", TO, 1,
                                            NULL, 0, 0, &b, err, sizeof err));
    ASSERT(a == b);
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_declare(TK_SMETRIC_COUNTER, "assigned_total", "h", NULL, 0,
                                                NULL, 0, 0, &c, err, sizeof err));
    ASSERT(strstr(err, "already declared as a counter with labels {to}") != NULL);
    ASSERT(strstr(err, "until the server restarts") != NULL);
    return 0;
}

TEST(series_are_kept_per_label_set_and_rendered)
{
    tk_smetric *c, *hst;
    char err[512];
    ASSERT_EQ_INT(TK_OK, tk_smetric_declare(TK_SMETRIC_COUNTER, "render_total", "Tasks\nassigned",
                                            TO, 1, NULL, 0, 0, &c, err, sizeof err));
    const char *owner[] = {"owner"}, *odd[] = {"a\"b\\c"};
    ASSERT_EQ_INT(TK_OK, tk_smetric_record(c, owner, 1));
    ASSERT_EQ_INT(TK_OK, tk_smetric_record(c, owner, 2));
    ASSERT_EQ_INT(TK_OK, tk_smetric_record(c, odd, 1));
    ASSERT_EQ_INT(TK_EINVAL, tk_smetric_record(c, owner, -1));
    const double b[] = {0.1, 1};
    ASSERT_EQ_INT(TK_OK, tk_smetric_declare(TK_SMETRIC_HISTOGRAM, "render_seconds", "h", NULL, 0, b,
                                            2, 0, &hst, err, sizeof err));
    ASSERT_EQ_INT(TK_OK, tk_smetric_record(hst, NULL, 0.05));
    ASSERT_EQ_INT(TK_OK, tk_smetric_record(hst, NULL, 0.5));
    ASSERT_EQ_INT(TK_OK, tk_smetric_record(hst, NULL, 5));
    size_t len = 0;
    char *text = tk_smetrics_render(&len);
    ASSERT_NOT_NULL(text);
    ASSERT_EQ_INT(strlen(text), len);
    ASSERT(strstr(text, "# HELP render_total Tasks\\nassigned\n# TYPE render_total counter\n") !=
           NULL);
    ASSERT(strstr(text, "render_total{to=\"owner\"} 3\n") != NULL);
    ASSERT(strstr(text, "render_total{to=\"a\\\"b\\\\c\"} 1\n") != NULL);
    ASSERT(strstr(text, "# TYPE render_seconds histogram\n") != NULL);
    ASSERT(strstr(text, "render_seconds_bucket{le=\"0.1\"} 1\n") != NULL);
    ASSERT(strstr(text, "render_seconds_bucket{le=\"1\"} 2\n") != NULL);
    ASSERT(strstr(text, "render_seconds_bucket{le=\"+Inf\"} 3\n") != NULL);
    ASSERT(strstr(text, "render_seconds_sum 5.55\n") != NULL);
    ASSERT(strstr(text, "render_seconds_count 3\n") != NULL);
    free(text);
    return 0;
}

TEST(series_are_capped)
{
    tk_smetric *c;
    char err[512];
    ASSERT_EQ_INT(TK_OK, tk_smetric_declare(TK_SMETRIC_COUNTER, "many_total", "h", TO, 1, NULL, 0,
                                            0, &c, err, sizeof err));
    char v[32];
    const char *values[] = {v};
    for (int i = 0; i < TK_SMETRIC_MAX_SERIES; i++) {
        snprintf(v, sizeof v, "v%d", i);
        ASSERT_EQ_INT(TK_OK, tk_smetric_record(c, values, 1));
    }
    snprintf(v, sizeof v, "one too many");
    ASSERT_EQ_INT(TK_ERANGE, tk_smetric_record(c, values, 1));
    snprintf(v, sizeof v, "v7");
    ASSERT_EQ_INT(TK_OK, tk_smetric_record(c, values, 1)); /* an existing set still counts */
    return 0;
}

TEST(cleanup_frees_every_metric)
{
    tk_smetrics_cleanup();
    size_t len = 1;
    char *text = tk_smetrics_render(&len);
    ASSERT_NOT_NULL(text);
    ASSERT_EQ_INT(0, len);
    free(text);
    return 0;
}

TEST_MAIN(TEST_ENTRY(names_and_labels_are_checked),
          TEST_ENTRY(a_second_declaration_finds_the_metric_a_different_one_is_refused),
          TEST_ENTRY(series_are_kept_per_label_set_and_rendered), TEST_ENTRY(series_are_capped),
          TEST_ENTRY(cleanup_frees_every_metric))
