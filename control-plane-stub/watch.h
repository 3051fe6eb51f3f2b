/* pillion-cp's file watcher: calls back once the resource files have stopped changing. */
#ifndef PL_CP_WATCH_H
#define PL_CP_WATCH_H

#include "core/err.h"
#include "cp.h"

#define PL_CP_WATCH_DEBOUNCE_S 0.05

struct ev_loop;
struct pl_cp_watch;

/* Called with the base names of the files that changed since the last call (changed NULL:
 * possibly every file, after an inotify overflow or a ConfigMap swap); the map is the
 * watcher's, emptied after the call. */
typedef void pl_cp_watch_cb(void *ud, const struct pl_cp_map *changed);

/* Watches path (a file or a directory of *.yaml, *.yml, *.json) with inotify on loop; cb runs
 * on the loop PL_CP_WATCH_DEBOUNCE_S after the last change. Free with pl_cp_watch_free. */
int pl_cp_watch_new(struct ev_loop *loop, const char *path, pl_cp_watch_cb *cb, void *ud,
                    struct pl_cp_watch **out, struct pl_err *err);
/* Sets how long after the last change cb runs (default PL_CP_WATCH_DEBOUNCE_S). */
void pl_cp_watch_set_debounce(struct pl_cp_watch *w, double seconds);
/* Stops watching and frees w; NULL is allowed. */
void pl_cp_watch_free(struct pl_cp_watch *w);

#endif
