/* Fuzzes the bootstrap path: YAML/JSON text -> tree -> proto3 JSON mapping (with the
 * unsupported-field hook) -> semantic validation -> printing back as JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/pbjson.h"
#include "config/validate.h"
#include "core/log.h"
#include "pl_proto_all.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_log_set_level(PL_LOG_OFF);
    struct pl_pbjson_opts opts = {.field_hook = pl_validate_field_hook};
    struct pl_err err = PL_ERR_INIT;
    ProtobufCMessage *m = NULL;
    struct pl_srcmap *map = NULL;
    if (pl_pbjson_load_text((const char *)data, size, "fuzz",
                            &envoy__config__bootstrap__v3__bootstrap__descriptor, &opts, &m, &map,
                            &err) == 0) {
        struct pl_vctx vc = {.err = &err, .map = map};
        pl_validate_bootstrap(&vc, (const Envoy__Config__Bootstrap__V3__Bootstrap *)m);
        char *json = pl_pbjson_print(m, PL_PBJSON_PROTO_NAMES);
        free(json);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    pl_srcmap_free(map);
    char *joined = pl_err_join(&err);
    free(joined);
    pl_err_free(&err);
    return 0;
}
