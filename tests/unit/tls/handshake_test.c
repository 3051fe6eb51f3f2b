/* TLS sessions between compiled contexts over a socketpair: handshake, ALPN, SNI, SAN
 * matching, client certificates, versions, ciphers, data transfer and close_notify. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls_testutil.h"

#define SERVER_CERT                                                                                \
    "common_tls_context:\n"                                                                        \
    "  tls_certificates:\n"                                                                        \
    "  - certificate_chain: {filename: $D/server.crt}\n"                                           \
    "    private_key: {filename: $D/server.key}\n"

#define CLIENT_CA                                                                                  \
    "sni: server.test\n"                                                                           \
    "common_tls_context:\n"                                                                        \
    "  validation_context:\n"                                                                      \
    "    trusted_ca: {filename: $D/ca.crt}\n"

static struct pl_tls_ctx *server_default(void)
{
    return tt_ctx(PL_TLS_SERVER, SERVER_CERT);
}

Test(handshake, basic_with_verification_sni_and_data)
{
    struct pl_tls_ctx *s = server_default();
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, CLIENT_CA);
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.crc, 0, "client: %s", pl_tls_conn_error(p.c));
    cr_assert_eq(p.src, 0, "server: %s", pl_tls_conn_error(p.s));
    cr_assert(pl_tls_conn_established(p.c));
    cr_assert_str_eq(pl_tls_conn_sni(p.s), "server.test");
    cr_assert_str_eq(pl_tls_conn_sni(p.c), "server.test");
    cr_assert_str_eq(pl_tls_conn_version(p.c), "TLSv1.2"); /* Envoy's client default max */
    cr_assert(pl_tls_conn_peer_verified(p.c));
    cr_assert_str_eq(pl_tls_conn_peer_uri_san(p.c), "spiffe://cluster.local/ns/default/sa/server");
    cr_assert_null(pl_tls_conn_alpn(p.c));
    cr_assert_not(pl_tls_conn_peer_verified(p.s)); /* no client certificate */
    cr_assert_str_eq(pl_tls_conn_error(p.c), "");

    struct pl_buf out = PL_BUF_INIT, in = PL_BUF_INIT;
    pl_buf_append(&out, "hello over tls", 14);
    cr_assert_eq(pl_tls_conn_write(p.c, &out), 14);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(pl_tls_conn_read(p.s, &in, 1 << 20), 14);
    char got[32] = {0};
    pl_buf_copyout(&in, 0, got, in.len);
    cr_assert_str_eq(got, "hello over tls");
    cr_assert_eq(pl_tls_conn_read(p.s, &in, 1 << 20), PL_EAGAIN);
    cr_assert_not(pl_tls_conn_want_write(p.s));

    /* close_notify reads as a clean end of stream */
    cr_assert_eq(pl_tls_conn_shutdown(p.c), 0);
    cr_assert_eq(pl_tls_conn_shutdown(p.c), 0);
    cr_assert_eq(pl_tls_conn_read(p.s, &in, 1 << 20), 0);
    pl_buf_free(&out);
    pl_buf_free(&in);
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
}

Test(handshake, tls13_when_client_allows_it)
{
    struct pl_tls_ctx *s = server_default();
    struct pl_tls_ctx *c =
        tt_ctx(PL_TLS_CLIENT, CLIENT_CA "  tls_params:\n"
                                        "    tls_maximum_protocol_version: TLSv1_3\n");
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.crc, 0, "client: %s", pl_tls_conn_error(p.c));
    cr_assert_eq(p.src, 0, "server: %s", pl_tls_conn_error(p.s));
    cr_assert_str_eq(pl_tls_conn_version(p.s), "TLSv1.3");
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
}

/* A megabyte each way through a socketpair whose buffers hold far less: partial writes,
 * PL_EAGAIN and retries with the same front bytes. */
