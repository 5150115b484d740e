/*
 * threads.c — the thread registry and the handshakes that stop threads.
 *
 * Registration: threads made with pthread_create are registered before the
 * user's start routine runs (cgc interposes pthread_create and finds the
 * real one with dlsym(RTLD_NEXT)); any other thread registers on its first
 * cgc call or with cgc_thread_attach.  A pthread key's destructor
 * unregisters a thread on every exit path (return, pthread_exit,
 * cancellation).
 *
 * Handshake: the collector sets t->hs = HS_REQUEST and sends the suspend
 * signal.  The handler, unless the thread is inside cgc (then it only
 * notes stop_pending and the thread answers when it leaves cgc), saves the
 * interrupted registers and stack pointer, sets HS_PARKED and waits on a
 * futex (one word for all parked threads) until the collector sets
 * HS_NONE and bumps the word.  A thread in a blocking region is
 * never signalled: the collector moves its state BLOCKING -> BLOCKING_HELD,
 * reads the stack saved at cgc_blocking_begin, and moves it back;
 * cgc_blocking_end waits while it is held.
 *
 * Safepoint jobs (the concurrent stack scan, the ragged barrier): the
 * collector posts a job in t->sp_req and sets stop_pending; the thread,
 * at its next outermost leave from cgc, claims the job (CAS), does it
 * (flush its barrier buffer, scan its own stack as park_called would
 * present it) and marks it done.  A job not claimed in time is withdrawn
 * by the same CAS and the thread held by signal instead.  A thread is never
 * both held and running a job: the collector holds it only after
 * withdrawing the job or seeing it done.
 *
 * Lock rule: the registry lock is held by the collector across a stop, so
 * a thread only ever waits for it while outside cgc (in_cgc == 0), where it
 * can be stopped.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

enum { HS_NONE = 0, HS_REQUEST = 1, HS_PARKED = 2 };
/* t->sp_req: no job; posted by the collector; taken by the thread; done */
enum { SP_NONE = 0, SP_PENDING, SP_CLAIMED, SP_DONE };

__thread cgc_thread *cgc__self __attribute__((tls_model("initial-exec")));
cgc_thread *cgc__threads;
atomic_u32 cgc__nthreads;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static cgc_thread *free_threads;
static pthread_key_t exit_key;
static int suspend_signal;
static size_t tls_static_size;

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static pthread_create_fn real_pthread_create;

/* A started thread not yet registered: its argument is a root (scanned at
 * mark termination) until the new thread holds it on its own stack. */
typedef struct pending_start {
    struct pending_start *next, *prev;
    void *(*fn)(void *);
    void *arg;
} pending_start;
static pending_start *pending_starts; /* under registry_lock */

/* A joinable thread's return value, from its exit until it is joined (or
 * detached): a root.  Once the thread has unregistered, the C library
 * holds the value where no scan looks, and a collection in between would
 * free what pthread_join then returns. */
typedef struct exit_value {
    struct exit_value *next;
    pthread_t thread;
    void *value;
} exit_value;
static exit_value *exit_values; /* under registry_lock */

static long futex(_Atomic int *addr, int op, int val) {
    return syscall(SYS_futex, (int *)addr, op, val, NULL, NULL, 0);
}
static void futex_wait(_Atomic int *addr, int val) { futex(addr, FUTEX_WAIT_PRIVATE, val); }
static void futex_wake(_Atomic int *addr) { futex(addr, FUTEX_WAKE_PRIVATE, INT32_MAX); }

void cgc__threads_lock(void) { pthread_mutex_lock(&registry_lock); }
void cgc__threads_unlock(void) { pthread_mutex_unlock(&registry_lock); }

/* --------------------------------------------------------- handshake -- */

/* Per-thread handshake word, kept beside the struct's other atomics. */
#define HS(t) (&(t)->hs)

/* x86-64's callee-saved registers: rbx, rbp, r12-r15 (the blocking entry
 * below stores them; this file is the one place that knows the register
 * file). */
#define CALLEE_SAVED 6

/* The stack pointer of a frame below every frame of the caller. */
static NOINLINE uintptr_t deeper_sp(void) {
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
    return sp;
}

/* Interrupted by the signal: every register as the kernel saved it (in
 * the signal frame on this stack, and copied here). */
static NOINLINE void save_signal_context(cgc_thread *t, ucontext_t *uc) {
    for (int i = 0; i < NGREG && i < 32; i++) t->saved_regs[i] = (uintptr_t)uc->uc_mcontext.gregs[i];
    /* the interrupted code may keep data in the 128-byte red zone */
    t->saved_sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP] - 128;
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    /* on the thread's own stack the handler frame is below the red zone;
     * on an alternate signal stack, scan from the interrupted sp only */
    if (here < t->saved_sp && here >= t->stack_lo) t->saved_sp = here;
}

/* Parked threads sleep on one futex word, which the collector bumps once
 * per release: one FUTEX_WAKE lets the whole world go.  Waking thread
 * after thread, the collector was preempted by the first one it woke on
 * its own CPU and the others stayed parked until it ran again, on this
 * 2-CPU machine up to a 4 ms scheduler tick later while the other CPU sat
 * idle (churn's sweep terminations of 3-4 ms). */
static _Atomic int release_gen;

static void park_wait(cgc_thread *t) {
    /* release: the saved context is visible to the collector that sees
     * HS_PARKED (acquire in wait_parked) */
    atomic_store_explicit(HS(t), HS_PARKED, RELEASE);
    futex_wake(HS(t));
    for (;;) {
        /* acquire pairs with the release increment in release_parked: a
         * thread that reads the new generation reads HS_NONE below; one
         * that reads the old one sleeps only if the word still holds it */
        int gen = atomic_load_explicit(&release_gen, ACQUIRE);
        if (atomic_load_explicit(HS(t), ACQUIRE) != HS_PARKED) break;
        futex_wait(&release_gen, gen);
    }
}

