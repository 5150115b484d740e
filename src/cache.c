/*
 * cache.c — mcache: a thread's own spans, so that the allocation fast path
 * (malloc.c) takes no lock and no atomic read-modify-write.
 *
 * Per span class the cache has one current span, which the fast path
 * allocates from through its bitmap (freeindex, alloc_cache), and owned
 * spans: spans that were current before and ran dry, kept instead of going
 * back to mcentral.  A span has one owner at a time (s->owner); the owner
 * keeps all its spans of a class, the current one included, on
 * owned[class], linked when the span comes from mcentral and unlinked when
 * it goes back.  The owner frees into any span it owns without atomics:
 * the slot goes on the class's local free list (cgc_cache_class.free),
 * which the fast path pops before it looks at the current span.  So a
 * program that frees what it allocated (a malloc replacement) reuses its
 * slots in LIFO order, from whichever of its spans they are in, without a
 * refill and without touching mcentral, as mimalloc's thread-owned pages
 * do.  Slots freed by other threads arrive on the span's remote list; the
 * freer that makes the list non-empty sets the class's bit in the owner's
 * remote_hint, and a refill scans the owned spans of a hinted class and
 * moves their remote frees to the local list.
 *
 * Owned spans do not outlive a cycle: mark termination flushes them with
 * the current ones (sweeping sees only mcentral), so ownership is
 * rebuilt after each cycle.  The local lists are dropped then: their slots'
 * alloc bits are clear already.
 *
 * Heap accounting (cgc__pacer.heap_live): an owned span counts its
 * allocated slots, and the current span its free slots at or after
 * freeindex too (reserved for this thread: added when the span became
 * current, taken out when it leaves).  A slot entering the local free list
 * leaves the count; one taken off it enters again.
 */
#include "internal.h"

/* A span with no slot: the initial entry of every cache slot, so the fast
 * path needs no NULL test. */
cgc_span cgc__empty_span;

void cgc__cache_init(cgc_mcache *c) {
    cgc_span **owned_all = c->owned_all; /* a reused thread struct's */
    uint32_t owned_cap = c->owned_cap;
    memset(c, 0, sizeof *c);
    c->owned_all = owned_all;
    c->owned_cap = owned_cap;
    for (size_t i = 0; i < NUM_CENTRALS; i++) {
        c->cls[i].span = &cgc__empty_span;
        c->cls[i].elemsize = cgc__spanclass_elemsize((unsigned)i);
    }
    for (unsigned kind = 0; kind < 2; kind++)
        for (size_t i = 0; i <= CGC_SMALL_SIZE_MAX / CGC_SMALL_SIZE_DIV; i++)
            c->direct[kind][i] = &c->cls[cgc__class8[i] * SPAN_KINDS + kind];
}

/* Takes the slots other threads freed in s (owner only).  Returns true if
 * that made a slot available: on the local free list below freeindex,
 * in the bitmap at or after it (the current span only). */
static NOINLINE bool take_remote_frees_slow(cgc_mcache *c, cgc_span *s);
static ALWAYS_INLINE bool take_remote_frees(cgc_mcache *c, cgc_span *s) {
    /* a plain look first, inline: the exchange is a locked instruction,
     * and most spans have no remote frees */
    if (!atomic_load_explicit(&s->remote_free, RELAXED)) return false;
    return take_remote_frees_slow(c, s);
}

static NOINLINE bool take_remote_frees_slow(cgc_mcache *c, cgc_span *s) {
    /* acq_rel: pairs with the freer's CAS (see cgc__central_cache_span) */
    void *r = atomic_exchange_explicit(&s->remote_free, NULL, ACQ_REL);
    cgc_cache_class *k = &c->cls[s->spanclass];
    uint32_t n = 0, listed = 0;
    while (r) {
        void *next = *(void **)r;
        uint32_t idx = cgc__obj_index(s, (uintptr_t)r);
        _Atomic uint64_t *w = &s->alloc_bits[idx >> 6];
        atomic_store_explicit(w, atomic_load_explicit(w, RELAXED) & ~(1ull << (idx & 63)), RELAXED);
        if (idx < s->freeindex) {
            cgc__listed_push(k, s, r, idx);
            listed++;
        } else if (s->preblack) {
            cgc__set_mark(s, idx); /* a free slot of a pre-marked span is black */
        }
        n++;
        r = next;
    }
    if (!n) return false;
    CGC_OWNER_ADD(c->nfree, n);
    s->alloc_cache = 0; /* rescan from freeindex */
    s->needzero = 1;
    c->live_delta -= (int64_t)listed * (int64_t)s->elemsize;
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
        if (c->cls[i].span != &cgc__empty_span) preblacken(c->cls[i].span);
}

