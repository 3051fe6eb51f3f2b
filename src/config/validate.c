#include "config/validate.h"

#include <stdlib.h>
#include <string.h>

#include "config/address.h"
#include "config/support.h"
#include "http/access_log.h"
#include "core/log.h"

#define E(obj, field, ...) pl_err_at(c->err, c->map, (obj), (field), __VA_ARGS__)

#define LISTENER(x) ENVOY__CONFIG__LISTENER__V3__##x
#define HCM_T       Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
#define HCM(x)      ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__##x
#define TCP_T       Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy
#define TCP(x)      ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__##x
#define ROUTE(x)    ENVOY__CONFIG__ROUTE__V3__##x
#define CLUSTER(x)  ENVOY__CONFIG__CLUSTER__V3__##x

int pl_validate_field_hook(void *ctx, const ProtobufCMessageDescriptor *msg,
                           const ProtobufCFieldDescriptor *field, const struct pl_srcloc *loc,
                           struct pl_err *err)
{
    (void)ctx;
    switch (pl_support_field(msg->name, field->name)) {
    case PL_SUPPORT_YES:
    case PL_SUPPORT_INERT:
        return 0;
    case PL_SUPPORT_NO:
        break;
    }
    return pl_err_add(err, loc ? loc->file : NULL, loc ? loc->line : 0, loc ? loc->col : 0,
                      loc ? loc->path : NULL, "field '%s' of %s is not supported by pillion",
                      field->name, msg->name);
}

/* Unpacks a typed_config Any if it names an extension implemented at point p. Returns 0 with
 * *out set (and *owned telling whether the caller frees it), or PL_EINVAL with an error. */
static int unpack_ext(struct pl_vctx *c, enum pl_ext_point p, const void *holder, const char *field,
                      const Google__Protobuf__Any *any, const char *ext_name,
                      ProtobufCMessage **out, bool *owned)
{
    *out = NULL;
    *owned = false;
    if (!any)
        return E(holder, field, "'%s': typed_config is required", ext_name);
    /* binary (xDS) input can carry an Any without a type URL */
    if (!any->type_url || !*any->type_url)
        return E(holder, field, "'%s': typed_config has no type URL", ext_name);
    if (!pl_support_extension(p, any->type_url))
        return E(holder, field,
                 "'%s': extension type '%s' is not supported by pillion "
                 "(supported here: %s)",
                 ext_name, any->type_url, pl_support_extension_list(p));
    const char *name = strrchr(any->type_url, '/') + 1;
    const ProtobufCMessageDescriptor *d = pl_registry_find_name(name);
    if (!d)
        return E(holder, field, "'%s': unknown type '%s'", ext_name, any->type_url);
    struct pl_err sub = PL_ERR_INIT;
    if (pl_any_unpack(&any->base, c->map, d, out, owned, &sub) < 0) {
        /* name the extension that failed: the Any bytes come from outside on xDS */
        for (size_t i = 0; i < sub.n; i++)
            E(holder, field, "'%s': %s", ext_name, sub.v[i].msg);
        pl_err_free(&sub);
        return PL_EINVAL;
    }
    return 0;
}

static void free_ext(ProtobufCMessage *m, bool owned)
{
    if (m && owned)
        protobuf_c_message_free_unpacked(m, NULL);
}

/* Checks access_log entries (formats, sinks) as compiling them would, without opening files;
 * errors get the position of the holder's access_log field. */
static int check_access_logs(struct pl_vctx *c, const void *holder,
                             Envoy__Config__Accesslog__V3__AccessLog *const *logs, size_t n)
{
    if (n == 0)
        return 0;
    struct pl_srcloc loc;
    bool have = c->map && pl_srcmap_lookup(c->map, holder, "access_log", &loc) == 0;
    struct pl_err sub = PL_ERR_INIT;
    if (pl_access_log_check((const Envoy__Config__Accesslog__V3__AccessLog *const *)logs, n,
                            have ? loc.path : "access_log", &sub) == 0)
        return 0;
    for (size_t i = 0; i < sub.n; i++)
        pl_err_add(c->err, have ? loc.file : NULL, have ? loc.line : 0, have ? loc.col : 0,
                   sub.v[i].path, "%s", sub.v[i].msg);
    pl_err_free(&sub);
    return PL_EINVAL;
}

