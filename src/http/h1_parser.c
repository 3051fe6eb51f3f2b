#include "http/h1_parser.h"

#include <string.h>
#include <strings.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum {
    ST_HEAD,
    ST_LENGTH,
    ST_UNTIL_CLOSE,
    ST_CHUNK_SIZE,
    ST_EXT_BWS_SEMI, /* whitespace after the size: only ';' may follow */
    ST_EXT_BWS_NAME,
    ST_EXT_NAME,
    ST_EXT_AFTER_NAME,
    ST_EXT_BWS_VAL,
    ST_EXT_TOKEN,
    ST_EXT_QUOTED,
    ST_EXT_QUOTED_ESC,
    ST_EXT_AFTER_VAL,
    ST_CHUNK_SIZE_LF,
    ST_CHUNK_DATA,
    ST_CHUNK_DATA_CR,
    ST_CHUNK_DATA_LF,
    ST_TRAILERS,
    ST_ERROR,
};

#define MAX_CHUNK_LINE 4096
#define MAX_CHUNK_SIZE (UINT64_C(1) << 60)

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
 * / DIGIT / ALPHA, as a table: one lookup per byte of every field name. */
#define T(c) [c] = 1
static const uint8_t tchar[256] = {
    T('!'), T('#'), T('$'), T('%'), T('&'), T('\''), T('*'), T('+'), T('-'), T('.'), T('^'),
    T('_'), T('`'), T('|'), T('~'), T('0'), T('1'),  T('2'), T('3'), T('4'), T('5'), T('6'),
    T('7'), T('8'), T('9'), T('A'), T('B'), T('C'),  T('D'), T('E'), T('F'), T('G'), T('H'),
    T('I'), T('J'), T('K'), T('L'), T('M'), T('N'),  T('O'), T('P'), T('Q'), T('R'), T('S'),
    T('T'), T('U'), T('V'), T('W'), T('X'), T('Y'),  T('Z'), T('a'), T('b'), T('c'), T('d'),
    T('e'), T('f'), T('g'), T('h'), T('i'), T('j'),  T('k'), T('l'), T('m'), T('n'), T('o'),
    T('p'), T('q'), T('r'), T('s'), T('t'), T('u'),  T('v'), T('w'), T('x'), T('y'), T('z'),
};
#undef T

static inline bool is_tchar(unsigned char c)
{
    return tchar[c];
}

/* field-vchar / SP / HTAB / obs-text */
static inline bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

struct pl_h1_config pl_h1_config_default(void)
{
    return (struct pl_h1_config){.max_header_bytes = 60 * 1024, .max_headers = 100};
}

static void reset_scan(struct pl_h1_parser *p)
{
    p->scanned = 0;
    p->line_start = 0;
    p->skip = 0;
}

void pl_h1_parser_init(struct pl_h1_parser *p, enum pl_h1_kind kind, const struct pl_h1_config *cfg)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg ? *cfg : pl_h1_config_default();
    p->kind = kind;
    p->state = ST_HEAD;
}

void pl_h1_parser_set_request(struct pl_h1_parser *p, const char *method, size_t len)
{
    p->req_head = len == 4 && !memcmp(method, "HEAD", 4);
    p->req_connect = len == 7 && !memcmp(method, "CONNECT", 7);
}

bool pl_h1_parser_at_head(const struct pl_h1_parser *p)
{
    return p->state == ST_HEAD;
}

static int fail(struct pl_h1_parser *p, int err)
{
    p->state = ST_ERROR;
    return err;
}

/* One CR or LF at i while scanning a header block: returns 1 when the block ends there (*end set),
 * 0 to go on, or an error. A CR is checked against the byte after it once that byte is in. */
static inline int scan_hit(struct pl_h1_parser *p, const char *buf, size_t i, size_t lim,
                           bool skip_leading, size_t *end)
{
    if (buf[i] == '\r')
        return i + 1 < lim && buf[i + 1] != '\n' ? fail(p, PL_H1_E_BARE_CR) : 0;
    if (i == 0 || buf[i - 1] != '\r')
        return fail(p, PL_H1_E_BARE_LF);
    if (i - 1 == p->line_start) { /* empty line */
        if (skip_leading && p->line_start == p->skip) {
            p->skip = i + 1;
        } else {
            p->scanned = i + 1;
            *end = i + 1;
            return 1;
        }
    }
    p->line_start = i + 1;
    return 0;
}

