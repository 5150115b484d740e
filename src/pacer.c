/*
 * pacer.c — when to start a cycle, and how much marking allocating threads
 * must do (Go 1.18's pacer, simplified).
 *
 * Goal: heap_goal = marked + (marked + stacks + globals) * CGC_PERCENT/100
 * (marked: bytes the mark reached by tracing; objects allocated during it
 * are counted live but do not raise the goal until a mark traces them,
 * except as far as explicit frees show which of them survive: see
 * cgc__pacer_cycle_end),
 * at least 4 MiB, lowered to fit CGC_MEMLIMIT.  The mark should end as the
 * heap reaches the goal.  Trigger: goal minus the runway, the bytes the
 * program is expected to allocate while the mark runs, measured as the
 * cons/mark ratio (bytes allocated per byte of scan work during the last
 * mark) times the expected scan work; clamped between 70 % and 95 % of the
 * way from marked to goal (Go's bounds).
 *
 * Assists: while marking, an allocating thread owes scan work in
 * proportion to what it allocates (assist_work_per_byte = remaining scan
 * work / remaining heap until the goal).  It first spends its own credit
 * (what its earlier assists of this cycle scanned beyond their debt: an
 * assist scans at least 64 KiB), then credit the background workers built
 * up, then scans, each assist bounded to 100 µs
 * (cgc's departure from Go, whose assists stall for milliseconds): if the
 * assists cannot keep up the heap overshoots the goal instead; the
 * overshoot is visible in gctrace as heap at mark end > goal.  It is
 * bounded: past goal + (goal - marked) + 4 MiB an allocating thread waits
 * for the mark to end (cgc__wait_for_mark_end), as a blocked thread.
 *
 * GC CPU limiter: if the collector used more than 50 % of the machine's
 * CPU time from the end of the previous cycle to the end of this one
 * (gc.c), the next cycle skips assists (the heap may then grow up to the
 * overshoot bound), so that a memory limit cannot push the program into a
 * death spiral of back-to-back assisted cycles.
 */
#include "internal.h"

cgc_pacer cgc__pacer;
extern uint64_t cgc__globals_bytes;
static _Atomic int limiter_on;
#define MIN_HEAP (4u << 20)
#define ASSIST_MAX_NS 100000
/* An assist scans at least this much (Go's gcOverAssistWork) and keeps
 * the surplus as the thread's credit for its next allocations: a drain
 * has a fixed cost (the pacer's revision, the credit exchange, the clock,
 * waking the coordinator when the last drainer stops), and paying each
 * refill's 10-40 KiB of debt with a drain of its own spent several
 * percent of binary-trees' time on that cost alone.  At 10 ns per 16-byte
 * object this is about 40 us, within the time bound. */
#define ASSIST_MIN_WORK ((int64_t)64 << 10)

uint64_t cgc__pacer_goal(uint64_t marked) {
    int percent = cgc__opt.percent;
    uint64_t goal;
    if (percent < 0) goal = UINT64_MAX / 2;
    else goal = marked + (marked + cgc__pacer.stacks_bytes + cgc__pacer.globals_bytes) * (uint64_t)percent / 100;
    if (goal < MIN_HEAP) goal = MIN_HEAP;
    int64_t limit = cgc__opt.memlimit;
    if (limit != INT64_MAX) {
        /* leave 5 % of the limit to memory the heap does not count */
        uint64_t cap = (uint64_t)limit - (uint64_t)limit / 20;
        if (goal > cap) goal = cap > marked + (marked >> 4) ? cap : marked + (marked >> 4);
    }
    return goal;
}

static void set_trigger(uint64_t marked, uint64_t goal) {
    uint64_t expected = marked + cgc__pacer.stacks_bytes + cgc__pacer.globals_bytes;
    double cm = cgc__pacer.cons_mark > 0 ? cgc__pacer.cons_mark : 1.0;
    uint64_t runway = (uint64_t)(cm * (double)expected);
    uint64_t span = goal > marked ? goal - marked : 0;
    uint64_t lo = marked + span * 7 / 10, hi = marked + span * 95 / 100;
    uint64_t trigger = goal > runway ? goal - runway : 0;
    if (trigger < lo) trigger = lo;
    if (trigger > hi) trigger = hi;
    if (goal == MIN_HEAP && marked < MIN_HEAP / 2) trigger = MIN_HEAP * 7 / 10;
    atomic_store_explicit(&cgc__pacer.heap_goal, goal, RELAXED);
    atomic_store_explicit(&cgc__pacer.trigger, trigger, RELAXED);
    atomic_store_explicit(&cgc__pacer.scan_work_expected, expected, RELAXED);
}

