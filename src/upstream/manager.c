/* The main thread's side: one entry per configured cluster name, its link, its DNS targets, and
 * the publication of new host sets (see upstream.h). */
#include <arpa/inet.h>
#include <ev.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "config/nametab.h"
#include "core/log.h"
#include "core/tsan.h"
#include "pl_proto_all.h"
#include "upstream/upstream_internal.h"

#define CLUSTER(x) ENVOY__CONFIG__CLUSTER__V3__CLUSTER__##x

struct up_mcluster;

/* One endpoint of a configured cluster, with its DNS state when it is a host name. */
struct up_ep {
    struct up_mcluster *c;
    struct sockaddr_storage addr; /* IP endpoints */
    socklen_t addrlen;
    char *hostname; /* DNS endpoints */
    uint16_t port;
    uint32_t weight;
    bool healthy;
    ev_timer refresh;
    struct up_dns_query *q;
    struct sockaddr_storage *addrs; /* last answer, ports set */
    size_t n_addrs;
};

/* What a DNS cluster needs on main besides its config: its host sets come from answers. */
struct up_mdns {
    struct up_lb_params lb;
    uint64_t refresh_ms;
    int family;
    bool respect_ttl;
    struct up_ep *eps;
    size_t n_eps;
};

/* A configured cluster name on main (10,000 of them: kept to what every type needs). */
struct up_mcluster {
    struct up_mcluster *next;
    const char *name; /* link->name */
    uint64_t cfg_hash;
    struct pl_cluster_link *link; /* main's reference */
    uint64_t seen;                /* the prepare that last saw it (g.gen) */
    int type;                     /* Cluster.DiscoveryType */
    struct up_mdns *dns;          /* STRICT_DNS / LOGICAL_DNS only, else NULL */
};

static struct {
    bool inited;
    struct ev_loop *loop;
    struct pl_stats *stats;
    struct up_resolver *res;
    struct up_mcluster *clusters;
    struct pl_nametab by_name; /* the same clusters by name */
    pl_upstream_update_hook hook;
    void *hook_arg;
    uint64_t seed;
    uint64_t gen;               /* prepares so far */
    _Atomic unsigned callbacks; /* call_rcu callbacks queued and not finished */
} g;

/* ---- links ---------------------------------------------------------------------------------- */

/* Envoy's names, in the order of the handles below (the store keeps the table). */
#define CC PL_STATS_MEMBER_COUNTER
#define CG PL_STATS_MEMBER_GAUGE
#define MG PL_STATS_MEMBER_MAIN_GAUGE
static const struct pl_stats_member cluster_members[] = {
    {"upstream_cx_total", CC},        {"upstream_cx_active", CG},
    {"upstream_cx_connect_fail", CC}, {"upstream_cx_connect_timeout", CC},
    {"upstream_cx_destroy", CC},      {"upstream_rq_total", CC},
    {"upstream_rq_active", CG},       {"upstream_rq_timeout", CC},
    {"membership_total", MG},         {"membership_healthy", MG},
    {"lb_healthy_panic", CC},         {"upstream_rq_1xx", CC},
    {"upstream_rq_2xx", CC},          {"upstream_rq_3xx", CC},
    {"upstream_rq_4xx", CC},          {"upstream_rq_5xx", CC},
};
#undef CC
#undef CG
#undef MG
static const struct pl_stats_group_def cluster_group = {
    cluster_members, sizeof(cluster_members) / sizeof(cluster_members[0])};

static void stats_init(struct pl_cluster_stats *st, struct pl_stats *store, const char *name)
{
    uint32_t v[sizeof(cluster_members) / sizeof(cluster_members[0])];
    st->store = store;
    size_t n = strlen(name); /* "cluster.<name>." without printf: once per new cluster */
    char buf[256], *prefix = n + 10 <= sizeof(buf) ? buf : pl_malloc(n + 10);
    memcpy(prefix, "cluster.", 8);
    memcpy(prefix + 8, name, n);
    memcpy(prefix + 8 + n, ".", 2);
    pl_stats_group(store, prefix, &cluster_group, v);
    if (prefix != buf)
        free(prefix);
#define C(f, i) (st->f = v[i])
#define G(f, i) (st->f = v[i])
    C(upstream_cx_total, 0);
    G(upstream_cx_active, 1);
    C(upstream_cx_connect_fail, 2);
    C(upstream_cx_connect_timeout, 3);
    C(upstream_cx_destroy, 4);
    C(upstream_rq_total, 5);
    G(upstream_rq_active, 6);
    C(upstream_rq_timeout, 7);
    G(membership_total, 8);
    G(membership_healthy, 9);
    C(lb_healthy_panic, 10);
    for (int i = 1; i < 6; i++)
        C(upstream_rq_xx[i], 10 + i);
#undef C
#undef G
    st->upstream_rq_xx[0] = st->upstream_rq_xx[5]; /* statuses outside 1xx..5xx count as 5xx */
}

