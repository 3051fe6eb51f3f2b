/* A direct decoder for the common shape of envoy.config.cluster.v3.Cluster: a name, a discovery
 * type, an EDS config fetched over ADS (or a load assignment), a connect timeout, a load-balancing
 * policy and a few DNS and buffer scalars. It decodes straight into the protobuf-c structs (in
 * the caller's allocator) and checks in the same pass that every field set is one the support
 * table implements, so the field walk would find nothing to say. Anything unusual (another
 * field, a field or oneof set twice, a non-minimal or odd encoding, an enum value the schema does
 * not name, a string that is not plain ASCII) declines, and the caller takes the generic path,
 * protobuf-c's unpack and the field walk, whose error messages stay the only ones. A cluster is
 * decoded when CDS delivers it and again, from its kept encoding, when it is compiled with its
 * assignment: 10,000 EDS clusters took 53M instructions in unpack and the walk, then 34M in
 * unpack; 6M each here. */
#include <pthread.h>

#include "config/support.h"
#include "xds/pb_read.h"
#include "xds/xds.h"
#include "xds/xds_internal.h"

#define CL_T  Envoy__Config__Cluster__V3__Cluster
#define EDS_T Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig
#define CS_T  Envoy__Config__Core__V3__ConfigSource
#define ADS_T Envoy__Config__Core__V3__AggregatedConfigSource
#define DUR_T Google__Protobuf__Duration
#define U32_T Google__Protobuf__UInt32Value

#define CLUSTER(x) ENVOY__CONFIG__CLUSTER__V3__CLUSTER__##x
#define CS(x)      ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__##x

/* The fields taken here, each only while the support table says it is implemented (also the
 * bits of each message's `seen`: field numbers go past 31). */
enum {
    F_CL_NAME,
    F_CL_TYPE,
    F_CL_EDS,
    F_CL_CONNECT_TIMEOUT,
    F_CL_BUFFER_LIMIT,
    F_CL_LB_POLICY,
    F_CL_DNS_REFRESH_RATE,
    F_CL_DNS_LOOKUP_FAMILY,
    F_CL_LOAD_ASSIGNMENT,
    F_CL_RESPECT_DNS_TTL,
    F_EDS_CONFIG,
    F_EDS_SERVICE_NAME,
    F_CS_ADS,
    F_CS_FETCH_TIMEOUT,
    F_CS_API_VERSION,
    F_N
};

static const struct pl_support_ref fields[F_N] = {
    [F_CL_NAME] = {"envoy.config.cluster.v3.Cluster", "name"},
    [F_CL_TYPE] = {"envoy.config.cluster.v3.Cluster", "type"},
    [F_CL_EDS] = {"envoy.config.cluster.v3.Cluster", "eds_cluster_config"},
    [F_CL_CONNECT_TIMEOUT] = {"envoy.config.cluster.v3.Cluster", "connect_timeout"},
    [F_CL_BUFFER_LIMIT] = {"envoy.config.cluster.v3.Cluster", "per_connection_buffer_limit_bytes"},
    [F_CL_LB_POLICY] = {"envoy.config.cluster.v3.Cluster", "lb_policy"},
    [F_CL_DNS_REFRESH_RATE] = {"envoy.config.cluster.v3.Cluster", "dns_refresh_rate"},
    [F_CL_DNS_LOOKUP_FAMILY] = {"envoy.config.cluster.v3.Cluster", "dns_lookup_family"},
    [F_CL_LOAD_ASSIGNMENT] = {"envoy.config.cluster.v3.Cluster", "load_assignment"},
    [F_CL_RESPECT_DNS_TTL] = {"envoy.config.cluster.v3.Cluster", "respect_dns_ttl"},
    [F_EDS_CONFIG] = {"envoy.config.cluster.v3.Cluster.EdsClusterConfig", "eds_config"},
    [F_EDS_SERVICE_NAME] = {"envoy.config.cluster.v3.Cluster.EdsClusterConfig", "service_name"},
    [F_CS_ADS] = {"envoy.config.core.v3.ConfigSource", "ads"},
    [F_CS_FETCH_TIMEOUT] = {"envoy.config.core.v3.ConfigSource", "initial_fetch_timeout"},
    [F_CS_API_VERSION] = {"envoy.config.core.v3.ConfigSource", "resource_api_version"},
};

static bool usable[F_N];
static pthread_once_t usable_once = PTHREAD_ONCE_INIT;

static void usable_init(void)
{
    pl_support_usable(fields, F_N, usable);
}

