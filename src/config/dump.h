/* Envoy's /config_dump, built as envoy.admin.v3.ConfigDump messages from a snapshot. */
#ifndef PL_CONFIG_DUMP_H
#define PL_CONFIG_DUMP_H

#include "config/snapshot.h"

/* A dynamic resource whose last update was rejected: Envoy's error_state (details, time, the
 * version tried) with client_status NACKED on its entry, an entry of its own when no version of
 * it was ever accepted. */
enum pl_dump_kind { PL_DUMP_LISTENER, PL_DUMP_CLUSTER, PL_DUMP_ROUTE, PL_DUMP_ENDPOINT };
struct pl_dump_failure {
    enum pl_dump_kind kind;
    const char *name;
    const char *details;
    const char *version;
    struct timespec when; /* CLOCK_REALTIME */
};

/* Returns the config dump of s as JSON text (Envoy's format: proto field names, @type on every
 * Any); caller frees. `resource` limits it to one kind as Envoy's ?resource= does
 * ("static_clusters", "dynamic_active_clusters", "static_listeners", ...); NULL for all. */
char *pl_config_dump_json(const struct pl_snapshot *s, const char *resource,
                          const struct pl_dump_failure *failures, size_t n_failures);

#endif
