#include "core/arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct pl_arena_chunk {
    struct pl_arena_chunk *next;
    alignas(max_align_t) char data[];
};

#define CHUNK_SIZE 4096

void *pl_arena_alloc(struct pl_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (!a->cur || (size_t)(a->end - a->cur) < n) {
        size_t size = n > CHUNK_SIZE / 2 ? n : CHUNK_SIZE;
        struct pl_arena_chunk *c = pl_malloc(sizeof(*c) + size);
        c->next = a->chunks;
        a->chunks = c;
        if (size == n && a->cur) /* a large one-off: keep the current chunk's free space */
            return c->data;
        a->cur = c->data;
        a->end = c->data + size;
    }
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
        free(c);
    }
    a->cur = a->end = NULL;
}
