/* Upstream clusters at run time: host sets, DNS, load balancers, per-worker host state.
 *
 * Config vs runtime (DESIGN.md section 2). The snapshot's struct pl_cluster_cfg is config: it is
 * compiled by src/config and immutable once published. Everything that must outlive a snapshot
 * swap lives here, keyed by cluster name:
 *
 *   main thread   one `link` per configured cluster name (struct pl_cluster_link, opaque): the
 *                 cluster's stats handles, its DNS resolution state, and an RCU-published pointer
 *                 to its current host set. pl_upstream_prepare(s) (main, after compile, before
 *                 pl_publish) attaches each cluster of s to the link of its name (s->clusters[i]->
 *                 link, set once: a compiled cluster shared by later snapshots keeps it; the
 *                 cluster holds a reference, dropped when it is freed), creates the link for a new
 *                 name, and publishes a new host set when the cluster's config hash
 *                 changed. Links of names that s no longer has stop resolving.
 *   host set      immutable, reference counted: the hosts (address, weight, health, locality), the
 *                 LB parameters and the shared read-only LB tables (ring, Maglev table) built on
 *                 main. Main replaces the link's pointer (release store) when DNS answers change
 *                 or the cluster's config changes, and drops the published reference after an RCU
 *                 grace period (urcu-qsbr call_rcu), so a worker that loaded the pointer since its
 *                 last quiescent state may still take its own reference.
 *   worker        struct pl_cluster_rt per worker per cluster name, in a small per-thread hash map
 *                 (created lazily on the worker thread by pl_upstream_cluster). Each pick compares
 *                 the link's host-set pointer with the one the rt was built from (one acquire load,
 *                 no lock, no atomic read-modify-write). When it changed, the rt rebuilds its
 *                 host array: a host whose key (address; host name for LOGICAL_DNS) stays keeps its
 *                 struct pl_host_rt (pool slots, active requests). LB cursors (round-robin index,
 *                 EDF schedule) are kept when only health/membership is unchanged, i.e. they are
 *                 reset only when hosts or the cluster's config hash change.
 *
 * So a snapshot swap with an unchanged cluster (same config hash) touches nothing; a changed
 * cluster gets a new host set and the workers rebuild their LB state, keeping hosts that stay.
 *
 * Threads: pl_upstream_init/prepare/shutdown and the update hook run on the main thread, which
 * must be registered with RCU (pl_publish_init does it). Everything taking a struct pl_cluster_rt
 * or struct pl_host_rt runs on the worker thread that owns it; workers are RCU readers
 * (pl_rcu_thread_register) that report quiescent states between loop iterations.
 */
#ifndef PL_UPSTREAM_UPSTREAM_H
#define PL_UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/snapshot.h"
#include "core/err.h"
#include "stats/stats.h"

struct ev_loop;

/* ---- main thread ---------------------------------------------------------------------------- */

struct pl_upstream_opts {
    struct ev_loop *loop;    /* main loop: DNS sockets and refresh timers run on it */
    struct pl_stats *stats;  /* where cluster.<name>.* stats go (required) */
    const char *dns_servers; /* c-ares server override "ip:port,ip:port" (tests); NULL: system */
    uint64_t seed;           /* LB random seed (tests); 0: from getrandom */
};

/* Sets up the cluster manager on the main thread. PL_EINVAL if already set up or opts invalid. */
int pl_upstream_init(const struct pl_upstream_opts *opts, struct pl_err *err);
/* Links the clusters of s (compiled, not yet published) to their runtime state; see the top of
 * this file. Starts DNS for new or changed DNS clusters; stops it for names s does not have. */
int pl_upstream_prepare(struct pl_snapshot *s, struct pl_err *err);
/* Stops DNS, drops main's references and waits for pending RCU callbacks. Workers must have
 * stopped using upstream state; snapshots may still be freed afterwards. */
void pl_upstream_shutdown(void);
/* Called on main after a cluster's new host set was published (tests, logs); NULL to clear. */
typedef void (*pl_upstream_update_hook)(const char *cluster, size_t n_hosts, void *arg);
void pl_upstream_set_update_hook(pl_upstream_update_hook fn, void *arg);
/* One host of a cluster's current host set as main sees it (admin /clusters). */
struct pl_upstream_host_info {
    char addr_str[64];
    uint32_t weight;
    bool healthy;
};
/* Fills up to cap hosts of the named cluster's current host set and returns how many it has
 * (0 for an unknown cluster); main thread. */
size_t pl_upstream_main_hosts(const char *cluster, struct pl_upstream_host_info *out, size_t cap);
/* Returns the stats handles of a configured cluster (main thread), or NULL. */
const struct pl_cluster_stats *pl_upstream_main_stats(const char *cluster);

/* ---- stats ---------------------------------------------------------------------------------- */

/* A cluster's stats in Envoy's names (cluster.<name>.<field>): their slots in store, valid for
 * the store's life (80 bytes: one store pointer, not one per handle; 10,000 clusters have them).
 * The HTTP and TCP code increment them on the worker (no lock: per-worker shards) through
 * PL_CLUSTER_COUNTER / PL_CLUSTER_GAUGE. */
