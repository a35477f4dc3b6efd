package report

// Detailed run data for the benchmark lab (gc-lab), in the files and formats the Rust harnesses
// write (examples/src/lab_data.rs), when GC_LAB_DATA names a directory:
//
//   - latency.csv (quantile,value_us): the operation latency distribution, median to 99.9999 %
//     and the maximum (quantile 1);
//   - timeline.csv (t_s,heap_mib,goal_mib,trigger_mib): the sampler's 2 ms samples of the heap
//     (allocated minus freed bytes) and the goal; Go 1.19 has no trigger metric.
//
// The pauses (pauses.csv, mmu-pauses.csv) the lab takes from the run's gctrace, which places
// every pause in time: runtime/metrics has them only as a histogram, MemStats only as one sum
// per cycle for the last 256 cycles.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
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

// WriteHeap writes timeline.csv where the lab asked (after Stop).
func (s *Sampler) WriteHeap() {
	if dataDir() == "" {
		return
	}
	var t strings.Builder
	t.WriteString("t_s,heap_mib,goal_mib,trigger_mib\n")
	for _, x := range s.samples {
		fmt.Fprintf(&t, "%v,%v,%v,\n", x.t.Seconds(), float64(x.heap)/(1<<20), float64(x.goal)/(1<<20))
	}
	writeData("timeline.csv", t.String())
}
