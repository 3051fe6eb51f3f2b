/* Per-request actions on a matched route: header mutations with %VARIABLE% values, host and path
 * rewrites, and the Location of redirects. New strings go in the caller's arena. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "router/router_internal.h"

/* ---- %VARIABLE% formatting ---- */

enum { ADDR_FULL, ADDR_NO_PORT, ADDR_PORT };

static size_t fmt_addr(const struct sockaddr *sa, int mode, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        unsigned port = ntohs(in->sin_port);
        int n = mode == ADDR_FULL      ? snprintf(buf, cap, "%s:%u", ip, port)
                : mode == ADDR_NO_PORT ? snprintf(buf, cap, "%s", ip)
                                       : snprintf(buf, cap, "%u", port);
        return n > 0 ? (size_t)n : 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        unsigned port = ntohs(in6->sin6_port);
        int n = mode == ADDR_FULL      ? snprintf(buf, cap, "[%s]:%u", ip, port)
                : mode == ADDR_NO_PORT ? snprintf(buf, cap, "%s", ip)
                                       : snprintf(buf, cap, "%u", port);
        return n > 0 ? (size_t)n : 0;
    }
    if (sa->sa_family == AF_UNIX && mode != ADDR_PORT) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        int n = snprintf(buf, cap, "%s", un->sun_path);
        return n > 0 ? (size_t)n : 0;
    }
    return 0;
}

/* Returns one segment's value: a pointer into the table/head/ctx, or into tmp. */
static size_t seg_value(const struct rt_fmt_seg *s, const struct pl_http_head *req,
                        const struct pl_route_ctx *ctx, const struct pl_route_table *t, char *tmp,
                        size_t cap, const char **out)
{
    *out = tmp;
    switch (s->var) {
    case FV_LITERAL:
        *out = s->s;
        return s->len;
    case FV_REMOTE_ADDR:
        return fmt_addr(ctx->peer, ADDR_FULL, tmp, cap);
    case FV_REMOTE_ADDR_NO_PORT:
        return fmt_addr(ctx->peer, ADDR_NO_PORT, tmp, cap);
    case FV_REMOTE_PORT:
        return fmt_addr(ctx->peer, ADDR_PORT, tmp, cap);
    case FV_LOCAL_ADDR:
        return fmt_addr(ctx->local, ADDR_FULL, tmp, cap);
    case FV_LOCAL_ADDR_NO_PORT:
        return fmt_addr(ctx->local, ADDR_NO_PORT, tmp, cap);
    case FV_LOCAL_PORT:
        return fmt_addr(ctx->local, ADDR_PORT, tmp, cap);
    case FV_UPSTREAM_HOST:
        *out = ctx->upstream_host ? ctx->upstream_host : "";
        return strlen(*out);
    case FV_SNI:
        *out = ctx->sni ? ctx->sni : "";
        return strlen(*out);
    case FV_HOSTNAME:
        *out = t->hostname;
        return strlen(t->hostname);
    case FV_PROTOCOL:
        *out = !req                 ? ""
               : req->version == 10 ? "HTTP/1.0"
               : req->version == 11 ? "HTTP/1.1"
               : req->version == 20 ? "HTTP/2"
               : req->version == 30 ? "HTTP/3"
                                    : "";
        return strlen(*out);
    case FV_REQ: {
        const char *v;
        size_t n;
        if (!req || (!pl_router_header(req, s->pseudo, s->s, s->len, &v, &n) &&
                     !(s->alt && pl_router_header(req, s->alt_pseudo, s->alt, s->alt_len, &v, &n))))
            return 0;
        *out = v;
        return s->max_len && n > s->max_len ? s->max_len : n;
    }
    default:
        return 0;
    }
}

