/* HTTP header maps and message heads, independent of the wire version (HTTP/1.1 or HTTP/2).
 * Names are stored lower-case (codecs lower-case them on the way in, as Envoy does), so lookups
 * compare bytes. Strings point into the received bytes or into the stream's arena. */
#ifndef PL_HTTP_HEADERS_H
#define PL_HTTP_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

struct pl_header {
    const char *name;
    const char *value;
    uint32_t name_len, value_len;
};

/* An ordered list of header fields; repeated names are kept as separate entries. */
struct pl_headers {
    struct pl_header *v;
    uint32_t n, cap;
};

/* A request or response head. Requests use method/scheme/authority/path (HTTP/2 pseudo-headers;
 * HTTP/1 codecs fill them from the request line and Host); responses use status. */
struct pl_http_head {
    const char *method, *scheme, *authority, *path;
    uint32_t method_len, scheme_len, authority_len, path_len;
    const char *protocol; /* extended CONNECT / upgrade protocol ("websocket"); may be NULL */
    uint32_t protocol_len;
    int status;             /* responses */
    uint8_t version;        /* 10, 11 or 20 */
    int64_t content_length; /* -1 when unknown */
    struct pl_headers headers;
};

/* Returns the first field named name (lower-case), or NULL. */
const struct pl_header *pl_headers_get(const struct pl_headers *h, const char *name, size_t len);
/* pl_headers_add_ref when the array is full: grows it (in the arena) and appends. */
void pl_headers_add_ref_grow(struct pl_headers *h, struct pl_arena *a, const char *name,
                             size_t name_len, const char *value, size_t value_len);

/* Appends a field whose strings already live long enough (received bytes or arena). Inline:
 * every received field goes through it. */
static inline void pl_headers_add_ref(struct pl_headers *h, struct pl_arena *a, const char *name,
                                      size_t name_len, const char *value, size_t value_len)
{
    if (h->n == h->cap) {
        pl_headers_add_ref_grow(h, a, name, name_len, value, value_len);
        return;
    }
    h->v[h->n++] = (struct pl_header){name, value, (uint32_t)name_len, (uint32_t)value_len};
}
/* Appends a field, copying name (lower-cased) and value into the arena. */
void pl_headers_add_copy(struct pl_headers *h, struct pl_arena *a, const char *name,
                         size_t name_len, const char *value, size_t value_len);
/* Replaces every field named name with one field (copied into the arena). */
void pl_headers_set(struct pl_headers *h, struct pl_arena *a, const char *name, size_t name_len,
                    const char *value, size_t value_len);
/* pl_headers_set for a lower-case name that outlives the map (a string literal): the name is
 * referenced, only the value is copied. */
void pl_headers_set_ref_name(struct pl_headers *h, struct pl_arena *a, const char *lc_name,
                             size_t name_len, const char *value, size_t value_len);
/* Removes every field named name; returns how many were removed. */
size_t pl_headers_remove(struct pl_headers *h, const char *name, size_t len);
/* Writes the n bytes of src lower-cased (ASCII) to dst; dst may be src. */
void pl_header_lower(char *dst, const char *src, size_t n);
/* Returns true if name (any case) equals the lower-case literal lc of length len. */
bool pl_header_name_eq(const char *name, size_t name_len, const char *lc, size_t len);

#define PL_STRLEN(lit) (sizeof(lit) - 1)
/* pl_headers_set_ref_name with a lower-case string literal. */
#define pl_headers_set_lit(h, a, lit, v, vl)                                                       \
    pl_headers_set_ref_name((h), (a), (lit), PL_STRLEN(lit), (v), (vl))
/* pl_headers_get with a string literal. */
#define pl_headers_get_lit(h, lit) pl_headers_get((h), (lit), PL_STRLEN(lit))

#endif
