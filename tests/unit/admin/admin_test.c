/* The admin server on a libev loop in a thread, exercised over real sockets. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "core/log.h"
#include "http/h1_parser.h"
#include "stats/stats.h"

struct server {
    struct ev_loop *loop;
    struct pl_admin *admin;
    struct pl_stats *stats;
    ev_async stop;
    pthread_t thread;
    int port;
};

static struct server srv;
static _Atomic int sent_fired;

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *loop_thread(void *arg)
{
    struct server *s = arg;
    ev_run(s->loop, 0);
    return NULL;
}

static void h_health(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)req;
    pl_admin_resp_printf(r, "%d\n", pl_admin_health_failed(ctx));
}

static void h_echo(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)ctx;
    pl_admin_resp_content_type(r, "application/octet-stream");
    pl_admin_resp_header(r, "x-method", req->method);
    pl_admin_resp_printf(r, "%s %s [", req->method, req->path);
    for (size_t i = 0; i < req->num_params; i++)
        pl_admin_resp_printf(r, "%s%s=%s", i ? "," : "", req->params[i].name, req->params[i].value);
    pl_admin_resp_printf(r, "] %zu:", req->body_len);
    pl_admin_resp_append(r, req->body, req->body_len);
}

static void fired(void *ctx)
{
    (void)ctx;
    atomic_store(&sent_fired, 1);
}

static void h_quit(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)req;
    (void)ctx;
    pl_admin_resp_append(r, "OK\n", 3);
    pl_admin_resp_on_sent(r, fired, NULL);
}

static void start_cfg(const struct pl_admin_config *cfg)
{
    srv.loop = ev_loop_new(EVFLAG_AUTO);
    srv.stats = pl_stats_new();
    pl_counter_add(pl_stats_counter(srv.stats, "cluster.web.upstream_rq_total"), 5);
    pl_counter_add(pl_stats_counter(srv.stats, "cluster.web.upstream_rq_2xx"), 4);
    pl_gauge_set(pl_stats_gauge(srv.stats, "server.live"), 1);
    pl_stats_counter(srv.stats, "server.unused");
    struct pl_err err = PL_ERR_INIT;
    int r = pl_admin_new(srv.loop, cfg, srv.stats, &err, &srv.admin);
    if (r)
        pl_err_print(&err, stderr);
    cr_assert_eq(r, 0);
    pl_err_free(&err);
    srv.port = pl_admin_port(srv.admin);
    cr_assert_eq(
        pl_admin_register(srv.admin, "/test/health", "health flag", false, h_health, srv.admin), 0);
    cr_assert_eq(pl_admin_register(srv.admin, "/test/echo", "echo", false, h_echo, NULL), 0);
    cr_assert_eq(
        pl_admin_register(srv.admin, "/quitquitquit", "exit the server", true, h_quit, NULL), 0);
    cr_assert_eq(pl_admin_register(srv.admin, "/help", "dup", false, h_echo, NULL), PL_EEXIST);
    cr_assert_eq(pl_admin_register(srv.admin, "nope", "bad", false, h_echo, NULL), PL_EINVAL);
    ev_async_init(&srv.stop, on_stop);
    ev_async_start(srv.loop, &srv.stop);
    pthread_create(&srv.thread, NULL, loop_thread, &srv);
}

static void start(void)
{
    struct pl_admin_config cfg = {.address = "127.0.0.1", .port = 0};
    start_cfg(&cfg);
}

static void stop(void)
{
    ev_async_send(srv.loop, &srv.stop);
    pthread_join(srv.thread, NULL);
    pl_admin_free(srv.admin);
    ev_loop_destroy(srv.loop);
    pl_stats_free(srv.stats);
}

/* ---- a small client ---- */

struct client {
    int fd;
    char buf[1 << 18];
    size_t len;
};

struct resp {
    int status;
    char body[1 << 17];
    size_t body_len;
    char ctype[128];
    bool keep_alive;
};

