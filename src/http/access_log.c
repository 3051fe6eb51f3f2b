/* AccessLog protos -> compiled loggers (format + sink), and emitting a line to each. */
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "config/registry.h"
#include "http/access_log_internal.h"

#define FILE_T Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog
#define FILE_C(x)                                                                                  \
    ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_##x
#define STDOUT_T Envoy__Extensions__AccessLoggers__Stream__V3__StdoutAccessLog
#define STDOUT_C(x)                                                                                \
    ENVOY__EXTENSIONS__ACCESS_LOGGERS__STREAM__V3__STDOUT_ACCESS_LOG__ACCESS_LOG_FORMAT_##x

struct logger {
    struct pl_al_format *fmt;
    struct pl_al_file *file;
};

struct pl_access_logs {
    struct logger *v;
    size_t n;
};

/* Compiles one entry; with out NULL it only checks it (no file is opened). */
static int compile_one(const Envoy__Config__Accesslog__V3__AccessLog *al, const char *path,
                       struct logger *out, struct pl_err *err)
{
    if (al->filter)
        return pl_err_add(err, NULL, 0, 0, path,
                          "access log '%s': filter is not supported by pillion", al->name);
    const Google__Protobuf__Any *any = al->typed_config;
    if (!any || !any->type_url || !*any->type_url)
        return pl_err_add(err, NULL, 0, 0, path, "access log '%s': typed_config is required",
                          al->name);
    const ProtobufCMessageDescriptor *want = NULL;
    const char *name = strrchr(any->type_url, '/');
    name = name ? name + 1 : any->type_url;
    if (!strcmp(name, "envoy.extensions.access_loggers.file.v3.FileAccessLog"))
        want = &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor;
    else if (!strcmp(name, "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"))
        want = &envoy__extensions__access_loggers__stream__v3__stdout_access_log__descriptor;
    else
        return pl_err_add(err, NULL, 0, 0, path,
                          "access log '%s': extension type '%s' is not supported by pillion "
                          "(supported here: file, stdout)",
                          al->name, any->type_url);
    ProtobufCMessage *m;
    bool owned;
    struct pl_err sub = PL_ERR_INIT;
    if (pl_any_unpack(&any->base, NULL, want, &m, &owned, &sub) < 0) {
        for (size_t i = 0; i < sub.n; i++)
            pl_err_add(err, NULL, 0, 0, path, "access log '%s': %s", al->name, sub.v[i].msg);
        pl_err_free(&sub);
        return PL_EINVAL;
    }
    char *p = pl_asprintf("%s.typed_config", path);
    char *fp = pl_asprintf("%s.log_format", p);
    const Envoy__Config__Core__V3__SubstitutionFormatString *sfs = NULL;
    const char *file_path = "/dev/stdout";
    int rc = 0;
    if (want == &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor) {
        const FILE_T *fa = (const FILE_T *)m;
        file_path = fa->path;
        switch (fa->access_log_format_case) {
        case FILE_C(_NOT_SET):
            break;
        case FILE_C(LOG_FORMAT):
            sfs = fa->log_format;
            break;
        default:
            rc = pl_err_add(err, NULL, 0, 0, p,
                            "the deprecated format, json_format and typed_json_format fields "
                            "are not supported by pillion: use log_format");
        }
    } else {
        const STDOUT_T *so = (const STDOUT_T *)m;
        if (so->access_log_format_case == STDOUT_C(LOG_FORMAT))
            sfs = so->log_format;
    }
    struct pl_al_format *fmt = NULL;
    char *pp = pl_asprintf("%s.path", p);
    if (rc == 0)
        rc = pl_al_format_compile(sfs, fp, &fmt, err);
    if (!*file_path) /* reported with any format error: all errors, not just the first */
        rc = pl_err_add(err, NULL, 0, 0, pp, "an access log path is required");
    if (rc == 0 && out) {
        rc = pl_al_file_get(file_path, &out->file, pp, err);
        if (rc == 0)
            out->fmt = fmt, fmt = NULL;
    }
    pl_al_format_free(fmt);
    free(pp);
    free(fp);
    free(p);
    if (owned)
        protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int pl_access_log_compile(const Envoy__Config__Accesslog__V3__AccessLog *const *logs, size_t n,
                          const char *path, struct pl_access_logs **out, struct pl_err *err)
{
    *out = NULL;
    if (n == 0)
        return 0;
    struct pl_access_logs *l = pl_calloc(1, sizeof(*l));
    l->v = pl_calloc(n, sizeof(*l->v));
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = pl_asprintf("%s[%zu]", path ? path : "access_log", i);
        if (compile_one(logs[i], p, &l->v[l->n], err) < 0)
            rc = PL_EINVAL;
        else
            l->n++;
        free(p);
    }
    if (rc < 0) {
        pl_access_logs_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void pl_access_log_emit(const struct pl_access_logs *logs, const struct pl_stream_info *si)
{
    if (!logs)
        return;
    for (size_t i = 0; i < logs->n; i++) {
        struct pl_al_buf *b = pl_al_tls_line();
        pl_al_format(logs->v[i].fmt, si, b);
        if (b->len)
            pl_al_file_write(logs->v[i].file, b->p, b->len);
    }
}

void pl_access_logs_free(struct pl_access_logs *logs)
{
    if (!logs)
        return;
    for (size_t i = 0; i < logs->n; i++) {
        pl_al_format_free(logs->v[i].fmt);
        pl_al_file_put(logs->v[i].file);
    }
    free(logs->v);
    free(logs);
}

int pl_access_log_check(const Envoy__Config__Accesslog__V3__AccessLog *const *logs, size_t n,
                        const char *path, struct pl_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = pl_asprintf("%s[%zu]", path ? path : "access_log", i);
        if (compile_one(logs[i], p, NULL, err) < 0)
            rc = PL_EINVAL;
        free(p);
    }
    return rc;
}

size_t pl_access_logs_count(const struct pl_access_logs *logs)
{
    return logs ? logs->n : 0;
}