static const CL_T cl_init = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
static const EDS_T eds_init = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__EDS_CLUSTER_CONFIG__INIT;
static const CS_T cs_init = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
static const ADS_T ads_init = ENVOY__CONFIG__CORE__V3__AGGREGATED_CONFIG_SOURCE__INIT;
static const DUR_T dur_init = GOOGLE__PROTOBUF__DURATION__INIT;
static const U32_T u32_init = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;

/* A cluster and the messages it may hold, in one allocation (eight for an EDS cluster). */
struct cluster_block {
    CL_T cl;
    EDS_T eds;
    CS_T cs;
    ADS_T ads;
    DUR_T connect_timeout, dns_refresh_rate, fetch_timeout;
    U32_T buffer_limit;
};

/* An enum's value, when it is one of the values the schema names (a bit of `names`). */
static bool enum_value(struct pl_pbr *r, uint32_t wt, uint32_t names, uint32_t *v)
{
    return pl_pbr_u32(r, wt, v) && *v < 32 && (names >> *v & 1);
}

/* A Duration: seconds as any int64 protobuf-c reads the same, nanos a non-negative int32. */
static bool duration(struct pl_pbr *r, uint32_t wt, DUR_T *d)
{
    struct pl_pbr s;
    if (!pl_pbr_sub(r, wt, &s))
        return false;
    *d = dur_init;
    unsigned seen = 0;
    uint32_t num, t, n;
    uint64_t v;
    while (s.p < s.end) {
        if (!pl_pbr_tag(&s, &num, &t))
            return false;
        switch (num) {
        case 1: {
            PL_PBR_ONCE(1);
            const uint8_t *from = s.p;
            /* a tenth byte carries only bit 63 */
            if (t != 0 || !pl_pbr_varint(&s, 10, &v) || (s.p - from == 10 && s.p[-1] > 1))
                return false;
            d->seconds = (int64_t)v;
            break;
        }
        case 2:
            PL_PBR_ONCE(2);
            if (!pl_pbr_u32(&s, t, &n) || n > INT32_MAX)
                return false;
            d->nanos = (int32_t)n;
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool wrapper(struct pl_pbr *r, uint32_t wt, U32_T *w)
{
    struct pl_pbr s;
    if (!pl_pbr_sub(r, wt, &s))
        return false;
    *w = u32_init;
    unsigned seen = 0;
    uint32_t num, t;
    while (s.p < s.end) {
        if (!pl_pbr_tag(&s, &num, &t) || num != 1)
            return false;
        PL_PBR_ONCE(1);
        if (!pl_pbr_u32(&s, t, &w->value))
            return false;
    }
    return true;
}

/* A ConfigSource of ADS: ads (empty), initial_fetch_timeout, resource_api_version. */
static bool config_source(struct pl_pbr *r, struct cluster_block *b)
{
    CS_T *cs = &b->cs;
    *cs = cs_init;
    unsigned seen = 0;
    uint32_t num, wt, v;
    while (r->p < r->end) {
        struct pl_pbr s;
        if (!pl_pbr_tag(r, &num, &wt))
            return false;
        switch (num) {
        case 3: /* the only member of config_source_specifier taken */
            PL_PBR_ONCE(F_CS_ADS);
            if (!usable[F_CS_ADS] || !pl_pbr_sub(r, wt, &s) || s.p != s.end)
                return false;
            b->ads = ads_init;
            cs->ads = &b->ads;
            cs->config_source_specifier_case = CS(CONFIG_SOURCE_SPECIFIER_ADS);
            break;
        case 4:
            PL_PBR_ONCE(F_CS_FETCH_TIMEOUT);
            if (!usable[F_CS_FETCH_TIMEOUT] || !duration(r, wt, &b->fetch_timeout))
                return false;
            cs->initial_fetch_timeout = &b->fetch_timeout;
            break;
        case 6:
            PL_PBR_ONCE(F_CS_API_VERSION);
            if (!usable[F_CS_API_VERSION] || !enum_value(r, wt, 0x7, &v)) /* AUTO, V2, V3 */
                return false;
            cs->resource_api_version = (Envoy__Config__Core__V3__ApiVersion)v;
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool eds_cluster_config(struct pl_pbr *r, uint32_t wt, ProtobufCAllocator *a,
                               struct cluster_block *b)
{
    struct pl_pbr e, s;
    if (!pl_pbr_sub(r, wt, &e))
        return false;
    EDS_T *ec = &b->eds;
    *ec = eds_init;
    unsigned seen = 0;
    uint32_t num;
    while (e.p < e.end) {
        if (!pl_pbr_tag(&e, &num, &wt))
            return false;
        switch (num) {
        case 1:
            PL_PBR_ONCE(F_EDS_CONFIG);
            if (!usable[F_EDS_CONFIG] || !pl_pbr_sub(&e, wt, &s) || !config_source(&s, b))
                return false;
            ec->eds_config = &b->cs;
            break;
        case 2:
            PL_PBR_ONCE(F_EDS_SERVICE_NAME);
            if (!usable[F_EDS_SERVICE_NAME] || !pl_pbr_str(&e, wt, a, &ec->service_name))
                return false;
            break;
        default:
            return false;
        }
    }
    return true;
}

/* A STATIC or DNS cluster's endpoints, as pl_xds_cla_decode takes an assignment (whether they
 * are plainly valid is pl_validate_cluster's to say). */
static bool load_assignment(struct pl_pbr *r, uint32_t wt, ProtobufCAllocator *a,
                            Envoy__Config__Endpoint__V3__ClusterLoadAssignment **out)
{
    struct pl_pbr s;
    bool valid;
    return pl_pbr_sub(r, wt, &s) &&
           (*out = pl_xds_cla_decode(s.p, (size_t)(s.end - s.p), a, &valid)) != NULL;
}

CL_T *pl_xds_cluster_decode(const uint8_t *data, size_t len, ProtobufCAllocator *a)
{
    pthread_once(&usable_once, usable_init);
    struct cluster_block *b = pl_pbr_alloc(a, sizeof(*b));
    if (!b)
        return NULL;
    CL_T *cl = &b->cl;
    *cl = cl_init;
    struct pl_pbr r = {data, data + len};
    unsigned seen = 0;
    uint32_t num, wt, v;
    while (r.p < r.end) {
        if (!pl_pbr_tag(&r, &num, &wt))
            return NULL;
#define TAKE(f, ok)                                                                                \
    do {                                                                                           \
        if (seen & (1u << (f)) || !usable[f] || !(ok))                                             \
            return NULL;                                                                           \
        seen |= 1u << (f);                                                                         \
    } while (0)
        switch (num) {
        case 1:
            TAKE(F_CL_NAME, pl_pbr_str(&r, wt, a, &cl->name));
            break;
        case 2: /* STATIC, STRICT_DNS, LOGICAL_DNS, EDS: the only cluster_discovery_type taken */
            TAKE(F_CL_TYPE, enum_value(&r, wt, 0xf, &v));
            cl->type = (Envoy__Config__Cluster__V3__Cluster__DiscoveryType)v;
            cl->cluster_discovery_type_case = CLUSTER(CLUSTER_DISCOVERY_TYPE_TYPE);
            break;
        case 3:
            TAKE(F_CL_EDS, eds_cluster_config(&r, wt, a, b));
            cl->eds_cluster_config = &b->eds;
            break;
        case 4:
            TAKE(F_CL_CONNECT_TIMEOUT, duration(&r, wt, &b->connect_timeout));
            cl->connect_timeout = &b->connect_timeout;
            break;
        case 5:
            TAKE(F_CL_BUFFER_LIMIT, wrapper(&r, wt, &b->buffer_limit));
            cl->per_connection_buffer_limit_bytes = &b->buffer_limit;
            break;
        case 6: /* every LbPolicy but the reserved 4 */
            TAKE(F_CL_LB_POLICY, enum_value(&r, wt, 0xef, &v));
            cl->lb_policy = (Envoy__Config__Cluster__V3__Cluster__LbPolicy)v;
            break;
        case 16:
            TAKE(F_CL_DNS_REFRESH_RATE, duration(&r, wt, &b->dns_refresh_rate));
            cl->dns_refresh_rate = &b->dns_refresh_rate;
            break;
        case 17: /* AUTO .. ALL */
            TAKE(F_CL_DNS_LOOKUP_FAMILY, enum_value(&r, wt, 0x1f, &v));
            cl->dns_lookup_family = (Envoy__Config__Cluster__V3__Cluster__DnsLookupFamily)v;
            break;
        case 33:
            TAKE(F_CL_LOAD_ASSIGNMENT, load_assignment(&r, wt, a, &cl->load_assignment));
            break;
        case 39:
            TAKE(F_CL_RESPECT_DNS_TTL, enum_value(&r, wt, 0x3, &v)); /* a bool: 0 or 1 */
            cl->respect_dns_ttl = v;
            break;
        default:
            return NULL;
        }
#undef TAKE
    }
    return cl;
}
