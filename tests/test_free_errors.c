/*
 * test_free_errors.c — misuse that would corrupt the heap must abort with a
 * message naming the pointer (or the call) and the reason: cgc_free of
 * memory cgc does not own, of interior pointers, double frees; unbalanced
 * cgc_thread_detach, cgc_enable and cgc_blocking_end.
 *
 * Each case runs in a forked child (run_death).  Set CGC_TEST_VERBOSE=1 to
 * see the messages.
 */
#include "check.h"

#include <pthread.h>

static void *victim;         /* the pointer the child passes to cgc_free */
static int global_target[4]; /* a global cgc does not own */

static void show(const char *what)
{
    if (env_set("CGC_TEST_VERBOSE"))
        fprintf(stderr, "--- %s:\n%s", what, death_output());
}

/* The child must name `p` in hex (as %p prints it) and say something
 * containing `word`. */
static void expect_death(void (*fn)(void), const void *p, const char *word,
                         const char *what)
{
    char hex[32];
    snprintf(hex, sizeof hex, "%lx", (unsigned long)(uintptr_t)p);
    if (run_death_at(fn, hex, what, __FILE__, __LINE__)) {
        CHECKF(contains_nocase(death_output(), word),
               "%s: message does not mention \"%s\":\n%s", what, word, death_output());
    }
    show(what);
}

static void free_victim(void) { cgc_free(victim); }

static void free_victim_twice(void)
{
    cgc_free(victim);
    cgc_free(victim);
}

static void detach_twice(void)
{
    cgc_thread_detach();
    cgc_thread_detach();
}

static void *detach_twice_thread(void *arg)
{
    (void)arg;
    detach_twice();
    return NULL;
}

static void detach_twice_in_thread(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, detach_twice_thread, NULL) == 0)
        pthread_join(t, NULL);
}

static void enable_unbalanced(void) { cgc_enable(); }

static void enable_twice(void)
{
    cgc_disable();
    cgc_enable();
    cgc_enable();
}

static void blocking_end_unbalanced(void) { cgc_blocking_end(); }

static void blocking_end_twice(void)
{
    cgc_blocking_begin();
    cgc_blocking_end();
    cgc_blocking_end();
}

static NOINLINE void stack_case(void)
{
    char local[64];
    memset(local, 0, sizeof local);
    victim = local + 16;
    expect_death(free_victim, victim, "free", "free(stack address)");
    __asm__ volatile("" : : "r"(local) : "memory");
}

/* Finds objects the collector really reclaimed: allocates many, hides them,
 * collects, and returns one whose cgc_base is now NULL (or NULL if none). */
static NOINLINE void *reclaimed_object(void)
{
    enum { N = 2000 };
    uintptr_t *hidden = malloc(N * sizeof *hidden);
    for (int i = 0; i < N; i++)
        hidden[i] = HIDE(cgc_malloc(256));
    scrub_stack();
    cgc_collect();
    cgc_collect();
    void *found = NULL;
    for (int i = N - 1; i >= 0 && !found; i--)
        if (cgc_base(UNHIDE(hidden[i])) == NULL)
            found = UNHIDE(hidden[i]);
    free(hidden);
    return found;
}

int main(void)
{
    cgc_init();

    /* not owned by cgc */
    stack_case();
    victim = malloc(64);
    expect_death(free_victim, victim, "free", "free(libc malloc pointer)");
    free(victim);
    victim = &global_target[1];
    expect_death(free_victim, victim, "free", "free(global)");

    /* interior pointers */
    char *small = cgc_malloc(64);
    victim = small + 16;
    expect_death(free_victim, victim, "interior", "free(interior of small object)");
    char *small2 = cgc_malloc(1000);
    victim = small2 + 999;
    expect_death(free_victim, victim, "interior", "free(last byte of small object)");
    char *large = cgc_malloc(200000);
    victim = large + 8192;
    expect_death(free_victim, victim, "interior", "free(interior of large object)");
    victim = large + 1;
    expect_death(free_victim, victim, "interior", "free(large object + 1)");

    /* double frees */
    victim = cgc_malloc(48);
    expect_death(free_victim_twice, victim, "free", "double free (small)");
    victim = cgc_malloc(100000);
    expect_death(free_victim_twice, victim, "free", "double free (large)");
    victim = cgc_malloc_atomic(4096);
    expect_death(free_victim_twice, victim, "free", "double free (atomic)");

    /* an object the collector already reclaimed */
    victim = reclaimed_object();
    CHECKF(victim != NULL, "no object was reclaimed");
    if (victim)
        expect_death(free_victim, victim, "free", "free(reclaimed object)");

    /* unbalanced thread and control calls */
    if (run_death(detach_twice, "detach"))
        show("detach twice");
    if (run_death(detach_twice_in_thread, "detach"))
        show("detach twice in a thread");
    if (run_death(enable_unbalanced, "enable"))
        show("enable without disable");
    if (run_death(enable_twice, "enable"))
        show("enable twice after one disable");
    if (run_death(blocking_end_unbalanced, "blocking"))
        show("blocking_end without begin");
    if (run_death(blocking_end_twice, "blocking"))
        show("blocking_end twice");

    /* the parent is unharmed and the legitimate calls work */
    char *p = cgc_malloc(64);
    cgc_free(p);
    CHECK(cgc_base(p) == NULL);
    char *q = cgc_malloc(300000);
    cgc_free(q);
    CHECK(cgc_base(q) == NULL);
    cgc_free(NULL);
    cgc_free(cgc_malloc_atomic(3));
    CHECK(small[0] == 0 && large[0] == 0);
    cgc_collect();
    CHECK(cgc_base(small) == small && cgc_base(large) == large);
    __asm__ volatile("" : : "r"(small), "r"(small2), "r"(large) : "memory");
    return finish("test_free_errors");
}
