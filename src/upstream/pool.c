/* HTTP connection pools: see pool.h. */
#include "upstream/pool.h"

#include <stdlib.h>
#include <string.h>

#include "config/address.h"
#include "core/log.h"
#include "core/slab.h"
#include "http/h1_codec.h"
#include "net/conn.h"
#include "upstream/pool_internal.h"

static void conn_maybe_free(struct pool_conn *pc);
static void pool_maybe_free(struct pl_pool *p);
static void process_pending(struct pl_pool *p);

/* ---- lists ---- */

static void pend_push(struct pl_pool *p, struct pl_pool_stream *s)
{
    s->prev = p->pend_tail;
    s->next = NULL;
    if (p->pend_tail)
        p->pend_tail->next = s;
    else
        p->pend_head = s;
    p->pend_tail = s;
    p->n_pending++;
    s->pending = true;
}

static void pend_remove(struct pl_pool *p, struct pl_pool_stream *s)
{
    if (!s->pending)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        p->pend_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        p->pend_tail = s->prev;
    s->prev = s->next = NULL;
    s->pending = false;
    p->n_pending--;
}

static void conn_link(struct pl_pool *p, struct pool_conn *pc)
{
    pc->next = p->conns;
    pc->prev = NULL;
    if (p->conns)
        p->conns->prev = pc;
    p->conns = pc;
    p->n_conns++;
}

static void conn_unlink(struct pl_pool *p, struct pool_conn *pc)
{
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        p->conns = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    pc->prev = pc->next = NULL;
    p->n_conns--;
}

static void stream_attach(struct pool_conn *pc, struct pl_pool_stream *s)
{
    s->pc = pc;
    s->cnext = pc->streams;
    s->cprev = NULL;
    if (pc->streams)
        pc->streams->cprev = s;
    pc->streams = s;
    pc->n_streams++;
}

/* Unbinds s from its connection (its codec stream ended or was reset). */
static void stream_detach(struct pl_pool_stream *s)
{
    struct pool_conn *pc = s->pc;
    if (!pc)
        return;
    if (s->cprev)
        s->cprev->cnext = s->cnext;
    else
        pc->streams = s->cnext;
    if (s->cnext)
        s->cnext->cprev = s->cprev;
    s->cprev = s->cnext = NULL;
    pc->n_streams--;
    if (s->read_disabled && pc->conn)
        pl_conn_read_disable(pc->conn, false);
    s->read_disabled = 0;
    if (s->cs && !pc->done && pc->codec && pl_codec_is_h1(pc->codec)) {
        pc->done = s;
        s->done_pc = pc;
        s->done_cs = s->cs;
    }
    s->pc = NULL;
    s->cs = NULL;
    if (pc->pool->has_stats)
        pl_gauge_add(PL_CLUSTER_GAUGE(&pc->pool->st, upstream_rq_active), -1);
    if (pc->pool->host)
        pl_upstream_host_rq_end(pc->pool->host);
}

/* Pool streams are per request: they come from a per-thread cache, not from malloc. */
static __thread struct pl_slab stream_cache = PL_SLAB_INIT(sizeof(struct pl_pool_stream), 1024);

static void stream_free(struct pl_pool_stream *s)
{
    pl_slab_free(&stream_cache, s);
}

/* ---- connection output and state ---- */

void pool_conn_flush_now(struct pool_conn *pc)
{
    if (!pc->conn || !pc->codec)
        return;
    struct pl_buf *o = pc->codec->vt->output(pc->codec);
    if (o->len)
        pl_conn_write(pc->conn, o, o->len, false);
}

static void conn_flush(struct pool_conn *pc)
{
    if (pc->conn && pc->codec && !pool_h2_flush_later(pc))
        pool_conn_flush_now(pc);
}

