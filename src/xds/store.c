/* Accepted xDS resources: checking a response, warming, and building + applying snapshots. */
#include <stdlib.h>
#include <string.h>

#include "config/compile_resources.h"
#include "config/validate.h"
#include "core/log.h"
#include "server/server.h"
#include "upstream/upstream.h"
#include "xds/client_internal.h"

#define LISTENER_T Envoy__Config__Listener__V3__Listener
#define CLUSTER_T  Envoy__Config__Cluster__V3__Cluster
#define CLA_T      Envoy__Config__Endpoint__V3__ClusterLoadAssignment
#define ROUTE_T    Envoy__Config__Route__V3__RouteConfiguration
#define CLUSTER(x) ENVOY__CONFIG__CLUSTER__V3__##x

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void res_free(struct pl_xds_res *r)
{
    free(r->name);
    free(r->version);
    if (r->refs && --*r->refs == 0) {
        protobuf_c_message_free_unpacked(r->msg, NULL);
        free(r->refs);
    }
}

/* A copy of src sharing its message. */
static void res_copy(struct pl_xds_res *dst, const struct pl_xds_res *src)
{
    *dst = *src;
    dst->name = pl_strdup(src->name);
    dst->version = pl_strdup(src->version);
    ++*dst->refs;
}

void pl_xds_resvec_free(struct pl_xds_resvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        res_free(&v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

static int cmp_res(const void *a, const void *b)
{
    return strcmp(((const struct pl_xds_res *)a)->name, ((const struct pl_xds_res *)b)->name);
}

static void sort(struct pl_xds_resvec *v)
{
    if (v->n > 1)
        qsort(v->v, v->n, sizeof(*v->v), cmp_res);
}

struct pl_xds_res *pl_xds_resvec_find(const struct pl_xds_resvec *v, const char *name)
{
    struct pl_xds_res key = {.name = (char *)name};
    return v->n ? bsearch(&key, v->v, v->n, sizeof(*v->v), cmp_res) : NULL;
}

static int cmp_ptr(const void *a, const void *b)
{
    return cmp_res(*(const struct pl_xds_res *const *)a, *(const struct pl_xds_res *const *)b);
}

/* Adds an error for each name used twice in one response. */
static int check_duplicates(const struct pl_xds_resvec *v, enum pl_xds_type t, struct pl_err *err);

static struct pl_xds_res *push(struct pl_xds_resvec *v)
{
    v->v = pl_realloc(v->v, (v->n + 1) * sizeof(*v->v));
    memset(&v->v[v->n], 0, sizeof(v->v[0]));
    return &v->v[v->n++];
}

static const char *res_name(enum pl_xds_type t, const ProtobufCMessage *m)
{
    switch (t) {
    case PL_XDS_CDS:
        return ((const CLUSTER_T *)m)->name;
    case PL_XDS_EDS:
        return ((const CLA_T *)m)->cluster_name;
    case PL_XDS_LDS:
        return ((const LISTENER_T *)m)->name;
    default:
        return ((const ROUTE_T *)m)->name;
    }
}

static const char *const kinds[PL_XDS_NTYPES] = {[PL_XDS_CDS] = "Cluster",
                                                 [PL_XDS_EDS] = "ClusterLoadAssignment",
                                                 [PL_XDS_LDS] = "Listener",
                                                 [PL_XDS_RDS] = "RouteConfiguration"};

/* Moves sub's errors into err, each path prefixed with the resource. */
static void move_errors(struct pl_err *err, struct pl_err *sub, const char *where)
{
    for (size_t i = 0; i < sub->n; i++) {
        const struct pl_err_entry *e = &sub->v[i];
        char *path = e->path && *e->path ? pl_asprintf("%s.%s", where, e->path) : pl_strdup(where);
        pl_err_add(err, NULL, 0, 0, path, "%s", e->msg);
        free(path);
    }
    pl_err_free(sub);
}

/* The endpoint checks of pl_validate_cluster, run on an assignment as a STATIC cluster's. */
static int validate_cla(struct pl_vctx *vc, const CLA_T *la)
{
    if (!*la->cluster_name)
        return pl_err_add(vc->err, NULL, 0, 0, "cluster_name", "cluster_name is required");
    CLUSTER_T cl = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    cl.name = la->cluster_name;
    cl.load_assignment = (CLA_T *)la;
    return pl_validate_cluster(vc, &cl);
}

/* Cluster names a listener may reference: static ones and the accepted CDS clusters. */
static const char **known_clusters(struct pl_xds *x, size_t *n)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = x->boot->static_resources;
    size_t ns = sr ? sr->n_clusters : 0;
    const struct pl_xds_resvec *c = &x->acc[PL_XDS_CDS];
    const char **v = pl_calloc(ns + c->n + 1, sizeof(*v));
    *n = 0;
    for (size_t i = 0; i < ns; i++)
        v[(*n)++] = sr->clusters[i]->name;
    for (size_t i = 0; i < c->n; i++)
        v[(*n)++] = c->v[i].name;
    return v;
}

static int check_one(struct pl_xds *x, enum pl_xds_type t, const ProtobufCMessage *m,
                     struct pl_err *err)
{
    struct pl_vctx vc = {.err = err, .ads = true};
    size_t inert = 0;
    int rc = pl_xds_check_fields(m, NULL, &inert, err);
    if (inert && x->inert_fields.store) /* metadata, descriptions: accepted and counted */
        pl_counter_add(x->inert_fields, inert);
    switch (t) {
    case PL_XDS_CDS:
        rc |= pl_validate_cluster(&vc, (const CLUSTER_T *)m);
        break;
    case PL_XDS_EDS:
        rc |= validate_cla(&vc, (const CLA_T *)m);
        break;
    case PL_XDS_LDS: {
        size_t n;
        const char **names = known_clusters(x, &n);
        vc.clusters = names;
        vc.n_clusters = n;
        rc |= pl_validate_listener(&vc, (const LISTENER_T *)m);
        if (!*((const LISTENER_T *)m)->name)
            rc |= pl_err_add(err, NULL, 0, 0, "name", "a listener needs a name");
        free(names);
        break;
    }
    default:
        if (!*((const ROUTE_T *)m)->name)
            rc |= pl_err_add(err, NULL, 0, 0, "name", "a route configuration needs a name");
        rc |= pl_validate_route_config(&vc, (const ROUTE_T *)m);
    }
    return rc ? PL_EINVAL : 0;
}

int pl_xds_store_check(struct pl_xds *x, enum pl_xds_type t,
                       const Envoy__Service__Discovery__V3__DiscoveryResponse *r,
                       struct pl_xds_resvec *out, struct pl_err *err)
{
    int rc = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    out->v = NULL;
    out->n = 0;
    for (size_t i = 0; i < r->n_resources; i++) {
        const Google__Protobuf__Any *a = r->resources[i];
        char where[320];
        if (strcmp(a->type_url, r->type_url)) {
            snprintf(where, sizeof(where), "resources[%zu]", i);
            rc = pl_err_add(err, NULL, 0, 0, where, "type '%s' in a response of type '%s'",
                            a->type_url, r->type_url);
            continue;
        }
        ProtobufCMessage *m =
            protobuf_c_message_unpack(pl_xds_type_desc(t), NULL, a->value.len, a->value.data);
        if (!m) {
            snprintf(where, sizeof(where), "resources[%zu]", i);
            rc = pl_err_add(err, NULL, 0, 0, where, "cannot decode %s", a->type_url);
            continue;
        }
        const char *name = res_name(t, m);
        snprintf(where, sizeof(where), "%s '%.256s'", kinds[t], name);
        struct pl_err sub = PL_ERR_INIT;
        if (check_one(x, t, m, &sub) < 0)
            rc = PL_EINVAL;
        move_errors(err, &sub, where);
        struct pl_xds_res *e = push(out);
        e->name = pl_strdup(name);
        e->msg = m;
        e->refs = pl_malloc(sizeof(*e->refs));
        *e->refs = 1;
        e->version = pl_strdup(r->version_info);
        e->hash = fnv(a->value.data, a->value.len);
        e->updated = now;
    }
    if (check_duplicates(out, t, err) < 0)
        rc = PL_EINVAL;
    if (rc < 0)
        pl_xds_resvec_free(out);
    return rc < 0 ? PL_EINVAL : 0;
}

static int check_duplicates(const struct pl_xds_resvec *v, enum pl_xds_type t, struct pl_err *err)
{
    const struct pl_xds_res **p = pl_calloc(v->n + 1, sizeof(*p));
    for (size_t i = 0; i < v->n; i++)
        p[i] = &v->v[i];
    qsort(p, v->n, sizeof(*p), cmp_ptr);
    int rc = 0;
    for (size_t i = 1; i < v->n; i++)
        if (!strcmp(p[i]->name, p[i - 1]->name) && (i < 2 || strcmp(p[i]->name, p[i - 2]->name))) {
            char where[320];
            snprintf(where, sizeof(where), "%s '%.256s'", kinds[t], p[i]->name);
            rc = pl_err_add(err, NULL, 0, 0, where, "duplicate %s name '%s' in one response",
                            kinds[t], p[i]->name);
        }
    free(p);
    return rc;
}

/* Keeps the entry of old for resources whose bytes did not change (version, time, warming). */
static void keep_unchanged(struct pl_xds_resvec *in, const struct pl_xds_resvec *old)
{
    for (size_t i = 0; i < in->n; i++) {
        const struct pl_xds_res *o = pl_xds_resvec_find(old, in->v[i].name);
        if (o && o->hash == in->v[i].hash) {
            free(in->v[i].version);
            in->v[i].version = pl_strdup(o->version);
            in->v[i].updated = o->updated;
            in->v[i].warm_deadline = o->warm_deadline;
        }
    }
}

static bool listed(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], name))
            return true;
    return false;
}

