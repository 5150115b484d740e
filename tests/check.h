/*
 * check.h — the tiny harness shared by cgc's tests.
 *
 *   CHECK(cond)            counts a pass, or prints file:line and the
 *                          expression and counts a failure (thread-safe).
 *   CHECKF(cond, fmt, ...) the same, with a printf-style explanation.
 *   run_death(fn, text)    forks; the child runs fn with its stderr captured
 *                          through a pipe; passes when the child died of
 *                          SIGABRT and its stderr contains `text`.
 *   finish(name)           prints "name: N checks passed" (or the failures)
 *                          and returns the exit code for main.
 *
 * Also: test scaling (quick under sanitizers or CGC_TEST_QUICK, long with
 * CGC_SOAK=1), pointer hiding, stack scrubbing, a PRNG, garbage churn.
 */
#ifndef CGC_TEST_CHECK_H
#define CGC_TEST_CHECK_H

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "cgc.h"

#define TEST_UNUSED __attribute__((unused))
#define NOINLINE __attribute__((noinline))

/* ------------------------------------------------------------ checks -- */

static unsigned long check_passes_;
static unsigned long check_failures_;

#define CHECK(cond) CHECK_IMPL_(cond, fputc('\n', stderr))

#define CHECKF(cond, ...)                                                    \
    CHECK_IMPL_(cond, (fputs(" -- ", stderr), fprintf(stderr, __VA_ARGS__),  \
                       fputc('\n', stderr)))

#define CHECK_IMPL_(cond, explain)                                           \
    do {                                                                     \
        if (cond) {                                                          \
            __atomic_fetch_add(&check_passes_, 1, __ATOMIC_RELAXED);         \
        } else {                                                             \
            unsigned long n_ =                                               \
                __atomic_add_fetch(&check_failures_, 1, __ATOMIC_RELAXED);   \
            if (n_ <= 100) {                                                 \
                flockfile(stderr);                                           \
                fprintf(stderr, "%s:%d: CHECK failed: %s", __FILE__,         \
                        __LINE__, #cond);                                    \
                explain;                                                     \
                funlockfile(stderr);                                         \
            }                                                                \
        }                                                                    \
    } while (0)

static TEST_UNUSED unsigned long check_failures(void)
{
    return __atomic_load_n(&check_failures_, __ATOMIC_RELAXED);
}

static TEST_UNUSED int finish(const char *name)
{
    unsigned long ok = __atomic_load_n(&check_passes_, __ATOMIC_RELAXED);
    unsigned long bad = __atomic_load_n(&check_failures_, __ATOMIC_RELAXED);
    if (bad) {
        printf("%s: %lu checks FAILED, %lu passed\n", name, bad, ok);
        fflush(stdout);
        return 1;
    }
    printf("%s: %lu checks passed\n", name, ok);
    fflush(stdout);
    return 0;
}

/* ----------------------------------------------------------- scaling -- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif
#ifndef TEST_SANITIZED
#define TEST_SANITIZED 0
#endif

static TEST_UNUSED int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static TEST_UNUSED int test_quick(void)
{
    return TEST_SANITIZED || env_set("CGC_TEST_QUICK");
}

static TEST_UNUSED int test_soak(void) { return env_set("CGC_SOAK"); }

/* Picks an iteration count: soak wins over quick. */
static TEST_UNUSED long scaled(long normal, long quick, long soak)
{
    if (test_soak())
        return soak;
    return test_quick() ? quick : normal;
}

static TEST_UNUSED double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static TEST_UNUSED void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline TEST_UNUSED void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("pause" ::: "memory");
#else
    __asm__ volatile("" ::: "memory");
#endif
}

/* ------------------------------------------------------------- stats -- */

static TEST_UNUSED cgc_stats get_stats(void)
{
    cgc_stats s;
    memset(&s, 0, sizeof s);
    cgc_read_stats(&s);
    return s;
}

/* Lets the program's threads run until `target` more cycles have completed,
 * `limit` seconds have passed, or *bad (if given) becomes nonzero.  In soak
 * mode, progress(cycles, heap bytes) is called about every 30 s if given.
 * Returns the cycles completed. */
static TEST_UNUSED uint64_t run_cycles(long target, double limit, atomic_ulong *bad,
                                       void (*progress)(uint64_t cycles, uint64_t heap))
{
    cgc_stats s0 = get_stats();
    double t0 = now_sec(), last_print = t0;
    uint64_t cycles = 0;
    for (;;) {
        sleep_ms(20);
        cgc_stats s = get_stats();
        cycles = s.num_gc - s0.num_gc;
        double now = now_sec();
        if (cycles >= (uint64_t)target || now - t0 > limit || (bad && atomic_load(bad) > 0))
            return cycles;
        if (progress && test_soak() && now - last_print > 30) {
            progress(cycles, s.heap_alloc);
            last_print = now;
        }
    }
}

/* -------------------------------------------------- pointers, memory -- */

