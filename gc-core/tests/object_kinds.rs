//! Objects without headers, of every kind: plain nodes, objects with drop glue, small and large
//! arrays, strings, weak boxes, NanBox payloads, zero-sized objects (with and without drop
//! glue) and large sized objects. Every type lives in spans of its own type, so this checks
//! that the span's type is what traces, drops and names each object.
//!
//! A random workload keeps some objects of every kind reachable from the root and drops others,
//! with cycles running back to back (so marking races allocation and barriers) and explicit
//! collections between rounds, in both collectors and with verify mode on and off. Checked:
//! every reachable object's contents (checksums), that every object with drop glue is dropped
//! exactly once and only after it became unreachable, that weak references to garbage die, and
//! that garbage is reclaimed (the live heap after a collection is what the root holds). Also:
//! a two-pointer node takes 16 bytes.

use std::sync::atomic::{AtomicU64, Ordering};

use gc_core::{
    Config, Gc, GcArray, GcCell, GcStr, GcWeak, Heap, Mutation, Mutator, NanBox, Rootable, Trace,
    Tracer,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn checksum(v: u64) -> u64 {
    v.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5A5A_A5A5_0F0F_F0F0
}

#[derive(Trace)]
struct Node<'gc> {
    left: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    right: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// Counts, per test (index), drops of `Dropper`s and of zero-sized droppers; tests run in
/// parallel, so each has its own slot.
static DROPS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static ZST_DROPS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Drop glue that checks the value it drops (a use after free or a double drop shows as a bad
/// checksum or a poisoned value) and counts the drop.
struct Tracked {
    test: usize,
    value: u64,
    check: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert_eq!(
            self.check,
            checksum(self.value),
            "dropped a corrupted value"
        );
        self.check = 0;
        DROPS[self.test].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Trace)]
struct Dropper<'gc> {
    #[gc(skip)]
    tracked: Tracked,
    payload: Vec<u64>,
    child: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// A zero-sized object with drop glue.
struct ZstDrop<const T: usize>;

impl<const T: usize> Drop for ZstDrop<T> {
    fn drop(&mut self) {
        ZST_DROPS[T].fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: no GC pointers.
unsafe impl<const T: usize> Trace for ZstDrop<T> {
    const NEEDS_TRACE: bool = false;
    fn trace(&self, _: &mut Tracer) {}
}

#[derive(Trace)]
struct Unit;

/// A sized object above the small-object limit (32 KiB), with a GC pointer at each end.
#[derive(Trace)]
struct Big<'gc> {
    first: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    #[gc(skip)]
    words: [u64; 4500],
    last: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// Everything the root holds, one slot per kind (replaced at random, so the old one becomes
/// garbage).
#[derive(Trace)]
struct Root<'gc, const T: usize> {
    nodes: GcArray<'gc, Option<Gc<'gc, Node<'gc>>>>,
    droppers: GcArray<'gc, Option<Gc<'gc, Dropper<'gc>>>>,
    arrays: GcArray<'gc, Option<GcArray<'gc, Option<Gc<'gc, Node<'gc>>>>>>,
    strings: GcArray<'gc, Option<GcStr<'gc>>>,
    weaks: GcArray<'gc, Option<GcWeak<'gc, Node<'gc>>>>,
    /// The target of `weaks[i]` when it is kept reachable.
    weak_targets: GcArray<'gc, Option<Gc<'gc, Node<'gc>>>>,
    boxed: GcArray<'gc, NanBox<'gc, Dropper<'gc>>>,
    zsts: GcArray<'gc, Option<Gc<'gc, ZstDrop<T>>>>,
    units: GcArray<'gc, Option<Gc<'gc, Unit>>>,
    bigs: GcArray<'gc, Option<Gc<'gc, Big<'gc>>>>,
}

const SLOTS: usize = if cfg!(miri) { 4 } else { 32 };

fn string_for(v: u64) -> String {
    format!("s{v}-{}", "x".repeat((v % 300) as usize))
}

fn node<'gc>(mc: &Mutation<'gc>, depth: u32) -> Gc<'gc, Node<'gc>> {
    let n = Gc::new(
        mc,
        Node {
            left: GcCell::new(None),
            right: GcCell::new(None),
        },
    );
    if depth > 0 {
        n.left.set(mc, Some(node(mc, depth - 1)));
        n.right.set(mc, Some(node(mc, depth - 1)));
    }
    n
}

fn count(n: Option<Gc<'_, Node<'_>>>) -> u64 {
    n.map_or(0, |n| 1 + count(n.left.get()) + count(n.right.get()))
}

fn dropper<'gc>(mc: &Mutation<'gc>, test: usize, value: u64) -> Gc<'gc, Dropper<'gc>> {
    Gc::new(
        mc,
        Dropper {
            tracked: Tracked {
                test,
                value,
                check: checksum(value),
            },
            payload: vec![value; (value % 5) as usize],
            child: GcCell::new(Some(node(mc, 2))),
        },
    )
}

