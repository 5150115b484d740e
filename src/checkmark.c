/*
 * checkmark.c — CGC_DEBUG=gccheckmark=1: after every mark, with the world
 * still stopped, mark everything again from the roots into a separate
 * bitmap (check_bits), single-threaded, and abort on any object reachable
 * now that the real mark left white, naming the object and what reaches it.
 * This is the proof obligation of the concurrent mark: at mark termination
 * every reachable object is marked.
 *
 * What is verified, and why not more: conservative stacks.  A thread's
 * stack and registers may hold stale words (dead locals, padding, dead
 * caller-saved registers) written before the concurrent scan of that stack
 * and moved since by code that copies uninitialised memory; they point at
 * objects that were garbage when the stack was scanned and that the program
 * can never use.  So the verifier checks the two things the concurrent mark
 * promises and that stale words cannot fake:
 *   - every object reachable from the data segments, the cgc_add_roots
 *     ranges and the arguments of starting threads is marked (those roots
 *     are written through the barrier);
 *   - no marked object points to an unmarked object (the tri-colour
 *     invariant at termination: no black object refers to a white one).
 * Objects reached only through stack words or registers are marked in the
 * check bitmap and their marked descendants verified, but an unmarked one
 * found there is not reported.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void cgc__scan_pending_starts(cgc_gcwork *w);
extern cgc_range *cgc__cycle_segments;
extern size_t cgc__cycle_nsegments;

void cgc__checkmark_missed(cgc_gcwork *w, cgc_span *s, uint32_t idx, uintptr_t p) {
    if (w->lenient) return;
    uintptr_t obj = s->base + idx * s->elemsize;
    /* a stale pointer to an object already freed explicitly (cgc_free) that
     * waits on its span's remote list: free memory, not a missed object */
    if (cgc__pending_remote_free(s, obj)) return;
    if (w->src_kind && strstr(w->src_kind, "stack")) {
        for (cgc_thread *t = cgc__threads; t; t = t->next)
            if ((uintptr_t)t->tid == w->src)
                cgc__printf("checkmark: thread %d: word at %p; stack now %p, scanned from %p, hi %p; regs at %p",
                            (int)t->tid, (void *)w->src_word, (void *)cgc__thread_stack_start(t),
                            (void *)t->scan_sp, (void *)t->stack_hi, (void *)t->saved_regs);
    }
    cgc__fatal("gccheckmark: object %p (size %zu, span class %u) is reachable but was not marked; "
               "found through the word %p in the %s at %p",
               (void *)obj, (size_t)s->elemsize, s->spanclass, (void *)p, w->src_kind ? w->src_kind : "?",
               (void *)w->src);
}

static void clear_check_bits(cgc_span *s, void *arg) {
    (void)arg;
    for (int i = 0; i < SPAN_BITMAP_WORDS; i++) atomic_store_explicit(&s->check_bits[i], 0, RELAXED);
}

void cgc__checkmark_drain(cgc_gcwork *w);

static void snapshot_marks(cgc_span *s, void *arg) {
    (void)arg;
    for (uint32_t i = 0; i < SPAN_BITMAP_WORDS; i++) {
        uint64_t kept = 0;
        if (i * 64 < s->nelems) kept = cgc__mark_word(s, i) & atomic_load_explicit(&s->alloc_bits[i], RELAXED);
        atomic_store_explicit(&s->check_bits[i], kept, RELAXED);
    }
}

/* Mark workers must be stopped: the pool holds checkmark work only. */
void cgc__checkmark_verify(void) {
    cgc__heap_for_each_span(clear_check_bits, NULL);
    cgc_gcwork w = {0};
    w.checkmark = true;
    w.src_kind = "arguments of starting threads";
    w.lenient = false;
    cgc__scan_pending_starts(&w);
    cgc__checkmark_drain(&w);
    for (size_t i = 0; i < cgc__cycle_nsegments; i++) {
        w.src = cgc__cycle_segments[i].lo;
        w.src_kind = "data segment starting";
        w.lenient = false;
        cgc__scan_range(&w, cgc__cycle_segments[i].lo, cgc__cycle_segments[i].hi);
        cgc__checkmark_drain(&w);
    }
    cgc_range *user;
    size_t n = cgc__roots_user(&user);
    for (size_t i = 0; i < n; i++) {
        w.src = user[i].lo;
        w.src_kind = "cgc_add_roots range starting";
        w.lenient = false;
        cgc__scan_range(&w, user[i].lo, user[i].hi);
        cgc__checkmark_drain(&w);
    }
    free(user);
    for (cgc_thread *t = cgc__threads; t; t = t->next) {
        w.src = (uintptr_t)t->tid;
        w.src_kind = atomic_load(&t->state) == TS_BLOCKING_HELD ? "stack of the blocking thread (tid)"
                     : t->is_main                             ? "stack of the main thread (tid)"
                                                              : "stack of thread (tid)";
        w.lenient = true;
        cgc__scan_range(&w, cgc__thread_stack_start(t), t->stack_hi);
        cgc__scan_range(&w, (uintptr_t)t->saved_regs, (uintptr_t)(t->saved_regs + 32));
        if (t->tls_hi > t->tls_lo) cgc__scan_range(&w, t->tls_lo, t->tls_hi);
        cgc__checkmark_drain(&w);
    }
    w.bytes_marked = w.scan_work = 0;
    cgc__gcwork_flush(&w);
    /* The verified mark, kept for the sweep: check_bits become "allocated
     * and marked now".  Nothing between here and the sweep of a span may
     * take such an object away (cgc__checkmark_sweep_verify). */
    cgc__heap_for_each_span(snapshot_marks, NULL);
}

/* Sweep of s, before its bitmaps change (gccheckmark): every object the
 * verified mark kept is still marked, unless freed explicitly since. */
void cgc__checkmark_sweep_verify(cgc_span *s) {
    uint32_t nwords = (s->nelems + 63) / 64;
    for (uint32_t w = 0; w < nwords; w++) {
        uint64_t kept = atomic_load_explicit(&s->check_bits[w], RELAXED);
        uint64_t lost = kept & ~cgc__mark_word(s, w);
        if (!lost) continue;
        uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(lost);
        uintptr_t obj = s->base + idx * s->elemsize;
        if (cgc__pending_remote_free(s, obj)) continue;
        cgc__fatal("gccheckmark: object %p (slot %u of span %p, span class %u, sweepgen %u, heap sg %u) "
                   "was marked at mark termination but its mark is gone at its sweep",
                   (void *)obj, idx, (void *)s->base, s->spanclass, atomic_load(&s->sweepgen),
                   atomic_load(&cgc__sweepgen));
    }
}
