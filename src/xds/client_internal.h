/* Private to src/xds: the client's state on the main thread, shared by client.c (protocol,
 * events, stats) and store.c (accepted resources, checks, warming, snapshot builds). */
#ifndef PL_XDS_CLIENT_INTERNAL_H
#define PL_XDS_CLIENT_INTERNAL_H

#include <ev.h>
#include <time.h>

#include "stats/stats.h"
#include "xds/xds.h"
#include "xds/xds_internal.h"

/* One resource as accepted (or, in the active lists, as served). */
struct pl_xds_res {
    char *name;
    ProtobufCMessage *msg; /* shared by the copies of the entry (refs) */
    unsigned *refs;
    char *version;
    uint64_t hash; /* of the serialized message */
    struct timespec updated;
    double warm_deadline; /* ev_now when warming gives up waiting; 0: not warming */
};

/* Entries sorted by name (pl_xds_resvec_find is a binary search), except the output of
 * pl_xds_store_check, which keeps the response's order. */
struct pl_xds_resvec {
    struct pl_xds_res *v;
    size_t n;
};

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
    struct pl_xds_transport *tr;
    uint64_t stream; /* current stream generation; 0: none */
    bool connected;
    bool stream_node_sent;
    unsigned reconnects;

    struct pl_xds_sub sub[PL_XDS_NTYPES];
    bool enabled[PL_XDS_NTYPES]; /* LDS/CDS configured; EDS/RDS when names are subscribed */
    struct pl_xds_resvec acc[PL_XDS_NTYPES]; /* accepted, by type */
    struct pl_xds_resvec active_l, active_c; /* LDS listeners / CDS clusters in service */
    char *last_nack[PL_XDS_NTYPES];
    unsigned n_warming;     /* resources waiting at the last build (not timed out) */
    double static_deadline; /* when the first waiting static resource gives up; 0: none */

    double start_time;
    double fetch_timeout_s[PL_XDS_NTYPES]; /* initial_fetch_timeout (0: wait forever) */
    bool initialized;
    bool fetch_timed_out[PL_XDS_NTYPES];
    ev_timer timer; /* next warming / initial fetch deadline */

    struct pl_xds_type_stats st_lds, st_cds;
    struct pl_gauge connected_state;
    struct pl_counter inert_fields;
    /* cluster_manager.active_clusters / warming_clusters,
     * listener_manager.total_listeners_active / total_listeners_warming */
    struct pl_gauge active_clusters, warming_clusters, active_listeners,
        warming_listeners; /* server.dynamic_inert_fields: set, accepted, no effect */
};

/* Frees the entries of v and its array. */
void pl_xds_resvec_free(struct pl_xds_resvec *v);
/* Returns the entry named name, or NULL. */
struct pl_xds_res *pl_xds_resvec_find(const struct pl_xds_resvec *v, const char *name);

/* Checks every resource of a response of type t (support table, validation, names, duplicates)
 * and returns them in *out (owned, new entries with version and hash). Errors name the
 * resource and field. */
int pl_xds_store_check(struct pl_xds *x, enum pl_xds_type t,
                       const Envoy__Service__Discovery__V3__DiscoveryResponse *r,
                       struct pl_xds_resvec *out, struct pl_err *err);
/* Makes the accepted set of type t what a response says: with merge false (SotW LDS and CDS)
 * in replaces the whole set; with merge true (SotW RDS/EDS, Delta) in updates the names it has
 * and the names in removed go. Rebuilds and applies the snapshot. On failure nothing changed
 * (errors in err). Takes over in. */
int pl_xds_store_update(struct pl_xds *x, enum pl_xds_type t, struct pl_xds_resvec *in, bool merge,
                        char *const *removed, size_t n_removed, struct pl_err *err);
/* Builds the snapshot from the accepted resources (warming decides what serves) and applies it. */
int pl_xds_store_rebuild(struct pl_xds *x, struct pl_err *err);
/* The RDS and EDS names the accepted (and static) listeners and clusters need, as new arrays
 * of borrowed-from-nothing strings (caller frees each and the arrays). */
size_t pl_xds_store_needed(struct pl_xds *x, enum pl_xds_type t, char ***names);
/* Drops accepted RDS/EDS resources that are no longer subscribed. */
void pl_xds_store_prune(struct pl_xds *x, enum pl_xds_type t);
/* Earliest warming deadline of the last build (ev_now scale), 0 if none. */
double pl_xds_store_next_deadline(const struct pl_xds *x);

#endif
