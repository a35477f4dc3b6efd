//! `GcRefCell` (std collections changed in place inside heap objects), `GcHashMap` and
//! `Gc<dyn Trait>` against the concurrent marker.
//!
//! The barrier of a `GcRefCell` shades the whole value at its first mutable borrow of a mark
//! phase, and a marker that finds a value mutably borrowed skips it. The tests move the only
//! references to objects out of a value the marker has not read yet into one it will never
//! read (a new, black object), with the marker held at a known point, in a scope that blocked
//! across STW 1, and at random from several threads with cycles back to back; objects carry a
//! checksum and count their drops, so that both a lost object (verify mode aborts, or the
//! checksum or the ids are wrong) and an object never freed (the drop count) fail.

#![allow(clippy::type_complexity)] // `Rootable![...]` expands to a long type

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gc_core::{
    Config, Gc, GcCell, GcHashMap, GcRefCell, Heap, Mutation, Mutator, Rootable, Stash, Trace,
    unsize,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod common;

/// A leaf object with a checksum and a drop counter of its test.
#[derive(Trace)]
#[gc(unsafe_drop)]
struct Obj {
    id: u64,
    check: u64,
    #[gc(skip)]
    drops: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Obj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Obj({})", self.id)
    }
}

// SAFETY: `Obj::drop` only counts; it never dereferences a `Gc`.
unsafe impl gc_core::UnsafeDrop for Obj {}

impl Drop for Obj {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

fn check_of(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555
}

fn obj<'gc>(mc: &Mutation<'gc>, id: u64, drops: &Arc<AtomicUsize>) -> Gc<'gc, Obj> {
    Gc::new(
        mc,
        Obj {
            id,
            check: check_of(id),
            drops: drops.clone(),
        },
    )
}

fn intact(o: &Obj) -> u64 {
    assert_eq!(
        o.check,
        check_of(o.id),
        "object {} is corrupt (freed?)",
        o.id
    );
    o.id
}

/// One container of each kind.
#[derive(Trace)]
struct Bag<'gc> {
    vec: GcRefCell<'gc, Vec<Gc<'gc, Obj>>>,
    deque: GcRefCell<'gc, VecDeque<Gc<'gc, Obj>>>,
    map: GcHashMap<'gc, u64, Gc<'gc, Obj>>,
    tree: GcRefCell<'gc, BTreeMap<u64, Gc<'gc, Obj>>>,
}

fn bag<'gc>(mc: &Mutation<'gc>) -> Gc<'gc, Bag<'gc>> {
    Gc::new(
        mc,
        Bag {
            vec: GcRefCell::default(),
            deque: GcRefCell::default(),
            map: GcHashMap::new(),
            tree: GcRefCell::default(),
        },
    )
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Vec,
    Deque,
    Map,
    Tree,
}

const KINDS: [Kind; 4] = [Kind::Vec, Kind::Deque, Kind::Map, Kind::Tree];

impl Kind {
    fn push<'gc>(self, mc: &Mutation<'gc>, b: &Bag<'gc>, o: Gc<'gc, Obj>) {
        match self {
            Kind::Vec => b.vec.borrow_mut(mc).push(o),
            Kind::Deque => b.deque.borrow_mut(mc).push_front(o),
            Kind::Map => assert!(b.map.insert(mc, o.id, o).is_none()),
            Kind::Tree => assert!(b.tree.borrow_mut(mc).insert(o.id, o).is_none()),
        }
    }

    /// Remove one element (the `r`-th, modulo the length).
    fn remove<'gc>(self, mc: &Mutation<'gc>, b: &Bag<'gc>, r: usize) -> Option<Gc<'gc, Obj>> {
        match self {
            Kind::Vec => {
                let mut v = b.vec.borrow_mut(mc);
                (!v.is_empty()).then(|| {
                    let i = r % v.len();
                    v.swap_remove(i)
                })
            }
            Kind::Deque => {
                let mut v = b.deque.borrow_mut(mc);
                if r.is_multiple_of(2) {
                    v.pop_back()
                } else {
                    v.pop_front()
                }
            }
            Kind::Map => {
                let key = {
                    let m = b.map.borrow();
                    let n = m.len();
                    (n > 0).then(|| *m.keys().nth(r % n).unwrap())
                };
                key.and_then(|k| b.map.remove(mc, &k))
            }
            Kind::Tree => {
                let mut t = b.tree.borrow_mut(mc);
                let n = t.len();
                let k = (n > 0).then(|| *t.keys().nth(r % n).unwrap());
                k.and_then(|k| t.remove(&k))
            }
        }
    }

    /// Take every element out, with one mutable borrow.
    fn take_all<'gc>(self, mc: &Mutation<'gc>, b: &Bag<'gc>) -> Vec<Gc<'gc, Obj>> {
        match self {
            Kind::Vec => std::mem::take(&mut *b.vec.borrow_mut(mc)),
            Kind::Deque => b.deque.borrow_mut(mc).drain(..).collect(),
            Kind::Map => b.map.borrow_mut(mc).drain().map(|(_, v)| v).collect(),
            Kind::Tree => std::mem::take(&mut *b.tree.borrow_mut(mc))
                .into_values()
                .collect(),
        }
    }

    /// The ids held, sorted, each object checked.
    fn ids(self, b: &Bag<'_>) -> Vec<u64> {
        let mut ids: Vec<u64> = match self {
            Kind::Vec => b.vec.borrow().iter().map(|o| intact(o)).collect(),
            Kind::Deque => b.deque.borrow().iter().map(|o| intact(o)).collect(),
            Kind::Map => b
                .map
                .borrow()
                .iter()
                .map(|(k, o)| {
                    assert_eq!(*k, intact(o));
                    *k
                })
                .collect(),
            Kind::Tree => b
                .tree
                .borrow()
                .iter()
                .map(|(k, o)| {
                    assert_eq!(*k, intact(o));
                    *k
                })
                .collect(),
        };
        ids.sort_unstable();
        ids
    }
}

