/* protobuf-c message -> proto3 JSON text (Envoy config_dump style), generic over descriptors. */
#include "config/pbjson.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson_internal.h"
#include "pl_proto_all.h"

struct jw {
    char *s;
    size_t len, cap;
    int flags;
    int indent;
};

static void put(struct jw *w, const char *s, size_t n)
{
    if (w->len + n + 1 > w->cap) {
        w->cap = (w->len + n + 1) * 2;
        w->s = pl_realloc(w->s, w->cap);
    }
    memcpy(w->s + w->len, s, n);
    w->len += n;
    w->s[w->len] = 0;
}

static void puts_(struct jw *w, const char *s)
{
    put(w, s, strlen(s));
}

static void newline(struct jw *w)
{
    if (!(w->flags & PL_PBJSON_PRETTY))
        return;
    put(w, "\n", 1);
    for (int i = 0; i < w->indent; i++)
        put(w, "  ", 2);
}

/* A JSON string; invalid UTF-8 (possible in unpacked bytes) becomes U+FFFD. */
static void put_str(struct jw *w, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    put(w, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(w, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            if (named)
                puts_(w, named);
            else {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                puts_(w, esc);
            }
            i++;
        } else {
            size_t k = pl_utf8_seq(p + i, n - i);
            if (k)
                put(w, s + i, k);
            else
                puts_(w, "\xEF\xBF\xBD");
            i += k ? k : 1;
        }
    }
    put(w, "\"", 1);
}

struct obj {
    bool any;
};

static void key(struct jw *w, struct obj *o, const char *name, bool camel)
{
    if (o->any)
        put(w, ",", 1);
    o->any = true;
    newline(w);
    put(w, "\"", 1);
    if (camel) {
        bool up = false;
        for (const char *p = name; *p; p++) {
            if (*p == '_') {
                up = true;
                continue;
            }
            char c = *p;
            if (up && c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            up = false;
            put(w, &c, 1);
        }
    } else {
        puts_(w, name);
    }
    puts_(w, w->flags & PL_PBJSON_PRETTY ? "\": " : "\":");
}

static void open_(struct jw *w, const char *b)
{
    puts_(w, b);
    w->indent++;
}

static void close_(struct jw *w, const char *b, bool any)
{
    w->indent--;
    if (any)
        newline(w);
    puts_(w, b);
}

static void fmt_double(char *buf, size_t cap, double d, bool single)
{
    for (int p = single ? 6 : 15; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, d);
        if (single ? (float)strtod(buf, NULL) == (float)d : strtod(buf, NULL) == d)
            return;
    }
}

