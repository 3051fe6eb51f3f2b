/* DownstreamTlsContext / UpstreamTlsContext -> OpenSSL SSL_CTX (main thread, config time). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config/pbjson.h"
#include "tls/tls_internal.h"

#define TLSV3(x) ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__##x
#define PROTO(x) TLSV3(TLS_PARAMETERS__TLS_PROTOCOL__##x)
#define DSRC(x)  ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_##x
#define COMMON_T Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext
#define CERT_T   Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate
#define VALCTX_T Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext
#define PARAMS_T Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters

#define MAX_SOURCE_BYTES (4u << 20) /* certificate bundles are small; stop runaway files */

/* Envoy's default cipher list (TLS 1.2), in OpenSSL's spelling. TLS 1.3 suites are fixed. */
static const char default_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                      "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";

/* Adds an error at "<path>.<field>"; returns code. */
static int fail(struct pl_err *err, int code, const char *path, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
static int fail(struct pl_err *err, int code, const char *path, const char *field, const char *fmt,
                ...)
{
    char *p = field ? pl_asprintf("%s.%s", path, field) : pl_strdup(path);
    va_list ap;
    va_start(ap, fmt);
    pl_err_vadd(err, NULL, 0, 0, p, fmt, ap);
    va_end(ap);
    free(p);
    return code;
}

/* The most relevant OpenSSL error text of the thread's queue (clears it). */
static const char *ossl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, n, "%s", r ? r : "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

/* Reads a DataSource into a malloc'd buffer. path names the DataSource field. */
int pl_tls_read_source(const Envoy__Config__Core__V3__DataSource *ds, const char *path, char **out,
                       size_t *len, struct pl_err *err)
{
    *out = NULL;
    *len = 0;
    if (!ds)
        return fail(err, PL_EINVAL, path, NULL, "is required");
    switch (ds->specifier_case) {
    case DSRC(INLINE_STRING):
        *len = strlen(ds->inline_string);
        *out = pl_strndup(ds->inline_string, *len);
        break;
    case DSRC(INLINE_BYTES):
        *len = ds->inline_bytes.len;
        *out = pl_malloc(*len + 1);
        if (*len)
            memcpy(*out, ds->inline_bytes.data, *len);
        (*out)[*len] = '\0';
        break;
    case DSRC(FILENAME): {
        FILE *f = fopen(ds->filename, "rb");
        if (!f)
            return fail(err, PL_EINVAL, path, "filename", "cannot read '%s': %s", ds->filename,
                        strerror(errno));
        struct stat st;
        if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_SOURCE_BYTES) {
            fclose(f);
            return fail(err, PL_EINVAL, path, "filename",
                        "'%s' is not a regular file of at most %u bytes", ds->filename,
                        MAX_SOURCE_BYTES);
        }
        *out = pl_malloc((size_t)st.st_size + 1);
        *len = fread(*out, 1, (size_t)st.st_size, f);
        (*out)[*len] = '\0';
        bool bad = ferror(f);
        fclose(f);
        if (bad) {
            free(*out);
            *out = NULL;
            return fail(err, PL_EINVAL, path, "filename", "cannot read '%s'", ds->filename);
        }
        break;
    }
    case DSRC(ENVIRONMENT_VARIABLE):
        return fail(err, PL_ENOTSUP, path, "environment_variable",
                    "environment_variable data sources are not supported by pillion");
    default:
        return fail(err, PL_EINVAL, path, NULL,
                    "one of filename, inline_string or inline_bytes is required");
    }
    if (*len == 0) {
        free(*out);
        *out = NULL;
        return fail(err, PL_EINVAL, path, NULL, "is empty");
    }
    return 0;
}

/* Reads every PEM certificate of a DataSource; NULL (with an error) if there is none or one is
 * malformed. */
