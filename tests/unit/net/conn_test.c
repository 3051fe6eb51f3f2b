/* Connections: delivery, write queue, watermarks, half-close, close after flush, connect
 * outcomes, idle timer, read disabling. One libev loop in the test thread; the peer is a plain
 * socket the test drives by hand. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/conn.h"

struct rec {
    struct pl_buf got;
    int eof, closed, connected, failed, timeout, idle, high, low;
    bool consume; /* drain in on each on_data */
    struct pl_conn *c;
};

static void on_data(struct pl_conn *c, struct pl_buf *in, bool end_stream, void *arg)
{
    (void)c;
    struct rec *r = arg;
    if (r->consume)
        pl_buf_move(&r->got, in, in->len);
    r->eof += end_stream;
}

static void on_event(struct pl_conn *c, enum pl_conn_event ev, void *arg)
{
    struct rec *r = arg;
    switch (ev) {
    case PL_CONN_EV_CONNECTED:
        r->connected++;
        break;
    case PL_CONN_EV_CLOSED:
        r->closed++;
        r->c = NULL;
        break;
    case PL_CONN_EV_CONNECT_FAILED:
        r->failed++;
        cr_assert(strlen(c->err_text) > 0);
        r->c = NULL;
        break;
    case PL_CONN_EV_CONNECT_TIMEOUT:
        r->timeout++;
        r->c = NULL;
        break;
    case PL_CONN_EV_IDLE_TIMEOUT:
        r->idle++;
        break;
    }
}

static void on_high(struct pl_conn *c, void *arg)
{
    (void)c;
    ((struct rec *)arg)->high++;
}

static void on_low(struct pl_conn *c, void *arg)
{
    (void)c;
    ((struct rec *)arg)->low++;
}

static const struct pl_conn_callbacks cbs = {.on_data = on_data,
                                             .on_event = on_event,
                                             .on_high_watermark = on_high,
                                             .on_low_watermark = on_low};

static struct ev_loop *loop;

static void tick(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the loop until *flag is non-zero (or cond() is true) or secs pass. */
static void run_until(int *flag, double secs)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(loop, &t);
    double end = now_s() + secs;
    do /* at least one pass, however late this thread gets the CPU */
        ev_run(loop, EVRUN_ONCE);
    while ((!flag || !*flag) && now_s() < end);
    ev_timer_stop(loop, &t);
}

static void setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
}

static void teardown(void)
{
    cr_assert_eq(pl_conn_live(), 0, "%zu connections leaked", pl_conn_live());
    ev_loop_destroy(loop);
    pl_buf_pool_trim();
}

TestSuite(conn, .init = setup, .fini = teardown);

/* An accepted connection on one end of a socketpair; *peer gets the other end. */
static struct pl_conn *pair(struct rec *r, int *peer, uint32_t limit)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct pl_conn_opts o = {.cb = &cbs, .arg = r, .buffer_limit = limit};
    r->consume = true;
    r->c = pl_conn_accept(loop, sv[0], &o);
    cr_assert_not_null(r->c);
    *peer = sv[1];
    return r->c;
}

static size_t drain_peer(int fd, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, out ? out + n : (char[65536]){0}, out ? cap - n : 65536);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    return n;
}

Test(conn, delivers_reads_and_writes_back)
{
    struct rec r = {0};
    int peer;
    struct pl_conn *c = pair(&r, &peer, 0);
    run_until(&r.connected, 1);
    cr_assert_eq(r.connected, 1, "accepted raw connections report CONNECTED from the loop");
    cr_assert_eq(write(peer, "hello", 5), 5);
    run_until((int *)&r.got.len, 1);
    char buf[16] = {0};
    cr_assert_eq(pl_buf_copyout(&r.got, 0, buf, sizeof(buf)), 5);
    cr_assert_str_eq(buf, "hello");
    cr_assert_eq(c->bytes_read, 5);
    pl_conn_write_copy(c, "world", 5, false);
    run_until(NULL, 0.05);
    memset(buf, 0, sizeof(buf));
    cr_assert_eq(read(peer, buf, sizeof(buf)), 5);
    cr_assert_str_eq(buf, "world");
    pl_conn_close(c, PL_CONN_CLOSE_NOW);
    cr_assert_eq(r.closed, 0, "no callback after the owner's close");
    cr_assert_eq(read(peer, buf, sizeof(buf)), 0);
    close(peer);
    pl_buf_free(&r.got);
}

