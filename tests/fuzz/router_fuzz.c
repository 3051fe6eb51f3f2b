/* Fuzzes the router. Input starting with 'Y': the rest is a RouteConfiguration in YAML, compiled
 * (and freed). Otherwise: lines "authority\npath\nname: value\n..." form a request that is matched
 * against a fixed table with every matcher kind and then run through every per-request action. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "core/log.h"
#include "router/router.h"

static const char *TABLE =
    "request_headers_to_add: [{header: {key: x-peer, value: '%DOWNSTREAM_REMOTE_ADDRESS%'}}]\n"
    "response_headers_to_add: [{header: {key: x-req, value: '%REQ(x-a?:path):10%'}}]\n"
    "virtual_hosts:\n"
    "- name: a\n"
    "  domains: [a.com, '*.a.com', 'a.*']\n"
    "  routes:\n"
    "  - match: {safe_regex: {regex: '/r/([a-z]+)/(.*)'}, headers: [{name: x-a, "
    "safe_regex_match: {regex: '(x+x+)+'}, invert_match: true}]}\n"
    "    route: {cluster: c, regex_rewrite: {pattern: {regex: '/r/([a-z]+)/(.*)'}, "
    "substitution: '/\\2/\\1'}, hash_policy: [{header: {header_name: x-a}}, {cookie: {name: "
    "s}}, {connection_properties: {source_ip: true}}]}\n"
    "  - match: {prefix: /q, query_parameters: [{name: k, string_match: {contains: V, "
    "ignore_case: true}}, {name: p}]}\n"
    "    route: {weighted_clusters: {clusters: [{name: w1, weight: 1}, {cluster_header: x-c, "
    "weight: 2}]}, prefix_rewrite: /}\n"
    "  - match: {path_separated_prefix: /api, case_sensitive: false, headers: [{name: "
    "':method', string_match: {suffix: T}}, {name: x-b, present_match: false}]}\n"
    "    redirect: {https_redirect: true, prefix_rewrite: /v2, strip_query: true}\n"
    "  - match: {prefix: /}\n"
    "    redirect: {regex_rewrite: {pattern: {regex: '[aeiou]'}, substitution: '_'}, "
    "port_redirect: 8080}\n"
    "- name: any\n"
    "  domains: ['*']\n"
    "  routes:\n"
    "  - {match: {prefix: /d, grpc: {}}, direct_response: {status: 200, body: {inline_string: "
    "ok}}}\n"
    "  - {match: {prefix: /}, route: {cluster_header: x-c, host_rewrite_literal: up}}\n";

static struct pl_route_table *table;

static void build_table(void)
{
    struct pl_err e = PL_ERR_INIT;
    ProtobufCMessage *m = NULL;
    if (pl_pbjson_load_text(TABLE, strlen(TABLE), "t",
                            &envoy__config__route__v3__route_configuration__descriptor, NULL, &m,
                            NULL, &e) != 0 ||
        pl_router_compile((void *)m, NULL, &table, &e) != 0) {
        pl_err_print(&e, stderr);
        abort();
    }
    protobuf_c_message_free_unpacked(m, NULL);
    pl_err_free(&e);
}

static void compile_yaml(const uint8_t *data, size_t size)
{
    struct pl_err e = PL_ERR_INIT;
    ProtobufCMessage *m = NULL;
    if (pl_pbjson_load_text((const char *)data, size, "fuzz",
                            &envoy__config__route__v3__route_configuration__descriptor, NULL, &m,
                            NULL, &e) == 0) {
        struct pl_route_table *t = NULL;
        pl_router_compile((void *)m, "rc", &t, &e);
        pl_route_table_free(t);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    pl_err_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_log_set_level(PL_LOG_OFF);
    if (size && data[0] == 'Y') {
        compile_yaml(data + 1, size - 1);
        return 0;
    }
    if (!table)
        build_table();
    struct pl_arena a = PL_ARENA_INIT;
    char *buf = pl_arena_strndup(&a, (const char *)data, size);
    struct pl_http_head h = {.method = "GET", .method_len = 3, .version = 11};
    int line = 0;
    for (char *p = buf, *end = buf + size; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        if (line == 0) {
            h.authority = p, h.authority_len = (uint32_t)n;
        } else if (line == 1) {
            h.path = p, h.path_len = (uint32_t)n;
        } else {
            char *colon = memchr(p, ':', n);
            if (colon && colon > p)
                pl_headers_add_copy(&h.headers, &a, p, (size_t)(colon - p), colon + 1,
                                    (size_t)(e - colon - 1));
        }
        p = e + 1;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct pl_route_ctx ctx = {.peer = (struct sockaddr *)&sin, .request = &h};
    struct pl_route_match m;
    uint64_t rnd = size ? data[size - 1] : 0, hash;
    if (pl_router_match(table, &h, &ctx, rnd, &m) == 0) {
        pl_router_hash(&m, &h, &ctx, &hash);
        if (m.info->kind == PL_ROUTE_REDIRECT) {
            const char *loc;
            size_t len;
            pl_router_redirect_location(&m, &h, &ctx, &a, &loc, &len);
        }
        struct pl_http_head resp = {.status = 200};
        pl_router_apply_response(&m, &resp, &ctx, &a);
        pl_router_apply_request(&m, &h, &ctx, &a);
    }
    pl_arena_free(&a);
    return 0;
}
