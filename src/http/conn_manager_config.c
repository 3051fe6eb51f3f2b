/* HttpConnectionManager config: compile (proto -> struct hcm_config) and prepare (stats). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "http/conn_manager_internal.h"
#include "pl_proto_all.h"
#include "router/router.h"
#include "upstream/pool.h"

#define HCM_T  Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
#define HCM(x) ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__##x
#define HF_T   Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter

static uint64_t dur_ms(const Google__Protobuf__Duration *d, uint64_t dflt)
{
    if (!d)
        return dflt;
    return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
}

static void hcm_free_cfg(void *p)
{
    struct hcm_config *c = p;
    if (!c)
        return;
    for (uint32_t i = 0; i < c->n_filters; i++) {
        if (c->filters[i].vt && c->filters[i].vt->free_cfg)
            c->filters[i].vt->free_cfg(c->filters[i].cfg);
        free(c->filters[i].name);
    }
    free(c->filters);
    pl_route_table_free(c->routes);
    free(c->rds_name);
    pl_access_logs_free(c->access_logs);
    free(c->stat_prefix);
    free(c->server_name);
    free(c);
}

/* Compiles http_filters: each known filter's config, unknown optional ones skipped (Envoy). */
static int compile_filters(const HCM_T *h, struct hcm_config *c, const char *where,
                           struct pl_err *err)
{
    int rc = 0;
    c->filters = pl_calloc(h->n_http_filters ? h->n_http_filters : 1, sizeof(*c->filters));
    for (size_t i = 0; i < h->n_http_filters; i++) {
        const HF_T *f = h->http_filters[i];
        char path[320];
        snprintf(path, sizeof(path), "%.256s.http_filters[%zu]", where, i);
        if (f->disabled)
            continue;
        const struct pl_http_filter_vtable *vt = NULL;
        const Google__Protobuf__Any *any = NULL;
        if (f->config_type_case == HCM(HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG)) {
            any = f->typed_config;
            vt = pl_http_filter_by_type_url(any->type_url);
        } else if (f->config_type_case == HCM(HTTP_FILTER__CONFIG_TYPE__NOT_SET)) {
            vt = pl_http_filter_by_name(f->name);
        }
        if (!vt) {
            if (f->is_optional)
                continue;
            rc = pl_err_add(err, NULL, 0, 0, path, "HTTP filter '%s' (%s) is not supported",
                            f->name, any ? any->type_url : "no typed_config");
            continue;
        }
        if (vt->terminal && i + 1 != h->n_http_filters) {
            rc = pl_err_add(err, NULL, 0, 0, path,
                            "terminal filter '%s' must be the last in the filter chain", f->name);
            continue;
        }
        ProtobufCMessage *m = NULL;
        if (any && vt->config) {
            m = protobuf_c_message_unpack(vt->config, NULL, any->value.len, any->value.data);
            if (!m) {
                rc = pl_err_add(err, NULL, 0, 0, path, "cannot decode typed_config as %s",
                                vt->config->name);
                continue;
            }
        }
        struct pl_http_filter_compile_ctx cx = {.path = path, .stat_prefix = c->stat_prefix};
        void *fc = NULL;
        int r = vt->compile ? vt->compile(m, &cx, &fc, err) : 0;
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        if (r < 0) {
            rc = r;
            continue;
        }
        c->filters[c->n_filters++] = (struct hcm_filter){vt, fc, pl_strdup(f->name)};
    }
    if (rc == 0 && (c->n_filters == 0 || !c->filters[c->n_filters - 1].vt->terminal))
        rc = pl_err_add(err, NULL, 0, 0, where,
                        "the last HTTP filter must be a terminal filter "
                        "(envoy.filters.http.router)");
    return rc;
}

