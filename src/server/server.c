/* The server: main loop, workers, listener sockets, signals, drain. See server.h. */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ev.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/publish.h"
#include "core/log.h"
#include "http/access_log.h"
#include "net/filter.h"
#include "pl_proto_all.h"
#include "server/worker_internal.h"

#define DRAIN_POLL_S    0.05
#define DEFAULT_BACKLOG 65535 /* the kernel caps it at net.core.somaxconn, as Envoy's default */

struct pl_server {
    struct pl_server_opts opts;
    struct ev_loop *loop;
    unsigned n_workers;
    struct pl_worker **workers;
    struct pl_worker_env env;
    ev_async wake; /* a listener's last worker reference went away */
    ev_signal sig_term, sig_int, sig_hup, sig_usr1;
    ev_timer drain_timer;
    ev_tstamp drain_deadline;
    struct pl_srv_listener *active;   /* in the order of the current snapshot */
    struct pl_srv_listener *released; /* removed; freed once no worker holds them */
    bool accepting_stopped;           /* drain_listeners or drain: open no more listeners */
    bool draining;
    bool quitting;
    bool workers_stopped;
    int exit_code;
    struct pl_stats *stats;
    bool own_stats;
};

/* ---- addresses and sockets ---- */

static void format_addr(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const void *)ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n && un->sun_path[0] == '\0') /* abstract namespace, shown as Envoy does */
            snprintf(buf, cap, "@%.*s", (int)(n - 1), un->sun_path + 1);
        else
            snprintf(buf, cap, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
    } else {
        snprintf(buf, cap, "(family %d)", ss->ss_family);
    }
}

static bool same_ip_port(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port && x->sin6_port == y->sin6_port &&
               !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
    }
    return false;
}

static int listen_backlog(const struct pl_listener_cfg *cfg)
{
    if (cfg->proto &&
        cfg->proto->descriptor == &envoy__config__listener__v3__listener__descriptor) {
        const Envoy__Config__Listener__V3__Listener *m = (const void *)cfg->proto;
        if (m->tcp_backlog_size && m->tcp_backlog_size->value > 0)
            return m->tcp_backlog_size->value > INT_MAX ? INT_MAX : (int)m->tcp_backlog_size->value;
    }
    return DEFAULT_BACKLOG;
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* Opens one listening socket per worker on cfg's address. IP: SO_REUSEPORT sockets, the first
 * one resolving port 0 for the rest. Unix sockets cannot share a path, so the workers get dups
 * of one socket. */
static int open_sockets(const struct pl_listener_cfg *cfg, struct pl_srv_listener *l, unsigned n,
                        struct pl_err *err)
{
    struct sockaddr_storage addr = cfg->addr;
    socklen_t len = cfg->addrlen;
    char shown[128];
    if (cfg->addr_str)
        snprintf(shown, sizeof(shown), "%s", cfg->addr_str);
    else
        format_addr(&addr, len, shown, sizeof(shown));
    int family = addr.ss_family;
    int backlog = listen_backlog(cfg);
    const char *what = "socket";
    for (unsigned i = 0; i < n; i++)
        l->fds[i] = -1;
    for (unsigned i = 0; i < n; i++) {
        if (family == AF_UNIX && i > 0) {
            what = "dup";
            if ((l->fds[i] = fcntl(l->fds[0], F_DUPFD_CLOEXEC, 0)) < 0)
                goto fail;
            continue;
        }
        what = "socket";
        int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            goto fail;
        l->fds[i] = fd;
        int one = 1;
        if (family != AF_UNIX) {
            what = "setsockopt";
            if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
                setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
                goto fail;
            /* Envoy binds IPv6 listeners V6ONLY unless ipv4_compat is set */
            if (family == AF_INET6 &&
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                goto fail;
        }
        what = "bind";
        if (bind(fd, (struct sockaddr *)&addr, len) < 0)
            goto fail;
        if (i == 0) {
            /* port 0: the kernel picked one; the other workers' sockets join that port */
            struct sockaddr_storage bound;
            socklen_t blen = sizeof(bound);
            what = "getsockname";
            if (getsockname(fd, (struct sockaddr *)&bound, &blen) < 0)
                goto fail;
            if (family != AF_UNIX) {
                addr = bound;
                len = blen;
            }
        }
        what = "listen";
        if (listen(fd, backlog) < 0)
            goto fail;
    }
    l->addr = addr;
    l->addrlen = len;
    format_addr(&addr, len, l->addr_str, sizeof(l->addr_str));
    return 0;
fail:;
    int e = errno;
    close_fds(l->fds, n);
    if (!strcmp(what, "bind"))
        pl_err_add(err, NULL, 0, 0, NULL, "listener '%s': cannot bind %s: %s", cfg->name, shown,
                   strerror(e));
    else
        pl_err_add(err, NULL, 0, 0, NULL, "listener '%s': %s %s: %s", cfg->name, what, shown,
                   strerror(e));
    return PL_EIO;
}

/* Returns true if a listener configured at cfg's address would bind where old is bound
 * (port 0 in the config matches the port the kernel chose for old). */
static bool same_bind_address(const struct pl_srv_listener *old, const struct pl_listener_cfg *cfg)
{
    const struct sockaddr *a = (const struct sockaddr *)&old->addr;
    const struct sockaddr *b = (const struct sockaddr *)&cfg->addr;
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_addr.s_addr == y->sin_addr.s_addr &&
               (y->sin_port == 0 || x->sin_port == y->sin_port);
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) &&
               (y->sin6_port == 0 || x->sin6_port == y->sin6_port);
    }
    return old->addrlen == cfg->addrlen && !memcmp(a, b, cfg->addrlen);
}

