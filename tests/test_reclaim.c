/*
 * test_reclaim.c — what is not reachable is reclaimed, and the pacer keeps
 * the heap bounded.
 *
 * Reclamation is checked on many objects at once (their addresses kept
 * XOR-hidden in libc memory): conservative scanning may keep a few alive
 * through stale stack words, so the checks ask for >= 90 %.
 */
#include "check.h"

#include <stdatomic.h>

static uint64_t rng = 0xC0FFEE;

#define MIN_RECLAIMED 0.90

/* Fraction of the hidden objects no longer allocated at their address. */
static NOINLINE double reclaimed(const uintptr_t *hidden, size_t n)
{
    size_t gone = 0;
    for (size_t i = 0; i < n; i++) {
        void *p = UNHIDE(hidden[i]);
        if (cgc_base(p) != p)
            gone++;
    }
    return n ? (double)gone / (double)n : 0.0;
}

static NOINLINE void collect_clean(void)
{
    scrub_stack();
    cgc_collect();
    scrub_stack();
    cgc_collect();
}

/* ---------------------------------- pointers in atomic / typed objects -- */

enum { N = 4000 };

static void **g_atomic_holder;
static void **g_scanned_holder;
static void **g_typed_holders; /* a scanned array of typed objects */

static NOINLINE void fill_holder(void **holder, uintptr_t *hidden, int use_barrier)
{
    for (int i = 0; i < N; i++) {
        void *p = cgc_malloc(64);
        hidden[i] = HIDE(p);
        if (use_barrier)
            CGC_STORE(&holder[i], p);
        else
            holder[i] = p; /* an atomic object holds no pointers for cgc */
    }
}

static void test_atomic_holds_nothing(void)
{
    uintptr_t *hid_a = malloc(N * sizeof *hid_a);
    uintptr_t *hid_s = malloc(N * sizeof *hid_s);
    CGC_STORE(&g_atomic_holder, cgc_malloc_atomic(N * sizeof(void *)));
    CGC_STORE(&g_scanned_holder, cgc_malloc(N * sizeof(void *)));
    fill_holder(g_atomic_holder, hid_a, 0);
    fill_holder(g_scanned_holder, hid_s, 1);
    collect_clean();
    double ra = reclaimed(hid_a, N), rs = reclaimed(hid_s, N);
    CHECKF(ra >= MIN_RECLAIMED, "pointers in an atomic object kept %.1f %% alive",
           100 * (1 - ra));
    CHECKF(rs == 0.0, "pointers in a scanned object: %.1f %% freed", 100 * rs);
    /* the atomic holder itself is untouched */
    int same = 1;
    for (int i = 0; i < N; i++)
        same &= g_atomic_holder[i] == UNHIDE(hid_a[i]);
    CHECK(same);

    /* an atomic object grown by realloc stays atomic */
    void **grown = cgc_realloc(cgc_malloc_atomic(64), N * sizeof(void *));
    CHECK(grown != NULL);
    CGC_STORE(&g_atomic_holder, grown);
    fill_holder(g_atomic_holder, hid_a, 0);
    collect_clean();
    ra = reclaimed(hid_a, N);
    CHECKF(ra >= MIN_RECLAIMED, "pointers in a realloc'd atomic object kept %.1f %% alive",
           100 * (1 - ra));
    CGC_STORE(&g_atomic_holder, NULL);
    CGC_STORE(&g_scanned_holder, NULL);
    free(hid_a);
    free(hid_s);
}

/* Typed objects of 64 bytes whose only pointer word is at offset 0: a
 * pointer there is kept, pointers in the 7 other words are not. */
