/*
 * msgwindow — GC latency with a large live set of pointer-free messages.
 *
 * A window of W slots (default 200,000) lives in one heap object that the
 * collector scans.  The program pushes M messages (default 2,000,000) of S
 * bytes (default 1 KiB): message i is a fresh pointer-free object
 * (B_MALLOC_ATOMIC), filled with a pattern derived from i, stored with
 * B_STORE into slot i % W, which drops message i - W.  The live heap is thus
 * about W * S (200 MB by default) and every push makes S bytes of garbage.
 *
 * Every push (allocate + fill + store) is timed on its own with
 * CLOCK_MONOTONIC; the worst one is the latency a program would see.  The
 * evicted message is checked outside the timed region, and the whole window
 * at the end: a premature free shows up as a wrong pattern.
 * The malloc variant frees the evicted message inside the timed region.
 *
 * usage: msgwindow [window=200000] [messages=2000000] [msg_bytes=1024]
 */
#include "alloc_api.h"
#include "bench_util.h"

static inline unsigned char pattern(uint64_t i) { return (unsigned char)(i * 131u + 7u); }

static int message_ok(const unsigned char *m, uint64_t i, size_t size)
{
    uint64_t idx;
    memcpy(&idx, m, sizeof idx);
    return idx == i && m[8] == pattern(i) && m[size - 1] == pattern(i);
}

static bench_hist hist;

int main(int argc, char **argv)
{
    long w = bench_arg(argc, argv, 1, 200000);
    long count = bench_arg(argc, argv, 2, 2000000);
    long size = bench_arg(argc, argv, 3, 1024);
    if (size < 16)
        size = 16;
    uint64_t errors = 0;

    B_INIT();
    bench_slow_init();
    bench_gc_begin();

    unsigned char **window = (unsigned char **)b_check(B_MALLOC(w * sizeof *window), w * sizeof *window);

    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < count; i++) {
        long slot = i % w;
        unsigned char *old = window[slot];
        if (old != NULL && !message_ok(old, (uint64_t)(i - w), (size_t)size))
            errors++;

        uint64_t a = bench_now_ns();
        unsigned char *m = (unsigned char *)B_MALLOC_ATOMIC((size_t)size);
        if (m == NULL) {
            fprintf(stderr, "out of memory\n");
            return 3;
        }
        uint64_t idx = (uint64_t)i;
        memcpy(m, &idx, sizeof idx);
        memset(m + 8, pattern(idx), (size_t)size - 8);
#if !B_IS_GC
        free(old);
#endif
        B_STORE(&window[slot], m);
        uint64_t b = bench_now_ns();

        bench_op(&hist, a, b);
        if ((i & 16383) == 16383)
            bench_gc_poll();
    }
    double secs = (bench_now_ns() - t0) / 1e9;

    long live = count < w ? count : w;
    for (long k = count - live; k < count; k++)
        if (!message_ok(window[k % w], (uint64_t)k, (size_t)size))
            errors++;

    bench_gc_summary gc;
    bench_gc_end(&gc);
    bench_gc_finish(&gc);
    bench_result("msgwindow", secs, &gc,
                 "window=%ld messages=%ld msg_bytes=%ld worst_op_us=%.1f op_p99_us=%.2f op_p999_us=%.2f "
                 "mean_op_ns=%.0f errors=%" PRIu64,
                 w, count, size, hist.max_ns / 1e3, bench_hist_pct(&hist, 99) / 1e3,
                 bench_hist_pct(&hist, 99.9) / 1e3, (double)hist.sum_ns / (double)(hist.n ? hist.n : 1),
                 errors);
    bench_slow_print("msgwindow");
    if (errors != 0) {
        fprintf(stderr, "msgwindow: %" PRIu64 " messages damaged (premature free?)\n", errors);
        return 1;
    }
    return 0;
}
