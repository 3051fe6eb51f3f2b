/* HTTP/2 codec over nghttp2 (see h2_codec.h). nghttp2 does the framing, HPACK and the HTTP
 * messaging checks of RFC 9113 8.1-8.3 (pseudo-headers, lower-case names, connection-specific
 * fields, content-length against the body); this file maps its callbacks onto the stream model
 * and adds flow control through consumed(), zero-copy DATA and the abuse limits. */
#include "http/h2_codec.h"

#include <nghttp2/nghttp2.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/slab.h"
#include "http/h2_codec_internal.h"

#define OUT_HIGH   (256u * 1024u) /* stop generating frames above this much unwritten output */
#define PING_DRAIN "pl-drain"     /* opaque data of the PING that times the final GOAWAY */

static const struct pl_codec_vtable h2_vt;

static uint64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The stream with this id (NULL if none). The last one found is kept: a header block calls
 * back once per field with the same id. */
static struct h2_stream *get_stream(struct h2_codec *c, int32_t id)
{
    if (c->last && c->last_id == id)
        return c->last;
    struct h2_stream *s = nghttp2_session_get_stream_user_data(c->ng, id);
    if (s)
        c->last = s, c->last_id = id;
    return s;
}

static void set_stream(struct h2_codec *c, int32_t id, struct h2_stream *s)
{
    nghttp2_session_set_stream_user_data(c->ng, id, s);
    if (c->last_id == id)
        c->last = s;
}

static __thread struct pl_slab stream_cache = PL_SLAB_INIT(sizeof(struct h2_stream), 1024);

/* Allocates a stream object and links it into the codec's list. */
static struct h2_stream *stream_new(struct h2_codec *c, void *user)
{
    struct h2_stream *s = pl_slab_calloc(&stream_cache);
    s->base.user = user;
    s->c = c;
    s->created_ms = c->now();
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->n_streams++;
    return s;
}

static void stream_free(struct h2_stream *s)
{
    pl_buf_free(&s->rx);
    pl_buf_free(&s->pending);
    pl_arena_free(&s->arena);
    pl_slab_free(&stream_cache, s);
}

/* Unlinks an ended stream; its memory (the head the user may still look at) lives until control
 * comes back to the codec, as with the HTTP/1 codec. */
static void stream_retire(struct h2_codec *c, struct h2_stream *s)
{
    if (s->retired)
        return;
    s->retired = true;
    if (s->base.id)
        set_stream(c, (int32_t)s->base.id, NULL);
    if (c->last == s)
        c->last = NULL;
    if (s->unconsumed) /* the user will not call consumed() for a dead stream */
        nghttp2_session_consume_connection(c->ng, s->unconsumed);
    s->unconsumed = 0;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->n_streams--;
    if (s->base.id == 0)
        c->unsubmitted--;
    pl_buf_free(&s->rx);
    pl_buf_free(&s->pending);
    s->prev = NULL;
    s->next = c->dead;
    c->dead = s;
}

static void free_dead(struct h2_codec *c)
{
    while (c->dead) {
        struct h2_stream *s = c->dead;
        c->dead = s->next;
        stream_free(s);
    }
}

/* Delivers on_reset to the stream's user once; the user stops using the stream. */
static void stream_reset_user(struct h2_codec *c, struct h2_stream *s, enum pl_reset_reason why)
{
    if (!s->base.user || s->user_reset || s->notified || c->destroying)
        return;
    s->notified = true;
    if (c->base.cb->on_reset)
        c->base.cb->on_reset(c->base.ctx, &s->base, s->base.user, why);
}

/* ---- receiving ---- */

