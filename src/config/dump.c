#include "config/dump.h"

#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "core/err.h"
#include "pl_proto_all.h"

#define HCM_DESC                                                                                   \
    envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor
#define HCM_T Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager

/* Everything below is heap-allocated the way protobuf-c's unpack does, so one
 * protobuf_c_message_free_unpacked on the ConfigDump frees it all. */

static Google__Protobuf__Any *pack_any(const ProtobufCMessage *m)
{
    Google__Protobuf__Any *a = pl_malloc(sizeof(*a));
    google__protobuf__any__init(a);
    a->type_url = pl_asprintf("type.googleapis.com/%s", m->descriptor->name);
    a->value.len = protobuf_c_message_get_packed_size(m);
    a->value.data = pl_malloc(a->value.len);
    protobuf_c_message_pack(m, a->value.data);
    return a;
}

#define CLUSTER_D  envoy__config__cluster__v3__cluster__descriptor
#define LISTENER_D envoy__config__listener__v3__listener__descriptor
#define ROUTE_D    envoy__config__route__v3__route_configuration__descriptor
#define CLA_D      envoy__config__endpoint__v3__cluster_load_assignment__descriptor

/* The Any of a resource kept decoded (m) or as received over xDS (enc, of type d). */
static Google__Protobuf__Any *pack_res(const ProtobufCMessage *m, const uint8_t *enc, size_t len,
                                       const ProtobufCMessageDescriptor *d)
{
    if (m)
        return pack_any(m);
    Google__Protobuf__Any *a = pl_malloc(sizeof(*a));
    google__protobuf__any__init(a);
    a->type_url = pl_asprintf("type.googleapis.com/%s", d->name);
    a->value.len = len;
    a->value.data = pl_malloc(len ? len : 1);
    if (len)
        memcpy(a->value.data, enc, len);
    return a;
}

/* A dynamic resource's Any: as received when it has an owner (whose decoded message, if any,
 * may be a temporary), else its own message. */
static Google__Protobuf__Any *pack_dyn(const struct pl_res *r, const ProtobufCMessageDescriptor *d)
{
    return pack_res(r->owner ? NULL : r->msg, r->bytes, r->len, d);
}

static Google__Protobuf__Timestamp *timestamp(const struct timespec *t)
{
    Google__Protobuf__Timestamp *ts = pl_malloc(sizeof(*ts));
    google__protobuf__timestamp__init(ts);
    ts->seconds = t->tv_sec;
    ts->nanos = (int32_t)(t->tv_nsec / 1000000 * 1000000); /* Envoy prints milliseconds */
    return ts;
}

/* Appends a packed sub-dump to the ConfigDump and frees the sub-dump. */
static void add_config(Envoy__Admin__V3__ConfigDump *d, ProtobufCMessage *sub)
{
    d->configs = pl_realloc(d->configs, (d->n_configs + 1) * sizeof(*d->configs));
    d->configs[d->n_configs++] = pack_any(sub);
    protobuf_c_message_free_unpacked(sub, NULL);
}

#define GROW(arr, n) ((arr) = pl_realloc((arr), ((n) + 1) * sizeof(*(arr))))

static ProtobufCMessage *bootstrap_dump(const struct pl_snapshot *s)
{
    Envoy__Admin__V3__BootstrapConfigDump *b = pl_malloc(sizeof(*b));
    envoy__admin__v3__bootstrap_config_dump__init(b);
    if (s->bootstrap) {
        size_t n = protobuf_c_message_get_packed_size(s->bootstrap);
        uint8_t *buf = pl_malloc(n);
        protobuf_c_message_pack(s->bootstrap, buf);
        b->bootstrap = envoy__config__bootstrap__v3__bootstrap__unpack(NULL, n, buf);
        free(buf);
    }
    b->last_updated = timestamp(&s->bootstrap_loaded);
    return &b->base;
}

#define NACKED ENVOY__ADMIN__V3__CLIENT_RESOURCE_STATUS__NACKED

