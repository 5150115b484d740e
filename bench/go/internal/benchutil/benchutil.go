// Package benchutil holds what the Go versions of the latency benchmarks
// share with the C ones (bench/bench_util.h): the random number generator,
// the histogram of single-operation times, and the RESULT line.
package benchutil

import (
	"fmt"
	"math"
	"math/bits"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// RNG is xorshift64*, seeded exactly as bench_rng_seed in bench_util.h, so
// the Go and C programs draw the same sequence.
type RNG struct{ s uint64 }

func NewRNG(seed uint64) *RNG {
	s := seed*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	if s == 0 {
		s = 1
	}
	return &RNG{s}
}

func (r *RNG) Next() uint64 {
	x := r.s
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	r.s = x
	return x * 0x2545F4914F6CDD1D
}

// Below returns a number in [0, n), as bench_rng_below.
func (r *RNG) Below(n uint64) uint64 {
	hi, _ := bits.Mul64(r.Next(), n)
	return hi
}

const hsub = 16

// Hist is the log-linear histogram of bench_util.h: 16 sub-buckets per power
// of two; the maximum is exact.
type Hist struct {
	count           [64 * hsub]uint64
	N, MaxNs, SumNs uint64
}

func index(ns uint64) int {
	if ns < hsub {
		return int(ns)
	}
	e := 63 - bits.LeadingZeros64(ns)
	sub := int(ns>>(e-4)) & (hsub - 1)
	return (e-3)*hsub + sub
}

func upper(i int) uint64 {
	if i < hsub {
		return uint64(i)
	}
	e := i/hsub + 3
	sub := i % hsub
	lo := uint64(hsub+sub) << (e - 4)
	return lo + (uint64(1) << (e - 4)) - 1
}

func (h *Hist) Add(ns uint64) {
	h.count[index(ns)]++
	h.N++
	h.SumNs += ns
	if ns > h.MaxNs {
		h.MaxNs = ns
	}
}

// Pct is the p-th percentile (nearest rank, bucket upper bound).
func (h *Hist) Pct(p float64) uint64 {
	if h.N == 0 {
		return 0
	}
	k := uint64(math.Ceil(p / 100 * float64(h.N)))
	if k == 0 {
		k = 1
	}
	var seen uint64
	for i, c := range h.count {
		seen += c
		if seen >= k {
			u := upper(i)
			if u > h.MaxNs {
				u = h.MaxNs
			}
			return u
		}
	}
	return h.MaxNs
}

// Arg returns the i-th command-line argument as a positive integer, or dflt.
func Arg(i int, dflt int64) int64 {
	if len(os.Args) <= i {
		return dflt
	}
	v, err := strconv.ParseInt(os.Args[i], 10, 64)
	if err != nil || v <= 0 {
		fmt.Fprintf(os.Stderr, "bad argument %d: '%s' (a positive integer)\n", i, os.Args[i])
		os.Exit(2)
	}
	return v
}

// GCStats are the collector's numbers, as in bench_gc_summary.
type GCStats struct {
	Cycles, Pauses      uint64
	MaxUs, P50Us, P99Us float64
	TotalPauseMs        float64
	MaxCyclePauseUs     float64
}

// histPct reads a percentile from a runtime/metrics histogram, reporting the
// upper bound of the bucket (the lower one for the open last bucket).
func histPct(h *metrics.Float64Histogram, total uint64, p float64) float64 {
	k := uint64(math.Ceil(p / 100 * float64(total)))
	if k == 0 {
		k = 1
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= k {
			if math.IsInf(h.Buckets[i+1], 1) {
				return h.Buckets[i]
			}
			return h.Buckets[i+1]
		}
	}
	return 0
}

// ReadGC reads the stop-the-world pauses (each one, from the runtime/metrics
// histogram /gc/pauses:seconds, ~6 % buckets) and the cycle count.
// Call it once, after the timed work: ReadMemStats stops the world.
// Counts are relative to the Baseline taken at the start.
func ReadGC(base Baseline) GCStats {
	samples := []metrics.Sample{{Name: "/gc/pauses:seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(samples)
	var st GCStats
	if samples[0].Value.Kind() == metrics.KindFloat64Histogram {
		h := samples[0].Value.Float64Histogram()
		for i := range h.Counts {
			if i < len(base.pauses) {
				h.Counts[i] -= base.pauses[i]
			}
			st.Pauses += h.Counts[i]
		}
		if st.Pauses > 0 {
			st.P50Us = histPct(h, st.Pauses, 50) * 1e6
			st.P99Us = histPct(h, st.Pauses, 99) * 1e6
			st.MaxUs = histPct(h, st.Pauses, 100) * 1e6
		}
	}
	if samples[1].Value.Kind() == metrics.KindUint64 {
		st.Cycles = samples[1].Value.Uint64() - base.cycles
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.TotalPauseMs = float64(ms.PauseTotalNs) / 1e6
	n := int(ms.NumGC)
	if n > len(ms.PauseNs) {
		n = len(ms.PauseNs)
	}
	cyc := append([]uint64(nil), ms.PauseNs[:n]...)
	sort.Slice(cyc, func(i, j int) bool { return cyc[i] < cyc[j] })
	if n > 0 {
		st.MaxCyclePauseUs = float64(cyc[n-1]) / 1e3
	}
	return st
}

// Baseline is the pause histogram and cycle count before the benchmark.
type Baseline struct {
	cycles uint64
	pauses []uint64
}

// Start takes the Baseline.
func Start() Baseline {
	samples := []metrics.Sample{{Name: "/gc/pauses:seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(samples)
	var b Baseline
	if samples[0].Value.Kind() == metrics.KindFloat64Histogram {
		b.pauses = append([]uint64(nil), samples[0].Value.Float64Histogram().Counts...)
	}
	if samples[1].Value.Kind() == metrics.KindUint64 {
		b.cycles = samples[1].Value.Uint64()
	}
	return b
}

// Result prints the RESULT line in the format of bench_result (bench_util.h).
func Result(name string, timeS float64, gc GCStats, extra ...string) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6 + float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
	fmt.Printf("RESULT name=%s variant=go time_s=%.4f cpu_s=%.3f peak_rss_kb=%d gc_cycles=%d pauses=%d pauses_seen=%d"+
		" max_pause_us=%.1f p50_pause_us=%.1f p99_pause_us=%.1f total_pause_ms=%.2f max_cycle_pause_us=%.1f %s\n",
		name, timeS, cpu, ru.Maxrss, gc.Cycles, gc.Pauses, gc.Pauses, gc.MaxUs, gc.P50Us, gc.P99Us,
		gc.TotalPauseMs, gc.MaxCyclePauseUs, strings.Join(extra, " "))
}
