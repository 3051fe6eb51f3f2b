/* Static resources -> snapshot. The snapshot owns copies of the resources it was built from. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/address.h"
#include "config/bootstrap.h"
#include "config/compile_resources.h"
#include "core/err.h"
#include "net/conn.h"
#include "net/filter.h"
#include "tls/tls.h"

#define CLUSTER(x) ENVOY__CONFIG__CLUSTER__V3__##x

/* Deep copy through the wire format; aborts on OOM. */
static ProtobufCMessage *clone_msg(const ProtobufCMessage *m, uint64_t *hash)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = pl_malloc(n);
    protobuf_c_message_pack(m, buf);
    if (hash) { /* FNV-1a over the encoding: equal resources hash equal */
        uint64_t h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3ULL;
        *hash = h;
    }
    ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    if (!c)
        pl_die("re-decoding %s failed", m->descriptor->name);
    return c;
}

static uint64_t duration_ms(const Google__Protobuf__Duration *d, uint64_t dflt)
{
    if (!d)
        return dflt;
    return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
}

/* Fills out from l (proto and hash are the caller's); on failure out owns nothing. */
static int listener_body(const Envoy__Config__Listener__V3__Listener *l,
                         const ProtobufCMessage *chains_from, const struct timespec *now,
                         struct pl_listener_cfg *out, struct pl_err *err)
{
    struct pl_addr a;
    const char *why;
    if (pl_addr_from_proto(l->address, &a, &why) < 0)
        return pl_err_add(err, NULL, 0, 0, NULL, "listener '%s': %s", l->name, why);
    memcpy(&out->addr, &a.ss, sizeof(a.ss));
    out->addrlen = a.len;
    out->addr_str = pl_strdup(a.str);
    /* Envoy names an unnamed listener itself; its address is unique and readable */
    out->name = pl_strdup(*l->name ? l->name : a.str);
    out->version_info = pl_strdup("");
    out->last_updated = *now;
    if (pl_filter_chains_compile(chains_from, out->name, &out->chains, err) < 0) {
        free(out->name);
        free(out->addr_str);
        free(out->version_info);
        memset(out, 0, sizeof(*out));
        return PL_EINVAL;
    }
    return 0;
}

int pl_compile_listener(const Envoy__Config__Listener__V3__Listener *l,
                        const Envoy__Config__Listener__V3__Listener *effective,
                        const struct timespec *now, struct pl_listener_cfg *out, struct pl_err *err)
{
    uint64_t hash;
    ProtobufCMessage *proto = clone_msg(&l->base, &hash);
    const ProtobufCMessage *chains_from = effective ? &effective->base : proto;
    if (listener_body(l, chains_from, now, out, err) < 0) {
        protobuf_c_message_free_unpacked(proto, NULL);
        return PL_EINVAL;
    }
    out->proto = proto;
    out->hash = hash;
    return 0;
}

int pl_compile_listener_borrowed(const Envoy__Config__Listener__V3__Listener *l, uint64_t hash,
                                 const struct timespec *now, struct pl_listener_cfg *out,
                                 struct pl_err *err)
{
    if (listener_body(l, &l->base, now, out, err) < 0)
        return PL_EINVAL;
    out->proto = (ProtobufCMessage *)&l->base;
    out->hash = hash;
    return 0;
}

#define HPO_T   Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions
#define HPO(x)  ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__##x
#define HPO_KEY "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

static uint64_t u64_or(const Google__Protobuf__UInt64Value *v, uint64_t dflt)
{
    return v ? v->value : dflt;
}

static uint32_t u32_or(const Google__Protobuf__UInt32Value *v, uint32_t dflt)
{
    return v ? v->value : dflt;
}

