/* Access log formats (every operator, Envoy's default format, JSON) and the file/stdout sinks
 * (many threads, no interleaving, flush at shutdown). Also built as a plain program for TSan. */
#ifdef PL_TEST_STANDALONE
#include "nocriterion.h"
#else
#include <criterion/criterion.h>
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/pbjson.h"
#include "http/access_log.h"

#define MS 1000000LL

struct sample {
    struct pl_stream_info si;
    struct pl_http_head req, resp;
    struct pl_headers trailers;
    struct pl_header req_h[4], resp_h[1], tr_h[1];
    struct sockaddr_in remote, local;
    struct sockaddr_in6 up_local;
};

static void hdr(struct pl_header *h, const char *n, const char *v)
{
    *h = (struct pl_header){n, v, (uint32_t)strlen(n), (uint32_t)strlen(v)};
}

#define HEAD_STR(h, f, s) ((h)->f = (s), (h)->f##_len = (uint32_t)strlen(s))

/* A completed HTTP/1.1 request: 2024-01-02T03:04:05.678901234Z, 200, 12 ms. */
static void sample_init(struct sample *x)
{
    memset(x, 0, sizeof(*x));
    struct pl_stream_info *si = &x->si;
    si->start_time.tv_sec = 1704164645;
    si->start_time.tv_nsec = 678901234;
    si->start_mono_ns = 1000 * MS;
    si->last_downstream_rx_byte_ns = 1001 * MS + 500;
    si->first_upstream_tx_byte_ns = 1002 * MS;
    si->first_upstream_rx_byte_ns = 1009 * MS;
    si->last_downstream_tx_byte_ns = 1011 * MS + 999999;
    si->end_ns = 1012 * MS + 1;

    HEAD_STR(&x->req, method, "GET");
    HEAD_STR(&x->req, path, "/foo?x=1");
    HEAD_STR(&x->req, authority, "example.com");
    HEAD_STR(&x->req, scheme, "http");
    x->req.version = 11;
    hdr(&x->req_h[0], "user-agent", "curl/8.0");
    hdr(&x->req_h[1], "x-request-id", "abc-123");
    hdr(&x->req_h[2], "x-forwarded-for", "10.0.0.9");
    hdr(&x->req_h[3], "x-empty", "");
    x->req.headers = (struct pl_headers){x->req_h, 4, 4};
    x->resp.status = 200;
    hdr(&x->resp_h[0], "x-envoy-upstream-service-time", "7");
    x->resp.headers = (struct pl_headers){x->resp_h, 1, 1};
    hdr(&x->tr_h[0], "grpc-status", "0");
    x->trailers = (struct pl_headers){x->tr_h, 1, 1};

    x->remote.sin_family = AF_INET;
    x->remote.sin_port = htons(51234);
    inet_pton(AF_INET, "192.0.2.7", &x->remote.sin_addr);
    x->local.sin_family = AF_INET;
    x->local.sin_port = htons(15006);
    inet_pton(AF_INET, "10.1.2.3", &x->local.sin_addr);
    x->up_local.sin6_family = AF_INET6;
    x->up_local.sin6_port = htons(40000);
    inet_pton(AF_INET6, "::1", &x->up_local.sin6_addr);

    si->downstream_remote_addr = (const struct sockaddr *)&x->remote;
    si->downstream_remote_addr_len = sizeof(x->remote);
    si->downstream_local_addr = (const struct sockaddr *)&x->local;
    si->downstream_local_addr_len = sizeof(x->local);
    si->upstream_local_addr = (const struct sockaddr *)&x->up_local;
    si->upstream_local_addr_len = sizeof(x->up_local);
    si->connection_id = 42;
    si->protocol = PL_PROTO_HTTP11;
    si->request = &x->req;
    si->response = &x->resp;
    si->response_trailers = &x->trailers;
    si->response_code = 200;
    si->response_code_details = "via_upstream";
    si->bytes_received = 5;
    si->bytes_sent = 1234;
    si->upstream_host = "10.0.0.5:8080";
    si->upstream_cluster = "backend";
    si->route_name = "default-route";
    si->request_id = "abc-123";
}

