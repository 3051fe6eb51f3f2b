/* Connections: socket readiness -> transport -> buffers -> owner callbacks (see conn.h). */
#include "net/conn.h"

#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <liburing.h>
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
    /* on the thread's batch queues (QW: output leaves when it is flushed; QR: read then) */
    bool queued[2];
    struct pl_conn *qnext[2];
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

enum { QW, QR }; /* a batch's queues: connections with output to send; readable ones */

static void batch_unlink(struct pl_conn *c);
static bool batch_add(struct pl_conn *c);
static bool rbatch_add(struct pl_conn *c);

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
    batch_unlink(c);
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
    if (c->state == PL_CONN_HANDSHAKE || c->priv->write_fed || c->priv->queued[QW])
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

/* Counts n bytes the transport took. */
static void wrote(struct pl_conn *c, size_t n)
{
    c->bytes_written += n;
    if (c->priv->has_tx)
        pl_counter_add(c->priv->tx, n);
    activity(c);
}

/* Shuts our side down once the output asked for before end_stream is all out. */
static void shut_if_flushed(struct pl_conn *c)
{
    if (c->out.len == 0 && c->write_end && !c->write_shut && c->state == PL_CONN_OPEN) {
        c->transport->vt->shutdown_write(c->transport);
        c->write_shut = true;
    }
}

/* Closes c once both directions finished; returns true if it did. */
static bool finished_both(struct pl_conn *c)
{
    if (c->state == PL_CONN_OPEN && c->read_eof && c->write_shut && c->out.len == 0) {
        fail(c, PL_CONN_EV_CLOSED, 0);
        return true;
    }
    return false;
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
        wrote(c, r.bytes);
    } while (c->out.len > 0 && ++rounds < WRITE_ROUNDS);
    shut_if_flushed(c);
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

static void read_result(struct pl_conn *c, struct pl_io_result r);

static void do_read(struct pl_conn *c)
{
    size_t max = c->in.len < c->buffer_limit ? c->buffer_limit - c->in.len : 0;
    if (max == 0) {
        c->priv->in_full = true;
        return;
    }
    struct pl_io_result r = {0};
    c->transport->vt->read(c->transport, &c->in, max, &r);
    read_result(c, r);
}

/* What follows a transport read that appended r.bytes to c->in. */
static void read_result(struct pl_conn *c, struct pl_io_result r)
{
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
    if (c->read_disable > 0) {
        /* a batched read done before an earlier callback of the batch disabled reading: the
         * bytes wait in c->in until reading is enabled again */
        c->priv->redeliver = c->in.len > 0;
    } else if ((r.bytes || r.eof || again) && c->state == PL_CONN_OPEN && c->cb->on_data)
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
    if (rd && !rd2 && rbatch_add(c)) {
        /* read with the other ready connections in one io_uring submission (flush_cb) */
    } else if (rd || rd2) {
        do_read(c);
    }
    finished_both(c);
out:
    update_io(c);
    leave(c);
}

/* ---- batched reads and writes (io_uring) ----
 *
 * On a loopback or same-host hop a recv() or send() costs about as much in entering and leaving
 * the kernel as in moving the bytes. So raw (plaintext) connections do not read from their own
 * readiness callback nor write from their own fed event: a connection the poll found readable,
 * or one that queued output, goes on the thread's batch, and a watcher at the lowest priority
 * (fed when the batch fills, so libev runs it after every other pending callback of the pass,
 * and again whenever a callback adds to an emptied batch) hands all their recvs, then all their
 * sends, to the kernel in one io_uring_enter each. Every operation carries MSG_DONTWAIT, so the
 * kernel completes it inside that call as a non-blocking recv() or send() would (nothing ready,
 * or a full socket, gives -EAGAIN; then readiness is awaited as before): owners see the same
 * callbacks in the same order. A batch of one does the plain syscall (nothing to share). TLS
 * connections, bulk transfers (a read that filled all it was offered: readv's bigger reads suit
 * them), a socket awaiting writability, and threads where io_uring is refused (an old kernel, a
 * seccomp profile) or turned off (pl_conn_set_io_uring) use the plain syscalls. */

#define BATCH_MAX 64 /* connections per submission */
#define BATCH_IOV 16 /* segments per connection and submission */
#define NO_RESULT INT_MIN

struct queue {
    struct pl_conn *head, **tail;
};

struct batch {
    struct io_uring ring;
    struct ev_loop *loop; /* the loop flush is fed to */
    ev_check flush;       /* never started: fed, at EV_MINPRI */
    struct queue q[2];    /* QW, QR */
    /* one submission's connections (each entered), results and buffers, by index */
    struct pl_conn *ents[BATCH_MAX];
    int res[BATCH_MAX];
    struct pl_buf_slice *fresh[BATCH_MAX];
    struct msghdr mh[BATCH_MAX];
    struct iovec iov[BATCH_MAX][BATCH_IOV];
};

