/* A resource set (bootstrap static resources + xDS resources) -> one snapshot. */
#include "config/compile_resources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/compile_internal.h"
#include "config/nametab.h"
#include "core/err.h"
#include "router/router.h"
#include "tls/tls.h"

#define HCM_T  Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
#define HCM(x) ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__##x
#define HCM_DESC                                                                                   \
    envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor
#define LISTENER_T Envoy__Config__Listener__V3__Listener
#define ROUTE_T    Envoy__Config__Route__V3__RouteConfiguration
#define CLA_T      Envoy__Config__Endpoint__V3__ClusterLoadAssignment
#define CLUSTER_T  Envoy__Config__Cluster__V3__Cluster

static ProtobufCMessage *clone(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = pl_malloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    if (!c)
        pl_die("re-decoding %s failed", m->descriptor->name);
    return c;
}

static bool is_hcm(const Google__Protobuf__Any *tc)
{
    const char *slash = tc ? strrchr(tc->type_url, '/') : NULL;
    return slash && !strcmp(slash + 1, HCM_DESC.name);
}

static HCM_T *unpack_hcm(const Google__Protobuf__Any *tc)
{
    return (HCM_T *)protobuf_c_message_unpack(&HCM_DESC, NULL, tc->value.len, tc->value.data);
}

static void chain_rds_names(const Envoy__Config__Listener__V3__FilterChain *fc, char ***names,
                            size_t *n)
{
    for (size_t i = 0; fc && i < fc->n_filters; i++) {
        const Google__Protobuf__Any *tc = fc->filters[i]->typed_config;
        if (!is_hcm(tc))
            continue;
        HCM_T *h = unpack_hcm(tc);
        if (!h)
            continue;
        if (h->route_specifier_case == HCM(HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) &&
            h->rds && *h->rds->route_config_name) {
            bool dup = false;
            for (size_t k = 0; k < *n && names; k++)
                dup |= !strcmp((*names)[k], h->rds->route_config_name);
            if (!dup && names) {
                *names = pl_realloc(*names, (*n + 1) * sizeof(**names));
                (*names)[*n] = pl_strdup(h->rds->route_config_name);
            }
            if (!dup)
                (*n)++;
        }
        protobuf_c_message_free_unpacked(&h->base, NULL);
    }
}

size_t pl_listener_rds_names(const LISTENER_T *l, char ***names)
{
    size_t n = 0;
    if (names)
        *names = NULL;
    for (size_t i = 0; i < l->n_filter_chains; i++)
        chain_rds_names(l->filter_chains[i], names, &n);
    chain_rds_names(l->default_filter_chain, names, &n);
    return n;
}

static int cmp_res_ptr(const void *a, const void *b)
{
    return strcmp((*(const struct pl_res *const *)a)->name,
                  (*(const struct pl_res *const *)b)->name);
}

/* The resources of a set sorted by name, for lookups (the set's arrays may be in any order). */
struct res_index {
    const struct pl_res **v;
    size_t n;
};

static struct res_index index_of(const struct pl_res *const *v, size_t n)
{
    struct res_index ix = {.v = pl_calloc(n + 1, sizeof(*ix.v)), .n = n};
    for (size_t i = 0; i < n; i++)
        ix.v[i] = v[i];
    qsort(ix.v, n, sizeof(*ix.v), cmp_res_ptr);
    return ix;
}

static void add_failure(const char ***v, size_t *n, const char *name)
{
    *v = pl_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = name;
}

static int add_listener(struct pl_snapshot *s, const struct pl_resource_set *rs,
                        const LISTENER_T *l, const struct pl_res *dyn, const struct timespec *now,
                        struct pl_err *err)
{
    struct pl_listener_cfg *out = &s->listeners[s->n_listeners];
    int rc = pl_cc_listener(rs->cache, l, dyn, now, out, err);
    if (rc < 0) {
        if (dyn && rs->failed)
            add_failure(&rs->failed->listeners, &rs->failed->n_listeners, dyn->name);
        return rc;
    }
    s->n_listeners++;
    return 0;
}

static const char *res_key(const void *item)
{
    return ((const struct pl_res *)item)->name;
}

/* The ClusterLoadAssignment an EDS cluster takes its endpoints from, or NULL when not EDS. */
static const char *eds_name_of(const CLUSTER_T *cl, const struct pl_res *dyn)
{
    if (!cl)
        return dyn->eds_name;
    if (cl->cluster_discovery_type_case !=
            ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE ||
        cl->type != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS)
        return NULL;
    return cl->eds_cluster_config && *cl->eds_cluster_config->service_name
               ? cl->eds_cluster_config->service_name
               : cl->name;
}

/* cl NULL: dyn holds the cluster encoded (decoded by the cache when it must compile it). */
static int add_cluster(struct pl_snapshot *s, const struct pl_resource_set *rs, const CLUSTER_T *cl,
                       const struct pl_res *dyn, const struct pl_nametab *clas,
                       const struct timespec *now, struct pl_err *err)
{
    static const CLA_T empty = ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT;
    const struct pl_res *r = NULL;
    const char *svc = eds_name_of(cl, dyn);
    if (svc)
        r = pl_nametab_get(clas, svc);
    struct pl_cluster_cfg **out = &s->clusters[s->n_clusters];
    int rc = pl_cc_cluster(rs->cache, cl, dyn, svc && !r ? &empty : NULL, r, now, out, err);
    if (rc < 0) {
        if (dyn && rs->failed)
            add_failure(&rs->failed->clusters, &rs->failed->n_clusters, dyn->name);
        return rc;
    }
    s->n_clusters++;
    return 0;
}

/* Compiles every RDS route configuration once into s->route_tables (sorted by name): the HTTP
 * connection managers that name one look it up per snapshot, so a route change is not a
 * listener change and reaches existing connections. */
