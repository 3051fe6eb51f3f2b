/* proto3 JSON/YAML node tree -> protobuf-c message, generic over descriptors. */
#include "config/pbjson.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson_internal.h"
#include "config/tree_internal.h"
#include "pl_proto_all.h"

#define KEY_IN_PATH_MAX 200 /* longer map keys are shortened in paths */

struct dctx {
    struct pl_err *err;
    const char *file;
    struct pl_srcmap *map; /* NULL when the caller wants no positions */
    const struct pl_pbjson_opts *opts;
    char *path;
    size_t plen, pcap;
    bool failed;
    int max_depth;
};

union sval {
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
    float f;
    double d;
    protobuf_c_boolean b;
    int e;
    char *s;
    ProtobufCBinaryData bytes;
    ProtobufCMessage *msg;
};

static ProtobufCMessage *decode_msg(struct dctx *c, const struct pl_node *n,
                                    const ProtobufCMessageDescriptor *desc, int depth);
static void decode_fields(struct dctx *c, const struct pl_node *n,
                          const ProtobufCMessageDescriptor *desc, ProtobufCMessage *m, int depth,
                          bool skip_type);

__attribute__((format(printf, 3, 4))) static void derr(struct dctx *c, const struct pl_node *n,
                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->failed = true;
    pl_err_vadd(c->err, c->file, n ? n->line : 0, n ? n->col : 0, c->path, fmt, ap);
    va_end(ap);
}

/* ---- field paths ---- */

static void path_put(struct dctx *c, const char *s, size_t n)
{
    if (c->plen + n + 1 > c->pcap) {
        c->pcap = (c->plen + n + 1) * 2;
        c->path = pl_realloc(c->path, c->pcap);
    }
    memcpy(c->path + c->plen, s, n);
    c->plen += n;
    c->path[c->plen] = 0;
}

static size_t path_field(struct dctx *c, const char *name)
{
    size_t mark = c->plen;
    if (c->plen)
        path_put(c, ".", 1);
    path_put(c, name, strlen(name));
    return mark;
}

static size_t path_index(struct dctx *c, size_t i)
{
    size_t mark = c->plen;
    char b[32];
    int n = snprintf(b, sizeof(b), "[%zu]", i);
    path_put(c, b, (size_t)n);
    return mark;
}

static size_t path_key(struct dctx *c, const char *k, size_t len)
{
    size_t mark = c->plen;
    path_put(c, "[\"", 2);
    for (size_t i = 0; i < len && i < KEY_IN_PATH_MAX; i++) {
        if (k[i] == '"' || k[i] == '\\')
            path_put(c, "\\", 1);
        path_put(c, k[i] ? &k[i] : "?", 1);
    }
    if (len > KEY_IN_PATH_MAX)
        path_put(c, "...", 3);
    path_put(c, "\"]", 2);
    return mark;
}

static void path_pop(struct dctx *c, size_t mark)
{
    c->plen = mark;
    c->path[mark] = 0;
}

/* ---- scalars ---- */

static const char *kind_name(const struct pl_node *n)
{
    switch (n->type) {
    case PL_NODE_NULL:
        return "null";
    case PL_NODE_MAP:
        return "an object";
    case PL_NODE_SEQ:
        return "a list";
    default:
        return "a scalar";
    }
}

