// msgwindow in Go: the same benchmark as bench/msgwindow.c.  A window of W
// byte slices; message i (a fresh S-byte slice filled with a pattern) goes
// into slot i % W.  Every push is timed on its own.
//
// usage: msgwindow [window=200000] [messages=2000000] [msg_bytes=1024]
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"cgcbench/internal/benchutil"
)

func pattern(i uint64) byte { return byte(i*131 + 7) }

func messageOK(m []byte, i uint64) bool {
	return binary.LittleEndian.Uint64(m) == i && m[8] == pattern(i) && m[len(m)-1] == pattern(i)
}

func main() {
	w := benchutil.Arg(1, 200000)
	count := benchutil.Arg(2, 2000000)
	size := benchutil.Arg(3, 1024)
	if size < 16 {
		size = 16
	}
	var errors uint64
	var hist benchutil.Hist
	base := benchutil.Start()

	window := make([][]byte, w)
	t0 := time.Now()
	for i := int64(0); i < count; i++ {
		slot := i % w
		if old := window[slot]; old != nil && !messageOK(old, uint64(i-w)) {
			errors++
		}
		a := time.Now()
		m := make([]byte, size)
		binary.LittleEndian.PutUint64(m, uint64(i))
		p := pattern(uint64(i))
		m[8] = p
		for k := 9; k < len(m); k += k - 8 { // fill by doubling copies (memmove)
			copy(m[k:], m[8:k])
		}
		window[slot] = m
		hist.Add(uint64(time.Since(a)))
	}
	secs := time.Since(t0).Seconds()

	live := count
	if live > w {
		live = w
	}
	for k := count - live; k < count; k++ {
		if !messageOK(window[k%w], uint64(k)) {
			errors++
		}
	}
	gc := benchutil.ReadGC(base)
	benchutil.Result("msgwindow", secs, gc,
		fmt.Sprintf("window=%d messages=%d msg_bytes=%d worst_op_us=%.1f op_p99_us=%.2f op_p999_us=%.2f mean_op_ns=%.0f errors=%d",
			w, count, size, float64(hist.MaxNs)/1e3, float64(hist.Pct(99))/1e3, float64(hist.Pct(99.9))/1e3,
			float64(hist.SumNs)/float64(hist.N), errors))
	if errors != 0 {
		fmt.Fprintf(os.Stderr, "msgwindow: %d messages damaged\n", errors)
		os.Exit(1)
	}
}
