/* HTTP connection manager: one request/response exchange (header handling, the filter chain,
 * local replies, timeouts, completion). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/publish.h"
#include "core/log.h"
#include "core/slab.h"
#include "http/conn_manager_internal.h"
#include "http/h1_codec.h"
#include "server/worker.h"

#define ST(fsp)    ((struct hcm_stream *)(void *)(fsp))
#define HOLD_LIMIT (1024 * 1024) /* body bytes held for a stopped filter */
#define NOW_NS()   pl_stream_info_now_ns()

static const struct pl_filter_stream_ops ops;
static void finish(struct hcm_stream *st, bool reset);
static void local_reply(struct pl_filter_stream *fs, int status, const char *body, size_t len,
                        const struct pl_headers *extra, const char *details, uint32_t flags);
static void reset_stream(struct pl_filter_stream *fs, const char *details);

static const struct hcm_config *CFG(const struct hcm_stream *st)
{
    return st->hc->cfg;
}

static struct pl_codec *CODEC(const struct hcm_stream *st)
{
    return st->hc->torn_down || st->codec_gone ? NULL : st->hc->codec;
}

/* ---- timers ---- */

static void idle_arm(struct hcm_stream *st, double after)
{
    ev_timer_set(&st->idle_timer, after, 0.);
    ev_timer_start(st->hc->loop, &st->idle_timer);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct hcm_stream *st = w->data;
    /* activity since the timer was armed: wait for what is left of the timeout */
    double left = st->idle_last + (double)st->idle_ms / 1000.0 - ev_now(loop);
    if (left > 0.001) {
        idle_arm(st, left);
        return;
    }
    pl_counter_inc(CFG(st)->st.rq_idle_timeout);
    if (!st->response_started)
        local_reply(&st->fs, 408, "stream timeout", 14, NULL, "stream_idle_timeout", PL_RF_SI);
    else {
        st->info.response_flags |= PL_RF_SI;
        reset_stream(&st->fs, "stream_idle_timeout");
    }
}

static void req_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct hcm_stream *st = w->data;
    if (st->remote_complete)
        return;
    pl_counter_inc(CFG(st)->st.rq_timeout);
    if (!st->response_started)
        local_reply(&st->fs, 408, "request timeout", 15, NULL, "request_overall_timeout", 0);
    else
        reset_stream(&st->fs, "request_overall_timeout");
}

/* Activity on the stream restarts its idle timeout. Lazily: only the time is noted (a heap update
 * of the timer on every event cost more than the rest of the bookkeeping); the timer, once
 * running, moves itself when it fires early. */
static void touch(struct hcm_stream *st)
{
    if (st->idle_ms && !st->finished) {
        st->idle_last = ev_now(st->hc->loop);
        if (!ev_is_active(&st->idle_timer))
            idle_arm(st, (double)st->idle_ms / 1000.0);
    }
}

/* ---- creation ---- */

/* Streams are per request: they come from a per-thread cache, not from malloc. */
static __thread struct pl_slab stream_cache = PL_SLAB_INIT(sizeof(struct hcm_stream), 1024);

void *hcm_stream_new(struct hcm_conn *hc, struct pl_codec_stream *cs)
{
    const struct hcm_config *cfg = hc->cfg;
    struct hcm_stream *st = pl_slab_calloc(&stream_cache);
    st->hc = hc;
    st->cs = cs;
    pl_stream_info_start(&st->info);
    st->info.downstream_remote_addr = hc->peer;
    st->info.downstream_remote_addr_len = hc->peer_len;
    st->info.downstream_local_addr = hc->local;
    st->info.downstream_local_addr_len = hc->local_len;
    st->info.connection_id = hc->id;
    st->fs = (struct pl_filter_stream){
        .ops = &ops,
        .arena = &st->arena,
        .info = &st->info,
        .routes = cfg->routes,
        .loop = hc->loop,
        .worker = hc->acc.worker,
        .worker_id = hc->acc.worker ? pl_worker_id(hc->acc.worker) : 0,
        .snap = hc->acc.snap,
        .peer = hc->peer,
        .local = hc->local,
        .tls = hc->tls,
        .sni = hc->sni,
        .downstream_http2 = hc->http2,
        .downstream_above_high = hc->above_high,
        .stream_idle_timeout_ms = cfg->stream_idle_timeout_ms,
    };
    st->states = pl_arena_alloc(&st->arena, (cfg->n_filters + 1) * sizeof(void *));
    for (uint32_t i = 0; i < cfg->n_filters; i++) {
        size_t n = cfg->filters[i].vt->state_size;
        st->states[i] = n ? pl_arena_alloc(&st->arena, n) : NULL;
        if (n)
            memset(st->states[i], 0, n);
    }
    pl_buf_init(&st->dec.buf);
    pl_buf_init(&st->enc.buf);
    ev_init(&st->idle_timer, idle_cb);
    st->idle_ms = cfg->stream_idle_timeout_ms;
    st->idle_timer.data = st;
    ev_timer_init(&st->req_timer, req_timer_cb, (double)cfg->request_timeout_ms / 1000.0, 0.);
    st->req_timer.data = st;
    st->next = hc->streams;
    if (hc->streams)
        hc->streams->prev = st;
    hc->streams = st;
    hc->n_streams++;
    pl_gauge_add(cfg->st.rq_active, 1);
    return st;
}