static int hcm_compile(const ProtobufCMessage *m, const struct pl_compile_ctx *cx, void **out,
                       struct pl_err *err)
{
    const HCM_T *h = (const HCM_T *)m;
    char where[256];
    snprintf(where, sizeof(where), "listener '%.200s': http_connection_manager",
             cx && cx->listener_name ? cx->listener_name : "?");
    pl_http_filter_register_builtins();
    pl_pool_init();
    struct hcm_config *c = pl_calloc(1, sizeof(*c));
    int rc = 0;
    switch ((int)h->codec_type) {
    case HCM(HTTP_CONNECTION_MANAGER__CODEC_TYPE__AUTO):
    case HCM(HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP1):
    case HCM(HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP2):
        c->codec_type = (int)h->codec_type;
        break;
    default:
        rc = pl_err_add(err, NULL, 0, 0, where, "codec_type HTTP3 is not supported");
    }
    c->stat_prefix = pl_asprintf("http.%s.", h->stat_prefix);
    c->max_request_headers_kb = h->max_request_headers_kb ? h->max_request_headers_kb->value : 60;
    if (c->max_request_headers_kb == 0 || c->max_request_headers_kb > 8192)
        rc =
            pl_err_add(err, NULL, 0, 0, where, "max_request_headers_kb must be in 1..8192 (got %u)",
                       c->max_request_headers_kb);
    c->max_headers_count = 100;
    c->idle_timeout_ms = 3600000;
    if (h->common_http_protocol_options) {
        const Envoy__Config__Core__V3__HttpProtocolOptions *o = h->common_http_protocol_options;
        c->idle_timeout_ms = dur_ms(o->idle_timeout, c->idle_timeout_ms);
        if (o->max_headers_count)
            c->max_headers_count = o->max_headers_count->value;
    }
    c->stream_idle_timeout_ms = dur_ms(h->stream_idle_timeout, 300000);
    c->request_timeout_ms = dur_ms(h->request_timeout, 0);
    c->drain_timeout_ms = dur_ms(h->drain_timeout, 5000);
    c->use_remote_address = h->use_remote_address && h->use_remote_address->value;
    c->xff_num_trusted_hops = h->xff_num_trusted_hops;
    c->generate_request_id = !h->generate_request_id || h->generate_request_id->value;
    c->server_name = pl_strdup(*h->server_name ? h->server_name : "pillion");
    c->h2_max_concurrent_streams = 0;
    if (h->http2_protocol_options) {
        const Envoy__Config__Core__V3__Http2ProtocolOptions *o = h->http2_protocol_options;
        if (o->max_concurrent_streams)
            c->h2_max_concurrent_streams = o->max_concurrent_streams->value;
        if (o->initial_stream_window_size)
            c->h2_initial_stream_window_size = o->initial_stream_window_size->value;
        if (o->initial_connection_window_size)
            c->h2_initial_connection_window_size = o->initial_connection_window_size->value;
    }
    for (size_t i = 0; i < h->n_upgrade_configs; i++) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__UpgradeConfig
            *u = h->upgrade_configs[i];
        bool enabled = !u->enabled || u->enabled->value;
        if (!strcasecmp(u->upgrade_type, "websocket"))
            c->websocket = enabled;
        else
            rc = pl_err_add(err, NULL, 0, 0, where,
                            "upgrade_configs[%zu]: upgrade_type '%s' is not supported (only "
                            "websocket)",
                            i, u->upgrade_type);
        if (u->n_filters)
            rc = pl_err_add(err, NULL, 0, 0, where, "upgrade_configs[%zu].filters is not supported",
                            i);
    }
    if (h->route_specifier_case == HCM(HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG)) {
        char path[320];
        snprintf(path, sizeof(path), "%.256s.route_config", where);
        int r = pl_router_compile(h->route_config, path, &c->routes, err);
        if (r < 0)
            rc = r;
    } else if (h->route_specifier_case == HCM(HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) &&
               h->rds && *h->rds->route_config_name) {
        c->rds_name = pl_strdup(h->rds->route_config_name);
    } else {
        rc = pl_err_add(err, NULL, 0, 0, where,
                        "route_config or rds is required (scoped_routes is not supported)");
    }
    int r = compile_filters(h, c, where, err);
    if (r < 0)
        rc = r;
    if (h->n_access_log) {
        char path[320];
        snprintf(path, sizeof(path), "%.256s.access_log", where);
        r = pl_access_log_compile(
            (const Envoy__Config__Accesslog__V3__AccessLog *const *)h->access_log, h->n_access_log,
            path, &c->access_logs, err);
        if (r < 0)
            rc = r;
    }
    if (rc < 0) {
        hcm_free_cfg(c);
        return rc;
    }
    *out = c;
    return 0;
}

