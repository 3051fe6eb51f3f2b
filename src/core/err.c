#include "core/err.h"

#include <stdlib.h>
#include <string.h>

void pl_err_init(struct pl_err *e)
{
    e->v = NULL;
    e->n = e->cap = 0;
}

void pl_err_free(struct pl_err *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].file);
        free(e->v[i].path);
        free(e->v[i].msg);
    }
    free(e->v);
    pl_err_init(e);
}

int pl_err_vadd(struct pl_err *e, const char *file, int line, int col, const char *path,
                const char *fmt, va_list ap)
{
    if (!e)
        return PL_EINVAL;
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 4;
        e->v = pl_realloc(e->v, e->cap * sizeof(*e->v));
    }
    struct pl_err_entry *x = &e->v[e->n++];
    x->file = file ? pl_strdup(file) : NULL;
    x->line = line;
    x->col = col;
    x->path = path && *path ? pl_strdup(path) : NULL;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        pl_die("out of memory");
    x->msg = msg;
    return PL_EINVAL;
}

int pl_err_add(struct pl_err *e, const char *file, int line, int col, const char *path,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pl_err_vadd(e, file, line, col, path, fmt, ap);
    va_end(ap);
    return rc;
}

void pl_err_move(struct pl_err *dst, struct pl_err *src)
{
    for (size_t i = 0; i < src->n; i++) {
        if (dst->n == dst->cap) {
            dst->cap = dst->cap ? dst->cap * 2 : 4;
            dst->v = pl_realloc(dst->v, dst->cap * sizeof(*dst->v));
        }
        dst->v[dst->n++] = src->v[i];
    }
    free(src->v);
    pl_err_init(src);
}

static void format_entry(const struct pl_err_entry *x, FILE *out)
{
    if (x->file) {
        fputs(x->file, out);
        if (x->line > 0)
            fprintf(out, ":%d", x->line);
        if (x->col > 0)
            fprintf(out, ":%d", x->col);
        fputs(": ", out);
    }
    if (x->path)
        fprintf(out, "%s: ", x->path);
    fputs(x->msg, out);
}

void pl_err_print(const struct pl_err *e, FILE *out)
{
    for (size_t i = 0; i < e->n; i++) {
        format_entry(&e->v[i], out);
        fputc('\n', out);
    }
}

char *pl_err_join(const struct pl_err *e)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        pl_die("out of memory");
    for (size_t i = 0; i < e->n; i++) {
        if (i)
            fputs("; ", f);
        format_entry(&e->v[i], f);
    }
    fclose(f);
    return buf;
}

const char *pl_strerror(int code)
{
    switch (code) {
    case PL_OK:
        return "ok";
    case PL_EINVAL:
        return "invalid input";
    case PL_ENOMEM:
        return "out of memory";
    case PL_EIO:
        return "i/o error";
    case PL_ENOTSUP:
        return "not supported";
    case PL_ENOENT:
        return "not found";
    case PL_EEXIST:
        return "already exists";
    case PL_EAGAIN:
        return "try again";
    }
    return "unknown error";
}

_Noreturn void pl_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pillion: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void *pl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        pl_die("out of memory (%zu bytes)", n);
    return p;
}

void *pl_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        pl_die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *pl_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        pl_die("out of memory (%zu bytes)", n);
    return q;
}

char *pl_strdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        pl_die("out of memory");
    return p;
}

char *pl_strndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        pl_die("out of memory");
    return p;
}

char *pl_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        pl_die("out of memory");
    va_end(ap);
    return s;
}
