/* The xDS client on the main thread: stream events, ACK/NACK, subscriptions, stats, state. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/address.h"
#include "config/dump.h"
#include "core/hugeheap.h"
#include "core/log.h"
#include "xds/client_internal.h"

#define PL_XDS_USER_AGENT_VERSION "0.1.0"

/* What checking and compiling n resources of enc bytes allocates, roughly: some 10 times the
 * encoding, and half a KiB for what each compiles to (an EDS cluster's encoding is tens of
 * bytes; its compiled form, host set, link and stats are hundreds). */
static size_t apply_bytes(size_t enc, size_t n)
{
    return enc * 12 + n * 512;
}

/* A response whose apply_bytes reach this opens the huge-page window and is followed by
 * malloc_trim. */
#define BIG_APPLY ((size_t)2 << 20)

/* Envoy's version gauge is a hash of version_info; a plain number is shown as itself. */
static int64_t version_value(const char *v)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*v && !*end)
        return (int64_t)(n & 0x7fffffffffffffffULL);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *v; v++)
        h = (h ^ (unsigned char)*v) * 0x100000001b3ULL;
    return (int64_t)(h >> 11); /* fits a double exactly in JSON renderings */
}

/* all written by main (the xDS client runs there) */
#define MC PL_STATS_MEMBER_MAIN_COUNTER
static const struct pl_stats_member type_members[] = {
    {"update_attempt", MC},  {"update_success", MC},
    {"update_rejected", MC}, {"version", PL_STATS_MEMBER_MAIN_GAUGE},
    {"update_failure", MC},  {"init_fetch_timeout", MC},
};
#undef MC
static const struct pl_stats_group_def type_group = {type_members, 6};

/* <a><b>.update_attempt, ... (one group in the store: thousands of EDS clusters have them) */
static struct pl_xds_type_stats type_stats(struct pl_stats *s, const char *a, const char *b)
{
    char p[700];
    size_t na = strnlen(a, 300), nb = strnlen(b, 300);
    memcpy(p, a, na);
    memcpy(p + na, b, nb);
    memcpy(p + na + nb, ".", 2);
    uint32_t v[6];
    pl_stats_group(s, p, &type_group, v);
    struct pl_xds_type_stats t;
    t.attempt = (struct pl_counter){s, v[0]};
    t.success = (struct pl_counter){s, v[1]};
    t.rejected = (struct pl_counter){s, v[2]};
    t.version = (struct pl_gauge){s, v[3]};
    t.failure = (struct pl_counter){s, v[4]};
    t.init_fetch_timeout = (struct pl_counter){s, v[5]};
    return t;
}

enum outcome { ATTEMPT, SUCCESS, REJECTED };

static void bump(const struct pl_xds_type_stats *t, enum outcome o, const char *version)
{
    if (!t->attempt.store)
        return;
    if (o == ATTEMPT)
        pl_counter_inc(t->attempt);
    else if (o == SUCCESS) {
        pl_counter_inc(t->success);
        pl_gauge_set(t->version, version_value(version));
    } else
        pl_counter_inc(t->rejected);
}

/* Calls fn for every HTTP connection manager of the static and accepted listeners. */
struct rds_bump {
    struct pl_xds *x;
    const char *name;
    enum outcome o, o2; /* o, then o2 (when it is not o) */
    const char *version;
};

static void bump_rds_hcm(
    const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *h,
    void *arg)
{
    const struct rds_bump *b = arg;
    /* rds and route_config share a oneof: ask which one is set */
    if (h->route_specifier_case !=
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS ||
        strcmp(h->rds->route_config_name, b->name))
        return;
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "http.%.200s.rds.", h->stat_prefix);
    struct pl_xds_type_stats t = type_stats(b->x->o.stats, prefix, b->name);
    bump(&t, b->o, b->version);
    if (b->o2 != b->o)
        bump(&t, b->o2, b->version);
}

/* RDS stats live under every HCM naming the route: http.<stat_prefix>.rds.<name>.* (of the
 * static and the accepted listeners) */
static void bump_rds(struct pl_xds *x, const char *name, enum outcome o, enum outcome o2,
                     const char *version)
{
    if (!x->o.stats)
        return;
    struct rds_bump b = {.x = x, .name = name, .o = o, .o2 = o2, .version = version};
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = x->boot->static_resources;
    for (size_t i = 0; sr && i < sr->n_listeners; i++)
        pl_xds_each_hcm(sr->listeners[i], bump_rds_hcm, &b);
    const struct pl_xds_resmap *m = &x->acc[PL_XDS_LDS];
    for (size_t i = 0; i < m->tab.cap; i++)
        if (pl_xds_resmap_at(m, i))
            pl_xds_each_hcm(
                (const Envoy__Config__Listener__V3__Listener *)pl_xds_resmap_at(m, i)->rec->res.msg,
                bump_rds_hcm, &b);
}

