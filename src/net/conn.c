/* Connections: socket readiness -> transport -> buffers -> owner callbacks (see conn.h). */
#include "net/conn.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

#define LINGER_S     1.0 /* after a flush-close, wait this long for the peer's FIN (RST guard) */
#define WRITE_ROUNDS 4   /* transport writes per writable event */

struct pl_conn_private {
    ev_io io;
    /* the connect timeout while connecting, the linger after a flush-close: never both (a
     * connection closes with FLUSH only once open), so one watcher serves the two */
    ev_timer phase_timer;
    ev_timer idle_timer;
    struct pl_transport raw; /* the raw transport's state lives here: no extra allocation */
    double idle_timeout, last_activity;
    int events;        /* armed on io */
    int depth;         /* callbacks of this connection on the stack: free when it drops to 0 */
    int pending_err;   /* write error seen outside a callback, reported from io_cb */
    bool in_full;      /* reading paused: in holds buffer_limit unconsumed bytes */
    bool ready_report; /* transport got ready during setup: report CONNECTED from io_cb */
    bool in_setup;
    bool redeliver; /* hand in to the owner again even if no new byte arrives */
    bool orphan;    /* the owner closed it with FLUSH: finishing alone */
    bool write_fed; /* an EV_WRITE was fed to io: queued output leaves when it runs */
    bool has_rx, has_tx;
    struct pl_counter rx, tx;
    struct pl_conn *prev_orphan, *next_orphan;
};

struct conn_block {
    struct pl_conn c;
    struct pl_conn_private p;
};

static __thread size_t live;
static __thread struct pl_conn *orphans; /* flush-closing connections nobody owns any more */

static void update_io(struct pl_conn *c);
static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---- raw TCP transport ---- */

static struct pl_transport *raw_create(void *cfg, struct pl_conn *c, int fd, bool server)
{
    (void)cfg;
    (void)server;
    struct pl_transport *t = &c->priv->raw;
    t->vt = &pl_transport_raw;
    t->conn = c;
    t->fd = fd;
    t->flags = 0;
    return t;
}

static int raw_on_connected(struct pl_transport *t)
{
    pl_conn_transport_ready(t->conn);
    return 0;
}

static void raw_read(struct pl_transport *t, struct pl_buf *in, size_t max, struct pl_io_result *r)
{
    ssize_t n = pl_buf_read_fd(in, t->fd, max);
    if (n > 0)
        r->bytes = (size_t)n;
    else if (n == 0)
        r->eof = true;
    else if (errno != EAGAIN && errno != EWOULDBLOCK)
        r->err = errno;
}

