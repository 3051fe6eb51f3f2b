/* Compiles request/response header mutations (HeaderValueOption lists and removal lists) and the
 * %VARIABLE% templates in their values. */
#include <stdlib.h>
#include <string.h>

#include "router/router_internal.h"

uint8_t pl_router_pseudo(const char *name, size_t len)
{
    static const struct {
        const char *n;
        uint8_t v;
    } tab[] = {{":method", PSEUDO_METHOD},
               {":authority", PSEUDO_AUTHORITY},
               {":path", PSEUDO_PATH},
               {":scheme", PSEUDO_SCHEME}};
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strlen(tab[i].n) == len && !memcmp(tab[i].n, name, len))
            return tab[i].v;
    return PSEUDO_NONE;
}

static bool tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static char *lower_dup(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *d = pl_strndup(s, n);
    for (size_t i = 0; i < n; i++)
        if (d[i] >= 'A' && d[i] <= 'Z')
            d[i] = (char)(d[i] + 32);
    *len = n;
    return d;
}

/* Checks a header name we will add or remove: a token, not a pseudo-header, not host. */
static int check_name(const char *name, const char *path, bool adding, struct pl_err *err)
{
    size_t n = strlen(name);
    if (n == 0)
        return pl_err_add(err, NULL, 0, 0, path, "a header name must not be empty");
    if (name[0] == ':' || !strcasecmp(name, "host"))
        return pl_err_add(err, NULL, 0, 0, path, ":-prefixed or host headers may not be %s",
                          adding ? "modified" : "removed");
    for (size_t i = 0; i < n; i++)
        if (!tchar((unsigned char)name[i]))
            return pl_err_add(err, NULL, 0, 0, path, "invalid header name '%s'", name);
    return 0;
}

