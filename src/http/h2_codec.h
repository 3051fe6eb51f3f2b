/* HTTP/2 codec (RFC 9113) over nghttp2, implementing the stream model of http/codec.h.
 *
 * No I/O: feed() runs nghttp2_session_mem_recv over the received slices, output() runs
 * nghttp2_session_send with a callback that appends to a pl_buf. DATA payloads are never copied
 * into nghttp2: a stream's body waits in a per-stream pending buffer and moves (pl_buf_move)
 * straight into the output when the peer's flow-control windows allow (NGHTTP2_DATA_FLAG_NO_COPY).
 *
 * Flow control is end to end: windows open only when the codec user calls consumed().
 *
 * Stream lifetime: the codec calls nothing for a stream after on_reset or after its normal end
 * (end_stream both received and sent), and the user calls nothing for it after that or after
 * reset_stream (no on_reset follows a reset_stream). Its memory, with the heads and trailers
 * delivered, stays valid until control comes back to the codec: the next feed() or destroy(),
 * as with the HTTP/1 codec. Bytes the user still holds unconsumed when a stream ends are given
 * back to the connection window by the codec. A server may end a stream with RST_STREAM(NO_ERROR)
 * after a complete response (RFC 9113 8.1): a client user then gets on_reset(PL_RESET_REMOTE)
 * after end_stream, and stops sending.
 *
 * goaway(): a server sends GOAWAY(2^31-1) and a PING, then the final GOAWAY naming the last
 * stream it took once the PING comes back; calling goaway() again (a drain timer) sends the
 * final one at once. A client stops taking new streams and tells the server.
 *
 * Protections: header list size and count limits (an oversized request head gets a local 431 and
 * RST_STREAM(NO_ERROR), the HCM never sees it; an oversized response head resets the stream with
 * PL_RESET_OVERFLOW), Envoy's premature-reset rule (CVE-2023-44487), floods of empty DATA,
 * PRIORITY and WINDOW_UPDATE frames, nghttp2's own control-frame (max_outbound_ack), SETTINGS,
 * CONTINUATION and RST_STREAM rate limits. A tripped limit sends GOAWAY(ENHANCE_YOUR_CALM) and
 * makes feed() fail; pl_h2_codec_error() names the reason. */
#ifndef PL_HTTP_H2_CODEC_H
#define PL_HTTP_H2_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/codec.h"

/* Envoy's defaults (config.core.v3.Http2ProtocolOptions, HCM, runtime overload keys). Envoy's
 * max_concurrent_streams default is 2^31-1; an unset value here means 1024, which bounds the
 * memory one downstream connection can pin (an explicit value is honoured as configured). */
#define PL_H2_DEFAULT_MAX_CONCURRENT_STREAMS 1024u
#define PL_H2_DEFAULT_WINDOW_SIZE            268435456u    /* 256 MiB, stream and connection */
#define PL_H2_DEFAULT_MAX_HEADER_LIST_BYTES  (60u * 1024u) /* max_request_headers_kb = 60 */
#define PL_H2_DEFAULT_MAX_HEADERS_COUNT      100u
#define PL_H2_DEFAULT_PREMATURE_RESET_COUNT  500u  /* overload.premature_reset_total_stream_count */
#define PL_H2_DEFAULT_PREMATURE_RESET_MS     1000u /* ..._min_stream_lifetime_seconds = 1 */
#define PL_H2_DEFAULT_STREAM_BUFFER_HIGH     (1024u * 1024u) /* per_connection_buffer_limit */

/* Codec settings; zero means the default above. */
struct pl_h2_settings {
    uint32_t max_concurrent_streams;         /* SETTINGS_MAX_CONCURRENT_STREAMS; client: cap */
    uint32_t initial_stream_window_size;     /* 65535 .. 2^31-1 */
    uint32_t initial_connection_window_size; /* 65535 .. 2^31-1 */
    uint32_t max_header_list_bytes;          /* names + values of one header block */
    uint32_t max_headers_count;              /* regular fields of one header block */
    uint32_t premature_reset_total_stream_count;
    uint32_t premature_reset_min_stream_lifetime_ms;
    uint32_t stream_buffer_high; /* pending output bytes per stream (watermark) */
    bool allow_connect;          /* SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441) */
    /* Envoy's stream_error_on_invalid_http_messaging: false (Envoy's default) turns a malformed
     * HEADERS frame into a connection error; true resets only the stream. */
    bool stream_error_on_invalid_http_messaging;
    /* Called when a stream's pending output goes above stream_buffer_high (above=true) and when
     * it drains back to half of it (above=false); may be NULL. */
    void (*on_stream_watermark)(void *ctx, struct pl_codec_stream *s, void *user, bool above);
    uint64_t (*now_ms)(void); /* monotonic clock; NULL: CLOCK_MONOTONIC_COARSE */
};

/* Counters named after Envoy's http2.* stats (the HCM adds them to its stat scope). */
struct pl_h2_stats {
    uint64_t rx_reset, tx_reset; /* RST_STREAM received / sent */
    uint64_t header_overflow;    /* header blocks over the size or count limit */
    uint64_t rx_messaging_error; /* malformed HTTP messages (RFC 9113 8.1.1) */
    uint64_t trailers;           /* trailer blocks received */
    uint64_t goaway_sent, goaway_received;
    uint64_t streams_refused; /* refused by the user (on_new_stream returned NULL) */
    uint64_t inbound_empty_frames_flood, inbound_priority_frames_flood;
    uint64_t inbound_window_update_frames_flood, outbound_control_flood;
    uint64_t too_many_premature_resets; /* downstream_rq_too_many_premature_resets */
};

/* Returns a new HTTP/2 codec (server: downstream, the client preface is expected first; client:
 * upstream, output() starts with the preface). s may be NULL for defaults; cb and ctx must
 * outlive the codec. The caller owns the codec and frees it with vt->destroy. */
struct pl_codec *pl_h2_codec_new(bool server, const struct pl_h2_settings *s,
                                 const struct pl_codec_callbacks *cb, void *ctx);
/* Returns how many more streams new_stream() would accept now (client codecs; connection pools
 * use it): the peer's MAX_CONCURRENT_STREAMS (capped by ours) minus open streams, 0 after GOAWAY
 * or when stream ids run out. */
uint32_t pl_h2_codec_capacity(const struct pl_codec *c);
/* Returns the body bytes of s waiting for the peer's flow-control window (watermarks). */
size_t pl_h2_stream_pending(const struct pl_codec_stream *s);
/* Returns the codec's counters (owned by the codec). */
const struct pl_h2_stats *pl_h2_codec_stats(const struct pl_codec *c);
/* Returns why the connection failed ("protocol_error", "too_many_premature_resets", ...) or
 * NULL; a static string. */
const char *pl_h2_codec_error(const struct pl_codec *c);
/* Returns true when the session is over (GOAWAY exchanged and no streams left, or a connection
 * error): once output() is written the connection can be closed. */
bool pl_h2_codec_done(const struct pl_codec *c);
/* True if c was made by pl_h2_codec_new. */
bool pl_codec_is_h2(const struct pl_codec *c);

#endif
