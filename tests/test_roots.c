/*
 * test_roots.c — every kind of root keeps its object alive.
 *
 * Each case leaves the only reference to a patterned object in one place (a
 * register or local of the main thread, the stack of a blocked or spinning
 * thread, a global, a dlopen'ed library's data, a cgc_add_roots range, an
 * interior pointer, a typed pointer field, thread-local storage, a chain
 * through every size class), then runs many collections with garbage
 * allocated in between and verifies the pattern byte for byte each time: an
 * object freed by mistake and handed out again would be overwritten.
 *
 * argv[1] (optional): the path of lib_dlroot.so; the build passes it, and
 * CGC_TEST_DLROOT_PATH is the default.
 */
#include "check.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "sizeclasses.h"

static int cycles;          /* collections per case */
static size_t churn_bytes;  /* garbage between collections */
static uint64_t rng = 0x1234567;

/* ------------------------------------------------------------ helpers -- */

static NOINLINE void *make_obj(size_t size, uint64_t seed)
{
    char *p = cgc_malloc(size);
    if (!p)
        abort();
    fill_pattern(p, size, seed);
    return p;
}

/* A case's running verdict. */
typedef struct {
    const char *name;
    int bad;       /* failed verifications */
    int first_bad; /* cycle of the first one */
    long offset;   /* first differing byte then, or -2 for a wrong base */
} verdict;

static void verdict_init(verdict *v, const char *name)
{
    v->name = name;
    v->bad = 0;
    v->first_bad = -1;
    v->offset = -1;
}

/* Checks that p is the start of an allocated object holding the pattern. */
static NOINLINE void verify_obj(verdict *v, int cycle, const void *p, size_t size,
                                uint64_t seed)
{
    long off = -1;
    if (cgc_base(p) != p)
        off = -2;
    else
        off = check_pattern(p, size, seed);
    if (off != -1) {
        if (!v->bad) {
            v->first_bad = cycle;
            v->offset = off;
        }
        v->bad++;
    }
}

/* Verifies through a hidden pointer, leaving no copy of it behind. */
static NOINLINE void verify_hidden(verdict *v, int cycle, uintptr_t h, size_t size,
                                   uint64_t seed)
{
    verify_obj(v, cycle, UNHIDE(h), size, seed);
}

static void verdict_report(const verdict *v)
{
    CHECKF(v->bad == 0, "%s: %d of %d verifications failed (first at cycle %d, %s %ld)",
           v->name, v->bad, cycles, v->first_bad,
           v->offset == -2 ? "cgc_base wrong" : "byte", v->offset);
}

static NOINLINE void one_cycle(void)
{
    churn(churn_bytes, &rng);
    cgc_collect();
}

/* ----------------------------------------------- main thread's stack -- */

static NOINLINE void case_volatile_local(void)
{
    verdict v;
    verdict_init(&v, "volatile local of the main thread");
    char *volatile p = make_obj(4000, 101);
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_obj(&v, c, p, 4000, 101);
    }
    verdict_report(&v);
}

/* p is not volatile: at -O2 it lives in a callee-saved register across the
 * calls (or in a spill slot the collector must find either way). */
static NOINLINE void case_register(void)
{
    verdict v;
    verdict_init(&v, "register of the main thread");
    char *p = make_obj(96, 102);
    char *q = make_obj(50000, 103);
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_obj(&v, c, p, 96, 102);
        verify_obj(&v, c, q, 50000, 103);
    }
    verdict_report(&v);
}

static NOINLINE int deep(int n, uintptr_t h, verdict *v)
{
    volatile char frame[128];
    frame[n % 128] = (char)n;
    if (n > 0)
        return deep(n - 1, h, v) + frame[n % 128] - (char)n;
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_hidden(v, c, h, 3000, 104);
    }
    return 0;
}

static NOINLINE void case_deep_stack(void)
{
    verdict v;
    verdict_init(&v, "local at the top of a deep stack");
    char *volatile p = make_obj(3000, 104);
    uintptr_t h = HIDE(p);
    CHECK(deep(2000, h, &v) == 0);
    verify_obj(&v, cycles, p, 3000, 104);
    verdict_report(&v);
}

