/*
 * gcbench — the GCBench benchmark of John Ellis and Pete Kovac, as extended
 * by Hans Boehm, written anew for this project.
 *
 * Nodes hold two child pointers and two ints.  The program
 *   1. builds and drops a "stretch" tree of depth 18 (bottom-up);
 *   2. builds a long-lived tree of depth 16 top-down and a long-lived array
 *      of 500,000 doubles (pointer-free), both kept to the end;
 *   3. for depth d = 4, 6, ..., 16: builds 2 * size(18) / size(d) trees of
 *      depth d top-down (allocating children into an existing parent, which
 *      stores pointers into older objects), then as many bottom-up;
 *   4. checks that the long-lived tree and array are intact.
 * size(d) = 2^(d+1) - 1 nodes.  Only the collectors are built: nothing is
 * ever freed explicitly.
 *
 * usage: gcbench [stretch=18] [long_lived=16] [max_depth=16] [array=500000]
 */
#include "alloc_api.h"
#include "bench_util.h"

#if !B_IS_GC
#error "gcbench is built for the collectors only"
#endif

typedef struct node {
    struct node *left, *right;
    int i, j;
} node;

static node *new_node(node *l, node *r)
{
    node *n = (node *)B_MALLOC(sizeof *n);
    if (n == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    if (l != NULL) {
        B_STORE(&n->left, l);
        B_STORE(&n->right, r);
    }
    return n;
}

static long tree_size(int d) { return (2L << d) - 1; }

/* Top-down: give an existing node two children, recursively. */
static void populate(int depth, node *n)
{
    if (depth <= 0)
        return;
    depth--;
    B_STORE(&n->left, new_node(NULL, NULL));
    B_STORE(&n->right, new_node(NULL, NULL));
    populate(depth, n->left);
    populate(depth, n->right);
}

/* Bottom-up: children first. */
static node *make_tree(int depth)
{
    if (depth <= 0)
        return new_node(NULL, NULL);
    node *l = make_tree(depth - 1);
    node *r = make_tree(depth - 1);
    return new_node(l, r);
}

static long count(const node *n)
{
    return n == NULL ? 0 : 1 + count(n->left) + count(n->right);
}

static void time_construction(int depth, int stretch)
{
    long iters = 2 * tree_size(stretch) / tree_size(depth);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        node *t = new_node(NULL, NULL);
        populate(depth, t);
        B_KEEP(t);
    }
    uint64_t t1 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        node *t = make_tree(depth);
        B_KEEP(t);
    }
    uint64_t t2 = bench_now_ns();
    printf("depth %2d: %6ld trees, top-down %7.1f ms, bottom-up %7.1f ms\n", depth, iters,
           (t1 - t0) / 1e6, (t2 - t1) / 1e6);
}

int main(int argc, char **argv)
{
    int stretch = (int)bench_arg(argc, argv, 1, 18);
    int long_lived_depth = (int)bench_arg(argc, argv, 2, 16);
    int max_depth = (int)bench_arg(argc, argv, 3, 16);
    long array_size = bench_arg(argc, argv, 4, 500000);
    const int min_depth = 4;

    B_INIT();
    bench_gc_begin();
    uint64_t t0 = bench_now_ns();

    {
        node *t = make_tree(stretch);
        B_KEEP(t);
    }

    node *long_lived = new_node(NULL, NULL);
    populate(long_lived_depth, long_lived);

    double *array = (double *)B_MALLOC_ATOMIC(sizeof(double) * (size_t)array_size);
    if (array == NULL) {
        fprintf(stderr, "out of memory\n");
        return 3;
    }
    for (long i = 0; i < array_size; i++)
        array[i] = i == 0 ? 0.0 : 1.0 / (double)i;

    for (int d = min_depth; d <= max_depth; d += 2) {
        time_construction(d, stretch);
        bench_gc_poll();
    }

    long ll_nodes = count(long_lived);
    int ok = ll_nodes == tree_size(long_lived_depth);
    for (long i = 1; i < array_size; i++)
        if (array[i] != 1.0 / (double)i)
            ok = 0;
    double secs = (bench_now_ns() - t0) / 1e9;

    bench_gc_summary gc;
    bench_gc_end(&gc);
    bench_gc_finish(&gc);
    bench_result("gcbench", secs, &gc, "stretch=%d long_lived=%d max_depth=%d checks_ok=%d", stretch,
                 long_lived_depth, max_depth, ok);
    if (!ok) {
        fprintf(stderr, "gcbench: long-lived data damaged (%ld nodes, want %ld)\n", ll_nodes,
                tree_size(long_lived_depth));
        return 1;
    }
    return 0;
}
