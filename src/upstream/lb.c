/* Load balancers over a worker's view of a host set: round robin (EDF when weighted), least
 * request (power of two choices, or EDF over weight / (active + 1)^bias), random, ring hash and
 * Maglev (shared tables built on main), and ORIGINAL_DST's on-demand hosts. */
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "pl_proto_all.h"
#include "upstream/upstream_internal.h"

#define CLUSTER(x)     ENVOY__CONFIG__CLUSTER__V3__CLUSTER__##x
#define ODST_CLEANUP_S 5 /* Envoy's default cleanup_interval for ORIGINAL_DST hosts */

/* ---- EDF ------------------------------------------------------------------------------------ */

static bool edf_less(const struct up_edf *a, const struct up_edf *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->order < b->order);
}

static double host_weight(const struct up_cluster *c, uint32_t pos)
{
    const struct pl_host_rt *h = &c->hosts[up_avail(c->hs, pos)]->pub;
    double w = h->weight;
    if (c->hs->lb.policy == CLUSTER(LB_POLICY__LEAST_REQUEST)) {
        double a = (double)h->active_rq + 1.0;
        w = c->hs->lb.bias == 1.0 ? w / a : w / pow(a, c->hs->lb.bias);
    }
    return w > 0 ? w : 1e-9;
}

