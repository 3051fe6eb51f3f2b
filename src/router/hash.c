/* Route hash policies (header, cookie, source IP, query parameter) for hashing load balancers,
 * with Envoy's xxHash64 so that keys land where Envoy would put them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "router/router_internal.h"

static const uint64_t P1 = 11400714785074694791ull, P2 = 14029467366897019727ull,
                      P3 = 1609587929392839161ull, P4 = 9650029242287828579ull,
                      P5 = 2870177450012600261ull;

static uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* little-endian hosts only (x86-64, aarch64) */
}

static uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t round1(uint64_t acc, uint64_t in)
{
    return rotl(acc + in * P2, 31) * P1;
}

static uint64_t merge(uint64_t acc, uint64_t v)
{
    return (acc ^ round1(0, v)) * P1 + P4;
}

uint64_t pl_router_xxh64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        for (; p + 32 <= end; p += 32) {
            v1 = round1(v1, rd64(p));
            v2 = round1(v2, rd64(p + 8));
            v3 = round1(v3, rd64(p + 16));
            v4 = round1(v4, rd64(p + 24));
        }
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge(h, v1);
        h = merge(h, v2);
        h = merge(h, v3);
        h = merge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    for (; p + 8 <= end; p += 8)
        h = rotl(h ^ round1(0, rd64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
        h = rotl(h ^ ((uint64_t)rd32(p) * P1), 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++)
        h = rotl(h ^ (*p * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* Header values hashed in sorted order, chaining the seed (Envoy's HashUtil::xxHash64 over a
 * span), so that the order of repeated headers does not matter. */
static bool hash_header(const struct rt_hash_policy *hp, const struct pl_http_head *h,
                        uint64_t *out)
{
    const char *v;
    size_t n;
    if (hp->pseudo != PSEUDO_NONE || (hp->len == 4 && !memcmp(hp->name, "host", 4) &&
                                      !pl_headers_get(&h->headers, hp->name, hp->len))) {
        if (!pl_router_header(h, hp->pseudo, hp->name, hp->len, &v, &n))
            return false;
        *out = pl_router_xxh64(v, n, 0);
        return true;
    }
    enum { MAXV = 32 };
    const struct pl_header *vals[MAXV];
    size_t nv = 0;
    for (uint32_t i = 0; i < h->headers.n && nv < MAXV; i++) {
        const struct pl_header *f = &h->headers.v[i];
        if (f->name_len != hp->len || memcmp(f->name, hp->name, hp->len))
            continue;
        size_t k = nv++; /* insertion sort by value */
        for (; k > 0; k--) {
            const struct pl_header *o = vals[k - 1];
            size_t m = o->value_len < f->value_len ? o->value_len : f->value_len;
            int c = memcmp(o->value, f->value, m);
            if (c < 0 || (c == 0 && o->value_len <= f->value_len))
                break;
            vals[k] = o;
        }
        vals[k] = f;
    }
    if (!nv)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < nv; i++)
        x = pl_router_xxh64(vals[i]->value, vals[i]->value_len, x);
    *out = x;
    return true;
}

/* Envoy's Utility::parseCookieValue: the first cookie named name across Cookie headers. */
static bool cookie_value(const struct pl_http_head *h, const char *name, size_t nlen,
                         const char **v, size_t *vlen)
{
    for (uint32_t i = 0; i < h->headers.n; i++) {
        const struct pl_header *f = &h->headers.v[i];
        if (f->name_len != 6 || memcmp(f->name, "cookie", 6))
            continue;
        const char *p = f->value, *end = f->value + f->value_len;
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *e = semi ? semi : end;
            while (p < e && (*p == ' ' || *p == '\t'))
                p++;
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (eq && (size_t)(eq - p) == nlen && !memcmp(p, name, nlen)) {
                const char *s = eq + 1;
                size_t n = (size_t)(e - s);
                if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
                    s++, n -= 2;
                *v = s, *vlen = n;
                return true;
            }
            p = e + 1;
        }
    }
    return false;
}

static bool source_ip(const struct pl_route_ctx *ctx, uint64_t *out)
{
    char ip[INET6_ADDRSTRLEN];
    const struct sockaddr *sa = ctx->peer;
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
    else
        return false;
    *out = pl_router_xxh64(ip, strlen(ip), 0);
    return true;
}

bool pl_router_hash(const struct pl_route_match *m, const struct pl_http_head *head,
                    const struct pl_route_ctx *ctx, uint64_t *hash)
{
    if (!m->route)
        return false;
    bool have = false;
    uint64_t acc = 0;
    const struct rt_route_x *x = m->route->x;
    for (size_t i = 0; x && i < x->nhp; i++) {
        const struct rt_hash_policy *hp = &x->hp[i];
        uint64_t v = 0;
        const char *s;
        size_t n;
        bool got = false;
        switch (hp->kind) {
        case HP_HEADER:
            got = hash_header(hp, head, &v);
            break;
        case HP_COOKIE:
            if ((got = cookie_value(head, hp->name, hp->len, &s, &n)))
                v = pl_router_xxh64(s, n, 0);
            break;
        case HP_SOURCE_IP:
            got = source_ip(ctx, &v);
            break;
        case HP_QUERY:
            if ((got = head->path && pl_router_query_param(head->path, head->path_len, hp->name,
                                                           hp->len, false, &s, &n)))
                v = pl_router_xxh64(s, n, 0);
            break;
        default:
            break;
        }
        if (got) {
            /* rotating the old value keeps duplicate policies from cancelling out (Envoy) */
            acc = (have ? rotl(acc, 1) : 0) ^ v;
            have = true;
        }
        if (hp->terminal && have)
            break;
    }
    if (have)
        *hash = acc;
    return have;
}
