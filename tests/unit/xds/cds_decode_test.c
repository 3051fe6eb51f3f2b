/* The direct Cluster decoder (pl_xds_cluster_decode) against the generic path (protobuf-c's
 * unpack and the field walk): the same message when it decodes, NULL for anything else, and the
 * same NACK text from the store's check either way. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "xds/client_internal.h"

#include "decode_fixture.h"
#include "store_fixture.h"

#define CL_T Envoy__Config__Cluster__V3__Cluster
#define CL_D (&envoy__config__cluster__v3__cluster__descriptor)

static uint8_t *encode(const char *text, size_t *len)
{
    return fixture_encode(CL_D, text, len);
}

/* Decodes bytes both ways (fixture_same_as_generic); returns whether the direct decoder took
 * them. */
static bool compare(const uint8_t *data, size_t len)
{
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    CL_T *fast = pl_xds_cluster_decode(data, len, &a);
    bool r = fixture_same_as_generic(fast ? &fast->base : NULL, CL_D, data, len);
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

/* The cluster tools/benchlib/xds_scale.py sends 10,000 of. */
#define BENCH                                                                                      \
    "name: c1\ntype: EDS\nconnect_timeout: 1s\n"                                                   \
    "eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V3 } }\n"
#define LA                                                                                         \
    "load_assignment:\n  cluster_name: s\n  endpoints:\n  - lb_endpoints:\n"                       \
    "    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 80 } } }\n"

static const char *const taken[] = {
    "",
    "name: c\n",
    BENCH,
    "name: c\ntype: EDS\nconnect_timeout: 0.25s\nlb_policy: LEAST_REQUEST\n"
    "per_connection_buffer_limit_bytes: 32768\n"
    "eds_cluster_config:\n  service_name: svc\n"
    "  eds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 3.5s }\n",
    "name: c\ntype: STATIC\n" LA,
    "name: c\ntype: STRICT_DNS\nlb_policy: RANDOM\ndns_lookup_family: V4_ONLY\n"
    "dns_refresh_rate: 10s\nrespect_dns_ttl: true\n" LA,
    "name: c\ntype: LOGICAL_DNS\ndns_lookup_family: ALL\n" LA,
    "name: c\nlb_policy: MAGLEV\nconnect_timeout: 5s\n",
    "name: c\neds_cluster_config: {}\n",
    "name: c\neds_cluster_config: { eds_config: {} }\n",
    /* valid decodes that validation or the compile then refuses */
    "name: c\ntype: EDS\n",
    "type: EDS\neds_cluster_config: { eds_config: { ads: {} } }\n",
    "name: c\ntype: EDS\nconnect_timeout: -1s\n" /* a negative timeout */
    "eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V2 } }\n",
    "name: c\ntype: STATIC\nlb_policy: CLUSTER_PROVIDED\n",
    "name: c\nconnect_timeout: 315576000000s\n",
    /* ASCII control characters are plain bytes to protobuf-c too */
    "name: \"a\\tb\\u007fc\"\n",
};

static const char *const declined[] = {
    /* inert fields: the walk counts them */
    BENCH "alt_stat_name: a\n",
    BENCH "metadata: { filter_metadata: { a: { b: c } } }\n",
    /* implemented fields of another shape */
    BENCH "transport_socket: { name: envoy.transport_sockets.tls }\n",
    "name: c\ntype: EDS\neds_cluster_config:\n  eds_config:\n    api_config_source:\n"
    "      api_type: GRPC\n"
    "      grpc_services: [{ envoy_grpc: { cluster_name: xds } }]\n",
    "name: c\nlb_policy: RING_HASH\nring_hash_lb_config: { minimum_ring_size: 16 }\n",
    "name: c\nlb_policy: LEAST_REQUEST\nleast_request_lb_config: { choice_count: 3 }\n",
    /* an assignment pl_xds_cla_decode declines */
    "name: c\nload_assignment:\n  cluster_name: c\n  endpoints:\n  - locality: { zone: z }\n",
    /* not implemented: the walk names them */
    BENCH "circuit_breakers: { thresholds: [{ max_connections: 5 }] }\n",
    BENCH "max_requests_per_connection: 1\n",
    BENCH "common_lb_config: { healthy_panic_threshold: { value: 10 } }\n",
    "name: c\ntype: ORIGINAL_DST\nlb_policy: CLUSTER_PROVIDED\n",
    "name: c\ncluster_type: { name: envoy.clusters.aggregate }\n",
    "name: c\ntype: EDS\neds_cluster_config: { eds_config: { path: /etc/eds.yaml } }\n",
    "name: c\ntype: EDS\neds_cluster_config: { eds_config: { self: {} } }\n",
    /* strings with bytes beyond ASCII */
    "name: \"caf\\u00e9\"\n",
    "name: c\neds_cluster_config: { service_name: \"caf\\u00e9\" }\n",
};

Test(cds_decode, common_shapes_decode_as_protobuf_c_does)
{
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
        cr_assert(compare_yaml(taken[i]), "not taken: %s", taken[i]);
}

Test(cds_decode, anything_else_is_left_to_the_generic_path)
{
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
        cr_assert(!compare_yaml(declined[i]), "taken: %s", declined[i]);
}

/* Raw encodings a control plane could send that no YAML above spells. */
Test(cds_decode, odd_encodings_are_declined)
{
    static const struct {
        const char *what;
        uint8_t b[16];
        size_t n;
    } v[] = {
        FIXTURE_ODD_ENCODINGS,
        {"type twice", {0x10, 3, 0x10, 3}, 4},
        {"type and cluster_type", {0x10, 3, 0xb2, 0x02, 0}, 5},
        {"type of no DiscoveryType", {0x10, 9}, 2},
        {"ORIGINAL_DST", {0x10, 4}, 2},
        {"type as a string", {0x12, 1, 3}, 3},
        {"lb_policy 4 (reserved)", {0x30, 4}, 2},
        {"lb_policy twice", {0x30, 1, 0x30, 1}, 4},
        {"lb_policy negative", {0x30, 0xff, 0xff, 0xff, 0xff, 0x0f}, 6},
        {"dns_lookup_family 5", {0x88, 0x01, 5}, 3},
        {"respect_dns_ttl 2", {0xb8, 0x02, 2}, 3},
        {"connect_timeout twice", {0x22, 2, 0x08, 1, 0x22, 2, 0x08, 1}, 8},
        {"a timeout's seconds twice", {0x22, 4, 0x08, 1, 0x08, 1}, 6},
        {"a timeout's negative nanos",
         {0x22, 11, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
         13},
        {"a timeout's nanos past int32", {0x22, 6, 0x10, 0x80, 0x80, 0x80, 0x80, 0x08}, 8},
        {"a timeout's seconds past 64 bits",
         {0x22, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03},
         13},
        {"a timeout's unknown field", {0x22, 2, 0x18, 1}, 4},
        {"a buffer limit's value twice", {0x2a, 4, 0x08, 1, 0x08, 1}, 6},
        {"eds_cluster_config twice", {0x1a, 0, 0x1a, 0}, 4},
        {"eds_config twice", {0x1a, 4, 0x0a, 0, 0x0a, 0}, 6},
        {"service_name twice", {0x1a, 6, 0x12, 1, 's', 0x12, 1, 't'}, 8},
        {"ads twice", {0x1a, 6, 0x0a, 4, 0x1a, 0, 0x1a, 0}, 8},
        {"ads with a field", {0x1a, 6, 0x0a, 4, 0x1a, 2, 0x08, 1}, 8},
        {"ads as a varint", {0x1a, 4, 0x0a, 2, 0x18, 0}, 6},
        {"resource_api_version 3", {0x1a, 4, 0x0a, 2, 0x30, 3}, 6},
        {"ConfigSource authorities", {0x1a, 4, 0x0a, 2, 0x3a, 0}, 6},
        {"load_assignment twice", {0x8a, 0x02, 0, 0x8a, 0x02, 0}, 6},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        cr_assert(!compare(v[i].b, v[i].n), "taken: %s", v[i].what);
    /* an empty message and empty nested messages are ordinary; so are explicit defaults and
     * long encodings of small values, which protobuf-c reads the same */
    static const struct {
        uint8_t b[16];
        size_t n;
    } ok[] = {
        {{0}, 0},
        {{0x1a, 4, 0x0a, 2, 0x1a, 0}, 6},
        {{0x10, 0, 0x30, 0, 0x22, 0, 0x2a, 0}, 8},
        {{0x10, 0x83, 0x00, 0x22, 4, 0x08, 0x81, 0x80, 0x00}, 9},
        {{0x8a, 0x02, 0}, 3},
        {{0x22, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 13},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        cr_assert(compare(ok[i].b, ok[i].n), "not taken: %zu", i);
}

/* Every mutation of valid encodings (byte changes, cuts) decodes the same both ways or is
 * declined: a bounded, deterministic run of what tests/fuzz/cds_decode_fuzz.c does. */
static int mutation_taken(const uint8_t *data, size_t len)
{
    return compare(data, len) != 0;
}

Test(cds_decode, mutations_decode_the_same_or_are_declined)
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

/* The store's check of one encoded cluster: the joined errors ("" when valid). */
static char *store_check_bytes(const uint8_t *data, size_t len)
{
    uint8_t *b = malloc(len + 1);
    memcpy(b, data, len);
    char *msg = fixture_check(PL_XDS_CDS, b, len);
    free(b);
    return msg;
}

static char *store_check(const char *text)
{
    size_t len;
    uint8_t *b = encode(text, &len);
    char *msg = fixture_check(PL_XDS_CDS, b, len);
    free(b);
    return msg;
}

TestSuite(cds_decode_store, .init = setup, .fini = fixture_teardown);

/* Each cluster is checked as is (taken by the direct decoder) and with an inert alt_stat_name
 * added (which sends it down the generic path): the errors must be the same text. */
Test(cds_decode_store, nack_text_is_the_same_on_both_paths)
{
    static const struct {
        const char *text;
        bool valid;
    } v[] = {
        {BENCH "%s", true},
        {"name: c\ntype: STATIC\n%s" LA, true},
        {"name: c\ntype: EDS\n%seds_cluster_config: { eds_config: { ads: {} } }\n", true},
        {"name: c\ntype: STRICT_DNS\n%s", true},
        {"name: c\ntype: EDS\n%s", false},
        {"name: c\ntype: EDS\nconnect_timeout: -1s\n%s"
         "eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V3 } }\n",
         false},
        {"name: c\ntype: STATIC\nlb_policy: CLUSTER_PROVIDED\n%s" LA, false},
        {"type: EDS\n%seds_cluster_config: { eds_config: { ads: {} } }\n", false},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char direct[1024], generic[1024];
        fixture_subst(direct, sizeof(direct), v[i].text, "");
        fixture_subst(generic, sizeof(generic), v[i].text, "alt_stat_name: a\n");
        cr_assert(compare_yaml(direct), "%s", direct);
        cr_assert(!compare_yaml(generic), "%s", generic);
        char *a = store_check(direct), *b = store_check(generic);
        cr_assert_str_eq(a, b);
        cr_assert_eq(*a == '\0', v[i].valid, "%s: %s", direct, a);
        free(a);
        free(b);
    }
}

/* A field set twice is the generic path's: protobuf-c merges or keeps the last, and the NACK
 * names what that gives, as before the direct decoder. */
Test(cds_decode_store, a_field_set_twice_is_checked_as_protobuf_c_reads_it)
{
    /* "c", EDS over ADS, then connect_timeout 1s and again -1s (the last counts) */
    static const uint8_t twice[] = {0x0a, 1,    'c',  0x10, 3,    0x1a, 4,    0x0a, 2,    0x1a,
                                    0,    0x22, 2,    0x08, 1,    0x22, 11,   0x08, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    cr_assert(!compare(twice, sizeof(twice)));
    char *a = store_check_bytes(twice, sizeof(twice));
    char *b = store_check("name: c\ntype: EDS\nconnect_timeout: -1s\nalt_stat_name: a\n"
                          "eds_cluster_config: { eds_config: { ads: {} } }\n");
    cr_assert_neq(*a, '\0');
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    /* the same cluster with the field once is taken and accepted */
    static const uint8_t once[] = {0x0a, 1,    'c', 0x10, 3, 0x1a, 4, 0x0a,
                                   2,    0x1a, 0,   0x22, 2, 0x08, 1};
    cr_assert(compare(once, sizeof(once)));
    char *c = store_check_bytes(once, sizeof(once));
    cr_assert_str_eq(c, "");
    free(c);
}
