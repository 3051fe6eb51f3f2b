/* Listener filters (Envoy's Listener.listener_filters): they run in order on an accepted socket
 * before a filter chain is picked, and may change what the chain is picked by.
 *
 * - envoy.filters.listener.tls_inspector peeks (MSG_PEEK: nothing is consumed) at the first
 *   bytes for a TLS ClientHello and sets the transport protocol "tls", the SNI and the client's
 *   ALPN list; bytes that are not TLS leave "raw_buffer".
 * - envoy.filters.listener.original_dst restores the local address the client connected to
 *   before an iptables REDIRECT (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
 *
 * A filter that needs more bytes returns PL_LF_WAIT; the runner then waits for readability on
 * the socket (SO_RCVLOWAT is raised past the bytes already seen, so a partial ClientHello does
 * not wake the loop again), bounded by listener_filters_timeout (Envoy's default 15 s; on expiry
 * the connection closes unless continue_on_listener_filters_timeout). Worker thread only, except
 * compile/prepare/free (main thread).
 */
#ifndef PL_NET_LISTENER_FILTER_H
#define PL_NET_LISTENER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <protobuf-c/protobuf-c.h>

#include "core/err.h"
#include "stats/stats.h"
#include "tls/tls.h"

struct ev_loop;

#define PL_LF_DEFAULT_TIMEOUT_S 15.0 /* Envoy's listener_filters_timeout default */

/* What a filter says after looking at a socket. */
enum pl_lf_status {
    PL_LF_CONTINUE,     /* done: go on with the next filter (or pick the filter chain) */
    PL_LF_WAIT,         /* needs more bytes: call again when the socket is readable */
    PL_LF_CLOSE,        /* close the connection (downstream_listener_filter_error) */
    PL_LF_REMOTE_CLOSE, /* the peer closed or reset first (downstream_listener_filter_remote_close)
                         */
};

/* The accepted socket as listener filters see and change it. */
struct pl_listener_socket {
    int fd;
    struct sockaddr_storage local; /* getsockname, or the original destination when restored */
    socklen_t local_len;
    bool local_restored;            /* original_dst changed local */
    const char *transport_protocol; /* "raw_buffer" (static string) or "tls" */
    char server_name[256];          /* SNI, "" when none */
    size_t n_alpn;                  /* ALPN protocols the client offered, in its order */
    char alpn[PL_TLS_HELLO_MAX_ALPN][PL_TLS_HELLO_ALPN_LEN];
    size_t peeked; /* set by a filter returning PL_LF_WAIT: bytes it saw (it needs more) */
};

/* A listener filter: a const vtable registered by Envoy extension name and config type. */
struct pl_listener_filter_vtable {
    const char *name;                         /* "envoy.filters.listener.tls_inspector" */
    const ProtobufCMessageDescriptor *config; /* its typed_config type */
    /* Compiles config (never NULL: an empty message when the filter came by name); *out is
     * owned by the compiled listener filters and freed with free_cfg (may stay NULL). */
    int (*compile)(const ProtobufCMessage *config, void **out, struct pl_err *err);
    void (*free_cfg)(void *cfg);
    /* Optional: creates the filter's stats (main thread, before publish; may run twice). */
    void (*prepare)(void *cfg, struct pl_stats *stats);
    /* Looks at s (worker thread); called again after PL_LF_WAIT once more bytes arrived. */
    enum pl_lf_status (*on_accept)(void *cfg, struct pl_listener_socket *s);
};

extern const struct pl_listener_filter_vtable pl_lf_tls_inspector;
extern const struct pl_listener_filter_vtable pl_lf_original_dst;

/* One listener's compiled listener filters (owned by its struct pl_filter_chains). */
struct pl_listener_filters {
    struct pl_lf_entry {
        const struct pl_listener_filter_vtable *vt;
        void *cfg;
    } * v;
    size_t n;
    double timeout_s; /* 0: wait without limit */
    bool continue_on_timeout;
    /* listener.<prefix>.downstream_pre_cx_* and downstream_listener_filter_*; set by prepare
     * (handles with a NULL store count nowhere) */
    struct pl_gauge pre_cx_active;
    struct pl_counter pre_cx_timeout, filter_remote_close, filter_error;
};

/* Returns the listener filter registered under name (Envoy's extension name), or NULL. */
const struct pl_listener_filter_vtable *pl_listener_filter_by_name(const char *name);
/* Returns the listener filter whose config type is the Any type URL's message, or NULL. */
const struct pl_listener_filter_vtable *pl_listener_filter_by_type_url(const char *type_url);

/* Compiles a Listener's listener_filters, listener_filters_timeout and
 * continue_on_listener_filters_timeout (main thread). As Envoy, a tls_inspector is added when a
 * filter chain matches on server_names, transport_protocol "tls" or application_protocols and
 * none is configured. *out is NULL when the listener has no listener filter; else owned by the
 * caller (pl_listener_filters_free). Errors name the listener and the filter. */
int pl_listener_filters_compile(const ProtobufCMessage *listener, const char *listener_name,
                                struct pl_listener_filters **out, struct pl_err *err);
/* Frees compiled listener filters (NULL is fine). */
void pl_listener_filters_free(struct pl_listener_filters *lf);
/* Creates the stats under listener_prefix ("listener.127.0.0.1_10000") and the filters' own
 * (main thread, before publish; idempotent). */
void pl_listener_filters_prepare(struct pl_listener_filters *lf, struct pl_stats *stats,
                                 const char *listener_prefix);

/* A run that is waiting for bytes (private to listener_filter_run.c). */
struct pl_listener_run;
/* Called once when a waiting run ends with PL_LF_CONTINUE (pick a chain with s), PL_LF_CLOSE
 * or PL_LF_REMOTE_CLOSE; s is valid during the call only. The run is gone when it is called:
 * the caller owns fd again and must not cancel the run. */
typedef void (*pl_listener_run_done)(void *arg, struct pl_listener_socket *s, enum pl_lf_status st);
/* Runs lf's filters on s (worker thread). Returns PL_LF_CONTINUE, PL_LF_CLOSE or
 * PL_LF_REMOTE_CLOSE when they finished at once (s holds the result; done is not called), or
 * PL_LF_WAIT: *out is a run that owns a copy of s, watches s->fd on loop and calls done later
 * from the loop. fd stays the caller's to close in every case. */
enum pl_lf_status pl_listener_filters_run(const struct pl_listener_filters *lf,
                                          struct ev_loop *loop, struct pl_listener_socket *s,
                                          pl_listener_run_done done, void *arg,
                                          struct pl_listener_run **out);
/* Stops a waiting run without calling done and frees it (fd is left open). */
void pl_listener_run_cancel(struct pl_listener_run *r);
/* Fills s for an accepted fd: local address from getsockname, transport "raw_buffer". */
void pl_listener_socket_init(struct pl_listener_socket *s, int fd);

#endif
