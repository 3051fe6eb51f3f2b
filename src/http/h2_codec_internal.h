/* Private to the HTTP/2 codec: the codec and stream objects shared by h2_codec.c (session,
 * flow control, limits) and h2_headers.c (header blocks to and from struct pl_http_head). */
#ifndef PL_HTTP_H2_CODEC_INTERNAL_H
#define PL_HTTP_H2_CODEC_INTERNAL_H

#include <nghttp2/nghttp2.h>

#include "core/arena.h"
#include "http/h2_codec.h"

struct h2_codec;

struct h2_stream {
    struct pl_codec_stream base; /* first: the handle the user sees */
    struct h2_codec *c;
    struct h2_stream *prev, *next;     /* the codec's list of live streams */
    struct pl_arena arena;             /* received heads, trailers and their strings */
    struct pl_http_head *head;         /* the head being received, then delivered */
    struct pl_headers *trailers;       /* trailers being received */
    uint32_t block_bytes, block_count; /* of the header block being received */
    struct pl_buf rx;                  /* received body the user has not taken */
    struct pl_buf pending;             /* body waiting for the peer's window */
    nghttp2_nv *tx_trailers;           /* in arena; submitted when pending drains */
    size_t n_tx_trailers;
    size_t unconsumed; /* delivered to the user, not yet consumed() */
    uint64_t created_ms;
    bool opened;          /* nghttp2 knows the stream (HEADERS received or sent) */
    bool in_trailers;     /* the block being received is trailers */
    bool overflow;        /* the block being received is over a limit */
    bool final_head_recv; /* a non-1xx head was received */
    bool final_head_sent; /* encode_head of a final head done */
    bool local_end;       /* end_stream encoded */
    bool remote_end;      /* end_stream delivered */
    bool deferred;        /* the data provider waits for encode_data */
    bool above_high;      /* pending output above the watermark */
    bool user_reset;      /* the user reset it: no more events */
    bool notified;        /* on_reset delivered */
    bool rst_after_head;  /* RST_STREAM(NO_ERROR) once the response head is sent */
    bool retired;         /* ended: on the codec's dead list */
    bool peer_rst, local_rst, proto_err;
};

struct h2_codec {
    struct pl_codec base; /* first */
    nghttp2_session *ng;
    struct pl_h2_settings set;
    uint64_t (*now)(void);
    bool server;
    bool paused;     /* a user callback asked to stop for this feed() */
    bool eof;        /* the peer closed its side */
    bool destroying; /* no callbacks any more */
    bool goaway_notice, goaway_final, goaway_received;
    const char *err_reason; /* set once the connection failed */
    struct pl_buf out;
    struct h2_stream *streams; /* live */
    struct h2_stream *dead;    /* ended; freed when control comes back (next feed, destroy) */
    struct h2_stream *last;    /* the stream get_stream found last (id last_id) */
    int32_t last_id;
    uint32_t n_streams, unsubmitted; /* live; client streams without an id yet */
    nghttp2_nv *nv;     /* scratch for outgoing header blocks (nghttp2 copies them): the
                           thread's shared one or nv_own (h2_headers.c) */
    nghttp2_nv *nv_own; /* for heads with more fields than the shared one holds */
    size_t nv_cap;      /* of nv_own */
    /* abuse accounting */
    uint64_t peer_streams, closed_streams, premature_resets;
    uint64_t empty_frames, priority_frames, window_updates, data_frames_sent;
    struct pl_h2_stats stats;
};

/* Fails the connection with GOAWAY(code); why names it for pl_h2_codec_error. */
void pl_h2_conn_error(struct h2_codec *c, uint32_t code, const char *why);
/* True if a peer reset of s now counts as premature (young stream, no response head sent). */
bool pl_h2_is_premature(struct h2_codec *c, struct h2_stream *s);
/* Applies Envoy's premature-reset rule after a stream closed. */
void pl_h2_check_premature(struct h2_codec *c);
/* Counts a received frame against the flood limits. */
void pl_h2_check_floods(struct h2_codec *c, const nghttp2_frame *f);
/* Starts receiving a header block (a head or trailers) on s. */
void pl_h2_begin_block(struct h2_codec *c, struct h2_stream *s, const nghttp2_frame *f);
/* Adds one received field to the block being received (copied into the stream's arena). */
void pl_h2_add_header(struct h2_codec *c, struct h2_stream *s, const char *name, size_t nlen,
                      const char *value, size_t vlen);
/* Completes the block: delivers the head or trailers, or handles a block over the limits. */
void pl_h2_end_block(struct h2_codec *c, struct h2_stream *s, bool end_stream);
/* Fills c->nv with head's pseudo-headers and fields (RFC 9113 8.2.2 filtering); returns the
 * count. Strings stay valid until the next call on s (nghttp2 copies them on submit). */
size_t pl_h2_build_head(struct h2_codec *c, struct h2_stream *s, const struct pl_http_head *head);
/* Returns the static lower-case copy of a known field name (h2_names.c) with the nghttp2_nv
 * flags to send it with (NO_COPY_NAME, NO_INDEX for per-request ids), or NULL (flags NONE). */
const char *pl_h2_known_name(const char *n, uint32_t len, uint8_t *flags);
/* In pl_h2_known_name's flags, not an nghttp2 one: a connection-specific name (RFC 9113 8.2.2)
 * or host, which the caller checks before sending (and clears). */
#define PL_H2_NV_HOP 0x80u
/* Returns nghttp2's allocator for the codec's sessions (per-thread caches, h2_mem.c). */
nghttp2_mem *pl_h2_mem(void);
/* on: the next session created on this thread gets the thread's shared frame buffer (server
 * sessions only: see h2_mem.c); off right after the session is created. */
void pl_h2_mem_share_framebuf(bool on);
/* Copies trailers into s->tx_trailers (stream arena). */
void pl_h2_build_trailers(struct h2_codec *c, struct h2_stream *s, const struct pl_headers *t);

#endif