static void set_membership(struct pl_cluster_link *l, const struct up_hostset *hs)
{
    pl_gauge_set(PL_CLUSTER_GAUGE(&l->stats, membership_total), (int64_t)hs->n_hosts);
    pl_gauge_set(PL_CLUSTER_GAUGE(&l->stats, membership_healthy), (int64_t)hs->n_healthy);
}

struct pl_cluster_link *up_link_new(const char *name, struct pl_stats *store, struct up_hostset *hs)
{
    size_t n = strlen(name) + 1; /* the name in the same allocation */
    struct pl_cluster_link *l = pl_calloc(1, sizeof(*l) + n);
    atomic_init(&l->refs, 1);
    l->name = memcpy(l + 1, name, n);
    stats_init(&l->stats, store, name);
    atomic_init(&l->hosts, hs);
    set_membership(l, hs);
    return l;
}

void up_link_ref(struct pl_cluster_link *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

void up_link_unref(struct pl_cluster_link *l)
{
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* nobody can load l->hosts any more: the published reference goes without a grace period */
    up_hostset_unref(atomic_load_explicit(&l->hosts, memory_order_relaxed));
    free(l);
}

static struct pl_stats *fallback_store;
static pthread_once_t fallback_once = PTHREAD_ONCE_INIT;

static void fallback_init(void)
{
    fallback_store = pl_stats_new();
}

struct pl_stats *up_fallback_stats(void)
{
    if (g.stats)
        return g.stats;
    pthread_once(&fallback_once, fallback_init);
    return fallback_store;
}

uint64_t up_seed(void)
{
    return g.seed;
}

static void hs_rcu_cb(struct rcu_head *head)
{
    struct up_hostset *hs = caa_container_of(head, struct up_hostset, rcu);
    pl_tsan_acquire(hs);               /* main's writes before call_rcu */
    pl_tsan_acquire(&pl_tsan_qs_sync); /* workers' reads before their quiescent states */
    up_hostset_unref(hs);
    atomic_fetch_sub_explicit(&g.callbacks, 1, memory_order_release);
}

/* ---- host sets ------------------------------------------------------------------------------ */

static bool is_dns(int type)
{
    return type == CLUSTER(DISCOVERY_TYPE__STRICT_DNS) ||
           type == CLUSTER(DISCOVERY_TYPE__LOGICAL_DNS);
}

/* The host set of a DNS cluster: its IP endpoints and the last answers for its names. */
static struct up_hostset *dns_hostset(struct up_mcluster *c)
{
    struct up_mdns *d = c->dns;
    size_t cap = 1;
    for (size_t i = 0; i < d->n_eps; i++)
        cap += d->eps[i].addrlen ? 1 : d->eps[i].n_addrs;
    struct up_host_spec *spec = pl_calloc(cap, sizeof(*spec));
    char **keys = pl_calloc(cap, sizeof(*keys));
    size_t n = 0;
    for (size_t i = 0; i < d->n_eps; i++) {
        struct up_ep *e = &d->eps[i];
        struct up_host_spec base = {.weight = e->weight, .healthy = e->healthy};
        if (e->addrlen) {
            spec[n] = base;
            spec[n].addr = (const struct sockaddr *)&e->addr;
            spec[n++].addrlen = e->addrlen;
            continue;
        }
        size_t take =
            c->type == CLUSTER(DISCOVERY_TYPE__LOGICAL_DNS) && e->n_addrs ? 1 : e->n_addrs;
        for (size_t j = 0; j < take; j++) {
            spec[n] = base;
            spec[n].addr = (const struct sockaddr *)&e->addrs[j];
            spec[n].addrlen = e->addrs[j].ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                               : sizeof(struct sockaddr_in6);
            if (c->type == CLUSTER(DISCOVERY_TYPE__LOGICAL_DNS)) /* one logical host */
                spec[n].key = keys[n] = pl_asprintf("%s:%u", e->hostname, e->port);
            n++;
        }
    }
    struct up_hostset *hs = up_hostset_build(&d->lb, c->cfg_hash, spec, n);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(spec);
    return hs;
}

/* The host set of c now: from DNS answers, or from cfg (every other type). */
static struct up_hostset *current_hostset(struct up_mcluster *c, const struct pl_cluster_cfg *cfg)
{
    if (c->dns)
        return dns_hostset(c);
    if (c->type == CLUSTER(DISCOVERY_TYPE__ORIGINAL_DST)) { /* hosts come with connections */
        struct up_lb_params lb;
        up_lb_params_from_cfg(cfg, &lb);
        return up_hostset_build(&lb, c->cfg_hash, NULL, 0);
    }
    return up_hostset_from_cfg(cfg);
}

static void announce(struct up_mcluster *c, const struct up_hostset *hs)
{
    pl_log_debug("upstream", "cluster '%s': %u hosts (%u healthy)", c->name, hs->n_hosts,
                 hs->n_healthy);
    if (g.hook)
        g.hook(c->name, hs->n_hosts, g.hook_arg);
}

/* Publishes hs (reference moved) as c's host set; the old one goes after a grace period. */
static void publish_hs(struct up_mcluster *c, struct up_hostset *hs)
{
    struct up_hostset *old = atomic_load_explicit(&c->link->hosts, memory_order_relaxed);
    /* rcu_assign_pointer, as a C11 release store */
    atomic_store_explicit(&c->link->hosts, hs, memory_order_release);
    set_membership(c->link, hs);
    atomic_fetch_add_explicit(&g.callbacks, 1, memory_order_relaxed);
    /* urcu-qsbr wants call_rcu from an online registered thread; main stays offline otherwise */
    rcu_thread_online();
    pl_tsan_release(old);
    call_rcu(&old->rcu, hs_rcu_cb);
    rcu_thread_offline();
    announce(c, hs);
}

static void publish(struct up_mcluster *c)
{
    publish_hs(c, dns_hostset(c));
}

/* ---- DNS ------------------------------------------------------------------------------------ */

static void resolve(struct up_ep *e);

static void refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    resolve((struct up_ep *)((char *)w - offsetof(struct up_ep, refresh)));
}