static int user_stop(struct h2_codec *c, int r)
{
    if (r)
        c->paused = true;
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_codec *c = ud;
    (void)ng;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct h2_stream *s = get_stream(c, f->hd.stream_id);
    if (c->server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        s = stream_new(c, NULL);
        s->base.id = (uint32_t)f->hd.stream_id;
        s->opened = true;
        c->peer_streams++;
        set_stream(c, f->hd.stream_id, s);
    }
    if (!s)
        return 0;
    pl_h2_begin_block(c, s, f);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct h2_codec *c = ud;
    (void)ng;
    (void)flags;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct h2_stream *s = get_stream(c, f->hd.stream_id);
    if (s)
        pl_h2_add_header(c, s, (const char *)name, namelen, (const char *)value, valuelen);
    return c->paused ? NGHTTP2_ERR_PAUSE : 0;
}

static int on_invalid_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                             size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                             void *ud)
{
    (void)ng, (void)f, (void)name, (void)namelen, (void)value, (void)valuelen, (void)flags;
    (void)ud;
    /* RFC 9113 8.2.1: a field with invalid characters makes the message malformed. */
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct h2_codec *c = ud;
    (void)flags;
    struct h2_stream *s = get_stream(c, id);
    if (!s || !s->base.user || s->user_reset || s->notified) {
        nghttp2_session_consume(ng, id, len); /* nobody will consume it */
        return 0;
    }
    /* nghttp2 hands out pointers into the input; one copy into the stream's pending input. */
    pl_buf_append(&s->rx, data, len);
    s->unconsumed += len;
    return c->paused ? NGHTTP2_ERR_PAUSE : 0;
}

/* Passes received body bytes on; what the user leaves in rx goes with the next delivery. */
static void deliver_data(struct h2_codec *c, struct h2_stream *s, bool end)
{
    if (!s->base.user || s->user_reset || s->notified || (!s->rx.len && !end))
        return;
    if (end)
        s->remote_end = true;
    if (c->base.cb->on_data)
        user_stop(c, c->base.cb->on_data(c->base.ctx, &s->base, s->base.user, &s->rx, end));
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_codec *c = ud;
    (void)ng;
    pl_h2_check_floods(c, f);
    struct h2_stream *s = f->hd.stream_id ? get_stream(c, f->hd.stream_id) : NULL;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (s)
            pl_h2_end_block(c, s, end);
        break;
    case NGHTTP2_DATA:
        if (s)
            deliver_data(c, s, end);
        break;
    case NGHTTP2_RST_STREAM:
        c->stats.rx_reset++;
        if (s) {
            s->peer_rst = true;
            if (c->server && pl_h2_is_premature(c, s))
                c->premature_resets++;
        }
        break;
    case NGHTTP2_GOAWAY:
        c->stats.goaway_received++;
        c->goaway_received = true;
        if (c->base.cb->on_goaway)
            c->base.cb->on_goaway(c->base.ctx, (uint32_t)f->goaway.last_stream_id);
        break;
    case NGHTTP2_PING:
        if ((f->hd.flags & NGHTTP2_FLAG_ACK) && !memcmp(f->ping.opaque_data, PING_DRAIN, 8) &&
            !c->goaway_final) {
            /* A round trip after the notice: streams the peer opened meanwhile have arrived. */
            c->goaway_final = true;
            nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(c->ng), NGHTTP2_NO_ERROR,
                                  NULL, 0);
        }
        break;
    default:
        break;
    }
    return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int lib_err, void *ud)
{
    struct h2_codec *c = ud;
    (void)ng;
    struct h2_stream *s = f->hd.stream_id ? get_stream(c, f->hd.stream_id) : NULL;
    if (lib_err == NGHTTP2_ERR_HTTP_HEADER || lib_err == NGHTTP2_ERR_HTTP_MESSAGING) {
        c->stats.rx_messaging_error++;
        if (s)
            s->proto_err = true;
        if (!c->set.stream_error_on_invalid_http_messaging)
            pl_h2_conn_error(c, NGHTTP2_PROTOCOL_ERROR, "invalid_http_messaging");
        return 0;
    }
    if (s)
        s->proto_err = true;
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct h2_codec *c = ud;
    (void)ng;
    struct h2_stream *s = get_stream(c, id);
    if (!s)
        return 0;
    set_stream(c, id, NULL);
    if (c->server) {
        c->closed_streams++;
        pl_h2_check_premature(c);
    }
    enum pl_reset_reason why;
    bool normal =
        code == NGHTTP2_NO_ERROR && !s->peer_rst && !s->local_rst && !s->overflow && !s->proto_err;
    if (s->peer_rst)
        why = PL_RESET_REMOTE;
    else if (s->overflow)
        why = PL_RESET_OVERFLOW;
    else if (code == NGHTTP2_REFUSED_STREAM && !s->local_rst)
        why = PL_RESET_REMOTE; /* beyond the peer's GOAWAY: safe to retry */
    else if (s->proto_err || code == NGHTTP2_PROTOCOL_ERROR)
        why = PL_RESET_PROTOCOL_ERROR;
    else if (c->err_reason || c->eof)
        why = PL_RESET_CONNECTION_FAIL;
    else if (code == NGHTTP2_REFUSED_STREAM || code == NGHTTP2_ENHANCE_YOUR_CALM)
        why = PL_RESET_OVERFLOW;
    else
        why = PL_RESET_LOCAL;
    if (!normal)
        stream_reset_user(c, s, why);
    stream_retire(c, s);
    return 0;
}

