/* Request matching: virtual host by :authority, then the first route whose path, headers, query
 * parameters and gRPC condition all match. Allocation-free apart from the per-thread cache. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/router_internal.h"

/* ---- per-thread cache: PCRE2 match data and a scratch buffer ---- */

struct tcache {
    pcre2_match_data *md;
    uint32_t pairs;
    char *scratch;
    size_t scratch_cap;
};

static __thread struct tcache *tc;
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;

static void tc_destroy(void *p)
{
    struct tcache *c = p;
    if (!c)
        return;
    pcre2_match_data_free(c->md);
    free(c->scratch);
    free(c);
}

static void tc_key_init(void)
{
    if (pthread_key_create(&tc_key, tc_destroy) != 0)
        pl_die("pthread_key_create failed");
}

static struct tcache *tc_get(void)
{
    if (!tc) {
        pthread_once(&tc_once, tc_key_init);
        tc = pl_calloc(1, sizeof(*tc));
        pthread_setspecific(tc_key, tc);
    }
    return tc;
}

void pl_router_thread_cleanup(void)
{
    if (!tc)
        return;
    pthread_setspecific(tc_key, NULL);
    tc_destroy(tc);
    tc = NULL;
}

pcre2_match_data *pl_router_md(const struct pl_route_table *t)
{
    struct tcache *c = tc_get();
    uint32_t need = t->max_cap + 1;
    if (need < 16)
        need = 16;
    if (c->pairs < need) {
        pcre2_match_data_free(c->md);
        c->md = pcre2_match_data_create(need, NULL);
        if (!c->md)
            pl_die("out of memory");
        c->pairs = need;
    }
    return c->md;
}

char *pl_router_scratch(size_t n)
{
    struct tcache *c = tc_get();
    if (c->scratch_cap < n) {
        size_t cap = c->scratch_cap ? c->scratch_cap : 256;
        while (cap < n)
            cap *= 2;
        free(c->scratch);
        c->scratch = pl_malloc(cap);
        c->scratch_cap = cap;
    }
    return c->scratch;
}

/* ---- primitive matchers ---- */

bool pl_router_re_full(const struct pl_route_table *t, const struct rt_regex *re, const char *s,
                       size_t len)
{
    int rc = pcre2_match(re->code, (PCRE2_SPTR)(s ? s : ""), len, 0, 0, pl_router_md(t), t->mctx);
    return rc >= 0; /* 0: matched, ovector too small; limits and errors are negative */
}

static bool ieq(const char *a, const char *b, size_t n, bool icase)
{
    return icase ? strncasecmp(a, b, n) == 0 : memcmp(a, b, n) == 0;
}

bool pl_router_strmatch(const struct pl_route_table *t, const struct rt_strmatch *m, const char *s,
                        size_t len)
{
    switch (m->kind) {
    case SM_EXACT:
        return len == m->len && ieq(s, m->s, len, m->icase);
    case SM_PREFIX:
        return len >= m->len && ieq(s, m->s, m->len, m->icase);
    case SM_SUFFIX:
        return len >= m->len && ieq(s + len - m->len, m->s, m->len, m->icase);
    case SM_CONTAINS:
        if (m->len == 0)
            return true;
        for (size_t i = 0; i + m->len <= len; i++)
            if (ieq(s + i, m->s, m->len, m->icase))
                return true;
        return false;
    case SM_REGEX:
        return pl_router_re_full(t, &m->re, s, len);
    default:
        return false;
    }
}

size_t pl_router_path_len(const char *p, size_t len)
{
    /* eight bytes at a time until a word holds a '?' or '#' (exact: (x - ones) & ~x & highs is
     * non-zero iff a byte of x is zero), then byte by byte from that word on */
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t q = w ^ (ones * '?'), h = w ^ (ones * '#');
        if (((q - ones) & ~q & highs) | ((h - ones) & ~h & highs))
            break;
    }
    for (; i < len; i++)
        if (p[i] == '?' || p[i] == '#')
            return i;
    return len;
}

bool pl_router_header(const struct pl_http_head *h, uint8_t pseudo, const char *name, size_t len,
                      const char **v, size_t *vlen)
{
    const char *pv = NULL;
    uint32_t pl = 0;
    switch (pseudo) {
    case PSEUDO_METHOD:
        pv = h->method, pl = h->method_len;
        break;
    case PSEUDO_AUTHORITY:
        pv = h->authority, pl = h->authority_len;
        break;
    case PSEUDO_PATH:
        pv = h->path, pl = h->path_len;
        break;
    case PSEUDO_SCHEME:
        pv = h->scheme, pl = h->scheme_len;
        break;
    default: {
        const struct pl_header *f = pl_headers_get(&h->headers, name, len);
        if (f) {
            *v = f->value, *vlen = f->value_len;
            return true;
        }
        /* HTTP/1 Host becomes the head's :authority (Envoy keeps only :authority) */
        if (len == 4 && !memcmp(name, "host", 4) && h->authority) {
            *v = h->authority, *vlen = h->authority_len;
            return true;
        }
        return false;
    }
    }
    if (!pv)
        return false;
    *v = pv, *vlen = pl;
    return true;
}

