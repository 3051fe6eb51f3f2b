/* The xDS thread: one ADS stream on a gRPC C core channel, blocked on its completion queue.
 * Responses are decoded here and handed to the main loop (ev_async + a queue); requests the
 * main thread decided are queued and sent one at a time. A failed stream is retried after an
 * exponential backoff with jitter. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "core/log.h"
#include "tls/tls.h"
#include "xds/xds_internal.h"

#define ADS_METHOD                                                                                 \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define DELTA_METHOD                                                                               \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

struct out_msg {
    uint8_t *data;
    size_t len;
    struct out_msg *next;
};

struct pl_xds_transport {
    struct pl_xds_transport_opts o;
    char *target;
    pthread_t thread;
    grpc_completion_queue *cq;
    grpc_channel *channel;
    ev_async async;

    pthread_mutex_t mu; /* guards everything down to the next comment */
    pthread_cond_t cond;
    bool stopping;
    grpc_call *call;
    uint64_t stream;
    bool send_pending;
    grpc_byte_buffer *send_bb;
    struct out_msg *out_head, *out_tail;
    struct pl_xds_event *ev_head, *ev_tail;

    /* xDS thread only */
    char tag_init, tag_recv, tag_send, tag_status;
    grpc_metadata_array md_init, md_trail;
    grpc_byte_buffer *recv_bb;
    grpc_status_code status;
    grpc_slice details;
    uint64_t rnd;
};

static void post(struct pl_xds_transport *t, struct pl_xds_event *ev)
{
    pthread_mutex_lock(&t->mu);
    if (t->ev_tail)
        t->ev_tail->next = ev;
    else
        t->ev_head = ev;
    t->ev_tail = ev;
    pthread_mutex_unlock(&t->mu);
    ev_async_send(t->o.loop, &t->async);
}

static struct pl_xds_event *event_new(enum pl_xds_event_kind k, uint64_t stream)
{
    struct pl_xds_event *ev = pl_calloc(1, sizeof(*ev));
    ev->kind = k;
    ev->stream = stream;
    return ev;
}

static void event_free(struct pl_xds_event *ev)
{
    pl_xds_arena_release(&ev->arena); /* resp, delta */
    if (ev->received)
        grpc_byte_buffer_destroy(ev->received);
    free(ev->msg);
    free(ev);
}

static void async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_xds_transport *t = w->data;
    pthread_mutex_lock(&t->mu);
    struct pl_xds_event *ev = t->ev_head;
    t->ev_head = t->ev_tail = NULL;
    pthread_mutex_unlock(&t->mu);
    while (ev) {
        struct pl_xds_event *next = ev->next;
        t->o.on_event(t->o.arg, ev);
        event_free(ev);
        ev = next;
    }
}

static void start_batch(grpc_call *call, const grpc_op *ops, size_t n, void *tag)
{
    grpc_call_error e = grpc_call_start_batch(call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK)
        pl_die("xds: grpc_call_start_batch: error %d", (int)e);
}

/* Starts sending the head of the queue if nothing is in flight. Holds mu. */
static void send_next_locked(struct pl_xds_transport *t)
{
    if (t->send_pending || !t->out_head || !t->call)
        return;
    struct out_msg *m = t->out_head;
    t->out_head = m->next;
    if (!t->out_head)
        t->out_tail = NULL;
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)m->data, m->len);
    t->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    free(m->data);
    free(m);
    grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
    op.data.send_message.send_message = t->send_bb;
    t->send_pending = true;
    start_batch(t->call, &op, 1, &t->tag_send);
}

static void drop_queue_locked(struct pl_xds_transport *t)
{
    while (t->out_head) {
        struct out_msg *m = t->out_head;
        t->out_head = m->next;
        free(m->data);
        free(m);
    }
    t->out_tail = NULL;
}

