/*
 * trace.c — statistics (cgc_read_stats) and Go's gctrace line.
 */
#include "internal.h"

cgc_global_stats cgc__stats;
uint64_t cgc__start_ns;

void cgc__record_pause(uint64_t ns) {
    uint64_t i = atomic_fetch_add_explicit(&cgc__stats.num_pauses, 1, RELAXED);
    atomic_store_explicit(&cgc__stats.pause_ns[i % CGC_PAUSE_HISTORY], ns, RELAXED);
    atomic_fetch_add_explicit(&cgc__stats.pause_total_ns, ns, RELAXED);
    uint64_t mx = atomic_load_explicit(&cgc__stats.pause_max_ns, RELAXED);
    while (ns > mx && !atomic_compare_exchange_weak_explicit(&cgc__stats.pause_max_ns, &mx, ns, RELAXED, RELAXED)) {
    }
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }
static unsigned long long mb(uint64_t b) { return (unsigned long long)(b >> 20); }

/* gc # @#s #%: #+#+# ms clock, #+#/#/#+# ms cpu, #->#-># MB, # MB goal,
 * # MB stacks, # MB globals, # P — as Go prints it. */
void cgc__trace_cycle(const cgc_cycle_trace *t) {
    uint64_t now = cgc__nanotime();
    double since = (double)(now - cgc__start_ns) / 1e9;
    uint64_t gc_cpu = atomic_load(&cgc__stats.gc_cpu_ns);
    double pct = since > 0 ? 100.0 * (double)gc_cpu / ((double)(now - cgc__start_ns) * t->procs) : 0;
    cgc__printf("gc %llu @%.3fs %.0f%%: %.3g+%.3g+%.3g ms clock, %.3g+%.3g/%.3g/%.3g+%.3g ms cpu, "
                "%llu->%llu->%llu MB, %llu MB goal, %llu MB stacks, %llu MB globals, %d P%s",
                (unsigned long long)atomic_load(&cgc__stats.num_gc), since, pct, ms(t->stw1_ns), ms(t->mark_ns),
                ms(t->stw2_ns), ms(t->cpu_stw1), ms(t->cpu_assist), ms(t->cpu_bg), ms(t->cpu_idle), ms(t->cpu_stw2),
                mb(t->heap_start), mb(t->heap_end), mb(t->heap_marked), mb(t->goal), mb(t->stacks), mb(t->globals),
                t->procs, t->forced ? " (forced)" : "");
}

void cgc_read_stats_sized(cgc_stats *out, size_t size) {
    cgc__ensure_init();
    cgc_stats s;
    memset(&s, 0, sizeof s);
    s.version = CGC_STATS_VERSION;
    s.size = (uint32_t)(size < sizeof s ? size : sizeof s);
    cgc_heap_totals h;
    /* The heap lock is taken inside cgc: a thread stopped while holding it
     * would stall every thread that must finish its own cgc work (and
     * take the lock) before it can stop.  The registry lock below is taken
     * outside: the coordinator holds it while it waits for threads to stop,
     * so a thread that waits for it must be stoppable. */
    cgc_thread *self = cgc__self;
    sig_atomic_t prev = self ? cgc__enter(self) : 0;
    cgc__heap_totals(&h);
    if (self) cgc__leave(self, prev);
    s.heap_sys = h.sys;
    s.heap_inuse = h.inuse;
    s.heap_released = h.released;
    s.heap_alloc = atomic_load(&cgc__pacer.heap_live);
    s.heap_goal = atomic_load(&cgc__pacer.heap_goal);
    s.total_alloc = atomic_load(&cgc__stats.total_alloc);
    s.mallocs = atomic_load(&cgc__stats.mallocs);
    s.frees = atomic_load(&cgc__stats.frees);
    /* counters still in thread caches (racy reads of the owners' counters
     * are fine for statistics: registry lock keeps the structs alive) */
    cgc__threads_lock();
    for (cgc_thread *t = cgc__threads; t; t = t->next) {
        for (size_t i = 0; i < NUM_CENTRALS; i++) {
            uint64_t n = __atomic_load_n(&t->cache.cls[i].nmalloc, __ATOMIC_RELAXED);
            if (!n) continue;
            unsigned sc = i == TINY_SPAN_CLASS ? 0 : (unsigned)(i / SPAN_KINDS);
            s.mallocs += n;
            s.total_alloc += n * (sc ? cgc_class_size[sc] : TINY_BLOCK);
        }
        s.mallocs += __atomic_load_n(&t->cache.nlarge, __ATOMIC_RELAXED);
        s.total_alloc += __atomic_load_n(&t->cache.large_bytes, __ATOMIC_RELAXED);
        s.frees += __atomic_load_n(&t->cache.nfree, __ATOMIC_RELAXED);
    }
    cgc__threads_unlock();
    s.num_gc = atomic_load(&cgc__stats.num_gc);
    s.num_forced_gc = atomic_load(&cgc__stats.num_forced_gc);
    s.pause_total_ns = atomic_load(&cgc__stats.pause_total_ns);
    s.pause_max_ns = atomic_load(&cgc__stats.pause_max_ns);
    s.num_pauses = atomic_load(&cgc__stats.num_pauses);
    for (int i = 0; i < CGC_PAUSE_HISTORY; i++) s.pause_ns[i] = atomic_load(&cgc__stats.pause_ns[i]);
    s.gc_cpu_ns = atomic_load(&cgc__stats.gc_cpu_ns);
    s.assist_ns = atomic_load(&cgc__stats.assist_ns);
    s.assist_max_ns = atomic_load(&cgc__stats.assist_max_ns);
    s.last_gc_unix_ns = atomic_load(&cgc__stats.last_gc_unix_ns);
    s.num_threads = atomic_load(&cgc__nthreads);
    s.gc_procs = (uint32_t)cgc__opt.maxprocs;
    s.heap_live_marked = atomic_load(&cgc__pacer.last_marked);
    memcpy(out, &s, s.size);
}
