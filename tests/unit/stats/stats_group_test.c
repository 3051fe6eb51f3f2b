/* pl_stats_group: stats sharing a name prefix, stored once; same names and behaviour as stats
 * made one by one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stats/stats.h"
#include "stats/stats_internal.h"

static const struct pl_stats_member two_m[] = {{"rq_total", PL_STATS_MEMBER_COUNTER},
                                               {"cx_active", PL_STATS_MEMBER_GAUGE}};
static const struct pl_stats_group_def two = {two_m, 2};
static const struct pl_stats_member other_m[] = {{"update_attempt", PL_STATS_MEMBER_COUNTER}};
static const struct pl_stats_group_def other = {other_m, 1};
static const struct pl_stats_member overlap_m[] = {{"update_attempt", PL_STATS_MEMBER_COUNTER},
                                                   {"rq_total", PL_STATS_MEMBER_COUNTER}};
static const struct pl_stats_group_def overlap = {overlap_m, 2};
static const struct pl_stats_member dotted_m[] = {{"a.b", PL_STATS_MEMBER_COUNTER}};
static const struct pl_stats_group_def dotted = {dotted_m, 1};

static char *text(struct pl_stats *s, const char *filter, bool used)
{
    struct pl_stats_render_opts o = {.filter = filter, .used_only = used};
    char *out = NULL;
    cr_assert_eq(pl_stats_render(s, PL_STATS_TEXT, &o, &out, NULL), 0);
    return out;
}

#define EXPECT_TEXT(s, filter, used, expected)                                                     \
    do {                                                                                           \
        char *got_ = text(s, filter, used);                                                        \
        cr_assert_str_eq(got_, expected);                                                          \
        free(got_);                                                                                \
    } while (0)

Test(stats_group, names_values_and_lookup_by_name)
{
    struct pl_stats *s = pl_stats_new();
    uint32_t v[2], w[2];
    pl_stats_group(s, "cluster.b.", &two, v);
    pl_stats_group(s, "cluster.a.", &two, w);
    pl_counter_add((struct pl_counter){s, v[0]}, 3);
    pl_gauge_add((struct pl_gauge){s, w[1]}, 2);
    EXPECT_TEXT(s, NULL, false,
                "cluster.a.cx_active: 2\ncluster.a.rq_total: 0\ncluster.b.cx_active: 0\n"
                "cluster.b.rq_total: 3\n");
    EXPECT_TEXT(s, NULL, true, "cluster.a.cx_active: 2\ncluster.b.rq_total: 3\n");
    EXPECT_TEXT(s, "^cluster\\.b\\.rq", false, "cluster.b.rq_total: 3\n");
    /* the same stats by name, and the same group again */
    cr_assert_eq(pl_stats_counter(s, "cluster.b.rq_total").slot, v[0]);
    cr_assert_eq(pl_stats_gauge(s, "cluster.a.cx_active").slot, w[1]);
    uint32_t again[2];
    pl_stats_group(s, "cluster.b.", &two, again);
    cr_assert_eq(again[0], v[0]);
    cr_assert_eq(again[1], v[1]);
    /* a name of another kind is discarded, as for single stats */
    pl_counter_add(pl_stats_counter(s, "cluster.a.cx_active"), 9);
    EXPECT_TEXT(s, "cx_active", false, "cluster.a.cx_active: 2\ncluster.b.cx_active: 0\n");
    /* reset: group counters too */
    pl_stats_reset_counters(s);
    cr_assert_eq(pl_counter_value((struct pl_counter){s, v[0]}), 0);
    pl_counter_inc((struct pl_counter){s, v[0]});
    cr_assert_eq(pl_counter_value((struct pl_counter){s, v[0]}), 1);
    pl_stats_free(s);
}