static void raw_write(struct pl_transport *t, struct pl_buf *out, struct pl_io_result *r)
{
    struct iovec iov[64];
    struct msghdr mh = {.msg_iov = iov};
    mh.msg_iovlen = pl_buf_peek_iov(out, iov, 64);
    if (mh.msg_iovlen == 0)
        return;
    /* one segment goes through send(): no msghdr and iovec to copy in (see pl_buf_read_fd) */
    ssize_t n;
    do
        n = mh.msg_iovlen == 1
                ? send(t->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
                : sendmsg(t->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        pl_buf_drain(out, (size_t)n);
        r->bytes = (size_t)n;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        r->err = errno;
    }
}

static void raw_shutdown_write(struct pl_transport *t)
{
    shutdown(t->fd, SHUT_WR);
}

static void raw_destroy(struct pl_transport *t)
{
    (void)t;
}

const struct pl_transport_vtable pl_transport_raw = {
    .name = "envoy.transport_sockets.raw_buffer",
    .config = NULL,
    .create = raw_create,
    .on_connected = raw_on_connected,
    .read = raw_read,
    .write = raw_write,
    .shutdown_write = raw_shutdown_write,
    .destroy = raw_destroy,
};

/* ---- lifetime ---- */

static void orphan_unlink(struct pl_conn *c)
{
    struct pl_conn_private *p = c->priv;
    if (!p->orphan)
        return;
    if (p->prev_orphan)
        p->prev_orphan->priv->next_orphan = p->next_orphan;
    else
        orphans = p->next_orphan;
    if (p->next_orphan)
        p->next_orphan->priv->prev_orphan = p->prev_orphan;
    p->orphan = false;
}

/* Stops everything, closes the socket; the memory goes when no callback is on the stack. */
static void teardown(struct pl_conn *c)
{
    struct pl_conn_private *p = c->priv;
    if (c->state == PL_CONN_CLOSED)
        return;
    c->state = PL_CONN_CLOSED;
    ev_io_stop(c->loop, &p->io);
    ev_timer_stop(c->loop, &p->phase_timer);
    ev_timer_stop(c->loop, &p->idle_timer);
    if (c->transport) {
        c->transport->vt->destroy(c->transport);
        c->transport = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    orphan_unlink(c);
    pl_buf_free(&c->in);
    pl_buf_free(&c->out);
}

static void enter(struct pl_conn *c)
{
    c->priv->depth++;
}

/* Leaves a callback scope; frees c if it closed and nothing of it is on the stack. */
static void leave(struct pl_conn *c)
{
    if (--c->priv->depth == 0 && c->state == PL_CONN_CLOSED) {
        live--;
        free((struct conn_block *)c);
    }
}

/* Closes c because of ev and tells the owner (unless the owner already gave it up). */
static void fail(struct pl_conn *c, enum pl_conn_event ev, int err)
{
    if (c->state == PL_CONN_CLOSED)
        return;
    bool tell = !c->priv->orphan;
    if (err && !c->err_text[0])
        snprintf(c->err_text, sizeof(c->err_text), "%s", strerror(err));
    teardown(c);
    if (tell && c->cb->on_event)
        c->cb->on_event(c, ev, c->arg);
}

static struct pl_conn *conn_new(struct ev_loop *loop, int fd, const struct pl_conn_opts *o)
{
    static const struct pl_conn_callbacks none = {0};
    struct conn_block *b = pl_calloc(1, sizeof(*b));
    struct pl_conn *c = &b->c;
    c->priv = &b->p;
    c->loop = loop;
    c->fd = fd;
    c->cb = o->cb ? o->cb : &none;
    c->arg = o->arg;
    c->buffer_limit = o->buffer_limit ? o->buffer_limit : PL_CONN_DEFAULT_BUFFER_LIMIT;
    pl_buf_init(&c->in);
    pl_buf_init(&c->out);
    ev_io_init(&b->p.io, io_cb, fd, 0);
    b->p.io.data = c;
    live++;
    return c;
}

/* ---- readiness ---- */

static bool reading_wanted(const struct pl_conn *c)
{
    if (c->read_eof || c->priv->in_full)
        return false;
    if (c->state == PL_CONN_HANDSHAKE || c->state == PL_CONN_CLOSING)
        return true; /* handshakes must progress; a closing connection drains and discards */
    return c->state == PL_CONN_OPEN && c->read_disable == 0;
}

static bool writing_wanted(const struct pl_conn *c)
{
    if (c->state == PL_CONN_CONNECTING)
        return true;
    /* a fed write event comes before the loop polls: no need to ask for writability */
    if (c->state == PL_CONN_HANDSHAKE || c->priv->write_fed)
        return false;
    return c->out.len > 0 || (c->write_end && !c->write_shut);
}

static void update_io(struct pl_conn *c)
{
    struct pl_conn_private *p = c->priv;
    if (c->state == PL_CONN_CLOSED)
        return;
    int ev = 0;
    unsigned tf = c->transport ? c->transport->flags : 0;
    if (c->state == PL_CONN_CONNECTING) {
        ev = EV_WRITE;
    } else {
        if (reading_wanted(c) || (tf & PL_TRANSPORT_WRITE_NEEDS_READABLE))
            ev |= EV_READ;
        if (writing_wanted(c) || (tf & PL_TRANSPORT_READ_NEEDS_WRITABLE))
            ev |= EV_WRITE;
    }
    if (ev == p->events)
        return;
    int pending = ev_clear_pending(c->loop, &p->io); /* stopping would drop fed events */
    ev_io_stop(c->loop, &p->io);
    ev_io_set(&p->io, c->fd, ev);
    if (ev)
        ev_io_start(c->loop, &p->io);
    if (pending)
        ev_feed_event(c->loop, &p->io, pending);
    p->events = ev;
}

static void activity(struct pl_conn *c)
{
    if (c->priv->idle_timeout > 0)
        c->priv->last_activity = ev_now(c->loop);
}

/* Finishes a flush-close once everything was written: shut down, then linger for the FIN. */
static void closing_progress(struct pl_conn *c)
{
    if (c->out.len > 0 || c->state != PL_CONN_CLOSING)
        return;
    if (!c->write_shut && c->transport) {
        c->transport->vt->shutdown_write(c->transport);
        c->write_shut = true;
    }
    if (c->read_eof) {
        teardown(c);
        return;
    }
    if (!ev_is_active(&c->priv->phase_timer)) {
        ev_timer_set(&c->priv->phase_timer, LINGER_S, 0);
        ev_timer_start(c->loop, &c->priv->phase_timer);
    }
}

/* Writes what the transport takes. Returns an errno value on a broken connection, else 0. */
static int do_write(struct pl_conn *c)
{
    struct pl_transport *t = c->transport;
    int rounds = 0;
    do {
        struct pl_io_result r = {0};
        t->vt->write(t, &c->out, &r);
        if (r.err)
            return r.err;
        if (r.bytes == 0)
            break;
        c->bytes_written += r.bytes;
        if (c->priv->has_tx)
            pl_counter_add(c->priv->tx, r.bytes);
        activity(c);
    } while (c->out.len > 0 && ++rounds < WRITE_ROUNDS);
    if (c->out.len == 0 && c->write_end && !c->write_shut && c->state == PL_CONN_OPEN) {
        t->vt->shutdown_write(t);
        c->write_shut = true;
    }
    return 0;
}

/* Calls on_low_watermark if the output buffer drained enough. */
static void check_low(struct pl_conn *c)
{
    if (c->above_high && c->out.len <= c->buffer_limit / 2 && c->state == PL_CONN_OPEN) {
        c->above_high = false;
        if (c->cb->on_low_watermark)
            c->cb->on_low_watermark(c, c->arg);
    }
}

static void do_read(struct pl_conn *c)
{
    size_t max = c->in.len < c->buffer_limit ? c->buffer_limit - c->in.len : 0;
    if (max == 0) {
        c->priv->in_full = true;
        return;
    }
    struct pl_io_result r = {0};
    c->transport->vt->read(c->transport, &c->in, max, &r);
    if (r.bytes) {
        c->bytes_read += r.bytes;
        if (c->priv->has_rx)
            pl_counter_add(c->priv->rx, r.bytes);
        activity(c);
    }
    if (r.err) {
        fail(c, PL_CONN_EV_CLOSED, r.err);
        return;
    }
    if (r.eof)
        c->read_eof = true;
    if (c->state == PL_CONN_CLOSING) { /* lingering: discard */
        pl_buf_drain(&c->in, c->in.len);
        closing_progress(c);
        return;
    }
    bool again = c->priv->redeliver && c->in.len > 0;
    c->priv->redeliver = false;
    if ((r.bytes || r.eof || again) && c->state == PL_CONN_OPEN && c->cb->on_data)
        c->cb->on_data(c, &c->in, r.eof, c->arg);
    if (c->state != PL_CONN_CLOSED && c->in.len >= c->buffer_limit)
        c->priv->in_full = true;
}

static void connect_done(struct pl_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (c->priv->pending_err)
        err = c->priv->pending_err;
    else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    if (err) {
        fail(c, PL_CONN_EV_CONNECT_FAILED, err);
        return;
    }
    c->state = PL_CONN_HANDSHAKE;
    int rc = c->transport->vt->on_connected(c->transport);
    if (rc)
        fail(c, PL_CONN_EV_CONNECT_FAILED, rc);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct pl_conn *c = w->data;
    struct pl_conn_private *p = c->priv;
    enter(c);
    p->write_fed = false;
    if (c->state == PL_CONN_CONNECTING) {
        connect_done(c);
        goto out;
    }
    if (p->ready_report) {
        p->ready_report = false;
        if (c->cb->on_event && !p->orphan)
            c->cb->on_event(c, PL_CONN_EV_CONNECTED, c->arg);
        if (c->state == PL_CONN_CLOSED)
            goto out;
    }
    if (p->pending_err) {
        fail(c, PL_CONN_EV_CLOSED, p->pending_err);
        goto out;
    }
    unsigned tf = c->transport->flags;
    if ((revents & EV_WRITE) || ((revents & EV_READ) && (tf & PL_TRANSPORT_WRITE_NEEDS_READABLE))) {
        if (c->out.len > 0 || c->state == PL_CONN_HANDSHAKE || writing_wanted(c) ||
            (tf & PL_TRANSPORT_WRITE_NEEDS_READABLE)) {
            int err = do_write(c);
            if (err) {
                fail(c, PL_CONN_EV_CLOSED, err);
                goto out;
            }
            check_low(c);
            if (c->state == PL_CONN_CLOSED)
                goto out;
            closing_progress(c);
            if (c->state == PL_CONN_CLOSED)
                goto out;
        }
    }
    bool rd = (revents & EV_READ) && reading_wanted(c);
    bool rd2 = (revents & EV_WRITE) && (tf & PL_TRANSPORT_READ_NEEDS_WRITABLE);
    if (rd || rd2)
        do_read(c);
    if (c->state == PL_CONN_OPEN && c->read_eof && c->write_shut && c->out.len == 0) {
        fail(c, PL_CONN_EV_CLOSED, 0); /* both directions finished */
        goto out;
    }
out:
    update_io(c);
    leave(c);
}

/* phase_timer: the linger of a flush-close ran out, or the connect timeout did. */
static void phase_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_conn *c = t->data;
    enter(c);
    if (c->state == PL_CONN_CLOSING) {
        teardown(c);
    } else {
        snprintf(c->err_text, sizeof(c->err_text), "connect timeout");
        fail(c, PL_CONN_EV_CONNECT_TIMEOUT, 0);
    }
    leave(c);
}

static void idle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct pl_conn *c = t->data;
    struct pl_conn_private *p = c->priv;
    double left = p->last_activity + p->idle_timeout - ev_now(loop);
    if (left > 0.001) {
        t->repeat = left;
        ev_timer_again(loop, t);
        return;
    }
    t->repeat = p->idle_timeout;
    ev_timer_again(loop, t);
    p->last_activity = ev_now(loop);
    enter(c);
    if (c->cb->on_event && !p->orphan)
        c->cb->on_event(c, PL_CONN_EV_IDLE_TIMEOUT, c->arg);
    update_io(c);
    leave(c);
}