/* Upstream HTTP options from typed_extension_protocol_options (validated: only HPO_KEY). */
static void compile_cluster_http(const Envoy__Config__Cluster__V3__Cluster *cl,
                                 struct pl_cluster_cfg *out)
{
    out->h2_max_concurrent_streams = 2147483647;
    out->h2_initial_stream_window_size = 268435456;
    out->h2_initial_connection_window_size = 268435456;
    out->idle_timeout_ms = 3600000;
    out->max_headers_count = 100;
    for (size_t i = 0; i < cl->n_typed_extension_protocol_options; i++) {
        const Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
            cl->typed_extension_protocol_options[i];
        if (strcmp(e->key, HPO_KEY) || !e->value)
            continue;
        HPO_T *o = (HPO_T *)protobuf_c_message_unpack(
            &envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor, NULL,
            e->value->value.len, e->value->value.data);
        if (!o)
            continue; /* validation unpacked it already; cannot happen */
        if (o->common_http_protocol_options) {
            const Envoy__Config__Core__V3__HttpProtocolOptions *c = o->common_http_protocol_options;
            out->idle_timeout_ms = duration_ms(c->idle_timeout, out->idle_timeout_ms);
            out->max_headers_count = u32_or(c->max_headers_count, out->max_headers_count);
        }
        if (o->upstream_protocol_options_case ==
                HPO(UPSTREAM_PROTOCOL_OPTIONS_EXPLICIT_HTTP_CONFIG) &&
            o->explicit_http_config->protocol_config_case ==
                HPO(EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP2_PROTOCOL_OPTIONS)) {
            const Envoy__Config__Core__V3__Http2ProtocolOptions *h2 =
                o->explicit_http_config->http2_protocol_options;
            out->http2 = true;
            out->h2_max_concurrent_streams =
                u32_or(h2->max_concurrent_streams, out->h2_max_concurrent_streams);
            out->h2_initial_stream_window_size =
                u32_or(h2->initial_stream_window_size, out->h2_initial_stream_window_size);
            out->h2_initial_connection_window_size =
                u32_or(h2->initial_connection_window_size, out->h2_initial_connection_window_size);
        }
        protobuf_c_message_free_unpacked(&o->base, NULL);
    }
}

/* LB, DNS and buffer options, with Envoy's defaults (shared when the cluster sets none). */
static void compile_cluster_lb(const Envoy__Config__Cluster__V3__Cluster *cl,
                               struct pl_cluster_cfg *out)
{
    struct pl_cluster_lb_cfg o = pl_cluster_lb_defaults;
    switch (cl->lb_config_case) {
    case CLUSTER(CLUSTER__LB_CONFIG_LEAST_REQUEST_LB_CONFIG):
        o.lr_choice_count = u32_or(cl->least_request_lb_config->choice_count, 2);
        break;
    case CLUSTER(CLUSTER__LB_CONFIG_RING_HASH_LB_CONFIG):
        o.ring_min_size = u64_or(cl->ring_hash_lb_config->minimum_ring_size, 1024);
        o.ring_max_size = u64_or(cl->ring_hash_lb_config->maximum_ring_size, 8388608);
        o.ring_hash_function = (int)cl->ring_hash_lb_config->hash_function;
        break;
    case CLUSTER(CLUSTER__LB_CONFIG_MAGLEV_LB_CONFIG):
        o.maglev_table_size = u64_or(cl->maglev_lb_config->table_size, 65537);
        break;
    default:
        break;
    }
    o.dns_refresh_ms = duration_ms(cl->dns_refresh_rate, 5000);
    o.dns_lookup_family = (int)cl->dns_lookup_family;
    o.respect_dns_ttl = cl->respect_dns_ttl;
    const struct pl_cluster_lb_cfg *d = &pl_cluster_lb_defaults;
    if (o.lr_choice_count == d->lr_choice_count &&
        o.lr_active_request_bias == d->lr_active_request_bias &&
        o.ring_min_size == d->ring_min_size && o.ring_max_size == d->ring_max_size &&
        o.ring_hash_function == d->ring_hash_function &&
        o.maglev_table_size == d->maglev_table_size && o.dns_refresh_ms == d->dns_refresh_ms &&
        o.dns_lookup_family == d->dns_lookup_family && o.respect_dns_ttl == d->respect_dns_ttl) {
        out->lbo = &pl_cluster_lb_defaults;
    } else {
        struct pl_cluster_lb_cfg *own = pl_malloc(sizeof(*own));
        *own = o;
        out->lbo = own;
    }
    out->per_connection_buffer_limit_bytes = u32_or(cl->per_connection_buffer_limit_bytes, 1048576);
}

