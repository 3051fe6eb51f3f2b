/* Resource files: `resources:` lists of Envoy resources (each with its "@type"), an optional
 * `node_selector:` per file, decoded with the proto3 JSON mapper and checked as a whole set. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/pbjson.h"
#include "config/tree.h"
#include "config/validate.h"
#include "cp.h"

#define HCM_T Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager
#define HCM_D                                                                                      \
    envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor
#define HCM_URL "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define HCM_RDS                                                                                    \
    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS
#define HCM_INLINE                                                                                 \
    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG

static const struct {
    const char *url, *name, *kind, *name_field;
} types[PL_CP_NTYPES] = {
    [PL_CP_SDS] = {"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "sds",
                   "Secret", "name"},
    [PL_CP_CDS] = {"type.googleapis.com/envoy.config.cluster.v3.Cluster", "cds", "Cluster", "name"},
    [PL_CP_EDS] = {"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "eds",
                   "ClusterLoadAssignment", "cluster_name"},
    [PL_CP_LDS] = {"type.googleapis.com/envoy.config.listener.v3.Listener", "lds", "Listener",
                   "name"},
    [PL_CP_RDS] = {"type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "rds",
                   "RouteConfiguration", "name"},
};

const char *pl_cp_type_url(int t)
{
    return types[t].url;
}

const char *pl_cp_type_name(int t)
{
    return types[t].name;
}

int pl_cp_type_from_url(const char *url)
{
    for (int t = 0; t < PL_CP_NTYPES; t++)
        if (!strcmp(types[t].url, url))
            return t;
    /* any "prefix/full.name" form names the same type */
    const char *slash = strrchr(url, '/');
    for (int t = 0; slash && t < PL_CP_NTYPES; t++)
        if (!strcmp(strrchr(types[t].url, '/'), slash))
            return t;
    return -1;
}

/* One decoded resource while a load is in progress. */
struct item {
    int type;
    ProtobufCMessage *any; /* google.protobuf.Any holding the packed resource */
    const ProtobufCMessage *inner;
    struct pl_srcmap *map; /* the file's; owned by the loader */
    const char *name;      /* owned by inner */
    const struct pl_cp_selector *sel;
    const char *file;
    unsigned order;
};

struct loader {
    struct pl_err *err;
    struct pl_cp_set *set;
    struct item *items;
    size_t n, cap;
    struct pl_srcmap **maps;
    size_t n_maps;
};

