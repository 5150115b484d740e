/*
 * work.c — the grey set: 2 KiB buffers of object addresses.  Each marker
 * owns two buffers (cur, spare); full buffers go to a global list that
 * every marker takes from, empty ones to a free list.  An object is grey
 * exactly while its address is in some buffer (its mark byte is already set).
 */
#include "internal.h"

/* The pool: two lock-free stacks (Go's lfstack), of full buffers and of
 * empty ones.  Lock-free because markers of every kind share them: with a
 * mutex, a SCHED_IDLE worker preempted while holding it (any normal thread
 * waking on its CPU preempts it) kept an allocating thread that needed the
 * pool asleep for a millisecond with the other CPU idle.
 *
 * A stack head packs a buffer's address (buffers are 2 KiB aligned and
 * below 2^47: 36 bits of it) with a 28-bit count of the pushes and pops,
 * so that a pop that read a head, lost the CPU and finds the same buffer
 * on top again after others popped and pushed it fails its CAS (ABA)
 * unless exactly 2^28 operations came between.  Buffers are never
 * unmapped, so the pop's read of a stale top's next is harmless. */
#define LF_ALIGN_SHIFT 11
#define LF_CNT_BITS 28
#define LF_CNT_MASK ((UINT64_C(1) << LF_CNT_BITS) - 1)
_Static_assert(sizeof(cgc_workbuf) == (1u << LF_ALIGN_SHIFT), "work buffers are 2 KiB, so 2 KiB aligned as carved");
_Static_assert(47 - LF_ALIGN_SHIFT + LF_CNT_BITS == 64, "address bits and count fill the head");

typedef _Atomic uint64_t lfstack;
static lfstack full_stack, empty_stack;
atomic_u64 cgc__work_full_count;
/* Markers waiting for work are woken when a full buffer arrives (mark.c). */
void cgc__mark_work_arrived(void);

static inline uint64_t lf_pack(cgc_workbuf *b, uint64_t cnt) {
    return ((uint64_t)(uintptr_t)b >> LF_ALIGN_SHIFT) << LF_CNT_BITS | (cnt & LF_CNT_MASK);
}
static inline cgc_workbuf *lf_node(uint64_t v) { return (cgc_workbuf *)(uintptr_t)((v >> LF_CNT_BITS) << LF_ALIGN_SHIFT); }

static void lf_push(lfstack *st, cgc_workbuf *b) {
    CGC_ASSERT(((uintptr_t)b & ((1u << LF_ALIGN_SHIFT) - 1)) == 0 && (uintptr_t)b < ((uintptr_t)1 << 47));
    uint64_t old = atomic_load_explicit(st, RELAXED);
    /* release: the buffer's contents before the head that publishes it */
    do {
        atomic_store_explicit(&b->next, lf_node(old), RELAXED);
    } while (!atomic_compare_exchange_weak_explicit(st, &old, lf_pack(b, old + 1), RELEASE, RELAXED));
}

static cgc_workbuf *lf_pop(lfstack *st) {
    /* acquire: the contents of the buffer whose head we read */
    uint64_t old = atomic_load_explicit(st, ACQUIRE);
    for (;;) {
        cgc_workbuf *b = lf_node(old);
        if (!b) return NULL;
        cgc_workbuf *next = atomic_load_explicit(&b->next, RELAXED);
        if (atomic_compare_exchange_weak_explicit(st, &old, lf_pack(next, old + 1), ACQUIRE, ACQUIRE)) return b;
    }
}

static cgc_workbuf *buf_alloc(void) {
    cgc_workbuf *b = lf_pop(&empty_stack);
    if (!b) {
        /* workbufs are never unmapped; carve 64 at a time */
        size_t nb = 64;
        cgc_workbuf *v = cgc__os_reserve(nb * sizeof *v, 4096);
        if (!v) cgc__fatal("out of memory for mark work buffers");
        for (size_t i = 1; i < nb; i++) lf_push(&empty_stack, &v[i]);
        b = &v[0];
    }
    b->n = 0;
    atomic_store_explicit(&b->next, NULL, RELAXED);
    return b;
}

