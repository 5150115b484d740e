/*
 * malloc.c — the public allocation entry points.
 *
 * Small objects (<= 32 KiB): the thread's cached span for the object's span
 * class; the fast path pops the span's local free list or takes the lowest
 * set bit of allocCache, sets the alloc bit, and zeroes only if the span's
 * memory may be dirty.  No lock, no atomic read-modify-write; the thread is
 * marked as inside cgc so that a stop request waits until it leaves.
 * While a mark runs, new objects are allocated black: small slots come
 * from spans whose free slots were pre-marked (cache.c); large objects and
 * the pieces of a tiny block already in use are marked here.
 * Tiny noscan objects (< 16 B) are packed into 16-byte blocks.
 * Large objects get a span of their own from the page heap.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

static _Atomic(cgc_oom_handler) oom_handler;

/* The largest object: 1 TiB (the heap's address space is 128 TiB; beyond
 * this a request is treated as a size overflow). */
#define CGC_MAX_ALLOC ((size_t)1 << 40)

/* The freed-object mark written into the second word of an object freed to
 * another thread's span: detects most double frees still pending there. */
static uintptr_t free_cookie;

static ALWAYS_INLINE void set_bit(_Atomic uint64_t *bits, uint32_t idx) {
    _Atomic uint64_t *w = &bits[idx >> 6];
    /* owner-only writer: a plain load and store, no locked instruction */
    atomic_store_explicit(w, atomic_load_explicit(w, RELAXED) | (1ull << (idx & 63)), RELAXED);
}

/* Allocation while marking, where no pre-marking applies (a large object,
 * a tiny block in use since before the mark): the new object is black. */
static NOINLINE void mark_new_object(cgc_mcache *c, cgc_span *s, uint32_t idx) {
    cgc__set_mark(s, idx);
    c->black_bytes += s->elemsize;
}

static NOINLINE void *small_alloc_slow(cgc_thread *t, unsigned spc, bool zero);

/* Debug builds: the slot at obj is a free slot of a span this thread
 * holds, of class spc, and its alloc bit is bit `bit` of *word. */
static void check_claim(cgc_thread *t, unsigned spc, void *obj, _Atomic uint64_t *word, unsigned bit) {
#ifdef CGC_DEBUG_CHECKS
    cgc_span *s = cgc__span_of((uintptr_t)obj);
    CGC_ASSERT(s != NULL);
    uint32_t idx = cgc__obj_index(s, (uintptr_t)obj);
    CGC_ASSERT(s->base + idx * s->elemsize == (uintptr_t)obj && word == &s->alloc_bits[idx >> 6] && bit == idx % 64);
    CGC_ASSERT(atomic_load_explicit(&s->sweepgen, RELAXED) == atomic_load_explicit(&cgc__sweepgen, RELAXED));
    CGC_ASSERT(!cgc__bit(s->alloc_bits, idx));
    /* one owner at a time, and it is this thread: a span handed back (or
     * freed and reused) while a cache still allocates from it would give
     * slots out twice */
    CGC_ASSERT(atomic_load_explicit(&s->owner, RELAXED) == &t->cache && s->where == WHERE_CACHED);
    CGC_ASSERT(s->spanclass == spc);
    /* allocate-black */
    CGC_ASSERT(!atomic_load_explicit(&cgc__gc_marking, RELAXED) || cgc__marked(s, idx));
#else
    (void)t, (void)spc, (void)obj, (void)word, (void)bit;
#endif
}

/* Claims the slot at obj, whose alloc bit is bit `bit` of *word: sets the
 * bit, counts the allocation.  Inside cgc; the slot is black already
 * while a mark runs.  Shared by the general path and the frameless fast
 * path. */
static ALWAYS_INLINE void claim_slot(cgc_thread *t, cgc_cache_class *k, void *obj, _Atomic uint64_t *word, unsigned bit) {
    check_claim(t, (unsigned)(k - t->cache.cls), obj, word, bit);
    /* owner-only writer: a plain load and store, no locked instruction */
    atomic_store_explicit(word, atomic_load_explicit(word, RELAXED) | (1ull << bit), RELAXED);
    CGC_OWNER_ADD(k->nmalloc, 1);
}