static NOINLINE void fill_typed(const cgc_type *t, int nobj, size_t objsize,
                                uintptr_t *kept, uintptr_t *dropped, int use_realloc)
{
    CGC_STORE(&g_typed_holders, cgc_malloc(nobj * sizeof(void *)));
    for (int i = 0; i < nobj; i++) {
        void **o;
        if (use_realloc) {
            o = cgc_malloc_typed(64, t);
            o = cgc_realloc(o, objsize);
        } else {
            o = cgc_malloc_typed(objsize, t);
        }
        CGC_STORE(&g_typed_holders[i], (void *)o);
        void *k = cgc_malloc(48);
        kept[i] = HIDE(k);
        CGC_STORE(&o[0], k);
        for (int w = 1; w < 8; w++) {
            void *d = cgc_malloc(48);
            dropped[i * 7 + w - 1] = HIDE(d);
            o[w] = d; /* not a pointer word for cgc */
        }
    }
}

static void test_typed_non_pointer_words(void)
{
    const size_t off = 0;
    const cgc_type *t = cgc_type_new(64, &off, 1);
    CHECK(t != NULL);
    if (!t)
        return;
    enum { NOBJ = 600 };
    uintptr_t *kept = malloc(NOBJ * sizeof *kept);
    uintptr_t *dropped = malloc(NOBJ * 7 * sizeof *dropped);
    for (int variant = 0; variant < 3; variant++) {
        /* 0: single objects; 1: arrays of 4 elements (pointers in element 0);
         * 2: single objects grown by realloc */
        size_t objsize = variant == 1 ? 64 * 4 : variant == 2 ? 64 * 3 : 64;
        fill_typed(t, NOBJ, objsize, kept, dropped, variant == 2);
        collect_clean();
        double rk = reclaimed(kept, NOBJ), rd = reclaimed(dropped, NOBJ * 7);
        CHECKF(rk == 0.0, "variant %d: %.1f %% of objects in pointer words freed",
               variant, 100 * rk);
        CHECKF(rd >= MIN_RECLAIMED,
               "variant %d: non-pointer words of typed objects kept %.1f %% alive",
               variant, 100 * (1 - rd));
        CGC_STORE(&g_typed_holders, NULL);
    }
    free(kept);
    free(dropped);
}

/* ------------------------------------------------ plain garbage, cycles -- */

static NOINLINE void make_garbage(uintptr_t *hidden, int n, size_t size, int ring)
{
    void **first = NULL, **prev = NULL;
    for (int i = 0; i < n; i++) {
        void **p = cgc_malloc(size);
        hidden[i] = HIDE(p);
        if (ring) {
            if (prev)
                CGC_STORE(&prev[0], (void *)p);
            else
                first = p;
            prev = p;
        }
    }
    if (ring && prev)
        CGC_STORE(&prev[0], (void *)first); /* a cycle: unreachable as a whole */
}

static void test_garbage(void)
{
    enum { G = 10000 };
    uintptr_t *hidden = malloc(G * sizeof *hidden);
    collect_clean();
    cgc_stats s0 = get_stats();
    make_garbage(hidden, G, 64, 0);
    collect_clean();
    cgc_stats s1 = get_stats();
    double r = reclaimed(hidden, G);
    CHECKF(r >= MIN_RECLAIMED, "plain garbage: %.1f %% kept", 100 * (1 - r));
    CHECKF(s1.frees - s0.frees >= (uint64_t)(G * MIN_RECLAIMED),
           "stats.frees grew by %llu for %d dead objects",
           (unsigned long long)(s1.frees - s0.frees), G);

    for (int k = 0; k < 10; k++)
        make_garbage(hidden + k * 1000, 1000, 96, 1);
    collect_clean();
    r = reclaimed(hidden, G);
    CHECKF(r >= MIN_RECLAIMED, "garbage cycles: %.1f %% kept", 100 * (1 - r));

    /* large objects */
    enum { L = 64 };
    cgc_disable(); /* measure the 64 MiB before any cycle frees them */
    for (int i = 0; i < L; i++)
        hidden[i] = HIDE(cgc_malloc((size_t)1 << 20));
    cgc_stats s2 = get_stats();
    cgc_enable();
    collect_clean();
    cgc_stats s3 = get_stats();
    r = reclaimed(hidden, L);
    CHECKF(r >= MIN_RECLAIMED, "large garbage: %.1f %% kept", 100 * (1 - r));
    CHECKF(s3.heap_alloc + (32u << 20) < s2.heap_alloc,
           "heap_alloc %llu -> %llu after freeing 64 MiB",
           (unsigned long long)s2.heap_alloc, (unsigned long long)s3.heap_alloc);
    free(hidden);
}