static void put_double(struct jw *w, double d, bool single)
{
    char b[40];
    if (isnan(d))
        puts_(w, "\"NaN\"");
    else if (isinf(d))
        puts_(w, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else {
        fmt_double(b, sizeof(b), d, single);
        puts_(w, b);
    }
}

static void print_msg(struct jw *w, const ProtobufCMessage *m, int depth);

static void print_scalar(struct jw *w, const ProtobufCFieldDescriptor *fd, const void *p, int depth)
{
    char b[48];
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(b, sizeof(b), "%d", *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(b, sizeof(b), "%u", *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(b, sizeof(b), "\"%lld\"", (long long)*(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(b, sizeof(b), "\"%llu\"", (unsigned long long)*(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        put_double(w, *(const float *)p, true);
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        put_double(w, *(const double *)p, false);
        return;
    case PROTOBUF_C_TYPE_BOOL:
        puts_(w, *(const protobuf_c_boolean *)p ? "true" : "false");
        return;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(fd->descriptor, v);
        if (ev) {
            put_str(w, ev->name, strlen(ev->name));
            return;
        }
        snprintf(b, sizeof(b), "%d", v);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        put_str(w, s ? s : "", s ? strlen(s) : 0);
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        char *s = pl_base64_encode(bd->data, bd->len);
        put_str(w, s, strlen(s));
        free(s);
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        print_msg(w, *(ProtobufCMessage *const *)p, depth + 1);
        return;
    }
    puts_(w, b);
}

/* Whether a singular field holds something worth printing (proto3 omits defaults). */
static bool present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    const char *base = (const char *)m;
    const void *p = base + fd->offset;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
    if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_STRING &&
        fd->type != PROTOBUF_C_TYPE_MESSAGE)
        return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s && (*s || fd->label == PROTOBUF_C_LABEL_OPTIONAL);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p != NULL;
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len > 0;
    default: {
        static const unsigned char zero[8];
        return memcmp(p, zero, pl_type_size(fd->type)) != 0;
    }
    }
}

static void print_map_key(struct jw *w, struct obj *o, const ProtobufCMessage *e)
{
    const ProtobufCFieldDescriptor *kfd = &e->descriptor->fields[0];
    const void *p = (const char *)e + kfd->offset;
    char b[48];
    const char *k = b;
    switch (kfd->type) {
    case PROTOBUF_C_TYPE_STRING:
        k = *(char *const *)p ? *(char *const *)p : "";
        break;
    case PROTOBUF_C_TYPE_BOOL:
        k = *(const protobuf_c_boolean *)p ? "true" : "false";
        break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(b, sizeof(b), "%d", *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(b, sizeof(b), "%u", *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(b, sizeof(b), "%llu", (unsigned long long)*(const uint64_t *)p);
        break;
    default:
        snprintf(b, sizeof(b), "%lld", (long long)*(const int64_t *)p);
        break;
    }
    if (o->any)
        put(w, ",", 1);
    o->any = true;
    newline(w);
    put_str(w, k, strlen(k));
    puts_(w, w->flags & PL_PBJSON_PRETTY ? ": " : ":");
}

static void print_map(struct jw *w, ProtobufCMessage *const *v, size_t n, int depth)
{
    struct obj o = {false};
    open_(w, "{");
    for (size_t i = 0; i < n; i++) {
        print_map_key(w, &o, v[i]);
        const ProtobufCFieldDescriptor *vfd = &v[i]->descriptor->fields[1];
        const void *p = (const char *)v[i] + vfd->offset;
        if (vfd->type == PROTOBUF_C_TYPE_MESSAGE && !*(ProtobufCMessage *const *)p)
            puts_(w, pl_wkt_kind(vfd->descriptor) == PL_WKT_VALUE ? "null" : "{}");
        else
            print_scalar(w, vfd, p, depth);
    }
    close_(w, "}", o.any);
}

static void print_repeated(struct jw *w, const ProtobufCMessage *m,
                           const ProtobufCFieldDescriptor *fd, int depth)
{
    size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
    const char *arr = *(char *const *)((const char *)m + fd->offset);
    if (pl_is_map_field(fd)) {
        print_map(w, (ProtobufCMessage *const *)arr, n, depth);
        return;
    }
    size_t esz = pl_type_size(fd->type);
    open_(w, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(w, ",", 1);
        newline(w);
        print_scalar(w, fd, arr + i * esz, depth);
    }
    close_(w, "]", n > 0);
}

static void print_fields(struct jw *w, struct obj *o, const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    bool camel = !(w->flags & PL_PBJSON_PROTO_NAMES);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            if (*(const size_t *)((const char *)m + fd->quantifier_offset) == 0)
                continue;
            key(w, o, fd->name, camel);
            print_repeated(w, m, fd, depth);
        } else if (present(m, fd)) {
            key(w, o, fd->name, camel);
            print_scalar(w, fd, (const char *)m + fd->offset, depth);
        }
    }
}

static void print_any(struct jw *w, const ProtobufCMessage *m, int depth)
{
    const Google__Protobuf__Any *a = (const Google__Protobuf__Any *)m;
    if (!a->type_url || !*a->type_url) {
        puts_(w, "{}");
        return;
    }
    const ProtobufCMessageDescriptor *d = pl_registry_find_type_url(a->type_url);
    ProtobufCMessage *inner =
        d ? protobuf_c_message_unpack(d, NULL, a->value.len, a->value.data) : NULL;
    struct obj o = {false};
    open_(w, "{");
    key(w, &o, "@type", false);
    put_str(w, a->type_url, strlen(a->type_url));
    if (!inner) {
        key(w, &o, "value", false);
        char *s = pl_base64_encode(a->value.data, a->value.len);
        put_str(w, s, strlen(s));
        free(s);
    } else if (pl_wkt_any_uses_value(pl_wkt_kind(d))) {
        key(w, &o, "value", false);
        print_msg(w, inner, depth + 1);
    } else {
        print_fields(w, &o, inner, depth + 1);
    }
    close_(w, "}", o.any);
    protobuf_c_message_free_unpacked(inner, NULL);
}

static void print_value(struct jw *w, const Google__Protobuf__Value *v, int depth)
{
    switch (v->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
        put_double(w, v->number_value, false);
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
        put_str(w, v->string_value, strlen(v->string_value));
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        puts_(w, v->bool_value ? "true" : "false");
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        print_msg(w, &v->struct_value->base, depth + 1);
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        print_msg(w, &v->list_value->base, depth + 1);
        break;
    default:
        puts_(w, "null");
        break;
    }
}

static void print_msg(struct jw *w, const ProtobufCMessage *m, int depth)
{
    if (!m || depth > 4 * PL_PBJSON_MAX_DEPTH) {
        puts_(w, "null");
        return;
    }
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char b[PL_TIME_BUF];
    struct obj o = {false};
    switch (pl_wkt_kind(d)) {
    case PL_WKT_ANY:
        print_any(w, m, depth);
        return;
    case PL_WKT_DURATION: {
        const Google__Protobuf__Duration *x = (const Google__Protobuf__Duration *)m;
        pl_duration_format(x->seconds, x->nanos, b);
        put_str(w, b, strlen(b));
        return;
    }
    case PL_WKT_TIMESTAMP: {
        const Google__Protobuf__Timestamp *x = (const Google__Protobuf__Timestamp *)m;
        pl_timestamp_format(x->seconds, x->nanos, b);
        put_str(w, b, strlen(b));
        return;
    }
    case PL_WKT_STRUCT:
        print_repeated(w, m, &d->fields[0], depth);
        return;
    case PL_WKT_LIST:
        print_repeated(w, m, &d->fields[0], depth);
        return;
    case PL_WKT_VALUE:
        print_value(w, (const Google__Protobuf__Value *)m, depth);
        return;
    case PL_WKT_WRAPPER:
        print_scalar(w, &d->fields[0], (const char *)m + d->fields[0].offset, depth);
        return;
    default:
        open_(w, "{");
        print_fields(w, &o, m, depth);
        close_(w, "}", o.any);
        return;
    }
}

char *pl_pbjson_print(const ProtobufCMessage *m, int flags)
{
    struct jw w = {.flags = flags};
    print_msg(&w, m, 0);
    return w.s;
}

int pl_pbjson_fprint(FILE *f, const ProtobufCMessage *m, int flags)
{
    char *s = pl_pbjson_print(m, flags);
    size_t n = strlen(s);
    int rc = fwrite(s, 1, n, f) == n ? 0 : PL_EIO;
    free(s);
    return rc;
}
