/* What serves: warming (EDS clusters wait for their assignment, listeners for their routes) and
 * the build of a snapshot from the accepted resources, through the compile cache. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/server.h"
#include "upstream/upstream.h"
#include "xds/client_internal.h"

#define LISTENER_T Envoy__Config__Listener__V3__Listener
#define CLUSTER_T  Envoy__Config__Cluster__V3__Cluster
#define HCM_T      Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager

static double source_timeout(const Envoy__Config__Core__V3__ConfigSource *cs)
{
    if (cs && cs->initial_fetch_timeout) /* 0: wait forever */
        return (double)cs->initial_fetch_timeout->seconds + cs->initial_fetch_timeout->nanos / 1e9;
    return 15.0; /* Envoy's default */
}

static double eds_timeout(const CLUSTER_T *cl)
{
    return source_timeout(cl->eds_cluster_config ? cl->eds_cluster_config->eds_config : NULL);
}

/* The RDS route names of l that no accepted route configuration answers yet. */
static size_t missing_routes(struct pl_xds *x, const LISTENER_T *l)
{
    char **names;
    size_t n = pl_listener_rds_names(l, &names), missing = 0;
    for (size_t i = 0; i < n; i++) {
        missing += !pl_xds_resmap_get(&x->acc[PL_XDS_RDS], names[i]);
        free(names[i]);
    }
    free(names);
    return missing;
}

void pl_xds_each_hcm(const LISTENER_T *l, void (*fn)(const HCM_T *h, void *arg), void *arg)
{
    for (size_t c = 0; c <= l->n_filter_chains; c++) {
        const Envoy__Config__Listener__V3__FilterChain *fc =
            c < l->n_filter_chains ? l->filter_chains[c] : l->default_filter_chain;
        for (size_t f = 0; fc && f < fc->n_filters; f++) {
            const Google__Protobuf__Any *tc = fc->filters[f]->typed_config;
            if (!tc || !strstr(tc->type_url, "HttpConnectionManager"))
                continue;
            HCM_T *h =
                envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
                    NULL, tc->value.len, tc->value.data);
            if (!h)
                continue;
            fn(h, arg);
            protobuf_c_message_free_unpacked(&h->base, NULL);
        }
    }
}

static void longest_rds_timeout(const HCM_T *h, void *arg)
{
    double *t = arg;
    /* rds and route_config share a oneof: ask which one is set */
    if (h->route_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
        double v = source_timeout(h->rds->config_source);
        if (*t != 0 && (v == 0 || v > *t))
            *t = v;
    }
}

double pl_xds_rds_timeout(const LISTENER_T *l)
{
    double t = -1;
    pl_xds_each_hcm(l, longest_rds_timeout, &t);
    return t < 0 ? 15.0 : t;
}

#define TIMED_OUT (-2.0) /* warm_deadline: gave up waiting; serves without what it waits for */

/* Is e ready to serve; if not, starts (or checks) its warming deadline. */
static bool warmed(struct pl_xds *x, struct pl_xds_res *e, bool ready, double timeout, double now)
{
    if (ready) {
        e->warm_deadline = 0;
        return true;
    }
    if (e->warm_deadline == TIMED_OUT)
        return true;
    if (e->warm_deadline == 0)
        e->warm_deadline = timeout > 0 ? now + timeout : -1;
    if (e->warm_deadline > 0 && now >= e->warm_deadline) {
        pl_log_warn("xds", "'%s': initial fetch timed out: serving without it", e->rec->res.name);
        e->warm_deadline = TIMED_OUT; /* once: no deadline left for the timer */
        return true;
    }
    x->n_warming++;
    return false;
}

/* What serves of one type (LDS or CDS) and what still warms. */
struct side {
    const struct pl_res **active, **warming;
    size_t n_active, n_warming;
    struct pl_xds_res **entries; /* [n_active]: whose `serving` becomes active[i] */
    struct pl_xds_rec **serve;
};