/* Formats si with a text format; returns a malloc'd line or NULL on a compile error. */
static char *fmt_opt(const char *text, bool omit, const struct pl_stream_info *si)
{
    struct pl_al_format *f;
    struct pl_err err = PL_ERR_INIT;
    if (pl_al_format_compile_text(text, strlen(text), omit, "t", &f, &err) < 0) {
        pl_err_free(&err);
        return NULL;
    }
    struct pl_al_buf b = {0};
    pl_al_format(f, si, &b);
    pl_al_format_free(f);
    char *r = strndup(b.p ? b.p : "", b.len);
    pl_al_buf_free(&b);
    return r;
}

static void check(const struct pl_stream_info *si, const char *text, const char *want)
{
    char *got = fmt_opt(text, false, si);
    cr_assert_not_null(got, "%s: compile failed", text);
    cr_assert_str_eq(got, want, "%s: got '%s', want '%s'", text, got, want);
    free(got);
}

Test(access_log, every_operator)
{
    struct sample x;
    sample_init(&x);
    const struct pl_stream_info *si = &x.si;
    check(si, "%START_TIME%", "2024-01-02T03:04:05.678Z");
    check(si, "%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)%", "2024/01/02T03:04:05+0000 1704164645");
    check(si, "%START_TIME(%s.%3f)%", "1704164645.678");
    check(si, "%START_TIME(%s.%6f)%", "1704164645.678901");
    check(si, "%START_TIME(%s.%9f)%", "1704164645.678901234");
    check(si, "%START_TIME(%s.%f)%", "1704164645.678901234");
    check(si, "%START_TIME(%H:%M:%E6S)%", "03:04:05.678901");
    check(si, "%START_TIME(100%% %d)%", "100% 02");
    check(si, "%REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(:SCHEME)%",
          "GET /foo?x=1 example.com http");
    check(si, "%REQ(USER-AGENT)%|%REQ(User-Agent):4%|%REQ(X-MISSING)%|%REQ(X-EMPTY)%|",
          "curl/8.0|curl|-||");
    check(si, "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/foo?x=1");
    check(si, "%REQ(X-MISSING?X-ALSO-MISSING)%", "-");
    check(si, "%REQ(HOST)%", "example.com");
    check(si, "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %RESP(:STATUS)% %RESP(X-NONE)%", "7 200 -");
    check(si, "%TRAILER(GRPC-STATUS)% %TRAILER(X)%", "0 -");
    check(si, "%PROTOCOL%", "HTTP/1.1");
    check(si, "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS%", "200 via_upstream");
    check(si, "%RESPONSE_FLAGS%", "-");
    check(si, "%BYTES_RECEIVED% %BYTES_SENT%", "5 1234");
    check(si, "%DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%",
          "12 1 9 2");
    check(si, "%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %UPSTREAM_REMOTE_ADDRESS%",
          "10.0.0.5:8080 backend 10.0.0.5:8080");
    check(si, "%UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "[::1]:40000 ::1");
    check(si, "%UPSTREAM_TRANSPORT_FAILURE_REASON%", "-");
    check(si, "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
          "192.0.2.7:51234 192.0.2.7");
    check(si, "%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
          "10.1.2.3:15006 10.1.2.3");
    check(si, "%ROUTE_NAME% %CONNECTION_TERMINATION_DETAILS%", "default-route -");
    check(si, "%CONNECTION_ID% %STREAM_ID%", "42 abc-123");
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    check(si, "%HOSTNAME%", host);
    check(si, "literal only, 100 percent\n", "literal only, 100 percent\n");
    check(si, "", "");
}

Test(access_log, unset_values)
{
    struct pl_stream_info si;
    pl_stream_info_start(&si);
    check(&si,
          "%REQ(:METHOD)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS% "
          "%BYTES_RECEIVED% %DURATION% %RESPONSE_TX_DURATION% %UPSTREAM_HOST% "
          "%UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %ROUTE_NAME% "
          "%RESP(X)% %TRAILER(X)% %CONNECTION_ID%",
          "- - 0 - - 0 - - - - - - - - - 0");
    char *got = fmt_opt("[%REQ(:METHOD)%][%UPSTREAM_HOST%][%RESPONSE_FLAGS%]", true, &si);
    cr_assert_str_eq(got, "[][][-]");
    free(got);
}

Test(access_log, response_flags_in_envoy_order)
{
    struct pl_stream_info si;
    pl_stream_info_start(&si);
    si.response_flags = PL_RF_UF | PL_RF_URX | PL_RF_UH;
    check(&si, "%RESPONSE_FLAGS%", "UH,UF,URX");
    si.response_flags = PL_RF_LH | PL_RF_UDO | PL_RF_NR | PL_RF_UMSDR | PL_RF_DPE | PL_RF_UAEX;
    check(&si, "%RESPONSE_FLAGS%", "LH,NR,UAEX,DPE,UMSDR,UDO");
}

Test(access_log, ipv6_and_unix_addresses)
{
    struct pl_stream_info si;
    pl_stream_info_start(&si);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};
    inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
    si.downstream_remote_addr = (const struct sockaddr *)&a6;
    si.downstream_remote_addr_len = sizeof(a6);
    check(&si, "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
          "[2001:db8::1]:80 2001:db8::1");
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, "/run/app.sock");
    si.downstream_local_addr = (const struct sockaddr *)&un;
    si.downstream_local_addr_len = sizeof(un);
    check(&si, "%DOWNSTREAM_LOCAL_ADDRESS%", "/run/app.sock");
}

