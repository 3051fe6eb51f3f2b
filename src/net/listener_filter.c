/* Listener filters: the registry of built-in filters, compiling a Listener's listener_filters,
 * and their stats. The waiting logic is in listener_filter_run.c. */
#include "net/listener_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "pl_proto_all.h"

#define LISTENER_T Envoy__Config__Listener__V3__Listener
#define LFILTER_T  Envoy__Config__Listener__V3__ListenerFilter
#define LF(x)      ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER__##x

static const struct pl_listener_filter_vtable *const builtins[] = {
    &pl_lf_tls_inspector,
    &pl_lf_original_dst,
};
#define N_BUILTINS (sizeof(builtins) / sizeof(builtins[0]))

const struct pl_listener_filter_vtable *pl_listener_filter_by_name(const char *name)
{
    for (size_t i = 0; i < N_BUILTINS; i++)
        if (!strcmp(builtins[i]->name, name))
            return builtins[i];
    return NULL;
}

const struct pl_listener_filter_vtable *pl_listener_filter_by_type_url(const char *type_url)
{
    const char *s = strrchr(type_url, '/');
    const char *name = s ? s + 1 : type_url;
    for (size_t i = 0; i < N_BUILTINS; i++)
        if (!strcmp(builtins[i]->config->name, name))
            return builtins[i];
    return NULL;
}

void pl_listener_filters_free(struct pl_listener_filters *lf)
{
    if (!lf)
        return;
    for (size_t i = 0; i < lf->n; i++)
        if (lf->v[i].cfg && lf->v[i].vt->free_cfg)
            lf->v[i].vt->free_cfg(lf->v[i].cfg);
    free(lf->v);
    free(lf);
}

static int add_filter(struct pl_listener_filters *lf, const struct pl_listener_filter_vtable *vt,
                      const ProtobufCMessage *config, const char *listener_name,
                      const char *filter_name, struct pl_err *err)
{
    ProtobufCMessage *empty = NULL;
    if (!config) {
        empty = pl_malloc(vt->config->sizeof_message);
        vt->config->message_init(empty);
        config = empty;
    }
    struct pl_lf_entry *e = &lf->v[lf->n];
    e->vt = vt;
    e->cfg = NULL;
    struct pl_err sub = PL_ERR_INIT;
    int rc = vt->compile(config, &e->cfg, &sub);
    free(empty);
    if (rc < 0) {
        for (size_t i = 0; i < sub.n; i++)
            pl_err_add(err, NULL, 0, 0, NULL, "listener '%s': listener filter '%s': %s",
                       listener_name, filter_name, sub.v[i].msg);
        pl_err_free(&sub);
        return PL_EINVAL;
    }
    lf->n++;
    return 0;
}

static int compile_one(struct pl_listener_filters *lf, const LFILTER_T *f,
                       const char *listener_name, struct pl_err *err)
{
    if (f->config_type_case == LF(CONFIG_TYPE_CONFIG_DISCOVERY))
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "listener '%s': listener filter '%s': config_discovery is not "
                          "supported by pillion",
                          listener_name, f->name);
    if (f->filter_disabled)
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "listener '%s': listener filter '%s': filter_disabled is not "
                          "supported by pillion",
                          listener_name, f->name);
    const Google__Protobuf__Any *any =
        f->config_type_case == LF(CONFIG_TYPE_TYPED_CONFIG) ? f->typed_config : NULL;
    const struct pl_listener_filter_vtable *vt =
        any ? pl_listener_filter_by_type_url(any->type_url) : pl_listener_filter_by_name(f->name);
    if (!vt)
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "listener '%s': listener filter '%s' (%s) is not supported by pillion "
                          "(supported: envoy.filters.listener.tls_inspector, "
                          "envoy.filters.listener.original_dst)",
                          listener_name, f->name, any ? any->type_url : "no typed_config");
    ProtobufCMessage *m = NULL;
    if (any) {
        m = protobuf_c_message_unpack(vt->config, NULL, any->value.len, any->value.data);
        if (!m)
            return pl_err_add(err, NULL, 0, 0, NULL,
                              "listener '%s': listener filter '%s': typed_config is not a valid %s",
                              listener_name, f->name, vt->config->name);
    }
    int rc = add_filter(lf, vt, m, listener_name, f->name, err);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* Envoy's needTlsInspector: some chain can only match after a ClientHello was inspected. */