/* Scans buf for the end of a header block (an empty line), from where the last call stopped.
 * Checks CRLF discipline on the way. Returns 1 and *end (just past the empty line), 0 for more,
 * or an error. skip_leading: empty lines before the first line are skipped (p->skip). Only CR
 * and LF need a look, so 16 bytes at a time are searched for them. */
static int scan_block(struct pl_h1_parser *p, const char *buf, size_t len, bool skip_leading,
                      size_t *end)
{
    size_t i = p->scanned;
    size_t lim = len < p->cfg.max_header_bytes ? len : p->cfg.max_header_bytes;
    if (i > 0 && i < lim && buf[i - 1] == '\r' && buf[i] != '\n')
        return fail(p, PL_H1_E_BARE_CR); /* a CR ended the previous call's bytes */
#ifdef __SSE2__
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    for (; i + 16 <= lim; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
        unsigned m =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, cr), _mm_cmpeq_epi8(x, lf)));
        while (m) {
            int r = scan_hit(p, buf, i + (size_t)__builtin_ctz(m), lim, skip_leading, end);
            if (r)
                return r;
            m &= m - 1;
        }
    }
#endif
    for (; i < lim; i++) {
        if (buf[i] == '\r' || buf[i] == '\n') {
            int r = scan_hit(p, buf, i, lim, skip_leading, end);
            if (r)
                return r;
        }
    }
    p->scanned = i;
    if (i >= p->cfg.max_header_bytes)
        return fail(p, PL_H1_E_HEADERS_TOO_LARGE);
    return 0;
}

/* Parses "HTTP/x.y" (exactly 8 bytes at s); returns 0 or an error. */
static int parse_version(const char *s, size_t n, int *minor)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) || s[6] != '.' || s[5] < '0' || s[5] > '9' || s[7] < '0' ||
        s[7] > '9')
        return PL_H1_E_VERSION;
    if (s[5] != '1')
        return PL_H1_E_VERSION_UNSUPPORTED;
    *minor = s[7] == '0' ? 0 : 1; /* 1.x with x > 1 is answered as 1.1 (RFC 9110 2.5) */
    return 0;
}

static int parse_request_line(const char *s, size_t n, struct pl_h1_msg *m)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ' ')
        return i < n && s[i] != ' ' ? PL_H1_E_METHOD
               : i == 0             ? PL_H1_E_METHOD
                                    : PL_H1_E_REQUEST_LINE;
    m->method = s;
    m->method_len = i;
    const char *last_sp = memrchr(s, ' ', n);
    if (last_sp == s + i)
        return PL_H1_E_REQUEST_LINE; /* no version (HTTP/0.9 style) */
    size_t t0 = i + 1, t1 = (size_t)(last_sp - s);
    if (t1 == t0 || t1 + 1 == n)
        return PL_H1_E_REQUEST_LINE;
    for (size_t j = t0; j < t1; j++) {
        unsigned char c = (unsigned char)s[j];
        if (c <= 0x20 || c == 0x7f)
            return PL_H1_E_TARGET;
    }
    m->target = s + t0;
    m->target_len = t1 - t0;
    return parse_version(last_sp + 1, n - t1 - 1, &m->version_minor);
}

static int parse_status_line(const char *s, size_t n, struct pl_h1_msg *m)
{
    if (n < 12 || s[8] != ' ') {
        int r = parse_version(s, n < 8 ? n : 8, &m->version_minor);
        return r ? r : PL_H1_E_STATUS_LINE;
    }
    int r = parse_version(s, 8, &m->version_minor);
    if (r)
        return r;
    int st = 0;
    for (int k = 9; k < 12; k++) {
        if (s[k] < '0' || s[k] > '9')
            return PL_H1_E_STATUS_LINE;
        st = st * 10 + (s[k] - '0');
    }
    if (st < 100)
        return PL_H1_E_STATUS_LINE;
    m->status = st;
    m->reason = s + n;
    m->reason_len = 0;
    if (n > 12) {
        if (s[12] != ' ')
            return PL_H1_E_STATUS_LINE;
        for (size_t j = 13; j < n; j++)
            if (!is_value_char((unsigned char)s[j]))
                return PL_H1_E_STATUS_LINE;
        m->reason = s + 13;
        m->reason_len = n - 13;
    }
    return 0;
}

