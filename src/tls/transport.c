/* The TLS transport socket (envoy.transport_sockets.tls) for net/conn.h: compiles a filter
 * chain's DownstreamTlsContext or a cluster's UpstreamTlsContext into a shared context, and runs
 * one pl_tls_conn per connection behind pl_transport_vtable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "net/conn.h"
#include "net/filter.h"
#include "tls/tls.h"

struct tls_transport {
    struct pl_transport base; /* first: conn.c sees only this */
    struct pl_tls_conn *tls;
    bool ready; /* handshake done and reported with pl_conn_transport_ready */
};

static int tls_compile(const ProtobufCMessage *config, const struct pl_compile_ctx *cx, bool server,
                       void **out, struct pl_err *err)
{
    *out = NULL;
    bool down = config->descriptor ==
                &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor;
    const char *who = cx && cx->listener_name ? cx->listener_name : "?";
    char *path = server ? pl_asprintf("listener '%s': transport_socket.typed_config", who)
                        : pl_asprintf("cluster '%s': transport_socket.typed_config", who);
    int rc;
    if (down != server) {
        rc = pl_err_add(err, NULL, 0, 0, path, "%s needs a %s, not a %s",
                        server ? "a listener's filter chain" : "a cluster",
                        server ? "DownstreamTlsContext" : "UpstreamTlsContext",
                        config->descriptor->short_name);
    } else if (server) {
        rc = pl_tls_ctx_downstream((const PL_TLS_DOWNSTREAM_T *)config, path,
                                   (struct pl_tls_ctx **)out, err);
    } else {
        rc = pl_tls_ctx_upstream((const PL_TLS_UPSTREAM_T *)config, path, (struct pl_tls_ctx **)out,
                                 err);
    }
    free(path);
    return rc;
}

static void tls_free_cfg(void *cfg)
{
    pl_tls_ctx_unref(cfg);
}

static struct pl_transport *tls_create(void *cfg, struct pl_conn *c, int fd, bool server);

/* Records why the session failed where the connection reports it (conn.c keeps the first). */
static int broken(struct tls_transport *t)
{
    struct pl_conn *c = t->base.conn;
    if (!c->err_text[0])
        snprintf(c->err_text, sizeof(c->err_text), "TLS error: %s", pl_tls_conn_error(t->tls));
    pl_log_debug("tls", "fd %d: %s", t->base.fd, pl_tls_conn_error(t->tls));
    return EPROTO;
}

/* Advances the handshake: 0 when it is done (and reported), EAGAIN, or an errno value. After a
 * 0 the caller must check that the connection still has this transport: the owner may close
 * the connection from its CONNECTED callback. */
static int step(struct tls_transport *t)
{
    if (t->ready)
        return 0;
    int rc = pl_tls_conn_handshake(t->tls);
    t->base.flags &= ~(unsigned)PL_TRANSPORT_READ_NEEDS_WRITABLE;
    if (rc == PL_EAGAIN) {
        if (pl_tls_conn_want_write(t->tls))
            t->base.flags |= PL_TRANSPORT_READ_NEEDS_WRITABLE;
        return EAGAIN;
    }
    if (rc)
        return broken(t);
    t->ready = true;
    pl_log_trace("tls", "fd %d: handshake done: %s, alpn %s, sni %s", t->base.fd,
                 pl_tls_conn_version(t->tls),
                 pl_tls_conn_alpn(t->tls) ? pl_tls_conn_alpn(t->tls) : "-",
                 pl_tls_conn_sni(t->tls) ? pl_tls_conn_sni(t->tls) : "-");
    pl_conn_transport_ready(t->base.conn);
    return 0;
}

static int tls_on_connected(struct pl_transport *tp)
{
    int rc = step((struct tls_transport *)tp);
    return rc == EAGAIN ? 0 : rc;
}

static void tls_read(struct pl_transport *tp, struct pl_buf *in, size_t max, struct pl_io_result *r)
{
    struct tls_transport *t = (struct tls_transport *)tp;
    struct pl_conn *c = tp->conn;
    if (!t->ready) {
        int rc = step(t);
        if (rc == EAGAIN)
            return;
        if (rc) {
            r->err = rc;
            return;
        }
        if (c->transport != tp) /* closed by its owner on CONNECTED */
            return;
    }
    ssize_t n = pl_tls_conn_read(t->tls, in, max);
    tp->flags &= ~(unsigned)PL_TRANSPORT_READ_NEEDS_WRITABLE;
    if (n > 0) {
        r->bytes = (size_t)n;
        if ((size_t)n == max && pl_tls_conn_pending(t->tls))
            pl_conn_transport_readable(c); /* decrypted bytes wait inside OpenSSL */
    } else if (n == 0) {
        r->eof = true;
    } else if (n == PL_EAGAIN) {
        if (pl_tls_conn_want_write(t->tls))
            tp->flags |= PL_TRANSPORT_READ_NEEDS_WRITABLE;
    } else {
        r->err = broken(t);
    }
}