static char *dup_scalar(const struct pl_node *n)
{
    const char *s = pl_node_str(n, NULL);
    return pl_strdup(s ? s : "");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_selector(struct pl_cp_selector *s)
{
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

static int sel_err(struct loader *L, const char *file, const struct pl_node *n, const char *path,
                   const char *msg)
{
    return pl_err_add(L->err, file, pl_node_line(n), pl_node_col(n), path, "%s", msg);
}

/* Parses `node_selector: {id: X, cluster: Y, metadata: {k: v}}`; NULL sel for none. */
static int parse_selector(struct loader *L, const char *file, const struct pl_node *n,
                          const struct pl_cp_selector **out)
{
    *out = NULL;
    if (!n || pl_node_type(n) == PL_NODE_NULL)
        return 0;
    if (pl_node_type(n) != PL_NODE_MAP)
        return sel_err(L, file, n, "node_selector", "node_selector must be a map");
    struct pl_cp_selector *s = pl_calloc(1, sizeof(*s));
    int rc = 0;
    for (size_t i = 0; i < pl_node_len(n); i++) {
        const char *k = pl_node_str(pl_node_key(n, i), NULL);
        const struct pl_node *v = pl_node_val(n, i);
        if (k && (!strcmp(k, "id") || !strcmp(k, "cluster"))) {
            if (pl_node_type(v) != PL_NODE_SCALAR) {
                rc = sel_err(L, file, v, k, "node_selector: id and cluster must be strings");
                continue;
            }
            char **dst = !strcmp(k, "id") ? &s->id : &s->cluster;
            free(*dst);
            *dst = dup_scalar(v);
        } else if (k && !strcmp(k, "metadata")) {
            if (pl_node_type(v) != PL_NODE_MAP) {
                rc = sel_err(L, file, v, "node_selector.metadata", "metadata must be a map");
                continue;
            }
            for (size_t j = 0; j < pl_node_len(v); j++) {
                const struct pl_node *mv = pl_node_val(v, j);
                if (pl_node_type(mv) != PL_NODE_SCALAR) {
                    rc = sel_err(L, file, mv, "node_selector.metadata",
                                 "metadata values must be strings, numbers or booleans");
                    continue;
                }
                s->md_key = pl_realloc(s->md_key, (s->n_md + 1) * sizeof(char *));
                s->md_val = pl_realloc(s->md_val, (s->n_md + 1) * sizeof(char *));
                s->md_key[s->n_md] = dup_scalar(pl_node_key(v, j));
                s->md_val[s->n_md++] = dup_scalar(mv);
            }
        } else {
            rc = pl_err_add(L->err, file, pl_node_line(pl_node_key(n, i)),
                            pl_node_col(pl_node_key(n, i)), "node_selector",
                            "unknown node_selector key '%s' (expected id, cluster, metadata)",
                            k ? k : "?");
        }
    }
    if (rc < 0) {
        free_selector(s);
        return rc;
    }
    /* canonical text: sorted metadata pairs */
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
    L->set->sels = pl_realloc(L->set->sels, (L->set->n_sels + 1) * sizeof(*L->set->sels));
    L->set->sels[L->set->n_sels++] = s;
    *out = s;
    return 0;
}

static const char *res_name(int type, const ProtobufCMessage *m)
{
    switch (type) {
    case PL_CP_SDS:
        return ((const Envoy__Extensions__TransportSockets__Tls__V3__Secret *)m)->name;
    case PL_CP_CDS:
        return ((const Envoy__Config__Cluster__V3__Cluster *)m)->name;
    case PL_CP_EDS:
        return ((const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *)m)->cluster_name;
    case PL_CP_LDS:
        return ((const Envoy__Config__Listener__V3__Listener *)m)->name;
    default:
        return ((const Envoy__Config__Route__V3__RouteConfiguration *)m)->name;
    }
}

/* Decodes one element of `resources:` (a google.protobuf.Any in its JSON form). */
static void load_item(struct loader *L, const char *file, const struct pl_node *n, size_t idx,
                      struct pl_srcmap **map, const struct pl_cp_selector *sel, unsigned order)
{
    char path[48];
    snprintf(path, sizeof(path), "resources[%zu]", idx);
    const struct pl_node *tn = pl_node_type(n) == PL_NODE_MAP ? pl_node_get(n, "@type") : NULL;
    if (!tn) {
        pl_err_add(L->err, file, pl_node_line(n), pl_node_col(n), path,
                   "a resource needs an '@type' (e.g. %s)", types[PL_CP_CDS].url);
        return;
    }
    const char *url = pl_node_str(tn, NULL);
    int type = url ? pl_cp_type_from_url(url) : -1;
    if (type < 0) {
        pl_err_add(L->err, file, pl_node_line(tn), pl_node_col(tn), path,
                   "'@type' %s is not a resource type pillion-cp serves (Listener, "
                   "RouteConfiguration, Cluster, ClusterLoadAssignment, Secret)",
                   url ? url : "(not a string)");
        return;
    }
    ProtobufCMessage *any = NULL;
    if (pl_pbjson_from_node(n, &google__protobuf__any__descriptor, file, path, NULL, &any, map,
                            L->err) < 0)
        return;
    ProtobufCMessage *inner = NULL;
    bool owned = false;
    const ProtobufCMessageDescriptor *d = pl_registry_find_type_url(url);
    if (pl_any_unpack(any, *map, d, &inner, &owned, L->err) < 0 || owned) {
        /* not expected for text input; keep any (the map is keyed by its address) */
        if (owned)
            protobuf_c_message_free_unpacked(inner, NULL);
        inner = NULL;
    }
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        L->items = pl_realloc(L->items, L->cap * sizeof(*L->items));
    }
    L->items[L->n++] = (struct item){.type = type,
                                     .any = any,
                                     .inner = inner,
                                     .map = *map,
                                     .name = inner ? res_name(type, inner) : "",
                                     .sel = sel,
                                     .file = file,
                                     .order = order};
}

static void load_file(struct loader *L, const char *file, unsigned *order)
{
    struct pl_tree *t;
    if (pl_tree_load_file(file, &t, L->err) < 0)
        return;
    const struct pl_node *root = pl_tree_root(t);
    if (pl_node_type(root) == PL_NODE_NULL) {
        pl_tree_free(t);
        return;
    }
    if (pl_node_type(root) != PL_NODE_MAP) {
        pl_err_add(L->err, file, pl_node_line(root), pl_node_col(root), NULL,
                   "the top level must be a map with 'resources:'");
        pl_tree_free(t);
        return;
    }
    for (size_t i = 0; i < pl_node_len(root); i++) {
        const struct pl_node *k = pl_node_key(root, i);
        const char *ks = pl_node_str(k, NULL);
        if (!ks || (strcmp(ks, "resources") && strcmp(ks, "node_selector")))
            pl_err_add(L->err, file, pl_node_line(k), pl_node_col(k), ks,
                       "unknown top-level key '%s' (expected resources, node_selector)",
                       ks ? ks : "?");
    }
    const struct pl_cp_selector *sel;
    if (parse_selector(L, file, pl_node_get(root, "node_selector"), &sel) == 0) {
        const struct pl_node *list = pl_node_get(root, "resources");
        if (list && pl_node_type(list) == PL_NODE_SEQ) {
            struct pl_srcmap *map = pl_srcmap_new();
            L->maps = pl_realloc(L->maps, (L->n_maps + 1) * sizeof(*L->maps));
            L->maps[L->n_maps++] = map;
            for (size_t i = 0; i < pl_node_len(list); i++)
                load_item(L, file, pl_node_item(list, i), i, &map, sel, (*order)++);
        } else if (list && pl_node_type(list) != PL_NODE_NULL) {
            pl_err_add(L->err, file, pl_node_line(list), pl_node_col(list), "resources",
                       "resources must be a list");
        }
    }
    pl_tree_free(t);
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int list_files(const char *path, struct pl_cp_set *set, struct pl_err *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return pl_err_add(err, path, 0, 0, NULL, "cannot read: %s", strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        set->files = pl_malloc(sizeof(char *));
        set->files[set->n_files++] = pl_strdup(path);
        return 0;
    }
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, alphasort);
    if (n < 0)
        return pl_err_add(err, path, 0, 0, NULL, "cannot list: %s", strerror(errno));
    set->files = pl_calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        if (nm[0] != '.' &&
            (has_suffix(nm, ".yaml") || has_suffix(nm, ".yml") || has_suffix(nm, ".json"))) {
            char *full = pl_asprintf("%s/%s", path, nm);
            if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
                set->files[set->n_files++] = full;
            else
                free(full);
        }
        free(ents[i]);
    }
    free(ents);
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->type != y->type)
        return x->type - y->type;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    c = strcmp(x->sel ? x->sel->key : "", y->sel ? y->sel->key : "");
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int item_line(const struct item *it)
{
    struct pl_srcloc loc;
    return pl_srcmap_lookup(it->map, it->inner, NULL, &loc) == 0 ? loc.line : 0;
}