/* A ready accepted resource serves; one that still warms keeps its previous version serving. */
static void next_active(struct pl_xds *x, enum pl_xds_type t, struct side *sd, double now)
{
    struct pl_xds_resmap *acc = &x->acc[t];
    size_t cap = acc->tab.n + 1;
    /* written before read, and warming mostly not at all: not zeroed (a zeroed heap block
     * touches every page of it) */
    sd->active = pl_malloc(cap * sizeof(*sd->active));
    sd->warming = pl_malloc(cap * sizeof(*sd->warming));
    sd->entries = pl_malloc(cap * sizeof(*sd->entries));
    sd->serve = pl_malloc(cap * sizeof(*sd->serve));
    for (size_t i = 0; i < acc->tab.cap; i++) {
        struct pl_xds_res *e = pl_xds_resmap_at(acc, i);
        if (!e)
            continue;
        bool ready;
        double timeout = 15.0;
        if (t == PL_XDS_LDS)
            ready = missing_routes(x, (const LISTENER_T *)e->rec->res.msg) == 0;
        else
            ready = !e->rec->res.eds_name ||
                    pl_xds_resmap_get(&x->acc[PL_XDS_EDS], e->rec->res.eds_name);
        if (!ready)
            timeout = e->rec->warm_timeout;
        struct pl_xds_rec *serve = e->rec;
        if (!warmed(x, e, ready, timeout, now)) {
            sd->warming[sd->n_warming++] = &e->rec->res;
            serve = e->serving;
        }
        if (!serve)
            continue;
        sd->entries[sd->n_active] = e;
        sd->serve[sd->n_active] = serve;
        sd->active[sd->n_active++] = &serve->res;
    }
}

static void side_commit(struct side *sd)
{
    for (size_t i = 0; i < sd->n_active; i++) {
        struct pl_xds_res *e = sd->entries[i];
        if (e->serving != sd->serve[i]) {
            pl_xds_rec_unref(e->serving);
            e->serving = pl_xds_rec_ref(sd->serve[i]);
        }
    }
}

static void side_free(struct side *sd)
{
    free(sd->active);
    free(sd->warming);
    free(sd->entries);
    free(sd->serve);
}

static const struct pl_res **as_set(const struct pl_xds_resmap *m)
{
    const struct pl_res **v = pl_malloc((m->tab.n + 1) * sizeof(*v)); /* every entry written */
    size_t n = 0;
    for (size_t i = 0; i < m->tab.cap; i++)
        if (pl_xds_resmap_at(m, i))
            v[n++] = &pl_xds_resmap_at(m, i)->rec->res;
    return v;
}

/* Counts one static item still waiting (until start + timeout; 0: forever) and keeps the
 * earliest such deadline for the timer. */
static void static_wait(struct pl_xds *x, double timeout, double now)
{
    double d = x->start_time + timeout;
    if (timeout > 0 && now >= d)
        return;
    x->n_warming++;
    if (timeout > 0 && (x->static_deadline == 0 || d < x->static_deadline))
        x->static_deadline = d;
}

/* Static listeners and EDS clusters of the bootstrap warm too (counted, never held back). */
static void static_warming(struct pl_xds *x, double now)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = x->boot->static_resources;
    x->static_deadline = 0;
    for (size_t i = 0; sr && i < sr->n_listeners; i++)
        if (missing_routes(x, sr->listeners[i]) > 0)
            static_wait(x, pl_xds_rds_timeout(sr->listeners[i]), now);
    for (size_t i = 0; sr && i < sr->n_clusters; i++) {
        const char *svc;
        if (pl_xds_cluster_eds_name(sr->clusters[i], &svc) &&
            !pl_xds_resmap_get(&x->acc[PL_XDS_EDS], svc))
            static_wait(x, eds_timeout(sr->clusters[i]), now);
    }
}

static const char *applied(const struct pl_xds *x, enum pl_xds_type t)
{
    return x->applied_version[t];
}

