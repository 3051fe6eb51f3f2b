/* The admin listener and its connections: read, parse (h1 parser), dispatch, write. */
#include "admin/admin_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"

#define READ_CHUNK     16384
#define OUT_HIGH_WATER (1u << 20) /* stop handling pipelined requests until output drains */
#define MAX_PARAMS     64

struct sent_cb {
    uint64_t at; /* fire once this many bytes have been written */
    void (*fn)(void *ctx);
    void *ctx;
};

struct pl_admin_conn {
    struct pl_admin *a;
    struct pl_admin_conn *prev, *next;
    int fd;
    ev_io rw, ww;
    ev_timer idle;
    struct pl_h1_parser parser;
    struct pl_admin_buf in, out, body;
    size_t out_off;
    uint64_t written, queued; /* totals, for on_sent callbacks */
    struct sent_cb *cbs;
    size_t ncbs;
    bool in_body, close_after, reading, lingering;
    char *head; /* copy of the current request head; msg slices point into it */
    struct pl_h1_msg msg;
    struct pl_h1_header hdrs[128];
};

static void buf_reserve(struct pl_admin_buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->p = pl_realloc(b->p, cap);
    b->cap = cap;
}

void pl_admin_buf_add(struct pl_admin_buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_consume(struct pl_admin_buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* ---- response builder ---- */

void pl_admin_resp_status(struct pl_admin_response *r, int status)
{
    r->status = status;
}

void pl_admin_resp_content_type(struct pl_admin_response *r, const char *ct)
{
    free(r->content_type);
    r->content_type = pl_strdup(ct);
}

void pl_admin_resp_header(struct pl_admin_response *r, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n: \t") || strpbrk(value, "\r\n")) {
        pl_log_error("admin", "dropping invalid response header %s", name);
        return;
    }
    pl_admin_buf_add(&r->headers, name, strlen(name));
    pl_admin_buf_add(&r->headers, ": ", 2);
    pl_admin_buf_add(&r->headers, value, strlen(value));
    pl_admin_buf_add(&r->headers, "\r\n", 2);
}

void pl_admin_resp_append(struct pl_admin_response *r, const char *data, size_t len)
{
    pl_admin_buf_add(&r->body, data, len);
}

void pl_admin_resp_printf(struct pl_admin_response *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(&r->body, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(r->body.p + r->body.len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    r->body.len += (size_t)n;
}

void pl_admin_resp_on_sent(struct pl_admin_response *r, void (*fn)(void *ctx), void *ctx)
{
    r->on_sent = fn;
    r->on_sent_ctx = ctx;
}

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Serializes r onto the connection's output; frees r's buffers. */
static void queue_response(struct pl_admin_conn *c, struct pl_admin_response *r, bool head_only)
{
    char line[512];
    int n = snprintf(line, sizeof(line),
                     "HTTP/1.1 %d %s\r\ncontent-type: %s\r\n"
                     "cache-control: no-cache, max-age=0\r\nx-content-type-options: nosniff\r\n",
                     r->status, reason(r->status),
                     r->content_type ? r->content_type : "text/plain; charset=UTF-8");
    pl_admin_buf_add(&c->out, line, (size_t)n);
    if (r->headers.len)
        pl_admin_buf_add(&c->out, r->headers.p, r->headers.len);
    n = snprintf(line, sizeof(line), "content-length: %zu\r\n%s\r\n", r->body.len,
                 c->close_after ? "connection: close\r\n" : "");
    pl_admin_buf_add(&c->out, line, (size_t)n);
    if (!head_only && r->body.len)
        pl_admin_buf_add(&c->out, r->body.p, r->body.len);
    c->queued = c->written + (c->out.len - c->out_off);
    if (r->on_sent) {
        c->cbs = pl_realloc(c->cbs, (c->ncbs + 1) * sizeof(*c->cbs));
        c->cbs[c->ncbs++] = (struct sent_cb){c->queued, r->on_sent, r->on_sent_ctx};
    }
    free(r->content_type);
    free(r->headers.p);
    free(r->body.p);
}

static void queue_error(struct pl_admin_conn *c, int status, const char *msg)
{
    struct pl_admin_response r = {.status = status};
    c->close_after = true;
    pl_admin_resp_printf(&r, "%s\n", msg);
    queue_response(c, &r, false);
}

/* ---- requests ---- */

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out (NUL-terminated); returns the next free byte. '+' is kept:
 * Envoy does not turn it into a space, and filters are regexes. */
static char *url_decode(const char *s, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = unhex(s[i + 1])) >= 0 && (l = unhex(s[i + 2])) >= 0) {
            *out++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *out++ = s[i];
        }
    }
    *out++ = 0;
    return out;
}

