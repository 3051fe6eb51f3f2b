/* Private to src/router: the compiled form of a route table. Everything here is written once by
 * compile.c and only read afterwards (by any number of threads). */
#ifndef PL_ROUTER_INTERNAL_H
#define PL_ROUTER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "router/router.h"

/* Bounds catastrophic backtracking (RE2, which Envoy uses, is linear-time; PCRE2 is not): a
 * match that hits the limit counts as no match. */
#define PL_ROUTER_MATCH_LIMIT 200000u
#define PL_ROUTER_DEPTH_LIMIT 10000u
/* Envoy's default max_direct_response_body_size_bytes. */
#define PL_ROUTER_MAX_DIRECT_BODY 4096u

struct rt_regex {
    pcre2_code *code; /* NULL when unset */
    uint32_t ncap;    /* capture groups */
};

enum { SM_EXACT = 1, SM_PREFIX, SM_SUFFIX, SM_CONTAINS, SM_REGEX };

/* envoy.type.matcher.v3.StringMatcher (and the legacy header match fields). */
struct rt_strmatch {
    uint8_t kind;
    bool icase;
    char *s;
    size_t len;
    struct rt_regex re;
};

/* Pseudo-headers a HeaderMatcher (or %REQ()%) may name: they live in pl_http_head's fields. */
enum { PSEUDO_NONE = 0, PSEUDO_METHOD, PSEUDO_AUTHORITY, PSEUDO_PATH, PSEUDO_SCHEME };

struct rt_hdrmatch {
    char *name;
    size_t name_len;
    uint8_t pseudo;
    bool is_present; /* present_match */
    bool present;    /* its value */
    bool any_value;  /* legacy exact_match "" or no specifier: any value matches */
    bool invert;
    bool missing_as_empty;
    struct rt_strmatch sm;
};

struct rt_qpmatch {
    char *name;
    size_t name_len;
    bool has_present, present; /* present_match */
    bool has_sm;
    struct rt_strmatch sm;
};

/* A header value template: literal text and %VARIABLE% segments. */
enum {
    FV_LITERAL = 0,
    FV_REMOTE_ADDR,
    FV_REMOTE_ADDR_NO_PORT,
    FV_REMOTE_PORT,
    FV_LOCAL_ADDR,
    FV_LOCAL_ADDR_NO_PORT,
    FV_LOCAL_PORT,
    FV_UPSTREAM_HOST,
    FV_PROTOCOL,
    FV_SNI,
    FV_HOSTNAME,
    FV_REQ, /* %REQ(name?alt):max% */
};

struct rt_fmt_seg {
    uint8_t var;
    uint8_t pseudo, alt_pseudo; /* FV_REQ */
    char *s;                    /* literal text, or REQ's header name */
    size_t len;
    char *alt; /* REQ's alternative header, or NULL */
    size_t alt_len;
    size_t max_len; /* REQ's :Z truncation, 0 = none */
};

enum { ACT_APPEND = 0, ACT_ADD_IF_ABSENT, ACT_OVERWRITE_OR_ADD, ACT_OVERWRITE_IF_EXISTS };

struct rt_hdr_add {
    char *name;
    size_t name_len;
    uint8_t action;
    bool keep_empty;
    bool literal; /* one literal segment (or empty): its value is segs[0] or "" */
    struct rt_fmt_seg *segs;
    size_t nsegs;
};

struct rt_hdr_ops {
    struct rt_hdr_add *add;
    size_t nadd;
    char **rm;
    size_t *rm_len;
    size_t nrm;
};

/* request/response header mutations of one level (cluster, route, vhost, configuration) */
struct rt_mut {
    struct rt_hdr_ops req, resp;
};

struct pl_route_wc {
    char *name;
    size_t name_len;
    char *cluster_header; /* NULL unless the entry names its cluster by header */
    size_t cluster_header_len;
    uint32_t weight;
    char *host_rewrite;
    struct rt_mut mut;
};

enum { HP_HEADER = 1, HP_COOKIE, HP_SOURCE_IP, HP_QUERY };

struct rt_hash_policy {
    uint8_t kind;
    uint8_t pseudo;
    bool terminal;
    char *name;
    size_t len;
};

enum { PATH_PREFIX = 1, PATH_EXACT, PATH_REGEX, PATH_SEP_PREFIX };

