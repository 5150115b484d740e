/*
 * cache.c — mcache: a thread's own spans, one per span class, so that the
 * allocation fast path (malloc.c) takes no lock and no atomic
 * read-modify-write.  Slots freed by the owner go on the span's local free
 * list; slots freed by other threads arrive on the span's remote list and
 * are taken here when the span runs dry.
 */
#include "internal.h"

/* A span with no slot: the initial entry of every cache slot, so the fast
 * path needs no NULL test. */
cgc_span cgc__empty_span;

void cgc__cache_init(cgc_mcache *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NUM_CENTRALS; i++) c->alloc[i] = &cgc__empty_span;
}

/* Takes the slots other threads freed in s (owner only).  Returns true if
 * that made a slot available. */
static bool take_remote_frees(cgc_mcache *c, cgc_span *s) {
    void *r = atomic_exchange_explicit(&s->remote_free, NULL, ACQUIRE);
    bool any = false;
    while (r) {
        void *next = *(void **)r;
        uint32_t idx = cgc__obj_index(s, (uintptr_t)r);
        _Atomic uint64_t *w = &s->alloc_bits[idx >> 6];
        atomic_store_explicit(w, atomic_load_explicit(w, RELAXED) & ~(1ull << (idx & 63)), RELAXED);
        /* a free slot of a pre-marked span is black (allocate-black) */
        if (s->preblack) atomic_fetch_or_explicit(&s->mark_bits[idx >> 6], 1ull << (idx & 63), RELAXED);
        if (idx < s->freeindex) {
            *(void **)r = s->local_free;
            s->local_free = r;
        } /* else: next_free_slow finds it in the bitmap */
        c->nfree++;
        any = true;
        r = next;
    }
    if (any) {
        s->alloc_cache = 0; /* rescan from freeindex */
        s->needzero = 1;
    }
    return any;
}

/* Allocate-black by pre-marking (invariant beside cgc_span): a span
 * entering a cache while a mark runs, or sitting in one when a mark
 * starts, gets the mark bit of each free slot set, one atomic OR per 64
 * slots instead of one per object allocated.  The OR is atomic: markers set
 * bits of allocated slots in the same words. */
static void preblacken(cgc_span *s) {
    uint32_t nwords = (s->nelems + 63) / 64;
    for (uint32_t w = 0; w < nwords; w++) {
        uint64_t valid = (w + 1) * 64 <= s->nelems ? ~0ull : (1ull << (s->nelems % 64)) - 1;
        uint64_t free_slots = ~atomic_load_explicit(&s->alloc_bits[w], RELAXED) & valid;
        if (free_slots) atomic_fetch_or_explicit(&s->mark_bits[w], free_slots, RELAXED);
    }
    s->preblack = 1;
}

/* The span leaves the cache: free slots lose the mark bits preblacken gave
 * them (slots allocated since keep theirs: they are black). */
static void unpreblacken(cgc_span *s) {
    if (!s->preblack) return;
    uint32_t nwords = (s->nelems + 63) / 64;
    for (uint32_t w = 0; w < nwords; w++) {
        uint64_t alloc = atomic_load_explicit(&s->alloc_bits[w], RELAXED);
        if (~alloc & atomic_load_explicit(&s->mark_bits[w], RELAXED))
            atomic_fetch_and_explicit(&s->mark_bits[w], alloc, RELAXED);
    }
    s->preblack = 0;
}

void cgc__cache_preblacken(cgc_mcache *c) {
    for (size_t i = 0; i < NUM_CENTRALS; i++)
        if (c->alloc[i] != &cgc__empty_span) preblacken(c->alloc[i]);
}

/* One class's allocation count into the global statistics (the others
 * are merged when they refill, at flush, and read live by cgc_read_stats). */