/* A changed listener at the same address takes over the old listener's sockets (dup, one per
 * worker) instead of binding new ones, as Envoy does: connections waiting in the old sockets'
 * accept queues are not reset when the old listener's workers close their descriptors. Main
 * thread, before the old listener is removed (its workers still hold the sockets open). */
static int adopt_sockets(const struct pl_srv_listener *old, struct pl_srv_listener *l, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        l->fds[i] = -1;
    for (unsigned i = 0; i < n; i++) {
        if (old->fds[i] < 0 || (l->fds[i] = fcntl(old->fds[i], F_DUPFD_CLOEXEC, 0)) < 0) {
            close_fds(l->fds, n);
            return PL_EIO;
        }
    }
    l->addr = old->addr;
    l->addrlen = old->addrlen;
    memcpy(l->addr_str, old->addr_str, sizeof(l->addr_str));
    return 0;
}

static struct pl_srv_listener *listener_new(const struct pl_listener_cfg *cfg, unsigned n)
{
    struct pl_srv_listener *l = pl_calloc(1, sizeof(*l));
    l->name = pl_strdup(cfg->name);
    l->hash = cfg->hash;
    l->handler = pl_conn_handler_for_listener(cfg);
    l->fds = pl_calloc(n, sizeof(int));
    l->st = pl_calloc(n + 1, sizeof(*l->st));
    atomic_store_explicit(&l->refs, n, memory_order_relaxed);
    return l;
}

static void listener_free(struct pl_srv_listener *l)
{
    free(l->name);
    free(l->fds);
    free(l->st);
    free(l);
}

/* Creates the listener's stats in Envoy's names: listener.<address or stat_prefix>.downstream_cx_*
 * and the per-worker listener.<...>.worker_<n>.downstream_cx_*. Config time, main thread. */
static void listener_stats_init(struct pl_server *srv, struct pl_srv_listener *l,
                                const struct pl_listener_cfg *cfg)
{
    const Envoy__Config__Listener__V3__Listener *proto =
        (const Envoy__Config__Listener__V3__Listener *)cfg->proto;
    char prefix[160];
    if (proto && proto->stat_prefix && *proto->stat_prefix) {
        snprintf(prefix, sizeof(prefix), "listener.%s", proto->stat_prefix);
    } else {
        snprintf(prefix, sizeof(prefix), "listener.%s", l->addr_str);
        for (char *p = prefix + 9; *p; p++)
            if (*p == ':')
                *p = '_';
    }
    char name[256];
    for (unsigned i = 0; i <= srv->n_workers; i++) {
        char scope[200];
        if (i == 0)
            snprintf(scope, sizeof(scope), "%s", prefix);
        else
            snprintf(scope, sizeof(scope), "%s.worker_%u", prefix, i - 1);
        snprintf(name, sizeof(name), "%s.downstream_cx_total", scope);
        l->st[i].cx_total = pl_stats_counter(srv->stats, name);
        snprintf(name, sizeof(name), "%s.downstream_cx_active", scope);
        l->st[i].cx_active = pl_stats_gauge(srv->stats, name);
        if (i == 0) {
            snprintf(name, sizeof(name), "%s.no_filter_chain_match", scope);
            l->st[i].no_filter_chain_match = pl_stats_counter(srv->stats, name);
        }
    }
}

