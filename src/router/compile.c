/* RouteConfiguration -> struct pl_route_table: virtual hosts and their domain maps, routes with
 * their matchers (PCRE2, JIT-compiled) and actions. All errors are collected with field paths. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define PL_ROUTER_COMPILE_C
#include "router/router_internal.h"

#define R(x) ENVOY__CONFIG__ROUTE__V3__##x

int pl_router_fail(struct pl_router_cctx *c, int code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pl_err_vadd(c->err, NULL, 0, 0, path, fmt, ap);
    va_end(ap);
    if (c->rc == 0 || code == PL_EINVAL)
        c->rc = code;
    return code;
}

/* base + "." + tail (or tail alone when base is empty) in one allocation; tail is head, then the
 * decimal idx in brackets when has_idx. */
static char *join_path(const char *base, const char *head, size_t head_len, bool has_idx,
                       size_t idx)
{
    char num[24];
    size_t nn = 0;
    if (has_idx) {
        char tmp[20];
        size_t k = 0;
        do
            tmp[k++] = (char)('0' + idx % 10);
        while ((idx /= 10) > 0);
        num[nn++] = '[';
        while (k)
            num[nn++] = tmp[--k];
        num[nn++] = ']';
    }
    size_t bl = strlen(base);
    char *r = pl_malloc(bl + 1 + head_len + nn + 1), *p = r;
    if (bl) {
        memcpy(p, base, bl);
        p += bl;
        *p++ = '.';
    }
    memcpy(p, head, head_len);
    p += head_len;
    memcpy(p, num, nn);
    p[nn] = '\0';
    return r;
}

/* Paths are made for every route, virtual host and match (and read only for an error): the
 * shapes the compile uses ("name", "%s", "name[%zu]") are put together without printf. */
char *pl_router_sub(const char *base, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *pct = strchr(fmt, '%');
    char *r;
    if (!pct) {
        r = join_path(base, fmt, strlen(fmt), false, 0);
    } else if (!strcmp(fmt, "%s")) {
        const char *s = va_arg(ap, const char *);
        r = join_path(base, s, strlen(s), false, 0);
    } else if (!strcmp(pct, "%zu]") && pct > fmt && pct[-1] == '[') {
        size_t idx = va_arg(ap, size_t);
        r = join_path(base, fmt, (size_t)(pct - 1 - fmt), true, idx);
    } else {
        char *tail;
        if (vasprintf(&tail, fmt, ap) < 0)
            pl_die("out of memory");
        r = join_path(base, tail, strlen(tail), false, 0);
        free(tail);
    }
    va_end(ap);
    return r;
}

char *pl_router_dup_lower(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *d = pl_strndup(s, n);
    for (size_t i = 0; i < n; i++)
        if (d[i] >= 'A' && d[i] <= 'Z')
            d[i] = (char)(d[i] + 32);
    if (len)
        *len = n;
    return d;
}

int64_t pl_router_duration_ms(const Google__Protobuf__Duration *d)
{
    return d->seconds * 1000 + d->nanos / 1000000;
}

/* ---- regexes and string matchers ---- */

int pl_router_compile_re(struct pl_router_cctx *c, struct rt_regex *re, const char *pattern,
                         bool full, const char *path)
{
    if (!*pattern)
        return fail(c, PL_EINVAL, path, "a regex must not be empty");
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY;
    if (full)
        opts |= PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    int ec;
    PCRE2_SIZE off;
    re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &ec, &off, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        return fail(c, PL_EINVAL, path, "invalid regex '%s' at offset %zu: %s", pattern,
                    (size_t)off, (char *)msg);
    }
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* interpreter if JIT is missing */
    pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &re->ncap);
    if (re->ncap > c->t->max_cap)
        c->t->max_cap = re->ncap;
    return 0;
}

