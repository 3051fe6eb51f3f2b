/* HTTP/2 connection pools: many streams per connection, up to the peer's limit. */
#include <stdint.h>

#include "core/log.h"
#include "http/h2_codec.h"
#include "net/filter.h"
#include "upstream/pool_internal.h"

/* Expected streams of a connection still being made (before the peer's SETTINGS). */
#define CONNECTING_CAPACITY 100

/* A stream's pending request bytes went above / below the codec's stream watermark. */
static void stream_watermark(void *ctx, struct pl_codec_stream *cs, void *user, bool above)
{
    (void)ctx, (void)cs;
    struct pl_pool_stream *s = user;
    if (s && !s->released && !s->reset && s->cb->on_watermark)
        s->cb->on_watermark(s->user, above);
}

struct pl_codec *pool_h2_codec_new(struct pool_conn *pc, const struct pl_codec_callbacks *cb)
{
    const struct pl_pool_opts *o = &pc->pool->o;
    struct pl_h2_settings s = {
        .max_concurrent_streams = o->h2_max_concurrent_streams,
        .initial_stream_window_size = o->h2_initial_stream_window_size,
        .initial_connection_window_size = o->h2_initial_connection_window_size,
        .max_headers_count = o->max_headers_count,
        .stream_buffer_high = o->buffer_limit,
        .on_stream_watermark = stream_watermark,
    };
    return pl_h2_codec_new(false, &s, cb, pc);
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    struct pool_conn *pc = w->data;
    ev_prepare_stop(loop, w);
    if (pc->closed)
        return;
    pool_conn_flush_now(pc);
    pool_h2_settle(pc); /* the codec may be done now that its output left */
}

void pool_h2_flush_init(struct pool_conn *pc)
{
    ev_prepare_init(&pc->flush_w, flush_cb);
    pc->flush_w.data = pc;
}

/* A prepare watcher runs after every event of the loop iteration was dispatched, before the
 * loop polls again. A failed session's GOAWAY leaves at once (the connection closes next). */
bool pool_h2_flush_later(struct pool_conn *pc)
{
    if (!pl_codec_is_h2(pc->codec) || pc->closed || pl_h2_codec_error(pc->codec))
        return false;
    if (!ev_is_active(&pc->flush_w))
        ev_prepare_start(pc->pool->loop, &pc->flush_w);
    return true;
}

uint32_t pool_h2_capacity(struct pool_conn *pc)
{
    return pc->codec ? pl_h2_codec_capacity(pc->codec) : 0;
}

size_t pool_h2_connecting_capacity(const struct pl_pool *p)
{
    uint32_t m = p->o.h2_max_concurrent_streams;
    return m && m < CONNECTING_CAPACITY ? m : CONNECTING_CAPACITY;
}

void pool_h2_settle(struct pool_conn *pc)
{
    if (pc->closed || pc->state != PC_READY || !pc->codec)
        return;
    bool idle = pc->codec->vt->active_streams(pc->codec) == 0 && pc->n_streams == 0;
    if (idle && pc->pool->released && !pc->pool->pend_head) {
        /* the host left its cluster: nothing will use this connection again */
        pc->reset_reason = "connection termination";
        pool_conn_close(pc, true);
        return;
    }
    if (pl_h2_codec_done(pc->codec) || (idle && (pc->goaway || pool_h2_capacity(pc) == 0))) {
        if (idle || pl_h2_codec_done(pc->codec)) {
            pc->reset_reason = "connection termination";
            pool_conn_close(pc, true);
        }
        return;
    }
    if (pc->pool->pend_head && pool_h2_capacity(pc) > 0)
        pool_schedule(pc->pool);
}

const struct pl_transport_vtable *pool_cluster_transport(const struct pl_cluster_cfg *cfg,
                                                         void **transport_cfg)
{
    *transport_cfg = cfg->transport_cfg;
    return cfg->transport;
}
