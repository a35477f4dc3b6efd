// treechurn in Go: the same workload as examples/treechurn.rs, for comparing with Go's
// collector in the same session (see docs/benchmarks.md).
//
//	cd benches/go && go run ./treechurn -live-mib 256 -ops 20000 [-mutators M [-share]]
//
// Each mutator keeps live-mib/mutators MiB of depth-10 binary trees (2047 nodes of two pointers
// and two 8-byte words) in a slice, and per operation builds a new tree and replaces a random
// one. With -share, every 8th operation also posts the new tree in the mutator's slot of a
// shared mailbox and adopts the tree the next mutator posted in its place. The last line has the same key=value pairs as the Rust harness: stop-the-world pause
// percentiles (runtime/metrics /gc/pauses:seconds, a histogram whose buckets bound the values),
// operation latency percentiles, cycles, GC CPU fraction (runtime.MemStats.GCCPUFraction: the
// /cpu/classes/gc metrics arrive only in Go 1.20), heap peak (the largest
// /memory/classes/total:bytes minus released bytes, sampled every 2 ms).
package main

import (
	"gcbench/report"

	"flag"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const depth = 10
const nodesPerTree = (1 << (depth + 1)) - 1

type node struct {
	left, right *node
	a, b        uint64
}

func tree(d uint32, seed uint64) *node {
	n := &node{a: seed, b: uint64(d)}
	if d > 0 {
		n.left = tree(d-1, seed*3)
		n.right = tree(d-1, seed*5)
	}
	return n
}

func main() {
	liveMiB := flag.Int("live-mib", 64, "live heap in MiB")
	ops := flag.Int("ops", 5000, "operations")
	mutators := flag.Int("mutators", 1, "mutator goroutines")
	share := flag.Bool("share", false, "hand trees between the mutators through a mailbox every 8th operation")
	flag.Parse()
	// -share: one slot per mutator where it posts a tree for the next mutator to adopt (as the
	// Rust harness's stashed mailbox; atomic pointers, as its slots are atomic words).
	mailbox := make([]atomic.Pointer[node], *mutators)
	const shareEvery = 8
	// A node is 32 bytes here and in the Rust harness (neither has an object header), which
	// keeps the same number of trees.
	treeBytes := nodesPerTree * 32
	trees := (*liveMiB<<20 + treeBytes**mutators - 1) / (treeBytes * *mutators)
	opsEach := (*ops + *mutators - 1) / *mutators

	sampler := report.Start()

	start := time.Now()
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	// Every mutator builds its trees, then the steady state (for heap ÷ goal) begins.
	var built sync.WaitGroup
	built.Add(*mutators)
	for t := 0; t < *mutators; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(t)))
			v := make([]*node, trees)
			for i := range v {
				v[i] = tree(depth, uint64(i))
			}
			built.Done()
			built.Wait()
			if t == 0 {
				sampler.SteadyNow()
			}
			lat := make([]time.Duration, 0, opsEach)
			for op := 0; op < opsEach; op++ {
				i := rng.Intn(trees)
				t0 := time.Now()
				v[i] = tree(depth, uint64(op))
				if *share && op%shareEvery == 0 {
					mailbox[t].Store(v[i])
					if other := mailbox[(t+1)%*mutators].Load(); other != nil {
						v[i] = other
					}
				}
				lat = append(lat, time.Since(t0))
			}
			var sum uint64
			for _, n := range v {
				sum += n.a ^ n.b
			}
			_ = sum
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}(t)
	}
	wg.Wait()
	wall := time.Since(start)
	sampler.Stop()

	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	over := func(d time.Duration) int {
		n := 0
		for _, x := range all {
			if x > d {
				n++
			}
		}
		return n
	}
	// Microseconds with one decimal, as gc-core's harness prints them (whole microseconds,
	// floored, read up to 1 µs low).
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	sampler.WriteHeap()
	lat := report.LatencyKeys(report.SortedQuantile(all))
	fmt.Printf("mode=go live_mib=%d mutators=%d ops=%d %s op_p50_us=%.1f op_p99_us=%.1f op_max_us=%.1f ops_over_1ms=%d ops_over_2ms=%d %s wall_ms=%d %s\n",
		*liveMiB, *mutators, opsEach**mutators, report.STWKeys(),
		us(report.Pct(all, 0.5)), us(report.Pct(all, 0.99)), us(report.Pct(all, 1)), over(time.Millisecond), over(2*time.Millisecond),
		report.GCKeys(sampler), wall.Milliseconds(), lat)
}