int pl_router_compile_regex_matcher(struct pl_router_cctx *c, struct rt_regex *re,
                                    const Envoy__Type__Matcher__V3__RegexMatcher *m, bool full,
                                    const char *path)
{
    char *p = sub(path, "regex");
    int rc = compile_re(c, re, m->regex, full, p);
    free(p);
    return rc;
}

int pl_router_compile_strmatch(struct pl_router_cctx *c, struct rt_strmatch *sm,
                               const Envoy__Type__Matcher__V3__StringMatcher *m, const char *path)
{
    const char *s = NULL, *field = NULL;
    sm->icase = m->ignore_case;
    switch (m->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        sm->kind = SM_EXACT, s = m->exact;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        sm->kind = SM_PREFIX, s = m->prefix, field = "prefix";
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
        sm->kind = SM_SUFFIX, s = m->suffix, field = "suffix";
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
        sm->kind = SM_CONTAINS, s = m->contains, field = "contains";
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX: {
        sm->kind = SM_REGEX;
        char *p = sub(path, "safe_regex");
        int rc = compile_regex_matcher(c, &sm->re, m->safe_regex, true, p);
        free(p);
        return rc;
    }
    default:
        return fail(c, PL_EINVAL, path,
                    "a string matcher needs one of exact, prefix, suffix, contains, safe_regex");
    }
    if (field && !*s) {
        char *p = sub(path, "%s", field);
        fail(c, PL_EINVAL, p, "must not be empty");
        free(p);
        return PL_EINVAL;
    }
    sm->s = sm->icase ? dup_lower(s, &sm->len) : pl_strdup(s);
    sm->len = strlen(s);
    return 0;
}

static void legacy_sm(struct rt_strmatch *sm, int kind, const char *s)
{
    sm->kind = (uint8_t)kind;
    sm->s = pl_strdup(s);
    sm->len = strlen(s);
}

static int compile_hdrmatch(struct pl_router_cctx *c, struct rt_hdrmatch *h,
                            const Envoy__Config__Route__V3__HeaderMatcher *m, const char *path)
{
    if (!*m->name) {
        char *p = sub(path, "name");
        fail(c, PL_EINVAL, p, "a header matcher needs a name");
        free(p);
        return PL_EINVAL;
    }
    h->name = dup_lower(m->name, &h->name_len);
    h->pseudo = pl_router_pseudo(h->name, h->name_len);
    h->invert = m->invert_match;
    h->missing_as_empty = m->treat_missing_header_as_empty;
    const char *legacy = NULL;
    int kind = 0;
    switch (m->header_match_specifier_case) {
    case R(HEADER_MATCHER__HEADER_MATCH_SPECIFIER__NOT_SET):
        h->any_value = true;
        return 0;
    case R(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH):
        if (!*m->exact_match) {
            h->any_value = true;
            return 0;
        }
        legacy = m->exact_match, kind = SM_EXACT;
        break;
    case R(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH):
        legacy = m->prefix_match, kind = SM_PREFIX;
        break;
    case R(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH):
        legacy = m->suffix_match, kind = SM_SUFFIX;
        break;
    case R(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH):
        legacy = m->contains_match, kind = SM_CONTAINS;
        break;
    case R(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH):
        h->is_present = true;
        h->present = m->present_match;
        return 0;
    case R(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH): {
        h->sm.kind = SM_REGEX;
        char *p = sub(path, "safe_regex_match");
        int rc = compile_regex_matcher(c, &h->sm.re, m->safe_regex_match, true, p);
        free(p);
        return rc;
    }
    case R(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH): {
        char *p = sub(path, "string_match");
        int rc = compile_strmatch(c, &h->sm, m->string_match, p);
        free(p);
        return rc;
    }
    default: {
        char *p = sub(path, "range_match");
        fail(c, PL_ENOTSUP, p, "range_match is not supported");
        free(p);
        return PL_ENOTSUP;
    }
    }
    if (!*legacy)
        return fail(c, PL_EINVAL, path, "the header match value must not be empty");
    legacy_sm(&h->sm, kind, legacy);
    return 0;
}