Test(conn, watermarks_fire_once_each_way)
{
    struct rec r = {0};
    int peer;
    struct pl_conn *c = pair(&r, &peer, 64 * 1024);
    run_until(&r.connected, 1);
    char *chunk = calloc(1, 16384);
    for (int i = 0; i < 64; i++) /* 1 MiB: far above the socket buffer and the limit */
        pl_conn_write_copy(c, chunk, 16384, false);
    cr_assert_eq(r.high, 1);
    cr_assert_eq(r.low, 0);
    size_t total = 0;
    double end = now_s() + 5;
    while (total < 64 * 16384 && now_s() < end) {
        total += drain_peer(peer, NULL, 0);
        run_until(NULL, 0.01);
    }
    cr_assert_eq(total, 64 * 16384);
    cr_assert_eq(r.low, 1);
    cr_assert_eq(r.high, 1);
    cr_assert_eq(c->bytes_written, 64 * 16384);
    free(chunk);
    pl_conn_close(c, PL_CONN_CLOSE_NOW);
    close(peer);
}

Test(conn, reading_pauses_when_input_is_full_and_resumes)
{
    struct rec r = {0};
    int peer;
    struct pl_conn *c = pair(&r, &peer, 4096);
    r.consume = false; /* the owner leaves bytes in c->in */
    run_until(&r.connected, 1);
    char data[20000];
    memset(data, 'x', sizeof(data));
    cr_assert_eq(write(peer, data, sizeof(data)), (ssize_t)sizeof(data));
    run_until(NULL, 0.1);
    cr_assert_eq(c->in.len, 4096, "reads stop at the buffer limit (%zu)", c->in.len);
    pl_buf_drain(&c->in, c->in.len);
    r.consume = true;
    pl_conn_read_resume(c);
    run_until(NULL, 0.1);
    cr_assert_eq(r.got.len, sizeof(data) - 4096);
    pl_conn_close(c, PL_CONN_CLOSE_NOW);
    close(peer);
    pl_buf_free(&r.got);
}

Test(conn, read_disable_is_a_counter)
{
    struct rec r = {0};
    int peer;
    struct pl_conn *c = pair(&r, &peer, 0);
    run_until(&r.connected, 1);
    pl_conn_read_disable(c, true);
    pl_conn_read_disable(c, true);
    cr_assert_eq(write(peer, "abc", 3), 3);
    run_until(NULL, 0.05);
    cr_assert_eq(r.got.len, 0);
    pl_conn_read_disable(c, false);
    run_until(NULL, 0.05);
    cr_assert_eq(r.got.len, 0, "still disabled once");
    pl_conn_read_disable(c, false);
    cr_assert(!pl_conn_read_disabled(c));
    run_until((int *)&r.got.len, 1);
    cr_assert_eq(r.got.len, 3);
    pl_conn_close(c, PL_CONN_CLOSE_NOW);
    close(peer);
    pl_buf_free(&r.got);
}

Test(conn, half_close_both_ways)
{
    struct rec r = {0};
    int peer;
    struct pl_conn *c = pair(&r, &peer, 0);
    cr_assert_eq(write(peer, "req", 3), 3);
    shutdown(peer, SHUT_WR);
    run_until(&r.eof, 1);
    cr_assert_eq(r.eof, 1);
    cr_assert_eq(r.got.len, 3);
    cr_assert_eq(r.closed, 0, "our side stays open for writing");
    pl_conn_write_copy(c, "reply", 5, true);
    run_until(&r.closed, 1);
    cr_assert_eq(r.closed, 1, "both directions finished: reported closed");
    char buf[16] = {0};
    cr_assert_eq(read(peer, buf, sizeof(buf)), 5);
    cr_assert_str_eq(buf, "reply");
    cr_assert_eq(read(peer, buf, sizeof(buf)), 0);
    close(peer);
    pl_buf_free(&r.got);
}

Test(conn, peer_close_is_reported)
{
    struct rec r = {0};
    int peer;
    pair(&r, &peer, 0);
    run_until(&r.connected, 1);
    struct linger lg = {1, 0}; /* RST */
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(peer);
    run_until(&r.eof, 1);
    cr_assert_eq(r.eof, 1);
    cr_assert_eq(r.closed, 0);
    pl_conn_close(r.c, PL_CONN_CLOSE_NOW);
}