#[derive(Trace)]
struct Root<'gc> {
    from: Gc<'gc, Bag<'gc>>,
    to: GcCell<'gc, Option<Gc<'gc, Bag<'gc>>>>,
}

type RootM = Rootable!['gc => Root<'gc>];

const N: u64 = if cfg!(miri) { 20 } else { 300 };

fn mutator(heap: &Heap) -> Mutator<RootM> {
    heap.mutator(|mc| Root {
        from: bag(mc),
        to: GcCell::new(None),
    })
}

type StackM = Rootable!['gc => Gc<'gc, Obj>];

/// With the marker held after STW 1, every object of one container of `from` (greyed by the
/// root scan, not yet read) moves to the root stack (scanned already: roots are scanned once
/// per cycle), and `from` is emptied. The scope allocates nothing, so no assist reads `from`
/// either: only the barrier of the first mutable borrow can save the objects. Then they move
/// on to a container of another kind, in a new bag. (Checked by hand: without
/// `snapshot_barrier` the verifier aborts, or the checksums fail.)
#[test]
fn held_marker_contents_moved_out_before_the_marker_reads_them() {
    for (verify, span) in common::MODES {
        for (i, from) in KINDS.into_iter().enumerate() {
            held_marker_move(verify, span, from, KINDS[(i + 1) % KINDS.len()]);
        }
    }
}

fn held_marker_move(verify: bool, span: bool, from: Kind, to: Kind) {
    let what = format!("verify {verify}, span marking {span}, {from:?} → {to:?}");
    let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut m: Mutator<RootM, StackM> = heap.mutator_with_stack(|mc| Root {
        from: bag(mc),
        to: GcCell::new(None),
    });
    m.mutate(|mc, r| {
        for id in 0..N {
            from.push(mc, &r.from, obj(mc, id, &drops));
        }
    });
    common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
    m.mutate_with_stack(|mc, r, stack| {
        assert!(mc.debug_marking());
        for o in from.take_all(mc, &r.from) {
            stack.push(o);
        }
    });
    common::release_held(&heap);
    m.collect();
    m.collect();
    m.mutate_with_stack(|mc, r, stack| {
        let b = bag(mc);
        r.to.set(mc, Some(b));
        while let Some(o) = stack.pop() {
            to.push(mc, &b, o);
        }
    });
    m.collect();
    let ids = m.mutate(|_, r| to.ids(&r.to.get().unwrap()));
    assert_eq!(ids, (0..N).collect::<Vec<_>>(), "{what}");
    assert_eq!(drops.load(Ordering::Relaxed), 0, "{what}");
    // And they are garbage once dropped.
    m.mutate(|mc, r| r.to.set(mc, None));
    m.collect();
    m.collect();
    assert_eq!(drops.load(Ordering::Relaxed), N as usize, "{what}");
}

/// A mutable borrow taken before STW 1 in a scope that then blocks across it: the marker finds
/// the value borrowed and skips it (the bag is reached from a stash, traced at STW 1; the
/// scope's own roots are scanned only when it ends), and after the block the scope moves half
/// the objects into a new bag and leaves the rest in the vector. The borrows of a stale scope
/// shade the whole value when they end, which is all that keeps the half left behind.
#[test]
fn a_borrow_held_across_stw1_by_a_blocked_scope() {
    for verify in [true, false] {
        borrow_held_across_stw1(verify);
    }
}

/// Set when a marker has traced the [`Watched`] wrapper, and so greyed the bag behind it.
static WATCHED_TRACED: AtomicBool = AtomicBool::new(false);

/// A bag behind a wrapper that says when a marker traced it.
struct Watched<'gc> {
    bag: Gc<'gc, Bag<'gc>>,
}

// SAFETY: traces its one pointer, as a derived impl would; the flag is a plain atomic.
unsafe impl Trace for Watched<'_> {
    const NEEDS_TRACE: bool = true;
    fn trace(&self, t: &mut gc_core::Tracer) {
        self.bag.trace(t);
        WATCHED_TRACED.store(true, Ordering::SeqCst);
    }
}

fn borrow_held_across_stw1(verify: bool) {
    type WatchedM = Rootable!['gc => Watched<'gc>];
    let heap = Heap::new(Config::default().verify(verify)).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let (mut scope, driver) = common::blocked_scope();
    WATCHED_TRACED.store(false, Ordering::SeqCst);
    let a = {
        let heap = heap.clone();
        let drops = drops.clone();
        std::thread::spawn(move || {
            let mut m = mutator(&heap);
            let watched: Stash<WatchedM> = m.mutate(|mc, r| {
                for id in 0..N {
                    Kind::Vec.push(mc, &r.from, obj(mc, id, &drops));
                }
                mc.stash(Gc::new(mc, Watched { bag: r.from }))
            });
            m.mutate(|mc, r| {
                let mut held = r.from.vec.borrow_mut(mc);
                assert!(!mc.debug_marking());
                scope.block(mc, || ());
                assert!(mc.debug_marking(), "no cycle started during the block");
                let b = bag(mc);
                r.to.set(mc, Some(b));
                let mut map = b.map.borrow_mut(mc);
                for o in held.drain(..N as usize / 2) {
                    map.insert(o.id, o);
                }
            });
            scope.finished();
            let (moved, left) =
                m.mutate(|_, r| (Kind::Map.ids(&r.to.get().unwrap()), Kind::Vec.ids(&r.from)));
            assert_eq!(moved, (0..N / 2).collect::<Vec<_>>(), "verify {verify}");
            assert_eq!(left, (N / 2..N).collect::<Vec<_>>(), "verify {verify}");
            drop(watched);
        })
    };
    driver.wait_blocked();
    let mut b = mutator(&heap);
    common::start_held_cycle(&heap, || b.mutate(|mc, _| mc.debug_marking()));
    // Let the marker reach the borrowed vector and skip it before the scope goes on: it has
    // traced the wrapper (greyed the bag), and a little later the bag.
    common::release_held(&heap);
    let t = Instant::now();
    while !WATCHED_TRACED.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the marker never reached the bag"
        );
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 30 }));
    driver.release();
    driver.wait_finished();
    b.collect();
    b.collect();
    driver.let_check();
    a.join().unwrap();
    assert_eq!(drops.load(Ordering::Relaxed), 0, "verify {verify}");
}