static int compile_qpmatch(struct pl_router_cctx *c, struct rt_qpmatch *q,
                           const Envoy__Config__Route__V3__QueryParameterMatcher *m,
                           const char *path)
{
    if (!*m->name) {
        char *p = sub(path, "name");
        fail(c, PL_EINVAL, p, "a query parameter matcher needs a name");
        free(p);
        return PL_EINVAL;
    }
    q->name = pl_strdup(m->name);
    q->name_len = strlen(m->name);
    switch (m->query_parameter_match_specifier_case) {
    case R(QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_PRESENT_MATCH):
        q->has_present = true;
        q->present = m->present_match;
        return 0;
    case R(QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_STRING_MATCH): {
        q->has_sm = true;
        char *p = sub(path, "string_match");
        int rc = compile_strmatch(c, &q->sm, m->string_match, p);
        free(p);
        return rc;
    }
    default:
        return 0; /* presence check */
    }
}

/* ---- routes ---- */

static int compile_path(struct pl_router_cctx *c, struct rt_route_x *r,
                        const Envoy__Config__Route__V3__RouteMatch *m, const char *path)
{
    r->case_sensitive = m->case_sensitive ? m->case_sensitive->value : true;
    const char *s = NULL;
    switch (m->path_specifier_case) {
    case R(ROUTE_MATCH__PATH_SPECIFIER_PREFIX):
        r->path_kind = PATH_PREFIX, s = m->prefix;
        break;
    case R(ROUTE_MATCH__PATH_SPECIFIER_PATH):
        r->path_kind = PATH_EXACT, s = m->path;
        break;
    case R(ROUTE_MATCH__PATH_SPECIFIER_PATH_SEPARATED_PREFIX): {
        r->path_kind = PATH_SEP_PREFIX, s = m->path_separated_prefix;
        size_t n = strlen(s);
        if (n < 2 || strpbrk(s, "?#") || s[n - 1] == '/') {
            char *p = sub(path, "path_separated_prefix");
            fail(c, PL_EINVAL, p,
                 "'%s' must start with a path, contain no '?' or '#' and not end with '/'", s);
            free(p);
            return PL_EINVAL;
        }
        break;
    }
    case R(ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX): {
        r->path_kind = PATH_REGEX;
        char *p = sub(path, "safe_regex");
        int rc = compile_regex_matcher(c, &r->path_re, m->safe_regex, true, p);
        free(p);
        return rc;
    }
    case R(ROUTE_MATCH__PATH_SPECIFIER__NOT_SET):
        return fail(c, PL_EINVAL, path,
                    "a route match needs one of prefix, path, safe_regex, path_separated_prefix");
    default:
        return fail(c, PL_ENOTSUP, path,
                    "only prefix, path, safe_regex and path_separated_prefix are supported");
    }
    r->path_len = strlen(s);
    r->path = pl_router_pool_dup(c->t, s, r->path_len);
    return 0;
}

static int compile_match(struct pl_router_cctx *c, struct rt_route_x *r,
                         const Envoy__Config__Route__V3__RouteMatch *m, const char *path)
{
    int rc = compile_path(c, r, m, path);
    if (m->runtime_fraction) {
        char *p = sub(path, "runtime_fraction");
        rc = fail(c, PL_ENOTSUP, p, "runtime_fraction is not supported");
        free(p);
    }
    if (m->tls_context) {
        char *p = sub(path, "tls_context");
        rc = fail(c, PL_ENOTSUP, p, "tls_context is not supported");
        free(p);
    }
    if (m->n_dynamic_metadata) {
        char *p = sub(path, "dynamic_metadata");
        rc = fail(c, PL_ENOTSUP, p, "dynamic_metadata is not supported");
        free(p);
    }
    r->grpc = m->grpc != NULL;
    r->hm = m->n_headers ? pl_calloc(m->n_headers, sizeof(*r->hm)) : NULL;
    r->nhm = m->n_headers;
    for (size_t i = 0; i < m->n_headers; i++) {
        char *p = sub(path, "headers[%zu]", i);
        if (compile_hdrmatch(c, &r->hm[i], m->headers[i], p) < 0)
            rc = PL_EINVAL;
        free(p);
    }
    r->qm = m->n_query_parameters ? pl_calloc(m->n_query_parameters, sizeof(*r->qm)) : NULL;
    r->nqm = m->n_query_parameters;
    for (size_t i = 0; i < m->n_query_parameters; i++) {
        char *p = sub(path, "query_parameters[%zu]", i);
        if (compile_qpmatch(c, &r->qm[i], m->query_parameters[i], p) < 0)
            rc = PL_EINVAL;
        free(p);
    }
    return rc;
}

