/* Private to src/xds: the per-type protocol state (sotw.c), the gRPC transport thread
 * (transport.c), the field walker (walk.c) and the resource store (store.c). */
#ifndef PL_XDS_INTERNAL_H
#define PL_XDS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "pl_proto_all.h"

struct ev_loop;

/* The four types, in the order Envoy's ADS mux subscribes (clusters before listeners). */
enum pl_xds_type { PL_XDS_CDS, PL_XDS_EDS, PL_XDS_LDS, PL_XDS_RDS, PL_XDS_NTYPES };

#define PL_XDS_TYPE_URL_PREFIX "type.googleapis.com/"

/* Returns the type URL of t. */
const char *pl_xds_type_url(enum pl_xds_type t);
/* Returns the short name ("cds", "eds", "lds", "rds") of t. */
const char *pl_xds_type_name(enum pl_xds_type t);
/* Returns the type whose URL is url, or -1. */
int pl_xds_type_from_url(const char *url);
/* Returns the message descriptor of t's resources. */
const ProtobufCMessageDescriptor *pl_xds_type_desc(enum pl_xds_type t);

/* ---- per-type SotW protocol state (sotw.c) ---- */

struct pl_xds_sub {
    enum pl_xds_type type;
    bool wildcard; /* LDS, CDS: no names, the whole set */
    char **names;  /* RDS, EDS: subscribed names, sorted, unique */
    size_t n_names;
    char *version;  /* version_info last accepted ("" before any) */
    char *nonce;    /* nonce of the last response on this stream ("" before any) */
    bool node_sent; /* on this stream */
    bool requested; /* a request went out on this stream */
    bool received;  /* a response was accepted at least once (ever) */
};

/* Initializes s for type t (wildcard for LDS and CDS). */
void pl_xds_sub_init(struct pl_xds_sub *s, enum pl_xds_type t);
/* Frees what s owns. */
void pl_xds_sub_free(struct pl_xds_sub *s);
/* A new stream: forget the nonce and what was sent; keep versions and names. */
void pl_xds_sub_stream_reset(struct pl_xds_sub *s);
/* Replaces the subscribed names (copied, sorted, deduplicated); returns true if they changed. */
bool pl_xds_sub_set_names(struct pl_xds_sub *s, const char *const *names, size_t n);
/* Returns true if name is subscribed (wildcard: always). */
bool pl_xds_sub_has(const struct pl_xds_sub *s, const char *name);

/* What a request says beyond the subscription. */
struct pl_xds_req_opts {
    const Envoy__Config__Core__V3__Node *node; /* sent when !s->node_sent (then marked sent) */
    const char *error;                         /* NACK: error_detail.message; NULL for ACK */
};

/* Builds the serialized DiscoveryRequest for s now: version_info = s->version (the last
 * accepted), response_nonce = s->nonce, the names, node on the first request of the type on
 * this stream, error_detail for a NACK. Returns malloc'd bytes (caller frees), length in *len. */
uint8_t *pl_xds_sub_request(struct pl_xds_sub *s, const struct pl_xds_req_opts *o, size_t *len);
/* Delta: what a request says besides type and nonce (every array may be empty). */
struct pl_xds_delta_opts {
    const Envoy__Config__Core__V3__Node *node; /* sent when !s->node_sent (then marked sent) */
    const char *error;                         /* NACK: error_detail.message */
    bool ack;                                  /* an ACK/NACK: carries s->nonce */
    const char *const *subscribe;              /* resource_names_subscribe */
    size_t n_subscribe;
    const char *const *unsubscribe;
    size_t n_unsubscribe;
    const char *const *held_names; /* initial_resource_versions (a new stream) */
    const char *const *held_versions;
    size_t n_held;
};

/* Builds the serialized DeltaDiscoveryRequest for s: response_nonce = s->nonce (an ACK or NACK
 * when set), node on the first request of the type on this stream. Caller frees. */
uint8_t *pl_xds_sub_delta_request(struct pl_xds_sub *s, const struct pl_xds_delta_opts *o,
                                  size_t *len);
/* Records an accepted response: version and nonce. */
void pl_xds_sub_accept(struct pl_xds_sub *s, const char *version, const char *nonce);
/* Records a rejected response: only the nonce (the version stays the last accepted). */
void pl_xds_sub_reject(struct pl_xds_sub *s, const char *nonce);

/* Reconnect delay (Envoy's JitteredExponentialBackOffStrategy): a uniform value in
 * [0, min(base * 2^attempt, max)) taken from rnd. */
uint64_t pl_xds_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, uint64_t rnd);

/* ---- field walker (walk.c) ---- */

/* Walks every field set in m (binary, from xDS), Any payloads included, and adds an error for
 * each field Pillion does not implement (pl_support_field), with path prefix + field path.
 * Counts inert fields in *n_inert (may be NULL). Returns 0 or PL_EINVAL. */
int pl_xds_check_fields(const ProtobufCMessage *m, const char *prefix, size_t *n_inert,
                        struct pl_err *err);

/* ---- ClusterLoadAssignment decoder (eds_decode.c) ---- */

/* Decodes an encoded ClusterLoadAssignment into memory from a (the decoded message equals
 * protobuf-c's unpack of the same bytes) when it uses only fields the support table implements
 * (cluster_name; endpoints with lb_endpoints of socket addresses, weights, priority, health
 * status) and plainly: pl_xds_check_fields would find nothing in it. Returns NULL for anything
 * else (other fields, a field set twice, odd encodings, strings with NUL or non-ASCII bytes,
 * malformed bytes);
 * the caller then decodes and checks it the generic way. The message lives as long as a's
 * memory (parts of it share allocations: never protobuf_c_message_free_unpacked); what was
 * allocated for a declined one stays there too. *valid is set when it also plainly passes the
 * checks store.c's validate_cla makes (false: the validator decides, and says why). */
