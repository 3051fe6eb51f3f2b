/* HTTP connection manager: downstream connections (accept, codec choice, I/O, drain, close). */
#include <stdlib.h>
#include <string.h>

#include "config/publish.h"
#include "core/log.h"
#include "http/conn_manager_internal.h"
#include "http/h1_codec.h"
#include "server/worker.h"

#define HCM_CONN(wc) ((struct hcm_conn *)(void *)(wc))

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static __thread uint64_t next_conn_id;

static void teardown(struct hcm_conn *hc);
static void hc_close(struct hcm_conn *hc, bool flush);
static void drain_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* An idle connection keeps its addresses: an IP one inline (28 bytes, not a 128-byte
 * sockaddr_storage), anything else in a heap copy. */
static const struct sockaddr *keep_addr(union hcm_addr *slot, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
        memcpy(slot, ss, sizeof(*slot));
        return &slot->sa;
    }
    struct sockaddr_storage *copy = pl_malloc(sizeof(*copy));
    memcpy(copy, ss, sizeof(*copy));
    return (const struct sockaddr *)copy;
}

static void free_addr(const union hcm_addr *slot, const struct sockaddr *sa)
{
    if (sa != &slot->sa)
        free((void *)sa);
}

/* ---- codec callbacks ---- */

static void *cb_new_stream(void *ctx, struct pl_codec_stream *cs)
{
    struct hcm_conn *hc = ctx;
    if (hc->closing)
        return NULL;
    return hcm_stream_new(hc, cs);
}

static int cb_head(void *ctx, struct pl_codec_stream *cs, void *user, struct pl_http_head *h,
                   bool end, bool info)
{
    (void)ctx, (void)cs, (void)info;
    return hcm_stream_on_head(user, h, end);
}

static int cb_data(void *ctx, struct pl_codec_stream *cs, void *user, struct pl_buf *d, bool end)
{
    (void)ctx, (void)cs;
    return hcm_stream_on_data(user, d, end);
}

static int cb_trailers(void *ctx, struct pl_codec_stream *cs, void *user, struct pl_headers *t)
{
    (void)ctx, (void)cs;
    return hcm_stream_on_trailers(user, t);
}

static void cb_reset(void *ctx, struct pl_codec_stream *cs, void *user, enum pl_reset_reason why)
{
    (void)ctx, (void)cs;
    if (user)
        hcm_stream_on_reset(user, why);
}

static void cb_goaway(void *ctx, uint32_t last)
{
    (void)ctx, (void)last;
}

const struct pl_codec_callbacks hcm_codec_callbacks = {
    .on_new_stream = cb_new_stream,
    .on_head = cb_head,
    .on_data = cb_data,
    .on_trailers = cb_trailers,
    .on_reset = cb_reset,
    .on_goaway = cb_goaway,
};

/* ---- output and closing ---- */

/* HTTP/2 output and finished streams wait for flush_w, a prepare watcher: it runs once the
 * loop has dispatched every event of the iteration, just before it polls again, so all the
 * frames of the iteration leave in one write and freeing streams costs no extra loop turn.
 * Work asked for while it runs goes to the zero timer (a prepare watcher started then would not
 * run before the loop blocks). */
static bool defer_to_prepare(struct hcm_conn *hc)
{
    if (!hc->http2 || hc->closing || hc->refeed || hc->in_flush)
        return false;
    if (!ev_is_active(&hc->h2w->flush_w))
        ev_prepare_start(hc->loop, &hc->h2w->flush_w);
    return true;
}

void hcm_conn_schedule(struct hcm_conn *hc)
{
    if (hc->torn_down || defer_to_prepare(hc))
        return;
    if (!ev_is_active(&hc->defer))
        ev_timer_start(hc->loop, &hc->defer);
}

/* Closes when the codec says the connection is done and no stream is left. */
static void check_done(struct hcm_conn *hc)
{
    if (hc->closing || !hc->codec || hc->n_streams)
        return;
    if (pl_codec_is_h1(hc->codec)) {
        /* the peer finished sending: close once no request is left in the input */
        bool eof_done = hc->remote_closed && (!hc->refeed || !hc->conn || !hc->conn->in.len);
        if (pl_h1_codec_closing(hc->codec) || hc->draining || eof_done) {
            if (hc->draining)
                pl_counter_inc(hc->cfg->st.cx_drain_close);
            hc_close(hc, true);
        }
    } else if (hcm_h2_done(hc->codec)) {
        hc_close(hc, true);
    }
}

