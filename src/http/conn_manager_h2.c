/* The HTTP connection manager's HTTP/2 side: the downstream codec and its per-stream
 * watermarks. */
#include "http/conn_manager_internal.h"
#include "http/h2_codec.h"

/* A stream's pending response bytes went above / back below the codec's stream watermark. */
static void stream_watermark(void *ctx, struct pl_codec_stream *cs, void *user, bool above)
{
    (void)ctx, (void)cs;
    struct hcm_stream *st = user;
    if (!st || st->finished)
        return;
    st->h2_above = above;
    hcm_stream_watermark(st, above);
}

struct pl_codec *hcm_h2_codec_new(struct hcm_conn *hc)
{
    const struct hcm_config *cfg = hc->cfg;
    struct pl_h2_settings s = {
        .max_concurrent_streams = cfg->h2_max_concurrent_streams,
        .initial_stream_window_size = cfg->h2_initial_stream_window_size,
        .initial_connection_window_size = cfg->h2_initial_connection_window_size,
        .max_header_list_bytes = cfg->max_request_headers_kb * 1024,
        .max_headers_count = cfg->max_headers_count,
        .on_stream_watermark = stream_watermark,
    };
    return pl_h2_codec_new(true, &s, &hcm_codec_callbacks, hc);
}

bool hcm_h2_done(const struct pl_codec *c)
{
    return pl_h2_codec_done(c);
}
