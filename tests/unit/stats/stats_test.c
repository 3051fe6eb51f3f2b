#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

static char *render(struct pl_stats *s, enum pl_stats_format f, const char *filter, bool used)
{
    struct pl_stats_render_opts o = {.filter = filter, .used_only = used};
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(pl_stats_render(s, f, &o, &out, &len), 0);
    cr_assert_eq(strlen(out), len);
    return out;
}

#define EXPECT_RENDER(s, f, filter, used, expected)                                                \
    do {                                                                                           \
        char *got_ = render(s, f, filter, used);                                                   \
        cr_assert_str_eq(got_, expected);                                                          \
        free(got_);                                                                                \
    } while (0)

Test(stats, counters_and_gauges_text_sorted)
{
    struct pl_stats *s = pl_stats_new();
    struct pl_counter b = pl_stats_counter(s, "cluster.web.upstream_rq_total");
    struct pl_counter a = pl_stats_counter(s, "cluster.api.upstream_rq_total");
    struct pl_gauge g = pl_stats_gauge(s, "cluster.web.upstream_cx_active");
    pl_stats_counter(s, "server.unused");
    pl_counter_add(b, 5);
    pl_counter_inc(a);
    pl_gauge_add(g, 3);
    pl_gauge_add(g, -1);
    EXPECT_RENDER(s, PL_STATS_TEXT, NULL, false,
                  "cluster.api.upstream_rq_total: 1\n"
                  "cluster.web.upstream_cx_active: 2\n"
                  "cluster.web.upstream_rq_total: 5\n"
                  "server.unused: 0\n");
    EXPECT_RENDER(s, PL_STATS_TEXT, NULL, true,
                  "cluster.api.upstream_rq_total: 1\n"
                  "cluster.web.upstream_cx_active: 2\n"
                  "cluster.web.upstream_rq_total: 5\n");
    EXPECT_RENDER(s, PL_STATS_TEXT, "web\\..*total", false, "cluster.web.upstream_rq_total: 5\n");
    EXPECT_RENDER(s, PL_STATS_TEXT, "^server", false, "server.unused: 0\n");
    cr_assert_eq(pl_counter_value(b), 5);
    cr_assert_eq(pl_gauge_value(g), 2);
    pl_stats_free(s);
}

Test(stats, same_name_same_handle_and_kind_clash)
{
    struct pl_stats *s = pl_stats_new();
    struct pl_counter a = pl_stats_counter(s, "x.y");
    struct pl_counter b = pl_stats_counter(s, "x.y");
    cr_assert_eq(a.slot, b.slot);
    struct pl_gauge g = pl_stats_gauge(s, "x.y"); /* logged, discarded */
    pl_gauge_add(g, 7);
    pl_counter_add(a, 2);
    EXPECT_RENDER(s, PL_STATS_TEXT, NULL, false, "x.y: 2\n");
    pl_stats_free(s);
}

Test(stats, bad_filter)
{
    struct pl_stats *s = pl_stats_new();
    struct pl_stats_render_opts o = {.filter = "(unclosed"};
    char *out = NULL;
    cr_assert_eq(pl_stats_render(s, PL_STATS_TEXT, &o, &out, NULL), PL_EINVAL);
    cr_assert_null(out);
    pl_stats_free(s);
}

Test(stats, reset_counters)
{
    struct pl_stats *s = pl_stats_new();
    struct pl_counter c = pl_stats_counter(s, "a.c");
    struct pl_gauge g = pl_stats_gauge(s, "a.g");
    pl_counter_add(c, 10);
    pl_gauge_set(g, 4);
    pl_stats_reset_counters(s);
    cr_assert_eq(pl_counter_value(c), 0);
    cr_assert_eq(pl_gauge_value(g), 4);
    pl_counter_add(c, 3);
    /* a reset counter still counts as used, as in Envoy */
    EXPECT_RENDER(s, PL_STATS_TEXT, NULL, true, "a.c: 3\na.g: 4\n");
    pl_stats_free(s);
}

