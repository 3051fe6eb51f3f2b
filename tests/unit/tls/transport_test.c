/* The TLS transport under net/conn.h: a client and a server connection on one libev loop over
 * loopback TCP: handshake, ALPN and SNI seen by owners, bulk echo, half-close, and failures
 * reported with the TLS reason. */
#include <criterion/criterion.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/filter.h"
#include "tls_testutil.h"

struct side {
    struct pl_conn *c;
    struct pl_buf got;
    bool connected, closed, eof;
    char err[128];
    char alpn[32];
    enum pl_conn_event last;
};

struct world {
    struct ev_loop *loop;
    int lfd;
    ev_io accept_w;
    ev_timer deadline;
    struct pl_tls_ctx *sctx, *cctx;
    struct side server, client;
    size_t want; /* bytes the client expects back */
    bool echo;   /* the server echoes what it reads */
    bool half;   /* the client half-closes after sending */
    struct pl_buf payload;
    const struct pl_conn_callbacks *scb; /* the server's callbacks (default server_cb) */
    uint32_t slimit;                     /* the server's buffer limit (0: the default) */
    ev_timer consume;                    /* holding server: consumes its input later */
    size_t consumed;
};

static void note_event(struct side *s, struct pl_conn *c, enum pl_conn_event ev)
{
    s->last = ev;
    if (ev == PL_CONN_EV_CONNECTED) {
        s->connected = true;
        const char *p =
            c->transport->vt->protocol ? c->transport->vt->protocol(c->transport) : NULL;
        snprintf(s->alpn, sizeof(s->alpn), "%s", p ? p : "");
    } else {
        s->closed = true;
        snprintf(s->err, sizeof(s->err), "%s", c->err_text);
        s->c = NULL;
    }
}

static void server_data(struct pl_conn *c, struct pl_buf *in, bool end, void *arg)
{
    struct world *w = arg;
    if (w->echo)
        pl_conn_write(c, in, in->len, end);
    else
        pl_buf_move(&w->server.got, in, in->len);
    if (end) {
        w->server.eof = true;
        if (!w->echo) /* answer the half-close with a summary and our own end */
            pl_conn_write_copy(c, "done", 4, true);
    }
}

static void server_event(struct pl_conn *c, enum pl_conn_event ev, void *arg)
{
    struct world *w = arg;
    note_event(&w->server, c, ev);
}

static const struct pl_conn_callbacks server_cb = {.on_data = server_data,
                                                   .on_event = server_event};

static void client_data(struct pl_conn *c, struct pl_buf *in, bool end, void *arg)
{
    struct world *w = arg;
    pl_buf_move(&w->client.got, in, in->len);
    if (end)
        w->client.eof = true;
    if (w->client.got.len >= w->want || end) {
        pl_conn_close(c, PL_CONN_CLOSE_NOW);
        w->client.c = NULL;
        if (w->server.c) {
            pl_conn_close(w->server.c, PL_CONN_CLOSE_NOW);
            w->server.c = NULL;
        }
        ev_break(w->loop, EVBREAK_ALL);
    }
}

static void client_event(struct pl_conn *c, enum pl_conn_event ev, void *arg)
{
    struct world *w = arg;
    note_event(&w->client, c, ev);
    if (ev == PL_CONN_EV_CONNECTED) {
        pl_conn_write(c, &w->payload, w->payload.len, w->half);
        return;
    }
    if (w->server.c) {
        pl_conn_close(w->server.c, PL_CONN_CLOSE_NOW);
        w->server.c = NULL;
    }
    ev_break(w->loop, EVBREAK_ALL);
}

static const struct pl_conn_callbacks client_cb = {.on_data = client_data,
                                                   .on_event = client_event};

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct world *w = io->data;
    int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct pl_conn_opts o = {.cb = w->scb ? w->scb : &server_cb,
                             .buffer_limit = w->slimit,
                             .arg = w,
                             .transport = &pl_tls_transport_downstream,
                             .transport_cfg = w->sctx};
    w->server.c = pl_conn_accept(loop, fd, &o);
    if (!w->server.c) { /* the handshake failed on bytes that were already there */
        w->server.closed = true;
        snprintf(w->server.err, sizeof(w->server.err), "accept failed");
    }
    ev_io_stop(loop, io);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs one client/server exchange of payload bytes; at most 10 s. */