/* Framing facts gathered from the fields of one head. */
struct facts {
    bool have_cl, have_te, chunked, chunked_last, other_coding, close, keep_alive, upgrade_tok;
    bool have_upgrade, expect_continue;
    uint64_t cl;
};

/* Case-insensitive equality of n >= 4 bytes of a field name (tchars only) with a lower-case
 * literal of letters and '-': OR-ing 0x20 into every byte folds case, and no other tchar folds
 * onto a letter or '-'. Compares whole words; the last one overlaps. */
static inline bool name_eq_lc(const char *name, const char *lc, size_t n)
{
    uint64_t a, b;
    if (n < 8) {
        uint32_t x, y, x2, y2;
        memcpy(&x, name, 4);
        memcpy(&y, lc, 4);
        memcpy(&x2, name + n - 4, 4);
        memcpy(&y2, lc + n - 4, 4);
        return ((x | 0x20202020u) == y) & ((x2 | 0x20202020u) == y2);
    }
    for (size_t i = 0; i + 8 < n; i += 8) {
        memcpy(&a, name + i, 8);
        memcpy(&b, lc + i, 8);
        if ((a | 0x2020202020202020ULL) != b)
            return false;
    }
    memcpy(&a, name + n - 8, 8);
    memcpy(&b, lc + n - 8, 8);
    return (a | 0x2020202020202020ULL) == b;
}

/* The field's name is the lower-case literal lit (any case). */
#define NAME_IS(h, lit)                                                                            \
    ((h)->name_len == sizeof(lit) - 1 && name_eq_lc((h)->name, lit, sizeof(lit) - 1))

/* Iterates comma-separated list elements: returns false at the end; empty elements skipped. */
static bool next_elem(const char **s, const char *end, const char **e, size_t *elen)
{
    while (*s < end) {
        const char *c = memchr(*s, ',', (size_t)(end - *s));
        const char *stop = c ? c : end;
        const char *a = *s, *b = stop;
        *s = c ? c + 1 : end;
        while (a < b && is_ows((unsigned char)*a))
            a++;
        while (b > a && is_ows((unsigned char)b[-1]))
            b--;
        if (a < b) {
            *e = a;
            *elen = (size_t)(b - a);
            return true;
        }
    }
    return false;
}

static int on_content_length(struct facts *f, const char *v, size_t n)
{
    if (n > 0 && n < 19) { /* the usual single value: digits only, no list to split */
        uint64_t x = 0;
        size_t j = 0;
        while (j < n && v[j] >= '0' && v[j] <= '9')
            x = x * 10 + (uint64_t)(v[j++] - '0');
        if (j == n) {
            if (f->have_cl && x != f->cl)
                return PL_H1_E_CL_CONFLICT;
            f->have_cl = true;
            f->cl = x;
            return 0;
        }
    }
    const char *s = v, *end = v + n, *e;
    size_t elen;
    bool any = false;
    while (next_elem(&s, end, &e, &elen)) {
        uint64_t x = 0;
        for (size_t j = 0; j < elen; j++) {
            if (e[j] < '0' || e[j] > '9')
                return PL_H1_E_CL_INVALID;
            if (x > (UINT64_C(1) << 62) / 10)
                return PL_H1_E_CL_INVALID;
            x = x * 10 + (uint64_t)(e[j] - '0');
        }
        if (f->have_cl && x != f->cl)
            return PL_H1_E_CL_CONFLICT;
        f->have_cl = true;
        f->cl = x;
        any = true;
    }
    return any ? 0 : PL_H1_E_CL_INVALID;
}

