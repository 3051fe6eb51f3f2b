/* Accepted xDS resources: checking a response resource by resource, applying what is valid
 * (with an undo log), and the RDS/EDS names the accepted resources need. */
#include <stdlib.h>
#include <string.h>

#include "config/validate.h"
#include "core/arena.h"
#include "core/log.h"
#include "upstream/upstream.h"
#include "xds/client_internal.h"

#define LISTENER_T   Envoy__Config__Listener__V3__Listener
#define CLUSTER_T    Envoy__Config__Cluster__V3__Cluster
#define CLA_T        Envoy__Config__Endpoint__V3__ClusterLoadAssignment
#define ROUTE_T      Envoy__Config__Route__V3__RouteConfiguration
#define RESOURCE_T   Envoy__Service__Discovery__V3__Resource
#define RESOURCE_URL "type.googleapis.com/envoy.service.discovery.v3.Resource"
#define CLUSTER(x)   ENVOY__CONFIG__CLUSTER__V3__##x

/* ---- records and maps ----------------------------------------------------------------------- */

static void rec_free(struct pl_shared *sh)
{
    struct pl_xds_rec *r = (struct pl_xds_rec *)sh;
    if (r->res.msg && !r->msg_in_arena)
        protobuf_c_message_free_unpacked((ProtobufCMessage *)r->res.msg, NULL);
    free(r);
}

void pl_xds_rec_trim(struct pl_xds_rec *r)
{
    if (r->type != PL_XDS_LDS && r->res.msg) {
        if (!r->msg_in_arena)
            protobuf_c_message_free_unpacked((ProtobufCMessage *)r->res.msg, NULL);
        r->res.msg = NULL;
        r->msg_in_arena = false;
    }
}

static double source_timeout(const Envoy__Config__Core__V3__ConfigSource *cs)
{
    if (cs && cs->initial_fetch_timeout) /* 0: wait forever */
        return (double)cs->initial_fetch_timeout->seconds + cs->initial_fetch_timeout->nanos / 1e9;
    return 15.0; /* Envoy's default */
}

/* A record and its strings and encoding are one allocation: tens of thousands of them are held
 * (a cluster and its assignment each), and four small allocations each cost more in headers and
 * rounding than their contents. An EDS cluster that names no service_name shares its name. */
static struct pl_xds_rec *rec_new(enum pl_xds_type t, const char *name, ProtobufCMessage *msg,
                                  const ProtobufCBinaryData *enc, const char *version,
                                  uint64_t hash, const struct timespec *now)
{
    const char *svc = NULL;
    if (t == PL_XDS_CDS && !pl_xds_cluster_eds_name((const CLUSTER_T *)msg, &svc))
        svc = NULL;
    size_t nl = strlen(name) + 1, vl = strlen(version) + 1;
    size_t sl = svc && strcmp(svc, name) ? strlen(svc) + 1 : 0;
    struct pl_xds_rec *r = pl_calloc(1, sizeof(*r) + nl + vl + sl + enc->len);
    char *p = (char *)(r + 1);
    r->res.name = memcpy(p, name, nl);
    r->res.version_info = memcpy(p += nl, version, vl);
    p += vl;
    if (svc) {
        r->res.eds_name = sl ? memcpy(p, svc, sl) : r->res.name;
        p += sl;
    }
    if (enc->len)
        memcpy(p, enc->data, enc->len);
    r->res.bytes = (const uint8_t *)p;
    r->res.len = enc->len;
    r->res.msg = msg;
    r->res.hash = hash;
    r->res.last_updated = *now;
    r->res.owner = &r->sh;
    r->res.decode_plain = t == PL_XDS_EDS ? pl_xds_cla_decode_plain : NULL;
    atomic_init(&r->sh.refs, 1);
    r->sh.free = rec_free;
    r->type = t;
    if (svc) {
        const CLUSTER_T *cl = (const CLUSTER_T *)msg;
        r->warm_timeout = source_timeout(cl->eds_cluster_config->eds_config);
    } else if (t == PL_XDS_LDS) {
        r->warm_timeout = pl_xds_rds_timeout((const LISTENER_T *)msg);
    }
    return r;
}

