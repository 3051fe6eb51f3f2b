/* HTTP/2 header blocks to and from struct pl_http_head (RFC 9113 8.2, 8.3). nghttp2 has already
 * checked what arrives (pseudo-header set and order, lower-case names, no connection-specific
 * fields, content-length syntax); this file stores it and applies the size and count limits.
 * What leaves is filtered here, since nghttp2 does not check outgoing fields. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/h2_codec_internal.h"

#define LIT(s) s, PL_STRLEN(s)

static bool eq(const char *a, size_t alen, const char *lit, size_t llen)
{
    return alen == llen && !memcmp(a, lit, llen);
}

/* memcpy for the short strings of a header field, without a call: overlapping word moves
 * (each byte of dst[0..n) written from the same byte of src, no byte outside either range) */
static inline void copy_short(char *dst, const char *src, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    } else {
        memcpy(dst, src, n);
    }
}

static bool usable(struct h2_stream *s)
{
    return s->base.user && !s->user_reset && !s->notified;
}

void pl_h2_begin_block(struct h2_codec *c, struct h2_stream *s, const nghttp2_frame *f)
{
    bool head = c->server ? f->headers.cat == NGHTTP2_HCAT_REQUEST
                          : f->headers.cat == NGHTTP2_HCAT_RESPONSE || !s->final_head_recv;
    s->block_bytes = s->block_count = 0;
    s->overflow = false;
    s->in_trailers = !head;
    if (head) {
        s->head = pl_arena_alloc(&s->arena, sizeof(*s->head));
        memset(s->head, 0, sizeof(*s->head));
        s->head->version = 20;
        s->head->content_length = -1;
    } else {
        s->trailers = pl_arena_alloc(&s->arena, sizeof(*s->trailers));
        memset(s->trailers, 0, sizeof(*s->trailers));
    }
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static void set_pseudo(struct pl_http_head *h, const char *n, size_t nlen, const char *v,
                       uint32_t vlen)
{
    if (eq(n, nlen, LIT(":method")))
        h->method = v, h->method_len = vlen;
    else if (eq(n, nlen, LIT(":scheme")))
        h->scheme = v, h->scheme_len = vlen;
    else if (eq(n, nlen, LIT(":authority")))
        h->authority = v, h->authority_len = vlen;
    else if (eq(n, nlen, LIT(":path")))
        h->path = v, h->path_len = vlen;
    else if (eq(n, nlen, LIT(":protocol")))
        h->protocol = v, h->protocol_len = vlen;
    else if (eq(n, nlen, LIT(":status")))
        h->status = vlen == 3 && is_digit(v[0]) && is_digit(v[1]) && is_digit(v[2])
                        ? (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0')
                        : -1; /* malformed: the response is refused (pl_h2_end_block) */
}

void pl_h2_add_header(struct h2_codec *c, struct h2_stream *s, const char *name, size_t nlen,
                      const char *value, size_t vlen)
{
    if (s->overflow || (!s->head && !s->trailers))
        return;
    s->block_bytes += (uint32_t)(nlen + vlen);
    s->block_count += nlen && name[0] != ':';
    if (s->block_bytes > c->set.max_header_list_bytes ||
        s->block_count > c->set.max_headers_count) {
        s->overflow = true;
        c->stats.header_overflow++;
        return;
    }
    /* One allocation per field: "name\0value\0". */
    char *p = pl_arena_alloc(&s->arena, nlen + vlen + 2);
    copy_short(p, name, nlen);
    p[nlen] = '\0';
    char *v = p + nlen + 1;
    copy_short(v, value, vlen);
    v[vlen] = '\0';
    if (s->in_trailers) {
        pl_headers_add_ref(s->trailers, &s->arena, p, nlen, v, vlen);
        return;
    }
    struct pl_http_head *h = s->head;
    if (nlen && p[0] == ':') {
        set_pseudo(h, p, nlen, v, (uint32_t)vlen);
        return;
    }
    if (eq(p, nlen, LIT("content-length"))) {
        int64_t n = 0; /* nghttp2 checked: digits only, one value */
        for (size_t i = 0; i < vlen && n < INT64_MAX / 10 - 10; i++)
            n = n * 10 + (v[i] - '0');
        h->content_length = n;
    }
    pl_headers_add_ref(&h->headers, &s->arena, p, nlen, v, vlen);
}

/* RFC 9113 8.2.3: cookie fields may be split; HTTP/1 and filters expect one "; "-joined one. */
static void merge_cookies(struct h2_stream *s)
{
    struct pl_headers *hs = &s->head->headers;
    size_t n = 0, len = 0;
    for (uint32_t i = 0; i < hs->n; i++)
        if (eq(hs->v[i].name, hs->v[i].name_len, LIT("cookie")))
            n++, len += hs->v[i].value_len + 2;
    if (n < 2)
        return;
    char *v = pl_arena_alloc(&s->arena, len + 1), *w = v;
    uint32_t first = UINT32_MAX, out = 0;
    for (uint32_t i = 0; i < hs->n; i++) {
        struct pl_header *f = &hs->v[i];
        if (!eq(f->name, f->name_len, LIT("cookie"))) {
            hs->v[out++] = *f;
            continue;
        }
        if (w != v)
            memcpy(w, "; ", 2), w += 2;
        memcpy(w, f->value, f->value_len);
        w += f->value_len;
        if (first == UINT32_MAX)
            first = out, hs->v[out++] = *f;
    }
    *w = '\0';
    hs->n = out;
    hs->v[first].value = v;
    hs->v[first].value_len = (uint32_t)(w - v);
}

static void refuse_oversized(struct h2_codec *c, struct h2_stream *s, bool end_stream)
{
    int32_t id = (int32_t)s->base.id;
    if (c->server && !s->in_trailers) {
        /* RFC 9113 10.5.1: the request never reaches the HCM; answer 431 ourselves. */
        static const nghttp2_nv st[] = {
            {(uint8_t *)":status", (uint8_t *)"431", 7, 3,
             NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}};
        s->final_head_sent = true;
        /* The rest of the upload is not wanted: RST_STREAM(NO_ERROR) once the 431 is out
         * (submitted now, it would cancel the response). */
        s->rst_after_head = !end_stream;
        nghttp2_submit_response(c->ng, id, st, 1, NULL);
        return;
    }
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
}

void pl_h2_end_block(struct h2_codec *c, struct h2_stream *s, bool end_stream)
{
    const struct pl_codec_callbacks *cb = c->base.cb;
    if (s->overflow) {
        refuse_oversized(c, s, end_stream);
        return;
    }
    if (s->in_trailers) {
        c->stats.trailers++;
        s->remote_end = true;
        if (usable(s) && cb->on_trailers &&
            cb->on_trailers(c->base.ctx, &s->base, s->base.user, s->trailers))
            c->paused = true;
        return;
    }
    struct pl_http_head *h = s->head;
    if (!h)
        return;
    merge_cookies(s);
    if (!h->authority) { /* as the HTTP/1 codec does: Host becomes the authority */
        const struct pl_header *host = pl_headers_get_lit(&h->headers, "host");
        if (host) {
            h->authority = host->value, h->authority_len = host->value_len;
            pl_headers_remove(&h->headers, LIT("host"));
        }
    }
    /* a response's :status is three digits, 100 to 999 (RFC 9110 15): anything else, or none,
     * makes it malformed (RFC 9113 8.1.1), whatever nghttp2 let through */
    if (!c->server && (h->status < 100 || h->status > 999)) {
        c->stats.rx_messaging_error++;
        s->proto_err = true;
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, (int32_t)s->base.id,
                                  NGHTTP2_PROTOCOL_ERROR);
        return;
    }
    bool informational = !c->server && h->status >= 100 && h->status < 200;
    if (c->server) {
        s->base.user = cb->on_new_stream ? cb->on_new_stream(c->base.ctx, &s->base) : NULL;
        if (!s->base.user) {
            c->stats.streams_refused++;
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, (int32_t)s->base.id,
                                      NGHTTP2_REFUSED_STREAM);
            return;
        }
    } else if (!informational) {
        s->final_head_recv = true;
    }
    if (end_stream)
        s->remote_end = true;
    if (usable(s) && cb->on_head &&
        cb->on_head(c->base.ctx, &s->base, s->base.user, h, end_stream, informational))
        c->paused = true;
}

