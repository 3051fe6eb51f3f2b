/* RCU publication of config snapshots and per-worker pins; the design is in publish.h.
 *
 * Why an unpin on a retired snapshot can never be missed: retire() sets p->retired before the
 * grace period starts, and main only checks the pin counters after that grace period ended. The
 * worker's unpin (read p->retired, then store its counter) runs inside one read-side section of
 * that worker. RCU guarantees the section either ended before the grace period ended (then main
 * sees the new counter) or began after it began (then the worker sees retired and wakes main).
 * No new pin can appear after the grace period: pins are only taken on a snapshot read as
 * current, or on one already pinned (counter not zero).
 */
#include "config/publish.h"

#include <ev.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include "core/err.h"
#include "core/hugeheap.h"
#include "core/log.h"
#include "core/tsan.h"

/* ThreadSanitizer cannot see urcu's ordering (core/tsan.h): every quiescent state releases
 * pl_tsan_qs_sync, which main acquires before freeing a snapshot. */
#define tsan_acquire(a) pl_tsan_acquire(a)
#define tsan_release(a) pl_tsan_release(a)

/* Two lines: Intel's adjacent-line prefetcher pairs 64-byte lines, so 128 avoids false sharing. */
#define PL_PIN_SLOT_SIZE 128

/* One worker's pin count on one snapshot; written only by that worker. */
struct pl_pin_slot {
    _Atomic uint64_t n;
    char pad[PL_PIN_SLOT_SIZE - sizeof(uint64_t)];
} __attribute__((aligned(PL_PIN_SLOT_SIZE)));

struct pl_snapshot_pins {
    struct rcu_head rcu;           /* call_rcu on retire */
    struct pl_snapshot *snap;      /* the snapshot these pins belong to */
    struct pl_snapshot_pins *next; /* main's list of retired snapshots */
    _Atomic int retired;           /* set by main before the grace period starts */
    _Atomic int gp_done;           /* set by the call_rcu thread after the grace period */
    struct pl_pin_slot slot[];     /* one per worker id, own cache lines */
};

static struct {
    bool inited;
    struct ev_loop *loop;
    ev_async wake; /* poked by the call_rcu thread and by unpins of retired snapshots */
    unsigned n_workers;
    _Atomic(struct pl_snapshot *) current;
    uint64_t generation;
    struct pl_snapshot_pins *retired; /* main thread only */
    pl_publish_free_hook hook;
    void *hook_arg;
    struct pl_publish_stats stats;
    _Atomic unsigned callbacks; /* call_rcu callbacks queued and not finished */
    ev_timer trim;              /* malloc_trim after frees (trim_cb) */
    ev_tstamp last_trim;        /* when the last one ended */
    ev_tstamp trim_cost;        /* and how long it took */
} g;

char pl_tsan_qs_sync; /* TSan sync object for quiescent states (core/tsan.h) */

static struct pl_snapshot_pins *pins_new(struct pl_snapshot *s)
{
    size_t size =
        sizeof(struct pl_snapshot_pins) + (size_t)g.n_workers * sizeof(struct pl_pin_slot);
    struct pl_snapshot_pins *p = aligned_alloc(PL_PIN_SLOT_SIZE, size);
    if (!p)
        pl_die("out of memory (%zu bytes)", size);
    memset(p, 0, size);
    p->snap = s;
    return p;
}

static void free_published(struct pl_snapshot *s)
{
    /* every worker's accesses before its last quiescent state happen before this free */
    tsan_acquire(&pl_tsan_qs_sync);
    if (g.hook)
        g.hook(s, g.hook_arg);
    free(s->pins);
    s->pins = NULL;
    pl_log_debug("config", "freeing snapshot generation %llu", (unsigned long long)s->generation);
    pl_snapshot_free(s);
    g.stats.freed++;
}

static bool unpinned(struct pl_snapshot_pins *p)
{
    for (unsigned i = 0; i < g.n_workers; i++)
        if (atomic_load_explicit(&p->slot[i].n, memory_order_acquire))
            return false;
    return true;
}