int pl_router_compile_mut(struct pl_router_cctx *c, struct rt_mut *m,
                          Envoy__Config__Core__V3__HeaderValueOption *const *req_add,
                          size_t n_req_add, char *const *req_rm, size_t n_req_rm,
                          Envoy__Config__Core__V3__HeaderValueOption *const *resp_add,
                          size_t n_resp_add, char *const *resp_rm, size_t n_resp_rm,
                          const char *path)
{
    int rc = pl_router_compile_ops(&m->req, true, req_add, n_req_add, req_rm, n_req_rm, path,
                                   "request_headers_to_add", "request_headers_to_remove", c->err);
    rc |= pl_router_compile_ops(&m->resp, false, resp_add, n_resp_add, resp_rm, n_resp_rm, path,
                                "response_headers_to_add", "response_headers_to_remove", c->err);
    if (rc < 0 && c->rc == 0)
        c->rc = PL_EINVAL;
    return rc < 0 ? PL_EINVAL : 0;
}

static void compile_route_x(struct pl_router_cctx *c, struct rt_route_x *r,
                            const Envoy__Config__Route__V3__Route *cfg, const char *path)
{
    r->info.name = *cfg->name ? pl_strdup(cfg->name) : ""; /* most routes have no name */
    if (!cfg->match) {
        fail(c, PL_EINVAL, path, "a route needs a match");
    } else {
        char *p = sub(path, "match");
        compile_match(c, r, cfg->match, p);
        free(p);
    }
    pl_router_compile_action(c, r, cfg, path);
    r->mut = &pl_router_no_mut;
    if (!cfg->n_request_headers_to_add && !cfg->n_request_headers_to_remove &&
        !cfg->n_response_headers_to_add && !cfg->n_response_headers_to_remove)
        return; /* most routes: no 80-byte mutation block of their own */
    struct rt_mut *m = pl_calloc(1, sizeof(*m));
    r->mut = m;
    pl_router_compile_mut(c, m, cfg->request_headers_to_add, cfg->n_request_headers_to_add,
                          cfg->request_headers_to_remove, cfg->n_request_headers_to_remove,
                          cfg->response_headers_to_add, cfg->n_response_headers_to_add,
                          cfg->response_headers_to_remove, cfg->n_response_headers_to_remove, path);
}

/* True when x holds nothing beyond what pl_route has and its info is the plain one. */
static bool route_is_plain(const struct rt_route_x *x, const struct pl_route_info *plain)
{
    const struct pl_route_info *i = &x->info;
    return i->kind == plain->kind && !*i->name && i->timeout_ms == plain->timeout_ms &&
           i->idle_timeout_ms == plain->idle_timeout_ms &&
           i->auto_host_rewrite == plain->auto_host_rewrite &&
           i->cluster_not_found_status == plain->cluster_not_found_status &&
           i->status == plain->status && !i->body && !i->body_len && x->cluster &&
           !x->path_re.code && !x->nhm && !x->nqm && !x->cluster_header && !x->nwcs && !x->nhp &&
           !x->host_rewrite && !x->has_prefix_rewrite && !x->rewrite_re.code && !x->rewrite_sub &&
           !x->scheme_redirect && !x->host_redirect && !x->port_redirect && !x->path_redirect &&
           !x->strip_query && x->mut == &pl_router_no_mut;
}

