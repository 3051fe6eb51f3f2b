/* Running listener filters on an accepted socket, and waiting for the bytes they need.
 *
 * The filters peek (nothing is consumed), so the socket stays readable while a partial
 * ClientHello sits in it; with level-triggered epoll that would wake the loop at once, again and
 * again. SO_RCVLOWAT is raised to one byte more than the filter saw, so the socket becomes
 * readable only when new bytes arrive, or when the peer closes (which epoll reports whatever the
 * low mark). It is set back to 1 before the connection is handed on. */
#include <errno.h>
#include <ev.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "net/listener_filter.h"

/* Stats handles stay unset (NULL store) until prepare: count nowhere then. */
static void count(struct pl_counter c)
{
    if (c.store)
        pl_counter_inc(c);
}

static void gauge_add(struct pl_gauge g, int64_t n)
{
    if (g.store)
        pl_gauge_add(g, n);
}

struct pl_listener_run {
    const struct pl_listener_filters *lf;
    struct ev_loop *loop;
    ev_io io;
    ev_timer timer;
    size_t next; /* the filter that is waiting */
    bool lowat;  /* SO_RCVLOWAT was raised */
    pl_listener_run_done done;
    void *arg;
    struct pl_listener_socket s;
};

void pl_listener_socket_init(struct pl_listener_socket *s, int fd)
{
    memset(s, 0, offsetof(struct pl_listener_socket, alpn));
    s->fd = fd;
    s->transport_protocol = "raw_buffer";
    s->local_len = sizeof(s->local);
    if (getsockname(fd, (struct sockaddr *)&s->local, &s->local_len) < 0)
        s->local_len = 0;
}

/* Runs the filters from *i on; stops at the first that does not continue. */
static enum pl_lf_status iterate(const struct pl_listener_filters *lf, struct pl_listener_socket *s,
                                 size_t *i)
{
    for (; *i < lf->n; (*i)++) {
        s->peeked = 0;
        enum pl_lf_status st = lf->v[*i].vt->on_accept(lf->v[*i].cfg, s);
        if (st != PL_LF_CONTINUE)
            return st;
    }
    return PL_LF_CONTINUE;
}

static void count_end(const struct pl_listener_filters *lf, enum pl_lf_status st)
{
    if (st == PL_LF_CLOSE)
        count(lf->filter_error);
    else if (st == PL_LF_REMOTE_CLOSE)
        count(lf->filter_remote_close);
}

static void set_lowat(struct pl_listener_run *r)
{
    int v = r->s.peeked + 1 < (size_t)1 << 30 ? (int)r->s.peeked + 1 : 1;
    if (v == 1 && !r->lowat)
        return;
    if (setsockopt(r->s.fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0)
        r->lowat = v > 1;
}

/* Readable although no new byte arrived: did the peer close or reset? */
static bool peer_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void finish(struct pl_listener_run *r, enum pl_lf_status st, bool count)
{
    ev_io_stop(r->loop, &r->io);
    ev_timer_stop(r->loop, &r->timer);
    if (r->lowat) {
        int one = 1;
        setsockopt(r->s.fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
    }
    gauge_add(r->lf->pre_cx_active, -1);
    if (count)
        count_end(r->lf, st);
    r->done(r->arg, &r->s, st);
    free(r);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_listener_run *r = w->data;
    size_t before = r->s.peeked;
    enum pl_lf_status st = iterate(r->lf, &r->s, &r->next);
    if (st == PL_LF_WAIT) {
        if (r->s.peeked == 0 || r->s.peeked > before || !peer_hung_up(r->s.fd)) {
            set_lowat(r);
            return;
        }
        st = PL_LF_REMOTE_CLOSE; /* FIN after a partial hello: no more bytes will come */
    }
    finish(r, st, true);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct pl_listener_run *r = t->data;
    count(r->lf->pre_cx_timeout);
    if (!r->lf->continue_on_timeout) {
        pl_log_debug("net", "listener filters timed out: closing the connection");
        finish(r, PL_LF_CLOSE, false);
        return;
    }
    /* Envoy goes on with the next filter and what the waiting one found so far (nothing) */
    r->next++;
    enum pl_lf_status st = iterate(r->lf, &r->s, &r->next);
    if (st == PL_LF_WAIT) {
        set_lowat(r);
        ev_timer_set(&r->timer, r->lf->timeout_s, 0);
        ev_timer_start(loop, &r->timer);
        return;
    }
    finish(r, st, true);
}

enum pl_lf_status pl_listener_filters_run(const struct pl_listener_filters *lf,
                                          struct ev_loop *loop, struct pl_listener_socket *s,
                                          pl_listener_run_done done, void *arg,
                                          struct pl_listener_run **out)
{
    *out = NULL;
    size_t i = 0;
    enum pl_lf_status st = iterate(lf, s, &i);
    if (st != PL_LF_WAIT) {
        count_end(lf, st);
        return st;
    }
    struct pl_listener_run *r = pl_calloc(1, sizeof(*r));
    r->lf = lf;
    r->loop = loop;
    r->next = i;
    r->done = done;
    r->arg = arg;
    r->s = *s;
    set_lowat(r);
    ev_io_init(&r->io, io_cb, s->fd, EV_READ);
    r->io.data = r;
    ev_io_start(loop, &r->io);
    ev_timer_init(&r->timer, timer_cb, lf->timeout_s, 0);
    r->timer.data = r;
    if (lf->timeout_s > 0)
        ev_timer_start(loop, &r->timer);
    gauge_add(lf->pre_cx_active, 1);
    *out = r;
    return PL_LF_WAIT;
}

void pl_listener_run_cancel(struct pl_listener_run *r)
{
    if (!r)
        return;
    ev_io_stop(r->loop, &r->io);
    ev_timer_stop(r->loop, &r->timer);
    gauge_add(r->lf->pre_cx_active, -1);
    free(r);
}
