/* Rendering of the store as Envoy's /stats text, JSON, and Prometheus exposition format. */
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats_internal.h"

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = pl_realloc(b->p, cap);
    b->cap = cap;
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Numbers as Envoy prints them: integers without a fraction, else up to 3 decimals. */
static void sb_num(struct sbuf *b, double v)
{
    char tmp[64];
    if (v != v) {
        sb_str(b, "nan");
        return;
    }
    snprintf(tmp, sizeof(tmp), "%.3f", v);
    char *dot = strchr(tmp, '.');
    if (dot) {
        char *e = tmp + strlen(tmp);
        while (e > dot && (e[-1] == '0' || e[-1] == '.'))
            *--e = 0;
    }
    sb_str(b, tmp);
}

static void sb_json_str(struct sbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_add(b, e, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_add(b, (const char *)&c, 1);
        }
    }
    sb_add(b, "\"", 1);
}

static const double quantiles[] = {0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1};
#define NQ (sizeof(quantiles) / sizeof(quantiles[0]))
static const char *const qnames[NQ] = {"0",  "25", "50",   "75",   "90",
                                       "95", "99", "99.5", "99.9", "100"};

/* Approximates quantile q by linear interpolation inside the bucket that holds it. */
static double hist_quantile(const struct pl_hist_sum *h, double q)
{
    double mn = (double)h->min, mx = (double)h->max;
    if (q <= 0)
        return mn;
    if (q >= 1)
        return mx;
    double rank = q * (double)h->count, cum = 0;
    for (size_t b = 0; b <= PL_STATS_HIST_BUCKETS; b++) {
        double c = (double)h->buckets[b];
        if (c == 0)
            continue;
        if (cum + c >= rank) {
            double lo = b == 0 ? 0 : pl_stats_hist_bounds[b - 1];
            double hi = b < PL_STATS_HIST_BUCKETS ? pl_stats_hist_bounds[b] : mx;
            if (lo < mn)
                lo = mn;
            if (hi > mx)
                hi = mx;
            if (hi < lo)
                hi = lo;
            double v = lo + (hi - lo) * (rank - cum) / c;
            return v < mn ? mn : v > mx ? mx : v;
        }
        cum += c;
    }
    return mx;
}

/* One stat selected for output, with its values read once. */
struct entry {
    const char *name;
    char *owned; /* a group member's name, made for this rendering */
    enum pl_stat_kind kind;
    uint64_t counter;
    int64_t gauge;
    bool used;
    struct pl_hist_sum hist;
    char *prom_name; /* Prometheus only */
    char *labels;
};

static int cmp_name(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static int cmp_prom(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    int c = strcmp(x->prom_name, y->prom_name);
    return c ? c : strcmp(x->labels, y->labels);
}

/* Reads one stat into e; returns false when opts leave it out. Caller holds the lock. */
static bool read_one(struct pl_stats *s, const struct pl_stats_render_opts *opts, regex_t *re,
                     struct entry *e, const char *name, enum pl_stat_kind kind, uint32_t slot)
{
    if (re && regexec(re, name, 0, NULL, 0))
        return false;
    e->name = name;
    e->kind = kind;
    switch (kind) {
    case PL_STAT_COUNTER: {
        uint64_t raw = pl_stats__counter_raw(s, slot);
        e->counter = raw - pl_stats__baseline(s, slot);
        e->used = raw != 0;
        break;
    }
    case PL_STAT_GAUGE:
        e->gauge = pl_stats__gauge(s, slot, &e->used);
        break;
    case PL_STAT_HISTOGRAM:
        pl_stats__hist(s, slot, &e->hist);
        e->used = e->hist.count != 0;
        break;
    }
    return !(opts && opts->used_only && !e->used);
}

/* Reads every stat matching opts. Caller holds the lock. */
static int collect(struct pl_stats *s, const struct pl_stats_render_opts *opts, struct entry **out,
                   size_t *n_out)
{
    regex_t re;
    bool filter = opts && opts->filter && *opts->filter;
    if (filter && regcomp(&re, opts->filter, REG_EXTENDED | REG_NOSUB))
        return PL_EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < s->n; i++)
        total += s->meta[i].group ? s->meta[i].group->n : 1;
    struct entry *v = pl_calloc(total ? total : 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct pl_stat_meta *m = &s->meta[i];
        if (!m->name)
            continue;
        if (!m->group) {
            n += read_one(s, opts, filter ? &re : NULL, &v[n], m->name, m->kind, m->slot);
            continue;
        }
        uint32_t cur[2] = {m->slot, m->slot_main};
        for (uint32_t k = 0; k < m->group->n; k++) {
            enum pl_stat_kind mk = pl_stats__member_kind(m->group, k);
            uint32_t slot = pl_stats__next_slot(m->group, k, cur);
            char *name = pl_asprintf("%s%s", m->name, m->group->m[k].suffix);
            if (read_one(s, opts, filter ? &re : NULL, &v[n], name, mk, slot))
                v[n++].owned = name;
            else
                free(name);
        }
    }
    if (filter)
        regfree(&re);
    *out = v;
    *n_out = n;
    return 0;
}

