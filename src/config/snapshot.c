#include "config/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "config/nametab.h"
#include "core/arena.h"
#include "core/err.h"
#include "net/conn.h"
#include "net/filter.h"
#include "router/router.h"

struct pl_snapshot_index {
    size_t n_listeners, n_clusters; /* the array sizes it was built for */
    const struct pl_listener_cfg *listeners;
    struct pl_cluster_cfg *const *clusters;
    struct pl_nametab l, c;
};

static void *arena_pb_alloc(void *data, size_t size)
{
    return pl_arena_alloc(data, size ? size : 1);
}

static void arena_pb_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

ProtobufCAllocator pl_arena_pb_allocator(struct pl_arena *a)
{
    return (ProtobufCAllocator){
        .alloc = arena_pb_alloc, .free = arena_pb_free, .allocator_data = a};
}

void pl_shared_ref(struct pl_shared *sh)
{
    if (sh)
        atomic_fetch_add_explicit(&sh->refs, 1, memory_order_relaxed);
}

void pl_shared_unref(struct pl_shared *sh)
{
    if (sh && atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) == 1)
        sh->free(sh);
}

struct pl_snapshot *pl_snapshot_new(void)
{
    return pl_calloc(1, sizeof(struct pl_snapshot));
}

void pl_dyn_resources_free(const struct pl_res **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct pl_res *r = (struct pl_res *)v[i];
        if (r->owner) {
            pl_shared_unref(r->owner);
            continue;
        }
        free((char *)r->name);
        free((char *)r->version_info);
        if (r->msg)
            protobuf_c_message_free_unpacked((ProtobufCMessage *)r->msg, NULL);
        free(r);
    }
    free(v);
}

static void index_free(struct pl_snapshot_index *ix)
{
    if (!ix)
        return;
    pl_nametab_clear(&ix->l);
    pl_nametab_clear(&ix->c);
    free(ix);
}

/* The cluster side of s, or of a part: what pl_snapshot_free and the part's release free. */
static void clusters_free(struct pl_cluster_cfg **clusters, size_t n_clusters,
                          const struct pl_res **endpoints, size_t n_endpoints,
                          const struct pl_res **warming, size_t n_warming, char *cds_version)
{
    for (size_t i = 0; i < n_clusters; i++)
        pl_cluster_free(clusters[i]);
    free(clusters);
    pl_dyn_resources_free(endpoints, n_endpoints);
    pl_dyn_resources_free(warming, n_warming);
    free(cds_version);
}

static void part_free(struct pl_shared *sh)
{
    struct pl_cluster_part *p = (struct pl_cluster_part *)sh;
    clusters_free(p->clusters, p->n_clusters, p->endpoints, p->n_endpoints, p->warming_clusters,
                  p->n_warming_clusters, p->cds_version);
    if (p->index)
        pl_nametab_clear(p->index);
    free(p->index);
    free(p);
}

void pl_snapshot_use_clusters(struct pl_snapshot *s, struct pl_cluster_part *p)
{
    pl_shared_ref(&p->sh);
    s->cluster_part = p;
    s->clusters = p->clusters;
    s->n_clusters = p->n_clusters;
    s->endpoints = p->endpoints;
    s->n_endpoints = p->n_endpoints;
    s->warming_clusters = p->warming_clusters;
    s->n_warming_clusters = p->n_warming_clusters;
    s->cds_version = p->cds_version;
}

void pl_snapshot_share_clusters(struct pl_snapshot *s)
{
    if (s->cluster_part)
        return;
    struct pl_cluster_part *p = pl_calloc(1, sizeof(*p));
    atomic_init(&p->sh.refs, 0); /* the reference comes with pl_snapshot_use_clusters */
    p->sh.free = part_free;
    p->clusters = s->clusters;
    p->n_clusters = s->n_clusters;
    p->endpoints = s->endpoints;
    p->n_endpoints = s->n_endpoints;
    p->warming_clusters = s->warming_clusters;
    p->n_warming_clusters = s->n_warming_clusters;
    p->cds_version = s->cds_version;
    pl_snapshot_use_clusters(s, p);
}

void pl_snapshot_free(struct pl_snapshot *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_listeners; i++)
        pl_listener_cfg_release(&s->listeners[i]);
    free(s->listeners);
    if (s->cluster_part)
        pl_shared_unref(&s->cluster_part->sh);
    else
        clusters_free(s->clusters, s->n_clusters, s->endpoints, s->n_endpoints, s->warming_clusters,
                      s->n_warming_clusters, s->cds_version);
    if (s->bootstrap)
        protobuf_c_message_free_unpacked(s->bootstrap, NULL);
    pl_dyn_resources_free(s->routes, s->n_routes);
    for (size_t i = 0; i < s->n_route_tables; i++)
        pl_route_table_cfg_release(&s->route_tables[i]);
    free(s->route_tables);
    pl_dyn_resources_free(s->warming_listeners, s->n_warming_listeners);
    free(s->lds_version);
    index_free(s->index);
    free(s);
}