Test(stats_group, singles_made_first_keep_their_stats)
{
    struct pl_stats *s = pl_stats_new();
    struct pl_counter c = pl_stats_counter(s, "cluster.x.rq_total");
    pl_counter_add(c, 4);
    uint32_t v[2];
    pl_stats_group(s, "cluster.x.", &two, v);
    cr_assert_eq(v[0], c.slot);
    EXPECT_TEXT(s, NULL, false, "cluster.x.cx_active: 0\ncluster.x.rq_total: 4\n");
    pl_stats_free(s);
}

Test(stats_group, groups_of_one_prefix)
{
    struct pl_stats *s = pl_stats_new();
    uint32_t a[2], b[1], c[2];
    pl_stats_group(s, "cluster.x.", &two, a);
    pl_stats_group(s, "cluster.x.", &other, b);   /* disjoint: a second group */
    pl_stats_group(s, "cluster.x.", &overlap, c); /* shares names: made one by one */
    cr_assert_eq(c[0], b[0]);
    cr_assert_eq(c[1], a[0]);
    pl_counter_inc((struct pl_counter){s, c[1]});
    EXPECT_TEXT(s, NULL, false,
                "cluster.x.cx_active: 0\ncluster.x.rq_total: 1\ncluster.x.update_attempt: 0\n");
    pl_stats_free(s);
}

Test(stats_group, prefixes_without_a_dot_and_dotted_suffixes)
{
    struct pl_stats *s = pl_stats_new();
    uint32_t v[2], d[1];
    pl_stats_group(s, "nodot_", &two, v);
    pl_stats_group(s, "p.", &dotted, d);
    cr_assert_eq(pl_stats_counter(s, "nodot_rq_total").slot, v[0]);
    cr_assert_eq(pl_stats_counter(s, "p.a.b").slot, d[0]);
    EXPECT_TEXT(s, NULL, false, "nodot_cx_active: 0\nnodot_rq_total: 0\np.a.b: 0\n");
    pl_stats_free(s);
}

Test(stats_group, many_groups)
{
    struct pl_stats *s = pl_stats_new();
    char p[64];
    uint32_t v[2];
    for (int i = 0; i < 5000; i++) {
        snprintf(p, sizeof(p), "cluster.c%d.", i);
        pl_stats_group(s, p, &two, v);
        pl_counter_add((struct pl_counter){s, v[0]}, (uint64_t)i);
    }
    for (int i = 0; i < 5000; i += 499) {
        snprintf(p, sizeof(p), "cluster.c%d.rq_total", i);
        cr_assert_eq(pl_counter_value(pl_stats_counter(s, p)), (uint64_t)i);
    }
    EXPECT_TEXT(s, "^cluster\\.c4999\\.", false,
                "cluster.c4999.cx_active: 0\ncluster.c4999.rq_total: 4999\n");
    pl_stats_free(s);
}

/* Members written by main only sit in blocks apart from the others; names, values, renderings,
 * lookups and resets are those of the same stats made one by one. */
static const struct pl_stats_member mixed_m[] = {
    {"upstream_rq_total", PL_STATS_MEMBER_COUNTER},
    {"membership_total", PL_STATS_MEMBER_MAIN_GAUGE},
    {"upstream_cx_active", PL_STATS_MEMBER_GAUGE},
    {"lb_healthy_panic", PL_STATS_MEMBER_COUNTER},
    {"membership_healthy", PL_STATS_MEMBER_MAIN_GAUGE},
};
static const struct pl_stats_group_def mixed = {mixed_m, 5};
static const struct pl_stats_member xds_m[] = {
    {"update_attempt", PL_STATS_MEMBER_MAIN_COUNTER},
    {"version", PL_STATS_MEMBER_MAIN_GAUGE},
    {"update_success", PL_STATS_MEMBER_MAIN_COUNTER},
};
static const struct pl_stats_group_def xds = {xds_m, 3};

/* Writes cluster i's values: through a bound shard for the shard's members, from no shard for
 * main's (as the main thread does). */
