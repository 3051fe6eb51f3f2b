/* Network filter and transport registries; the worker's accept path for filter chains. */
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/publish.h"
#include "config/snapshot.h"
#include "core/log.h"
#include "http/conn_manager.h"
#include "net/conn.h"
#include "net/filter.h"
#include "net/listener_filter.h"
#include "net/tcp_proxy.h"
#include "pl_proto_all.h"

/* ---- registries (main thread, at start; read-only afterwards) ---- */

#define MAX_REG 16

static const struct pl_netfilter_vtable *filters[MAX_REG];
static size_t n_filters;
static const struct pl_transport_vtable *transports[MAX_REG];
static size_t n_transports;

/* "type.googleapis.com/envoy.x.Y" -> "envoy.x.Y" */
static const char *type_name(const char *url)
{
    const char *s = strrchr(url, '/');
    return s ? s + 1 : url;
}

int pl_netfilter_register(const struct pl_netfilter_vtable *vt)
{
    if (!vt || !vt->name || !vt->config || !vt->compile || !vt->on_accept)
        return PL_EINVAL;
    if (pl_netfilter_by_name(vt->name) || pl_netfilter_by_type_url(vt->config->name))
        return PL_EEXIST;
    if (n_filters == MAX_REG)
        return PL_ENOMEM;
    filters[n_filters++] = vt;
    return 0;
}

const struct pl_netfilter_vtable *pl_netfilter_by_name(const char *name)
{
    for (size_t i = 0; i < n_filters; i++)
        if (!strcmp(filters[i]->name, name))
            return filters[i];
    return NULL;
}

const struct pl_netfilter_vtable *pl_netfilter_by_type_url(const char *type_url)
{
    const char *name = type_name(type_url);
    for (size_t i = 0; i < n_filters; i++)
        if (!strcmp(filters[i]->config->name, name))
            return filters[i];
    return NULL;
}

void pl_netfilter_register_builtins(void)
{
    if (!pl_netfilter_by_name(pl_tcp_proxy_netfilter.name))
        pl_netfilter_register(&pl_tcp_proxy_netfilter);
    if (!pl_netfilter_by_name(pl_hcm_netfilter.name))
        pl_netfilter_register(&pl_hcm_netfilter);
}

int pl_transport_register(const struct pl_transport_vtable *vt)
{
    if (!vt || !vt->name || !vt->create || !vt->read || !vt->write || !vt->destroy ||
        !vt->on_connected || !vt->shutdown_write)
        return PL_EINVAL;
    for (size_t i = 0; i < n_transports; i++)
        if (!strcmp(transports[i]->name, vt->name))
            return PL_EEXIST;
    if (n_transports == MAX_REG)
        return PL_ENOMEM;
    transports[n_transports++] = vt;
    return 0;
}

const struct pl_transport_vtable *pl_transport_by_type_url(const char *type_url)
{
    const char *name = type_name(type_url);
    for (size_t i = 0; i < n_transports; i++)
        if (transports[i]->config && !strcmp(transports[i]->config->name, name))
            return transports[i];
    return NULL;
}

/* ---- prepare (main thread, before publish) ---- */

static int prepare_chain(struct pl_filter_chain *c, const struct pl_snapshot *s,
                         struct pl_stats *stats, struct pl_err *err)
{
    if (!c->vt || !c->vt->prepare || !c->cfg)
        return 0;
    return c->vt->prepare(c->cfg, s, stats, err);
}

/* listener.<stat_prefix or address with ':' as '_'>, as the server names the listener's stats */
static void listener_prefix(const struct pl_listener_cfg *l, char *buf, size_t cap)
{
    const Envoy__Config__Listener__V3__Listener *p =
        (const Envoy__Config__Listener__V3__Listener *)l->proto;
    if (p && p->stat_prefix && *p->stat_prefix) {
        snprintf(buf, cap, "listener.%s", p->stat_prefix);
        return;
    }
    snprintf(buf, cap, "listener.%s", l->addr_str ? l->addr_str : l->name);
    for (char *c = buf + 9; *c; c++)
        if (*c == ':')
            *c = '_';
}

