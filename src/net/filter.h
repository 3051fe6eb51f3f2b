/* Network filters and filter chains (Envoy's Listener.filter_chains).
 *
 * A terminal network filter (http_connection_manager, tcp_proxy) is a const vtable registered by
 * its Envoy extension name and config type. At config time compile() turns the filter's typed
 * config into an immutable compiled form that lives in the snapshot; at accept time the worker
 * picks the listener's filter chain (FilterChainMatch) and calls the chain's terminal filter's
 * on_accept with that compiled config. A connection pins the snapshot it was accepted under, so
 * its compiled config stays valid for the connection's whole life.
 *
 * Order on the main thread: compile (config/compile.c, per listener) -> prepare (pl_net_prepare
 * from pl_server_apply: the snapshot is complete and the stats store known) -> publish.
 * Transport sockets (raw TCP, TLS) are registered in the same way in net/conn.h.
 */
#ifndef PL_NET_FILTER_H
#define PL_NET_FILTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <protobuf-c/protobuf-c.h>

#include "core/err.h"
#include "server/worker.h"
#include "stats/stats.h"

struct pl_worker;
struct pl_worker_listener;
struct pl_snapshot;
struct pl_listener_cfg;
struct pl_filter_chain;
struct pl_transport_vtable;
struct pl_listener_filters;

/* What a filter's compile step may look at besides its own config. */
struct pl_compile_ctx {
    const struct pl_snapshot *snap; /* NULL: listeners compile before clusters; resolve cluster
                                       names and create stats in the vtable's prepare step */
    const char *listener_name;
    const char *stat_prefix_hint; /* unused (NULL): listener stats are named by the server */
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
    const char *server_name;             /* SNI when a TLS ClientHello was inspected; else NULL */
    const char *transport_protocol;      /* "raw_buffer" or "tls" */
    const char *application_protocol;    /* negotiated ALPN after TLS, else NULL */
    const struct pl_filter_chain *chain; /* the chain that matched (transport, buffer limit) */
};

struct pl_netfilter_vtable {
    const char *name;                         /* "envoy.filters.network.tcp_proxy" */
    const ProtobufCMessageDescriptor *config; /* its typed_config type */
    /* Compiles the filter's config; *out is owned by the snapshot and freed with free_cfg. */
    int (*compile)(const ProtobufCMessage *config, const struct pl_compile_ctx *cx, void **out,
                   struct pl_err *err);
    void (*free_cfg)(void *cfg);
    /* Optional: binds a compiled cfg to the complete snapshot it lives in and to the stats store
     * (main thread, after compile, before publish): resolve cluster names, create stat handles.
     * May run more than once for the same cfg with the same arguments. */
    int (*prepare)(void *cfg, const struct pl_snapshot *snap, struct pl_stats *stats,
                   struct pl_err *err);
    /* Takes over an accepted connection (see pl_accept_info). On success (0) the filter owns fd
     * and the snapshot pin: it keeps both with pl_net_accepted_keep and gives them back with
     * pl_net_accepted_release when the connection ends. On failure (a PL_E* code) it must not
     * have kept them: the worker closes fd and drops the pin. */
    int (*on_accept)(const struct pl_accept_info *info, void *cfg);
};

/* FilterChainMatch, compiled. Unset fields match anything. */
struct pl_filter_chain_match {
    bool has_port;
    uint32_t destination_port;
    char **server_names; /* lower case; "*.example.com" matches any name ending in .example.com */
    size_t n_server_names;
    char *transport_protocol; /* NULL: any */
    char **application_protocols;
    size_t n_application_protocols;
};

/* One compiled filter chain of a listener. */
struct pl_filter_chain {
    char *name; /* FilterChain.name, or "default_filter_chain" / "filter_chains[i]" */
    struct pl_filter_chain_match match;
    const char *filter_name;              /* the terminal filter's name (in the listener proto) */
    const struct pl_netfilter_vtable *vt; /* NULL: that filter is not built in; cx are closed */
    void *cfg;                            /* vt->compile's output */
    /* transport_socket: NULL transport = raw TCP. The TLS module compiles the config through
     * its pl_transport_vtable (net/conn.h); transport_missing is set when the chain asks for a
     * transport socket this build has not registered (connections are then closed). */
    const ProtobufCMessage *transport_socket; /* envoy.config.core.v3.TransportSocket or NULL */
    const struct pl_transport_vtable *transport;
    void *transport_cfg;
    bool transport_missing;
    uint32_t buffer_limit; /* the listener's per_connection_buffer_limit_bytes (1 MiB) */
};

/* A listener's compiled filter chains (owned by its struct pl_listener_cfg). */
struct pl_filter_chains {
    struct pl_filter_chain *v;
    size_t n;
    struct pl_filter_chain *dflt;                 /* default_filter_chain, or NULL */
    struct pl_listener_filters *listener_filters; /* net/listener_filter.h; NULL: none */
    bool prepared; /* pl_net_prepare ran (the chains are bound to stats, no snapshot pointers) */
};

/* What a connection needs to give back at its end. Filters embed it in their connection. */
struct pl_net_accepted {
    struct pl_worker_conn wc; /* the worker's bookkeeping: drain/close reach the filter here */
    struct pl_worker *worker;
    const struct pl_snapshot *snap; /* pinned */
    bool kept;
};

/* Compiles a Listener's filter_chains, default_filter_chain and listener_filters (main thread).
 * *out is owned by the caller (pl_filter_chains_free). Errors name the listener. */
int pl_filter_chains_compile(const ProtobufCMessage *listener, const char *listener_name,
                             struct pl_filter_chains **out, struct pl_err *err);
/* Frees compiled chains (NULL is fine). */
void pl_filter_chains_free(struct pl_filter_chains *fc);
/* Picks a chain in Envoy's order: destination port, server name, transport protocol,
 * application protocols; else the default chain; NULL when nothing matches. */
const struct pl_filter_chain *pl_filter_chain_select(const struct pl_filter_chains *fc,
                                                     uint32_t destination_port,
                                                     const char *server_name,
                                                     const char *transport_protocol,
                                                     const char *const *alpn, size_t n_alpn);
/* Runs every chain's filter prepare step and creates the listener filters' stats for the
 * listeners of s (main thread, before publish). */
int pl_net_prepare(const struct pl_snapshot *s, struct pl_stats *stats, struct pl_err *err);

/* The worker's accept handler for listeners with compiled filter chains: pins the current
 * snapshot, runs the listener filters (waiting for bytes if they need), picks the chain and hands
 * the connection to the chain's terminal filter. */
extern const struct pl_conn_handler_vtable pl_net_chain_handler;
/* Keeps an accepted connection: registers a->wc with the worker (drain and close requests go to
 * h) and takes over the snapshot pin of info. */
void pl_net_accepted_keep(struct pl_net_accepted *a, const struct pl_accept_info *info,
                          const struct pl_conn_handler_vtable *h);
/* Gives back what pl_net_accepted_keep took (unregisters, unpins); safe to call twice. */
void pl_net_accepted_release(struct pl_net_accepted *a);

/* Registers a terminal network filter (main thread, at start). PL_EEXIST if taken. */
int pl_netfilter_register(const struct pl_netfilter_vtable *vt);
/* Returns the filter registered under name, or NULL. */
const struct pl_netfilter_vtable *pl_netfilter_by_name(const char *name);
/* Returns the filter whose config type is the Any type URL's message, or NULL. */
const struct pl_netfilter_vtable *pl_netfilter_by_type_url(const char *type_url);
/* Registers every built-in filter (http_connection_manager, tcp_proxy); idempotent. */
void pl_netfilter_register_builtins(void);

#endif