static int on_transfer_encoding(struct facts *f, const char *v, size_t n, bool request)
{
    const char *s = v, *end = v + n, *e;
    size_t elen;
    bool any = false;
    f->have_te = true;
    while (next_elem(&s, end, &e, &elen)) {
        size_t k = 0;
        while (k < elen && is_tchar((unsigned char)e[k]))
            k++;
        if (k == 0)
            return PL_H1_E_TE_INVALID;
        size_t j = k;
        while (j < elen && is_ows((unsigned char)e[j]))
            j++;
        if (j < elen && e[j] != ';')
            return PL_H1_E_TE_INVALID;
        if (f->chunked) {
            if (request)
                return PL_H1_E_TE_CHUNKED_NOT_LAST;
            f->chunked_last = false;
        }
        if (k == 7 && !strncasecmp(e, "chunked", 7)) {
            if (f->chunked)
                return PL_H1_E_TE_CHUNKED_TWICE;
            f->chunked = f->chunked_last = true;
        } else {
            f->other_coding = true;
        }
        any = true;
    }
    return any ? 0 : PL_H1_E_TE_INVALID;
}

/* Connection: one pass over the list for the three tokens that matter. */
static void on_connection(struct facts *f, const char *v, size_t n)
{
    if (n == 10 && name_eq_lc(v, "keep-alive", 10)) { /* the usual single token */
        f->keep_alive = true;
        return;
    }
    if (n == 5 && name_eq_lc(v, "close", 5)) {
        f->close = true;
        return;
    }
    const char *s = v, *end = v + n, *e;
    size_t elen;
    while (next_elem(&s, end, &e, &elen)) {
        if (elen == 5 && !strncasecmp(e, "close", 5))
            f->close = true;
        else if (elen == 10 && !strncasecmp(e, "keep-alive", 10))
            f->keep_alive = true;
        else if (elen == 7 && !strncasecmp(e, "upgrade", 7))
            f->upgrade_tok = true;
    }
}

static int on_header(struct facts *f, const struct pl_h1_header *h, bool request)
{
    switch (h->name_len) {
    case 14:
        if (NAME_IS(h, "content-length"))
            return on_content_length(f, h->value, h->value_len);
        break;
    case 17:
        if (NAME_IS(h, "transfer-encoding"))
            return on_transfer_encoding(f, h->value, h->value_len, request);
        break;
    case 10:
        if (NAME_IS(h, "connection"))
            on_connection(f, h->value, h->value_len);
        break;
    case 7:
        if (NAME_IS(h, "upgrade"))
            f->have_upgrade = true;
        break;
    case 6:
        if (NAME_IS(h, "expect") && h->value_len == 12 &&
            !strncasecmp(h->value, "100-continue", 12))
            f->expect_continue = true;
        break;
    }
    return 0;
}

/* Returns the first byte at or after v that is not a field-value byte (a field value ends at its
 * line's CR, which scan_block checked is there before end). */
static const char *value_end(const char *v, const char *end)
{
#ifdef __SSE2__
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f), tab = _mm_set1_epi8('\t');
    for (; end - v >= 16; v += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)v);
        __m128i ge_sp = _mm_cmpeq_epi8(_mm_max_epu8(x, sp), x); /* x >= 0x20, unsigned */
        __m128i ok =
            _mm_andnot_si128(_mm_cmpeq_epi8(x, del), _mm_or_si128(ge_sp, _mm_cmpeq_epi8(x, tab)));
        unsigned bad = ~(unsigned)_mm_movemask_epi8(ok) & 0xffff;
        if (bad)
            return v + __builtin_ctz(bad);
    }
#else
    (void)end;
#endif
    while (is_value_char((unsigned char)*v))
        v++;
    return v;
}

/* Returns the first byte at or after s that is not a tchar (a field name ends at its ':', or at
 * its line's CR, before end). Letters, digits and '-' (nearly every name) are checked 16 at a
 * time; the table decides the rest. */
static const char *name_end(const char *s, const char *end)
{
#ifdef __SSE2__
    const __m128i lo = _mm_set1_epi8('a' - 1), hi = _mm_set1_epi8('z' + 1);
    const __m128i d0 = _mm_set1_epi8('0' - 1), d9 = _mm_set1_epi8('9' + 1);
    const __m128i dash = _mm_set1_epi8('-'), fold = _mm_set1_epi8(0x20);
    for (; end - s >= 16; s += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
        __m128i l = _mm_or_si128(x, fold); /* signed compares: bytes >= 0x80 fail both */
        __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(l, lo), _mm_cmplt_epi8(l, hi));
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, d0), _mm_cmplt_epi8(x, d9));
        __m128i ok = _mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(x, dash));
        unsigned other = ~(unsigned)_mm_movemask_epi8(ok) & 0xffff;
        if (other) {
            s += __builtin_ctz(other);
            break;
        }
    }
