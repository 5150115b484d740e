/*
 * internal.h — cgc's internal data structures and the contracts between its
 * files.  Never installed; refuses inclusion from outside the library and its
 * tests.
 *
 * Naming: public API cgc_* (include/cgc.h); cross-file internals cgc__*;
 * everything else is static.
 *
 * Layers, bottom up (each file uses only those below it):
 *   os.c options.c            platform, environment
 *   arena.c pageheap.c        address -> span map, page allocator, span structs
 *   span.c                    bitmaps, freeindex, allocCache
 *   central.c cache.c         per-class span sets, per-thread caches
 *   work.c mark.c barrier.c   grey work pool, scanning and draining, write barrier
 *   sweep.c pacer.c           sweepgen protocol, goal/trigger/assists
 *   threads.c roots.c         registry, handshakes, stacks, data/bss, user roots
 *   checkmark.c trace.c       verifier, gctrace and statistics
 *   gc.c                      the cycle (one state machine; overview there)
 *   malloc.c                  the public entry points
 * Calls back up go through narrow hooks: cgc__gc_maybe_trigger (allocation ->
 * cycle), cgc__assist (allocation -> mark).
 */
#ifndef CGC_INTERNAL_H
#define CGC_INTERNAL_H

#if !defined(CGC_BUILDING_LIBRARY)
#error "internal.h is private to cgc (define CGC_BUILDING_LIBRARY only in cgc and its tests)"
#endif

#include "cgc.h"
#include "sizeclasses.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>

/* ------------------------------------------------------------ basics -- */

#define CGC_INTERNAL __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define NOINLINE __attribute__((noinline))
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define NORETURN __attribute__((noreturn))

/* Conservative scanning reads words the scanner does not own (other
 * threads' stacks, data segments, heap objects of any kind).  Exactly the
 * functions that do so carry this attribute. */
/* Built with AddressSanitizer or ThreadSanitizer (GCC's macros, clang's
 * __has_feature): the few reads of memory the collector does not own that
 * are otherwise inlined into fast paths go through exempt functions. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CGC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CGC_SANITIZED 1
#endif
#endif

#define CGC_NO_SANITIZE \
    __attribute__((no_sanitize("address", "undefined", "thread"))) __attribute__((noinline))

#ifdef CGC_DEBUG_CHECKS
#define CGC_ASSERT(c) ((c) ? (void)0 : cgc__fatal("assertion failed at %s:%d: %s", __FILE__, __LINE__, #c))
#else
#define CGC_ASSERT(c) ((void)0)
#endif

/* Adds d to a counter only its owner thread writes and other threads read
 * (cgc_read_stats): a relaxed atomic store, a plain add on x86. */
#define CGC_OWNER_ADD(x, d) __atomic_store_n(&(x), (x) + (d), __ATOMIC_RELAXED)
#define CGC_OWNER_SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release
#define ACQ_REL memory_order_acq_rel
#define SEQ_CST memory_order_seq_cst

typedef _Atomic uint64_t atomic_u64;
typedef _Atomic uint32_t atomic_u32;

/* --------------------------------------------------------------- os.c -- */

void *cgc__os_reserve(size_t size, size_t align); /* zeroed, read-write */
void cgc__os_unmap(void *p, size_t size);
void cgc__os_release(void *p, size_t size); /* contents become zero, RSS drops */
uint64_t cgc__nanotime(void);               /* monotonic */
uint64_t cgc__walltime(void);               /* unix ns */
uint64_t cgc__thread_cputime(void);
/* Starts one of the collector's own threads (threads.c): detached, named
 * (at most 15 characters), never registered, the suspend signal blocked. */
int cgc__internal_thread(pthread_t *th, const char *name, void *(*fn)(void *), void *arg);
uint64_t cgc__process_cputime(void);
int cgc__ncpu(void);
NORETURN void cgc__fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cgc__warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cgc__printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An internal lock: an adaptive pthread mutex (os.c), reset in the child
 * after fork. */
typedef pthread_mutex_t cgc_lock;
void cgc__lock_init(cgc_lock *l);
/* Asks for a scheduler time slice of ns for the calling thread, 0 for the
 * default (os.c). */
void cgc__thread_set_slice(uint64_t ns);
#define cgc__lock(l) pthread_mutex_lock(l)
#define cgc__unlock(l) pthread_mutex_unlock(l)

/* ---------------------------------------------------------- options.c -- */

/* One table of options (options.c); values after cgc__options_init. */
typedef struct cgc_options {
    int percent;          /* CGC_PERCENT; <0 = off */
    int64_t memlimit;     /* CGC_MEMLIMIT; INT64_MAX = none */
    int maxprocs;         /* CGC_MAXPROCS */
    int gctrace;          /* CGC_DEBUG=gctrace */
    int gccheckmark;      /* CGC_DEBUG=gccheckmark */
    int gcstoptheworld;   /* CGC_DEBUG=gcstoptheworld */
    int sigsuspend;       /* CGC_DEBUG=sigsuspend */
} cgc_options;
extern cgc_options cgc__opt CGC_INTERNAL;
void cgc__options_init(void);
void cgc__options_set_signal(int signo);

/* ---------------------------------------------------- arena / pageheap -- */

#define ARENA_SHIFT 26
#define ARENA_SIZE ((uintptr_t)1 << ARENA_SHIFT) /* 64 MiB */
#define PAGES_PER_ARENA (ARENA_SIZE >> CGC_PAGE_SHIFT) /* 8192 */
#define ARENA_L1_BITS (47 - ARENA_SHIFT)               /* user space is 47 bits */
#define CHUNK_PAGES 64
#define CHUNKS_PER_ARENA (PAGES_PER_ARENA / CHUNK_PAGES)

/* Span kinds: how objects of a span are scanned.  span class = size class *
 * SPAN_KINDS + kind; the tiny allocator's blocks have a class of their own. */
enum span_kind {
    KIND_SCAN = 0,   /* cgc_malloc: every aligned word is a candidate pointer */
    KIND_NOSCAN = 1, /* cgc_malloc_atomic: never scanned */
    KIND_TYPED = 2,  /* cgc_malloc_typed: small objects carry a 16-byte header
                        {type, user size}; large ones keep both in the span */
    SPAN_KINDS = 3
};
#define NUM_SPAN_CLASSES (CGC_NUM_SIZE_CLASSES * SPAN_KINDS)
#define TINY_SPAN_CLASS NUM_SPAN_CLASSES /* noscan 16-byte blocks for the tiny allocator */
#define NUM_CENTRALS (NUM_SPAN_CLASSES + 1)
#define TYPED_HEADER 16
#define TINY_BLOCK 16