Test(handshake, bulk_transfer_both_ways)
{
    struct pl_tls_ctx *s = server_default();
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, CLIENT_CA);
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.crc | p.src, 0);
    size_t total = 1 << 20;
    char *src = pl_malloc(total);
    for (size_t i = 0; i < total; i++)
        src[i] = (char)(i * 7 + i / 251);
    struct pl_tls_conn *from[2] = {p.c, p.s}, *to[2] = {p.s, p.c};
    for (int dir = 0; dir < 2; dir++) {
        struct pl_buf out = PL_BUF_INIT, in = PL_BUF_INIT;
        pl_buf_append(&out, src, total);
        for (int i = 0; i < 100000 && in.len < total; i++) {
            ssize_t w = pl_tls_conn_write(from[dir], &out);
            cr_assert(w > 0 || w == PL_EAGAIN || out.len == 0, "write: %zd", w);
            ssize_t r = pl_tls_conn_read(to[dir], &in, 100000);
            cr_assert(r > 0 || r == PL_EAGAIN, "read: %zd", r);
        }
        cr_assert_eq(in.len, total);
        char *dst = pl_malloc(total);
        pl_buf_copyout(&in, 0, dst, total);
        cr_assert_eq(memcmp(src, dst, total), 0);
        free(dst);
        pl_buf_free(&out);
        pl_buf_free(&in);
    }
    free(src);
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
}

/* Connections keep the context they started with: the snapshot may drop its reference. */
Test(handshake, connection_outlives_the_context_reference)
{
    struct pl_tls_ctx *s = server_default();
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, CLIENT_CA);
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
    cr_assert_eq(p.crc | p.src, 0);
    cr_assert_eq(pl_tls_ctx_role(pl_tls_conn_ctx(p.s)), PL_TLS_SERVER);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, "x", 1);
    cr_assert_eq(pl_tls_conn_write(p.s, &b), 1);
    cr_assert_eq(pl_tls_conn_read(p.c, &b, 10), 1);
    pl_buf_free(&b);
    tt_pair_close(&p);
}

static char *alpn_of(const char *server_alpn, const char *client_alpn)
{
    char *sy = pl_asprintf(SERVER_CERT "  alpn_protocols: %s\n", server_alpn);
    char *cy = pl_asprintf(CLIENT_CA "  alpn_protocols: %s\n", client_alpn);
    struct pl_tls_ctx *s = tt_ctx(PL_TLS_SERVER, sy);
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, cy);
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.crc | p.src, 0, "%s / %s", pl_tls_conn_error(p.c), pl_tls_conn_error(p.s));
    const char *a = pl_tls_conn_alpn(p.s), *b = pl_tls_conn_alpn(p.c);
    cr_assert((!a && !b) || (a && b && !strcmp(a, b)));
    char *r = pl_strdup(a ? a : "(none)");
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
    free(sy);
    free(cy);
    return r;
}

Test(handshake, alpn_server_order_wins)
{
    struct {
        const char *server, *client, *want;
    } cases[] = {
        {"[h2, http/1.1]", "[http/1.1, h2]", "h2"},
        {"[http/1.1, h2]", "[h2, http/1.1]", "http/1.1"},
        {"[h2, http/1.1]", "[http/1.1]", "http/1.1"},
        {"[h2]", "[foo, bar]", "(none)"},
        {"[]", "[h2]", "(none)"},
        {"[istio-peer-exchange, h2]", "[h2, istio-peer-exchange]", "istio-peer-exchange"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = alpn_of(cases[i].server, cases[i].client);
        cr_expect_str_eq(got, cases[i].want, "server %s client %s", cases[i].server,
                         cases[i].client);
        free(got);
    }
    struct pl_tls_ctx *s = tt_ctx(PL_TLS_SERVER, SERVER_CERT "  alpn_protocols: [h2, http/1.1]\n");
    cr_assert(pl_tls_ctx_has_alpn(s, "h2"));
    cr_assert(pl_tls_ctx_has_alpn(s, "http/1.1"));
    cr_assert_not(pl_tls_ctx_has_alpn(s, "h"));
    pl_tls_ctx_unref(s);
}

/* Client-side SAN matching against the server certificate: DNS:server.test, DNS:*.wild.test,
 * URI:spiffe://cluster.local/ns/default/sa/server, IP:127.0.0.1, email:srv@example.com. */
static int san_case(const char *type, const char *matcher, char *errbuf, size_t n)
{
    char *cy = pl_asprintf(CLIENT_CA "    match_typed_subject_alt_names:\n"
                                     "    - san_type: %s\n"
                                     "      matcher: %s\n",
                           type, matcher);
    struct pl_tls_ctx *s = server_default();
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, cy);
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    int rc = p.crc;
    snprintf(errbuf, n, "%s", pl_tls_conn_error(p.c));
    if (rc == 0)
        cr_assert(pl_tls_conn_peer_verified(p.c));
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
    free(cy);
    return rc;
}

