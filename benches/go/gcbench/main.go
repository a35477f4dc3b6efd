// gcbench in Go: Boehm's GCBench, the same workload as examples/gcbench.rs, for comparing with
// Go's collector in the same session.
//
//	cd benches/go && go run ./gcbench [-stretch 18] [-long-lived 16] [-array 500000] [-max 16]
//
// A stretch tree of depth 18 built bottom up and dropped; a long-lived tree of depth 16 built
// top down (nodes allocated empty, then their children stored into them) and a long-lived
// array of 500 000 float64 kept to the end; for d = 4, 6, …, 16, 2·size(18)/size(d) trees of
// depth d built top down, then as many bottom up, each dropped at once. A node is two pointers
// and two int32s (24 bytes; gc-core's node is 24 bytes too). One goroutine; GOMAXPROCS left at
// its default.
//
// Output: GCBench's lines, then one key=value line with the keys of the Rust harness where Go
// has the figure (see binarytrees/main.go for what each means).
package main

import (
	"gcbench/report"

	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

type node struct {
	left, right *node
	i, j        int32
}

func treeSize(d int) int { return (1 << uint(d+1)) - 1 }

func populate(d int, n *node) {
	if d <= 0 {
		return
	}
	d--
	n.left = &node{}
	n.right = &node{}
	populate(d, n.left)
	populate(d, n.right)
}

func makeTree(d int) *node {
	if d <= 0 {
		return &node{}
	}
	return &node{left: makeTree(d - 1), right: makeTree(d - 1)}
}

func (n *node) count() int {
	c := 1
	if n.left != nil {
		c += n.left.count()
	}
	if n.right != nil {
		c += n.right.count()
	}
	return c
}

var sink *node

func main() {
	stretch := flag.Int("stretch", 18, "depth of the stretch tree")
	longLivedDepth := flag.Int("long-lived", 16, "depth of the long-lived tree")
	arraySize := flag.Int("array", 500000, "doubles in the long-lived array")
	maxDepth := flag.Int("max", 16, "the deepest temporary trees")
	flag.Parse()
	const minDepth = 4
	if *maxDepth < minDepth || *stretch < *maxDepth || *arraySize < 2 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gcbench [-stretch 18] [-long-lived 16] [-array 500000] [-max 16]")
		os.Exit(2)
	}

	sampler := report.Start()
	sampler.AllCycles()
	start := time.Now()

	fmt.Printf("Stretching memory with a binary tree of depth %d\n", *stretch)
	sink = makeTree(*stretch)
	sink = nil
	fmt.Printf("Creating a long-lived binary tree of depth %d\n", *longLivedDepth)
	longLived := &node{}
	populate(*longLivedDepth, longLived)
	fmt.Printf("Creating a long-lived array of %d doubles\n", *arraySize)
	array := make([]float64, *arraySize)
	for i := 1; i < *arraySize; i++ {
		array[i] = 1.0 / float64(i)
	}
	for d := minDepth; d <= *maxDepth; d += 2 {
		n := 2 * treeSize(*stretch) / treeSize(d)
		fmt.Printf("Creating %d trees of depth %d\n", n, d)
		t := time.Now()
		for i := 0; i < n; i++ {
			sink = &node{}
			populate(d, sink)
			sink = nil
		}
		fmt.Printf("\tTop down construction took %d ms\n", time.Since(t).Milliseconds())
		t = time.Now()
		for i := 0; i < n; i++ {
			sink = makeTree(d)
			sink = nil
		}
		fmt.Printf("\tBottom up construction took %d ms\n", time.Since(t).Milliseconds())
	}
	probe := 1000
	if probe >= *arraySize {
		probe = *arraySize - 1
	}
	if longLived.count() != treeSize(*longLivedDepth) || array[probe] != 1.0/float64(probe) {
		fmt.Fprintln(os.Stderr, "the long-lived data did not survive")
		os.Exit(1)
	}
	wall := time.Since(start)
	fmt.Printf("Completed in %d ms.\n", wall.Milliseconds())
	sampler.Stop()
	sampler.WriteHeap()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	pauses := report.Pauses()
	fmt.Printf("mode=go stretch_depth=%d long_lived_depth=%d max_depth=%d wall_ms=%d rss_peak_mib=%.1f heap_peak_mib=%.1f gc_cycles=%d pauses=%d pause_total_ms=%.1f pause_max_us=%d gc_cpu_go=%.4f objects_allocated=%d\n",
		*stretch, *longLivedDepth, *maxDepth, wall.Milliseconds(), report.RSSPeakMiB(),
		float64(sampler.PeakMapped)/(1<<20), ms.NumGC, len(pauses), float64(ms.PauseTotalNs)/1e6,
		report.Pct(pauses, 1).Microseconds(), ms.GCCPUFraction, ms.Mallocs)
}
