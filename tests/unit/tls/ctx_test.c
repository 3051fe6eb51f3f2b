/* Compiling DownstreamTlsContext / UpstreamTlsContext: data sources and every config error,
 * each with its field path. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "tls_testutil.h"

/* Compiles and expects failure with code; returns the errors joined ("path: msg; ..."). */
static char *fails(enum pl_tls_role role, const char *yaml, int code)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_tls_ctx *c = (struct pl_tls_ctx *)1;
    int rc = tt_compile(role, yaml, &c, &err);
    cr_assert_eq(rc, code, "rc %d for:\n%s", rc, yaml);
    cr_assert_null(c);
    cr_assert_gt(err.n, 0);
    size_t cap = 1;
    for (size_t i = 0; i < err.n; i++)
        cap += strlen(err.v[i].path ? err.v[i].path : "") + strlen(err.v[i].msg) + 4;
    char *out = pl_malloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < err.n; i++) {
        strcat(out, err.v[i].path ? err.v[i].path : "");
        strcat(out, ": ");
        strcat(out, err.v[i].msg);
        if (i + 1 < err.n)
            strcat(out, "; ");
    }
    pl_err_free(&err);
    return out;
}

static void expect_error(enum pl_tls_role role, const char *yaml, int code, const char *want)
{
    char *got = fails(role, yaml, code);
    cr_expect(strstr(got, want), "want '%s' in '%s'", want, got);
    free(got);
}