Test(handshake, san_matchers_each_kind)
{
    struct {
        const char *type, *matcher;
        bool ok;
    } cases[] = {
        {"DNS", "{exact: server.test}", true},
        {"DNS", "{exact: SERVER.test}", true}, /* DNS names compare case-insensitively */
        {"DNS", "{exact: other.test}", false},
        {"DNS", "{exact: a.wild.test}", true}, /* the *.wild.test SAN */
        {"DNS", "{exact: a.b.wild.test}", false},
        {"DNS", "{exact: wild.test}", false},
        {"DNS", "{suffix: .test}", true},
        {"DNS", "{prefix: serv}", true},
        {"URI", "{exact: 'spiffe://cluster.local/ns/default/sa/server'}", true},
        {"URI", "{exact: 'spiffe://cluster.local/ns/default/sa/client'}", false},
        {"URI", "{prefix: 'spiffe://cluster.local/'}", true},
        {"URI", "{prefix: 'spiffe://other.domain/'}", false},
        {"URI", "{suffix: /sa/server}", true},
        {"URI", "{contains: /ns/default/}", true},
        {"URI", "{contains: /ns/kube-system/}", false},
        {"URI", "{safe_regex: {regex: 'spiffe://cluster\\.local/ns/[^/]+/sa/server'}}", true},
        {"URI", "{safe_regex: {regex: cluster}}", false}, /* the whole value must match */
        {"URI", "{exact: 'SPIFFE://cluster.local/ns/default/sa/server', ignore_case: true}", true},
        {"URI", "{exact: 'SPIFFE://cluster.local/ns/default/sa/server'}", false},
        {"IP_ADDRESS", "{exact: 127.0.0.1}", true},
        {"IP_ADDRESS", "{exact: 127.0.0.2}", false},
        {"EMAIL", "{exact: srv@example.com}", true},
        {"EMAIL", "{suffix: '@example.org'}", false},
        {"DNS", "{exact: 'spiffe://cluster.local/ns/default/sa/server'}", false}, /* type */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[256];
        int rc = san_case(cases[i].type, cases[i].matcher, why, sizeof(why));
        cr_expect_eq(rc == 0, cases[i].ok, "%s %s: rc %d (%s)", cases[i].type, cases[i].matcher, rc,
                     why);
        if (!cases[i].ok)
            cr_expect(strstr(why, "match_typed_subject_alt_names"), "%s", why);
    }
}

Test(handshake, san_any_of_several_matchers)
{
    struct pl_tls_ctx *s = server_default();
    struct pl_tls_ctx *c =
        tt_ctx(PL_TLS_CLIENT, CLIENT_CA "    match_typed_subject_alt_names:\n"
                                        "    - {san_type: URI, matcher: {exact: spiffe://x/y}}\n"
                                        "    - {san_type: DNS, matcher: {exact: server.test}}\n");
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.crc, 0, "%s", pl_tls_conn_error(p.c));
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
}

#define MTLS_SERVER                                                                                \
    SERVER_CERT "  validation_context:\n"                                                          \
                "    trusted_ca: {filename: $D/ca.crt}\n"                                          \
                "require_client_certificate: true\n"