/* ----------------------------------------------------- other threads -- */

typedef struct {
    int fd;            /* read end of the pipe the thread blocks on */
    atomic_int ready;
    atomic_int stop;
    uintptr_t hidden;  /* the object, hidden, for the main thread's checks */
    int ok;            /* the thread's own final verification */
    int use_tls;
} thread_case;

static _Thread_local void *tls_root;
static _Thread_local char tls_pad[256]; /* some more static TLS around it */

static NOINLINE void tls_setup(thread_case *tc, size_t size, uint64_t seed)
{
    void *p = make_obj(size, seed);
    CGC_STORE(&tls_root, p);
    tc->hidden = HIDE(p);
    tls_pad[0] = 1;
}

static NOINLINE int blocked_body(thread_case *tc)
{
    char *p = NULL;
    if (tc->use_tls) {
        tls_setup(tc, 777, 106);
        scrub_stack();
    } else {
        p = make_obj(20000, 105);
        tc->hidden = HIDE(p);
    }
    atomic_store(&tc->ready, 1);
    char c;
    ssize_t r;
    do
        r = read(tc->fd, &c, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1)
        return 0;
    if (tc->use_tls)
        return cgc_base(tls_root) == tls_root && check_pattern(tls_root, 777, 106) == -1;
    return cgc_base(p) == p && check_pattern(p, 20000, 105) == -1;
}

static void *blocked_thread(void *arg)
{
    thread_case *tc = arg;
    tc->ok = blocked_body(tc);
    return NULL;
}

static void run_blocked_case(int use_tls, const char *name)
{
    verdict v;
    verdict_init(&v, name);
    int fds[2];
    CHECK(pipe(fds) == 0);
    thread_case tc;
    memset(&tc, 0, sizeof tc);
    tc.fd = fds[0];
    tc.use_tls = use_tls;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, blocked_thread, &tc) == 0);
    while (!atomic_load(&tc.ready))
        sched_yield();
    size_t size = use_tls ? 777 : 20000;
    uint64_t seed = use_tls ? 106 : 105;
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_hidden(&v, c, tc.hidden, size, seed);
    }
    scrub_stack();
    CHECK(write(fds[1], "x", 1) == 1);
    pthread_join(t, NULL);
    CHECKF(tc.ok, "%s: the thread's own check failed", name);
    verdict_report(&v);
    close(fds[0]);
    close(fds[1]);
}

/* Spins on an atomic flag without calling into cgc; p stays in a register
 * or on the stack. */
static void *spinning_thread(void *arg)
{
    thread_case *tc = arg;
    char *p = make_obj(300, 107);
    tc->hidden = HIDE(p);
    atomic_store(&tc->ready, 1);
    unsigned long spins = 0;
    while (!atomic_load_explicit(&tc->stop, memory_order_relaxed)) {
        spins++;
        cpu_relax();
    }
    tc->ok = cgc_base(p) == p && check_pattern(p, 300, 107) == -1 && spins > 0;
    return NULL;
}

static void case_spinning_thread(void)
{
    verdict v;
    verdict_init(&v, "stack/registers of a spinning thread");
    thread_case tc;
    memset(&tc, 0, sizeof tc);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, spinning_thread, &tc) == 0);
    while (!atomic_load(&tc.ready))
        sched_yield();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_hidden(&v, c, tc.hidden, 300, 107);
    }
    atomic_store(&tc.stop, 1);
    pthread_join(t, NULL);
    CHECKF(tc.ok, "spinning thread: its own check failed");
    verdict_report(&v);
}

/* ----------------------------------------------------- thread-locals -- */

static NOINLINE void main_tls_setup(void)
{
    CGC_STORE(&tls_root, make_obj(555, 108));
}

static NOINLINE void case_main_tls(void)
{
    verdict v;
    verdict_init(&v, "_Thread_local of the main thread");
    main_tls_setup();
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_obj(&v, c, tls_root, 555, 108);
    }
    verdict_report(&v);
    CGC_STORE(&tls_root, NULL);
}

