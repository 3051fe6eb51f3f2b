#include "stats/stats_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/log.h"

const double pl_stats_hist_bounds[PL_STATS_HIST_BUCKETS] = {
    0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};

static _Thread_local struct pl_stats_shard *tls_shard;

static _Atomic uint64_t *slot_ptr(struct pl_stats_shard *sh, uint32_t slot)
{
    return &sh->blocks[slot >> PL_STATS_BLOCK_BITS][slot & (PL_STATS_BLOCK_SLOTS - 1)];
}

#define BLOCK_BYTES (PL_STATS_BLOCK_SLOTS * sizeof(_Atomic uint64_t))

/* A block of zeroed slots, mapped apart from the heap: its pages take memory only once written,
 * so the stats no thread of a shard writes (those of idle clusters, main's members) cost
 * nothing in that shard. */
static _Atomic uint64_t *new_block(void)
{
    void *b = mmap(NULL, BLOCK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        pl_die("out of memory (stats block)");
    (void)madvise(b, BLOCK_BYTES, MADV_NOHUGEPAGE); /* a huge page would take 2 MiB at once */
    return b;
}

static void free_block(_Atomic uint64_t *b)
{
    munmap((void *)b, BLOCK_BYTES);
}

#define NAMES_CHUNK 16384

/* A copy of name in the store's names (one malloc per 16 KiB of names, not one per name). */
static const char *name_dup(struct pl_stats *s, const char *name)
{
    size_t n = strlen(name) + 1;
    if (n > s->names_left) {
        bool own = n > NAMES_CHUNK / 4; /* a long name gets a chunk of its own */
        size_t cap = own ? n : NAMES_CHUNK;
        struct pl_stats_names *c = pl_malloc(sizeof(*c) + cap);
        c->next = s->names;
        s->names = c;
        if (own)
            return memcpy(c->text, name, n);
        s->names_at = c->text;
        s->names_left = cap;
    }
    char *at = s->names_at;
    s->names_at += n;
    s->names_left -= n;
    return memcpy(at, name, n);
}

static struct pl_stats_shard *shard_alloc(struct pl_stats *s)
{
    struct pl_stats_shard *sh = pl_calloc(1, sizeof(*sh));
    sh->store = s;
    for (uint32_t b = 0; b < s->nblocks; b++)
        sh->blocks[b] = new_block();
    s->shards = pl_realloc(s->shards, (s->nshards + 1) * sizeof(*s->shards));
    s->shards[s->nshards++] = sh;
    return sh;
}

struct pl_stats *pl_stats_new(void)
{
    struct pl_stats *s = pl_calloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->index_cap = 256;
    s->index = pl_calloc(s->index_cap, sizeof(*s->index));
    shard_alloc(s); /* the shared shard */
    return s;
}

void pl_stats_free(struct pl_stats *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nshards; i++) {
        if (tls_shard == s->shards[i])
            tls_shard = NULL;
        for (uint32_t b = 0; b < s->nblocks; b++)
            free_block(s->shards[i]->blocks[b]);
        free(s->shards[i]);
    }
    while (s->names) {
        struct pl_stats_names *next = s->names->next;
        free(s->names);
        s->names = next;
    }
    free(s->shards);
    free(s->meta);
    free(s->index);
    free(s->baseline);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

#define FNV_INIT  14695981039346656037ULL
#define FNV(h, c) (((h) ^ (unsigned char)(c)) * 1099511628211ULL)

static uint64_t hash_name(const char *n)
{
    uint64_t h = FNV_INIT;
    for (; *n; n++)
        h = FNV(h, *n);
    return h;
}

static void index_put(struct pl_stats *s, uint32_t idx, uint64_t h)
{
    size_t m = s->index_cap - 1;
    for (size_t i = h & m;; i = (i + 1) & m) {
        if (!s->index[i]) {
            s->index[i] = idx + 1;
            return;
        }
    }
}

/* Adds meta[idx] (named) to the index, doubling it past three quarters full (20,000 groups of
 * 10,000 clusters fit 32,768 entries). */
static void index_add(struct pl_stats *s, uint32_t idx, uint64_t h)
{
    if ((s->n_indexed + 1) * 4 > s->index_cap * 3) {
        free(s->index);
        s->index_cap *= 2;
        s->index = pl_calloc(s->index_cap, sizeof(*s->index));
        for (size_t i = 0; i < s->n; i++)
            if (s->meta[i].name && i != idx)
                index_put(s, (uint32_t)i, hash_name(s->meta[i].name));
    }
    index_put(s, idx, h);
    s->n_indexed++;
}

/* Member slots of group g. */
static void member_slots(const struct pl_stat_meta *g, uint32_t *slots)
{
    uint32_t cur[2] = {g->slot, g->slot_main};
    for (uint32_t i = 0; i < g->group->n; i++)
        slots[i] = pl_stats__next_slot(g->group, i, cur);
}

/* The slots group def takes: width[1] for its members written by main only, width[0] for the
 * others. */
static void group_width(const struct pl_stats_group_def *d, uint32_t width[2])
{
    width[0] = width[1] = 0;
    for (uint32_t i = 0; i < d->n; i++)
        width[pl_stats__member_main(d, i)] += pl_stats__width(pl_stats__member_kind(d, i));
}

/* The slot of member `suffix` of group g, or -1. */
static long member_slot(const struct pl_stat_meta *g, const char *suffix, enum pl_stat_kind *kind)
{
    uint32_t cur[2] = {g->slot, g->slot_main};
    for (uint32_t k = 0; k < g->group->n; k++) {
        uint32_t slot = pl_stats__next_slot(g->group, k, cur);
        if (!strcmp(g->group->m[k].suffix, suffix)) {
            *kind = pl_stats__member_kind(g->group, k);
            return slot;
        }
    }
    return -1;
}

/* The single stat named name, whose hash is h, or -1. Caller holds the lock. */
static long find_single(struct pl_stats *s, const char *name, uint64_t h, enum pl_stat_kind *kind)
{
    size_t m = s->index_cap - 1;
    for (size_t i = h & m; s->index[i]; i = (i + 1) & m) {
        const struct pl_stat_meta *e = &s->meta[s->index[i] - 1];
        if (!e->group && !strcmp(e->name, name)) {
            *kind = e->kind;
            return e->slot;
        }
    }
    return -1;
}

/* The stat named name (a single one, or a member of a group: member suffixes have no dot, so
 * the group's prefix is name up to its last dot): its kind and slot, or -1. Caller holds the
 * lock. */
static long find(struct pl_stats *s, const char *name, enum pl_stat_kind *kind)
{
    uint64_t h = FNV_INIT, h_dot = 0;
    const char *p = name, *dot = NULL;
    for (; *p; p++) {
        h = FNV(h, *p);
        if (*p == '.') {
            dot = p;
            h_dot = h;
        }
    }
    if (dot) {
        size_t m = s->index_cap - 1, plen = (size_t)(dot - name) + 1;
        for (size_t i = h_dot & m; s->index[i]; i = (i + 1) & m) {
            const struct pl_stat_meta *g = &s->meta[s->index[i] - 1];
            if (!g->group || strncmp(g->name, name, plen) || g->name[plen])
                continue;
            long slot = member_slot(g, dot + 1, kind);
            if (slot >= 0)
                return slot;
        }
    }
    return find_single(s, name, h, kind);
}

/* Reserves n consecutive slots inside one block of kind main (members written by main only, or
 * the others), growing every shard by a block when that kind's is full. Caller holds the lock. */
static uint32_t alloc_slots(struct pl_stats *s, uint32_t n, bool main)
{
    if (n > PL_STATS_BLOCK_SLOTS)
        pl_die("stats group too wide");
    if (s->slots_end[main] - s->next_slot[main] < n) {
        if (s->nblocks == PL_STATS_MAX_BLOCKS)
            pl_die("too many stats");
        for (size_t i = 0; i < s->nshards; i++)
            s->shards[i]->blocks[s->nblocks] = new_block();
        s->next_slot[main] = s->nblocks << PL_STATS_BLOCK_BITS;
        s->slots_end[main] = s->next_slot[main] + PL_STATS_BLOCK_SLOTS;
        s->nblocks++;
    }
    uint32_t slot = s->next_slot[main];
    s->next_slot[main] += n;
    return slot;
}

/* A new meta entry (not indexed). Caller holds the lock. */
static struct pl_stat_meta *meta_add(struct pl_stats *s)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->meta = pl_realloc(s->meta, s->cap * sizeof(*s->meta));
    }
    struct pl_stat_meta *m = &s->meta[s->n++];
    memset(m, 0, sizeof(*m));
    return m;
}