static void flush_now(struct hcm_conn *hc)
{
    if (!hc->conn || !hc->codec)
        return;
    if (!(hc->http2 && hc->above_high)) {
        struct pl_buf *o = hc->codec->vt->output(hc->codec);
        if (o->len)
            pl_conn_write(hc->conn, o, o->len, false);
    }
    check_done(hc);
}

void hcm_conn_flush(struct hcm_conn *hc)
{
    if (hc->conn && hc->codec && !defer_to_prepare(hc))
        flush_now(hc);
}

static void hc_close(struct hcm_conn *hc, bool flush)
{
    if (hc->closing)
        return;
    hc->closing = true;
    if (hc->conn) {
        if (flush && hc->codec) {
            struct pl_buf *o = hc->codec->vt->output(hc->codec);
            if (o->len)
                pl_conn_write(hc->conn, o, o->len, false);
        }
        pl_conn_close(hc->conn, flush ? PL_CONN_CLOSE_FLUSH : PL_CONN_CLOSE_NOW);
        hc->conn = NULL;
    }
    hcm_conn_schedule(hc);
}

static void free_dead(struct hcm_conn *hc)
{
    while (hc->dead) {
        struct hcm_stream *st = hc->dead;
        hc->dead = st->next_dead;
        struct pl_codec_stream *cs = st->cs;
        hcm_stream_destroy(st);
        /* HTTP/1: the codec's stream (the request head) goes now rather than with the next
         * request, so an idle keep-alive connection holds no stream memory */
        if (cs && hc->codec && !hc->http2)
            pl_h1_codec_free_stream(hc->codec, cs);
    }
}

static void stop_h2_watchers(struct hcm_conn *hc)
{
    if (hc->h2w) {
        ev_timer_stop(hc->loop, &hc->h2w->drain_timer);
        ev_prepare_stop(hc->loop, &hc->h2w->flush_w);
    }
}

static void teardown(struct hcm_conn *hc)
{
    if (hc->torn_down)
        return;
    hc->closing = true;
    ev_timer_stop(hc->loop, &hc->defer);
    stop_h2_watchers(hc);
    if (hc->conn) {
        pl_conn_close(hc->conn, PL_CONN_CLOSE_NOW);
        hc->conn = NULL;
    }
    if (hc->codec) {
        struct pl_codec *c = hc->codec;
        c->vt->destroy(c); /* open streams are reset through the callbacks */
        hc->codec = NULL;
        if (hc->http2)
            pl_gauge_add(hc->cfg->st.cx_http2_active, -1);
        else
            pl_gauge_add(hc->cfg->st.cx_http1_active, -1);
    }
    hc->torn_down = true;
    free_dead(hc);
    /* streams reset by the codec's destroy may have scheduled deferred work */
    ev_timer_stop(hc->loop, &hc->defer);
    stop_h2_watchers(hc);
    free(hc->h2w);
    hc->h2w = NULL;
    pl_gauge_add(hc->cfg->st.cx_active, -1);
    pl_counter_inc(hc->cfg->st.cx_destroy);
    pl_counter_inc(hc->remote_closed ? hc->cfg->st.cx_destroy_remote
                                     : hc->cfg->st.cx_destroy_local);
    pl_net_accepted_release(&hc->acc);
    free(hc->sni);
    free_addr(&hc->peer_in, hc->peer);
    free_addr(&hc->local_in, hc->local);
    free(hc);
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    struct hcm_conn *hc = w->data;
    ev_prepare_stop(loop, w);
    if (hc->closing)
        return; /* the zero timer tears it down */
    hc->in_flush = true;
    free_dead(hc);
    flush_now(hc);
    hc->in_flush = false;
}

static void defer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct hcm_conn *hc = w->data;
    if (hc->closing) {
        teardown(hc);
        return;
    }
    free_dead(hc);
    if (hc->http2)
        flush_now(hc); /* asked for while flush_w ran */
    if (hc->refeed && hc->conn && hc->codec) {
        hc->refeed = false;
        if (hc->conn->in.len) {
            int rc = hc->codec->vt->feed(hc->codec, &hc->conn->in);
            hcm_conn_flush(hc);
            if (rc < 0) {
                pl_counter_inc(hc->cfg->st.cx_protocol_error);
                hc_close(hc, true);
                return;
            }
            if (hc->conn)
                pl_conn_read_resume(hc->conn);
        }
    }
    check_done(hc);
}

