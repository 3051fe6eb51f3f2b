/* Helpers shared by the proto3 JSON decoder (pbjson.c) and printer (pbjson_print.c). */
#ifndef PL_CONFIG_PBJSON_INTERNAL_H
#define PL_CONFIG_PBJSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Message types with their own JSON form. */
enum pl_wkt {
    PL_WKT_NONE,
    PL_WKT_ANY,
    PL_WKT_DURATION,
    PL_WKT_TIMESTAMP,
    PL_WKT_STRUCT,
    PL_WKT_VALUE,
    PL_WKT_LIST,
    PL_WKT_WRAPPER,
    PL_WKT_EMPTY,
    PL_WKT_FIELDMASK,
};

/* Which well-known type d is (by full name). */
enum pl_wkt pl_wkt_kind(const ProtobufCMessageDescriptor *d);
/* Whether an Any holding d puts the payload under "value" (every WKT but Empty). */
bool pl_wkt_any_uses_value(enum pl_wkt k);
/* Whether fd is a map<K,V> field (a repeated XxxEntry{key=1,value=2} nested in parent). */
bool pl_is_map_field(const ProtobufCFieldDescriptor *fd);
/* Bytes used by one value of a field type in a message or a repeated array. */
size_t pl_type_size(ProtobufCType t);

/* Whether s[0..n) is valid UTF-8 (no surrogates or overlongs). */
bool pl_utf8_valid(const char *s, size_t n);
/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
size_t pl_utf8_seq(const unsigned char *s, size_t n);
/* Decodes standard or URL-safe base64, padded or not; malloc'd *out. 0 or -1 (invalid). */
int pl_base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen);
/* Standard padded base64; malloc'd NUL-terminated result. */
char *pl_base64_encode(const uint8_t *d, size_t n);

#define PL_TIME_BUF 48
/* Parses "1.5s", "-0.000001s": 0, -1 (syntax) or -2 (range). */
int pl_duration_parse(const char *s, int64_t *sec, int32_t *nanos);
/* Formats a duration as protobuf does ("1.500s"). */
void pl_duration_format(int64_t sec, int32_t nanos, char buf[PL_TIME_BUF]);
/* Parses RFC 3339 ("1972-01-01T10:00:20.021Z", offsets allowed): 0, -1 (syntax), -2 (range). */
int pl_timestamp_parse(const char *s, int64_t *sec, int32_t *nanos);
/* Formats a timestamp in UTC with 0, 3, 6 or 9 fractional digits. */
void pl_timestamp_format(int64_t sec, int32_t nanos, char buf[PL_TIME_BUF]);

/* Whether s is a JSON number (a leading '+' is tolerated). */
bool pl_pbjson_number_text(const char *s);
/* Whether s is -?digits. */
bool pl_pbjson_int_text(const char *s);
/* Integer text (or an integral number such as 1e3) within [lo, hi]: 0, -1 (syntax), -2 (range). */
int pl_pbjson_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
int pl_pbjson_parse_uint(const char *s, uint64_t hi, uint64_t *out);
/* A double, "NaN", "Infinity", "-Infinity" (and YAML's .nan/.inf when plain): 0, -1, -2. */
int pl_pbjson_parse_double(const char *s, bool plain, double *out);
/* true/false (and YAML's yes/no/on/off when plain): 0 or -1. */
int pl_pbjson_parse_bool(const char *s, bool plain, protobuf_c_boolean *out);

#endif
