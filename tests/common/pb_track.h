/* For tests and fuzz targets that compare protobuf decoders: an allocator whose blocks are each
 * a malloc (so the sanitizer sees an overrun of any of them), freed together, and the wire
 * encoding of a message. Header only: the unit tests and the fuzz targets build apart. */
#ifndef PL_TESTS_PB_TRACK_H
#define PL_TESTS_PB_TRACK_H

#include <stdbool.h>
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

/* Whether a and b have the same wire encoding (two decodes of one input compared). */
static inline bool track_same(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t n1, n2;
    uint8_t *b1 = track_pack(a, &n1), *b2 = track_pack(b, &n2);
    bool same = n1 == n2 && !memcmp(b1, b2, n1);
    free(b1);
    free(b2);
    return same;
}

/* Runs fn on `rounds` mutations of orig (each one to three byte changes or a cut, from a
 * deterministic generator at *seed); returns how many fn took (returned nonzero for). */
static inline size_t pb_mutations(const uint8_t *orig, size_t len, int rounds, uint64_t *seed,
                                  int (*fn)(const uint8_t *data, size_t len))
{
    size_t n_taken = 0;
    uint8_t *b = malloc(len + 1);
    if (!b)
        abort();
    for (int round = 0; round < rounds && len; round++) {
        memcpy(b, orig, len);
        size_t n = len;
        for (int j = 0; j < 1 + round % 3 && n; j++) {
            uint64_t s = *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(s >> 33) % n;
            switch ((s >> 20) % 4) {
            case 0:
                b[at] = (uint8_t)(s >> 8);
                break;
            case 1:
                b[at] ^= (uint8_t)(1u << ((s >> 12) % 8));
                break;
            case 2:
                n = at;
                break;
            default:
                b[at] = (uint8_t)(b[at] + 1);
            }
        }
        n_taken += fn(b, n) != 0;
    }
    free(b);
    return n_taken;
}

#endif
