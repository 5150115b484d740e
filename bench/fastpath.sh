#!/usr/bin/env bash
# bench/fastpath.sh BUILD_DIR — instructions per operation of the allocation
# fast path and of the pointer store (CGC_STORE), counted by callgrind.
#
# For each case, BUILD_DIR/bench/fastpath_<variant> runs the loop of N and of
# 2N operations under `valgrind --tool=callgrind --toggle-collect=fp_loop`
# (only the loop function and what it calls are counted, in the thread that
# runs it); (Ir(2N) - Ir(N)) / N cancels the set-up costs, leaving the cost
# of one operation, refills of the thread's caches amortised in.  The last
# table counts the marking loop (cgc__drain, in the collector's thread) per
# node of a tree marked MARK_N and 2 * MARK_N times.
#
# Environment: FASTPATH_N (default 200000), FASTPATH_MARK_N (default 10).
# Writes BUILD_DIR/fastpath.md too.
set -u

if [ $# -lt 1 ] || [ ! -d "$1/bench" ]; then
    echo "usage: $0 BUILD_DIR (with the benchmarks built in BUILD_DIR/bench)" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
BIN=$BUILD/bench
N=${FASTPATH_N:-200000}
OUT=$BUILD/fastpath.md
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fastpath.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
: >"$OUT"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "fastpath.sh: valgrind not found (apt-get install valgrind)" >&2
    exit 2
fi

find_preload() {
    local name=$1 so
    for so in $( (ldconfig -p 2>/dev/null | awk -v n="$name" 'index($1, n ".so") == 1 { print $NF }'
                  dpkg -L "$name-dev" 2>/dev/null | grep "/$name\.so" ) | sort -u); do
        [ -f "$so" ] || continue
        if [ -z "$(LD_PRELOAD=$so /bin/true 2>&1)" ]; then
            echo "$so"
            return 0
        fi
    done
    return 1
}
MIMALLOC=$(find_preload libmimalloc) || MIMALLOC=

emit() { printf '%s\n' "$*" | tee -a "$OUT"; }
FAILED=0

# ir [VAR=value ...] -- PROGRAM MODE COUNT: instructions counted in fp_loop
# (in TOGGLE, if set; VG_EXTRA: more valgrind options).
ir() {
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    local out="$TMP/cg.out" log="$TMP/cg.log"
    rm -f "$out"
    # shellcheck disable=SC2086 # VG_EXTRA: extra valgrind options, split
    if ! env "${envs[@]}" valgrind --tool=callgrind ${VG_EXTRA:-} --callgrind-out-file="$out" \
        --toggle-collect="${TOGGLE:-fp_loop}" "$@" >"$log" 2>&1; then
        echo "fastpath.sh: failed: ${envs[*]} $*" >&2
        tail -n 5 "$log" >&2
        echo "-"
        return
    fi
    awk '/^summary:/ { s = $2 } /^totals:/ { t = $2 } END { print (s != "" ? s : t) }' "$out"
}

# per_unit A B UNITS: (B - A) / UNITS to one decimal, "-" if a count failed.
per_unit() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "") print "-"; else printf "%.1f\n", (b - a) / n }'
}

# per_op LABEL [VAR=value ...] -- PROGRAM MODE
per_op() {
    local label=$1
    shift
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    local prog=$1 mode=$2
    if [ ! -x "$prog" ]; then
        emit "| $label | $mode | not built | - |"
        return
    fi
    local a b
    a=$(ir "${envs[@]}" -- "$prog" "$mode" "$N")
    b=$(ir "${envs[@]}" -- "$prog" "$mode" $((2 * N)))
    local v
    v=$(per_unit "$a" "$b" "$N")
    [ "$v" = "-" ] && FAILED=1
    local net
    net=$(awk -v v="$v" -v l="${LOOP:--}" 'BEGIN { if (v == "-" || l == "-") print "-"; else printf "%.1f\n", v - l }')
    emit "| $label | $mode | $v | $net |"
}

emit "# Instructions per operation (callgrind, N = $N and 2N)"
emit ""
emit "| variant | operation | instructions/op | minus empty loop |"
emit "|---|---|---:|---:|"
LOOP=-
if [ -x "$BIN/fastpath_malloc" ]; then
    a=$(ir -- "$BIN/fastpath_malloc" loop "$N")
    b=$(ir -- "$BIN/fastpath_malloc" loop $((2 * N)))
    LOOP=$(per_unit "$a" "$b" "$N")
    emit "| (empty loop) | loop | $LOOP | 0 |"
fi
per_op "cgc, collection off (CGC_PERCENT=off)" CGC_PERCENT=off -- "$BIN/fastpath_cgc" alloc
per_op "cgc, collection off" CGC_PERCENT=off -- "$BIN/fastpath_cgc" alloc64
per_op "cgc, collection off" CGC_PERCENT=off -- "$BIN/fastpath_cgc" alloc_atomic
per_op "cgc, collection on (mutator share: assists, sweeping)" -- "$BIN/fastpath_cgc" alloc
per_op "cgc, CGC_STORE, barrier off" CGC_PERCENT=off -- "$BIN/fastpath_cgc" store
per_op "cgc, CGC_STORE, barrier on (forced)" CGC_PERCENT=off -- "$BIN/fastpath_cgc" store_on
per_op "bdwgc, collection off (GC_DONT_GC)" GC_DONT_GC=1 -- "$BIN/fastpath_bdwgc" alloc
per_op "bdwgc, collection off (GC_DONT_GC)" GC_DONT_GC=1 -- "$BIN/fastpath_bdwgc" alloc_atomic
per_op "glibc malloc (calloc for alloc)" -- "$BIN/fastpath_malloc" alloc
per_op "glibc malloc" -- "$BIN/fastpath_malloc" alloc_atomic
if [ -n "$MIMALLOC" ]; then
    per_op "mimalloc (calloc for alloc)" LD_PRELOAD="$MIMALLOC" -- "$BIN/fastpath_malloc" alloc
    per_op "mimalloc malloc" LD_PRELOAD="$MIMALLOC" -- "$BIN/fastpath_malloc" alloc_atomic
fi
per_op "plain store (no barrier)" -- "$BIN/fastpath_malloc" store
emit ""
emit "alloc = 16-byte scanned (zeroed) object; alloc64 = 64 bytes; alloc_atomic = 16-byte pointer-free object (malloc for the malloc variant)."

# The marking loop: instructions of cgc__drain per node of a 131071-node
# tree of 16-byte nodes, one marker, from MARK_N and 2 * MARK_N collections.
MARK_N=${FASTPATH_MARK_N:-10}
MARK_NODES=131071
emit ""
emit "| variant | operation | instructions per marked node |"
emit "|---|---|---:|"
if [ -x "$BIN/fastpath_cgc" ]; then
    # --fair-sched=yes: under valgrind's default scheduler the collector's
    # threads can wait for the CPU for ever (docs/tuning.md)
    a=$(TOGGLE=cgc__drain VG_EXTRA=--fair-sched=yes ir CGC_MAXPROCS=1 -- "$BIN/fastpath_cgc" mark "$MARK_N")
    b=$(TOGGLE=cgc__drain VG_EXTRA=--fair-sched=yes ir CGC_MAXPROCS=1 -- "$BIN/fastpath_cgc" mark $((2 * MARK_N)))
    v=$(per_unit "$a" "$b" $((MARK_N * MARK_NODES)))
    [ "$v" = "-" ] && FAILED=1
    emit "| cgc, stop-the-world mark, one marker (CGC_MAXPROCS=1) | mark | $v |"
else
    emit "| cgc | mark | not built |"
fi
exit $FAILED
