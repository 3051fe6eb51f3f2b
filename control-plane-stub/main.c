/* pillion-cp: command line, resource loading and reloading, status endpoint, signals. */
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "core/log.h"
#include "cp.h"
#include "watch.h"

struct cp_main {
    struct ev_loop *loop;
    struct pl_cp_server *srv;
    struct pl_cp_loadstate ls;
    const struct pl_cp_set *current; /* owned by srv; read on the loop thread only */
    struct pl_cp_map pending;        /* files changed since the last accepted load */
    bool pending_all;                /* any file may have changed */
};

static void add_pending(struct pl_cp_map_ent *e, void *ud)
{
    pl_cp_map_put(ud, e->key, NULL);
}

static void usage(FILE *out)
{
    fputs("usage: pillion-cp --resources PATH [options]\n"
          "  --resources PATH        a YAML/JSON file, or a directory of them, whose top level\n"
          "                          is `resources:` (Envoy resources, each with its @type)\n"
          "  --xds-address H:P       ADS gRPC listen address (default 127.0.0.1:15010)\n"
          "  --status-address H:P    status HTTP listen address (default 127.0.0.1:15014)\n"
          "  --xds-tls-address H:P   also serve ADS over TLS there (Istio's 15012)\n"
          "  --tls-cert FILE         its certificate chain (PEM)\n"
          "  --tls-key FILE          its private key (PEM)\n"
          "  --tls-client-ca FILE    require client certificates signed by these CAs (mTLS)\n"
          "  --no-watch              do not reload the files when they change\n"
          "  --watch-debounce-ms N   reload N ms after the last change (default 50)\n"
          "  -l, --log-level LEVEL   trace, debug, info, warning, error, critical, off\n",
          out);
}

