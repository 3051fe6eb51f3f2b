/* Envoy's command operators: parsing a format string at config time, evaluating at log time. */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http/access_log_internal.h"

enum op {
    OP_LIT = 0,
    OP_START_TIME,
    OP_REQ,
    OP_RESP,
    OP_TRAILER,
    OP_PROTOCOL,
    OP_RESPONSE_CODE,
    OP_RESPONSE_CODE_DETAILS,
    OP_RESPONSE_FLAGS,
    OP_BYTES_RECEIVED,
    OP_BYTES_SENT,
    OP_DURATION,
    OP_REQUEST_DURATION,
    OP_RESPONSE_DURATION,
    OP_RESPONSE_TX_DURATION,
    OP_UPSTREAM_HOST,
    OP_UPSTREAM_CLUSTER,
    OP_UPSTREAM_LOCAL_ADDRESS,
    OP_UPSTREAM_LOCAL_ADDRESS_NOPORT,
    OP_UPSTREAM_TRANSPORT_FAILURE_REASON,
    OP_DS_REMOTE,
    OP_DS_REMOTE_NOPORT,
    OP_DS_LOCAL,
    OP_DS_LOCAL_NOPORT,
    OP_ROUTE_NAME,
    OP_CONNECTION_TERMINATION_DETAILS,
    OP_HOSTNAME,
    OP_CONNECTION_ID,
    OP_STREAM_ID,
};

enum { P_NONE, P_OPT, P_REQ }; /* parameter: none, optional, required */

static const struct opdef {
    const char *name;
    uint8_t op, param;
    bool num;
} opdefs[] = {
    {"START_TIME", OP_START_TIME, P_OPT, false},
    {"REQ", OP_REQ, P_REQ, false},
    {"RESP", OP_RESP, P_REQ, false},
    {"TRAILER", OP_TRAILER, P_REQ, false},
    {"PROTOCOL", OP_PROTOCOL, P_NONE, false},
    {"RESPONSE_CODE", OP_RESPONSE_CODE, P_NONE, true},
    {"RESPONSE_CODE_DETAILS", OP_RESPONSE_CODE_DETAILS, P_NONE, false},
    {"RESPONSE_FLAGS", OP_RESPONSE_FLAGS, P_NONE, false},
    {"BYTES_RECEIVED", OP_BYTES_RECEIVED, P_NONE, true},
    {"BYTES_SENT", OP_BYTES_SENT, P_NONE, true},
    {"DURATION", OP_DURATION, P_NONE, true},
    {"REQUEST_DURATION", OP_REQUEST_DURATION, P_NONE, true},
    {"RESPONSE_DURATION", OP_RESPONSE_DURATION, P_NONE, true},
    {"RESPONSE_TX_DURATION", OP_RESPONSE_TX_DURATION, P_NONE, true},
    {"UPSTREAM_HOST", OP_UPSTREAM_HOST, P_NONE, false},
    {"UPSTREAM_REMOTE_ADDRESS", OP_UPSTREAM_HOST, P_NONE, false},
    {"UPSTREAM_CLUSTER", OP_UPSTREAM_CLUSTER, P_NONE, false},
    {"UPSTREAM_LOCAL_ADDRESS", OP_UPSTREAM_LOCAL_ADDRESS, P_NONE, false},
    {"UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", OP_UPSTREAM_LOCAL_ADDRESS_NOPORT, P_NONE, false},
    {"UPSTREAM_TRANSPORT_FAILURE_REASON", OP_UPSTREAM_TRANSPORT_FAILURE_REASON, P_NONE, false},
    {"DOWNSTREAM_REMOTE_ADDRESS", OP_DS_REMOTE, P_NONE, false},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", OP_DS_REMOTE_NOPORT, P_NONE, false},
    {"DOWNSTREAM_LOCAL_ADDRESS", OP_DS_LOCAL, P_NONE, false},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", OP_DS_LOCAL_NOPORT, P_NONE, false},
    {"ROUTE_NAME", OP_ROUTE_NAME, P_NONE, false},
    {"CONNECTION_TERMINATION_DETAILS", OP_CONNECTION_TERMINATION_DETAILS, P_NONE, false},
    {"HOSTNAME", OP_HOSTNAME, P_NONE, false},
    {"CONNECTION_ID", OP_CONNECTION_ID, P_NONE, true},
    {"STREAM_ID", OP_STREAM_ID, P_NONE, false},
};

