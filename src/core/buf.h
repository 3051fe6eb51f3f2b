/* Chained byte buffers: a list of fixed-size slices, so bytes move between buffers by relinking
 * slices (zero copy) and reads/writes use readv/writev. Slices come from a per-thread pool. */
#ifndef PL_CORE_BUF_H
#define PL_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define PL_BUF_SLICE_SIZE 16384 /* payload bytes per pooled slice */

struct pl_buf_slice {
    struct pl_buf_slice *next;
    uint32_t start; /* first unread byte */
    uint32_t end;   /* one past the last written byte */
    uint32_t cap;   /* bytes of data[] */
    char data[];
};

/* A byte queue: read from the front, written at the back. Not thread-safe (one owner). */
struct pl_buf {
    struct pl_buf_slice *head, *tail;
    size_t len;
    uint32_t read_slices; /* fresh slices pl_buf_read_fd offers next (0: one); it adapts */
};

#define PL_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, NULL, 0, 0                                                                           \
    }

/* Prepares an empty buffer (or use PL_BUF_INIT). */
void pl_buf_init(struct pl_buf *b);
/* Returns every slice to the pool; the buffer is empty and reusable. */
void pl_buf_free(struct pl_buf *b);
/* Appends a copy of len bytes. */
void pl_buf_append(struct pl_buf *b, const void *data, size_t len);
/* Returns n (> 0) contiguous writable bytes at the end of b, linking a new slice when the last one
 * has less room; write them, then pl_buf_commit how many were written. */
char *pl_buf_reserve(struct pl_buf *b, size_t n);
/* Makes the first n bytes of the last pl_buf_reserve part of the buffer. */
static inline void pl_buf_commit(struct pl_buf *b, size_t n)
{
    b->tail->end += (uint32_t)n;
    b->len += n;
}
/* Appends formatted text (not for the request path: see core/fmt.h). */
void pl_buf_printf(struct pl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Moves the first len bytes (at most src->len) of src to the end of dst: whole slices are
 * relinked; only a partial first or last slice is copied. */
void pl_buf_move(struct pl_buf *dst, struct pl_buf *src, size_t len);
/* Discards the first len bytes (at most b->len). */
void pl_buf_drain(struct pl_buf *b, size_t len);
/* Copies up to len bytes from offset off into out without consuming; returns bytes copied. */
size_t pl_buf_copyout(const struct pl_buf *b, size_t off, void *out, size_t len);
/* Makes the first len bytes (len <= b->len) contiguous and returns them; copies only when they
 * span slices (a request head split across reads). */
char *pl_buf_linearize(struct pl_buf *b, size_t len);
/* Fills iov with up to max segments covering the buffered bytes (for writev); returns count. */
size_t pl_buf_peek_iov(const struct pl_buf *b, struct iovec *iov, size_t max);
/* Reads from fd (a socket) into the buffer, up to max bytes; returns bytes read, 0 on EOF, or -1
 * with errno (EAGAIN when nothing is ready). Offers the last slice's room and one fresh slice, more
 * (up to four) after reads that filled everything offered. */
ssize_t pl_buf_read_fd(struct pl_buf *b, int fd, size_t max);
/* A read done elsewhere (an io_uring recv) in two steps: prepare offers one fresh slice, held
 * aside (*fresh; not in any buffer, so the one it is for may be drained or freed meanwhile), of up
 * to max bytes and returns its length; commit appends the got bytes the read put there (copied into
 * the last slice's room when they are few) and gives back what is not kept. commit with got 0 only
 * gives the slice back. */
size_t pl_buf_read_prepare(size_t max, struct iovec *seg, struct pl_buf_slice **fresh);
void pl_buf_read_commit(struct pl_buf *b, struct pl_buf_slice *fresh, size_t offered, size_t got);
/* True after a read that filled everything it was offered: more is likely waiting. */
static inline int pl_buf_read_wants_more(const struct pl_buf *b)
{
    return b->read_slices != 0;
}
/* Writes as much as fd takes and drains it; returns bytes written or -1 with errno. */
ssize_t pl_buf_write_fd(struct pl_buf *b, int fd);

/* Returns an empty pooled slice for a producer that writes in place (TLS decryption): fill
 * data[end..cap), advance end, then hand it to pl_buf_append_slice. */
struct pl_buf_slice *pl_buf_slice_new(void);
/* Appends slice s (its bytes [start, end)) to b, taking ownership; an empty s goes back to the
 * pool. */
void pl_buf_append_slice(struct pl_buf *b, struct pl_buf_slice *s);

/* Returns the calling thread's pooled slices to the allocator (thread exit, tests). */
void pl_buf_pool_trim(void);

#endif