static void edf_push(struct up_cluster *c, uint32_t pos)
{
    struct up_edf e = {c->edf_now + 1.0 / host_weight(c, pos), c->edf_order++, pos};
    size_t i = c->n_edf++;
    while (i > 0 && edf_less(&e, &c->edf[(i - 1) / 2])) {
        c->edf[i] = c->edf[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->edf[i] = e;
}

static struct up_edf edf_pop(struct up_cluster *c)
{
    struct up_edf top = c->edf[0], last = c->edf[--c->n_edf];
    size_t i = 0, n = c->n_edf;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct up_edf *best = &last;
        if (l < n && edf_less(&c->edf[l], best)) {
            m = l;
            best = &c->edf[l];
        }
        if (l + 1 < n && edf_less(&c->edf[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        c->edf[i] = c->edf[m];
        i = m;
    }
    if (n)
        c->edf[i] = last;
    return top;
}

/* Picks the entry with the earliest deadline and schedules it again with its current weight. */
static uint32_t edf_next(struct up_cluster *c)
{
    struct up_edf e = edf_pop(c);
    c->edf_now = e.deadline;
    edf_push(c, e.pos);
    return up_avail(c->hs, e.pos);
}

void up_lb_free(struct up_cluster *c)
{
    free(c->edf);
    free(c->cum);
    c->edf = NULL;
    c->cum = NULL;
    c->n_edf = 0;
}

void up_lb_reset(struct up_cluster *c)
{
    const struct up_hostset *hs = c->hs;
    size_t n = hs->n_avail;
    up_lb_free(c);
    c->edf_now = 0;
    c->edf_order = 0;
    if (!n)
        return;
    /* a random start, so that workers do not all send their first request to the same host */
    c->rr = up_rand() % n;
    int p = hs->lb.policy;
    if (!hs->equal_weights &&
        (p == CLUSTER(LB_POLICY__ROUND_ROBIN) || p == CLUSTER(LB_POLICY__LEAST_REQUEST))) {
        c->edf = pl_malloc(n * sizeof(*c->edf));
        for (uint32_t i = 0; i < n; i++)
            edf_push(c, i);
        if (p == CLUSTER(LB_POLICY__ROUND_ROBIN))
            for (uint64_t k = up_rand() % n; k > 0; k--)
                edf_next(c);
    } else if (!hs->equal_weights && p == CLUSTER(LB_POLICY__RANDOM)) {
        c->cum = pl_malloc(n * sizeof(*c->cum));
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            c->cum[i] = sum += hs->hosts[up_avail(hs, i)].weight;
    }
}

/* ---- policies ------------------------------------------------------------------------------- */

/* Envoy's unweighted least request: the least loaded of choice_count random hosts. */
static uint32_t p2c(struct up_cluster *c)
{
    const struct up_hostset *hs = c->hs;
    uint32_t best = up_avail(hs, up_rand() % hs->n_avail);
    for (uint32_t k = 1; k < hs->lb.choice_count; k++) {
        uint32_t i = up_avail(hs, up_rand() % hs->n_avail);
        if (c->hosts[i]->pub.active_rq < c->hosts[best]->pub.active_rq)
            best = i;
    }
    return best;
}

static uint32_t weighted_random(struct up_cluster *c)
{
    const struct up_hostset *hs = c->hs;
    uint64_t r = up_rand() % c->cum[hs->n_avail - 1];
    size_t lo = 0, hi = hs->n_avail - 1; /* first cum > r */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->cum[mid] > r)
            hi = mid;
        else
            lo = mid + 1;
    }
    return up_avail(hs, lo);
}

/* Ketama lookup: the first ring entry at or after h, wrapping around. */
static uint32_t ring_lookup(const struct up_hostset *hs, uint64_t h)
{
    size_t lo = 0, hi = hs->n_ring;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (hs->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return hs->ring[lo == hs->n_ring ? 0 : lo].idx;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
    }
    return false;
}

/* ORIGINAL_DST: the host is the connection's original destination, made on first use and
 * forgotten after ODST_CLEANUP_S seconds without requests. */
static struct pl_host_rt *pick_odst(struct up_cluster *c, const struct pl_lb_ctx *ctx)
{
    if (!ctx || !ctx->orig_dst ||
        (ctx->orig_dst->sa_family != AF_INET && ctx->orig_dst->sa_family != AF_INET6))
        return NULL;
    uint64_t now = up_now_s();
    if (now - c->odst_sweep >= ODST_CLEANUP_S) {
        c->odst_sweep = now;
        for (struct up_host **pp = &c->odst; *pp;) {
            struct up_host *h = *pp;
            if (h->last_used + ODST_CLEANUP_S <= now && !h->pub.active_rq) {
                *pp = h->next;
                up_host_retire(h);
            } else {
                pp = &h->next;
            }
        }
    }
    struct up_host *h = c->odst;
    while (h && !same_addr(&h->pub.addr, ctx->orig_dst))
        h = h->next;
    if (!h) {
        socklen_t len = ctx->orig_dst->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                            : sizeof(struct sockaddr_in6);
        h = up_host_new(c->pub.name, ctx->orig_dst, len, NULL);
        h->next = c->odst;
        c->odst = h;
    }
    h->last_used = now;
    return &h->pub;
}

struct pl_host_rt *pl_upstream_pick(struct pl_cluster_rt *pc, const struct pl_lb_ctx *ctx)
{
    struct up_cluster *c = (struct up_cluster *)pc;
    up_refresh(c);
    const struct up_hostset *hs = c->hs;
    if (hs->lb.type == CLUSTER(DISCOVERY_TYPE__ORIGINAL_DST))
        return pick_odst(c, ctx);
    size_t n = hs->n_avail;
    if (!n)
        return NULL;
    if (hs->panic)
        pl_counter_inc(PL_CLUSTER_COUNTER(&pc->stats, lb_healthy_panic));
    uint64_t h = ctx && ctx->has_hash ? ctx->hash : 0;
    bool random_hash = !ctx || !ctx->has_hash;
    uint32_t idx;
    switch (hs->lb.policy) {
    case CLUSTER(LB_POLICY__LEAST_REQUEST):
        idx = hs->equal_weights ? p2c(c) : edf_next(c);
        break;
    case CLUSTER(LB_POLICY__RANDOM):
        idx = hs->equal_weights ? up_avail(hs, up_rand() % n) : weighted_random(c);
        break;
    case CLUSTER(LB_POLICY__RING_HASH):
        idx = ring_lookup(hs, random_hash ? up_rand() : h);
        break;
    case CLUSTER(LB_POLICY__MAGLEV):
        idx = hs->maglev[(random_hash ? up_rand() : h) % hs->lb.maglev_size];
        break;
    default: /* ROUND_ROBIN */
        idx = hs->equal_weights ? up_avail(hs, c->rr++ % n) : edf_next(c);
        break;
    }
    return &c->hosts[idx]->pub;
}
