/*
 * fastpath — a tiny program for counting the instructions of one allocation
 * or one pointer store, run under valgrind --tool=callgrind by fastpath.sh.
 *
 * usage: fastpath MODE N
 *   alloc         N x B_MALLOC(16)         (scanned, zeroed)
 *   alloc64       N x B_MALLOC(64)
 *   alloc_atomic  N x B_MALLOC_ATOMIC(16)  (pointer-free)
 *   store         N x B_STORE of a pointer into a heap array (barrier off)
 *   store_on      the same with cgc's write barrier flag forced on (cgc only):
 *                 every store takes cgc_store_slow, as during a concurrent
 *                 mark.  All stores write the same live object, so the extra
 *                 shading is harmless.
 *   loop          the empty loop, to subtract its overhead
 *   mark          cgc only: N stop-the-world collections of a binary tree of
 *                 131071 16-byte nodes (fastpath.sh counts cgc__drain)
 *
 * Only the function fp_loop is of interest (cgc__drain for mark):
 * fastpath.sh counts with --toggle-collect and runs N and 2N to cancel
 * one-time costs.
 */
#include "alloc_api.h"
#include "bench_util.h"

#define SLOTS 1024
#define MARK_DEPTH 16 /* 131071 nodes */

__attribute__((noinline)) void fp_loop(int mode, long n, void **slots, void *obj);

__attribute__((noinline)) void fp_loop(int mode, long n, void **slots, void *obj)
{
    switch (mode) {
    case 0:
        for (long i = 0; i < n; i++) {
            void *p = B_MALLOC(16);
            B_KEEP(p);
        }
        break;
    case 1:
        for (long i = 0; i < n; i++) {
            void *p = B_MALLOC(64);
            B_KEEP(p);
        }
        break;
    case 2:
        for (long i = 0; i < n; i++) {
            void *p = B_MALLOC_ATOMIC(16);
            B_KEEP(p);
        }
        break;
    case 3:
    case 4:
        for (long i = 0; i < n; i++)
            B_STORE(&slots[i & (SLOTS - 1)], obj);
        break;
    default:
        for (long i = 0; i < n; i++)
            B_KEEP(i);
        break;
    }
}

#if defined(USE_CGC)
/* Mode "mark": a binary tree of 16-byte nodes allocated depth-first (as
 * binary-trees' long-lived tree: the metadata stays in cache, so marking
 * is bound by instructions, not misses), then N stop-the-world
 * collections.  fastpath.sh counts cgc__drain, the marking loop, with
 * CGC_MAXPROCS=1 so that one thread marks everything. */
typedef struct mark_node {
    struct mark_node *left, *right;
} mark_node;

static mark_node *mark_tree(int depth)
{
    mark_node *n = (mark_node *)b_check(B_MALLOC(sizeof *n), sizeof *n);
    if (depth > 0) {
        B_STORE(&n->left, mark_tree(depth - 1));
        B_STORE(&n->right, mark_tree(depth - 1));
    }
    return n;
}

static long mark_check(const mark_node *n)
{
    return n->left ? 1 + mark_check(n->left) + mark_check(n->right) : 1;
}

static mark_node *mark_root;

static int mark_mode(long n)
{
    cgc_set_stoptheworld(1);
    mark_root = mark_tree(MARK_DEPTH);
    cgc_collect();
    for (long i = 0; i < n; i++)
        cgc_collect();
    long nodes = mark_check(mark_root);
    if (nodes != (2L << MARK_DEPTH) - 1) {
        fprintf(stderr, "fastpath mark: tree has %ld nodes\n", nodes);
        return 1;
    }
    printf("fastpath %s mark %ld done (%ld nodes)\n", B_VARIANT, n, nodes);
    return 0;
}
#endif

int main(int argc, char **argv)
{
    static const char *modes[] = {"alloc", "alloc64", "alloc_atomic", "store", "store_on", "loop", "mark"};
    if (argc < 3) {
        fprintf(stderr, "usage: fastpath alloc|alloc64|alloc_atomic|store|store_on|loop|mark N\n");
        return 2;
    }
    int mode = -1;
    for (int i = 0; i < 7; i++)
        if (strcmp(argv[1], modes[i]) == 0)
            mode = i;
    long n = bench_arg(argc, argv, 2, 1000000);
    if (mode < 0) {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }

    B_INIT();
    if (mode == 6) {
#if defined(USE_CGC)
        return mark_mode(n);
#else
        fprintf(stderr, "mark is for cgc only\n");
        return 2;
#endif
    }
    void **slots = (void **)b_check(B_MALLOC(SLOTS * sizeof(void *)), SLOTS * sizeof(void *));
    void *obj = b_check(B_MALLOC(32), 32);
    /* Warm up: the first allocations of each size set up caches. */
    for (int i = 0; i < 1000; i++) {
        B_KEEP(B_MALLOC(16));
        B_KEEP(B_MALLOC(64));
        B_KEEP(B_MALLOC_ATOMIC(16));
    }

    if (mode == 4) {
#if defined(USE_CGC)
        __atomic_store_n(&cgc_write_barrier_enabled, 1, __ATOMIC_SEQ_CST);
        fp_loop(mode, n, slots, obj);
        __atomic_store_n(&cgc_write_barrier_enabled, 0, __ATOMIC_SEQ_CST);
#else
        fprintf(stderr, "store_on is for cgc only\n");
        return 2;
#endif
    } else {
        fp_loop(mode, n, slots, obj);
    }
    B_KEEP(slots);
    B_KEEP(obj);
    printf("fastpath %s %s %ld done\n", B_VARIANT, argv[1], n);
    return 0;
}
