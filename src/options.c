/*
 * options.c — every tunable, in one table: its environment variable or
 * CGC_DEBUG key, its default, its parser.  Read once at initialisation.
 * Bad values and unknown keys print one warning and keep the default.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

cgc_options cgc__opt = {
    .percent = 100,
    .memlimit = INT64_MAX,
    .maxprocs = 0,
    .gctrace = 0,
    .gccheckmark = 0,
    .gcstoptheworld = 0,
    .sigsuspend = SIGPWR,
};

typedef bool (*parse_fn)(const char *text, void *out);

static bool parse_int(const char *s, void *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 1000000) return false;
    *(int *)out = (int)v;
    return true;
}

static bool parse_percent(const char *s, void *out) {
    if (strcmp(s, "off") == 0) {
        *(int *)out = -1;
        return true;
    }
    return parse_int(s, out);
}

static bool parse_bool(const char *s, void *out) {
    if (strcmp(s, "0") == 0 || strcmp(s, "1") == 0) {
        *(int *)out = s[0] - '0';
        return true;
    }
    return false;
}

static bool parse_signal(const char *s, void *out) {
    int v;
    if (!parse_int(s, &v) || v < 1 || v >= NSIG || v == SIGKILL || v == SIGSTOP || v == SIGSEGV)
        return false;
    *(int *)out = v;
    return true;
}

/* Bytes with an optional B/KiB/MiB/GiB/TiB suffix (as GOMEMLIMIT), or "off". */
static bool parse_bytes(const char *s, void *out) {
    if (strcmp(s, "off") == 0) {
        *(int64_t *)out = INT64_MAX;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return false;
    static const struct { const char *suffix; int shift; } units[] = {
        {"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > ((unsigned long long)INT64_MAX >> units[i].shift)) return false;
            *(int64_t *)out = (int64_t)(v << units[i].shift);
            return true;
        }
    }
    return false;
}

typedef struct option_desc {
    const char *env;   /* environment variable, or NULL for a CGC_DEBUG key */
    const char *key;   /* CGC_DEBUG key */
    parse_fn parse;
    void *value;
    const char *expect; /* for the warning */
} option_desc;

static const option_desc options[] = {
    {"CGC_PERCENT", NULL, parse_percent, &cgc__opt.percent, "a percentage or \"off\""},
    {"CGC_MEMLIMIT", NULL, parse_bytes, &cgc__opt.memlimit, "bytes, e.g. 512MiB, or \"off\""},
    {"CGC_MAXPROCS", NULL, parse_int, &cgc__opt.maxprocs, "a number of CPUs"},
    {NULL, "gctrace", parse_bool, &cgc__opt.gctrace, "0 or 1"},
    {NULL, "gccheckmark", parse_bool, &cgc__opt.gccheckmark, "0 or 1"},
    {NULL, "gcstoptheworld", parse_bool, &cgc__opt.gcstoptheworld, "0 or 1"},
    {NULL, "sigsuspend", parse_signal, &cgc__opt.sigsuspend, "a signal number"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static void set_option(const option_desc *o, const char *name, const char *text) {
    if (!o->parse(text, o->value))
        cgc__warn("ignoring %s=%s: expected %s", name, text, o->expect);
}

static void parse_debug(const char *text) {
    char buf[512];
    size_t len = strlen(text);
    if (len >= sizeof buf) {
        cgc__warn("ignoring CGC_DEBUG: longer than %zu bytes", sizeof buf - 1);
        return;
    }
    memcpy(buf, text, len + 1);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            cgc__warn("ignoring CGC_DEBUG item \"%s\": expected key=value", item);
            continue;
        }
        *eq = 0;
        const option_desc *found = NULL;
        for (size_t i = 0; i < NOPTIONS; i++)
            if (options[i].key && strcmp(options[i].key, item) == 0) found = &options[i];
        if (!found) {
            cgc__warn("ignoring unknown CGC_DEBUG key \"%s\"", item);
            continue;
        }
        set_option(found, item, eq + 1);
    }
}

/* Called by cgc_set_suspend_signal before initialisation; the environment,
 * read later, does not override an explicit call. */
static bool signal_set_by_api;
void cgc__options_set_signal(int signo) {
    cgc__opt.sigsuspend = signo;
    signal_set_by_api = true;
}

void cgc__options_init(void) {
    int api_signal = cgc__opt.sigsuspend;
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (!options[i].env) continue;
        const char *v = getenv(options[i].env);
        if (v && *v) set_option(&options[i], options[i].env, v);
    }
    const char *dbg = getenv("CGC_DEBUG");
    if (dbg && *dbg) parse_debug(dbg);
    if (signal_set_by_api) cgc__opt.sigsuspend = api_signal;
    int ncpu = cgc__ncpu();
    if (cgc__opt.maxprocs <= 0 || cgc__opt.maxprocs > ncpu) cgc__opt.maxprocs = ncpu;
}
