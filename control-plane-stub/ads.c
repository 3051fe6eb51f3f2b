/* The AggregatedDiscoveryService gRPC server on gRPC C core: one completion-queue thread takes
 * every call event; each stream keeps at most one receive, one send and one status batch in
 * flight, and is freed when its call is over and no batch is left. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "ads_internal.h"
#include "core/log.h"

#define ADS_SOTW  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define ADS_DELTA "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

double pl_cp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void start(struct pl_cp_stream *s, const grpc_op *ops, size_t n, struct pl_cp_tag *tag)
{
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK)
        pl_die("grpc_call_start_batch: error %d", (int)e);
    s->ops++;
}

static void start_recv(struct pl_cp_stream *s)
{
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &s->recv_bb;
    start(s, &op, 1, &s->t_recv);
}

static void start_status(struct pl_cp_stream *s)
{
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!s->md_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        s->md_sent = true;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = s->status_code;
    ops[n].data.send_status_from_server.status_details = &s->status_msg;
    n++;
    s->status_started = true;
    start(s, ops, n, &s->t_status);
}

/* Ends the call with a status once queued sends are out; at most once. */
static void finish(struct pl_cp_stream *s, grpc_status_code code, const char *msg)
{
    if (s->want_status || s->closed || s->srv->shutting_down)
        return;
    s->want_status = true;
    s->status_code = code;
    s->status_msg = grpc_slice_from_copied_string(msg);
    if (!s->send_bb)
        start_status(s);
}

static void start_send(struct pl_cp_stream *s, grpc_byte_buffer *bb)
{
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!s->md_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        s->md_sent = true;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    s->send_bb = bb;
    start(s, ops, n, &s->t_send);
}

void pl_cp_stream_send(struct pl_cp_stream *s, const uint8_t *data, size_t len)
{
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)data, len);
    pl_cp_stream_send_slices(s, &sl, 1);
    grpc_slice_unref(sl);
}

void pl_cp_stream_send_slices(struct pl_cp_stream *s, grpc_slice *slices, size_t n)
{
    if (s->closed || s->want_status || s->srv->shutting_down)
        return;
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n); /* takes its own refs */
    if (!s->send_bb) {
        start_send(s, bb);
        return;
    }
    struct pl_cp_sendq *q = pl_calloc(1, sizeof(*q));
    q->bb = bb;
    if (s->q_tail)
        s->q_tail->next = q;
    else
        s->q = q;
    s->q_tail = q;
}

static void drop_queue(struct pl_cp_stream *s)
{
    while (s->q) {
        struct pl_cp_sendq *q = s->q;
        s->q = q->next;
        grpc_byte_buffer_destroy(q->bb);
        free(q);
    }
    s->q_tail = NULL;
}

static void maybe_free(struct pl_cp_stream *s)
{
    if (s->ops || !s->closed)
        return;
    struct pl_cp_server *srv = s->srv;
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pl_log_info("cp", "stream from %s (node '%s') closed", s->peer, s->node ? s->node->id : "");
    drop_queue(s);
    if (s->want_status)
        grpc_slice_unref(s->status_msg);
    pl_cp_xds_free(s);
    grpc_call_unref(s->call);
    free(s->peer);
    free(s->identity);
    free(s);
}

static void on_recv(struct pl_cp_stream *s, bool ok)
{
    s->ops--;
    grpc_byte_buffer *bb = s->recv_bb;
    s->recv_bb = NULL;
    if (!ok || !bb) {
        /* the client half-closed (or the call is gone): end it with OK */
        s->recv_done = true;
        finish(s, GRPC_STATUS_OK, "");
    } else {
        grpc_byte_buffer_reader rd;
        int rc = -1;
        const char *why = "bad request";
        if (grpc_byte_buffer_reader_init(&rd, bb)) {
            grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
            grpc_byte_buffer_reader_destroy(&rd);
            rc = pl_cp_xds_request(s, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl), &why);
            grpc_slice_unref(sl);
        }
        grpc_byte_buffer_destroy(bb);
        if (rc < 0) {
            finish(s, GRPC_STATUS_INVALID_ARGUMENT, why);
        } else if (!s->closed && !s->srv->shutting_down) {
            pl_cp_xds_pump(s);
            start_recv(s);
        }
    }
    maybe_free(s);
}

