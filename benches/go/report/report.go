// Package report holds what the Go twins of the gc-core harnesses (treechurn, msgbuf) measure
// the same way: a 2 ms sampler of the heap (peak mapped-and-not-released memory, peak heap over
// goal), the pause list from runtime/metrics, and the collector figures of the last line.
package report

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"time"
)

// WarmupCycles are left out of the peak heap ÷ goal figure, as the Rust harnesses do
// (gc_examples::WARMUP_CYCLES): the heap grows to its working size in the first cycles.
const WarmupCycles = 4

// Sampler reads the heap every 2 ms until Stop.
type Sampler struct {
	done chan struct{}
	// PeakMapped is the largest /memory/classes/total minus released bytes seen.
	PeakMapped uint64
	// PeakOverGoal is the largest heap (objects: allocs − frees) ÷ heap goal seen after the
	// first WarmupCycles cycles: Go's heap at mark termination, sampled (so from below).
	PeakOverGoal float64
}

// Start starts a sampler.
func Start() *Sampler {
	s := &Sampler{done: make(chan struct{})}
	go func() {
		m := []metrics.Sample{
			{Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
			{Name: "/gc/heap/allocs:bytes"},
			{Name: "/gc/heap/frees:bytes"},
			{Name: "/gc/heap/goal:bytes"},
			{Name: "/gc/cycles/total:gc-cycles"},
		}
		for {
			select {
			case <-s.done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			metrics.Read(m)
			if v := m[0].Value.Uint64() - m[1].Value.Uint64(); v > s.PeakMapped {
				s.PeakMapped = v
			}
			if m[5].Value.Uint64() >= WarmupCycles {
				heap := float64(m[2].Value.Uint64() - m[3].Value.Uint64())
				if r := heap / float64(m[4].Value.Uint64()); r > s.PeakOverGoal {
					s.PeakOverGoal = r
				}
			}
		}
	}()
	return s
}

// Stop stops the sampler.
func (s *Sampler) Stop() { close(s.done) }

// Pauses returns the stop-the-world pauses so far, sorted, each as the upper bound of its
// runtime/metrics histogram bucket (Go exposes no exact values).
func Pauses() []time.Duration {
	m := []metrics.Sample{{Name: "/gc/pauses:seconds"}}
	metrics.Read(m)
	h := m[0].Value.Float64Histogram()
	var pauses []time.Duration
	for i, c := range h.Counts {
		for k := uint64(0); k < c; k++ {
			pauses = append(pauses, time.Duration(h.Buckets[i+1]*1e9))
		}
	}
	sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
	return pauses
}

// Pct is the q-quantile of sorted durations (0 for none).
func Pct(v []time.Duration, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	return v[int(q*float64(len(v)-1))]
}

// STWKeys formats the pause figures: stw_count, stw_p50_us, stw_p99_us, stw_max_us.
func STWKeys() string {
	p := Pauses()
	us := func(d time.Duration) int64 { return d.Microseconds() }
	return fmt.Sprintf("stw_count=%d stw_p50_us=%d stw_p99_us=%d stw_max_us=%d",
		len(p), us(Pct(p, 0.5)), us(Pct(p, 0.99)), us(Pct(p, 1)))
}

// GCKeys formats the collector figures after a run (sampler stopped): gc_cycles, gc_cpu_frac
// (MemStats.GCCPUFraction), heap_goal_mib, heap_peak_mib, rss_peak_mib, peak_over_goal.
func GCKeys(s *Sampler) string {
	m := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(m)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("gc_cycles=%d gc_cpu_frac=%.3f heap_goal_mib=%.1f heap_peak_mib=%.1f rss_peak_mib=%.1f peak_over_goal=%.3f",
		m[0].Value.Uint64(), ms.GCCPUFraction, float64(m[1].Value.Uint64())/(1<<20),
		float64(s.PeakMapped)/(1<<20), RSSPeakMiB(), s.PeakOverGoal)
}

// RSSPeakMiB is VmHWM from /proc/self/status in MiB, or 0 where that is unavailable.
func RSSPeakMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kib, _ := strconv.ParseUint(f[1], 10, 64)
			return float64(kib) / 1024
		}
	}
	return 0
}
