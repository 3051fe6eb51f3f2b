/* envoy.config.core.v3.Address <-> sockaddr. */
#ifndef PL_CONFIG_ADDRESS_H
#define PL_CONFIG_ADDRESS_H

#include <stdbool.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "pl_proto_all.h"

/* A resolved address: sockaddr plus its display form ("127.0.0.1:80", "[::1]:80", "/path"). */
struct pl_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char str[128];
};

/* Converts an Address holding an IP literal and port, or a pipe, into a pl_addr.
 * Returns 0, or PL_EINVAL with a reason in *why (static text) when it is not one. */
int pl_addr_from_proto(const Envoy__Config__Core__V3__Address *a, struct pl_addr *out,
                       const char **why);
/* pl_addr_from_proto without the display form: the sockaddr into *ss (its length in *len). */
int pl_sockaddr_from_proto(const Envoy__Config__Core__V3__Address *a, struct sockaddr_storage *ss,
                           socklen_t *len, const char **why);
/* Parses a dotted-quad IPv4 literal as glibc's inet_pton(AF_INET) takes it (four decimal parts
 * of at most 255, no leading zeros) into *out; false for anything else (inet_pton may still take
 * it). */
bool pl_addr_parse_ipv4(const char *s, struct in_addr *out);
/* Returns true if the address is loopback (127/8, ::1) or a unix socket. */
bool pl_addr_is_local(const struct pl_addr *a);
/* Formats a sockaddr for display into buf ("127.0.0.1:80", "[::1]:80", "/path"). */
void pl_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap);

#endif