static void merge_class(cgc_mcache *c, unsigned spanclass) {
    uint64_t n = c->nmalloc[spanclass];
    if (!n) return;
    c->nmalloc[spanclass] = 0;
    unsigned sc = spanclass == TINY_SPAN_CLASS ? 0 : spanclass / SPAN_KINDS;
    atomic_fetch_add_explicit(&cgc__stats.mallocs, n, RELAXED);
    atomic_fetch_add_explicit(&cgc__stats.total_alloc, n * (sc ? cgc_class_size[sc] : TINY_BLOCK), RELAXED);
}

static void merge_black(cgc_mcache *c) {
    if (!c->black_bytes) return;
    atomic_fetch_add_explicit(&cgc__pacer.black_bytes, c->black_bytes, RELAXED);
    c->black_bytes = 0;
}

bool cgc__cache_refill(cgc_mcache *c, unsigned spanclass) {
    cgc_span *s = c->alloc[spanclass];
    if (s != &cgc__empty_span) {
        if (take_remote_frees(c, s)) return true;
        uint64_t unused = (uint64_t)(s->nelems - cgc__span_count_alloc(s)) * s->elemsize;
        unpreblacken(s);
        cgc__central_uncache_span(s);
        atomic_fetch_sub_explicit(&cgc__pacer.heap_live, unused, RELAXED);
        c->alloc[spanclass] = &cgc__empty_span;
    }
    /* Proportional sweeping: each refill while a sweep is pending sweeps
     * one span of any class, so sweep completes well before the next
     * trigger even without the background sweeper. */
    if (atomic_load_explicit(&cgc__sweep_pages_left, RELAXED)) cgc__sweep_one();

    s = cgc__central_cache_span(spanclass);
    if (!s) return false;
    /* no mark can start or end while this thread is inside cgc */
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED)) preblacken(s);
    uint64_t bytes = (uint64_t)(s->nelems - s->alloc_count) * s->elemsize;
    atomic_fetch_add_explicit(&cgc__pacer.heap_live, bytes, RELAXED);
    c->alloc[spanclass] = s;
    merge_class(c, spanclass);
    merge_black(c);
    cgc__gc_maybe_trigger();
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED) && cgc__self)
        cgc__assist(cgc__self, bytes);
    return true;
}

void cgc__cache_flush(cgc_mcache *c) {
    for (size_t i = 0; i < NUM_CENTRALS; i++) {
        cgc_span *s = c->alloc[i];
        if (s == &cgc__empty_span) continue;
        uint64_t unused = (uint64_t)(s->nelems - cgc__span_count_alloc(s)) * s->elemsize;
        unpreblacken(s);
        cgc__central_uncache_span(s);
        atomic_fetch_sub_explicit(&cgc__pacer.heap_live, unused, RELAXED);
        c->alloc[i] = &cgc__empty_span;
    }
    c->tiny = 0;
    c->tiny_offset = 0;
    cgc__cache_merge_stats(c);
}

void cgc__cache_merge_stats(cgc_mcache *c) {
    uint64_t n = 0, bytes = 0;
    for (size_t i = 0; i < NUM_CENTRALS; i++) {
        if (!c->nmalloc[i]) continue;
        unsigned sc = i == TINY_SPAN_CLASS ? 0 : (unsigned)(i / SPAN_KINDS);
        n += c->nmalloc[i];
        bytes += c->nmalloc[i] * (sc ? cgc_class_size[sc] : TINY_BLOCK);
        c->nmalloc[i] = 0;
    }
    n += c->nlarge;
    bytes += c->large_bytes;
    c->nlarge = c->large_bytes = 0;
    if (n) {
        atomic_fetch_add_explicit(&cgc__stats.mallocs, n, RELAXED);
        atomic_fetch_add_explicit(&cgc__stats.total_alloc, bytes, RELAXED);
    }
    if (c->nfree) {
        atomic_fetch_add_explicit(&cgc__stats.frees, c->nfree, RELAXED);
        c->nfree = 0;
    }
    merge_black(c);
}
