/* Listener filters: compiling listener_filters, and the waiting logic over a real loopback TCP
 * connection driven by hand on a bare libev loop (a ClientHello whole, in pieces, not TLS at
 * all, a FIN after a partial hello, the timeout with and without continuing, cancel). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/pbjson.h"
#include "net/listener_filter.h"
#include "pl_proto_all.h"

#define TLSI                                                                                       \
    "{name: envoy.filters.listener.tls_inspector, typed_config: {'@type': "                        \
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}"
#define ODST                                                                                       \
    "{name: envoy.filters.listener.original_dst, typed_config: {'@type': "                         \
    "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}}"
#define TCP                                                                                        \
    "filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {'@type': "                   \
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "    \
    "s, cluster: c}}]"

static struct pl_listener_filters *compile(const char *yaml, int expect_rc)
{
    char *text = pl_asprintf("name: l\naddress: {socket_address: {address: 127.0.0.1, "
                             "port_value: 1}}\n%s\n",
                             yaml);
    struct pl_err err = PL_ERR_INIT;
    ProtobufCMessage *m = NULL;
    int rc = pl_pbjson_load_text(text, strlen(text), "test.yaml",
                                 &envoy__config__listener__v3__listener__descriptor, NULL, &m, NULL,
                                 &err);
    free(text);
    if (rc < 0)
        pl_err_print(&err, stderr);
    cr_assert_eq(rc, 0);
    struct pl_listener_filters *lf = NULL;
    rc = pl_listener_filters_compile(m, "l", &lf, &err);
    protobuf_c_message_free_unpacked(m, NULL);
    cr_assert_eq(rc, expect_rc);
    if (rc < 0)
        cr_assert_gt(err.n, 0);
    pl_err_free(&err);
    return lf;
}

Test(listener_filter, compile)
{
    struct pl_listener_filters *lf = compile("filter_chains: [{" TCP "}]", 0);
    cr_assert_null(lf);
    lf = compile("listener_filters: [" TLSI ", " ODST "]\nfilter_chains: [{" TCP "}]", 0);
    cr_assert_eq(lf->n, 2);
    cr_assert_eq(lf->v[0].vt, &pl_lf_tls_inspector);
    cr_assert_eq(lf->v[1].vt, &pl_lf_original_dst);
    cr_assert_float_eq(lf->timeout_s, 15.0, 1e-9);
    cr_assert_not(lf->continue_on_timeout);
    pl_listener_filters_free(lf);
    lf = compile("listener_filters: [{name: envoy.filters.listener.original_dst}]\n"
                 "listener_filters_timeout: 0.25s\ncontinue_on_listener_filters_timeout: true\n"
                 "filter_chains: [{" TCP "}]",
                 0);
    cr_assert_eq(lf->n, 1);
    cr_assert_eq(lf->v[0].vt, &pl_lf_original_dst);
    cr_assert_float_eq(lf->timeout_s, 0.25, 1e-9);
    cr_assert(lf->continue_on_timeout);
    pl_listener_filters_free(lf);
    lf = compile("listener_filters: [{name: envoy.filters.listener.http_inspector}]\n"
                 "filter_chains: [{" TCP "}]",
                 PL_EINVAL);
    cr_assert_null(lf);
}

Test(listener_filter, tls_inspector_injected_as_envoy_does)
{
    /* a chain matching on server_names needs the inspector: it goes first */
    struct pl_listener_filters *lf =
        compile("listener_filters: [" ODST "]\nfilter_chains: [{filter_chain_match: "
                "{server_names: [a.test]}, " TCP "}]",
                0);
    cr_assert_eq(lf->n, 2);
    cr_assert_eq(lf->v[0].vt, &pl_lf_tls_inspector);
    cr_assert_eq(lf->v[1].vt, &pl_lf_original_dst);
    pl_listener_filters_free(lf);
    lf = compile("filter_chains: [{filter_chain_match: {transport_protocol: tls}, " TCP "}]", 0);
    cr_assert_eq(lf->n, 1);
    pl_listener_filters_free(lf);
    /* raw_buffer with ALPN names cannot need it; an explicit one is not doubled */
    lf = compile("filter_chains: [{filter_chain_match: {transport_protocol: raw_buffer, "
                 "application_protocols: [h2]}, " TCP "}]",
                 0);
    cr_assert_null(lf);
    lf = compile("listener_filters: [" TLSI "]\nfilter_chains: [{filter_chain_match: "
                 "{application_protocols: [h2]}, " TCP "}]",
                 0);
    cr_assert_eq(lf->n, 1);
    pl_listener_filters_free(lf);
}

