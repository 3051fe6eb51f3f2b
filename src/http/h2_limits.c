/* The HTTP/2 codec's abuse limits, after Envoy's: premature stream resets (CVE-2023-44487)
 * and floods of empty DATA, PRIORITY and WINDOW_UPDATE frames. A tripped limit fails the
 * connection with GOAWAY(ENHANCE_YOUR_CALM). */
#include "http/h2_codec_internal.h"

void pl_h2_conn_error(struct h2_codec *c, uint32_t code, const char *why)
{
    if (!c->err_reason)
        c->err_reason = why;
    nghttp2_session_terminate_session(c->ng, code);
}

bool pl_h2_is_premature(struct h2_codec *c, struct h2_stream *s)
{
    return !s->final_head_sent &&
           c->now() - s->created_ms <= c->set.premature_reset_min_stream_lifetime_ms;
}

/* Envoy's rule: once enough streams have closed, more than half of them reset prematurely by
 * the peer means a rapid-reset attack; before that, half of the threshold is enough. */
void pl_h2_check_premature(struct h2_codec *c)
{
    uint64_t limit = c->set.premature_reset_total_stream_count;
    uint64_t closed = c->closed_streams, premature = c->premature_resets;
    if (closed == 0 || c->err_reason)
        return;
    if (closed < limit ? premature * 2 < limit : premature * 2 < closed)
        return;
    c->stats.too_many_premature_resets++;
    pl_h2_conn_error(c, NGHTTP2_ENHANCE_YOUR_CALM, "too_many_premature_resets");
}

/* Counts control frames against what we sent and received (Envoy's flood mitigations). */
void pl_h2_check_floods(struct h2_codec *c, const nghttp2_frame *f)
{
    if (f->hd.type == NGHTTP2_DATA) {
        if (f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            if (++c->empty_frames > 1) { /* max_consecutive_inbound_frames_with_empty_payload */
                c->stats.inbound_empty_frames_flood++;
                pl_h2_conn_error(c, NGHTTP2_ENHANCE_YOUR_CALM, "inbound_empty_frames_flood");
            }
        } else {
            c->empty_frames = 0;
        }
    } else if (f->hd.type == NGHTTP2_HEADERS) {
        c->empty_frames = 0;
    } else if (f->hd.type == NGHTTP2_PRIORITY) {
        /* max_inbound_priority_frames_per_stream = 100 */
        if (++c->priority_frames > 100 * (1 + c->peer_streams)) {
            c->stats.inbound_priority_frames_flood++;
            pl_h2_conn_error(c, NGHTTP2_ENHANCE_YOUR_CALM, "inbound_priority_frames_flood");
        }
    } else if (f->hd.type == NGHTTP2_WINDOW_UPDATE) {
        /* max_inbound_window_update_frames_per_data_frame_sent = 10 */
        if (++c->window_updates > 5 + 2 * (c->peer_streams + 10 * c->data_frames_sent)) {
            c->stats.inbound_window_update_frames_flood++;
            pl_h2_conn_error(c, NGHTTP2_ENHANCE_YOUR_CALM, "inbound_window_update_frames_flood");
        }
    }
}
