/*
 * markspeed — how fast the collector marks a pointer-dense heap bigger than
 * the caches.
 *
 * The heap: N nodes of 32 bytes (two pointers to random nodes, a pointer to
 * the next node, one integer), all reachable from one array of N pointers.
 * Random edges make nearly every pointer a cache miss, as in a real object
 * graph; the array, scanned in pieces, lets every marker start at once.
 * After building it the program runs K full collections with the world
 * stopped (cgc_set_stoptheworld(1) / bdwgc's ordinary collection) and times
 * each one from the collector's own pause record.
 *
 * Reported: the median collection pause, the live objects and bytes, and
 * objects and bytes marked per second per marker thread (markers: cgc's
 * gc_procs, bdwgc's GC_get_parallel() + 1; set with CGC_MAXPROCS or
 * GC_MARKERS to measure one marker alone).  The pause includes stopping and
 * restarting the world, which is tiny next to the mark here.
 *
 * usage: markspeed [N=4194304] [K=5]
 */
#include "alloc_api.h"
#include "bench_util.h"

typedef struct node {
    struct node *a, *b, *next;
    uintptr_t value;
} node;

static node **all; /* the root: a heap array, reached from this global */

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 4194304);
    long k = bench_arg(argc, argv, 2, 5);
    if (n < 2 || k < 1 || k > 100) {
        fprintf(stderr, "usage: markspeed [N>=2] [1<=K<=100]\n");
        return 2;
    }
    B_INIT();
#if defined(USE_CGC)
    cgc_set_stoptheworld(1);
#endif
    bench_gc_begin();
    all = (node **)b_check(B_MALLOC((size_t)n * sizeof(node *)), (size_t)n * sizeof(node *));
    for (long i = 0; i < n; i++) {
        node *x = (node *)b_check(B_MALLOC(sizeof(node)), sizeof(node));
        x->value = (uintptr_t)i;
        B_STORE(&all[i], x);
    }
    bench_rng r;
    bench_rng_seed(&r, 42);
    for (long i = 0; i < n; i++) {
        node *x = all[i];
        B_STORE(&x->a, all[bench_rng_below(&r, (uint64_t)n)]);
        B_STORE(&x->b, all[bench_rng_below(&r, (uint64_t)n)]);
        B_STORE(&x->next, all[(i + 1) % n]);
    }

    uint64_t pause[100];
    int markers = 1;
    for (long c = 0; c < k; c++) {
#if defined(USE_CGC)
        cgc_stats s0, s1;
        cgc_read_stats(&s0);
        cgc_collect();
        cgc_read_stats(&s1);
        /* the longest pause of this cycle: the stop-the-world mark */
        uint64_t worst = 0;
        for (uint64_t i = s0.num_pauses; i < s1.num_pauses; i++)
            if (s1.pause_ns[i % CGC_PAUSE_HISTORY] > worst)
                worst = s1.pause_ns[i % CGC_PAUSE_HISTORY];
        pause[c] = worst;
        markers = (int)s1.gc_procs;
#elif defined(USE_BDWGC)
        uint64_t t0 = bench_now_ns();
        GC_gcollect();
        pause[c] = bench_now_ns() - t0;
        markers = GC_get_parallel() + 1;
#else
        pause[c] = 0;
#endif
    }

    /* everything must still be there */
    long ok = 1;
    for (long i = 0; i < n; i++)
        if (all[i]->value != (uintptr_t)i || all[i]->next != all[(i + 1) % n])
            ok = 0;

    qsort(pause, (size_t)k, sizeof pause[0], cmp_u64);
    double med_s = (double)pause[k / 2] / 1e9;
    double objs = (double)n + 1, bytes = (double)n * sizeof(node) + (double)n * sizeof(node *);
    double per = med_s > 0 ? 1.0 / (med_s * markers) : 0;
    printf("RESULT name=markspeed variant=%s time_s=%.4f nodes=%ld markers=%d mark_ms=%.2f min_ms=%.2f "
           "mobj_per_s_per_marker=%.1f mb_per_s_per_marker=%.0f peak_rss_kb=%ld checks_ok=%ld\n",
           B_VARIANT, med_s, n, markers, med_s * 1e3, (double)pause[0] / 1e6, objs * per / 1e6,
           bytes * per / 1e6, bench_peak_rss_kb(), ok);
    return ok ? 0 : 1;
}