/* A slot from the current span's bitmap.  While marking it is already
 * black (pre-marked when the span entered the cache or the mark started:
 * cache.c), so a marker that finds the slot allocated finds it black and
 * never scans it half-built; only the pacer's count is kept. */
static ALWAYS_INLINE void *claim_span_slot(cgc_thread *t, cgc_span *s, unsigned spc, uint32_t idx) {
    if (unlikely(s->preblack)) t->cache.black_bytes += s->elemsize;
    void *obj = (void *)(s->base + idx * s->elemsize);
    claim_slot(t, &t->cache.cls[spc], obj, &s->alloc_bits[idx >> 6], idx & 63);
    return obj;
}

/* Allocation from the local free list pays its mark assist in batches of
 * this many bytes (a refill pays for a whole span at once). */
#define LIST_ASSIST_BYTES ((uint64_t)64 << 10)

/* The current span's path of small_alloc: allocCache, else the bitmap
 * scan and the refill. */
static ALWAYS_INLINE void *small_alloc_span(cgc_thread *t, unsigned spc, bool zero) {
    cgc_span *s = t->cache.cls[spc].span;
    uint64_t cache = s->alloc_cache;
    if (unlikely(cache == 0)) return small_alloc_slow(t, spc, zero);
    unsigned tz = (unsigned)__builtin_ctzll(cache);
    uint32_t idx = s->freeindex + tz;
    s->alloc_cache = (cache >> tz) >> 1;
    s->freeindex = idx + 1;
    void *obj = claim_span_slot(t, s, spc, idx);
    if (zero && s->needzero) memset(obj, 0, s->elemsize);
    return obj;
}

/* A slot off the local free list of spc (not empty), with everything the
 * fast path leaves to this path: publishing heap_live, and while marking
 * the slot's mark (owned spans that are not current are not pre-marked)
 * and the mark assist.  Inside cgc. */
static NOINLINE void *take_listed(cgc_thread *t, unsigned spc, bool zero) {
    cgc_mcache *c = &t->cache;
    bool marking = atomic_load_explicit(&cgc__gc_marking, RELAXED);
    if (unlikely(marking && c->unassisted >= LIST_ASSIST_BYTES)) {
        uint64_t debt = c->unassisted;
        c->unassisted = 0;
        /* may wait for the mark to end, and mark termination empties the
         * cache: look at it again */
        cgc__assist(t, debt);
        if (!c->cls[spc].free) return small_alloc_span(t, spc, zero);
        marking = atomic_load_explicit(&cgc__gc_marking, RELAXED);
    }
    if (unlikely(c->live_delta >= CACHE_LIVE_MERGE_BYTES)) cgc__cache_live_grew(c);
    cgc_cache_class *k = &c->cls[spc];
    void *f = k->free;
    uintptr_t size = k->elemsize;
    /* slow enough to look the span up (8-byte slots have no second word) */
    cgc_span *s = cgc__span_of_low((uintptr_t)f);
    uint32_t idx = cgc__obj_index(s, (uintptr_t)f);
    k->free = *(void **)f;
    c->live_delta += (int64_t)size;
    if (marking) {
        cgc__set_mark(s, idx);
        c->black_bytes += size;
        c->unassisted += size;
    }
    claim_slot(t, k, f, &s->alloc_bits[idx >> 6], idx & 63);
    if (zero) memset(f, 0, size);
    return f;
}

/* The general path's small allocation.  Inside cgc (t->in_cgc set by the
 * caller).  zero is false only for cgc_malloc_atomic_uninit (noscan: old
 * data is harmless). */
static ALWAYS_INLINE void *small_alloc(cgc_thread *t, unsigned spc, bool zero) {
    if (t->cache.cls[spc].free) return take_listed(t, spc, zero);
    return small_alloc_span(t, spc, zero);
}