void pl_listener_cfg_release(struct pl_listener_cfg *l)
{
    if (l->shared) {
        pl_shared_unref(l->shared);
        return;
    }
    free(l->name);
    free(l->addr_str);
    free(l->version_info);
    if (l->proto)
        protobuf_c_message_free_unpacked(l->proto, NULL);
    pl_filter_chains_free(l->chains);
}

void pl_cluster_free(struct pl_cluster_cfg *c)
{
    if (!c)
        return;
    if (c->shared) {
        pl_shared_unref(c->shared);
        return;
    }
    pl_cluster_cfg_release(c);
    free(c);
}

void pl_cluster_cfg_release(struct pl_cluster_cfg *c)
{
    if (c->link && c->link_ops)
        c->link_ops->release(c->link);
    c->link = NULL;
    free(c->name);
    free(c->version_info);
    for (size_t j = 0; j < c->n_endpoints; j++) {
        free(c->endpoints[j].hostname);
        free(c->endpoints[j].locality);
    }
    free(c->endpoints);
    free(c->hosts);
    if (c->lbo != &pl_cluster_lb_defaults)
        free((void *)c->lbo);
    if (c->transport && c->transport->free_cfg && c->transport_cfg)
        c->transport->free_cfg(c->transport_cfg);
    if (c->proto)
        protobuf_c_message_free_unpacked(c->proto, NULL);
}

void pl_route_table_cfg_release(struct pl_route_table_cfg *r)
{
    if (r->shared) {
        pl_shared_unref(r->shared);
        return;
    }
    free(r->name);
    pl_route_table_free(r->table);
}

static const char *listener_key(const void *item)
{
    return ((const struct pl_listener_cfg *)item)->name;
}

static const char *cluster_key(const void *item)
{
    return ((const struct pl_cluster_cfg *)item)->name;
}

void pl_snapshot_index_build(struct pl_snapshot *s)
{
    index_free(s->index);
    struct pl_snapshot_index *ix = pl_calloc(1, sizeof(*ix));
    pl_nametab_init(&ix->l, listener_key);
    pl_nametab_init(&ix->c, cluster_key);
    pl_nametab_reserve(&ix->l, s->n_listeners);
    /* the first of a name wins, as the linear scan finds it */
    for (size_t i = s->n_listeners; i-- > 0;)
        pl_nametab_put(&ix->l, &s->listeners[i]);
    struct pl_cluster_part *p = s->cluster_part;
    struct pl_nametab *c = p ? p->index : &ix->c;
    if (!c) { /* a part's index is built once, by the first snapshot that indexes it */
        c = p->index = pl_calloc(1, sizeof(*c));
        pl_nametab_init(c, cluster_key);
    }
    if (!p || !c->n) {
        pl_nametab_reserve(c, s->n_clusters);
        for (size_t i = s->n_clusters; i-- > 0;)
            pl_nametab_put(c, s->clusters[i]);
    }
    ix->n_listeners = s->n_listeners;
    ix->n_clusters = s->n_clusters;
    ix->listeners = s->listeners;
    ix->clusters = s->clusters;
    s->index = ix;
}

const struct pl_cluster_lb_cfg pl_cluster_lb_defaults = {
    .lr_choice_count = 2,
    .lr_active_request_bias = 1.0,
    .ring_min_size = 1024,
    .ring_max_size = 8388608,
    .maglev_table_size = 65537,
    .dns_refresh_ms = 5000,
};
/* The index when it still describes s's arrays. */
static const struct pl_snapshot_index *index_of(const struct pl_snapshot *s)
{
    const struct pl_snapshot_index *ix = s->index;
    if (ix && ix->n_listeners == s->n_listeners && ix->n_clusters == s->n_clusters &&
        ix->listeners == s->listeners && ix->clusters == s->clusters)
        return ix;
    return NULL;
}

const struct pl_listener_cfg *pl_snapshot_listener(const struct pl_snapshot *s, const char *name)
{
    const struct pl_snapshot_index *ix = index_of(s);
    if (ix)
        return pl_nametab_get(&ix->l, name);
    for (size_t i = 0; i < s->n_listeners; i++)
        if (!strcmp(s->listeners[i].name, name))
            return &s->listeners[i];
    return NULL;
}

const struct pl_cluster_cfg *pl_snapshot_cluster(const struct pl_snapshot *s, const char *name)
{
    const struct pl_snapshot_index *ix = index_of(s);
    if (ix)
        return pl_nametab_get(s->cluster_part ? s->cluster_part->index : &ix->c, name);
    for (size_t i = 0; i < s->n_clusters; i++)
        if (!strcmp(s->clusters[i]->name, name))
            return s->clusters[i];
    return NULL;
}

static int cmp_table(const void *key, const void *elem)
{
    return strcmp(key, ((const struct pl_route_table_cfg *)elem)->name);
}

const struct pl_route_table *pl_snapshot_route_table(const struct pl_snapshot *s, const char *name)
{
    if (!name || !*name || !s->n_route_tables)
        return NULL;
    const struct pl_route_table_cfg *r =
        bsearch(name, s->route_tables, s->n_route_tables, sizeof(*s->route_tables), cmp_table);
    return r ? r->table : NULL;
}
