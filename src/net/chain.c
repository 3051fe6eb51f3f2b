/* Filter chains: compile a Listener's filter_chains and pick one per connection (Envoy's
 * FilterChainManager order: destination port, server names, transport protocol, ALPN). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/snapshot.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/filter.h"
#include "net/listener_filter.h"
#include "pl_proto_all.h"

#define LISTENER_T Envoy__Config__Listener__V3__Listener
#define CHAIN_T    Envoy__Config__Listener__V3__FilterChain
#define MATCH_T    Envoy__Config__Listener__V3__FilterChainMatch

static char **copy_strings(char *const *v, size_t n)
{
    char **out = pl_calloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = pl_strdup(v[i]);
    return out;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void chain_free(struct pl_filter_chain *c)
{
    free(c->name);
    free_strings(c->match.server_names, c->match.n_server_names);
    free(c->match.transport_protocol);
    free_strings(c->match.application_protocols, c->match.n_application_protocols);
    if (c->vt && c->cfg && c->vt->free_cfg)
        c->vt->free_cfg(c->cfg);
    if (c->transport && c->transport_cfg && c->transport->free_cfg)
        c->transport->free_cfg(c->transport_cfg);
}

void pl_filter_chains_free(struct pl_filter_chains *fc)
{
    if (!fc)
        return;
    for (size_t i = 0; i < fc->n; i++)
        chain_free(&fc->v[i]);
    if (fc->dflt) {
        chain_free(fc->dflt);
        free(fc->dflt);
    }
    pl_listener_filters_free(fc->listener_filters);
    free(fc->v);
    free(fc);
}

/* Unpacks an Any into the given type; NULL if the bytes do not decode. */
static ProtobufCMessage *unpack_any(const Google__Protobuf__Any *any,
                                    const ProtobufCMessageDescriptor *d)
{
    return protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data);
}

static int compile_transport(const CHAIN_T *fc, struct pl_filter_chain *c,
                             const struct pl_compile_ctx *cx, struct pl_err *err)
{
    const Envoy__Config__Core__V3__TransportSocket *ts = fc->transport_socket;
    if (!ts)
        return 0;
    c->transport_socket = &ts->base;
    const char *url = ts->typed_config ? ts->typed_config->type_url : "";
    const struct pl_transport_vtable *tvt = pl_transport_by_type_url(url);
    if (!tvt) {
        pl_log_warn("net",
                    "listener '%s': filter chain '%s': transport socket '%s' (%s) is not "
                    "available in this build: its connections will be closed",
                    cx->listener_name, c->name, ts->name, url);
        c->transport_missing = true;
        return 0;
    }
    c->transport = tvt;
    if (!tvt->compile)
        return 0;
    ProtobufCMessage *m = tvt->config ? unpack_any(ts->typed_config, tvt->config) : NULL;
    if (tvt->config && !m)
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "listener '%s': filter chain '%s': transport socket '%s': bad %s",
                          cx->listener_name, c->name, ts->name, url);
    int rc = tvt->compile(m, cx, true, &c->transport_cfg, err);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static int compile_filter(const CHAIN_T *fc, struct pl_filter_chain *c,
                          const struct pl_compile_ctx *cx, struct pl_err *err)
{
    if (fc->n_filters == 0)
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "listener '%s': filter chain '%s': no network filter", cx->listener_name,
                          c->name);
    const Envoy__Config__Listener__V3__Filter *f = fc->filters[fc->n_filters - 1];
    c->filter_name = f->name;
    const char *url =
        f->config_type_case == ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG &&
                f->typed_config
            ? f->typed_config->type_url
            : NULL;
    const struct pl_netfilter_vtable *vt = url ? pl_netfilter_by_type_url(url) : NULL;
    if (!vt)
        vt = pl_netfilter_by_name(f->name);
    if (!vt) {
        pl_log_debug("net",
                     "listener '%s': filter chain '%s': network filter '%s' is not built in yet: "
                     "connections are closed",
                     cx->listener_name, c->name, f->name);
        return 0;
    }
    c->vt = vt;
    ProtobufCMessage *m = NULL;
    if (url) {
        m = unpack_any(f->typed_config, vt->config);
        if (!m)
            return pl_err_add(err, NULL, 0, 0, NULL,
                              "listener '%s': filter '%s': typed_config is not a valid %s",
                              cx->listener_name, f->name, vt->config->name);
    } else {
        m = pl_malloc(vt->config->sizeof_message);
        vt->config->message_init(m);
    }
    int rc = vt->compile(m, cx, &c->cfg, err);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static int compile_chain(const CHAIN_T *fc, const char *name, struct pl_filter_chain *c,
                         const struct pl_compile_ctx *cx, uint32_t buffer_limit, struct pl_err *err)
{
    c->name = pl_strdup(fc->name && *fc->name ? fc->name : name);
    c->buffer_limit = buffer_limit;
    const MATCH_T *m = fc->filter_chain_match;
    if (m) {
        if (m->destination_port) {
            c->match.has_port = true;
            c->match.destination_port = m->destination_port->value;
        }
        c->match.server_names = copy_strings(m->server_names, m->n_server_names);
        c->match.n_server_names = m->n_server_names;
        if (*m->transport_protocol)
            c->match.transport_protocol = pl_strdup(m->transport_protocol);
        c->match.application_protocols =
            copy_strings(m->application_protocols, m->n_application_protocols);
        c->match.n_application_protocols = m->n_application_protocols;
        for (size_t i = 0; i < m->n_server_names; i++) {
            const char *s = m->server_names[i];
            if (!*s || (strchr(s, '*') && (strncmp(s, "*.", 2) || strchr(s + 1, '*'))))
                return pl_err_add(err, NULL, 0, 0, NULL,
                                  "listener '%s': filter chain '%s': server name '%s': only "
                                  "exact names and '*.suffix' wildcards are supported",
                                  cx->listener_name, c->name, s);
        }
    }
    int rc = compile_filter(fc, c, cx, err);
    if (rc == 0)
        rc = compile_transport(fc, c, cx, err);
    return rc;
}