Test(handshake, require_client_certificate_rejects_client_without_one)
{
    const char *versions[] = {"TLSv1_2", "TLSv1_3"};
    for (int v = 0; v < 2; v++) {
        struct pl_tls_ctx *s = tt_ctx(PL_TLS_SERVER, MTLS_SERVER);
        char *cy = pl_asprintf(CLIENT_CA "  tls_params: {tls_maximum_protocol_version: %s}\n",
                               versions[v]);
        struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, cy);
        struct tt_pair p;
        tt_handshake(&p, c, s, NULL);
        cr_assert_eq(p.src, PL_EIO, "%s", versions[v]);
        cr_assert(strstr(pl_tls_conn_error(p.s), "certificate"), "%s", pl_tls_conn_error(p.s));
        /* with TLS 1.3 the client finishes first and learns of the failure on reading */
        if (p.crc == 0) {
            struct pl_buf b = PL_BUF_INIT;
            cr_assert_eq(pl_tls_conn_read(p.c, &b, 100), PL_EIO);
            cr_assert_str_neq(pl_tls_conn_error(p.c), "");
        }
        tt_pair_close(&p);
        pl_tls_ctx_unref(s);
        pl_tls_ctx_unref(c);
        free(cy);
    }
}

Test(handshake, mutual_tls_with_spiffe_identity)
{
    struct pl_tls_ctx *s = tt_ctx(PL_TLS_SERVER, SERVER_CERT
                                  "  validation_context:\n"
                                  "    trusted_ca: {filename: $D/ca.crt}\n"
                                  "    match_typed_subject_alt_names:\n"
                                  "    - san_type: URI\n"
                                  "      matcher: {prefix: 'spiffe://cluster.local/ns/default/'}\n"
                                  "require_client_certificate: true\n");
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, CLIENT_CA "  tls_certificates:\n"
                                                           "  - certificate_chain: "
                                                           "{filename: $D/client.crt}\n"
                                                           "    private_key: "
                                                           "{filename: $D/client.key}\n");
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.src, 0, "%s", pl_tls_conn_error(p.s));
    cr_assert_eq(p.crc, 0, "%s", pl_tls_conn_error(p.c));
    cr_assert(pl_tls_conn_peer_verified(p.s));
    cr_assert_str_eq(pl_tls_conn_peer_uri_san(p.s), "spiffe://cluster.local/ns/default/sa/client");
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
}

Test(handshake, client_certificate_from_another_ca_is_rejected)
{
    struct pl_tls_ctx *s = tt_ctx(PL_TLS_SERVER, MTLS_SERVER);
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, CLIENT_CA "  tls_certificates:\n"
                                                           "  - certificate_chain: "
                                                           "{filename: $D/wrongca.crt}\n"
                                                           "    private_key: "
                                                           "{filename: $D/wrongca.key}\n");
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.src, PL_EIO);
    cr_assert(strstr(pl_tls_conn_error(p.s), "certificate verify failed: unable to get local "
                                             "issuer certificate"),
              "%s", pl_tls_conn_error(p.s));
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
}

static void server_cert_fails(const char *base, const char *want)
{
    char *sy = pl_asprintf("common_tls_context:\n"
                           "  tls_certificates:\n"
                           "  - certificate_chain: {filename: $D/%s.crt}\n"
                           "    private_key: {filename: $D/%s.key}\n",
                           base, base);
    struct pl_tls_ctx *s = tt_ctx(PL_TLS_SERVER, sy);
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, CLIENT_CA);
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.crc, PL_EIO, "%s", base);
    cr_assert(strstr(pl_tls_conn_error(p.c), want), "%s: %s", base, pl_tls_conn_error(p.c));
    cr_assert_eq(p.src, PL_EIO);
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
    free(sy);
}

Test(handshake, expired_and_untrusted_server_certificates_fail)
{
    server_cert_fails("expired", "certificate verify failed: certificate has expired");
    server_cert_fails("wrongca", "certificate verify failed: unable to get local issuer");
}