static const char *type_name(ProtobufCType t)
{
    static const char *const names[] = {
        [PROTOBUF_C_TYPE_INT32] = "int32",       [PROTOBUF_C_TYPE_SINT32] = "sint32",
        [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
        [PROTOBUF_C_TYPE_SINT64] = "sint64",     [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
        [PROTOBUF_C_TYPE_UINT32] = "uint32",     [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
        [PROTOBUF_C_TYPE_UINT64] = "uint64",     [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
        [PROTOBUF_C_TYPE_FLOAT] = "float",       [PROTOBUF_C_TYPE_DOUBLE] = "double",
        [PROTOBUF_C_TYPE_BOOL] = "bool",         [PROTOBUF_C_TYPE_ENUM] = "enum",
        [PROTOBUF_C_TYPE_STRING] = "string",     [PROTOBUF_C_TYPE_BYTES] = "bytes",
        [PROTOBUF_C_TYPE_MESSAGE] = "message",
    };
    return (unsigned)t < sizeof(names) / sizeof(names[0]) && names[t] ? names[t] : "value";
}

/* Decodes a scalar node into val for a field of type t (ed: its enum, if any). */
static int decode_scalar(struct dctx *c, ProtobufCType t, const ProtobufCEnumDescriptor *ed,
                         const struct pl_node *n, union sval *val)
{
    const char *tn = t == PROTOBUF_C_TYPE_ENUM ? ed->name : type_name(t);
    if (n->type != PL_NODE_SCALAR) {
        derr(c, n, "expected %s, got %s", tn, kind_name(n));
        return -1;
    }
    const char *s = n->str;
    bool plain = !n->quoted;
    if (t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_BYTES && strlen(s) != n->len) {
        derr(c, n, "invalid %s value", tn);
        return -1;
    }
    int rc = 0;
    int64_t i;
    uint64_t u;
    double d;
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = pl_pbjson_parse_int(s, INT32_MIN, INT32_MAX, &i);
        val->i32 = (int32_t)i;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        rc = pl_pbjson_parse_int(s, INT64_MIN, INT64_MAX, &i);
        val->i64 = i;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = pl_pbjson_parse_uint(s, UINT32_MAX, &u);
        val->u32 = (uint32_t)u;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = pl_pbjson_parse_uint(s, UINT64_MAX, &u);
        val->u64 = u;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        rc = pl_pbjson_parse_double(s, plain, &d);
        if (rc == 0 && t == PROTOBUF_C_TYPE_FLOAT && isfinite(d) && fabs(d) > FLT_MAX)
            rc = -2;
        if (t == PROTOBUF_C_TYPE_FLOAT)
            val->f = (float)d;
        else
            val->d = d;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        rc = pl_pbjson_parse_bool(s, plain, &val->b);
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
        if (ev) {
            val->e = ev->value;
        } else if (pl_pbjson_parse_int(s, INT32_MIN, INT32_MAX, &i) == 0 && pl_pbjson_int_text(s)) {
            val->e = (int)i;
        } else {
            derr(c, n, "unknown value '%.64s' for enum %s", s, ed->name);
            return -1;
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        if (!pl_utf8_valid(s, n->len)) {
            derr(c, n, "invalid UTF-8 in string");
            return -1;
        }
        if (strlen(s) != n->len) {
            derr(c, n, "NUL character in string");
            return -1;
        }
        val->s = pl_strndup(s, n->len);
        break;
    case PROTOBUF_C_TYPE_BYTES:
        if (pl_base64_decode(s, n->len, &val->bytes.data, &val->bytes.len) < 0) {
            derr(c, n, "invalid base64 in bytes value");
            return -1;
        }
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        return -1; /* not a scalar */
    }
    if (rc == -1)
        derr(c, n, "invalid %s value '%.64s'", tn, s);
    else if (rc == -2)
        derr(c, n, "value %.64s is out of range for %s", s, tn);
    return rc < 0 ? -1 : 0;
}

static bool is_null_value_enum(const ProtobufCFieldDescriptor *fd)
{
    return fd->type == PROTOBUF_C_TYPE_ENUM &&
           !strcmp(((const ProtobufCEnumDescriptor *)fd->descriptor)->name,
                   "google.protobuf.NullValue");
}

/* Whether JSON null is a value of the field (google.protobuf.Value, NullValue) not "unset". */
static bool takes_null(const ProtobufCFieldDescriptor *fd)
{
    return (fd->type == PROTOBUF_C_TYPE_MESSAGE && pl_wkt_kind(fd->descriptor) == PL_WKT_VALUE) ||
           is_null_value_enum(fd);
}

/* Decodes a field value (scalar or message) from n; -1 after reporting an error. */
static int decode_value(struct dctx *c, const ProtobufCFieldDescriptor *fd, const struct pl_node *n,
                        union sval *val, int depth)
{
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        val->msg = decode_msg(c, n, fd->descriptor, depth + 1);
        return val->msg ? 0 : -1;
    }
    if (n->type == PL_NODE_NULL && is_null_value_enum(fd)) {
        val->e = 0;
        return 0;
    }
    return decode_scalar(c, fd->type, fd->descriptor, n, val);
}

static void store(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const union sval *v)
{
    char *base = (char *)m;
    memcpy(base + fd->offset, v, pl_type_size(fd->type));
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)(base + fd->quantifier_offset) = fd->id;
    else if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_STRING &&
             fd->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)(base + fd->quantifier_offset) = 1;
}

static void store_array(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, void *arr,
                        size_t n)
{
    if (!n) {
        free(arr);
        arr = NULL;
    }
    *(size_t *)((char *)m + fd->quantifier_offset) = n;
    *(void **)((char *)m + fd->offset) = arr;
}

static ProtobufCMessage *new_msg(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = pl_malloc(d->sizeof_message);
    protobuf_c_message_init(d, m);
    return m;
}

/* ---- repeated fields and maps ---- */

static void decode_repeated(struct dctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                            const struct pl_node *n, int depth)
{
    if (n->type != PL_NODE_SEQ) {
        derr(c, n, "expected a list, got %s", kind_name(n));
        return;
    }
    size_t esz = pl_type_size(fd->type), cnt = 0;
    char *arr = pl_calloc(n->len ? n->len : 1, esz);
    for (size_t i = 0; i < n->len; i++) {
        const struct pl_node *item = n->items[i];
        size_t mark = path_index(c, i);
        union sval v;
        if (c->map)
            pl_srcmap_add_elem(c->map, m, fd, item->line, item->col);
        if (item->type == PL_NODE_NULL && !takes_null(fd))
            derr(c, item, "null is not allowed in a list");
        else if (decode_value(c, fd, item, &v, depth) == 0)
            memcpy(arr + cnt++ * esz, &v, esz);
        path_pop(c, mark);
    }
    store_array(m, fd, arr, cnt);
}

/* A set of strings (map keys seen so far), for duplicate detection in linear time. */
struct keyset {
    const struct pl_node **v;
    size_t cap;
};

static bool keyset_add(struct keyset *ks, const struct pl_node *k)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < k->len; i++)
        h = (h ^ (unsigned char)k->str[i]) * 1099511628211ull;
    for (size_t i = h & (ks->cap - 1);; i = (i + 1) & (ks->cap - 1)) {
        if (!ks->v[i]) {
            ks->v[i] = k;
            return true;
        }
        if (ks->v[i]->len == k->len && !memcmp(ks->v[i]->str, k->str, k->len))
            return false;
    }
}