/* As pl_router_header, but repeated headers are joined with "," (Envoy's
 * getAllOfHeaderAsString); the joined value lives in the per-thread scratch buffer. */
static bool header_all(const struct pl_http_head *h, uint8_t pseudo, const char *name, size_t len,
                       const char **v, size_t *vlen)
{
    if (!pl_router_header(h, pseudo, name, len, v, vlen))
        return false;
    if (pseudo != PSEUDO_NONE)
        return true;
    size_t total = 0, count = 0;
    for (uint32_t i = 0; i < h->headers.n; i++)
        if (h->headers.v[i].name_len == len && !memcmp(h->headers.v[i].name, name, len))
            total += h->headers.v[i].value_len + 1, count++;
    if (count < 2)
        return true;
    char *s = pl_router_scratch(total), *w = s;
    for (uint32_t i = 0; i < h->headers.n; i++) {
        const struct pl_header *f = &h->headers.v[i];
        if (f->name_len == len && !memcmp(f->name, name, len)) {
            if (w != s)
                *w++ = ',';
            memcpy(w, f->value, f->value_len);
            w += f->value_len;
        }
    }
    *v = s, *vlen = (size_t)(w - s);
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (at least n bytes); returns the decoded length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[w++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[w++] = s[i];
        }
    }
    return w;
}

/* Compares a percent-encoded name with a plain one, decoding on the fly. */
static bool pct_eq(const char *s, size_t n, const char *plain, size_t pn)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++, k++) {
        char ch = s[i];
        int hi, lo;
        if (ch == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (k >= pn || plain[k] != ch)
            return false;
    }
    return k == pn;
}

/* Finds the first query parameter named name (decoded); its raw value is in *v. */
bool pl_router_query_param(const char *path, size_t len, const char *name, size_t nlen,
                           bool decode_name, const char **v, size_t *vlen)
{
    const char *q = memchr(path, '?', len);
    if (!q)
        return false;
    const char *end = path + len, *hash = memchr(q, '#', (size_t)(end - q));
    if (hash)
        end = hash;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq ? eq : pe;
        bool same = decode_name ? pct_eq(p, (size_t)(ne - p), name, nlen)
                                : ((size_t)(ne - p) == nlen && !memcmp(p, name, nlen));
        if (same) {
            *v = eq ? eq + 1 : pe;
            *vlen = eq ? (size_t)(pe - eq - 1) : 0;
            return true;
        }
        p = pe + 1;
    }
    return false;
}

/* ---- route and virtual host selection ---- */

static bool header_ok(const struct pl_route_table *t, const struct rt_hdrmatch *hm,
                      const struct pl_http_head *h)
{
    const char *v = "";
    size_t n = 0;
    bool present = header_all(h, hm->pseudo, hm->name, hm->name_len, &v, &n);
    if (hm->is_present)
        return (present == hm->present) != hm->invert;
    if (!present) {
        if (!hm->missing_as_empty)
            return false;
        v = "", n = 0;
    }
    bool m = hm->any_value || pl_router_strmatch(t, &hm->sm, v, n);
    return m != hm->invert;
}

static bool query_ok(const struct pl_route_table *t, const struct rt_qpmatch *qm,
                     const struct pl_http_head *h)
{
    const char *v;
    size_t n;
    if (!h->path ||
        !pl_router_query_param(h->path, h->path_len, qm->name, qm->name_len, true, &v, &n))
        return false;
    if (qm->has_present)
        return qm->present;
    if (!qm->has_sm)
        return true;
    char *d = pl_router_scratch(n + 1);
    n = pct_decode(v, n, d);
    return pl_router_strmatch(t, &qm->sm, d, n);
}

static bool path_ok(const struct pl_route_table *t, const struct pl_route *r, const char *p,
                    size_t n)
{
    bool ic = !r->case_sensitive;
    switch (r->path_kind) {
    case PATH_PREFIX:
        return n >= r->path_len && ieq(p, r->path, r->path_len, ic);
    case PATH_EXACT:
        return n == r->path_len && ieq(p, r->path, n, ic);
    case PATH_SEP_PREFIX:
        return n >= r->path_len && ieq(p, r->path, r->path_len, ic) &&
               (n == r->path_len || p[r->path_len] == '/');
    case PATH_REGEX:
        return pl_router_re_full(t, &r->x->path_re, p, n);
    default:
        return false;
    }
}