void cgc__pacer_init(void) { set_trigger(0, cgc__pacer_goal(0)); }

/* Mark start (world stopped). */
void cgc__pacer_cycle_start(void) {
    cgc__pacer.mark_start_live = atomic_load_explicit(&cgc__pacer.heap_live, RELAXED);
    cgc__pacer.mark_start_ns = cgc__nanotime();
    atomic_store_explicit(&cgc__pacer.heap_marked, 0, RELAXED);
    atomic_store_explicit(&cgc__pacer.black_bytes, 0, RELAXED);
    atomic_store_explicit(&cgc__pacer.freed_marked, 0, RELAXED);
    atomic_store_explicit(&cgc__pacer.scan_work_done, 0, RELAXED);
    atomic_store_explicit(&cgc__pacer.bg_credit, 0, RELAXED);
    cgc__pacer.globals_bytes = cgc__globals_bytes;
    cgc__pacer_revise();
}

/* Mark end (world stopped): the live heap is known; set the next goal. */
void cgc__pacer_cycle_end(uint64_t marked, uint64_t scan_work, uint64_t mark_ns) {
    (void)mark_ns;
    uint64_t live_now = atomic_load_explicit(&cgc__pacer.heap_live, RELAXED);
    uint64_t allocated = live_now > cgc__pacer.mark_start_live ? live_now - cgc__pacer.mark_start_live : 0;
    if (scan_work) {
        double cm = (double)allocated / (double)scan_work;
        /* smoothed like Go's cons/mark estimate (a short history) */
        cgc__pacer.cons_mark = cgc__pacer.cons_mark > 0 ? 0.5 * cgc__pacer.cons_mark + 0.5 * cm : cm;
    }
    /* What is allocated now: traced + allocated black.  The next goal grows
     * from the traced bytes only: counting everything allocated during a
     * mark slowed down by a busy machine would compound into a goal that
     * doubles each cycle (objects allocated during the mark that live on
     * are traced next time). */
    uint64_t black = atomic_load_explicit(&cgc__pacer.black_bytes, RELAXED);
    /* less what the program freed with cgc_free during the mark after it
     * was counted in one or the other: a program that frees as it
     * allocates (a malloc replacement) would otherwise come out of every
     * mark with its allocations during the mark counted and its frees
     * not, and start the next cycle at once */
    uint64_t freed = atomic_load_explicit(&cgc__pacer.freed_marked, RELAXED);
    uint64_t live = marked + black;
    live = live > freed ? live - freed : 0;
    atomic_store_explicit(&cgc__pacer.heap_live, live, RELAXED);
    /* The goal's base: the traced bytes, plus the objects allocated black
     * that are still allocated, as far as the program frees explicitly.
     * A program that replaces its whole live set within one mark (a
     * malloc replacement under churn: 4096 objects per thread replaced
     * every 100 us) leaves almost nothing to trace, everything it holds
     * having been allocated during the mark; from the traced bytes alone
     * its goal came out below what it holds, and the next cycle started
     * at once (2 to 10 back-to-back cycles in a 0.15 s run).  Its frees
     * say how many of the black objects died; a program that frees
     * nothing (the case above) keeps the traced base. */
    uint64_t net_black = black > freed ? black - freed : 0;
    uint64_t base = marked + (net_black < freed ? net_black : freed);
    atomic_store_explicit(&cgc__pacer.last_marked, base, RELAXED);
    set_trigger(base, cgc__pacer_goal(base));
}

void cgc__pacer_retarget(void) {
    uint64_t marked = atomic_load_explicit(&cgc__pacer.last_marked, RELAXED);
    set_trigger(marked, cgc__pacer_goal(marked));
    cgc__gc_maybe_trigger();
}

void cgc__pacer_revise(void) {
    uint64_t goal = atomic_load_explicit(&cgc__pacer.heap_goal, RELAXED);
    uint64_t live = atomic_load_explicit(&cgc__pacer.heap_live, RELAXED);
    uint64_t expected = atomic_load_explicit(&cgc__pacer.scan_work_expected, RELAXED);
    uint64_t done = atomic_load_explicit(&cgc__pacer.scan_work_done, RELAXED);
    uint64_t work_left = expected > done ? expected - done : expected / 10 + 1;
    /* past the goal, assume another 10 % of headroom rather than dividing
     * by zero: the overshoot bound */
    uint64_t heap_left = goal > live + (goal >> 4) ? goal - live : goal >> 4;
    double ratio = (double)work_left / (double)(heap_left ? heap_left : 1);
    atomic_store_explicit(&cgc__pacer.assist_work_per_byte, ratio, RELAXED);
}