static void decode_map(struct dctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                       const struct pl_node *n, int depth)
{
    if (n->type != PL_NODE_MAP) {
        derr(c, n, "expected an object, got %s", kind_name(n));
        return;
    }
    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    const ProtobufCFieldDescriptor *kfd = &ed->fields[0], *vfd = &ed->fields[1];
    ProtobufCMessage **arr = pl_calloc(n->len ? n->len : 1, sizeof(*arr));
    struct keyset ks = {NULL, 16};
    while (ks.cap < n->len * 2)
        ks.cap *= 2;
    ks.v = pl_calloc(ks.cap, sizeof(*ks.v));
    size_t cnt = 0;
    for (size_t i = 0; i < n->len; i++) {
        const struct pl_node *k = n->items[2 * i], *v = n->items[2 * i + 1];
        if (k->type != PL_NODE_SCALAR && k->type != PL_NODE_NULL) {
            derr(c, k, "map keys must be scalars, got %s", kind_name(k));
            continue;
        }
        size_t mark = path_key(c, k->str, k->len);
        if (!keyset_add(&ks, k)) {
            derr(c, k, "duplicate map key");
            path_pop(c, mark);
            continue;
        }
        ProtobufCMessage *e = new_msg(ed);
        arr[cnt++] = e;
        if (c->map)
            pl_srcmap_add_msg(c->map, e, c->file, c->path, k->line, k->col);
        struct pl_node kn = *k;
        kn.type = PL_NODE_SCALAR;
        kn.quoted = true; /* keys are strings in JSON: "true" is still a bool key */
        union sval kv, vv;
        if (decode_scalar(c, kfd->type, kfd->descriptor, &kn, &kv) == 0)
            store(e, kfd, &kv);
        if (v->type == PL_NODE_NULL && !takes_null(vfd))
            derr(c, v, "null is not allowed as a map value");
        else if (decode_value(c, vfd, v, &vv, depth) == 0)
            store(e, vfd, &vv);
        path_pop(c, mark);
    }
    free(ks.v);
    store_array(m, fd, arr, cnt);
}

