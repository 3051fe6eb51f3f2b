/* The support check over binary resources (what the JSON field hook does for text), and the
 * resource-set compile: RDS route configurations compiled by name, EDS endpoints. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/address.h"
#include "config/compile_resources.h"
#include "config/pbjson.h"
#include "xds/xds_internal.h"

#define HCM_T Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager

/* Decodes YAML text (with the JSON mapping) into a message of type d. */
static ProtobufCMessage *yaml(const ProtobufCMessageDescriptor *d, const char *text)
{
    ProtobufCMessage *m = NULL;
    struct pl_err err = PL_ERR_INIT;
    int rc = pl_pbjson_load_text(text, strlen(text), "test", d, NULL, &m, NULL, &err);
    if (rc < 0) {
        char *msg = pl_err_join(&err);
        cr_assert_fail("decode: %s", msg);
    }
    return m;
}

/* Re-decodes m from its wire encoding, as a resource from xDS arrives. */
static ProtobufCMessage *wire(ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    protobuf_c_message_free_unpacked(m, NULL);
    return c;
}

static const char *LISTENER =
    "name: l1\n"
    "address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n"
    "metadata: { filter_metadata: { a: { b: c } } }\n"
    "filter_chains:\n"
    "- filters:\n"
    "  - name: envoy.filters.network.http_connection_manager\n"
    "    typed_config:\n"
    "      '@type': type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
    "      stat_prefix: s\n"
    "      %s\n"
    "      rds: { route_config_name: r1, config_source: { ads: {} } }\n"
    "      http_filters:\n"
    "      - name: envoy.filters.http.router\n"
    "        typed_config: { '@type': type.googleapis.com/"
    "envoy.extensions.filters.http.router.v3.Router }\n";

static ProtobufCMessage *listener(const char *extra)
{
    char text[4096];
    snprintf(text, sizeof(text), LISTENER, extra);
    return wire(yaml(&envoy__config__listener__v3__listener__descriptor, text));
}

Test(xds_walk, supported_listener_passes_and_counts_inert_fields)
{
    ProtobufCMessage *l = listener("");
    struct pl_err err = PL_ERR_INIT;
    size_t inert = 0;
    cr_assert_eq(pl_xds_check_fields(l, NULL, &inert, &err), 0);
    cr_assert_eq(err.n, 0);
    cr_assert_eq(inert, 2); /* Listener.metadata, Metadata.filter_metadata */
    protobuf_c_message_free_unpacked(l, NULL);
}

Test(xds_walk, unsupported_field_inside_an_any_is_named_with_its_path)
{
    ProtobufCMessage *l = listener("via: proxy");
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_xds_check_fields(l, "Listener 'l1'", NULL, &err), PL_EINVAL);
    cr_assert_eq(err.n, 1);
    cr_assert_str_eq(err.v[0].path, "Listener 'l1'.filter_chains[0].filters[0].typed_config.via");
    cr_assert(strstr(err.v[0].msg, "field 'via' of "
                                   "envoy.extensions.filters.network.http_connection_manager.v3."
                                   "HttpConnectionManager is not supported"));
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(l, NULL);
}

