/* The status document (like `istioctl proxy-status`) and the JSON helpers it uses. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp.h"

void pl_cp_json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f); /* UTF-8 passes through */
        }
    }
    fputc('"', f);
}

void pl_cp_json_time(FILE *f, double t)
{
    if (t <= 0) {
        fputs("null", f);
        return;
    }
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[64];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "\"%s.%03dZ\"", buf, (int)((t - (double)secs) * 1000));
}

static void error_json(FILE *f, const struct pl_cp_loadstate *ls)
{
    if (!ls->error_time) {
        fputs("null", f);
        return;
    }
    fputs("{\"time\": ", f);
    pl_cp_json_time(f, ls->error_time);
    char *joined = pl_err_join(&ls->error);
    fputs(", \"message\": ", f);
    pl_cp_json_str(f, joined);
    free(joined);
    fputs(", \"errors\": [", f);
    for (size_t i = 0; i < ls->error.n; i++) {
        const struct pl_err_entry *e = &ls->error.v[i];
        fputs(i ? ", {\"file\": " : "{\"file\": ", f);
        pl_cp_json_str(f, e->file);
        fprintf(f, ", \"line\": %d, \"col\": %d, \"path\": ", e->line, e->col);
        pl_cp_json_str(f, e->path);
        fputs(", \"message\": ", f);
        pl_cp_json_str(f, e->msg);
        fputs("}", f);
    }
    fputs("]}", f);
}

char *pl_cp_status_json(struct pl_cp_server *srv, const struct pl_cp_loadstate *ls)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        pl_die("open_memstream failed");
    fputs("{\"resources_path\": ", f);
    pl_cp_json_str(f, ls->path);
    fputs(", \"xds_address\": ", f);
    pl_cp_json_str(f, ls->xds_address);
    fputs(", \"started\": ", f);
    pl_cp_json_time(f, ls->started);
    fputs(", \"loaded\": ", f);
    pl_cp_json_time(f, ls->loaded);
    fprintf(f, ", \"loads_ok\": %lu, \"loads_rejected\": %lu, \"last_error\": ", ls->loads_ok,
            ls->loads_rejected);
    error_json(f, ls);
    const struct pl_cp_load_stats *st = &ls->last;
    fprintf(f,
            ", \"last_load\": {\"ms\": %.1f, \"files_read\": %zu, \"files_parsed\": %zu, "
            "\"decoded\": %zu, \"kept\": %zu, \"full\": %s}, ",
            ls->last_ms, st->files_read, st->files_parsed, st->decoded, st->reused,
            st->full ? "true" : "false");
    pl_cp_server_status(srv, f);
    fputs("}\n", f);
    if (fclose(f) != 0)
        pl_die("writing the status document failed");
    return out;
}