const char *pl_admin_param(const struct pl_admin_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_params; i++)
        if (!strcmp(req->params[i].name, name))
            return req->params[i].value;
    return NULL;
}

static const struct pl_admin_endpoint *find_endpoint(struct pl_admin *a, const char *path)
{
    for (size_t i = 0; i < a->neps; i++)
        if (!strcmp(a->eps[i].path, path))
            return &a->eps[i];
    return NULL;
}

static void dispatch(struct pl_admin_conn *c)
{
    struct pl_admin *a = c->a;
    const struct pl_h1_msg *m = &c->msg;
    char method[32];
    snprintf(method, sizeof(method), "%.*s", (int)m->method_len, m->method);
    /* one allocation for the raw target, the decoded path and the decoded params (each param
     * adds at most two NULs, and takes at least one byte plus a separator) */
    char *store = pl_malloc(4 * m->target_len + 8);
    char *target = store;
    memcpy(target, m->target, m->target_len);
    target[m->target_len] = 0;
    const char *q = memchr(target, '?', m->target_len);
    size_t path_len = q ? (size_t)(q - target) : m->target_len;
    char *path = target + m->target_len + 1;
    char *next = url_decode(target, path_len, path);
    struct pl_admin_param params[MAX_PARAMS];
    size_t np = 0;
    for (const char *p = q ? q + 1 : NULL; p && *p && np < MAX_PARAMS;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (len) {
            size_t nl = eq ? (size_t)(eq - p) : len;
            params[np].name = next;
            next = url_decode(p, nl, next);
            params[np].value = next;
            next = eq ? url_decode(eq + 1, len - nl - 1, next) : url_decode("", 0, next);
            np++;
        }
        p = amp ? amp + 1 : NULL;
    }
    struct pl_admin_request req = {
        .method = method,
        .path = path,
        .target = target,
        .params = params,
        .num_params = np,
        .headers = m->headers,
        .num_headers = m->num_headers,
        .body = c->body.p ? c->body.p : "",
        .body_len = c->body.len,
    };
    struct pl_admin_response r = {.status = 200};
    pl_admin_buf_add(&r.body, "", 0);
    const struct pl_admin_endpoint *ep = find_endpoint(a, path);
    if (!ep) {
        r.status = 404;
        pl_admin_resp_append(&r, "invalid path. ", 14);
        pl_admin_help(a, &r);
    } else if (ep->mutates && strcmp(method, "POST")) {
        pl_log_error("admin", "admin path \"%s\" mutates state, method=%s rather than POST",
                     ep->path, method);
        r.status = 405;
        pl_admin_resp_printf(&r, "Method %s not allowed, POST required.", method);
    } else {
        ep->fn(&req, &r, ep->ctx);
    }
    queue_response(c, &r, !strcmp(method, "HEAD"));
    free(store);
}

/* ---- connections ---- */

static void conn_close(struct pl_admin_conn *c)
{
    struct pl_admin *a = c->a;
    ev_io_stop(a->loop, &c->rw);
    ev_io_stop(a->loop, &c->ww);
    ev_timer_stop(a->loop, &c->idle);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    for (size_t i = 0; i < c->ncbs; i++)
        c->cbs[i].fn(c->cbs[i].ctx);
    free(c->cbs);
    free(c->in.p);
    free(c->out.p);
    free(c->body.p);
    free(c->head);
    free(c);
}

