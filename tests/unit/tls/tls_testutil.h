/* Shared by the TLS unit tests: certificates made with the openssl CLI into a temp dir once per
 * test run, contexts compiled from Envoy-format YAML, and a loop that drives a client and a
 * server session over a socketpair. */
#ifndef PL_TESTS_TLS_TESTUTIL_H
#define PL_TESTS_TLS_TESTUTIL_H

#include <stdbool.h>

#include "tls/tls.h"

/* Generates the certificates (runner process, before any test: PRE_ALL) and removes them. */
void tt_certs_setup(void);
void tt_certs_teardown(void);
/* Returns "<certdir>/<name>" in a static rotating buffer (valid for the next 7 calls). */
const char *tt_path(const char *name);
/* Returns the file's contents (malloc'd, NUL-terminated). */
char *tt_slurp(const char *name);

/* Compiles a DownstreamTlsContext (server) or UpstreamTlsContext (client) given in YAML, where
 * "$D" stands for the certificate dir. Errors go to err (may be NULL); the path prefix is "tls". */
int tt_compile(enum pl_tls_role role, const char *yaml, struct pl_tls_ctx **out,
               struct pl_err *err);
/* As tt_compile, failing the test on error. */
struct pl_tls_ctx *tt_ctx(enum pl_tls_role role, const char *yaml);

/* A client and a server session over a socketpair. */
struct tt_pair {
    int fds[2];
    struct pl_tls_conn *c, *s;
    int crc, src; /* handshake results: 0, PL_EIO (or PL_EAGAIN if the loop gave up) */
};
/* Connects client to server and drives both handshakes to the end (bounded). */
void tt_handshake(struct tt_pair *p, struct pl_tls_ctx *client, struct pl_tls_ctx *server,
                  const char *sni);
void tt_pair_close(struct tt_pair *p);

#endif
