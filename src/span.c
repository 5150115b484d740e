/*
 * span.c — a span's objects: the alloc bitmap, freeindex and the 64-bit
 * allocCache the fast path consumes with count-trailing-zeros.
 *
 * alloc_cache holds the complement of alloc_bits from freeindex to the end
 * of freeindex's word: bit k set <=> slot freeindex+k is free.  The fast path
 * (malloc.c) takes the lowest set bit and shifts; when the cache is empty
 * cgc__span_next_free_slow looks at the following words.
 */
#include "internal.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

uint8_t cgc__class8[CGC_SMALL_SIZE_MAX / CGC_SMALL_SIZE_DIV + 1];

static unsigned class_of(unsigned spanclass) {
    return spanclass == TINY_SPAN_CLASS ? cgc_size_to_class8[TINY_BLOCK >> 3] : spanclass / SPAN_KINDS;
}

void cgc__span_tables_init(void) {
    memcpy(cgc__class8, cgc_size_to_class8, sizeof cgc__class8);
    unsigned c32 = cgc_size_to_class8[32 >> 3];
    for (size_t i = 0; i < sizeof cgc__class8; i++) {
        if (i == 0) cgc__class8[i] = cgc_size_to_class8[1];
        /* classes whose size is not a multiple of 16 (Go's 24) are skipped
         * for requests of 16 B and more */
        if (i * 8 > 16 && cgc_class_size[cgc__class8[i]] % 16) cgc__class8[i] = (uint8_t)c32;
    }
}


uint32_t cgc__spanclass_elemsize(unsigned spanclass) { return cgc_class_size[class_of(spanclass)]; }

uint32_t cgc__spanclass_nelems(unsigned spanclass) {
    unsigned sizeclass = class_of(spanclass);
    return sizeclass ? cgc_class_nelems[sizeclass] : 1;
}

void cgc__span_init(cgc_span *s, unsigned spanclass, uintptr_t npages) {
    unsigned sizeclass = class_of(spanclass);
    s->spanclass = (uint16_t)spanclass;
    s->sizeclass = (uint8_t)sizeclass;
    s->kind = spanclass == TINY_SPAN_CLASS ? KIND_NOSCAN : (uint8_t)(spanclass % SPAN_KINDS);
    if (sizeclass) {
        s->elemsize = cgc_class_size[sizeclass];
        s->nelems = cgc_class_nelems[sizeclass];
        s->divmagic = cgc_class_divmagic[sizeclass];
    } else {
        s->elemsize = npages << CGC_PAGE_SHIFT;
        s->nelems = 1;
        s->divmagic = 0; /* every offset is object 0 */
    }
    s->limit = s->base + s->elemsize * s->nelems;
    s->grey_tag = cgc__grey_tag(s->kind, s->sizeclass, s->elemsize);
    s->freeindex = 0;
    s->alloc_cache = 0;
    s->alloc_count = 0;
    atomic_store_explicit(&s->remote_free, NULL, RELAXED);
    atomic_store_explicit(&s->large_freed, 0, RELAXED);
    s->type = NULL;
    s->user_size = 0;
    s->next = s->prev = NULL;
    s->list = NULL;
    s->where = WHERE_NONE;
    for (int i = 0; i < SPAN_BITMAP_WORDS; i++) {
        atomic_store_explicit(&s->alloc_bits[i], 0, RELAXED);
        if (s->check_bits) atomic_store_explicit(&s->check_bits[i], 0, RELAXED);
    }
    CGC_ASSERT(s->mark && s->mark_cap >= s->nelems);
    cgc__mark_clear_all(s);
    atomic_store_explicit(&s->sweepgen, atomic_load_explicit(&cgc__sweepgen, RELAXED), RELAXED);
}

/* ------------------------------------------------------ mark bytes -- */

/* The sweep and the verifier read a span's mark bytes 64 at a time, with
 * no marker running (world stopped, or the span claimed after the mark):
 * whole 16-byte loads then race with nothing. */
uint64_t cgc__mark_word(const cgc_span *s, uint32_t w) {
    const uint8_t *m = (const uint8_t *)(uintptr_t)s->mark + (size_t)w * 64;
    uint64_t bits = 0;
#ifdef __SSE2__
    const __m128i zero = _mm_setzero_si128();
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(m + 16 * i));
        uint32_t unmarked = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
        bits |= (uint64_t)(~unmarked & 0xffffu) << (16 * i);
    }
