/* proto3 JSON/YAML mapper: decoding, errors with positions, source map, Any, printing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/pbjson.h"
#include "pbjson_test.pb-c.h"
#include "pl_proto_all.h"

typedef Pillion__Test__AllTypes AllTypes;
#define ALL (&pillion__test__all_types__descriptor)

static void setup(void)
{
    static const ProtobufCMessageDescriptor *const extra[] = {
        &pillion__test__all_types__descriptor,
        &pillion__test__all_types__nested__descriptor,
        &pillion__test__inner__descriptor,
        &pillion__test__legacy__descriptor,
    };
    pl_registry_add_all(extra, sizeof(extra) / sizeof(extra[0]));
}

TestSuite(pbjson, .init = setup);

/* Decodes text as AllTypes; on failure returns NULL with the joined errors in *msgs. */
static AllTypes *try_load(const char *text, struct pl_srcmap **map, char **msgs)
{
    struct pl_err e = PL_ERR_INIT;
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    int rc = pl_pbjson_load_text(text, strlen(text), "t.yaml", ALL, NULL, &m, map, &e);
    *msgs = pl_err_join(&e);
    if (rc == 0)
        cr_assert_eq(e.n, 0);
    else
        cr_assert(m == NULL && e.n > 0, "failure must give NULL and errors");
    pl_err_free(&e);
    return (AllTypes *)m;
}

static AllTypes *load(const char *text, struct pl_srcmap **map)
{
    char *msgs;
    AllTypes *m = try_load(text, map, &msgs);
    cr_assert_not_null(m, "unexpected errors: %s", msgs);
    free(msgs);
    return m;
}

static void expect_err(const char *text, const char *want)
{
    char *msgs;
    AllTypes *m = try_load(text, NULL, &msgs);
    cr_assert_null(m, "expected an error for: %s", text);
    cr_assert_str_eq(msgs, want);
    free(msgs);
}

