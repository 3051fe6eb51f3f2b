/* Envoy-compatible admin server: HTTP/1.1 on the main thread's libev loop, with keep-alive and
 * pipelining, bounded requests, an idle timeout and a connection limit.
 *
 * Endpoints are registered with pl_admin_register; a handler runs on the loop thread, reads the
 * parsed request and fills a response. Built in: /help, /stats (text, ?format=json|prometheus,
 * ?filter=REGEX, ?usedonly), /stats/prometheus, /reset_counters, /logging, /healthcheck/fail,
 * /healthcheck/ok and /memory. An unknown path gets 404 with the list of endpoints; an endpoint
 * registered as mutating answers 405 unless the method is POST, as Envoy does.
 */
#ifndef PL_ADMIN_ADMIN_H
#define PL_ADMIN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/h1_parser.h"

struct ev_loop;
struct pl_stats;
struct pl_admin;
struct pl_admin_response;

struct pl_admin_config {
    const char *address;       /* IPv4 or IPv6 literal ("127.0.0.1", "::1"); NULL: 127.0.0.1 */
    uint16_t port;             /* 0: an ephemeral port (see pl_admin_port) */
    const char *unix_path;     /* if set, listen on this unix socket path instead */
    unsigned max_connections;  /* 0: 64; further connections are closed at once */
    double idle_timeout_s;     /* 0: 300 s */
    size_t max_request_header; /* 0: 60 KiB (431 beyond) */
    size_t max_request_body;   /* 0: 1 MiB (413 beyond) */
};

/* A decoded query parameter. value is "" for "?usedonly" without '='. */
struct pl_admin_param {
    const char *name;
    const char *value;
};

/* The request a handler sees; all strings are NUL-terminated and valid during the call. */
struct pl_admin_request {
    const char *method;
    const char *path;   /* URL-decoded, without the query */
    const char *target; /* raw request-target */
    const struct pl_admin_param *params;
    size_t num_params;
    const struct pl_h1_header *headers; /* slices, not NUL-terminated */
    size_t num_headers;
    const char *body;
    size_t body_len;
};

/* Handler: fills resp (default 200, text/plain; charset=UTF-8, empty body). */
typedef void (*pl_admin_handler_fn)(const struct pl_admin_request *req,
                                    struct pl_admin_response *resp, void *ctx);

/* Starts listening on loop (the main thread's). On failure returns PL_EIO or PL_EINVAL with a
 * message in err (may be NULL). stats may be NULL (then no stats endpoints). Free with
 * pl_admin_free. */
int pl_admin_new(struct ev_loop *loop, const struct pl_admin_config *cfg, struct pl_stats *stats,
                 struct pl_err *err, struct pl_admin **out);
/* Closes the listener and every connection; unlinks the unix socket path if one was used. */
void pl_admin_free(struct pl_admin *a);
/* Returns the bound TCP port (useful with port 0), or 0 for a unix socket. */
int pl_admin_port(const struct pl_admin *a);
/* Adds an endpoint at an exact path ("/clusters"); mutates: POST required (else 405). Returns
 * PL_EEXIST if the path is taken, PL_EINVAL if it does not start with '/'. Loop thread only. */
int pl_admin_register(struct pl_admin *a, const char *path, const char *help, bool mutates,
                      pl_admin_handler_fn fn, void *ctx);
/* True after POST /healthcheck/fail until POST /healthcheck/ok. */
bool pl_admin_health_failed(const struct pl_admin *a);
/* Returns the number of open client connections. */
size_t pl_admin_connections(const struct pl_admin *a);

/* Returns the decoded value of the first query parameter called name, or NULL if absent. */
const char *pl_admin_param(const struct pl_admin_request *req, const char *name);

/* Sets the response status code. */
void pl_admin_resp_status(struct pl_admin_response *r, int status);
/* Sets the content-type (copied). */
void pl_admin_resp_content_type(struct pl_admin_response *r, const char *ct);
/* Adds a response header (both copied); name must be a token and value free of CR/LF. */
void pl_admin_resp_header(struct pl_admin_response *r, const char *name, const char *value);
/* Appends bytes to the body. */
void pl_admin_resp_append(struct pl_admin_response *r, const char *data, size_t len);
/* Appends formatted text to the body. */
void pl_admin_resp_printf(struct pl_admin_response *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Calls fn(ctx) on the loop thread once this response has been written to the socket (or the
 * connection is gone), e.g. to stop the server after /quitquitquit answered. */
void pl_admin_resp_on_sent(struct pl_admin_response *r, void (*fn)(void *ctx), void *ctx);

#endif
