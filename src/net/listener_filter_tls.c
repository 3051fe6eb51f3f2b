/* envoy.filters.listener.tls_inspector: peeks at the first bytes of a connection (nothing is
 * consumed) for a TLS ClientHello; sets the transport protocol "tls", the SNI and the client's
 * ALPN list. Stats are Envoy's, rooted at tls_inspector. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "net/listener_filter.h"
#include "pl_proto_all.h"

#define TLSI_T Envoy__Extensions__Filters__Listener__TlsInspector__V3__TlsInspector

/* Envoy reads at most 64 KiB of ClientHello; a few record headers more fit the parser's view. */
#define PEEK_MAX (PL_TLS_HELLO_MAX_BYTES + 5 * 8)

/* Stats handles stay unset (NULL store) until prepare: count nowhere then. */
static void count(struct pl_counter c)
{
    if (c.store)
        pl_counter_inc(c);
}

static void hist_record(struct pl_histogram h, uint64_t v)
{
    if (h.store)
        pl_histogram_record(h, v);
}

struct tlsi_cfg {
    struct pl_counter client_hello_too_large, tls_found, tls_not_found, alpn_found, alpn_not_found,
        sni_found, sni_not_found;
    struct pl_histogram bytes_processed;
};

static int tlsi_compile(const ProtobufCMessage *config, void **out, struct pl_err *err)
{
    const TLSI_T *c = (const TLSI_T *)config;
    if (c->enable_ja3_fingerprinting && c->enable_ja3_fingerprinting->value)
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "enable_ja3_fingerprinting is not supported by pillion");
    /* initial_read_buffer_size only sizes Envoy's first read; the peek here takes what is
     * there, so it changes nothing but its range is checked as Envoy does */
    if (c->initial_read_buffer_size &&
        (c->initial_read_buffer_size->value < 256 || c->initial_read_buffer_size->value > 65536))
        return pl_err_add(err, NULL, 0, 0, NULL,
                          "initial_read_buffer_size must be in 256..65536 (got %u)",
                          c->initial_read_buffer_size->value);
    *out = pl_calloc(1, sizeof(struct tlsi_cfg));
    return 0;
}

static void tlsi_free(void *cfg)
{
    free(cfg);
}

static void tlsi_prepare(void *cfg, struct pl_stats *stats)
{
    struct tlsi_cfg *c = cfg;
    c->client_hello_too_large = pl_stats_counter(stats, "tls_inspector.client_hello_too_large");
    c->tls_found = pl_stats_counter(stats, "tls_inspector.tls_found");
    c->tls_not_found = pl_stats_counter(stats, "tls_inspector.tls_not_found");
    c->alpn_found = pl_stats_counter(stats, "tls_inspector.alpn_found");
    c->alpn_not_found = pl_stats_counter(stats, "tls_inspector.alpn_not_found");
    c->sni_found = pl_stats_counter(stats, "tls_inspector.sni_found");
    c->sni_not_found = pl_stats_counter(stats, "tls_inspector.sni_not_found");
    c->bytes_processed = pl_stats_histogram(stats, "tls_inspector.bytes_processed");
}

/* True when the first record starts a ClientHello whose declared length is over the limit (the
 * parser says EINVAL for that and for malformed hellos; Envoy counts the two apart). */
static bool declared_too_large(const uint8_t *p, size_t n)
{
    if (n < 9 || p[0] != 22 || p[1] != 3 || p[5] != 1)
        return false;
    size_t len = ((size_t)p[6] << 16) | ((size_t)p[7] << 8) | p[8];
    return len + 4 > PL_TLS_HELLO_MAX_BYTES;
}

static void found(struct tlsi_cfg *c, struct pl_listener_socket *s, const struct pl_tls_hello *h)
{
    count(c->tls_found);
    s->transport_protocol = "tls";
    snprintf(s->server_name, sizeof(s->server_name), "%s", h->sni);
    count(*s->server_name ? c->sni_found : c->sni_not_found);
    s->n_alpn = h->n_alpn;
    memcpy(s->alpn, h->alpn, sizeof(s->alpn));
    count(h->n_alpn ? c->alpn_found : c->alpn_not_found);
}

static enum pl_lf_status tlsi_on_accept(void *cfg, struct pl_listener_socket *s)
{
    struct tlsi_cfg *c = cfg;
    /* one peek buffer per thread: peeking is synchronous and a hello is parsed at once */
    static _Thread_local uint8_t buf[PEEK_MAX];
    ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_PEEK);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return PL_LF_WAIT; /* s->peeked unchanged */
        return errno == ECONNRESET ? PL_LF_REMOTE_CLOSE : PL_LF_CLOSE;
    }
    if (n == 0)
        return PL_LF_REMOTE_CLOSE;
    struct pl_tls_hello hello;
    int rc = pl_tls_hello_parse(buf, (size_t)n, &hello);
    switch (rc) {
    case 0:
        found(c, s, &hello);
        hist_record(c->bytes_processed, hello.len);
        return PL_LF_CONTINUE;
    case PL_EAGAIN:
        if ((size_t)n >= sizeof(buf)) {
            count(c->client_hello_too_large);
            return PL_LF_CLOSE;
        }
        s->peeked = (size_t)n;
        return PL_LF_WAIT;
    case PL_EINVAL:
        if (declared_too_large(buf, (size_t)n)) {
            count(c->client_hello_too_large);
            return PL_LF_CLOSE;
        }
        /* a malformed hello is "not TLS", as Envoy's parse failure */
        __attribute__((fallthrough));
    default:
        count(c->tls_not_found);
        hist_record(c->bytes_processed, (uint64_t)n);
        return PL_LF_CONTINUE;
    }
}

const struct pl_listener_filter_vtable pl_lf_tls_inspector = {
    .name = "envoy.filters.listener.tls_inspector",
    .config = &envoy__extensions__filters__listener__tls_inspector__v3__tls_inspector__descriptor,
    .compile = tlsi_compile,
    .free_cfg = tlsi_free,
    .prepare = tlsi_prepare,
    .on_accept = tlsi_on_accept,
};
