/* Worker threads: one libev loop each, RCU reader, accept loop per listener, connection list. */
#include "server/worker.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/publish.h"
#include "pl_proto_all.h"
#include "core/err.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/filter.h"
#include "server/worker_internal.h"

#define ACCEPT_BATCH     64  /* accepts per readiness event, so one listener cannot starve others */
#define ACCEPT_BACKOFF_S 0.1 /* pause after running out of file descriptors */

struct pl_worker_cmd {
    struct pl_worker_cmd *next;
    enum pl_worker_cmd_kind kind;
    struct pl_srv_listener *l;
};

struct pl_worker_listener {
    struct pl_worker_listener *next;
    struct pl_worker *worker;
    struct pl_srv_listener *shared;
    int fd;       /* -1 once it stopped accepting */
    bool removed; /* released as soon as its last connection is gone */
    ev_io io;
    ev_timer backoff;
    ev_timer drain_timer;        /* removed listener: close what is left after drain_time_s */
    struct pl_worker_conn conns; /* list head */
    size_t n_conns;
};

struct pl_worker {
    unsigned id;
    struct pl_worker_env env;
    struct pl_stats_shard *shard; /* this worker's stats; bound on its thread */
    struct ev_loop *loop;
    pthread_t thread;
    bool started;
    ev_async wake;
    ev_prepare prepare;
    ev_check check;
    pthread_mutex_t mu; /* command queue only: control path, never per request */
    struct pl_worker_cmd *cmds, **cmds_tail;
    struct pl_worker_listener *listeners;
    size_t n_conns;
    _Atomic uint64_t generation;
    bool draining; /* new connections are not accepted, open ones were asked to finish */
};

/* ---- handler registry ---- */

#define MAX_HANDLERS 32
static const struct pl_conn_handler_vtable *handlers[MAX_HANDLERS];
static size_t n_handlers;

static int close_on_accept(struct pl_worker *w, struct pl_worker_listener *l, int fd,
                           const struct sockaddr *peer, socklen_t peerlen)
{
    (void)peer;
    (void)peerlen;
    pl_log_debug("server", "worker %u: listener '%s': no handler, closing connection", w->id,
                 l->shared->name);
    close(fd);
    return 0;
}

static void close_conn_unreachable(struct pl_worker_conn *c)
{
    pl_worker_conn_remove(c);
}

const struct pl_conn_handler_vtable pl_conn_handler_close = {
    .name = "pillion.close",
    .on_accept = close_on_accept,
    .drain_conn = NULL,
    .close_conn = close_conn_unreachable,
};

int pl_conn_handler_register(const struct pl_conn_handler_vtable *vt)
{
    if (!vt || !vt->name || !vt->on_accept || !vt->close_conn)
        return PL_EINVAL;
    if (pl_conn_handler_find(vt->name))
        return PL_EEXIST;
    if (n_handlers == MAX_HANDLERS)
        return PL_ENOMEM;
    handlers[n_handlers++] = vt;
    return 0;
}

void pl_conn_handler_clear(void)
{
    n_handlers = 0;
}

const struct pl_conn_handler_vtable *pl_conn_handler_find(const char *name)
{
    for (size_t i = 0; i < n_handlers; i++)
        if (!strcmp(handlers[i]->name, name))
            return handlers[i];
    return NULL;
}

/* The last network filter of the first filter chain (or of the default chain), or NULL. */
static const char *terminal_filter(const struct pl_listener_cfg *l)
{
    if (!l->proto || l->proto->descriptor != &envoy__config__listener__v3__listener__descriptor)
        return NULL;
    const Envoy__Config__Listener__V3__Listener *m = (const void *)l->proto;
    const Envoy__Config__Listener__V3__FilterChain *fc =
        m->n_filter_chains ? m->filter_chains[0] : m->default_filter_chain;
    if (!fc || !fc->n_filters || !fc->filters[fc->n_filters - 1])
        return NULL;
    return fc->filters[fc->n_filters - 1]->name;
}

const struct pl_conn_handler_vtable *pl_conn_handler_for_listener(const struct pl_listener_cfg *l)
{
    const char *name = terminal_filter(l);
    const struct pl_conn_handler_vtable *vt = name ? pl_conn_handler_find(name) : NULL;
    if (!vt && l->chains) /* compiled filter chains: net picks the chain per connection */
        vt = &pl_net_chain_handler;
    return vt ? vt : &pl_conn_handler_close;
}

/* ---- connections ---- */

