/* Compile errors (with field paths), a 10k-route compile measurement, and concurrent matching. */
#include <malloc.h>
#include <pthread.h>
#include <time.h>

#include "rt_util.h"

TestSuite(router_compile, .fini = pl_router_thread_cleanup);

#define VH(routes) "virtual_hosts: [{name: v, domains: ['*'], routes: [" routes "]}]\n"

Test(router_compile, regex_errors_have_paths)
{
    rt_expect_err("virtual_hosts: [{name: v, domains: ['*'], routes: [\n"
                  "  {match: {prefix: /a}, route: {cluster: c}},\n"
                  "  {match: {prefix: /b}, route: {cluster: c}},\n"
                  "  {match: {safe_regex: {regex: '/(unclosed'}}, route: {cluster: c}}]}]\n",
                  PL_EINVAL, "route_config.virtual_hosts[0].routes[2].match.safe_regex.regex",
                  "invalid regex '/(unclosed'", NULL);
    rt_expect_err(VH("{match: {prefix: /, headers: [{name: x, safe_regex_match: {regex: '['}}]}, "
                     "route: {cluster: c}}"),
                  PL_EINVAL, "routes[0].match.headers[0].safe_regex_match.regex", NULL);
    rt_expect_err(VH("{match: {prefix: /, query_parameters: [{name: q, string_match: {safe_regex: "
                     "{regex: '*'}}}]}, route: {cluster: c}}"),
                  PL_EINVAL, "routes[0].match.query_parameters[0].string_match.safe_regex.regex",
                  NULL);
    rt_expect_err(VH("{match: {safe_regex: {regex: ''}}, route: {cluster: c}}"), PL_EINVAL,
                  "safe_regex.regex", "must not be empty", NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c, regex_rewrite: {pattern: {regex: "
                     "'(a)'}, substitution: '\\2'}}}"),
                  PL_EINVAL, "routes[0].route.regex_rewrite.substitution", "group \\2", NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c, regex_rewrite: {pattern: {regex: "
                     "'(a)'}, substitution: '\\x'}}}"),
                  PL_EINVAL, "routes[0].route.regex_rewrite.substitution", "backslash", NULL);
}

Test(router_compile, header_mutation_errors)
{
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: "
                     "[{header: {key: x, value: '%BOGUS_VAR%'}}]}"),
                  PL_EINVAL, "routes[0].request_headers_to_add[0].header.value",
                  "unsupported header variable '%BOGUS_VAR%'", NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: "
                     "[{header: {key: x, value: '50%'}}]}"),
                  PL_EINVAL, "un-terminated variable", NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: "
                     "[{header: {key: x, value: v}, append: true, append_action: "
                     "ADD_IF_ABSENT}]}"),
                  PL_EINVAL, "routes[0].request_headers_to_add[0]", "both append and", NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: "
                     "[{header: {key: ':path', value: v}}]}"),
                  PL_EINVAL, "request_headers_to_add[0].header.key", "may not be modified", NULL);
    rt_expect_err("response_headers_to_remove: [Host]\n" VH(""), PL_EINVAL,
                  "route_config.response_headers_to_remove[0]", "may not be removed", NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: "
                     "[{header: {key: 'bad name', value: v}}]}"),
                  PL_EINVAL, "invalid header name", NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: "
                     "[{header: {key: x, value: '%REQ()%'}}]}"),
                  PL_EINVAL, "%REQ%", NULL);
}

