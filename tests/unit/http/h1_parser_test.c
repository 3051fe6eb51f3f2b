#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http/h1_parser.h"

#define MAXH 128

/* What the driver saw for one message. */
struct seen {
    struct pl_h1_msg msg;
    char method[32], target[256];
    int status;
    size_t nh;
    char body[4096];
    size_t body_len;
    size_t ntrailers;
    char trailer0[128]; /* "name: value" of the first trailer */
    char host[128];     /* value of Host */
};

struct run {
    struct seen m[8];
    int n;
    int err; /* first error, 0 if none */
    bool eof_ok;
};

/* Feeds input to a parser `step` bytes at a time, like a connection would: unconsumed bytes are
 * kept at the front of the buffer. step 0 means all at once. */
static void drive(enum pl_h1_kind kind, const char *in, size_t len, size_t step,
                  const char *req_method, struct run *out)
{
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, kind, NULL);
    static char buf[1 << 17];
    struct pl_h1_header hdrs[MAXH], trl[MAXH];
    size_t have = 0, fed = 0;
    bool in_body = false;
    memset(out, 0, sizeof(*out));
    if (req_method)
        pl_h1_parser_set_request(&p, req_method, strlen(req_method));
    while (1) {
        size_t add = step ? step : len;
        if (add > len - fed)
            add = len - fed;
        memcpy(buf + have, in + fed, add);
        have += add;
        fed += add;
        for (;;) {
            if (!in_body) {
                if (have == 0)
                    break;
                struct seen *s = &out->m[out->n];
                s->msg.headers = hdrs;
                s->msg.headers_cap = MAXH;
                int r = pl_h1_parse_head(&p, buf, have, &s->msg);
                if (r == PL_EAGAIN)
                    break;
                if (r < 0) {
                    out->err = r;
                    return;
                }
                cr_assert_leq((size_t)r, have);
                snprintf(s->method, sizeof(s->method), "%.*s", (int)s->msg.method_len,
                         s->msg.method ? s->msg.method : "");
                snprintf(s->target, sizeof(s->target), "%.*s", (int)s->msg.target_len,
                         s->msg.target ? s->msg.target : "");
                s->status = s->msg.status;
                s->nh = s->msg.num_headers;
                int hi = pl_h1_header_find(hdrs, s->nh, 0, "host");
                if (hi >= 0)
                    snprintf(s->host, sizeof(s->host), "%.*s", (int)hdrs[hi].value_len,
                             hdrs[hi].value);
                memmove(buf, buf + r, have - r);
                have -= r;
                in_body = true;
            }
            struct seen *s = &out->m[out->n];
            struct pl_h1_body b = {.trailers = trl, .trailers_cap = MAXH};
            int r = pl_h1_parse_body(&p, buf, have, &b);
            if (r < 0) {
                out->err = r;
                return;
            }
            cr_assert_leq((size_t)r, have);
            if (b.len) {
                cr_assert(b.data >= buf && b.data + b.len <= buf + have);
                cr_assert_lt(s->body_len + b.len, sizeof(s->body));
                memcpy(s->body + s->body_len, b.data, b.len);
                s->body_len += b.len;
            }
            if (b.done) {
                s->ntrailers = b.num_trailers;
                if (b.num_trailers)
                    snprintf(s->trailer0, sizeof(s->trailer0), "%.*s: %.*s", (int)trl[0].name_len,
                             trl[0].name, (int)trl[0].value_len, trl[0].value);
            }
            memmove(buf, buf + r, have - r);
            have -= r;
            if (b.done) {
                in_body = false;
                out->n++;
                continue;
            }
            if (r == 0 || have == 0)
                break;
        }
        if (fed == len)
            break;
    }
    if (in_body && pl_h1_parse_eof(&p, have) == 0) {
        out->n++;
        out->eof_ok = true;
    }
}