/* The parts of a route few routes use: matchers besides the path, weighted clusters, rewrites,
 * redirects, hash policies, header mutations, and a pl_route_info other than the virtual host's
 * plain one. compile.c compiles every route into one (path and cluster included), then keeps it
 * only when the route uses any of it. */
struct rt_route_x {
    struct pl_route_info info;
    /* match */
    uint8_t path_kind;
    bool case_sensitive;
    bool grpc;
    const char *path; /* in the table's pool (also in pl_route) */
    size_t path_len;
    struct rt_regex path_re;
    struct rt_hdrmatch *hm;
    size_t nhm;
    struct rt_qpmatch *qm;
    size_t nqm;
    /* cluster */
    const char *cluster; /* in the table's pool (also in pl_route) */
    size_t cluster_len;
    char *cluster_header;
    size_t cluster_header_len;
    struct pl_route_wc *wcs;
    size_t nwcs;
    uint64_t total_weight;
    struct rt_hash_policy *hp;
    size_t nhp;
    char *host_rewrite;
    /* path rewriting (RouteAction and RedirectAction): prefix_rewrite or regex_rewrite */
    bool has_prefix_rewrite;
    char *prefix_rewrite;
    size_t prefix_rewrite_len;
    struct rt_regex rewrite_re;
    char *rewrite_sub; /* in pcre2_substitute syntax */
    /* redirect */
    char *scheme_redirect; /* NULL: keep; "https" for https_redirect */
    char *host_redirect;
    char *port_redirect; /* ":8080" or NULL */
    char *path_redirect;
    bool path_redirect_has_query;
    bool strip_query;
    const struct rt_mut *mut; /* &pl_router_no_mut when the route mutates no header */
};

/* What every request that reaches a route reads, in 48 bytes: most routes of a large table
 * match a path and forward to a named cluster, and are only this (x NULL, info the virtual
 * host's plain_info); strings live in the table's pool. */
struct pl_route {
    const struct pl_route_info *info; /* &x->info, or the virtual host's plain_info */
    const char *path;                 /* in the table's pool; NULL for PATH_REGEX */
    const char *cluster;              /* in the pool; NULL unless RouteAction.cluster */
    const struct rt_route_x *x;       /* owned; NULL: nothing beyond these fields */
    uint32_t path_len;
    uint32_t cluster_len;
    uint8_t path_kind;
    bool case_sensitive;
    bool grpc;
};

/* The header mutations of a route that has none (shared by all such routes). */
extern const struct rt_mut pl_router_no_mut;

struct pl_route_vhost {
    char *name;
    struct pl_route *routes;
    size_t nroutes;
    struct rt_mut mut;
    struct pl_route_info plain_info; /* of its routes with only a path match and a cluster */
};

/* open-addressing map from lower-case domain text to virtual host */
struct rt_dmap_slot {
    char *key;
    size_t len;
    struct pl_route_vhost *vh;
};

struct rt_dmap {
    struct rt_dmap_slot *slots;
    size_t cap, n; /* cap is a power of two */
    size_t *lens;  /* distinct key lengths, longest first (wildcard maps) */
    size_t nlens;
};

struct rt_pool_chunk;

struct pl_route_table {
    char *name;
    struct pl_route_vhost *vhosts;
    size_t nvhosts;
    struct rt_dmap exact, suffix, prefix; /* suffix keys drop the '*', e.g. ".foo.com" */
    struct pl_route_vhost *any;           /* the "*" virtual host */
    bool ignore_port;
    bool most_specific_wins;
    struct rt_mut mut;
    pcre2_match_context *mctx;
    uint32_t max_cap;  /* most capture groups of any regex: sizes the per-thread match data */
    uint32_t max_body; /* max_direct_response_body_size_bytes */
    char hostname[256];
    struct rt_pool_chunk *pool; /* route paths and cluster names, freed with the table */
    char *pool_cur;
    size_t pool_left;
};

/* compile.c: looks a domain up (any case); NULL when absent. */
/* Returns a NUL-terminated copy of s[0..n) in t's string pool (freed with the table). */
const char *pl_router_pool_dup(struct pl_route_table *t, const char *s, size_t n);
struct pl_route_vhost *pl_router_dmap_get(const struct rt_dmap *m, const char *s, size_t n);

/* match.c */
/* Returns the per-thread match data sized for t (never NULL). */
pcre2_match_data *pl_router_md(const struct pl_route_table *t);
/* Returns a per-thread scratch buffer of at least n bytes (valid until the next call). */
char *pl_router_scratch(size_t n);
/* Full-match of s against re (false on no match, error or limit). */
bool pl_router_re_full(const struct pl_route_table *t, const struct rt_regex *re, const char *s,
                       size_t len);