#else
    (void)end;
#endif
    while (is_tchar((unsigned char)*s))
        s++;
    return s;
}

/* Parses header lines in [s, end): scan_block checked that each ends in CRLF, that CR and LF
 * appear nowhere else and that the block ends with an empty line. */
static int parse_fields(struct pl_h1_parser *p, const char *s, const char *end,
                        struct pl_h1_header *arr, size_t cap, size_t *count, struct facts *f,
                        bool request)
{
    size_t n = 0;
    while (*s != '\r') { /* a CR first is the empty line */
        if (is_ows((unsigned char)*s))
            return PL_H1_E_OBS_FOLD;
        const char *c = name_end(s, end);
        if (*c != ':') {
            if (*c == '\r')
                return PL_H1_E_HEADER_NO_COLON;
            return is_ows((unsigned char)*c) ? PL_H1_E_HEADER_NAME_WS : PL_H1_E_HEADER_NAME;
        }
        if (c == s)
            return PL_H1_E_HEADER_NAME;
        const char *v = c + 1;
        while (is_ows((unsigned char)*v))
            v++;
        const char *le = value_end(v, end);
        if (*le != '\r')
            return PL_H1_E_HEADER_VALUE;
        const char *ve = le;
        while (ve > v && is_ows((unsigned char)ve[-1]))
            ve--;
        if (n >= p->cfg.max_headers || (arr && n >= cap))
            return PL_H1_E_TOO_MANY_HEADERS;
        struct pl_h1_header h = {s, (size_t)(c - s), v, (size_t)(ve - v)};
        if (arr)
            arr[n] = h;
        n++;
        if (f) {
            int r = on_header(f, &h, request);
            if (r)
                return r;
        }
        s = le + 2;
    }
    *count = n;
    return 0;
}

static int finish_head(struct pl_h1_parser *p, struct pl_h1_msg *m, struct facts *f)
{
    bool req = p->kind == PL_H1_REQUEST;
    if (f->have_cl && f->have_te)
        return PL_H1_E_CL_AND_TE;
    if (f->have_te && m->version_minor == 0)
        return PL_H1_E_TE_HTTP10;
    if (req && f->have_te && f->other_coding)
        return PL_H1_E_TE_UNSUPPORTED;
    m->keep_alive = m->version_minor ? !f->close : (f->keep_alive && !f->close);
    m->body = PL_H1_BODY_NONE;
    m->content_length = 0;
    if (req) {
        m->upgrade = f->have_upgrade && f->upgrade_tok;
        m->expect_continue = f->expect_continue && m->version_minor == 1;
        m->connect = m->method_len == 7 && !memcmp(m->method, "CONNECT", 7);
        if (m->connect)
            m->body = PL_H1_BODY_NONE;
        else if (f->have_te)
            m->body = PL_H1_BODY_CHUNKED;
        else if (f->have_cl && f->cl > 0)
            m->body = PL_H1_BODY_LENGTH;
    } else {
        int st = m->status;
        m->upgrade = st == 101;
        if (st < 200 || st == 204 || st == 304 || p->req_head) {
            m->body = PL_H1_BODY_NONE;
        } else if (p->req_connect && st < 300) {
            m->connect = true;
        } else if (f->have_te) {
            m->body = f->chunked_last ? PL_H1_BODY_CHUNKED : PL_H1_BODY_UNTIL_CLOSE;
        } else if (f->have_cl) {
            m->body = f->cl > 0 ? PL_H1_BODY_LENGTH : PL_H1_BODY_NONE;
        } else {
            m->body = PL_H1_BODY_UNTIL_CLOSE;
        }
        if (m->body == PL_H1_BODY_UNTIL_CLOSE)
            m->keep_alive = false;
        if (st >= 200)
            p->req_head = p->req_connect = false;
    }
    if (m->body == PL_H1_BODY_LENGTH)
        m->content_length = f->cl;
    switch (m->body) {
    case PL_H1_BODY_NONE:
        p->state = ST_HEAD;
        break;
    case PL_H1_BODY_LENGTH:
        p->state = ST_LENGTH;
        p->remaining = m->content_length;
        break;
    case PL_H1_BODY_CHUNKED:
        p->state = ST_CHUNK_SIZE;
        p->remaining = 0;
        p->ext_len = 0;
        break;
    case PL_H1_BODY_UNTIL_CLOSE:
        p->state = ST_UNTIL_CLOSE;
        break;
    }
    return 0;
}