/* Runs the input at every split granularity and checks they agree; returns the all-at-once run. */
static struct run run_all(enum pl_h1_kind kind, const char *in, const char *req_method)
{
    struct run whole, part;
    size_t len = strlen(in);
    drive(kind, in, len, 0, req_method, &whole);
    size_t steps[] = {1, 2, 3, 7, 13};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        drive(kind, in, len, steps[i], req_method, &part);
        cr_assert_eq(part.err, whole.err, "step %zu: err %d vs %d", steps[i], part.err, whole.err);
        cr_assert_eq(part.n, whole.n, "step %zu", steps[i]);
        for (int k = 0; k < whole.n; k++) {
            cr_assert_eq(part.m[k].body_len, whole.m[k].body_len);
            cr_assert(!memcmp(part.m[k].body, whole.m[k].body, whole.m[k].body_len));
            cr_assert_str_eq(part.m[k].target, whole.m[k].target);
            cr_assert_eq(part.m[k].ntrailers, whole.m[k].ntrailers);
        }
    }
    return whole;
}

static int req_err(const char *in)
{
    return run_all(PL_H1_REQUEST, in, NULL).err;
}

Test(h1_parser, simple_get)
{
    struct run r = run_all(PL_H1_REQUEST,
                           "GET /index.html?a=b HTTP/1.1\r\nHost: example.com\r\n"
                           "User-Agent:  curl/8 \t\r\nAccept: */*\r\n\r\n",
                           NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.m[0].method, "GET");
    cr_assert_str_eq(r.m[0].target, "/index.html?a=b");
    cr_assert_str_eq(r.m[0].host, "example.com");
    cr_assert_eq(r.m[0].nh, 3);
    cr_assert_eq(r.m[0].msg.version_minor, 1);
    cr_assert(r.m[0].msg.keep_alive);
    cr_assert_eq(r.m[0].msg.body, PL_H1_BODY_NONE);
}

Test(h1_parser, byte_by_byte_eagain_until_complete)
{
    const char *in = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    size_t head = strlen(in) - 5;
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_REQUEST, NULL);
    struct pl_h1_header h[8];
    struct pl_h1_msg m = {.headers = h, .headers_cap = 8};
    for (size_t n = 1; n < head; n++)
        cr_assert_eq(pl_h1_parse_head(&p, in, n, &m), PL_EAGAIN, "at %zu", n);
    cr_assert_eq(pl_h1_parse_head(&p, in, strlen(in), &m), (int)head);
    cr_assert_eq(m.body, PL_H1_BODY_LENGTH);
    cr_assert_eq(m.content_length, 5);
    const char *v = h[1].value;
    cr_assert(v >= in && v + h[1].value_len <= in + strlen(in));
    cr_assert_eq(h[1].value_len, 1);
    cr_assert_eq(*v, '5');
}

Test(h1_parser, post_content_length)
{
    struct run r =
        run_all(PL_H1_REQUEST,
                "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.m[0].body_len, 11);
    cr_assert(!memcmp(r.m[0].body, "hello world", 11));
}

Test(h1_parser, pipelined)
{
    struct run r = run_all(PL_H1_REQUEST,
                           "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                           "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                           "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "2\r\nxy\r\n0\r\n\r\n"
                           "GET /d HTTP/1.0\r\n\r\n",
                           NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 4);
    cr_assert_str_eq(r.m[0].target, "/a");
    cr_assert_str_eq(r.m[1].target, "/b");
    cr_assert_str_eq(r.m[2].target, "/c");
    cr_assert_str_eq(r.m[3].target, "/d");
    cr_assert_eq(r.m[1].body_len, 3);
    cr_assert_eq(r.m[2].body_len, 2);
    cr_assert(!r.m[3].msg.keep_alive);
}

Test(h1_parser, pipelined_consumed_counts)
{
    const char *in = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_REQUEST, NULL);
    struct pl_h1_header h[4];
    struct pl_h1_msg m = {.headers = h, .headers_cap = 4};
    int r = pl_h1_parse_head(&p, in, strlen(in), &m);
    cr_assert_eq(r, 19);
    r = pl_h1_parse_head(&p, in + 19, strlen(in) - 19, &m);
    cr_assert_eq(r, 19);
    cr_assert_eq(m.target[1], 'b');
}

