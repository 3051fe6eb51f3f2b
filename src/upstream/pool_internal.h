/* Private to the pool files (pool.c: HTTP/1.1 and common parts; pool_h2.c: HTTP/2). */
#ifndef PL_UPSTREAM_POOL_INTERNAL_H
#define PL_UPSTREAM_POOL_INTERNAL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/codec.h"
#include "net/conn.h"
#include "upstream/pool.h"

enum pool_conn_state {
    PC_CONNECTING,
    PC_READY,
    PC_CLOSED,
};

struct pool_conn {
    struct pool_conn *prev, *next; /* in the pool's list */
    struct pl_pool *pool;
    struct pl_host_rt *host; /* referenced while the connection lives */
    struct pl_conn *conn;    /* NULL once closed */
    struct pl_codec *codec;
    struct pl_codec *dying_codec;
    enum pool_conn_state state;
    struct pl_pool_stream *streams; /* bound streams */
    uint32_t n_streams;
    struct sockaddr_storage local;
    socklen_t local_len;
    const char *reset_reason; /* why streams of a closing connection are reset */
    int depth;                /* our frames on the stack: free when it is back to 0 */
    ev_prepare flush_w;       /* HTTP/2: output written once per loop iteration */
    /* HTTP/1: the finished stream whose codec stream goes at its release (so an idle
     * connection holds no stream memory) */
    struct pl_pool_stream *done;
    bool closed, freed, goaway, above_high;
};

struct pl_pool_stream {
    struct pl_pool *pool;
    struct pool_conn *pc; /* bound connection, or NULL */
    struct pl_codec_stream *cs;
    const struct pl_pool_callbacks *cb;
    void *user;
    struct pl_pool_stream *prev, *next;   /* pending queue */
    struct pl_pool_stream *cprev, *cnext; /* the connection's streams */
    uint32_t read_disabled;
    size_t held; /* HTTP/2: response bytes not yet reported consumed while reading is disabled */
    struct pool_conn *done_pc;       /* HTTP/1: pc->done is this stream */
    struct pl_codec_stream *done_cs; /* its codec stream, freed at the release */
    bool pending, tx_end, rx_end, reset, released, failed;
};

struct pl_pool {
    struct ev_loop *loop;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char addr_str[64];
    struct pl_pool_opts o;
    struct pl_cluster_stats st;
    bool has_stats;
    struct pl_host_rt *host;                     /* NULL once released (or for pl_pool_new pools) */
    const struct pl_transport_vtable *transport; /* NULL: raw TCP */
    void *transport_cfg;
    struct pool_conn *conns;
    size_t n_conns, n_connecting;
    struct pl_pool_stream *pend_head, *pend_tail;
    size_t n_pending;
    ev_timer defer;
    int depth;
    size_t n_streams; /* pool streams not yet released by their users (they point here) */
    bool released, freed, in_process, connect_error;
};

/* Closes a connection (flush: write what is queued first); its streams are reset. */
void pool_conn_close(struct pool_conn *pc, bool flush);
/* Writes the codec's output to the connection now. */
void pool_conn_flush_now(struct pool_conn *pc);
/* Schedules deferred work (failing requests, binding pending ones) on the next loop turn. */
void pool_schedule(struct pl_pool *p);

/* HTTP/2 parts (pool_h2.c). */
struct pl_codec *pool_h2_codec_new(struct pool_conn *pc, const struct pl_codec_callbacks *cb);
/* How many more streams pc takes now. */
uint32_t pool_h2_capacity(struct pool_conn *pc);
/* How many streams a connection being made is expected to take. */
size_t pool_h2_connecting_capacity(const struct pl_pool *p);
/* After events on an HTTP/2 connection: bind waiting requests, close it when done. */
void pool_h2_settle(struct pool_conn *pc);
/* Prepares pc's flush watcher (every connection, before its first flush). */
void pool_h2_flush_init(struct pool_conn *pc);
/* HTTP/2: leaves pc's output for the end of the loop iteration (one write for every frame made
 * in it); false when it must be written now. */
bool pool_h2_flush_later(struct pool_conn *pc);

/* Returns the upstream transport (TLS) of a cluster and its compiled config, or NULL (raw). */
const struct pl_transport_vtable *pool_cluster_transport(const struct pl_cluster_cfg *cfg,
                                                         void **transport_cfg);

#endif