/* True when a and b intersect (both empty counts as the same "any"). */
static bool lists_overlap(char **a, size_t na, char **b, size_t nb)
{
    if (na == 0 || nb == 0)
        return na == nb;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (!strcasecmp(a[i], b[j]))
                return true;
    return false;
}

/* Envoy rejects two chains that a connection could match equally well. */
static bool same_match(const struct pl_filter_chain_match *a, const struct pl_filter_chain_match *b)
{
    if (a->has_port != b->has_port || (a->has_port && a->destination_port != b->destination_port))
        return false;
    if (!a->transport_protocol != !b->transport_protocol ||
        (a->transport_protocol && strcmp(a->transport_protocol, b->transport_protocol)))
        return false;
    return lists_overlap(a->server_names, a->n_server_names, b->server_names, b->n_server_names) &&
           lists_overlap(a->application_protocols, a->n_application_protocols,
                         b->application_protocols, b->n_application_protocols);
}

int pl_filter_chains_compile(const ProtobufCMessage *listener, const char *listener_name,
                             struct pl_filter_chains **out, struct pl_err *err)
{
    *out = NULL;
    if (!listener || listener->descriptor != &envoy__config__listener__v3__listener__descriptor)
        return 0;
    pl_netfilter_register_builtins();
    const LISTENER_T *l = (const LISTENER_T *)listener;
    uint32_t limit = l->per_connection_buffer_limit_bytes
                         ? l->per_connection_buffer_limit_bytes->value
                         : PL_CONN_DEFAULT_BUFFER_LIMIT;
    if (limit == 0)
        limit = PL_CONN_DEFAULT_BUFFER_LIMIT;
    struct pl_compile_ctx cx = {.snap = NULL, .listener_name = listener_name};
    struct pl_filter_chains *fc = pl_calloc(1, sizeof(*fc));
    fc->v = pl_calloc(l->n_filter_chains ? l->n_filter_chains : 1, sizeof(*fc->v));
    int rc = 0;
    for (size_t i = 0; i < l->n_filter_chains; i++) {
        char name[48];
        snprintf(name, sizeof(name), "filter_chains[%zu]", i);
        struct pl_filter_chain *c = &fc->v[fc->n++];
        if (compile_chain(l->filter_chains[i], name, c, &cx, limit, err) < 0) {
            rc = PL_EINVAL;
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (same_match(&fc->v[j].match, &c->match))
                rc = pl_err_add(err, NULL, 0, 0, NULL,
                                "listener '%s': multiple filter chains with the same matching "
                                "rules are defined ('%s' and '%s')",
                                listener_name, fc->v[j].name, c->name);
    }
    if (l->default_filter_chain) {
        fc->dflt = pl_calloc(1, sizeof(*fc->dflt));
        if (compile_chain(l->default_filter_chain, "default_filter_chain", fc->dflt, &cx, limit,
                          err) < 0)
            rc = PL_EINVAL;
    }
    if (pl_listener_filters_compile(listener, listener_name, &fc->listener_filters, err) < 0)
        rc = PL_EINVAL;
    if (rc < 0) {
        pl_filter_chains_free(fc);
        return rc;
    }
    *out = fc;
    return 0;
}

/* ---- selection ---- */

static bool has_name(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(v[i], name))
            return true;
    return false;
}