enum span_state {
    SPAN_FREE = 0,   /* struct on the free list or pages returned */
    SPAN_IN_USE = 1, /* holds objects; reachable through the map */
};

/* Where a span is (debug checks and list bookkeeping). */
enum span_where {
    WHERE_NONE = 0,   /* being swept, allocated, or in transit */
    WHERE_LIST = 1,   /* on one of its mcentral's lists */
    WHERE_CACHED = 2, /* in a thread's mcache */
};

struct cgc_type {
    size_t size;      /* bytes per element */
    size_t nptrs;
    size_t offsets[]; /* byte offsets of the pointer words, ascending */
};

/* A span: a run of pages holding objects of one size class (or one large
 * object).  Span structs are never unmapped, so a stale lookup reads valid
 * (if meaningless) memory and is rejected by the state check.
 *
 * Invariants (checked by cgc__span_check in debug builds):
 *  - alloc_bits is exact: bit i set <=> slot i is allocated.  Slots on
 *    the owner's local free list (cgc_cache_class.free) have their bit
 *    clear; slots on the remote_free list keep it set until the owner or
 *    the sweeper takes them.  Bits at and beyond nelems are never set.
 *  - While owned by a thread (s->owner: its current span for the class,
 *    or one of its owned spans, cache.c), only that thread writes
 *    alloc_bits, freeindex, alloc_cache and alloc_count; otherwise only
 *    the sweeper that claimed it (sweepgen sg-1) or mcentral under its
 *    lock.  Other threads' frees go to remote_free.  alloc_count is exact
 *    while the span is not owned; an owner does not keep it.
 *  - alloc_cache bit k == slot freeindex+k is free, for the slots up to the
 *    end of freeindex's 64-bit word; 0 means "look again in alloc_bits".
 *  - A free slot below freeindex of an owned span is on its owner's local
 *    free list; a free slot at or after freeindex is on no list (the
 *    bitmap scan finds it).  An owned span that is not its class's current
 *    span has freeindex == nelems.
 *  - mark bytes (cgc__marked, below) are set only during marking, read
 *    and cleared by the sweep.
 *  - Allocate-black by pre-marking (cache.c): while a mark runs, every
 *    thread's current span has preblack set and the mark byte of every free
 *    slot at or after freeindex set, so a slot the bitmap path hands out is
 *    black without a write to the mark bitmap.  Owned spans that are not
 *    current are not pre-marked; a slot taken from the local free list is
 *    marked when handed out.  The marker never looks at a free slot's
 *    mark byte (the pointer test checks the alloc bit first).  When a
 *    span stops being current the free slots' marks are cleared again.
 *    A slot freed with cgc_free after a marker reached it keeps its mark,
 *    so the sweep keeps only slots both marked and allocated.
 *  - sweepgen, relative to the heap's sg: sg-2 needs sweeping, sg-1 being
 *    swept, sg swept; current and owned spans are always swept (mark
 *    termination hands every one back before sg advances).
 *  - A span is freed to the page heap only while no mark runs.
 */
typedef struct cgc_span {
    /* first cache line (span structs are 64-byte aligned): what the
     * allocation, free and marking paths read */
    _Alignas(64) uintptr_t base;
    uintptr_t limit;     /* base + nelems * elemsize */
    uintptr_t elemsize;
    /* the cache that owns the span (current or owned, cache.c), NULL when
     * in mcentral or in transit.  Written by the owner (or, world
     * stopped, the coordinator); read by any thread in cgc_free. */
    _Atomic(struct cgc_mcache *) owner;
    /* one mark byte per slot (see cgc__marked below) */
    _Atomic uint8_t *mark;
    /* allocation state (owner only) */
    uint32_t divmagic;   /* (off * divmagic) >> 32 == off / elemsize */
    uint32_t freeindex;
    uint16_t spanclass;
    uint8_t sizeclass;
    uint8_t kind;
    _Atomic uint8_t state;
    uint8_t grey_tag;    /* see cgc__grey_tag below */
    uint8_t needzero;    /* pages may hold old data */
    uint8_t preblack;    /* free slots' marks set (cache.c; owner only) */

    /* the alloc bitmap: word 0 ends the first line, so that a free into
     * a span of up to 64 slots (objects of 128 bytes and more) touches
     * one line of it; words 1-8 fill the second (the marker prefetches
     * the first two) */
    _Atomic uint64_t alloc_bits[16];
    /* the current span's allocCache (owner only): a current span's lines
     * stay in the cache while it is allocated from */
    uint64_t alloc_cache;

    uint32_t alloc_count; /* allocated objects; exact while not owned (cache.c) */
    uint32_t nelems;
    atomic_u32 sweepgen;
    uint8_t where;
    _Atomic uint8_t large_freed;  /* large object freed explicitly while marking */
    _Atomic(void *) remote_free;  /* cgc_free from other threads: a stack */
    struct cgc_span *next, *prev; /* mcentral or owned list, or free struct list */
    /* gccheckmark's separate mark, then the verified mark kept for the
     * sweep: SPAN_BITMAP_WORDS words after the mark bytes, NULL unless
     * gccheckmark is on (the struct is smaller by as much for everyone
     * else) */
    _Atomic uint64_t *check_bits;

    void *list; /* the span list it is on, or NULL */
    uint32_t npages;
    uint32_t mark_cap; /* bytes at mark: nelems rounded up to 64 */
    /* large typed objects */
    const cgc_type *type;
    size_t user_size;
    uint32_t owned_slot; /* index in its owner's owned_all (cache.c) */
} cgc_span;
_Static_assert(offsetof(cgc_span, alloc_bits) == 56 && offsetof(cgc_span, mark) < 64 && sizeof(cgc_span) <= 320,
               "the free and marking paths' fields, the mark pointer among them, and "
               "alloc_bits[0] fill the first cache line");

/* Grey entries (work buffers) of small conservative objects of 16 to 112
 * bytes carry the size in 16-byte units in their low 3 bits, free because
 * such objects are 16-byte aligned: the drain scans them without looking
 * the span up again.  A span's tag, 0 for every other kind of span: */