static void on_send(struct pl_cp_stream *s, bool ok)
{
    s->ops--;
    grpc_byte_buffer_destroy(s->send_bb);
    s->send_bb = NULL;
    if (!ok || s->closed || s->srv->shutting_down)
        drop_queue(s);
    if (s->q) {
        struct pl_cp_sendq *q = s->q;
        s->q = q->next;
        if (!s->q)
            s->q_tail = NULL;
        start_send(s, q->bb);
        free(q);
    } else if (s->want_status && !s->status_started && !s->srv->shutting_down) {
        start_status(s);
    }
    maybe_free(s);
}

/* The client certificate's identity on a TLS stream with client certificates: its first URI SAN
 * (a SPIFFE ID), else its first DNS SAN, else its common name; NULL on plaintext. */
static char *peer_identity(grpc_call *call)
{
    grpc_auth_context *ac = grpc_call_auth_context(call);
    if (!ac)
        return NULL;
    char *out = NULL;
    static const char *const names[] = {GRPC_X509_SAN_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME};
    for (size_t k = 0; k < 2 && !out; k++) {
        grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ac, names[k]);
        const grpc_auth_property *p;
        char *first = NULL;
        while ((p = grpc_auth_property_iterator_next(&it))) {
            char *v = pl_strndup(p->value, p->value_length);
            if (!strncmp(v, "spiffe://", 9)) {
                free(first);
                first = v;
                break;
            }
            if (!first)
                first = v;
            else
                free(v);
        }
        out = first;
    }
    grpc_auth_context_release(ac);
    return out;
}

static struct pl_cp_stream *new_stream(struct pl_cp_server *srv, grpc_call *call, bool delta,
                                       bool reading)
{
    struct pl_cp_stream *s = pl_calloc(1, sizeof(*s));
    s->srv = srv;
    s->call = call;
    s->delta = delta;
    s->t_recv = (struct pl_cp_tag){PL_CP_TAG_RECV, s};
    s->t_send = (struct pl_cp_tag){PL_CP_TAG_SEND, s};
    s->t_close = (struct pl_cp_tag){PL_CP_TAG_CLOSE, s};
    s->t_status = (struct pl_cp_tag){PL_CP_TAG_STATUS, s};
    char *peer = grpc_call_get_peer(call);
    s->peer = pl_strdup(peer ? peer : "?");
    gpr_free(peer);
    s->identity = peer_identity(call);
    s->since = pl_cp_now();
    s->next = srv->streams;
    if (srv->streams)
        srv->streams->prev = s;
    srv->streams = s;
    srv->n_streams_total++;
    grpc_op op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    op.data.recv_close_on_server.cancelled = &s->cancelled;
    start(s, &op, 1, &s->t_close);
    if (reading) {
        pl_log_info("cp", "%s ADS stream from %s", delta ? "delta" : "state-of-the-world", s->peer);
        start_recv(s);
    }
    return s;
}

static void request_call(struct pl_cp_server *srv)
{
    srv->new_call = NULL;
    grpc_call_details_init(&srv->details);
    grpc_metadata_array_init(&srv->md);
    grpc_call_error e = grpc_server_request_call(srv->server, &srv->new_call, &srv->details,
                                                 &srv->md, srv->cq, srv->cq, &srv->t_new);
    if (e != GRPC_CALL_OK)
        pl_die("grpc_server_request_call: error %d", (int)e);
}

