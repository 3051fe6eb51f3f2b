/* The compile cache (compile_resources.h): compiled clusters and listeners shared by the
 * snapshots that serve them, found again by name and by the identity of their sources. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config/compile_internal.h"
#include "config/nametab.h"
#include "core/arena.h"
#include "core/err.h"
#include "router/router.h"
#include "xds/xds.h"

enum { K_CLUSTER, K_LISTENER, K_ROUTES, K_NKINDS };

/* A compiled resource shared by snapshots: u is the canonical entry they copy. */
struct cobj {
    struct pl_shared sh;
    int kind;
    const void *k1, *k2;       /* identity of the sources (owners, or static messages) */
    bool dynamic;              /* from xDS: the same name may also be a static resource */
    struct pl_shared *o1, *o2; /* references on the sources' owners (k1/k2 stay valid) */
    bool borrowed; /* listener: u's proto is the source's message, not a copy; cluster: u's name
                      and version_info are the source owner's */
    uint64_t gen;  /* the build that last used it */
    union {
        struct pl_cluster_cfg c;
        struct pl_listener_cfg l;
        struct pl_route_table_cfg r;
    } u;
};

struct objvec {
    struct cobj **v;
    size_t n, cap;
};

struct pl_compile_cache {
    uint64_t gen;
    struct pl_nametab cur[K_NKINDS], next[K_NKINDS];
    struct objvec cur_all[K_NKINDS], next_all[K_NKINDS]; /* one reference each */
    bool keep_clusters; /* this build reuses the last one's clusters: they stay cached */
};

static void cobj_free(struct pl_shared *sh)
{
    struct cobj *o = (struct cobj *)sh;
    if (o->kind == K_CLUSTER) {
        if (o->borrowed)
            o->u.c.name = o->u.c.version_info = NULL;
        o->u.c.shared = NULL; /* o itself */
        pl_cluster_cfg_release(&o->u.c);
    } else if (o->kind == K_LISTENER) {
        if (o->borrowed)
            o->u.l.proto = NULL;
        pl_listener_cfg_release(&o->u.l);
    } else {
        pl_route_table_cfg_release(&o->u.r);
    }
    pl_shared_unref(o->o1);
    pl_shared_unref(o->o2);
    free(o);
}

static const char *cluster_key(const void *item)
{
    return ((const struct cobj *)item)->u.c.name;
}

static const char *listener_key(const void *item)
{
    return ((const struct cobj *)item)->u.l.name;
}

static const char *routes_key(const void *item)
{
    return ((const struct cobj *)item)->u.r.name;
}

struct pl_compile_cache *pl_compile_cache_new(void)
{
    struct pl_compile_cache *c = pl_calloc(1, sizeof(*c));
    pl_nametab_key_fn keys[K_NKINDS] = {
        [K_CLUSTER] = cluster_key, [K_LISTENER] = listener_key, [K_ROUTES] = routes_key};
    for (int k = 0; k < K_NKINDS; k++) {
        pl_nametab_init(&c->cur[k], keys[k]);
        pl_nametab_init(&c->next[k], keys[k]);
    }
    c->gen = 1;
    return c;
}

static void vec_drop(struct objvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        pl_shared_unref(&v->v[i]->sh);
    free(v->v);
    memset(v, 0, sizeof(*v));
}

static void tabs_clear(struct pl_nametab *t)
{
    for (int k = 0; k < K_NKINDS; k++)
        pl_nametab_clear(&t[k]);
}

void pl_compile_cache_free(struct pl_compile_cache *c)
{
    if (!c)
        return;
    for (int k = 0; k < K_NKINDS; k++) {
        vec_drop(&c->cur_all[k]);
        vec_drop(&c->next_all[k]);
    }
    tabs_clear(c->cur);
    tabs_clear(c->next);
    free(c);
}

void pl_compile_cache_commit(struct pl_compile_cache *c)
{
    for (int k = 0; k < K_NKINDS; k++) {
        if (k == K_CLUSTER && c->keep_clusters)
            continue; /* the build used none: cur stays as it is */
        vec_drop(&c->cur_all[k]);
        c->cur_all[k] = c->next_all[k];
        memset(&c->next_all[k], 0, sizeof(c->next_all[k]));
        pl_nametab_clear(&c->cur[k]);
        c->cur[k] = c->next[k];
        pl_nametab_init(&c->next[k], c->cur[k].key);
    }
    c->keep_clusters = false;
    c->gen++;
}