Test(conn, close_after_flush_delivers_everything)
{
    struct rec r = {0};
    int peer;
    struct pl_conn *c = pair(&r, &peer, 0);
    run_until(&r.connected, 1);
    size_t n = 3 * 1024 * 1024;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7);
    pl_conn_write_copy(c, big, n, false);
    pl_conn_close(c, PL_CONN_CLOSE_FLUSH);
    char *got = malloc(n + 1);
    size_t have = 0;
    double end = now_s() + 5;
    for (;;) {
        ssize_t k = read(peer, got + have, n + 1 - have);
        if (k == 0)
            break;
        if (k > 0)
            have += (size_t)k;
        run_until(NULL, 0.001);
        cr_assert(now_s() < end, "timed out with %zu of %zu bytes", have, n);
    }
    cr_assert_eq(have, n);
    cr_assert(memcmp(got, big, n) == 0);
    close(peer); /* the lingering close sees our FIN and finishes */
    run_until(NULL, 0.05);
    free(big);
    free(got);
}

/* A flush-close whose peer never sends its FIN lingers for a second (LINGER_S), then goes: the
 * linger shares its timer with the connect timeout. */
Test(conn, flush_close_lingers_then_goes_without_the_peers_fin)
{
    struct rec r = {0};
    int peer;
    struct pl_conn *c = pair(&r, &peer, 0);
    run_until(&r.connected, 1);
    pl_conn_write_copy(c, "bye", 3, false);
    pl_conn_close(c, PL_CONN_CLOSE_FLUSH);
    run_until(NULL, 0.3);
    cr_assert_eq(pl_conn_live(), 1, "gone before the linger ran out");
    char got[8];
    cr_assert_eq(read(peer, got, sizeof(got)), 3);
    cr_assert_eq(read(peer, got, sizeof(got)), 0, "our FIN should follow the bytes");
    double end = now_s() + 3;
    while (pl_conn_live() && now_s() < end)
        run_until(NULL, 0.05);
    cr_assert_eq(pl_conn_live(), 0, "still lingering after 3 s");
    cr_assert_eq(r.closed, 0, "an owner that closed gets no event");
    close(peer);
}