Test(handshake, no_validation_context_accepts_any_server)
{
    /* Envoy: an UpstreamTlsContext without validation_context does not verify the server */
    struct pl_tls_ctx *s = tt_ctx(PL_TLS_SERVER, "common_tls_context:\n"
                                                 "  tls_certificates:\n"
                                                 "  - certificate_chain: "
                                                 "{filename: $D/wrongca.crt}\n"
                                                 "    private_key: {filename: $D/wrongca.key}\n");
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, "sni: x.test\n");
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    cr_assert_eq(p.crc | p.src, 0);
    cr_assert_not(pl_tls_conn_peer_verified(p.c));
    cr_assert_str_eq(pl_tls_conn_sni(p.s), "x.test");
    tt_pair_close(&p);
    /* a per-connection SNI overrides the configured one */
    tt_handshake(&p, c, s, "y.test");
    cr_assert_eq(p.crc | p.src, 0);
    cr_assert_str_eq(pl_tls_conn_sni(p.s), "y.test");
    tt_pair_close(&p);
    tt_handshake(&p, c, s, "");
    cr_assert_eq(p.crc | p.src, 0);
    cr_assert_null(pl_tls_conn_sni(p.s));
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
}

static int versions(const char *server_params, const char *client_params, char *ver, size_t n)
{
    char *sy = pl_asprintf(SERVER_CERT "  tls_params: %s\n", server_params);
    char *cy = pl_asprintf(CLIENT_CA "  tls_params: %s\n", client_params);
    struct pl_tls_ctx *s = tt_ctx(PL_TLS_SERVER, sy);
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, cy);
    struct tt_pair p;
    tt_handshake(&p, c, s, NULL);
    int rc = p.crc | p.src;
    snprintf(ver, n, "%s", rc ? pl_tls_conn_error(p.s) : pl_tls_conn_version(p.c));
    tt_pair_close(&p);
    pl_tls_ctx_unref(s);
    pl_tls_ctx_unref(c);
    free(sy);
    free(cy);
    return rc;
}

Test(handshake, min_and_max_versions_are_enforced)
{
    char v[256];
    cr_assert_eq(versions("{}", "{}", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "TLSv1.2");
    cr_assert_eq(versions("{}", "{tls_maximum_protocol_version: TLSv1_3}", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "TLSv1.3");
    cr_assert_eq(versions("{tls_maximum_protocol_version: TLSv1_2}",
                          "{tls_maximum_protocol_version: TLSv1_3}", v, sizeof(v)),
                 0);
    cr_assert_str_eq(v, "TLSv1.2");
    /* a TLS 1.3-only server refuses Envoy's default client (TLS 1.2 max) */
    cr_assert_neq(versions("{tls_minimum_protocol_version: TLSv1_3}", "{}", v, sizeof(v)), 0);
    cr_assert(strstr(v, "protocol"), "%s", v);
    cr_assert_neq(versions("{tls_maximum_protocol_version: TLSv1_2}",
                           "{tls_minimum_protocol_version: TLSv1_3, "
                           "tls_maximum_protocol_version: TLSv1_3}",
                           v, sizeof(v)),
                  0);
}

Test(handshake, cipher_suites_restrict_tls12)
{
    char v[256];
    cr_assert_eq(versions("{cipher_suites: ['[ECDHE-ECDSA-AES128-GCM-SHA256|"
                          "ECDHE-ECDSA-CHACHA20-POLY1305]', ECDHE-ECDSA-AES256-GCM-SHA384]}",
                          "{cipher_suites: [ECDHE-ECDSA-AES256-GCM-SHA384]}", v, sizeof(v)),
                 0, "%s", v);
    cr_assert_neq(versions("{cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256]}",
                           "{cipher_suites: [ECDHE-ECDSA-AES256-GCM-SHA384]}", v, sizeof(v)),
                  0);
    cr_assert(strstr(v, "cipher"), "%s", v);
}

Test(handshake, peer_closing_during_handshake_is_an_error)
{
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, CLIENT_CA);
    int fds[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    struct pl_tls_conn *t = pl_tls_conn_new(c, fds[0], NULL);
    cr_assert_eq(pl_tls_conn_handshake(t), PL_EAGAIN);
    cr_assert_not(pl_tls_conn_want_write(t));
    cr_assert_eq(write(fds[1], "HTTP/1.1 400 Bad Request\r\n\r\n", 28), 28);
    close(fds[1]);
    cr_assert_eq(pl_tls_conn_handshake(t), PL_EIO);
    cr_assert_str_neq(pl_tls_conn_error(t), "");
    cr_assert_eq(pl_tls_conn_handshake(t), PL_EIO); /* stays failed */
    struct pl_buf b = PL_BUF_INIT;
    cr_assert_eq(pl_tls_conn_read(t, &b, 10), PL_EIO);
    pl_tls_conn_free(t);
    close(fds[0]);
    pl_tls_ctx_unref(c);
}

/* A connected TCP pair on loopback (non-blocking): a reset needs TCP, not a socketpair. */
static void tcp_pair(int fds[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(l >= 0);
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &n), 0);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
    fds[1] = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    cr_assert(fds[1] >= 0);
    close(l);
    cr_assert_eq(fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK), 0);
}