Test(stats, gauge_set_and_used)
{
    struct pl_stats *s = pl_stats_new();
    struct pl_gauge g = pl_stats_gauge(s, "server.live");
    pl_stats_gauge(s, "server.never");
    pl_gauge_set(g, 1);
    pl_gauge_set(g, 0);
    EXPECT_RENDER(s, PL_STATS_TEXT, NULL, true, "server.live: 0\n");
    pl_stats_free(s);
}

Test(stats, histogram_text)
{
    struct pl_stats *s = pl_stats_new();
    struct pl_histogram h = pl_stats_histogram(s, "cluster.web.upstream_rq_time");
    pl_stats_histogram(s, "cluster.web.upstream_cx_length_ms");
    pl_stats_counter(s, "cluster.web.upstream_rq_total");
    for (int i = 0; i < 4; i++)
        pl_histogram_record(h, 3); /* bucket (1, 5] */
    for (int i = 0; i < 4; i++)
        pl_histogram_record(h, 20); /* bucket (10, 25] */
    pl_histogram_record(h, 40);     /* bucket (25, 50] */
    pl_histogram_record(h, 700000); /* bucket (600000, 1800000] */
    uint64_t count, sum;
    pl_histogram_totals(h, &count, &sum);
    cr_assert_eq(count, 10);
    cr_assert_eq(sum, 12 + 80 + 40 + 700000);
    /* P0 and P100 are the extremes; others interpolate inside their bucket:
     * P25: rank 2.5 of 4 in [3,5] -> 3 + 2*2.5/4 = 4.25; P50: rank 5 -> 1 of 4 in [10,25] -> 13.75
     * P75: rank 7.5 -> 3.5 of 4 -> 23.125; P90: rank 9 -> 1 of 1 in [25,50] -> 50 (clamped to
     * <= max); P95: rank 9.5 -> .5 of 1 in [600000,700000] -> 650000 */
    EXPECT_RENDER(s, PL_STATS_TEXT, NULL, false,
                  "cluster.web.upstream_rq_total: 0\n"
                  "cluster.web.upstream_cx_length_ms: No recorded values\n"
                  "cluster.web.upstream_rq_time: P0(nan,3) P25(nan,4.25) P50(nan,13.75) "
                  "P75(nan,23.125) P90(nan,50) P95(nan,650000) P99(nan,690000) "
                  "P99.5(nan,695000) P99.9(nan,699000) P100(nan,700000)\n");
    EXPECT_RENDER(s, PL_STATS_TEXT, "rq_time", true,
                  "cluster.web.upstream_rq_time: P0(nan,3) P25(nan,4.25) P50(nan,13.75) "
                  "P75(nan,23.125) P90(nan,50) P95(nan,650000) P99(nan,690000) "
                  "P99.5(nan,695000) P99.9(nan,699000) P100(nan,700000)\n");
    pl_stats_free(s);
}

Test(stats, json)
{
    struct pl_stats *s = pl_stats_new();
    pl_counter_add(pl_stats_counter(s, "b.count"), 7);
    pl_gauge_set(pl_stats_gauge(s, "a.\"quoted\""), -2);
    struct pl_histogram h = pl_stats_histogram(s, "c.hist");
    pl_stats_histogram(s, "d.empty");
    pl_histogram_record(h, 0);
    pl_histogram_record(h, 0);
    EXPECT_RENDER(s, PL_STATS_JSON, NULL, false,
                  "{\"stats\":[{\"name\":\"a.\\\"quoted\\\"\",\"value\":-2},"
                  "{\"name\":\"b.count\",\"value\":7},"
                  "{\"histograms\":{\"supported_quantiles\":[0,25,50,75,90,95,99,99.5,99.9,100],"
                  "\"computed_quantiles\":["
                  "{\"name\":\"c.hist\",\"values\":["
                  "{\"interval\":null,\"cumulative\":0},{\"interval\":null,\"cumulative\":0},"
                  "{\"interval\":null,\"cumulative\":0},{\"interval\":null,\"cumulative\":0},"
                  "{\"interval\":null,\"cumulative\":0},{\"interval\":null,\"cumulative\":0},"
                  "{\"interval\":null,\"cumulative\":0},{\"interval\":null,\"cumulative\":0},"
                  "{\"interval\":null,\"cumulative\":0},{\"interval\":null,\"cumulative\":0}]},"
                  "{\"name\":\"d.empty\",\"values\":["
                  "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null},"
                  "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null},"
                  "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null},"
                  "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null},"
                  "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null}"
                  "]}]}}]}\n");
    EXPECT_RENDER(s, PL_STATS_JSON, "^b", false,
                  "{\"stats\":[{\"name\":\"b.count\",\"value\":7}]}\n");
    EXPECT_RENDER(s, PL_STATS_JSON, "nomatch", false, "{\"stats\":[]}\n");
    pl_stats_free(s);
}

