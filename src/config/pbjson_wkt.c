/* Well-known type detection, base64, Duration and Timestamp text forms, UTF-8 checks. */
#include "config/pbjson_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

enum pl_wkt pl_wkt_kind(const ProtobufCMessageDescriptor *d)
{
    static const struct {
        const char *name;
        enum pl_wkt k;
    } t[] = {
        {"Any", PL_WKT_ANY},
        {"Duration", PL_WKT_DURATION},
        {"Timestamp", PL_WKT_TIMESTAMP},
        {"Struct", PL_WKT_STRUCT},
        {"Value", PL_WKT_VALUE},
        {"ListValue", PL_WKT_LIST},
        {"Empty", PL_WKT_EMPTY},
        {"FieldMask", PL_WKT_FIELDMASK},
        {"DoubleValue", PL_WKT_WRAPPER},
        {"FloatValue", PL_WKT_WRAPPER},
        {"Int64Value", PL_WKT_WRAPPER},
        {"UInt64Value", PL_WKT_WRAPPER},
        {"Int32Value", PL_WKT_WRAPPER},
        {"UInt32Value", PL_WKT_WRAPPER},
        {"BoolValue", PL_WKT_WRAPPER},
        {"StringValue", PL_WKT_WRAPPER},
        {"BytesValue", PL_WKT_WRAPPER},
    };
    if (strncmp(d->name, "google.protobuf.", 16) != 0)
        return PL_WKT_NONE;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(d->name + 16, t[i].name))
            return t[i].k;
    return PL_WKT_NONE;
}

bool pl_wkt_any_uses_value(enum pl_wkt k)
{
    return k != PL_WKT_NONE && k != PL_WKT_EMPTY;
}

bool pl_is_map_field(const ProtobufCFieldDescriptor *fd)
{
    if (fd->label != PROTOBUF_C_LABEL_REPEATED || fd->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *e = fd->descriptor;
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        strcmp(e->fields[0].name, "key") != 0 || strcmp(e->fields[1].name, "value") != 0)
        return false;
    /* protoc names the entry after the field: foo_bar -> FooBarEntry */
    const char *s = e->short_name, *n = fd->name;
    bool up = true;
    for (; *n; n++) {
        if (*n == '_') {
            up = true;
            continue;
        }
        char c = *n;
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = false;
        if (*s++ != c)
            return false;
    }
    return !strcmp(s, "Entry");
}

size_t pl_type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

size_t pl_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return k;
}

bool pl_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = pl_utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int pl_base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    while (n > 0 && s[n - 1] == '=' && n % 4 != 1)
        n--;
    if (n % 4 == 1)
        return -1;
    uint8_t *d = pl_malloc(n / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            free(d);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out = d;
    *outlen = o;
    return 0;
}

char *pl_base64_encode(const uint8_t *d, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *s = pl_malloc((n + 2) / 3 * 4 + 1), *p = s;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        *p++ = a[v >> 18];
        *p++ = a[(v >> 12) & 63];
        *p++ = i + 1 < n ? a[(v >> 6) & 63] : '=';
        *p++ = i + 2 < n ? a[v & 63] : '=';
    }
    *p = 0;
    return s;
}

#define MAX_DURATION_SECONDS 315576000000LL
#define MIN_TIMESTAMP        -62135596800LL /* 0001-01-01T00:00:00Z */
#define MAX_TIMESTAMP        253402300799LL /* 9999-12-31T23:59:59Z */