fn check_dropper(d: &Dropper<'_>) {
    assert_eq!(
        d.tracked.check,
        checksum(d.tracked.value),
        "corrupted dropper"
    );
    assert!(d.payload.iter().all(|&w| w == d.tracked.value));
    assert_eq!(count(d.child.get()), 7, "a dropper's subtree lost nodes");
}

/// Check every object the root holds.
fn check_root<const T: usize>(root: &Root<'_, T>) {
    for i in 0..SLOTS {
        if let Some(n) = root.nodes.get(i) {
            assert_eq!(count(Some(n)), 15, "a tree lost nodes");
        }
        if let Some(d) = root.droppers.get(i) {
            check_dropper(&d);
        }
        if let Some(a) = root.arrays.get(i) {
            for j in 0..a.len() {
                let n = a.get(j);
                assert_eq!(count(n), if j % 3 == 0 { 3 } else { 0 });
            }
        }
        if let Some(s) = root.strings.get(i) {
            let v: u64 = s.as_str()[1..].split('-').next().unwrap().parse().unwrap();
            assert_eq!(s.as_str(), string_for(v));
        }
        if let Some(d) = root.boxed.get(i).as_gc() {
            check_dropper(&d);
        }
        if let Some(b) = root.bigs.get(i) {
            assert_eq!(b.words[0], b.words[4499]);
            assert_eq!(checksum(b.words[0]), b.words[1]);
            assert_eq!(count(b.first.get()), 1);
            assert_eq!(count(b.last.get()), 3);
        }
    }
}

/// Replace slot `i` of kind `k` with a new object (the old one becomes garbage), or with
/// nothing.
fn replace<'gc, const T: usize>(
    mc: &Mutation<'gc>,
    root: &Root<'gc, T>,
    rng: &mut SmallRng,
    allocated: &mut u64,
    zsts: &mut u64,
) {
    let i = rng.gen_range(0..SLOTS);
    let v: u64 = rng.r#gen();
    let clear = rng.gen_bool(0.2);
    match rng.gen_range(0..9) {
        0 => root.nodes.set(mc, i, (!clear).then(|| node(mc, 3))),
        1 => {
            let d = (!clear).then(|| dropper(mc, T, v));
            *allocated += d.is_some() as u64;
            root.droppers.set(mc, i, d);
        }
        2 => {
            // Small, and now and then large (over 32 KiB of slots).
            let len = if rng.gen_bool(0.1) {
                5000
            } else {
                v as usize % 40
            };
            let a = GcArray::new(mc, len, None);
            for j in (0..len).step_by(3) {
                a.set(mc, j, Some(node(mc, 1)));
            }
            root.arrays.set(mc, i, (!clear).then_some(a));
        }
        3 => root
            .strings
            .set(mc, i, (!clear).then(|| GcStr::new(mc, &string_for(v)))),
        4 => {
            let target = node(mc, 0);
            root.weaks.set(mc, i, Some(target.downgrade(mc)));
            root.weak_targets.set(mc, i, (!clear).then_some(target));
        }
        5 => {
            let b = if clear {
                NanBox::number(v as f64)
            } else {
                *allocated += 1;
                NanBox::gc(dropper(mc, T, v))
            };
            root.boxed.set(mc, i, b);
        }
        6 => {
            let z = (!clear).then(|| Gc::new(mc, ZstDrop::<T>));
            *zsts += z.is_some() as u64;
            root.zsts.set(mc, i, z);
        }
        7 => {
            let u = Gc::new(mc, Unit);
            let u2 = Gc::new(mc, Unit);
            assert!(
                !Gc::ptr_eq(u, u2),
                "two zero-sized objects share an address"
            );
            root.units.set(mc, i, (!clear).then_some(u));
        }
        _ => {
            let w = v % 1000;
            let mut words = [w; 4500];
            words[1] = checksum(w);
            let b = Gc::new(
                mc,
                Big {
                    first: GcCell::new(Some(node(mc, 0))),
                    words,
                    last: GcCell::new(Some(node(mc, 1))),
                },
            );
            root.bigs.set(mc, i, (!clear).then_some(b));
        }
    }
}