/* START_TIME pieces: strftime text, %s, %[1-9]f and %E[1-9]S. */
enum { T_STRF, T_SECS, T_FRAC, T_ESEC };
struct pl_al_tpiece {
    uint8_t kind, digits;
    char *strf;
    uint64_t id; /* unique per process: the key of the per-thread strftime cache */
};
static _Atomic uint64_t next_piece_id = 1;

static const char *const flag_names[PL_RF_COUNT] = {
    "LH",   "UH",   "UT",   "LR",   "UR", "UF",  "UC", "UO", "NR",  "DI",
    "FI",   "RL",   "UAEX", "RLSE", "DC", "URX", "SI", "IH", "DPE", "UMSDR",
    "RFCF", "NFCF", "DT",   "UPE",  "NC", "OM",  "DF", "DO", "DR",  "UDO",
};

void pl_al_buf_put(struct pl_al_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = pl_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

void pl_al_buf_free(struct pl_al_buf *b)
{
    free(b->p);
    *b = (struct pl_al_buf){0};
}

static void put_str(struct pl_al_buf *b, const char *s)
{
    pl_al_buf_put(b, s, strlen(s));
}

static void put_u64(struct pl_al_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do
        tmp[--i] = (char)('0' + v % 10);
    while (v /= 10);
    pl_al_buf_put(b, tmp + i, sizeof(tmp) - i);
}

/* Appends v as exactly digits digits (leading zeros). */
static void put_fixed(struct pl_al_buf *b, uint64_t v, unsigned digits)
{
    char tmp[20];
    for (unsigned i = digits; i > 0; i--, v /= 10)
        tmp[i - 1] = (char)('0' + v % 10);
    pl_al_buf_put(b, tmp, digits);
}

/* ---- compile ---- */

static void add_seg(struct pl_al_tmpl *t, struct pl_al_seg s)
{
    t->v = pl_realloc(t->v, (t->n + 1) * sizeof(*t->v));
    t->v[t->n++] = s;
}

static void add_lit(struct pl_al_tmpl *t, const char *s, size_t n)
{
    if (n)
        add_seg(t, (struct pl_al_seg){.op = OP_LIT, .s = pl_strndup(s, n), .s_len = n});
}

static char *lower_dup(const char *s, size_t n)
{
    char *r = pl_strndup(s, n);
    for (size_t i = 0; i < n; i++)
        if (r[i] >= 'A' && r[i] <= 'Z')
            r[i] = (char)(r[i] - 'A' + 'a');
    return r;
}

static void add_tpiece(struct pl_al_seg *g, uint8_t kind, uint8_t digits, const char *s, size_t n)
{
    if (kind == T_STRF && n == 0)
        return;
    g->tp = pl_realloc(g->tp, (g->n_tp + 1) * sizeof(*g->tp));
    g->tp[g->n_tp++] = (struct pl_al_tpiece){.kind = kind,
                                             .digits = digits,
                                             .strf = pl_strndup(s, n),
                                             .id = atomic_fetch_add(&next_piece_id, 1)};
}

/* Splits a START_TIME format into strftime runs and Envoy's own specifiers. */
static void compile_time(struct pl_al_seg *g, const char *f, size_t n)
{
    size_t run = 0, i = 0;
    while (i < n) {
        if (f[i] != '%' || i + 1 >= n) {
            i++;
            continue;
        }
        char c = f[i + 1];
        size_t len = 0;
        uint8_t kind = T_STRF, digits = 0;
        if (c == 's') {
            kind = T_SECS, len = 2;
        } else if (c == 'f') {
            kind = T_FRAC, digits = 9, len = 2;
        } else if (c >= '1' && c <= '9' && i + 2 < n && f[i + 2] == 'f') {
            kind = T_FRAC, digits = (uint8_t)(c - '0'), len = 3;
        } else if (c == 'E' && i + 3 < n && f[i + 2] >= '1' && f[i + 2] <= '9' && f[i + 3] == 'S') {
            kind = T_ESEC, digits = (uint8_t)(f[i + 2] - '0'), len = 4;
        }
        if (kind == T_STRF) { /* an strftime conversion (or %%): keep it in the run */
            i += 2;
            continue;
        }
        add_tpiece(g, T_STRF, 0, f + run, i - run);
        add_tpiece(g, kind, digits, "", 0);
        i += len;
        run = i;
    }
    add_tpiece(g, T_STRF, 0, f + run, n - run);
}

static int compile_op(struct pl_al_tmpl *t, const char *name, size_t name_len, const char *param,
                      size_t param_len, bool has_param, uint32_t max_len, size_t pos,
                      const char *path, struct pl_err *err)
{
    const struct opdef *d = NULL;
    for (size_t i = 0; i < sizeof(opdefs) / sizeof(opdefs[0]); i++)
        if (strlen(opdefs[i].name) == name_len && !memcmp(opdefs[i].name, name, name_len))
            d = &opdefs[i];
    if (!d)
        return pl_err_add(err, NULL, 0, 0, path,
                          "unknown command operator '%%%.*s%%' at position %zu", (int)name_len,
                          name, pos);
    if (d->param == P_NONE && has_param)
        return pl_err_add(err, NULL, 0, 0, path, "command operator '%s' takes no parameter",
                          d->name);
    if (d->param == P_REQ && (!has_param || param_len == 0))
        return pl_err_add(err, NULL, 0, 0, path,
                          "command operator '%s' needs a parameter: %%%s(X)%%", d->name, d->name);
    struct pl_al_seg g = {.op = d->op, .num = d->num, .max_len = max_len};
    if (d->op == OP_REQ || d->op == OP_RESP || d->op == OP_TRAILER) {
        const char *q = memchr(param, '?', param_len);
        size_t l1 = q ? (size_t)(q - param) : param_len;
        size_t l2 = q ? param_len - l1 - 1 : 0;
        if (l1 == 0 || (q && (l2 == 0 || memchr(q + 1, '?', l2))))
            return pl_err_add(err, NULL, 0, 0, path,
                              "command operator '%s(%.*s)': expected HEADER or HEADER?ALTERNATIVE",
                              d->name, (int)param_len, param);
        g.s = lower_dup(param, l1), g.s_len = l1;
        if (q)
            g.s2 = lower_dup(q + 1, l2), g.s2_len = l2;
    } else if (d->op == OP_START_TIME) {
        if (has_param && param_len)
            compile_time(&g, param, param_len);
        else
            compile_time(&g, "%Y-%m-%dT%H:%M:%E3SZ", 20);
    } else if (d->op == OP_HOSTNAME) {
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) < 0)
            host[0] = 0;
        g.s = pl_strdup(host), g.s_len = strlen(host);
    }
    add_seg(t, g);
    return 0;
}

