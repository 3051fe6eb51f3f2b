/* YAML/JSON node tree: positions, node API, aliases and limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tree.h"

static struct pl_tree *parse(const char *text)
{
    struct pl_tree *t = NULL;
    struct pl_err e = PL_ERR_INIT;
    int rc = pl_tree_load_text(text, strlen(text), "x.yaml", &t, &e);
    char *s = pl_err_join(&e);
    cr_assert_eq(rc, 0, "%s", s);
    free(s);
    pl_err_free(&e);
    return t;
}

static void parse_fails(const char *text, const char *want)
{
    struct pl_tree *t = (struct pl_tree *)0x1;
    struct pl_err e = PL_ERR_INIT;
    cr_assert_eq(pl_tree_load_text(text, strlen(text), "x.yaml", &t, &e), PL_EINVAL);
    cr_assert_null(t);
    char *s = pl_err_join(&e);
    cr_assert_str_eq(s, want);
    free(s);
    pl_err_free(&e);
}

Test(tree, yaml_node_api_and_positions)
{
    struct pl_tree *t = parse("a: 1\nb:\n  - x\n  - 'y'\n  - ~\nc: {d: \"e\"}\n");
    const struct pl_node *r = pl_tree_root(t);
    cr_assert_str_eq(pl_tree_name(t), "x.yaml");
    cr_assert_eq(pl_node_type(r), PL_NODE_MAP);
    cr_assert_eq(pl_node_len(r), 3);
    cr_assert_str_eq(pl_node_str(pl_node_key(r, 1), NULL), "b");
    const struct pl_node *b = pl_node_val(r, 1);
    cr_assert_eq(pl_node_type(b), PL_NODE_SEQ);
    cr_assert_eq(pl_node_len(b), 3);
    cr_assert_eq(pl_node_line(pl_node_item(b, 1)), 4);
    cr_assert_eq(pl_node_col(pl_node_item(b, 1)), 5);
    cr_assert(!pl_node_quoted(pl_node_item(b, 0)));
    cr_assert(pl_node_quoted(pl_node_item(b, 1)));
    cr_assert_eq(pl_node_type(pl_node_item(b, 2)), PL_NODE_NULL);
    cr_assert_null(pl_node_item(b, 3));
    cr_assert_null(pl_node_key(b, 0));
    const struct pl_node *d = pl_node_get(pl_node_get(r, "c"), "d");
    size_t len;
    cr_assert_str_eq(pl_node_str(d, &len), "e");
    cr_assert_eq(len, 1);
    cr_assert_eq(pl_node_line(d), 6);
    cr_assert_eq(pl_node_col(d), 8);
    cr_assert_null(pl_node_get(r, "zz"));
    cr_assert_null(pl_node_str(b, NULL));
    pl_tree_free(t);
}

Test(tree, yaml_tags_and_nulls)
{
    struct pl_tree *t = parse("a: !!str 12\nb: null\nc: 'null'\nd:\ne: !!null x\n");
    const struct pl_node *r = pl_tree_root(t);
    cr_assert(pl_node_quoted(pl_node_get(r, "a")));
    cr_assert_eq(pl_node_type(pl_node_get(r, "b")), PL_NODE_NULL);
    cr_assert_eq(pl_node_type(pl_node_get(r, "c")), PL_NODE_SCALAR);
    cr_assert_eq(pl_node_type(pl_node_get(r, "d")), PL_NODE_NULL);
    cr_assert_eq(pl_node_type(pl_node_get(r, "e")), PL_NODE_NULL);
    pl_tree_free(t);
}

Test(tree, empty_documents)
{
    struct pl_tree *t = parse("");
    cr_assert_eq(pl_node_type(pl_tree_root(t)), PL_NODE_NULL);
    pl_tree_free(t);
    t = parse("---\n...\n");
    cr_assert_eq(pl_node_type(pl_tree_root(t)), PL_NODE_NULL);
    pl_tree_free(t);
}

Test(tree, aliases_share_nodes)
{
    struct pl_tree *t = parse("base: &b {k: v}\nlist: [*b, *b]\n");
    const struct pl_node *r = pl_tree_root(t);
    const struct pl_node *l = pl_node_get(r, "list");
    cr_assert_eq(pl_node_item(l, 0), pl_node_get(r, "base"));
    cr_assert_eq(pl_node_item(l, 1), pl_node_get(r, "base"));
    pl_tree_free(t);
    parse_fails("a: *nope\n", "x.yaml:1:4: unknown anchor 'nope'");
    /* an alias to an enclosing node would be a cycle: it is not defined yet */
    parse_fails("a: &x [1, *x]\n", "x.yaml:1:11: unknown anchor 'x'");
}