/* ------------------------------------------------------ cgc_remove_roots -- */

static NOINLINE void fill_roots(void **blk, uintptr_t *hidden, int n)
{
    for (int i = 0; i < n; i++) {
        void *p = cgc_malloc(80);
        hidden[i] = HIDE(p);
        CGC_STORE(&blk[i], p);
    }
}

static void test_remove_roots(void)
{
    enum { R = 2000 };
    void **blk = calloc(R, sizeof(void *));
    uintptr_t *hidden = malloc(R * sizeof *hidden);
    cgc_add_roots(blk, blk + R / 2);
    cgc_add_roots(blk + R / 2, blk + R);
    fill_roots(blk, hidden, R);
    collect_clean();
    CHECKF(reclaimed(hidden, R) == 0.0, "objects in root ranges were freed");

    /* removes the first range only */
    cgc_remove_roots(blk, blk + R / 2);
    collect_clean();
    double r1 = reclaimed(hidden, R / 2), r2 = reclaimed(hidden + R / 2, R / 2);
    CHECKF(r1 >= MIN_RECLAIMED, "removed range still keeps %.1f %%", 100 * (1 - r1));
    CHECKF(r2 == 0.0, "the range left registered lost %.1f %%", 100 * r2);

    /* a range not wholly inside [lo, hi) is kept */
    cgc_remove_roots(blk + R / 2 + 1, blk + R + 100);
    collect_clean();
    r2 = reclaimed(hidden + R / 2, R / 2);
    CHECKF(r2 == 0.0, "a partly covered range was removed (%.1f %% freed)", 100 * r2);

    cgc_remove_roots(blk, blk + R + 100);
    collect_clean();
    r2 = reclaimed(hidden + R / 2, R / 2);
    CHECKF(r2 >= MIN_RECLAIMED, "removed range still keeps %.1f %%", 100 * (1 - r2));
    free(blk);
    free(hidden);
}

/* ------------------------------------------- pacing: a bounded heap -- */

typedef struct lnode {
    struct lnode *next;
    uint64_t id;
    uint64_t check;
    uint64_t payload[5];
} lnode; /* 64 bytes */

static lnode **g_lists; /* the live set */

static NOINLINE lnode *build_list(int n, uint64_t base)
{
    lnode *head = NULL;
    for (int i = 0; i < n; i++) {
        lnode *x = cgc_malloc(sizeof *x);
        x->id = base + (uint64_t)i;
        x->check = x->id * 0x9E3779B97F4A7C15ull;
        for (int k = 0; k < 5; k++)
            x->payload[k] = x->check + (uint64_t)k;
        CGC_STORE(&x->next, head);
        head = x;
    }
    return head;
}

static NOINLINE int verify_list(const lnode *x, int n)
{
    int count = 0;
    for (; x; x = x->next, count++) {
        if (x->check != x->id * 0x9E3779B97F4A7C15ull)
            return -1;
        for (int k = 0; k < 5; k++)
            if (x->payload[k] != x->check + (uint64_t)k)
                return -1;
    }
    return count == n ? 0 : -1;
}

