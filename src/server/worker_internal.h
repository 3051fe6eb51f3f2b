/* Between server.c (main thread) and worker.c: shared listeners and the worker command queue. */
#ifndef PL_SERVER_WORKER_INTERNAL_H
#define PL_SERVER_WORKER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "server/worker.h"
#include "stats/stats.h"

/* A listener's stats handles (Envoy's listener.<address>. tree). Workers write them through their
 * own stats shard, so an update touches only worker-owned memory. */
struct pl_srv_lstats {
    struct pl_counter cx_total;
    struct pl_gauge cx_active;
    struct pl_counter no_filter_chain_match; /* [0] only: Envoy keeps it per listener */
};

/* A listener as the main thread owns it. Workers read the constant fields and their stats slot;
 * each worker holds a reference until it has closed its socket and its connections. */
struct pl_srv_listener {
    struct pl_srv_listener *next; /* main: active list, then the released-pending list */
    char *name;
    uint64_t hash;
    const struct pl_conn_handler_vtable *handler;
    struct sockaddr_storage addr; /* as bound */
    socklen_t addrlen;
    char addr_str[128];
    int *fds;                 /* one per worker, owned by that worker once handed over */
    _Atomic unsigned refs;    /* workers that still hold it */
    struct pl_srv_lstats *st; /* [0]: the listener; [1 + w]: worker w (worker_<w>.) */
};

/* What the main thread tells a worker. */
enum pl_worker_cmd_kind {
    PL_WCMD_ADD,         /* start accepting on l->fds[id] */
    PL_WCMD_REMOVE,      /* close the socket, drain l's connections, then release l */
    PL_WCMD_STOP_ACCEPT, /* close every listening socket (connections stay) */
    PL_WCMD_DRAIN,       /* stop accepting and ask every connection to finish */
    PL_WCMD_SNAPSHOT,    /* a new snapshot was published */
    PL_WCMD_STOP,        /* close everything and leave the loop */
};

/* What workers need from the main side. */
struct pl_worker_env {
    struct ev_loop *main_loop;
    void *main_wake; /* ev_async on main_loop: poked when a listener's last reference goes */
    double drain_time_s;
    struct pl_stats *stats;
};

/* Creates worker id (not started). */
struct pl_worker *pl_worker_new(unsigned id, const struct pl_worker_env *env);
/* Starts the worker's thread with every signal blocked. */
int pl_worker_start(struct pl_worker *w, struct pl_err *err);
/* Queues a command and wakes the worker (any thread; l may be NULL). */
void pl_worker_send(struct pl_worker *w, enum pl_worker_cmd_kind kind, struct pl_srv_listener *l);
/* Sends STOP and joins the thread (no-op if not started). */
void pl_worker_stop(struct pl_worker *w);
/* Frees a stopped worker (closes fds of commands it never processed). */
void pl_worker_free(struct pl_worker *w);
/* Drops one worker reference on l; wakes main when it was the last. */
void pl_srv_listener_unref(struct pl_srv_listener *l, const struct pl_worker_env *env);

#endif
