/* Filter chains: compile from Listener YAML and Envoy's selection order. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "net/filter.h"
#include "pl_proto_all.h"

#define TCP                                                                                        \
    "filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {'@type': "                   \
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "    \
    "s, cluster: c}}]"

static struct pl_filter_chains *compile(const char *chains_yaml, int expect_rc, struct pl_err *err)
{
    char *text = pl_asprintf("name: l\naddress: {socket_address: {address: 127.0.0.1, "
                             "port_value: 1}}\n%s\n",
                             chains_yaml);
    ProtobufCMessage *m = NULL;
    int rc = pl_pbjson_load_text(text, strlen(text), "test.yaml",
                                 &envoy__config__listener__v3__listener__descriptor, NULL, &m, NULL,
                                 err);
    free(text);
    if (rc < 0)
        pl_err_print(err, stderr);
    cr_assert_eq(rc, 0);
    struct pl_filter_chains *fc = NULL;
    rc = pl_filter_chains_compile(m, "l", &fc, err);
    protobuf_c_message_free_unpacked(m, NULL);
    cr_assert_eq(rc, expect_rc);
    return fc;
}

static const char *pick(const struct pl_filter_chains *fc, uint32_t port, const char *sni,
                        const char *tp, const char *alpn)
{
    const char *a[1] = {alpn};
    const struct pl_filter_chain *c =
        pl_filter_chain_select(fc, port, sni, tp ? tp : "raw_buffer", a, alpn ? 1 : 0);
    return c ? c->name : "(none)";
}

Test(chain, compiles_terminal_filter_and_limits)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc = compile("per_connection_buffer_limit_bytes: 4096\n"
                                          "filter_chains: [{name: a, " TCP "}]\n",
                                          0, &err);
    cr_assert_eq(fc->n, 1);
    cr_assert_null(fc->dflt);
    cr_assert_str_eq(fc->v[0].name, "a");
    cr_assert_not_null(fc->v[0].vt);
    cr_assert_str_eq(fc->v[0].vt->name, "envoy.filters.network.tcp_proxy");
    cr_assert_not_null(fc->v[0].cfg);
    cr_assert_eq(fc->v[0].buffer_limit, 4096);
    cr_assert_null(fc->v[0].transport);
    cr_assert_str_eq(pick(fc, 80, NULL, NULL, NULL), "a");
    pl_filter_chains_free(fc);
}

Test(chain, destination_port_exact_beats_unset)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc =
        compile("filter_chains:\n"
                "- {name: any, " TCP "}\n"
                "- {name: p80, filter_chain_match: {destination_port: 80}, " TCP "}\n"
                "- {name: p81, filter_chain_match: {destination_port: 81}, " TCP "}\n",
                0, &err);
    cr_assert_str_eq(pick(fc, 80, NULL, NULL, NULL), "p80");
    cr_assert_str_eq(pick(fc, 81, NULL, NULL, NULL), "p81");
    cr_assert_str_eq(pick(fc, 82, NULL, NULL, NULL), "any");
    pl_filter_chains_free(fc);
}

Test(chain, no_match_uses_default_or_nothing)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc = compile(
        "filter_chains: [{name: p80, filter_chain_match: {destination_port: 80}, " TCP "}]\n", 0,
        &err);
    cr_assert_str_eq(pick(fc, 81, NULL, NULL, NULL), "(none)");
    pl_filter_chains_free(fc);
    fc = compile("filter_chains: [{name: p80, filter_chain_match: {destination_port: 80}, " TCP
                 "}]\n"
                 "default_filter_chain: {name: dflt, " TCP "}\n",
                 0, &err);
    cr_assert_str_eq(pick(fc, 81, NULL, NULL, NULL), "dflt");
    cr_assert_str_eq(pick(fc, 80, NULL, NULL, NULL), "p80");
    pl_filter_chains_free(fc);
}

Test(chain, port_level_does_not_fall_back)
{
    /* Envoy's match tree: once port 80 has chains, a connection to 80 never reaches the
     * port-less chains even if nothing below matches; it goes to the default chain. */
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc = compile(
        "filter_chains:\n"
        "- {name: any, " TCP "}\n"
        "- {name: p80tls, filter_chain_match: {destination_port: 80, transport_protocol: tls}, " TCP
        "}\n",
        0, &err);
    cr_assert_str_eq(pick(fc, 80, NULL, "tls", NULL), "p80tls");
    cr_assert_str_eq(pick(fc, 80, NULL, "raw_buffer", NULL), "(none)");
    cr_assert_str_eq(pick(fc, 81, NULL, "raw_buffer", NULL), "any");
    pl_filter_chains_free(fc);
}

