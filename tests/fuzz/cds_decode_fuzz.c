/* Fuzzes the direct Cluster decoder (pl_xds_cluster_decode) against protobuf-c: bytes it
 * takes must decode the same with protobuf-c (equal encodings) and hold nothing the field walk
 * would report or count; bytes it declines are the generic path's business. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "xds/xds.h"
#include "xds/xds_internal.h"

#include "../common/pb_track.h"

#define CL_D (&envoy__config__cluster__v3__cluster__descriptor)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_log_set_level(PL_LOG_OFF);
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    Envoy__Config__Cluster__V3__Cluster *fast = pl_xds_cluster_decode(data, size, &a);
    ProtobufCMessage *gen = protobuf_c_message_unpack(CL_D, NULL, size, data);
    if (fast) {
        if (!gen)
            abort(); /* taken here, refused by protobuf-c */
        if (!track_same(&fast->base, gen))
            abort(); /* decoded differently */
        struct pl_err err = PL_ERR_INIT;
        size_t inert = 0;
        if (pl_xds_check_fields(gen, NULL, &inert, &err) || err.n || inert)
            abort(); /* a field the walk would report or count */
        pl_err_free(&err);
    }
    if (gen)
        protobuf_c_message_free_unpacked(gen, NULL);
    track_release(&t);
    return 0;
}
