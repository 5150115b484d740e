#!/bin/bash
# churn_alternate.sh — cgc against mimalloc and jemalloc on the churn
# benchmark in alternating runs (cgc, mimalloc, jemalloc, cgc, ...), so
# that a shared machine's changes of speed hit all three alike.  Prints the
# minimum and median time of each, and the ratios of the minimums and the
# median of the per-round ratios.
#
# usage: bench/churn_alternate.sh [BUILD_DIR=build-bench] [ROUNDS=11] [THREADS=1]
#   needs a build with -DCGC_BUILD_BENCH=ON and Debian's libmimalloc-dev and
#   libjemalloc-dev (found with ldconfig, preloaded).
set -euo pipefail
BUILD=${1:-build-bench}
ROUNDS=${2:-11}
THREADS=${3:-1}
ITERS=${CHURN_ITERS:-5000000}
SLOTS=${CHURN_SLOTS:-4096}
lib() { ldconfig -p | grep -o "/[^ ]*$1\.so[.0-9]*" | head -n 1; }
MI=$(lib libmimalloc)
JE=$(lib libjemalloc)
[ -n "$MI" ] && [ -n "$JE" ] || { echo "churn_alternate.sh: needs libmimalloc and libjemalloc" >&2; exit 2; }
t() { "$@" | grep -o 'time_s=[0-9.]*' | cut -d= -f2; }
rows=""
for _ in $(seq "$ROUNDS"); do
    a=$(t "$BUILD/bench/churn_cgc" "$THREADS" "$ITERS" "$SLOTS" 1)
    b=$(LD_PRELOAD=$MI t "$BUILD/bench/churn_malloc" "$THREADS" "$ITERS" "$SLOTS" 1)
    c=$(LD_PRELOAD=$JE t "$BUILD/bench/churn_malloc" "$THREADS" "$ITERS" "$SLOTS" 1)
    rows+="$a $b $c"$'\n'
done
printf '%s' "$rows" | awk -v n="$ROUNDS" -v th="$THREADS" '
function median(v, k,   i, j, t) { for (i = 2; i <= k; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t } return k % 2 ? v[(k+1)/2] : (v[k/2] + v[k/2+1]) / 2 }
{ a[NR] = $1; b[NR] = $2; c[NR] = $3; ra[NR] = $1 / $2; rc[NR] = $1 / $3 }
END {
    ma = median(a, n); mb = median(b, n); mc = median(c, n)
    printf "churn, %d thread(s), %d rounds: cgc_malloc_atomic_uninit min %.4f median %.4f s | mimalloc min %.4f median %.4f s | jemalloc min %.4f median %.4f s\n", th, n, a[1], ma, b[1], mb, c[1], mc
    printf "cgc / mimalloc: %.2fx (minimums), %.2fx (median of rounds); cgc / jemalloc: %.2fx, %.2fx\n", a[1] / b[1], median(ra, n), a[1] / c[1], median(rc, n)
}'
