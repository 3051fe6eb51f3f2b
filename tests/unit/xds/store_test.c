/* ACK/NACK decisions (pl_xds_store_check: what a response must be to be accepted, and how the
 * NACK names resource and field) and the RDS/EDS names the accepted resources need. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "xds/client_internal.h"

#include "store_fixture.h"

typedef Envoy__Service__Discovery__V3__DiscoveryResponse resp_t;

/* A response of type t holding the given resources (YAML), each packed into an Any. */
static resp_t *response(enum pl_xds_type t, const char *const *res, size_t n)
{
    resp_t *r = calloc(1, sizeof(*r));
    envoy__service__discovery__v3__discovery_response__init(r);
    r->type_url = strdup(pl_xds_type_url(t));
    r->version_info = strdup("7");
    r->nonce = strdup("n");
    r->resources = calloc(n + 1, sizeof(*r->resources));
    for (size_t i = 0; i < n; i++) {
        ProtobufCMessage *m = fixture_yaml(pl_xds_type_desc(t), res[i]);
        Google__Protobuf__Any *a = calloc(1, sizeof(*a));
        google__protobuf__any__init(a);
        a->type_url = strdup(r->type_url);
        a->value.len = protobuf_c_message_get_packed_size(m);
        a->value.data = malloc(a->value.len + 1);
        protobuf_c_message_pack(m, a->value.data);
        protobuf_c_message_free_unpacked(m, NULL);
        r->resources[r->n_resources++] = a;
    }
    return r;
}

static void setup(void)
{
    fixture_setup("static_resources:\n"
                  "  clusters:\n"
                  "  - name: static_c\n"
                  "    type: STATIC\n"
                  "    load_assignment: { cluster_name: static_c }\n"
                  "  - name: static_eds\n"
                  "    type: EDS\n"
                  "    eds_cluster_config: { eds_config: { ads: {} }, service_name: svc }\n");
}

static void teardown(void)
{
    fixture_teardown();
}

/* Makes the valid resources of u accepted (what pl_xds_store_update does, without a build). */
static void accept_all(enum pl_xds_type t, const struct pl_xds_update *u)
{
    for (size_t i = 0; i < u->n; i++) {
        struct pl_xds_res *e = calloc(1, sizeof(*e));
        e->rec = pl_xds_rec_ref(u->recs[i]);
        struct pl_xds_res *old = pl_nametab_put(&x.acc[t].tab, e);
        if (old) {
            pl_xds_rec_unref(old->rec);
            free(old);
        }
    }
}

/* Checks a response; returns the joined errors ("" when all valid) and the valid count. With
 * keep, the valid resources become accepted. */
static char *check_keep(enum pl_xds_type t, const char *const *res, size_t n, size_t *valid,
                        bool keep)
{
    resp_t *r = response(t, res, n);
    struct pl_xds_update u;
    struct pl_err err = PL_ERR_INIT;
    int rc = pl_xds_store_check(&x, t, r, &u, NULL, &err);
    char *msg = pl_err_join(&err);
    cr_assert_eq(rc == 0, err.n == 0, "rc %d with %zu errors: %s", rc, err.n, msg);
    *valid = u.unusable ? 0 : u.n;
    for (size_t i = 0; i < u.n; i++)
        cr_assert_str_eq(u.recs[i]->res.version_info, "7");
    if (keep)
        accept_all(t, &u);
    pl_xds_update_free(&u);
    pl_err_free(&err);
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
    return msg;
}

static char *check(enum pl_xds_type t, const char *const *res, size_t n, size_t *valid)
{
    return check_keep(t, res, n, valid, false);
}

#define EDS_CLUSTER(name)                                                                          \
    "name: " name "\ntype: EDS\neds_cluster_config: { eds_config: { ads: {} } }\n"

TestSuite(xds_store, .init = setup, .fini = teardown);

Test(xds_store, valid_clusters_are_accepted)
{
    const char *res[] = {EDS_CLUSTER("a"), "name: b\ntype: STATIC\n"};
    size_t n;
    char *msg = check(PL_XDS_CDS, res, 2, &n);
    cr_assert_str_eq(msg, "");
    cr_assert_eq(n, 2);
    free(msg);
}

