/*
 * mark.c — finding pointers, greying, scanning and draining, root jobs, and
 * the mark workers.
 *
 * Tri-colour invariant (Go's, with the hybrid barrier): an object is white
 * while its mark byte is clear, grey while its mark byte is set and its
 * address sits in a work buffer, black once scanned.  During the mark no
 * black object points to a white object that is not also reachable from a
 * grey object through white objects (weak invariant); new objects are
 * black; each thread's stack is scanned once and is black afterwards.
 * After mark termination no grey object remains (checked in debug builds).
 *
 * Pointer test (conservative): a word is a pointer if it lies inside an
 * in-use span's objects AND the slot it falls in is allocated (alloc bit):
 * a free slot may hold a stale pointer, and marking it would resurrect
 * garbage or a slot about to be handed out.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

_Atomic int cgc__gc_marking;
extern _Atomic uintptr_t cgc__heap_min, cgc__heap_max;
void cgc__checkmark_missed(cgc_gcwork *w, cgc_span *s, uint32_t idx, uintptr_t p);

#define OBLET_BYTES (128 * 1024) /* large objects are scanned in pieces */
#define ROOT_SHARD (256 * 1024)
#define SCAN_STEP 4096 /* bytes of a large object scanned between deadline checks */

/* ---------------------------------------------------------- greying -- */

/* The heap's address range, read once per scan.  Every address in it is
 * below 2^47 (arena.c refuses arenas beyond), which is what lets the
 * marking loops use cgc__span_of_low.  Before the first arena the bounds
 * are UINTPTR_MAX and 0, and while the first arena is published a reader
 * can see its lower bound with the old upper bound of 0: either way the
 * range must come out empty, not wrap around to cover every address.
 * Later the bounds only grow: a stale pair misses at most an arena added
 * after the mark started, whose objects are all allocated black. */
typedef struct heap_range {
    uintptr_t lo, size;
} heap_range;

static ALWAYS_INLINE heap_range heap_range_now(void) {
    uintptr_t lo = atomic_load_explicit(&cgc__heap_min, RELAXED);
    uintptr_t hi = atomic_load_explicit(&cgc__heap_max, RELAXED);
    return (heap_range){lo, hi > lo ? hi - lo : 0};
}

static ALWAYS_INLINE bool in_heap(heap_range r, uintptr_t p) { return p - r.lo < r.size; }

/* p's span s (from the address map) is known, and the index idx of the
 * slot p falls in (cgc__obj_index); the rest of the pointer test and the
 * greying.  checkmark is a constant at every call: the marking loops are
 * compiled once without the verifier's branches. */
static ALWAYS_INLINE void shade_slot(cgc_gcwork *w, cgc_span *s, uintptr_t p, uint32_t idx, bool checkmark) {
    /* No test of the span's state or bounds: while a mark runs no span is
     * freed (cgc__heap_free_span), so a span the map names for p's page is
     * in use and base <= p < base + its pages.  Past limit (a small span's
     * tail) idx is nelems, whose alloc bit is never set, and idx <= 1023
     * (a 1024-slot span has no tail): the bit test below rejects it. */
    CGC_ASSERT(atomic_load_explicit(&cgc__gc_marking, RELAXED) || checkmark);
    CGC_ASSERT(atomic_load_explicit(&s->state, ACQUIRE) == SPAN_IN_USE && p >= s->base &&
               p < s->base + ((uintptr_t)s->npages << CGC_PAGE_SHIFT));
    CGC_ASSERT(idx == cgc__obj_index(s, p));
    CGC_ASSERT(idx <= s->nelems && idx < SPAN_MAX_ELEMS && (p < s->limit || idx == s->nelems));
    uint64_t bit = 1ull << (idx & 63);
    /* acquire: pairs with nothing stronger than x86 order, but keeps the
     * alloc-bit test before the mark test (a slot handed out while
     * marking was marked first: cache.c pre-marks) */
    if (!((atomic_load_explicit(&s->alloc_bits[idx >> 6], ACQUIRE) >> (idx & 63)) & 1)) return;
    if (checkmark) {
        /* the verifier's own bitmap, set atomically */
        _Atomic uint64_t *cw = &s->check_bits[idx >> 6];
        if (atomic_load_explicit(cw, RELAXED) & bit) return;
        if (atomic_fetch_or_explicit(cw, bit, RELAXED) & bit) return;
        if (!cgc__marked(s, idx)) cgc__checkmark_missed(w, s, idx, p);
    } else {
        /* a plain byte store, no locked instruction: a marker racing on
         * the same object queues it a second time (internal.h) */
        if (cgc__marked(s, idx)) return;
        cgc__set_mark(s, idx);
        w->bytes_marked += s->elemsize;
    }
    if (s->kind != KIND_NOSCAN) cgc__gcwork_push(w, (s->base + idx * s->elemsize) | (checkmark ? 0 : s->grey_tag));
}