/// Borrow rules, as `RefCell`'s, and the panics' messages.
#[test]
fn borrows_conflict_as_with_refcell() {
    let heap = Heap::new(Config::default()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut m = mutator(&heap);
    m.mutate(|mc, r| {
        let v = &r.from.vec;
        v.borrow_mut(mc).push(obj(mc, 7, &drops));
        {
            let (a, b) = (v.borrow(), v.borrow());
            assert_eq!(a.len() + b.len(), 2);
            assert!(v.try_borrow_mut(mc).is_err());
        }
        {
            let mut w = v.borrow_mut(mc);
            w.push(obj(mc, 8, &drops));
            assert!(v.try_borrow().is_err());
            assert!(v.try_borrow_mut(mc).is_err());
            assert!(format!("{:?}", r.from.vec).contains("mutably borrowed"));
        }
        assert_eq!(Kind::Vec.ids(&r.from), [7, 8]);
        let _r = v.borrow();
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            v.borrow_mut(mc);
        }))
        .unwrap_err();
        assert_eq!(
            e.downcast_ref::<String>().unwrap(),
            "GcRefCell already borrowed"
        );
    });
}

/// Several mutator threads, each with two bags, move objects between all eight containers at
/// random, drop some and add fresh ones, while cycles run back to back; each checks its
/// containers against a model after every scope. At the end, after two full cycles, every
/// dropped object has been freed and no other.
#[test]
fn random_moves_between_containers_with_cycles_back_to_back() {
    for (verify, span) in common::MODES {
        random_moves(verify, span);
    }
}

#[derive(Trace)]
struct Pair<'gc> {
    a: GcCell<'gc, Gc<'gc, Bag<'gc>>>,
    b: GcCell<'gc, Gc<'gc, Bag<'gc>>>,
}

fn random_moves(verify: bool, span: bool) {
    let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
    heap.debug_back_to_back(true);
    let cycles0 = heap.stats().gc_cycles;
    let threads = if cfg!(miri) { 2 } else { 3 };
    let run = Duration::from_millis(if cfg!(miri) { 30 } else { 700 });
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let heap = heap.clone();
            std::thread::spawn(move || mover(&heap, t, verify, span, (run, cycles0)))
        })
        .collect();
    let results = common::join_then(handles, || heap.debug_back_to_back(false));
    let cycles = heap.stats().gc_cycles - cycles0;
    assert!(cycles >= 3, "only {cycles} cycles ran");
    let during: u64 = results.iter().sum();
    assert!(during > 0, "no scope ran while marking");
}

