/* The direct ClusterLoadAssignment decoder (pl_xds_cla_decode) against the generic path
 * (protobuf-c's unpack and the field walk): the same message when it decodes, NULL for anything
 * else, and the same NACK text from the store's check either way. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/compile_resources.h"
#include "config/pbjson.h"
#include "config/validate.h"
#include "xds/client_internal.h"

#include "decode_fixture.h"
#include "store_fixture.h"

#define CLA_T Envoy__Config__Endpoint__V3__ClusterLoadAssignment
#define CLA_D (&envoy__config__endpoint__v3__cluster_load_assignment__descriptor)

static uint8_t *encode(const char *text, size_t *len)
{
    return fixture_encode(CLA_D, text, len);
}

/* The validation store.c runs on an assignment (validate_cla): its endpoints as a STATIC
 * cluster's. */
static size_t validation_errors(const CLA_T *la)
{
    struct pl_err err = PL_ERR_INIT;
    struct pl_vctx vc = {.err = &err, .ads = true};
    Envoy__Config__Cluster__V3__Cluster cl = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    cl.name = la->cluster_name;
    cl.load_assignment = (CLA_T *)la;
    int rc = *la->cluster_name ? pl_validate_cluster(&vc, &cl) : PL_EINVAL;
    size_t n = rc < 0 ? err.n + 1 : err.n;
    pl_err_free(&err);
    return n;
}

enum { DECLINED, TAKEN, TAKEN_VALID };

/* The endpoints an EDS cluster compiles from la (or from plain). */
static struct pl_cluster_cfg compiled(const CLA_T *la, const struct pl_cla_plain *plain)
{
    Envoy__Config__Cluster__V3__Cluster cl = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
    cl.name = "c";
    struct pl_cluster_cfg out = {0};
    struct pl_err err = PL_ERR_INIT;
    struct timespec now = {0};
    int rc = plain ? pl_compile_cluster_plain(&cl, plain, 1, &now, &out, &err)
                   : pl_compile_cluster_borrowed(&cl, la, 1, &now, &out, &err);
    cr_assert_eq(rc, 0);
    pl_err_free(&err);
    out.proto = NULL; /* cl is on the stack */
    return out;
}

/* An assignment the plain decoder takes is one the direct decoder takes as plainly valid, and
 * its endpoints compile to the same endpoints (kept in their smaller form). */
static void compare_plain(const uint8_t *data, size_t len, const CLA_T *fast, bool valid)
{
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    const struct pl_cla_plain *plain = pl_xds_cla_decode_plain(data, len, &a);
    if (plain) {
        cr_assert(fast && valid, "plain, but not plainly valid to the direct decoder");
        cr_assert_str_eq(plain->cluster_name, fast->cluster_name);
        struct pl_cluster_cfg c1 = compiled(fast, NULL), c2 = compiled(NULL, plain);
        cr_assert_eq(c2.n_endpoints, 0);
        cr_assert_eq(c1.n_endpoints, c2.n_hosts);
        for (size_t i = 0; i < c1.n_endpoints; i++) { /* the same endpoint, kept smaller */
            const struct pl_endpoint_cfg *e = &c1.endpoints[i];
            const struct pl_cla_host *h = &c2.hosts[i];
            cr_assert(e->addrlen == sizeof(struct sockaddr_in) &&
                          e->addr.in.sin_family == AF_INET &&
                          e->addr.in.sin_addr.s_addr == h->addr &&
                          e->addr.in.sin_port == htons(h->port) && e->port == h->port &&
                          e->weight == h->weight && e->health_status == h->health &&
                          e->locality_weight == h->locality_weight && !e->hostname && !e->locality,
                      "endpoint %zu compiles differently", i);
        }
        pl_cluster_cfg_release(&c1);
        pl_cluster_cfg_release(&c2);
    }
    track_release(&t);
}

/* Decodes bytes both ways (fixture_same_as_generic); when the direct decoder finds them valid
 * too, the validator must agree. */
