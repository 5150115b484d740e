#!/usr/bin/env bash
# tests/loaded.sh BUILD_DIR [ROUNDS] — the concurrent torture tests on a
# machine made busy on purpose (`make chaos`).
#
# Each round runs test_barrier, test_stress and test_free_mark at once
# (CGC_DEBUG=gccheckmark=1, CGC_TEST_QUICK=1) while cpuhog steals CPU in
# bursts (tests/tools/cpuhog.c): three programs on the CPUs plus the hogs,
# so threads stop at arbitrary points for milliseconds while others run
# on.  Timing bugs that an idle machine never shows turn up here: the lost
# object fixed by "a large object is allocated after its assist" failed
# about 1 run in 140 this way and never on an idle machine.
#
# Prints a line per round; keeps the logs of failing runs in
# BUILD_DIR/loaded-failures/; exits 1 if any run failed.
set -u
if [ $# -lt 1 ] || [ ! -x "$1/tests/test_barrier" ]; then
    echo "usage: $0 BUILD_DIR [ROUNDS] (tests built in BUILD_DIR)" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
ROUNDS=${2:-40}
TESTS="test_barrier test_stress test_free_mark"
OUT=$BUILD/loaded-failures
rm -rf "$OUT"
mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/loaded.XXXXXX")

"$BUILD/tests/cgc_cpuhog" 1000000 &
HOG=$!
trap 'kill $HOG 2>/dev/null; rm -rf "$TMP"' EXIT

runs=0
fails=0
for round in $(seq 1 "$ROUNDS"); do
    pids=()
    for t in $TESTS; do
        (CGC_DEBUG=gccheckmark=1 CGC_TEST_QUICK=1 "$BUILD/tests/$t" >"$TMP/$t.log" 2>&1
         echo $? >"$TMP/$t.rc") &
        pids+=($!)
    done
    wait "${pids[@]}"
    for t in $TESTS; do
        runs=$((runs + 1))
        if [ "$(cat "$TMP/$t.rc")" != 0 ]; then
            fails=$((fails + 1))
            cp "$TMP/$t.log" "$OUT/$t.round$round.log"
            echo "round $round: $t FAILED (exit $(cat "$TMP/$t.rc")), log in $OUT/$t.round$round.log"
        fi
    done
    echo "round $round/$ROUNDS: $runs runs, $fails failed"
done
echo "loaded.sh: $runs runs of $TESTS under cpuhog, $fails failed"
[ "$fails" -eq 0 ]
