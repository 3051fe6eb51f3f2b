/* The immutable compiled configuration that workers read (DESIGN.md section 2). */
#ifndef PL_CONFIG_SNAPSHOT_H
#define PL_CONFIG_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <protobuf-c/protobuf-c.h>

struct pl_filter_chains;
struct pl_route_table;
struct pl_transport_vtable;

/* A reference-counted owner of parts that several snapshots share: compiled clusters and
 * listeners, xDS resources as received (config/compile_resources.h). A snapshot entry whose
 * `shared` is set owns one reference and none of the pointers it shares; pl_snapshot_free drops
 * the reference, and the owner's free runs with the last one. */
struct pl_shared {
    _Atomic uint32_t refs;
    void (*free)(struct pl_shared *sh); /* frees the owner and what it holds */
};

/* Takes a reference on sh (NULL is fine). */
void pl_shared_ref(struct pl_shared *sh);
/* Drops a reference; the last one frees the owner (NULL is fine). */
void pl_shared_unref(struct pl_shared *sh);

/* A listener as workers need it: where to bind, and the Envoy resource it came from. */
struct pl_listener_cfg {
    char *name;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *addr_str; /* "127.0.0.1:10000", for stat names and logs */
    uint64_t hash;  /* of the serialized resource: unchanged listeners keep their sockets */
    ProtobufCMessage *proto; /* envoy.config.listener.v3.Listener, owned */
    char *version_info;
    struct timespec last_updated;
    struct pl_filter_chains *chains; /* compiled filter chains (net/filter.h), owned; NULL if
                                        the listener has none (tests) */
    bool dynamic;                    /* added over xDS (LDS): /config_dump's dynamic_listeners */
    struct pl_shared *shared; /* set: name, addr_str, proto, version_info and chains belong to
                                 this owner (a compiled listener reused across snapshots) */
};

/* An IPv4 or IPv6 socket address (cluster endpoints are socket addresses, never pipes). */
union pl_ip_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* An endpoint of a cluster (56 bytes: clusters times endpoints of them are held). */
struct pl_endpoint_cfg {
    union pl_ip_addr addr; /* addrlen 0: hostname, resolved by DNS */
    uint8_t addrlen;
    uint8_t health_status; /* envoy.config.core.v3.HealthStatus (a larger value: 255) */
    uint16_t port;
    uint32_t weight;          /* load_balancing_weight, default 1 */
    uint32_t locality_weight; /* LocalityLbEndpoints.load_balancing_weight, 0 when unset */
    char *hostname;           /* DNS name for STRICT_DNS / LOGICAL_DNS, else NULL */
    char *locality;           /* "region/zone/sub_zone", NULL when unset */
};

/* An endpoint of an EDS cluster whose assignment has the plain shape (16 bytes). */
struct pl_cla_host {
    uint32_t addr;            /* IPv4, network byte order */
    uint16_t port;            /* 1..65535 */
    uint8_t health;           /* envoy.config.core.v3.HealthStatus (a larger value: 255) */
    uint32_t weight;          /* load_balancing_weight, 1 when unset */
    uint32_t locality_weight; /* of its LocalityLbEndpoints, 0 when unset */
};

/* A ClusterLoadAssignment of the plain shape, decoded for compiling only: every endpoint an
 * IPv4 literal with a TCP port, weights of at least 1, priority 0, no locality, nothing else set.
 * Compiling it gives exactly what compiling the decoded message gives. */
struct pl_cla_plain {
    const char *cluster_name;
    size_t n;
    struct pl_cla_host hosts[];
};

/* Decodes the encoding of a ClusterLoadAssignment of the plain shape into memory from a; NULL
 * when it is not one (the xDS client's decoder, handed down with the assignments). */
typedef struct pl_cla_plain *(*pl_cla_plain_decode_fn)(const uint8_t *data, size_t len,
                                                       ProtobufCAllocator *a);