Envoy__Config__Endpoint__V3__ClusterLoadAssignment *
pl_xds_cla_decode(const uint8_t *data, size_t len, ProtobufCAllocator *a, bool *valid);

/* Decodes an encoded ClusterLoadAssignment of the plain shape (struct pl_cla_plain) into memory
 * from a, for compiling only. Returns NULL for anything else, which pl_xds_cla_decode (or the
 * generic path) then takes: an assignment this returns is one pl_xds_cla_decode decodes as
 * plainly valid, and compiles the same. */
struct pl_cla_plain;
struct pl_cla_plain *pl_xds_cla_decode_plain(const uint8_t *data, size_t len,
                                             ProtobufCAllocator *a);

/* ---- RouteConfiguration decoder (rds_decode.c) ---- */

/* Decodes an encoded RouteConfiguration into memory from a (the decoded message equals
 * protobuf-c's unpack of the same bytes) when it uses only the fields of the common shape that
 * the support table implements (name; virtual hosts with a name, domains and routes; a route's
 * prefix or path match and a route action naming a cluster): pl_xds_check_fields would
 * find nothing in it. Returns NULL for anything else (other fields, a field or oneof set twice,
 * odd encodings, strings with NUL or non-ASCII bytes, malformed bytes); the caller then decodes
 * and checks it the generic way. The message lives as long as a's memory (parts of it share
 * allocations: never protobuf_c_message_free_unpacked); what was allocated for a declined one
 * stays there too. */
Envoy__Config__Route__V3__RouteConfiguration *pl_xds_rc_decode(const uint8_t *data, size_t len,
                                                               ProtobufCAllocator *a);

/* ---- arenas (arena.c) ---- */

/* Memory for decoded messages that live as long as one response: chunks mapped with mmap, so a
 * large response neither grows nor fragments the heap, and freed in one go (any thread). */
struct pl_xds_chunk;
/* A protobuf-c allocator over *head (a list, NULL when empty). */
ProtobufCAllocator pl_xds_arena_allocator(struct pl_xds_chunk **head);
/* Unmaps every chunk of *head; *head becomes NULL. */
void pl_xds_arena_release(struct pl_xds_chunk **head);

/* ---- gRPC transport (transport.c): the xDS thread ---- */

enum pl_xds_event_kind {
    PL_XDS_EV_STREAM_UP,   /* a new call started: send the initial requests */
    PL_XDS_EV_CONNECTED,   /* the server answered (initial metadata) */
    PL_XDS_EV_RESPONSE,    /* resp is set */
    PL_XDS_EV_STREAM_DOWN, /* status, msg set; the transport reconnects after a backoff */
};

struct pl_xds_event {
    enum pl_xds_event_kind kind;
    uint64_t stream;                                              /* stream generation */
    Envoy__Service__Discovery__V3__DiscoveryResponse *resp;       /* SotW; owned by the event */
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *delta; /* Delta; owned */
    struct pl_xds_chunk *arena;                                   /* where resp / delta live */
    /* the message as gRPC received it, destroyed with the event: a response's buffers are freed
     * after it was handled, when the heap's top pad is the default again (a huge-page window
     * raises it for every thread, and the receiving thread's heap keeps a free top as large) */
    struct grpc_byte_buffer *received;
    int status;
    char *msg;
    struct pl_xds_event *next;
};

struct pl_xds_transport;
typedef void (*pl_xds_event_fn)(void *arg, struct pl_xds_event *ev);

struct pl_xds_transport_opts {
    const char *target;       /* gRPC target ("127.0.0.1:15010", "dns:///cp:15010") */
    bool delta;               /* DeltaAggregatedResources instead of StreamAggregatedResources */
    struct ev_loop *loop;     /* main loop: events are delivered there */
    pl_xds_event_fn on_event; /* main thread; the event is freed after it returns */
    void *arg;
    uint64_t backoff_base_ms; /* 500 */
    uint64_t backoff_max_ms;  /* 30000 */
    /* TLS to the control plane (NULL or !tls->tls: plaintext); read during
     * pl_xds_transport_new only. tls_check_host: gRPC's host name check (google_grpc) instead
     * of the SAN matchers (envoy_grpc). */
    const struct pl_tls_client_material *tls;
    bool tls_check_host;
};

struct pl_tls_client_material;
/* The ADS channel's credentials for m (NULL: plaintext); after grpc_init. */
struct grpc_channel_credentials *pl_xds_channel_creds(const struct pl_tls_client_material *m,
                                                      bool check_host);

/* Starts the xDS thread (channel, stream, reconnects). Returns NULL and fills err on failure. */
struct pl_xds_transport *pl_xds_transport_new(const struct pl_xds_transport_opts *o,
                                              struct pl_err *err);
/* Queues a serialized request on stream generation `stream` (dropped if that stream is gone);
 * takes over data (malloc'd). Any thread. */
void pl_xds_transport_send(struct pl_xds_transport *t, uint64_t stream, uint8_t *data, size_t len);
/* Stops the thread, cancels the stream and frees everything (main thread). */
void pl_xds_transport_free(struct pl_xds_transport *t);

#endif