/* A pointer XOR-ed with this keeps nothing alive. */
#define HIDE_KEY ((uintptr_t)0xA5F0C3965A0F3C69ull)
#define HIDE(p) ((uintptr_t)(p) ^ HIDE_KEY)
#define UNHIDE(h) ((void *)((uintptr_t)(h) ^ HIDE_KEY))

/* Overwrites a good part of the dead stack below the caller, so that stale
 * copies of pointers left there by earlier calls do not act as roots. */
static NOINLINE TEST_UNUSED void scrub_stack(void)
{
    char buf[48 * 1024];
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

/* xorshift64*: a small per-thread PRNG. */
static TEST_UNUSED uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static TEST_UNUSED uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return n ? rng_next(s) % n : 0;
}

/* A byte pattern determined by (seed, i), for survival checks. */
static TEST_UNUSED unsigned char pattern_byte(uint64_t seed, size_t i)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (unsigned char)(x | 1); /* never 0: a zeroed byte is detected */
}

static TEST_UNUSED void fill_pattern(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pattern_byte(seed, i);
}

/* Index of the first byte that differs from the pattern, or -1. */
static TEST_UNUSED long check_pattern(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_byte(seed, i))
            return (long)i;
    return -1;
}

static TEST_UNUSED int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Allocates about `bytes` of garbage of mixed sizes and kinds, writing a
 * 0x5A fill into it so that a live object handed out again by mistake is
 * overwritten (and detected by check_pattern). */
static NOINLINE TEST_UNUSED void churn(size_t bytes, uint64_t *rng)
{
    static const size_t sizes[] = {8, 16, 24, 40, 64, 100, 200, 512, 1000,
                                   3000, 8200, 20000, 40000};
    void **prev = NULL;
    size_t done = 0, links = 0;
    while (done < bytes) {
        size_t sz = sizes[rng_below(rng, sizeof sizes / sizeof sizes[0])];
        if (sz < 16)
            sz = 16;
        int atomic = rng_below(rng, 4) == 0;
        void **p = atomic ? cgc_malloc_atomic(sz) : cgc_malloc(sz);
        if (!p)
            abort();
        memset(p, 0x5A, sz);
        /* short chains of garbage, so the marker has something to do */
        if (!atomic && rng_below(rng, 2) == 0) {
            CGC_STORE(&p[0], (void *)prev);
            prev = ++links % 64 ? p : NULL;
        }
        done += sz;
    }
    __asm__ volatile("" : : "r"(prev) : "memory");
}

/* `cycles` times: some garbage, then a full collection. */
static NOINLINE TEST_UNUSED void churn_cycles(int cycles, size_t bytes_per_cycle,
                                              uint64_t *rng)
{
    for (int i = 0; i < cycles; i++) {
        churn(bytes_per_cycle, rng);
        cgc_collect();
    }
}

/* ------------------------------------------------------- death tests -- */

static char death_output_[16384];

/* What the last run_death child wrote on stderr. */
static TEST_UNUSED const char *death_output(void) { return death_output_; }

static TEST_UNUSED int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return n == 0;
}

/* Runs fn in a forked child with stderr captured; passes (returns 1) when the
 * child is killed by SIGABRT and its stderr contains `expected` (case
 * insensitive).  Prints what went wrong otherwise. */
static TEST_UNUSED int run_death_at(void (*fn)(void), const char *expected,
                                    const char *what, const char *file, int line)
{
    int fds[2];
    death_output_[0] = 0;
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0) {
        CHECKF(0, "pipe: %s", strerror(errno));
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        CHECKF(0, "fork: %s", strerror(errno));
        return 0;
    }
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        alarm(30); /* a hang shows up as SIGALRM, not SIGABRT */
        fn();
        fprintf(stderr, "[death test: function returned]\n");
        fflush(stderr);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        char tmp[1024];
        ssize_t r = read(fds[0], tmp, sizeof tmp);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t room = sizeof death_output_ - 1 - len;
        size_t take = (size_t)r < room ? (size_t)r : room;
        memcpy(death_output_ + len, tmp, take);
        len += take;
    }
    death_output_[len] = 0;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    int found = contains_nocase(death_output_, expected);
    if (!aborted || !found) {
        __atomic_fetch_add(&check_failures_, 1, __ATOMIC_RELAXED);
        fprintf(stderr, "%s:%d: death test %s failed: ", file, line, what);
        if (WIFSIGNALED(status))
            fprintf(stderr, "child killed by signal %d", WTERMSIG(status));
        else
            fprintf(stderr, "child exited with status %d", WEXITSTATUS(status));
        fprintf(stderr, ", expected SIGABRT and \"%s\" in stderr; stderr was:\n%s\n",
                expected, death_output_);
        return 0;
    }
    __atomic_fetch_add(&check_passes_, 1, __ATOMIC_RELAXED);
    return 1;
}

#define run_death(fn, expected) run_death_at((fn), (expected), #fn, __FILE__, __LINE__)

#endif /* CGC_TEST_CHECK_H */
