/* libFuzzer target for the HTTP/2 codec. Byte 0 picks the mode and settings: bit 0 client
 * (the input is what a server sends back to one GET), else server (the input follows the client
 * preface); bit 1 small windows and limits; bit 2 stream errors for malformed messages; bits 3-4
 * how the user answers a request (not at all, a head, a head and a body, a reset). Byte 1 seeds
 * the split points: the rest is fed in pieces, writing output() away between them.
 *
 * Invariants: feed() returns 0 or PL_EINVAL and stays failed; heads carry what RFC 9113 requires
 * (a method, and a scheme and path unless CONNECT; a 3-digit status); field names are non-empty,
 * lower-case and not pseudo-headers; no event reaches a stream after on_reset; output() stays
 * bounded; destroy() resets each open stream once (ASan catches the rest). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/h2_codec.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SLOTS 32

struct slot {
    bool used, reset;
    struct pl_codec_stream *s;
};

struct fz {
    struct pl_codec *c;
    bool server;
    int answer; /* 0 none, 1 head, 2 head + body, 3 reset */
    struct slot slot[SLOTS];
};

static void check_fields(const struct pl_headers *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        const struct pl_header *f = &h->v[i];
        CHECK(f->name_len > 0 && f->name[0] != ':');
        for (uint32_t k = 0; k < f->name_len; k++)
            CHECK(!(f->name[k] >= 'A' && f->name[k] <= 'Z'));
        CHECK(f->value || f->value_len == 0);
    }
}

static struct slot *live(struct fz *z, void *user)
{
    struct slot *sl = user;
    CHECK(sl >= z->slot && sl < z->slot + SLOTS);
    CHECK(sl->used && !sl->reset);
    return sl;
}

static void *on_new_stream(void *ctx, struct pl_codec_stream *s)
{
    struct fz *z = ctx;
    CHECK(z->server);
    for (int i = 0; i < SLOTS; i++) {
        if (!z->slot[i].used) {
            z->slot[i] = (struct slot){.used = true, .s = s};
            return &z->slot[i];
        }
    }
    return NULL; /* refused: exercises RST_STREAM(REFUSED_STREAM) */
}

static void answer(struct fz *z, struct slot *sl)
{
    if (z->answer == 3) {
        z->c->vt->reset_stream(z->c, sl->s, PL_RESET_LOCAL);
        sl->reset = true;
        return;
    }
    struct pl_http_head resp = {.status = 200, .content_length = -1};
    bool body = z->answer == 2;
    z->c->vt->encode_head(z->c, sl->s, &resp, !body);
    if (body) {
        struct pl_buf b = PL_BUF_INIT;
        pl_buf_append(&b, "0123456789abcdef", 16);
        z->c->vt->encode_data(z->c, sl->s, &b, true);
        pl_buf_free(&b);
    }
}

static int on_head(void *ctx, struct pl_codec_stream *s, void *user, struct pl_http_head *h,
                   bool end, bool info)
{
    struct fz *z = ctx;
    struct slot *sl = live(z, user);
    CHECK(sl->s == s);
    CHECK(h->version == 20 && h->content_length >= -1);
    check_fields(&h->headers);
    if (z->server) {
        CHECK(!info && h->method && h->method_len > 0);
        bool connect = h->method_len == 7 && !memcmp(h->method, "CONNECT", 7) && !h->protocol;
        if (!connect)
            CHECK(h->scheme && h->path && h->path_len > 0);
        if (end && z->answer)
            answer(z, sl);
    } else {
        CHECK(h->status >= 100 && h->status <= 999);
        CHECK(info == (h->status < 200));
    }
    return 0;
}

static int on_data(void *ctx, struct pl_codec_stream *s, void *user, struct pl_buf *d, bool end)
{
    struct fz *z = ctx;
    struct slot *sl = live(z, user);
    size_t n = d->len;
    pl_buf_drain(d, n);
    z->c->vt->consumed(z->c, s, n);
    if (end && z->server && z->answer)
        answer(z, sl);
    return 0;
}

static int on_trailers(void *ctx, struct pl_codec_stream *s, void *user, struct pl_headers *t)
{
    struct fz *z = ctx;
    (void)s;
    live(z, user);
    check_fields(t);
    return 0;
}

static void on_reset(void *ctx, struct pl_codec_stream *s, void *user, enum pl_reset_reason why)
{
    struct fz *z = ctx;
    struct slot *sl = live(z, user);
    CHECK(sl->s == s);
    CHECK(why >= PL_RESET_LOCAL && why <= PL_RESET_OVERFLOW);
    sl->reset = true;
}

static void on_goaway(void *ctx, uint32_t last)
{
    (void)ctx;
    CHECK(last <= 0x7fffffffu);
}

static const struct pl_codec_callbacks cbs = {
    .on_new_stream = on_new_stream,
    .on_head = on_head,
    .on_data = on_data,
    .on_trailers = on_trailers,
    .on_reset = on_reset,
    .on_goaway = on_goaway,
};

static void drain_output(struct fz *z)
{
    struct pl_buf *out = z->c->vt->output(z->c);
    CHECK(out->len <= 512 * 1024);
    pl_buf_drain(out, out->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    uint32_t seed = data[1] * 2654435761u + 1;
    data += 2;
    size -= 2;

    static struct fz z;
    memset(&z, 0, sizeof(z));
    z.server = !(mode & 1);
    z.answer = (mode >> 3) & 3;
    struct pl_h2_settings set = {.stream_error_on_invalid_http_messaging = mode & 4};
    if (mode & 2) {
        set.initial_stream_window_size = 65535;
        set.initial_connection_window_size = 65535;
        set.max_concurrent_streams = 4;
        set.max_header_list_bytes = 256;
        set.max_headers_count = 4;
        set.premature_reset_total_stream_count = 8;
    }
    z.c = pl_h2_codec_new(z.server, &set, &cbs, &z);
    struct pl_buf in = PL_BUF_INIT;
    if (z.server) {
        pl_buf_append(&in, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    } else {
        z.slot[0] = (struct slot){.used = true};
        z.slot[0].s = z.c->vt->new_stream(z.c, &z.slot[0]);
        CHECK(z.slot[0].s);
        struct pl_http_head req = {.method = "GET",
                                   .method_len = 3,
                                   .scheme = "https",
                                   .scheme_len = 5,
                                   .authority = "a",
                                   .authority_len = 1,
                                   .path = "/",
                                   .path_len = 1,
                                   .content_length = -1};
        CHECK(z.c->vt->encode_head(z.c, z.slot[0].s, &req, true) == 0);
    }
    drain_output(&z);

    int failed = 0;
    size_t off = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 512;
        if (n > size - off)
            n = size - off;
        pl_buf_append(&in, data + off, n);
        off += n;
        int r = z.c->vt->feed(z.c, &in);
        CHECK(r == 0 || r == PL_EINVAL);
        if (failed)
            CHECK(r == PL_EINVAL);
        if (r)
            failed = 1;
        CHECK(z.c->vt->active_streams(z.c) <= 0x7fffffffu);
        drain_output(&z);
    }
    if (!z.server)
        (void)pl_h2_codec_capacity(z.c);
    (void)pl_h2_codec_done(z.c);
    z.c->vt->feed_eof(z.c);
    z.c->vt->destroy(z.c);
    pl_buf_free(&in);
    pl_buf_pool_trim();
    return 0;
}
