#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/fmt.h"
#include "core/slab.h"

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

Test(slab, objects_are_zeroed_and_reused)
{
    static __thread struct pl_slab s = PL_SLAB_INIT(64, 2);
    char *a = pl_slab_calloc(&s), *b = pl_slab_calloc(&s), *c = pl_slab_calloc(&s);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(a[i], 0);
    memset(a, 0x5a, 64);
    memset(b, 0x5a, 64);
    pl_slab_free(&s, a);
    pl_slab_free(&s, b);
    pl_slab_free(&s, c); /* over the bound of 2: freed */
    pl_slab_free(&s, NULL);
    char *d = pl_slab_calloc(&s);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(d[i], 0);
    pl_slab_free(&s, d);
    pl_slab_trim();
    cr_assert_eq(s.n, 0);
}

Test(arena, chunks_are_reused_and_large_allocations_work)
{
    for (int round = 0; round < 3; round++) {
        struct pl_arena a = PL_ARENA_INIT;
        char *small = pl_arena_alloc(&a, 100);
        memset(small, 1, 100);
        char *big = pl_arena_alloc(&a, 10000); /* one-off chunk */
        memset(big, 2, 10000);
        char *more = pl_arena_alloc(&a, 3000); /* a new standard chunk */
        memset(more, 3, 3000);
        cr_assert_eq(small[99], 1);
        cr_assert_eq(big[9999], 2);
        cr_assert_str_eq(pl_arena_strndup(&a, "abcdef", 3), "abc");
        pl_arena_free(&a);
    }
    pl_slab_trim();
}