static bool name_in(const char *const *names, size_t n, const char *name)
{
    return bsearch(&name, names, n, sizeof(char *), cmp_str) != NULL;
}

/* Checks the route configuration of one HTTP connection manager inside a listener: an inline
 * route_config is validated; an rds name must be one of the set's route configurations. */
static void check_hcm_any(struct loader *L, const struct item *it, const Google__Protobuf__Any *any,
                          struct pl_vctx *vc, const char *const *routes, size_t n_routes)
{
    if (!any || !has_suffix(any->type_url, "/" HCM_URL))
        return;
    ProtobufCMessage *m;
    bool owned;
    if (pl_any_unpack(&any->base, it->map, &HCM_D, &m, &owned, L->err) < 0)
        return;
    const HCM_T *h = (const HCM_T *)m;
    if (h->route_specifier_case == HCM_INLINE && h->route_config)
        pl_validate_route_config(vc, h->route_config);
    else if (h->route_specifier_case == HCM_RDS && h->rds &&
             !name_in(routes, n_routes, h->rds->route_config_name))
        pl_err_at(L->err, it->map, h->rds, "route_config_name",
                  "listener '%s' names route configuration '%s', which no resource file "
                  "defines",
                  it->name, h->rds->route_config_name);
    if (owned)
        protobuf_c_message_free_unpacked(m, NULL);
}

