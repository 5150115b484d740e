/*
 * test_env.c — the environment variables (CGC_PERCENT, CGC_MEMLIMIT,
 * CGC_MAXPROCS, CGC_DEBUG keys) and the suspend-signal settings.
 *
 * The environment is read once, at initialisation, so the test re-executes
 * itself (/proc/self/exe) with a given environment and a mode in argv; the
 * child checks what it can see and exits 0 or 1, and the parent checks the
 * child's stderr (warnings, gctrace lines).
 */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>

/* ------------------------------------------------------------ children -- */

static int child_fail(const char *what)
{
    fprintf(stderr, "child check failed: %s\n", what);
    return 1;
}

static atomic_int th_ready;
static int th_fd;
static int th_ok;

static void *blocked_holder(void *arg)
{
    (void)arg;
    char *p = cgc_malloc(1000);
    fill_pattern(p, 1000, 31);
    atomic_store(&th_ready, 1);
    char c;
    while (read(th_fd, &c, 1) < 0 && errno == EINTR) {
    }
    th_ok = cgc_base(p) == p && check_pattern(p, 1000, 31) == -1;
    return NULL;
}

/* A thread blocked in read() holds an object across collections: the
 * suspend signal must reach it and be restarted over. */
static int collect_with_thread(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    th_fd = fds[0];
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_holder, NULL) != 0)
        return 0;
    while (!atomic_load(&th_ready))
        sched_yield();
    uint64_t r = 1;
    for (int i = 0; i < 10; i++) {
        churn(256 << 10, &r);
        cgc_collect();
    }
    if (write(fds[1], "x", 1) != 1)
        return 0;
    pthread_join(t, NULL);
    return th_ok;
}

static int handler_installed(int sig)
{
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0)
        return 0;
    return (sa.sa_flags & SA_SIGINFO) ? sa.sa_sigaction != NULL
                                      : sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
}

