/*
 * gc.c — the cycle.  Garbage collector overview.
 *
 * cgc is Go's collector for C: concurrent, non-moving, tri-colour
 * mark-sweep over Go's span / size-class heap, with conservative scanning
 * of stacks, registers, data segments and (unless typed or atomic) heap
 * objects.  One coordinator thread runs each cycle as a state machine
 * (cgc__gc_phase); mark workers, the background sweeper and the threads
 * that allocate do the work.
 *
 * A cycle is started when heap_live crosses the pacer's trigger (pacer.c;
 * the check is made when a thread refills its cache), by cgc_collect(), or
 * when none ran for 2 minutes.  Its phases:
 *
 *  0. Finish the previous sweep (concurrently: the coordinator sweeps what
 *     the background sweeper and allocating threads have not).
 *  1. Sweep termination, world stopped (PHASE_SWEEP_TERM -> PHASE_MARK):
 *     check the sweep is complete; advance the cycle number (every stack
 *     becomes grey); prepare the root jobs (data/bss of every loaded object
 *     and cgc_add_roots ranges, in 256 KiB shards); reset the pacer's
 *     counters; turn on allocate-black (pre-mark the free slots of every
 *     cached span: cache.c) and the write barrier.  Restart.
 *  2. Concurrent mark (PHASE_MARK).  First the coordinator waits until
 *     every thread that phase 1 stopped in its own code has run on past
 *     that point (20 us of CPU, or found in a system call: threads.c), so
 *     that a thread stopped between CGC_STORE's flag test and its plain
 *     store has finished that store before any stack is scanned (Go makes
 *     the test and the store one non-preemptible step; C code can be
 *     interrupted anywhere).  Then every thread's stack, registers and
 *     static TLS are scanned once, each thread alone, and the stack marked
 *     black: posted to all threads at once as a safepoint job, which a
 *     thread running in cgc does itself as it next leaves cgc, without
 *     stopping; a thread that has not taken it in time (100 us, more while
 *     the kernel shows it runnable) is held by signal handshake, and one in
 *     a blocking region (or a pthread_join) is read from its saved context
 *     (run_thread_jobs, threads.c).  Only then do workers and assists scan
 *     globals and heap objects.  Then the mark workers (mark.c: dedicated
 *     + fractional at 25 % of the CPUs, plus idle workers) drain the grey
 *     pool while allocating threads pay assists (pacer.c).  When no work
 *     is left the coordinator runs a ragged barrier, again as safepoint
 *     jobs: each thread shades its write-barrier buffer, and scans its
 *     stack if not yet scanned (threads born during the mark); if that
 *     found anything, back to draining.
 *  3. Mark termination, world stopped (PHASE_MARK_TERM): flush every
 *     barrier buffer, scan late stacks, new segments (dlopen during the
 *     mark), newly added roots and the arguments of threads being started;
 *     drain to empty with every worker; in gccheckmark mode re-mark from
 *     scratch and verify; turn the barrier and allocate-black off; hand
 *     every thread's cached spans back; advance sweepgen by 2 (every span
 *     now needs sweeping); set the next goal and trigger.  Restart.
 *  4. Concurrent sweep (PHASE_OFF): background sweeper, on-demand sweeping
 *     by allocating threads (sweep.c).  The scavenger then returns unused
 *     pages above the goal to the OS.
 *
 * In stop-the-world mode (CGC_DEBUG=gcstoptheworld=1, cgc_set_stoptheworld)
 * phases 1-3 run in one pause with the barrier never on: code that stores
 * pointers without CGC_STORE is safe in this mode.
 *
 * Invariants checked in debug builds: no unswept span at phase 1; the
 * barrier is on only in PHASE_MARK/PHASE_MARK_TERM; allocation is black
 * exactly while marking; no grey object after phase 3's drain.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

_Atomic int cgc__gc_phase;
atomic_u32 cgc__gc_cycle;
_Atomic int cgc__gc_disabled;
_Atomic int cgc__gc_stw_mode;
_Atomic int cgc__heap_scan_enabled;
atomic_u32 cgc__init_done;
extern uint64_t cgc__globals_bytes;
extern _Atomic uint64_t cgc__user_roots_gen;

cgc_range *cgc__cycle_segments; /* this cycle's data segments (checkmark) */
size_t cgc__cycle_nsegments;