/* ---- public ---- */

static int setup(struct pl_conn *c, const struct pl_conn_opts *o, bool server)
{
    struct pl_conn_private *p = c->priv;
    const struct pl_transport_vtable *tvt = o->transport ? o->transport : &pl_transport_raw;
    c->server = server;
    ev_timer_init(&p->phase_timer, phase_cb, 0, 0);
    p->phase_timer.data = c;
    ev_init(&p->idle_timer, idle_cb);
    p->idle_timer.data = c;
    c->transport = tvt->create(o->transport_cfg, c, c->fd, server);
    return c->transport ? 0 : -1;
}

struct pl_conn *pl_conn_accept(struct ev_loop *loop, int fd, const struct pl_conn_opts *o)
{
    struct pl_conn *c = conn_new(loop, fd, o);
    c->state = PL_CONN_HANDSHAKE;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    enter(c);
    c->priv->in_setup = true;
    if (setup(c, o, true) < 0) {
        teardown(c);
        leave(c);
        return NULL;
    }
    int rc = c->transport->vt->on_connected(c->transport);
    c->priv->in_setup = false;
    if (rc) {
        teardown(c);
        leave(c);
        return NULL;
    }
    update_io(c);
    c->priv->depth--; /* c is returned: no free here */
    return c;
}

