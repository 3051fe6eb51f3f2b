/* Workers update stats through their own shards (and one thread through the shared fallback)
 * while the main thread renders; run under TSan in the 'threads' suite. */
#ifdef PL_TEST_STANDALONE
#include "nocriterion.h"
#else
#include <criterion/criterion.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

#define WORKERS 4
#define ITERS   100000

struct worker {
    pthread_t t;
    struct pl_stats_shard *shard; /* NULL: use the shared fallback */
    struct pl_counter rq;
    struct pl_gauge active;
    struct pl_histogram time;
};

static _Atomic int running;

static void *work(void *arg)
{
    struct worker *w = arg;
    pl_stats_shard_bind(w->shard);
    for (int i = 0; i < ITERS; i++) {
        pl_counter_inc(w->rq);
        pl_gauge_add(w->active, 1);
        pl_histogram_record(w->time, (uint64_t)(i % 100));
        pl_gauge_add(w->active, -1);
    }
    pl_gauge_add(w->active, 1);
    pl_stats_shard_bind(NULL);
    atomic_fetch_sub(&running, 1);
    return NULL;
}

Test(stats_threads, workers_increment_main_renders)
{
    struct pl_stats *s = pl_stats_new();
    struct worker w[WORKERS + 1];
    atomic_store(&running, WORKERS + 1);
    for (int i = 0; i <= WORKERS; i++) {
        w[i].shard = i < WORKERS ? pl_stats_shard_new(s) : NULL;
        w[i].rq = pl_stats_counter(s, "cluster.web.upstream_rq_total");
        w[i].active = pl_stats_gauge(s, "cluster.web.upstream_rq_active");
        w[i].time = pl_stats_histogram(s, "cluster.web.upstream_rq_time");
    }
    for (int i = 0; i <= WORKERS; i++)
        cr_assert_eq(pthread_create(&w[i].t, NULL, work, &w[i]), 0);
    int renders = 0;
    while (atomic_load(&running) > 0 || renders < 3) {
        char *out;
        cr_assert_eq(pl_stats_render(s, renders % 3, NULL, &out, NULL), 0);
        free(out);
        /* stats created while workers run must not disturb them */
        char name[32];
        snprintf(name, sizeof(name), "late.%d", renders);
        pl_counter_inc(pl_stats_counter(s, name));
        renders++;
    }
    for (int i = 0; i <= WORKERS; i++)
        pthread_join(w[i].t, NULL);
    cr_assert_eq(pl_counter_value(w[0].rq), (uint64_t)(WORKERS + 1) * ITERS);
    cr_assert_eq(pl_gauge_value(w[0].active), WORKERS + 1);
    uint64_t count, sum;
    pl_histogram_totals(w[0].time, &count, &sum);
    cr_assert_eq(count, (uint64_t)(WORKERS + 1) * ITERS);
    cr_assert_eq(sum, (uint64_t)(WORKERS + 1) * (ITERS / 100) * 4950);
    char *out;
    struct pl_stats_render_opts o = {.filter = "upstream_rq_(total|active)"};
    cr_assert_eq(pl_stats_render(s, PL_STATS_TEXT, &o, &out, NULL), 0);
    cr_assert_str_eq(out, "cluster.web.upstream_rq_active: 5\n"
                          "cluster.web.upstream_rq_total: 500000\n");
    free(out);
    pl_stats_free(s);
}
