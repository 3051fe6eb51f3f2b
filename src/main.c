/* pillion: command line (Envoy's flags), start, stop. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/bootstrap.h"
#include "core/err.h"
#include "core/log.h"
#include "net/conn.h"
#include "server/main_server.h"
#include "xds/xds.h"

#define PL_VERSION "0.1.0"

enum {
    OPT_CONFIG_YAML = 256,
    OPT_MODE,
    OPT_CONCURRENCY,
    OPT_DRAIN_TIME,
    OPT_BASE_ID,
    OPT_ADMIN_ALLOW_REMOTE,
    OPT_ADMIN_ADDRESS_PATH,
    OPT_SERVICE_CLUSTER,
    OPT_SERVICE_NODE,
    OPT_IO_URING,
    OPT_VERSION
};

static const struct option long_opts[] = {
    {"config-path", required_argument, NULL, 'c'},
    {"config-yaml", required_argument, NULL, OPT_CONFIG_YAML},
    {"mode", required_argument, NULL, OPT_MODE},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"log-level", required_argument, NULL, 'l'},
    {"drain-time-s", required_argument, NULL, OPT_DRAIN_TIME},
    {"base-id", required_argument, NULL, OPT_BASE_ID},
    {"admin-allow-remote", no_argument, NULL, OPT_ADMIN_ALLOW_REMOTE},
    {"admin-address-path", required_argument, NULL, OPT_ADMIN_ADDRESS_PATH},
    {"service-cluster", required_argument, NULL, OPT_SERVICE_CLUSTER},
    {"service-node", required_argument, NULL, OPT_SERVICE_NODE},
    {"io-uring", required_argument, NULL, OPT_IO_URING},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fputs("usage: pillion [options]\n"
          "  -c, --config-path FILE     Envoy v3 bootstrap, YAML or JSON\n"
          "      --config-yaml TEXT     bootstrap as YAML text (merged over --config-path)\n"
          "      --mode MODE            serve (default), validate, or init_only\n"
          "      --concurrency N        worker threads (default: number of cores)\n"
          "  -l, --log-level LEVEL      trace, debug, info, warning, error, critical, off\n"
          "      --drain-time-s N       how long SIGTERM lets in-flight work finish (default 600)\n"
          "      --base-id N            instance id for running several proxies on one host\n"
          "      --service-cluster NAME overrides node.cluster\n"
          "      --service-node ID      overrides node.id\n"
          "      --admin-address-path F writes the admin address to F once it listens\n"
          "      --admin-allow-remote   allow a non-loopback admin address\n"
          "      --io-uring auto|off    batch plaintext socket reads and writes through io_uring\n"
          "                             where the kernel allows it (auto, the default) or never\n"
          "      --version              prints the version\n",
          out);
}

/* Parses a non-negative integer option; returns -1 and prints an error if it is not one. */
static long parse_count(const char *flag, const char *s, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max) {
        fprintf(stderr, "pillion: --%s: expected a whole number from 0 to %ld, got '%s'\n", flag,
                max, s);
        return -1;
    }
    return v;
}

int main(int argc, char **argv)
{
    pl_xds_process_init(); /* the environment gRPC reads, before any thread */
    struct pl_main_opts o = {
        .drain_time_s = 600,
        .concurrency = (int)sysconf(_SC_NPROCESSORS_ONLN),
    };
    const char *mode = "serve";
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "c:l:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.boot.config_path = optarg;
            break;
        case OPT_CONFIG_YAML:
            o.boot.config_yaml = optarg;
            break;
        case OPT_MODE:
            mode = optarg;
            break;
        case OPT_CONCURRENCY:
            if ((v = parse_count("concurrency", optarg, 1024)) < 0)
                return 1;
            o.concurrency = v ? (int)v : 1;
            break;
        case 'l': {
            int level = pl_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "pillion: --log-level: unknown level '%s'\n", optarg);
                return 1;
            }
            pl_log_set_level(level);
            break;
        }
        case OPT_DRAIN_TIME:
            if ((v = parse_count("drain-time-s", optarg, INT_MAX)) < 0)
                return 1;
            o.drain_time_s = (int)v;
            break;
        case OPT_BASE_ID:
            if ((v = parse_count("base-id", optarg, INT_MAX)) < 0)
                return 1;
            o.base_id = (int)v;
            break;
        case OPT_ADMIN_ALLOW_REMOTE:
            o.boot.admin_allow_remote = true;
            break;
        case OPT_ADMIN_ADDRESS_PATH:
            o.admin_address_path = optarg;
            break;
        case OPT_SERVICE_CLUSTER:
            o.boot.service_cluster = optarg;
            break;
        case OPT_SERVICE_NODE:
            o.boot.service_node = optarg;
            break;
        case OPT_IO_URING:
            if (strcmp(optarg, "auto") && strcmp(optarg, "off")) {
                fprintf(stderr, "pillion: --io-uring: expected auto or off, got '%s'\n", optarg);
                return 1;
            }
            pl_conn_set_io_uring(!strcmp(optarg, "auto"));
            break;
        case OPT_VERSION:
            printf("pillion version: %s\n", PL_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pillion: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }
    if (!o.boot.config_path && !o.boot.config_yaml) {
        fputs("pillion: one of --config-path or --config-yaml is required\n", stderr);
        return 1;
    }
    if (o.concurrency < 1)
        o.concurrency = 1;

    struct pl_err err = PL_ERR_INIT;
    Envoy__Config__Bootstrap__V3__Bootstrap *boot = NULL;
    int rc = pl_bootstrap_load(&o.boot, &boot, &err);
    if (!strcmp(mode, "validate")) {
        const char *what = o.boot.config_path ? o.boot.config_path : "--config-yaml";
        if (rc < 0) {
            pl_err_print(&err, stderr);
            fprintf(stderr, "configuration '%s' is invalid: %zu error%s\n", what, err.n,
                    err.n == 1 ? "" : "s");
        } else {
            printf("configuration '%s' OK\n", what);
        }
        pl_err_free(&err);
        if (boot)
            protobuf_c_message_free_unpacked(&boot->base, NULL);
        return rc < 0 ? 1 : 0;
    }
    if (strcmp(mode, "serve") && strcmp(mode, "init_only")) {
        fprintf(stderr, "pillion: --mode: expected serve, validate or init_only, got '%s'\n", mode);
        return 1;
    }
    if (rc < 0) {
        pl_err_print(&err, stderr);
        fprintf(stderr, "pillion: not starting: the bootstrap has %zu error%s\n", err.n,
                err.n == 1 ? "" : "s");
        pl_err_free(&err);
        return 1;
    }
    o.init_only = !strcmp(mode, "init_only");
    rc = pl_main_server_run(&o, boot, &err);
    if (err.n) {
        pl_err_print(&err, stderr);
        pl_err_free(&err);
    }
    return rc;
}
