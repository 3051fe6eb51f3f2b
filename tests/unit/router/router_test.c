/* Route matching: virtual host selection and every route match kind. */
#include <time.h>

#include "router/router_internal.h"
#include "rt_util.h"

TestSuite(router_match, .fini = pl_router_thread_cleanup);

static const char *VHOSTS = "name: rc\n"
                            "virtual_hosts:\n"
                            "- name: exact\n"
                            "  domains: [foo.com, 'Bar.COM', 'port.com:8080']\n"
                            "  routes: [{name: exact, match: {prefix: /}, route: {cluster: c}}]\n"
                            "- name: sfx\n"
                            "  domains: ['*.foo.com']\n"
                            "  routes: [{name: sfx, match: {prefix: /}, route: {cluster: c}}]\n"
                            "- name: sfx2\n"
                            "  domains: ['*-bar.foo.com']\n"
                            "  routes: [{name: sfx2, match: {prefix: /}, route: {cluster: c}}]\n"
                            "- name: pfx\n"
                            "  domains: ['foo.*', 'foo.bar.*']\n"
                            "  routes: [{name: pfx, match: {prefix: /}, route: {cluster: c}}]\n"
                            "- name: any\n"
                            "  domains: ['*']\n"
                            "  routes: [{name: any, match: {prefix: /}, route: {cluster: c}}]\n";

Test(router_match, vhost_precedence)
{
    struct pl_route_table *t = rt_compile(VHOSTS);
    cr_assert_str_eq(pl_route_table_name(t), "rc");
    RT_EXPECT(t, "foo.com", "/", "exact");
    RT_EXPECT(t, "FOO.com", "/", "exact"); /* case-insensitive */
    RT_EXPECT(t, "bar.com", "/", "exact");
    RT_EXPECT(t, "a.foo.com", "/", "sfx");
    RT_EXPECT(t, "x-bar.foo.com", "/", "sfx2"); /* the longer suffix wins */
    RT_EXPECT(t, "-bar.foo.com", "/", "sfx");   /* a wildcard never matches the empty string */
    RT_EXPECT(t, ".foo.com", "/", "any");       /* "*.foo.com" needs something before ".foo.com" */
    RT_EXPECT(t, "foo.", "/", "any");           /* and "foo.*" something after "foo." */
    RT_EXPECT(t, "foo.org", "/", "pfx");
    RT_EXPECT(t, "foo.bar.baz", "/", "pfx");
    RT_EXPECT(t, "a.foo.org", "/", "any"); /* suffix before prefix: none fits */
    RT_EXPECT(t, "example.org", "/", "any");
    /* Envoy matches the whole Host, port included (no ignore_port_in_host_matching) */
    RT_EXPECT(t, "port.com:8080", "/", "exact");
    RT_EXPECT(t, "port.com", "/", "any");
    RT_EXPECT(t, "foo.com:80", "/", "pfx"); /* "foo.*" is a prefix of it */
    RT_EXPECT(t, "bar.com:80", "/", "any");
    pl_route_table_free(t);
}

Test(router_match, suffix_before_prefix)
{
    struct pl_route_table *t = rt_compile("virtual_hosts:\n"
                                          "- {name: s, domains: ['*.com'], routes: [{name: s, "
                                          "match: {prefix: /}, route: {cluster: c}}]}\n"
                                          "- {name: p, domains: ['foo.*'], routes: [{name: p, "
                                          "match: {prefix: /}, route: {cluster: c}}]}\n");
    RT_EXPECT(t, "foo.com", "/", "s");
    RT_EXPECT(t, "foo.org", "/", "p");
    RT_EXPECT(t, "bar.org", "/", NULL); /* no "*": no virtual host */
    pl_route_table_free(t);
}

