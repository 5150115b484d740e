/*
 * barrier.c — the write barrier's slow path (Go's hybrid barrier).
 *
 * CGC_STORE (cgc.h) tests cgc_write_barrier_enabled and stores directly
 * when no mark runs.  While marking, each pointer store records the value
 * it overwrites (deletion barrier: snapshot of the heap at mark start) and,
 * while the storing thread's stack has not been scanned yet, the value it
 * writes (insertion barrier for pointers that only a grey stack holds).
 * Records go to a per-thread buffer of (old, new) pairs, shaded in batches
 * when it fills, at the ragged barrier, and at mark termination.
 *
 * Everything the barrier records is shaded before the mark can end: the
 * buffer is flushed by the owner when full (inside cgc, so a stop waits),
 * and by the collector with the thread held or the world stopped.
 */
#include "internal.h"

CGC_API int cgc_write_barrier_enabled;

void cgc__wbuf_flush(cgc_wbuf *b, cgc_gcwork *w) {
    if (atomic_load_explicit(&cgc__gc_marking, ACQUIRE)) {
        for (uint32_t i = 0; i < b->n; i++)
            if (b->ptr[i]) cgc__shade(w, b->ptr[i]);
    }
    __atomic_store_n(&b->n, 0, __ATOMIC_RELAXED);
}

/* The owner's flush of a full buffer. */
static NOINLINE void wbuf_flush_full(cgc_thread *t) {
    cgc_gcwork w = {0};
    cgc__wbuf_flush(&t->wbuf, &w);
    cgc__gcwork_dispose(&w);
}

/* Records the values to shade; NULLs (a store into a fresh field, a
 * stack already scanned) take no room. */
static ALWAYS_INLINE void record(cgc_thread *t, uintptr_t old, uintptr_t new_) {
    if (!(old | new_)) return;
    if (unlikely(t->wbuf.n + 2 > WBUF_N * 2)) wbuf_flush_full(t);
    uint32_t n = t->wbuf.n;
    t->wbuf.ptr[n] = old;
    n += old != 0;
    t->wbuf.ptr[n] = new_;
    n += new_ != 0;
    /* a relaxed store: the ragged barrier peeks at n without stopping the
     * thread (an empty buffer is skipped; mark termination flushes every
     * buffer with the world stopped, so a stale peek costs nothing) */
    __atomic_store_n(&t->wbuf.n, n, __ATOMIC_RELAXED);
}

static ALWAYS_INLINE bool stack_grey(cgc_thread *t) {
    return atomic_load_explicit(&t->stack_scanned_cycle, RELAXED) !=
           atomic_load_explicit(&cgc__gc_cycle, RELAXED);
}

static cgc_thread *barrier_thread(void) {
    cgc_thread *t = cgc__self;
    return t ? t : cgc__thread_register_self();
}

/* Reads a slot the program may be writing concurrently (its own race).
 * Exempt from the sanitizers; inlined into the frameless store path when
 * no sanitizer is built in. */
#ifdef CGC_SANITIZED
CGC_NO_SANITIZE static uintptr_t read_slot(void **slot) { return (uintptr_t)__atomic_load_n(slot, __ATOMIC_RELAXED); }
#else
static ALWAYS_INLINE uintptr_t read_slot(void **slot) { return (uintptr_t)__atomic_load_n(slot, __ATOMIC_RELAXED); }
#endif

/* The store's out-of-line parts, each ending in the store and the leave. */
static NOINLINE void store_recorded(cgc_thread *t, sig_atomic_t prev, void **slot, void *value, uintptr_t old,
                                    uintptr_t new_) {
    record(t, old, new_);
    *slot = value;
    cgc__leave(t, prev);
}

static NOINLINE void store_unregistered(void **slot, void *value) {
    cgc__thread_register_self();
    cgc_store_slow(slot, value);
}

/* Entered only while the flag is (or just was) set.  The common case while
 * marking, a store into a field that held NULL by a thread whose stack is
 * already scanned (every field of a fresh object), records nothing and
 * needs no stack frame: about 15 instructions.  The decision and the store
 * are made inside cgc (enter / leave), so no handshake falls between them:
 * a new cycle that started in between would find the new value neither
 * shaded nor on the stack it scans later. */
void cgc_store_slow(void **slot, void *value) {
    cgc_thread *t = cgc__self;
    if (unlikely(t == NULL)) return store_unregistered(slot, value);
    sig_atomic_t prev = cgc__enter(t);
    if (__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED)) {
        uintptr_t old = read_slot(slot);
        uintptr_t new_ = stack_grey(t) ? (uintptr_t)value : 0;
        if (old | new_) return store_recorded(t, prev, slot, value, old, new_);
    }
    *slot = value;
    if (unlikely(cgc__leave_stop_pending(t, prev))) return cgc__handshake_deferred(t, prev);
}

bool cgc_cas(void **slot, void *expected, void *desired) {
    if (__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED)) {
        cgc_thread *t = barrier_thread();
        sig_atomic_t prev = cgc__enter(t);
        /* on success the overwritten value is `expected`; on failure the
         * record only shades more than needed */
        if (__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED))
            record(t, (uintptr_t)expected, stack_grey(t) ? (uintptr_t)desired : 0);
        bool ok = __atomic_compare_exchange_n(slot, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        cgc__leave(t, prev);
        return ok;
    }
    return __atomic_compare_exchange_n(slot, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* Bulk barrier: every word about to be overwritten in [dst, dst+n), and
 * every word about to be written from src (Go's bulkBarrierPreWrite). */
CGC_NO_SANITIZE static void bulk_barrier(void *dst, const void *src, size_t n) {
    cgc_thread *t = barrier_thread();
    sig_atomic_t prev = cgc__enter(t);
    if (__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED)) {
        /* Bulk copies record every word they write, whatever the colour of
         * the stack (as Go's bulkBarrierPreWrite does): the source is often
         * an object about to be dropped or freed (cgc_realloc does both),
         * so its pointers must not ride into a black object unseen. */
        uintptr_t d = ((uintptr_t)dst + 7) & ~(uintptr_t)7;
        uintptr_t end = (uintptr_t)dst + n;
        for (; d + 8 <= end; d += 8) {
            uintptr_t old = __atomic_load_n((uintptr_t *)d, __ATOMIC_RELAXED);
            uintptr_t nw = 0;
            /* src words are unaligned when dst and src differ mod 8 */
            if (src) memcpy(&nw, (const char *)src + (d - (uintptr_t)dst), sizeof nw);
            record(t, old, nw);
        }
    }
    cgc__leave(t, prev);
}

/* An object explicitly freed while marking: its pointers are deleted
 * without a store, so record them as overwritten values (deletion barrier). */
void cgc__barrier_release(void *obj, size_t n) {
    if (__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED)) bulk_barrier(obj, NULL, n);
}

void *cgc_memmove(void *dst, const void *src, size_t n) {
    if (__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED)) bulk_barrier(dst, src, n);
    return memmove(dst, src, n);
}

void *cgc_memcpy(void *dst, const void *src, size_t n) {
    if (__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED)) bulk_barrier(dst, src, n);
    return memcpy(dst, src, n);
}

void *cgc_memclr(void *dst, size_t n) {
    if (__atomic_load_n(&cgc_write_barrier_enabled, __ATOMIC_RELAXED)) bulk_barrier(dst, NULL, n);
    return memset(dst, 0, n);
}