int pl_xds_store_update(struct pl_xds *x, enum pl_xds_type t, struct pl_xds_resvec *in, bool merge,
                        char *const *removed, size_t n_removed, struct pl_err *err)
{
    struct pl_xds_resvec old = x->acc[t];
    sort(in);
    keep_unchanged(in, &old);
    struct pl_xds_resvec next = {0};
    if (merge) {
        /* by name: the resources not in this response stay as they are */
        for (size_t i = 0; i < old.n; i++)
            if (!pl_xds_resvec_find(in, old.v[i].name) &&
                !listed(removed, n_removed, old.v[i].name))
                res_copy(push(&next), &old.v[i]);
    }
    for (size_t i = 0; i < in->n; i++)
        *push(&next) = in->v[i];
    free(in->v);
    in->v = NULL;
    in->n = 0;
    sort(&next);
    x->acc[t] = next;
    if (pl_xds_store_rebuild(x, err) < 0) {
        pl_xds_resvec_free(&x->acc[t]);
        x->acc[t] = old;
        return PL_EINVAL;
    }
    pl_xds_resvec_free(&old);
    return 0;
}

static bool is_eds(const CLUSTER_T *cl, const char **svc)
{
    if (cl->cluster_discovery_type_case != CLUSTER(CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE) ||
        cl->type != CLUSTER(CLUSTER__DISCOVERY_TYPE__EDS))
        return false;
    *svc = cl->eds_cluster_config && *cl->eds_cluster_config->service_name
               ? cl->eds_cluster_config->service_name
               : cl->name;
    return true;
}

