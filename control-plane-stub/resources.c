/* Resource files: `resources:` lists of Envoy resources (each with its "@type"), an optional
 * `node_selector:` per file, decoded with the proto3 JSON mapper and checked as a whole set.
 * Loads are incremental: the previous good set is a cache of files (by stat and by content) and
 * of resources (by the hash of their text), so a reload decodes only what changed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Hashes len bytes eight at a time (file contents, scalar text): not a resource version. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    h ^= len * 0x9e3779b97f4a7c15ull;
    for (; len >= 8; b += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return pl_cp_hash(h, b, len);
}

uint64_t pl_cp_node_hash(uint64_t h, const struct pl_node *n)
{
    enum pl_node_type t = pl_node_type(n);
    uint8_t tag = (uint8_t)((unsigned)t | (pl_node_quoted(n) ? 0x10u : 0u));
    h = pl_cp_hash(h, &tag, 1);
    if (t == PL_NODE_SCALAR || t == PL_NODE_NULL) {
        size_t len = 0;
        const char *s = pl_node_str(n, &len);
        return s ? hash_bytes(h, s, len) : h;
    }
    size_t len = pl_node_len(n);
    h = hash_bytes(h, &len, sizeof(len));
    for (size_t i = 0; i < len; i++) {
        if (t == PL_NODE_MAP) {
            h = pl_cp_node_hash(h, pl_node_key(n, i));
            h = pl_cp_node_hash(h, pl_node_val(n, i));
        } else {
            h = pl_cp_node_hash(h, pl_node_item(n, i));
        }
    }
    return h;
}

void pl_cp_item_unref(struct pl_cp_item *it)
{
    if (!it || __atomic_sub_fetch(&it->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(it->name);
    free(it->bytes);
    free(it);
}

static struct pl_cp_item *item_ref(struct pl_cp_item *it)
{
    __atomic_add_fetch(&it->refs, 1, __ATOMIC_RELAXED);
    return it;
}

/* One resource while a load is in progress: decoded now (any, inner, map set) or taken over
 * from the previous set (only it). */
struct item {
    int type;
    struct pl_cp_item *it; /* NULL when the decode failed */
    ProtobufCMessage *any; /* google.protobuf.Any holding the packed resource */
    const ProtobufCMessage *inner;
    struct pl_srcmap *map; /* the file's; owned by the loader */
    const char *name;
    const struct pl_cp_selector *sel;
    const char *file;
    int line;
    unsigned order;
};

struct loader {
    struct pl_err *err;
    struct pl_cp_set *set;
    const struct pl_cp_set *prev;    /* versions; and the cache when reuse */
    const struct pl_cp_map *changed; /* NULL: read every file */
    bool reuse;
    struct item *items;
    size_t n, cap;
    struct pl_srcmap **maps;
    size_t n_maps;
    const struct pl_cp_file **prev_files; /* by path (strcmp order) */
    struct pl_cp_item **by_hash;          /* prev's items by text_hash, open addressing */
    size_t hash_cap;
    size_t reused_refs; /* reused listeners and route configurations (they name others) */
    unsigned order;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp((*(const struct pl_cp_file *const *)a)->path,
                  (*(const struct pl_cp_file *const *)b)->path);
}

static int cmp_file_path(const void *k, const void *f)
{
    return strcmp(k, (*(const struct pl_cp_file *const *)f)->path);
}

static const struct pl_cp_file *prev_file(struct loader *L, const char *path)
{
    if (!L->reuse || !L->prev || !L->prev->n_files)
        return NULL;
    if (!L->prev_files) {
        L->prev_files = pl_calloc(L->prev->n_files, sizeof(*L->prev_files));
        for (size_t i = 0; i < L->prev->n_files; i++)
            L->prev_files[i] = &L->prev->files[i];
        qsort(L->prev_files, L->prev->n_files, sizeof(*L->prev_files), cmp_files);
    }
    const struct pl_cp_file *const *f =
        bsearch(path, L->prev_files, L->prev->n_files, sizeof(*f), cmp_file_path);
    return f ? *f : NULL;
}