static void buf_put_full(cgc_workbuf *b) {
    /* counted first: the count is never below the stack's size (a taker
     * that finds the count nonzero and the stack empty just finds nothing) */
    atomic_fetch_add_explicit(&cgc__work_full_count, 1, RELEASE);
    lf_push(&full_stack, b);
    cgc__mark_work_arrived();
}

static void buf_put_empty(cgc_workbuf *b) { lf_push(&empty_stack, b); }

static cgc_workbuf *buf_get_full(void) {
    if (atomic_load_explicit(&cgc__work_full_count, ACQUIRE) == 0) return NULL;
    cgc_workbuf *b = lf_pop(&full_stack);
    if (b) atomic_fetch_sub_explicit(&cgc__work_full_count, 1, RELAXED);
    return b;
}

void cgc__work_init(void) {}

void cgc__gcwork_push_slow(cgc_gcwork *w, uintptr_t obj) {
    cgc_workbuf *b = w->cur;
    if (!b || b->n == WORKBUF_N) {
        cgc_workbuf *fresh = NULL;
        if (b) {
            /* keep one full buffer locally for balance, publish the other */
            if (w->spare && w->spare->n) buf_put_full(w->spare);
            else fresh = w->spare; /* an empty spare becomes the new cur */
            w->spare = b;
        }
        b = w->cur = fresh ? fresh : buf_alloc();
    }
    b->obj[b->n++] = obj;
}

bool cgc__gcwork_pop_slow(cgc_gcwork *w, uintptr_t *obj) {
    cgc_workbuf *b = w->cur;
    if (b && b->n) {
        *obj = b->obj[--b->n];
        return true;
    }
    if (w->spare && w->spare->n) {
        w->cur = w->spare;
        w->spare = b;
        b = w->cur;
        *obj = b->obj[--b->n];
        return true;
    }
    cgc_workbuf *f = buf_get_full();
    if (!f) return false;
    CGC_ASSERT(f->n > 0 && f->n <= WORKBUF_N);
    if (b) buf_put_empty(b);
    w->cur = f;
    *obj = f->obj[--f->n];
    return true;
}

/* Called by a draining marker every few objects: when the pool is empty,
 * hand part of its private grey set to the pool, so that other markers
 * and mark assists have something to take (a tree marked depth-first
 * keeps its whole frontier in one marker's buffers otherwise, and assists
 * would find nothing to do while the heap grows). */
void cgc__gcwork_balance(cgc_gcwork *w) {
    if (atomic_load_explicit(&cgc__work_full_count, RELAXED) != 0) return;
    if (w->spare && w->spare->n) {
        buf_put_full(w->spare);
        w->spare = NULL;
        return;
    }
    cgc_workbuf *b = w->cur;
    if (!b || b->n < 8) return;
    cgc_workbuf *half = buf_alloc();
    uint64_t give = b->n / 2;
    /* the oldest entries: nearer the roots, so larger subgraphs */
    memcpy(half->obj, b->obj, give * sizeof b->obj[0]);
    memmove(b->obj, b->obj + give, (b->n - give) * sizeof b->obj[0]);
    half->n = give;
    b->n -= give;
    buf_put_full(half);
}

void cgc__gcwork_flush(cgc_gcwork *w) {
    if (w->cur) {
        if (w->cur->n) buf_put_full(w->cur);
        else buf_put_empty(w->cur);
        w->cur = NULL;
    }
    if (w->spare) {
        if (w->spare->n) buf_put_full(w->spare);
        else buf_put_empty(w->spare);
        w->spare = NULL;
    }
}

/* Flushes and hands the marker's counters to the cycle. */
void cgc__gcwork_dispose(cgc_gcwork *w) {
    cgc__gcwork_flush(w);
    if (w->bytes_marked) atomic_fetch_add_explicit(&cgc__pacer.heap_marked, w->bytes_marked, RELAXED);
    if (w->scan_work) atomic_fetch_add_explicit(&cgc__pacer.scan_work_done, w->scan_work, RELAXED);
    w->bytes_marked = w->scan_work = 0;
}

bool cgc__work_available(void) { return atomic_load_explicit(&cgc__work_full_count, ACQUIRE) != 0; }
bool cgc__work_empty(void) { return !cgc__work_available(); }
