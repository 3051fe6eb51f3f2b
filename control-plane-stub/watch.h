/* pillion-cp's file watcher: calls back once the resource files have stopped changing. */
#ifndef PL_CP_WATCH_H
#define PL_CP_WATCH_H

#include "core/err.h"

#define PL_CP_WATCH_DEBOUNCE_S 0.05

struct ev_loop;
struct pl_cp_watch;

/* Watches path (a file or a directory of *.yaml, *.yml, *.json) with inotify on loop; cb(ud)
 * runs on the loop PL_CP_WATCH_DEBOUNCE_S after the last change. Free with pl_cp_watch_free. */
int pl_cp_watch_new(struct ev_loop *loop, const char *path, void (*cb)(void *ud), void *ud,
                    struct pl_cp_watch **out, struct pl_err *err);
/* Sets how long after the last change cb runs (default PL_CP_WATCH_DEBOUNCE_S). */
void pl_cp_watch_set_debounce(struct pl_cp_watch *w, double seconds);
/* Stops watching and frees w; NULL is allowed. */
void pl_cp_watch_free(struct pl_cp_watch *w);

#endif