Test(xds_walk, unsupported_cluster_field_and_unknown_field_numbers)
{
    ProtobufCMessage *c =
        wire(yaml(&envoy__config__cluster__v3__cluster__descriptor,
                  "name: c\n"
                  "circuit_breakers: { thresholds: [{ max_connections: 5 }] }\n"));
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_xds_check_fields(c, NULL, NULL, &err), PL_EINVAL);
    cr_assert_eq(err.n, 1);
    cr_assert_str_eq(err.v[0].path, "circuit_breakers");
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(c, NULL);
    /* a field our proto subset does not have arrives as an unknown field: never ignored */
    static const uint8_t bytes[] = {0x0a, 0x01, 'c', 0xa8, 0x1f, 0x01}; /* name, field 501 */
    c = protobuf_c_message_unpack(&envoy__config__cluster__v3__cluster__descriptor, NULL,
                                  sizeof(bytes), bytes);
    cr_assert_not_null(c);
    cr_assert_eq(pl_xds_check_fields(c, NULL, NULL, &err), PL_EINVAL);
    cr_assert(strstr(err.v[0].msg, "field number 501"), "%s", err.v[0].msg);
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(c, NULL);
    /* every unknown field number is named, each once (501 twice, then 502) */
    static const uint8_t two[] = {0x0a, 0x01, 'c',  0xa8, 0x1f, 0x01,
                                  0xa8, 0x1f, 0x02, 0xb0, 0x1f, 0x01};
    c = protobuf_c_message_unpack(&envoy__config__cluster__v3__cluster__descriptor, NULL,
                                  sizeof(two), two);
    cr_assert_not_null(c);
    cr_assert_eq(pl_xds_check_fields(c, NULL, NULL, &err), PL_EINVAL);
    cr_assert_eq(err.n, 2);
    cr_assert(strstr(err.v[0].msg, "field number 501"), "%s", err.v[0].msg);
    cr_assert(strstr(err.v[1].msg, "field number 502"), "%s", err.v[1].msg);
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(c, NULL);
    /* an upstream field proto/OMITTED.md lists is named (VirtualHost.matcher = 21, empty) */
    static const uint8_t vh[] = {0x0a, 0x01, 'v', 0xaa, 0x01, 0x00};
    ProtobufCMessage *v = protobuf_c_message_unpack(
        &envoy__config__route__v3__virtual_host__descriptor, NULL, sizeof(vh), vh);
    cr_assert_not_null(v);
    cr_assert_eq(pl_xds_check_fields(v, NULL, NULL, &err), PL_EINVAL);
    cr_assert_str_eq(err.v[0].path, "matcher");
    cr_assert(strstr(err.v[0].msg, "field 'matcher' (field number 21)"), "%s", err.v[0].msg);
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(v, NULL);
}

/* Route configuration r1: everything to cluster c. */
static ProtobufCMessage *route_config_r1(void)
{
    return yaml(&envoy__config__route__v3__route_configuration__descriptor,
                "name: r1\n"
                "virtual_hosts:\n"
                "- name: v\n"
                "  domains: ['*']\n"
                "  routes: [{ match: { prefix: / }, route: { cluster: c } }]\n");
}

/* EDS cluster c over ADS. */
static ProtobufCMessage *eds_cluster_c(void)
{
    return yaml(&envoy__config__cluster__v3__cluster__descriptor,
                "name: c\n"
                "type: EDS\n"
                "eds_cluster_config: { eds_config: { ads: {} } }\n");
}