/* ---- the route configuration of a stream ---- */

const struct pl_snapshot *hcm_route_snapshot(struct hcm_conn *hc, const struct pl_snapshot *cur,
                                             const struct pl_route_table **routes)
{
    const struct hcm_config *cfg = hc->cfg;
    const struct pl_snapshot *own = hc->acc.snap;
    if (!cfg->rds_name || !cur) {
        *routes = cfg->rds_name && own ? pl_snapshot_route_table(own, cfg->rds_name) : cfg->routes;
        return own;
    }
    /* the generation tells a new snapshot from a freed one reallocated at the same address */
    if (cur != hc->rt_seen || cur->generation != hc->rt_gen) {
        hc->rt_seen = cur;
        hc->rt_gen = cur->generation;
        hc->rt_snap = cur;
        hc->rt_table = pl_snapshot_route_table(cur, cfg->rds_name);
        if (!hc->rt_table && own && own != cur) {
            /* gone from the current snapshot (its listener changed): keep what we had */
            hc->rt_snap = own;
            hc->rt_table = pl_snapshot_route_table(own, cfg->rds_name);
        }
    }
    *routes = hc->rt_table;
    return hc->rt_snap;
}

/* RDS: the stream takes the route table of the snapshot current now (Envoy: each stream uses
 * the route configuration of its start) and pins that snapshot for its life when it is not the
 * connection's, so the route and the cluster it names come from one snapshot. */
static void use_current_routes(struct hcm_stream *st)
{
    struct hcm_conn *hc = st->hc;
    if (!hc->cfg->rds_name || st->pinned)
        return;
    const struct pl_snapshot *cur = hc->acc.worker ? pl_snapshot_current() : NULL;
    const struct pl_snapshot *s = hcm_route_snapshot(hc, cur, &st->fs.routes);
    if (s && s != hc->acc.snap) { /* s is cur: read as current in this read-side section */
        pl_snapshot_pin(s, st->fs.worker_id);
        st->pinned = s;
    }
    st->fs.snap = s;
}

/* ---- request header handling (Envoy's ConnectionManagerUtility) ---- */

static bool lc_eq(const struct pl_header *f, const char *lit)
{
    size_t n = strlen(lit);
    return f->name_len == n && !memcmp(f->name, lit, n);
}

static bool val_eq(const struct pl_header *f, const char *lit)
{
    size_t n = strlen(lit);
    return f->value_len == n && !strncasecmp(f->value, lit, n);
}

/* A hop-by-hop field; connection/upgrade stay for an accepted upgrade. Their lengths tell
 * most fields apart without a compare. */
static bool hop_by_hop(const struct pl_header *f, bool upgrade)
{
    switch (f->name_len) {
    case 2:
        return lc_eq(f, "te") && !val_eq(f, "trailers");
    case 7:
        return !upgrade && lc_eq(f, "upgrade");
    case 10:
        return lc_eq(f, "keep-alive") || (!upgrade && lc_eq(f, "connection"));
    case 16:
        return lc_eq(f, "proxy-connection");
    case 17:
        return lc_eq(f, "transfer-encoding");
    default:
        return false;
    }
}

/* Removes hop-by-hop fields; keeps connection/upgrade for an accepted upgrade. */
static void strip_hop_by_hop(struct pl_headers *h, bool upgrade)
{
    uint32_t i = 0;
    while (i < h->n && !hop_by_hop(&h->v[i], upgrade))
        i++;
    if (i == h->n)
        return; /* the common case: nothing to move */
    uint32_t w = i;
    for (i++; i < h->n; i++)
        if (!hop_by_hop(&h->v[i], upgrade))
            h->v[w++] = h->v[i];
    h->n = w;
}

/* Envoy's internal-only request headers, removed from external (edge) requests. */
static const char *const internal_headers[] = {
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-external-address",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-internal",
    "x-envoy-ip-tags",
    "x-envoy-max-retries",
    "x-envoy-original-path",
    "x-envoy-original-url",
    "x-envoy-retriable-header-names",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-rq-timeout-ms",
};

/* name: a lower-case string literal (referenced, not copied) */
static void set(struct hcm_stream *st, struct pl_headers *h, const char *name, const char *v,
                size_t vl)
{
    pl_headers_set_ref_name(h, &st->arena, name, strlen(name), v, vl);
}

