//! gc-arena 0.7. Objects live in an `Arena` entered with `mutate`; nothing is collected inside
//! a `mutate` call, so the workload builds at most a scope's budget of nodes per call (one tree,
//! when a tree is larger) and pays the arena's allocation debt after each call with
//! `collect_debt`, as gc-arena's documentation asks. Mutable fields are `Lock` cells, written
//! through `Gc::write` (the write barrier).

use gc_arena::barrier::unlock;
use gc_arena::{Arena, Collect, Gc, Lock, Mutation, Rootable};

use std::time::Instant;

use hdrhistogram::Histogram;
use rand::Rng;

use crate::{CHURN_DEPTH, MSG_BYTES, Peer, SCOPE_PUSHES, churn_rng, message};

#[derive(Collect)]
#[collect(no_drop)]
struct Pair<'gc> {
    left: Option<Gc<'gc, Pair<'gc>>>,
    right: Option<Gc<'gc, Pair<'gc>>>,
}

#[derive(Collect)]
#[collect(no_drop)]
struct Node<'gc> {
    left: Lock<Option<Gc<'gc, Node<'gc>>>>,
    right: Lock<Option<Gc<'gc, Node<'gc>>>>,
    i: i32,
    j: i32,
}

#[derive(Collect)]
#[collect(no_drop)]
struct Churn<'gc> {
    left: Option<Gc<'gc, Churn<'gc>>>,
    right: Option<Gc<'gc, Churn<'gc>>>,
    a: u64,
    b: u64,
}

#[derive(Collect, Default)]
#[collect(no_drop)]
struct Roots<'gc> {
    pairs: Option<Gc<'gc, Pair<'gc>>>,
    boehm: Option<Gc<'gc, Node<'gc>>>,
    array: Option<Gc<'gc, Vec<f64>>>,
    window: Vec<Option<Gc<'gc, [u8; MSG_BYTES]>>>,
    churn: Vec<Gc<'gc, Churn<'gc>>>,
}

pub struct ArenaPeer {
    arena: Arena<Rootable![Roots<'_>]>,
}

impl ArenaPeer {
    pub fn new() -> ArenaPeer {
        ArenaPeer {
            arena: Arena::new(|_| Roots::default()),
        }
    }

    /// One `mutate` call (`mutate_root`: the root is changed in place), then the debt it
    /// left paid.
    fn scope<T>(&mut self, f: impl for<'gc> FnOnce(&Mutation<'gc>, &mut Roots<'gc>) -> T) -> T {
        let r = self.arena.mutate_root(|mc, root| f(mc, root));
        self.arena.collect_debt();
        r
    }
}

fn pairs<'gc>(mc: &Mutation<'gc>, d: u32) -> Gc<'gc, Pair<'gc>> {
    let (left, right) = if d == 0 {
        (None, None)
    } else {
        (Some(pairs(mc, d - 1)), Some(pairs(mc, d - 1)))
    };
    Gc::new(mc, Pair { left, right })
}

fn count_pairs(t: &Pair<'_>) -> u64 {
    1 + t.left.map_or(0, |c| count_pairs(&c)) + t.right.map_or(0, |c| count_pairs(&c))
}

fn empty<'gc>(mc: &Mutation<'gc>) -> Gc<'gc, Node<'gc>> {
    Gc::new(
        mc,
        Node {
            left: Lock::new(None),
            right: Lock::new(None),
            i: 0,
            j: 0,
        },
    )
}

fn populate<'gc>(mc: &Mutation<'gc>, d: u32, n: Gc<'gc, Node<'gc>>) {
    if d == 0 {
        return;
    }
    let (l, r) = (empty(mc), empty(mc));
    let w = Gc::write(mc, n);
    unlock!(w, Node, left).set(Some(l));
    unlock!(w, Node, right).set(Some(r));
    populate(mc, d - 1, l);
    populate(mc, d - 1, r);
}

fn make_tree<'gc>(mc: &Mutation<'gc>, d: u32) -> Gc<'gc, Node<'gc>> {
    if d == 0 {
        return empty(mc);
    }
    let (l, r) = (make_tree(mc, d - 1), make_tree(mc, d - 1));
    Gc::new(
        mc,
        Node {
            left: Lock::new(Some(l)),
            right: Lock::new(Some(r)),
            i: 0,
            j: 0,
        },
    )
}

