/* Source positions of decoded messages, keyed by message address. */
#include "config/srcmap.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sm_pos {
    int line, col;
};

struct sm_field {
    const ProtobufCFieldDescriptor *fd;
    int line, col;
    struct sm_pos *elems;
    size_t nelems, elemcap;
};

struct sm_entry {
    const void *msg;
    const char *file;
    char *path;
    int line, col;
    struct sm_field *fields;
    size_t nfields, fcap;
    ProtobufCMessage *inner; /* owned */
};

struct pl_srcmap {
    struct sm_entry **slots;
    size_t n, cap; /* cap: power of two */
    char **files;
    size_t nfiles;
};

struct pl_srcmap *pl_srcmap_new(void)
{
    return pl_calloc(1, sizeof(struct pl_srcmap));
}

static void entry_free(struct sm_entry *e)
{
    for (size_t i = 0; i < e->nfields; i++)
        free(e->fields[i].elems);
    free(e->fields);
    free(e->path);
    if (e->inner)
        protobuf_c_message_free_unpacked(e->inner, NULL);
    free(e);
}

void pl_srcmap_free(struct pl_srcmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i])
            entry_free(m->slots[i]);
    free(m->slots);
    for (size_t i = 0; i < m->nfiles; i++)
        free(m->files[i]);
    free(m->files);
    free(m);
}

static size_t phash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static struct sm_entry **slot_of(const struct pl_srcmap *m, const void *msg)
{
    if (!m || !m->cap)
        return NULL;
    for (size_t i = phash(msg) & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
        if (!m->slots[i] || m->slots[i]->msg == msg)
            return &m->slots[i];
}

static struct sm_entry *find(const struct pl_srcmap *m, const void *msg)
{
    struct sm_entry **s = slot_of(m, msg);
    return s ? *s : NULL;
}

static void insert(struct pl_srcmap *m, struct sm_entry *e)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct sm_entry **old = m->slots;
        size_t oldcap = m->cap;
        m->cap = m->cap ? m->cap * 2 : 64;
        m->slots = pl_calloc(m->cap, sizeof(*m->slots));
        m->n = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                insert(m, old[i]);
        free(old);
    }
    struct sm_entry **s = slot_of(m, e->msg);
    if (*s)
        entry_free(*s);
    else
        m->n++;
    *s = e;
}

static const char *intern_file(struct pl_srcmap *m, const char *file)
{
    if (!file)
        return NULL;
    for (size_t i = m->nfiles; i-- > 0;)
        if (!strcmp(m->files[i], file))
            return m->files[i];
    m->files = pl_realloc(m->files, (m->nfiles + 1) * sizeof(*m->files));
    return m->files[m->nfiles++] = pl_strdup(file);
}

void pl_srcmap_add_msg(struct pl_srcmap *m, const void *msg, const char *file, const char *path,
                       int line, int col)
{
    struct sm_entry *e = pl_calloc(1, sizeof(*e));
    e->msg = msg;
    e->file = intern_file(m, file);
    e->path = pl_strdup(path ? path : "");
    e->line = line;
    e->col = col;
    insert(m, e);
}

static struct sm_field *field_of(struct sm_entry *e, const ProtobufCFieldDescriptor *fd)
{
    for (size_t i = 0; i < e->nfields; i++)
        if (e->fields[i].fd == fd)
            return &e->fields[i];
    if (e->nfields == e->fcap) {
        e->fcap = e->fcap ? e->fcap * 2 : 4;
        e->fields = pl_realloc(e->fields, e->fcap * sizeof(*e->fields));
    }
    struct sm_field *f = &e->fields[e->nfields++];
    memset(f, 0, sizeof(*f));
    f->fd = fd;
    return f;
}

void pl_srcmap_add_field(struct pl_srcmap *m, const void *msg, const ProtobufCFieldDescriptor *fd,
                         int line, int col)
{
    struct sm_entry *e = find(m, msg);
    if (!e)
        return;
    struct sm_field *f = field_of(e, fd);
    f->line = line;
    f->col = col;
}

void pl_srcmap_add_elem(struct pl_srcmap *m, const void *msg, const ProtobufCFieldDescriptor *fd,
                        int line, int col)
{
    struct sm_entry *e = find(m, msg);
    if (!e)
        return;
    struct sm_field *f = field_of(e, fd);
    if (f->nelems == f->elemcap) {
        f->elemcap = f->elemcap ? f->elemcap * 2 : 4;
        f->elems = pl_realloc(f->elems, f->elemcap * sizeof(*f->elems));
    }
    f->elems[f->nelems++] = (struct sm_pos){line, col};
}