static inline uint8_t cgc__grey_tag(unsigned kind, unsigned sizeclass, uintptr_t elemsize) {
    return kind == KIND_SCAN && sizeclass && elemsize % 16 == 0 && elemsize <= 7 * 16 ? (uint8_t)(elemsize / 16) : 0;
}
#define GREY_TAG_MASK ((uintptr_t)7)

#define SPAN_MAX_ELEMS 1024
#define SPAN_BITMAP_WORDS 16

/* Mark bytes.  A slot is marked when its byte is nonzero.  Bytes, not
 * bits: markers set them with a plain byte store, where a bit in a shared
 * word needs a locked read-modify-write (on binary-trees the `lock bts`
 * and the wait behind it were a quarter of the marking loop's time).  Two
 * markers that find the same byte clear both set it and both queue the
 * object, which is then scanned twice: harmless.  A byte is never cleared
 * while a mark runs, except a free slot's (unpreblacken), which no marker
 * sets.  The array holds mark_cap bytes, nelems rounded up to 64, the
 * bytes past nelems always zero, so cgc__mark_word can read whole groups.
 * Memory: one byte per slot, 6.25 % of a 16-byte class span (bdwgc pays
 * the same for its mark bytes), 0.8 % at 128 bytes. */
static ALWAYS_INLINE bool cgc__marked(const cgc_span *s, uint32_t idx) {
    return atomic_load_explicit(&s->mark[idx], RELAXED) != 0;
}
static ALWAYS_INLINE void cgc__set_mark(cgc_span *s, uint32_t idx) { atomic_store_explicit(&s->mark[idx], 1, RELAXED); }
/* The slots that exist in group w (slots 64w .. 64w+63) of s, as a mask:
 * all 64 but in the last group, none past it. */
static inline uint64_t cgc__group_slots(const cgc_span *s, uint32_t w) {
    if (w * 64 >= s->nelems) return 0;
    return (w + 1) * 64 <= s->nelems ? ~0ull : (1ull << (s->nelems - w * 64)) - 1;
}
/* Slots 64w .. 64w+63 as a bitmask (bit k: slot 64w+k marked). */
uint64_t cgc__mark_word(const cgc_span *s, uint32_t w);
/* Sets / clears the mark bytes of the slots in mask, within group w. */
void cgc__mark_set_mask(cgc_span *s, uint32_t w, uint64_t mask);
void cgc__mark_clear_mask(cgc_span *s, uint32_t w, uint64_t mask);
/* All of the span's mark bytes to zero (the sweep; span init). */
void cgc__mark_clear_all(cgc_span *s);
/* Gives s a mark array for nelems slots (heap lock held); false if the OS
 * refuses the memory. */
bool cgc__span_fit_marks(cgc_span *s, uint32_t nelems);
uint32_t cgc__spanclass_nelems(unsigned spanclass);
/* Slot size of a span class (16 for the tiny class's blocks, 0 for large). */
uint32_t cgc__spanclass_elemsize(unsigned spanclass);

typedef struct cgc_arena {
    uintptr_t base;
    struct cgc_arena *next, *prev;             /* address order */
    _Atomic(cgc_span *) spans[PAGES_PER_ARENA]; /* page -> span, NULL if free */
    uint64_t free_bits[PAGES_PER_ARENA / 64];  /* 1 = page free */
    uint64_t dirty_bits[PAGES_PER_ARENA / 64]; /* 1 = page used since mapped */
    uint64_t released_bits[PAGES_PER_ARENA / 64]; /* 1 = returned to the OS */
    /* summaries of free runs per 64-page chunk (pages): at the start, the
     * longest anywhere, at the end.  longest_run bounds the arena's
     * longest free run from above (exact after a search that failed). */
    uint8_t sum_start[CHUNKS_PER_ARENA];
    uint8_t sum_max[CHUNKS_PER_ARENA];
    uint8_t sum_end[CHUNKS_PER_ARENA];
    uint32_t longest_run;
    uint32_t used_pages;
} cgc_arena;

extern _Atomic(cgc_arena *) *cgc__arena_map CGC_INTERNAL;

/* The span of p, for p known to lie below 2^47 (the marking loops test
 * that it is inside the heap's range first). */
static ALWAYS_INLINE cgc_span *cgc__span_of_low(uintptr_t p) {
    cgc_arena *a = atomic_load_explicit(&cgc__arena_map[p >> ARENA_SHIFT], ACQUIRE);
    if (a == NULL) return NULL;
    /* acquire pairs with the release store that published the span after
     * its fields were set (pageheap.c) */
    return atomic_load_explicit(&a->spans[(p & (ARENA_SIZE - 1)) >> CGC_PAGE_SHIFT], ACQUIRE);
}

/* The span of p's address taken modulo 2^47: for p below 2^47 its span
 * or NULL, for p above some span or NULL that p does not lie in (p is
 * above every span's limit).  For a caller that tests p < s->limit
 * anyway: one instruction instead of a test and a branch. */
static ALWAYS_INLINE cgc_span *cgc__span_of_wrapped(uintptr_t p) {
    uintptr_t i = (p >> ARENA_SHIFT) & (((uintptr_t)1 << ARENA_L1_BITS) - 1);
    cgc_arena *a = atomic_load_explicit(&cgc__arena_map[i], ACQUIRE);
    if (a == NULL) return NULL;
    return atomic_load_explicit(&a->spans[(p & (ARENA_SIZE - 1)) >> CGC_PAGE_SHIFT], ACQUIRE);
}

/* O(1): the span holding address p, or NULL.  Valid for any address. */
static ALWAYS_INLINE cgc_span *cgc__span_of(uintptr_t p) {
    if (unlikely(p >> 47)) return NULL;
    return cgc__span_of_low(p);
}

/* The span holding p if it is in use and p lies within its objects. */
static ALWAYS_INLINE cgc_span *cgc__span_of_heap(uintptr_t p) {
    cgc_span *s = cgc__span_of(p);
    if (s == NULL || atomic_load_explicit(&s->state, ACQUIRE) != SPAN_IN_USE) return NULL;
    if (p < s->base || p >= s->limit) return NULL;
    return s;
}

