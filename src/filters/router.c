/* The router filter (envoy.filters.http.router): route match, local redirect/direct responses,
 * cluster and host choice, the upstream request through the host's connection pool, route
 * timeout, header mutations, and streaming both ways with watermarks. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "core/fmt.h"
#include "core/log.h"
#include "filters/filter.h"
#include "http/conn_manager.h"
#include "pl_proto_all.h"
#include "router/router.h"
#include "stats/stats.h"
#include "upstream/pool.h"
#include "upstream/upstream.h"

#define BODY_HOLD_LIMIT (1024 * 1024) /* request bytes held while the connection is made */
#define RESET_PREFIX    "upstream connect error or disconnect/reset before headers. reset reason: "

struct router_cfg {
    struct pl_counter no_route, no_cluster, rq_redirect, rq_direct_response, rq_total;
    struct pl_counter rq_reset_after_downstream_response_started;
    bool prepared;
};

struct router_state {
    struct pl_filter_stream *fs;
    struct router_cfg *cfg;
    struct pl_route_match m;
    struct pl_route_ctx rctx;
    const struct pl_cluster_cfg *cluster;
    struct pl_cluster_rt *crt;
    struct pl_host_rt *host;
    struct pl_pool_stream *ps;
    struct pl_buf body;          /* request body waiting for the upstream stream */
    struct pl_headers *trailers; /* request trailers waiting for the upstream stream */
    ev_timer timeout;
    int64_t upstream_start_ns;
    uint64_t timeout_ms;
    size_t unconsumed; /* response bytes not yet reported to the pool (downstream full) */
    uint32_t up_above; /* decoder_watermark(true) we told the HCM about */
    bool started, ready, req_end, req_sent, resp_started, resp_done, held_above;
    bool read_disabled;
};

static int r_compile(const ProtobufCMessage *m, const struct pl_http_filter_compile_ctx *cx,
                     void **out, struct pl_err *err)
{
    const Envoy__Extensions__Filters__Http__Router__V3__Router *r =
        (const Envoy__Extensions__Filters__Http__Router__V3__Router *)m;
    (void)r, (void)cx, (void)err;
    *out = pl_calloc(1, sizeof(struct router_cfg));
    return 0;
}

static void r_free_cfg(void *c)
{
    free(c);
}

static struct pl_counter ctr(const struct pl_http_filter_compile_ctx *cx, const char *name)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s%s", cx->stat_prefix ? cx->stat_prefix : "", name);
    return pl_stats_counter(cx->stats, buf);
}

static int r_prepare(void *p, const struct pl_http_filter_compile_ctx *cx, struct pl_err *err)
{
    (void)err;
    struct router_cfg *c = p;
    if (!cx->stats)
        return 0;
    c->no_route = ctr(cx, "no_route");
    c->no_cluster = ctr(cx, "no_cluster");
    c->rq_redirect = ctr(cx, "rq_redirect");
    c->rq_direct_response = ctr(cx, "rq_direct_response");
    c->rq_total = ctr(cx, "rq_total");
    c->rq_reset_after_downstream_response_started =
        ctr(cx, "rq_reset_after_downstream_response_started");
    c->prepared = true;
    return 0;
}

static void count(const struct router_cfg *c, struct pl_counter x)
{
    if (c->prepared)
        pl_counter_inc(x);
}

/* ---- replies ---- */

static void reply(struct router_state *rs, int status, const char *body, const char *details,
                  uint32_t flags)
{
    struct pl_filter_stream *fs = rs->fs;
    if (rs->crt && status >= 500)
        pl_upstream_count_status(rs->crt, (unsigned)status);
    fs->ops->send_local_reply(fs, status, body, strlen(body), NULL, details, flags);
}

