/*
 * test_pageheap.c — the page heap (pageheap.c) against a brute-force model.
 *
 * With collection disabled, spans of random lengths (1 page to more than
 * a 64-page chunk) are taken from and given back to the page heap
 * directly, in random order.  Before each request the expected answer is
 * computed from the arenas' free-page bitmaps alone: the first run of n
 * free pages in address order, arena by arena (first fit), or "the heap
 * grows" if no arena has one.  The page heap must return exactly that run,
 * whatever its chunk summaries and longest-run bounds say; the address map
 * must name the span on each of its pages and nothing on free pages; spans
 * must never overlap.  Freed runs must be found again: after everything is
 * given back, the same requests fit without the heap growing.  The
 * scavenger then releases the highest free dirty pages first.
 */
#include "check.h"
#include "internal.h"

extern cgc_arena *cgc__arenas;

enum { LIVE_MAX = 3000, STEPS = 40000 };

static cgc_span *live[LIVE_MAX];
static int nlive;

static bool page_free(const cgc_arena *a, size_t i) { return (a->free_bits[i >> 6] >> (i & 63)) & 1; }

/* The first-fit answer: the base of the first run of n free pages in
 * address order, or 0 if no arena has one. */
static uintptr_t expected_base(size_t n)
{
    for (cgc_arena *a = cgc__arenas; a; a = a->next) {
        size_t run = 0;
        for (size_t i = 0; i < PAGES_PER_ARENA; i++) {
            run = page_free(a, i) ? run + 1 : 0;
            if (run == n)
                return a->base + ((i + 1 - n) << CGC_PAGE_SHIFT);
        }
    }
    return 0;
}

static size_t arena_count(void)
{
    size_t k = 0;
    for (cgc_arena *a = cgc__arenas; a; a = a->next)
        k++;
    return k;
}

static size_t random_npages(uint64_t *rng)
{
    static const size_t lengths[] = {1, 1, 1, 2, 3, 4, 5, 8, 10, 17, 63, 64, 65, 130};
    return lengths[rng_below(rng, sizeof lengths / sizeof lengths[0])];
}

static void check_mapped(cgc_span *s)
{
    for (uintptr_t p = s->base; p < s->base + ((uintptr_t)s->npages << CGC_PAGE_SHIFT); p += CGC_PAGE_SIZE)
        if (cgc__span_of(p) != s) {
            CHECKF(0, "page %p of span %p is not mapped to it", (void *)p, (void *)s->base);
            return;
        }
}

static cgc_span *take(size_t n)
{
    uintptr_t want = expected_base(n);
    size_t arenas = arena_count();
    cgc_span *s = cgc__heap_alloc_span(n, KIND_NOSCAN); /* size class 0: a large-object span */
    if (!s) {
        CHECKF(0, "no span of %zu pages", n);
        return NULL;
    }
    if (want)
        CHECKF(s->base == want && arena_count() == arenas,
               "%zu pages: got %p, first fit is %p", n, (void *)s->base, (void *)want);
    else
        CHECKF(arena_count() > arenas, "%zu pages: got %p without growing, model found no run", n,
               (void *)s->base);
    CHECK(s->npages == n);
    check_mapped(s);
    return s;
}

static void give_back(int i)
{
    cgc_span *s = live[i];
    uintptr_t base = s->base;
    size_t n = s->npages;
    cgc__heap_free_span(s);
    for (size_t k = 0; k < n; k++)
        if (cgc__span_of(base + (k << CGC_PAGE_SHIFT)) != NULL) {
            CHECKF(0, "freed page %p still mapped", (void *)(base + (k << CGC_PAGE_SHIFT)));
            break;
        }
    live[i] = live[--nlive];
}

