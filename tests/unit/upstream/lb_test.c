/* Load balancers, host sets and the per-worker runtime across snapshot swaps. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <math.h>

#include "up_test.h"

#define N_PICKS 100000

struct ep {
    unsigned port;
    unsigned weight; /* 0: unset */
    const char *health;
};

/* A bootstrap with one STATIC cluster named name on 127.0.0.1:<port> endpoints. */
static char *cluster_yaml(const char *name, const char *policy, const char *extra,
                          const struct ep *eps, size_t n)
{
    size_t cap = 4096 + n * 256;
    char *y = malloc(cap);
    int off = snprintf(y, cap,
                       "static_resources:\n"
                       "  clusters:\n"
                       "  - name: %s\n"
                       "    type: STATIC\n"
                       "    lb_policy: %s\n"
                       "%s"
                       "    load_assignment:\n"
                       "      cluster_name: %s\n"
                       "      endpoints:\n"
                       "      - lb_endpoints:\n",
                       name, policy, extra ? extra : "", name);
    for (size_t i = 0; i < n; i++) {
        off += snprintf(y + off, cap - off,
                        "        - endpoint: {address: {socket_address: {address: 127.0.0.1, "
                        "port_value: %u}}}\n",
                        eps[i].port);
        if (eps[i].weight)
            off += snprintf(y + off, cap - off, "          load_balancing_weight: %u\n",
                            eps[i].weight);
        if (eps[i].health)
            off += snprintf(y + off, cap - off, "          health_status: %s\n", eps[i].health);
    }
    return y;
}

static struct pl_snapshot *snap_of(const char *policy, const char *extra, const struct ep *eps,
                                   size_t n)
{
    char *y = cluster_yaml("c", policy, extra, eps, n);
    struct pl_snapshot *s = yaml_snap(y);
    free(y);
    return s;
}

static unsigned port_of(const struct pl_host_rt *h)
{
    return ntohs(((const struct sockaddr_in *)&h->addr)->sin_port);
}

/* Picks N_PICKS times (random hashes for hashing LBs) and counts per port 1000..1009. */
static void count_picks(struct pl_cluster_rt *c, unsigned *counts, bool hashed)
{
    memset(counts, 0, 10 * sizeof(*counts));
    uint64_t x = 12345;
    for (int i = 0; i < N_PICKS; i++) {
        struct pl_lb_ctx ctx = {0};
        if (hashed) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            ctx.has_hash = true;
            ctx.hash = pl_upstream_xxhash64(&x, sizeof(x), 0);
        }
        struct pl_host_rt *h = pl_upstream_pick(c, &ctx);
        cr_assert_not_null(h);
        unsigned p = port_of(h);
        cr_assert(p >= 1000 && p < 1010);
        counts[p - 1000]++;
    }
}

/* Asserts that counts follow weights within tol (relative). */
static void assert_weighted(const unsigned *counts, const unsigned *w, size_t n, double tol)
{
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    for (size_t i = 0; i < n; i++) {
        double want = N_PICKS * w[i] / total;
        cr_assert(fabs(counts[i] - want) <= tol * want, "host %zu: %u picks, want %.0f +- %.0f%%",
                  i, counts[i], want, tol * 100);
    }
}

static const struct ep weighted3[] = {{1000, 1, NULL}, {1001, 2, NULL}, {1002, 5, NULL}};
static const unsigned w3[] = {1, 2, 5};

static void check_policy(const char *policy, const char *extra, bool hashed, double tol)
{
    struct pl_snapshot *s = snap_of(policy, extra, weighted3, 3);
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    unsigned counts[10];
    count_picks(c, counts, hashed);
    assert_weighted(counts, w3, 3, tol);
    pl_snapshot_free(s);
}

TestSuite(lb, .init = up_setup, .fini = up_teardown);

Test(lb, hashes_match_reference)
{
    /* reference values from libxxhash 0.8.1 and libstdc++'s std::hash<std::string> */
    cr_assert_eq(pl_upstream_xxhash64("", 0, 0), 0xef46db3751d8e999ULL);
    cr_assert_eq(pl_upstream_xxhash64("abc", 3, 0), 0x44bc2cf5ad770999ULL);
    cr_assert_eq(pl_upstream_xxhash64("abc", 3, 1), 0xbea9ca8199328908ULL);
    cr_assert_eq(pl_upstream_xxhash64("10.0.0.1:80_0", 13, 0), 0x75041381e7371a08ULL);
    const char *fox = "The quick brown fox jumps over the lazy dog, twice over!";
    cr_assert_eq(pl_upstream_xxhash64(fox, strlen(fox), 0), 0x709fb4a3913333dULL);
    cr_assert_eq(pl_upstream_xxhash64(fox, strlen(fox), 7), 0xa97de0f626bdb4b1ULL);
    cr_assert_eq(pl_upstream_murmur2("", 0, 0xc70f6907), 0x553e93901e462a6eULL);
    cr_assert_eq(pl_upstream_murmur2("abc", 3, 0xc70f6907), 0x32d82bf8ed3dba39ULL);
    cr_assert_eq(pl_upstream_murmur2("10.0.0.1:80_0", 13, 0xc70f6907), 0xbd8f6461ecffb28cULL);
    cr_assert_eq(pl_upstream_murmur2(fox, strlen(fox), 0xc70f6907), 0x1442ca4bce39bf29ULL);
}

