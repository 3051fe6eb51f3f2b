/* Route actions: clusters, weighted picks, rewrites, timeouts, direct responses, redirects. */
#include <arpa/inet.h>
#include <stdio.h>
#include <unistd.h>

#include "router/router_internal.h"
#include "rt_util.h"

#define pl_router_xxh64_for_test(s, n) pl_router_xxh64((s), (n), 0)

TestSuite(router_action, .fini = pl_router_thread_cleanup);

static int match(const struct pl_route_table *t, struct rt_req *r, uint64_t rnd,
                 struct pl_route_match *m)
{
    struct pl_route_ctx ctx = {.request = &r->h};
    return pl_router_match(t, &r->h, &ctx, rnd, m);
}

static bool cluster_is(const struct pl_route_match *m, const char *want)
{
    return m->cluster_len == strlen(want) && !memcmp(m->cluster, want, m->cluster_len);
}

Test(router_action, cluster_timeouts_host_flags)
{
    struct pl_route_table *t = rt_compile(
        "virtual_hosts: [{name: vh, domains: ['*'], routes: [\n"
        "  {name: a, match: {prefix: /a}, route: {cluster: ca, auto_host_rewrite: true}},\n"
        "  {name: b, match: {prefix: /b}, route: {cluster: cb, timeout: 0s, idle_timeout: 2.5s}},\n"
        "  {name: c, match: {prefix: /c}, route: {cluster: cc, timeout: 1.5s, "
        "cluster_not_found_response_code: NOT_FOUND}}]}]\n");
    struct rt_req r;
    struct pl_route_match m;
    rt_req_init(&r, "GET", "h", "/a", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert_eq(m.info->kind, PL_ROUTE_CLUSTER);
    cr_assert(cluster_is(&m, "ca"));
    cr_assert_str_eq(m.info->vhost_name, "vh");
    cr_assert_eq(m.info->timeout_ms, 15000); /* Envoy's default */
    cr_assert_eq(m.info->idle_timeout_ms, -1);
    cr_assert(m.info->auto_host_rewrite);
    cr_assert_eq(m.info->cluster_not_found_status, 503);
    cr_assert_null(m.wc);
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/b", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert_eq(m.info->timeout_ms, 0);
    cr_assert_eq(m.info->idle_timeout_ms, 2500);
    cr_assert_not(m.info->auto_host_rewrite);
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/c", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert_eq(m.info->timeout_ms, 1500);
    cr_assert_eq(m.info->cluster_not_found_status, 404);
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/zzz", NULL);
    cr_assert_eq(match(t, &r, 0, &m), PL_ENOENT);
    cr_assert_null(m.route);
    rt_req_free(&r);
    pl_route_table_free(t);
}

Test(router_action, cluster_header)
{
    struct pl_route_table *t =
        rt_compile("virtual_hosts: [{name: vh, domains: ['*'], routes: [\n"
                   "  {match: {prefix: /}, route: {cluster_header: X-Cluster}}]}]\n");
    struct rt_req r;
    struct pl_route_match m;
    rt_req_init(&r, "GET", "h", "/", "x-cluster", "backend", "x-cluster", "other", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert(cluster_is(&m, "backend")); /* first value only */
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert_eq(m.cluster_len, 0); /* caller answers cluster_not_found_status */
    cr_assert_eq(m.info->cluster_not_found_status, 503);
    rt_req_free(&r);
    pl_route_table_free(t);
}

Test(router_action, weighted_distribution)
{
    struct pl_route_table *t =
        rt_compile("virtual_hosts: [{name: vh, domains: ['*'], routes: [\n"
                   "  {match: {prefix: /}, route: {weighted_clusters: {clusters: [\n"
                   "    {name: a, weight: 10}, {name: zero, weight: 0}, {name: b, weight: 30},\n"
                   "    {cluster_header: x-c, weight: 60}]}}}]}]\n");
    struct rt_req r;
    struct pl_route_match m;
    rt_req_init(&r, "GET", "h", "/", "x-c", "fromhdr", NULL);
    /* boundaries: random % 100 in [0,10) -> a, [10,40) -> b, [40,100) -> header */
    cr_assert_eq(match(t, &r, 9, &m), 0);
    cr_assert(cluster_is(&m, "a"));
    cr_assert_eq(match(t, &r, 10, &m), 0);
    cr_assert(cluster_is(&m, "b"));
    cr_assert_eq(match(t, &r, 140, &m), 0);
    cr_assert(cluster_is(&m, "fromhdr"));
    cr_assert_not_null(m.wc);
    /* distribution over 10,000 picks with a simple PRNG */
    int n[3] = {0};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        cr_assert_eq(match(t, &r, x, &m), 0);
        n[cluster_is(&m, "a") ? 0 : cluster_is(&m, "b") ? 1 : 2]++;
        cr_assert_not(cluster_is(&m, "zero"));
    }
    cr_log_info("weighted picks: a=%d b=%d hdr=%d", n[0], n[1], n[2]);
    cr_assert(abs(n[0] - 1000) <= 200, "a: %d", n[0]);
    cr_assert(abs(n[1] - 3000) <= 200, "b: %d", n[1]);
    cr_assert(abs(n[2] - 6000) <= 200, "hdr: %d", n[2]);
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/", NULL);
    cr_assert_eq(match(t, &r, 99, &m), 0);
    cr_assert_eq(m.cluster_len, 0);
    rt_req_free(&r);
    pl_route_table_free(t);
}

/* Applies the request side of the matched route and returns the new :path. */
static const char *rewrite(const struct pl_route_table *t, struct rt_req *r, bool suppress)
{
    struct pl_route_match m;
    cr_assert_eq(match(t, r, 0, &m), 0);
    struct pl_route_ctx ctx = {.request = &r->h, .suppress_envoy_headers = suppress};
    pl_router_apply_request(&m, &r->h, &ctx, &r->a);
    return pl_arena_strndup(&r->a, r->h.path, r->h.path_len);
}

Test(router_action, path_and_host_rewrites)
{
    struct pl_route_table *t = rt_compile(
        "virtual_hosts: [{name: vh, domains: ['*'], routes: [\n"
        "  {match: {prefix: /api/}, route: {cluster: c, prefix_rewrite: /v2/, "
        "host_rewrite_literal: up.internal}},\n"
        "  {match: {prefix: /CI/, case_sensitive: false}, route: {cluster: c, prefix_rewrite: "
        "/ci/}},\n"
        "  {match: {path: /exact}, route: {cluster: c, prefix_rewrite: /other}},\n"
        "  {match: {safe_regex: {regex: '/re/.*'}}, route: {cluster: c, prefix_rewrite: /all}},\n"
        "  {match: {prefix: /rx/}, route: {cluster: c, regex_rewrite: {pattern: {regex: "
        "'^/rx/([^/]+)/(.*)$'}, substitution: '/\\2/\\1\\\\$'}}},\n"
        "  {match: {prefix: /g/}, route: {cluster: c, regex_rewrite: {pattern: {regex: 'o'}, "
        "substitution: '0'}}},\n"
        "  {match: {prefix: /}, route: {cluster: c}}]}]\n");
    struct rt_req r;
    rt_req_init(&r, "GET", "h", "/api/users?id=1", NULL);
    cr_assert_str_eq(rewrite(t, &r, false), "/v2/users?id=1");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-envoy-original-path"), "/api/users?id=1");
    cr_assert_eq(r.h.authority_len, strlen("up.internal"));
    cr_assert(!memcmp(r.h.authority, "up.internal", r.h.authority_len));
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/api/x", "x-envoy-original-path", "spoofed", NULL);
    cr_assert_str_eq(rewrite(t, &r, true), "/v2/x");
    cr_assert_str_eq(rt_hdr(&r, &r.h.headers, "x-envoy-original-path"), "spoofed");
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/ci/A", NULL);
    cr_assert_str_eq(rewrite(t, &r, false), "/ci/A");
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/exact?q", NULL);
    cr_assert_str_eq(rewrite(t, &r, false), "/other?q");
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/re/x/y?k=v", NULL);
    cr_assert_str_eq(rewrite(t, &r, false), "/all?k=v"); /* the whole path is the match */
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/rx/a/b/c?z=1", NULL);
    cr_assert_str_eq(rewrite(t, &r, false), "/b/c/a\\$?z=1");
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/g/foo?o=o", NULL);
    cr_assert_str_eq(rewrite(t, &r, false), "/g/f00?o=o"); /* global, query untouched */
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/plain", NULL);
    cr_assert_str_eq(rewrite(t, &r, false), "/plain");
    cr_assert_null(rt_hdr(&r, &r.h.headers, "x-envoy-original-path"));
    cr_assert_eq(r.h.authority_len, 1);
    rt_req_free(&r);
    pl_route_table_free(t);
}

Test(router_action, direct_response)
{
    char path[] = "/tmp/pl_router_body_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "from file\n", 10), 10);
    close(fd);
    char *yaml = pl_asprintf(
        "virtual_hosts: [{name: vh, domains: ['*'], routes: [\n"
        "  {match: {prefix: /s}, direct_response: {status: 200, body: {inline_string: hi}}},\n"
        "  {match: {prefix: /b}, direct_response: {status: 503, body: {inline_bytes: AAE=}}},\n"
        "  {match: {prefix: /f}, direct_response: {status: 404, body: {filename: '%s'}}},\n"
        "  {match: {prefix: /n}, direct_response: {status: 204}}]}]\n",
        path);
    struct pl_route_table *t = rt_compile(yaml);
    unlink(path);
    free(yaml);
    struct rt_req r;
    struct pl_route_match m;
    rt_req_init(&r, "GET", "h", "/s", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert_eq(m.info->kind, PL_ROUTE_DIRECT_RESPONSE);
    cr_assert_eq(m.info->status, 200);
    cr_assert_eq(m.info->body_len, 2);
    cr_assert_str_eq(m.info->body, "hi");
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/b", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert_eq(m.info->status, 503);
    cr_assert_eq(m.info->body_len, 2);
    cr_assert(!memcmp(m.info->body, "\0\1", 2));
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/f", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert_eq(m.info->status, 404);
    cr_assert_str_eq(m.info->body, "from file\n");
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/n", NULL);
    cr_assert_eq(match(t, &r, 0, &m), 0);
    cr_assert_eq(m.info->status, 204);
    cr_assert_eq(m.info->body_len, 0);
    rt_req_free(&r);
    pl_route_table_free(t);
}

/* Compiles one redirect action and returns the Location for a request. */
static void expect_location(const char *action, const char *route_match, const char *authority,
                            const char *path, const char *xfp, bool tls, const char *want,
                            int want_status)
{
    char *yaml = pl_asprintf("virtual_hosts: [{name: vh, domains: ['*'], routes: [\n"
                             "  {match: %s, redirect: %s}]}]\n",
                             route_match ? route_match : "{prefix: /}", action);
    struct pl_route_table *t = rt_compile(yaml);
    free(yaml);
    struct rt_req r;
    if (xfp)
        rt_req_init(&r, "GET", authority, path, "x-forwarded-proto", xfp, NULL);
    else
        rt_req_init(&r, "GET", authority, path, NULL);
    struct pl_route_ctx ctx = {.request = &r.h, .tls = tls};
    struct pl_route_match m;
    cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);
    cr_assert_eq(m.info->kind, PL_ROUTE_REDIRECT);
    const char *loc;
    size_t len;
    pl_router_redirect_location(&m, &r.h, &ctx, &r.a, &loc, &len);
    cr_assert_eq(strlen(loc), len);
    cr_assert_str_eq(loc, want, "%s on %s%s", action, authority, path);
    cr_assert_eq(m.info->status, want_status);
    rt_req_free(&r);
    pl_route_table_free(t);
}

Test(router_action, redirect_locations)
{
    /* scheme */
    expect_location("{https_redirect: true}", NULL, "a.com", "/p?q=1", "http", false,
                    "https://a.com/p?q=1", 301);
    expect_location("{https_redirect: true}", NULL, "a.com:80", "/p", "http", false,
                    "https://a.com/p", 301); /* http's default port goes with the scheme */
    expect_location("{https_redirect: true}", NULL, "a.com:8080", "/p", "http", false,
                    "https://a.com:8080/p", 301);
    expect_location("{scheme_redirect: HTTP}", NULL, "a.com:443", "/p", "https", false,
                    "http://a.com/p", 301);
    expect_location("{scheme_redirect: https}", NULL, "a.com:443", "/p", "https", false,
                    "https://a.com:443/p", 301); /* same scheme: port kept */
    expect_location("{host_redirect: b.com}", NULL, "a.com:1", "/p", NULL, true, "https://b.com/p",
                    301); /* scheme from the TLS connection */
    expect_location("{host_redirect: b.com}", NULL, "a.com", "/p", NULL, false, "http://b.com/p",
                    301);
    /* port */
    expect_location("{port_redirect: 8443}", NULL, "a.com:80", "/p", "http", false,
                    "http://a.com:8443/p", 301);
    expect_location("{port_redirect: 8443}", NULL, "[::1]:80", "/p", "http", false,
                    "http://[::1]:8443/p", 301);
    expect_location("{port_redirect: 8443, host_redirect: b.com, https_redirect: true}", NULL,
                    "a.com", "/p", "http", false, "https://b.com:8443/p", 301);
    /* path */
    expect_location("{path_redirect: /new}", NULL, "a.com", "/old?x=1", "http", false,
                    "http://a.com/new?x=1", 301);
    expect_location("{path_redirect: /new, strip_query: true}", NULL, "a.com", "/old?x=1", "http",
                    false, "http://a.com/new", 301);
    expect_location("{path_redirect: '/new?y=2', strip_query: true}", NULL, "a.com", "/old?x=1",
                    "http", false, "http://a.com/new?y=2", 301);
    expect_location("{path_redirect: 'rel'}", NULL, "a.com", "/old", "http", false,
                    "http://a.com/rel", 301);
    expect_location("{prefix_rewrite: /v2/}", "{prefix: /v1/}", "a.com", "/v1/x?k", "http", false,
                    "http://a.com/v2/x?k", 301);
    expect_location("{prefix_rewrite: /v2/, strip_query: true}", "{prefix: /v1/}", "a.com",
                    "/v1/x?k", "http", false, "http://a.com/v2/x", 301);
    expect_location("{regex_rewrite: {pattern: {regex: '^/(\\w+)/(\\w+)$'}, substitution: "
                    "'/\\2/\\1'}}",
                    NULL, "a.com", "/a/b?q", "http", false, "http://a.com/b/a?q", 301);
    expect_location("{strip_query: true}", NULL, "a.com", "/p?q", "http", false, "http://a.com/p",
                    301);
    /* response codes */
    expect_location("{response_code: FOUND}", NULL, "a", "/", "http", false, "http://a/", 302);
    expect_location("{response_code: SEE_OTHER}", NULL, "a", "/", "http", false, "http://a/", 303);
    expect_location("{response_code: TEMPORARY_REDIRECT}", NULL, "a", "/", "http", false,
                    "http://a/", 307);
    expect_location("{response_code: PERMANENT_REDIRECT}", NULL, "a", "/", "http", false,
                    "http://a/", 308);
}

Test(router_action, redirect_scheme_sources)
{
    struct pl_route_table *t =
        rt_compile("virtual_hosts: [{name: vh, domains: ['*'], routes: [\n"
                   "  {match: {prefix: /s}, redirect: {https_redirect: true}},\n"
                   "  {match: {prefix: /h}, redirect: {host_redirect: b.com}}]}]\n");
    struct {
        const char *path, *scheme, *xfp, *want;
    } cases[] = {
        /* :scheme http but x-forwarded-proto https: the port is judged by x-forwarded-proto */
        {"/s", "http", "https", "https://a.com:80/s"},
        {"/s", "http", "http", "https://a.com/s"},
        {"/h", "https", "http", "https://b.com/h"}, /* the Location keeps :scheme */
        {"/h", "HTTP", NULL, "HTTP://b.com/h"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rt_req r;
        if (cases[i].xfp)
            rt_req_init(&r, "GET", "a.com:80", cases[i].path, "x-forwarded-proto", cases[i].xfp,
                        NULL);
        else
            rt_req_init(&r, "GET", "a.com:80", cases[i].path, NULL);
        r.h.scheme = cases[i].scheme, r.h.scheme_len = (uint32_t)strlen(cases[i].scheme);
        struct pl_route_ctx ctx = {.request = &r.h};
        struct pl_route_match m;
        cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);
        const char *loc;
        size_t len;
        pl_router_redirect_location(&m, &r.h, &ctx, &r.a, &loc, &len);
        cr_assert_str_eq(loc, cases[i].want);
        rt_req_free(&r);
    }
    pl_route_table_free(t);
}

Test(router_action, hash_policies)
{
    cr_assert_eq(pl_router_xxh64_for_test("", 0), 0xEF46DB3751D8E999ull);
    cr_assert_eq(pl_router_xxh64_for_test("a", 1), 0xD24EC4F1A98C6E5Bull);
    cr_assert_eq(pl_router_xxh64_for_test("abc", 3), 0x44BC2CF5AD770999ull);
    const char *long_in = "Nobody inspects the spammish repetition";
    cr_assert_eq(pl_router_xxh64_for_test(long_in, strlen(long_in)), 0xFBCEA83C8A378BF1ull);
    struct pl_route_table *t = rt_compile(
        "virtual_hosts: [{name: vh, domains: ['*'], routes: [\n"
        "  {match: {prefix: /h}, route: {cluster: c, hash_policy: [{header: {header_name: "
        "X-User}}]}},\n"
        "  {match: {prefix: /c}, route: {cluster: c, hash_policy: [{cookie: {name: sid}}]}},\n"
        "  {match: {prefix: /ip}, route: {cluster: c, hash_policy: [{connection_properties: "
        "{source_ip: true}}]}},\n"
        "  {match: {prefix: /t}, route: {cluster: c, hash_policy: [{header: {header_name: a}, "
        "terminal: true}, {header: {header_name: b}}]}},\n"
        "  {match: {prefix: /m}, route: {cluster: c, hash_policy: [{header: {header_name: a}}, "
        "{header: {header_name: b}}]}},\n"
        "  {match: {prefix: /}, route: {cluster: c}}]}]\n");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(5555)};
    inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
    struct pl_route_match m;
    uint64_t h, h2;
    struct rt_req r;
    struct pl_route_ctx ctx = {.peer = (struct sockaddr *)&sin};
#define HASH(path, ...)                                                                            \
    ({                                                                                             \
        rt_req_init(&r, "GET", "h", path, ##__VA_ARGS__, NULL);                                    \
        ctx.request = &r.h;                                                                        \
        cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);                                    \
        pl_router_hash(&m, &r.h, &ctx, &h);                                                        \
    })
    cr_assert(HASH("/h", "x-user", "alice"));
    cr_assert_eq(h, pl_router_xxh64_for_test("alice", 5));
    rt_req_free(&r);
    cr_assert_not(HASH("/h"));
    rt_req_free(&r);
    cr_assert(HASH("/h", "x-user", "b", "x-user", "a"));
    h2 = h;
    rt_req_free(&r);
    cr_assert(HASH("/h", "x-user", "a", "x-user", "b"));
    cr_assert_eq(h, h2, "repeated values hash independently of their order");
    rt_req_free(&r);
    cr_assert(HASH("/c", "cookie", "a=1; sid=\"s123\"; z=2"));
    cr_assert_eq(h, pl_router_xxh64_for_test("s123", 4));
    rt_req_free(&r);
    cr_assert(HASH("/c", "cookie", "a=1", "cookie", "sid=s123"));
    cr_assert_eq(h, pl_router_xxh64_for_test("s123", 4));
    rt_req_free(&r);
    cr_assert_not(HASH("/c", "cookie", "sidx=1"));
    rt_req_free(&r);
    cr_assert(HASH("/ip"));
    cr_assert_eq(h, pl_router_xxh64_for_test("10.1.2.3", 8));
    rt_req_free(&r);
    cr_assert(HASH("/t", "a", "1", "b", "2"));
    cr_assert_eq(h, pl_router_xxh64_for_test("1", 1)); /* terminal: b is not used */
    rt_req_free(&r);
    cr_assert(HASH("/t", "b", "2"));
    cr_assert_eq(h, pl_router_xxh64_for_test("2", 1));
    rt_req_free(&r);
    cr_assert(HASH("/m", "a", "1", "b", "2"));
    uint64_t a = pl_router_xxh64_for_test("1", 1), b = pl_router_xxh64_for_test("2", 1);
    cr_assert_eq(h, ((a << 1) | (a >> 63)) ^ b);
    rt_req_free(&r);
    cr_assert_not(HASH("/none", "a", "1"));
    rt_req_free(&r);
#undef HASH
    pl_route_table_free(t);
}