static int cmp_name(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

static bool cluster_known(const struct pl_vctx *c, const char *name)
{
    if (!c->clusters)
        return true;
    if (c->clusters_sorted) /* 10,000 routes over 10,000 clusters: no quadratic scan */
        return bsearch(name, c->clusters, c->n_clusters, sizeof(*c->clusters), cmp_name);
    for (size_t i = 0; i < c->n_clusters; i++)
        if (!strcmp(c->clusters[i], name))
            return true;
    return false;
}

static int check_cluster_ref(struct pl_vctx *c, const void *obj, const char *field,
                             const char *name)
{
    if (!name || !*name)
        return E(obj, field, "a cluster name is required");
    if (!cluster_known(c, name))
        return E(obj, field, "route names unknown cluster '%s'", name);
    return 0;
}

static int check_route(struct pl_vctx *c, const Envoy__Config__Route__V3__Route *r)
{
    int rc = 0;
    if (!r->match)
        rc = E(r, "match", "a route needs a match");
    else if (r->match->path_specifier_case == ROUTE(ROUTE_MATCH__PATH_SPECIFIER__NOT_SET))
        rc = E(r->match, NULL,
               "a route match needs one of prefix, path, safe_regex, "
               "path_separated_prefix");
    switch (r->action_case) {
    case ROUTE(ROUTE__ACTION_ROUTE): {
        const Envoy__Config__Route__V3__RouteAction *a = r->route;
        switch (a->cluster_specifier_case) {
        case ROUTE(ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER):
            rc |= check_cluster_ref(c, a, "cluster", a->cluster);
            break;
        case ROUTE(ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_HEADER):
            if (!*a->cluster_header)
                rc |= E(a, "cluster_header", "cluster_header must name a header");
            break;
        case ROUTE(ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS): {
            const Envoy__Config__Route__V3__WeightedCluster *w = a->weighted_clusters;
            if (w->n_clusters == 0)
                rc |= E(w, "clusters", "weighted_clusters needs at least one cluster");
            uint64_t sum = 0;
            for (size_t i = 0; i < w->n_clusters; i++) {
                rc |= check_cluster_ref(c, w->clusters[i], "name", w->clusters[i]->name);
                sum += w->clusters[i]->weight ? w->clusters[i]->weight->value : 0;
            }
            if (w->n_clusters && sum == 0)
                rc |= E(w, "clusters", "the sum of weights must be greater than 0");
            break;
        }
        default:
            rc |= E(a, NULL,
                    "a route action needs one of cluster, cluster_header, "
                    "weighted_clusters");
        }
        break;
    }
    case ROUTE(ROUTE__ACTION_REDIRECT):
    case ROUTE(ROUTE__ACTION_DIRECT_RESPONSE):
        break;
    default:
        rc |= E(r, NULL, "a route needs one of route, redirect, direct_response");
    }
    return rc ? PL_EINVAL : 0;
}

int pl_validate_route_config(struct pl_vctx *c,
                             const Envoy__Config__Route__V3__RouteConfiguration *rcfg)
{
    int rc = 0;
    for (size_t i = 0; i < rcfg->n_virtual_hosts; i++) {
        const Envoy__Config__Route__V3__VirtualHost *vh = rcfg->virtual_hosts[i];
        if (!*vh->name)
            rc |= E(vh, "name", "a virtual host needs a name");
        if (vh->n_domains == 0)
            rc |= E(vh, "domains", "a virtual host needs at least one domain");
        for (size_t j = 0; j < vh->n_domains; j++) {
            const char *d = vh->domains[j];
            if (!*d)
                rc |= E(vh, "domains", "a domain must not be empty");
            /* Envoy: a domain is unique across the whole route configuration */
            for (size_t k = 0; k <= i; k++) {
                const Envoy__Config__Route__V3__VirtualHost *o = rcfg->virtual_hosts[k];
                size_t end = k == i ? j : o->n_domains;
                for (size_t m = 0; m < end; m++)
                    if (!strcasecmp(o->domains[m], d))
                        rc |= E(vh, "domains",
                                "only unique values for domains are permitted: '%s' is also in "
                                "virtual host '%s'",
                                d, o->name);
            }
        }
        for (size_t j = 0; j < vh->n_routes; j++)
            rc |= check_route(c, vh->routes[j]);
    }
    return rc ? PL_EINVAL : 0;
}

#define CS(x) ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__##x

/* RDS and EDS come over the ADS stream only (config_source `ads: {}`). */
static int check_ads_source(struct pl_vctx *c, const void *holder, const char *field,
                            const Envoy__Config__Core__V3__ConfigSource *cs, const char *what)
{
    if (!cs)
        return E(holder, field, "%s: a config_source is required", what);
    if (cs->config_source_specifier_case != CS(CONFIG_SOURCE_SPECIFIER_ADS))
        return E(cs, NULL, "%s: only config_source `ads: {}` is supported by pillion", what);
    if (!c->ads)
        return E(cs, "ads", "%s over ADS needs dynamic_resources.ads_config in the bootstrap",
                 what);
    return 0;
}

static int check_hcm(struct pl_vctx *c, const HCM_T *h)
{
    int rc = 0;
    if (!*h->stat_prefix)
        rc |= E(h, "stat_prefix", "stat_prefix is required");
    rc |= check_access_logs(c, h, h->access_log, h->n_access_log);
    switch (h->route_specifier_case) {
    case HCM(HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG):
        rc |= pl_validate_route_config(c, h->route_config);
        break;
    case HCM(HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS):
        if (!*h->rds->route_config_name)
            rc |= E(h->rds, "route_config_name", "route_config_name is required");
        rc |= check_ads_source(c, h->rds, "config_source", h->rds->config_source, "rds");
        break;
    default:
        rc |= E(h, NULL, "one of route_config or rds is required");
    }
    bool router = false;
    for (size_t i = 0; i < h->n_http_filters; i++) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f =
            h->http_filters[i];
        if (!*f->name)
            rc |= E(f, "name", "an HTTP filter needs a name");
        if (router)
            rc |= E(f, NULL, "the router filter must be the last filter in a http filter chain");
        if (f->typed_config && f->typed_config->type_url &&
            !pl_support_extension(PL_EXT_HTTP_FILTER, f->typed_config->type_url) &&
            f->is_optional) {
            pl_log_info("config", "skipping optional HTTP filter '%s' (%s)", f->name,
                        f->typed_config->type_url);
            continue;
        }
        ProtobufCMessage *m;
        bool owned;
        if (unpack_ext(c, PL_EXT_HTTP_FILTER, f, "typed_config", f->typed_config, f->name, &m,
                       &owned) < 0) {
            rc |= PL_EINVAL;
            continue;
        }
        if (m->descriptor == &envoy__extensions__filters__http__router__v3__router__descriptor)
            router = true;
        free_ext(m, owned);
    }
    if (!router)
        rc |= E(h, "http_filters",
                "the http filter chain must end with the router filter "
                "(envoy.filters.http.router)");
    return rc ? PL_EINVAL : 0;
}