static void set_reading(struct pl_admin_conn *c, bool on)
{
    if (on == c->reading)
        return;
    c->reading = on;
    if (on)
        ev_io_start(c->a->loop, &c->rw);
    else
        ev_io_stop(c->a->loop, &c->rw);
}

/* Re-points the slices of msg from the input buffer to the copied head. */
static void rebase(struct pl_h1_msg *m, const char *from, char *to)
{
#define RB(p) ((p) ? to + ((p)-from) : NULL)
    m->method = RB(m->method);
    m->target = RB(m->target);
    for (size_t i = 0; i < m->num_headers; i++) {
        m->headers[i].name = RB(m->headers[i].name);
        m->headers[i].value = RB(m->headers[i].value);
    }
#undef RB
}

static void flush(struct pl_admin_conn *c);

/* Handles every complete request in the input buffer, in order; c may be closed on return. */
static void process(struct pl_admin_conn *c)
{
    struct pl_admin *a = c->a;
    while (!c->close_after) {
        if (c->out.len - c->out_off > OUT_HIGH_WATER) {
            set_reading(c, false); /* resumed by flush() */
            break;
        }
        if (!c->in_body) {
            if (c->in.len == 0)
                break;
            c->msg.headers = c->hdrs;
            c->msg.headers_cap = sizeof(c->hdrs) / sizeof(c->hdrs[0]);
            int r = pl_h1_parse_head(&c->parser, c->in.p, c->in.len, &c->msg);
            if (r == PL_EAGAIN)
                break;
            if (r < 0) {
                queue_error(c, pl_h1_error_status(r), pl_h1_strerror(r));
                break;
            }
            c->head = pl_malloc((size_t)r);
            memcpy(c->head, c->in.p, (size_t)r);
            rebase(&c->msg, c->in.p, c->head);
            buf_consume(&c->in, (size_t)r);
            c->in_body = true;
            c->body.len = 0;
            if (c->msg.expect_continue && c->msg.body != PL_H1_BODY_NONE) {
                if (c->msg.body == PL_H1_BODY_LENGTH &&
                    c->msg.content_length > a->cfg.max_request_body) {
                    queue_error(c, 413, "request body too large");
                    break;
                }
                pl_admin_buf_add(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            }
        }
        struct pl_h1_body b = {0};
        int r = pl_h1_parse_body(&c->parser, c->in.p, c->in.len, &b);
        if (r < 0) {
            queue_error(c, pl_h1_error_status(r), pl_h1_strerror(r));
            break;
        }
        if (c->body.len + b.len > a->cfg.max_request_body) {
            queue_error(c, 413, "request body too large");
            break;
        }
        pl_admin_buf_add(&c->body, b.data, b.len);
        buf_consume(&c->in, (size_t)r);
        if (!b.done) {
            if (r == 0 || c->in.len == 0)
                break;
            continue;
        }
        c->in_body = false;
        if (!c->msg.keep_alive || c->msg.upgrade || c->msg.connect)
            c->close_after = true;
        dispatch(c);
        free(c->head);
        c->head = NULL;
    }
    flush(c);
}

static void fire_sent(struct pl_admin_conn *c)
{
    size_t k = 0;
    for (size_t i = 0; i < c->ncbs; i++) {
        if (c->cbs[i].at <= c->written)
            c->cbs[i].fn(c->cbs[i].ctx);
        else
            c->cbs[k++] = c->cbs[i];
    }
    c->ncbs = k;
}

/* Half-closes and discards input until the peer closes (at most a second): closing with unread
 * input would send a RST that can destroy the response before the client reads it. */
static void linger(struct pl_admin_conn *c)
{
    if (c->lingering)
        return;
    c->lingering = true;
    shutdown(c->fd, SHUT_WR);
    set_reading(c, true);
    c->idle.repeat = 1.0;
    ev_timer_again(c->a->loop, &c->idle);
}

static void flush(struct pl_admin_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(c->a->loop, &c->ww);
            return;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
        c->written += (uint64_t)n;
    }
    ev_io_stop(c->a->loop, &c->ww);
    c->out.len = c->out_off = 0;
    fire_sent(c);
    if (c->close_after) {
        linger(c);
        return;
    }
    if (!c->reading) {
        set_reading(c, true);
        if (c->in.len)
            process(c);
    }
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    flush(w->data);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct pl_admin_conn *c = w->data;
    if (c->lingering) {
        char tmp[4096];
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            conn_close(c);
        return;
    }
    buf_reserve(&c->in, READ_CHUNK);
    ssize_t n = recv(c->fd, c->in.p + c->in.len, READ_CHUNK, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* peer closed (or reset): answer nothing more for a partial request */
        set_reading(c, false);
        c->close_after = true;
        if (c->out_off == c->out.len)
            conn_close(c);
        return;
    }
    c->in.len += (size_t)n;
    ev_timer_again(loop, &c->idle);
    process(c);
}

