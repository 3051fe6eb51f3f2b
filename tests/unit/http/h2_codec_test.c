/* HTTP/2 codec: a client codec and a server codec shuttle bytes in memory; malformed and abusive
 * input comes from a raw nghttp2 client that sends whatever it is told. */
#include <criterion/criterion.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/h2_codec.h"

#define MAXS 64

/* One stream as a test user sees it. */
struct ts {
    struct pl_codec_stream *s;
    struct pl_http_head *head; /* valid until the codec's next feed() once the stream ended */
    int status;
    int64_t content_length;
    char trailer0[64]; /* "name=value" of the first trailer */
    int heads, infos;
    bool head_end, data_end;
    struct pl_buf body;
    size_t held; /* received, not yet consumed() */
    struct pl_headers *trailers;
    int reset; /* 1 + reason, 0 if none */
    int watermark_above, watermark_below;
};

struct side {
    struct pl_codec *c;
    struct ts st[MAXS];
    int n;
    bool hold; /* do not consume received bytes */
    bool refuse;
    int goaways;
    uint32_t goaway_last;
    struct pl_buf in;
};

static struct ts *user_ts(void *ctx, void *user)
{
    (void)ctx;
    cr_assert(user);
    return user;
}

static void *cb_new_stream(void *ctx, struct pl_codec_stream *s)
{
    struct side *sd = ctx;
    if (sd->refuse || sd->n == MAXS)
        return NULL;
    struct ts *t = &sd->st[sd->n++];
    memset(t, 0, sizeof(*t));
    t->s = s;
    return t;
}

static bool stop_after_head;

static int cb_head(void *ctx, struct pl_codec_stream *s, void *user, struct pl_http_head *h,
                   bool end, bool info)
{
    struct ts *t = user_ts(ctx, user);
    cr_assert_eq(t->s, s);
    if (info) {
        t->infos++;
        return 0;
    }
    t->head = h;
    t->status = h->status;
    t->content_length = h->content_length;
    t->heads++;
    t->head_end = end;
    return stop_after_head;
}

static int cb_data(void *ctx, struct pl_codec_stream *s, void *user, struct pl_buf *d, bool end)
{
    struct side *sd = ctx;
    struct ts *t = user_ts(ctx, user);
    size_t n = d->len;
    pl_buf_move(&t->body, d, n);
    t->data_end = end;
    if (sd->hold)
        t->held += n;
    else
        sd->c->vt->consumed(sd->c, s, n);
    return 0;
}

static int cb_trailers(void *ctx, struct pl_codec_stream *s, void *user, struct pl_headers *tr)
{
    (void)s;
    struct ts *t = user_ts(ctx, user);
    t->trailers = tr;
    if (tr->n)
        snprintf(t->trailer0, sizeof(t->trailer0), "%.*s=%.*s", (int)tr->v[0].name_len,
                 tr->v[0].name, (int)tr->v[0].value_len, tr->v[0].value);
    t->data_end = true;
    return 0;
}

static void cb_reset(void *ctx, struct pl_codec_stream *s, void *user, enum pl_reset_reason why)
{
    (void)s;
    struct ts *t = user_ts(ctx, user);
    cr_assert_eq(t->reset, 0, "on_reset twice");
    t->reset = 1 + (int)why;
    t->s = NULL;
}

static void cb_goaway(void *ctx, uint32_t last)
{
    struct side *sd = ctx;
    sd->goaways++;
    sd->goaway_last = last;
}

static void cb_watermark(void *ctx, struct pl_codec_stream *s, void *user, bool above)
{
    (void)s;
    struct ts *t = user_ts(ctx, user);
    if (above)
        t->watermark_above++;
    else
        t->watermark_below++;
}

static const struct pl_codec_callbacks cbs = {
    .on_new_stream = cb_new_stream,
    .on_head = cb_head,
    .on_data = cb_data,
    .on_trailers = cb_trailers,
    .on_reset = cb_reset,
    .on_goaway = cb_goaway,
};

static struct side cli, srv;

static void pair(const struct pl_h2_settings *cs, const struct pl_h2_settings *ss)
{
    memset(&cli, 0, sizeof(cli));
    memset(&srv, 0, sizeof(srv));
    cli.c = pl_h2_codec_new(false, cs, &cbs, &cli);
    srv.c = pl_h2_codec_new(true, ss, &cbs, &srv);
    cr_assert(pl_codec_is_h2(cli.c));
    cr_assert_str_eq(cli.c->vt->name, "http2");
}

static void side_free(struct side *sd)
{
    if (sd->c)
        sd->c->vt->destroy(sd->c);
    sd->c = NULL;
    for (int i = 0; i < sd->n; i++)
        pl_buf_free(&sd->st[i].body);
    pl_buf_free(&sd->in);
}

static void unpair(void)
{
    side_free(&cli);
    side_free(&srv);
    pl_buf_pool_trim();
}

/* Moves a's output into b's input and feeds it; returns bytes moved, -1 on a feed error. */
static long step(struct side *a, struct side *b, int *err)
{
    struct pl_buf *out = a->c->vt->output(a->c);
    size_t n = out->len;
    pl_buf_move(&b->in, out, n);
    if (!b->in.len)
        return 0;
    int r = b->c->vt->feed(b->c, &b->in);
    if (r && err)
        *err = r;
    return (long)n;
}

/* Shuttles both ways until both are quiet; returns the first feed error (0 if none). */
static int pump(void)
{
    int err = 0;
    for (int i = 0; i < 100000; i++) {
        long a = step(&cli, &srv, &err);
        long b = step(&srv, &cli, &err);
        if ((a == 0 && b == 0) || err)
            return err;
    }
    cr_assert_fail("pump did not settle");
    return 0;
}