/// Droppers (plain and NanBox-held) reachable from the root.
fn reachable_droppers<const T: usize>(root: &Root<'_, T>) -> u64 {
    (0..SLOTS)
        .map(|i| root.droppers.get(i).is_some() as u64 + root.boxed.get(i).as_gc().is_some() as u64)
        .sum()
}

fn run<const T: usize>(concurrent: bool, verify: bool, seed: u64) {
    let heap = Heap::new(
        Config::default()
            .concurrent(concurrent)
            .verify(verify)
            .gc_percent(Some(20)),
    )
    .unwrap();
    heap.debug_back_to_back(true);
    let mut m: Mutator<Rootable!['gc => Root<'gc, T>]> = heap.mutator(|mc| Root {
        nodes: GcArray::new(mc, SLOTS, None),
        droppers: GcArray::new(mc, SLOTS, None),
        arrays: GcArray::new(mc, SLOTS, None),
        strings: GcArray::new(mc, SLOTS, None),
        weaks: GcArray::new(mc, SLOTS, None),
        weak_targets: GcArray::new(mc, SLOTS, None),
        boxed: GcArray::new(mc, SLOTS, NanBox::number(0.0)),
        zsts: GcArray::new(mc, SLOTS, None),
        units: GcArray::new(mc, SLOTS, None),
        bigs: GcArray::new(mc, SLOTS, None),
    });
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut allocated, mut zsts) = (0u64, 0u64);
    let rounds = if cfg!(miri) { 3 } else { 40 };
    let steps = if cfg!(miri) { 30 } else { 200 };
    for _ in 0..rounds {
        m.mutate(|mc, root| {
            check_root(root);
            for _ in 0..steps {
                replace(mc, root, &mut rng, &mut allocated, &mut zsts);
            }
            check_root(root);
        });
        m.collect();
        let (held, held_zsts) = m.mutate(|mc, root| {
            check_root(root);
            // A weak reference is alive exactly when its target is reachable: after a full
            // collection, no weak reference to garbage survives.
            for i in 0..SLOTS {
                if let Some(w) = root.weaks.get(i) {
                    match (w.upgrade(mc), root.weak_targets.get(i)) {
                        (Some(t), Some(r)) => assert!(Gc::ptr_eq(t, r), "a weak reference changed"),
                        (None, None) => {}
                        (Some(_), None) => panic!("a weak reference to garbage survived"),
                        (None, Some(_)) => panic!("a weak reference to a reachable object died"),
                    }
                }
            }
            let zheld = (0..SLOTS).filter(|&i| root.zsts.get(i).is_some()).count() as u64;
            (reachable_droppers(root), zheld)
        });
        // Everything unreachable at the collection was dropped, exactly once; nothing reachable
        // was (a drop of a reachable one would make `dropped + held` exceed `allocated`).
        let dropped = DROPS[T].load(Ordering::Relaxed);
        assert_eq!(dropped + held, allocated, "droppers dropped ≠ unreachable");
        let zdropped = ZST_DROPS[T].load(Ordering::Relaxed);
        assert_eq!(zdropped + held_zsts, zsts, "zero-sized drops ≠ unreachable");
    }
    // Garbage is reclaimed: the live heap after a collection is bounded by what the root can
    // hold (per slot at most: a 15-node tree, two droppers with their 7-node subtrees, an array
    // of 5000 words with 1667 three-node trees, a string, a weak box and its target, two
    // zero-sized objects and a 36 KiB object: under 200 KiB), far below what was allocated.
    m.collect();
    let s = heap.stats();
    let per_slot = 200 * 1024;
    assert!(
        s.heap_marked < SLOTS * per_slot + 64 * 1024,
        "live heap {} after a collection exceeds what the root holds",
        s.heap_marked
    );
    assert!(s.bytes_freed > 0 && s.objects_freed > 0);
    // Reclaimed, not only unmarked: with the root's slots emptied, the pages still in spans
    // are about the root's own arrays (spans kept empty for their classes are not counted).
    m.mutate(|mc, root| {
        for i in 0..SLOTS {
            root.nodes.set(mc, i, None);
            root.droppers.set(mc, i, None);
            root.arrays.set(mc, i, None);
            root.strings.set(mc, i, None);
            root.weaks.set(mc, i, None);
            root.weak_targets.set(mc, i, None);
            root.boxed.set(mc, i, NanBox::number(0.0));
            root.zsts.set(mc, i, None);
            root.units.set(mc, i, None);
            root.bigs.set(mc, i, None);
        }
    });
    m.collect();
    let in_use = heap.stats().in_use_bytes;
    // (72 KiB measured: the root's arrays and a span or two.)
    assert!(
        in_use < 256 * 1024,
        "{in_use} bytes of spans in use with only the root's arrays live"
    );
    drop(m);
    drop(heap);
    // Teardown dropped the rest, once each.
    assert_eq!(DROPS[T].load(Ordering::Relaxed), allocated);
    assert_eq!(ZST_DROPS[T].load(Ordering::Relaxed), zsts);
}