Test(h1_parser, leading_crlf_skipped)
{
    struct run r = run_all(PL_H1_REQUEST, "\r\n\r\nGET / HTTP/1.1\r\n\r\n", NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.m[0].target, "/");
}

Test(h1_parser, chunked_with_extensions_and_trailers)
{
    struct run r = run_all(PL_H1_REQUEST,
                           "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5;name=val\r\nhello\r\n"
                           "6 ; a ; b=\"q \\\" d\"\r\n world\r\n"
                           "A\r\n0123456789\r\n"
                           "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
                           NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.m[0].msg.body, PL_H1_BODY_CHUNKED);
    cr_assert_eq(r.m[0].body_len, 21);
    cr_assert(!memcmp(r.m[0].body, "hello world0123456789", 21));
    cr_assert_eq(r.m[0].ntrailers, 2);
    cr_assert_str_eq(r.m[0].trailer0, "X-Checksum: abc");
}

Test(h1_parser, chunked_te_case_insensitive_and_listed)
{
    struct run r = run_all(PL_H1_RESPONSE,
                           "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n"
                           "3\r\nabc\r\n0\r\n\r\n",
                           "GET");
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.m[0].body_len, 3);
}

Test(h1_parser, connection_flags)
{
    struct run r =
        run_all(PL_H1_REQUEST, "GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", NULL);
    cr_assert(!r.m[0].msg.keep_alive);
    r = run_all(PL_H1_REQUEST, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", NULL);
    cr_assert(r.m[0].msg.keep_alive);
    r = run_all(PL_H1_REQUEST, "GET / HTTP/1.0\r\n\r\n", NULL);
    cr_assert(!r.m[0].msg.keep_alive);
}

Test(h1_parser, expect_continue)
{
    struct run r =
        run_all(PL_H1_REQUEST,
                "PUT /f HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx", NULL);
    cr_assert_eq(r.err, 0);
    cr_assert(r.m[0].msg.expect_continue);
    r = run_all(PL_H1_REQUEST, "PUT /f HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", NULL);
    cr_assert(!r.m[0].msg.expect_continue);
}

Test(h1_parser, upgrade_and_connect)
{
    struct run r =
        run_all(PL_H1_REQUEST,
                "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", NULL);
    cr_assert(r.m[0].msg.upgrade);
    r = run_all(PL_H1_REQUEST, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", NULL);
    cr_assert(!r.m[0].msg.upgrade);
    r = run_all(PL_H1_REQUEST, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                NULL);
    cr_assert_eq(r.err, 0);
    cr_assert(r.m[0].msg.connect);
    cr_assert_str_eq(r.m[0].target, "example.com:443");
    r = run_all(PL_H1_RESPONSE,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                "Upgrade\r\n\r\n",
                "GET");
    cr_assert(r.m[0].msg.upgrade);
    cr_assert_eq(r.m[0].msg.body, PL_H1_BODY_NONE);
    r = run_all(PL_H1_RESPONSE, "HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT");
    cr_assert(r.m[0].msg.connect);
    cr_assert_eq(r.m[0].msg.body, PL_H1_BODY_NONE);
}

/* ---- responses ---- */

Test(h1_parser, response_content_length)
{
    struct run r = run_all(PL_H1_RESPONSE,
                           "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
                           "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                           "GET");
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.m[0].status, 200);
    cr_assert_eq(r.m[0].body_len, 4);
    cr_assert_eq(r.m[1].status, 404);
    cr_assert_eq(r.m[1].msg.body, PL_H1_BODY_NONE);
}

Test(h1_parser, response_until_close)
{
    struct run r = run_all(PL_H1_RESPONSE, "HTTP/1.1 200 OK\r\n\r\nall of this is body", "GET");
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 1);
    cr_assert(r.eof_ok);
    cr_assert_eq(r.m[0].msg.body, PL_H1_BODY_UNTIL_CLOSE);
    cr_assert(!r.m[0].msg.keep_alive);
    cr_assert_eq(r.m[0].body_len, 19);
    /* a final coding other than chunked: read until close */
    r = run_all(PL_H1_RESPONSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", "GET");
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.m[0].msg.body, PL_H1_BODY_UNTIL_CLOSE);
}

Test(h1_parser, response_no_body_cases)
{
    const char *heads[] = {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
                           "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                           "HTTP/1.1 100 Continue\r\n\r\n"};
    for (size_t i = 0; i < 3; i++) {
        struct run r = run_all(PL_H1_RESPONSE, heads[i], "GET");
        cr_assert_eq(r.err, 0);
        cr_assert_eq(r.n, 1);
        cr_assert_eq(r.m[0].msg.body, PL_H1_BODY_NONE, "%s", heads[i]);
    }
    struct run r = run_all(PL_H1_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD");
    cr_assert_eq(r.m[0].msg.body, PL_H1_BODY_NONE);
    cr_assert_eq(r.n, 1);
}

Test(h1_parser, response_100_then_final)
{
    struct run r = run_all(PL_H1_RESPONSE,
                           "HTTP/1.1 100 Continue\r\n\r\n"
                           "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                           "HEAD");
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.m[1].status, 201);
    /* HEAD still applies to the final response after the interim one */
    cr_assert_eq(r.m[1].body_len, 0);
}

Test(h1_parser, response_chunked)
{
    struct run r = run_all(PL_H1_RESPONSE,
                           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "4\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n",
                           "GET");
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.m[0].body_len, 9);
    cr_assert(!memcmp(r.m[0].body, "Wikipedia", 9));
    cr_assert_str_eq(r.m[0].trailer0, "Expires: never");
}

Test(h1_parser, response_status_line_forms)
{
    struct run r = run_all(PL_H1_RESPONSE, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "GET");
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.m[0].status, 200);
    r = run_all(PL_H1_RESPONSE, "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "GET");
    cr_assert_eq(r.err, 0);
    cr_assert_eq(run_all(PL_H1_RESPONSE, "HTTP/1.1 20 OK\r\n\r\n", "GET").err, PL_H1_E_STATUS_LINE);
    cr_assert_eq(run_all(PL_H1_RESPONSE, "HTTP/1.1 2000 OK\r\n\r\n", "GET").err,
                 PL_H1_E_STATUS_LINE);
    cr_assert_eq(run_all(PL_H1_RESPONSE, "HTTP/2.0 200 OK\r\n\r\n", "GET").err,
                 PL_H1_E_VERSION_UNSUPPORTED);
}

Test(h1_parser, truncated_eof)
{
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_RESPONSE, NULL);
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    struct pl_h1_msg m = {0};
    cr_assert_gt(pl_h1_parse_head(&p, in, strlen(in), &m), 0);
    cr_assert_eq(pl_h1_parse_eof(&p, 0), PL_H1_E_TRUNCATED);
    pl_h1_parser_init(&p, PL_H1_REQUEST, NULL);
    cr_assert_eq(pl_h1_parse_eof(&p, 0), 0);
    cr_assert_eq(pl_h1_parse_eof(&p, 3), PL_H1_E_TRUNCATED);
}

/* ---- content-length rules ---- */

Test(h1_parser, content_length_merging)
{
    struct run r =
        run_all(PL_H1_REQUEST,
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.m[0].body_len, 3);
    r = run_all(PL_H1_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.m[0].msg.content_length, 3);
}

Test(h1_parser, reject_content_length)
{
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
                 PL_H1_E_CL_CONFLICT);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n"), PL_H1_E_CL_CONFLICT);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nContent-Length: 3a\r\n\r\n"), PL_H1_E_CL_INVALID);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), PL_H1_E_CL_INVALID);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), PL_H1_E_CL_INVALID);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n"), PL_H1_E_CL_INVALID);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"), PL_H1_E_CL_INVALID);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
                 PL_H1_E_CL_INVALID);
    cr_assert_eq(pl_h1_error_status(PL_H1_E_CL_INVALID), 400);
}