/* Counts a connection opening (+1) or closing (-1) in the listener's and the worker's gauges. */
static void cx_active_add(const struct pl_worker_listener *l, unsigned worker, int64_t d)
{
    pl_gauge_add(l->shared->st[0].cx_active, d);
    pl_gauge_add(l->shared->st[1 + worker].cx_active, d);
}

static void listener_release(struct pl_worker_listener *wl);

void pl_worker_conn_add(struct pl_worker *w, struct pl_worker_listener *l, struct pl_worker_conn *c,
                        const struct pl_conn_handler_vtable *handler)
{
    c->listener = l;
    c->handler = handler;
    c->next = l->conns.next;
    c->prev = &l->conns;
    l->conns.next->prev = c;
    l->conns.next = c;
    l->n_conns++;
    w->n_conns++;
    cx_active_add(l, w->id, 1);
    if (w->draining && handler->drain_conn)
        handler->drain_conn(c);
}

void pl_worker_conn_remove(struct pl_worker_conn *c)
{
    struct pl_worker_listener *l = c->listener;
    if (!l)
        return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->listener = NULL;
    l->n_conns--;
    l->worker->n_conns--;
    cx_active_add(l, l->worker->id, -1);
    if (l->removed && l->n_conns == 0)
        listener_release(l);
}

static void close_all_conns(struct pl_worker_listener *l)
{
    /* close_conn unlinks c; listener_release must not run under us, so hold the listener */
    bool removed = l->removed;
    l->removed = false;
    while (l->conns.next != &l->conns) {
        struct pl_worker_conn *c = l->conns.next;
        c->handler->close_conn(c);
        if (l->conns.next == c) /* a handler that forgot to unlink: do it for it */
            pl_worker_conn_remove(c);
    }
    l->removed = removed;
}

/* Asks every connection of l to finish; the caller releases l if it was removed and is empty. */
static void drain_all_conns(struct pl_worker_listener *l)
{
    bool removed = l->removed; /* hold l: drain_conn may close connections at once */
    l->removed = false;
    struct pl_worker_conn *c = l->conns.next;
    while (c != &l->conns) {
        struct pl_worker_conn *next = c->next;
        if (c->handler->drain_conn)
            c->handler->drain_conn(c);
        c = next;
    }
    l->removed = removed;
}

/* ---- listeners ---- */

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct pl_worker_listener *l = io->data;
    struct pl_worker *w = l->worker;
    for (int i = 0; i < ACCEPT_BATCH && l->fd >= 0; i++) {
        struct sockaddr_storage peer;
        socklen_t peerlen = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &peerlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            pl_log_warn("server", "worker %u: listener '%s': accept: %s", w->id, l->shared->name,
                        strerror(errno));
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                ev_io_stop(loop, &l->io);
                ev_timer_set(&l->backoff, ACCEPT_BACKOFF_S, 0);
                ev_timer_start(loop, &l->backoff);
            }
            return;
        }
        pl_counter_inc(l->shared->st[0].cx_total);
        pl_counter_inc(l->shared->st[1 + w->id].cx_total);
        const struct pl_conn_handler_vtable *h = l->shared->handler;
        if (h->on_accept(w, l, fd, (struct sockaddr *)&peer, peerlen) < 0)
            close(fd);
    }
}

static void backoff_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct pl_worker_listener *l = t->data;
    if (l->fd >= 0)
        ev_io_start(loop, &l->io);
}

static void drain_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_worker_listener *l = t->data;
    pl_log_info("server", "worker %u: listener '%s': drain time over, closing %zu connections",
                l->worker->id, l->shared->name, l->n_conns);
    close_all_conns(l);
    if (l->n_conns == 0)
        listener_release(l);
}

static void stop_accepting(struct pl_worker_listener *l)
{
    if (l->fd < 0)
        return;
    ev_io_stop(l->worker->loop, &l->io);
    ev_timer_stop(l->worker->loop, &l->backoff);
    close(l->fd);
    l->fd = -1;
}

static void listener_add(struct pl_worker *w, struct pl_srv_listener *sl)
{
    struct pl_worker_listener *l = pl_calloc(1, sizeof(*l));
    l->worker = w;
    l->shared = sl;
    l->fd = sl->fds[w->id];
    l->conns.next = l->conns.prev = &l->conns;
    ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
    l->io.data = l;
    ev_timer_init(&l->backoff, backoff_cb, ACCEPT_BACKOFF_S, 0);
    l->backoff.data = l;
    ev_timer_init(&l->drain_timer, drain_timer_cb, w->env.drain_time_s, 0);
    l->drain_timer.data = l;
    l->next = w->listeners;
    w->listeners = l;
    if (w->draining) {
        stop_accepting(l);
        return;
    }
    ev_io_start(w->loop, &l->io);
    pl_log_debug("server", "worker %u: listener '%s' accepting on %s", w->id, sl->name,
                 sl->addr_str);
}