struct pl_xds_rec *pl_xds_rec_ref(struct pl_xds_rec *r)
{
    pl_shared_ref(&r->sh);
    return r;
}

void pl_xds_rec_unref(struct pl_xds_rec *r)
{
    if (r)
        pl_shared_unref(&r->sh);
}

static const char *res_key(const void *item)
{
    return ((const struct pl_xds_res *)item)->rec->res.name;
}

void pl_xds_resmap_init(struct pl_xds_resmap *m)
{
    pl_nametab_init(&m->tab, res_key);
}

static void res_free(struct pl_xds_res *e)
{
    if (e) {
        pl_xds_rec_unref(e->rec);
        pl_xds_rec_unref(e->serving);
        free(e);
    }
}

static int drop_all(void *item, void *arg)
{
    (void)arg;
    res_free(item);
    return 0;
}

void pl_xds_resmap_free(struct pl_xds_resmap *m)
{
    pl_nametab_filter(&m->tab, drop_all, NULL);
    pl_nametab_clear(&m->tab);
}

struct pl_xds_res *pl_xds_resmap_get(const struct pl_xds_resmap *m, const char *name)
{
    return pl_nametab_get(&m->tab, name);
}

const struct pl_xds_rec *pl_xds_resmap_rec(const struct pl_xds_resmap *m, const char *name)
{
    const struct pl_xds_res *e = pl_nametab_get(&m->tab, name);
    return e ? e->rec : NULL;
}

static const char *str_key(const void *item)
{
    return item;
}

void pl_xds_update_free(struct pl_xds_update *u)
{
    pl_nametab_clear(&u->names); /* before the recs its names borrow from */
    for (size_t i = 0; i < u->n; i++) {
        pl_xds_rec_trim(u->recs[i]); /* applied and compiled: keep the encoding only */
        pl_xds_rec_unref(u->recs[i]);
    }
    free(u->recs);
    for (size_t i = 0; i < u->n_bad; i++)
        free(u->bad[i]);
    free(u->bad);
    for (size_t i = 0; i < u->n_fails; i++) {
        free(u->fails[i].name);
        free(u->fails[i].why);
    }
    free(u->fails);
    pl_xds_arena_release(&u->arena); /* after every rec was trimmed */
    memset(u, 0, sizeof(*u));
}

/* ---- checks --------------------------------------------------------------------------------- */

static const char *res_name(enum pl_xds_type t, const ProtobufCMessage *m)
{
    switch (t) {
    case PL_XDS_CDS:
        return ((const CLUSTER_T *)m)->name;
    case PL_XDS_EDS:
        return ((const CLA_T *)m)->cluster_name;
    case PL_XDS_LDS:
        return ((const LISTENER_T *)m)->name;
    default:
        return ((const ROUTE_T *)m)->name;
    }
}

static const char *const kinds[PL_XDS_NTYPES] = {[PL_XDS_CDS] = "Cluster",
                                                 [PL_XDS_EDS] = "ClusterLoadAssignment",
                                                 [PL_XDS_LDS] = "Listener",
                                                 [PL_XDS_RDS] = "RouteConfiguration"};

/* Moves sub's errors into err, each path prefixed with the resource. */
/* Notes why name failed: the errors of err from index from on, joined. */
static void note_fail(struct pl_xds_update *u, const char *name, const struct pl_err *err,
                      size_t from)
{
    struct pl_err view = {.v = err->v + from, .n = err->n - from, .cap = 0};
    u->fails = pl_realloc(u->fails, (u->n_fails + 1) * sizeof(*u->fails));
    u->fails[u->n_fails].name = pl_strdup(name);
    u->fails[u->n_fails++].why = pl_err_join(&view);
}

static void move_errors(struct pl_err *err, struct pl_err *sub, const char *where)
{
    for (size_t i = 0; i < sub->n; i++) {
        const struct pl_err_entry *e = &sub->v[i];
        char *path = e->path && *e->path ? pl_asprintf("%s.%s", where, e->path) : pl_strdup(where);
        pl_err_add(err, NULL, 0, 0, path, "%s", e->msg);
        free(path);
    }
    pl_err_free(sub);
}