static Envoy__Admin__V3__UpdateFailureState *failure_state(const struct pl_dump_failure *f)
{
    Envoy__Admin__V3__UpdateFailureState *e = pl_malloc(sizeof(*e));
    envoy__admin__v3__update_failure_state__init(e);
    e->last_update_attempt = timestamp(&f->when);
    e->details = pl_strdup(f->details ? f->details : "");
    e->version_info = pl_strdup(f->version ? f->version : "");
    return e;
}

/* The failure of kind k named name, or NULL; marks it used. */
static const struct pl_dump_failure *failure_of(const struct pl_dump_failure *f, size_t n,
                                                bool *used, enum pl_dump_kind k, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].kind == k && !strcmp(f[i].name, name)) {
            used[i] = true;
            return &f[i];
        }
    return NULL;
}

struct failures {
    const struct pl_dump_failure *v;
    size_t n;
    bool *used;
};

static Envoy__Admin__V3__ClustersConfigDump__DynamicCluster *
dyn_cluster(Google__Protobuf__Any *cluster, const char *version, const struct timespec *when)
{
    Envoy__Admin__V3__ClustersConfigDump__DynamicCluster *dc = pl_malloc(sizeof(*dc));
    envoy__admin__v3__clusters_config_dump__dynamic_cluster__init(dc);
    dc->version_info = pl_strdup(version ? version : "");
    dc->cluster = cluster;
    dc->last_updated = timestamp(when);
    return dc;
}

static void cluster_failure(Envoy__Admin__V3__ClustersConfigDump__DynamicCluster *dc,
                            struct failures *fs, const char *name)
{
    const struct pl_dump_failure *f = failure_of(fs->v, fs->n, fs->used, PL_DUMP_CLUSTER, name);
    if (f) {
        dc->error_state = failure_state(f);
        dc->client_status = NACKED;
    }
}

static ProtobufCMessage *clusters_dump(const struct pl_snapshot *s, struct failures *fs)
{
    Envoy__Admin__V3__ClustersConfigDump *d = pl_malloc(sizeof(*d));
    envoy__admin__v3__clusters_config_dump__init(d);
    if (s->cds_version)
        d->version_info = pl_strdup(s->cds_version);
    for (size_t i = 0; i < s->n_warming_clusters; i++) {
        const struct pl_res *w = s->warming_clusters[i];
        GROW(d->dynamic_warming_clusters, d->n_dynamic_warming_clusters);
        d->dynamic_warming_clusters[d->n_dynamic_warming_clusters] =
            dyn_cluster(pack_dyn(w, &CLUSTER_D), w->version_info, &w->last_updated);
        cluster_failure(d->dynamic_warming_clusters[d->n_dynamic_warming_clusters++], fs, w->name);
    }
    for (size_t i = 0; i < s->n_clusters; i++) {
        const struct pl_cluster_cfg *c = s->clusters[i];
        if (c->dynamic) { /* from CDS */
            GROW(d->dynamic_active_clusters, d->n_dynamic_active_clusters);
            d->dynamic_active_clusters[d->n_dynamic_active_clusters] =
                dyn_cluster(pack_res(c->proto, c->encoded, c->encoded_len, &CLUSTER_D),
                            c->version_info, &c->last_updated);
            cluster_failure(d->dynamic_active_clusters[d->n_dynamic_active_clusters++], fs,
                            c->name);
            continue;
        }
        Envoy__Admin__V3__ClustersConfigDump__StaticCluster *sc = pl_malloc(sizeof(*sc));
        envoy__admin__v3__clusters_config_dump__static_cluster__init(sc);
        sc->cluster = pack_res(c->proto, c->encoded, c->encoded_len, &CLUSTER_D);
        sc->last_updated = timestamp(&c->last_updated);
        GROW(d->static_clusters, d->n_static_clusters);
        d->static_clusters[d->n_static_clusters++] = sc;
    }
    for (size_t i = 0; i < fs->n; i++) { /* rejected, never accepted: the failure alone */
        if (fs->used[i] || fs->v[i].kind != PL_DUMP_CLUSTER)
            continue;
        fs->used[i] = true;
        GROW(d->dynamic_active_clusters, d->n_dynamic_active_clusters);
        Envoy__Admin__V3__ClustersConfigDump__DynamicCluster *dc = pl_malloc(sizeof(*dc));
        envoy__admin__v3__clusters_config_dump__dynamic_cluster__init(dc);
        dc->version_info = pl_strdup("");
        dc->error_state = failure_state(&fs->v[i]);
        dc->client_status = NACKED;
        d->dynamic_active_clusters[d->n_dynamic_active_clusters++] = dc;
    }
    return &d->base;
}