Test(lb, round_robin_weighted_is_exact)
{
    check_policy("ROUND_ROBIN", NULL, false, 0.001);
}

Test(lb, round_robin_equal_rotates)
{
    static const struct ep eps[] = {{1000, 0, NULL}, {1001, 0, NULL}, {1002, 0, NULL}};
    struct pl_snapshot *s = snap_of("ROUND_ROBIN", NULL, eps, 3);
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    unsigned first = port_of(pl_upstream_pick(c, NULL));
    for (int i = 1; i < 30; i++)
        cr_assert_eq(port_of(pl_upstream_pick(c, NULL)), 1000 + (first - 1000 + i) % 3);
    pl_snapshot_free(s);
}

Test(lb, random_weighted)
{
    check_policy("RANDOM", NULL, false, 0.03);
}

Test(lb, least_request_weighted_idle)
{
    check_policy("LEAST_REQUEST", NULL, false, 0.001);
}

Test(lb, ring_hash_weighted)
{
    check_policy("RING_HASH", NULL, true, 0.15);
    check_policy("RING_HASH", "    ring_hash_lb_config: {minimum_ring_size: 65536}\n", true, 0.05);
    check_policy("RING_HASH", "    ring_hash_lb_config: {hash_function: MURMUR_HASH_2}\n", true,
                 0.15);
}

Test(lb, maglev_weighted)
{
    check_policy("MAGLEV", NULL, true, 0.03);
    check_policy("MAGLEV", "    maglev_lb_config: {table_size: 1009}\n", true, 0.05);
}

Test(lb, least_request_equal_uniform)
{
    static const struct ep eps[] = {
        {1000, 0, NULL}, {1001, 0, NULL}, {1002, 0, NULL}, {1003, 0, NULL}};
    static const unsigned w[] = {1, 1, 1, 1};
    struct pl_snapshot *s = snap_of("LEAST_REQUEST", NULL, eps, 4);
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    unsigned counts[10];
    count_picks(c, counts, false);
    assert_weighted(counts, w, 4, 0.05);
    pl_snapshot_free(s);
}

/* Marks every host but port 1003 busy and counts how often 1003 wins. */
static double idle_share(const char *extra, const struct ep *eps)
{
    struct pl_snapshot *s = snap_of("LEAST_REQUEST", extra, eps, 4);
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    struct pl_host_rt *hosts[4] = {0};
    for (int i = 0; i < 200; i++) {
        struct pl_host_rt *h = pl_upstream_pick(c, NULL);
        hosts[port_of(h) - 1000] = h;
    }
    for (int i = 0; i < 4; i++) {
        cr_assert_not_null(hosts[i]);
        hosts[i]->active_rq = i == 3 ? 0 : 10;
    }
    unsigned counts[10];
    count_picks(c, counts, false);
    pl_snapshot_free(s);
    return counts[3] / (double)N_PICKS;
}

Test(lb, least_request_prefers_idle)
{
    static const struct ep eq[] = {
        {1000, 0, NULL}, {1001, 0, NULL}, {1002, 0, NULL}, {1003, 0, NULL}};
    /* two choices: the idle host wins whenever it is sampled, 1 - (3/4)^2 = 43.75% */
    double share = idle_share(NULL, eq);
    cr_assert(share > 0.41 && share < 0.47, "idle share %f", share);
    /* four choices: 1 - (3/4)^4 = 68.4% */
    share = idle_share("    least_request_lb_config: {choice_count: 4}\n", eq);
    cr_assert(share > 0.65 && share < 0.72, "idle share %f", share);
    /* weighted: weight / (active + 1): 3 / (3 + 3 * 2/11) = 84.6% */
    static const struct ep wt[] = {
        {1000, 2, NULL}, {1001, 2, NULL}, {1002, 2, NULL}, {1003, 3, NULL}};
    share = idle_share(NULL, wt);
    cr_assert(share > 0.83 && share < 0.86, "idle share %f", share);
}

/* Maps 10000 keys; returns the ports in out. */
static void map_keys(struct pl_cluster_rt *c, unsigned *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct pl_lb_ctx ctx = {.has_hash = true, .hash = pl_upstream_xxhash64(&i, sizeof(i), 9)};
        out[i] = port_of(pl_upstream_pick(c, &ctx));
    }
}

