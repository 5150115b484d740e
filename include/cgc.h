/*
 * cgc.h — the public interface of cgc, a concurrent, non-moving, tri-colour
 * mark-sweep garbage collector for C (Go's collector and allocator, as a library).
 *
 * Link with -lcgc (pkg-config cgc, or CMake find_package(cgc) -> cgc::cgc).
 * Allocate with cgc_malloc and stop freeing: memory that no root reaches is
 * reclaimed by the collector.
 *
 * Roots (what keeps an object alive):
 *   - every registered thread's stack and registers (threads made with
 *     pthread_create are registered automatically; see cgc_thread_attach),
 *     including the thread's static thread-local storage;
 *   - the writable data and bss of the executable and of every loaded shared
 *     object (dlopen'ed ones included), re-read at every cycle;
 *   - ranges given to cgc_add_roots;
 *   - the contents of reachable objects: every aligned word of a cgc_malloc
 *     object, the declared pointer words of a cgc_malloc_typed object, nothing
 *     of a cgc_malloc_atomic object.
 * A word keeps an object alive when it points anywhere inside it (interior
 * pointers count), but only while the object is allocated.  Pointers hidden
 * from cgc (stored in memory from the C library's malloc, XOR-ed, written to
 * a file) keep nothing alive.
 *
 * Concurrent marking and the write barrier:
 *   By default cgc marks concurrently with the program.  While it marks, every
 *   store of a pointer into the cgc heap, into a global, or into a range given
 *   to cgc_add_roots must go through CGC_STORE (or cgc_store, cgc_cas,
 *   cgc_memmove, cgc_memcpy, cgc_memclr for bulk copies of memory that may hold
 *   pointers).  Stores into the storing thread's own local variables and stack
 *   need no barrier.  Writing non-pointer data needs no barrier.
 *   A program that breaks the rule may have live objects freed.  Programs that
 *   cannot use the barrier (legacy code, code written for bdwgc) must run in
 *   stop-the-world mode: CGC_DEBUG=gcstoptheworld=1 or cgc_set_stoptheworld(1).
 *   In that mode the barrier is never enabled and its cost is one branch.
 *
 * Signals: threads are stopped with a signal (SIGPWR by default; see
 *   cgc_set_suspend_signal and CGC_DEBUG=sigsuspend=N).  The handler is
 *   installed with SA_RESTART, so read, write, wait and the like restart;
 *   but nanosleep, select, poll, epoll_wait, sem_timedwait and a few others
 *   return EINTR whatever SA_RESTART says (see signal(7)): programs that call
 *   them must retry on EINTR, or bracket the call with cgc_blocking_begin and
 *   cgc_blocking_end, during which the thread is never signalled.
 *
 * Environment (read once, at initialisation; unknown keys and bad values
 * print one warning on stderr and are ignored):
 *   CGC_PERCENT   like GOGC: heap growth (percent of live heap) before the
 *                 next cycle; default 100; "off" disables collection.
 *   CGC_MEMLIMIT  soft memory limit in bytes (suffixes KiB, MiB, GiB, TiB);
 *                 default none.
 *   CGC_MAXPROCS  number of CPUs cgc may use for marking; default all.
 *   CGC_DEBUG     comma-separated key=value:
 *                   gctrace=1         one line per cycle on stderr (Go's format)
 *                   gccheckmark=1     verify each concurrent mark with a
 *                                     stop-the-world re-mark; abort on a miss
 *                   gcstoptheworld=1  mark with the world stopped
 *                   sigsuspend=N      signal used to stop threads
 *
 * Errors: allocation functions return NULL with errno = ENOMEM when the size
 * overflows or memory runs out (after calling the handler given to
 * cgc_set_oom_handler, if any).  Misuse that would corrupt the heap — freeing
 * a pointer cgc does not own, an interior pointer, or an already free object;
 * detaching an unattached thread; unbalanced cgc_enable or cgc_blocking_end —
 * prints a message naming the pointer or call and the reason, then aborts.
 */
