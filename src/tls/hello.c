/* ClientHello inspection without consuming (Envoy's tls_inspector): a small bounded parser of
 * the TLS records that carry the first handshake message, for SNI and ALPN. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tls/tls.h"

#define REC_HANDSHAKE   22
#define HS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define EXT_ALPN        16
#define MAX_RECORD_BODY (16384 + 2048) /* TLSCiphertext limit; a plaintext hello is smaller */
#define PEEK_FIRST      2048           /* most hellos fit; larger ones are peeked again */

/* A bounds-checked reader over bytes. */
struct rd {
    const uint8_t *p;
    size_t n;
    bool bad;
};

static uint32_t get(struct rd *r, size_t bytes)
{
    if (r->bad || r->n < bytes) {
        r->bad = true;
        return 0;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v = (v << 8) | r->p[i];
    r->p += bytes;
    r->n -= bytes;
    return v;
}

/* Splits off the next len bytes as a sub-reader. */
static struct rd sub(struct rd *r, size_t len)
{
    struct rd s = {r->p, len, r->bad || r->n < len};
    if (s.bad) {
        r->bad = true;
        s.n = 0;
        return s;
    }
    r->p += len;
    r->n -= len;
    return s;
}

static int parse_sni(struct rd e, struct pl_tls_hello *out)
{
    struct rd list = sub(&e, get(&e, 2));
    if (e.bad || e.n)
        return PL_EINVAL;
    while (list.n && !list.bad) {
        uint32_t type = get(&list, 1);
        struct rd name = sub(&list, get(&list, 2));
        if (list.bad)
            return PL_EINVAL;
        if (type != 0 || out->sni[0]) /* the first host_name counts, as in BoringSSL */
            continue;
        if (name.n == 0 || name.n >= sizeof(out->sni) || memchr(name.p, '\0', name.n))
            return PL_EINVAL;
        memcpy(out->sni, name.p, name.n);
        out->sni[name.n] = '\0';
    }
    return list.bad ? PL_EINVAL : 0;
}

static int parse_alpn(struct rd e, struct pl_tls_hello *out)
{
    struct rd list = sub(&e, get(&e, 2));
    if (e.bad || e.n || list.n == 0)
        return PL_EINVAL;
    while (list.n && !list.bad) {
        struct rd name = sub(&list, get(&list, 1));
        if (list.bad || name.n == 0)
            return PL_EINVAL;
        if (out->n_alpn == PL_TLS_HELLO_MAX_ALPN || name.n >= PL_TLS_HELLO_ALPN_LEN ||
            memchr(name.p, '\0', name.n)) {
            out->n_alpn_dropped++;
            continue;
        }
        memcpy(out->alpn[out->n_alpn], name.p, name.n);
        out->alpn[out->n_alpn++][name.n] = '\0';
    }
    return list.bad ? PL_EINVAL : 0;
}

/* Parses a complete ClientHello handshake body. */
static int parse_body(struct rd b, struct pl_tls_hello *out)
{
    uint32_t ver = get(&b, 2);
    sub(&b, 32); /* random */
    size_t sid = get(&b, 1);
    if (sid > 32)
        return PL_EINVAL;
    sub(&b, sid);
    size_t cs = get(&b, 2);
    if (cs < 2 || cs % 2)
        return PL_EINVAL;
    sub(&b, cs);
    size_t comp = get(&b, 1);
    if (comp < 1)
        return PL_EINVAL;
    sub(&b, comp);
    if (b.bad || (ver >> 8) != 3)
        return PL_EINVAL;
    if (b.n == 0) /* no extensions: no SNI, no ALPN */
        return 0;
    struct rd exts = sub(&b, get(&b, 2));
    if (b.bad || b.n)
        return PL_EINVAL;
    bool seen_sni = false, seen_alpn = false;
    while (exts.n && !exts.bad) {
        uint32_t type = get(&exts, 2);
        struct rd e = sub(&exts, get(&exts, 2));
        if (exts.bad)
            return PL_EINVAL;
        int rc = 0;
        if (type == EXT_SERVER_NAME) {
            if (seen_sni)
                return PL_EINVAL; /* duplicate extensions are illegal */
            seen_sni = true;
            rc = parse_sni(e, out);
        } else if (type == EXT_ALPN) {
            if (seen_alpn)
                return PL_EINVAL;
            seen_alpn = true;
            rc = parse_alpn(e, out);
        }
        if (rc)
            return rc;
    }
    return exts.bad ? PL_EINVAL : 0;
}

int pl_tls_hello_parse(const void *data, size_t len, struct pl_tls_hello *out)
{
    memset(out, 0, sizeof(*out));
    const uint8_t *p = data;
    /* not TLS as soon as the first bytes say so: a handshake record of a TLS 1.x version */
    if (len >= 1 && p[0] != REC_HANDSHAKE)
        return PL_ENOENT;
    if (len >= 2 && p[1] != 3)
        return PL_ENOENT;
    /* The hello may span records: the first handshake bytes give its length; gather its body
     * from consecutive handshake records. Usually it is all in the first one (no copy). */
    uint8_t *joined = NULL;
    size_t have = 0, need = 0, off = 0;
    const uint8_t *msg = NULL;
    int rc = PL_EAGAIN;
    while (off + 5 <= len) {
        const uint8_t *rec = p + off;
        size_t rlen = ((size_t)rec[3] << 8) | rec[4];
        if (rec[0] != REC_HANDSHAKE || rec[1] != 3 || rlen == 0 || rlen > MAX_RECORD_BODY) {
            rc = off == 0 && (rec[0] != REC_HANDSHAKE || rec[1] != 3) ? PL_ENOENT : PL_EINVAL;
            goto out;
        }
        if (off + 5 + rlen > len)
            break; /* the rest of this record has not arrived */
        if (off == 0 && rlen >= 4) {
            need = 4 + (((size_t)rec[6] << 16) | ((size_t)rec[7] << 8) | rec[8]);
            if (rec[5] != HS_CLIENT_HELLO) {
                rc = PL_EINVAL;
                goto out;
            }
            if (need > PL_TLS_HELLO_MAX_BYTES) {
                rc = PL_EINVAL;
                goto out;
            }
            if (rlen >= need) { /* whole message in the first record */
                msg = rec + 5;
                have = need;
                off += 5 + rlen;
                break;
            }
        }
        if (!joined) {
            joined = malloc(PL_TLS_HELLO_MAX_BYTES + 4);
            if (!joined)
                pl_die("out of memory");
        }
        if (have + rlen > PL_TLS_HELLO_MAX_BYTES + 4) {
            rc = PL_EINVAL;
            goto out;
        }
        memcpy(joined + have, rec + 5, rlen);
        have += rlen;
        off += 5 + rlen;
        if (!need && have >= 4) { /* the header itself was split across records */
            if (joined[0] != HS_CLIENT_HELLO) {
                rc = PL_EINVAL;
                goto out;
            }
            need = 4 + (((size_t)joined[1] << 16) | ((size_t)joined[2] << 8) | joined[3]);
            if (need > PL_TLS_HELLO_MAX_BYTES) {
                rc = PL_EINVAL;
                goto out;
            }
        }
        if (need && have >= need) {
            msg = joined;
            break;
        }
    }
    if (!msg)
        goto out;
    /* bytes of the last record past the hello would be later handshake messages, which a
     * client does not send before the server answers; the handshake itself rejects them */
    struct rd body = {msg + 4, need - 4, false};
    rc = parse_body(body, out);
    if (rc == 0)
        out->len = off;
out:
    free(joined);
    if (rc != 0) {
        struct pl_tls_hello zero = {0};
        *out = zero;
    }
    return rc;
}

int pl_tls_hello_peek(int fd, struct pl_tls_hello *out)
{
    uint8_t first[PEEK_FIRST];
    ssize_t n = recv(fd, first, sizeof(first), MSG_PEEK);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PL_EAGAIN : PL_EIO;
    if (n == 0)
        return PL_EIO;
    int rc = pl_tls_hello_parse(first, (size_t)n, out);
    if (rc != PL_EAGAIN || (size_t)n < sizeof(first))
        return rc;
    /* a large hello (many ciphers, post-quantum key shares): look at more of it */
    size_t cap = PL_TLS_HELLO_MAX_BYTES + 5 * 8;
    uint8_t *big = pl_malloc(cap);
    n = recv(fd, big, cap, MSG_PEEK);
    if (n <= 0)
        rc = n == 0 ? PL_EIO : PL_EAGAIN;
    else
        rc = pl_tls_hello_parse(big, (size_t)n, out);
    if (rc == PL_EAGAIN && (size_t)n == cap)
        rc = PL_EINVAL;
    free(big);
    return rc;
}