static struct pl_counter ctr(struct pl_stats *s, const char *prefix, const char *name)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s%s", prefix, name);
    return pl_stats_counter(s, buf);
}

static struct pl_gauge gauge(struct pl_stats *s, const char *prefix, const char *name)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s%s", prefix, name);
    return pl_stats_gauge(s, buf);
}

static int hcm_prepare(void *p, const struct pl_snapshot *snap, struct pl_stats *s,
                       struct pl_err *err)
{
    struct hcm_config *c = p;
    if (!s)
        return 0;
    const char *x = c->stat_prefix;
    struct hcm_stats *st = &c->st;
    st->cx_total = ctr(s, x, "downstream_cx_total");
    st->cx_http1_total = ctr(s, x, "downstream_cx_http1_total");
    st->cx_http2_total = ctr(s, x, "downstream_cx_http2_total");
    st->cx_destroy = ctr(s, x, "downstream_cx_destroy");
    st->cx_destroy_remote = ctr(s, x, "downstream_cx_destroy_remote");
    st->cx_destroy_local = ctr(s, x, "downstream_cx_destroy_local");
    st->cx_protocol_error = ctr(s, x, "downstream_cx_protocol_error");
    st->cx_drain_close = ctr(s, x, "downstream_cx_drain_close");
    st->cx_idle_timeout = ctr(s, x, "downstream_cx_idle_timeout");
    st->cx_rx_bytes_total = ctr(s, x, "downstream_cx_rx_bytes_total");
    st->cx_tx_bytes_total = ctr(s, x, "downstream_cx_tx_bytes_total");
    st->cx_active = gauge(s, x, "downstream_cx_active");
    st->cx_http1_active = gauge(s, x, "downstream_cx_http1_active");
    st->cx_http2_active = gauge(s, x, "downstream_cx_http2_active");
    st->rq_active = gauge(s, x, "downstream_rq_active");
    st->rq_total = ctr(s, x, "downstream_rq_total");
    st->rq_http1_total = ctr(s, x, "downstream_rq_http1_total");
    st->rq_http2_total = ctr(s, x, "downstream_rq_http2_total");
    for (int i = 1; i <= 5; i++) {
        char n[32];
        snprintf(n, sizeof(n), "downstream_rq_%dxx", i);
        st->rq_xx[i] = ctr(s, x, n);
    }
    st->rq_completed = ctr(s, x, "downstream_rq_completed");
    st->rq_timeout = ctr(s, x, "downstream_rq_timeout");
    st->rq_idle_timeout = ctr(s, x, "downstream_rq_idle_timeout");
    st->rq_too_large = ctr(s, x, "downstream_rq_too_large");
    st->rq_rx_reset = ctr(s, x, "downstream_rq_rx_reset");
    st->rq_tx_reset = ctr(s, x, "downstream_rq_tx_reset");
    st->rq_ws_on_non_ws_route = ctr(s, x, "downstream_rq_ws_on_non_ws_route");
    st->rq_response_before_rq_complete = ctr(s, x, "downstream_rq_response_before_rq_complete");
    char buf[512];
    snprintf(buf, sizeof(buf), "%sdownstream_rq_time", x);
    st->rq_time = pl_stats_histogram(s, buf);
    for (uint32_t i = 0; i < c->n_filters; i++) {
        const struct pl_http_filter_vtable *vt = c->filters[i].vt;
        if (!vt->prepare)
            continue;
        struct pl_http_filter_compile_ctx cx = {
            .snap = snap, .stats = s, .stat_prefix = c->stat_prefix, .path = c->filters[i].name};
        int rc = vt->prepare(c->filters[i].cfg, &cx, err);
        if (rc < 0)
            return rc;
    }
    c->prepared = true;
    return 0;
}

int hcm_on_accept(const struct pl_accept_info *info, void *cfg);

const struct pl_netfilter_vtable pl_hcm_netfilter = {
    .name = "envoy.filters.network.http_connection_manager",
    .config =
        &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
    .compile = hcm_compile,
    .free_cfg = hcm_free_cfg,
    .prepare = hcm_prepare,
    .on_accept = hcm_on_accept,
};