/* ---- running over a loopback TCP connection ---- */

struct pair {
    int client, server;
};

static struct pair tcp_pair(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(l, 4), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
    struct pair p = {.client = socket(AF_INET, SOCK_STREAM, 0)};
    cr_assert_eq(connect(p.client, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    setsockopt(p.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p.server = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    cr_assert_geq(p.server, 0);
    close(l);
    return p;
}

static void pair_close(struct pair *p)
{
    close(p->client);
    close(p->server);
}

/* The first flight of an OpenSSL client: its ClientHello. *n receives the length. */
static unsigned char *client_hello(const char *sni, size_t *n)
{
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rb, wb);
    SSL_set_tlsext_host_name(ssl, sni);
    cr_assert_eq(SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1), 0);
    cr_assert_eq(SSL_connect(ssl), -1);
    char *data;
    long len = BIO_get_mem_data(wb, &data);
    cr_assert_gt(len, 50);
    unsigned char *out = pl_malloc((size_t)len);
    memcpy(out, data, (size_t)len);
    *n = (size_t)len;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return out;
}

struct outcome {
    int calls;
    enum pl_lf_status st;
    struct pl_listener_socket s;
};

static void on_done(void *arg, struct pl_listener_socket *s, enum pl_lf_status st)
{
    struct outcome *o = arg;
    o->calls++;
    o->st = st;
    o->s = *s;
}

/* Writes the next piece of a message after a delay, from the loop. */
struct feeder {
    ev_timer t;
    int fd;
    const unsigned char *p;
    size_t n, off, step;
    bool fin; /* shut the client side down after the last piece */
};

static void feed_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct feeder *f = (struct feeder *)t;
    size_t k = f->n - f->off < f->step ? f->n - f->off : f->step;
    cr_assert_eq(write(f->fd, f->p + f->off, k), (ssize_t)k);
    f->off += k;
    if (f->off < f->n) {
        ev_timer_set(t, 0.02, 0);
        ev_timer_start(loop, t);
    } else if (f->fin) {
        shutdown(f->fd, SHUT_WR);
    }
}

static struct pl_stats *stats;

static struct pl_listener_filters *prepared(const char *yaml)
{
    struct pl_listener_filters *lf = compile(yaml, 0);
    if (!stats)
        stats = pl_stats_new();
    pl_listener_filters_prepare(lf, stats, "listener.test");
    return lf;
}

static uint64_t counter(const char *name)
{
    return pl_counter_value(pl_stats_counter(stats, name));
}

static void run_loop(struct ev_loop *loop, struct outcome *o, double max_s)
{
    ev_tstamp end = ev_time() + max_s;
    while (!o->calls && ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
}

static int rcvlowat(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, &len);
    return v;
}

