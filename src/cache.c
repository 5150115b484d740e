/*
 * cache.c — mcache: a thread's own spans, so that the allocation fast path
 * (malloc.c) takes no lock and no atomic read-modify-write.
 *
 * Per span class the cache has one current span, which the fast path
 * allocates from, and owned spans: spans that were current before and ran
 * dry, kept (up to CACHE_OWNED_MAX per thread) instead of going back to
 * mcentral.  A span has one owner at a time (s->owner); the owner keeps
 * all its spans of a class, the current one included, on owned[class],
 * linked when the span comes from mcentral and unlinked when it goes
 * back.  The owner frees into any span it owns without atomics: the slot
 * goes on the span's local free list, and a span that is not current and
 * not yet on the class's partial stack is pushed there (a singly linked
 * stack through the span itself, so the free path writes no other span).
 * A refill pops the partial stack first.  Slots freed by other threads
 * arrive on the span's remote list; the freer that makes the list
 * non-empty sets the class's bit in the owner's remote_hint, and a refill
 * that finds the partial stack empty scans the owned spans of a hinted
 * class.  So a program that frees what it allocated (a malloc
 * replacement) reuses its slots in LIFO order without touching mcentral,
 * as mimalloc's thread-owned pages do.
 *
 * Owned spans do not outlive a cycle: mark termination flushes them with
 * the current ones (sweeping sees only mcentral), so ownership is
 * rebuilt after each cycle.
 *
 * Heap accounting (cgc__pacer.heap_live): a current span counts whole (its
 * free slots are reserved for this thread); an owned span that is not
 * current counts its allocated slots only, as a span in mcentral does.
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
 * that made a slot available.  A current span counts whole in heap_live
 * already; an owned span that is not current counts allocated slots only,
 * so its freed slots leave the count here. */
static NOINLINE bool take_remote_frees_slow(cgc_mcache *c, cgc_span *s, bool current);
static ALWAYS_INLINE bool take_remote_frees(cgc_mcache *c, cgc_span *s, bool current) {
    /* a plain look first, inline: the exchange is a locked instruction,
     * and most spans have no remote frees */
    if (!atomic_load_explicit(&s->remote_free, RELAXED)) return false;
    return take_remote_frees_slow(c, s, current);
}

static NOINLINE bool take_remote_frees_slow(cgc_mcache *c, cgc_span *s, bool current) {
    /* acq_rel: pairs with the freer's CAS (see cgc__central_cache_span) */
    void *r = atomic_exchange_explicit(&s->remote_free, NULL, ACQ_REL);
    uint32_t n = 0;
    while (r) {
        void *next = *(void **)r;
        uint32_t idx = cgc__obj_index(s, (uintptr_t)r);
        _Atomic uint64_t *w = &s->alloc_bits[idx >> 6];
        atomic_store_explicit(w, atomic_load_explicit(w, RELAXED) & ~(1ull << (idx & 63)), RELAXED);
        /* a free slot of a pre-marked span is black (allocate-black) */
        if (s->preblack) cgc__set_mark(s, idx);
        if (idx < s->freeindex) {
            *(void **)r = s->local_free;
            s->local_free = r;
        } /* else: next_free_slow finds it in the bitmap */
        n++;
        r = next;
    }
    if (!n) return false;
    CGC_OWNER_ADD(c->nfree, n);
    s->alloc_cache = 0; /* rescan from freeindex */
    s->needzero = 1;
    if (!current) {
        s->alloc_count -= n;
        c->live_delta -= (int64_t)n * (int64_t)s->elemsize;
    }
    return true;
}

/* The free slots of group w of s. */
static uint64_t free_slots(cgc_span *s, uint32_t w) {
    return ~atomic_load_explicit(&s->alloc_bits[w], RELAXED) & cgc__group_slots(s, w);
}