static ALWAYS_INLINE void shade_in_span(cgc_gcwork *w, cgc_span *s, uintptr_t p, bool checkmark) {
    shade_slot(w, s, p, cgc__obj_index(s, p), checkmark);
}

/* One word, shaded at once (the barrier's flush, the verifier). */
static ALWAYS_INLINE void shade_now(cgc_gcwork *w, uintptr_t p, bool checkmark) {
    if (!in_heap(heap_range_now(), p)) return;
    cgc_span *s = cgc__span_of(p);
    if (s) shade_in_span(w, s, p, checkmark);
}

void cgc__shade(cgc_gcwork *w, uintptr_t p) {
    if (unlikely(w->checkmark)) shade_now(w, p, true);
    else shade_now(w, p, false);
}

/* A marking loop's state, kept in the loop's frame so that the compiler
 * can hold it in registers: the heap's range and the address map, read
 * once when the loop starts (a range read then is enough: see heap_range
 * above), and the ring of candidates.
 *
 * The ring pipelines the greying: a word that passes the range test and
 * maps to a span has that span's first two lines (the header with the
 * mark array's address and the alloc bitmap's first word, then its next
 * eight words) prefetched and waits in the ring.  Halfway through, when
 * the header has arrived, its slot index is computed and its mark byte
 * (in the span's separate mark array) prefetched; the word that has
 * waited CAND_N candidates is then tested and greyed.  Each pointer
 * otherwise stalls on those misses one after the other (the span struct,
 * then its mark byte), on top of the grey object's own miss that the
 * drain's ring already hides.  (The halfway step costs 7 instructions per
 * node on an allocation-ordered tree, where everything is in cache, and
 * no time there; it saves a fifth of a marker's time on randomly linked
 * nodes.)  Spans do not change state while a mark runs, so the
 * deferred test sees what an immediate one would.  A slot whose span is
 * NULL is empty (only at the start); scanner_finish shades what is left.
 * gccheckmark does not use the ring: it shades at once and names the word
 * each object came from. */
#ifndef CAND_N
#define CAND_N 8 /* a power of two; overridable for measurements */
#endif
typedef struct scanner {
    cgc_gcwork *w;
    heap_range heap;
    _Atomic(cgc_arena *) *map;
    unsigned head;
    uintptr_t cand_p[CAND_N];
    cgc_span *cand_s[CAND_N];
    uint32_t cand_i[CAND_N]; /* slot index, from halfway on */
} scanner;

static ALWAYS_INLINE void scanner_start(scanner *sc, cgc_gcwork *w) {
    sc->w = w;
    sc->heap = heap_range_now();
    sc->map = cgc__arena_map; /* set once, before the first allocation */
    sc->head = 0;
    for (unsigned i = 0; i < CAND_N; i++) sc->cand_s[i] = NULL;
}

/* Shades the candidates still in the ring, which may push grey objects;
 * false if it was empty. */
static ALWAYS_INLINE bool scanner_finish(scanner *sc) {
    bool any = false;
    for (unsigned i = 0; i < CAND_N; i++) {
        cgc_span *s = sc->cand_s[i];
        if (!s) continue;
        sc->cand_s[i] = NULL;
        shade_in_span(sc->w, s, sc->cand_p[i], false);
        any = true;
    }
    return any;
}