/* A redirect or direct response built from the route (with its response header mutations). */
static void route_reply(struct router_state *rs, struct pl_http_head *req)
{
    struct pl_filter_stream *fs = rs->fs;
    const struct pl_route_info *ri = rs->m.info;
    struct pl_http_head *h = pl_arena_alloc(fs->arena, sizeof(*h));
    *h = (struct pl_http_head){.status = ri->status, .content_length = -1};
    size_t blen = 0;
    if (ri->kind == PL_ROUTE_REDIRECT) {
        const char *loc;
        size_t len;
        pl_router_redirect_location(&rs->m, req, &rs->rctx, fs->arena, &loc, &len);
        pl_headers_add_ref(&h->headers, fs->arena, "location", 8, loc, len);
        count(rs->cfg, rs->cfg->rq_redirect);
        fs->info->response_code_details = "direct_response";
    } else {
        blen = ri->body ? ri->body_len : 0;
        if (blen)
            pl_headers_add_ref(&h->headers, fs->arena, "content-type", 12, "text/plain", 10);
        count(rs->cfg, rs->cfg->rq_direct_response);
        fs->info->response_code_details = "direct_response";
    }
    char num[24];
    int n = snprintf(num, sizeof(num), "%zu", blen);
    pl_headers_add_copy(&h->headers, fs->arena, "content-length", 14, num, (size_t)n);
    pl_router_apply_response(&rs->m, h, &rs->rctx, fs->arena);
    fs->ops->encode_head(fs, h, blen == 0);
    if (blen && !fs->ended) {
        struct pl_buf b = PL_BUF_INIT;
        pl_buf_append(&b, ri->body, blen);
        fs->ops->encode_data(fs, &b, true);
        pl_buf_free(&b);
    }
}

/* ---- upstream request ---- */

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct router_state *rs = w->data;
    if (rs->fs->ended || rs->resp_done)
        return;
    if (rs->crt) {
        pl_counter_inc(PL_CLUSTER_COUNTER(&rs->crt->stats, upstream_rq_timeout));
        pl_upstream_count_status(rs->crt, 504);
    }
    pl_pool_stream_release(rs->ps);
    rs->ps = NULL;
    if (rs->resp_started) {
        rs->fs->info->response_flags |= PL_RF_UT;
        count(rs->cfg, rs->cfg->rq_reset_after_downstream_response_started);
        rs->fs->ops->reset(rs->fs, "upstream_response_timeout");
        return;
    }
    rs->fs->ops->send_local_reply(rs->fs, 504, "upstream request timeout", 24, NULL,
                                  "upstream_response_timeout", PL_RF_UT);
}

/* The whole request went upstream: the route timeout starts (Envoy's semantics). */
static void request_sent(struct router_state *rs)
{
    rs->req_sent = true;
    rs->fs->info->last_upstream_tx_byte_ns = pl_stream_info_now_ns();
    if (rs->timeout_ms && !rs->resp_done && !ev_is_active(&rs->timeout)) {
        ev_timer_set(&rs->timeout, (double)rs->timeout_ms / 1000.0, 0.);
        ev_timer_start(rs->fs->loop, &rs->timeout);
    }
}

static void on_ready(void *user, struct pl_pool_stream *s)
{
    struct router_state *rs = user;
    rs->ps = s;
    rs->ready = true;
    struct pl_filter_stream *fs = rs->fs;
    if (fs->ended)
        return;
    socklen_t len = 0;
    const struct sockaddr *la = pl_pool_stream_local_addr(s, &len);
    if (la) {
        fs->info->upstream_local_addr = la;
        fs->info->upstream_local_addr_len = len;
    }
    fs->info->first_upstream_tx_byte_ns = pl_stream_info_now_ns();
    if (fs->downstream_above_high && !rs->read_disabled) {
        rs->read_disabled = true; /* the downstream was full before the upstream was ready */
        pl_pool_stream_read_disable(s, true);
    }
    bool end = rs->req_end && rs->body.len == 0 && !rs->trailers;
    count(rs->cfg, rs->cfg->rq_total);
    if (pl_pool_stream_encode_head(s, fs->request, end) < 0)
        return;
    if (end) {
        request_sent(rs);
        return;
    }
    if (rs->body.len || (rs->req_end && !rs->trailers)) {
        bool dend = rs->req_end && !rs->trailers;
        pl_pool_stream_encode_data(s, &rs->body, dend);
        if (dend)
            request_sent(rs);
    }
    if (rs->trailers) {
        pl_pool_stream_encode_trailers(s, rs->trailers);
        rs->trailers = NULL;
        request_sent(rs);
    }
    if (rs->held_above) {
        rs->held_above = false;
        fs->ops->decoder_watermark(fs, false);
    }
}

static void on_failure(void *user, enum pl_pool_failure why, const char *reason)
{
    (void)reason;
    struct router_state *rs = user;
    if (rs->fs->ended)
        return;
    if (why == PL_POOL_OVERFLOW)
        reply(rs, 503, RESET_PREFIX "overflow", "upstream_reset_before_response_started{overflow}",
              PL_RF_UO);
    else
        reply(rs, 503, RESET_PREFIX "connection failure",
              "upstream_reset_before_response_started{connection_failure}", PL_RF_UF);
}

