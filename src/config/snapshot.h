/* The immutable compiled configuration that workers read (DESIGN.md section 2). */
#ifndef PL_CONFIG_SNAPSHOT_H
#define PL_CONFIG_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <protobuf-c/protobuf-c.h>

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
};

/* An endpoint of a cluster. */
struct pl_endpoint_cfg {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *addr_str;
    uint32_t weight;
};

/* A cluster as workers need it. */
struct pl_cluster_cfg {
    char *name;
    int type;      /* envoy.config.cluster.v3.Cluster.DiscoveryType */
    int lb_policy; /* envoy.config.cluster.v3.Cluster.LbPolicy */
    uint64_t connect_timeout_ms;
    struct pl_endpoint_cfg *endpoints;
    size_t n_endpoints;
    uint64_t hash;
    ProtobufCMessage *proto; /* envoy.config.cluster.v3.Cluster, owned */
    char *version_info;
    struct timespec last_updated;
};

struct pl_snapshot_pins; /* private to config/publish.c */

struct pl_snapshot {
    uint64_t generation; /* increases by one per publish */
    struct pl_listener_cfg *listeners;
    size_t n_listeners;
    struct pl_cluster_cfg *clusters;
    size_t n_clusters;
    ProtobufCMessage *bootstrap; /* the bootstrap as loaded, owned; for /config_dump */
    struct timespec bootstrap_loaded;

    /* RCU and pin bookkeeping, owned by config/publish.c */
    struct pl_snapshot_pins *pins;
};

/* Returns a new empty snapshot (no listeners, no clusters); owned by the caller until published. */
struct pl_snapshot *pl_snapshot_new(void);
/* Frees a snapshot and everything it owns. Only publish.c calls this on a published snapshot. */
void pl_snapshot_free(struct pl_snapshot *s);
/* Returns the listener named name, or NULL. */
const struct pl_listener_cfg *pl_snapshot_listener(const struct pl_snapshot *s, const char *name);
/* Returns the cluster named name, or NULL. */
const struct pl_cluster_cfg *pl_snapshot_cluster(const struct pl_snapshot *s, const char *name);

#endif