static STACK_OF(X509) *
    read_certs(const Envoy__Config__Core__V3__DataSource *ds, const char *path, struct pl_err *err)
{
    char *data;
    size_t len;
    if (pl_tls_read_source(ds, path, &data, &len, err) < 0)
        return NULL;
    ERR_clear_error();
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    STACK_OF(X509) *certs = sk_X509_new_null();
    if (!bio || !certs)
        pl_die("out of memory (OpenSSL)");
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
        if (!sk_X509_push(certs, x))
            pl_die("out of memory (OpenSSL)");
    /* the loop ends at the end of the data (no start line) or at a broken block */
    unsigned long e = ERR_peek_last_error();
    bool at_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
    char why[160];
    int count = sk_X509_num(certs);
    if (count == 0 || (e && !at_end)) {
        if (count == 0 && at_end)
            snprintf(why, sizeof(why), "no PEM certificate found");
        else
            ossl_reason(why, sizeof(why));
        fail(err, PL_EINVAL, path, NULL, "malformed PEM certificate (%s)", why);
        sk_X509_pop_free(certs, X509_free);
        certs = NULL;
    }
    ERR_clear_error();
    BIO_free(bio);
    OPENSSL_cleanse(data, len);
    free(data);
    return certs;
}

static EVP_PKEY *read_key(const Envoy__Config__Core__V3__DataSource *ds, const char *path,
                          struct pl_err *err)
{
    char *data;
    size_t len;
    if (pl_tls_read_source(ds, path, &data, &len, err) < 0)
        return NULL;
    ERR_clear_error();
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio)
        pl_die("out of memory (OpenSSL)");
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!k) {
        char why[160];
        fail(err, PL_EINVAL, path, NULL, "malformed PEM private key (%s)",
             ossl_reason(why, sizeof(why)));
    }
    BIO_free(bio);
    OPENSSL_cleanse(data, len); /* keys do not linger in freed heap */
    free(data);
    return k;
}

static int load_certificate(SSL_CTX *ssl, const CERT_T *c, const char *path, struct pl_err *err)
{
    char *cp = pl_asprintf("%s.certificate_chain", path);
    char *kp = pl_asprintf("%s.private_key", path);
    STACK_OF(X509) *chain = read_certs(c->certificate_chain, cp, err);
    EVP_PKEY *key = read_key(c->private_key, kp, err);
    int rc = 0;
    if (!chain || !key) {
        rc = PL_EINVAL;
        goto out;
    }
    X509 *leaf = sk_X509_shift(chain);
    if (X509_check_private_key(leaf, key) != 1) {
        rc = fail(err, PL_EINVAL, kp, NULL,
                  "private key does not match the certificate in certificate_chain");
    } else if (SSL_CTX_use_cert_and_key(ssl, leaf, key, chain, 0) != 1) {
        char why[160];
        rc = fail(err, PL_EINVAL, cp, NULL,
                  "cannot use certificate (%s; at most one certificate per key type)",
                  ossl_reason(why, sizeof(why)));
    }
    X509_free(leaf);
out:
    ERR_clear_error();
    if (chain)
        sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    free(cp);
    free(kp);
    return rc;
}

static int version_of(int v, int dflt)
{
    switch (v) {
    case PROTO(TLSv1_0):
        return TLS1_VERSION;
    case PROTO(TLSv1_1):
        return TLS1_1_VERSION;
    case PROTO(TLSv1_2):
        return TLS1_2_VERSION;
    case PROTO(TLSv1_3):
        return TLS1_3_VERSION;
    default:
        return dflt;
    }
}