static int cmp_ss(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct sockaddr_storage));
}

static void dns_cb(void *arg, int status, const struct sockaddr_storage *addrs, size_t n,
                   uint32_t ttl_s)
{
    struct up_ep *e = arg;
    struct up_mcluster *c = e->c;
    e->q = NULL;
    double next = (double)c->dns->refresh_ms / 1000.0;
    if (status == PL_EIO) { /* keep the hosts we have; try again at the refresh rate */
        pl_log_warn("upstream", "cluster '%s': DNS resolution of '%s' failed", c->name,
                    e->hostname);
    } else {
        struct sockaddr_storage *v = pl_calloc(n + 1, sizeof(*v));
        if (n)
            memcpy(v, addrs, n * sizeof(*v));
        for (size_t i = 0; i < n; i++) {
            if (v[i].ss_family == AF_INET)
                ((struct sockaddr_in *)&v[i])->sin_port = htons(e->port);
            else
                ((struct sockaddr_in6 *)&v[i])->sin6_port = htons(e->port);
        }
        /* STRICT_DNS: order does not matter, so sort to avoid rebuilding for a reordering;
         * LOGICAL_DNS uses the first address as answered */
        if (c->type == CLUSTER(DISCOVERY_TYPE__STRICT_DNS))
            qsort(v, n, sizeof(*v), cmp_ss);
        bool same = n == e->n_addrs && (!n || !memcmp(v, e->addrs, n * sizeof(*v)));
        if (c->type == CLUSTER(DISCOVERY_TYPE__LOGICAL_DNS) && n && e->n_addrs)
            same = !memcmp(v, e->addrs, sizeof(*v)); /* only the first one is used */
        free(e->addrs);
        e->addrs = v;
        e->n_addrs = n;
        if (c->dns->respect_ttl && ttl_s > 0 && status == 0)
            next = ttl_s;
        pl_log_debug("upstream", "cluster '%s': '%s' resolved to %zu addresses (ttl %u)", c->name,
                     e->hostname, n, ttl_s);
        if (!same)
            publish(c);
    }
    ev_timer_set(&e->refresh, next, 0.);
    ev_timer_start(g.loop, &e->refresh);
}

