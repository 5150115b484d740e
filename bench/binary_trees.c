/*
 * binary_trees — the classic allocation benchmark of perfect binary trees.
 *
 *   max_depth = max(min_depth + 2, N), min_depth = 4
 *   1. build a "stretch" tree of depth max_depth + 1, check it, drop it;
 *   2. build a long-lived tree of depth max_depth, kept to the end;
 *   3. for d = min_depth, min_depth + 2, ..., max_depth: build and check
 *      2^(max_depth - d + min_depth) trees of depth d, one at a time;
 *   4. check the long-lived tree.
 * The check of a tree is its node count, 2^(depth+1) - 1.
 *
 * The collectors never free (the trees become garbage); the malloc variant
 * frees every tree recursively after checking it.  Single-threaded.
 *
 * usage: binary_trees [N=21]
 * Prints the usual lines ("stretch tree of depth ... check: ..."), then one
 * RESULT line with checks_ok=1 when every check equals the node count.
 */
#include "alloc_api.h"
#include "bench_util.h"

typedef struct node {
    struct node *left, *right;
} node;

static node *bottom_up(int depth)
{
    node *n = (node *)B_MALLOC(sizeof *n);
    if (n == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    if (depth > 0) {
        B_STORE(&n->left, bottom_up(depth - 1));
        B_STORE(&n->right, bottom_up(depth - 1));
    } /* else: leaves keep the NULL children of zeroed memory (calloc for malloc) */
    return n;
}

static long check(const node *n)
{
    if (n->left == NULL)
        return 1;
    return 1 + check(n->left) + check(n->right);
}

static void free_tree(node *n)
{
#if !B_IS_GC
    if (n->left != NULL) {
        free_tree(n->left);
        free_tree(n->right);
    }
    B_FREE(n);
#else
    (void)n;
#endif
}

int main(int argc, char **argv)
{
    int n = (int)bench_arg(argc, argv, 1, 21);
    const int min_depth = 4;
    int max_depth = n > min_depth + 2 ? n : min_depth + 2;
    int ok = 1;
    uint64_t digest = 1469598103934665603ull; /* FNV-1a over all checks */

    B_INIT();
    bench_gc_begin();
    uint64_t t0 = bench_now_ns();

#define EXPECT(depth, count, got)                                                              \
    do {                                                                                   \
        long want_ = (long)(count) * ((2L << (depth)) - 1);                                \
        if ((got) != want_)                                                                \
            ok = 0;                                                                        \
        digest = (digest ^ (uint64_t)(got)) * 1099511628211ull;                           \
    } while (0)

    {
        int d = max_depth + 1;
        node *stretch = bottom_up(d);
        long c = check(stretch);
        printf("stretch tree of depth %d\t check: %ld\n", d, c);
        EXPECT(d, 1, c);
        free_tree(stretch);
    }
    bench_gc_poll();

    node *long_lived = bottom_up(max_depth);

    for (int d = min_depth; d <= max_depth; d += 2) {
        long iterations = 1L << (max_depth - d + min_depth);
        long c = 0;
        for (long i = 0; i < iterations; i++) {
            node *t = bottom_up(d);
            c += check(t);
            free_tree(t);
            if ((i & 0xffff) == 0xffff)
                bench_gc_poll(); /* cgc keeps only its last 256 pauses */
        }
        printf("%ld\t trees of depth %d\t check: %ld\n", iterations, d, c);
        EXPECT(d, iterations, c);
        bench_gc_poll();
    }

    long c = check(long_lived);
    printf("long lived tree of depth %d\t check: %ld\n", max_depth, c);
    EXPECT(max_depth, 1, c);
    free_tree(long_lived);

    double secs = (bench_now_ns() - t0) / 1e9;
    bench_gc_summary gc;
    bench_gc_end(&gc);
    bench_gc_finish(&gc);
    bench_result("binary_trees", secs, &gc, "depth=%d checks_ok=%d check_digest=%016" PRIx64, max_depth,
                 ok, digest);
    if (!ok) {
        fprintf(stderr, "binary_trees: a check differs from the node count\n");
        return 1;
    }
    return 0;
}