static void on_new(struct pl_cp_server *srv, bool ok)
{
    grpc_call *call = ok ? srv->new_call : NULL;
    bool sotw = call && !grpc_slice_str_cmp(srv->details.method, ADS_SOTW);
    bool delta = call && !grpc_slice_str_cmp(srv->details.method, ADS_DELTA);
    if (call && (sotw || delta) && !srv->shutting_down) {
        new_stream(srv, call, delta, true);
    } else if (call) {
        /* an unknown method: a stream that only answers UNIMPLEMENTED */
        char *m = grpc_slice_to_c_string(srv->details.method);
        struct pl_cp_stream *s = new_stream(srv, call, false, false);
        pl_log_warn("cp", "unknown method %s from %s", m, s->peer);
        char *msg = pl_asprintf("pillion-cp does not implement %s", m);
        gpr_free(m);
        s->recv_done = true;
        finish(s, srv->shutting_down ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_UNIMPLEMENTED, msg);
        free(msg);
    }
    grpc_call_details_destroy(&srv->details);
    grpc_metadata_array_destroy(&srv->md);
    if (ok && !srv->shutting_down)
        request_call(srv);
}

static void *cq_thread(void *arg)
{
    struct pl_cp_server *srv = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct pl_cp_tag *tag = ev.tag;
        pthread_mutex_lock(&srv->mu);
        if (tag == &srv->t_shutdown) {
            /* every call is over: nothing new may be queued from here on */
            grpc_completion_queue_shutdown(srv->cq);
        } else if (tag == &srv->t_new) {
            on_new(srv, ev.success);
        } else {
            struct pl_cp_stream *s = tag->s;
            switch (tag->kind) {
            case PL_CP_TAG_RECV:
                on_recv(s, ev.success);
                break;
            case PL_CP_TAG_SEND:
                on_send(s, ev.success);
                break;
            case PL_CP_TAG_CLOSE:
                s->ops--;
                s->closed = true;
                drop_queue(s);
                maybe_free(s);
                break;
            case PL_CP_TAG_STATUS:
                s->ops--;
                maybe_free(s);
                break;
            }
        }
        pthread_mutex_unlock(&srv->mu);
    }
    return NULL;
}