void cgc__scan_pending_starts(cgc_gcwork *w);
void cgc__mark_set_jobs(cgc_range *segs, size_t nsegs, cgc_range *user, size_t nuser);
void cgc__checkmark_drain(cgc_gcwork *w);
int cgc__mark_nworkers(void);
void cgc__pacer_init(void);
void cgc__pacer_set_limiter(bool on);
void cgc__malloc_init(void);
void cgc__arena_init(void);
void cgc__mark_after_fork_child(void);

/* Lock rule: gc_lock is taken outside cgc (cgc_collect, fork), where a
 * stop can park its holder, so code inside cgc only ever try-locks it
 * (cgc__gc_maybe_trigger). */
static pthread_mutex_t gc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gc_cv = PTHREAD_COND_INITIALIZER;   /* wakes the coordinator */
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER; /* a cycle finished */
static uint64_t cycles_started, cycles_finished;          /* under gc_lock */
static bool request_pending, request_forced;
static bool coordinator_running;
static uint64_t last_cycle_end_ns;

#define FORCED_PERIOD_NS (120ull * 1000000000ull)

/* ------------------------------------------------------------ helpers -- */

static void scan_thread(cgc_thread *t, cgc_gcwork *w, uint32_t cycle) {
    cgc__thread_scan_stack(t, w);
    atomic_store_explicit(&t->stack_scanned_cycle, cycle, RELEASE);
}

/* Each thread that needs_job() names does job (SP_JOB_*) once, and alone:
 * first offered as a safepoint job to all of them at once, which a thread
 * running in cgc does itself without stopping; whoever has not taken it
 * within the wait is held, one at a time, and the job done for it.  (Held
 * one by one, a thread woken on the coordinator's CPU preempted the
 * coordinator, which then waited for a scheduler tick before the next:
 * 4 ms per hold on two CPUs kept busy.)  Returns whether the jobs greyed
 * anything; adds the stacks scanned to *stack_bytes. */
static bool run_thread_jobs(uint32_t cycle, int (*needs_job)(cgc_thread *, uint32_t), uint64_t *stack_bytes) {
    cgc_gcwork w = {0};
    bool found = false;
    cgc__threads_lock();
    uint64_t posted = cgc__nanotime();
    for (cgc_thread *t = cgc__threads; t; t = t->next) {
        int job = needs_job(t, cycle);
        t->sp_posted = job && cgc__thread_post_job(t, job);
    }
    for (cgc_thread *t = cgc__threads; t; t = t->next) {
        int job = t->sp_posted ? t->sp_job : needs_job(t, cycle);
        if (!job) continue;
        if (t->sp_posted && cgc__thread_job_wait(t, posted)) {
            found |= t->sp_found;
        } else {
            cgc__thread_hold(t);
            cgc__wbuf_flush(&t->wbuf, &w);
            if (job & SP_JOB_SCAN) scan_thread(t, &w, cycle);
            cgc__thread_release(t);
        }
        if (job & SP_JOB_SCAN) *stack_bytes += t->stack_bytes;
        t->sp_posted = false;
    }
    cgc__threads_unlock();
    found |= w.bytes_marked != 0;
    cgc__gcwork_dispose(&w);
    return found;
}

static int stack_job(cgc_thread *t, uint32_t cycle) {
    return atomic_load_explicit(&t->stack_scanned_cycle, ACQUIRE) == cycle ? 0 : SP_JOB_FLUSH | SP_JOB_SCAN;
}

/* Concurrent stack scan: every thread's stack, each thread alone. */
static uint64_t scan_stacks_concurrently(uint32_t cycle) {
    uint64_t bytes = 0;
    run_thread_jobs(cycle, stack_job, &bytes);
    return bytes;
}

static int ragged_job(cgc_thread *t, uint32_t cycle) {
    int job = stack_job(t, cycle); /* late stacks (threads born during the mark) */
    if (!job && __atomic_load_n(&t->wbuf.n, __ATOMIC_RELAXED)) job = SP_JOB_FLUSH; /* a peek (barrier.c) */
    return job;
}

