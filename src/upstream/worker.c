/* Per-worker cluster runtime: a per-thread map from cluster name to struct up_cluster, host_rt
 * lifetime, and the rebuild of a worker's host array when the published host set changes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/log.h"
#include "upstream/upstream_internal.h"

struct up_worker {
    struct up_cluster **tab; /* open addressing, linear probing; cap is a power of two */
    size_t cap, n;
    uint64_t rng;
    uint64_t last_sweep;
};

static _Thread_local struct up_worker *tls_w;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t n_workers_made;
/* set by every HTTP connection manager compile on main (the same function each time) while
 * workers read it: atomic, so the repeated store is not a data race */
static _Atomic(pl_upstream_pool_release) pool_release;

void pl_upstream_set_pool_release(pl_upstream_pool_release fn)
{
    atomic_store_explicit(&pool_release, fn, memory_order_relaxed);
}

static void worker_destroy(void *p);

static void key_init(void)
{
    pthread_key_create(&tls_key, worker_destroy);
}

static struct up_worker *worker_get(void)
{
    if (tls_w)
        return tls_w;
    pthread_once(&tls_once, key_init);
    struct up_worker *w = pl_calloc(1, sizeof(*w));
    w->cap = 16;
    w->tab = pl_calloc(w->cap, sizeof(*w->tab));
    uint64_t seed = up_seed();
    if (!seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)time(NULL);
    uint64_t idx = atomic_fetch_add_explicit(&n_workers_made, 1, memory_order_relaxed);
    w->rng = seed ^ (idx * 0xd1b54a32d192ed03ULL);
    w->last_sweep = up_now_s();
    tls_w = w;
    pthread_setspecific(tls_key, w);
    return w;
}

uint64_t up_rand(void)
{
    struct up_worker *w = worker_get();
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t up_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec;
}

/* ---- hosts ---------------------------------------------------------------------------------- */

static void host_set_addr(struct up_host *h, const struct sockaddr *sa, socklen_t len)
{
    memcpy(&h->pub.addr, sa, len);
    h->pub.addrlen = len;
    up_addr_format(sa, h->pub.addr_str, sizeof(h->pub.addr_str));
}

struct up_host *up_host_new(const char *cluster, const struct sockaddr *sa, socklen_t len,
                            const char *key)
{
    struct up_host *h = pl_calloc(1, sizeof(*h));
    host_set_addr(h, sa, len);
    h->cluster_name = pl_strdup(cluster);
    h->pub.cluster = h->cluster_name;
    h->pub.weight = 1;
    h->pub.healthy = true;
    h->key = pl_strdup(key ? key : h->pub.addr_str);
    return h;
}

static void host_free(struct up_host *h)
{
    free(h->key);
    free(h->cluster_name);
    free(h);
}

void up_host_retire(struct up_host *h)
{
    h->pub.removed = true;
    pl_upstream_pool_release release = atomic_load_explicit(&pool_release, memory_order_relaxed);
    if (release && (h->pub.pool_h1 || h->pub.pool_h2))
        release(&h->pub);
    if (!h->pub.refs)
        host_free(h);
}

void pl_upstream_host_ref(struct pl_host_rt *h)
{
    h->refs++;
}

void pl_upstream_host_unref(struct pl_host_rt *h)
{
    if (!h->refs)
        pl_die("pl_upstream_host_unref: %s has no reference", h->addr_str);
    if (--h->refs == 0 && h->removed)
        host_free((struct up_host *)h);
}

/* ---- host set changes ----------------------------------------------------------------------- */

static int cmp_host_key(const void *a, const void *b)
{
    const struct up_host *x = *(struct up_host *const *)a, *y = *(struct up_host *const *)b;
    return strcmp(x->key, y->key);
}

/* Finds the host with key among old (sorted by key when sorted) and marks it taken. */
static struct up_host *take_host(struct up_host **old, size_t n, bool sorted, const char *key)
{
    struct up_host *h = NULL;
    if (sorted) {
        struct up_host k = {.key = (char *)key}, *kp = &k;
        struct up_host **f = bsearch(&kp, old, n, sizeof(*old), cmp_host_key);
        h = f ? *f : NULL;
    } else {
        for (size_t i = 0; i < n && !h; i++)
            if (!strcmp(old[i]->key, key))
                h = old[i];
    }
    if (!h || h->taken)
        return NULL;
    h->taken = true;
    return h;
}