/* Envoy's defaults: TLS 1.2 minimum; maximum TLS 1.3 for servers and TLS 1.2 for clients. */
static int apply_params(SSL_CTX *ssl, enum pl_tls_role role, const PARAMS_T *p, const char *path,
                        struct pl_err *err)
{
    int min = version_of(p ? (int)p->tls_minimum_protocol_version : 0, TLS1_2_VERSION);
    int max = version_of(p ? (int)p->tls_maximum_protocol_version : 0,
                         role == PL_TLS_SERVER ? TLS1_3_VERSION : TLS1_2_VERSION);
    int rc = 0;
    if (min > max)
        rc = fail(err, PL_EINVAL, path, "tls_params.tls_minimum_protocol_version",
                  "is greater than tls_maximum_protocol_version");
    else if (!SSL_CTX_set_min_proto_version(ssl, min) || !SSL_CTX_set_max_proto_version(ssl, max))
        rc = fail(err, PL_EINVAL, path, "tls_params", "unsupported TLS protocol version range");
    if (!p || p->n_cipher_suites == 0) {
        if (!SSL_CTX_set_cipher_list(ssl, default_ciphers))
            pl_die("OpenSSL rejects the default cipher list");
        return rc;
    }
    /* Envoy (BoringSSL) syntax: names separated by ':' inside one entry or by entries, and
     * "[A|B]" equal-preference groups; OpenSSL has no groups, so they become plain order. */
    SSL_CTX *probe = SSL_CTX_new(TLS_method());
    if (!probe)
        pl_die("out of memory (OpenSSL)");
    char *list = pl_strdup("");
    for (size_t i = 0; i < p->n_cipher_suites; i++) {
        char *entry = pl_strdup(p->cipher_suites[i]);
        for (char *c = entry; *c; c++)
            if (*c == '[' || *c == ']' || *c == '|')
                *c = ':';
        char *save = NULL;
        for (char *name = strtok_r(entry, ":", &save); name; name = strtok_r(NULL, ":", &save)) {
            if (!SSL_CTX_set_cipher_list(probe, name)) {
                char *fp = pl_asprintf("tls_params.cipher_suites[%zu]", i);
                rc = fail(err, PL_EINVAL, path, fp, "unknown or unusable cipher suite '%s'", name);
                free(fp);
                continue;
            }
            char *n = pl_asprintf("%s%s%s", list, *list ? ":" : "", name);
            free(list);
            list = n;
        }
        free(entry);
    }
    ERR_clear_error();
    SSL_CTX_free(probe);
    if (rc == 0 && (!*list || !SSL_CTX_set_cipher_list(ssl, list)))
        rc = fail(err, PL_EINVAL, path, "tls_params.cipher_suites", "no usable cipher suite");
    free(list);
    ERR_clear_error();
    return rc;
}

/* alpn_protocols -> wire format (length-prefixed names). */
static int compile_alpn(struct pl_tls_ctx *c, const COMMON_T *common, const char *path,
                        struct pl_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < common->n_alpn_protocols; i++) {
        size_t n = strlen(common->alpn_protocols[i]);
        if (n == 0 || n > 255) {
            char *fp = pl_asprintf("alpn_protocols[%zu]", i);
            fail(err, PL_EINVAL, path, fp, "a protocol name has 1 to 255 bytes");
            free(fp);
            return PL_EINVAL;
        }
        total += n + 1;
    }
    if (total == 0)
        return 0;
    c->alpn = pl_malloc(total);
    for (size_t i = 0; i < common->n_alpn_protocols; i++) {
        size_t n = strlen(common->alpn_protocols[i]);
        c->alpn[c->alpn_len++] = (unsigned char)n;
        memcpy(c->alpn + c->alpn_len, common->alpn_protocols[i], n);
        c->alpn_len += n;
    }
    return 0;
}

/* Servers pick from the client's list in the configured order; no overlap: no ALPN (as Envoy). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const struct pl_tls_ctx *c = arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, c->alpn, (unsigned int)c->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Chain verification is OpenSSL's; at the leaf we add the SAN matchers. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok || X509_STORE_CTX_get_error_depth(x) != 0)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    const struct pl_tls_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (pl_tls_san_check(c->sans, c->n_sans, X509_STORE_CTX_get_current_cert(x)))
        return 1;
    X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
    pl_tls_conn_note_san_mismatch(ssl);
    return 0;
}

/* OpenSSL's chain verification, skipped (failing the handshake) for a peer that has reset. */
static int cert_verify_cb(X509_STORE_CTX *x, void *arg)
{
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl && pl_tls_conn_note_socket_error(ssl)) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return X509_verify_cert(x);
}

/* Before each session ticket is built: none (and the handshake fails) for a peer that has
 * reset, as building one re-encodes the session and, with a client certificate, parses that
 * certificate again. */
static int ticket_gen_cb(SSL *ssl, void *arg)
{
    (void)arg;
    return !pl_tls_conn_note_socket_error(ssl);
}