#[test]
fn every_kind_concurrent_verify_on() {
    run::<0>(true, true, 1);
}

#[test]
fn every_kind_concurrent_verify_off() {
    run::<1>(true, false, 2);
}

#[test]
fn every_kind_stop_the_world_verify_on() {
    run::<2>(false, true, 3);
}

#[test]
fn every_kind_stop_the_world_verify_off() {
    run::<3>(false, false, 4);
}

type ListRoot = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>];

/// A two-pointer node takes a 16-byte slot: objects have no header.
#[test]
fn two_pointer_nodes_take_16_bytes() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<ListRoot> = heap.mutator(|_| GcCell::new(None));
    let n = if cfg!(miri) { 500 } else { 100_000 };
    m.mutate(|mc, root| {
        for _ in 0..n {
            let head = Gc::new(
                mc,
                Node {
                    left: GcCell::new(root.get()),
                    right: GcCell::new(None),
                },
            );
            root.set(mc, Some(head));
        }
    });
    m.collect();
    let marked = heap.stats().heap_marked;
    assert_eq!(std::mem::size_of::<Node<'_>>(), 16);
    // The nodes plus the mutator's root object (a few words).
    assert!(
        marked >= n * 16 && marked < n * 16 + 256,
        "{n} live two-pointer nodes take {marked} bytes"
    );
}

/// An expression that holds itself through `Box` (an interpreter's syntax tree), with a heap
/// number at each leaf.
#[derive(Trace)]
enum Expr<'gc> {
    Num(Gc<'gc, u64>),
    Add(Box<Expr<'gc>>, Box<Expr<'gc>>),
}

