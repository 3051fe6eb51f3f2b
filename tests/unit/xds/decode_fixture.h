/* Shared by the tests of the direct decoders (cds_decode, eds_decode, rds_decode): encodings
 * written in YAML, and the check of a direct decode against protobuf-c's unpack of the same
 * bytes. */
#ifndef PL_TESTS_XDS_DECODE_FIXTURE_H
#define PL_TESTS_XDS_DECODE_FIXTURE_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "xds/xds_internal.h"

#include "../../common/xds_direct.h"

/* The wire encoding of a message of type d written in YAML (caller frees). */
static inline uint8_t *fixture_encode(const ProtobufCMessageDescriptor *d, const char *text,
                                      size_t *len)
{
    ProtobufCMessage *m = NULL;
    struct pl_err err = PL_ERR_INIT;
    if (pl_pbjson_load_text(text, strlen(text), "test", d, NULL, &m, NULL, &err) < 0)
        cr_assert_fail("decode: %s", pl_err_join(&err));
    uint8_t *buf = track_pack(m, len);
    protobuf_c_message_free_unpacked(m, NULL);
    return buf;
}

/* fast: what a direct decoder made of data (NULL: it declined); it must agree with the generic
 * path (direct_decode_mismatch). Returns whether it took them. */
static inline bool fixture_same_as_generic(const ProtobufCMessage *fast,
                                           const ProtobufCMessageDescriptor *d, const uint8_t *data,
                                           size_t len)
{
    const char *why = direct_decode_mismatch(fast, d, data, len);
    cr_assert_null(why, "%s", why);
    return fast != NULL;
}

/* Odd encodings of a message whose field 1 is a string (a name), which every direct decoder
 * declines: rows {what, bytes, length} of an odd_encodings_are_declined table. */
// clang-format off
#define FIXTURE_ODD_ENCODINGS                                                                      \
    {"name twice", {0x0a, 1, 'a', 0x0a, 1, 'b'}, 6},                                               \
    {"name as a varint", {0x08, 1}, 2},                                                            \
    {"an unknown field", {0x0a, 1, 'a', 0xf8, 0x06, 1}, 6},                                        \
    {"a NUL in a string", {0x0a, 2, 'a', 0}, 4},                                                   \
    {"a truncated string", {0x0a, 5, 'a'}, 3},                                                     \
    {"a truncated tag", {0x0a, 1, 'a', 0x80}, 4},                                                  \
    {"field number 0", {0x02, 0}, 2},                                                              \
    {"a fixed64 field", {0x0a, 1, 'a', 0x19, 1, 2, 3, 4, 5, 6, 7, 8}, 12},                         \
    {"a group", {0x0b, 0x0c}, 2}
// clang-format on

#endif
