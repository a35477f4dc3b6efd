//! sandpit 0.5 with its default features (single-threaded: a collection runs when a `mutate`
//! call returns and the arena's trigger says so). Objects live in an `Arena` entered with
//! `mutate`, so the workload builds at most a scope's budget of nodes per call (one tree, when
//! a tree is larger). Mutable pointers are `GcOpt`s written through `write_barrier`.

use sandpit::{Arena, Gc, GcOpt, Mutator, Root, Trace, field};

use std::time::Instant;

use hdrhistogram::Histogram;
use rand::Rng;

use crate::{CHURN_DEPTH, MSG_BYTES, Peer, SCOPE_PUSHES, churn_rng, message};

#[derive(Trace)]
struct Pair<'gc> {
    left: GcOpt<'gc, Pair<'gc>>,
    right: GcOpt<'gc, Pair<'gc>>,
}

#[derive(Trace)]
struct Node<'gc> {
    left: GcOpt<'gc, Node<'gc>>,
    right: GcOpt<'gc, Node<'gc>>,
    i: i32,
    j: i32,
}

#[derive(Trace)]
struct Churn<'gc> {
    left: GcOpt<'gc, Churn<'gc>>,
    right: GcOpt<'gc, Churn<'gc>>,
    a: u64,
    b: u64,
}

#[derive(Trace)]
struct Roots<'gc> {
    pairs: GcOpt<'gc, Pair<'gc>>,
    boehm: GcOpt<'gc, Node<'gc>>,
    array: GcOpt<'gc, [f64]>,
    window: GcOpt<'gc, [GcOpt<'gc, [u8]>]>,
    churn: GcOpt<'gc, [GcOpt<'gc, Churn<'gc>>]>,
}

/// The arena, rooted at the `Roots` object.
type RootedArena = Arena<Root![Gc<'_, Roots<'_>>]>;

pub struct SandpitPeer {
    arena: RootedArena,
}

impl SandpitPeer {
    pub fn new() -> SandpitPeer {
        SandpitPeer {
            arena: Arena::new(|mu| {
                Gc::new(
                    mu,
                    Roots {
                        pairs: GcOpt::new_none(),
                        boehm: GcOpt::new_none(),
                        array: GcOpt::new_none(),
                        window: GcOpt::new_none(),
                        churn: GcOpt::new_none(),
                    },
                )
            }),
        }
    }

    /// One `mutate` call, returning what `f` computes.
    fn scope<T>(
        &self,
        f: impl for<'gc> FnOnce(&'gc Mutator<'gc>, &'gc Gc<'gc, Roots<'gc>>) -> T,
    ) -> T {
        let mut out = None;
        self.arena.mutate(|mu, root| out = Some(f(mu, root)));
        out.expect("mutate runs its closure")
    }
}

fn pairs<'gc>(mu: &'gc Mutator<'gc>, d: u32) -> Gc<'gc, Pair<'gc>> {
    let (left, right) = if d == 0 {
        (GcOpt::new_none(), GcOpt::new_none())
    } else {
        (pairs(mu, d - 1).into(), pairs(mu, d - 1).into())
    };
    Gc::new(mu, Pair { left, right })
}

fn count_pairs(t: &Pair<'_>) -> u64 {
    1 + t.left.as_option().map_or(0, |c| count_pairs(&c))
        + t.right.as_option().map_or(0, |c| count_pairs(&c))
}

fn empty<'gc>(mu: &'gc Mutator<'gc>) -> Gc<'gc, Node<'gc>> {
    Gc::new(
        mu,
        Node {
            left: GcOpt::new_none(),
            right: GcOpt::new_none(),
            i: 0,
            j: 0,
        },
    )
}

fn populate<'gc>(mu: &'gc Mutator<'gc>, d: u32, n: Gc<'gc, Node<'gc>>) {
    if d == 0 {
        return;
    }
    let (l, r) = (empty(mu), empty(mu));
    n.write_barrier(mu, |b| {
        field!(b, Node, left).set(l.clone());
        field!(b, Node, right).set(r.clone());
    });
    populate(mu, d - 1, l);
    populate(mu, d - 1, r);
}

fn make_tree<'gc>(mu: &'gc Mutator<'gc>, d: u32) -> Gc<'gc, Node<'gc>> {
    if d == 0 {
        return empty(mu);
    }
    let (l, r) = (make_tree(mu, d - 1), make_tree(mu, d - 1));
    Gc::new(
        mu,
        Node {
            left: l.into(),
            right: r.into(),
            i: 0,
            j: 0,
        },
    )
}

fn churn_tree<'gc>(mu: &'gc Mutator<'gc>, depth: u32, seed: u64) -> Gc<'gc, Churn<'gc>> {
    let (left, right) = if depth == 0 {
        (GcOpt::new_none(), GcOpt::new_none())
    } else {
        (
            churn_tree(mu, depth - 1, seed.wrapping_mul(3)).into(),
            churn_tree(mu, depth - 1, seed.wrapping_mul(5)).into(),
        )
    };
    Gc::new(
        mu,
        Churn {
            left,
            right,
            a: seed,
            b: depth as u64,
        },
    )
}

