/*
 * test_free_mark — explicit frees racing with concurrent marks.
 *
 * Several threads each keep a ring of live objects in a cgc heap object and
 * replace them at random: an old object is checked, then freed, and a new
 * one of a random size (16 B to 8 KiB) takes its place.  Half of the frees
 * are of objects another thread allocated (handed over through a shared
 * exchange array), so frees arrive both on the freeing thread's own cached
 * span (local free list) and on other threads' spans (remote free lists),
 * while cycles run back to back (cgc_set_percent(5)).
 *
 * What can break: a slot freed and handed out again while a mark runs must
 * come out black (allocate-black: cache.c pre-marks the free slots of
 * cached spans, and a slot freed into such a span must join them), or the
 * next sweep reclaims a live object.  Every object carries a pattern
 * derived from a seed stored in its first word; each check re-derives it.
 * A reclaimed object shows up as a damaged pattern, as cgc_free aborting
 * with "already freed", or (gccheckmark variant) as the verifier's report.
 */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>

#define THREADS 4
#define RING 2048
#define EXCHANGE 256

typedef struct obj {
    uint64_t seed;
    uint64_t size; /* bytes of the object, pattern after the header */
} obj;

static obj **_Atomic exchange_slots; /* cgc heap array: objects in transit (a global: a root) */
static atomic_ulong checked, damaged, remote_frees;
static atomic_int stop;

static size_t pick_size(uint64_t *r)
{
    uint64_t u = rng_below(r, 100);
    if (u < 50) return 16 + rng_below(r, 113);
    if (u < 80) return 129 + rng_below(r, 896);
    if (u < 95) return 1025 + rng_below(r, 3072);
    return 4097 + rng_below(r, 4096);
}

static obj *make(uint64_t *r)
{
    size_t n = pick_size(r);
    obj *o = cgc_malloc(n);
    CHECK(o != NULL);
    o->seed = rng_next(r) | 1;
    o->size = n;
    fill_pattern(o + 1, n - sizeof *o, o->seed);
    return o;
}

static void check_obj(const obj *o)
{
    atomic_fetch_add(&checked, 1);
    if (o->size < sizeof *o || o->size > 8192 || cgc_size(o) < o->size ||
        check_pattern(o + 1, o->size - sizeof *o, o->seed) >= 0) {
        atomic_fetch_add(&damaged, 1);
        fprintf(stderr, "damaged object %p (size field %llu)\n", (const void *)o,
                (unsigned long long)o->size);
    }
}

static void *mutator(void *arg)
{
    uint64_t r = 1000 + (uint64_t)(intptr_t)arg;
    obj **ring = cgc_malloc(RING * sizeof *ring);
    CHECK(ring != NULL);
    for (int i = 0; i < RING; i++) CGC_STORE(&ring[i], make(&r));
    obj **ex = atomic_load(&exchange_slots);
    while (!atomic_load(&stop)) {
        int s = (int)rng_below(&r, RING);
        obj *old = ring[s];
        check_obj(old);
        if (rng_below(&r, 2)) {
            /* hand ours over and free whatever another thread left there */
            int e = (int)rng_below(&r, EXCHANGE);
            obj *theirs = __atomic_load_n(&ex[e], __ATOMIC_ACQUIRE);
            if (theirs && cgc_cas((void **)&ex[e], theirs, NULL)) {
                check_obj(theirs);
                cgc_free(theirs);
                atomic_fetch_add(&remote_frees, 1);
            }
            CGC_STORE(&ring[s], (obj *)NULL);
            /* publish old through the barrier: cgc_cas records it */
            if (!cgc_cas((void **)&ex[e], NULL, old)) cgc_free(old);
        } else {
            CGC_STORE(&ring[s], (obj *)NULL);
            cgc_free(old);
        }
        CGC_STORE(&ring[s], make(&r));
    }
    for (int i = 0; i < RING; i++) check_obj(ring[i]);
    return NULL;
}

int main(void)
{
    cgc_init();
    cgc_set_percent(5);
    obj **ex = cgc_malloc(EXCHANGE * sizeof *ex);
    CHECK(ex != NULL);
    atomic_store(&exchange_slots, ex);

    long target = scaled(150, 40, 20000);
    double limit = (double)scaled(60, 60, 3000);
    double t0 = now_sec();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, mutator, (void *)(intptr_t)i) == 0);
    uint64_t cycles = run_cycles(target, limit, &damaged, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (int e = 0; e < EXCHANGE; e++)
        if (ex[e]) check_obj(ex[e]);

    printf("test_free_mark: %llu cycles in %.1f s, %lu objects checked, %lu frees of other "
           "threads' objects\n",
           (unsigned long long)cycles, now_sec() - t0, atomic_load(&checked),
           atomic_load(&remote_frees));
    CHECKF(atomic_load(&damaged) == 0, "%lu damaged objects", atomic_load(&damaged));
    CHECKF(cycles >= 20, "only %llu cycles", (unsigned long long)cycles);
    CHECK(atomic_load(&remote_frees) > 0);
    return finish("test_free_mark");
}