static int check_tcp_proxy(struct pl_vctx *c, const TCP_T *t)
{
    int rc = 0;
    if (!*t->stat_prefix)
        rc |= E(t, "stat_prefix", "stat_prefix is required");
    rc |= check_access_logs(c, t, t->access_log, t->n_access_log);
    switch (t->cluster_specifier_case) {
    case TCP(TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER):
        if (!cluster_known(c, t->cluster))
            rc |= E(t, "cluster", "unknown cluster '%s'", t->cluster);
        break;
    case TCP(TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS):
        for (size_t i = 0; i < t->weighted_clusters->n_clusters; i++)
            if (!cluster_known(c, t->weighted_clusters->clusters[i]->name))
                rc |= E(t->weighted_clusters->clusters[i], "name", "unknown cluster '%s'",
                        t->weighted_clusters->clusters[i]->name);
        break;
    default:
        rc |= E(t, NULL, "one of cluster or weighted_clusters is required");
    }
    return rc ? PL_EINVAL : 0;
}

static int check_transport_socket(struct pl_vctx *c,
                                  const Envoy__Config__Core__V3__TransportSocket *ts)
{
    if (!ts)
        return 0;
    ProtobufCMessage *m;
    bool owned;
    int rc = unpack_ext(c, PL_EXT_TRANSPORT_SOCKET, ts, "typed_config", ts->typed_config,
                        *ts->name ? ts->name : "transport_socket", &m, &owned);
    free_ext(m, owned);
    return rc;
}