static int load_validation(struct pl_tls_ctx *c, const COMMON_T *common, const char *path,
                           struct pl_err *err)
{
    if (common->validation_context_type_case !=
        TLSV3(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT)) {
        if (common->validation_context_type_case ==
            TLSV3(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE__NOT_SET))
            return 0;
        return fail(err, PL_ENOTSUP, path, NULL,
                    "only validation_context is supported for peer validation by pillion");
    }
    const VALCTX_T *v = common->validation_context;
    char *vp = pl_asprintf("%s.validation_context", path);
    int rc = 0;
    for (size_t i = 0; i < v->n_match_typed_subject_alt_names; i++) {
        char *mp = pl_asprintf("%s.match_typed_subject_alt_names[%zu]", vp, i);
        c->sans = pl_realloc(c->sans, (c->n_sans + 1) * sizeof(*c->sans));
        int r =
            pl_tls_san_compile(v->match_typed_subject_alt_names[i], mp, &c->sans[c->n_sans], err);
        c->n_sans++;
        rc = rc ? rc : r;
        free(mp);
    }
    if (!v->trusted_ca) {
        if (c->n_sans)
            rc = fail(err, PL_EINVAL, vp, "trusted_ca",
                      "is required with match_typed_subject_alt_names (SAN checks without a "
                      "trusted CA would be insecure)");
        free(vp);
        return rc;
    }
    char *cap = pl_asprintf("%s.trusted_ca", vp);
    STACK_OF(X509) *cas = read_certs(v->trusted_ca, cap, err);
    if (!cas) {
        rc = PL_EINVAL;
    } else {
        X509_STORE *store = SSL_CTX_get_cert_store(c->ssl);
        for (int i = 0; i < sk_X509_num(cas); i++) {
            X509 *ca = sk_X509_value(cas, i);
            X509_STORE_add_cert(store, ca); /* duplicates are harmless */
            if (c->role == PL_TLS_SERVER)
                SSL_CTX_add_client_CA(c->ssl, ca); /* tells clients which cert to send */
        }
        ERR_clear_error();
        sk_X509_pop_free(cas, X509_free);
        c->verify = true;
    }
    free(cap);
    free(vp);
    return rc;
}

