/* The xDS protocol on one ADS stream: subscriptions, ACK/NACK by nonce, per-node views, and
 * which responses are due, in an order that never sends a route before its cluster. Both the
 * state-of-the-world and the incremental (Delta) variants. Runs under the server's lock. */
#include <stdlib.h>
#include <string.h>

#include "ads_internal.h"
#include "core/log.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest sotw_req_t;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse sotw_resp_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest delta_req_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse delta_resp_t;

#define NODE_DESC (&envoy__config__core__v3__node__descriptor)

/* LDS and CDS take an empty name list as "everything" (the legacy wildcard). */
static bool wildcard_type(int t)
{
    return t == PL_CP_LDS || t == PL_CP_CDS;
}

static void copy_node(struct pl_cp_stream *s, const pl_cp_node_t *n)
{
    if (s->node || !n)
        return;
    size_t len = protobuf_c_message_get_packed_size(&n->base);
    uint8_t *buf = pl_malloc(len ? len : 1);
    protobuf_c_message_pack(&n->base, buf);
    s->node = (pl_cp_node_t *)protobuf_c_message_unpack(NODE_DESC, NULL, len, buf);
    free(buf);
    if (!s->node)
        pl_die("re-decoding a node failed");
    pl_log_info("cp", "stream from %s is node '%s' (cluster '%s')%s%s", s->peer, s->node->id,
                s->node->cluster, s->identity ? ", client certificate " : "",
                s->identity ? s->identity : "");
}

static void set_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memmove(dst, src, n);
    dst[n] = '\0';
}

/* Settles the response a request's nonce answers: an ACK, or a NACK when error_detail is set. */
static void ack_or_nack(struct pl_cp_stream *s, int t, const char *version,
                        const Google__Rpc__Status *error)
{
    struct pl_cp_tstate *ts = &s->ts[t];
    ts->outstanding = false;
    ts->last_nacked = error != NULL;
    if (error) {
        ts->n_nack++;
        free(ts->nack_msg);
        ts->nack_msg = pl_strdup(error->message);
        set_str(ts->nack_version, sizeof(ts->nack_version), ts->sent_version);
        set_str(ts->nack_nonce, sizeof(ts->nack_nonce), ts->nonce);
        ts->nack_time = pl_cp_now();
        pl_log_warn("cp", "node '%s' rejected %s version %s: %s", s->node ? s->node->id : "",
                    pl_cp_type_name(t), ts->sent_version, error->message);
    } else {
        ts->n_ack++;
        set_str(ts->acked_version, sizeof(ts->acked_version),
                *version ? version : ts->sent_version);
        pl_log_debug("cp", "node '%s' acked %s version %s", s->node ? s->node->id : "",
                     pl_cp_type_name(t), ts->acked_version);
    }
}

static int sotw_request(struct pl_cp_stream *s, const sotw_req_t *rq)
{
    copy_node(s, rq->node);
    int t = pl_cp_type_from_url(rq->type_url);
    if (t < 0) {
        pl_log_warn("cp", "node '%s' asked for type '%s', which pillion-cp does not serve",
                    s->node ? s->node->id : "", rq->type_url);
        return 0;
    }
    struct pl_cp_tstate *ts = &s->ts[t];
    if (*rq->response_nonce) {
        if (strcmp(rq->response_nonce, ts->nonce) != 0) {
            pl_log_debug("cp", "ignoring a %s request with stale nonce %s", pl_cp_type_name(t),
                         rq->response_nonce);
            return 0; /* answers an older response: what it says is superseded */
        }
        /* the latest nonce again after its ACK: a subscription change (Envoy sends one with the
         * last nonce when the RDS/EDS names it needs change) */
        if (ts->outstanding)
            ack_or_nack(s, t, rq->version_info, rq->error_detail);
    } else {
        ts->outstanding = false; /* a (re)start of this type: answer it */
        ts->force = true;
    }
    bool wild = (rq->n_resource_names == 0 && wildcard_type(t));
    size_t named = 0;
    bool changed = false;
    for (size_t i = 0; i < rq->n_resource_names; i++) {
        if (!strcmp(rq->resource_names[i], "*")) {
            wild = true;
            continue;
        }
        named++;
        if (!pl_cp_map_get(&ts->names, rq->resource_names[i]))
            changed = true;
    }
    if (named != ts->names.n)
        changed = true;
    if (changed) {
        pl_cp_map_clear(&ts->names);
        for (size_t i = 0; i < rq->n_resource_names; i++)
            if (strcmp(rq->resource_names[i], "*"))
                pl_cp_map_put(&ts->names, rq->resource_names[i], NULL);
    }
    if (wild != ts->wildcard || !ts->subscribed)
        changed = true;
    ts->wildcard = wild;
    ts->subscribed = true;
    if (changed)
        ts->force = true;
    if (ts->force)
        ts->clean_serial = 0;
    return 0;
}