static struct pl_srv_listener *find_active(struct pl_server *srv, const char *name)
{
    for (struct pl_srv_listener *l = srv->active; l; l = l->next)
        if (!strcmp(l->name, name))
            return l;
    return NULL;
}

/* ---- main-loop callbacks ---- */

static void reap_released(struct pl_server *srv)
{
    for (struct pl_srv_listener **pp = &srv->released; *pp;) {
        struct pl_srv_listener *l = *pp;
        if (atomic_load_explicit(&l->refs, memory_order_acquire)) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        pl_log_debug("server", "listener '%s' (%s) closed on every worker", l->name, l->addr_str);
        listener_free(l);
    }
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    reap_released(a->data);
}

static void finish_quit(struct pl_server *srv)
{
    srv->quitting = true;
    ev_timer_stop(srv->loop, &srv->drain_timer);
    ev_break(srv->loop, EVBREAK_ALL);
}

static void drain_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct pl_server *srv = t->data;
    uint64_t active = pl_server_active_connections(srv);
    if (active == 0) {
        pl_log_info("server", "drain complete");
        finish_quit(srv);
    } else if (ev_now(loop) >= srv->drain_deadline) {
        pl_log_info("server", "drain time over with %llu connections open; closing them",
                    (unsigned long long)active);
        finish_quit(srv);
    }
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_server *srv = w->data;
    switch (w->signum) {
    case SIGTERM:
        pl_log_info("server", "caught SIGTERM: draining for up to %.3gs", srv->opts.drain_time_s);
        pl_server_drain_and_quit(srv);
        break;
    case SIGINT:
        pl_log_info("server", "caught SIGINT: exiting");
        pl_server_quit(srv);
        break;
    case SIGUSR1: /* Envoy's log rotation signal */
        pl_log_info("server", "caught SIGUSR1: reopening access logs");
        pl_access_log_reopen_all();
        break;
    default:
        pl_log_info("server", "caught signal %d: ignored", w->signum);
        break;
    }
}

/* ---- public ---- */

static void stop_workers(struct pl_server *srv)
{
    if (srv->workers_stopped)
        return;
    for (unsigned i = 0; i < srv->n_workers; i++)
        if (srv->workers[i])
            pl_worker_stop(srv->workers[i]);
    srv->workers_stopped = true;
}

struct pl_server *pl_server_new(const struct pl_server_opts *opts, struct pl_err *err)
{
    struct pl_server *srv = pl_calloc(1, sizeof(*srv));
    srv->opts = *opts;
    srv->n_workers = opts->concurrency ? opts->concurrency : 1;
    srv->loop = opts->loop ? opts->loop : ev_default_loop(0);
    if (!srv->loop) {
        pl_err_add(err, NULL, 0, 0, NULL, "cannot create the main event loop");
        free(srv);
        return NULL;
    }
    if (pl_publish_init(srv->loop, srv->n_workers) < 0) {
        pl_err_add(err, NULL, 0, 0, NULL, "a server is already running in this process");
        free(srv);
        return NULL;
    }
    signal(SIGPIPE, SIG_IGN);
    ev_async_init(&srv->wake, wake_cb);
    srv->wake.data = srv;
    ev_async_start(srv->loop, &srv->wake); /* keeps pl_server_run's loop alive until quit */
    ev_timer_init(&srv->drain_timer, drain_timer_cb, DRAIN_POLL_S, DRAIN_POLL_S);
    srv->drain_timer.data = srv;
    if (!opts->no_signals) {
        ev_signal_init(&srv->sig_term, signal_cb, SIGTERM);
        ev_signal_init(&srv->sig_int, signal_cb, SIGINT);
        ev_signal_init(&srv->sig_hup, signal_cb, SIGHUP);
        ev_signal_init(&srv->sig_usr1, signal_cb, SIGUSR1);
        ev_signal *sigs[] = {&srv->sig_term, &srv->sig_int, &srv->sig_hup, &srv->sig_usr1};
        for (size_t i = 0; i < 4; i++) {
            sigs[i]->data = srv;
            ev_signal_start(srv->loop, sigs[i]);
            ev_unref(srv->loop);
        }
    }
    srv->stats = opts->stats;
    if (!srv->stats) {
        srv->stats = pl_stats_new();
        srv->own_stats = true;
    }
    srv->env = (struct pl_worker_env){
        .stats = srv->stats,
        .main_loop = srv->loop,
        .main_wake = &srv->wake,
        .drain_time_s = opts->drain_time_s,
    };
    srv->workers = pl_calloc(srv->n_workers, sizeof(*srv->workers));
    for (unsigned i = 0; i < srv->n_workers; i++) {
        srv->workers[i] = pl_worker_new(i, &srv->env);
        if (pl_worker_start(srv->workers[i], err) < 0) {
            pl_server_free(srv);
            return NULL;
        }
    }
    pl_log_debug("server", "started %u workers", srv->n_workers);
    return srv;
}

