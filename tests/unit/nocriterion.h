/* The subset of Criterion's API the server tests use, as a plain single-process runner.
 *
 * Why: Criterion's runner cannot start under ThreadSanitizer (its BoxFort arena probes random
 * addresses that TSan's shadow mappings occupy: "Could not initialize inheritable arena",
 * Snaipe/Criterion#274). Threaded tests include this header instead when built with
 * -DPL_TEST_STANDALONE, so the same test file also runs as a `*_threads_test` under TSan.
 * Tests run one after another in one process; `./test [substring]` runs the matching ones.
 */
#ifndef PL_TEST_NOCRITERION_H
#define PL_TEST_NOCRITERION_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pl_nc_test {
    const char *name;
    void (*fn)(void);
};

static struct pl_nc_test pl_nc_tests[64];
static int pl_nc_n;
static const char *pl_nc_current;

static inline void pl_nc_register(const char *name, void (*fn)(void))
{
    if (pl_nc_n < (int)(sizeof(pl_nc_tests) / sizeof(pl_nc_tests[0])))
        pl_nc_tests[pl_nc_n++] = (struct pl_nc_test){name, fn};
}

__attribute__((format(printf, 5, 6))) static inline void
pl_nc_check(int ok, const char *expr, const char *file, int line, const char *fmt, ...)
{
    if (ok)
        return;
    fprintf(stderr, "[FAIL] %s: %s:%d: assertion failed: %s", pl_nc_current, file, line, expr);
    if (fmt[1]) { /* fmt is " " followed by the caller's format */
        va_list ap;
        va_start(ap, fmt);
        fputs(":", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    exit(1);
}

#define Test(suite, name, ...)                                                                     \
    static void suite##_##name(void);                                                              \
    __attribute__((constructor)) static void pl_nc_reg_##suite##_##name(void)                      \
    {                                                                                              \
        pl_nc_register(#suite "::" #name, suite##_##name);                                         \
    }                                                                                              \
    static void suite##_##name(void)

#define cr_assert(cond, ...)        pl_nc_check(!!(cond), #cond, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_eq(a, b, ...)     cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...)    cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...)     cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...)    cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...)     cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...)    cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_null(p, ...)      cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...)  cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(!strcmp((a), (b)), __VA_ARGS__)
#define cr_log_info(...)                                                                           \
    do {                                                                                           \
        fprintf(stderr, "[----] " __VA_ARGS__);                                                    \
        fputc('\n', stderr);                                                                       \
    } while (0)

int main(int argc, char **argv)
{
    int ran = 0;
    for (int i = 0; i < pl_nc_n; i++) {
        if (argc > 1 && !strstr(pl_nc_tests[i].name, argv[1]))
            continue;
        pl_nc_current = pl_nc_tests[i].name;
        fprintf(stderr, "[RUN ] %s\n", pl_nc_current);
        pl_nc_tests[i].fn();
        fprintf(stderr, "[PASS] %s\n", pl_nc_current);
        ran++;
    }
    fprintf(stderr, "[====] %d tests passed\n", ran);
    return 0;
}

#endif