static void client_open(struct client *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(c->fd, 0);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(srv.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    c->len = 0;
}

static void client_send(struct client *c, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        cr_assert_gt(w, 0);
        s += w;
        n -= (size_t)w;
    }
}

static bool fill(struct client *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

/* Reads one response; method is that of the request it answers. */
static void client_read(struct client *c, const char *method, struct resp *out)
{
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_RESPONSE, NULL);
    pl_h1_parser_set_request(&p, method, strlen(method));
    struct pl_h1_header h[32];
    struct pl_h1_msg m = {.headers = h, .headers_cap = 32};
    int r;
    while ((r = pl_h1_parse_head(&p, c->buf, c->len, &m)) == PL_EAGAIN)
        cr_assert(fill(c), "connection closed before a response head");
    cr_assert_gt(r, 0, "bad response head: %s", pl_h1_strerror(r));
    out->status = m.status;
    out->keep_alive = m.keep_alive;
    int ct = pl_h1_header_find(h, m.num_headers, 0, "content-type");
    snprintf(out->ctype, sizeof(out->ctype), "%.*s", ct >= 0 ? (int)h[ct].value_len : 0,
             ct >= 0 ? h[ct].value : "");
    memmove(c->buf, c->buf + r, c->len - r);
    c->len -= (size_t)r;
    out->body_len = 0;
    for (;;) {
        struct pl_h1_body b = {0};
        r = pl_h1_parse_body(&p, c->buf, c->len, &b);
        cr_assert_geq(r, 0);
        memcpy(out->body + out->body_len, b.data, b.len);
        out->body_len += b.len;
        memmove(c->buf, c->buf + r, c->len - r);
        c->len -= (size_t)r;
        if (b.done)
            break;
        cr_assert(fill(c), "connection closed in a response body");
    }
    out->body[out->body_len] = 0;
}

/* True if the server closed the connection (after any pending bytes). */
static bool client_closed(struct client *c)
{
    char tmp[64];
    return c->len == 0 && recv(c->fd, tmp, sizeof(tmp), 0) == 0;
}

static struct resp *request(const char *method, const char *target, const char *extra)
{
    static struct client c;
    static struct resp r;
    char req[1024];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: admin\r\n%s\r\n", method, target,
             extra ? extra : "");
    client_open(&c);
    client_send(&c, req);
    client_read(&c, method, &r);
    close(c.fd);
    return &r;
}

#define HELP                                                                                       \
    "admin commands are:\n"                                                                        \
    "  /healthcheck/fail: cause the server to fail health checks\n"                                \
    "  /healthcheck/ok: cause the server to pass health checks\n"                                  \
    "  /help: print out list of admin commands\n"                                                  \
    "  /logging: query/change logging levels\n"                                                    \
    "  /memory: print current allocation/heap usage\n"                                             \
    "  /quitquitquit: exit the server\n"                                                           \
    "  /reset_counters: reset all counters to zero\n"                                              \
    "  /stats: print server stats\n"                                                               \
    "  /stats/prometheus: print server stats in prometheus format\n"                               \
    "  /test/echo: echo\n"                                                                         \
    "  /test/health: health flag\n"

TestSuite(admin, .init = start, .fini = stop, .timeout = 60);

Test(admin, help_and_404)
{
    struct resp *r = request("GET", "/help", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, HELP);
    cr_assert_str_eq(r->ctype, "text/plain; charset=UTF-8");
    r = request("GET", "/nope", NULL);
    cr_assert_eq(r->status, 404);
    cr_assert_str_eq(r->body, "invalid path. " HELP);
    r = request("GET", "/stats/", NULL);
    cr_assert_eq(r->status, 404);
}

