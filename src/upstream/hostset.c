/* Immutable host sets and the LB tables shared by all workers (ring hash, Maglev). */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/address.h"
#include "core/arena.h"
#include "core/err.h"
#include "pl_proto_all.h"
#include "upstream/upstream_internal.h"

#define CLUSTER(x)   ENVOY__CONFIG__CLUSTER__V3__##x
#define MAGLEV_EMPTY UINT32_MAX

void up_addr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
    pl_addr_format(
        sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
        buf, cap);
}

void up_lb_params_from_cfg(const struct pl_cluster_cfg *cfg, struct up_lb_params *out)
{
    const struct pl_cluster_lb_cfg *o = pl_cluster_lb(cfg);
    *out = (struct up_lb_params){
        .type = cfg->type,
        .policy = cfg->lb_policy,
        .choice_count = o->lr_choice_count >= 2 ? o->lr_choice_count : 2,
        .bias = o->lr_active_request_bias,
        .ring_min = o->ring_min_size ? o->ring_min_size : 1024,
        .ring_max = o->ring_max_size ? o->ring_max_size : 8388608,
        .ring_hash_fn = o->ring_hash_function,
        .maglev_size = o->maglev_table_size ? o->maglev_table_size : 65537,
    };
}

static uint64_t ring_hash(const struct up_hostset *hs, const char *key, size_t len)
{
    if (hs->lb.ring_hash_fn == CLUSTER(CLUSTER__RING_HASH_LB_CONFIG__HASH_FUNCTION__MURMUR_HASH_2))
        return pl_upstream_murmur2(key, len, 0xc70f6907ULL);
    return pl_upstream_xxhash64(key, len, 0);
}