Test(router_match, ignore_port_in_host_matching)
{
    struct pl_route_table *t = rt_compile(
        "ignore_port_in_host_matching: true\n"
        "virtual_hosts:\n"
        "- {name: a, domains: [foo.com], routes: [{name: a, match: {prefix: /}, route: {cluster: "
        "c}}]}\n"
        "- {name: v6, domains: ['[::1]'], routes: [{name: v6, match: {prefix: /}, route: "
        "{cluster: c}}]}\n"
        "- {name: any, domains: ['*'], routes: [{name: any, match: {prefix: /}, route: {cluster: "
        "c}}]}\n");
    RT_EXPECT(t, "foo.com:8080", "/", "a");
    RT_EXPECT(t, "foo.com", "/", "a");
    RT_EXPECT(t, "[::1]:443", "/", "v6");
    RT_EXPECT(t, "[::1]", "/", "v6");
    RT_EXPECT(t, "bar.com:1", "/", "any");
    pl_route_table_free(t);
}

Test(router_match, only_default_vhost_and_no_authority)
{
    struct pl_route_table *t =
        rt_compile("virtual_hosts: [{name: a, domains: ['*'], routes: [{name: r, match: "
                   "{prefix: /}, route: {cluster: c}}]}]\n");
    RT_EXPECT(t, NULL, "/", "r");
    pl_route_table_free(t);
    t = rt_compile("virtual_hosts: [{name: a, domains: [x, '*'], routes: [{name: r, match: "
                   "{prefix: /}, route: {cluster: c}}]}]\n");
    RT_EXPECT(t, NULL, "/", NULL); /* Envoy: no Host, no virtual host */
    RT_EXPECT(t, "y", "/", "r");
    pl_route_table_free(t);
}

static const char *PATHS =
    "virtual_hosts:\n"
    "- name: v\n"
    "  domains: ['*']\n"
    "  routes:\n"
    "  - {name: exact, match: {path: /exact}, route: {cluster: c}}\n"
    "  - {name: ci, match: {path: /CI, case_sensitive: false}, route: {cluster: c}}\n"
    "  - {name: cipfx, match: {prefix: /Pfx/, case_sensitive: false}, route: {cluster: c}}\n"
    "  - {name: re, match: {safe_regex: {regex: '/re/[0-9]+'}}, route: {cluster: c}}\n"
    "  - {name: alt, match: {safe_regex: {regex: '/ab|/abc'}}, route: {cluster: c}}\n"
    "  - {name: sep, match: {path_separated_prefix: /api}, route: {cluster: c}}\n"
    "  - {name: pfx, match: {prefix: /p}, route: {cluster: c}}\n"
    "  - {name: dollar, match: {safe_regex: {regex: '/d$'}}, route: {cluster: c}}\n"
    "  - {name: empty, match: {prefix: ''}, route: {cluster: c}}\n";

Test(router_match, path_kinds)
{
    struct pl_route_table *t = rt_compile(PATHS);
    RT_EXPECT(t, "h", "/exact", "exact");
    RT_EXPECT(t, "h", "/exact?x=1", "exact"); /* the query is not part of the path */
    RT_EXPECT(t, "h", "/exact#frag", "exact");
    RT_EXPECT(t, "h", "/exact/", "empty");
    RT_EXPECT(t, "h", "/Exact", "empty"); /* case-sensitive by default */
    RT_EXPECT(t, "h", "/ci", "ci");
    RT_EXPECT(t, "h", "/cI?q", "ci");
    RT_EXPECT(t, "h", "/pfx/a", "cipfx");
    RT_EXPECT(t, "h", "/PFX/a", "cipfx");
    RT_EXPECT(t, "h", "/re/123", "re");
    RT_EXPECT(t, "h", "/re/123?a=b", "re");
    RT_EXPECT(t, "h", "/re/123x", "empty"); /* full match, not search */
    RT_EXPECT(t, "h", "/x/re/1", "empty");
    RT_EXPECT(t, "h", "/abc", "alt"); /* alternation still has to cover the whole path */
    RT_EXPECT(t, "h", "/ab", "alt");
    RT_EXPECT(t, "h", "/api", "sep");
    RT_EXPECT(t, "h", "/api/", "sep");
    RT_EXPECT(t, "h", "/api/v1?x", "sep");
    RT_EXPECT(t, "h", "/api?x", "sep");
    RT_EXPECT(t, "h", "/apix", "empty");
    RT_EXPECT(t, "h", "/p", "pfx");
    RT_EXPECT(t, "h", "/pq", "pfx");
    RT_EXPECT(t, "h", "/d", "dollar");
    RT_EXPECT(t, "h", "/d\n", "empty"); /* $ is the end of text, as in RE2 */
    RT_EXPECT(t, "h", "", "empty");
    pl_route_table_free(t);
}

