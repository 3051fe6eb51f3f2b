/* YAML (libyaml events) and JSON text to a node tree with positions. */
#include "config/tree_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

struct pl_tree_chunk {
    struct pl_tree_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_SIZE (64u << 10)

void *pl_tree_alloc(struct pl_tree *t, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct pl_tree_chunk *c = t->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE / 2 ? n : CHUNK_SIZE;
        c = pl_malloc(sizeof(*c) + cap);
        c->used = 0;
        c->cap = cap;
        if (n > CHUNK_SIZE / 2 && t->chunks) {
            /* keep filling the current chunk: link the big one behind it */
            c->next = t->chunks->next;
            t->chunks->next = c;
        } else {
            c->next = t->chunks;
            t->chunks = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

struct pl_tree *pl_tree_new(const char *name)
{
    struct pl_tree *t = pl_calloc(1, sizeof(*t));
    t->name = pl_strdup(name ? name : "<input>");
    return t;
}

struct pl_node *pl_tree_node(struct pl_tree *t, enum pl_node_type type, int line, int col)
{
    struct pl_node *n = pl_tree_alloc(t, sizeof(*n));
    n->type = type;
    n->line = line + 1;
    n->col = col + 1;
    n->weight = 1;
    return n;
}

void pl_tree_set_str(struct pl_tree *t, struct pl_node *n, const char *s, size_t len)
{
    n->str = pl_tree_alloc(t, len + 1);
    if (len) /* s may be NULL for an empty scalar */
        memcpy(n->str, s, len);
    n->str[len] = 0;
    n->len = len;
}

void pl_tree_free(struct pl_tree *t)
{
    if (!t)
        return;
    for (struct pl_tree_chunk *c = t->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(t->name);
    free(t);
}

const struct pl_node *pl_tree_root(const struct pl_tree *t)
{
    return t->root;
}

const char *pl_tree_name(const struct pl_tree *t)
{
    return t->name;
}

enum pl_node_type pl_node_type(const struct pl_node *n)
{
    return n->type;
}

int pl_node_line(const struct pl_node *n)
{
    return n->line;
}

int pl_node_col(const struct pl_node *n)
{
    return n->col;
}

const char *pl_node_str(const struct pl_node *n, size_t *len)
{
    if (n->type != PL_NODE_SCALAR && n->type != PL_NODE_NULL)
        return NULL;
    if (len)
        *len = n->len;
    return n->str ? n->str : "";
}

bool pl_node_quoted(const struct pl_node *n)
{
    return n->quoted;
}

size_t pl_node_len(const struct pl_node *n)
{
    return n->type == PL_NODE_MAP || n->type == PL_NODE_SEQ ? n->len : 0;
}

const struct pl_node *pl_node_item(const struct pl_node *n, size_t i)
{
    return n->type == PL_NODE_SEQ && i < n->len ? n->items[i] : NULL;
}

const struct pl_node *pl_node_key(const struct pl_node *n, size_t i)
{
    return n->type == PL_NODE_MAP && i < n->len ? n->items[2 * i] : NULL;
}

const struct pl_node *pl_node_val(const struct pl_node *n, size_t i)
{
    return n->type == PL_NODE_MAP && i < n->len ? n->items[2 * i + 1] : NULL;
}

const struct pl_node *pl_node_get(const struct pl_node *n, const char *key)
{
    if (n->type != PL_NODE_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < n->len; i++) {
        const struct pl_node *k = n->items[2 * i];
        if (k->type == PL_NODE_SCALAR && k->len == klen && memcmp(k->str, key, klen) == 0)
            return n->items[2 * i + 1];
    }
    return NULL;
}

/* ---- YAML ---- */

struct frame {
    struct pl_node *node;
    char *anchor;
    struct pl_node **v;
    size_t n, cap;
};

struct anchor {
    char *name;
    struct pl_node *node;
};

struct ybuild {
    struct pl_tree *t;
    struct pl_err *err;
    struct frame *st;
    size_t depth, stcap;
    struct anchor *anchors;
    size_t nanchors, anchcap;
    int docs;
};

static int yerr(struct ybuild *b, const yaml_mark_t *m, const char *fmt, const char *arg)
{
    return pl_err_add(b->err, b->t->name, (int)m->line + 1, (int)m->column + 1, NULL, fmt, arg);
}

static void add_anchor(struct ybuild *b, const unsigned char *name, struct pl_node *n)
{
    if (!name)
        return;
    if (b->nanchors == b->anchcap) {
        b->anchcap = b->anchcap ? b->anchcap * 2 : 8;
        b->anchors = pl_realloc(b->anchors, b->anchcap * sizeof(*b->anchors));
    }
    b->anchors[b->nanchors].name = pl_strdup((const char *)name);
    b->anchors[b->nanchors++].node = n;
}

static struct pl_node *find_anchor(struct ybuild *b, const char *name)
{
    for (size_t i = b->nanchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, name) == 0)
            return b->anchors[i].node;
    return NULL;
}

/* Adds a finished node to the open container, or makes it the root. */
static int attach(struct ybuild *b, struct pl_node *n, const yaml_mark_t *m)
{
    if (b->depth == 0) {
        b->t->root = n;
        return 0;
    }
    struct frame *f = &b->st[b->depth - 1];
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->v = pl_realloc(f->v, f->cap * sizeof(*f->v));
    }
    f->v[f->n++] = n;
    f->node->weight += n->weight;
    if (f->node->weight > PL_TREE_MAX_WEIGHT)
        return yerr(b, m, "document too large (more than %s nodes once aliases are expanded)",
                    "16777216");
    return 0;
}

static bool plain_null(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int on_event(struct ybuild *b, yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    int line = (int)m->line, col = (int)m->column;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1)
            return yerr(b, m, "%s", "expected a single YAML document, found several");
        return 0;
    case YAML_SCALAR_EVENT: {
        const char *s = (const char *)ev->data.scalar.value;
        const char *tag = (const char *)ev->data.scalar.tag;
        bool quoted =
            ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || (tag && !strcmp(tag, YAML_STR_TAG));
        bool null = !quoted && (plain_null(s) || (tag && !strcmp(tag, YAML_NULL_TAG)));
        struct pl_node *n = pl_tree_node(b->t, null ? PL_NODE_NULL : PL_NODE_SCALAR, line, col);
        n->quoted = quoted;
        pl_tree_set_str(b->t, n, s, ev->data.scalar.length);
        add_anchor(b, ev->data.scalar.anchor, n);
        return attach(b, n, m);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (b->depth >= PL_TREE_MAX_DEPTH)
            return yerr(b, m, "nesting deeper than %s levels", "400");
        if (b->depth == b->stcap) {
            b->stcap = b->stcap ? b->stcap * 2 : 16;
            b->st = pl_realloc(b->st, b->stcap * sizeof(*b->st));
        }
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        const unsigned char *anchor =
            seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
        struct frame *f = &b->st[b->depth++];
        f->node = pl_tree_node(b->t, seq ? PL_NODE_SEQ : PL_NODE_MAP, line, col);
        f->anchor = anchor ? pl_strdup((const char *)anchor) : NULL;
        f->v = NULL;
        f->n = f->cap = 0;
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        struct frame *f = &b->st[--b->depth];
        struct pl_node *n = f->node;
        n->items = pl_tree_alloc(b->t, (f->n ? f->n : 1) * sizeof(*n->items));
        if (f->n)
            memcpy(n->items, f->v, f->n * sizeof(*n->items));
        n->len = n->type == PL_NODE_MAP ? f->n / 2 : f->n;
        free(f->v);
        /* registered only now so that an alias cannot point into its own ancestor (a cycle) */
        add_anchor(b, (const unsigned char *)f->anchor, n);
        free(f->anchor);
        return attach(b, n, m);
    }
    case YAML_ALIAS_EVENT: {
        struct pl_node *n = find_anchor(b, (const char *)ev->data.alias.anchor);
        if (!n)
            return yerr(b, m, "unknown anchor '%s'", (const char *)ev->data.alias.anchor);
        return attach(b, n, m);
    }
    default:
        return 0;
    }
}

/* libyaml reports encoding errors by byte offset only: turn it into a line and column. */
static void offset_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            ++*col;
        }
    }
}