static int delta_request(struct pl_cp_stream *s, const delta_req_t *rq)
{
    copy_node(s, rq->node);
    int t = pl_cp_type_from_url(rq->type_url);
    if (t < 0) {
        pl_log_warn("cp", "node '%s' asked for type '%s', which pillion-cp does not serve",
                    s->node ? s->node->id : "", rq->type_url);
        return 0;
    }
    struct pl_cp_tstate *ts = &s->ts[t];
    if (*rq->response_nonce && ts->outstanding && !strcmp(rq->response_nonce, ts->nonce))
        ack_or_nack(s, t, "", rq->error_detail);
    if (rq->n_resource_names_subscribe || rq->n_resource_names_unsubscribe || !ts->subscribed)
        ts->clean_serial = 0; /* not a bare ACK/NACK: work out what is due */
    if (!ts->subscribed) {
        ts->subscribed = true;
        ts->force = true; /* the first request always gets an answer */
        ts->wildcard = rq->n_resource_names_subscribe == 0 && wildcard_type(t);
        for (size_t i = 0; i < rq->n_initial_resource_versions; i++)
            pl_cp_map_put(&ts->client, rq->initial_resource_versions[i]->key,
                          rq->initial_resource_versions[i]->value);
    }
    for (size_t i = 0; i < rq->n_resource_names_subscribe; i++) {
        const char *n = rq->resource_names_subscribe[i];
        if (!strcmp(n, "*"))
            ts->wildcard = true;
        else
            pl_cp_map_put(&ts->names, n, NULL);
    }
    for (size_t i = 0; i < rq->n_resource_names_unsubscribe; i++) {
        const char *n = rq->resource_names_unsubscribe[i];
        if (!strcmp(n, "*")) {
            ts->wildcard = false;
        } else {
            pl_cp_map_del(&ts->names, n);
            if (!ts->wildcard)
                pl_cp_map_del(&ts->client, n); /* the client forgets it */
        }
    }
    return 0;
}