static struct pl_http_head req(const char *method, const char *path)
{
    struct pl_http_head h = {.method = method,
                             .method_len = (uint32_t)strlen(method),
                             .scheme = "https",
                             .scheme_len = 5,
                             .authority = "example.com",
                             .authority_len = 11,
                             .path = path,
                             .path_len = (uint32_t)strlen(path),
                             .content_length = -1};
    return h;
}

static struct ts *client_stream(void)
{
    struct ts *t = &cli.st[cli.n];
    memset(t, 0, sizeof(*t));
    t->s = cli.c->vt->new_stream(cli.c, t);
    if (!t->s)
        return NULL;
    cli.n++;
    return t;
}

static void body_eq(struct pl_buf *b, const char *s)
{
    char tmp[256] = {0};
    cr_assert_eq(b->len, strlen(s), "body length %zu", b->len);
    pl_buf_copyout(b, 0, tmp, b->len);
    cr_assert_str_eq(tmp, s);
}

static const char *hval(const struct pl_headers *h, const char *name)
{
    static char v[512];
    const struct pl_header *f = pl_headers_get(h, name, strlen(name));
    if (!f)
        return NULL;
    snprintf(v, sizeof(v), "%.*s", (int)f->value_len, f->value);
    return v;
}

Test(h2_codec, simple_request_response)
{
    pair(NULL, NULL);
    struct ts *c = client_stream();
    cr_assert(c);
    struct pl_http_head h = req("GET", "/x?y=1");
    struct pl_arena a = PL_ARENA_INIT;
    pl_headers_add_copy(&h.headers, &a, "X-Mixed", 7, "v1", 2);
    pl_headers_add_copy(&h.headers, &a, "connection", 10, "keep-alive", 10);
    pl_headers_add_copy(&h.headers, &a, "te", 2, "trailers", 8);
    pl_headers_add_ref(&h.headers, &a, "cookie", 6, "a=1", 3);
    pl_headers_add_ref(&h.headers, &a, "cookie", 6, "b=2", 3);
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cr_assert_eq(cli.c->vt->active_streams(cli.c), 1);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.n, 1);
    struct ts *s = &srv.st[0];
    cr_assert_eq(s->heads, 1);
    cr_assert(s->head_end);
    struct pl_http_head *rh = s->head;
    cr_assert_eq(rh->version, 20);
    cr_assert_eq(rh->method_len, 3);
    cr_assert(!memcmp(rh->method, "GET", 3));
    cr_assert(!memcmp(rh->path, "/x?y=1", 6));
    cr_assert(!memcmp(rh->authority, "example.com", 11));
    cr_assert(!memcmp(rh->scheme, "https", 5));
    cr_assert_str_eq(hval(&rh->headers, "x-mixed"), "v1");
    cr_assert_str_eq(hval(&rh->headers, "te"), "trailers");
    cr_assert_null(hval(&rh->headers, "connection"));
    cr_assert_str_eq(hval(&rh->headers, "cookie"), "a=1; b=2");
    cr_assert_eq(s->s->id, 1);

    struct pl_http_head resp = {.status = 200, .content_length = -1};
    pl_headers_add_copy(&resp.headers, &a, "content-length", 5 + 9, "5", 1);
    cr_assert_eq(srv.c->vt->encode_head(srv.c, s->s, &resp, false), 0);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, "hello", 5);
    cr_assert_eq(srv.c->vt->encode_data(srv.c, s->s, &b, true), 0);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c->status, 200);
    cr_assert_eq(c->content_length, 5);
    body_eq(&c->body, "hello");
    cr_assert(c->data_end);
    cr_assert_eq(c->reset, 0);
    cr_assert_eq(cli.c->vt->active_streams(cli.c), 0);
    cr_assert_eq(srv.c->vt->active_streams(srv.c), 0);
    cr_assert_null(pl_h2_codec_error(srv.c));
    pl_arena_free(&a);
    unpair();
}

static void fill(struct pl_buf *b, size_t off, size_t n)
{
    char chunk[4096];
    while (n) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        for (size_t i = 0; i < k; i++)
            chunk[i] = (char)((off + i) % 251);
        pl_buf_append(b, chunk, k);
        off += k;
        n -= k;
    }
}

static void check_pattern(struct pl_buf *b, size_t total)
{
    cr_assert_eq(b->len, total);
    char chunk[4096];
    for (size_t off = 0; off < total; off += sizeof(chunk)) {
        size_t k = pl_buf_copyout(b, off, chunk, sizeof(chunk));
        for (size_t i = 0; i < k; i++)
            if (chunk[i] != (char)((off + i) % 251))
                cr_assert_fail("byte %zu differs", off + i);
    }
}

/* Sends total bytes from the sender side to the receiver in 64 KiB chunks; the receiver holds
 * what it gets until the window is full, so the sender stalls, then consumes and it resumes. */
static void transfer(struct side *tx, struct ts *txs, struct side *rx, struct ts **rxs,
                     size_t total)
{
    int stalls = 0;
    rx->hold = true;
    for (size_t sent = 0; sent < total;) {
        struct pl_buf b = PL_BUF_INIT;
        size_t k = total - sent < 65536 ? total - sent : 65536;
        fill(&b, sent, k);
        sent += k;
        cr_assert_eq(tx->c->vt->encode_data(tx->c, txs->s, &b, sent == total), 0);
    }
    for (int round = 0; round < 100000; round++) {
        cr_assert_eq(pump(), 0);
        if (!*rxs)
            *rxs = &rx->st[0];
        struct ts *r = *rxs;
        if (r->data_end)
            break;
        /* the receive window (64 KiB) bounds what arrived without consumed() */
        cr_assert_gt(r->held, 0);
        cr_assert_leq(r->held, 65535);
        cr_assert_gt(pl_h2_stream_pending(txs->s), 0);
        stalls++;
        size_t before = r->held;
        cr_assert_eq(pump(), 0); /* nothing moves while the receiver holds */
        cr_assert_eq(r->held, before);
        rx->c->vt->consumed(rx->c, r->s, r->held);
        r->held = 0;
    }
    rx->hold = false;
    cr_assert((*rxs)->data_end);
    cr_assert_gt(stalls, 100, "the sender never waited for the window");
    check_pattern(&(*rxs)->body, total);
}