/* cluster.<name>.update_*: found in the store each time (no copy of the handles per cluster) */
static void bump_eds(struct pl_xds *x, const char *name, enum outcome o, enum outcome o2,
                     const char *version)
{
    if (!x->o.stats)
        return;
    struct pl_xds_type_stats st = type_stats(x->o.stats, "cluster.", name);
    bump(&st, o, version);
    if (o2 != o)
        bump(&st, o2, version);
}

/* Bumps o, then o2 (when it differs), of name's stats: found once for both. */
static void bump_one(struct pl_xds *x, enum pl_xds_type t, const char *name, enum outcome o,
                     enum outcome o2, const char *version)
{
    if (t == PL_XDS_RDS)
        bump_rds(x, name, o, o2, version);
    else
        bump_eds(x, name, o, o2, version);
}

/* update_attempt, and update_success or update_rejected: per type for CDS and LDS (rejected when
 * anything of the response was), per resource for RDS and EDS (a valid resource that was applied
 * succeeds even when another one of the response fails). */
static void bump_update(struct pl_xds *x, enum pl_xds_type t, const struct pl_xds_update *u,
                        bool all_ok, bool applied, const char *version)
{
    if (t == PL_XDS_CDS || t == PL_XDS_LDS) {
        const struct pl_xds_type_stats *st = t == PL_XDS_CDS ? &x->st_cds : &x->st_lds;
        bump(st, ATTEMPT, version);
        bump(st, all_ok ? SUCCESS : REJECTED, version);
        return;
    }
    /* the names of the response are those of recs and bad (each once): the stats of each are
     * looked up once for both bumps (10,000 assignments looked them up 20,000 times) */
    for (size_t i = 0; i < u->n; i++)
        bump_one(x, t, u->recs[i]->res.name, ATTEMPT, applied ? SUCCESS : REJECTED, version);
    for (size_t i = 0; i < u->n_bad; i++)
        bump_one(x, t, u->bad[i], ATTEMPT, REJECTED, version);
}

/* Sends type t's request now (ACK, NACK with error, or a subscription change). */
static void send_request(struct pl_xds *x, enum pl_xds_type t, const char *error)
{
    if (!x->stream)
        return;
    const Envoy__Config__Core__V3__Node *node = x->node;
    if (x->node_first_only && x->stream_node_sent)
        node = NULL;
    struct pl_xds_req_opts ro = {.node = node, .error = error};
    bool had = x->sub[t].node_sent;
    size_t len;
    uint8_t *buf;
    if (x->delta) { /* an ACK or NACK: the nonce says which response */
        struct pl_xds_delta_opts d = {.node = node, .error = error, .ack = true};
        buf = pl_xds_sub_delta_request(&x->sub[t], &d, &len);
    } else {
        buf = pl_xds_sub_request(&x->sub[t], &ro, &len);
    }
    if (!had && x->sub[t].node_sent)
        x->stream_node_sent = true;
    pl_log_debug("xds", "%s request: version '%s' nonce '%s'%s", pl_xds_type_name(t),
                 x->sub[t].version, x->sub[t].nonce, error ? " (NACK)" : "");
    pl_xds_transport_send(x->tr, x->stream, buf, len);
}

/* Delta: sends what changed between the subscribed names old and the names of s now. */
static void send_delta_diff(struct pl_xds *x, enum pl_xds_type t, char **old, size_t n_old)
{
    struct pl_xds_sub *s = &x->sub[t];
    const char **sub = pl_calloc(s->n_names + 1, sizeof(*sub));
    const char **unsub = pl_calloc(n_old + 1, sizeof(*unsub));
    size_t ns = 0, nu = 0;
    for (size_t i = 0; i < s->n_names; i++) {
        bool had = false;
        for (size_t j = 0; j < n_old && !had; j++)
            had = !strcmp(old[j], s->names[i]);
        if (!had)
            sub[ns++] = s->names[i];
    }
    for (size_t j = 0; j < n_old; j++)
        if (!pl_xds_sub_has(s, old[j]))
            unsub[nu++] = old[j];
    const Envoy__Config__Core__V3__Node *node =
        x->node_first_only && x->stream_node_sent ? NULL : x->node;
    struct pl_xds_delta_opts d = {.node = node,
                                  .subscribe = sub,
                                  .n_subscribe = ns,
                                  .unsubscribe = unsub,
                                  .n_unsubscribe = nu};
    size_t len;
    bool had_node = s->node_sent;
    uint8_t *buf = pl_xds_sub_delta_request(s, &d, &len);
    if (!had_node && s->node_sent)
        x->stream_node_sent = true;
    free(sub);
    free(unsub);
    if (x->stream)
        pl_xds_transport_send(x->tr, x->stream, buf, len);
    else
        free(buf);
}

