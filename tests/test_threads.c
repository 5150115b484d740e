/*
 * test_threads.c — threads: automatic registration through pthread_create,
 * every way of exiting (return, pthread_exit from a nested call,
 * cancellation, after cgc_thread_detach), cgc_blocking_begin/end, a thread
 * that never allocates but holds a pointer, threads with their own stacks,
 * threads that come and go while collections run, and fork() in a
 * multithreaded program.
 */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

static uint32_t base_threads; /* registered threads before the test starts */

static uint32_t num_threads(void) { return get_stats().num_threads; }

/* Waits (up to 10 s) until the registered thread count is `want`. */
static uint32_t wait_threads(uint32_t want)
{
    uint32_t n = num_threads();
    for (int i = 0; i < 1000 && n != want; i++) {
        sleep_ms(10);
        n = num_threads();
    }
    return n;
}

/* ------------------------------------------------ workers and exits -- */

typedef struct tnode {
    struct tnode *next;
    uint32_t len;
    uint32_t seed;
    unsigned char data[];
} tnode;

static tnode *make_list(uint64_t *r, int n)
{
    tnode *head = NULL;
    for (int i = 0; i < n; i++) {
        uint32_t len = (uint32_t)(8 + rng_below(r, 400));
        tnode *x = cgc_malloc(sizeof(tnode) + len);
        if (!x)
            abort();
        x->len = len;
        x->seed = (uint32_t)rng_next(r);
        fill_pattern(x->data, len, x->seed);
        CGC_STORE(&x->next, head);
        head = x;
    }
    return head;
}

static int list_ok(const tnode *x)
{
    for (; x; x = x->next)
        if (cgc_base(x) != x || check_pattern(x->data, x->len, x->seed) != -1)
            return 0;
    return 1;
}

enum { WORKERS = 8, SLOTS = 64 };

static int worker_iters;
static atomic_int started, go, finished;
static atomic_int cancel_ready;
static int worker_bad[WORKERS];

static void nested_exit(int depth);
static void (*volatile nested_exit_fn)(int) = nested_exit;

/* pthread_exit from a few calls deep */
static NOINLINE void nested_exit(int depth)
{
    if (depth > 0)
        nested_exit_fn(depth - 1);
    pthread_exit(NULL);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t r = 0x100 + (uint64_t)id;
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&go))
        sched_yield();
    tnode **slots = cgc_malloc(SLOTS * sizeof(tnode *));
    for (int i = 0; i < worker_iters; i++) {
        int k = (int)rng_below(&r, SLOTS);
        CGC_STORE(&slots[k], make_list(&r, 1 + (int)rng_below(&r, 16)));
        int v = (int)rng_below(&r, SLOTS);
        if (!list_ok(slots[v]))
            worker_bad[id]++;
    }
    for (int k = 0; k < SLOTS; k++)
        if (!list_ok(slots[k]))
            worker_bad[id]++;
    atomic_fetch_add(&finished, 1);
    switch (id % 8) {
    case 2:
    case 3:
        nested_exit(3);
        break;
    case 4: /* waits to be cancelled; pthread_testcancel is the only
             * cancellation point it reaches */
        atomic_store(&cancel_ready, 1);
        for (;;) {
            pthread_testcancel();
            sched_yield();
        }
    case 5:
        cgc_thread_detach(); /* no cgc calls after this */
        return NULL;
    case 7:
        pthread_exit(NULL);
    default:
        break;
    }
    return NULL;
}

