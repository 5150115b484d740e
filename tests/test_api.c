/*
 * test_api.c — the allocation API's documented behaviour: zeroing, sizes,
 * alignment, cgc_size / cgc_base, realloc, errors (overflow, ENOMEM, the OOM
 * handler), reuse after cgc_free, typed layouts, statistics, the settings'
 * getters, and the barrier's bulk operations as plain memory functions.
 */
#include "check.h"

#include <stdalign.h>
#include <stddef.h>

static int is_aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

/* Alignment cgc documents for a size: 16 from 16 bytes, else 8; tiny atomic
 * objects as their size allows. */
static size_t want_align(size_t size, int atomic)
{
    if (size >= 16)
        return 16;
    if (!atomic)
        return 8;
    if (size == 0)
        return 1;
    if (size % 8 == 0)
        return 8;
    if (size % 4 == 0)
        return 4;
    if (size % 2 == 0)
        return 2;
    return 1;
}

static void check_fresh(void *p, size_t size, int atomic, const char *what)
{
    CHECKF(p != NULL, "%s(%zu)", what, size);
    if (!p)
        return;
    CHECKF(all_zero(p, size), "%s(%zu) not zeroed", what, size);
    CHECKF(cgc_size(p) >= size, "%s(%zu): cgc_size %zu", what, size, cgc_size(p));
    size_t a = want_align(size, atomic);
    CHECKF(is_aligned(p, a), "%s(%zu) = %p not %zu-aligned", what, size, p, a);
    if ((!atomic || size >= 16) && size > 0) {
        CHECKF(cgc_base(p) == p, "%s(%zu): base(p) = %p, p = %p", what, size,
               cgc_base(p), p);
        if (size > 1)
            CHECKF(cgc_base((char *)p + size - 1) == p, "%s(%zu): base of last byte",
                   what, size);
    }
    /* dirty it, so that reuse without zeroing would be seen later */
    memset(p, 0xAA, size);
}

static void test_sizes(void)
{
    /* every size up to 4 KiB, then a stride, the class boundaries and
     * large objects */
    size_t max_dense = test_quick() ? 1100 : 4200;
    for (size_t s = 0; s <= max_dense; s++) {
        check_fresh(cgc_malloc(s), s, 0, "cgc_malloc");
        check_fresh(cgc_malloc_atomic(s), s, 1, "cgc_malloc_atomic");
        if (s % 7 == 0)
            check_fresh(cgc_calloc(1, s), s, 0, "cgc_calloc");
    }
    for (size_t s = max_dense; s <= 70000; s += 37) {
        check_fresh(cgc_malloc(s), s, 0, "cgc_malloc");
        check_fresh(cgc_malloc_atomic(s), s, 1, "cgc_malloc_atomic");
    }
    static const size_t edges[] = {8192, 16384, 24576, 27264, 28672, 32767, 32768,
                                   32769, 40960, 65535, 65536, 65537, 69999,
                                   70000, 131072, 1000000};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        for (int d = -1; d <= 1; d++) {
            size_t s = edges[i] + (size_t)d;
            check_fresh(cgc_malloc(s), s, 0, "cgc_malloc");
            check_fresh(cgc_malloc_atomic(s), s, 1, "cgc_malloc_atomic");
            check_fresh(cgc_calloc(s, 1), s, 0, "cgc_calloc");
        }
    }
    static const size_t big[] = {1u << 20, 3u << 20, (5u << 20) + 3, 16u << 20};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        check_fresh(cgc_malloc(big[i]), big[i], 0, "cgc_malloc");
        check_fresh(cgc_malloc_atomic(big[i]), big[i], 1, "cgc_malloc_atomic");
        check_fresh(cgc_calloc(big[i] / 16, 16), big[i] / 16 * 16, 0, "cgc_calloc");
    }
}