/* ----------------------------------------------------------- globals -- */

static void *g_bss_root;
static struct { long tag; void *ptr; } g_data_root = {42, NULL};
static void *g_big_bss[20000];

static NOINLINE void globals_setup(void)
{
    CGC_STORE(&g_bss_root, make_obj(64, 109));
    CGC_STORE(&g_data_root.ptr, make_obj(10000, 110));
    CGC_STORE(&g_big_bss[15000], make_obj(128, 111));
}

static NOINLINE void case_globals(void)
{
    verdict v;
    verdict_init(&v, "globals of the executable");
    globals_setup();
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_obj(&v, c, g_bss_root, 64, 109);
        verify_obj(&v, c, g_data_root.ptr, 10000, 110);
        verify_obj(&v, c, g_big_bss[15000], 128, 111);
    }
    verdict_report(&v);
    CHECK(g_data_root.tag == 42);
    CGC_STORE(&g_bss_root, NULL);
    CGC_STORE(&g_data_root.ptr, NULL);
    CGC_STORE(&g_big_bss[15000], NULL);
}

/* ------------------------------------------------- dlopen'ed library -- */

#ifndef CGC_TEST_DLROOT_PATH
#define CGC_TEST_DLROOT_PATH "./lib_dlroot.so"
#endif

static void **(*dl_bss)(void);
static void **(*dl_data)(void);
static void **(*dl_array)(size_t);

static NOINLINE void dl_setup(void)
{
    CGC_STORE(dl_bss(), make_obj(48, 112));
    CGC_STORE(dl_data(), make_obj(2048, 113));
    CGC_STORE(dl_array(3000), make_obj(40000, 114));
}

static NOINLINE void case_dlopen(const char *path)
{
    verdict v;
    verdict_init(&v, "data/bss of a dlopen'ed library");
    /* a collection before the library exists, so the library appears while
     * cgc already runs */
    cgc_collect();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECKF(h != NULL, "dlopen(%s): %s", path, dlerror());
    if (!h)
        return;
    dl_bss = (void **(*)(void))dlsym(h, "dlroot_bss_slot");
    dl_data = (void **(*)(void))dlsym(h, "dlroot_data_slot");
    dl_array = (void **(*)(size_t))dlsym(h, "dlroot_array_slot");
    CHECK(dl_bss && dl_data && dl_array);
    if (!dl_bss || !dl_data || !dl_array)
        return;
    dl_setup();
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_obj(&v, c, *dl_bss(), 48, 112);
        verify_obj(&v, c, *dl_data(), 2048, 113);
        verify_obj(&v, c, *dl_array(3000), 40000, 114);
    }
    verdict_report(&v);
    /* the library stays loaded: unloading is not part of this test */
}

/* --------------------------------------------------- cgc_add_roots -- */

static NOINLINE void case_add_roots(void)
{
    verdict v;
    verdict_init(&v, "cgc_add_roots ranges (libc malloc and mmap)");
    enum { N = 512 };
    void **blk = calloc(N, sizeof(void *));
    void **map = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    CHECK(blk != NULL && map != MAP_FAILED);
    cgc_add_roots(blk, blk + N);
    cgc_add_roots(map, (char *)map + (1 << 16));
    CGC_STORE(&blk[300], make_obj(200, 115));
    CGC_STORE(&map[5000], make_obj(9000, 116));
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_obj(&v, c, blk[300], 200, 115);
        verify_obj(&v, c, map[5000], 9000, 116);
    }
    verdict_report(&v);
    cgc_remove_roots(blk, blk + N);
    cgc_remove_roots(map, (char *)map + (1 << 16));
    free(blk);
    munmap(map, 1 << 16);
}

/* -------------------------------------------------- interior pointers -- */

static char *g_interior_large;
static char *g_interior_small;
static char *g_interior_last;
static uintptr_t g_base_large, g_base_small, g_base_last;

