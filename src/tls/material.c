/* UpstreamTlsContext -> what a TLS stack other than ours needs (the gRPC channel to the control
 * plane: libgrpc does its own TLS). Everything is first compiled as for a cluster, so the checks
 * and their messages are the same; then the PEM texts are read for the other stack. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "config/pbjson.h"
#include "core/log.h"
#include "tls/tls_internal.h"

#define TLSV3(x) ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__##x
#define COMMON_T Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext
#define CERT_T   Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate
#define VALCTX_T Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext
#define DS_T     Envoy__Config__Core__V3__DataSource

static int read_pem(const DS_T *ds, const char *path, const char *field, char **out,
                    struct pl_err *err)
{
    char *p = pl_asprintf("%s.%s", path, field);
    size_t len;
    int rc = pl_tls_read_source(ds, p, out, &len, err);
    free(p);
    return rc;
}

static int from_upstream(const PL_TLS_UPSTREAM_T *cfg, const char *path, bool verify_default,
                         struct pl_tls_client_material *m, struct pl_err *err)
{
    int rc = pl_tls_ctx_upstream(cfg, path, &m->ctx, err);
    if (rc)
        return rc;
    const COMMON_T *common = cfg->common_tls_context;
    char *cp = pl_asprintf("%s.common_tls_context", path);
    if (common && common->n_tls_certificates > 1)
        rc = pl_err_add(err, NULL, 0, 0, cp,
                        "the control-plane channel takes one certificate "
                        "(tls_certificates has %zu)",
                        common->n_tls_certificates);
    if (!rc && common && common->n_tls_certificates == 1) {
        const CERT_T *c = common->tls_certificates[0];
        char *tp = pl_asprintf("%s.tls_certificates[0]", cp);
        rc = read_pem(c->certificate_chain, tp, "certificate_chain", &m->cert_pem, err);
        if (!rc)
            rc = read_pem(c->private_key, tp, "private_key", &m->key_pem, err);
        free(tp);
    }
    if (!rc && common && common->tls_params)
        pl_log_warn("tls",
                    "%s.tls_params: not applied to the control-plane channel (gRPC's own "
                    "TLS 1.2-1.3 settings are)",
                    cp);
    const VALCTX_T *v =
        common && common->validation_context_type_case ==
                      TLSV3(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT)
            ? common->validation_context
            : NULL;
    if (!rc && v && v->trusted_ca) {
        char *vp = pl_asprintf("%s.validation_context", cp);
        rc = read_pem(v->trusted_ca, vp, "trusted_ca", &m->root_pem, err);
        free(vp);
    }
    free(cp);
    m->verify_server = m->root_pem || verify_default;
    m->sni = m->ctx->sni;
    return rc;
}

int pl_tls_client_material_from_transport_socket(const Envoy__Config__Core__V3__TransportSocket *ts,
                                                 const char *path, struct pl_tls_client_material *m,
                                                 struct pl_err *err)
{
    memset(m, 0, sizeof(*m));
    if (!ts)
        return 0;
    if (!ts->typed_config) {
        if (!strcmp(ts->name, "envoy.transport_sockets.raw_buffer") || !*ts->name)
            return 0;
        char *p = pl_asprintf("%s.typed_config", path);
        pl_err_add(err, NULL, 0, 0, p, "'%s': typed_config is required", ts->name);
        free(p);
        return PL_EINVAL;
    }
    if (strstr(ts->typed_config->type_url, "raw_buffer"))
        return 0;
    char *tp = pl_asprintf("%s.typed_config", path);
    ProtobufCMessage *msg = NULL;
    bool owned = false;
    struct pl_err sub = PL_ERR_INIT;
    int rc = pl_any_unpack(
        &ts->typed_config->base, NULL,
        &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor, &msg,
        &owned, &sub);
    if (rc < 0) {
        for (size_t i = 0; i < sub.n; i++)
            pl_err_add(err, NULL, 0, 0, tp, "%s", sub.v[i].msg);
        pl_err_free(&sub);
        free(tp);
        return PL_EINVAL;
    }
    m->tls = true;
    rc = from_upstream((const PL_TLS_UPSTREAM_T *)msg, tp, false, m, err);
    if (owned)
        protobuf_c_message_free_unpacked(msg, NULL);
    free(tp);
    if (rc)
        pl_tls_client_material_free(m);
    return rc;
}

int pl_tls_client_material_from_sources(const DS_T *root_certs, const DS_T *cert_chain,
                                        const DS_T *private_key, const char *path,
                                        struct pl_tls_client_material *m, struct pl_err *err)
{
    memset(m, 0, sizeof(*m));
    m->tls = true;
    if (!cert_chain != !private_key) {
        char *p = pl_asprintf("%s.%s", path, cert_chain ? "private_key" : "cert_chain");
        pl_err_add(err, NULL, 0, 0, p, "cert_chain and private_key go together");
        free(p);
        return PL_EINVAL;
    }
    /* the same as an UpstreamTlsContext with these sources, so the checks are the same */
    COMMON_T common = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
    CERT_T cert = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
    CERT_T *certs[1] = {&cert};
    VALCTX_T v =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
    PL_TLS_UPSTREAM_T up =
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__UPSTREAM_TLS_CONTEXT__INIT;
    up.common_tls_context = &common;
    if (cert_chain) {
        cert.certificate_chain = (DS_T *)cert_chain;
        cert.private_key = (DS_T *)private_key;
        common.n_tls_certificates = 1;
        common.tls_certificates = certs;
    }
    if (root_certs) {
        v.trusted_ca = (DS_T *)root_certs;
        common.validation_context_type_case =
            TLSV3(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT);
        common.validation_context = &v;
    }
    /* gRPC's SSL credentials verify the server against the system's roots by default */
    int rc = from_upstream(&up, path, true, m, err);
    if (rc)
        pl_tls_client_material_free(m);
    return rc;
}

bool pl_tls_ctx_check_peer_pem(const struct pl_tls_ctx *c, const char *pem)
{
    if (!c->n_sans)
        return true;
    if (!pem)
        return false;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        pl_die("out of memory (OpenSSL)");
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (!x)
        return false;
    bool ok = pl_tls_san_check(c->sans, c->n_sans, x);
    X509_free(x);
    return ok;
}

void pl_tls_client_material_free(struct pl_tls_client_material *m)
{
    free(m->root_pem);
    free(m->cert_pem);
    if (m->key_pem) { /* a private key: do not leave it in freed memory */
        OPENSSL_cleanse(m->key_pem, strlen(m->key_pem));
        free(m->key_pem);
    }
    pl_tls_ctx_unref(m->ctx);
    memset(m, 0, sizeof(*m));
}