static double eds_timeout(const CLUSTER_T *cl)
{
    const Envoy__Config__Core__V3__ConfigSource *cs =
        cl->eds_cluster_config ? cl->eds_cluster_config->eds_config : NULL;
    if (cs && cs->initial_fetch_timeout)
        return (double)cs->initial_fetch_timeout->seconds + cs->initial_fetch_timeout->nanos / 1e9;
    return 15.0;
}

/* The RDS route names of l that no accepted route configuration answers yet. */
static size_t missing_routes(struct pl_xds *x, const LISTENER_T *l)
{
    char **names;
    size_t n = pl_listener_rds_names(l, &names), missing = 0;
    for (size_t i = 0; i < n; i++) {
        missing += !pl_xds_resvec_find(&x->acc[PL_XDS_RDS], names[i]);
        free(names[i]);
    }
    free(names);
    return missing;
}

#define HCM_T Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager

static double source_timeout(const Envoy__Config__Core__V3__ConfigSource *cs)
{
    if (cs && cs->initial_fetch_timeout) /* 0: wait forever */
        return (double)cs->initial_fetch_timeout->seconds + cs->initial_fetch_timeout->nanos / 1e9;
    return 15.0; /* Envoy's default */
}

/* How long a listener waits for its RDS: the longest initial_fetch_timeout of its route config
 * sources (0: one of them waits forever). */
