/* Server: workers, SO_REUSEPORT listeners on port 0, listener changes, bind errors, drain. */
#ifdef PL_TEST_STANDALONE
#include "nocriterion.h"
#else
#include <criterion/criterion.h>
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/publish.h"
#include "core/err.h"
#include "core/log.h"
#include "pl_proto_all.h"
#include "server/server.h"

/* ---- a test handler that keeps connections open ---- */

struct hold_conn {
    struct pl_worker_conn base;
    struct pl_worker *w;
    int fd;
    ev_io io;
};

static void hold_close(struct pl_worker_conn *c)
{
    struct hold_conn *h = (struct hold_conn *)c;
    ev_io_stop(pl_worker_loop(h->w), &h->io);
    close(h->fd);
    pl_worker_conn_remove(c);
    free(h);
}

static void hold_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct hold_conn *h = io->data;
    char buf[256];
    ssize_t n = recv(h->fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        hold_close(&h->base);
}

static int hold_accept(struct pl_worker *w, struct pl_worker_listener *l, int fd,
                       const struct sockaddr *peer, socklen_t peerlen);

/* keeps connections until the peer closes; ignores drain requests */
static const struct pl_conn_handler_vtable hold_handler = {
    .name = "test.hold",
    .on_accept = hold_accept,
    .drain_conn = NULL,
    .close_conn = hold_close,
};

/* keeps connections until the peer closes or a drain asks it to finish */
static const struct pl_conn_handler_vtable drainable_handler = {
    .name = "test.drainable",
    .on_accept = hold_accept,
    .drain_conn = hold_close,
    .close_conn = hold_close,
};

static int hold_accept(struct pl_worker *w, struct pl_worker_listener *l, int fd,
                       const struct sockaddr *peer, socklen_t peerlen)
{
    (void)peer;
    (void)peerlen;
    struct hold_conn *h = pl_calloc(1, sizeof(*h));
    h->w = w;
    h->fd = fd;
    const char *name = pl_worker_listener_name(l);
    pl_worker_conn_add(w, l, &h->base,
                       strstr(name, "drainable") ? &drainable_handler : &hold_handler);
    ev_io_init(&h->io, hold_read_cb, fd, EV_READ);
    h->io.data = h;
    ev_io_start(pl_worker_loop(w), &h->io);
    return 0;
}

/* ---- snapshots ---- */

static ProtobufCMessage *listener_proto(const char *filter)
{
    Envoy__Config__Listener__V3__Listener *m = pl_malloc(sizeof(*m));
    envoy__config__listener__v3__listener__init(m);
    Envoy__Config__Listener__V3__FilterChain *fc = pl_malloc(sizeof(*fc));
    envoy__config__listener__v3__filter_chain__init(fc);
    Envoy__Config__Listener__V3__Filter *f = pl_malloc(sizeof(*f));
    envoy__config__listener__v3__filter__init(f);
    f->name = pl_strdup(filter);
    fc->n_filters = 1;
    fc->filters = pl_malloc(sizeof(*fc->filters));
    fc->filters[0] = f;
    m->n_filter_chains = 1;
    m->filter_chains = pl_malloc(sizeof(*m->filter_chains));
    m->filter_chains[0] = fc;
    return &m->base;
}

struct lspec {
    const char *name;
    int port;
    uint64_t hash;
    const char *filter; /* NULL: no proto, built-in close handler */
};

static struct pl_snapshot *snapshot(const struct lspec *ls, size_t n)
{
    struct pl_snapshot *s = pl_snapshot_new();
    s->n_listeners = n;
    s->listeners = pl_calloc(n ? n : 1, sizeof(*s->listeners));
    for (size_t i = 0; i < n; i++) {
        struct pl_listener_cfg *l = &s->listeners[i];
        struct sockaddr_in *in = (struct sockaddr_in *)&l->addr;
        in->sin_family = AF_INET;
        in->sin_port = htons(ls[i].port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        l->addrlen = sizeof(*in);
        l->name = pl_strdup(ls[i].name);
        l->addr_str = pl_asprintf("127.0.0.1:%d", ls[i].port);
        l->hash = ls[i].hash;
        if (ls[i].filter)
            l->proto = listener_proto(ls[i].filter);
    }
    return s;
}

static struct pl_server *server(unsigned workers, double drain_s, bool signals)
{
    pl_log_set_level(PL_LOG_WARN);
    pl_conn_handler_clear();
    cr_assert_eq(pl_conn_handler_register(&hold_handler), 0);
    cr_assert_eq(pl_conn_handler_register(&drainable_handler), 0);
    cr_assert_eq(pl_conn_handler_register(&hold_handler), PL_EEXIST);
    struct pl_server_opts o = {
        .concurrency = workers, .drain_time_s = drain_s, .no_signals = !signals};
    struct pl_err err = PL_ERR_INIT;
    struct pl_server *srv = pl_server_new(&o, &err);
    cr_assert_not_null(srv);
    cr_assert_eq(err.n, 0);
    return srv;
}

static void apply_ok(struct pl_server *srv, const struct lspec *ls, size_t n)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_snapshot *s = snapshot(ls, n);
    int rc = pl_server_apply(srv, s, &err);
    if (rc < 0) {
        pl_err_print(&err, stderr);
        pl_snapshot_free(s);
    }
    cr_assert_eq(rc, 0);
    pl_err_free(&err);
}