static int compare(const uint8_t *data, size_t len)
{
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    bool valid = true;
    CLA_T *fast = pl_xds_cla_decode(data, len, &a, &valid);
    cr_assert(fast || !valid);
    fixture_same_as_generic(fast ? &fast->base : NULL, CLA_D, data, len);
    if (fast && valid) /* the same message as protobuf-c's (checked just above) */
        cr_assert_eq(validation_errors(fast), 0, "found valid, is not");
    compare_plain(data, len, fast, valid);
    track_release(&t);
    return !fast ? DECLINED : valid ? TAKEN_VALID : TAKEN;
}

/* Whether the plain decoder takes the assignment text spells. */
static bool plain_takes(const char *text)
{
    size_t len;
    uint8_t *b = encode(text, &len);
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    bool r = pl_xds_cla_decode_plain(b, len, &a) != NULL;
    track_release(&t);
    free(b);
    return r;
}

static int compare_yaml(const char *text)
{
    size_t len;
    uint8_t *b = encode(text, &len);
    int r = compare(b, len);
    free(b);
    return r;
}

#define EP(addr, port)                                                                             \
    "  - endpoint: { address: { socket_address: { address: " addr ", port_value: " port " } } }\n"

static const char *const taken[] = {
    "cluster_name: c0\n",
    "cluster_name: c0\nendpoints: []\n",
    "cluster_name: c0\nendpoints:\n- lb_endpoints: []\n",
    "cluster_name: c0\nendpoints:\n- lb_endpoints:\n" EP("10.0.0.1", "8080") EP("10.0.0.2", "8080"),
    "cluster_name: c1\n"
    "endpoints:\n"
    "- load_balancing_weight: 3\n"
    "  priority: 0\n"
    "  lb_endpoints:\n"
    "  - endpoint: { address: { socket_address: { protocol: TCP, address: '::1', port_value: 1, "
    "ipv4_compat: true } } }\n"
    "    health_status: HEALTHY\n"
    "    load_balancing_weight: 7\n"
    "  - endpoint: { address: { socket_address: { address: 10.1.2.3, port_value: 65535 } } }\n"
    "    health_status: DRAINING\n"
    "- lb_endpoints:\n" EP("192.168.0.1", "443"),
    /* valid decodes that validation then refuses: the store names the field either way */
    "cluster_name: c2\nendpoints:\n- priority: 1\n  lb_endpoints:\n" EP("10.0.0.1", "80"),
    "cluster_name: c3\nendpoints:\n- lb_endpoints:\n" EP("host.example", "80"),
    "cluster_name: c4\nendpoints:\n- lb_endpoints:\n" EP("10.0.0.1", "0"),
    "cluster_name: c5\nendpoints:\n- lb_endpoints:\n  - load_balancing_weight: 0\n",
    "cluster_name: c6\nendpoints:\n- lb_endpoints:\n  - endpoint: {}\n",
    "endpoints:\n- lb_endpoints:\n" EP("10.0.0.1", "80"),
    /* ASCII control characters are plain bytes to protobuf-c too */
    "cluster_name: \"a\\tb\\u007fc\"\n",
    "cluster_name: long-name-of-a-cluster-0123456789\nendpoints:\n- lb_endpoints:\n" EP(
        "'2001:db8::1'", "80"),
};

static const char *const declined[] = {
    /* inert fields: the walk counts them */
    "cluster_name: d0\nendpoints:\n- locality: { zone: z }\n  lb_endpoints:\n" EP("10.0.0.1", "80"),
    "cluster_name: d1\nendpoints:\n- lb_endpoints:\n"
    "  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }\n"
    "    metadata: { filter_metadata: { a: { b: c } } }\n",
    "cluster_name: d2\nendpoints:\n- lb_endpoints:\n"
    "  - endpoint: { hostname: h, address: { socket_address: { address: 10.0.0.1, port_value: 80 "
    "} } }\n",
    /* not implemented: the walk names them */
    "cluster_name: d3\npolicy: { overprovisioning_factor: 140 }\n",
    "cluster_name: d4\nendpoints:\n- lb_endpoints:\n  - endpoint_name: e\n",
    "cluster_name: d5\nendpoints:\n- proximity: 2\n  lb_endpoints:\n" EP("10.0.0.1", "80"),
    "cluster_name: d6\nendpoints:\n- lb_endpoints:\n"
    "  - endpoint: { address: { socket_address: { address: 10.0.0.1, named_port: http } } }\n",
    "cluster_name: d7\nendpoints:\n- lb_endpoints:\n"
    "  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80, "
    "resolver_name: r } } }\n",
    "cluster_name: d8\nendpoints:\n- lb_endpoints:\n"
    "  - endpoint: { address: { pipe: { path: /tmp/s } } }\n",
    "cluster_name: d9\nendpoints:\n- lb_endpoints:\n"
    "  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } }, "
    "health_check_config: { port_value: 9 } }\n",
    /* strings with bytes beyond ASCII */
    "cluster_name: \"caf\\u00e9\"\n",
    "cluster_name: c\nendpoints:\n- lb_endpoints:\n" EP("\"10.0.0.1\\u00e9\"", "80"),
};

