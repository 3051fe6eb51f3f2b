/* Connections on a worker's libev loop: buffered, watermarked, half-closable byte streams over a
 * pluggable transport (raw TCP here; TLS in src/tls plugs in through pl_transport_vtable).
 *
 * Model (Envoy's Network::Connection, reduced):
 * - Bytes read from the socket land in c->in and are handed to cb->on_data; the owner consumes
 *   what it can (pl_buf_move / pl_buf_drain) and leaves the rest. The peer's FIN is reported as
 *   on_data(end_stream = true) once; the connection stays open for writing (half-close).
 * - pl_conn_write queues bytes on the output buffer, flushed with writev when the socket is
 *   writable. When the output buffer grows above the high watermark (the buffer limit,
 *   per_connection_buffer_limit_bytes, default 1 MiB) cb->on_high_watermark runs once; when it
 *   drains to the low watermark (half of it) cb->on_low_watermark runs once. An owner that
 *   proxies uses them to pl_conn_read_disable the other side (a counter, as Envoy's
 *   readDisable), which is how a slow reader stops a fast writer without unbounded buffering.
 * - Reading also pauses on its own while c->in holds a buffer limit's worth of unconsumed
 *   bytes; an owner that consumes c->in outside on_data calls pl_conn_read_resume.
 * - Close: pl_conn_close(c, PL_CONN_CLOSE_NOW) or PL_CONN_CLOSE_FLUSH (stop reading, write
 *   what is queued, then close). After the owner calls pl_conn_close no callback runs for c any
 *   more and the owner must not touch c again. A close the owner did not ask for (peer reset,
 *   error, connect failure or timeout, both directions finished) is reported once with
 *   cb->on_event(PL_CONN_EV_CLOSED / _CONNECT_FAILED / _CONNECT_TIMEOUT); c is freed when that
 *   callback returns (the owner must not call pl_conn_close for it).
 * - Everything runs on the thread that owns the loop. Freeing is deferred while a callback of c
 *   is on the stack, so an owner may close c (or another connection) from any callback.
 */
#ifndef PL_NET_CONN_H
#define PL_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <protobuf-c/protobuf-c.h>

#include "core/buf.h"
#include "core/err.h"
#include "stats/stats.h"

struct ev_loop;
struct pl_conn;
struct pl_compile_ctx;

#define PL_CONN_DEFAULT_BUFFER_LIMIT (1024 * 1024) /* Envoy's per_connection_buffer_limit_bytes */

/* ---- transports ---- */

/* Flags a transport sets in t->flags to ask for readiness its pending operation needs (TLS:
 * SSL_write returned WANT_READ, or SSL_read returned WANT_WRITE during a renegotiation). */
enum {
    PL_TRANSPORT_WRITE_NEEDS_READABLE = 1 << 0, /* retry write when the socket is readable */
    PL_TRANSPORT_READ_NEEDS_WRITABLE = 1 << 1,  /* retry read when the socket is writable */
};

/* Result of one transport read or write. */
struct pl_io_result {
    size_t bytes; /* plaintext bytes appended to in (read) or drained from out (write) */
    bool eof;     /* read: the peer finished sending (FIN, or TLS close_notify) */
    int err;      /* 0, or an errno value: the connection is broken and closes */
};

/* One connection's transport state; transports embed it first in their own struct. */
struct pl_transport {
    const struct pl_transport_vtable *vt;
    struct pl_conn *conn;
    int fd;
    unsigned flags; /* PL_TRANSPORT_* */
};

/* A transport socket (Envoy's TransportSocket): raw_buffer, tls. All calls on the worker thread.
 * read/write are called only when the socket may be ready; they must not block. */