/* Unlinks and frees a listener entry that has no connections; drops its reference. */
static void listener_release(struct pl_worker_listener *l)
{
    struct pl_worker *w = l->worker;
    stop_accepting(l);
    ev_timer_stop(w->loop, &l->drain_timer);
    for (struct pl_worker_listener **pp = &w->listeners; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    pl_log_debug("server", "worker %u: listener '%s' released", w->id, l->shared->name);
    pl_srv_listener_unref(l->shared, &w->env);
    free(l);
}

static struct pl_worker_listener *listener_find(struct pl_worker *w, struct pl_srv_listener *sl)
{
    for (struct pl_worker_listener *l = w->listeners; l; l = l->next)
        if (l->shared == sl)
            return l;
    return NULL;
}

static void listener_remove(struct pl_worker *w, struct pl_srv_listener *sl)
{
    struct pl_worker_listener *l = listener_find(w, sl);
    if (!l)
        return;
    stop_accepting(l);
    drain_all_conns(l);
    l->removed = true;
    if (l->n_conns == 0) {
        listener_release(l);
        return;
    }
    ev_timer_start(w->loop, &l->drain_timer);
}

void pl_srv_listener_unref(struct pl_srv_listener *l, const struct pl_worker_env *env)
{
    /* control path only (listener removal), so a shared read-modify-write is fine here */
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
        ev_async_send(env->main_loop, (ev_async *)env->main_wake);
}

/* ---- the loop ---- */

static void stop_all(struct pl_worker *w)
{
    while (w->listeners) {
        struct pl_worker_listener *l = w->listeners;
        stop_accepting(l);
        close_all_conns(l);
        if (w->listeners == l) /* close_all_conns did not release it */
            listener_release(l);
    }
    pl_conn_reap_orphans(); /* connections still flushing after their owner closed them */
}

static void run_cmd(struct pl_worker *w, struct pl_worker_cmd *c)
{
    switch (c->kind) {
    case PL_WCMD_ADD:
        listener_add(w, c->l);
        break;
    case PL_WCMD_REMOVE:
        listener_remove(w, c->l);
        break;
    case PL_WCMD_STOP_ACCEPT:
        for (struct pl_worker_listener *l = w->listeners; l; l = l->next)
            stop_accepting(l);
        break;
    case PL_WCMD_DRAIN:
        w->draining = true;
        for (struct pl_worker_listener *l = w->listeners; l; l = l->next)
            stop_accepting(l);
        for (struct pl_worker_listener *l = w->listeners, *next; l; l = next) {
            next = l->next;
            drain_all_conns(l);
            if (l->removed && l->n_conns == 0)
                listener_release(l);
        }
        break;
    case PL_WCMD_SNAPSHOT: {
        const struct pl_snapshot *s = pl_snapshot_current();
        if (s)
            atomic_store_explicit(&w->generation, s->generation, memory_order_relaxed);
        break;
    }
    case PL_WCMD_STOP:
        stop_all(w);
        ev_break(w->loop, EVBREAK_ALL);
        break;
    }
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_worker *w = a->data;
    pthread_mutex_lock(&w->mu);
    struct pl_worker_cmd *c = w->cmds;
    w->cmds = NULL;
    w->cmds_tail = &w->cmds;
    pthread_mutex_unlock(&w->mu);
    while (c) {
        struct pl_worker_cmd *next = c->next;
        run_cmd(w, c);
        free(c);
        c = next;
    }
}

/* Before the loop blocks in epoll: go offline so idle workers never hold up a grace period
 * (going offline is also this iteration's quiescent state). Runs last among prepare watchers. */
static void prepare_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)p;
    (void)revents;
    pl_rcu_offline();
}

/* After epoll returns: back online before any other callback of this iteration runs. */
static void check_cb(struct ev_loop *loop, ev_check *c, int revents)
{
    (void)loop;
    (void)c;
    (void)revents;
    pl_rcu_online();
}

