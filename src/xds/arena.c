/* Memory for decoded xDS messages that live as long as one response (see xds_internal.h). */
#include <stdlib.h>
#include <sys/mman.h>

#include "core/hugeheap.h"
#include "core/log.h"
#include "xds/xds_internal.h"

/* Chunks are mapped and unmapped directly: glibc would serve them from the heap once its
 * dynamic mmap threshold has risen past their size, and a heap that held a 10,000-cluster
 * response keeps those pages (RSS) after it is freed.
 *
 * The first chunk of a response is small (most responses are); the next ones are 2 MiB aligned
 * and asked for as transparent huge pages. A response of 10,000 assignments decodes into some
 * 30 MB: as 4 KiB pages that is 7,500 page faults, which on a virtual machine cost 5 to 30 µs
 * each (most of the time such an update took), against 15 faults of 2 MiB. The memory is only
 * ever as large as what the response needs and is unmapped with it. */
#define FIRST (256u << 10)

struct pl_xds_chunk {
    struct pl_xds_chunk *next;
    size_t used, size; /* size: the whole mapping */
    max_align_t data[];
};

static void *arena_alloc(void *data, size_t size)
{
    struct pl_xds_chunk **head = data;
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (!size)
        size = sizeof(max_align_t);
    struct pl_xds_chunk *c = *head;
    if (!c || c->size - c->used < size) {
        size_t need = sizeof(*c) + size, map;
        if (!c && need <= FIRST) {
            map = FIRST;
            c = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        } else {
            map = (need + PL_HUGEHEAP_PAGE - 1) & ~(size_t)(PL_HUGEHEAP_PAGE - 1);
            c = pl_hugeheap_map(map);
        }
        if (!c || c == MAP_FAILED)
            pl_die("out of memory (xds arena, %zu bytes)", map);
        c->used = sizeof(*c);
        c->size = map;
        c->next = *head;
        *head = c;
    }
    void *p = (char *)c + c->used;
    c->used += size;
    return p;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

ProtobufCAllocator pl_xds_arena_allocator(struct pl_xds_chunk **head)
{
    return (ProtobufCAllocator){.alloc = arena_alloc, .free = arena_free, .allocator_data = head};
}

void pl_xds_arena_release(struct pl_xds_chunk **head)
{
    while (*head) {
        struct pl_xds_chunk *c = *head;
        *head = c->next;
        munmap(c, c->size);
    }
}