static const struct {
    const char *name;
    uint8_t var;
} vars[] = {
    {"DOWNSTREAM_REMOTE_ADDRESS", FV_REMOTE_ADDR},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", FV_REMOTE_ADDR_NO_PORT},
    {"DOWNSTREAM_REMOTE_PORT", FV_REMOTE_PORT},
    {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS", FV_REMOTE_ADDR},
    {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT", FV_REMOTE_ADDR_NO_PORT},
    {"DOWNSTREAM_LOCAL_ADDRESS", FV_LOCAL_ADDR},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", FV_LOCAL_ADDR_NO_PORT},
    {"DOWNSTREAM_LOCAL_PORT", FV_LOCAL_PORT},
    {"UPSTREAM_HOST", FV_UPSTREAM_HOST},
    {"UPSTREAM_REMOTE_ADDRESS", FV_UPSTREAM_HOST},
    {"PROTOCOL", FV_PROTOCOL},
    {"REQUESTED_SERVER_NAME", FV_SNI},
    {"HOSTNAME", FV_HOSTNAME},
};

static void push_seg(struct rt_hdr_add *a, struct rt_fmt_seg s)
{
    a->segs = pl_realloc(a->segs, (a->nsegs + 1) * sizeof(*a->segs));
    a->segs[a->nsegs++] = s;
}

/* Appends literal text, turning "%%" into "%". */
static void push_literal(struct rt_hdr_add *a, const char *s, size_t n)
{
    if (n == 0)
        return;
    char *d = pl_malloc(n + 1);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        d[w++] = s[i];
        if (s[i] == '%' && i + 1 < n && s[i + 1] == '%')
            i++;
    }
    d[w] = 0;
    push_seg(a, (struct rt_fmt_seg){.var = FV_LITERAL, .s = d, .len = w});
}

/* Parses REQ's "(name?alt)" and ":max" parts of a %REQ(...)% command text. */
static int parse_req(struct rt_hdr_add *a, const char *cmd, size_t n, const char *path,
                     struct pl_err *err)
{
    const char *open = memchr(cmd, '(', n), *close = memchr(cmd, ')', n);
    if (!open || !close || close < open || close == open + 1)
        return pl_err_add(err, NULL, 0, 0, path, "%%REQ%% needs a header name: %%REQ(name)%%");
    struct rt_fmt_seg s = {.var = FV_REQ};
    const char *arg = open + 1;
    size_t alen = (size_t)(close - arg);
    const char *q = memchr(arg, '?', alen);
    size_t nlen = q ? (size_t)(q - arg) : alen;
    char *name = pl_strndup(arg, nlen);
    s.s = lower_dup(name, &s.len);
    free(name);
    s.pseudo = pl_router_pseudo(s.s, s.len);
    if (q) {
        char *alt = pl_strndup(q + 1, alen - nlen - 1);
        s.alt = lower_dup(alt, &s.alt_len);
        free(alt);
        s.alt_pseudo = pl_router_pseudo(s.alt, s.alt_len);
    }
    const char *rest = close + 1, *end = cmd + n;
    if (rest < end) {
        if (*rest != ':' || rest + 1 == end)
            goto bad;
        size_t v = 0;
        for (const char *p = rest + 1; p < end; p++) {
            if (*p < '0' || *p > '9' || v > 100000000)
                goto bad;
            v = v * 10 + (size_t)(*p - '0');
        }
        s.max_len = v;
    }
    if (s.len == 0 || (s.alt && s.alt_len == 0))
        goto bad;
    push_seg(a, s);
    return 0;
bad:
    free(s.s);
    free(s.alt);
    return pl_err_add(err, NULL, 0, 0, path, "invalid %%REQ%% command '%%%.*s%%'", (int)n, cmd);
}

/* Parses a header value template: literal text, "%%" and %COMMAND% segments. */
static int parse_format(struct rt_hdr_add *a, const char *v, const char *path, struct pl_err *err)
{
    size_t n = strlen(v), start = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != '%')
            continue;
        if (i + 1 < n && v[i + 1] == '%') {
            i++;
            continue;
        }
        const char *close = memchr(v + i + 1, '%', n - i - 1);
        if (!close)
            return pl_err_add(err, NULL, 0, 0, path,
                              "un-terminated variable expression at position %zu in '%s' "
                              "(write %%%% for a literal %%)",
                              i, v);
        push_literal(a, v + start, i - start);
        const char *cmd = v + i + 1;
        size_t clen = (size_t)(close - cmd);
        int rc = -1;
        if (clen >= 4 && !memcmp(cmd, "REQ(", 4)) {
            if (parse_req(a, cmd, clen, path, err) < 0)
                return PL_EINVAL;
            rc = 0;
        }
        for (size_t k = 0; rc < 0 && k < sizeof(vars) / sizeof(vars[0]); k++)
            if (strlen(vars[k].name) == clen && !memcmp(vars[k].name, cmd, clen)) {
                push_seg(a, (struct rt_fmt_seg){.var = vars[k].var});
                rc = 0;
            }
        if (rc < 0)
            return pl_err_add(err, NULL, 0, 0, path,
                              "unsupported header variable '%%%.*s%%' (supported: "
                              "DOWNSTREAM_REMOTE_ADDRESS[_WITHOUT_PORT], DOWNSTREAM_REMOTE_PORT, "
                              "DOWNSTREAM_LOCAL_ADDRESS[_WITHOUT_PORT], DOWNSTREAM_LOCAL_PORT, "
                              "UPSTREAM_HOST, PROTOCOL, REQUESTED_SERVER_NAME, HOSTNAME, "
                              "REQ(name))",
                              (int)clen, cmd);
        i = (size_t)(close - v);
        start = i + 1;
    }
    push_literal(a, v + start, n - start);
    a->literal = a->nsegs == 0 || (a->nsegs == 1 && a->segs[0].var == FV_LITERAL);
    return 0;
}

