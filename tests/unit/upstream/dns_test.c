/* DNS: c-ares on a libev loop, against /etc/hosts and a tiny UDP DNS responder on 127.0.0.1 that
 * returns controlled answers and TTLs; STRICT_DNS / LOGICAL_DNS host sets reaching workers. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "up_test.h"

/* ---- the responder -------------------------------------------------------------------------- */

struct rr {
    const char *name;
    const char *addrs[4]; /* "10.0.0.1" or "::1" */
    uint32_t ttl;
};

static pthread_mutex_t zone_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rr zone[4];
static size_t n_zone;
static int dns_fd = -1;
static ev_io dns_io;
static atomic_int queries;

static void zone_set(size_t i, struct rr r)
{
    pthread_mutex_lock(&zone_mu);
    zone[i] = r;
    if (i >= n_zone)
        n_zone = i + 1;
    pthread_mutex_unlock(&zone_mu);
}

/* Answers one query: A / AAAA records of the zone, NXDOMAIN for unknown names. */
static void dns_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    uint8_t q[512], r[1024];
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    ssize_t n = recvfrom(w->fd, q, sizeof(q), 0, (struct sockaddr *)&peer, &plen);
    if (n < 17)
        return;
    atomic_fetch_add(&queries, 1);
    char name[256];
    size_t off = 12, nl = 0;
    while (off < (size_t)n && q[off]) {
        size_t l = q[off++];
        if (off + l > (size_t)n || nl + l + 1 >= sizeof(name))
            return;
        if (nl)
            name[nl++] = '.';
        memcpy(name + nl, q + off, l);
        nl += l;
        off += l;
    }
    name[nl] = 0;
    off++; /* the root label */
    if (off + 4 > (size_t)n)
        return;
    uint16_t qtype = (uint16_t)(q[off] << 8 | q[off + 1]);
    size_t qend = off + 4;
    memcpy(r, q, qend);
    r[2] = 0x81; /* QR, RD */
    r[3] = 0x80; /* RA, NOERROR */
    r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
    r[5] = 1;
    size_t ro = qend, an = 0;
    pthread_mutex_lock(&zone_mu);
    const struct rr *z = NULL;
    for (size_t i = 0; i < n_zone; i++)
        if (!strcasecmp(zone[i].name, name))
            z = &zone[i];
    if (!z)
        r[3] |= 3; /* NXDOMAIN */
    for (size_t i = 0; z && i < 4 && z->addrs[i]; i++) {
        uint8_t a[16];
        int fam = strchr(z->addrs[i], ':') ? AF_INET6 : AF_INET;
        if ((fam == AF_INET && qtype != 1) || (fam == AF_INET6 && qtype != 28))
            continue;
        inet_pton(fam, z->addrs[i], a);
        uint16_t len = fam == AF_INET ? 4 : 16;
        uint8_t rrh[] = {0xc0,
                         12,
                         0,
                         (uint8_t)qtype,
                         0,
                         1,
                         (uint8_t)(z->ttl >> 24),
                         (uint8_t)(z->ttl >> 16),
                         (uint8_t)(z->ttl >> 8),
                         (uint8_t)z->ttl,
                         0,
                         (uint8_t)len};
        memcpy(r + ro, rrh, sizeof(rrh));
        memcpy(r + ro + sizeof(rrh), a, len);
        ro += sizeof(rrh) + len;
        an++;
    }
    pthread_mutex_unlock(&zone_mu);
    r[7] = (uint8_t)an;
    sendto(w->fd, r, ro, 0, (struct sockaddr *)&peer, plen);
}

/* Starts the responder on t_loop's future loop; returns "127.0.0.1:<port>". */
static const char *responder_start(void)
{
    static char server[64];
    dns_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(dns_fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(dns_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(dns_fd, (struct sockaddr *)&a, &len);
    snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(a.sin_port));
    return server;
}

static void setup_dns(void)
{
    const char *server = responder_start();
    up_setup_servers(server);
    ev_io_init(&dns_io, dns_cb, dns_fd, EV_READ);
    ev_io_start(t_loop, &dns_io);
}

static void teardown_dns(void)
{
    ev_io_stop(t_loop, &dns_io);
    close(dns_fd);
    up_teardown();
}

/* ---- helpers -------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs the main loop until done(arg) or max_s seconds; returns done(arg). */
static bool run_until(bool (*done)(void *), void *arg, double max_s)
{
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.005, 0.005);
    ev_timer_start(t_loop, &tick);
    double end = now_s() + max_s;
    bool ok;
    while (!(ok = done(arg)) && now_s() < end)
        ev_run(t_loop, EVRUN_ONCE);
    ev_timer_stop(t_loop, &tick);
    return ok;
}