#else
    for (int i = 0; i < 64; i++) bits |= (uint64_t)(m[i] != 0) << i;
#endif
    return bits;
}

/* Byte by byte, atomically: markers may be setting other bytes of the
 * same group (cache.c pre-marks free slots while a mark runs). */
void cgc__mark_set_mask(cgc_span *s, uint32_t w, uint64_t mask) {
    for (; mask; mask &= mask - 1) cgc__set_mark(s, w * 64 + (uint32_t)__builtin_ctzll(mask));
}

void cgc__mark_clear_mask(cgc_span *s, uint32_t w, uint64_t mask) {
    for (; mask; mask &= mask - 1)
        atomic_store_explicit(&s->mark[w * 64 + (uint32_t)__builtin_ctzll(mask)], 0, RELAXED);
}

/* No marker runs (span init, the sweep's claimed span). */
void cgc__mark_clear_all(cgc_span *s) { memset((void *)(uintptr_t)s->mark, 0, s->mark_cap); }

/* The free slots of word w at and after slot `from`, as a cache. */
static uint64_t free_bits_from(cgc_span *s, uint32_t w, uint32_t from) {
    uint64_t bits = ~atomic_load_explicit(&s->alloc_bits[w], RELAXED) & cgc__group_slots(s, w);
    return bits >> (from - w * 64);
}

int64_t cgc__span_next_free_slow(cgc_span *s) {
    CGC_ASSERT(s->alloc_cache == 0);
    if (s->freeindex == s->nelems) return -1; /* an owned span taken back, or full */
    uint32_t nwords = (s->nelems + 63) / 64;
    for (uint32_t w = s->freeindex / 64; w < nwords; w++) {
        uint32_t from = w * 64 > s->freeindex ? w * 64 : s->freeindex;
        uint64_t cache = free_bits_from(s, w, from);
        if (cache) {
            unsigned tz = (unsigned)__builtin_ctzll(cache);
            uint32_t idx = from + tz;
            s->alloc_cache = (cache >> tz) >> 1;
            s->freeindex = idx + 1;
            return idx;
        }
    }
    s->freeindex = s->nelems;
    return -1;
}

uint32_t cgc__span_count_free_from(cgc_span *s, uint32_t from) {
    uint32_t n = 0;
    for (uint32_t w = from / 64; w < (s->nelems + 63) / 64; w++) {
        uint64_t bits = ~atomic_load_explicit(&s->alloc_bits[w], RELAXED) & cgc__group_slots(s, w);
        if (w == from / 64) bits &= ~0ull << (from % 64);
        n += cgc__popcount(bits);
    }
    return n;
}

uint32_t cgc__span_count_alloc(cgc_span *s) {
    uint32_t n = 0;
    for (uint32_t w = 0; w < (s->nelems + 63) / 64; w++)
        n += cgc__popcount(atomic_load_explicit(&s->alloc_bits[w], RELAXED));
    return n;
}

/* Debug builds: the span's invariants (internal.h). */
void cgc__span_check(cgc_span *s) {
#ifdef CGC_DEBUG_CHECKS
    for (uint32_t w = 0; w < SPAN_BITMAP_WORDS; w++) {
        uint64_t a = atomic_load_explicit(&s->alloc_bits[w], RELAXED);
        if (a & ~cgc__group_slots(s, w)) cgc__fatal("span %p: alloc bits beyond nelems (word %u)", (void *)s->base, w);
    }
    if (s->freeindex > s->nelems) cgc__fatal("span %p: freeindex %u > nelems %u", (void *)s->base, s->freeindex, s->nelems);
    if (s->mark_cap < s->nelems || s->mark_cap % 64) cgc__fatal("span %p: %u mark bytes for %u slots", (void *)s->base, s->mark_cap, s->nelems);
    for (uint32_t i = s->nelems; i < s->mark_cap; i++)
        if (cgc__marked(s, i)) cgc__fatal("span %p: mark byte %u set beyond nelems %u", (void *)s->base, i, s->nelems);
    for (uint64_t k = 0; k < 64; k++) {
        if (!((s->alloc_cache >> k) & 1)) continue;
        uint32_t idx = s->freeindex + (uint32_t)k;
        if (idx >= s->nelems || cgc__bit(s->alloc_bits, idx))
            cgc__fatal("span %p: allocCache bit %u names slot %u, which is not free", (void *)s->base, (unsigned)k, idx);
    }
#else
    (void)s;
#endif
}
