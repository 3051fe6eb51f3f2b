/* Fuzzes what xDS delivers: binary Envoy resources (first byte picks the type) decoded by
 * protobuf-c, validated without a source map (errors name field paths only, as NACKs do), and
 * printed as JSON (as /config_dump does). */
#include <stdint.h>
#include <stdlib.h>

#include "config/pbjson.h"
#include "config/validate.h"
#include "core/log.h"
#include "pl_proto_all.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pl_log_set_level(PL_LOG_OFF);
    static const ProtobufCMessageDescriptor *const types[] = {
        &envoy__config__listener__v3__listener__descriptor,
        &envoy__config__cluster__v3__cluster__descriptor,
        &envoy__config__route__v3__route_configuration__descriptor,
        &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
    };
    const ProtobufCMessageDescriptor *d = types[data[0] % 4];
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
    if (!m)
        return 0;
    struct pl_err err = PL_ERR_INIT;
    struct pl_vctx vc = {.err = &err};
    switch (data[0] % 4) {
    case 0:
        pl_validate_listener(&vc, (const Envoy__Config__Listener__V3__Listener *)m);
        break;
    case 1:
        pl_validate_cluster(&vc, (const Envoy__Config__Cluster__V3__Cluster *)m);
        break;
    case 2:
        pl_validate_route_config(&vc, (const Envoy__Config__Route__V3__RouteConfiguration *)m);
        break;
    default:
        break;
    }
    char *json = pl_pbjson_print(m, PL_PBJSON_PROTO_NAMES);
    free(json);
    char *joined = pl_err_join(&err);
    free(joined);
    pl_err_free(&err);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
