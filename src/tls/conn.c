/* A TLS session over a non-blocking socket: handshake, record I/O into and out of pl_buf,
 * close_notify, and what the handshake established (ALPN, SNI, peer identity). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls_internal.h"

struct pl_tls_conn {
    SSL *ssl;
    struct pl_tls_ctx *ctx;
    bool established;
    bool want_write;
    bool failed;
    bool san_mismatch;
    int sock_err; /* the socket's pending error (a reset by the peer), seen mid-handshake */
    bool shutdown_sent;
    bool peer_verified;
    bool eof;       /* close_notify or EOF seen: reads return 0 from now on */
    char alpn[256]; /* NUL-terminated copy of the negotiated protocol */
    char *sni;
    char *peer_uri;
    char err[256];
};

struct pl_tls_conn *pl_tls_conn_new(struct pl_tls_ctx *ctx, int fd, const char *sni)
{
    struct pl_tls_conn *t = pl_calloc(1, sizeof(*t));
    t->ctx = pl_tls_ctx_ref(ctx);
    t->ssl = SSL_new(ctx->ssl);
    if (!t->ssl || !SSL_set_fd(t->ssl, fd))
        pl_die("SSL_new failed (out of memory)");
    SSL_set_app_data(t->ssl, t);
    if (ctx->role == PL_TLS_SERVER) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        const char *name = sni ? sni : ctx->sni;
        if (name && *name) {
            t->sni = pl_strdup(name);
            if (!SSL_set_tlsext_host_name(t->ssl, t->sni))
                pl_die("SSL_set_tlsext_host_name failed");
        }
    }
    return t;
}

void pl_tls_conn_free(struct pl_tls_conn *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    pl_tls_ctx_unref(t->ctx);
    free(t->sni);
    free(t->peer_uri);
    free(t);
}

void pl_tls_conn_note_san_mismatch(SSL *ssl)
{
    struct pl_tls_conn *t = SSL_get_app_data(ssl);
    if (t)
        t->san_mismatch = true;
}

/* True (remembering the error) if the socket has a pending error: the peer reset the
 * connection, typically. The kernel still hands out what arrived before a reset, and OpenSSL
 * would parse and verify the peer's certificate, build session tickets it cannot send (it
 * ignores a reset while sending them, for peers that close right after their Finished) and
 * call the handshake complete: CPU spent on a connection that is gone. Clients that reset
 * right behind their last flight are common among probes and load generators (openssl
 * s_time), and among clients that give up on an overloaded server. */
static bool socket_failed(struct pl_tls_conn *t)
{
    int fd = SSL_get_fd(t->ssl), e = 0;
    socklen_t n = sizeof(e);
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &n) < 0 || e == 0)
        return false;
    t->sock_err = e;
    return true;
}

bool pl_tls_conn_note_socket_error(SSL *ssl)
{
    struct pl_tls_conn *t = SSL_get_app_data(ssl);
    return t && !t->established && socket_failed(t);
}

/* Records why the session failed, in the order a user needs it: a reset connection, our SAN
 * check, OpenSSL's certificate verification, then the TLS library's own reason. */
static void set_error(struct pl_tls_conn *t, int sslerr)
{
    t->failed = true;
    long vr = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_error();
    if (t->sock_err) {
        snprintf(t->err, sizeof(t->err), "%s during the TLS handshake", strerror(t->sock_err));
    } else if (t->san_mismatch) {
        snprintf(t->err, sizeof(t->err),
                 "peer certificate does not match any of match_typed_subject_alt_names");
    } else if (vr != X509_V_OK) {
        snprintf(t->err, sizeof(t->err), "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e) {
        const char *r = ERR_reason_error_string(e);
        snprintf(t->err, sizeof(t->err), "%s", r ? r : "TLS error");
    } else if (sslerr == SSL_ERROR_SYSCALL) {
        snprintf(t->err, sizeof(t->err), "%s",
                 errno ? strerror(errno) : "connection closed during the TLS handshake");
    } else if (sslerr == SSL_ERROR_ZERO_RETURN) {
        snprintf(t->err, sizeof(t->err), "peer sent close_notify");
    } else {
        snprintf(t->err, sizeof(t->err), "TLS error %d", sslerr);
    }
    ERR_clear_error();
}

/* Maps an OpenSSL result to PL_EAGAIN (remembering the direction) or PL_EIO. */
static int io_error(struct pl_tls_conn *t, int ret)
{
    int e = SSL_get_error(t->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        t->want_write = false;
        return PL_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        t->want_write = true;
        return PL_EAGAIN;
    default:
        set_error(t, e);
        return PL_EIO;
    }
}

static void on_established(struct pl_tls_conn *t)
{
    t->established = true;
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n && n < sizeof(t->alpn)) {
        memcpy(t->alpn, p, n);
        t->alpn[n] = '\0';
    }
    if (t->ctx->role == PL_TLS_SERVER) {
        const char *name = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
        if (name)
            t->sni = pl_strdup(name);
    }
    X509 *peer = SSL_get1_peer_certificate(t->ssl);
    if (peer) {
        t->peer_verified = t->ctx->verify && SSL_get_verify_result(t->ssl) == X509_V_OK;
        t->peer_uri = pl_tls_san_first_uri(peer);
        X509_free(peer);
    }
}

