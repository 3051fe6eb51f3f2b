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

/* ---- incremental reloads ---- */

#define ROUTES(name, cluster)                                                                      \
    "- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n"                  \
    "  name: " name "\n"                                                                           \
    "  virtual_hosts:\n"                                                                           \
    "  - name: vh\n"                                                                               \
    "    domains: ['*']\n"                                                                         \
    "    routes:\n"                                                                                \
    "    - match: {prefix: /}\n"                                                                   \
    "      route: {cluster: " cluster "}\n"

static struct pl_cp_set *reload_ok(const struct pl_cp_set *prev, const char *changed)
{
    struct pl_cp_map m = {0};
    if (changed)
        pl_cp_map_put(&m, changed, NULL);
    struct pl_err e = PL_ERR_INIT;
    struct pl_cp_set *s = NULL;
    int rc = pl_cp_set_reload(dir, prev, &m, &s, &e);
    char *msg = pl_err_join(&e);
    cr_assert_eq(rc, 0, "reload failed: %s", msg);
    free(msg);
    pl_err_free(&e);
    pl_cp_map_clear(&m);
    return s;
}

static char *reload_err(const struct pl_cp_set *prev, const char *changed)
{
    struct pl_cp_map m = {0};
    pl_cp_map_put(&m, changed, NULL);
    struct pl_err e = PL_ERR_INIT;
    struct pl_cp_set *s = (struct pl_cp_set *)0x1;
    cr_assert_lt(pl_cp_set_reload(dir, prev, &m, &s, &e), 0);
    cr_assert_null(s);
    char *msg = pl_err_join(&e);
    pl_err_free(&e);
    pl_cp_map_clear(&m);
    return msg;
}

static const struct pl_cp_res *res_named(const struct pl_cp_set *s, int t, const char *name)
{
    return pl_cp_set_find(s, t, name, NULL);
}

Test(cp, reload_reads_only_the_changed_file_and_keeps_the_others_encodings)
{
    put("a.yaml", "resources:\n" CLUSTER("a1", "1s") CLUSTER("a2", "1s"));
    put("b.yaml", "resources:\n" CLUSTER("b1", "1s") CLUSTER("b2", "1s"));
    put("c.yaml", "resources:\n" ROUTES("r", "a1"));
    struct pl_cp_set *s1 = load_ok(NULL);
    cr_assert_eq(s1->stats.decoded, 5);
    put("b.yaml", "resources:\n" CLUSTER("b1", "1s") CLUSTER("b2", "7s"));
    struct pl_cp_set *s2 = reload_ok(s1, "b.yaml");
    cr_assert_eq(s2->stats.files_read, 1, "%zu", s2->stats.files_read);
    cr_assert_eq(s2->stats.decoded, 1); /* b2 only: b1's text is the same */
    cr_assert_eq(s2->stats.reused, 4);
    cr_assert_not(s2->stats.full);
    cr_assert_eq(res_named(s2, PL_CP_CDS, "a1")->item, res_named(s1, PL_CP_CDS, "a1")->item);
    cr_assert_eq(res_named(s2, PL_CP_CDS, "b1")->bytes, res_named(s1, PL_CP_CDS, "b1")->bytes);
    cr_assert_str_neq(res_named(s2, PL_CP_CDS, "b2")->version,
                      res_named(s1, PL_CP_CDS, "b2")->version);
    cr_assert_str_eq(s2->version[PL_CP_CDS], "2");
    cr_assert_str_eq(s2->version[PL_CP_RDS], "1");
    cr_assert_eq(res_named(s2, PL_CP_CDS, "b2")->line, 5);
    cr_assert_eq(res_named(s2, PL_CP_CDS, "b1")->line, 2);
    /* the old set stays whole while the new one shares its items */
    pl_cp_set_free(s1);
    Envoy__Config__Cluster__V3__Cluster *c = envoy__config__cluster__v3__cluster__unpack(
        NULL, res_named(s2, PL_CP_CDS, "b2")->len, res_named(s2, PL_CP_CDS, "b2")->bytes);
    cr_assert(c && c->connect_timeout->seconds == 7);
    envoy__config__cluster__v3__cluster__free_unpacked(c, NULL);
    /* rewritten with the same text: read, not parsed */
    put("b.yaml", "resources:\n" CLUSTER("b1", "1s") CLUSTER("b2", "7s"));
    struct pl_cp_set *s3 = reload_ok(s2, "b.yaml");
    cr_assert_eq(s3->stats.files_read, 1);
    cr_assert_eq(s3->stats.files_parsed, 0);
    cr_assert_eq(s3->stats.decoded, 0);
    cr_assert_str_eq(s3->version[PL_CP_CDS], "2");
    /* a change the watcher did not name is still seen (the stat differs) */
    put("a.yaml", "resources:\n" CLUSTER("a1", "1s") CLUSTER("a2", "30s"));
    struct pl_cp_set *s4 = reload_ok(s3, NULL);
    cr_assert_eq(s4->stats.decoded, 1);
    cr_assert_str_eq(s4->version[PL_CP_CDS], "3");
    pl_cp_set_free(s2);
    pl_cp_set_free(s3);
    pl_cp_set_free(s4);
}

