/*
 * pageheap.c — the page allocator: runs of 8 KiB pages for spans.
 *
 * Each arena keeps a bitmap of free pages and, per 64-page chunk, a summary
 * of its free runs (at the start, longest, at the end), plus a bound on the
 * arena's longest run.  A request for n pages skips every arena whose
 * bound is short, then walks the arena's 128 chunk summaries, touching a bitmap
 * word only in the chunk where the run is found: first fit in address
 * order, O(arenas + chunks) rather than O(pages).  (Go keeps the same
 * summaries in a radix tree over the whole address space.)
 *
 * Pages are dirty once used; a span is zeroed at allocation only if one of
 * its pages is dirty.  The scavenger returns free dirty pages to the OS,
 * after which they are zero again.
 */
#include "internal.h"

cgc_lock cgc__heap_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP; /* as cgc__lock_init's */
extern cgc_arena *cgc__arenas;
cgc_arena *cgc__arena_grow(size_t n);
cgc_span *cgc__span_struct_alloc(void);
void cgc__span_struct_free(cgc_span *s);
void cgc__arena_init(void);

static uint64_t pages_dirty;    /* pages touched and not released: heap_sys */
static uint64_t pages_inuse;
static uint64_t pages_inuse_peak; /* the most in use since the last scavenge */
static uint64_t pages_released; /* free pages given back to the OS */

static bool bit_get(const uint64_t *b, size_t i) { return (b[i >> 6] >> (i & 63)) & 1; }

static unsigned longest_ones(uint64_t w) {
    unsigned n = 0;
    while (w) {
        w &= w >> 1;
        n++;
    }
    return n;
}

static void summarize_chunk(cgc_arena *a, size_t c) {
    uint64_t w = a->free_bits[c];
    if (w == ~0ull) {
        a->sum_start[c] = a->sum_max[c] = a->sum_end[c] = CHUNK_PAGES;
        return;
    }
    a->sum_start[c] = (uint8_t)__builtin_ctzll(~w);
    a->sum_end[c] = (uint8_t)__builtin_clzll(~w);
    a->sum_max[c] = (uint8_t)longest_ones(w);
}

static void summarize_arena(cgc_arena *a) {
    uint32_t best = 0, run = 0;
    for (size_t c = 0; c < CHUNKS_PER_ARENA; c++) {
        if (a->sum_max[c] == CHUNK_PAGES) {
            run += CHUNK_PAGES;
            continue;
        }
        if (run + a->sum_start[c] > best) best = run + a->sum_start[c];
        if (a->sum_max[c] > best) best = a->sum_max[c];
        run = a->sum_end[c];
    }
    if (run > best) best = run;
    a->longest_run = best;
}

/* Marks pages [first, first+n) of arena a free or used; keeps summaries,
 * dirty and released accounting. */
static void set_pages(cgc_arena *a, size_t first, size_t n, bool free) {
    for (size_t i = first; i < first + n; i++) {
        uint64_t m = 1ull << (i & 63);
        if (free) {
            a->free_bits[i >> 6] |= m;
        } else {
            a->free_bits[i >> 6] &= ~m;
            if (a->released_bits[i >> 6] & m) {
                a->released_bits[i >> 6] &= ~m;
                pages_released--;
            }
            if (!(a->dirty_bits[i >> 6] & m)) {
                a->dirty_bits[i >> 6] |= m;
                pages_dirty++;
            }
        }
    }
    for (size_t c = first / CHUNK_PAGES; c <= (first + n - 1) / CHUNK_PAGES; c++) summarize_chunk(a, c);
    /* longest_run is a bound, not the exact maximum: taking pages can only
     * shorten runs (the bound stays true), and freeing them is taken as
     * possibly making the arena's longest run up to the whole arena.  The
     * exact value is recomputed only when a search fails, which walks
     * every chunk anyway: not for every span handed out or freed. */
    if (free) {
        a->longest_run = PAGES_PER_ARENA;
        a->used_pages -= (uint32_t)n;
        pages_inuse -= n;
    } else {
        a->used_pages += (uint32_t)n;
        pages_inuse += n;
        if (pages_inuse > pages_inuse_peak) pages_inuse_peak = pages_inuse;
    }
}

/* First run of n free pages in a by the chunk summaries, or -1. */
static long find_run(cgc_arena *a, size_t n) {
    size_t run = 0, run_start = 0;
    for (size_t c = 0; c < CHUNKS_PER_ARENA; c++) {
        if (run == 0) run_start = c * CHUNK_PAGES;
        if (a->sum_max[c] == CHUNK_PAGES) {
            run += CHUNK_PAGES;
            if (run >= n) return (long)run_start;
            continue;
        }
        if (run + a->sum_start[c] >= n) return (long)run_start;
        if (a->sum_max[c] >= n) {
            /* bit i of m set <=> pages i..i+n-1 of the chunk are free */
            uint64_t m = a->free_bits[c];
            for (size_t k = 1; k < n;) {
                size_t s = k < n - k ? k : n - k;
                m &= m >> s;
                k += s;
            }
            if (m) return (long)(c * CHUNK_PAGES + (size_t)__builtin_ctzll(m));
        }
        run = a->sum_end[c];
        run_start = c * CHUNK_PAGES + CHUNK_PAGES - run;
    }
    return -1;
}