/* Ragged barrier: each thread hands over its barrier buffer; late stacks
 * are scanned.  Returns true if anything was greyed. */
static bool ragged_barrier(uint32_t cycle) {
    uint64_t bytes = 0;
    bool found = run_thread_jobs(cycle, ragged_job, &bytes);
    return found || cgc__work_available();
}

static void flush_all_caches(void) {
    for (cgc_thread *t = cgc__threads; t; t = t->next) cgc__cache_flush(&t->cache, true);
}

/* Segments present now but not at mark start (dlopen during the mark). */
static void scan_new_segments(cgc_gcwork *w, cgc_range *now, size_t nnow) {
    for (size_t i = 0; i < nnow; i++) {
        bool known = false;
        for (size_t j = 0; j < cgc__cycle_nsegments && !known; j++)
            known = cgc__cycle_segments[j].lo == now[i].lo && cgc__cycle_segments[j].hi == now[i].hi;
        if (!known) cgc__scan_range(w, now[i].lo, now[i].hi);
    }
}

static uint64_t stw_cpu(uint64_t wall) { return wall * (uint64_t)cgc__opt.maxprocs; }

/* -------------------------------------------------------------- cycle -- */

static void run_cycle(bool forced) {
    cgc_cycle_trace tr = {0};
    tr.forced = forced;
    tr.start_ns = cgc__nanotime();
    tr.procs = cgc__opt.maxprocs;
    bool stw = atomic_load(&cgc__gc_stw_mode) != 0;

    /* 0: finish the sweep; gather roots while the world runs (the loader
     * lock may be held by a thread we would stop) */
    cgc__sweep_finish();
    free(cgc__cycle_segments);
    cgc__cycle_nsegments = cgc__roots_collect_segments(&cgc__cycle_segments);
    cgc_range *user;
    size_t nuser = cgc__roots_user(&user);
    uint64_t roots_gen = atomic_load(&cgc__user_roots_gen);
    uint64_t cpu_bg0 = atomic_load(&cgc__cpu_bg_ns), cpu_idle0 = atomic_load(&cgc__cpu_idle_ns),
             cpu_assist0 = atomic_load(&cgc__cpu_assist_ns);

    /* 1: sweep termination */
    uint64_t t0 = cgc__stop_world();
    atomic_store(&cgc__gc_phase, PHASE_SWEEP_TERM);
    CGC_ASSERT(atomic_load(&cgc__sweepers_active) == 0);
    CGC_ASSERT(atomic_load(&cgc__sweep_pages_left) == 0);
#ifdef CGC_DEBUG_CHECKS
    {
        uint32_t sg = atomic_load(&cgc__sweepgen);
        for (size_t i = 0; i < NUM_CENTRALS; i++) {
            unsigned u = 1 - (sg / 2) % 2;
            if (cgc__central[i].partial[u].head || cgc__central[i].full[u].head)
                cgc__fatal("cycle start: class %zu still has unswept spans", i);
        }
    }
#endif
    tr.heap_start = atomic_load(&cgc__pacer.heap_live);
    uint32_t cycle = atomic_fetch_add(&cgc__gc_cycle, 1) + 1;
    cgc__mark_set_jobs(cgc__cycle_segments, cgc__cycle_nsegments, user, nuser);
    free(user);
    cgc__pacer_cycle_start();
    tr.globals = cgc__globals_bytes;
    atomic_store(&cgc__gc_marking, 1);
    if (!stw) {
        __atomic_store_n(&cgc_write_barrier_enabled, 1, __ATOMIC_SEQ_CST);
        for (cgc_thread *t = cgc__threads; t; t = t->next) cgc__cache_preblacken(&t->cache);
        cgc__threads_note_stop_points();
    }
    atomic_store(&cgc__gc_phase, PHASE_MARK);
    uint64_t cpu_mark0 = 0;

    if (stw) {
        cgc_gcwork w = {0};
        for (cgc_thread *t = cgc__threads; t; t = t->next) {
            scan_thread(t, &w, cycle);
            tr.stacks += t->stack_bytes;
        }
        cgc__gcwork_dispose(&w);
        atomic_store(&cgc__heap_scan_enabled, 1);
        tr.stw1_ns = 0;
    } else {
        tr.stw1_ns = cgc__start_world() - t0;
        cgc__record_pause(tr.stw1_ns);
        tr.cpu_stw1 = stw_cpu(tr.stw1_ns);

        /* 2: concurrent mark — stacks first, then everything else */
        uint64_t m0 = cgc__nanotime();
        cpu_mark0 = cgc__thread_cputime();
        cgc__threads_wait_past_stop();
        tr.stacks = scan_stacks_concurrently(cycle);
        cgc__pacer.stacks_bytes = tr.stacks;
        atomic_store_explicit(&cgc__heap_scan_enabled, 1, RELEASE);
        cgc__mark_workers_wake();
        for (;;) {
            cgc__mark_wait_idle();
            if (!ragged_barrier(cycle)) break;
        }
        cgc_range *now;
        size_t nnow = cgc__roots_collect_segments(&now);
        tr.mark_ns = cgc__nanotime() - m0;

        t0 = cgc__stop_world();
        cgc_gcwork w = {0};
        scan_new_segments(&w, now, nnow);
        free(now);
        cgc__gcwork_dispose(&w);
    }

    /* 3: mark termination (world stopped) */
    atomic_store(&cgc__gc_phase, PHASE_MARK_TERM);
    {
        cgc_gcwork w = {0};
        for (cgc_thread *t = cgc__threads; t; t = t->next) {
            cgc__wbuf_flush(&t->wbuf, &w);
            if (atomic_load(&t->stack_scanned_cycle) != cycle) scan_thread(t, &w, cycle);
        }
        cgc__scan_pending_starts(&w);
        if (atomic_load(&cgc__user_roots_gen) != roots_gen) {
            cgc_range *u;
            size_t nu = cgc__roots_user(&u);
            for (size_t i = 0; i < nu; i++) cgc__scan_range(&w, u[i].lo, u[i].hi);
            free(u);
        }
        cgc__gcwork_dispose(&w);
    }
    cgc__mark_stw_drain();
    cgc__mark_workers_stop();
    CGC_ASSERT(cgc__work_empty());
    if (cgc__opt.gccheckmark) cgc__checkmark_verify();
    __atomic_store_n(&cgc_write_barrier_enabled, 0, __ATOMIC_SEQ_CST);
    atomic_store(&cgc__gc_marking, 0);
    atomic_store(&cgc__heap_scan_enabled, 0);
    uint64_t marked = atomic_load(&cgc__pacer.heap_marked); /* traced */
    uint64_t scan_work = atomic_load(&cgc__pacer.scan_work_done);
    tr.heap_end = atomic_load(&cgc__pacer.heap_live);
    flush_all_caches();
    atomic_fetch_add(&cgc__sweepgen, 2);
    cgc__pacer_cycle_end(marked, scan_work, tr.mark_ns);
    tr.heap_marked = marked;
    tr.goal = atomic_load(&cgc__pacer.heap_goal);
    atomic_store(&cgc__gc_phase, PHASE_OFF);
    uint64_t t_end = cgc__start_world();
    if (stw) tr.stw1_ns = t_end - t0; /* one pause: reported as sweep termination */
    else tr.stw2_ns = t_end - t0;
    cgc__record_pause(stw ? tr.stw1_ns : tr.stw2_ns);
    if (stw) tr.cpu_stw1 = stw_cpu(tr.stw1_ns);
    else tr.cpu_stw2 = stw_cpu(tr.stw2_ns);

    /* 4: concurrent sweep */
    cgc__sweep_start();

    tr.cpu_bg = atomic_load(&cgc__cpu_bg_ns) - cpu_bg0 + (cpu_mark0 ? cgc__thread_cputime() - cpu_mark0 : 0);
    tr.cpu_idle = atomic_load(&cgc__cpu_idle_ns) - cpu_idle0;
    tr.cpu_assist = atomic_load(&cgc__cpu_assist_ns) - cpu_assist0;
    uint64_t gc_cpu = tr.cpu_stw1 + tr.cpu_stw2 + tr.cpu_bg + tr.cpu_idle + tr.cpu_assist;
    atomic_fetch_add(&cgc__stats.gc_cpu_ns, gc_cpu);
    /* CPU limiter: more than half the machine's time since the previous
     * cycle ended went to the collector -> no assists next cycle.  The
     * window is the whole period, not the mark alone: while a mark runs
     * the collector is meant to take most of the CPU, and judging the mark
     * by itself switched assists off every other cycle of a program that
     * allocates fast (binary-trees), letting its heap overshoot the goal by
     * half.  Idle workers do not count (as in Go's limiter): they only use
     * CPU nobody else wanted. */
    uint64_t window = t_end - (last_cycle_end_ns < tr.start_ns ? last_cycle_end_ns : tr.start_ns);
    cgc__pacer_set_limiter(window && gc_cpu - tr.cpu_idle > window * (uint64_t)cgc__opt.maxprocs / 2);
    atomic_fetch_add(&cgc__stats.num_gc, 1);
    if (forced) atomic_fetch_add(&cgc__stats.num_forced_gc, 1);
    atomic_store(&cgc__stats.last_gc_unix_ns, cgc__walltime());
    last_cycle_end_ns = t_end;
    if (cgc__opt.gctrace) cgc__trace_cycle(&tr);
}