/* The endpoint checks of pl_validate_cluster, run on an assignment as a STATIC cluster's. */
static int validate_cla(struct pl_vctx *vc, const CLA_T *la)
{
    if (!*la->cluster_name)
        return pl_err_add(vc->err, NULL, 0, 0, "cluster_name", "cluster_name is required");
    CLUSTER_T cl = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    cl.name = la->cluster_name;
    cl.load_assignment = (CLA_T *)la;
    return pl_validate_cluster(vc, &cl);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Cluster names a listener may reference: static ones and the accepted CDS clusters. */
static const char **known_clusters(struct pl_xds *x, size_t *n)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = x->boot->static_resources;
    size_t ns = sr ? sr->n_clusters : 0;
    const struct pl_xds_resmap *c = &x->acc[PL_XDS_CDS];
    const char **v = pl_calloc(ns + c->tab.n + 1, sizeof(*v));
    *n = 0;
    for (size_t i = 0; i < ns; i++)
        v[(*n)++] = sr->clusters[i]->name;
    for (size_t i = 0; i < c->tab.cap; i++)
        if (pl_xds_resmap_at(c, i))
            v[(*n)++] = pl_xds_resmap_at(c, i)->rec->res.name;
    return v;
}

/* fields_known: m came from pl_xds_cla_decode, pl_xds_rc_decode or pl_xds_cluster_decode, which
 * take only implemented fields (the field walk would find nothing); valid_known: it also found
 * the assignment plainly valid. */
static int check_one(struct pl_xds *x, enum pl_xds_type t, const ProtobufCMessage *m,
                     bool fields_known, bool valid_known, struct pl_err *err)
{
    struct pl_vctx vc = {.err = err, .ads = true};
    size_t inert = 0;
    int rc = fields_known ? 0 : pl_xds_check_fields(m, NULL, &inert, err);
    if (inert && x->inert_fields.store) /* metadata, descriptions: accepted and counted */
        pl_counter_add(x->inert_fields, inert);
    switch (t) {
    case PL_XDS_CDS:
        rc |= pl_validate_cluster(&vc, (const CLUSTER_T *)m);
        break;
    case PL_XDS_EDS:
        if (!valid_known)
            rc |= validate_cla(&vc, (const CLA_T *)m);
        break;
    case PL_XDS_LDS: {
        size_t n;
        const char **names = known_clusters(x, &n);
        qsort(names, n, sizeof(*names), cmp_cstr);
        vc.clusters = names;
        vc.n_clusters = n;
        vc.clusters_sorted = true;
        rc |= pl_validate_listener(&vc, (const LISTENER_T *)m);
        if (!*((const LISTENER_T *)m)->name)
            rc |= pl_err_add(err, NULL, 0, 0, "name", "a listener needs a name");
        free(names);
        break;
    }
    default:
        if (!*((const ROUTE_T *)m)->name)
            rc |= pl_err_add(err, NULL, 0, 0, "name", "a route configuration needs a name");
        rc |= pl_validate_route_config(&vc, (const ROUTE_T *)m);
    }
    return rc ? PL_EINVAL : 0;
}

/* The name of an encoded resource without decoding it: field 1 (name / cluster_name) of all
 * four types, when it is a well-formed string. NULL when it is absent or the bytes are not
 * well-formed up to it; *len gets its length. */
static const char *wire_name(const uint8_t *p, size_t n, size_t *len)
{
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t tag = 0, v = 0;
        for (int s = 0; p < end && s < 64; s += 7) {
            tag |= (uint64_t)(*p & 0x7f) << s;
            if (!(*p++ & 0x80))
                goto have_tag;
        }
        return NULL;
    have_tag:
        switch (tag & 7) {
        case 0: /* varint */
            while (p < end && (*p & 0x80))
                p++;
            if (p++ >= end)
                return NULL;
            break;
        case 1:
            p += 8;
            break;
        case 5:
            p += 4;
            break;
        case 2:
            for (int s = 0; p < end && s < 64; s += 7) {
                v |= (uint64_t)(*p & 0x7f) << s;
                if (!(*p++ & 0x80))
                    goto have_len;
            }
            return NULL;
        have_len:
            if (v > (uint64_t)(end - p))
                return NULL;
            if (tag >> 3 == 1) {
                *len = (size_t)v;
                return (const char *)p;
            }
            p += v;
            break;
        default:
            return NULL;
        }
    }
    return NULL;
}

