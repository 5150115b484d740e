/*
 * test_sizeclass.c — checks the generated size-class table (src/sizeclasses.h).
 *
 * Standalone: build with src/ on the include path, e.g.
 *   cc -std=c11 -Isrc tests/test_sizeclass.c -o test_sizeclass
 * Exits 0 when every check passes; prints each failure and exits 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>

#include "sizeclasses.h"

static unsigned long checks;
static unsigned long failures;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            if (failures <= 50) {                                           \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);        \
                fprintf(stderr, __VA_ARGS__);                               \
                fputc('\n', stderr);                                        \
            }                                                               \
        }                                                                   \
    } while (0)

/* The class a size maps to through the two lookup tables. */
static unsigned lookup_class(uint32_t size)
{
    if (size <= CGC_SMALL_SIZE_MAX)
        return cgc_size_to_class8[(size + CGC_SMALL_SIZE_DIV - 1) /
                                  CGC_SMALL_SIZE_DIV];
    return cgc_size_to_class128[(size - CGC_SMALL_SIZE_MAX +
                                 CGC_LARGE_SIZE_DIV - 1) /
                                CGC_LARGE_SIZE_DIV];
}

static void check_constants(void)
{
    CHECK(CGC_PAGE_SHIFT == 13, "CGC_PAGE_SHIFT is %d", CGC_PAGE_SHIFT);
    CHECK(CGC_PAGE_SIZE == 8192, "CGC_PAGE_SIZE is %u", (unsigned)CGC_PAGE_SIZE);
    CHECK(CGC_NUM_SIZE_CLASSES == 68, "CGC_NUM_SIZE_CLASSES is %d",
          CGC_NUM_SIZE_CLASSES);
    CHECK(CGC_MAX_SMALL_SIZE == 32768, "CGC_MAX_SMALL_SIZE is %d",
          CGC_MAX_SMALL_SIZE);
    CHECK(CGC_SMALL_SIZE_MAX == 1024 && CGC_SMALL_SIZE_DIV == 8 &&
              CGC_LARGE_SIZE_DIV == 128,
          "lookup-table parameters %d/%d/%d", CGC_SMALL_SIZE_MAX,
          CGC_SMALL_SIZE_DIV, CGC_LARGE_SIZE_DIV);
    CHECK(sizeof cgc_size_to_class8 / sizeof cgc_size_to_class8[0] ==
              CGC_SMALL_SIZE_MAX / CGC_SMALL_SIZE_DIV + 1,
          "cgc_size_to_class8 has the wrong length");
    CHECK(sizeof cgc_size_to_class128 / sizeof cgc_size_to_class128[0] ==
              (CGC_MAX_SMALL_SIZE - CGC_SMALL_SIZE_MAX) / CGC_LARGE_SIZE_DIV + 1,
          "cgc_size_to_class128 has the wrong length");

    CHECK(cgc_class_size[0] == 0 && cgc_class_npages[0] == 0 &&
              cgc_class_nelems[0] == 0 && cgc_class_divmagic[0] == 0,
          "class 0 is not all zero");
    CHECK(cgc_class_size[CGC_NUM_SIZE_CLASSES - 1] == CGC_MAX_SMALL_SIZE,
          "largest class is %u, not %d",
          (unsigned)cgc_class_size[CGC_NUM_SIZE_CLASSES - 1],
          CGC_MAX_SMALL_SIZE);
}