static double rds_timeout(const LISTENER_T *l)
{
    double t = -1;
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
            if (h->route_specifier_case ==
                ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
                double v = source_timeout(h->rds->config_source);
                if (t != 0 && (v == 0 || v > t))
                    t = v;
            }
            protobuf_c_message_free_unpacked(&h->base, NULL);
        }
    }
    return t < 0 ? 15.0 : t;
}

/* Is r ready to serve; if not, starts (or checks) its warming deadline. */
static bool warmed(struct pl_xds *x, struct pl_xds_res *r, bool ready, double timeout, double now)
{
    if (ready) {
        r->warm_deadline = 0;
        return true;
    }
    if (r->warm_deadline == 0)
        r->warm_deadline = timeout > 0 ? now + timeout : -1;
    if (r->warm_deadline > 0 && now >= r->warm_deadline) {
        pl_log_warn("xds", "'%s': initial fetch timed out: serving without it", r->name);
        return true;
    }
    x->n_warming++;
    return false;
}

/* Computes what serves: a ready accepted resource replaces the active one of its name; one that
 * still warms keeps its previous version serving; names no longer accepted go. */
static void next_active(struct pl_xds *x, enum pl_xds_type t, struct pl_xds_resvec *active,
                        struct pl_xds_resvec *warming, double now)
{
    const struct pl_xds_resvec *cur = t == PL_XDS_LDS ? &x->active_l : &x->active_c;
    struct pl_xds_resvec *acc = &x->acc[t];
    for (size_t i = 0; i < acc->n; i++) {
        struct pl_xds_res *r = &acc->v[i];
        bool ready;
        double timeout = 15.0;
        if (t == PL_XDS_LDS) {
            ready = missing_routes(x, (const LISTENER_T *)r->msg) == 0;
            if (!ready)
                timeout = rds_timeout((const LISTENER_T *)r->msg);
        } else {
            const char *svc;
            ready = !is_eds((const CLUSTER_T *)r->msg, &svc) ||
                    pl_xds_resvec_find(&x->acc[PL_XDS_EDS], svc);
            if (!ready)
                timeout = eds_timeout((const CLUSTER_T *)r->msg);
        }
        if (warmed(x, r, ready, timeout, now)) {
            res_copy(push(active), r);
            continue;
        }
        res_copy(push(warming), r);
        const struct pl_xds_res *prev = pl_xds_resvec_find(cur, r->name);
        if (prev)
            res_copy(push(active), prev);
    }
}

static struct pl_res *as_set(const struct pl_xds_resvec *v)
{
    struct pl_res *s = pl_calloc(v->n + 1, sizeof(*s));
    for (size_t i = 0; i < v->n; i++)
        s[i] = (struct pl_res){.name = v->v[i].name,
                               .msg = v->v[i].msg,
                               .version_info = v->v[i].version,
                               .last_updated = v->v[i].updated};
    return s;
}

/* Static listeners and EDS clusters of the bootstrap warm too (counted, never held back). */
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

static void static_warming(struct pl_xds *x, double now)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = x->boot->static_resources;
    x->static_deadline = 0;
    for (size_t i = 0; sr && i < sr->n_listeners; i++)
        if (missing_routes(x, sr->listeners[i]) > 0)
            static_wait(x, rds_timeout(sr->listeners[i]), now);
    for (size_t i = 0; sr && i < sr->n_clusters; i++) {
        const char *svc;
        if (is_eds(sr->clusters[i], &svc) && !pl_xds_resvec_find(&x->acc[PL_XDS_EDS], svc))
            static_wait(x, eds_timeout(sr->clusters[i]), now);
    }
}

