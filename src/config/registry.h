/* Message descriptors by full name and type URL, for google.protobuf.Any. */
#ifndef PL_CONFIG_REGISTRY_H
#define PL_CONFIG_REGISTRY_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

/* Finds a descriptor by full name ("envoy.config.cluster.v3.Cluster"); NULL if unknown.
 * Covers every message compiled into pl_proto_all plus those added with pl_registry_add. */
const ProtobufCMessageDescriptor *pl_registry_find_name(const char *full_name);
/* Finds a descriptor by type URL: "type.googleapis.com/X" or any "prefix/X"; NULL if unknown
 * or if the URL has no '/'. */
const ProtobufCMessageDescriptor *pl_registry_find_type_url(const char *url);
/* Adds an extra descriptor (e.g. a test-only proto); the descriptor must outlive the process.
 * Re-adding a name replaces the earlier entry. Call before other threads start looking up. */
void pl_registry_add(const ProtobufCMessageDescriptor *desc);
/* Adds n descriptors, as pl_registry_add. */
void pl_registry_add_all(const ProtobufCMessageDescriptor *const *descs, size_t n);
/* Finds an enum descriptor by full name; NULL if unknown. */
const ProtobufCEnumDescriptor *pl_registry_find_enum(const char *full_name);

#endif