/* Called (a deferred handshake): only the callee-saved registers can hold
 * the callers' values.  They are stored into the thread's saved_regs
 * (scanned with its stack) by an explicit asm, whatever the compiler makes
 * of this frame.  (Relying on __builtin_unwind_init to spill them into this
 * frame was not enough: GCC then turned the call of park_wait into a tail
 * call, popping the spilled registers before the wait, and park_wait's
 * frame overwrote them — callers' pointers held only in r12-r15 were lost
 * whenever no frame between the caller and here had saved them.  The
 * shallow allocation fast path exposed it; test_threads in stop-the-world
 * mode caught it.)  The empty asm after park_wait keeps this frame, and
 * the registers' copies in it, alive until the wait is over. */
#define SAVE_CALLED_CONTEXT(t)                                                  \
    do {                                                                        \
        __builtin_unwind_init();                                                \
        memset((t)->saved_regs, 0, sizeof(t)->saved_regs);                      \
        uintptr_t *r_ = (t)->saved_regs;                                        \
        __asm__ volatile("movq %%rbx, 0(%0)\n\t"                                \
                         "movq %%rbp, 8(%0)\n\t"                                \
                         "movq %%r12, 16(%0)\n\t"                               \
                         "movq %%r13, 24(%0)\n\t"                               \
                         "movq %%r14, 32(%0)\n\t"                               \
                         "movq %%r15, 40(%0)"                                   \
                         :                                                      \
                         : "r"(r_)                                              \
                         : "memory");                                           \
        (t)->saved_sp = deeper_sp();                                            \
    } while (0)

static NOINLINE void park_called(cgc_thread *t) {
    SAVE_CALLED_CONTEXT(t);
    t->parked_in_handler = false;
    park_wait(t);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
}

/* A safepoint job, run by the thread itself as it leaves cgc: flush its
 * barrier buffer, and scan its own stack if asked.  The context is taken
 * as park_called takes it (the same frame shape, the same reasoning: what
 * the callers hold is above saved_sp or in the callee-saved registers), so
 * the scan sees what the collector would see with the thread parked here.
 * The collector does not hold the thread while the job is claimed (it
 * waits for SP_DONE), so saved_sp and saved_regs are the thread's own to
 * write. */
static NOINLINE void run_job(cgc_thread *t) {
    int expected = SP_PENDING;
    /* a thread in a blocking region is the collector's to read: it holds it */
    if (atomic_load_explicit(&t->state, ACQUIRE) != TS_RUNNING ||
        !atomic_compare_exchange_strong_explicit(&t->sp_req, &expected, SP_CLAIMED, ACQ_REL, ACQUIRE))
        return;
    t->in_cgc = 1; /* a signal now would defer (none comes: the collector waits) */
    atomic_signal_fence(SEQ_CST);
    cgc_gcwork w = {0};
    cgc__wbuf_flush(&t->wbuf, &w);
    if (t->sp_job & SP_JOB_SCAN) {
        uint32_t cycle = atomic_load_explicit(&cgc__gc_cycle, ACQUIRE);
        SAVE_CALLED_CONTEXT(t);
        cgc__thread_scan_stack(t, &w);
        atomic_store_explicit(&t->stack_scanned_cycle, cycle, RELEASE);
    }
    t->sp_found = w.bytes_marked != 0;
    cgc__gcwork_dispose(&w);
    atomic_signal_fence(SEQ_CST);
    t->in_cgc = 0;
    /* release: the flushed work, the scan and sp_found before SP_DONE */
    atomic_store_explicit(&t->sp_req, SP_DONE, RELEASE);
    futex_wake(&t->sp_req);
    __asm__ volatile("" ::: "memory"); /* not a tail call: the frame holds the context */
}

static void park_signal(cgc_thread *t, ucontext_t *uc) {
    save_signal_context(t, uc);
    t->parked_in_handler = true;
    park_wait(t);
    /* back to the interrupted code: from here on, CPU time is spent on
     * the way out of the handler and then in the program's own code
     * (cgc__threads_wait_past_stop), and wall time counts towards the gap
     * before the next stop (wait_stop_gap).  Release: the times before
     * the count.  (clock_gettime is async-signal-safe.) */
    atomic_store_explicit(&t->cpu_at_resume, cgc__thread_cputime(), RELAXED);
    atomic_store_explicit(&t->wall_at_resume, cgc__nanotime(), RELAXED);
    atomic_fetch_add_explicit(&t->resumes, 1, RELEASE);
}

static void suspend_handler(int sig, siginfo_t *info, void *uctx) {
    (void)sig;
    (void)info;
    int saved_errno = errno;
    cgc_thread *t = cgc__self;
    if (t && atomic_load_explicit(HS(t), ACQUIRE) == HS_REQUEST) {
        if (t->in_cgc) atomic_store_explicit(&t->stop_pending, 1, RELAXED); /* answered in cgc__leave */
        else park_signal(t, uctx);
    }
    errno = saved_errno;
}

void cgc__handshake_deferred(cgc_thread *t, sig_atomic_t prev) {
    if (prev) return;
    atomic_store_explicit(&t->stop_pending, 0, RELAXED);
    /* the clear before the reads of the requests: a request posted after
     * them sets stop_pending again.  (A job missed anyway only costs the
     * collector its wait: it withdraws the job and holds the thread.) */
    atomic_thread_fence(SEQ_CST);
    if (atomic_load_explicit(HS(t), ACQUIRE) == HS_REQUEST) park_called(t);
    if (atomic_load_explicit(&t->sp_req, ACQUIRE) == SP_PENDING) run_job(t);
}

/* Asks t to park; returns false if t is blocking (then it is now held). */
static bool request(cgc_thread *t) {
    int st = TS_BLOCKING;
    if (atomic_compare_exchange_strong_explicit(&t->state, &st, TS_BLOCKING_HELD, ACQ_REL, ACQUIRE))
        return false;
    atomic_store_explicit(HS(t), HS_REQUEST, RELEASE);
    int err = pthread_kill(t->pthread, suspend_signal);
    if (err) cgc__fatal("cannot signal thread %d: %s", (int)t->tid, strerror(err));
    return true;
}