Test(admin, head_request_has_no_body)
{
    struct resp *r = request("HEAD", "/help", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(r->body_len, 0);
}

Test(admin, stats_text_json_prometheus)
{
    struct resp *r = request("GET", "/stats", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, "cluster.web.upstream_rq_2xx: 4\n"
                              "cluster.web.upstream_rq_total: 5\n"
                              "server.live: 1\n"
                              "server.unused: 0\n");
    r = request("GET", "/stats?usedonly&filter=%5Ecluster%5C.web%5C.upstream_rq_.%2Bx", NULL);
    cr_assert_str_eq(r->body, "cluster.web.upstream_rq_2xx: 4\n");
    r = request("GET", "/stats?usedonly", NULL);
    cr_assert_str_eq(r->body, "cluster.web.upstream_rq_2xx: 4\n"
                              "cluster.web.upstream_rq_total: 5\n"
                              "server.live: 1\n");
    r = request("GET", "/stats?format=json&filter=server", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->ctype, "application/json");
    cr_assert_str_eq(r->body, "{\"stats\":[{\"name\":\"server.live\",\"value\":1},"
                              "{\"name\":\"server.unused\",\"value\":0}]}\n");
    const char *prom = "# TYPE pillion_cluster_upstream_rq_total counter\n"
                       "pillion_cluster_upstream_rq_total{envoy_cluster_name=\"web\"} 5\n"
                       "# TYPE pillion_cluster_upstream_rq_xx counter\n"
                       "pillion_cluster_upstream_rq_xx{envoy_response_code_class=\"2\","
                       "envoy_cluster_name=\"web\"} 4\n"
                       "# TYPE pillion_server_live gauge\n"
                       "pillion_server_live{} 1\n";
    r = request("GET", "/stats/prometheus?usedonly", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, prom);
    r = request("GET", "/stats?format=prometheus&usedonly", NULL);
    cr_assert_str_eq(r->body, prom);
    r = request("GET", "/stats?filter=(bad", NULL);
    cr_assert_eq(r->status, 400);
    r = request("GET", "/stats?format=xml", NULL);
    cr_assert_eq(r->status, 400);
}

Test(admin, reset_counters_requires_post)
{
    struct resp *r = request("GET", "/reset_counters", NULL);
    cr_assert_eq(r->status, 405);
    cr_assert_str_eq(r->body, "Method GET not allowed, POST required.");
    r = request("POST", "/reset_counters", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, "OK\n");
    r = request("GET", "/stats?filter=cluster", NULL);
    cr_assert_str_eq(r->body, "cluster.web.upstream_rq_2xx: 0\n"
                              "cluster.web.upstream_rq_total: 0\n");
}

Test(admin, healthcheck)
{
    cr_assert_eq(request("GET", "/healthcheck/fail", NULL)->status, 405);
    cr_assert_str_eq(request("GET", "/test/health", NULL)->body, "0\n");
    struct resp *r = request("POST", "/healthcheck/fail", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, "OK\n");
    cr_assert_str_eq(request("GET", "/test/health", NULL)->body, "1\n");
    cr_assert_eq(request("PUT", "/healthcheck/ok", NULL)->status, 405);
    cr_assert_eq(request("POST", "/healthcheck/ok", NULL)->status, 200);
    cr_assert_str_eq(request("GET", "/test/health", NULL)->body, "0\n");
}

Test(admin, logging)
{
    struct resp *r = request("GET", "/logging", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, "active loggers:\n  admin: info\n  config: info\n"
                              "  connection: info\n  http: info\n  main: info\n  router: info\n"
                              "  stats: info\n  upstream: info\n  xds: info\n");
    cr_assert_eq(request("GET", "/logging?level=debug", NULL)->status, 405);
    r = request("POST", "/logging?level=debug", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert(strstr(r->body, "  admin: debug\n"));
    cr_assert_eq(atomic_load(&pl_log_level_now), PL_LOG_DEBUG);
    r = request("POST", "/logging?level=loud", NULL);
    cr_assert_eq(r->status, 404);
    cr_assert(!strncmp(r->body, "usage: /logging?level=<level>", 29));
    cr_assert(strstr(r->body, "  admin: debug\n"));
    r = request("POST", "/logging?level=info", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(atomic_load(&pl_log_level_now), PL_LOG_INFO);
}

Test(admin, memory)
{
    struct resp *r = request("GET", "/memory", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->ctype, "application/json");
    cr_assert(strstr(r->body, "\"allocated\": \""));
    cr_assert(strstr(r->body, "\"heap_size\": \""));
}

Test(admin, query_decoding_and_body)
{
    struct resp *r =
        request("POST", "/test/echo?a=1&b=x%20y&flag&c=%3D%26+", "Content-Length: 5\r\n\r\nhello");
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, "POST /test/echo [a=1,b=x y,flag=,c==&+] 5:hello");
    cr_assert_str_eq(r->ctype, "application/octet-stream");
    r = request("GET", "/test/echo?a&b&c&&d=&=e", NULL);
    cr_assert_str_eq(r->body, "GET /test/echo [a=,b=,c=,d=,=e] 0:");
    r = request("GET", "/test/%7Eecho?x=%zz%4", NULL);
    cr_assert_eq(r->status, 404);
    r = request("GET", "/test/ech%6F?x=%zz%4", NULL);
    cr_assert_str_eq(r->body, "GET /test/echo [x=%zz%4] 0:");
}

Test(admin, malformed_requests)
{
    struct client c;
    struct resp r;
    client_open(&c);
    client_send(&c, "GET /help HTTP/1.1\nHost: a\n\n");
    client_read(&c, "GET", &r);
    cr_assert_eq(r.status, 400);
    cr_assert(!r.keep_alive);
    cr_assert(client_closed(&c));
    close(c.fd);

    client_open(&c);
    client_send(&c, "GET /help HTTP/1.1\r\nHost : a\r\n\r\n");
    client_read(&c, "GET", &r);
    cr_assert_eq(r.status, 400);
    close(c.fd);

    client_open(&c);
    client_send(&c, "GET /help HTTP/2.0\r\n\r\n");
    client_read(&c, "GET", &r);
    cr_assert_eq(r.status, 505);
    close(c.fd);

    client_open(&c);
    client_send(&c, "POST /test/echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
    client_read(&c, "POST", &r);
    cr_assert_eq(r.status, 501);
    close(c.fd);

    static char big[70000];
    int n = snprintf(big, sizeof(big), "GET /help HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', 62000);
    strcpy(big + n + 62000, "\r\n\r\n");
    client_open(&c);
    client_send(&c, big);
    client_read(&c, "GET", &r);
    cr_assert_eq(r.status, 431);
    close(c.fd);

    /* a client that vanishes mid-request */
    client_open(&c);
    client_send(&c, "POST /test/echo HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial");
    close(c.fd);
    client_open(&c);
    client_send(&c, "GET /he");
    close(c.fd);

    /* the server is still fine */
    cr_assert_eq(request("GET", "/help", NULL)->status, 200);
}

Test(admin, pipelined_and_keepalive)
{
    struct client c;
    struct resp r;
    client_open(&c);
    client_send(&c, "GET /test/echo?n=1 HTTP/1.1\r\n\r\n"
                    "POST /test/echo?n=2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                    "POST /test/echo?n=3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2\r\nxy\r\n0\r\n\r\n"
                    "HEAD /test/echo?n=4 HTTP/1.1\r\n\r\n");
    client_read(&c, "GET", &r);
    cr_assert_str_eq(r.body, "GET /test/echo [n=1] 0:");
    cr_assert(r.keep_alive);
    client_read(&c, "POST", &r);
    cr_assert_str_eq(r.body, "POST /test/echo [n=2] 3:abc");
    client_read(&c, "POST", &r);
    cr_assert_str_eq(r.body, "POST /test/echo [n=3] 2:xy");
    client_read(&c, "HEAD", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0);
    /* the same connection keeps serving */
    client_send(&c, "GET /test/echo?n=5 HTTP/1.1\r\n\r\n");
    client_read(&c, "GET", &r);
    cr_assert_str_eq(r.body, "GET /test/echo [n=5] 0:");
    /* Connection: close ends it after the response */
    client_send(&c, "GET /help HTTP/1.1\r\nConnection: close\r\n\r\n");
    client_read(&c, "GET", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(!r.keep_alive);
    cr_assert(client_closed(&c));
    close(c.fd);

    /* HTTP/1.0 without keep-alive closes too */
    client_open(&c);
    client_send(&c, "GET /help HTTP/1.0\r\n\r\n");
    client_read(&c, "GET", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(client_closed(&c));
    close(c.fd);
}

Test(admin, split_request_and_expect_continue)
{
    struct client c;
    struct resp r;
    client_open(&c);
    const char *req = "POST /test/echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
    for (const char *p = req; *p; p++) {
        char one[2] = {*p, 0};
        client_send(&c, one);
    }
    client_read(&c, "POST", &r);
    cr_assert_str_eq(r.body, "POST /test/echo [] 4:body");

    client_send(&c, "PUT /test/echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    client_read(&c, "PUT", &r);
    cr_assert_eq(r.status, 100);
    client_send(&c, "ok");
    client_read(&c, "PUT", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "PUT /test/echo [] 2:ok");
    close(c.fd);
}

Test(admin, on_sent_callback)
{
    atomic_store(&sent_fired, 0);
    struct resp *r = request("POST", "/quitquitquit", NULL);
    cr_assert_eq(r->status, 200);
    for (int i = 0; i < 200 && !atomic_load(&sent_fired); i++)
        usleep(5000);
    cr_assert_eq(atomic_load(&sent_fired), 1);
}

Test(admin_limits, connection_limit_and_idle_timeout)
{
    struct pl_admin_config cfg = {
        .address = "127.0.0.1", .max_connections = 2, .idle_timeout_s = 0.3};
    start_cfg(&cfg);
    struct client a, b, c;
    struct resp r;
    client_open(&a);
    client_open(&b);
    client_send(&a, "GET /help HTTP/1.1\r\n\r\n");
    client_read(&a, "GET", &r);
    client_send(&b, "GET /help HTTP/1.1\r\n\r\n");
    client_read(&b, "GET", &r);
    client_open(&c);
    cr_assert(client_closed(&c), "third connection should be refused");
    close(c.fd);
    /* both idle connections are closed by the server */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert(client_closed(&a));
    cr_assert(client_closed(&b));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 3);
    close(a.fd);
    close(b.fd);
    client_open(&c);
    client_send(&c, "GET /help HTTP/1.1\r\n\r\n");
    client_read(&c, "GET", &r);
    cr_assert_eq(r.status, 200);
    close(c.fd);
    stop();
}

Test(admin_limits, unix_socket_and_ipv6)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/pl_admin_test_%d.sock", (int)getpid());
    struct pl_admin_config cfg = {.unix_path = path};
    start_cfg(&cfg);
    cr_assert_eq(srv.port, 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct client c = {.fd = fd};
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct resp r;
    client_send(&c, "GET /help HTTP/1.1\r\n\r\n");
    client_read(&c, "GET", &r);
    cr_assert_eq(r.status, 200);
    close(fd);
    stop();
    cr_assert_neq(access(path, F_OK), 0, "socket path removed on free");

    struct pl_admin_config v6 = {.address = "::1"};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pl_admin *a = NULL;
    int rc = pl_admin_new(loop, &v6, NULL, NULL, &a);
    if (rc == 0) { /* ::1 may be unavailable in some sandboxes */
        cr_assert_gt(pl_admin_port(a), 0);
        pl_admin_free(a);
    }
    struct pl_admin_config bad = {.address = "not-an-ip"};
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_admin_new(loop, &bad, NULL, &err, &a), PL_EINVAL);
    cr_assert_eq(err.n, 1);
    pl_err_free(&err);
    ev_loop_destroy(loop);
}
