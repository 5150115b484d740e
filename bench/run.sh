#!/usr/bin/env bash
# bench/run.sh BUILD_DIR — runs every benchmark variant side by side and
# prints markdown tables, also written to BUILD_DIR/benchmarks.md.
#
# The C programs must already be built by CMake (-DCGC_BUILD_BENCH=ON; they
# are in BUILD_DIR/bench); this script builds only the Go programs.
#
# Environment:
#   BENCH_REPS=N     runs of each case (default 3; the median time is shown,
#                    with the other numbers of that same run)
#   BENCH_QUICK=1    smoke run: tiny sizes, 1 rep unless BENCH_REPS is set
#   BENCH_TIMEOUT=S  limit for one run (default 900 s)
#   BENCH_ONLY="churn binary_trees gcbench markspeed msgwindow treewindow"
#                    the groups to run (default: all)
# Exit status: 0 when every case ran and passed its checks, 1 otherwise.
set -u

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 BUILD_DIR (a CMake build directory configured with -DCGC_BUILD_BENCH=ON)" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")" && pwd)
BIN=$BUILD/bench
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then REPS=${BENCH_REPS:-1}; else REPS=${BENCH_REPS:-3}; fi
TIMEOUT=${BENCH_TIMEOUT:-900}
ONLY=${BENCH_ONLY:-churn binary_trees gcbench markspeed msgwindow treewindow}
LOGDIR=$BUILD/bench-logs
OUT=$BUILD/benchmarks.md
mkdir -p "$LOGDIR"
: >"$OUT"

# ------------------------------------------------------------- sizes --
if [ "$QUICK" = 1 ]; then
    CHURN_ITERS=200000
    BT_DEPTH=14
    GCBENCH_ARGS="14 12 12 50000"
    MSG_ARGS="20000 100000 1024"
    TREE_ARGS="10000 50000 5"
    MARK_NODES=100000
else
    CHURN_ITERS=5000000
    BT_DEPTH=21
    GCBENCH_ARGS="18 16 16 500000"
    MSG_ARGS="200000 2000000 1024"
    TREE_ARGS="100000 1000000 5"
    MARK_NODES=4194304
fi
CHURN_SLOTS=4096

note() { echo "run.sh: $*" >&2; }
emit() { printf '%s\n' "$*" | tee -a "$OUT"; }
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# ----------------------------------------------- preloadable allocators --
# The path of a shared library that the dynamic loader can preload here.
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
JEMALLOC=$(find_preload libjemalloc) || JEMALLOC=
[ -n "$MIMALLOC" ] || note "mimalloc not found: its cases are skipped (apt-get install libmimalloc-dev)"
[ -n "$JEMALLOC" ] || note "jemalloc not found: its cases are skipped (apt-get install libjemalloc-dev)"

# ------------------------------------------------------- Go programs --
GO_OK=0
if want msgwindow || want treewindow; then
    if command -v go >/dev/null 2>&1; then
        note "building the Go programs"
        if (cd "$SRC/go" &&
            export GOCACHE="$BUILD/go-cache" GOPATH="$BUILD/go-path" GOTOOLCHAIN=local \
                GOPROXY=off GO111MODULE=on GOFLAGS='' GOWORK=off &&
            go build -o "$BIN/msgwindow_go" ./msgwindow &&
            go build -o "$BIN/treewindow_go" ./treewindow) >"$LOGDIR/go-build.log" 2>&1; then
            GO_OK=1
        else
            note "Go build failed (see $LOGDIR/go-build.log): Go cases are skipped"
        fi
    else
        note "go not found: Go cases are skipped (apt-get install golang-go)"
    fi
fi

# -------------------------------------------------------- the runner --
# A group of cases is registered with add_case, then run_group runs them in
# rounds (case 1, case 2, ..., then again), so that slow drifts of a shared
# machine hit every variant alike.
declare -A RES TIMES CMD
CASES=()
FAILURES=()