static void test_workers(void)
{
    worker_iters = (int)scaled(20000, 3000, 200000);
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
    while (atomic_load(&started) < WORKERS)
        sched_yield();
    uint32_t n = num_threads();
    CHECKF(n == base_threads + WORKERS, "%u threads registered, expected %u", n,
           base_threads + WORKERS);
    atomic_store(&go, 1);
    uint64_t r = 77;
    int cancelled = 0, collections = 0;
    while (atomic_load(&finished) < WORKERS || !cancelled) {
        cgc_collect();
        collections++;
        churn(64 << 10, &r);
        if (!cancelled && atomic_load(&cancel_ready)) {
            CHECK(pthread_cancel(t[4]) == 0);
            cancelled = 1;
        }
    }
    for (int i = 0; i < WORKERS; i++) {
        void *ret = NULL;
        CHECK(pthread_join(t[i], &ret) == 0);
        if (i == 4)
            CHECK(ret == PTHREAD_CANCELED);
    }
    for (int i = 0; i < WORKERS; i++)
        CHECKF(worker_bad[i] == 0, "worker %d: %d damaged lists", i, worker_bad[i]);
    n = num_threads();
    CHECKF(n == base_threads, "after join: %u threads registered, expected %u", n,
           base_threads);
    printf("workers: %d collections while they ran\n", collections);
}

/* ------------------------------------------------- blocking regions -- */

static atomic_int blocking_done;
static int blocking_bad;

static void *blocking_thread(void *arg)
{
    (void)arg;
    uint64_t r = 5;
    tnode *mine = make_list(&r, 50);
    int rounds = (int)scaled(20, 8, 100);
    for (int i = 0; i < rounds; i++) {
        cgc_blocking_begin();
        if (i % 3 == 0)
            cgc_blocking_begin(); /* nested */
        struct timespec ts = {0, 15 * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        if (i % 3 == 0)
            cgc_blocking_end();
        cgc_blocking_end();
        if (!list_ok(mine))
            blocking_bad++;
        if (i % 4 == 0)
            CGC_STORE(&mine->next, make_list(&r, 10)); /* work between regions */
    }
    atomic_store(&blocking_done, 1);
    return NULL;
}

static void test_blocking(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, blocking_thread, NULL) == 0);
    uint64_t r = 9;
    int cycles = 0;
    while (!atomic_load(&blocking_done)) {
        churn(128 << 10, &r);
        cgc_collect();
        cycles++;
    }
    pthread_join(t, NULL);
    CHECKF(blocking_bad == 0, "blocking thread: %d damaged checks", blocking_bad);
    CHECK(cycles > 0);
}

/* ------------------------ a thread that never allocates holds a pointer -- */

typedef struct {
    void *ptr;
    atomic_int state; /* 1: ptr set; 2: taken; 3: verify now; 4: done */
    int ok;
    size_t size;
} mailbox;

static void *holder_thread(void *arg)
{
    mailbox *mb = arg;
    while (atomic_load(&mb->state) != 1)
        sched_yield();
    char *mine = mb->ptr;
    atomic_store(&mb->state, 2);
    while (atomic_load(&mb->state) != 3)
        sched_yield();
    mb->ok = cgc_base(mine) == mine && check_pattern(mine, mb->size, 4242) == -1;
    atomic_store(&mb->state, 4);
    return NULL;
}

static NOINLINE uintptr_t post(mailbox *mb)
{
    char *obj = cgc_malloc(mb->size);
    fill_pattern(obj, mb->size, 4242);
    CGC_STORE(&mb->ptr, (void *)obj);
    return HIDE(obj);
}

static NOINLINE int peek(uintptr_t h, size_t size)
{
    const char *p = UNHIDE(h);
    return cgc_base(p) == p && check_pattern(p, size, 4242) == -1;
}

static void test_non_allocating_holder(void)
{
    mailbox *mb = cgc_malloc(sizeof *mb);
    mb->size = 12345;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, holder_thread, mb) == 0);
    sleep_ms(5);
    uintptr_t h = post(mb); /* the object exists only after the thread started */
    atomic_store(&mb->state, 1);
    while (atomic_load(&mb->state) != 2)
        sched_yield();
    CGC_STORE(&mb->ptr, NULL);
    scrub_stack();
    uint64_t r = 11;
    int bad = 0;
    int cycles = (int)scaled(50, 30, 300);
    for (int i = 0; i < cycles; i++) {
        churn(128 << 10, &r);
        cgc_collect();
        bad += !peek(h, mb->size);
    }
    atomic_store(&mb->state, 3);
    pthread_join(t, NULL);
    CHECKF(bad == 0, "object held by a non-allocating thread damaged %d times", bad);
    CHECK(mb->ok);
}