Test(tree, alias_expansion_is_bounded)
{
    /* "billion laughs": 9 levels of 10 aliases each = 10^9 nodes once expanded */
    char buf[4096], *p = buf;
    p += sprintf(p, "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++)
        p += sprintf(p, "l%d: &l%d [*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d]\n", i, i,
                     i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    struct pl_tree *t = (struct pl_tree *)0x1;
    struct pl_err e = PL_ERR_INIT;
    cr_assert_eq(pl_tree_load_text(buf, strlen(buf), "x.yaml", &t, &e), PL_EINVAL);
    cr_assert_eq(e.n, 1);
    cr_assert(strstr(e.v[0].msg, "document too large"), "%s", e.v[0].msg);
    cr_assert_eq(e.v[0].line, 8);
    pl_err_free(&e);
}

Test(tree, yaml_errors_have_positions)
{
    parse_fails("a: b: c\n", "x.yaml:1:5: mapping values are not allowed in this context");
    parse_fails("a: 1\n---\nb: 2\n", "x.yaml:2:1: expected a single YAML document, found several");
    parse_fails("a:\n\t- b\n", "x.yaml:2:1: while scanning for the next token found character "
                               "that cannot start any token");
    parse_fails("a: 'x\n", "x.yaml:2:1: while scanning a quoted scalar found unexpected end of "
                           "stream");
}

Test(tree, json_positions_tabs_bom_and_escapes)
{
    struct pl_tree *t = parse("\xEF\xBB\xBF{\n\t\"a\":\t[1, -2.5e3, true, null],\n"
                              "\t\"s\": \"\\ud83d\\ude00\\u0000z\\t\"}");
    const struct pl_node *r = pl_tree_root(t);
    const struct pl_node *a = pl_node_get(r, "a");
    cr_assert_eq(pl_node_line(a), 2);
    cr_assert_eq(pl_node_col(a), 7);
    cr_assert_eq(pl_node_type(pl_node_item(a, 0)), PL_NODE_SCALAR);
    cr_assert(!pl_node_quoted(pl_node_item(a, 1)));
    cr_assert_str_eq(pl_node_str(pl_node_item(a, 1), NULL), "-2.5e3");
    cr_assert_eq(pl_node_type(pl_node_item(a, 3)), PL_NODE_NULL);
    size_t len;
    const char *s = pl_node_str(pl_node_get(r, "s"), &len);
    cr_assert_eq(len, 7);
    cr_assert_eq(memcmp(s, "\xF0\x9F\x98\x80\0z\t", 7), 0);
    cr_assert(pl_node_quoted(pl_node_get(r, "s")));
    pl_tree_free(t);
}

Test(tree, json_like_flow_yaml_falls_back_to_libyaml)
{
    struct pl_tree *t = parse("{a: 1, 'b': [x, y], c: {d: e},}");
    const struct pl_node *r = pl_tree_root(t);
    cr_assert_eq(pl_node_len(r), 3);
    cr_assert_str_eq(pl_node_str(pl_node_item(pl_node_get(r, "b"), 1), NULL), "y");
    pl_tree_free(t);
    t = parse("[1, 2]\n");
    cr_assert_eq(pl_node_len(pl_tree_root(t)), 2);
    pl_tree_free(t);
}

Test(tree, json_errors)
{
    parse_fails("{\"a\": 1} x", "x.yaml:1:10: unexpected text after the JSON value");
    parse_fails("{\"a\": \"\\q\"}", "x.yaml:1:9: invalid escape in string");
    parse_fails("{\"a\": \"\\udc00\"}", "x.yaml:1:14: unpaired UTF-16 surrogate in string");
    parse_fails("{\"a\": [1, 2", "x.yaml:1:12: unterminated array");
    parse_fails("{\"a\": \"x\001y\"}", "x.yaml:1:9: control character in string");
}

Test(tree, load_file_errors)
{
    struct pl_tree *t;
    struct pl_err e = PL_ERR_INIT;
    cr_assert_eq(pl_tree_load_file("/", &t, &e), PL_EIO);
    cr_assert_null(t);
    cr_assert_str_eq(e.v[0].msg, "not a regular file");
    pl_err_free(&e);
}