# add_case KEY [VAR=value ...] -- PROGRAM [ARGS ...]
add_case() {
    local key=$1
    shift
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    if [ ! -x "$1" ]; then
        RES[$key]="MISSING"
        note "$key: $1 not built, skipped"
        return
    fi
    CMD[$key]=$(printf '%q ' "${envs[@]}" "$@")
    CASES+=("$key")
    RES[$key]=""
    TIMES[$key]=""
}

# A line "RESULT ... time_s=..." of a run, or FAIL.
run_once() {
    local key=$1 rc line base="$LOGDIR/$1.$2"
    eval "timeout $TIMEOUT env ${CMD[$key]}" >"$base.out" 2>"$base.err"
    rc=$?
    line=$(grep '^RESULT ' "$base.out" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        [ $rc -eq 124 ] && rc="timeout"
        echo "FAIL rc=$rc"
        return
    fi
    echo "$line"
}

run_group() {
    local r key line
    for ((r = 1; r <= REPS; r++)); do
        for key in "${CASES[@]}"; do
            case ${RES[$key]} in FAIL*) continue ;; esac
            note "$key (run $r/$REPS)"
            line=$(run_once "$key" "$r")
            case $line in
            FAIL*)
                RES[$key]="$line"
                FAILURES+=("$key: ${line#FAIL } — command: ${CMD[$key]} (output in $LOGDIR/$key.$r.out/.err)")
                note "$key FAILED (${line#FAIL }); last lines of stderr:"
                tail -n 5 "$LOGDIR/$key.$r.err" >&2
                ;;
            *)
                RES[$key]+="$line"$'\n'
                TIMES[$key]+="$(field_of "$line" time_s) "
                ;;
            esac
        done
    done
    # Keep the run with the median time (the lower middle one for even counts).
    for key in "${CASES[@]}"; do
        case ${RES[$key]} in FAIL*) continue ;; esac
        RES[$key]=$(printf '%s' "${RES[$key]}" | awk 'NF {
                for (i = 1; i <= NF; i++) if (index($i, "time_s=") == 1) t = substr($i, 8)
                print t "\t" $0 }' | sort -g -k1,1 | awk -F '\t' '{ l[NR] = $2 }
                END { print l[int((NR + 1) / 2)] }')
        # A run that reports damaged data counts as a failure.
        local e ok
        e=$(f "$key" errors)
        ok=$(f "$key" checks_ok)
        if { [ "$e" != "-" ] && [ "$e" != 0 ]; } || [ "$ok" = 0 ]; then
            FAILURES+=("$key: wrong result (errors=$e checks_ok=$ok) — command: ${CMD[$key]}")
        fi
    done
    CASES=()
}

field_of() {
    awk -v k="$2" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit }
                     print "-" }' <<<"$1"
}

# f KEY FIELD: a field of the case's median run, or "-".
f() {
    local line=${RES[$1]:-}
    case $line in RESULT*) field_of "$line" "$2" ;; *) echo "-" ;; esac
}

# The time cell: the median, or what went wrong.
tcell() {
    local line=${RES[$1]:-}
    case $line in
    RESULT*) field_of "$line" time_s ;;
    MISSING) echo "not built" ;;
    FAIL*) echo "**${line}**" ;;
    *) echo "skipped" ;;
    esac
}

# ratio A B FIELD: A's field / B's field as "1.23x".
ratio() {
    local a b
    a=$(f "$1" "$3")
    b=$(f "$2" "$3")
    awk -v a="$a" -v b="$b" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-"; else { r = a / b; printf (r < 0.1 ? "%.3fx\n" : "%.2fx\n"), r } }'
}

mib() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.0f\n", k / 1024 }'; }
ms() { awk -v u="$1" 'BEGIN { if (u == "-") print "-"; else printf "%.2f\n", u / 1000 }'; }

