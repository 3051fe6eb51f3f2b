/* TLS with OpenSSL: contexts compiled from Envoy's DownstreamTlsContext / UpstreamTlsContext,
 * TLS sessions over a non-blocking socket, and the ClientHello inspector (tls_inspector).
 *
 * A compiled context (struct pl_tls_ctx) is immutable and reference counted: the snapshot holds
 * one reference, every connection holds one for its whole life, so a context can be swapped
 * (certificate rotation) without touching live connections. Compiling happens on the main thread;
 * contexts are then shared read-only by all workers (OpenSSL's SSL_CTX is thread-safe for that).
 */
#ifndef PL_TLS_TLS_H
#define PL_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/err.h"
#include "pl_proto_all.h"

#define PL_TLS_DOWNSTREAM_T Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext
#define PL_TLS_UPSTREAM_T   Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext

enum pl_tls_role {
    PL_TLS_SERVER, /* downstream: we accept and present the server certificate */
    PL_TLS_CLIENT, /* upstream: we connect, offer ALPN, send SNI */
};

struct pl_tls_ctx; /* opaque, immutable after compile, refcounted */

/* Compiles a DownstreamTlsContext into a server context; *out holds one reference (the caller's).
 * path prefixes the field paths of errors ("...filter_chains[0].transport_socket.typed_config").
 * Returns 0, PL_EINVAL (bad file, PEM, key mismatch, ...) or PL_ENOTSUP, details in err. */
int pl_tls_ctx_downstream(const PL_TLS_DOWNSTREAM_T *cfg, const char *path, struct pl_tls_ctx **out,
                          struct pl_err *err);
/* Compiles an UpstreamTlsContext into a client context; as pl_tls_ctx_downstream. */
int pl_tls_ctx_upstream(const PL_TLS_UPSTREAM_T *cfg, const char *path, struct pl_tls_ctx **out,
                        struct pl_err *err);
/* Compiles a listener's or cluster's transport_socket: *out = NULL for none or raw_buffer, else
 * a context of the given role (DownstreamTlsContext for servers, UpstreamTlsContext for
 * clients); the caller owns the reference. path names the transport_socket field. */
int pl_tls_ctx_from_transport_socket(const Envoy__Config__Core__V3__TransportSocket *ts,
                                     enum pl_tls_role role, const char *path,
                                     struct pl_tls_ctx **out, struct pl_err *err);
/* Takes another reference (any thread); returns c. */
struct pl_tls_ctx *pl_tls_ctx_ref(struct pl_tls_ctx *c);
/* Drops a reference (any thread); the last one frees the context. NULL is ignored. */
void pl_tls_ctx_unref(struct pl_tls_ctx *c);
/* Returns the role the context was compiled for. */
enum pl_tls_role pl_tls_ctx_role(const struct pl_tls_ctx *c);
/* Returns true if the context's alpn_protocols lists proto (e.g. "h2"). */
bool pl_tls_ctx_has_alpn(const struct pl_tls_ctx *c, const char *proto);

/* Reads a DataSource (filename, inline_string, inline_bytes) into a malloc'd NUL-terminated
 * buffer; errors name path. */
int pl_tls_read_source(const Envoy__Config__Core__V3__DataSource *ds, const char *path, char **out,
                       size_t *len, struct pl_err *err);

/* ---- client TLS for another TLS stack (the gRPC channel to the control plane) ---- */

/* What libgrpc's TLS needs from an UpstreamTlsContext, compiled as for a cluster first (so
 * files, keys, SAN matchers and their errors are the same). */
struct pl_tls_client_material {
    bool tls;           /* false: plaintext (no transport_socket, or raw_buffer) */
    bool verify_server; /* verify the server's chain (against root_pem, or the system's roots) */
    char *root_pem;     /* trusted CAs, or NULL */
    char *cert_pem;     /* client certificate chain, or NULL */
    char *key_pem;      /* its private key */
    const char *sni;    /* owned by ctx; NULL when unset */
    struct pl_tls_ctx *ctx; /* one reference: SAN matchers for pl_tls_ctx_check_peer_pem */
};

/* From a cluster's transport_socket (UpstreamTlsContext): Envoy's semantics, the server is
 * verified only with a validation_context.trusted_ca, SANs only with matchers. path names the
 * transport_socket field. */
int pl_tls_client_material_from_transport_socket(const Envoy__Config__Core__V3__TransportSocket *ts,
                                                 const char *path, struct pl_tls_client_material *m,
                                                 struct pl_err *err);
/* From GoogleGrpc.SslCredentials (any may be NULL): the server is always verified, against
 * root_certs or the system's roots. */
int pl_tls_client_material_from_sources(const Envoy__Config__Core__V3__DataSource *root_certs,
                                        const Envoy__Config__Core__V3__DataSource *cert_chain,
                                        const Envoy__Config__Core__V3__DataSource *private_key,
                                        const char *path, struct pl_tls_client_material *m,
                                        struct pl_err *err);
void pl_tls_client_material_free(struct pl_tls_client_material *m);
/* True if the PEM leaf certificate has a SAN that the context's matchers accept (or there are
 * none). Any thread. */
bool pl_tls_ctx_check_peer_pem(const struct pl_tls_ctx *c, const char *pem);

/* ---- TLS sessions over a non-blocking fd ---- */

struct pl_tls_conn; /* one per connection, owned by the connection; single-threaded */