int pl_conn_connect(struct ev_loop *loop, const struct sockaddr *addr, socklen_t addrlen,
                    double timeout_s, const struct pl_conn_opts *o, struct pl_conn **out,
                    struct pl_err *err)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pl_err_add(err, NULL, 0, 0, NULL, "socket: %s", strerror(errno));
        return PL_EIO;
    }
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    struct pl_conn *c = conn_new(loop, fd, o);
    c->state = PL_CONN_CONNECTING;
    if (setup(c, o, false) < 0) {
        teardown(c);
        live--;
        free((struct conn_block *)c);
        pl_err_add(err, NULL, 0, 0, NULL, "cannot create the transport socket");
        return PL_EIO;
    }
    int rc;
    do
        rc = connect(fd, addr, addrlen);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno != EINPROGRESS) {
        /* refused at once (loopback): reported from the loop like any other outcome */
        c->priv->pending_err = errno;
        ev_feed_event(loop, &c->priv->io, EV_WRITE);
        *out = c;
        return 0;
    }
    if (timeout_s > 0) {
        ev_timer_set(&c->priv->phase_timer, timeout_s, 0);
        ev_timer_start(loop, &c->priv->phase_timer);
    }
    update_io(c);
    *out = c;
    return 0;
}

void pl_conn_transport_ready(struct pl_conn *c)
{
    if (c->state != PL_CONN_HANDSHAKE)
        return;
    c->state = PL_CONN_OPEN;
    ev_timer_stop(c->loop, &c->priv->phase_timer); /* the connect timeout */
    if (c->priv->in_setup || c->priv->depth == 0) {
        c->priv->ready_report = true;
        ev_feed_event(c->loop, &c->priv->io, EV_WRITE);
    } else if (c->cb->on_event && !c->priv->orphan) {
        c->cb->on_event(c, PL_CONN_EV_CONNECTED, c->arg);
    }
    if (c->state != PL_CONN_CLOSED)
        update_io(c);
}

void pl_conn_transport_readable(struct pl_conn *c)
{
    if (c->state != PL_CONN_CLOSED)
        ev_feed_event(c->loop, &c->priv->io, EV_READ);
}

void pl_conn_transport_update(struct pl_conn *c)
{
    update_io(c);
}

