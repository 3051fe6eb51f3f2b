/* The HTTP connection manager (Envoy's envoy.filters.network.http_connection_manager): a
 * terminal network filter that speaks HTTP/1.1 or HTTP/2 to the downstream, runs each request
 * through the configured HTTP filters (src/filters/filter.h, the router last) and writes the
 * responses back, with Envoy's header handling, local replies, timeouts, stats
 * (http.<stat_prefix>.*), access logs and drain.
 */
#ifndef PL_HTTP_CONN_MANAGER_H
#define PL_HTTP_CONN_MANAGER_H

#include <stdint.h>

#include "net/filter.h"

/* The network filter; pl_netfilter_register_builtins registers it. */
extern const struct pl_netfilter_vtable pl_hcm_netfilter;

/* Returns 64 random bits from the calling thread's generator (seeded once; no syscall). */
uint64_t pl_hcm_random(void);

#endif