/* How long the collector spins for a thread to park before it sleeps.
 * The signal reaches a running thread within microseconds, but a
 * collector asleep in the futex waits for the kernel to wake it, and on a
 * virtual machine waking an idle CPU took 30-60 us of every stop (most of
 * a mark termination's pause).  A thread that takes longer (preempted, in
 * a long handler of the program's own) is waited for asleep.  (Yielding
 * the CPU in the spin, for a target preempted on the collector's own CPU,
 * was worse: the CPU went to whichever program thread was runnable there,
 * for a whole time slice; churn's pauses grew sixfold.) */
#define PARK_SPIN_NS 100000

/* The calling thread's rseq cpu_id word, kept up to date by the kernel
 * each time the thread returns to user space; NULL if glibc registered no
 * rseq area (an old glibc, or GLIBC_TUNABLES=glibc.pthread.rseq=0). */
static const volatile uint32_t *rseq_cpu_word(void) {
    if (__rseq_size < offsetof(struct rseq, cpu_id) + sizeof(uint32_t)) return NULL;
    return (const volatile uint32_t *)((char *)__builtin_thread_pointer() + __rseq_offset + offsetof(struct rseq, cpu_id));
}

/* t last ran on the CPU the caller runs on, so it does not run now: it is
 * preempted (by the caller, as like as not) or asleep.  Spinning for it
 * to park would keep it off this CPU; the caller sleeps at once. */
static bool runs_here(const cgc_thread *t) {
    if (!t->rseq_cpu) return false;
    int me = sched_getcpu();
    return me >= 0 && (uint32_t)me == *t->rseq_cpu;
}

static void wait_parked(cgc_thread *t) {
    uint64_t start = cgc__nanotime();
    bool warned = false;
    int v;
    if (runs_here(t)) start -= PARK_SPIN_NS;
    for (unsigned i = 1; atomic_load_explicit(HS(t), ACQUIRE) != HS_PARKED; i++) {
        __builtin_ia32_pause();
        if (i % 64 == 0 && cgc__nanotime() - start > PARK_SPIN_NS) break;
    }
    while ((v = atomic_load_explicit(HS(t), ACQUIRE)) != HS_PARKED) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        syscall(SYS_futex, (int *)HS(t), FUTEX_WAIT_PRIVATE, v, &ts, NULL, 0);
        if (!warned && cgc__nanotime() - start > 5000000000ull) {
            cgc__warn("thread %d has not answered the stop signal %d for 5 s "
                      "(is the signal blocked?)", (int)t->tid, suspend_signal);
            warned = true;
        }
    }
}

/* Lets t go; a parked thread wakes at release_parked. */
static void release(cgc_thread *t, bool signalled) {
    if (signalled) {
        /* the count before HS_NONE: a thread still spinning in park_wait
         * may leave and count its resumption at once */
        t->gap_owed = t->parked_in_handler;
        t->gap_resumes = atomic_load_explicit(&t->resumes, ACQUIRE);
        t->gap_release_ns = cgc__nanotime();
        atomic_store_explicit(HS(t), HS_NONE, RELEASE);
    } else {
        atomic_store_explicit(&t->state, TS_BLOCKING, RELEASE);
        futex_wake(&t->state);
    }
}

/* Wakes every thread release() let go since the last call, at once. */
static void release_parked(void) {
    /* release: orders the HS_NONE stores before the new generation */
    atomic_fetch_add_explicit(&release_gen, 1, RELEASE);
    futex_wake(&release_gen);
}

/* The gap between two stops of one thread.  A thread the stop signal
 * interrupts in a system call has the call fail with EINTR, and a sleep
 * restarts with the time the kernel reports left.  Linux counts that time
 * to the timer's hard expiry, which includes the thread's timer slack
 * (50 us by default): a nanosleep interrupted within 50 us of its start
 * reports more time left than it was asked to sleep.  Stopped again that
 * soon after each release, a thread in a nanosleep loop never finished
 * (back-to-back cgc_collect in stop-the-world mode: a 1 ms sleep's
 * remainder grew to 5 s; test_threads, test_back_to_back_collections).  A
 * thread that computes loses its CPU to every stop in the same way.  So a
 * thread that parked in its signal handler is not signalled again until
 * it has been out of the handler for STOP_GAP_NS; or, if it has not got a
 * CPU to leave the handler within RESUME_WAIT_NS of its release, from
 * then on (it is not in its system call while it waits for a CPU, and a
 * new signal costs it nothing).  Threads parked on leaving cgc owe no gap:
 * they were running cgc's code, not waiting in the kernel. */
#define STOP_GAP_NS 200000
#define RESUME_WAIT_NS 2000000

/* When t may be signalled again, or 0 if now. */
static uint64_t stop_gap_end(cgc_thread *t, uint64_t now) {
    if (!t->gap_owed) return 0;
    uint64_t ready;
    /* acquire: wall_at_resume is the one written before the count */
    if (atomic_load_explicit(&t->resumes, ACQUIRE) != t->gap_resumes)
        ready = atomic_load_explicit(&t->wall_at_resume, RELAXED) + STOP_GAP_NS;
    else
        ready = t->gap_release_ns + RESUME_WAIT_NS;
    if (ready > now) return ready;
    t->gap_owed = false;
    return 0;
}

/* Waits out the gaps owed by t, or by every thread if t is NULL.  Registry
 * lock held (the wait is at most RESUME_WAIT_NS). */