static int check_filter_chain(struct pl_vctx *c, const Envoy__Config__Listener__V3__FilterChain *fc)
{
    int rc = check_transport_socket(c, fc->transport_socket);
    if (fc->n_filters == 0)
        rc |= E(fc, "filters", "a filter chain needs at least one network filter");
    for (size_t i = 0; i < fc->n_filters; i++) {
        const Envoy__Config__Listener__V3__Filter *f = fc->filters[i];
        ProtobufCMessage *m;
        bool owned;
        if (unpack_ext(c, PL_EXT_NETWORK_FILTER, f, "typed_config", f->typed_config, f->name, &m,
                       &owned) < 0) {
            rc |= PL_EINVAL;
            continue;
        }
        if (i + 1 != fc->n_filters)
            rc |=
                E(f, NULL, "'%s' is a terminal filter and must be the last in the chain", f->name);
        if (m->descriptor ==
            &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor)
            rc |= check_hcm(c, (const HCM_T *)m);
        else
            rc |= check_tcp_proxy(c, (const TCP_T *)m);
        free_ext(m, owned);
    }
    return rc ? PL_EINVAL : 0;
}

#define LFILTER_T Envoy__Config__Listener__V3__ListenerFilter
#define TLSI_T    Envoy__Extensions__Filters__Listener__TlsInspector__V3__TlsInspector

/* Listener.listener_filters: tls_inspector and original_dst (by type URL, or by Envoy's name
 * when typed_config is absent). ListenerFilter has no is_optional: an unknown one is an error. */
static int check_listener_filters(struct pl_vctx *c, const Envoy__Config__Listener__V3__Listener *l)
{
    int rc = 0;
    for (size_t i = 0; i < l->n_listener_filters; i++) {
        const LFILTER_T *f = l->listener_filters[i];
        if (!*f->name)
            rc |= E(f, "name", "a listener filter needs a name");
        if (f->config_type_case != LISTENER(LISTENER_FILTER__CONFIG_TYPE_TYPED_CONFIG)) {
            if (strcmp(f->name, "envoy.filters.listener.tls_inspector") &&
                strcmp(f->name, "envoy.filters.listener.original_dst"))
                rc |= E(f, NULL,
                        "listener filter '%s': not supported by pillion without a typed_config "
                        "(supported here: %s)",
                        f->name, pl_support_extension_list(PL_EXT_LISTENER_FILTER));
            continue;
        }
        ProtobufCMessage *m;
        bool owned;
        if (unpack_ext(c, PL_EXT_LISTENER_FILTER, f, "typed_config", f->typed_config, f->name, &m,
                       &owned) < 0) {
            rc |= PL_EINVAL;
            continue;
        }
        if (m->descriptor ==
            &envoy__extensions__filters__listener__tls_inspector__v3__tls_inspector__descriptor) {
            const TLSI_T *t = (const TLSI_T *)m;
            if (t->initial_read_buffer_size && (t->initial_read_buffer_size->value < 256 ||
                                                t->initial_read_buffer_size->value > 65536))
                rc |= E(t, "initial_read_buffer_size",
                        "'%s': initial_read_buffer_size must be greater than 255 and less than "
                        "65537",
                        f->name);
        }
        free_ext(m, owned);
    }
    return rc ? PL_EINVAL : 0;
}

