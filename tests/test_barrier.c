/*
 * test_barrier.c — the hybrid write barrier under concurrent marking.
 *
 * Two mutator threads each own a set of "boxes" (arrays of pointer slots:
 * heap objects, plus one global array and one cgc_add_roots range) holding a
 * fixed number of items (each item points to an atomic payload).  They
 * shuffle the items around with every barrier primitive — CGC_STORE,
 * cgc_cas, cgc_memmove, cgc_memcpy, cgc_memclr — including the "hidden
 * move" the deletion half of the barrier exists for: load a pointer from box
 * A into a local, delete it from A, let time pass, store it into box B
 * (perhaps already scanned).  Meanwhile the main thread runs collections
 * back to back (concurrent mode forced with cgc_set_stoptheworld(0)).
 * Each mutator regularly takes a census of its boxes: every item present
 * exactly as many times as expected and intact.  Run it with
 * CGC_DEBUG=gccheckmark=1 to have every concurrent mark verified too.
 */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>

enum {
    MUTATORS = 2,
    HEAP_BOXES = 24, /* per mutator */
    BOXES = HEAP_BOXES + 2,
    M = 32,          /* slots per box */
    ITEMS = BOXES * M / 2,
    PAYLOAD = 48,
};

#define ITEM_MAGIC 0x17E3B0C5A5A5F00Dull

typedef struct item {
    uint64_t magic;
    uint64_t id;
    uint64_t check;
    unsigned char *payload; /* cgc_malloc_atomic(PAYLOAD) */
} item;

typedef struct mstate {
    int index;
    uint64_t rng;
    uint64_t next_id;
    unsigned long ops, censuses, moves;
    unsigned long bad_items, bad_counts;
} mstate;

/* box[m][b]: heap boxes first, then the global box, then the roots box. */
static item **g_boxes[MUTATORS][BOXES];
static item *g_global_box[MUTATORS][M];
static item **g_roots_box[MUTATORS]; /* libc memory given to cgc_add_roots */
static atomic_int stop;
static atomic_ulong total_ops;

static uint64_t item_check(uint64_t id) { return id * 0xD6E8FEB86659FD93ull ^ ITEM_MAGIC; }

static item *item_new(mstate *st)
{
    item *it = cgc_malloc(sizeof *it);
    unsigned char *pl = cgc_malloc_atomic(PAYLOAD);
    if (!it || !pl)
        abort();
    it->magic = ITEM_MAGIC;
    it->id = st->next_id++;
    it->check = item_check(it->id);
    fill_pattern(pl, PAYLOAD, it->id);
    CGC_STORE(&it->payload, pl);
    return it;
}

static int item_ok(const item *it)
{
    return cgc_base(it) == it && it->magic == ITEM_MAGIC && it->check == item_check(it->id) &&
           cgc_base(it->payload) == it->payload &&
           check_pattern(it->payload, PAYLOAD, it->id) == -1;
}

/* What is wrong with a bad item: which of its words, or its payload. */
static void report_bad_item(const mstate *st, const item *it, int b, int s)
{
    fprintf(stderr, "mutator %d: bad item %p in box %d slot %d (base %p)", st->index, (void *)it,
            b, s, cgc_base(it));
    if (cgc_base(it) != it) {
        fputc('\n', stderr);
        return;
    }
    fprintf(stderr, ": magic %s, id %llu, check %s, payload %p (base %p)",
            it->magic == ITEM_MAGIC ? "ok" : "BAD", (unsigned long long)it->id,
            it->check == item_check(it->id) ? "ok" : "BAD", (void *)it->payload,
            cgc_base(it->payload));
    if (cgc_base(it->payload) == it->payload) {
        long at = check_pattern(it->payload, PAYLOAD, it->id);
        fprintf(stderr, ", payload pattern %s", at < 0 ? "ok" : "BAD");
        if (at >= 0)
            fprintf(stderr, " from byte %ld (bytes %02x %02x %02x %02x)", at, it->payload[0],
                    it->payload[1], it->payload[2], it->payload[3]);
    }
    fputc('\n', stderr);
}

static void census(mstate *st)
{
    item **boxes_[BOXES];
    memcpy(boxes_, g_boxes[st->index], sizeof boxes_);
    int count = 0;
    for (int b = 0; b < BOXES; b++) {
        for (int s = 0; s < M; s++) {
            item *it = boxes_[b][s];
            if (!it)
                continue;
            count++;
            if (!item_ok(it)) {
                if (st->bad_items++ < 5)
                    report_bad_item(st, it, b, s);
            }
        }
    }
    if (count != ITEMS) {
        if (st->bad_counts++ < 5)
            fprintf(stderr, "mutator %d: census found %d items, expected %d\n", st->index,
                    count, ITEMS);
    }
    st->censuses++;
}