Test(xds_compile, rds_names_and_route_tables)
{
    ProtobufCMessage *l = listener("");
    char **names;
    cr_assert_eq(pl_listener_rds_names((const Envoy__Config__Listener__V3__Listener *)l, &names),
                 1);
    cr_assert_str_eq(names[0], "r1");
    free(names[0]);
    free(names);
    ProtobufCMessage *rc = route_config_r1();
    ProtobufCMessage *cl = eds_cluster_c();
    ProtobufCMessage *cla = yaml(
        &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
        "cluster_name: c\n"
        "endpoints:\n"
        "- lb_endpoints:\n"
        "  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }\n"
        "  - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 80 } } }\n");
    struct pl_res lr = {.name = "l1", .msg = l, .version_info = "3"};
    struct pl_res rr = {.name = "r1", .msg = rc, .version_info = "4"};
    struct pl_res cr = {.name = "c", .msg = cl, .version_info = "5"};
    struct pl_res er = {.name = "c", .msg = cla, .version_info = "6"};
    const struct pl_res *lp = &lr, *rp = &rr, *cp = &cr, *erp = &er;
    struct pl_resource_set rs = {.listeners = &lp,
                                 .n_listeners = 1,
                                 .routes = &rp,
                                 .n_routes = 1,
                                 .clusters = &cp,
                                 .n_clusters = 1,
                                 .clas = &erp,
                                 .n_clas = 1,
                                 .lds_version = "3"};
    struct pl_snapshot *s = NULL;
    struct pl_err err = PL_ERR_INIT;
    int r = pl_config_compile_resources(&rs, &s, &err);
    if (r < 0)
        cr_assert_fail("compile: %s", pl_err_join(&err));
    cr_assert_eq(s->n_listeners, 1);
    cr_assert(s->listeners[0].dynamic);
    cr_assert_str_eq(s->listeners[0].version_info, "3");
    cr_assert_not_null(s->listeners[0].chains);
    /* the stored listener is the one received (rds); its route table is the snapshot's */
    cr_assert_eq(s->n_route_tables, 1);
    cr_assert_not_null(pl_snapshot_route_table(s, "r1"));
    const Envoy__Config__Listener__V3__Listener *stored =
        (const Envoy__Config__Listener__V3__Listener *)s->listeners[0].proto;
    const Google__Protobuf__Any *tc = stored->filter_chains[0]->filters[0]->typed_config;
    HCM_T *h =
        envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
            NULL, tc->value.len, tc->value.data);
    cr_assert_not_null(h->rds);
    protobuf_c_message_free_unpacked(&h->base, NULL);
    uint64_t hash = s->listeners[0].hash;
    cr_assert_eq(s->n_clusters, 1);
    cr_assert_eq(s->clusters[0]->n_endpoints, 2);
    char ep[64];
    pl_addr_format(&s->clusters[0]->endpoints[1].addr.sa, s->clusters[0]->endpoints[1].addrlen, ep,
                   sizeof(ep));
    cr_assert_str_eq(ep, "10.0.0.2:80");
    cr_assert_eq(s->n_routes, 1);
    cr_assert_str_eq(s->routes[0]->version_info, "4");
    cr_assert_str_eq(s->lds_version, "3");
    uint64_t chash = s->clusters[0]->hash;
    pl_snapshot_free(s);

    /* without its assignment the cluster has no endpoints and another hash; the listener's hash
     * does not depend on its routes (its sockets stay) */
    rs.n_clas = 0;
    rs.n_routes = 0;
    cr_assert_eq(pl_config_compile_resources(&rs, &s, &err), 0);
    cr_assert_eq(s->clusters[0]->n_endpoints, 0);
    cr_assert_neq(s->clusters[0]->hash, chash);
    cr_assert_eq(s->listeners[0].hash, hash);
    pl_snapshot_free(s);
    protobuf_c_message_free_unpacked(l, NULL);
    protobuf_c_message_free_unpacked(rc, NULL);
    protobuf_c_message_free_unpacked(cl, NULL);
    protobuf_c_message_free_unpacked(cla, NULL);
}

/* A build that takes the last one's cluster side shares it (clusters, assignments, index), and
 * the compile cache keeps those clusters for the build after it. */
