#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"

/* Fills p with a position-dependent pattern so misplaced bytes show up. */
static void pattern(char *p, size_t n, size_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i + seed) * 131 + (i >> 8));
}

static void check_contents(const struct pl_buf *b, const char *want, size_t n)
{
    cr_assert_eq(b->len, n);
    char *got = malloc(n + 1);
    cr_assert_eq(pl_buf_copyout(b, 0, got, n + 1), n);
    cr_assert(memcmp(got, want, n) == 0);
    free(got);
    /* The chain's lengths add up to len. */
    size_t sum = 0;
    for (const struct pl_buf_slice *s = b->head; s; s = s->next) {
        cr_assert(s->start <= s->end && s->end <= s->cap);
        sum += s->end - s->start;
        if (!s->next)
            cr_assert_eq(s, b->tail);
    }
    cr_assert_eq(sum, n);
}

Test(buf, append_spans_slices)
{
    size_t n = PL_BUF_SLICE_SIZE * 3 + 77;
    char *data = malloc(n);
    pattern(data, n, 1);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, data, 10);
    pl_buf_append(&b, data + 10, n - 10);
    check_contents(&b, data, n);
    pl_buf_drain(&b, 5);
    check_contents(&b, data + 5, n - 5);
    pl_buf_drain(&b, PL_BUF_SLICE_SIZE);
    check_contents(&b, data + 5 + PL_BUF_SLICE_SIZE, n - 5 - PL_BUF_SLICE_SIZE);
    pl_buf_drain(&b, n);
    cr_assert_eq(b.len, 0);
    cr_assert_null(b.head);
    pl_buf_free(&b);
    free(data);
    pl_buf_pool_trim();
}

Test(buf, printf_small_and_large)
{
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_printf(&b, "%s=%d;", "a", 42);
    char big[40000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    pl_buf_printf(&b, "[%s]", big);
    cr_assert_eq(b.len, 5 + sizeof(big) - 1 + 2);
    char head[6] = {0};
    pl_buf_copyout(&b, 0, head, 5);
    cr_assert_str_eq(head, "a=42;");
    char c;
    pl_buf_copyout(&b, b.len - 1, &c, 1);
    cr_assert_eq(c, ']');
    pl_buf_free(&b);
    pl_buf_pool_trim();
}

Test(buf, move_is_byte_exact_for_every_split)
{
    size_t n = PL_BUF_SLICE_SIZE * 2 + 500;
    char *data = malloc(n);
    pattern(data, n, 7);
    size_t cuts[] = {0,
                     1,
                     100,
                     1024,
                     1025,
                     PL_BUF_SLICE_SIZE - 1,
                     PL_BUF_SLICE_SIZE,
                     PL_BUF_SLICE_SIZE + 1,
                     n - 1,
                     n,
                     n + 10};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct pl_buf src = PL_BUF_INIT, dst = PL_BUF_INIT;
        pl_buf_append(&dst, "prefix", 6);
        pl_buf_append(&src, data, n);
        pl_buf_drain(&src, 3); /* partial first slice */
        size_t moved = cuts[i] < n - 3 ? cuts[i] : n - 3;
        pl_buf_move(&dst, &src, cuts[i]);
        char *want = malloc(6 + moved);
        memcpy(want, "prefix", 6);
        memcpy(want + 6, data + 3, moved);
        check_contents(&dst, want, 6 + moved);
        check_contents(&src, data + 3 + moved, n - 3 - moved);
        /* Appending after a move still lands at the end. */
        pl_buf_append(&dst, "!", 1);
        char last;
        pl_buf_copyout(&dst, dst.len - 1, &last, 1);
        cr_assert_eq(last, '!');
        free(want);
        pl_buf_free(&src);
        pl_buf_free(&dst);
    }
    free(data);
    pl_buf_pool_trim();
}

Test(buf, move_relinks_whole_slices)
{
    struct pl_buf src = PL_BUF_INIT, dst = PL_BUF_INIT;
    char *data = malloc(PL_BUF_SLICE_SIZE * 2);
    pattern(data, PL_BUF_SLICE_SIZE * 2, 3);
    pl_buf_append(&src, data, PL_BUF_SLICE_SIZE * 2);
    struct pl_buf_slice *first = src.head, *second = first->next;
    pl_buf_move(&dst, &src, src.len);
    cr_assert_eq(dst.head, first);
    cr_assert_eq(dst.head->next, second);
    cr_assert_eq(src.len, 0);
    cr_assert_null(src.head);
    cr_assert_null(src.tail);
    check_contents(&dst, data, PL_BUF_SLICE_SIZE * 2);
    free(data);
    pl_buf_free(&dst);
    pl_buf_pool_trim();
}

Test(buf, many_small_moves_stay_compact)
{
    struct pl_buf src = PL_BUF_INIT, dst = PL_BUF_INIT;
    for (int i = 0; i < 1000; i++) {
        pl_buf_append(&src, "0123456789", 10);
        pl_buf_move(&dst, &src, 10);
    }
    cr_assert_eq(dst.len, 10000);
    int slices = 0;
    for (struct pl_buf_slice *s = dst.head; s; s = s->next)
        slices++;
    cr_assert(slices <= 2, "%d slices", slices);
    pl_buf_free(&src);
    pl_buf_free(&dst);
    pl_buf_pool_trim();
}