static ALWAYS_INLINE void shade_candidate(scanner *sc, uintptr_t p) {
    if (!in_heap(sc->heap, p)) return;
    /* cgc__span_of_low with the map's address in a register */
    cgc_arena *a = atomic_load_explicit(&sc->map[p >> ARENA_SHIFT], ACQUIRE);
    if (a == NULL) return;
    cgc_span *s = atomic_load_explicit(&a->spans[(p & (ARENA_SIZE - 1)) >> CGC_PAGE_SHIFT], ACQUIRE);
    if (s == NULL) return;
    __builtin_prefetch(s);                 /* the mark array's address and alloc_bits[0] */
    __builtin_prefetch(&s->alloc_bits[1]); /* words 1-8 */
    unsigned h = sc->head;
    cgc_span *os = sc->cand_s[h];
    uintptr_t op = sc->cand_p[h];
    uint32_t oi = sc->cand_i[h];
    sc->cand_s[h] = s;
    sc->cand_p[h] = p;
    sc->head = (h + 1) & (CAND_N - 1);
    /* halfway: the span header of the candidate that came in CAND_N/2
     * ago has arrived; its slot index, and its mark byte prefetched */
    unsigned m = (h + CAND_N / 2) & (CAND_N - 1);
    cgc_span *ms = sc->cand_s[m];
    if (likely(ms != NULL)) {
        uint32_t mi = cgc__obj_index(ms, sc->cand_p[m]);
        sc->cand_i[m] = mi;
        __builtin_prefetch(&ms->mark[mi]);
    }
    if (likely(os != NULL)) shade_slot(sc->w, os, op, oi, false);
}

/* Reads memory the collector does not own (stacks, segments, objects).
 * The marking loop proper, inlined into the drain and scan_object; every
 * caller is exempt from the sanitizers. */
static ALWAYS_INLINE void scan_words(scanner *sc, uintptr_t lo, uintptr_t hi) {
    lo = (lo + 7) & ~(uintptr_t)7;
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t))
        shade_candidate(sc, __atomic_load_n((uintptr_t *)a, __ATOMIC_RELAXED));
    sc->w->scan_work += hi > lo ? hi - lo : 0;
}

/* gccheckmark's scan: each word shaded at once, its address kept for the
 * report. */
CGC_NO_SANITIZE static NOINLINE void scan_range_checkmark(cgc_gcwork *w, uintptr_t lo, uintptr_t hi) {
    lo = (lo + 7) & ~(uintptr_t)7;
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
        w->src_word = a;
        shade_now(w, __atomic_load_n((uintptr_t *)a, __ATOMIC_RELAXED), true);
    }
    w->scan_work += hi > lo ? hi - lo : 0;
}

/* A root range (a stack, registers, a shard of the globals): scanned with a
 * scanner of its own, finished before returning. */
CGC_NO_SANITIZE void cgc__scan_range(cgc_gcwork *w, uintptr_t lo, uintptr_t hi) {
    if (unlikely(w->checkmark)) {
        scan_range_checkmark(w, lo, hi);
        return;
    }
    scanner sc;
    scanner_start(&sc, w);
    scan_words(&sc, lo, hi);
    scanner_finish(&sc);
}

/* Pointer words of a typed object whose user data starts at user, of size
 * bytes, restricted to byte offsets [from, to).  sc is NULL for the
 * verifier, which shades each word at once. */
CGC_NO_SANITIZE static void scan_typed(cgc_gcwork *w, scanner *sc, uintptr_t user, size_t size,
                                       const cgc_type *type, size_t from, size_t to) {
    if (to > size) to = size;
    size_t tsize = type->size;
    for (size_t e = from / tsize * tsize; e < to; e += tsize) {
        for (size_t i = 0; i < type->nptrs; i++) {
            size_t off = e + type->offsets[i];
            if (off < from) continue;
            if (off >= to || off + sizeof(uintptr_t) > size) break;
            uintptr_t p = __atomic_load_n((uintptr_t *)(user + off), __ATOMIC_RELAXED);
            if (sc) shade_candidate(sc, p);
            else shade_now(w, p, true);
        }
    }
    w->scan_work += to > from ? to - from : 0;
}

/* Scans one grey entry: an object start, or a piece of a large object.
 * sc is the drain's scanner, NULL for the verifier (w->checkmark).  True
 * if it stopped inside a piece at w->deadline (the rest is queued). */