static int port_of(struct pl_server *srv, const char *name)
{
    struct pl_server_listener_info info[8];
    size_t n = pl_server_listeners(srv, info, 8);
    for (size_t i = 0; i < n && i < 8; i++)
        if (!strcmp(info[i].name, name))
            return ntohs(((struct sockaddr_in *)&info[i].addr)->sin_port);
    return -1;
}

/* ---- clients ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Returns a connected socket, or -errno. */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&in, sizeof(in)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Blocks until the server closes fd (EOF or reset); returns 1 if it did within 5 s. */
static int closed_by_server(int fd)
{
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Waits until connecting to port is refused (all workers closed their sockets). */
static int wait_refused(int port)
{
    for (double end = now_s() + 5; now_s() < end; usleep(10000)) {
        int fd = dial(port);
        if (fd == -ECONNREFUSED)
            return 1;
        if (fd >= 0)
            close(fd);
    }
    return 0;
}

static uint64_t wait_stat(struct pl_server *srv, const char *name, bool active, uint64_t want)
{
    struct pl_listener_stats st = {0};
    for (double end = now_s() + 5; now_s() < end; usleep(2000)) {
        pl_server_listener_stats(srv, name, -1, &st);
        uint64_t v = active ? st.downstream_cx_active : st.downstream_cx_total;
        if (v == want)
            return v;
    }
    return active ? st.downstream_cx_active : st.downstream_cx_total;
}

/* ---- tests ---- */

Test(server, port0_listener_spreads_connections_over_workers, .timeout = 60)
{
    struct pl_server *srv = server(2, 1, false);
    apply_ok(srv, (struct lspec[]){{"a", 0, 1, NULL}}, 1);
    int port = port_of(srv, "a");
    cr_assert_gt(port, 0, "port 0 was resolved");
    struct pl_server_listener_info info;
    cr_assert_eq(pl_server_listeners(srv, &info, 1), 1);
    cr_assert_str_eq(info.handler, "pillion.close");
    const int n = 200;
    for (int i = 0; i < n; i++) {
        int fd = dial(port);
        cr_assert_geq(fd, 0, "connect %d: %s", i, strerror(-fd));
        cr_assert(closed_by_server(fd), "the close handler closes the connection");
        close(fd);
    }
    cr_assert_eq(wait_stat(srv, "a", false, n), (uint64_t)n);
    struct pl_listener_stats w0, w1;
    pl_server_listener_stats(srv, "a", 0, &w0);
    pl_server_listener_stats(srv, "a", 1, &w1);
    cr_log_info("worker 0 accepted %llu, worker 1 accepted %llu",
                (unsigned long long)w0.downstream_cx_total,
                (unsigned long long)w1.downstream_cx_total);
    cr_assert_gt(w0.downstream_cx_total, 0, "SO_REUSEPORT gives both workers connections");
    cr_assert_gt(w1.downstream_cx_total, 0, "SO_REUSEPORT gives both workers connections");
    cr_assert_eq(w0.downstream_cx_active + w1.downstream_cx_active, 0);
    cr_assert_eq(pl_server_listener_stats(srv, "nope", -1, &w0), PL_ENOENT);
    const struct pl_snapshot *cur = pl_snapshot_current();
    cr_assert_not_null(cur);
    cr_assert_eq(cur->generation, 1);
    for (unsigned i = 0; i < 2; i++) {
        for (double end = now_s() + 5;
             pl_worker_generation(pl_server_worker(srv, i)) != 1 && now_s() < end;)
            usleep(1000);
        cr_assert_eq(pl_worker_generation(pl_server_worker(srv, i)), 1);
    }
    pl_server_quit(srv);
    cr_assert_eq(pl_server_run(srv), 0);
    pl_server_free(srv);
}

Test(server, bind_failure_is_a_clear_error_and_nothing_is_published)
{
    int blocker = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(blocker, (struct sockaddr *)&in, sizeof(in)), 0);
    cr_assert_eq(listen(blocker, 8), 0);
    socklen_t len = sizeof(in);
    getsockname(blocker, (struct sockaddr *)&in, &len);
    int port = ntohs(in.sin_port);

    struct pl_server *srv = server(2, 1, false);
    struct pl_err err = PL_ERR_INIT;
    struct pl_snapshot *s = snapshot((struct lspec[]){{"ok", 0, 1, NULL}, {"x", port, 2, NULL}}, 2);
    cr_assert_eq(pl_server_apply(srv, s, &err), PL_EIO);
    char *msg = pl_err_join(&err);
    char want[128];
    snprintf(want, sizeof(want), "listener 'x': cannot bind 127.0.0.1:%d: Address already in use",
             port);
    cr_assert_str_eq(msg, want);
    free(msg);
    pl_err_free(&err);
    cr_assert_null(pl_snapshot_current(), "a failed apply publishes nothing");
    cr_assert_eq(pl_server_listeners(srv, NULL, 0), 0, "listener 'ok' was closed again");
    pl_snapshot_free(s);

    s = snapshot((struct lspec[]){{"a", 0, 1, NULL}, {"a", 0, 2, NULL}}, 2);
    cr_assert_eq(pl_server_apply(srv, s, &err), PL_EINVAL);
    pl_err_free(&err);
    pl_snapshot_free(s);
    pl_server_free(srv);
    close(blocker);
}