Test(router_match, first_match_wins_and_no_path)
{
    struct pl_route_table *t =
        rt_compile("virtual_hosts: [{name: v, domains: ['*'], routes: [\n"
                   "  {name: one, match: {prefix: /a}, route: {cluster: c}},\n"
                   "  {name: two, match: {prefix: /a/b}, route: {cluster: c}}]}]\n");
    RT_EXPECT(t, "h", "/a/b", "one");
    RT_EXPECT(t, "h", "/b", NULL);
    RT_EXPECT(t, "h", NULL, NULL); /* CONNECT without :path matches no path route */
    pl_route_table_free(t);
}

static const char *HEADERS =
    "virtual_hosts:\n"
    "- name: v\n"
    "  domains: ['*']\n"
    "  routes:\n"
    "  - {name: exact, match: {prefix: /exact, headers: [{name: X-A, exact_match: v}]}, route: "
    "{cluster: c}}\n"
    "  - {name: anyval, match: {prefix: /anyval, headers: [{name: x-a, exact_match: ''}]}, route: "
    "{cluster: c}}\n"
    "  - {name: nospec, match: {prefix: /nospec, headers: [{name: x-a}]}, route: {cluster: c}}\n"
    "  - {name: pfx, match: {prefix: /legacy, headers: [{name: x-a, prefix_match: ab}, {name: "
    "x-b, suffix_match: yz}, {name: x-c, contains_match: mid}]}, route: {cluster: c}}\n"
    "  - {name: sm, match: {prefix: /sm, headers: [{name: x-a, string_match: {exact: HeLLo, "
    "ignore_case: true}}]}, route: {cluster: c}}\n"
    "  - {name: smpfx, match: {prefix: /smpfx, headers: [{name: x-a, string_match: {prefix: AB, "
    "ignore_case: true}}, {name: x-b, string_match: {suffix: z}}, {name: x-c, string_match: "
    "{contains: Q, ignore_case: true}}]}, route: {cluster: c}}\n"
    "  - {name: re, match: {prefix: /re, headers: [{name: x-a, safe_regex_match: {regex: "
    "'[0-9]+'}}]}, route: {cluster: c}}\n"
    "  - {name: sre, match: {prefix: /sre, headers: [{name: x-a, string_match: {safe_regex: "
    "{regex: 'a.c'}}}]}, route: {cluster: c}}\n"
    "  - {name: present, match: {prefix: /present, headers: [{name: x-a, present_match: true}]}, "
    "route: {cluster: c}}\n"
    "  - {name: absent, match: {prefix: /absent, headers: [{name: x-a, present_match: false}]}, "
    "route: {cluster: c}}\n"
    "  - {name: invpresent, match: {prefix: /invpresent, headers: [{name: x-a, present_match: "
    "true, invert_match: true}]}, route: {cluster: c}}\n"
    "  - {name: inv, match: {prefix: /notv, headers: [{name: x-a, exact_match: v, invert_match: "
    "true}]}, route: {cluster: c}}\n"
    "  - {name: empty, match: {prefix: /empty, headers: [{name: x-a, exact_match: v, "
    "invert_match: true, treat_missing_header_as_empty: true}]}, route: {cluster: c}}\n"
    "  - {name: method, match: {prefix: /method, headers: [{name: ':method', exact_match: "
    "POST}]}, route: {cluster: c}}\n"
    "  - {name: host, match: {prefix: /host, headers: [{name: host, exact_match: h.com}]}, "
    "route: {cluster: c}}\n"
    "  - {name: joined, match: {prefix: /joined, headers: [{name: x-a, exact_match: '1,2'}]}, "
    "route: {cluster: c}}\n"
    "  - {name: fallback, match: {prefix: /}, route: {cluster: c}}\n";

