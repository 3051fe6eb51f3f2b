/* The ClientHello inspector: hellos captured from OpenSSL clients, split, re-framed, truncated
 * and corrupted; peeking over a socket leaves the bytes in place. */
#include <criterion/criterion.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls/tls.h"

struct hello {
    unsigned char *p;
    size_t n;
};

/* Captures the first flight of an OpenSSL client (its ClientHello) through a memory BIO. alpn
 * is in wire format (may be NULL). */
static struct hello capture(const char *sni, const unsigned char *alpn, size_t alpn_len,
                            int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    cr_assert(ctx);
    if (max_version)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rb, wb);
    if (sni)
        SSL_set_tlsext_host_name(ssl, sni);
    if (alpn)
        cr_assert_eq(SSL_set_alpn_protos(ssl, alpn, (unsigned)alpn_len), 0);
    cr_assert_eq(SSL_connect(ssl), -1); /* waits for the server */
    char *data;
    long n = BIO_get_mem_data(wb, &data);
    cr_assert_gt(n, 50);
    struct hello h = {pl_malloc((size_t)n), (size_t)n};
    memcpy(h.p, data, (size_t)n);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return h;
}

static const unsigned char h2_h11[] = "\x02h2\x08http/1.1";

Test(hello, sni_and_alpn_from_an_openssl_client)
{
    struct hello h = capture("api.example.com", h2_h11, sizeof(h2_h11) - 1, 0);
    struct pl_tls_hello out;
    cr_assert_eq(pl_tls_hello_parse(h.p, h.n, &out), 0);
    cr_assert_str_eq(out.sni, "api.example.com");
    cr_assert_eq(out.n_alpn, 2);
    cr_assert_str_eq(out.alpn[0], "h2");
    cr_assert_str_eq(out.alpn[1], "http/1.1");
    cr_assert_eq(out.len, h.n);
    /* trailing bytes (early data of another record) do not change the result */
    unsigned char *more = pl_malloc(h.n + 10);
    memcpy(more, h.p, h.n);
    memset(more + h.n, 0x17, 10);
    cr_assert_eq(pl_tls_hello_parse(more, h.n + 10, &out), 0);
    cr_assert_eq(out.len, h.n);
    free(more);
    free(h.p);
}

Test(hello, tls12_only_client_without_sni_or_alpn)
{
    struct hello h = capture(NULL, NULL, 0, TLS1_2_VERSION);
    struct pl_tls_hello out;
    cr_assert_eq(pl_tls_hello_parse(h.p, h.n, &out), 0);
    cr_assert_str_eq(out.sni, "");
    cr_assert_eq(out.n_alpn, 0);
    free(h.p);
}

Test(hello, every_prefix_needs_more)
{
    struct hello h = capture("a.test", h2_h11, sizeof(h2_h11) - 1, 0);
    struct pl_tls_hello out;
    for (size_t i = 0; i < h.n; i++)
        cr_assert_eq(pl_tls_hello_parse(h.p, i, &out), PL_EAGAIN, "prefix %zu", i);
    free(h.p);
}

/* Re-frames the handshake message of h into records of at most chunk bytes. */
static struct hello reframe(struct hello h, size_t chunk)
{
    size_t body = ((size_t)h.p[3] << 8) | h.p[4];
    const unsigned char *msg = h.p + 5;
    size_t records = (body + chunk - 1) / chunk;
    struct hello r = {pl_malloc(body + records * 5), 0};
    for (size_t off = 0; off < body; off += chunk) {
        size_t n = body - off < chunk ? body - off : chunk;
        unsigned char hdr[5] = {22, 3, 1, (unsigned char)(n >> 8), (unsigned char)n};
        memcpy(r.p + r.n, hdr, 5);
        memcpy(r.p + r.n + 5, msg + off, n);
        r.n += 5 + n;
    }
    return r;
}

Test(hello, hello_split_across_records)
{
    struct hello h = capture("split.example", h2_h11, sizeof(h2_h11) - 1, 0);
    size_t chunks[] = {1, 2, 3, 4, 5, 7, 100, 250};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct hello r = reframe(h, chunks[i]);
        struct pl_tls_hello out;
        cr_assert_eq(pl_tls_hello_parse(r.p, r.n, &out), 0, "chunk %zu", chunks[i]);
        cr_assert_str_eq(out.sni, "split.example");
        cr_assert_eq(out.n_alpn, 2);
        cr_assert_eq(out.len, r.n);
        cr_assert_eq(pl_tls_hello_parse(r.p, r.n - 1, &out), PL_EAGAIN);
        free(r.p);
    }
    free(h.p);
}

Test(hello, not_tls)
{
    struct pl_tls_hello out;
    cr_assert_eq(pl_tls_hello_parse("GET / HTTP/1.1\r\n", 16, &out), PL_ENOENT);
    cr_assert_eq(pl_tls_hello_parse("PRI * HTTP/2.0", 14, &out), PL_ENOENT);
    cr_assert_eq(pl_tls_hello_parse("\x16\x02", 2, &out), PL_ENOENT);
    cr_assert_eq(pl_tls_hello_parse("\x16", 1, &out), PL_EAGAIN);
    cr_assert_eq(pl_tls_hello_parse("", 0, &out), PL_EAGAIN);
    /* an SSLv2-style hello is not something we parse either */
    cr_assert_eq(pl_tls_hello_parse("\x80\x2e\x01\x03\x01", 5, &out), PL_ENOENT);
}

