/* Huge pages for the main thread's heap while a large configuration is compiled.
 *
 * Applying 10,000 clusters allocates some 40 MB on the main thread, nearly all of it touched
 * for the first time. As 4 KiB pages that is 10,000 page faults, and on a virtual machine a
 * fault costs 5 to 30 µs: most of such an apply's time. Within a window the top of glibc's
 * main heap is grown ahead of need and the whole heap is advised as transparent huge pages
 * (MADV_HUGEPAGE), so those faults come 2 MiB at a time; when the window closes the advice is
 * withdrawn (the kernel's background collapsing then leaves the heap alone) and the caller
 * trims the heap, which returns the free parts of huge pages as it does 4 KiB pages. From the
 * first window on, blocks below 32 MiB (glibc's ceiling for its moving mmap threshold) come
 * from the heap, so that the compile's large arrays land in the window.
 *
 * Only the main arena (the thread that started the process) is concerned; workers' heaps are
 * never advised. Where THP is off or the heap is not grown by sbrk, nothing changes.
 *
 * The main thread's trims (malloc_trim after a large apply, and after old snapshots are freed)
 * go through pl_hugeheap_trim, which a configuration half applied holds back. */
#ifndef PL_CORE_HUGEHEAP_H
#define PL_CORE_HUGEHEAP_H

#include <stdbool.h>
#include <stddef.h>

/* The huge page size the window and pl_hugeheap_map work with. */
#define PL_HUGEHEAP_PAGE ((size_t)2 << 20)

/* Maps size bytes (a multiple of PL_HUGEHEAP_PAGE) at an address aligned to it, advised as
 * huge pages (advice only: a kernel without THP maps 4 KiB pages). Free it with munmap(p,
 * size). NULL when the mapping fails. Any thread. */
void *pl_hugeheap_map(size_t size);

/* Opens a window for about `expect` bytes of new allocations (main thread only; windows do not
 * nest). Below a few MiB it does nothing. */
void pl_hugeheap_begin(size_t expect);
/* Closes the window opened last, if any. */
void pl_hugeheap_end(void);

/* Gives the main heap's free pages back to the system (malloc_trim(0)); true when it ran. While
 * trims are held it only notes that one is due, and runs when the hold ends. Main thread only. */
bool pl_hugeheap_trim(void);
/* Holds trims (hold true) or ends the hold. A configuration half applied holds them (clusters
 * wait for their assignments): the response that completes it is on its way and reuses the
 * memory a trim would give back, and every page given back is faulted in again (on a virtual
 * machine a page fault costs tens of times a write to a page already there). */
void pl_hugeheap_hold_trims(bool hold);

#endif