Test(xds_compile, cluster_side_shared_by_a_route_update)
{
    ProtobufCMessage *cl = eds_cluster_c();
    ProtobufCMessage *cla = yaml(
        &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
        "cluster_name: c\n"
        "endpoints:\n"
        "- lb_endpoints:\n"
        "  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }\n");
    ProtobufCMessage *rc = route_config_r1();
    struct pl_res cr = {.name = "c", .msg = cl, .version_info = "5"};
    struct pl_res er = {.name = "c", .msg = cla, .version_info = "6"};
    struct pl_res rr = {.name = "r1", .msg = rc, .version_info = "4"};
    const struct pl_res *cp = &cr, *ep = &er, *rp = &rr;
    struct pl_compile_cache *cache = pl_compile_cache_new();
    struct pl_resource_set rs = {.clusters = &cp,
                                 .n_clusters = 1,
                                 .clas = &ep,
                                 .n_clas = 1,
                                 .cds_version = "5",
                                 .cache = cache};
    struct pl_snapshot *s1 = NULL, *s2 = NULL, *s3 = NULL;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_config_compile_resources(&rs, &s1, &err), 0);
    pl_compile_cache_commit(cache);
    cr_assert_not_null(s1->cluster_part);
    cr_assert_eq(s1->n_clusters, 1);
    cr_assert_eq(s1->n_endpoints, 1);

    /* routes change: the clusters are s1's, not compiled again nor copied */
    struct pl_resource_set routes = {
        .routes = &rp, .n_routes = 1, .cache = cache, .same_clusters = s1->cluster_part};
    cr_assert_eq(pl_config_compile_resources(&routes, &s2, &err), 0);
    pl_compile_cache_commit(cache);
    cr_assert_eq(s2->cluster_part, s1->cluster_part);
    cr_assert_eq(s2->clusters, s1->clusters);
    cr_assert_eq(s2->n_clusters, 1);
    cr_assert_eq(s2->endpoints, s1->endpoints);
    cr_assert_str_eq(s2->cds_version, "5");
    cr_assert_not_null(pl_snapshot_route_table(s2, "r1"));
    cr_assert_eq(pl_snapshot_cluster(s2, "c"), s1->clusters[0]);
    cr_assert_null(pl_snapshot_cluster(s2, "d"));
    const struct pl_shared *compiled = s1->clusters[0]->shared;
    pl_snapshot_free(s1); /* s2 still holds the part */
    cr_assert_eq(pl_snapshot_cluster(s2, "c")->n_hosts + pl_snapshot_cluster(s2, "c")->n_endpoints,
                 1);

    /* then a cluster side built again: the unchanged cluster comes from the cache */
    cr_assert_eq(pl_config_compile_resources(&rs, &s3, &err), 0);
    pl_compile_cache_commit(cache);
    cr_assert_neq(s3->cluster_part, s2->cluster_part);
    cr_assert_eq(s3->clusters[0]->shared, compiled);
    pl_snapshot_free(s2);
    pl_snapshot_free(s3);
    pl_compile_cache_free(cache);
    protobuf_c_message_free_unpacked(cl, NULL);
    protobuf_c_message_free_unpacked(cla, NULL);
    protobuf_c_message_free_unpacked(rc, NULL);
}

/* Fields the walk skips (supported scalars and data messages) change nothing: unsupported and
 * inert fields deep in an assignment are still each found, with their paths. */
Test(xds_walk, assignment_fields_deep_inside)
{
    ProtobufCMessage *m = wire(yaml(
        &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
        "cluster_name: c\n"
        "endpoints:\n"
        "- load_balancing_weight: 2\n"
        "  lb_endpoints:\n"
        "  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }\n"
        "    load_balancing_weight: 3\n"
        "    health_status: HEALTHY\n"
        "  - endpoint:\n"
        "      hostname: h\n"
        "      address: { socket_address: { address: 10.0.0.2, port_value: 80,"
        " resolver_name: r } }\n"
        "      health_check_config: { port_value: 81 }\n"
        "    metadata: { filter_metadata: { a: { b: c } } }\n"));
    struct pl_err err = PL_ERR_INIT;
    size_t inert = 0;
    cr_assert_eq(pl_xds_check_fields(m, "ClusterLoadAssignment 'c'", &inert, &err), PL_EINVAL);
    char *msg = pl_err_join(&err);
    cr_assert(strstr(msg, "ClusterLoadAssignment 'c'.endpoints[0].lb_endpoints[1].endpoint."
                          "address.socket_address.resolver_name"),
              "%s", msg);
    cr_assert(strstr(msg, "endpoints[0].lb_endpoints[1].endpoint.health_check_config"), "%s", msg);
    cr_assert_eq(err.n, 2, "%s", msg);
    cr_assert_eq(inert, 3, "hostname, metadata and its filter_metadata: %zu", inert);
    free(msg);
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(m, NULL);
}