#ifndef CGC_H
#define CGC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CGC_API __attribute__((visibility("default")))
#define CGC_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#define CGC_LIKELY(x) __builtin_expect(!!(x), 1)
#define CGC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define CGC_API
#define CGC_MALLOC_ATTR
#define CGC_LIKELY(x) (x)
#define CGC_UNLIKELY(x) (x)
#endif

#define CGC_VERSION_MAJOR 0
#define CGC_VERSION_MINOR 1

/* ---------------------------------------------------------------- setup -- */

/* Initialises cgc: reads the environment, registers the calling thread and
 * starts the collector's own threads (cgc-gc, cgc-sweep and the mark
 * workers cgc-markN; they never run program code and are not registered).
 * Optional and idempotent; the first allocation calls it.  A program with
 * latency goals calls it at start-up, so that no later allocation pays for
 * making those threads. */
CGC_API void cgc_init(void);

/* ----------------------------------------------------------- allocation -- */

/* Allocates size bytes, zeroed.  The contents are scanned conservatively:
 * every 8-byte-aligned word that points into an allocated object keeps it
 * alive.  cgc_malloc(0) returns a distinct non-NULL pointer.  Objects of 16
 * bytes and more are 16-byte aligned, smaller ones 8-byte aligned.
 * Returns NULL with errno = ENOMEM on overflow or out of memory. */
CGC_API CGC_MALLOC_ATTR void *cgc_malloc(size_t size);

/* Like cgc_malloc, but the object is never scanned: pointers stored in it
 * keep nothing alive.  Use it for strings, numbers, pixels.  Objects under
 * 16 bytes may share a 16-byte block with other small atomic objects (Go's
 * tiny allocator); they are 1-, 2-, 4- or 8-byte aligned as their size allows. */
CGC_API CGC_MALLOC_ATTR void *cgc_malloc_atomic(size_t size);

/* Like cgc_malloc_atomic, but the contents are unspecified, as malloc's:
 * the memory may hold what an object freed earlier left there.  The
 * collector never reads it, so old data cannot keep anything alive; this
 * spares the zeroing when the caller writes the whole object anyway (a
 * malloc replacement, a buffer about to be filled).  Objects under 16 bytes
 * come from cgc_malloc_atomic (zeroed). */
CGC_API CGC_MALLOC_ATTR void *cgc_malloc_atomic_uninit(size_t size);

/* n * size bytes, zeroed and scanned; NULL with ENOMEM if n * size overflows. */
CGC_API CGC_MALLOC_ATTR void *cgc_calloc(size_t n, size_t size);

/* C's realloc: realloc(NULL, n) allocates; realloc(p, 0) frees p and returns
 * a fresh cgc_malloc(0) object; otherwise the contents up to the smaller size
 * are kept, bytes beyond the old size are zero, and the kind of object
 * (scanned, atomic, typed) is kept.  p may be returned unchanged if it fits.
 * On failure returns NULL with ENOMEM and leaves p untouched. */
CGC_API void *cgc_realloc(void *p, size_t size);

/* Frees an object now, as GC_FREE does in bdwgc.  Optional: unreachable
 * objects are reclaimed anyway.  NULL is ignored.  p must be the start of an
 * allocated cgc object: a pointer cgc does not own, an interior pointer or an
 * already freed object is reported and the program aborts.  Freeing an object
 * still referenced elsewhere is the program's bug, as with free().
 * Tiny objects (cgc_malloc_atomic under 16 bytes) share blocks; freeing one
 * is accepted and leaves its reclamation to the collector. */
CGC_API void cgc_free(void *p);

/* The usable size of the object p points into (p may be interior); 0 for a
 * pointer cgc does not own.  For a tiny object it is the bytes from p to the
 * end of its 16-byte block, which may be shared. */
CGC_API size_t cgc_size(const void *p);

/* The start of the allocated object p points into, or NULL when p is not
 * inside an allocated cgc object. */
CGC_API void *cgc_base(const void *p);