struct answer {
    bool done;
    int status;
    char addrs[8][64];
    size_t n;
    uint32_t ttl;
};

static void answer_cb(void *arg, int status, const struct sockaddr_storage *addrs, size_t n,
                      uint32_t ttl)
{
    struct answer *a = arg;
    a->done = true;
    a->status = status;
    a->ttl = ttl;
    for (size_t i = 0; i < n && i < 8; i++) {
        char ip[64];
        const void *src = addrs[i].ss_family == AF_INET
                              ? (const void *)&((const struct sockaddr_in *)&addrs[i])->sin_addr
                              : (const void *)&((const struct sockaddr_in6 *)&addrs[i])->sin6_addr;
        inet_ntop(addrs[i].ss_family, src, ip, sizeof(ip));
        snprintf(a->addrs[i], sizeof(a->addrs[i]), "%s", ip);
        a->n++;
    }
}

static bool answer_done(void *arg)
{
    return ((struct answer *)arg)->done;
}

static struct answer resolve_with(struct up_resolver *r, const char *name, int family)
{
    struct answer a = {0};
    up_resolve(r, name, family, answer_cb, &a);
    cr_assert(run_until(answer_done, &a, 5), "no answer for %s", name);
    return a;
}

/* ---- tests ---------------------------------------------------------------------------------- */

Test(dns, localhost_from_hosts_file, .init = up_setup, .fini = up_teardown)
{
    struct up_resolver *r;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(up_resolver_new(t_loop, NULL, &r, &err), 0);
    struct answer a = resolve_with(r, "localhost", 1 /* V4_ONLY */);
    cr_assert_eq(a.status, 0);
    cr_assert_geq(a.n, 1);
    cr_assert_str_eq(a.addrs[0], "127.0.0.1");
    a = resolve_with(r, "localhost", 0 /* AUTO: v6 if any, else v4 */);
    cr_assert_eq(a.status, 0);
    cr_assert(!strcmp(a.addrs[0], "127.0.0.1") || !strcmp(a.addrs[0], "::1"), "%s", a.addrs[0]);
    up_resolver_free(r);
}

Test(dns, families_and_ttls, .init = setup_dns, .fini = teardown_dns)
{
    zone_set(0, (struct rr){"dual.test", {"10.1.0.1", "fd00::1", "10.1.0.2"}, 42});
    zone_set(1, (struct rr){"v4.test", {"10.2.0.1"}, 7});
    struct up_resolver *r;
    struct pl_err err = PL_ERR_INIT;
    char server[64];
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    getsockname(dns_fd, (struct sockaddr *)&a, &len);
    snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(a.sin_port));
    cr_assert_eq(up_resolver_new(t_loop, server, &r, &err), 0);

    struct answer x = resolve_with(r, "dual.test", 0 /* AUTO */);
    cr_assert_eq(x.status, 0);
    cr_assert_eq(x.n, 1);
    cr_assert_str_eq(x.addrs[0], "fd00::1");
    cr_assert_eq(x.ttl, 42);
    x = resolve_with(r, "dual.test", 3 /* V4_PREFERRED */);
    cr_assert_eq(x.n, 2);
    cr_assert_str_eq(x.addrs[0], "10.1.0.1");
    x = resolve_with(r, "dual.test", 4 /* ALL */);
    cr_assert_eq(x.n, 3);
    x = resolve_with(r, "dual.test", 2 /* V6_ONLY */);
    cr_assert_eq(x.n, 1);
    x = resolve_with(r, "v4.test", 0 /* AUTO falls back to v4 */);
    cr_assert_eq(x.n, 1);
    cr_assert_str_eq(x.addrs[0], "10.2.0.1");
    cr_assert_eq(x.ttl, 7);
    x = resolve_with(r, "v4.test", 2 /* V6_ONLY */);
    cr_assert_eq(x.status, PL_ENOENT);
    x = resolve_with(r, "nope.test", 1);
    cr_assert_eq(x.status, PL_ENOENT);
    cr_assert_gt(atomic_load(&queries), 0);

    /* a cancelled query never calls back */
    struct answer c = {0};
    struct up_dns_query *q = up_resolve(r, "v4.test", 1, answer_cb, &c);
    cr_assert_not_null(q);
    up_dns_cancel(q);
    struct answer d = resolve_with(r, "v4.test", 1);
    cr_assert_eq(d.status, 0);
    cr_assert(!c.done);
    up_resolver_free(r);
}