/* Allocate-black by pre-marking (invariant beside cgc_span): a span
 * entering a cache while a mark runs, or sitting in one when a mark
 * starts, gets the mark byte of each free slot set, once, instead of a
 * mark written per object allocated.  Markers set the bytes of allocated
 * slots meanwhile: other bytes. */
static void preblacken(cgc_span *s) {
    for (uint32_t w = 0; w < (s->nelems + 63) / 64; w++) cgc__mark_set_mask(s, w, free_slots(s, w));
    s->preblack = 1;
}

/* The span leaves the cache: free slots lose the marks preblacken gave
 * them (slots allocated since keep theirs: they are black). */
static void unpreblacken(cgc_span *s) {
    if (!s->preblack) return;
    for (uint32_t w = 0; w < (s->nelems + 63) / 64; w++) cgc__mark_clear_mask(s, w, free_slots(s, w));
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
    CGC_OWNER_SET(c->nmalloc[spanclass], 0);
    unsigned sc = spanclass == TINY_SPAN_CLASS ? 0 : spanclass / SPAN_KINDS;
    atomic_fetch_add_explicit(&cgc__stats.mallocs, n, RELAXED);
    atomic_fetch_add_explicit(&cgc__stats.total_alloc, n * (sc ? cgc_class_size[sc] : TINY_BLOCK), RELAXED);
}

static void merge_black(cgc_mcache *c) {
    if (!c->black_bytes) return;
    atomic_fetch_add_explicit(&cgc__pacer.black_bytes, c->black_bytes, RELAXED);
    c->black_bytes = 0;
}

void cgc__cache_merge_live(cgc_mcache *c) {
    if (!c->live_delta) return;
    /* two's complement: adding the negative delta as unsigned subtracts */
    atomic_fetch_add_explicit(&cgc__pacer.heap_live, (uint64_t)c->live_delta, RELAXED);
    c->live_delta = 0;
}

/* The current span of spc ran dry.  A span runs dry only when full: every
 * free slot below freeindex is on local_free, and the bitmap scan found
 * none from freeindex on.  It stays owned (nothing to relink: it is on
 * the owned list already, and full spans are on no stack), or goes back to
 * mcentral when the cache owns too many. */
static void retire_current(cgc_mcache *c, unsigned spanclass, cgc_span *s) {
    CGC_ASSERT(s->local_free == NULL && s->freeindex == s->nelems && !s->in_partial);
    CGC_ASSERT(cgc__span_count_alloc(s) == s->nelems);
    unpreblacken(s);
    c->alloc[spanclass] = &cgc__empty_span;
    s->alloc_cache = 0;
    s->alloc_count = s->nelems;
    if (c->nowned > CACHE_OWNED_MAX) {
        cgc__list_remove(&c->owned[spanclass], s);
        c->nowned--;
        cgc__central_uncache_span(s);
    }
}

/* An owned span of spc with a free slot, off the partial stack, or NULL.
 * The other owned spans are looked at only when another thread freed into
 * one of this class (the remote hint). */
static cgc_span *take_owned(cgc_mcache *c, unsigned spanclass) {
    cgc_span *s = c->partial[spanclass];
    if (!s) {
        atomic_u64 *hint = &c->remote_hint[spanclass / 64];
        uint64_t bit = 1ull << (spanclass % 64);
        if (!(atomic_load_explicit(hint, RELAXED) & bit)) return NULL;
        /* cleared before the scan: a free that lands after the scan
         * passed its span sets the bit again.  Acquire: pairs with the
         * freer's release OR, so its push is visible to the scan. */
        atomic_fetch_and_explicit(hint, ~bit, ACQUIRE);
        for (cgc_span *f = c->owned[spanclass].head; f; f = f->next)
            if (f != c->alloc[spanclass] && take_remote_frees(c, f, false) && !f->in_partial) cgc__cache_partial_push(c, f);
        s = c->partial[spanclass];
        if (!s) return NULL;
    }
    c->partial[spanclass] = s->partial_next;
    s->partial_next = NULL;
    s->in_partial = 0;
    take_remote_frees(c, s, false);
    return s;
}