void pl_xds_store_clusters_changed(struct pl_xds *x)
{
    if (x->clusters_built)
        pl_shared_unref(&x->clusters_built->sh);
    x->clusters_built = NULL;
}

int pl_xds_store_rebuild(struct pl_xds *x, struct pl_compile_failures *failed, struct pl_err *err)
{
    double now = ev_now(x->o.loop);
    struct side c = {0}, l = {0};
    x->n_warming = 0;
    /* the cluster side as it was (none warmed then, so none times out now), or built anew */
    struct pl_cluster_part *same = x->clusters_built;
    const struct pl_res **se = NULL;
    if (!same) {
        next_active(x, PL_XDS_CDS, &c, now);
        se = as_set(&x->acc[PL_XDS_EDS]);
    }
    next_active(x, PL_XDS_LDS, &l, now);
    static_warming(x, now);
    const struct pl_res **sr = as_set(&x->acc[PL_XDS_RDS]);
    if (!x->cache)
        x->cache = pl_compile_cache_new();
    struct pl_resource_set rs = {
        .bootstrap = x->boot,
        .listeners = l.active,
        .n_listeners = l.n_active,
        .clusters = c.active,
        .n_clusters = c.n_active,
        .routes = sr,
        .n_routes = x->acc[PL_XDS_RDS].tab.n,
        .clas = se,
        .n_clas = se ? x->acc[PL_XDS_EDS].tab.n : 0,
        .warming_listeners = l.warming,
        .n_warming_listeners = l.n_warming,
        .warming_clusters = c.warming,
        .n_warming_clusters = c.n_warming,
        .lds_version = applied(x, PL_XDS_LDS),
        .cds_version = applied(x, PL_XDS_CDS),
        .cache = x->cache,
        .failed = failed,
        .same_clusters = same,
    };
    struct pl_snapshot *s = NULL;
    int rc = pl_config_compile_resources(&rs, &s, err);
    if (rc == 0 && (rc = pl_upstream_prepare(s, err)) == 0)
        rc = pl_server_apply(x->o.srv, s, err);
    if (rc < 0 && s)
        pl_snapshot_free(s);
    if (rc == 0) {
        pl_compile_cache_commit(x->cache);
        side_commit(&c);
        side_commit(&l);
        if (!same && c.n_warming == 0 && s->cluster_part) {
            pl_shared_ref(&s->cluster_part->sh);
            x->clusters_built = s->cluster_part;
        }
        if (x->active_clusters.store) { /* static + dynamic, as Envoy counts them */
            pl_gauge_set(x->active_clusters, (int64_t)s->n_clusters);
            pl_gauge_set(x->warming_clusters, (int64_t)c.n_warming);
            pl_gauge_set(x->active_listeners, (int64_t)s->n_listeners);
            pl_gauge_set(x->warming_listeners, (int64_t)l.n_warming);
        }
    } else {
        pl_compile_cache_rollback(x->cache);
    }
    free(sr);
    free(se);
    side_free(&c);
    side_free(&l);
    return rc < 0 ? PL_EINVAL : 0;
}

double pl_xds_store_next_deadline(const struct pl_xds *x)
{
    double d = x->static_deadline;
    static const enum pl_xds_type warm[] = {PL_XDS_CDS, PL_XDS_LDS};
    for (size_t k = 0; k < 2; k++) {
        const struct pl_xds_resmap *m = &x->acc[warm[k]];
        for (size_t i = 0; i < m->tab.cap; i++) {
            const struct pl_xds_res *e = pl_xds_resmap_at(m, i);
            if (e && e->warm_deadline > 0 && (d == 0 || e->warm_deadline < d))
                d = e->warm_deadline;
        }
    }
    return d;
}

void pl_xds_store_free(struct pl_xds *x)
{
    for (int t = 0; t < PL_XDS_NTYPES; t++)
        pl_xds_resmap_free(&x->acc[t]);
    pl_xds_store_clusters_changed(x);
    pl_compile_cache_free(x->cache);
    x->cache = NULL;
}