Test(router_match, headers)
{
    struct pl_route_table *t = rt_compile(HEADERS);
    RT_EXPECT(t, "h", "/exact", "exact", "x-a", "v");
    RT_EXPECT(t, "h", "/exact", "fallback", "x-a", "V");
    RT_EXPECT(t, "h", "/exact", "fallback");
    RT_EXPECT(t, "h", "/anyval", "anyval", "x-a", "whatever");
    RT_EXPECT(t, "h", "/anyval", "fallback");
    RT_EXPECT(t, "h", "/nospec", "nospec", "x-a", "");
    RT_EXPECT(t, "h", "/legacy", "pfx", "x-a", "abc", "x-b", "xyz", "x-c", "amidb");
    RT_EXPECT(t, "h", "/legacy", "fallback", "x-a", "Abc", "x-b", "xyz", "x-c", "amidb");
    RT_EXPECT(t, "h", "/legacy", "fallback", "x-a", "abc", "x-b", "xyz");
    RT_EXPECT(t, "h", "/sm", "sm", "x-a", "hello");
    RT_EXPECT(t, "h", "/sm", "fallback", "x-a", "hello!");
    RT_EXPECT(t, "h", "/smpfx", "smpfx", "x-a", "abX", "x-b", "zz", "x-c", "xqx");
    RT_EXPECT(t, "h", "/smpfx", "fallback", "x-a", "abX", "x-b", "zZ", "x-c", "xqx");
    RT_EXPECT(t, "h", "/re", "re", "x-a", "123");
    RT_EXPECT(t, "h", "/re", "fallback", "x-a", "123a");
    RT_EXPECT(t, "h", "/sre", "sre", "x-a", "abc");
    RT_EXPECT(t, "h", "/sre", "fallback", "x-a", "abcd");
    RT_EXPECT(t, "h", "/present", "present", "x-a", "");
    RT_EXPECT(t, "h", "/present", "fallback");
    RT_EXPECT(t, "h", "/absent", "absent");
    RT_EXPECT(t, "h", "/absent", "fallback", "x-a", "1");
    RT_EXPECT(t, "h", "/invpresent", "invpresent");
    RT_EXPECT(t, "h", "/invpresent", "fallback", "x-a", "1");
    /* invert_match: a present header that does not match matches; a missing header never does */
    RT_EXPECT(t, "h", "/notv", "inv", "x-a", "w");
    RT_EXPECT(t, "h", "/notv", "fallback", "x-a", "v");
    RT_EXPECT(t, "h", "/notv", "fallback");
    /* treat_missing_header_as_empty: missing is "", which is not "v", inverted: match */
    RT_EXPECT(t, "h", "/empty", "empty");
    RT_EXPECT(t, "h", "/empty", "fallback", "x-a", "v");
    RT_EXPECT(t, "h", "/method", "fallback");
    {
        struct rt_req r;
        rt_req_init(&r, "POST", "h", "/method", NULL);
        cr_assert_str_eq(rt_route(t, &r), "method");
        rt_req_free(&r);
    }
    RT_EXPECT(t, "h.com", "/host", "host");
    RT_EXPECT(t, "h.org", "/host", "fallback");
    RT_EXPECT(t, "h", "/joined", "joined", "x-a", "1", "x-a", "2");
    RT_EXPECT(t, "h", "/joined", "fallback", "x-a", "1");
    pl_route_table_free(t);
}