bool cgc__cache_refill(cgc_mcache *c, unsigned spanclass) {
    cgc_span *s = c->alloc[spanclass];
    if (s != &cgc__empty_span) {
        if (take_remote_frees(c, s, true)) return true;
        retire_current(c, spanclass, s);
    }
    /* Proportional sweeping: each refill while a sweep is pending sweeps
     * one span of any class, so sweep completes well before the next
     * trigger even without the background sweeper. */
    if (atomic_load_explicit(&cgc__sweep_pages_left, RELAXED)) cgc__sweep_one();

    s = take_owned(c, spanclass);
    bool from_central = s == NULL;
    if (from_central) {
        s = cgc__central_cache_span(spanclass, c);
        if (!s) {
            cgc__cache_merge_live(c);
            return false;
        }
        cgc__list_push(&c->owned[spanclass], s);
        c->nowned++;
    }
    /* no mark can start or end while this thread is inside cgc */
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED)) preblacken(s);
    uint64_t bytes = (uint64_t)(s->nelems - s->alloc_count) * s->elemsize;
    c->live_delta += (int64_t)bytes;
    c->alloc[spanclass] = s;
    /* The shared counters take atomic adds: after a span from mcentral
     * (the heap may be growing), else once the thread's own balance has
     * moved by CACHE_LIVE_MERGE_BYTES.  An owned span with one free slot can be
     * refilled once per object; that must not cost three atomic adds. */
    if (from_central || c->live_delta >= CACHE_LIVE_MERGE_BYTES || c->live_delta <= -CACHE_LIVE_MERGE_BYTES) {
        cgc__cache_merge_live(c);
        merge_class(c, spanclass);
        merge_black(c);
        cgc__gc_maybe_trigger();
    }
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED) && cgc__self)
        cgc__assist(cgc__self, bytes);
    return true;
}

void cgc__cache_flush(cgc_mcache *c) {
    for (size_t i = 0; i < NUM_CENTRALS; i++) {
        cgc_span *s = c->alloc[i];
        if (s != &cgc__empty_span) {
            /* the current span's count becomes exact, and its free slots
             * leave heap_live */
            s->alloc_count = cgc__span_count_alloc(s);
            uint64_t unused = (uint64_t)(s->nelems - s->alloc_count) * s->elemsize;
            unpreblacken(s);
            atomic_fetch_sub_explicit(&cgc__pacer.heap_live, unused, RELAXED);
            c->alloc[i] = &cgc__empty_span;
        }
        c->partial[i] = NULL;
        if (c->owned[i].head) {
            c->nowned -= (uint32_t)c->owned[i].n;
            cgc__central_uncache_owned((unsigned)i, &c->owned[i]); /* resets in_partial */
        }
    }
    CGC_ASSERT(c->nowned == 0);
    for (size_t w = 0; w < sizeof c->remote_hint / sizeof c->remote_hint[0]; w++)
        atomic_store_explicit(&c->remote_hint[w], 0, RELAXED);
    cgc__cache_merge_live(c);
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
        CGC_OWNER_SET(c->nmalloc[i], 0);
    }
    n += c->nlarge;
    bytes += c->large_bytes;
    CGC_OWNER_SET(c->nlarge, 0);
    CGC_OWNER_SET(c->large_bytes, 0);
    if (n) {
        atomic_fetch_add_explicit(&cgc__stats.mallocs, n, RELAXED);
        atomic_fetch_add_explicit(&cgc__stats.total_alloc, bytes, RELAXED);
    }
    if (c->nfree) {
        atomic_fetch_add_explicit(&cgc__stats.frees, c->nfree, RELAXED);
        CGC_OWNER_SET(c->nfree, 0);
    }
    merge_black(c);
}