/* ---- sending ---- */

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_codec *c = ud;
    (void)ng;
    struct h2_stream *s = f->hd.stream_id ? get_stream(c, f->hd.stream_id) : NULL;
    switch (f->hd.type) {
    case NGHTTP2_DATA:
        c->data_frames_sent++;
        break;
    case NGHTTP2_HEADERS:
        if (s)
            s->opened = true;
        if (s && s->rst_after_head) {
            s->rst_after_head = false;
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
        }
        break;
    case NGHTTP2_RST_STREAM:
        c->stats.tx_reset++;
        if (s)
            s->local_rst = true;
        break;
    case NGHTTP2_GOAWAY:
        c->stats.goaway_sent++;
        if (f->goaway.error_code != NGHTTP2_NO_ERROR && !c->err_reason)
            c->err_reason = "protocol_error";
        break;
    default:
        break;
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *f, int lib_err, void *ud)
{
    struct h2_codec *c = ud;
    (void)ng;
    (void)lib_err;
    if (f->hd.type != NGHTTP2_HEADERS || c->server)
        return 0;
    /* A request that never left (GOAWAY received, or reset before it was sent): nghttp2 never
     * opened the stream, so no close callback comes for it. */
    for (struct h2_stream *s = c->streams; s; s = s->next) {
        if (s->base.id == (uint32_t)f->hd.stream_id && !s->opened) {
            stream_reset_user(c, s, PL_RESET_REMOTE);
            stream_retire(c, s);
            break;
        }
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct h2_stream *s = src->ptr;
    struct h2_codec *c = ud;
    (void)buf;
    (void)id;
    size_t n = s->pending.len < length ? s->pending.len : length;
    if (n == 0 && !s->local_end) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->local_end && n == s->pending.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->tx_trailers) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(ng, s->base.id, s->tx_trailers, s->n_tx_trailers))
                pl_h2_conn_error(c, NGHTTP2_INTERNAL_ERROR, "internal_error");
        }
    }
    return (ssize_t)n;
}