fn churn_tree<'gc>(mc: &Mutation<'gc>, depth: u32, seed: u64) -> Gc<'gc, Churn<'gc>> {
    let (left, right) = if depth == 0 {
        (None, None)
    } else {
        (
            Some(churn_tree(mc, depth - 1, seed.wrapping_mul(3))),
            Some(churn_tree(mc, depth - 1, seed.wrapping_mul(5))),
        )
    };
    Gc::new(
        mc,
        Churn {
            left,
            right,
            a: seed,
            b: depth as u64,
        },
    )
}

fn count_nodes(t: &Node<'_>) -> u64 {
    1 + t.left.get().map_or(0, |c| count_nodes(&c)) + t.right.get().map_or(0, |c| count_nodes(&c))
}

impl Peer for ArenaPeer {
    fn pairs(&mut self, d: u32, n: u64) -> u64 {
        self.scope(|mc, _| (0..n).map(|_| count_pairs(&pairs(mc, d))).sum())
    }

    fn keep_pairs(&mut self, d: u32) {
        self.scope(|mc, root| root.pairs = Some(pairs(mc, d)));
    }

    fn check_kept_pairs(&mut self) -> u64 {
        self.scope(|_, root| root.pairs.map_or(0, |t| count_pairs(&t)))
    }

    fn boehm_top_down(&mut self, d: u32, n: u64) {
        self.scope(|mc, _| {
            for _ in 0..n {
                let t = empty(mc);
                populate(mc, d, t);
                std::hint::black_box(t);
            }
        });
    }

    fn boehm_bottom_up(&mut self, d: u32, n: u64) {
        self.scope(|mc, _| {
            for _ in 0..n {
                std::hint::black_box(make_tree(mc, d));
            }
        });
    }

    fn keep_boehm(&mut self, d: u32, len: usize) {
        self.scope(|mc, root| {
            let t = empty(mc);
            populate(mc, d, t);
            root.boehm = Some(t);
        });
        self.scope(|mc, root| {
            let a = (0..len)
                .map(|i| if i == 0 { 0.0 } else { 1.0 / i as f64 })
                .collect();
            root.array = Some(Gc::new(mc, a));
        });
    }

    fn check_kept_boehm(&mut self, probe: usize) -> (u64, f64) {
        self.scope(|_, root| {
            (
                root.boehm.map_or(0, |t| count_nodes(&t)),
                root.array.map_or(f64::NAN, |a| a[probe]),
            )
        })
    }

    fn msgbuf(&mut self, window: usize, pushes: usize, lat: &mut Histogram<u64>) -> u64 {
        self.scope(|_, root| root.window = vec![None; window]);
        let mut buf = [0u8; MSG_BYTES];
        let mut i = 0;
        let mut last = Instant::now();
        while i < pushes {
            self.scope(|mc, root| {
                let end = (i + SCOPE_PUSHES).min(pushes);
                while i < end {
                    message(&mut buf, i);
                    root.window[i % window] = Some(Gc::new(mc, buf));
                    let now = Instant::now();
                    lat.record((now - last).as_nanos() as u64)
                        .expect("the histogram grows to any value");
                    last = now;
                    i += 1;
                }
            });
        }
        self.scope(|_, root| root.window.iter().flatten().map(|b| b[0] as u64).sum())
    }

    fn treechurn(&mut self, trees: usize, ops: usize, lat: &mut Histogram<u64>) -> u64 {
        for k in 0..trees {
            self.scope(|mc, root| root.churn.push(churn_tree(mc, CHURN_DEPTH, k as u64)));
        }
        let mut rng = churn_rng();
        for op in 0..ops {
            let i = rng.gen_range(0..trees);
            let t0 = Instant::now();
            self.scope(|mc, root| root.churn[i] = churn_tree(mc, CHURN_DEPTH, op as u64));
            lat.record(t0.elapsed().as_nanos() as u64)
                .expect("the histogram grows to any value");
        }
        self.scope(|_, root| root.churn.iter().map(|n| n.a ^ n.b).sum())
    }

    fn cycles(&self) -> Option<u64> {
        None
    }
}