static void on_head(void *user, struct pl_http_head *h, bool end, bool info)
{
    struct router_state *rs = user;
    struct pl_filter_stream *fs = rs->fs;
    if (fs->ended || info)
        return; /* 100-continue was answered by the HCM already */
    rs->resp_started = true;
    if (end)
        rs->resp_done = true;
    int64_t now = pl_stream_info_now_ns();
    fs->info->first_upstream_rx_byte_ns = now;
    if (end)
        fs->info->last_upstream_rx_byte_ns = now;
    if (rs->crt)
        pl_upstream_count_status(rs->crt, (unsigned)h->status);
    char ms[PL_FMT_U64_MAX];
    int64_t took = (now - rs->upstream_start_ns) / 1000000;
    size_t n = pl_fmt_u64(ms, took > 0 ? (uint64_t)took : 0);
    pl_headers_set_lit(&h->headers, fs->arena, "x-envoy-upstream-service-time", ms, n);
    pl_router_apply_response(&rs->m, h, &rs->rctx, fs->arena);
    fs->info->response_code_details = "via_upstream";
    if (end)
        ev_timer_stop(fs->loop, &rs->timeout);
    fs->ops->encode_head(fs, h, end);
}

static void on_data(void *user, struct pl_buf *d, bool end)
{
    struct router_state *rs = user;
    struct pl_filter_stream *fs = rs->fs;
    if (fs->ended) {
        pl_buf_drain(d, d->len);
        return;
    }
    size_t n = d->len;
    if (end) {
        rs->resp_done = true;
        fs->info->last_upstream_rx_byte_ns = pl_stream_info_now_ns();
        ev_timer_stop(fs->loop, &rs->timeout);
    }
    struct pl_pool_stream *ps = rs->ps;
    fs->ops->encode_data(fs, d, end);
    if (fs->ended || !ps)
        return;
    if (fs->downstream_above_high)
        rs->unconsumed += n;
    else
        pl_pool_stream_consumed(ps, n);
}

static void on_trailers(void *user, struct pl_headers *t)
{
    struct router_state *rs = user;
    struct pl_filter_stream *fs = rs->fs;
    if (fs->ended)
        return;
    rs->resp_done = true;
    fs->info->last_upstream_rx_byte_ns = pl_stream_info_now_ns();
    ev_timer_stop(fs->loop, &rs->timeout);
    fs->ops->encode_trailers(fs, t);
}

static void on_reset(void *user, enum pl_reset_reason why, const char *reason)
{
    struct router_state *rs = user;
    struct pl_filter_stream *fs = rs->fs;
    if (fs->ended)
        return;
    ev_timer_stop(fs->loop, &rs->timeout);
    uint32_t flag = why == PL_RESET_REMOTE ? PL_RF_UR : PL_RF_UC;
    if (rs->resp_started) {
        fs->info->response_flags |= flag;
        count(rs->cfg, rs->cfg->rq_reset_after_downstream_response_started);
        fs->ops->reset(fs, "upstream_reset_after_response_started");
        return;
    }
    char body[160];
    snprintf(body, sizeof(body), RESET_PREFIX "%s", reason ? reason : "connection termination");
    reply(rs, 503, body, "upstream_reset_before_response_started", flag);
}

static void on_watermark(void *user, bool above)
{
    struct router_state *rs = user;
    struct pl_filter_stream *fs = rs->fs;
    if (fs->ended)
        return;
    if (above) {
        rs->up_above++;
        fs->ops->decoder_watermark(fs, true);
    } else if (rs->up_above) {
        rs->up_above--;
        fs->ops->decoder_watermark(fs, false);
    }
}

static const struct pl_pool_callbacks pool_cbs = {
    .on_ready = on_ready,
    .on_failure = on_failure,
    .on_head = on_head,
    .on_data = on_data,
    .on_trailers = on_trailers,
    .on_reset = on_reset,
    .on_watermark = on_watermark,
};

/* x-envoy-upstream-rq-timeout-ms (left only on internal requests by the HCM) overrides. */
static void header_timeout(struct router_state *rs, struct pl_http_head *h)
{
    const struct pl_header *t = pl_headers_get_lit(&h->headers, "x-envoy-upstream-rq-timeout-ms");
    if (!t)
        return;
    uint64_t v = 0;
    bool ok = t->value_len > 0 && t->value_len < 12;
    for (uint32_t i = 0; ok && i < t->value_len; i++) {
        if (t->value[i] < '0' || t->value[i] > '9')
            ok = false;
        else
            v = v * 10 + (uint64_t)(t->value[i] - '0');
    }
    if (ok)
        rs->timeout_ms = v;
    pl_headers_remove(&h->headers, "x-envoy-upstream-rq-timeout-ms", 30);
}

