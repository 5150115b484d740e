/*
 * test_gcbench.c — two classic collector workloads, with their results
 * checked: a GCBench-style run (long-lived tree and array, many temporary
 * trees built top-down and bottom-up) and binary-trees (typed nodes, the
 * depths shared between two threads).  Every tree's node count is verified.
 */
#include "check.h"

#include <pthread.h>

/* ------------------------------------------------------------ GCBench -- */

typedef struct gnode {
    struct gnode *left, *right;
    int i, j;
} gnode;

static gnode *gnode_new(gnode *l, gnode *r)
{
    gnode *n = cgc_malloc(sizeof *n);
    if (!n)
        abort();
    CGC_STORE(&n->left, l);
    CGC_STORE(&n->right, r);
    return n;
}

static long full_tree_nodes(int depth) { return (2L << depth) - 1; }

static long gcount(const gnode *n)
{
    long c = 0;
    while (n) {
        c += 1 + gcount(n->left);
        n = n->right;
    }
    return c;
}

/* Top-down: fills the children of an existing node. */
static void populate(int depth, gnode *n)
{
    if (depth <= 0)
        return;
    depth--;
    CGC_STORE(&n->left, gnode_new(NULL, NULL));
    CGC_STORE(&n->right, gnode_new(NULL, NULL));
    populate(depth, n->left);
    populate(depth, n->right);
}

/* Bottom-up. */
static gnode *make_tree(int depth)
{
    if (depth <= 0)
        return gnode_new(NULL, NULL);
    return gnode_new(make_tree(depth - 1), make_tree(depth - 1));
}

static void gcbench(void)
{
    const int stretch = (int)scaled(18, 16, 20);
    const int long_lived_depth = (int)scaled(16, 14, 18);
    const int min_depth = 4, max_depth = long_lived_depth;
    const int array_size = 500000;
    double t0 = now_sec();

    gnode *tmp = make_tree(stretch);
    CHECKF(gcount(tmp) == full_tree_nodes(stretch), "stretch tree");
    tmp = NULL;

    gnode *long_lived = gnode_new(NULL, NULL);
    populate(long_lived_depth, long_lived);
    double *array = cgc_malloc_atomic(array_size * sizeof(double));
    for (int i = 0; i < array_size / 2; i++)
        array[i] = 1.0 / (i + 1);

    int bad = 0;
    for (int d = min_depth; d <= max_depth; d += 2) {
        long iters = 2 * full_tree_nodes(stretch) / full_tree_nodes(d);
        for (long i = 0; i < iters; i++) {
            gnode *t = gnode_new(NULL, NULL);
            populate(d, t);
            if ((i & 15) == 0 && gcount(t) != full_tree_nodes(d))
                bad++;
        }
        for (long i = 0; i < iters; i++) {
            gnode *t = make_tree(d);
            if ((i & 15) == 0 && gcount(t) != full_tree_nodes(d))
                bad++;
        }
    }
    CHECKF(bad == 0, "%d temporary trees had the wrong node count", bad);
    CHECKF(gcount(long_lived) == full_tree_nodes(long_lived_depth), "long-lived tree");
    CHECK(array[999] == 1.0 / 1000 && array[array_size / 2 - 1] == 1.0 / (array_size / 2));
    CHECK(array[array_size - 1] == 0.0);
    printf("gcbench: depth %d, %.2f s\n", long_lived_depth, now_sec() - t0);
}

/* -------------------------------------------------------- binary-trees -- */

typedef struct bnode {
    struct bnode *left, *right;
} bnode;

static const cgc_type *bnode_type;

static bnode *bt_make(int depth)
{
    bnode *n = cgc_malloc_typed(sizeof *n, bnode_type);
    if (!n)
        abort();
    if (depth > 0) {
        CGC_STORE(&n->left, bt_make(depth - 1));
        CGC_STORE(&n->right, bt_make(depth - 1));
    }
    return n;
}

static long bt_check(const bnode *n)
{
    return n->left ? 1 + bt_check(n->left) + bt_check(n->right) : 1;
}

typedef struct {
    int first, step, max_depth, min_depth;
    long results[32]; /* by depth */
} bt_job;

static void *bt_worker(void *arg)
{
    bt_job *job = arg;
    for (int d = job->first; d <= job->max_depth; d += job->step) {
        long iters = 1L << (job->max_depth - d + job->min_depth);
        long check = 0;
        for (long i = 0; i < iters; i++)
            check += bt_check(bt_make(d));
        job->results[d] = check;
    }
    return NULL;
}

static void binary_trees(void)
{
    const int max_depth = (int)scaled(16, 12, 18), min_depth = 4;
    size_t offs[2] = {0, 8};
    bnode_type = cgc_type_new(sizeof(bnode), offs, 2);
    CHECK(bnode_type != NULL);
    double t0 = now_sec();

    bnode *stretch = bt_make(max_depth + 1);
    CHECK(bt_check(stretch) == full_tree_nodes(max_depth + 1));
    stretch = NULL;
    bnode *long_lived = bt_make(max_depth);

    bt_job jobs[2];
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        memset(&jobs[k], 0, sizeof jobs[k]);
        jobs[k].first = min_depth + 2 * k;
        jobs[k].step = 4;
        jobs[k].max_depth = max_depth;
        jobs[k].min_depth = min_depth;
        CHECK(pthread_create(&t[k], NULL, bt_worker, &jobs[k]) == 0);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    for (int d = min_depth; d <= max_depth; d += 2) {
        long iters = 1L << (max_depth - d + min_depth);
        long got = jobs[((d - min_depth) / 2) % 2].results[d];
        CHECKF(got == iters * full_tree_nodes(d), "depth %d: %ld nodes, expected %ld", d,
               got, iters * full_tree_nodes(d));
    }
    CHECK(bt_check(long_lived) == full_tree_nodes(max_depth));
    printf("binary-trees: depth %d, %.2f s\n", max_depth, now_sec() - t0);
}

int main(void)
{
    cgc_init();
    cgc_stats s0 = get_stats();
    gcbench();
    binary_trees();
    cgc_stats s1 = get_stats();
    printf("%llu cycles, %.0f MiB allocated, peak pause %.2f ms, heap_sys %.1f MiB\n",
           (unsigned long long)(s1.num_gc - s0.num_gc),
           (s1.total_alloc - s0.total_alloc) / 1048576.0, s1.pause_max_ns / 1e6,
           s1.heap_sys / 1048576.0);
    CHECK(s1.num_gc > s0.num_gc);
    return finish("test_gcbench");
}