/* The Bloom filter bits of prefix hash h. */
#define BIT_A(h) ((h) & (PL_STATS_SINGLES_BITS - 1))
#define BIT_B(h) (((h) >> 20) & (PL_STATS_SINGLES_BITS - 1))

/* Notes that a single stat's name has the prefix (up to its last dot) whose hash is h. */
static void singles_add(struct pl_stats *s, uint64_t h)
{
    s->singles[BIT_A(h) / 64] |= 1ULL << (BIT_A(h) % 64);
    s->singles[BIT_B(h) / 64] |= 1ULL << (BIT_B(h) % 64);
}

/* False when no single stat's name has the prefix whose hash is h. */
static bool singles_may_have(const struct pl_stats *s, uint64_t h)
{
    return (s->singles[BIT_A(h) / 64] >> (BIT_A(h) % 64) & 1) &&
           (s->singles[BIT_B(h) / 64] >> (BIT_B(h) % 64) & 1);
}

/* The hash of name up to and with its last dot (of "" when it has none). */
static uint64_t prefix_hash(const char *name)
{
    uint64_t h = FNV_INIT, h_dot = FNV_INIT;
    for (; *name; name++) {
        h = FNV(h, *name);
        if (*name == '.')
            h_dot = h;
    }
    return h_dot;
}