static Envoy__Admin__V3__ListenersConfigDump__DynamicListenerState *
listener_state(Google__Protobuf__Any *listener, const char *version, const struct timespec *when)
{
    Envoy__Admin__V3__ListenersConfigDump__DynamicListenerState *st = pl_malloc(sizeof(*st));
    envoy__admin__v3__listeners_config_dump__dynamic_listener_state__init(st);
    st->version_info = pl_strdup(version ? version : "");
    st->listener = listener;
    st->last_updated = timestamp(when);
    return st;
}

/* Returns the dynamic listener entry named name, adding it if needed. */
static Envoy__Admin__V3__ListenersConfigDump__DynamicListener *
dyn_listener(Envoy__Admin__V3__ListenersConfigDump *d, const char *name)
{
    for (size_t i = 0; i < d->n_dynamic_listeners; i++)
        if (!strcmp(d->dynamic_listeners[i]->name, name))
            return d->dynamic_listeners[i];
    Envoy__Admin__V3__ListenersConfigDump__DynamicListener *dl = pl_malloc(sizeof(*dl));
    envoy__admin__v3__listeners_config_dump__dynamic_listener__init(dl);
    dl->name = pl_strdup(name);
    GROW(d->dynamic_listeners, d->n_dynamic_listeners);
    d->dynamic_listeners[d->n_dynamic_listeners++] = dl;
    return dl;
}

static ProtobufCMessage *listeners_dump(const struct pl_snapshot *s, struct failures *fs)
{
    Envoy__Admin__V3__ListenersConfigDump *d = pl_malloc(sizeof(*d));
    envoy__admin__v3__listeners_config_dump__init(d);
    if (s->lds_version)
        d->version_info = pl_strdup(s->lds_version);
    for (size_t i = 0; i < s->n_listeners; i++) {
        const struct pl_listener_cfg *l = &s->listeners[i];
        if (l->dynamic) { /* from LDS */
            dyn_listener(d, l->name)->active_state =
                listener_state(pack_any(l->proto), l->version_info, &l->last_updated);
            continue;
        }
        Envoy__Admin__V3__ListenersConfigDump__StaticListener *sl = pl_malloc(sizeof(*sl));
        envoy__admin__v3__listeners_config_dump__static_listener__init(sl);
        sl->listener = pack_any(l->proto);
        sl->last_updated = timestamp(&l->last_updated);
        GROW(d->static_listeners, d->n_static_listeners);
        d->static_listeners[d->n_static_listeners++] = sl;
    }
    for (size_t i = 0; i < s->n_warming_listeners; i++) {
        const struct pl_res *w = s->warming_listeners[i];
        dyn_listener(d, w->name)->warming_state =
            listener_state(pack_dyn(w, &LISTENER_D), w->version_info, &w->last_updated);
    }
    for (size_t i = 0; i < fs->n; i++) { /* Envoy: a rejected listener's entry carries it */
        if (fs->v[i].kind != PL_DUMP_LISTENER)
            continue;
        fs->used[i] = true;
        Envoy__Admin__V3__ListenersConfigDump__DynamicListener *dl = dyn_listener(d, fs->v[i].name);
        dl->error_state = failure_state(&fs->v[i]);
        dl->client_status = NACKED;
    }
    return &d->base;
}