/* prev's item decoded from text that hashes to h, or NULL. */
static struct pl_cp_item *prev_item(struct loader *L, uint64_t h, int type)
{
    if (!L->reuse || !L->prev)
        return NULL;
    if (!L->by_hash) {
        size_t n = 0;
        for (size_t i = 0; i < L->prev->n_files; i++)
            n += L->prev->files[i].n;
        for (L->hash_cap = 16; L->hash_cap < 2 * n;)
            L->hash_cap *= 2;
        L->by_hash = pl_calloc(L->hash_cap, sizeof(*L->by_hash));
        for (size_t i = 0; i < L->prev->n_files; i++)
            for (size_t j = 0; j < L->prev->files[i].n; j++) {
                struct pl_cp_item *it = L->prev->files[i].items[j];
                size_t k = it->text_hash & (L->hash_cap - 1);
                while (L->by_hash[k] && L->by_hash[k]->text_hash != it->text_hash)
                    k = (k + 1) & (L->hash_cap - 1);
                L->by_hash[k] = it;
            }
    }
    for (size_t k = h & (L->hash_cap - 1); L->by_hash[k]; k = (k + 1) & (L->hash_cap - 1))
        if (L->by_hash[k]->text_hash == h)
            return L->by_hash[k]->type == type ? L->by_hash[k] : NULL;
    return NULL;
}

static struct item *add_item(struct loader *L, struct pl_cp_file *f, struct pl_cp_item *it,
                             int type, int line)
{
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        L->items = pl_realloc(L->items, L->cap * sizeof(*L->items));
    }
    struct item *x = &L->items[L->n++];
    *x = (struct item){.type = type,
                       .it = it,
                       .name = it ? it->name : "",
                       .sel = f->sel,
                       .file = f->path,
                       .line = line,
                       .order = L->order++};
    if (it) { /* room made by the caller */
        f->items[f->n] = it;
        f->lines[f->n++] = line;
    }
    return x;
}

/* Takes every resource of prev's record pf over into f (whose text is the same). */
static void take_over(struct loader *L, struct pl_cp_file *f, const struct pl_cp_file *pf)
{
    f->sel = pl_cp_selector_copy(pf->sel);
    f->items = pl_calloc(pf->n + 1, sizeof(*f->items));
    f->lines = pl_calloc(pf->n + 1, sizeof(*f->lines));
    for (size_t i = 0; i < pf->n; i++) {
        struct pl_cp_item *it = item_ref(pf->items[i]);
        add_item(L, f, it, it->type, pf->lines[i]);
        if (it->type == PL_CP_LDS || it->type == PL_CP_RDS)
            L->reused_refs++;
    }
    L->set->stats.reused += pf->n;
}

static int item_line(const struct item *it)
{
    struct pl_srcloc loc;
    return it->map && pl_srcmap_lookup(it->map, it->inner, NULL, &loc) == 0 ? loc.line : it->line;
}

/* Decodes one element of `resources:` (a google.protobuf.Any in its JSON form), or takes it
 * over from the previous set when its text is unchanged. */