static void wait_stop_gap(cgc_thread *only) {
    for (;;) {
        uint64_t now = cgc__nanotime(), until = 0;
        for (cgc_thread *t = only ? only : cgc__threads; t; t = only ? NULL : t->next) {
            uint64_t end = stop_gap_end(t, now);
            if (end > until) until = end;
        }
        if (!until) return;
        struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
}

uint64_t cgc__stop_world(void) {
    cgc__threads_lock();
    wait_stop_gap(NULL);
    uint64_t start = cgc__nanotime();
    cgc_thread *me = cgc__self;
    /* signal everybody first, then wait: the threads park in parallel */
    for (cgc_thread *t = cgc__threads; t; t = t->next)
        if (t != me) t->signalled = request(t);
    for (cgc_thread *t = cgc__threads; t; t = t->next)
        if (t != me && t->signalled) wait_parked(t);
    /* the caller (a registered thread in cgc_collect, or an internal
     * thread) is not stopped: it records its own context */
    return start;
}

uint64_t cgc__start_world(void) {
    cgc_thread *me = cgc__self;
    for (cgc_thread *t = cgc__threads; t; t = t->next)
        if (t != me) release(t, t->signalled);
    uint64_t now = cgc__nanotime();
    release_parked();
    cgc__threads_unlock();
    return now;
}

/* Holding one thread: registry lock held by the caller. */
bool cgc__thread_hold(cgc_thread *t) {
    if (t == cgc__self) return true; /* the collector is never a registered thread */
    wait_stop_gap(t);
    t->signalled = request(t);
    if (t->signalled) wait_parked(t);
    return true;
}

bool cgc__thread_post_job(cgc_thread *t, int job) {
    if (t == cgc__self || atomic_load_explicit(&t->state, ACQUIRE) != TS_RUNNING) return false;
    t->sp_job = job;
    t->sp_found = false;
    /* release: the job before the request; the request before the flag
     * that makes the thread look at it */
    atomic_store_explicit(&t->sp_req, SP_PENDING, RELEASE);
    atomic_store_explicit(&t->stop_pending, 1, SEQ_CST);
    return true;
}

/* How long a posted job may wait to be taken.  A thread that runs in cgc
 * (allocating, storing pointers) takes it within microseconds; one that
 * does not (blocked in the kernel, computing) is held by signal after
 * this.  A thread the kernel shows runnable is given more time, up to
 * JOB_WAIT_MAX_NS: it is most likely waiting for a CPU (every CPU busy),
 * will take the job as soon as it runs, and a signal would only make it
 * park and be woken again, on whatever CPU the kernel then picks. */
#define JOB_WAIT_NS 100000
#define JOB_WAIT_MAX_NS 4000000
#define JOB_SPIN_NS 20000

/* The scheduler state of thread tid ('R' runnable, 'S' asleep, ...), or 0. */
static char thread_sched_state(pid_t tid) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* "tid (comm) S ...": the command may hold spaces and parentheses */
    char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' ? close_paren[2] : 0;
}

bool cgc__thread_job_wait(cgc_thread *t, uint64_t posted_ns) {
    uint64_t start = cgc__nanotime(), deadline = posted_ns + JOB_WAIT_NS;
    for (unsigned i = 1;; i++) {
        int r = atomic_load_explicit(&t->sp_req, ACQUIRE);
        if (r == SP_DONE) break;
        uint64_t now = i % 64 == 0 || r == SP_CLAIMED ? cgc__nanotime() : start;
        if (r == SP_PENDING && now >= deadline) {
            if (now - posted_ns < JOB_WAIT_MAX_NS && thread_sched_state(t->tid) == 'R') {
                deadline = now + JOB_WAIT_NS;
                continue;
            }
            if (atomic_compare_exchange_strong_explicit(&t->sp_req, &r, SP_NONE, ACQ_REL, ACQUIRE)) return false;
            continue; /* taken meanwhile: wait for it */
        }
        if (r == SP_CLAIMED || (i % 64 == 0 && (runs_here(t) || now - start > JOB_SPIN_NS))) {
            /* asleep: the thread may need this CPU to get there */
            uint64_t left = r == SP_PENDING && deadline > now ? deadline - now : 1000000;
            struct timespec ts = {0, (long)(left < 1000000 ? left : 1000000)};
            syscall(SYS_futex, (int *)&t->sp_req, FUTEX_WAIT_PRIVATE, r, &ts, NULL, 0);
        } else {
            __builtin_ia32_pause();
        }
    }
    atomic_store_explicit(&t->sp_req, SP_NONE, RELAXED);
    return true;
}

void cgc__thread_release(cgc_thread *t) {
    if (t == cgc__self) return;
    release(t, t->signalled);
    if (t->signalled) release_parked();
}

/* ------------------------------------------- CGC_STORE at mark start -- */

/* CGC_STORE is a flag test and a plain store, inlined into the program.  A
 * thread stopped by the mark start between the two resumes with the
 * barrier on and stores without recording the value it overwrites.  Go
 * makes the pair one non-preemptible step; here the collector waits, before
 * any stack is scanned, until every thread that was stopped in its own code
 * has certainly run on past the pair: either it has used 20 us of CPU since
 * it left the stop handler (tens of thousands of instructions; the pair is
 * three), or it is found inside a system call (which the pair does not
 * contain).
 *
 * The wait sends the thread no signal.  CPU time spent handling signals is
 * CPU time too, and a thread that a loaded machine leaves off the CPU
 * handles each new signal before its next instruction of its own: counting
 * from the stop, a few probes by signal could add up to the threshold
 * while the store still waited.  So the clock starts when the thread
 * itself leaves the stop handler (park_signal), and whether it sits in a
 * system call is read from /proc/self/task/<tid>/syscall, which names the
 * call of a blocked thread without disturbing it.  (A handler of the
 * program's own that runs on that same return could still use the time;
 * the pair stays in its place until the handler returns, so only a
 * handler that runs for 20 us of CPU first would defeat the wait.) */
#define PAST_STOP_CPU_NS 20000
#define SYS_RT_SIGRETURN 15 /* x86-64: the stop handler's own way out */