Test(h1_parser, reject_cl_and_te)
{
    int e = req_err("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    cr_assert_eq(e, PL_H1_E_CL_AND_TE);
    cr_assert_eq(pl_h1_error_status(e), 400);
    cr_assert_eq(
        run_all(PL_H1_RESPONSE,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "GET")
            .err,
        PL_H1_E_CL_AND_TE);
}

/* ---- transfer-encoding rules ---- */

Test(h1_parser, reject_transfer_encoding)
{
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
                 PL_H1_E_TE_CHUNKED_NOT_LAST);
    cr_assert_eq(
        req_err("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
        PL_H1_E_TE_CHUNKED_NOT_LAST);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
                 PL_H1_E_TE_CHUNKED_NOT_LAST);
    int e = req_err("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    cr_assert_eq(e, PL_H1_E_TE_UNSUPPORTED);
    cr_assert_eq(pl_h1_error_status(e), 501);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"),
                 PL_H1_E_TE_UNSUPPORTED);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n"), PL_H1_E_TE_INVALID);
    cr_assert_eq(req_err("POST / HTTP/1.1\r\nTransfer-Encoding: chun ked\r\n\r\n"),
                 PL_H1_E_TE_INVALID);
    cr_assert_eq(req_err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
                 PL_H1_E_TE_HTTP10);
    cr_assert_eq(run_all(PL_H1_RESPONSE,
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "GET")
                     .err,
                 PL_H1_E_TE_CHUNKED_TWICE);
}

