/* Private to src/stats: the store layout shared by stats.c and stats_render.c. */
#ifndef PL_STATS_STATS_INTERNAL_H
#define PL_STATS_STATS_INTERNAL_H

#include <pthread.h>

#include "stats/stats.h"

#define PL_STATS_BLOCK_BITS    12
#define PL_STATS_BLOCK_SLOTS   (1u << PL_STATS_BLOCK_BITS)
#define PL_STATS_MAX_BLOCKS    4096
#define PL_STATS_DISJOINT_MEMO 8
#define PL_STATS_SINGLES_BITS  65536

/* Histogram slots per shard: buckets (+ overflow), count, sum, inverted min, max. */
enum {
    PL_HS_COUNT = PL_STATS_HIST_BUCKETS + 1,
    PL_HS_SUM,
    PL_HS_MIN_INV, /* UINT64_MAX - min, so a zeroed slot means "no value" */
    PL_HS_MAX,
    PL_HS_SLOTS,
};

enum pl_stat_kind {
    PL_STAT_COUNTER,
    PL_STAT_GAUGE,
    PL_STAT_HISTOGRAM,
};

/* One stat, or one group of stats sharing a name prefix (pl_stats_group). */
struct pl_stat_meta {
    const char *name; /* in the store's names: a stat's name, NULL when discarded (kind clash); a
                         group's prefix (shared by the groups of that prefix) */
    const struct pl_stats_group_def *group; /* NULL for a single stat */
    uint32_t slot; /* a group: the first of its members that are not main's */
    union {
        uint32_t slot_main; /* a group: the first of its members written by main only */
        uint32_t kind;      /* a single stat: enum pl_stat_kind */
    };
};

/* A chunk of the store's names: NUL-terminated, never freed before the store. */
struct pl_stats_names {
    struct pl_stats_names *next;
    char text[];
};

struct pl_stats_shard {
    struct pl_stats *store;
    _Atomic uint64_t *blocks[PL_STATS_MAX_BLOCKS];
};

struct pl_stats {
    pthread_mutex_t lock;
    struct pl_stat_meta *meta;
    size_t n, cap;
    uint32_t *index; /* open addressing: meta index + 1, 0 empty; by name, groups by prefix */
    size_t index_cap;
    size_t n_indexed;
    uint32_t next_slot[2]; /* the next free slot: [1] for main's members */
    uint32_t slots_end[2]; /* where the current block of each ends */
    uint32_t nblocks;      /* blocks are mapped in every shard, filled by one of the two kinds */
    struct pl_stats_names *names;
    char *names_at; /* the free bytes of the current chunk */
    size_t names_left;
    struct pl_stats_shard **shards; /* shards[0] is the shared (atomic) shard */
    size_t nshards;
    uint64_t *baseline; /* by slot: counters' raw sums at the last reset (NULL before one) */
    uint32_t baseline_cap;
    const struct pl_stats_group_def *disjoint[PL_STATS_DISJOINT_MEMO][2]; /* pairs known apart */
    uint64_t singles[PL_STATS_SINGLES_BITS / 64]; /* Bloom filter: prefixes (up to the last dot)
                                                     of single stats' names */
    size_t n_disjoint;
    const struct pl_stats_group_def *groupable[PL_STATS_DISJOINT_MEMO]; /* known groupable */
    size_t n_groupable;
};

/* Slots a stat of kind k takes. */
static inline uint32_t pl_stats__width(enum pl_stat_kind k)
{
    return k == PL_STAT_COUNTER ? 1 : k == PL_STAT_GAUGE ? 2 : PL_HS_SLOTS;
}

/* The kind of group member i. */
static inline enum pl_stat_kind pl_stats__member_kind(const struct pl_stats_group_def *d,
                                                      uint32_t i)
{
    return d->m[i].kind == PL_STATS_MEMBER_GAUGE || d->m[i].kind == PL_STATS_MEMBER_MAIN_GAUGE
               ? PL_STAT_GAUGE
               : PL_STAT_COUNTER;
}

/* Whether group member i is written by main only (its slots are apart). */
static inline bool pl_stats__member_main(const struct pl_stats_group_def *d, uint32_t i)
{
    return d->m[i].kind >= PL_STATS_MEMBER_MAIN_COUNTER; /* the last kinds */
}

/* The slot of member k of group meta g, walking the members in order: cur starts as
 * {g->slot, g->slot_main}. */
static inline uint32_t pl_stats__next_slot(const struct pl_stats_group_def *d, uint32_t k,
                                           uint32_t cur[2])
{
    uint32_t *c = &cur[pl_stats__member_main(d, k)];
    uint32_t slot = *c;
    *c += pl_stats__width(pl_stats__member_kind(d, k));
    return slot;
}

/* A counter's reset baseline. Caller holds the lock. */
uint64_t pl_stats__baseline(const struct pl_stats *s, uint32_t slot);

/* Merged view of one histogram over all shards. */
struct pl_hist_sum {
    uint64_t buckets[PL_STATS_HIST_BUCKETS + 1];
    uint64_t count, sum, min, max;
};

/* Sums a counter slot over shards (raw, without the reset baseline). Caller holds the lock. */
uint64_t pl_stats__counter_raw(struct pl_stats *s, uint32_t slot);
/* Gauge value and whether it was ever written. Caller holds the lock. */
int64_t pl_stats__gauge(struct pl_stats *s, uint32_t slot, bool *used);
/* Merges a histogram over shards. Caller holds the lock. */
void pl_stats__hist(struct pl_stats *s, uint32_t slot, struct pl_hist_sum *h);

#endif