/* Compiles a route into r the general way: x is kept only when the route needs more. */
static void compile_route_full(struct pl_router_cctx *c, struct pl_route_vhost *vh,
                               struct pl_route *r, const Envoy__Config__Route__V3__Route *cfg,
                               const char *path)
{
    struct rt_route_x x = {.info.vhost_name = vh->name};
    compile_route_x(c, &x, cfg, path);
    r->path = x.path;
    r->path_len = (uint32_t)x.path_len;
    r->path_kind = x.path_kind;
    r->case_sensitive = x.case_sensitive;
    r->grpc = x.grpc;
    r->cluster = x.cluster;
    r->cluster_len = (uint32_t)x.cluster_len;
    if (route_is_plain(&x, &vh->plain_info)) {
        r->info = &vh->plain_info;
        return;
    }
    struct rt_route_x *rx = pl_malloc(sizeof(*rx));
    *rx = x;
    r->x = rx;
    r->info = &rx->info;
}

/* Whether cfg is the common route that compiles to a pl_route alone without an error: no name,
 * a prefix or path match and nothing else, a route action naming a cluster and nothing else that
 * compile_route_x reads. Most routes of a large table are this. */
static bool cfg_is_plain(const Envoy__Config__Route__V3__Route *cfg)
{
    const Envoy__Config__Route__V3__RouteMatch *m = cfg->match;
    const Envoy__Config__Route__V3__RouteAction *a = cfg->route;
    return !*cfg->name && m && cfg->action_case == R(ROUTE__ACTION_ROUTE) &&
           (m->path_specifier_case == R(ROUTE_MATCH__PATH_SPECIFIER_PREFIX) ||
            m->path_specifier_case == R(ROUTE_MATCH__PATH_SPECIFIER_PATH)) &&
           !m->case_sensitive && !m->runtime_fraction && !m->tls_context &&
           !m->n_dynamic_metadata && !m->grpc && !m->n_headers && !m->n_query_parameters &&
           a->cluster_specifier_case == R(ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER) && *a->cluster &&
           a->cluster_not_found_response_code ==
               R(ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__SERVICE_UNAVAILABLE) &&
           !*a->prefix_rewrite && !a->regex_rewrite && !a->path_rewrite_policy &&
           a->host_rewrite_specifier_case == R(ROUTE_ACTION__HOST_REWRITE_SPECIFIER__NOT_SET) &&
           !a->timeout && !a->idle_timeout && !a->n_hash_policy && !cfg->n_request_headers_to_add &&
           !cfg->n_request_headers_to_remove && !cfg->n_response_headers_to_add &&
           !cfg->n_response_headers_to_remove;
}

/* Compiles a route into r: its hot part, and x only when the route needs more. path is the
 * route's field path without its index (base, then "[idx]"), spelled out only when needed. */
static void compile_route(struct pl_router_cctx *c, struct pl_route_vhost *vh, struct pl_route *r,
                          const Envoy__Config__Route__V3__Route *cfg, const char *base, size_t idx)
{
    if (cfg_is_plain(cfg)) { /* what compile_route_x and route_is_plain come to, directly */
        const Envoy__Config__Route__V3__RouteMatch *m = cfg->match;
        bool prefix = m->path_specifier_case == R(ROUTE_MATCH__PATH_SPECIFIER_PREFIX);
        const char *s = prefix ? m->prefix : m->path;
        size_t n = strlen(s), cn = strlen(cfg->route->cluster);
        r->path = pl_router_pool_dup(c->t, s, n);
        r->path_len = (uint32_t)n;
        r->path_kind = prefix ? PATH_PREFIX : PATH_EXACT;
        r->case_sensitive = true;
        r->cluster = pl_router_pool_dup(c->t, cfg->route->cluster, cn);
        r->cluster_len = (uint32_t)cn;
        r->info = &vh->plain_info;
        return;
    }
    char *path = sub(base, "routes[%zu]", idx);
    compile_route_full(c, vh, r, cfg, path);
    free(path);
}