static struct pl_tls_ctx *ctx_new(enum pl_tls_role role)
{
    struct pl_tls_ctx *c = pl_calloc(1, sizeof(*c));
    atomic_init(&c->refs, 1);
    c->role = role;
    c->ssl = SSL_CTX_new(role == PL_TLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (!c->ssl)
        pl_die("SSL_CTX_new failed");
    SSL_CTX_set_app_data(c->ssl, c);
    SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_clear_mode(c->ssl, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
    return c;
}

static int compile_common(struct pl_tls_ctx *c, const COMMON_T *common, bool require_client,
                          const char *path, struct pl_err *err)
{
    char *cp = pl_asprintf("%s.common_tls_context", path);
    int rc = 0;
    if (!common) {
        if (c->role == PL_TLS_SERVER)
            rc = fail(err, PL_EINVAL, cp, "tls_certificates",
                      "a server needs exactly one certificate per key type");
        else
            rc = apply_params(c->ssl, c->role, NULL, cp, err);
        free(cp);
        return rc;
    }
    int r = apply_params(c->ssl, c->role, common->tls_params, cp, err);
    rc = rc ? rc : r;
    if (c->role == PL_TLS_SERVER && common->n_tls_certificates == 0)
        rc = fail(err, PL_EINVAL, cp, "tls_certificates", "a server needs a certificate");
    for (size_t i = 0; i < common->n_tls_certificates; i++) {
        char *tp = pl_asprintf("%s.tls_certificates[%zu]", cp, i);
        r = load_certificate(c->ssl, common->tls_certificates[i], tp, err);
        rc = rc ? rc : r;
        free(tp);
    }
    r = compile_alpn(c, common, cp, err);
    rc = rc ? rc : r;
    r = load_validation(c, common, cp, err);
    rc = rc ? rc : r;
    if (require_client && !c->verify)
        rc = fail(err, PL_EINVAL, path, "require_client_certificate",
                  "needs common_tls_context.validation_context.trusted_ca to verify clients");
    free(cp);
    if (rc)
        return rc;

    int mode = SSL_VERIFY_NONE;
    if (c->verify)
        mode = SSL_VERIFY_PEER | (require_client ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(c->ssl, mode, c->verify ? verify_cb : NULL);
    if (c->verify)
        SSL_CTX_set_cert_verify_callback(c->ssl, cert_verify_cb, NULL);
    if (c->role == PL_TLS_SERVER) {
        if (!SSL_CTX_set_session_ticket_cb(c->ssl, ticket_gen_cb, NULL, NULL))
            pl_die("SSL_CTX_set_session_ticket_cb failed");
        static const unsigned char sid[] = "pillion";
        SSL_CTX_set_session_id_context(c->ssl, sid, sizeof(sid) - 1);
        if (c->alpn)
            SSL_CTX_set_alpn_select_cb(c->ssl, select_alpn, c);
    } else if (c->alpn && SSL_CTX_set_alpn_protos(c->ssl, c->alpn, (unsigned int)c->alpn_len)) {
        pl_die("SSL_CTX_set_alpn_protos failed");
    }
    return 0;
}

int pl_tls_ctx_downstream(const PL_TLS_DOWNSTREAM_T *cfg, const char *path, struct pl_tls_ctx **out,
                          struct pl_err *err)
{
    *out = NULL;
    struct pl_tls_ctx *c = ctx_new(PL_TLS_SERVER);
    bool require = cfg->require_client_certificate && cfg->require_client_certificate->value;
    int rc = compile_common(c, cfg->common_tls_context, require, path, err);
    if (rc) {
        pl_tls_ctx_unref(c);
        return rc;
    }
    *out = c;
    return 0;
}

int pl_tls_ctx_upstream(const PL_TLS_UPSTREAM_T *cfg, const char *path, struct pl_tls_ctx **out,
                        struct pl_err *err)
{
    *out = NULL;
    struct pl_tls_ctx *c = ctx_new(PL_TLS_CLIENT);
    int rc = compile_common(c, cfg->common_tls_context, false, path, err);
    if (rc == 0 && strlen(cfg->sni) > 255)
        rc = fail(err, PL_EINVAL, path, "sni", "is longer than 255 bytes");
    if (rc) {
        pl_tls_ctx_unref(c);
        return rc;
    }
    if (*cfg->sni)
        c->sni = pl_strdup(cfg->sni);
    *out = c;
    return 0;
}

int pl_tls_ctx_from_transport_socket(const Envoy__Config__Core__V3__TransportSocket *ts,
                                     enum pl_tls_role role, const char *path,
                                     struct pl_tls_ctx **out, struct pl_err *err)
{
    *out = NULL;
    if (!ts)
        return 0;
    if (!ts->typed_config) {
        if (!strcmp(ts->name, "envoy.transport_sockets.raw_buffer") || !*ts->name)
            return 0;
        return fail(err, PL_EINVAL, path, "typed_config", "'%s': typed_config is required",
                    ts->name);
    }
    const ProtobufCMessageDescriptor *want =
        role == PL_TLS_SERVER
            ? &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor
            : &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor;
    char *tp = pl_asprintf("%s.typed_config", path);
    ProtobufCMessage *m = NULL;
    bool owned = false;
    struct pl_err sub = PL_ERR_INIT;
    int rc = pl_any_unpack(&ts->typed_config->base, NULL, want, &m, &owned, &sub);
    if (rc < 0) {
        for (size_t i = 0; i < sub.n; i++)
            fail(err, PL_EINVAL, tp, NULL, "%s", sub.v[i].msg);
        pl_err_free(&sub);
        free(tp);
        return PL_EINVAL;
    }
    if (role == PL_TLS_SERVER)
        rc = pl_tls_ctx_downstream((const PL_TLS_DOWNSTREAM_T *)m, tp, out, err);
    else
        rc = pl_tls_ctx_upstream((const PL_TLS_UPSTREAM_T *)m, tp, out, err);
    if (owned)
        protobuf_c_message_free_unpacked(m, NULL);
    free(tp);
    return rc;
}

struct pl_tls_ctx *pl_tls_ctx_ref(struct pl_tls_ctx *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void pl_tls_ctx_unref(struct pl_tls_ctx *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(c->ssl);
    for (size_t i = 0; i < c->n_sans; i++)
        pl_tls_san_free(&c->sans[i]);
    free(c->sans);
    free(c->alpn);
    free(c->sni);
    free(c);
}

enum pl_tls_role pl_tls_ctx_role(const struct pl_tls_ctx *c)
{
    return c->role;
}

bool pl_tls_ctx_has_alpn(const struct pl_tls_ctx *c, const char *proto)
{
    size_t n = strlen(proto);
    for (size_t i = 0; i < c->alpn_len; i += 1 + c->alpn[i])
        if (c->alpn[i] == n && !memcmp(c->alpn + i + 1, proto, n))
            return true;
    return false;
}
