/*
 * noise — the machine's own latency floor, for reading the latency tables.
 *
 * One thread does nothing but read the monotonic clock for S seconds and
 * records the gaps between consecutive readings, like a benchmark timing
 * operations that take no time.  A gap is time the thread did not run:
 * preemption by other threads or processes, interrupts, or (on a virtual
 * machine) the host running something else on the virtual CPU.  No worst
 * single operation of any benchmark on this machine can be trusted below
 * this floor.  With T threads (the second argument) they spin together,
 * as a mutator and the collector's threads compete for the CPUs.
 *
 * usage: noise [seconds=3] [threads=1]
 */
#include "alloc_api.h"
#include "bench_util.h"

static double seconds;
static uint64_t worst[64];
static uint64_t over_1ms[64];

static void *spin(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t t0 = bench_now_ns(), last = t0, end = t0 + (uint64_t)(seconds * 1e9);
    for (;;) {
        uint64_t t = bench_now_ns(), d = t - last;
        if (d > worst[id]) worst[id] = d;
        if (d > 1000000) over_1ms[id]++;
        last = t;
        if (t >= end) break;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    seconds = (double)bench_arg(argc, argv, 1, 3);
    int threads = (int)bench_arg(argc, argv, 2, 1);
    if (threads < 1 || threads > 64 || seconds <= 0) {
        fprintf(stderr, "usage: noise [seconds>0] [1<=threads<=64]\n");
        return 2;
    }
    pthread_t t[64];
    for (int i = 1; i < threads; i++) pthread_create(&t[i], NULL, spin, (void *)(intptr_t)i);
    spin((void *)(intptr_t)0);
    uint64_t w = 0, n = 0;
    for (int i = 1; i < threads; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < threads; i++) {
        if (worst[i] > w) w = worst[i];
        n += over_1ms[i];
    }
    printf("RESULT name=noise variant=%s threads=%d time_s=%.3f worst_op_us=%.1f gaps_over_1ms=%llu errors=0\n",
           B_VARIANT, threads, seconds, w / 1e3, (unsigned long long)n);
    return 0;
}
