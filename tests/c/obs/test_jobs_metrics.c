/* The job runner's gauges in the exposition (obs/metrics.c): the backlog,
 * and taskapi_jobs_unhandled by kind, whose reading replaces the previous
 * one whole (a kind handled again drops out), label values escaped. */
#include "obs/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static char *render(void)
{
    tk_metrics_sources src;
    memset(&src, 0, sizeof src);
    size_t len = 0;
    char *text = tk_metrics_render(&src, &len);
    if (text != NULL && strlen(text) != len) {
        free(text);
        return NULL;
    }
    return text;
}

TEST(backlog_and_unhandled_kinds_are_rendered)
{
    tk_metrics_job_backlog(7, 12.5);
    const char *kinds[] = {"audit.export", "odd\"kind\\"};
    const long long counts[] = {3, 1};
    tk_metrics_job_unhandled(kinds, counts, 2);
    char *text = render();
    ASSERT_NOT_NULL(text);
    ASSERT(strstr(text, "\ntaskapi_jobs_due 7\n") != NULL);
    ASSERT(strstr(text, "\ntaskapi_jobs_oldest_due_seconds 12.500\n") != NULL);
    ASSERT(strstr(text, "\n# TYPE taskapi_jobs_unhandled gauge\n") != NULL);
    ASSERT(strstr(text, "\ntaskapi_jobs_unhandled{kind=\"audit.export\"} 3\n") != NULL);
    ASSERT(strstr(text, "\ntaskapi_jobs_unhandled{kind=\"odd\\\"kind\\\\\"} 1\n") != NULL);
    ASSERT(strstr(text, "unknown_kind") == NULL);
    free(text);
    return 0;
}

TEST(a_reading_replaces_the_previous_one)
{
    const char *kinds[] = {"webhook"};
    const long long counts[] = {2};
    tk_metrics_job_unhandled(kinds, counts, 1);
    char *text = render();
    ASSERT_NOT_NULL(text);
    ASSERT(strstr(text, "\ntaskapi_jobs_unhandled{kind=\"webhook\"} 2\n") != NULL);
    ASSERT(strstr(text, "audit.export") == NULL);
    free(text);
    tk_metrics_job_unhandled(NULL, NULL, 0);
    text = render();
    ASSERT_NOT_NULL(text);
    ASSERT(strstr(text, "# TYPE taskapi_jobs_unhandled gauge\n") != NULL);
    ASSERT(strstr(text, "taskapi_jobs_unhandled{") == NULL);
    free(text);
    tk_metrics_job_unhandled(kinds, counts, 1);
    tk_metrics_cleanup(); /* frees the last reading */
    text = render();
    ASSERT_NOT_NULL(text);
    ASSERT(strstr(text, "taskapi_jobs_unhandled{") == NULL);
    free(text);
    return 0;
}

TEST_MAIN(TEST_ENTRY(backlog_and_unhandled_kinds_are_rendered),
          TEST_ENTRY(a_reading_replaces_the_previous_one))