/* First run of n free pages in a, or -1 (then longest_run is made exact). */
static long find_in_arena(cgc_arena *a, size_t n) {
    if (a->longest_run < n) return -1;
    long found = find_run(a, n);
    if (found < 0) summarize_arena(a);
    return found;
}

static bool range_dirty(cgc_arena *a, size_t first, size_t n) {
    for (size_t i = first; i < first + n; i++)
        if (bit_get(a->dirty_bits, i)) return true;
    return false;
}

void cgc__heap_init(void) { cgc__arena_init(); }

/* Publishes s in the map for its pages (release: its fields first). */
static void map_span(cgc_span *s, cgc_span *value) {
    uintptr_t p = s->base, end = s->base + (uintptr_t)s->npages * CGC_PAGE_SIZE;
    for (; p < end; p += CGC_PAGE_SIZE) {
        cgc_arena *a = cgc__arena_map[p >> ARENA_SHIFT];
        atomic_store_explicit(&a->spans[(p & (ARENA_SIZE - 1)) >> CGC_PAGE_SHIFT], value, RELEASE);
    }
}

/* Writes one byte per OS page of fresh memory.  A first touch that reads
 * (the write barrier reading the old value of a field, the conservative
 * scanner) maps the kernel's shared zero page, and the write that follows
 * then takes a second fault that must shoot the stale mapping out of every
 * CPU's TLB.  Writing first takes one plain fault.  Only small-object
 * spans, which are filled anyway: a large object's untouched pages stay
 * uncommitted. */
static void prefault(uintptr_t base, size_t bytes) {
    for (uintptr_t p = base; p < base + bytes; p += 4096) *(volatile char *)p = 0;
}

cgc_span *cgc__heap_alloc_span(uintptr_t npages, unsigned spanclass) {
    cgc__lock(&cgc__heap_lock);
    cgc_span *s = cgc__span_struct_alloc();
    if (s && !cgc__span_fit_marks(s, cgc__spanclass_nelems(spanclass))) {
        cgc__span_struct_free(s);
        s = NULL;
    }
    if (!s) {
        cgc__unlock(&cgc__heap_lock);
        return NULL;
    }
    uintptr_t base = 0;
    bool dirty = false;
    if (npages <= PAGES_PER_ARENA) {
        cgc_arena *a;
        long first = -1;
        for (a = cgc__arenas; a; a = a->next)
            if ((first = find_in_arena(a, npages)) >= 0) break;
        if (!a) {
            a = cgc__arena_grow(1);
            if (a) first = find_in_arena(a, npages);
        }
        if (a && first >= 0) {
#ifdef CGC_DEBUG_CHECKS
            for (size_t i = (size_t)first; i < (size_t)first + npages; i++)
                if (!bit_get(a->free_bits, i) || atomic_load(&a->spans[i]))
                    cgc__fatal("page heap: page %zu of arena %p handed out twice", i, (void *)a->base);
#endif
            dirty = range_dirty(a, (size_t)first, npages);
            set_pages(a, (size_t)first, npages, false);
            base = a->base + ((uintptr_t)first << CGC_PAGE_SHIFT);
        }
    } else {
        /* a huge object: arenas of its own, contiguous */
        size_t narenas = (npages + PAGES_PER_ARENA - 1) / PAGES_PER_ARENA;
        cgc_arena *a = cgc__arena_grow(narenas);
        if (a) {
            base = a->base;
            size_t left = npages;
            for (size_t i = 0; i < narenas; i++, a = a->next) {
                size_t n = left < PAGES_PER_ARENA ? left : PAGES_PER_ARENA;
                set_pages(a, 0, n, false);
                left -= n;
            }
        }
    }
    if (!base) {
        cgc__span_struct_free(s);
        cgc__unlock(&cgc__heap_lock);
        return NULL;
    }
    s->base = base;
    s->npages = (uint32_t)npages;
    cgc__span_init(s, spanclass, npages);
    s->needzero = dirty;
    /* release: every field above is visible before the state and the map */
    atomic_store_explicit(&s->state, SPAN_IN_USE, RELEASE);
    map_span(s, s);
    cgc__unlock(&cgc__heap_lock);
    if (!dirty && s->sizeclass) prefault(s->base, npages << CGC_PAGE_SHIFT);
    return s;
}