Test(server, listeners_removed_added_and_kept_across_snapshots, .timeout = 60)
{
    struct pl_server *srv = server(2, 1, false);
    apply_ok(srv, (struct lspec[]){{"a", 0, 1, NULL}}, 1);
    int pa = port_of(srv, "a");
    int fd = dial(pa);
    cr_assert_geq(fd, 0);
    close(fd);

    /* a removed: every worker closes its socket, connects are refused */
    apply_ok(srv, NULL, 0);
    cr_assert_eq(port_of(srv, "a"), -1);
    cr_assert(wait_refused(pa), "connect to a removed listener is refused");

    /* two new listeners */
    apply_ok(srv, (struct lspec[]){{"b", 0, 2, NULL}, {"c", 0, 3, "test.hold"}}, 2);
    int pb = port_of(srv, "b"), pc = port_of(srv, "c");
    cr_assert_gt(pb, 0);
    cr_assert_gt(pc, 0);
    cr_assert_neq(pb, pc);
    fd = dial(pb);
    cr_assert_geq(fd, 0);
    cr_assert(closed_by_server(fd));
    close(fd);
    int held = dial(pc);
    cr_assert_geq(held, 0);
    cr_assert_eq(wait_stat(srv, "c", true, 1), 1);

    /* same name and hash: the sockets (and the port chosen for port 0) stay */
    apply_ok(srv, (struct lspec[]){{"b", 0, 2, NULL}, {"c", 0, 3, "test.hold"}}, 2);
    cr_assert_eq(port_of(srv, "b"), pb);
    cr_assert_eq(port_of(srv, "c"), pc);
    cr_assert_eq(wait_stat(srv, "c", true, 1), 1, "connection survived the update");

    /* c changed (new hash): old sockets close, its connection is drained; the new c listens */
    apply_ok(srv, (struct lspec[]){{"b", 0, 2, NULL}, {"c", pc, 4, "test.hold"}}, 2);
    cr_assert_eq(port_of(srv, "c"), pc);
    int again = dial(pc);
    cr_assert_geq(again, 0, "the changed listener accepts on the same port");
    close(again);
    /* test.hold ignores drain: the drain timer (1 s) closes it */
    double t = now_s();
    cr_assert(closed_by_server(held));
    cr_assert_lt(now_s() - t, 4.0);
    close(held);
    struct pl_publish_stats ps;
    pl_publish_get_stats(&ps);
    cr_assert_eq(ps.published, 5);
    pl_server_free(srv);
}