static NOINLINE void *small_alloc_slow(cgc_thread *t, unsigned spc, bool zero) {
    /* A refill may wait for a mark to end (the overshoot bound), and mark
     * termination empties every cache: look at the cache again each time. */
    for (int tries = 0;; tries++) {
        if (t->cache.cls[spc].free) return take_listed(t, spc, zero);
        cgc_span *s = t->cache.cls[spc].span;
        /* a span used up to its last slot (freeindex == nelems, the
         * common case here) has nothing left in its bitmap */
        int64_t idx = s->freeindex >= s->nelems ? -1 : cgc__span_next_free_slow(s);
        if (idx >= 0) {
            void *obj = claim_span_slot(t, s, spc, (uint32_t)idx);
            if (zero && s->needzero) memset(obj, 0, s->elemsize);
            return obj;
        }
        if (tries > 100) cgc__fatal("no free slot in class %u after %d refills", spc, tries);
        if (!cgc__cache_refill(&t->cache, spc)) return NULL;
    }
}

static void *large_alloc(cgc_thread *t, size_t size, unsigned kind, const cgc_type *type, bool zero) {
    uintptr_t npages = (size + CGC_PAGE_SIZE - 1) >> CGC_PAGE_SHIFT;
    /* The assist comes first, as in Go's mallocgc.  Past the overshoot
     * bound it waits for the mark to end as a blocking thread, and a
     * loaded machine may not run it again before the next cycle has
     * scanned its stack and swept: an object allocated before the wait
     * would be held only through its span struct, which no scan reads, and
     * be freed under the caller. */
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED)) cgc__assist(t, npages << CGC_PAGE_SHIFT);
    cgc_span *s = cgc__heap_alloc_span(npages, kind);
    if (!s) return NULL;
    s->type = type;
    s->user_size = size;
    if (zero && s->needzero) memset((void *)s->base, 0, s->elemsize);
    set_bit(s->alloc_bits, 0);
    s->alloc_count = 1;
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED)) mark_new_object(&t->cache, s, 0);
    cgc__central_put_swept(s);
    CGC_OWNER_ADD(t->cache.nlarge, 1);
    CGC_OWNER_ADD(t->cache.large_bytes, s->elemsize);
    atomic_fetch_add_explicit(&cgc__pacer.heap_live, s->elemsize, RELAXED);
    cgc__gc_maybe_trigger();
    return (void *)s->base;
}

static ALWAYS_INLINE cgc_thread *self_thread(void) {
    cgc_thread *t = cgc__self;
    if (unlikely(!t)) t = cgc__thread_register_self();
    return t;
}

/* Allocation failed: collect, ask the handler, retry once; else ENOMEM. */
static NOINLINE void *alloc_failed(size_t size, void *(*retry)(size_t, const void *), const void *arg) {
    if (size > CGC_MAX_ALLOC) { /* no heap could hold it: an overflow, not an OOM */
        errno = ENOMEM;
        return NULL;
    }
    cgc_collect();
    void *p = retry(size, arg);
    if (p) return p;
    cgc_oom_handler h = atomic_load(&oom_handler);
    if (h) {
        h(size);
        p = retry(size, arg);
        if (p) return p;
    }
    errno = ENOMEM;
    return NULL;
}

/* cgc_malloc_atomic_uninit: KIND_NOSCAN without zeroing (not a span kind:
 * a flag beside it on the way through the general path). */
#define ALLOC_UNINIT 4u

/* One allocation of `size` bytes of span kind `kind` (| ALLOC_UNINIT);
 * NULL if out of memory. */
static ALWAYS_INLINE void *alloc_kind(size_t size, unsigned kind, const cgc_type *type) {
    cgc_thread *t = self_thread();
    sig_atomic_t prev = cgc__enter(t);
    bool zero = !(kind & ALLOC_UNINIT);
    kind &= ~ALLOC_UNINIT;
    void *p;
    if (likely(size <= CGC_MAX_SMALL_SIZE)) {
        p = small_alloc(t, cgc__size_class(size) * SPAN_KINDS + kind, zero);
    } else if (size > CGC_MAX_ALLOC) {
        p = NULL; /* more than the address space can hold */
    } else {
        p = large_alloc(t, size, kind, type, zero);
    }
    cgc__leave(t, prev);
    return p;
}

/* The retry after a failed allocation; arg carries the kind (| ALLOC_UNINIT). */
static void *retry_kind(size_t size, const void *arg) { return alloc_kind(size, (unsigned)(uintptr_t)arg, NULL); }

/* Everything the fast path below does not handle: a thread's first
 * allocation, large objects, an empty allocCache (bitmap scan, refill,
 * pacing), out of memory. */
