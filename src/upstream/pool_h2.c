/* HTTP/2 connection pools: many streams per connection, up to the peer's limit. */
#include <stdint.h>

#include "core/log.h"
#include "http/h1_codec.h"
#include "upstream/pool_internal.h"

struct pl_codec *pool_h2_codec_new(struct pool_conn *pc, const struct pl_codec_callbacks *cb)
{
    /* until the HTTP/2 codec is in: speak HTTP/1.1 */
    pl_log_warn("pool", "HTTP/2 upstream not available yet; using HTTP/1.1 to %s",
                pc->pool->addr_str);
    return pl_h1_codec_new(false, NULL, cb, pc);
}

uint32_t pool_h2_capacity(struct pool_conn *pc)
{
    return pl_h1_codec_idle(pc->codec) && pc->n_streams == 0 ? 1 : 0;
}

size_t pool_h2_connecting_capacity(const struct pl_pool *p)
{
    (void)p;
    return 1;
}

void pool_h2_settle(struct pool_conn *pc)
{
    (void)pc;
}

const struct pl_transport_vtable *pool_cluster_transport(const struct pl_cluster_cfg *cfg,
                                                         void **transport_cfg)
{
    /* compiled by config/compile.c from the cluster's transport_socket (TLS); NULL: raw */
    *transport_cfg = cfg->transport_cfg;
    return cfg->transport;
}