/* The accepted resource whose encoding is exactly a's, if its name is the one a carries;
 * *held: a resource of that name is accepted (false also when the name cannot be read here). */
static struct pl_xds_rec *unchanged(struct pl_xds *x, enum pl_xds_type t,
                                    const Google__Protobuf__Any *a, uint64_t hash, bool *held)
{
    *held = false;
    size_t len;
    const char *wn = wire_name(a->value.data, a->value.len, &len);
    if (!wn || len == 0 || len > 1024)
        return NULL;
    char name[1025];
    memcpy(name, wn, len);
    name[len] = '\0';
    struct pl_xds_res *e = pl_xds_resmap_get(&x->acc[t], name);
    *held = e != NULL;
    return e && e->rec->res.hash == hash ? e->rec : NULL;
}

int pl_xds_store_check(struct pl_xds *x, enum pl_xds_type t,
                       const Envoy__Service__Discovery__V3__DiscoveryResponse *r,
                       struct pl_xds_update *u, const char *const *versions, struct pl_err *err)
{
    int rc = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    memset(u, 0, sizeof(*u));
    pl_nametab_init(&u->names, str_key);
    pl_nametab_reserve(&u->names, r->n_resources);
    u->recs = pl_calloc(r->n_resources + 1, sizeof(*u->recs));
    ProtobufCAllocator alloc = pl_xds_arena_allocator(&u->arena);
    /* clusters and assignments are decoded into memory used again for each (a check keeps
     * none of them decoded: what is new compiles from its encoding); route configurations into
     * the update's arena, kept to the compile */
    struct pl_arena one = PL_ARENA_INIT;
    ProtobufCAllocator one_alloc = pl_arena_pb_allocator(&one);
    ProtobufCAllocator *dec = t == PL_XDS_CDS || t == PL_XDS_EDS ? &one_alloc : &alloc;
    char where[320];
    for (size_t i = 0; i < r->n_resources; i++) {
        pl_arena_free(&one);
        const Google__Protobuf__Any *a = r->resources[i];
        const char *version = versions ? versions[i] : r->version_info;
        if (!strcmp(a->type_url, RESOURCE_URL)) {
            /* a control plane may wrap each resource in a discovery Resource, as Envoy
             * accepts in SotW too: its version (when set) is the resource's own */
            const RESOURCE_T *w = (const RESOURCE_T *)protobuf_c_message_unpack(
                &envoy__service__discovery__v3__resource__descriptor, &alloc, a->value.len,
                a->value.data);
            snprintf(where, sizeof(where), "resources[%zu]", i);
            if (!w) {
                rc = pl_err_add(err, NULL, 0, 0, where, "cannot decode %s", a->type_url);
                u->unusable = true;
                continue;
            }
            if (*w->version)
                version = w->version;
            if (!w->resource) {
                /* a heartbeat (Envoy's resource TTL): the held resource stays as it is */
                struct pl_xds_res *e = pl_xds_resmap_get(&x->acc[t], w->name);
                if (!*w->name || !e) {
                    rc = pl_err_add(err, NULL, 0, 0, where,
                                    "a Resource without a resource (a heartbeat) for '%.256s', "
                                    "which is not held",
                                    w->name);
                    u->unusable = true;
                    continue;
                }
                if (!pl_nametab_get(&u->names, e->rec->res.name)) {
                    u->recs[u->n++] = pl_xds_rec_ref(e->rec);
                    pl_nametab_put(&u->names, (void *)e->rec->res.name);
                }
                continue;
            }
            a = w->resource;
        }
        if (strcmp(a->type_url, r->type_url)) {
            snprintf(where, sizeof(where), "resources[%zu]", i);
            rc = pl_err_add(err, NULL, 0, 0, where, "type '%s' in a response of type '%s'",
                            a->type_url, r->type_url);
            u->unusable = true;
            continue;
        }
        uint64_t hash = pl_upstream_xxhash64(a->value.data, a->value.len, 0);
        bool held;
        struct pl_xds_rec *same = unchanged(x, t, a, hash, &held);
        const char *name = same ? same->res.name : NULL;
        ProtobufCMessage *m = NULL;
        const struct pl_cla_plain *plain = NULL;
        bool fields_known = false, valid_known = false;
        if (!same && t == PL_XDS_EDS) { /* the common shapes, decoded directly */
            plain = pl_xds_cla_decode_plain(a->value.data, a->value.len, dec);
            if (plain) {
                name = plain->cluster_name;
                fields_known = valid_known = true;
            } else {
                m = (ProtobufCMessage *)pl_xds_cla_decode(a->value.data, a->value.len, dec,
                                                          &valid_known);
                fields_known = m != NULL;
            }
        } else if (!same && t == PL_XDS_RDS) {
            m = (ProtobufCMessage *)pl_xds_rc_decode(a->value.data, a->value.len, dec);
            fields_known = m != NULL;
        } else if (!same && t == PL_XDS_CDS) {
            m = (ProtobufCMessage *)pl_xds_cluster_decode(a->value.data, a->value.len, dec);
            fields_known = m != NULL;
        }
        if (!same && !m && !plain) {
            m = protobuf_c_message_unpack(pl_xds_type_desc(t), t == PL_XDS_LDS ? NULL : dec,
                                          a->value.len, a->value.data);
            if (!m) {
                snprintf(where, sizeof(where), "resources[%zu]", i);
                rc = pl_err_add(err, NULL, 0, 0, where, "cannot decode %s", a->type_url);
                u->unusable = true;
                continue;
            }
        }
        if (m)
            name = res_name(t, m);
        if (pl_nametab_get(&u->names, name)) { /* the first of a name counts, as in Envoy */
            snprintf(where, sizeof(where), "%s '%.256s'", kinds[t], name);
            rc = pl_err_add(err, NULL, 0, 0, where, "duplicate %s name '%s' in one response",
                            kinds[t], name);
            if (m && t == PL_XDS_LDS)
                protobuf_c_message_free_unpacked(m, NULL);
            continue;
        }
        if (same) {
            u->recs[u->n++] = pl_xds_rec_ref(same);
            pl_nametab_put(&u->names, (void *)same->res.name); /* names borrow from recs and bad */
            continue;
        }
        struct pl_err sub = PL_ERR_INIT;
        if (check_one(x, t, m, fields_known, valid_known, &sub) < 0) {
            rc = PL_EINVAL;
            snprintf(where, sizeof(where), "%s '%.256s'", kinds[t], name);
            size_t from = err->n;
            move_errors(err, &sub, where);
            if (*name)
                note_fail(u, name, err, from);
            if (!*name)
                u->unusable = true; /* cannot be told apart from others: nothing applies */
            u->bad = pl_realloc(u->bad, (u->n_bad + 1) * sizeof(*u->bad));
            u->bad[u->n_bad] = pl_strdup(name);
            pl_nametab_put(&u->names, u->bad[u->n_bad++]);
            if (t == PL_XDS_LDS)
                protobuf_c_message_free_unpacked(m, NULL);
            continue;
        }
        pl_err_free(&sub);
        struct pl_xds_rec *rec = rec_new(t, name, m, &a->value, version, hash, &now);
        if (t == PL_XDS_RDS) {
            rec->msg_in_arena = true;
        } else if (t != PL_XDS_LDS) {
            rec->res.msg = NULL; /* in `one`, used again for the next resource */
        }
        u->recs[u->n++] = rec;
        u->n_new++;
        u->n_unheld += !held;
        u->new_bytes += a->value.len;
        pl_nametab_put(&u->names, (void *)rec->res.name);
    }
    pl_arena_free(&one);
    return rc < 0 ? PL_EINVAL : 0;
}

