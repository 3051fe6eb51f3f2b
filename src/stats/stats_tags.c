/* Envoy's default tag extractors (source/common/config/well_known_names.cc), the common subset:
 * each matches the full stat name and removes the part that becomes the tag value. Tags are
 * reported in Envoy's extractor order. */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

struct ex {
    const char *name;
    size_t len;
    bool *removed;
    struct pl_stats_tag *tags;
    int n, max;
    char *buf;
    size_t used, cap;
};

/* s (of length len) starts with the literal p */
#define STARTS(s, len, p) ((len) >= sizeof(p) - 1 && !memcmp((s), (p), sizeof(p) - 1))

/* Records tag tname = name[v0, v0+vn) and removes name[r0, r0+rn). */
static void add(struct ex *x, const char *tname, size_t v0, size_t vn, size_t r0, size_t rn)
{
    if (x->n >= x->max || x->used + vn + 1 > x->cap)
        return;
    char *val = x->buf + x->used;
    memcpy(val, x->name + v0, vn);
    val[vn] = 0;
    x->used += vn + 1;
    x->tags[x->n].name = tname;
    x->tags[x->n].value = val;
    x->n++;
    for (size_t i = r0; i < r0 + rn; i++)
        x->removed[i] = true;
}

/* Length of a [^.]+ segment at s followed by '.', or 0. */
static size_t segment(const char *s)
{
    const char *d = strchr(s, '.');
    return d && d > s ? (size_t)(d - s) : 0;
}

static size_t digits(const char *s, size_t max)
{
    size_t i = 0;
    while (i < max && isdigit((unsigned char)s[i]))
        i++;
    return i;
}

/* <ADDRESS>: (d{1,3}.d{1,3}.d{1,3}.d{1,3} | [hex and _]) _ d+, followed by '.'; returns length. */
static size_t address(const char *s)
{
    size_t i = 0;
    if (s[0] == '[') {
        i = 1;
        while (isxdigit((unsigned char)s[i]) || s[i] == '_')
            i++;
        if (i == 1 || s[i] != ']')
            return 0;
        i++;
    } else {
        for (int k = 0; k < 4; k++) {
            size_t d = digits(s + i, 3);
            if (d == 0 || (k < 3 && s[i + d] != '.'))
                return 0;
            i += d + (k < 3);
        }
    }
    if (s[i] != '_')
        return 0;
    size_t d = digits(s + i + 1, 64);
    if (d == 0 || s[i + 1 + d] != '.')
        return 0;
    return i + 1 + d;
}

/* listener.<ADDRESS or segment>. : returns the length of the value, or 0. */
static size_t listener_value(const char *s)
{
    size_t a = address(s);
    return a ? a : segment(s);
}

int pl_stats_extract_tags(const char *name, char *name_out, size_t cap, struct pl_stats_tag *tags,
                          int max_tags, char *tag_buf, size_t tag_buf_cap)
{
    size_t len = strlen(name);
    bool removed_small[256], *removed = removed_small;
    if (len > sizeof(removed_small))
        removed = pl_calloc(len, 1);
    else
        memset(removed_small, 0, sizeof(removed_small));
    struct ex x = {name, len, removed, tags, 0, max_tags, tag_buf, 0, tag_buf_cap};

    /* *_rq(_<response_code>) */
    if (len >= 7 && !memcmp(name + len - 7, "_rq_", 4) && digits(name + len - 3, 3) == 3)
        add(&x, "envoy.response_code", len - 3, 3, len - 4, 4);
    /* *_rq_(<response_code_class>)xx */
    if (len >= 7 && !memcmp(name + len - 7, "_rq_", 4) && isdigit((unsigned char)name[len - 3]) &&
        !memcmp(name + len - 2, "xx", 2))
        add(&x, "envoy.response_code_class", len - 3, 1, len - 3, 1);
    /* cluster.(<cluster_name>.)* */
    if (STARTS(name, len, "cluster.")) {
        size_t n = segment(name + 8);
        if (n)
            add(&x, "envoy.cluster_name", 8, n, 8, n + 1);
    }
    /* listener.[<address>.]http.(<stat_prefix>.)* */
    if (STARTS(name, len, "listener.")) {
        for (const char *h = strstr(name + 9, ".http."); h; h = strstr(h + 1, ".http.")) {
            size_t at = (size_t)(h - name) + 6, n = segment(name + at);
            if (n) {
                add(&x, "envoy.http_conn_manager_prefix", at, n, at, n + 1);
                break;
            }
        }
    }
    /* http.(<stat_prefix>.)* */
    if (STARTS(name, len, "http.")) {
        size_t n = segment(name + 5);
        if (n)
            add(&x, "envoy.http_conn_manager_prefix", 5, n, 5, n + 1);
    }
    /* listener.<address|stat_prefix>.(worker_<id>.)*, server.worker_<id>., listener_manager. */
    {
        size_t at = 0;
        if (STARTS(name, len, "listener.")) {
            size_t n = listener_value(name + 9);
            at = n ? 9 + n + 1 : 0;
        } else if (STARTS(name, len, "server.")) {
            at = 7;
        } else if (STARTS(name, len, "listener_manager.")) {
            at = 17;
        }
        if (at && STARTS(name + at, len - at, "worker_")) {
            size_t d = digits(name + at + 7, 32);
            if (d && name[at + 7 + d] == '.')
                add(&x, "envoy.worker_id", at + 7, d, at + 7, d + 1);
        }
    }
    /* listener.(<address|stat_prefix>.)*, except "admin" */
    if (STARTS(name, len, "listener.")) {
        size_t n = listener_value(name + 9);
        if (n && !(n == 5 && !memcmp(name + 9, "admin", 5)))
            add(&x, "envoy.listener_address", 9, n, 9, n + 1);
    }

    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++)
        if (!removed[i])
            name_out[o++] = name[i];
    if (cap)
        name_out[o] = 0;
    if (removed != removed_small)
        free(removed);
    return x.n;
}