Test(h2_codec, large_bodies_flow_control)
{
    struct pl_h2_settings set = {.initial_stream_window_size = 65535,
                                 .initial_connection_window_size = 65535,
                                 .stream_buffer_high = 256 * 1024,
                                 .on_stream_watermark = cb_watermark};
    pair(&set, &set);
    struct ts *c = client_stream();
    struct pl_http_head h = req("POST", "/upload");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, false), 0);
    struct ts *s = NULL;
    transfer(&cli, c, &srv, &s, 10u << 20);
    cr_assert_gt(c->watermark_above, 0);
    cr_assert_gt(c->watermark_below, 0);
    cr_assert_eq(pl_h2_stream_pending(c->s), 0);

    struct pl_http_head resp = {.status = 200, .content_length = -1};
    cr_assert_eq(srv.c->vt->encode_head(srv.c, s->s, &resp, false), 0);
    cr_assert_eq(pump(), 0);
    struct ts *cc = c;
    transfer(&srv, s, &cli, &cc, 10u << 20);
    cr_assert_eq(cli.c->vt->active_streams(cli.c), 0);
    cr_assert_eq(srv.c->vt->active_streams(srv.c), 0);
    unpair();
}

Test(h2_codec, trailers_both_ways)
{
    pair(NULL, NULL);
    struct ts *c = client_stream();
    struct pl_http_head h = req("POST", "/grpc.Svc/M");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, false), 0);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, "abc", 3);
    cr_assert_eq(cli.c->vt->encode_data(cli.c, c->s, &b, false), 0);
    struct pl_arena a = PL_ARENA_INIT;
    struct pl_headers tr = {0};
    pl_headers_add_copy(&tr, &a, "x-checksum", 10, "42", 2);
    cr_assert_eq(cli.c->vt->encode_trailers(cli.c, c->s, &tr), 0);
    cr_assert_eq(pump(), 0);
    struct ts *s = &srv.st[0];
    body_eq(&s->body, "abc");
    cr_assert(s->trailers);
    cr_assert_str_eq(hval(s->trailers, "x-checksum"), "42");

    struct pl_http_head resp = {.status = 200, .content_length = -1};
    cr_assert_eq(srv.c->vt->encode_head(srv.c, s->s, &resp, false), 0);
    struct pl_headers tr2 = {0};
    pl_headers_add_copy(&tr2, &a, "Grpc-Status", 11, "0", 1);
    cr_assert_eq(srv.c->vt->encode_trailers(srv.c, s->s, &tr2), 0); /* no body at all */
    pl_arena_free(&a);                                              /* codec copied them */
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c->status, 200);
    cr_assert(c->trailers);
    cr_assert_str_eq(c->trailer0, "grpc-status=0");
    cr_assert_eq(c->body.len, 0);
    cr_assert_eq(pl_h2_codec_stats(cli.c)->trailers, 1);
    cr_assert_eq(cli.c->vt->active_streams(cli.c), 0);
    unpair();
}

/* What leaves is what a peer accepts: bad names and values are left out, values lose their
 * surrounding whitespace, names are lower-cased, connection-specific fields go. */
Test(h2_codec, outgoing_fields_filtered)
{
    pair(NULL, NULL);
    struct ts *c = client_stream();
    struct pl_http_head h = req("GET", "/");
    struct pl_arena a = PL_ARENA_INIT;
    pl_headers_add_copy(&h.headers, &a, "bad name", 8, "1", 1);
    pl_headers_add_copy(&h.headers, &a, "x-crlf", 6, "a\r\nx-evil: 1", 12);
    pl_headers_add_copy(&h.headers, &a, "x-nul", 5, "a\0b", 3);
    pl_headers_add_copy(&h.headers, &a, "x-del-long", 10, "0123456789\x7f", 11);
    pl_headers_add_copy(&h.headers, &a, "x-eight", 7, "abcdefg\x01", 8);
    pl_headers_add_copy(&h.headers, &a, "x-eight-ok", 10, "abcdefgh", 8);
    pl_headers_add_copy(&h.headers, &a, "x-tab", 5, "a\tb", 3);
    pl_headers_add_copy(&h.headers, &a, "x-ws", 4, " \t padded value \t", 17);
    pl_headers_add_copy(&h.headers, &a, "x-empty", 7, "   ", 3);
    pl_headers_add_copy(&h.headers, &a, "x-obs", 5, "caf\xc3\xa9 long enough", 17);
    pl_headers_add_copy(&h.headers, &a, "X-UPPER-Case", 12, "v", 1);
    pl_headers_add_copy(&h.headers, &a, "X-Request-Id", 12, "0123456789abcdef", 16);
    pl_headers_add_copy(&h.headers, &a, "Transfer-Encoding", 17, "chunked", 7);
    pl_headers_add_copy(&h.headers, &a, "upgrade", 7, "h2c", 3);
    pl_headers_add_copy(&h.headers, &a, "proxy-connection", 16, "x", 1);
    pl_headers_add_copy(&h.headers, &a, "TE", 2, "gzip", 4);
    pl_headers_add_copy(&h.headers, &a, "connection", 10, "close", 5);
    pl_headers_add_copy(&h.headers, &a, "keep-alive", 10, "timeout=5", 9);
    pl_headers_add_copy(&h.headers, &a, "host", 4, "example.com", 11);
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.n, 1);
    struct pl_http_head *rh = srv.st[0].head;
    cr_assert_not_null(rh, "the request was refused");
    cr_assert_null(hval(&rh->headers, "bad name"));
    cr_assert_null(hval(&rh->headers, "x-crlf"));
    cr_assert_null(hval(&rh->headers, "x-evil"));
    cr_assert_null(hval(&rh->headers, "x-nul"));
    cr_assert_null(hval(&rh->headers, "x-del-long"));
    cr_assert_null(hval(&rh->headers, "x-eight"));
    cr_assert_str_eq(hval(&rh->headers, "x-eight-ok"), "abcdefgh");
    cr_assert_str_eq(hval(&rh->headers, "x-tab"), "a\tb");
    cr_assert_str_eq(hval(&rh->headers, "x-request-id"), "0123456789abcdef");
    cr_assert_str_eq(hval(&rh->headers, "x-ws"), "padded value");
    cr_assert_str_eq(hval(&rh->headers, "x-empty"), "");
    cr_assert_str_eq(hval(&rh->headers, "x-obs"), "caf\xc3\xa9 long enough");
    cr_assert_str_eq(hval(&rh->headers, "x-upper-case"), "v");
    cr_assert_null(hval(&rh->headers, "transfer-encoding"));
    cr_assert_null(hval(&rh->headers, "upgrade"));
    cr_assert_null(hval(&rh->headers, "proxy-connection"));
    cr_assert_null(hval(&rh->headers, "te"));
    cr_assert_null(hval(&rh->headers, "connection"));
    cr_assert_null(hval(&rh->headers, "keep-alive"));
    cr_assert_null(hval(&rh->headers, "host")); /* a request carries :authority instead */
    pl_arena_free(&a);
    unpair();
}