/* Returns 0, or the status of a local reply already sent. */
static int sanitize_request(struct hcm_stream *st, struct pl_http_head *h)
{
    const struct hcm_config *cfg = CFG(st);
    struct hcm_conn *hc = st->hc;
    bool connect = h->method_len == 7 && !memcmp(h->method, "CONNECT", 7);
    if (!h->authority || !h->authority_len) {
        const struct pl_header *host = pl_headers_get_lit(&h->headers, "host");
        if (host) {
            h->authority = host->value;
            h->authority_len = host->value_len;
            pl_headers_remove(&h->headers, "host", 4);
        } else if (h->version != 10) {
            local_reply(&st->fs, 400, "missing host header", 19, NULL, "missing_host_header", 0);
            return 400;
        } else {
            h->authority = "";
            h->authority_len = 0;
        }
    }
    if (!connect && (!h->path || !h->path_len ||
                     (h->path[0] != '/' && !(h->path_len == 1 && h->path[0] == '*')))) {
        local_reply(&st->fs, 400, "invalid path", 12, NULL, "invalid_path", 0);
        return 400;
    }
    if (h->protocol && h->protocol_len) {
        if (cfg->websocket && h->protocol_len == 9 && !strncasecmp(h->protocol, "websocket", 9)) {
            st->upgrade = true;
            set(st, &h->headers, "connection", "upgrade", 7);
        } else {
            pl_counter_inc(cfg->st.rq_ws_on_non_ws_route);
            local_reply(&st->fs, 403, "", 0, NULL, "upgrade_failed", 0);
            return 403;
        }
    }
    strip_hop_by_hop(&h->headers, st->upgrade);
    if (hc->tls) {
        h->scheme = "https";
        h->scheme_len = 5;
    }
    const struct pl_header *ex = pl_headers_get_lit(&h->headers, "expect");
    if (ex && val_eq(ex, "100-continue")) {
        /* Envoy (proxy_100_continue false) answers 100 itself and drops the header */
        pl_headers_remove(&h->headers, "expect", 6);
        struct pl_codec *c = CODEC(st);
        if (c && !st->remote_complete) {
            struct pl_http_head cont = {.status = 100, .content_length = -1};
            c->vt->encode_head(c, st->cs, &cont, false);
            hcm_conn_flush(hc);
        }
    }
    bool edge = cfg->use_remote_address;
    bool internal = false;
    char ip[64];
    hcm_addr_ip(hc->peer, ip, sizeof(ip));
    const struct pl_header *xff = pl_headers_get_lit(&h->headers, "x-forwarded-for");
    /* the client: the peer (edge) or an address from x-forwarded-for (Envoy's
     * use_remote_address / xff_num_trusted_hops) */
    char client[64];
    uint32_t skip = edge ? (cfg->xff_num_trusted_hops ? cfg->xff_num_trusted_hops - 1 : 0)
                         : cfg->xff_num_trusted_hops;
    bool from_xff = (!edge || cfg->xff_num_trusted_hops) && xff &&
                    hcm_xff_pick(xff->value, xff->value_len, skip, client, sizeof(client)) &&
                    hcm_parse_ip(client, &st->client_addr);
    if (from_xff) {
        st->info.downstream_remote_addr = (const struct sockaddr *)&st->client_addr;
        st->info.downstream_remote_addr_len = sizeof(st->client_addr);
    } else {
        memcpy(client, ip, strlen(ip) + 1);
    }
    if (edge) {
        internal = cfg->xff_num_trusted_hops
                       ? from_xff && hcm_addr_internal((const struct sockaddr *)&st->client_addr)
                       : hcm_addr_internal(hc->peer);
        if (ip[0]) {
            if (xff) {
                size_t n = xff->value_len + 2 + strlen(ip);
                char *v = pl_arena_alloc(&st->arena, n + 1);
                memcpy(v, xff->value, xff->value_len);
                memcpy(v + xff->value_len, ", ", 2);
                memcpy(v + xff->value_len + 2, ip, strlen(ip) + 1);
                set(st, &h->headers, "x-forwarded-for", v, n);
            } else {
                set(st, &h->headers, "x-forwarded-for", ip, strlen(ip));
            }
        }
        if (!internal) {
            for (size_t i = 0; i < sizeof(internal_headers) / sizeof(internal_headers[0]); i++)
                pl_headers_remove(&h->headers, internal_headers[i], strlen(internal_headers[i]));
            if (client[0])
                set(st, &h->headers, "x-envoy-external-address", client, strlen(client));
        } else {
            set(st, &h->headers, "x-envoy-internal", "true", 4);
        }
    }
    const char *proto = hc->tls ? "https" : "http";
    if (edge || !pl_headers_get_lit(&h->headers, "x-forwarded-proto"))
        set(st, &h->headers, "x-forwarded-proto", proto, strlen(proto));
    const struct pl_header *rid = pl_headers_get_lit(&h->headers, "x-request-id");
    if (cfg->generate_request_id && (!rid || (edge && !internal))) {
        hcm_uuid4(st->request_id);
        set(st, &h->headers, "x-request-id", st->request_id, 36);
    } else if (rid) {
        size_t n = rid->value_len < sizeof(st->request_id) - 1 ? rid->value_len
                                                               : sizeof(st->request_id) - 1;
        memcpy(st->request_id, rid->value, n);
        st->request_id[n] = '\0';
    }
    if (st->request_id[0])
        st->info.request_id = st->request_id;
    return 0;
}