static bool uring_on = true;
static __thread struct batch *tl_batch;
static __thread int tl_batch_state; /* 0: not tried on this thread, 1: ready, -1: unavailable */

void pl_conn_set_io_uring(bool on)
{
    uring_on = on;
}

bool pl_conn_io_uring_active(void)
{
    return tl_batch_state == 1;
}

static bool batch_empty(const struct batch *b)
{
    return !b->q[QW].head && !b->q[QR].head;
}

/* Appends c to queue k; the flush is fed when the batch was empty. */
static void q_push(struct batch *b, int k, struct pl_conn *c)
{
    if (batch_empty(b))
        ev_feed_event(b->loop, &b->flush, EV_CHECK);
    c->priv->queued[k] = true;
    c->priv->qnext[k] = NULL;
    *b->q[k].tail = c;
    b->q[k].tail = &c->priv->qnext[k];
}

static void q_unlink(struct batch *b, int k, struct pl_conn *c)
{
    struct pl_conn_private *p = c->priv;
    if (!p->queued[k])
        return;
    struct pl_conn **pp = &b->q[k].head;
    while (*pp != c)
        pp = &(*pp)->priv->qnext[k];
    *pp = p->qnext[k];
    if (b->q[k].tail == &p->qnext[k])
        b->q[k].tail = pp;
    p->queued[k] = false;
    p->qnext[k] = NULL;
}

static void batch_unlink(struct pl_conn *c)
{
    if (tl_batch) {
        q_unlink(tl_batch, QW, c);
        q_unlink(tl_batch, QR, c);
    }
}

/* Takes up to BATCH_MAX connections off queue k into b->ents (each entered); returns how many. */
static unsigned batch_take(struct batch *b, int k)
{
    unsigned n = 0;
    while (b->q[k].head && n < BATCH_MAX) {
        struct pl_conn *c = b->q[k].head;
        q_unlink(b, k, c);
        enter(c);
        b->ents[n++] = c;
    }
    return n;
}

/* Submits the nsqe prepared operations (user data: their index in b->ents) and waits for them,
 * each result into b->res[index]; one whose completion could not be had keeps what it held.
 * Returns 0, or the negative errno of a submission that failed (nothing was submitted). */
static int ring_run(struct batch *b, unsigned nsqe)
{
    if (nsqe == 0)
        return 0;
    int rc;
    do
        rc = io_uring_submit_and_wait(&b->ring, nsqe);
    while (rc == -EINTR);
    if (rc < 0)
        return rc;
    for (unsigned got = 0; got < nsqe; got++) {
        struct io_uring_cqe *cqe;
        int wr;
        do
            wr = io_uring_wait_cqe(&b->ring, &cqe);
        while (wr == -EINTR);
        if (wr < 0)
            break;
        b->res[io_uring_cqe_get_data64(cqe)] = cqe->res;
        io_uring_cqe_seen(&b->ring, cqe);
    }
    return 0;
}

/* What io_cb does after a write, for a connection whose batched send completed with res. */
static void batch_done(struct pl_conn *c, int res)
{
    if (c->state == PL_CONN_CLOSED)
        return;
    if (res > 0) {
        pl_buf_drain(&c->out, (size_t)res);
        wrote(c, (size_t)res);
    } else if (res < 0 && res != -EAGAIN) {
        fail(c, PL_CONN_EV_CLOSED, -res);
        return;
    }
    shut_if_flushed(c);
    check_low(c);
    if (c->state == PL_CONN_CLOSED)
        return;
    closing_progress(c);
    if (c->state == PL_CONN_CLOSED || finished_both(c))
        return;
    update_io(c); /* output left over (a full socket): wait for writability */
}

/* Submits the reads of up to BATCH_MAX readable connections at once, then hands each its
 * bytes (or its EOF or error) as do_read would have. */
