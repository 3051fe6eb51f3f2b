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

static ProtobufCMessage *clusters_dump(const struct pl_snapshot *s)
{
    Envoy__Admin__V3__ClustersConfigDump *d = pl_malloc(sizeof(*d));
    envoy__admin__v3__clusters_config_dump__init(d);
    for (size_t i = 0; i < s->n_clusters; i++) {
        const struct pl_cluster_cfg *c = &s->clusters[i];
        Envoy__Admin__V3__ClustersConfigDump__StaticCluster *sc = pl_malloc(sizeof(*sc));
        envoy__admin__v3__clusters_config_dump__static_cluster__init(sc);
        sc->cluster = pack_any(c->proto);
        sc->last_updated = timestamp(&c->last_updated);
        GROW(d->static_clusters, d->n_static_clusters);
        d->static_clusters[d->n_static_clusters++] = sc;
    }
    return &d->base;
}

static ProtobufCMessage *listeners_dump(const struct pl_snapshot *s)
{
    Envoy__Admin__V3__ListenersConfigDump *d = pl_malloc(sizeof(*d));
    envoy__admin__v3__listeners_config_dump__init(d);
    for (size_t i = 0; i < s->n_listeners; i++) {
        const struct pl_listener_cfg *l = &s->listeners[i];
        Envoy__Admin__V3__ListenersConfigDump__StaticListener *sl = pl_malloc(sizeof(*sl));
        envoy__admin__v3__listeners_config_dump__static_listener__init(sl);
        sl->listener = pack_any(l->proto);
        sl->last_updated = timestamp(&l->last_updated);
        GROW(d->static_listeners, d->n_static_listeners);
        d->static_listeners[d->n_static_listeners++] = sl;
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

static ProtobufCMessage *routes_dump(const struct pl_snapshot *s)
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
    return &d->base;
}

char *pl_config_dump_json(const struct pl_snapshot *s, const char *resource)
{
    Envoy__Admin__V3__ConfigDump d;
    envoy__admin__v3__config_dump__init(&d);
    if (resource) {
        /* Envoy's ?resource=: the named repeated field of the matching sub-dump, flattened */
        ProtobufCMessage *subs[] = {clusters_dump(s), listeners_dump(s), routes_dump(s)};
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
        add_config(&d, clusters_dump(s));
        add_config(&d, listeners_dump(s));
        add_config(&d, routes_dump(s));
    }
    char *json = pl_pbjson_print(&d.base, PL_PBJSON_PRETTY | PL_PBJSON_PROTO_NAMES);
    for (size_t i = 0; i < d.n_configs; i++)
        protobuf_c_message_free_unpacked(&d.configs[i]->base, NULL);
    free(d.configs);
    return json;
}
