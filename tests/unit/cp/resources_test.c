/* pillion-cp resource sets: loading files and directories, errors with positions, node
 * selectors and views, versions per type, and the string map. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/cp_resources_test.XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cp, .init = setup, .fini = teardown);

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

#define CLUSTER(name, timeout)                                                                     \
    "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n"                           \
    "  name: " name "\n"                                                                           \
    "  connect_timeout: " timeout "\n"

static struct pl_cp_set *load_ok(const struct pl_cp_set *prev)
{
    struct pl_err e = PL_ERR_INIT;
    struct pl_cp_set *s = NULL;
    int rc = pl_cp_set_load(dir, prev, &s, &e);
    char *msg = pl_err_join(&e);
    cr_assert_eq(rc, 0, "load failed: %s", msg);
    free(msg);
    pl_err_free(&e);
    return s;
}

static char *load_err(void)
{
    struct pl_err e = PL_ERR_INIT;
    struct pl_cp_set *s = (struct pl_cp_set *)0x1;
    cr_assert_lt(pl_cp_set_load(dir, NULL, &s, &e), 0);
    cr_assert_null(s);
    char *msg = pl_err_join(&e);
    pl_err_free(&e);
    return msg;
}

static pl_cp_node_t *node(const char *id, const char *app)
{
    static Envoy__Config__Core__V3__Node n;
    static Google__Protobuf__Struct md;
    static Google__Protobuf__Struct__FieldsEntry ent, *ents[1];
    static Google__Protobuf__Value val;
    envoy__config__core__v3__node__init(&n);
    n.id = (char *)id;
    if (app) {
        google__protobuf__struct__init(&md);
        google__protobuf__struct__fields_entry__init(&ent);
        google__protobuf__value__init(&val);
        val.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        val.string_value = (char *)app;
        ent.key = "app";
        ent.value = &val;
        ents[0] = &ent;
        md.n_fields = 1;
        md.fields = ents;
        n.metadata = &md;
    }
    return &n;
}

Test(cp, loads_a_directory_in_name_order_and_decodes)
{
    put("b.yaml", "resources:\n" CLUSTER("two", "2s"));
    put("a.json", "{\"resources\": [{\"@type\": "
                  "\"type.googleapis.com/envoy.config.cluster.v3.Cluster\", \"name\": \"one\"}]}");
    put("ignored.txt", "not: yaml: at all");
    put(".hidden.yaml", "garbage: [");
    struct pl_cp_set *s = load_ok(NULL);
    cr_assert_eq(s->n[PL_CP_CDS], 2);
    cr_assert_str_eq(s->res[PL_CP_CDS][0].name, "one");
    cr_assert_str_eq(s->res[PL_CP_CDS][1].name, "two");
    cr_assert_str_eq(s->version[PL_CP_CDS], "1");
    cr_assert_eq(s->n_files, 2);
    Envoy__Config__Cluster__V3__Cluster *c = envoy__config__cluster__v3__cluster__unpack(
        NULL, s->res[PL_CP_CDS][1].len, s->res[PL_CP_CDS][1].bytes);
    cr_assert(c && c->connect_timeout && c->connect_timeout->seconds == 2);
    cr_assert_eq(strlen(s->res[PL_CP_CDS][1].version), 16);
    envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
    pl_cp_set_free(s);
}

Test(cp, versions_move_only_for_changed_types)
{
    put("a.yaml",
        "resources:\n" CLUSTER(
            "one", "1s") "- \"@type\": "
                         "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n"
                         "  cluster_name: one\n");
    struct pl_cp_set *s1 = load_ok(NULL);
    struct pl_cp_set *s2 = load_ok(s1);
    cr_assert_str_eq(s2->version[PL_CP_CDS], "1");
    put("a.yaml",
        "resources:\n" CLUSTER(
            "one", "3s") "- \"@type\": "
                         "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n"
                         "  cluster_name: one\n");
    struct pl_cp_set *s3 = load_ok(s2);
    cr_assert_str_eq(s3->version[PL_CP_CDS], "2");
    cr_assert_str_eq(s3->version[PL_CP_EDS], "1");
    cr_assert_str_neq(s3->res[PL_CP_CDS][0].version, s2->res[PL_CP_CDS][0].version);
    pl_cp_set_free(s1);
    pl_cp_set_free(s2);
    pl_cp_set_free(s3);
}

Test(cp, errors_have_positions_and_paths)
{
    put("a.yaml", "resources:\n" CLUSTER(
                      "one", "1s") "  bogus: 1\n"
                                   "- \"@type\": type.googleapis.com/envoy.config.core.v3.Node\n"
                                   "- name: no_type\n");
    char *msg = load_err();
    cr_assert(strstr(msg, "a.yaml:5:3: resources[0].bogus: unknown field 'bogus'"), "%s", msg);
    cr_assert(strstr(msg, "a.yaml:6:12: resources[1]: '@type'"), "%s", msg);
    cr_assert(strstr(msg, "not a resource type pillion-cp serves"), "%s", msg);
    cr_assert(strstr(msg, "a.yaml:7:3: resources[2]: a resource needs an '@type'"), "%s", msg);
    free(msg);
}

Test(cp, missing_names_duplicates_and_references)
{
    put("a.yaml",
        "resources:\n" CLUSTER("one", "1s") CLUSTER(
            "one",
            "2s") "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n"
                  "  connect_timeout: 1s\n"
                  "- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n"
                  "  name: r\n"
                  "  virtual_hosts:\n"
                  "  - name: vh\n"
                  "    domains: ['*']\n"
                  "    routes:\n"
                  "    - match: {prefix: /}\n"
                  "      route: {cluster: missing}\n");
    char *msg = load_err();
    cr_assert(strstr(msg, "a.yaml:6:3: resources[1].name: Cluster 'one' is defined twice"), "%s",
              msg);
    cr_assert(strstr(msg, "also at "), "%s", msg);
    cr_assert(strstr(msg, "resources[2]"), "%s", msg);
    cr_assert(strstr(msg, "a Cluster needs a name"), "%s", msg);
    cr_assert(strstr(msg, "a.yaml:17:15: resources[3].virtual_hosts[0].routes[0].route.cluster"),
              "%s", msg);
    cr_assert(strstr(msg, "unknown cluster 'missing'"), "%s", msg);
    free(msg);
}

Test(cp, listener_rds_name_must_exist)
{
    put("l.yaml",
        "resources:\n"
        "- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n"
        "  name: l\n"
        "  filter_chains:\n"
        "  - filters:\n"
        "    - name: hcm\n"
        "      typed_config:\n"
        "        \"@type\": type.googleapis.com/"
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
        "        stat_prefix: x\n"
        "        rds: {route_config_name: nope}\n");
    char *msg = load_err();
    cr_assert(strstr(msg, "l.yaml:10:15: resources[0].filter_chains[0].filters[0].typed_config"
                          ".rds.route_config_name"),
              "%s", msg);
    cr_assert(strstr(msg, "route configuration 'nope'"), "%s", msg);
    free(msg);
}

Test(cp, node_views_and_overrides)
{
    put("a.yaml", "resources:\n" CLUSTER("shared", "1s") CLUSTER("common", "1s"));
    put("b.yaml", "node_selector: {id: b}\nresources:\n" CLUSTER("shared", "9s"));
    put("c.yaml", "node_selector: {metadata: {app: web}}\nresources:\n" CLUSTER("web", "1s"));
    struct pl_cp_set *s = load_ok(NULL);
    const struct pl_cp_res *view[8];
    size_t n = pl_cp_set_view(s, PL_CP_CDS, node("a", NULL), view);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(view[0]->name, "common");
    cr_assert_str_eq(view[1]->name, "shared");
    cr_assert_null(view[1]->sel);
    n = pl_cp_set_view(s, PL_CP_CDS, node("b", "web"), view);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(view[1]->name, "shared");
    cr_assert_not_null(view[1]->sel);
    cr_assert_str_eq(view[1]->sel->id, "b");
    cr_assert_str_eq(view[2]->name, "web");
    cr_assert_eq(pl_cp_set_view(s, PL_CP_CDS, NULL, view), 2);
    cr_assert_not_null(pl_cp_set_find(s, PL_CP_CDS, "shared", node("b", NULL))->sel);
    cr_assert_null(pl_cp_set_find(s, PL_CP_CDS, "shared", node("x", NULL))->sel);
    cr_assert_null(pl_cp_set_find(s, PL_CP_CDS, "web", node("x", "db")));
    cr_assert_null(pl_cp_set_find(s, PL_CP_CDS, "nothing", NULL));
    pl_cp_set_free(s);
}

Test(cp, selector_errors)
{
    put("a.yaml", "node_selector: {id: [x], zone: y, metadata: {k: {a: b}}}\nresources: {}\n");
    char *msg = load_err();
    cr_assert(strstr(msg, "a.yaml:1:21: id: node_selector: id and cluster must be strings"), "%s",
              msg);
    cr_assert(strstr(msg, "unknown node_selector key 'zone'"), "%s", msg);
    cr_assert(strstr(msg, "metadata values must be strings"), "%s", msg);
    free(msg);
    put("a.yaml", "resources: {}\nextra: 1\n");
    msg = load_err();
    cr_assert(strstr(msg, "a.yaml:1:12: resources: resources must be a list"), "%s", msg);
    cr_assert(strstr(msg, "a.yaml:2:1: extra: unknown top-level key 'extra'"), "%s", msg);
    free(msg);
}

Test(cp, missing_path_and_empty_file)
{
    struct pl_err e = PL_ERR_INIT;
    struct pl_cp_set *s;
    cr_assert_lt(pl_cp_set_load("/nonexistent/pillion-cp", NULL, &s, &e), 0);
    cr_assert(strstr(e.v[0].msg, "cannot read"));
    pl_err_free(&e);
    put("empty.yaml", "");
    s = load_ok(NULL);
    for (int t = 0; t < PL_CP_NTYPES; t++)
        cr_assert_eq(s->n[t], 0);
    pl_cp_set_free(s);
}

Test(cp, type_urls)
{
    for (int t = 0; t < PL_CP_NTYPES; t++)
        cr_assert_eq(pl_cp_type_from_url(pl_cp_type_url(t)), t);
    cr_assert_eq(pl_cp_type_from_url("x.example/envoy.config.cluster.v3.Cluster"), PL_CP_CDS);
    cr_assert_eq(pl_cp_type_from_url("type.googleapis.com/envoy.config.core.v3.Node"), -1);
    cr_assert_eq(pl_cp_type_from_url("nothing"), -1);
}

static void count(struct pl_cp_map_ent *e, void *ud)
{
    (void)e;
    ++*(size_t *)ud;
}

Test(cp, string_map)
{
    struct pl_cp_map m = {0};
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        pl_cp_map_put(&m, k, i % 2 ? k : NULL);
    }
    cr_assert_eq(m.n, 1000);
    cr_assert_str_eq(pl_cp_map_get(&m, "k7")->val, "k7");
    cr_assert_null(pl_cp_map_get(&m, "k8")->val);
    pl_cp_map_put(&m, "k8", "x");
    cr_assert_str_eq(pl_cp_map_get(&m, "k8")->val, "x");
    cr_assert(pl_cp_map_del(&m, "k8"));
    cr_assert_not(pl_cp_map_del(&m, "k8"));
    cr_assert_null(pl_cp_map_get(&m, "k8"));
    size_t n = 0;
    pl_cp_map_each(&m, count, &n);
    cr_assert_eq(n, 999);
    pl_cp_map_clear(&m);
    cr_assert_eq(m.n, 0);
    cr_assert_null(pl_cp_map_get(&m, "k1"));
}
