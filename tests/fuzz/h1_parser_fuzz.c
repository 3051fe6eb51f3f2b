/* libFuzzer target for the HTTP/1.1 parser. The first byte picks requests or responses, the
 * method of the request a response answers and small or default limits; the second seeds the
 * split points. The rest is parsed twice, all at once and in random pieces, and both runs must
 * agree. Invariants: consumed <= len, every slice lies inside the buffer, values are trimmed and
 * free of CR/LF. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1_parser.h"

#define MAXH 32

struct result {
    int err;
    int msgs;
    uint64_t hash; /* over bodies, targets, statuses and header slices */
};

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static void inside(const char *buf, size_t len, const char *s, size_t n)
{
    if (n == 0)
        return;
    CHECK(s >= buf && s + n <= buf + len);
}

static void check_headers(const char *buf, size_t len, const struct pl_h1_header *h, size_t n,
                          uint64_t *hash)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(h[i].name_len > 0);
        inside(buf, len, h[i].name, h[i].name_len);
        inside(buf, len, h[i].value, h[i].value_len);
        for (size_t k = 0; k < h[i].value_len; k++)
            CHECK(h[i].value[k] != '\r' && h[i].value[k] != '\n');
        if (h[i].value_len) {
            CHECK(h[i].value[0] != ' ' && h[i].value[0] != '\t');
            CHECK(h[i].value[h[i].value_len - 1] != ' ' && h[i].value[h[i].value_len - 1] != '\t');
        }
        *hash = mix(*hash, h[i].name, h[i].name_len);
        *hash = mix(*hash, ":", 1);
        *hash = mix(*hash, h[i].value, h[i].value_len);
        *hash = mix(*hash, "\n", 1);
    }
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void run(uint8_t mode, const char *in, size_t len, uint32_t seed, struct result *res)
{
    static const char *methods[] = {"GET", "HEAD", "CONNECT", "POST"};
    struct pl_h1_config small = {.max_header_bytes = 256, .max_headers = 6};
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, (mode & 1) ? PL_H1_RESPONSE : PL_H1_REQUEST, (mode & 8) ? &small : NULL);
    const char *m = methods[(mode >> 1) & 3];
    pl_h1_parser_set_request(&p, m, strlen(m));
    char *buf = malloc(len + 1);
    struct pl_h1_header hdrs[MAXH], trl[MAXH];
    size_t have = 0, fed = 0;
    int in_body = 0;
    memset(res, 0, sizeof(*res));
    res->hash = 14695981039346656037ULL;
    for (;;) {
        size_t add = seed ? 1 + rnd(&seed) % 17 : len;
        if (add > len - fed)
            add = len - fed;
        memcpy(buf + have, in + fed, add);
        have += add;
        fed += add;
        for (;;) {
            if (!in_body) {
                if (have == 0)
                    break;
                struct pl_h1_msg msg = {.headers = hdrs, .headers_cap = MAXH};
                int r = pl_h1_parse_head(&p, buf, have, &msg);
                if (r == PL_EAGAIN)
                    break;
                if (r < 0) {
                    CHECK(pl_h1_error_status(r) >= 400);
                    res->err = r;
                    goto out;
                }
                CHECK((size_t)r <= have);
                CHECK(msg.num_headers <= MAXH);
                inside(buf, r, msg.method, msg.method_len);
                inside(buf, r, msg.target, msg.target_len);
                inside(buf, r, msg.reason, msg.reason_len);
                check_headers(buf, r, hdrs, msg.num_headers, &res->hash);
                res->hash = mix(res->hash, msg.target ? msg.target : "", msg.target_len);
                res->hash = mix(res->hash, &msg.status, sizeof(msg.status));
                res->hash = mix(res->hash, &msg.body, sizeof(msg.body));
                if (msg.upgrade || msg.connect) {
                    res->msgs++;
                    goto out; /* the rest is another protocol */
                }
                memmove(buf, buf + r, have - r);
                have -= r;
                in_body = 1;
            }
            struct pl_h1_body b = {.trailers = trl, .trailers_cap = MAXH};
            int r = pl_h1_parse_body(&p, buf, have, &b);
            if (r < 0) {
                res->err = r;
                goto out;
            }
            CHECK((size_t)r <= have);
            inside(buf, have, b.data, b.len);
            CHECK(b.len <= (size_t)r);
            res->hash = mix(res->hash, b.data, b.len);
            if (b.done) {
                res->hash = mix(res->hash, "|", 1);
                check_headers(buf, have, trl, b.num_trailers, &res->hash);
                res->msgs++;
                in_body = 0;
            }
            memmove(buf, buf + r, have - r);
            have -= r;
            if (b.done)
                continue;
            if (r == 0 || have == 0)
                break;
        }
        if (fed == len)
            break;
    }
    if (pl_h1_parse_eof(&p, have) == 0 && in_body)
        res->msgs++;
out:
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    uint32_t seed = data[1] | 0x100u;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    struct result whole, split;
    run(mode, in, len, 0, &whole);
    run(mode, in, len, seed, &split);
    CHECK(whole.err == split.err);
    CHECK(whole.msgs == split.msgs);
    CHECK(whole.hash == split.hash);
    return 0;
}