/* Splits "host:port" or "[v6]:port"; returns 0 or -1. host is written into buf. */
static int split_addr(const char *s, char *buf, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -1;
    const char *h = s, *he = colon;
    if (*h == '[') {
        if (he[-1] != ']')
            return -1;
        h++;
        he--;
    }
    if ((size_t)(he - h) >= cap)
        return -1;
    memcpy(buf, h, (size_t)(he - h));
    buf[he - h] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

static void reload(void *ud, const struct pl_cp_map *changed)
{
    struct cp_main *m = ud;
    struct pl_err err = PL_ERR_INIT;
    struct pl_cp_set *set;
    /* what changed since the last good set: a refused load's files are read again */
    if (changed)
        pl_cp_map_each(changed, add_pending, &m->pending);
    else
        m->pending_all = true;
    double t0 = pl_cp_now();
    if (pl_cp_set_reload(m->ls.path, m->current, m->pending_all ? NULL : &m->pending, &set, &err) <
        0) {
        m->ls.loads_rejected++;
        m->ls.error_time = pl_cp_now();
        pl_err_free(&m->ls.error);
        pl_err_move(&m->ls.error, &err);
        pl_log_error("cp", "refused the resource files; still serving the last good set:");
        pl_err_print(&m->ls.error, stderr);
        return;
    }
    pl_cp_map_clear(&m->pending);
    m->pending_all = false;
    m->ls.last = set->stats;
    m->ls.last_ms = (pl_cp_now() - t0) * 1000;
    m->ls.loads_ok++;
    m->ls.loaded = pl_cp_now();
    m->ls.error_time = 0;
    pl_err_free(&m->ls.error);
    char versions[256];
    int off = 0;
    for (int t = 0; t < PL_CP_NTYPES; t++)
        off += snprintf(versions + off, sizeof(versions) - (size_t)off, " %s=%s(%zu)",
                        pl_cp_type_name(t), set->version[t], set->n[t]);
    const struct pl_cp_load_stats *st = &set->stats;
    pl_log_info("cp",
                "loaded %s:%s in %.1f ms (%zu files read, %zu parsed; %zu resources decoded, "
                "%zu kept%s)",
                m->ls.path, versions, (pl_cp_now() - t0) * 1000, st->files_read, st->files_parsed,
                st->decoded, st->reused, st->full ? "; all checked again" : "");
    m->current = set;
    pl_cp_server_set_resources(m->srv, set);
}

static void on_status(const struct pl_admin_request *req, struct pl_admin_response *resp, void *ctx)
{
    (void)req;
    struct cp_main *m = ctx;
    char *doc = pl_cp_status_json(m->srv, &m->ls);
    pl_admin_resp_content_type(resp, "application/json");
    pl_admin_resp_append(resp, doc, strlen(doc));
    free(doc);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    pl_log_info("cp", "signal %d: shutting down", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"resources", required_argument, NULL, 'r'},
        {"xds-address", required_argument, NULL, 'x'},
        {"status-address", required_argument, NULL, 's'},
        {"xds-tls-address", required_argument, NULL, 'T'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-client-ca", required_argument, NULL, 'A'},
        {"no-watch", no_argument, NULL, 'n'},
        {"watch-debounce-ms", required_argument, NULL, 'd'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *resources = NULL, *xds = "127.0.0.1:15010", *status = "127.0.0.1:15014";
    bool watch = true;
    long debounce_ms = -1;
    struct pl_cp_listen lst = {0};
    int c;
    while ((c = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            resources = optarg;
            break;
        case 'x':
            xds = optarg;
            break;
        case 's':
            status = optarg;
            break;
        case 'T':
            lst.tls_addr = optarg;
            break;
        case 'C':
            lst.tls_cert = optarg;
            break;
        case 'K':
            lst.tls_key = optarg;
            break;
        case 'A':
            lst.tls_client_ca = optarg;
            break;
        case 'n':
            watch = false;
            break;
        case 'd': {
            char *end;
            debounce_ms = strtol(optarg, &end, 10);
            if (end == optarg || *end || debounce_ms < 1 || debounce_ms > 60000) {
                fprintf(stderr, "pillion-cp: --watch-debounce-ms: expected 1..60000, got '%s'\n",
                        optarg);
                return 1;
            }
            break;
        }
        case 'l': {
            int lvl = pl_log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "pillion-cp: unknown log level '%s'\n", optarg);
                return 1;
            }
            pl_log_set_level(lvl);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    char status_host[256];
    int status_port;
    if (!resources || optind != argc) {
        usage(stderr);
        return 1;
    }
    if (split_addr(status, status_host, sizeof(status_host), &status_port) < 0) {
        fprintf(stderr, "pillion-cp: --status-address: expected HOST:PORT, got '%s'\n", status);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    struct cp_main m = {.loop = ev_default_loop(0)};
    m.ls.path = resources;
    m.ls.xds_address = xds;
    m.ls.started = pl_cp_now();
    pl_err_init(&m.ls.error);
    struct pl_err err = PL_ERR_INIT;
    struct pl_cp_set *set;
    if (pl_cp_set_load(resources, NULL, &set, &err) < 0) {
        fprintf(stderr, "pillion-cp: cannot load %s:\n", resources);
        pl_err_print(&err, stderr);
        pl_err_free(&err);
        return 1;
    }
    m.current = set;
    m.ls.last = set->stats;
    m.ls.loads_ok = 1;
    m.ls.loaded = pl_cp_now();

    struct pl_admin *admin = NULL;
    struct pl_cp_watch *w = NULL;
    struct pl_admin_config acfg = {.address = status_host, .port = (uint16_t)status_port};
    int xds_port = 0, xds_tls_port = 0, rc = 1;
    if (pl_admin_new(m.loop, &acfg, NULL, &err, &admin) < 0)
        goto fail;
    pl_admin_register(admin, "/status", "connected nodes, versions sent/ACKed/NACKed, load errors",
                      false, on_status, &m);
    if (watch && pl_cp_watch_new(m.loop, resources, reload, &m, &w, &err) < 0)
        goto fail;
    if (w && debounce_ms > 0)
        pl_cp_watch_set_debounce(w, (double)debounce_ms / 1000.0);
    lst.addr = xds;
    if ((lst.tls_cert || lst.tls_key || lst.tls_client_ca) && !lst.tls_addr) {
        pl_err_add(&err, NULL, 0, 0, "--tls-cert", "TLS files need --xds-tls-address");
        goto fail;
    }
    if (pl_cp_server_new(&lst, set, &m.srv, &xds_port, &xds_tls_port, &err) < 0)
        goto fail;
    set = NULL; /* the server's now */
    if (lst.tls_addr)
        pl_log_info("cp", "serving xDS over TLS%s on %s (port %d)",
                    lst.tls_client_ca ? " with client certificates" : "", lst.tls_addr,
                    xds_tls_port);
    pl_log_info("cp", "serving xDS on %s (port %d), status on http://%s:%d/status", xds, xds_port,
                status_host, pl_admin_port(admin));

    ev_signal sigint, sigterm;
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_start(m.loop, &sigint);
    ev_signal_start(m.loop, &sigterm);
    ev_run(m.loop, 0);
    ev_signal_stop(m.loop, &sigint);
    ev_signal_stop(m.loop, &sigterm);
    rc = 0;
fail:
    if (rc) {
        fprintf(stderr, "pillion-cp: ");
        pl_err_print(&err, stderr);
    }
    pl_cp_watch_free(w);
    pl_cp_server_free(m.srv);
    pl_cp_set_free(set);
    pl_admin_free(admin);
    pl_err_free(&err);
    pl_err_free(&m.ls.error);
    pl_cp_map_clear(&m.pending);
    ev_loop_destroy(m.loop);
    return rc;
}