int pl_tls_conn_handshake(struct pl_tls_conn *t)
{
    if (t->established)
        return 0;
    if (t->failed)
        return PL_EIO;
    if (socket_failed(t)) {
        set_error(t, 0);
        return PL_EIO;
    }
    ERR_clear_error();
    int ret = SSL_do_handshake(t->ssl);
    if (ret == 1) {
        t->want_write = false;
        on_established(t);
        return 0;
    }
    return io_error(t, ret);
}

bool pl_tls_conn_established(const struct pl_tls_conn *t)
{
    return t->established;
}

ssize_t pl_tls_conn_read(struct pl_tls_conn *t, struct pl_buf *b, size_t max)
{
    int rc = pl_tls_conn_handshake(t);
    if (rc)
        return rc;
    if (t->eof)
        return 0;
    size_t total = 0;
    while (total < max) {
        /* decrypt straight into b: the free end of its last slice, else a fresh slice */
        struct pl_buf_slice *s = b->tail, *fresh = NULL;
        if (!s || s->end >= s->cap)
            s = fresh = pl_buf_slice_new();
        size_t room = s->cap - s->end, got = 0;
        if (room > max - total)
            room = max - total;
        ERR_clear_error();
        int ret = SSL_read_ex(t->ssl, s->data + s->end, room, &got);
        if (ret == 1) {
            s->end += (uint32_t)got;
            if (fresh)
                pl_buf_append_slice(b, fresh);
            else
                b->len += got;
            total += got;
            continue;
        }
        if (fresh)
            pl_buf_append_slice(b, fresh); /* empty: back to the pool */
        int e = SSL_get_error(t->ssl, ret);
        /* close_notify, or EOF without it (OpenSSL 3 reports that as an SSL error) */
        if (e == SSL_ERROR_ZERO_RETURN ||
            (e == SSL_ERROR_SSL &&
             ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
            ERR_clear_error();
            t->eof = true;
            return (ssize_t)total;
        }
        if (total && (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)) {
            t->want_write = e == SSL_ERROR_WANT_WRITE;
            return (ssize_t)total;
        }
        int r = io_error(t, ret);
        return total && r == PL_EIO ? (ssize_t)total : r;
    }
    return (ssize_t)total;
}

ssize_t pl_tls_conn_write(struct pl_tls_conn *t, struct pl_buf *b)
{
    int rc = pl_tls_conn_handshake(t);
    if (rc)
        return rc;
    size_t total = 0;
    while (b->len) {
        struct iovec iov[8];
        size_t n = pl_buf_peek_iov(b, iov, 8), taken = 0;
        for (size_t i = 0; i < n; i++) {
            size_t w = 0;
            ERR_clear_error();
            int ret = SSL_write_ex(t->ssl, iov[i].iov_base, iov[i].iov_len, &w);
            if (ret != 1) {
                pl_buf_drain(b, taken);
                total += taken;
                int r = io_error(t, ret);
                return total ? (ssize_t)total : r;
            }
            taken += w;
            if (w < iov[i].iov_len)
                break;
        }
        pl_buf_drain(b, taken);
        total += taken;
    }
    return (ssize_t)total;
}

int pl_tls_conn_shutdown(struct pl_tls_conn *t)
{
    if (t->shutdown_sent || t->failed || !t->established)
        return t->failed ? PL_EIO : 0;
    ERR_clear_error();
    int ret = SSL_shutdown(t->ssl);
    if (ret >= 0) { /* 0: ours is sent; we do not wait for the peer's */
        t->shutdown_sent = true;
        return 0;
    }
    return io_error(t, ret);
}

bool pl_tls_conn_want_write(const struct pl_tls_conn *t)
{
    return t->want_write;
}

bool pl_tls_conn_pending(const struct pl_tls_conn *t)
{
    return SSL_pending(t->ssl) > 0;
}

const char *pl_tls_conn_error(const struct pl_tls_conn *t)
{
    return t->err;
}

const char *pl_tls_conn_alpn(const struct pl_tls_conn *t)
{
    return t->alpn[0] ? t->alpn : NULL;
}

const char *pl_tls_conn_sni(const struct pl_tls_conn *t)
{
    return t->sni;
}

const char *pl_tls_conn_version(const struct pl_tls_conn *t)
{
    return t->established ? SSL_get_version(t->ssl) : "";
}

bool pl_tls_conn_peer_verified(const struct pl_tls_conn *t)
{
    return t->peer_verified;
}

const char *pl_tls_conn_peer_uri_san(const struct pl_tls_conn *t)
{
    return t->peer_uri;
}

struct pl_tls_ctx *pl_tls_conn_ctx(const struct pl_tls_conn *t)
{
    return t->ctx;
}