static int add_route_tables(struct pl_snapshot *s, const struct pl_resource_set *rs,
                            const struct res_index *routes, struct pl_err *err)
{
    int rc = 0;
    s->route_tables = pl_calloc(routes->n + 1, sizeof(*s->route_tables));
    for (size_t i = 0; i < routes->n; i++) {
        const struct pl_res *r = routes->v[i];
        char path[320];
        snprintf(path, sizeof(path), "RouteConfiguration '%.256s'", r->name);
        struct pl_route_table_cfg *out = &s->route_tables[s->n_route_tables];
        if (pl_cc_route_table(rs->cache, r, path, out, err) < 0) {
            if (rs->failed)
                add_failure(&rs->failed->routes, &rs->failed->n_routes, r->name);
            rc = PL_EINVAL;
            continue;
        }
        s->n_route_tables++;
    }
    return rc;
}

/* The resources as the snapshot keeps them: shared with their owner (a pointer and a
 * reference: 8 bytes per assignment of 10,000 clusters, where a copy of the fields was 64),
 * else copied. */
static const struct pl_res **copy_res(const struct pl_res *const *v, size_t n)
{
    const struct pl_res **d = pl_calloc(n ? n : 1, sizeof(*d));
    for (size_t i = 0; i < n; i++) {
        const struct pl_res *r = v[i];
        if (r->owner) {
            pl_shared_ref(r->owner);
            d[i] = r;
            continue;
        }
        struct pl_res *c = pl_calloc(1, sizeof(*c));
        c->name = pl_strdup(r->name);
        c->msg = clone(r->msg);
        c->version_info = pl_strdup(r->version_info ? r->version_info : "");
        c->last_updated = r->last_updated;
        d[i] = c;
    }
    return d;
}

/* The cluster side of s: static and CDS clusters compiled, the assignments and warming
 * clusters kept, in a part later builds may share when compiled through a cache. */
static int add_clusters(struct pl_snapshot *s, const struct pl_resource_set *rs,
                        const struct timespec *now, struct pl_err *err)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr =
        rs->bootstrap ? rs->bootstrap->static_resources : NULL;
    size_t nsc = sr ? sr->n_clusters : 0;
    int rc = 0;
    s->clusters = pl_calloc(nsc + rs->n_clusters + 1, sizeof(*s->clusters));
    struct pl_nametab clas;
    pl_nametab_init(&clas, res_key);
    pl_nametab_reserve(&clas, rs->n_clas);
    for (size_t i = rs->n_clas; i-- > 0;) /* the first of a name wins */
        pl_nametab_put(&clas, (void *)rs->clas[i]);
    for (size_t i = 0; i < nsc; i++)
        if (add_cluster(s, rs, sr->clusters[i], NULL, &clas, now, err) < 0)
            rc = PL_EINVAL;
    for (size_t i = 0; i < rs->n_clusters; i++)
        if (add_cluster(s, rs, (const CLUSTER_T *)rs->clusters[i]->msg, rs->clusters[i], &clas, now,
                        err) < 0)
            rc = PL_EINVAL;
    pl_nametab_clear(&clas);
    s->endpoints = copy_res(rs->clas, rs->n_clas);
    s->n_endpoints = rs->n_clas;
    s->warming_clusters = copy_res(rs->warming_clusters, rs->n_warming_clusters);
    s->n_warming_clusters = rs->n_warming_clusters;
    s->cds_version = rs->cds_version ? pl_strdup(rs->cds_version) : NULL;
    if (rs->cache)
        pl_snapshot_share_clusters(s);
    return rc;
}

int pl_config_compile_resources(const struct pl_resource_set *rs, struct pl_snapshot **out,
                                struct pl_err *err)
{
    pl_tls_register_transports(); /* listeners' and clusters' transport sockets */
    struct pl_snapshot *s = pl_snapshot_new();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const pl_bootstrap_t *b = rs->bootstrap;
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr =
        b ? b->static_resources : NULL;
    if (b) {
        s->bootstrap = clone(&b->base);
        s->bootstrap_loaded = now;
    }
    size_t nsl = sr ? sr->n_listeners : 0;
    s->listeners = pl_calloc(nsl + rs->n_listeners + 1, sizeof(*s->listeners));
    int rc = 0;
    struct res_index routes = index_of(rs->routes, rs->n_routes);
    if (add_route_tables(s, rs, &routes, err) < 0)
        rc = PL_EINVAL;
    for (size_t i = 0; i < nsl; i++)
        if (add_listener(s, rs, sr->listeners[i], NULL, &now, err) < 0)
            rc = PL_EINVAL;
    for (size_t i = 0; i < rs->n_listeners; i++)
        if (add_listener(s, rs, (const LISTENER_T *)rs->listeners[i]->msg, rs->listeners[i], &now,
                         err) < 0)
            rc = PL_EINVAL;
    free(routes.v);
    if (rs->cache && rs->same_clusters) {
        pl_snapshot_use_clusters(s, rs->same_clusters);
        pl_compile_cache_keep_clusters(rs->cache);
    } else if (add_clusters(s, rs, &now, err) < 0) {
        rc = PL_EINVAL;
    }
    s->routes = copy_res(rs->routes, rs->n_routes);
    s->n_routes = rs->n_routes;
    s->warming_listeners = copy_res(rs->warming_listeners, rs->n_warming_listeners);
    s->n_warming_listeners = rs->n_warming_listeners;
    s->lds_version = rs->lds_version ? pl_strdup(rs->lds_version) : NULL;
    if (rc < 0) {
        pl_snapshot_free(s);
        return rc;
    }
    pl_snapshot_index_build(s);
    *out = s;
    return 0;
}
