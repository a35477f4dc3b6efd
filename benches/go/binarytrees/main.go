// binarytrees in Go: the benchmarks-game binary-trees program, the same workload as
// examples/binary_trees.rs, for comparing with Go's collector in the same session
// (scripts/bench_binary_trees.sh).
//
//	cd benches/go && go run ./binarytrees [DEPTH]     # DEPTH defaults to 21
//
// A stretch tree of depth DEPTH+1 (built, checked, dropped), a long-lived tree of depth DEPTH
// kept to the end, and for d = 4, 6, …, DEPTH, 2^(DEPTH−d+4) trees of depth d each built,
// checked and dropped; a node is two pointers (16 bytes in Go and in gc-core). One
// goroutine does all of it, in order, as the Rust program does (the benchmarks game's Go entries
// spread the depth loop over goroutines; this one does not). GOMAXPROCS is left at its default
// (the number of CPUs), so Go's collector has them all, as gc-core's has.
//
// The output lines are the benchmarks game's, then one key=value line with the Rust harness's
// keys where Go has the figure:
//
//   - wall_ms: from before the stretch tree to after the long-lived tree's check;
//   - rss_peak_mib: VmHWM; heap_peak_mib: the largest /memory/classes/total:bytes minus
//     released bytes, sampled every 2 ms (report.Sampler);
//   - gc_cycles: /gc/cycles/total:gc-cycles; pauses, pause_max_us: from /gc/pauses:seconds, a
//     histogram whose buckets are about 6% wide (the count, and the upper bound of the highest
//     bucket holding a pause); pause_total_ms: MemStats.PauseTotalNs;
//   - gc_cpu_go: MemStats.GCCPUFraction (the Rust program prints Go's definition under the
//     same key; its gc_cpu_frac, the collector threads' own CPU, has no Go counterpart before
//     the /cpu/classes/gc metrics of Go 1.20, so none is printed here);
//   - peak_heap_over_goal: the largest heap (/gc/heap/allocs:bytes − /gc/heap/frees:bytes) over
//     /gc/heap/goal:bytes seen by the 2 ms sampler while marking (PeakOverGoalSwept), from the
//     second cycle to start after the long-lived tree is built, as the Rust figure. Go 1.19 exposes the heap at mark termination only in
//     its gctrace line, so this samples it from below: a peak between two samples is missed;
//   - objects_allocated: MemStats.Mallocs.
//
// Not available from Go 1.19 without parsing gctrace: mark time (mark_total_ms), assist time
// (assist_ms), and the longest time inside a mutation scope (scope_max_us; Go preempts).
package main

import (
	"gcbench/report"

	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

const minDepth = 4

type node struct {
	left, right *node
}

func bottomUp(depth int) *node {
	if depth <= 0 {
		return &node{}
	}
	left := bottomUp(depth - 1)
	right := bottomUp(depth - 1)
	return &node{left, right}
}

func (n *node) check() uint32 {
	c := uint32(1)
	if n.left != nil {
		c += n.left.check()
	}
	if n.right != nil {
		c += n.right.check()
	}
	return c
}

func main() {
	depth := 21
	if len(os.Args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: binarytrees [DEPTH]")
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		d, err := strconv.Atoi(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage: binarytrees [DEPTH]")
			os.Exit(2)
		}
		depth = d
	}
	maxDepth := depth
	if maxDepth < minDepth+2 {
		maxDepth = minDepth + 2
	}

	sampler := report.Start()
	start := time.Now()

	stretch := maxDepth + 1
	fmt.Printf("stretch tree of depth %d\t check: %d\n", stretch, bottomUp(stretch).check())
	longLived := bottomUp(maxDepth)
	sampler.SteadyFromSecondCycle()
	for d := minDepth; d <= maxDepth; d += 2 {
		iterations := 1 << uint(maxDepth-d+minDepth)
		var sum uint32
		for i := 0; i < iterations; i++ {
			sum += bottomUp(d).check()
		}
		fmt.Printf("%d\t trees of depth %d\t check: %d\n", iterations, d, sum)
	}
	fmt.Printf("long lived tree of depth %d\t check: %d\n", maxDepth, longLived.check())

	wall := time.Since(start)
	sampler.Stop()
	sampler.WriteHeap()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	pauses := report.Pauses()
	fmt.Printf("mode=go depth=%d wall_ms=%d rss_peak_mib=%.1f heap_peak_mib=%.1f gc_cycles=%d pauses=%d pause_total_ms=%.1f pause_max_us=%d gc_cpu_go=%.4f peak_heap_over_goal=%.3f objects_allocated=%d\n",
		maxDepth, wall.Milliseconds(), report.RSSPeakMiB(), float64(sampler.PeakMapped)/(1<<20),
		ms.NumGC, len(pauses), float64(ms.PauseTotalNs)/1e6, report.Pct(pauses, 1).Microseconds(),
		ms.GCCPUFraction, sampler.PeakOverGoalSwept, ms.Mallocs)
}
