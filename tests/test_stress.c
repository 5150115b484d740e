/*
 * test_stress.c — several threads mutate a shared graph of cgc objects while
 * cycles run back to back (cgc_set_percent(10)).
 *
 * The graph: an array of root slots (a cgc object reached from a global);
 * each node has an id, a checksum, 2-4 child pointers and a payload derived
 * from its id.  Each thread repeatedly replaces a slot with a fresh subtree,
 * relinks a child pointer to another reachable node, unlinks one, and walks
 * a subtree verifying every node.  Fresh subtrees are built with CGC_STORE;
 * shared pointers change only with cgc_cas, or with CGC_STORE under the
 * slot's spinlock.  Any node freed while reachable shows up as a bad
 * checksum or payload (or, with CGC_DEBUG=gccheckmark=1, as an abort).
 *
 * Runs until a number of cycles has completed (fewer when quick, many more
 * with CGC_SOAK=1), or a time limit.
 */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct node {
    uint64_t id;
    uint64_t checksum;
    uint32_t nchild; /* 2..4 */
    uint32_t plen;
    struct node *child[4];
    unsigned char payload[];
} node;

enum { NSLOTS = 512, THREADS = 4, MAX_WALK = 400, MAX_DEPTH = 8 };

static node **g_slots;
static atomic_int slot_lock[NSLOTS];
static atomic_int stop;
static atomic_ulong next_id = 1;
static atomic_ulong ops_done, nodes_checked, bad_nodes;

static uint64_t node_sum(uint64_t id, uint32_t nchild, uint32_t plen)
{
    uint64_t x = id * 0x9E3779B97F4A7C15ull ^ ((uint64_t)nchild << 32) ^ plen;
    x ^= x >> 31;
    return x * 0xBF58476D1CE4E5B9ull;
}

static node *new_node(uint64_t *r)
{
    uint32_t plen = (uint32_t)rng_below(r, 5) == 0 ? (uint32_t)rng_below(r, 2000)
                                                   : (uint32_t)rng_below(r, 120);
    uint32_t nchild = 2 + (uint32_t)rng_below(r, 3);
    node *n = cgc_malloc(sizeof(node) + plen);
    if (!n)
        abort();
    n->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    n->nchild = nchild;
    n->plen = plen;
    fill_pattern(n->payload, plen, n->id);
    n->checksum = node_sum(n->id, nchild, plen);
    return n;
}

static node *build(uint64_t *r, int depth)
{
    node *n = new_node(r);
    if (depth > 0)
        for (uint32_t k = 0; k < n->nchild; k++)
            if (rng_below(r, 4) != 0)
                CGC_STORE(&n->child[k], build(r, depth - 1));
    return n;
}

static node *load_ptr(node **slot) { return __atomic_load_n(slot, __ATOMIC_ACQUIRE); }

static int node_ok(const node *n)
{
    if (cgc_base(n) != n)
        return 0;
    if (n->nchild < 2 || n->nchild > 4 || n->checksum != node_sum(n->id, n->nchild, n->plen))
        return 0;
    return check_pattern(n->payload, n->plen, n->id) == -1;
}

static void report_bad(const node *n, const char *where)
{
    unsigned long k = atomic_fetch_add(&bad_nodes, 1);
    if (k < 10)
        fprintf(stderr, "bad node %p (%s): base %p id %llu nchild %u plen %u\n",
                (const void *)n, where, cgc_base(n), (unsigned long long)n->id,
                n->nchild, n->plen);
}

/* A node reached by a random path of up to 3 steps from slot i, or NULL. */
static node *random_node(uint64_t *r, int i)
{
    node *n = load_ptr(&g_slots[i]);
    int steps = (int)rng_below(r, 4);
    for (int s = 0; n; s++) {
        if (!node_ok(n)) {
            report_bad(n, "random_node");
            return NULL;
        }
        if (s == steps)
            break;
        node *c = load_ptr(&n->child[rng_below(r, n->nchild)]);
        if (!c)
            break;
        n = c;
    }
    return n;
}

/* Depth-first walk with an explicit stack (on this thread's stack). */
static void walk(int i)
{
    node *stack[MAX_DEPTH * 4 + 8];
    int depth[MAX_DEPTH * 4 + 8];
    int sp = 0, seen = 0;
    node *root = load_ptr(&g_slots[i]);
    if (!root)
        return;
    stack[sp] = root;
    depth[sp++] = 0;
    while (sp > 0 && seen < MAX_WALK) {
        node *n = stack[--sp];
        int d = depth[sp];
        seen++;
        if (!node_ok(n)) {
            report_bad(n, "walk");
            continue;
        }
        if (d >= MAX_DEPTH)
            continue;
        for (uint32_t k = 0; k < n->nchild && sp < (int)(sizeof stack / sizeof stack[0]); k++) {
            node *c = load_ptr(&n->child[k]);
            if (c) {
                stack[sp] = c;
                depth[sp++] = d + 1;
            }
        }
    }
    atomic_fetch_add_explicit(&nodes_checked, (unsigned long)seen, memory_order_relaxed);
}

