/* libFuzzer target for the ClientHello inspector (pl_tls_hello_parse). Invariants: the result
 * is one of the documented codes; a failure leaves the output zeroed; a success has a
 * NUL-terminated SNI and ALPN names, counts within bounds, a length within the input, and the
 * same result when parsed from exactly that many bytes, while one byte less needs more. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int zeroed(const struct pl_tls_hello *h)
{
    static const struct pl_tls_hello zero;
    return memcmp(h, &zero, sizeof(zero)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes, so ASan catches any read past the end */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    static struct pl_tls_hello h, again;
    int rc = pl_tls_hello_parse(buf, size, &h);
    CHECK(rc == 0 || rc == PL_EAGAIN || rc == PL_ENOENT || rc == PL_EINVAL);
    if (rc != 0) {
        CHECK(zeroed(&h));
        free(buf);
        return 0;
    }
    CHECK(memchr(h.sni, '\0', sizeof(h.sni)) != NULL);
    CHECK(h.n_alpn <= PL_TLS_HELLO_MAX_ALPN);
    for (size_t i = 0; i < h.n_alpn; i++) {
        CHECK(memchr(h.alpn[i], '\0', PL_TLS_HELLO_ALPN_LEN) != NULL);
        CHECK(h.alpn[i][0] != '\0');
    }
    CHECK(h.len >= 5 + 4 && h.len <= size);
    CHECK(pl_tls_hello_parse(buf, h.len, &again) == 0);
    CHECK(memcmp(&h, &again, sizeof(h)) == 0);
    CHECK(pl_tls_hello_parse(buf, h.len - 1, &again) == PL_EAGAIN);
    free(buf);
    return 0;
}
