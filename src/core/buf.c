/* Chained byte buffers over a per-thread pool of fixed-size slices. */
#include "core/buf.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"

/* Slices kept per thread for reuse: 256 x 16 KiB = 4 MiB at most. Beyond that, freed. */
#define PL_BUF_POOL_MAX 256
/* Fresh slices a single read may fill (64 KiB plus the tail's free space). */
#define PL_BUF_READ_SLICES 4
/* Segments a single writev hands to the kernel. */
#define PL_BUF_WRITE_IOV 64
/* Moving a slice holding at most this many bytes copies them into dst's tail instead of
 * relinking, so that many small moves do not leave dst a chain of nearly empty slices. */
#define PL_BUF_COPY_SMALL 1024

struct pl_buf_pool {
    struct pl_buf_slice *free;
    size_t n;
};

static __thread struct pl_buf_pool pool;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_thread_exit(void *arg)
{
    (void)arg;
    pl_buf_pool_trim();
}

static void pool_key_create(void)
{
    if (pthread_key_create(&pool_key, pool_thread_exit) != 0)
        pl_die("buf: pthread_key_create failed");
}

static struct pl_buf_slice *slice_new_cap(size_t cap)
{
    struct pl_buf_slice *s;
    if (cap == PL_BUF_SLICE_SIZE && pool.free) {
        s = pool.free;
        pool.free = s->next;
        pool.n--;
    } else {
        if (cap > UINT32_MAX)
            pl_die("buf: slice of %zu bytes", cap);
        if (cap == PL_BUF_SLICE_SIZE) {
            /* First pooled slice of this thread: arrange for the pool to be trimmed at exit. */
            pthread_once(&pool_once, pool_key_create);
            if (!pthread_getspecific(pool_key))
                pthread_setspecific(pool_key, &pool);
        }
        s = pl_malloc(sizeof(*s) + cap);
        s->cap = (uint32_t)cap;
    }
    s->next = NULL;
    s->start = s->end = 0;
    return s;
}

static struct pl_buf_slice *slice_new(void)
{
    return slice_new_cap(PL_BUF_SLICE_SIZE);
}

static void slice_put(struct pl_buf_slice *s)
{
    if (s->cap == PL_BUF_SLICE_SIZE && pool.n < PL_BUF_POOL_MAX) {
        s->next = pool.free;
        pool.free = s;
        pool.n++;
    } else {
        free(s);
    }
}

void pl_buf_pool_trim(void)
{
    while (pool.free) {
        struct pl_buf_slice *s = pool.free;
        pool.free = s->next;
        free(s);
    }
    pool.n = 0;
}

void pl_buf_init(struct pl_buf *b)
{
    b->head = b->tail = NULL;
    b->len = 0;
    b->read_slices = 0;
}

void pl_buf_free(struct pl_buf *b)
{
    struct pl_buf_slice *s = b->head;
    while (s) {
        struct pl_buf_slice *n = s->next;
        slice_put(s);
        s = n;
    }
    pl_buf_init(b);
}

static void link_tail(struct pl_buf *b, struct pl_buf_slice *s)
{
    s->next = NULL;
    if (b->tail)
        b->tail->next = s;
    else
        b->head = s;
    b->tail = s;
}

static size_t tail_room(const struct pl_buf *b)
{
    return b->tail ? b->tail->cap - b->tail->end : 0;
}

struct pl_buf_slice *pl_buf_slice_new(void)
{
    return slice_new();
}

void pl_buf_append_slice(struct pl_buf *b, struct pl_buf_slice *s)
{
    if (s->end <= s->start) {
        slice_put(s);
        return;
    }
    b->len += s->end - s->start;
    link_tail(b, s);
}

void pl_buf_append(struct pl_buf *b, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        size_t room = tail_room(b);
        if (room == 0) {
            link_tail(b, slice_new());
            room = b->tail->cap;
        }
        size_t n = len < room ? len : room;
        memcpy(b->tail->data + b->tail->end, p, n);
        b->tail->end += (uint32_t)n;
        b->len += n;
        p += n;
        len -= n;
    }
}