static void on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_admin_conn *c = w->data;
    pl_log_debug("admin", "closing idle admin connection");
    conn_close(c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct pl_admin *a = w->data;
    for (;;) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                pl_log_warn("admin", "accept: %s", strerror(errno));
            return;
        }
        if (a->nconns >= a->cfg.max_connections) {
            pl_log_warn("admin", "admin connection limit (%u) reached; closing new connection",
                        a->cfg.max_connections);
            close(fd);
            continue;
        }
        struct pl_admin_conn *c = pl_calloc(1, sizeof(*c));
        c->a = a;
        c->fd = fd;
        struct pl_h1_config hc = {a->cfg.max_request_header, 100};
        pl_h1_parser_init(&c->parser, PL_H1_REQUEST, &hc);
        ev_io_init(&c->rw, on_read, fd, EV_READ);
        ev_io_init(&c->ww, on_write, fd, EV_WRITE);
        ev_init(&c->idle, on_idle);
        c->idle.repeat = a->cfg.idle_timeout_s;
        c->rw.data = c->ww.data = c->idle.data = c;
        ev_timer_again(loop, &c->idle);
        c->next = a->conns;
        if (a->conns)
            a->conns->prev = c;
        a->conns = c;
        a->nconns++;
        set_reading(c, true);
    }
}

/* ---- listener ---- */

static int listen_on(struct pl_admin *a, const struct pl_admin_config *cfg, struct pl_err *err)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
    } sa;
    socklen_t len;
    memset(&sa, 0, sizeof(sa));
    if (cfg->unix_path) {
        if (strlen(cfg->unix_path) >= sizeof(sa.un.sun_path))
            return pl_err_add(err, NULL, 0, 0, "admin.address.pipe.path", "path too long: %s",
                              cfg->unix_path);
        sa.un.sun_family = AF_UNIX;
        strcpy(sa.un.sun_path, cfg->unix_path);
        len = sizeof(sa.un);
        struct stat st;
        if (!stat(cfg->unix_path, &st) && S_ISSOCK(st.st_mode))
            unlink(cfg->unix_path); /* a stale socket from a previous run */
    } else {
        const char *addr = cfg->address ? cfg->address : "127.0.0.1";
        if (inet_pton(AF_INET, addr, &sa.in4.sin_addr) == 1) {
            sa.in4.sin_family = AF_INET;
            sa.in4.sin_port = htons(cfg->port);
            len = sizeof(sa.in4);
        } else if (inet_pton(AF_INET6, addr, &sa.in6.sin6_addr) == 1) {
            sa.in6.sin6_family = AF_INET6;
            sa.in6.sin6_port = htons(cfg->port);
            len = sizeof(sa.in6);
        } else {
            return pl_err_add(err, NULL, 0, 0, "admin.address.socket_address.address",
                              "not an IP address: %s", addr);
        }
    }
    int fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    if (!cfg->unix_path)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, &sa.sa, len) || listen(fd, 128))
        goto fail;
    a->fd = fd;
    if (!cfg->unix_path) {
        len = sizeof(sa);
        if (getsockname(fd, &sa.sa, &len))
            goto fail;
        a->port = ntohs(sa.sa.sa_family == AF_INET ? sa.in4.sin_port : sa.in6.sin6_port);
    } else {
        a->unix_path = pl_strdup(cfg->unix_path);
    }
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    pl_err_add(err, NULL, 0, 0, "admin.address", "cannot listen on %s port %u: %s",
               cfg->unix_path ? cfg->unix_path
               : cfg->address ? cfg->address
                              : "127.0.0.1",
               cfg->port, strerror(e));
    return PL_EIO;
}

