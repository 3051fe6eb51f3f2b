#include <criterion/criterion.h>
#include <string.h>

#include "http/headers.h"

Test(headers, lower_every_byte_and_length)
{
    char src[40], dst[40];
    for (int c = 0; c < 256; c++) {
        for (size_t n = 1; n <= 24; n++) {
            for (size_t k = 0; k < n; k++)
                src[k] = (char)(k == n - 1 ? c : 'Q' + (int)(k % 3)); /* mixed case around c */
            pl_header_lower(dst, src, n);
            for (size_t k = 0; k < n; k++) {
                unsigned char s = (unsigned char)src[k];
                unsigned char want = s >= 'A' && s <= 'Z' ? (unsigned char)(s + 32) : s;
                cr_assert_eq((unsigned char)dst[k], want, "byte %d len %zu at %zu", c, n, k);
            }
        }
    }
    char in_place[] = "Content-LENGTH-X_Y@[`{";
    pl_header_lower(in_place, in_place, strlen(in_place));
    cr_assert_str_eq(in_place, "content-length-x_y@[`{");
}

Test(headers, set_replaces_every_field_of_the_name_and_appends)
{
    struct pl_arena a = PL_ARENA_INIT;
    struct pl_headers h = {0};
    pl_headers_add_ref(&h, &a, "a", 1, "1", 1);
    pl_headers_add_ref(&h, &a, "x-id", 4, "old", 3);
    pl_headers_add_ref(&h, &a, "b", 1, "2", 1);
    pl_headers_add_ref(&h, &a, "x-id", 4, "older", 5);
    cr_assert_eq(pl_headers_remove(&h, "nope", 4), 0);
    cr_assert_eq(h.n, 4);
    pl_headers_set(&h, &a, "x-id", 4, "new", 3);
    cr_assert_eq(h.n, 3);
    cr_assert_str_eq(h.v[0].name, "a");
    cr_assert_str_eq(h.v[1].name, "b");
    cr_assert_str_eq(h.v[2].name, "x-id");
    cr_assert_str_eq(h.v[2].value, "new");
    const struct pl_header *f = pl_headers_get_lit(&h, "x-id");
    cr_assert(f && f->value_len == 3);
    cr_assert_null(pl_headers_get_lit(&h, "x-i"));
    pl_headers_add_copy(&h, &a, "X-Up", 4, "V", 1);
    cr_assert_str_eq(h.v[3].name, "x-up");
    cr_assert_str_eq(h.v[3].value, "V");
    for (int i = 0; i < 40; i++) /* grows past the first array */
        pl_headers_add_copy(&h, &a, "k", 1, "v", 1);
    cr_assert_eq(pl_headers_remove(&h, "k", 1), 40);
    cr_assert_eq(h.n, 4);
    pl_arena_free(&a);
}

Test(headers, name_eq_any_case)
{
    cr_assert(pl_header_name_eq("Content-Length", 14, "content-length", 14));
    cr_assert(pl_header_name_eq("TRANSFER-ENCODING", 17, "transfer-encoding", 17));
    cr_assert(pl_header_name_eq("HoSt", 4, "host", 4));
    cr_assert_not(pl_header_name_eq("content\rlength", 14, "content-length", 14));
    cr_assert_not(pl_header_name_eq("content-lengtH!", 15, "content-length!", 14));
    cr_assert_not(pl_header_name_eq("connectioN", 10, "connectiom", 10));
    cr_assert_not(pl_header_name_eq("Xontent-Length", 14, "content-length", 14));
    char lc[20], name[20];
    for (int c = 0; c < 256; c++) { /* every byte, at the first and the last position */
        for (int at = 0; at < 12; at += 11) {
            memcpy(lc, "abcdefgh-ijk", 12);
            memcpy(name, lc, 12);
            name[at] = (char)c;
            unsigned char want = (unsigned char)lc[at];
            bool eq = c == want || c == want - 32;
            cr_assert_eq(pl_header_name_eq(name, 12, lc, 12), eq, "byte %d at %d", c, at);
        }
    }
}