int pl_cp_xds_request(struct pl_cp_stream *s, const uint8_t *data, size_t len, const char **why)
{
    s->n_requests++;
    ProtobufCMessage *m = protobuf_c_message_unpack(
        s->delta ? &envoy__service__discovery__v3__delta_discovery_request__descriptor
                 : &envoy__service__discovery__v3__discovery_request__descriptor,
        NULL, len, data);
    if (!m) {
        *why = s->delta ? "undecodable DeltaDiscoveryRequest" : "undecodable DiscoveryRequest";
        pl_log_warn("cp", "%s from %s", *why, s->peer);
        return PL_EINVAL;
    }
    int rc = s->delta ? delta_request(s, (const delta_req_t *)m) : sotw_request(s, (const void *)m);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* Whether the subscription of ts covers name. */
static bool wanted(const struct pl_cp_tstate *ts, const char *name)
{
    return ts->wildcard || pl_cp_map_get(&ts->names, name) != NULL;
}

static void next_nonce(struct pl_cp_stream *s, struct pl_cp_tstate *ts, const char *version)
{
    snprintf(ts->nonce, sizeof(ts->nonce), "%lu", ++s->nonce_seq);
    set_str(ts->sent_version, sizeof(ts->sent_version), version);
    ts->outstanding = true;
    ts->force = false;
    ts->n_sent++;
}

static void send_msg(struct pl_cp_stream *s, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = pl_malloc(len ? len : 1);
    protobuf_c_message_pack(m, buf);
    pl_cp_stream_send(s, buf, len);
    free(buf);
}

static void fill_any(Google__Protobuf__Any *a, int t, const struct pl_cp_res *r)
{
    google__protobuf__any__init(a);
    a->type_url = (char *)pl_cp_type_url(t);
    a->value.data = (uint8_t *)r->bytes;
    a->value.len = r->len;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    for (; v >= 0x80; v >>= 7)
        *p++ = (uint8_t)(v | 0x80);
    *p++ = (uint8_t)v;
    return p;
}

/* Writes field `field` (length-delimited) holding len bytes of data; returns the end. */
static uint8_t *put_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
    *p++ = (uint8_t)(field << 3 | 2);
    p = put_varint(p, len);
    if (len)
        memcpy(p, data, len);
    return p + len;
}

static size_t bytes_len(size_t len)
{
    return 1 + varint_len(len) + len;
}

/* The `resources` field (2) of a DiscoveryResponse holding view[0..n) as Anys of type t:
 * encoded once per set, type and view, and shared by every stream that sends it. */
static grpc_slice sotw_body(struct pl_cp_server *srv, int t, const struct pl_cp_res **view,
                            size_t n, uint64_t h)
{
    unsigned long serial = srv->set ? srv->set->serial : 0;
    for (int i = 0; serial && i < PL_CP_ENC_SLOTS; i++) {
        const struct pl_cp_enc *e = &srv->enc[t][i];
        if (e->serial == serial && e->view_hash == h && e->n == n)
            return e->body;
    }
    const char *url = pl_cp_type_url(t);
    size_t ulen = strlen(url), len = 0;
    for (size_t i = 0; i < n; i++)
        len += bytes_len(bytes_len(ulen) + bytes_len(view[i]->len));
    grpc_slice body = grpc_slice_malloc(len);
    uint8_t *p = GRPC_SLICE_START_PTR(body);
    for (size_t i = 0; i < n; i++) {
        *p++ = 2 << 3 | 2;
        p = put_varint(p, bytes_len(ulen) + bytes_len(view[i]->len));
        p = put_bytes(p, 1, url, ulen);
        p = put_bytes(p, 2, view[i]->bytes, view[i]->len);
    }
    if (!serial)
        return body; /* no set: not kept (the caller drops it) */
    struct pl_cp_enc *e = &srv->enc[t][srv->enc_next[t]++ % PL_CP_ENC_SLOTS];
    if (e->serial)
        grpc_slice_unref(e->body);
    *e = (struct pl_cp_enc){.serial = serial, .view_hash = h, .n = n, .body = body};
    return body;
}

void pl_cp_xds_enc_clear(struct pl_cp_server *srv)
{
    for (int t = 0; t < PL_CP_NTYPES; t++)
        for (int i = 0; i < PL_CP_ENC_SLOTS; i++)
            if (srv->enc[t][i].serial) {
                grpc_slice_unref(srv->enc[t][i].body);
                srv->enc[t][i].serial = 0;
            }
}