static int bound_port(int *fd, bool listen_too)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (listen_too)
        cr_assert_eq(listen(*fd, 16), 0);
    socklen_t len = sizeof(a);
    getsockname(*fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

Test(conn, connect_refused_is_reported_from_the_loop)
{
    int fd;
    int port = bound_port(&fd, false);
    close(fd); /* nothing listens there now */
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct rec r = {0};
    struct pl_conn_opts o = {.cb = &cbs, .arg = &r};
    struct pl_err err = PL_ERR_INIT;
    struct pl_conn *c;
    cr_assert_eq(pl_conn_connect(loop, (struct sockaddr *)&a, sizeof(a), 1.0, &o, &c, &err), 0);
    cr_assert_eq(r.failed, 0, "never reported from inside pl_conn_connect");
    pl_conn_write_copy(c, "lost", 4, false);
    run_until(&r.failed, 2);
    cr_assert_eq(r.failed, 1);
    cr_assert_eq(r.connected, 0);
}

Test(conn, connect_then_send_queued_bytes)
{
    int lfd;
    int port = bound_port(&lfd, true);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct rec r = {.consume = true};
    struct pl_conn_opts o = {.cb = &cbs, .arg = &r};
    struct pl_err err = PL_ERR_INIT;
    struct pl_conn *c;
    cr_assert_eq(pl_conn_connect(loop, (struct sockaddr *)&a, sizeof(a), 1.0, &o, &c, &err), 0);
    pl_conn_write_copy(c, "early", 5, false);
    run_until(&r.connected, 2);
    cr_assert_eq(r.connected, 1);
    int s = accept(lfd, NULL, NULL);
    cr_assert(s >= 0);
    run_until(NULL, 0.02);
    char buf[16] = {0};
    cr_assert_eq(read(s, buf, sizeof(buf)), 5);
    cr_assert_str_eq(buf, "early");
    cr_assert_eq(write(s, "back", 4), 4);
    close(s); /* FIN after the data */
    run_until(&r.eof, 1);
    cr_assert_eq(r.got.len, 4);
    pl_conn_close(c, PL_CONN_CLOSE_NOW);
    close(lfd);
    pl_buf_free(&r.got);
}

Test(conn, connect_timeout_fires)
{
    /* A listener whose backlog is full drops further SYNs, so connect() stays in progress. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    socklen_t len = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    struct rec r = {0};
    struct pl_conn_opts o = {.cb = &cbs, .arg = &r};
    struct pl_err err = PL_ERR_INIT;
    struct pl_conn *c;
    cr_assert_eq(pl_conn_connect(loop, (struct sockaddr *)&a, sizeof(a), 0.2, &o, &c, &err), 0);
    run_until(&r.timeout, 3);
    if (r.connected) /* the kernel accepted it after all: nothing to test here */
        pl_conn_close(c, PL_CONN_CLOSE_NOW);
    else
        cr_assert_eq(r.timeout, 1);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

Test(conn, idle_timer_fires_without_traffic)
{
    struct rec r = {0};
    int peer;
    struct pl_conn *c = pair(&r, &peer, 0);
    /* timers count from the loop's time, which lags after a slow set-up (sanitizers, a busy
     * machine) until the loop runs: bring it to now so that 0.1 s is measured from t0 */
    ev_now_update(loop);
    double t0 = now_s();
    pl_conn_set_idle_timeout(c, 0.1);
    run_until(&r.idle, 2);
    cr_assert_eq(r.idle, 1);
    cr_assert(now_s() - t0 >= 0.09);
    pl_conn_close(c, PL_CONN_CLOSE_NOW);
    close(peer);
}

static void close_in_data(struct pl_conn *c, struct pl_buf *in, bool end_stream, void *arg)
{
    (void)in;
    (void)end_stream;
    struct rec *r = arg;
    r->eof++;
    pl_conn_close(c, PL_CONN_CLOSE_NOW);
    r->c = NULL;
}

Test(conn, close_from_inside_a_callback)
{
    static const struct pl_conn_callbacks closing = {.on_data = close_in_data};
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct rec r = {0};
    struct pl_conn_opts o = {.cb = &closing, .arg = &r};
    r.c = pl_conn_accept(loop, sv[0], &o);
    cr_assert_eq(write(sv[1], "x", 1), 1);
    run_until(&r.eof, 1);
    cr_assert_eq(r.eof, 1);
    cr_assert_eq(pl_conn_live(), 0, "freed once the callback returned");
    char b;
    cr_assert_eq(read(sv[1], &b, 1), 0);
    close(sv[1]);
}

/* Output queued on many connections in one pass leaves in one batch, and connections readable
 * at once are read in one batch (io_uring where the kernel allows it, else directly): every
 * peer and every connection gets exactly its own bytes, in order, and each FIN once. */
static void many_connections_exchange(size_t nconn)
{
    struct rec *r = calloc(nconn, sizeof(*r));
    int *peer = calloc(nconn, sizeof(int));
    for (size_t i = 0; i < nconn; i++)
        pair(&r[i], &peer[i], 0);
    for (size_t i = 0; i < nconn; i++)
        run_until(&r[i].connected, 1);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < nconn; i++) { /* two writes each: they leave together */
            char msg[64];
            int n = snprintf(msg, sizeof(msg), "conn %zu round %d;", i, round);
            pl_conn_write_copy(r[i].c, msg, (size_t)n / 2, false);
            pl_conn_write_copy(r[i].c, msg + n / 2, (size_t)(n - n / 2), false);
        }
        for (size_t i = 0; i < nconn; i++) { /* and every peer writes: all readable at once */
            char msg[64];
            int n = snprintf(msg, sizeof(msg), "peer %zu round %d;", i, round);
            cr_assert_eq(write(peer[i], msg, (size_t)n), n);
        }
        for (double end = now_s() + 5; now_s() < end;) { /* every connection read its peer */
            run_until(NULL, 0.01);
            size_t done = 0;
            for (size_t i = 0; i < nconn; i++)
                done += r[i].got.len > 0;
            if (done == nconn)
                break;
        }
        for (size_t i = 0; i < nconn; i++) {
            char want[64], got[128] = {0};
            int n = snprintf(want, sizeof(want), "peer %zu round %d;", i, round);
            cr_assert_eq(r[i].got.len, (size_t)n);
            pl_buf_copyout(&r[i].got, 0, got, sizeof(got) - 1);
            cr_assert_str_eq(got, want);
            pl_buf_drain(&r[i].got, r[i].got.len);
            memset(got, 0, sizeof(got));
            snprintf(want, sizeof(want), "conn %zu round %d;", i, round);
            cr_assert_eq(drain_peer(peer[i], got, sizeof(got) - 1), strlen(want));
            cr_assert_str_eq(got, want);
            cr_assert_eq(r[i].c->out.len, 0);
        }
    }
    for (size_t i = 0; i < nconn; i++)
        shutdown(peer[i], SHUT_WR);
    for (double end = now_s() + 5; now_s() < end;) {
        run_until(NULL, 0.01);
        size_t done = 0;
        for (size_t i = 0; i < nconn; i++)
            done += r[i].eof > 0;
        if (done == nconn)
            break;
    }
    for (size_t i = 0; i < nconn; i++) {
        cr_assert_eq(r[i].eof, 1, "connection %zu: the peer's FIN", i);
        pl_buf_free(&r[i].got);
        cr_assert_eq(r[i].c->bytes_written,
                     3 * strlen("conn 0 round 0;") + 3 * (i >= 10) + 3 * (i >= 100));
        pl_conn_close(r[i].c, PL_CONN_CLOSE_NOW);
        close(peer[i]);
    }
    free(r);
    free(peer);
}

