#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1_codec.h"

/* What the callbacks saw, as text ("HEAD GET /x host=a.b end=0; DATA 5 end=1; ..."). */
struct rec {
    char log[8192];
    char body[1 << 16];
    size_t body_len;
    int streams;
    struct pl_codec_stream *last;
    struct pl_http_head *head;
    int stop_after_head;
    bool refuse;
    int resets;
    int goaways;
    struct pl_codec *codec; /* set when the test wants callbacks to respond inline */
    bool respond_inline;
};

static void logf_(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct rec *r, const char *fmt, ...)
{
    size_t n = strlen(r->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->log + n, sizeof(r->log) - n, fmt, ap);
    va_end(ap);
}

static void *on_new_stream(void *ctx, struct pl_codec_stream *s)
{
    struct rec *r = ctx;
    if (r->refuse)
        return NULL;
    r->streams++;
    r->last = s;
    return r;
}

static int on_head(void *ctx, struct pl_codec_stream *s, void *user, struct pl_http_head *h,
                   bool end, bool info)
{
    struct rec *r = ctx;
    cr_assert_eq(user, r);
    r->last = s;
    r->head = h;
    if (h->method)
        logf_(r, "REQ %.*s %.*s %.*s://%.*s v%d cl=%lld end=%d;", (int)h->method_len, h->method,
              (int)h->path_len, h->path ? h->path : "", (int)h->scheme_len, h->scheme,
              (int)h->authority_len, h->authority ? h->authority : "", h->version,
              (long long)h->content_length, end);
    else
        logf_(r, "RESP %d info=%d cl=%lld end=%d;", h->status, info, (long long)h->content_length,
              end);
    for (uint32_t i = 0; i < h->headers.n; i++)
        logf_(r, " %.*s=%.*s;", (int)h->headers.v[i].name_len, h->headers.v[i].name,
              (int)h->headers.v[i].value_len, h->headers.v[i].value);
    if (r->respond_inline && end) {
        struct pl_http_head resp = {.status = 200, .content_length = -1};
        r->codec->vt->encode_head(r->codec, s, &resp, true);
    }
    return r->stop_after_head ? 1 : 0;
}

static int on_data(void *ctx, struct pl_codec_stream *s, void *user, struct pl_buf *d, bool end)
{
    (void)s, (void)user;
    struct rec *r = ctx;
    size_t n = d->len;
    pl_buf_copyout(d, 0, r->body + r->body_len, n);
    r->body_len += n;
    pl_buf_drain(d, n);
    logf_(r, " DATA %zu end=%d;", n, end);
    return 0;
}

static int on_trailers(void *ctx, struct pl_codec_stream *s, void *user, struct pl_headers *t)
{
    (void)s, (void)user;
    struct rec *r = ctx;
    logf_(r, " TRAILERS");
    for (uint32_t i = 0; i < t->n; i++)
        logf_(r, " %.*s=%.*s", (int)t->v[i].name_len, t->v[i].name, (int)t->v[i].value_len,
              t->v[i].value);
    logf_(r, ";");
    return 0;
}

static void on_reset(void *ctx, struct pl_codec_stream *s, void *user, enum pl_reset_reason why)
{
    (void)s, (void)user;
    struct rec *r = ctx;
    r->resets++;
    logf_(r, " RESET %d;", (int)why);
}

static void on_goaway(void *ctx, uint32_t last)
{
    (void)last;
    struct rec *r = ctx;
    r->goaways++;
}

static const struct pl_codec_callbacks cbs = {
    .on_new_stream = on_new_stream,
    .on_head = on_head,
    .on_data = on_data,
    .on_trailers = on_trailers,
    .on_reset = on_reset,
    .on_goaway = on_goaway,
};

/* Feeds text in pieces of step bytes (0: all at once); returns the last feed's result. */
static int feed(struct pl_codec *c, struct pl_buf *in, const char *text, size_t len, size_t step)
{
    int rc = 0;
    if (!step)
        step = len;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        pl_buf_append(in, text + off, n);
        rc = c->vt->feed(c, in);
        if (rc < 0)
            return rc;
    }
    return rc;
}

/* Takes the codec's output as a string (caller frees). */
static char *take_out(struct pl_codec *c)
{
    struct pl_buf *o = c->vt->output(c);
    char *s = malloc(o->len + 1);
    pl_buf_copyout(o, 0, s, o->len);
    s[o->len] = '\0';
    pl_buf_drain(o, o->len);
    return s;
}

