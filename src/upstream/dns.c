/* c-ares on the main libev loop: one ev_io per c-ares socket (ARES_OPT_SOCK_STATE_CB) and one
 * timer for c-ares' own timeouts. Lookups use ares_getaddrinfo (hosts file, then DNS) and keep
 * the TTLs of the answers for respect_dns_ttl. */
#include <ares.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "pl_proto_all.h"
#include "upstream/upstream_internal.h"

#define FAMILY(x) ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__##x

struct up_sock {
    ev_io io;
    struct up_resolver *r;
    struct up_sock *next;
};

struct up_resolver {
    struct ev_loop *loop;
    ares_channel ch;
    ev_timer timer;
    struct up_sock *socks;
    bool freeing;
};

struct up_dns_query {
    struct up_resolver *r;
    up_dns_cb cb;
    void *arg;
    int family;
    bool cancelled;
    bool in_start; /* inside ares_getaddrinfo: the callback may run before it returns */
    bool done;
};

static void update_timer(struct up_resolver *r)
{
    struct timeval tv, *t = ares_timeout(r->ch, NULL, &tv);
    ev_timer_stop(r->loop, &r->timer);
    if (t) {
        ev_timer_set(&r->timer, (double)t->tv_sec + t->tv_usec / 1e6, 0.);
        ev_timer_start(r->loop, &r->timer);
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct up_sock *s = (struct up_sock *)w;
    struct up_resolver *r = s->r;
    ares_socket_t fd = w->fd;
    /* s may be freed inside (socket closed): do not touch it afterwards */
    ares_process_fd(r->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    update_timer(r);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct up_resolver *r = (struct up_resolver *)((char *)w - offsetof(struct up_resolver, timer));
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    update_timer(r);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct up_resolver *r = data;
    struct up_sock **pp = &r->socks, *s;
    while ((s = *pp) && s->io.fd != fd)
        pp = &s->next;
    if (!readable && !writable) {
        if (s) {
            ev_io_stop(r->loop, &s->io);
            *pp = s->next;
            free(s);
        }
        return;
    }
    if (!s) {
        s = pl_calloc(1, sizeof(*s));
        s->r = r;
        s->next = r->socks;
        r->socks = s;
        ev_io_init(&s->io, io_cb, fd, 0);
    }
    ev_io_stop(r->loop, &s->io);
    ev_io_set(&s->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(r->loop, &s->io);
}

int up_resolver_new(struct ev_loop *loop, const char *servers, struct up_resolver **out,
                    struct pl_err *err)
{
    static int lib_once;
    if (!lib_once++) {
        int rc = ares_library_init(ARES_LIB_INIT_ALL);
        if (rc != ARES_SUCCESS)
            return pl_err_add(err, NULL, 0, 0, NULL, "c-ares: %s", ares_strerror(rc));
    }
    struct up_resolver *r = pl_calloc(1, sizeof(*r));
    r->loop = loop;
    ev_timer_init(&r->timer, timer_cb, 0., 0.);
    struct ares_options o = {.sock_state_cb = sock_state_cb, .sock_state_cb_data = r};
    int rc = ares_init_options(&r->ch, &o, ARES_OPT_SOCK_STATE_CB);
    if (rc == ARES_SUCCESS && servers && *servers)
        rc = ares_set_servers_ports_csv(r->ch, servers);
    if (rc != ARES_SUCCESS) {
        if (r->ch)
            ares_destroy(r->ch);
        free(r);
        return pl_err_add(err, NULL, 0, 0, NULL, "c-ares: %s", ares_strerror(rc));
    }
    *out = r;
    return 0;
}

void up_resolver_free(struct up_resolver *r)
{
    if (!r)
        return;
    r->freeing = true;
    ares_destroy(r->ch); /* runs pending callbacks with ARES_EDESTRUCTION; closes sockets */
    while (r->socks) {
        struct up_sock *s = r->socks;
        r->socks = s->next;
        ev_io_stop(r->loop, &s->io);
        free(s);
    }
    ev_timer_stop(r->loop, &r->timer);
    free(r);
}

static void finish(struct up_dns_query *q, int status, const struct sockaddr_storage *addrs,
                   size_t n, uint32_t ttl)
{
    if (!q->cancelled)
        q->cb(q->arg, status, addrs, n, ttl);
    q->done = true;
    if (!q->in_start)
        free(q);
}

/* Chooses the addresses of the wanted family (Envoy's DnsLookupFamily semantics): AUTO prefers
 * IPv6 and falls back to IPv4, V4_PREFERRED the other way round, ALL keeps both. */
static void addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct up_dns_query *q = arg;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        q->cancelled = true;
        finish(q, PL_EIO, NULL, 0, 0);
        if (res)
            ares_freeaddrinfo(res);
        return;
    }
    if (status != ARES_SUCCESS || !res) {
        int rc = (status == ARES_ENOTFOUND || status == ARES_ENODATA) ? PL_ENOENT : PL_EIO;
        pl_log_debug("upstream", "dns: %s", ares_strerror(status));
        finish(q, rc, NULL, 0, 0);
        if (res)
            ares_freeaddrinfo(res);
        return;
    }
    bool has4 = false, has6 = false;
    size_t total = 0;
    for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next) {
        has4 |= n->ai_family == AF_INET;
        has6 |= n->ai_family == AF_INET6;
        total++;
    }
    int want = AF_UNSPEC;
    if (q->family == FAMILY(AUTO))
        want = has6 ? AF_INET6 : AF_INET;
    else if (q->family == FAMILY(V4_PREFERRED))
        want = has4 ? AF_INET : AF_INET6;
    else if (q->family == FAMILY(V4_ONLY))
        want = AF_INET;
    else if (q->family == FAMILY(V6_ONLY))
        want = AF_INET6;
    struct sockaddr_storage *addrs = pl_calloc(total + 1, sizeof(*addrs));
    size_t n_out = 0;
    uint32_t ttl = UINT32_MAX;
    for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next) {
        if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
            (want != AF_UNSPEC && n->ai_family != want))
            continue;
        size_t len =
            n->ai_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if ((size_t)n->ai_addrlen < len)
            continue;
        struct sockaddr_storage ss = {0};
        memcpy(&ss, n->ai_addr, len);
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = 0;
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
        bool dup = false;
        for (size_t i = 0; i < n_out && !dup; i++)
            dup = !memcmp(&addrs[i], &ss, sizeof(ss));
        if (dup)
            continue;
        addrs[n_out++] = ss;
        if (n->ai_ttl >= 0 && (uint32_t)n->ai_ttl < ttl)
            ttl = (uint32_t)n->ai_ttl;
    }
    ares_freeaddrinfo(res);
    if (ttl == UINT32_MAX)
        ttl = 0;
    finish(q, n_out ? 0 : PL_ENOENT, addrs, n_out, ttl);
    free(addrs);
}

struct up_dns_query *up_resolve(struct up_resolver *r, const char *name, int family, up_dns_cb cb,
                                void *arg)
{
    struct up_dns_query *q = pl_calloc(1, sizeof(*q));
    *q = (struct up_dns_query){.r = r, .cb = cb, .arg = arg, .family = family, .in_start = true};
    struct ares_addrinfo_hints hints = {.ai_flags = ARES_AI_NOSORT};
    hints.ai_family = family == FAMILY(V4_ONLY)   ? AF_INET
                      : family == FAMILY(V6_ONLY) ? AF_INET6
                                                  : AF_UNSPEC;
    ares_getaddrinfo(r->ch, name, NULL, &hints, addrinfo_cb, q);
    q->in_start = false;
    update_timer(r);
    if (q->done) {
        free(q);
        return NULL;
    }
    return q;
}

void up_dns_cancel(struct up_dns_query *q)
{
    if (q)
        q->cancelled = true; /* freed when c-ares calls back (answer, timeout or destroy) */
}