size_t pl_router_format(const struct rt_hdr_add *a, const struct pl_http_head *req,
                        const struct pl_route_ctx *ctx, const struct pl_route_table *t,
                        struct pl_arena *arena, const char **out)
{
    if (a->literal) {
        *out = a->nsegs ? a->segs[0].s : "";
        return a->nsegs ? a->segs[0].len : 0;
    }
    char tmp[256];
    const char *v;
    size_t total = 0;
    for (size_t i = 0; i < a->nsegs; i++)
        total += seg_value(&a->segs[i], req, ctx, t, tmp, sizeof(tmp), &v);
    char *buf = pl_arena_alloc(arena, total + 1), *w = buf;
    for (size_t i = 0; i < a->nsegs; i++) {
        size_t n = seg_value(&a->segs[i], req, ctx, t, tmp, sizeof(tmp), &v);
        memcpy(w, v, n);
        w += n;
    }
    *w = 0;
    *out = buf;
    return total;
}

/* ---- header mutations ---- */

struct pending {
    const struct rt_hdr_add *a;
    const char *v;
    size_t n;
    bool over; /* overwrite rather than append */
};

/* Envoy's HeaderParser::evaluateHeaders: removals, then every value formatted against the
 * headers as they are, then overwrites, then appends. */
static void eval_ops(const struct rt_hdr_ops *ops, struct pl_headers *hdrs,
                     const struct pl_http_head *req, const struct pl_route_ctx *ctx,
                     const struct pl_route_table *t, struct pl_arena *arena)
{
    for (size_t i = 0; i < ops->nrm; i++)
        pl_headers_remove(hdrs, ops->rm[i], ops->rm_len[i]);
    if (!ops->nadd)
        return;
    struct pending stack[16];
    struct pending *pend =
        ops->nadd <= 16 ? stack : pl_arena_alloc(arena, ops->nadd * sizeof(*pend));
    size_t np = 0;
    for (size_t i = 0; i < ops->nadd; i++) {
        const struct rt_hdr_add *a = &ops->add[i];
        const char *v;
        size_t n = pl_router_format(a, req, ctx, t, arena, &v);
        if (n == 0 && !a->keep_empty)
            continue;
        bool exists = pl_headers_get(hdrs, a->name, a->name_len) != NULL, over = false;
        switch (a->action) {
        case ACT_ADD_IF_ABSENT:
            if (exists)
                continue;
            break;
        case ACT_OVERWRITE_IF_EXISTS:
            if (!exists)
                continue;
            over = true;
            break;
        case ACT_OVERWRITE_OR_ADD:
            over = true;
            break;
        default:
            break;
        }
        pend[np++] = (struct pending){a, v, n, over};
    }
    for (size_t i = 0; i < np; i++)
        if (pend[i].over) {
            pl_headers_remove(hdrs, pend[i].a->name, pend[i].a->name_len);
            pl_headers_add_ref(hdrs, arena, pend[i].a->name, pend[i].a->name_len, pend[i].v,
                               pend[i].n);
        }
    for (size_t i = 0; i < np; i++)
        if (!pend[i].over)
            pl_headers_add_ref(hdrs, arena, pend[i].a->name, pend[i].a->name_len, pend[i].v,
                               pend[i].n);
}

/* Evaluates the route, virtual host and configuration levels in Envoy's order. */
static void eval_levels(const struct pl_route_match *m, bool request, struct pl_headers *hdrs,
                        const struct pl_http_head *req, const struct pl_route_ctx *ctx,
                        struct pl_arena *arena)
{
    const struct rt_mut *lv[3] = {m->route->x ? m->route->x->mut : &pl_router_no_mut,
                                  &m->vhost->mut, &m->table->mut};
    if (m->table->most_specific_wins) {
        const struct rt_mut *x = lv[0];
        lv[0] = lv[2], lv[2] = x;
    }
    for (int i = 0; i < 3; i++)
        eval_ops(request ? &lv[i]->req : &lv[i]->resp, hdrs, req, ctx, m->table, arena);
}

/* ---- path rewriting ---- */

