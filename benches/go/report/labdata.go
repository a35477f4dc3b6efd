package report

// Detailed run data for the benchmark lab (gc-lab), in the files and formats the Rust harnesses
// write (examples/src/lab_data.rs), when GC_LAB_DATA names a directory:
//
//   - latency.csv (quantile,value_us): the operation latency distribution, median to 99.9999 %
//     and the maximum (quantile 1);
//   - pauses.csv (start_s,duration_us,cycle,phase): every stop-the-world pause, from the
//     runtime/metrics histogram /gc/pauses:seconds, each as its bucket's upper bound (Go exposes
//     no exact values and no start times: those columns stay empty);
//   - mmu-pauses.csv (window_ms,mmu): minimum mutator utilisation over windows of 100 µs to 1 s from
//     runtime.MemStats' last (up to 256) cycles, each cycle's pauses (PauseNs holds their sum)
//     taken as one interval ending at its PauseEnd, over the time those cycles span: pauses
//     only (the Rust harnesses' file of that name; their mmu.csv also counts mark assists, of
//     which Go exposes no per-cycle time);
//   - timeline.csv (t_s,heap_mib,goal_mib,trigger_mib): the sampler's 2 ms samples of the heap
//     (allocated minus freed bytes) and the goal; Go 1.19 has no trigger metric.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// dataDir is the directory the lab asked for, or "".
func dataDir() string { return os.Getenv("GC_LAB_DATA") }

func writeData(name, text string) {
	if d := dataDir(); d != "" {
		if err := os.WriteFile(filepath.Join(d, name), []byte(text), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// quantiles: 50 %, then 1 − 10^(−k/4) for k = 4..24 (90 % to 99.9999 % in quarter-nines), as
// the Rust harnesses use.
func quantiles() []float64 {
	q := []float64{0.5}
	for k := 4; k <= 24; k++ {
		q = append(q, 1-math.Pow(10, -float64(k)/4))
	}
	return q
}

// LatencyKeys writes latency.csv (where the lab asked) and returns the lat_* keys in µs
// (lat_p50_us … lat_p999999_us, lat_max_us). at(q) is the latency in µs at quantile q, the
// maximum for q = 1.
func LatencyKeys(at func(q float64) float64) string {
	var csv strings.Builder
	csv.WriteString("quantile,value_us\n")
	for _, q := range append(quantiles(), 1) {
		fmt.Fprintf(&csv, "%v,%v\n", q, at(q))
	}
	writeData("latency.csv", csv.String())
	keys := []struct {
		k string
		q float64
	}{{"p50", 0.5}, {"p99", 0.99}, {"p999", 0.999}, {"p9999", 0.9999}, {"p99999", 0.99999}, {"p999999", 0.999999}, {"max", 1}}
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("lat_%s_us=%.3f", k.k, at(k.q)))
	}
	return strings.Join(out, " ")
}

// SortedQuantile is the q-quantile of sorted durations in µs (the largest for q = 1), for
// LatencyKeys.
func SortedQuantile(v []time.Duration) func(q float64) float64 {
	return func(q float64) float64 {
		if len(v) == 0 {
			return 0
		}
		i := int(math.Ceil(q*float64(len(v)))) - 1
		if i < 0 {
			i = 0
		}
		return float64(v[i].Nanoseconds()) / 1e3
	}
}

type sample struct {
	t          time.Duration
	heap, goal uint64
}

// interval is a stretch of time the mutators lost to the collector, in seconds.
type interval struct{ start, end float64 }

// mmu is the minimum over windows of length w inside [from, to] of the time not covered by
// busy (sorted, disjoint) ÷ w; a window longer than [from, to] shrinks to it. The minimum is
// reached with a window starting at an interval's start or ending at an interval's end.
func mmu(busy []interval, from, to, w float64) float64 {
	if w > to-from {
		w = to - from
	}
	if w <= 0 {
		return 1
	}
	lost := func(a float64) float64 {
		b, sum := a+w, 0.0
		for _, iv := range busy {
			s, e := math.Max(iv.start, a), math.Min(iv.end, b)
			if e > s {
				sum += e - s
			}
		}
		return sum
	}
	worst := 0.0
	for _, iv := range busy {
		for _, a := range []float64{iv.start, iv.end - w} {
			a = math.Max(from, math.Min(a, to-w))
			worst = math.Max(worst, lost(a))
		}
	}
	return 1 - worst/w
}

// WriteHeap writes pauses.csv, mmu.csv and timeline.csv where the lab asked (after Stop).
func (s *Sampler) WriteHeap() {
	if dataDir() == "" {
		return
	}
	var p strings.Builder
	p.WriteString("start_s,duration_us,cycle,phase\n")
	for _, d := range Pauses() {
		fmt.Fprintf(&p, ",%v,,\n", float64(d.Nanoseconds())/1e3)
	}
	writeData("pauses.csv", p.String())

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := int(ms.NumGC)
	if n > len(ms.PauseNs) {
		n = len(ms.PauseNs)
	}
	var busy []interval
	for k := 0; k < n; k++ {
		i := (int(ms.NumGC) - 1 - k + len(ms.PauseNs)) % len(ms.PauseNs)
		end := float64(int64(ms.PauseEnd[i])-s.start.UnixNano()) / 1e9
		busy = append(busy, interval{end - float64(ms.PauseNs[i])/1e9, end})
	}
	sort.Slice(busy, func(i, j int) bool { return busy[i].start < busy[j].start })
	var m strings.Builder
	m.WriteString("window_ms,mmu\n")
	if len(busy) > 0 {
		from, to := busy[0].start, s.stopped.Sub(s.start).Seconds()
		for _, ms := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000} {
			fmt.Fprintf(&m, "%v,%v\n", ms, mmu(busy, from, to, ms/1e3))
		}
	}
	writeData("mmu-pauses.csv", m.String())

	var t strings.Builder
	t.WriteString("t_s,heap_mib,goal_mib,trigger_mib\n")
	for _, x := range s.samples {
		fmt.Fprintf(&t, "%v,%v,%v,\n", x.t.Seconds(), float64(x.heap)/(1<<20), float64(x.goal)/(1<<20))
	}
	writeData("timeline.csv", t.String())
}
