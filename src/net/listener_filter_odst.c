/* envoy.filters.listener.original_dst: the connection's local address becomes the destination
 * the client asked for before an iptables REDIRECT / DNAT (SO_ORIGINAL_DST for IPv4,
 * IP6T_SO_ORIGINAL_DST for IPv6). Without a redirect the kernel reports the socket's own local
 * address, or fails when conntrack is not loaded: then the local address stays as it is. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/listener_filter.h"
#include "pl_proto_all.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif

static int odst_compile(const ProtobufCMessage *config, void **out, struct pl_err *err)
{
    (void)config;
    (void)err;
    *out = NULL;
    return 0;
}

/* Asks the kernel for fd's original destination into ss and len; 0, or -1. */
static int original_dst(int fd, int family, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        *len = sizeof(struct sockaddr_in);
        if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ss, len) == 0 && ss->ss_family == AF_INET)
            return 0;
    } else if (family == AF_INET6) {
        *len = sizeof(struct sockaddr_in6);
        if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, ss, len) == 0 &&
            ss->ss_family == AF_INET6)
            return 0;
        /* a v4-mapped connection on a dual-stack socket was redirected by iptables (v4) */
        *len = sizeof(struct sockaddr_in);
        if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ss, len) == 0 && ss->ss_family == AF_INET)
            return 0;
    }
    return -1;
}

static enum pl_lf_status odst_on_accept(void *cfg, struct pl_listener_socket *s)
{
    (void)cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    if (original_dst(s->fd, s->local.ss_family, &ss, &len) < 0)
        return PL_LF_CONTINUE;
    if (len != s->local_len || memcmp(&ss, &s->local, len)) {
        s->local = ss;
        s->local_len = len;
        s->local_restored = true;
    }
    return PL_LF_CONTINUE;
}

const struct pl_listener_filter_vtable pl_lf_original_dst = {
    .name = "envoy.filters.listener.original_dst",
    .config = &envoy__extensions__filters__listener__original_dst__v3__original_dst__descriptor,
    .compile = odst_compile,
    .free_cfg = NULL,
    .prepare = NULL,
    .on_accept = odst_on_accept,
};