Test(eds_decode, common_shapes_decode_as_protobuf_c_does)
{
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        int r = compare_yaml(taken[i]);
        cr_assert_neq(r, DECLINED, "not taken: %s", taken[i]);
        /* found valid exactly when the validator has nothing to say, but for IPv6 endpoints,
         * which are left to it */
        size_t len;
        uint8_t *b = encode(taken[i], &len);
        ProtobufCMessage *m = protobuf_c_message_unpack(CLA_D, NULL, len, b);
        bool ipv6 = strstr(taken[i], "::") != NULL;
        cr_assert_eq(r == TAKEN_VALID, validation_errors((const CLA_T *)m) == 0 && !ipv6, "%s",
                     taken[i]);
        protobuf_c_message_free_unpacked(m, NULL);
        free(b);
    }
}

/* The plain decoder takes exactly the plainly valid IPv4 assignments (compare() checks that what
 * it takes compiles the same). */
Test(eds_decode, plain_assignments_are_decoded_for_compiling)
{
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        size_t len;
        uint8_t *b = encode(taken[i], &len);
        struct track t = {0};
        ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
        bool valid = false;
        CLA_T *fast = pl_xds_cla_decode(b, len, &a, &valid);
        bool v6 = strstr(taken[i], "::") != NULL;
        cr_assert_eq(plain_takes(taken[i]), fast && valid && !v6, "%s", taken[i]);
        track_release(&t);
        free(b);
    }
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
        cr_assert(!plain_takes(declined[i]), "%s", declined[i]);
    /* the weights and the health status go with each endpoint, the locality weight with each of
     * its endpoints */
    const char *text = "cluster_name: w\nendpoints:\n"
                       "- load_balancing_weight: 5\n  lb_endpoints:\n"
                       "  - endpoint: { address: { socket_address: { address: 10.0.0.1, "
                       "port_value: 81 } } }\n    load_balancing_weight: 3\n"
                       "    health_status: UNHEALTHY\n" EP("10.0.0.2", "82") "- lb_endpoints:\n" EP(
                           "10.0.0.3", "83");
    size_t len;
    uint8_t *b = encode(text, &len);
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    const struct pl_cla_plain *p = pl_xds_cla_decode_plain(b, len, &a);
    cr_assert(p);
    cr_assert_eq(p->n, 3);
    cr_assert_eq(p->hosts[0].weight, 3);
    cr_assert_eq(p->hosts[0].health, 2);
    cr_assert_eq(p->hosts[0].locality_weight, 5);
    cr_assert_eq(p->hosts[1].weight, 1);
    cr_assert_eq(p->hosts[1].locality_weight, 5);
    cr_assert_eq(p->hosts[2].port, 83);
    cr_assert_eq(p->hosts[2].locality_weight, 0);
    cr_assert_eq(p->hosts[2].addr, htonl(0x0a000003));
    compare(b, len);
    track_release(&t);
    free(b);
}

Test(eds_decode, anything_else_is_left_to_the_generic_path)
{
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
        cr_assert_eq(compare_yaml(declined[i]), DECLINED, "taken: %s", declined[i]);
}

