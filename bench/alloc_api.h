/*
 * alloc_api.h — one allocation interface, three backends, chosen at compile
 * time.  Every benchmark program includes this header first and is built
 * once per backend:
 *
 *   -DUSE_CGC     cgc (this project): cgc_malloc, CGC_STORE write barrier
 *   -DUSE_BDWGC   the Boehm-Demers-Weiser collector (bdwgc, <gc.h>)
 *   -DUSE_MALLOC  the C library's malloc/free (glibc, or whatever allocator
 *                 is put in front of it with LD_PRELOAD: mimalloc, jemalloc)
 *
 * The macros:
 *   B_INIT()              initialise the backend (call first, in main)
 *   B_MALLOC(n)           object that may hold pointers (zeroed: calloc for malloc)
 *   B_MALLOC_ATOMIC(n)    object that holds no pointers (need not be zeroed)
 *   B_FREE(p)             explicit free (cgc_free / GC_FREE / free)
 *   B_STORE(slot, v)      *slot = v for a pointer field in the heap or in a
 *                         global; through the write barrier for cgc
 *   B_IS_GC               1 for the collectors, 0 for malloc
 *   B_VARIANT             "cgc", "bdwgc" or "malloc"
 *
 * Collector statistics (pauses, cycles) are gathered with
 *   bench_gc_begin()   after B_INIT: remembers the baseline
 *   bench_gc_poll()    at convenient points outside timed regions; cgc keeps
 *                      only its last 256 pauses, so long runs poll to see them all
 *   bench_gc_end(&s)   final numbers
 */
#ifndef BENCH_ALLOC_API_H
#define BENCH_ALLOC_API_H

#if (defined(USE_CGC) + defined(USE_BDWGC) + defined(USE_MALLOC)) != 1
#error "define exactly one of USE_CGC, USE_BDWGC, USE_MALLOC"
#endif

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if defined(USE_CGC)
#include <cgc.h>
#elif defined(USE_BDWGC)
#define GC_THREADS 1 /* redirect pthread_create so bdwgc knows every thread */
#include <gc.h>
#endif

#include <pthread.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ backends -- */

#if defined(USE_CGC)

#define B_VARIANT "cgc"
#define B_IS_GC 1
#define B_INIT() cgc_init()
#define B_MALLOC(n) cgc_malloc(n)
#define B_MALLOC_ATOMIC(n) cgc_malloc_atomic_uninit(n) /* as GC_MALLOC_ATOMIC: not zeroed */
#define B_FREE(p) cgc_free(p)
#define B_STORE(slot, v) CGC_STORE(slot, v)

#elif defined(USE_BDWGC)

#define B_VARIANT "bdwgc"
#define B_IS_GC 1
#define B_INIT() GC_INIT()
#define B_MALLOC(n) GC_MALLOC(n)
#define B_MALLOC_ATOMIC(n) GC_MALLOC_ATOMIC(n)
#define B_FREE(p) GC_FREE(p)
#define B_STORE(slot, v) (*(slot) = (v))

#else /* USE_MALLOC */

#define B_VARIANT "malloc"
#define B_IS_GC 0
#define B_INIT() ((void)0)
#define B_MALLOC(n) calloc(1, (n))
#define B_MALLOC_ATOMIC(n) malloc(n)
#define B_FREE(p) free(p)
#define B_STORE(slot, v) (*(slot) = (v))

#endif

/* Keeps the compiler from dropping a value it thinks unused. */
#define B_KEEP(p) __asm__ __volatile__("" : : "r"(p) : "memory")

static inline void *b_check(void *p, size_t n)
{
    if (p == NULL) {
        fprintf(stderr, "allocation of %zu bytes failed\n", n);
        exit(3);
    }
    return p;
}

/* ------------------------------------------------- collector statistics -- */

/* Pauses are kept in memory the collectors do not scan (mmap), so the
 * bookkeeping neither adds roots nor keeps anything alive. */
#define BENCH_MAX_PAUSES (1u << 20)

typedef struct bench_gc_summary {
    uint64_t cycles;      /* collections completed during the run */
    uint64_t num_pauses;  /* stop-the-world pauses reported by the collector */
    uint64_t pauses_seen; /* of which this program saw the length */
    uint64_t max_ns;      /* longest pause (exact, even if not all were seen) */
    uint64_t p50_ns;      /* percentiles over the pauses seen */
    uint64_t p99_ns;
    uint64_t total_ns;    /* sum of all pauses */
} bench_gc_summary;

static uint64_t *bench_pauses;
static uint64_t bench_npauses;

static void bench_pause_record(uint64_t ns)
{
    if (bench_pauses != NULL && bench_npauses < BENCH_MAX_PAUSES)
        bench_pauses[bench_npauses++] = ns;
}