static uint64_t thread_cpu_ns(cgc_thread *t) {
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(t->pthread, &cid) != 0 || clock_gettime(cid, &ts) != 0) return UINT64_MAX;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The interrupted instruction is a system call (`syscall`, 0f 05), or the
 * one after it: the kernel leaves the program counter after the
 * instruction, or on it when the call is to be restarted. */
static bool in_syscall(uintptr_t pc) {
    if (pc < 4096) return false;
    const unsigned char *c = (const unsigned char *)pc;
    /* only bytes on pc's own page are read: that page is mapped (it holds
     * the interrupted instruction) */
    if ((pc & 4095) >= 2 && c[-2] == 0x0f && c[-1] == 0x05) return true;
    return (pc & 4095) <= 4094 && c[0] == 0x0f && c[1] == 0x05;
}

/* The system call thread tid is blocked in, or -1 (running, preempted in
 * its own code, or unknown). */
static long blocked_syscall(pid_t tid) {
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    /* "running", "-1 sp pc" (blocked outside a call) or "nr args... sp pc" */
    if (buf[0] < '0' || buf[0] > '9') return -1;
    return strtol(buf, NULL, 10);
}

void cgc__threads_note_stop_points(void) {
    for (cgc_thread *t = cgc__threads; t; t = t->next) {
        uintptr_t pc = t->saved_regs[REG_RIP];
        /* parked by the signal handler (saved_regs hold the interrupted
         * context; a thread that parked leaving cgc, or was held in a
         * blocking region, is not in the program's code) */
        t->stopped_in_code = t != cgc__self && t->signalled && pc && !in_syscall(pc);
        t->resumes_at_stop = atomic_load_explicit(&t->resumes, RELAXED);
    }
}

void cgc__threads_wait_past_stop(void) {
    cgc__threads_lock();
    for (cgc_thread *t = cgc__threads; t; t = t->next) {
        /* bounded: 5000 x 20 us.  Only a thread that runs nowhere near the
         * threshold in that time and is never seen in a system call could
         * use it up: one the machine keeps off the CPU for 100 ms. */
        for (unsigned spins = 0; t->stopped_in_code && spins < 5000; spins++) {
            /* acquire: cpu_at_resume is the one written before the count */
            if (atomic_load_explicit(&t->resumes, ACQUIRE) != t->resumes_at_stop) {
                uint64_t cpu = thread_cpu_ns(t);
                uint64_t resumed = atomic_load_explicit(&t->cpu_at_resume, RELAXED);
                if (cpu == UINT64_MAX || cpu - resumed >= PAST_STOP_CPU_NS) break;
                if (spins % 8 == 7) {
                    long nr = blocked_syscall(t->tid);
                    if (nr >= 0 && nr != SYS_RT_SIGRETURN) break;
                }
            }
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
        t->stopped_in_code = false;
    }
    cgc__threads_unlock();
}

/* --------------------------------------------------------- registry -- */

/* The start of the contiguous mapped memory that holds addr - 1, from
 * /proc/self/maps (only where the stack mapping does not tell). */
static uintptr_t mapped_run_start(uintptr_t addr) {
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f) return addr;
    uintptr_t run_lo = addr, prev_lo = 0, prev_hi = 0, lo, hi;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2) continue;
        if (lo != prev_hi) prev_lo = lo; /* a gap: a new contiguous run */
        prev_hi = hi;
        if (lo < addr && addr <= hi) {
            run_lo = prev_lo;
            break;
        }
    }
    fclose(f);
    return run_lo;
}

static void compute_tls_range(cgc_thread *t) {
    uintptr_t tp = (uintptr_t)__builtin_thread_pointer();
    /* x86-64 (TLS variant II): the static TLS block lies just below the
     * thread pointer, inside the stack mapping for threads glibc made and
     * elsewhere for the main thread.  Never read below what is mapped. */
    if (tp > t->stack_lo && tp <= t->stack_hi) {
        /* inside the stack block, above every frame: the stack scan
         * [sp, stack_hi) covers it (and a separate scan of tp - size could
         * reach below sp into dead frames) */
        t->tls_lo = t->tls_hi = 0;
        return;
    }
    uintptr_t lo = tp - tls_static_size;
    uintptr_t floor = mapped_run_start(tp);
    t->tls_lo = lo > floor ? lo : floor;
    t->tls_hi = tp;
}

static void thread_exit_destructor(void *arg);

static cgc_thread *register_locked(bool is_main) {
    cgc_thread *t = free_threads;
    if (t) free_threads = t->next;
    else {
        t = cgc__os_reserve(sizeof *t, 4096);
        if (!t) cgc__fatal("out of memory registering a thread");
    }
    memset(t, 0, sizeof *t);
    t->pthread = pthread_self();
    t->tid = (pid_t)syscall(SYS_gettid);
    t->rseq_cpu = rseq_cpu_word();
    t->is_main = is_main;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size;
        pthread_attr_getstack(&attr, &addr, &size);
        t->stack_lo = (uintptr_t)addr;
        t->stack_hi = (uintptr_t)addr + size;
        pthread_attr_destroy(&attr);
    } else {
        cgc__fatal("pthread_getattr_np failed for thread %d", (int)t->tid);
    }
    compute_tls_range(t);
    cgc__cache_init(&t->cache);
    atomic_store_explicit(&t->state, TS_RUNNING, RELAXED);
    /* a thread born during a mark has a grey stack until scanned */
    atomic_store_explicit(&t->stack_scanned_cycle, 0, RELAXED);
    t->next = cgc__threads;
    cgc__threads = t;
    atomic_fetch_add_explicit(&cgc__nthreads, 1, RELAXED);
    cgc__self = t;
    pthread_setspecific(exit_key, t);
    return t;
}