static NOINLINE void interior_setup(void)
{
    char *l = make_obj(300000, 117);
    char *s = make_obj(200, 118);
    char *e = make_obj(64, 119);
    g_base_large = HIDE(l);
    g_base_small = HIDE(s);
    g_base_last = HIDE(e);
    CGC_STORE(&g_interior_large, l + 150001);
    CGC_STORE(&g_interior_small, s + 100);
    CGC_STORE(&g_interior_last, e + 63);
}

static NOINLINE void verify_interior(verdict *v, int c, const char *ip, uintptr_t hb,
                                     size_t size, uint64_t seed)
{
    const void *b = cgc_base(ip);
    if (b != UNHIDE(hb)) {
        if (!v->bad) {
            v->first_bad = c;
            v->offset = -2;
        }
        v->bad++;
        return;
    }
    verify_obj(v, c, b, size, seed);
}

static NOINLINE void case_interior(void)
{
    verdict v;
    verdict_init(&v, "interior pointers only");
    interior_setup();
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_interior(&v, c, g_interior_large, g_base_large, 300000, 117);
        verify_interior(&v, c, g_interior_small, g_base_small, 200, 118);
        verify_interior(&v, c, g_interior_last, g_base_last, 64, 119);
    }
    verdict_report(&v);
    CGC_STORE(&g_interior_large, NULL);
    CGC_STORE(&g_interior_small, NULL);
    CGC_STORE(&g_interior_last, NULL);
}

/* ------------------------------------------------------ typed objects -- */

static char *g_typed_one, *g_typed_array, *g_typed_tail, *g_typed_large;

static NOINLINE void typed_setup(const cgc_type *t)
{
    CGC_STORE(&g_typed_one, cgc_malloc_typed(32, t));
    CGC_STORE(&g_typed_array, cgc_malloc_typed(32 * 10, t));
    CGC_STORE(&g_typed_tail, cgc_malloc_typed(32 * 3 + 24, t));
    CGC_STORE(&g_typed_large, cgc_malloc_typed(32 * 2000, t));
    CGC_STORE((void **)(g_typed_one + 16), make_obj(100, 120));
    CGC_STORE((void **)(g_typed_array + 7 * 32 + 16), make_obj(1000, 121));
    CGC_STORE((void **)(g_typed_tail + 3 * 32 + 16), make_obj(33, 122));
    CGC_STORE((void **)(g_typed_large + 1500 * 32 + 16), make_obj(5000, 123));
}

static NOINLINE void case_typed(void)
{
    verdict v;
    verdict_init(&v, "pointer fields of typed objects");
    const size_t off = 16;
    const cgc_type *t = cgc_type_new(32, &off, 1);
    CHECK(t != NULL);
    if (!t)
        return;
    typed_setup(t);
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_obj(&v, c, *(void **)(g_typed_one + 16), 100, 120);
        verify_obj(&v, c, *(void **)(g_typed_array + 7 * 32 + 16), 1000, 121);
        verify_obj(&v, c, *(void **)(g_typed_tail + 3 * 32 + 16), 33, 122);
        verify_obj(&v, c, *(void **)(g_typed_large + 1500 * 32 + 16), 5000, 123);
    }
    verdict_report(&v);
    CGC_STORE(&g_typed_one, NULL);
    CGC_STORE(&g_typed_array, NULL);
    CGC_STORE(&g_typed_tail, NULL);
    CGC_STORE(&g_typed_large, NULL);
}

/* ------------------------------------ a chain through every size class -- */

static void *g_chain;
static const size_t extra_sizes[] = {32769, 40000, 100000, 1u << 20};
#define CHAIN_LEN (CGC_NUM_SIZE_CLASSES - 1 + sizeof extra_sizes / sizeof extra_sizes[0])

static size_t chain_size(size_t i)
{
    if (i < CGC_NUM_SIZE_CLASSES - 1)
        return cgc_class_size[i + 1];
    return extra_sizes[i - (CGC_NUM_SIZE_CLASSES - 1)];
}

/* Node i: size chain_size(i), the next pointer in its last aligned word,
 * the pattern (seed 1000 + i) in the bytes before it. */