/* ---- updates -------------------------------------------------------------------------------- */

/* One change to an accepted set, with what it replaced (NULL: the name was new). */
struct change {
    char *name;
    struct pl_xds_res *old;
    bool reverted; /* old is back in the map (it failed to compile) */
};

struct undo {
    enum pl_xds_type t;
    struct change *v;
    size_t n, cap;
};

/* Sets name's entry to rec (a reference moved in; NULL removes it), logging the old one. */
static void set_entry(struct pl_xds *x, struct undo *u, const char *name, struct pl_xds_rec *rec)
{
    struct pl_xds_resmap *m = &x->acc[u->t];
    struct pl_xds_res *old = pl_nametab_del(&m->tab, name);
    if (rec) {
        struct pl_xds_res *e = pl_calloc(1, sizeof(*e));
        e->rec = rec;
        if (old && old->serving) /* the previous version serves while the new one warms */
            e->serving = pl_xds_rec_ref(old->serving);
        pl_nametab_put(&m->tab, e);
    }
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 16;
        u->v = pl_realloc(u->v, u->cap * sizeof(*u->v));
    }
    u->v[u->n++] = (struct change){.name = pl_strdup(name), .old = old};
}

/* Puts back what the changes at positions [from, n) replaced, newest first. */
static void undo_to(struct pl_xds *x, struct undo *u, size_t from)
{
    struct pl_xds_resmap *m = &x->acc[u->t];
    while (u->n > from) {
        struct change *c = &u->v[--u->n];
        if (!c->reverted) {
            res_free(pl_nametab_del(&m->tab, c->name));
            if (c->old)
                pl_nametab_put(&m->tab, c->old);
        }
        free(c->name);
    }
}