Test(h2_codec, concurrency_limit)
{
    struct pl_h2_settings ss = {.max_concurrent_streams = 10};
    pair(NULL, &ss);
    cr_assert_eq(pump(), 0); /* SETTINGS exchange */
    cr_assert_eq(pl_h2_codec_capacity(cli.c), 10);
    for (int i = 0; i < 10; i++) {
        struct ts *c = client_stream();
        cr_assert(c, "stream %d", i);
        struct pl_http_head h = req("GET", "/");
        cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    }
    cr_assert_eq(pl_h2_codec_capacity(cli.c), 0);
    cr_assert_null(client_stream());
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.n, 10);
    cr_assert_eq(srv.c->vt->active_streams(srv.c), 10);
    struct pl_http_head resp = {.status = 204, .content_length = -1};
    cr_assert_eq(srv.c->vt->encode_head(srv.c, srv.st[3].s, &resp, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(cli.st[3].status, 204);
    cr_assert_eq(pl_h2_codec_capacity(cli.c), 1);
    cr_assert_eq(srv.c->vt->active_streams(srv.c), 9);
    unpair();
}

Test(h2_codec, client_capacity_before_settings_and_cap)
{
    struct pl_h2_settings cs = {.max_concurrent_streams = 3};
    pair(&cs, NULL);
    cr_assert_eq(pl_h2_codec_capacity(cli.c), 3); /* our cap below nghttp2's initial 100 */
    cr_assert(client_stream());
    cr_assert_eq(pl_h2_codec_capacity(cli.c), 2);
    /* a stream reset before its head is submitted gives its slot back */
    cli.c->vt->reset_stream(cli.c, cli.st[0].s, PL_RESET_LOCAL);
    cr_assert_eq(pl_h2_codec_capacity(cli.c), 3);
    unpair();
}

Test(h2_codec, reset_both_ways)
{
    pair(NULL, NULL);
    struct ts *c1 = client_stream();
    struct ts *c2 = client_stream();
    struct pl_http_head h = req("POST", "/");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c1->s, &h, false), 0);
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c2->s, &h, false), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.n, 2);
    /* client resets stream 1: the server's user hears of it, the client's does not */
    cli.c->vt->reset_stream(cli.c, c1->s, PL_RESET_LOCAL);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.st[0].reset, 1 + PL_RESET_REMOTE);
    cr_assert_eq(c1->reset, 0);
    /* server resets stream 3 */
    srv.c->vt->reset_stream(srv.c, srv.st[1].s, PL_RESET_OVERFLOW);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c2->reset, 1 + PL_RESET_REMOTE);
    cr_assert_eq(srv.st[1].reset, 0);
    cr_assert_eq(cli.c->vt->active_streams(cli.c), 0);
    cr_assert_eq(srv.c->vt->active_streams(srv.c), 0);
    cr_assert_eq(pl_h2_codec_stats(srv.c)->rx_reset, 1);
    cr_assert_eq(pl_h2_codec_stats(srv.c)->tx_reset, 1);
    cr_assert_null(pl_h2_codec_error(srv.c));
    unpair();
}

Test(h2_codec, destroy_resets_open_streams)
{
    pair(NULL, NULL);
    struct ts *c = client_stream();
    struct pl_http_head h = req("GET", "/");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    side_free(&cli);
    cr_assert_eq(c->reset, 1 + PL_RESET_CONNECTION_FAIL);
    srv.c->vt->feed_eof(srv.c); /* the request was complete: it may still be answered */
    cr_assert_eq(srv.st[0].reset, 0);
    side_free(&srv);
    cr_assert_eq(srv.st[0].reset, 1 + PL_RESET_CONNECTION_FAIL);
    pl_buf_pool_trim();
}

