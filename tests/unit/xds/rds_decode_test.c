/* The direct RouteConfiguration decoder (pl_xds_rc_decode) against the generic path
 * (protobuf-c's unpack and the field walk): the same message when it decodes, NULL for anything
 * else, and the same NACK text from the store's check either way. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "xds/client_internal.h"

#include "decode_fixture.h"
#include "store_fixture.h"

#define RC_T Envoy__Config__Route__V3__RouteConfiguration
#define RC_D (&envoy__config__route__v3__route_configuration__descriptor)

static uint8_t *encode(const char *text, size_t *len)
{
    return fixture_encode(RC_D, text, len);
}

/* Decodes bytes both ways (fixture_same_as_generic); returns whether the direct decoder took
 * them. */
static bool compare(const uint8_t *data, size_t len)
{
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    RC_T *fast = pl_xds_rc_decode(data, len, &a);
    bool r = fixture_same_as_generic(fast ? &fast->base : NULL, RC_D, data, len);
    track_release(&t);
    return r;
}

static bool compare_yaml(const char *text)
{
    size_t len;
    uint8_t *b = encode(text, &len);
    bool r = compare(b, len);
    free(b);
    return r;
}

#define VH(name, routes) "- name: " name "\n  domains: ['*', a.example]\n  routes:\n" routes
#define PREFIX(p, c)     "  - { match: { prefix: " p " }, route: { cluster: " c " } }\n"
#define EXACT(p, c)      "  - { match: { path: " p " }, route: { cluster: " c " } }\n"

static const char *const taken[] = {
    "",
    "name: r\n",
    "name: r\nvirtual_hosts: []\n",
    "name: r\nvirtual_hosts:\n- name: v\n",
    "name: r\nvirtual_hosts:\n- name: v\n  domains: ['*']\n  routes: []\n",
    "name: r\nvirtual_hosts:\n" VH("v", PREFIX("/a/", "c0") PREFIX("/b/", "c1") EXACT("/x", "c2")),
    "name: r\nvirtual_hosts:\n" VH("v", PREFIX("/", "c")) VH("w", PREFIX("''", "c")),
    /* valid decodes that validation or the compile then refuses */
    "name: r\nvirtual_hosts:\n- domains: []\n  routes:\n" PREFIX("/", "''"),
    "name: r\nvirtual_hosts:\n" VH("v", "  - { match: {} }\n  - { route: {} }\n  - {}\n"),
    "virtual_hosts:\n" VH("v", PREFIX("/", "c")) VH("w", PREFIX("/", "c")),
    /* ASCII control characters are plain bytes to protobuf-c too */
    "name: \"a\\tb\\u007fc\"\n",
};

static const char *const declined[] = {
    /* inert fields: the walk counts them */
    "name: r\nvirtual_hosts:\n" VH("v", "  - { name: n, match: { prefix: / }, route: { cluster: c "
                                        "} }\n"),
    /* implemented fields of another shape */
    "name: r\nvirtual_hosts:\n" VH("v", "  - { match: { prefix: /, case_sensitive: false }, "
                                        "route: { cluster: c } }\n"),
    "name: r\nvirtual_hosts:\n" VH("v", "  - { match: { safe_regex: { regex: '/.*' } }, route: { "
                                        "cluster: c } }\n"),
    "name: r\nvirtual_hosts:\n" VH("v", "  - { match: { prefix: / }, route: { cluster: c, "
                                        "timeout: 1s } }\n"),
    "name: r\nvirtual_hosts:\n" VH("v", "  - { match: { prefix: / }, route: { cluster_header: x "
                                        "} }\n"),
    "name: r\nvirtual_hosts:\n" VH("v", "  - { match: { prefix: / }, direct_response: { status: "
                                        "200 } }\n"),
    "name: r\nvirtual_hosts:\n" VH("v", "  - { match: { prefix: / }, route: { cluster: c }, "
                                        "request_headers_to_remove: [x] }\n"),
    "name: r\nignore_port_in_host_matching: true\n",
    "name: r\nvirtual_hosts:\n- name: v\n  domains: ['*']\n  request_headers_to_remove: [x]\n",
    /* not implemented: the walk names them */
    "name: r\nvirtual_hosts:\n- name: v\n  domains: ['*']\n  require_tls: ALL\n",
    "name: r\nvirtual_hosts:\n" VH("v", "  - { match: { prefix: / }, route: { cluster: c, "
                                        "retry_policy: { num_retries: 2 } } }\n"),
    "name: r\nvalidate_clusters: true\n",
    /* strings with bytes beyond ASCII */
    "name: \"caf\\u00e9\"\n",
    "name: r\nvirtual_hosts:\n" VH("v", PREFIX("\"/caf\\u00e9\"", "c")),
};