static struct pl_codec *server(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    struct pl_codec *c = pl_h1_codec_new(true, NULL, &cbs, r);
    r->codec = c;
    return c;
}

static struct pl_codec *client(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    struct pl_codec *c = pl_h1_codec_new(false, NULL, &cbs, r);
    r->codec = c;
    return c;
}

static void respond(struct pl_codec *c, struct pl_codec_stream *s, int status, const char *body,
                    bool with_cl)
{
    struct pl_arena a = PL_ARENA_INIT;
    struct pl_http_head h = {.status = status, .content_length = -1};
    char cl[32];
    if (body && with_cl) {
        snprintf(cl, sizeof(cl), "%zu", strlen(body));
        pl_headers_add_copy(&h.headers, &a, "content-length", 14, cl, strlen(cl));
    }
    pl_headers_add_copy(&h.headers, &a, "x-a", 3, "1", 1);
    cr_assert_eq(c->vt->encode_head(c, s, &h, body == NULL), 0);
    if (body) {
        struct pl_buf b = PL_BUF_INIT;
        pl_buf_append(&b, body, strlen(body));
        cr_assert_eq(c->vt->encode_data(c, s, &b, true), 0);
        pl_buf_free(&b);
    }
    pl_arena_free(&a);
}

Test(h1_codec, get_byte_by_byte_and_response)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "GET /a?b=1 HTTP/1.1\r\nHost: Example.com\r\nX-Foo: Bar\r\n\r\n";
    cr_assert_eq(feed(c, &in, req, strlen(req), 1), 0);
    cr_assert_str_eq(r.log, "REQ GET /a?b=1 http://Example.com v11 cl=0 end=1; x-foo=Bar;");
    respond(c, r.last, 200, "hello", false);
    char *o = take_out(c);
    cr_assert_str_eq(o, "HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n0\r\n\r\n");
    free(o);
    cr_assert_eq(c->vt->active_streams(c), 0);
    cr_assert(!pl_h1_codec_closing(c));
    cr_assert(pl_h1_codec_idle(c));
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, pipelined_waits_for_response)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\n"
                      "Content-Length: 3\r\n\r\nabc";
    cr_assert_eq(feed(c, &in, req, strlen(req), 0), 0);
    cr_assert_eq(r.streams, 1);
    cr_assert(in.len > 0);
    respond(c, r.last, 200, "x", true);
    free(take_out(c));
    cr_assert_eq(c->vt->feed(c, &in), 0);
    cr_assert_eq(r.streams, 2);
    cr_assert_eq(in.len, 0);
    cr_assert(strstr(r.log, "REQ POST /2 http://h v11 cl=3 end=0; content-length=3; DATA 3 end=1;"),
              "%s", r.log);
    respond(c, r.last, 204, NULL, false);
    char *o = take_out(c);
    cr_assert_str_eq(o, "HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n");
    free(o);
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, chunked_request_with_trailers_split)
{
    const char *req = "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: v\r\n\r\n";
    for (size_t step = 0; step < 9; step++) {
        struct rec r;
        struct pl_codec *c = server(&r);
        struct pl_buf in = PL_BUF_INIT;
        cr_assert_eq(feed(c, &in, req, strlen(req), step), 0);
        cr_assert_eq(r.body_len, 11);
        cr_assert(!memcmp(r.body, "hello world", 11));
        cr_assert(strstr(r.log, "TRAILERS x-t=v;"), "%s", r.log);
        cr_assert_eq(r.resets, 0);
        c->vt->destroy(c);
        cr_assert_eq(r.resets, 1); /* destroyed with the stream open (no response) */
        pl_buf_free(&in);
    }
}