static NOINLINE void *alloc_general(size_t size, unsigned kind) {
    /* pointer-free requests of 1..15 bytes: the tiny allocator */
    if ((kind & ~ALLOC_UNINIT) == KIND_NOSCAN && size > 0 && size < TINY_BLOCK) return cgc_malloc_atomic(size);
    void *p = alloc_kind(size, kind, NULL);
    if (unlikely(!p))
        return alloc_failed(size, retry_kind, (const void *)(uintptr_t)kind);
    return p;
}

/* The fast path's exit for a slot that needs zeroing: zero it still
 * inside cgc (a stop in between would show the collector an allocated
 * object holding old data: gccheckmark would rightly object to a black
 * object pointing at freed ones), then leave. */
static NOINLINE void *alloc_fast_zero(cgc_thread *t, sig_atomic_t prev, void *obj, size_t zero) {
    /* the smallest classes with stores of known size (a call to memset
     * costs more than zeroing a few words; 16 bytes are zeroed in
     * alloc_fast itself) */
    switch (zero) {
    case 8: __builtin_memset(obj, 0, 8); break;
    case 24: __builtin_memset(obj, 0, 24); break;
    case 32: __builtin_memset(obj, 0, 32); break;
    case 48: __builtin_memset(obj, 0, 48); break;
    case 64: __builtin_memset(obj, 0, 64); break;
    default: memset(obj, 0, zero); break;
    }
    cgc__leave(t, prev);
    return obj;
}

/* The fast path's exit when a stop request arrived while it was inside
 * cgc: answer it (the new object is held in this frame). */
static NOINLINE void *alloc_fast_stopped(cgc_thread *t, sig_atomic_t prev, void *obj) {
    cgc__handshake_deferred(t, prev);
    return obj;
}

/* The fast path's exit for everything else small: the local free list
 * while a mark runs or with heap_live to publish, an empty allocCache
 * (the bitmap scan, the refill), still inside cgc with the class known. */
static NOINLINE void *alloc_fast_slow(cgc_thread *t, sig_atomic_t prev, cgc_cache_class *k, size_t size, unsigned kind) {
    void *p = small_alloc(t, (unsigned)(k - t->cache.cls), !(kind & ALLOC_UNINIT));
    cgc__leave(t, prev);
    if (unlikely(!p)) return alloc_general(size, kind); /* the OOM path */
    return p;
}

/* The fast path of cgc_malloc / cgc_malloc_atomic (16 B .. 32 KiB): the
 * common cases of small_alloc, written so that the compiler needs no
 * stack frame: every other case leaves through a tail call (zeroing, a
 * stop that arrived, alloc_fast_slow). */
static ALWAYS_INLINE void *alloc_fast(size_t size, unsigned kind) {
    const bool zeroing = !(kind & ALLOC_UNINIT);
    const unsigned spkind = kind & ~ALLOC_UNINIT;
    cgc_thread *t = cgc__self;
    /* 9 B .. 32 KiB in one compare (smaller sizes wrap around): slots of
     * the 8-byte class have no second word for the local free list's
     * span and index, so their allocations take the general path, and so
     * do pointer-free requests under 16 bytes (the tiny allocator) */
    const size_t min = spkind == KIND_NOSCAN ? TINY_BLOCK : 9;
    if (unlikely(t == NULL || size - min > CGC_MAX_SMALL_SIZE - min)) return alloc_general(size, kind);
    _Static_assert(KIND_SCAN < 2 && KIND_NOSCAN < 2, "cgc_mcache.direct has the two fast kinds");
    cgc_cache_class *k = likely(size <= CGC_SMALL_SIZE_MAX)
                             ? t->cache.direct[spkind][(size + 7) >> 3]
                             : &t->cache.cls[cgc_size_to_class128[(size - CGC_SMALL_SIZE_MAX + 127) >> 7] * SPAN_KINDS + spkind];
    sig_atomic_t prev = cgc__enter(t);
    /* the cache is read only inside cgc: mark termination empties it */
    _Atomic uint64_t *word;
    unsigned bit;
    size_t zero;
    void *obj = k->free;
    if (obj) {
        /* the local free list, unless its slot must be marked (owned
         * spans are not pre-marked), heap_live is due to be published,
         * or the slot has no second word to say where it is */
        if (unlikely(atomic_load_explicit(&cgc__gc_marking, RELAXED))) return alloc_fast_slow(t, prev, k, size, kind);
        if (unlikely(t->cache.live_delta >= CACHE_LIVE_MERGE_BYTES)) return alloc_fast_slow(t, prev, k, size, kind);
        uintptr_t es = k->elemsize;
        word = cgc__listed_word(obj, &bit); /* es >= 16 here */
        k->free = *(void **)obj;
        t->cache.live_delta += (int64_t)es;
        zero = zeroing ? es : 0;
    } else {
        cgc_span *s = k->span;
        uint64_t cache = s->alloc_cache;
        if (unlikely(cache == 0)) return alloc_fast_slow(t, prev, k, size, kind);
        unsigned tz = (unsigned)__builtin_ctzll(cache);
        uint32_t idx = s->freeindex + tz;
        s->alloc_cache = (cache >> tz) >> 1;
        s->freeindex = idx + 1;
        zero = zeroing && s->needzero ? s->elemsize : 0;
        if (unlikely(s->preblack)) t->cache.black_bytes += s->elemsize;
        obj = (void *)(s->base + idx * s->elemsize);
        word = &s->alloc_bits[idx >> 6];
        bit = idx & 63;
    }
    claim_slot(t, k, obj, word, bit);
    if (zero == 16) __builtin_memset(obj, 0, 16); /* the commonest class: one store */
    else if (zero) return alloc_fast_zero(t, prev, obj, zero);
    if (unlikely(cgc__leave_stop_pending(t, prev))) return alloc_fast_stopped(t, prev, obj);
    return obj;
}

