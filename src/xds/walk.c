/* The support check for binary resources: what the JSON decoder's field hook does for text,
 * done over a decoded message's set fields (Any payloads included). */
#include <stdlib.h>
#include <string.h>

#include "config/registry.h"
#include "config/support.h"
#include "xds/xds_internal.h"

#define MAX_DEPTH 100

/* The path of the field being walked, kept as a stack of names and indexes and spelled out
 * only for an error: a resource has hundreds of set fields and very rarely an error. */
struct frame {
    const char *name; /* NULL: an index */
    size_t idx;
};

struct walk {
    struct pl_err *err;
    size_t n_inert;
    int rc;
    const char *prefix;
    struct frame f[2 * MAX_DEPTH + 8];
    size_t n;
    char path[1024]; /* spelled out by path_str */
};

/* What walk_msg needs to know of a message type, by descriptor (descriptors are static). */
enum { KIND_PLAIN = 1, KIND_MAP_ENTRY, KIND_DATA };

/* Upstream fields our proto/ leaves out (proto/OMITTED.md): a resource that sets one decodes with
 * it as an unknown field, and the NACK names it as Envoy's API does. */
static const struct {
    const char *msg;
    uint32_t number;
    const char *name;
} omitted[] = {
    {"envoy.config.core.v3.Node", 12, "dynamic_parameters"},
    {"envoy.config.core.v3.ConfigSource", 7, "authorities"},
    {"envoy.type.matcher.v3.StringMatcher", 8, "custom"},
    {"envoy.config.route.v3.VirtualHost", 21, "matcher"},
    {"envoy.config.listener.v3.Listener", 32, "filter_chain_matcher"},
};

static const char *omitted_name(const char *msg, uint32_t number)
{
    for (size_t i = 0; i < sizeof(omitted) / sizeof(omitted[0]); i++)
        if (omitted[i].number == number && !strcmp(omitted[i].msg, msg))
            return omitted[i].name;
    return NULL;
}

/* A NACK entry for each field number m's schema lacks (once per number, a repeated field comes
 * as several), named when it is a known upstream field. */
static void unknown_fields(struct walk *w, const ProtobufCMessage *m, const char *path)
{
    const char *msg = m->descriptor->name;
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        uint32_t number = m->unknown_fields[i].tag;
        bool seen = false;
        for (unsigned j = 0; j < i && !seen; j++)
            seen = m->unknown_fields[j].tag == number;
        if (seen)
            continue;
        const char *name = omitted_name(msg, number);
        if (!name) {
            w->rc = pl_err_add(w->err, NULL, 0, 0, path,
                               "field number %u of %s is not known to pillion (not implemented)",
                               number, msg);
            continue;
        }
        char *fpath = *path ? pl_asprintf("%s.%s", path, name) : pl_strdup(name);
        w->rc = pl_err_add(w->err, NULL, 0, 0, fpath,
                           "field '%s' (field number %u) of %s is not supported by pillion", name,
                           number, msg);
        free(fpath);
    }
}

/* pl_support_field by field descriptor (descriptors are static): the support table is searched
 * by name once per field, not once per set field of every resource. Main thread only. */
#define SUPPORT_CACHE 4096
static struct {
    const ProtobufCFieldDescriptor *f;
    int v;
} support_cache[SUPPORT_CACHE];

static int support_of(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
    size_t h = ((uintptr_t)f >> 4) * 0x9e3779b97f4a7c15ULL >> 52; /* 12 bits */
    for (size_t k = 0; k < 8; k++) {
        size_t i = (h + k) & (SUPPORT_CACHE - 1);
        if (support_cache[i].f == f)
            return support_cache[i].v;
        if (!support_cache[i].f) {
            support_cache[i].v = pl_support_field(d->name, f->name);
            support_cache[i].f = f;
            return support_cache[i].v;
        }
    }
    return pl_support_field(d->name, f->name);
}

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t n = strlen(d->name);
    return d->n_fields == 2 && n > 5 && !strcmp(d->name + n - 5, "Entry") &&
           !strcmp(d->fields[0].name, "key") && !strcmp(d->fields[1].name, "value");
}

