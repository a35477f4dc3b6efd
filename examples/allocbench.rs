//! Steady-state micro-measurements of the mutator's hot paths, with collections between scopes
//! (unlike the criterion benchmarks, whose allocation loops run in one unbounded scope and so
//! mostly measure page faults): allocation of a 16-byte and an 80-byte object, `GcCell::set`
//! with the barrier off, and an empty scope's entry and exit. Prints the median over 200 rounds,
//! in nanoseconds per operation.
//!
//! `cargo run --release --example allocbench`

use gc_core::{Config, Gc, GcCell, Heap, Mutator, Rootable};
use std::hint::black_box;
use std::time::Instant;

type Root = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, u64>>>];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Steady-state nanoseconds per operation of the mutator's hot paths.
#[derive(clap::Parser)]
#[command(name = "allocbench")]
struct Args {}

fn main() {
    let Args {} = clap::Parser::parse();
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Root> = heap.mutator(|_| GcCell::new(None));
    let n = 200_000u64;
    let (mut small, mut big, mut set, mut scope) = (vec![], vec![], vec![], vec![]);
    let per_op = |t: Instant, n: u64| t.elapsed().as_nanos() as f64 / n as f64;
    for _ in 0..200 {
        small.push(m.mutate(|mc, _| {
            let t = Instant::now();
            for i in 0..n {
                black_box(Gc::new(mc, i));
            }
            per_op(t, n)
        }));
        big.push(m.mutate(|mc, _| {
            let t = Instant::now();
            for i in 0..n {
                black_box(Gc::new(mc, [i; 8]));
            }
            per_op(t, n)
        }));
        set.push(m.mutate(|mc, r| {
            let g = Gc::new(mc, 1u64);
            let t = Instant::now();
            for _ in 0..n {
                r.set(mc, black_box(Some(g)));
            }
            per_op(t, n)
        }));
        let t = Instant::now();
        for _ in 0..1000 {
            m.mutate(|_, _| ());
        }
        scope.push(per_op(t, 1000));
    }
    println!(
        "alloc_16B_ns={:.3} alloc_80B_ns={:.3} cell_set_ns={:.3} scope_ns={:.2}",
        median(small),
        median(big),
        median(set),
        median(scope)
    );
}
