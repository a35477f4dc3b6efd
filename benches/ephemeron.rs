//! The cost of ephemerons: a collection with 2²⁰ entries in a `GcEphemeronTable` against the
//! same entries in a plain `GcHashMap` (which holds keys and values strongly).
//!
//! `cargo bench -p gc-benches --bench ephemeron`
//!
//! Each measurement is one `collect()` of the default (concurrent) collector, GOGC off so that
//! no other cycle runs, timed from the call to its return (marking, both pauses, the
//! weak-clearing window and the sweep). The keys are 2²⁰ `Gc<u64>` held in a `GcArray`, the
//! values 2²⁰ other `Gc<u64>`.
//!
//! | case | what it measures |
//! |---|---|
//! | `plain table, keys live` | a `GcHashMap<u64, (Gc<u64>, Gc<u64>)>`: every key and value traced through the map |
//! | `ephemeron table, keys live` | the same entries in an ephemeron table: values traced once their keys are marked (the table is scanned before most keys are, so it is deferred and an ephemeron round traces them) |
//! | `ephemeron table, 1024 gets` | the mutator's side: 1024 `get`s spread over the 2²⁰ entries, in one scope (no collection) |
//! | `ephemeron chain, 20 000 links` | a chain through values (each entry's value is the next entry's key), only the first key rooted: one round per link, the later ones through the cycle's key index |
//! | `ephemeron table, keys dead` | every key unreachable: no value traced, every entry removed in the weak-clearing window (the table is rebuilt between iterations, untimed) |
//!
//! The figures go into `docs/benchmarks.md` with the pause times the cycle records give.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gc_core::{
    Config, Gc, GcArray, GcCell, GcEphemeronTable, GcHashMap, Heap, Mutator, Rootable, Trace,
};

const N: usize = 1 << 20;

#[derive(Trace)]
struct Plain<'gc> {
    keys: GcArray<'gc, Option<Gc<'gc, u64>>>,
    table: GcHashMap<'gc, u64, (Gc<'gc, u64>, Gc<'gc, u64>)>,
}

#[derive(Trace)]
struct Chain<'gc> {
    first: GcCell<'gc, Option<Gc<'gc, u64>>>,
    table: GcEphemeronTable<'gc, u64, Gc<'gc, u64>>,
}

/// Links of the chain case.
const LINKS: usize = 20_000;

/// A binary tree node; a leaf may hold a key of the chain.
#[derive(Trace)]
struct Node<'gc> {
    l: Option<Gc<'gc, Node<'gc>>>,
    r: Option<Gc<'gc, Node<'gc>>>,
    key: Option<Gc<'gc, u64>>,
}

/// A tree of `2^depth - 1` nodes whose leftmost leaf holds `key`.
fn tree<'gc>(
    mc: &gc_core::Mutation<'gc>,
    depth: u32,
    key: Option<Gc<'gc, u64>>,
) -> Gc<'gc, Node<'gc>> {
    if depth <= 1 {
        return Gc::new(
            mc,
            Node {
                l: None,
                r: None,
                key,
            },
        );
    }
    let l = tree(mc, depth - 1, key);
    let r = tree(mc, depth - 1, None);
    Gc::new(
        mc,
        Node {
            l: Some(l),
            r: Some(r),
            key: None,
        },
    )
}

/// A value of the chain of trees: `WIDTH` trees of 7 nodes, the first holding the next key.
#[derive(Trace)]
struct Wide<'gc> {
    kids: Vec<Gc<'gc, Node<'gc>>>,
}

#[derive(Trace)]
struct TreeChain<'gc> {
    first: GcCell<'gc, Option<Gc<'gc, u64>>>,
    table: GcEphemeronTable<'gc, u64, Gc<'gc, Wide<'gc>>>,
}

/// Links of the chain of trees, and the trees per value: more than a worker keeps to itself
/// (64 grey objects), so it hands the first ones, those under the next key, to another.
const TREE_LINKS: usize = 8_000;
const WIDTH: usize = 128;

#[derive(Trace)]
struct Eph<'gc> {
    keys: GcArray<'gc, Option<Gc<'gc, u64>>>,
    table: GcEphemeronTable<'gc, u64, Gc<'gc, u64>>,
}

fn heap() -> Heap {
    Heap::new(Config::default().gc_percent(None)).unwrap()
}

/// Time `iters` collections, printing the pauses of the last one.
fn collections(h: &Heap, iters: u64, mut collect: impl FnMut(), label: &str) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        collect();
        total += t.elapsed();
    }
    if let Some(r) = h.take_cycle_records().last() {
        eprintln!(
            "{label}: mark {:?}, STW 1 {:?}, STW 2 {:?}, {} ephemeron rounds",
            r.mark, r.sweep_termination, r.mark_termination, r.ephemeron_rounds
        );
    }
    total
}