/* ---- decoding (request) through the filters ---- */

static void drop(struct pl_buf *d)
{
    pl_buf_drain(d, d->len);
}

static void dec_headers(struct hcm_stream *st, uint32_t from)
{
    const struct hcm_config *cfg = CFG(st);
    struct hcm_iter *it = &st->dec;
    for (uint32_t i = from; i < cfg->n_filters; i++) {
        const struct hcm_filter *f = &cfg->filters[i];
        enum pl_filter_status r = PL_FILTER_CONTINUE;
        if (f->vt->decode_headers)
            r = f->vt->decode_headers(&st->fs, f->cfg, st->states[i], it->head, it->headers_end);
        if (st->finished || st->local_complete)
            return;
        if (r == PL_FILTER_STOP && i + 1 < cfg->n_filters) {
            it->stopped = true;
            it->stop_at = i;
            it->headers_pending = true;
            it->data_stop = false;
            return;
        }
    }
    it->headers_pending = false;
}

static void dec_data(struct hcm_stream *st, struct pl_buf *d, bool end, uint32_t from)
{
    const struct hcm_config *cfg = CFG(st);
    struct hcm_iter *it = &st->dec;
    for (uint32_t i = from; i < cfg->n_filters; i++) {
        const struct hcm_filter *f = &cfg->filters[i];
        enum pl_filter_status r = PL_FILTER_CONTINUE;
        if (f->vt->decode_data)
            r = f->vt->decode_data(&st->fs, f->cfg, st->states[i], d, end);
        if (st->finished || st->local_complete) {
            drop(d);
            return;
        }
        if (r == PL_FILTER_STOP && i + 1 < cfg->n_filters) {
            pl_buf_move(&it->buf, d, d->len);
            it->buf_end = end;
            it->stopped = true;
            it->stop_at = i;
            it->data_stop = true;
            return;
        }
    }
    drop(d); /* the terminal filter took what it wanted */
}

static void dec_trailers(struct hcm_stream *st, struct pl_headers *t, uint32_t from)
{
    const struct hcm_config *cfg = CFG(st);
    for (uint32_t i = from; i < cfg->n_filters; i++) {
        const struct hcm_filter *f = &cfg->filters[i];
        enum pl_filter_status r = PL_FILTER_CONTINUE;
        if (f->vt->decode_trailers)
            r = f->vt->decode_trailers(&st->fs, f->cfg, st->states[i], t);
        if (st->finished || st->local_complete)
            return;
        if (r == PL_FILTER_STOP && i + 1 < cfg->n_filters) {
            st->dec.trailers = t;
            st->dec.stopped = true;
            st->dec.stop_at = i;
            st->dec.data_stop = true;
            return;
        }
    }
}

static void continue_decoding(struct pl_filter_stream *fs)
{
    struct hcm_stream *st = ST(fs);
    struct hcm_iter *it = &st->dec;
    if (!it->stopped || st->finished)
        return;
    it->stopped = false;
    uint32_t from = it->stop_at + 1;
    if (it->headers_pending) {
        dec_headers(st, from);
        if (it->stopped || st->finished || st->local_complete)
            return;
        from = 0; /* held body bytes have not passed any filter */
    }
    struct pl_headers *t = it->trailers;
    it->trailers = NULL;
    if (it->buf.len || (it->buf_end && !t)) {
        struct pl_buf d = PL_BUF_INIT;
        pl_buf_move(&d, &it->buf, it->buf.len);
        bool end = it->buf_end && !t;
        it->buf_end = false;
        dec_data(st, &d, end, from);
        pl_buf_free(&d);
        if (it->stopped || st->finished || st->local_complete)
            return;
    }
    if (t)
        dec_trailers(st, t, from);
}