/* Applies regex_rewrite's substitution to s[0..n); returns false if nothing could be done. */
static bool regex_sub(const struct pl_route_match *m, const char *s, size_t n,
                      struct pl_arena *arena, const char **out, size_t *outlen)
{
    const struct rt_route_x *r = m->route->x;
    uint32_t opts =
        PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_SUBSTITUTE_UNSET_EMPTY;
    PCRE2_SIZE cap = n * 2 + 64;
    for (int attempt = 0; attempt < 2; attempt++) {
        PCRE2_UCHAR *buf = pl_arena_alloc(arena, cap);
        PCRE2_SIZE len = cap;
        int rc = pcre2_substitute(r->rewrite_re.code, (PCRE2_SPTR)(s ? s : ""), n, 0, opts,
                                  pl_router_md(m->table), m->table->mctx,
                                  (PCRE2_SPTR)r->rewrite_sub, PCRE2_ZERO_TERMINATED, buf, &len);
        if (rc >= 0) {
            *out = (const char *)buf, *outlen = len;
            return true;
        }
        if (rc != PCRE2_ERROR_NOMEMORY)
            return false; /* e.g. the match limit: leave the path alone */
        cap = len;
    }
    return false;
}

/* Computes the rewritten path (prefix_rewrite or regex_rewrite, query kept). */
static bool rewritten_path(const struct pl_route_match *m, const char *path, size_t len,
                           struct pl_arena *arena, const char **out, size_t *outlen)
{
    const struct rt_route_x *r = m->route->x;
    if (!r)
        return false;
    size_t plen = pl_router_path_len(path, len);
    const char *head;
    size_t hn, keep;
    if (r->has_prefix_rewrite) {
        keep = m->route->path_kind == PATH_REGEX ? plen : m->route->path_len;
        if (keep > len)
            keep = len;
        head = r->prefix_rewrite, hn = r->prefix_rewrite_len;
    } else if (r->rewrite_re.code) {
        if (!regex_sub(m, path, plen, arena, &head, &hn))
            return false;
        keep = plen;
    } else {
        return false;
    }
    char *p = pl_arena_alloc(arena, hn + (len - keep) + 1);
    memcpy(p, head, hn);
    memcpy(p + hn, path + keep, len - keep);
    p[hn + len - keep] = 0;
    *out = p, *outlen = hn + len - keep;
    return true;
}

void pl_router_apply_request(const struct pl_route_match *m, struct pl_http_head *head,
                             const struct pl_route_ctx *ctx, struct pl_arena *arena)
{
    if (!m->route)
        return;
    const struct rt_route_x *r = m->route->x;
    if (m->wc) {
        eval_ops(&m->wc->mut.req, &head->headers, head, ctx, m->table, arena);
        if (m->wc->host_rewrite) {
            head->authority = m->wc->host_rewrite;
            head->authority_len = (uint32_t)strlen(m->wc->host_rewrite);
        }
    }
    eval_levels(m, true, &head->headers, head, ctx, arena);
    if (!r)
        return; /* no rewrite of host or path */
    if (r->host_rewrite) {
        head->authority = r->host_rewrite;
        head->authority_len = (uint32_t)strlen(r->host_rewrite);
    }
    const char *np;
    size_t nl;
    if (r->info.kind == PL_ROUTE_CLUSTER && head->path &&
        rewritten_path(m, head->path, head->path_len, arena, &np, &nl)) {
        if (!ctx->suppress_envoy_headers) {
            pl_headers_remove(&head->headers, "x-envoy-original-path",
                              PL_STRLEN("x-envoy-original-path"));
            pl_headers_add_ref(&head->headers, arena, "x-envoy-original-path",
                               PL_STRLEN("x-envoy-original-path"), head->path, head->path_len);
        }
        head->path = np;
        head->path_len = (uint32_t)nl;
    }
}

void pl_router_apply_response(const struct pl_route_match *m, struct pl_http_head *resp,
                              const struct pl_route_ctx *ctx, struct pl_arena *arena)
{
    if (!m->route)
        return;
    if (m->wc)
        eval_ops(&m->wc->mut.resp, &resp->headers, ctx->request, ctx, m->table, arena);
    eval_levels(m, false, &resp->headers, ctx->request, ctx, arena);
}

/* ---- redirects ---- */