static void check_listener(struct loader *L, const struct item *it, struct pl_vctx *vc,
                           const char *const *routes, size_t n_routes)
{
    const Envoy__Config__Listener__V3__Listener *l = (const void *)it->inner;
    for (size_t i = 0; i <= l->n_filter_chains; i++) {
        const Envoy__Config__Listener__V3__FilterChain *fc =
            i < l->n_filter_chains ? l->filter_chains[i] : l->default_filter_chain;
        for (size_t j = 0; fc && j < fc->n_filters; j++)
            if (fc->filters[j]->config_type_case ==
                ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
                check_hcm_any(L, it, fc->filters[j]->typed_config, vc, routes, n_routes);
    }
    if (l->api_listener)
        check_hcm_any(L, it, l->api_listener->api_listener, vc, routes, n_routes);
}

/* Names present, unique per type and node scope; references between resources resolve. */
static void check_items(struct loader *L)
{
    if (L->n)
        qsort(L->items, L->n, sizeof(*L->items), cmp_item);
    size_t nc = 0, nr = 0;
    const char **clusters = pl_calloc(L->n + 1, sizeof(char *));
    const char **routes = pl_calloc(L->n + 1, sizeof(char *));
    for (size_t i = 0; i < L->n; i++) {
        const struct item *it = &L->items[i];
        if (!it->inner)
            continue;
        if (!*it->name) {
            pl_err_at(L->err, it->map, it->inner, types[it->type].name_field, "a %s needs a %s",
                      types[it->type].kind, types[it->type].name_field);
            continue;
        }
        const struct item *prev = i ? &L->items[i - 1] : NULL;
        if (prev && prev->type == it->type && prev->inner && !strcmp(prev->name, it->name) &&
            !strcmp(prev->sel ? prev->sel->key : "", it->sel ? it->sel->key : "")) {
            pl_err_at(L->err, it->map, it->inner, types[it->type].name_field,
                      "%s '%s' is defined twice for the same nodes (also at %s:%d)",
                      types[it->type].kind, it->name, prev->file, item_line(prev));
            continue;
        }
        if (prev && prev->type == it->type && prev->inner && !strcmp(prev->name, it->name))
            continue; /* another node scope of the same name */
        if (it->type == PL_CP_CDS)
            clusters[nc++] = it->name;
        else if (it->type == PL_CP_RDS)
            routes[nr++] = it->name;
    }
    /* sorted already: the items are sorted by type, then name */
    for (size_t i = 0; i < L->n; i++) {
        const struct item *it = &L->items[i];
        if (!it->inner || !*it->name)
            continue;
        struct pl_vctx vc = {.err = L->err,
                             .map = it->map,
                             .clusters = clusters,
                             .n_clusters = nc,
                             .clusters_sorted = true};
        if (it->type == PL_CP_RDS)
            pl_validate_route_config(&vc, (const void *)it->inner);
        else if (it->type == PL_CP_LDS)
            check_listener(L, it, &vc, routes, nr);
    }
    free(clusters);
    free(routes);
}

static int cmp_res(const void *a, const void *b)
{
    const struct pl_cp_res *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    if (!x->sel != !y->sel)
        return x->sel ? -1 : 1; /* scoped variants before the one for every node */
    return x->order < y->order ? -1 : x->order > y->order;
}

static void build_set(struct loader *L, const struct pl_cp_set *prev)
{
    struct pl_cp_set *s = L->set;
    for (int t = 0; t < PL_CP_NTYPES; t++)
        s->res[t] = pl_calloc(L->n + 1, sizeof(struct pl_cp_res));
    for (size_t i = 0; i < L->n; i++) {
        const struct item *it = &L->items[i];
        const Google__Protobuf__Any *any = (const void *)it->any;
        struct pl_cp_res *r = &s->res[it->type][s->n[it->type]++];
        r->name = pl_strdup(it->name);
        r->len = any->value.len;
        r->bytes = pl_malloc(r->len ? r->len : 1);
        if (r->len)
            memcpy(r->bytes, any->value.data, r->len);
        snprintf(r->version, sizeof(r->version), "%016llx",
                 (unsigned long long)pl_cp_hash(PL_CP_HASH_INIT, r->bytes, r->len));
        r->sel = it->sel;
        r->file = it->file;
        r->line = item_line(it);
        r->order = it->order;
    }
    for (int t = 0; t < PL_CP_NTYPES; t++) {
        qsort(s->res[t], s->n[t], sizeof(struct pl_cp_res), cmp_res);
        uint64_t h = PL_CP_HASH_INIT;
        for (size_t i = 0; i < s->n[t]; i++) {
            const struct pl_cp_res *r = &s->res[t][i];
            const char *sk = r->sel ? r->sel->key : "";
            h = pl_cp_hash(h, r->name, strlen(r->name) + 1);
            h = pl_cp_hash(h, sk, strlen(sk) + 1);
            h = pl_cp_hash(h, r->version, sizeof(r->version));
        }
        s->type_hash[t] = h;
        s->vnum[t] = !prev ? 1 : prev->vnum[t] + (prev->type_hash[t] != h);
        snprintf(s->version[t], sizeof(s->version[t]), "%lu", s->vnum[t]);
    }
}

int pl_cp_set_load(const char *path, const struct pl_cp_set *prev, struct pl_cp_set **out,
                   struct pl_err *err)
{
    struct loader L = {.err = err, .set = pl_calloc(1, sizeof(struct pl_cp_set))};
    size_t errs_before = err->n;
    *out = NULL;
    unsigned order = 0;
    if (list_files(path, L.set, err) == 0)
        for (size_t i = 0; i < L.set->n_files; i++)
            load_file(&L, L.set->files[i], &order);
    if (err->n == errs_before)
        check_items(&L);
    bool ok = err->n == errs_before;
    if (ok)
        build_set(&L, prev);
    for (size_t i = 0; i < L.n_maps; i++)
        pl_srcmap_free(L.maps[i]);
    free(L.maps);
    for (size_t i = 0; i < L.n; i++)
        protobuf_c_message_free_unpacked(L.items[i].any, NULL);
    free(L.items);
    if (!ok) {
        pl_cp_set_free(L.set);
        return PL_EINVAL;
    }
    *out = L.set;
    return 0;
}

void pl_cp_set_free(struct pl_cp_set *s)
{
    if (!s)
        return;
    for (int t = 0; t < PL_CP_NTYPES; t++) {
        for (size_t i = 0; i < s->n[t]; i++) {
            free(s->res[t][i].name);
            free(s->res[t][i].bytes);
        }
        free(s->res[t]);
    }
    for (size_t i = 0; i < s->n_sels; i++)
        free_selector(s->sels[i]);
    free(s->sels);
    for (size_t i = 0; i < s->n_files; i++)
        free(s->files[i]);
    free(s->files);
    free(s);
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
