/* Private to src/tls: the compiled context and the SAN matchers it carries. */
#ifndef PL_TLS_INTERNAL_H
#define PL_TLS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include <openssl/ssl.h>

#include "tls/tls.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

enum pl_tls_str_kind {
    PL_TLS_STR_EXACT,
    PL_TLS_STR_PREFIX,
    PL_TLS_STR_SUFFIX,
    PL_TLS_STR_CONTAINS,
    PL_TLS_STR_REGEX,
};

/* One SubjectAltNameMatcher: a SAN type and a StringMatcher. */
struct pl_tls_san {
    int type; /* GEN_DNS, GEN_URI, GEN_IPADD, GEN_EMAIL (OpenSSL's GENERAL_NAME types) */
    enum pl_tls_str_kind kind;
    bool ignore_case;
    char *value;    /* exact/prefix/suffix/contains */
    pcre2_code *re; /* safe_regex, matched against the whole string */
};

struct pl_tls_ctx {
    atomic_uint refs;
    enum pl_tls_role role;
    SSL_CTX *ssl;
    char *sni;           /* clients: UpstreamTlsContext.sni, NULL if empty */
    unsigned char *alpn; /* wire format (length-prefixed), NULL if none */
    size_t alpn_len;
    bool verify; /* a trusted_ca is configured: peers are verified */
    struct pl_tls_san *sans;
    size_t n_sans;
};

/* Compiles a SubjectAltNameMatcher into m; errors name path. */
int pl_tls_san_compile(
    const Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher *in, const char *path,
    struct pl_tls_san *m, struct pl_err *err);
/* Frees what pl_tls_san_compile allocated. */
void pl_tls_san_free(struct pl_tls_san *m);
/* True if the certificate has a SAN that one of the n matchers accepts (n == 0: true). */
bool pl_tls_san_check(const struct pl_tls_san *m, size_t n, X509 *cert);
/* Returns the certificate's first URI SAN as a malloc'd string, or NULL. */
char *pl_tls_san_first_uri(X509 *cert);

/* Records a SAN mismatch on the session that owns ssl (SSL_get_app_data), from the verify
 * callback, so that pl_tls_conn_error can say so. */
void pl_tls_conn_note_san_mismatch(SSL *ssl);
/* True if the socket of the handshaking session that owns ssl has a pending error (the peer
 * reset the connection); the session then reports it. Called before costly handshake steps. */
bool pl_tls_conn_note_socket_error(SSL *ssl);

#endif
