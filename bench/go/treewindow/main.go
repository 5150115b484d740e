// treewindow in Go: the same benchmark as bench/treewindow.c.  A window of W
// perfect binary trees of L levels (nodes: two pointers, two payload words);
// R times a new tree replaces a random slot.  Every replacement is timed on
// its own.  The random slots are the same as in the C program.
//
// usage: treewindow [window=100000] [replacements=1000000] [levels=5]
package main

import (
	"fmt"
	"os"
	"time"

	"cgcbench/internal/benchutil"
)

type node struct {
	left, right *node
	tag, level  uint64
}

func build(levels int, tag uint64) *node {
	n := &node{tag: tag, level: uint64(levels)}
	if levels > 1 {
		n.left = build(levels-1, tag)
		n.right = build(levels-1, tag)
	}
	return n
}

func verify(n *node, levels int, tag uint64) int64 {
	if n == nil {
		return -1000000
	}
	var good int64
	if n.tag == tag && n.level == uint64(levels) {
		good = 1
	}
	if levels > 1 {
		return good + verify(n.left, levels-1, tag) + verify(n.right, levels-1, tag)
	}
	return good
}

func main() {
	w := benchutil.Arg(1, 100000)
	reps := benchutil.Arg(2, 1000000)
	levels := int(benchutil.Arg(3, 5))
	perTree := int64(1)<<levels - 1
	var errors uint64
	var hist benchutil.Hist
	rng := benchutil.NewRNG(42)
	base := benchutil.Start()

	window := make([]*node, w)
	tags := make([]uint64, w)
	t0 := time.Now()
	for i := range window {
		tags[i] = rng.Next()
		window[i] = build(levels, tags[i])
	}
	fillS := time.Since(t0).Seconds()

	for i := int64(0); i < reps; i++ {
		slot := rng.Below(uint64(w))
		if verify(window[slot], levels, tags[slot]) != perTree {
			errors++
		}
		tag := rng.Next()
		a := time.Now()
		window[slot] = build(levels, tag)
		hist.Add(uint64(time.Since(a)))
		tags[slot] = tag
	}
	secs := time.Since(t0).Seconds()

	for i := range window {
		if verify(window[i], levels, tags[i]) != perTree {
			errors++
		}
	}
	gc := benchutil.ReadGC(base)
	benchutil.Result("treewindow", secs, gc,
		fmt.Sprintf("window=%d replacements=%d levels=%d fill_s=%.3f worst_op_us=%.1f op_p99_us=%.2f op_p999_us=%.2f mean_op_ns=%.0f errors=%d",
			w, reps, levels, fillS, float64(hist.MaxNs)/1e3, float64(hist.Pct(99))/1e3, float64(hist.Pct(99.9))/1e3,
			float64(hist.SumNs)/float64(hist.N), errors))
	if errors != 0 {
		fmt.Fprintf(os.Stderr, "treewindow: %d trees damaged\n", errors)
		os.Exit(1)
	}
}
