/* Where each decoded message and field came from (file:line:col and field path), so that
 * validation after decoding can still report positions; also keeps Any payloads decoded. */
#ifndef PL_CONFIG_SRCMAP_H
#define PL_CONFIG_SRCMAP_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "core/err.h"

#define PL_SRCLOC_PATH_MAX 1024

/* A position in a config source. file is owned by the srcmap it came from. */
struct pl_srcloc {
    const char *file;
    int line;                      /* 1-based; 0 when unknown */
    int col;                       /* 1-based; 0 when unknown */
    char path[PL_SRCLOC_PATH_MAX]; /* "static_resources.clusters[2].name" (truncated: "...") */
};

struct pl_srcmap;

/* A new empty map; owned by the caller (pl_srcmap_free). */
struct pl_srcmap *pl_srcmap_new(void);
/* Frees the map and the Any payload messages it owns. Use it before (or with) freeing the
 * decoded messages: the map is keyed by their addresses. NULL is allowed. */
void pl_srcmap_free(struct pl_srcmap *m);
/* Fills *out with where msg (field_name NULL) or its field field_name (proto or JSON name) was
 * written; returns 0, or PL_ENOENT when m is NULL or knows no such message/field. */
int pl_srcmap_lookup(const struct pl_srcmap *m, const void *msg, const char *field_name,
                     struct pl_srcloc *out);
/* As pl_srcmap_lookup for item idx of a repeated field (path "...field[idx]"). */
int pl_srcmap_lookup_elem(const struct pl_srcmap *m, const void *msg, const char *field_name,
                          size_t idx, struct pl_srcloc *out);
/* The decoded payload of a google.protobuf.Any decoded from text (owned by the map), or NULL. */
const ProtobufCMessage *pl_srcmap_any_inner(const struct pl_srcmap *m, const void *any);
/* Adds an error at msg's field (or msg itself when field is NULL) with its file:line:col and
 * path; without a known position it adds the error with path = field. Returns PL_EINVAL. */
int pl_err_at(struct pl_err *e, const struct pl_srcmap *m, const void *msg, const char *field,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- building (used by the decoder) ---- */

/* Records a decoded message: its path ("" for the root) and position. */
void pl_srcmap_add_msg(struct pl_srcmap *m, const void *msg, const char *file, const char *path,
                       int line, int col);
/* Records the position of the key of field fd in msg (msg must have been added). */
void pl_srcmap_add_field(struct pl_srcmap *m, const void *msg, const ProtobufCFieldDescriptor *fd,
                         int line, int col);
/* Appends the position of the next item of repeated field fd in msg. */
void pl_srcmap_add_elem(struct pl_srcmap *m, const void *msg, const ProtobufCFieldDescriptor *fd,
                        int line, int col);
/* Gives the map ownership of inner, the decoded payload of the Any at any. */
void pl_srcmap_set_any_inner(struct pl_srcmap *m, const void *any, ProtobufCMessage *inner);
/* Whether s is the proto name or the lowerCamelCase JSON name (as protoc derives it) of a field
 * whose proto name is proto_name. */
bool pl_json_name_eq(const char *proto_name, const char *s);
/* Moves every entry of src into dst and frees src. */
void pl_srcmap_merge(struct pl_srcmap *dst, struct pl_srcmap *src);

#endif
