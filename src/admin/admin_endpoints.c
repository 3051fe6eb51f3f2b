/* Built-in admin endpoints, with Envoy's paths, help texts and output formats. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "core/log.h"
#include "stats/stats.h"

/* Pillion has one process-wide level; these are the loggers /logging lists (Envoy's names for
 * the components we have), all at that level. */
static const char *const loggers[] = {"admin",  "config", "connection", "http", "main",
                                      "router", "stats",  "upstream",   "xds"};

static void h_help(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)req;
    pl_admin_help(ctx, r);
}

static void render_stats(struct pl_admin *a, const struct pl_admin_request *req,
                         struct pl_admin_response *r, enum pl_stats_format fmt)
{
    struct pl_stats_render_opts o = {
        .filter = pl_admin_param(req, "filter"),
        .used_only = pl_admin_param(req, "usedonly") != NULL,
    };
    char *out = NULL;
    size_t len = 0;
    if (pl_stats_render(a->stats, fmt, &o, &out, &len)) {
        pl_admin_resp_status(r, 400);
        pl_admin_resp_printf(r, "Invalid regex: \"%s\"\n", o.filter);
        return;
    }
    if (fmt == PL_STATS_JSON)
        pl_admin_resp_content_type(r, "application/json");
    pl_admin_resp_append(r, out, len);
    free(out);
}

static void h_stats(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    const char *f = pl_admin_param(req, "format");
    enum pl_stats_format fmt = PL_STATS_TEXT;
    if (f && !strcmp(f, "json")) {
        fmt = PL_STATS_JSON;
    } else if (f && !strcmp(f, "prometheus")) {
        fmt = PL_STATS_PROMETHEUS;
    } else if (f && strcmp(f, "text")) {
        pl_admin_resp_status(r, 400);
        pl_admin_resp_append(r, "usage: /stats?format=(json|prometheus|text)\n", 44);
        return;
    }
    render_stats(ctx, req, r, fmt);
}

static void h_prometheus(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    render_stats(ctx, req, r, PL_STATS_PROMETHEUS);
}

static void h_reset_counters(const struct pl_admin_request *req, struct pl_admin_response *r,
                             void *ctx)
{
    (void)req;
    struct pl_admin *a = ctx;
    pl_stats_reset_counters(a->stats);
    pl_admin_resp_append(r, "OK\n", 3);
}

static void h_logging(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)ctx;
    if (req->num_params && strcmp(req->method, "POST")) {
        pl_admin_resp_status(r, 405);
        pl_admin_resp_printf(r, "Method %s not allowed, POST required.", req->method);
        return;
    }
    if (req->num_params) {
        const char *lv = pl_admin_param(req, "level");
        int level = lv && req->num_params == 1 ? pl_log_level_parse(lv) : -1;
        if (level < 0) {
            pl_admin_resp_status(r, 404);
            pl_admin_resp_printf(r, "usage: /logging?level=<level> (change all levels)\n"
                                    "levels: trace debug info warning error critical off \n");
        } else {
            pl_log_set_level(level);
            pl_log_info("admin", "log level set to %s", pl_log_level_name(level));
        }
    }
    pl_admin_resp_append(r, "active loggers:\n", 16);
    const char *name = pl_log_level_name(atomic_load(&pl_log_level_now));
    for (size_t i = 0; i < sizeof(loggers) / sizeof(loggers[0]); i++)
        pl_admin_resp_printf(r, "  %s: %s\n", loggers[i], name);
}

static void h_hc_fail(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)req;
    ((struct pl_admin *)ctx)->health_failed = true;
    pl_admin_resp_append(r, "OK\n", 3);
}

static void h_hc_ok(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)req;
    ((struct pl_admin *)ctx)->health_failed = false;
    pl_admin_resp_append(r, "OK\n", 3);
}

static void h_memory(const struct pl_admin_request *req, struct pl_admin_response *r, void *ctx)
{
    (void)req;
    (void)ctx;
    struct mallinfo2 mi = mallinfo2();
    unsigned long long allocated = mi.uordblks + mi.hblkhd, heap = mi.arena + mi.hblkhd;
    pl_admin_resp_content_type(r, "application/json");
    pl_admin_resp_printf(
        r,
        "{\n \"allocated\": \"%llu\",\n \"heap_size\": \"%llu\",\n"
        " \"pageheap_unmapped\": \"0\",\n \"pageheap_free\": \"%llu\",\n"
        " \"total_thread_cache\": \"0\",\n \"total_physical_bytes\": \"%llu\"\n}\n",
        allocated, heap, (unsigned long long)mi.fordblks, heap);
}

void pl_admin_builtins(struct pl_admin *a)
{
    pl_admin_register(a, "/help", "print out list of admin commands", false, h_help, a);
    if (a->stats) {
        pl_admin_register(a, "/stats", "print server stats", false, h_stats, a);
        pl_admin_register(a, "/stats/prometheus", "print server stats in prometheus format", false,
                          h_prometheus, a);
        pl_admin_register(a, "/reset_counters", "reset all counters to zero", true,
                          h_reset_counters, a);
    }
    pl_admin_register(a, "/logging", "query/change logging levels", false, h_logging, a);
    pl_admin_register(a, "/healthcheck/fail", "cause the server to fail health checks", true,
                      h_hc_fail, a);
    pl_admin_register(a, "/healthcheck/ok", "cause the server to pass health checks", true, h_hc_ok,
                      a);
    pl_admin_register(a, "/memory", "print current allocation/heap usage", false, h_memory, a);
}