Test(h1_codec, large_body_across_slices)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    size_t n = 50000;
    char *req = malloc(n + 200);
    int h = sprintf(req, "PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n", n);
    for (size_t i = 0; i < n; i++)
        req[h + i] = (char)('a' + i % 26);
    cr_assert_eq(feed(c, &in, req, (size_t)h + n, 7000), 0);
    cr_assert_eq(r.body_len, n);
    cr_assert(!memcmp(r.body, req + h, n));
    cr_assert(strstr(r.log, "end=1;"));
    free(req);
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, absolute_form_and_http10_keepalive)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "GET HTTP://up.example:8080?q=1 HTTP/1.0\r\nHost: other\r\n"
                      "Connection: keep-alive\r\n\r\n";
    cr_assert_eq(feed(c, &in, req, strlen(req), 0), 0);
    cr_assert(strstr(r.log, "REQ GET /?q=1 http://up.example:8080 v10"), "%s", r.log);
    respond(c, r.last, 200, "ok", true);
    char *o = take_out(c);
    cr_assert(strstr(o, "connection: keep-alive\r\n"), "%s", o);
    free(o);
    cr_assert(!pl_h1_codec_closing(c));
    /* HTTP/1.0 without keep-alive and without content-length: until close */
    const char *req2 = "GET / HTTP/1.0\r\n\r\n";
    cr_assert_eq(feed(c, &in, req2, strlen(req2), 0), 0);
    struct pl_http_head h = {.status = 200, .content_length = -1};
    c->vt->encode_head(c, r.last, &h, false);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, "abc", 3);
    c->vt->encode_data(c, r.last, &b, true);
    o = take_out(c);
    cr_assert_str_eq(o, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc");
    free(o);
    cr_assert(pl_h1_codec_closing(c));
    c->vt->destroy(c);
    pl_buf_free(&in);
}

static void expect_error(const char *req, int status)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    int rc = feed(c, &in, req, strlen(req), 0);
    cr_assert(rc < 0, "%s: rc %d", req, rc);
    cr_assert_eq(pl_h1_codec_error_status(c), status, "%s", req);
    char *o = take_out(c);
    char want[64];
    snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
    cr_assert(!strncmp(o, want, strlen(want)), "%s", o);
    cr_assert(strstr(o, "connection: close\r\n"));
    free(o);
    cr_assert_eq(r.streams, 0, "%s", req);
    cr_assert(pl_h1_codec_closing(c));
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, malformed_requests)
{
    expect_error("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked"
                 "\r\n\r\nabc",
                 400);
    expect_error("GET / HTTP/1.1\nHost: h\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\n\r\n", 400);                       /* no Host */
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400); /* two Hosts */
    expect_error("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
    expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    expect_error("GET x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    char big[70000];
    int n = sprintf(big, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    memset(big + n, 'a', 65000);
    strcpy(big + n + 65000, "\r\n\r\n");
    expect_error(big, 431);
}

Test(h1_codec, bad_chunk_after_head)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    cr_assert(feed(c, &in, req, strlen(req), 0) < 0);
    cr_assert_eq(r.resets, 1);
    char *o = take_out(c);
    cr_assert(!strncmp(o, "HTTP/1.1 400 ", 13), "%s", o);
    free(o);
    c->vt->destroy(c);
    cr_assert_eq(r.resets, 1);
    pl_buf_free(&in);
}

Test(h1_codec, expect_continue_and_connection_close)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nConnection: close\r\n"
                      "Content-Length: 2\r\n\r\n";
    cr_assert_eq(feed(c, &in, req, strlen(req), 0), 0);
    struct pl_http_head cont = {.status = 100};
    cr_assert_eq(c->vt->encode_head(c, r.last, &cont, false), 0);
    char *o = take_out(c);
    cr_assert_str_eq(o, "HTTP/1.1 100 Continue\r\n\r\n");
    free(o);
    cr_assert_eq(feed(c, &in, "ok", 2, 0), 0);
    cr_assert(strstr(r.log, "DATA 2 end=1;"));
    respond(c, r.last, 200, NULL, false);
    o = take_out(c);
    cr_assert_str_eq(o,
                     "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    free(o);
    cr_assert(pl_h1_codec_closing(c));
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, early_response_closes)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc";
    cr_assert_eq(feed(c, &in, req, strlen(req), 0), 0);
    respond(c, r.last, 404, "nope", true);
    char *o = take_out(c);
    cr_assert(strstr(o, "connection: close\r\n"), "%s", o);
    free(o);
    cr_assert(pl_h1_codec_closing(c));
    cr_assert_eq(feed(c, &in, "defghij", 7, 0), 0); /* discarded */
    cr_assert_eq(r.body_len, 3);
    c->vt->destroy(c);
    cr_assert_eq(r.resets, 0);
    pl_buf_free(&in);
}

