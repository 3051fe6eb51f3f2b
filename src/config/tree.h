/* A YAML/JSON document as a read-only node tree with 1-based line/column positions. */
#ifndef PL_CONFIG_TREE_H
#define PL_CONFIG_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* Limits that keep untrusted documents from exhausting the stack or memory. */
#define PL_TREE_MAX_DEPTH  400          /* nesting of maps and lists */
#define PL_TREE_MAX_INPUT  (256u << 20) /* bytes */
#define PL_TREE_MAX_WEIGHT (16u << 20)  /* nodes, counting every alias expansion */

enum pl_node_type {
    PL_NODE_NULL,   /* JSON null; YAML plain null, ~, empty */
    PL_NODE_SCALAR, /* string, number or boolean, as text */
    PL_NODE_MAP,
    PL_NODE_SEQ,
};

struct pl_node;
struct pl_tree;

/* Parses YAML or JSON text (JSON also when libyaml would reject it, e.g. surrogate pairs);
 * name is used in error messages. On success *out is owned by the caller (pl_tree_free). */
int pl_tree_load_text(const char *text, size_t len, const char *name, struct pl_tree **out,
                      struct pl_err *err);
/* Reads and parses a file; errors read "path:line:col: message". *out owned by the caller. */
int pl_tree_load_file(const char *path, struct pl_tree **out, struct pl_err *err);
/* Frees the tree and every node in it. NULL is allowed. */
void pl_tree_free(struct pl_tree *t);
/* The document's root node (owned by the tree; a PL_NODE_NULL node for an empty document). */
const struct pl_node *pl_tree_root(const struct pl_tree *t);
/* The name given at load time (owned by the tree). */
const char *pl_tree_name(const struct pl_tree *t);

/* The node's kind. */
enum pl_node_type pl_node_type(const struct pl_node *n);
/* 1-based line and column where the node starts. */
int pl_node_line(const struct pl_node *n);
int pl_node_col(const struct pl_node *n);
/* Scalar (or null) text, NUL-terminated, owned by the tree; *len (may be NULL) gets its byte
 * length, which can differ from strlen when the text holds NUL characters. NULL for maps/lists. */
const char *pl_node_str(const struct pl_node *n, size_t *len);
/* True for a quoted scalar (YAML quoted/block/!!str, JSON string): never a number/bool/null. */
bool pl_node_quoted(const struct pl_node *n);
/* Number of items of a list or of key/value pairs of a map; 0 for scalars. */
size_t pl_node_len(const struct pl_node *n);
/* The i-th item of a list (NULL when out of range or not a list). */
const struct pl_node *pl_node_item(const struct pl_node *n, size_t i);
/* The key and value of a map's i-th pair (NULL when out of range or not a map). */
const struct pl_node *pl_node_key(const struct pl_node *n, size_t i);
const struct pl_node *pl_node_val(const struct pl_node *n, size_t i);
/* The value of the first pair of a map whose key is the scalar text key; NULL if none. */
const struct pl_node *pl_node_get(const struct pl_node *n, const char *key);

#endif
