/* For tests and fuzz targets that compare protobuf decoders: an allocator whose blocks are each
 * a malloc (so the sanitizer sees an overrun of any of them), freed together, and the wire
 * encoding of a message. Header only: the unit tests and the fuzz targets build apart. */
#ifndef PL_TESTS_PB_TRACK_H
#define PL_TESTS_PB_TRACK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

struct track {
    void **v;
    size_t n, cap;
};

static inline void *track_alloc(void *data, size_t size)
{
    struct track *t = data;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = realloc(t->v, t->cap * sizeof(*t->v));
        if (!t->v)
            abort();
    }
    return t->v[t->n++] = malloc(size ? size : 1);
}

static inline void track_free(void *data, void *p)
{
    (void)data;
    (void)p; /* freed with the rest by track_release */
}

static inline void track_release(struct track *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
    memset(t, 0, sizeof(*t));
}

/* The wire encoding of m (caller frees). */
static inline uint8_t *track_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len + 1);
    if (!buf)
        abort();
    protobuf_c_message_pack(m, buf);
    return buf;
}

#endif
