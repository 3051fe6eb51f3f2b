/* Fuzzes the direct ClusterLoadAssignment decoder (pl_xds_cla_decode) against protobuf-c: bytes
 * it takes must decode the same with protobuf-c (equal encodings) and hold nothing the field walk
 * would report, and when it finds them valid the validator must agree; bytes it declines are the
 * generic path's business. The plain decoder (pl_xds_cla_decode_plain) may take only what the
 * direct one finds plainly valid, and its endpoints must compile to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/compile_resources.h"
#include "config/address.h"
#include "config/validate.h"
#include "core/log.h"
#include "xds/xds_internal.h"

#include "../common/xds_direct.h"

#define CLA_D (&envoy__config__endpoint__v3__cluster_load_assignment__descriptor)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_log_set_level(PL_LOG_OFF);
    struct track t = {0};
    ProtobufCAllocator a = {.alloc = track_alloc, .free = track_free, .allocator_data = &t};
    bool valid;
    Envoy__Config__Endpoint__V3__ClusterLoadAssignment *fast =
        pl_xds_cla_decode(data, size, &a, &valid);
    if (direct_decode_mismatch(fast ? &fast->base : NULL, CLA_D, data, size))
        abort(); /* refused by protobuf-c, decoded differently, or a field the walk reports */
    if (fast) {
        struct pl_err err = PL_ERR_INIT;
        if (valid) { /* store.c's validate_cla: the endpoints as a STATIC cluster's */
            struct pl_vctx vc = {.err = &err, .ads = true};
            Envoy__Config__Cluster__V3__Cluster cl = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
            cl.name = fast->cluster_name;
            cl.load_assignment = fast;
            if (!*fast->cluster_name || pl_validate_cluster(&vc, &cl) || err.n)
                abort(); /* found valid, is not */
        }
        pl_err_free(&err);
    }
    /* the plain decoder: only plainly valid assignments, with the endpoints they hold (the
     * unit test eds_decode_test checks that these compile as the message does) */
    const struct pl_cla_plain *plain = pl_xds_cla_decode_plain(data, size, &a);
    if (plain) {
        if (!fast || !valid || strcmp(plain->cluster_name, fast->cluster_name))
            abort(); /* plain, but not plainly valid */
        size_t k = 0;
        for (size_t i = 0; i < fast->n_endpoints; i++) {
            const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *l = fast->endpoints[i];
            for (size_t j = 0; j < l->n_lb_endpoints; j++, k++) {
                const Envoy__Config__Endpoint__V3__LbEndpoint *le = l->lb_endpoints[j];
                const Envoy__Config__Core__V3__SocketAddress *sa =
                    le->endpoint->address->socket_address;
                const struct pl_cla_host *h = &plain->hosts[k];
                struct in_addr in;
                if (k >= plain->n || !pl_addr_parse_ipv4(sa->address, &in) ||
                    h->addr != in.s_addr || h->port != sa->port_value ||
                    h->weight !=
                        (le->load_balancing_weight ? le->load_balancing_weight->value : 1) ||
                    h->health != (le->health_status > 255 ? 255 : le->health_status) ||
                    h->locality_weight !=
                        (l->load_balancing_weight ? l->load_balancing_weight->value : 0))
                    abort(); /* a host decoded differently */
            }
        }
        if (k != plain->n)
            abort();
    }
    track_release(&t);
    return 0;
}
