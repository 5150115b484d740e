/*
 * test_free_marked — an object the concurrent mark reached and the
 * program then freed with cgc_free is free after that cycle's sweep.
 *
 * The sweep turns each span's mark bytes into its alloc bits.  A slot that
 * was marked and then freed by its owner during the same mark keeps its
 * mark byte (cgc_free clears the alloc bit, and nothing may clear a mark
 * while markers run), so a sweep that copied the marks alone handed the
 * freed slot back to the heap as allocated: a leak of one cycle, counted
 * in heap_alloc, and an object that cgc_size and cgc_base call live.  The
 * sweep keeps slots that are both marked and allocated.
 *
 * Also: objects allocated and freed while a mark runs must not stay in
 * the heap_live the mark ends with (the pacer would start the next cycle
 * at once, and heap_alloc would report them).
 *
 * White box (internal.h): the test watches cgc__gc_marking and the
 * object's mark byte to free it in the window between the two.  A long
 * linked list, marked one object after the other, keeps each mark running
 * long enough; a round where the window was missed is retried.
 */
#include "check.h"
#include "internal.h"

#include <pthread.h>

#define CHAIN_OBJECTS (1 << 20)
#define SIZE 48

typedef struct node {
    struct node *next;
    uint64_t pad[4];
} node;

static node *_Atomic chain;       /* the long list: a global root */
static void *_Atomic target;      /* the object freed after it was marked */
static atomic_int collect_done;
static void *volatile sink;

static void *run_collect(void *arg) {
    (void)arg;
    cgc_collect();
    atomic_store(&collect_done, 1);
    return NULL;
}

static bool is_marked(void *p) {
    cgc_span *s = cgc__span_of((uintptr_t)p);
    return s && cgc__marked(s, cgc__obj_index(s, (uintptr_t)p));
}

/* One round: true if the object was freed while the mark ran. */
static bool round_once(void) {
    void *x = cgc_malloc(SIZE);
    memset(x, 0x5A, SIZE);
    /* then enough of its class that x's span stops being the current one
     * (a current span's free slots lose their marks when the cache is
     * flushed; an owned span's do not) */
    for (int i = 0; i < 2 * 8192 / SIZE; i++) sink = cgc_malloc(SIZE);
    atomic_store(&target, x);
    atomic_store(&collect_done, 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, run_collect, NULL) == 0);
    bool freed_in_mark = false;
    double deadline = now_sec() + 10;
    while (!atomic_load(&collect_done) && now_sec() < deadline) {
        if (atomic_load_explicit(&cgc__gc_marking, memory_order_acquire) && is_marked(x)) {
            atomic_store(&target, NULL);
            cgc_free(x);
            /* still marking after the free: all of it ran inside the mark
             * (one cycle only), while this thread owned x's span */
            freed_in_mark = atomic_load_explicit(&cgc__gc_marking, memory_order_acquire);
            break;
        }
    }
    pthread_join(th, NULL);
    if (atomic_load(&target)) {
        atomic_store(&target, NULL);
        cgc_free(x);
    }
    if (!freed_in_mark) return false;
    /* the sweep is over (cgc_collect returned): the slot must be free */
    CHECKF(cgc_size(x) == 0, "object %p freed after the mark reached it is allocated again after the sweep", x);
    CHECKF(cgc_base(x) == NULL, "cgc_base(%p) names a freed object", x);
    return true;
}

/* Objects allocated and freed again while a mark runs leave the live heap
 * the mark computes: heap_alloc after the cycle is what is live, not that
 * plus every byte allocated during the mark (which counted the
 * allocations, as black, and not the frees). */
static void churn_during_mark(void) {
    cgc_collect();
    cgc_stats s0;
    cgc_read_stats(&s0);
    atomic_store(&collect_done, 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, run_collect, NULL) == 0);
    long ops = 0;
    double deadline = now_sec() + 10;
    while (!atomic_load(&collect_done) && now_sec() < deadline) {
        void *p = cgc_malloc_atomic(4096);
        memset(p, 1, 64);
        cgc_free(p);
        ops += atomic_load_explicit(&cgc__gc_marking, memory_order_relaxed);
    }
    pthread_join(th, NULL);
    cgc_stats s1;
    cgc_read_stats(&s1);
    long long grew = (long long)s1.heap_alloc - (long long)s0.heap_alloc;
    printf("churn during a mark: %ld allocate-free pairs of 4 KiB, heap_alloc %+.1f MiB\n", ops, grew / 1048576.0);
    CHECKF(grew < 16ll << 20, "heap_alloc grew by %lld bytes over a cycle with %ld allocate-free pairs (4 KiB)", grew, ops);
}

int main(void) {
    cgc_init();
    cgc_set_percent(-1); /* only the test's cycles */
    node *head = NULL;
    for (long i = 0; i < CHAIN_OBJECTS; i++) {
        node *n = cgc_malloc(sizeof *n);
        n->next = head;
        head = n;
    }
    atomic_store(&chain, head);
    head = NULL;
    int rounds = (int)scaled(20, 6, 200), hits = 0;
    for (int i = 0; i < rounds * 5 && hits < rounds; i++) hits += round_once();
    CHECKF(hits >= rounds / 2, "the object was freed inside a mark in only %d rounds", hits);
    churn_during_mark();
    long n = 0;
    for (node *p = atomic_load(&chain); p; p = p->next) n++;
    CHECKF(n == CHAIN_OBJECTS, "the chain has %ld objects, not %d", n, CHAIN_OBJECTS);
    return finish("test_free_marked");
}