/* ---- outgoing ---- */

/* The outgoing field array is scratch between a build and the submit that follows it (nghttp2
 * copies the fields), so codecs share a per-thread one; a codec holds its own only for a head
 * with more fields than that. */
#define NV_SHARED 128
static __thread nghttp2_nv nv_shared[NV_SHARED];

static void grow_nv(struct h2_codec *c, size_t n)
{
    if (n <= NV_SHARED) {
        c->nv = nv_shared;
        return;
    }
    if (n > c->nv_cap) {
        c->nv_cap = n * 2;
        c->nv_own = pl_realloc(c->nv_own, c->nv_cap * sizeof(*c->nv_own));
    }
    c->nv = c->nv_own;
}

static void put(nghttp2_nv *nv, size_t *n, const char *name, size_t nlen, const char *value,
                size_t vlen, uint8_t flags)
{
    nv[(*n)++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, flags};
}

/* RFC 9113 8.2.2: connection-specific fields are not forwarded; TE only as "trailers". */
static bool connection_specific(const struct pl_header *f)
{
    const char *n = f->name;
    switch (f->name_len) {
    case 2:
        return pl_header_name_eq(n, 2, LIT("te")) &&
               !pl_header_name_eq(f->value, f->value_len, LIT("trailers"));
    case 7:
        return pl_header_name_eq(n, 7, LIT("upgrade"));
    case 10:
        return pl_header_name_eq(n, 10, LIT("connection")) ||
               pl_header_name_eq(n, 10, LIT("keep-alive"));
    case 16:
        return pl_header_name_eq(n, 16, LIT("proxy-connection"));
    case 17:
        return pl_header_name_eq(n, 17, LIT("transfer-encoding"));
    default:
        return false;
    }
}

