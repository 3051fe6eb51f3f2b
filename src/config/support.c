/* The table of implemented fields. A message absent from the table is not implemented at all
 * (every field set in it is rejected), except google.protobuf.* value types, which are data. */
#include "config/support.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct rule {
    const char *message;
    const char *yes;   /* space-separated field names that are implemented; "*" for all */
    const char *inert; /* space-separated field names that change no behaviour */
};

#define CORE  "envoy.config.core.v3."
#define ROUTE "envoy.config.route.v3."
#define TLS   "envoy.extensions.transport_sockets.tls.v3."
#define HCM   "envoy.extensions.filters.network.http_connection_manager.v3."

/* Sorted by message name once, on first use, for bsearch. */
static struct rule rules[] = {
    {"envoy.config.accesslog.v3.AccessLog", "name typed_config", ""},
    {"envoy.config.bootstrap.v3.Admin", "address", ""},
    {"envoy.config.bootstrap.v3.Bootstrap", "node static_resources admin dynamic_resources", ""},
    {"envoy.config.bootstrap.v3.Bootstrap.DynamicResources", "lds_config cds_config ads_config",
     ""},
    {"envoy.config.bootstrap.v3.Bootstrap.StaticResources", "listeners clusters", ""},
    {"envoy.config.cluster.v3.Cluster",
     "name type lb_policy load_assignment connect_timeout transport_socket "
     "typed_extension_protocol_options dns_lookup_family dns_refresh_rate respect_dns_ttl "
     "per_connection_buffer_limit_bytes ring_hash_lb_config maglev_lb_config "
     "least_request_lb_config eds_cluster_config",
     "alt_stat_name metadata"},
    {"envoy.config.cluster.v3.Cluster.EdsClusterConfig", "eds_config service_name", ""},
    {"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig", "choice_count", ""},
    {"envoy.config.cluster.v3.Cluster.MaglevLbConfig", "table_size", ""},
    {"envoy.config.cluster.v3.Cluster.RingHashLbConfig",
     "minimum_ring_size maximum_ring_size hash_function", ""},
    {CORE "Address", "socket_address pipe", ""},
    {CORE "ApiConfigSource",
     "api_type transport_api_version grpc_services set_node_on_first_message_only", ""},
    {CORE "ConfigSource", "ads api_config_source resource_api_version initial_fetch_timeout", ""},
    {CORE "GrpcService", "envoy_grpc google_grpc timeout", ""},
    {CORE "GrpcService.EnvoyGrpc", "cluster_name", ""},
    {CORE "GrpcService.GoogleGrpc", "target_uri stat_prefix channel_credentials", ""},
    {CORE "GrpcService.GoogleGrpc.ChannelCredentials", "ssl_credentials", ""},
    {CORE "GrpcService.GoogleGrpc.SslCredentials", "root_certs private_key cert_chain", ""},
    {CORE "DataSource", "filename inline_bytes inline_string environment_variable", ""},
    {CORE "Http1ProtocolOptions", "", ""},
    {CORE "Http2ProtocolOptions",
     "max_concurrent_streams initial_stream_window_size initial_connection_window_size", ""},
    {CORE "HttpProtocolOptions", "idle_timeout max_headers_count", ""},
    {CORE "HeaderValue", "key value", ""},
    {CORE "HeaderValueOption", "header append append_action keep_empty_value", ""},
    {CORE "Locality", "", "region zone sub_zone"},
    {CORE "Metadata", "", "filter_metadata typed_filter_metadata"},
    {CORE "Node", "id cluster",
     "metadata locality user_agent_name user_agent_version user_agent_build_version "
     "client_features"},
    {CORE "Pipe", "path mode", ""},
    {CORE "SocketAddress", "protocol address port_value ipv4_compat", ""},
    {CORE "SubstitutionFormatString",
     "text_format text_format_source json_format omit_empty_values content_type", ""},
    {CORE "TransportSocket", "name typed_config", ""},
    {"envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name endpoints", ""},
    {"envoy.config.endpoint.v3.Endpoint", "address", "hostname"},
    {"envoy.config.endpoint.v3.LbEndpoint", "endpoint health_status load_balancing_weight",
     "metadata"},
    {"envoy.config.endpoint.v3.LocalityLbEndpoints", "lb_endpoints load_balancing_weight priority",
     "locality"},
    {"envoy.config.listener.v3.Filter", "name typed_config", ""},
    {"envoy.config.listener.v3.ListenerFilter", "name typed_config", ""},
    {"envoy.config.listener.v3.FilterChain", "filter_chain_match filters transport_socket",
     "name metadata"},
    {"envoy.config.listener.v3.FilterChainMatch",
     "destination_port server_names transport_protocol application_protocols", ""},
    {"envoy.config.listener.v3.Listener",
     "name address filter_chains default_filter_chain per_connection_buffer_limit_bytes "
     "stat_prefix listener_filters listener_filters_timeout continue_on_listener_filters_timeout",
     "metadata traffic_direction"},
    {"envoy.extensions.filters.listener.original_dst.v3.OriginalDst", "", ""},
    {"envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector", "initial_read_buffer_size",
     ""},
    {ROUTE "DirectResponseAction", "status body", ""},
    {ROUTE "HeaderMatcher",
     "name exact_match safe_regex_match present_match prefix_match suffix_match contains_match "
     "string_match invert_match treat_missing_header_as_empty",
     ""},
    {ROUTE "QueryParameterMatcher", "name string_match present_match", ""},
    {ROUTE "RedirectAction",
     "scheme_redirect https_redirect host_redirect port_redirect path_redirect prefix_rewrite "
     "response_code strip_query",
     ""},
    {ROUTE "Route",
     "match route redirect direct_response request_headers_to_add request_headers_to_remove "
     "response_headers_to_add response_headers_to_remove",
     "name metadata"},
    {ROUTE "RouteAction",
     "cluster cluster_header weighted_clusters prefix_rewrite regex_rewrite "
     "host_rewrite_literal auto_host_rewrite timeout idle_timeout hash_policy "
     "cluster_not_found_response_code",
     ""},
    {ROUTE "RouteAction.HashPolicy", "header cookie connection_properties query_parameter terminal",
     ""},
    {ROUTE "RouteAction.HashPolicy.QueryParameter", "name", ""},
    {ROUTE "RouteAction.HashPolicy.ConnectionProperties", "source_ip", ""},
    {ROUTE "RouteAction.HashPolicy.Cookie", "name ttl path", ""},
    {ROUTE "RouteAction.HashPolicy.Header", "header_name", ""},
    {ROUTE "RouteConfiguration",
     "name virtual_hosts request_headers_to_add request_headers_to_remove "
     "response_headers_to_add response_headers_to_remove most_specific_header_mutations_wins "
     "ignore_port_in_host_matching max_direct_response_body_size_bytes",
     ""},
    {ROUTE "RouteMatch",
     "prefix path safe_regex path_separated_prefix case_sensitive headers query_parameters "
     "grpc",
     ""},
    {ROUTE "RouteMatch.GrpcRouteMatchOptions", "", ""},
    {ROUTE "VirtualHost",
     "name domains routes request_headers_to_add request_headers_to_remove "
     "response_headers_to_add response_headers_to_remove",
     ""},
    {ROUTE "WeightedCluster", "clusters total_weight", ""},
    {ROUTE "WeightedCluster.ClusterWeight",
     "name weight cluster_header host_rewrite_literal request_headers_to_add "
     "request_headers_to_remove response_headers_to_add response_headers_to_remove",
     ""},
    {"envoy.extensions.access_loggers.file.v3.FileAccessLog", "path log_format", ""},
    {"envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", "log_format", ""},
    {"envoy.extensions.filters.http.router.v3.Router", "", ""},
    {HCM "HttpConnectionManager",
     "codec_type stat_prefix route_config http_filters access_log http_protocol_options "
     "http2_protocol_options common_http_protocol_options max_request_headers_kb "
     "stream_idle_timeout request_timeout drain_timeout generate_request_id "
     "use_remote_address xff_num_trusted_hops upgrade_configs server_name rds",
     ""},
    {HCM "Rds", "config_source route_config_name", ""},
    {HCM "HttpConnectionManager.UpgradeConfig", "upgrade_type enabled", ""},
    {HCM "HttpFilter", "name typed_config is_optional", ""},
    {"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
     "stat_prefix cluster weighted_clusters idle_timeout access_log max_connect_attempts", ""},
    {"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster", "clusters", ""},
    {"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight",
     "name weight", ""},
    {TLS "CertificateValidationContext", "trusted_ca match_typed_subject_alt_names", ""},
    {TLS "CommonTlsContext", "tls_params tls_certificates validation_context alpn_protocols", ""},
    {TLS "DownstreamTlsContext", "common_tls_context require_client_certificate", ""},
    {TLS "SubjectAltNameMatcher", "san_type matcher", ""},
    {TLS "TlsCertificate", "certificate_chain private_key", ""},
    {TLS "TlsParameters",
     "tls_minimum_protocol_version tls_maximum_protocol_version "
     "cipher_suites",
     ""},
    {TLS "UpstreamTlsContext", "common_tls_context sni", ""},
    {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
     "explicit_http_config common_http_protocol_options", ""},
    {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
     "http_protocol_options http2_protocol_options", ""},
    {"envoy.type.matcher.v3.RegexMatchAndSubstitute", "pattern substitution", ""},
    {"envoy.type.matcher.v3.RegexMatcher", "regex", ""},
    {"envoy.type.matcher.v3.StringMatcher", "exact prefix suffix safe_regex contains ignore_case",
     ""},
};

