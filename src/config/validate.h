/* Semantic validation of Envoy resources beyond what the JSON mapping checks: required fields,
 * references between resources, and what Pillion implements. Reports every error found. */
#ifndef PL_CONFIG_VALIDATE_H
#define PL_CONFIG_VALIDATE_H

#include <stdbool.h>

#include "config/pbjson.h"
#include "core/err.h"
#include "pl_proto_all.h"

/* What a validation run needs: where errors go, where positions come from. */
struct pl_vctx {
    struct pl_err *err;
    const struct pl_srcmap *map; /* may be NULL (xDS): errors then carry the field path only */
    bool admin_allow_remote;
    /* cluster names that routes may reference; NULL disables the reference check */
    const char *const *clusters;
    size_t n_clusters;
    bool clusters_sorted; /* clusters is in strcmp order (looked up by binary search) */
    /* an ADS stream is configured (bootstrap dynamic_resources.ads_config, or validating xDS
     * resources): RDS and EDS over `ads: {}` are accepted */
    bool ads;
};

/* The JSON-mapping hook that rejects fields Pillion does not implement (support.h), by name. */
int pl_validate_field_hook(void *ctx, const ProtobufCMessageDescriptor *msg,
                           const ProtobufCFieldDescriptor *field, const struct pl_srcloc *loc,
                           struct pl_err *err);

/* Validates a listener; returns 0 or PL_EINVAL with errors added. */
int pl_validate_listener(struct pl_vctx *c, const Envoy__Config__Listener__V3__Listener *l);
/* Validates a cluster. */
int pl_validate_cluster(struct pl_vctx *c, const Envoy__Config__Cluster__V3__Cluster *cl);
/* Validates a route configuration. */
int pl_validate_route_config(struct pl_vctx *c,
                             const Envoy__Config__Route__V3__RouteConfiguration *rc);
/* Validates a whole bootstrap (admin, node, static resources, names unique). */
int pl_validate_bootstrap(struct pl_vctx *c, const Envoy__Config__Bootstrap__V3__Bootstrap *b);

#endif