int pl_validate_listener(struct pl_vctx *c, const Envoy__Config__Listener__V3__Listener *l)
{
    int rc = 0;
    struct pl_addr a;
    const char *why;
    if (!l->address)
        rc |= E(l, NULL, "listener '%s': an address is required", l->name);
    else if (pl_addr_from_proto(l->address, &a, &why) < 0)
        rc |= E(l, "address", "%s", why);
    if (l->n_filter_chains == 0 && !l->default_filter_chain)
        rc |= E(l, "filter_chains", "no filter chains specified");
    for (size_t i = 0; i < l->n_filter_chains; i++)
        rc |= check_filter_chain(c, l->filter_chains[i]);
    if (l->default_filter_chain)
        rc |= check_filter_chain(c, l->default_filter_chain);
    rc |= check_listener_filters(c, l);
    return rc ? PL_EINVAL : 0;
}

static bool is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    for (uint64_t d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

/* Envoy's limits on the load balancer configs (cluster.proto validation rules). */
static int check_cluster_lb_config(struct pl_vctx *c, const Envoy__Config__Cluster__V3__Cluster *cl)
{
    int rc = 0;
    if (cl->lb_config_case == CLUSTER(CLUSTER__LB_CONFIG_LEAST_REQUEST_LB_CONFIG)) {
        const Envoy__Config__Cluster__V3__Cluster__LeastRequestLbConfig *lr =
            cl->least_request_lb_config;
        if (lr->choice_count && lr->choice_count->value < 2)
            rc |= E(lr, "choice_count", "choice_count must be at least 2");
    } else if (cl->lb_config_case == CLUSTER(CLUSTER__LB_CONFIG_RING_HASH_LB_CONFIG)) {
        const Envoy__Config__Cluster__V3__Cluster__RingHashLbConfig *rh = cl->ring_hash_lb_config;
        uint64_t lo = rh->minimum_ring_size ? rh->minimum_ring_size->value : 1024;
        uint64_t hi = rh->maximum_ring_size ? rh->maximum_ring_size->value : 8388608;
        if (lo == 0 || lo > 8388608)
            rc |= E(rh, "minimum_ring_size", "minimum_ring_size must be in 1..8388608");
        if (hi == 0 || hi > 8388608)
            rc |= E(rh, "maximum_ring_size", "maximum_ring_size must be in 1..8388608");
        if (lo > hi)
            rc |= E(rh, "minimum_ring_size",
                    "minimum_ring_size (%llu) must not exceed maximum_ring_size (%llu)",
                    (unsigned long long)lo, (unsigned long long)hi);
    } else if (cl->lb_config_case == CLUSTER(CLUSTER__LB_CONFIG_MAGLEV_LB_CONFIG)) {
        const Envoy__Config__Cluster__V3__Cluster__MaglevLbConfig *mg = cl->maglev_lb_config;
        uint64_t n = mg->table_size ? mg->table_size->value : 65537;
        if (n > 5000011 || !is_prime(n))
            rc |= E(mg, "table_size", "table_size must be a prime number no larger than 5000011");
    }
    return rc;
}

int pl_validate_cluster(struct pl_vctx *c, const Envoy__Config__Cluster__V3__Cluster *cl)
{
    int rc = 0;
    if (!*cl->name)
        rc |= E(cl, "name", "a cluster needs a name");
    int type = cl->cluster_discovery_type_case == CLUSTER(CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE)
                   ? (int)cl->type
                   : (int)CLUSTER(CLUSTER__DISCOVERY_TYPE__STATIC);
    if (cl->cluster_discovery_type_case == CLUSTER(CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE))
        rc |= E(cl, "cluster_type", "custom cluster types are not supported by pillion");
    switch (type) {
    case CLUSTER(CLUSTER__DISCOVERY_TYPE__STATIC):
    case CLUSTER(CLUSTER__DISCOVERY_TYPE__STRICT_DNS):
    case CLUSTER(CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS):
    case CLUSTER(CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST):
        break;
    case CLUSTER(CLUSTER__DISCOVERY_TYPE__EDS):
        if (!cl->eds_cluster_config)
            rc |=
                E(cl, "eds_cluster_config", "cluster '%s': EDS needs eds_cluster_config", cl->name);
        else
            rc |= check_ads_source(c, cl->eds_cluster_config, "eds_config",
                                   cl->eds_cluster_config->eds_config, "eds_cluster_config");
        if (cl->load_assignment)
            rc |= E(cl, "load_assignment",
                    "cluster '%s': EDS clusters take their endpoints from EDS, not "
                    "load_assignment",
                    cl->name);
        break;
    default:
        rc |= E(cl, "type", "cluster '%s': unknown discovery type %d", cl->name, type);
    }
    switch (cl->lb_policy) {
    case CLUSTER(CLUSTER__LB_POLICY__ROUND_ROBIN):
    case CLUSTER(CLUSTER__LB_POLICY__LEAST_REQUEST):
    case CLUSTER(CLUSTER__LB_POLICY__RANDOM):
    case CLUSTER(CLUSTER__LB_POLICY__RING_HASH):
    case CLUSTER(CLUSTER__LB_POLICY__MAGLEV):
        if (type == CLUSTER(CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST))
            rc |= E(cl, "lb_policy",
                    "cluster '%s': ORIGINAL_DST clusters need lb_policy "
                    "CLUSTER_PROVIDED",
                    cl->name);
        break;
    case CLUSTER(CLUSTER__LB_POLICY__CLUSTER_PROVIDED):
        if (type != CLUSTER(CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST))
            rc |= E(cl, "lb_policy",
                    "cluster '%s': lb_policy CLUSTER_PROVIDED is only valid "
                    "for ORIGINAL_DST clusters",
                    cl->name);
        break;
    default:
        rc |= E(cl, "lb_policy", "cluster '%s': this lb_policy is not supported by pillion",
                cl->name);
    }
    rc |= check_cluster_lb_config(c, cl);
    if (cl->dns_refresh_rate &&
        (cl->dns_refresh_rate->seconds < 0 ||
         (cl->dns_refresh_rate->seconds == 0 && cl->dns_refresh_rate->nanos <= 1000000)))
        rc |= E(cl, "dns_refresh_rate", "dns_refresh_rate must be greater than 1ms");
    if (cl->connect_timeout &&
        (cl->connect_timeout->seconds < 0 ||
         (cl->connect_timeout->seconds == 0 && cl->connect_timeout->nanos <= 0)))
        rc |= E(cl, "connect_timeout", "connect_timeout must be greater than 0s");
    rc |= check_transport_socket(c, cl->transport_socket);
    for (size_t i = 0; i < cl->n_typed_extension_protocol_options; i++) {
        const Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
            cl->typed_extension_protocol_options[i];
        ProtobufCMessage *m;
        bool owned;
        if (unpack_ext(c, PL_EXT_PROTOCOL_OPTIONS, e, "value", e->value, e->key, &m, &owned) == 0 &&
            strcmp(e->key, "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"))
            rc |= E(e, "key",
                    "protocol options key must be "
                    "'envoy.extensions.upstreams.http.v3.HttpProtocolOptions', got '%s'",
                    e->key);
        else if (!m)
            rc |= PL_EINVAL;
        free_ext(m, owned);
    }
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = cl->load_assignment;
    size_t n_eps = 0;
    if (la && type == CLUSTER(CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST) && la->n_endpoints)
        rc |= E(cl, "load_assignment", "ORIGINAL_DST clusters must not have endpoints");
    for (size_t i = 0; la && i < la->n_endpoints; i++) {
        const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le = la->endpoints[i];
        if (le->load_balancing_weight && le->load_balancing_weight->value == 0)
            rc |= E(le, "load_balancing_weight", "load_balancing_weight must be at least 1");
        if (le->priority != 0)
            rc |= E(le, "priority",
                    "cluster '%s': priority %u is not supported by pillion (only priority 0)",
                    cl->name, le->priority);
        for (size_t j = 0; j < le->n_lb_endpoints; j++) {
            const Envoy__Config__Endpoint__V3__LbEndpoint *ep = le->lb_endpoints[j];
            n_eps++;
            if (ep->load_balancing_weight && ep->load_balancing_weight->value == 0)
                rc |= E(ep, "load_balancing_weight", "load_balancing_weight must be at least 1");
            if (ep->host_identifier_case !=
                ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT) {
                rc |= E(ep, NULL, "an lb_endpoint needs an endpoint");
                continue;
            }
            const Envoy__Config__Core__V3__Address *addr = ep->endpoint->address;
            if (!addr) {
                rc |= E(ep->endpoint, NULL, "an endpoint needs an address");
                continue;
            }
            if (addr->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS) {
                rc |= E(addr, NULL, "endpoints must be socket addresses");
                continue;
            }
            const Envoy__Config__Core__V3__SocketAddress *sa = addr->socket_address;
            if (!*sa->address)
                rc |= E(sa, "address", "an endpoint address is required");
            if (sa->port_value == 0 || sa->port_value > 65535)
                rc |= E(sa, "port_value", "an endpoint needs a port from 1 to 65535");
            struct sockaddr_storage ss;
            socklen_t ss_len;
            const char *why;
            if (type == CLUSTER(CLUSTER__DISCOVERY_TYPE__STATIC) &&
                pl_sockaddr_from_proto(addr, &ss, &ss_len, &why) < 0)
                rc |= E(sa, "address", "STATIC cluster '%s': %s (use STRICT_DNS for host names)",
                        cl->name, why);
        }
    }
    if (type == CLUSTER(CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS) && n_eps != 1)
        rc |= E(cl, "load_assignment", "LOGICAL_DNS clusters must have exactly one endpoint");
    return rc ? PL_EINVAL : 0;
}

#define API(x)  ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__##x
#define GRPC(x) ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__##x

/* dynamic_resources: one ADS stream (gRPC) that LDS and CDS point at. */
static int check_dynamic(struct pl_vctx *c, const Envoy__Config__Bootstrap__V3__Bootstrap *b)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *d = b->dynamic_resources;
    int rc = 0;
    const Envoy__Config__Core__V3__ApiConfigSource *a = d->ads_config;
    if (!a) {
        rc |= E(d, NULL, "dynamic_resources needs ads_config (pillion speaks ADS only)");
    } else {
        if (a->api_type != API(GRPC) && a->api_type != API(DELTA_GRPC))
            rc |= E(a, "api_type", "ads_config.api_type must be GRPC or DELTA_GRPC");
        if (a->transport_api_version != ENVOY__CONFIG__CORE__V3__API_VERSION__V3 &&
            a->transport_api_version != ENVOY__CONFIG__CORE__V3__API_VERSION__AUTO)
            rc |= E(a, "transport_api_version", "only transport_api_version V3 is supported");
        if (a->n_grpc_services != 1)
            rc |= E(a, "grpc_services", "ads_config needs exactly one grpc_services entry");
        for (size_t i = 0; i < a->n_grpc_services; i++) {
            const Envoy__Config__Core__V3__GrpcService *g = a->grpc_services[i];
            if (g->target_specifier_case == GRPC(TARGET_SPECIFIER_ENVOY_GRPC)) {
                const char *cn = g->envoy_grpc->cluster_name;
                const Envoy__Config__Cluster__V3__Cluster *found = NULL;
                for (size_t j = 0; b->static_resources && j < b->static_resources->n_clusters; j++)
                    if (!strcmp(b->static_resources->clusters[j]->name, cn))
                        found = b->static_resources->clusters[j];
                if (!found) /* its transport_socket, if any, is the channel's TLS */
                    rc |= E(g->envoy_grpc, "cluster_name",
                            "envoy_grpc cluster '%s' must be a static cluster", cn);
            } else if (g->target_specifier_case == GRPC(TARGET_SPECIFIER_GOOGLE_GRPC)) {
                if (!*g->google_grpc->target_uri)
                    rc |= E(g->google_grpc, "target_uri", "target_uri is required");
            } else {
                rc |= E(g, NULL, "a grpc_service needs envoy_grpc or google_grpc");
            }
        }
    }
    if (d->lds_config &&
        d->lds_config->config_source_specifier_case != CS(CONFIG_SOURCE_SPECIFIER_ADS))
        rc |= E(d->lds_config, NULL, "lds_config: only `ads: {}` is supported by pillion");
    if (d->cds_config &&
        d->cds_config->config_source_specifier_case != CS(CONFIG_SOURCE_SPECIFIER_ADS))
        rc |= E(d->cds_config, NULL, "cds_config: only `ads: {}` is supported by pillion");
    return rc;
}

