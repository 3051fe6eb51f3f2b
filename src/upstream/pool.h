/* HTTP connection pools: one per worker per upstream host and protocol (HTTP/1.1 keep-alive,
 * HTTP/2 multiplexed), living in the host's pool slots (struct pl_host_rt in upstream.h).
 *
 * A caller asks for a stream with pl_pool_new_stream. When a connection can take it (an idle
 * HTTP/1.1 connection, an HTTP/2 connection below the peer's stream limit) on_ready runs with
 * the stream, possibly inside pl_pool_new_stream; otherwise the request waits in a bounded queue
 * while a connection is made, and on_ready or on_failure runs later. The caller then encodes the
 * request with pl_pool_stream_encode_* and receives the response through the callbacks.
 *
 * A stream handle stays valid until the caller releases it (pl_pool_stream_release), even after
 * on_reset or a complete response; releasing a stream that did not complete both ways resets it
 * (HTTP/1.1: the connection is closed, not reused). No callback runs after on_reset, on_failure,
 * or release.
 *
 * Flow control: a caller that cannot pass response bytes on calls pl_pool_stream_read_disable;
 * it reports response bytes it has passed on with pl_pool_stream_consumed (HTTP/2 windows). The
 * pool reports on_watermark(true) when the upstream connection's write buffer is above its high
 * watermark (stop sending request bytes) and on_watermark(false) once it drained.
 */
#ifndef PL_UPSTREAM_POOL_H
#define PL_UPSTREAM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/snapshot.h"
#include "core/buf.h"
#include "http/codec.h"
#include "http/headers.h"
#include "upstream/upstream.h"

struct ev_loop;
struct pl_pool;
struct pl_pool_stream;

enum pl_pool_failure {
    PL_POOL_CONNECT_FAILED,  /* connection refused / unreachable / transport handshake failed */
    PL_POOL_CONNECT_TIMEOUT, /* connect_timeout expired */
    PL_POOL_OVERFLOW,        /* the pending queue is full (circuit breaking) */
};

struct pl_pool_callbacks {
    /* The stream is bound to a connection: encode the request now. */
    void (*on_ready)(void *user, struct pl_pool_stream *s);
    /* No stream could be had; reason is a static text (for logs and local replies). */
    void (*on_failure)(void *user, enum pl_pool_failure why, const char *reason);
    /* A response head; informational: 1xx other than 101 (more heads follow). */
    void (*on_head)(void *user, struct pl_http_head *head, bool end_stream, bool informational);
    /* Response body bytes: move what you take; report it with pl_pool_stream_consumed. */
    void (*on_data)(void *user, struct pl_buf *data, bool end_stream);
    void (*on_trailers)(void *user, struct pl_headers *trailers);
    /* The stream failed (connection closed or reset); reason as for on_failure. */
    void (*on_reset)(void *user, enum pl_reset_reason why, const char *reason);
    /* The connection's write buffer went above (true) / below (false) its watermark. */
    void (*on_watermark)(void *user, bool above);
};

/* Per-pool settings (from the cluster); pl_pool_get fills them from a cluster config. */
struct pl_pool_opts {
    bool http2;
    double connect_timeout_s;
    double idle_timeout_s;    /* close a connection idle this long (0: never) */
    uint32_t buffer_limit;    /* per_connection_buffer_limit_bytes */
    uint32_t max_pending;     /* queued requests per pool (Envoy's max_pending_requests) */
    uint32_t max_connections; /* per pool (Envoy's max_connections) */
    uint32_t h2_max_concurrent_streams;
    uint32_t h2_initial_stream_window_size;
    uint32_t h2_initial_connection_window_size;
    uint32_t max_headers_count;
};

/* Returns the calling worker's pool for host h of cluster cfg (creating it in h's slot); crt's
 * stats are counted (cluster.<name>.upstream_cx_*). The pool lives until the host leaves its
 * host set (pl_upstream_set_pool_release) and its connections are gone. */
struct pl_pool *pl_pool_get(struct ev_loop *loop, struct pl_host_rt *h,
                            const struct pl_cluster_cfg *cfg, struct pl_cluster_rt *crt);
/* Creates a pool outside any host slot (tests); free with pl_pool_free. */
struct pl_pool *pl_pool_new(struct ev_loop *loop, const struct sockaddr *addr, socklen_t len,
                            const struct pl_pool_opts *o, const struct pl_cluster_stats *st);
/* Frees a pool made by pl_pool_new: idle connections close, busy ones reset their streams. */
void pl_pool_free(struct pl_pool *p);
/* Asks for a stream (see the header comment); always returns the stream handle, which the
 * caller releases even when on_failure ran. */
struct pl_pool_stream *pl_pool_new_stream(struct pl_pool *p, const struct pl_pool_callbacks *cb,
                                          void *user);
/* Encodes the request head; end_stream: no body. Returns 0 or PL_EINVAL (stream not ready). */
int pl_pool_stream_encode_head(struct pl_pool_stream *s, const struct pl_http_head *h,
                               bool end_stream);
/* Moves request body bytes to the connection (zero copy). */
int pl_pool_stream_encode_data(struct pl_pool_stream *s, struct pl_buf *data, bool end_stream);
/* Sends request trailers (ends the request). */
int pl_pool_stream_encode_trailers(struct pl_pool_stream *s, const struct pl_headers *t);
/* n response body bytes were passed on (HTTP/2: opens the windows). */
void pl_pool_stream_consumed(struct pl_pool_stream *s, size_t n);
/* Stops (true) or resumes (false) reading the response (nested: a counter per stream). */
void pl_pool_stream_read_disable(struct pl_pool_stream *s, bool disable);
/* Ends the caller's use of s (see the header comment). */
void pl_pool_stream_release(struct pl_pool_stream *s);
/* The local address of the stream's connection, or NULL before it is bound. */
const struct sockaddr *pl_pool_stream_local_addr(const struct pl_pool_stream *s, socklen_t *len);
/* Counts of a pool's connections (tests, admin): total, idle, busy. */
void pl_pool_counts(const struct pl_pool *p, size_t *total, size_t *idle, size_t *pending);
/* Installs the host-release hook with upstream (idempotent; main thread, before workers). */
void pl_pool_init(void);

#endif