/* Waits (bounded) until fd reports what is in events. */
static void wait_for(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (int i = 0; i < 100; i++) {
        cr_assert(poll(&p, 1, 100) >= 0);
        if (p.revents & events)
            return;
    }
    cr_assert_fail("fd %d never reported %#x", fd, events);
}

/* A client that sends its last flight and resets the connection at once (openssl s_time does):
 * the server does no more handshake work for it, with or without a client certificate. OpenSSL
 * would read what arrived before the reset, verify the certificate, build the session tickets it
 * then cannot send, and call the handshake complete. */
Test(handshake, peer_that_reset_gets_no_more_handshake_work)
{
    signal(SIGPIPE, SIG_IGN); /* as the server does */
    for (int mtls = 0; mtls < 2; mtls++) {
        struct pl_tls_ctx *s =
            tt_ctx(PL_TLS_SERVER, mtls ? SERVER_CERT "  validation_context:\n"
                                                     "    trusted_ca: {filename: $D/ca.crt}\n"
                                                     "require_client_certificate: true\n"
                                       : SERVER_CERT);
        struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, CLIENT_CA
                                      "  tls_params: {tls_maximum_protocol_version: TLSv1_3}\n"
                                      "  tls_certificates:\n"
                                      "  - certificate_chain: {filename: $D/client.crt}\n"
                                      "    private_key: {filename: $D/client.key}\n");
        int fds[2];
        tcp_pair(fds);
        struct pl_tls_conn *tc = pl_tls_conn_new(c, fds[0], NULL);
        struct pl_tls_conn *ts = pl_tls_conn_new(s, fds[1], NULL);
        cr_assert_eq(pl_tls_conn_handshake(tc), PL_EAGAIN); /* ClientHello */
        wait_for(fds[1], POLLIN);
        cr_assert_eq(pl_tls_conn_handshake(ts), PL_EAGAIN); /* ServerHello .. Finished */
        int rc = PL_EAGAIN;
        for (int i = 0; i < 100 && rc == PL_EAGAIN; i++) {
            wait_for(fds[0], POLLIN);
            rc = pl_tls_conn_handshake(tc); /* TLS 1.3: done once its Finished is sent */
        }
        cr_assert_eq(rc, 0, "client: %s", pl_tls_conn_error(tc));
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        cr_assert_eq(setsockopt(fds[0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        pl_tls_conn_free(tc);
        close(fds[0]); /* RST, right behind the client's flight */
        wait_for(fds[1], POLLERR | POLLHUP);

        cr_assert_eq(pl_tls_conn_handshake(ts), PL_EIO, "mtls %d", mtls);
        cr_assert_not(pl_tls_conn_established(ts));
        cr_assert_not(pl_tls_conn_peer_verified(ts));
        cr_assert_str_eq(pl_tls_conn_error(ts),
                         "Connection reset by peer during the TLS handshake");
        pl_tls_conn_free(ts);
        close(fds[1]);
        pl_tls_ctx_unref(s);
        pl_tls_ctx_unref(c);
    }
}