static item **box(mstate *st, int b) { return g_boxes[st->index][b]; }

/* Some time between deleting and re-storing a pointer: spinning or
 * allocating (which may assist marking). */
static void delay(mstate *st)
{
    switch (rng_below(&st->rng, 4)) {
    case 0:
        break;
    case 1:
        for (int i = 0; i < 200; i++)
            cpu_relax();
        break;
    case 2:
        churn(2048, &st->rng);
        break;
    default:
        sched_yield();
        break;
    }
}

/* The hidden move: A[i] -> local -> B[j]. */
static void op_hidden_move(mstate *st)
{
    item **a = box(st, (int)rng_below(&st->rng, BOXES));
    int i = (int)rng_below(&st->rng, M);
    item *x = a[i];
    if (!x)
        return;
    CGC_STORE(&a[i], NULL);
    delay(st);
    item **b = box(st, (int)rng_below(&st->rng, BOXES));
    int start = (int)rng_below(&st->rng, M);
    for (int k = 0; k < M; k++) {
        int j = (start + k) % M;
        if (!b[j]) {
            CGC_STORE(&b[j], x);
            st->moves++;
            return;
        }
    }
    CGC_STORE(&a[i], x); /* b full: put it back */
}

/* Rotate a box by one with cgc_memmove. */
static void op_rotate(mstate *st)
{
    item **a = box(st, (int)rng_below(&st->rng, BOXES));
    if (rng_below(&st->rng, 2)) {
        item *last = a[M - 1];
        cgc_memmove(&a[1], &a[0], (M - 1) * sizeof(item *));
        delay(st);
        CGC_STORE(&a[0], last);
    } else {
        item *first = a[0];
        cgc_memmove(&a[0], &a[1], (M - 1) * sizeof(item *));
        delay(st);
        CGC_STORE(&a[M - 1], first);
    }
}

/* Swap two ranges of slots between boxes with cgc_memcpy through a local. */
static void op_swap_ranges(mstate *st)
{
    int ba = (int)rng_below(&st->rng, BOXES), bb = (int)rng_below(&st->rng, BOXES);
    if (ba == bb)
        return;
    item **a = box(st, ba), **b = box(st, bb);
    int n = 1 + (int)rng_below(&st->rng, M / 2);
    int k = (int)rng_below(&st->rng, M - n + 1), l = (int)rng_below(&st->rng, M - n + 1);
    item *tmp[M];
    memcpy(tmp, &a[k], (size_t)n * sizeof(item *)); /* into our own stack: no barrier */
    cgc_memcpy(&a[k], &b[l], (size_t)n * sizeof(item *));
    delay(st);
    cgc_memcpy(&b[l], tmp, (size_t)n * sizeof(item *));
}

/* Clear a range with cgc_memclr, then put the items back reversed. */
static void op_clear_reinsert(mstate *st)
{
    item **a = box(st, (int)rng_below(&st->rng, BOXES));
    int n = 1 + (int)rng_below(&st->rng, M);
    int k = (int)rng_below(&st->rng, M - n + 1);
    item *tmp[M];
    memcpy(tmp, &a[k], (size_t)n * sizeof(item *));
    cgc_memclr(&a[k], (size_t)n * sizeof(item *));
    delay(st);
    for (int t = 0; t < n; t++)
        CGC_STORE(&a[k + n - 1 - t], tmp[t]);
}

/* Swap two slots with cgc_cas. */
static void op_cas_swap(mstate *st)
{
    item **a = box(st, (int)rng_below(&st->rng, BOXES));
    item **b = box(st, (int)rng_below(&st->rng, BOXES));
    int i = (int)rng_below(&st->rng, M), j = (int)rng_below(&st->rng, M);
    if (&a[i] == &b[j])
        return;
    item *x = a[i], *y = b[j];
    int ok1 = cgc_cas((void **)&a[i], x, y);
    delay(st);
    int ok2 = cgc_cas((void **)&b[j], y, x);
    if (!ok1 || !ok2)
        st->bad_counts++; /* nobody else writes these slots */
}

/* Replace an item by a fresh one (the old one becomes garbage). */
static void op_replace(mstate *st)
{
    item **a = box(st, (int)rng_below(&st->rng, BOXES));
    int i = (int)rng_below(&st->rng, M);
    if (a[i])
        CGC_STORE(&a[i], item_new(st));
}

/* Swap two heap boxes in the (global) box table. */
static void op_swap_boxes(mstate *st)
{
    int x = (int)rng_below(&st->rng, HEAP_BOXES), y = (int)rng_below(&st->rng, HEAP_BOXES);
    item ***tab = g_boxes[st->index];
    item **bx = tab[x], **by = tab[y];
    CGC_STORE(&tab[x], by);
    delay(st);
    CGC_STORE(&tab[y], bx);
}