static void resolve(struct up_ep *e)
{
    ev_timer_stop(g.loop, &e->refresh);
    if (!e->q)
        e->q = up_resolve(g.res, e->hostname, e->c->dns->family, dns_cb, e);
}

static void ep_stop(struct up_ep *e)
{
    if (e->q)
        up_dns_cancel(e->q);
    e->q = NULL;
    if (g.loop)
        ev_timer_stop(g.loop, &e->refresh);
}

static void eps_free(struct up_ep *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ep_stop(&eps[i]);
        free(eps[i].hostname);
        free(eps[i].addrs);
    }
    free(eps);
}

/* ---- clusters ------------------------------------------------------------------------------- */

/* Takes the config of cfg; DNS answers of endpoints that stay (same name and port) carry over. */
static void mcluster_set(struct up_mcluster *c, const struct pl_cluster_cfg *cfg)
{
    struct up_mdns *d = c->dns;
    struct up_ep *old = d ? d->eps : NULL;
    size_t n_old = d ? d->n_eps : 0;
    c->cfg_hash = cfg->hash;
    c->type = cfg->type;
    if (!is_dns(c->type)) { /* its hosts come from its config */
        eps_free(old, n_old);
        free(d);
        c->dns = NULL;
        return;
    }
    if (!d)
        d = c->dns = pl_calloc(1, sizeof(*d));
    up_lb_params_from_cfg(cfg, &d->lb);
    const struct pl_cluster_lb_cfg *o = pl_cluster_lb(cfg);
    d->refresh_ms = o->dns_refresh_ms ? o->dns_refresh_ms : 5000;
    d->family = o->dns_lookup_family;
    d->respect_ttl = o->respect_dns_ttl;
    size_t n = cfg->n_endpoints;
    d->eps = n ? pl_calloc(n, sizeof(*d->eps)) : NULL;
    d->n_eps = n;
    for (size_t i = 0; i < n; i++) {
        const struct pl_endpoint_cfg *ec = &cfg->endpoints[i];
        struct up_ep *e = &d->eps[i];
        e->c = c;
        memcpy(&e->addr, &ec->addr, ec->addrlen);
        e->addrlen = ec->addrlen;
        e->hostname = ec->addrlen ? NULL : pl_strdup(ec->hostname ? ec->hostname : "");
        e->port = ec->port;
        e->weight = ec->weight ? ec->weight : 1;
        e->healthy = ec->health_status <= ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY;
        ev_timer_init(&e->refresh, refresh_cb, 0., 0.);
        for (size_t j = 0; e->hostname && j < n_old; j++) {
            if (old[j].hostname && old[j].addrs && !strcmp(old[j].hostname, e->hostname) &&
                old[j].port == e->port) {
                e->addrs = old[j].addrs;
                e->n_addrs = old[j].n_addrs;
                old[j].addrs = NULL;
                break;
            }
        }
    }
    eps_free(old, n_old);
}

static void mcluster_start_dns(struct up_mcluster *c)
{
    for (size_t i = 0; c->dns && i < c->dns->n_eps; i++)
        if (c->dns->eps[i].hostname)
            resolve(&c->dns->eps[i]);
}

static void mcluster_free(struct up_mcluster *c)
{
    if (c->dns)
        eps_free(c->dns->eps, c->dns->n_eps);
    free(c->dns);
    atomic_store_explicit(&c->link->retired, true, memory_order_relaxed);
    up_link_unref(c->link); /* c->name is the link's */
    free(c);
}

static const char *mcluster_key(const void *item)
{
    return ((const struct up_mcluster *)item)->name;
}

int pl_upstream_init(const struct pl_upstream_opts *o, struct pl_err *err)
{
    if (g.inited || !o || !o->loop || !o->stats)
        return pl_err_add(err, NULL, 0, 0, NULL, "upstream: bad init options or already set up");
    struct up_resolver *r;
    if (up_resolver_new(o->loop, o->dns_servers, &r, err) < 0)
        return PL_EINVAL;
    g.loop = o->loop;
    g.stats = o->stats;
    g.res = r;
    g.seed = o->seed;
    pl_nametab_init(&g.by_name, mcluster_key);
    if (!g.seed && getrandom(&g.seed, sizeof(g.seed), 0) != sizeof(g.seed))
        g.seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
    g.inited = true;
    return 0;
}