static void free_add(struct rt_hdr_add *a)
{
    for (size_t i = 0; i < a->nsegs; i++) {
        free(a->segs[i].s);
        free(a->segs[i].alt);
    }
    free(a->segs);
    free(a->name);
}

void pl_router_free_ops(struct rt_hdr_ops *ops)
{
    for (size_t i = 0; i < ops->nadd; i++)
        free_add(&ops->add[i]);
    free(ops->add);
    for (size_t i = 0; i < ops->nrm; i++)
        free(ops->rm[i]);
    free(ops->rm);
    free(ops->rm_len);
    memset(ops, 0, sizeof(*ops));
}

static int compile_one(struct rt_hdr_add *a, const Envoy__Config__Core__V3__HeaderValueOption *o,
                       const char *path, struct pl_err *err)
{
    int rc = 0;
    char *p;
    if (!o->header)
        return pl_err_add(err, NULL, 0, 0, path, "header is required");
    p = pl_asprintf("%s.header.key", path);
    rc = check_name(o->header->key, p, true, err);
    free(p);
    if (rc < 0)
        return rc;
    a->name = lower_dup(o->header->key, &a->name_len);
    if (o->append) {
        if (o->append_action !=
            ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD)
            return pl_err_add(err, NULL, 0, 0, path,
                              "both append and append_action are set and it's not allowed");
        a->action = o->append->value ? ACT_APPEND : ACT_OVERWRITE_OR_ADD;
    } else {
        switch (o->append_action) {
        case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD:
            a->action = ACT_APPEND;
            break;
        case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__ADD_IF_ABSENT:
            a->action = ACT_ADD_IF_ABSENT;
            break;
        case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD:
            a->action = ACT_OVERWRITE_OR_ADD;
            break;
        case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS:
            a->action = ACT_OVERWRITE_IF_EXISTS;
            break;
        default:
            return pl_err_add(err, NULL, 0, 0, path, "unknown append_action %d",
                              (int)o->append_action);
        }
    }
    a->keep_empty = o->keep_empty_value;
    const char *v = o->header->value;
    for (const char *c = v; *c; c++)
        if (*c == '\r' || *c == '\n')
            return pl_err_add(err, NULL, 0, 0, path,
                              "header.value must not contain CR or LF characters");
    p = pl_asprintf("%s.header.value", path);
    rc = parse_format(a, v, p, err);
    free(p);
    return rc;
}

int pl_router_compile_ops(struct rt_hdr_ops *ops, bool request,
                          Envoy__Config__Core__V3__HeaderValueOption *const *add, size_t nadd,
                          char *const *rm, size_t nrm, const char *path, const char *add_field,
                          const char *rm_field, struct pl_err *err)
{
    (void)request;
    int rc = 0;
    ops->add = nadd ? pl_calloc(nadd, sizeof(*ops->add)) : NULL;
    for (size_t i = 0; i < nadd; i++) {
        char *p = pl_asprintf("%s%s%s[%zu]", path, *path ? "." : "", add_field, i);
        if (compile_one(&ops->add[ops->nadd], add[i], p, err) < 0) {
            free_add(&ops->add[ops->nadd]);
            memset(&ops->add[ops->nadd], 0, sizeof(ops->add[0]));
            rc = PL_EINVAL;
        } else {
            ops->nadd++;
        }
        free(p);
    }
    ops->rm = nrm ? pl_calloc(nrm, sizeof(char *)) : NULL;
    ops->rm_len = nrm ? pl_calloc(nrm, sizeof(size_t)) : NULL;
    for (size_t i = 0; i < nrm; i++) {
        char *p = pl_asprintf("%s%s%s[%zu]", path, *path ? "." : "", rm_field, i);
        if (check_name(rm[i], p, false, err) < 0)
            rc = PL_EINVAL;
        else {
            ops->rm[ops->nrm] = lower_dup(rm[i], &ops->rm_len[ops->nrm]);
            ops->nrm++;
        }
        free(p);
    }
    return rc;
}