struct pl_transport_vtable {
    const char *name; /* "envoy.transport_sockets.raw_buffer", "envoy.transport_sockets.tls" */
    const ProtobufCMessageDescriptor *config; /* typed_config type (NULL: takes no config) */
    /* Compiles a transport_socket config (main thread); *out lives in the snapshot, freed with
     * free_cfg. server: a listener's filter chain (true) or a cluster (false). */
    int (*compile)(const ProtobufCMessage *config, const struct pl_compile_ctx *cx, bool server,
                   void **out, struct pl_err *err);
    void (*free_cfg)(void *cfg);
    /* Creates the transport of connection c on fd (cfg: the compiled config or NULL); server is
     * true for accepted connections. Returns NULL on failure (the connection is closed). */
    struct pl_transport *(*create)(void *cfg, struct pl_conn *c, int fd, bool server);
    /* The TCP connection is up (accepted, or connect() completed): start a handshake if any.
     * The transport calls pl_conn_transport_ready(c) when application data may flow (raw: at
     * once; TLS: after the handshake). Returns 0 or an errno value (the connection closes). */
    int (*on_connected)(struct pl_transport *t);
    /* Moves at most max plaintext bytes from the socket into in. */
    void (*read)(struct pl_transport *t, struct pl_buf *in, size_t max, struct pl_io_result *r);
    /* Moves bytes from out to the socket (drains what was sent). Called with an empty out when
     * the transport asked for writability (handshake in progress). */
    void (*write)(struct pl_transport *t, struct pl_buf *out, struct pl_io_result *r);
    /* Ends our sending direction after out was flushed: shutdown(SHUT_WR) / close_notify. */
    void (*shutdown_write)(struct pl_transport *t);
    /* Frees the transport; the connection closes fd afterwards. */
    void (*destroy)(struct pl_transport *t);
    /* Optional: the negotiated application protocol (ALPN) or NULL. */
    const char *(*protocol)(const struct pl_transport *t);
    /* Optional: why the transport failed (for logs and access logs), or NULL. */
    const char *(*failure_reason)(const struct pl_transport *t);
};

/* The raw TCP transport (Envoy's raw_buffer). */
extern const struct pl_transport_vtable pl_transport_raw;

/* Registers a transport socket by name and config type (main thread, at start). PL_EEXIST if
 * taken. */
int pl_transport_register(const struct pl_transport_vtable *vt);
/* Returns the transport whose config type is the Any type URL's message, or NULL. */
const struct pl_transport_vtable *pl_transport_by_type_url(const char *type_url);

/* For transports: application data may flow now (handshake done). Reports PL_CONN_EV_CONNECTED
 * to the owner, then flushes queued output. */
void pl_conn_transport_ready(struct pl_conn *c);
/* For transports: there are decrypted bytes buffered inside the transport although the socket
 * may not become readable again; the connection reads again on the next loop iteration. */
void pl_conn_transport_readable(struct pl_conn *c);
/* For transports: the watcher must re-evaluate t->flags (after the transport changed them
 * outside a read or write call). */
void pl_conn_transport_update(struct pl_conn *c);

/* ---- connections ---- */

enum pl_conn_event {
    PL_CONN_EV_CONNECTED,       /* transport ready (outbound: connected and handshaken) */
    PL_CONN_EV_CLOSED,          /* closed by the peer or an error: c is freed afterwards */
    PL_CONN_EV_CONNECT_FAILED,  /* outbound connect failed (c->err_text says why): freed after */
    PL_CONN_EV_CONNECT_TIMEOUT, /* outbound connect timed out: freed after */
    PL_CONN_EV_IDLE_TIMEOUT,    /* no bytes moved for the idle timeout; the owner decides */
};

/* Owner callbacks; any may be NULL. arg is the owner's pointer from pl_conn_opts. */
struct pl_conn_callbacks {
    /* Bytes arrived in in (== &c->in); end_stream: the peer finished sending (once). */
    void (*on_data)(struct pl_conn *c, struct pl_buf *in, bool end_stream, void *arg);
    void (*on_event)(struct pl_conn *c, enum pl_conn_event ev, void *arg);
    /* The output buffer went above the high watermark: stop producing for c. */
    void (*on_high_watermark)(struct pl_conn *c, void *arg);
    /* The output buffer drained to the low watermark: produce again. */
    void (*on_low_watermark)(struct pl_conn *c, void *arg);
};

struct pl_conn_opts {
    const struct pl_conn_callbacks *cb;
    void *arg;
    const struct pl_transport_vtable *transport; /* NULL: raw TCP */
    void *transport_cfg;                         /* the transport's compiled config */
    uint32_t buffer_limit; /* high watermark for in and out; 0: PL_CONN_DEFAULT_BUFFER_LIMIT */
};

enum pl_conn_state {
    PL_CONN_CONNECTING, /* outbound, TCP connect in progress */
    PL_CONN_HANDSHAKE,  /* TCP up, transport not ready yet */
    PL_CONN_OPEN,
    PL_CONN_CLOSING, /* closing after flush */
    PL_CONN_CLOSED,  /* freed as soon as no callback of it is on the stack */
};

