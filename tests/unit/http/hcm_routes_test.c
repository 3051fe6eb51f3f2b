/* RDS route tables: compiled once per snapshot by name and shared by the HTTP connection
 * managers naming them; a stream takes the table of the snapshot current when it starts, with
 * a per-connection cache keyed by the snapshot's generation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/compile_resources.h"
#include "config/pbjson.h"
#include "http/conn_manager_internal.h"
#include "router/router.h"

static ProtobufCMessage *yaml(const ProtobufCMessageDescriptor *d, const char *text)
{
    ProtobufCMessage *m = NULL;
    struct pl_err err = PL_ERR_INIT;
    if (pl_pbjson_load_text(text, strlen(text), "test", d, NULL, &m, NULL, &err) < 0)
        cr_assert_fail("decode: %s", pl_err_join(&err));
    return m;
}

/* A listener whose HTTP connection manager takes its routes from RDS `route` (or inline). */
static ProtobufCMessage *listener(const char *name, int port, const char *route)
{
    char spec[256];
    if (route)
        snprintf(spec, sizeof(spec), "rds: { route_config_name: %s, config_source: { ads: {} } }",
                 route);
    else
        snprintf(spec, sizeof(spec),
                 "route_config: { virtual_hosts: [{ name: v, domains: ['*'], routes: [{ match: "
                 "{ prefix: / }, direct_response: { status: 200 } }] }] }");
    char text[4096];
    snprintf(text, sizeof(text),
             "name: %s\n"
             "address: { socket_address: { address: 127.0.0.1, port_value: %d } }\n"
             "filter_chains:\n"
             "- filters:\n"
             "  - name: envoy.filters.network.http_connection_manager\n"
             "    typed_config:\n"
             "      '@type': type.googleapis.com/"
             "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
             "      stat_prefix: s\n"
             "      %s\n"
             "      http_filters:\n"
             "      - name: envoy.filters.http.router\n"
             "        typed_config: { '@type': type.googleapis.com/"
             "envoy.extensions.filters.http.router.v3.Router }\n",
             name, port, spec);
    return yaml(&envoy__config__listener__v3__listener__descriptor, text);
}

static ProtobufCMessage *route(const char *name, const char *cluster)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "name: %s\n"
             "virtual_hosts:\n"
             "- name: v\n"
             "  domains: ['*']\n"
             "  routes: [{ match: { prefix: / }, route: { cluster: %s } }]\n",
             name, cluster);
    return yaml(&envoy__config__route__v3__route_configuration__descriptor, text);
}

/* The cluster a GET / matches in table t. */
static char *cluster_of(const struct pl_route_table *t)
{
    struct pl_http_head h = {.method = "GET",
                             .method_len = 3,
                             .path = "/",
                             .path_len = 1,
                             .authority = "x",
                             .authority_len = 1,
                             .version = 11};
    struct pl_route_ctx cx = {.request = &h};
    struct pl_route_match m;
    cr_assert_not_null(t);
    cr_assert_eq(pl_router_match(t, &h, &cx, 1, &m), 0);
    return strndup(m.cluster, m.cluster_len);
}

static const struct hcm_config *hcm_of(const struct pl_snapshot *s, size_t listener)
{
    return s->listeners[listener].chains->v[0].cfg;
}

struct fixture {
    ProtobufCMessage *l[3], *r[3];
    struct pl_res lr[3], rr[3];
    const struct pl_res *lp[3], *rp[3]; /* &lr[i], &rr[i] */
};

static struct pl_snapshot *build(struct fixture *f, size_t n_routes)
{
    for (size_t i = 0; i < 3; i++) {
        f->lp[i] = &f->lr[i];
        f->rp[i] = &f->rr[i];
    }
    struct pl_resource_set rs = {
        .listeners = f->lp, .n_listeners = 3, .routes = f->rp, .n_routes = n_routes};
    struct pl_snapshot *s = NULL;
    struct pl_err err = PL_ERR_INIT;
    if (pl_config_compile_resources(&rs, &s, &err) < 0)
        cr_assert_fail("compile: %s", pl_err_join(&err));
    return s;
}

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->l[0] = listener("a", 0, "r1");
    f->l[1] = listener("b", 0, "r1");
    f->l[2] = listener("c", 0, NULL);
    /* given out of name order: the snapshot sorts its tables */
    f->r[0] = route("r2", "two");
    f->r[1] = route("r1", "one");
    f->r[2] = route("r0", "zero");
    const char *rn[] = {"r2", "r1", "r0"};
    for (int i = 0; i < 3; i++) {
        f->lr[i] = (struct pl_res){.name = i == 0 ? "a" : i == 1 ? "b" : "c", .msg = f->l[i]};
        f->rr[i] = (struct pl_res){.name = rn[i], .msg = f->r[i]};
    }
}

static void teardown(struct fixture *f)
{
    for (int i = 0; i < 3; i++) {
        protobuf_c_message_free_unpacked(f->l[i], NULL);
        protobuf_c_message_free_unpacked(f->r[i], NULL);
    }
}

