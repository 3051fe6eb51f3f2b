#include "config/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "net/conn.h"
#include "net/filter.h"
#include "router/router.h"

struct pl_snapshot *pl_snapshot_new(void)
{
    return pl_calloc(1, sizeof(struct pl_snapshot));
}

void pl_dyn_resources_free(struct pl_dyn_resource *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].version_info);
        if (v[i].proto)
            protobuf_c_message_free_unpacked(v[i].proto, NULL);
    }
    free(v);
}

void pl_snapshot_free(struct pl_snapshot *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_listeners; i++) {
        struct pl_listener_cfg *l = &s->listeners[i];
        free(l->name);
        free(l->addr_str);
        free(l->version_info);
        if (l->proto)
            protobuf_c_message_free_unpacked(l->proto, NULL);
        pl_filter_chains_free(l->chains);
    }
    free(s->listeners);
    for (size_t i = 0; i < s->n_clusters; i++) {
        struct pl_cluster_cfg *c = &s->clusters[i];
        free(c->name);
        free(c->version_info);
        for (size_t j = 0; j < c->n_endpoints; j++) {
            free(c->endpoints[j].addr_str);
            free(c->endpoints[j].hostname);
            free(c->endpoints[j].locality);
        }
        free(c->endpoints);
        if (c->link && c->link_release)
            c->link_release(c->link);
        if (c->transport && c->transport->free_cfg && c->transport_cfg)
            c->transport->free_cfg(c->transport_cfg);
        if (c->proto)
            protobuf_c_message_free_unpacked(c->proto, NULL);
    }
    free(s->clusters);
    if (s->bootstrap)
        protobuf_c_message_free_unpacked(s->bootstrap, NULL);
    pl_dyn_resources_free(s->routes, s->n_routes);
    for (size_t i = 0; i < s->n_route_tables; i++) {
        free(s->route_tables[i].name);
        pl_route_table_free(s->route_tables[i].table);
    }
    free(s->route_tables);
    pl_dyn_resources_free(s->endpoints, s->n_endpoints);
    pl_dyn_resources_free(s->warming_listeners, s->n_warming_listeners);
    pl_dyn_resources_free(s->warming_clusters, s->n_warming_clusters);
    free(s->lds_version);
    free(s->cds_version);
    free(s);
}

const struct pl_listener_cfg *pl_snapshot_listener(const struct pl_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_listeners; i++)
        if (!strcmp(s->listeners[i].name, name))
            return &s->listeners[i];
    return NULL;
}

const struct pl_cluster_cfg *pl_snapshot_cluster(const struct pl_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_clusters; i++)
        if (!strcmp(s->clusters[i].name, name))
            return &s->clusters[i];
    return NULL;
}

const struct pl_route_table *pl_snapshot_route_table(const struct pl_snapshot *s, const char *name)
{
    size_t lo = 0, hi = s->n_route_tables;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->route_tables[mid].name);
        if (c == 0)
            return s->route_tables[mid].table;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
