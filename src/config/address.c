#include "config/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "core/err.h"

/* Writes the decimal digits of v at p; returns the end. */
static char *put_dec(char *p, unsigned v)
{
    char tmp[10];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n)
        *p++ = tmp[--n];
    return p;
}

void pl_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        /* by hand: addresses are formatted for every endpoint of every cluster (xDS scale) */
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        const unsigned char *b = (const unsigned char *)&in->sin_addr;
        char tmp[24], *p = tmp;
        for (int i = 0; i < 4; i++) {
            p = put_dec(p, b[i]);
            *p++ = i < 3 ? '.' : ':';
        }
        p = put_dec(p, ntohs(in->sin_port));
        size_t n = (size_t)(p - tmp);
        if (cap == 0)
            return;
        if (n >= cap)
            n = cap - 1;
        memcpy(buf, tmp, n);
        buf[n] = '\0';
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        if (un->sun_path[0] == '\0')
            snprintf(buf, cap, "@%.*s", (int)(len - offsetof(struct sockaddr_un, sun_path) - 1),
                     un->sun_path + 1);
        else
            snprintf(buf, cap, "%s", un->sun_path);
    } else {
        snprintf(buf, cap, "unknown");
    }
}

int pl_addr_from_proto(const Envoy__Config__Core__V3__Address *a, struct pl_addr *out,
                       const char **why)
{
    memset(out, 0, sizeof(*out));
    int rc = pl_sockaddr_from_proto(a, &out->ss, &out->len, why);
    if (rc == 0 && out->ss.ss_family == AF_UNIX)
        snprintf(out->str, sizeof(out->str), "%s", a->pipe->path);
    else if (rc == 0)
        pl_addr_format((struct sockaddr *)&out->ss, out->len, out->str, sizeof(out->str));
    return rc;
}

/* Dotted-quad IPv4 exactly as glibc's inet_pton(AF_INET) takes it (four decimal parts of at
 * most 255, no leading zeros); 0 for anything else, which then goes to inet_pton. Every endpoint
 * of every cluster is parsed here (twice: validation and compile), and inet_pton cost ~250
 * instructions each. */
static int parse_ipv4(const char *s, struct in_addr *out)
{
    uint32_t v = 0;
    for (int part = 0; part < 4; part++) {
        if (part && *s++ != '.')
            return 0;
        if (*s < '0' || *s > '9')
            return 0;
        unsigned n = (unsigned)(*s++ - '0');
        if (n == 0 && *s >= '0' && *s <= '9')
            return 0; /* a leading zero */
        while (*s >= '0' && *s <= '9') {
            n = n * 10 + (unsigned)(*s++ - '0');
            if (n > 255)
                return 0;
        }
        v = v << 8 | n;
    }
    if (*s)
        return 0;
    out->s_addr = htonl(v);
    return 1;
}

bool pl_addr_parse_ipv4(const char *s, struct in_addr *out)
{
    return parse_ipv4(s, out);
}

int pl_sockaddr_from_proto(const Envoy__Config__Core__V3__Address *a, struct sockaddr_storage *ss,
                           socklen_t *len, const char **why)
{
    if (!a) {
        *why = "an address is required";
        return PL_EINVAL;
    }
    if (a->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_PIPE) {
        const char *path = a->pipe->path;
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        size_t n = strlen(path);
        if (n == 0 || n >= sizeof(un->sun_path)) {
            *why = "pipe path must be 1 to 107 bytes";
            return PL_EINVAL;
        }
        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, n);
        if (path[0] == '@') /* abstract namespace, as Envoy writes it */
            un->sun_path[0] = '\0';
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] != '@'));
        return 0;
    }
    if (a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS) {
        *why = "only socket_address and pipe addresses are supported";
        return PL_EINVAL;
    }
    const Envoy__Config__Core__V3__SocketAddress *sa = a->socket_address;
    if (sa->protocol != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__TCP) {
        *why = "only protocol TCP is supported";
        return PL_EINVAL;
    }
    if (sa->port_specifier_case !=
            ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE &&
        sa->port_specifier_case !=
            ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER__NOT_SET) {
        *why = "named ports are not supported; use port_value";
        return PL_EINVAL;
    }
    uint32_t port = sa->port_specifier_case ==
                            ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE
                        ? sa->port_value
                        : 0;
    if (port > 65535) {
        *why = "port_value must be at most 65535";
        return PL_EINVAL;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    struct in_addr a4;
    struct in6_addr a6;
    if (parse_ipv4(sa->address, &a4) || inet_pton(AF_INET, sa->address, &a4) == 1) {
        memset(in, 0, sizeof(*in));
        in->sin_addr = a4;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof(*in);
    } else if (inet_pton(AF_INET6, sa->address, &a6) == 1) {
        memset(in6, 0, sizeof(*in6));
        in6->sin6_addr = a6;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
    } else {
        *why = "address must be an IP address literal";
        return PL_EINVAL;
    }
    return 0;
}

bool pl_addr_is_local(const struct pl_addr *a)
{
    if (a->ss.ss_family == AF_UNIX)
        return true;
    if (a->ss.ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
    return false;
}