static ALWAYS_INLINE uint32_t cgc__obj_index(const cgc_span *s, uintptr_t p) {
    return (uint32_t)(((uint64_t)(p - s->base) * s->divmagic) >> 32);
}
static ALWAYS_INLINE bool cgc__bit(_Atomic uint64_t *bits, uint32_t i) {
    return (atomic_load_explicit(&bits[i >> 6], RELAXED) >> (i & 63)) & 1;
}

void cgc__heap_init(void);
/* Allocates a span of npages for spanclass (sizeclass 0 = large); NULL when
 * the OS refuses memory. */
cgc_span *cgc__heap_alloc_span(uintptr_t npages, unsigned spanclass);
/* Returns a span's pages to the page heap.  Only while no mark runs. */
void cgc__heap_free_span(cgc_span *s);
/* Returns free pages to the OS (the scavenger); retain bytes stay mapped. */
size_t cgc__heap_scavenge(size_t retain_bytes);
/* The most bytes of pages in spans at once since the previous call. */
uint64_t cgc__heap_take_inuse_peak(void);
typedef struct cgc_heap_totals {
    uint64_t sys, inuse, released;
} cgc_heap_totals;
void cgc__heap_totals(cgc_heap_totals *t);
extern cgc_lock cgc__heap_lock CGC_INTERNAL;
/* Iterate all in-use spans: only with the world stopped or for debugging. */
void cgc__heap_for_each_span(void (*fn)(cgc_span *, void *), void *arg);

/* Set bits of x.  Without -mpopcnt GCC's builtin is a call into libgcc;
 * this is a dozen inline instructions. */
static ALWAYS_INLINE uint32_t cgc__popcount(uint64_t x) {
#ifdef __POPCNT__
    return (uint32_t)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
#endif
}

/* ------------------------------------------------------------- span.c -- */

void cgc__span_init(cgc_span *s, unsigned spanclass, uintptr_t npages);
/* Next free slot of a cached span when alloc_cache is empty; -1 if full. */
int64_t cgc__span_next_free_slow(cgc_span *s);
uint32_t cgc__span_count_alloc(cgc_span *s);
/* Free slots of s at index `from` and after. */
uint32_t cgc__span_count_free_from(cgc_span *s, uint32_t from);
void cgc__span_check(cgc_span *s);
/* Go's size -> class table, adjusted (span.c) so that size 0 gets the
 * 8-byte class and 17..24 the 32-byte class: objects of 16 B and more are
 * 16-byte aligned. */
extern uint8_t cgc__class8[CGC_SMALL_SIZE_MAX / CGC_SMALL_SIZE_DIV + 1] CGC_INTERNAL;
void cgc__span_tables_init(void);
static ALWAYS_INLINE unsigned cgc__size_class(size_t size) {
    if (size <= CGC_SMALL_SIZE_MAX) return cgc__class8[(size + 7) >> 3];
    return cgc_size_to_class128[(size - CGC_SMALL_SIZE_MAX + 127) >> 7];
}

/* ---------------------------------------------------------- central.c -- */

typedef struct cgc_span_list {
    cgc_span *head;
    size_t n;
} cgc_span_list;

/* Doubly linked span lists (mcentral's and a cache's owned spans): link
 * only; the caller keeps s->where. */
static inline void cgc__list_push(cgc_span_list *l, cgc_span *s) {
    CGC_ASSERT(s->list == NULL);
    s->prev = NULL;
    s->next = l->head;
    if (l->head) l->head->prev = s;
    l->head = s;
    l->n++;
    s->list = l;
}

static inline void cgc__list_remove(cgc_span_list *l, cgc_span *s) {
    CGC_ASSERT(s->list == l);
    if (s->prev) s->prev->next = s->next;
    else l->head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->list = NULL;
    l->n--;
}

/* Per span class.  partial[]/full[] are indexed by sweepgen parity:
 * [sg/2 % 2] holds swept spans, the other unswept ones; advancing sg by 2
 * turns every swept set into an unswept one without touching a span. */
typedef struct cgc_central {
    cgc_lock lock;
    cgc_span_list partial[2];
    cgc_span_list full[2];
    char pad[64];
} cgc_central;
extern cgc_central cgc__central[NUM_CENTRALS] CGC_INTERNAL;
void cgc__central_init(void);
/* A swept span with at least one free slot, for cache c (its owner). */
struct cgc_mcache;
cgc_span *cgc__central_cache_span(unsigned spanclass, struct cgc_mcache *c);
/* Gives back a span a cache held (any thread; world may be stopped). */
void cgc__central_uncache_span(cgc_span *s);
/* Gives back the n spans of v (a cache's owned_all, any classes; the
 * cache drops its per-class lists itself); counted: their alloc_count
 * made exact (else left for the sweep, which recounts: see
 * cgc__cache_flush). */
void cgc__central_uncache_owned(cgc_span **v, size_t n, bool counted);
/* Puts a swept span on its class's list (partial or full). */
void cgc__central_put_swept(cgc_span *s);
/* Takes one unswept span and claims it (sweepgen sg-1), or NULL.  With
 * !may_wait a class whose lock is held is passed over (NULL, *busy set). */
cgc_span *cgc__central_take_unswept(unsigned spanclass, bool may_wait, bool *busy);
/* Sweep start: notes which classes hold unswept spans (the sweepers' hint). */
void cgc__central_note_unswept_classes(void);
/* A class at or after `start` (cyclically) that may hold unswept spans, or
 * -1 when none does. */
int cgc__central_next_unswept_class(unsigned start);
/* A first remote free arrived at s (malloc.c). */
void cgc__central_note_remote_free(cgc_span *s);
/* Removes s from whatever list it is on (lock held by caller). */
void cgc__central_remove_locked(cgc_central *c, cgc_span *s);

/* ------------------------------------------------------------ cache.c -- */

extern cgc_span cgc__empty_span CGC_INTERNAL; /* a full span that never refills */

/* Per thread, per span class: the current span, which the fast path
 * allocates from without locks or atomic read-modify-writes, the local
 * free list, the slot size and the allocation count: one 32-byte entry,
 * which the fast path reaches through cgc_mcache.direct without index
 * arithmetic and reads and writes in one cache line. */
