/* Access log files: lock-free per-thread queues and one flusher thread per file.
 *
 * Each (thread, file) pair has a stream: a singly linked list of chunks that the thread
 * (single producer) appends whole lines to, publishing each line with a release store of the
 * chunk's committed length, and that the file's flusher (single consumer) writes out and frees.
 * A line never spans chunks, and the flusher writes one stream's committed bytes at a time, so
 * lines never interleave. The flusher wakes every second, or when a producer pokes its eventfd
 * (a chunk filled up, or 64 KiB are pending). Producers never block: past a backlog limit per
 * stream they drop lines and count them. Registration of a new stream (once per thread and
 * file) is a lock-free push; only compile/free/reopen take the registry mutex (main thread). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "http/access_log_internal.h"

#define CHUNK_SIZE   (64u * 1024)
#define POKE_BACKLOG (64u * 1024)
#define MAX_BACKLOG  (64u * 1024 * 1024)
#define FLUSH_MS     1000

struct chunk {
    _Atomic(struct chunk *) next;
    _Atomic size_t committed;
    size_t cap;
    char data[];
};

struct stream {
    struct chunk *tail; /* producer only */
    struct chunk *head; /* flusher only */
    size_t head_off;    /* flusher only */
    _Atomic size_t backlog;
    struct stream *next; /* immutable once pushed */
};

struct pl_al_file {
    char *path;
    int fd;
    bool own_fd; /* false for stdout/stderr */
    uint32_t id; /* index into each thread's stream table; never reused */
    int refs;    /* registry mutex */
    struct pl_al_file *next_file;
    _Atomic(struct stream *) streams;
    int efd;
    _Atomic bool poked, stop, reopen;
    bool write_failed; /* flusher only: log one error per failure streak */
    pthread_t thread;
    pthread_mutex_t cmu; /* pass counter for pl_access_log_flush_all */
    pthread_cond_t ccv;
    uint64_t passes;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pl_al_file *files;
static uint32_t next_id;
static _Atomic uint64_t dropped;

/* Per-thread: line scratch and the stream table indexed by file id. */
struct tls {
    struct pl_al_buf line;
    struct stream **streams;
    uint32_t n;
};
static _Thread_local struct tls *tls;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_destroy(void *p)
{
    struct tls *t = p;
    pl_al_buf_free(&t->line);
    free(t->streams);
    free(t);
}

static void tls_key_init(void)
{
    if (pthread_key_create(&tls_key, tls_destroy) != 0)
        pl_die("pthread_key_create failed");
}

static struct tls *tls_get(void)
{
    if (!tls) {
        pthread_once(&tls_once, tls_key_init);
        tls = pl_calloc(1, sizeof(*tls));
        pthread_setspecific(tls_key, tls);
    }
    return tls;
}

struct pl_al_buf *pl_al_tls_line(void)
{
    struct pl_al_buf *b = &tls_get()->line;
    b->len = 0;
    return b;
}

static struct chunk *chunk_new(size_t cap)
{
    struct chunk *c = pl_malloc(sizeof(*c) + cap);
    atomic_init(&c->next, NULL);
    atomic_init(&c->committed, 0);
    c->cap = cap;
    return c;
}

static void poke(struct pl_al_file *f)
{
    if (atomic_exchange_explicit(&f->poked, true, memory_order_acq_rel))
        return;
    uint64_t one = 1;
    ssize_t r = write(f->efd, &one, sizeof(one)); /* never blocks: counter far from max */
    (void)r;
}

static struct stream *stream_for(struct pl_al_file *f)
{
    struct tls *t = tls_get();
    if (f->id < t->n && t->streams[f->id])
        return t->streams[f->id];
    if (f->id >= t->n) {
        uint32_t n = t->n ? t->n : 8;
        while (n <= f->id)
            n *= 2;
        t->streams = pl_realloc(t->streams, n * sizeof(*t->streams));
        memset(t->streams + t->n, 0, (n - t->n) * sizeof(*t->streams));
        t->n = n;
    }
    struct stream *s = pl_calloc(1, sizeof(*s));
    s->tail = s->head = chunk_new(CHUNK_SIZE);
    struct stream *old = atomic_load_explicit(&f->streams, memory_order_relaxed);
    do
        s->next = old;
    while (!atomic_compare_exchange_weak_explicit(&f->streams, &old, s, memory_order_release,
                                                  memory_order_relaxed));
    t->streams[f->id] = s;
    return s;
}

void pl_al_file_write(struct pl_al_file *f, const char *line, size_t len)
{
    struct stream *s = stream_for(f);
    size_t backlog = atomic_load_explicit(&s->backlog, memory_order_relaxed);
    if (backlog + len > MAX_BACKLOG) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        poke(f);
        return;
    }
    struct chunk *c = s->tail;
    size_t off = atomic_load_explicit(&c->committed, memory_order_relaxed);
    bool full = false;
    if (off + len > c->cap) {
        struct chunk *n = chunk_new(len > CHUNK_SIZE ? len : CHUNK_SIZE);
        atomic_store_explicit(&c->next, n, memory_order_release);
        s->tail = c = n;
        off = 0;
        full = true;
    }
    memcpy(c->data + off, line, len);
    atomic_store_explicit(&c->committed, off + len, memory_order_release);
    backlog = atomic_fetch_add_explicit(&s->backlog, len, memory_order_relaxed) + len;
    if (full || backlog >= POKE_BACKLOG)
        poke(f);
}

