/* Private to src/admin: shared by the server (admin.c) and the built-in endpoints. */
#ifndef PL_ADMIN_ADMIN_INTERNAL_H
#define PL_ADMIN_ADMIN_INTERNAL_H

#include <ev.h>

#include "admin/admin.h"

struct pl_admin_buf {
    char *p;
    size_t len, cap;
};

struct pl_admin_response {
    int status;
    char *content_type;
    struct pl_admin_buf headers; /* extra "name: value\r\n" lines */
    struct pl_admin_buf body;
    void (*on_sent)(void *ctx);
    void *on_sent_ctx;
};

struct pl_admin_endpoint {
    char *path;
    char *help;
    bool mutates;
    pl_admin_handler_fn fn;
    void *ctx;
};

struct pl_admin_conn;

struct pl_admin {
    struct ev_loop *loop;
    struct pl_admin_config cfg;
    struct pl_stats *stats;
    int fd;
    int port;
    char *unix_path;
    ev_io accept_w;
    struct pl_admin_endpoint *eps;
    size_t neps;
    struct pl_admin_conn *conns; /* doubly linked */
    size_t nconns;
    bool health_failed;
};

/* Grows b for n more bytes and appends them. */
void pl_admin_buf_add(struct pl_admin_buf *b, const char *s, size_t n);
/* Registers the built-in endpoints. */
void pl_admin_builtins(struct pl_admin *a);
/* Writes the "admin commands are:" list into r. */
void pl_admin_help(struct pl_admin *a, struct pl_admin_response *r);

#endif
