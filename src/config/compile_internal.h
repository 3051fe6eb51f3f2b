/* Private to src/config: compiling one cluster or listener through the compile cache
 * (compile_cache.c), used by the resource-set compile (compile_resources.c). */
#ifndef PL_CONFIG_COMPILE_INTERNAL_H
#define PL_CONFIG_COMPILE_INTERNAL_H

#include "config/compile_resources.h"

/* This build takes the clusters of the last one (compiled with c) as they are: c keeps them for
 * the next build instead of letting go of what the build did not use. */
void pl_compile_cache_keep_clusters(struct pl_compile_cache *c);
/* Sets *out to the cluster cl compiled (endpoints from eds when not NULL; dyn and eds_res: what
 * cl and eds came as over xDS, or NULL when static), for a snapshot (pl_cluster_free). With a
 * cache, a compiled object shared while cl's and eds's sources stay the same (a reference);
 * without, a fresh compile. On failure *out is NULL (errors in err). */
int pl_cc_cluster(struct pl_compile_cache *c, const Envoy__Config__Cluster__V3__Cluster *cl,
                  const struct pl_res *dyn,
                  const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *eds,
                  const struct pl_res *eds_res, const struct timespec *now,
                  struct pl_cluster_cfg **out, struct pl_err *err);
/* The same for a listener. */
int pl_cc_listener(struct pl_compile_cache *c, const Envoy__Config__Listener__V3__Listener *l,
                   const struct pl_res *dyn, const struct timespec *now,
                   struct pl_listener_cfg *out, struct pl_err *err);

/* The same for a route configuration (RDS) compiled into a route table; path prefixes errors. */
int pl_cc_route_table(struct pl_compile_cache *c, const struct pl_res *r, const char *path,
                      struct pl_route_table_cfg *out, struct pl_err *err);

#endif