/* RFC 9110 token characters. Upper case is accepted: nghttp2 lower-cases its copy of every
 * name it is given (nghttp2_nv_array_copy), as HTTP/2 requires. */
static const uint8_t tchar[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, /* 0x70 */
};

static bool name_ok(const char *n, uint32_t len)
{
    const uint8_t *p = (const uint8_t *)n;
    unsigned ok = len != 0;
    uint32_t i = 0;
    for (; i + 4 <= len; i += 4)
        ok &= tchar[p[i]] & tchar[p[i + 1]] & tchar[p[i + 2]] & tchar[p[i + 3]];
    for (; i < len; i++)
        ok &= tchar[p[i]];
    return ok;
}

static bool value_bytes_ok(const uint8_t *p, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return false;
    return true;
}

/* True if one of the 8 bytes of w is below 0x20 or a DEL (exact: no false positive). */
static bool suspect(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x = w ^ (ones * 0x7f);
    return ((w - ones * 0x20) & ~w & highs) | ((x - ones) & ~x & highs);
}

/* A field value nghttp2 and its peers accept (RFC 9113 8.2.1): no control character but HTAB
 * (so no NUL, CR or LF), no DEL. Eight bytes at a time (the last eight overlap), byte by byte
 * only when a word is suspect. */
static bool value_ok(const char *v, uint32_t len)
{
    const uint8_t *p = (const uint8_t *)v;
    if (len < 8)
        return value_bytes_ok(p, len);
    uint64_t w;
    for (uint32_t i = 0; i + 8 < len; i += 8) {
        memcpy(&w, p + i, 8);
        if (suspect(w))
            return value_bytes_ok(p, len);
    }
    memcpy(&w, p + len - 8, 8);
    return !suspect(w) || value_bytes_ok(p, len);
}

/* Appends the fields of hs that may go on the wire. Leading and trailing whitespace is not
 * part of a value (RFC 9110 5.5), and RFC 9113 peers refuse it: it is left out. */