static void lock_slot(int i)
{
    int expected = 0;
    while (!atomic_compare_exchange_weak(&slot_lock[i], &expected, 1)) {
        expected = 0;
        cpu_relax();
    }
}

static void unlock_slot(int i) { atomic_store(&slot_lock[i], 0); }

static void *mutator(void *arg)
{
    uint64_t r = 0xABCDEF + (uint64_t)(uintptr_t)arg * 7919;
    unsigned long ops = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int op = (int)rng_below(&r, 100);
        int i = (int)rng_below(&r, NSLOTS);
        if (op < 30) {
            /* replace a slot with a fresh subtree */
            node *sub = build(&r, 1 + (int)rng_below(&r, 3));
            if (op < 15) {
                node *old = load_ptr(&g_slots[i]);
                cgc_cas((void **)&g_slots[i], old, sub); /* may lose a race */
            } else {
                lock_slot(i);
                CGC_STORE(&g_slots[i], sub);
                unlock_slot(i);
            }
        } else if (op < 55) {
            /* relink a child pointer to another reachable node */
            node *a = random_node(&r, i);
            node *b = random_node(&r, (int)rng_below(&r, NSLOTS));
            if (a && b) {
                node **slot = &a->child[rng_below(&r, a->nchild)];
                cgc_cas((void **)slot, load_ptr(slot), b);
            }
        } else if (op < 65) {
            /* unlink */
            node *a = random_node(&r, i);
            if (a) {
                node **slot = &a->child[rng_below(&r, a->nchild)];
                node *cur = load_ptr(slot);
                if (cur)
                    cgc_cas((void **)slot, cur, NULL);
            }
        } else if (op < 70) {
            /* move a subtree from one slot to another, through a local */
            int j = (int)rng_below(&r, NSLOTS);
            if (i != j) {
                int lo = i < j ? i : j, hi = i < j ? j : i;
                lock_slot(lo);
                lock_slot(hi);
                node *moved = load_ptr(&g_slots[i]);
                CGC_STORE(&g_slots[i], NULL);
                CGC_STORE(&g_slots[j], moved);
                unlock_slot(hi);
                unlock_slot(lo);
            }
        } else {
            walk(i);
        }
        ops++;
        if ((ops & 1023) == 0)
            atomic_fetch_add_explicit(&ops_done, 1024, memory_order_relaxed);
    }
    return NULL;
}

static void soak_progress(uint64_t cycles, uint64_t heap)
{
    printf("  ... %llu cycles, %lu nodes checked, heap %.1f MiB\n", (unsigned long long)cycles,
           atomic_load(&nodes_checked), heap / 1048576.0);
    fflush(stdout);
}

int main(void)
{
    cgc_init();
    cgc_set_percent(10);
    long target = scaled(1000, 150, 30000);
    double limit = (double)scaled(60, 60, 3000);
    const char *mode = getenv("CGC_DEBUG") ? getenv("CGC_DEBUG") : "concurrent";

    uint64_t r = 42;
    CGC_STORE(&g_slots, cgc_malloc(NSLOTS * sizeof(node *)));
    for (int i = 0; i < NSLOTS; i++)
        CGC_STORE(&g_slots[i], build(&r, 2));

    cgc_stats s0 = get_stats();
    double t0 = now_sec();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, mutator, (void *)(intptr_t)i) == 0);
    uint64_t cycles = run_cycles(target, limit, &bad_nodes, soak_progress);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    double secs = now_sec() - t0;

    /* a last check of everything reachable, after two more collections */
    cgc_collect();
    cgc_collect();
    for (int i = 0; i < NSLOTS; i++)
        walk(i);

    cgc_stats s1 = get_stats();
    printf("test_stress (%s): %llu cycles in %.1f s, %lu k ops, %lu nodes checked, "
           "%llu pauses (max %.2f ms), heap_alloc %.1f MiB, heap_sys %.1f MiB "
           "(released %.1f MiB)\n",
           mode, (unsigned long long)(s1.num_gc - s0.num_gc), secs,
           atomic_load(&ops_done) / 1000, atomic_load(&nodes_checked),
           (unsigned long long)(s1.num_pauses - s0.num_pauses), s1.pause_max_ns / 1e6,
           s1.heap_alloc / 1048576.0, s1.heap_sys / 1048576.0, s1.heap_released / 1048576.0);
    CHECKF(atomic_load(&bad_nodes) == 0, "%lu damaged nodes", atomic_load(&bad_nodes));
    long min_cycles = target < 50 ? target : 50;
    CHECKF(cycles >= (uint64_t)min_cycles, "only %llu cycles in %.0f s",
           (unsigned long long)cycles, secs);
    CHECK(atomic_load(&nodes_checked) > 0);
    /* the live graph is a few MiB: the heap must stay far below this */
    CHECKF(s1.heap_sys - s1.heap_released < (256ull << 20), "heap_sys %llu, released %llu",
           (unsigned long long)s1.heap_sys, (unsigned long long)s1.heap_released);
    return finish("test_stress");
}