Test(listener_filter, whole_hello_finishes_at_once)
{
    struct pl_listener_filters *lf = prepared("listener_filters: [" TLSI "]");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pair p = tcp_pair();
    size_t n;
    unsigned char *h = client_hello("Api.Example.com", &n);
    cr_assert_eq(write(p.client, h, n), (ssize_t)n);
    usleep(20000);
    uint64_t found = counter("tls_inspector.tls_found");
    struct pl_listener_socket s;
    pl_listener_socket_init(&s, p.server);
    struct pl_listener_run *r;
    struct outcome o = {0};
    cr_assert_eq(pl_listener_filters_run(lf, loop, &s, on_done, &o, &r), PL_LF_CONTINUE);
    cr_assert_null(r);
    cr_assert_str_eq(s.transport_protocol, "tls");
    cr_assert_str_eq(s.server_name, "Api.Example.com");
    cr_assert_eq(s.n_alpn, 2);
    cr_assert_str_eq(s.alpn[0], "h2");
    cr_assert_str_eq(s.alpn[1], "http/1.1");
    cr_assert_eq(counter("tls_inspector.tls_found"), found + 1);
    /* nothing was consumed */
    unsigned char back[4096];
    cr_assert_eq(recv(p.server, back, sizeof(back), 0), (ssize_t)n);
    cr_assert_eq(memcmp(back, h, n), 0);
    free(h);
    pair_close(&p);
    ev_loop_destroy(loop);
    pl_listener_filters_free(lf);
}

Test(listener_filter, hello_in_pieces_waits_then_continues)
{
    struct pl_listener_filters *lf = prepared("listener_filters: [" TLSI ", " ODST "]");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pair p = tcp_pair();
    size_t n;
    unsigned char *h = client_hello("b.test", &n);
    struct pl_listener_socket s;
    pl_listener_socket_init(&s, p.server);
    struct pl_listener_run *r;
    struct outcome o = {0};
    cr_assert_eq(pl_listener_filters_run(lf, loop, &s, on_done, &o, &r), PL_LF_WAIT);
    cr_assert_not_null(r);
    cr_assert_eq(pl_gauge_value(pl_stats_gauge(stats, "listener.test.downstream_pre_cx_active")),
                 1);
    struct feeder f = {.fd = p.client, .p = h, .n = n, .step = 7};
    ev_timer_init(&f.t, feed_cb, 0.01, 0);
    ev_timer_start(loop, &f.t);
    /* one piece in: the low mark is raised past what was seen */
    ev_tstamp end = ev_time() + 2;
    while (f.off < 14 && ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(o.calls, 0);
    cr_assert_gt(rcvlowat(p.server), 1);
    run_loop(loop, &o, 5);
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.st, PL_LF_CONTINUE);
    cr_assert_str_eq(o.s.transport_protocol, "tls");
    cr_assert_str_eq(o.s.server_name, "b.test");
    cr_assert_eq(o.s.n_alpn, 2);
    /* original_dst ran after it: no redirect, the local address stays */
    struct sockaddr_in local;
    socklen_t len = sizeof(local);
    getsockname(p.server, (struct sockaddr *)&local, &len);
    cr_assert_eq(((struct sockaddr_in *)&o.s.local)->sin_port, local.sin_port);
    cr_assert_not(o.s.local_restored);
    cr_assert_eq(rcvlowat(p.server), 1);
    cr_assert_eq(pl_gauge_value(pl_stats_gauge(stats, "listener.test.downstream_pre_cx_active")),
                 0);
    ev_timer_stop(loop, &f.t);
    free(h);
    pair_close(&p);
    ev_loop_destroy(loop);
    pl_listener_filters_free(lf);
}

Test(listener_filter, not_tls_continues_as_raw_buffer)
{
    struct pl_listener_filters *lf = prepared("listener_filters: [" TLSI "]");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pair p = tcp_pair();
    uint64_t not_found = counter("tls_inspector.tls_not_found");
    struct pl_listener_socket s;
    pl_listener_socket_init(&s, p.server);
    struct pl_listener_run *r;
    struct outcome o = {0};
    /* nothing yet: it waits; then one byte that no TLS record starts with */
    cr_assert_eq(pl_listener_filters_run(lf, loop, &s, on_done, &o, &r), PL_LF_WAIT);
    cr_assert_eq(write(p.client, "G", 1), 1);
    run_loop(loop, &o, 5);
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.st, PL_LF_CONTINUE);
    cr_assert_str_eq(o.s.transport_protocol, "raw_buffer");
    cr_assert_str_eq(o.s.server_name, "");
    cr_assert_eq(counter("tls_inspector.tls_not_found"), not_found + 1);
    pair_close(&p);
    ev_loop_destroy(loop);
    pl_listener_filters_free(lf);
}

