#include "server/main_server.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "admin/admin.h"
#include "config/address.h"
#include "config/dump.h"
#include "config/pbjson.h"
#include "config/publish.h"
#include "core/log.h"
#include "server/server.h"
#include "stats/stats.h"
#include "upstream/upstream.h"
#include "xds/xds.h"

#define PL_VERSION "0.1.0"

struct main_ctx {
    const struct pl_main_opts *o;
    struct pl_server *srv;
    struct pl_admin *admin;
    struct pl_stats *stats;
    struct pl_xds *xds; /* NULL without dynamic_resources */
    struct timespec started;
};

static const char *server_state(struct main_ctx *m)
{
    if (pl_admin_health_failed(m->admin))
        return "DRAINING";
    return pl_xds_init_state(m->xds); /* LIVE once the initial xDS configuration is in */
}

static void h_ready(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)req;
    const char *state = server_state(ctx);
    pl_admin_resp_status(r, strcmp(state, "LIVE") ? 503 : 200);
    pl_admin_resp_printf(r, "%s\n", state);
}

/* Appends s as a JSON string literal. */
static void json_str(struct pl_admin_response *r, const char *s)
{
    pl_admin_resp_append(r, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            pl_admin_resp_printf(r, "\\%c", c);
        else if (c < 0x20)
            pl_admin_resp_printf(r, "\\u%04x", c);
        else
            pl_admin_resp_append(r, s, 1);
    }
    pl_admin_resp_append(r, "\"", 1);
}

static void h_server_info(const struct pl_admin_request *req, struct pl_admin_response *r,
                          void *ctx)
{
    (void)req;
    struct main_ctx *m = ctx;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long up = (long)(now.tv_sec - m->started.tv_sec);
    const struct pl_snapshot *s = pl_snapshot_current();
    const Envoy__Config__Bootstrap__V3__Bootstrap *b =
        s ? (const Envoy__Config__Bootstrap__V3__Bootstrap *)s->bootstrap : NULL;
    pl_admin_resp_content_type(r, "application/json");
    pl_admin_resp_printf(r, "{\n \"version\": \"pillion/%s\",\n \"state\": \"%s\",\n", PL_VERSION,
                         server_state(m));
    pl_admin_resp_printf(r, " \"hot_restart_version\": \"disabled\",\n");
    pl_admin_resp_printf(r,
                         " \"command_line_options\": {\n  \"base_id\": \"%d\",\n"
                         "  \"concurrency\": %d,\n  \"config_path\": ",
                         m->o->base_id, m->o->concurrency);
    json_str(r, m->o->boot.config_path ? m->o->boot.config_path : "");
    pl_admin_resp_printf(r, ",\n  \"config_yaml\": ");
    json_str(r, m->o->boot.config_yaml ? m->o->boot.config_yaml : "");
    pl_admin_resp_printf(r,
                         ",\n  \"log_level\": \"%s\",\n  \"drain_time\": \"%ds\",\n"
                         "  \"mode\": \"%s\"\n },\n",
                         pl_log_level_name(pl_log_level_now), m->o->drain_time_s,
                         m->o->init_only ? "InitOnly" : "Serve");
    pl_admin_resp_printf(r,
                         " \"uptime_current_epoch\": \"%lds\",\n"
                         " \"uptime_all_epochs\": \"%lds\",\n \"node\": ",
                         up, up);
    if (b && b->node) {
        char *node = pl_pbjson_print(&b->node->base, PL_PBJSON_PROTO_NAMES);
        pl_admin_resp_append(r, node, strlen(node));
        free(node);
    } else {
        pl_admin_resp_append(r, "{}", 2);
    }
    if (m->xds) { /* the ADS connection: target, connected, per-type versions and NACKs */
        char *x = pl_xds_status_json(m->xds);
        pl_admin_resp_printf(r, ",\n \"xds\": %s", x);
        free(x);
    }
    pl_admin_resp_append(r, "\n}\n", 3);
}

static void h_config_dump(const struct pl_admin_request *req, struct pl_admin_response *r,
                          void *ctx)
{
    struct main_ctx *m = ctx;
    const struct pl_snapshot *s = pl_snapshot_current();
    struct pl_dump_failure *f = NULL;
    size_t nf = m->xds ? pl_xds_failures(m->xds, &f) : 0;
    char *json = pl_config_dump_json(s, pl_admin_param(req, "resource"), f, nf);
    free(f);
    pl_admin_resp_content_type(r, "application/json");
    pl_admin_resp_append(r, json, strlen(json));
    pl_admin_resp_append(r, "\n", 1);
    free(json);
}

