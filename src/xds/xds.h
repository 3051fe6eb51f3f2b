/* The xDS client: one ADS stream (state of the world) for LDS, RDS, CDS and EDS.
 *
 * Threads (DESIGN.md section 2): the xDS thread (transport.c) blocks on the gRPC completion
 * queue and hands decoded DiscoveryResponses to the main loop. On main, each response is
 * checked resource by resource (the support table over every set field, then
 * config/validate.h), the valid resources are merged into the accepted ones, a complete new
 * snapshot is compiled with the bootstrap's static resources (config/compile_resources.h),
 * linked to upstream runtime state and published (pl_server_apply); then the ACK (version_info +
 * response_nonce) or NACK (the last version accepted whole, the nonce, error_detail naming
 * resource and field) goes back to the xDS thread.
 *
 * Per-resource acceptance, as Envoy: in a response with valid and invalid resources the valid
 * ones apply and the response is NACKed naming each invalid one; an invalid resource keeps its
 * previous version (SotW LDS/CDS do not remove it); the first of a duplicated name counts; a
 * resource that fails to compile (a TLS file) is reverted alone; a resource without a name or of
 * another type makes the whole response unusable (nothing applies), and so does a snapshot that
 * still cannot be applied. update_rejected counts per type for CDS/LDS and per resource for
 * RDS/EDS; /config_dump's version_info is the last update that changed anything.
 *
 * Scale: accepted resources are immutable, reference-counted records in hash maps, kept in
 * their encoding (listeners also decoded); a resource whose bytes equal the accepted one of its
 * name (XXH64, name read off the wire) is neither decoded nor checked again, and a response that
 * changes nothing builds no snapshot. The compile cache keeps compiled clusters, listeners and
 * route tables between snapshots, keyed by the identity of their source records, so a snapshot
 * shares what did not change and compiles only what did; what stays O(all) per update is the
 * snapshot's arrays and name index (a few thousand instructions per cluster).
 *
 * Warming follows Envoy: an EDS cluster is served once its ClusterLoadAssignment arrived, a
 * listener once its RDS route configurations arrived (a changed one keeps serving its previous
 * version meanwhile), or when the config source's initial_fetch_timeout (15 s) passes. The
 * initial configuration is in (pl_xds_initialized) when LDS and CDS answered (or timed out) and
 * nothing warms any more. A failed stream is retried with exponential backoff and jitter (500 ms
 * base, 30 s max); the last good configuration keeps serving and the versions held are sent
 * again on the new stream.
 *
 * ads_config api_type DELTA_GRPC runs the same types over DeltaAggregatedResources: name
 * subscribe/unsubscribe diffs, per-resource versions, removed_resources, and on reconnect
 * initial_resource_versions with what is held.
 *
 * RDS: an HTTP connection manager that names an RDS route configuration keeps only the name.
 * Each snapshot compiles every route configuration once (snapshot.h route_tables, shared by all
 * the HCMs naming it), so a route change leaves listeners, their hashes and sockets alone. As in
 * Envoy, each new stream (request) uses the route configuration current when its head arrives,
 * also on connections accepted earlier: the HCM reads the current snapshot, looks the name up
 * (cached per connection until the snapshot changes) and pins that snapshot for the stream's
 * life when it is not the connection's, so the route and the cluster it names come from the
 * same snapshot; a stream in flight keeps what it started with. A name the current snapshot
 * lacks (its listener changed) falls back to the connection's snapshot.
 *
 * Stats (Envoy's names): cluster_manager.cds.*, listener_manager.lds.*,
 * http.<stat_prefix>.rds.<route_config_name>.*, cluster.<name>.update_* (EDS):
 * update_attempt, update_success, update_rejected, update_failure, init_fetch_timeout, version;
 * control_plane.connected_state; cluster_manager.active_clusters / warming_clusters;
 * listener_manager.total_listeners_active / total_listeners_warming; server.dynamic_inert_fields
 * (fields set that change no behaviour, accepted).
 */
#ifndef PL_XDS_XDS_H
#define PL_XDS_XDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/bootstrap.h"
#include "core/err.h"

struct ev_loop;
struct pl_server;
struct pl_stats;
struct pl_xds;

struct pl_xds_opts {
    struct ev_loop *loop;            /* main loop */
    struct pl_server *srv;           /* where snapshots are applied */
    struct pl_stats *stats;          /* may be NULL */
    const pl_bootstrap_t *bootstrap; /* with dynamic_resources; must outlive the client */
};

/* Sets the gRPC experiments the xDS transport relies on (GRPC_EXPERIMENTS: bounded TCP reads,
 * see transport.c). Call it first in main, before any thread starts: it changes the
 * environment. pl_xds_start does it too for programs that do not (only once). */
void pl_xds_process_init(void);

/* Compiles and applies the bootstrap's static resources, then starts the ADS stream. On
 * success *out is the client (pl_xds_free); a startup failure (a listener that cannot bind, no
 * usable ADS target) fills err. Main thread; pl_upstream_init must have run. */
int pl_xds_start(const struct pl_xds_opts *o, struct pl_xds **out, struct pl_err *err);
/* Stops the stream and the xDS thread and frees the client (the published snapshot stays). */
void pl_xds_free(struct pl_xds *x);
/* Returns true once the initial configuration is in (/ready turns LIVE). NULL: true. */
bool pl_xds_initialized(const struct pl_xds *x);
/* Returns Envoy's init state name: "PRE_INITIALIZING" (no stream yet), "INITIALIZING", "LIVE". */
const char *pl_xds_init_state(const struct pl_xds *x);
/* Returns the client's state as a JSON object (connection, target, per-type versions, nonces,
 * subscriptions, last NACK) for /server_info; caller frees. */
char *pl_xds_status_json(const struct pl_xds *x);
struct pl_dump_failure;
/* The resources whose last update was rejected, for /config_dump's error_state: *out (caller
 * frees the array; its strings are x's, valid until the next update). Returns their count. */
size_t pl_xds_failures(const struct pl_xds *x, struct pl_dump_failure **out);

/* Decodes an encoded Cluster into memory from a (the decoded message equals protobuf-c's unpack
 * of the same bytes) when it uses only the fields of the common shape that the support table
 * implements (name; type; eds_cluster_config with an ADS eds_config, its initial_fetch_timeout
 * and resource_api_version, and service_name; connect_timeout; lb_policy;
 * per_connection_buffer_limit_bytes; dns_lookup_family, dns_refresh_rate, respect_dns_ttl; a
 * load_assignment pl_xds_cla_decode takes): the field walk would find nothing in it. Returns
 * NULL for anything else (other fields, a field or oneof set twice, odd encodings, enum values
 * the schema does not name, strings with NUL or non-ASCII bytes, malformed bytes); the caller
 * then decodes and checks it the generic way. The message lives as long as a's memory (parts of
 * it share allocations: never protobuf_c_message_free_unpacked); what was allocated for a
 * declined one stays there too. For the store's check and the compile of a kept encoding. */
Envoy__Config__Cluster__V3__Cluster *pl_xds_cluster_decode(const uint8_t *data, size_t len,
                                                           ProtobufCAllocator *a);

#endif