static const char *tags_of(const char *name, char *out_name, char *labels)
{
    struct pl_stats_tag t[8];
    char buf[512];
    int n = pl_stats_extract_tags(name, out_name, 256, t, 8, buf, sizeof(buf));
    labels[0] = 0;
    for (int i = 0; i < n; i++)
        sprintf(labels + strlen(labels), "%s%s=%s", i ? "," : "", t[i].name, t[i].value);
    return out_name;
}

Test(stats, tag_extraction)
{
    char n[256], l[512];
    cr_assert_str_eq(tags_of("cluster.web.upstream_rq_total", n, l), "cluster.upstream_rq_total");
    cr_assert_str_eq(l, "envoy.cluster_name=web");
    cr_assert_str_eq(tags_of("cluster.web.upstream_rq_2xx", n, l), "cluster.upstream_rq_xx");
    cr_assert_str_eq(l, "envoy.response_code_class=2,envoy.cluster_name=web");
    cr_assert_str_eq(tags_of("cluster.web.upstream_rq_503", n, l), "cluster.upstream_rq");
    cr_assert_str_eq(l, "envoy.response_code=503,envoy.cluster_name=web");
    cr_assert_str_eq(tags_of("http.ingress.downstream_rq_total", n, l), "http.downstream_rq_total");
    cr_assert_str_eq(l, "envoy.http_conn_manager_prefix=ingress");
    cr_assert_str_eq(tags_of("listener.0.0.0.0_15001.downstream_cx_total", n, l),
                     "listener.downstream_cx_total");
    cr_assert_str_eq(l, "envoy.listener_address=0.0.0.0_15001");
    cr_assert_str_eq(tags_of("listener.[__1]_15000.downstream_cx_total", n, l),
                     "listener.downstream_cx_total");
    cr_assert_str_eq(l, "envoy.listener_address=[__1]_15000");
    cr_assert_str_eq(tags_of("listener.admin.downstream_cx_total", n, l),
                     "listener.admin.downstream_cx_total");
    cr_assert_str_eq(l, "");
    cr_assert_str_eq(tags_of("listener.10.0.0.1_80.http.inbound.downstream_rq_4xx", n, l),
                     "listener.http.downstream_rq_xx");
    cr_assert_str_eq(l, "envoy.response_code_class=4,envoy.http_conn_manager_prefix=inbound,"
                        "envoy.listener_address=10.0.0.1_80");
    cr_assert_str_eq(tags_of("listener.0.0.0.0_80.worker_3.downstream_cx_active", n, l),
                     "listener.worker_downstream_cx_active");
    cr_assert_str_eq(l, "envoy.worker_id=3,envoy.listener_address=0.0.0.0_80");
    cr_assert_str_eq(tags_of("server.uptime", n, l), "server.uptime");
    cr_assert_str_eq(l, "");
    cr_assert_str_eq(tags_of("cluster.web", n, l), "cluster.web");
}