Test(cp, reload_moved_resources_keep_their_lines_and_positions_of_errors)
{
    put("a.yaml", "resources:\n" CLUSTER("one", "1s") CLUSTER("two", "1s"));
    struct pl_cp_set *s1 = load_ok(NULL);
    /* a resource inserted above: "two" is kept but now starts further down */
    put("a.yaml", "resources:\n" CLUSTER("zero", "1s") CLUSTER("one", "1s") CLUSTER("two", "1s"));
    struct pl_cp_set *s2 = reload_ok(s1, "a.yaml");
    cr_assert_eq(s2->stats.decoded, 1);
    cr_assert_eq(res_named(s2, PL_CP_CDS, "two")->line, 8);
    cr_assert_eq(res_named(s2, PL_CP_CDS, "one")->line, 5);
    /* a duplicate of a kept resource: the full check names both places */
    put("a.yaml", "resources:\n" CLUSTER("one", "1s") CLUSTER("two", "1s") CLUSTER("one", "2s"));
    char *msg = reload_err(s2, "a.yaml");
    cr_assert(strstr(msg, "a.yaml:9:3: resources[2].name: Cluster 'one' is defined twice for the "
                          "same nodes (also at "),
              "%s", msg);
    cr_assert(strstr(msg, "a.yaml:2)"), "%s", msg);
    free(msg);
    pl_cp_set_free(s1);
    pl_cp_set_free(s2);
}

Test(cp, reload_bad_change_to_one_file_is_refused_and_the_last_good_set_stays)
{
    put("a.yaml", "resources:\n" CLUSTER("a1", "1s"));
    put("b.yaml", "resources:\n" CLUSTER("b1", "1s"));
    struct pl_cp_set *s1 = load_ok(NULL);
    put("b.yaml", "resources:\n" CLUSTER("b1", "1s") "  conect_timeout: 2s\n");
    char *msg = reload_err(s1, "b.yaml");
    cr_assert(strstr(msg, "b.yaml:5:3: resources[0].conect_timeout: unknown field"), "%s", msg);
    cr_assert_null(strstr(msg, "a.yaml"), "%s", msg);
    free(msg);
    cr_assert_eq(s1->n[PL_CP_CDS], 2); /* untouched */
    /* the next change (of another file) still reads the bad one: it differs from s1's */
    put("a.yaml", "resources:\n" CLUSTER("a1", "5s"));
    msg = reload_err(s1, "a.yaml");
    cr_assert(strstr(msg, "b.yaml:5:3"), "%s", msg);
    free(msg);
    put("b.yaml", "resources:\n" CLUSTER("b1", "1s") CLUSTER("b2", "1s"));
    struct pl_cp_set *s2 = reload_ok(s1, "b.yaml");
    cr_assert_eq(s2->n[PL_CP_CDS], 3);
    cr_assert_eq(s2->stats.decoded, 2, "%zu", s2->stats.decoded); /* a1 (5s) and b2 */
    pl_cp_set_free(s1);
    pl_cp_set_free(s2);
}

