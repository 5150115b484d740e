/*
 * work.c — the grey set: 2 KiB buffers of object addresses.  Each marker
 * owns two buffers (cur, spare); full buffers go to a global list that
 * every marker takes from, empty ones to a free list.  An object is grey
 * exactly while its address is in some buffer (its mark byte is already set).
 */
#include "internal.h"

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static cgc_workbuf *full_list, *empty_list;
atomic_u64 cgc__work_full_count;
/* Markers waiting for work are woken when a full buffer arrives (mark.c). */
void cgc__mark_work_arrived(void);

static cgc_workbuf *buf_alloc(void) {
    pthread_mutex_lock(&pool_lock);
    cgc_workbuf *b = empty_list;
    if (b) {
        empty_list = b->next;
        pthread_mutex_unlock(&pool_lock);
    } else {
        pthread_mutex_unlock(&pool_lock);
        /* workbufs are never unmapped; carve 64 at a time */
        size_t nb = 64;
        cgc_workbuf *v = cgc__os_reserve(nb * sizeof *v, 4096);
        if (!v) cgc__fatal("out of memory for mark work buffers");
        pthread_mutex_lock(&pool_lock);
        for (size_t i = 1; i < nb; i++) {
            v[i].next = empty_list;
            empty_list = &v[i];
        }
        pthread_mutex_unlock(&pool_lock);
        b = &v[0];
    }
    b->n = 0;
    b->next = NULL;
    return b;
}

static void buf_put_full(cgc_workbuf *b) {
    pthread_mutex_lock(&pool_lock);
    b->next = full_list;
    full_list = b;
    atomic_fetch_add_explicit(&cgc__work_full_count, 1, RELEASE);
    pthread_mutex_unlock(&pool_lock);
    cgc__mark_work_arrived();
}

static void buf_put_empty(cgc_workbuf *b) {
    pthread_mutex_lock(&pool_lock);
    b->next = empty_list;
    empty_list = b;
    pthread_mutex_unlock(&pool_lock);
}

static cgc_workbuf *buf_get_full(void) {
    if (atomic_load_explicit(&cgc__work_full_count, ACQUIRE) == 0) return NULL;
    pthread_mutex_lock(&pool_lock);
    cgc_workbuf *b = full_list;
    if (b) {
        full_list = b->next;
        atomic_fetch_sub_explicit(&cgc__work_full_count, 1, RELAXED);
    }
    pthread_mutex_unlock(&pool_lock);
    return b;
}

void cgc__work_init(void) {}

void cgc__gcwork_push_slow(cgc_gcwork *w, uintptr_t obj) {
    cgc_workbuf *b = w->cur;
    if (!b || b->n == WORKBUF_N) {
        cgc_workbuf *fresh = NULL;
        if (b) {
            /* keep one full buffer locally for balance, publish the other */
            if (w->spare && w->spare->n) buf_put_full(w->spare);
            else fresh = w->spare; /* an empty spare becomes the new cur */
            w->spare = b;
        }
        b = w->cur = fresh ? fresh : buf_alloc();
    }
    b->obj[b->n++] = obj;
}

bool cgc__gcwork_pop_slow(cgc_gcwork *w, uintptr_t *obj) {
    cgc_workbuf *b = w->cur;
    if (b && b->n) {
        *obj = b->obj[--b->n];
        return true;
    }
    if (w->spare && w->spare->n) {
        w->cur = w->spare;
        w->spare = b;
        b = w->cur;
        *obj = b->obj[--b->n];
        return true;
    }
    cgc_workbuf *f = buf_get_full();
    if (!f) return false;
    CGC_ASSERT(f->n > 0 && f->n <= WORKBUF_N);
    if (b) buf_put_empty(b);
    w->cur = f;
    *obj = f->obj[--f->n];
    return true;
}

/* Called by a draining marker every few objects: when the pool is empty,
 * hand part of its private grey set to the pool, so that other markers
 * and mark assists have something to take (a tree marked depth-first
 * keeps its whole frontier in one marker's buffers otherwise, and assists
 * would find nothing to do while the heap grows). */
void cgc__gcwork_balance(cgc_gcwork *w) {
    if (atomic_load_explicit(&cgc__work_full_count, RELAXED) != 0) return;
    if (w->spare && w->spare->n) {
        buf_put_full(w->spare);
        w->spare = NULL;
        return;
    }
    cgc_workbuf *b = w->cur;
    if (!b || b->n < 8) return;
    cgc_workbuf *half = buf_alloc();
    uint64_t give = b->n / 2;
    /* the oldest entries: nearer the roots, so larger subgraphs */
    memcpy(half->obj, b->obj, give * sizeof b->obj[0]);
    memmove(b->obj, b->obj + give, (b->n - give) * sizeof b->obj[0]);
    half->n = give;
    b->n -= give;
    buf_put_full(half);
}

void cgc__gcwork_flush(cgc_gcwork *w) {
    if (w->cur) {
        if (w->cur->n) buf_put_full(w->cur);
        else buf_put_empty(w->cur);
        w->cur = NULL;
    }
    if (w->spare) {
        if (w->spare->n) buf_put_full(w->spare);
        else buf_put_empty(w->spare);
        w->spare = NULL;
    }
}

/* Flushes and hands the marker's counters to the cycle. */
void cgc__gcwork_dispose(cgc_gcwork *w) {
    cgc__gcwork_flush(w);
    if (w->bytes_marked) atomic_fetch_add_explicit(&cgc__pacer.heap_marked, w->bytes_marked, RELAXED);
    if (w->scan_work) atomic_fetch_add_explicit(&cgc__pacer.scan_work_done, w->scan_work, RELAXED);
    w->bytes_marked = w->scan_work = 0;
}

bool cgc__work_available(void) { return atomic_load_explicit(&cgc__work_full_count, ACQUIRE) != 0; }
bool cgc__work_empty(void) { return !cgc__work_available(); }
