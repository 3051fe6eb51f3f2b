/* State-of-the-world protocol state per type: versions, nonces, subscriptions, requests. */
#include <stdlib.h>
#include <string.h>

#include "xds/xds_internal.h"

static const char *const type_urls[PL_XDS_NTYPES] = {
    [PL_XDS_CDS] = PL_XDS_TYPE_URL_PREFIX "envoy.config.cluster.v3.Cluster",
    [PL_XDS_EDS] = PL_XDS_TYPE_URL_PREFIX "envoy.config.endpoint.v3.ClusterLoadAssignment",
    [PL_XDS_LDS] = PL_XDS_TYPE_URL_PREFIX "envoy.config.listener.v3.Listener",
    [PL_XDS_RDS] = PL_XDS_TYPE_URL_PREFIX "envoy.config.route.v3.RouteConfiguration",
};

static const char *const type_names[PL_XDS_NTYPES] = {
    [PL_XDS_CDS] = "cds", [PL_XDS_EDS] = "eds", [PL_XDS_LDS] = "lds", [PL_XDS_RDS] = "rds"};

const char *pl_xds_type_url(enum pl_xds_type t)
{
    return type_urls[t];
}

const char *pl_xds_type_name(enum pl_xds_type t)
{
    return type_names[t];
}

int pl_xds_type_from_url(const char *url)
{
    for (int t = 0; t < PL_XDS_NTYPES; t++)
        if (!strcmp(url, type_urls[t]))
            return t;
    return -1;
}

const ProtobufCMessageDescriptor *pl_xds_type_desc(enum pl_xds_type t)
{
    switch (t) {
    case PL_XDS_CDS:
        return &envoy__config__cluster__v3__cluster__descriptor;
    case PL_XDS_EDS:
        return &envoy__config__endpoint__v3__cluster_load_assignment__descriptor;
    case PL_XDS_LDS:
        return &envoy__config__listener__v3__listener__descriptor;
    default:
        return &envoy__config__route__v3__route_configuration__descriptor;
    }
}

void pl_xds_sub_init(struct pl_xds_sub *s, enum pl_xds_type t)
{
    memset(s, 0, sizeof(*s));
    s->type = t;
    s->wildcard = t == PL_XDS_CDS || t == PL_XDS_LDS;
    s->version = pl_strdup("");
    s->nonce = pl_strdup("");
}

static void free_names(struct pl_xds_sub *s)
{
    for (size_t i = 0; i < s->n_names; i++)
        free(s->names[i]);
    free(s->names);
    s->names = NULL;
    s->n_names = 0;
}

void pl_xds_sub_free(struct pl_xds_sub *s)
{
    free_names(s);
    free(s->version);
    free(s->nonce);
    s->version = s->nonce = NULL;
}

void pl_xds_sub_stream_reset(struct pl_xds_sub *s)
{
    free(s->nonce);
    s->nonce = pl_strdup("");
    s->node_sent = false;
    s->requested = false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool pl_xds_sub_set_names(struct pl_xds_sub *s, const char *const *names, size_t n)
{
    char **v = pl_calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (char *)names[i];
    qsort(v, n, sizeof(*v), cmp_str);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || strcmp(v[m - 1], v[i]))
            v[m++] = v[i];
    bool same = m == s->n_names;
    for (size_t i = 0; same && i < m; i++)
        same = !strcmp(v[i], s->names[i]);
    if (same) {
        free(v);
        return false;
    }
    free_names(s);
    for (size_t i = 0; i < m; i++)
        v[i] = pl_strdup(v[i]);
    s->names = v;
    s->n_names = m;
    return true;
}

bool pl_xds_sub_has(const struct pl_xds_sub *s, const char *name)
{
    if (s->wildcard)
        return true;
    return bsearch(&name, s->names, s->n_names, sizeof(*s->names), cmp_str) != NULL;
}

uint8_t *pl_xds_sub_request(struct pl_xds_sub *s, const struct pl_xds_req_opts *o, size_t *len)
{
    Envoy__Service__Discovery__V3__DiscoveryRequest r =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    r.version_info = s->version;
    r.type_url = (char *)pl_xds_type_url(s->type);
    r.response_nonce = s->nonce;
    if (!s->wildcard) {
        r.resource_names = s->names;
        r.n_resource_names = s->n_names;
    }
    if (o && o->node && !s->node_sent) {
        r.node = (Envoy__Config__Core__V3__Node *)o->node;
        s->node_sent = true;
    }
    if (o && o->error) {
        st.code = 3; /* INVALID_ARGUMENT, as Envoy */
        st.message = (char *)o->error;
        r.error_detail = &st;
    }
    s->requested = true;
    *len = protobuf_c_message_get_packed_size(&r.base);
    uint8_t *buf = pl_malloc(*len ? *len : 1);
    protobuf_c_message_pack(&r.base, buf);
    return buf;
}

uint8_t *pl_xds_sub_delta_request(struct pl_xds_sub *s, const struct pl_xds_delta_opts *o,
                                  size_t *len)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest r =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    r.type_url = (char *)pl_xds_type_url(s->type);
    r.response_nonce = o->ack ? s->nonce : (char *)"";
    r.resource_names_subscribe = (char **)o->subscribe;
    r.n_resource_names_subscribe = o->n_subscribe;
    r.resource_names_unsubscribe = (char **)o->unsubscribe;
    r.n_resource_names_unsubscribe = o->n_unsubscribe;
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry *e =
        pl_calloc(o->n_held + 1, sizeof(*e));
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry **ep =
        pl_calloc(o->n_held + 1, sizeof(*ep));
    for (size_t i = 0; i < o->n_held; i++) {
        envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(
            &e[i]);
        e[i].key = (char *)o->held_names[i];
        e[i].value = (char *)o->held_versions[i];
        ep[i] = &e[i];
    }
    r.initial_resource_versions = ep;
    r.n_initial_resource_versions = o->n_held;
    if (o->node && !s->node_sent) {
        r.node = (Envoy__Config__Core__V3__Node *)o->node;
        s->node_sent = true;
    }
    if (o->error) {
        st.code = 3; /* INVALID_ARGUMENT, as Envoy */
        st.message = (char *)o->error;
        r.error_detail = &st;
    }
    s->requested = true;
    *len = protobuf_c_message_get_packed_size(&r.base);
    uint8_t *buf = pl_malloc(*len ? *len : 1);
    protobuf_c_message_pack(&r.base, buf);
    free(e);
    free(ep);
    return buf;
}

void pl_xds_sub_accept(struct pl_xds_sub *s, const char *version, const char *nonce)
{
    free(s->version);
    free(s->nonce);
    s->version = pl_strdup(version);
    s->nonce = pl_strdup(nonce);
    s->received = true;
}

void pl_xds_sub_reject(struct pl_xds_sub *s, const char *nonce)
{
    free(s->nonce);
    s->nonce = pl_strdup(nonce);
}

uint64_t pl_xds_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, uint64_t rnd)
{
    uint64_t ceiling = base_ms;
    for (unsigned i = 0; i < attempt && ceiling < max_ms; i++)
        ceiling *= 2;
    if (ceiling > max_ms)
        ceiling = max_ms;
    return ceiling ? rnd % ceiling : 0;
}
