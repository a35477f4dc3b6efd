//! Micro-benchmarks: the allocation fast path, the write barrier, scope entry/exit (marking and
//! sweeping: `mark.rs`).
//!
//! `cargo bench -p gc-benches`

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use gc_core::{Config, Gc, GcCell, Heap, Mutator, Rootable};

fn alloc(c: &mut Criterion) {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    let mut g = c.benchmark_group("alloc");
    g.bench_function("u64 (16 B slot)", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let t = std::time::Instant::now();
                for i in 0..iters {
                    black_box(Gc::new(mc, i));
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("[u64; 8] (72 B -> 80 B slot)", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let t = std::time::Instant::now();
                for i in 0..iters {
                    black_box(Gc::new(mc, [i; 8]));
                }
                t.elapsed()
            })
        })
    });
    g.finish();
}

fn barrier(c: &mut Criterion) {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    c.bench_function("GcCell::set (barrier off)", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let x = Gc::new(mc, 1u64);
                let cell = Gc::new(mc, GcCell::new(Some(x)));
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    cell.set(mc, black_box(Some(x)));
                }
                t.elapsed()
            })
        })
    });
}

fn scope(c: &mut Criterion) {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    c.bench_function("mutate enter+exit", |b| {
        b.iter(|| m.mutate(|mc, _| black_box(mc.should_yield())))
    });
}

criterion_group!(benches, alloc, barrier, scope);
criterion_main!(benches);