struct pl_arena;
/* A protobuf-c allocator over the arena a (core/arena.h; it frees nothing: the arena is freed in
 * one go), for what is decoded only for a moment: a kept encoding decoded to compile it, or a
 * plain assignment's hosts decoded to build a host set. */
ProtobufCAllocator pl_arena_pb_allocator(struct pl_arena *a);

/* Load-balancing and DNS options of a cluster, Envoy's defaults filled in. Most clusters set
 * none of them and share pl_cluster_lb_defaults (10,000 clusters held two copies each). */
struct pl_cluster_lb_cfg {
    uint32_t lr_choice_count;      /* LEAST_REQUEST: least_request_lb_config.choice_count, 2 */
    double lr_active_request_bias; /* LEAST_REQUEST: 1.0 */
    uint64_t ring_min_size;        /* RING_HASH: minimum_ring_size, 1024 */
    uint64_t ring_max_size;        /* RING_HASH: maximum_ring_size, 8388608 */
    int ring_hash_function;        /* RingHashLbConfig.HashFunction: 0 XX_HASH, 1 MURMUR_HASH_2 */
    uint64_t maglev_table_size;    /* MAGLEV: table_size, 65537 (prime) */
    /* DNS (STRICT_DNS, LOGICAL_DNS) */
    uint64_t dns_refresh_ms; /* dns_refresh_rate, 5000 */
    int dns_lookup_family;   /* Cluster.DnsLookupFamily: 0 AUTO (v6, else v4), 1 V4_ONLY, ... */
    bool respect_dns_ttl;
};

/* The options of a cluster that sets none. */
extern const struct pl_cluster_lb_cfg pl_cluster_lb_defaults;

struct pl_cluster_link; /* runtime state owned by src/upstream (see upstream/upstream.h) */

/* A cluster as workers need it. */
struct pl_cluster_cfg {
    char *name;
    int type;      /* envoy.config.cluster.v3.Cluster.DiscoveryType */
    int lb_policy; /* envoy.config.cluster.v3.Cluster.LbPolicy */
    uint64_t connect_timeout_ms;
    struct pl_endpoint_cfg *endpoints;
    size_t n_endpoints;
    struct pl_cla_host *hosts; /* instead of endpoints (then none) when the cluster's assignment
                                  had the plain shape: a quarter of the memory */
    /* or, with hosts NULL, n_hosts hosts kept in the assignment's encoding (held by the owner a
     * compiled cluster shares, and decoded with hosts_decode when a host set is built from
     * them, once per change: 10,000 clusters of 10 held 1.8 MB of hosts for that) */
    const uint8_t *hosts_enc;
    pl_cla_plain_decode_fn hosts_decode;
    uint32_t n_hosts;
    uint32_t hosts_enc_len;
    uint64_t hash;
    ProtobufCMessage *proto; /* envoy.config.cluster.v3.Cluster, owned; NULL: see encoded */
    const uint8_t *encoded;  /* with proto NULL: the Cluster as received over xDS (shared) */
    size_t encoded_len;
    char *version_info;
    struct timespec last_updated;

    /* load balancing and DNS options: never NULL once compiled (most clusters share
     * pl_cluster_lb_defaults); read them through pl_cluster_lb() */
    const struct pl_cluster_lb_cfg *lbo;

    bool dynamic; /* added over xDS (CDS): /config_dump's dynamic_active_clusters */

    /* upstream HTTP (typed_extension_protocol_options HttpProtocolOptions) */
    bool http2;                             /* explicit_http_config.http2_protocol_options set */
    uint32_t h2_max_concurrent_streams;     /* 2147483647 */
    uint32_t h2_initial_stream_window_size; /* 268435456 */
    uint32_t h2_initial_connection_window_size; /* 268435456 */
    uint64_t idle_timeout_ms;   /* common_http_protocol_options.idle_timeout; 3600000; 0: none */
    uint32_t max_headers_count; /* 100 */
    uint32_t per_connection_buffer_limit_bytes; /* 1048576 */