/* ---- STRICT_DNS reaching a worker thread ---------------------------------------------------- */

struct worker_arg {
    const struct pl_cluster_cfg *cfg;
    atomic_bool stop;
    pthread_mutex_t mu;
    char seen[512]; /* sorted, comma-separated addresses of the last round of picks */
    atomic_int rounds;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void *worker_main(void *p)
{
    struct worker_arg *w = p;
    pl_rcu_thread_register();
    for (int iter = 0; iter < 100000 && !atomic_load(&w->stop); iter++) {
        struct pl_cluster_rt *c = pl_upstream_cluster(w->cfg);
        char *addrs[64];
        size_t n = 0;
        for (int i = 0; i < 64; i++) {
            struct pl_host_rt *h = pl_upstream_pick(c, NULL);
            if (!h)
                break;
            bool dup = false;
            for (size_t j = 0; j < n && !dup; j++)
                dup = !strcmp(addrs[j], h->addr_str);
            if (!dup)
                addrs[n++] = h->addr_str;
        }
        qsort(addrs, n, sizeof(*addrs), cmp_str);
        char buf[512] = "";
        for (size_t i = 0; i < n; i++) {
            strncat(buf, addrs[i], sizeof(buf) - strlen(buf) - 2);
            strcat(buf, ",");
        }
        pthread_mutex_lock(&w->mu);
        strcpy(w->seen, buf);
        pthread_mutex_unlock(&w->mu);
        atomic_fetch_add(&w->rounds, 1);
        pl_rcu_quiescent(); /* as a worker does between loop iterations */
        usleep(1000);
    }
    pl_upstream_worker_free();
    pl_rcu_thread_unregister();
    return NULL;
}

struct want {
    struct worker_arg *w;
    const char *seen;
};

static bool worker_sees(void *arg)
{
    struct want *x = arg;
    pthread_mutex_lock(&x->w->mu);
    bool ok = !strcmp(x->w->seen, x->seen);
    pthread_mutex_unlock(&x->w->mu);
    return ok;
}

static int hook_calls;
static void on_update(const char *cluster, size_t n, void *arg)
{
    (void)cluster;
    (void)n;
    (void)arg;
    hook_calls++;
}

Test(dns, strict_dns_updates_reach_worker, .init = setup_dns, .fini = teardown_dns)
{
    zone_set(0, (struct rr){"backend.test", {"10.0.0.2", "10.0.0.1"}, 1});
    pl_upstream_set_update_hook(on_update, NULL);
    struct pl_snapshot *s = yaml_snap("static_resources:\n"
                                      "  clusters:\n"
                                      "  - name: sd\n"
                                      "    type: STRICT_DNS\n"
                                      "    dns_lookup_family: V4_ONLY\n"
                                      "    dns_refresh_rate: 60s\n"
                                      "    respect_dns_ttl: true\n"
                                      "    load_assignment:\n"
                                      "      cluster_name: sd\n"
                                      "      endpoints:\n"
                                      "      - lb_endpoints:\n"
                                      "        - endpoint: {address: {socket_address: "
                                      "{address: backend.test, port_value: 8080}}}\n"
                                      "        - endpoint: {address: {socket_address: "
                                      "{address: 127.0.0.5, port_value: 80}}}\n");
    struct worker_arg w = {.cfg = s->clusters[0], .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, worker_main, &w), 0);

    struct want x = {&w, "10.0.0.1:8080,10.0.0.2:8080,127.0.0.5:80,"};
    bool ok = run_until(worker_sees, &x, 5);
    cr_assert(ok, "worker saw '%s'", w.seen);
    const struct pl_cluster_stats *st = pl_upstream_main_stats("sd");
    cr_assert_eq(pl_gauge_value(PL_CLUSTER_GAUGE(st, membership_total)), 3);

    /* the answer changes; the 1 s TTL (not the 60 s refresh rate) brings it in */
    zone_set(0, (struct rr){"backend.test", {"10.0.0.3"}, 1});
    x.seen = "10.0.0.3:8080,127.0.0.5:80,";
    ok = run_until(worker_sees, &x, 6);
    cr_assert(ok, "worker saw '%s'", w.seen);
    cr_assert_eq(pl_gauge_value(PL_CLUSTER_GAUGE(st, membership_total)), 2);

