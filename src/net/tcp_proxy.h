/* The tcp_proxy network filter (envoy.filters.network.tcp_proxy). */
#ifndef PL_NET_TCP_PROXY_H
#define PL_NET_TCP_PROXY_H

#include "net/filter.h"

/* Registered by pl_netfilter_register_builtins. */
extern const struct pl_netfilter_vtable pl_tcp_proxy_netfilter;

#endif