CGC_NO_SANITIZE static bool scan_object(cgc_gcwork *w, scanner *sc, uintptr_t obj) {
    cgc_span *s = cgc__span_of(obj);
    if (unlikely(w->checkmark)) {
        /* the verifier's rule (checkmark.c): a marked object must not point
         * to an unmarked one; what an unmarked object points to is not
         * checked */
        w->src = obj;
        w->src_kind = "marked object";
        w->lenient = !cgc__marked(s, cgc__obj_index(s, obj));
        /* freed with cgc_free and waiting on a remote list: its words are
         * the list's link and cookie, nothing the program stored */
        if (s->sizeclass && cgc__pending_remote_free(s, obj)) return false;
    }
    if (s->sizeclass) {
        if (s->kind == KIND_TYPED) {
            const cgc_type *type = (const cgc_type *)__atomic_load_n((uintptr_t *)obj, __ATOMIC_ACQUIRE);
            if (!type) return false; /* header not written yet: no pointer stored either */
            size_t size = __atomic_load_n((uintptr_t *)obj + 1, __ATOMIC_RELAXED);
            if (size > s->elemsize - TYPED_HEADER) size = s->elemsize - TYPED_HEADER;
            scan_typed(w, sc, obj + TYPED_HEADER, size, type, 0, size);
        } else if (sc) {
            scan_words(sc, obj, obj + s->elemsize);
        } else {
            scan_range_checkmark(w, obj, obj + s->elemsize);
        }
        return false;
    }
    /* large: pieces start at base + k * OBLET_BYTES; the first visit
     * queues the others.  An entry inside a piece (a remainder, below)
     * scans to the end of that piece. */
    uintptr_t end = s->kind == KIND_TYPED ? s->base + s->user_size : s->limit;
    if (obj == s->base)
        for (uintptr_t o = s->base + OBLET_BYTES; o < end; o += OBLET_BYTES) cgc__gcwork_push(w, o);
    uintptr_t piece_end = s->base + ((obj - s->base) / OBLET_BYTES + 1) * OBLET_BYTES;
    if (piece_end > end) piece_end = end;
    /* in steps, so that a drain with a deadline (an assist, a fractional
     * worker) stops inside a piece: one pointer-dense piece can take
     * milliseconds when every word misses the cache */
    for (uintptr_t a = obj; a < piece_end;) {
        uintptr_t e = a + SCAN_STEP < piece_end ? a + SCAN_STEP : piece_end;
        if (s->kind == KIND_TYPED) {
            if (s->type) scan_typed(w, sc, s->base, s->user_size, s->type, a - s->base, e - s->base);
        } else if (sc) {
            scan_words(sc, a, e);
        } else {
            scan_range_checkmark(w, a, e);
        }
        a = e;
        if (a < piece_end && w->deadline && cgc__nanotime() >= w->deadline) {
            cgc__gcwork_push(w, a); /* the rest stays grey */
            return true;
        }
    }
    return false;
}

/* Work units between the drain's looks at its budget and clock: an object
 * of up to 1 KiB is one unit, a bigger one one more per KiB.  Counting
 * objects alone let an assist run far past its deadline: 32 objects of
 * 32 KiB, or 32 pieces of a large pointer array each stopped after its
 * first step, took 300 us and more when every word missed the cache. */
#define DRAIN_CHECK_UNITS 32

/* The drain's step: the common case (a small conservative object, no
 * verifier) inline, everything else through scan_object.  Returns the
 * work units it used (DRAIN_CHECK_UNITS, so that the drain looks at once,
 * when a piece stopped at the deadline).  Inlined only into cgc__drain,
 * which is exempt from the sanitizers as a scanner. */
static ALWAYS_INLINE int scan_grey(scanner *sc, uintptr_t obj) {
    uintptr_t tag = obj & GREY_TAG_MASK;
    if (likely(tag)) {
        /* tag 16-byte units: pairs of words, no alignment to fix */
        const uintptr_t *o = (const uintptr_t *)(obj - tag);
        if (tag == 1) { /* the commonest: two words, no loop */
            shade_candidate(sc, __atomic_load_n(&o[0], __ATOMIC_RELAXED));
            shade_candidate(sc, __atomic_load_n(&o[1], __ATOMIC_RELAXED));
            sc->w->scan_work += 16;
            return 1;
        }
        for (uintptr_t i = 0; i < tag; i++) {
            shade_candidate(sc, __atomic_load_n(&o[2 * i], __ATOMIC_RELAXED));
            shade_candidate(sc, __atomic_load_n(&o[2 * i + 1], __ATOMIC_RELAXED));
        }
        sc->w->scan_work += tag * 16;
        return 1;
    }
    cgc_span *s = cgc__span_of_low(obj);
    if (likely(s->sizeclass && s->kind == KIND_SCAN)) {
        scan_words(sc, obj, obj + s->elemsize);
        return 1 + (int)(s->elemsize >> 10);
    }
    if (scan_object(sc->w, sc, obj)) return DRAIN_CHECK_UNITS;
    /* a piece of a large object scans up to OBLET_BYTES */
    return s->sizeclass ? 1 + (int)(s->elemsize >> 10) : DRAIN_CHECK_UNITS / 2;
}

/* ------------------------------------------------------- root jobs -- */

static cgc_range *jobs;
static size_t njobs;
static _Atomic size_t next_job;
static _Atomic size_t jobs_finished;
uint64_t cgc__globals_bytes;

