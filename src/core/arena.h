/* A bump allocator for short-lived things (a stream's headers and strings): freed in one go. */
#ifndef PL_CORE_ARENA_H
#define PL_CORE_ARENA_H

#include <stdalign.h>
#include <stddef.h>

struct pl_arena_chunk;

struct pl_arena {
    struct pl_arena_chunk *chunks;
    char *cur, *end;
};

#define PL_ARENA_INIT                                                                              \
    {                                                                                              \
        NULL, NULL, NULL                                                                           \
    }

/* pl_arena_alloc's path when the current chunk is full: n is already rounded up to
 * alignof(max_align_t). */
void *pl_arena_alloc_more(struct pl_arena *a, size_t n);

/* Returns n bytes aligned for any type; never fails (aborts on OOM). Inline: a bump of the
 * current chunk is the request path's most frequent allocation. */
static inline void *pl_arena_alloc(struct pl_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (a->cur && (size_t)(a->end - a->cur) >= n) {
        void *p = a->cur;
        a->cur += n;
        return p;
    }
    return pl_arena_alloc_more(a, n);
}
/* Returns a NUL-terminated copy of s[0..n) in the arena. */
char *pl_arena_strndup(struct pl_arena *a, const char *s, size_t n);
/* Frees everything allocated from the arena; it stays usable. */
void pl_arena_free(struct pl_arena *a);

#endif