static int send_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd, size_t length,
                     nghttp2_data_source *src, void *ud)
{
    struct h2_codec *c = ud;
    struct h2_stream *s = src->ptr;
    (void)ng;
    (void)framehd;
    if (c->out.len >= OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    /* The header is rebuilt from f rather than copied from framehd: a frame put off here
     * (WOULDBLOCK) waits in nghttp2's frame buffer, which server sessions of a thread share
     * (h2_mem.c), so its bytes may be another session's by the time it is resumed. */
    uint8_t hd[9] = {(uint8_t)(f->hd.length >> 16),
                     (uint8_t)(f->hd.length >> 8),
                     (uint8_t)f->hd.length,
                     NGHTTP2_DATA,
                     f->hd.flags,
                     (uint8_t)((uint32_t)f->hd.stream_id >> 24),
                     (uint8_t)(f->hd.stream_id >> 16),
                     (uint8_t)(f->hd.stream_id >> 8),
                     (uint8_t)f->hd.stream_id};
    pl_buf_append(&c->out, hd, 9);
    if (f->data.padlen > 0) { /* we never pad; kept for completeness */
        uint8_t pad = (uint8_t)(f->data.padlen - 1);
        pl_buf_append(&c->out, &pad, 1);
    }
    pl_buf_move(&c->out, &s->pending, length);
    if (f->data.padlen > 1) {
        static const uint8_t zeros[256];
        pl_buf_append(&c->out, zeros, f->data.padlen - 1);
    }
    if (s->above_high && s->pending.len <= c->set.stream_buffer_high / 2) {
        s->above_high = false;
        if (c->set.on_stream_watermark && s->base.user && !s->user_reset && !s->notified)
            c->set.on_stream_watermark(c->base.ctx, &s->base, s->base.user, false);
    }
    return 0;
}

/* nghttp2 hands each serialized frame to this callback before it runs any callback about that
 * frame (on_frame_send, on_stream_close): the bytes are copied out of its frame buffer at once,
 * which is what lets server sessions of a thread share one frame buffer (h2_mem.c). */
static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct h2_codec *c = ud;
    (void)ng, (void)flags;
    pl_buf_append(&c->out, data, len);
    return (ssize_t)len;
}

/* Serializes whatever nghttp2 may send now into the output. DATA stops at OUT_HIGH (send_data
 * puts it off); control frames are bounded by nghttp2's own queue limits. */
static void flush(struct h2_codec *c)
{
    if (c->out.len >= OUT_HIGH || !nghttp2_session_want_write(c->ng))
        return;
    int rv = nghttp2_session_send(c->ng);
    if (rv < 0 && !c->err_reason)
        c->err_reason = rv == NGHTTP2_ERR_FLOODED ? "outbound_flood" : "internal_error";
}

/* ---- vtable ---- */

static int h2_feed(struct pl_codec *cc, struct pl_buf *in)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    free_dead(c);
    c->paused = false;
    while (in->len && !c->paused && !c->err_reason) {
        struct pl_buf_slice *sl = in->head;
        ssize_t n = nghttp2_session_mem_recv(c->ng, (const uint8_t *)sl->data + sl->start,
                                             sl->end - sl->start);
        if (n < 0) {
            if (n == NGHTTP2_ERR_FLOODED) {
                c->stats.outbound_control_flood++;
                pl_h2_conn_error(c, NGHTTP2_ENHANCE_YOUR_CALM, "outbound_control_flood");
            } else if (n == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
                c->err_reason = "bad_preface";
            } else {
                pl_h2_conn_error(c, NGHTTP2_PROTOCOL_ERROR, "protocol_error");
            }
            break;
        }
        pl_buf_drain(in, (size_t)n);
        if (n == 0)
            break;
    }
    /* What the frames asked for (acks, window updates, answers) leaves with the caller's
     * output() call, which every feed() is followed by; a failed session's GOAWAY is queued
     * now. */
    if (c->err_reason) {
        flush(c);
        pl_buf_drain(in, in->len);
        return PL_EINVAL;
    }
    return 0;
}

static void h2_feed_eof(struct pl_codec *cc)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    c->eof = true;
    /* Streams still waiting for input can never finish; the others may still send. */
    for (struct h2_stream *s = c->streams; s; s = s->next)
        if (!s->remote_end)
            stream_reset_user(c, s, PL_RESET_CONNECTION_FAIL);
}

static struct pl_codec_stream *h2_new_stream(struct pl_codec *cc, void *user)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    if (c->server || pl_h2_codec_capacity(cc) == 0)
        return NULL;
    c->unsubmitted++;
    return &stream_new(c, user)->base;
}

