/* Network filters and filter chains (Envoy's Listener.filter_chains).
 *
 * A terminal network filter (http_connection_manager, tcp_proxy) is a const vtable registered by
 * its Envoy extension name and config type. At config time compile() turns the filter's typed
 * config into an immutable compiled form that lives in the snapshot; at accept time the worker
 * picks the listener's filter chain (FilterChainMatch) and calls the chain's terminal filter's
 * on_accept with that compiled config. A connection pins the snapshot it was accepted under, so
 * its compiled config stays valid for the connection's whole life.
 */
#ifndef PL_NET_FILTER_H
#define PL_NET_FILTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <protobuf-c/protobuf-c.h>

#include "core/err.h"

struct pl_worker;
struct pl_worker_listener;
struct pl_snapshot;
struct pl_listener_cfg;

/* What a filter's compile step may look at besides its own config. */
struct pl_compile_ctx {
    const struct pl_snapshot *snap; /* the snapshot being built: clusters are already compiled */
    const char *listener_name;
    const char *stat_prefix_hint;   /* the listener's stat name part ("127.0.0.1_10000") */
};

/* What an accepted connection comes with. */
struct pl_accept_info {
    struct pl_worker *worker;
    struct pl_worker_listener *listener;
    const struct pl_listener_cfg *listener_cfg;
    const struct pl_snapshot *snap; /* pinned by the worker for this connection; see unpin */
    int fd;                         /* non-blocking, close-on-exec; owned by on_accept */
    struct sockaddr_storage peer, local;
    socklen_t peer_len, local_len;
    const char *server_name;          /* SNI when a TLS ClientHello was inspected; else NULL */
    const char *transport_protocol;   /* "raw_buffer" or "tls" */
    const char *application_protocol; /* negotiated ALPN after TLS, else NULL */
};

struct pl_netfilter_vtable {
    const char *name;                        /* "envoy.filters.network.tcp_proxy" */
    const ProtobufCMessageDescriptor *config; /* its typed_config type */
    /* Compiles the filter's config; *out is owned by the snapshot and freed with free_cfg. */
    int (*compile)(const ProtobufCMessage *config, const struct pl_compile_ctx *cx, void **out,
                   struct pl_err *err);
    void (*free_cfg)(void *cfg);
    /* Takes over an accepted connection (see pl_accept_info). Must call
     * pl_worker_conn_add to stay open, and pl_net_conn_release(info) style cleanup as documented
     * in net/conn.h when it closes. Returns 0 or a PL_E* code (then the worker closes fd). */
    int (*on_accept)(const struct pl_accept_info *info, void *cfg);
};

/* Registers a terminal network filter (main thread, at start). PL_EEXIST if taken. */
int pl_netfilter_register(const struct pl_netfilter_vtable *vt);
/* Returns the filter whose config type is the Any type URL's message, or NULL. */
const struct pl_netfilter_vtable *pl_netfilter_by_type_url(const char *type_url);
/* Registers every built-in filter (http_connection_manager, tcp_proxy); idempotent. */
void pl_netfilter_register_builtins(void);

#endif