struct pl_cluster_stats {
    struct pl_stats *store; /* also for stats created lazily, e.g. cluster.<name>.upstream_rq_200 */
    uint32_t upstream_cx_total;           /* counter */
    uint32_t upstream_cx_active;          /* gauge */
    uint32_t upstream_cx_connect_fail;    /* counter */
    uint32_t upstream_cx_connect_timeout; /* counter */
    uint32_t upstream_cx_destroy;         /* counter */
    uint32_t upstream_rq_total;           /* counter */
    uint32_t upstream_rq_active;          /* gauge */
    uint32_t upstream_rq_xx[6];   /* counters: [2] = upstream_rq_2xx ... [5] = upstream_rq_5xx */
    uint32_t upstream_rq_timeout; /* counter */
    uint32_t membership_total;    /* gauge, set by main when a host set is published */
    uint32_t membership_healthy;  /* gauge, set by main when a host set is published */
    uint32_t lb_healthy_panic;    /* counter, incremented by pl_upstream_pick */
};

/* The handle of counter (or gauge) `field` of the struct pl_cluster_stats *st. */
#define PL_CLUSTER_COUNTER(st, field) ((struct pl_counter){(st)->store, (st)->field})
#define PL_CLUSTER_GAUGE(st, field)   ((struct pl_gauge){(st)->store, (st)->field})

/* ---- worker thread -------------------------------------------------------------------------- */

/* One upstream host as one worker sees it. Address fields are read-only for everyone but
 * upstream (a LOGICAL_DNS host's address follows DNS; connect to the current value). */
struct pl_host_rt {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char addr_str[64];   /* "10.0.0.1:80", "[::1]:80" */
    const char *cluster; /* the cluster's name; valid while the host_rt lives */
    uint32_t weight;
    bool healthy;
    bool removed;       /* left the host set: use no more for new requests */
    uint32_t active_rq; /* requests in flight on this worker: pl_upstream_host_rq_begin/end */
    void *pool_h1;      /* opaque slots for the HTTP connection pools */
    void *pool_h2;
    uint32_t refs; /* pl_upstream_host_ref/unref: keeps a removed host_rt alive */
};

/* Called on the worker when a host_rt leaves its host set (or its worker state is freed) and one
 * of its pool slots is set: the pool owner stops offering its pools, closes idle connections and
 * clears the slots. Connections still in use keep the host_rt alive with pl_upstream_host_ref. */
typedef void (*pl_upstream_pool_release)(struct pl_host_rt *h);
/* Registers the pool owner's release callback (before workers start; one owner). */
void pl_upstream_set_pool_release(pl_upstream_pool_release fn);

/* A cluster as one worker sees it: LB state and host_rts. Owned by the worker's upstream state. */
struct pl_cluster_rt {
    const char *name;
    struct pl_cluster_stats stats; /* copy of the handles */
    uint32_t refs;                 /* pl_upstream_cluster_ref/unref */
};

/* What the load balancer may use to pick. */
struct pl_lb_ctx {
    bool has_hash;                   /* RING_HASH / MAGLEV: hash from the route's hash_policy */
    uint64_t hash;                   /* without one those LBs pick at random, as Envoy */
    const struct sockaddr *orig_dst; /* ORIGINAL_DST clusters: the connection's original dest */
    socklen_t orig_dst_len;
};

/* Returns the calling worker's runtime state for cluster cfg (a cluster of a snapshot the caller
 * read or pinned), creating or refreshing it. Valid until the worker's next loop iteration, or
 * until pl_upstream_cluster_unref when the caller took a reference. Never NULL. */
struct pl_cluster_rt *pl_upstream_cluster(const struct pl_cluster_cfg *cfg);
/* Picks a host; NULL when the cluster has no usable host (Envoy's "no healthy upstream"). The
 * host_rt stays valid until the next upstream call on this worker (a host set change may free a
 * removed host): take a reference (pl_upstream_host_ref) before keeping it longer. */
struct pl_host_rt *pl_upstream_pick(struct pl_cluster_rt *c, const struct pl_lb_ctx *ctx);
/* Keeps c alive across loop iterations (a request in flight); worker thread only. */
void pl_upstream_cluster_ref(struct pl_cluster_rt *c);
/* Drops a reference taken with pl_upstream_cluster_ref. */
void pl_upstream_cluster_unref(struct pl_cluster_rt *c);
/* Keeps h alive even after it leaves the host set (a connection or request using it). */
void pl_upstream_host_ref(struct pl_host_rt *h);
/* Drops a reference; frees h if it has left the host set and this was the last one. */
void pl_upstream_host_unref(struct pl_host_rt *h);
/* Counts a response status: upstream_rq_<class>xx and upstream_rq_<code> (created on first use
 * of that code on this worker; the store lock is taken only then). */
void pl_upstream_count_status(struct pl_cluster_rt *c, unsigned status);
/* Frees the calling thread's upstream state (worker exit); pool release callbacks run. Also run
 * automatically at thread exit if not called. */
void pl_upstream_worker_free(void);

/* A request starts on h (LEAST_REQUEST counts these). */
static inline void pl_upstream_host_rq_begin(struct pl_host_rt *h)
{
    h->active_rq++;
}

/* A request on h ended. */
static inline void pl_upstream_host_rq_end(struct pl_host_rt *h)
{
    if (h->active_rq)
        h->active_rq--;
}

/* ---- hashing -------------------------------------------------------------------------------- */

/* XXH64, as Envoy's HashUtil::xxHash64 (hash_policy values, ring hash, Maglev). */
uint64_t pl_upstream_xxhash64(const void *data, size_t len, uint64_t seed);
/* Envoy's MurmurHash::murmurHash2 (64-bit, libstdc++'s _Hash_bytes); seed 0xc70f6907 there. */
uint64_t pl_upstream_murmur2(const void *data, size_t len, uint64_t seed);

#endif