static int h2_encode_head(struct pl_codec *cc, struct pl_codec_stream *ps,
                          const struct pl_http_head *head, bool end_stream)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    struct h2_stream *s = (struct h2_stream *)ps;
    if (c->err_reason || s->final_head_sent || s->user_reset || s->notified)
        return PL_EINVAL;
    size_t n = pl_h2_build_head(c, s, head);
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_body};
    const nghttp2_data_provider *pdp = end_stream ? NULL : &dp;
    int rv;
    if (c->server) {
        if (head->status == 101) /* no Upgrade in HTTP/2 (RFC 9113 8.6) */
            return PL_EINVAL;
        if (head->status >= 100 && head->status < 200)
            return nghttp2_submit_headers(c->ng, NGHTTP2_FLAG_NONE, (int32_t)s->base.id, NULL,
                                          c->nv, n, NULL)
                       ? PL_EINVAL
                       : 0;
        rv = nghttp2_submit_response(c->ng, (int32_t)s->base.id, c->nv, n, pdp);
    } else {
        int32_t id = nghttp2_submit_request(c->ng, NULL, c->nv, n, pdp, s);
        if (id > 0) {
            s->base.id = (uint32_t)id;
            c->unsubmitted--;
        }
        rv = id > 0 ? 0 : id;
    }
    if (rv)
        return PL_EINVAL;
    s->final_head_sent = true;
    s->local_end = end_stream;
    return 0;
}

static void resume(struct h2_codec *c, struct h2_stream *s)
{
    if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(c->ng, (int32_t)s->base.id);
    }
}

static int h2_encode_data(struct pl_codec *cc, struct pl_codec_stream *ps, struct pl_buf *data,
                          bool end_stream)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    struct h2_stream *s = (struct h2_stream *)ps;
    if (!s->final_head_sent || s->local_end || s->user_reset || s->notified)
        return PL_EINVAL;
    pl_buf_move(&s->pending, data, data->len);
    s->local_end = end_stream;
    if (!s->above_high && s->pending.len > c->set.stream_buffer_high) {
        s->above_high = true;
        if (c->set.on_stream_watermark)
            c->set.on_stream_watermark(c->base.ctx, &s->base, s->base.user, true);
    }
    resume(c, s);
    return 0;
}

static int h2_encode_trailers(struct pl_codec *cc, struct pl_codec_stream *ps,
                              const struct pl_headers *trailers)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    struct h2_stream *s = (struct h2_stream *)ps;
    if (!s->final_head_sent || s->local_end || s->user_reset || s->notified)
        return PL_EINVAL;
    pl_h2_build_trailers(c, s, trailers);
    s->local_end = true;
    resume(c, s);
    return 0;
}

static uint32_t reset_code(enum pl_reset_reason why)
{
    switch (why) {
    case PL_RESET_PROTOCOL_ERROR:
        return NGHTTP2_PROTOCOL_ERROR;
    case PL_RESET_OVERFLOW:
        return NGHTTP2_REFUSED_STREAM;
    default:
        return NGHTTP2_CANCEL;
    }
}

static void h2_reset_stream(struct pl_codec *cc, struct pl_codec_stream *ps,
                            enum pl_reset_reason why)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    struct h2_stream *s = (struct h2_stream *)ps;
    if (s->user_reset || s->notified)
        return;
    s->user_reset = true;
    if (s->unconsumed) {
        nghttp2_session_consume(c->ng, (int32_t)s->base.id, s->unconsumed);
        s->unconsumed = 0;
    }
    pl_buf_free(&s->pending);
    pl_buf_free(&s->rx);
    if (s->base.id == 0) { /* a client stream whose request was never submitted */
        stream_retire(c, s);
        return;
    }
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, (int32_t)s->base.id, reset_code(why));
    resume(c, s);
}