Test(h1_codec, upgrade_websocket_tunnel)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "\r\nearly";
    cr_assert_eq(feed(c, &in, req, strlen(req), 0), 0);
    cr_assert(strstr(r.log, "end=0;"), "%s", r.log);
    cr_assert_eq(r.head->protocol_len, 9);
    cr_assert_eq(r.body_len, 0);
    struct pl_arena a = PL_ARENA_INIT;
    struct pl_http_head h = {.status = 101};
    pl_headers_add_copy(&h.headers, &a, "connection", 10, "upgrade", 7);
    pl_headers_add_copy(&h.headers, &a, "upgrade", 7, "websocket", 9);
    cr_assert_eq(c->vt->encode_head(c, r.last, &h, false), 0);
    char *o = take_out(c);
    cr_assert_str_eq(o, "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\n"
                        "upgrade: websocket\r\n\r\n");
    free(o);
    cr_assert_eq(c->vt->feed(c, &in), 0);
    cr_assert_eq(r.body_len, 5);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, "\x81\x00", 2);
    c->vt->encode_data(c, r.last, &b, false);
    o = take_out(c);
    cr_assert_eq(o[0], '\x81');
    free(o);
    c->vt->feed_eof(c);
    cr_assert(strstr(r.log, "DATA 0 end=1;"), "%s", r.log);
    pl_arena_free(&a);
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, inline_response_inside_callback)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    r.respond_inline = true;
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    cr_assert_eq(feed(c, &in, req, strlen(req), 0), 0);
    cr_assert_eq(r.streams, 2); /* answered inline, so the second is parsed in the same feed */
    char *o = take_out(c);
    cr_assert(strstr(o, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200"), "%s", o);
    free(o);
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, refused_stream)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    r.refuse = true;
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    feed(c, &in, req, strlen(req), 0);
    char *o = take_out(c);
    cr_assert(!strncmp(o, "HTTP/1.1 503", 12));
    free(o);
    cr_assert(pl_h1_codec_closing(c));
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, server_goaway)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    feed(c, &in, req, strlen(req), 0);
    c->vt->goaway(c);
    cr_assert(!pl_h1_codec_closing(c));
    respond(c, r.last, 200, "x", true);
    char *o = take_out(c);
    cr_assert(strstr(o, "connection: close"));
    free(o);
    cr_assert(pl_h1_codec_closing(c));
    c->vt->destroy(c);
    pl_buf_free(&in);
}

static struct pl_codec_stream *send_request(struct pl_codec *c, struct rec *r, const char *method,
                                            const char *body)
{
    struct pl_codec_stream *s = c->vt->new_stream(c, r);
    cr_assert_not_null(s);
    struct pl_http_head h = {.method = method,
                             .method_len = (uint32_t)strlen(method),
                             .path = "/p?x",
                             .path_len = 4,
                             .authority = "up:80",
                             .authority_len = 5,
                             .scheme = "http",
                             .scheme_len = 4,
                             .content_length = -1};
    struct pl_arena a = PL_ARENA_INIT;
    pl_headers_add_copy(&h.headers, &a, "x-b", 3, "2", 1);
    cr_assert_eq(c->vt->encode_head(c, s, &h, body == NULL), 0);
    if (body) {
        struct pl_buf b = PL_BUF_INIT;
        pl_buf_append(&b, body, strlen(body));
        cr_assert_eq(c->vt->encode_data(c, s, &b, false), 0);
        struct pl_arena ta = PL_ARENA_INIT;
        struct pl_headers t = {0};
        pl_headers_add_copy(&t, &ta, "grpc-status", 11, "0", 1);
        cr_assert_eq(c->vt->encode_trailers(c, s, &t), 0);
        pl_arena_free(&ta);
    }
    pl_arena_free(&a);
    return s;
}

