/* The HTTP filter registry (main thread at start; read-only afterwards). */
#include "filters/filter.h"

#include <string.h>

#define MAX_FILTERS 32

static const struct pl_http_filter_vtable *filters[MAX_FILTERS];
static size_t n_filters;

/* "type.googleapis.com/envoy.x.Y" -> "envoy.x.Y" */
static const char *type_name(const char *url)
{
    const char *s = strrchr(url, '/');
    return s ? s + 1 : url;
}

int pl_http_filter_register(const struct pl_http_filter_vtable *vt)
{
    if (!vt || !vt->name)
        return PL_EINVAL;
    if (pl_http_filter_by_name(vt->name) ||
        (vt->config && pl_http_filter_by_type_url(vt->config->name)))
        return PL_EEXIST;
    if (n_filters == MAX_FILTERS)
        return PL_ENOMEM;
    filters[n_filters++] = vt;
    return 0;
}

const struct pl_http_filter_vtable *pl_http_filter_by_type_url(const char *type_url)
{
    const char *name = type_name(type_url);
    for (size_t i = 0; i < n_filters; i++)
        if (filters[i]->config && !strcmp(filters[i]->config->name, name))
            return filters[i];
    return NULL;
}

const struct pl_http_filter_vtable *pl_http_filter_by_name(const char *name)
{
    for (size_t i = 0; i < n_filters; i++)
        if (!strcmp(filters[i]->name, name))
            return filters[i];
    return NULL;
}

void pl_http_filter_register_builtins(void)
{
    if (!pl_http_filter_by_name(pl_filter_router.name))
        pl_http_filter_register(&pl_filter_router);
}