static void test_bounded_heap(void)
{
    enum { LISTS = 64, LEN = 1024 }; /* 64 * 1024 * 64 B = 4 MiB live */
    cgc_set_percent(100);
    CGC_STORE(&g_lists, cgc_malloc(LISTS * sizeof(lnode *)));
    for (int i = 0; i < LISTS; i++)
        CGC_STORE(&g_lists[i], build_list(LEN, (uint64_t)i << 32));
    cgc_collect();
    cgc_stats s0 = get_stats();
    size_t total = (size_t)scaled(400, 100, 4000) << 20;
    size_t done = 0;
    uint64_t peak_sys = 0, peak_alloc = 0, gen = 1000;
    int iter = 0;
    while (done < total) {
        /* garbage: a list of 1000 nodes, dropped at once */
        build_list(1000, 0);
        done += 1000 * sizeof(lnode);
        if (++iter % 16 == 0) {
            int k = (int)rng_below(&rng, LISTS);
            CGC_STORE(&g_lists[k], build_list(LEN, gen++ << 32));
            done += LEN * sizeof(lnode);
        }
        if (iter % 8 == 0) {
            cgc_stats s = get_stats();
            if (s.heap_sys - s.heap_released > peak_sys)
                peak_sys = s.heap_sys - s.heap_released;
            if (s.heap_alloc > peak_alloc)
                peak_alloc = s.heap_alloc;
        }
    }
    cgc_stats s1 = get_stats();
    printf("bounded heap: %zu MiB allocated, %llu cycles, peak heap_sys-released %.1f MiB, "
           "peak heap_alloc %.1f MiB, goal %.1f MiB\n",
           total >> 20, (unsigned long long)(s1.num_gc - s0.num_gc), peak_sys / 1048576.0,
           peak_alloc / 1048576.0, s1.heap_goal / 1048576.0);
    /* 4 MiB live, CGC_PERCENT=100: the goal is about 10 MiB.  A mark slowed
     * down by a loaded machine counts what is allocated meanwhile as live
     * (as Go does), raising the next goal, and the heap may pass the goal
     * by the documented overshoot bound; the bounds leave room for that
     * while still failing on a heap that grows with the 400 MiB allocated. */
    CHECKF(peak_sys < (128u << 20), "peak heap_sys - heap_released %llu",
           (unsigned long long)peak_sys);
    CHECKF(peak_alloc < (96u << 20), "peak heap_alloc %llu", (unsigned long long)peak_alloc);
    CHECKF(s1.num_gc - s0.num_gc >= 3, "only %llu cycles for %zu MiB",
           (unsigned long long)(s1.num_gc - s0.num_gc), total >> 20);
    CHECKF(s1.heap_goal < (64u << 20), "heap_goal %llu", (unsigned long long)s1.heap_goal);
    int bad = 0;
    for (int i = 0; i < LISTS; i++)
        bad += verify_list(g_lists[i], LEN) != 0;
    CHECKF(bad == 0, "%d live lists damaged", bad);
    CGC_STORE(&g_lists, NULL);
}

/* ------------------------------------- turning collection off and on -- */

static NOINLINE void allocate_mib(int mib)
{
    churn((size_t)mib << 20, &rng);
}

/* Allocates until a cycle has finished after `since`, up to 4 * mib MiB:
 * the trigger fires after a few MiB, but the coordinator thread may not
 * get a CPU at once on a loaded machine (sanitizer builds under ctest -j). */
static NOINLINE uint64_t allocate_until_cycle(int mib, uint64_t since)
{
    uint64_t n = since;
    for (int i = 0; i < 4 * mib && n == since; i++) {
        allocate_mib(1);
        n = get_stats().num_gc;
    }
    return n;
}

static void test_off_on(void)
{
    int mib = (int)scaled(64, 32, 64);

    /* cgc_set_percent(-1) */
    CHECK(cgc_set_percent(-1) == 100);
    cgc_collect(); /* finishes any cycle in progress */
    uint64_t n0 = get_stats().num_gc;
    allocate_mib(mib);
    uint64_t n1 = get_stats().num_gc;
    CHECKF(n1 == n0, "percent -1: %llu cycles ran", (unsigned long long)(n1 - n0));
    CHECK(cgc_set_percent(100) < 0);
    uint64_t n2 = allocate_until_cycle(mib, n1);
    CHECKF(n2 > n1, "percent 100 again: no cycle in %d MiB", 4 * mib);

    /* cgc_disable / cgc_enable nest */
    cgc_disable();
    cgc_disable();
    cgc_collect();
    cgc_stats a = get_stats();
    allocate_mib(mib);
    cgc_stats b = get_stats();
    CHECKF(b.num_gc == a.num_gc, "disabled: %llu cycles ran",
           (unsigned long long)(b.num_gc - a.num_gc));
    cgc_enable(); /* still disabled once */
    allocate_mib(mib / 2);
    cgc_stats c = get_stats();
    CHECKF(c.num_gc == b.num_gc, "disabled (nested): %llu cycles ran",
           (unsigned long long)(c.num_gc - b.num_gc));
    /* cgc_collect still works while disabled */
    cgc_collect();
    cgc_stats d = get_stats();
    CHECK(d.num_gc == c.num_gc + 1);
    CHECK(d.num_forced_gc == c.num_forced_gc + 1);
    cgc_enable();
    uint64_t e_num_gc = allocate_until_cycle(mib, d.num_gc);
    CHECKF(e_num_gc > d.num_gc, "enabled again: no cycle in %d MiB", 4 * mib);

    /* cgc_collect counts as forced */
    cgc_collect();
    cgc_stats f = get_stats();
    cgc_collect();
    cgc_stats g = get_stats();
    CHECK(g.num_gc >= f.num_gc + 1);
    CHECK(g.num_forced_gc >= f.num_forced_gc + 1);
    CHECK(g.num_pauses > f.num_pauses);
}