static void tls_write(struct pl_transport *tp, struct pl_buf *out, struct pl_io_result *r)
{
    struct tls_transport *t = (struct tls_transport *)tp;
    if (!t->ready) {
        int rc = step(t);
        if (rc == EAGAIN)
            return;
        if (rc) {
            r->err = rc;
            return;
        }
        if (tp->conn->transport != tp)
            return;
    }
    if (out->len == 0)
        return;
    ssize_t n = pl_tls_conn_write(t->tls, out);
    tp->flags &= ~(unsigned)PL_TRANSPORT_WRITE_NEEDS_READABLE;
    if (n > 0)
        r->bytes = (size_t)n;
    else if (n == PL_EAGAIN && !pl_tls_conn_want_write(t->tls))
        tp->flags |= PL_TRANSPORT_WRITE_NEEDS_READABLE;
    else if (n != PL_EAGAIN)
        r->err = broken(t);
}

static void tls_shutdown_write(struct pl_transport *tp)
{
    struct tls_transport *t = (struct tls_transport *)tp;
    /* close_notify, then FIN for peers that only watch TCP; a close_notify the socket cannot
     * take now is dropped rather than waited for (the connection is finishing anyway) */
    if (t->ready && pl_tls_conn_shutdown(t->tls) == 0)
        shutdown(tp->fd, SHUT_WR);
    else if (!t->ready)
        shutdown(tp->fd, SHUT_WR);
}

static void tls_destroy(struct pl_transport *tp)
{
    struct tls_transport *t = (struct tls_transport *)tp;
    pl_tls_conn_free(t->tls);
    free(t);
}

static const char *tls_protocol(const struct pl_transport *tp)
{
    return pl_tls_conn_alpn(((const struct tls_transport *)tp)->tls);
}

static const char *tls_failure_reason(const struct pl_transport *tp)
{
    const char *e = pl_tls_conn_error(((const struct tls_transport *)tp)->tls);
    return *e ? e : NULL;
}

/* Two registrations of one transport: the registry finds a transport by its config type, and
 * listeners and clusters use different ones. */
const struct pl_transport_vtable pl_tls_transport_downstream = {
    .name = "envoy.transport_sockets.tls",
    .config = &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor,
    .compile = tls_compile,
    .free_cfg = tls_free_cfg,
    .create = tls_create,
    .on_connected = tls_on_connected,
    .read = tls_read,
    .write = tls_write,
    .shutdown_write = tls_shutdown_write,
    .destroy = tls_destroy,
    .protocol = tls_protocol,
    .failure_reason = tls_failure_reason,
};

const struct pl_transport_vtable pl_tls_transport_upstream = {
    .name = "envoy.transport_sockets.tls (upstream)",
    .config = &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor,
    .compile = tls_compile,
    .free_cfg = tls_free_cfg,
    .create = tls_create,
    .on_connected = tls_on_connected,
    .read = tls_read,
    .write = tls_write,
    .shutdown_write = tls_shutdown_write,
    .destroy = tls_destroy,
    .protocol = tls_protocol,
    .failure_reason = tls_failure_reason,
};

static struct pl_transport *tls_create(void *cfg, struct pl_conn *c, int fd, bool server)
{
    struct pl_tls_ctx *ctx = cfg;
    if (!ctx || (pl_tls_ctx_role(ctx) == PL_TLS_SERVER) != server) {
        pl_log_error("tls", "fd %d: no TLS context for this %s connection", fd,
                     server ? "accepted" : "outbound");
        return NULL;
    }
    struct tls_transport *t = pl_calloc(1, sizeof(*t));
    t->base.vt = server ? &pl_tls_transport_downstream : &pl_tls_transport_upstream;
    t->base.conn = c;
    t->base.fd = fd;
    t->tls = pl_tls_conn_new(ctx, fd, NULL);
    return &t->base;
}

void pl_tls_register_transports(void)
{
    if (!pl_transport_by_type_url(pl_tls_transport_downstream.config->name))
        pl_transport_register(&pl_tls_transport_downstream);
    if (!pl_transport_by_type_url(pl_tls_transport_upstream.config->name))
        pl_transport_register(&pl_tls_transport_upstream);
}

struct pl_tls_conn *pl_tls_transport_session(const struct pl_transport *t)
{
    if (!t || (t->vt != &pl_tls_transport_downstream && t->vt != &pl_tls_transport_upstream))
        return NULL;
    return ((const struct tls_transport *)t)->tls;
}
