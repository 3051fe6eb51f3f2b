/* Private to the HTTP connection manager (conn_manager*.c). */
#ifndef PL_HTTP_CONN_MANAGER_INTERNAL_H
#define PL_HTTP_CONN_MANAGER_INTERNAL_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "filters/filter.h"
#include "http/access_log.h"
#include "http/codec.h"
#include "http/conn_manager.h"
#include "net/conn.h"
#include "net/filter.h"
#include "stats/stats.h"

enum hcm_codec_type {
    HCM_CODEC_AUTO = 0,
    HCM_CODEC_HTTP1 = 1,
    HCM_CODEC_HTTP2 = 2,
};

struct hcm_filter {
    const struct pl_http_filter_vtable *vt;
    void *cfg;
    char *name;
};

/* http.<stat_prefix>.* in Envoy's names. */
struct hcm_stats {
    struct pl_counter cx_total, cx_http1_total, cx_http2_total, cx_destroy, cx_protocol_error;
    struct pl_counter cx_drain_close, cx_idle_timeout, cx_rx_bytes_total, cx_tx_bytes_total;
    struct pl_counter cx_destroy_remote, cx_destroy_local;
    struct pl_gauge cx_active, cx_http1_active, cx_http2_active, rq_active;
    struct pl_counter rq_total, rq_http1_total, rq_http2_total, rq_xx[6], rq_completed;
    struct pl_counter rq_timeout, rq_idle_timeout, rq_too_large, rq_rx_reset, rq_tx_reset;
    struct pl_counter rq_ws_on_non_ws_route, rq_response_before_rq_complete;
    struct pl_histogram rq_time;
};

/* A compiled HttpConnectionManager (immutable, in the snapshot). */
struct hcm_config {
    int codec_type;
    char *stat_prefix;             /* "http.<stat_prefix>." */
    struct pl_route_table *routes; /* route_config (inline); NULL with rds */
    char *rds_name; /* rds.route_config_name: looked up per stream in the current snapshot */
    struct hcm_filter *filters;
    uint32_t n_filters;
    uint32_t max_request_headers_kb;
    uint32_t max_headers_count;
    uint64_t stream_idle_timeout_ms; /* 0: none */
    uint64_t request_timeout_ms;     /* 0: none */
    uint64_t drain_timeout_ms;
    uint64_t idle_timeout_ms; /* connection idle timeout (common_http_protocol_options) */
    bool use_remote_address;
    uint32_t xff_num_trusted_hops;
    bool generate_request_id;
    bool websocket; /* upgrade_configs: websocket enabled */
    char *server_name;
    uint32_t h2_max_concurrent_streams, h2_initial_stream_window_size;
    uint32_t h2_initial_connection_window_size;
    struct pl_access_logs *access_logs;
    struct hcm_stats st;
    bool prepared;
};

/* One direction's filter iteration state. */
struct hcm_iter {
    uint32_t stop_at;     /* the filter that stopped iteration */
    bool stopped;         /* waiting for continue */
    bool headers_pending; /* the head has not passed every filter yet */
    bool headers_end;     /* the head carried end_stream */
    bool data_stop;       /* the stop happened on data: buffered bytes resume after stop_at */
    struct pl_buf buf;    /* body bytes held while stopped */
    bool buf_end;         /* the held body ends the stream */
    struct pl_headers *trailers; /* trailers held while stopped */
    struct pl_http_head *head;   /* the head being iterated */
};

struct hcm_conn;

struct hcm_stream {
    struct pl_filter_stream fs; /* first: filters see this */
    struct hcm_conn *hc;
    struct hcm_stream *prev, *next; /* the connection's live streams */
    struct hcm_stream *next_dead;
    struct pl_codec_stream *cs;
    struct pl_arena arena;
    struct pl_stream_info info;
    void **states;
    struct hcm_iter dec, enc;
    ev_timer idle_timer, req_timer;
    struct pl_http_head *resp;
    size_t held_consumed; /* HTTP/2 request bytes not yet reported consumed (watermark) */
    uint32_t dec_above;   /* decoder_watermark(true) calls not yet undone */
    uint64_t idle_ms;     /* stream idle timeout in force (0: none) */
    double idle_last;     /* loop time of the last activity (the idle timer is lazy) */
    bool remote_complete, local_complete, response_started, finished, codec_gone;
    bool grpc, head_req, upgrade, h2_above;
    const struct pl_snapshot *pinned; /* RDS: the stream's snapshot when not the connection's */
    char request_id[40];
    struct sockaddr_storage client_addr; /* from x-forwarded-for, when used */
};