Test(h1_codec, client_request_response_keepalive)
{
    struct rec r;
    struct pl_codec *c = client(&r);
    struct pl_buf in = PL_BUF_INIT;
    send_request(c, &r, "POST", "abc");
    char *o = take_out(c);
    cr_assert_str_eq(o, "POST /p?x HTTP/1.1\r\nhost: up:80\r\nx-b: 2\r\ntransfer-encoding: "
                        "chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n");
    free(o);
    cr_assert_null(c->vt->new_stream(c, &r)); /* one at a time */
    const char *resp = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
                       "Server: s\r\n\r\nbody";
    cr_assert_eq(feed(c, &in, resp, strlen(resp), 3), 0);
    cr_assert(strstr(r.log, "RESP 100 info=1"), "%s", r.log);
    cr_assert(strstr(r.log, "RESP 200 info=0 cl=4 end=0; content-length=4; server=s; DATA"), "%s",
              r.log);
    cr_assert_eq(r.body_len, 4);
    cr_assert(pl_h1_codec_idle(c));
    /* second request on the same connection: HEAD with content-length but no body */
    send_request(c, &r, "HEAD", NULL);
    free(take_out(c));
    const char *resp2 = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    cr_assert_eq(feed(c, &in, resp2, strlen(resp2), 0), 0);
    cr_assert(strstr(r.log, "RESP 200 info=0 cl=100 end=1;"), "%s", r.log);
    cr_assert(pl_h1_codec_idle(c));
    /* unsolicited bytes: protocol error */
    cr_assert(feed(c, &in, "HTTP/1.1 200 OK\r\n\r\n", 19, 0) < 0);
    cr_assert(pl_h1_codec_closing(c));
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, client_until_close_and_connection_close)
{
    struct rec r;
    struct pl_codec *c = client(&r);
    struct pl_buf in = PL_BUF_INIT;
    send_request(c, &r, "GET", NULL);
    char *o = take_out(c);
    cr_assert_str_eq(o, "GET /p?x HTTP/1.1\r\nhost: up:80\r\nx-b: 2\r\n\r\n");
    free(o);
    const char *resp = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome";
    cr_assert_eq(feed(c, &in, resp, strlen(resp), 0), 0);
    cr_assert_eq(r.goaways, 1);
    cr_assert(strstr(r.log, "DATA 4 end=0;"), "%s", r.log);
    c->vt->feed_eof(c);
    cr_assert(strstr(r.log, "DATA 0 end=1;"), "%s", r.log);
    cr_assert_eq(r.resets, 0);
    cr_assert(pl_h1_codec_closing(c));
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, client_truncated_and_bad_response)
{
    struct rec r;
    struct pl_codec *c = client(&r);
    struct pl_buf in = PL_BUF_INIT;
    send_request(c, &r, "GET", NULL);
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    cr_assert_eq(feed(c, &in, resp, strlen(resp), 0), 0);
    c->vt->feed_eof(c);
    cr_assert_eq(r.resets, 1);
    cr_assert(strstr(r.log, "RESET 1;"), "%s", r.log);
    c->vt->destroy(c);
    cr_assert_eq(r.resets, 1);

    c = client(&r);
    send_request(c, &r, "GET", NULL);
    cr_assert(feed(c, &in, "HTTP/1.1 2x0 OK\r\n\r\n", 19, 0) < 0);
    cr_assert_eq(r.resets, 1);
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, free_stream_when_done_then_keep_alive)
{
    struct rec r;
    struct pl_codec *c = server(&r);
    struct pl_buf in = PL_BUF_INIT;
    const char *req = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    cr_assert_eq(feed(c, &in, req, strlen(req), 0), 0);
    struct pl_codec_stream *s = r.last;
    pl_h1_codec_free_stream(c, s); /* still active: nothing happens */
    respond(c, s, 200, "x", true);
    free(take_out(c));
    pl_h1_codec_free_stream(c, s); /* ended: freed now */
    pl_h1_codec_free_stream(c, s); /* no longer known: nothing happens */
    cr_assert_eq(feed(c, &in, req, strlen(req), 0), 0);
    cr_assert_eq(r.streams, 2);
    respond(c, r.last, 204, NULL, false);
    char *o = take_out(c);
    cr_assert_str_eq(o, "HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n");
    free(o);
    c->vt->destroy(c);
    pl_buf_free(&in);
}

Test(h1_codec, more_fields_than_the_shared_scratch)
{
    struct rec r;
    memset(&r, 0, sizeof(r));
    struct pl_h1_codec_opts o = pl_h1_codec_opts_default();
    o.limits.max_headers = 150;
    struct pl_codec *c = pl_h1_codec_new(true, &o, &cbs, &r);
    char req[8192];
    size_t n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 120; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-%d: %d\r\n", i, i);
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    struct pl_buf in = PL_BUF_INIT;
    cr_assert_eq(feed(c, &in, req, n, 0), 0);
    cr_assert_eq(r.streams, 1);
    cr_assert_eq(r.head->headers.n, 120);
    c->vt->destroy(c);
    pl_buf_free(&in);
}