/// One thread's part: returns how many scopes ran while marking.
/// It runs for `run.0`, and on until three cycles have ended since `run.1` cycles had (a
/// loaded machine may run fewer in that time).
fn mover(heap: &Heap, seed: u64, verify: bool, span: bool, run: (Duration, u64)) -> u64 {
    let what = format!("verify {verify}, span marking {span}, thread {seed}");
    let drops = Arc::new(AtomicUsize::new(0));
    let mut rng = SmallRng::seed_from_u64(seed * 7919 + verify as u64 * 2 + span as u64);
    let mut m: Mutator<Rootable!['gc => Pair<'gc>]> = heap.mutator(|mc| Pair {
        a: GcCell::new(bag(mc)),
        b: GcCell::new(bag(mc)),
    });
    // The model: the ids in each of the eight containers (bag × kind), sorted when compared.
    let mut model: Vec<Vec<u64>> = vec![Vec::new(); 8];
    let (mut next, mut dropped, mut during) = (0u64, 0usize, 0u64);
    let start = Instant::now();
    while start.elapsed() < run.0 || heap.stats().gc_cycles - run.1 < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: cycles stalled"
        );
        let ops: Vec<(u8, usize, usize, usize)> = (0..20)
            .map(|_| {
                (
                    rng.gen_range(0..10u8),
                    rng.gen_range(0..8),
                    rng.gen_range(0..8),
                    rng.r#gen(),
                )
            })
            .collect();
        m.mutate(|mc, p| {
            during += mc.debug_marking() as u64;
            let bags = [p.a.get(), p.b.get()];
            let at = |c: usize| (bags[c / 4], KINDS[c % 4]);
            for &(op, x, y, r) in &ops {
                match op {
                    // A fresh object.
                    0..=2 => {
                        let (b, k) = at(x);
                        k.push(mc, &b, obj(mc, next, &drops));
                        model[x].push(next);
                        next += 1;
                    }
                    // One object moves.
                    3..=5 => {
                        let (bx, kx) = at(x);
                        if let Some(o) = kx.remove(mc, &bx, r) {
                            let (by, ky) = at(y);
                            ky.push(mc, &by, o);
                            let i = model[x].iter().position(|&id| id == o.id).unwrap();
                            model[x].swap_remove(i);
                            model[y].push(o.id);
                        }
                    }
                    // One object dropped.
                    6 => {
                        let (b, k) = at(x);
                        if let Some(o) = k.remove(mc, &b, r) {
                            let i = model[x].iter().position(|&id| id == o.id).unwrap();
                            model[x].swap_remove(i);
                            dropped += 1;
                        }
                    }
                    // Everything moves, through two borrows held at once where the kinds
                    // differ.
                    7 => {
                        let (bx, kx) = at(x);
                        let (by, ky) = at(y);
                        for o in kx.take_all(mc, &bx) {
                            ky.push(mc, &by, o);
                        }
                        let moved = std::mem::take(&mut model[x]);
                        model[y].extend(moved);
                    }
                    // A bag is replaced by a new (black) one that takes its contents.
                    8 => {
                        let old = bags[x / 4];
                        let new = bag(mc);
                        for k in KINDS {
                            for o in k.take_all(mc, &old) {
                                k.push(mc, &new, o);
                            }
                        }
                        if x / 4 == 0 { &p.a } else { &p.b }.set(mc, new);
                        // Later ops of this scope still use the old bag: move back at once.
                        for k in KINDS {
                            for o in k.take_all(mc, &new) {
                                k.push(mc, &old, o);
                            }
                        }
                        if x / 4 == 0 { &p.a } else { &p.b }.set(mc, old);
                    }
                    // Garbage to keep the allocator (and assists) busy.
                    _ => {
                        for i in 0..16 {
                            obj(mc, u64::MAX - i, &drops);
                        }
                        dropped += 16;
                    }
                }
            }
        });
        m.mutate(|_, p| {
            let bags = [p.a.get(), p.b.get()];
            for (c, want) in model.iter_mut().enumerate() {
                want.sort_unstable();
                assert_eq!(
                    &KINDS[c % 4].ids(&bags[c / 4]),
                    want,
                    "{what}: container {c}"
                );
            }
        });
    }
    // Full cycles after the last change (other threads may still run theirs): every dropped
    // object is freed and none that is held.
    m.collect();
    m.collect();
    m.collect();
    assert_eq!(drops.load(Ordering::Relaxed), dropped, "{what}");
    let held: usize = m.mutate(|_, p| {
        let bags = [p.a.get(), p.b.get()];
        (0..8).map(|c| KINDS[c % 4].ids(&bags[c / 4]).len()).sum()
    });
    assert_eq!(held, model.iter().map(Vec::len).sum::<usize>(), "{what}");
    during
}

/// A large vector rewritten in place by one mutator while cycles run back to back: the marker
/// reads it while the mutator waits, or skips it while the mutator holds it; nothing is lost.
#[test]
fn a_large_vector_rewritten_while_the_marker_reads_it() {
    for (verify, span) in common::MODES {
        large_vector(verify, span);
    }
}

fn large_vector(verify: bool, span: bool) {
    let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
    heap.debug_back_to_back(true);
    let drops = Arc::new(AtomicUsize::new(0));
    let len = if cfg!(miri) { 50 } else { 20_000 };
    let mut m = mutator(&heap);
    m.mutate(|mc, r| {
        let mut v = r.from.vec.borrow_mut(mc);
        for id in 0..len {
            v.push(obj(mc, id, &drops));
        }
    });
    let mut rng = SmallRng::seed_from_u64(verify as u64 * 2 + span as u64);
    let start = Instant::now();
    let mut replaced = 0;
    while start.elapsed() < Duration::from_millis(if cfg!(miri) { 30 } else { 600 }) {
        m.mutate(|mc, r| {
            let mut v = r.from.vec.borrow_mut(mc);
            // Rotate, swap and reallocate: the buffer moves under a reader that was not kept out.
            let k = rng.gen_range(0..v.len());
            v.rotate_left(k);
            let (i, j) = (rng.gen_range(0..v.len()), rng.gen_range(0..v.len()));
            v.swap(i, j);
            let i = rng.gen_range(0..v.len());
            let old = std::mem::replace(&mut v[i], obj(mc, u64::MAX, &drops));
            let id = old.id;
            v[i] = obj(mc, id, &drops);
            replaced += 2;
            v.shrink_to_fit();
            v.reserve(1);
        });
    }
    heap.debug_back_to_back(false);
    m.collect();
    m.collect();
    let ids = m.mutate(|_, r| Kind::Vec.ids(&r.from));
    assert_eq!(ids, (0..len).collect::<Vec<_>>());
    assert_eq!(drops.load(Ordering::Relaxed), replaced);
}

/// Trait objects: objects of two types (one holding further objects) behind
/// `Gc<dyn Item>` in a heap vector, traced as the types they were allocated as.
trait Item: Send + Sync {
    fn ids(&self) -> Vec<u64>;
}

impl Item for Obj {
    fn ids(&self) -> Vec<u64> {
        vec![intact(self)]
    }
}

#[derive(Trace)]
struct Branch<'gc> {
    left: Gc<'gc, Obj>,
    right: Gc<'gc, dyn Item + 'gc>,
}

impl Item for Branch<'_> {
    fn ids(&self) -> Vec<u64> {
        let mut v = self.left.ids();
        v.extend(self.right.ids());
        v
    }
}

#[derive(Trace)]
struct Items<'gc> {
    items: GcRefCell<'gc, Vec<Gc<'gc, dyn Item + 'gc>>>,
}

#[test]
fn trait_objects_are_traced_as_what_they_are() {
    for (verify, span) in common::MODES {
        trait_objects(verify, span);
    }
}