/* Route configurations written inline in an HCM are Envoy's static route configs. */
static void add_inline_routes(Envoy__Admin__V3__RoutesConfigDump *d,
                              const Envoy__Config__Listener__V3__FilterChain *fc,
                              const struct timespec *when)
{
    for (size_t i = 0; fc && i < fc->n_filters; i++) {
        const Google__Protobuf__Any *tc = fc->filters[i]->typed_config;
        if (!tc ||
            strcmp(strrchr(tc->type_url, '/') ? strrchr(tc->type_url, '/') + 1 : "", HCM_DESC.name))
            continue;
        HCM_T *h =
            (HCM_T *)protobuf_c_message_unpack(&HCM_DESC, NULL, tc->value.len, tc->value.data);
        if (!h)
            continue;
        if (h->route_config) {
            Envoy__Admin__V3__RoutesConfigDump__StaticRouteConfig *r = pl_malloc(sizeof(*r));
            envoy__admin__v3__routes_config_dump__static_route_config__init(r);
            r->route_config = pack_any(&h->route_config->base);
            r->last_updated = timestamp(when);
            GROW(d->static_route_configs, d->n_static_route_configs);
            d->static_route_configs[d->n_static_route_configs++] = r;
        }
        protobuf_c_message_free_unpacked(&h->base, NULL);
    }
}

static ProtobufCMessage *routes_dump(const struct pl_snapshot *s, struct failures *fs)
{
    Envoy__Admin__V3__RoutesConfigDump *d = pl_malloc(sizeof(*d));
    envoy__admin__v3__routes_config_dump__init(d);
    for (size_t i = 0; i < s->n_listeners; i++) {
        const Envoy__Config__Listener__V3__Listener *l =
            (const Envoy__Config__Listener__V3__Listener *)s->listeners[i].proto;
        for (size_t j = 0; j < l->n_filter_chains; j++)
            add_inline_routes(d, l->filter_chains[j], &s->listeners[i].last_updated);
        add_inline_routes(d, l->default_filter_chain, &s->listeners[i].last_updated);
    }
    for (size_t i = 0; i < s->n_routes; i++) { /* RDS */
        const struct pl_res *r = s->routes[i];
        Envoy__Admin__V3__RoutesConfigDump__DynamicRouteConfig *dr = pl_malloc(sizeof(*dr));
        envoy__admin__v3__routes_config_dump__dynamic_route_config__init(dr);
        dr->version_info = pl_strdup(r->version_info);
        dr->route_config = pack_dyn(r, &ROUTE_D);
        dr->last_updated = timestamp(&r->last_updated);
        const struct pl_dump_failure *f =
            failure_of(fs->v, fs->n, fs->used, PL_DUMP_ROUTE, r->name);
        if (f) {
            dr->error_state = failure_state(f);
            dr->client_status = NACKED;
        }
        GROW(d->dynamic_route_configs, d->n_dynamic_route_configs);
        d->dynamic_route_configs[d->n_dynamic_route_configs++] = dr;
    }
    for (size_t i = 0; i < fs->n; i++) {
        if (fs->used[i] || fs->v[i].kind != PL_DUMP_ROUTE)
            continue;
        fs->used[i] = true;
        Envoy__Admin__V3__RoutesConfigDump__DynamicRouteConfig *dr = pl_malloc(sizeof(*dr));
        envoy__admin__v3__routes_config_dump__dynamic_route_config__init(dr);
        dr->version_info = pl_strdup("");
        dr->error_state = failure_state(&fs->v[i]);
        dr->client_status = NACKED;
        GROW(d->dynamic_route_configs, d->n_dynamic_route_configs);
        d->dynamic_route_configs[d->n_dynamic_route_configs++] = dr;
    }
    return &d->base;
}