void pl_srcmap_set_any_inner(struct pl_srcmap *m, const void *any, ProtobufCMessage *inner)
{
    struct sm_entry *e = find(m, any);
    if (!e) {
        pl_srcmap_add_msg(m, any, NULL, "", 0, 0);
        e = find(m, any);
    }
    if (e->inner)
        protobuf_c_message_free_unpacked(e->inner, NULL);
    e->inner = inner;
}

void pl_srcmap_merge(struct pl_srcmap *dst, struct pl_srcmap *src)
{
    for (size_t i = 0; i < src->cap; i++) {
        struct sm_entry *e = src->slots[i];
        if (!e)
            continue;
        e->file = e->file ? intern_file(dst, e->file) : NULL;
        insert(dst, e);
        src->slots[i] = NULL;
    }
    pl_srcmap_free(src);
}

bool pl_json_name_eq(const char *name, const char *s)
{
    if (!strcmp(name, s))
        return true;
    bool up = false;
    for (; *name; name++) {
        if (*name == '_') {
            up = true;
            continue;
        }
        char c = *name;
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = false;
        if (*s++ != c)
            return false;
    }
    return *s == 0;
}

static void set_path(struct pl_srcloc *out, const char *base, const char *field, size_t idx,
                     bool with_idx)
{
    int n;
    const char *dot = base[0] && field ? "." : "";
    if (!field)
        n = snprintf(out->path, sizeof(out->path), "%s", base);
    else if (with_idx)
        n = snprintf(out->path, sizeof(out->path), "%s%s%s[%zu]", base, dot, field, idx);
    else
        n = snprintf(out->path, sizeof(out->path), "%s%s%s", base, dot, field);
    if (n >= (int)sizeof(out->path))
        memcpy(out->path + sizeof(out->path) - 4, "...", 4);
}

static const struct sm_field *find_field(const struct sm_entry *e, const char *name)
{
    for (size_t i = 0; i < e->nfields; i++)
        if (pl_json_name_eq(e->fields[i].fd->name, name))
            return &e->fields[i];
    return NULL;
}

int pl_srcmap_lookup(const struct pl_srcmap *m, const void *msg, const char *field,
                     struct pl_srcloc *out)
{
    const struct sm_entry *e = find(m, msg);
    if (!e)
        return PL_ENOENT;
    out->file = e->file;
    if (!field) {
        out->line = e->line;
        out->col = e->col;
        set_path(out, e->path, NULL, 0, false);
        return 0;
    }
    const struct sm_field *f = find_field(e, field);
    if (!f)
        return PL_ENOENT;
    out->line = f->line;
    out->col = f->col;
    set_path(out, e->path, f->fd->name, 0, false);
    return 0;
}

int pl_srcmap_lookup_elem(const struct pl_srcmap *m, const void *msg, const char *field, size_t idx,
                          struct pl_srcloc *out)
{
    const struct sm_entry *e = find(m, msg);
    const struct sm_field *f = e ? find_field(e, field) : NULL;
    if (!f || idx >= f->nelems)
        return PL_ENOENT;
    out->file = e->file;
    out->line = f->elems[idx].line;
    out->col = f->elems[idx].col;
    set_path(out, e->path, f->fd->name, idx, true);
    return 0;
}

const ProtobufCMessage *pl_srcmap_any_inner(const struct pl_srcmap *m, const void *any)
{
    const struct sm_entry *e = find(m, any);
    return e ? e->inner : NULL;
}

int pl_err_at(struct pl_err *e, const struct pl_srcmap *m, const void *msg, const char *field,
              const char *fmt, ...)
{
    struct pl_srcloc loc;
    va_list ap;
    va_start(ap, fmt);
    const struct sm_entry *x = find(m, msg);
    if (pl_srcmap_lookup(m, msg, field, &loc) == 0) {
        pl_err_vadd(e, loc.file, loc.line, loc.col, loc.path, fmt, ap);
    } else if (x) {
        /* the field was not written: point at the message that lacks it */
        set_path(&loc, x->path, field, 0, false);
        pl_err_vadd(e, x->file, x->line, x->col, loc.path, fmt, ap);
    } else {
        pl_err_vadd(e, NULL, 0, 0, field, fmt, ap);
    }
    va_end(ap);
    return PL_EINVAL;
}