/* ---- messages ---- */

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  const struct pl_node *k)
{
    if (strlen(k->str) != k->len)
        return NULL;
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(d, k->str);
    if (fd)
        return fd;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (pl_json_name_eq(d->fields[i].name, k->str))
            return &d->fields[i];
    return NULL;
}

static void decode_field(struct dctx *c, const ProtobufCMessageDescriptor *desc,
                         ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                         const struct pl_node *k, const struct pl_node *v, int depth)
{
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        if (pl_is_map_field(fd))
            decode_map(c, m, fd, v, depth);
        else
            decode_repeated(c, m, fd, v, depth);
        return;
    }
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t cs = *(uint32_t *)((char *)m + fd->quantifier_offset);
        if (cs && cs != fd->id) {
            const ProtobufCFieldDescriptor *o = protobuf_c_message_descriptor_get_field(desc, cs);
            derr(c, k, "fields '%s' and '%s' are in the same oneof: set only one",
                 o ? o->name : "?", fd->name);
            return;
        }
    }
    union sval val;
    if (decode_value(c, fd, v, &val, depth) == 0)
        store(m, fd, &val);
}

static void call_hook(struct dctx *c, const ProtobufCMessageDescriptor *desc,
                      const ProtobufCFieldDescriptor *fd, const struct pl_node *k)
{
    struct pl_srcloc loc = {.file = c->file, .line = k->line, .col = k->col};
    size_t n = c->plen < sizeof(loc.path) ? c->plen : sizeof(loc.path) - 1;
    memcpy(loc.path, c->path, n);
    loc.path[n] = 0;
    size_t before = c->err ? c->err->n : 0;
    if (c->opts->field_hook(c->opts->ud, desc, fd, &loc, c->err) < 0 ||
        (c->err && c->err->n > before))
        c->failed = true;
}

static void decode_fields(struct dctx *c, const struct pl_node *n,
                          const ProtobufCMessageDescriptor *desc, ProtobufCMessage *m, int depth,
                          bool skip_type)
{
    if (n->type != PL_NODE_MAP) {
        derr(c, n, "expected an object for %s, got %s", desc->name, kind_name(n));
        return;
    }
    unsigned char *seen = pl_calloc(desc->n_fields ? desc->n_fields : 1, 1);
    for (size_t i = 0; i < n->len; i++) {
        const struct pl_node *k = n->items[2 * i], *v = n->items[2 * i + 1];
        if (k->type != PL_NODE_SCALAR && k->type != PL_NODE_NULL) {
            derr(c, k, "field names must be scalars, got %s", kind_name(k));
            continue;
        }
        if (skip_type && !strcmp(k->str, "@type"))
            continue;
        const ProtobufCFieldDescriptor *fd = find_field(desc, k);
        size_t mark = path_field(c, fd ? fd->name : k->str);
        if (!fd) {
            derr(c, k, "unknown field '%.100s' in %s", k->str, desc->name);
        } else if (seen[fd - desc->fields]) {
            derr(c, k, "field '%s' is set more than once", fd->name);
        } else {
            seen[fd - desc->fields] = 1;
            if (v->type != PL_NODE_NULL || takes_null(fd)) {
                if (c->map)
                    pl_srcmap_add_field(c->map, m, fd, k->line, k->col);
                if (c->opts && c->opts->field_hook)
                    call_hook(c, desc, fd, k);
                decode_field(c, desc, m, fd, k, v, depth);
            }
        }
        path_pop(c, mark);
    }
    free(seen);
}