static int cmp_rule(const void *key, const void *elem)
{
    return strcmp(key, ((const struct rule *)elem)->message);
}

static int cmp_rules(const void *a, const void *b)
{
    return strcmp(((const struct rule *)a)->message, ((const struct rule *)b)->message);
}

static pthread_once_t sorted = PTHREAD_ONCE_INIT;

static void sort_rules(void)
{
    qsort(rules, sizeof(rules) / sizeof(rules[0]), sizeof(rules[0]), cmp_rules);
}

/* Returns true if word is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n) {
        bool start = p == list || p[-1] == ' ';
        bool end = p[n] == '\0' || p[n] == ' ';
        if (start && end)
            return true;
    }
    return false;
}

enum pl_support pl_support_field(const char *message, const char *field)
{
    if (!strncmp(message, "google.protobuf.", 16))
        return PL_SUPPORT_YES;
    pthread_once(&sorted, sort_rules);
    const struct rule *r =
        bsearch(message, rules, sizeof(rules) / sizeof(rules[0]), sizeof(rules[0]), cmp_rule);
    if (!r)
        return PL_SUPPORT_NO;
    if (!strcmp(r->yes, "*") || has_word(r->yes, field))
        return PL_SUPPORT_YES;
    if (has_word(r->inert, field))
        return PL_SUPPORT_INERT;
    return PL_SUPPORT_NO;
}

/* Each list is one string: parenthesised so that compilers see the concatenation is meant. */
static const char *const ext_lists[] = {
    [PL_EXT_NETWORK_FILTER] = (HCM "HttpConnectionManager "
                                   "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"),
    [PL_EXT_HTTP_FILTER] = "envoy.extensions.filters.http.router.v3.Router",
    [PL_EXT_TRANSPORT_SOCKET] = (TLS "DownstreamTlsContext " TLS "UpstreamTlsContext"),
    [PL_EXT_ACCESS_LOG] = ("envoy.extensions.access_loggers.file.v3.FileAccessLog "
                           "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"),
    [PL_EXT_PROTOCOL_OPTIONS] = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    [PL_EXT_LISTENER_FILTER] = ("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector "
                                "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"),
};

bool pl_support_extension(enum pl_ext_point p, const char *type_url)
{
    if (!type_url)
        return false;
    const char *slash = strrchr(type_url, '/');
    const char *name = slash ? slash + 1 : type_url;
    return *name && has_word(ext_lists[p], name);
}

const char *pl_support_extension_list(enum pl_ext_point p)
{
    return ext_lists[p];
}

void pl_support_usable(const struct pl_support_ref *fields, size_t n, bool *usable)
{
    for (size_t i = 0; i < n; i++)
        usable[i] = pl_support_field(fields[i].msg, fields[i].field) == PL_SUPPORT_YES;
}
