/*
 * central.c — mcentral: per span class, the spans not in any thread's cache.
 *
 * Four lists per class: partial (has a free slot) and full, each split
 * swept / unswept by sweepgen parity (internal.h).  A thread's cache takes a
 * swept partial span; failing that it sweeps unswept spans of its class
 * itself (on-demand sweeping) before the heap grows.  Every list operation
 * is under the class's lock; a span is on at most one list.
 */
#include "internal.h"

cgc_central cgc__central[NUM_CENTRALS];

void cgc__central_init(void) {
    for (size_t i = 0; i < NUM_CENTRALS; i++) cgc__lock_init(&cgc__central[i].lock);
}

static void list_push(cgc_span_list *l, cgc_span *s) {
    cgc__list_push(l, s);
    s->where = WHERE_LIST;
}

static void list_remove(cgc_span_list *l, cgc_span *s) {
    cgc__list_remove(l, s);
    s->where = WHERE_NONE;
}

static cgc_span *list_pop(cgc_span_list *l) {
    cgc_span *s = l->head;
    if (s) list_remove(l, s);
    return s;
}

static unsigned swept_index(uint32_t sg) { return (sg / 2) % 2; }

void cgc__central_remove_locked(cgc_central *c, cgc_span *s) {
    (void)c;
    list_remove((cgc_span_list *)s->list, s);
}

/* Onto the swept partial or full list (class lock held). */
static void put_swept_locked(cgc_central *c, cgc_span *s) {
    uint32_t sg = atomic_load_explicit(&cgc__sweepgen, RELAXED);
    CGC_ASSERT(atomic_load_explicit(&s->sweepgen, RELAXED) == sg);
    unsigned i = swept_index(sg);
    list_push(s->alloc_count < s->nelems ? &c->partial[i] : &c->full[i], s);
}

void cgc__central_put_swept(cgc_span *s) {
    cgc_central *c = &cgc__central[s->spanclass];
    cgc__lock(&c->lock);
    put_swept_locked(c, s);
    cgc__unlock(&c->lock);
}

/* Which classes may hold unswept spans: a hint that spares the sweepers a
 * lock round over every class per span swept.
 * Invariant: a class whose unswept lists are non-empty has its bit set.
 * Bits are set at sweep start under each class's lock, after sweepgen has
 * advanced; a bit is cleared only under the class's lock by a sweeper that
 * found both unswept lists empty at the current sweepgen.  Nothing puts a
 * span on an unswept list during a sweep (spans become unswept only when
 * mark termination advances sweepgen), so a cleared bit stays true until
 * the next sweep start sets it again.  A set bit on an empty class costs
 * one lock round. */
static atomic_u64 unswept_classes[(NUM_CENTRALS + 63) / 64];

void cgc__central_note_unswept_classes(void) {
    for (unsigned i = 0; i < NUM_CENTRALS; i++) {
        cgc_central *c = &cgc__central[i];
        cgc__lock(&c->lock);
        unsigned u = 1 - swept_index(atomic_load_explicit(&cgc__sweepgen, RELAXED));
        if (c->partial[u].head || c->full[u].head)
            atomic_fetch_or_explicit(&unswept_classes[i / 64], 1ull << (i % 64), RELAXED);
        cgc__unlock(&c->lock);
    }
}

int cgc__central_next_unswept_class(unsigned start) {
    const unsigned nw = (NUM_CENTRALS + 63) / 64;
    start %= NUM_CENTRALS;
    for (unsigned k = 0; k <= nw; k++) {
        unsigned w = (start / 64 + k) % nw;
        uint64_t bits = atomic_load_explicit(&unswept_classes[w], RELAXED);
        if (k == 0) bits &= ~0ull << (start % 64); /* the first word: from start on */
        else if (k == nw) bits &= (start % 64) ? ~(~0ull << (start % 64)) : 0; /* wrapped */
        if (bits) return (int)(w * 64 + (unsigned)__builtin_ctzll(bits));
    }
    return -1;
}

/* Claims s for sweeping: sg-2 -> sg-1 (sweep.c's protocol). */
static bool claim(cgc_span *s, uint32_t sg) {
    uint32_t want = sg - 2;
    return atomic_compare_exchange_strong_explicit(&s->sweepgen, &want, sg - 1, ACQ_REL, RELAXED);
}