/* Starts a TLS session on fd (which the caller keeps owning) with a reference to ctx. For
 * clients, sni overrides the context's configured sni (NULL: use the context's; "" none). */
struct pl_tls_conn *pl_tls_conn_new(struct pl_tls_ctx *ctx, int fd, const char *sni);
/* Frees the session and drops its context reference; does not close fd or send close_notify. */
void pl_tls_conn_free(struct pl_tls_conn *t);
/* Advances the handshake: 0 when done, PL_EAGAIN when it waits for the socket (see
 * pl_tls_conn_want_write), PL_EIO when it failed (pl_tls_conn_error says why). */
int pl_tls_conn_handshake(struct pl_tls_conn *t);
/* Returns true once the handshake has completed. */
bool pl_tls_conn_established(const struct pl_tls_conn *t);
/* Decrypts up to max bytes into the tail of b (reads straight into b's free slice space).
 * Returns bytes read (> 0), 0 at the peer's close_notify or EOF, PL_EAGAIN, or PL_EIO. Drives
 * the handshake first if it has not completed. */
ssize_t pl_tls_conn_read(struct pl_tls_conn *t, struct pl_buf *b, size_t max);
/* Encrypts and sends from the front of b, draining what was taken. Returns bytes taken (> 0;
 * may be fewer than b->len), PL_EAGAIN when nothing could be sent, or PL_EIO. */
ssize_t pl_tls_conn_write(struct pl_tls_conn *t, struct pl_buf *b);
/* Sends close_notify: 0 when sent (or already), PL_EAGAIN to retry on writability, PL_EIO. */
int pl_tls_conn_shutdown(struct pl_tls_conn *t);
/* True if the last call that returned PL_EAGAIN waits for writability (else readability). */
bool pl_tls_conn_want_write(const struct pl_tls_conn *t);
/* True if decrypted bytes are buffered inside OpenSSL (read again before waiting on the fd). */
bool pl_tls_conn_pending(const struct pl_tls_conn *t);
/* Why the session failed: OpenSSL's reason or the verification error; "" if it did not. */
const char *pl_tls_conn_error(const struct pl_tls_conn *t);
/* Negotiated ALPN protocol after the handshake ("h2", "http/1.1"), or NULL; owned by t. */
const char *pl_tls_conn_alpn(const struct pl_tls_conn *t);
/* SNI: the one the client sent (servers) or offered (clients), or NULL; owned by t. */
const char *pl_tls_conn_sni(const struct pl_tls_conn *t);
/* Negotiated protocol version name ("TLSv1.3") after the handshake; static string. */
const char *pl_tls_conn_version(const struct pl_tls_conn *t);
/* True if the peer presented a certificate that passed verification and SAN matching. */
bool pl_tls_conn_peer_verified(const struct pl_tls_conn *t);
/* The peer certificate's first URI SAN (a SPIFFE ID for mesh workloads), or NULL; owned by t. */
const char *pl_tls_conn_peer_uri_san(const struct pl_tls_conn *t);
/* The context the session started with (borrowed). */
struct pl_tls_ctx *pl_tls_conn_ctx(const struct pl_tls_conn *t);

/* ---- the transport socket for net/conn.h ---- */

struct pl_transport;
struct pl_transport_vtable;

/* envoy.transport_sockets.tls for filter chains (DownstreamTlsContext) and for clusters
 * (UpstreamTlsContext); their compiled config is a struct pl_tls_ctx (one reference). */
extern const struct pl_transport_vtable pl_tls_transport_downstream;
extern const struct pl_transport_vtable pl_tls_transport_upstream;
/* Registers both with pl_transport_register (main thread, at start); idempotent. */
void pl_tls_register_transports(void);
/* The TLS session behind a connection's transport (c->transport), or NULL if it is not TLS:
 * for SNI, ALPN and the peer's identity. Borrowed: lives as long as the connection. */
struct pl_tls_conn *pl_tls_transport_session(const struct pl_transport *t);

/* ---- ClientHello inspection (Envoy's tls_inspector) ---- */

#define PL_TLS_HELLO_MAX_ALPN  16    /* protocols kept; more are counted in n_alpn_dropped */
#define PL_TLS_HELLO_ALPN_LEN  64    /* longest protocol name kept, NUL included */
#define PL_TLS_HELLO_MAX_BYTES 65536 /* a ClientHello (all its records) longer than this fails */

/* What a ClientHello says about where the client wants to go. */
struct pl_tls_hello {
    char sni[256]; /* host_name from server_name, "" if none */
    size_t n_alpn; /* entries used in alpn */
    size_t n_alpn_dropped;
    char alpn[PL_TLS_HELLO_MAX_ALPN][PL_TLS_HELLO_ALPN_LEN]; /* in the client's order */
    size_t len; /* bytes of the records that carried the ClientHello */
};

/* Parses a ClientHello from the first bytes of a connection (TLS records). Returns 0 when
 * complete, PL_EAGAIN when more bytes are needed, PL_ENOENT when the bytes are not TLS at all,
 * PL_EINVAL when they are TLS but malformed or over PL_TLS_HELLO_MAX_BYTES. Never reads past
 * len; bounded work. */
int pl_tls_hello_parse(const void *data, size_t len, struct pl_tls_hello *out);
/* Peeks (MSG_PEEK: nothing is consumed) at fd's first bytes and parses them as above. PL_EAGAIN
 * also when nothing has arrived yet; PL_EIO when the peer closed or recv failed. */
int pl_tls_hello_peek(int fd, struct pl_tls_hello *out);

#endif
