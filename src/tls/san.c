/* SubjectAltNameMatcher: compile at config time, match a peer certificate's SANs at handshake. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509v3.h>

#include "tls/tls_internal.h"

#define SAN(x)  ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__##x
#define SMAT(x) ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__##x

/* Bounds the work of one regex match; SAN values are short, so this only stops pathologies. */
#define REGEX_MATCH_LIMIT 100000

static int need_value(const char *v, const char *path, const char *field, struct pl_err *err)
{
    if (*v)
        return 0;
    char *p = pl_asprintf("%s.matcher.%s", path, field);
    pl_err_add(err, NULL, 0, 0, p, "value must not be empty");
    free(p);
    return PL_EINVAL;
}

int pl_tls_san_compile(
    const Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher *in, const char *path,
    struct pl_tls_san *m, struct pl_err *err)
{
    memset(m, 0, sizeof(*m));
    switch (in->san_type) {
    case SAN(SAN_TYPE__DNS):
        m->type = GEN_DNS;
        break;
    case SAN(SAN_TYPE__URI):
        m->type = GEN_URI;
        break;
    case SAN(SAN_TYPE__IP_ADDRESS):
        m->type = GEN_IPADD;
        break;
    case SAN(SAN_TYPE__EMAIL):
        m->type = GEN_EMAIL;
        break;
    case SAN(SAN_TYPE__OTHER_NAME): {
        char *p = pl_asprintf("%s.san_type", path);
        pl_err_add(err, NULL, 0, 0, p, "san_type OTHER_NAME is not supported by pillion");
        free(p);
        return PL_ENOTSUP;
    }
    default: {
        char *p = pl_asprintf("%s.san_type", path);
        pl_err_add(err, NULL, 0, 0, p, "san_type must be one of DNS, URI, IP_ADDRESS, EMAIL");
        free(p);
        return PL_EINVAL;
    }
    }
    const Envoy__Type__Matcher__V3__StringMatcher *sm = in->matcher;
    if (!sm) {
        char *p = pl_asprintf("%s.matcher", path);
        pl_err_add(err, NULL, 0, 0, p, "matcher is required");
        free(p);
        return PL_EINVAL;
    }
    m->ignore_case = sm->ignore_case;
    switch (sm->match_pattern_case) {
    case SMAT(MATCH_PATTERN_EXACT):
        m->kind = PL_TLS_STR_EXACT;
        m->value = pl_strdup(sm->exact);
        return 0;
    case SMAT(MATCH_PATTERN_PREFIX):
        m->kind = PL_TLS_STR_PREFIX;
        m->value = pl_strdup(sm->prefix);
        return need_value(sm->prefix, path, "prefix", err);
    case SMAT(MATCH_PATTERN_SUFFIX):
        m->kind = PL_TLS_STR_SUFFIX;
        m->value = pl_strdup(sm->suffix);
        return need_value(sm->suffix, path, "suffix", err);
    case SMAT(MATCH_PATTERN_CONTAINS):
        m->kind = PL_TLS_STR_CONTAINS;
        m->value = pl_strdup(sm->contains);
        return need_value(sm->contains, path, "contains", err);
    case SMAT(MATCH_PATTERN_SAFE_REGEX): {
        m->kind = PL_TLS_STR_REGEX;
        const char *re = sm->safe_regex ? sm->safe_regex->regex : "";
        int code;
        PCRE2_SIZE off;
        m->re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                              PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF, &code, &off, NULL);
        if (!m->re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof(msg));
            char *p = pl_asprintf("%s.matcher.safe_regex.regex", path);
            pl_err_add(err, NULL, 0, 0, p, "invalid regex '%s' at offset %zu: %s", re, (size_t)off,
                       (const char *)msg);
            free(p);
            return PL_EINVAL;
        }
        return 0;
    }
    default: {
        char *p = pl_asprintf("%s.matcher", path);
        pl_err_add(err, NULL, 0, 0, p,
                   "one of exact, prefix, suffix, contains or safe_regex is required");
        free(p);
        return PL_EINVAL;
    }
    }
}

void pl_tls_san_free(struct pl_tls_san *m)
{
    free(m->value);
    if (m->re)
        pcre2_code_free(m->re);
    memset(m, 0, sizeof(*m));
}