typedef struct cgc_cache_class {
    cgc_span *span; /* never NULL: cgc__empty_span stands for none */
    /* Slots this thread freed (or took off its spans' remote lists), in
     * spans it owns, below their span's freeindex, alloc bit clear: a LIFO
     * list linked through the slots' first word, across the class's owned
     * spans, so a free never has to make a span findable and an
     * allocation never has to look for one.  Dropped whole when the
     * spans go back to mcentral (the bitmaps already say the slots are
     * free). */
    void *free;
    /* allocations not yet merged into the global statistics (merged at
     * refill and flush; cgc_read_stats reads them live) */
    uint64_t nmalloc;
    uint64_t elemsize; /* the class's slot size (0 for the large classes) */
} cgc_cache_class;
_Static_assert(sizeof(cgc_cache_class) == 32, "entries of 32 bytes, aligned to them: one cache line");

/* Per thread: the classes above, and more spans the thread owns (owned
 * spans, cache.c): spans it allocated from before, kept so that its frees
 * into them stay local and the slots come back to it warm.  Past
 * CACHE_OWNED_MAX owned spans a full span that stops being current goes
 * back to mcentral. */
#define CACHE_OWNED_MAX 512
typedef struct cgc_mcache {
    _Alignas(64) cgc_cache_class cls[NUM_CENTRALS];
    /* the entry of cgc_malloc (kind 0) and cgc_malloc_atomic (kind 1) for
     * each size up to CGC_SMALL_SIZE_MAX, by (size + 7) / 8: the fast
     * path's size class, span class and entry in one load */
    cgc_cache_class *direct[2][CGC_SMALL_SIZE_MAX / CGC_SMALL_SIZE_DIV + 1];
    uintptr_t tiny;        /* current tiny block, 0 if none */
    uint32_t tiny_offset;
    /* counters merged into the global statistics on refill and flush */
    uint64_t nlarge, large_bytes;
    uint64_t nfree;
    /* bytes allocated black during this mark; added to the pacer's count
     * at each refill and flush (every cache is flushed at mark termination) */
    uint64_t black_bytes;
    /* bytes freed during this mark that were marked (cgc_pacer.freed_marked),
     * merged with black_bytes */
    uint64_t freed_marked;
    /* bytes taken off the local free lists during this mark and not yet
     * paid for with a mark assist (malloc.c) */
    uint64_t unassisted;
    /* heap_live change not yet published: slots onto the local free lists
     * (negative) and off them (positive) */
    int64_t live_delta;
    /* every span the cache owns, per class, the current one included:
     * membership changes only when a span comes from or goes back to
     * mcentral, so the allocation and free paths never relink it */
    cgc_span_list owned[NUM_CENTRALS];
    /* the same spans in one array, in no order (s->owned_slot is each
     * one's index), for the flush: walked with prefetching, where the
     * per-class lists are a chain of dependent cache misses (handing back
     * 512 owned spans that way took 60 us of mark termination's pause).
     * Kept, with its capacity, when the thread struct is reused. */
    cgc_span **owned_all;
    uint32_t nowned, owned_cap;
    /* classes where another thread freed into an owned span (a hint set by
     * the freer on the empty -> non-empty transition of a remote list) */
    atomic_u64 remote_hint[(NUM_CENTRALS + 63) / 64];
} cgc_mcache;

void cgc__cache_init(cgc_mcache *c);
/* Makes a slot of spanclass available to the fast path (local free list
 * or current span); false on OOM. */
bool cgc__cache_refill(cgc_mcache *c, unsigned spanclass);
/* Hands every cached and owned span back (thread exit, mark termination).
 * cycle_end: mark termination, world stopped, sweepgen about to advance:
 * every span is swept before anyone allocates from it again, and the
 * sweep recounts its objects, so the spans are not counted here. */
void cgc__cache_flush(cgc_mcache *c, bool cycle_end);
/* How far a thread's heap_live balance may drift before it is published
 * (heap_alloc in cgc_read_stats lags by at most this per thread). */
#define CACHE_LIVE_MERGE_BYTES ((int64_t)64 << 10)
void cgc__cache_merge_live(cgc_mcache *c);
/* heap_live moved by CACHE_LIVE_MERGE_BYTES up: publish it and see whether
 * a cycle is due (out of line). */
void cgc__cache_live_grew(cgc_mcache *c);

/* A slot on a local free list holds the link in its first word and, when
 * it has a second (slots of 16 bytes and more), where its alloc bit is:
 * the address of its bitmap word, and the bit's number in the top 16 bits.
 * Taking it off the list then needs no address -> span lookup, no read of
 * the span's first line and no index arithmetic. */
#define LISTED_BIT_SHIFT 48
static ALWAYS_INLINE void cgc__listed_push(cgc_cache_class *k, cgc_span *s, void *obj, uint32_t idx) {
    uintptr_t *w = (uintptr_t *)obj;
    w[0] = (uintptr_t)k->free;
    if (s->elemsize >= 16) w[1] = (uintptr_t)&s->alloc_bits[idx >> 6] | (uintptr_t)(idx & 63) << LISTED_BIT_SHIFT;
    k->free = obj;
}
/* The alloc bitmap word of listed slot f (of 16 bytes or more); *bit its
 * bit in it. */
static ALWAYS_INLINE _Atomic uint64_t *cgc__listed_word(void *f, unsigned *bit) {
    uintptr_t w = ((uintptr_t *)f)[1];
    *bit = (unsigned)(w >> LISTED_BIT_SHIFT);
    return (_Atomic uint64_t *)(w & (((uintptr_t)1 << LISTED_BIT_SHIFT) - 1));
}

/* cgc_free by the owner of s (its current span or an owned one), inside
 * cgc; idx is the slot's index, its alloc bit set.  Below freeindex the
 * slot goes on the class's local free list and leaves heap_live.  At or
 * after freeindex (only the current span has free slots there) the bitmap
 * scan finds it again; it stays counted, as the current span's free
 * slots are, and joins the pre-marked ones while a mark runs.  Returns
 * true when heap_live is due to be published (cgc__cache_merge_live): the
 * caller does it, so that the fast path needs no stack frame. */
