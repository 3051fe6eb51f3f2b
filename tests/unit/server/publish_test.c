/* RCU publish and pins: unit tests and a multi-threaded stress test (threads suite). */
#ifdef PL_TEST_STANDALONE
#include "nocriterion.h"
#else
#include <criterion/criterion.h>
#endif
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include "config/publish.h"
#include "core/err.h"
#include "core/log.h"

#define MAX_PUBLISH 5000
#define MAX_SECONDS 10
#define N_READERS   4
#define MAX_HELD    8

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* A snapshot whose listeners carry a checksum (hash == fnv(name)) that the free hook breaks. */
static struct pl_snapshot *make_snapshot(unsigned seed)
{
    struct pl_snapshot *s = pl_snapshot_new();
    s->n_listeners = 1 + seed % 3;
    s->listeners = pl_calloc(s->n_listeners, sizeof(*s->listeners));
    for (size_t i = 0; i < s->n_listeners; i++) {
        s->listeners[i].name = pl_asprintf("listener-%u-%zu", seed, i);
        s->listeners[i].hash = fnv(s->listeners[i].name);
    }
    return s;
}

static int snapshot_ok(const struct pl_snapshot *s)
{
    if (s->n_listeners < 1 || s->n_listeners > 3)
        return 0;
    for (size_t i = 0; i < s->n_listeners; i++)
        if (s->listeners[i].hash != fnv(s->listeners[i].name))
            return 0;
    return 1;
}

static uint8_t freed_count[MAX_PUBLISH + 2];
static atomic_int bad_free;

static void count_free(struct pl_snapshot *s, void *arg)
{
    (void)arg;
    if (s->generation == 0 || s->generation > MAX_PUBLISH + 1) {
        atomic_fetch_add(&bad_free, 1);
        return;
    }
    freed_count[s->generation]++;
    /* break the checksum: a reader still using it would notice even without ASan */
    for (size_t i = 0; i < s->n_listeners; i++)
        s->listeners[i].hash = 0;
}

