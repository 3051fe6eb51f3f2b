#include "http/headers.h"

#include <string.h>

#include "core/err.h"

/* Upper-case ASCII letters in the bytes of x, as 0x20 in their byte (SWAR: no per-byte branches;
 * bytes >= 0x80 are left alone). ones: 0x01 in every byte of the word. */
#define UPPER_BITS(x, ones)                                                                        \
    (((((x) & (0x7f * (ones))) + (0x80 - 'A') * (ones)) ^                                          \
      (((x) & (0x7f * (ones))) + (0x80 - 'Z' - 1) * (ones))) &                                     \
     ~(x) & (0x80 * (ones))) >>                                                                    \
        2

static inline void lower8(char *dst, const char *src)
{
    uint64_t x;
    memcpy(&x, src, 8);
    x |= UPPER_BITS(x, UINT64_C(0x0101010101010101));
    memcpy(dst, &x, 8);
}

static inline void lower4(char *dst, const char *src)
{
    uint32_t x;
    memcpy(&x, src, 4);
    x |= UPPER_BITS(x, UINT32_C(0x01010101));
    memcpy(dst, &x, 4);
}

void pl_header_lower(char *dst, const char *src, size_t n)
{
    /* whole words; the last one overlaps the one before (lower-casing twice changes nothing,
     * and each word is read from src before it is written) */
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            lower8(dst + i, src + i);
        if (i < n)
            lower8(dst + n - 8, src + n - 8);
    } else if (n >= 4) {
        lower4(dst, src);
        lower4(dst + n - 4, src + n - 4);
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i] >= 'A' && src[i] <= 'Z' ? (char)(src[i] + 32) : src[i];
    }
}

/* Equal names of the same length n (lower-case bytes compared as bytes); the first byte is
 * compared inline, which rules most fields out without a call. */
static inline bool same(const char *a, const char *b, size_t n)
{
    return n == 0 || (a[0] == b[0] && !memcmp(a, b, n));
}

const struct pl_header *pl_headers_get(const struct pl_headers *h, const char *name, size_t len)
{
    for (uint32_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == len && same(h->v[i].name, name, len))
            return &h->v[i];
    return NULL;
}

static struct pl_header *grow(struct pl_headers *h, struct pl_arena *a)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        struct pl_header *v = pl_arena_alloc(a, cap * sizeof(*v));
        if (h->n)
            memcpy(v, h->v, h->n * sizeof(*v));
        h->v = v;
        h->cap = cap;
    }
    return &h->v[h->n++];
}

void pl_headers_add_ref_grow(struct pl_headers *h, struct pl_arena *a, const char *name,
                             size_t name_len, const char *value, size_t value_len)
{
    struct pl_header *f = grow(h, a);
    *f = (struct pl_header){name, value, (uint32_t)name_len, (uint32_t)value_len};
}

void pl_headers_add_copy(struct pl_headers *h, struct pl_arena *a, const char *name,
                         size_t name_len, const char *value, size_t value_len)
{
    /* one allocation: "name\0value\0" */
    char *n = pl_arena_alloc(a, name_len + value_len + 2);
    pl_header_lower(n, name, name_len);
    n[name_len] = '\0';
    char *v = n + name_len + 1;
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    pl_headers_add_ref(h, a, n, name_len, v, value_len);
}

size_t pl_headers_remove(struct pl_headers *h, const char *name, size_t len)
{
    uint32_t i = 0;
    while (i < h->n && !(h->v[i].name_len == len && same(h->v[i].name, name, len)))
        i++;
    if (i == h->n)
        return 0; /* the common case: nothing to move */
    uint32_t w = i;
    for (i++; i < h->n; i++)
        if (!(h->v[i].name_len == len && same(h->v[i].name, name, len)))
            h->v[w++] = h->v[i];
    size_t removed = h->n - w;
    h->n = w;
    return removed;
}

void pl_headers_set(struct pl_headers *h, struct pl_arena *a, const char *name, size_t name_len,
                    const char *value, size_t value_len)
{
    pl_headers_remove(h, name, name_len);
    pl_headers_add_copy(h, a, name, name_len, value, value_len);
}

void pl_headers_set_ref_name(struct pl_headers *h, struct pl_arena *a, const char *lc_name,
                             size_t name_len, const char *value, size_t value_len)
{
    pl_headers_remove(h, lc_name, name_len);
    char *v = pl_arena_alloc(a, value_len + 1);
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    pl_headers_add_ref(h, a, lc_name, name_len, v, value_len);
}

bool pl_header_name_eq(const char *name, size_t name_len, const char *lc, size_t len)
{
    if (name_len != len)
        return false;
    /* whole words lower-cased exactly (UPPER_BITS), the last one overlapping */
    if (len >= 8) {
        uint64_t a, b;
        const uint64_t ones = UINT64_C(0x0101010101010101);
        for (size_t i = 0; i + 8 < len; i += 8) {
            memcpy(&a, name + i, 8);
            memcpy(&b, lc + i, 8);
            if ((a | UPPER_BITS(a, ones)) != b)
                return false;
        }
        memcpy(&a, name + len - 8, 8);
        memcpy(&b, lc + len - 8, 8);
        return (a | UPPER_BITS(a, ones)) == b;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lc[i])
            return false;
    }
    return true;
}