void pl_compile_cache_rollback(struct pl_compile_cache *c)
{
    for (int k = 0; k < K_NKINDS; k++)
        vec_drop(&c->next_all[k]);
    tabs_clear(c->next);
    c->keep_clusters = false;
    c->gen++;
}

void pl_compile_cache_keep_clusters(struct pl_compile_cache *c)
{
    c->keep_clusters = true;
}

/* Records that this build uses o (once). */
static void use(struct pl_compile_cache *c, struct cobj *o)
{
    if (o->gen == c->gen)
        return;
    o->gen = c->gen;
    struct objvec *v = &c->next_all[o->kind];
    if (!c->next[o->kind].cap) /* about as many as last time: no growing on the way */
        pl_nametab_reserve(&c->next[o->kind], c->cur[o->kind].n + 8);
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->v = pl_realloc(v->v, v->cap * sizeof(*v->v));
    }
    pl_shared_ref(&o->sh);
    v->v[v->n++] = o;
    pl_nametab_put(&c->next[o->kind], o);
}

static struct cobj *lookup(struct pl_compile_cache *c, int kind, const char *name, const void *k1,
                           const void *k2, bool dynamic)
{
    struct cobj *o = pl_nametab_get(&c->next[kind], name);
    if (!o || o->k1 != k1 || o->k2 != k2 || o->dynamic != dynamic)
        o = pl_nametab_get(&c->cur[kind], name);
    if (!o || o->k1 != k1 || o->k2 != k2 || o->dynamic != dynamic)
        return NULL;
    if (kind == K_CLUSTER && o->u.c.link && o->u.c.link_ops->retired(o->u.c.link))
        return NULL; /* its name's runtime went (then came back): compiled again for the new */
    use(c, o);
    return o;
}

static struct cobj *cobj_new(int kind, const void *k1, const void *k2, bool dynamic)
{
    /* only the member of its kind: a cluster is 24 bytes smaller than a listener, and there
     * may be 10,000 of them */
    size_t u = kind == K_CLUSTER    ? sizeof(struct pl_cluster_cfg)
               : kind == K_LISTENER ? sizeof(struct pl_listener_cfg)
                                    : sizeof(struct pl_route_table_cfg);
    struct cobj *o = pl_calloc(1, offsetof(struct cobj, u) + u);
    atomic_init(&o->sh.refs, 1);
    o->sh.free = cobj_free;
    o->kind = kind;
    o->k1 = k1;
    o->k2 = k2;
    o->dynamic = dynamic;
    return o;
}

/* A dynamic resource's version and time in an entry it owns. */
static void set_dyn(char **version, struct timespec *updated, bool *dynamic,
                    const struct pl_res *dyn)
{
    free(*version);
    *version = pl_strdup(dyn->version_info ? dyn->version_info : "");
    *updated = dyn->last_updated;
    *dynamic = true;
}

/* m, or m decoded from r's encoding into the arena tmp; NULL when neither (decoded only for one
 * compile: nothing compiled points into it, so one bump per field and no per-field free). */
static const ProtobufCMessage *msg_of(const ProtobufCMessage *m, const struct pl_res *r,
                                      const ProtobufCMessageDescriptor *d, struct pl_arena *tmp)
{
    if (m || !r)
        return m;
    if (r->msg)
        return r->msg;
    if (!r->bytes)
        return NULL;
    ProtobufCAllocator a = pl_arena_pb_allocator(tmp);
    if (d == &envoy__config__cluster__v3__cluster__descriptor) { /* the common shape, directly */
        Envoy__Config__Cluster__V3__Cluster *cl = pl_xds_cluster_decode(r->bytes, r->len, &a);
        if (cl)
            return &cl->base;
    }
    return protobuf_c_message_unpack(d, &a, r->len, r->bytes);
}

