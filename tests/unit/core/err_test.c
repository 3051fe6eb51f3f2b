#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

Test(err, collects_every_error_with_location)
{
    struct pl_err e = PL_ERR_INIT;
    cr_assert_eq(pl_err_add(&e, "a.yaml", 3, 7, "static_resources.clusters[0].name",
                            "must not be %s", "empty"),
                 PL_EINVAL);
    pl_err_add(&e, NULL, 0, 0, NULL, "second");
    cr_assert_eq(e.n, 2);
    char *s = pl_err_join(&e);
    cr_assert_str_eq(s, "a.yaml:3:7: static_resources.clusters[0].name: must not be empty; second");
    free(s);
    pl_err_free(&e);
    cr_assert_eq(e.n, 0);
}

Test(err, move_appends)
{
    struct pl_err a = PL_ERR_INIT, b = PL_ERR_INIT;
    pl_err_add(&a, NULL, 0, 0, NULL, "one");
    pl_err_add(&b, NULL, 0, 0, "x", "two");
    pl_err_move(&a, &b);
    cr_assert_eq(a.n, 2);
    cr_assert_eq(b.n, 0);
    cr_assert_str_eq(a.v[1].path, "x");
    pl_err_free(&a);
}

Test(log, parses_envoy_levels)
{
    cr_assert_eq(pl_log_level_parse("warning"), PL_LOG_WARN);
    cr_assert_eq(pl_log_level_parse("warn"), PL_LOG_WARN);
    cr_assert_eq(pl_log_level_parse("trace"), PL_LOG_TRACE);
    cr_assert_eq(pl_log_level_parse("loud"), -1);
    cr_assert_str_eq(pl_log_level_name(PL_LOG_CRITICAL), "critical");
}