int pl_h1_parse_head(struct pl_h1_parser *p, const char *buf, size_t len, struct pl_h1_msg *m)
{
    if (p->state != ST_HEAD)
        return p->state == ST_ERROR ? PL_H1_E_STATE : fail(p, PL_H1_E_STATE);
    size_t end = 0;
    int r = scan_block(p, buf, len, p->kind == PL_H1_REQUEST, &end);
    if (r < 0)
        return r;
    if (r == 0)
        return PL_EAGAIN;
    const char *s = buf + p->skip;
    const char *lf = memchr(s, '\n', end - p->skip);
    size_t line_len = (size_t)(lf - 1 - s);
    m->num_headers = 0;
    m->method = m->target = m->reason = NULL;
    m->method_len = m->target_len = m->reason_len = 0;
    m->status = 0;
    m->expect_continue = m->upgrade = m->connect = false;
    if (p->kind == PL_H1_REQUEST)
        r = parse_request_line(s, line_len, m);
    else
        r = parse_status_line(s, line_len, m);
    if (r)
        return fail(p, r);
    struct facts f = {0};
    r = parse_fields(p, lf + 1, buf + end, m->headers, m->headers_cap, &m->num_headers, &f,
                     p->kind == PL_H1_REQUEST);
    if (!r)
        r = finish_head(p, m, &f);
    if (r)
        return fail(p, r);
    reset_scan(p);
    return (int)end;
}

/* Returns 1 if trailers are complete (*used set), 0 for more, or an error. */
static int parse_trailers(struct pl_h1_parser *p, const char *buf, size_t len,
                          struct pl_h1_body *out, size_t *used)
{
    size_t end = 0;
    int r = scan_block(p, buf, len, false, &end);
    if (r <= 0)
        return r;
    r = parse_fields(p, buf, buf + end, out->trailers, out->trailers_cap, &out->num_trailers, NULL,
                     false);
    if (r)
        return fail(p, r);
    reset_scan(p);
    *used = end;
    return 1;
}