void cgc__heap_free_span(cgc_span *s) {
    CGC_ASSERT(atomic_load_explicit(&cgc__gc_marking, RELAXED) == 0);
    /* no cache may still allocate from it, no list may still hold it */
    CGC_ASSERT(atomic_load_explicit(&s->owner, RELAXED) == NULL && s->where != WHERE_CACHED && s->list == NULL);
    cgc__lock(&cgc__heap_lock);
    atomic_store_explicit(&s->state, SPAN_FREE, RELEASE);
    map_span(s, NULL);
    uintptr_t p = s->base;
    size_t left = s->npages;
    while (left) {
        cgc_arena *a = cgc__arena_map[p >> ARENA_SHIFT];
        size_t first = (p & (ARENA_SIZE - 1)) >> CGC_PAGE_SHIFT;
        size_t n = PAGES_PER_ARENA - first < left ? PAGES_PER_ARENA - first : left;
        set_pages(a, first, n, true);
        left -= n;
        p += n << CGC_PAGE_SHIFT;
    }
    cgc__span_struct_free(s);
    cgc__unlock(&cgc__heap_lock);
}

uint64_t cgc__heap_take_inuse_peak(void) {
    cgc__lock(&cgc__heap_lock);
    uint64_t peak = pages_inuse_peak * CGC_PAGE_SIZE;
    pages_inuse_peak = pages_inuse;
    cgc__unlock(&cgc__heap_lock);
    return peak;
}

/* Releases free dirty pages, highest addresses first, until no more than
 * retain bytes of the heap stay resident.  Returns bytes released.
 * Allocation takes the lowest free run (first fit), so the pages at the
 * top are the ones least likely to be needed again soon; releasing from
 * the bottom, as this did first, gave back pages the next spans took at
 * once (faulted in again, zeroed by the kernel) while dirty pages higher
 * up stayed: binary-trees made about 115 madvise calls per cycle. */
size_t cgc__heap_scavenge(size_t retain) {
    size_t released = 0;
    /* fork waits for the whole scavenge: a child made while a run was out
     * of the free set would never get it back */
    pthread_rwlock_rdlock(&cgc__sweep_fork_lock);
    cgc__lock(&cgc__heap_lock);
    cgc_arena *last = cgc__arenas;
    while (last && last->next) last = last->next;
    for (cgc_arena *a = last; a; a = a->prev) {
        for (size_t w = PAGES_PER_ARENA / 64; w-- > 0;) {
            uint64_t cand;
            while ((cand = a->free_bits[w] & a->dirty_bits[w] & ~a->released_bits[w]) != 0) {
                if (pages_dirty * CGC_PAGE_SIZE <= retain) goto done; /* dirty: resident */
                /* the highest run of candidate pages in this word */
                unsigned hi = 63 - (unsigned)__builtin_clzll(cand);
                uint64_t top = ~(cand << (63 - hi)); /* the run's pages as leading zeros */
                unsigned len = top ? (unsigned)__builtin_clzll(top) : 64;
                if (len > hi + 1) len = hi + 1;
                unsigned lo = hi + 1 - len;
                uint64_t mask = (len == 64) ? ~0ull : (((1ull << len) - 1) << lo);
                /* The madvise runs without the lock (tens of us, a TLB
                 * shootdown; the sweeper that runs it is SCHED_BATCH and,
                 * preempted inside it with the lock held, kept allocating
                 * threads asleep for milliseconds on a loaded machine).
                 * Meanwhile the run is out of the free set (word w is chunk
                 * w), so no span is made of pages being released; it is
                 * neither free nor in use, and nothing else changes its
                 * bits.  Taking pages only shortens runs: longest_run
                 * stays a bound. */
                _Static_assert(CHUNK_PAGES == 64, "a free_bits word is a chunk");
                a->free_bits[w] &= ~mask;
                summarize_chunk(a, w);
                cgc__unlock(&cgc__heap_lock);
                cgc__os_release((void *)(a->base + ((w * 64 + lo) << CGC_PAGE_SHIFT)),
                                (size_t)len << CGC_PAGE_SHIFT);
                cgc__lock(&cgc__heap_lock);
                a->free_bits[w] |= mask;
                summarize_chunk(a, w);
                a->longest_run = PAGES_PER_ARENA; /* freed pages: a bound again (set_pages) */
                a->released_bits[w] |= mask;
                a->dirty_bits[w] &= ~mask;
                pages_released += len;
                pages_dirty -= len;
                released += (size_t)len << CGC_PAGE_SHIFT;
            }
        }
    }
done:
    cgc__unlock(&cgc__heap_lock);
    pthread_rwlock_unlock(&cgc__sweep_fork_lock);
    return released;
}

void cgc__heap_totals(cgc_heap_totals *t) {
    cgc__lock(&cgc__heap_lock);
    t->sys = (pages_dirty + pages_released) * CGC_PAGE_SIZE;
    t->inuse = pages_inuse * CGC_PAGE_SIZE;
    t->released = pages_released * CGC_PAGE_SIZE;
    cgc__unlock(&cgc__heap_lock);
}

void cgc__heap_for_each_span(void (*fn)(cgc_span *, void *), void *arg) {
    for (cgc_arena *a = cgc__arenas; a; a = a->next) {
        for (size_t i = 0; i < PAGES_PER_ARENA; i++) {
            cgc_span *s = atomic_load_explicit(&a->spans[i], ACQUIRE);
            if (s && s->base == a->base + (i << CGC_PAGE_SHIFT)) fn(s, arg);
        }
    }
}