Test(h2_codec, goaway_graceful)
{
    pair(NULL, NULL);
    struct ts *c = client_stream();
    struct pl_http_head h = req("GET", "/");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    srv.c->vt->goaway(srv.c);
    /* first only the notice */
    step(&srv, &cli, NULL);
    cr_assert_eq(cli.goaways, 1);
    cr_assert_eq(cli.goaway_last, 0x7fffffffu);
    cr_assert_eq(pl_h2_codec_capacity(cli.c), 0);
    cr_assert_null(client_stream());
    /* the PING ack brings the real one, naming the stream in flight */
    cr_assert_eq(pump(), 0);
    cr_assert_eq(cli.goaways, 2);
    cr_assert_eq(cli.goaway_last, 1);
    cr_assert(!pl_h2_codec_done(srv.c));
    struct pl_http_head resp = {.status = 200, .content_length = -1};
    cr_assert_eq(srv.c->vt->encode_head(srv.c, srv.st[0].s, &resp, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c->status, 200);
    cr_assert_eq(c->reset, 0);
    cr_assert(pl_h2_codec_done(srv.c));
    cr_assert_eq(pl_h2_codec_stats(srv.c)->goaway_sent, 2);
    cr_assert_null(pl_h2_codec_error(srv.c));
    unpair();
}

Test(h2_codec, informational_heads)
{
    pair(NULL, NULL);
    struct ts *c = client_stream();
    struct pl_http_head h = req("POST", "/");
    struct pl_arena a = PL_ARENA_INIT;
    pl_headers_add_copy(&h.headers, &a, "expect", 6, "100-continue", 12);
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, false), 0);
    cr_assert_eq(pump(), 0);
    struct ts *s = &srv.st[0];
    struct pl_http_head cont = {.status = 100, .content_length = -1};
    cr_assert_eq(srv.c->vt->encode_head(srv.c, s->s, &cont, false), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c->infos, 1);
    cr_assert_eq(c->heads, 0);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, "body", 4);
    cr_assert_eq(cli.c->vt->encode_data(cli.c, c->s, &b, true), 0);
    cr_assert_eq(pump(), 0);
    body_eq(&s->body, "body");
    struct pl_http_head resp = {.status = 201, .content_length = -1};
    cr_assert_eq(srv.c->vt->encode_head(srv.c, s->s, &resp, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c->heads, 1);
    cr_assert_eq(c->status, 201);
    cr_assert(c->head_end);
    pl_arena_free(&a);
    unpair();
}

Test(h2_codec, refused_stream)
{
    pair(NULL, NULL);
    srv.refuse = true;
    struct ts *c = client_stream();
    struct pl_http_head h = req("GET", "/");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c->reset, 1 + PL_RESET_REMOTE);
    cr_assert_eq(pl_h2_codec_stats(srv.c)->streams_refused, 1);
    unpair();
}

/* ---- a raw nghttp2 client that sends what it is told ---- */

struct raw {
    nghttp2_session *ng;
    uint32_t rst_code[64];
    int rsts;
    int goaway_code;
    int statuses[64];
    int nstatus;
    const char *body;
    size_t body_len;
};

static int raw_on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    (void)ng, (void)id;
    struct raw *r = ud;
    if (r->rsts < 64)
        r->rst_code[r->rsts++] = code;
    return 0;
}

static int raw_on_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    (void)ng;
    struct raw *r = ud;
    if (f->hd.type == NGHTTP2_GOAWAY)
        r->goaway_code = (int)f->goaway.error_code;
    return 0;
}

static int raw_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                         const uint8_t *v, size_t vl, uint8_t fl, void *ud)
{
    (void)ng, (void)f, (void)fl;
    struct raw *r = ud;
    if (nl == 7 && !memcmp(n, ":status", 7) && r->nstatus < 64)
        r->statuses[r->nstatus++] = atoi((const char *)v) + 0 * (int)vl;
    return 0;
}