static int parse_yaml(struct pl_tree *t, const char *text, size_t len, struct pl_err *err)
{
    struct ybuild b = {.t = t, .err = err};
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        pl_die("out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_MEMORY_ERROR)
                pl_die("out of memory");
            const char *what = p.problem ? p.problem : "invalid YAML";
            int line = (int)p.problem_mark.line + 1, col = (int)p.problem_mark.column + 1;
            if (p.error == YAML_READER_ERROR)
                offset_pos(text, len, p.problem_offset, &line, &col);
            if (p.context)
                rc = pl_err_add(err, t->name, line, col, NULL, "%s %s", p.context, what);
            else
                rc = pl_err_add(err, t->name, line, col, NULL, "%s", what);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    while (b.depth > 0) {
        free(b.st[b.depth - 1].v);
        free(b.st[--b.depth].anchor);
    }
    free(b.st);
    for (size_t i = 0; i < b.nanchors; i++)
        free(b.anchors[i].name);
    free(b.anchors);
    return rc;
}

/* Whether the text looks like JSON: its first significant character opens an object or list. */
static bool looks_json(const char *s, size_t len)
{
    size_t i = 0;
    if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
        i = 3;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i < len && (s[i] == '{' || s[i] == '[');
}

int pl_tree_load_text(const char *text, size_t len, const char *name, struct pl_tree **out,
                      struct pl_err *err)
{
    *out = NULL;
    struct pl_tree *t = pl_tree_new(name);
    if (len > PL_TREE_MAX_INPUT) {
        pl_err_add(err, t->name, 0, 0, NULL, "input larger than %u bytes", PL_TREE_MAX_INPUT);
        pl_tree_free(t);
        return PL_EINVAL;
    }
    int rc;
    if (looks_json(text, len)) {
        /* JSON first (libyaml rejects some valid JSON); YAML flow style as the fallback */
        struct pl_err jerr = PL_ERR_INIT;
        rc = pl_tree_parse_json(t, text, len, &jerr);
        if (rc < 0) {
            struct pl_err yerr_ = PL_ERR_INIT;
            t->root = NULL;
            rc = parse_yaml(t, text, len, &yerr_);
            pl_err_move(err, rc < 0 ? &jerr : &yerr_);
            pl_err_free(&yerr_);
        }
        pl_err_free(&jerr);
    } else {
        rc = parse_yaml(t, text, len, err);
    }
    if (rc < 0) {
        pl_tree_free(t);
        return PL_EINVAL;
    }
    if (!t->root)
        t->root = pl_tree_node(t, PL_NODE_NULL, 0, 0);
    *out = t;
    return 0;
}

int pl_tree_load_file(const char *path, struct pl_tree **out, struct pl_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pl_err_add(err, path, 0, 0, NULL, "cannot open: %s", strerror(errno)), PL_EIO;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pl_err_add(err, path, 0, 0, NULL, "not a regular file"), PL_EIO;
    }
    if ((uint64_t)st.st_size > PL_TREE_MAX_INPUT) {
        close(fd);
        return pl_err_add(err, path, 0, 0, NULL, "file larger than %u bytes", PL_TREE_MAX_INPUT);
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = pl_malloc(size + 1);
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            close(fd);
            free(buf);
            return pl_err_add(err, path, 0, 0, NULL, "cannot read: %s", strerror(e)), PL_EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = 0;
    int rc = pl_tree_load_text(buf, size, path, out, err);
    free(buf);
    return rc;
}