const struct rt_mut pl_router_no_mut;

/* ---- domain maps ---- */

static uint64_t dhash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch + 32);
        h = (h ^ ch) * 1099511628211ull;
    }
    return h;
}

struct pl_route_vhost *pl_router_dmap_get(const struct rt_dmap *m, const char *s, size_t n)
{
    if (!m->cap)
        return NULL;
    for (size_t i = dhash(s, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const struct rt_dmap_slot *sl = &m->slots[i];
        if (!sl->key)
            return NULL;
        if (sl->len == n && !strncasecmp(sl->key, s, n))
            return sl->vh;
    }
}

/* Inserts key (lower-case, owned by the map); returns false if it is already there. */
static bool dmap_put(struct rt_dmap *m, char *key, size_t n, struct pl_route_vhost *vh)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct rt_dmap old = *m;
        m->cap = m->cap ? m->cap * 2 : 16;
        m->slots = pl_calloc(m->cap, sizeof(*m->slots));
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slots[i].key)
                dmap_put(m, old.slots[i].key, old.slots[i].len, old.slots[i].vh);
        free(old.slots);
    }
    size_t i = dhash(key, n) & (m->cap - 1);
    for (; m->slots[i].key; i = (i + 1) & (m->cap - 1))
        if (m->slots[i].len == n && !memcmp(m->slots[i].key, key, n))
            return false;
    m->slots[i] = (struct rt_dmap_slot){key, n, vh};
    m->n++;
    for (size_t k = 0; k < m->nlens; k++)
        if (m->lens[k] == n)
            return true;
    m->lens = pl_realloc(m->lens, (m->nlens + 1) * sizeof(*m->lens));
    size_t k = m->nlens++;
    for (; k > 0 && m->lens[k - 1] < n; k--) /* keep longest first */
        m->lens[k] = m->lens[k - 1];
    m->lens[k] = n;
    return true;
}

static void dmap_free(struct rt_dmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    free(m->lens);
}

static void add_domain(struct pl_router_cctx *c, struct pl_route_vhost *vh, const char *d,
                       const char *path)
{
    size_t n;
    char *key = dup_lower(d, &n);
    bool ok = true;
    if (n == 0) {
        free(key);
        fail(c, PL_EINVAL, path, "a domain must not be empty");
        return;
    }
    if (n == 1 && key[0] == '*') {
        free(key);
        if (c->t->any) {
            fail(c, PL_EINVAL, path,
                 "only a single wildcard domain '*' is permitted in a route configuration");
            return;
        }
        c->t->any = vh;
        return;
    }
    if (key[0] == '*') {
        memmove(key, key + 1, n); /* keeps the NUL */
        ok = dmap_put(&c->t->suffix, key, n - 1, vh);
    } else if (key[n - 1] == '*') {
        key[n - 1] = 0;
        ok = dmap_put(&c->t->prefix, key, n - 1, vh);
    } else {
        ok = dmap_put(&c->t->exact, key, n, vh);
    }
    if (!ok) {
        free(key);
        fail(c, PL_EINVAL, path,
             "only unique values for domains are permitted: duplicate entry of domain '%s'", d);
    }
}

/* ---- table ---- */

static void free_re(struct rt_regex *re)
{
    pcre2_code_free(re->code);
}
void pl_router_free_regex(struct rt_regex *re)
{
    free_re(re);
}

void pl_router_free_strmatch(struct rt_strmatch *sm)
{
    free(sm->s);
    free_re(&sm->re);
}

