/* Compiles a route's action: RouteAction (clusters, rewrites, timeouts, hash policies),
 * RedirectAction and DirectResponseAction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PL_ROUTER_COMPILE_C
#include "router/router_internal.h"

#define R(x) ENVOY__CONFIG__ROUTE__V3__##x

/* Converts an RE2 rewrite string (\0..\9 groups, \\ a backslash) to pcre2_substitute syntax. */
static int convert_sub(struct pl_router_cctx *c, const char *s, uint32_t ncap, char **out,
                       const char *path)
{
    size_t n = strlen(s), w = 0;
    char *d = pl_malloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '$') {
            d[w++] = '$', d[w++] = '$';
        } else if (s[i] != '\\') {
            d[w++] = s[i];
        } else if (i + 1 < n && s[i + 1] == '\\') {
            d[w++] = '\\', i++;
        } else if (i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
            uint32_t g = (uint32_t)(s[i + 1] - '0');
            if (g > ncap) {
                free(d);
                return fail(c, PL_EINVAL, path,
                            "substitution '%s' refers to group \\%u but the pattern has %u", s, g,
                            ncap);
            }
            w += (size_t)sprintf(d + w, "${%u}", g);
            i++;
        } else {
            free(d);
            return fail(c, PL_EINVAL, path,
                        "invalid rewrite pattern '%s': a backslash must be followed by a digit "
                        "or a backslash",
                        s);
        }
    }
    d[w] = 0;
    *out = d;
    return 0;
}