Test(router_match, query_parameters)
{
    struct pl_route_table *t = rt_compile(
        "virtual_hosts:\n"
        "- name: v\n"
        "  domains: ['*']\n"
        "  routes:\n"
        "  - {name: sm, match: {prefix: /sm, query_parameters: [{name: debug, string_match: "
        "{exact: 'a b'}}]}, route: {cluster: c}}\n"
        "  - {name: ci, match: {prefix: /ci, query_parameters: [{name: q, string_match: {prefix: "
        "AB, ignore_case: true}}]}, route: {cluster: c}}\n"
        "  - {name: present, match: {prefix: /present, query_parameters: [{name: p}]}, route: "
        "{cluster: c}}\n"
        "  - {name: pm, match: {prefix: /pm, query_parameters: [{name: p, present_match: true}]}, "
        "route: {cluster: c}}\n"
        "  - {name: re, match: {prefix: /re, query_parameters: [{name: n, string_match: "
        "{safe_regex: {regex: '[0-9]+'}}}]}, route: {cluster: c}}\n"
        "  - {name: fallback, match: {prefix: /}, route: {cluster: c}}\n");
    RT_EXPECT(t, "h", "/sm?debug=a%20b", "sm");
    RT_EXPECT(t, "h", "/sm?x=1&debug=a%20b&y", "sm");
    RT_EXPECT(t, "h", "/sm?debug=a+b", "fallback");           /* '+' is not decoded, as in Envoy */
    RT_EXPECT(t, "h", "/sm?debug=x&debug=a%20b", "fallback"); /* the first value counts */
    RT_EXPECT(t, "h", "/sm?de%62ug=a%20b", "sm");             /* names are decoded too */
    RT_EXPECT(t, "h", "/sm", "fallback");
    RT_EXPECT(t, "h", "/sm?debug=a%20b#frag", "sm");
    RT_EXPECT(t, "h", "/ci?q=abc", "ci");
    RT_EXPECT(t, "h", "/present?p", "present");
    RT_EXPECT(t, "h", "/present?p=", "present");
    RT_EXPECT(t, "h", "/present?pp=1", "fallback");
    RT_EXPECT(t, "h", "/pm?a&p=1", "pm");
    RT_EXPECT(t, "h", "/pm?a", "fallback");
    RT_EXPECT(t, "h", "/re?n=42", "re");
    RT_EXPECT(t, "h", "/re?n=42x", "fallback");
    pl_route_table_free(t);
}

Test(router_match, grpc)
{
    struct pl_route_table *t =
        rt_compile("virtual_hosts: [{name: v, domains: ['*'], routes: [\n"
                   "  {name: g, match: {prefix: /, grpc: {}}, route: {cluster: g}},\n"
                   "  {name: h, match: {prefix: /}, route: {cluster: h}}]}]\n");
    RT_EXPECT(t, "h", "/svc/M", "g", "content-type", "application/grpc");
    RT_EXPECT(t, "h", "/svc/M", "g", "content-type", "application/grpc+proto");
    RT_EXPECT(t, "h", "/svc/M", "h", "content-type", "application/grpc-web");
    RT_EXPECT(t, "h", "/svc/M", "h", "content-type", "application/json");
    RT_EXPECT(t, "h", "/svc/M", "h");
    pl_route_table_free(t);
}

Test(router_match, catastrophic_regex_is_bounded)
{
    struct pl_route_table *t = rt_compile(
        "virtual_hosts: [{name: v, domains: ['*'], routes: [\n"
        "  {name: bad, match: {safe_regex: {regex: '/(a|aa)+'}}, route: {cluster: c}},\n"
        "  {name: hdr, match: {prefix: /h, headers: [{name: x, safe_regex_match: {regex: "
        "'(x+x+)+'}}]}, route: {cluster: c}},\n"
        "  {name: fallback, match: {prefix: /}, route: {cluster: c}}]}]\n");
    char path[80] = "/";
    memset(path + 1, 'a', 60);
    strcpy(path + 61, "c");
    char val[70];
    memset(val, 'x', 64);
    strcpy(val + 64, "z");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    RT_EXPECT(t, "h", path, "fallback");
    RT_EXPECT(t, "h", "/h", "fallback", "x", val);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    cr_log_info("two catastrophic matches gave up after %.2f ms", ms);
    cr_assert_lt(ms, 10000.0, "the match limit did not bound the regex");
    RT_EXPECT(t, "h", "/aaaa", "bad");
    RT_EXPECT(t, "h", "/h", "hdr", "x", "xxxx");
    pl_route_table_free(t);
}

