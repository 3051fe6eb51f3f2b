/* tcp_proxy: one upstream connection per downstream connection, bytes relayed both ways with
 * watermark backpressure and half-close (Envoy's envoy.filters.network.tcp_proxy). */
#include "net/tcp_proxy.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/publish.h"
#include "config/snapshot.h"
#include "core/log.h"
#include "http/access_log.h"
#include "net/conn.h"
#include "upstream/upstream.h"
#include "pl_proto_all.h"

#define TP_T  Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy
#define TP(x) ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__##x

#define DEFAULT_IDLE_S 3600.0 /* Envoy: idle_timeout defaults to 1 hour */

struct tp_cluster_stats {
    struct pl_counter cx_total, connect_fail, connect_timeout, rx_bytes, tx_bytes, none_healthy;
    struct pl_gauge cx_active;
};

struct tp_cluster {
    char *name;
    uint32_t weight;
    struct tp_cluster_stats st;
};

struct tp_cfg {
    char *stat_prefix;
    struct tp_cluster *clusters;
    size_t n_clusters;
    uint64_t total_weight;
    double idle_timeout_s; /* 0: none */
    uint32_t max_connect_attempts;
    struct pl_access_logs *logs;
    struct {
        struct pl_counter cx_total, rx_bytes, tx_bytes, idle_timeout, flush_total;
    } st;
};

struct tp_session {
    struct pl_net_accepted acc; /* first: the worker's close/drain calls hand us &acc.wc */
    const struct tp_cfg *cfg;
    struct ev_loop *loop;
    struct pl_conn *down, *up;
    struct tp_cluster *cl;
    const struct pl_cluster_cfg *ccfg; /* cl in the session's (pinned) snapshot, or NULL */
    uint32_t attempts;
    bool up_connected;
    bool down_reading_held; /* downstream reading disabled until the upstream connects */
    ev_timer idle;
    double last_activity;
    uint64_t bytes_seen; /* sum of byte totals at the last idle check */
    char upstream_host[64];
    struct pl_stream_info si;
    struct sockaddr_storage peer, local;
    socklen_t peer_len, local_len;
};

/* ---- config ---- */

static void cfg_free(void *p)
{
    struct tp_cfg *c = p;
    if (!c)
        return;
    for (size_t i = 0; i < c->n_clusters; i++)
        free(c->clusters[i].name);
    free(c->clusters);
    free(c->stat_prefix);
    pl_access_logs_free(c->logs);
    free(c);
}

static double duration_s(const Google__Protobuf__Duration *d, double dflt)
{
    return d ? (double)d->seconds + d->nanos / 1e9 : dflt;
}