static void render_text(struct sbuf *b, struct entry *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_name);
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind == PL_STAT_COUNTER)
            sb_printf(b, "%s: %llu\n", v[i].name, (unsigned long long)v[i].counter);
        else if (v[i].kind == PL_STAT_GAUGE)
            sb_printf(b, "%s: %lld\n", v[i].name, (long long)v[i].gauge);
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind != PL_STAT_HISTOGRAM)
            continue;
        sb_printf(b, "%s:", v[i].name);
        if (!v[i].hist.count) {
            sb_str(b, " No recorded values\n");
            continue;
        }
        for (size_t q = 0; q < NQ; q++) {
            sb_printf(b, " P%s(nan,", qnames[q]);
            sb_num(b, hist_quantile(&v[i].hist, quantiles[q]));
            sb_str(b, ")");
        }
        sb_str(b, "\n");
    }
}

static void render_json(struct sbuf *b, struct entry *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_name);
    sb_str(b, "{\"stats\":[");
    bool first = true, any_hist = false;
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind == PL_STAT_HISTOGRAM) {
            any_hist = true;
            continue;
        }
        sb_str(b, first ? "{\"name\":" : ",{\"name\":");
        first = false;
        sb_json_str(b, v[i].name);
        if (v[i].kind == PL_STAT_COUNTER)
            sb_printf(b, ",\"value\":%llu}", (unsigned long long)v[i].counter);
        else
            sb_printf(b, ",\"value\":%lld}", (long long)v[i].gauge);
    }
    if (any_hist) {
        sb_str(b, first ? "" : ",");
        sb_str(b, "{\"histograms\":{\"supported_quantiles\":[");
        for (size_t q = 0; q < NQ; q++)
            sb_printf(b, "%s%s", q ? "," : "", qnames[q]);
        sb_str(b, "],\"computed_quantiles\":[");
        bool hfirst = true;
        for (size_t i = 0; i < n; i++) {
            if (v[i].kind != PL_STAT_HISTOGRAM)
                continue;
            sb_str(b, hfirst ? "{\"name\":" : ",{\"name\":");
            hfirst = false;
            sb_json_str(b, v[i].name);
            sb_str(b, ",\"values\":[");
            for (size_t q = 0; q < NQ; q++) {
                sb_str(b, q ? ",{\"interval\":null,\"cumulative\":"
                            : "{\"interval\":null,\"cumulative\":");
                if (v[i].hist.count)
                    sb_num(b, hist_quantile(&v[i].hist, quantiles[q]));
                else
                    sb_str(b, "null");
                sb_str(b, "}");
            }
            sb_str(b, "]}");
        }
        sb_str(b, "]}}");
    }
    sb_str(b, "]}\n");
}