int hcm_stream_on_head(struct hcm_stream *st, struct pl_http_head *h, bool end)
{
    const struct hcm_config *cfg = CFG(st);
    st->fs.request = h;
    st->info.request = h;
    st->info.protocol = h->version == 20   ? PL_PROTO_HTTP2
                        : h->version == 10 ? PL_PROTO_HTTP10
                                           : PL_PROTO_HTTP11;
    pl_counter_inc(cfg->st.rq_total);
    pl_counter_inc(h->version == 20 ? cfg->st.rq_http2_total : cfg->st.rq_http1_total);
    st->fs.decode_start_ns = NOW_NS();
    st->head_req = h->method_len == 4 && !memcmp(h->method, "HEAD", 4);
    const struct pl_header *ct = pl_headers_get_lit(&h->headers, "content-type");
    st->grpc = ct && ct->value_len >= 16 && !strncasecmp(ct->value, "application/grpc", 16) &&
               (ct->value_len == 16 || ct->value[16] == '+' || ct->value[16] == ';');
    if (end) {
        st->remote_complete = true;
        st->info.last_downstream_rx_byte_ns = st->fs.decode_start_ns;
    }
    touch(st);
    if (cfg->request_timeout_ms && !end)
        ev_timer_start(st->hc->loop, &st->req_timer);
    if (sanitize_request(st, h))
        return 0;
    use_current_routes(st);
    st->dec.head = h;
    st->dec.headers_end = end;
    dec_headers(st, 0);
    return 0;
}

/* Opens the downstream's HTTP/2 window for n request bytes unless the upstream is full. */
static void request_consumed(struct hcm_stream *st, size_t n)
{
    struct pl_codec *c = CODEC(st);
    if (!c || !n || !st->hc->http2)
        return;
    if (st->dec_above) {
        st->held_consumed += n;
        return;
    }
    c->vt->consumed(c, st->cs, n);
    hcm_conn_flush(st->hc);
}

int hcm_stream_on_data(struct hcm_stream *st, struct pl_buf *d, bool end)
{
    size_t n = d->len;
    st->info.bytes_received += n;
    touch(st);
    if (end) {
        st->remote_complete = true;
        st->info.last_downstream_rx_byte_ns = NOW_NS();
        ev_timer_stop(st->hc->loop, &st->req_timer);
    }
    if (st->finished || st->local_complete) {
        drop(d);
        request_consumed(st, n);
        if (end && st->local_complete)
            finish(st, false);
        return 0;
    }
    struct hcm_iter *it = &st->dec;
    if (it->stopped) {
        pl_buf_move(&it->buf, d, d->len);
        it->buf_end = end;
        if (it->buf.len > HOLD_LIMIT) {
            pl_counter_inc(CFG(st)->st.rq_too_large);
            local_reply(&st->fs, 413, "Payload Too Large", 17, NULL, "request_payload_too_large",
                        0);
        }
    } else {
        dec_data(st, d, end, 0);
    }
    request_consumed(st, n);
    return 0;
}

int hcm_stream_on_trailers(struct hcm_stream *st, struct pl_headers *t)
{
    touch(st);
    st->remote_complete = true;
    st->info.last_downstream_rx_byte_ns = NOW_NS();
    ev_timer_stop(st->hc->loop, &st->req_timer);
    if (st->finished || st->local_complete) {
        if (st->local_complete)
            finish(st, false);
        return 0;
    }
    if (st->dec.stopped)
        st->dec.trailers = t;
    else
        dec_trailers(st, t, 0);
    return 0;
}

/* ---- encoding (response) through the filters, in reverse ---- */

static void final_head(struct hcm_stream *st, struct pl_http_head *h, bool end)
{
    const struct hcm_config *cfg = CFG(st);
    bool upgraded = st->upgrade && h->status == 101;
    strip_hop_by_hop(&h->headers, upgraded);
    set(st, &h->headers, "server", cfg->server_name, strlen(cfg->server_name));
    char date[40];
    size_t dl = hcm_date(date);
    set(st, &h->headers, "date", date, dl);
    if (st->head_req)
        end = true;
    st->resp = h;
    st->info.response = h;
    st->info.response_code = h->status;
    st->response_started = true;
    st->info.first_downstream_tx_byte_ns = NOW_NS();
    if (h->status >= 100 && h->status < 600)
        pl_counter_inc(cfg->st.rq_xx[h->status / 100]);
    if (!st->remote_complete && !upgraded)
        pl_counter_inc(cfg->st.rq_response_before_rq_complete);
    struct pl_codec *c = CODEC(st);
    if (!c)
        return;
    c->vt->encode_head(c, st->cs, h, end);
    if (upgraded)
        st->hc->refeed = true, hcm_conn_schedule(st->hc); /* bytes held for the tunnel */
    if (end) {
        st->local_complete = true;
        st->info.last_downstream_tx_byte_ns = st->info.first_downstream_tx_byte_ns;
    }
    hcm_conn_flush(st->hc);
    if (end)
        finish(st, false);
}