static void undo_commit(struct undo *u)
{
    for (size_t i = 0; i < u->n; i++) {
        if (!u->v[i].reverted)
            res_free(u->v[i].old);
        free(u->v[i].name);
    }
    free(u->v);
}

/* Logs the changes u makes to the accepted set of its type. */
static void apply(struct pl_xds *x, struct undo *un, struct pl_xds_update *u, bool merge,
                  char *const *removed, size_t n_removed)
{
    struct pl_xds_resmap *m = &x->acc[un->t];
    /* the table and the log sized once (grown by doubling, 10,000 new names touched twice their
     * final size in copies given up): the check counted the new recs (each one change) and the
     * names not held among them */
    pl_nametab_reserve(&m->tab, m->tab.n + u->n_unheld);
    if (u->n_new > un->cap) {
        un->cap = u->n_new;
        un->v = pl_realloc(un->v, un->cap * sizeof(*un->v));
    }
    for (size_t i = 0; i < u->n; i++) {
        const struct pl_xds_res *e = pl_xds_resmap_get(m, u->recs[i]->res.name);
        if (e && e->rec == u->recs[i])
            continue; /* unchanged: not a change */
        set_entry(x, un, u->recs[i]->res.name, pl_xds_rec_ref(u->recs[i]));
    }
    if (!merge) { /* SotW LDS/CDS: the response is the whole set */
        /* collected first: set_entry changes the table (a walk over it, not a rebuild) */
        char **absent = NULL;
        size_t n_absent = 0;
        for (size_t i = 0; i < m->tab.cap; i++) {
            const struct pl_xds_res *e = pl_xds_resmap_at(m, i);
            if (!e || pl_nametab_get(&u->names, e->rec->res.name))
                continue;
            if (!absent)
                absent = pl_malloc(m->tab.n * sizeof(*absent));
            absent[n_absent++] = pl_strdup(e->rec->res.name);
        }
        for (size_t i = 0; i < n_absent; i++) {
            set_entry(x, un, absent[i], NULL);
            free(absent[i]);
        }
        free(absent);
    }
    for (size_t i = 0; i < n_removed; i++) /* a name both sent and removed: sent wins */
        if (pl_xds_resmap_get(m, removed[i]) && !pl_nametab_get(&u->names, removed[i]))
            set_entry(x, un, removed[i], NULL);
}

/* The failures of type t's resources among f. */
static void failed_of(enum pl_xds_type t, const struct pl_compile_failures *f, const char ***v,
                      size_t *n)
{
    *v = t == PL_XDS_CDS ? f->clusters : t == PL_XDS_LDS ? f->listeners : f->routes;
    *n = t == PL_XDS_CDS ? f->n_clusters : t == PL_XDS_LDS ? f->n_listeners : f->n_routes;
    if (t == PL_XDS_EDS) { /* an assignment fails as its cluster */
        *v = f->clusters;
        *n = f->n_clusters;
    }
}

