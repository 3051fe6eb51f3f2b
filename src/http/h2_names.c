/* Field names the HTTP/2 codec recognises in the header blocks it sends: the HPACK static
 * table's, Envoy's, and common tracing, gRPC, CORS and browser ones (the list below). A known
 * name goes to nghttp2 as a static lower-case string it need not copy or lower-case
 * (NGHTTP2_NV_FLAG_NO_COPY_NAME) and needs no token check. Names that carry a new value on
 * every request (request and trace ids) are sent never indexed (NGHTTP2_NV_FLAG_NO_INDEX):
 * HPACK would fill the dynamic table with them, evict the entries that repeat, and walk them
 * all on every later lookup of the name. Connection-specific names and host are marked
 * PL_H2_NV_HOP, so the sender looks at no other known name for RFC 9113 8.2.2. */
#include <string.h>

#include "http/h2_codec_internal.h"

/* memcmp of a constant size compiles to a few loads and compares */
#define MATCH(lit, fl)                                                                             \
    do {                                                                                           \
        if (!memcmp(n, lit, sizeof(lit) - 1)) {                                                    \
            *flags = (fl);                                                                         \
            return lit;                                                                            \
        }                                                                                          \
    } while (0)
#define KNOWN(lit)  MATCH(lit, NGHTTP2_NV_FLAG_NO_COPY_NAME)
#define UNIQUE(lit) MATCH(lit, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_INDEX)
#define HOP(lit)    MATCH(lit, NGHTTP2_NV_FLAG_NO_COPY_NAME | PL_H2_NV_HOP)