Test(router_compile, structure_errors)
{
    rt_expect_err("virtual_hosts: [{name: a, domains: [x.com, '*']}, {name: b, domains: "
                  "['X.com', '*']}]\n",
                  PL_EINVAL, "virtual_hosts[1].domains[0]", "duplicate entry of domain 'X.com'",
                  "virtual_hosts[1].domains[1]", "single wildcard", NULL);
    rt_expect_err("virtual_hosts: [{name: a}]\n", PL_EINVAL, "virtual_hosts[0].domains", NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {weighted_clusters: {clusters: [{name: a, "
                     "weight: 0}]}}}"),
                  PL_EINVAL, "routes[0].route.weighted_clusters", "greater than 0", NULL);
    rt_expect_err(VH("{match: {prefix: /}, direct_response: {status: 700}}"), PL_EINVAL,
                  "routes[0].direct_response.status", NULL);
    rt_expect_err(VH("{match: {prefix: /}, direct_response: {status: 200, body: {filename: "
                     "/nonexistent/body}}}"),
                  PL_EIO, "routes[0].direct_response.body.filename", NULL);
    char *big = pl_malloc(5000);
    memset(big, 'b', 4999);
    big[4999] = 0;
    char *y = pl_asprintf(VH("{match: {prefix: /}, direct_response: {status: 200, body: "
                             "{inline_string: %s}}}"),
                          big);
    rt_expect_err(y, PL_EINVAL, "response body size is 4999 bytes; maximum is 4096", NULL);
    free(y);
    y = pl_asprintf("max_direct_response_body_size_bytes: 5000\n" VH(
                        "{match: {prefix: /}, direct_response: {status: 200, body: "
                        "{inline_string: %s}}}"),
                    big);
    pl_route_table_free(rt_compile(y));
    free(y);
    free(big);
    rt_expect_err(VH("{match: {prefix: /}, route: {cluster: c, prefix_rewrite: /x, "
                     "regex_rewrite: {pattern: {regex: a}, substitution: b}}}"),
                  PL_EINVAL, "only one of prefix_rewrite or regex_rewrite", NULL);
    rt_expect_err(VH("{match: {path_separated_prefix: /api/}, route: {cluster: c}}"), PL_EINVAL,
                  "routes[0].match.path_separated_prefix", NULL);
    rt_expect_err(VH("{match: {prefix: /}}"), PL_EINVAL, "routes[0]", "one of route, redirect",
                  NULL);
    rt_expect_err(VH("{match: {prefix: /}, route: {}}"), PL_EINVAL, "routes[0].route",
                  "one of cluster, cluster_header, weighted_clusters", NULL);
    rt_expect_err(VH("{route: {cluster: c}}"), PL_EINVAL, "routes[0]", "needs a match", NULL);
    rt_expect_err(VH("{match: {prefix: /, headers: [{name: x, prefix_match: ''}]}, route: "
                     "{cluster: c}}"),
                  PL_EINVAL, "routes[0].match.headers[0]", NULL);
}

Test(router_compile, unsupported)
{
    rt_expect_err(VH("{match: {prefix: /, runtime_fraction: {default_value: {numerator: 50}}}, "
                     "route: {cluster: c}}"),
                  PL_ENOTSUP, "routes[0].match.runtime_fraction", NULL);
    rt_expect_err(VH("{match: {prefix: /, headers: [{name: x, range_match: {start: 1, end: "
                     "2}}]}, route: {cluster: c}}"),
                  PL_ENOTSUP, "routes[0].match.headers[0].range_match", NULL);
    rt_expect_err(VH("{match: {connect_matcher: {}}, route: {cluster: c}}"), PL_ENOTSUP,
                  "routes[0].match", NULL);
}

Test(router_compile, every_error_is_reported)
{
    struct pl_route_table *t;
    char *msgs;
    int rc = rt_try(VH("{match: {safe_regex: {regex: '('}}, route: {cluster: c}},"
                       "{match: {prefix: /}, direct_response: {status: 1}},"
                       "{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: "
                       "[{header: {key: x, value: '%NOPE%'}}]}"),
                    &t, &msgs);
    cr_assert_eq(rc, PL_EINVAL);
    cr_assert(strstr(msgs, "routes[0]") && strstr(msgs, "routes[1]") && strstr(msgs, "routes[2]"),
              "%s", msgs);
    free(msgs);
}

Test(router_compile, ten_thousand_routes)
{
    size_t cap = 1 << 20, n = 0;
    char *y = pl_malloc(cap);
    n += (size_t)snprintf(y + n, cap - n, "virtual_hosts:\n");
    for (int v = 0; v < 100; v++) {
        if (cap - n < 100000)
            y = pl_realloc(y, cap *= 2);
        n += (size_t)snprintf(y + n, cap - n,
                              "- name: vh%d\n  domains: [svc%d.ns.svc, 'svc%d.*']\n  routes:\n", v,
                              v, v);
        for (int r = 0; r < 100; r++) {
            const char *kind = r % 4 == 0   ? "safe_regex: {regex: '/r%d/[a-z]+/[0-9]{1,6}'}"
                               : r % 4 == 1 ? "path: /p%d"
                               : r % 4 == 2 ? "prefix: /x%d/"
                                            : "path_separated_prefix: /s%d";
            char m[128];
            snprintf(m, sizeof(m), kind, r);
            n += (size_t)snprintf(y + n, cap - n,
                                  "  - match: {%s, headers: [{name: x-v, exact_match: '%d'}]}\n"
                                  "    route: {cluster: c%d, timeout: 3s}\n"
                                  "    request_headers_to_add: [{header: {key: x-r, value: '%d "
                                  "%%DOWNSTREAM_REMOTE_ADDRESS%%'}}]\n",
                                  m, r, r, r);
        }
    }
    struct pl_err e = PL_ERR_INIT;
    ProtobufCMessage *msg = NULL;
    cr_assert_eq(pl_pbjson_load_text(y, n, "big.yaml", RC_DESC, NULL, &msg, NULL, &e), 0);
    free(y);
    struct mallinfo2 before = mallinfo2();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct pl_route_table *t;
    cr_assert_eq(pl_router_compile((void *)msg, NULL, &t, &e), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct mallinfo2 after = mallinfo2();
    protobuf_c_message_free_unpacked(msg, NULL);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    cr_log_info("10000 routes (2500 regexes): compile %.1f ms, ~%.1f MiB heap", ms,
                ((double)after.uordblks - (double)before.uordblks) / 1048576.0);
    /* a request that walks to the last route of its virtual host */
    struct rt_req r;
    rt_req_init(&r, "GET", "svc99.ns.svc", "/s99/z", "x-v", "99", NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 10000; i++)
        cr_assert_not_null(rt_route(t, &r));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    cr_log_info("worst-case match over 100 routes: %.2f us", ms * 1e3 / 10000);
    rt_req_free(&r);
    RT_EXPECT(t, "svc7.other", "/r4/abc/123", "", "x-v", "4");
    RT_EXPECT(t, "svc7.ns.svc", "/r4/abc/1234567", NULL, "x-v", "4");
    pl_route_table_free(t);
}

struct thr {
    const struct pl_route_table *t;
    int ok;
};

static void *worker(void *arg)
{
    struct thr *th = arg;
    for (int i = 0; i < 2000; i++) {
        struct rt_req r;
        char path[64];
        snprintf(path, sizeof(path), "/item/%d/detail?x=%d", i, i);
        rt_req_init(&r, "GET", "h", path, "x-id", i % 2 ? "abc123" : "zzz", NULL);
        const char *got = rt_route(th->t, &r);
        if (got && !strcmp(got, i % 2 ? "both" : "path"))
            th->ok++;
        rt_req_free(&r);
    }
    pl_router_thread_cleanup();
    return NULL;
}

Test(router_compile, concurrent_matching)
{
    struct pl_route_table *t = rt_compile(
        VH("{name: both, match: {safe_regex: {regex: '/item/([0-9]+)/(detail|summary)'}, headers: "
           "[{name: x-id, safe_regex_match: {regex: '([a-z]+)([0-9]+)'}}]}, route: {cluster: c}},"
           "{name: path, match: {safe_regex: {regex: '/item/[0-9]+/.*'}}, route: {cluster: c}}"));
    struct thr th[4];
    pthread_t tid[4];
    for (int i = 0; i < 4; i++) {
        th[i] = (struct thr){t, 0};
        pthread_create(&tid[i], NULL, worker, &th[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        cr_assert_eq(th[i].ok, 2000);
    }
    pl_route_table_free(t);
}