static void check_consistency(const char *policy)
{
    enum { N_KEYS = 10000 };
    struct ep eps[10];
    for (int i = 0; i < 10; i++)
        eps[i] = (struct ep){1000 + i, 0, NULL};
    struct pl_snapshot *s1 = snap_of(policy, NULL, eps, 10);
    struct pl_cluster_rt *c = pl_upstream_cluster(s1->clusters[0]);
    unsigned *before = calloc(N_KEYS, sizeof(unsigned)), *after = calloc(N_KEYS, sizeof(unsigned));
    map_keys(c, before, N_KEYS);
    for (int i = 0; i < N_KEYS; i++) /* deterministic */
        cr_assert_eq(port_of(pl_upstream_pick(
                         c, &(struct pl_lb_ctx){.has_hash = true,
                                                .hash = pl_upstream_xxhash64(&(size_t){(size_t)i},
                                                                             sizeof(size_t), 9)})),
                     before[i]);
    /* remove the host on port 1004 */
    struct ep fewer[9];
    for (int i = 0, j = 0; i < 10; i++)
        if (i != 4)
            fewer[j++] = eps[i];
    struct pl_snapshot *s2 = snap_of(policy, NULL, fewer, 9);
    cr_assert_eq(pl_upstream_cluster(s2->clusters[0]), c, "same runtime object per name");
    map_keys(c, after, N_KEYS);
    size_t on_removed = 0, moved = 0;
    for (int i = 0; i < N_KEYS; i++) {
        cr_assert_neq(after[i], 1004);
        if (before[i] == 1004)
            on_removed++;
        else if (after[i] != before[i])
            moved++;
    }
    /* ~1/N of the keys lived on the removed host; few of the others move */
    cr_assert(on_removed > N_KEYS / 20 && on_removed < N_KEYS / 5, "%zu on removed", on_removed);
    cr_assert(moved < N_KEYS / 10, "%s: %zu keys of other hosts moved", policy, moved);
    free(before);
    free(after);
    pl_snapshot_free(s1);
    pl_snapshot_free(s2);
}

Test(lb, ring_hash_consistent)
{
    check_consistency("RING_HASH");
}

Test(lb, maglev_consistent)
{
    check_consistency("MAGLEV");
}

Test(lb, runtime_survives_unchanged_cluster)
{
    static const struct ep eps[] = {{1000, 1, NULL}, {1001, 2, NULL}, {1002, 3, NULL}};
    struct pl_snapshot *s1 = snap_of("ROUND_ROBIN", NULL, eps, 3);
    struct pl_cluster_rt *c = pl_upstream_cluster(s1->clusters[0]);
    struct up_cluster *uc = (struct up_cluster *)c;
    struct pl_host_rt *h = pl_upstream_pick(c, NULL);
    h->pool_h1 = (void *)0x1; /* as the HTTP pools would */
    h->active_rq = 3;
    for (int i = 0; i < 7; i++)
        pl_upstream_pick(c, NULL);
    struct up_hostset *hs = uc->hs;
    double edf_now = uc->edf_now;

    /* the same cluster in a new snapshot: nothing is rebuilt */
    struct pl_snapshot *s2 = snap_of("ROUND_ROBIN", NULL, eps, 3);
    cr_assert_eq(s1->clusters[0]->hash, s2->clusters[0]->hash);
    pl_snapshot_free(s1);
    cr_assert_eq(pl_upstream_cluster(s2->clusters[0]), c);
    cr_assert_eq(uc->hs, hs, "host set unchanged");
    cr_assert_eq(uc->edf_now, edf_now, "EDF cursor kept");
    pl_upstream_pick(c, NULL);
    cr_assert_gt(uc->edf_now, edf_now, "cursor continues");

    /* a changed cluster (new host, other policy): rebuilt, keeping the hosts that stay */
    static const struct ep more[] = {
        {1000, 1, NULL}, {1001, 2, NULL}, {1002, 3, NULL}, {1003, 1, NULL}};
    struct pl_snapshot *s3 = snap_of("LEAST_REQUEST", NULL, more, 4);
    cr_assert_eq(pl_upstream_cluster(s3->clusters[0]), c);
    cr_assert_neq(uc->hs, hs);
    cr_assert_eq(uc->hs->n_hosts, 4);
    cr_assert_eq(uc->hs->lb.policy, 1 /* LEAST_REQUEST */);
    bool found = false;
    for (size_t i = 0; i < 4; i++) {
        struct pl_host_rt *x = &uc->hosts[i]->pub;
        if (x == h) {
            found = true;
            cr_assert_eq(x->pool_h1, (void *)0x1);
            cr_assert_eq(x->active_rq, 3);
        } else {
            cr_assert_null(x->pool_h1);
            cr_assert_eq(x->active_rq, 0);
        }
    }
    cr_assert(found, "the host_rt of a host that stayed is kept");
    h->pool_h1 = NULL;
    pl_snapshot_free(s2);
    pl_snapshot_free(s3);
}

static int released;
static void on_release(struct pl_host_rt *h)
{
    released++;
    h->pool_h1 = NULL;
}

Test(lb, removed_host_is_released_and_kept_while_referenced)
{
    pl_upstream_set_pool_release(on_release);
    static const struct ep two[] = {{1000, 0, NULL}, {1001, 0, NULL}};
    struct pl_snapshot *s1 = snap_of("ROUND_ROBIN", NULL, two, 2);
    struct pl_cluster_rt *c = pl_upstream_cluster(s1->clusters[0]);
    struct pl_host_rt *h = pl_upstream_pick(c, NULL);
    if (port_of(h) != 1001)
        h = pl_upstream_pick(c, NULL);
    cr_assert_eq(port_of(h), 1001);
    h->pool_h1 = (void *)0x2;
    pl_upstream_host_ref(h); /* a connection in use */
    struct pl_snapshot *s2 = snap_of("ROUND_ROBIN", NULL, two, 1);
    pl_upstream_cluster(s2->clusters[0]);
    cr_assert_eq(released, 1);
    cr_assert(h->removed);
    cr_assert_null(h->pool_h1);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(port_of(pl_upstream_pick(c, NULL)), 1000);
    pl_upstream_host_unref(h); /* frees it (ASan checks) */
    pl_upstream_set_pool_release(NULL);
    pl_snapshot_free(s1);
    pl_snapshot_free(s2);
}

