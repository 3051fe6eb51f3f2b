/* What happened to one request (HTTP connection manager) or one connection (tcp_proxy): the
 * data access logs format (Envoy's StreamInfo). A plain struct the owner fills as the request
 * progresses; everything it points to must stay valid until the access logs have been emitted
 * (pl_access_log_emit copies what it needs). Unset means: NULL pointers, 0 numbers and 0
 * timestamps; the formatter prints "-" for them as Envoy does. */
#ifndef PL_HTTP_STREAM_INFO_H
#define PL_HTTP_STREAM_INFO_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "http/headers.h"

/* Envoy's response flags (StreamInfo::CoreResponseFlag), in Envoy's order: %RESPONSE_FLAGS%
 * prints the short names of the set bits in this order, joined by ",". */
enum pl_response_flag {
    PL_RF_LH = 1u << 0,     /* FailedLocalHealthCheck */
    PL_RF_UH = 1u << 1,     /* NoHealthyUpstream */
    PL_RF_UT = 1u << 2,     /* UpstreamRequestTimeout */
    PL_RF_LR = 1u << 3,     /* LocalReset */
    PL_RF_UR = 1u << 4,     /* UpstreamRemoteReset */
    PL_RF_UF = 1u << 5,     /* UpstreamConnectionFailure */
    PL_RF_UC = 1u << 6,     /* UpstreamConnectionTermination */
    PL_RF_UO = 1u << 7,     /* UpstreamOverflow (circuit breaking) */
    PL_RF_NR = 1u << 8,     /* NoRouteFound */
    PL_RF_DI = 1u << 9,     /* DelayInjected */
    PL_RF_FI = 1u << 10,    /* FaultInjected */
    PL_RF_RL = 1u << 11,    /* RateLimited */
    PL_RF_UAEX = 1u << 12,  /* UnauthorizedExternalService */
    PL_RF_RLSE = 1u << 13,  /* RateLimitServiceError */
    PL_RF_DC = 1u << 14,    /* DownstreamConnectionTermination */
    PL_RF_URX = 1u << 15,   /* UpstreamRetryLimitExceeded */
    PL_RF_SI = 1u << 16,    /* StreamIdleTimeout */
    PL_RF_IH = 1u << 17,    /* InvalidEnvoyRequestHeaders */
    PL_RF_DPE = 1u << 18,   /* DownstreamProtocolError */
    PL_RF_UMSDR = 1u << 19, /* UpstreamMaxStreamDurationReached */
    PL_RF_RFCF = 1u << 20,  /* ResponseFromCacheFilter */
    PL_RF_NFCF = 1u << 21,  /* NoFilterConfigFound */
    PL_RF_DT = 1u << 22,    /* DurationTimeout */
    PL_RF_UPE = 1u << 23,   /* UpstreamProtocolError */
    PL_RF_NC = 1u << 24,    /* NoClusterFound */
    PL_RF_OM = 1u << 25,    /* OverloadManager */
    PL_RF_DF = 1u << 26,    /* DnsResolutionFailed */
    PL_RF_DO = 1u << 27,    /* DropOverLoad */
    PL_RF_DR = 1u << 28,    /* DownstreamRemoteReset */
    PL_RF_UDO = 1u << 29,   /* UnconditionalDropOverload */
};
#define PL_RF_COUNT 30

/* %PROTOCOL%: "HTTP/1.0", "HTTP/1.1", "HTTP/2"; unset ("-") for TCP. */
enum pl_stream_protocol {
    PL_PROTO_NONE = 0,
    PL_PROTO_HTTP10,
    PL_PROTO_HTTP11,
    PL_PROTO_HTTP2,
};

struct pl_stream_info {
    /* When the request (or connection) started: wall clock for %START_TIME%, monotonic
     * (CLOCK_MONOTONIC, ns) as the origin of every duration. pl_stream_info_start sets both. */
    struct timespec start_time;
    int64_t start_mono_ns;

    /* Monotonic timestamps (ns, CLOCK_MONOTONIC; 0 = did not happen). */
    int64_t last_downstream_rx_byte_ns; /* request fully received: %REQUEST_DURATION% */
    int64_t first_upstream_tx_byte_ns;  /* first byte sent upstream */
    int64_t last_upstream_tx_byte_ns;   /* request fully sent upstream */
    int64_t first_upstream_rx_byte_ns;  /* first response byte from upstream: %RESPONSE_DURATION% */
    int64_t last_upstream_rx_byte_ns;   /* response fully received from upstream */
    int64_t first_downstream_tx_byte_ns; /* first response byte sent downstream */
    int64_t last_downstream_tx_byte_ns;  /* response fully sent: %RESPONSE_TX_DURATION% end */
    int64_t end_ns; /* request (connection) complete: %DURATION%; set before emitting */

    /* Downstream connection addresses; point to the connection's storage (NULL = unknown). */
    const struct sockaddr *downstream_remote_addr;
    socklen_t downstream_remote_addr_len;
    const struct sockaddr *downstream_local_addr;
    socklen_t downstream_local_addr_len;
    uint64_t connection_id; /* %CONNECTION_ID%: the downstream connection's id */

    enum pl_stream_protocol protocol;
    const struct pl_http_head *request;         /* request head (HTTP); NULL for TCP */
    const struct pl_http_head *response;        /* response head sent downstream; NULL if none */
    const struct pl_headers *response_trailers; /* %TRAILER(X)%; NULL if none */

    int response_code;                 /* 0 = no response was sent (prints "0", as Envoy) */
    uint32_t response_flags;           /* enum pl_response_flag bits */
    const char *response_code_details; /* "via_upstream", "route_not_found", ...; NUL-terminated */
    uint64_t bytes_received;           /* body bytes (HTTP) / bytes (TCP) from downstream */
    uint64_t bytes_sent;               /* body bytes (HTTP) / bytes (TCP) to downstream */

    /* Upstream side; NUL-terminated strings (NULL = none). */
    const char *upstream_host;                  /* the chosen host's address, "10.0.0.1:8080" */
    const char *upstream_cluster;               /* cluster name */
    const struct sockaddr *upstream_local_addr; /* local address of the upstream connection */
    socklen_t upstream_local_addr_len;
    const char *upstream_transport_failure_reason; /* e.g. TLS handshake failure text */

    const char *route_name;                     /* %ROUTE_NAME% */
    const char *request_id;                     /* x-request-id value the HCM generated/kept */
    const char *connection_termination_details; /* %CONNECTION_TERMINATION_DETAILS% */
};

/* Returns CLOCK_MONOTONIC in nanoseconds (for the *_ns fields). */
static inline int64_t pl_stream_info_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Zeroes si and records the start time (wall clock and monotonic). */
static inline void pl_stream_info_start(struct pl_stream_info *si)
{
    *si = (struct pl_stream_info){0};
    clock_gettime(CLOCK_REALTIME, &si->start_time);
    si->start_mono_ns = pl_stream_info_now_ns();
}

#endif