static void final_data(struct hcm_stream *st, struct pl_buf *d, bool end)
{
    struct pl_codec *c = CODEC(st);
    if (st->local_complete || !c) {
        drop(d);
        return;
    }
    st->info.bytes_sent += d->len;
    if (st->head_req)
        drop(d);
    c->vt->encode_data(c, st->cs, d, end);
    if (end) {
        st->local_complete = true;
        st->info.last_downstream_tx_byte_ns = NOW_NS();
    }
    hcm_conn_flush(st->hc);
    if (end)
        finish(st, false);
}

static void final_trailers(struct hcm_stream *st, struct pl_headers *t)
{
    struct pl_codec *c = CODEC(st);
    if (st->local_complete || !c)
        return;
    st->info.response_trailers = t;
    c->vt->encode_trailers(c, st->cs, t);
    st->local_complete = true;
    st->info.last_downstream_tx_byte_ns = NOW_NS();
    hcm_conn_flush(st->hc);
    finish(st, false);
}

static void enc_headers(struct hcm_stream *st, int from)
{
    const struct hcm_config *cfg = CFG(st);
    struct hcm_iter *it = &st->enc;
    for (int i = from; i >= 0; i--) {
        const struct hcm_filter *f = &cfg->filters[i];
        enum pl_filter_status r = PL_FILTER_CONTINUE;
        if (f->vt->encode_headers)
            r = f->vt->encode_headers(&st->fs, f->cfg, st->states[i], it->head, it->headers_end);
        if (st->finished)
            return;
        if (r == PL_FILTER_STOP) {
            it->stopped = true;
            it->stop_at = (uint32_t)i;
            it->headers_pending = true;
            it->data_stop = false;
            return;
        }
    }
    it->headers_pending = false;
    final_head(st, it->head, it->headers_end);
}

static void enc_data(struct hcm_stream *st, struct pl_buf *d, bool end, int from)
{
    const struct hcm_config *cfg = CFG(st);
    struct hcm_iter *it = &st->enc;
    for (int i = from; i >= 0; i--) {
        const struct hcm_filter *f = &cfg->filters[i];
        enum pl_filter_status r = PL_FILTER_CONTINUE;
        if (f->vt->encode_data)
            r = f->vt->encode_data(&st->fs, f->cfg, st->states[i], d, end);
        if (st->finished) {
            drop(d);
            return;
        }
        if (r == PL_FILTER_STOP) {
            pl_buf_move(&it->buf, d, d->len);
            it->buf_end = end;
            it->stopped = true;
            it->stop_at = (uint32_t)i;
            it->data_stop = true;
            return;
        }
    }
    final_data(st, d, end);
}

static void enc_trailers(struct hcm_stream *st, struct pl_headers *t, int from)
{
    const struct hcm_config *cfg = CFG(st);
    for (int i = from; i >= 0; i--) {
        const struct hcm_filter *f = &cfg->filters[i];
        enum pl_filter_status r = PL_FILTER_CONTINUE;
        if (f->vt->encode_trailers)
            r = f->vt->encode_trailers(&st->fs, f->cfg, st->states[i], t);
        if (st->finished)
            return;
        if (r == PL_FILTER_STOP) {
            st->enc.trailers = t;
            st->enc.stopped = true;
            st->enc.stop_at = (uint32_t)i;
            st->enc.data_stop = true;
            return;
        }
    }
    final_trailers(st, t);
}

/* The first encoder: the filter before the terminal one. */
static int enc_first(const struct hcm_stream *st)
{
    return (int)CFG(st)->n_filters - 2;
}

static void op_encode_head(struct pl_filter_stream *fs, struct pl_http_head *h, bool end)
{
    struct hcm_stream *st = ST(fs);
    if (st->finished || st->response_started || st->enc.head)
        return;
    touch(st);
    st->enc.head = h;
    st->enc.headers_end = end;
    enc_headers(st, enc_first(st));
}

static void op_encode_data(struct pl_filter_stream *fs, struct pl_buf *d, bool end)
{
    struct hcm_stream *st = ST(fs);
    if (st->finished || !st->enc.head) {
        drop(d);
        return;
    }
    touch(st);
    if (st->enc.stopped) {
        pl_buf_move(&st->enc.buf, d, d->len);
        st->enc.buf_end = end;
        if (st->enc.buf.len > HOLD_LIMIT)
            reset_stream(fs, "response_payload_too_large");
        return;
    }
    enc_data(st, d, end, enc_first(st));
}

static void op_encode_trailers(struct pl_filter_stream *fs, struct pl_headers *t)
{
    struct hcm_stream *st = ST(fs);
    if (st->finished || !st->enc.head)
        return;
    if (st->enc.stopped)
        st->enc.trailers = t;
    else
        enc_trailers(st, t, enc_first(st));
}