/* ---- line endings and header syntax ---- */

Test(h1_parser, reject_line_endings)
{
    cr_assert_eq(req_err("GET / HTTP/1.1\nHost: a\r\n\r\n"), PL_H1_E_BARE_LF);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nHost: a\n\r\n"), PL_H1_E_BARE_LF);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nHost: a\r\n\n"), PL_H1_E_BARE_LF);
    cr_assert_eq(req_err("\nGET / HTTP/1.1\r\n\r\n"), PL_H1_E_BARE_LF);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), PL_H1_E_BARE_CR);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\r\n\r\n"), PL_H1_E_BARE_CR);
}

Test(h1_parser, reject_obs_fold)
{
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nX-A: a\r\n  continued\r\n\r\n"), PL_H1_E_OBS_FOLD);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nX-A: a\r\n\tcontinued\r\n\r\n"), PL_H1_E_OBS_FOLD);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), PL_H1_E_OBS_FOLD);
}

Test(h1_parser, reject_header_names)
{
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), PL_H1_E_HEADER_NAME_WS);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), PL_H1_E_HEADER_NAME_WS);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), PL_H1_E_HEADER_NAME);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nHo\"st: a\r\n\r\n"), PL_H1_E_HEADER_NAME);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\n: a\r\n\r\n"), PL_H1_E_HEADER_NAME);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nX\x01Y: a\r\n\r\n"), PL_H1_E_HEADER_NAME);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), PL_H1_E_HEADER_NO_COLON);
}

Test(h1_parser, header_values)
{
    struct run r =
        run_all(PL_H1_REQUEST, "GET / HTTP/1.1\r\nX-A: a\tb \xc3\xa9\r\nX-E:\r\n\r\n", NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nX-A: a\x01"
                         "b\r\n\r\n"),
                 PL_H1_E_HEADER_VALUE);
    cr_assert_eq(req_err("GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n"), PL_H1_E_HEADER_VALUE);
}

Test(h1_parser, header_value_nul)
{
    const char in[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_REQUEST, NULL);
    struct pl_h1_msg m = {0};
    cr_assert_eq(pl_h1_parse_head(&p, in, sizeof(in) - 1, &m), PL_H1_E_HEADER_VALUE);
    cr_assert_eq(pl_h1_parse_head(&p, in, sizeof(in) - 1, &m), PL_H1_E_STATE);
}