static ALWAYS_INLINE bool cgc__cache_free_local(cgc_mcache *c, cgc_span *s, void *obj, uint32_t idx) {
    CGC_ASSERT(s == c->cls[s->spanclass].span || idx < s->freeindex);
    _Atomic uint64_t *w = &s->alloc_bits[idx >> 6];
    atomic_store_explicit(w, atomic_load_explicit(w, RELAXED) & ~(1ull << (idx & 63)), RELAXED);
    /* tested first: a span of more than 64 slots has its bitmap word in
     * the second line, and the first then stays clean */
    if (!s->needzero) s->needzero = 1;
    CGC_OWNER_ADD(c->nfree, 1);
    if (likely(idx < s->freeindex)) {
        cgc__listed_push(&c->cls[s->spanclass], s, obj, idx);
        c->live_delta -= (int64_t)s->elemsize;
        return c->live_delta <= -CACHE_LIVE_MERGE_BYTES;
    }
    if (s->preblack) cgc__set_mark(s, idx);
    s->alloc_cache = 0; /* the bitmap scan will see the slot */
    return false;
}
void cgc__cache_merge_stats(cgc_mcache *c);
/* Mark start (world stopped): pre-marks the free slots of every span c
 * holds (the allocate-black invariant above cgc_span). */
void cgc__cache_preblacken(cgc_mcache *c);

/* ------------------------------------------------------------- work.c -- */

#define WORKBUF_BYTES 2048
#define WORKBUF_N ((WORKBUF_BYTES - 16) / sizeof(uintptr_t))
typedef struct cgc_workbuf {
    _Atomic(struct cgc_workbuf *) next; /* on a pool stack (work.c) */
    uint64_t n;
    uintptr_t obj[WORKBUF_N];
} cgc_workbuf;

/* A marker's view of the grey pool: two local buffers (Go's gcWork). */
typedef struct cgc_gcwork {
    cgc_workbuf *cur, *spare;
    uint64_t bytes_marked; /* objects greyed by this marker, in bytes */
    uint64_t scan_work;    /* bytes scanned */
    uint64_t deadline;     /* nanotime at which the drain stops; 0: none */
    bool checkmark;        /* marking into check_bits */
    uintptr_t src;         /* checkmark: what is being scanned (object or root) */
    const char *src_kind;
    bool lenient;          /* checkmark: stale stack slots, see checkmark.c */
    uintptr_t src_word;    /* checkmark: address of the word being tested */
} cgc_gcwork;

void cgc__work_init(void);
void cgc__gcwork_push_slow(cgc_gcwork *w, uintptr_t obj);
bool cgc__gcwork_pop_slow(cgc_gcwork *w, uintptr_t *obj);
/* The marker's hot path: its current buffer; the rest out of line. */
static ALWAYS_INLINE void cgc__gcwork_push(cgc_gcwork *w, uintptr_t obj) {
    cgc_workbuf *b = w->cur;
    if (likely(b && b->n < WORKBUF_N)) b->obj[b->n++] = obj;
    else cgc__gcwork_push_slow(w, obj);
}
static ALWAYS_INLINE bool cgc__gcwork_pop(cgc_gcwork *w, uintptr_t *obj) {
    cgc_workbuf *b = w->cur;
    if (likely(b && b->n)) {
        *obj = b->obj[--b->n];
        return true;
    }
    return cgc__gcwork_pop_slow(w, obj);
}
void cgc__gcwork_balance(cgc_gcwork *w); /* share work when the pool is empty */
void cgc__gcwork_flush(cgc_gcwork *w); /* hand every local buffer to the pool */
void cgc__gcwork_dispose(cgc_gcwork *w);
bool cgc__work_available(void);      /* a full buffer is in the pool */
bool cgc__work_empty(void);          /* no full buffer in the pool */
extern atomic_u64 cgc__work_full_count CGC_INTERNAL;

/* ------------------------------------------------------------- mark.c -- */

/* Greys the object p points into, if it is an allocated heap object. */
void cgc__shade(cgc_gcwork *w, uintptr_t p);
/* Scans [lo, hi) conservatively. */
void cgc__scan_range(cgc_gcwork *w, uintptr_t lo, uintptr_t hi);
/* Drains: scans grey objects until none are left or budget (bytes of
 * scan work, 0 = unlimited) or deadline (ns, 0 = none) is reached. */
void cgc__drain(cgc_gcwork *w, uint64_t budget, uint64_t deadline);
/* Root jobs of the current mark (globals shards, user roots, stacks). */
bool cgc__mark_root_job(cgc_gcwork *w);
void cgc__mark_roots_prepare(bool world_stopped);
bool cgc__mark_roots_done(void);
void cgc__mark_workers_start(void);
void cgc__mark_workers_wake(void);
bool cgc__mark_wait_idle(void); /* coordinator: wait until no worker has work */
void cgc__mark_assist_begin(void); /* around an assist's drain */
void cgc__mark_assist_end(void);
void cgc__mark_workers_stop(void);
void cgc__mark_stw_drain(void); /* world stopped: drain all with every worker */

extern _Atomic int cgc__gc_marking CGC_INTERNAL; /* allocate black; shade */

/* ---------------------------------------------------------- barrier.c -- */

#define WBUF_N 256 /* (old, new) pairs */
typedef struct cgc_wbuf {
    uint32_t n;
    uintptr_t ptr[WBUF_N * 2];
} cgc_wbuf;
void cgc__wbuf_flush(cgc_wbuf *b, cgc_gcwork *w); /* shade all, empty b */
void cgc__barrier_release(void *obj, size_t n);      /* cgc_free while marking */

/* ---------------------------------------------------------- threads.c -- */

/* A registered thread.  Lifetime: from registration (pthread_create
 * wrapper, attach, or first allocation) to exit or detach; the struct
 * itself is kept on a free list for reuse (never freed) so the collector's
 * walk of the list never touches freed memory. */
enum thread_state {
    TS_RUNNING = 0,  /* may touch the heap; stopped by signal */
    TS_BLOCKING,     /* in cgc_blocking_begin..end: scanned as saved */
    TS_BLOCKING_HELD,/* blocking, and the collector is reading its stack */
    TS_DEAD,
};

