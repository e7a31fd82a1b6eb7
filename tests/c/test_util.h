/* A tiny assert harness for the C tests, after libuv's test/task.h. A test is
 * `TEST(name) { ...; return 0; }`; a failed ASSERT* prints file:line and the
 * values, and returns 1 from the test. TEST_SKIP returns 77 (ctest's skip
 * code). TEST_MAIN(TEST_ENTRY(a), TEST_ENTRY(b)) runs them all in order and
 * exits 0 when every test passed, 77 when all ran were skipped, else 1. */
#ifndef TK_TEST_UTIL_H
#define TK_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_SKIP_CODE 77

#define TEST(name) static int test_##name(void)

/* clang-format off */
#define TEST_ENTRY(name) {#name, test_##name}
/* clang-format on */

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        return 1;                                                                                  \
    } while (0)

#define TEST_SKIP(why)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: skipped: %s\n", __FILE__, __LINE__, (why));                        \
        return TEST_SKIP_CODE;                                                                     \
    } while (0)

#define ASSERT(expr)                                                                               \
    do {                                                                                           \
        if (!(expr))                                                                               \
            TEST_FAIL_("assertion failed: %s", #expr);                                             \
    } while (0)

#define ASSERT_CMP_INT_(a, op, b)                                                                  \
    do {                                                                                           \
        intmax_t a_ = (intmax_t)(a);                                                               \
        intmax_t b_ = (intmax_t)(b);                                                               \
        if (!(a_ op b_))                                                                           \
            TEST_FAIL_("assertion failed: %s %s %s (%jd vs %jd)", #a, #op, #b, a_, b_);            \
    } while (0)

#define ASSERT_EQ_INT(a, b) ASSERT_CMP_INT_(a, ==, b)
#define ASSERT_NE_INT(a, b) ASSERT_CMP_INT_(a, !=, b)
#define ASSERT_LT_INT(a, b) ASSERT_CMP_INT_(a, <, b)
#define ASSERT_LE_INT(a, b) ASSERT_CMP_INT_(a, <=, b)
#define ASSERT_GT_INT(a, b) ASSERT_CMP_INT_(a, >, b)
#define ASSERT_GE_INT(a, b) ASSERT_CMP_INT_(a, >=, b)

#define ASSERT_NULL(p) ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a);                                                                      \
        const char *b_ = (b);                                                                      \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                       \
            TEST_FAIL_("assertion failed: %s == %s (\"%s\" vs \"%s\")", #a, #b,                    \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                    \
    } while (0)

#define ASSERT_STR_NE(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a);                                                                      \
        const char *b_ = (b);                                                                      \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) == 0)                                       \
            TEST_FAIL_("assertion failed: %s != %s (both \"%s\")", #a, #b, a_ ? a_ : "(null)");    \
    } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                                     \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0)                                                            \
            TEST_FAIL_("assertion failed: memory %s == %s (%zu bytes)", #a, #b, (size_t)(n));      \
    } while (0)

typedef struct {
    const char *name;
    int (*fn)(void);
} tk_test_entry;

static inline int tk_test_run_all(const tk_test_entry *t, size_t n)
{
    size_t failed = 0;
    size_t skipped = 0;

    for (size_t i = 0; i < n; i++) {
        int rc = t[i].fn();
        if (rc == 0) {
            printf("ok %zu - %s\n", i + 1, t[i].name);
        } else if (rc == TEST_SKIP_CODE) {
            printf("ok %zu - %s # SKIP\n", i + 1, t[i].name);
            skipped++;
        } else {
            printf("not ok %zu - %s\n", i + 1, t[i].name);
            failed++;
        }
        fflush(stdout);
    }
    printf("1..%zu\n", n);
    if (failed > 0)
        return 1;
    return (n > 0 && skipped == n) ? TEST_SKIP_CODE : 0;
}

#define TEST_MAIN(...)                                                                             \
    int main(void)                                                                                 \
    {                                                                                              \
        static const tk_test_entry tests_[] = {__VA_ARGS__};                                       \
        return tk_test_run_all(tests_, sizeof(tests_) / sizeof(tests_[0]));                        \
    }

#endif