/// A heap torn down on a thread of its own (here its last handle is dropped by a cleanup of
/// another heap, on that heap's cleanup thread, where the teardown may not run) drops a deeply
/// nested boxed value there: that thread's stack is sized for drop glue that recurses once per
/// term, as the collector's threads are (on the default 2 MiB stack a debug build overflowed
/// with these 50 000 terms; 20 000 did not). Under ThreadSanitizer (`scripts/tsan.sh` sets
/// `TSAN_OPTIONS`), whose frames are far larger, 5 000.
#[test]
fn a_deep_value_is_dropped_by_a_teardown_on_a_thread_of_its_own() {
    let terms: u64 = if cfg!(miri) {
        50
    } else if std::env::var_os("TSAN_OPTIONS").is_some() {
        5_000
    } else {
        50_000
    };
    struct SetOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    /// Fields drop in order: the flag is set once the whole tree has been dropped.
    #[derive(Trace)]
    struct Deep<'gc> {
        _e: Expr<'gc>,
        #[gc(skip)]
        _done: SetOnDrop,
    }
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = Heap::new(Config::default()).unwrap();
    // No cycle of B traces the tree: only the teardown's drop goes through it.
    let b = Heap::new(Config::default().gc_percent(None)).unwrap();
    {
        let mut mb: Mutator<Rootable!['gc => ()]> = b.mutator(|_| ());
        let done = SetOnDrop(dropped.clone());
        mb.mutate(|mc, _| {
            let mut e = Expr::Num(Gc::new(mc, 0));
            for i in 1..=terms {
                e = Expr::Add(Box::new(e), Box::new(Expr::Num(Gc::new(mc, i))));
            }
            Gc::new(mc, Deep { _e: e, _done: done });
        });
    }
    let mut ma: Mutator<Rootable!['gc => ()]> = a.mutator(|_| ());
    ma.mutate(|mc, _| {
        Gc::new(mc, 1u64).add_cleanup(mc, move || drop(b));
    });
    ma.collect();
    a.wait_for_cleanups();
    let start = std::time::Instant::now();
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            start.elapsed().as_secs() < 20,
            "B's deep value never dropped"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A left-nested sum of `n + 1` numbers held in one heap object: tracing and dropping it
/// recurse once per term, on the collector's threads (marking, the verifier's walk, the
/// background sweep), whose stacks are sized for it: 5 000 terms overflowed a debug build's
/// 2 MiB collector stack. Both collectors, verify on and off; the mutator runs on a thread
/// with a large stack of its own (its sweeps drop such trees as any Rust code would). Several
/// trees and several mark workers, so that the stop-the-world collector shares the trees with
/// its helpers (their stacks are sized for it too): one grey object is never shared.
#[test]
fn a_deeply_nested_boxed_value_is_traced_and_dropped_by_the_collector() {
    const TERMS: u64 = if cfg!(miri) { 50 } else { 5_000 };
    // More than twice what a marker keeps before it offers half its grey objects to others.
    const TREES: usize = if cfg!(miri) { 2 } else { 24 };
    type R = Rootable!['gc => GcCell<'gc, Option<GcArray<'gc, Option<Gc<'gc, Expr<'gc>>>>>>];
    fn sum(e: &Expr<'_>) -> u64 {
        let (mut e, mut s) = (e, 0);
        loop {
            match e {
                Expr::Num(n) => return s + **n,
                Expr::Add(l, r) => {
                    s += sum(r);
                    e = l;
                }
            }
        }
    }
    let run = || {
        for (verify, concurrent) in [(false, true), (true, true), (false, false), (true, false)] {
            let what = format!("verify {verify}, concurrent {concurrent}");
            let heap = Heap::new(
                Config::default()
                    .verify(verify)
                    .concurrent(concurrent)
                    // Stop-the-world helpers, and three background workers.
                    .mark_workers(4)
                    .debug_cpus(12),
            )
            .unwrap();
            let mut m: Mutator<R> = heap.mutator(|_| GcCell::new(None));
            m.mutate(|mc, r| {
                let trees = GcArray::new(mc, TREES, None);
                for t in 0..TREES {
                    let mut e = Expr::Num(Gc::new(mc, 0));
                    for i in 1..=TERMS {
                        e = Expr::Add(Box::new(e), Box::new(Expr::Num(Gc::new(mc, i))));
                    }
                    trees.set(mc, t, Some(Gc::new(mc, e)));
                }
                r.set(mc, Some(trees));
            });
            // (The helper threads may still be starting in the first cycle.)
            let mut shared = 0;
            for _ in 0..4 {
                m.collect();
                shared += heap.stats().mark_shared_batches;
                let live = heap.stats().marked_objects;
                assert!(live > TREES as u64 * TERMS, "{what}: {live} objects marked");
            }
            // (A concurrent marker offers work to a helper only at the end of a slice of
            // marking, which these few objects may not reach.)
            assert!(
                shared > 0 || concurrent || cfg!(miri),
                "{what}: no grey work reached another mark worker"
            );
            let total = m.mutate(|_, r| {
                let trees = r.get().unwrap();
                (0..TREES).map(|t| sum(&trees.get(t).unwrap())).sum::<u64>()
            });
            assert_eq!(total, TREES as u64 * TERMS * (TERMS + 1) / 2, "{what}");
            m.mutate(|mc, r| r.set(mc, None));
            // The tree's garbage now: a cycle finds it dead and the collector's background
            // sweep (or this thread's next collection) drops it.
            m.collect();
            m.collect();
            assert!(
                heap.stats().marked_objects < 10,
                "{what}: {} objects left",
                heap.stats().marked_objects
            );
        }
    };
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}
