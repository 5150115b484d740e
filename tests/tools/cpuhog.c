/*
 * cpuhog.c — steals CPU in bursts, the way a loaded machine does, so that
 * the concurrent tests meet the timings an idle test machine never shows.
 *
 * One thread per CPU, pinned to it, repeatedly sleeps 0-4 ms and then
 * spins 0-8 ms.  With SCHED_FIFO (root or CAP_SYS_NICE) a burst preempts
 * whatever runs on that CPU at once: a thread of the program under test
 * stops at an arbitrary instruction for up to 8 ms while threads on the
 * other CPUs run on — a collector cycle can start and end meanwhile.
 * Without the privilege the hogs run at normal priority and only share the
 * CPUs, which perturbs much less (a note says so).
 *
 * Usage: cpuhog SECONDS   (tests/loaded.sh, `make chaos`)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static atomic_int realtime_ok = 1;

static void *hog(void *arg)
{
    long cpu = (long)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    struct sched_param p = {.sched_priority = 1};
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &p) != 0)
        realtime_ok = 0;
    uint64_t r = 0x9E3779B97F4A7C15ull * (uint64_t)(cpu + 1);
    for (;;) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        struct timespec pause = {0, (long)((r >> 33) % 4000) * 1000};
        nanosleep(&pause, NULL);
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        double until = now() + (double)((r >> 33) % 8000) * 1e-6;
        while (now() < until) {
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 60;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 0; i < ncpu; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, hog, (void *)i) != 0) {
            perror("cpuhog: pthread_create");
            return 1;
        }
    }
    sleep(1);
    if (!realtime_ok)
        fprintf(stderr, "cpuhog: no SCHED_FIFO (not root?): the hogs only share the CPUs\n");
    sleep(seconds > 1 ? (unsigned)seconds - 1 : 0);
    return 0;
}
