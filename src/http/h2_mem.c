/* nghttp2's allocator for the HTTP/2 codec: per-thread caches of a few block sizes (core/slab.h),
 * so the streams, queued frames, header copies and HPACK strings nghttp2 allocates for every
 * request come from a free list instead of malloc. nghttp2 frees without a size, so each block
 * starts with a 16-byte header naming its size class (keeping malloc's 16-byte alignment). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/slab.h"
#include "http/h2_codec_internal.h"

#define HDR       16u
#define N_CLASSES 6u
#define LARGE     0xffu /* above the largest class: plain malloc */
#define SHARED    0xfeu /* the thread's shared frame buffer: never freed */

/* nghttp2 keeps one frame buffer of NGHTTP2_FRAMEBUF_CHUNKLEN (frame header, pad length, 16 KiB
 * payload) per session for its whole life, 16 KiB of every idle connection. Frames are
 * serialized into it only inside nghttp2_session_send, and h2_codec.c's send callback copies
 * each one out before nghttp2 runs any other callback; nothing is written into it when a server
 * session is created (a client session writes its preface there). So the server sessions of a
 * thread share one: the allocation pl_h2_codec_new asks for while sharing is on is this. */
#define FRAMEBUF_LEN (9u + 1u + 16384u)

static __thread bool share_next;
static __thread _Alignas(16) char framebuf[HDR + FRAMEBUF_LEN];

struct hdr {
    uint32_t cls;
    uint32_t size; /* LARGE: the payload size asked for */
};

/* payload sizes 64 .. 2048 */
static __thread struct pl_slab classes[N_CLASSES] = {
    PL_SLAB_INIT(HDR + 64, 1024), PL_SLAB_INIT(HDR + 128, 1024), PL_SLAB_INIT(HDR + 256, 512),
    PL_SLAB_INIT(HDR + 512, 256), PL_SLAB_INIT(HDR + 1024, 128), PL_SLAB_INIT(HDR + 2048, 64),
};

static uint32_t class_of(size_t size)
{
    if (size <= 64)
        return 0;
    if (size > 2048)
        return LARGE;
    /* 65..128 -> 1, ..., 1025..2048 -> 5 */
    return (uint32_t)(64 - __builtin_clzll((unsigned long long)(size - 1))) - 6;
}

static size_t class_size(uint32_t cls)
{
    return (size_t)64 << cls;
}

static void *mem_malloc(size_t size, void *ud)
{
    (void)ud;
    uint32_t cls = class_of(size);
    struct hdr *h;
    if (share_next && size == FRAMEBUF_LEN) {
        share_next = false;
        h = (struct hdr *)(void *)framebuf;
        cls = SHARED;
    } else if (cls == LARGE) {
        if (size > SIZE_MAX - HDR)
            return NULL;
        h = pl_malloc(HDR + size);
        h->size = (uint32_t)(size > UINT32_MAX ? UINT32_MAX : size);
    } else {
        h = pl_slab_alloc(&classes[cls]);
    }
    h->cls = cls;
    return (char *)h + HDR;
}

static void mem_free(void *p, void *ud)
{
    (void)ud;
    if (!p)
        return;
    struct hdr *h = (struct hdr *)((char *)p - HDR);
    if (h->cls == SHARED)
        return;
    if (h->cls == LARGE)
        free(h);
    else
        pl_slab_free(&classes[h->cls], h);
}

static void *mem_calloc(size_t n, size_t size, void *ud)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = mem_malloc(n * size, ud);
    memset(p, 0, n * size);
    return p;
}

static void *mem_realloc(void *p, size_t size, void *ud)
{
    if (!p)
        return mem_malloc(size, ud);
    struct hdr *h = (struct hdr *)((char *)p - HDR);
    if (h->cls == SHARED) { /* a larger max frame size: the session gets its own */
        void *q = mem_malloc(size, ud);
        memcpy(q, p, size < FRAMEBUF_LEN ? size : FRAMEBUF_LEN);
        return q;
    }
    if (h->cls == LARGE && class_of(size) == LARGE) {
        h = pl_realloc(h, HDR + size);
        h->size = (uint32_t)(size > UINT32_MAX ? UINT32_MAX : size);
        return (char *)h + HDR;
    }
    size_t have = h->cls == LARGE ? h->size : class_size(h->cls);
    if (h->cls != LARGE && size <= have)
        return p;
    void *q = mem_malloc(size, ud);
    memcpy(q, p, have < size ? have : size);
    mem_free(p, ud);
    return q;
}

static nghttp2_mem h2_mem = {
    .mem_user_data = NULL,
    .malloc = mem_malloc,
    .free = mem_free,
    .calloc = mem_calloc,
    .realloc = mem_realloc,
};

void pl_h2_mem_share_framebuf(bool on)
{
    share_next = on;
}

nghttp2_mem *pl_h2_mem(void)
{
    return &h2_mem;
}
