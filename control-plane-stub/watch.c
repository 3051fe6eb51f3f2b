/* Reload on change: inotify on the resources directory (or on a file's directory, filtered to
 * its name), debounced so that an editor's burst of events causes one reload. */
#include <errno.h>
#include <ev.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "watch.h"

#define WATCH_MASK                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY)

struct pl_cp_watch {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer debounce;
    double debounce_s;
    char *only; /* watching a file: its base name; NULL for a directory */
    pl_cp_watch_cb *cb;
    void *ud;
    struct pl_cp_map changed; /* names with events since the last callback */
    bool all;                 /* an overflow or a ConfigMap swap: any file may have changed */
};

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static bool relevant(const struct pl_cp_watch *w, const char *name)
{
    if (!strcmp(name, "..data"))
        return true; /* a Kubernetes ConfigMap volume swapped its files atomically */
    if (w->only)
        return !strcmp(name, w->only);
    return name[0] != '.' &&
           (has_suffix(name, ".yaml") || has_suffix(name, ".yml") || has_suffix(name, ".json"));
}

static void on_inotify(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    struct pl_cp_watch *w = io->data;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            if (e->mask & IN_Q_OVERFLOW) {
                hit = w->all = true;
            } else if (e->len && relevant(w, e->name)) {
                hit = true;
                if (!strcmp(e->name, "..data"))
                    w->all = true;
                else
                    pl_cp_map_put(&w->changed, e->name, NULL);
            }
            p += sizeof(*e) + e->len;
        }
    }
    if (hit) {
        ev_timer_stop(loop, &w->debounce);
        ev_timer_set(&w->debounce, w->debounce_s, 0);
        ev_timer_start(loop, &w->debounce);
    }
}

static void on_debounce(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct pl_cp_watch *w = t->data;
    w->cb(w->ud, w->all ? NULL : &w->changed);
    w->all = false;
    pl_cp_map_clear(&w->changed);
}

int pl_cp_watch_new(struct ev_loop *loop, const char *path, pl_cp_watch_cb *cb, void *ud,
                    struct pl_cp_watch **out, struct pl_err *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return pl_err_add(err, path, 0, 0, NULL, "cannot watch: %s", strerror(errno));
    struct pl_cp_watch *w = pl_calloc(1, sizeof(*w));
    char *dir;
    if (S_ISDIR(st.st_mode)) {
        dir = pl_strdup(path);
    } else {
        char *a = pl_strdup(path), *b = pl_strdup(path);
        w->only = pl_strdup(basename(a));
        dir = pl_strdup(dirname(b));
        free(a);
        free(b);
    }
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0 || inotify_add_watch(w->fd, dir, WATCH_MASK) < 0) {
        int e = errno;
        if (w->fd >= 0)
            close(w->fd);
        pl_err_add(err, dir, 0, 0, NULL, "inotify: %s", strerror(e));
        free(dir);
        free(w->only);
        free(w);
        return PL_EIO;
    }
    free(dir);
    w->loop = loop;
    w->cb = cb;
    w->ud = ud;
    ev_io_init(&w->io, on_inotify, w->fd, EV_READ);
    w->io.data = w;
    ev_io_start(loop, &w->io);
    w->debounce_s = PL_CP_WATCH_DEBOUNCE_S;
    ev_timer_init(&w->debounce, on_debounce, w->debounce_s, 0);
    w->debounce.data = w;
    *out = w;
    return 0;
}

void pl_cp_watch_set_debounce(struct pl_cp_watch *w, double seconds)
{
    w->debounce_s = seconds;
}

void pl_cp_watch_free(struct pl_cp_watch *w)
{
    if (!w)
        return;
    ev_io_stop(w->loop, &w->io);
    ev_timer_stop(w->loop, &w->debounce);
    close(w->fd);
    pl_cp_map_clear(&w->changed);
    free(w->only);
    free(w);
}