/* True when the LB state built for a still fits b: same config, same hosts in the same slots. */
static bool same_lb_input(const struct up_hostset *a, const struct up_hostset *b)
{
    if (!a || a->cfg_hash != b->cfg_hash || a->n_avail != b->n_avail)
        return false;
    for (size_t i = 0; i < a->n_avail; i++) {
        const struct up_host_info *x = &a->hosts[up_avail(a, i)], *y = &b->hosts[up_avail(b, i)];
        char kx[64], ky[64];
        if (up_avail(a, i) != up_avail(b, i) || x->weight != y->weight ||
            strcmp(up_host_key(a, up_avail(a, i), kx, sizeof(kx)),
                   up_host_key(b, up_avail(b, i), ky, sizeof(ky))))
            return false;
    }
    return true;
}

/* Moves c to the link's current host set, keeping the host_rts of hosts that stay. */
void up_refresh(struct up_cluster *c)
{
    /* rcu_dereference: valid until our next quiescent state, long enough to take a reference */
    struct up_hostset *cur = atomic_load_explicit(&c->link->hosts, memory_order_acquire);
    if (cur == c->hs)
        return;
    up_hostset_ref(cur);
    struct up_hostset *old = c->hs;
    size_t n_old = old ? old->n_hosts : 0;
    struct up_host **prev = c->hosts;
    bool sorted = n_old * cur->n_hosts > 4096;
    if (sorted)
        qsort(prev, n_old, sizeof(*prev), cmp_host_key);
    c->hosts = pl_calloc(cur->n_hosts + 1, sizeof(*c->hosts));
    for (size_t i = 0; i < cur->n_hosts; i++) {
        const struct up_host_info *hi = &cur->hosts[i];
        char kb[64];
        socklen_t len;
        const struct sockaddr *sa = up_host_sa(cur, i, &len);
        struct up_host *h = take_host(prev, n_old, sorted, up_host_key(cur, i, kb, sizeof(kb)));
        if (h)
            host_set_addr(h, sa, len);
        else
            h = up_host_new(c->pub.name, sa, len, cur->keys ? cur->keys[i] : NULL);
        h->pub.weight = hi->weight;
        h->pub.healthy = hi->healthy;
        c->hosts[i] = h;
    }
    for (size_t i = 0; i < n_old; i++) { /* what was not taken has gone */
        if (prev[i]->taken)
            prev[i]->taken = false;
        else
            up_host_retire(prev[i]);
    }
    free(prev);
    bool keep = same_lb_input(old, cur);
    c->hs = cur;
    if (!keep)
        up_lb_reset(c);
    up_hostset_unref(old);
}

/* ---- clusters ------------------------------------------------------------------------------- */

static void set_link(struct up_cluster *c, const struct pl_cluster_cfg *cfg)
{
    struct pl_cluster_link *l;
    if (cfg->link) {
        l = cfg->link;
        up_link_ref(l); /* the snapshot's reference keeps it alive meanwhile */
    } else {
        l = up_link_new(cfg->name, up_fallback_stats(), up_hostset_from_cfg(cfg));
    }
    if (c->link)
        up_link_unref(c->link);
    c->link = l;
    c->private_link = !cfg->link;
    c->private_hash = cfg->hash;
    c->pub.name = l->name;
    c->pub.stats = l->stats;
}