static int tp_compile(const ProtobufCMessage *m, const struct pl_compile_ctx *cx, void **out,
                      struct pl_err *err)
{
    const TP_T *t = (const TP_T *)m;
    struct tp_cfg *c = pl_calloc(1, sizeof(*c));
    c->stat_prefix = pl_strdup(t->stat_prefix);
    c->idle_timeout_s = duration_s(t->idle_timeout, DEFAULT_IDLE_S);
    c->max_connect_attempts = t->max_connect_attempts ? t->max_connect_attempts->value : 1;
    if (c->max_connect_attempts == 0)
        c->max_connect_attempts = 1;
    if (t->cluster_specifier_case == TP(CLUSTER_SPECIFIER_CLUSTER)) {
        c->clusters = pl_calloc(1, sizeof(*c->clusters));
        c->clusters[0] = (struct tp_cluster){.name = pl_strdup(t->cluster), .weight = 1};
        c->n_clusters = 1;
    } else if (t->cluster_specifier_case == TP(CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS) &&
               t->weighted_clusters->n_clusters > 0) {
        const Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster *w =
            t->weighted_clusters;
        c->clusters = pl_calloc(w->n_clusters, sizeof(*c->clusters));
        for (size_t i = 0; i < w->n_clusters; i++) {
            c->clusters[c->n_clusters++] = (struct tp_cluster){
                .name = pl_strdup(w->clusters[i]->name), .weight = w->clusters[i]->weight};
            c->total_weight += w->clusters[i]->weight;
        }
        if (c->total_weight == 0) {
            cfg_free(c);
            return pl_err_add(err, NULL, 0, 0, NULL,
                              "listener '%s': tcp_proxy '%s': weighted_clusters: the weights "
                              "must not all be 0",
                              cx->listener_name, t->stat_prefix);
        }
    } else {
        cfg_free(c);
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "listener '%s': tcp_proxy '%s': one of cluster or weighted_clusters "
                          "is required",
                          cx->listener_name, t->stat_prefix);
    }
    if (c->total_weight == 0)
        c->total_weight = 1;
    if (t->n_access_log) {
        char *path = pl_asprintf("listener '%s': tcp_proxy.access_log", cx->listener_name);
        int rc = pl_access_log_compile(
            (const Envoy__Config__Accesslog__V3__AccessLog *const *)t->access_log, t->n_access_log,
            path, &c->logs, err);
        free(path);
        if (rc < 0) {
            cfg_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

static struct pl_counter counter(struct pl_stats *st, const char *scope, const char *name)
{
    char buf[320];
    snprintf(buf, sizeof(buf), "%s%s", scope, name);
    return pl_stats_counter(st, buf);
}

static int tp_prepare(void *p, const struct pl_snapshot *snap, struct pl_stats *stats,
                      struct pl_err *err)
{
    struct tp_cfg *c = p;
    char scope[256];
    snprintf(scope, sizeof(scope), "tcp.%s.", c->stat_prefix);
    c->st.cx_total = counter(stats, scope, "downstream_cx_total");
    c->st.rx_bytes = counter(stats, scope, "downstream_cx_rx_bytes_total");
    c->st.tx_bytes = counter(stats, scope, "downstream_cx_tx_bytes_total");
    c->st.idle_timeout = counter(stats, scope, "idle_timeout");
    c->st.flush_total = counter(stats, scope, "upstream_flush_total");
    int rc = 0;
    for (size_t i = 0; i < c->n_clusters; i++) {
        struct tp_cluster *cl = &c->clusters[i];
        if (!pl_snapshot_cluster(snap, cl->name))
            rc = pl_err_add(err, NULL, 0, 0, NULL, "tcp_proxy '%s': unknown cluster '%s'",
                            c->stat_prefix, cl->name);
        snprintf(scope, sizeof(scope), "cluster.%s.", cl->name);
        cl->st.cx_total = counter(stats, scope, "upstream_cx_total");
        cl->st.connect_fail = counter(stats, scope, "upstream_cx_connect_fail");
        cl->st.connect_timeout = counter(stats, scope, "upstream_cx_connect_timeout");
        cl->st.rx_bytes = counter(stats, scope, "upstream_cx_rx_bytes_total");
        cl->st.tx_bytes = counter(stats, scope, "upstream_cx_tx_bytes_total");
        cl->st.none_healthy = counter(stats, scope, "upstream_cx_none_healthy");
        snprintf(scope, sizeof(scope), "cluster.%s.upstream_cx_active", cl->name);
        cl->st.cx_active = pl_stats_gauge(stats, scope);
    }
    return rc;
}

/* ---- picking ---- */

static __thread uint64_t rng_state;

static uint64_t rng(void)
{
    if (!rng_state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rng_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&rng_state;
        rng_state |= 1;
    }
    rng_state ^= rng_state >> 12; /* xorshift64* */
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static struct tp_cluster *pick_cluster(const struct tp_cfg *c)
{
    if (c->n_clusters == 1)
        return &c->clusters[0];
    uint64_t r = rng() % c->total_weight;
    for (size_t i = 0; i < c->n_clusters; i++) {
        if (r < c->clusters[i].weight)
            return &c->clusters[i];
        r -= c->clusters[i].weight;
    }
    return &c->clusters[c->n_clusters - 1];
}

/* The host for the next connection attempt, from the cluster's load balancer on this worker.
 * Returns false when the cluster has no usable host. */
static bool pick_host(const struct pl_cluster_cfg *cfg, const struct sockaddr_storage *local,
                      socklen_t local_len, struct sockaddr_storage *addr, socklen_t *len,
                      char *addr_str, size_t cap)
{
    if (!cfg)
        return false;
    struct pl_lb_ctx ctx = {.orig_dst = (const struct sockaddr *)local, .orig_dst_len = local_len};
    struct pl_host_rt *h = pl_upstream_pick(pl_upstream_cluster(cfg), &ctx);
    if (!h || h->addrlen == 0)
        return false;
    memcpy(addr, &h->addr, h->addrlen); /* h is only valid in this loop iteration */
    *len = h->addrlen;
    snprintf(addr_str, cap, "%s", h->addr_str);
    return true;
}

/* ---- session ---- */

static void idle_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void up_connect(struct tp_session *s);
static const struct pl_conn_callbacks down_cb, up_cb;
static const struct pl_conn_handler_vtable tp_handler;

static void up_closed(struct tp_session *s)
{
    pl_gauge_add(s->cl->st.cx_active, -1);
    s->up = NULL;
    s->up_connected = false;
}

/* Ends the session: both connections are already closed or handed off (flush-close). */
static void session_free(struct tp_session *s)
{
    ev_timer_stop(s->loop, &s->idle);
    if (s->cfg->logs) {
        s->si.end_ns = pl_stream_info_now_ns();
        pl_access_log_emit(s->cfg->logs, &s->si);
    }
    pl_net_accepted_release(&s->acc);
    free(s);
}

static void close_up(struct tp_session *s, bool flush)
{
    if (!s->up)
        return;
    if (flush && s->up_connected && s->up->out.len > 0) {
        pl_counter_inc(s->cfg->st.flush_total);
        pl_conn_close(s->up, PL_CONN_CLOSE_FLUSH);
    } else {
        pl_conn_close(s->up, PL_CONN_CLOSE_NOW);
    }
    up_closed(s);
}

/* Closes everything now (idle timeout, worker close, connect failures). */
static void session_abort(struct tp_session *s)
{
    close_up(s, false);
    if (s->down) {
        pl_conn_close(s->down, PL_CONN_CLOSE_NOW);
        s->down = NULL;
    }
    session_free(s);
}

static void activity(struct tp_session *s)
{
    s->last_activity = ev_now(s->loop);
}

static void down_data(struct pl_conn *c, struct pl_buf *in, bool end_stream, void *arg)
{
    (void)c;
    struct tp_session *s = arg;
    activity(s);
    s->si.bytes_received += in->len;
    if (s->up)
        pl_conn_write(s->up, in, in->len, end_stream);
}

static void up_data(struct pl_conn *c, struct pl_buf *in, bool end_stream, void *arg)
{
    (void)c;
    struct tp_session *s = arg;
    activity(s);
    s->si.bytes_sent += in->len;
    if (!s->si.first_upstream_rx_byte_ns)
        s->si.first_upstream_rx_byte_ns = pl_stream_info_now_ns();
    pl_conn_write(s->down, in, in->len, end_stream);
}

static void down_event(struct pl_conn *c, enum pl_conn_event ev, void *arg)
{
    (void)c;
    struct tp_session *s = arg;
    if (ev != PL_CONN_EV_CLOSED)
        return;     /* CONNECTED needs nothing; idle is handled over both sides by the session */
    s->down = NULL; /* freed after we return */
    if (!s->si.response_flags && c->err_text[0])
        s->si.response_flags |= PL_RF_DR;
    close_up(s, true);
    session_free(s);
}

static void up_event(struct pl_conn *c, enum pl_conn_event ev, void *arg)
{
    struct tp_session *s = arg;
    switch (ev) {
    case PL_CONN_EV_CONNECTED:
        s->up_connected = true;
        if (s->down_reading_held) {
            s->down_reading_held = false;
            pl_conn_read_disable(s->down, false);
        }
        return;
    case PL_CONN_EV_IDLE_TIMEOUT:
        return;
    case PL_CONN_EV_CONNECT_FAILED:
    case PL_CONN_EV_CONNECT_TIMEOUT:
        if (ev == PL_CONN_EV_CONNECT_FAILED)
            pl_counter_inc(s->cl->st.connect_fail);
        else
            pl_counter_inc(s->cl->st.connect_timeout);
        pl_log_debug("tcp", "tcp_proxy '%s': upstream %s: %s", s->cfg->stat_prefix,
                     s->upstream_host, c->err_text);
        up_closed(s);
        if (s->attempts < s->cfg->max_connect_attempts) {
            up_connect(s);
            return;
        }
        s->si.response_flags |= PL_RF_UF;
        session_abort(s);
        return;
    case PL_CONN_EV_CLOSED:
        up_closed(s);
        if (s->down) { /* deliver what the upstream sent, then close */
            pl_conn_close(s->down, PL_CONN_CLOSE_FLUSH);
            s->down = NULL;
        }
        session_free(s);
        return;
    }
}

/* A slow reader on one side stops reading on the other. */
static void down_high(struct pl_conn *c, void *arg)
{
    (void)c;
    struct tp_session *s = arg;
    if (s->up)
        pl_conn_read_disable(s->up, true);
}

static void down_low(struct pl_conn *c, void *arg)
{
    (void)c;
    struct tp_session *s = arg;
    if (s->up)
        pl_conn_read_disable(s->up, false);
}

static void up_high(struct pl_conn *c, void *arg)
{
    (void)c;
    struct tp_session *s = arg;
    if (s->down)
        pl_conn_read_disable(s->down, true);
}

static void up_low(struct pl_conn *c, void *arg)
{
    (void)c;
    struct tp_session *s = arg;
    if (s->down)
        pl_conn_read_disable(s->down, false);
}

static const struct pl_conn_callbacks down_cb = {
    .on_data = down_data,
    .on_event = down_event,
    .on_high_watermark = down_high,
    .on_low_watermark = down_low,
};

static const struct pl_conn_callbacks up_cb = {
    .on_data = up_data,
    .on_event = up_event,
    .on_high_watermark = up_high,
    .on_low_watermark = up_low,
};

/* Starts one connection attempt; on no host or a failed socket() the session ends. */
static void up_connect(struct tp_session *s)
{
    s->attempts++;
    struct sockaddr_storage addr;
    socklen_t len;
    if (!pick_host(s->ccfg, &s->local, s->local_len, &addr, &len, s->upstream_host,
                   sizeof(s->upstream_host))) {
        pl_counter_inc(s->cl->st.none_healthy);
        s->si.response_flags |= PL_RF_UH;
        pl_log_debug("tcp", "tcp_proxy '%s': cluster '%s' has no host", s->cfg->stat_prefix,
                     s->cl->name);
        session_abort(s);
        return;
    }
    s->si.upstream_host = s->upstream_host;
    struct pl_conn_opts o = {
        .cb = &up_cb,
        .arg = s,
        .transport = s->ccfg->transport, /* the cluster's transport_socket (TLS) */
        .transport_cfg = s->ccfg->transport_cfg,
        .buffer_limit = s->ccfg->per_connection_buffer_limit_bytes,
    };
    struct pl_err err = PL_ERR_INIT;
    pl_counter_inc(s->cl->st.cx_total);
    if (pl_conn_connect(s->loop, (struct sockaddr *)&addr, len,
                        s->ccfg->connect_timeout_ms / 1000.0, &o, &s->up, &err) < 0) {
        pl_counter_inc(s->cl->st.connect_fail);
        pl_log_warn("tcp", "tcp_proxy '%s': upstream %s: %s", s->cfg->stat_prefix, s->upstream_host,
                    err.n ? err.v[0].msg : "connect failed");
        pl_err_free(&err);
        s->si.response_flags |= PL_RF_UF;
        session_abort(s);
        return;
    }
    pl_gauge_add(s->cl->st.cx_active, 1);
    pl_conn_count_bytes(s->up, &s->cl->st.rx_bytes, &s->cl->st.tx_bytes);
}

static void idle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct tp_session *s = t->data;
    uint64_t seen = 0;
    if (s->down)
        seen += s->down->bytes_read + s->down->bytes_written;
    if (s->up)
        seen += s->up->bytes_read + s->up->bytes_written;
    if (seen != s->bytes_seen) { /* bytes were written (a slow reader draining): still busy */
        s->bytes_seen = seen;
        s->last_activity = ev_now(loop);
    }
    double left = s->last_activity + s->cfg->idle_timeout_s - ev_now(loop);
    if (left > 0.001) {
        ev_timer_set(t, left, 0);
        ev_timer_start(loop, t);
        return;
    }
    pl_counter_inc(s->cfg->st.idle_timeout);
    pl_log_debug("tcp", "tcp_proxy '%s': idle timeout", s->cfg->stat_prefix);
    session_abort(s);
}

static void tp_close_conn(struct pl_worker_conn *wc)
{
    session_abort((struct tp_session *)wc);
}

static const struct pl_conn_handler_vtable tp_handler = {
    .name = "envoy.filters.network.tcp_proxy",
    .on_accept = NULL,
    .drain_conn = NULL, /* as Envoy: a drain leaves TCP connections alone until drain time ends */
    .close_conn = tp_close_conn,
};

static int tp_on_accept(const struct pl_accept_info *info, void *p)
{
    const struct tp_cfg *cfg = p;
    struct tp_session *s = pl_calloc(1, sizeof(*s));
    s->cfg = cfg;
    s->loop = pl_worker_loop(info->worker);
    pl_stream_info_start(&s->si);
    s->peer = info->peer;
    s->peer_len = info->peer_len;
    s->local = info->local;
    s->local_len = info->local_len;
    s->si.downstream_remote_addr = (struct sockaddr *)&s->peer;
    s->si.downstream_remote_addr_len = s->peer_len;
    s->si.downstream_local_addr = (struct sockaddr *)&s->local;
    s->si.downstream_local_addr_len = s->local_len;
    struct pl_conn_opts o = {
        .cb = &down_cb,
        .arg = s,
        .transport = info->chain->transport,
        .transport_cfg = info->chain->transport_cfg,
        .buffer_limit = info->chain->buffer_limit,
    };
    s->down = pl_conn_accept(s->loop, info->fd, &o);
    if (!s->down) { /* the transport could not start; fd is closed already */
        pl_snapshot_unpin(info->snap, pl_worker_id(info->worker));
        free(s);
        return 0;
    }
    pl_net_accepted_keep(&s->acc, info, &tp_handler);
    pl_counter_inc(cfg->st.cx_total);
    pl_conn_count_bytes(s->down, &cfg->st.rx_bytes, &cfg->st.tx_bytes);
    /* Hold downstream bytes until the upstream is up, so a retry can still send them. */
    pl_conn_read_disable(s->down, true);
    s->down_reading_held = true;
    ev_init(&s->idle, idle_cb);
    s->idle.data = s;
    if (cfg->idle_timeout_s > 0) {
        s->last_activity = ev_now(s->loop);
        ev_timer_set(&s->idle, cfg->idle_timeout_s, 0);
        ev_timer_start(s->loop, &s->idle);
    }
    s->cl = pick_cluster(cfg);
    /* the chain config may be shared by several snapshots: the cluster is the session's */
    s->ccfg = pl_snapshot_cluster(info->snap, s->cl->name);
    s->si.upstream_cluster = s->cl->name;
    up_connect(s);
    return 0;
}

const struct pl_netfilter_vtable pl_tcp_proxy_netfilter = {
    .name = "envoy.filters.network.tcp_proxy",
    .config = &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor,
    .compile = tp_compile,
    .free_cfg = cfg_free,
    .prepare = tp_prepare,
    .on_accept = tp_on_accept,
};