/* One byte of a chunk-size line (size, extensions, CRLF). */
static int chunk_line_byte(struct pl_h1_parser *p, unsigned char c)
{
    if (++p->ext_len > MAX_CHUNK_LINE)
        return PL_H1_E_CHUNK_EXT;
    if (c == '\n')
        return p->state == ST_CHUNK_SIZE_LF ? 1 : PL_H1_E_BARE_LF;
    if (p->state == ST_CHUNK_SIZE_LF)
        return PL_H1_E_BARE_CR;
    switch (p->state) {
    case ST_CHUNK_SIZE: {
        int h = hexval(c);
        if (h >= 0) {
            if (p->remaining > (MAX_CHUNK_SIZE >> 4))
                return PL_H1_E_CHUNK_SIZE_OVERFLOW;
            p->remaining = (p->remaining << 4) | (uint64_t)h;
            return 0;
        }
        if (p->ext_len == 1)
            return PL_H1_E_CHUNK_SIZE;
        if (c == '\r')
            p->state = ST_CHUNK_SIZE_LF;
        else if (c == ';')
            p->state = ST_EXT_BWS_NAME;
        else if (is_ows(c))
            p->state = ST_EXT_BWS_SEMI;
        else
            return PL_H1_E_CHUNK_SIZE;
        return 0;
    }
    case ST_EXT_BWS_SEMI:
        if (c == ';')
            p->state = ST_EXT_BWS_NAME;
        else if (!is_ows(c))
            return PL_H1_E_CHUNK_EXT;
        return 0;
    case ST_EXT_BWS_NAME:
        if (is_tchar(c))
            p->state = ST_EXT_NAME;
        else if (!is_ows(c))
            return PL_H1_E_CHUNK_EXT;
        return 0;
    case ST_EXT_NAME:
    case ST_EXT_AFTER_NAME:
    case ST_EXT_TOKEN:
    case ST_EXT_AFTER_VAL:
        if (c == '\r')
            p->state = ST_CHUNK_SIZE_LF;
        else if (c == ';')
            p->state = ST_EXT_BWS_NAME;
        else if (is_ows(c))
            p->state = p->state == ST_EXT_NAME    ? ST_EXT_AFTER_NAME
                       : p->state == ST_EXT_TOKEN ? ST_EXT_AFTER_VAL
                                                  : p->state;
        else if (c == '=' && (p->state == ST_EXT_NAME || p->state == ST_EXT_AFTER_NAME))
            p->state = ST_EXT_BWS_VAL;
        else if (!is_tchar(c) || p->state == ST_EXT_AFTER_NAME || p->state == ST_EXT_AFTER_VAL)
            return PL_H1_E_CHUNK_EXT;
        return 0;
    case ST_EXT_BWS_VAL:
        if (c == '"')
            p->state = ST_EXT_QUOTED;
        else if (is_tchar(c))
            p->state = ST_EXT_TOKEN;
        else if (!is_ows(c))
            return PL_H1_E_CHUNK_EXT;
        return 0;
    case ST_EXT_QUOTED:
        if (c == '"')
            p->state = ST_EXT_AFTER_VAL;
        else if (c == '\\')
            p->state = ST_EXT_QUOTED_ESC;
        else if (!is_value_char(c))
            return PL_H1_E_CHUNK_EXT;
        return 0;
    case ST_EXT_QUOTED_ESC:
        if (!is_value_char(c))
            return PL_H1_E_CHUNK_EXT;
        p->state = ST_EXT_QUOTED;
        return 0;
    }
    return PL_H1_E_STATE;
}

int pl_h1_parse_body(struct pl_h1_parser *p, const char *buf, size_t len, struct pl_h1_body *out)
{
    out->data = buf;
    out->len = 0;
    out->done = false;
    out->num_trailers = 0;
    size_t i = 0;
    while (i < len || p->state == ST_HEAD) {
        switch (p->state) {
        case ST_ERROR:
            return PL_H1_E_STATE;
        case ST_HEAD: /* no body, or already complete */
            out->done = true;
            return (int)i;
        case ST_UNTIL_CLOSE:
            out->data = buf + i;
            out->len = len - i;
            return (int)len;
        case ST_LENGTH:
        case ST_CHUNK_DATA: {
            size_t take = len - i;
            if (take > p->remaining)
                take = (size_t)p->remaining;
            out->data = buf + i;
            out->len = take;
            p->remaining -= take;
            i += take;
            if (p->remaining == 0) {
                if (p->state == ST_LENGTH) {
                    p->state = ST_HEAD;
                    out->done = true;
                } else {
                    p->state = ST_CHUNK_DATA_CR;
                }
            }
            return (int)i;
        }
        case ST_CHUNK_DATA_CR:
            if (buf[i] != '\r')
                return fail(p, PL_H1_E_CHUNK_DATA);
            p->state = ST_CHUNK_DATA_LF;
            i++;
            break;
        case ST_CHUNK_DATA_LF:
            if (buf[i] != '\n')
                return fail(p, PL_H1_E_CHUNK_DATA);
            p->state = ST_CHUNK_SIZE;
            p->remaining = 0;
            p->ext_len = 0;
            i++;
            break;
        case ST_TRAILERS: {
            size_t used = 0;
            int r = parse_trailers(p, buf + i, len - i, out, &used);
            if (r < 0)
                return r;
            if (r == 0)
                return (int)i;
            p->state = ST_HEAD;
            out->done = true;
            return (int)(i + used);
        }
        default: {
            int r = chunk_line_byte(p, (unsigned char)buf[i]);
            if (r < 0)
                return fail(p, r);
            i++;
            if (r == 1) {
                if (p->remaining == 0) {
                    p->state = ST_TRAILERS;
                    reset_scan(p);
                } else {
                    p->state = ST_CHUNK_DATA;
                }
            }
            break;
        }
        }
    }
    return (int)i;
}

