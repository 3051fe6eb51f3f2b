#include "core/arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/slab.h"

struct pl_arena_chunk {
    struct pl_arena_chunk *next;
    size_t size; /* bytes of data[] */
    alignas(max_align_t) char data[];
};

#define CHUNK_SIZE 4096

/* Standard chunks are reused through a per-thread cache: a stream's first chunk costs no
 * malloc/free on the request path. */
static __thread struct pl_slab chunk_cache =
    PL_SLAB_INIT(sizeof(struct pl_arena_chunk) + CHUNK_SIZE, 256);

void *pl_arena_alloc_more(struct pl_arena *a, size_t n)
{
    size_t size = n > CHUNK_SIZE / 2 ? n : CHUNK_SIZE;
    struct pl_arena_chunk *c =
        size == CHUNK_SIZE ? pl_slab_alloc(&chunk_cache) : pl_malloc(sizeof(*c) + size);
    c->size = size;
    c->next = a->chunks;
    a->chunks = c;
    if (size == n && a->cur) /* a large one-off: keep the current chunk's free space */
        return c->data;
    a->cur = c->data;
    a->end = c->data + size;
    void *p = a->cur;
    a->cur += n;
    return p;
}

char *pl_arena_strndup(struct pl_arena *a, const char *s, size_t n)
{
    char *p = pl_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void pl_arena_free(struct pl_arena *a)
{
    while (a->chunks) {
        struct pl_arena_chunk *c = a->chunks;
        a->chunks = c->next;
        if (c->size == CHUNK_SIZE)
            pl_slab_free(&chunk_cache, c);
        else
            free(c);
    }
    a->cur = a->end = NULL;
}