#define KIND_CACHE 1024
static struct {
    const ProtobufCMessageDescriptor *d;
    int kind;
} kind_cache[KIND_CACHE];

/* KIND_DATA for google.protobuf types (Struct, wrappers, Duration), KIND_MAP_ENTRY, or
 * KIND_PLAIN; cached per descriptor. Main thread only. */
static int kind_of(const ProtobufCMessageDescriptor *d)
{
    size_t h = ((uintptr_t)d >> 4) * 0x9e3779b97f4a7c15ULL >> 54; /* 10 bits */
    size_t i = h;
    for (size_t k = 1; k <= 8; k++) {
        if (kind_cache[i].d == d)
            return kind_cache[i].kind;
        if (!kind_cache[i].d)
            break;
        i = (h + k) & (KIND_CACHE - 1);
    }
    int kind = !strncmp(d->name, "google.protobuf.", 16) ? KIND_DATA
               : is_map_entry(d)                         ? KIND_MAP_ENTRY
                                                         : KIND_PLAIN;
    if (!kind_cache[i].d) {
        kind_cache[i].d = d;
        kind_cache[i].kind = kind;
    }
    return kind;
}

/* The fields of a message type that walk_msg must look at: those not plainly supported (an
 * error or an inert count when set) and messages it descends into. A supported scalar, string
 * or data message (wrapper, Duration, Struct) does nothing when set, and most fields of a
 * resource are such: an endpoint's SocketAddress has six fields and two to look at. Cached per
 * descriptor. Main thread only. */
struct visit {
    const ProtobufCMessageDescriptor *d;
    int kind; /* kind_of(d) */
    uint16_t *idx;
    unsigned n;
};

#define VISIT_CACHE 1024
static struct visit visit_cache[VISIT_CACHE];

static bool must_visit(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                       bool entry)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessageDescriptor *sub = f->descriptor;
        if (sub == &google__protobuf__any__descriptor || kind_of(sub) != KIND_DATA)
            return true;
    }
    return !entry && support_of(d, f) != PL_SUPPORT_YES;
}

/* The cached visit list of d, or NULL when the cache is full (then every field is looked at). */
static const struct visit *visit_of(const ProtobufCMessageDescriptor *d)
{
    size_t h = ((uintptr_t)d >> 4) * 0x9e3779b97f4a7c15ULL >> 54; /* 10 bits */
    for (size_t k = 0; k < 8; k++) {
        struct visit *v = &visit_cache[(h + k) & (VISIT_CACHE - 1)];
        if (v->d == d)
            return v;
        if (v->d)
            continue;
        if (d->n_fields >= 65536)
            return NULL;
        v->kind = kind_of(d);
        bool entry = v->kind == KIND_MAP_ENTRY;
        v->idx = pl_calloc(d->n_fields + 1, sizeof(*v->idx));
        for (unsigned i = 0; i < d->n_fields; i++)
            if (must_visit(d, &d->fields[i], entry))
                v->idx[v->n++] = (uint16_t)i;
        v->d = d;
        return v;
    }
    return NULL;
}

/* Returns how many values field f has in m (0 when unset; 1 for a set singular field). */
static size_t field_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(base + f->quantifier_offset);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    const void *p = base + f->offset;
    switch (f->type) {
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)p != NULL;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s && *s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len > 0;
    default:
        break;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)p != 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)p != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p != 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p != 0;
    default: /* 32-bit integers and enums */
        return *(const uint32_t *)p != 0;
    }
}

static void walk_msg(struct walk *w, const ProtobufCMessage *m, int depth);

/* Spells out the current path into w->path (cut at its size). */
static const char *path_str(struct walk *w)
{
    size_t len = 0, cap = sizeof(w->path) - 1;
    char num[24];
#define PUT(p, n)                                                                                  \
    do {                                                                                           \
        size_t n_ = (n) < cap - len ? (n) : cap - len;                                             \
        memcpy(w->path + len, (p), n_);                                                            \
        len += n_;                                                                                 \
    } while (0)
    PUT(w->prefix, strlen(w->prefix));
    for (size_t i = 0; i < w->n; i++) {
        if (w->f[i].name) {
            if (len)
                PUT(".", 1);
            PUT(w->f[i].name, strlen(w->f[i].name));
        } else {
            int k = snprintf(num, sizeof(num), "[%zu]", w->f[i].idx);
            PUT(num, (size_t)k);
        }
    }
#undef PUT
    w->path[len] = '\0';
    return w->path;
}

