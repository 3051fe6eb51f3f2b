/* Fuzzes the direct RouteConfiguration decoder (pl_xds_rc_decode) against protobuf-c: bytes it
 * takes must decode the same with protobuf-c (equal encodings) and hold nothing the field walk
 * would report or count; bytes it declines are the generic path's business. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "xds/xds_internal.h"

#include "../common/xds_direct.h"

#define RC_D (&envoy__config__route__v3__route_configuration__descriptor)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_log_set_level(PL_LOG_OFF);
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    Envoy__Config__Route__V3__RouteConfiguration *fast = pl_xds_rc_decode(data, size, &a);
    if (direct_decode_mismatch(fast ? &fast->base : NULL, RC_D, data, size))
        abort(); /* refused by protobuf-c, decoded differently, or a field the walk reports */
    track_release(&t);
    return 0;
}
