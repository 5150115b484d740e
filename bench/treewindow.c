/*
 * treewindow — GC latency with a large, pointer-dense live set.
 *
 * A window of W slots (default 100,000) holds W perfect binary trees of L
 * levels (default 5: 31 nodes); a node is two child pointers and two 8-byte
 * payload words (32 bytes).  R times (default 1,000,000) the program builds
 * a new tree and stores it into a random slot, dropping the old tree.  The
 * live heap is about W * 31 * 32 bytes (~100 MB by default), all of it
 * pointers for the collector to trace.
 *
 * Every replacement (build 31 nodes + store) is timed on its own; the worst
 * one is reported with the percentiles.  The evicted tree is verified
 * outside the timed region (node count and payload), and the whole window at
 * the end.  The malloc variant frees the evicted tree inside the timed region.
 *
 * usage: treewindow [window=100000] [replacements=1000000] [levels=5]
 */
#include "alloc_api.h"
#include "bench_util.h"

typedef struct node {
    struct node *left, *right;
    uint64_t tag, level;
} node;

static node *build(int levels, uint64_t tag)
{
    node *n = (node *)B_MALLOC(sizeof *n);
    if (n == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    n->tag = tag;
    n->level = (uint64_t)levels;
    if (levels > 1) {
        B_STORE(&n->left, build(levels - 1, tag));
        B_STORE(&n->right, build(levels - 1, tag));
    }
    return n;
}

/* Number of nodes whose payload is right; -1000000 if the shape is wrong. */
static long verify(const node *n, int levels, uint64_t tag)
{
    if (n == NULL)
        return -1000000;
    long good = n->tag == tag && n->level == (uint64_t)levels;
    if (levels > 1)
        return good + verify(n->left, levels - 1, tag) + verify(n->right, levels - 1, tag);
    return good;
}

#if !B_IS_GC
static void free_tree(node *n)
{
    if (n->left != NULL) {
        free_tree(n->left);
        free_tree(n->right);
    }
    free(n);
}
#endif

static bench_hist hist;

int main(int argc, char **argv)
{
    long w = bench_arg(argc, argv, 1, 100000);
    long reps = bench_arg(argc, argv, 2, 1000000);
    int levels = (int)bench_arg(argc, argv, 3, 5);
    long per_tree = (1L << levels) - 1;
    uint64_t errors = 0;
    bench_rng rng;
    bench_rng_seed(&rng, 42);

    B_INIT();
    bench_slow_init();
    bench_gc_begin();

    node **window = (node **)b_check(B_MALLOC(w * sizeof *window), w * sizeof *window);
    uint64_t *tags = (uint64_t *)b_check(malloc(w * sizeof *tags), w * sizeof *tags);

    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < w; i++) {
        tags[i] = bench_rng_next(&rng);
        B_STORE(&window[i], build(levels, tags[i]));
    }
    double fill_s = (bench_now_ns() - t0) / 1e9;

    for (long i = 0; i < reps; i++) {
        long slot = (long)bench_rng_below(&rng, (uint64_t)w);
        node *old = window[slot];
        if (verify(old, levels, tags[slot]) != per_tree)
            errors++;
        uint64_t tag = bench_rng_next(&rng);

        uint64_t a = bench_now_ns();
        node *t = build(levels, tag);
#if !B_IS_GC
        free_tree(old);
#endif
        B_STORE(&window[slot], t);
        uint64_t b = bench_now_ns();

        tags[slot] = tag;
        bench_op(&hist, a, b);
        if ((i & 16383) == 16383)
            bench_gc_poll();
    }
    double secs = (bench_now_ns() - t0) / 1e9;

    for (long i = 0; i < w; i++)
        if (verify(window[i], levels, tags[i]) != per_tree)
            errors++;

    bench_gc_summary gc;
    bench_gc_end(&gc);
    bench_gc_finish(&gc);
    bench_result("treewindow", secs, &gc,
                 "window=%ld replacements=%ld levels=%d fill_s=%.3f worst_op_us=%.1f op_p99_us=%.2f "
                 "op_p999_us=%.2f mean_op_ns=%.0f errors=%" PRIu64,
                 w, reps, levels, fill_s, hist.max_ns / 1e3, bench_hist_pct(&hist, 99) / 1e3,
                 bench_hist_pct(&hist, 99.9) / 1e3, (double)hist.sum_ns / (double)(hist.n ? hist.n : 1),
                 errors);
    bench_slow_print("treewindow");
    if (errors != 0) {
        fprintf(stderr, "treewindow: %" PRIu64 " trees damaged (premature free?)\n", errors);
        return 1;
    }
    return 0;
}