/* -------------------------------------------------------- coordinator -- */

static void *coordinator_main(void *arg) {
    (void)arg;
    /* 100 us: the coordinator's steps are short, and each one waits for
     * it to get a CPU again */
    cgc__thread_set_slice(100 * 1000);
    /* the workers now, not when the first cycle starts: making a thread
     * takes some 100 us here, and the first mark should not wait for it */
    cgc__mark_workers_start();
    pthread_mutex_lock(&gc_lock);
    for (;;) {
        while (!request_pending) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 10;
            int err = pthread_cond_timedwait(&gc_cv, &gc_lock, &ts);
            if (err == ETIMEDOUT && cgc__nanotime() - last_cycle_end_ns > FORCED_PERIOD_NS &&
                !atomic_load(&cgc__gc_disabled) && cgc__opt.percent >= 0) {
                request_pending = request_forced = true; /* Go's forced periodic cycle */
            }
        }
        bool forced = request_forced;
        request_pending = request_forced = false;
        cycles_started++;
        pthread_mutex_unlock(&gc_lock);
        run_cycle(forced);
        pthread_mutex_lock(&gc_lock);
        cycles_finished++;
        pthread_cond_broadcast(&done_cv);
    }
    return NULL;
}

static void ensure_coordinator_locked(void) {
    if (coordinator_running) return;
    static pthread_t th;
    if (cgc__internal_thread(&th, "cgc-gc", coordinator_main, NULL)) cgc__fatal("cannot start the collector thread");
    cgc__sweeper_init();
    coordinator_running = true;
}

