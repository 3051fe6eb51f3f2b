/* Per-thread caches of fixed-size objects (streams and other per-request structs), so the request
 * path does not call malloc/free: a freed object goes on its thread's free list (up to a bound)
 * and the next allocation of that cache on the same thread takes it back.
 *
 * Declare one cache per object type as `static __thread struct pl_slab x = PL_SLAB_INIT(size,
 * max);`. An object may be freed on another thread than the one that allocated it (it then joins
 * that thread's list). A thread's lists are released when it exits (or by pl_slab_trim). Builds
 * with AddressSanitizer bypass the lists, so use-after-free stays detectable. */
#ifndef PL_CORE_SLAB_H
#define PL_CORE_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pl_slab {
    void *free;           /* singly linked through each object's first word */
    uint32_t n, max;      /* objects on the list; bound */
    size_t size;          /* object size */
    struct pl_slab *next; /* the thread's registered caches */
    bool registered;
};

#define PL_SLAB_INIT(size, max)                                                                    \
    {                                                                                              \
        NULL, 0, (max), (size), NULL, false                                                        \
    }

#if defined(__SANITIZE_ADDRESS__)
#define PL_SLAB_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PL_SLAB_BYPASS 1
#endif
#endif
#ifndef PL_SLAB_BYPASS
#define PL_SLAB_BYPASS 0
#endif

/* Returns a zeroed object of s->size bytes (aborts on OOM); release it with pl_slab_free. */
void *pl_slab_calloc(struct pl_slab *s);
/* pl_slab_alloc when the list is empty: a new object from malloc. */
void *pl_slab_alloc_new(struct pl_slab *s);
/* pl_slab_free when the object cannot go on the list as it is: registers the cache with the
 * thread first, or frees p (list full, NULL, AddressSanitizer builds). */
void pl_slab_free_slow(struct pl_slab *s, void *p);

/* As pl_slab_calloc, without zeroing. Inline: the request path takes and returns a dozen objects
 * per request, and a list pop is a few instructions. */
static inline void *pl_slab_alloc(struct pl_slab *s)
{
    void *p = s->free;
    if (!p)
        return pl_slab_alloc_new(s);
    s->free = *(void **)p;
    s->n--;
    return p;
}

/* Returns p (from pl_slab_calloc on the same cache; may be NULL) to the calling thread's list. */
static inline void pl_slab_free(struct pl_slab *s, void *p)
{
    if (!PL_SLAB_BYPASS && p && s->registered && s->n < s->max) {
        *(void **)p = s->free;
        s->free = p;
        s->n++;
        return;
    }
    pl_slab_free_slow(s, p);
}
/* Frees every cached object of the calling thread's caches (thread exit, tests). */
void pl_slab_trim(void);

#endif