int pl_admin_new(struct ev_loop *loop, const struct pl_admin_config *cfg, struct pl_stats *stats,
                 struct pl_err *err, struct pl_admin **out)
{
    struct pl_admin *a = pl_calloc(1, sizeof(*a));
    a->loop = loop;
    a->stats = stats;
    a->cfg = *cfg;
    a->cfg.address = NULL; /* not kept: the caller owns the strings */
    a->cfg.unix_path = NULL;
    if (!a->cfg.max_connections)
        a->cfg.max_connections = 64;
    if (a->cfg.idle_timeout_s <= 0)
        a->cfg.idle_timeout_s = 300;
    if (!a->cfg.max_request_header)
        a->cfg.max_request_header = 60 * 1024;
    if (!a->cfg.max_request_body)
        a->cfg.max_request_body = 1 << 20;
    int r = listen_on(a, cfg, err);
    if (r) {
        free(a);
        return r;
    }
    ev_io_init(&a->accept_w, on_accept, a->fd, EV_READ);
    a->accept_w.data = a;
    ev_io_start(loop, &a->accept_w);
    pl_admin_builtins(a);
    *out = a;
    return 0;
}

void pl_admin_free(struct pl_admin *a)
{
    if (!a)
        return;
    while (a->conns)
        conn_close(a->conns);
    ev_io_stop(a->loop, &a->accept_w);
    close(a->fd);
    if (a->unix_path)
        unlink(a->unix_path);
    free(a->unix_path);
    for (size_t i = 0; i < a->neps; i++) {
        free(a->eps[i].path);
        free(a->eps[i].help);
    }
    free(a->eps);
    free(a);
}

int pl_admin_port(const struct pl_admin *a)
{
    return a->port;
}

size_t pl_admin_connections(const struct pl_admin *a)
{
    return a->nconns;
}

bool pl_admin_health_failed(const struct pl_admin *a)
{
    return a->health_failed;
}

static int cmp_ep(const void *x, const void *y)
{
    return strcmp(((const struct pl_admin_endpoint *)x)->path,
                  ((const struct pl_admin_endpoint *)y)->path);
}

int pl_admin_register(struct pl_admin *a, const char *path, const char *help, bool mutates,
                      pl_admin_handler_fn fn, void *ctx)
{
    if (!path || path[0] != '/' || !fn)
        return PL_EINVAL;
    if (find_endpoint(a, path))
        return PL_EEXIST;
    a->eps = pl_realloc(a->eps, (a->neps + 1) * sizeof(*a->eps));
    a->eps[a->neps++] =
        (struct pl_admin_endpoint){pl_strdup(path), pl_strdup(help ? help : ""), mutates, fn, ctx};
    qsort(a->eps, a->neps, sizeof(*a->eps), cmp_ep);
    return 0;
}

void pl_admin_help(struct pl_admin *a, struct pl_admin_response *r)
{
    pl_admin_resp_append(r, "admin commands are:\n", 20);
    for (size_t i = 0; i < a->neps; i++)
        pl_admin_resp_printf(r, "  %s: %s\n", a->eps[i].path, a->eps[i].help);
}
