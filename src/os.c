/*
 * os.c — the operating-system contract: memory mappings, clocks, CPU count,
 * messages.  The only file that knows about mmap and clock ids.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void *cgc__os_reserve(size_t size, size_t align) {
    /* Over-reserve and trim so the result is aligned; MAP_NORESERVE: pages
     * cost nothing until touched, and come zeroed from the kernel. */
    size_t len = size + align;
    if (len < size) return NULL;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t base = (uintptr_t)p;
    uintptr_t aligned = (base + align - 1) & ~(uintptr_t)(align - 1);
    if (aligned > base) munmap(p, aligned - base);
    uintptr_t end = base + len, aend = aligned + size;
    if (end > aend) munmap((void *)aend, end - aend);
    return (void *)aligned;
}

void cgc__os_unmap(void *p, size_t size) { munmap(p, size); }

void cgc__os_release(void *p, size_t size) {
    /* MADV_DONTNEED on private anonymous memory: RSS drops now and the next
     * touch sees zero pages, so released pages need no zeroing. */
    madvise(p, size, MADV_DONTNEED);
}

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
uint64_t cgc__nanotime(void) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t cgc__walltime(void) { return clock_ns(CLOCK_REALTIME); }
uint64_t cgc__thread_cputime(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
uint64_t cgc__process_cputime(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

int cgc__ncpu(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Messages are formatted into a stack buffer and written with one write(2)
 * so that they never allocate (they may be printed with the world stopped). */
static void vmessage(const char *prefix, const char *fmt, va_list ap) {
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s", prefix);
    if (n < 0) n = 0;
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}

void cgc__fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage("cgc: fatal error: ", fmt, ap);
    va_end(ap);
    abort();
}

void cgc__warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage("cgc: warning: ", fmt, ap);
    va_end(ap);
}

void cgc__printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage("", fmt, ap);
    va_end(ap);
}

/* Adaptive: a thread that finds the lock taken spins a little before it
 * sleeps.  cgc's locks guard a few list operations, and a sleep and its
 * wakeup cost 30 us and more on a virtual machine, where the woken
 * thread also preempts whichever thread runs on its CPU: an allocating
 * thread sweeping on demand beside the background sweeper, both on one
 * class, slept 16 times in one refill with plain mutexes (0.5 ms). */
void cgc__lock_init(cgc_lock *l) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(l, &a);
    pthread_mutexattr_destroy(&a);
}

/* The calling thread asks the kernel for a time slice of ns (0: the
 * default), for example a short one (Linux 6.6+
 * EEVDF: sched_attr.sched_runtime of a SCHED_OTHER thread, no privilege
 * needed; 6.12+ lets a woken thread with a shorter slice preempt at once).
 * For the collector's threads that wake, do a little and sleep again:
 * with the default slice a woken coordinator waited for the running
 * program thread's slice to end, up to a 4 ms scheduler tick, at each of
 * a cycle's handshakes whenever the program kept every CPU busy.
 * Older kernels refuse the call or ignore the field; nothing changes. */
void cgc__thread_set_slice(uint64_t ns) {
    struct {
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t priority;
        uint64_t runtime, deadline, period;
    } attr = {.size = 48, .policy = 0 /* SCHED_OTHER */, .runtime = ns};
    _Static_assert(sizeof attr == 48, "struct sched_attr, first version");
#ifdef SYS_sched_setattr
    syscall(SYS_sched_setattr, 0, &attr, 0);
#endif
}