Test(chain, server_names_exact_then_longest_wildcard_then_unset)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc = compile(
        "filter_chains:\n"
        "- {name: none, " TCP "}\n"
        "- {name: exact, filter_chain_match: {server_names: [a.example.com, x.org]}, " TCP "}\n"
        "- {name: wild, filter_chain_match: {server_names: ['*.example.com']}, " TCP "}\n"
        "- {name: wilder, filter_chain_match: {server_names: ['*.b.example.com']}, " TCP "}\n",
        0, &err);
    cr_assert_str_eq(pick(fc, 443, "a.example.com", NULL, NULL), "exact");
    cr_assert_str_eq(pick(fc, 443, "X.ORG", NULL, NULL), "exact");
    cr_assert_str_eq(pick(fc, 443, "c.example.com", NULL, NULL), "wild");
    cr_assert_str_eq(pick(fc, 443, "c.b.example.com", NULL, NULL), "wilder");
    cr_assert_str_eq(pick(fc, 443, "example.com", NULL, NULL), "none");
    cr_assert_str_eq(pick(fc, 443, "other.net", NULL, NULL), "none");
    cr_assert_str_eq(pick(fc, 443, NULL, NULL, NULL), "none");
    pl_filter_chains_free(fc);
}

Test(chain, transport_protocol_then_alpn)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc =
        compile("filter_chains:\n"
                "- {name: raw, " TCP "}\n"
                "- {name: tls, filter_chain_match: {transport_protocol: tls}, " TCP "}\n"
                "- {name: h2, filter_chain_match: {transport_protocol: tls, application_protocols: "
                "[h2]}, " TCP "}\n",
                0, &err);
    cr_assert_str_eq(pick(fc, 443, NULL, "raw_buffer", NULL), "raw");
    cr_assert_str_eq(pick(fc, 443, NULL, "tls", NULL), "tls");
    cr_assert_str_eq(pick(fc, 443, NULL, "tls", "h2"), "h2");
    cr_assert_str_eq(pick(fc, 443, NULL, "tls", "http/1.1"), "tls");
    pl_filter_chains_free(fc);
}

Test(chain, port_beats_server_name)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc =
        compile("filter_chains:\n"
                "- {name: sni, filter_chain_match: {server_names: [a.com]}, " TCP "}\n"
                "- {name: port, filter_chain_match: {destination_port: 443}, " TCP "}\n",
                0, &err);
    cr_assert_str_eq(pick(fc, 443, "a.com", NULL, NULL), "port");
    cr_assert_str_eq(pick(fc, 8443, "a.com", NULL, NULL), "sni");
    pl_filter_chains_free(fc);
}

Test(chain, duplicate_matches_are_rejected)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc =
        compile("filter_chains:\n"
                "- {name: one, filter_chain_match: {server_names: [a.com, b.com]}, " TCP "}\n"
                "- {name: two, filter_chain_match: {server_names: [b.com]}, " TCP "}\n",
                PL_EINVAL, &err);
    cr_assert_null(fc);
    char *msg = pl_err_join(&err);
    cr_assert(strstr(msg, "listener 'l'") && strstr(msg, "same matching rules"), "%s", msg);
    free(msg);
    pl_err_free(&err);
}

Test(chain, bad_wildcard_is_rejected)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc = compile(
        "filter_chains: [{name: w, filter_chain_match: {server_names: ['a.*.com']}, " TCP "}]\n",
        PL_EINVAL, &err);
    cr_assert_null(fc);
    pl_err_free(&err);
}

Test(chain, tcp_proxy_needs_a_cluster)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_filter_chains *fc = compile(
        "filter_chains: [{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: "
        "{'@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, "
        "stat_prefix: s}}]}]\n",
        PL_EINVAL, &err);
    cr_assert_null(fc);
    char *msg = pl_err_join(&err);
    cr_assert(strstr(msg, "cluster or weighted_clusters"), "%s", msg);
    free(msg);
    pl_err_free(&err);
}