bool pl_router_strmatch(const struct pl_route_table *t, const struct rt_strmatch *m, const char *s,
                        size_t len);
/* Finds a request header (pseudo or regular); returns false when absent. */
bool pl_router_header(const struct pl_http_head *h, uint8_t pseudo, const char *name, size_t len,
                      const char **v, size_t *vlen);
/* Finds the first query parameter of path named name (percent-decoded when decode_name); *v is
 * its raw (still encoded) value. */
bool pl_router_query_param(const char *path, size_t len, const char *name, size_t nlen,
                           bool decode_name, const char **v, size_t *vlen);
/* Returns the length of the path without query and fragment. */
size_t pl_router_path_len(const char *p, size_t len);

/* apply.c */
/* Formats a template into the arena; returns its length. */
size_t pl_router_format(const struct rt_hdr_add *a, const struct pl_http_head *req,
                        const struct pl_route_ctx *ctx, const struct pl_route_table *t,
                        struct pl_arena *arena, const char **out);

/* hash.c */
uint64_t pl_router_xxh64(const void *p, size_t len, uint64_t seed);

/* compile.c / compile_action.c */
struct pl_router_cctx {
    struct pl_route_table *t;
    struct pl_err *err;
    int rc; /* PL_ENOTSUP if anything was unsupported, else PL_EINVAL if anything was bad */
};
#ifdef PL_ROUTER_COMPILE_C /* short names inside compile*.c */
#define fail                  pl_router_fail
#define sub                   pl_router_sub
#define dup_lower             pl_router_dup_lower
#define duration_ms           pl_router_duration_ms
#define compile_re            pl_router_compile_re
#define compile_regex_matcher pl_router_compile_regex_matcher
#define compile_strmatch      pl_router_compile_strmatch
#endif
/* Records an error at path; returns code. */
int pl_router_fail(struct pl_router_cctx *c, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Returns "base.<fmt>" (or "<fmt>" when base is empty); caller frees. */
char *pl_router_sub(const char *base, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *pl_router_dup_lower(const char *s, size_t *len);
int64_t pl_router_duration_ms(const Google__Protobuf__Duration *d);
int pl_router_compile_re(struct pl_router_cctx *c, struct rt_regex *re, const char *pattern,
                         bool full, const char *path);
int pl_router_compile_regex_matcher(struct pl_router_cctx *c, struct rt_regex *re,
                                    const Envoy__Type__Matcher__V3__RegexMatcher *m, bool full,
                                    const char *path);
int pl_router_compile_strmatch(struct pl_router_cctx *c, struct rt_strmatch *sm,
                               const Envoy__Type__Matcher__V3__StringMatcher *m, const char *path);
/* Compiles a route's action (route, redirect or direct_response) into r. */
int pl_router_compile_action(struct pl_router_cctx *c, struct rt_route_x *r,
                             const Envoy__Config__Route__V3__Route *cfg, const char *path);
/* Compiles the four header mutation lists of one level. */
int pl_router_compile_mut(struct pl_router_cctx *c, struct rt_mut *m,
                          Envoy__Config__Core__V3__HeaderValueOption *const *req_add,
                          size_t n_req_add, char *const *req_rm, size_t n_req_rm,
                          Envoy__Config__Core__V3__HeaderValueOption *const *resp_add,
                          size_t n_resp_add, char *const *resp_rm, size_t n_resp_rm,
                          const char *path);
void pl_router_free_mut(struct rt_mut *m);
void pl_router_free_regex(struct rt_regex *re);
void pl_router_free_strmatch(struct rt_strmatch *sm);

/* compile_fmt.c */
/* Compiles one HeaderValueOption list; errors name path. Returns 0 or PL_EINVAL. */
int pl_router_compile_ops(struct rt_hdr_ops *ops, bool request,
                          Envoy__Config__Core__V3__HeaderValueOption *const *add, size_t nadd,
                          char *const *rm, size_t nrm, const char *path, const char *add_field,
                          const char *rm_field, struct pl_err *err);
void pl_router_free_ops(struct rt_hdr_ops *ops);
/* Classifies a lower-case header name as a pseudo-header we keep in pl_http_head. */
uint8_t pl_router_pseudo(const char *name, size_t len);

#endif