fn trait_objects(verify: bool, span: bool) {
    let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
    heap.debug_back_to_back(true);
    let drops = Arc::new(AtomicUsize::new(0));
    let mut m: Mutator<Rootable!['gc => Gc<'gc, Items<'gc>>]> = heap.mutator(|mc| {
        Gc::new(
            mc,
            Items {
                items: GcRefCell::default(),
            },
        )
    });
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for round in 0..rounds {
        m.mutate(|mc, items| {
            let base = round * 3;
            let leaf = unsize!(obj(mc, base, &drops) => dyn Item + '_);
            let inner = obj(mc, base + 2, &drops);
            let branch = Gc::new(
                mc,
                Branch {
                    left: obj(mc, base + 1, &drops),
                    right: unsize!(inner => dyn Item + '_),
                },
            );
            let mut v = items.items.borrow_mut(mc);
            v.push(leaf);
            v.push(unsize!(branch => dyn Item + '_));
            assert!(Gc::ptr_eq(leaf, v[v.len() - 2]));
        });
    }
    heap.debug_back_to_back(false);
    m.collect();
    m.collect();
    let mut ids: Vec<u64> =
        m.mutate(|_, items| items.items.borrow().iter().flat_map(|i| i.ids()).collect());
    ids.sort_unstable();
    assert_eq!(ids, (0..rounds * 3).collect::<Vec<_>>());
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    m.mutate(|mc, items| items.items.borrow_mut(mc).clear());
    m.collect();
    m.collect();
    assert_eq!(drops.load(Ordering::Relaxed), rounds as usize * 3);
}

/// A leaked mutable borrow (`mem::forget` of the guard, safe code) leaves the cell flagged for
/// good: markers skip it in every later cycle, in both collector modes (no abort), and what it
/// held is never handed out again: borrows fail and `get_mut`/`into_inner` panic.
#[test]
fn leaked_borrows_hand_nothing_out_again() {
    for config in [
        Config::default().verify(true),
        Config::default().verify(false),
        Config::default().concurrent(false).verify(true),
    ] {
        leaked_borrow_nested(config.clone());
        leaked_borrow_on_the_root_stack(config);
    }
}

type Cells<'gc> = GcRefCell<'gc, Vec<GcRefCell<'gc, Vec<Gc<'gc, Obj>>>>>;

fn panic_message(f: impl FnOnce()) -> String {
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap()
}

fn leaked_borrow_nested(config: Config) {
    let heap = Heap::new(config).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut m: Mutator<Rootable!['gc => Cells<'gc>]> = heap.mutator(|_| GcRefCell::default());
    m.mutate(|mc, outer| {
        let objs = (0..N).map(|id| obj(mc, id, &drops)).collect();
        outer.borrow_mut(mc).push(GcRefCell::new(objs));
        let o = outer.borrow();
        std::mem::forget(o[0].borrow_mut(mc));
    });
    m.collect();
    m.collect();
    m.mutate(|mc, outer| {
        let mut o = outer.borrow_mut(mc);
        assert!(o[0].try_borrow().is_err());
        assert!(o[0].try_borrow_mut(mc).is_err());
        let msg = panic_message(|| {
            o[0].get_mut();
        });
        assert!(msg.contains("leaked"), "{msg}");
    });
}

fn leaked_borrow_on_the_root_stack(config: Config) {
    let heap = Heap::new(config).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut m: Mutator<Rootable!['gc => ()], Rootable!['gc => GcRefCell<'gc, Vec<Gc<'gc, Obj>>>]> =
        heap.mutator_with_stack(|_| ());
    m.mutate_with_stack(|mc, _, stack| {
        stack.push(GcRefCell::new(
            (0..N).map(|id| obj(mc, id, &drops)).collect(),
        ));
        stack.with(|v| std::mem::forget(v[0].borrow_mut(mc)));
    });
    m.collect();
    m.collect();
    m.mutate_with_stack(|_, _, stack| {
        let cell = stack.pop().unwrap();
        let msg = panic_message(move || {
            cell.into_inner();
        });
        assert!(msg.contains("leaked"), "{msg}");
    });
}

#[derive(Trace)]
struct Leaf {
    id: u64,
    check: u64,
}

#[derive(Trace)]
struct Two<'gc> {
    c: GcRefCell<'gc, Vec<Gc<'gc, Leaf>>>,
    d: GcRefCell<'gc, Vec<Gc<'gc, Leaf>>>,
}

type R = Rootable!['gc => Gc<'gc, Two<'gc>>];

fn two(heap: &Heap) -> Mutator<R> {
    heap.mutator(|mc| {
        Gc::new(
            mc,
            Two {
                c: GcRefCell::new(vec![]),
                d: GcRefCell::new(vec![]),
            },
        )
    })
}

/// Two mutable borrows taken before STW 1; the scope blocks, STW 1 happens, the marker skips
/// both values, and the blocking region itself moves everything from one to the other through
/// the `&mut`s the guards gave (the guards cannot enter the region; their borrows can). The
/// release of the second, in the now stale scope, shades its whole value.
#[test]
fn moves_inside_a_blocking_region_after_stw1() {
    for verify in [true, false] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let (mut scope, driver) = common::blocked_scope();
        let h2 = heap.clone();
        let a = std::thread::spawn(move || {
            let mut m = two(&h2);
            // A heap-wide root, traced at STW 1, so the marker reaches c and d while they are
            // borrowed (A's own roots stay unscanned while its scope is blocked).
            let _keep = m.mutate(|mc, r| mc.stash::<Rootable!['gc => Two<'gc>]>(*r));
            m.mutate(|mc, r| {
                for i in 0..N {
                    r.c.borrow_mut(mc)
                        .push(Gc::new(mc, Leaf { id: i, check: !i }));
                }
            });
            m.mutate(|mc, r| {
                let mut c = r.c.borrow_mut(mc);
                let mut d = r.d.borrow_mut(mc);
                let (cv, dv): (&mut Vec<_>, &mut Vec<_>) = (&mut c, &mut d);
                // STW 1 happens during the block; the marker skips c and d.
                scope.block(mc, move || dv.append(cv));
                assert!(mc.debug_marking());
            }); // d released in a stale scope: whole value shaded
            scope.finished();
            m.mutate(|_, r| {
                let d = r.d.borrow();
                assert_eq!(d.len(), N as usize);
                for l in d.iter() {
                    assert_eq!(l.check, !l.id, "lost");
                }
            });
        });
        driver.wait_blocked();
        let mut b = two(&heap);
        common::start_held_cycle(&heap, || b.mutate(|mc, _| mc.debug_marking()));
        common::release_held(&heap);
        std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 30 }));
        driver.release();
        driver.wait_finished();
        b.collect();
        b.collect();
        driver.let_check();
        a.join().unwrap();
    }
}