static void queued(struct pl_conn *c, bool end_stream)
{
    if (end_stream)
        c->write_end = true;
    enter(c);
    if (c->state == PL_CONN_OPEN && !c->priv->write_fed) {
        /* Written from io_cb, which libev runs as soon as the callback that queued this returns
         * (fed events run in the same pass, before the loop polls): everything that callback
         * queues (an HTTP/1.1 response's head and body, say) leaves in one write, and no poll
         * round trip is added. */
        c->priv->write_fed = true;
        ev_feed_event(c->loop, &c->priv->io, EV_WRITE);
    }
    bool same_interest = c->state == PL_CONN_OPEN; /* the fed event writes; reading unchanged */
    if (c->out.len > c->buffer_limit && !c->above_high && c->state != PL_CONN_CLOSED) {
        c->above_high = true;
        same_interest = false;
        if (c->cb->on_high_watermark)
            c->cb->on_high_watermark(c, c->arg);
    }
    if (!same_interest)
        update_io(c);
    leave(c);
}

void pl_conn_write_copy(struct pl_conn *c, const void *data, size_t len, bool end_stream)
{
    if (c->state == PL_CONN_CLOSED || c->write_end)
        return;
    pl_buf_append(&c->out, data, len);
    queued(c, end_stream);
}

void pl_conn_write(struct pl_conn *c, struct pl_buf *src, size_t len, bool end_stream)
{
    if (c->state == PL_CONN_CLOSED || c->write_end) {
        pl_buf_drain(src, len);
        return;
    }
    pl_buf_move(&c->out, src, len);
    queued(c, end_stream);
}

void pl_conn_read_disable(struct pl_conn *c, bool disable)
{
    if (disable) {
        c->read_disable++;
    } else if (c->read_disable > 0 && --c->read_disable == 0 && c->state == PL_CONN_OPEN) {
        /* bytes may wait in in: give the owner another look from the loop */
        c->priv->in_full = false;
        c->priv->redeliver = c->in.len > 0;
        if (c->in.len > 0 || !c->read_eof)
            ev_feed_event(c->loop, &c->priv->io, EV_READ);
    }
    update_io(c);
}

bool pl_conn_read_disabled(const struct pl_conn *c)
{
    return c->read_disable > 0;
}

void pl_conn_read_resume(struct pl_conn *c)
{
    if (c->priv->in_full && c->in.len < c->buffer_limit) {
        c->priv->in_full = false;
        c->priv->redeliver = c->in.len > 0;
        update_io(c);
    }
}

void pl_conn_close(struct pl_conn *c, enum pl_conn_close_type how)
{
    struct pl_conn_private *p = c->priv;
    if (c->state == PL_CONN_CLOSED)
        return;
    enter(c);
    if (how == PL_CONN_CLOSE_FLUSH && c->state != PL_CONN_CONNECTING && !p->pending_err &&
        (c->state == PL_CONN_OPEN || c->state == PL_CONN_CLOSING)) {
        c->state = PL_CONN_CLOSING;
        c->priv->in_full = false;
        pl_buf_drain(&c->in, c->in.len);
        ev_timer_stop(c->loop, &p->idle_timer);
        if (!p->orphan) { /* nobody owns it now: stop_all can still reap it */
            p->orphan = true;
            p->prev_orphan = NULL;
            p->next_orphan = orphans;
            if (orphans)
                orphans->priv->prev_orphan = c;
            orphans = c;
        }
        closing_progress(c);
        update_io(c);
    } else {
        teardown(c);
    }
    leave(c);
}

void pl_conn_set_idle_timeout(struct pl_conn *c, double seconds)
{
    struct pl_conn_private *p = c->priv;
    p->idle_timeout = seconds;
    ev_timer_stop(c->loop, &p->idle_timer);
    if (seconds > 0 && c->state != PL_CONN_CLOSED) {
        p->last_activity = ev_now(c->loop);
        p->idle_timer.repeat = seconds;
        ev_timer_again(c->loop, &p->idle_timer);
    }
}

void pl_conn_count_bytes(struct pl_conn *c, const struct pl_counter *rx,
                         const struct pl_counter *tx)
{
    c->priv->has_rx = rx != NULL;
    c->priv->has_tx = tx != NULL;
    if (rx)
        c->priv->rx = *rx;
    if (tx)
        c->priv->tx = *tx;
}

size_t pl_conn_live(void)
{
    return live;
}

void pl_conn_reap_orphans(void)
{
    while (orphans) {
        struct pl_conn *c = orphans;
        enter(c);
        teardown(c); /* unlinks it */
        leave(c);
    }
}
