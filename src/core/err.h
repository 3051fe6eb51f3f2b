/* Error codes and the error list that carries user-facing details (file, line, field path). */
#ifndef PL_CORE_ERR_H
#define PL_CORE_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

enum {
    PL_OK = 0,
    PL_EINVAL = -1, /* bad input: details are in the struct pl_err */
    PL_ENOMEM = -2,
    PL_EIO = -3,     /* a system call failed: details are in the struct pl_err */
    PL_ENOTSUP = -4, /* valid input asking for something we do not implement */
    PL_ENOENT = -5,
    PL_EEXIST = -6,
    PL_EAGAIN = -7,
};

/* One user-facing error: where it is (file:line:col, field path) and what is wrong. */
struct pl_err_entry {
    char *file; /* may be NULL */
    int line;   /* 1-based; 0 when unknown */
    int col;    /* 1-based; 0 when unknown */
    char *path; /* field path such as static_resources.clusters[2].name; may be NULL */
    char *msg;
};

/* A list of errors: validation reports all of them, not just the first. */
struct pl_err {
    struct pl_err_entry *v;
    size_t n, cap;
};

#define PL_ERR_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Prepares an empty list. */
void pl_err_init(struct pl_err *e);
/* Frees every entry; the list is empty and reusable afterwards. */
void pl_err_free(struct pl_err *e);
/* Appends an error; returns PL_EINVAL so callers can `return pl_err_add(...)`. e may be NULL. */
int pl_err_add(struct pl_err *e, const char *file, int line, int col, const char *path,
               const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* As pl_err_add with a va_list. */
int pl_err_vadd(struct pl_err *e, const char *file, int line, int col, const char *path,
                const char *fmt, va_list ap);
/* Moves every entry of src to the end of dst; src is left empty. */
void pl_err_move(struct pl_err *dst, struct pl_err *src);
/* Writes one line per error: "file:line:col: path: message". */
void pl_err_print(const struct pl_err *e, FILE *out);
/* Returns all errors joined by "; " (for xDS NACK error_detail); caller frees. */
char *pl_err_join(const struct pl_err *e);
/* Returns a static English name for a PL_E* code. */
const char *pl_strerror(int code);

/* Aborts with a message: out of memory and broken invariants only, never bad input. */
_Noreturn void pl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* malloc/calloc/realloc/strdup that abort on failure. */
void *pl_malloc(size_t n);
void *pl_calloc(size_t n, size_t size);
void *pl_realloc(void *p, size_t n);
char *pl_strdup(const char *s);
char *pl_strndup(const char *s, size_t n);
/* Returns a malloc'd formatted string; aborts on out of memory. */
char *pl_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