/* Brings the RDS/EDS subscriptions in line with the accepted listeners and clusters. */
static void update_subscriptions(struct pl_xds *x)
{
    static const enum pl_xds_type types[] = {PL_XDS_EDS, PL_XDS_RDS};
    size_t pruned = 0;
    for (size_t k = 0; k < 2; k++) {
        enum pl_xds_type t = types[k];
        /* a change to some clusters or listeners rarely changes what they need: 10,000 EDS
         * names were copied, sorted and compared for each one-cluster update */
        if (pl_xds_store_needed_same(x, t))
            continue;
        char **names;
        size_t n = pl_xds_store_needed(x, t, &names);
        struct pl_xds_sub *s = &x->sub[t];
        size_t n_old = x->delta ? s->n_names : 0; /* kept for the Delta diff */
        char **old = pl_calloc(n_old + 1, sizeof(*old));
        for (size_t i = 0; i < n_old; i++)
            old[i] = pl_strdup(s->names[i]);
        bool changed = pl_xds_sub_set_names(s, (const char *const *)names, n);
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        if (changed) {
            pruned += pl_xds_store_prune(x, t);
            x->enabled[t] = true;
            if (x->delta)
                send_delta_diff(x, t, old, n_old);
            else
                send_request(x, t, NULL);
        }
        for (size_t i = 0; i < n_old; i++)
            free(old[i]);
        free(old);
    }
    /* what nothing needs any more leaves the snapshot too (/config_dump), as in Envoy */
    struct pl_err err = PL_ERR_INIT;
    if (pruned && pl_xds_store_rebuild(x, NULL, &err) < 0) {
        char *msg = pl_err_join(&err);
        pl_log_error("xds", "applying after unsubscribing failed: %s", msg);
        free(msg);
    }
    pl_err_free(&err);
}

static void check_initialized(struct pl_xds *x)
{
    if (x->initialized)
        return;
    double now = ev_now(x->o.loop);
    static const enum pl_xds_type need[] = {PL_XDS_CDS, PL_XDS_LDS};
    for (size_t k = 0; k < 2; k++) {
        enum pl_xds_type t = need[k];
        if (!x->enabled[t] || x->answered[t])
            continue;
        if (x->fetch_timeout_s[t] <= 0 || now < x->start_time + x->fetch_timeout_s[t])
            return;
        if (!x->fetch_timed_out[t]) {
            x->fetch_timed_out[t] = true;
            pl_log_warn("xds", "%s: initial fetch timed out: going on without it",
                        pl_xds_type_name(t));
            const struct pl_xds_type_stats *st = t == PL_XDS_CDS ? &x->st_cds : &x->st_lds;
            if (st->init_fetch_timeout.store)
                pl_counter_inc(st->init_fetch_timeout);
        }
    }
    if (x->n_warming)
        return;
    x->initialized = true;
    pl_log_info("xds", "initial configuration in: LIVE");
}