void pl_xds_transport_send(struct pl_xds_transport *t, uint64_t stream, uint8_t *data, size_t len)
{
    pthread_mutex_lock(&t->mu);
    if (!t->call || stream != t->stream || t->stopping) {
        pthread_mutex_unlock(&t->mu);
        free(data);
        return;
    }
    struct out_msg *m = pl_calloc(1, sizeof(*m));
    m->data = data;
    m->len = len;
    if (t->out_tail)
        t->out_tail->next = m;
    else
        t->out_head = m;
    t->out_tail = m;
    send_next_locked(t);
    pthread_mutex_unlock(&t->mu);
}

static void start_recv(struct pl_xds_transport *t)
{
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &t->recv_bb;
    start_batch(t->call, &op, 1, &t->tag_recv);
}

/* Decodes a response into a new event; NULL if the bytes are not a response. The message is
 * gathered into the event's arena (not a slice of its own) and decoded from there: one copy,
 * in memory that goes with the event. */
static struct pl_xds_event *decode(grpc_byte_buffer *bb, bool delta, uint64_t stream)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return NULL;
    struct pl_xds_event *e = event_new(PL_XDS_EV_RESPONSE, stream);
    ProtobufCAllocator a = pl_xds_arena_allocator(&e->arena);
    size_t len = grpc_byte_buffer_length(bb), n = 0;
    uint8_t *buf = a.alloc(a.allocator_data, len);
    grpc_slice sl;
    while (grpc_byte_buffer_reader_next(&rd, &sl)) {
        size_t k = GRPC_SLICE_LENGTH(sl);
        if (k > len - n)
            k = len - n; /* cannot happen: the length is the slices' sum */
        memcpy(buf + n, GRPC_SLICE_START_PTR(sl), k);
        n += k;
        grpc_slice_unref(sl);
    }
    grpc_byte_buffer_reader_destroy(&rd);
    if (delta)
        e->delta = envoy__service__discovery__v3__delta_discovery_response__unpack(&a, n, buf);
    else
        e->resp = envoy__service__discovery__v3__discovery_response__unpack(&a, n, buf);
    if (!e->resp && !e->delta) {
        pl_xds_arena_release(&e->arena);
        free(e);
        return NULL;
    }
    return e;
}

