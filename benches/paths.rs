//! Micro-benchmarks of the mutator's paths against their physical floors: allocation per size
//! class against a bump allocator (`bumpalo`), the write barrier with marking off and on against
//! a plain atomic store, `should_yield`, a weak reference's upgrade, and a stash's set and get.
//!
//! `cargo bench -p gc-benches --bench paths`
//!
//! Allocation loops run in one scope per sample, as in `alloc.rs` (fresh spans: page faults
//! included, for both allocators); the marking-on rows hold a cycle in its mark phase
//! (`Heap::debug_hold_marking`), so every store goes through the barrier's buffer and its
//! flushes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use gc_core::{Config, Gc, GcCell, Heap, Mutator, Rootable};

type R = Rootable!['gc => ()];

fn heap_and_mutator() -> (Heap, Mutator<R>) {
    let heap = Heap::new(Config::default()).unwrap();
    let m = heap.mutator(|_| ());
    (heap, m)
}

/// `Gc::new` of a pointer-free object of `BYTES` bytes, against `Bump::alloc` of the same value.
fn alloc_vs_bump<const WORDS: usize>(c: &mut Criterion, m: &mut Mutator<R>) {
    let bytes = WORDS * 8;
    let mut g = c.benchmark_group("alloc vs bump");
    g.bench_with_input(BenchmarkId::new("Gc::new", bytes), &bytes, |b, _| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let t = Instant::now();
                for i in 0..iters {
                    black_box(Gc::new(mc, [i; WORDS]));
                }
                t.elapsed()
            })
        })
    });
    g.bench_with_input(BenchmarkId::new("bumpalo", bytes), &bytes, |b, _| {
        b.iter_custom(|iters| {
            let bump = bumpalo::Bump::new();
            let t = Instant::now();
            for i in 0..iters {
                black_box(bump.alloc([i; WORDS]));
            }
            t.elapsed()
        })
    });
    g.finish();
}

fn alloc(c: &mut Criterion) {
    let (_heap, mut m) = heap_and_mutator();
    alloc_vs_bump::<2>(c, &mut m);
    alloc_vs_bump::<4>(c, &mut m);
    alloc_vs_bump::<8>(c, &mut m);
    alloc_vs_bump::<16>(c, &mut m);
    alloc_vs_bump::<64>(c, &mut m);
}

/// A cell store with the barrier off (no cycle marking) and on (a cycle held in its mark phase),
/// against a plain `Release` store to an atomic word.
fn barrier(c: &mut Criterion) {
    let (heap, mut m) = heap_and_mutator();
    let mut g = c.benchmark_group("store");
    let cell_set = |g: &mut criterion::BenchmarkGroup<'_, _>, name: &str, m: &mut Mutator<R>| {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                m.mutate(|mc, _| {
                    let x = Gc::new(mc, 1u64);
                    let y = Gc::new(mc, 2u64);
                    let cell = Gc::new(mc, GcCell::new(Some(x)));
                    let t = Instant::now();
                    for i in 0..iters {
                        cell.set(mc, black_box(Some(if i & 1 == 0 { x } else { y })));
                    }
                    t.elapsed()
                })
            })
        });
    };
    cell_set(&mut g, "GcCell::set, marking off", &mut m);
    heap.debug_hold_marking(true);
    heap.debug_start_cycle();
    let t = Instant::now();
    while !m.mutate(|mc, _| mc.debug_marking()) {
        assert!(t.elapsed() < Duration::from_secs(10), "no mark phase");
        std::thread::yield_now();
    }
    cell_set(&mut g, "GcCell::set, marking on", &mut m);
    heap.debug_hold_marking(false);
    m.collect();
    let word = AtomicUsize::new(0);
    g.bench_function("AtomicUsize::store(Release)", |b| {
        b.iter(|| word.store(black_box(8), Ordering::Release))
    });
    g.finish();
}

/// `should_yield`, `GcWeak::upgrade`, and a stash's set (`Mutation::stash`) and get (`fetch`).
fn handles(c: &mut Criterion) {
    let (_heap, mut m) = heap_and_mutator();
    c.bench_function("should_yield", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(mc.should_yield());
                }
                t.elapsed()
            })
        })
    });
    c.bench_function("GcWeak::upgrade", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let x = Gc::new(mc, 7u64);
                let w = x.downgrade(mc);
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(w.upgrade(mc));
                }
                t.elapsed()
            })
        })
    });
    c.bench_function("stash set + drop (Mutation::stash)", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let x = Gc::new(mc, 7u64);
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(mc.stash::<Rootable!['gc => u64]>(x));
                }
                t.elapsed()
            })
        })
    });
    let s = m.mutate(|mc, _| mc.stash::<Rootable!['gc => u64]>(Gc::new(mc, 7u64)));
    c.bench_function("stash get (Stash::fetch)", |b| {
        b.iter_custom(|iters| {
            m.mutate(|mc, _| {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(s.fetch(mc));
                }
                t.elapsed()
            })
        })
    });
}

criterion_group!(benches, alloc, barrier, handles);
criterion_main!(benches);
