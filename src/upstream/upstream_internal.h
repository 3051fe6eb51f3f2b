/* Private to src/upstream: host sets, links, the DNS resolver and the main-side cluster spec. */
#ifndef PL_UPSTREAM_INTERNAL_H
#define PL_UPSTREAM_INTERNAL_H

#include <stdatomic.h>
#include <urcu-qsbr.h>

#include "upstream/upstream.h"

/* What a load balancer needs from the cluster's config (copied: outlives the snapshot). */
struct up_lb_params {
    int type;   /* Cluster.DiscoveryType */
    int policy; /* Cluster.LbPolicy */
    uint32_t choice_count;
    int ring_hash_fn;
    double bias;
    uint64_t ring_min, ring_max;
    uint64_t maglev_size;
};

/* One host of a host set: immutable once published. Kept small (24 bytes): a cluster of 10,000
 * hosts, or 10,000 clusters of 10, is this times the count. An IPv6 address is in the set's v6
 * array (read either through up_host_sa). */
struct up_host_info {
    struct sockaddr_in in; /* AF_INET6: only sin_family is set */
    uint32_t weight;
    bool healthy;
};

struct up_ring_entry {
    uint64_t hash;
    uint32_t idx; /* into hosts */
};

/* An immutable, reference-counted host set with its shared LB tables (see upstream.h). */
struct up_hostset {
    _Atomic uint32_t refs;
    bool panic;         /* too few healthy hosts (Envoy's 50% panic threshold): balance over all */
    bool equal_weights; /* among avail */
    struct rcu_head rcu;
    uint64_t cfg_hash;
    struct up_lb_params lb;
    struct up_host_info *hosts; /* in the same allocation as the set */
    char **keys; /* NULL, or [n_hosts]: a host's identity across updates when it is not its
                    address ("hostname:port" for LOGICAL_DNS), else NULL (owned) */
    struct sockaddr_in6 *v6; /* NULL (no IPv6 host), or [n_hosts]: the IPv6 hosts' addresses */
    uint32_t n_hosts;
    uint32_t n_healthy;
    uint32_t n_avail;
    uint32_t n_ring;
    uint32_t *avail; /* indices of the hosts the LB uses (healthy ones, or all in panic); NULL
                        when that is all of them (read through up_avail) */
    struct up_ring_entry *ring; /* RING_HASH, sorted by hash */
    uint32_t *maglev;           /* MAGLEV: host index per table slot (lb.maglev_size of them) */
};

/* The host index of the k-th host the LB may use. */
static inline uint32_t up_avail(const struct up_hostset *hs, size_t k)
{
    return hs->avail ? hs->avail[k] : (uint32_t)k;
}

/* The runtime identity of a cluster name: shared by main, snapshots and workers. */
struct pl_cluster_link {
    _Atomic uint32_t refs;
    _Atomic bool retired; /* main no longer configures this name */
    char *name;
    struct pl_cluster_stats stats;
    _Atomic(struct up_hostset *) hosts; /* RCU-published by main (never NULL) */
};

/* A host before it goes into a host set. */
struct up_host_spec {
    const struct sockaddr *addr;
    socklen_t addrlen;
    const char *key; /* NULL: the address string */
    uint32_t weight;
    bool healthy;
};

/* A host as one worker sees it (wraps the public part). */
struct up_host {
    struct pl_host_rt pub;
    char *key;
    char *cluster_name;
    struct up_host *next; /* ORIGINAL_DST: the cluster's on-demand hosts */
    uint64_t last_used;   /* ORIGINAL_DST: coarse monotonic seconds */
    bool taken;           /* scratch while a host set change is applied */
};

/* An EDF schedule entry (Envoy's EdfScheduler): the smallest deadline is picked next. */
struct up_edf {
    double deadline;
    uint64_t order; /* FIFO among equal deadlines */
    uint32_t pos;   /* into hs->avail */
};

/* A cluster as one worker sees it (wraps the public part). */
struct up_cluster {
    struct pl_cluster_rt pub;
    struct pl_cluster_link *link; /* a reference */
    bool private_link;            /* made from a snapshot that was never prepared */
    bool orphan;                  /* the worker state is gone; freed at the last unref */
    uint64_t private_hash;
    uint64_t last_returned; /* coarse seconds: garbage collection of removed clusters */
    struct up_hostset *hs;  /* a reference */
    struct up_host **hosts; /* [hs->n_hosts], aligned with hs->hosts */
    /* LB state */
    uint64_t rr;
    struct up_edf *edf; /* binary min-heap */
    size_t n_edf;
    double edf_now;
    uint64_t edf_order;
    uint64_t *cum; /* RANDOM with weights: prefix sums over hs->avail */
    /* ORIGINAL_DST */
    struct up_host *odst;
    uint64_t odst_sweep;
    /* lazily created upstream_rq_<code> counters */
    struct pl_counter *codes;
    uint8_t *code_ok;
};