/* ---- codec choice ---- */

static void make_codec(struct hcm_conn *hc, bool h2)
{
    const struct hcm_config *cfg = hc->cfg;
    if (h2) {
        hc->codec = hcm_h2_codec_new(hc);
        if (hc->codec) {
            hc->http2 = true;
            hc->h2w = pl_malloc(sizeof(*hc->h2w));
            ev_prepare_init(&hc->h2w->flush_w, flush_cb);
            hc->h2w->flush_w.data = hc;
            ev_init(&hc->h2w->drain_timer, drain_timer_cb);
            hc->h2w->drain_timer.data = hc;
            pl_counter_inc(cfg->st.cx_http2_total);
            pl_gauge_add(cfg->st.cx_http2_active, 1);
            return;
        }
    }
    struct pl_h1_codec_opts o = pl_h1_codec_opts_default();
    o.limits.max_header_bytes = (size_t)cfg->max_request_headers_kb * 1024;
    o.limits.max_headers = cfg->max_headers_count;
    o.server_name = cfg->server_name;
    hc->codec = pl_h1_codec_new(true, &o, &hcm_codec_callbacks, hc);
    hc->http2 = false;
    pl_counter_inc(cfg->st.cx_http1_total);
    pl_gauge_add(cfg->st.cx_http1_active, 1);
}

/* AUTO: ALPN "h2" under TLS, else the HTTP/2 preface (prior knowledge). Returns false while
 * too few bytes arrived to tell. */
static bool choose_codec(struct hcm_conn *hc, struct pl_conn *c, struct pl_buf *in, bool end)
{
    if (hc->cfg->codec_type != HCM_CODEC_AUTO) {
        make_codec(hc, hc->cfg->codec_type == HCM_CODEC_HTTP2);
        return true;
    }
    if (c->transport && c->transport->vt->protocol) {
        const char *alpn = c->transport->vt->protocol(c->transport);
        if (alpn && !strcmp(alpn, "h2")) {
            make_codec(hc, true);
            return true;
        }
    }
    char head[24];
    size_t n = pl_buf_copyout(in, 0, head, sizeof(head));
    bool prefix = !memcmp(head, h2_preface, n);
    if (prefix && n < sizeof(head) && !end)
        return false;
    make_codec(hc, prefix && n == sizeof(head));
    return true;
}

/* ---- connection callbacks ---- */

static void on_data(struct pl_conn *c, struct pl_buf *in, bool end, void *arg)
{
    struct hcm_conn *hc = arg;
    if (hc->closing) {
        pl_buf_drain(in, in->len);
        return;
    }
    if (!hc->codec && !choose_codec(hc, c, in, end))
        return;
    struct pl_codec *codec = hc->codec;
    int rc = codec->vt->feed(codec, in);
    if (end && hc->codec)
        hc->codec->vt->feed_eof(hc->codec);
    if (rc < 0) {
        pl_counter_inc(hc->cfg->st.cx_protocol_error);
        int status = pl_codec_is_h1(codec) ? pl_h1_codec_error_status(codec) : 0;
        if (status) {
            pl_counter_inc(hc->cfg->st.rq_xx[status / 100]);
            pl_log_debug("http", "[C%lu] protocol error: answered %d", (unsigned long)hc->id,
                         status);
        }
        hc_close(hc, true);
        return;
    }
    if (end)
        hc->remote_closed = true;
    hcm_conn_flush(hc);
    if (end && !hc->closing && hc->n_streams == 0 && (!hc->refeed || !in->len))
        hc_close(hc, true);
}

static void on_event(struct pl_conn *c, enum pl_conn_event ev, void *arg)
{
    (void)c;
    struct hcm_conn *hc = arg;
    switch (ev) {
    case PL_CONN_EV_CONNECTED:
        return;
    case PL_CONN_EV_CLOSED:
    case PL_CONN_EV_CONNECT_FAILED:
    case PL_CONN_EV_CONNECT_TIMEOUT:
        hc->conn = NULL; /* conn.c frees it after this callback */
        hc->remote_closed = true;
        hc->closing = true;
        hcm_conn_schedule(hc);
        return;
    case PL_CONN_EV_IDLE_TIMEOUT:
        if (hc->n_streams == 0) {
            pl_counter_inc(hc->cfg->st.cx_idle_timeout);
            if (hc->codec && hc->http2) {
                hc->codec->vt->goaway(hc->codec);
                hcm_conn_flush(hc);
            }
            hc_close(hc, true);
        }
        return;
    }
}