int pl_server_apply(struct pl_server *srv, struct pl_snapshot *s, struct pl_err *err)
{
    if (!s || srv->workers_stopped)
        return PL_EINVAL;
    size_t n = s->n_listeners;
    struct pl_srv_listener **next = pl_calloc(n ? n : 1, sizeof(*next));
    bool *is_new = pl_calloc(n ? n : 1, sizeof(*is_new));
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct pl_listener_cfg *cfg = &s->listeners[i];
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(s->listeners[j].name, cfg->name)) {
                rc = pl_err_add(err, NULL, 0, 0, NULL, "listener '%s': duplicate name", cfg->name);
                goto fail;
            }
            if (same_ip_port(&s->listeners[j].addr, &cfg->addr)) {
                rc =
                    pl_err_add(err, NULL, 0, 0, NULL,
                               "listener '%s': address %s is already used by listener '%s'",
                               cfg->name, cfg->addr_str ? cfg->addr_str : "", s->listeners[j].name);
                goto fail;
            }
        }
        struct pl_srv_listener *old = find_active(srv, cfg->name);
        if (old && old->hash == cfg->hash) {
            next[i] = old;
            continue;
        }
        if (srv->accepting_stopped)
            continue; /* drained: the config is published but nothing listens any more */
        struct pl_srv_listener *l = listener_new(cfg, srv->n_workers);
        if (old && same_bind_address(old, cfg) && adopt_sockets(old, l, srv->n_workers) == 0)
            pl_log_debug("server", "listener '%s' changed: keeping its sockets", cfg->name);
        else if ((rc = open_sockets(cfg, l, srv->n_workers, err)) < 0) {
            listener_free(l);
            goto fail;
        }
        listener_stats_init(srv, l, cfg);
        next[i] = l;
        is_new[i] = true;
    }
    /* filter chains: resolve clusters and create their stats in the complete snapshot */
    if ((rc = pl_net_prepare(s, srv->stats, err)) < 0)
        goto fail;
    if ((rc = pl_publish(s)) < 0) {
        pl_err_add(err, NULL, 0, 0, NULL, "snapshot cannot be published (already published?)");
        goto fail;
    }

    /* listeners that are gone or changed: every worker closes its socket and drains */
    for (struct pl_srv_listener *l = srv->active, *lnext; l; l = lnext) {
        lnext = l->next;
        bool kept = false;
        for (size_t i = 0; i < n && !kept; i++)
            kept = next[i] == l;
        if (kept)
            continue;
        pl_log_info("server", "listener '%s' (%s) removed: draining", l->name, l->addr_str);
        for (unsigned w = 0; w < srv->n_workers; w++)
            pl_worker_send(srv->workers[w], PL_WCMD_REMOVE, l);
        l->next = srv->released;
        srv->released = l;
    }
    srv->active = NULL;
    struct pl_srv_listener **tail = &srv->active;
    for (size_t i = 0; i < n; i++) {
        if (!next[i])
            continue;
        if (is_new[i]) {
            pl_log_info("server", "listener '%s' listening on %s (%s)", next[i]->name,
                        next[i]->addr_str, next[i]->handler->name);
            for (unsigned w = 0; w < srv->n_workers; w++)
                pl_worker_send(srv->workers[w], PL_WCMD_ADD, next[i]);
        }
        next[i]->next = NULL;
        *tail = next[i];
        tail = &next[i]->next;
    }
    for (unsigned w = 0; w < srv->n_workers; w++)
        pl_worker_send(srv->workers[w], PL_WCMD_SNAPSHOT, NULL);
    free(next);
    free(is_new);
    return 0;

fail:
    for (size_t i = 0; i < n; i++) {
        if (is_new[i]) {
            close_fds(next[i]->fds, srv->n_workers);
            listener_free(next[i]);
        }
    }
    free(next);
    free(is_new);
    return rc < 0 ? rc : PL_EINVAL;
}

