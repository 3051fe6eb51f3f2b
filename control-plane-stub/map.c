/* A small chained hash map of strings, for subscriptions and per-resource versions. */
#include <stdlib.h>
#include <string.h>

#include "cp.h"

uint64_t pl_cp_hash(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static size_t slot(const struct pl_cp_map *m, const char *key)
{
    return pl_cp_hash(PL_CP_HASH_INIT, key, strlen(key)) & (m->nb - 1);
}

struct pl_cp_map_ent *pl_cp_map_get(const struct pl_cp_map *m, const char *key)
{
    if (!m->nb)
        return NULL;
    for (struct pl_cp_map_ent *e = m->b[slot(m, key)]; e; e = e->next)
        if (!strcmp(e->key, key))
            return e;
    return NULL;
}

static void grow(struct pl_cp_map *m)
{
    size_t old_nb = m->nb;
    struct pl_cp_map_ent **old = m->b;
    m->nb = old_nb ? old_nb * 2 : 16;
    m->b = pl_calloc(m->nb, sizeof(*m->b));
    for (size_t i = 0; i < old_nb; i++) {
        for (struct pl_cp_map_ent *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t s = slot(m, e->key);
            e->next = m->b[s];
            m->b[s] = e;
        }
    }
    free(old);
}

struct pl_cp_map_ent *pl_cp_map_put(struct pl_cp_map *m, const char *key, const char *val)
{
    struct pl_cp_map_ent *e = pl_cp_map_get(m, key);
    if (e) {
        free(e->val);
        e->val = val ? pl_strdup(val) : NULL;
        return e;
    }
    if (m->n + 1 > m->nb)
        grow(m);
    e = pl_malloc(sizeof(*e));
    e->key = pl_strdup(key);
    e->val = val ? pl_strdup(val) : NULL;
    size_t s = slot(m, key);
    e->next = m->b[s];
    m->b[s] = e;
    m->n++;
    return e;
}

bool pl_cp_map_del(struct pl_cp_map *m, const char *key)
{
    if (!m->nb)
        return false;
    for (struct pl_cp_map_ent **pp = &m->b[slot(m, key)]; *pp; pp = &(*pp)->next) {
        struct pl_cp_map_ent *e = *pp;
        if (!strcmp(e->key, key)) {
            *pp = e->next;
            free(e->key);
            free(e->val);
            free(e);
            m->n--;
            return true;
        }
    }
    return false;
}

void pl_cp_map_clear(struct pl_cp_map *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        for (struct pl_cp_map_ent *e = m->b[i], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e->val);
            free(e);
        }
    }
    free(m->b);
    m->b = NULL;
    m->nb = m->n = 0;
}

void pl_cp_map_each(const struct pl_cp_map *m, void (*fn)(struct pl_cp_map_ent *e, void *ud),
                    void *ud)
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct pl_cp_map_ent *e = m->b[i], *next; e; e = next) {
            next = e->next;
            fn(e, ud);
        }
}
