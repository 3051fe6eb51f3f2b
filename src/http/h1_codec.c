/* HTTP/1.1 codec: see h1_codec.h. */
#include "http/h1_codec.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/fmt.h"
#include "core/slab.h"

struct h1_stream {
    struct pl_codec_stream base;
    struct pl_arena arena;
    struct pl_http_head head; /* received: the request (server) or the response (client) */
    struct pl_headers trailers;
    bool rx_done, tx_done;
    bool tx_head_sent;  /* final (non-1xx) head written */
    bool tx_chunked;    /* our body is chunk-encoded */
    bool tx_no_body;    /* body bytes must not be written (HEAD response, 204, 304) */
    bool rx_keep_alive; /* the received head allows another message after this one */
    bool req_head;      /* server: the request was HEAD */
    bool req_upgrade;   /* server: the request asked for an upgrade; client: we asked */
    bool req_connect;   /* server: a CONNECT request (its bytes wait for the response) */
    bool reset;         /* reset locally or reported to the user */
    bool started_body;  /* parser is in the body phase of the received message */
    struct h1_stream *next_dead;
};

struct h1_codec {
    struct pl_codec base;
    bool server;
    struct pl_h1_codec_opts opts;
    struct pl_h1_parser parser;
    size_t fields_cap; /* header fields (and trailers) a head may have */
    struct pl_buf out;
    struct h1_stream *cur;  /* the active stream */
    struct h1_stream *dead; /* ended, freed at the next feed (see the lifetime note) */
    uint32_t next_id;
    bool closing; /* close after output; accept no new stream */
    bool goaway;  /* server: drain: the next response says "connection: close" */
    bool tunnel;  /* after a 101: every byte is data */
    bool stop;    /* a callback asked to stop this feed */
    bool in_feed;
    int error_status;
};

static const struct pl_codec_vtable h1_vt;

#define C(x) ((struct h1_codec *)(x))

struct pl_h1_codec_opts pl_h1_codec_opts_default(void)
{
    return (struct pl_h1_codec_opts){.limits = pl_h1_config_default(), .server_name = NULL};
}

bool pl_codec_is_h1(const struct pl_codec *c)
{
    return c && c->vt == &h1_vt;
}

/* The parser's field array is scratch between a parse and the copy into the stream (no callback
 * runs in between), so codecs share a per-thread one instead of holding one per connection. */
#define FIELDS_SHARED 100
static __thread struct pl_h1_header fields_shared[FIELDS_SHARED];

static struct pl_h1_header *fields_get(const struct h1_codec *c)
{
    if (c->fields_cap <= FIELDS_SHARED)
        return fields_shared;
    return pl_malloc(c->fields_cap * sizeof(struct pl_h1_header));
}

static void fields_put(const struct h1_codec *c, struct pl_h1_header *f)
{
    if (c->fields_cap > FIELDS_SHARED)
        free(f);
}

/* Streams are per request: they come from a per-thread cache, not from malloc. */
static __thread struct pl_slab stream_cache = PL_SLAB_INIT(sizeof(struct h1_stream), 1024);

static void stream_free(struct h1_stream *s)
{
    if (!s)
        return;
    pl_arena_free(&s->arena);
    pl_slab_free(&stream_cache, s);
}

static void reap(struct h1_codec *c)
{
    while (c->dead) {
        struct h1_stream *s = c->dead;
        c->dead = s->next_dead;
        stream_free(s);
    }
}

static struct h1_stream *stream_new(struct h1_codec *c, void *user)
{
    struct h1_stream *s = pl_slab_calloc(&stream_cache);
    s->base.user = user;
    s->base.id = c->next_id++;
    s->head.content_length = -1;
    c->cur = s;
    return s;
}