Test(lb, panic_and_health)
{
    static const struct ep half[] = {
        {1000, 0, NULL}, {1001, 0, "UNHEALTHY"}, {1002, 0, NULL}, {1003, 0, "DRAINING"}};
    struct pl_snapshot *s = snap_of("RANDOM", NULL, half, 4);
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    unsigned counts[10];
    count_picks(c, counts, false); /* 2 of 4 healthy: 70% >= 50%, no panic */
    cr_assert_eq(counts[1] + counts[3], 0);
    cr_assert_eq(pl_counter_value(PL_CLUSTER_COUNTER(&c->stats, lb_healthy_panic)), 0);
    cr_assert_eq(pl_gauge_value(PL_CLUSTER_GAUGE(&c->stats, membership_total)), 4);
    cr_assert_eq(pl_gauge_value(PL_CLUSTER_GAUGE(&c->stats, membership_healthy)), 2);
    pl_snapshot_free(s);

    static const struct ep one[] = {
        {1000, 0, NULL}, {1001, 0, "UNHEALTHY"}, {1002, 0, "TIMEOUT"}, {1003, 0, "UNHEALTHY"}};
    s = snap_of("RANDOM", NULL, one, 4);
    c = pl_upstream_cluster(s->clusters[0]);
    count_picks(c, counts, false); /* 35% healthy: panic, all hosts */
    for (int i = 0; i < 4; i++)
        cr_assert_gt(counts[i], N_PICKS / 5);
    cr_assert_eq(pl_counter_value(PL_CLUSTER_COUNTER(&c->stats, lb_healthy_panic)), N_PICKS);
    pl_snapshot_free(s);
}

Test(lb, empty_cluster_has_no_host)
{
    struct pl_snapshot *s = snap_of("ROUND_ROBIN", NULL, NULL, 0);
    cr_assert_null(pl_upstream_pick(pl_upstream_cluster(s->clusters[0]), NULL));
    pl_snapshot_free(s);
}

Test(lb, original_dst)
{
    struct pl_snapshot *s = yaml_snap("static_resources:\n"
                                      "  clusters:\n"
                                      "  - name: od\n"
                                      "    type: ORIGINAL_DST\n"
                                      "    lb_policy: CLUSTER_PROVIDED\n");
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    cr_assert_null(pl_upstream_pick(c, NULL));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9999)};
    inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    struct pl_lb_ctx ctx = {.orig_dst = (struct sockaddr *)&a, .orig_dst_len = sizeof(a)};
    struct pl_host_rt *h = pl_upstream_pick(c, &ctx);
    cr_assert_not_null(h);
    cr_assert_str_eq(h->addr_str, "127.0.0.2:9999");
    cr_assert_str_eq(h->cluster, "od");
    cr_assert_eq(pl_upstream_pick(c, &ctx), h);
    a.sin_port = htons(9998);
    cr_assert_neq(pl_upstream_pick(c, &ctx), h);
    pl_snapshot_free(s);
}