int pl_net_prepare(const struct pl_snapshot *s, struct pl_stats *stats, struct pl_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < s->n_listeners; i++) {
        const struct pl_listener_cfg *l = &s->listeners[i];
        struct pl_filter_chains *fc = l->chains;
        if (!fc || fc->prepared) /* shared with an earlier snapshot (compile cache): done */
            continue;
        int before = rc;
        if (fc->listener_filters) {
            char prefix[200];
            listener_prefix(l, prefix, sizeof(prefix));
            pl_listener_filters_prepare(fc->listener_filters, stats, prefix);
        }
        for (size_t j = 0; j < fc->n; j++)
            if (prepare_chain(&fc->v[j], s, stats, err) < 0)
                rc = PL_EINVAL;
        if (fc->dflt && prepare_chain(fc->dflt, s, stats, err) < 0)
            rc = PL_EINVAL;
        fc->prepared = rc == before;
    }
    return rc;
}

/* ---- accept ---- */

static const struct pl_listener_cfg *find_listener(const struct pl_snapshot *s, const char *name,
                                                   uint64_t hash)
{
    for (size_t i = 0; s && i < s->n_listeners; i++)
        if (s->listeners[i].hash == hash && !strcmp(s->listeners[i].name, name))
            return &s->listeners[i];
    return NULL;
}

static uint32_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

/* Picks the chain for what the listener filters found and hands the connection over. The
 * snapshot pin is taken here unless pinned; on failure it is dropped and fd is the caller's. */
static int hand_over(struct pl_worker *w, struct pl_worker_listener *l,
                     const struct pl_listener_cfg *cfg, const struct pl_snapshot *s,
                     const struct sockaddr_storage *peer, socklen_t peerlen,
                     const struct pl_listener_socket *ls, bool pinned)
{
    const char *lname = pl_worker_listener_name(l);
    unsigned id = pl_worker_id(w);
    struct pl_accept_info info = {
        .worker = w,
        .listener = l,
        .listener_cfg = cfg,
        .snap = s,
        .fd = ls->fd,
        .peer = *peer,
        .peer_len = peerlen,
        .local = ls->local,
        .local_len = ls->local_len,
        .server_name = *ls->server_name ? ls->server_name : NULL,
        .transport_protocol = ls->transport_protocol,
    };
    const char *alpn[PL_TLS_HELLO_MAX_ALPN];
    for (size_t i = 0; i < ls->n_alpn; i++)
        alpn[i] = ls->alpn[i];
    const struct pl_filter_chain *c =
        pl_filter_chain_select(cfg->chains, port_of(&info.local), info.server_name,
                               info.transport_protocol, alpn, ls->n_alpn);
    int rc;
    if (!c) {
        pl_worker_listener_no_filter_chain_match(l);
        pl_log_debug("net", "listener '%s': no filter chain matches (sni '%s', %s): closing", lname,
                     ls->server_name, ls->transport_protocol);
        rc = PL_ENOENT;
    } else if (!c->vt || c->transport_missing) {
        pl_log_debug("net", "listener '%s': filter chain '%s' cannot serve (%s): closing", lname,
                     c->name, c->vt ? "transport socket not built in" : c->filter_name);
        rc = PL_ENOTSUP;
    } else {
        info.chain = c;
        if (!pinned)
            pl_snapshot_pin(s, id);
        pinned = true;
        rc = c->vt->on_accept(&info, c->cfg);
    }
    if (rc < 0 && pinned)
        pl_snapshot_unpin(s, id);
    return rc;
}

/* A connection waiting for its listener filters (registered with the worker meanwhile, so
 * that a listener removal or a stopping worker reaches it). */
struct lf_pending {
    struct pl_worker_conn wc;
    struct pl_worker *w;
    struct pl_worker_listener *l;
    const struct pl_listener_cfg *cfg;
    const struct pl_snapshot *snap; /* pinned */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int fd;
    struct pl_listener_run *run;
};

static void lf_pending_close(struct pl_worker_conn *wc)
{
    struct lf_pending *p = (struct lf_pending *)wc;
    pl_listener_run_cancel(p->run);
    close(p->fd);
    pl_snapshot_unpin(p->snap, pl_worker_id(p->w));
    pl_worker_conn_remove(&p->wc);
    free(p);
}

