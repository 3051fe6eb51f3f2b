/* SotW protocol state: requests (ACK/NACK contents, node once per type and stream), subscription
 * sets, reconnect backoff. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "xds/xds_internal.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest req_t;

static req_t *request(struct pl_xds_sub *s, const Envoy__Config__Core__V3__Node *node,
                      const char *error)
{
    struct pl_xds_req_opts o = {.node = node, .error = error};
    size_t len;
    uint8_t *buf = pl_xds_sub_request(s, &o, &len);
    req_t *r = envoy__service__discovery__v3__discovery_request__unpack(NULL, len, buf);
    free(buf);
    cr_assert_not_null(r);
    return r;
}

static Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;

Test(xds_sotw, first_request_is_wildcard_with_node_and_no_version)
{
    node.id = "sidecar-1";
    node.cluster = "demo";
    struct pl_xds_sub s;
    pl_xds_sub_init(&s, PL_XDS_CDS);
    req_t *r = request(&s, &node, NULL);
    cr_assert_str_eq(r->type_url, "type.googleapis.com/envoy.config.cluster.v3.Cluster");
    cr_assert_str_eq(r->version_info, "");
    cr_assert_str_eq(r->response_nonce, "");
    cr_assert_eq(r->n_resource_names, 0);
    cr_assert_not_null(r->node);
    cr_assert_str_eq(r->node->id, "sidecar-1");
    cr_assert_str_eq(r->node->cluster, "demo");
    cr_assert_null(r->error_detail);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    /* the node goes on the first request of the type on a stream only */
    r = request(&s, &node, NULL);
    cr_assert_null(r->node);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    pl_xds_sub_stream_reset(&s);
    r = request(&s, &node, NULL);
    cr_assert_not_null(r->node);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    pl_xds_sub_free(&s);
}

Test(xds_sotw, ack_carries_new_version_and_nonce)
{
    struct pl_xds_sub s;
    pl_xds_sub_init(&s, PL_XDS_LDS);
    pl_xds_sub_accept(&s, "7", "n1");
    req_t *r = request(&s, NULL, NULL);
    cr_assert_str_eq(r->version_info, "7");
    cr_assert_str_eq(r->response_nonce, "n1");
    cr_assert_null(r->error_detail);
    cr_assert(s.received);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    pl_xds_sub_free(&s);
}

Test(xds_sotw, nack_keeps_last_accepted_version_with_new_nonce_and_error)
{
    struct pl_xds_sub s;
    pl_xds_sub_init(&s, PL_XDS_CDS);
    pl_xds_sub_accept(&s, "1", "n1");
    pl_xds_sub_reject(&s, "n2");
    req_t *r = request(&s, NULL, "Cluster 'a'.circuit_breakers: not supported");
    cr_assert_str_eq(r->version_info, "1");
    cr_assert_str_eq(r->response_nonce, "n2");
    cr_assert_not_null(r->error_detail);
    cr_assert_eq(r->error_detail->code, 3);
    cr_assert_str_eq(r->error_detail->message, "Cluster 'a'.circuit_breakers: not supported");
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    /* a new stream forgets the nonce and keeps the version (resubscribe with what is held) */
    pl_xds_sub_stream_reset(&s);
    r = request(&s, NULL, NULL);
    cr_assert_str_eq(r->version_info, "1");
    cr_assert_str_eq(r->response_nonce, "");
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    pl_xds_sub_free(&s);
}

Test(xds_sotw, names_are_sorted_unique_and_changes_detected)
{
    struct pl_xds_sub s;
    pl_xds_sub_init(&s, PL_XDS_EDS);
    cr_assert_not(s.wildcard);
    const char *a[] = {"b", "a", "b"};
    cr_assert(pl_xds_sub_set_names(&s, a, 3));
    cr_assert_eq(s.n_names, 2);
    cr_assert_str_eq(s.names[0], "a");
    cr_assert_str_eq(s.names[1], "b");
    const char *same[] = {"a", "b"};
    cr_assert_not(pl_xds_sub_set_names(&s, same, 2));
    cr_assert(pl_xds_sub_has(&s, "a"));
    cr_assert_not(pl_xds_sub_has(&s, "c"));
    req_t *r = request(&s, NULL, NULL);
    cr_assert_eq(r->n_resource_names, 2);
    cr_assert_str_eq(r->resource_names[0], "a");
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    const char *gone[] = {"a"};
    cr_assert(pl_xds_sub_set_names(&s, gone, 1));
    cr_assert(pl_xds_sub_set_names(&s, NULL, 0)); /* unsubscribe all: an empty list */
    r = request(&s, NULL, NULL);
    cr_assert_eq(r->n_resource_names, 0);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    pl_xds_sub_free(&s);
}

Test(xds_sotw, type_urls)
{
    for (int t = 0; t < PL_XDS_NTYPES; t++) {
        cr_assert_eq(pl_xds_type_from_url(pl_xds_type_url(t)), t);
        const char *u = pl_xds_type_url(t);
        cr_assert_str_eq(strrchr(u, '/') + 1, pl_xds_type_desc(t)->name);
    }
    cr_assert_eq(pl_xds_type_from_url("type.googleapis.com/x.Y"), -1);
}

Test(xds_sotw, backoff_is_jittered_exponential_and_capped)
{
    /* Envoy: base 500 ms, max 30 s; a uniform value below min(base * 2^n, max) */
    cr_assert_eq(pl_xds_backoff_ms(0, 500, 30000, 499), 499);
    cr_assert_eq(pl_xds_backoff_ms(0, 500, 30000, 500), 0);
    cr_assert_eq(pl_xds_backoff_ms(1, 500, 30000, 999), 999);
    cr_assert_eq(pl_xds_backoff_ms(3, 500, 30000, 3999), 3999);
    for (unsigned a = 0; a < 64; a++)
        for (uint64_t rnd = 1; rnd < (1ULL << 62); rnd = rnd * 7 + 3)
            cr_assert_lt(pl_xds_backoff_ms(a, 500, 30000, rnd), 30000);
    cr_assert_eq(pl_xds_backoff_ms(40, 500, 30000, 29999), 29999);
    cr_assert_eq(pl_xds_backoff_ms(40, 500, 30000, 30000), 0);
}