Test(access_log, default_format_byte_exact)
{
    struct sample x;
    sample_init(&x);
    check(&x.si, PL_ACCESS_LOG_DEFAULT_FORMAT,
          "[2024-01-02T03:04:05.678Z] \"GET /foo?x=1 HTTP/1.1\" 200 - 5 1234 12 7 "
          "\"10.0.0.9\" \"curl/8.0\" \"abc-123\" \"example.com\" \"10.0.0.5:8080\"\n");
    /* the same through a SubstitutionFormatString left unset */
    struct pl_al_format *f;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_al_format_compile(NULL, "x", &f, &err), 0);
    struct pl_al_buf b = {0};
    x.si.response_flags = PL_RF_UT;
    x.si.protocol = PL_PROTO_HTTP2;
    pl_al_format(f, &x.si, &b);
    cr_assert_str_eq(b.p, "[2024-01-02T03:04:05.678Z] \"GET /foo?x=1 HTTP/2\" 200 UT 5 1234 12 7 "
                          "\"10.0.0.9\" \"curl/8.0\" \"abc-123\" \"example.com\" "
                          "\"10.0.0.5:8080\"\n");
    pl_al_buf_free(&b);
    pl_al_format_free(f);
}

static void check_err(const char *text, const char *needle)
{
    struct pl_al_format *f = (struct pl_al_format *)1;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_al_format_compile_text(text, strlen(text), false, "a.b.text_format", &f, &err),
                 PL_EINVAL, "%s compiled", text);
    cr_assert_null(f);
    cr_assert_eq(err.n, 1);
    cr_assert_str_eq(err.v[0].path, "a.b.text_format");
    cr_assert(strstr(err.v[0].msg, needle), "%s: '%s' lacks '%s'", text, err.v[0].msg, needle);
    pl_err_free(&err);
}

Test(access_log, compile_errors)
{
    check_err("x %NO_SUCH_THING% y", "unknown command operator '%NO_SUCH_THING%'");
    check_err("%REQ%", "needs a parameter");
    check_err("%REQ()%", "needs a parameter");
    check_err("%PROTOCOL(x)%", "takes no parameter");
    check_err("%REQ(A?B?C)%", "HEADER?ALTERNATIVE");
    check_err("%REQ(A?)%", "HEADER?ALTERNATIVE");
    check_err("100% sure", "no valid command operator at position 3");
    check_err("%DURATION", "no valid command operator");
    check_err("%REQ(X:3%", "missing ')'");
    check_err("%REQ(X):%", "bad length");
}