void *cgc_malloc(size_t size) { return alloc_fast(size, KIND_SCAN); }

/* Tiny objects: noscan, under 16 bytes, packed into the thread's current
 * 16-byte block at an offset aligned as the size allows.  The block is one
 * object to the collector: it lives while any of its pieces is referenced. */
static void *tiny_alloc(size_t size) {
    cgc_thread *t = self_thread();
    cgc_mcache *c = &t->cache;
    sig_atomic_t prev = cgc__enter(t);
    uint32_t off = c->tiny_offset;
    if ((size & 7) == 0) off = (off + 7) & ~7u;
    else if ((size & 3) == 0) off = (off + 3) & ~3u;
    else if ((size & 1) == 0) off = (off + 1) & ~1u;
    void *p;
    if (c->tiny && off + size <= TINY_BLOCK) {
        p = (void *)(c->tiny + off);
        c->tiny_offset = off + (uint32_t)size;
        CGC_OWNER_ADD(c->cls[TINY_SPAN_CLASS].nmalloc, 1);
        if (unlikely(atomic_load_explicit(&cgc__gc_marking, RELAXED))) {
            cgc_span *s = cgc__span_of(c->tiny);
            uint32_t idx = cgc__obj_index(s, c->tiny);
            if (!cgc__marked(s, idx)) mark_new_object(c, s, idx);
        }
    } else {
        p = small_alloc(t, TINY_SPAN_CLASS, true);
        if (p) {
            c->tiny = (uintptr_t)p;
            c->tiny_offset = (uint32_t)size;
        }
    }
    cgc__leave(t, prev);
    return p;
}

static void *retry_tiny(size_t size, const void *arg) { (void)arg; return tiny_alloc(size); }

static NOINLINE void *tiny_alloc_checked(size_t size) {
    void *p = tiny_alloc(size);
    if (unlikely(!p)) return alloc_failed(size, retry_tiny, NULL);
    return p;
}

void *cgc_malloc_atomic(size_t size) {
    if (size > 0 && size < TINY_BLOCK) return tiny_alloc_checked(size);
    return alloc_fast(size, KIND_NOSCAN);
}

/* 1..15 bytes reach the tiny allocator through alloc_general */
void *cgc_malloc_atomic_uninit(size_t size) { return alloc_fast(size, KIND_NOSCAN | ALLOC_UNINIT); }

void *cgc_calloc(size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return cgc_malloc(total);
}

/* ----------------------------------------------------------- typed -- */

