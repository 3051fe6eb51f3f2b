#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/fmt.h"

Test(fmt, u64_matches_printf)
{
    const uint64_t v[] = {0, 1, 9, 10, 99, 100, 15000, 4294967295u, 4294967296u, UINT64_MAX};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char want[32], got[PL_FMT_U64_MAX];
        int wn = snprintf(want, sizeof(want), "%" PRIu64, v[i]);
        size_t n = pl_fmt_u64(got, v[i]);
        cr_assert_eq(n, (size_t)wn);
        cr_assert_str_eq(got, want);
    }
}

Test(fmt, hex_matches_printf)
{
    const uint64_t v[] = {0, 1, 15, 16, 255, 16384, 0xdeadbeef, UINT64_MAX};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char want[32], got[17];
        int wn = snprintf(want, sizeof(want), "%" PRIx64, v[i]);
        size_t n = pl_fmt_hex(got, v[i]);
        cr_assert_eq(n, (size_t)wn);
        cr_assert_str_eq(got, want);
    }
}
