/* Route tables: an Envoy RouteConfiguration compiled once into an immutable table that every
 * worker reads without locks, and the per-request operations on it (match, rewrite, redirect,
 * hash). Nothing here does I/O except pl_router_compile, which reads direct_response files.
 *
 * Typical use by the router filter (per request):
 *
 *   struct pl_route_ctx ctx = {.peer = ..., .local = ..., .tls = ..., .request = head};
 *   struct pl_route_match m;
 *   if (pl_router_match(table, head, &ctx, random_u64, &m) < 0)       -> 404 (NR)
 *   switch (m.info->kind) {
 *   case PL_ROUTE_REDIRECT:  pl_router_redirect_location(&m, head, &ctx, arena, &loc, &len);
 *                            reply m.info->status with Location; then pl_router_apply_response
 *   case PL_ROUTE_DIRECT_RESPONSE: reply m.info->status, m.info->body; pl_router_apply_response
 *   case PL_ROUTE_CLUSTER:   if (m.cluster_len == 0 or unknown cluster) reply
 *                            m.info->cluster_not_found_status;
 *                            pl_router_hash(&m, head, &ctx, &h) for hashing LBs;
 *                            pl_router_apply_request(&m, head, &ctx, arena) before encoding
 *                            upstream; pl_router_apply_response(&m, resp, &ctx, arena) on the
 *                            upstream response head.
 *   }
 *
 * Everything a match points to (names, bodies, literal header values) lives in the table, so it
 * is valid while the snapshot holding the table is pinned. Matching allocates nothing: PCRE2
 * match data and a scratch buffer come from a per-thread cache (freed by a thread-exit
 * destructor; pl_router_thread_cleanup frees it earlier). */
#ifndef PL_ROUTER_ROUTER_H
#define PL_ROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/arena.h"
#include "core/err.h"
#include "http/headers.h"
#include "pl_proto_all.h"

struct pl_route_table; /* opaque, immutable after compile */
struct pl_route_vhost; /* opaque */
struct pl_route;       /* opaque */
struct pl_route_wc;    /* opaque: one weighted cluster of a route */

enum pl_route_kind {
    PL_ROUTE_CLUSTER = 1,     /* RouteAction: forward upstream */
    PL_ROUTE_REDIRECT,        /* RedirectAction: reply status + Location */
    PL_ROUTE_DIRECT_RESPONSE, /* DirectResponseAction: reply status + body */
};

/* The parts of a compiled route the router filter reads; owned by the table. */
struct pl_route_info {
    enum pl_route_kind kind;
    const char *name;       /* Route.name, "" when unset */
    const char *vhost_name; /* VirtualHost.name */
    /* PL_ROUTE_CLUSTER */
    int64_t timeout_ms;           /* RouteAction.timeout: 15000 when unset; 0 = no timeout */
    int64_t idle_timeout_ms;      /* RouteAction.idle_timeout: -1 unset (use the HCM's
                                     stream_idle_timeout); 0 = disabled */
    bool auto_host_rewrite;       /* caller sets Host to the chosen upstream host's hostname */
    int cluster_not_found_status; /* status when the cluster is missing/unknown: 503 (Envoy's
                                     cluster_not_found_response_code default) */
    /* PL_ROUTE_REDIRECT: 301 (default), 302, 303, 307 or 308. PL_ROUTE_DIRECT_RESPONSE: status */
    int status;
    /* PL_ROUTE_DIRECT_RESPONSE: the body (inline or read from filename at compile time) */
    const char *body;
    size_t body_len;
};

/* Per-request context: things the head does not carry. Only the fields a feature needs must be
 * set; pointers may be NULL (the variables that use them then format as empty, as in Envoy). */
struct pl_route_ctx {
    const struct sockaddr *peer;  /* downstream remote address (%DOWNSTREAM_REMOTE_ADDRESS%,
                                     connection_properties.source_ip hashing) */
    const struct sockaddr *local; /* downstream local address (%DOWNSTREAM_LOCAL_ADDRESS%) */
    bool tls;                     /* downstream connection is TLS: scheme when the head has no
                                     x-forwarded-proto and no :scheme */
    bool suppress_envoy_headers;  /* router's suppress_envoy_headers: no x-envoy-original-path */
    const char *upstream_host;    /* "ip:port" of the chosen upstream host (%UPSTREAM_HOST%),
                                     NULL before one is chosen */
    const char *sni;              /* %REQUESTED_SERVER_NAME%, may be NULL */
    const struct pl_http_head *request; /* the request head, for %REQ(x)% in response headers
                                           (request-side mutations use their own head) */
};

