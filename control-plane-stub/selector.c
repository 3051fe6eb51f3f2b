/* Node selectors (`node_selector:` of a resource file) and the per-node views of a set. */
#include <stdlib.h>
#include <string.h>

#include "cp.h"

static char *dup_scalar(const struct pl_node *n)
{
    const char *s = pl_node_str(n, NULL);
    return pl_strdup(s ? s : "");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void pl_cp_selector_free(struct pl_cp_selector *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_md; i++) {
        free(s->md_key[i]);
        free(s->md_val[i]);
    }
    free(s->md_key);
    free(s->md_val);
    free(s->id);
    free(s->cluster);
    free(s->key);
    free(s);
}

static char *dup_or_null(const char *s)
{
    return s ? pl_strdup(s) : NULL;
}

struct pl_cp_selector *pl_cp_selector_copy(const struct pl_cp_selector *s)
{
    if (!s)
        return NULL;
    struct pl_cp_selector *c = pl_calloc(1, sizeof(*c));
    c->id = dup_or_null(s->id);
    c->cluster = dup_or_null(s->cluster);
    c->key = dup_or_null(s->key);
    c->n_md = s->n_md;
    c->md_key = pl_calloc(s->n_md + 1, sizeof(char *));
    c->md_val = pl_calloc(s->n_md + 1, sizeof(char *));
    for (size_t i = 0; i < s->n_md; i++) {
        c->md_key[i] = pl_strdup(s->md_key[i]);
        c->md_val[i] = pl_strdup(s->md_val[i]);
    }
    return c;
}

static int sel_err(struct pl_err *err, const char *file, const struct pl_node *n, const char *path,
                   const char *msg)
{
    return pl_err_add(err, file, pl_node_line(n), pl_node_col(n), path, "%s", msg);
}

/* The canonical text of s (sorted metadata pairs), to compare selectors. */
static void set_key(struct pl_cp_selector *s)
{
    size_t n_md = s->n_md;
    char **pairs = pl_calloc(n_md + 1, sizeof(char *));
    size_t len = 64 + (s->id ? strlen(s->id) : 0) + (s->cluster ? strlen(s->cluster) : 0);
    for (size_t i = 0; i < n_md; i++) {
        pairs[i] = pl_asprintf("%s=%s", s->md_key[i], s->md_val[i]);
        len += strlen(pairs[i]) + 1;
    }
    qsort(pairs, n_md, sizeof(char *), cmp_str);
    s->key = pl_malloc(len);
    int off = snprintf(s->key, len, "id=%s;cluster=%s;", s->id ? s->id : "*",
                       s->cluster ? s->cluster : "*");
    for (size_t i = 0; i < n_md; i++) {
        off += snprintf(s->key + off, len - (size_t)off, "%s;", pairs[i]);
        free(pairs[i]);
    }
    free(pairs);
}