void cgc__mark_set_jobs(cgc_range *segs, size_t nsegs, cgc_range *user, size_t nuser) {
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        cgc_range *v = pass ? user : segs;
        size_t nv = pass ? nuser : nsegs;
        for (size_t i = 0; i < nv; i++) n += (v[i].hi - v[i].lo + ROOT_SHARD - 1) / ROOT_SHARD;
    }
    free(jobs);
    jobs = n ? malloc(n * sizeof *jobs) : NULL;
    if (n && !jobs) cgc__fatal("out of memory for root jobs");
    njobs = 0;
    cgc__globals_bytes = 0;
    for (int pass = 0; pass < 2; pass++) {
        cgc_range *v = pass ? user : segs;
        size_t nv = pass ? nuser : nsegs;
        for (size_t i = 0; i < nv; i++) {
            cgc__globals_bytes += v[i].hi - v[i].lo;
            for (uintptr_t lo = v[i].lo; lo < v[i].hi; lo += ROOT_SHARD) {
                jobs[njobs].lo = lo;
                jobs[njobs].hi = lo + ROOT_SHARD < v[i].hi ? lo + ROOT_SHARD : v[i].hi;
                njobs++;
            }
        }
    }
    atomic_store_explicit(&jobs_finished, 0, RELAXED);
    atomic_store_explicit(&next_job, 0, RELEASE);
}

bool cgc__mark_root_job(cgc_gcwork *w) {
    if (atomic_load_explicit(&next_job, RELAXED) >= njobs) return false;
    size_t i = atomic_fetch_add_explicit(&next_job, 1, ACQ_REL);
    if (i >= njobs) return false;
    if (unlikely(w->checkmark)) {
        w->src = jobs[i].lo;
        w->src_kind = "root range";
    }
    cgc__scan_range(w, jobs[i].lo, jobs[i].hi);
    atomic_fetch_add_explicit(&jobs_finished, 1, RELEASE);
    return true;
}

bool cgc__mark_roots_done(void) { return atomic_load_explicit(&jobs_finished, ACQUIRE) >= njobs; }
static bool jobs_left(void) { return atomic_load_explicit(&next_job, RELAXED) < njobs; }

/* ------------------------------------------------------------ drain -- */

/* Grey objects in flight in the drain's prefetch ring.  An object takes
 * some 10 ns to scan, a miss to DRAM 100 ns or more on the machines
 * measured: a stopped-world mark of an allocation-ordered binary tree of
 * 4M 16-byte nodes, one marker, took 11.7 ns per node with 8 places, 9.7
 * with 16, 8.8 with 32, no less with 64; on randomly linked nodes the
 * candidate ring's span misses dominate and the size makes no difference.
 * (Overridable for such measurements.) */
#ifndef PREFETCH_RING
#define PREFETCH_RING 32
#endif

/* Exempt from the sanitizers as a scanner: the loop that reads grey
 * objects' words (scan_grey) is inlined here, which saves a call per
 * object, and its scanner lives in this frame.  Never the verifier's
 * (cgc__checkmark_drain). */
CGC_NO_SANITIZE void cgc__drain(cgc_gcwork *w, uint64_t budget, uint64_t deadline) {
    CGC_ASSERT(!w->checkmark);
    /* A small FIFO of prefetched grey objects hides the cache miss of each
     * object behind the scanning of the ones before it: each object popped
     * takes the place of the one scanned next, which waited PREFETCH_RING
     * pops (0: an empty place). */
    uintptr_t ring[PREFETCH_RING] = {0};
    unsigned head = 0, held = 0;
    int until_check = DRAIN_CHECK_UNITS;
    uint64_t start_work = w->scan_work;
    scanner sc;
    scanner_start(&sc, w);
    w->deadline = deadline;
    for (;;) {
        uintptr_t obj = ring[head], next;
        if (likely(cgc__gcwork_pop(w, &next))) {
            __builtin_prefetch((void *)next);
            ring[head] = next;
            held += !obj;
        } else {
            ring[head] = 0;
            held -= !!obj;
        }
        head = (head + 1) % PREFETCH_RING;
        if (!obj) {
            if (held) continue; /* the ring is filling or emptying */
            if (scanner_finish(&sc)) continue; /* the candidates may grey more */
            if (!cgc__mark_root_job(w)) break;
            /* a root shard is 256 KiB: look at the clock after each one */
            if (budget && w->scan_work - start_work >= budget) break;
            if (deadline && cgc__nanotime() >= deadline) break;
            continue;
        }
        until_check -= scan_grey(&sc, obj);
        if (unlikely(until_check <= 0)) {
            until_check = DRAIN_CHECK_UNITS;
            cgc__gcwork_balance(w);
            if (budget && w->scan_work - start_work >= budget) break;
            if (deadline && cgc__nanotime() >= deadline) break;
        }
    }
    w->deadline = 0;
    scanner_finish(&sc);
    for (unsigned i = 0; i < PREFETCH_RING; i++) /* stopped early: these stay grey */
        if (ring[i]) cgc__gcwork_push(w, ring[i]);
}