int pl_validate_bootstrap(struct pl_vctx *c, const Envoy__Config__Bootstrap__V3__Bootstrap *b)
{
    int rc = 0;
    if (b->dynamic_resources) {
        rc |= check_dynamic(c, b);
        c->ads = b->dynamic_resources->ads_config != NULL;
    }
    if (b->admin && b->admin->address) {
        struct pl_addr a;
        const char *why;
        if (pl_addr_from_proto(b->admin->address, &a, &why) < 0)
            rc |= E(b->admin, "address", "%s", why);
        else if (!pl_addr_is_local(&a) && !c->admin_allow_remote)
            rc |= E(b->admin, "address",
                    "the admin address %s is not loopback; pass "
                    "--admin-allow-remote to expose it",
                    a.str);
    }
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
    if (!sr)
        return rc ? PL_EINVAL : 0;
    const char **names = pl_calloc(sr->n_clusters + 1, sizeof(char *));
    for (size_t i = 0; i < sr->n_clusters; i++) {
        const Envoy__Config__Cluster__V3__Cluster *cl = sr->clusters[i];
        rc |= pl_validate_cluster(c, cl);
        for (size_t j = 0; j < i; j++)
            if (*cl->name && !strcmp(names[j], cl->name))
                rc |= E(cl, "name", "duplicate cluster name '%s'", cl->name);
        names[i] = cl->name;
    }
    c->clusters = names;
    c->n_clusters = sr->n_clusters;
    for (size_t i = 0; i < sr->n_listeners; i++) {
        const Envoy__Config__Listener__V3__Listener *l = sr->listeners[i];
        rc |= pl_validate_listener(c, l);
        for (size_t j = 0; j < i; j++) {
            const Envoy__Config__Listener__V3__Listener *o = sr->listeners[j];
            if (*l->name && !strcmp(o->name, l->name))
                rc |= E(l, "name", "duplicate listener name '%s'", l->name);
            struct pl_addr a1, a2;
            const char *why;
            if (l->address && o->address && pl_addr_from_proto(l->address, &a1, &why) == 0 &&
                pl_addr_from_proto(o->address, &a2, &why) == 0 && a1.len == a2.len &&
                !memcmp(&a1.ss, &a2.ss, a1.len) &&
                !(a1.ss.ss_family != AF_UNIX && strstr(a1.str, ":0") &&
                  strlen(strstr(a1.str, ":0")) == 2))
                rc |= E(l, "address",
                        "listener '%s' has duplicate address %s (also listener "
                        "'%s')",
                        l->name, a1.str, o->name);
        }
    }
    c->clusters = NULL;
    c->n_clusters = 0;
    free(names);
    return rc ? PL_EINVAL : 0;
}
