/* Header mutations: level order, append actions, removals, %VARIABLE% values. */
#include <arpa/inet.h>

#include "rt_util.h"

TestSuite(router_headers, .fini = pl_router_thread_cleanup);

/* Returns every value of name in h joined with "|", in order. */
static const char *all(struct rt_req *r, const struct pl_headers *h, const char *name)
{
    char *out = pl_arena_alloc(&r->a, 1024);
    out[0] = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == strlen(name) && !memcmp(h->v[i].name, name, h->v[i].name_len)) {
            if (out[0])
                strcat(out, "|");
            strncat(out, h->v[i].value, h->v[i].value_len);
        }
    return out;
}

static const char *LEVELS =
    "%s"
    "request_headers_to_add:\n"
    "- {header: {key: x-level, value: config}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
    "- {header: {key: x-list, value: config}}\n"
    "response_headers_to_add:\n"
    "- {header: {key: x-level, value: config}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
    "response_headers_to_remove: [server]\n"
    "virtual_hosts:\n"
    "- name: vh\n"
    "  domains: ['*']\n"
    "  request_headers_to_add:\n"
    "  - {header: {key: x-level, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
    "  - {header: {key: x-list, value: vhost}}\n"
    "  routes:\n"
    "  - match: {prefix: /w}\n"
    "    route:\n"
    "      weighted_clusters:\n"
    "        clusters:\n"
    "        - name: w\n"
    "          weight: 1\n"
    "          request_headers_to_add:\n"
    "          - {header: {key: x-list, value: cluster}}\n"
    "          - {header: {key: x-level, value: cluster}, append: false}\n"
    "          response_headers_to_add: [{header: {key: x-resp-wc, value: '1'}}]\n"
    "    request_headers_to_add:\n"
    "    - {header: {key: x-level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
    "    - {header: {key: x-list, value: route}}\n"
    "  - match: {prefix: /}\n"
    "    route: {cluster: c}\n"
    "    request_headers_to_add:\n"
    "    - {header: {key: x-level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
    "    - {header: {key: x-list, value: route}}\n"
    "    request_headers_to_remove: [x-drop]\n"
    "    response_headers_to_add:\n"
    "    - {header: {key: x-level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n";

static void apply(const struct pl_route_table *t, struct rt_req *r)
{
    struct pl_route_ctx ctx = {.request = &r->h};
    struct pl_route_match m;
    cr_assert_eq(pl_router_match(t, &r->h, &ctx, 0, &m), 0);
    pl_router_apply_request(&m, &r->h, &ctx, &r->a);
}

Test(router_headers, level_order_default)
{
    char *yaml = pl_asprintf(LEVELS, "");
    struct pl_route_table *t = rt_compile(yaml);
    free(yaml);
    struct rt_req r;
    rt_req_init(&r, "GET", "h", "/", "x-drop", "1", "x-list", "client", NULL);
    apply(t, &r);
    /* route, then virtual host, then configuration: the least specific write wins */
    cr_assert_str_eq(all(&r, &r.h.headers, "x-level"), "config");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-list"), "client|route|vhost|config");
    cr_assert_eq(rt_count(&r.h.headers, "x-drop"), 0);
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/w", NULL);
    apply(t, &r);
    cr_assert_str_eq(all(&r, &r.h.headers, "x-list"), "cluster|route|vhost|config");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-level"), "config");
    rt_req_free(&r);
    pl_route_table_free(t);
}

Test(router_headers, level_order_most_specific_wins)
{
    char *yaml = pl_asprintf(LEVELS, "most_specific_header_mutations_wins: true\n");
    struct pl_route_table *t = rt_compile(yaml);
    free(yaml);
    struct rt_req r;
    rt_req_init(&r, "GET", "h", "/", NULL);
    apply(t, &r);
    cr_assert_str_eq(all(&r, &r.h.headers, "x-level"), "route");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-list"), "config|vhost|route");
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/w", NULL);
    apply(t, &r);
    /* the weighted cluster's headers come first either way, so its overwrite loses */
    cr_assert_str_eq(all(&r, &r.h.headers, "x-level"), "route");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-list"), "cluster|config|vhost|route");
    rt_req_free(&r);
    pl_route_table_free(t);
}

Test(router_headers, response_side)
{
    char *yaml = pl_asprintf(LEVELS, "");
    struct pl_route_table *t = rt_compile(yaml);
    free(yaml);
    struct rt_req r, resp;
    rt_req_init(&r, "GET", "h", "/w", NULL);
    rt_req_init(&resp, NULL, NULL, NULL, "server", "upstream", "x-level", "up", NULL);
    struct pl_route_ctx ctx = {.request = &r.h};
    struct pl_route_match m;
    cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);
    pl_router_apply_response(&m, &resp.h, &ctx, &resp.a);
    cr_assert_eq(rt_count(&resp.h.headers, "server"), 0);
    cr_assert_str_eq(all(&resp, &resp.h.headers, "x-level"), "config");
    cr_assert_str_eq(all(&resp, &resp.h.headers, "x-resp-wc"), "1");
    rt_req_free(&resp);
    rt_req_free(&r);
    pl_route_table_free(t);
}