static void on_watermark(struct hcm_conn *hc, bool above)
{
    hc->above_high = above;
    for (struct hcm_stream *st = hc->streams, *n; st; st = n) {
        n = st->next;
        hcm_stream_watermark(st, above);
    }
    if (!above)
        hcm_conn_flush(hc);
}

static void on_high(struct pl_conn *c, void *arg)
{
    (void)c;
    on_watermark(arg, true);
}

static void on_low(struct pl_conn *c, void *arg)
{
    (void)c;
    on_watermark(arg, false);
}

static const struct pl_conn_callbacks conn_cbs = {
    .on_data = on_data,
    .on_event = on_event,
    .on_high_watermark = on_high,
    .on_low_watermark = on_low,
};

/* ---- the worker's handle: drain and close ---- */

static void drain_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct hcm_conn *hc = w->data;
    pl_counter_inc(hc->cfg->st.cx_drain_close);
    hc_close(hc, true); /* drain_timeout passed since GOAWAY: streams left are reset */
}

static void drain_conn(struct pl_worker_conn *wc)
{
    struct hcm_conn *hc = HCM_CONN(wc);
    if (hc->draining || hc->closing)
        return;
    hc->draining = true;
    if (hc->codec) {
        hc->codec->vt->goaway(hc->codec);
        hcm_conn_flush(hc);
    }
    if (hc->http2 && hc->cfg->drain_timeout_ms && !hc->closing) {
        ev_timer_set(&hc->h2w->drain_timer, (double)hc->cfg->drain_timeout_ms / 1000.0, 0.);
        ev_timer_start(hc->loop, &hc->h2w->drain_timer);
    }
    if (!hc->closing && hc->n_streams == 0) {
        pl_counter_inc(hc->cfg->st.cx_drain_close);
        hc_close(hc, true);
    }
}

static void close_conn(struct pl_worker_conn *wc)
{
    teardown(HCM_CONN(wc));
}

static const struct pl_conn_handler_vtable hcm_handler = {
    .name = "envoy.filters.network.http_connection_manager",
    .on_accept = NULL,
    .drain_conn = drain_conn,
    .close_conn = close_conn,
};

int hcm_on_accept(const struct pl_accept_info *info, void *cfgp)
{
    const struct hcm_config *cfg = cfgp;
    struct hcm_conn *hc = pl_calloc(1, sizeof(*hc));
    hc->cfg = cfg;
    hc->loop = pl_worker_loop(info->worker);
    hc->peer = keep_addr(&hc->peer_in, &info->peer);
    hc->peer_len = info->peer_len;
    hc->local = keep_addr(&hc->local_in, &info->local);
    hc->local_len = info->local_len;
    hc->id = ((uint64_t)pl_worker_id(info->worker) << 48) | ++next_conn_id;
    const struct pl_filter_chain *ch = info->chain;
    hc->tls = ch && ch->transport;
    if (info->server_name)
        hc->sni = pl_strdup(info->server_name);
    ev_timer_init(&hc->defer, defer_cb, 0., 0.);
    hc->defer.data = hc;
    pl_net_accepted_keep(&hc->acc, info, &hcm_handler);
    struct pl_conn_opts o = {
        .cb = &conn_cbs,
        .arg = hc,
        .transport = ch ? ch->transport : NULL,
        .transport_cfg = ch ? ch->transport_cfg : NULL,
        .buffer_limit = ch ? ch->buffer_limit : 0,
    };
    pl_gauge_add(cfg->st.cx_active, 1);
    pl_counter_inc(cfg->st.cx_total);
    hc->conn = pl_conn_accept(hc->loop, info->fd, &o);
    if (!hc->conn) {
        hc->closing = true;
        teardown(hc);
        return 0;
    }
    if (cfg->prepared)
        pl_conn_count_bytes(hc->conn, &cfg->st.cx_rx_bytes_total, &cfg->st.cx_tx_bytes_total);
    if (cfg->idle_timeout_ms)
        pl_conn_set_idle_timeout(hc->conn, (double)cfg->idle_timeout_ms / 1000.0);
    if (cfg->codec_type != HCM_CODEC_AUTO)
        make_codec(hc, cfg->codec_type == HCM_CODEC_HTTP2);
    return 0;
}