/* Decodes one AccessLog from YAML. */
static Envoy__Config__Accesslog__V3__AccessLog *load_al(const char *yaml)
{
    ProtobufCMessage *m = NULL;
    struct pl_err err = PL_ERR_INIT;
    int rc = pl_pbjson_load_text(yaml, strlen(yaml), "test.yaml",
                                 &envoy__config__accesslog__v3__access_log__descriptor, NULL, &m,
                                 NULL, &err);
    if (rc < 0)
        pl_err_print(&err, stderr);
    cr_assert_eq(rc, 0);
    pl_err_free(&err);
    return (Envoy__Config__Accesslog__V3__AccessLog *)m;
}

static char *tmpname(const char *tag)
{
    char *p = pl_asprintf("/tmp/pl_al_%s_%d_%p", tag, (int)getpid(), (void *)&tag);
    unlink(p);
    return p;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    struct stat st;
    cr_assert_eq(fstat(fileno(f), &st), 0);
    char *r = malloc((size_t)st.st_size + 1);
    size_t n = fread(r, 1, (size_t)st.st_size, f);
    r[n] = 0;
    fclose(f);
    return r;
}

/* Compiles one AccessLog from YAML; returns the list or NULL with errors in err. */
static struct pl_access_logs *compile_yaml(const char *yaml, struct pl_err *err)
{
    Envoy__Config__Accesslog__V3__AccessLog *al = load_al(yaml);
    const Envoy__Config__Accesslog__V3__AccessLog *const v[1] = {al};
    struct pl_access_logs *logs = NULL;
    int rc = pl_access_log_compile(v, 1, "hcm.access_log", &logs, err);
    protobuf_c_message_free_unpacked(&al->base, NULL);
    cr_assert_eq(rc < 0, logs == NULL);
    return logs;
}

/* One line with a JSON format compiled through the file sink into a temp file. */
static char *json_line(const char *json_yaml, bool omit, const struct pl_stream_info *si)
{
    char *path = tmpname("json");
    char *yaml = pl_asprintf("name: envoy.access_loggers.file\n"
                             "typed_config:\n"
                             "  '@type': type.googleapis.com/"
                             "envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
                             "  path: %s\n"
                             "  log_format:\n"
                             "    omit_empty_values: %s\n"
                             "    json_format:\n%s",
                             path, omit ? "true" : "false", json_yaml);
    struct pl_err err = PL_ERR_INIT;
    struct pl_access_logs *logs = compile_yaml(yaml, &err);
    if (!logs)
        pl_err_print(&err, stderr);
    cr_assert_not_null(logs);
    pl_access_log_emit(logs, si);
    pl_access_logs_free(logs);
    char *line = slurp(path);
    unlink(path);
    free(path);
    free(yaml);
    return line;
}

Test(access_log, json_typed_and_nested)
{
    struct sample x;
    sample_init(&x);
    char *line = json_line("      code: '%RESPONSE_CODE%'\n"
                           "      sent: '%BYTES_SENT%'\n"
                           "      received: '%BYTES_RECEIVED%'\n"
                           "      duration: '%DURATION%'\n"
                           "      code_text: 'code=%RESPONSE_CODE%'\n"
                           "      method: '%REQ(:METHOD)%'\n"
                           "      missing: '%REQ(X-MISSING)%'\n"
                           "      mixed: '%REQ(X-MISSING)% %PROTOCOL%'\n"
                           "      tx: '%RESPONSE_TX_DURATION%'\n"
                           "      quote: '%REQ(X-Q)%'\n"
                           "      upstream:\n"
                           "        host: '%UPSTREAM_HOST%'\n"
                           "        cluster: '%UPSTREAM_CLUSTER%'\n"
                           "        deeper: {flags: '%RESPONSE_FLAGS%'}\n"
                           "      literal_num: 3\n"
                           "      literal_bool: true\n"
                           "      list: ['%PROTOCOL%', 1]\n",
                           false, &x.si);
    cr_assert_str_eq(line,
                     "{\"code\":200,\"sent\":1234,\"received\":5,\"duration\":12,"
                     "\"code_text\":\"code=200\",\"method\":\"GET\",\"missing\":null,"
                     "\"mixed\":\"- HTTP/1.1\",\"tx\":2,\"quote\":null,"
                     "\"upstream\":{\"host\":\"10.0.0.5:8080\",\"cluster\":\"backend\","
                     "\"deeper\":{\"flags\":\"-\"}},\"literal_num\":3,"
                     "\"literal_bool\":true,\"list\":[\"HTTP/1.1\",1]}\n",
                     "got %s", line);
    free(line);
}