static uint32_t get_or_create(struct pl_stats *s, const char *name, enum pl_stat_kind kind)
{
    pthread_mutex_lock(&s->lock);
    enum pl_stat_kind have;
    long found = find(s, name, &have);
    if (found >= 0 && have == kind) {
        pthread_mutex_unlock(&s->lock);
        return (uint32_t)found;
    }
    if (found >= 0)
        pl_log_error("stats", "stat '%s' already exists with another type; updates are dropped",
                     name);
    struct pl_stat_meta *m = meta_add(s);
    m->name = found >= 0 ? NULL : name_dup(s, name);
    m->kind = kind;
    m->slot = alloc_slots(s, pl_stats__width(kind), false);
    uint32_t slot = m->slot;
    if (m->name) {
        index_add(s, (uint32_t)(s->n - 1), hash_name(name));
        singles_add(s, prefix_hash(name));
    }
    pthread_mutex_unlock(&s->lock);
    return slot;
}

/* True when def's suffixes can be found after a prefix's last dot: none is empty or has one. */
/* Whether def's members can be a group (each suffix a plain word); remembered for a few defs:
 * 10,000 clusters made the same two groups, and a cluster's has dozens of members. Caller holds
 * the lock. */
static bool groupable(struct pl_stats *s, const struct pl_stats_group_def *def)
{
    for (size_t i = 0; i < PL_STATS_DISJOINT_MEMO; i++)
        if (s->groupable[i] == def)
            return true;
    for (uint32_t k = 0; k < def->n; k++)
        if (!*def->m[k].suffix || strchr(def->m[k].suffix, '.'))
            return false;
    s->groupable[s->n_groupable++ % PL_STATS_DISJOINT_MEMO] = def;
    return true;
}

/* True when groups a and b have no suffix in common (remembered for a few pairs: thousands of
 * clusters have the same two groups). Caller holds the lock. */
static bool disjoint(struct pl_stats *s, const struct pl_stats_group_def *a,
                     const struct pl_stats_group_def *b)
{
    for (size_t i = 0; i < PL_STATS_DISJOINT_MEMO; i++)
        if (s->disjoint[i][0] == a && s->disjoint[i][1] == b)
            return true;
    for (uint32_t i = 0; i < a->n; i++)
        for (uint32_t k = 0; k < b->n; k++)
            if (!strcmp(a->m[i].suffix, b->m[k].suffix))
                return false;
    size_t i = s->n_disjoint++ % PL_STATS_DISJOINT_MEMO;
    s->disjoint[i][0] = a;
    s->disjoint[i][1] = b;
    return true;
}

