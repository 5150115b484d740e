/*
 * cgc-demo: a garbage-heavy workload that shows the collector at work.
 *
 * A few threads play the request handlers of a small in-memory document
 * store.  Each one, in a loop:
 *   1. writes the text of a random JSON document into a buffer that grows
 *      with cgc_realloc;
 *   2. parses it into a tree of nodes (cgc_malloc_typed: only the pointer
 *      fields are scanned) and strings (cgc_malloc_atomic: never scanned);
 *   3. prints the tree back to text and checks that it is the text it was
 *      parsed from (same length, same hash);
 *   4. publishes the document in a shared table that keeps the latest WINDOW
 *      documents: the oldest one is simply dropped, never freed;
 *   5. takes a random document from the table (written by any thread, and
 *      perhaps replaced while it is being read) and checks it again.
 * Almost everything allocated is garbage soon after; the collector finds
 * and reclaims it while the threads run.  Only the public API of cgc.h is
 * used, and pointer stores into the heap or into globals go through
 * CGC_STORE, as concurrent marking requires.
 *
 * Usage: cgc-demo [seconds [threads]]      (default: 6 seconds, 4 threads)
 * With CGC_DEBUG=gctrace=1, every collection prints a line on stderr.
 * Exits with status 1 if any document fails a check.
 */
#define _POSIX_C_SOURCE 200809L

#include <cgc.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { WINDOW = 4096, MAX_THREADS = 64, MAX_DEPTH = 4 };

/* ------------------------------------------------------- the documents -- */

enum kind { NUM, STR, ARR, OBJ };

struct node {
    struct node **kids;   /* ARR, OBJ: the members (a scanned array) */
    char *str;            /* STR: the string */
    char *key;            /* a member of an OBJ: its key */
    int64_t num;          /* NUM */
    uint32_t kind, n;     /* n: number of kids */
};
static const cgc_type *node_type;   /* pointer words: kids, str, key */

struct doc {
    struct node *root;
    uint64_t id;          /* thread index << 48 | sequence number */
    uint64_t hash;        /* FNV-1a of the text it was parsed from */
    size_t len;           /* length of that text */
};

/* The shared table, a global and therefore a root.  Stores into it use
 * CGC_STORE; the mutex only orders the threads among themselves. */
static struct doc *table[WINDOW];
static uint64_t published;          /* documents ever published */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static atomic_int stop;
static atomic_int errors_reported;

static void die(const char *what)
{
    fprintf(stderr, "cgc-demo: %s\n", what);
    exit(2);
}