static bool op_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

int pl_al_tmpl_parse(const char *s, size_t n, struct pl_al_tmpl *t, const char *path,
                     struct pl_err *err)
{
    *t = (struct pl_al_tmpl){0};
    size_t i = 0, lit = 0;
    while (i < n) {
        if (s[i] != '%') {
            i++;
            continue;
        }
        add_lit(t, s + lit, i - lit);
        size_t j = i + 1;
        while (j < n && op_char(s[j]))
            j++;
        const char *name = s + i + 1;
        size_t name_len = j - i - 1, param_len = 0;
        const char *param = "";
        bool has_param = false;
        uint32_t max_len = 0;
        if (j < n && s[j] == '(' && name_len) {
            const char *close = memchr(s + j + 1, ')', n - j - 1);
            if (!close) {
                pl_al_tmpl_free(t);
                return pl_err_add(err, NULL, 0, 0, path,
                                  "command operator at position %zu: missing ')'", i);
            }
            param = s + j + 1, param_len = (size_t)(close - param), has_param = true;
            j = (size_t)(close - s) + 1;
        }
        if (j < n && s[j] == ':' && name_len) {
            size_t k = j + 1;
            uint64_t v = 0;
            while (k < n && s[k] >= '0' && s[k] <= '9' && v < UINT32_MAX)
                v = v * 10 + (uint64_t)(s[k++] - '0');
            if (k == j + 1 || v > UINT32_MAX) {
                pl_al_tmpl_free(t);
                return pl_err_add(err, NULL, 0, 0, path,
                                  "command operator at position %zu: bad length after ':'", i);
            }
            max_len = (uint32_t)v, j = k;
        }
        if (name_len == 0 || j >= n || s[j] != '%') {
            pl_al_tmpl_free(t);
            return pl_err_add(err, NULL, 0, 0, path,
                              "no valid command operator at position %zu (expected %%NAME%%, "
                              "%%NAME(param)%% or %%NAME(param):length%%)",
                              i);
        }
        if (compile_op(t, name, name_len, param, param_len, has_param, max_len, i, path, err) < 0) {
            pl_al_tmpl_free(t);
            return PL_EINVAL;
        }
        i = lit = j + 1;
    }
    add_lit(t, s + lit, n - lit);
    return 0;
}

