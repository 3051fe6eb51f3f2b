/* For the unit tests and fuzz targets of the direct xDS decoders (pl_xds_cla_decode,
 * pl_xds_rc_decode, pl_xds_cluster_decode): what a direct decode must agree on with the generic
 * path. Header only: the unit tests and the fuzz targets build apart. */
#ifndef PL_TESTS_XDS_DIRECT_H
#define PL_TESTS_XDS_DIRECT_H

#include "xds/xds_internal.h"

#include "pb_track.h"

/* fast: what a direct decoder made of data (NULL: it declined). When it took them, protobuf-c
 * must take them too, both messages must encode to the same bytes, and the field walk must have
 * nothing to report or count. Returns what is wrong, or NULL. */
static inline const char *direct_decode_mismatch(const ProtobufCMessage *fast,
                                                 const ProtobufCMessageDescriptor *d,
                                                 const uint8_t *data, size_t len)
{
    ProtobufCMessage *gen = protobuf_c_message_unpack(d, NULL, len, data);
    const char *why = NULL;
    if (fast && !gen) {
        why = "the direct decoder took bytes protobuf-c refuses";
    } else if (fast && !track_same(fast, gen)) {
        why = "the two decodes differ";
    } else if (fast) {
        struct pl_err err = PL_ERR_INIT;
        size_t inert = 0;
        if (pl_xds_check_fields(gen, NULL, &inert, &err) || err.n || inert)
            why = "the field walk reports or counts a field";
        pl_err_free(&err);
    }
    if (gen)
        protobuf_c_message_free_unpacked(gen, NULL);
    return why;
}

#endif
