#!/usr/bin/env python3
"""slowops.py — what the program's thread was doing during each slow operation.

Reads the SLOWOP lines a latency benchmark prints with BENCH_SLOW_US set
(bench_util.h) and the scheduler events of the same run (`perf script --ns`
of `perf record -a -k CLOCK_MONOTONIC -e sched:sched_switch -e
sched:sched_wakeup`), and splits each slow operation's wall time into:

  running    the thread was on a CPU (its own work, the collector's work it
             does itself: assists, sweeping, page faults; on a virtual
             machine also time the host took the virtual CPU away, which no
             guest event shows)
  asleep     the thread waited in the kernel (a futex: a handshake park, a
             lock; a page fault's I/O), with who woke it
  preempted  the thread was runnable but another task had its CPU: split
             into the program's collector threads (cgc-*), the program's
             other threads, and other processes, each named

The collector's share of an operation is its wall time less the time other
processes held the thread's CPU: that part of the stall would be the same
under any allocator (the noise-floor rows of the benchmark tables measure
it).  Printed per operation, then the worst operation and the worst
collector share.

usage: slowops.py SLOWOP-FILE PERF-SCRIPT-FILE
"""
import collections
import re
import sys

SWITCH = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<tid>-?\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<time>[\d.]+):\s+sched:sched_switch:\s+"
    r"prev_comm=(?P<pcomm>.*?) prev_pid=(?P<ppid>\d+) prev_prio=\d+ prev_state=(?P<pstate>\S+) ==> "
    r"next_comm=(?P<ncomm>.*?) next_pid=(?P<npid>\d+) next_prio=\d+")
WAKEUP = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<tid>-?\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<time>[\d.]+):\s+sched:sched_wakeup:\s+"
    r"comm=(?P<wcomm>.*?) pid=(?P<wpid>\d+) prio=\d+ target_cpu=(?P<tcpu>\d+)")
SLOWOP = re.compile(r"^SLOWOP name=(\S+) tid=(\d+) start_ns=(\d+) end_ns=(\d+)")


def ns(text):
    sec, _, frac = text.partition(".")
    return int(sec) * 1000000000 + int((frac + "000000000")[:9])


def load_events(path):
    events = []  # (time, kind, fields)
    with open(path, errors="replace") as f:
        for line in f:
            m = SWITCH.match(line)
            if m:
                events.append((ns(m["time"]), "switch", m.groupdict()))
                continue
            m = WAKEUP.match(line)
            if m:
                events.append((ns(m["time"]), "wakeup", m.groupdict()))
    events.sort(key=lambda e: e[0])
    return events


def who(comm, tid, prog_tid, prog_comm):
    if tid == prog_tid:
        return "program thread"
    if comm.startswith("cgc-"):
        return "collector: " + re.sub(r"\d+$", "N", comm)
    if comm == prog_comm:
        return "program's other threads"
    return "other: " + comm


def classify(op_start, op_end, prog_tid, events):
    """Splits [op_start, op_end) of thread prog_tid by its scheduler state."""
    prog_comm = None
    # the thread's state timeline and each CPU's current task
    state, cpu_of = "running", None  # assumed running before its first event
    current = {}  # cpu -> (comm, tid)
    spans = collections.Counter()
    wakers = collections.Counter()
    t_prev = op_start
    asleep_since = None

    def account(t_to):
        nonlocal t_prev
        if t_to <= t_prev:
            return
        lo, hi = max(t_prev, op_start), min(t_to, op_end)
        if hi > lo:
            if state == "running":
                spans["running"] += hi - lo
            elif state == "asleep":
                spans["asleep"] += hi - lo
            else:  # runnable: whoever holds the CPU it waits for
                holder = current.get(cpu_of)
                if holder is None or holder[1] == 0:
                    spans["preempted: waiting for an idle CPU to take it"] += hi - lo
                else:
                    spans["preempted: " + who(holder[0], holder[1], prog_tid, prog_comm)] += hi - lo
        t_prev = t_to

    started = False
    for t, kind, e in events:
        if t > op_end:
            break
        if not started and t >= op_start:
            started = True
            t_prev = op_start
        if started:
            account(t)
        else:
            t_prev = t
        if kind == "switch":
            cpu = int(e["cpu"])
            prev, nxt = int(e["ppid"]), int(e["npid"])
            current[cpu] = (e["ncomm"], nxt)
            if prev == prog_tid:
                prog_comm = e["pcomm"]
                cpu_of = cpu
                if e["pstate"].startswith("R"):
                    state = "runnable"
                else:
                    state = "asleep"
            if nxt == prog_tid:
                prog_comm = e["ncomm"]
                state, cpu_of = "running", cpu
        elif kind == "wakeup" and int(e["wpid"]) == prog_tid:
            if state == "asleep" and started:
                wakers[who(e["comm"], int(e["tid"]), prog_tid, prog_comm)] += 1
            if state == "asleep":
                state, cpu_of = "runnable", int(e["tcpu"])
    account(op_end)
    return spans, wakers


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    ops = []
    with open(sys.argv[1]) as f:
        for line in f:
            m = SLOWOP.match(line)
            if m:
                ops.append((m[1], int(m[2]), int(m[3]), int(m[4])))
    events = load_events(sys.argv[2])
    if not ops:
        print("SLOWOPS ops=0 (none over the threshold)")
        return
    if not events:
        sys.exit("no scheduler events in %s" % sys.argv[2])
    worst, worst_own = (0, None), (0, None)
    for name, tid, a, b in ops:
        spans, wakers = classify(a, b, tid, events)
        dur = b - a
        other = sum(v for k, v in spans.items() if k.startswith("preempted: other: "))
        own = dur - other
        parts = ", ".join("%s %.0f" % (k, v / 1e3) for k, v in spans.most_common())
        woke = "; woken by " + ", ".join("%s x%d" % kv for kv in wakers.most_common()) if wakers else ""
        print("%s op at %.6f s: %.0f us (collector's share %.0f us): %s%s" %
              (name, a / 1e9, dur / 1e3, own / 1e3, parts, woke))
        worst = max(worst, (dur, a))
        worst_own = max(worst_own, (own, a))
    print("SLOWOPS ops=%d worst_op_us=%.1f worst_own_us=%.1f" % (len(ops), worst[0] / 1e3, worst_own[0] / 1e3))


if __name__ == "__main__":
    main()