static bool needs_tls_inspector(const LISTENER_T *l)
{
    for (size_t i = 0; i < l->n_filter_chains; i++) {
        const Envoy__Config__Listener__V3__FilterChainMatch *m =
            l->filter_chains[i]->filter_chain_match;
        if (!m)
            continue;
        if (!strcmp(m->transport_protocol, "tls") ||
            (!*m->transport_protocol && (m->n_server_names || m->n_application_protocols)))
            return true;
    }
    return false;
}

int pl_listener_filters_compile(const ProtobufCMessage *listener, const char *listener_name,
                                struct pl_listener_filters **out, struct pl_err *err)
{
    *out = NULL;
    if (!listener || listener->descriptor != &envoy__config__listener__v3__listener__descriptor)
        return 0;
    const LISTENER_T *l = (const LISTENER_T *)listener;
    bool inject = needs_tls_inspector(l);
    for (size_t i = 0; i < l->n_listener_filters && inject; i++) {
        const LFILTER_T *f = l->listener_filters[i];
        const struct pl_listener_filter_vtable *vt =
            f->config_type_case == LF(CONFIG_TYPE_TYPED_CONFIG) && f->typed_config
                ? pl_listener_filter_by_type_url(f->typed_config->type_url)
                : pl_listener_filter_by_name(f->name);
        if (vt == &pl_lf_tls_inspector || !strcmp(f->name, pl_lf_tls_inspector.name))
            inject = false;
    }
    size_t n = l->n_listener_filters + inject;
    if (n == 0)
        return 0;
    struct pl_listener_filters *lf = pl_calloc(1, sizeof(*lf));
    lf->v = pl_calloc(n, sizeof(*lf->v));
    lf->timeout_s = PL_LF_DEFAULT_TIMEOUT_S;
    if (l->listener_filters_timeout)
        lf->timeout_s =
            (double)l->listener_filters_timeout->seconds + l->listener_filters_timeout->nanos / 1e9;
    if (lf->timeout_s < 0)
        lf->timeout_s = 0;
    lf->continue_on_timeout = l->continue_on_listener_filters_timeout;
    int rc = 0;
    for (size_t i = 0; i < l->n_listener_filters; i++)
        if (compile_one(lf, l->listener_filters[i], listener_name, err) < 0)
            rc = PL_EINVAL;
    if (inject && rc == 0) {
        /* Envoy warns and injects; the filter goes first, as Envoy's injected one */
        pl_log_warn("net",
                    "listener '%s': filter chain match rules require TLS Inspector listener "
                    "filter, but it isn't configured: adding it",
                    listener_name);
        rc = add_filter(lf, &pl_lf_tls_inspector, NULL, listener_name, pl_lf_tls_inspector.name,
                        err);
        if (rc == 0) {
            struct pl_lf_entry e = lf->v[lf->n - 1];
            memmove(&lf->v[1], &lf->v[0], (lf->n - 1) * sizeof(*lf->v));
            lf->v[0] = e;
        }
    }
    if (rc < 0) {
        pl_listener_filters_free(lf);
        return PL_EINVAL;
    }
    *out = lf;
    return 0;
}

void pl_listener_filters_prepare(struct pl_listener_filters *lf, struct pl_stats *stats,
                                 const char *listener_prefix)
{
    if (!lf || !stats)
        return;
    char name[256];
    snprintf(name, sizeof(name), "%s.downstream_pre_cx_active", listener_prefix);
    lf->pre_cx_active = pl_stats_gauge(stats, name);
    snprintf(name, sizeof(name), "%s.downstream_pre_cx_timeout", listener_prefix);
    lf->pre_cx_timeout = pl_stats_counter(stats, name);
    snprintf(name, sizeof(name), "%s.downstream_listener_filter_remote_close", listener_prefix);
    lf->filter_remote_close = pl_stats_counter(stats, name);
    snprintf(name, sizeof(name), "%s.downstream_listener_filter_error", listener_prefix);
    lf->filter_error = pl_stats_counter(stats, name);
    for (size_t i = 0; i < lf->n; i++)
        if (lf->v[i].vt->prepare)
            lf->v[i].vt->prepare(lf->v[i].cfg, stats);
}