Test(h1_parser, reject_request_line)
{
    cr_assert_eq(req_err("G(T / HTTP/1.1\r\n\r\n"), PL_H1_E_METHOD);
    cr_assert_eq(req_err(" GET / HTTP/1.1\r\n\r\n"), PL_H1_E_METHOD);
    cr_assert_eq(req_err("GET /a b HTTP/1.1\r\n\r\n"), PL_H1_E_TARGET);
    cr_assert_eq(req_err("GET /a\x01 HTTP/1.1\r\n\r\n"), PL_H1_E_TARGET);
    cr_assert_eq(req_err("GET /a\x7f HTTP/1.1\r\n\r\n"), PL_H1_E_TARGET);
    cr_assert_eq(req_err("GET /a\tb HTTP/1.1\r\n\r\n"), PL_H1_E_TARGET);
    cr_assert_eq(req_err("GET  / HTTP/1.1\r\n\r\n"), PL_H1_E_TARGET);
    cr_assert_eq(req_err("GET /\r\n\r\n"), PL_H1_E_REQUEST_LINE);
    cr_assert_eq(req_err("GET\r\n\r\n"), PL_H1_E_REQUEST_LINE);
    cr_assert_eq(req_err("GET / HTTP/1.1 \r\n\r\n"), PL_H1_E_REQUEST_LINE);
    cr_assert_eq(req_err("GET / http/1.1\r\n\r\n"), PL_H1_E_VERSION);
    cr_assert_eq(req_err("GET / HTTP/1.10\r\n\r\n"), PL_H1_E_VERSION);
    cr_assert_eq(req_err("GET / HTTP/11\r\n\r\n"), PL_H1_E_VERSION);
    int e = req_err("GET / HTTP/2.0\r\n\r\n");
    cr_assert_eq(e, PL_H1_E_VERSION_UNSUPPORTED);
    cr_assert_eq(pl_h1_error_status(e), 505);
    cr_assert_eq(req_err("GET / HTTP/0.9\r\n\r\n"), PL_H1_E_VERSION_UNSUPPORTED);
    cr_assert_eq(pl_h1_error_status(PL_H1_E_VERSION), 400);
}

/* ---- chunked framing ---- */