static void cluster_free(struct up_cluster *c)
{
    for (size_t i = 0; c->hs && i < c->hs->n_hosts; i++)
        up_host_retire(c->hosts[i]);
    while (c->odst) {
        struct up_host *h = c->odst;
        c->odst = h->next;
        up_host_retire(h);
    }
    free(c->hosts);
    up_lb_free(c);
    up_hostset_unref(c->hs);
    free(c->codes);
    free(c->code_ok);
    up_link_unref(c->link);
    free(c);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

static void tab_insert(struct up_worker *w, struct up_cluster *c)
{
    size_t i = name_hash(c->pub.name) & (w->cap - 1);
    while (w->tab[i])
        i = (i + 1) & (w->cap - 1);
    w->tab[i] = c;
    w->n++;
}

/* Rebuilds the table at cap, keeping the clusters keep() accepts and freeing the others. */
static void tab_rebuild(struct up_worker *w, size_t cap,
                        bool (*keep)(struct up_cluster *, uint64_t), uint64_t now)
{
    struct up_cluster **old = w->tab;
    size_t n_old = w->cap;
    w->tab = pl_calloc(cap, sizeof(*w->tab));
    w->cap = cap;
    w->n = 0;
    for (size_t i = 0; i < n_old; i++) {
        if (!old[i])
            continue;
        if (!keep || keep(old[i], now))
            tab_insert(w, old[i]);
        else
            cluster_free(old[i]);
    }
    free(old);
}

/* Removed from config, unreferenced, and not handed out for two seconds. */
static bool still_needed(struct up_cluster *c, uint64_t now)
{
    return c->pub.refs || !atomic_load_explicit(&c->link->retired, memory_order_relaxed) ||
           now - c->last_returned < 2;
}

struct pl_cluster_rt *pl_upstream_cluster(const struct pl_cluster_cfg *cfg)
{
    struct up_worker *w = worker_get();
    uint64_t now = up_now_s();
    if (now != w->last_sweep) {
        w->last_sweep = now;
        tab_rebuild(w, w->cap, still_needed, now);
    }
    size_t i = name_hash(cfg->name) & (w->cap - 1);
    struct up_cluster *c;
    while ((c = w->tab[i]) && strcmp(c->pub.name, cfg->name))
        i = (i + 1) & (w->cap - 1);
    if (!c) {
        if ((w->n + 1) * 2 > w->cap)
            tab_rebuild(w, w->cap * 2, NULL, now);
        c = pl_calloc(1, sizeof(*c));
        set_link(c, cfg);
        tab_insert(w, c);
    } else if (cfg->link ? c->link != cfg->link
                         : (!c->private_link || c->private_hash != cfg->hash)) {
        set_link(c, cfg); /* the name was removed and added again, or an unprepared snapshot */
    }
    c->last_returned = now;
    up_refresh(c);
    return &c->pub;
}

void pl_upstream_cluster_ref(struct pl_cluster_rt *c)
{
    c->refs++;
}

void pl_upstream_cluster_unref(struct pl_cluster_rt *pc)
{
    struct up_cluster *c = (struct up_cluster *)pc;
    if (!pc->refs)
        pl_die("pl_upstream_cluster_unref: cluster '%s' has no reference", pc->name);
    if (--pc->refs == 0 && c->orphan)
        cluster_free(c);
}

void pl_upstream_count_status(struct pl_cluster_rt *pc, unsigned status)
{
    struct up_cluster *c = (struct up_cluster *)pc;
    unsigned cls = status / 100;
    pl_counter_inc(PL_CLUSTER_COUNTER(&pc->stats, upstream_rq_xx[cls >= 1 && cls <= 5 ? cls : 0]));
    if (status < 100 || status > 599)
        return;
    if (!c->codes) {
        c->codes = pl_calloc(600, sizeof(*c->codes));
        c->code_ok = pl_calloc(600, 1);
    }
    if (!c->code_ok[status]) {
        char name[512];
        snprintf(name, sizeof(name), "cluster.%s.upstream_rq_%u", pc->name, status);
        c->codes[status] = pl_stats_counter(pc->stats.store, name);
        c->code_ok[status] = 1;
    }
    pl_counter_inc(c->codes[status]);
}

static void worker_destroy(void *p)
{
    struct up_worker *w = p;
    if (!w)
        return;
    for (size_t i = 0; i < w->cap; i++) {
        struct up_cluster *c = w->tab[i];
        if (!c)
            continue;
        if (c->pub.refs)
            c->orphan = true; /* freed by the last pl_upstream_cluster_unref */
        else
            cluster_free(c);
    }
    free(w->tab);
    free(w);
    if (tls_w == w)
        tls_w = NULL;
}

void pl_upstream_worker_free(void)
{
    if (!tls_w)
        return;
    struct up_worker *w = tls_w;
    pthread_setspecific(tls_key, NULL);
    worker_destroy(w);
}