static void write_cluster(struct pl_stats_shard *sh, struct pl_stats *s, const uint32_t *v,
                          const uint32_t *x, int i)
{
    pl_stats_shard_bind(sh);
    pl_counter_add((struct pl_counter){s, v[0]}, (uint64_t)i);
    if (i % 3)
        pl_gauge_add((struct pl_gauge){s, v[2]}, i % 7);
    if (i % 5 == 1)
        pl_counter_inc((struct pl_counter){s, v[3]});
    pl_stats_shard_bind(NULL);
    pl_gauge_set((struct pl_gauge){s, v[1]}, 10);
    if (i % 4)
        pl_gauge_set((struct pl_gauge){s, v[4]}, i % 11);
    pl_counter_add((struct pl_counter){s, x[0]}, 2);
    if (i % 2)
        pl_gauge_set((struct pl_gauge){s, x[1]}, 1000 + i);
    pl_counter_inc((struct pl_counter){s, x[2]});
}

static void expect_same(struct pl_stats *a, struct pl_stats *b, bool used)
{
    static const enum pl_stats_format fmts[] = {PL_STATS_TEXT, PL_STATS_JSON, PL_STATS_PROMETHEUS};
    struct pl_stats_render_opts o = {.used_only = used};
    for (size_t f = 0; f < 3; f++) {
        char *ra = NULL, *rb = NULL;
        cr_assert_eq(pl_stats_render(a, fmts[f], &o, &ra, NULL), 0);
        cr_assert_eq(pl_stats_render(b, fmts[f], &o, &rb, NULL), 0);
        cr_assert_str_eq(ra, rb, "format %zu differs", f);
        free(ra);
        free(rb);
    }
}

Test(stats_group, main_members_render_as_single_stats)
{
    enum { N = 700 }; /* 700 * 8 shard slots and 700 * 7 main slots: blocks of both kinds */
    struct pl_stats *g = pl_stats_new(), *one = pl_stats_new();
    struct pl_stats_shard *gsh = pl_stats_shard_new(g), *osh = pl_stats_shard_new(one);
    char p[64], name[96];
    for (int i = 0; i < N; i++) {
        uint32_t v[5], x[3], ov[5], ox[3];
        snprintf(p, sizeof(p), "cluster.c%d.", i);
        pl_stats_group(g, p, &mixed, v);
        pl_stats_group(g, p, &xds, x);
        for (uint32_t k = 0; k < 5; k++) {
            snprintf(name, sizeof(name), "%s%s", p, mixed_m[k].suffix);
            bool gauge = mixed_m[k].kind == PL_STATS_MEMBER_GAUGE ||
                         mixed_m[k].kind == PL_STATS_MEMBER_MAIN_GAUGE;
            ov[k] = gauge ? pl_stats_gauge(one, name).slot : pl_stats_counter(one, name).slot;
            /* the group's members found by name */
            uint32_t found = gauge ? pl_stats_gauge(g, name).slot : pl_stats_counter(g, name).slot;
            cr_assert_eq(found, v[k], "%s", name);
        }
        for (uint32_t k = 0; k < 3; k++) {
            snprintf(name, sizeof(name), "%s%s", p, xds_m[k].suffix);
            bool gauge = k == 1;
            ox[k] = gauge ? pl_stats_gauge(one, name).slot : pl_stats_counter(one, name).slot;
            uint32_t found = gauge ? pl_stats_gauge(g, name).slot : pl_stats_counter(g, name).slot;
            cr_assert_eq(found, x[k], "%s", name);
        }
        /* the same group again: the same slots */
        uint32_t again[3];
        pl_stats_group(g, p, &xds, again);
        cr_assert_arr_eq(again, x, sizeof(x));
        write_cluster(gsh, g, v, x, i);
        write_cluster(osh, one, ov, ox, i);
    }
    expect_same(g, one, false);
    expect_same(g, one, true);
    EXPECT_TEXT(g, "^cluster\\.c699\\.", false,
                "cluster.c699.lb_healthy_panic: 0\ncluster.c699.membership_healthy: 6\n"
                "cluster.c699.membership_total: 10\ncluster.c699.update_attempt: 2\n"
                "cluster.c699.update_success: 1\ncluster.c699.upstream_cx_active: 0\n"
                "cluster.c699.upstream_rq_total: 699\ncluster.c699.version: 1699\n");
    pl_stats_reset_counters(g);
    pl_stats_reset_counters(one);
    expect_same(g, one, false);
    EXPECT_TEXT(g, "^cluster\\.c699\\.(update|version)", false,
                "cluster.c699.update_attempt: 0\ncluster.c699.update_success: 0\n"
                "cluster.c699.version: 1699\n");
    pl_stats_free(g);
    pl_stats_free(one);
}

