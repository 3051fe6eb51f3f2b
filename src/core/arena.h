/* A bump allocator for short-lived things (a stream's headers and strings): freed in one go. */
#ifndef PL_CORE_ARENA_H
#define PL_CORE_ARENA_H

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

/* Returns n bytes aligned for any type; never fails (aborts on OOM). */
void *pl_arena_alloc(struct pl_arena *a, size_t n);
/* Returns a NUL-terminated copy of s[0..n) in the arena. */
char *pl_arena_strndup(struct pl_arena *a, const char *s, size_t n);
/* Frees everything allocated from the arena; it stays usable. */
void pl_arena_free(struct pl_arena *a);

#endif
