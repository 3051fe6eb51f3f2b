/* RCU publication of config snapshots and per-worker pins (DESIGN.md section 2).
 *
 * Writer: the main thread calls pl_publish(); it is the only writer.
 * Readers: worker threads registered with pl_rcu_thread_register(). A worker reports a quiescent
 * state once per loop iteration (pl_rcu_quiescent) and goes offline while blocked in the poll
 * (pl_rcu_offline / pl_rcu_online). Between two quiescent states the pointer returned by
 * pl_snapshot_current() stays valid. A request that lives across loop iterations pins the
 * snapshot it uses (pl_snapshot_pin / pl_snapshot_unpin with the worker's id): a pin only
 * writes a counter that belongs to that worker, on a cache line of its own.
 *
 * Reclamation: the retired snapshot is handed to call_rcu(); the call_rcu thread marks it
 * "grace period done" and wakes the main loop (ev_async). The main loop frees it (via
 * pl_snapshot_free) once every worker's pin counter for it reads zero. A worker whose unpin
 * drops its counter to zero on a retired snapshot wakes the main loop too. After the grace
 * period no new pin can appear, because a worker may only pin a snapshot it read as current
 * within the same read-side section (or one it already pins).
 */
#ifndef PL_CONFIG_PUBLISH_H
#define PL_CONFIG_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "config/snapshot.h"

struct ev_loop;

/* Called on the main thread just before a published snapshot is freed (tests, stats). */
typedef void (*pl_publish_free_hook)(struct pl_snapshot *s, void *arg);

/* Counters of the publish machinery (main thread reads). */
struct pl_publish_stats {
    uint64_t published; /* pl_publish calls that succeeded */
    uint64_t freed;     /* published snapshots freed so far */
    uint64_t pending;   /* retired, not yet freed (grace period or pins outstanding) */
    uint64_t trims;     /* heap trims (malloc_trim) run after snapshots were freed: one shortly
                           after a change or a burst of changes */
};

/* Sets up publishing on the main thread (registers it with urcu-qsbr, offline); loop is the main
 * libev loop that runs reclamation; n_workers is the number of worker ids (0..n_workers-1). */
int pl_publish_init(struct ev_loop *loop, unsigned n_workers);
/* Publishes s (ownership passes to publish): sets its generation, swaps it in, retires the old. */
int pl_publish(struct pl_snapshot *s);
/* Frees retired snapshots whose grace period has passed and that nobody pins (main thread).
 * Runs by itself from the main loop; returns how many were freed. */
size_t pl_publish_reclaim(void);
/* Waits for outstanding grace periods and frees every snapshot, current included; call after
 * the workers have stopped (unregistered). Safe to call when not initialized. */
void pl_publish_shutdown(void);
/* Sets the hook called before each published snapshot is freed; NULL to clear (main thread). */
void pl_publish_set_free_hook(pl_publish_free_hook fn, void *arg);
/* Fills st with the current counters (main thread). */
void pl_publish_get_stats(struct pl_publish_stats *st);
/* Returns the number of worker ids given to pl_publish_init (0 if not initialized). */
unsigned pl_publish_n_workers(void);

/* Returns the current snapshot or NULL; on a worker it stays valid until the next quiescent
 * state unless pinned; on the main thread until main publishes again. Not owned by the caller. */
const struct pl_snapshot *pl_snapshot_current(void);
/* Takes a pin on s for worker `worker` (calling thread must be that worker). s must have been
 * read as current in the same read-side section, or already be pinned by this worker. */
void pl_snapshot_pin(const struct pl_snapshot *s, unsigned worker);
/* Drops a pin taken by pl_snapshot_pin on the same worker; s may be freed any time after. */
void pl_snapshot_unpin(const struct pl_snapshot *s, unsigned worker);
/* Returns the number of pins worker `worker` holds on s (that worker or tests only). */
uint64_t pl_snapshot_pins_held(const struct pl_snapshot *s, unsigned worker);

/* Registers the calling thread as an RCU reader (online). */
void pl_rcu_thread_register(void);
/* Unregisters the calling thread; it must hold no snapshot pointer afterwards. */
void pl_rcu_thread_unregister(void);
/* Reports a quiescent state: snapshot pointers read before it (unpinned) are no longer valid. */
void pl_rcu_quiescent(void);
/* Goes offline (before blocking in the poll): holds no unpinned snapshot pointer while offline. */
void pl_rcu_offline(void);
/* Comes back online after pl_rcu_offline. */
void pl_rcu_online(void);

#endif
