/* Envoy's /config_dump, built as envoy.admin.v3.ConfigDump messages from a snapshot. */
#ifndef PL_CONFIG_DUMP_H
#define PL_CONFIG_DUMP_H

#include "config/snapshot.h"

/* Returns the config dump of s as JSON text (Envoy's format: proto field names, @type on every
 * Any); caller frees. `resource` limits it to one kind as Envoy's ?resource= does
 * ("static_clusters", "dynamic_active_clusters", "static_listeners", ...); NULL for all. */
char *pl_config_dump_json(const struct pl_snapshot *s, const char *resource);

#endif