cgc_thread *cgc__thread_register_self(void) {
    if (cgc__self) return cgc__self;
    cgc__ensure_init();
    if (cgc__self) return cgc__self; /* init registered us */
    cgc__threads_lock();
    cgc_thread *t = register_locked(false);
    cgc__threads_unlock();
    return t;
}

static void unregister(cgc_thread *t) {
    /* flush outside the registry lock, inside cgc: a stop waits for it */
    sig_atomic_t prev = cgc__enter(t);
    if (t->wbuf.n) {
        cgc_gcwork w = {0};
        cgc__wbuf_flush(&t->wbuf, &w);
        cgc__gcwork_dispose(&w);
    }
    cgc__cache_flush(&t->cache, false);
    cgc__leave(t, prev);
    /* the registry lock with in_cgc == 0: we may be stopped while waiting */
    cgc__threads_lock();
    cgc_thread **pp = &cgc__threads;
    while (*pp && *pp != t) pp = &(*pp)->next;
    if (*pp) *pp = t->next;
    atomic_fetch_sub_explicit(&cgc__nthreads, 1, RELAXED);
    /* the cache may have been refilled by a stop's flush race: flush again */
    cgc__cache_flush(&t->cache, false);
    atomic_store_explicit(&t->state, TS_DEAD, RELAXED);
    cgc__self = NULL;
    t->next = free_threads;
    free_threads = t;
    cgc__threads_unlock();
}

static void thread_exit_destructor(void *arg) {
    cgc_thread *t = arg;
    if (t && cgc__self == t) unregister(t);
}

int cgc_thread_attach(void) {
    if (cgc__self) return 1;
    cgc__thread_register_self();
    return 0;
}

void cgc_thread_detach(void) {
    cgc_thread *t = cgc__self;
    if (!t) cgc__fatal("cgc_thread_detach: the calling thread is not attached");
    if (t->blocking_depth) cgc__fatal("cgc_thread_detach: called inside cgc_blocking_begin/end");
    pthread_setspecific(exit_key, NULL);
    unregister(t);
}

/* ------------------------------------------------------- blocking -- */

#ifdef CGC_DEBUG_CHECKS
/* The fault-injection hooks for tests (internal.h). */
_Atomic(cgc_thread *) cgc__debug_mark_wait_thread;
void (*_Atomic cgc__debug_mark_wait_hook)(void);
#endif

/* Inside cgc, with the heap past its overshoot bound while a mark runs:
 * wait for the mark to end as a thread in a blocking region (never
 * signalled; its stack read as saved here, with this frame holding the
 * callers' callee-saved registers).  The thread may not run again for a
 * long time: the next cycle can start, scan this stack and sweep before
 * it leaves.  So a caller must hold no object that it has allocated and
 * not yet handed to the program (such an object is reachable from no
 * scanned word; the allocation paths pay their assist first). */
NOINLINE void cgc__wait_for_mark_end(cgc_thread *t) {
    __builtin_unwind_init();
    memset(t->saved_regs, 0, sizeof t->saved_regs);
    t->saved_sp = deeper_sp();
    uint32_t cycle = atomic_load_explicit(&cgc__gc_cycle, ACQUIRE);
    atomic_store_explicit(&t->state, TS_BLOCKING, RELEASE);
    sig_atomic_t prev = t->in_cgc;
    t->in_cgc = 0;
    atomic_signal_fence(SEQ_CST);
    if (atomic_load_explicit(&t->stop_pending, RELAXED)) cgc__handshake_deferred(t, 0); /* a request that came while inside */
    while (atomic_load_explicit(&cgc__gc_marking, ACQUIRE) &&
           atomic_load_explicit(&cgc__gc_cycle, ACQUIRE) == cycle) {
        struct timespec ts = {0, 50 * 1000};
        nanosleep(&ts, NULL);
    }
#ifdef CGC_DEBUG_CHECKS
    void (*hook)(void) = atomic_load_explicit(&cgc__debug_mark_wait_hook, ACQUIRE);
    if (hook) hook();
#endif
    for (;;) {
        int st = TS_BLOCKING;
        if (atomic_compare_exchange_weak_explicit(&t->state, &st, TS_RUNNING, ACQ_REL, ACQUIRE)) break;
        if (st == TS_BLOCKING_HELD) futex_wait(&t->state, TS_BLOCKING_HELD);
    }
    t->in_cgc = prev;
    atomic_signal_fence(SEQ_CST);
}

/* cgc_blocking_begin: the caller's callee-saved registers must be copied
 * before any compiled code can change them, since the caller's values move
 * below the saved stack pointer while the region runs: an assembly entry
 * stores them on its own frame and passes them on. */
__asm__(".text\n"
        ".globl cgc_blocking_begin\n"
        ".type cgc_blocking_begin,@function\n"
        "cgc_blocking_begin:\n"
        "  subq $56, %rsp\n"
        "  movq %rbx, 0(%rsp)\n"
        "  movq %rbp, 8(%rsp)\n"
        "  movq %r12, 16(%rsp)\n"
        "  movq %r13, 24(%rsp)\n"
        "  movq %r14, 32(%rsp)\n"
        "  movq %r15, 40(%rsp)\n"
        "  movq %rsp, %rdi\n"
        "  call cgc__blocking_begin_regs\n"
        "  addq $56, %rsp\n"
        "  ret\n"
        ".size cgc_blocking_begin, .-cgc_blocking_begin\n");

CGC_INTERNAL void cgc__blocking_begin_regs(const uintptr_t *regs);
void cgc__blocking_begin_regs(const uintptr_t *regs) {
    cgc_thread *t = cgc__self;
    if (!t) t = cgc__thread_register_self();
    if (t->blocking_depth++ > 0) return;
    /* Not inside cgc: a stop arriving now parks us with exact registers;
     * once the state says BLOCKING the collector reads this context. */
    memset(t->saved_regs, 0, sizeof t->saved_regs);
    memcpy(t->saved_regs, regs, CALLEE_SAVED * sizeof *regs);
    t->saved_sp = (uintptr_t)regs; /* the caller's frames are above */
    /* release: the context before the state that lets the collector read it */
    atomic_store_explicit(&t->state, TS_BLOCKING, RELEASE);
}