static void gp_done_cb(struct rcu_head *head)
{
    struct pl_snapshot_pins *p = caa_container_of(head, struct pl_snapshot_pins, rcu);
    tsan_acquire(p); /* pairs with the release before call_rcu (urcu's queue is invisible) */
    atomic_store_explicit(&p->gp_done, 1, memory_order_release);
    ev_async_send(g.loop, &g.wake);
    /* last touch of g: shutdown waits for this instead of rcu_barrier(), whose internal
     * handoff ThreadSanitizer reports as a race inside liburcu */
    atomic_fetch_sub_explicit(&g.callbacks, 1, memory_order_release);
}

/* A config change leaves free memory all over the heap (the old snapshot, the decoded resources,
 * the compile's scratch), and glibc gives back only the top of the heap by itself: with 10,000
 * clusters and routes the free pages inside it were about 700 bytes of RSS per cluster and
 * route. malloc_trim returns them; it walks every free chunk (2 to 15 ms for a heap of that
 * size), so it runs PL_TRIM_AFTER seconds after a change, and while changes keep coming no
 * sooner than PL_TRIM_GAP times its last duration after the last one: at most a tenth of main's
 * time. */
#define PL_TRIM_AFTER 0.02
#define PL_TRIM_GAP   10.0

static void trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_ref(loop); /* the one-shot timer stopped: undo the unref of its start */
    ev_now_update(loop);
    ev_tstamp t0 = ev_now(loop);
    if (!pl_hugeheap_trim()) /* held: it runs when the configuration is complete */
        return;
    ev_now_update(loop);
    g.trim_cost = ev_now(loop) - t0;
    pl_log_debug("config", "malloc_trim after freeing snapshots: %.1f ms", g.trim_cost * 1e3);
    g.last_trim = ev_now(loop);
    g.stats.trims++;
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    pl_publish_reclaim();
}

static void retire(struct pl_snapshot *old)
{
    struct pl_snapshot_pins *p = old->pins;
    atomic_store_explicit(&p->retired, 1, memory_order_relaxed);
    p->next = g.retired;
    g.retired = p;
    g.stats.pending++;
    tsan_release(p);
    atomic_fetch_add_explicit(&g.callbacks, 1, memory_order_relaxed);
    /* urcu-qsbr wants call_rcu from an online registered thread; main stays offline otherwise */
    rcu_thread_online();
    call_rcu(&p->rcu, gp_done_cb);
    rcu_thread_offline();
}

int pl_publish_init(struct ev_loop *loop, unsigned n_workers)
{
    if (g.inited || !loop)
        return PL_EINVAL;
    memset(&g, 0, sizeof(g));
    g.loop = loop;
    g.n_workers = n_workers;
    ev_async_init(&g.wake, wake_cb);
    ev_async_start(loop, &g.wake);
    ev_unref(loop); /* reclamation alone does not keep the main loop running */
    ev_timer_init(&g.trim, trim_cb, 0., 0.);
    g.last_trim = ev_now(loop);
    rcu_register_thread();
    rcu_thread_offline();
    g.inited = true;
    return 0;
}

int pl_publish(struct pl_snapshot *s)
{
    if (!g.inited || !s || s->pins)
        return PL_EINVAL;
    s->generation = ++g.generation;
    s->pins = pins_new(s);
    struct pl_snapshot *old = atomic_load_explicit(&g.current, memory_order_relaxed);
    /* rcu_assign_pointer, as a C11 release store so ThreadSanitizer understands it */
    atomic_store_explicit(&g.current, s, memory_order_release);
    g.stats.published++;
    pl_log_debug("config", "published snapshot generation %llu", (unsigned long long)s->generation);
    if (old)
        retire(old);
    return 0;
}

