/*
 * test_owned — a thread's owned spans (cache.c): frees into spans a thread
 * allocated from before stay with that thread and come back to it.
 *
 * With the collector disabled, so that only the allocator moves slots:
 *   - local reuse: one thread allocates many objects of one class (spread
 *     over more than a hundred spans), frees them all in random order, and
 *     allocates as many again: every new object is one of the freed slots,
 *     zeroed (cgc_malloc) or intact where it was written (the uninit form),
 *     and the heap does not grow.
 *   - remote frees into owned spans: thread A allocates, thread B frees
 *     everything, A allocates again: A finds the slots through the remote
 *     hint, not new spans.  Without the hint A would grow the heap.
 *   - accounting: heap_alloc falls back after the frees.
 * With the collector on: owned spans are handed back at every mark
 * termination; objects kept across cycles in owned spans keep their
 * contents, and freed ones are reused.
 */
#include "check.h"

#include <pthread.h>

#define N 4096
#define SIZE 256

static uintptr_t addrs[N]; /* hidden from the collector: plain integers */
static int cmp_addr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static bool in_old_set(uintptr_t p) {
    return bsearch(&p, addrs, N, sizeof addrs[0], cmp_addr) != NULL;
}

static void shuffle(void **v, size_t n, uint64_t *r) {
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rng_below(r, i + 1);
        void *t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static uint64_t heap_alloc_now(void) {
    cgc_stats st;
    cgc_read_stats(&st);
    return st.heap_alloc;
}

static uint64_t heap_sys_now(void) {
    cgc_stats st;
    cgc_read_stats(&st);
    return st.heap_sys;
}

/* The objects live in a malloc'd array: the collector is disabled, and
 * with it enabled the test below keeps its own roots. */
static void **objs;
static void *volatile garbage_sink;

static void test_local_reuse(bool uninit) {
    uint64_t r = 42 + uninit;
    for (size_t i = 0; i < N; i++) {
        objs[i] = uninit ? cgc_malloc_atomic_uninit(SIZE) : cgc_malloc(SIZE);
        memset(objs[i], 0xAB, SIZE);
        addrs[i] = (uintptr_t)objs[i];
    }
    qsort(addrs, N, sizeof addrs[0], cmp_addr);
    uint64_t sys0 = heap_sys_now(), live0 = heap_alloc_now();
    shuffle(objs, N, &r);
    for (size_t i = 0; i < N; i++) cgc_free(objs[i]);
    uint64_t live1 = heap_alloc_now();
    CHECKF(live1 + (uint64_t)N * SIZE / 2 < live0, "heap_alloc %llu -> %llu after freeing %d objects",
           (unsigned long long)live0, (unsigned long long)live1, N);

    size_t reused = 0, dirty = 0;
    for (size_t i = 0; i < N; i++) {
        unsigned char *p = uninit ? cgc_malloc_atomic_uninit(SIZE) : cgc_malloc(SIZE);
        objs[i] = p;
        reused += in_old_set((uintptr_t)p);
        if (!uninit)
            for (size_t k = 0; k < SIZE; k++) dirty += p[k] != 0;
        for (size_t k = 0; k < SIZE; k++) p[k] = (unsigned char)(i * 7 + k);
    }
    CHECKF(reused == N, "%zu of %d new objects were freed slots (uninit=%d)", reused, N, uninit);
    CHECKF(dirty == 0, "%zu bytes of new cgc_malloc objects were not zero", dirty);
    CHECKF(heap_sys_now() == sys0, "heap grew from %llu to %llu bytes", (unsigned long long)sys0,
           (unsigned long long)heap_sys_now());
    size_t damaged = 0;
    for (size_t i = 0; i < N; i++) {
        unsigned char *p = objs[i];
        for (size_t k = 0; k < SIZE; k++) damaged += p[k] != (unsigned char)(i * 7 + k);
    }
    CHECKF(damaged == 0, "%zu bytes damaged", damaged);
    for (size_t i = 0; i < N; i++) cgc_free(objs[i]);
}

static void *free_all(void *arg) {
    (void)arg;
    for (size_t i = 0; i < N; i++) cgc_free(objs[i]);
    return NULL;
}

static void test_remote_frees(void) {
    for (size_t i = 0; i < N; i++) {
        objs[i] = cgc_malloc(SIZE);
        ((uint64_t *)objs[i])[2] = i;
        addrs[i] = (uintptr_t)objs[i];
    }
    qsort(addrs, N, sizeof addrs[0], cmp_addr);
    uint64_t sys0 = heap_sys_now();
    pthread_t th;
    CHECK(pthread_create(&th, NULL, free_all, NULL) == 0);
    pthread_join(th, NULL);
    size_t reused = 0, dirty = 0;
    for (size_t i = 0; i < N; i++) {
        uint64_t *p = cgc_malloc(SIZE);
        objs[i] = p;
        reused += in_old_set((uintptr_t)p);
        for (size_t k = 0; k < SIZE / 8; k++) dirty += p[k] != 0;
    }
    CHECKF(reused == N, "%zu of %d objects were slots another thread freed", reused, N);
    CHECKF(dirty == 0, "%zu words of reused slots were not zero", dirty);
    CHECKF(heap_sys_now() == sys0, "heap grew from %llu to %llu bytes", (unsigned long long)sys0,
           (unsigned long long)heap_sys_now());
    for (size_t i = 0; i < N; i++) cgc_free(objs[i]);
}

/* Collector on: keep half the objects (in a cgc array, so they are
 * reachable), free and replace the other half, over many cycles; each
 * kept object carries its index and a pattern. */
static void test_across_cycles(void) {
    void **keep = cgc_malloc(N * sizeof *keep);
    uint64_t r = 7;
    for (size_t i = 0; i < N; i++) {
        uint64_t *p = cgc_malloc(SIZE);
        for (size_t k = 0; k < SIZE / 8; k++) p[k] = i * 1000 + k;
        keep[i] = p;
    }
    cgc_stats st0;
    cgc_read_stats(&st0);
    size_t damaged = 0;
    unsigned rounds = (unsigned)scaled(200, 20, 2000);
    for (unsigned round = 0; round < rounds; round++) {
        for (size_t n = 0; n < N / 2; n++) {
            size_t i = (size_t)rng_below(&r, N);
            uint64_t *p = keep[i];
            for (size_t k = 0; k < SIZE / 8; k++) damaged += p[k] != i * 1000 + k;
            cgc_free(p);
            p = cgc_malloc(SIZE);
            for (size_t k = 0; k < SIZE / 8; k++) damaged += p[k] != 0;
            for (size_t k = 0; k < SIZE / 8; k++) p[k] = i * 1000 + k;
            cgc_store(&keep[i], p);
        }
        for (int g = 0; g < 64; g++) garbage_sink = cgc_malloc(4096); /* garbage: cycles */
        if (round % 16 == 0) cgc_collect();
    }
    cgc_stats st1;
    cgc_read_stats(&st1);
    CHECKF(damaged == 0, "%zu words damaged or not zero", damaged);
    CHECKF(st1.num_gc > st0.num_gc + rounds / 16, "only %llu cycles ran",
           (unsigned long long)(st1.num_gc - st0.num_gc));
}

int main(void) {
    cgc_init();
    objs = malloc(N * sizeof *objs);
    cgc_disable();
    test_local_reuse(false);
    test_local_reuse(true);
    test_remote_frees();
    cgc_enable();
    cgc_set_percent(20);
    test_across_cycles();
    free(objs);
    return finish("test_owned");
}