static void load_item(struct loader *L, struct pl_cp_file *f, const struct pl_node *n, size_t idx,
                      struct pl_srcmap **map)
{
    char path[48];
    const char *file = f->path;
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
    uint64_t h = pl_cp_node_hash(PL_CP_HASH_INIT, n);
    struct pl_cp_item *old = prev_item(L, h, type);
    if (old) {
        add_item(L, f, item_ref(old), type, pl_node_line(n));
        L->set->stats.reused++;
        if (type == PL_CP_LDS || type == PL_CP_RDS)
            L->reused_refs++;
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
    struct pl_cp_item *it = NULL;
    if (inner) {
        const Google__Protobuf__Any *a = (const void *)any;
        it = pl_calloc(1, sizeof(*it));
        it->refs = 1;
        it->type = type;
        it->name = pl_strdup(res_name(type, inner));
        it->len = a->value.len;
        it->bytes = pl_malloc(it->len ? it->len : 1);
        if (it->len)
            memcpy(it->bytes, a->value.data, it->len);
        snprintf(it->version, sizeof(it->version), "%016llx",
                 (unsigned long long)pl_cp_hash(PL_CP_HASH_INIT, it->bytes, it->len));
        it->text_hash = h;
    }
    L->set->stats.decoded++;
    struct item *x = add_item(L, f, it, type, pl_node_line(n));
    x->any = any;
    x->inner = inner;
    x->map = *map;
    if (it)
        f->lines[f->n - 1] = x->line = item_line(x);
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* Reads a whole file (as pl_tree_load_file does, with its errors) and records its identity. */
static char *read_file(struct loader *L, struct pl_cp_file *f, size_t *len)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pl_err_add(L->err, f->path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        pl_err_add(L->err, f->path, 0, 0, NULL, "not a regular file");
        return NULL;
    }
    if ((uint64_t)st.st_size > PL_TREE_MAX_INPUT) {
        close(fd);
        pl_err_add(L->err, f->path, 0, 0, NULL, "file larger than %u bytes", PL_TREE_MAX_INPUT);
        return NULL;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = pl_malloc(size + 1);
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            close(fd);
            free(buf);
            pl_err_add(L->err, f->path, 0, 0, NULL, "cannot read: %s", strerror(e));
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = 0;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->size = (uint64_t)st.st_size;
    f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    f->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
    f->hash = hash_bytes(PL_CP_HASH_INIT, buf, size);
    *len = size;
    return buf;
}

/* Whether the watcher did not report f and its stat is that of prev's record pf. */
static bool unchanged(struct loader *L, const struct pl_cp_file *f, const struct pl_cp_file *pf)
{
    const char *base = strrchr(f->path, '/');
    if (!L->changed || pl_cp_map_get(L->changed, base ? base + 1 : f->path))
        return false;
    struct stat st;
    return stat(f->path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_dev == pf->dev &&
           (uint64_t)st.st_ino == pf->ino && (uint64_t)st.st_size == pf->size &&
           (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == pf->mtime_ns &&
           (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec == pf->ctime_ns;
}

static void load_file(struct loader *L, struct pl_cp_file *f)
{
    const char *file = f->path;
    const struct pl_cp_file *pf = prev_file(L, file);
    if (pf && unchanged(L, f, pf)) {
        f->dev = pf->dev;
        f->ino = pf->ino;
        f->size = pf->size;
        f->mtime_ns = pf->mtime_ns;
        f->ctime_ns = pf->ctime_ns;
        f->hash = pf->hash;
        take_over(L, f, pf);
        return;
    }
    size_t len;
    char *text = read_file(L, f, &len);
    if (!text)
        return;
    L->set->stats.files_read++;
    if (pf && pf->hash == f->hash && pf->size == f->size) {
        free(text);
        take_over(L, f, pf);
        return;
    }
    L->set->stats.files_parsed++;
    struct pl_tree *t;
    int rc = pl_tree_load_text(text, len, file, &t, L->err);
    free(text);
    if (rc < 0)
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
    if (pl_cp_selector_parse(file, pl_node_get(root, "node_selector"), &f->sel, L->err) == 0) {
        const struct pl_node *list = pl_node_get(root, "resources");
        if (list && pl_node_type(list) == PL_NODE_SEQ) {
            struct pl_srcmap *map = pl_srcmap_new();
            L->maps = pl_realloc(L->maps, (L->n_maps + 1) * sizeof(*L->maps));
            L->maps[L->n_maps++] = map;
            f->items = pl_calloc(pl_node_len(list) + 1, sizeof(*f->items));
            f->lines = pl_calloc(pl_node_len(list) + 1, sizeof(*f->lines));
            for (size_t i = 0; i < pl_node_len(list); i++)
                load_item(L, f, pl_node_item(list, i), i, &map);
        } else if (list && pl_node_type(list) != PL_NODE_NULL) {
            pl_err_add(L->err, file, pl_node_line(list), pl_node_col(list), "resources",
                       "resources must be a list");
        }
    }
    pl_tree_free(t);
}

static int list_files(const char *path, struct pl_cp_set *set, struct pl_err *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return pl_err_add(err, path, 0, 0, NULL, "cannot read: %s", strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        set->files = pl_calloc(1, sizeof(*set->files));
        set->files[set->n_files++].path = pl_strdup(path);
        return 0;
    }
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, alphasort);
    if (n < 0)
        return pl_err_add(err, path, 0, 0, NULL, "cannot list: %s", strerror(errno));
    set->files = pl_calloc((size_t)n + 1, sizeof(*set->files));
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        if (nm[0] != '.' &&
            (has_suffix(nm, ".yaml") || has_suffix(nm, ".yml") || has_suffix(nm, ".json"))) {
            char *full = pl_asprintf("%s/%s", path, nm);
            if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
                set->files[set->n_files++].path = full;
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

/* Whether a name of type t that prev had (in any node scope) is gone from names. */
static bool lost_name(const struct pl_cp_set *prev, int t, const char *const *names, size_t n)
{
    for (size_t i = 0; prev && i < prev->n[t]; i++) {
        const char *nm = prev->res[t][i].name;
        if ((!i || strcmp(prev->res[t][i - 1].name, nm)) && !name_in(names, n, nm))
            return true;
    }
    return false;
}

/* Names present, unique per type and node scope; references between resources resolve.
 * Resources taken over from prev were checked against prev's names: that still holds while
 * no cluster or route configuration name is gone; returns false when one is (then every
 * resource has to be decoded and checked again). */
static bool check_items(struct loader *L)
{
    if (L->n)
        qsort(L->items, L->n, sizeof(*L->items), cmp_item);
    size_t nc = 0, nr = 0;
    const char **clusters = pl_calloc(L->n + 1, sizeof(char *));
    const char **routes = pl_calloc(L->n + 1, sizeof(char *));
    for (size_t i = 0; i < L->n; i++) {
        const struct item *it = &L->items[i];
        if (!it->it)
            continue;
        if (!*it->name) {
            pl_err_at(L->err, it->map, it->inner, types[it->type].name_field, "a %s needs a %s",
                      types[it->type].kind, types[it->type].name_field);
            continue;
        }
        const struct item *prev = i ? &L->items[i - 1] : NULL;
        if (prev && prev->type == it->type && prev->it && !strcmp(prev->name, it->name) &&
            !strcmp(prev->sel ? prev->sel->key : "", it->sel ? it->sel->key : "")) {
            pl_err_at(L->err, it->map, it->inner, types[it->type].name_field,
                      "%s '%s' is defined twice for the same nodes (also at %s:%d)",
                      types[it->type].kind, it->name, prev->file, item_line(prev));
            continue;
        }
        if (prev && prev->type == it->type && prev->it && !strcmp(prev->name, it->name))
            continue; /* another node scope of the same name */
        if (it->type == PL_CP_CDS)
            clusters[nc++] = it->name;
        else if (it->type == PL_CP_RDS)
            routes[nr++] = it->name;
    }
    bool ok = !L->reused_refs || (!lost_name(L->prev, PL_CP_CDS, clusters, nc) &&
                                  !lost_name(L->prev, PL_CP_RDS, routes, nr));
    /* sorted already: the items are sorted by type, then name */
    for (size_t i = 0; ok && i < L->n; i++) {
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
    return ok;
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

static void build_set(struct loader *L)
{
    static unsigned long serial;
    struct pl_cp_set *s = L->set;
    s->serial = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
    const struct pl_cp_set *prev = L->prev;
    size_t cap[PL_CP_NTYPES] = {0};
    for (size_t i = 0; i < L->n; i++)
        cap[L->items[i].type]++;
    for (int t = 0; t < PL_CP_NTYPES; t++)
        s->res[t] = pl_calloc(cap[t] + 1, sizeof(struct pl_cp_res));
    for (size_t i = 0; i < L->n; i++) {
        const struct item *it = &L->items[i];
        struct pl_cp_res *r = &s->res[it->type][s->n[it->type]++];
        *r = (struct pl_cp_res){.name = it->it->name,
                                .bytes = it->it->bytes,
                                .len = it->it->len,
                                .version = it->it->version,
                                .item = it->it,
                                .sel = it->sel,
                                .file = it->file,
                                .line = it->line,
                                .order = it->order};
    }
    for (int t = 0; t < PL_CP_NTYPES; t++) {
        /* the items were sorted by name already: only the variants of a name need ordering */
        for (size_t i = 0, j; i < s->n[t]; i = j) {
            for (j = i + 1; j < s->n[t] && !strcmp(s->res[t][i].name, s->res[t][j].name); j++)
                ;
            if (j - i > 1)
                qsort(&s->res[t][i], j - i, sizeof(struct pl_cp_res), cmp_res);
        }
        uint64_t h = PL_CP_HASH_INIT;
        for (size_t i = 0; i < s->n[t]; i++) {
            const struct pl_cp_res *r = &s->res[t][i];
            const char *sk = r->sel ? r->sel->key : "";
            h = pl_cp_hash(h, r->name, strlen(r->name) + 1);
            h = pl_cp_hash(h, sk, strlen(sk) + 1);
            h = pl_cp_hash(h, r->version, 16);
        }
        s->type_hash[t] = h;
        s->vnum[t] = !prev ? 1 : prev->vnum[t] + (prev->type_hash[t] != h);
        snprintf(s->version[t], sizeof(s->version[t]), "%lu", s->vnum[t]);
    }
}

/* One load; returns 1 when it has to be done again without taking resources over. */
static int load(const char *path, const struct pl_cp_set *prev, const struct pl_cp_map *changed,
                bool reuse, struct pl_cp_set **out, struct pl_err *err)
{
    struct loader L = {.err = err,
                       .set = pl_calloc(1, sizeof(struct pl_cp_set)),
                       .prev = prev,
                       .changed = changed,
                       .reuse = reuse};
    size_t errs_before = err->n;
    *out = NULL;
    if (list_files(path, L.set, err) == 0)
        for (size_t i = 0; i < L.set->n_files; i++)
            load_file(&L, &L.set->files[i]);
    bool again = false;
    size_t errs_decoded = err->n;
    if (err->n == errs_before)
        again = !check_items(&L);
    /* a check error that may concern a resource taken over (no positions for it): decode all */
    again |= err->n != errs_decoded && L.set->stats.reused;
    bool ok = err->n == errs_before && !again;
    if (ok)
        build_set(&L);
    for (size_t i = 0; i < L.n_maps; i++)
        pl_srcmap_free(L.maps[i]);
    free(L.maps);
    for (size_t i = 0; i < L.n; i++)
        if (L.items[i].any)
            protobuf_c_message_free_unpacked(L.items[i].any, NULL);
    free(L.items);
    free(L.prev_files);
    free(L.by_hash);
    if (!ok) {
        pl_cp_set_free(L.set);
        return again ? 1 : PL_EINVAL;
    }
    *out = L.set;
    return 0;
}

int pl_cp_set_reload(const char *path, const struct pl_cp_set *prev,
                     const struct pl_cp_map *changed, struct pl_cp_set **out, struct pl_err *err)
{
    struct pl_err first = PL_ERR_INIT;
    int rc = load(path, prev, changed, true, out, &first);
    if (rc == 1) {
        pl_err_free(&first);
        rc = load(path, prev, NULL, false, out, err);
        if (rc == 0)
            (*out)->stats.full = true;
        return rc;
    }
    pl_err_move(err, &first);
    pl_err_free(&first);
    return rc;
}

int pl_cp_set_load(const char *path, const struct pl_cp_set *prev, struct pl_cp_set **out,
                   struct pl_err *err)
{
    return pl_cp_set_reload(path, prev, NULL, out, err);
}

void pl_cp_set_free(struct pl_cp_set *s)
{
    if (!s)
        return;
    for (int t = 0; t < PL_CP_NTYPES; t++)
        free(s->res[t]);
    for (size_t i = 0; i < s->n_files; i++) {
        struct pl_cp_file *f = &s->files[i];
        for (size_t j = 0; j < f->n; j++)
            pl_cp_item_unref(f->items[j]);
        free(f->items);
        free(f->lines);
        pl_cp_selector_free(f->sel);
        free(f->path);
    }
    free(s->files);
    free(s);
}