static int compile_regex_rewrite(struct pl_router_cctx *c, struct rt_route_x *r,
                                 const Envoy__Type__Matcher__V3__RegexMatchAndSubstitute *rr,
                                 const char *path)
{
    if (!rr->pattern) {
        char *p = sub(path, "pattern");
        fail(c, PL_EINVAL, p, "a pattern is required");
        free(p);
        return PL_EINVAL;
    }
    char *p = sub(path, "pattern");
    int rc = compile_regex_matcher(c, &r->rewrite_re, rr->pattern, false, p);
    free(p);
    if (rc < 0)
        return rc;
    p = sub(path, "substitution");
    rc = convert_sub(c, rr->substitution, r->rewrite_re.ncap, &r->rewrite_sub, p);
    free(p);
    return rc;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static int check_value(struct pl_router_cctx *c, const char *path, const char *field, const char *v)
{
    if (!has_crlf(v))
        return 0;
    char *p = sub(path, "%s", field);
    fail(c, PL_EINVAL, p, "must not contain CR or LF characters");
    free(p);
    return PL_EINVAL;
}

static int compile_hash_policy(struct pl_router_cctx *c, struct rt_hash_policy *h,
                               const Envoy__Config__Route__V3__RouteAction__HashPolicy *hp,
                               const char *path)
{
    h->terminal = hp->terminal;
    const char *name = NULL;
    char *p = NULL;
    int rc = 0;
    switch (hp->policy_specifier_case) {
    case R(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER):
        h->kind = HP_HEADER, name = hp->header->header_name;
        p = sub(path, "header.header_name");
        if (hp->header->regex_rewrite) {
            char *q = sub(path, "header.regex_rewrite");
            rc = fail(c, PL_ENOTSUP, q, "regex_rewrite in a hash policy is not supported");
            free(q);
        }
        break;
    case R(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_COOKIE):
        h->kind = HP_COOKIE, name = hp->cookie->name;
        p = sub(path, "cookie.name");
        if (hp->cookie->n_attributes) {
            char *q = sub(path, "cookie.attributes");
            rc = fail(c, PL_ENOTSUP, q, "cookie attributes are not supported");
            free(q);
        }
        break;
    case R(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_CONNECTION_PROPERTIES):
        h->kind = hp->connection_properties->source_ip ? HP_SOURCE_IP : 0;
        return 0;
    case R(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_QUERY_PARAMETER):
        h->kind = HP_QUERY, name = hp->query_parameter->name;
        p = sub(path, "query_parameter.name");
        break;
    case R(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER__NOT_SET):
        return fail(c, PL_EINVAL, path,
                    "a hash policy needs one of header, cookie, connection_properties, "
                    "query_parameter");
    default:
        return fail(c, PL_ENOTSUP, path, "filter_state hash policies are not supported");
    }
    if (!*name)
        rc = fail(c, PL_EINVAL, p, "must not be empty");
    else
        h->name = h->kind == HP_HEADER ? dup_lower(name, &h->len) : pl_strdup(name);
    h->len = strlen(name);
    if (h->kind == HP_HEADER && h->name)
        h->pseudo = pl_router_pseudo(h->name, h->len);
    free(p);
    return rc;
}

static int compile_weighted(struct pl_router_cctx *c, struct rt_route_x *r,
                            const Envoy__Config__Route__V3__WeightedCluster *w, const char *path)
{
    int rc = 0;
    if (w->n_clusters == 0) {
        char *p = sub(path, "clusters");
        fail(c, PL_EINVAL, p, "weighted_clusters needs at least one cluster");
        free(p);
        return PL_EINVAL;
    }
    if (w->random_value_specifier_case == R(WEIGHTED_CLUSTER__RANDOM_VALUE_SPECIFIER_HEADER_NAME)) {
        char *p = sub(path, "header_name");
        rc = fail(c, PL_ENOTSUP, p, "header_name is not supported");
        free(p);
    }
    r->wcs = pl_calloc(w->n_clusters, sizeof(*r->wcs));
    r->nwcs = w->n_clusters;
    for (size_t i = 0; i < w->n_clusters; i++) {
        const Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw = w->clusters[i];
        struct pl_route_wc *wc = &r->wcs[i];
        char *p = sub(path, "clusters[%zu]", i);
        if (*cw->name && *cw->cluster_header) {
            rc = fail(c, PL_EINVAL, p, "only one of name or cluster_header may be set");
        } else if (*cw->cluster_header) {
            wc->cluster_header = dup_lower(cw->cluster_header, &wc->cluster_header_len);
        } else if (*cw->name) {
            wc->name = pl_strdup(cw->name);
            wc->name_len = strlen(cw->name);
        } else {
            rc = fail(c, PL_EINVAL, p, "one of name or cluster_header is required");
        }
        wc->weight = cw->weight ? cw->weight->value : 0;
        r->total_weight += wc->weight;
        if (cw->host_rewrite_specifier_case ==
            R(WEIGHTED_CLUSTER__CLUSTER_WEIGHT__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL)) {
            if (check_value(c, p, "host_rewrite_literal", cw->host_rewrite_literal) == 0 &&
                *cw->host_rewrite_literal)
                wc->host_rewrite = pl_strdup(cw->host_rewrite_literal);
        }
        if (cw->metadata_match) {
            char *q = sub(p, "metadata_match");
            rc = fail(c, PL_ENOTSUP, q, "metadata_match is not supported");
            free(q);
        }
        if (pl_router_compile_mut(c, &wc->mut, cw->request_headers_to_add,
                                  cw->n_request_headers_to_add, cw->request_headers_to_remove,
                                  cw->n_request_headers_to_remove, cw->response_headers_to_add,
                                  cw->n_response_headers_to_add, cw->response_headers_to_remove,
                                  cw->n_response_headers_to_remove, p) < 0)
            rc = PL_EINVAL;
        free(p);
    }
    if (r->total_weight == 0)
        rc = fail(c, PL_EINVAL, path,
                  "sum of weights in the weighted_cluster must be greater than 0");
    else if (r->total_weight > UINT32_MAX)
        rc = fail(c, PL_EINVAL, path, "the sum of weights of all weighted clusters exceeds %u",
                  UINT32_MAX);
    return rc;
}

static int compile_route_action(struct pl_router_cctx *c, struct rt_route_x *r,
                                const Envoy__Config__Route__V3__RouteAction *a, const char *path)
{
    int rc = 0;
    char *p;
    r->info.kind = PL_ROUTE_CLUSTER;
    switch (a->cluster_specifier_case) {
    case R(ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER):
        if (!*a->cluster) {
            p = sub(path, "cluster");
            rc = fail(c, PL_EINVAL, p, "must not be empty");
            free(p);
        }
        r->cluster_len = strlen(a->cluster);
        r->cluster = pl_router_pool_dup(c->t, a->cluster, r->cluster_len);
        break;
    case R(ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_HEADER):
        if (!*a->cluster_header || a->cluster_header[0] == ':') {
            p = sub(path, "cluster_header");
            rc = fail(c, PL_EINVAL, p, "must name a regular request header");
            free(p);
        }
        r->cluster_header = dup_lower(a->cluster_header, &r->cluster_header_len);
        break;
    case R(ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS):
        p = sub(path, "weighted_clusters");
        rc = compile_weighted(c, r, a->weighted_clusters, p);
        free(p);
        break;
    case R(ROUTE_ACTION__CLUSTER_SPECIFIER__NOT_SET):
        rc = fail(c, PL_EINVAL, path,
                  "a route action needs one of cluster, cluster_header, weighted_clusters");
        break;
    default:
        rc = fail(c, PL_ENOTSUP, path, "cluster specifier plugins are not supported");
    }
    switch (a->cluster_not_found_response_code) {
    case R(ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__NOT_FOUND):
        r->info.cluster_not_found_status = 404;
        break;
    case R(ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__INTERNAL_SERVER_ERROR):
        r->info.cluster_not_found_status = 500;
        break;
    default:
        r->info.cluster_not_found_status = 503;
    }
    if (*a->prefix_rewrite && a->regex_rewrite) {
        rc = fail(c, PL_EINVAL, path, "specify only one of prefix_rewrite or regex_rewrite");
    } else if (*a->prefix_rewrite) {
        if (check_value(c, path, "prefix_rewrite", a->prefix_rewrite) == 0) {
            r->has_prefix_rewrite = true;
            r->prefix_rewrite = pl_strdup(a->prefix_rewrite);
            r->prefix_rewrite_len = strlen(a->prefix_rewrite);
        }
    } else if (a->regex_rewrite) {
        p = sub(path, "regex_rewrite");
        if (compile_regex_rewrite(c, r, a->regex_rewrite, p) < 0)
            rc = PL_EINVAL;
        free(p);
    }
    if (a->path_rewrite_policy) {
        p = sub(path, "path_rewrite_policy");
        rc = fail(c, PL_ENOTSUP, p, "path_rewrite_policy is not supported");
        free(p);
    }
    switch (a->host_rewrite_specifier_case) {
    case R(ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL):
        if (check_value(c, path, "host_rewrite_literal", a->host_rewrite_literal) == 0 &&
            *a->host_rewrite_literal)
            r->host_rewrite = pl_strdup(a->host_rewrite_literal);
        break;
    case R(ROUTE_ACTION__HOST_REWRITE_SPECIFIER_AUTO_HOST_REWRITE):
        r->info.auto_host_rewrite = a->auto_host_rewrite && a->auto_host_rewrite->value;
        break;
    case R(ROUTE_ACTION__HOST_REWRITE_SPECIFIER__NOT_SET):
        break;
    default:
        rc = fail(c, PL_ENOTSUP, path,
                  "only host_rewrite_literal and auto_host_rewrite are "
                  "supported host rewrites");
    }
    r->info.timeout_ms = a->timeout ? duration_ms(a->timeout) : 15000;
    r->info.idle_timeout_ms = a->idle_timeout ? duration_ms(a->idle_timeout) : -1;
    if (a->n_hash_policy) {
        r->hp = pl_calloc(a->n_hash_policy, sizeof(*r->hp));
        r->nhp = a->n_hash_policy;
        for (size_t i = 0; i < a->n_hash_policy; i++) {
            p = sub(path, "hash_policy[%zu]", i);
            if (compile_hash_policy(c, &r->hp[i], a->hash_policy[i], p) < 0)
                rc = PL_EINVAL;
            free(p);
        }
    }
    return rc;
}

static int compile_redirect(struct pl_router_cctx *c, struct rt_route_x *r,
                            const Envoy__Config__Route__V3__RedirectAction *a, const char *path)
{
    int rc = 0;
    r->info.kind = PL_ROUTE_REDIRECT;
    switch (a->scheme_rewrite_specifier_case) {
    case R(REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_HTTPS_REDIRECT):
        if (a->https_redirect)
            r->scheme_redirect = pl_strdup("https");
        break;
    case R(REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_SCHEME_REDIRECT):
        if (*a->scheme_redirect)
            r->scheme_redirect = dup_lower(a->scheme_redirect, NULL);
        rc |= check_value(c, path, "scheme_redirect", a->scheme_redirect);
        break;
    default:
        break;
    }
    if (*a->host_redirect && check_value(c, path, "host_redirect", a->host_redirect) == 0)
        r->host_redirect = pl_strdup(a->host_redirect);
    if (a->port_redirect) {
        if (a->port_redirect > 65535) {
            char *p = sub(path, "port_redirect");
            rc = fail(c, PL_EINVAL, p, "%u is not a port", a->port_redirect);
            free(p);
        }
        r->port_redirect = pl_asprintf(":%u", a->port_redirect);
    }
    switch (a->path_rewrite_specifier_case) {
    case R(REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PATH_REDIRECT):
        if (check_value(c, path, "path_redirect", a->path_redirect) == 0 && *a->path_redirect) {
            r->path_redirect = pl_strdup(a->path_redirect);
            r->path_redirect_has_query = strchr(a->path_redirect, '?') != NULL;
        }
        break;
    case R(REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PREFIX_REWRITE):
        if (check_value(c, path, "prefix_rewrite", a->prefix_rewrite) == 0) {
            r->has_prefix_rewrite = true;
            r->prefix_rewrite = pl_strdup(a->prefix_rewrite);
            r->prefix_rewrite_len = strlen(a->prefix_rewrite);
        }
        break;
    case R(REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_REGEX_REWRITE): {
        char *p = sub(path, "regex_rewrite");
        if (compile_regex_rewrite(c, r, a->regex_rewrite, p) < 0)
            rc = PL_EINVAL;
        free(p);
        break;
    }
    default:
        break;
    }
    static const int codes[] = {301, 302, 303, 307, 308};
    if ((unsigned)a->response_code >= sizeof(codes) / sizeof(codes[0])) {
        char *p = sub(path, "response_code");
        rc = fail(c, PL_EINVAL, p, "unknown redirect response code %d", (int)a->response_code);
        free(p);
    } else {
        r->info.status = codes[a->response_code];
    }
    r->strip_query = a->strip_query;
    return rc;
}

/* Reads a DataSource into *out (NUL-terminated) and *len. */
static int read_source(struct pl_router_cctx *c, const Envoy__Config__Core__V3__DataSource *d,
                       const char *path, char **out, size_t *len)
{
    const char *src = NULL;
    size_t n = 0;
    switch (d->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        src = d->inline_string, n = strlen(src);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        src = (const char *)d->inline_bytes.data, n = d->inline_bytes.len;
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
        src = getenv(d->environment_variable);
        if (!src) {
            char *p = sub(path, "environment_variable");
            fail(c, PL_EINVAL, p, "environment variable '%s' is not set", d->environment_variable);
            free(p);
            return PL_EINVAL;
        }
        n = strlen(src);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME: {
        char *p = sub(path, "filename");
        FILE *f = fopen(d->filename, "rb");
        if (!f) {
            fail(c, PL_EIO, p, "cannot open '%s': %s", d->filename, strerror(errno));
            free(p);
            return PL_EIO;
        }
        size_t cap = (size_t)c->t->max_body + 2, got = 0;
        char *buf = pl_malloc(cap);
        got = fread(buf, 1, cap - 1, f);
        bool bad = ferror(f);
        fclose(f);
        if (bad) {
            free(buf);
            fail(c, PL_EIO, p, "cannot read '%s'", d->filename);
            free(p);
            return PL_EIO;
        }
        free(p);
        buf[got] = 0;
        *out = buf, *len = got;
        return 0;
    }
    default:
        return fail(c, PL_EINVAL, path,
                    "a data source needs one of filename, inline_bytes, "
                    "inline_string, environment_variable");
    }
    *out = pl_malloc(n + 1);
    memcpy(*out, src, n);
    (*out)[n] = 0;
    *len = n;
    return 0;
}

static int compile_direct(struct pl_router_cctx *c, struct rt_route_x *r,
                          const Envoy__Config__Route__V3__DirectResponseAction *a, const char *path)
{
    int rc = 0;
    r->info.kind = PL_ROUTE_DIRECT_RESPONSE;
    r->info.status = (int)a->status;
    if (a->status < 200 || a->status >= 600) {
        char *p = sub(path, "status");
        rc = fail(c, PL_EINVAL, p, "%u is not a status code in [200, 600)", a->status);
        free(p);
    }
    if (a->body) {
        char *p = sub(path, "body"), *body = NULL;
        size_t len = 0;
        if (read_source(c, a->body, p, &body, &len) < 0) {
            rc = PL_EINVAL;
        } else if (len > c->t->max_body) {
            rc = fail(c, PL_EINVAL, p, "response body size is %s%zu bytes; maximum is %u",
                      len > c->t->max_body + 0u &&
                              a->body->specifier_case ==
                                  ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME
                          ? "over "
                          : "",
                      a->body->specifier_case ==
                              ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME
                          ? (size_t)c->t->max_body
                          : len,
                      c->t->max_body);
            free(body);
        } else {
            r->info.body = body;
            r->info.body_len = len;
        }
        free(p);
    }
    return rc;
}

int pl_router_compile_action(struct pl_router_cctx *c, struct rt_route_x *r,
                             const Envoy__Config__Route__V3__Route *cfg, const char *path)
{
    char *p;
    int rc;
    switch (cfg->action_case) {
    case R(ROUTE__ACTION_ROUTE):
        p = sub(path, "route");
        rc = compile_route_action(c, r, cfg->route, p);
        break;
    case R(ROUTE__ACTION_REDIRECT):
        p = sub(path, "redirect");
        rc = compile_redirect(c, r, cfg->redirect, p);
        break;
    case R(ROUTE__ACTION_DIRECT_RESPONSE):
        p = sub(path, "direct_response");
        rc = compile_direct(c, r, cfg->direct_response, p);
        break;
    case R(ROUTE__ACTION__NOT_SET):
        return fail(c, PL_EINVAL, path, "a route needs one of route, redirect, direct_response");
    default:
        return fail(c, PL_ENOTSUP, path,
                    "only route, redirect and direct_response actions are supported");
    }
    free(p);
    return rc;
}