/* Splits "127.0.0.1:80" / "[::1]:80" into host and port for JSON output. */
static void addr_json(struct pl_admin_response *r, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || addr[0] == '/' || addr[0] == '@') {
        pl_admin_resp_printf(r, "{\"pipe\": {\"path\": ");
        json_str(r, addr);
        pl_admin_resp_printf(r, "}}");
        return;
    }
    const char *h = addr, *e = colon;
    if (*h == '[') {
        h++;
        e--;
    }
    pl_admin_resp_printf(r, "{\"socket_address\": {\"address\": \"%.*s\", \"port_value\": %s}}",
                         (int)(e - h), h, colon + 1);
}

static void h_listeners(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    struct main_ctx *m = ctx;
    struct pl_server_listener_info info[256];
    size_t n = pl_server_listeners(m->srv, info, 256);
    if (n > 256)
        n = 256;
    const char *fmt = pl_admin_param(req, "format");
    if (fmt && !strcmp(fmt, "json")) {
        pl_admin_resp_content_type(r, "application/json");
        pl_admin_resp_printf(r, "{\"listener_statuses\": [");
        for (size_t i = 0; i < n; i++) {
            pl_admin_resp_printf(r, "%s{\"name\": ", i ? ", " : "");
            json_str(r, info[i].name);
            pl_admin_resp_printf(r, ", \"local_address\": ");
            addr_json(r, info[i].addr_str);
            pl_admin_resp_printf(r, "}");
        }
        pl_admin_resp_printf(r, "]}\n");
        return;
    }
    for (size_t i = 0; i < n; i++)
        pl_admin_resp_printf(r, "%s::%s\n", info[i].name, info[i].addr_str);
}

static void h_clusters(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)ctx;
    const struct pl_snapshot *s = pl_snapshot_current();
    const char *fmt = pl_admin_param(req, "format");
    bool json = fmt && !strcmp(fmt, "json");
    if (json) {
        pl_admin_resp_content_type(r, "application/json");
        pl_admin_resp_printf(r, "{\"cluster_statuses\": [");
    }
    for (size_t i = 0; s && i < s->n_clusters; i++) {
        const struct pl_cluster_cfg *c = s->clusters[i];
        if (json) {
            pl_admin_resp_printf(r, "%s{\"name\": ", i ? ", " : "");
            json_str(r, c->name);
            pl_admin_resp_printf(r, ", \"added_via_api\": %s, \"host_statuses\": [",
                                 c->dynamic ? "true" : "false");
        } else {
            pl_admin_resp_printf(r, "%s::observability_name::%s\n", c->name, c->name);
            pl_admin_resp_printf(r, "%s::added_via_api::%s\n", c->name,
                                 c->dynamic ? "true" : "false");
        }
        /* the resolved host set (DNS clusters), not the configured endpoints */
        size_t n = pl_upstream_main_hosts(c->name, NULL, 0);
        struct pl_upstream_host_info *hosts = pl_calloc(n + 1, sizeof(*hosts));
        n = pl_upstream_main_hosts(c->name, hosts, n);
        for (size_t j = 0; j < n; j++) {
            const struct pl_upstream_host_info *e = &hosts[j];
            const char *health = e->healthy ? "HEALTHY" : "UNHEALTHY";
            if (json) {
                pl_admin_resp_printf(r, "%s{\"address\": ", j ? ", " : "");
                addr_json(r, e->addr_str);
                pl_admin_resp_printf(r,
                                     ", \"health_status\": {\"eds_health_status\": "
                                     "\"%s\"}, \"weight\": %u}",
                                     health, e->weight);
            } else {
                pl_admin_resp_printf(r, "%s::%s::weight::%u\n", c->name, e->addr_str, e->weight);
                pl_admin_resp_printf(r, "%s::%s::health_flags::%s\n", c->name, e->addr_str,
                                     e->healthy ? "healthy" : "/failed_eds_health");
            }
        }
        free(hosts);
        if (json)
            pl_admin_resp_printf(r, "]}");
    }
    if (json)
        pl_admin_resp_printf(r, "]}\n");
}

static void do_drain(void *ctx)
{
    pl_server_drain_listeners(ctx);
}

static void h_drain_listeners(const struct pl_admin_request *req, struct pl_admin_response *r,
                              void *ctx)
{
    (void)req;
    struct main_ctx *m = ctx;
    pl_admin_resp_printf(r, "OK\n");
    pl_admin_resp_on_sent(r, do_drain, m->srv);
}

static void do_quit(void *ctx)
{
    pl_server_quit(ctx);
}

static void h_quit(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)req;
    struct main_ctx *m = ctx;
    pl_admin_resp_printf(r, "OK\n");
    pl_admin_resp_on_sent(r, do_quit, m->srv);
}