/* Closes the connection now; its streams are reset (codec destroy) and it is freed. */
void pool_conn_close(struct pool_conn *pc, bool flush)
{
    if (pc->closed)
        return;
    if (flush)
        pool_conn_flush_now(pc);
    pc->closed = true;
    struct pl_pool *p = pc->pool;
    ev_prepare_stop(p->loop, &pc->flush_w);
    if (pc->state == PC_CONNECTING && p->n_connecting)
        p->n_connecting--;
    pc->state = PC_CLOSED;
    if (pc->conn) {
        pl_conn_close(pc->conn, flush ? PL_CONN_CLOSE_FLUSH : PL_CONN_CLOSE_NOW);
        pc->conn = NULL;
    }
    pc->depth++;
    if (pc->codec) {
        struct pl_codec *codec = pc->codec;
        pc->codec = NULL;
        pc->reset_reason = pc->reset_reason ? pc->reset_reason : "connection termination";
        pc->dying_codec = codec;
        codec->vt->destroy(codec); /* resets open streams through the callbacks */
        pc->dying_codec = NULL;
    }
    pc->depth--;
    conn_maybe_free(pc);
}

static void conn_maybe_free(struct pool_conn *pc)
{
    if (pc->depth > 0 || !pc->closed || pc->freed)
        return;
    pc->freed = true;
    struct pl_pool *p = pc->pool;
    conn_unlink(p, pc);
    if (p->has_stats) {
        pl_gauge_add(PL_CLUSTER_GAUGE(&p->st, upstream_cx_active), -1);
        pl_counter_inc(PL_CLUSTER_COUNTER(&p->st, upstream_cx_destroy));
    }
    if (pc->host)
        pl_upstream_host_unref(pc->host);
    if (pc->done)
        pc->done->done_pc = NULL;
    free(pc);
    if (p->pend_head && !p->released)
        pool_schedule(p); /* waiting requests may need a new connection */
    pool_maybe_free(p);
}

/* After events on an HTTP/1 connection: reuse it, or close it. */
static void conn_settle(struct pool_conn *pc)
{
    if (pc->closed || pc->state != PC_READY || !pc->codec)
        return;
    if (pl_h1_codec_closing(pc->codec)) {
        if (pc->codec->vt->active_streams(pc->codec) == 0) {
            conn_flush(pc);
            pool_conn_close(pc, true);
        }
        return;
    }
    if (pl_h1_codec_idle(pc->codec) && pc->n_streams == 0) {
        process_pending(pc->pool);
        /* the host left its cluster: an idle connection would never be used again */
        if (pc->pool->released && !pc->closed && pc->n_streams == 0 && pc->codec &&
            pl_h1_codec_idle(pc->codec))
            pool_conn_close(pc, true);
    }
}

/* ---- codec callbacks (client side) ---- */

static int cb_head(void *ctx, struct pl_codec_stream *cs, void *user, struct pl_http_head *h,
                   bool end, bool info)
{
    (void)ctx, (void)cs;
    struct pl_pool_stream *s = user;
    if (!s)
        return 0;
    if (end) {
        s->rx_end = true;
        if (s->tx_end)
            stream_detach(s);
    }
    if (s->cb->on_head)
        s->cb->on_head(s->user, h, end, info);
    return 0;
}

static int cb_data(void *ctx, struct pl_codec_stream *cs, void *user, struct pl_buf *d, bool end)
{
    (void)ctx, (void)cs;
    struct pl_pool_stream *s = user;
    if (!s) {
        pl_buf_drain(d, d->len);
        return 0;
    }
    if (end) {
        s->rx_end = true;
        if (s->tx_end)
            stream_detach(s);
    }
    if (s->cb->on_data)
        s->cb->on_data(s->user, d, end);
    else
        pl_buf_drain(d, d->len);
    return 0;
}

static int cb_trailers(void *ctx, struct pl_codec_stream *cs, void *user, struct pl_headers *t)
{
    (void)ctx, (void)cs;
    struct pl_pool_stream *s = user;
    if (!s)
        return 0;
    s->rx_end = true;
    if (s->tx_end)
        stream_detach(s);
    if (s->cb->on_trailers)
        s->cb->on_trailers(s->user, t);
    return 0;
}

static void cb_reset(void *ctx, struct pl_codec_stream *cs, void *user, enum pl_reset_reason why)
{
    (void)cs;
    struct pool_conn *pc = ctx;
    struct pl_pool_stream *s = user;
    if (!s || s->reset)
        return;
    s->reset = true;
    stream_detach(s);
    const char *reason = pc->reset_reason                 ? pc->reset_reason
                         : why == PL_RESET_PROTOCOL_ERROR ? "protocol error"
                                                          : "remote reset";
    if (s->cb->on_reset)
        s->cb->on_reset(s->user, why, reason);
}

