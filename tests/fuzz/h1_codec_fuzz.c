/* libFuzzer target: the HTTP/1.1 codec (server and client mode) fed arbitrary bytes in pieces,
 * answering requests as the connection manager would (inline, and after the request). The first
 * input byte picks the mode, the piece size and when to answer. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/h1_codec.h"

struct ctx {
    struct pl_codec *c;
    struct pl_codec_stream *pending; /* a stream whose request ended, to answer after feed */
    uint8_t flags;
    int streams;
};

static void respond(struct ctx *x, struct pl_codec_stream *s)
{
    struct pl_arena a = PL_ARENA_INIT;
    struct pl_http_head h = {.status = (x->flags & 8) ? 101 : 200, .content_length = -1};
    pl_headers_add_copy(&h.headers, &a, "x", 1, "y", 1);
    if (x->c->vt->encode_head(x->c, s, &h, false) == 0) {
        struct pl_buf b = PL_BUF_INIT;
        pl_buf_append(&b, "body", 4);
        x->c->vt->encode_data(x->c, s, &b, (x->flags & 16) == 0);
        pl_buf_free(&b);
    }
    pl_arena_free(&a);
}

static void *on_new_stream(void *p, struct pl_codec_stream *s)
{
    (void)s;
    struct ctx *x = p;
    return ++x->streams % 7 == 6 && (x->flags & 32) ? NULL : x;
}

static int on_head(void *p, struct pl_codec_stream *s, void *u, struct pl_http_head *h, bool end,
                   bool info)
{
    (void)u, (void)info;
    struct ctx *x = p;
    for (uint32_t i = 0; i < h->headers.n; i++) /* touch every string */
        if (h->headers.v[i].name_len && h->headers.v[i].name[0] == 0x7f)
            x->flags ^= 1;
    if (end && (x->flags & 2))
        respond(x, s);
    else if (end)
        x->pending = s;
    return 0;
}

static int on_data(void *p, struct pl_codec_stream *s, void *u, struct pl_buf *d, bool end)
{
    (void)u;
    struct ctx *x = p;
    pl_buf_drain(d, d->len);
    if (end)
        x->pending = s;
    return 0;
}

static int on_trailers(void *p, struct pl_codec_stream *s, void *u, struct pl_headers *t)
{
    (void)u, (void)t;
    ((struct ctx *)p)->pending = s;
    return 0;
}

static void on_reset(void *p, struct pl_codec_stream *s, void *u, enum pl_reset_reason why)
{
    (void)u, (void)why;
    struct ctx *x = p;
    if (x->pending == s)
        x->pending = NULL;
}

static const struct pl_codec_callbacks cbs = {
    .on_new_stream = on_new_stream,
    .on_head = on_head,
    .on_data = on_data,
    .on_trailers = on_trailers,
    .on_reset = on_reset,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct ctx x = {.flags = data[0]};
    bool server = (data[0] & 1) == 0;
    size_t step = 1 + (data[0] >> 6) * 37;
    data++, size--;
    struct pl_h1_codec_opts o = pl_h1_codec_opts_default();
    o.limits.max_header_bytes = 2048;
    o.limits.max_headers = 16;
    x.c = pl_h1_codec_new(server, &o, &cbs, &x);
    struct pl_buf in = PL_BUF_INIT;
    if (!server) {
        struct pl_codec_stream *s = x.c->vt->new_stream(x.c, &x);
        struct pl_http_head h = {.method = (x.flags & 4) ? "HEAD" : "GET",
                                 .method_len = (x.flags & 4) ? 4 : 3,
                                 .path = "/",
                                 .path_len = 1,
                                 .authority = "a",
                                 .authority_len = 1,
                                 .content_length = -1};
        if (s)
            x.c->vt->encode_head(x.c, s, &h, true);
    }
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        pl_buf_append(&in, data + off, n);
        int rc = x.c->vt->feed(x.c, &in);
        struct pl_buf *out = x.c->vt->output(x.c);
        pl_buf_drain(out, out->len);
        if (rc < 0)
            break;
        if (server && x.pending) {
            struct pl_codec_stream *s = x.pending;
            x.pending = NULL;
            respond(&x, s);
            x.c->vt->feed(x.c, &in);
        } else if (!server && pl_h1_codec_idle(x.c) && (x.flags & 64)) {
            struct pl_codec_stream *s = x.c->vt->new_stream(x.c, &x);
            struct pl_http_head h = {.method = "POST",
                                     .method_len = 4,
                                     .path = "/p",
                                     .path_len = 2,
                                     .authority = "a",
                                     .authority_len = 1,
                                     .content_length = -1};
            if (s)
                x.c->vt->encode_head(x.c, s, &h, true);
        }
    }
    x.c->vt->feed_eof(x.c);
    x.c->vt->destroy(x.c);
    pl_buf_free(&in);
    return 0;
}
