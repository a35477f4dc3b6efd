//! Mark and sweep throughput: bytes and objects per second of marking on heap shapes that
//! stress different costs, with one mark worker and with all of them, plus sweeping.
//!
//! `cargo bench -p gc-benches --bench mark`
//!
//! Each measurement runs full stop-the-world collections (`Config::concurrent(false)`, GOGC off
//! so that no other cycle runs) of a fixed live heap and reports the **mark phase** of each
//! cycle as its record gives it (`CycleRecord::mark`), so root scanning, pauses and sweeping are
//! not counted. Criterion's throughput is the live heap's bytes per mark phase (objects per
//! second follow: a node is 16 bytes, a buffer 1 KiB, an array 512 KiB).
//!
//! The shapes (random and in-order trees of 16-byte nodes, a ring of 1 KiB noscan buffers,
//! large arrays) are `gc_benches`' (see its docs), shared with the hardware-counter harness
//! `mark_counters`. Each tree runs with the default depth-first marker and with span-local
//! marking (`Config::span_marking`); the ring with one worker (plain stores) and all of them
//! (locked read-modify-writes, as concurrent marking).
//!
//! The `sweep` benchmark frees 2²⁰ dead 16-byte nodes per cycle and reports the whole
//! collection (marking nothing but roots, then sweeping every span in the cycle's sweep).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gc_benches::{ARRAYS, NODES, NodeRoot, RING, build_arrays, build_ring, build_tree, heap, node};
use gc_core::{GcCell, Heap, Mutator};

/// Run `iters` collections and return the sum of their mark phases.
fn mark_time(heap: &Heap, iters: u64, mut collect: impl FnMut()) -> Duration {
    heap.take_cycle_records();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        collect();
        for r in heap.take_cycle_records() {
            total += r.mark;
        }
    }
    total
}

fn mark(c: &mut Criterion) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("mark");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes((NODES * 16) as u64));
    for (random, shape) in [(true, "nodes, random"), (false, "nodes, in order")] {
        for (span, marking) in [(false, "depth-first"), (true, "span-local")] {
            let name = format!("{shape}, {marking}");
            for w in [1, 0] {
                let label = if w == 1 {
                    "1 worker".to_string()
                } else {
                    format!("{cpus} workers")
                };
                let h = heap((w == 1).then_some(1), span);
                let mut m: Mutator<NodeRoot> = h.mutator(|_| GcCell::new(None));
                build_tree(&mut m, random);
                g.bench_function(BenchmarkId::new(&name, &label), |b| {
                    b.iter_custom(|iters| mark_time(&h, iters, || m.collect()))
                });
            }
        }
    }
    // One worker sets mark bits with plain stores; several use locked read-modify-writes, as
    // concurrent marking does.
    for w in [1, 0] {
        let label = if w == 1 {
            "1 worker".to_string()
        } else {
            format!("{cpus} workers")
        };
        let h = heap((w == 1).then_some(1), false);
        let mut m = build_ring(&h, RING);
        g.throughput(Throughput::Bytes((RING * 1024) as u64));
        g.bench_function(BenchmarkId::new("1 KiB noscan ring", &label), |b| {
            b.iter_custom(|iters| mark_time(&h, iters, || m.collect()))
        });
    }
    {
        let h = heap(Some(1), false);
        let (arrays, len) = ARRAYS;
        let mut m = build_arrays(&h);
        g.throughput(Throughput::Bytes((arrays * len * 8) as u64));
        g.bench_function(BenchmarkId::new("large arrays", "1 worker"), |b| {
            b.iter_custom(|iters| mark_time(&h, iters, || m.collect()))
        });
    }
    g.finish();
}

fn sweep(c: &mut Criterion) {
    let mut g = c.benchmark_group("sweep");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes((NODES * 16) as u64));
    let h = heap(Some(1), false);
    let mut m: Mutator<NodeRoot> = h.mutator(|_| GcCell::new(None));
    g.bench_function("16-byte nodes, all dead", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                m.mutate(|mc, _| {
                    for _ in 0..NODES {
                        std::hint::black_box(node(mc, None, None));
                    }
                });
                let t = std::time::Instant::now();
                m.collect();
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, mark, sweep);
criterion_main!(benches);