static char *locality_str(const Envoy__Config__Core__V3__Locality *l)
{
    if (!l)
        return NULL; /* most endpoints: no string for them */
    return pl_asprintf("%s/%s/%s", l->region, l->zone, l->sub_zone);
}

/* transport_socket -> the registered transport (TLS) and its compiled config. */
static int compile_cluster_transport(const Envoy__Config__Cluster__V3__Cluster *cl,
                                     struct pl_cluster_cfg *out, struct pl_err *err)
{
    const Envoy__Config__Core__V3__TransportSocket *ts = cl->transport_socket;
    if (!ts || !ts->typed_config)
        return 0; /* none, or raw_buffer by name */
    const struct pl_transport_vtable *vt = pl_transport_by_type_url(ts->typed_config->type_url);
    if (!vt || !vt->config)
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "cluster '%s': transport socket '%s' (%s) is not supported", cl->name,
                          ts->name, ts->typed_config->type_url);
    ProtobufCMessage *m = protobuf_c_message_unpack(vt->config, NULL, ts->typed_config->value.len,
                                                    ts->typed_config->value.data);
    if (!m)
        return pl_err_add(err, NULL, 0, 0, NULL, "cluster '%s': transport socket '%s': bad %s",
                          cl->name, ts->name, ts->typed_config->type_url);
    struct pl_compile_ctx cx = {.listener_name = cl->name};
    int rc = vt->compile ? vt->compile(m, &cx, false, &out->transport_cfg, err) : 0;
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc == 0)
        out->transport = vt;
    return rc;
}

/* The endpoints of a plain assignment (compile_resources.h), kept as they are: 16 bytes each
 * against 56 for the general form (10,000 clusters of 10 endpoints: 1.6 MB against 5.6). */
static void plain_endpoints(const struct pl_cla_plain *p, struct pl_cluster_cfg *out)
{
    out->n_hosts = (uint32_t)p->n;
    if (out->hosts_decode) /* they stay in the assignment's encoding */
        return;
    out->hosts = pl_malloc(p->n ? p->n * sizeof(*out->hosts) : 1);
    if (p->n)
        memcpy(out->hosts, p->hosts, p->n * sizeof(*out->hosts));
}

/* Fills out from cl and its endpoints (plain, else eds, else cl's load_assignment); proto and
 * hash are the caller's. out is filled even on failure. */
static int cluster_body(const Envoy__Config__Cluster__V3__Cluster *cl,
                        const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *eds,
                        const struct pl_cla_plain *plain, const struct timespec *now,
                        struct pl_cluster_cfg *out, struct pl_err *err)
{
    out->name = pl_strdup(cl->name);
    out->type = cl->cluster_discovery_type_case == CLUSTER(CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE)
                    ? (int)cl->type
                    : (int)CLUSTER(CLUSTER__DISCOVERY_TYPE__STATIC);
    out->lb_policy = cl->lb_policy;
    out->connect_timeout_ms = duration_ms(cl->connect_timeout, 5000);
    out->version_info = pl_strdup("");
    out->last_updated = *now;
    compile_cluster_lb(cl, out);
    compile_cluster_http(cl, out);
    if (plain) {
        plain_endpoints(plain, out);
        return compile_cluster_transport(cl, out, err);
    }
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = eds ? eds : cl->load_assignment;
    size_t n = 0;
    for (size_t i = 0; la && i < la->n_endpoints; i++)
        n += la->endpoints[i]->n_lb_endpoints;
    out->endpoints = pl_calloc(n, sizeof(*out->endpoints));
    for (size_t i = 0; la && i < la->n_endpoints; i++) {
        const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le = la->endpoints[i];
        for (size_t j = 0; j < le->n_lb_endpoints; j++) {
            const Envoy__Config__Endpoint__V3__LbEndpoint *ep = le->lb_endpoints[j];
            struct pl_endpoint_cfg *e = &out->endpoints[out->n_endpoints++];
            const Envoy__Config__Core__V3__SocketAddress *sa =
                ep->endpoint->address->socket_address;
            struct sockaddr_storage ss;
            socklen_t len;
            const char *why;
            if (pl_sockaddr_from_proto(ep->endpoint->address, &ss, &len, &why) == 0 &&
                len <= sizeof(e->addr)) {
                memcpy(&e->addr, &ss, len);
                e->addrlen = (uint8_t)len;
            } else { /* a host name: resolved by DNS for STRICT_DNS / LOGICAL_DNS clusters */
                e->hostname = pl_strdup(sa->address);
            }
            e->port = (uint16_t)sa->port_value;
            e->weight = ep->load_balancing_weight ? ep->load_balancing_weight->value : 1;
            e->health_status = (uint32_t)ep->health_status > 255 ? 255 : ep->health_status;
            e->locality = locality_str(le->locality);
            e->locality_weight = u32_or(le->load_balancing_weight, 0);
        }
    }
    return compile_cluster_transport(cl, out, err);
}