int pl_server_run(struct pl_server *srv)
{
    if (!srv->quitting)
        ev_run(srv->loop, 0);
    stop_workers(srv);
    reap_released(srv);
    return srv->exit_code;
}

void pl_server_drain_listeners(struct pl_server *srv)
{
    if (srv->accepting_stopped)
        return;
    pl_log_info("server", "draining listeners: no new connections");
    srv->accepting_stopped = true;
    for (unsigned w = 0; w < srv->n_workers; w++)
        pl_worker_send(srv->workers[w], PL_WCMD_STOP_ACCEPT, NULL);
}

void pl_server_drain_and_quit(struct pl_server *srv)
{
    if (srv->draining || srv->quitting)
        return;
    srv->draining = true;
    srv->accepting_stopped = true;
    for (unsigned w = 0; w < srv->n_workers; w++)
        pl_worker_send(srv->workers[w], PL_WCMD_DRAIN, NULL);
    srv->drain_deadline = ev_now(srv->loop) + srv->opts.drain_time_s;
    ev_timer_again(srv->loop, &srv->drain_timer);
}

void pl_server_quit(struct pl_server *srv)
{
    finish_quit(srv);
}

void pl_server_free(struct pl_server *srv)
{
    if (!srv)
        return;
    stop_workers(srv);
    for (unsigned i = 0; i < srv->n_workers; i++)
        pl_worker_free(srv->workers[i]);
    free(srv->workers);
    while (srv->active) {
        struct pl_srv_listener *l = srv->active;
        srv->active = l->next;
        listener_free(l);
    }
    while (srv->released) {
        struct pl_srv_listener *l = srv->released;
        srv->released = l->next;
        listener_free(l);
    }
    ev_timer_stop(srv->loop, &srv->drain_timer);
    if (!srv->opts.no_signals) {
        ev_signal *sigs[] = {&srv->sig_term, &srv->sig_int, &srv->sig_hup, &srv->sig_usr1};
        for (size_t i = 0; i < 4; i++) {
            ev_ref(srv->loop);
            ev_signal_stop(srv->loop, sigs[i]);
        }
    }
    ev_async_stop(srv->loop, &srv->wake);
    pl_publish_shutdown(); /* workers are gone: frees every snapshot */
    if (srv->own_stats)
        pl_stats_free(srv->stats);
    free(srv);
}

struct ev_loop *pl_server_loop(struct pl_server *srv)
{
    return srv->loop;
}

unsigned pl_server_concurrency(const struct pl_server *srv)
{
    return srv->n_workers;
}

struct pl_worker *pl_server_worker(struct pl_server *srv, unsigned i)
{
    return i < srv->n_workers ? srv->workers[i] : NULL;
}

size_t pl_server_listeners(const struct pl_server *srv, struct pl_server_listener_info *out,
                           size_t cap)
{
    size_t n = 0;
    for (const struct pl_srv_listener *l = srv->active; l; l = l->next, n++) {
        if (n >= cap)
            continue;
        out[n] = (struct pl_server_listener_info){
            .name = l->name,
            .handler = l->handler->name,
            .addr = l->addr,
            .addrlen = l->addrlen,
        };
        memcpy(out[n].addr_str, l->addr_str, sizeof(out[n].addr_str));
    }
    return n;
}

/* Adds the listener's counters (worker < 0) or one worker's counters to out. */
static void add_stats(const struct pl_srv_listener *l, int worker, struct pl_listener_stats *out)
{
    const struct pl_srv_lstats *st = &l->st[worker < 0 ? 0 : 1 + worker];
    out->downstream_cx_total += pl_counter_value(st->cx_total);
    out->downstream_cx_active += (uint64_t)pl_gauge_value(st->cx_active);
}

int pl_server_listener_stats(const struct pl_server *srv, const char *name, int worker,
                             struct pl_listener_stats *out)
{
    memset(out, 0, sizeof(*out));
    const struct pl_srv_listener *l = find_active((struct pl_server *)srv, name);
    if (!l || worker >= (int)srv->n_workers)
        return PL_ENOENT;
    add_stats(l, worker, out);
    return 0;
}

uint64_t pl_server_active_connections(const struct pl_server *srv)
{
    struct pl_listener_stats st = {0};
    for (const struct pl_srv_listener *l = srv->active; l; l = l->next)
        add_stats(l, -1, &st);
    for (const struct pl_srv_listener *l = srv->released; l; l = l->next)
        add_stats(l, -1, &st);
    return st.downstream_cx_active;
}
