/* Node layout and builders shared by the YAML and JSON readers of tree.c and tree_json.c. */
#ifndef PL_CONFIG_TREE_INTERNAL_H
#define PL_CONFIG_TREE_INTERNAL_H

#include "config/tree.h"

struct pl_node {
    enum pl_node_type type;
    int line, col;
    bool quoted;
    size_t len;             /* scalar bytes, list items or map pairs */
    char *str;              /* scalar and null text */
    struct pl_node **items; /* list: len items; map: key, value, key, value ... */
    size_t weight;          /* nodes under this one, aliases expanded */
};

struct pl_tree_chunk;

struct pl_tree {
    struct pl_tree_chunk *chunks;
    struct pl_node *root;
    char *name;
};

/* Allocates n zeroed bytes that live as long as the tree. */
void *pl_tree_alloc(struct pl_tree *t, size_t n);
/* A new node of the given type at the given 0-based libyaml-style position. */
struct pl_node *pl_tree_node(struct pl_tree *t, enum pl_node_type type, int line, int col);
/* Copies s (len bytes) into the tree as node text. */
void pl_tree_set_str(struct pl_tree *t, struct pl_node *n, const char *s, size_t len);
/* An empty tree named name. */
struct pl_tree *pl_tree_new(const char *name);
/* Parses JSON text into t (root set on success); errors are added with positions. */
int pl_tree_parse_json(struct pl_tree *t, const char *text, size_t len, struct pl_err *err);

#endif