void pl_al_tmpl_free(struct pl_al_tmpl *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct pl_al_seg *g = &t->v[i];
        free(g->s);
        free(g->s2);
        for (size_t k = 0; k < g->n_tp; k++)
            free(g->tp[k].strf);
        free(g->tp);
    }
    free(t->v);
    *t = (struct pl_al_tmpl){0};
}

/* ---- evaluate ---- */

/* strftime results of the current second, per thread: one gmtime_r + strftime per second and
 * piece instead of per line. */
struct time_cache {
    uint64_t id;
    time_t sec;
    uint16_t len;
    char text[110];
};
static _Thread_local struct time_cache time_cache[8];

static enum pl_al_val put_time(const struct pl_al_seg *g, const struct timespec *ts,
                               struct pl_al_buf *out)
{
    struct tm tm;
    bool have_tm = false;
    time_t sec = ts->tv_sec;
    for (size_t i = 0; i < g->n_tp; i++) {
        const struct pl_al_tpiece *p = &g->tp[i];
        if (p->kind == T_SECS) {
            put_u64(out, (uint64_t)sec);
            continue;
        }
        if (p->kind == T_STRF) {
            struct time_cache *c = &time_cache[p->id % 8];
            if (c->id == p->id && c->sec == sec) {
                pl_al_buf_put(out, c->text, c->len);
                continue;
            }
        }
        if (!have_tm && !gmtime_r(&sec, &tm))
            return PL_AL_UNSET;
        have_tm = true;
        if (p->kind == T_STRF) {
            char tmp[256];
            size_t n = strftime(tmp, sizeof(tmp), p->strf, &tm);
            pl_al_buf_put(out, tmp, n);
            struct time_cache *c = &time_cache[p->id % 8];
            if (n <= sizeof(c->text))
                c->id = p->id, c->sec = sec, c->len = (uint16_t)n, memcpy(c->text, tmp, n);
            continue;
        }
        if (p->kind == T_ESEC) {
            put_fixed(out, (uint64_t)tm.tm_sec, 2);
            pl_al_buf_put(out, ".", 1);
        }
        uint64_t frac = (uint64_t)ts->tv_nsec;
        for (int d = 9; d > p->digits; d--)
            frac /= 10;
        put_fixed(out, frac, p->digits);
    }
    return PL_AL_STR;
}

static enum pl_al_val put_addr(const struct sockaddr *sa, socklen_t len, bool port,
                               struct pl_al_buf *out)
{
    char ip[INET6_ADDRSTRLEN];
    if (!sa || len < sizeof(sa_family_t))
        return PL_AL_UNSET;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        put_str(out, ip);
        if (port) {
            pl_al_buf_put(out, ":", 1);
            put_u64(out, ntohs(in->sin_port));
        }
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        if (port)
            pl_al_buf_put(out, "[", 1);
        put_str(out, ip);
        if (port) {
            pl_al_buf_put(out, "]:", 2);
            put_u64(out, ntohs(in6->sin6_port));
        }
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n && un->sun_path[0] == 0) { /* abstract namespace: Envoy prints '@' */
            pl_al_buf_put(out, "@", 1);
            pl_al_buf_put(out, un->sun_path + 1, n - 1);
        } else {
            pl_al_buf_put(out, un->sun_path, strnlen(un->sun_path, n));
        }
    } else {
        return PL_AL_UNSET;
    }
    return PL_AL_STR;
}

static enum pl_al_val put_opt_str(const char *s, struct pl_al_buf *out)
{
    if (!s || !*s)
        return PL_AL_UNSET;
    put_str(out, s);
    return PL_AL_STR;
}