static void run(struct world *w, size_t payload)
{
    w->loop = ev_loop_new(EVFLAG_AUTO);
    w->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(w->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(w->lfd, 8), 0);
    cr_assert_eq(getsockname(w->lfd, (struct sockaddr *)&a, &al), 0);
    ev_io_init(&w->accept_w, accept_cb, w->lfd, EV_READ);
    w->accept_w.data = w;
    ev_io_start(w->loop, &w->accept_w);
    ev_timer_init(&w->deadline, deadline_cb, 10, 0);
    ev_timer_start(w->loop, &w->deadline);

    pl_buf_init(&w->payload);
    for (size_t i = 0; i < payload; i++) {
        char ch = (char)('a' + i % 26);
        pl_buf_append(&w->payload, &ch, 1);
    }
    if (w->echo && !w->want)
        w->want = payload;
    struct pl_conn_opts o = {.cb = &client_cb,
                             .arg = w,
                             .transport = w->cctx ? &pl_tls_transport_upstream : NULL,
                             .transport_cfg = w->cctx};
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_conn_connect(w->loop, (struct sockaddr *)&a, al, 5, &o, &w->client.c, &err), 0);
    ev_run(w->loop, 0);
    cr_assert(ev_is_active(&w->deadline), "the exchange did not finish in time");
    if (w->client.c)
        pl_conn_close(w->client.c, PL_CONN_CLOSE_NOW);
    if (w->server.c)
        pl_conn_close(w->server.c, PL_CONN_CLOSE_NOW);
    ev_run(w->loop, EVRUN_NOWAIT); /* deferred frees */
    ev_io_stop(w->loop, &w->accept_w);
    ev_timer_stop(w->loop, &w->deadline);
    close(w->lfd);
    ev_loop_destroy(w->loop);
    pl_buf_free(&w->payload);
    cr_assert_eq(pl_conn_live(), 0);
}

static void world_free(struct world *w)
{
    pl_buf_free(&w->server.got);
    pl_buf_free(&w->client.got);
    pl_tls_ctx_unref(w->sctx);
    pl_tls_ctx_unref(w->cctx);
}

#define SERVER                                                                                     \
    "common_tls_context:\n"                                                                        \
    "  alpn_protocols: [h2, http/1.1]\n"                                                           \
    "  tls_certificates:\n"                                                                        \
    "  - certificate_chain: {filename: $D/server.crt}\n"                                           \
    "    private_key: {filename: $D/server.key}\n"

#define CLIENT                                                                                     \
    "sni: server.test\n"                                                                           \
    "common_tls_context:\n"                                                                        \
    "  alpn_protocols: [h2]\n"                                                                     \
    "  validation_context:\n"                                                                      \
    "    trusted_ca: {filename: $D/ca.crt}\n"

Test(transport, echo_a_megabyte_with_alpn_and_sni)
{
    struct world w = {.echo = true};
    w.sctx = tt_ctx(PL_TLS_SERVER, SERVER);
    w.cctx = tt_ctx(PL_TLS_CLIENT, CLIENT);
    run(&w, 1 << 20);
    cr_assert(w.client.connected, "client: %s", w.client.err);
    cr_assert(w.server.connected);
    cr_assert_str_eq(w.client.alpn, "h2");
    cr_assert_str_eq(w.server.alpn, "h2");
    cr_assert_eq(w.client.got.len, (size_t)1 << 20);
    char buf[26];
    pl_buf_copyout(&w.client.got, 26 * 1000, buf, 26);
    cr_assert_eq(memcmp(buf, "abcdefghijklmnopqrstuvwxyz", 26), 0);
    world_free(&w);
}

Test(transport, half_close_arrives_as_end_stream)
{
    struct world w = {.half = true, .want = 4};
    w.sctx = tt_ctx(PL_TLS_SERVER, SERVER);
    w.cctx = tt_ctx(PL_TLS_CLIENT, CLIENT);
    run(&w, 5000);
    cr_assert(w.server.eof);
    cr_assert_eq(w.server.got.len, 5000);
    cr_assert_eq(w.client.got.len, 4);
    world_free(&w);
}