/* One class's allocation count into the global statistics (the others
 * are merged when they refill, at flush, and read live by cgc_read_stats). */
static void merge_class(cgc_mcache *c, unsigned spanclass) {
    uint64_t n = c->cls[spanclass].nmalloc;
    if (!n) return;
    CGC_OWNER_SET(c->cls[spanclass].nmalloc, 0);
    unsigned sc = spanclass == TINY_SPAN_CLASS ? 0 : spanclass / SPAN_KINDS;
    atomic_fetch_add_explicit(&cgc__stats.mallocs, n, RELAXED);
    atomic_fetch_add_explicit(&cgc__stats.total_alloc, n * (sc ? cgc_class_size[sc] : TINY_BLOCK), RELAXED);
}

static void merge_black(cgc_mcache *c) {
    if (c->black_bytes) {
        atomic_fetch_add_explicit(&cgc__pacer.black_bytes, c->black_bytes, RELAXED);
        c->black_bytes = 0;
    }
    if (c->freed_marked) {
        atomic_fetch_add_explicit(&cgc__pacer.freed_marked, c->freed_marked, RELAXED);
        c->freed_marked = 0;
    }
}

void cgc__cache_merge_live(cgc_mcache *c) {
    if (!c->live_delta) return;
    /* two's complement: adding the negative delta as unsigned subtracts */
    atomic_fetch_add_explicit(&cgc__pacer.heap_live, (uint64_t)c->live_delta, RELAXED);
    c->live_delta = 0;
}

void cgc__cache_live_grew(cgc_mcache *c) {
    cgc__cache_merge_live(c);
    cgc__gc_maybe_trigger();
}

/* The owned-span array (cgc_mcache.owned_all) doubled; false if the OS
 * refuses the memory. */
static NOINLINE bool owned_grow(cgc_mcache *c) {
    uint32_t cap = c->owned_cap ? c->owned_cap * 2 : 512;
    cgc_span **v = cgc__os_reserve((size_t)cap * sizeof *v, 4096);
    if (!v) return false;
    if (c->owned_all) {
        memcpy(v, c->owned_all, (size_t)c->nowned * sizeof *v);
        cgc__os_unmap(c->owned_all, (size_t)c->owned_cap * sizeof *v);
    }
    c->owned_all = v;
    c->owned_cap = cap;
    return true;
}

/* s, just taken from mcentral, joins the cache's owned spans. */
static bool owned_add(cgc_mcache *c, unsigned spanclass, cgc_span *s) {
    if (c->nowned == c->owned_cap && !owned_grow(c)) return false;
    cgc__list_push(&c->owned[spanclass], s);
    s->owned_slot = c->nowned;
    c->owned_all[c->nowned++] = s;
    return true;
}

/* s leaves the cache's owned spans (the last one takes its place). */
static void owned_remove(cgc_mcache *c, unsigned spanclass, cgc_span *s) {
    CGC_ASSERT(s->owned_slot < c->nowned && c->owned_all[s->owned_slot] == s);
    cgc__list_remove(&c->owned[spanclass], s);
    cgc_span *last = c->owned_all[--c->nowned];
    c->owned_all[s->owned_slot] = last;
    last->owned_slot = s->owned_slot;
}

/* The current span of spc ran dry: no free slot at or after freeindex
 * (freeindex == nelems); its free slots below are on the local list.  It
 * stays owned, or goes back to mcentral when the cache owns too many and
 * it has no free slot at all (so none is on the local list). */
static void retire_current(cgc_mcache *c, unsigned spanclass, cgc_span *s) {
    CGC_ASSERT(s->freeindex == s->nelems);
    unpreblacken(s);
    c->cls[spanclass].span = &cgc__empty_span;
    s->alloc_cache = 0;
    if (c->nowned > CACHE_OWNED_MAX && cgc__span_count_alloc(s) == s->nelems) {
        owned_remove(c, spanclass, s);
        cgc__central_uncache_span(s);
    }
}

/* Other threads freed into owned spans of spc (the remote hint): their
 * slots to this thread.  True if that made one available. */
static bool take_hinted_remote_frees(cgc_mcache *c, unsigned spanclass) {
    atomic_u64 *hint = &c->remote_hint[spanclass / 64];
    uint64_t bit = 1ull << (spanclass % 64);
    if (!(atomic_load_explicit(hint, RELAXED) & bit)) return false;
    /* cleared before the scan: a free that lands after the scan passed
     * its span sets the bit again.  Acquire: pairs with the freer's
     * release OR, so its push is visible to the scan. */
    atomic_fetch_and_explicit(hint, ~bit, ACQUIRE);
    bool any = false;
    for (cgc_span *f = c->owned[spanclass].head; f; f = f->next) any |= take_remote_frees(c, f);
    return any;
}