# -------------------------------------------------------- the header --
emit "# cgc benchmarks"
emit ""
emit "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)"
emit "- machine: $(uname -srm), $(nproc) CPUs ($(awk -F: '/model name/ { sub(/^ */, "", $2); print $2; exit }' /proc/cpuinfo 2>/dev/null))"
emit "- compiler: $(${CC:-cc} --version 2>/dev/null | head -n 1); $(go version 2>/dev/null || echo 'no Go')"
emit "- peers: bdwgc $(dpkg-query -W -f '${Version}' libgc-dev 2>/dev/null || echo '?'), mimalloc $(dpkg-query -W -f '${Version}' libmimalloc-dev 2>/dev/null || echo '?'), jemalloc $(dpkg-query -W -f '${Version}' libjemalloc-dev 2>/dev/null || echo '?')"
emit "- runs per case: $REPS (median time shown, other columns from that same run)$([ "$QUICK" = 1 ] && echo '; **BENCH_QUICK=1: tiny sizes, a smoke test, not a measurement**')"
emit "- ratios are time(row) / time(peer): below 1.00x the row is faster"
emit ""

# ------------------------------------------------------------- churn --
if want churn; then
    for t in 1 2; do
        add_case "churn-cgc-$t" -- "$BIN/churn_cgc" $t $CHURN_ITERS $CHURN_SLOTS 0
        add_case "churn-cgcatomic-$t" -- "$BIN/churn_cgc" $t $CHURN_ITERS $CHURN_SLOTS 1
        add_case "churn-glibc-$t" -- "$BIN/churn_malloc" $t $CHURN_ITERS $CHURN_SLOTS 1
        [ -n "$MIMALLOC" ] && add_case "churn-mimalloc-$t" LD_PRELOAD="$MIMALLOC" -- "$BIN/churn_malloc" $t $CHURN_ITERS $CHURN_SLOTS 1
        # calloc: zeroed memory, what cgc_malloc promises
        [ -n "$MIMALLOC" ] && add_case "churn-mimalloccalloc-$t" LD_PRELOAD="$MIMALLOC" -- "$BIN/churn_malloc" $t $CHURN_ITERS $CHURN_SLOTS 0
        [ -n "$JEMALLOC" ] && add_case "churn-jemalloc-$t" LD_PRELOAD="$JEMALLOC" -- "$BIN/churn_malloc" $t $CHURN_ITERS $CHURN_SLOTS 1
    done
    run_group
    emit "## Allocation churn (explicit free)"
    emit ""
    emit "Each thread: ring of $CHURN_SLOTS live objects, $CHURN_ITERS x (free a random one, allocate 16 B - 8 KiB)."
    emit ""
    emit "| allocator | threads | time s | Mops/s | vs mimalloc | vs mimalloc calloc | peak RSS MiB | GC cycles |"
    emit "|---|---:|---:|---:|---:|---:|---:|---:|"
    for t in 1 2; do
        for v in "cgc:cgc_malloc + cgc_free" "cgcatomic:cgc_malloc_atomic_uninit + cgc_free" "glibc:glibc malloc/free" \
            "mimalloc:mimalloc malloc/free" "mimalloccalloc:mimalloc calloc/free" "jemalloc:jemalloc malloc/free"; do
            k="churn-${v%%:*}-$t"
            emit "| ${v#*:} | $t | $(tcell "$k") | $(f "$k" mops_s) | $(ratio "$k" "churn-mimalloc-$t" time_s) | $(ratio "$k" "churn-mimalloccalloc-$t" time_s) | $(mib "$(f "$k" peak_rss_kb)") | $(f "$k" gc_cycles) |"
        done
    done
    emit ""
    emit "cgc_malloc returns zeroed memory, as calloc does: compare its row with mimalloc's calloc; cgc_malloc_atomic_uninit returns memory as malloc does."
    emit ""
fi