/* ---------------------------------- threads on stacks of their own -- */

typedef struct {
    int fd;
    atomic_int ready;
    uintptr_t hidden;
    int ok;
} stack_case;

static void *own_stack_thread(void *arg)
{
    stack_case *sc = arg;
    char *p = cgc_malloc(700);
    fill_pattern(p, 700, 99);
    sc->hidden = HIDE(p);
    atomic_store(&sc->ready, 1);
    char c;
    while (read(sc->fd, &c, 1) < 0 && errno == EINTR) {
    }
    sc->ok = cgc_base(p) == p && check_pattern(p, 700, 99) == -1;
    return NULL;
}

static NOINLINE int peek_pattern_hidden_700(uintptr_t h)
{
    const char *p = UNHIDE(h);
    return cgc_base(p) == p && check_pattern(p, 700, 99) == -1;
}

static void run_own_stack(int mode)
{
    /* mode 0: a small stack size; 1: a stack the program mmaps itself */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    size_t sz = 256 << 10;
    void *stk = NULL;
    if (mode == 0) {
        pthread_attr_setstacksize(&attr, 64 << 10);
    } else {
        stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(stk != MAP_FAILED);
        pthread_attr_setstack(&attr, stk, sz);
    }
    int fds[2];
    CHECK(pipe(fds) == 0);
    stack_case sc;
    memset(&sc, 0, sizeof sc);
    sc.fd = fds[0];
    pthread_t t;
    CHECK(pthread_create(&t, &attr, own_stack_thread, &sc) == 0);
    while (!atomic_load(&sc.ready))
        sched_yield();
    uint64_t r = 13;
    int bad = 0;
    int cycles = (int)scaled(30, 20, 200);
    for (int i = 0; i < cycles; i++) {
        churn(128 << 10, &r);
        cgc_collect();
        bad += !peek_pattern_hidden_700(sc.hidden);
    }
    CHECK(write(fds[1], "x", 1) == 1);
    pthread_join(t, NULL);
    CHECKF(bad == 0 && sc.ok, "own stack mode %d: %d bad checks, thread ok %d", mode, bad,
           sc.ok);
    close(fds[0]);
    close(fds[1]);
    pthread_attr_destroy(&attr);
    if (stk)
        munmap(stk, sz);
}

/* ------------------------------------ threads that come and go -- */

static atomic_int stop_collector;
static atomic_int collector_cycles;

static void *collector_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_collector)) {
        cgc_collect();
        atomic_fetch_add(&collector_cycles, 1);
    }
    return NULL;
}

static atomic_int short_bad;

static void *short_thread(void *arg)
{
    uint64_t r = (uint64_t)(uintptr_t)arg + 1;
    tnode *l = make_list(&r, 20 + (int)rng_below(&r, 40));
    if (!list_ok(l))
        atomic_fetch_add(&short_bad, 1);
    return NULL;
}

static void test_churning_threads(void)
{
    atomic_store(&stop_collector, 0);
    pthread_t coll;
    CHECK(pthread_create(&coll, NULL, collector_thread, NULL) == 0);
    int n = (int)scaled(200, 60, 2000);
    for (int i = 0; i < n; i += 4) {
        pthread_t t[4];
        for (int k = 0; k < 4; k++)
            CHECK(pthread_create(&t[k], NULL, short_thread, (void *)(intptr_t)(i + k)) == 0);
        for (int k = 0; k < 4; k++)
            pthread_join(t[k], NULL);
    }
    /* detached ones, exiting whenever */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 20; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, &attr, short_thread, (void *)(intptr_t)(1000 + i)) == 0);
    }
    pthread_attr_destroy(&attr);
    uint32_t left = wait_threads(base_threads + 1);
    atomic_store(&stop_collector, 1);
    pthread_join(coll, NULL);
    CHECKF(left == base_threads + 1, "%u threads registered, expected %u", left,
           base_threads + 1);
    CHECK(atomic_load(&short_bad) == 0);
    CHECK(atomic_load(&collector_cycles) > 0);
    CHECK(wait_threads(base_threads) == base_threads);
    printf("short threads: %d joined + 20 detached, %d collections meanwhile\n", n,
           atomic_load(&collector_cycles));
}