static enum pl_al_val put_ms(int64_t from, int64_t to, struct pl_al_buf *out)
{
    if (!to || to < from)
        return PL_AL_UNSET;
    put_u64(out, (uint64_t)(to - from) / 1000000u);
    return PL_AL_NUM;
}

/* Looks name up in a head: pseudo-headers come from the head's fields. */
static enum pl_al_val head_get(const struct pl_http_head *h, const struct pl_headers *hdrs,
                               const char *name, size_t len, struct pl_al_buf *out)
{
    const char *v = NULL;
    uint32_t vl = 0;
    if (h && name[0] == ':') {
        if (len == 7 && !memcmp(name, ":method", 7))
            v = h->method, vl = h->method_len;
        else if (len == 5 && !memcmp(name, ":path", 5))
            v = h->path, vl = h->path_len;
        else if (len == 10 && !memcmp(name, ":authority", 10))
            v = h->authority, vl = h->authority_len;
        else if (len == 7 && !memcmp(name, ":scheme", 7))
            v = h->scheme, vl = h->scheme_len;
        else if (len == 9 && !memcmp(name, ":protocol", 9))
            v = h->protocol, vl = h->protocol_len;
        else if (len == 7 && !memcmp(name, ":status", 7) && h->status > 0) {
            put_u64(out, (uint64_t)h->status);
            return PL_AL_STR;
        }
        if (!v || !vl)
            return PL_AL_UNSET;
        pl_al_buf_put(out, v, vl);
        return PL_AL_STR;
    }
    if (!hdrs)
        return PL_AL_UNSET;
    const struct pl_header *f = pl_headers_get(hdrs, name, len);
    if (f) {
        pl_al_buf_put(out, f->value, f->value_len);
        return PL_AL_STR;
    }
    /* HTTP/1 Host is the request's :authority (Envoy keeps only :authority) */
    if (h && len == 4 && !memcmp(name, "host", 4) && h->authority && h->authority_len) {
        pl_al_buf_put(out, h->authority, h->authority_len);
        return PL_AL_STR;
    }
    return PL_AL_UNSET;
}

static enum pl_al_val header_op(const struct pl_al_seg *g, const struct pl_http_head *h,
                                const struct pl_headers *hdrs, struct pl_al_buf *out)
{
    enum pl_al_val v = head_get(h, hdrs, g->s, g->s_len, out);
    if (v == PL_AL_UNSET && g->s2)
        v = head_get(h, hdrs, g->s2, g->s2_len, out);
    return v;
}