/// A leaked shared borrow only keeps mutable borrows out: markers keep reading the value.
#[test]
fn a_leaked_shared_borrow_only_keeps_writers_out() {
    let heap = Heap::new(Config::default().verify(true)).unwrap();
    let mut m = two(&heap);
    m.mutate(|mc, r| {
        r.c.borrow_mut(mc)
            .push(Gc::new(mc, Leaf { id: 3, check: !3 }));
        std::mem::forget(r.c.borrow());
    });
    m.collect();
    m.collect();
    m.mutate(|mc, r| {
        assert!(r.c.try_borrow_mut(mc).is_err());
        assert_eq!(r.c.borrow()[0].check, !3);
    });
}

/// The other collections with `Trace` impls: objects reachable only through a `HashSet`, a
/// `BTreeSet` (keyed by a traced key type of the test's own) and a `Box<[_]>` survive cycles
/// and are freed when removed.
#[derive(Trace)]
struct Sets<'gc> {
    hash: GcRefCell<'gc, std::collections::HashSet<ById<'gc>>>,
    tree: GcRefCell<'gc, std::collections::BTreeSet<ById<'gc>>>,
    boxed: GcRefCell<'gc, Box<[Option<Gc<'gc, Obj>>]>>,
}

/// An object compared, ordered and hashed by its id (which it reads through the `Gc`: the key
/// is traced, so it is alive whenever the set is used).
#[derive(Trace, Clone, Copy)]
struct ById<'gc>(Gc<'gc, Obj>);

impl PartialEq for ById<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.0.id == o.0.id
    }
}
impl Eq for ById<'_> {}
impl std::hash::Hash for ById<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.id.hash(h)
    }
}
impl PartialOrd for ById<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ById<'_> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(&o.0.id)
    }
}

/// How many objects `objs` yields, each checked intact.
fn checked<'a>(objs: impl Iterator<Item = &'a Obj>) -> usize {
    objs.inspect(|o| {
        intact(o);
    })
    .count()
}

#[test]
fn sets_and_boxed_slices_are_traced() {
    for (verify, span) in common::MODES {
        let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
        heap.debug_back_to_back(true);
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m: Mutator<Rootable!['gc => Sets<'gc>]> = heap.mutator(|_| Sets {
            hash: GcRefCell::default(),
            tree: GcRefCell::default(),
            boxed: GcRefCell::new(vec![None; N as usize].into_boxed_slice()),
        });
        for round in 0..3 {
            m.mutate(|mc, s| {
                for id in 0..N {
                    let o = obj(mc, round * 10 * N + id, &drops);
                    match id % 3 {
                        0 => assert!(s.hash.borrow_mut(mc).insert(ById(o))),
                        1 => assert!(s.tree.borrow_mut(mc).insert(ById(o))),
                        _ => s.boxed.borrow_mut(mc)[id as usize] = Some(o),
                    }
                }
            });
        }
        heap.debug_back_to_back(false);
        m.collect();
        m.collect();
        let (h, t, b) = m.mutate(|_, s| {
            let h = checked(s.hash.borrow().iter().map(|k| &*k.0));
            let t = checked(s.tree.borrow().iter().map(|k| &*k.0));
            let b = checked(s.boxed.borrow().iter().flatten().map(|o| &**o));
            (h, t, b)
        });
        let third = |r: u64| (0..N).filter(|i| i % 3 == r).count();
        assert_eq!((h, t, b), (3 * third(0), 3 * third(1), third(2)));
        // Only the boxed slots of the first two rounds were overwritten so far.
        assert_eq!(drops.load(Ordering::Relaxed), 2 * third(2));
        m.mutate(|mc, s| {
            s.hash.borrow_mut(mc).clear();
            s.tree.borrow_mut(mc).clear();
            s.boxed.borrow_mut(mc).fill(None);
        });
        m.collect();
        m.collect();
        assert_eq!(drops.load(Ordering::Relaxed), 3 * N as usize);
    }
}

