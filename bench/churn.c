/*
 * churn — allocation churn with explicit frees.
 *
 * Each thread keeps a ring of K live objects.  Every iteration picks a random
 * slot, checks and frees the object in it, and puts a new object of a random
 * size there (16 B to 8 KiB, mostly small), writing its first two words.
 * All variants free explicitly (cgc_free, GC_FREE, free): this measures the
 * allocator as a malloc replacement, not the collector.
 *
 * usage: churn [threads=1] [iterations per thread=5000000] [slots=4096] [atomic=0]
 *   atomic=1 allocates the objects with B_MALLOC_ATOMIC (never scanned, not
 *   zeroed; malloc for the malloc variant), atomic=0 with B_MALLOC (scanned
 *   and zeroed by the collectors; calloc for the malloc variant, the same
 *   promise of zeroed memory).  Reported as kind=atomic / scan for the
 *   collectors, malloc / calloc for the malloc variant.
 */
#include "alloc_api.h"
#include "bench_util.h"

typedef struct {
    int id;
    long iters, slots;
    int atomic;
    uint64_t checksum, errors;
} worker;

/* 50 % 16-128 B, 30 % 129-1024 B, 15 % 1-4 KiB, 5 % 4-8 KiB. */
static inline size_t pick_size(bench_rng *r)
{
    uint64_t u = bench_rng_below(r, 100);
    if (u < 50)
        return 16 + bench_rng_below(r, 113);
    if (u < 80)
        return 129 + bench_rng_below(r, 896);
    if (u < 95)
        return 1025 + bench_rng_below(r, 3072);
    return 4097 + bench_rng_below(r, 4096);
}

static inline uint64_t *new_object(bench_rng *r, int atomic, uint64_t tag)
{
    size_t n = pick_size(r);
    uint64_t *p = (uint64_t *)(atomic ? B_MALLOC_ATOMIC(n) : B_MALLOC(n));
    b_check(p, n);
    p[0] = tag;
    p[1] = n;
    return p;
}

static void *run_worker(void *arg)
{
    worker *w = (worker *)arg;
    bench_rng r;
    bench_rng_seed(&r, 12345 + (uint64_t)w->id);
    long k = w->slots;
    /* The ring is a heap object (scanned by the collectors); the expected
     * tags live in plain malloc memory, which no collector scans. */
    uint64_t **ring = (uint64_t **)b_check(B_MALLOC(k * sizeof *ring), k * sizeof *ring);
    uint64_t *tags = (uint64_t *)b_check(malloc(k * sizeof *tags), k * sizeof *tags);
    uint64_t sum = 0, errors = 0;

    for (long i = 0; i < k; i++) {
        tags[i] = bench_rng_next(&r) | 1;
        B_STORE(&ring[i], new_object(&r, w->atomic, tags[i]));
    }
    for (long it = 0; it < w->iters; it++) {
        long s = (long)bench_rng_below(&r, (uint64_t)k);
        uint64_t *old = ring[s];
        if (old[0] != tags[s])
            errors++;
        sum += old[1];
        B_FREE(old);
        tags[s] = bench_rng_next(&r) | 1;
        B_STORE(&ring[s], new_object(&r, w->atomic, tags[s]));
    }
    for (long i = 0; i < k; i++) {
        if (ring[i][0] != tags[i])
            errors++;
        B_FREE(ring[i]);
        B_STORE(&ring[i], (uint64_t *)NULL);
    }
    B_FREE(ring);
    free(tags);
    w->checksum = sum;
    w->errors = errors;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = (int)bench_arg(argc, argv, 1, 1);
    long iters = bench_arg(argc, argv, 2, 5000000);
    long slots = bench_arg(argc, argv, 3, 4096);
    int atomic = argc > 4 && atoi(argv[4]) != 0;

    B_INIT();
    bench_gc_begin();

    worker *ws = (worker *)calloc((size_t)threads, sizeof *ws);
    pthread_t *tids = (pthread_t *)calloc((size_t)threads, sizeof *tids);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < threads; i++) {
        ws[i].id = i;
        ws[i].iters = iters;
        ws[i].slots = slots;
        ws[i].atomic = atomic;
        if (pthread_create(&tids[i], NULL, run_worker, &ws[i]) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    uint64_t sum = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        sum += ws[i].checksum;
        errors += ws[i].errors;
    }
    double secs = (bench_now_ns() - t0) / 1e9;

    bench_gc_summary gc;
    bench_gc_end(&gc);
    bench_gc_finish(&gc);
    double ops = (double)threads * (double)iters;
    bench_result("churn", secs, &gc,
                 "kind=%s threads=%d iters=%ld slots=%ld mops_s=%.2f thread_ns_per_op=%.1f checksum=%" PRIu64
                 " errors=%" PRIu64,
                 !B_IS_GC ? (atomic ? "malloc" : "calloc") : atomic ? "atomic" : "scan", threads, iters, slots, ops / secs / 1e6, secs * 1e9 / ops * threads,
                 sum, errors);
    if (errors != 0) {
        fprintf(stderr, "churn: %" PRIu64 " objects had a wrong tag (heap corruption)\n", errors);
        return 1;
    }
    return 0;
}