static enum pl_al_val eval(const struct pl_al_seg *g, const struct pl_stream_info *si,
                           struct pl_al_buf *out)
{
    switch ((enum op)g->op) {
    case OP_LIT:
        pl_al_buf_put(out, g->s, g->s_len);
        return PL_AL_STR;
    case OP_START_TIME:
        return put_time(g, &si->start_time, out);
    case OP_REQ:
        return header_op(g, si->request, si->request ? &si->request->headers : NULL, out);
    case OP_RESP:
        return header_op(g, si->response, si->response ? &si->response->headers : NULL, out);
    case OP_TRAILER:
        return header_op(g, NULL, si->response_trailers, out);
    case OP_PROTOCOL: {
        static const char *const names[] = {NULL, "HTTP/1.0", "HTTP/1.1", "HTTP/2"};
        if ((unsigned)si->protocol >= sizeof(names) / sizeof(names[0]))
            return PL_AL_UNSET;
        return put_opt_str(names[si->protocol], out);
    }
    case OP_RESPONSE_CODE:
        put_u64(out, si->response_code > 0 ? (uint64_t)si->response_code : 0);
        return PL_AL_NUM;
    case OP_RESPONSE_CODE_DETAILS:
        return put_opt_str(si->response_code_details, out);
    case OP_RESPONSE_FLAGS: {
        bool any = false;
        for (unsigned i = 0; i < PL_RF_COUNT; i++) {
            if (!(si->response_flags & (1u << i)))
                continue;
            if (any)
                pl_al_buf_put(out, ",", 1);
            put_str(out, flag_names[i]);
            any = true;
        }
        if (!any) /* Envoy prints "-" for no flags: a value, not an empty one */
            pl_al_buf_put(out, "-", 1);
        return PL_AL_STR;
    }
    case OP_BYTES_RECEIVED:
        put_u64(out, si->bytes_received);
        return PL_AL_NUM;
    case OP_BYTES_SENT:
        put_u64(out, si->bytes_sent);
        return PL_AL_NUM;
    case OP_DURATION:
        return put_ms(si->start_mono_ns, si->end_ns, out);
    case OP_REQUEST_DURATION:
        return put_ms(si->start_mono_ns, si->last_downstream_rx_byte_ns, out);
    case OP_RESPONSE_DURATION:
        return put_ms(si->start_mono_ns, si->first_upstream_rx_byte_ns, out);
    case OP_RESPONSE_TX_DURATION:
        if (!si->first_upstream_rx_byte_ns)
            return PL_AL_UNSET;
        return put_ms(si->first_upstream_rx_byte_ns, si->last_downstream_tx_byte_ns, out);
    case OP_UPSTREAM_HOST:
        return put_opt_str(si->upstream_host, out);
    case OP_UPSTREAM_CLUSTER:
        return put_opt_str(si->upstream_cluster, out);
    case OP_UPSTREAM_LOCAL_ADDRESS:
        return put_addr(si->upstream_local_addr, si->upstream_local_addr_len, true, out);
    case OP_UPSTREAM_LOCAL_ADDRESS_NOPORT:
        return put_addr(si->upstream_local_addr, si->upstream_local_addr_len, false, out);
    case OP_UPSTREAM_TRANSPORT_FAILURE_REASON:
        return put_opt_str(si->upstream_transport_failure_reason, out);
    case OP_DS_REMOTE:
        return put_addr(si->downstream_remote_addr, si->downstream_remote_addr_len, true, out);
    case OP_DS_REMOTE_NOPORT:
        return put_addr(si->downstream_remote_addr, si->downstream_remote_addr_len, false, out);
    case OP_DS_LOCAL:
        return put_addr(si->downstream_local_addr, si->downstream_local_addr_len, true, out);
    case OP_DS_LOCAL_NOPORT:
        return put_addr(si->downstream_local_addr, si->downstream_local_addr_len, false, out);
    case OP_ROUTE_NAME:
        return put_opt_str(si->route_name, out);
    case OP_CONNECTION_TERMINATION_DETAILS:
        return put_opt_str(si->connection_termination_details, out);
    case OP_HOSTNAME:
        return put_opt_str(g->s, out);
    case OP_CONNECTION_ID:
        put_u64(out, si->connection_id);
        return PL_AL_NUM;
    case OP_STREAM_ID:
        return put_opt_str(si->request_id, out);
    }
    return PL_AL_UNSET;
}

enum pl_al_val pl_al_seg_eval(const struct pl_al_seg *g, const struct pl_stream_info *si,
                              struct pl_al_buf *out)
{
    size_t mark = out->len;
    enum pl_al_val v = eval(g, si, out);
    if (v == PL_AL_STR && g->max_len && out->len - mark > g->max_len)
        out->len = mark + g->max_len;
    return v;
}

/* ---- public ---- */

int pl_al_format_compile_text(const char *text, size_t len, bool omit_empty_values,
                              const char *path, struct pl_al_format **out, struct pl_err *err)
{
    struct pl_al_format *f = pl_calloc(1, sizeof(*f));
    f->omit_empty = omit_empty_values;
    if (pl_al_tmpl_parse(text, len, &f->text, path, err) < 0) {
        free(f);
        *out = NULL;
        return PL_EINVAL;
    }
    *out = f;
    return 0;
}

void pl_al_format(const struct pl_al_format *f, const struct pl_stream_info *si,
                  struct pl_al_buf *out)
{
    if (f->json) {
        pl_al_json_render(&f->root, si, f->omit_empty, out);
        pl_al_buf_put(out, "\n", 1);
        return;
    }
    for (size_t i = 0; i < f->text.n; i++) {
        if (pl_al_seg_eval(&f->text.v[i], si, out) == PL_AL_UNSET && !f->omit_empty)
            pl_al_buf_put(out, "-", 1);
    }
}

void pl_al_format_free(struct pl_al_format *f)
{
    if (!f)
        return;
    pl_al_tmpl_free(&f->text);
    pl_al_jnode_free(&f->root);
    free(f);
}