static void fr(AllTypes *m)
{
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

Test(pbjson, every_scalar_type_from_yaml)
{
    AllTypes *m = load("f_int32: -12\n"
                       "f_int64: '-9223372036854775808'\n"
                       "f_uint32: 4294967295\n"
                       "f_uint64: \"18446744073709551615\"\n"
                       "f_sint32: -2147483648\n"
                       "f_sint64: 9223372036854775807\n"
                       "f_fixed32: '7'\n"
                       "f_fixed64: 8\n"
                       "f_sfixed32: -9\n"
                       "f_sfixed64: '-10'\n"
                       "f_float: 1.5\n"
                       "f_double: -2.25e3\n"
                       "f_bool: true\n"
                       "f_string: héllo\n"
                       "f_bytes: aGVsbG8=\n",
                       NULL);
    cr_assert_eq(m->f_int32, -12);
    cr_assert_eq(m->f_int64, INT64_MIN);
    cr_assert_eq(m->f_uint32, UINT32_MAX);
    cr_assert_eq(m->f_uint64, UINT64_MAX);
    cr_assert_eq(m->f_sint32, INT32_MIN);
    cr_assert_eq(m->f_sint64, INT64_MAX);
    cr_assert_eq(m->f_fixed32, 7);
    cr_assert_eq(m->f_fixed64, 8);
    cr_assert_eq(m->f_sfixed32, -9);
    cr_assert_eq(m->f_sfixed64, -10);
    cr_assert_eq(m->f_float, 1.5f);
    cr_assert_eq(m->f_double, -2250.0);
    cr_assert_eq(m->f_bool, 1);
    cr_assert_str_eq(m->f_string, "héllo");
    cr_assert_eq(m->f_bytes.len, 5);
    cr_assert_eq(memcmp(m->f_bytes.data, "hello", 5), 0);
    fr(m);
}

Test(pbjson, json_with_tabs_camel_case_and_special_numbers)
{
    AllTypes *m = load("{\n\t\"fInt32\": \"123\",\n\t\"fInt64\": 1e3,\n\t\"fFloat\": \"NaN\",\n"
                       "\t\"fDouble\": \"-Infinity\",\n\t\"rDouble\": [\"Infinity\", 0.5, 1E-2],\n"
                       "\t\"fString\": \"a\\u00e9\\ud83d\\ude00\\/\\n\",\n"
                       "\t\"fBool\": false, \"fUint32\": 7.0}",
                       NULL);
    cr_assert_eq(m->f_int32, 123);
    cr_assert_eq(m->f_int64, 1000);
    cr_assert(isnan(m->f_float));
    cr_assert(isinf(m->f_double) && m->f_double < 0);
    cr_assert_eq(m->n_r_double, 3);
    cr_assert(isinf(m->r_double[0]));
    cr_assert_eq(m->r_double[2], 0.01);
    cr_assert_str_eq(m->f_string, "a\xC3\xA9\xF0\x9F\x98\x80/\n");
    cr_assert_eq(m->f_uint32, 7);
    fr(m);
}

Test(pbjson, yaml_plain_scalars_bools_and_nulls)
{
    AllTypes *m = load("f_bool: yes\nf_string: 123\nf_int32: null\nr_bool: [on, 'true', False]\n"
                       "f_float: .inf\nf_double: ~\nnested:\n",
                       NULL);
    cr_assert_eq(m->f_bool, 1);
    cr_assert_str_eq(m->f_string, "123");
    cr_assert_eq(m->f_int32, 0);
    cr_assert_eq(m->n_r_bool, 3);
    cr_assert(m->r_bool[0] && m->r_bool[1] && !m->r_bool[2]);
    cr_assert(isinf(m->f_float));
    cr_assert_null(m->nested, "null means unset");
    fr(m);
}

Test(pbjson, bytes_standard_and_url_safe)
{
    AllTypes *m = load("r_bytes: ['+/8=', '-_8', '', 'YQ']\n", NULL);
    cr_assert_eq(m->n_r_bytes, 4);
    cr_assert_eq(m->r_bytes[0].len, 2);
    cr_assert_eq(m->r_bytes[0].data[0], 0xfb);
    cr_assert_eq(m->r_bytes[0].data[1], 0xff);
    cr_assert_eq(m->r_bytes[1].len, 2);
    cr_assert_eq(memcmp(m->r_bytes[1].data, m->r_bytes[0].data, 2), 0);
    cr_assert_eq(m->r_bytes[2].len, 0);
    cr_assert_eq(m->r_bytes[3].len, 1);
    cr_assert_eq(m->r_bytes[3].data[0], 'a');
    fr(m);
}

Test(pbjson, enums_by_name_and_number)
{
    AllTypes *m =
        load("color: GREEN\nmode: 2\nr_color: [RED, 2, \"1\", 99]\nr_mode: [FAST]\n", NULL);
    cr_assert_eq(m->color, PILLION__TEST__COLOR__GREEN);
    cr_assert_eq(m->mode, PILLION__TEST__ALL_TYPES__MODE__SLOW);
    cr_assert_eq(m->n_r_color, 4);
    cr_assert_eq(m->r_color[0], PILLION__TEST__COLOR__RED);
    cr_assert_eq(m->r_color[1], PILLION__TEST__COLOR__GREEN);
    cr_assert_eq(m->r_color[2], PILLION__TEST__COLOR__RED);
    cr_assert_eq((int)m->r_color[3], 99, "proto3 enums are open");
    cr_assert_eq(m->r_mode[0], PILLION__TEST__ALL_TYPES__MODE__FAST);
    fr(m);
}

Test(pbjson, nested_repeated_messages_and_strings)
{
    AllTypes *m = load("nested: {x: 5, label: n}\n"
                       "inner:\n  name: top\n  portValue: 80\n  children:\n"
                       "  - name: a\n  - name: b\n    children: [{name: c}]\n"
                       "r_string: [x, 'y', \"z\"]\n"
                       "r_nested: [{x: 1}, {}, {label: q}]\n"
                       "r_int64: [1, '-2']\n",
                       NULL);
    cr_assert_eq(m->nested->x, 5);
    cr_assert_str_eq(m->nested->label, "n");
    cr_assert_str_eq(m->inner->name, "top");
    cr_assert_eq(m->inner->port_value, 80);
    cr_assert_eq(m->inner->n_children, 2);
    cr_assert_str_eq(m->inner->children[1]->children[0]->name, "c");
    cr_assert_str_eq(m->inner->children[0]->children == NULL ? "ok" : "no", "ok");
    cr_assert_eq(m->n_r_string, 3);
    cr_assert_str_eq(m->r_string[2], "z");
    cr_assert_eq(m->n_r_nested, 3);
    cr_assert_str_eq(m->r_nested[1]->label, "", "unset strings are the empty string");
    cr_assert_eq(m->r_int64[1], -2);
    fr(m);
}

Test(pbjson, maps)
{
    AllTypes *m = load("labels: {a: '1', b: two}\n"
                       "inners: {x: {name: ix}, 'y.z': {portValue: 3}}\n"
                       "by_id: {1: one, '-2': minus}\n"
                       "byU64: {'18446744073709551615': {x: 1}}\n"
                       "by_bool: {true: t, 'false': f}\n"
                       "values: {n: null, s: str, d: 1.5, l: [1, a], o: {k: v}}\n",
                       NULL);
    cr_assert_eq(m->n_labels, 2);
    cr_assert_str_eq(m->labels[0]->key, "a");
    cr_assert_str_eq(m->labels[0]->value, "1");
    cr_assert_str_eq(m->labels[1]->value, "two");
    cr_assert_str_eq(m->inners[1]->key, "y.z");
    cr_assert_eq(m->inners[1]->value->port_value, 3);
    cr_assert_eq(m->by_id[0]->key, 1);
    cr_assert_eq(m->by_id[1]->key, -2);
    cr_assert_eq(m->by_u64[0]->key, UINT64_MAX);
    cr_assert_eq(m->by_u64[0]->value->x, 1);
    cr_assert_eq(m->by_bool[0]->key, 1);
    cr_assert_eq(m->by_bool[1]->key, 0);
    cr_assert_eq(m->n_values, 5);
    cr_assert_eq(m->values[0]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    cr_assert_str_eq(m->values[1]->value->string_value, "str");
    cr_assert_eq(m->values[2]->value->number_value, 1.5);
    cr_assert_eq(m->values[3]->value->list_value->n_values, 2);
    cr_assert_str_eq(m->values[4]->value->struct_value->fields[0]->value->string_value, "v");
    fr(m);
}

Test(pbjson, oneof_sets_case)
{
    AllTypes *m = load("choice_msg: {x: 3}\n", NULL);
    cr_assert_eq(m->choice_case, PILLION__TEST__ALL_TYPES__CHOICE_CHOICE_MSG);
    cr_assert_eq(m->choice_msg->x, 3);
    fr(m);
    m = load("choiceStr: s\nchoice_int: null\n", NULL);
    cr_assert_eq(m->choice_case, PILLION__TEST__ALL_TYPES__CHOICE_CHOICE_STR);
    cr_assert_str_eq(m->choice_str, "s");
    fr(m);
    m = load("choice_int: 0\n", NULL);
    cr_assert_eq(m->choice_case, PILLION__TEST__ALL_TYPES__CHOICE_CHOICE_INT);
    fr(m);
}

Test(pbjson, durations_and_timestamps)
{
    AllTypes *m = load("timeout: 1.5s\n"
                       "r_durations: ['0.000001s', '-2.5s', 0s, 315576000000s, '-0.1s']\n"
                       "at: '1972-01-01T10:00:20.021+01:30'\n",
                       NULL);
    cr_assert_eq(m->timeout->seconds, 1);
    cr_assert_eq(m->timeout->nanos, 500000000);
    cr_assert_eq(m->r_durations[0]->seconds, 0);
    cr_assert_eq(m->r_durations[0]->nanos, 1000);
    cr_assert_eq(m->r_durations[1]->seconds, -2);
    cr_assert_eq(m->r_durations[1]->nanos, -500000000);
    cr_assert_eq(m->r_durations[3]->seconds, 315576000000LL);
    cr_assert_eq(m->r_durations[4]->seconds, 0);
    cr_assert_eq(m->r_durations[4]->nanos, -100000000);
    cr_assert_eq(m->at->seconds, 63108020 - 5400);
    cr_assert_eq(m->at->nanos, 21000000);
    fr(m);
    m = load("at: '0001-01-01T00:00:00Z'\n", NULL);
    cr_assert_eq(m->at->seconds, -62135596800LL);
    fr(m);
    m = load("at: '2024-02-29T23:59:59.123456789Z'\n", NULL);
    cr_assert_eq(m->at->seconds, 1709251199);
    cr_assert_eq(m->at->nanos, 123456789);
    fr(m);
}

Test(pbjson, wrappers_struct_list_empty)
{
    AllTypes *m = load("w_bool: false\nw_uint32: 7\nw_string: s\nw_int64: '-5'\nw_double: 2.5\n"
                       "w_bytes: AAE=\nw_float: '1.25'\nw_int32: 0\nw_uint64: \"9\"\n"
                       "meta: {a: 1, b: [true, null, {c: d}], e: 'x'}\n"
                       "val: [1, two]\nlist: [null, 3]\nempty: {}\n",
                       NULL);
    cr_assert_not_null(m->w_bool, "a wrapper holding the default is still set");
    cr_assert_eq(m->w_bool->value, 0);
    cr_assert_eq(m->w_uint32->value, 7);
    cr_assert_str_eq(m->w_string->value, "s");
    cr_assert_eq(m->w_int64->value, -5);
    cr_assert_eq(m->w_double->value, 2.5);
    cr_assert_eq(m->w_bytes->value.len, 2);
    cr_assert_eq(m->w_float->value, 1.25f);
    cr_assert_not_null(m->w_int32);
    cr_assert_eq(m->w_uint64->value, 9);
    cr_assert_eq(m->meta->n_fields, 3);
    cr_assert_eq(m->meta->fields[0]->value->number_value, 1);
    Google__Protobuf__ListValue *b = m->meta->fields[1]->value->list_value;
    cr_assert_eq(b->n_values, 3);
    cr_assert_eq(b->values[0]->bool_value, 1);
    cr_assert_eq(b->values[1]->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    cr_assert_str_eq(b->values[2]->struct_value->fields[0]->key, "c");
    cr_assert_str_eq(m->meta->fields[2]->value->string_value, "x");
    cr_assert_eq(m->val->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
    cr_assert_eq(m->list->n_values, 2);
    cr_assert_not_null(m->empty);
    fr(m);
}

Test(pbjson, proto2_optional_sets_has_flags)
{
    AllTypes *m = load("legacy: {opt_int32: 0, optString: '', opt_bool: false, opt_bytes: '',"
                       " child: {opt_double: 1}, nums: [1, 2]}\n",
                       NULL);
    Pillion__Test__Legacy *l = m->legacy;
    cr_assert(l->has_opt_int32 && l->has_opt_bool && l->has_opt_bytes);
    cr_assert_str_eq(l->opt_string, "");
    cr_assert(!l->has_opt_double);
    cr_assert(l->child->has_opt_double);
    cr_assert_eq(l->n_nums, 2);
    char *s = pl_pbjson_print(&m->base, 0);
    cr_assert_str_eq(s, "{\"legacy\":{\"optInt32\":0,\"optString\":\"\",\"optBool\":false,"
                        "\"optBytes\":\"\",\"child\":{\"optDouble\":1},\"nums\":[1,2]}}");
    free(s);
    fr(m);
}

Test(pbjson, empty_document_is_empty_message)
{
    AllTypes *m = load("", NULL);
    cr_assert_eq(m->f_int32, 0);
    fr(m);
    m = load("# only a comment\n", NULL);
    fr(m);
    m = load("{}", NULL);
    fr(m);
}

/* ---- errors ---- */

Test(pbjson, unknown_field_names_message_and_position)
{
    expect_err("f_int32: 1\nnested:\n  x: 1\n  bogus: 2\n",
               "t.yaml:4:3: nested.bogus: unknown field 'bogus' in pillion.test.AllTypes.Nested");
    expect_err("{\"inner\": {\"children\": [{}, {\"nope\": 1}]}}",
               "t.yaml:1:30: inner.children[1].nope: unknown field 'nope' in pillion.test.Inner");
}

Test(pbjson, collects_all_errors)
{
    expect_err("a: 1\n"
               "f_int32: x\n"
               "f_uint32: -1\n"
               "f_int32: 2\n"
               "color: PURPLE\n"
               "r_nested: [{x: 1}, {y: 2}, 3]\n"
               "labels: {k: [1]}\n",
               "t.yaml:1:1: a: unknown field 'a' in pillion.test.AllTypes; "
               "t.yaml:2:10: f_int32: invalid int32 value 'x'; "
               "t.yaml:3:11: f_uint32: value -1 is out of range for uint32; "
               "t.yaml:4:1: f_int32: field 'f_int32' is set more than once; "
               "t.yaml:5:8: color: unknown value 'PURPLE' for enum pillion.test.Color; "
               "t.yaml:6:21: r_nested[1].y: unknown field 'y' in pillion.test.AllTypes.Nested; "
               "t.yaml:6:28: r_nested[2]: expected an object for pillion.test.AllTypes.Nested, "
               "got a scalar; "
               "t.yaml:7:13: labels[\"k\"]: expected string, got a list");
}

Test(pbjson, range_and_type_errors)
{
    expect_err("f_uint32: 4294967296", "t.yaml:1:11: f_uint32: value 4294967296 is out of range "
                                       "for uint32");
    expect_err("f_int32: 2147483648", "t.yaml:1:10: f_int32: value 2147483648 is out of range "
                                      "for int32");
    expect_err("f_int64: '9223372036854775808'", "t.yaml:1:10: f_int64: value "
                                                 "9223372036854775808 is out of range for int64");
    expect_err("f_int32: 1.5", "t.yaml:1:10: f_int32: invalid int32 value '1.5'");
    expect_err("f_float: 1e39", "t.yaml:1:10: f_float: value 1e39 is out of range for float");
    expect_err("f_double: 1e400", "t.yaml:1:11: f_double: value 1e400 is out of range for double");
    expect_err("f_double: 0x10", "t.yaml:1:11: f_double: invalid double value '0x10'");
    expect_err("f_bool: 'yes'", "t.yaml:1:9: f_bool: invalid bool value 'yes'");
    expect_err("f_bytes: 'a$'", "t.yaml:1:10: f_bytes: invalid base64 in bytes value");
    expect_err("f_string: [a]", "t.yaml:1:11: f_string: expected string, got a list");
    expect_err("nested: 3", "t.yaml:1:9: nested: expected an object for "
                            "pillion.test.AllTypes.Nested, got a scalar");
    expect_err("r_int32: 3", "t.yaml:1:10: r_int32: expected a list, got a scalar");
    expect_err("labels: [a]", "t.yaml:1:9: labels: expected an object, got a list");
    expect_err("r_int32: [1, null]", "t.yaml:1:14: r_int32[1]: null is not allowed in a list");
    expect_err("inners: {a: null}", "t.yaml:1:13: inners[\"a\"]: null is not allowed as a map "
                                    "value");
    expect_err("by_id: {x: a}", "t.yaml:1:9: by_id[\"x\"]: invalid int32 value 'x'");
    expect_err("labels: {a: x, a: y}", "t.yaml:1:16: labels[\"a\"]: duplicate map key");
    expect_err("{\"fString\": \"a\\u0000b\"}", "t.yaml:1:13: f_string: NUL character in string");
}

Test(pbjson, oneof_conflict)
{
    expect_err("choice_str: a\nchoice_int: 3\n",
               "t.yaml:2:1: choice_int: fields 'choice_str' and 'choice_int' are in the same "
               "oneof: set only one");
    expect_err("{\"choiceMsg\": {}, \"choice_msg\": {}}",
               "t.yaml:1:19: choice_msg: field 'choice_msg' is set more than once");
}

Test(pbjson, duration_and_timestamp_errors)
{
    expect_err("timeout: 5", "t.yaml:1:10: timeout: invalid duration '5'");
    expect_err("timeout: 1.0000000001s", "t.yaml:1:10: timeout: invalid duration "
                                         "'1.0000000001s'");
    expect_err("timeout: 315576000001s", "t.yaml:1:10: timeout: duration '315576000001s' is out "
                                         "of range");
    expect_err("timeout: {seconds: 1}", "t.yaml:1:10: timeout: expected a duration string, got "
                                        "an object");
    expect_err("at: '2023-02-29T00:00:00Z'", "t.yaml:1:5: at: invalid timestamp "
                                             "'2023-02-29T00:00:00Z'");
    expect_err("at: '2023-01-01 00:00:00Z'", "t.yaml:1:5: at: invalid timestamp "
                                             "'2023-01-01 00:00:00Z'");
    expect_err("at: '0000-12-31T23:59:59Z'", "t.yaml:1:5: at: timestamp "
                                             "'0000-12-31T23:59:59Z' is out of range");
}

Test(pbjson, syntax_errors_and_missing_file)
{
    struct pl_err e = PL_ERR_INIT;
    ProtobufCMessage *m;
    cr_assert_eq(pl_pbjson_load_file("/nonexistent/x.yaml", ALL, NULL, &m, NULL, &e), PL_EIO);
    cr_assert_null(m);
    char *s = pl_err_join(&e);
    cr_assert_str_eq(s, "/nonexistent/x.yaml: cannot open: No such file or directory");
    free(s);
    pl_err_free(&e);
    expect_err("a: [1, 2\nb: 3\n", "t.yaml:2:2: while parsing a flow sequence did not find "
                                   "expected ',' or ']'");
    expect_err("a: 1\n b: 2\n", "t.yaml:2:3: mapping values are not allowed in this context");
    expect_err("{\"a\": 1,, }", "t.yaml:1:9: expected a string key");
    expect_err("---\na: 1\n---\nb: 2\n", "t.yaml:3:1: expected a single YAML document, found "
                                         "several");
}

Test(pbjson, invalid_utf8_is_rejected)
{
    expect_err("f_string: \"a\xff\"\n", "t.yaml:1:13: invalid leading UTF-8 octet");
    expect_err("{\"fString\": \"a\xc3\x28\"}", "t.yaml:1:15: invalid UTF-8 in string");
    expect_err("{\"fString\": \"\\ud800x\"}", "t.yaml:1:20: unpaired UTF-16 surrogate in string");
}

Test(pbjson, depth_limit)
{
    char *buf = malloc(200 * 20 + 10);
    char *p;
    p = buf;
    p += sprintf(p, "{\"inner\":");
    for (int i = 0; i < 120; i++)
        p += sprintf(p, "{\"children\":[");
    strcpy(p, "{}");
    p += 2;
    for (int i = 0; i < 120; i++)
        p += sprintf(p, "]}");
    *p++ = '}';
    *p = 0;
    char *msgs;
    AllTypes *m = try_load(buf, NULL, &msgs);
    cr_assert_null(m);
    cr_assert(strstr(msgs, "nesting deeper than 100 levels"), "%s", msgs);
    free(msgs);
    /* the tree itself refuses absurd nesting before any recursion */
    p = buf;
    for (int i = 0; i < 1000; i++)
        *p++ = '[';
    *p = 0;
    m = try_load(buf, NULL, &msgs);
    cr_assert_null(m);
    cr_assert(strstr(msgs, "nesting deeper than 400 levels"), "%s", msgs);
    free(msgs);
    free(buf);
}

/* ---- Any ---- */

Test(pbjson, any_with_fields_wkt_and_nested_any)
{
    struct pl_srcmap *map = NULL;
    AllTypes *m = load("any:\n"
                       "  '@type': type.googleapis.com/pillion.test.Inner\n"
                       "  name: outer\n"
                       "  typed_config:\n"
                       "    portValue: 9\n"
                       "    '@type': example.com/x/pillion.test.Inner\n"
                       "anys:\n"
                       "- {'@type': type.googleapis.com/google.protobuf.Duration, value: 2s}\n"
                       "- {'@type': type.googleapis.com/google.protobuf.Struct, value: {a: b}}\n"
                       "- {'@type': type.googleapis.com/google.protobuf.Empty}\n"
                       "- {'@type': type.googleapis.com/google.protobuf.Any,\n"
                       "   value: {'@type': type.googleapis.com/pillion.test.AllTypes.Nested, "
                       "x: 4}}\n"
                       "- {'@type': type.googleapis.com/google.protobuf.UInt32Value, value: 5}\n"
                       "- {}\n",
                       &map);
    cr_assert_str_eq(m->any->type_url, "type.googleapis.com/pillion.test.Inner");
    Pillion__Test__Inner *in =
        pillion__test__inner__unpack(NULL, m->any->value.len, m->any->value.data);
    cr_assert_str_eq(in->name, "outer");
    cr_assert_str_eq(in->typed_config->type_url, "example.com/x/pillion.test.Inner");
    Pillion__Test__Inner *in2 = pillion__test__inner__unpack(NULL, in->typed_config->value.len,
                                                             in->typed_config->value.data);
    cr_assert_eq(in2->port_value, 9);
    pillion__test__inner__free_unpacked(in2, NULL);
    pillion__test__inner__free_unpacked(in, NULL);

    cr_assert_eq(m->n_anys, 6);
    Google__Protobuf__Duration *d =
        google__protobuf__duration__unpack(NULL, m->anys[0]->value.len, m->anys[0]->value.data);
    cr_assert_eq(d->seconds, 2);
    google__protobuf__duration__free_unpacked(d, NULL);
    cr_assert_eq(m->anys[2]->value.len, 0);
    cr_assert_str_eq(m->anys[5]->type_url, "");

    /* the decoded payloads stay in the source map */
    const ProtobufCMessage *inner = pl_srcmap_any_inner(map, m->any);
    cr_assert_not_null(inner);
    cr_assert_eq(inner->descriptor, &pillion__test__inner__descriptor);
    const Pillion__Test__Inner *ii = (const Pillion__Test__Inner *)inner;
    const ProtobufCMessage *inner2 = pl_srcmap_any_inner(map, ii->typed_config);
    cr_assert_eq(((const Pillion__Test__Inner *)inner2)->port_value, 9);
    struct pl_srcloc loc;
    cr_assert_eq(pl_srcmap_lookup(map, inner2, "port_value", &loc), 0);
    cr_assert_str_eq(loc.file, "t.yaml");
    cr_assert_eq(loc.line, 5);
    cr_assert_eq(loc.col, 5);
    cr_assert_str_eq(loc.path, "any.typed_config.port_value");
    const ProtobufCMessage *nested_any = pl_srcmap_any_inner(map, m->anys[3]);
    cr_assert_eq(nested_any->descriptor, &google__protobuf__any__descriptor);
    const ProtobufCMessage *nested = pl_srcmap_any_inner(map, nested_any);
    cr_assert_eq(((const Pillion__Test__AllTypes__Nested *)nested)->x, 4);
    cr_assert_eq(pl_srcmap_lookup(map, nested, "x", &loc), 0);
    cr_assert_eq(loc.line, 12);
    cr_assert_str_eq(loc.path, "anys[3].x");

    pl_srcmap_free(map);
    fr(m);
}

Test(pbjson, any_errors)
{
    expect_err("any: {'@type': type.googleapis.com/no.Such, a: 1}",
               "t.yaml:1:16: any: unknown type URL 'type.googleapis.com/no.Such'");
    expect_err("any: {name: x}", "t.yaml:1:6: any: google.protobuf.Any is missing '@type'");
    expect_err("any: {'@type': nourl}", "t.yaml:1:16: any: unknown type URL 'nourl'");
    expect_err("any: {'@type': t/pillion.test.Inner, name: 1, bad: 2}",
               "t.yaml:1:47: any.bad: unknown field 'bad' in pillion.test.Inner");
    expect_err("any: {'@type': t/google.protobuf.Duration, value: 1s, x: 1}",
               "t.yaml:1:55: any: unknown field 'x' in google.protobuf.Any holding "
               "google.protobuf.Duration");
    expect_err("any: {'@type': t/google.protobuf.Duration, value: 1}",
               "t.yaml:1:51: any: invalid duration '1'");
    expect_err("any: {'@type': [a]}", "t.yaml:1:16: any: '@type' must be a string, got a list");
    expect_err("anys: [{'@type': t/pillion.test.Inner, typed_config: {'@type': t/x.Y}}]",
               "t.yaml:1:64: anys[0].typed_config: unknown type URL 't/x.Y'");
}

Test(pbjson, any_unpack)
{
    struct pl_srcmap *map = NULL;
    AllTypes *m = load("any: {'@type': type.googleapis.com/pillion.test.Inner, name: n}\n", &map);
    ProtobufCMessage *out;
    bool owned;
    struct pl_err e = PL_ERR_INIT;
    cr_assert_eq(
        pl_any_unpack(&m->any->base, map, &pillion__test__inner__descriptor, &out, &owned, &e), 0);
    cr_assert(!owned);
    cr_assert_eq(out, pl_srcmap_any_inner(map, m->any));
    cr_assert_eq(pl_any_unpack(&m->any->base, NULL, NULL, &out, &owned, &e), 0);
    cr_assert(owned);
    cr_assert_str_eq(((Pillion__Test__Inner *)out)->name, "n");
    protobuf_c_message_free_unpacked(out, NULL);
    cr_assert_eq(pl_any_unpack(&m->any->base, map, &google__protobuf__duration__descriptor, &out,
                               &owned, &e),
                 PL_EINVAL);
    cr_assert_null(out);
    char *s = pl_err_join(&e);
    cr_assert_str_eq(s, "t.yaml:1:6: any: expected type google.protobuf.Duration, got "
                        "'type.googleapis.com/pillion.test.Inner'");
    free(s);
    pl_err_free(&e);

    /* corrupt payload, unknown type */
    Google__Protobuf__Any bad = GOOGLE__PROTOBUF__ANY__INIT;
    uint8_t junk[] = {0x0a, 0x7f};
    bad.type_url = "type.googleapis.com/pillion.test.Inner";
    bad.value.data = junk;
    bad.value.len = sizeof(junk);
    cr_assert_eq(pl_any_unpack(&bad.base, NULL, NULL, &out, &owned, &e), PL_EINVAL);
    bad.type_url = "type.googleapis.com/x.Unknown";
    cr_assert_eq(pl_any_unpack(&bad.base, NULL, NULL, &out, &owned, &e), PL_EINVAL);
    s = pl_err_join(&e);
    cr_assert_str_eq(s, "cannot decode the pillion.test.Inner payload; "
                        "unknown type URL 'type.googleapis.com/x.Unknown'");
    free(s);
    pl_err_free(&e);
    pl_srcmap_free(map);
    fr(m);
}

/* ---- source map ---- */

Test(pbjson, srcmap_paths_positions_and_err_at)
{
    struct pl_srcmap *map = NULL;
    AllTypes *m = load("inner:\n"
                       "  children:\n"
                       "  - name: a\n"
                       "  - name: b\n"
                       "    metadata: {k: v}\n"
                       "    children:\n"
                       "    - portValue: 1\n"
                       "inners:\n"
                       "  'k\"1': {name: x}\n"
                       "r_string: [p, q]\n",
                       &map);
    struct pl_srcloc loc;
    cr_assert_eq(pl_srcmap_lookup(map, m, NULL, &loc), 0);
    cr_assert_str_eq(loc.path, "");
    cr_assert_eq(loc.line, 1);
    const Pillion__Test__Inner *c1 = m->inner->children[1];
    cr_assert_eq(pl_srcmap_lookup(map, c1, NULL, &loc), 0);
    cr_assert_str_eq(loc.path, "inner.children[1]");
    cr_assert_eq(loc.line, 4);
    cr_assert_eq(loc.col, 5);
    cr_assert_eq(pl_srcmap_lookup(map, c1->children[0], "portValue", &loc), 0);
    cr_assert_str_eq(loc.path, "inner.children[1].children[0].port_value");
    cr_assert_eq(loc.line, 7);
    cr_assert_eq(loc.col, 7);
    cr_assert_eq(pl_srcmap_lookup(map, c1, "metadata", &loc), 0);
    cr_assert_eq(loc.line, 5);
    cr_assert_eq(loc.col, 5);
    cr_assert_eq(pl_srcmap_lookup(map, m->inners[0]->value, "name", &loc), 0);
    cr_assert_str_eq(loc.path, "inners[\"k\\\"1\"].name");
    cr_assert_eq(pl_srcmap_lookup_elem(map, m, "r_string", 1, &loc), 0);
    cr_assert_str_eq(loc.path, "r_string[1]");
    cr_assert_eq(loc.line, 10);
    cr_assert_eq(loc.col, 15);
    cr_assert_eq(pl_srcmap_lookup_elem(map, m, "r_string", 2, &loc), PL_ENOENT);
    cr_assert_eq(pl_srcmap_lookup(map, c1, "port_value", &loc), PL_ENOENT);
    cr_assert_eq(pl_srcmap_lookup(NULL, c1, NULL, &loc), PL_ENOENT);

    struct pl_err e = PL_ERR_INIT;
    pl_err_at(&e, map, c1->children[0], "port_value", "must be %s", "positive");
    pl_err_at(&e, map, c1, "port_value", "is required");
    pl_err_at(&e, NULL, c1, "port_value", "no map");
    pl_err_at(&e, map, c1, NULL, "whole");
    char *s = pl_err_join(&e);
    cr_assert_str_eq(s, "t.yaml:7:7: inner.children[1].children[0].port_value: must be positive; "
                        "t.yaml:4:5: inner.children[1].port_value: is required; "
                        "port_value: no map; "
                        "t.yaml:4:5: inner.children[1]: whole");
    free(s);
    pl_err_free(&e);
    pl_srcmap_free(map);
    fr(m);
}

Test(pbjson, from_node_with_base_path_and_shared_map)
{
    const char *text = "resources:\n"
                       "- '@type': type.googleapis.com/pillion.test.Inner\n"
                       "  name: a\n"
                       "- '@type': type.googleapis.com/pillion.test.AllTypes\n"
                       "  fInt32: 1\n"
                       "  bogus: 1\n";
    struct pl_tree *t;
    struct pl_err e = PL_ERR_INIT;
    cr_assert_eq(pl_tree_load_text(text, strlen(text), "r.yaml", &t, &e), 0);
    const struct pl_node *res = pl_node_get(pl_tree_root(t), "resources");
    cr_assert_eq(pl_node_len(res), 2);
    struct pl_srcmap *map = NULL;
    ProtobufCMessage *out[2] = {NULL, NULL};
    for (size_t i = 0; i < 2; i++) {
        const struct pl_node *r = pl_node_item(res, i);
        const struct pl_node *type = pl_node_get(r, "@type");
        const ProtobufCMessageDescriptor *d = pl_registry_find_type_url(pl_node_str(type, NULL));
        cr_assert_not_null(d);
        char base[32];
        snprintf(base, sizeof(base), "resources[%zu]", i);
        struct pl_pbjson_opts o = {0};
        /* the resource is an Any-like object: decode it as the message, skipping "@type" is
         * the caller's job here, so count the expected unknown-field error */
        int rc = pl_pbjson_from_node(r, d, pl_tree_name(t), base, &o, &out[i], &map, &e);
        cr_assert_eq(rc, PL_EINVAL);
    }
    char *s = pl_err_join(&e);
    cr_assert(strstr(s, "r.yaml:2:3: resources[0].@type: unknown field '@type' in "
                        "pillion.test.Inner"),
              "%s", s);
    cr_assert(strstr(s, "r.yaml:6:3: resources[1].bogus: unknown field 'bogus'"), "%s", s);
    free(s);
    pl_err_free(&e);
    cr_assert_null(map, "a failed decode leaves the map alone");

    /* decoding each resource through an Any wrapper handles @type for us */
    for (size_t i = 0; i < 2; i++) {
        const struct pl_node *r = pl_node_item(res, i);
        char base[32];
        snprintf(base, sizeof(base), "resources[%zu]", i);
        int rc = pl_pbjson_from_node(r, &google__protobuf__any__descriptor, pl_tree_name(t), base,
                                     NULL, &out[i], &map, &e);
        cr_assert_eq(rc, i == 0 ? 0 : PL_EINVAL);
    }
    s = pl_err_join(&e);
    cr_assert_str_eq(s, "r.yaml:6:3: resources[1].bogus: unknown field 'bogus' in "
                        "pillion.test.AllTypes");
    free(s);
    pl_err_free(&e);
    const ProtobufCMessage *inner = pl_srcmap_any_inner(map, out[0]);
    struct pl_srcloc loc;
    cr_assert_eq(pl_srcmap_lookup(map, inner, "name", &loc), 0);
    cr_assert_str_eq(loc.file, "r.yaml");
    cr_assert_str_eq(loc.path, "resources[0].name");
    cr_assert_eq(loc.line, 3);
    pl_tree_free(t); /* the map does not depend on the tree */
    cr_assert_eq(pl_srcmap_lookup(map, inner, "name", &loc), 0);
    cr_assert_str_eq(loc.file, "r.yaml");
    pl_srcmap_free(map);
    protobuf_c_message_free_unpacked(out[0], NULL);
}

Test(pbjson, load_file_json_and_yaml)
{
    char path[] = "/tmp/pbjson_test_XXXXXX.json";
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0);
    const char *json = "{\n\t\"fInt32\": 5,\n\t\"nested\": {\"x\": \"oops\"}\n}\n";
    cr_assert_eq(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    struct pl_err e = PL_ERR_INIT;
    ProtobufCMessage *m;
    cr_assert_eq(pl_pbjson_load_file(path, ALL, NULL, &m, NULL, &e), PL_EINVAL);
    cr_assert_eq(e.n, 1);
    cr_assert_str_eq(e.v[0].file, path);
    cr_assert_eq(e.v[0].line, 3);
    cr_assert_eq(e.v[0].col, 18, "tabs count as one column");
    cr_assert_str_eq(e.v[0].path, "nested.x");
    pl_err_free(&e);
    unlink(path);
}

/* ---- unsupported-field hook ---- */

static int reject_hook(void *ud, const ProtobufCMessageDescriptor *md,
                       const ProtobufCFieldDescriptor *fd, const struct pl_srcloc *loc,
                       struct pl_err *err)
{
    int *calls = ud;
    (*calls)++;
    if (!strcmp(fd->name, "port_value") || !strcmp(fd->name, "f_bool"))
        return pl_err_add(err, loc->file, loc->line, loc->col, loc->path,
                          "field '%s' of %s is not supported by Pillion", fd->name, md->name);
    return 0;
}

Test(pbjson, field_hook_rejects_by_name)
{
    int calls = 0;
    struct pl_pbjson_opts o = {.field_hook = reject_hook, .ud = &calls};
    const char *text = "f_int32: 1\nf_bool: null\ninner:\n  port_value: 3\n"
                       "any: {'@type': t/pillion.test.Inner, portValue: 1}\nf_bool: true\n";
    struct pl_err e = PL_ERR_INIT;
    ProtobufCMessage *m;
    cr_assert_eq(pl_pbjson_load_text(text, strlen(text), "h.yaml", ALL, &o, &m, NULL, &e),
                 PL_EINVAL);
    char *s = pl_err_join(&e);
    cr_assert_str_eq(
        s, "h.yaml:4:3: inner.port_value: field 'port_value' of pillion.test.Inner is not "
           "supported by Pillion; "
           "h.yaml:5:38: any.port_value: field 'port_value' of pillion.test.Inner is not "
           "supported by Pillion; "
           "h.yaml:6:1: f_bool: field 'f_bool' is set more than once");
    cr_assert_eq(calls, 5, "f_int32, inner, port_value, any, port_value (null f_bool skipped)");
    free(s);
    pl_err_free(&e);
}

/* ---- printing ---- */

Test(pbjson, print_compact_camel_defaults_omitted)
{
    AllTypes *m = load("f_int32: 0\nf_int64: 5\nf_uint64: 18446744073709551615\nf_bool: false\n"
                       "f_string: \"q\\\"\\u0001\"\nf_bytes: '+/8='\ncolor: GREEN\nmode: 7\n"
                       "f_float: 0.1\nf_double: 1e100\nr_color: [RED]\n"
                       "nested: {}\ntimeout: 1.5s\nat: '1970-01-01T00:00:01.000001Z'\n"
                       "w_int64: 0\nw_string: ''\nmeta: {a: [1, 'x', null, {}]}\nval: null\n"
                       "labels: {b: c}\nby_id: {-3: x}\nby_bool: {true: y}\n"
                       "choice_int: 0\nempty: {}\nlist: []\nr_nested: [{}]\n",
                       NULL);
    char *s = pl_pbjson_print(&m->base, 0);
    cr_assert_str_eq(s, "{\"fInt64\":\"5\",\"fUint64\":\"18446744073709551615\","
                        "\"fFloat\":0.1,\"fDouble\":1e+100,\"fString\":\"q\\\"\\u0001\","
                        "\"fBytes\":\"+/8=\",\"color\":\"GREEN\",\"mode\":7,\"nested\":{},"
                        "\"rNested\":[{}],\"rColor\":[\"RED\"],\"labels\":{\"b\":\"c\"},"
                        "\"byId\":{\"-3\":\"x\"},\"byBool\":{\"true\":\"y\"},\"choiceInt\":0,"
                        "\"timeout\":\"1.500s\",\"at\":\"1970-01-01T00:00:01.000001Z\","
                        "\"meta\":{\"a\":[1,\"x\",null,{}]},\"val\":null,\"list\":[],"
                        "\"wString\":\"\",\"wInt64\":\"0\",\"empty\":{}}");
    free(s);
    s = pl_pbjson_print(&m->base, PL_PBJSON_PROTO_NAMES);
    cr_assert(strstr(s, "\"f_uint64\":\"18446744073709551615\""), "%s", s);
    free(s);
    fr(m);
}

Test(pbjson, print_pretty_and_any)
{
    AllTypes *m = load("any: {'@type': type.googleapis.com/pillion.test.Inner, name: n,\n"
                       "      typed_config: {'@type': t/google.protobuf.Duration, value: 3s}}\n"
                       "r_int32: [1, 2]\n",
                       NULL);
    char *s = pl_pbjson_print(&m->base, PL_PBJSON_PRETTY);
    cr_assert_str_eq(s, "{\n"
                        "  \"rInt32\": [\n"
                        "    1,\n"
                        "    2\n"
                        "  ],\n"
                        "  \"any\": {\n"
                        "    \"@type\": \"type.googleapis.com/pillion.test.Inner\",\n"
                        "    \"name\": \"n\",\n"
                        "    \"typedConfig\": {\n"
                        "      \"@type\": \"t/google.protobuf.Duration\",\n"
                        "      \"value\": \"3s\"\n"
                        "    }\n"
                        "  }\n"
                        "}");
    free(s);
    /* an Any the registry cannot resolve keeps its bytes */
    free(m->any->type_url);
    m->any->type_url = strdup("t/un.Known");
    s = pl_pbjson_print(&m->base, 0);
    cr_assert(strstr(s, "\"any\":{\"@type\":\"t/un.Known\",\"value\":\"CgFu"), "%s", s);
    free(s);
    fr(m);
}

Test(pbjson, print_then_parse_round_trips)
{
    const char *text =
        "f_int32: -1\nf_int64: -9223372036854775808\nf_uint32: 4294967295\n"
        "f_uint64: '18446744073709551615'\nf_sint32: -5\nf_sint64: -6\nf_fixed32: 7\n"
        "f_fixed64: 8\nf_sfixed32: -9\nf_sfixed64: -10\nf_float: 3.14159\n"
        "f_double: 2.718281828459045\nf_bool: true\nf_string: \"h\\u00e9\\n\\t\\\\\"\n"
        "f_bytes: AAECAwQF\ncolor: RED\nmode: SLOW\nnested: {x: 1, label: l}\n"
        "inner: {name: i, children: [{portValue: 2, metadata: {z: [true]}}]}\n"
        "r_int32: [1, -2]\nr_string: ['', a]\nr_nested: [{x: 3}]\nr_color: [GREEN, 5]\n"
        "r_bytes: ['', AA==]\nr_double: [NaN, -0.5]\nr_int64: ['1']\nr_bool: [false]\n"
        "labels: {a: b, '': c}\ninners: {k: {name: v}}\nby_id: {7: s}\nby_u64: {'9': {x: 1}}\n"
        "by_bool: {false: f}\nvalues: {v: {deep: [1.5, null, 'q']}}\n"
        "choice_msg: {label: m}\n"
        "any: {'@type': type.googleapis.com/pillion.test.AllTypes, fInt32: 3,\n"
        "      anys: [{'@type': type.googleapis.com/google.protobuf.Timestamp,\n"
        "              value: '2000-01-01T00:00:00Z'}]}\n"
        "timeout: '-1.000000001s'\nat: '1999-12-31T23:59:59.5Z'\nmeta: {n: 1}\nval: str\n"
        "list: [1, [2]]\nw_bool: true\nw_uint32: 0\nw_string: s\nw_int64: '-1'\n"
        "w_double: 0.25\nw_bytes: AQ==\nw_float: -1.5\nw_int32: 3\nw_uint64: '4'\nempty: {}\n"
        "r_durations: [1s, 0.5s]\nlegacy: {opt_int32: 0, opt_string: x, nums: [3]}\n";
    AllTypes *a = load(text, NULL);
    char *json = pl_pbjson_print(&a->base, PL_PBJSON_PRETTY);
    AllTypes *b = load(json, NULL);
    char *json2 = pl_pbjson_print(&b->base, 0);
    char *json1 = pl_pbjson_print(&a->base, 0);
    cr_assert_str_eq(json1, json2);
    size_t la = protobuf_c_message_get_packed_size(&a->base);
    size_t lb = protobuf_c_message_get_packed_size(&b->base);
    cr_assert_eq(la, lb);
    uint8_t *pa = malloc(la), *pb = malloc(lb);
    protobuf_c_message_pack(&a->base, pa);
    protobuf_c_message_pack(&b->base, pb);
    cr_assert_eq(memcmp(pa, pb, la), 0, "%s", json);
    /* and the packed bytes decode to the same JSON again */
    AllTypes *c = pillion__test__all_types__unpack(NULL, la, pa);
    char *json3 = pl_pbjson_print(&c->base, 0);
    cr_assert_str_eq(json1, json3);
    free(pa);
    free(pb);
    free(json);
    free(json1);
    free(json2);
    free(json3);
    fr(a);
    fr(b);
    fr(c);
}

Test(pbjson, registry_lookups)
{
    cr_assert_eq(pl_registry_find_name("google.protobuf.Duration"),
                 &google__protobuf__duration__descriptor);
    cr_assert_eq(pl_registry_find_name(".google.rpc.Status"), &google__rpc__status__descriptor);
    cr_assert_eq(pl_registry_find_type_url("type.googleapis.com/google.protobuf.Struct"),
                 &google__protobuf__struct__descriptor);
    cr_assert_eq(pl_registry_find_type_url("a/b/c/pillion.test.Inner"),
                 &pillion__test__inner__descriptor);
    cr_assert_null(pl_registry_find_type_url("pillion.test.Inner"));
    cr_assert_null(pl_registry_find_type_url("type.googleapis.com/"));
    cr_assert_null(pl_registry_find_name("pillion.test.Nope"));
    cr_assert_eq(pl_registry_find_enum("google.protobuf.NullValue"),
                 &google__protobuf__null_value__descriptor);
}

Test(pbjson, yaml_aliases_decode_into_separate_messages)
{
    AllTypes *m = load("nested: &n {x: 7, label: a}\nr_nested: [*n, *n]\nchoice_msg: *n\n", NULL);
    cr_assert_eq(m->n_r_nested, 2);
    cr_assert_neq(m->r_nested[0], m->r_nested[1]);
    cr_assert_eq(m->r_nested[1]->x, 7);
    cr_assert_str_eq(m->choice_msg->label, "a");
    fr(m);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int count_hook(void *ud, const ProtobufCMessageDescriptor *md,
                      const ProtobufCFieldDescriptor *fd, const struct pl_srcloc *loc,
                      struct pl_err *err)
{
    (void)md, (void)fd, (void)loc, (void)err;
    ++*(int *)ud;
    return 0;
}

/* Mutated documents must never crash or leak (run under ASan); most of them fail to decode. */
Test(pbjson, mutated_inputs_never_crash)
{
    static const char *const seeds[] = {
        "f_int32: 1\nf_string: x\nr_nested: [{x: 1}, {label: y}]\nlabels: {a: b}\n"
        "any: {'@type': type.googleapis.com/pillion.test.Inner, name: n, typed_config: "
        "{'@type': t/google.protobuf.Struct, value: {a: [1, {b: null}]}}}\n"
        "timeout: 1.5s\nat: '2020-01-01T00:00:00Z'\nmeta: {k: [true, 1.5]}\nby_id: {1: a}\n",
        "{\"fUint64\": \"18446744073709551615\", \"fBytes\": \"AAEC\", \"choiceStr\": \"s\", "
        "\"inners\": {\"k\": {\"children\": [{\"portValue\": 3}]}}, \"anys\": [{\"@type\": "
        "\"t/google.protobuf.Any\", \"value\": {\"@type\": \"t/pillion.test.Inner\"}}], "
        "\"val\": [1, \"\\u00e9\"], \"wBool\": true, \"rColor\": [\"RED\", 2], \"legacy\": "
        "{\"optInt32\": 1}}",
    };
    static const char alphabet[] = "{}[],:'\"\\ \n\t-#&*!|>@0123456789.eEsZTx\xc3\xff\x80";
    uint64_t st = 88172645463325252ull;
    int calls = 0;
    struct pl_pbjson_opts o = {.field_hook = count_hook, .ud = &calls};
    for (int round = 0; round < 3000; round++) {
        const char *seed = seeds[round % 2];
        size_t n = strlen(seed);
        char *buf = malloc(n + 8);
        memcpy(buf, seed, n + 1);
        int edits = 1 + (int)(rnd(&st) % 4);
        for (int k = 0; k < edits; k++) {
            size_t at = rnd(&st) % n;
            switch (rnd(&st) % 3) {
            case 0:
                buf[at] = alphabet[rnd(&st) % (sizeof(alphabet) - 1)];
                break;
            case 1:
                memmove(buf + at, buf + at + 1, n - at);
                n--;
                break;
            default:
                memmove(buf + at + 1, buf + at, n - at + 1);
                buf[at] = alphabet[rnd(&st) % (sizeof(alphabet) - 1)];
                n++;
                break;
            }
        }
        struct pl_err e = PL_ERR_INIT;
        struct pl_srcmap *map = NULL;
        ProtobufCMessage *m;
        if (pl_pbjson_load_text(buf, n, "f.yaml", ALL, &o, &m, &map, &e) == 0) {
            char *s = pl_pbjson_print(m, PL_PBJSON_PRETTY);
            free(s);
            protobuf_c_message_free_unpacked(m, NULL);
        }
        pl_srcmap_free(map);
        pl_err_free(&e);
        free(buf);
    }
    cr_assert_gt(calls, 0);
}
