/* Integer formatting for the request path (header values, status lines, chunk sizes): no locale,
 * no varargs, no stdio. */
#ifndef PL_CORE_FMT_H
#define PL_CORE_FMT_H

#include <stddef.h>
#include <stdint.h>

#define PL_FMT_U64_MAX 21 /* bytes a decimal uint64_t needs, with its NUL */

/* Writes v in decimal and a NUL into out (>= PL_FMT_U64_MAX bytes); returns the digit count. */
static inline size_t pl_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* Writes v in lower-case hex (no prefix) and a NUL into out (>= 17 bytes); returns the digits. */
static inline size_t pl_fmt_hex(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

#endif