/* The result of a match; points into the table (and, for cluster_header, into the head). */
struct pl_route_match {
    const struct pl_route_info *info;
    const struct pl_route_table *table;
    const struct pl_route_vhost *vhost;
    const struct pl_route *route;
    const struct pl_route_wc *wc; /* the weighted cluster picked, or NULL */
    /* PL_ROUTE_CLUSTER: the upstream cluster name (not NUL-terminated when it comes from a
     * cluster_header: it points into the request head). cluster_len == 0 when cluster_header
     * names a header the request does not carry: reply info->cluster_not_found_status. */
    const char *cluster;
    size_t cluster_len;
};

/* Compiles a RouteConfiguration into *out (caller frees with pl_route_table_free). Reports every
 * error to err with field paths below path_prefix (e.g.
 * "...route_config.virtual_hosts[0].routes[2].match.safe_regex.regex"); path_prefix may be NULL.
 * Returns 0, PL_EINVAL (bad value), PL_ENOTSUP (a behaviour we do not implement) or PL_EIO
 * (direct_response file unreadable). */
int pl_router_compile(const Envoy__Config__Route__V3__RouteConfiguration *cfg,
                      const char *path_prefix, struct pl_route_table **out, struct pl_err *err);
/* Frees a table and everything it owns. NULL is fine. */
void pl_route_table_free(struct pl_route_table *t);
/* Returns RouteConfiguration.name as compiled (owned by the table). */
const char *pl_route_table_name(const struct pl_route_table *t);

/* Matches a request: virtual host by :authority, then the first matching route; for weighted
 * clusters picks one with `random`. Returns 0 and fills *m, or PL_ENOENT (no virtual host or no
 * route: Envoy answers 404 with response flag NR). Allocates nothing.
 * Virtual hosts follow Envoy exactly: the whole :authority, port included, is matched
 * case-insensitively against exact domains, then the longest "*suffix", then the longest
 * "prefix*", then "*"; the port is ignored only with ignore_port_in_host_matching (the HCM's
 * strip_*_host_port options rewrite :authority before matching). Header matchers may name
 * :method, :authority, :path, :scheme; "host" falls back to :authority. */
int pl_router_match(const struct pl_route_table *t, const struct pl_http_head *head,
                    const struct pl_route_ctx *ctx, uint64_t random, struct pl_route_match *m);

/* Finalizes the request for upstream, in Envoy's order: header mutations (weighted cluster,
 * route, virtual host, route configuration; reversed with most_specific_header_mutations_wins),
 * then host_rewrite_literal, then prefix_rewrite/regex_rewrite of :path (keeping the query,
 * adding x-envoy-original-path unless ctx->suppress_envoy_headers). New strings go in arena. */
void pl_router_apply_request(const struct pl_route_match *m, struct pl_http_head *head,
                             const struct pl_route_ctx *ctx, struct pl_arena *arena);
/* Applies response header mutations (weighted cluster, route, virtual host, configuration) to a
 * response head (upstream, redirect or direct response). New strings go in arena. */
void pl_router_apply_response(const struct pl_route_match *m, struct pl_http_head *resp,
                              const struct pl_route_ctx *ctx, struct pl_arena *arena);

/* Builds the Location of a PL_ROUTE_REDIRECT match into arena (*loc NUL-terminated). */
void pl_router_redirect_location(const struct pl_route_match *m, const struct pl_http_head *head,
                                 const struct pl_route_ctx *ctx, struct pl_arena *arena,
                                 const char **loc, size_t *len);

/* Computes the route's hash_policy hash for hashing load balancers. Returns false when the route
 * has no hash policy or none produced a value (the LB then picks at random). */
bool pl_router_hash(const struct pl_route_match *m, const struct pl_http_head *head,
                    const struct pl_route_ctx *ctx, uint64_t *hash);

/* Returns true if the request's content-type is gRPC ("application/grpc" or
 * "application/grpc+..."), Envoy's test. */
bool pl_router_is_grpc(const struct pl_http_head *head);

/* Frees this thread's match cache now (it is also freed when the thread exits). */
void pl_router_thread_cleanup(void);

#endif