static struct ev_loop *test_loop(void)
{
    memset(freed_count, 0, sizeof(freed_count));
    atomic_store(&bad_free, 0);
    pl_log_set_level(PL_LOG_WARN);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert(loop);
    cr_assert_eq(pl_publish_init(loop, N_READERS), 0);
    pl_publish_set_free_hook(count_free, NULL);
    return loop;
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* Runs the loop until `freed` reaches want or `ticks` 10 ms ticks pass. */
static void run_until_freed_for(struct ev_loop *loop, uint64_t want, int ticks)
{
    ev_timer t;
    ev_timer_init(&t, timeout_cb, 0.01, 0.01);
    ev_timer_start(loop, &t);
    for (int i = 0; i < ticks; i++) {
        struct pl_publish_stats st;
        pl_publish_get_stats(&st);
        if (st.freed >= want)
            break;
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
}

static void run_until_freed(struct ev_loop *loop, uint64_t want)
{
    run_until_freed_for(loop, want, 300);
}

Test(publish, generations_and_current)
{
    struct ev_loop *loop = test_loop();
    cr_assert_null(pl_snapshot_current());
    for (unsigned i = 1; i <= 3; i++) {
        struct pl_snapshot *s = make_snapshot(i);
        cr_assert_eq(pl_publish(s), 0);
        cr_assert_eq(s->generation, i);
        cr_assert_eq(pl_snapshot_current(), s);
        cr_assert_eq(pl_publish(s), PL_EINVAL, "publishing twice is refused");
    }
    cr_assert_eq(pl_publish(NULL), PL_EINVAL);
    run_until_freed(loop, 2);
    struct pl_publish_stats st;
    pl_publish_get_stats(&st);
    cr_assert_eq(st.published, 3);
    cr_assert_eq(st.freed, 2);
    cr_assert_eq(st.pending, 0);
    cr_assert_eq(freed_count[1], 1);
    cr_assert_eq(freed_count[2], 1);
    pl_publish_shutdown();
    cr_assert_eq(freed_count[3], 1);
    cr_assert_null(pl_snapshot_current());
    ev_loop_destroy(loop);
}

/* Freed snapshots are followed by a heap trim (one for frees that come together), which does not
 * keep the loop running by itself. */
Test(publish, trim_after_frees)
{
    struct ev_loop *loop = test_loop();
    for (unsigned i = 1; i <= 4; i++)
        cr_assert_eq(pl_publish(make_snapshot(i)), 0);
    run_until_freed(loop, 3);
    struct pl_publish_stats st;
    for (int i = 0; i < 300; i++) { /* bounded: 10 ms ticks */
        pl_publish_get_stats(&st);
        if (st.trims)
            break;
        run_until_freed_for(loop, UINT64_MAX, 1);
    }
    cr_assert_eq(st.freed, 3);
    cr_assert(st.trims >= 1 && st.trims <= 3, "%llu trims", (unsigned long long)st.trims);
    cr_assert_eq(ev_run(loop, EVRUN_NOWAIT), 0, "nothing of publish keeps the loop alive");
    pl_publish_shutdown();
    ev_loop_destroy(loop);
}

Test(publish, pinned_snapshot_outlives_grace_period_until_unpin)
{
    struct ev_loop *loop = test_loop();
    pl_publish(make_snapshot(1));
    const struct pl_snapshot *s1 = pl_snapshot_current();
    pl_snapshot_pin(s1, 2);
    pl_snapshot_pin(s1, 2);
    pl_snapshot_pin(s1, 3);
    cr_assert_eq(pl_snapshot_pins_held(s1, 2), 2);
    pl_publish(make_snapshot(2));
    synchronize_rcu(); /* main is offline: allowed; the grace period has now passed */
    run_until_freed_for(loop, 1, 20);
    cr_assert_eq(freed_count[1], 0, "pinned snapshot must not be freed");
    cr_assert(snapshot_ok(s1));
    pl_snapshot_unpin(s1, 2);
    pl_snapshot_unpin(s1, 3);
    run_until_freed_for(loop, 1, 20);
    cr_assert_eq(freed_count[1], 0, "still one pin on worker 2");
    pl_snapshot_unpin(s1, 2); /* last pin: wakes the main loop, which frees it */
    run_until_freed(loop, 1);
    cr_assert_eq(freed_count[1], 1);
    pl_publish_shutdown();
    cr_assert_eq(freed_count[2], 1);
    ev_loop_destroy(loop);
}

Test(publish, shutdown_frees_pinned_leftovers)
{
    struct ev_loop *loop = test_loop();
    pl_log_set_level(PL_LOG_OFF);
    pl_publish(make_snapshot(1));
    pl_snapshot_pin(pl_snapshot_current(), 0);
    pl_publish(make_snapshot(2));
    pl_publish_shutdown();
    cr_assert_eq(freed_count[1], 1);
    cr_assert_eq(freed_count[2], 1);
    cr_assert_eq(pl_publish_init(loop, 1), 0, "init again after shutdown");
    pl_publish_shutdown();
    pl_publish_shutdown(); /* idempotent */
    ev_loop_destroy(loop);
}

/* ---- stress: readers pin and unpin while main publishes ---- */

struct reader {
    pthread_t tid;
    unsigned id;
    unsigned seed;
    uint64_t iterations, pins_taken, max_gen;
    const struct pl_snapshot *held[MAX_HELD];
    unsigned hold_left[MAX_HELD]; /* loop iterations to keep the pin */
    unsigned depth[MAX_HELD];     /* pins taken on held[i]: 1 or 2 */
};

static atomic_int stop_readers;
static atomic_int reader_errors;
static atomic_int readers_started;

static void reader_error(const char *what)
{
    fprintf(stderr, "reader error: %s\n", what);
    atomic_fetch_add(&reader_errors, 1);
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    pl_rcu_thread_register();
    atomic_fetch_add(&readers_started, 1);
    uint64_t last_gen = 0;
    while (!atomic_load_explicit(&stop_readers, memory_order_relaxed)) {
        /* one "loop iteration" */
        const struct pl_snapshot *s = pl_snapshot_current();
        if (s) {
            if (s->generation < last_gen)
                reader_error("generation went backwards");
            last_gen = s->generation;
            if (!snapshot_ok(s))
                reader_error("current snapshot corrupt");
            unsigned slot = rand_r(&r->seed) % MAX_HELD;
            if (!r->held[slot] && rand_r(&r->seed) % 4 == 0) {
                pl_snapshot_pin(s, r->id);
                r->depth[slot] = 1 + rand_r(&r->seed) % 2;
                if (r->depth[slot] == 2)
                    pl_snapshot_pin(s, r->id); /* nested pin on an already pinned snapshot */
                r->held[slot] = s;
                r->hold_left[slot] = 1 + rand_r(&r->seed) % 200;
                r->pins_taken++;
            }
        }
        for (unsigned i = 0; i < MAX_HELD; i++) {
            if (!r->held[i])
                continue;
            if (!snapshot_ok(r->held[i]))
                reader_error("pinned snapshot corrupt");
            if (--r->hold_left[i])
                continue;
            for (unsigned d = 0; d < r->depth[i]; d++)
                pl_snapshot_unpin(r->held[i], r->id);
            r->held[i] = NULL;
        }
        r->iterations++;
        if (r->iterations % 64 == 0) {
            /* "blocked in epoll": offline, holding only pinned snapshots */
            pl_rcu_offline();
            usleep(50);
            pl_rcu_online();
        } else {
            pl_rcu_quiescent();
        }
    }
    r->max_gen = last_gen;
    for (unsigned i = 0; i < MAX_HELD; i++) {
        for (unsigned d = 0; r->held[i] && d < r->depth[i]; d++)
            pl_snapshot_unpin(r->held[i], r->id);
    }
    pl_rcu_thread_unregister();
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(publish, stress_readers_pin_while_main_publishes, .timeout = 120)
{
    struct ev_loop *loop = test_loop();
    atomic_store(&stop_readers, 0);
    atomic_store(&reader_errors, 0);
    atomic_store(&readers_started, 0);
    struct reader readers[N_READERS];
    memset(readers, 0, sizeof(readers));
    cr_assert_eq(pl_publish(make_snapshot(0)), 0);
    for (unsigned i = 0; i < N_READERS; i++) {
        readers[i].id = i;
        readers[i].seed = 1234 + i;
        cr_assert_eq(pthread_create(&readers[i].tid, NULL, reader_main, &readers[i]), 0);
    }
    while (atomic_load(&readers_started) < N_READERS)
        usleep(100);

    double start = now_s();
    unsigned published = 1;
    uint64_t max_pending = 0;
    while (published < MAX_PUBLISH && now_s() - start < MAX_SECONDS) {
        cr_assert_eq(pl_publish(make_snapshot(published)), 0);
        published++;
        ev_run(loop, EVRUN_NOWAIT);
        struct pl_publish_stats st;
        pl_publish_get_stats(&st);
        if (st.pending > max_pending)
            max_pending = st.pending;
        if (published % 16 == 0)
            usleep(200); /* let grace periods complete and readers catch up */
    }
    atomic_store(&stop_readers, 1);
    uint64_t iterations = 0, pins = 0;
    for (unsigned i = 0; i < N_READERS; i++) {
        pthread_join(readers[i].tid, NULL);
        iterations += readers[i].iterations;
        pins += readers[i].pins_taken;
    }
    /* readers have dropped every pin: everything retired gets freed without shutdown's help */
    run_until_freed(loop, published - 1);
    struct pl_publish_stats st;
    pl_publish_get_stats(&st);
    cr_log_info("published %u in %.2fs, reader iterations %llu, pins %llu, max pending %llu",
                published, now_s() - start, (unsigned long long)iterations,
                (unsigned long long)pins, (unsigned long long)max_pending);
    cr_assert_eq(atomic_load(&reader_errors), 0);
    cr_assert_eq(st.published, published);
    cr_assert_eq(st.freed, published - 1, "freed %llu of %u retired", (unsigned long long)st.freed,
                 published - 1);
    cr_assert_eq(st.pending, 0);
    cr_assert_gt(pins, 0);
    pl_publish_shutdown();
    cr_assert_eq(atomic_load(&bad_free), 0);
    for (unsigned g = 1; g <= published; g++)
        cr_assert_eq(freed_count[g], 1, "generation %u freed %u times", g, freed_count[g]);
    for (unsigned i = 0; i < N_READERS; i++)
        cr_assert_leq(readers[i].max_gen, published);
    ev_loop_destroy(loop);
}
