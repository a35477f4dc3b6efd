// msgbuf in Go: the same workload as examples/msgbuf.rs, for comparing with Go's collector in
// the same session (see docs/benchmarks.md).
//
//	cd benches/go && go run ./msgbuf [-window 200000] [-pushes 10000000]
//
// A window of `window` messages ([][]byte); push i allocates a new 1 KiB pointer-free buffer
// (its first 8 bytes are i) and stores it in slot i % window, dropping the old one. A push is
// timed from the end of the one before it to its own end (one time.Now per push, as the Rust
// harness does), into a log-linear histogram kept outside the Go heap (a global array, so ten
// million samples neither grow the heap nor change the pacing). The last line has the same
// key=value pairs as the Rust harness: stop-the-world pause percentiles (runtime/metrics
// /gc/pauses:seconds, a histogram whose buckets bound the values), push latency percentiles in
// µs with three decimals, cycles, GC CPU fraction (runtime.MemStats.GCCPUFraction: the
// /cpu/classes/gc metrics arrive only in Go 1.20), heap goal at the end, heap peak (the largest
// /memory/classes/total:bytes minus released bytes, sampled every 2 ms), peak RSS (VmHWM).
package main

import (
	"gcbench/report"

	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"time"
)

const msgBytes = 1024

// Log-linear histogram of nanoseconds: values below 2^subBits exactly, larger ones in
// 2^(subBits-1) sub-buckets per power of two (under 0.1% apart, like hdrhistogram's 3
// significant digits).
const subBits = 11

var hist [(64 - subBits + 2) << (subBits - 1)]uint64
var histN, histMax uint64

func bucket(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - subBits // v >> e has subBits bits, top one set
	return e<<(subBits-1) + int(v>>uint(e))
}

// highest returns the largest value that falls in bucket b.
func highest(b int) uint64 {
	if b < 1<<subBits {
		return uint64(b)
	}
	e := b>>(subBits-1) - 1
	m := uint64(b - e<<(subBits-1))
	return (m+1)<<uint(e) - 1
}

func record(ns uint64) {
	hist[bucket(ns)]++
	histN++
	if ns > histMax {
		histMax = ns
	}
}

// quantile is the highest value of the bucket holding the q-th recorded value (as
// hdrhistogram's value_at_quantile).
func quantile(q float64) uint64 {
	want := uint64(math.Ceil(q * float64(histN)))
	if want == 0 {
		want = 1
	}
	var seen uint64
	for b, c := range hist {
		seen += c
		if seen >= want {
			if h := highest(b); h < histMax {
				return h
			}
			return histMax
		}
	}
	return histMax
}

func over(ns uint64) uint64 {
	var n uint64
	for b, c := range hist {
		if highest(b) > ns {
			n += c
		}
	}
	return n
}

func main() {
	window := flag.Int("window", 200000, "messages kept")
	pushes := flag.Int("pushes", 10000000, "messages pushed")
	flag.Parse()
	if *window < 1 {
		*window = 1
	}

	sampler := report.Start()

	start := time.Now()
	win := make([][]byte, *window)
	last := time.Now()
	for i := 0; i < *pushes; i++ {
		b := make([]byte, msgBytes)
		binary.LittleEndian.PutUint64(b, uint64(i))
		win[i%*window] = b
		now := time.Now()
		record(uint64(now.Sub(last)))
		last = now
	}
	var sum uint64
	for _, b := range win {
		if b != nil {
			sum += uint64(b[0])
		}
	}
	wall := time.Since(start)
	sampler.Stop()
	nsUs := func(ns uint64) float64 { return float64(ns) / 1e3 }
	runtime.KeepAlive(win)
	fmt.Printf("msgbuf go window=%d pushes=%d msg_bytes=%d\n", *window, *pushes, msgBytes)
	fmt.Printf("window sum: %d\n", sum)
	sampler.WriteHeap()
	lat := report.LatencyKeys(func(q float64) float64 {
		if q >= 1 {
			return nsUs(histMax)
		}
		return nsUs(quantile(q))
	})
	fmt.Printf("mode=go window=%d pushes=%d %s push_p50_us=%.3f push_p99_us=%.3f push_p999_us=%.3f push_max_us=%.3f pushes_over_1ms=%d pushes_over_2ms=%d %s wall_ms=%d %s\n",
		*window, *pushes, report.STWKeys(),
		nsUs(quantile(0.5)), nsUs(quantile(0.99)), nsUs(quantile(0.999)), nsUs(histMax),
		over(uint64(time.Millisecond)), over(uint64(2*time.Millisecond)),
		report.GCKeys(sampler), wall.Milliseconds(), lat)
}