static void bench_pause_alloc(void)
{
    void *m = mmap(NULL, BENCH_MAX_PAUSES * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bench_pauses = (m == MAP_FAILED) ? NULL : (uint64_t *)m;
    bench_npauses = 0;
}

#if defined(USE_CGC)

static uint64_t bench_cgc_gc0, bench_cgc_pause0, bench_cgc_seen_upto, bench_cgc_total0;

static void bench_gc_begin(void)
{
    cgc_stats s;
    bench_pause_alloc();
    cgc_read_stats(&s);
    bench_cgc_gc0 = s.num_gc;
    bench_cgc_pause0 = s.num_pauses;
    bench_cgc_seen_upto = s.num_pauses;
    bench_cgc_total0 = s.pause_total_ns;
}

static void bench_cgc_take(const cgc_stats *s)
{
    uint64_t from = bench_cgc_seen_upto;
    if (s->num_pauses > from + CGC_PAUSE_HISTORY)
        from = s->num_pauses - CGC_PAUSE_HISTORY; /* older ones were overwritten */
    for (uint64_t i = from; i < s->num_pauses; i++)
        bench_pause_record(s->pause_ns[i % CGC_PAUSE_HISTORY]);
    bench_cgc_seen_upto = s->num_pauses;
}

static void bench_gc_poll(void)
{
    cgc_stats s;
    cgc_read_stats(&s);
    bench_cgc_take(&s);
}

static int bench_cmp_u64(const void *a, const void *b);

static void bench_gc_end(bench_gc_summary *out)
{
    cgc_stats s;
    cgc_read_stats(&s);
    bench_cgc_take(&s);
    memset(out, 0, sizeof *out);
    out->cycles = s.num_gc - bench_cgc_gc0;
    out->num_pauses = s.num_pauses - bench_cgc_pause0;
    out->total_ns = s.pause_total_ns - bench_cgc_total0;
    out->max_ns = s.pause_max_ns;
}

#elif defined(USE_BDWGC)

static uint64_t bench_bdw_gc0, bench_bdw_stop_t0, bench_bdw_total, bench_bdw_max, bench_bdw_count;

static void GC_CALLBACK bench_bdw_event(GC_EventType ev)
{
    /* Called by the collecting thread with the allocation lock held. */
    if (ev == GC_EVENT_PRE_STOP_WORLD) {
        bench_bdw_stop_t0 = bench_now_ns();
    } else if (ev == GC_EVENT_POST_START_WORLD && bench_bdw_stop_t0 != 0) {
        uint64_t d = bench_now_ns() - bench_bdw_stop_t0;
        bench_bdw_stop_t0 = 0;
        bench_bdw_total += d;
        bench_bdw_count++;
        if (d > bench_bdw_max)
            bench_bdw_max = d;
        bench_pause_record(d);
    }
}

static void bench_gc_begin(void)
{
    bench_pause_alloc();
    bench_bdw_gc0 = GC_get_gc_no();
    GC_set_on_collection_event(bench_bdw_event);
}

static void bench_gc_poll(void) {}

static void bench_gc_end(bench_gc_summary *out)
{
    GC_set_on_collection_event(0);
    memset(out, 0, sizeof *out);
    out->cycles = GC_get_gc_no() - bench_bdw_gc0;
    out->num_pauses = bench_bdw_count;
    out->total_ns = bench_bdw_total;
    out->max_ns = bench_bdw_max;
}

#else /* USE_MALLOC */

static void bench_gc_begin(void) { bench_npauses = 0; }
static void bench_gc_poll(void) {}
static void bench_gc_end(bench_gc_summary *out) { memset(out, 0, sizeof *out); }

#endif

static int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t bench_pct(const uint64_t *v, uint64_t n, double p)
{
    if (n == 0)
        return 0;
    double r = p / 100.0 * (double)n;
    uint64_t k = (uint64_t)r;
    if ((double)k < r)
        k++;
    if (k == 0)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

/* Sorts the pauses seen and fills the percentiles of *s. */
static void bench_gc_finish(bench_gc_summary *s)
{
    s->pauses_seen = bench_npauses;
    if (bench_npauses > 0) {
        qsort(bench_pauses, bench_npauses, sizeof(uint64_t), bench_cmp_u64);
        s->p50_ns = bench_pct(bench_pauses, bench_npauses, 50);
        s->p99_ns = bench_pct(bench_pauses, bench_npauses, 99);
        if (bench_pauses[bench_npauses - 1] > s->max_ns)
            s->max_ns = bench_pauses[bench_npauses - 1];
    }
}

#endif /* BENCH_ALLOC_API_H */