# ------------------------------------------------------ binary-trees --
if want binary_trees; then
    add_case bt-cgc -- "$BIN/binary_trees_cgc" $BT_DEPTH
    add_case bt-cgcstw CGC_DEBUG=gcstoptheworld=1 -- "$BIN/binary_trees_cgc" $BT_DEPTH
    add_case bt-bdwgc -- "$BIN/binary_trees_bdwgc" $BT_DEPTH
    add_case bt-glibc -- "$BIN/binary_trees_malloc" $BT_DEPTH
    [ -n "$MIMALLOC" ] && add_case bt-mimalloc LD_PRELOAD="$MIMALLOC" -- "$BIN/binary_trees_malloc" $BT_DEPTH
    run_group
    # The reference checks: glibc's run (the checks are also compared with
    # the closed form 2^(d+1)-1 inside each program: checks_ok).
    ref_digest=$(f bt-glibc check_digest)
    emit "## binary-trees, depth $BT_DEPTH"
    emit ""
    emit "| variant | time s | vs bdwgc | vs mimalloc | peak RSS MiB | GC cycles | pause p50 / p99 / max ms | checks |"
    emit "|---|---:|---:|---:|---:|---:|---:|---|"
    for v in "cgc:cgc (concurrent mark)" "cgcstw:cgc (CGC_DEBUG=gcstoptheworld=1)" "bdwgc:bdwgc" \
        "glibc:glibc malloc/free" "mimalloc:mimalloc malloc/free"; do
        k="bt-${v%%:*}"
        chk="-"
        case ${RES[$k]:-} in
        RESULT*)
            if [ "$(f "$k" checks_ok)" = 1 ] && { [ "$ref_digest" = "-" ] || [ "$(f "$k" check_digest)" = "$ref_digest" ]; }; then
                chk="ok"
            else
                chk="**WRONG**"
                FAILURES+=("$k: check sums differ from glibc's run or from the node counts")
            fi
            ;;
        esac
        pauses="-"
        [ "$(f "$k" pauses)" != "-" ] && pauses="$(ms "$(f "$k" p50_pause_us)") / $(ms "$(f "$k" p99_pause_us)") / $(ms "$(f "$k" max_pause_us)")"
        emit "| ${v#*:} | $(tcell "$k") | $(ratio "$k" bt-bdwgc time_s) | $(ratio "$k" bt-mimalloc time_s) | $(mib "$(f "$k" peak_rss_kb)") | $(f "$k" gc_cycles) | $pauses | $chk |"
    done
    emit ""
fi

# ------------------------------------------------------------ gcbench --
if want gcbench; then
    # shellcheck disable=SC2086
    add_case gcb-cgc -- "$BIN/gcbench_cgc" $GCBENCH_ARGS
    # shellcheck disable=SC2086
    add_case gcb-bdwgc -- "$BIN/gcbench_bdwgc" $GCBENCH_ARGS
    run_group
    emit "## GCBench (stretch, long-lived, array: $GCBENCH_ARGS)"
    emit ""
    emit "| variant | time s | vs bdwgc | peak RSS MiB | GC cycles | pause p50 / p99 / max ms | checks |"
    emit "|---|---:|---:|---:|---:|---:|---|"
    for v in cgc bdwgc; do
        k="gcb-$v"
        pauses="-"
        [ "$(f "$k" pauses)" != "-" ] && pauses="$(ms "$(f "$k" p50_pause_us)") / $(ms "$(f "$k" p99_pause_us)") / $(ms "$(f "$k" max_pause_us)")"
        chk="-"
        case ${RES[$k]:-} in RESULT*) [ "$(f "$k" checks_ok)" = 1 ] && chk=ok || chk="**WRONG**" ;; esac
        emit "| $v | $(tcell "$k") | $(ratio "$k" gcb-bdwgc time_s) | $(mib "$(f "$k" peak_rss_kb)") | $(f "$k" gc_cycles) | $pauses | $chk |"
    done
    emit ""
