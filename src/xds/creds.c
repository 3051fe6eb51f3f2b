/* Channel credentials for the ADS channel: plaintext, or TLS with libgrpc's TLS credentials fed
 * from the material the bootstrap names (certificates from files or inline). The server check
 * follows the bootstrap: an envoy_grpc cluster's UpstreamTlsContext verifies the chain only with
 * a trusted_ca and the name only with SAN matchers (as Envoy does for any cluster); google_grpc
 * SSL credentials verify the chain and the host name, as gRPC does. */
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/string_util.h>

#include "core/log.h"
#include "tls/tls.h"
#include "xds/xds_internal.h"

/* The external verifier: the SAN matchers of the compiled context. */
struct verifier {
    grpc_tls_certificate_verifier_external ext; /* first: user_data points at the whole */
    struct pl_tls_ctx *ctx;
};

static int verify(void *user_data, grpc_tls_custom_verification_check_request *rq,
                  grpc_tls_on_custom_verification_check_done_cb cb, void *cb_arg,
                  grpc_status_code *status, char **details)
{
    (void)cb;
    (void)cb_arg;
    struct verifier *v = user_data;
    if (pl_tls_ctx_check_peer_pem(v->ctx, rq->peer_info.peer_cert)) {
        *status = GRPC_STATUS_OK;
        return 1;
    }
    *status = GRPC_STATUS_UNAUTHENTICATED;
    *details = gpr_strdup("the control plane's certificate matches none of "
                          "match_typed_subject_alt_names");
    return 1; /* synchronous */
}

static void cancel(void *user_data, grpc_tls_custom_verification_check_request *rq)
{
    (void)user_data;
    (void)rq;
}

static void destruct(void *user_data)
{
    struct verifier *v = user_data;
    pl_tls_ctx_unref(v->ctx);
    free(v);
}

grpc_channel_credentials *pl_xds_channel_creds(const struct pl_tls_client_material *m,
                                               bool check_host)
{
    if (!m || !m->tls)
        return grpc_insecure_credentials_create();
    grpc_tls_credentials_options *o = grpc_tls_credentials_options_create();
    grpc_tls_identity_pairs *pairs = NULL;
    if (m->cert_pem) {
        pairs = grpc_tls_identity_pairs_create();
        grpc_tls_identity_pairs_add_pair(pairs, m->key_pem, m->cert_pem);
    }
    grpc_tls_certificate_provider *p =
        grpc_tls_certificate_provider_static_data_create(m->root_pem, pairs);
    grpc_tls_credentials_options_set_certificate_provider(o, p);
    grpc_tls_certificate_provider_release(p);
    if (m->root_pem)
        grpc_tls_credentials_options_watch_root_certs(o);
    if (m->cert_pem)
        grpc_tls_credentials_options_watch_identity_key_cert_pairs(o);
    grpc_tls_credentials_options_set_verify_server_cert(o, m->verify_server);
    grpc_tls_certificate_verifier *cv;
    if (check_host) {
        cv = grpc_tls_certificate_verifier_host_name_create();
    } else {
        struct verifier *v = pl_calloc(1, sizeof(*v));
        v->ctx = pl_tls_ctx_ref(m->ctx);
        v->ext.user_data = v;
        v->ext.verify = verify;
        v->ext.cancel = cancel;
        v->ext.destruct = destruct;
        cv = grpc_tls_certificate_verifier_external_create(&v->ext);
        grpc_tls_credentials_options_set_check_call_host(o, 0);
    }
    grpc_tls_credentials_options_set_certificate_verifier(o, cv);
    grpc_tls_certificate_verifier_release(cv);
    return grpc_tls_credentials_create(o);
}