static bool route_ok(const struct pl_route_table *t, const struct pl_route *r,
                     const struct pl_http_head *h, size_t plen)
{
    if (!h->path || !path_ok(t, r, h->path, plen))
        return false;
    const struct rt_route_x *x = r->x;
    if (x) {
        for (size_t i = 0; i < x->nhm; i++)
            if (!header_ok(t, &x->hm[i], h))
                return false;
        for (size_t i = 0; i < x->nqm; i++)
            if (!query_ok(t, &x->qm[i], h))
                return false;
    }
    return !r->grpc || pl_router_is_grpc(h);
}

bool pl_router_is_grpc(const struct pl_http_head *h)
{
    const struct pl_header *f = pl_headers_get_lit(&h->headers, "content-type");
    static const char g[] = "application/grpc";
    if (!f || f->value_len < sizeof(g) - 1 || memcmp(f->value, g, sizeof(g) - 1))
        return false;
    return f->value_len == sizeof(g) - 1 || f->value[sizeof(g) - 1] == '+';
}

/* Envoy's HeaderUtility::getPortStart: the ':' before a port, or len when there is none. */
static size_t port_start(const char *h, size_t n)
{
    const char *colon = NULL, *bracket = NULL;
    for (size_t i = n; i-- > 0;) {
        if (!colon && h[i] == ':')
            colon = h + i;
        if (!bracket && h[i] == ']')
            bracket = h + i;
    }
    if (!colon || (bracket && bracket > colon))
        return n;
    return (size_t)(colon - h);
}

static const struct pl_route_vhost *find_vhost(const struct pl_route_table *t,
                                               const struct pl_http_head *h)
{
    if (!t->exact.n && !t->suffix.n && !t->prefix.n)
        return t->any;
    if (!h->authority)
        return NULL;
    const char *host = h->authority;
    size_t n = h->authority_len;
    if (t->ignore_port)
        n = port_start(host, n);
    const struct pl_route_vhost *vh = pl_router_dmap_get(&t->exact, host, n);
    if (vh)
        return vh;
    for (size_t i = 0; i < t->suffix.nlens; i++) {
        size_t l = t->suffix.lens[i];
        if (l < n && (vh = pl_router_dmap_get(&t->suffix, host + n - l, l)))
            return vh;
    }
    for (size_t i = 0; i < t->prefix.nlens; i++) {
        size_t l = t->prefix.lens[i];
        if (l < n && (vh = pl_router_dmap_get(&t->prefix, host, l)))
            return vh;
    }
    return t->any;
}

int pl_router_match(const struct pl_route_table *t, const struct pl_http_head *head,
                    const struct pl_route_ctx *ctx, uint64_t random, struct pl_route_match *m)
{
    (void)ctx;
    memset(m, 0, sizeof(*m));
    m->table = t;
    const struct pl_route_vhost *vh = find_vhost(t, head);
    if (!vh)
        return PL_ENOENT;
    m->vhost = vh;
    size_t plen = head->path ? pl_router_path_len(head->path, head->path_len) : 0;
    const struct pl_route *r = NULL;
    for (size_t i = 0; i < vh->nroutes && !r; i++)
        if (route_ok(t, &vh->routes[i], head, plen))
            r = &vh->routes[i];
    if (!r)
        return PL_ENOENT;
    m->route = r;
    m->info = r->info;
    m->cluster = r->cluster, m->cluster_len = r->cluster_len;
    const struct rt_route_x *x = r->x;
    if (!x || x->info.kind != PL_ROUTE_CLUSTER)
        return 0;
    const char *hname = x->cluster_header;
    size_t hlen = x->cluster_header_len;
    if (x->nwcs) {
        uint64_t sel = random % x->total_weight, end = 0;
        for (size_t i = 0; i < x->nwcs; i++) {
            end += x->wcs[i].weight;
            if (sel < end) {
                m->wc = &x->wcs[i];
                break;
            }
        }
        m->cluster = m->wc->name, m->cluster_len = m->wc->name_len;
        hname = m->wc->cluster_header, hlen = m->wc->cluster_header_len;
    }
    if (hname) {
        /* an untrusted header: only its first value is used, as in Envoy */
        const char *v;
        size_t n;
        if (pl_router_header(head, PSEUDO_NONE, hname, hlen, &v, &n))
            m->cluster = v, m->cluster_len = n;
        else
            m->cluster = "", m->cluster_len = 0;
    }
    return 0;
}