/* Names are kept in the store (one copy per prefix, long ones too) and outlive the caller's. */
Test(stats_group, names_are_the_stores)
{
    struct pl_stats *s = pl_stats_new();
    char *p = malloc(6000), *single = malloc(6100);
    memset(p, 'x', 5998);
    memcpy(p, "cluster.", 8);
    p[5998] = '.';
    p[5999] = 0;
    uint32_t v[2], x[3];
    pl_stats_group(s, p, &two, v); /* too long to be a group: made one by one */
    snprintf(single, 6100, "%s%s", p, "single");
    struct pl_counter c = pl_stats_counter(s, single);
    pl_stats_group(s, "cluster.short.", &two, v);
    pl_stats_group(s, "cluster.short.", &xds, x);
    memset(p, 'y', 5999);
    memset(single, 'y', 6000);
    free(p);
    free(single);
    pl_counter_inc(c);
    pl_gauge_set((struct pl_gauge){s, x[1]}, 3);
    char *out = text(s, NULL, true);
    cr_assert(strstr(out, "xxxxx.single: 1\n"));
    cr_assert(strstr(out, "cluster.short.version: 3\n"));
    free(out);
    pl_stats_free(s);
}

/* Pages of shard sh's blocks that are in memory. */
static size_t resident_pages(struct pl_stats *s, struct pl_stats_shard *sh)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = PL_STATS_BLOCK_SLOTS * sizeof(uint64_t);
    unsigned char vec[64];
    cr_assert_leq(len / page, sizeof(vec));
    size_t n = 0;
    for (uint32_t b = 0; b < s->nblocks; b++) {
        cr_assert_eq(mincore((void *)sh->blocks[b], len, vec), 0);
        for (size_t i = 0; i < len / page; i++)
            n += vec[i] & 1;
    }
    return n;
}

/* A shard's pages take memory once written only, and main's members are not on the pages of the
 * others: 2,000 clusters whose main members alone were written leave the worker's shard empty and
 * the others' pages of the shared shard untouched. */
Test(stats_group, untouched_pages_take_no_memory)
{
    enum { N = 2000 };
    struct pl_stats *s = pl_stats_new();
    struct pl_stats_shard *w = pl_stats_shard_new(s);
    uint32_t v[5], x[3], first[5] = {0};
    for (int i = 0; i < N; i++) {
        char p[64];
        snprintf(p, sizeof(p), "cluster.c%d.", i);
        pl_stats_group(s, p, &mixed, v);
        pl_stats_group(s, p, &xds, x);
        pl_gauge_set((struct pl_gauge){s, v[1]}, 10);
        pl_gauge_set((struct pl_gauge){s, v[4]}, 10);
        pl_counter_inc((struct pl_counter){s, x[0]});
        pl_gauge_set((struct pl_gauge){s, x[1]}, 7);
        if (!i)
            memcpy(first, v, sizeof(v));
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t main_bytes = (size_t)N * 8 * sizeof(uint64_t); /* 8 slots: 2 + 2 + 1 + 1 + 2 */
    cr_assert_eq(resident_pages(s, w), 0);
    cr_assert_leq(resident_pages(s, s->shards[0]), main_bytes / page + 2);
    cr_assert_geq(s->nblocks, 4); /* the others' blocks exist, unwritten */
    pl_stats_shard_bind(w);
    pl_counter_inc((struct pl_counter){s, first[0]});
    pl_stats_shard_bind(NULL);
    cr_assert_eq(resident_pages(s, w), 1);
    pl_stats_free(s);
}