static void cb_goaway(void *ctx, uint32_t last)
{
    (void)last;
    struct pool_conn *pc = ctx;
    pc->goaway = true;
}

static const struct pl_codec_callbacks codec_cbs = {
    .on_new_stream = NULL,
    .on_head = cb_head,
    .on_data = cb_data,
    .on_trailers = cb_trailers,
    .on_reset = cb_reset,
    .on_goaway = cb_goaway,
};

/* ---- binding streams to connections ---- */

static bool conn_can_take(struct pool_conn *pc)
{
    if (pc->closed || pc->state != PC_READY || !pc->codec || pc->goaway)
        return false;
    if (!pl_codec_is_h1(pc->codec))
        return pool_h2_capacity(pc) > 0;
    return pl_h1_codec_idle(pc->codec) && pc->n_streams == 0;
}

/* Binds s to pc and tells its user (who may encode, release, or ask for more streams). */
static void bind_stream(struct pool_conn *pc, struct pl_pool_stream *s)
{
    struct pl_pool *p = pc->pool;
    pend_remove(p, s);
    struct pl_codec_stream *cs = pc->codec->vt->new_stream(pc->codec, s);
    if (!cs) { /* cannot happen after conn_can_take; treat as overflow */
        s->failed = true;
        if (s->cb->on_failure)
            s->cb->on_failure(s->user, PL_POOL_OVERFLOW, "overflow");
        return;
    }
    s->cs = cs;
    stream_attach(pc, s);
    if (p->has_stats) {
        pl_counter_inc(PL_CLUSTER_COUNTER(&p->st, upstream_rq_total));
        pl_gauge_add(PL_CLUSTER_GAUGE(&p->st, upstream_rq_active), 1);
    }
    if (p->host)
        pl_upstream_host_rq_begin(p->host);
    if (pc->above_high && s->cb->on_watermark)
        s->cb->on_watermark(s->user, true);
    s->cb->on_ready(s->user, s);
}

static struct pool_conn *find_ready(struct pl_pool *p)
{
    for (struct pool_conn *pc = p->conns; pc; pc = pc->next)
        if (conn_can_take(pc))
            return pc;
    return NULL;
}

static void conn_new(struct pl_pool *p);

/* Hands pending requests to connections that can take them; starts connections if needed. */
static void process_pending(struct pl_pool *p)
{
    if (p->in_process)
        return;
    p->in_process = true;
    p->depth++;
    while (p->pend_head) {
        struct pool_conn *pc = find_ready(p);
        if (!pc)
            break;
        pc->depth++;
        bind_stream(pc, p->pend_head);
        pc->depth--;
        conn_flush(pc);
        conn_maybe_free(pc);
    }
    /* start connections for what still waits */
    while (p->n_pending > p->n_connecting * (p->o.http2 ? pool_h2_connecting_capacity(p) : 1) &&
           p->n_conns < p->o.max_connections && !p->released && !p->connect_error)
        conn_new(p);
    p->in_process = false;
    p->depth--;
    pool_maybe_free(p);
}

/* ---- network callbacks ---- */

static void on_conn_data(struct pl_conn *c, struct pl_buf *in, bool end, void *arg)
{
    (void)c;
    struct pool_conn *pc = arg;
    if (pc->closed || !pc->codec) {
        pl_buf_drain(in, in->len);
        return;
    }
    struct pl_pool *p = pc->pool;
    p->depth++;
    pc->depth++;
    int rc = pc->codec->vt->feed(pc->codec, in);
    if (end && pc->codec)
        pc->codec->vt->feed_eof(pc->codec);
    conn_flush(pc);
    if (rc < 0 && !pc->closed) {
        pc->reset_reason = "protocol error";
        pool_conn_close(pc, false);
    } else if (end && !pc->closed) {
        pool_conn_close(pc, false);
    } else if (!pc->closed) {
        if (pl_codec_is_h1(pc->codec))
            conn_settle(pc);
        else
            pool_h2_settle(pc);
    }
    pc->depth--;
    conn_maybe_free(pc);
    p->depth--;
    pool_maybe_free(p);
}