Test(access_log, json_escapes)
{
    struct sample x;
    sample_init(&x);
    hdr(&x.req_h[3], "x-q", "a\"b\\c\x01\td");
    char *line =
        json_line("      q: '%REQ(X-Q)%'\n      \"k\\\"ey\": 'p=%REQ(X-Q)%'\n", false, &x.si);
    cr_assert_str_eq(
        line, "{\"q\":\"a\\\"b\\\\c\\u0001\\td\",\"k\\\"ey\":\"p=a\\\"b\\\\c\\u0001\\td\"}\n",
        "got %s", line);
    free(line);
}

Test(access_log, json_omit_empty_values)
{
    struct pl_stream_info si;
    pl_stream_info_start(&si);
    si.response_code = 503;
    si.response_flags = PL_RF_UF;
    char *line = json_line("      code: '%RESPONSE_CODE%'\n"
                           "      host: '%UPSTREAM_HOST%'\n"
                           "      method: '%REQ(:METHOD)%'\n"
                           "      mixed: '%REQ(:METHOD)%%UPSTREAM_HOST%'\n"
                           "      duration: '%DURATION%'\n"
                           "      flags: '%RESPONSE_FLAGS%'\n"
                           "      n: {a: '%ROUTE_NAME%'}\n",
                           true, &si);
    cr_assert_str_eq(line, "{\"code\":503,\"flags\":\"UF\",\"n\":{}}\n", "got %s", line);
    free(line);
}

static const char FILE_T[] =
    "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";

Test(access_log, config_errors_name_the_field)
{
    struct pl_err err = PL_ERR_INIT;
    char *yaml = pl_asprintf("name: a\ntyped_config:\n  '@type': %s\n  path: /tmp/x\n"
                             "  log_format: {text_format: 'x %%BAD_OP%% y'}\n",
                             FILE_T);
    cr_assert_null(compile_yaml(yaml, &err));
    cr_assert_eq(err.n, 1);
    cr_assert_str_eq(err.v[0].path, "hcm.access_log[0].typed_config.log_format.text_format");
    cr_assert(strstr(err.v[0].msg, "'%BAD_OP%'"), "%s", err.v[0].msg);
    pl_err_free(&err);
    free(yaml);

    yaml = pl_asprintf("name: a\ntyped_config:\n  '@type': %s\n  path: /nonexistent-dir/x.log\n",
                       FILE_T);
    cr_assert_null(compile_yaml(yaml, &err));
    cr_assert_str_eq(err.v[0].path, "hcm.access_log[0].typed_config.path");
    cr_assert(strstr(err.v[0].msg, "/nonexistent-dir/x.log"));
    pl_err_free(&err);
    free(yaml);

    yaml = pl_asprintf("name: a\nfilter: {not_health_check_filter: {}}\ntyped_config:\n"
                       "  '@type': %s\n  path: /dev/stdout\n",
                       FILE_T);
    cr_assert_null(compile_yaml(yaml, &err));
    cr_assert(strstr(err.v[0].msg, "filter is not supported"));
    pl_err_free(&err);
    free(yaml);

    cr_assert_null(compile_yaml("name: a\ntyped_config:\n  '@type': type.googleapis.com/"
                                "envoy.extensions.access_loggers.stream.v3.StderrAccessLog\n",
                                &err));
    cr_assert(strstr(err.v[0].msg, "not supported"), "%s", err.v[0].msg);
    pl_err_free(&err);
}

