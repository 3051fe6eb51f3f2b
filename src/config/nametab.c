/* Name -> item hash index (see nametab.h). */
#include "config/nametab.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

uint64_t pl_nametab_hash(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix for the low bits */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

void pl_nametab_init(struct pl_nametab *t, pl_nametab_key_fn key)
{
    memset(t, 0, sizeof(*t));
    t->key = key;
}

void pl_nametab_clear(struct pl_nametab *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->n = 0;
}

static void place(struct pl_nametab_slot *slots, size_t cap, uint64_t h, void *item)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].hash)
        i = (i + 1) & (cap - 1);
    slots[i].hash = h;
    slots[i].item = item;
}

static void resize(struct pl_nametab *t, size_t cap)
{
    struct pl_nametab_slot *old = t->slots;
    size_t oldcap = t->cap;
    t->slots = pl_calloc(cap, sizeof(*t->slots));
    t->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].hash)
            place(t->slots, cap, old[i].hash, old[i].item);
    free(old);
}

void pl_nametab_reserve(struct pl_nametab *t, size_t n)
{
    size_t cap = t->cap ? t->cap : 16;
    /* load factor at most 3/4 (linear probing then averages under 3 probes for a name that is
     * absent, and the hash is compared before the name): 10,000 clusters are indexed by several
     * tables, at 16 bytes a slot */
    while (cap * 3 < n * 4)
        cap *= 2;
    if (cap != t->cap)
        resize(t, cap);
}

/* The slot holding name, or the empty slot where it would go. */
static size_t find_slot(const struct pl_nametab *t, const char *name, uint64_t h)
{
    size_t i = (size_t)h & (t->cap - 1);
    while (t->slots[i].hash) {
        if (t->slots[i].hash == h && !strcmp(t->key(t->slots[i].item), name))
            return i;
        i = (i + 1) & (t->cap - 1);
    }
    return i;
}

void *pl_nametab_get(const struct pl_nametab *t, const char *name)
{
    if (!t->n)
        return NULL;
    size_t i = find_slot(t, name, pl_nametab_hash(name));
    return t->slots[i].hash ? t->slots[i].item : NULL;
}

void *pl_nametab_put(struct pl_nametab *t, void *item)
{
    pl_nametab_reserve(t, t->n + 1);
    const char *name = t->key(item);
    uint64_t h = pl_nametab_hash(name);
    size_t i = find_slot(t, name, h);
    void *old = t->slots[i].hash ? t->slots[i].item : NULL;
    if (!old)
        t->n++;
    t->slots[i].hash = h;
    t->slots[i].item = item;
    return old;
}

/* Empties slot i and shifts later members of its probe run back (no tombstones). */
static void remove_at(struct pl_nametab *t, size_t i)
{
    size_t mask = t->cap - 1, j = i;
    t->slots[i].hash = 0;
    t->slots[i].item = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->slots[j].hash)
            break;
        size_t home = (size_t)t->slots[j].hash & mask;
        /* move j back to i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        t->slots[i] = t->slots[j];
        t->slots[j].hash = 0;
        t->slots[j].item = NULL;
        i = j;
    }
    t->n--;
}

void *pl_nametab_del(struct pl_nametab *t, const char *name)
{
    if (!t->n)
        return NULL;
    size_t i = find_slot(t, name, pl_nametab_hash(name));
    if (!t->slots[i].hash)
        return NULL;
    void *item = t->slots[i].item;
    remove_at(t, i);
    return item;
}

void pl_nametab_filter(struct pl_nametab *t, int (*keep)(void *item, void *arg), void *arg)
{
    if (!t->cap)
        return;
    struct pl_nametab_slot *old = t->slots;
    size_t cap = t->cap;
    t->slots = pl_calloc(cap, sizeof(*t->slots));
    t->n = 0;
    for (size_t i = 0; i < cap; i++)
        if (old[i].hash && keep(old[i].item, arg)) {
            place(t->slots, cap, old[i].hash, old[i].item);
            t->n++;
        }
    free(old);
}