void cgc__pacer_set_limiter(bool on) { atomic_store_explicit(&limiter_on, on, RELAXED); }
bool cgc__pacer_limiter(void) { return atomic_load_explicit(&limiter_on, RELAXED); }

extern _Atomic int cgc__heap_scan_enabled;

/* The overshoot bound: while a mark runs, the heap may grow past the goal
 * by at most the goal's own headroom again (goal - marked) plus 4 MiB;
 * beyond that an allocating thread waits for the mark to end instead of
 * assisting without end. */
static bool past_bound(void) {
    uint64_t goal = atomic_load_explicit(&cgc__pacer.heap_goal, RELAXED);
    uint64_t marked = atomic_load_explicit(&cgc__pacer.last_marked, RELAXED);
    uint64_t headroom = goal > marked ? goal - marked : goal;
    return atomic_load_explicit(&cgc__pacer.heap_live, RELAXED) > goal + headroom + (4u << 20);
}

#ifdef CGC_DEBUG_CHECKS
#define FORCED_WAIT(t) (atomic_load_explicit(&cgc__debug_mark_wait_thread, RELAXED) == (t))
#else
#define FORCED_WAIT(t) false
#endif

void cgc__assist(cgc_thread *t, uint64_t bytes) {
    if ((FORCED_WAIT(t) || past_bound()) && atomic_load_explicit(&cgc__gc_marking, RELAXED)) {
        cgc__wait_for_mark_end(t);
        return;
    }
    if (!atomic_load_explicit(&cgc__heap_scan_enabled, ACQUIRE) || atomic_load_explicit(&limiter_on, RELAXED)) return;
    cgc__pacer_revise();
    double ratio = atomic_load_explicit(&cgc__pacer.assist_work_per_byte, RELAXED);
    int64_t debt = (int64_t)(ratio * (double)bytes);
    if (debt <= 0) return;
    /* the thread's own credit from earlier assists of this cycle */
    uint32_t cycle = atomic_load_explicit(&cgc__gc_cycle, RELAXED);
    if (t->assist_cycle != cycle) {
        t->assist_cycle = cycle;
        t->assist_credit = 0;
    }
    if (t->assist_credit >= debt) {
        t->assist_credit -= debt;
        return;
    }
    debt -= t->assist_credit;
    t->assist_credit = 0;
    /* then the background workers' credit */
    int64_t credit = atomic_load_explicit(&cgc__pacer.bg_credit, RELAXED);
    while (credit > 0) {
        int64_t take = credit < debt ? credit : debt;
        if (atomic_compare_exchange_weak_explicit(&cgc__pacer.bg_credit, &credit, credit - take, RELAXED, RELAXED)) {
            debt -= take;
            break;
        }
    }
    if (debt <= 0) return;
    /* The time counts as the assist's CPU too, as in Go: the thread's CPU
     * clock is a system call, two per assist, and a thread preempted in
     * an assist holds up its program all the same. */
    uint64_t t0 = cgc__nanotime();
    cgc_gcwork w = {0};
    cgc__mark_assist_begin();
    cgc__drain(&w, (uint64_t)(debt > ASSIST_MIN_WORK ? debt : ASSIST_MIN_WORK), t0 + ASSIST_MAX_NS);
    int64_t done = (int64_t)w.scan_work;
    cgc__gcwork_dispose(&w);
    cgc__mark_assist_end();
    if (done > debt) t->assist_credit = done - debt;
    uint64_t wall = cgc__nanotime() - t0;
    atomic_fetch_add_explicit(&cgc__cpu_assist_ns, wall, RELAXED);
    atomic_fetch_add_explicit(&cgc__stats.assist_ns, wall, RELAXED);
    uint64_t mx = atomic_load_explicit(&cgc__stats.assist_max_ns, RELAXED);
    while (wall > mx && !atomic_compare_exchange_weak_explicit(&cgc__stats.assist_max_ns, &mx, wall, RELAXED, RELAXED)) {
    }
}
