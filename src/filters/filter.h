/* HTTP filters (Envoy's http_filters of the HTTP connection manager).
 *
 * A filter is a const vtable registered by its Envoy extension name and config type. At config
 * time compile() turns the filter's typed_config into an immutable compiled form owned by the
 * HCM's compiled config (in the snapshot). Per request, the HCM runs the chain: request events
 * (decode_*) go through the filters in order, ending at the terminal filter (the router);
 * response events (encode_*) go through them in reverse order, starting at the filter before the
 * terminal one, then to the downstream codec.
 *
 * A callback returning PL_FILTER_STOP stops iteration at that filter:
 * - decode_headers/encode_headers: later events of that direction wait in the HCM (body bytes
 *   are buffered up to the connection's buffer limit, then 413 / reset) until the filter calls
 *   ops->continue_decoding / continue_encoding;
 * - decode_data/encode_data: the data was taken over by the filter's decision to hold it: the
 *   HCM keeps it buffered for the filter and passes it on (with later data) when the filter
 *   continues.
 * Every filter gets per-stream state (state_size bytes, zeroed, in the stream's arena) and
 * on_destroy when the stream ends (completed or reset); no callback follows on_destroy.
 */
#ifndef PL_FILTERS_FILTER_H
#define PL_FILTERS_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/headers.h"
#include "http/stream_info.h"

struct ev_loop;
struct pl_worker;
struct pl_snapshot;
struct pl_stats;
struct pl_route_table;
struct pl_filter_stream;

enum pl_filter_status {
    PL_FILTER_CONTINUE = 0,
    PL_FILTER_STOP = 1,
};

/* What the HCM offers the filters of a stream (the stream's ops). */
struct pl_filter_stream_ops {
    /* Resumes request iteration after the filter that stopped it. */
    void (*continue_decoding)(struct pl_filter_stream *fs);
    /* Resumes response iteration after the filter that stopped it. */
    void (*continue_encoding)(struct pl_filter_stream *fs);
    /* Answers the request locally in Envoy's shape (text/plain body, or a gRPC trailers-only
     * response for gRPC requests); resets the stream instead when a response already started.
     * extra: headers to add (may be NULL); details: response_code_details (static string);
     * flags: enum pl_response_flag bits for the access log. */
    void (*send_local_reply)(struct pl_filter_stream *fs, int status, const char *body,
                             size_t body_len, const struct pl_headers *extra, const char *details,
                             uint32_t flags);
    /* The terminal filter's response: passes through the encoder filters to the downstream.
     * The head (and strings) must stay valid until the stream ends. */
    void (*encode_head)(struct pl_filter_stream *fs, struct pl_http_head *head, bool end_stream);
    /* Moves the data on (it is empty afterwards). */
    void (*encode_data)(struct pl_filter_stream *fs, struct pl_buf *data, bool end_stream);
    void (*encode_trailers)(struct pl_filter_stream *fs, struct pl_headers *trailers);
    /* Resets the downstream stream (HTTP/1: closes the connection); details for the log. */
    void (*reset)(struct pl_filter_stream *fs, const char *details);
    /* The request's destination (upstream) cannot take more for now (above=true) or can again:
     * the HCM stops / resumes reading the request body from the downstream (HTTP/1: the
     * connection's reading; HTTP/2: the stream's flow-control window). */
    void (*decoder_watermark)(struct pl_filter_stream *fs, bool above);
    /* Overrides the stream idle timeout (a route's idle_timeout); 0 disables it. */
    void (*set_idle_timeout)(struct pl_filter_stream *fs, uint64_t ms);
};