/* Fails every pending request (Envoy purges them when a connection attempt fails). */
static void purge_pending(struct pl_pool *p, enum pl_pool_failure why, const char *reason)
{
    p->depth++;
    while (p->pend_head) {
        struct pl_pool_stream *s = p->pend_head;
        pend_remove(p, s);
        s->failed = true;
        if (s->cb->on_failure)
            s->cb->on_failure(s->user, why, reason);
    }
    p->depth--;
}

static void on_conn_event(struct pl_conn *c, enum pl_conn_event ev, void *arg)
{
    struct pool_conn *pc = arg;
    struct pl_pool *p = pc->pool;
    switch (ev) {
    case PL_CONN_EV_CONNECTED: {
        if (p->n_connecting)
            p->n_connecting--;
        pc->state = PC_READY;
        pc->local_len = sizeof(pc->local);
        if (getsockname(c->fd, (struct sockaddr *)&pc->local, &pc->local_len) < 0)
            pc->local_len = 0;
        if (p->o.idle_timeout_s > 0)
            pl_conn_set_idle_timeout(c, p->o.idle_timeout_s);
        pc->depth++;
        process_pending(p);
        conn_flush(pc);
        pc->depth--;
        conn_maybe_free(pc);
        return;
    }
    case PL_CONN_EV_CONNECT_FAILED:
    case PL_CONN_EV_CONNECT_TIMEOUT: {
        bool timeout = ev == PL_CONN_EV_CONNECT_TIMEOUT;
        pc->conn = NULL; /* freed by conn.c after this callback */
        if (p->has_stats) {
            pl_counter_inc(PL_CLUSTER_COUNTER(&p->st, upstream_cx_connect_fail));
            if (timeout)
                pl_counter_inc(PL_CLUSTER_COUNTER(&p->st, upstream_cx_connect_timeout));
        }
        pl_log_debug("pool", "connect to %s failed: %s", p->addr_str,
                     timeout ? "timeout" : c->err_text);
        pc->depth++;
        pc->reset_reason = "connection failure";
        pool_conn_close(pc, false);
        purge_pending(p, timeout ? PL_POOL_CONNECT_TIMEOUT : PL_POOL_CONNECT_FAILED,
                      "connection failure");
        pc->depth--;
        conn_maybe_free(pc);
        return;
    }
    case PL_CONN_EV_CLOSED:
        pc->conn = NULL;
        p->depth++;
        pool_conn_close(pc, false);
        if (p->pend_head)
            process_pending(p);
        p->depth--;
        pool_maybe_free(p);
        return;
    case PL_CONN_EV_IDLE_TIMEOUT:
        if (pc->codec && pc->codec->vt->active_streams(pc->codec) == 0 && pc->n_streams == 0)
            pool_conn_close(pc, false);
        return;
    }
}

/* The connection's output crossed a watermark: tell every stream on it (they stop or resume
 * reading their downstream). */
static void notify_watermark(struct pool_conn *pc, bool above)
{
    pc->above_high = above;
    pc->depth++;
    for (struct pl_pool_stream *s = pc->streams, *n; s; s = n) {
        n = s->cnext;
        if (s->cb->on_watermark)
            s->cb->on_watermark(s->user, above);
    }
    pc->depth--;
    conn_maybe_free(pc);
}

static void on_high(struct pl_conn *c, void *arg)
{
    (void)c;
    notify_watermark(arg, true);
}

static void on_low(struct pl_conn *c, void *arg)
{
    (void)c;
    notify_watermark(arg, false);
}

static const struct pl_conn_callbacks conn_cbs = {
    .on_data = on_conn_data,
    .on_event = on_conn_event,
    .on_high_watermark = on_high,
    .on_low_watermark = on_low,
};