cgc_span *cgc__central_take_unswept(unsigned spanclass, bool may_wait, bool *busy) {
    cgc_central *c = &cgc__central[spanclass];
    /* sg is read under the lock: the background sweeper is not stopped by
     * a stop-the-world, and a value read before a cycle advanced sg would
     * name the new swept list as unswept */
    *busy = false;
    if (may_wait) {
        cgc__lock(&c->lock);
    } else if (pthread_mutex_trylock(&c->lock) != 0) {
        *busy = true;
        return NULL;
    }
    uint32_t sg = atomic_load_explicit(&cgc__sweepgen, ACQUIRE);
    unsigned u = 1 - swept_index(sg);
    cgc_span *s = list_pop(&c->partial[u]);
    if (!s) s = list_pop(&c->full[u]);
    if (s && !claim(s, sg)) cgc__fatal("span %p on an unswept list has sweepgen %u (sg %u)", (void *)s->base, atomic_load(&s->sweepgen), sg);
    if (s) atomic_fetch_add_explicit(&cgc__sweepers_active, 1, RELAXED);
    else atomic_fetch_and_explicit(&unswept_classes[spanclass / 64], ~(1ull << (spanclass % 64)), RELAXED);
    cgc__unlock(&c->lock);
    return s;
}

/* Slots other threads freed while s sat in mcentral (caller owns s). */
static uint32_t take_remote_frees(cgc_span *s) {
    void *r = atomic_exchange_explicit(&s->remote_free, NULL, ACQ_REL);
    uint32_t n = 0;
    for (; r; r = *(void **)r, n++) {
        uint32_t idx = cgc__obj_index(s, (uintptr_t)r);
        _Atomic uint64_t *w = &s->alloc_bits[idx >> 6];
        atomic_store_explicit(w, atomic_load_explicit(w, RELAXED) & ~(1ull << (idx & 63)), RELAXED);
    }
    if (n) {
        s->needzero = 1;
        s->alloc_count -= n;
        atomic_fetch_sub_explicit(&cgc__pacer.heap_live, (uint64_t)n * s->elemsize, RELAXED);
        atomic_fetch_add_explicit(&cgc__stats.frees, n, RELAXED);
    }
    return n;
}

/* A remote free arrived at a span with none pending: a full span in
 * mcentral becomes partial so that the slot is found again. */
void cgc__central_note_remote_free(cgc_span *s) {
    cgc_central *c = &cgc__central[s->spanclass];
    cgc__lock(&c->lock);
    for (int i = 0; i < 2; i++) {
        if (s->list == &c->full[i]) {
            list_remove(&c->full[i], s);
            list_push(&c->partial[i], s);
        }
    }
    cgc__unlock(&c->lock);
}

/* How long a refill waits for a class lock held by another thread before
 * it takes a fresh span from the heap instead.  The lock guards a few list
 * operations; a holder that keeps it longer has lost its CPU (the
 * background sweeper, preempted by some other process), and waiting for
 * it to run again kept an allocating thread asleep for 1-4 ms while its
 * own CPU sat idle.  A fresh span costs a span of memory at most, and
 * only when this happens. */
#define CENTRAL_LOCK_SPIN_NS 20000

static bool lock_or_give_up(cgc_lock *l) {
    if (pthread_mutex_trylock(l) == 0) return true;
    uint64_t start = cgc__nanotime();
    for (unsigned i = 1;; i++) {
        __builtin_ia32_pause();
        if (i % 32 == 0) {
            if (pthread_mutex_trylock(l) == 0) return true;
            if (cgc__nanotime() - start > CENTRAL_LOCK_SPIN_NS) return false;
        }
    }
}