static void decode_any(struct dctx *c, const struct pl_node *n, ProtobufCMessage *m, int depth)
{
    Google__Protobuf__Any *any = (Google__Protobuf__Any *)m;
    if (n->type != PL_NODE_MAP) {
        derr(c, n, "expected an object for google.protobuf.Any, got %s", kind_name(n));
        return;
    }
    const struct pl_node *tn = NULL, *vn = NULL;
    for (size_t i = 0; i < n->len; i++) {
        const struct pl_node *k = n->items[2 * i];
        if (k->type != PL_NODE_SCALAR || strcmp(k->str, "@type") != 0)
            continue;
        if (tn)
            derr(c, k, "'@type' is set more than once");
        tn = n->items[2 * i + 1];
    }
    if (!tn) {
        if (n->len)
            derr(c, n, "google.protobuf.Any is missing '@type'");
        return;
    }
    if (tn->type != PL_NODE_SCALAR) {
        derr(c, tn, "'@type' must be a string, got %s", kind_name(tn));
        return;
    }
    const ProtobufCMessageDescriptor *d = pl_registry_find_type_url(tn->str);
    if (!d) {
        derr(c, tn, "unknown type URL '%.200s'", tn->str);
        return;
    }
    ProtobufCMessage *inner = NULL;
    enum pl_wkt kind = pl_wkt_kind(d);
    if (pl_wkt_any_uses_value(kind)) {
        for (size_t i = 0; i < n->len; i++) {
            const struct pl_node *k = n->items[2 * i];
            if (k->type == PL_NODE_SCALAR && !strcmp(k->str, "value"))
                vn = n->items[2 * i + 1];
            else if (k->type != PL_NODE_SCALAR || strcmp(k->str, "@type") != 0)
                derr(c, k, "unknown field '%.100s' in google.protobuf.Any holding %s",
                     k->type == PL_NODE_SCALAR ? k->str : "?", d->name);
        }
        if (vn && vn->type != PL_NODE_NULL) {
            inner = decode_msg(c, vn, d, depth + 1);
        } else {
            inner = new_msg(d);
            if (c->map)
                pl_srcmap_add_msg(c->map, inner, c->file, c->path, n->line, n->col);
        }
    } else if (depth + 1 > c->max_depth) {
        derr(c, n, "nesting deeper than %d levels", c->max_depth);
    } else {
        inner = new_msg(d);
        if (c->map)
            pl_srcmap_add_msg(c->map, inner, c->file, c->path, n->line, n->col);
        decode_fields(c, n, d, inner, depth + 1, true);
    }
    if (!inner)
        return;
    any->type_url = pl_strdup(tn->str);
    if (!c->failed) {
        size_t len = protobuf_c_message_get_packed_size(inner);
        any->value.data = pl_malloc(len);
        any->value.len = protobuf_c_message_pack(inner, any->value.data);
    }
    if (c->map)
        pl_srcmap_set_any_inner(c->map, m, inner);
    else
        protobuf_c_message_free_unpacked(inner, NULL);
}