Test(hello, malformed_hellos)
{
    struct hello h = capture("bad.example", h2_h11, sizeof(h2_h11) - 1, 0);
    struct pl_tls_hello out;
    unsigned char *c = pl_malloc(h.n);

    memcpy(c, h.p, h.n);
    c[5] = 2; /* ServerHello */
    cr_assert_eq(pl_tls_hello_parse(c, h.n, &out), PL_EINVAL);

    memcpy(c, h.p, h.n);
    c[0] = 23; /* application data first */
    cr_assert_eq(pl_tls_hello_parse(c, h.n, &out), PL_ENOENT);

    memcpy(c, h.p, h.n);
    c[3] = 0x7f; /* record length beyond any TLS record */
    cr_assert_eq(pl_tls_hello_parse(c, h.n, &out), PL_EINVAL);

    memcpy(c, h.p, h.n);
    c[3] = 0;
    c[4] = 0; /* empty handshake record */
    cr_assert_eq(pl_tls_hello_parse(c, h.n, &out), PL_EINVAL);

    memcpy(c, h.p, h.n);
    c[6] = 0x01; /* message length of 64 KiB+: over the limit */
    cr_assert_eq(pl_tls_hello_parse(c, h.n, &out), PL_EINVAL);

    memcpy(c, h.p, h.n);
    c[5 + 4 + 2 + 32] = 33; /* session id longer than 32 */
    cr_assert_eq(pl_tls_hello_parse(c, h.n, &out), PL_EINVAL);

    /* the message claims fewer bytes than its fields need */
    memcpy(c, h.p, h.n);
    c[8] = 40;
    c[7] = 0;
    c[6] = 0;
    cr_assert_eq(pl_tls_hello_parse(c, h.n, &out), PL_EINVAL);
    cr_assert_str_eq(out.sni, ""); /* nothing half-filled on failure */

    /* flip each byte: never a crash, and a success always has a NUL-terminated SNI */
    for (size_t i = 0; i < h.n; i++) {
        memcpy(c, h.p, h.n);
        c[i] ^= 0xff;
        int rc = pl_tls_hello_parse(c, h.n, &out);
        cr_assert(rc == 0 || rc == PL_EINVAL || rc == PL_ENOENT || rc == PL_EAGAIN);
        cr_assert_lt(strlen(out.sni), sizeof(out.sni));
    }
    free(c);
    free(h.p);
}

Test(hello, many_and_long_alpn_names)
{
    unsigned char wire[1024];
    size_t n = 0;
    for (int i = 0; i < 20; i++) {
        char name[16];
        int l = snprintf(name, sizeof(name), "proto-%d", i);
        wire[n++] = (unsigned char)l;
        memcpy(wire + n, name, (size_t)l);
        n += (size_t)l;
    }
    wire[n++] = 100;
    memset(wire + n, 'x', 100);
    n += 100;
    struct hello h = capture("x.test", wire, n, 0);
    struct pl_tls_hello out;
    cr_assert_eq(pl_tls_hello_parse(h.p, h.n, &out), 0);
    cr_assert_eq(out.n_alpn, PL_TLS_HELLO_MAX_ALPN);
    cr_assert_eq(out.n_alpn_dropped, 5);
    cr_assert_str_eq(out.alpn[15], "proto-15");
    free(h.p);
}

Test(hello, long_sni)
{
    char name[254];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    for (size_t i = 60; i < sizeof(name) - 1; i += 60)
        name[i] = '.';
    struct hello h = capture(name, NULL, 0, 0);
    struct pl_tls_hello out;
    cr_assert_eq(pl_tls_hello_parse(h.p, h.n, &out), 0);
    cr_assert_str_eq(out.sni, name);
    free(h.p);
}

Test(hello, peek_leaves_the_bytes_for_the_handshake)
{
    struct hello h = capture("peek.test", h2_h11, sizeof(h2_h11) - 1, 0);
    int fds[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    struct pl_tls_hello out;
    cr_assert_eq(pl_tls_hello_peek(fds[1], &out), PL_EAGAIN); /* nothing yet */
    cr_assert_eq(write(fds[0], h.p, 20), 20);
    cr_assert_eq(pl_tls_hello_peek(fds[1], &out), PL_EAGAIN);
    cr_assert_eq(write(fds[0], h.p + 20, h.n - 20), (ssize_t)(h.n - 20));
    cr_assert_eq(pl_tls_hello_peek(fds[1], &out), 0);
    cr_assert_str_eq(out.sni, "peek.test");
    cr_assert_str_eq(out.alpn[0], "h2");
    unsigned char *back = pl_malloc(h.n);
    cr_assert_eq(read(fds[1], back, h.n), (ssize_t)h.n);
    cr_assert_eq(memcmp(back, h.p, h.n), 0);
    close(fds[0]);
    cr_assert_eq(pl_tls_hello_peek(fds[1], &out), PL_EIO); /* closed before any hello */
    close(fds[1]);
    free(back);
    free(h.p);
}

Test(hello, peek_a_hello_larger_than_the_first_look)
{
    /* one-byte records push the hello past the first peek's buffer */
    unsigned char wire[512];
    for (int i = 0; i < 10; i++) {
        wire[i * 41] = 40;
        memset(wire + i * 41 + 1, 'a' + i, 40);
    }
    struct hello h = capture("big.test", wire, 410, 0);
    struct hello r = reframe(h, 1);
    cr_assert_gt(r.n, 2048);
    int fds[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    cr_assert_eq(write(fds[0], r.p, r.n), (ssize_t)r.n);
    struct pl_tls_hello out;
    cr_assert_eq(pl_tls_hello_peek(fds[1], &out), 0);
    cr_assert_str_eq(out.sni, "big.test");
    close(fds[0]);
    close(fds[1]);
    free(r.p);
    free(h.p);
}