static void conn_new(struct pl_pool *p)
{
    struct pool_conn *pc = pl_calloc(1, sizeof(*pc));
    pc->pool = p;
    pc->state = PC_CONNECTING;
    pool_h2_flush_init(pc);
    conn_link(p, pc);
    p->n_connecting++;
    if (p->has_stats) {
        pl_counter_inc(PL_CLUSTER_COUNTER(&p->st, upstream_cx_total));
        pl_gauge_add(PL_CLUSTER_GAUGE(&p->st, upstream_cx_active), 1);
    }
    if (p->host) {
        pc->host = p->host;
        pl_upstream_host_ref(p->host);
    }
    struct pl_conn_opts o = {
        .cb = &conn_cbs,
        .arg = pc,
        .transport = p->transport,
        .transport_cfg = p->transport_cfg,
        .buffer_limit = p->o.buffer_limit,
    };
    struct pl_err err = PL_ERR_INIT;
    if (pl_conn_connect(p->loop, (const struct sockaddr *)&p->addr, p->addrlen,
                        p->o.connect_timeout_s, &o, &pc->conn, &err) < 0) {
        pl_log_warn("pool", "connect to %s: %s", p->addr_str, err.n ? err.v[0].msg : "failed");
        pl_err_free(&err);
        pc->conn = NULL;
        if (p->has_stats)
            pl_counter_inc(PL_CLUSTER_COUNTER(&p->st, upstream_cx_connect_fail));
        pc->closed = true;
        p->n_connecting--;
        pc->state = PC_CLOSED;
        /* fail the waiting requests from the loop, not from inside new_stream's caller */
        p->connect_error = true;
        pool_schedule(p);
        conn_maybe_free(pc);
        return;
    }
    if (p->o.http2) {
        pc->codec = pool_h2_codec_new(pc, &codec_cbs);
    } else {
        struct pl_h1_codec_opts ho = pl_h1_codec_opts_default();
        if (p->o.max_headers_count)
            ho.limits.max_headers = p->o.max_headers_count;
        pc->codec = pl_h1_codec_new(false, &ho, &codec_cbs, pc);
    }
}

/* ---- deferred work ---- */

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct pl_pool *p = w->data;
    p->depth++;
    if (p->connect_error) {
        p->connect_error = false;
        purge_pending(p, PL_POOL_CONNECT_FAILED, "connection failure");
    }
    p->depth--;
    process_pending(p);
    pool_maybe_free(p);
}

void pool_schedule(struct pl_pool *p)
{
    if (!ev_is_active(&p->defer))
        ev_timer_start(p->loop, &p->defer);
}

/* ---- pools ---- */

static void pool_maybe_free(struct pl_pool *p)
{
    if (!p->released || p->conns || p->depth > 0 || p->pend_head || p->n_streams || p->freed)
        return;
    p->freed = true;
    ev_timer_stop(p->loop, &p->defer);
    free(p);
}

struct pl_pool *pl_pool_new(struct ev_loop *loop, const struct sockaddr *addr, socklen_t len,
                            const struct pl_pool_opts *o, const struct pl_cluster_stats *st)
{
    struct pl_pool *p = pl_calloc(1, sizeof(*p));
    p->loop = loop;
    memcpy(&p->addr, addr, len);
    p->addrlen = len;
    p->o = *o;
    if (!p->o.max_pending)
        p->o.max_pending = 1024;
    if (!p->o.max_connections)
        p->o.max_connections = 1024;
    if (!p->o.buffer_limit)
        p->o.buffer_limit = PL_CONN_DEFAULT_BUFFER_LIMIT;
    if (st) {
        p->st = *st;
        p->has_stats = true;
    }
    pl_addr_format(addr, len, p->addr_str, sizeof(p->addr_str));
    ev_timer_init(&p->defer, defer_cb, 0., 0.);
    p->defer.data = p;
    return p;
}

/* Closes idle connections; the pool is freed once its connections are gone. */
static void pool_release(struct pl_pool *p)
{
    p->released = true;
    p->host = NULL;
    p->depth++;
    for (struct pool_conn *pc = p->conns, *n; pc; pc = n) {
        n = pc->next;
        bool unused =
            pc->n_streams == 0 && (!pc->codec || pc->codec->vt->active_streams(pc->codec) == 0);
        /* a connection still being made is kept only for requests waiting for it */
        if (unused && (pc->state == PC_READY || !p->pend_head))
            pool_conn_close(pc, false);
    }
    p->depth--;
    pool_maybe_free(p);
}