/* Called with the requested size when an allocation fails, before it returns
 * NULL.  Returns the previous handler.  The handler may free memory, call
 * cgc_collect, or exit; cgc retries the allocation once after it returns. */
typedef void (*cgc_oom_handler)(size_t size);
CGC_API cgc_oom_handler cgc_set_oom_handler(cgc_oom_handler handler);

/* ------------------------------------------------------- typed objects -- */

/* A pointer layout: an object of `size` bytes whose only pointers are the
 * `count` words at the given byte offsets (each a multiple of 8, below size).
 * Types are never freed; make each once.  Returns NULL with errno = EINVAL
 * for a bad layout. */
typedef struct cgc_type cgc_type;
CGC_API const cgc_type *cgc_type_new(size_t size, const size_t *ptr_offsets, size_t count);

/* Allocates a zeroed object scanned precisely: only the type's pointer words
 * are scanned.  When size is a multiple of the type's size the object is an
 * array of that type; otherwise the trailing partial element is scanned for
 * the offsets that fit. */
CGC_API CGC_MALLOC_ATTR void *cgc_malloc_typed(size_t size, const cgc_type *type);

/* -------------------------------------------------------------- threads -- */

/* Threads started with pthread_create after cgc is loaded are registered
 * automatically, and a thread that calls cgc_malloc first is registered on
 * that call.  A thread made otherwise (clone, a foreign runtime) that holds
 * pointers into the heap must attach.  Returns 0, or 1 if it was already
 * attached.  A registered thread is unregistered when it exits.
 *
 * cgc also wraps pthread_exit, pthread_join (and the _np tryjoin,
 * timedjoin and clockjoin forms) and pthread_detach: a joinable thread's
 * return value (from its start routine or pthread_exit) stays a root from
 * the thread's exit until it is joined or detached, so a cgc object a
 * thread returns is alive when pthread_join hands it over.  A registered
 * thread waits in a join as in a blocking region (below): it is not
 * signalled while it waits. */
CGC_API int cgc_thread_attach(void);

/* Unregisters the calling thread: its stack no longer roots anything, its
 * caches go back to the heap.  Aborts if the thread is not attached. */
CGC_API void cgc_thread_detach(void);

/* Brackets a region (a long system call) in which the thread touches no cgc
 * object and stores no pointer: cgc does not stop or signal the thread, and
 * scans its stack as it was at cgc_blocking_begin.  cgc_blocking_end waits if
 * a collection is reading the thread's stack at that moment.  Calls nest. */
CGC_API void cgc_blocking_begin(void);
CGC_API void cgc_blocking_end(void);

/* The signal used to stop threads (default SIGPWR).  Must be called before
 * cgc_init or any allocation; returns 0, or -1 with errno = EBUSY after it. */
CGC_API int cgc_set_suspend_signal(int signo);

/* ---------------------------------------------------------------- roots -- */

/* Adds [lo, hi) to the roots; every aligned word in it is scanned.  Stores
 * of pointers into the range must use the write barrier. */
CGC_API void cgc_add_roots(void *lo, void *hi);
/* Removes every root range that lies within [lo, hi). */
CGC_API void cgc_remove_roots(void *lo, void *hi);

/* ------------------------------------------------------------- control -- */

/* Runs a full cycle (forced) and returns when its sweep is finished. */
CGC_API void cgc_collect(void);

/* Sets CGC_PERCENT; a negative value turns collection off.  Returns the old
 * value (negative if it was off). */
CGC_API int cgc_set_percent(int percent);

/* Disable and enable automatic collection; calls nest.  cgc_collect still
 * runs a cycle while disabled. */
CGC_API void cgc_disable(void);
CGC_API void cgc_enable(void);

/* Soft limit on the memory cgc maps for the heap, in bytes; INT64_MAX for
 * none.  A negative value only reads.  Returns the old limit. */
CGC_API int64_t cgc_set_memory_limit(int64_t bytes);

