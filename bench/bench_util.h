/*
 * bench_util.h — helpers shared by the benchmark programs: a deterministic
 * random number generator, resource usage, a latency histogram for single
 * operations, and the RESULT line every program prints.
 * Include after alloc_api.h.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <inttypes.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* xorshift64*: small, fast, deterministic. State must be nonzero. */
typedef struct { uint64_t s; } bench_rng;

static inline void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    if (r->s == 0)
        r->s = 1;
}

static inline uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n) (n small compared to 2^64: the bias is negligible). */
static inline uint64_t bench_rng_below(bench_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)bench_rng_next(r) * n) >> 64);
}

static long bench_peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double bench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------- operation latencies -- */

/* Log-linear histogram: 16 sub-buckets per power of two (about 6 % wide),
 * enough for percentiles of single-operation times; the maximum is exact. */
#define BENCH_HSUB 16
#define BENCH_HBUCKETS (64 * BENCH_HSUB)

typedef struct bench_hist {
    uint64_t count[BENCH_HBUCKETS];
    uint64_t n, max_ns, sum_ns;
} bench_hist;

static inline unsigned bench_hist_index(uint64_t ns)
{
    if (ns < BENCH_HSUB)
        return (unsigned)ns;
    unsigned e = 63u - (unsigned)__builtin_clzll(ns);   /* >= 4 */
    unsigned sub = (unsigned)(ns >> (e - 4)) & (BENCH_HSUB - 1);
    return (e - 3) * BENCH_HSUB + sub;
}

/* The largest value that falls in bucket i. */
static uint64_t bench_hist_upper(unsigned i)
{
    if (i < BENCH_HSUB)
        return i;
    unsigned e = i / BENCH_HSUB + 3, sub = i % BENCH_HSUB;
    uint64_t lo = ((uint64_t)(BENCH_HSUB + sub)) << (e - 4);
    return lo + ((uint64_t)1 << (e - 4)) - 1;
}

static inline void bench_hist_add(bench_hist *h, uint64_t ns)
{
    h->count[bench_hist_index(ns)]++;
    h->n++;
    h->sum_ns += ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

/* Slow operations, for bench/slowops.sh: with BENCH_SLOW_US=n in the
 * environment, every operation of n us or more is noted (its start and end
 * on CLOCK_MONOTONIC, the clock `perf record -k CLOCK_MONOTONIC` stamps
 * scheduler events with) and printed at the end as SLOWOP lines, so that
 * the tracer can tell what ran on the program's CPU meanwhile.  Off by
 * default: the check is one compare per operation. */
#define BENCH_SLOW_MAX 4096
typedef struct bench_slow_log {
    uint64_t threshold_ns; /* UINT64_MAX: off */
    unsigned n;
    uint64_t start[BENCH_SLOW_MAX], end[BENCH_SLOW_MAX];
} bench_slow_log;
static bench_slow_log bench_slow = {UINT64_MAX, 0, {0}, {0}};

static void bench_slow_init(void)
{
    const char *e = getenv("BENCH_SLOW_US");
    if (e != NULL && *e != '\0')
        bench_slow.threshold_ns = (uint64_t)strtoull(e, NULL, 10) * 1000u;
}

/* One timed operation, [a, b) on bench_now_ns's clock. */
static inline void bench_op(bench_hist *h, uint64_t a, uint64_t b)
{
    bench_hist_add(h, b - a);
    if (b - a >= bench_slow.threshold_ns && bench_slow.n < BENCH_SLOW_MAX) {
        bench_slow.start[bench_slow.n] = a;
        bench_slow.end[bench_slow.n++] = b;
    }
}

static void bench_slow_print(const char *name)
{
    for (unsigned i = 0; i < bench_slow.n; i++)
        printf("SLOWOP name=%s tid=%ld start_ns=%" PRIu64 " end_ns=%" PRIu64 " us=%.1f\n", name,
               (long)syscall(SYS_gettid), bench_slow.start[i], bench_slow.end[i],
               (bench_slow.end[i] - bench_slow.start[i]) / 1e3);
}

static uint64_t bench_hist_pct(const bench_hist *h, double p)
{
    if (h->n == 0)
        return 0;
    double r = p / 100.0 * (double)h->n;
    uint64_t k = (uint64_t)r, seen = 0;
    if ((double)k < r)
        k++;
    if (k == 0)
        k = 1;
    for (unsigned i = 0; i < BENCH_HBUCKETS; i++) {
        seen += h->count[i];
        if (seen >= k) {
            uint64_t u = bench_hist_upper(i);
            return u < h->max_ns ? u : h->max_ns;
        }
    }
    return h->max_ns;
}

/* ---------------------------------------------------------- the result -- */

/* Prints "RESULT name=... variant=... " followed by the caller's fields and
 * the common ones (peak RSS, CPU time, collector statistics), on one line. */
static void bench_result(const char *name, double time_s, const bench_gc_summary *gc,
                         const char *fmt, ...)
{
    char extra[512] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    printf("RESULT name=%s variant=%s time_s=%.4f cpu_s=%.3f peak_rss_kb=%ld", name, B_VARIANT,
           time_s, bench_cpu_s(), bench_peak_rss_kb());
    if (B_IS_GC) {
        printf(" gc_cycles=%" PRIu64 " pauses=%" PRIu64 " pauses_seen=%" PRIu64
               " max_pause_us=%.1f p50_pause_us=%.1f p99_pause_us=%.1f total_pause_ms=%.2f",
               gc->cycles, gc->num_pauses, gc->pauses_seen, gc->max_ns / 1e3, gc->p50_ns / 1e3,
               gc->p99_ns / 1e3, gc->total_ns / 1e6);
    }
    if (extra[0])
        printf(" %s", extra);
    printf("\n");
    fflush(stdout);
}

static long bench_arg(int argc, char **argv, int i, long dflt)
{
    if (argc > i) {
        char *end;
        long v = strtol(argv[i], &end, 10);
        if (*end != '\0' || v <= 0) {
            fprintf(stderr, "bad argument %d: '%s' (a positive integer)\n", i, argv[i]);
            exit(2);
        }
        return v;
    }
    return dflt;
}

#endif /* BENCH_UTIL_H */
