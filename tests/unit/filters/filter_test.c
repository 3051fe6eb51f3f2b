#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "config/pbjson.h"
#include "config/snapshot.h"
#include "filters/filter.h"
#include "http/conn_manager.h"
#include "pl_proto_all.h"
#include "router/router.h"
#include "stats/stats.h"

#define HCM_DESC                                                                                   \
    envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor

static const char *ROUTER = "  - name: envoy.filters.http.router\n"
                            "    typed_config:\n"
                            "      \"@type\": type.googleapis.com/"
                            "envoy.extensions.filters.http.router.v3.Router\n";

static const char *ROUTES = "route_config:\n"
                            "  virtual_hosts:\n"
                            "  - name: vh\n"
                            "    domains: [\"*\"]\n"
                            "    routes:\n"
                            "    - match: { prefix: \"/direct\" }\n"
                            "      direct_response: { status: 418, body: { inline_string: tea } }\n"
                            "    - match: { prefix: \"/old\" }\n"
                            "      redirect: { path_redirect: /new }\n"
                            "    - match: { prefix: \"/c\" }\n"
                            "      route: { cluster: nosuch }\n";

/* Compiles an HCM from YAML (the fields after stat_prefix); returns the compile result. */
static int compile(const char *body, void **out, struct pl_err *err)
{
    char text[4096];
    snprintf(text, sizeof(text), "stat_prefix: t\n%s", body);
    ProtobufCMessage *m = NULL;
    int rc = pl_pbjson_load_text(text, strlen(text), "test", &HCM_DESC, NULL, &m, NULL, err);
    cr_assert_eq(rc, 0, "YAML: %s", err->n ? err->v[0].msg : "?");
    struct pl_compile_ctx cx = {.listener_name = "l"};
    rc = pl_hcm_netfilter.compile(m, &cx, out, err);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static bool err_has(const struct pl_err *e, const char *s)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->v[i].msg, s))
            return true;
    return false;
}

Test(filters, registry)
{
    pl_http_filter_register_builtins();
    pl_http_filter_register_builtins(); /* idempotent */
    cr_assert_eq(pl_http_filter_by_name("envoy.filters.http.router"), &pl_filter_router);
    cr_assert_eq(pl_http_filter_by_type_url(
                     "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"),
                 &pl_filter_router);
    cr_assert_null(pl_http_filter_by_name("envoy.filters.http.nope"));
    cr_assert_eq(pl_http_filter_register(&pl_filter_router), PL_EEXIST);
    cr_assert(pl_filter_router.terminal);
}

Test(filters, hcm_compile_ok_and_prepare)
{
    char body[4096];
    snprintf(body, sizeof(body), "%shttp_filters:\n%s", ROUTES, ROUTER);
    void *cfg = NULL;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(compile(body, &cfg, &err), 0, "%s", err.n ? err.v[0].msg : "");
    struct pl_stats *st = pl_stats_new();
    cr_assert_eq(pl_hcm_netfilter.prepare(cfg, NULL, st, &err), 0);
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(pl_stats_render(st, PL_STATS_TEXT, NULL, &out, &len), 0);
    cr_assert(strstr(out, "http.t.downstream_rq_total: 0"), "%s", out);
    cr_assert(strstr(out, "http.t.downstream_cx_active: 0"));
    cr_assert(strstr(out, "http.t.no_route: 0"));
    free(out);
    pl_hcm_netfilter.free_cfg(cfg);
    pl_stats_free(st);
    pl_err_free(&err);
}

Test(filters, hcm_compile_errors)
{
    struct pl_err err = PL_ERR_INIT;
    void *cfg = NULL;
    char body[4096];
    /* no terminal filter */
    snprintf(body, sizeof(body), "%shttp_filters: []\n", ROUTES);
    cr_assert_lt(compile(body, &cfg, &err), 0);
    cr_assert(err_has(&err, "terminal filter"));
    pl_err_free(&err);
    /* an unknown filter that is not optional; an optional one is skipped */
    snprintf(body, sizeof(body),
             "%shttp_filters:\n  - name: envoy.filters.http.cors\n    typed_config:\n"
             "      \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n%s",
             ROUTES, ROUTER);
    cr_assert_lt(compile(body, &cfg, &err), 0);
    cr_assert(err_has(&err, "envoy.filters.http.cors"));
    pl_err_free(&err);
    snprintf(body, sizeof(body),
             "%shttp_filters:\n  - name: envoy.filters.http.cors\n    is_optional: true\n"
             "    typed_config:\n"
             "      \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n%s",
             ROUTES, ROUTER);
    cr_assert_eq(compile(body, &cfg, &err), 0, "%s", err.n ? err.v[0].msg : "");
    pl_hcm_netfilter.free_cfg(cfg);
    /* router not last */
    snprintf(body, sizeof(body), "%shttp_filters:\n%s%s", ROUTES, ROUTER, ROUTER);
    cr_assert_lt(compile(body, &cfg, &err), 0);
    cr_assert(err_has(&err, "must be the last"));
    pl_err_free(&err);
    /* unsupported upgrade type and codec */
    snprintf(body, sizeof(body),
             "%scodec_type: HTTP3\nupgrade_configs: [{upgrade_type: h2c}]\n"
             "http_filters:\n%s",
             ROUTES, ROUTER);
    cr_assert_lt(compile(body, &cfg, &err), 0);
    cr_assert(err_has(&err, "HTTP3"));
    cr_assert(err_has(&err, "h2c"));
    pl_err_free(&err);
    /* max_request_headers_kb bounds */
    snprintf(body, sizeof(body), "%smax_request_headers_kb: 9000\nhttp_filters:\n%s", ROUTES,
             ROUTER);
    cr_assert_lt(compile(body, &cfg, &err), 0);
    cr_assert(err_has(&err, "max_request_headers_kb"));
    pl_err_free(&err);
}