/* Runs one stream until it ends; returns true if the server sent at least one message. */
static bool run_stream(struct pl_xds_transport *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->stopping) {
        pthread_mutex_unlock(&t->mu);
        return false;
    }
    grpc_slice method = grpc_slice_from_static_string(t->o.delta ? DELTA_METHOD : ADS_METHOD);
    t->call = grpc_channel_create_call(t->channel, NULL, GRPC_PROPAGATE_DEFAULTS, t->cq, method,
                                       NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    uint64_t stream = ++t->stream;
    grpc_metadata_array_init(&t->md_init);
    grpc_metadata_array_init(&t->md_trail);
    t->details = grpc_empty_slice();
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &t->md_init;
    start_batch(t->call, ops, 2, &t->tag_init);
    grpc_op st = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    st.data.recv_status_on_client.trailing_metadata = &t->md_trail;
    st.data.recv_status_on_client.status = &t->status;
    st.data.recv_status_on_client.status_details = &t->details;
    start_batch(t->call, &st, 1, &t->tag_status);
    pthread_mutex_unlock(&t->mu);
    post(t, event_new(PL_XDS_EV_STREAM_UP, stream));

    bool init_pending = true, recv_pending = false, status_done = false, got_message = false;
    grpc_call *done = NULL;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        if (status_done && !init_pending && !recv_pending && !t->send_pending) {
            done = t->call; /* from now on sends for this stream are dropped */
            t->call = NULL;
            drop_queue_locked(t);
            pthread_mutex_unlock(&t->mu);
            break;
        }
        pthread_mutex_unlock(&t->mu);
        grpc_event ev = grpc_completion_queue_next(t->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            pl_die("xds: unexpected completion queue event %d", (int)ev.type);
        if (ev.tag == &t->tag_init) {
            init_pending = false;
            if (ev.success) {
                post(t, event_new(PL_XDS_EV_CONNECTED, stream));
                recv_pending = true;
                start_recv(t);
            }
        } else if (ev.tag == &t->tag_recv) {
            recv_pending = false;
            if (ev.success && t->recv_bb) {
                got_message = true;
                struct pl_xds_event *e = decode(t->recv_bb, t->o.delta, stream);
                if (e) {
                    e->received = t->recv_bb;
                    post(t, e);
                } else {
                    grpc_byte_buffer_destroy(t->recv_bb);
                    pl_log_warn("xds", "undecodable DiscoveryResponse: ignored");
                }
                t->recv_bb = NULL;
                recv_pending = true;
                start_recv(t);
            }
        } else if (ev.tag == &t->tag_send) {
            pthread_mutex_lock(&t->mu);
            grpc_byte_buffer_destroy(t->send_bb);
            t->send_bb = NULL;
            t->send_pending = false;
            if (ev.success && !status_done)
                send_next_locked(t);
            pthread_mutex_unlock(&t->mu);
        } else if (ev.tag == &t->tag_status) {
            status_done = true;
        }
    }
    struct pl_xds_event *down = event_new(PL_XDS_EV_STREAM_DOWN, stream);
    down->status = (int)t->status;
    char *d = grpc_slice_to_c_string(t->details);
    down->msg = pl_strdup(d);
    gpr_free(d);
    grpc_slice_unref(t->details);
    grpc_metadata_array_destroy(&t->md_init);
    grpc_metadata_array_destroy(&t->md_trail);
    grpc_call_unref(done);
    post(t, down);
    return got_message;
}

static uint64_t next_rnd(struct pl_xds_transport *t)
{
    t->rnd ^= t->rnd << 13; /* xorshift64 */
    t->rnd ^= t->rnd >> 7;
    t->rnd ^= t->rnd << 17;
    return t->rnd;
}

static void *thread_main(void *arg)
{
    struct pl_xds_transport *t = arg;
    unsigned attempt = 0;
    for (;;) {
        if (run_stream(t))
            attempt = 0;
        uint64_t ms =
            pl_xds_backoff_ms(attempt, t->o.backoff_base_ms, t->o.backoff_max_ms, next_rnd(t));
        if (attempt < 32)
            attempt++;
        pthread_mutex_lock(&t->mu);
        if (!t->stopping) {
            pl_log_debug("xds", "reconnecting in %llu ms", (unsigned long long)ms);
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += (time_t)(ms / 1000);
            until.tv_nsec += (long)(ms % 1000) * 1000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            while (!t->stopping && pthread_cond_timedwait(&t->cond, &t->mu, &until) == 0)
                ;
        }
        bool stop = t->stopping;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            break;
    }
    return NULL;
}

/* Largest slice the TCP endpoint reads into, and so the most a connection keeps allocated
 * between reads (gRPC's default is 4 MB). */
#define READ_CHUNK_MAX (64 * 1024)

/* gRPC 1.51 reads TCP through its "tcp_read_chunks" experiment, on by default: before each read it
 * tops the read buffer up, in 64 KB slices, to the largest burst read so far, ignoring the read
 * chunk size bounds, and keeps the slices a read leaves unused for the next one. After one large
 * response (10,000 ClusterLoadAssignments: several MB) that much stays allocated for the life of
 * the connection, while only small messages follow. The older read path, still in 1.51, reads
 * into one slice of at most GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE bytes. gRPC reads GRPC_EXPERIMENTS
 * once, when an experiment is first looked at, so this runs before grpc_init(): from main before
 * any thread starts (pl_xds_process_init), else when the first transport starts; an operator's
 * own setting of tcp_read_chunks wins. */
