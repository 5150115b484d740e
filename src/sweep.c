/*
 * sweep.c — sweeping: after a mark, each span's mark bytes become its alloc
 * bits and its mark bytes are cleared; a span with nothing marked
 * goes back to the page heap.  Sweeping never writes objects.
 *
 * Go's sweepgen protocol, sg = cgc__sweepgen, advanced by 2 at each mark
 * termination (world stopped, every thread cache handed back first):
 *   span->sweepgen == sg - 2   the span needs sweeping
 *   span->sweepgen == sg - 1   the span is being swept (claimed by CAS)
 *   span->sweepgen == sg       the span is swept and ready to use
 * (Go's sg+1 / sg+3 states for spans cached across the boundary do not
 * arise: cgc empties every cache at mark termination.)
 * Sweepers: the background sweeper thread, threads refilling their caches
 * (on-demand for their class, one more span of any class per refill), and
 * the coordinator, which finishes whatever is left before the next cycle.
 */
#include "internal.h"

#include <sched.h>

atomic_u32 cgc__sweepgen = 4; /* even; starts above 2 so sg-2 never wraps */
atomic_u32 cgc__sweepers_active;
pthread_rwlock_t cgc__sweep_fork_lock = PTHREAD_RWLOCK_INITIALIZER;
/* Nonzero while unswept spans may remain: the sweepgen of that sweep. */
atomic_u64 cgc__sweep_pages_left;
static _Atomic unsigned sweep_cursor;
static pthread_mutex_t sweeper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sweeper_cv = PTHREAD_COND_INITIALIZER;
static int sweeper_wakeups;

bool cgc__sweep_span(cgc_span *s, bool preserve) {
    uint32_t sg = atomic_load_explicit(&cgc__sweepgen, RELAXED);
    CGC_ASSERT(atomic_load_explicit(&s->sweepgen, RELAXED) == sg - 1);
    CGC_ASSERT(!atomic_load_explicit(&cgc__gc_marking, RELAXED));
    CGC_ASSERT(s->where == WHERE_NONE);
    CGC_ASSERT(!s->preblack);
    CGC_ASSERT(atomic_load_explicit(&s->owner, RELAXED) == NULL); /* no cache holds it */
    if (cgc__opt.gccheckmark) cgc__checkmark_sweep_verify(s);

    /* objects freed by other threads are free whatever their mark says */
    void *r = atomic_exchange_explicit(&s->remote_free, NULL, ACQUIRE);
    uint64_t remote = 0;
    for (; r; r = *(void **)r) {
        uint32_t idx = cgc__obj_index(s, (uintptr_t)r);
        atomic_store_explicit(&s->mark[idx], 0, RELAXED);
        remote++;
    }

    if (s->sizeclass == 0) {
        bool live = cgc__marked(s, 0) && !atomic_load_explicit(&s->large_freed, ACQUIRE);
        atomic_store_explicit(&s->mark[0], 0, RELAXED);
        if (!live) {
            atomic_fetch_add_explicit(&cgc__stats.frees, 1, RELAXED);
            cgc__heap_free_span(s);
            return false;
        }
        s->alloc_count = 1;
        atomic_store_explicit(&s->sweepgen, sg, RELEASE);
        return true;
    }

    /* freed: the objects this sweep frees, counted from the bits it
     * clears (alloc_count of a span handed back at mark termination is
     * not a count: cgc__cache_flush) */
    uint32_t nwords = (s->nelems + 63) / 64, nalloc = 0, freed = 0;
    for (uint32_t w = 0; w < nwords; w++) {
        /* marked and allocated: an object freed with cgc_free after a
         * marker reached it is free (internal.h, above cgc_span) */
        uint64_t old = atomic_load_explicit(&s->alloc_bits[w], RELAXED);
        uint64_t m = cgc__mark_word(s, w) & old;
        atomic_store_explicit(&s->alloc_bits[w], m, RELAXED);
        nalloc += cgc__popcount(m);
        freed += cgc__popcount(old & ~m);
    }
    cgc__mark_clear_all(s);
    if (freed) atomic_fetch_add_explicit(&cgc__stats.frees, freed, RELAXED);
    s->alloc_count = nalloc;
    s->freeindex = 0;
    s->alloc_cache = 0;
    if (freed || remote) s->needzero = 1;
    cgc__span_check(s);
    if (nalloc == 0 && !preserve) {
        cgc__heap_free_span(s);
        return false;
    }
    /* release: the new bitmaps before the state that lets others use it */
    atomic_store_explicit(&s->sweepgen, sg, RELEASE);
    return true;
}