bool cgc__cache_refill(cgc_mcache *c, unsigned spanclass) {
    cgc_cache_class *k = &c->cls[spanclass];
    cgc_span *s = k->span;
    if (s != &cgc__empty_span && take_remote_frees(c, s)) return true;
    if (take_hinted_remote_frees(c, spanclass)) return true;
    CGC_ASSERT(k->free == NULL); /* the caller looked there first */
    if (s != &cgc__empty_span) retire_current(c, spanclass, s);
    /* Proportional sweeping: each span taken while a sweep is pending
     * sweeps one span of any class, so sweep completes well before the
     * next trigger even without the background sweeper. */
    if (atomic_load_explicit(&cgc__sweep_pages_left, RELAXED)) cgc__sweep_one(false);

    s = cgc__central_cache_span(spanclass, c);
    if (!s) {
        cgc__cache_merge_live(c);
        return false;
    }
    if (!owned_add(c, spanclass, s)) {
        cgc__central_uncache_span(s);
        cgc__cache_merge_live(c);
        return false;
    }
    /* no mark can start or end while this thread is inside cgc */
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED)) preblacken(s);
    /* the span's free slots are this thread's now: they count */
    uint64_t bytes = (uint64_t)(s->nelems - s->alloc_count) * s->elemsize;
    c->live_delta += (int64_t)bytes;
    k->span = s;
    cgc__cache_merge_live(c);
    merge_class(c, spanclass);
    merge_black(c);
    cgc__gc_maybe_trigger();
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED) && cgc__self)
        cgc__assist(cgc__self, bytes);
    return true;
}

/* Debug builds: every slot on a local free list is a free slot below
 * freeindex of a span of its class that c owns. */
static void check_local_free(cgc_mcache *c, unsigned spanclass) {
#ifdef CGC_DEBUG_CHECKS
    for (void *f = c->cls[spanclass].free; f; f = *(void **)f) {
        cgc_span *s = cgc__span_of((uintptr_t)f);
        uint32_t idx = s ? cgc__obj_index(s, (uintptr_t)f) : 0;
        unsigned bit;
        if (!s || atomic_load_explicit(&s->owner, RELAXED) != c || s->spanclass != spanclass || idx >= s->freeindex ||
            cgc__bit(s->alloc_bits, idx) || s->base + idx * s->elemsize != (uintptr_t)f ||
            (s->elemsize >= 16 && (cgc__listed_word(f, &bit) != &s->alloc_bits[idx >> 6] || bit != idx % 64)))
            cgc__fatal("local free list of class %u: slot %p is not a free slot below freeindex of an owned span", spanclass, f);
    }
#else
    (void)c, (void)spanclass;
#endif
}

void cgc__cache_flush(cgc_mcache *c, bool cycle_end) {
    for (size_t i = 0; i < NUM_CENTRALS; i++) {
        cgc_cache_class *k = &c->cls[i];
        check_local_free(c, (unsigned)i);
        k->free = NULL; /* free in their bitmaps already */
        cgc_span *s = k->span;
        if (s != &cgc__empty_span) {
            /* the current span's reserved slots leave heap_live */
            uint64_t unused = (uint64_t)cgc__span_count_free_from(s, s->freeindex) * s->elemsize;
            unpreblacken(s);
            c->live_delta -= (int64_t)unused;
            k->span = &cgc__empty_span;
        }
    }
    /* every owned span (the current ones among them) back to mcentral,
     * from the array; then the per-class lists are dropped whole */
    cgc__central_uncache_owned(c->owned_all, c->nowned, !cycle_end);
    c->nowned = 0;
    for (size_t i = 0; i < NUM_CENTRALS; i++) c->owned[i] = (cgc_span_list){NULL, 0};
    for (size_t w = 0; w < sizeof c->remote_hint / sizeof c->remote_hint[0]; w++)
        atomic_store_explicit(&c->remote_hint[w], 0, RELAXED);
    cgc__cache_merge_live(c);
    c->unassisted = 0;
    c->tiny = 0;
    c->tiny_offset = 0;
    cgc__cache_merge_stats(c);
}

void cgc__cache_merge_stats(cgc_mcache *c) {
    uint64_t n = 0, bytes = 0;
    for (size_t i = 0; i < NUM_CENTRALS; i++) {
        if (!c->cls[i].nmalloc) continue;
        unsigned sc = i == TINY_SPAN_CLASS ? 0 : (unsigned)(i / SPAN_KINDS);
        n += c->cls[i].nmalloc;
        bytes += c->cls[i].nmalloc * (sc ? cgc_class_size[sc] : TINY_BLOCK);
        CGC_OWNER_SET(c->cls[i].nmalloc, 0);
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
