/* Private to src/xds: the client's state on the main thread, shared by client.c (protocol,
 * events, stats), store.c (accepted resources, per-resource checks, updates and their undo) and
 * build.c (warming, snapshot builds). */
#ifndef PL_XDS_CLIENT_INTERNAL_H
#define PL_XDS_CLIENT_INTERNAL_H

#include <ev.h>
#include <time.h>

#include "config/compile_resources.h"
#include "config/nametab.h"
#include "config/snapshot.h"
#include "stats/stats.h"
#include "tls/tls.h"
#include "xds/xds.h"
#include "xds/xds_internal.h"

/* A resource as accepted: immutable once made and reference counted (sh), shared by the store,
 * the lists of what serves and every snapshot built from it (their `shared` owner), so an
 * unchanged resource is never decoded, copied or compiled again. It is kept in its encoding
 * (what /config_dump shows); only listeners stay decoded (the server reads them). A route
 * configuration's decoded message lives from the check to the end of the response's handling,
 * so that the compile right after does not decode it again (pl_xds_rec_trim). Clusters and
 * assignments are checked one at a time in memory used again for each, and compiled from their
 * encoding: 10,000 of them kept decoded were megabytes touched for the first time, which cost
 * more than decoding each twice. */
struct pl_xds_rec {
    struct pl_shared sh;
    /* what a build compiles, the record's own fields: name, version_info, bytes and len (the
     * encoding as received), hash (XXH64 of bytes), last_updated; msg: decoded (LDS always, RDS
     * until trimmed, then NULL; else NULL); eds_name: CDS, the ClusterLoadAssignment an EDS
     * cluster waits for, else NULL; owner: &sh; decode_plain: EDS */
    struct pl_res res;
    enum pl_xds_type type;
    bool msg_in_arena;   /* res.msg lives in the update's arena (freed with it, after trim) */
    double warm_timeout; /* CDS (EDS) / LDS (RDS): initial_fetch_timeout in s (0: forever) */
};

/* Frees the decoded message of a record that is kept encoded (not LDS). */
void pl_xds_rec_trim(struct pl_xds_rec *r);
/* Returns a new reference on r. */
struct pl_xds_rec *pl_xds_rec_ref(struct pl_xds_rec *r);
/* Drops a reference (NULL is fine). */
void pl_xds_rec_unref(struct pl_xds_rec *r);

/* One name of a type: the resource accepted for it, and its warming state. */
struct pl_xds_res {
    struct pl_xds_rec *rec;     /* a reference */
    struct pl_xds_rec *serving; /* LDS/CDS: the version in the current snapshot (rec, or the
                                   previous one while rec warms); NULL: none; a reference */
    double warm_deadline;       /* ev_now when warming gives up waiting; 0: not warming; -1:
                                   waits forever; -2: gave up (serves without) */
};

/* Entries of one type by name, each owned (heap) by the map. */
struct pl_xds_resmap {
    struct pl_nametab tab;
};

/* Initializes an empty map. */
void pl_xds_resmap_init(struct pl_xds_resmap *m);
/* Frees every entry and the map's slots. */
void pl_xds_resmap_free(struct pl_xds_resmap *m);
/* Returns the entry named name, or NULL. */
struct pl_xds_res *pl_xds_resmap_get(const struct pl_xds_resmap *m, const char *name);
/* Returns the accepted resource named name, or NULL. */
const struct pl_xds_rec *pl_xds_resmap_rec(const struct pl_xds_resmap *m, const char *name);
/* Iterates: for (size_t i = 0; i < m->tab.cap; i++) if ((e = pl_xds_resmap_at(m, i))) ... */
static inline struct pl_xds_res *pl_xds_resmap_at(const struct pl_xds_resmap *m, size_t i)
{
    return m->tab.slots[i].item;
}

/* What one response brings (pl_xds_store_check): the valid resources and what the others were. */
struct pl_xds_update {
    struct pl_xds_rec **recs; /* valid, first of each name, response order; references */
    size_t n;
    struct pl_nametab names; /* every name the response carries, valid or not (char *,
                                borrowed from recs and bad) */
    char **bad;              /* names of the invalid resources: their previous version stays */
    size_t n_bad;
    struct pl_xds_fail { /* why each resource failed (check or compile), for config_dump */
        char *name;
        char *why;
    } * fails;
    size_t n_fails;
    bool unusable; /* a resource without a name or of another type: nothing of it applies */
    size_t n_new, new_bytes; /* how many recs are new (not held unchanged), their encoded size */
    size_t n_unheld;         /* of the new recs, those whose name no accepted resource has */
    struct pl_xds_chunk
        *arena; /* decoded messages of the types kept encoded (trimmed at the end) */
};

/* Frees what u holds. */
void pl_xds_update_free(struct pl_xds_update *u);

struct pl_xds_type_stats {
    struct pl_counter attempt, success, rejected, failure, init_fetch_timeout;
    struct pl_gauge version;
};

struct pl_xds {
    struct pl_xds_opts o;
    const pl_bootstrap_t *boot;
    Envoy__Config__Core__V3__Node *node; /* owned: the bootstrap's node + user agent */
    bool node_first_only;                /* set_node_on_first_message_only */
    bool delta;                          /* ads_config api_type DELTA_GRPC */
    char *target;
    struct pl_tls_client_material tls; /* of the ADS channel (tls.tls false: plaintext) */
    bool tls_check_host;               /* google_grpc: gRPC's host name check */
    double fail_warned; /* loop time of the last "cannot reach" warning; 0 after a stream */
    /* resources whose last update was rejected (config_dump's error_state), by type */
    struct pl_xds_failrec {
        char *name, *why, *version;
        struct timespec when;
    } * failed[PL_XDS_NTYPES];
    size_t n_failed[PL_XDS_NTYPES];
    struct pl_xds_transport *tr;
    uint64_t stream; /* current stream generation; 0: none */
    bool connected;
    bool stream_node_sent;
    unsigned reconnects;