const cgc_type *cgc_type_new(size_t size, const size_t *offsets, size_t count) {
    if (size == 0 || size % sizeof(void *) || (count && !offsets) || count > size / sizeof(void *)) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (offsets[i] % sizeof(void *) || offsets[i] >= size || (i && offsets[i] <= offsets[i - 1])) {
            errno = EINVAL;
            return NULL;
        }
    }
    cgc_type *t = malloc(sizeof *t + count * sizeof(size_t));
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    t->size = size;
    t->nptrs = count;
    if (count) memcpy(t->offsets, offsets, count * sizeof(size_t));
    return t;
}

static void *retry_typed(size_t size, const void *arg);

static void *typed_alloc(size_t size, const cgc_type *type) {
    cgc_thread *t = self_thread();
    sig_atomic_t prev = cgc__enter(t);
    if (size > CGC_MAX_SMALL_SIZE - TYPED_HEADER) {
        /* large: the type and size live in the span, no header */
        void *p = size > CGC_MAX_ALLOC ? NULL : large_alloc(t, size, KIND_TYPED, type, true);
        cgc__leave(t, prev);
        return p;
    }
    uintptr_t *obj = small_alloc(t, cgc__size_class(size + TYPED_HEADER) * SPAN_KINDS + KIND_TYPED, true);
    if (obj) {
        /* the header is written before the thread can be stopped, size
         * before type (mark.c reads the type, then the size) */
        obj[1] = size;
        atomic_thread_fence(RELEASE);
        obj[0] = (uintptr_t)type;
    }
    cgc__leave(t, prev);
    return obj ? obj + 2 : NULL;
}

static void *retry_typed(size_t size, const void *arg) { return typed_alloc(size, arg); }

void *cgc_malloc_typed(size_t size, const cgc_type *type) {
    if (!type) cgc__fatal("cgc_malloc_typed(%zu, NULL): no type", size);
    void *p = typed_alloc(size, type);
    if (unlikely(!p)) return alloc_failed(size, retry_typed, type);
    return p;
}

/* ------------------------------------------------ queries and free -- */

/* The user-visible start of the object holding p, its span and index. */
typedef struct obj_ref {
    cgc_span *span;
    uint32_t idx;
    uintptr_t obj;  /* start of the slot */
    uintptr_t user; /* start of the user's object */
    size_t usable;
} obj_ref;

static bool lookup(const void *p, obj_ref *r) {
    cgc_span *s = cgc__span_of_heap((uintptr_t)p);
    if (!s) return false;
    uint32_t idx = cgc__obj_index(s, (uintptr_t)p);
    if (!cgc__bit(s->alloc_bits, idx)) return false;
    r->span = s;
    r->idx = idx;
    r->obj = s->base + idx * s->elemsize;
    r->user = r->obj;
    r->usable = s->elemsize;
    if (s->kind == KIND_TYPED && s->sizeclass) {
        r->user = r->obj + TYPED_HEADER;
        r->usable = s->elemsize - TYPED_HEADER;
    }
    if (s->spanclass == TINY_SPAN_CLASS) {
        r->user = (uintptr_t)p;
        r->usable = r->obj + TINY_BLOCK - (uintptr_t)p;
    }
    return true;
}

size_t cgc_size(const void *p) {
    obj_ref r;
    if (!p || !lookup(p, &r)) return 0;
    if ((uintptr_t)p < r.user) return 0; /* inside a typed header */
    return r.usable;
}

void *cgc_base(const void *p) {
    obj_ref r;
    if (!p || !lookup(p, &r)) return NULL;
    if ((uintptr_t)p < r.user) return NULL;
    return (void *)r.user;
}

/* gccheckmark (world stopped): obj was freed by a thread that does not
 * own its span and waits on the span's remote list, its alloc bit still
 * set.  Its words now hold the list link and the cookie, not the program's
 * data.  The cookie test is a filter; the list walk decides. */
bool cgc__pending_remote_free(cgc_span *s, uintptr_t obj) {
    if (s->elemsize < 16 || ((uintptr_t *)obj)[1] != (free_cookie ^ obj)) return false;
    for (void *r = atomic_load_explicit(&s->remote_free, ACQUIRE); r; r = *(void **)r)
        if ((uintptr_t)r == obj) return true;
    return false;
}

static NORETURN void bad_free(const void *p, const char *why) {
    cgc__fatal("cgc_free(%p): %s", p, why);
}

