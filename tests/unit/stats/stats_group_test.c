/* pl_stats_group: stats sharing a name prefix, stored once; same names and behaviour as stats
 * made one by one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

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