static bool streq(const char *a, size_t an, const char *b)
{
    return an == strlen(b) && !memcmp(a, b, an);
}

static bool streq_ci(const char *a, size_t an, const char *b)
{
    return an == strlen(b) && !strncasecmp(a, b, an);
}

void pl_router_redirect_location(const struct pl_route_match *m, const struct pl_http_head *head,
                                 const struct pl_route_ctx *ctx, struct pl_arena *arena,
                                 const char **loc, size_t *len)
{
    const struct rt_route_x *r = m->route->x;
    /* Envoy: the Location keeps the request's :scheme; the default port is stripped by
     * x-forwarded-proto (both set by the connection manager; the connection's TLS otherwise) */
    const struct pl_header *xfp = pl_headers_get_lit(&head->headers, "x-forwarded-proto");
    const char *conn = ctx->tls ? "https" : "http";
    const char *proto = xfp ? xfp->value : head->scheme ? head->scheme : conn;
    size_t proto_len = xfp ? xfp->value_len : head->scheme ? head->scheme_len : strlen(conn);
    const char *scheme = r->scheme_redirect ? r->scheme_redirect
                         : head->scheme     ? head->scheme
                                            : proto;
    size_t scheme_len = r->scheme_redirect ? strlen(scheme)
                        : head->scheme     ? head->scheme_len
                                           : proto_len;
    const char *port = r->port_redirect ? r->port_redirect : "";

    const char *host = r->host_redirect;
    size_t host_len = host ? strlen(host) : 0;
    if (!host) { /* Envoy's processRequestHost */
        host = head->authority ? head->authority : "";
        host_len = head->authority ? head->authority_len : 0;
        size_t ps = host_len;
        if (host_len && host[0] == '[') {
            for (size_t i = host_len; i-- > 1;)
                if (host[i] == ':' && host[i - 1] == ']') {
                    ps = i;
                    break;
                }
        } else {
            for (size_t i = host_len; i-- > 0;)
                if (host[i] == ':') {
                    ps = i;
                    break;
                }
        }
        if (ps < host_len) {
            const char *rp = host + ps;
            size_t rpl = host_len - ps;
            bool remove = *port != 0;
            if (!(scheme_len == proto_len && !memcmp(scheme, proto, proto_len))) {
                remove |= streq_ci(proto, proto_len, "https") && streq(rp, rpl, ":443");
                remove |= streq_ci(proto, proto_len, "http") && streq(rp, rpl, ":80");
            }
            if (remove)
                host_len = ps;
        }
    }

    const char *path = head->path ? head->path : "";
    size_t path_len = head->path ? head->path_len : 0;
    const char *np;
    size_t nl;
    if (rewritten_path(m, path, path_len, arena, &np, &nl))
        path = np, path_len = nl;
    const char *query = "";
    size_t query_len = 0;
    if (r->path_redirect) {
        if (!r->path_redirect_has_query) {
            const char *q = memchr(path, '?', path_len);
            if (q)
                query = q, query_len = path_len - (size_t)(q - path);
        }
        path = r->path_redirect, path_len = strlen(path);
    } else {
        size_t pl = pl_router_path_len(path, path_len);
        query = path + pl, query_len = path_len - pl;
        path_len = pl;
    }
    if (r->strip_query && !r->path_redirect_has_query)
        query_len = 0;
    bool slash = path_len == 0 || path[0] != '/';
    size_t port_len = strlen(port);
    size_t total = scheme_len + 3 + host_len + port_len + slash + path_len + query_len;
    char *out = pl_arena_alloc(arena, total + 1), *w = out;
    memcpy(w, scheme, scheme_len), w += scheme_len;
    memcpy(w, "://", 3), w += 3;
    memcpy(w, host, host_len), w += host_len;
    memcpy(w, port, port_len), w += port_len;
    if (slash)
        *w++ = '/';
    memcpy(w, path, path_len), w += path_len;
    memcpy(w, query, query_len), w += query_len;
    *w = 0;
    *loc = out;
    *len = total;
}
