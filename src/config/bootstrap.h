/* Bootstrap loading (Envoy's --config-path / --config-yaml), validation and compilation. */
#ifndef PL_CONFIG_BOOTSTRAP_H
#define PL_CONFIG_BOOTSTRAP_H

#include <stdbool.h>

#include "config/snapshot.h"
#include "core/err.h"
#include "pl_proto_all.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap pl_bootstrap_t;

struct pl_bootstrap_opts {
    const char *config_path; /* YAML or JSON file; may be NULL */
    const char *config_yaml; /* YAML text merged over the file (Envoy's MergeFrom); may be NULL */
    const char *service_cluster; /* overrides node.cluster when set */
    const char *service_node;    /* overrides node.id when set */
    bool admin_allow_remote;     /* accept a non-loopback admin address */
};

/* Loads, merges and validates a bootstrap; reports every error (file:line:col, field path).
 * On success *out is a new message owned by the caller (protobuf_c_message_free_unpacked). */
int pl_bootstrap_load(const struct pl_bootstrap_opts *o, pl_bootstrap_t **out, struct pl_err *err);

/* Compiles the static resources of a validated bootstrap into a new snapshot owned by the caller;
 * the snapshot keeps its own copy of the bootstrap for /config_dump. */
int pl_bootstrap_compile(const pl_bootstrap_t *b, struct pl_snapshot **out, struct pl_err *err);

#endif