fn count_nodes(t: &Node<'_>) -> u64 {
    1 + t.left.as_option().map_or(0, |c| count_nodes(&c))
        + t.right.as_option().map_or(0, |c| count_nodes(&c))
}

impl Peer for SandpitPeer {
    fn pairs(&mut self, d: u32, n: u64) -> u64 {
        self.scope(|mu, _| (0..n).map(|_| count_pairs(&pairs(mu, d))).sum())
    }

    fn keep_pairs(&mut self, d: u32) {
        self.scope(|mu, root| {
            let t = pairs(mu, d);
            root.write_barrier(mu, |b| field!(b, Roots, pairs).set(t));
        });
    }

    fn check_kept_pairs(&mut self) -> u64 {
        self.scope(|_, root| root.pairs.as_option().map_or(0, |t| count_pairs(&t)))
    }

    fn boehm_top_down(&mut self, d: u32, n: u64) {
        self.scope(|mu, _| {
            for _ in 0..n {
                let t = empty(mu);
                populate(mu, d, t.clone());
                std::hint::black_box(t);
            }
        });
    }

    fn boehm_bottom_up(&mut self, d: u32, n: u64) {
        self.scope(|mu, _| {
            for _ in 0..n {
                std::hint::black_box(make_tree(mu, d));
            }
        });
    }

    fn keep_boehm(&mut self, d: u32, len: usize) {
        self.scope(|mu, root| {
            let t = empty(mu);
            populate(mu, d, t.clone());
            root.write_barrier(mu, |b| field!(b, Roots, boehm).set(t));
        });
        self.scope(|mu, root| {
            let a = mu.alloc_array_from_fn(len, |i| if i == 0 { 0.0 } else { 1.0 / i as f64 });
            root.write_barrier(mu, |b| field!(b, Roots, array).set(a));
        });
    }

    fn check_kept_boehm(&mut self, probe: usize) -> (u64, f64) {
        self.scope(|_, root| {
            (
                root.boehm.as_option().map_or(0, |t| count_nodes(&t)),
                root.array.as_option().map_or(f64::NAN, |a| a[probe]),
            )
        })
    }

    fn msgbuf(&mut self, window: usize, pushes: usize, lat: &mut Histogram<u64>) -> u64 {
        self.scope(|mu, root| {
            let w = mu.alloc_array_from_fn(window, |_| GcOpt::new_none());
            root.write_barrier(mu, |b| field!(b, Roots, window).set(w));
        });
        let mut buf = [0u8; MSG_BYTES];
        let mut i = 0;
        let mut last = Instant::now();
        while i < pushes {
            self.scope(|mu, root| {
                let w = root.window.unwrap();
                let end = (i + SCOPE_PUSHES).min(pushes);
                while i < end {
                    message(&mut buf, i);
                    let msg = mu.alloc_array_from_slice(&buf);
                    w.write_barrier(mu, |b| b.at(i % window).set(msg));
                    let now = Instant::now();
                    lat.record((now - last).as_nanos() as u64)
                        .expect("the histogram grows to any value");
                    last = now;
                    i += 1;
                }
            });
        }
        self.scope(|_, root| {
            root.window
                .unwrap()
                .iter()
                .filter_map(|m| m.as_option())
                .map(|m| m[0] as u64)
                .sum()
        })
    }

    fn treechurn(&mut self, trees: usize, ops: usize, lat: &mut Histogram<u64>) -> u64 {
        self.scope(|mu, root| {
            let c = mu.alloc_array_from_fn(trees, |_| GcOpt::new_none());
            root.write_barrier(mu, |b| field!(b, Roots, churn).set(c));
        });
        let put = |this: &Self, i: usize, seed: u64| {
            this.scope(|mu, root| {
                let t = churn_tree(mu, CHURN_DEPTH, seed);
                root.churn.unwrap().write_barrier(mu, |b| b.at(i).set(t));
            })
        };
        for k in 0..trees {
            put(self, k, k as u64);
        }
        let mut rng = churn_rng();
        for op in 0..ops {
            let i = rng.gen_range(0..trees);
            let t0 = Instant::now();
            put(self, i, op as u64);
            lat.record(t0.elapsed().as_nanos() as u64)
                .expect("the histogram grows to any value");
        }
        self.scope(|_, root| {
            root.churn
                .unwrap()
                .iter()
                .filter_map(|n| n.as_option())
                .map(|n| n.a ^ n.b)
                .sum()
        })
    }

    fn cycles(&self) -> Option<u64> {
        let m = self.arena.metrics();
        Some(m.get_major_collections() + m.get_minor_collections())
    }
}