static ssize_t raw_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    (void)ng, (void)id, (void)src;
    struct raw *r = ud;
    size_t n = r->body_len < len ? r->body_len : len;
    memcpy(buf, r->body, n);
    r->body += n;
    r->body_len -= n;
    if (!r->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void raw_new(struct raw *r)
{
    memset(r, 0, sizeof(*r));
    r->goaway_code = -1;
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, raw_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, raw_on_frame);
    nghttp2_session_callbacks_set_on_header_callback(cb, raw_on_header);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1u << 20, 1u << 20);
    nghttp2_session_client_new2(&r->ng, cb, r, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(r->ng, NGHTTP2_FLAG_NONE, NULL, 0);
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,                              \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

static int32_t raw_req(struct raw *r, const nghttp2_nv *nv, size_t n, const char *body)
{
    nghttp2_data_provider dp = {.read_callback = raw_read};
    r->body = body;
    r->body_len = body ? strlen(body) : 0;
    return nghttp2_submit_request(r->ng, NULL, nv, n, body ? &dp : NULL, NULL);
}

/* Moves what the raw client has to send into the server's input (not fed yet). */
static size_t raw_send(struct raw *r, struct side *s)
{
    const uint8_t *p;
    ssize_t n;
    size_t moved = 0;
    while ((n = nghttp2_session_mem_send(r->ng, &p)) > 0) {
        pl_buf_append(&s->in, p, (size_t)n);
        moved += (size_t)n;
    }
    return moved;
}

/* raw -> server, then server -> raw; returns the server's feed result. */
static int raw_pump(struct raw *r, struct side *s)
{
    int err = 0;
    for (int i = 0; i < 1000; i++) {
        size_t moved = raw_send(r, s);
        if (s->in.len && !err)
            err = s->c->vt->feed(s->c, &s->in);
        struct pl_buf *out = s->c->vt->output(s->c);
        moved += out->len;
        while (out->len) {
            struct iovec iov[8];
            size_t k = pl_buf_peek_iov(out, iov, 1);
            nghttp2_session_mem_recv(r->ng, iov[0].iov_base, iov[0].iov_len);
            pl_buf_drain(out, iov[0].iov_len);
            (void)k;
        }
        if (!moved || err)
            break;
    }
    return err;
}

static void raw_server(struct raw *r, const struct pl_h2_settings *ss)
{
    memset(&srv, 0, sizeof(srv));
    srv.c = pl_h2_codec_new(true, ss, &cbs, &srv);
    raw_new(r);
}

static void raw_free(struct raw *r)
{
    nghttp2_session_del(r->ng);
    side_free(&srv);
    pl_buf_pool_trim();
}

static const nghttp2_nv base_req[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                      NV(":authority", "a"), NV(":path", "/")};

Test(h2_codec, bad_preface)
{
    memset(&srv, 0, sizeof(srv));
    srv.c = pl_h2_codec_new(true, NULL, &cbs, &srv);
    pl_buf_append(&srv.in, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
    cr_assert_eq(srv.c->vt->feed(srv.c, &srv.in), PL_EINVAL);
    cr_assert_str_eq(pl_h2_codec_error(srv.c), "bad_preface");
    cr_assert_eq(srv.c->vt->feed(srv.c, &srv.in), PL_EINVAL); /* sticky */
    side_free(&srv);
    pl_buf_pool_trim();
}

Test(h2_codec, uppercase_header_is_connection_error_by_default)
{
    struct raw r;
    raw_server(&r, NULL);
    nghttp2_nv nv[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "a"),
                       NV(":path", "/"), NV("X-Upper", "1")};
    raw_req(&r, nv, 5, NULL);
    cr_assert_eq(raw_pump(&r, &srv), PL_EINVAL);
    cr_assert_str_eq(pl_h2_codec_error(srv.c), "invalid_http_messaging");
    cr_assert_eq(r.goaway_code, NGHTTP2_PROTOCOL_ERROR);
    cr_assert_eq(srv.n, 0);
    cr_assert_eq(pl_h2_codec_stats(srv.c)->rx_messaging_error, 1);
    raw_free(&r);
}

Test(h2_codec, malformed_heads_are_stream_errors_when_configured)
{
    struct raw r;
    struct pl_h2_settings ss = {.stream_error_on_invalid_http_messaging = true};
    raw_server(&r, &ss);
    nghttp2_nv upper[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "a"),
                          NV(":path", "/"), NV("X-Upper", "1")};
    nghttp2_nv bad_pseudo[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "a"),
                               NV(":path", "/"), NV(":bogus", "1")};
    nghttp2_nv no_path[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "a")};
    nghttp2_nv conn[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "a"),
                         NV(":path", "/"), NV("connection", "close")};
    nghttp2_nv bad_value[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":authority", "a"),
                              NV(":path", "/"), NV("x", "a\nb")};
    raw_req(&r, upper, 5, NULL);
    raw_req(&r, bad_pseudo, 5, NULL);
    raw_req(&r, no_path, 3, NULL);
    raw_req(&r, conn, 5, NULL);
    raw_req(&r, bad_value, 5, NULL);
    raw_req(&r, base_req, 4, NULL); /* a good one still works */
    cr_assert_eq(raw_pump(&r, &srv), 0);
    cr_assert_eq(srv.n, 1);
    cr_assert_eq(r.rsts, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(r.rst_code[i], NGHTTP2_PROTOCOL_ERROR, "stream %d: %u", i, r.rst_code[i]);
    cr_assert_eq(pl_h2_codec_stats(srv.c)->rx_messaging_error, 5);
    cr_assert_null(pl_h2_codec_error(srv.c));
    raw_free(&r);
}

Test(h2_codec, content_length_mismatch_resets_stream)
{
    struct raw r;
    raw_server(&r, NULL);
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "https"), NV(":authority", "a"),
                       NV(":path", "/"), NV("content-length", "10")};
    raw_req(&r, nv, 5, "short");
    cr_assert_eq(raw_pump(&r, &srv), 0);
    cr_assert_eq(srv.n, 1);
    cr_assert_eq(srv.st[0].content_length, 10);
    cr_assert_eq(srv.st[0].reset, 1 + PL_RESET_PROTOCOL_ERROR);
    cr_assert_eq(r.rst_code[0], NGHTTP2_PROTOCOL_ERROR);
    raw_free(&r);
}

Test(h2_codec, rapid_reset_trips)
{
    struct raw r;
    raw_server(&r, NULL);
    int err = 0;
    int i;
    for (i = 0; i < 1000 && !err; i++) {
        int32_t id = raw_req(&r, base_req, 4, NULL);
        raw_send(&r, &srv); /* HEADERS out first: a RST now would just cancel them */
        nghttp2_submit_rst_stream(r.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        if (i % 10 == 9)
            err = raw_pump(&r, &srv);
    }
    cr_assert_eq(err, PL_EINVAL);
    cr_assert_str_eq(pl_h2_codec_error(srv.c), "too_many_premature_resets");
    cr_assert_eq(r.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    cr_assert_eq(pl_h2_codec_stats(srv.c)->too_many_premature_resets, 1);
    cr_assert_leq(i, 260, "tripped only after %d streams", i);
    raw_free(&r);
}

Test(h2_codec, answered_streams_are_not_premature)
{
    pair(NULL, NULL);
    for (int round = 0; round < 12; round++) {
        cli.n = srv.n = 0;
        for (int i = 0; i < 50; i++) {
            struct ts *c = client_stream();
            struct pl_http_head h = req("GET", "/");
            cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
        }
        cr_assert_eq(pump(), 0);
        cr_assert_eq(srv.n, 50);
        struct pl_http_head resp = {.status = 200, .content_length = -1};
        for (int i = 0; i < 50; i++)
            cr_assert_eq(srv.c->vt->encode_head(srv.c, srv.st[i].s, &resp, false), 0);
        cr_assert_eq(pump(), 0);
        /* the client gives up on every response after its head */
        for (int i = 0; i < 50; i++)
            cli.c->vt->reset_stream(cli.c, cli.st[i].s, PL_RESET_LOCAL);
        cr_assert_eq(pump(), 0);
    }
    cr_assert_null(pl_h2_codec_error(srv.c));
    unpair();
}

Test(h2_codec, request_head_too_large_gets_431)
{
    struct pl_h2_settings ss = {.max_header_list_bytes = 4096, .max_headers_count = 20};
    pair(NULL, &ss);
    struct pl_arena a = PL_ARENA_INIT;
    char big[5000];
    memset(big, 'v', sizeof(big));
    struct ts *c1 = client_stream();
    struct pl_http_head h1 = req("GET", "/");
    pl_headers_add_ref(&h1.headers, &a, "x-big", 5, big, sizeof(big));
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c1->s, &h1, true), 0);
    struct ts *c2 = client_stream();
    struct pl_http_head h2 = req("POST", "/");
    char names[30][8];
    for (int i = 0; i < 30; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%d", i);
        pl_headers_add_ref(&h2.headers, &a, names[i], strlen(names[i]), "1", 1);
    }
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c2->s, &h2, false), 0);
    struct ts *c3 = client_stream();
    struct pl_http_head h3 = req("GET", "/ok");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c3->s, &h3, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.n, 1); /* only the third reached the server's user */
    cr_assert_eq(c1->status, 431);
    cr_assert(c1->head_end);
    cr_assert_eq(c2->status, 431);
    cr_assert_eq(c2->reset, 1 + PL_RESET_REMOTE); /* RST_STREAM(NO_ERROR) ends the upload */
    cr_assert_eq(pl_h2_codec_stats(srv.c)->header_overflow, 2);
    cr_assert_null(pl_h2_codec_error(srv.c));
    cr_assert_eq(srv.c->vt->active_streams(srv.c), 1);
    pl_arena_free(&a);
    unpair();
}