fi

# ---------------------------------------------------------- mark speed --
if want markspeed; then
    add_case mark-cgc -- "$BIN/markspeed_cgc" $MARK_NODES 5
    add_case mark-cgc1 CGC_MAXPROCS=1 -- "$BIN/markspeed_cgc" $MARK_NODES 5
    add_case mark-bdwgc -- "$BIN/markspeed_bdwgc" $MARK_NODES 5
    add_case mark-bdwgc1 GC_MARKERS=1 -- "$BIN/markspeed_bdwgc" $MARK_NODES 5
    run_group
    emit "## Mark speed ($MARK_NODES nodes of 32 B with random edges, world stopped)"
    emit ""
    emit "| variant | markers | mark ms (median of 5) | M objects/s per marker | MB/s per marker | peak RSS MiB |"
    emit "|---|---:|---:|---:|---:|---:|"
    for v in "cgc:cgc" "cgc1:cgc, CGC_MAXPROCS=1" "bdwgc:bdwgc" "bdwgc1:bdwgc, GC_MARKERS=1"; do
        k="mark-${v%%:*}"
        emit "| ${v#*:} | $(f "$k" markers) | $(f "$k" mark_ms) | $(f "$k" mobj_per_s_per_marker) | $(f "$k" mb_per_s_per_marker) | $(mib "$(f "$k" peak_rss_kb)") |"
    done
    emit ""
fi

# ----------------------------------------------------- latency windows --
latency_table() { # prefix title
    local p=$1 title=$2 v k pauses
    emit "## $title"
    emit ""
    emit "| variant | time s | vs bdwgc | vs Go | worst op ms | worst vs bdwgc | worst vs Go | op p99.9 us | pause p50 / p99 / max ms | pauses | GC cycles | peak RSS MiB | data |"
    emit "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for v in "cgc:cgc" "bdwgc:bdwgc" "go:Go $(go env GOVERSION 2>/dev/null)" "glibc:glibc malloc/free (no GC, reference)" \
        "noise:machine noise floor (2 threads reading the clock, nothing else)"; do
        k="$p-${v%%:*}"
        pauses="-"
        [ "$(f "$k" pauses)" != "-" ] && pauses="$(ms "$(f "$k" p50_pause_us)") / $(ms "$(f "$k" p99_pause_us)") / $(ms "$(f "$k" max_pause_us)")"
        local data="-"
        case ${RES[$k]:-} in RESULT*) [ "$(f "$k" errors)" = 0 ] && data=ok || data="**DAMAGED**" ;; esac
        if [ "${v%%:*}" = noise ]; then # a reference: its time is a duration, not a run time
            emit "| ${v#*:} | - | - | - | $(ms "$(f "$k" worst_op_us)") | $(ratio "$k" "$p-bdwgc" worst_op_us) | $(ratio "$k" "$p-go" worst_op_us) | - | - | - | - | - | - |"
            continue
        fi
        emit "| ${v#*:} | $(tcell "$k") | $(ratio "$k" "$p-bdwgc" time_s) | $(ratio "$k" "$p-go" time_s) | $(ms "$(f "$k" worst_op_us)") | $(ratio "$k" "$p-bdwgc" worst_op_us) | $(ratio "$k" "$p-go" worst_op_us) | $(f "$k" op_p999_us) | $pauses | $(f "$k" pauses) | $(f "$k" gc_cycles) | $(mib "$(f "$k" peak_rss_kb)") | $data |"
    done
    emit ""
}

if want msgwindow; then
    # shellcheck disable=SC2086
    {
        add_case msg-cgc -- "$BIN/msgwindow_cgc" $MSG_ARGS
        add_case msg-bdwgc -- "$BIN/msgwindow_bdwgc" $MSG_ARGS
        [ $GO_OK = 1 ] && add_case msg-go -- "$BIN/msgwindow_go" $MSG_ARGS
        add_case msg-glibc -- "$BIN/msgwindow_malloc" $MSG_ARGS
        add_case msg-noise -- "$BIN/noise_malloc" 3 2
    }
    run_group
    latency_table msg "Message window (window, messages, bytes: $MSG_ARGS)"
