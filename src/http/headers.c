#include "http/headers.h"

#include <string.h>

#include "core/err.h"

const struct pl_header *pl_headers_get(const struct pl_headers *h, const char *name, size_t len)
{
    for (uint32_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == len && !memcmp(h->v[i].name, name, len))
            return &h->v[i];
    return NULL;
}

static struct pl_header *grow(struct pl_headers *h, struct pl_arena *a)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        struct pl_header *v = pl_arena_alloc(a, cap * sizeof(*v));
        if (h->n)
            memcpy(v, h->v, h->n * sizeof(*v));
        h->v = v;
        h->cap = cap;
    }
    return &h->v[h->n++];
}

void pl_headers_add_ref(struct pl_headers *h, struct pl_arena *a, const char *name, size_t name_len,
                        const char *value, size_t value_len)
{
    struct pl_header *f = grow(h, a);
    *f = (struct pl_header){name, value, (uint32_t)name_len, (uint32_t)value_len};
}

void pl_headers_add_copy(struct pl_headers *h, struct pl_arena *a, const char *name,
                         size_t name_len, const char *value, size_t value_len)
{
    char *n = pl_arena_strndup(a, name, name_len);
    for (size_t i = 0; i < name_len; i++)
        if (n[i] >= 'A' && n[i] <= 'Z')
            n[i] = (char)(n[i] + 32);
    pl_headers_add_ref(h, a, n, name_len, pl_arena_strndup(a, value, value_len), value_len);
}

size_t pl_headers_remove(struct pl_headers *h, const char *name, size_t len)
{
    uint32_t w = 0;
    for (uint32_t i = 0; i < h->n; i++)
        if (!(h->v[i].name_len == len && !memcmp(h->v[i].name, name, len)))
            h->v[w++] = h->v[i];
    size_t removed = h->n - w;
    h->n = w;
    return removed;
}

void pl_headers_set(struct pl_headers *h, struct pl_arena *a, const char *name, size_t name_len,
                    const char *value, size_t value_len)
{
    pl_headers_remove(h, name, name_len);
    pl_headers_add_copy(h, a, name, name_len, value, value_len);
}

bool pl_header_name_eq(const char *name, size_t name_len, const char *lc, size_t len)
{
    if (name_len != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lc[i])
            return false;
    }
    return true;
}