typedef struct cgc_thread {
    struct cgc_thread *next;
    pthread_t pthread;
    pid_t tid;
    uintptr_t stack_lo, stack_hi; /* mapping; scanned [sp, stack_hi) */
    uintptr_t tls_lo, tls_hi;     /* static TLS block */
    _Atomic int state;

    /* signal handshake */
    volatile sig_atomic_t in_cgc;       /* inside cgc: handshake deferred */
    /* a handshake or a safepoint job waits for us: set by the signal
     * handler, or by the collector posting a job */
    _Atomic int stop_pending;
    _Atomic int hs;                     /* handshake word (threads.c) */
    bool signalled;                     /* this stop signalled it (else held blocking) */
    /* safepoint job (threads.c): the request word, what to do, whether
     * doing it greyed anything; sp_posted is the collector's own note */
    _Atomic int sp_req;
    int sp_job;
    bool sp_found;
    bool sp_posted;
    /* the CPU the kernel last ran the thread on, in its rseq area (glibc
     * registers one per thread), or NULL without rseq (threads.c) */
    const volatile uint32_t *rseq_cpu;
    uintptr_t saved_sp;
    uintptr_t saved_regs[32];
    int blocking_depth;
    /* mark start: stopped by the signal in the program's own code, not in a
     * system call (it may be inside CGC_STORE's flag test and store); the
     * resumptions counted at that stop; written by the thread itself when
     * it leaves a signal handshake: how many, and its CPU time then
     * (threads.c, cgc__threads_wait_past_stop) */
    bool stopped_in_code;
    uint32_t resumes_at_stop;
    atomic_u32 resumes;
    _Atomic uint64_t cpu_at_resume;
    /* the gap between two signal stops (threads.c, wait_stop_gap): the
     * thread parked in its signal handler (written by the thread before
     * HS_PARKED); the clock when it left the handler (before resumes);
     * the collector's note of a release still owed a gap: the count and
     * clock at that release */
    bool parked_in_handler;
    _Atomic uint64_t wall_at_resume;
    bool gap_owed;
    uint32_t gap_resumes;
    uint64_t gap_release_ns;

    /* collector per-thread state */
    atomic_u32 stack_scanned_cycle; /* == current cycle: stack is black */
    uint64_t stack_bytes;           /* scanned last time (pacer) */
    uintptr_t scan_sp;              /* where this cycle's stack scan began (checkmark) */
    /* scan work this thread's assists did beyond their debt, valid in
     * cycle assist_cycle only (pacer.c) */
    int64_t assist_credit;
    uint32_t assist_cycle;
    bool is_main;

    cgc_mcache cache;
    cgc_wbuf wbuf;
} cgc_thread;

extern __thread cgc_thread *cgc__self __attribute__((tls_model("initial-exec"))) CGC_INTERNAL;

cgc_thread *cgc__thread_register_self(void); /* idempotent */
void cgc__threads_init(void);
/* Enter / leave cgc's own code: a handshake that arrives in between is
 * answered at leave. */
static ALWAYS_INLINE sig_atomic_t cgc__enter(cgc_thread *t) {
    sig_atomic_t prev = t->in_cgc;
    t->in_cgc = 1;
    atomic_signal_fence(SEQ_CST);
    return prev;
}
/* A stop request arrived while inside: answered here when prev == 0 (the
 * outermost leave; a nested one leaves it to its caller). */
void cgc__handshake_deferred(cgc_thread *t, sig_atomic_t prev);
/* Leaves cgc; true if a stop request waits to be answered
 * (cgc__handshake_deferred), for the frameless fast paths, which answer it
 * through a tail call. */
static ALWAYS_INLINE bool cgc__leave_stop_pending(cgc_thread *t, sig_atomic_t prev) {
    atomic_signal_fence(SEQ_CST);
    t->in_cgc = prev;
    atomic_signal_fence(SEQ_CST);
    return atomic_load_explicit(&t->stop_pending, RELAXED);
}
static ALWAYS_INLINE void cgc__leave(cgc_thread *t, sig_atomic_t prev) {
    if (unlikely(cgc__leave_stop_pending(t, prev))) cgc__handshake_deferred(t, prev);
}

/* World stop (all registered threads but the caller, which must not be a
 * registered thread holding heap pointers it cares about unless it is the
 * caller of cgc_collect: its own stack is scanned directly).  Returns the
 * clock (cgc__nanotime) at which the pause began: after the wait, if any,
 * that gives threads the last stop interrupted their time to run. */
uint64_t cgc__stop_world(void);
/* Lets the world go; returns the clock (cgc__nanotime) at the moment the
 * threads were woken: the pause's end.  The caller may itself be preempted
 * by a thread it wakes, and its own clock read after that is not. */
uint64_t cgc__start_world(void);
/* Safepoint jobs (concurrent stack scan, ragged barrier): the thread does
 * the job itself when it next leaves cgc, without stopping.  Registry lock
 * held by the caller.  cgc__thread_post_job returns false for a thread
 * that cannot take one (the caller, a thread in a blocking region): hold
 * it instead.  cgc__thread_job_wait returns false if the job was not taken
 * within 100 us of posted_ns (cgc__nanotime); it is then withdrawn, and
 * the caller holds the thread and does the job itself. */
enum { SP_JOB_FLUSH = 1, SP_JOB_SCAN = 2 };
bool cgc__thread_post_job(cgc_thread *t, int job);
bool cgc__thread_job_wait(cgc_thread *t, uint64_t posted_ns);
/* Hold one thread (concurrent stack scan, ragged barrier): returns with the
 * thread parked or held blocking; false if it exited. */
bool cgc__thread_hold(cgc_thread *t);
void cgc__thread_release(cgc_thread *t);
/* Mark start (world stopped): notes which threads were stopped in their own
 * code.  Then, with the world running again: returns once each of them has
 * run on past that point (see threads.c). */
void cgc__threads_note_stop_points(void);
void cgc__threads_wait_past_stop(void);
/* Iteration over registered threads under the registry lock. */
void cgc__threads_lock(void);
void cgc__threads_unlock(void);
extern cgc_thread *cgc__threads CGC_INTERNAL;
extern atomic_u32 cgc__nthreads CGC_INTERNAL;
/* The range of t's stack to scan (world stopped or t held). */
void cgc__thread_scan_stack(cgc_thread *t, cgc_gcwork *w);
uintptr_t cgc__thread_stack_start(cgc_thread *t);

/* ------------------------------------------------------------ roots.c -- */

typedef struct cgc_range {
    uintptr_t lo, hi;
} cgc_range;
/* Writable segments of all loaded objects (dl_iterate_phdr); never call
 * with the world stopped (the loader lock may be held by a stopped thread). */
size_t cgc__roots_collect_segments(cgc_range **out);
size_t cgc__roots_user(cgc_range **out); /* copy of cgc_add_roots ranges */
void cgc__roots_init(void);

/* ------------------------------------------------------------ sweep.c -- */

extern atomic_u32 cgc__sweepgen CGC_INTERNAL;
/* Sweeps a span claimed at sg-1.  Returns true if the span survives (it is
 * then on no list; caller puts it somewhere) — false if it went back to the
 * page heap.  preserve: keep even if empty (mcentral wants to use it). */