static size_t put_fields(nghttp2_nv *nv, size_t n, const struct pl_headers *hs, bool drop_host)
{
    for (uint32_t i = 0; i < hs->n; i++) {
        const struct pl_header *f = &hs->v[i];
        uint8_t flags;
        const char *name = pl_h2_known_name(f->name, f->name_len, &flags);
        if (name) { /* lower-case: only the names marked hop-by-hop need a look */
            if ((flags & PL_H2_NV_HOP) &&
                (connection_specific(f) || (drop_host && f->name_len == 4)))
                continue;
            flags &= (uint8_t)~PL_H2_NV_HOP;
        } else if (!f->name_len || f->name[0] == ':' || connection_specific(f) ||
                   (drop_host && f->name_len == 4 && pl_header_name_eq(f->name, 4, LIT("host"))) ||
                   !name_ok(f->name, f->name_len)) {
            continue;
        }
        const char *v = f->value;
        uint32_t vl = f->value_len;
        while (vl && (v[0] == ' ' || v[0] == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (!value_ok(v, vl))
            continue; /* never put a field on the wire that a peer must reject */
        put(nv, &n, name ? name : f->name, f->name_len, v, vl, flags);
    }
    return n;
}

size_t pl_h2_build_head(struct h2_codec *c, struct h2_stream *s, const struct pl_http_head *h)
{
    grow_nv(c, (size_t)h->headers.n + 6);
    nghttp2_nv *nv = c->nv;
    size_t n = 0;
    if (c->server) {
        int code = h->status >= 100 && h->status < 1000 ? h->status : 500;
        char *st = pl_arena_alloc(&s->arena, 4);
        st[0] = (char)('0' + code / 100), st[1] = (char)('0' + code / 10 % 10);
        st[2] = (char)('0' + code % 10), st[3] = '\0';
        put(nv, &n, LIT(":status"), st, 3, NGHTTP2_NV_FLAG_NO_COPY_NAME);
        return put_fields(nv, n, &h->headers, false);
    }
    const char *auth = h->authority;
    size_t auth_len = h->authority_len;
    if (!auth) {
        const struct pl_header *host = pl_headers_get_lit(&h->headers, "host");
        if (host)
            auth = host->value, auth_len = host->value_len;
    }
    bool connect = h->method && eq(h->method, h->method_len, LIT("CONNECT")) && !h->protocol;
    if (h->method)
        put(nv, &n, LIT(":method"), h->method, h->method_len, NGHTTP2_NV_FLAG_NO_COPY_NAME);
    if (h->scheme && !connect)
        put(nv, &n, LIT(":scheme"), h->scheme, h->scheme_len, NGHTTP2_NV_FLAG_NO_COPY_NAME);
    if (auth)
        put(nv, &n, LIT(":authority"), auth, auth_len, NGHTTP2_NV_FLAG_NO_COPY_NAME);
    if (h->path && !connect)
        put(nv, &n, LIT(":path"), h->path, h->path_len, NGHTTP2_NV_FLAG_NO_COPY_NAME);
    if (h->protocol)
        put(nv, &n, LIT(":protocol"), h->protocol, h->protocol_len, NGHTTP2_NV_FLAG_NO_COPY_NAME);
    return put_fields(nv, n, &h->headers, true);
}

void pl_h2_build_trailers(struct h2_codec *c, struct h2_stream *s, const struct pl_headers *t)
{
    grow_nv(c, (size_t)t->n + 1);
    size_t n = put_fields(c->nv, 0, t, false);
    /* Trailers leave after the body, once the caller's strings may be gone: copy them. */
    nghttp2_nv *nv = pl_arena_alloc(&s->arena, (n ? n : 1) * sizeof(*nv));
    for (size_t i = 0; i < n; i++) {
        nghttp2_nv *f = &c->nv[i];
        nv[i] = *f;
        if (!(f->flags & NGHTTP2_NV_FLAG_NO_COPY_NAME)) /* else a static string */
            nv[i].name = (uint8_t *)pl_arena_strndup(&s->arena, (const char *)f->name, f->namelen);
        nv[i].value = (uint8_t *)pl_arena_strndup(&s->arena, (const char *)f->value, f->valuelen);
    }
    s->tx_trailers = n ? nv : NULL; /* no fields left: END_STREAM on the last DATA instead */
    s->n_tx_trailers = n;
}