static void *worker_main(void *arg)
{
    struct pl_worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "pl-worker-%u", w->id);
    pthread_setname_np(pthread_self(), name);
    pl_rcu_thread_register();
    pl_stats_shard_bind(w->shard);
    ev_run(w->loop, 0);
    pl_conn_thread_exit();
    pl_stats_shard_bind(NULL);
    pl_rcu_thread_unregister();
    pl_log_debug("server", "worker %u: stopped", w->id);
    return NULL;
}

struct pl_worker *pl_worker_new(unsigned id, const struct pl_worker_env *env)
{
    struct pl_worker *w = pl_calloc(1, sizeof(*w));
    w->id = id;
    w->env = *env;
    w->shard = pl_stats_shard_new(env->stats);
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop)
        pl_die("ev_loop_new failed");
    pthread_mutex_init(&w->mu, NULL);
    w->cmds_tail = &w->cmds;
    ev_async_init(&w->wake, wake_cb);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    ev_prepare_init(&w->prepare, prepare_cb);
    ev_set_priority(&w->prepare, EV_MINPRI);
    ev_prepare_start(w->loop, &w->prepare);
    ev_unref(w->loop);
    ev_check_init(&w->check, check_cb);
    ev_set_priority(&w->check, EV_MAXPRI);
    ev_check_start(w->loop, &w->check);
    ev_unref(w->loop);
    return w;
}

int pl_worker_start(struct pl_worker *w, struct pl_err *err)
{
    sigset_t all, old;
    sigfillset(&all);
    /* signals go to the main thread's loop, never to a worker */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pl_err_add(err, NULL, 0, 0, NULL, "cannot start worker %u: %s", w->id, strerror(rc));
        return PL_EIO;
    }
    w->started = true;
    return 0;
}

void pl_worker_send(struct pl_worker *w, enum pl_worker_cmd_kind kind, struct pl_srv_listener *l)
{
    struct pl_worker_cmd *c = pl_calloc(1, sizeof(*c));
    c->kind = kind;
    c->l = l;
    pthread_mutex_lock(&w->mu);
    *w->cmds_tail = c;
    w->cmds_tail = &c->next;
    pthread_mutex_unlock(&w->mu);
    ev_async_send(w->loop, &w->wake);
}

void pl_worker_stop(struct pl_worker *w)
{
    if (!w->started)
        return;
    pl_worker_send(w, PL_WCMD_STOP, NULL);
    pthread_join(w->thread, NULL);
    w->started = false;
}

void pl_worker_free(struct pl_worker *w)
{
    if (!w)
        return;
    pl_worker_stop(w);
    /* commands a worker never ran (it never started): give back what they carried */
    for (struct pl_worker_cmd *c = w->cmds, *next; c; c = next) {
        next = c->next;
        if (c->kind == PL_WCMD_ADD) {
            close(c->l->fds[w->id]);
            pl_srv_listener_unref(c->l, &w->env);
        }
        free(c);
    }
    stop_all(w);
    ev_ref(w->loop);
    ev_prepare_stop(w->loop, &w->prepare);
    ev_ref(w->loop);
    ev_check_stop(w->loop, &w->check);
    ev_async_stop(w->loop, &w->wake);
    ev_loop_destroy(w->loop);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* ---- accessors ---- */

unsigned pl_worker_id(const struct pl_worker *w)
{
    return w->id;
}

struct ev_loop *pl_worker_loop(struct pl_worker *w)
{
    return w->loop;
}

size_t pl_worker_conn_count(const struct pl_worker *w)
{
    return w->n_conns;
}

uint64_t pl_worker_generation(const struct pl_worker *w)
{
    return atomic_load_explicit(&w->generation, memory_order_relaxed);
}

struct pl_worker *pl_worker_listener_worker(struct pl_worker_listener *l)
{
    return l->worker;
}

const char *pl_worker_listener_name(const struct pl_worker_listener *l)
{
    return l->shared->name;
}

uint64_t pl_worker_listener_hash(const struct pl_worker_listener *l)
{
    return l->shared->hash;
}

void pl_worker_listener_no_filter_chain_match(struct pl_worker_listener *l)
{
    pl_counter_inc(l->shared->st[0].no_filter_chain_match);
}

void pl_worker_listener_stats(const struct pl_worker_listener *l, struct pl_listener_stats *out)
{
    const struct pl_srv_lstats *s = &l->shared->st[1 + l->worker->id];
    out->downstream_cx_total = pl_counter_value(s->cx_total);
    out->downstream_cx_active = (uint64_t)pl_gauge_value(s->cx_active);
}