int pl_h1_parse_eof(struct pl_h1_parser *p, size_t buffered)
{
    if (p->state == ST_UNTIL_CLOSE) {
        p->state = ST_HEAD;
        return 0;
    }
    if (p->state == ST_HEAD && buffered == 0)
        return 0;
    return fail(p, PL_H1_E_TRUNCATED);
}

int pl_h1_error_status(int err)
{
    switch (err) {
    case PL_H1_E_HEADERS_TOO_LARGE:
    case PL_H1_E_TOO_MANY_HEADERS:
        return 431;
    case PL_H1_E_TE_UNSUPPORTED:
        return 501;
    case PL_H1_E_VERSION_UNSUPPORTED:
        return 505;
    default:
        return 400;
    }
}

const char *pl_h1_strerror(int err)
{
    switch (err) {
    case PL_H1_E_BARE_LF:
        return "bare LF line ending";
    case PL_H1_E_BARE_CR:
        return "CR not followed by LF";
    case PL_H1_E_OBS_FOLD:
        return "obsolete line folding";
    case PL_H1_E_HEADER_NAME:
        return "invalid header name";
    case PL_H1_E_HEADER_NAME_WS:
        return "whitespace between header name and colon";
    case PL_H1_E_HEADER_NO_COLON:
        return "header line without colon";
    case PL_H1_E_HEADER_VALUE:
        return "invalid character in header value";
    case PL_H1_E_METHOD:
        return "invalid method";
    case PL_H1_E_TARGET:
        return "invalid request target";
    case PL_H1_E_REQUEST_LINE:
        return "malformed request line";
    case PL_H1_E_VERSION:
        return "malformed HTTP version";
    case PL_H1_E_VERSION_UNSUPPORTED:
        return "HTTP version not supported";
    case PL_H1_E_STATUS_LINE:
        return "malformed status line";
    case PL_H1_E_HEADERS_TOO_LARGE:
        return "headers too large";
    case PL_H1_E_TOO_MANY_HEADERS:
        return "too many headers";
    case PL_H1_E_CL_AND_TE:
        return "both content-length and transfer-encoding";
    case PL_H1_E_CL_INVALID:
        return "invalid content-length";
    case PL_H1_E_CL_CONFLICT:
        return "conflicting content-length values";
    case PL_H1_E_TE_CHUNKED_NOT_LAST:
        return "chunked is not the final transfer-coding";
    case PL_H1_E_TE_CHUNKED_TWICE:
        return "chunked applied more than once";
    case PL_H1_E_TE_UNSUPPORTED:
        return "unsupported transfer-coding";
    case PL_H1_E_TE_INVALID:
        return "invalid transfer-encoding";
    case PL_H1_E_TE_HTTP10:
        return "transfer-encoding in HTTP/1.0 message";
    case PL_H1_E_CHUNK_SIZE:
        return "invalid chunk size";
    case PL_H1_E_CHUNK_SIZE_OVERFLOW:
        return "chunk size too large";
    case PL_H1_E_CHUNK_EXT:
        return "invalid chunk extension";
    case PL_H1_E_CHUNK_DATA:
        return "chunk data not followed by CRLF";
    case PL_H1_E_TRUNCATED:
        return "message truncated";
    case PL_H1_E_STATE:
        return "parser used in wrong state";
    default:
        return pl_strerror(err);
    }
}

int pl_h1_header_find(const struct pl_h1_header *h, size_t n, size_t start, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = start; i < n; i++)
        if (h[i].name_len == nl && !strncasecmp(h[i].name, name, nl))
            return (int)i;
    return -1;
}

bool pl_h1_list_has_token(const char *value, size_t len, const char *token)
{
    const char *s = value, *e;
    size_t elen, tl = strlen(token);
    while (next_elem(&s, value + len, &e, &elen))
        if (elen == tl && !strncasecmp(e, token, tl))
            return true;
    return false;
}