Test(lb, stats_and_status_codes)
{
    static const struct ep eps[] = {{1000, 0, NULL}};
    struct pl_snapshot *s = snap_of("ROUND_ROBIN", NULL, eps, 1);
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    cr_assert_str_eq(c->name, "c");
    cr_assert_leq(sizeof(struct pl_cluster_stats), 96); /* slots, not 16-byte handles */
    pl_counter_inc(PL_CLUSTER_COUNTER(&c->stats, upstream_rq_total));
    pl_upstream_count_status(c, 200);
    pl_upstream_count_status(c, 200);
    pl_upstream_count_status(c, 503);
    cr_assert_eq(pl_counter_value(PL_CLUSTER_COUNTER(&c->stats, upstream_rq_xx[2])), 2);
    cr_assert_eq(pl_counter_value(PL_CLUSTER_COUNTER(&c->stats, upstream_rq_xx[5])), 1);
    const struct pl_cluster_stats *ms = pl_upstream_main_stats("c");
    cr_assert_not_null(ms);
    cr_assert_eq(pl_counter_value(PL_CLUSTER_COUNTER(ms, upstream_rq_total)), 1);
    char *out;
    size_t len;
    cr_assert_eq(pl_stats_render(t_stats, PL_STATS_TEXT, NULL, &out, &len), 0);
    const char *want[] = {
        "cluster.c.upstream_cx_total: 0",        "cluster.c.upstream_cx_active: 0",
        "cluster.c.upstream_cx_connect_fail: 0", "cluster.c.upstream_cx_connect_timeout: 0",
        "cluster.c.upstream_cx_destroy: 0",      "cluster.c.upstream_rq_total: 1",
        "cluster.c.upstream_rq_active: 0",       "cluster.c.upstream_rq_2xx: 2",
        "cluster.c.upstream_rq_5xx: 1",          "cluster.c.upstream_rq_200: 2",
        "cluster.c.upstream_rq_503: 1",          "cluster.c.upstream_rq_timeout: 0",
        "cluster.c.membership_total: 1",         "cluster.c.membership_healthy: 1",
        "cluster.c.lb_healthy_panic: 0"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert(strstr(out, want[i]), "missing '%s' in:\n%s", want[i], out);
    free(out);
    pl_snapshot_free(s);
}

Test(lb, unprepared_snapshot_falls_back)
{
    char *y = cluster_yaml("raw", "ROUND_ROBIN", NULL, weighted3, 3);
    struct pl_snapshot *s = yaml_snap2(y, false, NULL);
    free(y);
    cr_assert_null(s->clusters[0]->link);
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    unsigned counts[10];
    count_picks(c, counts, false);
    assert_weighted(counts, w3, 3, 0.001);
    pl_counter_inc(
        PL_CLUSTER_COUNTER(&c->stats, upstream_rq_total)); /* stats work (a private store) */
    cr_assert_eq(pl_upstream_cluster(s->clusters[0]), c);
    pl_snapshot_free(s);
}

Test(lb, removed_cluster_is_collected)
{
    static const struct ep eps[] = {{1000, 0, NULL}};
    char *y = cluster_yaml("gone", "ROUND_ROBIN", NULL, eps, 1);
    struct pl_snapshot *s1 = yaml_snap(y);
    free(y);
    struct pl_cluster_rt *c = pl_upstream_cluster(s1->clusters[0]);
    pl_upstream_cluster_ref(c);
    struct pl_snapshot *s2 = snap_of("ROUND_ROBIN", NULL, eps, 1); /* only "c" */
    cr_assert_null(pl_upstream_main_stats("gone"));
    pl_snapshot_free(s1);
    /* still usable while referenced */
    cr_assert_not_null(pl_upstream_pick(c, NULL));
    pl_upstream_cluster_unref(c);
    pl_snapshot_free(s2);
}

Test(lb, validation_rejects_what_is_not_supported)
{
    const char *bad[] = {
        "    maglev_lb_config: {table_size: 100}\n",
        "    ring_hash_lb_config: {minimum_ring_size: 4096, maximum_ring_size: 1024}\n",
        "    least_request_lb_config: {choice_count: 1}\n",
        "    dns_refresh_rate: 0.001s\n",
    };
    const char *why[] = {"prime", "must not exceed", "at least 2", "greater than 1ms"};
    static const struct ep eps[] = {{1000, 0, NULL}};
    for (size_t i = 0; i < 4; i++) {
        char *y = cluster_yaml("v", "ROUND_ROBIN", bad[i], eps, 1);
        char *errs = NULL;
        cr_assert_null(yaml_snap2(y, true, &errs));
        cr_assert(errs && strstr(errs, why[i]), "%s", errs ? errs : "(none)");
        free(errs);
        free(y);
    }
    char *errs = NULL;
    cr_assert_null(yaml_snap2("static_resources:\n"
                              "  clusters:\n"
                              "  - name: p\n"
                              "    load_assignment:\n"
                              "      cluster_name: p\n"
                              "      endpoints:\n"
                              "      - priority: 1\n"
                              "        lb_endpoints:\n"
                              "        - endpoint: {address: {socket_address: {address: "
                              "127.0.0.1, port_value: 80}}}\n",
                              true, &errs));
    cr_assert(errs && strstr(errs, "priority 1 is not supported"), "%s", errs ? errs : "");
    free(errs);
    static const struct ep zero[] = {{1000, 0, NULL}};
    char *y = cluster_yaml("z", "ROUND_ROBIN", NULL, zero, 1);
    char *y0 = pl_asprintf("%s          load_balancing_weight: 0\n", y);
    errs = NULL;
    cr_assert_null(yaml_snap2(y0, true, &errs));
    cr_assert(errs && strstr(errs, "at least 1"), "%s", errs ? errs : "");
    free(errs);
    free(y0);
    free(y);
    struct pl_snapshot *s = yaml_snap("static_resources:\n"
                                      "  clusters:\n"
                                      "  - name: p\n"
                                      "    load_assignment:\n"
                                      "      cluster_name: p\n"
                                      "      endpoints:\n"
                                      "      - priority: 0\n"
                                      "        lb_endpoints:\n"
                                      "        - endpoint: {address: {socket_address: {address: "
                                      "127.0.0.1, port_value: 80}}}\n");
    pl_snapshot_free(s);
}

Test(lb, compiled_options)
{
    struct pl_snapshot *s =
        yaml_snap("static_resources:\n"
                  "  clusters:\n"
                  "  - name: h2\n"
                  "    connect_timeout: 0.25s\n"
                  "    dns_refresh_rate: 2s\n"
                  "    respect_dns_ttl: true\n"
                  "    dns_lookup_family: V4_ONLY\n"
                  "    typed_extension_protocol_options:\n"
                  "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
                  "        '@type': type.googleapis.com/"
                  "envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
                  "        common_http_protocol_options: {idle_timeout: 30s}\n"
                  "        explicit_http_config:\n"
                  "          http2_protocol_options: {max_concurrent_streams: 7}\n"
                  "  - name: h1\n");
    const struct pl_cluster_cfg *h2 = s->clusters[0], *h1 = s->clusters[1];
    cr_assert(h2->http2);
    cr_assert_eq(h2->h2_max_concurrent_streams, 7);
    cr_assert_eq(h2->h2_initial_stream_window_size, 268435456);
    cr_assert_eq(h2->idle_timeout_ms, 30000);
    cr_assert_eq(h2->connect_timeout_ms, 250);
    cr_assert_eq(pl_cluster_lb(h2)->dns_refresh_ms, 2000);
    cr_assert(pl_cluster_lb(h2)->respect_dns_ttl);
    cr_assert_eq(pl_cluster_lb(h2)->dns_lookup_family, 1);
    cr_assert(!h1->http2);
    cr_assert_eq(h1->h2_max_concurrent_streams, 2147483647);
    cr_assert_eq(h1->idle_timeout_ms, 3600000);
    cr_assert_eq(pl_cluster_lb(h1)->dns_refresh_ms, 5000);
    cr_assert_eq(pl_cluster_lb(h1)->lr_choice_count, 2);
    cr_assert_eq(pl_cluster_lb(h1)->ring_min_size, 1024);
    cr_assert_eq(pl_cluster_lb(h1)->maglev_table_size, 65537);
    cr_assert_eq(h1->per_connection_buffer_limit_bytes, 1048576);
    /* a cluster that sets no LB or DNS option shares the defaults; one that does owns its own */
    cr_assert_eq(h1->lbo, &pl_cluster_lb_defaults);
    cr_assert_neq(h2->lbo, &pl_cluster_lb_defaults);
    pl_snapshot_free(s);
}

Test(lb, large_cluster_change_keeps_hosts)
{
    enum { N = 200 };
    struct ep eps[N];
    for (int i = 0; i < N; i++)
        eps[i] = (struct ep){2000 + i, 0, NULL};
    struct pl_snapshot *s1 = snap_of("ROUND_ROBIN", NULL, eps, N);
    struct pl_cluster_rt *c = pl_upstream_cluster(s1->clusters[0]);
    struct up_cluster *uc = (struct up_cluster *)c;
    struct pl_host_rt *before[N];
    for (int i = 0; i < N; i++) {
        before[i] = &uc->hosts[i]->pub;
        before[i]->active_rq = (uint32_t)i + 1;
    }
    /* drop every fourth host, add a new one */
    struct ep next[N];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        if (i % 4)
            next[n++] = eps[i];
    next[n++] = (struct ep){3000, 0, NULL};
    struct pl_snapshot *s2 = snap_of("ROUND_ROBIN", NULL, next, n);
    pl_upstream_cluster(s2->clusters[0]);
    cr_assert_eq(uc->hs->n_hosts, n);
    for (size_t i = 0; i < n; i++) {
        struct pl_host_rt *h = &uc->hosts[i]->pub;
        unsigned p = port_of(h);
        if (p == 3000) {
            cr_assert_eq(h->active_rq, 0);
            continue;
        }
        cr_assert_eq(h, before[p - 2000], "host %u kept", p);
        cr_assert_eq(h->active_rq, p - 2000 + 1);
    }
    pl_snapshot_free(s1);
    pl_snapshot_free(s2);
}

/* The same address twice is one host, in order of first appearance: checked with a linear scan
 * for small clusters and through the address index for large ones. */
static void check_dedup(size_t n_distinct)
{
    struct ep eps[300];
    size_t n = 0;
    for (size_t i = 0; i < n_distinct; i++) {
        eps[n++] = (struct ep){2000 + (unsigned)i, 0, NULL};
        if (i % 3 == 0) /* a duplicate of an earlier one */
            eps[n++] = (struct ep){2000 + (unsigned)(i / 2), 0, NULL};
    }
    struct pl_snapshot *s = snap_of("ROUND_ROBIN", NULL, eps, n);
    struct up_cluster *uc = (struct up_cluster *)pl_upstream_cluster(s->clusters[0]);
    cr_assert_eq(uc->hs->n_hosts, n_distinct, "%zu distinct of %zu", n_distinct, n);
    for (size_t i = 0; i < n_distinct; i++)
        cr_assert_eq(port_of(&uc->hosts[i]->pub), 2000 + i);
    pl_snapshot_free(s);
}

Test(lb, duplicate_endpoints_are_one_host)
{
    check_dedup(5);
    check_dedup(16);
    check_dedup(200);
}

/* STATIC endpoints take IPv4 literals as inet_pton does: dotted quads of 0..255 without leading
 * zeros; anything else is refused (the fast parser must not widen what is accepted). */
Test(lb, static_ipv4_literals)
{
    static const char *const good[] = {"10.0.0.1", "0.0.0.0", "255.255.255.255", "::1"};
    static const char *const bad[] = {"010.0.0.1", "10.0.0",   "10.0.0.1.", "256.0.0.1",
                                      "10.0.0.1 ", "1.2.3.04", "10..0.1",   "a.b.c.d"};
    char y[512];
    const char *fmt = "static_resources:\n  clusters:\n  - name: c\n    type: STATIC\n"
                      "    load_assignment:\n      cluster_name: c\n      endpoints:\n"
                      "      - lb_endpoints:\n        - endpoint: {address: {socket_address: "
                      "{address: '%s', port_value: 80}}}\n";
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(y, sizeof(y), fmt, good[i]);
        struct pl_snapshot *s = yaml_snap2(y, true, NULL);
        cr_assert_not_null(s, "%s refused", good[i]);
        cr_assert_eq(s->clusters[0]->n_endpoints, 1);
        cr_assert_neq(s->clusters[0]->endpoints[0].addrlen, 0, "%s", good[i]);
        pl_snapshot_free(s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(y, sizeof(y), fmt, bad[i]);
        char *errs = NULL;
        cr_assert_null(yaml_snap2(y, true, &errs), "%s accepted", bad[i]);
        cr_assert(errs && strstr(errs, "IP address literal"), "%s: %s", bad[i], errs);
        free(errs);
    }
}

/* A host set is one allocation of 24-byte hosts; keys (LOGICAL_DNS identities), IPv6
 * addresses and the list of hosts the LB may use are kept aside, only when needed (the list: when
 * some host is left out); keys take part in telling duplicates apart. */
Test(lb, hostset_hosts_and_keys)
{
    cr_assert_eq(sizeof(struct up_host_info), 24);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    struct sockaddr_in b = a;
    inet_pton(AF_INET, "10.0.0.1", &a.sin_addr);
    inet_pton(AF_INET, "10.0.0.2", &b.sin_addr);
    struct up_lb_params lb = {.policy = 0};
    struct up_host_spec plain[] = {
        {(const struct sockaddr *)&a, sizeof(a), NULL, 2, true},
        {(const struct sockaddr *)&b, sizeof(b), NULL, 0, false},
        {(const struct sockaddr *)&a, sizeof(a), NULL, 5, true}, /* a duplicate of the first */
    };
    struct up_hostset *hs = up_hostset_build(&lb, 1, plain, 3);
    cr_assert_eq(hs->n_hosts, 2);
    cr_assert_null(hs->keys);
    cr_assert_eq(hs->hosts[0].weight, 2);
    cr_assert_eq(hs->hosts[1].weight, 1);
    cr_assert_eq(hs->n_healthy, 1);
    cr_assert_eq((char *)hs->hosts, (char *)hs + ((sizeof(*hs) + 3) & ~(size_t)3));
    cr_assert_eq(hs->n_avail, 1); /* the healthy one: a list */
    cr_assert_not_null(hs->avail);
    cr_assert_eq(up_avail(hs, 0), 0);
    char buf[64];
    cr_assert_str_eq(up_host_key(hs, 1, buf, sizeof(buf)), "10.0.0.2:80");
    up_hostset_unref(hs);

    struct up_host_spec keyed[] = {
        {(const struct sockaddr *)&a, sizeof(a), "one.example:80", 1, true},
        {(const struct sockaddr *)&a, sizeof(a), "two.example:80", 1, true}, /* another name */
        {(const struct sockaddr *)&a, sizeof(a), "one.example:80", 1, true}, /* duplicate */
        {(const struct sockaddr *)&b, sizeof(b), NULL, 1, true},
    };
    hs = up_hostset_build(&lb, 1, keyed, 4);
    cr_assert_eq(hs->n_hosts, 3);
    cr_assert_not_null(hs->keys);
    cr_assert_str_eq(up_host_key(hs, 0, buf, sizeof(buf)), "one.example:80");
    cr_assert_str_eq(up_host_key(hs, 1, buf, sizeof(buf)), "two.example:80");
    cr_assert_str_eq(up_host_key(hs, 2, buf, sizeof(buf)), "10.0.0.2:80");
    cr_assert_null(hs->v6);
    up_hostset_unref(hs);

    /* IPv6 next to IPv4, through both the scan and the address index (more than 16 hosts) */
    for (size_t n = 6; n <= 40; n += 34) {
        struct up_host_spec *mixed = calloc(n + 1, sizeof(*mixed));
        struct sockaddr_in6 *v6 = calloc(n + 1, sizeof(*v6));
        struct sockaddr_in *v4 = calloc(n + 1, sizeof(*v4));
        for (size_t i = 0; i < n; i++) {
            /* even: [fd00::<i/4>]:443 (each one twice); odd: 10.0.1.<i>:443 */
            v6[i] = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_port = htons(443)};
            v6[i].sin6_addr.s6_addr[0] = 0xfd;
            v6[i].sin6_addr.s6_addr[15] = (uint8_t)(i / 4);
            v4[i] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(443)};
            v4[i].sin_addr.s_addr = htonl(0x0a000100 + (uint32_t)i);
            mixed[i] = i % 2 ? (struct up_host_spec){(const struct sockaddr *)&v4[i], sizeof(v4[i]),
                                                     NULL, 1, true}
                             : (struct up_host_spec){(const struct sockaddr *)&v6[i], sizeof(v6[i]),
                                                     NULL, (uint32_t)i + 1, true};
        }
        hs = up_hostset_build(&lb, 1, mixed, n);
        cr_assert_eq(hs->n_hosts, n - n / 4, "%zu hosts", n); /* fd00::k comes twice */
        cr_assert_not_null(hs->v6);
        cr_assert_null(hs->avail); /* all healthy: no list */
        cr_assert_eq(hs->n_avail, hs->n_hosts);
        cr_assert_eq(up_avail(hs, 2), 2);
        cr_assert_str_eq(up_host_key(hs, 0, buf, sizeof(buf)), "[fd00::]:443");
        cr_assert_str_eq(up_host_key(hs, 1, buf, sizeof(buf)), "10.0.1.1:443");
        cr_assert_str_eq(up_host_key(hs, 2, buf, sizeof(buf)), "10.0.1.3:443");
        cr_assert_str_eq(up_host_key(hs, 3, buf, sizeof(buf)), "[fd00::1]:443");
        cr_assert_eq(hs->hosts[3].weight, 5);
        socklen_t len;
        const struct sockaddr *sa = up_host_sa(hs, 3, &len);
        cr_assert_eq(len, sizeof(struct sockaddr_in6));
        cr_assert_eq(memcmp(sa, &v6[4], len), 0);
        sa = up_host_sa(hs, 1, &len);
        cr_assert_eq(len, sizeof(struct sockaddr_in));
        cr_assert_eq(memcmp(sa, &v4[1], len), 0);
        up_hostset_unref(hs);
        free(mixed);
        free(v6);
        free(v4);
    }
}