void cgc__gc_maybe_trigger(void) {
    if (atomic_load_explicit(&cgc__pacer.heap_live, RELAXED) < atomic_load_explicit(&cgc__pacer.trigger, RELAXED))
        return;
    if (atomic_load_explicit(&cgc__gc_disabled, RELAXED)) return;
    if (cgc__opt.percent < 0 && cgc__opt.memlimit == INT64_MAX) return; /* Go: GOGC=off, no limit */
    if (atomic_load_explicit(&cgc__gc_phase, RELAXED) != PHASE_OFF) return;
    /* Never wait for gc_lock here: the caller is inside cgc, where it
     * cannot answer a stop, and the lock's holder can be a thread that a
     * stop has parked (cgc_collect takes the lock outside cgc, and a stop
     * signal sent just before its blocking region began arrives after it
     * holds the lock): the collector would wait for this thread, this
     * thread for the lock, the holder for the collector.  A busy lock is
     * harmless to skip: heap_live stays past the trigger, so the next
     * refill asks again, unless the holder is asking for a cycle anyway. */
    if (pthread_mutex_trylock(&gc_lock) != 0) return;
    if (!request_pending && cycles_started == cycles_finished) {
        ensure_coordinator_locked();
        request_pending = true;
        pthread_cond_signal(&gc_cv);
    }
    pthread_mutex_unlock(&gc_lock);
}