/* Returns s with every newline written as the two characters \n (malloc'd). */
static char *escape_nl(const char *s)
{
    char *out = pl_malloc(strlen(s) * 2 + 1), *o = out;
    for (; *s; s++) {
        if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

#define CERT(crt, key)                                                                             \
    "common_tls_context:\n"                                                                        \
    "  tls_certificates:\n"                                                                        \
    "  - certificate_chain: " crt "\n"                                                             \
    "    private_key: " key "\n"

Test(ctx, compiles_from_files_inline_string_and_inline_bytes)
{
    struct pl_tls_ctx *c =
        tt_ctx(PL_TLS_SERVER, CERT("{filename: $D/server.crt}", "{filename: $D/server.key}"));
    cr_assert_eq(pl_tls_ctx_role(c), PL_TLS_SERVER);
    cr_assert_eq(pl_tls_ctx_ref(c), c);
    pl_tls_ctx_unref(c);
    pl_tls_ctx_unref(c);
    pl_tls_ctx_unref(NULL);

    /* inline_string: a double-quoted YAML string with \n escapes */
    char *crt = tt_slurp("server.crt"), *key = tt_slurp("server.key");
    char *ec = escape_nl(crt), *ek = escape_nl(key);
    char *yaml = pl_asprintf(CERT("{inline_string: \"%s\"}", "{inline_string: \"%s\"}"), ec, ek);
    c = tt_ctx(PL_TLS_SERVER, yaml);
    pl_tls_ctx_unref(c);
    free(yaml);
    free(ec);
    free(ek);

    /* inline_bytes: base64 in proto3 JSON */
    char *b64c =
        pl_asprintf("base64 -w0 '%s' > '%s.b64'", tt_path("server.crt"), tt_path("server.crt"));
    char *b64k =
        pl_asprintf("base64 -w0 '%s' > '%s.b64'", tt_path("server.key"), tt_path("server.key"));
    cr_assert_eq(system(b64c), 0);
    cr_assert_eq(system(b64k), 0);
    char *bc = tt_slurp("server.crt.b64"), *bk = tt_slurp("server.key.b64");
    yaml = pl_asprintf(CERT("{inline_bytes: '%s'}", "{inline_bytes: '%s'}"), bc, bk);
    c = tt_ctx(PL_TLS_SERVER, yaml);
    pl_tls_ctx_unref(c);
    free(yaml);
    free(bc);
    free(bk);
    free(b64c);
    free(b64k);
    free(crt);
    free(key);
}

Test(ctx, two_certificates_of_different_key_types)
{
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_SERVER, CERT("{filename: $D/server.crt}",
                                                      "{filename: $D/server.key}") //
                                  "  - certificate_chain: {filename: $D/rsa.crt}\n"
                                  "    private_key: {filename: $D/rsa.key}\n");
    pl_tls_ctx_unref(c);
    expect_error(PL_TLS_SERVER,
                 CERT("{filename: $D/server.crt}", "{filename: $D/server.key}") //
                 "  - certificate_chain: {filename: $D/client.crt}\n"
                 "    private_key: {filename: $D/client.key}\n",
                 PL_EINVAL,
                 "tls.common_tls_context.tls_certificates[1].certificate_chain: cannot use "
                 "certificate");
}

Test(ctx, missing_files_name_the_field)
{
    expect_error(PL_TLS_SERVER, CERT("{filename: $D/nope.crt}", "{filename: $D/server.key}"),
                 PL_EINVAL,
                 "tls.common_tls_context.tls_certificates[0].certificate_chain.filename: cannot "
                 "read '");
    expect_error(PL_TLS_SERVER, CERT("{filename: $D/nope.crt}", "{filename: $D/server.key}"),
                 PL_EINVAL, "nope.crt': No such file or directory");
    expect_error(PL_TLS_SERVER, CERT("{filename: $D/server.crt}", "{filename: $D/nope.key}"),
                 PL_EINVAL,
                 "tls.common_tls_context.tls_certificates[0].private_key.filename: cannot read");
    expect_error(PL_TLS_SERVER, CERT("{filename: $D}", "{filename: $D/server.key}"), PL_EINVAL,
                 "is not a regular file");
    expect_error(PL_TLS_CLIENT,
                 "common_tls_context:\n"
                 "  validation_context:\n"
                 "    trusted_ca: {filename: $D/nope.pem}\n",
                 PL_EINVAL,
                 "tls.common_tls_context.validation_context.trusted_ca.filename: cannot read");
}

Test(ctx, key_not_matching_certificate)
{
    expect_error(PL_TLS_SERVER, CERT("{filename: $D/server.crt}", "{filename: $D/client.key}"),
                 PL_EINVAL,
                 "tls.common_tls_context.tls_certificates[0].private_key: private key does not "
                 "match the certificate");
    expect_error(PL_TLS_CLIENT, CERT("{filename: $D/server.crt}", "{filename: $D/rsa.key}"),
                 PL_EINVAL, "private key does not match");
}

Test(ctx, malformed_pem)
{
    expect_error(PL_TLS_SERVER, CERT("{filename: $D/bad.pem}", "{filename: $D/server.key}"),
                 PL_EINVAL,
                 "tls.common_tls_context.tls_certificates[0].certificate_chain: malformed PEM "
                 "certificate");
    expect_error(PL_TLS_SERVER, CERT("{filename: $D/text.txt}", "{filename: $D/server.key}"),
                 PL_EINVAL, "malformed PEM certificate (no PEM certificate found)");
    expect_error(PL_TLS_SERVER, CERT("{filename: $D/server.crt}", "{filename: $D/text.txt}"),
                 PL_EINVAL,
                 "tls.common_tls_context.tls_certificates[0].private_key: malformed PEM private "
                 "key");
    expect_error(PL_TLS_SERVER, CERT("{inline_string: ''}", "{filename: $D/server.key}"), PL_EINVAL,
                 "certificate_chain: is empty");
    expect_error(PL_TLS_SERVER,
                 CERT("{inline_string: \"-----BEGIN CERTIFICATE-----\\nAAAA\\n\"}",
                      "{filename: $D/server.key}"),
                 PL_EINVAL, "malformed PEM certificate");
    expect_error(PL_TLS_CLIENT,
                 "common_tls_context:\n"
                 "  validation_context:\n"
                 "    trusted_ca: {filename: $D/text.txt}\n",
                 PL_EINVAL,
                 "tls.common_tls_context.validation_context.trusted_ca: malformed PEM "
                 "certificate (no PEM certificate found)");
    /* a good certificate followed by garbage is malformed too */
    char *crt = tt_slurp("server.crt"), *bad = tt_slurp("bad.pem");
    char *both = pl_asprintf("%s%s", crt, bad);
    FILE *f = fopen(tt_path("mixed.pem"), "w");
    cr_assert(f);
    fputs(both, f);
    fclose(f);
    expect_error(PL_TLS_SERVER, CERT("{filename: $D/mixed.pem}", "{filename: $D/server.key}"),
                 PL_EINVAL, "certificate_chain: malformed PEM certificate");
    free(crt);
    free(bad);
    free(both);
}

Test(ctx, server_needs_a_certificate)
{
    expect_error(PL_TLS_SERVER, "require_client_certificate: false\n", PL_EINVAL,
                 "tls.common_tls_context.tls_certificates: a server needs");
    expect_error(PL_TLS_SERVER, "common_tls_context: {alpn_protocols: [h2]}\n", PL_EINVAL,
                 "tls.common_tls_context.tls_certificates: a server needs a certificate");
    /* a client without anything is fine: plain TLS, no verification (Envoy's default) */
    struct pl_tls_ctx *c = tt_ctx(PL_TLS_CLIENT, "{}");
    cr_assert_eq(pl_tls_ctx_role(c), PL_TLS_CLIENT);
    pl_tls_ctx_unref(c);
}

#define SRV CERT("{filename: $D/server.crt}", "{filename: $D/server.key}")

Test(ctx, tls_params_errors)
{
    expect_error(PL_TLS_SERVER,
                 SRV "  tls_params: {tls_minimum_protocol_version: TLSv1_3, "
                     "tls_maximum_protocol_version: TLSv1_2}\n",
                 PL_EINVAL,
                 "tls.common_tls_context.tls_params.tls_minimum_protocol_version: is greater than "
                 "tls_maximum_protocol_version");
    expect_error(PL_TLS_SERVER,
                 SRV "  tls_params: {cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256, NOT-A-CIPHER]}\n",
                 PL_EINVAL,
                 "tls.common_tls_context.tls_params.cipher_suites[1]: unknown or unusable cipher "
                 "suite 'NOT-A-CIPHER'");
    expect_error(PL_TLS_SERVER,
                 SRV "  tls_params: {cipher_suites: ['[ECDHE-RSA-AES128-GCM-SHA256|BOGUS]']}\n",
                 PL_EINVAL, "cipher_suites[0]: unknown or unusable cipher suite 'BOGUS'");
    expect_error(PL_TLS_CLIENT, "common_tls_context: {alpn_protocols: [h2, '']}\n", PL_EINVAL,
                 "tls.common_tls_context.alpn_protocols[1]: a protocol name has 1 to 255 bytes");
}

Test(ctx, validation_errors)
{
    expect_error(PL_TLS_SERVER, SRV "require_client_certificate: true\n", PL_EINVAL,
                 "tls.require_client_certificate: needs "
                 "common_tls_context.validation_context.trusted_ca");
    expect_error(PL_TLS_CLIENT,
                 "common_tls_context:\n"
                 "  validation_context:\n"
                 "    match_typed_subject_alt_names:\n"
                 "    - {san_type: DNS, matcher: {exact: a}}\n",
                 PL_EINVAL,
                 "tls.common_tls_context.validation_context.trusted_ca: is required with "
                 "match_typed_subject_alt_names");
    const char *head = "common_tls_context:\n"
                       "  validation_context:\n"
                       "    trusted_ca: {filename: $D/ca.crt}\n"
                       "    match_typed_subject_alt_names:\n";
    struct {
        const char *san, *want;
        int code;
    } cases[] = {
        {"    - {san_type: OTHER_NAME, matcher: {exact: a}}\n",
         "match_typed_subject_alt_names[0].san_type: san_type OTHER_NAME is not supported",
         PL_ENOTSUP},
        {"    - {matcher: {exact: a}}\n",
         "match_typed_subject_alt_names[0].san_type: san_type must be one of", PL_EINVAL},
        {"    - {san_type: DNS}\n", "match_typed_subject_alt_names[0].matcher: matcher is required",
         PL_EINVAL},
        {"    - {san_type: DNS, matcher: {ignore_case: true}}\n",
         "match_typed_subject_alt_names[0].matcher: one of exact, prefix", PL_EINVAL},
        {"    - {san_type: URI, matcher: {exact: a}}\n"
         "    - {san_type: URI, matcher: {safe_regex: {regex: '('}}}\n",
         "match_typed_subject_alt_names[1].matcher.safe_regex.regex: invalid regex '('", PL_EINVAL},
        {"    - {san_type: URI, matcher: {prefix: ''}}\n",
         "match_typed_subject_alt_names[0].matcher.prefix: value must not be empty", PL_EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *y = pl_asprintf("%s%s", head, cases[i].san);
        expect_error(PL_TLS_CLIENT, y, cases[i].code, cases[i].want);
        free(y);
    }
}

Test(ctx, every_error_is_reported_not_just_the_first)
{
    char *got = fails(PL_TLS_SERVER,
                      CERT("{filename: $D/nope.crt}", "{filename: $D/nope.key}") //
                      "  tls_params: {cipher_suites: [BOGUS]}\n"
                      "  validation_context: {trusted_ca: {filename: $D/nope.ca}}\n",
                      PL_EINVAL);
    cr_expect(strstr(got, "certificate_chain.filename"), "%s", got);
    cr_expect(strstr(got, "private_key.filename"), "%s", got);
    cr_expect(strstr(got, "cipher_suites[0]"), "%s", got);
    cr_expect(strstr(got, "trusted_ca.filename"), "%s", got);
    free(got);
}

static Google__Protobuf__Any *any_of(const char *type, const char *yaml)
{
    char *text = pl_asprintf("{'@type': 'type.googleapis.com/%s', %s}", type, yaml);
    ProtobufCMessage *m = NULL;
    struct pl_err err = PL_ERR_INIT;
    int rc = pl_pbjson_load_text(text, strlen(text), "any.yaml", &google__protobuf__any__descriptor,
                                 NULL, &m, NULL, &err);
    cr_assert_eq(rc, 0);
    free(text);
    return (Google__Protobuf__Any *)m;
}

Test(ctx, from_transport_socket)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_tls_ctx *c = (struct pl_tls_ctx *)1;
    cr_assert_eq(pl_tls_ctx_from_transport_socket(NULL, PL_TLS_SERVER, "ts", &c, &err), 0);
    cr_assert_null(c);

    Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
    ts.name = "envoy.transport_sockets.raw_buffer";
    cr_assert_eq(pl_tls_ctx_from_transport_socket(&ts, PL_TLS_SERVER, "ts", &c, &err), 0);
    cr_assert_null(c);

    char *y = pl_asprintf("common_tls_context: {tls_certificates: [{certificate_chain: "
                          "{filename: '%s'}, private_key: {filename: '%s'}}]}",
                          tt_path("server.crt"), tt_path("server.key"));
    ts.name = "envoy.transport_sockets.tls";
    ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
    ts.typed_config = any_of("envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", y);
    cr_assert_eq(pl_tls_ctx_from_transport_socket(&ts, PL_TLS_SERVER, "ts", &c, &err), 0);
    cr_assert_not_null(c);
    cr_assert_eq(pl_tls_ctx_role(c), PL_TLS_SERVER);
    pl_tls_ctx_unref(c);
    /* a DownstreamTlsContext where a cluster needs an UpstreamTlsContext */
    cr_assert_eq(pl_tls_ctx_from_transport_socket(&ts, PL_TLS_CLIENT, "ts", &c, &err), PL_EINVAL);
    cr_assert_null(c);
    cr_assert_str_eq(err.v[0].path, "ts.typed_config");
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(&ts.typed_config->base, NULL);

    ts.typed_config =
        any_of("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", "sni: a.test");
    cr_assert_eq(pl_tls_ctx_from_transport_socket(&ts, PL_TLS_CLIENT, "ts", &c, &err), 0);
    cr_assert_eq(pl_tls_ctx_role(c), PL_TLS_CLIENT);
    pl_tls_ctx_unref(c);
    protobuf_c_message_free_unpacked(&ts.typed_config->base, NULL);

    /* errors inside carry the path through typed_config */
    ts.typed_config = any_of("envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                             "common_tls_context: {tls_certificates: [{certificate_chain: "
                             "{filename: /nonexistent/x.crt}, private_key: {filename: "
                             "/nonexistent/x.key}}]}");
    cr_assert_eq(pl_tls_ctx_from_transport_socket(&ts, PL_TLS_SERVER, "ts", &c, &err), PL_EINVAL);
    cr_assert_str_eq(
        err.v[0].path,
        "ts.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename");
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(&ts.typed_config->base, NULL);
    free(y);
}
