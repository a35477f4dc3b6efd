//! Micro-benchmarks: the allocation fast path, the write barrier, `GcRefCell` borrows against
//! `GcVec`, scope entry/exit (marking and sweeping: `mark.rs`).
//!
//! `cargo bench -p gc-benches`

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use gc_core::{Config, Gc, GcCell, GcRefCell, GcVec, Heap, Mutator, Rootable};

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

/// One push and one pop of a `Gc`, through a `GcRefCell<Vec<_>>` (two mutable borrows: the
/// flags, and the barrier's marking check) and through a `GcVec` (two barriered slot writes);
/// and a `GcRefCell` read. Outside marking, so the barriers only check.
fn refcell(c: &mut Criterion) {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    let mut g = c.benchmark_group("push+pop");
    g.bench_function("GcRefCell<Vec<Gc>> borrow_mut", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let x = Gc::new(mc, 1u64);
                let cell = Gc::new(mc, GcRefCell::new(Vec::with_capacity(16)));
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    cell.borrow_mut(mc).push(black_box(x));
                    black_box(cell.borrow_mut(mc).pop());
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("GcVec<Option<Gc>>", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let x = Gc::new(mc, 1u64);
                let v = GcVec::with_capacity(mc, 16);
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    v.push(mc, black_box(Some(x)));
                    black_box(v.pop(mc));
                }
                t.elapsed()
            })
        })
    });
    g.finish();
    c.bench_function("GcRefCell<Vec<Gc>> borrow + len", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let x = Gc::new(mc, 1u64);
                let cell = Gc::new(mc, GcRefCell::new(vec![x; 8]));
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(cell.borrow().len());
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

criterion_group!(benches, alloc, barrier, refcell, scope);
criterion_main!(benches);