Test(hcm_routes, compiled_once_by_name_and_shared)
{
    struct fixture f;
    setup(&f);
    struct pl_snapshot *s = build(&f, 3);
    cr_assert_eq(s->n_route_tables, 3);
    cr_assert_str_eq(s->route_tables[0].name, "r0");
    cr_assert_str_eq(s->route_tables[2].name, "r2");
    char *c = cluster_of(pl_snapshot_route_table(s, "r1"));
    cr_assert_str_eq(c, "one");
    free(c);
    cr_assert_null(pl_snapshot_route_table(s, "r9"));
    cr_assert_null(pl_snapshot_route_table(s, ""));
    /* both RDS HCMs keep the name and no table of their own; the inline one keeps its table */
    cr_assert_str_eq(hcm_of(s, 0)->rds_name, "r1");
    cr_assert_null(hcm_of(s, 0)->routes);
    cr_assert_str_eq(hcm_of(s, 1)->rds_name, "r1");
    cr_assert_null(hcm_of(s, 2)->rds_name);
    cr_assert_not_null(hcm_of(s, 2)->routes);
    uint64_t ha = s->listeners[0].hash;

    /* a changed route: another table, the same listener hash (its sockets stay) */
    protobuf_c_message_free_unpacked(f.r[1], NULL);
    f.r[1] = route("r1", "uno");
    f.rr[1].msg = f.r[1];
    struct pl_snapshot *s2 = build(&f, 3);
    c = cluster_of(pl_snapshot_route_table(s2, "r1"));
    cr_assert_str_eq(c, "uno");
    free(c);
    cr_assert_eq(s2->listeners[0].hash, ha);
    pl_snapshot_free(s);
    pl_snapshot_free(s2);

    /* no route configurations (initial fetch timed out): no table, the listeners compile */
    s = build(&f, 0);
    cr_assert_eq(s->n_route_tables, 0);
    cr_assert_null(pl_snapshot_route_table(s, "r1"));
    cr_assert_eq(s->n_listeners, 3);
    pl_snapshot_free(s);
    teardown(&f);
}

Test(hcm_routes, a_bad_route_configuration_fails_the_snapshot_with_its_name)
{
    struct fixture f;
    setup(&f);
    protobuf_c_message_free_unpacked(f.r[0], NULL);
    f.r[0] = yaml(&envoy__config__route__v3__route_configuration__descriptor,
                  "name: r2\n"
                  "virtual_hosts:\n"
                  "- name: v\n"
                  "  domains: ['*']\n"
                  "  routes: [{ match: { safe_regex: { regex: '(' } }, route: { cluster: x } }]\n");
    f.rr[0].msg = f.r[0];
    for (size_t i = 0; i < 3; i++) {
        f.lp[i] = &f.lr[i];
        f.rp[i] = &f.rr[i];
    }
    struct pl_resource_set rs = {
        .listeners = f.lp, .n_listeners = 3, .routes = f.rp, .n_routes = 3};
    struct pl_snapshot *s = NULL;
    struct pl_err err = PL_ERR_INIT;
    cr_assert_lt(pl_config_compile_resources(&rs, &s, &err), 0);
    char *msg = pl_err_join(&err);
    cr_assert(strstr(msg, "RouteConfiguration 'r2'"), "%s", msg);
    free(msg);
    pl_err_free(&err);
    teardown(&f);
}

Test(hcm_routes, a_stream_takes_the_current_snapshots_table_cached_per_generation)
{
    struct fixture f;
    setup(&f);
    struct pl_snapshot *s1 = build(&f, 3);
    protobuf_c_message_free_unpacked(f.r[1], NULL);
    f.r[1] = route("r1", "uno");
    f.rr[1].msg = f.r[1];
    struct pl_snapshot *s2 = build(&f, 3);
    struct pl_snapshot *s3 = build(&f, 1); /* only r2 (f.rr[0]): r1 is gone */
    s1->generation = 1, s2->generation = 2, s3->generation = 3;

    struct hcm_conn hc = {.cfg = hcm_of(s1, 0)};
    hc.acc.snap = s1;
    const struct pl_route_table *t = NULL;
    /* nothing published: the connection's snapshot */
    cr_assert_eq(hcm_route_snapshot(&hc, NULL, &t), s1);
    cr_assert_eq(t, pl_snapshot_route_table(s1, "r1"));
    cr_assert_eq(hcm_route_snapshot(&hc, s1, &t), s1);
    cr_assert_eq(t, pl_snapshot_route_table(s1, "r1"));
    /* a newer snapshot is current: its table, and it is the stream's snapshot */
    cr_assert_eq(hcm_route_snapshot(&hc, s2, &t), s2);
    char *c = cluster_of(t);
    cr_assert_str_eq(c, "uno");
    free(c);
    cr_assert_eq(hc.rt_gen, 2);
    /* cached: the same answer without a lookup (a poisoned cache shows it is used) */
    const struct pl_route_table *poison = (const struct pl_route_table *)&hc;
    hc.rt_table = poison;
    cr_assert_eq(hcm_route_snapshot(&hc, s2, &t), s2);
    cr_assert_eq(t, poison);
    /* the same address with another generation (freed and reallocated): looked up again */
    s2->generation = 4;
    cr_assert_eq(hcm_route_snapshot(&hc, s2, &t), s2);
    cr_assert_eq(t, pl_snapshot_route_table(s2, "r1"));
    /* the current snapshot lacks the name: the connection's table and snapshot */
    cr_assert_eq(hcm_route_snapshot(&hc, s3, &t), s1);
    cr_assert_eq(t, pl_snapshot_route_table(s1, "r1"));

    /* an inline route_config: the HCM's own table, the connection's snapshot */
    struct hcm_conn hi = {.cfg = hcm_of(s1, 2)};
    hi.acc.snap = s1;
    cr_assert_eq(hcm_route_snapshot(&hi, s2, &t), s1);
    cr_assert_eq(t, hcm_of(s1, 2)->routes);
    pl_snapshot_free(s1);
    pl_snapshot_free(s2);
    pl_snapshot_free(s3);
    teardown(&f);
}