bool cgc__sweep_one(bool may_wait) {
    uint64_t sweep = atomic_load_explicit(&cgc__sweep_pages_left, ACQUIRE);
    if (!sweep) return false;
    /* sweepers spread over the classes; a class found empty leaves the
     * hint (central.c), so each call visits only classes with work.  A
     * program thread does not wait for a class lock: its holder can be the
     * background sweeper, a SCHED_BATCH thread preempted with it held
     * (traced: an allocation asleep 0.6-1.4 ms behind it); the class is
     * left to the sweeper, which waits. */
    bool skipped = false;
    unsigned start = atomic_fetch_add_explicit(&sweep_cursor, 1, RELAXED);
    for (int spc; (spc = cgc__central_next_unswept_class(start)) >= 0; start = (unsigned)spc + 1) {
        pthread_rwlock_rdlock(&cgc__sweep_fork_lock);
        bool busy;
        cgc_span *s = cgc__central_take_unswept(spc, may_wait, &busy);
        if (!s) {
            pthread_rwlock_unlock(&cgc__sweep_fork_lock);
            skipped |= busy;
            continue;
        }
        if (cgc__sweep_span(s, false)) cgc__central_put_swept(s);
        atomic_fetch_sub_explicit(&cgc__sweepers_active, 1, RELEASE);
        pthread_rwlock_unlock(&cgc__sweep_fork_lock);
        return true;
    }
    if (skipped) return true; /* not over: the busy classes may hold spans */
    /* Nothing unswept in any class: this sweep is over (spans being swept
     * right now are counted by cgc__sweepers_active).  Only this sweep's
     * mark is cleared: a slow sweeper must not end the next one. */
    atomic_compare_exchange_strong_explicit(&cgc__sweep_pages_left, &sweep, 0, RELEASE, RELAXED);
    return false;
}

/* Sweeps until nothing is left, yielding every 64 spans so that a program
 * thread waiting for this CPU gets it: the background sweeper's loop, and
 * the coordinator's before each cycle (which can be thousands of spans
 * when the sweeper got no CPU; the coordinator runs at normal priority
 * with a short slice, often on the CPU of the program thread whose
 * allocation asked for the cycle). */
static void sweep_all(void) {
    for (unsigned n = 0; cgc__sweep_one(true);)
        if ((++n & 63) == 0) sched_yield();
}

void cgc__sweep_finish(void) {
    sweep_all();
    while (atomic_load_explicit(&cgc__sweepers_active, ACQUIRE)) sched_yield();
}

/* What the scavenger keeps: 10 % over the largest of the last few heap
 * goals or of the pages in spans at their peak, plus 4 MiB.  A heap whose
 * live size swings between cycles (a big temporary structure built and
 * dropped) would otherwise give pages back after each small cycle only to
 * fault them in again after the next one: each release costs a TLB
 * shootdown, each fault a zeroed page.  The goal counts bytes in objects;
 * the spans holding them take more pages (slots freed and not yet reused,
 * class rounding), so the pages in use at their peak count too. */
#define SCAVENGE_GOALS 4
static uint64_t scavenge_retain(uint64_t goal, uint64_t inuse_peak) {
    static uint64_t recent[SCAVENGE_GOALS]; /* the sweeper thread's own */
    static unsigned next;
    recent[next++ % SCAVENGE_GOALS] = goal > inuse_peak ? goal : inuse_peak;
    uint64_t peak = 0;
    for (unsigned i = 0; i < SCAVENGE_GOALS; i++)
        if (recent[i] > peak) peak = recent[i];
    return peak + peak / 10 + (4u << 20);
}

static void *sweeper_main(void *arg) {
    (void)arg;
    /* background work: SCHED_BATCH, so that a wakeup does not preempt the
     * program's thread on its CPU (the sweeper never takes part in a
     * stopped world, unlike the mark workers, which keep the normal
     * policy: mark.c) */
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    for (;;) {
        pthread_mutex_lock(&sweeper_lock);
        while (!sweeper_wakeups) pthread_cond_wait(&sweeper_cv, &sweeper_lock);
        sweeper_wakeups = 0;
        pthread_mutex_unlock(&sweeper_lock);
        uint64_t cpu0 = cgc__thread_cputime();
        sweep_all();
        /* sweep done: give back what the heap will not need before the
         * next goal (the scavenger) */
        cgc__heap_scavenge(
            scavenge_retain(atomic_load_explicit(&cgc__pacer.heap_goal, RELAXED), cgc__heap_take_inuse_peak()));
        atomic_fetch_add_explicit(&cgc__stats.gc_cpu_ns, cgc__thread_cputime() - cpu0, RELAXED);
    }
    return NULL;
}

void cgc__sweep_start(void) {
    cgc__central_note_unswept_classes();
    atomic_store_explicit(&cgc__sweep_pages_left, atomic_load(&cgc__sweepgen), RELEASE);
    pthread_mutex_lock(&sweeper_lock);
    sweeper_wakeups++;
    pthread_cond_signal(&sweeper_cv);
    pthread_mutex_unlock(&sweeper_lock);
}

void cgc__sweep_after_fork_child(void) {
    pthread_mutex_init(&sweeper_lock, NULL);
    pthread_cond_init(&sweeper_cv, NULL);
    sweeper_wakeups = 0;
}

void cgc__sweeper_init(void) {
    static pthread_t th;
    if (cgc__internal_thread(&th, "cgc-sweep", sweeper_main, NULL)) cgc__fatal("cannot start the background sweeper");
}
