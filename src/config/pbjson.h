/* proto3 JSON mapping over protobuf-c descriptors: YAML/JSON text -> message (with a source
 * map of positions), message -> JSON text, and google.protobuf.Any helpers. */
#ifndef PL_CONFIG_PBJSON_H
#define PL_CONFIG_PBJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "config/registry.h"
#include "config/srcmap.h"
#include "config/tree.h"
#include "core/err.h"

#define PL_PBJSON_MAX_DEPTH 100 /* message nesting limit (Any payloads and Struct count too) */

/* Decoder options; a zeroed struct (or NULL) gives the defaults. */
struct pl_pbjson_opts {
    /* Called for every field written in the input with a non-null value (after its name is
     * matched, before its value is decoded), inside Any payloads too. It may add errors to err
     * (each fails the decode) or return a negative code to fail it. loc->path is the field's. */
    int (*field_hook)(void *ud, const ProtobufCMessageDescriptor *msg,
                      const ProtobufCFieldDescriptor *field, const struct pl_srcloc *loc,
                      struct pl_err *err);
    void *ud;
    int max_depth; /* 0: PL_PBJSON_MAX_DEPTH */
};

/* Decodes a YAML or JSON file into a new message of type desc; opts may be NULL. On success
 * *out is owned by the caller (protobuf_c_message_free_unpacked(*out, NULL)). map may be NULL;
 * otherwise a new srcmap is stored in *map when *map is NULL, or the positions are added to
 * *map. On failure every error is in err (file:line:col, path), *out is NULL and *map is left
 * as it was. A missing file gives PL_EIO, anything else PL_EINVAL. */
int pl_pbjson_load_file(const char *path, const ProtobufCMessageDescriptor *desc,
                        const struct pl_pbjson_opts *opts, ProtobufCMessage **out,
                        struct pl_srcmap **map, struct pl_err *err);
/* As pl_pbjson_load_file for text held in memory (--config-yaml); name is used in errors. */
int pl_pbjson_load_text(const char *text, size_t len, const char *name,
                        const ProtobufCMessageDescriptor *desc, const struct pl_pbjson_opts *opts,
                        ProtobufCMessage **out, struct pl_srcmap **map, struct pl_err *err);
/* As pl_pbjson_load_file for one node of a tree (pl_tree_load_*), e.g. one element of a
 * "resources:" list; file names the source in errors and base_path (NULL or "") prefixes every
 * path, e.g. "resources[3]". The srcmap copies what it needs: the tree may be freed after. */
int pl_pbjson_from_node(const struct pl_node *node, const ProtobufCMessageDescriptor *desc,
                        const char *file, const char *base_path, const struct pl_pbjson_opts *opts,
                        ProtobufCMessage **out, struct pl_srcmap **map, struct pl_err *err);

enum {
    PL_PBJSON_PRETTY = 1,      /* newlines and two-space indentation */
    PL_PBJSON_PROTO_NAMES = 2, /* snake_case proto field names instead of lowerCamelCase */
};

/* Prints m as proto3 JSON (lowerCamelCase names, defaults omitted, 64-bit integers as strings,
 * enums by name, WKTs in their JSON forms, Any with "@type" and its payload's fields).
 * Returns a malloc'd NUL-terminated string owned by the caller; "null" for a NULL m. */
char *pl_pbjson_print(const ProtobufCMessage *m, int flags);
/* As pl_pbjson_print, writing to f; returns 0 or PL_EIO. */
int pl_pbjson_fprint(FILE *f, const ProtobufCMessage *m, int flags);

/* Returns the payload of a google.protobuf.Any: the one decoded from text if map (may be NULL)
 * has it (*owned = false: it belongs to the map), else unpacked from the Any's bytes
 * (*owned = true: free it with protobuf_c_message_free_unpacked). With expect non-NULL the
 * type URL must name expect. Errors (unknown type, mismatch, bad bytes) go to err. */
int pl_any_unpack(const ProtobufCMessage *any, const struct pl_srcmap *map,
                  const ProtobufCMessageDescriptor *expect, ProtobufCMessage **out, bool *owned,
                  struct pl_err *err);

#endif