const char *pl_h2_known_name(const char *n, uint32_t len, uint8_t *flags)
{
    switch (len) {
    case 2:
        UNIQUE("b3");
        HOP("te");
        break;
    case 3:
        switch (n[0]) {
        case 'a':
            KNOWN("age");
            break;
        case 'd':
            KNOWN("dnt");
            break;
        case 'v':
            KNOWN("via");
            break;
        default:
            break;
        }
        break;
    case 4:
        switch (n[0]) {
        case 'd':
            KNOWN("date");
            break;
        case 'e':
            KNOWN("etag");
            break;
        case 'f':
            KNOWN("from");
            break;
        case 'h':
            HOP("host");
            break;
        case 'l':
            KNOWN("link");
            break;
        case 'v':
            KNOWN("vary");
            break;
        default:
            break;
        }
        break;
    case 5:
        KNOWN("allow");
        KNOWN("range");
        break;
    case 6:
        switch (n[0]) {
        case 'a':
            KNOWN("accept");
            break;
        case 'c':
            KNOWN("cookie");
            break;
        case 'e':
            KNOWN("expect");
            break;
        case 'o':
            KNOWN("origin");
            break;
        case 'p':
            KNOWN("pragma");
            break;
        case 's':
            KNOWN("server");
            break;
        default:
            break;
        }
        break;
    case 7:
        switch (n[0]) {
        case 'a':
            KNOWN("alt-svc");
            break;
        case 'e':
            KNOWN("expires");
            break;
        case 'r':
            KNOWN("referer");
            KNOWN("refresh");
            break;
        case 't':
            KNOWN("trailer");
            break;
        case 'u':
            HOP("upgrade");
            break;
        default:
            break;
        }
        break;
    case 8:
        switch (n[0]) {
        case 'i':
            KNOWN("if-match");
            KNOWN("if-range");
            break;
        case 'l':
            KNOWN("location");
            break;
        case 'p':
            KNOWN("priority");
            break;
        default:
            break;
        }
        break;
    case 9:
        KNOWN("x-real-ip");
        break;
    case 10:
        switch (n[0]) {
        case 'c':
            HOP("connection");
            break;
        case 'k':
            HOP("keep-alive");
            break;
        case 's':
            KNOWN("set-cookie");
            break;
        case 't':
            UNIQUE("tracestate");
            break;
        case 'u':
            KNOWN("user-agent");
            break;
        case 'x':
            KNOWN("x-b3-flags");
            break;
        default:
            break;
        }
        break;
    case 11:
        switch (n[0]) {
        case 'g':
            KNOWN("grpc-status");
            break;
        case 'r':
            KNOWN("retry-after");
            break;
        case 't':
            UNIQUE("traceparent");
            break;
        case 'x':
            UNIQUE("x-b3-spanid");
            break;
        default:
            break;
        }
        break;
    case 12:
        switch (n[0]) {
        case 'c':
            KNOWN("content-type");
            break;
        case 'g':
            KNOWN("grpc-message");
            KNOWN("grpc-timeout");
            break;
        case 'm':
            KNOWN("max-forwards");
            break;
        case 'x':
            KNOWN("x-b3-sampled");
            UNIQUE("x-b3-traceid");
            KNOWN("x-powered-by");
            UNIQUE("x-request-id");
            break;
        default:
            break;
        }
        break;
    case 13:
        switch (n[0]) {
        case 'a':
            KNOWN("accept-ranges");
            KNOWN("authorization");
            break;
        case 'c':
            KNOWN("cache-control");
            KNOWN("content-range");
            break;
        case 'g':
            KNOWN("grpc-encoding");
            break;
        case 'i':
            KNOWN("if-none-match");
            break;
        case 'l':
            KNOWN("last-modified");
            break;
        default:
            break;
        }
        break;
    case 14:
        switch (n[0]) {
        case 'a':
            KNOWN("accept-charset");
            break;
        case 'c':
            KNOWN("content-length");
            break;
        case 's':
            KNOWN("sec-fetch-dest");
            KNOWN("sec-fetch-mode");
            KNOWN("sec-fetch-site");
            KNOWN("sec-fetch-user");
            break;
        default:
            break;
        }
        break;
    case 15:
        switch (n[0]) {
        case 'a':
            KNOWN("accept-encoding");
            KNOWN("accept-language");
            break;
        case 'x':
            UNIQUE("x-amzn-trace-id");
            KNOWN("x-forwarded-for");
            KNOWN("x-frame-options");
            break;
        default:
            break;
        }
        break;
    case 16:
        switch (n[0]) {
        case 'c':
            KNOWN("content-encoding");
            KNOWN("content-language");
            KNOWN("content-location");
            break;
        case 'p':
            HOP("proxy-connection");
            break;
        case 'w':
            KNOWN("www-authenticate");
            break;
        case 'x':
            KNOWN("x-envoy-degraded");
            KNOWN("x-envoy-internal");
            KNOWN("x-forwarded-host");
            KNOWN("x-forwarded-port");
            KNOWN("x-requested-with");
            KNOWN("x-xss-protection");
            break;
        default:
            break;
        }
        break;
    case 17:
        switch (n[0]) {
        case 'i':
            KNOWN("if-modified-since");
            break;
        case 't':
            HOP("transfer-encoding");
            break;
        case 'x':
            UNIQUE("x-b3-parentspanid");
            UNIQUE("x-client-trace-id");
            KNOWN("x-forwarded-proto");
            break;
        default:
            break;
        }
        break;
    case 18:
        switch (n[0]) {
        case 'p':
            KNOWN("proxy-authenticate");
            break;
        case 'x':
            UNIQUE("x-datadog-trace-id");
            KNOWN("x-envoy-overloaded");
            break;
        default:
            break;
        }
        break;
    case 19:
        switch (n[0]) {
        case 'c':
            KNOWN("content-disposition");
            break;
        case 'i':
            KNOWN("if-unmodified-since");
            break;
        case 'p':
            KNOWN("proxy-authorization");
            break;
        case 'x':
            UNIQUE("x-datadog-parent-id");
            KNOWN("x-envoy-ratelimited");
            break;
        default:
            break;
        }
        break;
    case 20:
        KNOWN("grpc-accept-encoding");
        break;
    case 21:
        switch (n[0]) {
        case 'x':
            UNIQUE("x-cloud-trace-context");
            KNOWN("x-envoy-attempt-count");
            KNOWN("x-envoy-original-path");
            break;
        default:
            break;
        }
        break;
    case 22:
        KNOWN("access-control-max-age");
        KNOWN("x-content-type-options");
        break;
    case 23:
        switch (n[0]) {
        case 'c':
            KNOWN("content-security-policy");
            break;
        case 'g':
            KNOWN("grpc-status-details-bin");
            break;
        case 'x':
            KNOWN("x-envoy-upstream-canary");
            break;
        default:
            break;
        }
        break;
    case 24:
        KNOWN("x-envoy-external-address");
        break;
    case 25:
        KNOWN("strict-transport-security");
        KNOWN("upgrade-insecure-requests");
        break;
    case 27:
        switch (n[0]) {
        case 'a':
            KNOWN("access-control-allow-origin");
            break;
        case 'x':
            KNOWN("x-datadog-sampling-priority");
            KNOWN("x-envoy-decorator-operation");
            break;
        default:
            break;
        }
        break;
    case 28:
        KNOWN("access-control-allow-headers");
        KNOWN("access-control-allow-methods");
        break;
    case 29:
        switch (n[0]) {
        case 'a':
            KNOWN("access-control-expose-headers");
            KNOWN("access-control-request-method");
            break;
        case 'x':
            KNOWN("x-envoy-upstream-service-time");
            break;
        default:
            break;
        }
        break;
    case 30:
        KNOWN("access-control-request-headers");
        KNOWN("x-envoy-expected-rq-timeout-ms");
        break;
    case 32:
        KNOWN("access-control-allow-credentials");
        break;
    default:
        break;
    }
    *flags = NGHTTP2_NV_FLAG_NONE;
    return NULL;
}