/* auto_host_rewrite: Host becomes the chosen host's DNS name (STRICT_DNS / LOGICAL_DNS
 * clusters); the name is the endpoint's whose port matches, when that is unambiguous. */
static void auto_host(struct router_state *rs, struct pl_http_head *h)
{
    const struct pl_cluster_cfg *c = rs->cluster;
    uint16_t port = 0;
    const struct sockaddr *sa = (const struct sockaddr *)&rs->host->addr;
    if (sa->sa_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    else if (sa->sa_family == AF_INET6)
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    const char *name = NULL;
    for (size_t i = 0; i < c->n_endpoints; i++) {
        const struct pl_endpoint_cfg *e = &c->endpoints[i];
        if (!e->hostname || e->port != port)
            continue;
        if (name && strcmp(name, e->hostname))
            return; /* ambiguous */
        name = e->hostname;
    }
    if (name) {
        h->authority = name;
        h->authority_len = (uint32_t)strlen(name);
    }
}

static enum pl_filter_status route_to_cluster(struct router_state *rs, struct pl_http_head *h,
                                              bool end)
{
    struct pl_filter_stream *fs = rs->fs;
    const struct pl_route_info *ri = rs->m.info;
    char name[256];
    if (rs->m.cluster_len == 0 || rs->m.cluster_len >= sizeof(name)) {
        count(rs->cfg, rs->cfg->no_cluster);
        fs->ops->send_local_reply(fs, ri->cluster_not_found_status, "", 0, NULL,
                                  "cluster_not_found", PL_RF_NC);
        return PL_FILTER_STOP;
    }
    memcpy(name, rs->m.cluster, rs->m.cluster_len);
    name[rs->m.cluster_len] = '\0';
    rs->cluster = fs->snap ? pl_snapshot_cluster(fs->snap, name) : NULL;
    if (!rs->cluster) {
        count(rs->cfg, rs->cfg->no_cluster);
        fs->ops->send_local_reply(fs, ri->cluster_not_found_status, "", 0, NULL,
                                  "cluster_not_found", PL_RF_NC);
        return PL_FILTER_STOP;
    }
    fs->info->upstream_cluster = rs->cluster->name;
    rs->crt = pl_upstream_cluster(rs->cluster);
    pl_upstream_cluster_ref(rs->crt);
    struct pl_lb_ctx lb = {0};
    lb.has_hash = pl_router_hash(&rs->m, h, &rs->rctx, &lb.hash);
    rs->host = pl_upstream_pick(rs->crt, &lb);
    if (!rs->host) {
        reply(rs, 503, "no healthy upstream", "no_healthy_upstream", PL_RF_UH);
        return PL_FILTER_STOP;
    }
    pl_upstream_host_ref(rs->host);
    fs->info->upstream_host = rs->host->addr_str;
    rs->rctx.upstream_host = rs->host->addr_str;
    rs->timeout_ms = ri->timeout_ms > 0 ? (uint64_t)ri->timeout_ms : 0;
    header_timeout(rs, h);
    if (ri->idle_timeout_ms >= 0)
        fs->ops->set_idle_timeout(fs, (uint64_t)ri->idle_timeout_ms);
    pl_router_apply_request(&rs->m, h, &rs->rctx, fs->arena);
    if (ri->auto_host_rewrite)
        auto_host(rs, h);
    if (rs->timeout_ms) {
        char v[PL_FMT_U64_MAX];
        size_t n = pl_fmt_u64(v, rs->timeout_ms);
        pl_headers_set_lit(&h->headers, fs->arena, "x-envoy-expected-rq-timeout-ms", v, n);
    }
    rs->req_end = end;
    rs->started = true;
    rs->upstream_start_ns = pl_stream_info_now_ns();
    struct pl_pool *pool = pl_pool_get(fs->loop, rs->host, rs->cluster, rs->crt);
    struct pl_pool_stream *ps = pl_pool_new_stream(pool, &pool_cbs, rs);
    rs->ps = ps;
    return PL_FILTER_STOP;
}

static enum pl_filter_status r_decode_headers(struct pl_filter_stream *fs, void *cfg, void *state,
                                              struct pl_http_head *h, bool end)
{
    struct router_state *rs = state;
    rs->fs = fs;
    rs->cfg = cfg;
    pl_buf_init(&rs->body);
    ev_init(&rs->timeout, timeout_cb);
    rs->timeout.data = rs;
    rs->rctx = (struct pl_route_ctx){
        .peer = fs->peer, .local = fs->local, .tls = fs->tls, .sni = fs->sni, .request = h};
    if (!fs->routes || pl_router_match(fs->routes, h, &rs->rctx, pl_hcm_random(), &rs->m) < 0) {
        count(rs->cfg, rs->cfg->no_route);
        fs->ops->send_local_reply(fs, 404, "", 0, NULL, "route_not_found", PL_RF_NR);
        return PL_FILTER_STOP;
    }
    if (rs->m.info->name && *rs->m.info->name)
        fs->info->route_name = rs->m.info->name;
    switch (rs->m.info->kind) {
    case PL_ROUTE_REDIRECT:
    case PL_ROUTE_DIRECT_RESPONSE:
        route_reply(rs, h);
        return PL_FILTER_STOP;
    case PL_ROUTE_CLUSTER:
        return route_to_cluster(rs, h, end);
    }
    return PL_FILTER_STOP;
}

static enum pl_filter_status r_decode_data(struct pl_filter_stream *fs, void *cfg, void *state,
                                           struct pl_buf *d, bool end)
{
    (void)cfg;
    struct router_state *rs = state;
    if (!rs->started || fs->ended) {
        pl_buf_drain(d, d->len);
        return PL_FILTER_STOP;
    }
    if (end)
        rs->req_end = true;
    if (!rs->ready) {
        pl_buf_move(&rs->body, d, d->len);
        if (rs->body.len > BODY_HOLD_LIMIT && !rs->held_above) {
            rs->held_above = true;
            fs->ops->decoder_watermark(fs, true);
        }
        return PL_FILTER_STOP;
    }
    pl_pool_stream_encode_data(rs->ps, d, end);
    if (end)
        request_sent(rs);
    return PL_FILTER_STOP;
}

static enum pl_filter_status r_decode_trailers(struct pl_filter_stream *fs, void *cfg, void *state,
                                               struct pl_headers *t)
{
    (void)cfg;
    struct router_state *rs = state;
    if (!rs->started || fs->ended)
        return PL_FILTER_STOP;
    rs->req_end = true;
    if (!rs->ready) {
        rs->trailers = t;
        return PL_FILTER_STOP;
    }
    pl_pool_stream_encode_trailers(rs->ps, t);
    request_sent(rs);
    return PL_FILTER_STOP;
}

static void r_watermark(struct pl_filter_stream *fs, void *cfg, void *state, bool above)
{
    (void)cfg;
    struct router_state *rs = state;
    if (!rs->ps || fs->ended)
        return;
    if (above && !rs->read_disabled) {
        rs->read_disabled = true;
        pl_pool_stream_read_disable(rs->ps, true);
    } else if (!above) {
        if (rs->read_disabled) {
            rs->read_disabled = false;
            pl_pool_stream_read_disable(rs->ps, false);
        }
        size_t n = rs->unconsumed;
        rs->unconsumed = 0;
        pl_pool_stream_consumed(rs->ps, n);
    }
}

static void r_destroy(struct pl_filter_stream *fs, void *cfg, void *state)
{
    (void)cfg;
    struct router_state *rs = state;
    if (!rs->fs)
        return; /* decode_headers never ran */
    ev_timer_stop(fs->loop, &rs->timeout);
    if (rs->ps)
        pl_pool_stream_release(rs->ps);
    rs->ps = NULL;
    pl_buf_free(&rs->body);
    if (rs->host)
        pl_upstream_host_unref(rs->host);
    if (rs->crt)
        pl_upstream_cluster_unref(rs->crt);
    rs->host = NULL;
    rs->crt = NULL;
}

const struct pl_http_filter_vtable pl_filter_router = {
    .name = "envoy.filters.http.router",
    .config = &envoy__extensions__filters__http__router__v3__router__descriptor,
    .terminal = true,
    .state_size = sizeof(struct router_state),
    .compile = r_compile,
    .free_cfg = r_free_cfg,
    .prepare = r_prepare,
    .decode_headers = r_decode_headers,
    .decode_data = r_decode_data,
    .decode_trailers = r_decode_trailers,
    .on_downstream_watermark = r_watermark,
    .on_destroy = r_destroy,
};
