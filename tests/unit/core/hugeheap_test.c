#include <criterion/criterion.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/hugeheap.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* the sanitizer's allocator, not glibc's heap: windows do nothing */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* The VmFlags and size of the mapping that holds addr (from /proc/self/smaps). */
static bool vma_of(uintptr_t addr, char *flags, size_t cap, size_t *size)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert(f);
    char line[512];
    bool in = false, found = false;
    while (fgets(line, sizeof(line), f)) {
        uintptr_t lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = addr >= lo && addr < hi;
            if (in)
                *size = hi - lo;
        } else if (in && !strncmp(line, "VmFlags:", 8)) {
            size_t n = strlen(line + 8);
            if (n >= cap)
                n = cap - 1;
            memcpy(flags, line + 8, n);
            flags[n] = '\0';
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

static bool has_flag(const char *flags, const char *f)
{
    char pat[8];
    snprintf(pat, sizeof(pat), " %s", f);
    for (const char *p = flags; (p = strstr(p, pat)); p++)
        if (p[3] == ' ' || p[3] == '\n' || p[3] == '\0')
            return true;
    return false;
}

Test(hugeheap, a_window_advises_the_heap_top_and_withdraws_the_advice)
{
    if (SANITIZED)
        cr_skip_test("the sanitizer's allocator has no sbrk heap");
    uint8_t *brk0 = sbrk(0);
    pl_hugeheap_begin((size_t)64 << 20);
    uint8_t *brk1 = sbrk(0);
    cr_assert_geq((size_t)(brk1 - brk0), (size_t)32 << 20, "the top grew ahead of need");
    char flags[256];
    size_t size = 0;
    uintptr_t probe = ((uintptr_t)brk1 - (4u << 20)) & ~(uintptr_t)((2u << 20) - 1);
    cr_assert(vma_of(probe, flags, sizeof(flags), &size));
    cr_assert(has_flag(flags, "hg"), "advised: %s", flags);
    cr_assert_geq(size, (size_t)32 << 20);

    /* allocations made now land there, and work as any others */
    enum { N = 4096 };
    void **v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++) {
        v[i] = malloc(4000);
        memset(v[i], (int)i, 4000);
    }
    cr_assert((uint8_t *)v[N - 1] >= brk0 && (uint8_t *)v[N - 1] < (uint8_t *)sbrk(0));
    for (size_t i = 0; i < N; i++)
        free(v[i]);
    free(v);

    pl_hugeheap_end();
    cr_assert(vma_of(probe, flags, sizeof(flags), &size));
    cr_assert(!has_flag(flags, "hg") && has_flag(flags, "nh"), "withdrawn: %s", flags);
    malloc_trim(0);
    cr_assert_lt((intptr_t)sbrk(0) - (intptr_t)brk0, (intptr_t)32 << 20,
                 "the top is trimmed back once the window is closed");
}

Test(hugeheap, small_windows_change_nothing)
{
    uint8_t *brk0 = sbrk(0);
    pl_hugeheap_begin(1u << 20);
    cr_assert_eq(sbrk(0), brk0);
    void *p = malloc(100);
    cr_assert(p);
    free(p);
    pl_hugeheap_end();
    pl_hugeheap_end(); /* closing twice is harmless */
}

Test(hugeheap, mappings_are_aligned_and_advised)
{
    size_t size = 2 * PL_HUGEHEAP_PAGE;
    uint8_t *p = pl_hugeheap_map(size);
    cr_assert(p);
    cr_assert_eq((uintptr_t)p % PL_HUGEHEAP_PAGE, 0);
    memset(p, 1, size); /* all of it is ours */
    char flags[256];
    size_t vsize = 0;
    cr_assert(vma_of((uintptr_t)p, flags, sizeof(flags), &vsize));
    cr_assert(has_flag(flags, "hg"), "advised: %s", flags);
    cr_assert_eq(munmap(p, size), 0);
}

/* Resident pages of the process (/proc/self/statm). */
static long resident_pages(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert(f);
    long size = 0, rss = 0;
    cr_assert_eq(fscanf(f, "%ld %ld", &size, &rss), 2);
    fclose(f);
    return rss;
}

Test(hugeheap, held_trims_give_pages_back_when_the_hold_ends)
{
    cr_assert(pl_hugeheap_trim(), "no hold: it runs");
    enum { N = 2048 }; /* 8 MB of small blocks; the last one stays, so the others are no top */
    void **v = calloc(N, sizeof(*v));
    for (size_t i = 0; i < N; i++) {
        v[i] = malloc(4000);
        memset(v[i], (int)i, 4000);
    }
    for (size_t i = 0; i + 1 < N; i++)
        free(v[i]);
    long before = resident_pages();

    pl_hugeheap_hold_trims(true);
    cr_assert_not(pl_hugeheap_trim(), "held: noted, not run");
    if (!SANITIZED)
        cr_assert_gt(resident_pages(), before - 256, "the free pages stay while held");
    pl_hugeheap_hold_trims(false); /* runs the trim that was due */
    if (!SANITIZED)
        cr_assert_lt(resident_pages(), before - 1024, "given back once the hold ends");
    cr_assert(pl_hugeheap_trim());
    free(v[N - 1]);
    free(v);
}