static ProtobufCMessage *endpoints_dump(const struct pl_snapshot *s, struct failures *fs)
{
    Envoy__Admin__V3__EndpointsConfigDump *d = pl_malloc(sizeof(*d));
    envoy__admin__v3__endpoints_config_dump__init(d);
    for (size_t i = 0; i < s->n_endpoints; i++) { /* EDS */
        const struct pl_res *r = s->endpoints[i];
        Envoy__Admin__V3__EndpointsConfigDump__DynamicEndpointConfig *de = pl_malloc(sizeof(*de));
        envoy__admin__v3__endpoints_config_dump__dynamic_endpoint_config__init(de);
        de->version_info = pl_strdup(r->version_info);
        de->endpoint_config = pack_dyn(r, &CLA_D);
        de->last_updated = timestamp(&r->last_updated);
        const struct pl_dump_failure *f =
            failure_of(fs->v, fs->n, fs->used, PL_DUMP_ENDPOINT, r->name);
        if (f) {
            de->error_state = failure_state(f);
            de->client_status = NACKED;
        }
        GROW(d->dynamic_endpoint_configs, d->n_dynamic_endpoint_configs);
        d->dynamic_endpoint_configs[d->n_dynamic_endpoint_configs++] = de;
    }
    for (size_t i = 0; i < fs->n; i++) {
        if (fs->used[i] || fs->v[i].kind != PL_DUMP_ENDPOINT)
            continue;
        fs->used[i] = true;
        Envoy__Admin__V3__EndpointsConfigDump__DynamicEndpointConfig *de = pl_malloc(sizeof(*de));
        envoy__admin__v3__endpoints_config_dump__dynamic_endpoint_config__init(de);
        de->version_info = pl_strdup("");
        de->error_state = failure_state(&fs->v[i]);
        de->client_status = NACKED;
        GROW(d->dynamic_endpoint_configs, d->n_dynamic_endpoint_configs);
        d->dynamic_endpoint_configs[d->n_dynamic_endpoint_configs++] = de;
    }
    return &d->base;
}

char *pl_config_dump_json(const struct pl_snapshot *s, const char *resource,
                          const struct pl_dump_failure *failures, size_t n_failures)
{
    Envoy__Admin__V3__ConfigDump d;
    envoy__admin__v3__config_dump__init(&d);
    struct failures fs = {failures, n_failures, pl_calloc(n_failures + 1, sizeof(bool))};
    bool eds_failed = false;
    for (size_t i = 0; i < n_failures; i++)
        eds_failed |= failures[i].kind == PL_DUMP_ENDPOINT;
    if (resource) {
        /* Envoy's ?resource=: the named repeated field of the matching sub-dump, flattened */
        ProtobufCMessage *subs[] = {clusters_dump(s, &fs), listeners_dump(s, &fs),
                                    routes_dump(s, &fs), endpoints_dump(s, &fs)};
        for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field_by_name(subs[i]->descriptor, resource);
            if (f && f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                size_t n = *(size_t *)((char *)subs[i] + f->quantifier_offset);
                ProtobufCMessage **v = *(ProtobufCMessage ***)((char *)subs[i] + f->offset);
                for (size_t j = 0; j < n; j++) {
                    GROW(d.configs, d.n_configs);
                    d.configs[d.n_configs++] = pack_any(v[j]);
                }
            }
            protobuf_c_message_free_unpacked(subs[i], NULL);
        }
    } else {
        add_config(&d, bootstrap_dump(s));
        add_config(&d, clusters_dump(s, &fs));
        add_config(&d, listeners_dump(s, &fs));
        add_config(&d, routes_dump(s, &fs));
        if (s->n_endpoints || eds_failed) /* Envoy: only with ?include_eds; EDS is ours */
            add_config(&d, endpoints_dump(s, &fs));
    }
    free(fs.used);
    char *json = pl_pbjson_print(&d.base, PL_PBJSON_PRETTY | PL_PBJSON_PROTO_NAMES);
    for (size_t i = 0; i < d.n_configs; i++)
        protobuf_c_message_free_unpacked(&d.configs[i]->base, NULL);
    free(d.configs);
    return json;
}
