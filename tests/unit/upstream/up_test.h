/* Shared setup for the upstream tests: a main loop with RCU publishing, a stats store, the
 * cluster manager, and snapshots compiled from bootstrap YAML. */
#ifndef PL_TEST_UP_TEST_H
#define PL_TEST_UP_TEST_H

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/bootstrap.h"
#include "config/publish.h"
#include "stats/stats.h"
#include "upstream/upstream.h"
#include "upstream/upstream_internal.h"

static struct ev_loop *t_loop;
static struct pl_stats *t_stats;

static inline void up_setup_servers(const char *dns_servers)
{
    t_loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_eq(pl_publish_init(t_loop, 1), 0);
    t_stats = pl_stats_new();
    struct pl_err err = PL_ERR_INIT;
    struct pl_upstream_opts o = {
        .loop = t_loop, .stats = t_stats, .dns_servers = dns_servers, .seed = 42};
    int rc = pl_upstream_init(&o, &err);
    if (rc)
        pl_err_print(&err, stderr);
    cr_assert_eq(rc, 0);
    pl_err_free(&err);
}

static inline void up_setup(void)
{
    up_setup_servers(NULL);
}

static inline void up_teardown(void)
{
    pl_upstream_worker_free();
    pl_upstream_shutdown();
    pl_publish_shutdown();
    pl_stats_free(t_stats);
    ev_loop_destroy(t_loop);
}

/* Loads and compiles YAML; returns NULL (and prints) when loading fails and may_fail is set. */
static inline struct pl_snapshot *yaml_snap2(const char *yaml, bool may_fail, char **errs)
{
    struct pl_bootstrap_opts o = {.config_yaml = yaml};
    pl_bootstrap_t *b = NULL;
    struct pl_err err = PL_ERR_INIT;
    int rc = pl_bootstrap_load(&o, &b, &err);
    if (rc && errs)
        *errs = pl_err_join(&err);
    if (rc && !may_fail)
        pl_err_print(&err, stderr);
    pl_err_free(&err);
    if (rc) {
        cr_assert(may_fail, "bootstrap did not load");
        return NULL;
    }
    struct pl_snapshot *s = NULL;
    rc = pl_bootstrap_compile(b, &s, &err);
    if (rc)
        pl_err_print(&err, stderr);
    cr_assert_eq(rc, 0);
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(&b->base, NULL);
    return s;
}

/* Compiles and prepares a snapshot. */
static inline struct pl_snapshot *yaml_snap(const char *yaml)
{
    struct pl_snapshot *s = yaml_snap2(yaml, false, NULL);
    struct pl_err err = PL_ERR_INIT;
    cr_assert_eq(pl_upstream_prepare(s, &err), 0);
    pl_err_free(&err);
    return s;
}

#endif
