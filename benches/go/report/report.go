// Package report holds what the Go twins of the gc-core harnesses (treechurn, msgbuf) measure
// the same way: a 2 ms sampler of the heap (peak mapped-and-not-released memory, peak heap over
// goal), the pause list from runtime/metrics, and the collector figures of the last line.
package report

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// WarmupCycles are left out of the peak heap ÷ goal figure by default, as the Rust msgbuf
// does (gc_examples::WARMUP_CYCLES): the heap grows to its working size in the first cycles.
// A harness with a build phase calls SteadyNow when it is over instead.
const WarmupCycles = 4

// Sampler reads the heap every 2 ms until Stop.
type Sampler struct {
	done chan struct{}
	// steadyAfter: heap ÷ goal counts once this many cycles have completed.
	steadyAfter atomic.Uint64
	// PeakMapped is the largest /memory/classes/total minus released bytes seen.
	PeakMapped uint64
	// PeakOverGoal is the largest heap (objects: allocs − frees) ÷ heap goal seen after the
	// first WarmupCycles cycles: Go's heap at mark termination, sampled (so from below).
	PeakOverGoal float64
	// PeakOverGoalSwept is PeakOverGoal counting only the samples taken while no span is
	// being swept: allocs − frees counts dead objects until their span is swept, and right after
	// a mark termination it is still the old heap while the goal is already the next cycle's
	// (lower when the live heap shrank: binarytrees dropping its stretch tree showed 4× there,
	// where gctrace's heap at mark termination never passed 1.25× the goal). A sample counts
	// when the cycle count and the freed bytes are both unchanged since the previous sample:
	// Go sweeps every span before a cycle starts and frees nothing while it marks, so the
	// samples taken while marking, up to the one before mark termination, count; those taken
	// while the last cycle's garbage is being swept (frees growing) do not.
	PeakOverGoalSwept float64
	// start is when sampling began; samples holds every 2 ms sample of the heap and goal when
	// the lab asked for detailed data (GC_LAB_DATA), for timeline.csv.
	start   time.Time
	samples []sample
	// exited is closed when the sampling goroutine has returned.
	exited chan struct{}
}

// Start starts a sampler.
func Start() *Sampler {
	s := &Sampler{done: make(chan struct{}), exited: make(chan struct{}), start: time.Now()}
	keep := dataDir() != ""
	s.steadyAfter.Store(WarmupCycles)
	go func() {
		defer close(s.exited)
		m := []metrics.Sample{
			{Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
			{Name: "/gc/heap/allocs:bytes"},
			{Name: "/gc/heap/frees:bytes"},
			{Name: "/gc/heap/goal:bytes"},
			{Name: "/gc/cycles/total:gc-cycles"},
		}
		var prevFrees, prevCycles uint64
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
			frees, cycles := m[3].Value.Uint64(), m[5].Value.Uint64()
			if keep {
				s.samples = append(s.samples, sample{time.Since(s.start), m[2].Value.Uint64() - frees, m[4].Value.Uint64()})
			}
			if cycles >= s.steadyAfter.Load() {
				heap := float64(m[2].Value.Uint64() - frees)
				r := heap / float64(m[4].Value.Uint64())
				if r > s.PeakOverGoal {
					s.PeakOverGoal = r
				}
				if frees == prevFrees && cycles == prevCycles && r > s.PeakOverGoalSwept {
					s.PeakOverGoalSwept = r
				}
			}
			prevFrees, prevCycles = frees, cycles
		}
	}()
	return s
}

// SteadyNow marks the end of the warm-up: the heap ÷ goal figure counts from the end of the
// cycle after the one running now (that one may have started during the warm-up), as the Rust
// harnesses count cycles that start after it.
func (s *Sampler) SteadyNow() {
	m := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(m)
	s.steadyAfter.Store(m[0].Value.Uint64() + 1)
}

// SteadyFromSecondCycle marks the end of a phase in which the live heap grew: the heap ÷ goal
// figure counts from the second cycle to start after it, the first whose goal comes from a mark
// of the whole live heap (binarytrees, after the long-lived tree, as the Rust program).
func (s *Sampler) SteadyFromSecondCycle() {
	m := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(m)
	s.steadyAfter.Store(m[0].Value.Uint64() + 2)
}

// AllCycles counts the heap ÷ goal figure over every cycle, the first ones included (a
// harness whose every cycle matters, such as binarytrees, calls it right after Start).
func (s *Sampler) AllCycles() { s.steadyAfter.Store(0) }

// Stop stops the sampler and waits for its last sample, so its figures can be read.
func (s *Sampler) Stop() {
	close(s.done)
	<-s.exited
}

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

// Pct is the q-quantile of sorted durations by nearest rank, the smallest value with at least
// q of them at or below it (as hdrhistogram's value_at_quantile in the Rust harnesses), 0 for
// none.
func Pct(v []time.Duration, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(v))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(v) {
		rank = len(v)
	}
	return v[rank-1]
}

// STWKeys formats the pause figures: stw_count, stw_p50_us, stw_p99_us, stw_max_us.
func STWKeys() string {
	p := Pauses()
	us := func(d time.Duration) int64 { return d.Microseconds() }
	return fmt.Sprintf("stw_count=%d stw_p50_us=%d stw_p99_us=%d stw_max_us=%d",
		len(p), us(Pct(p, 0.5)), us(Pct(p, 0.99)), us(Pct(p, 1)))
}

// GCKeys formats the collector figures after a run (sampler stopped): gc_cycles, gc_cpu_go
// (MemStats.GCCPUFraction, Go's definition, which the Rust harnesses print under the same key;
// their gc_cpu_frac, the collector threads' own CPU, has no Go 1.19 counterpart, so none is
// printed), heap_goal_mib, heap_peak_mib, rss_peak_mib, and
// peak_over_goal (PeakOverGoalSwept: the samples taken while marking, the nearest Go 1.19 comes to
// the heap at mark termination that the Rust harnesses print).
func GCKeys(s *Sampler) string {
	m := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(m)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("gc_cycles=%d gc_cpu_go=%.4f heap_goal_mib=%.1f heap_peak_mib=%.1f rss_peak_mib=%.1f peak_over_goal=%.3f",
		m[0].Value.Uint64(), ms.GCCPUFraction, float64(m[1].Value.Uint64())/(1<<20),
		float64(s.PeakMapped)/(1<<20), RSSPeakMiB(), s.PeakOverGoalSwept)
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