static void free_large(cgc_thread *t, cgc_span *s, const void *p) {
    if (atomic_load_explicit(&cgc__gc_marking, ACQUIRE)) {
        /* markers may be reading the span: the sweeper frees it */
        if (atomic_exchange_explicit(&s->large_freed, 1, ACQ_REL)) bad_free(p, "object already freed");
        return;
    }
    cgc_central *c = &cgc__central[s->spanclass];
    cgc__lock(&c->lock);
    if (!cgc__bit(s->alloc_bits, 0) || atomic_load_explicit(&s->large_freed, RELAXED)) {
        cgc__unlock(&c->lock);
        bad_free(p, "object already freed");
    }
    if (s->list == NULL) {
        /* being swept right now: let the sweeper free it */
        atomic_store_explicit(&s->large_freed, 1, RELEASE);
        cgc__unlock(&c->lock);
        return;
    }
    cgc__central_remove_locked(c, s);
    cgc__unlock(&c->lock);
    atomic_fetch_sub_explicit(&cgc__pacer.heap_live, s->elemsize, RELAXED);
    CGC_OWNER_ADD(t->cache.nfree, 1);
    cgc__heap_free_span(s);
}

/* Every case of cgc_free: checks with their messages, large objects,
 * remote frees.  The owner's common case is inlined in cgc_free below. */
static NOINLINE void free_general(void *p) {
    if (!p) return;
    cgc_thread *t = self_thread();
    cgc_span *s = cgc__span_of_heap((uintptr_t)p);
    if (!s) bad_free(p, "not a pointer cgc allocated");
    uint32_t idx = cgc__obj_index(s, (uintptr_t)p);
    uintptr_t obj = s->base + idx * s->elemsize;
    if (s->spanclass == TINY_SPAN_CLASS) return; /* blocks are shared */
    uintptr_t user = obj + ((s->kind == KIND_TYPED && s->sizeclass) ? TYPED_HEADER : 0);
    if ((uintptr_t)p != user) bad_free(p, "interior pointer (not the start of an object)");
    if (!cgc__bit(s->alloc_bits, idx)) bad_free(p, "object already freed (or never allocated)");
    /* while marking, the object's pointers count as overwritten: what they
     * reach may have been copied into a black object (cgc_realloc does) */
    if (s->kind != KIND_NOSCAN && unlikely(__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED)))
        cgc__barrier_release((void *)obj, s->elemsize);

    sig_atomic_t prev = cgc__enter(t);
    cgc_mcache *c = &t->cache;
    /* freed during a mark after it was counted as marked or black: it
     * leaves the live heap the mark computes (cgc_pacer.freed_marked) */
    if (atomic_load_explicit(&cgc__gc_marking, RELAXED) && cgc__marked(s, idx)) c->freed_marked += s->elemsize;
    if (!s->sizeclass) {
        free_large(t, s, p);
    } else if (atomic_load_explicit(&s->owner, RELAXED) == c) {
        /* a span we own, current or not (only we make ourselves its
         * owner, and we are here): a local free */
        if (cgc__cache_free_local(c, s, (void *)obj, idx)) cgc__cache_merge_live(c);
    } else {
        /* another thread's span, or one in mcentral: a remote free */
        uintptr_t *words = (uintptr_t *)obj;
        uintptr_t cookie = free_cookie ^ obj;
        if (s->elemsize >= 16) {
            if (words[1] == cookie) {
                for (void *r = atomic_load_explicit(&s->remote_free, ACQUIRE); r; r = *(void **)r)
                    if ((uintptr_t)r == obj) {
                        cgc__leave(t, prev);
                        bad_free(p, "object already freed");
                    }
            }
            words[1] = cookie;
        }
        void *head = atomic_load_explicit(&s->remote_free, RELAXED);
        /* acq_rel: an owner that takes the list before this push made
         * itself the owner first, and the acquire makes that visible to
         * the owner load below (cgc__central_cache_span) */
        do {
            words[0] = (uintptr_t)head;
        } while (!atomic_compare_exchange_weak_explicit(&s->remote_free, &head, (void *)obj, ACQ_REL, RELAXED));
        if (!head) {
            /* the list was empty: tell whoever holds the span */
            cgc_mcache *o = atomic_load_explicit(&s->owner, RELAXED);
            if (o) atomic_fetch_or_explicit(&o->remote_hint[s->spanclass / 64], 1ull << (s->spanclass % 64), RELEASE);
            else if (s->where == WHERE_LIST) cgc__central_note_remote_free(s);
        }
    }
    cgc__leave(t, prev);
}