static void batch_read(struct batch *b)
{
    /* a lone connection gains nothing from the ring: it reads directly */
    bool lone = !b->q[QR].head->priv->qnext[QR];
    unsigned n = batch_take(b, QR), nsqe = 0;
    size_t offered[BATCH_MAX];
    for (unsigned i = 0; i < n; i++) {
        struct pl_conn *c = b->ents[i];
        b->fresh[i] = NULL;
        offered[i] = 0;
        b->res[i] = NO_RESULT;
        if (!reading_wanted(c) || c->state != PL_CONN_OPEN)
            continue;
        size_t max = c->in.len < c->buffer_limit ? c->buffer_limit - c->in.len : 0;
        if (max == 0) {
            c->priv->in_full = true;
        } else if (tl_batch_state > 0 && !lone) {
            struct iovec seg;
            offered[i] = pl_buf_read_prepare(max, &seg, &b->fresh[i]);
            struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
            io_uring_prep_recv(sqe, c->fd, seg.iov_base, seg.iov_len, MSG_DONTWAIT);
            io_uring_sqe_set_data64(sqe, i);
            nsqe++;
        } else {
            offered[i] = SIZE_MAX; /* read directly below */
        }
    }
    int rc = ring_run(b, nsqe);
    if (rc < 0) {
        pl_log_warn("net", "io_uring submit failed (%s): reading directly", strerror(-rc));
        tl_batch_state = -1;
    }
    for (unsigned i = 0; i < n; i++) {
        struct pl_conn *c = b->ents[i];
        int res = b->res[i];
        if (offered[i] == 0) {
            /* nothing asked: closed or paused meanwhile */
        } else if (c->state == PL_CONN_CLOSED) {
            /* closed by an earlier connection's callback: what was read goes */
            pl_buf_read_commit(&c->in, b->fresh[i], offered[i], 0);
        } else if (offered[i] == SIZE_MAX || rc < 0) {
            pl_buf_read_commit(&c->in, b->fresh[i], offered[i], 0); /* (no slice: nothing) */
            if (c->state == PL_CONN_OPEN)
                do_read(c);
        } else if (res == NO_RESULT) { /* what was read is unknown: it cannot go on */
            pl_buf_read_commit(&c->in, b->fresh[i], offered[i], 0);
            fail(c, PL_CONN_EV_CLOSED, EIO);
        } else {
            struct pl_io_result r = {0};
            r.bytes = res > 0 ? (size_t)res : 0;
            pl_buf_read_commit(&c->in, b->fresh[i], offered[i], r.bytes);
            if (res == 0 && c->read_disable == 0) /* disabled: the next read sees it again */
                r.eof = true;
            else if (res < 0 && res != -EAGAIN)
                r.err = -res;
            read_result(c, r);
        }
        finished_both(c);
        update_io(c);
        leave(c);
    }
}

/* Writes the taken connections b->ents[0..n) directly (no ring, or not any more). */
static void batch_write_direct(struct batch *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct pl_conn *c = b->ents[i];
        int err = c->state == PL_CONN_CLOSED ? 0 : do_write(c);
        batch_done(c, err ? -err : 0);
        leave(c);
    }
}

/* Submits the sends of up to BATCH_MAX connections with output at once, then finishes each as
 * io_cb does after a write. */
static void batch_write(struct batch *b)
{
    unsigned n = batch_take(b, QW), nsqe = 0;
    if (tl_batch_state < 0 || n == 1) { /* the ring failed, or one write: no gain */
        batch_write_direct(b, n);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        struct pl_conn *c = b->ents[i];
        b->res[i] = 0;
        size_t niov =
            c->state == PL_CONN_CLOSED ? 0 : pl_buf_peek_iov(&c->out, b->iov[i], BATCH_IOV);
        if (niov == 0)
            continue;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
        if (niov == 1) {
            io_uring_prep_send(sqe, c->fd, b->iov[i][0].iov_base, b->iov[i][0].iov_len,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            b->mh[i] = (struct msghdr){.msg_iov = b->iov[i], .msg_iovlen = niov};
            io_uring_prep_sendmsg(sqe, c->fd, &b->mh[i], MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        io_uring_sqe_set_data64(sqe, i);
        b->res[i] = NO_RESULT;
        nsqe++;
    }
    int rc = ring_run(b, nsqe);
    if (rc < 0) {
        /* nothing was submitted (not expected of a working ring): from now on this thread
         * writes directly; these connections too */
        pl_log_warn("net", "io_uring submit failed (%s): writing directly", strerror(-rc));
        tl_batch_state = -1;
        batch_write_direct(b, n);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        /* no completion: what was sent is unknown, the connection cannot go on */
        batch_done(b->ents[i], b->res[i] == NO_RESULT ? -EIO : b->res[i]);
        leave(b->ents[i]);
    }
}

static void flush_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)revents;
    struct batch *b = w->data;
    while (!batch_empty(b)) {
        if (b->q[QR].head)
            batch_read(b);
        else
            batch_write(b);
    }
}

/* True if the ring completes a MSG_DONTWAIT recv on an empty socket inside the submitting call
 * with -EAGAIN, as everything here relies on (a kernel that parks it until data comes instead
 * would stall the worker in io_uring_enter). */
static bool ring_completes_inline(struct io_uring *ring)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return false;
    char byte;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv(sqe, sv[0], &byte, 1, MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, 1);
    bool ok = false;
    struct io_uring_cqe *cqe;
    if (io_uring_submit(ring) == 1 && io_uring_peek_cqe(ring, &cqe) == 0) {
        ok = cqe->res == -EAGAIN;
        io_uring_cqe_seen(ring, cqe);
    } else { /* parked: take it back before the ring is dropped */
        sqe = io_uring_get_sqe(ring);
        io_uring_prep_cancel64(sqe, 1, 0);
        io_uring_submit(ring);
        close(sv[1]); /* completes a recv the cancel missed */
        for (int i = 0; i < 2 && io_uring_wait_cqe(ring, &cqe) == 0; i++)
            io_uring_cqe_seen(ring, cqe);
    }
    close(sv[0]);
    if (ok)
        close(sv[1]);
    return ok;
}