Test(h2_codec, response_head_too_large_resets_with_overflow)
{
    struct pl_h2_settings cs = {.max_header_list_bytes = 1024};
    pair(&cs, NULL);
    struct ts *c = client_stream();
    struct pl_http_head h = req("GET", "/");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    struct pl_arena a = PL_ARENA_INIT;
    char big[2000];
    memset(big, 'v', sizeof(big));
    struct pl_http_head resp = {.status = 200, .content_length = -1};
    pl_headers_add_ref(&resp.headers, &a, "x-big", 5, big, sizeof(big));
    cr_assert_eq(srv.c->vt->encode_head(srv.c, srv.st[0].s, &resp, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c->heads, 0);
    cr_assert_eq(c->reset, 1 + PL_RESET_OVERFLOW);
    cr_assert_eq(cli.c->vt->active_streams(cli.c), 0);
    pl_arena_free(&a);
    unpair();
}

Test(h2_codec, empty_data_flood)
{
    struct raw r;
    raw_server(&r, NULL);
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "https"), NV(":authority", "a"),
                       NV(":path", "/")};
    int32_t id = nghttp2_submit_headers(r.ng, NGHTTP2_FLAG_NONE, -1, NULL, nv, 4, NULL);
    cr_assert_gt(id, 0);
    cr_assert_eq(raw_pump(&r, &srv), 0);
    /* hand-made empty DATA frames */
    uint8_t frame[9] = {0, 0, 0, NGHTTP2_DATA, 0, 0, 0, 0, (uint8_t)id};
    for (int i = 0; i < 3; i++)
        pl_buf_append(&srv.in, frame, sizeof(frame));
    cr_assert_eq(srv.c->vt->feed(srv.c, &srv.in), PL_EINVAL);
    cr_assert_str_eq(pl_h2_codec_error(srv.c), "inbound_empty_frames_flood");
    raw_free(&r);
}

Test(h2_codec, pause_stops_delivery)
{
    pair(NULL, NULL);
    cr_assert_eq(pump(), 0);
    for (int i = 0; i < 3; i++) {
        struct ts *c = client_stream();
        struct pl_http_head h = req("GET", "/");
        cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    }
    stop_after_head = true;
    step(&cli, &srv, NULL); /* all three requests in one feed: one head per feed */
    cr_assert_eq(srv.n, 1);
    cr_assert_gt(srv.in.len, 0);
    cr_assert_eq(srv.c->vt->feed(srv.c, &srv.in), 0);
    cr_assert_eq(srv.n, 2);
    cr_assert_eq(srv.c->vt->feed(srv.c, &srv.in), 0);
    cr_assert_eq(srv.n, 3);
    stop_after_head = false;
    unpair();
}