/// Maps and sets whose keys are their only `Gc`s (names to plain numbers, as an interpreter's
/// globals), each a heap object of its own: each needs tracing (were one noscan, the marker
/// would never read its keys, and they would be freed while the map holds them). Keys survive
/// collections with verify mode on (freed memory is poisoned) and off (freed slots are reused
/// by the garbage strings made between collections), and are reclaimed once the maps are
/// dropped.
#[test]
fn maps_whose_keys_alone_hold_gcs_keep_their_keys() {
    use gc_core::{GcStr, Trace};
    use std::collections::{BTreeMap, HashMap, HashSet};
    type Table<'gc> = GcHashMap<'gc, GcStr<'gc>, f64>;
    type Map<'gc> = GcRefCell<'gc, HashMap<GcStr<'gc>, u64>>;
    type Set<'gc> = GcRefCell<'gc, HashSet<GcStr<'gc>>>;
    type Tree<'gc> = GcRefCell<'gc, BTreeMap<GcStr<'gc>, u64>>;
    #[derive(Trace)]
    struct Names<'gc> {
        table: GcCell<'gc, Option<Gc<'gc, Table<'gc>>>>,
        map: GcCell<'gc, Option<Gc<'gc, Map<'gc>>>>,
        set: GcCell<'gc, Option<Gc<'gc, Set<'gc>>>>,
        tree: GcCell<'gc, Option<Gc<'gc, Tree<'gc>>>>,
    }
    fn needs_trace<T: Trace>() -> bool {
        T::NEEDS_TRACE
    }
    assert!(needs_trace::<Table<'static>>());
    assert!(needs_trace::<Map<'static>>());
    assert!(needs_trace::<Set<'static>>());
    assert!(needs_trace::<Tree<'static>>());
    type NamesM = Rootable!['gc => Names<'gc>];
    const N: usize = if cfg!(miri) { 20 } else { 500 };
    let name = |i: usize| format!("name number {i} of the table");
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<NamesM> = heap.mutator(|_| Names {
            table: GcCell::new(None),
            map: GcCell::new(None),
            set: GcCell::new(None),
            tree: GcCell::new(None),
        });
        m.mutate(|mc, root| {
            let (table, map, set, tree) = (
                Gc::new(mc, GcHashMap::new()),
                Gc::new(mc, GcRefCell::new(HashMap::new())),
                Gc::new(mc, GcRefCell::new(HashSet::new())),
                Gc::new(mc, GcRefCell::new(BTreeMap::new())),
            );
            for i in 0..N {
                table.insert(mc, GcStr::new(mc, &name(i)), i as f64);
                map.borrow_mut(mc)
                    .insert(GcStr::new(mc, &name(i)), i as u64);
                set.borrow_mut(mc).insert(GcStr::new(mc, &name(i)));
                tree.borrow_mut(mc)
                    .insert(GcStr::new(mc, &name(i)), i as u64);
            }
            root.table.set(mc, Some(table));
            root.map.set(mc, Some(map));
            root.set.set(mc, Some(set));
            root.tree.set(mc, Some(tree));
        });
        for round in 0..3 {
            m.collect();
            m.mutate(|mc, root| {
                let mut seen: Vec<usize> = Vec::new();
                for (k, v) in root.table.get().unwrap().entries() {
                    assert_eq!(
                        k.as_str(),
                        name(v as usize),
                        "verify={verify} round {round}"
                    );
                    seen.push(v as usize);
                }
                for (k, &v) in root.map.get().unwrap().borrow().iter() {
                    assert_eq!(
                        k.as_str(),
                        name(v as usize),
                        "verify={verify} round {round}"
                    );
                }
                let tree = root.tree.get().unwrap();
                for (k, &v) in tree.borrow().iter() {
                    assert_eq!(
                        k.as_str(),
                        name(v as usize),
                        "verify={verify} round {round}"
                    );
                }
                assert_eq!(tree.borrow().len(), N, "verify={verify} round {round}");
                let set = root.set.get().unwrap();
                let mut in_set: Vec<&str> = set.borrow().iter().map(|k| k.as_str()).collect();
                in_set.sort();
                let mut names: Vec<String> = (0..N).map(name).collect();
                names.sort();
                assert_eq!(in_set, names, "verify={verify} round {round}");
                seen.sort();
                assert_eq!(seen, (0..N).collect::<Vec<_>>());
                // Garbage strings of the same size, into the slots of anything freed.
                for i in 0..4 * N {
                    GcStr::new(mc, &format!("garbage number {i:>5} of many"));
                }
            });
        }
        let marked = heap.stats().marked_objects;
        assert!(marked >= 4 * N as u64, "verify={verify}: {marked} marked");
        m.mutate(|mc, root| {
            root.table.set(mc, None);
            root.map.set(mc, None);
            root.set.set(mc, None);
            root.tree.set(mc, None);
        });
        m.collect();
        m.collect();
        assert_eq!(
            heap.stats().marked_objects,
            0,
            "verify={verify}: the maps' keys not reclaimed"
        );
    }
}

/// `GcHashMap::clear` empties the table, and what only it held is reclaimed.
#[test]
fn a_cleared_table_is_empty_and_its_entries_are_reclaimed() {
    use gc_core::GcStr;
    type Table<'gc> = GcHashMap<'gc, GcStr<'gc>, Gc<'gc, u64>>;
    type R = Rootable!['gc => Gc<'gc, Table<'gc>>];
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<R> = heap.mutator(|mc| Gc::new(mc, GcHashMap::new()));
        m.mutate(|mc, table| {
            for i in 0..3u64 {
                table.insert(mc, GcStr::new(mc, &format!("k{i}")), Gc::new(mc, i));
            }
            assert_eq!(table.len(), 3);
        });
        m.collect();
        m.mutate(|mc, table| {
            assert_eq!(table.get("k1").map(|v| *v), Some(1));
            // Inserting at a key that is there answers the value it replaces.
            let old = table.insert(mc, GcStr::new(mc, "k1"), Gc::new(mc, 10));
            assert_eq!(old.map(|v| *v), Some(1));
            assert_eq!(table.get("k1").map(|v| *v), Some(10));
            assert_eq!(table.len(), 3);
            table.clear(mc);
            assert!(table.is_empty(), "verify={verify}");
            assert_eq!(table.len(), 0);
            assert!(table.get("k1").is_none() && !table.contains_key("k1"));
        });
        m.collect();
        m.collect();
        assert_eq!(
            heap.stats().marked_objects,
            1,
            "verify={verify}: only the table is left"
        );
    }
}

/// A value that, traced on a thread whose `PROBED` is set, records whether the cell it names
/// is still mutably borrowed.
struct Probe;

type ProbeCell<'gc> = GcRefCell<'gc, Vec<Probe>>;

thread_local! {
    /// The cell the probe checks (its address), on the scope's thread only.
    static PROBED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// What the probe saw: `Some(true)` if the cell was still borrowed mutably.
    static SAW: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

// SAFETY: no pointers to trace; `trace` reads a cell whose address the test set, which lives
// in the heap for the whole scope in which `PROBED` is set.
unsafe impl Trace for Probe {
    const NEEDS_TRACE: bool = true;
    fn trace(&self, _: &mut gc_core::Tracer) {
        let cell = PROBED.with(|p| p.get());
        if cell != 0 {
            // SAFETY: see the impl's comment; the probe only reads the borrow flag.
            let cell = unsafe { &*(cell as *const ProbeCell<'_>) };
            SAW.with(|s| s.set(Some(cell.try_borrow().is_err())));
        }
    }
}

/// A mutable borrow ended in a scope that blocked across STW 1 shades the whole value (which
/// the snapshot may not have seen) before it lets the borrow go: another thread that took the
/// borrow meanwhile could change the value (free a vector's buffer) under the shading. The
/// mutator's later scopes, once that cycle is over, shade nothing (the stale scope's shading
/// of initialising stores ends with it).
#[test]
fn a_stale_scope_shades_a_borrowed_value_before_it_lets_the_borrow_go() {
    type R = Rootable!['gc => Gc<'gc, ProbeCell<'gc>>];
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let (mut scope, driver) = common::blocked_scope();
        let a = {
            let heap = heap.clone();
            std::thread::spawn(move || {
                let mut m: Mutator<R> =
                    heap.mutator(|mc| Gc::new(mc, GcRefCell::new(vec![Probe, Probe])));
                m.mutate(|mc, cell| {
                    let held = cell.borrow_mut(mc);
                    scope.block(mc, || ());
                    assert!(mc.debug_marking(), "no cycle started during the block");
                    PROBED.with(|p| p.set(&**cell as *const ProbeCell<'_> as usize));
                    drop(held);
                    PROBED.with(|p| p.set(0));
                });
                scope.finished();
                let stale = SAW.with(|s| s.take());
                // The cycle is over (the driver collected): a borrow now shades nothing.
                let later = m.mutate(|mc, cell| {
                    assert!(!mc.debug_marking());
                    PROBED.with(|p| p.set(&**cell as *const ProbeCell<'_> as usize));
                    drop(cell.borrow_mut(mc));
                    PROBED.with(|p| p.set(0));
                    SAW.with(|s| s.take())
                });
                (stale, later)
            })
        };
        driver.wait_blocked();
        let mut b: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        common::start_held_cycle(&heap, || b.mutate(|mc, _| mc.debug_marking()));
        driver.release();
        driver.wait_finished();
        common::release_held(&heap);
        b.collect();
        driver.let_check();
        let (stale, later) = a.join().unwrap();
        assert_eq!(
            stale,
            Some(true),
            "verify {verify}: the value was shaded after the borrow was let go (or not at all)"
        );
        assert_eq!(
            later, None,
            "verify {verify}: a later scope's borrow shaded the value"
        );
    }
}

/// A value element whose `trace` counts its calls on the calling thread.
struct Counted;

thread_local! {
    static TRACED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: no pointers to trace; `trace` only counts.
unsafe impl Trace for Counted {
    const NEEDS_TRACE: bool = true;
    fn trace(&self, _: &mut gc_core::Tracer) {
        TRACED.with(|c| c.set(c.get() + 1));
    }
}

/// A mutable borrow refused while marking (another borrow holds the cell: here one leaked
/// before the cycle) reads nothing of the value: its deletion barrier runs only once the
/// borrow is held, since the holder may be changing the value meanwhile.
#[test]
fn a_refused_mutable_borrow_reads_nothing() {
    type C = Rootable!['gc => Gc<'gc, GcRefCell<'gc, Vec<Counted>>>];
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<C> =
        heap.mutator(|mc| Gc::new(mc, GcRefCell::new(vec![Counted, Counted, Counted])));
    m.mutate(|mc, cell| std::mem::forget(cell.borrow_mut(mc)));
    common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
    let traced = m.mutate(|mc, cell| {
        assert!(mc.debug_marking());
        TRACED.with(|c| c.set(0));
        assert!(cell.try_borrow_mut(mc).is_err());
        TRACED.with(|c| c.get())
    });
    common::release_held(&heap);
    m.collect();
    assert_eq!(traced, 0, "a refused borrow traced the value");
}

/// A `GcRefCell`'s deletion barrier shades its value once per mark phase, however often it is
/// borrowed mutably in it (a table updated in a loop while marking would otherwise be walked
/// whole at every update), and once more in the next cycle's. The marker is held, so every
/// trace on this thread is the barrier's.
#[test]
fn a_cells_value_is_shaded_once_per_mark_phase() {
    type C = Rootable!['gc => Gc<'gc, GcRefCell<'gc, Vec<Counted>>>];
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<C> =
            heap.mutator(|mc| Gc::new(mc, GcRefCell::new(vec![Counted, Counted, Counted])));
        for cycle in 0..2 {
            common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
            let traced = m.mutate(|mc, cell| {
                assert!(mc.debug_marking());
                TRACED.with(|c| c.set(0));
                for _ in 0..10 {
                    cell.borrow_mut(mc).push(Counted);
                    cell.borrow_mut(mc).pop();
                }
                TRACED.with(|c| c.get())
            });
            common::release_held(&heap);
            m.collect();
            assert_eq!(
                traced, 3,
                "verify {verify}, cycle {cycle}: elements traced by 20 borrows"
            );
        }
    }
}
