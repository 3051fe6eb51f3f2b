/* The support check for binary resources: what the JSON decoder's field hook does for text,
 * done over a decoded message's set fields (Any payloads included). */
#include <stdlib.h>
#include <string.h>

#include "config/registry.h"
#include "config/support.h"
#include "xds/xds_internal.h"

#define MAX_DEPTH 100

struct walk {
    struct pl_err *err;
    size_t n_inert;
    int rc;
};

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

/* A NACK for a field number m's schema lacks, named when it is a known upstream field. */
static void unknown_field(struct walk *w, const ProtobufCMessage *m, const char *path)
{
    const char *msg = m->descriptor->name;
    uint32_t number = m->unknown_fields[0].tag;
    const char *name = omitted_name(msg, number);
    if (!name) {
        w->rc = pl_err_add(w->err, NULL, 0, 0, path,
                           "field number %u of %s is not known to pillion (not implemented)",
                           number, msg);
        return;
    }
    char *fpath = *path ? pl_asprintf("%s.%s", path, name) : pl_strdup(name);
    w->rc = pl_err_add(w->err, NULL, 0, 0, fpath,
                       "field '%s' (field number %u) of %s is not supported by pillion", name,
                       number, msg);
    free(fpath);
}

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t n = strlen(d->name);
    return d->n_fields == 2 && n > 5 && !strcmp(d->name + n - 5, "Entry") &&
           !strcmp(d->fields[0].name, "key") && !strcmp(d->fields[1].name, "value");
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

static void walk_msg(struct walk *w, const ProtobufCMessage *m, const char *path, int depth);

static void walk_any(struct walk *w, const Google__Protobuf__Any *a, const char *path, int depth)
{
    const ProtobufCMessageDescriptor *d = pl_registry_find_type_url(a->type_url);
    if (!d)
        return; /* semantic validation names unknown extension types */
    ProtobufCMessage *inner = protobuf_c_message_unpack(d, NULL, a->value.len, a->value.data);
    if (!inner) {
        w->rc = pl_err_add(w->err, NULL, 0, 0, path, "cannot decode %s", a->type_url);
        return;
    }
    walk_msg(w, inner, path, depth + 1);
    protobuf_c_message_free_unpacked(inner, NULL);
}

static void walk_msg(struct walk *w, const ProtobufCMessage *m, const char *path, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (depth > MAX_DEPTH) {
        w->rc = pl_err_add(w->err, NULL, 0, 0, path, "nested too deeply");
        return;
    }
    if (d == &google__protobuf__any__descriptor) {
        walk_any(w, (const Google__Protobuf__Any *)m, path, depth);
        return;
    }
    if (!strncmp(d->name, "google.protobuf.", 16))
        return; /* data: Struct, wrappers, Duration */
    if (m->n_unknown_fields)
        unknown_field(w, m, path);
    bool entry = is_map_entry(d);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        size_t n = field_count(m, f);
        if (n == 0)
            continue;
        char *fpath = *path ? pl_asprintf("%s.%s", path, f->name) : pl_strdup(f->name);
        if (!entry) {
            switch (pl_support_field(d->name, f->name)) {
            case PL_SUPPORT_YES:
                break;
            case PL_SUPPORT_INERT:
                w->n_inert++;
                break;
            case PL_SUPPORT_NO:
                w->rc =
                    pl_err_add(w->err, NULL, 0, 0, fpath,
                               "field '%s' of %s is not supported by pillion", f->name, d->name);
                free(fpath);
                continue;
            }
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const char *base = (const char *)m + f->offset;
            if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)base;
                for (size_t j = 0; j < n; j++) {
                    char *ep = pl_asprintf("%s[%zu]", fpath, j);
                    walk_msg(w, v[j], ep, depth + 1);
                    free(ep);
                }
            } else {
                walk_msg(w, *(ProtobufCMessage *const *)base, fpath, depth + 1);
            }
        }
        free(fpath);
    }
}

int pl_xds_check_fields(const ProtobufCMessage *m, const char *prefix, size_t *n_inert,
                        struct pl_err *err)
{
    struct walk w = {.err = err};
    walk_msg(&w, m, prefix ? prefix : "", 0);
    if (n_inert)
        *n_inert += w.n_inert;
    return w.rc < 0 ? PL_EINVAL : 0;
}
