#!/usr/bin/env python3
"""Generate src/sizeclasses.h, cgc's table of small-object size classes.

The classes are computed with the same rules as the Go runtime's size-class
generator (src/runtime/mksizeclasses.go), so cgc's allocator carves spans
exactly the way Go's does:

  * pages are 8 KiB (page shift 13);
  * candidate object sizes run from 8 B to 32 KiB in steps that grow with the
    size: 8 B below 32 B, 16 B up to 128 B, size/8 from 128 B to 2 KiB, and
    256 B from 2 KiB upwards (the step changes at each power of two);
  * each candidate gets the smallest span of whole pages whose unusable tail
    (span % size) is at most 1/8 of the span;
  * a candidate that would get the same span length and the same number of
    objects per span as the previous class replaces that class's size (the
    class grows) instead of making a new class;
  * afterwards every class's size is raised to the largest multiple of 128
    that still fits the same number of objects into its span;
  * object index within a span is computed without a division as
    (offset * div_magic) >> 32 with div_magic = (2^32 - 1) / size + 1, which
    must be exact for every offset 0 .. span length.

The result must be Go's 68-entry table (class 0 stands for large objects).
The script checks that, checks the division magic and the size lookups by
brute force, and refuses to write anything if a check fails.

Usage:
    python3 tools/mksizeclasses.py            # write src/sizeclasses.h
    python3 tools/mksizeclasses.py --stdout   # print the header instead
    python3 tools/mksizeclasses.py --check    # exit 1 if src/sizeclasses.h
                                              # is not what would be written
    python3 tools/mksizeclasses.py --go-table PATH
        additionally compare every table with a Go sizeclasses.go file
        (runtime/sizeclasses.go or internal/runtime/gc/sizeclasses.go)

Python 3 standard library only.
"""

import argparse
import os
import re
import sys

# ---------------------------------------------------------------------------
# Parameters (the same as Go's).

PAGE_SHIFT = 13
PAGE_SIZE = 1 << PAGE_SHIFT
MIN_ALIGN = 8
MAX_SMALL_SIZE = 32 << 10
SMALL_SIZE_DIV = 8
SMALL_SIZE_MAX = 1024
LARGE_SIZE_DIV = 128
EXPECTED_NUM_CLASSES = 68          # class 0 + 67 small classes

# What Go's generated table holds (object size and pages per span of classes
# 1..67), used only to verify that the computation above reproduces it.
GO_SIZES = [
    8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224,
    240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896,
    1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456,
    4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
    12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264,
    28672, 32768,
]
GO_NPAGES = [
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 4,
    5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8, 3, 10, 7, 4,
]

U32_MAX = (1 << 32) - 1


class CheckFailed(Exception):
    pass


def is_pow2(x):
    return x > 0 and (x & (x - 1)) == 0


# ---------------------------------------------------------------------------
# Table construction.

def step_for(size, step):
    """Return the candidate step in force from `size` on (it only changes at
    powers of two)."""
    if not is_pow2(size):
        return step
    if size >= 2048:
        return 256
    if size >= 128:
        return size // 8
    if size >= 32:
        return 16
    return step


def span_pages(size):
    """Fewest pages whose tail left over after packing `size`-byte objects is
    at most one eighth of the span."""
    npages = 1
    while (npages * PAGE_SIZE) % size > (npages * PAGE_SIZE) // 8:
        npages += 1
    return npages