fi

if want treewindow; then
    # shellcheck disable=SC2086
    {
        add_case tree-cgc -- "$BIN/treewindow_cgc" $TREE_ARGS
        add_case tree-bdwgc -- "$BIN/treewindow_bdwgc" $TREE_ARGS
        [ $GO_OK = 1 ] && add_case tree-go -- "$BIN/treewindow_go" $TREE_ARGS
        add_case tree-glibc -- "$BIN/treewindow_malloc" $TREE_ARGS
        add_case tree-noise -- "$BIN/noise_malloc" 3 2
    }
    run_group
    latency_table tree "Tree window (window, replacements, levels: $TREE_ARGS)"
fi

# ------------------------------------- what the slow operations were --
# The worst operation of a latency run includes time the kernel gave the
# program's CPU to other processes (the noise-floor rows).  slowops.sh
# traces the scheduler during extra runs of the C variants and splits each
# operation over 0.5 ms: the last column is the worst operation less the
# time other processes held its CPU, i.e. what the allocator or collector
# itself cost (its own work, waits for its threads, its threads on the
# program's CPU).  Needs root and perf; skipped otherwise.
slowops_table() { # program-stem title args...
    local stem=$1 title=$2 v line worst own
    shift 2
    emit "### $title: slow operations traced ($REPS runs each, operations over 0.5 ms)"
    emit ""
    emit "| variant | worst op ms, per run | worst op less other processes' time ms, per run |"
    emit "|---|---|---|"
    for v in cgc bdwgc malloc; do
        [ -x "$BIN/${stem}_$v" ] || continue
        worst="" own=""
        while read -r line; do
            case $line in *ops=0*) worst="$worst <0.5" own="$own <0.5"; continue ;; esac
            worst="$worst $(ms "$(sed -n 's/.*worst_op_us=\([0-9.]*\).*/\1/p' <<<"$line")")"
            own="$own $(ms "$(sed -n 's/.*worst_own_us=\([0-9.]*\).*/\1/p' <<<"$line")")"
        done < <(RUNS=$REPS SLOW_US=500 timeout "$TIMEOUT" bash "$SRC/slowops.sh" "$BUILD" "${stem}_$v" "$@" \
                 2>>"$LOGDIR/slowops.log" | tee -a "$LOGDIR/slowops.log" | grep '^SLOWOPS')
        emit "| $v |$worst |$own |"
    done
    emit ""
}
if [ "$QUICK" != 1 ] && [ "$(id -u)" -eq 0 ] && command -v perf >/dev/null && command -v python3 >/dev/null; then
    # shellcheck disable=SC2086
    {
        want msgwindow && slowops_table msgwindow "Message window" $MSG_ARGS
        want treewindow && slowops_table treewindow "Tree window" $TREE_ARGS
    }
else
    note "slow-operation tracing skipped (needs root, perf and python3; not in BENCH_QUICK runs)"
fi

# ------------------------------------------------------------ footer --
emit "## All run times (s)"
emit ""
for k in $(printf '%s\n' "${!TIMES[@]}" | sort); do
    case ${RES[$k]} in FAIL*) emit "- $k: ${TIMES[$k]}${RES[$k]}" ;; *) emit "- $k: ${TIMES[$k]}" ;; esac
done
emit ""
if [ ${#FAILURES[@]} -gt 0 ]; then
    emit "## Failures"
    emit ""
    for x in "${FAILURES[@]}"; do emit "- $x"; done
    emit ""
    note "tables written to $OUT; ${#FAILURES[@]} failure(s)"
    exit 1
fi
note "tables written to $OUT"
exit 0