size_t pl_publish_reclaim(void)
{
    size_t n = 0;
    struct pl_snapshot_pins **pp = &g.retired;
    while (*pp) {
        struct pl_snapshot_pins *p = *pp;
        if (!atomic_load_explicit(&p->gp_done, memory_order_acquire) || !unpinned(p)) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        g.stats.pending--;
        free_published(p->snap);
        n++;
    }
    if (n && !ev_is_active(&g.trim)) {
        ev_tstamp at = g.last_trim + PL_TRIM_GAP * g.trim_cost - ev_now(g.loop);
        ev_timer_set(&g.trim, at > PL_TRIM_AFTER ? at : PL_TRIM_AFTER, 0.);
        ev_timer_start(g.loop, &g.trim);
        ev_unref(g.loop); /* nor does a pending trim */
    }
    return n;
}

void pl_publish_shutdown(void)
{
    if (!g.inited)
        return;
    /* wait until every grace-period callback has run: no more pokes from urcu. This needs
     * the workers stopped (or at least reporting quiescent states). */
    while (atomic_load_explicit(&g.callbacks, memory_order_acquire))
        usleep(1000);
    pl_publish_reclaim();
    while (g.retired) {
        struct pl_snapshot_pins *p = g.retired;
        g.retired = p->next;
        pl_log_warn("config", "snapshot generation %llu still pinned at shutdown; freeing it",
                    (unsigned long long)p->snap->generation);
        g.stats.pending--;
        free_published(p->snap);
    }
    struct pl_snapshot *cur = atomic_load_explicit(&g.current, memory_order_relaxed);
    if (cur)
        free_published(cur);
    atomic_store_explicit(&g.current, NULL, memory_order_relaxed);
    ev_ref(g.loop);
    ev_async_stop(g.loop, &g.wake);
    if (ev_is_active(&g.trim)) {
        ev_ref(g.loop);
        ev_timer_stop(g.loop, &g.trim);
    }
    rcu_thread_online();
    rcu_unregister_thread();
    g.inited = false;
}

void pl_publish_set_free_hook(pl_publish_free_hook fn, void *arg)
{
    g.hook = fn;
    g.hook_arg = arg;
}

void pl_publish_get_stats(struct pl_publish_stats *st)
{
    *st = g.stats;
}

unsigned pl_publish_n_workers(void)
{
    return g.inited ? g.n_workers : 0;
}

const struct pl_snapshot *pl_snapshot_current(void)
{
    /* rcu_dereference; acquire costs nothing more than a plain load on x86 */
    return atomic_load_explicit(&g.current, memory_order_acquire);
}

void pl_snapshot_pin(const struct pl_snapshot *s, unsigned worker)
{
    _Atomic uint64_t *c = &s->pins->slot[worker].n;
    /* only this worker writes c: a load and a store, no read-modify-write */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void pl_snapshot_unpin(const struct pl_snapshot *s, unsigned worker)
{
    struct pl_snapshot_pins *p = s->pins;
    _Atomic uint64_t *c = &p->slot[worker].n;
    uint64_t n = atomic_load_explicit(c, memory_order_relaxed);
    if (n == 0)
        pl_die("pl_snapshot_unpin: worker %u holds no pin on generation %llu", worker,
               (unsigned long long)s->generation);
    /* read retired while our pin still keeps p alive; see the comment at the top */
    bool wake = n == 1 && atomic_load_explicit(&p->retired, memory_order_relaxed);
    /* release: our reads of the snapshot happen before main's free */
    atomic_store_explicit(c, n - 1, memory_order_release);
    if (wake)
        ev_async_send(g.loop, &g.wake);
}

uint64_t pl_snapshot_pins_held(const struct pl_snapshot *s, unsigned worker)
{
    return atomic_load_explicit(&s->pins->slot[worker].n, memory_order_relaxed);
}

void pl_rcu_thread_register(void)
{
    rcu_register_thread();
}

void pl_rcu_thread_unregister(void)
{
    tsan_release(&pl_tsan_qs_sync);
    rcu_unregister_thread();
}

void pl_rcu_quiescent(void)
{
    tsan_release(&pl_tsan_qs_sync);
    rcu_quiescent_state();
}

void pl_rcu_offline(void)
{
    tsan_release(&pl_tsan_qs_sync);
    rcu_thread_offline();
}

void pl_rcu_online(void)
{
    rcu_thread_online();
}