void pl_router_free_mut(struct rt_mut *m)
{
    pl_router_free_ops(&m->req);
    pl_router_free_ops(&m->resp);
}

static void free_route(struct pl_route *r)
{
    struct rt_route_x *x = (struct rt_route_x *)r->x;
    if (!x)
        return;
    if (x->info.name && *x->info.name)
        free((char *)x->info.name);
    free((char *)x->info.body);
    free_re(&x->path_re);
    for (size_t i = 0; i < x->nhm; i++) {
        free(x->hm[i].name);
        pl_router_free_strmatch(&x->hm[i].sm);
    }
    free(x->hm);
    for (size_t i = 0; i < x->nqm; i++) {
        free(x->qm[i].name);
        pl_router_free_strmatch(&x->qm[i].sm);
    }
    free(x->qm);
    free(x->cluster_header);
    for (size_t i = 0; i < x->nwcs; i++) {
        free(x->wcs[i].name);
        free(x->wcs[i].cluster_header);
        free(x->wcs[i].host_rewrite);
        pl_router_free_mut(&x->wcs[i].mut);
    }
    free(x->wcs);
    for (size_t i = 0; i < x->nhp; i++)
        free(x->hp[i].name);
    free(x->hp);
    free(x->host_rewrite);
    free(x->prefix_rewrite);
    free_re(&x->rewrite_re);
    free(x->rewrite_sub);
    free(x->scheme_redirect);
    free(x->host_redirect);
    free(x->port_redirect);
    free(x->path_redirect);
    if (x->mut && x->mut != &pl_router_no_mut) {
        pl_router_free_mut((struct rt_mut *)x->mut);
        free((void *)x->mut);
    }
    free(x);
}

/* ---- the string pool ---- */

struct rt_pool_chunk {
    struct rt_pool_chunk *next;
    char data[];
};

#define POOL_CHUNK 16384u

const char *pl_router_pool_dup(struct pl_route_table *t, const char *s, size_t n)
{
    if (n + 1 > t->pool_left) {
        size_t cap = n + 1 > POOL_CHUNK / 4 ? n + 1 : POOL_CHUNK - sizeof(struct rt_pool_chunk);
        struct rt_pool_chunk *ch = pl_malloc(sizeof(*ch) + cap);
        if (cap == n + 1 && t->pool) { /* a long string: its own chunk, the current one stays */
            ch->next = t->pool->next;
            t->pool->next = ch;
            memcpy(ch->data, s, n);
            ch->data[n] = 0;
            return ch->data;
        }
        ch->next = t->pool;
        t->pool = ch;
        t->pool_cur = ch->data;
        t->pool_left = cap;
    }
    char *d = t->pool_cur;
    memcpy(d, s, n);
    d[n] = 0;
    t->pool_cur += n + 1;
    t->pool_left -= n + 1;
    return d;
}

static void pool_free(struct pl_route_table *t)
{
    for (struct rt_pool_chunk *ch = t->pool, *next; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
}

void pl_route_table_free(struct pl_route_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nvhosts; i++) {
        struct pl_route_vhost *vh = &t->vhosts[i];
        for (size_t j = 0; j < vh->nroutes; j++)
            free_route(&vh->routes[j]);
        free(vh->routes);
        free(vh->name);
        pl_router_free_mut(&vh->mut);
    }
    free(t->vhosts);
    dmap_free(&t->exact);
    dmap_free(&t->suffix);
    dmap_free(&t->prefix);
    pl_router_free_mut(&t->mut);
    pcre2_match_context_free(t->mctx);
    pool_free(t);
    free(t->name);
    free(t);
}

const char *pl_route_table_name(const struct pl_route_table *t)
{
    return t->name;
}

