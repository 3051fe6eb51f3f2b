/* Per-thread object caches: see slab.h. */
#include "core/slab.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static __thread struct pl_slab *registered; /* this thread's caches that hold objects */
static pthread_key_t slab_key;
static pthread_once_t slab_once = PTHREAD_ONCE_INIT;

static void slab_thread_exit(void *arg)
{
    (void)arg;
    pl_slab_trim();
}

static void slab_key_create(void)
{
    if (pthread_key_create(&slab_key, slab_thread_exit) != 0)
        pl_die("slab: pthread_key_create failed");
}

static void slab_register(struct pl_slab *s)
{
    pthread_once(&slab_once, slab_key_create);
    if (!pthread_getspecific(slab_key))
        pthread_setspecific(slab_key, &registered); /* any non-NULL value arms the destructor */
    s->registered = true;
    s->next = registered;
    registered = s;
}

void *pl_slab_alloc_new(struct pl_slab *s)
{
    return pl_malloc(s->size);
}

void *pl_slab_calloc(struct pl_slab *s)
{
    void *p = s->free;
    if (!p)
        return pl_calloc(1, s->size);
    s->free = *(void **)p;
    s->n--;
    memset(p, 0, s->size);
    return p;
}

void pl_slab_free_slow(struct pl_slab *s, void *p)
{
    if (!p)
        return;
    if (PL_SLAB_BYPASS || s->n >= s->max) {
        free(p);
        return;
    }
    if (!s->registered)
        slab_register(s);
    *(void **)p = s->free;
    s->free = p;
    s->n++;
}

void pl_slab_trim(void)
{
    for (struct pl_slab *s = registered; s; s = s->next) {
        while (s->free) {
            void *p = s->free;
            s->free = *(void **)p;
            free(p);
        }
        s->n = 0;
    }
}