static int lf_pending_accept_unused(struct pl_worker *w, struct pl_worker_listener *l, int fd,
                                    const struct sockaddr *peer, socklen_t peerlen)
{
    (void)w, (void)l, (void)fd, (void)peer, (void)peerlen;
    return PL_ENOTSUP;
}

static const struct pl_conn_handler_vtable lf_pending_handler = {
    .name = "pillion.listener_filters",
    .on_accept = lf_pending_accept_unused, /* never an accept handler of its own */
    .drain_conn = NULL,                    /* finish the filters; the chain's filter drains */
    .close_conn = lf_pending_close,
};

static void lf_done(void *arg, struct pl_listener_socket *ls, enum pl_lf_status st)
{
    struct lf_pending *p = arg;
    int rc = PL_EIO;
    if (st == PL_LF_CONTINUE)
        rc = hand_over(p->w, p->l, p->cfg, p->snap, &p->peer, p->peer_len, ls, true);
    else
        pl_snapshot_unpin(p->snap, pl_worker_id(p->w));
    if (rc < 0)
        close(p->fd);
    /* after the chain's filter registered its connection: the listener entry stays alive */
    pl_worker_conn_remove(&p->wc);
    free(p);
}

static int chain_accept(struct pl_worker *w, struct pl_worker_listener *l, int fd,
                        const struct sockaddr *peer, socklen_t peerlen)
{
    const char *lname = pl_worker_listener_name(l);
    const struct pl_snapshot *s = pl_snapshot_current();
    const struct pl_listener_cfg *cfg = find_listener(s, lname, pl_worker_listener_hash(l));
    if (!cfg || !cfg->chains) {
        pl_log_debug("net", "listener '%s': not in the current configuration: closing", lname);
        return PL_ENOENT;
    }
    struct sockaddr_storage peer_ss;
    if (peerlen > sizeof(peer_ss))
        peerlen = sizeof(peer_ss);
    memcpy(&peer_ss, peer, peerlen);
    struct pl_listener_socket ls;
    pl_listener_socket_init(&ls, fd);
    const struct pl_listener_filters *lf = cfg->chains->listener_filters;
    if (!lf)
        return hand_over(w, l, cfg, s, &peer_ss, peerlen, &ls, false);
    struct lf_pending *p = pl_calloc(1, sizeof(*p));
    enum pl_lf_status st = pl_listener_filters_run(lf, pl_worker_loop(w), &ls, lf_done, p, &p->run);
    if (st != PL_LF_WAIT) {
        free(p);
        if (st != PL_LF_CONTINUE)
            return PL_EIO;
        return hand_over(w, l, cfg, s, &peer_ss, peerlen, &ls, false);
    }
    p->w = w;
    p->l = l;
    p->cfg = cfg;
    p->snap = s;
    p->peer = peer_ss;
    p->peer_len = peerlen;
    p->fd = fd;
    pl_snapshot_pin(s, pl_worker_id(w));
    pl_worker_conn_add(w, l, &p->wc, &lf_pending_handler);
    return 0;
}

static void chain_close_unreachable(struct pl_worker_conn *c)
{
    pl_worker_conn_remove(c);
}

const struct pl_conn_handler_vtable pl_net_chain_handler = {
    .name = "pillion.filter_chains",
    .on_accept = chain_accept,
    .drain_conn = NULL,
    .close_conn = chain_close_unreachable, /* filters register their own handler per cx */
};

void pl_net_accepted_keep(struct pl_net_accepted *a, const struct pl_accept_info *info,
                          const struct pl_conn_handler_vtable *h)
{
    a->worker = info->worker;
    a->snap = info->snap;
    a->kept = true;
    pl_worker_conn_add(info->worker, info->listener, &a->wc, h);
}

void pl_net_accepted_release(struct pl_net_accepted *a)
{
    if (!a->kept)
        return;
    a->kept = false;
    pl_worker_conn_remove(&a->wc);
    pl_snapshot_unpin(a->snap, pl_worker_id(a->worker));
}