    /* the name goes away: its hosts go with it */
    zone_set(0, (struct rr){"gone.test", {"10.9.9.9"}, 1});
    x.seen = "127.0.0.5:80,";
    ok = run_until(worker_sees, &x, 6);
    cr_assert(ok, "worker saw '%s'", w.seen);
    cr_assert_geq(hook_calls, 3);

    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    pl_upstream_set_update_hook(NULL, NULL);
    pl_snapshot_free(s);
}

static bool host_count(void *arg)
{
    const struct pl_cluster_stats *st = pl_upstream_main_stats(arg);
    return st && pl_gauge_value(PL_CLUSTER_GAUGE(st, membership_total)) > 0;
}

struct addr_want {
    struct pl_host_rt *h;
    const char *addr;
    struct pl_cluster_rt *c;
};

static bool logical_moved(void *arg)
{
    struct addr_want *x = arg;
    return pl_upstream_pick(x->c, NULL) == x->h && !strcmp(x->h->addr_str, x->addr);
}

Test(dns, logical_dns_keeps_one_host, .init = setup_dns, .fini = teardown_dns)
{
    zone_set(0, (struct rr){"logical.test", {"10.0.1.1", "10.0.1.2"}, 1});
    struct pl_snapshot *s = yaml_snap("static_resources:\n"
                                      "  clusters:\n"
                                      "  - name: ld\n"
                                      "    type: LOGICAL_DNS\n"
                                      "    dns_lookup_family: V4_ONLY\n"
                                      "    dns_refresh_rate: 0.2s\n"
                                      "    load_assignment:\n"
                                      "      cluster_name: ld\n"
                                      "      endpoints:\n"
                                      "      - lb_endpoints:\n"
                                      "        - endpoint: {address: {socket_address: "
                                      "{address: logical.test, port_value: 80}}}\n");
    cr_assert(run_until(host_count, "ld", 5));
    struct pl_cluster_rt *c = pl_upstream_cluster(s->clusters[0]);
    struct pl_host_rt *h = pl_upstream_pick(c, NULL);
    cr_assert_not_null(h);
    cr_assert_str_eq(h->addr_str, "10.0.1.1:80");
    cr_assert_eq(pl_upstream_pick(c, NULL), h);
    h->pool_h1 = (void *)0x3;
    /* a new address: the same logical host (pools kept), connecting to the new address */
    zone_set(0, (struct rr){"logical.test", {"10.0.1.9"}, 1});
    struct addr_want x = {h, "10.0.1.9:80", c};
    cr_assert(run_until(logical_moved, &x, 5), "host at %s", h->addr_str);
    cr_assert_eq(h->pool_h1, (void *)0x3);
    h->pool_h1 = NULL;
    pl_snapshot_free(s);
}

Test(dns, config_change_keeps_resolved_hosts, .init = setup_dns, .fini = teardown_dns)
{
    zone_set(0, (struct rr){"keep.test", {"10.3.0.1"}, 300});
    const char *fmt = "static_resources:\n"
                      "  clusters:\n"
                      "  - name: kd\n"
                      "    type: STRICT_DNS\n"
                      "    lb_policy: %s\n"
                      "    dns_lookup_family: V4_ONLY\n"
                      "    load_assignment:\n"
                      "      cluster_name: kd\n"
                      "      endpoints:\n"
                      "      - lb_endpoints:\n"
                      "        - endpoint: {address: {socket_address: "
                      "{address: keep.test, port_value: 80}}}\n";
    char y[1024];
    snprintf(y, sizeof(y), fmt, "ROUND_ROBIN");
    struct pl_snapshot *s1 = yaml_snap(y);
    cr_assert(run_until(host_count, "kd", 5));
    snprintf(y, sizeof(y), fmt, "RANDOM");
    struct pl_snapshot *s2 = yaml_snap(y);
    /* right after the change, before any new answer: the resolved host is still there */
    struct pl_cluster_rt *c = pl_upstream_cluster(s2->clusters[0]);
    struct pl_host_rt *h = pl_upstream_pick(c, NULL);
    cr_assert_not_null(h);
    cr_assert_str_eq(h->addr_str, "10.3.0.1:80");
    pl_snapshot_free(s1);
    pl_snapshot_free(s2);
}