/* SotW: returns whether type t has a response due; sends it when allowed. */
static bool sotw_pump(struct pl_cp_stream *s, int t, const struct pl_cp_res **view, bool hold)
{
    struct pl_cp_tstate *ts = &s->ts[t];
    const struct pl_cp_set *set = s->srv->set;
    if (set && !ts->force && ts->clean_serial == set->serial)
        return false; /* the same set and subscription as when nothing was due */
    size_t nv = pl_cp_set_view(set, t, s->node, view), n = 0;
    uint64_t h = PL_CP_HASH_INIT;
    for (size_t i = 0; i < nv; i++) {
        if (!wanted(ts, view[i]->name))
            continue;
        view[n++] = view[i];
        h = pl_cp_hash(h, view[i]->name, strlen(view[i]->name) + 1);
        h = pl_cp_hash(h, view[i]->version, sizeof(view[i]->item->version));
    }
    bool due = ts->force || !ts->sent_any || h != ts->sent_hash;
    if (!due && set)
        ts->clean_serial = set->serial;
    if (!due || ts->outstanding || hold)
        return due;
    const char *version = set ? set->version[t] : "0";
    const char *url = pl_cp_type_url(t);
    next_nonce(s, ts, version);
    /* version_info, type_url, nonce; then the shared resources (fields may come in any order) */
    size_t hlen =
        bytes_len(strlen(version)) + bytes_len(strlen(url)) + bytes_len(strlen(ts->nonce));
    grpc_slice sl[2];
    sl[0] = grpc_slice_malloc(hlen);
    uint8_t *p = GRPC_SLICE_START_PTR(sl[0]);
    p = put_bytes(p, 1, version, strlen(version));
    p = put_bytes(p, 4, url, strlen(url));
    put_bytes(p, 5, ts->nonce, strlen(ts->nonce));
    sl[1] = sotw_body(s->srv, t, view, n, h);
    pl_cp_stream_send_slices(s, sl, n ? 2 : 1);
    grpc_slice_unref(sl[0]);
    if (!set)
        grpc_slice_unref(sl[1]);
    ts->sent_any = true;
    ts->sent_hash = h;
    ts->sent_count = n;
    if (set)
        ts->clean_serial = set->serial;
    pl_log_debug("cp", "sent %s version %s (%zu resources, nonce %s) to node '%s'",
                 pl_cp_type_name(t), version, n, ts->nonce, s->node ? s->node->id : "");
    return false;
}

struct removed {
    const struct pl_cp_res **view;
    size_t nv;
    struct pl_cp_tstate *ts;
    char **names;
    size_t n;
};

static int cmp_res_name(const void *k, const void *r)
{
    return strcmp(k, (*(const struct pl_cp_res *const *)r)->name);
}

/* Delta: a name the client holds (or subscribed to) that it must be told is gone. */
static void find_removed(struct pl_cp_map_ent *e, void *ud)
{
    struct removed *rm = ud;
    bool in_view = bsearch(e->key, rm->view, rm->nv, sizeof(*rm->view), cmp_res_name);
    if (in_view && wanted(rm->ts, e->key))
        return;
    if (!wanted(rm->ts, e->key)) {
        pl_cp_map_del(&rm->ts->client, e->key); /* out of the subscription: forget it */
        return;
    }
    if (e->val && !*e->val)
        return; /* told already */
    rm->names[rm->n++] = e->key;
}

static void find_absent(struct pl_cp_map_ent *e, void *ud)
{
    struct removed *rm = ud;
    if (!pl_cp_map_get(&rm->ts->client, e->key) &&
        !bsearch(e->key, rm->view, rm->nv, sizeof(*rm->view), cmp_res_name))
        rm->names[rm->n++] = e->key;
}