/* Raw encodings a control plane could send that no YAML above spells. */
Test(eds_decode, odd_encodings_are_declined)
{
    static const struct {
        const char *what;
        uint8_t b[16];
        size_t n;
    } v[] = {
        {"cluster_name twice", {0x0a, 1, 'a', 0x0a, 1, 'b'}, 6},
        {"cluster_name as a varint", {0x08, 1}, 2},
        {"an unknown field", {0x0a, 1, 'a', 0xf8, 0x06, 1}, 6},
        {"a NUL in a string", {0x0a, 2, 'a', 0}, 4},
        {"a truncated string", {0x0a, 5, 'a'}, 3},
        {"a truncated tag", {0x0a, 1, 'a', 0x80}, 4},
        {"field number 0", {0x02, 0}, 2},
        {"a fixed64 field", {0x0a, 1, 'a', 0x19, 1, 2, 3, 4, 5, 6, 7, 8}, 12},
        {"a group", {0x0b, 0x0c}, 2},
        {"priority twice", {0x12, 4, 0x28, 0, 0x28, 0}, 6},
        {"a port beyond 32 bits",
         {0x12, 14, 0x12, 12, 0x0a, 10, 0x0a, 8, 0x0a, 6, 0x18, 0x80, 0x80, 0x80, 0x80, 0x10},
         16},
        {"a 10-byte negative health status",
         {0x12, 13, 0x12, 11, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
         15},
        {"an ipv4_compat of 2", {0x12, 10, 0x12, 8, 0x0a, 6, 0x0a, 4, 0x0a, 2, 0x30, 2}, 12},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        cr_assert_eq(compare(v[i].b, v[i].n), DECLINED, "taken: %s", v[i].what);
    /* an empty message and an empty nested path are ordinary */
    cr_assert_eq(compare((const uint8_t *)"", 0), TAKEN);
    static const uint8_t nested[] = {0x12, 8, 0x12, 6, 0x0a, 4, 0x0a, 2, 0x0a, 0};
    cr_assert_eq(compare(nested, sizeof(nested)), TAKEN);
}

/* Every mutation of valid encodings (byte changes, cuts) decodes the same both ways or is
 * declined: a bounded, deterministic run of what tests/fuzz/cla_decode_fuzz.c does. */
static int mutation_taken(const uint8_t *data, size_t len)
{
    return compare(data, len) != 0;
}

Test(eds_decode, mutations_decode_the_same_or_are_declined)
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

/* The store's check of one assignment: the joined errors ("" when valid). */
static char *store_check(const char *text)
{
    size_t len;
    uint8_t *b = encode(text, &len);
    char *msg = fixture_check(PL_XDS_EDS, b, len);
    free(b);
    return msg;
}

TestSuite(eds_decode_store, .init = setup, .fini = fixture_teardown);

/* Each assignment is checked as is (taken by the direct decoder) and with an inert locality
 * added (which sends it down the generic path): the errors must be the same text. */
Test(eds_decode_store, nack_text_is_the_same_on_both_paths)
{
    static const char *const v[] = {
        "cluster_name: c\nendpoints:\n- %slb_endpoints:\n" EP("10.0.0.1", "80"),
        "cluster_name: c\nendpoints:\n- %spriority: 2\n  lb_endpoints:\n" EP("10.0.0.1", "80"),
        "cluster_name: c\nendpoints:\n- %slb_endpoints:\n" EP("host.example", "80"),
        "cluster_name: c\nendpoints:\n- %slb_endpoints:\n" EP("10.0.0.1", "0"),
        "cluster_name: c\nendpoints:\n- %sload_balancing_weight: 0\n  lb_endpoints:\n"
        "  - load_balancing_weight: 0\n  - endpoint: {}\n  - endpoint: { address: {} }\n",
        "endpoints:\n- %slb_endpoints:\n" EP("10.0.0.1", "80"),
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char direct[1024], generic[1024];
        fixture_subst(direct, sizeof(direct), v[i], "");
        fixture_subst(generic, sizeof(generic), v[i], "locality: { zone: z }\n  ");
        cr_assert_eq(compare_yaml(direct), i == 0 ? TAKEN_VALID : TAKEN);
        cr_assert_eq(compare_yaml(generic), DECLINED);
        char *a = store_check(direct), *b = store_check(generic);
        cr_assert_str_eq(a, b);
        cr_assert_eq(*a == '\0', i == 0, "%s", a);
        free(a);
        free(b);
    }
}