static int child(const char *mode, const char *arg)
{
    if (strcmp(mode, "percent") == 0) {
        int v = cgc_set_percent(100);
        if (strcmp(arg, "neg") == 0)
            return v < 0 ? 0 : child_fail("percent should be off");
        if (v != atoi(arg)) {
            fprintf(stderr, "percent %d, expected %s\n", v, arg);
            return 1;
        }
        return 0;
    }
    if (strcmp(mode, "nogc") == 0) {
        uint64_t r = 3;
        churn(64 << 20, &r);
        cgc_stats s = get_stats();
        if (s.num_gc != 0)
            return child_fail("cycles ran with CGC_PERCENT=off");
        cgc_collect();
        s = get_stats();
        return s.num_gc == 1 ? 0 : child_fail("cgc_collect with CGC_PERCENT=off");
    }
    if (strcmp(mode, "memlimit") == 0) {
        int64_t v = cgc_set_memory_limit(-1);
        int64_t want = strcmp(arg, "none") == 0 ? INT64_MAX : strtoll(arg, NULL, 10);
        if (v != want) {
            fprintf(stderr, "memory limit %lld, expected %lld\n", (long long)v,
                    (long long)want);
            return 1;
        }
        return 0;
    }
    if (strcmp(mode, "stw") == 0) {
        int v = cgc_set_stoptheworld(0);
        if (v != atoi(arg))
            return child_fail("stop-the-world mode");
        return collect_with_thread() ? 0 : child_fail("collect with a thread");
    }
    if (strcmp(mode, "collect") == 0) {
        uint64_t r = 5;
        for (int i = 0; i < 3; i++) {
            churn(1 << 20, &r);
            cgc_collect();
        }
        return collect_with_thread() ? 0 : child_fail("collect with a thread");
    }
    if (strcmp(mode, "maxprocs") == 0) {
        cgc_init();
        cgc_stats s = get_stats();
        if (s.gc_procs != (uint32_t)atoi(arg)) {
            fprintf(stderr, "gc_procs %u, expected %s\n", s.gc_procs, arg);
            return 1;
        }
        return collect_with_thread() ? 0 : child_fail("collect with a thread");
    }
    if (strcmp(mode, "sigsuspend") == 0) {
        /* CGC_DEBUG=sigsuspend=arg: that signal is used, SIGPWR is left alone */
        int sig = atoi(arg);
        cgc_init();
        if (!collect_with_thread())
            return child_fail("collect with a thread");
        if (!handler_installed(sig))
            return child_fail("no handler on the chosen signal");
        if (handler_installed(SIGPWR))
            return child_fail("a handler on SIGPWR although another signal was chosen");
        return 0;
    }
    if (strcmp(mode, "setsig") == 0) {
        if (cgc_set_suspend_signal(SIGUSR1) != 0)
            return child_fail("cgc_set_suspend_signal before init");
        if (!collect_with_thread())
            return child_fail("collect with a thread");
        if (!handler_installed(SIGUSR1))
            return child_fail("no handler on SIGUSR1");
        if (handler_installed(SIGPWR))
            return child_fail("a handler on SIGPWR although SIGUSR1 was chosen");
        errno = 0;
        if (cgc_set_suspend_signal(SIGUSR2) != -1 || errno != EBUSY)
            return child_fail("cgc_set_suspend_signal after init");
        return 0;
    }
    if (strcmp(mode, "defaultsig") == 0) {
        if (!collect_with_thread())
            return child_fail("collect with a thread");
        return handler_installed(SIGPWR) ? 0 : child_fail("no handler on SIGPWR");
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}

/* ------------------------------------------------------------- parent -- */

static char child_err[65536];

/* Runs this program as `mode arg` with the CGC_* variables removed and then
 * `env` (NULL-terminated "K=V" strings) added; returns its exit status (or
 * 128 + signal) and leaves its stderr in child_err. */
static int run_child(const char *mode, const char *arg, const char *const *env)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        unsetenv("CGC_PERCENT");
        unsetenv("CGC_MEMLIMIT");
        unsetenv("CGC_MAXPROCS");
        unsetenv("CGC_DEBUG");
        for (int i = 0; env[i]; i++)
            putenv((char *)env[i]);
        alarm(60);
        execl("/proc/self/exe", "test_env", "--child", mode, arg, (char *)NULL);
        fprintf(stderr, "exec failed: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fds[0], child_err + len, sizeof child_err - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len >= sizeof child_err - 1)
            break;
    }
    child_err[len] = 0;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int count_lines_starting(const char *text, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *l = text; l && *l;) {
        if (strncmp(l, prefix, pl) == 0)
            n++;
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    return n;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NOENV ((const char *const[]){NULL})

/* Expects exit 0 and an empty stderr (no warnings). */
#define EXPECT_CLEAN(mode, arg, env)                                                   \
    do {                                                                               \
        int rc_ = run_child(mode, arg, env);                                           \
        CHECKF(rc_ == 0, "%s %s: child status %d, stderr:\n%s", mode, arg, rc_,        \
               child_err);                                                             \
        CHECKF(child_err[0] == 0, "%s %s: unexpected stderr:\n%s", mode, arg,          \
               child_err);                                                             \
    } while (0)

/* Expects exit 0 and exactly one warning line mentioning `word`. */
#define EXPECT_WARNING(mode, arg, env, word)                                           \
    do {                                                                               \
        int rc_ = run_child(mode, arg, env);                                           \
        CHECKF(rc_ == 0, "%s %s: child status %d, stderr:\n%s", mode, arg, rc_,        \
               child_err);                                                             \
        CHECKF(count_lines(child_err) == 1 && contains_nocase(child_err, word),        \
               "%s %s: expected one warning about %s, stderr:\n%s", mode, arg, word,   \
               child_err);                                                             \
    } while (0)

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--child") == 0)
        return child(argv[2], argv[3]);

    /* CGC_PERCENT */
    EXPECT_CLEAN("percent", "100", NOENV);
    EXPECT_CLEAN("percent", "10", ENV("CGC_PERCENT=10"));
    EXPECT_CLEAN("percent", "250", ENV("CGC_PERCENT=250"));
    EXPECT_CLEAN("percent", "neg", ENV("CGC_PERCENT=off"));
    EXPECT_WARNING("percent", "100", ENV("CGC_PERCENT=lots"), "CGC_PERCENT");
    EXPECT_CLEAN("nogc", "-", ENV("CGC_PERCENT=off"));

    /* CGC_MEMLIMIT */
    EXPECT_CLEAN("memlimit", "none", NOENV);
    EXPECT_CLEAN("memlimit", "536870912", ENV("CGC_MEMLIMIT=512MiB"));
    EXPECT_CLEAN("memlimit", "1073741824", ENV("CGC_MEMLIMIT=1GiB"));
    EXPECT_CLEAN("memlimit", "2199023255552", ENV("CGC_MEMLIMIT=2TiB"));
    EXPECT_CLEAN("memlimit", "65536", ENV("CGC_MEMLIMIT=64KiB"));
    EXPECT_CLEAN("memlimit", "123456789", ENV("CGC_MEMLIMIT=123456789"));
    EXPECT_WARNING("memlimit", "none", ENV("CGC_MEMLIMIT=12XB"), "CGC_MEMLIMIT");

    /* CGC_MAXPROCS */
    EXPECT_CLEAN("maxprocs", "1", ENV("CGC_MAXPROCS=1"));

    /* CGC_DEBUG */
    EXPECT_CLEAN("stw", "0", NOENV);
    EXPECT_CLEAN("stw", "1", ENV("CGC_DEBUG=gcstoptheworld=1"));
    EXPECT_CLEAN("collect", "-", ENV("CGC_DEBUG=gccheckmark=1"));
    EXPECT_WARNING("collect", "-", ENV("CGC_DEBUG=bogus=1"), "bogus");
    EXPECT_WARNING("stw", "1", ENV("CGC_DEBUG=bogus=1,gcstoptheworld=1"), "bogus");

    int rc = run_child("collect", "-", ENV("CGC_DEBUG=gctrace=1"));
    CHECKF(rc == 0, "gctrace: child status %d", rc);
    int traces = count_lines_starting(child_err, "gc ");
    CHECKF(traces >= 3, "gctrace=1: %d lines starting \"gc \" for >= 3 cycles:\n%s",
           traces, child_err);
    CHECKF(strstr(child_err, "gc 1 @") != NULL, "gctrace=1 format:\n%s", child_err);
    CHECKF(count_lines(child_err) == traces, "gctrace=1: other lines on stderr:\n%s",
           child_err);
    rc = run_child("collect", "-", ENV("CGC_DEBUG=gctrace=1,gccheckmark=1"));
    CHECKF(rc == 0 && count_lines_starting(child_err, "gc ") >= 3,
           "gctrace+gccheckmark: status %d, stderr:\n%s", rc, child_err);

    /* suspend signals */
    EXPECT_CLEAN("defaultsig", "-", NOENV);
    char sigarg[16], sigenv[64];
    snprintf(sigarg, sizeof sigarg, "%d", SIGUSR2);
    snprintf(sigenv, sizeof sigenv, "CGC_DEBUG=sigsuspend=%d", SIGUSR2);
    EXPECT_CLEAN("sigsuspend", sigarg, ENV(sigenv));
    EXPECT_CLEAN("setsig", "-", NOENV);

    return finish("test_env");
}