static int chunked_err(const char *body)
{
    static char in[8192];
    snprintf(in, sizeof(in), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%s", body);
    return req_err(in);
}

Test(h1_parser, reject_chunk_framing)
{
    cr_assert_eq(chunked_err("g\r\n"), PL_H1_E_CHUNK_SIZE);
    cr_assert_eq(chunked_err("\r\n"), PL_H1_E_CHUNK_SIZE);
    cr_assert_eq(chunked_err(" 5\r\n"), PL_H1_E_CHUNK_SIZE);
    cr_assert_eq(chunked_err("-5\r\n"), PL_H1_E_CHUNK_SIZE);
    cr_assert_eq(chunked_err("5x\r\n"), PL_H1_E_CHUNK_SIZE);
    cr_assert_eq(chunked_err("5\n"), PL_H1_E_BARE_LF);
    cr_assert_eq(chunked_err("5\rx"), PL_H1_E_BARE_CR);
    cr_assert_eq(chunked_err("3\r\nabcd\r\n"), PL_H1_E_CHUNK_DATA);
    cr_assert_eq(chunked_err("3\r\nabc\n"), PL_H1_E_CHUNK_DATA);
    cr_assert_eq(chunked_err("3\r\nabc\rx"), PL_H1_E_CHUNK_DATA);
    cr_assert_eq(chunked_err("0\r\nX: a\n\r\n"), PL_H1_E_BARE_LF);
    cr_assert_eq(chunked_err("0\r\nX : a\r\n\r\n"), PL_H1_E_HEADER_NAME_WS);
    cr_assert_eq(chunked_err("0\r\n\n"), PL_H1_E_BARE_LF);
}

Test(h1_parser, reject_chunk_size_overflow)
{
    int e = chunked_err("FFFFFFFFFFFFFFFFF\r\n");
    cr_assert_eq(e, PL_H1_E_CHUNK_SIZE_OVERFLOW);
    cr_assert_eq(chunked_err("10000000000000000\r\n"), PL_H1_E_CHUNK_SIZE_OVERFLOW);
    cr_assert_eq(pl_h1_error_status(e), 400);
    /* leading zeros are fine */
    cr_assert_eq(chunked_err("00000000000000000000003\r\nabc\r\n0\r\n\r\n"), 0);
}

Test(h1_parser, reject_chunk_extensions)
{
    cr_assert_eq(chunked_err("5;\r\nhello\r\n0\r\n\r\n"), PL_H1_E_CHUNK_EXT);
    cr_assert_eq(chunked_err("5 \r\nhello\r\n0\r\n\r\n"), PL_H1_E_CHUNK_EXT);
    cr_assert_eq(chunked_err("5;a=\r\nhello\r\n0\r\n\r\n"), PL_H1_E_CHUNK_EXT);
    cr_assert_eq(chunked_err("5;a=\"x\r\nhello\r\n0\r\n\r\n"), PL_H1_E_CHUNK_EXT);
    cr_assert_eq(chunked_err("5;a=b c\r\nhello\r\n0\r\n\r\n"), PL_H1_E_CHUNK_EXT);
    cr_assert_eq(chunked_err("5;a\x01\r\nhello\r\n0\r\n\r\n"), PL_H1_E_CHUNK_EXT);
    cr_assert_eq(chunked_err("5;a=b;c\r\nhello\r\n0;last=1\r\n\r\n"), 0);
    char big[6000] = "5;a=\"";
    memset(big + 5, 'x', 5000);
    strcpy(big + 5005, "\"\r\nhello\r\n0\r\n\r\n");
    cr_assert_eq(chunked_err(big), PL_H1_E_CHUNK_EXT);
}

/* ---- limits ---- */

Test(h1_parser, limit_header_bytes)
{
    static char in[70000];
    int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nX-Big: ");
    memset(in + n, 'a', 61440);
    strcpy(in + n + 61440, "\r\n\r\n");
    int e = req_err(in);
    cr_assert_eq(e, PL_H1_E_HEADERS_TOO_LARGE);
    cr_assert_eq(pl_h1_error_status(e), 431);
    /* the limit also triggers before the end of the head arrives */
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_REQUEST, NULL);
    struct pl_h1_msg m = {0};
    cr_assert_eq(pl_h1_parse_head(&p, in, 61439, &m), PL_EAGAIN);
    cr_assert_eq(pl_h1_parse_head(&p, in, 61440, &m), PL_H1_E_HEADERS_TOO_LARGE);
    /* configurable */
    struct pl_h1_config cfg = {.max_header_bytes = 64, .max_headers = 100};
    pl_h1_parser_init(&p, PL_H1_REQUEST, &cfg);
    const char *ok = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    cr_assert_gt(pl_h1_parse_head(&p, ok, strlen(ok), &m), 0);
    const char *big =
        "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    cr_assert_eq(pl_h1_parse_head(&p, big, strlen(big), &m), PL_H1_E_HEADERS_TOO_LARGE);
}

Test(h1_parser, limit_header_count)
{
    static char in[8192];
    int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 100; i++)
        n += snprintf(in + n, sizeof(in) - n, "X-%d: v\r\n", i);
    strcpy(in + n, "\r\n");
    cr_assert_eq(req_err(in), 0);
    snprintf(in + n, sizeof(in) - n, "X-101: v\r\n\r\n");
    int e = req_err(in);
    cr_assert_eq(e, PL_H1_E_TOO_MANY_HEADERS);
    cr_assert_eq(pl_h1_error_status(e), 431);
    /* a caller array smaller than the limit is also a limit */
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_REQUEST, NULL);
    struct pl_h1_header h[2];
    struct pl_h1_msg m = {.headers = h, .headers_cap = 2};
    const char *three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    cr_assert_eq(pl_h1_parse_head(&p, three, strlen(three), &m), PL_H1_E_TOO_MANY_HEADERS);
}

