/* Private to src/http/access_log*.c: compiled format pieces and the file sinks. */
#ifndef PL_HTTP_ACCESS_LOG_INTERNAL_H
#define PL_HTTP_ACCESS_LOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/access_log.h"

/* Appends n bytes to b (grows it; aborts on OOM). */
void pl_al_buf_put(struct pl_al_buf *b, const void *p, size_t n);

/* One piece of a format string: literal text or a command operator. */
struct pl_al_seg {
    uint8_t op;       /* enum in access_log_format.c; 0 = literal */
    bool num;         /* typed as a number in JSON */
    uint32_t max_len; /* %OP(...):N%; 0 = no limit */
    char *s, *s2;     /* literal / header name (lower-case) / hostname; fallback header name */
    size_t s_len, s2_len;
    struct pl_al_tpiece *tp; /* START_TIME pieces */
    size_t n_tp;
};

/* A parsed format string. */
struct pl_al_tmpl {
    struct pl_al_seg *v;
    size_t n;
};

/* What evaluating an operator produced. */
enum pl_al_val { PL_AL_UNSET, PL_AL_STR, PL_AL_NUM };

/* JSON format tree (json_format Struct). */
struct pl_al_jnode {
    uint8_t kind; /* PL_AL_J_* */
    char *key;    /* "\"key\":" pre-rendered; NULL inside arrays */
    size_t key_len;
    struct pl_al_jnode *kids;
    size_t n;
    struct pl_al_tmpl t; /* PL_AL_J_TMPL */
    char *raw;           /* PL_AL_J_RAW: a number, true, false or null */
    size_t raw_len;
};
enum { PL_AL_J_OBJ, PL_AL_J_ARR, PL_AL_J_TMPL, PL_AL_J_RAW };

struct pl_al_format {
    bool json, omit_empty;
    struct pl_al_tmpl text;
    struct pl_al_jnode root;
};

/* Parses a format string into t. path names the field in errors. */
int pl_al_tmpl_parse(const char *s, size_t n, struct pl_al_tmpl *t, const char *path,
                     struct pl_err *err);
/* Frees what t holds. */
void pl_al_tmpl_free(struct pl_al_tmpl *t);
/* Appends one operator's value to out (truncated to max_len); returns what it produced. */
enum pl_al_val pl_al_seg_eval(const struct pl_al_seg *s, const struct pl_stream_info *si,
                              struct pl_al_buf *out);
/* Renders a json_format tree; returns false if the value was null or empty (omit_empty). */
bool pl_al_json_render(const struct pl_al_jnode *n, const struct pl_stream_info *si, bool omit,
                       struct pl_al_buf *out);
/* Compiles a json_format Struct into root. */
int pl_al_json_compile(const Google__Protobuf__Struct *st, struct pl_al_jnode *root,
                       const char *path, struct pl_err *err);
/* Frees a JSON tree node's contents. */
void pl_al_jnode_free(struct pl_al_jnode *n);

/* A file sink shared by path. */
struct pl_al_file;

/* Opens (or shares) the sink for path; "/dev/stdout" and "/dev/stderr" use fds 1 and 2. */
int pl_al_file_get(const char *path, struct pl_al_file **out, const char *err_path,
                   struct pl_err *err);
/* Drops a reference; the last one flushes, stops the flusher and closes the file. */
void pl_al_file_put(struct pl_al_file *f);
/* Queues one whole line from the calling thread (lock-free). */
void pl_al_file_write(struct pl_al_file *f, const char *line, size_t len);
/* The calling thread's line scratch buffer (emptied). */
struct pl_al_buf *pl_al_tls_line(void);

#endif