/* Closes at once, or after what is queued was written. */
enum pl_conn_close_type {
    PL_CONN_CLOSE_NOW,
    PL_CONN_CLOSE_FLUSH,
};

/* The connection. Fields are read-only for owners except where noted. */
struct pl_conn {
    struct ev_loop *loop;
    int fd;
    enum pl_conn_state state;
    struct pl_transport *transport;
    struct pl_buf in;  /* received, not yet consumed: the owner drains it */
    struct pl_buf out; /* queued for writing: append only through pl_conn_write* */
    const struct pl_conn_callbacks *cb;
    void *arg; /* the owner's; may be changed by the owner */
    uint32_t buffer_limit;
    uint32_t read_disable;              /* pl_conn_read_disable counter */
    bool read_eof;                      /* the peer's FIN was seen */
    bool write_end;                     /* shutdown of our side requested (after flush) */
    bool write_shut;                    /* our side was shut down */
    bool above_high;                    /* output buffer is above the high watermark */
    bool server;                        /* accepted (true) or outbound */
    uint64_t bytes_read, bytes_written; /* plaintext totals */
    char err_text[96];                  /* why it failed (strerror text), when it did */
    struct pl_conn_private *priv;       /* watchers and timers (conn.c) */
};

/* Takes over an accepted socket fd (non-blocking) and starts reading; the transport's
 * handshake starts at once. Returns the connection (owned until closed) or NULL if the
 * transport could not be created (fd is closed then). */
struct pl_conn *pl_conn_accept(struct ev_loop *loop, int fd, const struct pl_conn_opts *o);
/* Starts a non-blocking outbound connection to addr with TCP_NODELAY. timeout_s > 0 arms a
 * connect timeout. Outcome arrives as on_event: CONNECTED, CONNECT_FAILED or CONNECT_TIMEOUT
 * (never from inside this call). Writes may be queued before it connects. Returns 0 and *out,
 * or PL_EIO with details in err (socket() failed: no callback will run). */
int pl_conn_connect(struct ev_loop *loop, const struct sockaddr *addr, socklen_t addrlen,
                    double timeout_s, const struct pl_conn_opts *o, struct pl_conn **out,
                    struct pl_err *err);
/* Queues len bytes (copied) for writing; end_stream: shut our side down after them. */
void pl_conn_write_copy(struct pl_conn *c, const void *data, size_t len, bool end_stream);
/* Moves len bytes (at most src->len) from src to the output queue (whole slices relinked). */
void pl_conn_write(struct pl_conn *c, struct pl_buf *src, size_t len, bool end_stream);
/* disable: one more reason to stop reading; !disable: one less (reading resumes at zero). */
void pl_conn_read_disable(struct pl_conn *c, bool disable);
/* Returns true while reading is disabled by the owner. */
bool pl_conn_read_disabled(const struct pl_conn *c);
/* Tells c that the owner consumed c->in outside on_data: reading resumes if it had paused
 * because in was full. */
void pl_conn_read_resume(struct pl_conn *c);
/* Closes c (see the header comment); no callback runs for c afterwards. */
void pl_conn_close(struct pl_conn *c, enum pl_conn_close_type how);
/* Arms (seconds > 0) or disarms (0) the idle timer: PL_CONN_EV_IDLE_TIMEOUT fires when no byte
 * was read or written for that long; it re-arms itself unless the owner closes. */
void pl_conn_set_idle_timeout(struct pl_conn *c, double seconds);
/* Adds every byte read (rx) and written (tx) to these counters too (NULL: none). */
void pl_conn_count_bytes(struct pl_conn *c, const struct pl_counter *rx,
                         const struct pl_counter *tx);
/* Closes every connection of the calling thread that its owner gave up with
 * PL_CONN_CLOSE_FLUSH and that is still finishing (a worker that stops calls it). */
void pl_conn_reap_orphans(void);
/* Batched socket reads and writes through io_uring (conn.c): on (the default) or off, for
 * threads that have not done I/O yet; call before workers start. */
void pl_conn_set_io_uring(bool on);
/* True once this thread writes through io_uring. */
bool pl_conn_io_uring_active(void);
/* Releases this thread's io_uring (a worker thread calls it before it exits). */
void pl_conn_thread_exit(void);
/* Returns the number of connections open on the calling thread (tests, leak checks). */
size_t pl_conn_live(void);

#endif