/* gccheckmark: scan everything reachable from what w holds (world stopped,
 * workers stopped). */
void cgc__checkmark_drain(cgc_gcwork *w) {
    uintptr_t obj;
    const char *kind = w->src_kind;
    uintptr_t src = w->src;
    while (cgc__gcwork_pop(w, &obj)) scan_object(w, NULL, obj);
    w->src_kind = kind;
    w->src = src;
}

/* ---------------------------------------------------------- workers -- */

enum worker_mode { WORKER_DEDICATED, WORKER_FRACTIONAL, WORKER_IDLE };

typedef struct worker {
    pthread_t thread;
    int mode;
    int index;
} worker;

static worker *workers;
static int nworkers;
/* Workers that join a stop-the-world drain: CGC_MAXPROCS - 1, for the
 * coordinator drains too.  The others (idle workers beyond the CPUs the
 * mark is planned for) wait it out on stw_marking. */
static int stw_helpers;
static double fractional_goal; /* CPU fraction for the fractional worker */
/* busy and the pool's emptiness are read together under mark_lock by the
 * coordinator's idle test and changed together by workers; wakeups go
 * through a futex word so that threads publishing work never lock. */
static pthread_mutex_t mark_lock = PTHREAD_MUTEX_INITIALIZER;
/* Bumped (and woken) when busy drops to 0: the coordinator's idle wait
 * sleeps on it.  A futex word rather than a condition variable, so that
 * an assist ending takes no lock: the idle-priority worker, preempted
 * while holding mark_lock, kept an allocating thread asleep 0.5-2.4 ms
 * in the broadcast's lock (traced in treewindow). */
static _Atomic int idle_epoch;
static _Atomic int work_epoch;
static _Atomic int mark_active; /* workers may mark */
static _Atomic int stw_marking; /* the world is stopped: everyone flat out */
static _Atomic int busy;        /* workers draining now */
static _Atomic int sleeping;    /* workers waiting on work_cv */
atomic_u64 cgc__cpu_bg_ns, cgc__cpu_idle_ns, cgc__cpu_assist_ns;

