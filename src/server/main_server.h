/* The serving process: bootstrap -> snapshot -> server and admin endpoints, until it stops. */
#ifndef PL_SERVER_MAIN_SERVER_H
#define PL_SERVER_MAIN_SERVER_H

#include <stdbool.h>

#include "config/bootstrap.h"
#include "core/err.h"

/* What the command line decided (Envoy's flags). */
struct pl_main_opts {
    struct pl_bootstrap_opts boot;
    int concurrency;
    int drain_time_s;
    int base_id;
    const char *admin_address_path; /* written with "host:port" once admin listens */
    bool init_only;                 /* set everything up, then exit 0 */
};

/* Serves a loaded bootstrap (taken over) until a signal or /quitquitquit; returns the exit code.
 * Startup failures (a listener that cannot bind, ...) are added to err and give 1. */
int pl_main_server_run(const struct pl_main_opts *o, pl_bootstrap_t *boot, struct pl_err *err);

#endif
