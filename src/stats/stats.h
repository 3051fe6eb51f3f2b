/* Envoy-named counters, gauges and histograms with per-thread shards.
 *
 * A stat is created by name at config time (pl_stats_counter, ...) and identified afterwards by a
 * small handle. Each thread that updates stats on the request path owns a shard
 * (pl_stats_shard_new + pl_stats_shard_bind from that thread): an update is then a relaxed load
 * and store on a slot only that thread writes (a plain add on x86), so there is no atomic
 * read-modify-write and no shared cache line. Threads without a bound shard (or updating a stat
 * of another store) fall back to one shared shard with atomic adds. Rendering sums the shards with
 * relaxed loads on the thread that renders (the main thread).
 *
 * Creation, rendering, reset and pl_stats_free take the store's lock; updates never do. Shards
 * live as long as the store, so counts from a stopped worker are kept.
 */
#ifndef PL_STATS_STATS_H
#define PL_STATS_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct pl_stats;
struct pl_stats_shard;

/* Histogram bucket upper bounds in milliseconds, as Envoy's defaults. */
#define PL_STATS_HIST_BUCKETS 19
extern const double pl_stats_hist_bounds[PL_STATS_HIST_BUCKETS];

/* Handles: cheap to copy, valid for the life of the store. */
struct pl_counter {
    struct pl_stats *store;
    uint32_t slot;
};
struct pl_gauge {
    struct pl_stats *store;
    uint32_t slot;
};
struct pl_histogram {
    struct pl_stats *store;
    uint32_t slot;
};

/* Creates an empty store; free with pl_stats_free. */
struct pl_stats *pl_stats_new(void);
/* Frees the store and all its shards; no thread may update its stats any more. */
void pl_stats_free(struct pl_stats *s);

/* Returns the counter named name, creating it (at 0) if needed. Asking for an existing name of
 * another kind logs an error and returns a handle to a discarded stat. */
struct pl_counter pl_stats_counter(struct pl_stats *s, const char *name);
/* Returns the gauge named name, creating it (at 0) if needed. */
struct pl_gauge pl_stats_gauge(struct pl_stats *s, const char *name);
/* Returns the histogram named name, creating it if needed. */
struct pl_histogram pl_stats_histogram(struct pl_stats *s, const char *name);

/* A group of stats whose names share a prefix ("cluster.<name>." + "upstream_rq_total", ...):
 * created in one go and stored once (the prefix, a pointer to the caller's static member table and
 * the first slots) instead of a name per stat, so thousands of clusters cost little; groups of
 * one prefix share its copy. The names are the same as pl_stats_counter(prefix + suffix) would
 * give, and either way finds the other. */
enum pl_stats_member_kind {
    PL_STATS_MEMBER_COUNTER,
    PL_STATS_MEMBER_GAUGE,
    /* The same, written only by threads without a shard (the main thread: xDS updates, gauges set
     * with pl_gauge_set). Their slots sit apart from the others, so they leave the shards' pages
     * (which take memory on first write) untouched; a thread with a shard may still write them,
     * correctly, at that cost. */
    PL_STATS_MEMBER_MAIN_COUNTER,
    PL_STATS_MEMBER_MAIN_GAUGE,
};
struct pl_stats_member {
    const char *suffix;
    enum pl_stats_member_kind kind;
};
struct pl_stats_group_def {
    const struct pl_stats_member *m; /* static storage: the store keeps the pointer */
    uint32_t n;
};

/* Creates (or finds, with the same prefix and def) the group of stats prefix + def->m[i].suffix;
 * slots[i] gets member i's slot (handles: {s, slots[i]}). Names that already exist singly keep
 * their stats (then the members are made one by one, as pl_stats_counter would). */
void pl_stats_group(struct pl_stats *s, const char *prefix, const struct pl_stats_group_def *def,
                    uint32_t *slots);

/* Creates a shard for one thread (call at config time); owned by the store. */
struct pl_stats_shard *pl_stats_shard_new(struct pl_stats *s);
/* Makes sh the calling thread's shard (NULL unbinds); only this thread may then write to it. */
void pl_stats_shard_bind(struct pl_stats_shard *sh);

/* Adds n to a counter. */
void pl_counter_add(struct pl_counter c, uint64_t n);
/* Adds 1 to a counter. */
void pl_counter_inc(struct pl_counter c);
/* Adds n (may be negative) to a gauge; the value is the sum over all threads. */
void pl_gauge_add(struct pl_gauge g, int64_t n);
/* Sets the part of a gauge that is not owned by any shard (absolute gauges set by one thread, e.g.
 * the main thread); the value is this plus the pl_gauge_add deltas of all shards. */
void pl_gauge_set(struct pl_gauge g, int64_t v);
/* Records one value (milliseconds, or any unit) in a histogram. */
void pl_histogram_record(struct pl_histogram h, uint64_t v);

/* Reads the current value of a counter (summed; after pl_stats_reset_counters, since then). */
uint64_t pl_counter_value(struct pl_counter c);
/* Reads the current value of a gauge. */
int64_t pl_gauge_value(struct pl_gauge g);
/* Reads the sample count and sum of a histogram. */
void pl_histogram_totals(struct pl_histogram h, uint64_t *count, uint64_t *sum);
/* Sets every counter back to zero (Envoy's /reset_counters); gauges and histograms keep theirs. */
void pl_stats_reset_counters(struct pl_stats *s);

enum pl_stats_format {
    PL_STATS_TEXT,       /* Envoy's /stats */
    PL_STATS_JSON,       /* Envoy's /stats?format=json */
    PL_STATS_PROMETHEUS, /* Envoy's /stats/prometheus, with the pillion_ prefix */
};

struct pl_stats_render_opts {
    const char *filter; /* POSIX extended regex matched anywhere in the stat name; NULL: all */
    bool used_only;     /* only stats written at least once */
};

/* Renders all stats; *out is a NUL-terminated malloc'd string the caller frees. Returns 0, or
 * PL_EINVAL if the filter does not compile. */
int pl_stats_render(struct pl_stats *s, enum pl_stats_format fmt,
                    const struct pl_stats_render_opts *opts, char **out, size_t *out_len);

/* Envoy's default tag extraction: writes the tag-extracted name ("cluster.upstream_rq_xx") into
 * name_out (NUL-terminated, truncated to cap) and up to max_tags (name, value) pairs into tags as
 * NUL-terminated strings inside tag_buf (tag_buf_cap bytes). Returns the number of tags. */
struct pl_stats_tag {
    const char *name; /* "envoy.cluster_name" */
    const char *value;
};
int pl_stats_extract_tags(const char *name, char *name_out, size_t cap, struct pl_stats_tag *tags,
                          int max_tags, char *tag_buf, size_t tag_buf_cap);

#endif