char *pl_buf_reserve(struct pl_buf *b, size_t n)
{
    if (tail_room(b) < n)
        link_tail(b, slice_new_cap(n > PL_BUF_SLICE_SIZE ? n : PL_BUF_SLICE_SIZE));
    return b->tail->data + b->tail->end;
}

void pl_buf_printf(struct pl_buf *b, const char *fmt, ...)
{
    va_list ap;
    if (tail_room(b) == 0)
        link_tail(b, slice_new());
    size_t room = tail_room(b);
    char *dst = room ? b->tail->data + b->tail->end : NULL;
    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        pl_die("buf: vsnprintf failed");
    if ((size_t)n < room) { /* fitted (with its NUL, which we do not count) */
        b->tail->end += (uint32_t)n;
        b->len += (size_t)n;
        return;
    }
    char *tmp = pl_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    pl_buf_append(b, tmp, (size_t)n);
    free(tmp);
}

/* Unlinks and returns the head slice. */
static struct pl_buf_slice *unlink_head(struct pl_buf *b)
{
    struct pl_buf_slice *s = b->head;
    b->head = s->next;
    if (!b->head)
        b->tail = NULL;
    s->next = NULL;
    b->len -= s->end - s->start;
    return s;
}

void pl_buf_move(struct pl_buf *dst, struct pl_buf *src, size_t len)
{
    if (len > src->len)
        len = src->len;
    while (len > 0) {
        struct pl_buf_slice *s = src->head;
        size_t have = s->end - s->start;
        if (have == 0) {
            slice_put(unlink_head(src));
            continue;
        }
        if (have <= len && (have > PL_BUF_COPY_SMALL || tail_room(dst) < have)) {
            unlink_head(src);
            link_tail(dst, s);
            dst->len += have;
            len -= have;
            continue;
        }
        /* A partial slice, or a small one that fits dst's tail: copy. */
        size_t n = have < len ? have : len;
        pl_buf_append(dst, s->data + s->start, n);
        pl_buf_drain(src, n);
        len -= n;
    }
}

void pl_buf_drain(struct pl_buf *b, size_t len)
{
    if (len > b->len)
        len = b->len;
    while (len > 0) {
        struct pl_buf_slice *s = b->head;
        size_t have = s->end - s->start;
        if (have <= len) {
            slice_put(unlink_head(b));
            len -= have;
        } else {
            s->start += (uint32_t)len;
            b->len -= len;
            len = 0;
        }
    }
}

size_t pl_buf_copyout(const struct pl_buf *b, size_t off, void *out, size_t len)
{
    char *o = out;
    size_t done = 0;
    for (const struct pl_buf_slice *s = b->head; s && done < len; s = s->next) {
        size_t have = s->end - s->start;
        if (off >= have) {
            off -= have;
            continue;
        }
        size_t n = have - off;
        if (n > len - done)
            n = len - done;
        memcpy(o + done, s->data + s->start + off, n);
        done += n;
        off = 0;
    }
    return done;
}

char *pl_buf_linearize(struct pl_buf *b, size_t len)
{
    if (len > b->len)
        pl_die("buf: linearize %zu of %zu bytes", len, b->len);
    if (len == 0)
        return b->head ? b->head->data + b->head->start : NULL;
    struct pl_buf_slice *h = b->head;
    if ((size_t)(h->end - h->start) >= len)
        return h->data + h->start;
    /* Spans slices: gather into one slice big enough and put it in front. */
    struct pl_buf_slice *s = slice_new_cap(len > PL_BUF_SLICE_SIZE ? len : PL_BUF_SLICE_SIZE);
    pl_buf_copyout(b, 0, s->data, len);
    s->end = (uint32_t)len;
    size_t total = b->len;
    pl_buf_drain(b, len);
    if (b->len == 0) {
        pl_buf_free(b);
        link_tail(b, s);
    } else {
        s->next = b->head;
        b->head = s;
    }
    b->len = total;
    return s->data;
}

size_t pl_buf_peek_iov(const struct pl_buf *b, struct iovec *iov, size_t max)
{
    size_t n = 0;
    for (const struct pl_buf_slice *s = b->head; s && n < max; s = s->next) {
        if (s->end == s->start)
            continue;
        iov[n].iov_base = (char *)s->data + s->start;
        iov[n].iov_len = s->end - s->start;
        n++;
    }
    return n;
}

