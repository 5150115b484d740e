/*
 * arena.c — address space: 64 MiB arenas reserved from the OS, the O(1)
 * address -> arena map, and the pools of span structs and mark arrays.
 *
 * The map has one entry per possible arena of the 47-bit user address space
 * (2^21 entries, 16 MiB of virtual memory touched only where arenas are),
 * so cgc__span_of is two dependent loads for any address, heap or not.
 * Arena and span metadata live outside the heap and are never unmapped:
 * a racing lookup always reads valid memory.
 */
#include "internal.h"

_Atomic(cgc_arena *) *cgc__arena_map;
cgc_arena *cgc__arenas;          /* address order; under cgc__heap_lock */
_Atomic uintptr_t cgc__heap_min = UINTPTR_MAX, cgc__heap_max = 0;

static cgc_span *span_pool_free; /* under cgc__heap_lock */
static cgc_span *span_pool_next, *span_pool_end;

void cgc__arena_init(void) {
    size_t bytes = sizeof(cgc_arena *) << ARENA_L1_BITS;
    cgc__arena_map = cgc__os_reserve(bytes, 4096);
    if (!cgc__arena_map) cgc__fatal("cannot reserve the arena map (%zu bytes)", bytes);
}

/* Reserves n contiguous arenas; returns the first (they are linked in
 * address order).  Heap lock held. */
cgc_arena *cgc__arena_grow(size_t n) {
    uintptr_t base = (uintptr_t)cgc__os_reserve(n * ARENA_SIZE, ARENA_SIZE);
    if (!base) return NULL;
    if ((base + n * ARENA_SIZE - 1) >> 47) {
        cgc__os_unmap((void *)base, n * ARENA_SIZE);
        return NULL;
    }
    cgc_arena *first = NULL;
    for (size_t i = 0; i < n; i++) {
        cgc_arena *a = cgc__os_reserve(sizeof(cgc_arena), 4096);
        if (!a) cgc__fatal("out of memory for arena metadata");
        a->base = base + i * ARENA_SIZE;
        memset(a->free_bits, 0xff, sizeof a->free_bits);
        for (size_t c = 0; c < CHUNKS_PER_ARENA; c++)
            a->sum_start[c] = a->sum_max[c] = a->sum_end[c] = CHUNK_PAGES;
        a->longest_run = PAGES_PER_ARENA;
        /* insert in address order */
        cgc_arena **pp = &cgc__arenas, *prev = NULL;
        while (*pp && (*pp)->base < a->base) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        a->next = *pp;
        a->prev = prev;
        if (*pp) (*pp)->prev = a;
        *pp = a;
        /* release: the arena's fields are set before a lookup can see it */
        atomic_store_explicit(&cgc__arena_map[a->base >> ARENA_SHIFT], a, RELEASE);
        if (!first) first = a;
    }
    uintptr_t lo = atomic_load_explicit(&cgc__heap_min, RELAXED);
    if (base < lo) atomic_store_explicit(&cgc__heap_min, base, RELAXED);
    uintptr_t hi = atomic_load_explicit(&cgc__heap_max, RELAXED);
    if (base + n * ARENA_SIZE > hi) atomic_store_explicit(&cgc__heap_max, base + n * ARENA_SIZE, RELAXED);
    return first;
}

cgc_span *cgc__span_struct_alloc(void) {
    cgc_span *s = span_pool_free;
    if (s) {
        span_pool_free = s->next;
    } else {
        if (span_pool_next == span_pool_end) {
            size_t bytes = 1 << 20;
            span_pool_next = cgc__os_reserve(bytes, 4096);
            if (!span_pool_next) return NULL;
            span_pool_end = span_pool_next + bytes / sizeof(cgc_span);
        }
        s = span_pool_next++;
    }
    return s;
}

/* Mark arrays (internal.h, cgc__marked): a multiple of 64 bytes each, cut
 * from 1 MiB chunks, followed by the span's check_bits when gccheckmark is
 * on (the option is set before the first span and never changes, so all
 * arrays of one size have the same tail).  A span struct keeps its array
 * while it waits in the struct pool, and swaps it only for a span of
 * another size.  Freed arrays wait on a list per size.  Under
 * cgc__heap_lock. */
static void *mark_pool_free[SPAN_MAX_ELEMS / 64];
static uint8_t *mark_pool_next, *mark_pool_end;

bool cgc__span_fit_marks(cgc_span *s, uint32_t nelems) {
    uint32_t cap = (nelems + 63) & ~63u;
    size_t tail = cgc__opt.gccheckmark ? SPAN_BITMAP_WORDS * sizeof(uint64_t) : 0;
    if (s->mark && s->mark_cap == cap) return true;
    if (s->mark) {
        void **old = (void **)(uintptr_t)s->mark;
        *old = mark_pool_free[s->mark_cap / 64 - 1];
        mark_pool_free[s->mark_cap / 64 - 1] = old;
        s->mark = NULL;
        s->check_bits = NULL;
        s->mark_cap = 0;
    }
    void *m = mark_pool_free[cap / 64 - 1];
    if (m) {
        mark_pool_free[cap / 64 - 1] = *(void **)m;
    } else {
        if ((size_t)(mark_pool_end - mark_pool_next) < cap + tail) {
            size_t bytes = 1 << 20;
            mark_pool_next = cgc__os_reserve(bytes, 4096);
            if (!mark_pool_next) {
                mark_pool_end = NULL;
                return false;
            }
            mark_pool_end = mark_pool_next + bytes;
        }
        m = mark_pool_next;
        mark_pool_next += cap + tail;
    }
    s->mark = (_Atomic uint8_t *)m;
    s->check_bits = tail ? (_Atomic uint64_t *)(void *)((uint8_t *)m + cap) : NULL;
    s->mark_cap = cap;
    return true;
}

void cgc__span_struct_free(cgc_span *s) {
    s->next = span_pool_free;
    span_pool_free = s;
}