/* The fast path's exits (tail calls, so that it needs no stack frame):
 * heap_live to publish; anything but the owner's common case. */
static NOINLINE void free_fast_publish(cgc_thread *t, sig_atomic_t prev) {
    cgc__cache_merge_live(&t->cache);
    cgc__leave(t, prev);
}

static NOINLINE void free_fast_miss(cgc_thread *t, sig_atomic_t prev, void *p) {
    cgc__leave(t, prev);
    free_general(p);
}

/* The fast path: an object at the start of its slot, allocated, in a
 * span this thread owns (current or owned), no mark running (while one
 * runs, the write barrier shades what a scanned object points to, and the
 * pacer counts frees of marked objects: free_general).  The ownership
 * test comes after entering cgc: mark termination hands owned spans back,
 * and it cannot run while we are inside. */
void cgc_free(void *p) {
    cgc_thread *t = cgc__self;
    if (unlikely(t == NULL)) return free_general(p);
    sig_atomic_t prev = cgc__enter(t);
    cgc_mcache *c = &t->cache;
    uintptr_t a = (uintptr_t)p;
    cgc_span *s = cgc__span_of_wrapped(a); /* NULL for NULL */
    if (likely(s != NULL && atomic_load_explicit(&s->owner, RELAXED) == c)) {
        uintptr_t off = a - s->base; /* huge when a < base (or a >= 2^47) */
        uint32_t idx = (uint32_t)((off * s->divmagic) >> 32);
        if (likely(a < s->limit && off == idx * s->elemsize && cgc__bit(s->alloc_bits, idx) && s->spanclass != TINY_SPAN_CLASS &&
                   !atomic_load_explicit(&cgc__gc_marking, RELAXED))) {
            if (unlikely(cgc__cache_free_local(c, s, p, idx))) return free_fast_publish(t, prev);
            if (unlikely(cgc__leave_stop_pending(t, prev))) return cgc__handshake_deferred(t, prev);
            return;
        }
    }
    return free_fast_miss(t, prev, p);
}

void *cgc_realloc(void *p, size_t size) {
    if (!p) return cgc_malloc(size);
    obj_ref r;
    if (!lookup(p, &r) || (uintptr_t)p != r.user) bad_free(p, "cgc_realloc of a pointer that is not the start of a cgc object");
    size_t old = r.usable;
    if (r.span->kind == KIND_TYPED && !r.span->sizeclass) old = r.span->user_size;
    else if (r.span->kind == KIND_TYPED) old = ((uintptr_t *)r.obj)[1];
    if (size <= old && size >= old / 2 && r.span->spanclass != TINY_SPAN_CLASS) {
        /* fits and is not wasteful: keep it, clear the tail */
        memset((char *)p + size, 0, r.usable - size);
        if (r.span->kind == KIND_TYPED) {
            if (r.span->sizeclass) ((uintptr_t *)r.obj)[1] = size;
            else r.span->user_size = size;
        }
        return p;
    }
    void *q;
    if (r.span->kind == KIND_TYPED) {
        const cgc_type *type = r.span->sizeclass ? (const cgc_type *)((uintptr_t *)r.obj)[0] : r.span->type;
        q = cgc_malloc_typed(size, type);
    } else if (r.span->kind == KIND_NOSCAN) {
        q = cgc_malloc_atomic(size);
    } else {
        q = cgc_malloc(size);
    }
    if (!q) return NULL;
    size_t n = old < size ? old : size;
    if (r.span->kind == KIND_NOSCAN) memcpy(q, p, n);
    else cgc_memcpy(q, p, n);
    cgc_free(p);
    return q;
}

cgc_oom_handler cgc_set_oom_handler(cgc_oom_handler h) { return atomic_exchange(&oom_handler, h); }

void cgc__malloc_init(void) {
    free_cookie = (uintptr_t)cgc__nanotime() * 0x9E3779B97F4A7C15ull | 1;
}