void pl_stats_group(struct pl_stats *s, const char *prefix, const struct pl_stats_group_def *def,
                    uint32_t *slots)
{
    char buf[1024];
    size_t plen = strlen(prefix);
    bool single = !plen || prefix[plen - 1] != '.' || plen + 256 > sizeof(buf);
    enum pl_stat_kind have;
    const char *name = NULL; /* the store's copy of prefix, when a group has it */
    pthread_mutex_lock(&s->lock);
    uint64_t h = hash_name(prefix);
    size_t m = s->index_cap - 1;
    for (size_t i = h & m; !single && s->index[i]; i = (i + 1) & m) {
        const struct pl_stat_meta *g = &s->meta[s->index[i] - 1];
        if (!g->group || strcmp(g->name, prefix))
            continue;
        if (g->group == def) { /* made before: the same stats */
            member_slots(g, slots);
            pthread_mutex_unlock(&s->lock);
            return;
        }
        name = g->name;
    }
    single = single || !groupable(s, def);
    for (size_t i = h & m; !single && s->index[i]; i = (i + 1) & m) {
        const struct pl_stat_meta *g = &s->meta[s->index[i] - 1];
        if (!g->group || strcmp(g->name, prefix) || disjoint(s, g->group, def))
            continue;
        for (uint32_t k = 0; k < def->n && !single; k++) /* another group of the prefix */
            single = member_slot(g, def->m[k].suffix, &have) >= 0;
    }
    /* a member made singly before keeps its stat: then all are made singly */
    bool check = !single && singles_may_have(s, h);
    if (check)
        memcpy(buf, prefix, plen);
    for (uint32_t k = 0; k < def->n && check && !single; k++) {
        uint64_t hm = h;
        size_t sl = strlen(def->m[k].suffix);
        if (sl >= sizeof(buf) - plen) {
            single = true;
            break;
        }
        for (size_t j = 0; j <= sl; j++) {
            buf[plen + j] = def->m[k].suffix[j];
            if (j < sl)
                hm = FNV(hm, def->m[k].suffix[j]);
        }
        single = find_single(s, buf, hm, &have) >= 0;
    }
    if (!single) {
        struct pl_stat_meta *g = meta_add(s);
        g->name = name ? name : name_dup(s, prefix);
        g->group = def;
        uint32_t width[2];
        group_width(def, width);
        g->slot = width[0] ? alloc_slots(s, width[0], false) : 0;
        g->slot_main = width[1] ? alloc_slots(s, width[1], true) : 0;
        index_add(s, (uint32_t)(s->n - 1), h);
        member_slots(g, slots);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    pthread_mutex_unlock(&s->lock);
    for (uint32_t k = 0; k < def->n; k++) {
        char *name = pl_asprintf("%s%s", prefix, def->m[k].suffix);
        slots[k] = get_or_create(s, name, pl_stats__member_kind(def, k));
        free(name);
    }
}

struct pl_counter pl_stats_counter(struct pl_stats *s, const char *name)
{
    return (struct pl_counter){s, get_or_create(s, name, PL_STAT_COUNTER)};
}

struct pl_gauge pl_stats_gauge(struct pl_stats *s, const char *name)
{
    return (struct pl_gauge){s, get_or_create(s, name, PL_STAT_GAUGE)};
}

struct pl_histogram pl_stats_histogram(struct pl_stats *s, const char *name)
{
    return (struct pl_histogram){s, get_or_create(s, name, PL_STAT_HISTOGRAM)};
}

struct pl_stats_shard *pl_stats_shard_new(struct pl_stats *s)
{
    pthread_mutex_lock(&s->lock);
    struct pl_stats_shard *sh = shard_alloc(s);
    pthread_mutex_unlock(&s->lock);
    return sh;
}

void pl_stats_shard_bind(struct pl_stats_shard *sh)
{
    tls_shard = sh;
}

/* The owner's update: relaxed load + store, no read-modify-write. */
static inline void owner_add(_Atomic uint64_t *v, uint64_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void owner_set(_Atomic uint64_t *v, uint64_t n)
{
    atomic_store_explicit(v, n, memory_order_relaxed);
}

/* The thread's own shard for store s, or NULL for the shared one. */
static inline struct pl_stats_shard *own(struct pl_stats *s)
{
    struct pl_stats_shard *sh = tls_shard;
    return sh && sh->store == s ? sh : NULL;
}

void pl_counter_add(struct pl_counter c, uint64_t n)
{
    struct pl_stats_shard *sh = own(c.store);
    if (sh)
        owner_add(slot_ptr(sh, c.slot), n);
    else
        atomic_fetch_add_explicit(slot_ptr(c.store->shards[0], c.slot), n, memory_order_relaxed);
}

void pl_counter_inc(struct pl_counter c)
{
    pl_counter_add(c, 1);
}

void pl_gauge_add(struct pl_gauge g, int64_t n)
{
    struct pl_stats_shard *sh = own(g.store);
    if (sh) {
        owner_add(slot_ptr(sh, g.slot), (uint64_t)n);
        if (!atomic_load_explicit(slot_ptr(sh, g.slot + 1), memory_order_relaxed))
            owner_set(slot_ptr(sh, g.slot + 1), 1);
    } else {
        sh = g.store->shards[0];
        atomic_fetch_add_explicit(slot_ptr(sh, g.slot), (uint64_t)n, memory_order_relaxed);
        atomic_store_explicit(slot_ptr(sh, g.slot + 1), 1, memory_order_relaxed);
    }
}

void pl_gauge_set(struct pl_gauge g, int64_t v)
{
    struct pl_stats_shard *sh = g.store->shards[0];
    atomic_store_explicit(slot_ptr(sh, g.slot), (uint64_t)v, memory_order_relaxed);
    atomic_store_explicit(slot_ptr(sh, g.slot + 1), 1, memory_order_relaxed);
}

static size_t bucket_of(uint64_t v)
{
    size_t i = 0;
    while (i < PL_STATS_HIST_BUCKETS && (double)v > pl_stats_hist_bounds[i])
        i++;
    return i;
}

void pl_histogram_record(struct pl_histogram h, uint64_t v)
{
    size_t b = bucket_of(v);
    struct pl_stats_shard *sh = own(h.store);
    if (sh) {
        owner_add(slot_ptr(sh, h.slot + b), 1);
        owner_add(slot_ptr(sh, h.slot + PL_HS_COUNT), 1);
        owner_add(slot_ptr(sh, h.slot + PL_HS_SUM), v);
        _Atomic uint64_t *mn = slot_ptr(sh, h.slot + PL_HS_MIN_INV);
        if (UINT64_MAX - v > atomic_load_explicit(mn, memory_order_relaxed))
            owner_set(mn, UINT64_MAX - v);
        _Atomic uint64_t *mx = slot_ptr(sh, h.slot + PL_HS_MAX);
        if (v > atomic_load_explicit(mx, memory_order_relaxed))
            owner_set(mx, v);
        return;
    }
    sh = h.store->shards[0];
    atomic_fetch_add_explicit(slot_ptr(sh, h.slot + b), 1, memory_order_relaxed);
    atomic_fetch_add_explicit(slot_ptr(sh, h.slot + PL_HS_COUNT), 1, memory_order_relaxed);
    atomic_fetch_add_explicit(slot_ptr(sh, h.slot + PL_HS_SUM), v, memory_order_relaxed);
    _Atomic uint64_t *mn = slot_ptr(sh, h.slot + PL_HS_MIN_INV);
    uint64_t cur = atomic_load_explicit(mn, memory_order_relaxed);
    while (UINT64_MAX - v > cur &&
           !atomic_compare_exchange_weak_explicit(mn, &cur, UINT64_MAX - v, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    _Atomic uint64_t *mx = slot_ptr(sh, h.slot + PL_HS_MAX);
    cur = atomic_load_explicit(mx, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(mx, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

static uint64_t load(struct pl_stats_shard *sh, uint32_t slot)
{
    return atomic_load_explicit(slot_ptr(sh, slot), memory_order_relaxed);
}

uint64_t pl_stats__counter_raw(struct pl_stats *s, uint32_t slot)
{
    uint64_t v = 0;
    for (size_t i = 0; i < s->nshards; i++)
        v += load(s->shards[i], slot);
    return v;
}

int64_t pl_stats__gauge(struct pl_stats *s, uint32_t slot, bool *used)
{
    uint64_t v = 0;
    bool u = false;
    for (size_t i = 0; i < s->nshards; i++) {
        v += load(s->shards[i], slot);
        u |= load(s->shards[i], slot + 1) != 0;
    }
    if (used)
        *used = u;
    return (int64_t)v;
}

void pl_stats__hist(struct pl_stats *s, uint32_t slot, struct pl_hist_sum *h)
{
    memset(h, 0, sizeof(*h));
    uint64_t min_inv = 0;
    for (size_t i = 0; i < s->nshards; i++) {
        struct pl_stats_shard *sh = s->shards[i];
        for (size_t b = 0; b <= PL_STATS_HIST_BUCKETS; b++)
            h->buckets[b] += load(sh, slot + b);
        h->count += load(sh, slot + PL_HS_COUNT);
        h->sum += load(sh, slot + PL_HS_SUM);
        uint64_t mi = load(sh, slot + PL_HS_MIN_INV), mx = load(sh, slot + PL_HS_MAX);
        if (mi > min_inv)
            min_inv = mi;
        if (mx > h->max)
            h->max = mx;
    }
    h->min = UINT64_MAX - min_inv;
    /* slots are read one by one while owners write: keep the merged view self-consistent */
    uint64_t total = 0;
    for (size_t b = 0; b <= PL_STATS_HIST_BUCKETS; b++)
        total += h->buckets[b];
    h->count = total;
    if (total == 0)
        h->min = h->max = 0;
}

uint64_t pl_stats__baseline(const struct pl_stats *s, uint32_t slot)
{
    return slot < s->baseline_cap ? s->baseline[slot] : 0;
}

uint64_t pl_counter_value(struct pl_counter c)
{
    struct pl_stats *s = c.store;
    pthread_mutex_lock(&s->lock);
    uint64_t v = pl_stats__counter_raw(s, c.slot) - pl_stats__baseline(s, c.slot);
    pthread_mutex_unlock(&s->lock);
    return v;
}

int64_t pl_gauge_value(struct pl_gauge g)
{
    pthread_mutex_lock(&g.store->lock);
    int64_t v = pl_stats__gauge(g.store, g.slot, NULL);
    pthread_mutex_unlock(&g.store->lock);
    return v;
}

void pl_histogram_totals(struct pl_histogram h, uint64_t *count, uint64_t *sum)
{
    struct pl_hist_sum hs;
    pthread_mutex_lock(&h.store->lock);
    pl_stats__hist(h.store, h.slot, &hs);
    pthread_mutex_unlock(&h.store->lock);
    if (count)
        *count = hs.count;
    if (sum)
        *sum = hs.sum;
}

void pl_stats_reset_counters(struct pl_stats *s)
{
    pthread_mutex_lock(&s->lock);
    uint32_t nslots = s->nblocks << PL_STATS_BLOCK_BITS;
    if (s->baseline_cap < nslots) {
        s->baseline = pl_realloc(s->baseline, nslots * sizeof(*s->baseline));
        memset(s->baseline + s->baseline_cap, 0, (nslots - s->baseline_cap) * sizeof(*s->baseline));
        s->baseline_cap = nslots;
    }
    for (size_t i = 0; i < s->n; i++) {
        const struct pl_stat_meta *m = &s->meta[i];
        if (!m->group) {
            if (m->kind == PL_STAT_COUNTER)
                s->baseline[m->slot] = pl_stats__counter_raw(s, m->slot);
            continue;
        }
        uint32_t cur[2] = {m->slot, m->slot_main};
        for (uint32_t k = 0; k < m->group->n; k++) {
            uint32_t slot = pl_stats__next_slot(m->group, k, cur);
            if (pl_stats__member_kind(m->group, k) == PL_STAT_COUNTER)
                s->baseline[slot] = pl_stats__counter_raw(s, slot);
        }
    }
    pthread_mutex_unlock(&s->lock);
}