static void decode_value_wkt(struct dctx *c, const struct pl_node *n, ProtobufCMessage *m,
                             int depth)
{
    Google__Protobuf__Value *v = (Google__Protobuf__Value *)m;
    double d;
    switch (n->type) {
    case PL_NODE_NULL:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
        v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
        return;
    case PL_NODE_MAP:
        v->struct_value = (Google__Protobuf__Struct *)decode_msg(
            c, n, &google__protobuf__struct__descriptor, depth + 1);
        if (v->struct_value)
            v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
        return;
    case PL_NODE_SEQ:
        v->list_value = (Google__Protobuf__ListValue *)decode_msg(
            c, n, &google__protobuf__list_value__descriptor, depth + 1);
        if (v->list_value)
            v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
        return;
    case PL_NODE_SCALAR:
        break;
    }
    if (!n->quoted && (!strcmp(n->str, "true") || !strcmp(n->str, "false"))) {
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        v->bool_value = n->str[0] == 't';
    } else if (!n->quoted && pl_pbjson_number_text(n->str)) {
        if (pl_pbjson_parse_double(n->str, false, &d) < 0) {
            derr(c, n, "number %.64s is out of range", n->str);
            return;
        }
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        v->number_value = d;
    } else {
        union sval s;
        if (decode_scalar(c, PROTOBUF_C_TYPE_STRING, NULL, n, &s) < 0)
            return;
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        v->string_value = s.s;
    }
}

static void decode_time(struct dctx *c, const struct pl_node *n, ProtobufCMessage *m, bool duration)
{
    const char *what = duration ? "duration" : "timestamp";
    if (n->type != PL_NODE_SCALAR) {
        derr(c, n, "expected a %s string, got %s", what, kind_name(n));
        return;
    }
    int64_t sec = 0;
    int32_t ns = 0;
    int rc = strlen(n->str) != n->len ? -1
             : duration               ? pl_duration_parse(n->str, &sec, &ns)
                                      : pl_timestamp_parse(n->str, &sec, &ns);
    if (rc == -1)
        derr(c, n, "invalid %s '%.64s'", what, n->str);
    else if (rc == -2)
        derr(c, n, "%s '%.64s' is out of range", what, n->str);
    if (rc < 0)
        return;
    if (duration) {
        ((Google__Protobuf__Duration *)m)->seconds = sec;
        ((Google__Protobuf__Duration *)m)->nanos = ns;
    } else {
        ((Google__Protobuf__Timestamp *)m)->seconds = sec;
        ((Google__Protobuf__Timestamp *)m)->nanos = ns;
    }
}

static ProtobufCMessage *decode_msg(struct dctx *c, const struct pl_node *n,
                                    const ProtobufCMessageDescriptor *desc, int depth)
{
    if (depth > c->max_depth) {
        derr(c, n, "nesting deeper than %d levels", c->max_depth);
        return NULL;
    }
    ProtobufCMessage *m = new_msg(desc);
    if (c->map)
        pl_srcmap_add_msg(c->map, m, c->file, c->path, n->line, n->col);
    union sval v;
    switch (pl_wkt_kind(desc)) {
    case PL_WKT_ANY:
        decode_any(c, n, m, depth);
        break;
    case PL_WKT_DURATION:
    case PL_WKT_TIMESTAMP:
        decode_time(c, n, m, pl_wkt_kind(desc) == PL_WKT_DURATION);
        break;
    case PL_WKT_STRUCT:
        if (n->type != PL_NODE_MAP)
            derr(c, n, "expected an object for google.protobuf.Struct, got %s", kind_name(n));
        else
            decode_map(c, m, &desc->fields[0], n, depth);
        break;
    case PL_WKT_LIST:
        decode_repeated(c, m, &desc->fields[0], n, depth);
        break;
    case PL_WKT_VALUE:
        decode_value_wkt(c, n, m, depth);
        break;
    case PL_WKT_WRAPPER:
        if (decode_scalar(c, desc->fields[0].type, NULL, n, &v) == 0)
            store(m, &desc->fields[0], &v);
        break;
    case PL_WKT_FIELDMASK: /* not compiled in; decoded as a plain message */
    case PL_WKT_EMPTY:
    case PL_WKT_NONE:
        decode_fields(c, n, desc, m, depth, false);
        break;
    }
    return m;
}

/* ---- entry points ---- */

