/* json_format (a google.protobuf.Struct of format strings) and SubstitutionFormatString. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/access_log_internal.h"

#define VAL(x)  GOOGLE__PROTOBUF__VALUE__KIND_##x
#define SFS(x)  ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_##x
#define DSRC(x) ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_##x

/* Escapes out[from..len) as JSON string content, in place. */
static void escape_from(struct pl_al_buf *out, size_t from)
{
    size_t extra = 0;
    for (size_t i = from; i < out->len; i++) {
        unsigned char c = (unsigned char)out->p[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            extra += 1;
        else if (c < 0x20)
            extra += 5;
    }
    if (!extra)
        return;
    size_t old = out->len;
    char pad[64] = {0};
    for (size_t left = extra; left;) { /* grow by extra bytes */
        size_t k = left < sizeof(pad) ? left : sizeof(pad);
        pl_al_buf_put(out, pad, k);
        left -= k;
    }
    char *p = out->p;
    size_t w = out->len;
    for (size_t r = old; r > from;) {
        unsigned char c = (unsigned char)p[--r];
        const char *esc = NULL;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc) {
            p[--w] = esc[1];
            p[--w] = esc[0];
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            p[--w] = hex[c & 15];
            p[--w] = hex[c >> 4];
            p[--w] = '0';
            p[--w] = '0';
            p[--w] = 'u';
            p[--w] = '\\';
        } else {
            p[--w] = (char)c;
        }
    }
}

static void put_json_string(struct pl_al_buf *out, const char *s, size_t n)
{
    pl_al_buf_put(out, "\"", 1);
    size_t mark = out->len;
    pl_al_buf_put(out, s, n);
    escape_from(out, mark);
    pl_al_buf_put(out, "\"", 1);
}

static bool render_tmpl(const struct pl_al_tmpl *t, const struct pl_stream_info *si, bool omit,
                        struct pl_al_buf *out)
{
    size_t mark = out->len;
    if (t->n == 1 && t->v[0].op != 0) { /* a single operator keeps its type */
        pl_al_buf_put(out, "\"", 1);
        enum pl_al_val v = pl_al_seg_eval(&t->v[0], si, out);
        if (v == PL_AL_UNSET) {
            out->len = mark;
            pl_al_buf_put(out, "null", 4);
            return false;
        }
        if (v == PL_AL_NUM && t->v[0].num) {
            memmove(out->p + mark, out->p + mark + 1, out->len - mark - 1);
            out->len--;
            out->p[out->len] = 0;
            return true;
        }
        bool empty = out->len == mark + 1;
        escape_from(out, mark + 1);
        pl_al_buf_put(out, "\"", 1);
        return !empty;
    }
    pl_al_buf_put(out, "\"", 1);
    for (size_t i = 0; i < t->n; i++)
        if (pl_al_seg_eval(&t->v[i], si, out) == PL_AL_UNSET && !omit)
            pl_al_buf_put(out, "-", 1);
    bool empty = out->len == mark + 1;
    escape_from(out, mark + 1);
    pl_al_buf_put(out, "\"", 1);
    return !empty;
}

bool pl_al_json_render(const struct pl_al_jnode *n, const struct pl_stream_info *si, bool omit,
                       struct pl_al_buf *out)
{
    switch (n->kind) {
    case PL_AL_J_RAW:
        pl_al_buf_put(out, n->raw, n->raw_len);
        return n->raw_len != 4 || memcmp(n->raw, "null", 4) != 0;
    case PL_AL_J_TMPL:
        return render_tmpl(&n->t, si, omit, out);
    case PL_AL_J_OBJ:
    case PL_AL_J_ARR: {
        bool obj = n->kind == PL_AL_J_OBJ, first = true;
        pl_al_buf_put(out, obj ? "{" : "[", 1);
        for (size_t i = 0; i < n->n; i++) {
            size_t mark = out->len;
            if (!first)
                pl_al_buf_put(out, ",", 1);
            if (obj)
                pl_al_buf_put(out, n->kids[i].key, n->kids[i].key_len);
            bool has = pl_al_json_render(&n->kids[i], si, omit, out);
            if (obj && omit && !has) { /* omit_empty_values drops the key */
                out->len = mark;
                out->p[mark] = 0;
                continue;
            }
            first = false;
        }
        pl_al_buf_put(out, obj ? "}" : "]", 1);
        return true;
    }
    }
    return false;
}