/* ---- the router filter against a fake stream ---- */

struct fake {
    struct pl_filter_stream fs;
    struct pl_stream_info info;
    struct pl_arena arena;
    int status;
    char body[256];
    char location[256];
    char extra[256];
    uint32_t flags;
    const char *details;
    int heads;
    bool ended_with_head;
};

static void f_local(struct pl_filter_stream *fs, int status, const char *body, size_t len,
                    const struct pl_headers *extra, const char *details, uint32_t flags)
{
    (void)extra;
    struct fake *f = (struct fake *)fs;
    f->status = status;
    snprintf(f->body, sizeof(f->body), "%.*s", (int)len, body);
    f->details = details;
    f->flags = flags;
}

static void f_head(struct pl_filter_stream *fs, struct pl_http_head *h, bool end)
{
    struct fake *f = (struct fake *)fs;
    f->heads++;
    f->status = h->status;
    f->ended_with_head = end;
    const struct pl_header *loc = pl_headers_get_lit(&h->headers, "location");
    if (loc)
        snprintf(f->location, sizeof(f->location), "%.*s", (int)loc->value_len, loc->value);
}

static void f_data(struct pl_filter_stream *fs, struct pl_buf *d, bool end)
{
    (void)end;
    struct fake *f = (struct fake *)fs;
    size_t n = pl_buf_copyout(d, 0, f->body, sizeof(f->body) - 1);
    f->body[n] = '\0';
    pl_buf_drain(d, d->len);
}

static void f_noop(struct pl_filter_stream *fs)
{
    (void)fs;
}

static const struct pl_filter_stream_ops fake_ops = {
    .continue_decoding = f_noop,
    .continue_encoding = f_noop,
    .send_local_reply = f_local,
    .encode_head = f_head,
    .encode_data = f_data,
};

static void run_router(const char *path, struct fake *f)
{
    ProtobufCMessage *m = NULL;
    struct pl_err err = PL_ERR_INIT;
    char text[2048];
    snprintf(text, sizeof(text), "%s", ROUTES + strlen("route_config:\n"));
    /* ROUTES is indented under route_config: decode it as a RouteConfiguration */
    char rc_text[2048];
    size_t k = 0;
    for (const char *p = text; *p && k + 1 < sizeof(rc_text);) {
        if (p[0] == ' ' && p[1] == ' ' && (p == text || p[-1] == '\n'))
            p += 2;
        else
            rc_text[k++] = *p++;
    }
    rc_text[k] = '\0';
    cr_assert_eq(pl_pbjson_load_text(rc_text, k, "routes",
                                     &envoy__config__route__v3__route_configuration__descriptor,
                                     NULL, &m, NULL, &err),
                 0, "%s", err.n ? err.v[0].msg : "");
    struct pl_route_table *t = NULL;
    cr_assert_eq(
        pl_router_compile((const Envoy__Config__Route__V3__RouteConfiguration *)m, NULL, &t, &err),
        0);
    protobuf_c_message_free_unpacked(m, NULL);
    memset(f, 0, sizeof(*f));
    struct pl_snapshot *snap = pl_snapshot_new();
    f->fs = (struct pl_filter_stream){.ops = &fake_ops,
                                      .arena = &f->arena,
                                      .info = &f->info,
                                      .routes = t,
                                      .loop = EV_DEFAULT,
                                      .snap = snap};
    struct pl_http_head h = {.method = "GET",
                             .method_len = 3,
                             .path = path,
                             .path_len = (uint32_t)strlen(path),
                             .authority = "example.com",
                             .authority_len = 11,
                             .scheme = "http",
                             .scheme_len = 4,
                             .version = 11,
                             .content_length = 0};
    f->fs.request = &h;
    void *cfg = NULL;
    cr_assert_eq(pl_filter_router.compile(NULL, NULL, &cfg, &err), 0);
    void *state = calloc(1, pl_filter_router.state_size);
    cr_assert_eq(pl_filter_router.decode_headers(&f->fs, cfg, state, &h, true), PL_FILTER_STOP);
    pl_filter_router.on_destroy(&f->fs, cfg, state);
    free(state);
    pl_filter_router.free_cfg(cfg);
    pl_route_table_free(t);
    pl_snapshot_free(snap);
    pl_arena_free(&f->arena);
}

Test(filters, router_local_answers)
{
    struct fake f;
    run_router("/nothing", &f);
    cr_assert_eq(f.status, 404);
    cr_assert_str_eq(f.details, "route_not_found");
    cr_assert_eq(f.flags, PL_RF_NR);

    run_router("/direct", &f);
    cr_assert_eq(f.status, 418);
    cr_assert_eq(f.heads, 1);
    cr_assert(!f.ended_with_head);
    cr_assert_str_eq(f.body, "tea");

    run_router("/old", &f);
    cr_assert_eq(f.status, 301);
    cr_assert(f.ended_with_head);
    cr_assert_str_eq(f.location, "http://example.com/new");

    run_router("/c", &f); /* a cluster the snapshot does not have */
    cr_assert_eq(f.status, 503);
    cr_assert_eq(f.flags, PL_RF_NC);
}