/* Reverts the logged changes of the names in failed (they keep their previous version). */
static size_t revert_names(struct pl_xds *x, struct undo *un, const char **failed, size_t n)
{
    struct pl_nametab fs;
    pl_nametab_init(&fs, str_key);
    for (size_t k = 0; k < n; k++)
        pl_nametab_put(&fs, (void *)failed[k]);
    size_t reverted = 0;
    struct pl_xds_resmap *m = &x->acc[un->t];
    for (size_t i = 0; i < un->n; i++) {
        struct change *c = &un->v[i];
        if (c->reverted || !pl_nametab_get(&fs, c->name))
            continue;
        res_free(pl_nametab_del(&m->tab, c->name));
        if (c->old)
            pl_nametab_put(&m->tab, c->old);
        c->reverted = true;
        reverted++;
    }
    pl_nametab_clear(&fs);
    return reverted;
}

static void failures_free(struct pl_compile_failures *f)
{
    free(f->listeners);
    free(f->clusters);
    free(f->routes);
    memset(f, 0, sizeof(*f));
}

int pl_xds_store_update(struct pl_xds *x, enum pl_xds_type t, struct pl_xds_update *u, bool merge,
                        char *const *removed, size_t n_removed, struct pl_err *err)
{
    struct undo un = {.t = t};
    apply(x, &un, u, merge, removed, n_removed);
    size_t changes = un.n;
    if (!changes) /* the same again (SotW resends everything): nothing to build */
        return 0;
    if (t == PL_XDS_CDS || t == PL_XDS_EDS)
        pl_xds_store_clusters_changed(x);
    struct pl_compile_failures f = {0};
    struct pl_err first = PL_ERR_INIT;
    int rc = pl_xds_store_rebuild(x, &f, &first);
    if (rc < 0) {
        /* resources of this update that do not compile keep their previous version; the rest
         * is tried once more (everything else comes from the compile cache) */
        const char **names;
        size_t n;
        failed_of(t, &f, &names, &n);
        size_t reverted = n ? revert_names(x, &un, names, n) : 0;
        for (size_t i = 0; i < n; i++) /* a compile error names its resource itself */
            if (pl_nametab_get(&u->names, names[i]))
                note_fail(u, names[i], &first, 0);
        if (reverted) {
            changes -= reverted;
            struct pl_err again = PL_ERR_INIT;
            rc = pl_xds_store_rebuild(x, NULL, &again);
            pl_err_free(&again);
        }
        pl_err_move(err, &first);
        if (rc < 0) {
            undo_to(x, &un, 0);
            changes = 0;
        }
    }
    pl_err_free(&first);
    failures_free(&f);
    undo_commit(&un);
    return rc < 0 ? PL_EINVAL : (int)changes;
}

/* ---- names the accepted resources need ------------------------------------------------------ */

bool pl_xds_cluster_eds_name(const CLUSTER_T *cl, const char **svc)
{
    if (!cl)
        return false;
    if (cl->cluster_discovery_type_case != CLUSTER(CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE) ||
        cl->type != CLUSTER(CLUSTER__DISCOVERY_TYPE__EDS))
        return false;
    *svc = cl->eds_cluster_config && *cl->eds_cluster_config->service_name
               ? cl->eds_cluster_config->service_name
               : cl->name;
    return true;
}

static void add_name(struct pl_nametab *seen, char ***v, size_t *n, const char *name)
{
    if (pl_nametab_get(seen, name))
        return;
    *v = pl_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = pl_strdup(name);
    pl_nametab_put(seen, (*v)[*n - 1]);
}

/* Calls fn for every name type t needs (a name may come more than once); stops when fn
 * returns false. */
