/* Helpers for the TLS unit tests (see tls_testutil.h). */
#include "tls_testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/pbjson.h"

#define ENV_DIR "PL_TLS_TEST_CERTS"

/* EC P-256 keys (fast); one RSA key for the two-certificates case. */
static const char script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "ca() {\n"
    "  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key \\\n"
    "    -out $1.crt -subj /CN=$1 -days 30 -addext basicConstraints=critical,CA:TRUE \\\n"
    "    -addext keyUsage=critical,keyCertSign,cRLSign\n"
    "}\n"
    "leaf() {\n"
    "  if [ \"$5\" = rsa ]; then kt='rsa -pkeyopt rsa_keygen_bits:2048'; \\\n"
    "  else kt='ec -pkeyopt ec_paramgen_curve:P-256'; fi\n"
    "  openssl req -newkey $kt -nodes -keyout $1.key -out $1.csr -subj /CN=$1\n"
    "  printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n"
    "extendedKeyUsage=serverAuth,clientAuth\\n' \"$4\" > $1.ext\n"
    "  openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -days $3 -extfile $1.ext \\\n"
    "    -out $1.crt\n"
    "}\n"
    "ca ca\n"
    "ca otherca\n"
    "leaf server ca 30 'DNS:server.test,DNS:*.wild.test,"
    "URI:spiffe://cluster.local/ns/default/sa/server,IP:127.0.0.1,email:srv@example.com'\n"
    "leaf client ca 30 'URI:spiffe://cluster.local/ns/default/sa/client,DNS:client.test'\n"
    "leaf expired ca -1 'DNS:server.test'\n"
    "leaf wrongca otherca 30 'DNS:server.test'\n"
    "leaf rsa ca 30 'DNS:server.test' rsa\n"
    "printf -- '-----BEGIN CERTIFICATE-----\\nnot*base64\\n-----END CERTIFICATE-----\\n' "
    "> bad.pem\n"
    "printf 'just text\\n' > text.txt\n";

void tt_certs_setup(void)
{
    char tmpl[] = "/tmp/pl-tls-test-XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        exit(1);
    }
    char *sh = pl_asprintf("%s/gen.sh", tmpl);
    FILE *f = fopen(sh, "w");
    if (!f || fputs(script, f) < 0 || fclose(f)) {
        perror(sh);
        exit(1);
    }
    char *cmd = pl_asprintf("sh '%s' '%s' > '%s/gen.log' 2>&1", sh, tmpl, tmpl);
    if (system(cmd) != 0) {
        fprintf(stderr, "generating test certificates failed, see %s/gen.log\n", tmpl);
        exit(1);
    }
    free(cmd);
    free(sh);
    setenv(ENV_DIR, tmpl, 1);
}

void tt_certs_teardown(void)
{
    const char *d = getenv(ENV_DIR);
    if (!d || strncmp(d, "/tmp/pl-tls-test-", 17) != 0)
        return;
    char *cmd = pl_asprintf("rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d);
    free(cmd);
}

static const char *dir(void)
{
    const char *d = getenv(ENV_DIR);
    cr_assert(d, "certificates were not generated (PRE_ALL hook missing)");
    return d;
}

const char *tt_path(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir(), name);
    return b;
}

char *tt_slurp(const char *name)
{
    FILE *f = fopen(tt_path(name), "rb");
    cr_assert(f, "cannot open %s", name);
    char *buf = NULL;
    size_t n = 0;
    for (;;) {
        buf = pl_realloc(buf, n + 4097);
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got < 4096)
            break;
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Replaces every "$D" with the cert dir. */
static char *expand(const char *yaml)
{
    const char *d = dir();
    size_t cap = strlen(yaml) * 2 + 1, n = 0;
    for (const char *p = yaml; (p = strstr(p, "$D")); p += 2)
        cap += strlen(d);
    char *out = pl_malloc(cap);
    for (const char *p = yaml; *p;) {
        if (p[0] == '$' && p[1] == 'D') {
            n += (size_t)sprintf(out + n, "%s", d);
            p += 2;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

int tt_compile(enum pl_tls_role role, const char *yaml, struct pl_tls_ctx **out, struct pl_err *err)
{
    struct pl_err local = PL_ERR_INIT;
    if (!err)
        err = &local;
    char *text = expand(yaml);
    const ProtobufCMessageDescriptor *d =
        role == PL_TLS_SERVER
            ? &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor
            : &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor;
    ProtobufCMessage *m = NULL;
    int rc = pl_pbjson_load_text(text, strlen(text), "test.yaml", d, NULL, &m, NULL, err);
    free(text);
    if (rc) {
        pl_err_print(err, stderr);
        cr_assert_fail("bad test YAML");
    }
    if (role == PL_TLS_SERVER)
        rc = pl_tls_ctx_downstream((PL_TLS_DOWNSTREAM_T *)m, "tls", out, err);
    else
        rc = pl_tls_ctx_upstream((PL_TLS_UPSTREAM_T *)m, "tls", out, err);
    protobuf_c_message_free_unpacked(m, NULL);
    pl_err_free(&local);
    return rc;
}

struct pl_tls_ctx *tt_ctx(enum pl_tls_role role, const char *yaml)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_tls_ctx *c = NULL;
    int rc = tt_compile(role, yaml, &c, &err);
    if (rc) {
        char *msg = pl_err_join(&err);
        cr_assert_fail("compile failed: %s", msg);
    }
    pl_err_free(&err);
    return c;
}

void tt_handshake(struct tt_pair *p, struct pl_tls_ctx *client, struct pl_tls_ctx *server,
                  const char *sni)
{
    memset(p, 0, sizeof(*p));
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds), 0);
    p->c = pl_tls_conn_new(client, p->fds[0], sni);
    p->s = pl_tls_conn_new(server, p->fds[1], NULL);
    p->crc = p->src = PL_EAGAIN;
    /* each turn moves at least one flight; a handful suffice, 200 bounds a bug */
    for (int i = 0; i < 200 && (p->crc == PL_EAGAIN || p->src == PL_EAGAIN); i++) {
        if (p->crc == PL_EAGAIN)
            p->crc = pl_tls_conn_handshake(p->c);
        if (p->src == PL_EAGAIN)
            p->src = pl_tls_conn_handshake(p->s);
        /* a failed side closes, as a connection would, so the other sees EOF or the alert */
        if (p->crc == PL_EIO && p->fds[0] >= 0)
            shutdown(p->fds[0], SHUT_RDWR);
        if (p->src == PL_EIO && p->fds[1] >= 0)
            shutdown(p->fds[1], SHUT_RDWR);
    }
}

void tt_pair_close(struct tt_pair *p)
{
    pl_tls_conn_free(p->c);
    pl_tls_conn_free(p->s);
    close(p->fds[0]);
    close(p->fds[1]);
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    tt_certs_setup();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    tt_certs_teardown();
}