/* A stream as filters see it. Fields are read-only for filters except where noted. */
struct pl_filter_stream {
    const struct pl_filter_stream_ops *ops;
    struct pl_arena *arena;              /* freed when the stream ends */
    struct pl_stream_info *info;         /* filters fill the upstream parts and response flags */
    struct pl_http_head *request;        /* the request head (mutable until it went upstream) */
    const struct pl_route_table *routes; /* the stream's route table (inline, or RDS: of snap) */
    struct ev_loop *loop;
    struct pl_worker *worker; /* NULL in unit tests */
    unsigned worker_id;
    const struct pl_snapshot *snap; /* routes and clusters come from it; pinned for the stream's
                                       life (the connection's, or with RDS the one current when
                                       the request head arrived) */
    const struct sockaddr *peer;    /* downstream remote address */
    const struct sockaddr *local;   /* downstream local address */
    bool tls;                       /* downstream is TLS */
    const char *sni;                /* may be NULL */
    bool downstream_http2;          /* downstream protocol is HTTP/2 */
    bool downstream_above_high;     /* the downstream cannot take more response bytes now */
    bool ended; /* the stream is over (on_destroy follows on the next loop turn): do no more */
    uint64_t stream_idle_timeout_ms; /* the HCM's stream_idle_timeout (0 = none) */
    int64_t decode_start_ns;         /* monotonic: when the request head arrived */
};

/* What a filter's compile step may look at. */
struct pl_http_filter_compile_ctx {
    const struct pl_snapshot *snap; /* the snapshot being built (clusters compiled); may be NULL */
    struct pl_stats *stats;         /* where stats go; may be NULL (tests) */
    const char *stat_prefix;        /* the HCM's "http.<stat_prefix>." */
    const char *path;               /* field path of the filter's typed_config, for errors */
};

struct pl_http_filter_vtable {
    const char *name;                         /* "envoy.filters.http.router" */
    const ProtobufCMessageDescriptor *config; /* its typed_config type */
    bool terminal;                            /* must be last (the router) */
    size_t state_size;                        /* per-stream state bytes */
    /* Compiles the filter's config (config may be NULL when typed_config is absent); *out is
     * owned by the HCM config and freed with free_cfg (may be NULL). */
    int (*compile)(const ProtobufCMessage *config, const struct pl_http_filter_compile_ctx *cx,
                   void **out, struct pl_err *err);
    void (*free_cfg)(void *cfg);
    /* Optional: binds a compiled cfg to the complete snapshot and the stats store (cx->snap,
     * cx->stats set), before publish; may run more than once with the same arguments. */
    int (*prepare)(void *cfg, const struct pl_http_filter_compile_ctx *cx, struct pl_err *err);
    /* Each may be NULL (continue). */
    enum pl_filter_status (*decode_headers)(struct pl_filter_stream *fs, void *cfg, void *state,
                                            struct pl_http_head *head, bool end_stream);
    enum pl_filter_status (*decode_data)(struct pl_filter_stream *fs, void *cfg, void *state,
                                         struct pl_buf *data, bool end_stream);
    enum pl_filter_status (*decode_trailers)(struct pl_filter_stream *fs, void *cfg, void *state,
                                             struct pl_headers *trailers);
    enum pl_filter_status (*encode_headers)(struct pl_filter_stream *fs, void *cfg, void *state,
                                            struct pl_http_head *head, bool end_stream);
    enum pl_filter_status (*encode_data)(struct pl_filter_stream *fs, void *cfg, void *state,
                                         struct pl_buf *data, bool end_stream);
    enum pl_filter_status (*encode_trailers)(struct pl_filter_stream *fs, void *cfg, void *state,
                                             struct pl_headers *trailers);
    /* The downstream went above its write high watermark (above) or back below the low one
     * (fs->downstream_above_high tells the current state): a terminal filter pauses or resumes
     * reading its upstream. */
    void (*on_downstream_watermark)(struct pl_filter_stream *fs, void *cfg, void *state,
                                    bool above);
    /* The stream is over (complete or reset); release what the state holds. */
    void (*on_destroy)(struct pl_filter_stream *fs, void *cfg, void *state);
};

/* Registers a filter (main thread, at start). PL_EEXIST if its name or type is taken. */
int pl_http_filter_register(const struct pl_http_filter_vtable *vt);
/* Returns the filter whose config type is the Any type URL's message, or NULL. */
const struct pl_http_filter_vtable *pl_http_filter_by_type_url(const char *type_url);
/* Returns the filter registered under an Envoy extension name, or NULL. */
const struct pl_http_filter_vtable *pl_http_filter_by_name(const char *name);
/* Registers every built-in filter (the router); idempotent. */
void pl_http_filter_register_builtins(void);

/* The router filter ("envoy.filters.http.router"). */
extern const struct pl_http_filter_vtable pl_filter_router;

#endif