static void arm_timer(struct pl_xds *x)
{
    double now = ev_now(x->o.loop), d = pl_xds_store_next_deadline(x);
    static const enum pl_xds_type need[] = {PL_XDS_CDS, PL_XDS_LDS};
    for (size_t k = 0; k < 2 && !x->initialized; k++) {
        enum pl_xds_type t = need[k];
        double f = x->start_time + x->fetch_timeout_s[t];
        if (x->enabled[t] && !x->answered[t] && x->fetch_timeout_s[t] > 0 && (!d || f < d))
            d = f;
    }
    ev_timer_stop(x->o.loop, &x->timer);
    if (d > 0) {
        ev_timer_set(&x->timer, d > now ? d - now + 0.001 : 0.001, 0);
        ev_timer_start(x->o.loop, &x->timer);
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_xds *x = w->data;
    struct pl_err err = PL_ERR_INIT;
    if (pl_xds_store_rebuild(x, NULL, &err) < 0) {
        char *msg = pl_err_join(&err);
        pl_log_error("xds", "applying after a warming timeout failed: %s", msg);
        free(msg);
    }
    pl_err_free(&err);
    pl_hugeheap_hold_trims(x->n_warming > 0);
    check_initialized(x);
    arm_timer(x);
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t response_bytes(const Envoy__Service__Discovery__V3__DiscoveryResponse *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_resources; i++)
        n += r->resources[i]->value.len;
    return n;
}

static void failrec_free(struct pl_xds_failrec *f)
{
    free(f->name);
    free(f->why);
    free(f->version);
}

/* Drops type t's failure record i. */
static void failrec_drop(struct pl_xds *x, enum pl_xds_type t, size_t i)
{
    failrec_free(&x->failed[t][i]);
    x->failed[t][i] = x->failed[t][--x->n_failed[t]];
}

/* Keeps config_dump's error_state in step with an update: a resource accepted (or gone) has
 * none; one rejected now gets this attempt's; a whole-set (SotW LDS/CDS) response drops those it
 * no longer carries. */
static void note_failures(struct pl_xds *x, enum pl_xds_type t, const struct pl_xds_update *u,
                          const char *version, bool merge, char *const *removed, size_t n_removed)
{
    if (u->unusable)
        return;
    for (size_t i = 0; i < x->n_failed[t];) {
        const char *name = x->failed[t][i].name;
        bool gone = !merge && !pl_nametab_get(&u->names, name);
        for (size_t k = 0; k < n_removed && !gone; k++)
            gone = !strcmp(removed[k], name);
        for (size_t k = 0; k < u->n && !gone; k++)
            gone = !strcmp(u->recs[k]->res.name, name);
        for (size_t k = 0; k < u->n_fails && !gone; k++)
            gone = !strcmp(u->fails[k].name, name); /* replaced below */
        if (gone)
            failrec_drop(x, t, i);
        else
            i++;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (size_t k = 0; k < u->n_fails; k++) {
        x->failed[t] = pl_realloc(x->failed[t], (x->n_failed[t] + 1) * sizeof(*x->failed[t]));
        x->failed[t][x->n_failed[t]++] = (struct pl_xds_failrec){
            .name = pl_strdup(u->fails[k].name),
            .why = pl_strdup(u->fails[k].why),
            .version = pl_strdup(version),
            .when = now,
        };
    }
}

size_t pl_xds_failures(const struct pl_xds *x, struct pl_dump_failure **out)
{
    static const enum pl_dump_kind kind[PL_XDS_NTYPES] = {
        [PL_XDS_LDS] = PL_DUMP_LISTENER,
        [PL_XDS_CDS] = PL_DUMP_CLUSTER,
        [PL_XDS_RDS] = PL_DUMP_ROUTE,
        [PL_XDS_EDS] = PL_DUMP_ENDPOINT,
    };
    size_t n = 0;
    for (int t = 0; t < PL_XDS_NTYPES; t++)
        n += x->n_failed[t];
    *out = pl_calloc(n + 1, sizeof(**out));
    n = 0;
    for (int t = 0; t < PL_XDS_NTYPES; t++)
        for (size_t i = 0; i < x->n_failed[t]; i++) {
            const struct pl_xds_failrec *f = &x->failed[t][i];
            (*out)[n++] = (struct pl_dump_failure){
                .kind = kind[t],
                .name = f->name,
                .details = f->why,
                .version = f->version,
                .when = f->when,
            };
        }
    return n;
}

/* One response (SotW, or Delta as a SotW response with per-resource versions and removals):
 * every valid resource is applied, the invalid ones keep their previous version; the response is
 * ACKed when all were valid and applied, else NACKed with an error naming each bad resource. */
static void handle(struct pl_xds *x, enum pl_xds_type t,
                   const Envoy__Service__Discovery__V3__DiscoveryResponse *r,
                   const char *const *versions, bool merge, char *const *removed, size_t n_removed)
{
    double t0 = mono_ms();
    size_t bytes = response_bytes(r);
    struct pl_err err = PL_ERR_INIT;
    struct pl_xds_update u;
    /* the records the check keeps are a good part of what an apply allocates: a large response
     * opens the huge-page window before its check, and closes it right after when little of it
     * is new (a SotW resend of the same set with one change) */
    size_t expect = apply_bytes(bytes, r->n_resources);
    bool big = expect >= BIG_APPLY;
    if (big)
        pl_hugeheap_begin(expect);
    int rc = pl_xds_store_check(x, t, r, &u, versions, &err);
    if (big && apply_bytes(u.new_bytes, u.n_new) < BIG_APPLY)
        pl_hugeheap_end();
    /* the snapshot built now shows this version (Envoy's config_dump: the last update that
     * changed anything); put back when nothing changed */
    char *prev_version = x->applied_version[t];
    x->applied_version[t] = pl_strdup(r->version_info);
    int changed =
        u.unusable ? PL_EINVAL : pl_xds_store_update(x, t, &u, merge, removed, n_removed, &err);
    bool all_ok = rc == 0 && changed >= 0 && err.n == 0;
    x->last_apply_ms[t] = mono_ms() - t0;
    x->answered[t] = true;
    if (changed > 0) {
        free(prev_version);
    } else {
        free(x->applied_version[t]);
        x->applied_version[t] = prev_version;
    }
    bump_update(x, t, &u, all_ok, changed >= 0, r->version_info);
    note_failures(x, t, &u, r->version_info, merge, removed, n_removed);
    pl_xds_update_free(&u);
    pl_hugeheap_end();
    if (x->n_warming > 0)
        pl_hugeheap_hold_trims(true);
    if (big)
        pl_hugeheap_trim(); /* a big response's temporaries (once nothing warms) */
    if (x->n_warming == 0)
        pl_hugeheap_hold_trims(false);
    if (all_ok) {
        pl_xds_sub_accept(&x->sub[t], r->version_info, r->nonce);
        pl_log_info("xds", "%s update accepted: version '%s', %zu resources (%.1f ms)",
                    pl_xds_type_name(t), r->version_info, r->n_resources, x->last_apply_ms[t]);
        send_request(x, t, NULL);
    } else {
        char *msg = pl_err_join(&err);
        pl_log_warn("xds", "%s update (version '%s') rejected%s: %s", pl_xds_type_name(t),
                    r->version_info, changed > 0 ? " in part (the valid resources applied)" : "",
                    msg);
        pl_xds_sub_reject(&x->sub[t], r->nonce);
        send_request(x, t, msg);
        free(x->last_nack[t]);
        x->last_nack[t] = msg;
    }
    pl_err_free(&err);
    if (changed > 0 && (t == PL_XDS_CDS || t == PL_XDS_LDS))
        update_subscriptions(x);
    check_initialized(x);
    arm_timer(x);
}

static void on_response(struct pl_xds *x, const Envoy__Service__Discovery__V3__DiscoveryResponse *r)
{
    int t = pl_xds_type_from_url(r->type_url);
    if (t < 0) {
        pl_log_warn("xds", "response of unknown type '%s' ignored", r->type_url);
        return;
    }
    pl_log_debug("xds", "%s response: version '%s' nonce '%s', %zu resources", pl_xds_type_name(t),
                 r->version_info, r->nonce, r->n_resources);
    /* SotW: LDS and CDS responses are the whole set, RDS and EDS by name */
    handle(x, t, r, NULL, t == PL_XDS_EDS || t == PL_XDS_RDS, NULL, 0);
}

/* Delta: resources come with their own versions; removals are explicit. */
static void on_delta_response(struct pl_xds *x,
                              const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *d)
{
    int t = pl_xds_type_from_url(d->type_url);
    if (t < 0) {
        pl_log_warn("xds", "response of unknown type '%s' ignored", d->type_url);
        return;
    }
    pl_log_debug("xds",
                 "%s delta response: system version '%s' nonce '%s', %zu resources, %zu "
                 "removed",
                 pl_xds_type_name(t), d->system_version_info, d->nonce, d->n_resources,
                 d->n_removed_resources);
    /* the resources as a SotW response, so checks and stats are shared */
    Envoy__Service__Discovery__V3__DiscoveryResponse r =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    r.version_info = d->system_version_info;
    r.type_url = d->type_url;
    r.nonce = d->nonce;
    r.resources = pl_calloc(d->n_resources + 1, sizeof(*r.resources));
    const char **versions = pl_calloc(d->n_resources + 1, sizeof(*versions));
    Google__Protobuf__Any empty = GOOGLE__PROTOBUF__ANY__INIT;
    for (size_t i = 0; i < d->n_resources; i++) {
        r.resources[i] = d->resources[i]->resource ? d->resources[i]->resource : &empty;
        versions[i] = d->resources[i]->version;
    }
    r.n_resources = d->n_resources;
    handle(x, t, &r, versions, true, d->removed_resources, d->n_removed_resources);
    free(versions);
    free(r.resources);
}

/* Delta: the first request of a type on a stream: its names and the versions held. */
static void delta_resubscribe(struct pl_xds *x, enum pl_xds_type t)
{
    struct pl_xds_sub *s = &x->sub[t];
    const struct pl_xds_resmap *held = &x->acc[t];
    const char **hn = pl_calloc(held->tab.n + 1, sizeof(*hn));
    const char **hv = pl_calloc(held->tab.n + 1, sizeof(*hv));
    size_t n_held = 0;
    for (size_t i = 0; i < held->tab.cap; i++) {
        const struct pl_xds_res *e = pl_xds_resmap_at(held, i);
        if (e) {
            hn[n_held] = e->rec->res.name;
            hv[n_held++] = e->rec->res.version_info;
        }
    }
    const Envoy__Config__Core__V3__Node *node =
        x->node_first_only && x->stream_node_sent ? NULL : x->node;
    struct pl_xds_delta_opts d = {.node = node,
                                  .subscribe = (const char *const *)s->names,
                                  .n_subscribe = s->wildcard ? 0 : s->n_names,
                                  .held_names = hn,
                                  .held_versions = hv,
                                  .n_held = n_held};
    size_t len;
    bool had_node = s->node_sent;
    uint8_t *buf = pl_xds_sub_delta_request(s, &d, &len);
    if (!had_node && s->node_sent)
        x->stream_node_sent = true;
    free(hn);
    free(hv);
    pl_xds_transport_send(x->tr, x->stream, buf, len);
}

static void on_stream_up(struct pl_xds *x, uint64_t stream)
{
    x->stream = stream;
    x->stream_node_sent = false;
    static const enum pl_xds_type order[] = {PL_XDS_CDS, PL_XDS_EDS, PL_XDS_LDS, PL_XDS_RDS};
    for (size_t k = 0; k < PL_XDS_NTYPES; k++) {
        enum pl_xds_type t = order[k];
        pl_xds_sub_stream_reset(&x->sub[t]);
        /* resubscribe with what is held: version_info tells the server what we have */
        if (!x->enabled[t] || (!x->sub[t].wildcard && !x->sub[t].n_names))
            continue;
        if (x->delta)
            delta_resubscribe(x, t);
        else
            send_request(x, t, NULL);
    }
}

static void on_event(void *arg, struct pl_xds_event *ev)
{
    struct pl_xds *x = arg;
    switch (ev->kind) {
    case PL_XDS_EV_STREAM_UP:
        pl_log_debug("xds", "ADS stream %llu to %s started", (unsigned long long)ev->stream,
                     x->target);
        on_stream_up(x, ev->stream);
        break;
    case PL_XDS_EV_CONNECTED:
        if (ev->stream != x->stream)
            break;
        x->connected = true;
        if (x->connected_state.store)
            pl_gauge_set(x->connected_state, 1);
        pl_log_info("xds", "connected to %s", x->target);
        break;
    case PL_XDS_EV_RESPONSE:
        if (ev->stream == x->stream && ev->resp)
            on_response(x, ev->resp);
        else if (ev->stream == x->stream && ev->delta)
            on_delta_response(x, ev->delta);
        break;
    case PL_XDS_EV_STREAM_DOWN:
        if (ev->stream != x->stream)
            break;
        if (x->connected) {
            pl_log_warn("xds", "ADS stream to %s closed: status %d %s", x->target, ev->status,
                        ev->msg ? ev->msg : "");
            x->fail_warned = 0;
        } else if (!x->fail_warned || ev_now(x->o.loop) - x->fail_warned >= 30.0) {
            /* the first failure in a row says why, then one line every 30 s, not every retry */
            pl_log_warn("xds", "cannot reach the control plane at %s: status %d %s", x->target,
                        ev->status, ev->msg ? ev->msg : "");
            x->fail_warned = ev_now(x->o.loop);
        } else {
            pl_log_debug("xds", "ADS stream to %s failed: status %d %s", x->target, ev->status,
                         ev->msg ? ev->msg : "");
        }
        x->connected = false;
        x->stream = 0;
        x->reconnects++;
        if (x->st_cds.failure.store) { /* Envoy: fetches that failed because of the network */
            if (x->enabled[PL_XDS_CDS])
                pl_counter_inc(x->st_cds.failure);
            if (x->enabled[PL_XDS_LDS])
                pl_counter_inc(x->st_lds.failure);
        }
        if (x->connected_state.store)
            pl_gauge_set(x->connected_state, 0);
        break;
    }
}

/* The TLS of the ADS channel: google_grpc's ssl_credentials, or the envoy_grpc cluster's
 * transport_socket (cl). x->tls stays plaintext without either. */
static int ads_tls(struct pl_xds *x, const Envoy__Config__Core__V3__GrpcService *g,
                   const Envoy__Config__Cluster__V3__Cluster *cl, size_t cl_index,
                   struct pl_err *err)
{
    if (g->target_specifier_case ==
        ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_GOOGLE_GRPC) {
        const Envoy__Config__Core__V3__GrpcService__GoogleGrpc__ChannelCredentials *cc =
            g->google_grpc->channel_credentials;
        if (!cc ||
            cc->credential_specifier_case !=
                ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__GOOGLE_GRPC__CHANNEL_CREDENTIALS__CREDENTIAL_SPECIFIER_SSL_CREDENTIALS)
            return 0;
        const Envoy__Config__Core__V3__GrpcService__GoogleGrpc__SslCredentials *ssl =
            cc->ssl_credentials;
        x->tls_check_host = true;
        return pl_tls_client_material_from_sources(
            ssl->root_certs, ssl->cert_chain, ssl->private_key,
            "dynamic_resources.ads_config.grpc_services[0].google_grpc.channel_credentials."
            "ssl_credentials",
            &x->tls, err);
    }
    if (!cl || !cl->transport_socket)
        return 0;
    char *path = pl_asprintf("static_resources.clusters[%zu].transport_socket", cl_index);
    int rc = pl_tls_client_material_from_transport_socket(cl->transport_socket, path, &x->tls, err);
    free(path);
    return rc;
}

/* The gRPC target of the ADS cluster: google_grpc's target_uri, or the envoy_grpc cluster's
 * first endpoint; and the channel's TLS (x->tls). */
static char *ads_target(struct pl_xds *x, const pl_bootstrap_t *b, struct pl_err *err)
{
    const Envoy__Config__Core__V3__ApiConfigSource *a = b->dynamic_resources->ads_config;
    if (!a || a->n_grpc_services != 1) {
        pl_err_add(err, NULL, 0, 0, "dynamic_resources.ads_config", "no ADS gRPC service");
        return NULL;
    }
    const Envoy__Config__Core__V3__GrpcService *g = a->grpc_services[0];
    if (g->target_specifier_case ==
        ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_GOOGLE_GRPC)
        return ads_tls(x, g, NULL, 0, err) ? NULL : pl_strdup(g->google_grpc->target_uri);
    const char *cn = g->envoy_grpc ? g->envoy_grpc->cluster_name : "";
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
    for (size_t i = 0; sr && i < sr->n_clusters; i++) {
        const Envoy__Config__Cluster__V3__Cluster *cl = sr->clusters[i];
        if (strcmp(cl->name, cn))
            continue;
        if (ads_tls(x, g, cl, i, err))
            return NULL;
        const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = cl->load_assignment;
        for (size_t j = 0; la && j < la->n_endpoints; j++)
            for (size_t k = 0; k < la->endpoints[j]->n_lb_endpoints; k++) {
                const Envoy__Config__Endpoint__V3__LbEndpoint *ep =
                    la->endpoints[j]->lb_endpoints[k];
                if (!ep->endpoint || !ep->endpoint->address ||
                    !ep->endpoint->address->socket_address)
                    continue;
                const Envoy__Config__Core__V3__SocketAddress *sa =
                    ep->endpoint->address->socket_address;
                struct pl_addr pa;
                const char *why;
                if (pl_addr_from_proto(ep->endpoint->address, &pa, &why) == 0)
                    return pa.ss.ss_family == AF_INET6
                               ? pl_asprintf("ipv6:[%s]:%u", sa->address, sa->port_value)
                               : pl_asprintf("ipv4:%s:%u", sa->address, sa->port_value);
                return pl_asprintf("dns:///%s:%u", sa->address, sa->port_value);
            }
    }
    pl_err_add(err, NULL, 0, 0, "dynamic_resources.ads_config",
               "the ADS cluster '%s' has no endpoint", cn);
    return NULL;
}

static double fetch_timeout(const Envoy__Config__Core__V3__ConfigSource *cs)
{
    if (cs && cs->initial_fetch_timeout)
        return (double)cs->initial_fetch_timeout->seconds + cs->initial_fetch_timeout->nanos / 1e9;
    return 15.0;
}

int pl_xds_start(const struct pl_xds_opts *o, struct pl_xds **out, struct pl_err *err)
{
    const pl_bootstrap_t *b = o->bootstrap;
    if (!b->dynamic_resources)
        return pl_err_add(err, NULL, 0, 0, NULL, "xds: the bootstrap has no dynamic_resources");
    struct pl_xds *x = pl_calloc(1, sizeof(*x));
    x->o = *o;
    x->boot = b;
    x->target = ads_target(x, b, err);
    if (!x->target) {
        pl_tls_client_material_free(&x->tls);
        free(x);
        return PL_EINVAL;
    }
    x->node = pl_malloc(sizeof(*x->node));
    envoy__config__core__v3__node__init(x->node);
    if (b->node) { /* id, cluster, metadata, locality as configured */
        envoy__config__core__v3__node__free_unpacked(x->node, NULL);
        size_t n = protobuf_c_message_get_packed_size(&b->node->base);
        uint8_t *buf = pl_malloc(n ? n : 1);
        protobuf_c_message_pack(&b->node->base, buf);
        x->node = envoy__config__core__v3__node__unpack(NULL, n, buf);
        free(buf);
    }
    if (x->node->user_agent_name != protobuf_c_empty_string)
        free(x->node->user_agent_name);
    x->node->user_agent_name = pl_strdup("pillion");
    if (x->node->user_agent_version_type_case ==
        ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE__NOT_SET) {
        x->node->user_agent_version_type_case =
            ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION;
        x->node->user_agent_version = pl_strdup(PL_XDS_USER_AGENT_VERSION);
    }
    const Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *d = b->dynamic_resources;
    x->node_first_only = d->ads_config && d->ads_config->set_node_on_first_message_only;
    x->delta =
        d->ads_config &&
        d->ads_config->api_type == ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__DELTA_GRPC;
    for (int t = 0; t < PL_XDS_NTYPES; t++) {
        pl_xds_sub_init(&x->sub[t], t);
        pl_xds_resmap_init(&x->acc[t]);
        x->fetch_timeout_s[t] = 15.0;
    }
    x->enabled[PL_XDS_CDS] = d->cds_config != NULL;
    x->enabled[PL_XDS_LDS] = d->lds_config != NULL;
    x->fetch_timeout_s[PL_XDS_CDS] = fetch_timeout(d->cds_config);
    x->fetch_timeout_s[PL_XDS_LDS] = fetch_timeout(d->lds_config);
    if (o->stats) {
        x->st_cds = type_stats(o->stats, "cluster_manager.cds", "");
        x->st_lds = type_stats(o->stats, "listener_manager.lds", "");
        x->connected_state = pl_stats_gauge(o->stats, "control_plane.connected_state");
        x->inert_fields = pl_stats_counter(o->stats, "server.dynamic_inert_fields");
        x->active_clusters = pl_stats_gauge(o->stats, "cluster_manager.active_clusters");
        x->warming_clusters = pl_stats_gauge(o->stats, "cluster_manager.warming_clusters");
        x->active_listeners = pl_stats_gauge(o->stats, "listener_manager.total_listeners_active");
        x->warming_listeners = pl_stats_gauge(o->stats, "listener_manager.total_listeners_warming");
    }
    x->start_time = ev_now(o->loop);
    ev_init(&x->timer, timer_cb);
    x->timer.data = x;
    /* the static part serves at once; its RDS/EDS names are the first subscriptions */
    if (pl_xds_store_rebuild(x, NULL, err) < 0) {
        pl_xds_free(x);
        return PL_EINVAL;
    }
    update_subscriptions(x);
    struct pl_xds_transport_opts to = {.target = x->target,
                                       .delta = x->delta,
                                       .loop = o->loop,
                                       .on_event = on_event,
                                       .arg = x,
                                       .tls = &x->tls,
                                       .tls_check_host = x->tls_check_host};
    x->tr = pl_xds_transport_new(&to, err);
    if (!x->tr) {
        pl_xds_free(x);
        return PL_EINVAL;
    }
    arm_timer(x);
    pl_log_info("xds", "ADS client started: %s", x->target);
    *out = x;
    return 0;
}

void pl_xds_free(struct pl_xds *x)
{
    if (!x)
        return;
    pl_xds_transport_free(x->tr);
    ev_timer_stop(x->o.loop, &x->timer);
    for (int t = 0; t < PL_XDS_NTYPES; t++) {
        pl_xds_sub_free(&x->sub[t]);
        free(x->last_nack[t]);
        free(x->applied_version[t]);
    }
    pl_xds_store_free(x);
    pl_hugeheap_hold_trims(false); /* nothing is on its way any more */
    if (x->node)
        envoy__config__core__v3__node__free_unpacked(x->node, NULL);
    free(x->target);
    pl_tls_client_material_free(&x->tls);
    for (int t = 0; t < PL_XDS_NTYPES; t++) {
        for (size_t i = 0; i < x->n_failed[t]; i++)
            failrec_free(&x->failed[t][i]);
        free(x->failed[t]);
    }
    free(x);
}

bool pl_xds_initialized(const struct pl_xds *x)
{
    return !x || x->initialized;
}

const char *pl_xds_init_state(const struct pl_xds *x)
{
    if (!x || x->initialized)
        return "LIVE";
    return x->connected || x->reconnects ? "INITIALIZING" : "PRE_INITIALIZING";
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

#define STATUS_NAMES 100

char *pl_xds_status_json(const struct pl_xds *x)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        pl_die("out of memory");
    fprintf(f, "{\"target\": ");
    json_str(f, x->target);
    fprintf(f,
            ", \"api_type\": \"%s\", \"connected\": %s, \"reconnects\": %u, \"init_state\": "
            "\"%s\", \"types\": {",
            x->delta ? "DELTA_GRPC" : "GRPC", x->connected ? "true" : "false", x->reconnects,
            pl_xds_init_state(x));
    for (int t = 0; t < PL_XDS_NTYPES; t++) {
        const struct pl_xds_sub *s = &x->sub[t];
        fprintf(f, "%s\"%s\": {\"type_url\": \"%s\", \"version_info\": ", t ? ", " : "",
                pl_xds_type_name(t), pl_xds_type_url(t));
        json_str(f, s->version);
        fprintf(f, ", \"nonce\": ");
        json_str(f, s->nonce);
        fprintf(f,
                ", \"resources\": %zu, \"last_apply_ms\": %.3f, \"subscribed_count\": %zu, "
                "\"subscribed\": [",
                x->acc[t].tab.n, x->last_apply_ms[t], s->wildcard ? 0 : s->n_names);
        if (s->wildcard)
            fprintf(f, "\"*\"");
        /* the first names only: a status line, not a dump (10,000 EDS names are 200 kB) */
        for (size_t i = 0; !s->wildcard && i < s->n_names && i < STATUS_NAMES; i++) {
            fprintf(f, "%s", i ? ", " : "");
            json_str(f, s->names[i]);
        }
        fprintf(f, "], \"last_nack\": ");
        if (x->last_nack[t])
            json_str(f, x->last_nack[t]);
        else
            fprintf(f, "null");
        fprintf(f, "}");
    }
    fprintf(f, "}}");
    fclose(f);
    return buf;
}