/* The stream ended both ways (or was reset): detach it, free it later. */
static void stream_end(struct h1_codec *c, struct h1_stream *s)
{
    if (c->cur != s)
        return; /* already ended */
    c->cur = NULL;
    s->next_dead = c->dead;
    c->dead = s;
    if (c->server && c->goaway)
        c->closing = true;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

/* Writes a local error response for a malformed request and marks the connection closing. */
static void write_error(struct h1_codec *c, int status)
{
    const char *reason = reason_phrase(status);
    c->error_status = status;
    pl_buf_printf(&c->out, "HTTP/1.1 %d %s\r\ncontent-length: %zu\r\ncontent-type: text/plain\r\n",
                  status, reason, strlen(reason));
    if (c->opts.server_name)
        pl_buf_printf(&c->out, "server: %s\r\n", c->opts.server_name);
    pl_buf_printf(&c->out, "connection: close\r\n\r\n%s", reason);
    c->closing = true;
}

/* ---- receiving ---- */

/* Returns a contiguous view of in's first bytes for the parser: the first slice, or (want_more)
 * up to the head limit linearized. */
static const char *view(struct h1_codec *c, struct pl_buf *in, bool want_more, size_t *len)
{
    size_t first = in->head ? in->head->end - in->head->start : 0;
    if (!want_more || first >= in->len) {
        *len = first;
        return in->head ? in->head->data + in->head->start : NULL;
    }
    size_t n = in->len;
    size_t lim = c->opts.limits.max_header_bytes + 8;
    if (n > lim)
        n = lim;
    *len = n;
    return pl_buf_linearize(in, n);
}

static bool lc_eq(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && !memcmp(a, lit, n);
}

/* Copies the parsed head (bytes [0, n) of raw) into the stream's arena and fills s->head. */
static int fill_head(struct h1_codec *c, struct h1_stream *s, const char *raw, size_t n,
                     const struct pl_h1_msg *m)
{
    char *copy = pl_arena_alloc(&s->arena, n + 1);
    memcpy(copy, raw, n);
    copy[n] = '\0';
#define REBASE(p) ((p) ? copy + ((p)-raw) : NULL)
    struct pl_http_head *h = &s->head;
    h->version = m->version_minor ? 11 : 10;
    h->content_length = -1;
    bool have_host = false;
    /* the field array at its final size (and room for what the proxy adds) in one allocation */
    uint32_t cap = (uint32_t)m->num_headers + 8;
    h->headers.v = pl_arena_alloc(&s->arena, cap * sizeof(struct pl_header));
    h->headers.cap = cap;
    h->headers.n = 0;
    for (size_t i = 0; i < m->num_headers; i++) {
        const struct pl_h1_header *f = &m->headers[i];
        char *name = REBASE(f->name);
        pl_header_lower(name, name, f->name_len);
        const char *val = REBASE(f->value);
        if (f->name_len == 4 && c->server && lc_eq(name, f->name_len, "host")) {
            if (have_host)
                return PL_H1_E_HEADER_VALUE; /* two Host fields (RFC 9112 3.2) */
            have_host = true;
            h->authority = val;
            h->authority_len = (uint32_t)f->value_len;
            continue;
        }
        if (f->name_len == 14 && lc_eq(name, f->name_len, "content-length")) {
            /* validated by the parser; a HEAD response's value counts too */
            int64_t v = 0;
            for (size_t k = 0; k < f->value_len && val[k] >= '0' && val[k] <= '9'; k++)
                v = v * 10 + (val[k] - '0');
            h->content_length = v;
        }
        if (c->server && m->upgrade && lc_eq(name, f->name_len, "upgrade")) {
            h->protocol = val;
            h->protocol_len = (uint32_t)f->value_len;
        }
        h->headers.v[h->headers.n++] =
            (struct pl_header){name, val, (uint32_t)f->name_len, (uint32_t)f->value_len};
    }
    if (!c->server) {
        h->status = m->status;
        if (m->body == PL_H1_BODY_NONE && h->content_length < 0 && m->status != 304 &&
            m->status >= 200)
            h->content_length = 0;
        return 0;
    }
    if (!have_host && m->version_minor == 1)
        return PL_H1_E_REQUEST_LINE; /* HTTP/1.1 requires Host (RFC 9112 3.2) */
    if (m->body == PL_H1_BODY_NONE && !m->connect)
        h->content_length = 0;
    h->method = REBASE(m->method);
    h->method_len = (uint32_t)m->method_len;
    h->scheme = "http";
    h->scheme_len = 4;
    const char *t = REBASE(m->target);
    size_t tl = m->target_len;
    if (m->connect) { /* authority-form */
        h->authority = t;
        h->authority_len = (uint32_t)tl;
        return 0;
    }
    size_t sl = 0;
    if (tl > 7 && !strncasecmp(t, "http://", 7))
        sl = 4;
    else if (tl > 8 && !strncasecmp(t, "https://", 8))
        sl = 5;
    if (sl) { /* absolute-form: the target's authority wins over Host (RFC 9112 3.2.2) */
        char *sch = (char *)t;
        for (size_t k = 0; k < sl; k++)
            sch[k] = (char)(sch[k] | 0x20);
        h->scheme = t;
        h->scheme_len = (uint32_t)sl;
        const char *a = t + sl + 3, *end = t + tl, *p = a;
        while (p < end && *p != '/' && *p != '?')
            p++;
        if (p == a)
            return PL_H1_E_TARGET;
        h->authority = a;
        h->authority_len = (uint32_t)(p - a);
        if (p == end) {
            h->path = "/";
            h->path_len = 1;
        } else if (*p == '?') {
            char *q = pl_arena_alloc(&s->arena, (size_t)(end - p) + 2);
            q[0] = '/';
            memcpy(q + 1, p, (size_t)(end - p));
            q[end - p + 1] = '\0';
            h->path = q;
            h->path_len = (uint32_t)(end - p + 1);
        } else {
            h->path = p;
            h->path_len = (uint32_t)(end - p);
        }
        return 0;
    }
    if (t[0] != '/' && !(tl == 1 && t[0] == '*'))
        return PL_H1_E_TARGET;
    h->path = t;
    h->path_len = (uint32_t)tl;
    return 0;
#undef REBASE
}

/* Reports a reset of the current stream to its user (once). */
static void report_reset(struct h1_codec *c, struct h1_stream *s, enum pl_reset_reason why)
{
    if (s->reset)
        return;
    s->reset = true;
    c->closing = true;
    if (c->base.cb->on_reset)
        c->base.cb->on_reset(c->base.ctx, &s->base, s->base.user, why);
    stream_end(c, s);
}

/* A receive error: the server answers it (if it still can) and closes; the client resets. */
static int rx_error(struct h1_codec *c, int err)
{
    struct h1_stream *s = c->cur;
    if (c->server) {
        if (!s || !s->tx_head_sent)
            write_error(c, pl_h1_error_status(err));
        else
            c->closing = true;
        if (s)
            report_reset(c, s, PL_RESET_PROTOCOL_ERROR);
    } else {
        c->closing = true;
        if (s)
            report_reset(c, s, PL_RESET_PROTOCOL_ERROR);
    }
    return err;
}

/* Parses one head; returns 1 when a head was handled, 0 for more bytes, or an error. */
static int rx_head(struct h1_codec *c, struct pl_buf *in)
{
    struct pl_h1_msg m = {.headers = fields_get(c), .headers_cap = c->fields_cap};
    size_t len;
    const char *p = view(c, in, false, &len);
    int r = pl_h1_parse_head(&c->parser, p, len, &m);
    if (r == PL_EAGAIN && in->len > len) {
        p = view(c, in, true, &len);
        r = pl_h1_parse_head(&c->parser, p, len, &m);
    }
    if (r < 0) {
        fields_put(c, m.headers);
        return r == PL_EAGAIN ? 0 : rx_error(c, r);
    }
    size_t n = (size_t)r;
    struct h1_stream *s = c->cur;
    if (c->server) {
        s = stream_new(c, NULL);
        s->req_head = m.method_len == 4 && !memcmp(m.method, "HEAD", 4);
        s->req_upgrade = m.upgrade && !m.connect;
        s->req_connect = m.connect;
    } else {
        /* a new head for the same stream after 1xx: start over */
        s->head = (struct pl_http_head){.content_length = -1};
        s->trailers = (struct pl_headers){0};
    }
    r = fill_head(c, s, p, n, &m);
    fields_put(c, m.headers);
    m.headers = NULL;
    pl_buf_drain(in, n);
    if (r < 0) {
        if (c->server) {
            c->cur = NULL;
            stream_free(s);
        }
        return rx_error(c, r);
    }
    s->rx_keep_alive = m.keep_alive;
    const struct pl_codec_callbacks *cb = c->base.cb;
    if (c->server) {
        void *user = cb->on_new_stream ? cb->on_new_stream(c->base.ctx, &s->base) : NULL;
        if (!user) {
            write_error(c, 503);
            c->cur = NULL;
            stream_free(s);
            return PL_EAGAIN;
        }
        s->base.user = user;
        bool end = m.body == PL_H1_BODY_NONE && !s->req_upgrade && !m.connect;
        if (m.body != PL_H1_BODY_NONE)
            s->started_body = true;
        if (end)
            s->rx_done = true;
        if (!s->rx_keep_alive)
            c->closing = true; /* no more requests after this one */
        if (cb->on_head(c->base.ctx, &s->base, user, &s->head, end, false))
            c->stop = true;
        if (end && c->cur == s && s->tx_done)
            stream_end(c, s);
        return 1;
    }
    /* client: a response */
    bool info = m.status < 200 && m.status != 101;
    if (info) {
        if (cb->on_head(c->base.ctx, &s->base, s->base.user, &s->head, false, true))
            c->stop = true;
        return 1;
    }
    if (m.status == 101 || (m.connect && m.status < 300))
        c->tunnel = true;
    bool end = m.body == PL_H1_BODY_NONE && !c->tunnel;
    if (m.body != PL_H1_BODY_NONE)
        s->started_body = true;
    if (!m.keep_alive && cb->on_goaway)
        cb->on_goaway(c->base.ctx, s->base.id);
    if (end) {
        s->rx_done = true;
        if (!s->rx_keep_alive || !s->tx_done)
            c->closing = true;
    }
    if (cb->on_head(c->base.ctx, &s->base, s->base.user, &s->head, end, false))
        c->stop = true;
    if (end && c->cur == s && s->tx_done)
        stream_end(c, s);
    return 1;
}

/* Copies parsed trailers into the stream's arena. */
static void take_trailers(struct h1_stream *s, const struct pl_h1_body *b)
{
    for (size_t i = 0; i < b->num_trailers; i++) {
        const struct pl_h1_header *f = &b->trailers[i];
        pl_headers_add_copy(&s->trailers, &s->arena, f->name, f->name_len, f->value, f->value_len);
    }
}

/* Decodes body bytes of the current message; returns 0 or an error. */
static int rx_body(struct h1_codec *c, struct pl_buf *in)
{
    struct h1_stream *s = c->cur;
    struct pl_buf data = PL_BUF_INIT;
    bool done = false;
    while (in->len > 0 && !done) {
        struct pl_h1_body b = {.trailers = fields_get(c), .trailers_cap = c->fields_cap};
        size_t len;
        const char *p = view(c, in, false, &len);
        int r = pl_h1_parse_body(&c->parser, p, len, &b);
        if (r == 0 && !b.done && in->len > len) {
            p = view(c, in, true, &len);
            r = pl_h1_parse_body(&c->parser, p, len, &b);
        }
        if (r > 0 && b.num_trailers)
            take_trailers(s, &b);
        fields_put(c, b.trailers);
        if (r < 0) {
            pl_buf_free(&data);
            return rx_error(c, r);
        }
        if (r == 0 && !b.done)
            break;
        size_t off = b.len ? (size_t)(b.data - p) : (size_t)r;
        pl_buf_drain(in, off);
        if (b.len) {
            pl_buf_move(&data, in, b.len);
            pl_buf_drain(in, (size_t)r - off - b.len);
        }
        done = b.done;
    }
    if (!done && data.len == 0)
        return 0;
    const struct pl_codec_callbacks *cb = c->base.cb;
    bool trailers = done && s->trailers.n > 0;
    if (done) { /* before the callbacks: the user may respond and end the stream */
        s->rx_done = true;
        s->started_body = false;
        if (!s->rx_keep_alive || (!c->server && !s->tx_done))
            c->closing = true;
    }
    if (data.len || !trailers) {
        if (cb->on_data(c->base.ctx, &s->base, s->base.user, &data, done && !trailers))
            c->stop = true;
    }
    pl_buf_free(&data);
    if (trailers && c->cur == s &&
        cb->on_trailers(c->base.ctx, &s->base, s->base.user, &s->trailers))
        c->stop = true;
    if (done && c->cur == s && s->tx_done)
        stream_end(c, s);
    return 0;
}

/* Tunnel (after 101 or CONNECT): every byte is data. */
static void rx_tunnel(struct h1_codec *c, struct pl_buf *in)
{
    struct h1_stream *s = c->cur;
    struct pl_buf data = PL_BUF_INIT;
    pl_buf_move(&data, in, in->len);
    if (c->base.cb->on_data(c->base.ctx, &s->base, s->base.user, &data, false))
        c->stop = true;
    pl_buf_free(&data);
}

static int h1_feed(struct pl_codec *base, struct pl_buf *in)
{
    struct h1_codec *c = C(base);
    bool outer = !c->in_feed;
    if (outer)
        reap(c);
    c->in_feed = true;
    c->stop = false;
    int rc = 0;
    while (!c->stop && in->len > 0) {
        struct h1_stream *s = c->cur;
        if (c->tunnel) {
            if (s)
                rx_tunnel(c, in);
            else
                pl_buf_drain(in, in->len);
            break;
        }
        if (c->server) {
            if (c->closing && (!s || s->rx_done)) {
                pl_buf_drain(in, in->len); /* nothing more is read on a closing connection */
                break;
            }
            if (s && s->rx_done)
                break; /* pipelined: wait for the response */
            if (s && s->req_upgrade && !s->started_body)
                break; /* upgrade requested: bytes wait for the response (101 or not) */
            if (s && s->req_connect && !s->rx_done && !s->started_body)
                break; /* CONNECT: what follows is the tunnel's, not another request */
        } else if (!s || s->rx_done) {
            rc = PL_H1_E_STATE; /* bytes from the server with no request outstanding */
            c->closing = true;
            pl_buf_drain(in, in->len);
            break;
        }
        if (s && s->started_body) {
            rc = rx_body(c, in);
            if (rc < 0 || (c->cur == s && s->started_body))
                break; /* error, or more body bytes needed */
            continue;
        }
        rc = rx_head(c, in);
        if (rc == PL_EAGAIN) {
            rc = 0;
            break;
        }
        if (rc <= 0)
            break;
        rc = 0;
    }
    c->in_feed = !outer;
    return rc;
}

static void h1_feed_eof(struct pl_codec *base)
{
    struct h1_codec *c = C(base);
    struct h1_stream *s = c->cur;
    /* server: complete requests still in the input are answered (the connection layer closes
     * once none is left); client: nothing more comes */
    if (!c->server || (s && !s->rx_done && !c->tunnel))
        c->closing = true;
    if (!s)
        return;
    if (c->tunnel) {
        c->closing = true;
        struct pl_buf empty = PL_BUF_INIT;
        s->rx_done = true;
        c->base.cb->on_data(c->base.ctx, &s->base, s->base.user, &empty, true);
        if (c->cur == s && s->tx_done)
            stream_end(c, s);
        return;
    }
    if (s->rx_done)
        return; /* the request is complete: its response may still be written */
    if (!c->server && s->started_body && pl_h1_parse_eof(&c->parser, 0) == 0) {
        struct pl_buf empty = PL_BUF_INIT;
        s->rx_done = true;
        c->base.cb->on_data(c->base.ctx, &s->base, s->base.user, &empty, true);
        if (c->cur == s && s->tx_done)
            stream_end(c, s);
        return;
    }
    report_reset(c, s, PL_RESET_REMOTE);
}

/* ---- sending ---- */

static char *put_mem(char *p, const void *src, size_t n)
{
    memcpy(p, src, n);
    return p + n;
}

#define PUT_LIT(p, lit) put_mem((p), (lit), sizeof(lit) - 1)

/* Bytes the fields of h take on the wire at most ("name: value\r\n" each). */
static size_t fields_bound(const struct pl_headers *h)
{
    size_t n = 0;
    for (uint32_t i = 0; h && i < h->n; i++)
        n += h->v[i].name_len + h->v[i].value_len + 4;
    return n;
}

/* True for the fields the codec decides itself (framing, connection), which it leaves out. */
static bool skip_field(const struct pl_header *f, bool keep_connection, bool *has_cl)
{
    switch (f->name_len) {
    case 4:
        return pl_header_name_eq(f->name, 4, "host", 4);
    case 10:
        return !keep_connection && pl_header_name_eq(f->name, 10, "connection", 10);
    case 14:
        if (pl_header_name_eq(f->name, 14, "content-length", 14))
            *has_cl = true;
        return false;
    case 17:
        return pl_header_name_eq(f->name, 17, "transfer-encoding", 17);
    default:
        return false;
    }
}

/* Writes the header fields at p (room: fields_bound), skipping the ones the codec decides. */
static char *put_fields(char *p, const struct pl_headers *h, bool keep_connection, bool *has_cl)
{
    for (uint32_t i = 0; h && i < h->n; i++) {
        const struct pl_header *f = &h->v[i];
        if (skip_field(f, keep_connection, has_cl))
            continue;
        p = put_mem(p, f->name, f->name_len);
        p = PUT_LIT(p, ": ");
        p = put_mem(p, f->value, f->value_len);
        p = PUT_LIT(p, "\r\n");
    }
    return p;
}

static void tx_complete(struct h1_codec *c, struct h1_stream *s)
{
    s->tx_done = true;
    if (c->server && !s->rx_done) {
        /* answered before the request ended: the rest of it is not read; close */
        c->closing = true;
        stream_end(c, s);
    } else if (s->rx_done) {
        stream_end(c, s);
    }
}

/* Room for the lines a head ends with: framing, connection, the empty line. */
#define HEAD_TAIL_BOUND 64

static int encode_response(struct h1_codec *c, struct h1_stream *s, const struct pl_http_head *h,
                           bool end)
{
    int st = h->status;
    if (st < 100 || st > 999)
        return PL_EINVAL;
    const char *reason = reason_phrase(st);
    size_t rl = strlen(reason);
    /* one reservation: the head is written with plain copies into one slice */
    char *start = pl_buf_reserve(&c->out, 16 + rl + fields_bound(&h->headers) + HEAD_TAIL_BOUND);
    char *p = PUT_LIT(start, "HTTP/1.1 ");
    *p++ = (char)('0' + st / 100);
    *p++ = (char)('0' + st / 10 % 10);
    *p++ = (char)('0' + st % 10);
    *p++ = ' ';
    p = put_mem(p, reason, rl);
    p = PUT_LIT(p, "\r\n");
    bool has_cl = false;
    if (st < 200 && st != 101) { /* informational: another head follows */
        p = put_fields(p, &h->headers, false, &has_cl);
        p = PUT_LIT(p, "\r\n");
        pl_buf_commit(&c->out, (size_t)(p - start));
        return 0;
    }
    bool upgrade = st == 101 && s->req_upgrade;
    p = put_fields(p, &h->headers, upgrade, &has_cl);
    s->tx_head_sent = true;
    s->tx_no_body = s->req_head || st == 204 || st == 304 || upgrade;
    if (upgrade) {
        c->tunnel = true;
        s->rx_done = false;
        s->started_body = true;
    } else if (st == 204 || st == 304) {
        /* no framing */
    } else if (!has_cl && end && !s->req_head) {
        p = PUT_LIT(p, "content-length: 0\r\n");
    } else if (!has_cl && !end && !s->req_head) {
        if (s->head.version == 11) {
            s->tx_chunked = true;
            p = PUT_LIT(p, "transfer-encoding: chunked\r\n");
        } else
            c->closing = true; /* HTTP/1.0: the body ends when the connection closes */
    }
    if (!upgrade) {
        if (s->req_upgrade && !s->rx_done)
            c->closing = true; /* upgrade refused: the connection cannot be reused */
        if (c->goaway || !s->rx_keep_alive)
            c->closing = true;
        if (!s->rx_done)
            c->closing = true; /* answered before the request ended (as Envoy does) */
        if (c->closing)
            p = PUT_LIT(p, "connection: close\r\n");
        else if (s->head.version == 10)
            p = PUT_LIT(p, "connection: keep-alive\r\n");
    }
    p = PUT_LIT(p, "\r\n");
    pl_buf_commit(&c->out, (size_t)(p - start));
    if (end)
        tx_complete(c, s);
    return 0;
}

static int encode_request(struct h1_codec *c, struct h1_stream *s, const struct pl_http_head *h,
                          bool end)
{
    if (!h->method || !h->method_len)
        return PL_EINVAL;
    bool connect = h->method_len == 7 && !memcmp(h->method, "CONNECT", 7);
    size_t bound = h->method_len + h->path_len + 2 * (size_t)h->authority_len + 32 +
                   fields_bound(&h->headers) + HEAD_TAIL_BOUND;
    char *start = pl_buf_reserve(&c->out, bound);
    char *p = put_mem(start, h->method, h->method_len);
    *p++ = ' ';
    if (connect)
        p = put_mem(p, h->authority, h->authority_len);
    else if (h->path_len)
        p = put_mem(p, h->path, h->path_len);
    else
        *p++ = '/';
    p = PUT_LIT(p, " HTTP/1.1\r\nhost: ");
    p = put_mem(p, h->authority, h->authority_len);
    p = PUT_LIT(p, "\r\n");
    bool has_cl = false;
    s->req_upgrade = h->protocol && h->protocol_len;
    p = put_fields(p, &h->headers, s->req_upgrade, &has_cl);
    if (!has_cl && !end && !s->req_upgrade && !connect) {
        s->tx_chunked = true;
        p = PUT_LIT(p, "transfer-encoding: chunked\r\n");
    } else if (!has_cl && end &&
               ((h->method_len == 4 && !memcmp(h->method, "POST", 4)) ||
                (h->method_len == 3 && !memcmp(h->method, "PUT", 3)) ||
                (h->method_len == 5 && !memcmp(h->method, "PATCH", 5)))) {
        p = PUT_LIT(p, "content-length: 0\r\n");
    }
    p = PUT_LIT(p, "\r\n");
    pl_buf_commit(&c->out, (size_t)(p - start));
    pl_h1_parser_set_request(&c->parser, h->method, h->method_len);
    s->tx_head_sent = true;
    if (end)
        tx_complete(c, s);
    return 0;
}

static int h1_encode_head(struct pl_codec *base, struct pl_codec_stream *bs,
                          const struct pl_http_head *h, bool end)
{
    struct h1_codec *c = C(base);
    struct h1_stream *s = (struct h1_stream *)bs;
    if (s != c->cur || s->tx_done || s->tx_head_sent)
        return PL_EINVAL;
    return c->server ? encode_response(c, s, h, end) : encode_request(c, s, h, end);
}

/* The last chunk and the trailer section (t may be NULL). */
static void put_trailers(struct pl_buf *o, const struct pl_headers *t)
{
    char *start = pl_buf_reserve(o, 5 + fields_bound(t));
    char *p = PUT_LIT(start, "0\r\n");
    for (uint32_t i = 0; t && i < t->n; i++) {
        const struct pl_header *f = &t->v[i];
        p = put_mem(p, f->name, f->name_len);
        p = PUT_LIT(p, ": ");
        p = put_mem(p, f->value, f->value_len);
        p = PUT_LIT(p, "\r\n");
    }
    p = PUT_LIT(p, "\r\n");
    pl_buf_commit(o, (size_t)(p - start));
}

static int h1_encode_data(struct pl_codec *base, struct pl_codec_stream *bs, struct pl_buf *data,
                          bool end)
{
    struct h1_codec *c = C(base);
    struct h1_stream *s = (struct h1_stream *)bs;
    if (s != c->cur || s->tx_done || !s->tx_head_sent) {
        pl_buf_drain(data, data->len);
        return PL_EINVAL;
    }
    if (c->tunnel) {
        pl_buf_move(&c->out, data, data->len);
        if (end) {
            s->tx_done = true;
            c->closing = true;
            if (s->rx_done)
                stream_end(c, s);
        }
        return 0;
    }
    if (s->tx_no_body) {
        pl_buf_drain(data, data->len);
    } else if (s->tx_chunked) {
        if (data->len) {
            char *p = pl_buf_reserve(&c->out, 20);
            size_t n = pl_fmt_hex(p, data->len);
            memcpy(p + n, "\r\n", 2);
            pl_buf_commit(&c->out, n + 2);
            pl_buf_move(&c->out, data, data->len);
            pl_buf_append(&c->out, "\r\n", 2);
        }
        if (end)
            put_trailers(&c->out, NULL);
    } else {
        pl_buf_move(&c->out, data, data->len);
    }
    if (end)
        tx_complete(c, s);
    return 0;
}

static int h1_encode_trailers(struct pl_codec *base, struct pl_codec_stream *bs,
                              const struct pl_headers *t)
{
    struct h1_codec *c = C(base);
    struct h1_stream *s = (struct h1_stream *)bs;
    if (s != c->cur || s->tx_done || !s->tx_head_sent)
        return PL_EINVAL;
    if (s->tx_chunked && !c->tunnel)
        put_trailers(&c->out, t);
    if (c->tunnel) {
        s->tx_done = true;
        c->closing = true;
        if (s->rx_done)
            stream_end(c, s);
        return 0;
    }
    tx_complete(c, s);
    return 0;
}

static struct pl_codec_stream *h1_new_stream(struct pl_codec *base, void *user)
{
    struct h1_codec *c = C(base);
    if (c->server || c->cur || c->closing || c->tunnel)
        return NULL;
    return &stream_new(c, user)->base;
}

static void h1_reset_stream(struct pl_codec *base, struct pl_codec_stream *bs,
                            enum pl_reset_reason why)
{
    (void)why;
    struct h1_codec *c = C(base);
    struct h1_stream *s = (struct h1_stream *)bs;
    if (s != c->cur)
        return;
    s->reset = true; /* reset by its user: no callback */
    c->closing = true;
    stream_end(c, s);
}

static void h1_consumed(struct pl_codec *base, struct pl_codec_stream *s, size_t n)
{
    (void)base, (void)s, (void)n; /* HTTP/1 flow control is the connection's read switch */
}

static void h1_goaway(struct pl_codec *base)
{
    struct h1_codec *c = C(base);
    c->goaway = true;
    if (!c->cur || !c->server)
        c->closing = true;
}

static struct pl_buf *h1_output(struct pl_codec *base)
{
    return &C(base)->out;
}

static uint32_t h1_active_streams(const struct pl_codec *base)
{
    return C(base)->cur ? 1 : 0;
}

static void h1_destroy(struct pl_codec *base)
{
    struct h1_codec *c = C(base);
    if (c->cur)
        report_reset(c, c->cur, PL_RESET_CONNECTION_FAIL);
    reap(c);
    pl_buf_free(&c->out);
    free(c);
}

static const struct pl_codec_vtable h1_vt = {
    .name = "http1",
    .feed = h1_feed,
    .feed_eof = h1_feed_eof,
    .new_stream = h1_new_stream,
    .encode_head = h1_encode_head,
    .encode_data = h1_encode_data,
    .encode_trailers = h1_encode_trailers,
    .reset_stream = h1_reset_stream,
    .consumed = h1_consumed,
    .goaway = h1_goaway,
    .output = h1_output,
    .active_streams = h1_active_streams,
    .destroy = h1_destroy,
};

struct pl_codec *pl_h1_codec_new(bool server, const struct pl_h1_codec_opts *opts,
                                 const struct pl_codec_callbacks *cb, void *ctx)
{
    struct h1_codec *c = pl_calloc(1, sizeof(*c));
    c->base.vt = &h1_vt;
    c->base.cb = cb;
    c->base.ctx = ctx;
    c->server = server;
    c->opts = opts ? *opts : pl_h1_codec_opts_default();
    pl_h1_parser_init(&c->parser, server ? PL_H1_REQUEST : PL_H1_RESPONSE, &c->opts.limits);
    c->fields_cap = c->opts.limits.max_headers ? c->opts.limits.max_headers : 100;
    c->next_id = 1;
    pl_buf_init(&c->out);
    return &c->base;
}

void pl_h1_codec_free_stream(struct pl_codec *base, struct pl_codec_stream *bs)
{
    struct h1_codec *c = C(base);
    if (c->in_feed)
        return; /* the next feed reaps it */
    for (struct h1_stream **pp = &c->dead; *pp; pp = &(*pp)->next_dead) {
        if (&(*pp)->base == bs) {
            struct h1_stream *s = *pp;
            *pp = s->next_dead;
            stream_free(s);
            return;
        }
    }
}

bool pl_h1_codec_closing(const struct pl_codec *base)
{
    const struct h1_codec *c = C(base);
    return c->closing && !c->cur;
}

bool pl_h1_codec_idle(const struct pl_codec *base)
{
    const struct h1_codec *c = C(base);
    return !c->cur && !c->closing && !c->tunnel;
}

int pl_h1_codec_error_status(const struct pl_codec *base)
{
    return C(base)->error_status;
}
