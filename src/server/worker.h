/* Worker threads as the data plane sees them: accepted connections, their handlers, counters.
 *
 * Each worker runs its own libev loop and its own SO_REUSEPORT socket per listener. A connection
 * lives and dies on the worker that accepted it. What happens to an accepted connection is up to
 * the handler chosen for its listener: a const vtable registered by the Envoy name of the
 * listener's terminal network filter (envoy.filters.network.http_connection_manager,
 * envoy.filters.network.tcp_proxy, ...). Listeners with no registered handler get the built-in
 * "pillion.close" handler, which accepts and closes.
 */
#ifndef PL_SERVER_WORKER_H
#define PL_SERVER_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/snapshot.h"

struct ev_loop;
struct pl_worker;          /* one worker thread */
struct pl_worker_listener; /* one listener as one worker sees it */
struct pl_conn_handler_vtable;

/* The worker's bookkeeping for an open connection; handlers embed it in their connection. */
struct pl_worker_conn {
    struct pl_worker_conn *prev, *next;
    struct pl_worker_listener *listener;
    const struct pl_conn_handler_vtable *handler;
};

/* What to do with connections accepted on a listener; all callbacks run on the worker thread. */
struct pl_conn_handler_vtable {
    const char *name; /* Envoy network filter name that selects this handler */
    /* Takes ownership of fd (non-blocking, close-on-exec). A connection that stays open must be
     * registered with pl_worker_conn_add. Returns 0, or a negative PL_E* code and the worker
     * closes fd. */
    int (*on_accept)(struct pl_worker *w, struct pl_worker_listener *l, int fd,
                     const struct sockaddr *peer, socklen_t peerlen);
    /* Asks a connection to finish what is in flight and close (listener removed or server
     * draining); NULL means the connection is left alone until close_conn. */
    void (*drain_conn)(struct pl_worker_conn *c);
    /* Closes a connection now: must call pl_worker_conn_remove and release it. Required. */
    void (*close_conn)(struct pl_worker_conn *c);
};

/* Counters of one listener (on one worker, or summed over workers). */
struct pl_listener_stats {
    uint64_t downstream_cx_total;
    uint64_t downstream_cx_active;
};

/* Registers a handler by vt->name (main thread, before workers accept). PL_EEXIST if taken. */
int pl_conn_handler_register(const struct pl_conn_handler_vtable *vt);
/* Removes every registered handler (tests). */
void pl_conn_handler_clear(void);
/* Returns the handler registered under name, or NULL. */
const struct pl_conn_handler_vtable *pl_conn_handler_find(const char *name);
/* Returns the handler for a listener: its terminal network filter's, else the built-in close. */
const struct pl_conn_handler_vtable *pl_conn_handler_for_listener(const struct pl_listener_cfg *l);
/* The built-in handler that accepts and closes (logged at debug). */
extern const struct pl_conn_handler_vtable pl_conn_handler_close;

/* Registers an accepted connection with its worker (counted active until removed). */
void pl_worker_conn_add(struct pl_worker *w, struct pl_worker_listener *l, struct pl_worker_conn *c,
                        const struct pl_conn_handler_vtable *handler);
/* Unregisters a connection that is closing (its handler frees it afterwards). */
void pl_worker_conn_remove(struct pl_worker_conn *c);

/* Returns the worker's id (0..concurrency-1): the index for pins and per-worker state. */
unsigned pl_worker_id(const struct pl_worker *w);
/* Returns the worker's libev loop (handlers add their watchers to it). */
struct ev_loop *pl_worker_loop(struct pl_worker *w);
/* Returns the number of connections the worker has open (worker thread only). */
size_t pl_worker_conn_count(const struct pl_worker *w);
/* Returns the generation of the newest snapshot the worker has seen. */
uint64_t pl_worker_generation(const struct pl_worker *w);
/* Returns the worker that owns a listener entry. */
struct pl_worker *pl_worker_listener_worker(struct pl_worker_listener *l);
/* Returns the listener's name (valid while the listener entry lives). */
const char *pl_worker_listener_name(const struct pl_worker_listener *l);
/* Returns the listener's configuration hash (to find its compiled config in a snapshot). */
uint64_t pl_worker_listener_hash(const struct pl_worker_listener *l);
/* Counts a connection no filter chain matched (listener.<addr>.no_filter_chain_match). */
void pl_worker_listener_no_filter_chain_match(struct pl_worker_listener *l);
/* Returns the listener's counters on this worker. */
void pl_worker_listener_stats(const struct pl_worker_listener *l, struct pl_listener_stats *out);

#endif