/* An IP address kept inline; other families (a pipe's path) are kept in a heap copy. */
union hcm_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* The HTTP/2 connection's own watchers. */
struct hcm_h2_watchers {
    ev_prepare flush_w;   /* output and finished streams, once per loop iteration */
    ev_timer drain_timer; /* drain_timeout after GOAWAY */
};

struct hcm_conn {
    struct pl_net_accepted acc; /* first: the worker's handle */
    const struct hcm_config *cfg;
    struct pl_conn *conn; /* NULL once closed */
    struct pl_codec *codec;
    struct ev_loop *loop;
    const struct sockaddr *peer, *local; /* &peer_in / &local_in, or a heap copy */
    union hcm_addr peer_in, local_in;
    socklen_t peer_len, local_len;
    bool tls, http2;
    char *sni;
    struct hcm_stream *streams;
    uint32_t n_streams;
    struct hcm_stream *dead; /* finished streams to free on the next loop turn */
    ev_timer defer;
    struct hcm_h2_watchers *h2w; /* HTTP/2 only (an HTTP/1.1 connection does not carry them) */
    uint32_t read_disabled;      /* HTTP/1: decoder watermark holds on reading */
    /* RDS: the snapshot seen current last (rt_seen, its generation rt_gen; compared, never
     * dereferenced unless it is current again), the route table it gave and the snapshot that
     * table lives in (rt_seen, or the connection's when rt_seen lacks the name) */
    const struct pl_snapshot *rt_seen;
    uint64_t rt_gen;
    const struct pl_snapshot *rt_snap;
    const struct pl_route_table *rt_table;
    uint64_t id;
    bool closing, torn_down, draining, above_high, refeed, remote_closed;
    bool in_flush; /* flush_w's callback is running */
};

/* conn_manager.c */
void hcm_conn_flush(struct hcm_conn *hc);
void hcm_conn_schedule(struct hcm_conn *hc);
extern const struct pl_codec_callbacks hcm_codec_callbacks;

/* conn_manager_h2.c: the downstream HTTP/2 codec (NULL when unavailable) and its state. */
struct pl_codec *hcm_h2_codec_new(struct hcm_conn *hc);
bool hcm_h2_done(const struct pl_codec *c);

/* conn_manager_stream.c */
void *hcm_stream_new(struct hcm_conn *hc, struct pl_codec_stream *cs);
int hcm_stream_on_head(struct hcm_stream *st, struct pl_http_head *h, bool end);
int hcm_stream_on_data(struct hcm_stream *st, struct pl_buf *d, bool end);
int hcm_stream_on_trailers(struct hcm_stream *st, struct pl_headers *t);
void hcm_stream_on_reset(struct hcm_stream *st, enum pl_reset_reason why);
/* Frees a finished stream (filters' on_destroy, arena). */
void hcm_stream_destroy(struct hcm_stream *st);
/* The downstream's write side went above / below its watermark for st. */
void hcm_stream_watermark(struct hcm_stream *st, bool above);
/* Returns the snapshot whose route table (*routes) a stream starting now uses: the HCM's inline
 * table with the connection's snapshot, or (RDS) the table named rds_name in cur, the snapshot
 * current now (NULL: none published), cached on hc per snapshot generation; the connection's
 * snapshot when cur lacks the name. Pinning the result is the caller's. */
const struct pl_snapshot *hcm_route_snapshot(struct hcm_conn *hc, const struct pl_snapshot *cur,
                                             const struct pl_route_table **routes);

/* conn_manager_util.c */
/* Writes the current HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT") into buf (>= 30 bytes). */
size_t hcm_date(char *buf);
/* Writes a random UUIDv4 (36 chars + NUL) from the thread's generator. */
void hcm_uuid4(char *out);
/* Maps an HTTP status to Envoy's gRPC status for local replies. */
int hcm_grpc_status(int http_status);
/* True for loopback and RFC 1918 / ULA peers (Envoy's internal addresses). */
bool hcm_addr_internal(const struct sockaddr *sa);
/* Writes the IP of sa (no port) into buf. */
void hcm_addr_ip(const struct sockaddr *sa, char *buf, size_t cap);
/* Copies the address skip entries left of the rightmost one of an x-forwarded-for list into
 * out; false when the list is shorter. */
bool hcm_xff_pick(const char *v, size_t len, uint32_t skip, char *out, size_t cap);
/* Parses an IPv4 or IPv6 literal into ss (port 0); false if it is not one. */
bool hcm_parse_ip(const char *s, struct sockaddr_storage *ss);

#endif