static void test_zero_size(void)
{
    enum { N = 200 };
    void **keep = cgc_malloc(N * sizeof(void *));
    CHECK(keep != NULL);
    for (int i = 0; i < N; i++) {
        void *p = cgc_malloc(0);
        CHECK(p != NULL);
        CGC_STORE(&keep[i], p);
    }
    cgc_collect();
    int distinct = 1;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (keep[i] == keep[j])
                distinct = 0;
    CHECKF(distinct, "cgc_malloc(0) returned the same pointer twice");
    CHECK(cgc_malloc_atomic(0) != NULL);
    CHECK(cgc_calloc(0, 16) != NULL);
    CHECK(cgc_calloc(16, 0) != NULL);
}

static int on_stack_base_is_null(void)
{
    char local[64];
    memset(local, 1, sizeof local);
    __asm__ volatile("" : : "r"(local) : "memory");
    return cgc_base(local) == NULL && cgc_base(local + 10) == NULL &&
           cgc_size(local) == 0;
}

static int global_var;

static void test_base(void)
{
    static const size_t sizes[] = {8, 24, 48, 100, 1024, 5000, 32768, 40000, 300000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t s = sizes[i];
        char *p = cgc_malloc(s);
        CHECK(cgc_base(p) == p);
        CHECKF(cgc_base(p + s / 2) == p, "size %zu interior", s);
        CHECKF(cgc_base(p + s - 1) == p, "size %zu last byte", s);
        CHECKF(cgc_size(p + s / 2) >= s - s / 2, "size %zu: cgc_size(interior) %zu", s,
               cgc_size(p + s / 2));
        char *end = p + cgc_size(p);
        CHECKF(cgc_base(end) != p, "size %zu: one past the end maps back to p", s);
        CHECKF(cgc_base(p - 1) != p, "size %zu: byte before maps to p", s);
        __asm__ volatile("" : : "r"(p) : "memory");
    }
    CHECK(on_stack_base_is_null());
    CHECK(cgc_base(NULL) == NULL);
    CHECK(cgc_size(NULL) == 0);
    CHECK(cgc_base(&global_var) == NULL);
    CHECK(cgc_size(&global_var) == 0);
    CHECK(cgc_base((void *)test_base) == NULL);
    char *m = malloc(1000);
    CHECK(m != NULL);
    CHECK(cgc_base(m) == NULL);
    CHECK(cgc_base(m + 500) == NULL);
    CHECK(cgc_size(m) == 0);
    free(m);
    /* tiny atomic objects: the base is at or before the pointer */
    char *t = cgc_malloc_atomic(3);
    void *tb = cgc_base(t);
    CHECK(tb != NULL && (char *)tb <= t && t < (char *)tb + 16);
    CHECK(cgc_size(t) >= 3 && cgc_size(t) <= 16);
}