Test(transport, handshake_failure_closes_with_the_tls_reason)
{
    struct world w = {.echo = true};
    w.sctx = tt_ctx(PL_TLS_SERVER, SERVER);
    w.cctx = tt_ctx(PL_TLS_CLIENT, CLIENT "    match_typed_subject_alt_names:\n"
                                          "    - {san_type: DNS, matcher: {exact: other.test}}\n");
    run(&w, 10);
    cr_assert_not(w.client.connected);
    cr_assert(w.client.closed);
    cr_assert(strstr(w.client.err, "TLS error: peer certificate does not match"), "%s",
              w.client.err);
    world_free(&w);
}

Test(transport, plaintext_client_against_tls_server)
{
    /* the client speaks raw TCP: the server's handshake fails and it closes */
    struct world w = {.echo = true, .want = 1};
    w.sctx = tt_ctx(PL_TLS_SERVER, SERVER);
    run(&w, 40);
    cr_assert(w.server.closed);
    cr_assert_not(w.server.connected);
    cr_assert(strstr(w.server.err, "TLS error: ") || !strcmp(w.server.err, "accept failed"), "%s",
              w.server.err);
    cr_assert(w.client.eof || w.client.closed);
    world_free(&w);
}

Test(transport, compile_through_the_vtable)
{
    pl_tls_register_transports();
    pl_tls_register_transports();
    cr_assert_eq(pl_transport_by_type_url("type.googleapis.com/"
                                          "envoy.extensions.transport_sockets.tls.v3."
                                          "DownstreamTlsContext"),
                 &pl_tls_transport_downstream);
    cr_assert_eq(pl_transport_by_type_url("type.googleapis.com/"
                                          "envoy.extensions.transport_sockets.tls.v3."
                                          "UpstreamTlsContext"),
                 &pl_tls_transport_upstream);
    Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext u =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__UPSTREAM_TLS_CONTEXT__INIT;
    struct pl_compile_ctx cx = {.listener_name = "l1"};
    struct pl_err err = PL_ERR_INIT;
    void *cfg = NULL;
    /* an UpstreamTlsContext on a filter chain */
    cr_assert_eq(pl_tls_transport_upstream.compile(&u.base, &cx, true, &cfg, &err), PL_EINVAL);
    cr_assert_null(cfg);
    cr_assert_str_eq(err.v[0].path, "listener 'l1': transport_socket.typed_config");
    pl_err_free(&err);
    cr_assert_eq(pl_tls_transport_upstream.compile(&u.base, &cx, false, &cfg, &err), 0);
    cr_assert_not_null(cfg);
    pl_tls_transport_upstream.free_cfg(cfg);
}

/* A server that leaves its input in c->in and consumes it from a timer, as an owner waiting on
 * its other side does, then resumes reading; it answers "done" once it has seen 3000 bytes. */
static void consume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    struct world *w = t->data;
    if (!w->server.c)
        return;
    w->consumed += w->server.c->in.len;
    pl_buf_drain(&w->server.c->in, w->server.c->in.len);
    pl_conn_read_resume(w->server.c);
}

static void holding_data(struct pl_conn *c, struct pl_buf *in, bool end, void *arg)
{
    (void)end;
    struct world *w = arg;
    if (w->consumed + in->len >= 3000) {
        pl_conn_write_copy(c, "done", 4, false);
        return;
    }
    ev_timer_stop(w->loop, &w->consume);
    ev_timer_init(&w->consume, consume_cb, 0.01, 0);
    w->consume.data = w;
    ev_timer_start(w->loop, &w->consume);
}

static const struct pl_conn_callbacks holding_cb = {.on_data = holding_data,
                                                    .on_event = server_event};

/* Reading stops at the buffer limit in the middle of a TLS record: the rest of the record is
 * decrypted inside OpenSSL, not in the socket, so no poll event announces it when reading
 * resumes. */
Test(transport, bytes_held_by_tls_are_read_when_a_full_buffer_resumes)
{
    struct world w = {.want = 4, .scb = &holding_cb, .slimit = 1000};
    w.sctx = tt_ctx(PL_TLS_SERVER, SERVER);
    w.cctx = tt_ctx(PL_TLS_CLIENT, CLIENT);
    run(&w, 3000); /* one record */
    cr_assert_eq(w.client.got.len, 4, "the server consumed %zu of 3000 bytes", w.consumed);
    world_free(&w);
}
