/* The server: main libev loop, worker threads, listeners, signals and drain (DESIGN.md §2).
 *
 * Main thread only. pl_server_new starts the workers; pl_server_apply publishes a snapshot and
 * brings the workers' listeners in line with it; pl_server_run runs the main loop until the
 * server quits and returns the exit code. Listener sockets are opened by the main thread inside
 * pl_server_apply (one SO_REUSEPORT socket per worker; with port 0 the first socket picks the
 * port and the others bind it), so a bind failure fails the apply with a clear error and the
 * snapshot is not published; the sockets are then handed to the workers.
 *
 * Signals (default loop only): SIGTERM drains (stop accepting, let connections finish for up to
 * drain_time_s, exit 0); SIGINT exits fast (close listeners and connections, exit 0); SIGHUP is
 * logged and ignored. SIGPIPE is ignored process-wide.
 */
#ifndef PL_SERVER_SERVER_H
#define PL_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/snapshot.h"
#include "core/err.h"
#include "server/worker.h"

struct ev_loop;
struct pl_server;

struct pl_stats;

struct pl_server_opts {
    unsigned concurrency;   /* worker threads; 0 means 1 */
    double drain_time_s;    /* how long a drain lets connections finish (Envoy's --drain-time-s) */
    bool no_signals;        /* do not install SIGTERM/SIGINT/SIGHUP watchers (tests, embedding) */
    struct ev_loop *loop;   /* main loop; NULL means ev_default_loop(0) */
    struct pl_stats *stats; /* where listener stats go; NULL: the server keeps its own store */
};

/* One active listener as the main thread knows it (for the admin /listeners). */
struct pl_server_listener_info {
    const char *name; /* valid until the next pl_server_apply */
    const char *handler;
    struct sockaddr_storage addr; /* as bound: port 0 replaced by the port the kernel chose */
    socklen_t addrlen;
    char addr_str[128];
};

/* Creates the server, its main-loop watchers and its worker threads (idle, no listeners yet);
 * sets up RCU publishing. Returns NULL and fills err on failure. Free with pl_server_free. */
struct pl_server *pl_server_new(const struct pl_server_opts *opts, struct pl_err *err);
/* Opens the new listeners of s, publishes s and hands listener changes to the workers. On
 * success s belongs to the server; on failure (PL_EIO: "listener 'x': cannot bind ...") nothing
 * changed and s is still the caller's. */
int pl_server_apply(struct pl_server *srv, struct pl_snapshot *s, struct pl_err *err);
/* Runs the main loop until the server quits; stops the workers; returns the exit code (0). */
int pl_server_run(struct pl_server *srv);
/* Stops accepting on every listener but keeps running (admin /drain_listeners). */
void pl_server_drain_listeners(struct pl_server *srv);
/* What SIGTERM does: stop accepting, drain connections for up to drain_time_s, then quit. */
void pl_server_drain_and_quit(struct pl_server *srv);
/* What SIGINT and admin /quitquitquit do: close listeners and connections now and quit. */
void pl_server_quit(struct pl_server *srv);
/* Stops the workers if still running and frees everything, published snapshots included. */
void pl_server_free(struct pl_server *srv);

/* Returns the main loop (the admin server and xDS client attach their watchers to it). */
struct ev_loop *pl_server_loop(struct pl_server *srv);
/* Returns the number of worker threads. */
unsigned pl_server_concurrency(const struct pl_server *srv);
/* Returns the worker with index i (0..concurrency-1). */
struct pl_worker *pl_server_worker(struct pl_server *srv, unsigned i);
/* Fills up to cap entries about the active listeners; returns how many there are. */
size_t pl_server_listeners(const struct pl_server *srv, struct pl_server_listener_info *out,
                           size_t cap);
/* Sums a listener's counters over the workers (worker < 0) or reads one worker's; PL_ENOENT if
 * no active listener has that name. */
int pl_server_listener_stats(const struct pl_server *srv, const char *name, int worker,
                             struct pl_listener_stats *out);
/* Returns the number of connections open on all workers (approximate while they run). */
uint64_t pl_server_active_connections(const struct pl_server *srv);

#endif