static void test_realloc(void)
{
    /* small -> bigger -> large -> smaller */
    char *p = cgc_malloc(100);
    fill_pattern(p, 100, 1);
    char *q = cgc_realloc(p, 5000);
    CHECK(q != NULL);
    CHECK(check_pattern(q, 100, 1) == -1);
    CHECK(all_zero(q + 100, 4900));
    fill_pattern(q, 5000, 2);
    char *r = cgc_realloc(q, 200000);
    CHECK(r != NULL);
    CHECK(check_pattern(r, 5000, 2) == -1);
    CHECK(all_zero(r + 5000, 195000));
    fill_pattern(r, 200000, 3);
    char *s = cgc_realloc(r, 50);
    CHECK(s != NULL);
    CHECK(check_pattern(s, 50, 3) == -1);
    CHECK(cgc_size(s) >= 50);
    /* grow in place: the bytes between the old and new size must be zero
     * even though the slot had room and the caller wrote past nothing */
    char *g = cgc_malloc(40);
    fill_pattern(g, 40, 4);
    char *g2 = cgc_realloc(g, 44);
    CHECK(g2 != NULL && check_pattern(g2, 40, 4) == -1 && all_zero(g2 + 40, 4));
    /* shrink then grow again: bytes beyond the shrunk size must come back zero */
    char *h = cgc_malloc(64);
    fill_pattern(h, 64, 5);
    char *h2 = cgc_realloc(h, 16);
    CHECK(h2 != NULL && check_pattern(h2, 16, 5) == -1);
    char *h3 = cgc_realloc(h2, 64);
    CHECK(h3 != NULL && check_pattern(h3, 16, 5) == -1);
    CHECKF(h3 && all_zero(h3 + 16, 48), "realloc shrink+grow kept old bytes");
    /* large grow */
    char *L = cgc_malloc(1u << 20);
    fill_pattern(L, 1u << 20, 6);
    char *L2 = cgc_realloc(L, 3u << 20);
    CHECK(L2 != NULL && check_pattern(L2, 1u << 20, 6) == -1 &&
          all_zero(L2 + (1u << 20), 2u << 20));
    /* NULL and 0 */
    char *n = cgc_realloc(NULL, 64);
    CHECK(n != NULL && all_zero(n, 64) && cgc_base(n) == n);
    char *z0 = cgc_malloc(256);
    char *z = cgc_realloc(z0, 0);
    CHECK(z != NULL);
    CHECK(z != z0);
    CHECKF(cgc_base(z0) == NULL, "realloc(p, 0) did not free p");
    /* atomic stays atomic (at least it stays usable and zero-extended) */
    char *a = cgc_malloc_atomic(30);
    fill_pattern(a, 30, 7);
    char *a2 = cgc_realloc(a, 3000);
    CHECK(a2 != NULL && check_pattern(a2, 30, 7) == -1 && all_zero(a2 + 30, 2970));
    /* failure leaves p untouched */
    char *k = cgc_malloc(128);
    fill_pattern(k, 128, 8);
    errno = 0;
    CHECK(cgc_realloc(k, SIZE_MAX) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(cgc_base(k) == k && check_pattern(k, 128, 8) == -1);
    errno = 0;
    CHECK(cgc_realloc(k, SIZE_MAX / 2) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(cgc_base(k) == k && check_pattern(k, 128, 8) == -1);
}

static volatile size_t oom_calls;
static volatile size_t oom_last;

static void oom_handler(size_t size)
{
    oom_calls++;
    oom_last = size;
}

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static int oom_relieve; /* the handler lifts the limit */

static void oom_handler_relieve(size_t size)
{
    oom_handler(size);
    if (oom_relieve) {
        struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
        getrlimit(RLIMIT_AS, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_AS, &rl);
    }
}

/* In a child limited to its current address space + 256 MiB, a 1 GiB
 * allocation runs out of memory: the handler is called with the size; if it
 * lifts the limit, the retry succeeds. Returns 0 on success. */
static int oom_child(int relieve)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        oom_relieve = relieve;
        struct rlimit rl;
        getrlimit(RLIMIT_AS, &rl);
        rl.rlim_cur = vm_size() + (256u << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(10);
        cgc_set_oom_handler(oom_handler_relieve);
        size_t want = (size_t)1 << 30;
        oom_calls = 0;
        errno = 0;
        char *p = cgc_malloc(want);
        if (oom_calls < 1 || oom_last != want) {
            fprintf(stderr, "oom child: handler called %zu times, last size %zu\n",
                    (size_t)oom_calls, (size_t)oom_last);
            _exit(11);
        }
        if (!relieve && (p != NULL || errno != ENOMEM)) {
            fprintf(stderr, "oom child: got %p, errno %d\n", (void *)p, errno);
            _exit(12);
        }
        if (relieve && (p == NULL || !all_zero(p, 4096) || cgc_size(p) < want)) {
            fprintf(stderr, "oom child: the retry after the handler failed\n");
            _exit(13);
        }
        /* the heap still works */
        char *q = cgc_malloc(1000);
        _exit(q && all_zero(q, 1000) ? 0 : 14);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status)) {
        fprintf(stderr, "oom child killed by signal %d\n", WTERMSIG(status));
        return -1;
    }
    return WEXITSTATUS(status);
}