static char *prom_metric_name(const char *extracted)
{
    static const char prefix[] = "pillion_";
    size_t n = strlen(extracted);
    char *out = pl_malloc(sizeof(prefix) + n);
    memcpy(out, prefix, sizeof(prefix) - 1);
    for (size_t i = 0; i < n; i++) {
        char c = extracted[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        out[sizeof(prefix) - 1 + i] = ok ? c : '_';
    }
    out[sizeof(prefix) - 1 + n] = 0;
    return out;
}

static void prom_labels(struct entry *e)
{
    size_t nl = strlen(e->name) + 1;
    char *name = pl_malloc(nl);
    struct pl_stats_tag tags[8];
    char tag_buf[1024];
    int nt = pl_stats_extract_tags(e->name, name, nl, tags, 8, tag_buf, sizeof(tag_buf));
    e->prom_name = prom_metric_name(name);
    free(name);
    struct sbuf b = {0};
    sb_str(&b, "");
    for (int i = 0; i < nt; i++) {
        if (i)
            sb_str(&b, ",");
        for (const char *c = tags[i].name; *c; c++)
            sb_add(&b, *c == '.' ? "_" : c, 1);
        sb_str(&b, "=\"");
        for (const char *c = tags[i].value; *c; c++) {
            if (*c == '\\' || *c == '"')
                sb_add(&b, "\\", 1);
            if (*c == '\n')
                sb_str(&b, "\\n");
            else
                sb_add(&b, c, 1);
        }
        sb_str(&b, "\"");
    }
    e->labels = b.p;
}

static void render_prometheus(struct sbuf *b, struct entry *v, size_t n)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (size_t i = 0; i < n; i++)
        prom_labels(&v[i]);
    qsort(v, n, sizeof(*v), cmp_prom);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = &v[i];
        if (i == 0 || e->kind != v[i - 1].kind || strcmp(e->prom_name, v[i - 1].prom_name))
            sb_printf(b, "# TYPE %s %s\n", e->prom_name, types[e->kind]);
        if (e->kind == PL_STAT_COUNTER) {
            sb_printf(b, "%s{%s} %llu\n", e->prom_name, e->labels, (unsigned long long)e->counter);
        } else if (e->kind == PL_STAT_GAUGE) {
            sb_printf(b, "%s{%s} %lld\n", e->prom_name, e->labels, (long long)e->gauge);
        } else {
            const char *sep = *e->labels ? "," : "";
            uint64_t cum = 0;
            for (size_t k = 0; k < PL_STATS_HIST_BUCKETS; k++) {
                cum += e->hist.buckets[k];
                sb_printf(b, "%s_bucket{%s%sle=\"", e->prom_name, e->labels, sep);
                sb_num(b, pl_stats_hist_bounds[k]);
                sb_printf(b, "\"} %llu\n", (unsigned long long)cum);
            }
            sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", e->prom_name, e->labels, sep,
                      (unsigned long long)e->hist.count);
            sb_printf(b, "%s_sum{%s} %llu\n", e->prom_name, e->labels,
                      (unsigned long long)e->hist.sum);
            sb_printf(b, "%s_count{%s} %llu\n", e->prom_name, e->labels,
                      (unsigned long long)e->hist.count);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].prom_name);
        free(v[i].labels);
    }
}

int pl_stats_render(struct pl_stats *s, enum pl_stats_format fmt,
                    const struct pl_stats_render_opts *opts, char **out, size_t *out_len)
{
    struct entry *v;
    size_t n;
    pthread_mutex_lock(&s->lock);
    int r = collect(s, opts, &v, &n);
    if (r) {
        pthread_mutex_unlock(&s->lock);
        return r;
    }
    struct sbuf b = {0};
    sb_str(&b, "");
    if (fmt == PL_STATS_JSON)
        render_json(&b, v, n);
    else if (fmt == PL_STATS_PROMETHEUS)
        render_prometheus(&b, v, n);
    else
        render_text(&b, v, n);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++)
        free(v[i].owned);
    free(v);
    *out = b.p;
    if (out_len)
        *out_len = b.len;
    return 0;
}