/* Delta: returns whether type t has a response due; sends it when allowed. */
static bool delta_pump(struct pl_cp_stream *s, int t, const struct pl_cp_res **view, bool hold)
{
    struct pl_cp_tstate *ts = &s->ts[t];
    const struct pl_cp_set *set = s->srv->set;
    if (set && !ts->force && ts->clean_serial == set->serial)
        return false; /* the same set and subscription as when the client was in sync */
    size_t nv = pl_cp_set_view(set, t, s->node, view), n_add = 0;
    const struct pl_cp_res **add = pl_calloc(nv + 1, sizeof(*add));
    for (size_t i = 0; i < nv; i++) {
        if (!wanted(ts, view[i]->name))
            continue;
        const struct pl_cp_map_ent *e = pl_cp_map_get(&ts->client, view[i]->name);
        if (!e || !e->val || strcmp(e->val, view[i]->version))
            add[n_add++] = view[i];
    }
    struct removed rm = {.view = view, .nv = nv, .ts = ts};
    rm.names = pl_calloc(ts->client.n + ts->names.n + 1, sizeof(char *));
    pl_cp_map_each(&ts->client, find_removed, &rm);
    pl_cp_map_each(&ts->names, find_absent, &rm);
    bool due = ts->force || n_add || rm.n;
    if (!due && set)
        ts->clean_serial = set->serial;
    if (!due || ts->outstanding || hold) {
        free(add);
        free(rm.names);
        return due;
    }
    delta_resp_t resp = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    Envoy__Service__Discovery__V3__Resource *res = pl_calloc(n_add + 1, sizeof(*res));
    Envoy__Service__Discovery__V3__Resource **ptrs = pl_calloc(n_add + 1, sizeof(*ptrs));
    Google__Protobuf__Any *anys = pl_calloc(n_add + 1, sizeof(*anys));
    for (size_t i = 0; i < n_add; i++) {
        envoy__service__discovery__v3__resource__init(&res[i]);
        fill_any(&anys[i], t, add[i]);
        res[i].name = (char *)add[i]->name;
        res[i].version = (char *)add[i]->version;
        res[i].resource = &anys[i];
        ptrs[i] = &res[i];
    }
    const char *version = set ? set->version[t] : "0";
    next_nonce(s, ts, version);
    resp.system_version_info = (char *)version;
    resp.type_url = (char *)pl_cp_type_url(t);
    resp.nonce = ts->nonce;
    resp.n_resources = n_add;
    resp.resources = ptrs;
    resp.n_removed_resources = rm.n;
    resp.removed_resources = rm.names;
    send_msg(s, &resp.base);
    pl_log_debug("cp", "sent delta %s version %s (%zu resources, %zu removed, nonce %s) to '%s'",
                 pl_cp_type_name(t), version, n_add, rm.n, ts->nonce, s->node ? s->node->id : "");
    /* what the client holds now; rm.names point into the maps, so copy before changing them */
    for (size_t i = 0; i < n_add; i++)
        pl_cp_map_put(&ts->client, add[i]->name, add[i]->version);
    for (size_t i = 0; i < rm.n; i++)
        rm.names[i] = pl_strdup(rm.names[i]);
    for (size_t i = 0; i < rm.n; i++) {
        if (pl_cp_map_get(&ts->names, rm.names[i]))
            pl_cp_map_put(&ts->client, rm.names[i], ""); /* asked for by name: remember */
        else
            pl_cp_map_del(&ts->client, rm.names[i]);
        free(rm.names[i]);
    }
    ts->sent_count = n_add;
    if (set)
        ts->clean_serial = set->serial; /* the client holds the view now */
    free(rm.names);
    free(res);
    free(ptrs);
    free(anys);
    free(add);
    return false;
}

void pl_cp_xds_pump(struct pl_cp_stream *s)
{
    if (s->closed || s->want_status || s->srv->shutting_down)
        return;
    const struct pl_cp_set *set = s->srv->set;
    size_t most = 1;
    for (int t = 0; set && t < PL_CP_NTYPES; t++)
        most = set->n[t] > most ? set->n[t] : most;
    const struct pl_cp_res **view = pl_calloc(most + 1, sizeof(*view));
    bool cds_due = false, cds_unacked = false;
    for (int t = 0; t < PL_CP_NTYPES; t++) {
        if (!s->ts[t].subscribed)
            continue;
        /* endpoints follow the clusters they belong to; listeners and routes also wait for the
         * clusters' ACK, so that no route names a cluster the client does not have yet */
        bool hold = (t == PL_CP_EDS && cds_due) ||
                    ((t == PL_CP_LDS || t == PL_CP_RDS) && (cds_due || cds_unacked));
        bool due = s->delta ? delta_pump(s, t, view, hold) : sotw_pump(s, t, view, hold);
        if (t == PL_CP_CDS) {
            cds_due = due;
            cds_unacked = s->ts[t].outstanding;
        }
    }
    free(view);
}