Test(router_match, invalid_utf8_is_no_match_not_error)
{
    struct pl_route_table *t =
        rt_compile("virtual_hosts: [{name: v, domains: ['*'], routes: [\n"
                   "  {name: re, match: {safe_regex: {regex: '/.+'}}, route: {cluster: c}},\n"
                   "  {name: fallback, match: {prefix: ''}, route: {cluster: c}}]}]\n");
    RT_EXPECT(t, "h", "/\xc3\xa9", "re");
    struct rt_req r; /* RE2 would match; PCRE2 does not, but it must not fail either way */
    rt_req_init(&r, "GET", "h", "/\xff", NULL);
    cr_assert_not_null(rt_route(t, &r));
    rt_req_free(&r);
    pl_route_table_free(t);
}

/* The path part of :path ends at the first '?' or '#', wherever it falls in the word scan. */
Test(router_match, path_len_scan)
{
    char p[40];
    for (size_t len = 0; len < sizeof(p); len++) {
        for (size_t at = 0; at <= len; at++) {
            for (int k = 0; k < 2; k++) {
                memset(p, 'a', sizeof(p));
                if (at < len)
                    p[at] = k ? '#' : '?';
                cr_assert_eq(pl_router_path_len(p, len), at, "len %zu at %zu", len, at);
            }
        }
    }
    cr_assert_eq(pl_router_path_len("/bench.Svc/Unary?x=1#f", 22), 16);
    cr_assert_eq(pl_router_path_len("/a#b?c", 6), 2);
    cr_assert_eq(pl_router_path_len("/\xbf\x3f", 3), 2); /* a high byte before '?' */
}

/* Routes with only a path match and a cluster keep no part of their own beyond the 48-byte
 * pl_route (their info is the virtual host's); the others keep theirs. Either way a match gives
 * the same answers, and every string (also past a pool chunk, and longer than one) is intact. */
Test(router_match, plain_and_full_routes)
{
    char *yaml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&yaml, &len);
    char long_cluster[6000];
    memset(long_cluster, 'k', sizeof(long_cluster) - 1);
    long_cluster[sizeof(long_cluster) - 1] = 0;
    fprintf(f, "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n");
    fprintf(f, "  - {name: named, match: {prefix: /named}, route: {cluster: a}}\n");
    fprintf(f, "  - {match: {prefix: /timeout}, route: {cluster: b, timeout: 2s}}\n");
    fprintf(f, "  - {match: {prefix: /hdr, headers: [{name: x, present_match: true}]},"
               " route: {cluster: c}}\n");
    fprintf(f, "  - {match: {prefix: /long}, route: {cluster: %s}}\n", long_cluster);
    for (int i = 0; i < 3000; i++) /* about 40 kB of strings: several pool chunks */
        fprintf(f, "  - {match: {path: /p%d}, route: {cluster: cluster-%d}}\n", i, i);
    fclose(f);
    struct pl_route_table *t = rt_compile(yaml);
    free(yaml);
    const struct pl_route_vhost *vh = &t->vhosts[0];
    cr_assert_eq(sizeof(struct pl_route), 48);
    cr_assert_not_null(vh->routes[0].x); /* a name */
    cr_assert_not_null(vh->routes[1].x); /* a timeout */
    cr_assert_not_null(vh->routes[2].x); /* a header matcher */
    cr_assert_null(vh->routes[3].x);
    cr_assert_null(vh->routes[4].x);
    cr_assert_eq(vh->routes[4].info, &vh->plain_info);

    struct pl_route_ctx ctx = {0};
    struct pl_route_match m;
    struct rt_req r;
    rt_req_init(&r, "GET", "h", "/named", NULL);
    cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);
    cr_assert_str_eq(m.info->name, "named");
    cr_assert_str_eq(m.info->vhost_name, "v");
    cr_assert_eq(m.info->timeout_ms, 15000);
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/timeout", NULL);
    cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);
    cr_assert_eq(m.info->timeout_ms, 2000);
    cr_assert_eq(m.cluster_len, 1);
    cr_assert(!memcmp(m.cluster, "b", 1));
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/hdr", NULL); /* no x: falls through to nothing */
    cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), PL_ENOENT);
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/hdr", "x", "1", NULL);
    cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);
    cr_assert(m.cluster_len == 1 && m.cluster[0] == 'c');
    rt_req_free(&r);
    rt_req_init(&r, "GET", "h", "/long", NULL);
    cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0);
    cr_assert_str_eq(m.cluster, long_cluster);
    cr_assert_eq(m.info->kind, PL_ROUTE_CLUSTER);
    cr_assert_str_eq(m.info->name, "");
    cr_assert_str_eq(m.info->vhost_name, "v");
    cr_assert_eq(m.info->timeout_ms, 15000);
    cr_assert_eq(m.info->idle_timeout_ms, -1);
    cr_assert_eq(m.info->cluster_not_found_status, 503);
    rt_req_free(&r);
    for (int i = 0; i < 3000; i += 7) {
        char p[32], c[32];
        snprintf(p, sizeof(p), "/p%d", i);
        snprintf(c, sizeof(c), "cluster-%d", i);
        rt_req_init(&r, "GET", "h", p, NULL);
        cr_assert_eq(pl_router_match(t, &r.h, &ctx, 0, &m), 0, "%s", p);
        cr_assert_str_eq(m.cluster, c);
        cr_assert_eq(m.cluster_len, strlen(c));
        rt_req_free(&r);
    }
    pl_route_table_free(t);
}

