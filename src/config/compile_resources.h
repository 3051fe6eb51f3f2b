/* Per-resource compile entry points and the compile of a whole resource set (the bootstrap's
 * static resources plus what xDS delivered) into one snapshot. */
#ifndef PL_CONFIG_COMPILE_RESOURCES_H
#define PL_CONFIG_COMPILE_RESOURCES_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config/bootstrap.h"
#include "config/snapshot.h"
#include "core/err.h"
#include "pl_proto_all.h"

/* Names of dynamic resources that failed to compile (names borrowed from the resource set;
 * the caller frees the three arrays). */
struct pl_compile_failures {
    const char **listeners, **clusters, **routes;
    size_t n_listeners, n_clusters, n_routes;
};

/* Compiled listeners, clusters and route tables kept between compiles, so that a compile
 * compiles only what changed: an entry is reused when its sources are the same objects (the
 * pl_res owner, or the same static message) as last time. Main thread. */
struct pl_compile_cache;

/* What one snapshot is built from. Every array may be empty. */
struct pl_resource_set {
    /* the resources by pointer (an xDS client's records hold theirs: a build of 10,000
     * clusters copies no 88-byte pl_res per cluster and per assignment) */
    const pl_bootstrap_t *bootstrap;       /* static resources, kept for /config_dump */
    const struct pl_res *const *listeners; /* LDS listeners to serve (warmed) */
    size_t n_listeners;
    const struct pl_res *const *clusters; /* CDS clusters to serve (warmed) */
    size_t n_clusters;
    const struct pl_res *const *routes; /* RDS route configurations, by name */
    size_t n_routes;
    const struct pl_res *const *clas; /* EDS ClusterLoadAssignments, by cluster_name */
    size_t n_clas;
    const struct pl_res *const *warming_listeners; /* for /config_dump only */
    size_t n_warming_listeners;
    const struct pl_res *const *warming_clusters;
    size_t n_warming_clusters;
    const char *lds_version; /* NULL: none accepted yet */
    const char *cds_version;
    struct pl_compile_cache *cache;     /* NULL: compile everything */
    struct pl_compile_failures *failed; /* NULL, or filled with what failed to compile */
    /* with a cache: set, the snapshot takes this part (the cluster side of an earlier snapshot
     * from the same cache, when nothing of it changed since) and clusters, clas,
     * warming_clusters and cds_version are not read; NULL, they are compiled into a new part */
    struct pl_cluster_part *same_clusters;
};

/* Compiles one listener into out (zeroed by the caller). The filter chains are compiled from
 * effective (a rewritten copy of l) when not NULL, else from l; the stored proto and the hash
 * are l's. On failure out owns nothing and is not to be counted. */
int pl_compile_listener(const Envoy__Config__Listener__V3__Listener *l,
                        const Envoy__Config__Listener__V3__Listener *effective,
                        const struct timespec *now, struct pl_listener_cfg *out,
                        struct pl_err *err);
/* Compiles one cluster into out (zeroed by the caller), its endpoints from eds when not NULL
 * (EDS) or from its load_assignment. out is filled even on failure: free it with the snapshot. */
int pl_compile_cluster(const Envoy__Config__Cluster__V3__Cluster *cl,
                       const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *eds,
                       const struct timespec *now, struct pl_cluster_cfg *out, struct pl_err *err);

/* As pl_compile_listener without a copy: out->proto is l (not owned: the caller keeps l alive
 * and unchanged as long as out) and out->hash is hash. */
int pl_compile_listener_borrowed(const Envoy__Config__Listener__V3__Listener *l, uint64_t hash,
                                 const struct timespec *now, struct pl_listener_cfg *out,
                                 struct pl_err *err);
/* As pl_compile_cluster without a copy: out->proto is cl (not owned), out->hash is hash. */
int pl_compile_cluster_borrowed(const Envoy__Config__Cluster__V3__Cluster *cl,
                                const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *eds,
                                uint64_t hash, const struct timespec *now,
                                struct pl_cluster_cfg *out, struct pl_err *err);

/* As pl_compile_cluster_borrowed with the endpoints of a plain assignment (an EDS cluster). */
int pl_compile_cluster_plain(const Envoy__Config__Cluster__V3__Cluster *cl,
                             const struct pl_cla_plain *plain, uint64_t hash,
                             const struct timespec *now, struct pl_cluster_cfg *out,
                             struct pl_err *err);

/* Returns a new empty compile cache (pl_compile_cache_free). */
struct pl_compile_cache *pl_compile_cache_new(void);
/* Frees the cache; snapshots keep what they share with it. NULL is fine. */
void pl_compile_cache_free(struct pl_compile_cache *c);
/* After a compile with the cache: its snapshot was published; what it uses is kept for the
 * next compile and the rest is let go. */
void pl_compile_cache_commit(struct pl_compile_cache *c);
/* After a compile with the cache whose snapshot was not published: the cache stays as it was. */
void pl_compile_cache_rollback(struct pl_compile_cache *c);

/* Builds a new snapshot (owned by the caller) from a resource set. Each route configuration of
 * rs->routes is compiled once into s->route_tables, where the HTTP connection managers that
 * name it over RDS look it up when a stream starts (a name missing there, e.g. after an
 * initial fetch timeout, routes nothing: 404); EDS clusters get their assignment from rs->clas,
 * or no endpoints. */
int pl_config_compile_resources(const struct pl_resource_set *rs, struct pl_snapshot **out,
                                struct pl_err *err);

/* Returns how many distinct RDS route_config_names the listener's HTTP connection managers name;
 * with names not NULL, *names is a new array of new strings (caller frees each and the array). */
size_t pl_listener_rds_names(const Envoy__Config__Listener__V3__Listener *l, char ***names);

#endif