/* ---- flusher ---- */

static void write_all(struct pl_al_file *f, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) { /* a non-blocking stdout: wait, we are not a worker */
            struct pollfd pfd = {.fd = f->fd, .events = POLLOUT};
            poll(&pfd, 1, 100);
            continue;
        }
        if (w <= 0) {
            if (!f->write_failed)
                pl_log_error("access_log", "writing access log '%s' failed: %s", f->path,
                             w < 0 ? strerror(errno) : "short write");
            f->write_failed = true;
            return;
        }
        f->write_failed = false;
        p += w, n -= (size_t)w;
    }
}

static void drain_stream(struct pl_al_file *f, struct stream *s)
{
    for (;;) {
        struct chunk *h = s->head;
        /* next first: once it is set, the producer is done with h and committed is final */
        struct chunk *nx = atomic_load_explicit(&h->next, memory_order_acquire);
        size_t c = atomic_load_explicit(&h->committed, memory_order_acquire);
        if (c > s->head_off) {
            write_all(f, h->data + s->head_off, c - s->head_off);
            atomic_fetch_sub_explicit(&s->backlog, c - s->head_off, memory_order_relaxed);
            s->head_off = c;
        }
        if (!nx)
            return;
        free(h);
        s->head = nx;
        s->head_off = 0;
    }
}

static void reopen_file(struct pl_al_file *f)
{
    if (!f->own_fd)
        return;
    int fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        pl_log_error("access_log", "reopening access log '%s' failed: %s", f->path,
                     strerror(errno));
        return;
    }
    close(f->fd);
    f->fd = fd;
}

static void *flusher(void *arg)
{
    struct pl_al_file *f = arg;
    for (;;) {
        struct pollfd pfd = {.fd = f->efd, .events = POLLIN};
        if (poll(&pfd, 1, FLUSH_MS) > 0) {
            uint64_t v;
            ssize_t r = read(f->efd, &v, sizeof(v));
            (void)r;
        }
        bool stop = atomic_load(&f->stop);
        atomic_store(&f->poked, false);
        if (atomic_exchange(&f->reopen, false))
            reopen_file(f);
        for (struct stream *s = atomic_load_explicit(&f->streams, memory_order_acquire); s;
             s = s->next)
            drain_stream(f, s);
        pthread_mutex_lock(&f->cmu);
        f->passes++;
        pthread_cond_broadcast(&f->ccv);
        pthread_mutex_unlock(&f->cmu);
        if (stop)
            return NULL;
    }
}

/* ---- registry ---- */