static bool eq(const char *a, const char *b, size_t n, bool icase)
{
    return icase ? strncasecmp(a, b, n) == 0 : memcmp(a, b, n) == 0;
}

/* Envoy's dnsNameMatch: an exact DNS matcher also accepts a "*.example.com" SAN for exactly one
 * extra leading label. */
static bool dns_wildcard(const char *name, size_t nlen, const char *pat, size_t plen)
{
    if (plen < 3 || pat[0] != '*' || pat[1] != '.' || nlen <= plen - 1)
        return false;
    size_t off = nlen - (plen - 1);
    return memchr(name, '.', off) == NULL && strncasecmp(name + off, pat + 1, plen - 1) == 0;
}

static bool match_one(const struct pl_tls_san *m, const char *s, size_t n)
{
    size_t vl = m->value ? strlen(m->value) : 0;
    switch (m->kind) {
    case PL_TLS_STR_EXACT:
        if (vl == n && eq(s, m->value, n, m->ignore_case || m->type == GEN_DNS))
            return true;
        return m->type == GEN_DNS && dns_wildcard(m->value, vl, s, n);
    case PL_TLS_STR_PREFIX:
        return n >= vl && eq(s, m->value, vl, m->ignore_case);
    case PL_TLS_STR_SUFFIX:
        return n >= vl && eq(s + n - vl, m->value, vl, m->ignore_case);
    case PL_TLS_STR_CONTAINS:
        for (size_t i = 0; i + vl <= n; i++)
            if (eq(s + i, m->value, vl, m->ignore_case))
                return true;
        return false;
    case PL_TLS_STR_REGEX: {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->re, NULL);
        pcre2_match_context *mc = pcre2_match_context_create(NULL);
        if (!md || !mc)
            pl_die("out of memory (pcre2 match data)");
        pcre2_set_match_limit(mc, REGEX_MATCH_LIMIT);
        int rc = pcre2_match(m->re, (PCRE2_SPTR)s, n, 0, 0, md, mc);
        pcre2_match_context_free(mc);
        pcre2_match_data_free(md);
        return rc >= 0;
    }
    }
    return false;
}

/* Renders a GENERAL_NAME as the string Envoy matches against; false for other types or names
 * with embedded NULs (which never match). */
static bool name_string(const GENERAL_NAME *g, char *tmp, size_t tmpsz, const char **s, size_t *n)
{
    switch (g->type) {
    case GEN_DNS:
    case GEN_URI:
    case GEN_EMAIL: {
        const ASN1_IA5STRING *a = g->d.ia5;
        *s = (const char *)ASN1_STRING_get0_data(a);
        *n = (size_t)ASN1_STRING_length(a);
        return memchr(*s, '\0', *n) == NULL;
    }
    case GEN_IPADD: {
        const ASN1_OCTET_STRING *a = g->d.ip;
        int len = ASN1_STRING_length(a);
        const unsigned char *p = ASN1_STRING_get0_data(a);
        if ((len != 4 && len != 16) ||
            !inet_ntop(len == 4 ? AF_INET : AF_INET6, p, tmp, (socklen_t)tmpsz))
            return false;
        *s = tmp;
        *n = strlen(tmp);
        return true;
    }
    default:
        return false;
    }
}

bool pl_tls_san_check(const struct pl_tls_san *m, size_t n, X509 *cert)
{
    if (n == 0)
        return true;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!names)
        return false;
    bool ok = false;
    int count = sk_GENERAL_NAME_num(names);
    for (int i = 0; i < count && !ok; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char tmp[INET6_ADDRSTRLEN];
        const char *s;
        size_t len;
        if (!name_string(g, tmp, sizeof(tmp), &s, &len))
            continue;
        for (size_t j = 0; j < n && !ok; j++)
            ok = m[j].type == g->type && match_one(&m[j], s, len);
    }
    GENERAL_NAMES_free(names);
    return ok;
}

char *pl_tls_san_first_uri(X509 *cert)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!names)
        return NULL;
    char *out = NULL;
    int count = sk_GENERAL_NAME_num(names);
    for (int i = 0; i < count && !out; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char tmp[INET6_ADDRSTRLEN];
        const char *s;
        size_t len;
        if (g->type == GEN_URI && name_string(g, tmp, sizeof(tmp), &s, &len))
            out = pl_strndup(s, len);
    }
    GENERAL_NAMES_free(names);
    return out;
}