/* An EDS cluster whose assignment was plain keeps its endpoints as 16-byte hosts: its host set
 * is the one its endpoints in the general form give. */
/* A stand-in for the xDS client's decoder of plain assignments: the hosts of plain_src, when
 * asked for the encoding plain_enc. */
static const struct pl_cla_host *plain_src;
static size_t plain_n;
static const uint8_t plain_enc[] = {1, 2, 3};

static struct pl_cla_plain *decode_plain(const uint8_t *data, size_t len, ProtobufCAllocator *a)
{
    if (data != plain_enc || len != sizeof(plain_enc))
        return NULL;
    struct pl_cla_plain *p =
        a->alloc(a->allocator_data, sizeof(*p) + plain_n * sizeof(p->hosts[0]));
    p->cluster_name = "c";
    p->n = plain_n;
    memcpy(p->hosts, plain_src, plain_n * sizeof(p->hosts[0]));
    return p;
}

Test(lb, plain_hosts_build_the_same_host_set)
{
    static const struct pl_cla_host hosts[] = {
        {.addr = 0x0100000a, .port = 80, .weight = 1, .health = 0},
        {.addr = 0x0200000a, .port = 81, .weight = 5, .health = 2},
        {.addr = 0x0300000a, .port = 82, .weight = 2, .health = 1, .locality_weight = 3},
        {.addr = 0x0100000a, .port = 80, .weight = 9, .health = 1}, /* a duplicate: dropped */
        {.addr = 0x0400000a, .port = 65535, .weight = 1, .health = 255},
    };
    size_t n = sizeof(hosts) / sizeof(hosts[0]);
    struct pl_endpoint_cfg eps[5] = {0};
    for (size_t i = 0; i < n; i++) {
        eps[i].addr.in.sin_family = AF_INET;
        eps[i].addr.in.sin_port = htons(hosts[i].port);
        eps[i].addr.in.sin_addr.s_addr = hosts[i].addr;
        eps[i].addrlen = sizeof(struct sockaddr_in);
        eps[i].port = hosts[i].port;
        eps[i].weight = hosts[i].weight;
        eps[i].health_status = hosts[i].health;
        eps[i].locality_weight = hosts[i].locality_weight;
    }
    struct pl_cluster_cfg general = {.name = "c", .type = 3, .hash = 7},
                          plain = {.name = "c", .type = 3, .hash = 7};
    general.endpoints = eps;
    general.n_endpoints = n;
    plain.hosts = (struct pl_cla_host *)hosts;
    plain.n_hosts = n;
    /* hosts kept in their assignment's encoding, decoded when the set is built */
    struct pl_cluster_cfg kept = {.name = "c", .type = 3, .hash = 7};
    kept.hosts_enc = plain_enc;
    kept.hosts_enc_len = sizeof(plain_enc);
    kept.hosts_decode = decode_plain;
    kept.n_hosts = (uint32_t)n;
    plain_src = hosts;
    plain_n = n;
    struct up_hostset *c = up_hostset_from_cfg(&kept);
    struct up_hostset *a = up_hostset_from_cfg(&general), *b = up_hostset_from_cfg(&plain);
    cr_assert_eq(c->n_hosts, a->n_hosts);
    cr_assert(!memcmp(a->hosts, c->hosts, a->n_hosts * sizeof(*a->hosts)));
    cr_assert(!memcmp(a->avail, c->avail, a->n_avail * sizeof(*a->avail)));
    up_hostset_unref(c);
    cr_assert_eq(a->n_hosts, 4);
    cr_assert_eq(b->n_hosts, a->n_hosts);
    cr_assert_eq(b->n_healthy, a->n_healthy);
    cr_assert_eq(b->n_avail, a->n_avail);
    cr_assert_eq(b->panic, a->panic);
    cr_assert_eq(b->equal_weights, a->equal_weights);
    cr_assert(!memcmp(a->hosts, b->hosts, a->n_hosts * sizeof(*a->hosts)));
    cr_assert(!memcmp(a->avail, b->avail, a->n_avail * sizeof(*a->avail)));
    up_hostset_unref(a);
    up_hostset_unref(b);
}