void pl_pool_free(struct pl_pool *p)
{
    p->depth++;
    purge_pending(p, PL_POOL_CONNECT_FAILED, "pool closed");
    for (struct pool_conn *pc = p->conns, *n; pc; pc = n) {
        n = pc->next;
        pool_conn_close(pc, false);
    }
    p->depth--;
    pool_release(p);
}

static void host_release(struct pl_host_rt *h)
{
    struct pl_pool *a = h->pool_h1, *b = h->pool_h2;
    h->pool_h1 = h->pool_h2 = NULL;
    /* closing connections drop their host references; the caller (upstream) still uses h
     * after this returns and frees it itself when no reference is left */
    h->refs++;
    if (a)
        pool_release(a);
    if (b)
        pool_release(b);
    h->refs--;
}

void pl_pool_init(void)
{
    pl_upstream_set_pool_release(host_release);
}

struct pl_pool *pl_pool_get(struct ev_loop *loop, struct pl_host_rt *h,
                            const struct pl_cluster_cfg *cfg, struct pl_cluster_rt *crt)
{
    void **slot = cfg->http2 ? &h->pool_h2 : &h->pool_h1;
    struct pl_pool *p = *slot;
    struct pl_pool_opts o = {
        .http2 = cfg->http2,
        .connect_timeout_s = (double)cfg->connect_timeout_ms / 1000.0,
        .idle_timeout_s = (double)cfg->idle_timeout_ms / 1000.0,
        .buffer_limit = cfg->per_connection_buffer_limit_bytes,
        .h2_max_concurrent_streams = cfg->h2_max_concurrent_streams,
        .h2_initial_stream_window_size = cfg->h2_initial_stream_window_size,
        .h2_initial_connection_window_size = cfg->h2_initial_connection_window_size,
        .max_headers_count = cfg->max_headers_count,
    };
    if (p) {
        /* settings may change with the cluster's config; they apply to new connections */
        p->o.connect_timeout_s = o.connect_timeout_s;
        p->o.idle_timeout_s = o.idle_timeout_s;
        p->o.buffer_limit = o.buffer_limit ? o.buffer_limit : PL_CONN_DEFAULT_BUFFER_LIMIT;
        return p;
    }
    p = pl_pool_new(loop, (const struct sockaddr *)&h->addr, h->addrlen, &o, &crt->stats);
    p->host = h;
    p->transport = pool_cluster_transport(cfg, &p->transport_cfg);
    *slot = p;
    return p;
}

/* ---- streams ---- */

struct pl_pool_stream *pl_pool_new_stream(struct pl_pool *p, const struct pl_pool_callbacks *cb,
                                          void *user)
{
    struct pl_pool_stream *s = pl_slab_calloc(&stream_cache);
    s->pool = p;
    s->cb = cb;
    s->user = user;
    p->n_streams++;
    p->depth++;
    struct pool_conn *pc = p->pend_head ? NULL : find_ready(p);
    if (pc) {
        pc->depth++;
        bind_stream(pc, s);
        pc->depth--;
        conn_flush(pc);
        conn_maybe_free(pc);
    } else if (p->n_pending >= p->o.max_pending) {
        s->failed = true;
        if (cb->on_failure)
            cb->on_failure(user, PL_POOL_OVERFLOW, "overflow");
    } else {
        pend_push(p, s);
        process_pending(p);
    }
    p->depth--;
    pool_maybe_free(p);
    return s;
}

static struct pool_conn *live_conn(struct pl_pool_stream *s)
{
    struct pool_conn *pc = s->pc;
    return pc && !pc->closed && pc->codec && s->cs ? pc : NULL;
}

/* The request was fully sent. */
static void tx_ended(struct pl_pool_stream *s)
{
    s->tx_end = true;
    if (s->rx_end)
        stream_detach(s);
}

int pl_pool_stream_encode_head(struct pl_pool_stream *s, const struct pl_http_head *h, bool end)
{
    struct pool_conn *pc = live_conn(s);
    if (!pc)
        return PL_EINVAL;
    pc->depth++;
    int rc = pc->codec->vt->encode_head(pc->codec, s->cs, h, end);
    if (rc == 0 && end)
        tx_ended(s);
    conn_flush(pc);
    pc->depth--;
    conn_maybe_free(pc);
    return rc;
}