static void check_classes(void)
{
    uint32_t max_objs = 0, max_pages = 0;

    for (int c = 1; c < CGC_NUM_SIZE_CLASSES; c++) {
        uint32_t size = cgc_class_size[c];
        uint32_t npages = cgc_class_npages[c];
        uint32_t span = npages * CGC_PAGE_SIZE;

        CHECK(size > cgc_class_size[c - 1], "class %d: size %u not above %u",
              c, (unsigned)size, (unsigned)cgc_class_size[c - 1]);
        CHECK(size % 8 == 0, "class %d: size %u not a multiple of 8", c,
              (unsigned)size);
        /* 16-byte multiples from 32 B on (24 B is the one 8-aligned class
         * above 16 B, as in Go). */
        CHECK(size < 32 || size % 16 == 0,
              "class %d: size %u not a multiple of 16", c, (unsigned)size);
        CHECK(size <= CGC_SMALL_SIZE_MAX || size % CGC_LARGE_SIZE_DIV == 0,
              "class %d: size %u not a multiple of %d", c, (unsigned)size,
              CGC_LARGE_SIZE_DIV);
        CHECK(npages >= 1, "class %d: no pages", c);
        if (npages == 0 || size == 0)
            continue;

        CHECK(cgc_class_nelems[c] == span / size,
              "class %d: nelems %u, expected %u", c,
              (unsigned)cgc_class_nelems[c], (unsigned)(span / size));
        CHECK(span - cgc_class_nelems[c] * size <= span / 8,
              "class %d: tail waste %u over 1/8 of %u", c,
              (unsigned)(span - cgc_class_nelems[c] * size), (unsigned)span);
        CHECK(cgc_class_divmagic[c] == UINT32_MAX / size + 1,
              "class %d: divmagic %u, expected %u", c,
              (unsigned)cgc_class_divmagic[c],
              (unsigned)(UINT32_MAX / size + 1));

        if (cgc_class_nelems[c] > max_objs)
            max_objs = cgc_class_nelems[c];
        if (npages > max_pages)
            max_pages = npages;
    }
    CHECK(max_objs == CGC_MAX_OBJS_PER_SPAN, "CGC_MAX_OBJS_PER_SPAN %d, max %u",
          CGC_MAX_OBJS_PER_SPAN, (unsigned)max_objs);
    CHECK(max_pages == CGC_MAX_SIZE_CLASS_NPAGES,
          "CGC_MAX_SIZE_CLASS_NPAGES %d, max %u", CGC_MAX_SIZE_CLASS_NPAGES,
          (unsigned)max_pages);
}

static void check_lookup(void)
{
    int want = 1;

    for (uint32_t size = 1; size <= CGC_MAX_SMALL_SIZE; size++) {
        while (want < CGC_NUM_SIZE_CLASSES && cgc_class_size[want] < size)
            want++;
        unsigned got = lookup_class(size);
        CHECK(got == (unsigned)want, "size %u maps to class %u, expected %d",
              (unsigned)size, got, want);
    }
}

/* Every offset 0 .. span (object starts and every interior byte) divides
 * exactly through the magic. */
static void check_divmagic(void)
{
    for (int c = 1; c < CGC_NUM_SIZE_CLASSES; c++) {
        uint32_t size = cgc_class_size[c];
        uint32_t span = (uint32_t)cgc_class_npages[c] * CGC_PAGE_SIZE;
        uint64_t m = cgc_class_divmagic[c];
        unsigned long bad = 0;
        uint32_t first_bad = 0;

        if (size == 0)
            continue;
        for (uint32_t off = 0; off <= span; off++) {
            uint32_t q = (uint32_t)(((uint64_t)off * m) >> 32);
            checks++;
            if (q != off / size) {
                if (bad++ == 0)
                    first_bad = off;
            }
        }
        if (bad) {
            failures += bad;
            fprintf(stderr,
                    "FAIL class %d (size %u): divmagic %u wrong at %lu offsets, "
                    "first %u\n",
                    c, (unsigned)size, (unsigned)m, bad, (unsigned)first_bad);
        }
    }
}

int main(void)
{
    check_constants();
    check_classes();
    check_lookup();
    check_divmagic();

    if (failures) {
        printf("test_sizeclass: %lu of %lu checks failed\n", failures, checks);
        return 1;
    }
    printf("test_sizeclass: %lu checks passed\n", checks);
    return 0;
}