static int compile_value(const Google__Protobuf__Value *v, struct pl_al_jnode *n, const char *path,
                         struct pl_err *err);

static int compile_list(const Google__Protobuf__ListValue *l, struct pl_al_jnode *n,
                        const char *path, struct pl_err *err)
{
    n->kind = PL_AL_J_ARR;
    n->kids = pl_calloc(l->n_values ? l->n_values : 1, sizeof(*n->kids));
    int rc = 0;
    for (size_t i = 0; i < l->n_values; i++) {
        char *p = pl_asprintf("%s[%zu]", path, i);
        n->n++;
        rc |= compile_value(l->values[i], &n->kids[i], p, err);
        free(p);
    }
    return rc ? PL_EINVAL : 0;
}

int pl_al_json_compile(const Google__Protobuf__Struct *st, struct pl_al_jnode *n, const char *path,
                       struct pl_err *err)
{
    n->kind = PL_AL_J_OBJ;
    size_t nf = st ? st->n_fields : 0;
    n->kids = pl_calloc(nf ? nf : 1, sizeof(*n->kids));
    int rc = 0;
    for (size_t i = 0; i < nf; i++) {
        const Google__Protobuf__Struct__FieldsEntry *e = st->fields[i];
        struct pl_al_jnode *k = &n->kids[n->n++];
        struct pl_al_buf key = {0};
        put_json_string(&key, e->key, strlen(e->key));
        pl_al_buf_put(&key, ":", 1);
        k->key = key.p, k->key_len = key.len;
        char *p = pl_asprintf("%s.%s", path ? path : "json_format", e->key);
        rc |= compile_value(e->value, k, p, err);
        free(p);
    }
    return rc ? PL_EINVAL : 0;
}

static int compile_value(const Google__Protobuf__Value *v, struct pl_al_jnode *n, const char *path,
                         struct pl_err *err)
{
    char tmp[64];
    switch (v ? v->kind_case : VAL(_NOT_SET)) {
    case VAL(STRING_VALUE):
        n->kind = PL_AL_J_TMPL;
        return pl_al_tmpl_parse(v->string_value, strlen(v->string_value), &n->t, path, err);
    case VAL(NUMBER_VALUE): {
        double d = v->number_value;
        if (!isfinite(d))
            return pl_err_add(err, NULL, 0, 0, path, "a JSON number must be finite");
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            snprintf(tmp, sizeof(tmp), "%.0f", d);
        else
            snprintf(tmp, sizeof(tmp), "%.17g", d);
        n->kind = PL_AL_J_RAW, n->raw = pl_strdup(tmp), n->raw_len = strlen(tmp);
        return 0;
    }
    case VAL(BOOL_VALUE):
        n->kind = PL_AL_J_RAW, n->raw = pl_strdup(v->bool_value ? "true" : "false");
        n->raw_len = strlen(n->raw);
        return 0;
    case VAL(NULL_VALUE):
        n->kind = PL_AL_J_RAW, n->raw = pl_strdup("null"), n->raw_len = 4;
        return 0;
    case VAL(STRUCT_VALUE):
        return pl_al_json_compile(v->struct_value, n, path, err);
    case VAL(LIST_VALUE):
        return compile_list(v->list_value, n, path, err);
    default:
        break;
    }
    n->kind = PL_AL_J_RAW, n->raw = pl_strdup("null"), n->raw_len = 4;
    return pl_err_add(err, NULL, 0, 0, path, "a json_format value must be set");
}