int pl_compile_cluster(const Envoy__Config__Cluster__V3__Cluster *cl,
                       const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *eds,
                       const struct timespec *now, struct pl_cluster_cfg *out, struct pl_err *err)
{
    out->proto = clone_msg(&cl->base, &out->hash);
    if (eds) { /* the host set follows the assignment: a changed one is a changed cluster */
        uint64_t h;
        protobuf_c_message_free_unpacked(clone_msg(&eds->base, &h), NULL);
        out->hash = (out->hash ^ h) * 0x100000001b3ULL;
    }
    return cluster_body(cl, eds, NULL, now, out, err);
}

int pl_compile_cluster_borrowed(const Envoy__Config__Cluster__V3__Cluster *cl,
                                const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *eds,
                                uint64_t hash, const struct timespec *now,
                                struct pl_cluster_cfg *out, struct pl_err *err)
{
    out->proto = (ProtobufCMessage *)&cl->base;
    out->hash = hash;
    return cluster_body(cl, eds, NULL, now, out, err);
}

int pl_compile_cluster_plain(const Envoy__Config__Cluster__V3__Cluster *cl,
                             const struct pl_cla_plain *plain, uint64_t hash,
                             const struct timespec *now, struct pl_cluster_cfg *out,
                             struct pl_err *err)
{
    out->proto = (ProtobufCMessage *)&cl->base;
    out->hash = hash;
    return cluster_body(cl, NULL, plain, now, out, err);
}

int pl_bootstrap_compile(const pl_bootstrap_t *b, struct pl_snapshot **out, struct pl_err *err)
{
    pl_tls_register_transports(); /* listeners' and clusters' transport sockets */
    struct pl_snapshot *s = pl_snapshot_new();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->bootstrap = clone_msg(&b->base, NULL);
    s->bootstrap_loaded = now;
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
    int rc = 0;
    if (sr) {
        s->listeners = pl_calloc(sr->n_listeners, sizeof(*s->listeners));
        for (size_t i = 0; i < sr->n_listeners; i++) {
            if (pl_compile_listener(sr->listeners[i], NULL, &now, &s->listeners[s->n_listeners],
                                    err) < 0)
                rc = PL_EINVAL;
            else
                s->n_listeners++;
        }
        s->clusters = pl_calloc(sr->n_clusters, sizeof(*s->clusters));
        for (size_t i = 0; i < sr->n_clusters; i++) {
            /* counted even on failure: the snapshot frees what the compile filled in */
            s->clusters[s->n_clusters] = pl_calloc(1, sizeof(**s->clusters));
            if (pl_compile_cluster(sr->clusters[i], NULL, &now, s->clusters[s->n_clusters++], err) <
                0)
                rc = PL_EINVAL;
        }
    }
    if (rc < 0) {
        pl_snapshot_free(s);
        return rc;
    }
    pl_snapshot_index_build(s);
    *out = s;
    return 0;
}