void cgc_blocking_end(void) {
    cgc_thread *t = cgc__self;
    if (!t || t->blocking_depth == 0) cgc__fatal("cgc_blocking_end without cgc_blocking_begin");
    if (--t->blocking_depth > 0) return;
    for (;;) {
        int st = TS_BLOCKING;
        if (atomic_compare_exchange_weak_explicit(&t->state, &st, TS_RUNNING, ACQ_REL, ACQUIRE)) break;
        if (st == TS_BLOCKING_HELD) futex_wait(&t->state, TS_BLOCKING_HELD);
    }
}

/* --------------------------------------------------- pthread_create -- */

/* The calling thread exits with value v: keep it as a root unless the
 * thread is detached (then nobody can take it). */
static void keep_exit_value(void *v) {
    if (!v) return;
    pthread_attr_t a;
    int detached = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getdetachstate(&a, &detached);
        pthread_attr_destroy(&a);
        if (detached == PTHREAD_CREATE_DETACHED) return;
    }
    exit_value *e = malloc(sizeof *e);
    if (!e) cgc__fatal("out of memory keeping a thread's return value");
    e->thread = pthread_self();
    e->value = v;
    cgc__threads_lock();
    e->next = exit_values;
    exit_values = e;
    cgc__threads_unlock();
}

/* th was joined or detached: its value is no longer a root.  While a mark
 * runs, dropping it is a deletion: the value goes through the write
 * barrier (the joiner's stack may already be black). */
static void drop_exit_value(pthread_t th) {
    cgc__threads_lock();
    exit_value *e = NULL;
    for (exit_value **p = &exit_values; *p; p = &(*p)->next)
        if (pthread_equal((*p)->thread, th)) {
            e = *p;
            *p = e->next;
            break;
        }
    cgc__threads_unlock();
    if (!e) return;
    /* a joiner cgc does not know takes the value where no scan looks */
    if (cgc__self) CGC_STORE(&e->value, NULL);
    free(e);
}

static void *start_trampoline(void *p) {
    pending_start *ps = p;
    cgc__threads_lock();
    void *(*fn)(void *) = ps->fn;
    void *arg = ps->arg; /* now on this thread's stack (a root once registered) */
    cgc_thread *t = register_locked(false);
    if (ps->prev) ps->prev->next = ps->next;
    else pending_starts = ps->next;
    if (ps->next) ps->next->prev = ps->prev;
    cgc__threads_unlock();
    free(ps);
    (void)t;
    void *v = fn(arg);
    keep_exit_value(v);
    return v;
}

static void resolve_real_pthread_create(void) {
    if (real_pthread_create) return;
    real_pthread_create = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (!real_pthread_create) real_pthread_create = (pthread_create_fn)dlsym(RTLD_DEFAULT, "pthread_create");
    if (!real_pthread_create || real_pthread_create == pthread_create)
        cgc__fatal("cannot find the C library's pthread_create: %s", dlerror());
}

CGC_API int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
    resolve_real_pthread_create();
    cgc__ensure_init();
    pending_start *ps = malloc(sizeof *ps);
    if (!ps) return EAGAIN;
    ps->fn = fn;
    ps->arg = arg;
    ps->prev = NULL;
    cgc__threads_lock();
    ps->next = pending_starts;
    if (pending_starts) pending_starts->prev = ps;
    pending_starts = ps;
    cgc__threads_unlock();
    int err = real_pthread_create(th, attr, start_trampoline, ps);
    if (err) {
        cgc__threads_lock();
        if (ps->prev) ps->prev->next = ps->next;
        else pending_starts = ps->next;
        if (ps->next) ps->next->prev = ps->prev;
        cgc__threads_unlock();
        free(ps);
    }
    return err;
}

typedef void (*pthread_exit_fn)(void *);
typedef int (*pthread_join_fn)(pthread_t, void **);
typedef int (*pthread_detach_fn)(pthread_t);
typedef int (*pthread_tryjoin_fn)(pthread_t, void **);
typedef int (*pthread_timedjoin_fn)(pthread_t, void **, const struct timespec *);
typedef int (*pthread_clockjoin_fn)(pthread_t, void **, clockid_t, const struct timespec *);

static void *next_symbol(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) cgc__fatal("cannot find the C library's %s: %s", name, dlerror());
    return f;
}

CGC_API void pthread_exit(void *v) {
    static _Atomic(pthread_exit_fn) real;
    pthread_exit_fn f = atomic_load_explicit(&real, RELAXED);
    if (!f) atomic_store_explicit(&real, f = (pthread_exit_fn)next_symbol("pthread_exit"), RELAXED);
    if (cgc__self) keep_exit_value(v);
    f(v);
    __builtin_unreachable();
}

/* The joins wait as a blocking region (the waiting thread is never
 * signalled: on a machine with every CPU busy, waking a thread parked in
 * a join to answer a stop took milliseconds), take the value into a local
 * and store it through the barrier after the region. */
#define JOIN_BODY(call)                                                         \
    void *v_ = NULL;                                                            \
    bool registered_ = cgc__self != NULL;                                       \
    if (registered_) cgc_blocking_begin();                                      \
    int err_ = (call);                                                          \
    if (registered_) cgc_blocking_end();                                        \
    if (err_ == 0) {                                                            \
        drop_exit_value(th);                                                    \
        if (ret && registered_) CGC_STORE(ret, v_);                             \
        else if (ret) *ret = v_;                                                \
    }                                                                           \
    return err_

#define REAL(type, name)                                                        \
    static _Atomic(type) real_;                                                 \
    type f_ = atomic_load_explicit(&real_, RELAXED);                            \
    if (!f_) atomic_store_explicit(&real_, f_ = (type)next_symbol(name), RELAXED)