static void continue_encoding(struct pl_filter_stream *fs)
{
    struct hcm_stream *st = ST(fs);
    struct hcm_iter *it = &st->enc;
    if (!it->stopped || st->finished)
        return;
    it->stopped = false;
    int from = (int)it->stop_at - 1;
    if (it->headers_pending) {
        enc_headers(st, from);
        if (it->stopped || st->finished)
            return;
        from = enc_first(st);
    }
    struct pl_headers *t = it->trailers;
    it->trailers = NULL;
    if (it->buf.len || (it->buf_end && !t)) {
        struct pl_buf d = PL_BUF_INIT;
        pl_buf_move(&d, &it->buf, it->buf.len);
        bool end = it->buf_end && !t;
        it->buf_end = false;
        enc_data(st, &d, end, from);
        pl_buf_free(&d);
        if (it->stopped || st->finished)
            return;
    }
    if (t)
        enc_trailers(st, t, from);
}

/* ---- local replies and resets ---- */

/* gRPC's percent-encoding of grpc-message. */
static char *grpc_message(struct pl_arena *a, const char *s, size_t n, size_t *out_len)
{
    char *o = pl_arena_alloc(a, n * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '%') {
            o[k++] = (char)c;
        } else {
            k += (size_t)snprintf(o + k, 4, "%%%02X", c);
        }
    }
    o[k] = '\0';
    *out_len = k;
    return o;
}

static void local_reply(struct pl_filter_stream *fs, int status, const char *body, size_t len,
                        const struct pl_headers *extra, const char *details, uint32_t flags)
{
    struct hcm_stream *st = ST(fs);
    if (st->finished || st->local_complete)
        return;
    st->info.response_flags |= flags;
    st->info.response_code_details = details;
    if (st->response_started || st->enc.head) {
        reset_stream(fs, details);
        return;
    }
    struct pl_arena *a = &st->arena;
    struct pl_http_head *h = pl_arena_alloc(a, sizeof(*h));
    *h = (struct pl_http_head){.status = status, .content_length = -1};
    char num[24];
    bool end;
    if (st->grpc) {
        h->status = 200;
        pl_headers_add_ref(&h->headers, a, "content-type", 12, "application/grpc", 16);
        int n = snprintf(num, sizeof(num), "%d", hcm_grpc_status(status));
        pl_headers_add_copy(&h->headers, a, "grpc-status", 11, num, (size_t)n);
        if (len) {
            size_t ml;
            char *m = grpc_message(a, body, len, &ml);
            pl_headers_add_ref(&h->headers, a, "grpc-message", 12, m, ml);
        }
        pl_headers_add_ref(&h->headers, a, "content-length", 14, "0", 1);
        end = true;
    } else {
        int n = snprintf(num, sizeof(num), "%zu", len);
        pl_headers_add_copy(&h->headers, a, "content-length", 14, num, (size_t)n);
        if (len)
            pl_headers_add_ref(&h->headers, a, "content-type", 12, "text/plain", 10);
        end = len == 0 || st->head_req;
    }
    for (uint32_t i = 0; extra && i < extra->n; i++)
        pl_headers_add_copy(&h->headers, a, extra->v[i].name, extra->v[i].name_len,
                            extra->v[i].value, extra->v[i].value_len);
    op_encode_head(fs, h, end);
    if (!end && !st->finished) {
        struct pl_buf b = PL_BUF_INIT;
        pl_buf_append(&b, body, len);
        op_encode_data(fs, &b, true);
        pl_buf_free(&b);
    }
}

static void reset_stream(struct pl_filter_stream *fs, const char *details)
{
    struct hcm_stream *st = ST(fs);
    if (st->finished)
        return;
    if (details && !st->info.response_code_details)
        st->info.response_code_details = details;
    pl_counter_inc(CFG(st)->st.rq_tx_reset);
    struct pl_codec *c = CODEC(st);
    if (c) {
        c->vt->reset_stream(c, st->cs, PL_RESET_LOCAL);
        st->codec_gone = true;
    }
    finish(st, true);
    hcm_conn_flush(st->hc);
}

void hcm_stream_on_reset(struct hcm_stream *st, enum pl_reset_reason why)
{
    if (st->finished)
        return;
    st->codec_gone = true;
    if (why == PL_RESET_CONNECTION_FAIL || why == PL_RESET_REMOTE) {
        st->info.response_flags |= PL_RF_DC;
        if (!st->info.response_code_details)
            st->info.response_code_details = "downstream_remote_disconnect";
    } else if (why == PL_RESET_PROTOCOL_ERROR) {
        st->info.response_flags |= PL_RF_DPE;
        if (!st->info.response_code_details)
            st->info.response_code_details = "codec_error";
    }
    pl_counter_inc(CFG(st)->st.rq_rx_reset);
    finish(st, true);
}