void pl_al_jnode_free(struct pl_al_jnode *n)
{
    for (size_t i = 0; i < n->n; i++)
        pl_al_jnode_free(&n->kids[i]);
    free(n->kids);
    free(n->key);
    free(n->raw);
    pl_al_tmpl_free(&n->t);
    *n = (struct pl_al_jnode){0};
}

/* Reads a DataSource's text (inline string/bytes or a file, read once at config time). */
static int read_source(const Envoy__Config__Core__V3__DataSource *ds, const char *path, char **text,
                       size_t *len, struct pl_err *err)
{
    switch (ds->specifier_case) {
    case DSRC(INLINE_STRING):
        *len = strlen(ds->inline_string);
        *text = pl_strndup(ds->inline_string, *len);
        return 0;
    case DSRC(INLINE_BYTES):
        *len = ds->inline_bytes.len;
        *text = pl_strndup((const char *)ds->inline_bytes.data, *len);
        if (strlen(*text) != *len) {
            free(*text);
            return pl_err_add(err, NULL, 0, 0, path, "the format contains a NUL byte");
        }
        return 0;
    case DSRC(FILENAME): {
        int fd = open(ds->filename, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return pl_err_add(err, NULL, 0, 0, path, "cannot open '%s': %s", ds->filename,
                              strerror(errno));
        struct pl_al_buf b = {0};
        char chunk[4096];
        ssize_t r;
        while ((r = read(fd, chunk, sizeof(chunk))) > 0 && b.len < (1u << 20))
            pl_al_buf_put(&b, chunk, (size_t)r);
        close(fd);
        if (r < 0) {
            pl_al_buf_free(&b);
            return pl_err_add(err, NULL, 0, 0, path, "cannot read '%s'", ds->filename);
        }
        *len = b.len;
        *text = b.p ? b.p : pl_strdup("");
        return 0;
    }
    default:
        return pl_err_add(err, NULL, 0, 0, path,
                          "text_format_source needs inline_string, inline_bytes or filename");
    }
}

int pl_al_format_compile(const Envoy__Config__Core__V3__SubstitutionFormatString *sfs,
                         const char *path, struct pl_al_format **out, struct pl_err *err)
{
    *out = NULL;
    if (!sfs)
        return pl_al_format_compile_text(PL_ACCESS_LOG_DEFAULT_FORMAT,
                                         strlen(PL_ACCESS_LOG_DEFAULT_FORMAT), false, path, out,
                                         err);
    char *p = NULL;
    int rc;
    switch (sfs->format_case) {
    case SFS(TEXT_FORMAT):
        p = pl_asprintf("%s.text_format", path ? path : "log_format");
        rc = pl_al_format_compile_text(sfs->text_format, strlen(sfs->text_format),
                                       sfs->omit_empty_values, p, out, err);
        break;
    case SFS(TEXT_FORMAT_SOURCE): {
        p = pl_asprintf("%s.text_format_source", path ? path : "log_format");
        char *text;
        size_t len;
        rc = read_source(sfs->text_format_source, p, &text, &len, err);
        if (rc == 0) {
            rc = pl_al_format_compile_text(text, len, sfs->omit_empty_values, p, out, err);
            free(text);
        }
        break;
    }
    case SFS(JSON_FORMAT): {
        p = pl_asprintf("%s.json_format", path ? path : "log_format");
        struct pl_al_format *f = pl_calloc(1, sizeof(*f));
        f->json = true;
        f->omit_empty = sfs->omit_empty_values;
        rc = pl_al_json_compile(sfs->json_format, &f->root, p, err);
        if (rc < 0)
            pl_al_format_free(f);
        else
            *out = f;
        break;
    }
    default:
        rc = pl_err_add(err, NULL, 0, 0, path,
                        "log_format needs one of text_format, text_format_source, json_format");
        break;
    }
    free(p);
    return rc;
}