/* A soft memory limit makes cycles run even with the percent off. */
static void test_memory_limit(void)
{
    int64_t old = cgc_set_memory_limit(48ll << 20);
    CHECK(old == INT64_MAX);
    cgc_set_percent(-1);
    cgc_collect();
    cgc_stats s0 = get_stats();
    uint64_t peak = 0;
    size_t total = (size_t)scaled(256, 128, 1024) << 20;
    for (size_t done = 0; done < total; done += 1 << 20) {
        allocate_mib(1);
        cgc_stats s = get_stats();
        if (s.heap_sys - s.heap_released > peak)
            peak = s.heap_sys - s.heap_released;
    }
    cgc_stats s1 = get_stats();
    CHECKF(s1.num_gc > s0.num_gc, "memory limit: no cycle with the percent off");
    CHECKF(peak < (128u << 20), "memory limit 48 MiB: peak heap_sys - heap_released %llu",
           (unsigned long long)peak);
    cgc_set_percent(100);
    CHECK(cgc_set_memory_limit(INT64_MAX) == 48ll << 20);
}

/* The statistics count each object's end once: an object freed with
 * cgc_free (onto its thread's local free list, whose slots are free in the
 * bitmap) is not counted again by the sweep, nor an object the sweep
 * frees twice.  Everything allocated here but the kept objects ends one
 * way or the other. */
static void test_free_counts(void)
{
    enum { N = 60000, KEEP_EVERY = 100 };
    void **keep = cgc_malloc(N / KEEP_EVERY * sizeof *keep);
    collect_clean();
    cgc_stats s0 = get_stats();
    for (int i = 0; i < N; i++) {
        void *p = cgc_malloc(48);
        if (i % KEEP_EVERY == 0) CGC_STORE(&keep[i / KEEP_EVERY], p);
        else if (i % 3 == 0) cgc_free(p);
        if (i == N / 2) cgc_collect(); /* some frees before, some after a cycle */
    }
    collect_clean();
    cgc_stats s1 = get_stats();
    long long allocated = (long long)(s1.mallocs - s0.mallocs), ended = (long long)(s1.frees - s0.frees);
    CHECKF(allocated == N, "mallocs grew by %lld for %d allocations", allocated, N);
    /* a few dead objects may stay reachable from stale words */
    CHECKF(allocated - ended >= N / KEEP_EVERY && allocated - ended <= N / KEEP_EVERY + N / 100,
           "%lld allocated, %lld freed: %lld left, %d kept", allocated, ended, allocated - ended, N / KEEP_EVERY);
    for (int i = 0; i < N / KEEP_EVERY; i++) CHECK(keep[i] && cgc_size(keep[i]) >= 48);
}

int main(void)
{
    cgc_init();
    test_atomic_holds_nothing();
    test_typed_non_pointer_words();
    test_bounded_heap(); /* before the tests that grow the heap on purpose */
    test_garbage();
    test_free_counts();
    test_remove_roots();
    test_off_on();
    test_memory_limit();
    return finish("test_reclaim");
}