Test(xds_store, nack_names_resource_and_field)
{
    const char *res[] = {EDS_CLUSTER("a"),
                         "name: b\ncircuit_breakers: { thresholds: [{ max_connections: 1 }] }\n"};
    size_t n;
    char *msg = check(PL_XDS_CDS, res, 2, &n);
    cr_assert(strstr(msg, "Cluster 'b'.circuit_breakers: field 'circuit_breakers' of "
                          "envoy.config.cluster.v3.Cluster is not supported by pillion"),
              "%s", msg);
    cr_assert_not(strstr(msg, "Cluster 'a'"), "%s", msg);
    cr_assert_eq(n, 1); /* a is valid and applies; b keeps its previous version */
    free(msg);
}

Test(xds_store, eds_over_a_non_ads_source_is_refused)
{
    const char *res[] = {"name: a\ntype: EDS\neds_cluster_config: { eds_config: { path: /x } }\n"};
    size_t n;
    char *msg = check(PL_XDS_CDS, res, 1, &n);
    cr_assert(strstr(msg, "Cluster 'a'"), "%s", msg);
    cr_assert(strstr(msg, "only config_source `ads: {}` is supported"), "%s", msg);
    free(msg);
}

Test(xds_store, duplicate_names_in_one_response)
{
    const char *res[] = {EDS_CLUSTER("a"), EDS_CLUSTER("a"), EDS_CLUSTER("a")};
    size_t n;
    char *msg = check(PL_XDS_CDS, res, 3, &n);
    cr_assert(strstr(msg, "Cluster 'a': duplicate Cluster name 'a' in one response"), "%s", msg);
    cr_assert_eq(n, 1); /* the first of a name counts, as in Envoy */
    free(msg);
}

Test(xds_store, wrong_resource_type_in_a_response)
{
    resp_t *r = response(PL_XDS_CDS, (const char *const[]){"name: a\n"}, 1);
    free(r->resources[0]->type_url);
    r->resources[0]->type_url = strdup(pl_xds_type_url(PL_XDS_LDS));
    struct pl_xds_update u;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_xds_store_check(&x, PL_XDS_CDS, r, &u, NULL, &err), PL_EINVAL);
    cr_assert(u.unusable); /* another type: nothing of the response applies */
    pl_xds_update_free(&u);
    char *msg = pl_err_join(&err);
    cr_assert(strstr(msg, "resources[0]: type 'type.googleapis.com/"
                          "envoy.config.listener.v3.Listener' in a response of type"),
              "%s", msg);
    free(msg);
    pl_err_free(&err);
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
}

Test(xds_store, endpoints_must_be_ip_addresses)
{
    const char *res[] = {"cluster_name: a\n"
                         "endpoints:\n"
                         "- lb_endpoints:\n"
                         "  - endpoint: { address: { socket_address: { address: host.example, "
                         "port_value: 80 } } }\n"};
    size_t n;
    char *msg = check(PL_XDS_EDS, res, 1, &n);
    cr_assert(strstr(msg, "ClusterLoadAssignment 'a'"), "%s", msg);
    free(msg);
    const char *ok[] = {
        "cluster_name: a\n"
        "endpoints:\n"
        "- lb_endpoints:\n"
        "  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }\n"};
    msg = check(PL_XDS_EDS, ok, 1, &n);
    cr_assert_str_eq(msg, "");
    free(msg);
}

static const char *listener_to(const char *cluster)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "name: l\n"
             "address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n"
             "filter_chains:\n"
             "- filters:\n"
             "  - name: tcp\n"
             "    typed_config:\n"
             "      '@type': type.googleapis.com/"
             "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
             "      stat_prefix: t\n"
             "      cluster: %s\n",
             cluster);
    return buf;
}

Test(xds_store, listeners_may_name_static_and_accepted_clusters_only)
{
    size_t n;
    const char *res[] = {listener_to("static_c")};
    char *msg = check(PL_XDS_LDS, res, 1, &n);
    cr_assert_str_eq(msg, "");
    free(msg);
    res[0] = listener_to("nowhere");
    msg = check(PL_XDS_LDS, res, 1, &n);
    cr_assert(strstr(msg, "Listener 'l'") && strstr(msg, "unknown cluster 'nowhere'"), "%s", msg);
    free(msg);
}

Test(xds_store, route_configurations_need_a_name_and_valid_hosts)
{
    size_t n;
    const char *res[] = {"virtual_hosts: [{ name: v, domains: ['*'] }]\n",
                         "name: r\nvirtual_hosts: [{ name: v, domains: [] }]\n"};
    char *msg = check(PL_XDS_RDS, res, 2, &n);
    cr_assert(strstr(msg, "a route configuration needs a name"), "%s", msg);
    cr_assert(strstr(msg, "RouteConfiguration 'r'.domains: a virtual host needs at least one"),
              "%s", msg);
    free(msg);
}

