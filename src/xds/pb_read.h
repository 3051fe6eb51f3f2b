/* Private to src/xds: a reader of protobuf wire bytes for the direct decoders of common resource
 * shapes. Each helper returns false on anything a decoder declines (a malformed or non-minimal
 * encoding, a wire type it does not take), and the decoder then leaves the bytes to protobuf-c. */
#ifndef PL_XDS_PB_READ_H
#define PL_XDS_PB_READ_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

struct pl_pbr {
    const uint8_t *p, *end;
};

/* A varint of at most max bytes (a longer one declines). */
static inline bool pl_pbr_varint(struct pl_pbr *r, int max, uint64_t *v)
{
    if (r->p < r->end && *r->p < 0x80) { /* tags, lengths and most values: one byte */
        *v = *r->p++;
        return true;
    }
    uint64_t x = 0;
    for (int i = 0; i < max && r->p < r->end; i++) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* The next field: its number and wire type; false at the end or on an odd tag. */
static inline bool pl_pbr_tag(struct pl_pbr *r, uint32_t *num, uint32_t *wt)
{
    uint64_t t;
    if (!pl_pbr_varint(r, 5, &t) || t > UINT32_MAX || (t >> 3) == 0)
        return false;
    *num = (uint32_t)(t >> 3);
    *wt = (uint32_t)(t & 7);
    return true;
}

/* A length-delimited field's payload (after its tag). */
static inline bool pl_pbr_sub(struct pl_pbr *r, uint32_t wt, struct pl_pbr *out)
{
    uint64_t n;
    if (wt != 2 || !pl_pbr_varint(r, 5, &n) || n > (uint64_t)(r->end - r->p))
        return false;
    out->p = r->p;
    out->end = r->p + n;
    r->p += n;
    return true;
}

/* A uint32 (or an enum's non-negative value, or a bool's 0 or 1) as protobuf-c reads it. */
static inline bool pl_pbr_u32(struct pl_pbr *r, uint32_t wt, uint32_t *v)
{
    uint64_t x;
    if (wt != 0 || !pl_pbr_varint(r, 5, &x) || x > UINT32_MAX)
        return false;
    *v = (uint32_t)x;
    return true;
}

/* n bytes from a (the decoders' allocations all go to the caller's allocator). */
static inline void *pl_pbr_alloc(ProtobufCAllocator *a, size_t n)
{
    return a->alloc(a->allocator_data, n);
}

/* Room for the n elements of a repeated field, stored at out (a pointer to the message's
 * array pointer); none: NULL, as protobuf-c leaves it. */
static inline bool pl_pbr_array(ProtobufCAllocator *a, size_t n, size_t size, void *out)
{
    void *v = NULL;
    if (n && !(v = pl_pbr_alloc(a, n * size)))
        return false;
    memcpy(out, &v, sizeof(v));
    return true;
}

/* In a field loop with a local `unsigned seen`: a field seen twice declines (protobuf-c would
 * keep the last, or merge messages). */
#define PL_PBR_ONCE(bit)                                                                           \
    do {                                                                                           \
        if (seen & (1u << (bit)))                                                                  \
            return false;                                                                          \
        seen |= 1u << (bit);                                                                       \
    } while (0)

/* How many fields numbered want r holds (false on a malformed encoding or a fixed-width field,
 * which no direct decoder takes). */
static inline bool pl_pbr_count(struct pl_pbr r, uint32_t want, size_t *n)
{
    uint32_t num, wt;
    uint64_t v;
    *n = 0;
    while (r.p < r.end) {
        if (!pl_pbr_tag(&r, &num, &wt))
            return false;
        if (wt == 0) {
            if (!pl_pbr_varint(&r, 10, &v))
                return false;
        } else {
            struct pl_pbr s;
            if (!pl_pbr_sub(&r, wt, &s))
                return false;
        }
        *n += num == want;
    }
    return true;
}

#define PL_PBR_ONES  0x0101010101010101ULL
#define PL_PBR_HIGHS 0x8080808080808080ULL

/* A string field of ASCII without NUL, copied into a's memory (anything else: protobuf-c's own
 * UTF-8 and NUL rules decide). Eight bytes at a time: (w - ONES) | w has a high bit set exactly
 * where a byte of w is 0 or has its own high bit set (a borrow only ever starts at a zero
 * byte). */
static inline bool pl_pbr_str(struct pl_pbr *r, uint32_t wt, ProtobufCAllocator *a, char **out)
{
    struct pl_pbr s;
    if (!pl_pbr_sub(r, wt, &s))
        return false;
    size_t n = (size_t)(s.end - s.p), i = 0;
    char *c = pl_pbr_alloc(a, n + 1);
    if (!c)
        return false;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s.p + i, 8);
        if (((w - PL_PBR_ONES) | w) & PL_PBR_HIGHS)
            return false;
        memcpy(c + i, &w, 8);
    }
    for (; i < n; i++) {
        if (s.p[i] == 0 || s.p[i] >= 0x80)
            return false;
        c[i] = (char)s.p[i];
    }
    c[n] = '\0';
    *out = c;
    return true;
}

#endif