/* A PEM file named by option opt, NUL-terminated; NULL with an error. */
static char *read_pem(const char *path, const char *opt, struct pl_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        pl_err_add(err, NULL, 0, 0, opt, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = pl_malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            if (cap >= (4u << 20))
                break;
            cap *= 2;
            buf = pl_realloc(buf, cap);
        }
    }
    bool bad = ferror(f) || !feof(f);
    fclose(f);
    buf[len] = '\0';
    if (bad || !strstr(buf, "-----BEGIN ")) {
        pl_err_add(err, NULL, 0, 0, opt, "'%s' is not a PEM file of at most 4 MB", path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* TLS server credentials for l (NULL with an error). */
static grpc_server_credentials *tls_creds(const struct pl_cp_listen *l, struct pl_err *err)
{
    if (!l->tls_cert || !l->tls_key) {
        pl_err_add(err, NULL, 0, 0, "--xds-tls-address", "needs --tls-cert and --tls-key");
        return NULL;
    }
    char *cert = read_pem(l->tls_cert, "--tls-cert", err);
    char *key = read_pem(l->tls_key, "--tls-key", err);
    char *ca = l->tls_client_ca ? read_pem(l->tls_client_ca, "--tls-client-ca", err) : NULL;
    grpc_server_credentials *c = NULL;
    if (cert && key && (ca || !l->tls_client_ca)) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        c = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (!c)
            pl_err_add(err, NULL, 0, 0, "--tls-cert", "cannot use '%s' with '%s'", l->tls_cert,
                       l->tls_key);
    }
    free(cert);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    free(ca);
    return c;
}

int pl_cp_server_new(const struct pl_cp_listen *l, struct pl_cp_set *set, struct pl_cp_server **out,
                     int *port, int *tls_port, struct pl_err *err)
{
    const char *addr = l->addr;
    grpc_init();
    struct pl_cp_server *srv = pl_calloc(1, sizeof(*srv));
    pthread_mutex_init(&srv->mu, NULL);
    srv->t_new.kind = PL_CP_TAG_NEW;
    srv->t_shutdown.kind = PL_CP_TAG_NEW;
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    srv->server = grpc_server_create(NULL, NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    *port = grpc_server_add_http2_port(srv->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (*port <= 0)
        pl_err_add(err, NULL, 0, 0, "--xds-address", "cannot listen for xDS on %s", addr);
    if (*port > 0 && l->tls_addr) {
        creds = tls_creds(l, err);
        *tls_port = creds ? grpc_server_add_http2_port(srv->server, l->tls_addr, creds) : 0;
        if (creds)
            grpc_server_credentials_release(creds);
        if (creds && *tls_port <= 0)
            pl_err_add(err, NULL, 0, 0, "--xds-tls-address", "cannot listen for xDS on %s",
                       l->tls_addr);
        if (*tls_port <= 0)
            *port = 0;
    }
    if (*port <= 0) {
        grpc_server_destroy(srv->server);
        grpc_completion_queue_shutdown(srv->cq);
        while (grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(srv->cq);
        pthread_mutex_destroy(&srv->mu);
        free(srv);
        grpc_shutdown();
        return PL_EIO;
    }
    srv->set = set;
    grpc_server_start(srv->server);
    request_call(srv);
    if (pthread_create(&srv->thread, NULL, cq_thread, srv) != 0)
        pl_die("pthread_create failed");
    *out = srv;
    return 0;
}

void pl_cp_server_set_resources(struct pl_cp_server *srv, struct pl_cp_set *set)
{
    pthread_mutex_lock(&srv->mu);
    struct pl_cp_set *old = srv->set;
    srv->set = set;
    for (struct pl_cp_stream *s = srv->streams; s; s = s->next)
        if (!s->closed && !s->want_status)
            pl_cp_xds_pump(s);
    pthread_mutex_unlock(&srv->mu);
    pl_cp_set_free(old);
}

void pl_cp_server_status(struct pl_cp_server *srv, FILE *f)
{
    pthread_mutex_lock(&srv->mu);
    const struct pl_cp_set *set = srv->set;
    fputs("\"resources\": {", f);
    for (int t = 0; t < PL_CP_NTYPES; t++) {
        fprintf(f, "%s\"%s\": {\"type_url\": ", t ? ", " : "", pl_cp_type_name(t));
        pl_cp_json_str(f, pl_cp_type_url(t));
        fprintf(f, ", \"version\": ");
        pl_cp_json_str(f, set ? set->version[t] : NULL);
        fprintf(f, ", \"count\": %zu}", set ? set->n[t] : 0);
    }
    fprintf(f, "}, \"streams_total\": %lu, \"nodes\": [", srv->n_streams_total);
    bool first = true;
    for (struct pl_cp_stream *s = srv->streams; s; s = s->next) {
        if (s->closed || (s->want_status && s->recv_done && !s->node))
            continue;
        if (!first)
            fputs(", ", f);
        first = false;
        pl_cp_xds_status(s, f);
    }
    fputs("]", f);
    pthread_mutex_unlock(&srv->mu);
}

void pl_cp_server_free(struct pl_cp_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->mu);
    srv->shutting_down = true;
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->t_shutdown);
    grpc_server_cancel_all_calls(srv->server);
    pthread_mutex_unlock(&srv->mu);
    pthread_join(srv->thread, NULL);
    if (srv->streams)
        pl_die("pillion-cp: a stream outlived its call");
    grpc_server_destroy(srv->server);
    grpc_completion_queue_destroy(srv->cq);
    pthread_mutex_destroy(&srv->mu);
    pl_cp_xds_enc_clear(srv);
    pl_cp_set_free(srv->set);
    free(srv);
    grpc_shutdown();
}
