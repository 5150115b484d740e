/*
 * checkmark.c — CGC_DEBUG=gccheckmark=1: after every mark, with the world
 * still stopped, mark everything again from the roots into a separate
 * bitmap (check_bits), single-threaded, and abort on any object reachable
 * now that the real mark left white, naming the object and what reaches it.
 * This is the proof obligation of the concurrent mark: at mark termination
 * every reachable object is marked.
 */
#include "internal.h"

#include <stdlib.h>

void cgc__scan_pending_starts(cgc_gcwork *w);
extern cgc_range *cgc__cycle_segments;
extern size_t cgc__cycle_nsegments;

void cgc__checkmark_missed(cgc_gcwork *w, cgc_span *s, uint32_t idx, uintptr_t p) {
    uintptr_t obj = s->base + idx * s->elemsize;
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

/* Mark workers must be stopped: the pool holds checkmark work only. */
void cgc__checkmark_verify(void) {
    cgc__heap_for_each_span(clear_check_bits, NULL);
    cgc_gcwork w = {0};
    w.checkmark = true;
    for (cgc_thread *t = cgc__threads; t; t = t->next) {
        w.src = (uintptr_t)t->tid;
        w.src_kind = "stack of thread (tid)";
        cgc__thread_scan_stack(t, &w);
        cgc__checkmark_drain(&w);
    }
    w.src_kind = "arguments of starting threads";
    cgc__scan_pending_starts(&w);
    cgc__checkmark_drain(&w);
    for (size_t i = 0; i < cgc__cycle_nsegments; i++) {
        w.src = cgc__cycle_segments[i].lo;
        w.src_kind = "data segment starting";
        cgc__scan_range(&w, cgc__cycle_segments[i].lo, cgc__cycle_segments[i].hi);
        cgc__checkmark_drain(&w);
    }
    cgc_range *user;
    size_t n = cgc__roots_user(&user);
    for (size_t i = 0; i < n; i++) {
        w.src = user[i].lo;
        w.src_kind = "cgc_add_roots range starting";
        cgc__scan_range(&w, user[i].lo, user[i].hi);
        cgc__checkmark_drain(&w);
    }
    free(user);
    w.bytes_marked = w.scan_work = 0;
    cgc__gcwork_flush(&w);
}
