/* A strict JSON (RFC 8259) reader that builds the same node tree as the YAML path. */
#include "config/tree_internal.h"
#include "config/pbjson_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct jp {
    struct pl_tree *t;
    struct pl_err *err;
    const unsigned char *s;
    size_t len, pos;
    int line, col; /* 0-based; col counts characters, as libyaml does */
    char *sb;      /* string scratch */
    size_t sblen, sbcap;
};

static int jerr(struct jp *p, const char *msg)
{
    return pl_err_add(p->err, p->t->name, p->line + 1, p->col + 1, NULL, "%s", msg);
}

static void adv(struct jp *p)
{
    unsigned char c = p->s[p->pos++];
    if (c == '\n') {
        p->line++;
        p->col = 0;
    } else if ((c & 0xC0) != 0x80) {
        p->col++;
    }
}

static void skip_ws(struct jp *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        adv(p);
    }
}

static void sb_put(struct jp *p, const void *d, size_t n)
{
    if (p->sblen + n > p->sbcap) {
        p->sbcap = (p->sblen + n) * 2;
        p->sb = pl_realloc(p->sb, p->sbcap);
    }
    memcpy(p->sb + p->sblen, d, n);
    p->sblen += n;
}

static void sb_cp(struct jp *p, uint32_t cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_put(p, b, n);
}

static int hex4(struct jp *p, uint32_t *out)
{
    if (p->len - p->pos < 4)
        return jerr(p, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p->s[p->pos];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return jerr(p, "invalid \\u escape");
        v = v << 4 | (uint32_t)d;
        adv(p);
    }
    *out = v;
    return 0;
}

/* Reads a string (the opening quote is at pos) into p->sb. */
static int read_string(struct jp *p)
{
    p->sblen = 0;
    adv(p);
    for (;;) {
        if (p->pos >= p->len)
            return jerr(p, "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            adv(p);
            return 0;
        }
        if (c < 0x20)
            return jerr(p, "control character in string");
        if (c == '\\') {
            adv(p);
            if (p->pos >= p->len)
                return jerr(p, "unterminated string");
            c = p->s[p->pos];
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *e = c ? strchr(from, c) : NULL;
            if (e) {
                sb_put(p, &to[e - from], 1);
                adv(p);
                continue;
            }
            if (c != 'u')
                return jerr(p, "invalid escape in string");
            adv(p);
            uint32_t cp, lo;
            if (hex4(p, &cp) < 0)
                return PL_EINVAL;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return jerr(p, "unpaired UTF-16 surrogate in string");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return jerr(p, "unpaired UTF-16 surrogate in string");
                adv(p);
                adv(p);
                if (hex4(p, &lo) < 0)
                    return PL_EINVAL;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return jerr(p, "unpaired UTF-16 surrogate in string");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            sb_cp(p, cp);
            continue;
        }
        size_t k = pl_utf8_seq(p->s + p->pos, p->len - p->pos);
        if (!k)
            return jerr(p, "invalid UTF-8 in string");
        sb_put(p, p->s + p->pos, k);
        for (size_t i = 0; i < k; i++)
            adv(p);
    }
}

static bool isdig(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int read_number(struct jp *p, size_t *end)
{
    size_t i = p->pos;
    const unsigned char *s = p->s;
    if (i < p->len && s[i] == '-')
        i++;
    if (i >= p->len || !isdig(s[i]))
        return -1;
    if (s[i] == '0')
        i++;
    else
        while (i < p->len && isdig(s[i]))
            i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || !isdig(s[i]))
            return -1;
        while (i < p->len && isdig(s[i]))
            i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->len || !isdig(s[i]))
            return -1;
        while (i < p->len && isdig(s[i]))
            i++;
    }
    *end = i;
    return 0;
}

static bool word(struct jp *p, const char *w)
{
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0)
        return false;
    if (p->len - p->pos > n) {
        unsigned char c = p->s[p->pos + n];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isdig(c) || c == '_')
            return false;
    }
    return true;
}

static struct pl_node *read_value(struct jp *p, int depth);