ssize_t pl_buf_read_fd(struct pl_buf *b, int fd, size_t max)
{
    struct iovec iov[PL_BUF_READ_SLICES + 1];
    struct pl_buf_slice *fresh[PL_BUF_READ_SLICES];
    size_t niov = 0, nfresh = 0, want = 0;
    if (max == 0)
        return 0;
    size_t room = tail_room(b);
    if (room > 0) {
        size_t n = room < max ? room : max;
        iov[niov].iov_base = b->tail->data + b->tail->end;
        iov[niov++].iov_len = n;
        want += n;
    }
    /* small messages need one slice: taking four from the pool and putting three back per read
     * costs more than the read of a request; a read that fills everything offers more next time */
    size_t offer = b->read_slices ? b->read_slices : 1;
    while (want < max && nfresh < offer) {
        struct pl_buf_slice *s = slice_new();
        size_t n = max - want < s->cap ? max - want : s->cap;
        fresh[nfresh++] = s;
        iov[niov].iov_base = s->data;
        iov[niov++].iov_len = n;
        want += n;
    }
    /* one segment (the common case: a small message into a fresh slice) goes through recv(),
     * which the kernel serves without copying in and checking an iovec array or taking the
     * vfs read path: about 0.1-0.3 us less per call on loopback */
    ssize_t r;
    do
        r = niov == 1 ? recv(fd, iov[0].iov_base, iov[0].iov_len, 0) : readv(fd, iov, (int)niov);
    while (r < 0 && errno == EINTR);
    size_t got = r > 0 ? (size_t)r : 0;
    if (got == want && got < max && offer < PL_BUF_READ_SLICES)
        b->read_slices = (uint32_t)offer * 2;
    else if (r > 0 && got <= PL_BUF_SLICE_SIZE)
        b->read_slices = 0;
    b->len += got;
    if (room > 0) {
        size_t n = got < iov[0].iov_len ? got : iov[0].iov_len;
        b->tail->end += (uint32_t)n;
        got -= n;
    }
    int saved = errno;
    for (size_t i = 0; i < nfresh; i++) {
        if (got > 0) {
            size_t n = got < fresh[i]->cap ? got : fresh[i]->cap;
            fresh[i]->end = (uint32_t)n;
            got -= n;
            link_tail(b, fresh[i]);
        } else {
            slice_put(fresh[i]);
        }
    }
    errno = saved;
    return r;
}

size_t pl_buf_read_prepare(size_t max, struct iovec *seg, struct pl_buf_slice **fresh)
{
    *fresh = NULL;
    if (max == 0)
        return 0;
    *fresh = slice_new();
    seg->iov_base = (*fresh)->data;
    seg->iov_len = max < (*fresh)->cap ? max : (*fresh)->cap;
    return seg->iov_len;
}

void pl_buf_read_commit(struct pl_buf *b, struct pl_buf_slice *fresh, size_t offered, size_t got)
{
    if (!fresh)
        return;
    /* a read that filled what was offered hints at a bulk transfer: pl_buf_read_fd's bigger
     * reads suit it better (see pl_buf_read_wants_more) */
    b->read_slices = got > 0 && got == offered ? 2 : 0;
    if (got == 0) {
        slice_put(fresh);
        return;
    }
    b->len += got;
    if (got <= PL_BUF_COPY_SMALL && tail_room(b) >= got) { /* keep the chain short */
        memcpy(b->tail->data + b->tail->end, fresh->data, got);
        b->tail->end += (uint32_t)got;
        slice_put(fresh);
        return;
    }
    fresh->end = (uint32_t)got;
    link_tail(b, fresh);
}

ssize_t pl_buf_write_fd(struct pl_buf *b, int fd)
{
    struct iovec iov[PL_BUF_WRITE_IOV];
    size_t n = pl_buf_peek_iov(b, iov, PL_BUF_WRITE_IOV);
    if (n == 0)
        return 0;
    ssize_t r;
    do
        r = writev(fd, iov, (int)n);
    while (r < 0 && errno == EINTR);
    if (r > 0)
        pl_buf_drain(b, (size_t)r);
    return r;
}