void cgc_collect(void) {
    cgc__ensure_init();
    cgc_thread *t = cgc__thread_register_self();
    if (t->in_cgc) cgc__fatal("cgc_collect called from inside cgc (an OOM handler during allocation?)");
    /* while we wait our stack is scanned as it is now, without signals */
    cgc_blocking_begin();
    pthread_mutex_lock(&gc_lock);
    ensure_coordinator_locked();
    /* a cycle already running may have missed what the caller dropped */
    uint64_t target = cycles_finished + (cycles_started > cycles_finished ? 2 : 1);
    request_pending = true;
    request_forced = true;
    pthread_cond_signal(&gc_cv);
    while (cycles_finished < target) {
        if (!request_pending && cycles_started == cycles_finished) {
            request_pending = request_forced = true;
            pthread_cond_signal(&gc_cv);
        }
        pthread_cond_wait(&done_cv, &gc_lock);
    }
    pthread_mutex_unlock(&gc_lock);
    cgc_blocking_end();
    /* returns when the cycle's sweep is done */
    sig_atomic_t prev = cgc__enter(t);
    cgc__sweep_finish();
    cgc__leave(t, prev);
}

/* --------------------------------------------------------- control -- */

int cgc_set_percent(int percent) {
    cgc__ensure_init();
    int old = cgc__opt.percent;
    cgc__opt.percent = percent < 0 ? -1 : percent;
    cgc__pacer_retarget();
    return old;
}

void cgc_disable(void) {
    cgc__ensure_init();
    atomic_fetch_add(&cgc__gc_disabled, 1);
}

void cgc_enable(void) {
    int old = atomic_fetch_sub(&cgc__gc_disabled, 1);
    if (old <= 0) {
        atomic_fetch_add(&cgc__gc_disabled, 1);
        cgc__fatal("cgc_enable without a matching cgc_disable");
    }
}

int64_t cgc_set_memory_limit(int64_t bytes) {
    cgc__ensure_init();
    int64_t old = cgc__opt.memlimit;
    if (bytes >= 0) {
        cgc__opt.memlimit = bytes;
        cgc__pacer_retarget();
    }
    return old;
}

int cgc_set_stoptheworld(int on) {
    cgc__ensure_init();
    return atomic_exchange(&cgc__gc_stw_mode, on ? 1 : 0);
}

/* -------------------------------------------------------------- init -- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void do_init(void) {
    cgc__start_ns = cgc__nanotime();
    cgc__options_init();
    cgc__span_tables_init();
    cgc__heap_init();
    cgc__central_init();
    cgc__pacer_init();
    cgc__malloc_init();
    atomic_store(&cgc__gc_stw_mode, cgc__opt.gcstoptheworld);
    last_cycle_end_ns = cgc__nanotime();
    cgc__threads_init(); /* registers the calling thread */
    atomic_store(&cgc__init_done, 1);
    /* The collector's threads start with cgc, as bdwgc's markers do, not at
     * the first trigger: there the allocating thread made them inside one
     * allocation, which then took 0.5-1 ms (clone, stacks, page faults). */
    pthread_mutex_lock(&gc_lock);
    ensure_coordinator_locked();
    pthread_mutex_unlock(&gc_lock);
}

void cgc__ensure_init(void) {
    if (likely(atomic_load_explicit(&cgc__init_done, ACQUIRE))) return;
    pthread_once(&init_once, do_init);
}

void cgc_init(void) { cgc__ensure_init(); }


/* fork(): no cycle may be half done, and no cgc lock held by another
 * thread, when the child is made (threads.c calls these around its own). */
void cgc__gc_fork_prepare(void) {
    pthread_mutex_lock(&gc_lock);
    while (cycles_started > cycles_finished || request_pending) {
        if (!coordinator_running) break;
        pthread_cond_wait(&done_cv, &gc_lock);
    }
}

void cgc__gc_fork_parent(void) { pthread_mutex_unlock(&gc_lock); }

void cgc__gc_after_fork_child(void) {
    /* the collector's threads do not exist in the child */
    pthread_mutex_init(&gc_lock, NULL);
    pthread_cond_init(&gc_cv, NULL);
    pthread_cond_init(&done_cv, NULL);
    coordinator_running = false;
    request_pending = request_forced = false;
    cycles_started = cycles_finished;
    cgc__mark_after_fork_child();
    void cgc__sweep_after_fork_child(void);
    cgc__sweep_after_fork_child();
}