static struct batch *batch_get(struct ev_loop *loop)
{
    if (tl_batch_state == 0) {
        tl_batch_state = -1;
        if (!uring_on)
            return NULL;
        struct batch *b = pl_calloc(1, sizeof(*b));
        struct io_uring_params prm = {.flags = IORING_SETUP_SINGLE_ISSUER};
        int rc = io_uring_queue_init_params(2 * BATCH_MAX, &b->ring, &prm);
        if (rc < 0) {
            prm.flags = 0; /* before 6.0 */
            rc = io_uring_queue_init_params(2 * BATCH_MAX, &b->ring, &prm);
        }
        if (rc < 0) {
            pl_log_info("net", "io_uring unavailable (%s): socket reads and writes are direct",
                        strerror(-rc));
            free(b);
            return NULL;
        }
        if (!ring_completes_inline(&b->ring)) {
            pl_log_info("net", "this kernel's io_uring does not complete non-blocking socket "
                               "operations inline: socket reads and writes are direct");
            io_uring_queue_exit(&b->ring);
            free(b);
            return NULL;
        }
        for (int k = 0; k < 2; k++)
            b->q[k].tail = &b->q[k].head;
        tl_batch = b;
        tl_batch_state = 1;
    }
    struct batch *b = tl_batch;
    if (!b)
        return NULL;
    if (b->loop != loop) {
        if (!batch_empty(b))
            return NULL; /* another loop's batch is waiting: this one does its I/O directly */
        b->loop = loop;
        ev_check_init(&b->flush, flush_cb);
        ev_set_priority(&b->flush, EV_MINPRI);
        b->flush.data = b;
    }
    return b;
}

/* Puts c on the thread's batch; false if writes are direct (no io_uring, not a raw transport,
 * or the socket is full and writability is awaited). */
static bool batch_add(struct pl_conn *c)
{
    if (tl_batch_state < 0 || c->transport->vt != &pl_transport_raw || (c->priv->events & EV_WRITE))
        return false;
    struct batch *b = batch_get(c->loop);
    if (!b)
        return false;
    q_push(b, QW, c);
    return true;
}

/* Puts a readable c on the thread's read batch; false if it reads directly (no io_uring, not
 * a raw open connection, or a bulk transfer that bigger direct reads suit better). */
static bool rbatch_add(struct pl_conn *c)
{
    if (tl_batch_state < 0 || c->transport->vt != &pl_transport_raw || c->state != PL_CONN_OPEN ||
        pl_buf_read_wants_more(&c->in) || c->priv->redeliver)
        return false;
    struct batch *b = batch_get(c->loop);
    if (!b)
        return false;
    if (!c->priv->queued[QR])
        q_push(b, QR, c);
    return true;
}

void pl_conn_thread_exit(void)
{
    struct batch *b = tl_batch;
    if (b) {
        tl_batch_state = -1;
        while (b->q[QR].head) /* not polled any more: forget the readiness */
            q_unlink(b, QR, b->q[QR].head);
        while (b->q[QW].head) /* not flushed by a loop any more: written directly */
            batch_write_direct(b, batch_take(b, QW));
        io_uring_queue_exit(&b->ring);
        free(b);
    }
    tl_batch = NULL;
    tl_batch_state = 0;
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
    if (c->state == PL_CONN_OPEN && !c->priv->write_fed && (c->priv->queued[QW] || batch_add(c))) {
        /* on the thread's write batch: it leaves with the other connections' output in one
         * io_uring submission once the callbacks of this loop pass have run */
    } else if (c->state == PL_CONN_OPEN && !c->priv->write_fed) {
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
        /* what is left in in, or decrypted bytes a TLS transport holds, raise no poll event */
        if (c->state == PL_CONN_OPEN && (c->in.len > 0 || !c->read_eof))
            ev_feed_event(c->loop, &c->priv->io, EV_READ);
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