int pl_xds_store_rebuild(struct pl_xds *x, struct pl_err *err)
{
    double now = ev_now(x->o.loop);
    struct pl_xds_resvec al = {0}, ac = {0}, wl = {0}, wc = {0};
    x->n_warming = 0;
    next_active(x, PL_XDS_CDS, &ac, &wc, now);
    next_active(x, PL_XDS_LDS, &al, &wl, now);
    static_warming(x, now);
    struct pl_res *sl = as_set(&al), *sc = as_set(&ac), *sw_l = as_set(&wl), *sw_c = as_set(&wc);
    struct pl_res *sr = as_set(&x->acc[PL_XDS_RDS]), *se = as_set(&x->acc[PL_XDS_EDS]);
    struct pl_resource_set rs = {
        .bootstrap = x->boot,
        .listeners = sl,
        .n_listeners = al.n,
        .clusters = sc,
        .n_clusters = ac.n,
        .routes = sr,
        .n_routes = x->acc[PL_XDS_RDS].n,
        .clas = se,
        .n_clas = x->acc[PL_XDS_EDS].n,
        .warming_listeners = sw_l,
        .n_warming_listeners = wl.n,
        .warming_clusters = sw_c,
        .n_warming_clusters = wc.n,
        .lds_version = x->sub[PL_XDS_LDS].received ? x->sub[PL_XDS_LDS].version : NULL,
        .cds_version = x->sub[PL_XDS_CDS].received ? x->sub[PL_XDS_CDS].version : NULL,
    };
    struct pl_snapshot *s = NULL;
    int rc = pl_config_compile_resources(&rs, &s, err);
    if (rc == 0 && (rc = pl_upstream_prepare(s, err)) == 0)
        rc = pl_server_apply(x->o.srv, s, err);
    if (rc < 0 && s)
        pl_snapshot_free(s);
    free(sl);
    free(sc);
    free(sw_l);
    free(sw_c);
    free(sr);
    free(se);
    size_t wl_n = wl.n, wc_n = wc.n;
    pl_xds_resvec_free(&wl);
    pl_xds_resvec_free(&wc);
    if (rc < 0) {
        pl_xds_resvec_free(&al);
        pl_xds_resvec_free(&ac);
        return PL_EINVAL;
    }
    if (x->active_clusters.store) { /* static + dynamic, as Envoy counts them */
        pl_gauge_set(x->active_clusters, (int64_t)s->n_clusters);
        pl_gauge_set(x->warming_clusters, (int64_t)wc_n);
        pl_gauge_set(x->active_listeners, (int64_t)s->n_listeners);
        pl_gauge_set(x->warming_listeners, (int64_t)wl_n);
    }
    pl_xds_resvec_free(&x->active_l);
    pl_xds_resvec_free(&x->active_c);
    x->active_l = al;
    x->active_c = ac;
    return 0;
}

static void add_name(char ***v, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*v)[i], name))
            return;
    *v = pl_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = pl_strdup(name);
}

size_t pl_xds_store_needed(struct pl_xds *x, enum pl_xds_type t, char ***names)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = x->boot->static_resources;
    size_t n = 0;
    *names = NULL;
    if (t == PL_XDS_RDS) {
        size_t nl = (sr ? sr->n_listeners : 0) + x->acc[PL_XDS_LDS].n;
        for (size_t i = 0; i < nl; i++) {
            const LISTENER_T *l =
                sr && i < sr->n_listeners
                    ? sr->listeners[i]
                    : (const LISTENER_T *)x->acc[PL_XDS_LDS].v[i - (sr ? sr->n_listeners : 0)].msg;
            char **rn;
            size_t k = pl_listener_rds_names(l, &rn);
            for (size_t j = 0; j < k; j++) {
                add_name(names, &n, rn[j]);
                free(rn[j]);
            }
            free(rn);
        }
    } else if (t == PL_XDS_EDS) {
        size_t nc = (sr ? sr->n_clusters : 0) + x->acc[PL_XDS_CDS].n;
        for (size_t i = 0; i < nc; i++) {
            const CLUSTER_T *cl =
                sr && i < sr->n_clusters
                    ? sr->clusters[i]
                    : (const CLUSTER_T *)x->acc[PL_XDS_CDS].v[i - (sr ? sr->n_clusters : 0)].msg;
            const char *svc;
            if (is_eds(cl, &svc))
                add_name(names, &n, svc);
        }
    }
    return n;
}

void pl_xds_store_prune(struct pl_xds *x, enum pl_xds_type t)
{
    struct pl_xds_resvec *v = &x->acc[t];
    size_t m = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (pl_xds_sub_has(&x->sub[t], v->v[i].name))
            v->v[m++] = v->v[i];
        else
            res_free(&v->v[i]);
    }
    v->n = m;
}

double pl_xds_store_next_deadline(const struct pl_xds *x)
{
    double d = x->static_deadline;
    for (int t = 0; t < PL_XDS_NTYPES; t++)
        for (size_t i = 0; i < x->acc[t].n; i++) {
            double w = x->acc[t].v[i].warm_deadline;
            if (w > 0 && (d == 0 || w < d))
                d = w;
        }
    return d;
}