/* Length of the longest "*.suffix" of c matching name; 0 if none. */
static size_t wildcard_len(const struct pl_filter_chain *c, const char *name)
{
    size_t best = 0, nl = strlen(name);
    for (size_t i = 0; i < c->match.n_server_names; i++) {
        const char *w = c->match.server_names[i];
        if (w[0] != '*')
            continue;
        size_t sl = strlen(w + 1); /* ".example.com" */
        if (nl > sl && !strcasecmp(name + nl - sl, w + 1) && sl > best)
            best = sl;
    }
    return best;
}

const struct pl_filter_chain *pl_filter_chain_select(const struct pl_filter_chains *fc,
                                                     uint32_t destination_port,
                                                     const char *server_name,
                                                     const char *transport_protocol,
                                                     const char *const *alpn, size_t n_alpn)
{
    if (!fc)
        return NULL;
    /* Candidates narrow level by level; a level never falls back once a more specific bucket
     * exists (Envoy's match tree has no backtracking). Bits of a small mask per chain. */
    size_t n = fc->n;
    bool stack_keep[64];
    bool *keep = n <= 64 ? stack_keep : pl_malloc(n);
    const struct pl_filter_chain *found = NULL;
    size_t left = 0;
    for (size_t i = 0; i < n; i++)
        keep[i] = fc->v[i].match.has_port && fc->v[i].match.destination_port == destination_port;
    for (size_t i = 0; i < n; i++)
        left += keep[i];
    if (!left)
        for (size_t i = 0; i < n; i++)
            left += keep[i] = !fc->v[i].match.has_port;
    /* server names: exact, then the longest wildcard suffix, then chains without names */
    if (left) {
        size_t exact = 0, best = 0;
        for (size_t i = 0; i < n && server_name; i++)
            if (keep[i] &&
                has_name(fc->v[i].match.server_names, fc->v[i].match.n_server_names, server_name))
                exact++;
        for (size_t i = 0; i < n && server_name && !exact; i++) {
            size_t w = keep[i] ? wildcard_len(&fc->v[i], server_name) : 0;
            best = w > best ? w : best;
        }
        left = 0;
        for (size_t i = 0; i < n; i++) {
            if (!keep[i])
                continue;
            const struct pl_filter_chain_match *m = &fc->v[i].match;
            if (exact)
                keep[i] = has_name(m->server_names, m->n_server_names, server_name);
            else if (best)
                keep[i] = wildcard_len(&fc->v[i], server_name) == best;
            else
                keep[i] = m->n_server_names == 0;
            left += keep[i];
        }
    }
    /* transport protocol: exact, then unset */
    if (left) {
        bool exact = false;
        for (size_t i = 0; i < n && transport_protocol; i++)
            exact |= keep[i] && fc->v[i].match.transport_protocol &&
                     !strcmp(fc->v[i].match.transport_protocol, transport_protocol);
        left = 0;
        for (size_t i = 0; i < n; i++) {
            if (!keep[i])
                continue;
            const char *tp = fc->v[i].match.transport_protocol;
            keep[i] = exact ? tp && !strcmp(tp, transport_protocol) : !tp;
            left += keep[i];
        }
    }
    /* application protocols: the first offered protocol some chain names, then unset */
    if (left) {
        const char *hit = NULL;
        for (size_t a = 0; a < n_alpn && !hit; a++)
            for (size_t i = 0; i < n && !hit; i++)
                if (keep[i] && has_name(fc->v[i].match.application_protocols,
                                        fc->v[i].match.n_application_protocols, alpn[a]))
                    hit = alpn[a];
        for (size_t i = 0; i < n && !found; i++) {
            if (!keep[i])
                continue;
            const struct pl_filter_chain_match *m = &fc->v[i].match;
            if (hit ? has_name(m->application_protocols, m->n_application_protocols, hit)
                    : m->n_application_protocols == 0)
                found = &fc->v[i];
        }
    }
    if (keep != stack_keep)
        free(keep);
    return found ? found : fc->dflt;
}