Test(access_log, text_format_source_and_reopen)
{
    struct sample x;
    sample_init(&x);
    char *path = tmpname("src");
    char *moved = pl_asprintf("%s.1", path);
    char *yaml = pl_asprintf("name: a\ntyped_config:\n  '@type': %s\n  path: %s\n"
                             "  log_format:\n    text_format_source:\n"
                             "      inline_string: \"%%RESPONSE_CODE%% %%UPSTREAM_HOST%%\\n\"\n",
                             FILE_T, path);
    struct pl_err err = PL_ERR_INIT;
    struct pl_access_logs *logs = compile_yaml(yaml, &err);
    cr_assert_not_null(logs);
    cr_assert_eq(pl_access_logs_count(logs), 1);
    pl_access_log_emit(logs, &x.si);
    pl_access_log_flush_all();
    char *got = slurp(path);
    cr_assert_str_eq(got, "200 10.0.0.5:8080\n");
    free(got);
    cr_assert_eq(rename(path, moved), 0);
    pl_access_log_reopen_all();
    x.si.response_code = 404;
    pl_access_log_emit(logs, &x.si);
    pl_access_logs_free(logs);
    got = slurp(path);
    cr_assert_str_eq(got, "404 10.0.0.5:8080\n");
    free(got);
    got = slurp(moved);
    cr_assert_str_eq(got, "200 10.0.0.5:8080\n");
    free(got);
    unlink(path);
    unlink(moved);
    free(path);
    free(moved);
    free(yaml);
}

#define THREADS 4
#define LINES   10000

struct emitter {
    pthread_t t;
    int id;
    const struct pl_access_logs *logs;
};

static void *emit_lines(void *arg)
{
    struct emitter *e = arg;
    struct sample x;
    sample_init(&x);
    char id[64] = "", pad[300] = "";
    hdr(&x.req_h[0], "x-thread", id);
    hdr(&x.req_h[1], "x-pad", pad);
    for (int i = 0; i < LINES; i++) {
        int n = (i * 37) % 250; /* lines of varying length */
        memset(pad, 'a' + e->id, (size_t)n);
        pad[n] = 0;
        snprintf(id, sizeof(id), "%d", e->id);
        x.req_h[0].value_len = (uint32_t)strlen(id);
        x.req_h[1].value_len = (uint32_t)n;
        x.si.bytes_sent = (uint64_t)i;
        pl_access_log_emit(e->logs, &x.si);
    }
    return NULL;
}

/* Checks the file holds exactly LINES well-formed lines per thread, in order per thread. */
static void check_lines(const char *text)
{
    int next[THREADS] = {0};
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "unterminated last line");
        int id = -1, seq = -1, used = 0;
        cr_assert_eq(sscanf(p, "t=%d seq=%d pad=%n", &id, &seq, &used), 2, "bad line %.40s", p);
        cr_assert(id >= 0 && id < THREADS);
        cr_assert_eq(seq, next[id], "thread %d: line %d after %d", id, seq, next[id]);
        int n = (seq * 37) % 250;
        cr_assert_eq(nl - (p + used), n + 4, "line length of t=%d seq=%d", id, seq);
        for (int k = 0; k < n; k++)
            cr_assert_eq(p[used + k], 'a' + id, "interleaved bytes in t=%d seq=%d", id, seq);
        cr_assert(!memcmp(p + used + n, " end", 4));
        next[id]++;
        p = nl + 1;
    }
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(next[i], LINES, "thread %d: %d lines", i, next[i]);
}