    struct pl_xds_sub sub[PL_XDS_NTYPES];
    bool enabled[PL_XDS_NTYPES];  /* LDS/CDS configured; EDS/RDS when names are subscribed */
    bool answered[PL_XDS_NTYPES]; /* a response came (accepted or not): initial fetch done */
    struct pl_xds_resmap acc[PL_XDS_NTYPES]; /* accepted, by type */
    char *applied_version[PL_XDS_NTYPES];    /* of the last response any resource came from */
    char *last_nack[PL_XDS_NTYPES];
    double last_apply_ms[PL_XDS_NTYPES]; /* check + build + apply of the last response */
    unsigned n_warming;                  /* resources waiting at the last build (not timed out) */
    double static_deadline;         /* when the first waiting static resource gives up; 0: none */
    struct pl_compile_cache *cache; /* compiled clusters, listeners, route tables: reused */
    /* the cluster side of the snapshot applied last (a reference) while no cluster was warming
     * in it and no CDS or EDS change came since: a route or listener update reuses it whole */
    struct pl_cluster_part *clusters_built;

    double start_time;
    double fetch_timeout_s[PL_XDS_NTYPES]; /* initial_fetch_timeout (0: wait forever) */
    bool initialized;
    bool fetch_timed_out[PL_XDS_NTYPES];
    ev_timer timer; /* next warming / initial fetch deadline */

    struct pl_xds_type_stats st_lds, st_cds;
    struct pl_gauge connected_state;
    struct pl_counter inert_fields; /* server.dynamic_inert_fields: set, accepted, no effect */
    /* cluster_manager.active_clusters / warming_clusters,
     * listener_manager.total_listeners_active / total_listeners_warming */
    struct pl_gauge active_clusters, warming_clusters, active_listeners, warming_listeners;
};

/* Checks every resource of a response of type t: the support table, validation, names,
 * duplicates (the first of a name counts). Fills u with the valid ones (a resource whose bytes
 * equal the accepted one of its name is taken as is, unchecked) and adds an error naming
 * resource and field for each invalid one. New resources get versions[i] (Delta) or the
 * response's version_info (versions NULL). Returns 0 when all were valid, else PL_EINVAL. */
int pl_xds_store_check(struct pl_xds *x, enum pl_xds_type t,
                       const Envoy__Service__Discovery__V3__DiscoveryResponse *r,
                       struct pl_xds_update *u, const char *const *versions, struct pl_err *err);
/* Applies the valid resources of u to the accepted set of type t and rebuilds: with merge false
 * (SotW LDS and CDS) the names u does not carry go; with merge true (SotW RDS/EDS, Delta) the
 * names in removed go. A resource that fails to compile keeps its previous version (error in
 * err); when the snapshot still cannot be applied, nothing of u stays. Returns how many
 * resources were applied (changed, added or removed; 0 also when nothing changed) or PL_EINVAL
 * when nothing of u could be applied. */
int pl_xds_store_update(struct pl_xds *x, enum pl_xds_type t, struct pl_xds_update *u, bool merge,
                        char *const *removed, size_t n_removed, struct pl_err *err);
/* Builds the snapshot from the accepted resources (warming decides what serves) and applies it;
 * failed (may be NULL) gets the names of dynamic resources that failed to compile. */
/* A CDS or EDS change: the next build compiles the cluster side again. */
void pl_xds_store_clusters_changed(struct pl_xds *x);
int pl_xds_store_rebuild(struct pl_xds *x, struct pl_compile_failures *failed, struct pl_err *err);
/* The RDS and EDS names the accepted (and static) listeners and clusters need, as a new array
 * of new strings (caller frees each and the array). */
size_t pl_xds_store_needed(struct pl_xds *x, enum pl_xds_type t, char ***names);
/* Whether the RDS or EDS names the accepted resources need are exactly the subscribed ones
 * (checked in place: no copy, no sort). */
bool pl_xds_store_needed_same(struct pl_xds *x, enum pl_xds_type t);
/* Calls fn for every HTTP connection manager of l's filter chains (decoded for the call). */
void pl_xds_each_hcm(
    const Envoy__Config__Listener__V3__Listener *l,
    void (*fn)(
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
            *h,
        void *arg),
    void *arg);
/* How long a listener waits for its RDS: the longest initial_fetch_timeout of its route config
 * sources (0: one of them waits forever). */
double pl_xds_rds_timeout(const Envoy__Config__Listener__V3__Listener *l);
/* Whether cl takes its endpoints from EDS; *svc gets the assignment's name then. */
bool pl_xds_cluster_eds_name(const Envoy__Config__Cluster__V3__Cluster *cl, const char **svc);
/* Drops accepted RDS/EDS resources that are no longer subscribed; returns how many. */
size_t pl_xds_store_prune(struct pl_xds *x, enum pl_xds_type t);
/* Earliest warming deadline of the last build (ev_now scale), 0 if none. */
double pl_xds_store_next_deadline(const struct pl_xds *x);
/* Frees the store's resources (accepted, active, compile cache). */
void pl_xds_store_free(struct pl_xds *x);

#endif