int pl_pool_stream_encode_data(struct pl_pool_stream *s, struct pl_buf *data, bool end)
{
    struct pool_conn *pc = live_conn(s);
    if (!pc) {
        pl_buf_drain(data, data->len);
        return PL_EINVAL;
    }
    pc->depth++;
    int rc = pc->codec->vt->encode_data(pc->codec, s->cs, data, end);
    if (rc == 0 && end)
        tx_ended(s);
    conn_flush(pc);
    pc->depth--;
    conn_maybe_free(pc);
    return rc;
}

int pl_pool_stream_encode_trailers(struct pl_pool_stream *s, const struct pl_headers *t)
{
    struct pool_conn *pc = live_conn(s);
    if (!pc)
        return PL_EINVAL;
    pc->depth++;
    int rc = pc->codec->vt->encode_trailers(pc->codec, s->cs, t);
    if (rc == 0)
        tx_ended(s);
    conn_flush(pc);
    pc->depth--;
    conn_maybe_free(pc);
    return rc;
}

void pl_pool_stream_consumed(struct pl_pool_stream *s, size_t n)
{
    struct pool_conn *pc = live_conn(s);
    if (!pc || !n)
        return;
    pc->codec->vt->consumed(pc->codec, s->cs, n);
    conn_flush(pc);
}

void pl_pool_stream_read_disable(struct pl_pool_stream *s, bool disable)
{
    struct pool_conn *pc = live_conn(s);
    if (!pc || !pc->conn)
        return;
    if (!pl_codec_is_h1(pc->codec))
        return; /* HTTP/2: windows stay closed while consumed() is held back */
    if (disable) {
        s->read_disabled++;
        pl_conn_read_disable(pc->conn, true);
    } else if (s->read_disabled) {
        s->read_disabled--;
        pl_conn_read_disable(pc->conn, false);
    }
}

void pl_pool_stream_release(struct pl_pool_stream *s)
{
    if (!s || s->released)
        return;
    s->released = true;
    struct pl_pool *p = s->pool;
    p->depth++;
    pend_remove(p, s);
    struct pool_conn *pc = s->pc;
    if (pc) { /* still bound: the exchange did not complete */
        pc->depth++;
        struct pl_codec_stream *cs = s->cs;
        stream_detach(s);
        if (pc->codec && cs && !pc->closed) {
            pc->codec->vt->reset_stream(pc->codec, cs, PL_RESET_LOCAL);
            conn_flush(pc);
            if (pl_codec_is_h1(pc->codec))
                pool_conn_close(pc,
                                false); /* HTTP/1: a half-done exchange poisons the connection */
        }
        if (p->released && !pc->closed && pc->codec && !pl_codec_is_h1(pc->codec))
            pool_h2_settle(pc); /* the last stream of a removed host's connection */
        pc->depth--;
        conn_maybe_free(pc);
    }
    struct pool_conn *dpc = s->done_pc;
    if (dpc) { /* its codec stream (the response head) is not needed any more */
        dpc->done = NULL;
        if (dpc->codec && !dpc->closed) {
            pl_h1_codec_free_stream(dpc->codec, s->done_cs);
            if (p->released) {
                dpc->depth++;
                conn_settle(dpc);
                dpc->depth--;
                conn_maybe_free(dpc);
            }
        }
    }
    stream_free(s);
    p->n_streams--;
    p->depth--;
    if (!p->freed && p->pend_head)
        pool_schedule(p);
    pool_maybe_free(p);
}

const struct sockaddr *pl_pool_stream_local_addr(const struct pl_pool_stream *s, socklen_t *len)
{
    if (!s->pc || !s->pc->local_len)
        return NULL;
    *len = s->pc->local_len;
    return (const struct sockaddr *)&s->pc->local;
}

void pl_pool_counts(const struct pl_pool *p, size_t *total, size_t *idle, size_t *pending)
{
    size_t t = 0, i = 0;
    for (const struct pool_conn *pc = p->conns; pc; pc = pc->next) {
        t++;
        if (pc->state == PC_READY && pc->n_streams == 0)
            i++;
    }
    *total = t;
    *idle = i;
    *pending = p->n_pending;
}