Test(router_headers, append_actions)
{
    struct pl_route_table *t = rt_compile(
        "virtual_hosts: [{name: vh, domains: ['*'], routes: [{match: {prefix: /}, route: "
        "{cluster: c},\n"
        "  request_headers_to_remove: [x-removed],\n"
        "  request_headers_to_add: [\n"
        "  {header: {key: X-Append, value: new}},\n"
        "  {header: {key: x-append-legacy, value: new}, append: true},\n"
        "  {header: {key: x-set-legacy, value: new}, append: false},\n"
        "  {header: {key: x-absent, value: new}, append_action: ADD_IF_ABSENT},\n"
        "  {header: {key: x-absent2, value: new}, append_action: ADD_IF_ABSENT},\n"
        "  {header: {key: x-over, value: new}, append_action: OVERWRITE_IF_EXISTS_OR_ADD},\n"
        "  {header: {key: x-over2, value: new}, append_action: OVERWRITE_IF_EXISTS_OR_ADD},\n"
        "  {header: {key: x-if, value: new}, append_action: OVERWRITE_IF_EXISTS},\n"
        "  {header: {key: x-if2, value: new}, append_action: OVERWRITE_IF_EXISTS},\n"
        "  {header: {key: x-empty, value: ''}},\n"
        "  {header: {key: x-keep, value: ''}, keep_empty_value: true},\n"
        "  {header: {key: x-removed, value: readded}},\n"
        "  {header: {key: x-twice, value: a}, append_action: OVERWRITE_IF_EXISTS_OR_ADD},\n"
        "  {header: {key: x-twice, value: b}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]}]}]\n");
    struct rt_req r;
    rt_req_init(&r, "GET", "h", "/", "x-append", "old", "x-append-legacy", "old", "x-set-legacy",
                "old", "x-set-legacy", "old2", "x-absent", "old", "x-over", "old", "x-over", "old2",
                "x-if", "old", "x-removed", "gone", NULL);
    apply(t, &r);
    cr_assert_str_eq(all(&r, &r.h.headers, "x-append"), "old|new");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-append-legacy"), "old|new");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-set-legacy"), "new");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-absent"), "old");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-absent2"), "new");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-over"), "new");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-over2"), "new");
    cr_assert_str_eq(all(&r, &r.h.headers, "x-if"), "new");
    cr_assert_eq(rt_count(&r.h.headers, "x-if2"), 0);
    cr_assert_eq(rt_count(&r.h.headers, "x-empty"), 0);
    cr_assert_eq(rt_count(&r.h.headers, "x-keep"), 1);
    cr_assert_str_eq(all(&r, &r.h.headers, "x-removed"), "readded"); /* remove, then add */
    cr_assert_str_eq(all(&r, &r.h.headers, "x-twice"), "b");
    rt_req_free(&r);
    pl_route_table_free(t);
}

Test(router_headers, variables)
{
    struct pl_route_table *t = rt_compile(
        "virtual_hosts: [{name: vh, domains: ['*'], routes: [{match: {prefix: /}, route: "
        "{cluster: c},\n"
        "  request_headers_to_add: [\n"
        "  {header: {key: x-peer, value: '%DOWNSTREAM_REMOTE_ADDRESS%'}},\n"
        "  {header: {key: x-peer-ip, value: 'ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%;'}},\n"
        "  {header: {key: x-peer-port, value: '%DOWNSTREAM_REMOTE_PORT%'}},\n"
        "  {header: {key: x-local, value: '%DOWNSTREAM_LOCAL_ADDRESS%'}},\n"
        "  {header: {key: x-local-ip, value: '%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%'}},\n"
        "  {header: {key: x-up, value: '%UPSTREAM_HOST%'}},\n"
        "  {header: {key: x-proto, value: '%PROTOCOL%'}},\n"
        "  {header: {key: x-sni, value: '%REQUESTED_SERVER_NAME%'}},\n"
        "  {header: {key: x-req, value: '%REQ(x-in)%/%REQ(:path)%/%REQ(x-no?x-in)%'}},\n"
        "  {header: {key: x-trunc, value: '%REQ(x-in):2%'}},\n"
        "  {header: {key: x-pct, value: '100%% %%DOWNSTREAM_REMOTE_PORT%%'}},\n"
        "  {header: {key: x-host, value: '%HOSTNAME%'}}],\n"
        "  response_headers_to_add: [{header: {key: x-echo, value: '%REQ(x-in)% via "
        "%UPSTREAM_HOST%'}}]}]}]\n");
    struct sockaddr_in6 peer = {.sin6_family = AF_INET6, .sin6_port = htons(4321)};
    inet_pton(AF_INET6, "2001:db8::1", &peer.sin6_addr);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(15006)};
    inet_pton(AF_INET, "10.0.0.2", &local.sin_addr);
    struct rt_req r;
    rt_req_init(&r, "GET", "h", "/p?q", "x-in", "val", NULL);
    struct pl_route_ctx ctx = {.request = &r.h,
                               .peer = (struct sockaddr *)&peer,
                               .local = (struct sockaddr *)&local,
                               .sni = "sni.example"};
    struct pl_route_match m;
    cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);
    pl_router_apply_request(&m, &r.h, &ctx, &r.a);
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-peer"), "[2001:db8::1]:4321");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-peer-ip"), "ip=2001:db8::1;");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-peer-port"), "4321");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-local"), "10.0.0.2:15006");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-local-ip"), "10.0.0.2");
    cr_assert_null(rt_hdr(&r, &r.h.headers, "x-up")); /* empty: not added */
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-proto"), "HTTP/1.1");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-sni"), "sni.example");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-req"), "val//p?q/val");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-trunc"), "va");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-pct"), "100% %DOWNSTREAM_REMOTE_PORT%");
    cr_assert_not_null(rt_hdr(&r, &r.h.headers, "x-host"));
    struct rt_req resp;
    rt_req_init(&resp, NULL, NULL, NULL, NULL);
    ctx.upstream_host = "10.9.9.9:80";
    pl_router_apply_response(&m, &resp.h, &ctx, &resp.a);
    cr_assert_str_eq(rt_hdr(&resp, &resp.h.headers, "x-echo"), "val via 10.9.9.9:80");
    rt_req_free(&resp);
    rt_req_free(&r);
    pl_route_table_free(t);
}