fn ephemerons(c: &mut Criterion) {
    let mut g = c.benchmark_group("ephemerons");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(6));
    {
        let h = heap();
        let mut m: Mutator<Rootable!['gc => Plain<'gc>]> = h.mutator(|mc| Plain {
            keys: GcArray::new(mc, N, None),
            table: GcHashMap::with_capacity(N),
        });
        m.mutate(|mc, r| {
            for i in 0..N {
                let k = Gc::new(mc, i as u64);
                r.keys.set(mc, i, Some(k));
                r.table.insert(mc, i as u64, (k, Gc::new(mc, i as u64)));
            }
        });
        g.bench_function("plain table, keys live", |b| {
            b.iter_custom(|iters| collections(&h, iters, || m.collect(), "plain, live"))
        });
    }
    {
        let h = heap();
        let mut m: Mutator<Rootable!['gc => Eph<'gc>]> = h.mutator(|mc| Eph {
            keys: GcArray::new(mc, N, None),
            table: GcEphemeronTable::new(mc),
        });
        m.mutate(|mc, r| {
            for i in 0..N {
                let k = Gc::new(mc, i as u64);
                r.keys.set(mc, i, Some(k));
                r.table.insert(mc, k, Gc::new(mc, i as u64));
            }
        });
        g.bench_function("ephemeron table, keys live", |b| {
            b.iter_custom(|iters| collections(&h, iters, || m.collect(), "ephemeron, live"))
        });
        // The mutator's side: 1024 lookups spread over the table, in one scope.
        g.bench_function("ephemeron table, 1024 gets", |b| {
            b.iter(|| {
                m.mutate(|_, r| {
                    let mut sum = 0u64;
                    for i in (0..N).step_by(N / 1024) {
                        let k = r.keys.get(i).unwrap();
                        sum += *r.table.get(k).unwrap();
                    }
                    sum
                })
            })
        });
    }
    {
        let h = heap();
        let mut m: Mutator<Rootable!['gc => Chain<'gc>]> = h.mutator(|mc| Chain {
            first: GcCell::new(None),
            table: GcEphemeronTable::new(mc),
        });
        m.mutate(|mc, r| {
            let keys: Vec<_> = (0..=LINKS).map(|i| Gc::new(mc, i as u64)).collect();
            for i in 0..LINKS {
                r.table.insert(mc, keys[i], keys[i + 1]);
            }
            r.first.set(mc, Some(keys[0]));
        });
        g.bench_function("ephemeron chain, 20 000 links", |b| {
            b.iter_custom(|iters| collections(&h, iters, || m.collect(), "ephemeron chain"))
        });
        assert_eq!(m.mutate(|_, r| r.table.len()), LINKS);
    }
    {
        // Each value 128 small trees, the first holding the next key: the bottom of the
        // collector's stack, which it hands to a helper worker (8 CPUs: two mark workers).
        let h = Heap::new(Config::default().gc_percent(None).debug_cpus(8)).unwrap();
        let mut m: Mutator<Rootable!['gc => TreeChain<'gc>]> = h.mutator(|mc| TreeChain {
            first: GcCell::new(None),
            table: GcEphemeronTable::new(mc),
        });
        m.mutate(|mc, r| {
            let keys: Vec<_> = (0..=TREE_LINKS).map(|i| Gc::new(mc, i as u64)).collect();
            for i in 0..TREE_LINKS {
                let kids = (0..WIDTH)
                    .map(|j| tree(mc, 3, (j == 0).then_some(keys[i + 1])))
                    .collect();
                r.table.insert(mc, keys[i], Gc::new(mc, Wide { kids }));
            }
            r.first.set(mc, Some(keys[0]));
        });
        g.bench_function(
            "ephemeron chain of wide values, 8 000 links, 2 workers",
            |b| b.iter_custom(|iters| collections(&h, iters, || m.collect(), "chain of trees")),
        );
        assert_eq!(m.mutate(|_, r| r.table.len()), TREE_LINKS);
    }
    {
        let h = heap();
        let mut m: Mutator<Rootable!['gc => Eph<'gc>]> = h.mutator(|mc| Eph {
            keys: GcArray::new(mc, 1, None),
            table: GcEphemeronTable::new(mc),
        });
        g.bench_function("ephemeron table, keys dead", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    m.mutate(|mc, r| {
                        for i in 0..N {
                            r.table
                                .insert(mc, Gc::new(mc, i as u64), Gc::new(mc, i as u64));
                        }
                    });
                    total += collections(&h, 1, || m.collect(), "ephemeron, dead");
                    assert!(m.mutate(|_, r| r.table.is_empty()));
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ephemerons);
criterion_main!(benches);