/* Compiles cl (or dyn's encoding) with its endpoints (eds, or eds_res's) into out. */
static int cluster_fresh(const Envoy__Config__Cluster__V3__Cluster *cl, const struct pl_res *dyn,
                         const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *eds,
                         const struct pl_res *eds_res, const struct timespec *ts, bool shared,
                         struct pl_cluster_cfg *out, struct pl_err *err)
{
    struct pl_arena tmp = PL_ARENA_INIT;
    cl = (const void *)msg_of(cl ? &cl->base : NULL, dyn,
                              &envoy__config__cluster__v3__cluster__descriptor, &tmp);
    /* a plain assignment compiles from its encoding where the entry shares its sources; a copy
     * (not shared) keeps the message, decoded here */
    const struct pl_cla_plain *plain = NULL;
    if (shared && !eds && eds_res && eds_res->decode_plain && eds_res->bytes) {
        ProtobufCAllocator a = pl_arena_pb_allocator(&tmp);
        plain = eds_res->decode_plain(eds_res->bytes, eds_res->len, &a);
    }
    if (plain) { /* the hosts stay in the encoding the compiled cluster holds */
        out->hosts_enc = eds_res->bytes;
        out->hosts_enc_len = (uint32_t)eds_res->len;
        out->hosts_decode = eds_res->decode_plain;
    }
    if (!plain)
        eds = (const void *)msg_of(
            eds ? &eds->base : NULL, eds_res,
            &envoy__config__endpoint__v3__cluster_load_assignment__descriptor, &tmp);
    int rc;
    if (!cl || (eds_res && !eds && !plain)) {
        rc = pl_err_add(err, NULL, 0, 0, NULL, "cluster '%s': cannot decode it",
                        dyn ? dyn->name : "");
    } else if (shared) { /* the owner's encoding: no copy; the hashes as received */
        uint64_t h = dyn->hash;
        if (eds_res)
            h = (h ^ eds_res->hash) * 0x100000001b3ULL;
        else if (eds) /* EDS without an assignment yet */
            h = (h ^ 0x9e3779b97f4a7c15ULL) * 0x100000001b3ULL;
        rc = plain ? pl_compile_cluster_plain(cl, plain, h, ts, out, err)
                   : pl_compile_cluster_borrowed(cl, eds, h, ts, out, err);
        out->proto = NULL; /* cl may be a temporary: the encoding stands for it */
        out->encoded = dyn->bytes;
        out->encoded_len = dyn->len;
    } else {
        rc = pl_compile_cluster(cl, eds, ts, out, err);
    }
    pl_arena_free(&tmp);
    return rc;
}

int pl_cc_cluster(struct pl_compile_cache *c, const Envoy__Config__Cluster__V3__Cluster *cl,
                  const struct pl_res *dyn,
                  const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *eds,
                  const struct pl_res *eds_res, const struct timespec *now,
                  struct pl_cluster_cfg **out, struct pl_err *err)
{
    const struct timespec *ts = dyn ? &dyn->last_updated : now;
    bool own1 = dyn && dyn->owner && dyn->bytes, own2 = eds_res && eds_res->owner;
    bool shared = own1 && (!eds_res || own2);
    *out = NULL;
    if (!c) {
        struct pl_cluster_cfg *f = pl_calloc(1, sizeof(*f));
        int rc = cluster_fresh(cl, dyn, eds, eds_res, ts, false, f, err);
        if (dyn)
            set_dyn(&f->version_info, &f->last_updated, &f->dynamic, dyn);
        if (rc < 0) {
            pl_cluster_free(f);
            return rc;
        }
        *out = f;
        return 0;
    }
    const void *k1 = own1 ? (const void *)dyn->owner : cl;
    const void *k2 = eds_res ? (own2 ? (const void *)eds_res->owner : eds_res->msg) : eds;
    struct cobj *o = lookup(c, K_CLUSTER, cl ? cl->name : dyn->name, k1, k2, dyn != NULL);
    if (!o) {
        o = cobj_new(K_CLUSTER, k1, k2, dyn != NULL);
        int rc = cluster_fresh(cl, dyn, eds, eds_res, ts, shared, &o->u.c, err);
        if (shared) {
            o->o1 = dyn->owner;
            o->o2 = own2 ? eds_res->owner : NULL;
            pl_shared_ref(o->o1);
            pl_shared_ref(o->o2);
        }
        if (dyn)
            set_dyn(&o->u.c.version_info, &o->u.c.last_updated, &o->u.c.dynamic, dyn);
        if (shared && rc == 0) { /* name and version are the owner's (o->o1 keeps them) */
            free(o->u.c.name);
            free(o->u.c.version_info);
            o->u.c.name = (char *)dyn->name;
            o->u.c.version_info = (char *)(dyn->version_info ? dyn->version_info : "");
            o->borrowed = true;
        }
        if (rc < 0) {
            cobj_free(&o->sh);
            return rc;
        }
        o->u.c.shared = &o->sh;
        use(c, o);
        pl_shared_unref(&o->sh); /* the build's reference is the one left */
    }
    pl_shared_ref(&o->sh);
    *out = &o->u.c;
    return 0;
}