static void test_errors(void)
{
    errno = 0;
    CHECK(cgc_malloc(SIZE_MAX) == NULL);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(cgc_malloc(SIZE_MAX / 2) == NULL);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(cgc_malloc(SIZE_MAX - 15) == NULL);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(cgc_malloc_atomic(SIZE_MAX) == NULL);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(cgc_calloc(SIZE_MAX / 2, 3) == NULL);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(cgc_calloc((size_t)1 << 33, (size_t)1 << 33) == NULL);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(cgc_calloc(3, SIZE_MAX / 2) == NULL);
    CHECK(errno == ENOMEM);

    const size_t off = 8;
    const cgc_type *t = cgc_type_new(16, &off, 1);
    CHECK(t != NULL);
    errno = 0;
    CHECK(cgc_malloc_typed(SIZE_MAX, t) == NULL);
    CHECK(errno == ENOMEM);

    /* an impossible size fails cleanly (cgc may treat it as an overflow,
     * without calling the handler) */
    CHECK(cgc_set_oom_handler(oom_handler) == NULL);
    errno = 0;
    CHECKF(cgc_malloc((size_t)1 << 46) == NULL, "cgc_malloc(1<<46) succeeded");
    CHECK(errno == ENOMEM);
    CHECK(cgc_set_oom_handler(NULL) == oom_handler);
    /* the handler on a real out-of-memory: a child whose address space is
     * limited */
    CHECKF(oom_child(0) == 0, "OOM handler (allocation still failing)");
    CHECKF(oom_child(1) == 0, "OOM handler that makes room, then the retry");
    /* the heap still works after a failure */
    char *ok = cgc_malloc(1000);
    CHECK(ok != NULL && all_zero(ok, 1000));
}

static void test_free_reuse(void)
{
    static const size_t sizes[] = {8, 16, 24, 100, 1000, 5000, 32768, 40000, 200000};
    int rounds = (int)scaled(300, 60, 2000);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t s = sizes[i];
        int dirty = 0, bad_base = 0;
        for (int r = 0; r < rounds; r++) {
            char *p = (r & 1) ? cgc_malloc_atomic(s) : cgc_malloc(s);
            if (!all_zero(p, s))
                dirty++;
            memset(p, 0xAA, s);
            if (cgc_base(p) != p)
                bad_base++;
            cgc_free(p);
            if (s >= 16 && cgc_base(p) != NULL)
                bad_base++;
        }
        CHECKF(dirty == 0, "size %zu: %d reused objects not zeroed", s, dirty);
        CHECKF(bad_base == 0, "size %zu: %d wrong cgc_base before/after free", s,
               bad_base);
    }
    /* free a batch, then allocate the same sizes again */
    enum { B = 500 };
    char **ptrs = malloc(B * sizeof *ptrs);
    int dirty = 0;
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < B; i++) {
            ptrs[i] = cgc_malloc(48);
            if (!all_zero(ptrs[i], 48))
                dirty++;
            memset(ptrs[i], 0xAA, 48);
        }
        for (int i = 0; i < B; i++)
            cgc_free(ptrs[i]);
    }
    CHECKF(dirty == 0, "%d batch-reused objects not zeroed", dirty);
    free(ptrs);
    cgc_free(NULL);
    /* tiny atomic objects may be freed; they are reclaimed later */
    char *t = cgc_malloc_atomic(5);
    cgc_free(t);
    CHECK(1);
}