/* A route of the common shape (a prefix or path match forwarding to a named cluster) compiles
 * straight to its hot part; the same routes with case_sensitive spelled out take the general
 * compile. Both must come to the same routes. */
Test(router_match, plain_routes_compile_as_the_general_path_does)
{
    struct pl_route_table *a = rt_compile("virtual_hosts: [{name: v, domains: ['*'], routes: [\n"
                                          "  {match: {prefix: /a/}, route: {cluster: ca}},\n"
                                          "  {match: {path: /Exact}, route: {cluster: c-exact}},\n"
                                          "  {match: {prefix: ''}, route: {cluster: any}}]}]\n");
    struct pl_route_table *b =
        rt_compile("virtual_hosts: [{name: v, domains: ['*'], routes: [\n"
                   "  {match: {prefix: /a/, case_sensitive: true}, route: {cluster: ca}},\n"
                   "  {match: {path: /Exact, case_sensitive: true}, route: {cluster: c-exact}},\n"
                   "  {match: {prefix: '', case_sensitive: true}, route: {cluster: any}}]}]\n");
    cr_assert_eq(a->nvhosts, 1);
    cr_assert_eq(a->vhosts[0].nroutes, 3);
    for (size_t i = 0; i < 3; i++) {
        const struct pl_route *ra = &a->vhosts[0].routes[i], *rb = &b->vhosts[0].routes[i];
        cr_assert_null(ra->x);
        cr_assert_null(rb->x);
        cr_assert_eq(ra->info, &a->vhosts[0].plain_info);
        cr_assert_eq(rb->info, &b->vhosts[0].plain_info);
        cr_assert_str_eq(ra->path, rb->path);
        cr_assert_eq(ra->path_len, rb->path_len);
        cr_assert_str_eq(ra->cluster, rb->cluster);
        cr_assert_eq(ra->cluster_len, rb->cluster_len);
        cr_assert_eq(ra->path_kind, rb->path_kind);
        cr_assert_eq(ra->case_sensitive, rb->case_sensitive);
        cr_assert_eq(ra->grpc, rb->grpc);
    }
    cr_assert_eq(a->vhosts[0].routes[0].path_kind, PATH_PREFIX);
    cr_assert_eq(a->vhosts[0].routes[1].path_kind, PATH_EXACT);
    pl_route_table_free(a);
    pl_route_table_free(b);
}