Test(stats, prometheus)
{
    struct pl_stats *s = pl_stats_new();
    pl_counter_add(pl_stats_counter(s, "cluster.web.upstream_rq_total"), 5);
    pl_counter_add(pl_stats_counter(s, "cluster.api.upstream_rq_total"), 2);
    pl_counter_add(pl_stats_counter(s, "cluster.web.upstream_rq_2xx"), 4);
    pl_counter_add(pl_stats_counter(s, "cluster.web.upstream_rq_5xx"), 1);
    pl_counter_add(pl_stats_counter(s, "cluster.web.upstream_rq_200"), 4);
    pl_gauge_set(pl_stats_gauge(s, "server.live"), 1);
    pl_gauge_add(pl_stats_gauge(s, "listener.0.0.0.0_15001.downstream_cx_active"), 2);
    pl_stats_counter(s, "http.ingress.rq-weird:name");
    struct pl_histogram h = pl_stats_histogram(s, "cluster.web.upstream_rq_time");
    pl_histogram_record(h, 3);
    pl_histogram_record(h, 70);
    pl_histogram_record(h, 4000000);
    EXPECT_RENDER(
        s, PL_STATS_PROMETHEUS, NULL, false,
        "# TYPE pillion_cluster_upstream_rq counter\n"
        "pillion_cluster_upstream_rq{envoy_response_code=\"200\",envoy_cluster_name=\"web\"} 4\n"
        "# TYPE pillion_cluster_upstream_rq_total counter\n"
        "pillion_cluster_upstream_rq_total{envoy_cluster_name=\"api\"} 2\n"
        "pillion_cluster_upstream_rq_total{envoy_cluster_name=\"web\"} 5\n"
        "# TYPE pillion_cluster_upstream_rq_xx counter\n"
        "pillion_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"web\"}"
        " "
        "4\n"
        "pillion_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"web\"}"
        " "
        "1\n"
        "# TYPE pillion_http_rq_weird_name counter\n"
        "pillion_http_rq_weird_name{envoy_http_conn_manager_prefix=\"ingress\"} 0\n"
        "# TYPE pillion_listener_downstream_cx_active gauge\n"
        "pillion_listener_downstream_cx_active{envoy_listener_address=\"0.0.0.0_15001\"} 2\n"
        "# TYPE pillion_server_live gauge\n"
        "pillion_server_live{} 1\n"
        "# TYPE pillion_cluster_upstream_rq_time histogram\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"0.5\"} 0\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"1\"} 0\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"5\"} 1\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"10\"} 1\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"25\"} 1\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"50\"} 1\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"100\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"250\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"500\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"1000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"2500\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"5000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"10000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"30000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"60000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"300000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"600000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"1800000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"3600000\"} 2\n"
        "pillion_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"+Inf\"} 3\n"
        "pillion_cluster_upstream_rq_time_sum{envoy_cluster_name=\"web\"} 4000073\n"
        "pillion_cluster_upstream_rq_time_count{envoy_cluster_name=\"web\"} 3\n");
    EXPECT_RENDER(s, PL_STATS_PROMETHEUS, "server", true,
                  "# TYPE pillion_server_live gauge\npillion_server_live{} 1\n");
    pl_stats_free(s);
}

Test(stats, many_stats_grow_blocks)
{
    struct pl_stats *s = pl_stats_new();
    struct pl_stats_shard *sh = pl_stats_shard_new(s);
    pl_stats_shard_bind(sh);
    char name[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "h.%05d", i);
        pl_histogram_record(pl_stats_histogram(s, name), (uint64_t)i);
        snprintf(name, sizeof(name), "c.%05d", i);
        pl_counter_add(pl_stats_counter(s, name), (uint64_t)i);
    }
    for (int i = 0; i < 3000; i += 499) {
        snprintf(name, sizeof(name), "c.%05d", i);
        cr_assert_eq(pl_counter_value(pl_stats_counter(s, name)), (uint64_t)i);
        snprintf(name, sizeof(name), "h.%05d", i);
        uint64_t c, sum;
        pl_histogram_totals(pl_stats_histogram(s, name), &c, &sum);
        cr_assert_eq(c, 1);
        cr_assert_eq(sum, (uint64_t)i);
    }
    pl_stats_shard_bind(NULL);
    pl_stats_free(s);
}