bool cgc__sweep_span(cgc_span *s, bool preserve);
/* Sweeps one span of any class; false when the sweep is over.  A program
 * thread's proportional sweep (may_wait false) passes over classes whose
 * lock is held; true if it swept one, or found only busy classes. */
bool cgc__sweep_one(bool may_wait);
void cgc__sweep_finish(void);       /* sweep everything left, wait for sweepers */
void cgc__sweep_start(void);        /* after sg advanced: wake the sweeper */
void cgc__sweeper_init(void);
extern atomic_u32 cgc__sweepers_active CGC_INTERNAL;
/* Held for reading across every claim-sweep-put of a span, for writing by
 * fork() (a child must not inherit a span half swept by a lost thread). */
extern pthread_rwlock_t cgc__sweep_fork_lock CGC_INTERNAL;
extern atomic_u64 cgc__sweep_pages_left CGC_INTERNAL;

/* ------------------------------------------------------------ pacer.c -- */

typedef struct cgc_pacer {
    atomic_u64 heap_live;     /* bytes in allocated objects + cached spans */
    atomic_u64 heap_marked;   /* this mark: bytes of objects reached by tracing */
    atomic_u64 black_bytes;   /* this mark: bytes allocated black */
    /* this mark: bytes freed with cgc_free whose mark was set when freed,
     * so that they count in heap_marked or black_bytes already */
    atomic_u64 freed_marked;
    atomic_u64 heap_goal;
    atomic_u64 trigger;
    atomic_u64 scan_work_expected;
    atomic_u64 scan_work_done;      /* this cycle, by everybody */
    _Atomic int64_t bg_credit;      /* scan work done by workers not yet used by assists */
    _Atomic double assist_work_per_byte;
    uint64_t globals_bytes, stacks_bytes;
    double cons_mark;         /* smoothed allocation during mark per scan byte */
    atomic_u64 last_marked;   /* live heap by the last completed mark: its goal's base (pacer.c) */
    uint64_t mark_start_live, mark_start_ns;
} cgc_pacer;
extern cgc_pacer cgc__pacer CGC_INTERNAL;
void cgc__pacer_cycle_start(void);
void cgc__pacer_cycle_end(uint64_t marked, uint64_t scan_work, uint64_t mark_ns);
void cgc__pacer_revise(void);
/* Allocation of bytes while marking: pay scan work, bounded in time. */
void cgc__assist(cgc_thread *t, uint64_t bytes);
uint64_t cgc__pacer_goal(uint64_t marked);
/* The settings changed: recompute goal and trigger from the last mark. */
void cgc__pacer_retarget(void);
/* Allocation while marking with the heap past its overshoot bound: wait
 * (as in a blocking region) until the mark ends. */
void cgc__wait_for_mark_end(cgc_thread *t);
#ifdef CGC_DEBUG_CHECKS
/* Fault injection for tests (debug builds only).  The assists of this
 * thread wait for the mark to end as if the heap were past its overshoot
 * bound; after such a wait, still a blocking thread, it calls the hook (a
 * thread the scheduler leaves off the CPU while cycles run on). */
extern _Atomic(cgc_thread *) cgc__debug_mark_wait_thread;
extern void (*_Atomic cgc__debug_mark_wait_hook)(void);
#endif

/* --------------------------------------------------------------- gc.c -- */

enum gc_phase {
    PHASE_OFF = 0,         /* sweeping (or nothing) */
    PHASE_SWEEP_TERM,      /* world stopping to begin a cycle */
    PHASE_MARK,            /* concurrent mark, barrier on */
    PHASE_MARK_TERM,       /* world stopped, finishing the mark */
};
extern _Atomic int cgc__gc_phase CGC_INTERNAL;
extern atomic_u32 cgc__gc_cycle CGC_INTERNAL; /* number of the current / last cycle */
extern _Atomic int cgc__gc_disabled CGC_INTERNAL;
extern _Atomic int cgc__gc_stw_mode CGC_INTERNAL;
extern atomic_u32 cgc__init_done CGC_INTERNAL;
void cgc__gc_init(void);
/* Allocation grew heap_live: start a cycle if it crossed the trigger. */
void cgc__gc_maybe_trigger(void);
void cgc__ensure_init(void);

/* ------------------------------------------------------- checkmark.c -- */

/* gccheckmark: obj waits on s's remote free list (malloc.c). */
bool cgc__pending_remote_free(cgc_span *s, uintptr_t obj);
void cgc__checkmark_verify(void); /* world stopped, mark complete */
void cgc__checkmark_sweep_verify(cgc_span *s); /* gccheckmark: the sweep keeps what the mark kept */

/* ------------------------------------------------------------ trace.c -- */

typedef struct cgc_global_stats {
    atomic_u64 total_alloc, mallocs, frees;
    atomic_u64 num_gc, num_forced_gc;
    atomic_u64 pause_total_ns, pause_max_ns, num_pauses;
    atomic_u64 pause_ns[CGC_PAUSE_HISTORY];
    atomic_u64 gc_cpu_ns, assist_ns, assist_max_ns;
    atomic_u64 last_gc_unix_ns;
    atomic_u64 large_inuse;
} cgc_global_stats;
extern cgc_global_stats cgc__stats CGC_INTERNAL;
void cgc__record_pause(uint64_t ns);
extern uint64_t cgc__start_ns CGC_INTERNAL;

/* The cycle's measurements for gctrace. */
typedef struct cgc_cycle_trace {
    uint64_t start_ns;
    uint64_t stw1_ns, mark_ns, stw2_ns;      /* clock */
    uint64_t cpu_stw1, cpu_assist, cpu_bg, cpu_idle, cpu_stw2;
    uint64_t heap_start, heap_end, heap_marked, goal;
    uint64_t stacks, globals;
    int procs;
    bool forced;
} cgc_cycle_trace;
void cgc__trace_cycle(const cgc_cycle_trace *t);

/* Hooks for mark worker CPU accounting (mark.c -> gc.c trace). */
extern atomic_u64 cgc__cpu_bg_ns CGC_INTERNAL, cgc__cpu_idle_ns CGC_INTERNAL,
    cgc__cpu_assist_ns CGC_INTERNAL;

#endif /* CGC_INTERNAL_H */