/* ---------------------------------------------- attach and detach -- */

static void *attach_thread(void *arg)
{
    int *res = arg;
    uint64_t r = 3;
    res[0] = cgc_thread_attach(); /* 1: registered by pthread_create */
    cgc_thread_detach();
    res[1] = cgc_thread_attach(); /* 0: newly attached */
    tnode *l = make_list(&r, 30);
    cgc_collect();
    res[2] = list_ok(l);
    return NULL;
}

static void test_attach_detach(void)
{
    int res[3] = {-1, -1, -1};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, attach_thread, res) == 0);
    pthread_join(t, NULL);
    CHECK(res[0] == 1);
    CHECK(res[1] == 0);
    CHECK(res[2] == 1);
    CHECK(wait_threads(base_threads) == base_threads);
}

/* ----------------------------------------------------------- fork -- */

static atomic_int stop_mutators;

static void *mutator_thread(void *arg)
{
    uint64_t r = (uint64_t)(uintptr_t)arg;
    tnode **slots = cgc_malloc(16 * sizeof(tnode *));
    while (!atomic_load(&stop_mutators)) {
        int k = (int)rng_below(&r, 16);
        CGC_STORE(&slots[k], make_list(&r, 8));
    }
    return NULL;
}

static void *child_thread(void *arg)
{
    uint64_t r = 21;
    tnode *l = make_list(&r, 100);
    cgc_collect();
    *(int *)arg = list_ok(l);
    return NULL;
}

static NOINLINE int child_main(void)
{
    alarm(60);
    uint64_t r = 17;
    tnode *l = make_list(&r, 5000);
#if defined(__SANITIZE_ADDRESS__)
    /* The sanitizer runtime of GCC 12 takes no lock of its own allocator or
     * thread registry around fork(), so a child of a multithreaded parent
     * can hang in malloc or pthread_create when another thread held them.
     * Under ASan the child only allocates and verifies; the full child (a
     * collection, a new thread) runs in the plain build. */
    return list_ok(l) && num_threads() == 1;
#endif
    for (int i = 0; i < 3; i++) {
        churn(1 << 20, &r);
        cgc_collect();
    }
    int ok = list_ok(l);
    if (!ok)
        fprintf(stderr, "fork child: list damaged\n");
    uint32_t n = num_threads();
    if (n != 1) {
        fprintf(stderr, "fork child: %u threads registered\n", n);
        ok = 0;
    }
    int tok = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, &tok) != 0 || pthread_join(t, NULL) != 0 ||
        !tok) {
        fprintf(stderr, "fork child: thread failed\n");
        ok = 0;
    }
    return ok;
}

