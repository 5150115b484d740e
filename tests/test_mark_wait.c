/*
 * test_mark_wait.c — a thread that waits for a mark to end (the heap past
 * its overshoot bound) may stay off the CPU while whole cycles run on;
 * nothing it holds or is allocating may be lost meanwhile.
 *
 * Fault injection (debug builds, internal.h): the worker's assists always
 * wait for the mark's end, and after each wait, still a blocking thread,
 * the worker stays there until the main thread has run two more complete
 * cycles (mark and sweep) — what a loaded machine does to a thread it
 * leaves off the CPU.  Then the allocation that waited returns.  Its object
 * must be allocated, of the size asked, and stay intact through further
 * cycles, and so must the objects the worker held in locals across the
 * wait.  Both allocation paths that assist are driven: a large object, and
 * a small one whose span ran out (the cache refill).
 *
 * The regression this guards: a large object was allocated before its
 * assist, so while the thread waited it was held only through its span
 * struct, which no scan reads; the second cycle swept it, and the program
 * received freed memory (test_barrier caught it on loaded machines only).
 */
#include "check.h"
#include "internal.h"

#include <pthread.h>

enum { ROUNDS = 6, LARGE = 40000, SMALL = 48, HELD = 16 };

static atomic_int waits;          /* forced waits the worker went through */
static atomic_long cycles_run;    /* complete cycles run by main */
static atomic_int worker_done;

/* Runs in the worker, inside cgc, as a blocking thread (its stack read as
 * saved): only atomics and sleeping here. */
static void hold_through_two_cycles(void)
{
    long start = atomic_load(&cycles_run);
    atomic_fetch_add(&waits, 1);
    while (atomic_load(&cycles_run) < start + 2)
        usleep(100);
}

/* A held object: a pattern keyed by its own address. */
static NOINLINE void *make_held(size_t n)
{
    void *p = cgc_malloc_atomic(n);
    if (!p)
        abort();
    fill_pattern(p, n, (uintptr_t)p);
    return p;
}

static int held_ok(void *p, size_t n)
{
    return cgc_base(p) == p && cgc_size(p) >= n && check_pattern(p, n, (uintptr_t)p) == -1;
}

/* Allocates until one allocation has gone through a forced wait; returns
 * that allocation.  `small`: objects of one class until its span runs out
 * and the refill assists; else large objects (each one assists). */
static NOINLINE void *allocate_through_a_wait(int small, void **held, size_t *size)
{
    int before = atomic_load(&waits);
    for (unsigned k = 0;; k++) {
        size_t n = small ? SMALL : LARGE;
        void *p = cgc_malloc(n);
        if (!p)
            abort();
        if (atomic_load(&waits) != before) {
            *size = n;
            return p;
        }
        /* keep a few recent ones in the worker's frames as well */
        held[k % HELD] = make_held(small ? 24 : 4000);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    void *held[HELD];
    for (int i = 0; i < HELD; i++)
        held[i] = make_held(32 + 16 * (size_t)i);
    atomic_store(&cgc__debug_mark_wait_thread, cgc__self);
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = 0;
        void *p = allocate_through_a_wait(r % 2, held, &n);
        /* two whole cycles ran while this allocation waited */
        CHECKF(cgc_base(p) == p && cgc_size(p) >= n,
               "round %d: the %zu-byte object %p returned after the wait is not allocated "
               "(base %p, size %zu)", r, n, p, cgc_base(p), cgc_base(p) ? cgc_size(p) : 0);
        fill_pattern(p, n, (uintptr_t)p);
        for (int i = 0; i < HELD; i++)
            CHECKF(held_ok(held[i], 24), "round %d: held object %d (%p) lost", r, i, held[i]);
        /* and it stays: more cycles while it is held in this frame */
        long c = atomic_load(&cycles_run);
        while (atomic_load(&cycles_run) < c + 2)
            usleep(100);
        CHECKF(cgc_base(p) == p && check_pattern(p, n, (uintptr_t)p) == -1,
               "round %d: object %p damaged after further cycles", r, p);
    }
    atomic_store(&cgc__debug_mark_wait_thread, NULL);
    atomic_store(&worker_done, 1);
    return NULL;
}

int main(void)
{
    cgc_init();
    cgc_set_stoptheworld(0);
    cgc_set_percent(-1); /* cycles only when main runs them */
    atomic_store(&cgc__debug_mark_wait_hook, hold_through_two_cycles);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
    double t0 = now_sec();
    while (!atomic_load(&worker_done) && now_sec() - t0 < 120) {
        cgc_collect();
        atomic_fetch_add(&cycles_run, 1);
    }
    pthread_join(t, NULL);
    atomic_store(&cgc__debug_mark_wait_hook, NULL);
    printf("test_mark_wait: %d forced waits, %ld cycles in %.1f s\n", atomic_load(&waits),
           atomic_load(&cycles_run), now_sec() - t0);
    CHECK(atomic_load(&worker_done));
    CHECK(atomic_load(&waits) >= ROUNDS);
    return finish("test_mark_wait");
}