Test(conn, batched_writes_of_many_connections)
{
    many_connections_exchange(150); /* more than one submission's worth */
    struct io_uring probe;
    if (io_uring_queue_init(4, &probe, 0) < 0)
        cr_skip_test("io_uring is refused here: the direct path was tested");
    io_uring_queue_exit(&probe);
    cr_assert(pl_conn_io_uring_active(), "io_uring works here, so writes must be batched");
}

Test(conn, direct_writes_when_io_uring_is_off)
{
    pl_conn_set_io_uring(false);
    many_connections_exchange(20);
    cr_assert(!pl_conn_io_uring_active());
}

/* A connection closed while its output waits in the batch writes nothing and is freed. */
Test(conn, close_now_while_output_waits_in_the_batch)
{
    struct rec r1 = {0}, r2 = {0};
    int p1, p2;
    struct pl_conn *c1 = pair(&r1, &p1, 0), *c2 = pair(&r2, &p2, 0);
    run_until(&r1.connected, 1);
    run_until(&r2.connected, 1);
    pl_conn_write_copy(c1, "one", 3, false);
    pl_conn_write_copy(c2, "two", 3, false);
    pl_conn_close(c1, PL_CONN_CLOSE_NOW); /* first on the batch */
    run_until(NULL, 0.02);
    char got[8] = {0};
    cr_assert_eq(read(p1, got, sizeof(got)), 0, "closed with nothing written");
    cr_assert_eq(read(p2, got, sizeof(got)), 3);
    cr_assert_str_eq(got, "two");
    pl_conn_write_copy(c2, "end", 3, true); /* end_stream: our FIN after the bytes */
    run_until(NULL, 0.02);
    memset(got, 0, sizeof(got));
    cr_assert_eq(read(p2, got, sizeof(got)), 3);
    cr_assert_eq(read(p2, got, sizeof(got)), 0, "FIN after the batched bytes");
    cr_assert_eq(pl_conn_live(), 1);
    pl_conn_close(c2, PL_CONN_CLOSE_NOW);
    close(p1);
    close(p2);
}

/* Two connections readable in the same pass, each of whose on_data disables reading on the
 * other: the one served second gets nothing (its bytes and FIN wait, whether or not a batched
 * read already took them) until reading is enabled again. */
struct crossed {
    struct rec r;
    struct pl_conn *other;
};

static void disable_other(struct pl_conn *c, struct pl_buf *in, bool end_stream, void *arg)
{
    struct crossed *x = arg;
    on_data(c, in, end_stream, &x->r);
    if (x->other) {
        pl_conn_read_disable(x->other, true);
        ((struct crossed *)x->other->arg)->other = NULL; /* only the first one disables */
        x->other = NULL;                                 /* and only once */
    }
}