/* Copy a heap box into a fresh object with cgc_memcpy and drop the old. */
static void op_copy_box(mstate *st)
{
    int x = (int)rng_below(&st->rng, HEAP_BOXES);
    item ***tab = g_boxes[st->index];
    item **fresh = cgc_malloc(M * sizeof(item *));
    item **old = tab[x];
    delay(st);
    cgc_memcpy(fresh, old, M * sizeof(item *));
    CGC_STORE(&tab[x], fresh);
    if (rng_below(&st->rng, 2))
        cgc_memclr(old, M * sizeof(item *)); /* the old box dies empty */
}

static void *mutator(void *arg)
{
    mstate *st = arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        switch (rng_below(&st->rng, 16)) {
        case 0: case 1: case 2: case 3: case 4: op_hidden_move(st); break;
        case 5: case 6: op_rotate(st); break;
        case 7: case 8: op_swap_ranges(st); break;
        case 9: case 10: op_clear_reinsert(st); break;
        case 11: op_cas_swap(st); break;
        case 12: op_replace(st); break;
        case 13: op_swap_boxes(st); break;
        case 14: op_copy_box(st); break;
        default: churn(1024, &st->rng); break;
        }
        if (++st->ops % 500 == 0) {
            census(st);
            atomic_fetch_add_explicit(&total_ops, 500, memory_order_relaxed);
        }
    }
    census(st);
    return NULL;
}

static void setup(mstate *st)
{
    int m = st->index;
    for (int b = 0; b < HEAP_BOXES; b++)
        CGC_STORE(&g_boxes[m][b], (item **)cgc_malloc(M * sizeof(item *)));
    CGC_STORE(&g_boxes[m][HEAP_BOXES], g_global_box[m]);
    g_roots_box[m] = calloc(M, sizeof(item *));
    cgc_add_roots(g_roots_box[m], g_roots_box[m] + M);
    CGC_STORE(&g_boxes[m][HEAP_BOXES + 1], g_roots_box[m]);
    /* half full: the first half of every box */
    for (int b = 0; b < BOXES; b++)
        for (int s = 0; s < M / 2; s++)
            CGC_STORE(&g_boxes[m][b][s], item_new(st));
}

int main(void)
{
    cgc_init();
    cgc_set_stoptheworld(0);
    cgc_set_percent(20);
    long target = scaled(400, 80, 20000);
    unsigned long min_ops = (unsigned long)scaled(200000, 40000, 20000000);
    double limit = (double)scaled(90, 90, 3000);

    static mstate st[MUTATORS];
    for (int m = 0; m < MUTATORS; m++) {
        st[m].index = m;
        st[m].rng = 0x5EED0000u + (uint64_t)m;
        st[m].next_id = (uint64_t)m << 40;
        setup(&st[m]);
        census(&st[m]);
    }
    cgc_stats s0 = get_stats();
    double t0 = now_sec();
    pthread_t t[MUTATORS];
    for (int m = 0; m < MUTATORS; m++)
        CHECK(pthread_create(&t[m], NULL, mutator, &st[m]) == 0);
    long forced = 0;
    while ((forced < target || atomic_load(&total_ops) < min_ops) && now_sec() - t0 < limit) {
        cgc_collect();
        forced++;
        if (st[0].bad_items || st[1].bad_items)
            break;
    }
    atomic_store(&stop, 1);
    for (int m = 0; m < MUTATORS; m++)
        pthread_join(t[m], NULL);
    cgc_collect();
    unsigned long ops = 0, censuses = 0, moves = 0;
    for (int m = 0; m < MUTATORS; m++) {
        census(&st[m]);
        CHECKF(st[m].bad_items == 0, "mutator %d: %lu bad items", m, st[m].bad_items);
        CHECKF(st[m].bad_counts == 0, "mutator %d: %lu wrong censuses or lost CAS", m,
               st[m].bad_counts);
        ops += st[m].ops;
        censuses += st[m].censuses;
        moves += st[m].moves;
    }
    cgc_stats s1 = get_stats();
    printf("test_barrier (%s): %ld forced + %llu total cycles in %.1f s, %lu ops, "
           "%lu hidden moves, %lu censuses\n",
           getenv("CGC_DEBUG") ? getenv("CGC_DEBUG") : "concurrent", forced,
           (unsigned long long)(s1.num_gc - s0.num_gc), now_sec() - t0, ops, moves,
           censuses);
    CHECK(s1.num_gc - s0.num_gc >= (uint64_t)(target < 20 ? target : 20));
    CHECK(moves > 0);
    for (int m = 0; m < MUTATORS; m++) {
        cgc_remove_roots(g_roots_box[m], g_roots_box[m] + M);
        free(g_roots_box[m]);
    }
    return finish("test_barrier");
}