CGC_API int pthread_join(pthread_t th, void **ret) {
    REAL(pthread_join_fn, "pthread_join");
    JOIN_BODY(f_(th, &v_));
}

CGC_API int pthread_tryjoin_np(pthread_t th, void **ret) {
    REAL(pthread_tryjoin_fn, "pthread_tryjoin_np");
    JOIN_BODY(f_(th, &v_));
}

CGC_API int pthread_timedjoin_np(pthread_t th, void **ret, const struct timespec *abstime) {
    REAL(pthread_timedjoin_fn, "pthread_timedjoin_np");
    JOIN_BODY(f_(th, &v_, abstime));
}

CGC_API int pthread_clockjoin_np(pthread_t th, void **ret, clockid_t clock, const struct timespec *abstime) {
    REAL(pthread_clockjoin_fn, "pthread_clockjoin_np");
    JOIN_BODY(f_(th, &v_, clock, abstime));
}

CGC_API int pthread_detach(pthread_t th) {
    REAL(pthread_detach_fn, "pthread_detach");
    int err = f_(th);
    if (err == 0) drop_exit_value(th);
    return err;
}

/* Internal threads (mark workers, sweeper, coordinator) are not registered. */
int cgc__internal_thread(pthread_t *th, const char *name, void *(*fn)(void *), void *arg) {
    resolve_real_pthread_create();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* internal threads must not take the suspend signal */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, suspend_signal);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int err = real_pthread_create(th, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    /* for ps, top -H, perf and gdb; these threads never exit */
    if (!err) {
        char shown[16]; /* the kernel keeps 15 characters */
        snprintf(shown, sizeof shown, "%s", name);
        pthread_setname_np(*th, shown);
    }
    return err;
}

/* ------------------------------------------------------- scanning -- */

uintptr_t cgc__thread_stack_start(cgc_thread *t) {
    uintptr_t sp = t->saved_sp;
    /* a saved sp off the known stack (alternate signal stack, or a stack
     * switched by the program): scan the whole mapping */
    return (sp < t->stack_lo || sp > t->stack_hi) ? t->stack_lo : sp;
}

void cgc__thread_scan_stack(cgc_thread *t, cgc_gcwork *w) {
    uintptr_t sp = cgc__thread_stack_start(t);
    t->scan_sp = sp;
    cgc__scan_range(w, sp, t->stack_hi);
    cgc__scan_range(w, (uintptr_t)t->saved_regs, (uintptr_t)(t->saved_regs + 32));
    if (t->tls_hi > t->tls_lo) cgc__scan_range(w, t->tls_lo, t->tls_hi);
    t->stack_bytes = t->stack_hi - sp;
}

/* Arguments of threads being started, return values of exited threads
 * not yet joined (registry lock held). */
void cgc__scan_pending_starts(cgc_gcwork *w) {
    for (pending_start *ps = pending_starts; ps; ps = ps->next)
        cgc__scan_range(w, (uintptr_t)&ps->arg, (uintptr_t)(&ps->arg + 1));
    for (exit_value *e = exit_values; e; e = e->next)
        cgc__scan_range(w, (uintptr_t)&e->value, (uintptr_t)(&e->value + 1));
}

/* ------------------------------------------------------------ fork -- */

void cgc__gc_fork_prepare(void);
void cgc__gc_fork_parent(void);

/* Lock order for fork: gc_lock (gc.c), the sweep fork lock, registry,
 * every mcentral, heap. */
static void atfork_prepare(void) {
    cgc__gc_fork_prepare();
    pthread_rwlock_wrlock(&cgc__sweep_fork_lock);
    cgc__threads_lock();
    for (size_t i = 0; i < NUM_CENTRALS; i++) cgc__lock(&cgc__central[i].lock);
    cgc__lock(&cgc__heap_lock);
}
static void atfork_parent(void) {
    cgc__unlock(&cgc__heap_lock);
    for (size_t i = 0; i < NUM_CENTRALS; i++) cgc__unlock(&cgc__central[i].lock);
    cgc__threads_unlock();
    pthread_rwlock_unlock(&cgc__sweep_fork_lock);
    cgc__gc_fork_parent();
}
static void atfork_child(void) {
    pthread_rwlock_init(&cgc__sweep_fork_lock, NULL);
    cgc__lock_init(&cgc__heap_lock);
    for (size_t i = 0; i < NUM_CENTRALS; i++) cgc__lock_init(&cgc__central[i].lock);
    /* Only the forking thread exists in the child. */
    cgc_thread *me = cgc__self;
    cgc_thread *t = cgc__threads;
    while (t) {
        cgc_thread *next = t->next;
        if (t != me) {
            t->next = free_threads;
            free_threads = t;
        }
        t = next;
    }
    cgc__threads = me;
    if (me) me->next = NULL;
    atomic_store(&cgc__nthreads, me ? 1 : 0);
    pending_starts = NULL;
    pthread_mutex_init(&registry_lock, NULL);
    void cgc__gc_after_fork_child(void);
    cgc__gc_after_fork_child();
}

void cgc__threads_init(void) {
    suspend_signal = cgc__opt.sigsuspend;
    size_t align = 0;
    void (*info)(size_t *, size_t *) = (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
    if (info) info(&tls_static_size, &align);
    pthread_key_create(&exit_key, thread_exit_destructor);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = suspend_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(suspend_signal, &sa, NULL) != 0) cgc__fatal("cannot install the handler for signal %d", suspend_signal);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    cgc__threads_lock();
    register_locked(getpid() == (pid_t)syscall(SYS_gettid));
    cgc__threads_unlock();
}

int cgc_set_suspend_signal(int signo) {
    if (atomic_load(&cgc__init_done)) {
        errno = EBUSY;
        return -1;
    }
    if (signo < 1 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP) {
        errno = EINVAL;
        return -1;
    }
    cgc__options_set_signal(signo);
    return 0;
}