static void check_no_overlap(void)
{
    for (int i = 0; i < nlive; i++)
        for (int j = i + 1; j < nlive; j++) {
            uintptr_t a0 = live[i]->base, a1 = a0 + ((uintptr_t)live[i]->npages << CGC_PAGE_SHIFT);
            uintptr_t b0 = live[j]->base, b1 = b0 + ((uintptr_t)live[j]->npages << CGC_PAGE_SHIFT);
            if (a0 < b1 && b0 < a1) {
                CHECKF(0, "spans %p and %p overlap", (void *)a0, (void *)b0);
                return;
            }
        }
}

static bool bit_at(const uint64_t *bits, size_t i) { return (bits[i >> 6] >> (i & 63)) & 1; }

/* The scavenger gives back the highest free dirty pages first (first fit
 * takes the lowest ones again soon): after releasing about half of them,
 * every page released by that call lies above every one left resident. */
static void check_scavenge_order(void)
{
    size_t narenas = arena_count(), words = PAGES_PER_ARENA / 64;
    uint64_t *before = calloc(narenas * words, sizeof *before);
    CHECK(before != NULL);
    size_t candidates = 0, k = 0;
    for (cgc_arena *a = cgc__arenas; a; a = a->next, k++) {
        memcpy(before + k * words, a->released_bits, words * sizeof *before);
        for (size_t i = 0; i < PAGES_PER_ARENA; i++)
            candidates += page_free(a, i) && bit_at(a->dirty_bits, i) && !bit_at(a->released_bits, i);
    }
    CHECKF(candidates >= 8, "only %zu free dirty pages to scavenge", candidates);
    cgc_heap_totals t;
    cgc__heap_totals(&t);
    size_t release = candidates / 2 * CGC_PAGE_SIZE;
    size_t got = cgc__heap_scavenge((size_t)(t.sys - t.released) - release);
    CHECKF(got >= release, "scavenge released %zu bytes, asked for %zu", got, release);
    uintptr_t lowest_released = UINTPTR_MAX, highest_kept = 0;
    k = 0;
    for (cgc_arena *a = cgc__arenas; a; a = a->next, k++)
        for (size_t i = 0; i < PAGES_PER_ARENA; i++) {
            if (!page_free(a, i) || bit_at(before + k * words, i))
                continue;
            uintptr_t page = a->base + (i << CGC_PAGE_SHIFT);
            if (bit_at(a->released_bits, i)) {
                if (page < lowest_released)
                    lowest_released = page;
            } else if (bit_at(a->dirty_bits, i) && page > highest_kept) {
                highest_kept = page;
            }
        }
    CHECKF(highest_kept < lowest_released, "scavenger released %p but kept the higher page %p",
           (void *)lowest_released, (void *)highest_kept);
    free(before);
}

int main(void)
{
    cgc_init();
    cgc_disable();
    uint64_t rng = 0x9A6E4EA9ull;
    long steps = scaled(STEPS, STEPS / 4, STEPS * 10);
    for (long step = 0; step < steps; step++) {
        /* mostly taking while few are live, mostly giving back when many */
        bool grow = nlive < 8 || (nlive < LIVE_MAX && rng_below(&rng, LIVE_MAX) >= (uint64_t)nlive);
        if (grow) {
            cgc_span *s = take(random_npages(&rng));
            if (s)
                live[nlive++] = s;
        } else {
            give_back((int)rng_below(&rng, (uint64_t)nlive));
        }
        if (step % 5000 == 0)
            check_no_overlap();
    }
    check_no_overlap();
    /* everything back: the same sizes fit again without new arenas */
    while (nlive)
        give_back(nlive - 1);
    size_t arenas = arena_count();
    uint64_t rng2 = 1;
    for (int i = 0; i < 200; i++) {
        cgc_span *s = take(random_npages(&rng2));
        if (s)
            live[nlive++] = s;
    }
    CHECKF(arena_count() == arenas, "the heap grew from %zu to %zu arenas for freed sizes", arenas,
           arena_count());
    while (nlive)
        give_back(nlive - 1);
    check_scavenge_order();
    printf("test_pageheap: %ld steps over %zu arenas\n", steps, arena_count());
    cgc_enable();
    return finish("test_pageheap");
}