static void h2_consumed(struct pl_codec *cc, struct pl_codec_stream *ps, size_t n)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    struct h2_stream *s = (struct h2_stream *)ps;
    if (n > s->unconsumed)
        n = s->unconsumed;
    if (!n)
        return;
    s->unconsumed -= n;
    nghttp2_session_consume(c->ng, (int32_t)s->base.id, n);
}

static void h2_goaway(struct pl_codec *cc)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    if (!c->server) {
        if (!c->goaway_final)
            nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
        c->goaway_final = true;
        return;
    }
    if (!c->goaway_notice) {
        /* Graceful: GOAWAY(2^31-1) now, the real last stream id a PING round trip later. */
        c->goaway_notice = true;
        nghttp2_submit_shutdown_notice(c->ng);
        nghttp2_submit_ping(c->ng, NGHTTP2_FLAG_NONE, (const uint8_t *)PING_DRAIN);
    } else if (!c->goaway_final) {
        c->goaway_final = true;
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->ng), NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
}

static struct pl_buf *h2_output(struct pl_codec *cc)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    flush(c);
    return &c->out;
}

static uint32_t h2_active_streams(const struct pl_codec *cc)
{
    return ((const struct h2_codec *)cc)->n_streams;
}

static void h2_destroy(struct pl_codec *cc)
{
    struct h2_codec *c = (struct h2_codec *)cc;
    for (struct h2_stream *s = c->streams; s; s = s->next)
        stream_reset_user(c, s, PL_RESET_CONNECTION_FAIL);
    c->destroying = true;
    nghttp2_session_del(c->ng);
    while (c->streams) {
        struct h2_stream *s = c->streams;
        c->streams = s->next;
        stream_free(s);
    }
    free_dead(c);
    pl_buf_free(&c->out);
    free(c->nv_own);
    free(c);
}

static const struct pl_codec_vtable h2_vt = {
    .name = "http2",
    .feed = h2_feed,
    .feed_eof = h2_feed_eof,
    .new_stream = h2_new_stream,
    .encode_head = h2_encode_head,
    .encode_data = h2_encode_data,
    .encode_trailers = h2_encode_trailers,
    .reset_stream = h2_reset_stream,
    .consumed = h2_consumed,
    .goaway = h2_goaway,
    .output = h2_output,
    .active_streams = h2_active_streams,
    .destroy = h2_destroy,
};

/* ---- construction and accessors ---- */

static uint32_t clamp_window(uint32_t v)
{
    if (v == 0)
        return PL_H2_DEFAULT_WINDOW_SIZE;
    if (v < 65535)
        return 65535;
    return v > 0x7fffffffu ? 0x7fffffffu : v;
}

static void fill_defaults(struct pl_h2_settings *s)
{
    if (!s->max_concurrent_streams)
        s->max_concurrent_streams = PL_H2_DEFAULT_MAX_CONCURRENT_STREAMS;
    if (s->max_concurrent_streams > 0x7fffffffu)
        s->max_concurrent_streams = 0x7fffffffu;
    s->initial_stream_window_size = clamp_window(s->initial_stream_window_size);
    s->initial_connection_window_size = clamp_window(s->initial_connection_window_size);
    if (!s->max_header_list_bytes)
        s->max_header_list_bytes = PL_H2_DEFAULT_MAX_HEADER_LIST_BYTES;
    if (!s->max_headers_count)
        s->max_headers_count = PL_H2_DEFAULT_MAX_HEADERS_COUNT;
    if (!s->premature_reset_total_stream_count)
        s->premature_reset_total_stream_count = PL_H2_DEFAULT_PREMATURE_RESET_COUNT;
    if (!s->premature_reset_min_stream_lifetime_ms)
        s->premature_reset_min_stream_lifetime_ms = PL_H2_DEFAULT_PREMATURE_RESET_MS;
    if (!s->stream_buffer_high)
        s->stream_buffer_high = PL_H2_DEFAULT_STREAM_BUFFER_HIGH;
}