Test(h1_parser, limit_trailers)
{
    struct pl_h1_config cfg = {.max_header_bytes = 128, .max_headers = 2};
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_REQUEST, &cfg);
    const char *in = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    struct pl_h1_msg m = {0};
    int r = pl_h1_parse_head(&p, in, strlen(in), &m);
    cr_assert_gt(r, 0);
    struct pl_h1_body b = {0};
    cr_assert_eq(pl_h1_parse_body(&p, in + r, strlen(in) - r, &b), PL_H1_E_TOO_MANY_HEADERS);
}

Test(h1_parser, helpers)
{
    struct pl_h1_header h[3] = {{"Host", 4, "a", 1}, {"X-A", 3, "1", 1}, {"x-a", 3, "2", 1}};
    cr_assert_eq(pl_h1_header_find(h, 3, 0, "HOST"), 0);
    cr_assert_eq(pl_h1_header_find(h, 3, 0, "x-a"), 1);
    cr_assert_eq(pl_h1_header_find(h, 3, 2, "x-a"), 2);
    cr_assert_eq(pl_h1_header_find(h, 3, 0, "missing"), -1);
    const char *v = " foo ,\tBar,, baz ";
    cr_assert(pl_h1_list_has_token(v, strlen(v), "bar"));
    cr_assert(pl_h1_list_has_token(v, strlen(v), "baz"));
    cr_assert(!pl_h1_list_has_token(v, strlen(v), "ba"));
    cr_assert_str_eq(pl_h1_strerror(PL_H1_E_OBS_FOLD), "obsolete line folding");
}

/* Parses one request head given with its length (NUL bytes allowed); returns 0 or the error. */
static int head_err(const char *in, size_t len)
{
    struct pl_h1_parser p;
    pl_h1_parser_init(&p, PL_H1_REQUEST, NULL);
    struct pl_h1_header h[8];
    struct pl_h1_msg m = {.headers = h, .headers_cap = 8};
    int r = pl_h1_parse_head(&p, in, len, &m);
    return r > 0 ? 0 : r;
}

Test(h1_parser, every_byte_in_field_names_and_values)
{
    const char *tchars = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        char in[128];
        int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: a\r\nX-A%cb: v\r\n\r\n", 'Z');
        in[27] = (char)c; /* the byte after "X-A" */
        bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     (c && strchr(tchars, c));
        int r = head_err(in, (size_t)n);
        if (tchar || c == ':') /* "X-A:b: v" is the field X-A with the value "b: v" */
            cr_assert_eq(r, 0, "name byte %d", c);
        else
            cr_assert_neq(r, 0, "name byte %d", c);
        /* the same byte in a value, early and late in a line long enough for block scans */
        for (int at = 0; at < 40; at += 13) {
            static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a";
            size_t k = sizeof(pre) - 1;
            memcpy(in, pre, k);
            memset(in + k, 'v', 48);
            in[k + at] = (char)c;
            memcpy(in + k + 48, "z\r\n\r\n", 5);
            bool ok = c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
            int want = ok          ? 0
                       : c == '\r' ? PL_H1_E_BARE_CR
                       : c == '\n' ? PL_H1_E_BARE_LF
                                   : PL_H1_E_HEADER_VALUE;
            cr_assert_eq(head_err(in, k + 48 + 5), want, "value byte %d at %d", c, at);
        }
    }
}

Test(h1_parser, crlf_errors_at_every_offset)
{
    /* a bare CR or LF anywhere in a long head is found, whatever its place in a 16-byte block */
    char base[] =
        "GET / HTTP/1.1\r\nHost: a\r\nX-Long-Name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    size_t n = strlen(base);
    for (size_t at = 25; at < n - 4; at++) {
        if (base[at] == '\r' || base[at] == '\n')
            continue;
        char in[sizeof(base)];
        memcpy(in, base, sizeof(base));
        in[at] = '\n';
        cr_assert_eq(head_err(in, n), PL_H1_E_BARE_LF, "LF at %zu", at);
        in[at] = '\r';
        cr_assert_eq(head_err(in, n), PL_H1_E_BARE_CR, "CR at %zu", at);
    }
    cr_assert_eq(req_err(base), 0);
}