static int cmp_ring(const void *a, const void *b)
{
    const struct up_ring_entry *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Envoy's RingHashLoadBalancer::Ring: each host gets hashes in proportion to its weight, scaled so
 * that the lightest host gets a whole number of them; keys are "<address>_<i>". */
static void build_ring(struct up_hostset *hs)
{
    double total = 0, min_norm = 1.0;
    for (size_t i = 0; i < hs->n_avail; i++)
        total += hs->hosts[up_avail(hs, i)].weight;
    for (size_t i = 0; i < hs->n_avail; i++) {
        double n = hs->hosts[up_avail(hs, i)].weight / total;
        if (n < min_norm)
            min_norm = n;
    }
    double scale =
        fmin(ceil(min_norm * (double)hs->lb.ring_min) / min_norm, (double)hs->lb.ring_max);
    size_t cap = (size_t)ceil(scale) + hs->n_avail + 1;
    hs->ring = pl_malloc(cap * sizeof(*hs->ring));
    double current = 0, target = 0;
    char key[128], as[64];
    for (size_t i = 0; i < hs->n_avail; i++) {
        const struct up_host_info *h = &hs->hosts[up_avail(hs, i)];
        up_host_addr_str(hs, up_avail(hs, i), as, sizeof(as));
        target += scale * (h->weight / total);
        for (uint64_t k = 0; current < target && hs->n_ring < cap; k++, current++) {
            int len = snprintf(key, sizeof(key), "%s_%llu", as, (unsigned long long)k);
            hs->ring[hs->n_ring++] =
                (struct up_ring_entry){ring_hash(hs, key, (size_t)len), up_avail(hs, i)};
        }
    }
    qsort(hs->ring, hs->n_ring, sizeof(*hs->ring), cmp_ring);
}

/* Maglev (Eisenbud et al., NSDI 2016) with Envoy's weighting: a host of weight w fills a slot on
 * the iterations where iteration * w has caught up with its running target. */
static void build_maglev(struct up_hostset *hs)
{
    uint64_t m = hs->lb.maglev_size;
    struct entry {
        uint64_t offset, skip, next;
        double weight, target;
    } *e = pl_calloc(hs->n_avail, sizeof(*e));
    double total = 0, max_norm = 0;
    for (size_t i = 0; i < hs->n_avail; i++)
        total += hs->hosts[up_avail(hs, i)].weight;
    for (size_t i = 0; i < hs->n_avail; i++) {
        const struct up_host_info *h = &hs->hosts[up_avail(hs, i)];
        char as[64];
        size_t len = strlen(up_host_addr_str(hs, up_avail(hs, i), as, sizeof(as)));
        e[i].offset = pl_upstream_xxhash64(as, len, 0) % m;
        e[i].skip = pl_upstream_xxhash64(as, len, 1) % (m - 1) + 1;
        e[i].weight = h->weight / total;
        if (e[i].weight > max_norm)
            max_norm = e[i].weight;
    }
    hs->maglev = pl_malloc(m * sizeof(uint32_t));
    for (uint64_t i = 0; i < m; i++)
        hs->maglev[i] = MAGLEV_EMPTY;
    uint64_t filled = 0;
    for (uint64_t iter = 1; filled < m; iter++) {
        for (size_t i = 0; i < hs->n_avail && filled < m; i++) {
            if ((double)iter * e[i].weight < e[i].target)
                continue;
            e[i].target += max_norm;
            uint64_t c = (e[i].offset + e[i].skip * e[i].next) % m;
            while (hs->maglev[c] != MAGLEV_EMPTY) {
                e[i].next++;
                c = (e[i].offset + e[i].skip * e[i].next) % m;
            }
            hs->maglev[c] = up_avail(hs, i);
            e[i].next++;
            filled++;
        }
    }
    free(e);
}

/* The same host, hosts i and j of hs: same address and the same identity (key or address
 * string; a host not yet counted in n_hosts has its key in key). */
static bool same_host(const struct up_hostset *hs, size_t i, const char *ikey, size_t j,
                      const char *jkey)
{
    socklen_t li, lj;
    const struct sockaddr *a = up_host_sa(hs, i, &li), *b = up_host_sa(hs, j, &lj);
    if (li != lj)
        return false;
    if (li == sizeof(struct sockaddr_in)) { /* two word compares, no memcmp call */
        uint64_t x[2], y[2];
        memcpy(x, a, sizeof(x));
        memcpy(y, b, sizeof(y));
        if (x[0] != y[0] || x[1] != y[1])
            return false;
    } else if (memcmp(a, b, li)) {
        return false;
    }
    if (!ikey && !jkey)
        return true;
    char ka[64], kb[64];
    if (!ikey)
        ikey = up_host_addr_str(hs, i, ka, sizeof(ka));
    if (!jkey)
        jkey = up_host_addr_str(hs, j, kb, sizeof(kb));
    return !strcmp(ikey, jkey);
}

/* Hosts kept so far, by address: duplicates are found in O(1) (a cluster may have thousands). */
struct host_index {
    uint32_t *slots; /* host index + 1; 0: empty */
    size_t mask;
};

#define INDEX_FROM 16 /* fewer hosts: a linear scan is cheaper than the table */

static size_t host_slot(const struct host_index *ix, const struct up_hostset *hs, size_t i)
{
    socklen_t len;
    const struct sockaddr *sa = up_host_sa(hs, i, &len);
    return (size_t)pl_upstream_xxhash64(sa, len, 0) & ix->mask;
}

/* Returns true if the host in slot hs->n_hosts (whose key is key) is already among
 * hs->hosts[0..n_hosts); else records it when ix is in use. */
static bool seen_host(const struct up_hostset *hs, struct host_index *ix, const char *key)
{
    size_t n = hs->n_hosts;
    if (!ix->slots) {
        for (size_t j = 0; j < n; j++)
            if (same_host(hs, j, hs->keys ? hs->keys[j] : NULL, n, key))
                return true;
        return false;
    }
    size_t i = host_slot(ix, hs, n);
    for (; ix->slots[i]; i = (i + 1) & ix->mask) {
        size_t j = ix->slots[i] - 1;
        if (same_host(hs, j, hs->keys ? hs->keys[j] : NULL, n, key))
            return true;
    }
    ix->slots[i] = (uint32_t)n + 1;
    return false;
}

struct up_hostset *up_hostset_build(const struct up_lb_params *lb, uint64_t cfg_hash,
                                    const struct up_host_spec *hosts, size_t n)
{
    /* one allocation: the set, then its hosts (24 bytes each) */
    size_t hosts_off = (sizeof(struct up_hostset) + alignof(struct up_host_info) - 1) &
                       ~(alignof(struct up_host_info) - 1);
    struct up_hostset *hs = pl_calloc(1, hosts_off + (n ? n : 1) * sizeof(struct up_host_info));
    atomic_init(&hs->refs, 1);
    hs->cfg_hash = cfg_hash;
    hs->lb = *lb;
    hs->hosts = (struct up_host_info *)((char *)hs + hosts_off);
    for (size_t i = 0; i < n && !hs->keys; i++)
        if (hosts[i].key)
            hs->keys = pl_calloc(n, sizeof(*hs->keys));
    for (size_t i = 0; i < n && !hs->v6; i++)
        if (hosts[i].addr->sa_family == AF_INET6)
            hs->v6 = pl_calloc(n, sizeof(*hs->v6));
    struct host_index ix = {0};
    if (n > INDEX_FROM) {
        size_t cap = 64;
        while (cap < 2 * n)
            cap *= 2;
        ix.slots = pl_calloc(cap, sizeof(*ix.slots));
        ix.mask = cap - 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct up_host_info *h = &hs->hosts[hs->n_hosts];
        const struct sockaddr *sa = hosts[i].addr;
        if (sa->sa_family == AF_INET && hosts[i].addrlen == sizeof(h->in)) {
            memcpy(&h->in, sa, sizeof(h->in));
        } else if (sa->sa_family == AF_INET6 && hosts[i].addrlen == sizeof(*hs->v6)) {
            memcpy(&hs->v6[hs->n_hosts], sa, sizeof(*hs->v6));
            h->in.sin_family = AF_INET6;
        } else {
            continue; /* not an IP address: cannot be an upstream host */
        }
        /* the same address twice (two DNS names): keep the first */
        if (seen_host(hs, &ix, hosts[i].key)) {
            memset(h, 0, sizeof(*h));
            continue;
        }
        if (hosts[i].key)
            hs->keys[hs->n_hosts] = pl_strdup(hosts[i].key);
        h->weight = hosts[i].weight ? hosts[i].weight : 1;
        h->healthy = hosts[i].healthy;
        hs->n_healthy += h->healthy;
        hs->n_hosts++;
    }
    free(ix.slots);
    /* Envoy: healthy% = min(100, 140 * healthy / total) (overprovisioning factor 1.4); below the
     * 50% healthy_panic_threshold the LB ignores health */
    hs->panic = hs->n_hosts && hs->n_healthy * 140 / hs->n_hosts < 50;
    if (hs->panic || hs->n_healthy == hs->n_hosts) { /* all of them, in order: no array */
        hs->n_avail = hs->n_hosts;
    } else {
        hs->avail = pl_malloc(hs->n_healthy * sizeof(*hs->avail) + 1);
        for (size_t i = 0; i < hs->n_hosts; i++)
            if (hs->hosts[i].healthy)
                hs->avail[hs->n_avail++] = (uint32_t)i;
    }
    hs->equal_weights = true;
    for (size_t i = 1; i < hs->n_avail; i++)
        if (hs->hosts[up_avail(hs, i)].weight != hs->hosts[up_avail(hs, 0)].weight)
            hs->equal_weights = false;
    if (hs->n_avail && lb->policy == CLUSTER(CLUSTER__LB_POLICY__RING_HASH))
        build_ring(hs);
    if (hs->n_avail && lb->policy == CLUSTER(CLUSTER__LB_POLICY__MAGLEV))
        build_maglev(hs);
    return hs;
}

void up_hostset_ref(struct up_hostset *hs)
{
    atomic_fetch_add_explicit(&hs->refs, 1, memory_order_relaxed);
}

void up_hostset_unref(struct up_hostset *hs)
{
    if (!hs || atomic_fetch_sub_explicit(&hs->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; hs->keys && i < hs->n_hosts; i++)
        free(hs->keys[i]);
    free(hs->keys);
    free(hs->v6);
    free(hs->avail);
    free(hs->ring);
    free(hs->maglev);
    free(hs);
}

/* The host set of the plain endpoints of cfg (an EDS cluster): its hosts, or decoded from the
 * encoding it keeps them in. */
static struct up_hostset *from_plain(const struct pl_cluster_cfg *cfg,
                                     const struct up_lb_params *lb)
{
    const struct pl_cla_host *hosts = cfg->hosts;
    size_t n = cfg->n_hosts;
    struct pl_arena tmp = PL_ARENA_INIT;
    if (!hosts) {
        ProtobufCAllocator a = pl_arena_pb_allocator(&tmp);
        const struct pl_cla_plain *p = cfg->hosts_decode(cfg->hosts_enc, cfg->hosts_enc_len, &a);
        if (!p) /* it decoded when compiled: the encoding cannot have changed */
            pl_die("cluster '%s': its kept assignment no longer decodes", cfg->name);
        hosts = p->hosts;
        n = p->n;
    }
    struct up_host_spec *spec = pl_calloc(n + 1, sizeof(*spec));
    struct sockaddr_in *sin = pl_calloc(n + 1, sizeof(*sin));
    for (size_t i = 0; i < n; i++) {
        const struct pl_cla_host *h = &hosts[i];
        sin[i].sin_family = AF_INET;
        sin[i].sin_port = htons(h->port);
        sin[i].sin_addr.s_addr = h->addr;
        spec[i] = (struct up_host_spec){
            .addr = (const struct sockaddr *)&sin[i],
            .addrlen = sizeof(sin[i]),
            .weight = h->weight,
            .healthy = h->health <= ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY,
        };
    }
    struct up_hostset *hs = up_hostset_build(lb, cfg->hash, spec, n);
    free(sin);
    free(spec);
    pl_arena_free(&tmp);
    return hs;
}

struct up_hostset *up_hostset_from_cfg(const struct pl_cluster_cfg *cfg)
{
    struct up_lb_params lb;
    up_lb_params_from_cfg(cfg, &lb);
    if (cfg->hosts || cfg->hosts_decode)
        return from_plain(cfg, &lb);
    struct up_host_spec *spec = pl_calloc(cfg->n_endpoints + 1, sizeof(*spec));
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct pl_endpoint_cfg *e = &cfg->endpoints[i];
        if (!e->addrlen)
            continue; /* a DNS name: only the main thread's resolver can fill it in */
        spec[n++] = (struct up_host_spec){
            .addr = &e->addr.sa,
            .addrlen = e->addrlen,
            .weight = e->weight,
            .healthy = e->health_status <= ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY,
        };
    }
    struct up_hostset *hs = up_hostset_build(&lb, cfg->hash, spec, n);
    free(spec);
    return hs;
}