int pl_pbjson_from_node(const struct pl_node *node, const ProtobufCMessageDescriptor *desc,
                        const char *file, const char *base_path, const struct pl_pbjson_opts *opts,
                        ProtobufCMessage **out, struct pl_srcmap **map, struct pl_err *err)
{
    struct dctx c = {.err = err, .file = file, .opts = opts};
    c.max_depth = opts && opts->max_depth > 0 ? opts->max_depth : PL_PBJSON_MAX_DEPTH;
    path_put(&c, "", 0);
    if (base_path)
        path_put(&c, base_path, strlen(base_path));
    if (map)
        c.map = pl_srcmap_new();
    ProtobufCMessage *m;
    if (node->type == PL_NODE_NULL) {
        m = new_msg(desc); /* an empty document is an empty message */
        if (c.map)
            pl_srcmap_add_msg(c.map, m, file, c.path, node->line, node->col);
    } else {
        m = decode_msg(&c, node, desc, 1);
    }
    free(c.path);
    if (c.failed || !m) {
        protobuf_c_message_free_unpacked(m, NULL);
        pl_srcmap_free(c.map);
        *out = NULL;
        return PL_EINVAL;
    }
    if (map && *map)
        pl_srcmap_merge(*map, c.map);
    else if (map)
        *map = c.map;
    *out = m;
    return 0;
}

int pl_pbjson_load_text(const char *text, size_t len, const char *name,
                        const ProtobufCMessageDescriptor *desc, const struct pl_pbjson_opts *opts,
                        ProtobufCMessage **out, struct pl_srcmap **map, struct pl_err *err)
{
    struct pl_tree *t;
    *out = NULL;
    int rc = pl_tree_load_text(text, len, name, &t, err);
    if (rc < 0)
        return rc;
    rc = pl_pbjson_from_node(pl_tree_root(t), desc, pl_tree_name(t), NULL, opts, out, map, err);
    pl_tree_free(t);
    return rc;
}

int pl_pbjson_load_file(const char *path, const ProtobufCMessageDescriptor *desc,
                        const struct pl_pbjson_opts *opts, ProtobufCMessage **out,
                        struct pl_srcmap **map, struct pl_err *err)
{
    struct pl_tree *t;
    *out = NULL;
    int rc = pl_tree_load_file(path, &t, err);
    if (rc < 0)
        return rc;
    rc = pl_pbjson_from_node(pl_tree_root(t), desc, path, NULL, opts, out, map, err);
    pl_tree_free(t);
    return rc;
}

int pl_any_unpack(const ProtobufCMessage *any, const struct pl_srcmap *map,
                  const ProtobufCMessageDescriptor *expect, ProtobufCMessage **out, bool *owned,
                  struct pl_err *err)
{
    *out = NULL;
    *owned = false;
    if (!any || pl_wkt_kind(any->descriptor) != PL_WKT_ANY)
        return pl_err_at(err, map, any, NULL, "not a google.protobuf.Any");
    const Google__Protobuf__Any *a = (const Google__Protobuf__Any *)any;
    const char *url = a->type_url ? a->type_url : "";
    if (!*url)
        return pl_err_at(err, map, any, NULL, "google.protobuf.Any has no type URL");
    const ProtobufCMessageDescriptor *d = pl_registry_find_type_url(url);
    if (expect && (!d || strcmp(d->name, expect->name) != 0))
        return pl_err_at(err, map, any, NULL, "expected type %s, got '%s'", expect->name, url);
    if (!d)
        return pl_err_at(err, map, any, NULL, "unknown type URL '%s'", url);
    const ProtobufCMessage *inner = pl_srcmap_any_inner(map, any);
    if (inner && inner->descriptor == d) {
        *out = (ProtobufCMessage *)inner;
        return 0;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, a->value.len, a->value.data);
    if (!m)
        return pl_err_at(err, map, any, NULL, "cannot decode the %s payload", d->name);
    *out = m;
    *owned = true;
    return 0;
}