static bool link_retired(const struct pl_cluster_link *l)
{
    return atomic_load_explicit(&l->retired, memory_order_relaxed);
}

static const struct pl_cluster_link_ops link_ops = {.release = up_link_unref,
                                                    .retired = link_retired};

int pl_upstream_prepare(struct pl_snapshot *s, struct pl_err *err)
{
    if (!g.inited)
        return pl_err_add(err, NULL, 0, 0, NULL, "upstream: pl_upstream_init was not called");
    /* a cluster part (config/snapshot.h) is linked once: a later snapshot sharing it has the
     * same clusters, already linked */
    if (s->cluster_part && s->cluster_part->prepared)
        return 0;
    /* marks by generation, and walks the list for removals only when some cluster went: 10,000
     * clusters are two walks of scattered nodes per update otherwise */
    uint64_t gen = ++g.gen;
    size_t n_seen = 0;
    for (size_t i = 0; i < s->n_clusters; i++) {
        struct pl_cluster_cfg *cfg = s->clusters[i];
        struct up_mcluster *c = pl_nametab_get(&g.by_name, cfg->name);
        if (!c) {
            c = pl_calloc(1, sizeof(*c));
            mcluster_set(c, cfg);
            struct up_hostset *hs = current_hostset(c, cfg);
            c->link = up_link_new(cfg->name, g.stats, hs);
            c->name = c->link->name; /* the link lives as long as c */
            c->next = g.clusters;
            g.clusters = c;
            pl_nametab_put(&g.by_name, c);
            announce(c, hs);
            mcluster_start_dns(c);
        } else if (c->cfg_hash != cfg->hash) {
            mcluster_set(c, cfg);
            publish_hs(c, current_hostset(c, cfg));
            mcluster_start_dns(c);
        }
        if (c->seen != gen) {
            c->seen = gen;
            n_seen++;
        }
        /* a compiled cluster keeps the link it got first: one published already has its name's
         * link (the compile cache does not reuse one whose link retired) */
        if (cfg->link != c->link) {
            if (cfg->link)
                cfg->link_ops->release(cfg->link);
            up_link_ref(c->link);
            cfg->link = c->link;
            cfg->link_ops = &link_ops;
        }
    }
    for (struct up_mcluster **pp = &g.clusters; n_seen < g.by_name.n && *pp;) {
        struct up_mcluster *c = *pp;
        if (c->seen == gen) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        pl_log_debug("upstream", "cluster '%s' removed", c->name);
        pl_nametab_del(&g.by_name, c->name);
        mcluster_free(c);
    }
    if (s->cluster_part)
        s->cluster_part->prepared = true;
    return 0;
}

void pl_upstream_shutdown(void)
{
    if (!g.inited)
        return;
    while (g.clusters) {
        struct up_mcluster *c = g.clusters;
        g.clusters = c->next;
        mcluster_free(c);
    }
    pl_nametab_clear(&g.by_name);
    up_resolver_free(g.res);
    while (atomic_load_explicit(&g.callbacks, memory_order_acquire))
        usleep(1000);
    g.inited = false;
    g.res = NULL;
    g.stats = NULL;
    g.loop = NULL;
}

void pl_upstream_set_update_hook(pl_upstream_update_hook fn, void *arg)
{
    g.hook = fn;
    g.hook_arg = arg;
}

const struct pl_cluster_stats *pl_upstream_main_stats(const char *cluster)
{
    const struct up_mcluster *c = g.inited ? pl_nametab_get(&g.by_name, cluster) : NULL;
    return c ? &c->link->stats : NULL;
}

size_t pl_upstream_main_hosts(const char *cluster, struct pl_upstream_host_info *out, size_t cap)
{
    const struct up_mcluster *c = g.inited ? pl_nametab_get(&g.by_name, cluster) : NULL;
    if (!c)
        return 0;
    const struct up_hostset *hs = atomic_load_explicit(&c->link->hosts, memory_order_relaxed);
    for (size_t i = 0; i < hs->n_hosts && i < cap; i++) {
        up_host_addr_str(hs, i, out[i].addr_str, sizeof(out[i].addr_str));
        out[i].weight = hs->hosts[i].weight;
        out[i].healthy = hs->hosts[i].healthy;
    }
    return hs->n_hosts;
}