static NOINLINE void chain_setup(void)
{
    void *next = NULL;
    for (size_t k = CHAIN_LEN; k-- > 0;) {
        size_t s = chain_size(k);
        char *p = cgc_malloc(s);
        size_t ptr_off = (s / 8 - 1) * 8;
        fill_pattern(p, ptr_off, 1000 + k);
        CGC_STORE((void **)(p + ptr_off), next);
        next = p;
    }
    CGC_STORE(&g_chain, next);
}

static NOINLINE void verify_chain(verdict *v, int c)
{
    char *p = g_chain;
    for (size_t k = 0; k < CHAIN_LEN; k++) {
        size_t s = chain_size(k);
        size_t ptr_off = (s / 8 - 1) * 8;
        if (!p || cgc_base(p) != p || cgc_size(p) < s ||
            check_pattern(p, ptr_off, 1000 + k) != -1) {
            if (!v->bad) {
                v->first_bad = c;
                v->offset = (long)k;
            }
            v->bad++;
            return;
        }
        p = *(char **)(p + ptr_off);
    }
    if (p != NULL)
        v->bad++;
}

static NOINLINE void case_chain(void)
{
    verdict v;
    verdict_init(&v, "chain through every size class (offset = node)");
    chain_setup();
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_chain(&v, c);
    }
    verdict_report(&v);
    CGC_STORE(&g_chain, NULL);
}

/* -------------------------------------- calloc'd and realloc'd holders -- */

static void **g_holder;

static NOINLINE void holder_setup(void)
{
    void **h = cgc_calloc(8, sizeof(void *));
    CGC_STORE(&h[5], make_obj(640, 124));
    h = cgc_realloc(h, 100000); /* moves to a large object */
    CGC_STORE(&g_holder, h);
}

static NOINLINE void case_holder(void)
{
    verdict v;
    verdict_init(&v, "calloc'd object grown by realloc");
    holder_setup();
    scrub_stack();
    for (int c = 0; c < cycles; c++) {
        one_cycle();
        verify_obj(&v, c, g_holder[5], 640, 124);
    }
    verdict_report(&v);
    CGC_STORE(&g_holder, NULL);
}

/* Words that would pass a heap-range test whose empty range (before the
 * first arena: bounds UINTPTR_MAX and 0) wrapped around; the marking loops
 * then looked them up far outside the address map. */
static volatile uintptr_t all_ones[4] = {UINTPTR_MAX, UINTPTR_MAX, UINTPTR_MAX - 8, (uintptr_t)1 << 63};

/* Collections before anything is allocated: the roots are scanned against
 * an empty heap, in both modes. */
static void case_empty_heap(void)
{
    cgc_stats st;
    cgc_read_stats(&st);
    CHECKF(st.heap_sys == 0, "heap_sys %llu before the first allocation", (unsigned long long)st.heap_sys);
    cgc_collect();
    cgc_set_stoptheworld(1);
    cgc_collect();
    cgc_set_stoptheworld(0);
    CHECK(all_ones[0] == UINTPTR_MAX);
}

int main(int argc, char **argv)
{
    cgc_init();
    case_empty_heap();
    cycles = (int)scaled(50, 50, 400);
    churn_bytes = (size_t)scaled(256 << 10, 96 << 10, 1 << 20);
    const char *dlpath = argc > 1 ? argv[1] : CGC_TEST_DLROOT_PATH;

    case_volatile_local();
    case_register();
    case_deep_stack();
    run_blocked_case(0, "stack of a thread blocked in read()");
    run_blocked_case(1, "_Thread_local of a thread blocked in read()");
    case_spinning_thread();
    case_main_tls();
    case_globals();
    case_dlopen(dlpath);
    case_add_roots();
    case_interior();
    case_typed();
    case_chain();
    case_holder();

    /* the same in stop-the-world mode, briefly */
    cgc_set_stoptheworld(1);
    int saved = cycles;
    cycles = saved / 5 > 5 ? saved / 5 : 5;
    case_register();
    run_blocked_case(0, "stack of a blocked thread (stop-the-world)");
    case_spinning_thread();
    case_typed();
    case_chain();
    cycles = saved;
    cgc_set_stoptheworld(0);

    return finish("test_roots");
}