static void test_fork(void)
{
    atomic_store(&stop_mutators, 0);
    atomic_store(&stop_collector, 0);
    pthread_t m[2], coll;
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&m[i], NULL, mutator_thread, (void *)(intptr_t)(i + 50)) == 0);
    CHECK(pthread_create(&coll, NULL, collector_thread, NULL) == 0);
    int forks = (int)scaled(8, 4, 50);
    for (int i = 0; i < forks; i++) {
        sleep_ms(5 + 7 * (i % 3));
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            _exit(child_main() ? 0 : 1);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "fork %d: child %s %d", i, WIFEXITED(status) ? "exited" : "killed by signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    atomic_store(&stop_mutators, 1);
    atomic_store(&stop_collector, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(m[i], NULL);
    pthread_join(coll, NULL);
    /* the parent goes on */
    uint64_t r = 23;
    tnode *l = make_list(&r, 100);
    cgc_collect();
    CHECK(list_ok(l));
}

/* ------------------------------------------------ return values -- */

/* A thread's return value, once the thread has exited, is held only by the
 * C library until pthread_join: cgc keeps it as a root until then. */
static void *returning_thread(void *arg)
{
    uint64_t r = (uint64_t)(uintptr_t)arg;
    tnode *l = make_list(&r, 200);
    if ((uintptr_t)arg & 1)
        pthread_exit(l);
    return l;
}

static void test_exit_values(void)
{
    enum { N = 4 };
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        CHECK(pthread_create(&th[i], NULL, returning_thread, (void *)(uintptr_t)(100 + i)) == 0);
    /* every thread has exited and unregistered: no stack holds the lists */
    CHECK(wait_threads(base_threads) == base_threads);
    uint64_t r = 5;
    churn_cycles(4, 4 << 20, &r); /* freed lists would be handed out again and overwritten */
    for (int i = 0; i < N; i++) {
        void *v = NULL;
        int err;
        if (i == 2) {
            struct timespec far;
            clock_gettime(CLOCK_REALTIME, &far);
            far.tv_sec += 60;
            err = pthread_timedjoin_np(th[i], &v, &far);
        } else {
            err = pthread_join(th[i], &v);
        }
        CHECKF(err == 0, "join %d: %s", i, strerror(err));
        CHECKF(v && list_ok(v), "thread %d's return value was freed before the join", i);
    }
    /* a detached thread's value is nobody's: dropped, and the join still
     * fails as the C library says */
    pthread_t d;
    CHECK(pthread_create(&d, NULL, returning_thread, (void *)(uintptr_t)200) == 0);
    CHECK(pthread_detach(d) == 0);
    CHECK(wait_threads(base_threads) == base_threads);
    churn_cycles(1, 1 << 20, &r);
}

/* ------------------------------------ collections back to back -- */

/* A thread that calls cgc_collect in a loop must not starve the others.
 * With the world stopped again as soon as it was released, a sleeping
 * thread woke into its stop handler, was stopped again before it got back
 * into nanosleep, and its sleep never advanced: test_churning_threads hung
 * in stop-the-world mode on most runs.  Here a thread sleeps 40 x 1 ms
 * while the main thread collects until it is done; without a gap between
 * stops the sleeper never finishes (the 60 s deadline is a hang detector,
 * not a speed check: it takes well under a second). */
static atomic_int sleeper_done;

static void *sleeper_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 40; i++)
        sleep_ms(1);
    atomic_store(&sleeper_done, 1);
    return NULL;
}

static void test_back_to_back_collections(void)
{
    atomic_store(&sleeper_done, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, sleeper_thread, NULL) == 0);
    double t0 = now_sec();
    int cycles = 0;
    while (!atomic_load(&sleeper_done) && now_sec() - t0 < 60) {
        cgc_collect();
        cycles++;
    }
    CHECKF(atomic_load(&sleeper_done), "a sleeping thread made no progress in 60 s of "
           "back-to-back collections (%d cycles)", cycles);
    pthread_join(t, NULL);
    printf("back to back: 40 sleeps of 1 ms done during %d collections, %.2f s\n", cycles,
           now_sec() - t0);
}

int main(void)
{
    cgc_init();
    base_threads = num_threads();
    CHECKF(base_threads == 1, "%u threads registered at start", base_threads);
    test_workers();
    test_blocking();
    test_non_allocating_holder();
    run_own_stack(0);
    run_own_stack(1);
    test_attach_detach();
    test_back_to_back_collections();
    test_churning_threads();
    test_fork();
    test_exit_values();
    CHECK(wait_threads(base_threads) == base_threads);
    return finish("test_threads");
}