static void decoder_watermark(struct pl_filter_stream *fs, bool above)
{
    struct hcm_stream *st = ST(fs);
    struct hcm_conn *hc = st->hc;
    if (st->finished)
        return;
    if (above) {
        st->dec_above++;
        if (!hc->http2 && hc->conn)
            pl_conn_read_disable(hc->conn, true);
        return;
    }
    if (!st->dec_above)
        return;
    st->dec_above--;
    if (!hc->http2 && hc->conn)
        pl_conn_read_disable(hc->conn, false);
    if (!st->dec_above && st->held_consumed) {
        size_t n = st->held_consumed;
        st->held_consumed = 0;
        request_consumed(st, n);
    }
}

void hcm_stream_watermark(struct hcm_stream *st, bool above)
{
    bool now = st->hc->above_high || st->h2_above;
    (void)above;
    if (st->finished || now == st->fs.downstream_above_high)
        return;
    st->fs.downstream_above_high = now;
    const struct hcm_config *cfg = CFG(st);
    for (uint32_t i = cfg->n_filters; i-- > 0;) {
        const struct hcm_filter *f = &cfg->filters[i];
        if (f->vt->on_downstream_watermark)
            f->vt->on_downstream_watermark(&st->fs, f->cfg, st->states[i], now);
        if (st->finished)
            return;
    }
}

/* ---- completion ---- */

static void finish(struct hcm_stream *st, bool reset)
{
    if (st->finished)
        return;
    struct hcm_conn *hc = st->hc;
    const struct hcm_config *cfg = hc->cfg;
    if (!reset && !st->remote_complete && !st->upgrade) {
        /* answered before the request ended: HTTP/2 resets the rest; HTTP/1 closes */
        struct pl_codec *c = CODEC(st);
        if (c && hc->http2)
            c->vt->reset_stream(c, st->cs, PL_RESET_LOCAL);
    }
    st->finished = true;
    st->fs.ended = true;
    ev_timer_stop(hc->loop, &st->idle_timer);
    ev_timer_stop(hc->loop, &st->req_timer);
    st->info.end_ns = NOW_NS();
    if (reset && !st->info.response_code && !(st->info.response_flags & PL_RF_DC))
        st->info.response_flags |= PL_RF_LR;
    if (st->info.request)
        pl_access_log_emit(cfg->access_logs, &st->info);
    pl_gauge_add(cfg->st.rq_active, -1);
    if (!reset)
        pl_counter_inc(cfg->st.rq_completed);
    pl_histogram_record(cfg->st.rq_time,
                        (uint64_t)(st->info.end_ns - st->info.start_mono_ns) / 1000000);
    while (st->dec_above) {
        st->dec_above--;
        if (!hc->http2 && hc->conn)
            pl_conn_read_disable(hc->conn, false);
    }
    /* codec memory (the request head) may go away from here on */
    st->codec_gone = true;
    st->info.request = NULL;
    st->info.response = NULL;
    if (st->prev)
        st->prev->next = st->next;
    else
        hc->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    hc->n_streams--;
    st->next_dead = hc->dead;
    hc->dead = st;
    if (!hc->http2)
        hc->refeed = true; /* a pipelined request may wait in the input */
    hcm_conn_schedule(hc);
}

void hcm_stream_destroy(struct hcm_stream *st)
{
    const struct hcm_config *cfg = st->hc->cfg;
    st->fs.request = NULL;
    for (uint32_t i = 0; i < cfg->n_filters; i++) {
        const struct hcm_filter *f = &cfg->filters[i];
        if (f->vt->on_destroy)
            f->vt->on_destroy(&st->fs, f->cfg, st->states[i]);
    }
    if (st->pinned) /* after on_destroy: filters may hold what the snapshot owns */
        pl_snapshot_unpin(st->pinned, st->fs.worker_id);
    pl_buf_free(&st->dec.buf);
    pl_buf_free(&st->enc.buf);
    pl_arena_free(&st->arena);
    pl_slab_free(&stream_cache, st);
}

static void set_idle_timeout(struct pl_filter_stream *fs, uint64_t ms)
{
    struct hcm_stream *st = ST(fs);
    if (st->finished)
        return;
    st->idle_ms = ms;
    ev_timer_stop(st->hc->loop, &st->idle_timer);
    touch(st); /* restarts it with the new timeout */
}

static const struct pl_filter_stream_ops ops = {
    .set_idle_timeout = set_idle_timeout,
    .continue_decoding = continue_decoding,
    .continue_encoding = continue_encoding,
    .send_local_reply = local_reply,
    .encode_head = op_encode_head,
    .encode_data = op_encode_data,
    .encode_trailers = op_encode_trailers,
    .reset = reset_stream,
    .decoder_watermark = decoder_watermark,
};