Test(xds_store, needed_names_follow_accepted_and_static_resources)
{
    char **names;
    cr_assert_eq(pl_xds_store_needed(&x, PL_XDS_EDS, &names), 1);
    cr_assert_str_eq(names[0], "svc"); /* eds_cluster_config.service_name */
    free(names[0]);
    free(names);
    const char *res[] = {EDS_CLUSTER("a")};
    size_t n;
    free(check_keep(PL_XDS_CDS, res, 1, &n, true));
    cr_assert_eq(pl_xds_store_needed(&x, PL_XDS_EDS, &names), 2);
    cr_assert_str_eq(names[0], "svc");
    cr_assert_str_eq(names[1], "a");
    for (int i = 0; i < 2; i++)
        free(names[i]);
    free(names);
    cr_assert_eq(pl_xds_store_needed(&x, PL_XDS_RDS, &names), 0);
    free(names);
}

/* Subscribes to exactly the EDS names the accepted resources need now. */
static void subscribe_needed(void)
{
    char **names;
    size_t n = pl_xds_store_needed(&x, PL_XDS_EDS, &names);
    pl_xds_sub_set_names(&x.sub[PL_XDS_EDS], (const char *const *)names, n);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

Test(xds_store, needed_names_are_compared_with_the_subscription_in_place)
{
    cr_assert_not(pl_xds_store_needed_same(&x, PL_XDS_EDS)); /* "svc" is not subscribed yet */
    subscribe_needed();
    cr_assert(pl_xds_store_needed_same(&x, PL_XDS_EDS));
    /* two clusters of one service: the same one name */
    const char *res[] = {EDS_CLUSTER("a"),
                         "name: b\ntype: EDS\neds_cluster_config: { eds_config: { ads: {} }, "
                         "service_name: a }\n"};
    size_t n;
    free(check_keep(PL_XDS_CDS, res, 2, &n, true));
    cr_assert_not(pl_xds_store_needed_same(&x, PL_XDS_EDS)); /* a needed, not subscribed */
    subscribe_needed();
    cr_assert_eq(x.sub[PL_XDS_EDS].n_names, 2);
    cr_assert(pl_xds_store_needed_same(&x, PL_XDS_EDS));
    /* a name subscribed but no longer needed */
    const char *both[] = {"a", "svc", "svc2"};
    pl_xds_sub_set_names(&x.sub[PL_XDS_EDS], both, 3);
    cr_assert_not(pl_xds_store_needed_same(&x, PL_XDS_EDS));
    cr_assert(pl_xds_store_needed_same(&x, PL_XDS_RDS)); /* none needed, none subscribed */
}

Test(xds_store, unchanged_bytes_are_taken_as_accepted_without_a_check)
{
    const char *res[] = {EDS_CLUSTER("a"), EDS_CLUSTER("b")};
    size_t n;
    free(check_keep(PL_XDS_CDS, res, 2, &n, true));
    const struct pl_xds_rec *a = pl_xds_resmap_rec(&x.acc[PL_XDS_CDS], "a");
    cr_assert_not_null(a);
    /* the same bytes again (with a changed b): a is the accepted record itself */
    const char *again[] = {EDS_CLUSTER("a"), "name: b\ntype: STATIC\n"};
    resp_t *r = response(PL_XDS_CDS, again, 2);
    struct pl_xds_update u;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_xds_store_check(&x, PL_XDS_CDS, r, &u, NULL, &err), 0);
    cr_assert_eq(u.n, 2);
    cr_assert_eq(u.recs[0], a);
    cr_assert_neq(u.recs[1], pl_xds_resmap_rec(&x.acc[PL_XDS_CDS], "b"));
    cr_assert_str_eq(u.recs[1]->res.name, "b");
    pl_xds_update_free(&u);
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
}

Test(xds_store, delta_versions_are_per_resource)
{
    resp_t *r = response(PL_XDS_CDS, (const char *const[]){EDS_CLUSTER("a"), EDS_CLUSTER("b")}, 2);
    const char *versions[] = {"va", "vb"};
    struct pl_xds_update u;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_xds_store_check(&x, PL_XDS_CDS, r, &u, versions, &err), 0);
    cr_assert_str_eq(u.recs[0]->res.version_info, "va");
    cr_assert_str_eq(u.recs[1]->res.version_info, "vb");
    cr_assert_not_null(pl_nametab_get(&u.names, "b"));
    pl_xds_update_free(&u);
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
}