static void each_needed(struct pl_xds *x, enum pl_xds_type t, bool (*fn)(const char *, void *),
                        void *arg)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = x->boot->static_resources;
    const struct pl_xds_resmap *m = &x->acc[t == PL_XDS_RDS ? PL_XDS_LDS : PL_XDS_CDS];
    const char *svc;
    bool go = true;
    if (t == PL_XDS_RDS) {
        size_t nl = sr ? sr->n_listeners : 0;
        for (size_t i = 0; go && i < nl + m->tab.cap; i++) {
            const LISTENER_T *l =
                i < nl ? sr->listeners[i]
                : pl_xds_resmap_at(m, i - nl)
                    ? (const LISTENER_T *)pl_xds_resmap_at(m, i - nl)->rec->res.msg
                    : NULL;
            if (!l)
                continue;
            char **rn;
            size_t k = pl_listener_rds_names(l, &rn);
            for (size_t j = 0; j < k; j++) {
                go = go && fn(rn[j], arg);
                free(rn[j]);
            }
            free(rn);
        }
    } else if (t == PL_XDS_EDS) {
        for (size_t i = 0; go && sr && i < sr->n_clusters; i++)
            if (pl_xds_cluster_eds_name(sr->clusters[i], &svc))
                go = fn(svc, arg);
        for (size_t i = 0; go && i < m->tab.cap; i++)
            if (pl_xds_resmap_at(m, i) && pl_xds_resmap_at(m, i)->rec->res.eds_name)
                go = fn(pl_xds_resmap_at(m, i)->rec->res.eds_name, arg);
    }
}

struct collect {
    struct pl_nametab seen;
    char **v;
    size_t n;
};

static bool collect_name(const char *name, void *arg)
{
    struct collect *c = arg;
    add_name(&c->seen, &c->v, &c->n, name);
    return true;
}

size_t pl_xds_store_needed(struct pl_xds *x, enum pl_xds_type t, char ***names)
{
    struct collect c = {.v = NULL, .n = 0};
    pl_nametab_init(&c.seen, str_key);
    each_needed(x, t, collect_name, &c);
    pl_nametab_clear(&c.seen);
    *names = c.v;
    return c.n;
}

struct same_names {
    const struct pl_xds_sub *s;
    uint64_t *hit; /* a bit per subscribed name */
    size_t n_hit;
    bool missing; /* a needed name is not subscribed */
};

static bool mark_name(const char *name, void *arg)
{
    struct same_names *m = arg;
    char *const *at =
        m->s->n_names ? bsearch(&name, m->s->names, m->s->n_names, sizeof(char *), cmp_cstr) : NULL;
    if (!at) {
        m->missing = true;
        return false;
    }
    size_t i = (size_t)(at - m->s->names);
    if (!(m->hit[i / 64] >> (i % 64) & 1)) {
        m->hit[i / 64] |= 1ULL << (i % 64);
        m->n_hit++;
    }
    return true;
}

bool pl_xds_store_needed_same(struct pl_xds *x, enum pl_xds_type t)
{
    const struct pl_xds_sub *s = &x->sub[t];
    struct same_names m = {.s = s, .hit = pl_calloc(s->n_names / 64 + 1, sizeof(uint64_t))};
    each_needed(x, t, mark_name, &m);
    free(m.hit);
    return !m.missing && m.n_hit == s->n_names;
}

struct prune {
    const struct pl_xds_sub *sub;
};

static int keep_subscribed(void *item, void *arg)
{
    struct pl_xds_res *e = item;
    if (pl_xds_sub_has(((struct prune *)arg)->sub, e->rec->res.name))
        return 1;
    res_free(e);
    return 0;
}

size_t pl_xds_store_prune(struct pl_xds *x, enum pl_xds_type t)
{
    struct prune p = {.sub = &x->sub[t]};
    size_t n = x->acc[t].tab.n, going = 0;
    for (size_t i = 0; i < x->acc[t].tab.cap && !going; i++) { /* mostly nothing: no rebuild */
        const struct pl_xds_res *e = pl_xds_resmap_at(&x->acc[t], i);
        going = e && !pl_xds_sub_has(p.sub, e->rec->res.name);
    }
    if (going)
        pl_nametab_filter(&x->acc[t].tab, keep_subscribed, &p);
    if (x->acc[t].tab.n != n && (t == PL_XDS_CDS || t == PL_XDS_EDS))
        pl_xds_store_clusters_changed(x);
    return n - x->acc[t].tab.n;
}