/* worker.c */
/* The calling thread's random number (splitmix64 over a per-thread seeded state). */
uint64_t up_rand(void);
/* Coarse monotonic seconds. */
uint64_t up_now_s(void);
/* Returns a new host_rt for an address (ORIGINAL_DST); refs 0. */
struct up_host *up_host_new(const char *cluster, const struct sockaddr *sa, socklen_t len,
                            const char *key);
/* Moves c to its link's current host set, keeping the host_rts of hosts that stay. */
void up_refresh(struct up_cluster *c);
/* Marks h removed, lets the pool owner release it, frees it if unreferenced. */
void up_host_retire(struct up_host *h);

/* lb.c */
/* Rebuilds the LB state of c for its current host set (cursors start over). */
void up_lb_reset(struct up_cluster *c);
void up_lb_free(struct up_cluster *c);

/* hostset.c */
/* Builds a host set with one reference (the caller's). */
struct up_hostset *up_hostset_build(const struct up_lb_params *lb, uint64_t cfg_hash,
                                    const struct up_host_spec *hosts, size_t n);
void up_hostset_ref(struct up_hostset *hs);
void up_hostset_unref(struct up_hostset *hs);
/* Formats "ip:port" / "[ip6]:port" into buf. */
void up_addr_format(const struct sockaddr *sa, char *buf, size_t cap);
/* Host i's address (*len: its length). */
static inline const struct sockaddr *up_host_sa(const struct up_hostset *hs, size_t i,
                                                socklen_t *len)
{
    if (hs->hosts[i].in.sin_family == AF_INET6) {
        *len = sizeof(struct sockaddr_in6);
        return (const struct sockaddr *)&hs->v6[i];
    }
    *len = sizeof(struct sockaddr_in);
    return (const struct sockaddr *)&hs->hosts[i].in;
}
/* Formats host i's address into buf (at least 64 bytes). */
static inline const char *up_host_addr_str(const struct up_hostset *hs, size_t i, char *buf,
                                           size_t cap)
{
    socklen_t len;
    up_addr_format(up_host_sa(hs, i, &len), buf, cap);
    return buf;
}
/* Copies the LB-relevant parameters of a compiled cluster. */
/* Host i's identity across updates: its key, or its address string formatted into buf. */
static inline const char *up_host_key(const struct up_hostset *hs, size_t i, char *buf, size_t cap)
{
    return hs->keys && hs->keys[i] ? hs->keys[i] : up_host_addr_str(hs, i, buf, cap);
}
void up_lb_params_from_cfg(const struct pl_cluster_cfg *cfg, struct up_lb_params *out);
/* Builds the host set of a cluster from its config alone (IP endpoints; no DNS). */
struct up_hostset *up_hostset_from_cfg(const struct pl_cluster_cfg *cfg);

/* link.c (in manager.c) */
/* Returns a new link (one reference) with stats in store, publishing hs (reference moved). */
struct pl_cluster_link *up_link_new(const char *name, struct pl_stats *store,
                                    struct up_hostset *hs);
void up_link_ref(struct pl_cluster_link *l);
void up_link_unref(struct pl_cluster_link *l);
/* The store for links made without pl_upstream_init (hand-built snapshots in tests). */
struct pl_stats *up_fallback_stats(void);
/* The LB seed given to pl_upstream_init (0 if none). */
uint64_t up_seed(void);

/* dns.c: c-ares on a libev loop. */
struct up_resolver;
struct up_dns_query;
/* Results: status 0 and n addresses (port 0) with the smallest TTL in seconds, or a negative
 * status (PL_ENOENT: no such name / no address of the family; PL_EIO: other failures). */
typedef void (*up_dns_cb)(void *arg, int status, const struct sockaddr_storage *addrs, size_t n,
                          uint32_t ttl_s);
int up_resolver_new(struct ev_loop *loop, const char *servers, struct up_resolver **out,
                    struct pl_err *err);
/* Frees the resolver; pending queries end without their callbacks. */
void up_resolver_free(struct up_resolver *r);
/* Starts resolving name for family (Cluster.DnsLookupFamily). Returns the pending query, or NULL
 * when cb already ran (answers from /etc/hosts or numeric names can come back at once). */
struct up_dns_query *up_resolve(struct up_resolver *r, const char *name, int family, up_dns_cb cb,
                                void *arg);
/* Cancels a pending query: its callback never runs. */
void up_dns_cancel(struct up_dns_query *q);

#endif