static void raise_term(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    raise(SIGTERM);
}

Test(server, sigterm_drains_then_exits_within_drain_time, .timeout = 60)
{
    struct pl_server *srv = server(2, 0.5, true);
    apply_ok(srv, (struct lspec[]){{"h", 0, 1, "test.hold"}}, 1);
    int port = port_of(srv, "h");
    int fds[4];
    for (int i = 0; i < 4; i++)
        cr_assert_geq(fds[i] = dial(port), 0);
    cr_assert_eq(wait_stat(srv, "h", true, 4), 4);
    ev_timer t;
    ev_timer_init(&t, raise_term, 0.05, 0);
    ev_timer_start(pl_server_loop(srv), &t);
    double start = now_s();
    cr_assert_eq(pl_server_run(srv), 0);
    double took = now_s() - start;
    cr_log_info("drain took %.3fs", took);
    cr_assert_geq(took, 0.5, "held connections keep the drain going until the drain time");
    cr_assert_lt(took, 2.5);
    cr_assert_eq(wait_refused(port), 1);
    for (int i = 0; i < 4; i++) {
        cr_assert(closed_by_server(fds[i]));
        close(fds[i]);
    }
    ev_timer_stop(pl_server_loop(srv), &t);
    pl_server_free(srv);
}

Test(server, drain_ends_early_when_connections_finish, .timeout = 60)
{
    struct pl_server *srv = server(2, 30, false);
    apply_ok(srv, (struct lspec[]){{"drainable", 0, 1, "test.drainable"}}, 1);
    int port = port_of(srv, "drainable");
    int fds[4];
    for (int i = 0; i < 4; i++)
        cr_assert_geq(fds[i] = dial(port), 0);
    cr_assert_eq(wait_stat(srv, "drainable", true, 4), 4);
    pl_server_drain_and_quit(srv);
    double start = now_s();
    cr_assert_eq(pl_server_run(srv), 0);
    cr_assert_lt(now_s() - start, 2.0, "no need to wait the 30 s drain time");
    for (int i = 0; i < 4; i++) {
        cr_assert(closed_by_server(fds[i]));
        close(fds[i]);
    }
    pl_server_free(srv);
}

static void check_drained(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_server *srv = t->data;
    int port = port_of(srv, "h");
    int fd = dial(port);
    if (fd >= 0) {
        close(fd);
        return; /* workers have not closed every socket yet: try again */
    }
    pl_server_quit(srv);
}

Test(server, drain_listeners_stops_accepting_and_keeps_connections, .timeout = 60)
{
    struct pl_server *srv = server(3, 1, false);
    apply_ok(srv, (struct lspec[]){{"h", 0, 1, "test.hold"}}, 1);
    int port = port_of(srv, "h");
    int held = dial(port);
    cr_assert_geq(held, 0);
    cr_assert_eq(wait_stat(srv, "h", true, 1), 1);
    pl_server_drain_listeners(srv);
    cr_assert(wait_refused(port));
    cr_assert_eq(wait_stat(srv, "h", true, 1), 1, "open connections are not touched");
    /* new listeners are not opened after a drain; the config is still published */
    apply_ok(srv, (struct lspec[]){{"h", 0, 1, "test.hold"}, {"new", 0, 2, NULL}}, 2);
    cr_assert_eq(port_of(srv, "new"), -1);
    ev_timer t;
    ev_timer_init(&t, check_drained, 0.01, 0.01);
    t.data = srv;
    ev_timer_start(pl_server_loop(srv), &t);
    cr_assert_eq(pl_server_run(srv), 0);
    ev_timer_stop(pl_server_loop(srv), &t);
    cr_assert(closed_by_server(held), "quit closes open connections");
    close(held);
    pl_server_free(srv);
}

Test(server, quit_before_run_returns_at_once_and_closes_connections)
{
    struct pl_server *srv = server(1, 60, false);
    apply_ok(srv, (struct lspec[]){{"h", 0, 1, "test.hold"}}, 1);
    int fd = dial(port_of(srv, "h"));
    cr_assert_geq(fd, 0);
    cr_assert_eq(wait_stat(srv, "h", true, 1), 1);
    pl_server_quit(srv);
    double start = now_s();
    cr_assert_eq(pl_server_run(srv), 0);
    cr_assert_lt(now_s() - start, 1.0);
    cr_assert(closed_by_server(fd));
    close(fd);
    pl_server_free(srv);
}