Test(h2_codec, window_returned_for_unconsumed_bytes)
{
    struct pl_h2_settings set = {.initial_stream_window_size = 65535,
                                 .initial_connection_window_size = 65535};
    pair(&set, &set);
    srv.hold = true;
    struct ts *a = client_stream();
    struct pl_http_head h = req("POST", "/a");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, a->s, &h, false), 0);
    struct pl_buf b = PL_BUF_INIT;
    fill(&b, 0, 60000);
    cr_assert_eq(cli.c->vt->encode_data(cli.c, a->s, &b, false), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.st[0].held, 60000);
    /* the server's user drops the stream without consuming: the codec gives the window back */
    srv.c->vt->reset_stream(srv.c, srv.st[0].s, PL_RESET_LOCAL);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(a->reset, 1 + PL_RESET_REMOTE);
    srv.hold = false;
    struct ts *c = client_stream();
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, false), 0);
    fill(&b, 0, 60000);
    cr_assert_eq(cli.c->vt->encode_data(cli.c, c->s, &b, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert(srv.st[1].data_end);
    check_pattern(&srv.st[1].body, 60000);
    unpair();
}

Test(h2_codec, goaway_twice_is_immediate_and_101_is_refused)
{
    pair(NULL, NULL);
    struct ts *c = client_stream();
    struct pl_http_head h = req("GET", "/");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    struct pl_http_head sw = {.status = 101, .content_length = -1};
    cr_assert_eq(srv.c->vt->encode_head(srv.c, srv.st[0].s, &sw, false), PL_EINVAL);
    srv.c->vt->goaway(srv.c);
    srv.c->vt->goaway(srv.c); /* the drain timer fired before the PING came back */
    step(&srv, &cli, NULL);
    cr_assert_eq(cli.goaways, 2);
    cr_assert_eq(cli.goaway_last, 1);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(cli.goaways, 2);
    unpair();
}

Test(h2_codec, client_reset_before_headers_left)
{
    pair(NULL, NULL);
    struct ts *c = client_stream();
    struct pl_http_head h = req("GET", "/");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cli.c->vt->reset_stream(cli.c, c->s, PL_RESET_LOCAL); /* HEADERS still queued */
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.n, 0);
    cr_assert_eq(cli.c->vt->active_streams(cli.c), 0);
    cr_assert_eq(c->reset, 0);
    struct ts *d = client_stream();
    cr_assert_eq(cli.c->vt->encode_head(cli.c, d->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.n, 1);
    unpair();
}

Test(h2_codec, client_streams_refused_by_goaway)
{
    pair(NULL, NULL);
    cr_assert_eq(pump(), 0);
    struct ts *a = client_stream();
    struct pl_http_head h = req("GET", "/");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, a->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    srv.c->vt->goaway(srv.c);
    srv.c->vt->goaway(srv.c); /* final GOAWAY: last stream 1 */
    struct pl_buf *out = srv.c->vt->output(srv.c);
    struct pl_buf wire = PL_BUF_INIT; /* sent, not yet arrived */
    pl_buf_move(&wire, out, out->len);
    struct ts *b = client_stream(); /* the client does not know yet */
    cr_assert_eq(cli.c->vt->encode_head(cli.c, b->s, &h, true), 0);
    step(&cli, &srv, NULL);
    pl_buf_move(&cli.in, &wire, wire.len);
    cr_assert_eq(cli.c->vt->feed(cli.c, &cli.in), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(srv.n, 1); /* stream 3 came after the GOAWAY: ignored */
    cr_assert_eq(b->reset, 1 + PL_RESET_REMOTE);
    cr_assert_eq(a->reset, 0);
    unpair();
}

/* Shuttles between two sides until both are quiet (pump() for a second pair). */
static int pump_pair(struct side *a, struct side *b)
{
    int err = 0;
    for (int i = 0; i < 100000; i++) {
        long x = step(a, b, &err);
        long y = step(b, a, &err);
        if ((x == 0 && y == 0) || err)
            return err;
    }
    cr_assert_fail("pump did not settle");
    return 0;
}

/* Server sessions of a thread share nghttp2's frame buffer (h2_mem.c): a DATA frame one session
 * put off (its output above the bound) leaves intact after another session wrote frames through
 * that buffer meanwhile, and both exchanges complete. */
Test(h2_codec, server_sessions_interleave_on_the_shared_frame_buffer)
{
    struct pl_h2_settings big = {.initial_stream_window_size = 1u << 24,
                                 .initial_connection_window_size = 1u << 24,
                                 .stream_buffer_high = 4u << 20};
    pair(&big, &big);
    static struct side cli2, srv2;
    memset(&cli2, 0, sizeof(cli2));
    memset(&srv2, 0, sizeof(srv2));
    cli2.c = pl_h2_codec_new(false, NULL, &cbs, &cli2);
    srv2.c = pl_h2_codec_new(true, NULL, &cbs, &srv2);

    struct ts *c = client_stream();
    struct pl_http_head h = req("GET", "/big");
    cr_assert_eq(cli.c->vt->encode_head(cli.c, c->s, &h, true), 0);
    cr_assert_eq(pump(), 0);
    struct ts *s = &srv.st[0];
    struct pl_http_head resp = {.status = 200, .content_length = -1};
    cr_assert_eq(srv.c->vt->encode_head(srv.c, s->s, &resp, false), 0);
    struct pl_buf b = PL_BUF_INIT;
    fill(&b, 0, 1u << 20);
    cr_assert_eq(srv.c->vt->encode_data(srv.c, s->s, &b, true), 0);
    struct pl_buf *o = srv.c->vt->output(srv.c);
    cr_assert_lt(o->len, 1u << 20, "the first output should stop at the codec's bound");
    pl_buf_move(&cli.in, o, o->len);

    struct ts *t2 = &cli2.st[cli2.n++];
    t2->s = cli2.c->vt->new_stream(cli2.c, t2);
    struct pl_http_head h2 = req("POST", "/other-session/with/a/longer/path");
    struct pl_arena a = PL_ARENA_INIT;
    pl_headers_add_copy(&h2.headers, &a, "x-filler", 8, "0123456789abcdef0123456789abcdef", 32);
    cr_assert_eq(cli2.c->vt->encode_head(cli2.c, t2->s, &h2, true), 0);
    cr_assert_eq(pump_pair(&cli2, &srv2), 0);
    cr_assert_eq(srv2.n, 1);
    struct pl_http_head resp2 = {.status = 201, .content_length = -1};
    pl_headers_add_copy(&resp2.headers, &a, "x-other", 7, "fedcba9876543210", 16);
    cr_assert_eq(srv2.c->vt->encode_head(srv2.c, srv2.st[0].s, &resp2, false), 0);
    struct pl_buf b2 = PL_BUF_INIT;
    pl_buf_append(&b2, "second", 6);
    cr_assert_eq(srv2.c->vt->encode_data(srv2.c, srv2.st[0].s, &b2, true), 0);
    cr_assert_eq(pump_pair(&cli2, &srv2), 0);
    cr_assert_eq(t2->status, 201);
    body_eq(&t2->body, "second");

    cr_assert_eq(cli.c->vt->feed(cli.c, &cli.in), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(c->status, 200);
    cr_assert(c->data_end);
    check_pattern(&c->body, 1u << 20);
    cr_assert_null(pl_h2_codec_error(cli.c));
    cr_assert_null(pl_h2_codec_error(srv.c));
    pl_arena_free(&a);
    side_free(&cli2);
    side_free(&srv2);
    unpair();
}
