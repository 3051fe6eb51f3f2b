/* Private to src/stats: the store layout shared by stats.c and stats_render.c. */
#ifndef PL_STATS_STATS_INTERNAL_H
#define PL_STATS_STATS_INTERNAL_H

#include <pthread.h>

#include "stats/stats.h"

#define PL_STATS_BLOCK_BITS  12
#define PL_STATS_BLOCK_SLOTS (1u << PL_STATS_BLOCK_BITS)
#define PL_STATS_MAX_BLOCKS  4096

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

struct pl_stat_meta {
    char *name; /* NULL for a discarded stat (kind clash) */
    enum pl_stat_kind kind;
    uint32_t slot;
    uint64_t baseline; /* counters: raw sum at the last reset */
};

struct pl_stats_shard {
    struct pl_stats *store;
    _Atomic uint64_t *blocks[PL_STATS_MAX_BLOCKS];
};

struct pl_stats {
    pthread_mutex_t lock;
    struct pl_stat_meta *meta;
    size_t n, cap;
    uint32_t *index; /* open addressing: meta index + 1, 0 empty */
    size_t index_cap;
    uint32_t next_slot;
    uint32_t nblocks;
    struct pl_stats_shard **shards; /* shards[0] is the shared (atomic) shard */
    size_t nshards;
};

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