static void test_types(void)
{
    size_t bad1 = 4;
    errno = 0;
    CHECK(cgc_type_new(16, &bad1, 1) == NULL);
    CHECK(errno == EINVAL);
    size_t bad2 = 16;
    errno = 0;
    CHECK(cgc_type_new(16, &bad2, 1) == NULL);
    CHECK(errno == EINVAL);
    size_t bad3[] = {0, 8, 12};
    errno = 0;
    CHECK(cgc_type_new(32, bad3, 3) == NULL);
    CHECK(errno == EINVAL);
    size_t bad4[] = {0, 40};
    errno = 0;
    CHECK(cgc_type_new(40, bad4, 2) == NULL);
    CHECK(errno == EINVAL);

    size_t good[] = {0, 24};
    const cgc_type *t = cgc_type_new(32, good, 2);
    CHECK(t != NULL);
    CHECK(cgc_type_new(64, NULL, 0) != NULL); /* no pointers at all */
    size_t last = 56;
    CHECK(cgc_type_new(64, &last, 1) != NULL);

    /* typed objects: zeroed, right size, usable as arrays and with a tail */
    static const size_t sizes[] = {32, 64, 96, 32 * 10, 32 * 3 + 24, 4096, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = cgc_malloc_typed(sizes[i], t);
        CHECK(p != NULL);
        check_fresh(p, sizes[i], 0, "cgc_malloc_typed");
    }
    /* realloc keeps a typed object usable */
    void **o = cgc_malloc_typed(32, t);
    void *child = cgc_malloc(8);
    CGC_STORE(&o[0], child);
    void **o2 = cgc_realloc(o, 32 * 4);
    CHECK(o2 != NULL && o2[0] == child && all_zero(o2 + 1, 32 * 4 - 8));
}