static nghttp2_session_callbacks *session_callbacks(void)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs))
        pl_die("out of memory");
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_invalid_header_callback(cbs, on_invalid_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    return cbs;
}

struct pl_codec *pl_h2_codec_new(bool server, const struct pl_h2_settings *set,
                                 const struct pl_codec_callbacks *cb, void *ctx)
{
    struct h2_codec *c = pl_calloc(1, sizeof(*c));
    c->base = (struct pl_codec){.vt = &h2_vt, .cb = cb, .ctx = ctx};
    c->server = server;
    if (set)
        c->set = *set;
    fill_defaults(&c->set);
    c->now = c->set.now_ms ? c->set.now_ms : clock_ms;
    pl_buf_init(&c->out);

    nghttp2_option *opt;
    if (nghttp2_option_new(&opt))
        pl_die("out of memory");
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, 1000); /* Envoy's max_outbound_control_frames */
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_send_header_block_length(opt, 256 * 1024);
    nghttp2_option_set_no_closed_streams(opt, 1);
    if (!server)
        nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    nghttp2_session_callbacks *cbs = session_callbacks();
    int rv;
    if (server) {
        /* the session's frame buffer is the thread's shared one (see send_cb) */
        pl_h2_mem_share_framebuf(true);
        rv = nghttp2_session_server_new3(&c->ng, cbs, c, opt, pl_h2_mem());
        pl_h2_mem_share_framebuf(false);
    } else {
        rv = nghttp2_session_client_new3(&c->ng, cbs, c, opt, pl_h2_mem());
    }
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (rv)
        pl_die("nghttp2_session_new: %s", nghttp2_strerror(rv));

    nghttp2_settings_entry iv[6];
    size_t n = 0;
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                       server ? c->set.max_concurrent_streams : 0};
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                       c->set.initial_stream_window_size};
    /* Advertised with the HPACK overhead allowance (RFC 9113 6.5.2: 32 bytes per field). */
    iv[n++] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
                                 c->set.max_header_list_bytes + 32 * c->set.max_headers_count};
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    if (server && c->set.allow_connect)
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1};
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, n) ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)c->set.initial_connection_window_size))
        pl_die("nghttp2: cannot queue SETTINGS");
    return &c->base;
}

uint32_t pl_h2_codec_capacity(const struct pl_codec *cc)
{
    const struct h2_codec *c = (const struct h2_codec *)cc;
    if (c->server || c->goaway_received || c->goaway_final || c->err_reason || c->eof)
        return 0;
    uint32_t max =
        nghttp2_session_get_remote_settings(c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (max > c->set.max_concurrent_streams)
        max = c->set.max_concurrent_streams;
    uint32_t next = nghttp2_session_get_next_stream_id(c->ng);
    uint32_t ids = next > 0x7fffffffu ? 0 : (0x7fffffffu - next) / 2 + 1;
    /* streams made by new_stream but not submitted yet have no id: count them against ids */
    uint32_t left = max > c->n_streams ? max - c->n_streams : 0;
    ids = ids > c->unsubmitted ? ids - c->unsubmitted : 0;
    return left < ids ? left : ids;
}

size_t pl_h2_stream_pending(const struct pl_codec_stream *s)
{
    return ((const struct h2_stream *)s)->pending.len;
}

const struct pl_h2_stats *pl_h2_codec_stats(const struct pl_codec *cc)
{
    return &((const struct h2_codec *)cc)->stats;
}

const char *pl_h2_codec_error(const struct pl_codec *cc)
{
    return ((const struct h2_codec *)cc)->err_reason;
}

bool pl_h2_codec_done(const struct pl_codec *cc)
{
    const struct h2_codec *c = (const struct h2_codec *)cc;
    if (c->out.len)
        return false;
    return !nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng);
}

bool pl_codec_is_h2(const struct pl_codec *c)
{
    return c->vt == &h2_vt;
}