static uint64_t rnd(uint64_t *s)    /* xorshift64* */
{
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return h;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------ a text buffer -- */

/* Lives on the stack, so assigning b->p needs no write barrier.  The bytes
 * are an atomic object: text holds no pointers. */
struct buf { char *p; size_t len, cap; };

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = b->p ? cgc_realloc(b->p, cap) : cgc_malloc_atomic(cap);
        if (!p)
            die("out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_putc(struct buf *b, char c) { buf_put(b, &c, 1); }

/* ---------------------------------------------------------- generator -- */

static void gen_string(struct buf *b, uint64_t *rng)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 ";
    char s[24];
    size_t n = 1 + rnd(rng) % 20;
    for (size_t i = 0; i < n; i++)
        s[i] = alphabet[rnd(rng) % (sizeof alphabet - 1)];
    buf_putc(b, '"');
    buf_put(b, s, n);
    buf_putc(b, '"');
}

/* Canonical JSON (no spaces): exactly what emit() prints back. */
static void gen_value(struct buf *b, uint64_t *rng, int depth)
{
    int container_percent = depth == 0 ? 100 : 60 - 15 * depth;
    uint64_t r = rnd(rng);
    if ((int)(r % 100) < container_percent) {
        int obj = depth == 0 || (r >> 32) % 2;
        unsigned n = 2 + rnd(rng) % 7;
        buf_putc(b, obj ? '{' : '[');
        for (unsigned i = 0; i < n; i++) {
            if (i)
                buf_putc(b, ',');
            if (obj) {
                gen_string(b, rng);
                buf_putc(b, ':');
            }
            gen_value(b, rng, depth + 1);
        }
        buf_putc(b, obj ? '}' : ']');
    } else if ((r >> 40) % 2) {
        char tmp[32];
        int64_t v = (int64_t)(rnd(rng) >> (1 + rnd(rng) % 63));
        if (r & (1u << 20))
            v = -v;
        buf_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%" PRId64, v));
    } else {
        gen_string(b, rng);
    }
}

/* ------------------------------------------------------------- parser -- */

struct parser { const char *s; size_t pos, len; };

static struct node *new_node(uint32_t kind)
{
    struct node *n = cgc_malloc_typed(sizeof *n, node_type);
    if (!n)
        die("out of memory");
    n->kind = kind;                 /* not a pointer: no barrier */
    return n;
}

static char *parse_string(struct parser *p)
{
    if (p->pos >= p->len || p->s[p->pos] != '"')
        return NULL;
    const char *start = p->s + p->pos + 1;
    const char *end = memchr(start, '"', p->len - p->pos - 1);
    if (!end)
        return NULL;
    size_t n = (size_t)(end - start);
    char *s = cgc_malloc_atomic(n + 1);     /* zeroed: terminated */
    if (!s)
        die("out of memory");
    memcpy(s, start, n);
    p->pos += n + 2;
    return s;
}

static void add_kid(struct node *parent, struct node *kid, uint32_t *cap)
{
    if (parent->n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        struct node **kids = cgc_realloc(parent->kids, *cap * sizeof *kids);
        if (!kids)
            die("out of memory");
        CGC_STORE(&parent->kids, kids);
    }
    CGC_STORE(&parent->kids[parent->n], kid);
    parent->n++;
}

static struct node *parse_value(struct parser *p, int depth)
{
    if (p->pos >= p->len || depth > 64)
        return NULL;
    char c = p->s[p->pos];
    if (c == '"') {
        char *s = parse_string(p);
        if (!s)
            return NULL;
        struct node *n = new_node(STR);
        CGC_STORE(&n->str, s);
        return n;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char *end;
        errno = 0;
        long long v = strtoll(p->s + p->pos, &end, 10);
        if (errno || end == p->s + p->pos)
            return NULL;
        struct node *n = new_node(NUM);
        n->num = v;
        p->pos = (size_t)(end - p->s);
        return n;
    }
    if (c != '[' && c != '{')
        return NULL;
    int obj = c == '{';
    char close = obj ? '}' : ']';
    struct node *n = new_node(obj ? OBJ : ARR);
    uint32_t cap = 0;
    if (++p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return n;
    }
    for (;;) {
        char *key = NULL;
        if (obj && (!(key = parse_string(p)) || p->pos >= p->len || p->s[p->pos++] != ':'))
            return NULL;
        struct node *kid = parse_value(p, depth + 1);
        if (!kid)
            return NULL;
        if (key)
            CGC_STORE(&kid->key, key);
        add_kid(n, kid, &cap);
        if (p->pos >= p->len)
            return NULL;
        c = p->s[p->pos++];
        if (c == close)
            return n;
        if (c != ',')
            return NULL;
    }
}

/* ---------------------------------------------------- printer & check -- */

static void emit_str(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    buf_put(b, s, strlen(s));
    buf_putc(b, '"');
}

static int emit(struct buf *b, const struct node *n)
{
    char tmp[32];
    switch (n->kind) {
    case NUM:
        buf_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%" PRId64, n->num));
        return 0;
    case STR:
        emit_str(b, n->str);
        return 0;
    case ARR:
    case OBJ:
        buf_putc(b, n->kind == OBJ ? '{' : '[');
        for (uint32_t i = 0; i < n->n; i++) {
            if (i)
                buf_putc(b, ',');
            if (n->kind == OBJ) {
                emit_str(b, n->kids[i]->key);
                buf_putc(b, ':');
            }
            if (emit(b, n->kids[i]))
                return -1;
        }
        buf_putc(b, n->kind == OBJ ? '}' : ']');
        return 0;
    }
    return -1;                      /* a corrupted node */
}

/* Prints the document again (more garbage) and compares with its source. */
static int verify(const struct doc *d)
{
    struct buf b = { 0 };
    if (!d->root || emit(&b, d->root) || b.len != d->len || fnv1a(b.p, b.len) != d->hash) {
        if (atomic_fetch_add(&errors_reported, 1) < 10)
            fprintf(stderr, "cgc-demo: document %" PRIx64 " failed verification\n", d->id);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ workers -- */

struct worker {
    pthread_t tid;
    int index;
    uint64_t built, bytes_parsed, verified, errors;
};

static void check(struct worker *w, const struct doc *d)
{
    if (verify(d))
        w->errors++;
    else
        w->verified++;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->index + 1);

    for (uint64_t seq = 0; !atomic_load_explicit(&stop, memory_order_relaxed); seq++) {
        struct buf text = { 0 };
        gen_value(&text, &rng, 0);

        struct parser p = { text.p, 0, text.len };
        struct doc *d = cgc_malloc(sizeof *d);
        if (!d)
            die("out of memory");
        d->id = (uint64_t)w->index << 48 | seq;
        d->hash = fnv1a(text.p, text.len);
        d->len = text.len;
        struct node *root = parse_value(&p, 0);
        if (root && p.pos != p.len)
            root = NULL;            /* trailing junk: reject */
        CGC_STORE(&d->root, root);
        w->built++;
        w->bytes_parsed += text.len;
        check(w, d);

        /* Publish; the document WINDOW places back is dropped. */
        pthread_mutex_lock(&table_lock);
        CGC_STORE(&table[published++ % WINDOW], d);
        pthread_mutex_unlock(&table_lock);

        /* Re-check some retained document, from any thread. */
        pthread_mutex_lock(&table_lock);
        struct doc *other = table[rnd(&rng) % WINDOW];
        pthread_mutex_unlock(&table_lock);
        if (other)
            check(w, other);
    }
    return NULL;
}

/* nanosleep fails with EINTR when cgc stops the thread for a collection.
 * The main thread touches no cgc object while it sleeps, so it sleeps in a
 * blocking region, where cgc neither stops nor signals it. */
static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    cgc_blocking_begin();
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    cgc_blocking_end();
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

#define MIB(x) ((double)(x) / (1024.0 * 1024.0))

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 6.0;
    int nthreads = argc > 2 ? atoi(argv[2]) : 4;
    if (!(seconds > 0) || nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "usage: %s [seconds [threads (1-%d)]]\n", argv[0], MAX_THREADS);
        return 2;
    }

    cgc_init();
    const size_t offsets[] = { offsetof(struct node, kids), offsetof(struct node, str),
                               offsetof(struct node, key) };
    node_type = cgc_type_new(sizeof(struct node), offsets, 3);
    if (!node_type)
        die("cgc_type_new failed");

    printf("cgc-demo: %d thread%s for %.1f s, keeping the latest %d documents\n",
           nthreads, nthreads == 1 ? "" : "s", seconds, WINDOW);
    fflush(stdout);

    static struct worker workers[MAX_THREADS];
    double start = now();
    for (int i = 0; i < nthreads; i++) {
        workers[i].index = i;
        if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]))
            die("pthread_create failed");
    }

    /* Watch the heap while the workers run, to report its peak. */
    cgc_stats s;
    uint64_t peak_alloc = 0, peak_sys = 0;
    while (now() - start < seconds) {
        sleep_ms(50);
        cgc_read_stats(&s);
        if (s.heap_alloc > peak_alloc) peak_alloc = s.heap_alloc;
        if (s.heap_sys > peak_sys) peak_sys = s.heap_sys;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(workers[i].tid, NULL);
    double elapsed = now() - start;

    /* Finally check every document still in the table. */
    struct worker total = { 0 };
    for (size_t i = 0; i < WINDOW; i++)
        if (table[i])
            check(&total, table[i]);
    for (int i = 0; i < nthreads; i++) {
        total.built += workers[i].built;
        total.bytes_parsed += workers[i].bytes_parsed;
        total.verified += workers[i].verified;
        total.errors += workers[i].errors;
    }

    cgc_read_stats(&s);
    size_t np = s.num_pauses < CGC_PAUSE_HISTORY ? (size_t)s.num_pauses : CGC_PAUSE_HISTORY;
    uint64_t pauses[CGC_PAUSE_HISTORY];
    memcpy(pauses, s.pause_ns, np * sizeof pauses[0]);
    qsort(pauses, np, sizeof pauses[0], cmp_u64);

    printf("\n--- summary (%.1f s) ---\n", elapsed);
    printf("documents built      %" PRIu64 " (%.1f MiB of JSON parsed and printed back)\n",
           total.built, MIB(total.bytes_parsed));
    printf("gc cycles            %" PRIu64 " (%" PRIu64 " forced)\n", s.num_gc, s.num_forced_gc);
    printf("allocated in total   %.1f MiB in %" PRIu64 " objects, %" PRIu64 " freed\n",
           MIB(s.total_alloc), s.mallocs, s.frees);
    printf("peak heap            %.1f MiB allocated, %.1f MiB from the OS (sampled every 50 ms)\n",
           MIB(peak_alloc), MIB(peak_sys));
    printf("live after last gc   %.1f MiB\n", MIB(s.heap_live_marked));
    if (np)
        printf("pauses               %" PRIu64 ": p50 %.3f ms, p99 %.3f ms, max %.3f ms"
               " (percentiles of the last %zu)\n",
               s.num_pauses, pauses[(np - 1) / 2] / 1e6, pauses[(np - 1) * 99 / 100] / 1e6,
               s.pause_max_ns / 1e6, np);
    else
        printf("pauses               none\n");
    printf("collector cpu        %.2f s (%.2f s in mark assists)\n",
           s.gc_cpu_ns / 1e9, s.assist_ns / 1e9);
    if (s.num_gc == 0)
        printf("note: no collection ran (CGC_PERCENT=off?)\n");
    printf("verified %" PRIu64 " documents, %" PRIu64 " errors\n", total.verified, total.errors);
    return total.errors ? 1 : 0;
}