static void test_stats(void)
{
    cgc_stats s0 = get_stats();
    CHECK(s0.version == CGC_STATS_VERSION);
    CHECK(s0.size == sizeof(cgc_stats));
    CHECK(s0.num_threads == 1);
    CHECK(s0.gc_procs >= 1);
    CHECK(s0.heap_sys >= s0.heap_inuse);
    CHECK(s0.heap_inuse >= s0.heap_alloc / 2); /* loose: both describe the heap */
    enum { N = 1000 };
    void **keep = cgc_malloc(N * sizeof(void *));
    for (int i = 0; i < N; i++)
        CGC_STORE(&keep[i], cgc_malloc(64));
    cgc_stats s1 = get_stats();
    CHECKF(s1.mallocs >= s0.mallocs + N, "mallocs %llu -> %llu",
           (unsigned long long)s0.mallocs, (unsigned long long)s1.mallocs);
    CHECK(s1.total_alloc >= s0.total_alloc + N * 64);
    CHECK(s1.heap_alloc >= N * 64);
    CHECK(s1.heap_sys > 0);
    cgc_collect();
    cgc_stats s2 = get_stats();
    CHECK(s2.num_gc >= s1.num_gc + 1);
    CHECK(s2.num_forced_gc >= s1.num_forced_gc + 1);
    CHECK(s2.heap_live_marked >= N * 64);
    CHECK(s2.heap_goal >= s2.heap_live_marked);
    CHECK(s2.num_pauses >= 1);
    CHECK(s2.pause_total_ns >= s2.pause_max_ns);
    CHECK(s2.last_gc_unix_ns > 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    CHECKF(s2.last_gc_unix_ns <= now_ns && now_ns - s2.last_gc_unix_ns < 60000000000ull,
           "last_gc_unix_ns %llu, now %llu", (unsigned long long)s2.last_gc_unix_ns,
           (unsigned long long)now_ns);
    __asm__ volatile("" : : "r"(keep) : "memory");

    /* a smaller struct (an older caller) is never written past */
    union {
        cgc_stats s;
        unsigned char b[sizeof(cgc_stats) + 64];
    } u;
    memset(&u, 0xEE, sizeof u);
    size_t small = offsetof(cgc_stats, heap_sys);
    cgc_read_stats_sized(&u.s, small);
    int untouched = 1;
    for (size_t i = small; i < sizeof u.b; i++)
        if (u.b[i] != 0xEE)
            untouched = 0;
    CHECKF(untouched, "cgc_read_stats_sized wrote past the size given");
    CHECK(u.s.version == CGC_STATS_VERSION);
    CHECK(u.s.size <= small);
    memset(&u, 0xEE, sizeof u);
    cgc_read_stats_sized(&u.s, sizeof(cgc_stats));
    untouched = 1;
    for (size_t i = sizeof(cgc_stats); i < sizeof u.b; i++)
        if (u.b[i] != 0xEE)
            untouched = 0;
    CHECK(untouched);
}

static void test_settings(void)
{
    CHECK(cgc_set_percent(50) == 100);
    CHECK(cgc_set_percent(-1) == 50);
    CHECK(cgc_set_percent(100) < 0);
    CHECK(cgc_set_memory_limit(-1) == INT64_MAX);
    CHECK(cgc_set_memory_limit(1ll << 40) == INT64_MAX);
    CHECK(cgc_set_memory_limit(-1) == 1ll << 40);
    CHECK(cgc_set_memory_limit(INT64_MAX) == 1ll << 40);
    CHECK(cgc_set_stoptheworld(1) == 0);
    CHECK(cgc_set_stoptheworld(0) == 1);
    errno = 0;
    CHECK(cgc_set_suspend_signal(SIGUSR2) == -1);
    CHECK(errno == EBUSY);
    CHECK(cgc_thread_attach() == 1);
    cgc_disable();
    cgc_disable();
    cgc_enable();
    cgc_enable();
    cgc_blocking_begin();
    cgc_blocking_begin();
    cgc_blocking_end();
    cgc_blocking_end();
    CHECK(1);
}

static void test_bulk_ops(void)
{
    enum { N = 64 };
    void **a = cgc_malloc(N * sizeof(void *));
    void **b = cgc_malloc(N * sizeof(void *));
    void *objs[N];
    for (int i = 0; i < N; i++) {
        objs[i] = cgc_malloc(16);
        CGC_STORE(&a[i], objs[i]);
    }
    CHECK(cgc_memcpy(b, a, N * sizeof(void *)) == b);
    CHECK(memcmp(a, b, N * sizeof(void *)) == 0);
    /* overlapping, both directions */
    CHECK(cgc_memmove(a + 1, a, (N - 1) * sizeof(void *)) == a + 1);
    int ok = a[0] == objs[0];
    for (int i = 1; i < N; i++)
        ok &= a[i] == objs[i - 1];
    CHECK(ok);
    CHECK(cgc_memmove(a, a + 1, (N - 1) * sizeof(void *)) == a);
    ok = 1;
    for (int i = 0; i < N - 1; i++)
        ok &= a[i] == objs[i];
    CHECK(ok);
    CHECK(cgc_memclr(a + 8, 16 * sizeof(void *)) == a + 8);
    ok = 1;
    for (int i = 0; i < N - 1; i++)
        ok &= a[i] == ((i >= 8 && i < 24) ? NULL : objs[i]);
    CHECK(ok);
    /* byte lengths and plain data */
    char *c = cgc_malloc_atomic(100);
    char *d = cgc_malloc_atomic(100);
    fill_pattern(c, 100, 9);
    CHECK(cgc_memcpy(d, c, 100) == d && memcmp(c, d, 100) == 0);
    CHECK(cgc_memclr(d, 37) == d && all_zero(d, 37) && memcmp(c + 37, d + 37, 63) == 0);
    CHECK(cgc_memmove(d + 3, d, 50) == d + 3);
    /* memory outside the heap works too */
    void *stackbuf[8] = {0};
    CHECK(cgc_memcpy(stackbuf, objs, sizeof stackbuf) == stackbuf &&
          stackbuf[7] == objs[7]);
    CHECK(cgc_memclr(stackbuf, sizeof stackbuf) == stackbuf && stackbuf[7] == NULL);
    /* cgc_cas */
    void *slot_obj = cgc_malloc(32);
    void **slot = cgc_malloc(sizeof(void *));
    CHECK(cgc_cas(slot, NULL, slot_obj));
    CHECK(*slot == slot_obj);
    CHECK(!cgc_cas(slot, NULL, objs[0]));
    CHECK(*slot == slot_obj);
    CHECK(cgc_cas(slot, slot_obj, NULL));
    CHECK(*slot == NULL);
    void *gs = NULL;
    cgc_store(&gs, objs[3]);
    CHECK(gs == objs[3]);
}

int main(void)
{
    cgc_init();
    cgc_init(); /* idempotent */
    test_settings();
    test_stats();
    test_sizes();
    test_zero_size();
    test_base();
    test_realloc();
    test_errors();
    test_free_reuse();
    test_types();
    test_bulk_ops();
    return finish("test_api");
}