int pl_al_file_get(const char *path, struct pl_al_file **out, const char *err_path,
                   struct pl_err *err)
{
    *out = NULL;
    if (!path || !*path)
        return pl_err_add(err, NULL, 0, 0, err_path, "an access log path is required");
    pthread_mutex_lock(&reg_mu);
    for (struct pl_al_file *f = files; f; f = f->next_file) {
        if (!strcmp(f->path, path)) {
            f->refs++;
            pthread_mutex_unlock(&reg_mu);
            *out = f;
            return 0;
        }
    }
    int fd;
    bool own = true;
    if (!strcmp(path, "/dev/stdout")) {
        fd = STDOUT_FILENO, own = false;
    } else if (!strcmp(path, "/dev/stderr")) {
        fd = STDERR_FILENO, own = false;
    } else {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            int e = errno;
            pthread_mutex_unlock(&reg_mu);
            return pl_err_add(err, NULL, 0, 0, err_path, "cannot open access log '%s': %s", path,
                              strerror(e));
        }
    }
    struct pl_al_file *f = pl_calloc(1, sizeof(*f));
    f->path = pl_strdup(path);
    f->fd = fd;
    f->own_fd = own;
    f->id = next_id++;
    f->refs = 1;
    f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (f->efd < 0)
        pl_die("eventfd: %s", strerror(errno));
    pthread_mutex_init(&f->cmu, NULL);
    pthread_cond_init(&f->ccv, NULL);
    /* signals belong to the main loop: the flusher starts with all of them blocked */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&f->thread, NULL, flusher, f) != 0)
        pl_die("cannot start the access log flusher thread");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    static bool at_exit;
    if (!at_exit) /* lines queued in the last second still reach the file on a clean exit */
        at_exit = atexit(pl_access_log_flush_all) == 0;
    f->next_file = files;
    files = f;
    pthread_mutex_unlock(&reg_mu);
    *out = f;
    return 0;
}

void pl_al_file_put(struct pl_al_file *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&reg_mu);
    if (--f->refs > 0) {
        pthread_mutex_unlock(&reg_mu);
        return;
    }
    for (struct pl_al_file **pp = &files; *pp; pp = &(*pp)->next_file) {
        if (*pp == f) {
            *pp = f->next_file;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    atomic_store(&f->stop, true);
    uint64_t one = 1;
    ssize_t r = write(f->efd, &one, sizeof(one));
    (void)r;
    pthread_join(f->thread, NULL); /* its last pass wrote everything queued */
    for (struct stream *s = atomic_load(&f->streams), *n; s; s = n) {
        n = s->next;
        for (struct chunk *c = s->head, *cn; c; c = cn) {
            cn = atomic_load(&c->next);
            free(c);
        }
        free(s);
    }
    if (f->own_fd)
        close(f->fd);
    close(f->efd);
    pthread_mutex_destroy(&f->cmu);
    pthread_cond_destroy(&f->ccv);
    free(f->path);
    free(f);
}

void pl_access_log_reopen_all(void)
{
    pthread_mutex_lock(&reg_mu);
    for (struct pl_al_file *f = files; f; f = f->next_file) {
        atomic_store(&f->reopen, true);
        uint64_t one = 1;
        ssize_t r = write(f->efd, &one, sizeof(one));
        (void)r;
    }
    pthread_mutex_unlock(&reg_mu);
}

void pl_access_log_flush_all(void)
{
    pthread_mutex_lock(&reg_mu);
    for (struct pl_al_file *f = files; f; f = f->next_file) {
        pthread_mutex_lock(&f->cmu);
        /* a pass that starts after this poke sees every line committed before it */
        uint64_t want = f->passes + 2;
        uint64_t one = 1;
        ssize_t r = write(f->efd, &one, sizeof(one));
        (void)r;
        while (f->passes < want) {
            r = write(f->efd, &one, sizeof(one));
            pthread_cond_wait(&f->ccv, &f->cmu);
        }
        pthread_mutex_unlock(&f->cmu);
    }
    pthread_mutex_unlock(&reg_mu);
}

uint64_t pl_access_log_dropped(void)
{
    return atomic_load_explicit(&dropped, memory_order_relaxed);
}