cgc_span *cgc__central_cache_span(unsigned spanclass, cgc_mcache *owner) {
    cgc_central *c = &cgc__central[spanclass];
    cgc_span *s = NULL;
    pthread_rwlock_rdlock(&cgc__sweep_fork_lock);
    if (!lock_or_give_up(&c->lock)) {
        pthread_rwlock_unlock(&cgc__sweep_fork_lock);
        goto fresh;
    }
    uint32_t sg = atomic_load_explicit(&cgc__sweepgen, ACQUIRE);
    unsigned sw = swept_index(sg), un = 1 - sw;
    while ((s = list_pop(&c->partial[sw])) != NULL) {
        /* owner first, then the remote list (acq_rel, pairing with the
         * freer's CAS in cgc_free): a free pushed after this exchange
         * sees the owner and leaves its hint there */
        atomic_store_explicit(&s->owner, owner, RELAXED);
        take_remote_frees(s);
        if (s->alloc_count < s->nelems) break;
        atomic_store_explicit(&s->owner, NULL, RELAXED);
        list_push(&c->full[sw], s);
    }
    /* On-demand sweeping: unswept spans of this class before the heap
     * grows, a bounded number of them so an allocation never stalls long.
     * A swept span with room is taken without the lock again (it is ours:
     * claimed, on no list); only a full one goes back under it.  (Every
     * relock could sleep behind the background sweeper, preempted with the
     * lock held on a loaded machine.) */
    bool locked = true;
    for (int tries = 0; !s && tries < 100; tries++) {
        /* a stop is waiting for this thread: take a fresh span instead of
         * sweeping on (the sweep completes in the background) */
        if (cgc__self && atomic_load_explicit(&cgc__self->stop_pending, RELAXED)) break;
        cgc_span *u = list_pop(&c->partial[un]);
        if (!u) u = list_pop(&c->full[un]);
        if (!u) break;
        if (!claim(u, sg)) cgc__fatal("span %p: bad sweepgen on an unswept list", (void *)u->base);
        atomic_fetch_add_explicit(&cgc__sweepers_active, 1, RELAXED);
        cgc__unlock(&c->lock);
        cgc__sweep_span(u, true);
        atomic_fetch_sub_explicit(&cgc__sweepers_active, 1, RELEASE);
        if (u->alloc_count < u->nelems) {
            s = u;
            locked = false;
            break;
        }
        cgc__lock(&c->lock);
        list_push(&c->full[sw], u);
    }
    if (locked) cgc__unlock(&c->lock);
    pthread_rwlock_unlock(&cgc__sweep_fork_lock);
fresh:
    if (!s) {
        uintptr_t npages = cgc_class_npages[spanclass == TINY_SPAN_CLASS ? cgc_size_to_class8[2] : spanclass / SPAN_KINDS];
        s = cgc__heap_alloc_span(npages, spanclass);
        if (!s) return NULL;
    }
    CGC_ASSERT(s->where != WHERE_CACHED && s->list == NULL); /* one owner at a time */
    s->where = WHERE_CACHED;
    atomic_store_explicit(&s->owner, owner, RELAXED);
    return s;
}

/* A span leaves its owner: allocation state reset (the bitmap is exact:
 * the next owner scans it from the start, finding the slots freed below
 * the old freeindex; the owner drops its local free list with it) and,
 * if counted, alloc_count made exact again.  Uncounted (mark termination:
 * the span is swept, and recounted, before anyone allocates from it) it
 * reads as full, which only decides the list it waits on. */
static void disown(cgc_span *s, bool counted) {
    CGC_ASSERT(s->where == WHERE_CACHED && s->list == NULL);
    s->where = WHERE_NONE;
    atomic_store_explicit(&s->owner, NULL, RELAXED);
    s->alloc_cache = 0;
    s->freeindex = 0;
    s->alloc_count = counted ? cgc__span_count_alloc(s) : s->nelems;
    cgc__span_check(s);
}

void cgc__central_uncache_span(cgc_span *s) {
    disown(s, true);
    cgc__central_put_swept(s);
}

void cgc__central_uncache_owned(cgc_span **v, size_t n, bool counted) {
    cgc_central *locked = NULL;
    for (size_t i = 0; i < n; i++) {
        /* the lines this loop writes, a few spans ahead: the first (owner,
         * freeindex), alloc_cache's, the list fields' */
        if (i + 8 < n) {
            const char *f = (const char *)v[i + 8];
            __builtin_prefetch(f, 1);
            __builtin_prefetch(f + offsetof(cgc_span, alloc_cache), 1);
            __builtin_prefetch(f + offsetof(cgc_span, next), 1);
        }
        cgc_span *s = v[i];
        cgc_central *c = &cgc__central[s->spanclass];
        if (c != locked) { /* one lock round per run of one class */
            if (locked) cgc__unlock(&locked->lock);
            cgc__lock(&c->lock);
            locked = c;
        }
        /* off the cache's list of its class, which the cache empties */
        CGC_ASSERT(s->list != NULL);
        s->list = NULL;
        s->next = s->prev = NULL;
        disown(s, counted);
        put_swept_locked(c, s);
    }
    if (locked) cgc__unlock(&locked->lock);
}