int pl_router_compile(const Envoy__Config__Route__V3__RouteConfiguration *cfg,
                      const char *path_prefix, struct pl_route_table **out, struct pl_err *err)
{
    const char *base = path_prefix ? path_prefix : "";
    struct pl_route_table *t = pl_calloc(1, sizeof(*t));
    struct pl_router_cctx c = {.t = t, .err = err};
    *out = NULL;
    t->name = pl_strdup(cfg->name);
    t->ignore_port = cfg->ignore_port_in_host_matching;
    t->most_specific_wins = cfg->most_specific_header_mutations_wins;
    t->max_body = cfg->max_direct_response_body_size_bytes
                      ? cfg->max_direct_response_body_size_bytes->value
                      : PL_ROUTER_MAX_DIRECT_BODY;
    t->mctx = pcre2_match_context_create(NULL);
    if (!t->mctx)
        pl_die("out of memory");
    pcre2_set_match_limit(t->mctx, PL_ROUTER_MATCH_LIMIT);
    pcre2_set_depth_limit(t->mctx, PL_ROUTER_DEPTH_LIMIT);
    if (gethostname(t->hostname, sizeof(t->hostname) - 1) < 0)
        t->hostname[0] = 0;
    if (cfg->ignore_path_parameters_in_path_matching) {
        char *p = sub(base, "ignore_path_parameters_in_path_matching");
        fail(&c, PL_ENOTSUP, p, "ignore_path_parameters_in_path_matching is not supported");
        free(p);
    }
    pl_router_compile_mut(&c, &t->mut, cfg->request_headers_to_add, cfg->n_request_headers_to_add,
                          cfg->request_headers_to_remove, cfg->n_request_headers_to_remove,
                          cfg->response_headers_to_add, cfg->n_response_headers_to_add,
                          cfg->response_headers_to_remove, cfg->n_response_headers_to_remove, base);
    t->vhosts = cfg->n_virtual_hosts ? pl_calloc(cfg->n_virtual_hosts, sizeof(*t->vhosts)) : NULL;
    t->nvhosts = cfg->n_virtual_hosts;
    for (size_t i = 0; i < cfg->n_virtual_hosts; i++) {
        const Envoy__Config__Route__V3__VirtualHost *v = cfg->virtual_hosts[i];
        struct pl_route_vhost *vh = &t->vhosts[i];
        char *vp = sub(base, "virtual_hosts[%zu]", i);
        vh->name = pl_strdup(v->name);
        vh->plain_info = (struct pl_route_info){.kind = PL_ROUTE_CLUSTER,
                                                .name = "",
                                                .vhost_name = vh->name,
                                                .timeout_ms = 15000,
                                                .idle_timeout_ms = -1,
                                                .cluster_not_found_status = 503};
        if (v->n_domains == 0) {
            char *p = sub(vp, "domains");
            fail(&c, PL_EINVAL, p, "a virtual host needs at least one domain");
            free(p);
        }
        for (size_t k = 0; k < v->n_domains; k++) {
            char *p = sub(vp, "domains[%zu]", k);
            add_domain(&c, vh, v->domains[k], p);
            free(p);
        }
        if (v->require_tls) {
            char *p = sub(vp, "require_tls");
            fail(&c, PL_ENOTSUP, p, "require_tls is not supported");
            free(p);
        }
        pl_router_compile_mut(&c, &vh->mut, v->request_headers_to_add, v->n_request_headers_to_add,
                              v->request_headers_to_remove, v->n_request_headers_to_remove,
                              v->response_headers_to_add, v->n_response_headers_to_add,
                              v->response_headers_to_remove, v->n_response_headers_to_remove, vp);
        vh->routes = v->n_routes ? pl_calloc(v->n_routes, sizeof(*vh->routes)) : NULL;
        vh->nroutes = v->n_routes;
        for (size_t j = 0; j < v->n_routes; j++)
            compile_route(&c, vh, &vh->routes[j], v->routes[j], vp, j);
        free(vp);
    }
    if (c.rc < 0) {
        pl_route_table_free(t);
        return c.rc;
    }
    *out = t;
    return 0;
}
