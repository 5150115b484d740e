#!/usr/bin/env bash
# slowops.sh — runs one latency benchmark under the scheduler tracer and says
# what took the time of each slow operation: the program thread's own work,
# a wait for the collector, the collector's threads on its CPU, or another
# process on its CPU (bench/slowops.py explains the split).
#
#   bench/slowops.sh BUILD_DIR PROGRAM [ARGS...]
#   e.g. bench/slowops.sh build-bench treewindow_cgc
#
# SLOW_US (default 500) is the threshold; RUNS (default 1) how many runs.
# Needs root (system-wide scheduler events), perf (Debian: linux-perf) and
# python3.  The last line of each run is
#   SLOWOPS ops=N worst_op_us=W worst_own_us=C
# where C is the worst operation less the time other processes held its CPU.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 2 ] || { sed -n '2,14p' "$0"; exit 2; }
build="$1"; prog="$2"; shift 2
bin="$build/bench/$prog"
[ -x "$bin" ] || { echo "slowops: no $bin (make bench builds it)" >&2; exit 2; }
command -v perf >/dev/null || { echo "slowops: perf not found (apt-get install linux-perf)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "slowops: python3 not found" >&2; exit 2; }
slow_us="${SLOW_US:-500}"
runs="${RUNS:-1}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for r in $(seq "$runs"); do
    perf record -q -a -k CLOCK_MONOTONIC -e sched:sched_switch -e sched:sched_wakeup \
        -o "$tmp/perf.data" -- env BENCH_SLOW_US="$slow_us" "$bin" "$@" >"$tmp/out" 2>"$tmp/err" || {
        cat "$tmp/err" >&2; exit 1; }
    grep '^RESULT' "$tmp/out" | grep -o 'time_s=[^ ]*\|worst_op_us=[^ ]*\|max_pause_us=[^ ]*' | tr '\n' ' '
    echo
    perf script --ns -i "$tmp/perf.data" >"$tmp/sched.txt" 2>/dev/null
    python3 "$here/slowops.py" "$tmp/out" "$tmp/sched.txt"
done
