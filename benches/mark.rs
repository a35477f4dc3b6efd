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
//! | shape | what it stresses |
//! |---|---|
//! | `nodes, random` | 2²⁰ − 1 two-pointer nodes (16 MiB) linked into a complete binary tree in random address order: a cache miss per edge (span, mark bitmap, object) |
//! | `nodes, in order` | the same tree built recursively, children first: the marker walks memory in address order |
//!
//! Each node benchmark runs with the default depth-first marker and with span-local marking
//! (`Config::span_marking`).
//! | `1 KiB noscan ring` | 16 384 × 1 KiB `GcBytes` reached from one array: marking without scanning (msgbuf's shape); with one worker (plain stores) and all of them (locked read-modify-writes, as concurrent marking) |
//! | `large arrays` | 16 arrays of 65 536 pointers to 256 shared objects: array scanning in chunks, edges to marked objects |
//!
//! The `sweep` benchmark frees 2²⁰ dead 16-byte nodes per cycle and reports the whole
//! collection (marking nothing but roots, then sweeping every span in the cycle's sweep).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gc_core::{Config, Gc, GcArray, GcBytes, GcCell, Heap, Mutator, Rootable, Trace};

#[derive(Trace)]
struct Node<'gc> {
    left: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    right: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// A new node with the given children.
fn node<'gc>(
    mc: &gc_core::Mutation<'gc>,
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
) -> Gc<'gc, Node<'gc>> {
    Gc::new(
        mc,
        Node {
            left: GcCell::new(left),
            right: GcCell::new(right),
        },
    )
}

type NodeRoot = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>];
type BytesRoot = Rootable!['gc => GcArray<'gc, Option<GcBytes<'gc>>>];
type ArraysRoot = Rootable!['gc => GcArray<'gc, Option<GcArray<'gc, Option<Gc<'gc, u64>>>>>];

const NODES: usize = 1 << 20;

fn heap(workers: Option<usize>, span_marking: bool) -> Heap {
    let mut c = Config::default()
        .concurrent(false)
        .gc_percent(None)
        .span_marking(span_marking);
    if let Some(w) = workers {
        c = c.mark_workers(w);
    }
    Heap::new(c).unwrap()
}

/// A small deterministic generator (xorshift), so the benchmark needs no extra dependency.
fn shuffle(v: &mut [usize], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// A binary tree of [`NODES`] − 1 nodes. `random`: node `k` of the breadth-first order has
/// children `2k + 1` and `2k + 2` and sits at a random allocation slot; else the tree is built
/// recursively, children before their parent (as binary-trees and most recursive builders do),
/// so the marker's depth-first walk reads memory in (descending) address order.
fn build_tree(m: &mut Mutator<NodeRoot>, random: bool) {
    fn bottom_up<'gc>(mc: &gc_core::Mutation<'gc>, depth: u32) -> Gc<'gc, Node<'gc>> {
        let (left, right) = if depth == 0 {
            (None, None)
        } else {
            (
                Some(bottom_up(mc, depth - 1)),
                Some(bottom_up(mc, depth - 1)),
            )
        };
        node(mc, left, right)
    }
    if !random {
        m.mutate(|mc, root| root.set(mc, Some(bottom_up(mc, NODES.trailing_zeros() - 1))));
        return;
    }
    let mut order: Vec<usize> = (0..NODES - 1).collect();
    shuffle(&mut order, 0x9E37_79B9_7F4A_7C15);
    m.mutate(|mc, root| {
        let nodes: Vec<Gc<Node>> = (0..NODES - 1).map(|_| node(mc, None, None)).collect();
        // Breadth-first position k lives in allocation slot order[k].
        let at = |k: usize| nodes[order[k]];
        for k in 0..NODES - 1 {
            if 2 * k + 2 < NODES - 1 {
                at(k).left.set(mc, Some(at(2 * k + 1)));
                at(k).right.set(mc, Some(at(2 * k + 2)));
            }
        }
        root.set(mc, Some(at(0)));
    });
}

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
        let n = 16 * 1024;
        let mut m: Mutator<BytesRoot> = h.mutator(|mc| GcArray::new(mc, n, None));
        m.mutate(|mc, ring| {
            let buf = [7u8; 1024];
            for i in 0..n {
                ring.set(mc, i, Some(GcBytes::new(mc, &buf)));
            }
        });
        g.throughput(Throughput::Bytes((n * 1024) as u64));
        g.bench_function(BenchmarkId::new("1 KiB noscan ring", &label), |b| {
            b.iter_custom(|iters| mark_time(&h, iters, || m.collect()))
        });
    }
    {
        let h = heap(Some(1), false);
        let (arrays, len) = (16, 1 << 16);
        let mut m: Mutator<ArraysRoot> = h.mutator(|mc| GcArray::new(mc, arrays, None));
        m.mutate(|mc, root| {
            let shared: Vec<Gc<u64>> = (0..256).map(|i| Gc::new(mc, i)).collect();
            for a in 0..arrays {
                let arr = GcArray::new(mc, len, None);
                for i in 0..len {
                    arr.set(mc, i, Some(shared[(i * 31 + a) % 256]));
                }
                root.set(mc, a, Some(arr));
            }
        });
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
