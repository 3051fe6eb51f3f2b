/* The ADS server's streams, shared by the gRPC transport (ads.c) and the xDS protocol logic
 * (xds.c). Everything here is guarded by the server's mutex. */
#ifndef PL_CP_ADS_INTERNAL_H
#define PL_CP_ADS_INTERNAL_H

#include <pthread.h>

#include <grpc/grpc.h>

#include "cp.h"

/* What one stream knows about one resource type. */
struct pl_cp_tstate {
    bool subscribed; /* the client asked for this type on this stream */
    bool wildcard;
    bool force;             /* answer at the next pump even if nothing changed */
    struct pl_cp_map names; /* names subscribed explicitly */
    bool outstanding;       /* a response waits for its ACK/NACK */
    char nonce[24];         /* of the last response */
    char sent_version[24];  /* version_info of the last response */
    bool sent_any;          /* SotW: a response was sent */
    uint64_t sent_hash;     /* SotW: hash of what the last response held */
    size_t sent_count;      /* resources in the last response */
    char acked_version[24]; /* last version the client accepted */
    unsigned long n_sent, n_ack, n_nack;
    bool last_nacked;      /* the last settled response was NACKed */
    char *nack_msg;        /* last NACK's error_detail.message (NULL: none yet) */
    char nack_version[24]; /* the version it rejected */
    char nack_nonce[24];
    double nack_time;
    struct pl_cp_map client;    /* Delta: resource name -> version held ("": told absent) */
    unsigned long clean_serial; /* nothing due for this set (serial) until a request changes
                                 * the subscription; 0: work it out */
};

/* SotW: the encoded resources field of a response, shared by the streams whose view of a type
 * is the same (one encoding per set, type and view, however many streams). */
struct pl_cp_enc {
    unsigned long serial; /* of the set; 0: empty */
    uint64_t view_hash;
    size_t n;
    grpc_slice body;
};

#define PL_CP_ENC_SLOTS 4 /* per type: distinct per-node views kept at once */

enum { PL_CP_TAG_NEW, PL_CP_TAG_RECV, PL_CP_TAG_SEND, PL_CP_TAG_CLOSE, PL_CP_TAG_STATUS };

struct pl_cp_stream;

/* A completion-queue tag: which operation of which stream finished. */
struct pl_cp_tag {
    int kind;
    struct pl_cp_stream *s;
};

struct pl_cp_sendq {
    grpc_byte_buffer *bb;
    struct pl_cp_sendq *next;
};

/* One ADS stream (a gRPC call). */
struct pl_cp_stream {
    struct pl_cp_server *srv;
    grpc_call *call;
    bool delta;
    struct pl_cp_tag t_recv, t_send, t_close, t_status;
    int ops; /* batches in flight */
    grpc_byte_buffer *recv_bb, *send_bb;
    struct pl_cp_sendq *q, *q_tail;
    bool md_sent, recv_done, closed, status_started, want_status;
    int cancelled;
    grpc_status_code status_code;
    grpc_slice status_msg;
    pl_cp_node_t *node; /* from the first request that had one; NULL before */
    char *peer;
    char *identity; /* the client certificate's SPIFFE ID (or name) on mTLS, else NULL */
    double since;
    unsigned long nonce_seq, n_requests;
    struct pl_cp_tstate ts[PL_CP_NTYPES];
    struct pl_cp_stream *prev, *next;
};

struct pl_cp_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t thread;
    pthread_mutex_t mu;
    struct pl_cp_set *set;
    struct pl_cp_stream *streams;
    bool shutting_down;
    unsigned long n_streams_total;
    /* the call being requested */
    grpc_call *new_call;
    grpc_call_details details;
    grpc_metadata_array md;
    struct pl_cp_tag t_new, t_shutdown;
    struct pl_cp_enc enc[PL_CP_NTYPES][PL_CP_ENC_SLOTS];
    unsigned enc_next[PL_CP_NTYPES];
};

/* Handles one request message of s; returns 0, or a negative code (then *why, static text,
 * tells the client why its stream ends). */
int pl_cp_xds_request(struct pl_cp_stream *s, const uint8_t *data, size_t len, const char **why);
/* Sends s every response that is due (changed resources, new subscriptions), in order. */
void pl_cp_xds_pump(struct pl_cp_stream *s);
/* Frees the protocol state of s. */
void pl_cp_xds_free(struct pl_cp_stream *s);
/* Writes s as one JSON object of the status document. */
void pl_cp_xds_status(struct pl_cp_stream *s, FILE *f);
/* Queues a message of len bytes (copied) to be sent on s. */
void pl_cp_stream_send(struct pl_cp_stream *s, const uint8_t *data, size_t len);
/* Queues the message made of n slices (referenced, not copied) to be sent on s. */
void pl_cp_stream_send_slices(struct pl_cp_stream *s, grpc_slice *slices, size_t n);
/* Frees the server's shared encodings. */
void pl_cp_xds_enc_clear(struct pl_cp_server *srv);

#endif