def build_classes():
    """Return a list of (size, npages); entry 0 is (0, 0)."""
    sizes = [0]
    pages = [0]
    step = MIN_ALIGN
    size = MIN_ALIGN
    while size <= MAX_SMALL_SIZE:
        step = step_for(size, step)
        if not is_pow2(step):
            raise CheckFailed("step %d at size %d is not a power of two"
                              % (step, size))
        npages = span_pages(size)
        span = npages * PAGE_SIZE
        last = len(sizes) - 1
        if last >= 1 and pages[last] == npages and \
                span // sizes[last] == span // size:
            sizes[last] = size          # same layout: widen the last class
        else:
            sizes.append(size)
            pages.append(npages)
        size += step

    # Widen each class to the biggest 128-aligned size that keeps the same
    # object count per span.
    for c in range(1, len(sizes)):
        span = pages[c] * PAGE_SIZE
        wider = (span // (span // sizes[c])) & ~(LARGE_SIZE_DIV - 1)
        if wider > sizes[c]:
            sizes[c] = wider

    return list(zip(sizes, pages))


def div_magic(size):
    return 0 if size == 0 else U32_MAX // size + 1


def size_tables(classes):
    def smallest_fitting(n):
        for c, (csize, _) in enumerate(classes):
            if csize >= n:
                return c
        raise CheckFailed("no class holds %d bytes" % n)

    t8 = [smallest_fitting(i * SMALL_SIZE_DIV)
          for i in range(SMALL_SIZE_MAX // SMALL_SIZE_DIV + 1)]
    t128 = [smallest_fitting(SMALL_SIZE_MAX + i * LARGE_SIZE_DIV)
            for i in range((MAX_SMALL_SIZE - SMALL_SIZE_MAX)
                           // LARGE_SIZE_DIV + 1)]
    return t8, t128


def lookup(t8, t128, n):
    if n <= SMALL_SIZE_MAX:
        return t8[(n + SMALL_SIZE_DIV - 1) // SMALL_SIZE_DIV]
    return t128[(n - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) // LARGE_SIZE_DIV]


# ---------------------------------------------------------------------------
# Self-checks.

def fractional_bits_needed(size, limit):
    """Fewest fractional bits F for which n / size == floor(n * ceil(2^F /
    size) / 2^F) for all n < 2^bitlen(limit) (Lemire, Kaser and Kurz,
    "Faster Remainder by Direct Computation", algorithm 2)."""
    if is_pow2(size):
        return size.bit_length() - 1
    nbits = limit.bit_length()
    extra = 0
    while size > (1 << (nbits + extra)) % size + (1 << extra):
        extra += 1
    return nbits + extra


def check_classes(classes, t8, t128):
    if len(classes) != EXPECTED_NUM_CLASSES:
        raise CheckFailed("%d classes, expected %d"
                          % (len(classes), EXPECTED_NUM_CLASSES))
    if classes[0] != (0, 0):
        raise CheckFailed("class 0 must be (0, 0)")
    if classes[-1][0] != MAX_SMALL_SIZE:
        raise CheckFailed("largest class is %d, not %d"
                          % (classes[-1][0], MAX_SMALL_SIZE))

    prev = 0
    for c, (size, npages) in enumerate(classes[1:], 1):
        span = npages * PAGE_SIZE
        if size <= prev:
            raise CheckFailed("class %d: size %d not above %d" % (c, size, prev))
        if size % MIN_ALIGN:
            raise CheckFailed("class %d: size %d not 8-aligned" % (c, size))
        if size >= 32 and size % 16:
            raise CheckFailed("class %d: size %d not 16-aligned" % (c, size))
        if size > SMALL_SIZE_MAX and size % LARGE_SIZE_DIV:
            raise CheckFailed("class %d: size %d not a multiple of %d"
                              % (c, size, LARGE_SIZE_DIV))
        if not 1 <= npages <= 255:
            raise CheckFailed("class %d: %d pages" % (c, npages))
        if span % size > span // 8:
            raise CheckFailed("class %d: tail waste %d over 1/8 of %d"
                              % (c, span % size, span))
        if span // size > 0xFFFF:
            raise CheckFailed("class %d: too many objects" % c)
        prev = size

        # The division magic: 32 fractional bits must be enough ...
        if fractional_bits_needed(size, span) > 32:
            raise CheckFailed("class %d: size %d needs more than 32 bits"
                              % (c, size))
        # ... and, by brute force, exact for every offset in the span.
        m = div_magic(size)
        for n in range(span + 1):
            if (n * m) >> 32 != n // size:
                raise CheckFailed("class %d: divmagic %d wrong at offset %d"
                                  % (c, m, n))

    # Every small size maps to the smallest class that holds it.
    c = 1
    for n in range(1, MAX_SMALL_SIZE + 1):
        while classes[c][0] < n:
            c += 1
        got = lookup(t8, t128, n)
        if got != c:
            raise CheckFailed("size %d maps to class %d, expected %d"
                              % (n, got, c))


def check_against_go(classes):
    sizes = [s for s, _ in classes[1:]]
    pages = [p for _, p in classes[1:]]
    if sizes != GO_SIZES or pages != GO_NPAGES:
        for c, (s, p) in enumerate(classes[1:], 1):
            gs = GO_SIZES[c - 1] if c - 1 < len(GO_SIZES) else None
            gp = GO_NPAGES[c - 1] if c - 1 < len(GO_NPAGES) else None
            if (s, p) != (gs, gp):
                raise CheckFailed("class %d: computed (%d B, %d pages), Go has "
                                  "(%s B, %s pages)" % (c, s, p, gs, gp))
        raise CheckFailed("class count differs from Go's")


def go_array(text, names):
    """The integer list of the first Go array variable among `names`."""
    for name in names:
        m = re.search(r"\bvar\s+" + name + r"\s*=\s*\[[^\]]*\][\w.]+\s*\{([^}]*)\}",
                      text)
        if m:
            return m.group(1)
    raise CheckFailed("%s not found in the Go table" % " / ".join(names))


def go_ints(body):
    return [int(v) for v in re.findall(r"\d+", body)]


def check_against_go_file(path, classes, t8, t128):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    checks = [
        (("SizeClassToSize", "class_to_size"), [s for s, _ in classes]),
        (("SizeClassToNPages", "class_to_allocnpages"), [p for _, p in classes]),
        (("SizeToSizeClass8", "size_to_class8"), t8),
        (("SizeToSizeClass128", "size_to_class128"), t128),
    ]
    for names, mine in checks:
        theirs = go_ints(go_array(text, names))
        if theirs != mine:
            raise CheckFailed("%s differs from %s" % (names[0], path))
    # Newer tables spell the magic as ^uint32(0)/SIZE+1; check the divisors.
    try:
        body = go_array(text, ("SizeClassToDivMagic", "class_to_divmagic"))
    except CheckFailed:
        body = ""
    divisors = re.findall(r"\^uint32\(0\)\s*/\s*(\d+)\s*\+\s*1", body)
    if divisors and [int(d) for d in divisors] != [s for s, _ in classes[1:]]:
        raise CheckFailed("divmagic divisors differ from %s" % path)


# ---------------------------------------------------------------------------
# Output.

def trailing_zeros(x):
    return (x & -x).bit_length() - 1


def c_array(ctype, name, dim, values, per_line):
    out = ["static const %s %s[%s] CGC_SC_UNUSED = {" % (ctype, name, dim)]
    for i in range(0, len(values), per_line):
        chunk = values[i:i + per_line]
        out.append("    " + ", ".join(str(v) for v in chunk) + ",")
    out.append("};")
    return out


def render(classes, t8, t128):
    L = []
    L.append("/* sizeclasses.h: cgc's small-object size classes.")
    L.append(" *")
    L.append(" * Generated by tools/mksizeclasses.py, do not edit.")
    L.append(" *")
    L.append(" * Computed with the Go runtime's size-class algorithm; the table "
             "matches the")
    L.append(" * one in Go 1.2x's sizeclasses.go (68 classes, class 0 = large "
             "objects).")
    L.append(" *")
    L.append(" * class    bytes/obj  bytes/span  objects  tail waste  "
             "max waste  min align")
    prev = 0
    min_align = [0] * (PAGE_SHIFT + 1)
    for c, (size, npages) in enumerate(classes):
        if c == 0:
            continue
        span = npages * PAGE_SIZE
        objs = span // size
        tail = span - objs * size
        worst = ((size - prev - 1) * objs + tail) / span
        abits = min(trailing_zeros(size), PAGE_SHIFT)
        for b in range(PAGE_SHIFT + 1):
            if b > abits:
                min_align[b] = 0
            elif min_align[b] == 0:
                min_align[b] = size
        L.append(" * %5d  %11d  %10d  %7d  %10d  %8.2f%%  %9d"
                 % (c, size, span, objs, tail, 100 * worst, 1 << abits))
        prev = size
    L.append(" *")
    L.append(" * max waste: the worst case over the sizes the class serves, "
             "counting both")
    L.append(" * rounding up to the class size and the tail of the span.")
    L.append(" *")
    L.append(" * alignment  bits  min obj size")
    for b, size in enumerate(min_align):
        if size == 0:
            break
        if b + 1 < len(min_align) and min_align[b + 1] == size:
            continue
        L.append(" * %9d  %4d  %12d" % (1 << b, b, size))
    L.append(" */")
    L.append("")
    L.append("#ifndef CGC_SIZECLASSES_H")
    L.append("#define CGC_SIZECLASSES_H")
    L.append("")
    L.append("#include <stdint.h>")
    L.append("")
    L.append("#if defined(__GNUC__) || defined(__clang__)")
    L.append("#define CGC_SC_UNUSED __attribute__((unused))")
    L.append("#else")
    L.append("#define CGC_SC_UNUSED")
    L.append("#endif")
    L.append("")
    max_objs = max(p * PAGE_SIZE // s for s, p in classes[1:])
    max_pages = max(p for _, p in classes[1:])
    defines = [
        ("CGC_PAGE_SHIFT", str(PAGE_SHIFT)),
        ("CGC_PAGE_SIZE", "(1u << CGC_PAGE_SHIFT)"),
        ("CGC_NUM_SIZE_CLASSES", str(len(classes))),
        ("CGC_MAX_SMALL_SIZE", str(MAX_SMALL_SIZE)),
        ("CGC_SMALL_SIZE_MAX", str(SMALL_SIZE_MAX)),
        ("CGC_SMALL_SIZE_DIV", str(SMALL_SIZE_DIV)),
        ("CGC_LARGE_SIZE_DIV", str(LARGE_SIZE_DIV)),
        ("CGC_MAX_OBJS_PER_SPAN", str(max_objs)),
        ("CGC_MAX_SIZE_CLASS_NPAGES", str(max_pages)),
    ]
    width = max(len(n) for n, _ in defines)
    for name, value in defines:
        L.append("#define %-*s %s" % (width, name, value))
    L.append("")
    L.append("/* Object size of each class (0 for class 0, large objects). */")
    L += c_array("uint32_t", "cgc_class_size", "CGC_NUM_SIZE_CLASSES",
                 [s for s, _ in classes], 10)
    L.append("")
    L.append("/* Pages per span of each class. */")
    L += c_array("uint8_t", "cgc_class_npages", "CGC_NUM_SIZE_CLASSES",
                 [p for _, p in classes], 20)
    L.append("")
    L.append("/* Objects per span of each class. */")
    L += c_array("uint16_t", "cgc_class_nelems", "CGC_NUM_SIZE_CLASSES",
                 [p * PAGE_SIZE // s if s else 0 for s, p in classes], 14)
    L.append("")
    L.append("/* (2^32 - 1) / size + 1: for every offset within a span,")
    L.append(" * (uint32_t)(((uint64_t)offset * cgc_class_divmagic[c]) >> 32)"
             " == offset / size. */")
    L += c_array("uint32_t", "cgc_class_divmagic", "CGC_NUM_SIZE_CLASSES",
                 [div_magic(s) for s, _ in classes], 6)
    L.append("")
    L.append("/* Class of a size <= CGC_SMALL_SIZE_MAX: "
             "cgc_size_to_class8[(size + 7) >> 3]. */")
    L += c_array("uint8_t", "cgc_size_to_class8",
                 "CGC_SMALL_SIZE_MAX / CGC_SMALL_SIZE_DIV + 1", t8, 20)
    L.append("")
    L.append("/* Class of a size in (CGC_SMALL_SIZE_MAX, CGC_MAX_SMALL_SIZE]:")
    L.append(" * cgc_size_to_class128[(size - CGC_SMALL_SIZE_MAX + 127) >> 7]."
             " */")
    L += c_array("uint8_t", "cgc_size_to_class128",
                 "(CGC_MAX_SMALL_SIZE - CGC_SMALL_SIZE_MAX) / CGC_LARGE_SIZE_DIV"
                 " + 1", t128, 20)
    L.append("")
    L.append("#endif /* CGC_SIZECLASSES_H */")
    return "\n".join(L) + "\n"


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output",
                    default=os.path.join(root, "src", "sizeclasses.h"),
                    help="header to write (default: src/sizeclasses.h)")
    ap.add_argument("--stdout", action="store_true",
                    help="print the header instead of writing it")
    ap.add_argument("--check", action="store_true",
                    help="only verify that the output file is up to date")
    ap.add_argument("--go-table", metavar="PATH",
                    help="also compare with a Go sizeclasses.go file")
    args = ap.parse_args(argv)

    try:
        classes = build_classes()
        t8, t128 = size_tables(classes)
        check_classes(classes, t8, t128)
        check_against_go(classes)
        if args.go_table:
            check_against_go_file(args.go_table, classes, t8, t128)
    except CheckFailed as e:
        print("mksizeclasses: check failed: %s" % e, file=sys.stderr)
        return 1

    text = render(classes, t8, t128)
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print("mksizeclasses: %s is out of date" % args.output,
                  file=sys.stderr)
            return 1
        return 0
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