Test(rds_decode, common_shapes_decode_as_protobuf_c_does)
{
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
        cr_assert(compare_yaml(taken[i]), "not taken: %s", taken[i]);
}

Test(rds_decode, anything_else_is_left_to_the_generic_path)
{
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
        cr_assert(!compare_yaml(declined[i]), "taken: %s", declined[i]);
}

/* Raw encodings a control plane could send that no YAML above spells. */
Test(rds_decode, odd_encodings_are_declined)
{
    static const struct {
        const char *what;
        uint8_t b[16];
        size_t n;
    } v[] = {
        FIXTURE_ODD_ENCODINGS,
        {"a virtual host's name twice", {0x12, 6, 0x0a, 1, 'v', 0x0a, 1, 'w'}, 8},
        {"a route's match twice", {0x12, 6, 0x1a, 4, 0x0a, 0, 0x0a, 0}, 8},
        {"a route action twice", {0x12, 6, 0x1a, 4, 0x12, 0, 0x12, 0}, 8},
        {"prefix and path", {0x12, 10, 0x1a, 8, 0x0a, 6, 0x0a, 1, '/', 0x12, 1, '/'}, 12},
        {"prefix twice", {0x12, 10, 0x1a, 8, 0x0a, 6, 0x0a, 1, '/', 0x0a, 1, '/'}, 12},
        {"cluster twice", {0x12, 10, 0x1a, 8, 0x12, 6, 0x0a, 1, 'c', 0x0a, 1, 'd'}, 12},
        {"a route as a varint", {0x12, 2, 0x18, 1}, 4},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        cr_assert(!compare(v[i].b, v[i].n), "taken: %s", v[i].what);
    /* an empty message and empty nested messages are ordinary */
    cr_assert(compare((const uint8_t *)"", 0));
    static const uint8_t nested[] = {0x12, 6, 0x1a, 4, 0x0a, 0, 0x12, 0};
    cr_assert(compare(nested, sizeof(nested)));
}

/* Every mutation of valid encodings (byte changes, cuts) decodes the same both ways or is
 * declined: a bounded, deterministic run of what tests/fuzz/rds_decode_fuzz.c does. */
static int mutation_taken(const uint8_t *data, size_t len)
{
    return compare(data, len) != 0;
}

Test(rds_decode, mutations_decode_the_same_or_are_declined)
{
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    size_t n_taken = 0;
    for (size_t k = 0; k < sizeof(taken) / sizeof(taken[0]); k++) {
        size_t len;
        uint8_t *orig = encode(taken[k], &len);
        n_taken += pb_mutations(orig, len, 400, &s, mutation_taken);
        free(orig);
    }
    cr_assert(n_taken > 0);
}

/* ---- the store's check: the same NACK whichever decoder ran ------------------------------- */

static void setup(void)
{
    fixture_setup("static_resources: {}\n");
}

/* The store's check of one route configuration: the joined errors ("" when valid). */
static char *store_check(const char *text)
{
    size_t len;
    uint8_t *b = encode(text, &len);
    char *msg = fixture_check(PL_XDS_RDS, b, len);
    free(b);
    return msg;
}

TestSuite(rds_decode_store, .init = setup, .fini = fixture_teardown);

/* Each configuration is checked as is (taken by the direct decoder) and with an inert route name
 * added (which sends it down the generic path): the errors must be the same text. */
Test(rds_decode_store, nack_text_is_the_same_on_both_paths)
{
    static const char *const v[] = {
        "name: r\nvirtual_hosts:\n" VH("v", "  - { %smatch: { prefix: / }, route: { cluster: c } "
                                            "}\n"),
        "name: r\nvirtual_hosts:\n" VH("''", "  - { %smatch: { prefix: / }, route: { cluster: c "
                                             "} }\n"),
        "name: r\nvirtual_hosts:\n- name: v\n  routes:\n  - { %smatch: { prefix: / } }\n",
        "name: r\nvirtual_hosts:\n- { name: v, domains: [''] }\n"
        "- name: w\n  domains: ['*', '*']\n  routes:\n  - { %sroute: { cluster: '' } }\n"
        "  - { match: {}, route: {} }\n",
        "virtual_hosts:\n" VH("v", "  - { %smatch: { path: /x }, route: { cluster: c } }\n"),
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char direct[1024], generic[1024];
        fixture_subst(direct, sizeof(direct), v[i], "");
        fixture_subst(generic, sizeof(generic), v[i], "name: n, ");
        cr_assert(compare_yaml(direct), "%s", direct);
        cr_assert(!compare_yaml(generic), "%s", generic);
        char *a = store_check(direct), *b = store_check(generic);
        cr_assert_str_eq(a, b);
        cr_assert_eq(*a == '\0', i == 0, "%s", a);
        free(a);
        free(b);
    }
}