static void crossed_disable(void)
{
    static const struct pl_conn_callbacks cross = {.on_data = disable_other};
    struct crossed x[2] = {0};
    int sv[2][2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]), 0);
        struct pl_conn_opts o = {.cb = &cross, .arg = &x[i]};
        x[i].r.consume = true;
        x[i].r.c = pl_conn_accept(loop, sv[i][0], &o);
    }
    x[0].other = x[1].r.c;
    x[1].other = x[0].r.c;
    run_until(NULL, 0.02);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(write(sv[i][1], "data", 4), 4);
        shutdown(sv[i][1], SHUT_WR);
    }
    for (double end = now_s() + 5; !x[0].r.eof && !x[1].r.eof && now_s() < end;)
        run_until(NULL, 0.01);
    run_until(NULL, 0.02);
    int first = x[0].r.got.len ? 0 : 1, second = 1 - first;
    cr_assert_eq(x[first].r.got.len, 4);
    cr_assert_eq(x[first].r.eof, 1);
    cr_assert_eq(x[second].r.got.len, 0, "reading was disabled before its turn");
    cr_assert_eq(x[second].r.eof, 0);
    pl_conn_read_disable(x[second].r.c, false);
    run_until(&x[second].r.eof, 1);
    cr_assert_eq(x[second].r.got.len, 4);
    cr_assert_eq(x[second].r.eof, 1);
    for (int i = 0; i < 2; i++) {
        pl_conn_close(x[i].r.c, PL_CONN_CLOSE_NOW);
        close(sv[i][1]);
        pl_buf_free(&x[i].r.got);
    }
}

Test(conn, read_disabled_by_an_earlier_callback_of_the_same_pass)
{
    crossed_disable();
}

Test(conn, read_disabled_by_an_earlier_callback_of_the_same_pass_direct)
{
    pl_conn_set_io_uring(false);
    crossed_disable();
}

/* Two connections readable in one pass whose first callback drains or closes the other one's
 * input: a batched read already done for the other lands after what is left, or goes with it. */
struct meddle {
    struct pl_conn *self, *other;
    struct pl_buf *other_in;
    int calls;
    bool close_other, did;
};

static void meddle_data(struct pl_conn *c, struct pl_buf *in, bool end_stream, void *arg)
{
    (void)c;
    (void)in;
    (void)end_stream;
    struct meddle *m = arg;
    m->calls++;
    if (m->other && m->calls == 2) { /* the first pass only primed the input */
        struct meddle *o = m->other->arg;
        if (m->close_other) {
            pl_conn_close(m->other, PL_CONN_CLOSE_NOW);
            o->self = NULL;
        } else {
            pl_buf_drain(m->other_in, m->other_in->len);
        }
        o->other = NULL;
        m->other = NULL;
        m->did = true;
    }
}

static void meddling_pair(bool close_other)
{
    static const struct pl_conn_callbacks cbs_m = {.on_data = meddle_data};
    struct meddle m[2] = {0};
    int sv[2][2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]), 0);
        struct pl_conn_opts o = {.cb = &cbs_m, .arg = &m[i]};
        m[i].self = pl_conn_accept(loop, sv[i][0], &o);
        m[i].close_other = close_other;
    }
    for (int i = 0; i < 2; i++) {
        m[i].other = m[1 - i].self;
        m[i].other_in = &m[1 - i].self->in;
    }
    for (int i = 0; i < 2; i++) /* "old" stays in each input (nobody consumes) */
        cr_assert_eq(write(sv[i][1], "old", 3), 3);
    for (double end = now_s() + 5; (!m[0].calls || !m[1].calls) && now_s() < end;)
        run_until(NULL, 0.01);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(write(sv[i][1], "new", 3), 3);
    for (double end = now_s() + 5; m[0].calls + m[1].calls < 3 && now_s() < end;)
        run_until(NULL, 0.01);
    run_until(NULL, 0.02);
    int first = m[0].did ? 0 : 1, second = 1 - first;
    cr_assert(m[first].did);
    if (close_other) {
        cr_assert_null(m[second].self);
        cr_assert_eq(pl_conn_live(), 1);
    } else {
        char got[16] = {0};
        struct pl_buf *in = &m[second].self->in;
        cr_assert_eq(pl_buf_copyout(in, 0, got, sizeof(got) - 1), 3, "'%s'", got);
        cr_assert_str_eq(got, "new");
    }
    for (int i = 0; i < 2; i++) {
        if (m[i].self)
            pl_conn_close(m[i].self, PL_CONN_CLOSE_NOW);
        close(sv[i][1]);
    }
}

Test(conn, input_drained_by_an_earlier_callback_of_the_same_pass)
{
    meddling_pair(false);
}

Test(conn, closed_by_an_earlier_callback_of_the_same_pass)
{
    meddling_pair(true);
}