Test(buf, linearize_across_slices)
{
    size_t n = PL_BUF_SLICE_SIZE * 3;
    char *data = malloc(n);
    pattern(data, n, 11);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, data, n);
    pl_buf_drain(&b, 10);
    /* Within the first slice: no copy. */
    char *p = pl_buf_linearize(&b, 100);
    cr_assert_eq(p, b.head->data + b.head->start);
    cr_assert(memcmp(p, data + 10, 100) == 0);
    /* Across two slices. */
    p = pl_buf_linearize(&b, PL_BUF_SLICE_SIZE);
    cr_assert(memcmp(p, data + 10, PL_BUF_SLICE_SIZE) == 0);
    check_contents(&b, data + 10, n - 10);
    /* Larger than one slice. */
    p = pl_buf_linearize(&b, PL_BUF_SLICE_SIZE * 2 + 5);
    cr_assert(memcmp(p, data + 10, PL_BUF_SLICE_SIZE * 2 + 5) == 0);
    check_contents(&b, data + 10, n - 10);
    /* Whole buffer. */
    p = pl_buf_linearize(&b, b.len);
    cr_assert(memcmp(p, data + 10, n - 10) == 0);
    check_contents(&b, data + 10, n - 10);
    pl_buf_free(&b);
    free(data);
    pl_buf_pool_trim();
}

Test(buf, peek_iov_covers_everything)
{
    size_t n = PL_BUF_SLICE_SIZE * 2 + 9;
    char *data = malloc(n);
    pattern(data, n, 5);
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, data, n);
    pl_buf_drain(&b, 4);
    struct iovec iov[8];
    size_t cnt = pl_buf_peek_iov(&b, iov, 8);
    cr_assert_eq(cnt, 3);
    size_t off = 0;
    for (size_t i = 0; i < cnt; i++) {
        cr_assert(memcmp(iov[i].iov_base, data + 4 + off, iov[i].iov_len) == 0);
        off += iov[i].iov_len;
    }
    cr_assert_eq(off, n - 4);
    cr_assert_eq(pl_buf_peek_iov(&b, iov, 1), 1);
    pl_buf_free(&b);
    free(data);
    pl_buf_pool_trim();
}

Test(buf, fd_round_trip_through_socketpair)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    size_t n = 300000;
    char *data = malloc(n);
    pattern(data, n, 13);
    struct pl_buf out = PL_BUF_INIT, in = PL_BUF_INIT;
    pl_buf_append(&out, "x", 1); /* leaves a partial tail the reader side does not have */
    pl_buf_drain(&out, 1);
    pl_buf_append(&out, data, n);
    cr_assert_eq(pl_buf_read_fd(&in, sv[1], 1000), -1);
    cr_assert_eq(errno, EAGAIN);
    for (int rounds = 0; (out.len > 0 || in.len < n) && rounds < 100000; rounds++) {
        if (out.len > 0) {
            ssize_t w = pl_buf_write_fd(&out, sv[0]);
            cr_assert(w > 0 || (w < 0 && errno == EAGAIN));
        }
        ssize_t r = pl_buf_read_fd(&in, sv[1], rounds % 2 ? 777 : SIZE_MAX);
        cr_assert(r > 0 || (r < 0 && errno == EAGAIN));
        if (rounds % 2)
            cr_assert(r <= 777);
    }
    check_contents(&in, data, n);
    close(sv[0]);
    cr_assert_eq(pl_buf_read_fd(&in, sv[1], 100), 0); /* EOF */
    cr_assert_eq(in.len, n);
    close(sv[1]);
    pl_buf_free(&in);
    pl_buf_free(&out);
    free(data);
    pl_buf_pool_trim();
}

Test(buf, reserve_commit_is_contiguous)
{
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_append(&b, "x", 1);
    char *p = pl_buf_reserve(&b, 5);
    memcpy(p, "hello", 5);
    pl_buf_commit(&b, 5);
    check_contents(&b, "xhello", 6);
    /* more than the last slice has left: a new slice, contiguous */
    size_t n = PL_BUF_SLICE_SIZE - 2;
    p = pl_buf_reserve(&b, n);
    memset(p, 'z', n);
    pl_buf_commit(&b, n);
    cr_assert_eq(b.len, 6 + n);
    cr_assert_neq(b.head, b.tail);
    /* larger than a slice */
    p = pl_buf_reserve(&b, PL_BUF_SLICE_SIZE * 2);
    memset(p, 'w', PL_BUF_SLICE_SIZE * 2);
    pl_buf_commit(&b, PL_BUF_SLICE_SIZE * 2);
    cr_assert_eq(b.len, 6 + n + PL_BUF_SLICE_SIZE * 2);
    pl_buf_free(&b);
    pl_buf_pool_trim();
}

Test(buf, printf_into_empty_buffer)
{
    struct pl_buf b = PL_BUF_INIT;
    pl_buf_printf(&b, "%d-%s", 42, "x");
    check_contents(&b, "42-x", 4);
    pl_buf_free(&b);
    pl_buf_pool_trim();
}