/* Starts the admin server on the bootstrap's admin.address, if it has one. */
static int start_admin(struct main_ctx *m, const pl_bootstrap_t *b, struct pl_err *err)
{
    if (!b->admin || !b->admin->address) {
        pl_log_info("main", "no admin address: admin endpoints disabled");
        return 0;
    }
    struct pl_admin_config cfg = {0};
    const Envoy__Config__Core__V3__Address *a = b->admin->address;
    if (a->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_PIPE) {
        cfg.unix_path = a->pipe->path;
    } else {
        cfg.address = a->socket_address->address;
        cfg.port = (uint16_t)a->socket_address->port_value;
    }
    int rc = pl_admin_new(pl_server_loop(m->srv), &cfg, m->stats, err, &m->admin);
    if (rc < 0)
        return rc;
    pl_admin_register(m->admin, "/ready", "print server state, return 200 if LIVE, otherwise 503",
                      false, h_ready, m);
    pl_admin_register(m->admin, "/server_info", "print server version/status information", false,
                      h_server_info, m);
    pl_admin_register(m->admin, "/config_dump", "dump current Envoy configs", false, h_config_dump,
                      m);
    pl_admin_register(m->admin, "/clusters", "upstream cluster status", false, h_clusters, m);
    pl_admin_register(m->admin, "/listeners", "print listener info", false, h_listeners, m);
    pl_admin_register(m->admin, "/drain_listeners", "drain listeners", true, h_drain_listeners, m);
    pl_admin_register(m->admin, "/quitquitquit", "exit the server", true, h_quit, m);
    if (m->o->admin_address_path) {
        char text[160];
        if (cfg.unix_path)
            snprintf(text, sizeof(text), "%s\n", cfg.unix_path);
        else if (strchr(cfg.address, ':'))
            snprintf(text, sizeof(text), "[%s]:%d\n", cfg.address, pl_admin_port(m->admin));
        else
            snprintf(text, sizeof(text), "%s:%d\n", cfg.address, pl_admin_port(m->admin));
        /* write then rename, so a reader never sees a half-written address */
        char *tmp = pl_asprintf("%s.tmp", m->o->admin_address_path);
        FILE *f = fopen(tmp, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0 ||
            rename(tmp, m->o->admin_address_path) < 0) {
            free(tmp);
            return pl_err_add(err, m->o->admin_address_path, 0, 0, NULL,
                              "cannot write the admin address: %m");
        }
        free(tmp);
    }
    pl_log_info("main", "admin listening on %s:%d", cfg.unix_path ? cfg.unix_path : cfg.address,
                pl_admin_port(m->admin));
    return 0;
}

int pl_main_server_run(const struct pl_main_opts *o, pl_bootstrap_t *boot, struct pl_err *err)
{
    struct main_ctx m = {.o = o};
    clock_gettime(CLOCK_MONOTONIC, &m.started);
    struct pl_snapshot *snap = NULL;
    int code = 1;
    bool dynamic = boot->dynamic_resources != NULL;
    if (!dynamic && pl_bootstrap_compile(boot, &snap, err) < 0)
        goto out;
    m.stats = pl_stats_new();
    struct pl_server_opts so = {
        .concurrency = (unsigned)o->concurrency, .drain_time_s = o->drain_time_s, .stats = m.stats};
    m.srv = pl_server_new(&so, err);
    if (!m.srv)
        goto out;
    /* clusters' runtime (host sets, DNS on the main loop, stats) before workers see them */
    struct pl_upstream_opts uo = {.loop = pl_server_loop(m.srv), .stats = m.stats};
    if (pl_upstream_init(&uo, err) < 0)
        goto out;
    if (dynamic) { /* xDS compiles, prepares and applies every snapshot, the first included */
        struct pl_xds_opts xo = {
            .loop = pl_server_loop(m.srv), .srv = m.srv, .stats = m.stats, .bootstrap = boot};
        if (pl_xds_start(&xo, &m.xds, err) < 0)
            goto out;
    } else {
        if (pl_upstream_prepare(snap, err) < 0)
            goto out;
        if (pl_server_apply(m.srv, snap, err) < 0)
            goto out;
        snap = NULL; /* published: owned by the publish machinery now */
    }
    if (start_admin(&m, boot, err) < 0)
        goto out;
    if (o->init_only) {
        pl_log_info("main", "init_only: configuration loaded and listeners bound, exiting");
        code = 0;
        goto out;
    }
    pl_log_info("main", "pillion %s started: %u workers", PL_VERSION, pl_server_concurrency(m.srv));
    code = pl_server_run(m.srv);
    pl_log_info("main", "exiting");
out:
    pl_xds_free(m.xds); /* before the server: its thread hands events to the main loop */
    if (m.admin)
        pl_admin_free(m.admin);
    pl_upstream_shutdown(); /* workers have stopped: no grace period waits on them */
    if (m.srv)
        pl_server_free(m.srv);
    if (snap)
        pl_snapshot_free(snap);
    if (m.stats)
        pl_stats_free(m.stats);
    protobuf_c_message_free_unpacked(&boot->base, NULL);
    return code;
}