    /* transport_socket (UpstreamTlsContext), compiled through the transport registry
     * (net/conn.h): pass both in pl_conn_opts; NULL transport: raw TCP */
    const struct pl_transport_vtable *transport;
    void *transport_cfg; /* owned, freed with transport->free_cfg */

    /* runtime link, set by pl_upstream_prepare on main before the cluster is first published
     * (never changed after): the cluster holds one reference, dropped through link_ops */
    struct pl_cluster_link *link;
    const struct pl_cluster_link_ops *link_ops;

    struct pl_shared *shared; /* set: the cluster is a compiled object of the compile cache,
                                 shared by the snapshots that serve it (one reference each) */
};

/* What the owner of runtime links (src/upstream) does with one a cluster holds. */
struct pl_cluster_link_ops {
    void (*release)(struct pl_cluster_link *link);
    /* the link's name left the upstream manager: a compiled cluster holding it is not reused
     * (a new one gets the name's new link) */
    bool (*retired)(const struct pl_cluster_link *link);
};

/* c's load-balancing and DNS options (the defaults for a cluster never compiled). */
static inline const struct pl_cluster_lb_cfg *pl_cluster_lb(const struct pl_cluster_cfg *c)
{
    return c->lbo ? c->lbo : &pl_cluster_lb_defaults;
}

/* One dynamic resource: as an xDS client holds it (a compile's input, borrowed), and as a
 * snapshot keeps it for /config_dump (an RDS route configuration, an EDS ClusterLoadAssignment,
 * a listener or cluster still warming): by pointer, with a reference on its owner, or a copy
 * of its own when it has none (pl_dyn_resources_free). */
struct pl_res {
    const char *name;
    const ProtobufCMessage *msg;
    const char *version_info;
    struct timespec last_updated;
    uint64_t hash;           /* of the resource's encoding (with owner set) */
    struct pl_shared *owner; /* NULL, or the reference-counted owner of name, version_info and
                                bytes: the snapshot then shares them, and the compile cache knows
                                the resource by it (it must stay unchanged) */
    const uint8_t *bytes;    /* with owner: the encoding; msg may then be NULL (decoded when it
                                must be compiled) */
    size_t len;
    const char *eds_name; /* clusters with msg NULL: the ClusterLoadAssignment of an EDS
                             cluster, NULL when not EDS */
    pl_cla_plain_decode_fn decode_plain; /* assignments with owner: decodes bytes of the plain
                                            shape (a compiled cluster keeps its hosts that way) */
};

/* An RDS route configuration compiled once per snapshot and shared by every HTTP connection
 * manager that names it (a stream looks it up by name in the snapshot current when it starts). */
struct pl_route_table_cfg {
    char *name;
    struct pl_route_table *table; /* router/router.h, owned */
    struct pl_shared *shared;     /* set: name and table belong to this owner (compile cache) */
};

struct pl_snapshot_pins;  /* private to config/publish.c */
struct pl_snapshot_index; /* private to config/snapshot.c */

/* The cluster side of a snapshot (its clusters with their links, the EDS assignments and the
 * clusters still warming, the CDS version, the index by cluster name), shared by consecutive
 * snapshots while none of it changes: a route or listener update of 10,000 clusters reuses
 * them instead of copying and relinking each. Made by pl_snapshot_share_clusters. */
struct pl_cluster_part {
    struct pl_shared sh;
    struct pl_cluster_cfg **clusters;
    size_t n_clusters;
    const struct pl_res **endpoints;
    size_t n_endpoints;
    const struct pl_res **warming_clusters;
    size_t n_warming_clusters;
    char *cds_version;
    struct pl_nametab *index; /* by name: built with the snapshot's index */
    bool prepared;            /* the links are set (pl_upstream_prepare): once per part */
};

