/* ThreadSanitizer annotations for orderings TSan cannot see: urcu's barriers are inline asm or
 * inside an uninstrumented library, so a release before call_rcu and an acquire in the callback
 * (and the workers' quiescent states, released on pl_tsan_qs_sync) model them. No-ops otherwise. */
#ifndef PL_CORE_TSAN_H
#define PL_CORE_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define PL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PL_TSAN 1
#endif
#endif

#ifdef PL_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define pl_tsan_acquire(a) __tsan_acquire(a)
#define pl_tsan_release(a) __tsan_release(a)
#else
#define pl_tsan_acquire(a) ((void)(a))
#define pl_tsan_release(a) ((void)(a))
#endif

/* Released by every RCU quiescent state, offline and unregister (config/publish.c); acquired by
 * whatever frees memory that readers may have used before their quiescent state. */
extern char pl_tsan_qs_sync;

#endif