Test(access_log, file_sink_many_threads)
{
    char *path = tmpname("mt");
    char *yaml =
        pl_asprintf("name: a\ntyped_config:\n  '@type': %s\n  path: %s\n"
                    "  log_format:\n    text_format: "
                    "\"t=%%REQ(X-THREAD)%% seq=%%BYTES_SENT%% pad=%%REQ(X-PAD)%% end\\n\"\n",
                    FILE_T, path);
    struct pl_err err = PL_ERR_INIT;
    struct pl_access_logs *logs = compile_yaml(yaml, &err);
    cr_assert_not_null(logs);
    /* a second list on the same path shares the file (and is freed first) */
    struct pl_access_logs *twin = compile_yaml(yaml, &err);
    cr_assert_not_null(twin);
    struct emitter e[THREADS];
    for (int i = 0; i < THREADS; i++) {
        e[i] = (struct emitter){.id = i, .logs = logs};
        cr_assert_eq(pthread_create(&e[i].t, NULL, emit_lines, &e[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(e[i].t, NULL);
    pl_access_logs_free(twin);
    pl_access_logs_free(logs); /* the last user: flushes everything, joins the flusher */
    cr_assert_eq(pl_access_log_dropped(), 0);
    char *text = slurp(path);
    check_lines(text);
    free(text);
    unlink(path);
    free(path);
    free(yaml);
}

Test(access_log, stdout_sink)
{
    char *path = tmpname("stdout");
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    struct pl_err err = PL_ERR_INIT;
    struct pl_access_logs *logs =
        compile_yaml("name: envoy.access_loggers.stdout\ntyped_config:\n  '@type': "
                     "type.googleapis.com/envoy.extensions.access_loggers.stream.v3."
                     "StdoutAccessLog\n",
                     &err);
    struct pl_access_logs *custom =
        compile_yaml("name: s\ntyped_config:\n  '@type': type.googleapis.com/envoy.extensions."
                     "access_loggers.stream.v3.StdoutAccessLog\n"
                     "  log_format: {text_format: \"%RESPONSE_CODE%\\n\"}\n",
                     &err);
    cr_assert(logs && custom);
    struct sample x;
    sample_init(&x);
    pl_access_log_emit(logs, &x.si);
    pl_access_log_emit(custom, &x.si);
    pl_access_logs_free(logs);
    pl_access_logs_free(custom);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    char *got = slurp(path);
    cr_assert_str_eq(got, "[2024-01-02T03:04:05.678Z] \"GET /foo?x=1 HTTP/1.1\" 200 - 5 1234 12 "
                          "7 \"10.0.0.9\" \"curl/8.0\" \"abc-123\" \"example.com\" "
                          "\"10.0.0.5:8080\"\n200\n");
    free(got);
    unlink(path);
    free(path);
}

Test(access_log, check_opens_no_file)
{
    char *path = tmpname("check");
    cr_assert_not_null(path);
    char *yaml = pl_asprintf("name: a\ntyped_config:\n  '@type': %s\n  path: %s\n", FILE_T,
                             path ? path : "");
    Envoy__Config__Accesslog__V3__AccessLog *al = load_al(yaml);
    const Envoy__Config__Accesslog__V3__AccessLog *const v[2] = {al, al};
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_access_log_check(v, 2, "x", &err), 0);
    cr_assert_neq(access(path, F_OK), 0, "check created %s", path);
    protobuf_c_message_free_unpacked(&al->base, NULL);
    free(yaml);

    yaml = pl_asprintf("name: a\ntyped_config:\n  '@type': %s\n  log_format: {json_format: "
                       "{a: {b: '%%NOPE%%'}}}\n",
                       FILE_T);
    al = load_al(yaml);
    const Envoy__Config__Accesslog__V3__AccessLog *const w[1] = {al};
    cr_assert_eq(pl_access_log_check(w, 1, "x", &err), PL_EINVAL);
    cr_assert_eq(err.n, 2, "%zu errors", err.n);
    cr_assert_str_eq(err.v[0].path, "x[0].typed_config.log_format.json_format.a.b");
    cr_assert(strstr(err.v[0].msg, "'%NOPE%'"));
    cr_assert_str_eq(err.v[1].path, "x[0].typed_config.path");
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(&al->base, NULL);
    free(yaml);
    free(path);
}