Test(listener_filter, fin_after_partial_hello_is_a_remote_close)
{
    struct pl_listener_filters *lf = prepared("listener_filters: [" TLSI "]");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pair p = tcp_pair();
    size_t n;
    unsigned char *h = client_hello("a.test", &n);
    uint64_t before = counter("listener.test.downstream_listener_filter_remote_close");
    struct pl_listener_socket s;
    pl_listener_socket_init(&s, p.server);
    struct pl_listener_run *r;
    struct outcome o = {0};
    cr_assert_eq(pl_listener_filters_run(lf, loop, &s, on_done, &o, &r), PL_LF_WAIT);
    struct feeder f = {.fd = p.client, .p = h, .n = 30, .step = 10, .fin = true};
    ev_timer_init(&f.t, feed_cb, 0.01, 0);
    ev_timer_start(loop, &f.t);
    run_loop(loop, &o, 5);
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.st, PL_LF_REMOTE_CLOSE);
    cr_assert_eq(counter("listener.test.downstream_listener_filter_remote_close"), before + 1);
    free(h);
    pair_close(&p);
    ev_loop_destroy(loop);
    pl_listener_filters_free(lf);
}

Test(listener_filter, timeout_closes_or_continues)
{
    for (int cont = 0; cont < 2; cont++) {
        struct pl_listener_filters *lf =
            prepared(cont ? "listener_filters: [" TLSI ", " ODST "]\n"
                            "listener_filters_timeout: 0.1s\n"
                            "continue_on_listener_filters_timeout: true"
                          : "listener_filters: [" TLSI "]\nlistener_filters_timeout: 0.1s");
        struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
        struct pair p = tcp_pair();
        uint64_t before = counter("listener.test.downstream_pre_cx_timeout");
        struct pl_listener_socket s;
        pl_listener_socket_init(&s, p.server);
        struct pl_listener_run *r;
        struct outcome o = {0};
        cr_assert_eq(pl_listener_filters_run(lf, loop, &s, on_done, &o, &r), PL_LF_WAIT);
        cr_assert_eq(write(p.client, "\x16\x03", 2), 2); /* a TLS start that never finishes */
        ev_tstamp start = ev_time();
        run_loop(loop, &o, 5);
        cr_assert_eq(o.calls, 1);
        cr_assert_geq(ev_time() - start, 0.05);
        cr_assert_eq(o.st, cont ? PL_LF_CONTINUE : PL_LF_CLOSE);
        cr_assert_str_eq(o.s.transport_protocol, "raw_buffer");
        cr_assert_eq(counter("listener.test.downstream_pre_cx_timeout"), before + 1);
        cr_assert_eq(rcvlowat(p.server), 1);
        pair_close(&p);
        ev_loop_destroy(loop);
        pl_listener_filters_free(lf);
    }
}

Test(listener_filter, cancel_stops_waiting)
{
    struct pl_listener_filters *lf = prepared("listener_filters: [" TLSI "]");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pair p = tcp_pair();
    struct pl_listener_socket s;
    pl_listener_socket_init(&s, p.server);
    struct pl_listener_run *r;
    struct outcome o = {0};
    cr_assert_eq(pl_listener_filters_run(lf, loop, &s, on_done, &o, &r), PL_LF_WAIT);
    pl_listener_run_cancel(r);
    cr_assert_eq(write(p.client, "G", 1), 1);
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(o.calls, 0);
    cr_assert_eq(pl_gauge_value(pl_stats_gauge(stats, "listener.test.downstream_pre_cx_active")),
                 0);
    pair_close(&p);
    ev_loop_destroy(loop);
    pl_listener_filters_free(lf);
}