static struct pl_node *read_container(struct jp *p, int depth, bool map)
{
    if (depth >= PL_TREE_MAX_DEPTH)
        return jerr(p, "nesting deeper than 400 levels"), NULL;
    struct pl_node *n = pl_tree_node(p->t, map ? PL_NODE_MAP : PL_NODE_SEQ, p->line, p->col);
    struct pl_node **v = NULL;
    size_t cnt = 0, cap = 0;
    char close = map ? '}' : ']';
    adv(p);
    skip_ws(p);
    bool first = true;
    for (;;) {
        if (p->pos >= p->len) {
            jerr(p, map ? "unterminated object" : "unterminated array");
            goto fail;
        }
        if (p->s[p->pos] == close && first) {
            adv(p);
            break;
        }
        if (!first) {
            if (p->s[p->pos] == close) {
                adv(p);
                break;
            }
            if (p->s[p->pos] != ',') {
                jerr(p, map ? "expected ',' or '}'" : "expected ',' or ']'");
                goto fail;
            }
            adv(p);
            skip_ws(p);
        }
        first = false;
        if (cnt + 2 > cap) {
            cap = cap ? cap * 2 : 8;
            v = pl_realloc(v, cap * sizeof(*v));
        }
        if (map) {
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                jerr(p, "expected a string key");
                goto fail;
            }
            struct pl_node *k = pl_tree_node(p->t, PL_NODE_SCALAR, p->line, p->col);
            k->quoted = true;
            if (read_string(p) < 0)
                goto fail;
            pl_tree_set_str(p->t, k, p->sb, p->sblen);
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                jerr(p, "expected ':'");
                goto fail;
            }
            adv(p);
            v[cnt++] = k;
            n->weight++;
        }
        struct pl_node *x = read_value(p, depth + 1);
        if (!x)
            goto fail;
        v[cnt++] = x;
        n->weight += x->weight;
        skip_ws(p);
    }
    n->items = pl_tree_alloc(p->t, (cnt ? cnt : 1) * sizeof(*v));
    if (cnt)
        memcpy(n->items, v, cnt * sizeof(*v));
    n->len = map ? cnt / 2 : cnt;
    free(v);
    return n;
fail:
    free(v);
    return NULL;
}

static struct pl_node *read_value(struct jp *p, int depth)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return jerr(p, "unexpected end of input"), NULL;
    unsigned char c = p->s[p->pos];
    if (c == '{' || c == '[')
        return read_container(p, depth, c == '{');
    struct pl_node *n = pl_tree_node(p->t, PL_NODE_SCALAR, p->line, p->col);
    if (c == '"') {
        n->quoted = true;
        if (read_string(p) < 0)
            return NULL;
        pl_tree_set_str(p->t, n, p->sb, p->sblen);
        return n;
    }
    const char *w = word(p, "true")    ? "true"
                    : word(p, "false") ? "false"
                    : word(p, "null")  ? "null"
                                       : NULL;
    size_t end;
    if (w) {
        end = p->pos + strlen(w);
        if (w[0] == 'n')
            n->type = PL_NODE_NULL;
    } else if (read_number(p, &end) < 0) {
        return jerr(p, "invalid JSON value"), NULL;
    }
    pl_tree_set_str(p->t, n, (const char *)p->s + p->pos, end - p->pos);
    while (p->pos < end)
        adv(p);
    return n;
}

int pl_tree_parse_json(struct pl_tree *t, const char *text, size_t len, struct pl_err *err)
{
    struct jp p = {.t = t, .err = err, .s = (const unsigned char *)text, .len = len};
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        p.pos = 3;
    struct pl_node *root = read_value(&p, 0);
    int rc = PL_EINVAL;
    if (root) {
        skip_ws(&p);
        if (p.pos < p.len)
            jerr(&p, "unexpected text after the JSON value");
        else
            rc = 0;
    }
    free(p.sb);
    if (rc == 0) {
        if (root->weight > PL_TREE_MAX_WEIGHT)
            return pl_err_add(err, t->name, 0, 0, NULL, "document too large");
        t->root = root;
    }
    return rc;
}