static void wake_workers(void) {
    /* seq_cst: the epoch bump is ordered after the publication of the work
     * and before the read of `sleeping` (workers: sleeping++, then read the
     * epoch, then test for work) */
    atomic_fetch_add(&work_epoch, 1);
    if (atomic_load(&sleeping)) syscall(SYS_futex, (int *)&work_epoch, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

void cgc__mark_work_arrived(void) {
    if (atomic_load_explicit(&mark_active, RELAXED)) wake_workers();
}

static bool has_work(void) { return cgc__work_available() || jobs_left(); }

/* busy has just dropped to 0.  seq_cst: the bump is ordered after that
 * decrement, and the coordinator reads the epoch before it tests busy, so
 * it either sees busy at 0 or sleeps on an epoch already stale. */
static void signal_idle(void) {
    atomic_fetch_add(&idle_epoch, 1);
    syscall(SYS_futex, (int *)&idle_epoch, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* While the program runs, a worker drains in pieces of this long and
 * then lets a program thread that waits for its CPU have it: the
 * fractional worker sleeps out its share, the others yield.  The
 * scheduler may put a worker on the CPU of a program thread, and it
 * preempts a running worker only at its tick (4 ms here); with 1 ms
 * pieces, tree-window operations that shared a CPU with the fractional
 * worker took 1.0-1.1 ms, and SCHED_IDLE workers too got 0.6 ms at a time
 * of a CPU the program wanted. */
#define WORKER_PIECE_NS 200000

static void *worker_main(void *arg) {
    worker *me = arg;
    /* Idle workers take only CPU nobody else wants.  The fractional
     * worker, which sleeps out its share after every piece and wakes
     * again, is SCHED_BATCH: a woken SCHED_OTHER thread preempts the one
     * running on the CPU it lands on, and that was often the program's
     * (bench/slowops.sh, three alternating rounds of six msgwindow and
     * treewindow runs: program time lost to a mark worker 2325, 2597 and
     * 3137 us before, 682, 234 and 2857 us after).  Pauses did not move
     * (10 alternating runs each: median of the runs' max pause 65 -> 59 us
     * and 85 -> 79 us).  An earlier try, with every worker SCHED_BATCH
     * and parked threads that spun, had raised msgwindow's median pause
     * from 100 to 175 us.  Dedicated workers (4 CPUs or more) keep the
     * normal policy: they are meant to hold their CPU. */
    if (me->mode == WORKER_IDLE) {
        struct sched_param sp = {0};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    } else {
        /* not the coordinator's short slice, which it inherits: a woken
         * worker with a short slice would preempt the program at once */
        cgc__thread_set_slice(0);
        if (me->mode == WORKER_FRACTIONAL) {
            struct sched_param sp = {0};
            pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
        }
    }
    cgc_gcwork w = {0};
    for (;;) {
        pthread_mutex_lock(&mark_lock);
        for (;;) {
            if (me->index >= stw_helpers && atomic_load(&stw_marking)) {
                /* not counted in `sleeping`: publishing work during a
                 * stop-the-world drain must not wake it for nothing */
                pthread_mutex_unlock(&mark_lock);
                struct timespec ts = {0, 50 * 1000 * 1000};
                syscall(SYS_futex, (int *)&stw_marking, FUTEX_WAIT_PRIVATE, 1, &ts, NULL, 0);
                pthread_mutex_lock(&mark_lock);
                continue;
            }
            atomic_fetch_add(&sleeping, 1);
            int epoch = atomic_load(&work_epoch); /* before the test: no lost wakeup */
            if (atomic_load(&mark_active) && has_work()) {
                atomic_fetch_sub(&sleeping, 1);
                break;
            }
            pthread_mutex_unlock(&mark_lock);
            struct timespec ts = {0, 50 * 1000 * 1000};
            syscall(SYS_futex, (int *)&work_epoch, FUTEX_WAIT_PRIVATE, epoch, &ts, NULL, 0);
            atomic_fetch_sub(&sleeping, 1);
            pthread_mutex_lock(&mark_lock);
        }
        atomic_fetch_add(&busy, 1);
        pthread_mutex_unlock(&mark_lock);

        uint64_t cpu0 = cgc__thread_cputime();
        bool flat_out = atomic_load(&stw_marking) != 0;
        uint64_t wall0 = cgc__nanotime();
        uint64_t work0 = w.scan_work;
        cgc__drain(&w, 0, flat_out ? 0 : wall0 + WORKER_PIECE_NS);
        int64_t done = (int64_t)(w.scan_work - work0);
        cgc__gcwork_dispose(&w);
        atomic_fetch_add_explicit(&cgc__pacer.bg_credit, done, RELAXED);
        uint64_t cpu = cgc__thread_cputime() - cpu0;
        atomic_fetch_add_explicit(me->mode == WORKER_IDLE ? &cgc__cpu_idle_ns : &cgc__cpu_bg_ns, cpu, RELAXED);

        pthread_mutex_lock(&mark_lock);
        if (atomic_fetch_sub(&busy, 1) == 1) signal_idle();
        pthread_mutex_unlock(&mark_lock);

        if (flat_out) continue;
        if (me->mode == WORKER_FRACTIONAL && fractional_goal > 0 && fractional_goal < 1) {
            /* keep the fractional worker near its share of one CPU */
            uint64_t ran = cgc__nanotime() - wall0;
            uint64_t rest = (uint64_t)((double)ran * (1 - fractional_goal) / fractional_goal);
            if (rest > 20000000) rest = 20000000;
            struct timespec ts = {0, (long)rest};
            nanosleep(&ts, NULL);
        } else {
            /* give the CPU to a program thread waiting for it here, if
             * any (returns at once otherwise) */
            sched_yield();
        }
    }
    return NULL;
}

/* Go's split: 25 % of the CPUs as dedicated workers, rounded, with a
 * fractional worker when rounding would be off by more than 30 %; plus
 * idle workers (SCHED_IDLE) that use only CPU nobody else wants. */
void cgc__mark_workers_start(void) {
    if (workers) return;
    int procs = cgc__opt.maxprocs;
    double goal = procs * 0.25;
    int dedicated = (int)(goal + 0.5);
    double err = dedicated / goal - 1;
    fractional_goal = 0;
    if (err < -0.3 || err > 0.3) {
        if (dedicated > goal) dedicated--;
        fractional_goal = goal - dedicated;
    }
    int nidle = procs - dedicated - (fractional_goal > 0);
    if (nidle < 1) nidle = 1;
    nworkers = dedicated + (fractional_goal > 0) + nidle;
    stw_helpers = procs - 1;
    workers = calloc((size_t)nworkers, sizeof *workers);
    if (!workers) cgc__fatal("out of memory for mark workers");
    for (int i = 0; i < nworkers; i++) {
        workers[i].index = i;
        workers[i].mode = i < dedicated ? WORKER_DEDICATED
                          : (i == dedicated && fractional_goal > 0) ? WORKER_FRACTIONAL
                                                                     : WORKER_IDLE;
        char name[24];
        snprintf(name, sizeof name, "cgc-mark%d", i);
        if (cgc__internal_thread(&workers[i].thread, name, worker_main, &workers[i]))
            cgc__fatal("cannot start mark worker %d", i);
    }
}

int cgc__mark_nworkers(void) { return nworkers; }

/* A mark assist counts as a busy worker while it drains: the work it
 * holds in its own buffers is invisible to the pool, and a mark that ended
 * meanwhile would leave that work to mark termination, with the world
 * stopped. */
void cgc__mark_assist_begin(void) { atomic_fetch_add(&busy, 1); }

void cgc__mark_assist_end(void) {
    if (atomic_fetch_sub(&busy, 1) == 1) signal_idle();
}

void cgc__mark_workers_wake(void) {
    atomic_store(&mark_active, 1);
    wake_workers();
}

/* Coordinator: returns when no worker or assist is draining and no work
 * is left in the pool or the root jobs. */
bool cgc__mark_wait_idle(void) {
    pthread_mutex_lock(&mark_lock);
    /* has_work before busy (both seq_cst): a drainer counts itself busy
     * before it takes work, so work found gone means the taker is seen */
    for (;;) {
        int epoch = atomic_load(&idle_epoch); /* before the test: no lost wakeup */
        if (!has_work() && atomic_load(&busy) == 0) break;
        if (has_work()) wake_workers();
        pthread_mutex_unlock(&mark_lock);
        struct timespec ts = {0, 2000000};
        syscall(SYS_futex, (int *)&idle_epoch, FUTEX_WAIT_PRIVATE, epoch, &ts, NULL, 0);
        pthread_mutex_lock(&mark_lock);
    }
    pthread_mutex_unlock(&mark_lock);
    return true;
}

void cgc__mark_workers_stop(void) {
    pthread_mutex_lock(&mark_lock);
    atomic_store(&mark_active, 0);
    pthread_mutex_unlock(&mark_lock);
}

/* World stopped: drain everything with every worker flat out, the caller
 * included. */
/* What the coordinator drains alone before it calls the workers in. */
#define STW_SOLO_WORK (256u << 10)

void cgc__mark_stw_drain(void) {
    cgc_gcwork w = {0};
    /* Alone first: a concurrent mark ends with little or nothing left,
     * and waking the workers, then waiting for them to go idle again,
     * cost more of the pause than the work (10-20 us against 2-5 us).
     * Done when the pool is empty and no worker is busy, tested in that
     * order under mark_lock as in cgc__mark_wait_idle: a drainer counts
     * itself busy before it takes work and flushes what it holds before
     * it stops counting. */
    cgc__drain(&w, STW_SOLO_WORK, 0);
    cgc__gcwork_dispose(&w);
    pthread_mutex_lock(&mark_lock);
    bool done = !has_work() && atomic_load(&busy) == 0;
    pthread_mutex_unlock(&mark_lock);
    if (done) return;
    atomic_store(&stw_marking, 1);
    cgc__mark_workers_wake();
    for (;;) {
        cgc__drain(&w, 0, 0);
        cgc__gcwork_dispose(&w);
        cgc__mark_wait_idle();
        if (!has_work()) break;
    }
    atomic_store(&stw_marking, 0);
    if (nworkers > stw_helpers) syscall(SYS_futex, (int *)&stw_marking, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

void cgc__mark_after_fork_child(void) {
    /* the workers do not exist in the child; they are made again lazily */
    workers = NULL;
    nworkers = 0;
    atomic_store(&busy, 0);
    atomic_store(&sleeping, 0);
    atomic_store(&mark_active, 0);
    pthread_mutex_init(&mark_lock, NULL);
    atomic_store(&idle_epoch, 0);
}