int pl_cc_listener(struct pl_compile_cache *c, const Envoy__Config__Listener__V3__Listener *l,
                   const struct pl_res *dyn, const struct timespec *now,
                   struct pl_listener_cfg *out, struct pl_err *err)
{
    const struct timespec *ts = dyn ? &dyn->last_updated : now;
    if (!c) {
        int rc = pl_compile_listener(l, NULL, ts, out, err);
        if (rc == 0 && dyn)
            set_dyn(&out->version_info, &out->last_updated, &out->dynamic, dyn);
        return rc;
    }
    bool own = dyn && dyn->owner;
    const void *k1 = own ? (const void *)dyn->owner : l;
    /* an unnamed (static) listener is named by its address: look it up by what it will be */
    struct cobj *o = *l->name ? lookup(c, K_LISTENER, l->name, k1, NULL, dyn != NULL) : NULL;
    if (!o) {
        o = cobj_new(K_LISTENER, k1, NULL, dyn != NULL);
        int rc;
        if (own) {
            rc = pl_compile_listener_borrowed(l, dyn->hash, ts, &o->u.l, err);
            o->borrowed = true;
            o->o1 = dyn->owner;
            pl_shared_ref(o->o1);
        } else {
            rc = pl_compile_listener(l, NULL, ts, &o->u.l, err);
        }
        if (rc < 0) {
            cobj_free(&o->sh);
            memset(out, 0, sizeof(*out));
            return rc;
        }
        if (dyn)
            set_dyn(&o->u.l.version_info, &o->u.l.last_updated, &o->u.l.dynamic, dyn);
        use(c, o);
        pl_shared_unref(&o->sh);
    }
    *out = o->u.l;
    pl_shared_ref(&o->sh);
    out->shared = &o->sh;
    return 0;
}

int pl_cc_route_table(struct pl_compile_cache *c, const struct pl_res *r, const char *path,
                      struct pl_route_table_cfg *out, struct pl_err *err)
{
    const Envoy__Config__Route__V3__RouteConfiguration *rc = NULL;
    const void *k1 = r->owner ? (const void *)r->owner : r->msg;
    struct cobj *o = c ? lookup(c, K_ROUTES, r->name, k1, NULL, true) : NULL;
    if (!o) {
        struct pl_route_table *t = NULL;
        struct pl_arena tmp = PL_ARENA_INIT;
        rc = (const void *)msg_of(NULL, r,
                                  &envoy__config__route__v3__route_configuration__descriptor, &tmp);
        int ok = rc ? pl_router_compile(rc, path, &t, err)
                    : pl_err_add(err, NULL, 0, 0, path, "cannot decode it");
        pl_arena_free(&tmp);
        if (ok < 0) {
            memset(out, 0, sizeof(*out));
            return PL_EINVAL;
        }
        if (!c) {
            *out = (struct pl_route_table_cfg){.name = pl_strdup(r->name), .table = t};
            return 0;
        }
        o = cobj_new(K_ROUTES, k1, NULL, true);
        o->u.r = (struct pl_route_table_cfg){.name = pl_strdup(r->name), .table = t};
        o->o1 = r->owner;
        pl_shared_ref(o->o1);
        use(c, o);
        pl_shared_unref(&o->sh);
    }
    *out = o->u.r;
    pl_shared_ref(&o->sh);
    out->shared = &o->sh;
    return 0;
}