static void use_bounded_tcp_reads(void)
{
    const char *cur = getenv("GRPC_EXPERIMENTS");
    if (cur && strstr(cur, "tcp_read_chunks"))
        return;
    if (!cur || !*cur) {
        setenv("GRPC_EXPERIMENTS", "-tcp_read_chunks", 1);
        return;
    }
    char *v = pl_malloc(strlen(cur) + sizeof(",-tcp_read_chunks"));
    strcpy(v, cur);
    strcat(v, ",-tcp_read_chunks");
    setenv("GRPC_EXPERIMENTS", v, 1);
    free(v);
}

static pthread_once_t bounded_reads_once = PTHREAD_ONCE_INIT;

void pl_xds_process_init(void)
{
    pthread_once(&bounded_reads_once, use_bounded_tcp_reads);
}

struct pl_xds_transport *pl_xds_transport_new(const struct pl_xds_transport_opts *o,
                                              struct pl_err *err)
{
    struct pl_xds_transport *t = pl_calloc(1, sizeof(*t));
    t->o = *o;
    if (!t->o.backoff_base_ms)
        t->o.backoff_base_ms = 500;
    if (!t->o.backoff_max_ms)
        t->o.backoff_max_ms = 30000;
    t->target = pl_strdup(o->target);
    t->o.target = t->target;
    t->o.tls = NULL; /* only read here */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    t->rnd = ((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^ (uint64_t)(uintptr_t)t;
    if (!t->rnd)
        t->rnd = 88172645463325252ULL;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    pl_xds_process_init();
    grpc_init();
    t->cq = grpc_completion_queue_create_for_next(NULL);
    /* the channel's own reconnect backoff follows Envoy's xDS retry bounds, so a restarted
     * control plane is reached as soon as our stream backoff allows */
    grpc_arg args[5] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE},
        {.type = GRPC_ARG_STRING, .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG},
    };
    args[0].value.integer = (int)t->o.backoff_base_ms;
    args[1].value.integer = (int)t->o.backoff_base_ms;
    args[2].value.integer = (int)t->o.backoff_max_ms;
    args[3].value.integer = READ_CHUNK_MAX;
    grpc_channel_args ca_args = {.num_args = 4, .args = args};
    if (o->tls && o->tls->tls && o->tls->sni) { /* the SNI the UpstreamTlsContext names */
        args[4].value.string = (char *)o->tls->sni;
        ca_args.num_args = 5;
    }
    grpc_channel_credentials *creds = pl_xds_channel_creds(o->tls, o->tls_check_host);
    t->channel = grpc_channel_create(t->target, creds, &ca_args);
    grpc_channel_credentials_release(creds);
    ev_async_init(&t->async, async_cb);
    t->async.data = t;
    ev_async_start(o->loop, &t->async);
    ev_unref(o->loop); /* the xDS client alone does not keep the loop running */
    if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
        pl_err_add(err, NULL, 0, 0, NULL, "xds: cannot start the xDS thread");
        ev_ref(o->loop);
        ev_async_stop(o->loop, &t->async);
        grpc_channel_destroy(t->channel);
        grpc_completion_queue_shutdown(t->cq);
        grpc_completion_queue_destroy(t->cq);
        grpc_shutdown();
        free(t->target);
        free(t);
        return NULL;
    }
    return t;
}

void pl_xds_transport_free(struct pl_xds_transport *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    if (t->call)
        grpc_call_cancel(t->call, NULL);
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    grpc_channel_destroy(t->channel);
    grpc_completion_queue_shutdown(t->cq);
    while (grpc_completion_queue_next(t->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(t->cq);
    ev_ref(t->o.loop);
    ev_async_stop(t->o.loop, &t->async);
    struct pl_xds_event *ev = t->ev_head;
    while (ev) {
        struct pl_xds_event *next = ev->next;
        event_free(ev);
        ev = next;
    }
    drop_queue_locked(t);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    grpc_shutdown();
    free(t->target);
    free(t);
}
