/* The stream model shared by the HTTP/1.1 and HTTP/2 codecs (DESIGN.md: codecs do no I/O).
 *
 * A codec turns bytes into stream events and stream calls into bytes. The connection layer
 * (src/net/) feeds what it reads with feed() and writes what output() holds; nothing else in a
 * codec touches a socket. The same vtable serves downstream (server codecs: requests in,
 * responses out) and upstream (client codecs: requests out, responses in).
 *
 * HTTP/1.1 is a codec with at most one active stream at a time (pipelined requests wait in the
 * input until the previous response is complete); HTTP/2 multiplexes.
 *
 * Body bytes move by pl_buf_move (zero copy). Flow control: a codec delivers body data, and the
 * receiver calls consumed() once it has passed the bytes on (written them to the other side);
 * HTTP/2 opens its windows then, HTTP/1 resumes reading when nothing is pending, so a slow
 * reader on one side stops reading on the other (watermarks end to end).
 */
#ifndef PL_HTTP_CODEC_H
#define PL_HTTP_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/headers.h"

struct pl_codec;

/* Every codec's stream starts with this (codecs embed it as their first member). */
struct pl_codec_stream {
    void *user;  /* the owner's context: set by on_new_stream's result or new_stream's argument */
    uint32_t id; /* HTTP/2 stream id; HTTP/1: 1, 2, 3... per connection */
};

/* Why a stream ended abnormally (Envoy's reset reasons). */
enum pl_reset_reason {
    PL_RESET_LOCAL,           /* we reset it */
    PL_RESET_REMOTE,          /* the peer reset it (RST_STREAM, or HTTP/1 connection closed) */
    PL_RESET_PROTOCOL_ERROR,  /* the peer broke the protocol */
    PL_RESET_CONNECTION_FAIL, /* the connection died */
    PL_RESET_OVERFLOW,        /* too many streams / limits */
};

/* Events a codec reports; ctx is what the codec was created with. A callback returning non-zero
 * tells the codec to stop delivering events for this feed() call. */
struct pl_codec_callbacks {
    /* A new stream started by the peer (server codecs only); return the user pointer for it
     * (e.g. the HCM's stream), or NULL to refuse it (the codec resets it). */
    void *(*on_new_stream)(void *ctx, struct pl_codec_stream *s);
    /* A head arrived: the request (server codecs) or a response (client codecs; 1xx heads
     * other than 101 are delivered with informational=true and more heads follow). The head
     * and its strings stay valid until the stream is destroyed. */
    int (*on_head)(void *ctx, struct pl_codec_stream *s, void *user, struct pl_http_head *head,
                   bool end_stream, bool informational);
    /* Body bytes: move what you take out of data (pl_buf_move); call consumed() when sent on. */
    int (*on_data)(void *ctx, struct pl_codec_stream *s, void *user, struct pl_buf *data,
                   bool end_stream);
    /* Trailers end the stream. */
    int (*on_trailers)(void *ctx, struct pl_codec_stream *s, void *user,
                       struct pl_headers *trailers);
    /* The stream ended abnormally; no more events for it; the user must stop using s. */
    void (*on_reset)(void *ctx, struct pl_codec_stream *s, void *user, enum pl_reset_reason why);
    /* The peer will accept no new streams after last_stream_id (HTTP/2 GOAWAY, HTTP/1
     * "Connection: close"). */
    void (*on_goaway)(void *ctx, uint32_t last_stream_id);
};

struct pl_codec_vtable {
    const char *name; /* "http1", "http2" */
    /* Consumes received bytes from in (it may leave a partial frame or head there). Returns 0,
     * or a negative PL_E* code on a connection-level protocol error: the connection layer then
     * writes what output() holds (e.g. a 400 or GOAWAY) and closes. */
    int (*feed)(struct pl_codec *c, struct pl_buf *in);
    /* The peer closed its sending side (read EOF). */
    void (*feed_eof)(struct pl_codec *c);
    /* Starts a new outgoing stream (client codecs); NULL if the connection takes no more. */
    struct pl_codec_stream *(*new_stream)(struct pl_codec *c, void *user);
    int (*encode_head)(struct pl_codec *c, struct pl_codec_stream *s,
                       const struct pl_http_head *head, bool end_stream);
    /* Moves data into the codec's output (zero copy). */
    int (*encode_data)(struct pl_codec *c, struct pl_codec_stream *s, struct pl_buf *data,
                       bool end_stream);
    int (*encode_trailers)(struct pl_codec *c, struct pl_codec_stream *s,
                           const struct pl_headers *trailers);
    /* Resets one stream (RST_STREAM; HTTP/1 must close the connection). */
    void (*reset_stream)(struct pl_codec *c, struct pl_codec_stream *s, enum pl_reset_reason why);
    /* The receiver passed n body bytes of s on: open flow-control windows. */
    void (*consumed)(struct pl_codec *c, struct pl_codec_stream *s, size_t n);
    /* Stops taking new streams (GOAWAY; HTTP/1: "Connection: close" on the next response). */
    void (*goaway)(struct pl_codec *c);
    /* Bytes waiting to be written; the connection layer drains what it writes. */
    struct pl_buf *(*output)(struct pl_codec *c);
    /* Number of open streams. */
    uint32_t (*active_streams)(const struct pl_codec *c);
    /* Frees the codec; any open stream gets on_reset(PL_RESET_CONNECTION_FAIL) first. */
    void (*destroy)(struct pl_codec *c);
};

/* Every codec starts with this header. */
struct pl_codec {
    const struct pl_codec_vtable *vt;
    const struct pl_codec_callbacks *cb;
    void *ctx;
};

#endif