/* 1: mark with the world stopped from now on (no write barrier needed);
 * 0: concurrent mark.  Returns the old mode. */
CGC_API int cgc_set_stoptheworld(int on);

/* ---------------------------------------------------------- statistics -- */

#define CGC_STATS_VERSION 1
#define CGC_PAUSE_HISTORY 256

typedef struct cgc_stats {
    uint32_t version;          /* filled by cgc: CGC_STATS_VERSION it wrote */
    uint32_t size;             /* filled by cgc: bytes of this struct it wrote */
    uint64_t heap_alloc;       /* bytes in allocated objects (incl. unswept garbage) */
    uint64_t heap_sys;         /* bytes of heap obtained from the OS */
    uint64_t heap_inuse;       /* bytes in in-use spans */
    uint64_t heap_released;    /* bytes returned to the OS and not reused yet */
    uint64_t heap_goal;        /* heap size at which the next cycle should end */
    uint64_t heap_live_marked; /* bytes marked live by the last cycle */
    uint64_t total_alloc;      /* cumulative bytes allocated */
    uint64_t mallocs;          /* cumulative objects allocated */
    uint64_t frees;            /* cumulative objects freed (swept or cgc_free) */
    uint64_t num_gc;           /* completed cycles */
    uint64_t num_forced_gc;    /* of which forced by cgc_collect or the 2-minute timer */
    uint64_t pause_total_ns;   /* all stop-the-world pauses */
    uint64_t pause_max_ns;
    uint64_t num_pauses;       /* stop-the-world pauses so far */
    uint64_t pause_ns[CGC_PAUSE_HISTORY]; /* pause i is pause_ns[i % 256] */
    uint64_t gc_cpu_ns;        /* CPU time spent by the collector */
    uint64_t assist_ns;        /* of which in mark assists */
    uint64_t assist_max_ns;    /* longest single mark assist */
    uint64_t last_gc_unix_ns;  /* end of the last cycle, wall clock */
    uint32_t num_threads;      /* registered threads now */
    uint32_t gc_procs;         /* CPUs marking may use */
} cgc_stats;

/* Fills *stats; the caller sets nothing.  Use the macro: it passes the size
 * of the struct the caller was compiled with, so newer libraries never write
 * past it. */
CGC_API void cgc_read_stats_sized(cgc_stats *stats, size_t size);
#define cgc_read_stats(stats) cgc_read_stats_sized((stats), sizeof *(stats))

/* -------------------------------------------------------- write barrier -- */

/* Nonzero while the collector marks concurrently. Read by CGC_STORE. */
extern CGC_API int cgc_write_barrier_enabled;

/* The out-of-line part of the barrier: records the old and new values, then
 * stores.  Call cgc_store rather than this. */
CGC_API void cgc_store_slow(void **slot, void *value);

/* *slot = value, for a pointer field `slot` of any pointer type. */
#define CGC_STORE(slot, value)                                                  \
    do {                                                                        \
        __typeof__(*(slot)) cgc_v_ = (value);                                   \
        if (CGC_UNLIKELY(__atomic_load_n(&cgc_write_barrier_enabled,            \
                                         __ATOMIC_RELAXED)))                    \
            cgc_store_slow((void **)(slot), (void *)cgc_v_);                    \
        else                                                                    \
            *(slot) = cgc_v_;                                                   \
    } while (0)

static inline void cgc_store(void **slot, void *value) { CGC_STORE(slot, value); }

/* Atomic compare-and-swap of a pointer field, with the barrier (sequentially
 * consistent).  Returns true when *slot was expected and is now desired. */
CGC_API bool cgc_cas(void **slot, void *expected, void *desired);

/* memmove / memcpy / memset(0) for memory that may hold pointers, with the
 * barrier applied to every word they overwrite and write. */
CGC_API void *cgc_memmove(void *dst, const void *src, size_t n);
CGC_API void *cgc_memcpy(void *dst, const void *src, size_t n);
CGC_API void *cgc_memclr(void *dst, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* CGC_H */
