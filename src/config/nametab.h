/* A hash index from names to caller-owned items: open addressing with linear probing and
 * backward-shift deletion, so lookups, inserts and removals are O(1) on average and removals
 * leave no tombstones. The table stores pointers; the name of an item comes from the key
 * function given at init (items keep their names for as long as they are in the table).
 * Not thread-safe for writes; concurrent readers are fine once writes have stopped (a published
 * snapshot's index). */
#ifndef PL_CONFIG_NAMETAB_H
#define PL_CONFIG_NAMETAB_H

#include <stddef.h>
#include <stdint.h>

typedef const char *(*pl_nametab_key_fn)(const void *item);

struct pl_nametab_slot {
    uint64_t hash; /* of the item's name; 0 marks an empty slot (real hashes are never 0) */
    void *item;
};

struct pl_nametab {
    struct pl_nametab_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
    pl_nametab_key_fn key;
};

/* Returns the hash the table uses for name (never 0). */
uint64_t pl_nametab_hash(const char *name);
/* Initializes an empty table for items named by key(item). */
void pl_nametab_init(struct pl_nametab *t, pl_nametab_key_fn key);
/* Makes room for n items without growing again. */
void pl_nametab_reserve(struct pl_nametab *t, size_t n);
/* Frees the slots (not the items); the table is empty and reusable. */
void pl_nametab_clear(struct pl_nametab *t);
/* Returns the item named name, or NULL. */
void *pl_nametab_get(const struct pl_nametab *t, const char *name);
/* Adds item; an item of the same name is replaced and returned (else NULL). */
void *pl_nametab_put(struct pl_nametab *t, void *item);
/* Removes and returns the item named name, or NULL. */
void *pl_nametab_del(struct pl_nametab *t, const char *name);
/* Keeps the items for which keep(item, arg) returns nonzero and drops the others (keep may free
 * what it drops). O(capacity). Iteration otherwise: the non-NULL slots[i].item, i < cap. */
void pl_nametab_filter(struct pl_nametab *t, int (*keep)(void *item, void *arg), void *arg);

#endif