/* Pushes a field name or (name NULL) an index; returns the old depth, for path_pop. */
static size_t path_push(struct walk *w, const char *name, size_t idx)
{
    size_t old = w->n;
    if (w->n < sizeof(w->f) / sizeof(w->f[0]))
        w->f[w->n++] = (struct frame){name, idx};
    return old;
}

static void path_pop(struct walk *w, size_t old)
{
    w->n = old;
}

static void walk_any(struct walk *w, const Google__Protobuf__Any *a, int depth)
{
    const ProtobufCMessageDescriptor *d = pl_registry_find_type_url(a->type_url);
    if (!d)
        return; /* semantic validation names unknown extension types */
    ProtobufCMessage *inner = protobuf_c_message_unpack(d, NULL, a->value.len, a->value.data);
    if (!inner) {
        w->rc = pl_err_add(w->err, NULL, 0, 0, path_str(w), "cannot decode %s", a->type_url);
        return;
    }
    walk_msg(w, inner, depth + 1);
    protobuf_c_message_free_unpacked(inner, NULL);
}

static void walk_msg(struct walk *w, const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (depth > MAX_DEPTH) {
        w->rc = pl_err_add(w->err, NULL, 0, 0, path_str(w), "nested too deeply");
        return;
    }
    if (d == &google__protobuf__any__descriptor) {
        walk_any(w, (const Google__Protobuf__Any *)m, depth);
        return;
    }
    const struct visit *vis = visit_of(d);
    int kind = vis ? vis->kind : kind_of(d);
    if (kind == KIND_DATA)
        return; /* data: Struct, wrappers, Duration */
    if (m->n_unknown_fields)
        unknown_fields(w, m, path_str(w));
    bool entry = kind == KIND_MAP_ENTRY;
    if (depth + 1 >= MAX_DEPTH)
        vis = NULL; /* a data message there would still be "nested too deeply": look at all */
    unsigned n_visit = vis ? vis->n : d->n_fields;
    for (unsigned k = 0; k < n_visit; k++) {
        const ProtobufCFieldDescriptor *f = &d->fields[vis ? vis->idx[k] : k];
        size_t n = field_count(m, f);
        if (n == 0)
            continue;
        size_t at = path_push(w, f->name, 0);
        if (!entry) {
            switch (support_of(d, f)) {
            case PL_SUPPORT_YES:
                break;
            case PL_SUPPORT_INERT:
                w->n_inert++;
                break;
            case PL_SUPPORT_NO:
                w->rc =
                    pl_err_add(w->err, NULL, 0, 0, path_str(w),
                               "field '%s' of %s is not supported by pillion", f->name, d->name);
                path_pop(w, at);
                continue;
            }
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const char *base = (const char *)m + f->offset;
            if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)base;
                for (size_t j = 0; j < n; j++) {
                    size_t at2 = path_push(w, NULL, j);
                    walk_msg(w, v[j], depth + 1);
                    path_pop(w, at2);
                }
            } else {
                walk_msg(w, *(ProtobufCMessage *const *)base, depth + 1);
            }
        }
        path_pop(w, at);
    }
}

int pl_xds_check_fields(const ProtobufCMessage *m, const char *prefix, size_t *n_inert,
                        struct pl_err *err)
{
    struct walk w; /* on the stack, not zeroed: a large calloc per resource consolidated the
                      heap's fast bins each time */
    w.err = err;
    w.n_inert = 0;
    w.rc = 0;
    w.prefix = prefix ? prefix : "";
    w.n = 0;
    walk_msg(&w, m, 0);
    if (n_inert)
        *n_inert += w.n_inert;
    return w.rc < 0 ? PL_EINVAL : 0;
}