Test(cp, reload_deleted_file_removes_its_resources_and_dangling_references_are_refused)
{
    put("a.yaml", "resources:\n" CLUSTER("a1", "1s"));
    put("b.yaml", "resources:\n" CLUSTER("b1", "1s"));
    put("r.yaml", "resources:\n" ROUTES("r", "b1"));
    struct pl_cp_set *s1 = load_ok(NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/b.yaml", dir);
    /* the route still names b1: refused, with the unchanged route file's position */
    cr_assert_eq(unlink(path), 0);
    char *msg = reload_err(s1, "b.yaml");
    cr_assert(strstr(msg, "r.yaml:9:15: resources[0].virtual_hosts[0].routes[0].route.cluster: "
                          "route names unknown cluster 'b1'"),
              "%s", msg);
    free(msg);
    /* the route moves to a1 first, then b.yaml goes: both accepted */
    put("b.yaml", "resources:\n" CLUSTER("b1", "1s"));
    put("r.yaml", "resources:\n" ROUTES("r", "a1"));
    struct pl_cp_set *s2 = reload_ok(s1, "r.yaml");
    cr_assert_eq(unlink(path), 0);
    struct pl_cp_set *s3 = reload_ok(s2, "b.yaml");
    cr_assert_eq(s3->n[PL_CP_CDS], 1);
    cr_assert_null(res_named(s3, PL_CP_CDS, "b1"));
    cr_assert(s3->stats.full); /* a cluster name went away: every route was checked again */
    cr_assert_str_eq(s3->version[PL_CP_CDS], "2");
    cr_assert_eq(s3->n_files, 2);
    pl_cp_set_free(s1);
    pl_cp_set_free(s2);
    pl_cp_set_free(s3);
}

Test(cp, reload_route_naming_a_cluster_of_a_file_not_yet_written)
{
    put("a.yaml", "resources:\n" CLUSTER("a1", "1s"));
    put("r.yaml", "resources:\n" ROUTES("r", "a1"));
    struct pl_cp_set *s1 = load_ok(NULL);
    /* the route file arrives first: refused until the cluster's file is there */
    put("r.yaml", "resources:\n" ROUTES("r", "n1"));
    char *msg = reload_err(s1, "r.yaml");
    cr_assert(strstr(msg, "r.yaml:9:15:"), "%s", msg);
    cr_assert(strstr(msg, "unknown cluster 'n1'"), "%s", msg);
    free(msg);
    put("n.yaml", "resources:\n" CLUSTER("n1", "1s"));
    struct pl_cp_map m = {0};
    pl_cp_map_put(&m, "r.yaml", NULL); /* pending since the refused load */
    pl_cp_map_put(&m, "n.yaml", NULL);
    struct pl_err e = PL_ERR_INIT;
    struct pl_cp_set *s2 = NULL;
    cr_assert_eq(pl_cp_set_reload(dir, s1, &m, &s2, &e), 0);
    pl_cp_map_clear(&m);
    cr_assert_eq(s2->stats.decoded, 2);
    cr_assert_eq(s2->stats.reused, 1);
    cr_assert_str_eq(s2->version[PL_CP_CDS], "2");
    cr_assert_str_eq(s2->version[PL_CP_RDS], "2");
    pl_cp_set_free(s1);
    pl_cp_set_free(s2);
}

Test(cp, reload_node_selector_change_applies_to_kept_resources)
{
    put("a.yaml", "resources:\n" CLUSTER("a1", "1s"));
    struct pl_cp_set *s1 = load_ok(NULL);
    put("a.yaml", "node_selector: {id: x}\nresources:\n" CLUSTER("a1", "1s"));
    struct pl_cp_set *s2 = reload_ok(s1, "a.yaml");
    cr_assert_eq(s2->stats.decoded, 0);
    cr_assert_null(pl_cp_set_find(s2, PL_CP_CDS, "a1", node("y", NULL)));
    cr_assert_not_null(pl_cp_set_find(s2, PL_CP_CDS, "a1", node("x", NULL)));
    cr_assert_str_eq(s2->version[PL_CP_CDS], "2");
    pl_cp_set_free(s1);
    pl_cp_set_free(s2);
}