int pl_cp_selector_parse(const char *file, const struct pl_node *n, struct pl_cp_selector **out,
                         struct pl_err *err)
{
    *out = NULL;
    if (!n || pl_node_type(n) == PL_NODE_NULL)
        return 0;
    if (pl_node_type(n) != PL_NODE_MAP)
        return sel_err(err, file, n, "node_selector", "node_selector must be a map");
    struct pl_cp_selector *s = pl_calloc(1, sizeof(*s));
    int rc = 0;
    for (size_t i = 0; i < pl_node_len(n); i++) {
        const char *k = pl_node_str(pl_node_key(n, i), NULL);
        const struct pl_node *v = pl_node_val(n, i);
        if (k && (!strcmp(k, "id") || !strcmp(k, "cluster"))) {
            if (pl_node_type(v) != PL_NODE_SCALAR) {
                rc = sel_err(err, file, v, k, "node_selector: id and cluster must be strings");
                continue;
            }
            char **dst = !strcmp(k, "id") ? &s->id : &s->cluster;
            free(*dst);
            *dst = dup_scalar(v);
        } else if (k && !strcmp(k, "metadata")) {
            if (pl_node_type(v) != PL_NODE_MAP) {
                rc = sel_err(err, file, v, "node_selector.metadata", "metadata must be a map");
                continue;
            }
            for (size_t j = 0; j < pl_node_len(v); j++) {
                const struct pl_node *mv = pl_node_val(v, j);
                if (pl_node_type(mv) != PL_NODE_SCALAR) {
                    rc = sel_err(err, file, mv, "node_selector.metadata",
                                 "metadata values must be strings, numbers or booleans");
                    continue;
                }
                s->md_key = pl_realloc(s->md_key, (s->n_md + 1) * sizeof(char *));
                s->md_val = pl_realloc(s->md_val, (s->n_md + 1) * sizeof(char *));
                s->md_key[s->n_md] = dup_scalar(pl_node_key(v, j));
                s->md_val[s->n_md++] = dup_scalar(mv);
            }
        } else {
            rc = pl_err_add(err, file, pl_node_line(pl_node_key(n, i)),
                            pl_node_col(pl_node_key(n, i)), "node_selector",
                            "unknown node_selector key '%s' (expected id, cluster, metadata)",
                            k ? k : "?");
        }
    }
    if (rc < 0) {
        pl_cp_selector_free(s);
        return rc;
    }
    set_key(s);
    *out = s;
    return 0;
}

static bool md_match(const Google__Protobuf__Struct *md, const char *key, const char *want)
{
    for (size_t i = 0; md && i < md->n_fields; i++) {
        const Google__Protobuf__Value *v = md->fields[i]->value;
        if (strcmp(md->fields[i]->key, key) || !v)
            continue;
        char num[64];
        switch (v->kind_case) {
        case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
            return !strcmp(v->string_value, want);
        case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
            return !strcmp(v->bool_value ? "true" : "false", want);
        case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
            snprintf(num, sizeof(num), "%.17g", v->number_value);
            return strtod(want, NULL) == v->number_value || !strcmp(num, want);
        default:
            return false;
        }
    }
    return false;
}

bool pl_cp_selector_match(const struct pl_cp_selector *sel, const pl_cp_node_t *node)
{
    if (!sel)
        return true;
    if (!node)
        return false;
    if (sel->id && strcmp(sel->id, node->id))
        return false;
    if (sel->cluster && strcmp(sel->cluster, node->cluster))
        return false;
    for (size_t i = 0; i < sel->n_md; i++)
        if (!md_match(node->metadata, sel->md_key[i], sel->md_val[i]))
            return false;
    return true;
}

size_t pl_cp_set_view(const struct pl_cp_set *s, int t, const pl_cp_node_t *node,
                      const struct pl_cp_res **out)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (size_t i = 0; i < s->n[t]; i++) {
        const struct pl_cp_res *r = &s->res[t][i];
        if (n && !strcmp(out[n - 1]->name, r->name))
            continue; /* a variant of this name was chosen already */
        if (pl_cp_selector_match(r->sel, node))
            out[n++] = r;
    }
    return n;
}

static int cmp_key_res(const void *k, const void *r)
{
    return strcmp(k, ((const struct pl_cp_res *)r)->name);
}

const struct pl_cp_res *pl_cp_set_find(const struct pl_cp_set *s, int t, const char *name,
                                       const pl_cp_node_t *node)
{
    if (!s || !s->n[t])
        return NULL;
    const struct pl_cp_res *r = bsearch(name, s->res[t], s->n[t], sizeof(*r), cmp_key_res);
    if (!r)
        return NULL;
    while (r > s->res[t] && !strcmp(r[-1].name, name))
        r--; /* the first variant of this name */
    for (const struct pl_cp_res *end = s->res[t] + s->n[t]; r < end && !strcmp(r->name, name); r++)
        if (pl_cp_selector_match(r->sel, node))
            return r;
    return NULL;
}