static bool dig(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads ".ddddddddd" (1..9 digits) into nanos; returns chars consumed or -1. */
static int read_frac(const char *s, int32_t *nanos)
{
    *nanos = 0;
    if (*s != '.')
        return 0;
    int i = 1;
    int32_t v = 0;
    for (; dig(s[i]); i++) {
        if (i > 9)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 1)
        return -1;
    for (int k = i; k <= 9; k++)
        v *= 10;
    *nanos = v;
    return i;
}

int pl_duration_parse(const char *s, int64_t *sec, int32_t *nanos)
{
    bool neg = *s == '-';
    if (neg)
        s++;
    if (!dig(*s))
        return -1;
    int64_t v = 0;
    for (; dig(*s); s++) {
        if (v > MAX_DURATION_SECONDS)
            return -2;
        v = v * 10 + (*s - '0');
    }
    int32_t ns;
    int k = read_frac(s, &ns);
    if (k < 0)
        return -1;
    s += k;
    if (s[0] != 's' || s[1])
        return -1;
    if (v > MAX_DURATION_SECONDS)
        return -2;
    *sec = neg ? -v : v;
    *nanos = neg ? -ns : ns;
    return 0;
}

static void frac(char *buf, size_t cap, int32_t ns)
{
    if (ns == 0)
        buf[0] = 0;
    else if (ns % 1000000 == 0)
        snprintf(buf, cap, ".%03d", ns / 1000000);
    else if (ns % 1000 == 0)
        snprintf(buf, cap, ".%06d", ns / 1000);
    else
        snprintf(buf, cap, ".%09d", ns);
}

void pl_duration_format(int64_t sec, int32_t nanos, char buf[PL_TIME_BUF])
{
    bool neg = sec < 0 || nanos < 0;
    uint64_t s = sec < 0 ? 0 - (uint64_t)sec : (uint64_t)sec;
    int32_t ns = nanos < 0 ? -nanos : nanos;
    if (ns >= 1000000000)
        ns = 999999999;
    char f[16];
    frac(f, sizeof(f), ns);
    snprintf(buf, PL_TIME_BUF, "%s%llu%ss", neg ? "-" : "", (unsigned long long)s, f);
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!dig(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int pl_timestamp_parse(const char *s, int64_t *sec, int32_t *nanos)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
    int h = num(s + 11, 2), mi = num(s + 14, 2), se = num(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 59)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return -1;
    int32_t ns;
    int k = read_frac(s + 19, &ns);
    if (k < 0)
        return -1;
    const char *z = s + 19 + k;
    int64_t off = 0;
    if ((z[0] == 'Z' || z[0] == 'z') && !z[1]) {
        off = 0;
    } else if ((z[0] == '+' || z[0] == '-') && strlen(z) == 6 && z[3] == ':') {
        int oh = num(z + 1, 2), om = num(z + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = (oh * 3600 + om * 60) * (z[0] == '-' ? -1 : 1);
    } else {
        return -1;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    if (t < MIN_TIMESTAMP || t > MAX_TIMESTAMP)
        return -2;
    *sec = t;
    *nanos = ns;
    return 0;
}

void pl_timestamp_format(int64_t sec, int32_t nanos, char buf[PL_TIME_BUF])
{
    if (nanos < 0 || nanos >= 1000000000)
        nanos = 0;
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    char f[16];
    frac(f, sizeof(f), nanos);
    snprintf(buf, PL_TIME_BUF, "%04lld-%02d-%02dT%02d:%02d:%02d%sZ", (long long)y, m, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), f);
}

/* ---- scalar text ---- */

/* A JSON number: -?digits(.digits)?([eE][+-]?digits)? (a leading '+' is tolerated). */
bool pl_pbjson_number_text(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9')
        s++;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (*s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == 0;
}

bool pl_pbjson_int_text(const char *s)
{
    if (*s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Parses a signed integer within [lo, hi]; 0, -1 (not an integer) or -2 (out of range). */
int pl_pbjson_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (pl_pbjson_int_text(s)) {
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (errno == ERANGE || v < lo || v > hi)
            return -2;
        *out = v;
        return 0;
    }
    if (!pl_pbjson_number_text(s))
        return -1;
    double d = strtod(s, NULL);
    if (d != floor(d))
        return -1;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d < (double)lo ||
        d > (double)hi)
        return -2;
    *out = (int64_t)d;
    return 0;
}

int pl_pbjson_parse_uint(const char *s, uint64_t hi, uint64_t *out)
{
    if (pl_pbjson_int_text(s) && s[0] != '-') {
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno == ERANGE || v > hi)
            return -2;
        *out = v;
        return 0;
    }
    if (!pl_pbjson_number_text(s))
        return -1;
    double d = strtod(s, NULL);
    if (d != floor(d))
        return -1;
    if (d == 0) {
        *out = 0;
        return 0;
    }
    if (!(d > 0 && d < 18446744073709551616.0) || d > (double)hi)
        return -2;
    *out = (uint64_t)d;
    return 0;
}

int pl_pbjson_parse_double(const char *s, bool plain, double *out)
{
    static const char *const nan_[] = {"NaN", ".nan", ".NaN", ".NAN"};
    static const char *const inf[] = {"Infinity", ".inf", ".Inf", ".INF", "+.inf", "+.Inf"};
    static const char *const ninf[] = {"-Infinity", "-.inf", "-.Inf", "-.INF"};
    size_t nspecial = plain ? 4 : 1;
    for (size_t i = 0; i < nspecial; i++)
        if (!strcmp(s, nan_[i]))
            return *out = NAN, 0;
    for (size_t i = 0; i < (plain ? 6 : 1); i++)
        if (!strcmp(s, inf[i]))
            return *out = INFINITY, 0;
    for (size_t i = 0; i < nspecial; i++)
        if (!strcmp(s, ninf[i]))
            return *out = -INFINITY, 0;
    if (!pl_pbjson_number_text(s))
        return -1;
    errno = 0;
    double d = strtod(s, NULL);
    if (errno == ERANGE && isinf(d))
        return -2;
    *out = d;
    return 0;
}

int pl_pbjson_parse_bool(const char *s, bool plain, protobuf_c_boolean *out)
{
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const f[] = {"false", "False", "FALSE", "no", "No",
                                    "NO",    "off",   "Off",   "OFF"};
    size_t n = plain ? 9 : 1;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, t[i]))
            return *out = 1, 0;
        if (!strcmp(s, f[i]))
            return *out = 0, 0;
    }
    return -1;
}