void pl_cp_xds_free(struct pl_cp_stream *s)
{
    for (int t = 0; t < PL_CP_NTYPES; t++) {
        pl_cp_map_clear(&s->ts[t].names);
        pl_cp_map_clear(&s->ts[t].client);
        free(s->ts[t].nack_msg);
    }
    if (s->node)
        protobuf_c_message_free_unpacked(&s->node->base, NULL);
}

static void subscription_json(FILE *f, const struct pl_cp_tstate *ts)
{
    fputs("[", f);
    bool first = true;
    if (ts->wildcard) {
        fputs("\"*\"", f);
        first = false;
    }
    for (size_t i = 0; i < ts->names.nb; i++)
        for (const struct pl_cp_map_ent *e = ts->names.b[i]; e; e = e->next) {
            if (!first)
                fputs(", ", f);
            first = false;
            pl_cp_json_str(f, e->key);
        }
    fputs("]", f);
}

void pl_cp_xds_status(struct pl_cp_stream *s, FILE *f)
{
    fputs("{\"id\": ", f);
    pl_cp_json_str(f, s->node ? s->node->id : NULL);
    fputs(", \"cluster\": ", f);
    pl_cp_json_str(f, s->node ? s->node->cluster : NULL);
    fprintf(f, ", \"stream\": \"%s\", \"peer\": ", s->delta ? "delta" : "sotw");
    pl_cp_json_str(f, s->peer);
    fputs(", \"identity\": ", f);
    if (s->identity)
        pl_cp_json_str(f, s->identity);
    else
        fputs("null", f);
    fputs(", \"connected_since\": ", f);
    pl_cp_json_time(f, s->since);
    fprintf(f, ", \"requests\": %lu, \"types\": {", s->n_requests);
    bool first = true;
    for (int t = 0; t < PL_CP_NTYPES; t++) {
        const struct pl_cp_tstate *ts = &s->ts[t];
        if (!ts->subscribed)
            continue;
        fprintf(f, "%s\"%s\": {\"type_url\": ", first ? "" : ", ", pl_cp_type_name(t));
        first = false;
        pl_cp_json_str(f, pl_cp_type_url(t));
        /* istioctl proxy-status' words */
        const char *state = !ts->n_sent       ? "NOT SENT"
                            : ts->outstanding ? "STALE"
                            : ts->last_nacked ? "NACKED"
                                              : "SYNCED";
        fprintf(f, ", \"state\": \"%s\", \"subscribed\": ", state);
        subscription_json(f, ts);
        fputs(", \"sent_version\": ", f);
        pl_cp_json_str(f, ts->n_sent ? ts->sent_version : NULL);
        fputs(", \"sent_nonce\": ", f);
        pl_cp_json_str(f, ts->n_sent ? ts->nonce : NULL);
        fprintf(f, ", \"sent_resources\": %zu, \"awaiting_ack\": %s, \"acked_version\": ",
                ts->sent_count, ts->outstanding ? "true" : "false");
        pl_cp_json_str(f, ts->n_ack ? ts->acked_version : NULL);
        fprintf(f,
                ", \"responses\": %lu, \"acks\": %lu, \"nacks\": %lu, \"last_nack\": ", ts->n_sent,
                ts->n_ack, ts->n_nack);
        if (ts->nack_msg) {
            fputs("{\"message\": ", f);
            pl_cp_json_str(f, ts->nack_msg);
            fputs(", \"version\": ", f);
            pl_cp_json_str(f, ts->nack_version);
            fputs(", \"nonce\": ", f);
            pl_cp_json_str(f, ts->nack_nonce);
            fputs(", \"time\": ", f);
            pl_cp_json_time(f, ts->nack_time);
            fputs("}", f);
        } else {
            fputs("null", f);
        }
        fputs("}", f);
    }
    fputs("}}", f);
}
