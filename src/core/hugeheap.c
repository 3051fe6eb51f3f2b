/* Huge pages for the main thread's heap while a large configuration is compiled (hugeheap.h). */
#include "core/hugeheap.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"

#define HP             PL_HUGEHEAP_PAGE
#define MIN            (3 * HP) /* smaller windows gain too little to be worth a syscall */
#define MAX            ((size_t)512 << 20) /* virtual memory reserved ahead, never more */
#define TOP_PAD        (128u << 10)        /* glibc's default M_TOP_PAD */
#define STEP           (64u << 10)
#define MMAP_THRESHOLD (32 << 20) /* glibc's DEFAULT_MMAP_THRESHOLD_MAX (64-bit) */

static struct {
    uint8_t *lo, *hi; /* the advised range; hi == NULL: none */
    bool padded;      /* M_TOP_PAD was raised */
} g;

static uint8_t *align_up(uint8_t *p)
{
    return (uint8_t *)(((uintptr_t)p + HP - 1) & ~(uintptr_t)(HP - 1));
}

static uint8_t *align_down(uint8_t *p)
{
    return (uint8_t *)((uintptr_t)p & ~(uintptr_t)(HP - 1));
}

void *pl_hugeheap_map(size_t size)
{
    uint8_t *p = mmap(NULL, size + HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *a = align_up(p);
    if (a > p)
        munmap(p, (size_t)(a - p));
    munmap(a + size, (size_t)(p + HP - a));
    madvise(a, size, MADV_HUGEPAGE);
    return a;
}

/* Grows the heap's top to hold `want` more bytes: a block larger than any free one is taken
 * (from the top, which grows by M_TOP_PAD more when it is short) and given back, joining the
 * top again. Only the block's and the top's headers are written. When the top was large
 * enough already this costs a split and a merge. */
static void grow_top(size_t want)
{
    void *b = malloc(want);
    __asm__ volatile("" : : "r"(b) : "memory"); /* a malloc freed unused may be elided */
    free(b);
}

/* The main heap's range: its mappings in /proc/self/maps (one, or several once advice has
 * split it). */
static bool heap_range(uint8_t **lo, uint8_t **hi)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (fgets(line, sizeof(line), f)) {
        uintptr_t a, b;
        if (strstr(line, "[heap]") && sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &a, &b) == 2) {
            if (!found || (uint8_t *)a < *lo)
                *lo = (uint8_t *)a;
            if (!found || (uint8_t *)b > *hi)
                *hi = (uint8_t *)b;
            found = true;
        }
    }
    fclose(f);
    return found;
}

void pl_hugeheap_begin(size_t expect)
{
    if (g.padded || expect < MIN)
        return;
    if (expect > MAX)
        expect = MAX;
    /* blocks up to glibc's own ceiling for its moving mmap threshold come from the heap (the
     * arrays a large compile makes: here and in later smaller compiles, where a mapping per
     * array would fault its pages in every time) */
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    /* from now on the main heap grows in steps of `expect` and keeps that much when trimmed */
    mallopt(M_TOP_PAD, (int)expect);
    g.padded = true;
    grow_top(expect < MMAP_THRESHOLD - STEP ? expect : MMAP_THRESHOLD - STEP);
    /* the whole heap is advised: what the compile allocates comes from free holes (whose pages
     * earlier trims gave back) as much as from the top */
    uint8_t *lo, *hi;
    if (!heap_range(&lo, &hi)) {
        pl_log_debug("mem", "heap window for %zu MiB: no heap", expect >> 20);
        return;
    }
    lo = align_up(lo);
    hi = align_down(hi);
    if (hi <= lo || madvise(lo, (size_t)(hi - lo), MADV_HUGEPAGE) != 0) {
        pl_log_debug("mem", "heap window for %zu MiB: none", expect >> 20);
        return;
    }
    pl_log_debug("mem", "heap window for %zu MiB: %zu MiB advised", expect >> 20,
                 (size_t)(hi - lo) >> 20);
    g.lo = lo;
    g.hi = hi;
}

void pl_hugeheap_end(void)
{
    if (!g.padded)
        return;
    mallopt(M_TOP_PAD, TOP_PAD);
    g.padded = false;
    if (g.hi)
        madvise(g.lo, (size_t)(g.hi - g.lo), MADV_NOHUGEPAGE);
    g.lo = g.hi = NULL;
}

static struct {
    bool held, due;
} trims;

bool pl_hugeheap_trim(void)
{
    if (trims.held) {
        trims.due = true;
        return false;
    }
    trims.due = false;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    return true;
}

void pl_hugeheap_hold_trims(bool hold)
{
    trims.held = hold;
    if (!hold && trims.due)
        pl_hugeheap_trim();
}
