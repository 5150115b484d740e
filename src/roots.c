/*
 * roots.c — the roots besides stacks: the writable segments of every loaded
 * object (found with dl_iterate_phdr at each cycle, so dlopen'ed libraries
 * count) and the ranges given to cgc_add_roots.
 */
#include "internal.h"

#include <elf.h>
#include <link.h>
#include <stdlib.h>

static pthread_mutex_t roots_lock = PTHREAD_MUTEX_INITIALIZER;
static cgc_range *user_roots;
static size_t n_user_roots, cap_user_roots;
/* Roots added since the current mark began: rescanned at mark termination,
 * because the range's words were written before any barrier saw them. */
_Atomic uint64_t cgc__user_roots_gen;

typedef struct seg_list {
    cgc_range *v;
    size_t n, cap;
} seg_list;

static void seg_push(seg_list *l, uintptr_t lo, uintptr_t hi) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        cgc_range *v = realloc(l->v, cap * sizeof *v);
        if (!v) cgc__fatal("out of memory listing root segments");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].lo = lo;
    l->v[l->n].hi = hi;
    l->n++;
}

static int phdr_callback(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    seg_list *l = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        uintptr_t hi = lo + ph->p_memsz;
        lo = (lo + 7) & ~(uintptr_t)7;
        if (hi > lo) seg_push(l, lo, hi);
    }
    return 0;
}

size_t cgc__roots_collect_segments(cgc_range **out) {
    seg_list l = {0};
    dl_iterate_phdr(phdr_callback, &l);
    *out = l.v;
    return l.n;
}

size_t cgc__roots_user(cgc_range **out) {
    pthread_mutex_lock(&roots_lock);
    size_t n = n_user_roots;
    cgc_range *v = n ? malloc(n * sizeof *v) : NULL;
    if (n && !v) cgc__fatal("out of memory copying roots");
    if (n) memcpy(v, user_roots, n * sizeof *v);
    pthread_mutex_unlock(&roots_lock);
    *out = v;
    return n;
}

void cgc_add_roots(void *lo, void *hi) {
    if ((uintptr_t)hi <= (uintptr_t)lo) return;
    cgc__ensure_init();
    cgc_thread *t = cgc__thread_register_self();
    sig_atomic_t prev = cgc__enter(t);
    pthread_mutex_lock(&roots_lock);
    if (n_user_roots == cap_user_roots) {
        size_t cap = cap_user_roots ? cap_user_roots * 2 : 16;
        cgc_range *v = realloc(user_roots, cap * sizeof *v);
        if (!v) cgc__fatal("out of memory adding roots");
        user_roots = v;
        cap_user_roots = cap;
    }
    user_roots[n_user_roots].lo = ((uintptr_t)lo + 7) & ~(uintptr_t)7;
    user_roots[n_user_roots].hi = (uintptr_t)hi;
    n_user_roots++;
    atomic_fetch_add_explicit(&cgc__user_roots_gen, 1, RELEASE);
    pthread_mutex_unlock(&roots_lock);
    cgc__leave(t, prev);
}

void cgc_remove_roots(void *lo, void *hi) {
    cgc__ensure_init();
    cgc_thread *t = cgc__thread_register_self();
    sig_atomic_t prev = cgc__enter(t);
    pthread_mutex_lock(&roots_lock);
    size_t j = 0;
    for (size_t i = 0; i < n_user_roots; i++) {
        cgc_range r = user_roots[i];
        bool inside = r.lo >= ((uintptr_t)lo & ~(uintptr_t)7) && r.hi <= (uintptr_t)hi;
        if (!inside) user_roots[j++] = r;
    }
    n_user_roots = j;
    pthread_mutex_unlock(&roots_lock);
    cgc__leave(t, prev);
}

void cgc__roots_init(void) {}