struct pl_snapshot {
    uint64_t generation; /* increases by one per publish */
    struct pl_listener_cfg *listeners;
    size_t n_listeners;
    /* the clusters, each its own object (with the compile cache, shared by the snapshots that
     * serve it unchanged: 10,000 clusters are not copied per update) */
    struct pl_cluster_cfg **clusters;
    size_t n_clusters;
    ProtobufCMessage *bootstrap; /* the bootstrap as loaded, owned; for /config_dump */
    struct timespec bootstrap_loaded;

    /* xDS (all empty without dynamic_resources) */
    const struct pl_res **routes; /* RDS RouteConfigurations, by name */
    size_t n_routes;
    struct pl_route_table_cfg *route_tables; /* routes compiled, sorted by name */
    size_t n_route_tables;
    const struct pl_res **endpoints; /* EDS ClusterLoadAssignments, by cluster_name */
    size_t n_endpoints;
    const struct pl_res **warming_listeners; /* accepted, waiting for their RDS */
    size_t n_warming_listeners;
    const struct pl_res **warming_clusters; /* accepted, waiting for their EDS */
    size_t n_warming_clusters;
    char *lds_version; /* version_info of the last accepted LDS / CDS response, or NULL */
    char *cds_version;
    /* set: clusters, endpoints, warming_clusters and cds_version above are this part's (shared
     * with other snapshots, read-only); NULL: the snapshot's own */
    struct pl_cluster_part *cluster_part;

    /* RCU and pin bookkeeping, owned by config/publish.c */
    struct pl_snapshot_pins *pins;

    /* name lookups (pl_snapshot_cluster, pl_snapshot_listener) in O(1): built by
     * pl_snapshot_index_build; NULL, or out of date with the arrays: a linear scan */
    struct pl_snapshot_index *index;
};

/* Returns a new empty snapshot (no listeners, no clusters); owned by the caller until published. */
struct pl_snapshot *pl_snapshot_new(void);
/* Frees a snapshot and everything it owns. Only publish.c calls this on a published snapshot. */
void pl_snapshot_free(struct pl_snapshot *s);
/* Frees what a listener entry owns, or drops its reference on l->shared (not l itself). */
void pl_listener_cfg_release(struct pl_listener_cfg *l);
/* Frees what a cluster owns, its link reference included (not c itself, nor c->shared). */
void pl_cluster_cfg_release(struct pl_cluster_cfg *c);
/* A snapshot's cluster: drops its reference on c->shared, or frees c and what it owns. */
void pl_cluster_free(struct pl_cluster_cfg *c);
/* Frees what a route table entry owns, or drops r->shared. */
void pl_route_table_cfg_release(struct pl_route_table_cfg *r);
/* Frees n dynamic resources and the array (NULL is fine). */
void pl_dyn_resources_free(const struct pl_res **v, size_t n);
/* Moves s's cluster side (clusters, endpoints, warming_clusters, cds_version) into a new part
 * that s holds; once published, other snapshots may take it with pl_snapshot_use_clusters. */
void pl_snapshot_share_clusters(struct pl_snapshot *s);
/* Gives s (without clusters of its own) the cluster side of p, taking a reference. */
void pl_snapshot_use_clusters(struct pl_snapshot *s, struct pl_cluster_part *p);
/* Builds (or rebuilds) the name index of s for its current listeners and clusters; main thread,
 * before publish (the compile functions call it). */
void pl_snapshot_index_build(struct pl_snapshot *s);
/* Returns the listener named name, or NULL. */
const struct pl_listener_cfg *pl_snapshot_listener(const struct pl_snapshot *s, const char *name);
/* Returns the cluster named name, or NULL. */
const struct pl_cluster_cfg *pl_snapshot_cluster(const struct pl_snapshot *s, const char *name);
/* Returns the compiled RDS route table named name (owned by s), or NULL (binary search). */
const struct pl_route_table *pl_snapshot_route_table(const struct pl_snapshot *s, const char *name);

#endif
