//! Sweeping and weak references under concurrent use, in both verify modes.
//!
//! Verify mode clears weak references and sweeps inside the STW 2 pause, so the protocol of a
//! normal (non-verify) heap — weak references cleared with the world running, spans swept by
//! the background sweeper, by allocating mutators and by `collect`/`finish_sweep` callers on
//! other threads — is only exercised with it off. Every test here runs in both modes.
//!
//! The workloads are built to widen the windows: several mutators allocating one size class
//! (so spans are emptied, freed and reused quickly), a low GOGC (many cycles), threads calling
//! `Heap::collect` and `Heap::finish_sweep` in a loop, and a thread spinning on the CPU (so a
//! thread is preempted in the middle of a protocol step). Every object carries a checksum that
//! every read checks: an object freed while reachable and reused reads back wrong.
//!
//! `GCCORE_RACE_SECS` sets the seconds each test runs (default 2).

#![allow(clippy::type_complexity)] // `Rootable![...]` expands to a long type

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gc_core::{Config, Gc, GcCell, GcVec, GcWeak, Heap, Mutation, Mutator, Rootable, Trace};

mod common;
use common::{cpu_hog, finish_sweep_loop, hold_before_weak_clearing, join_then};

fn run_for() -> Duration {
    let secs: f64 = std::env::var("GCCORE_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(miri) { 0.05 } else { 2.0 });
    Duration::from_secs_f64(secs)
}

fn checksum(v: u64) -> u64 {
    v.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A_F0F0_0F0F
}

/// Background threads that widen race windows: one spinning on the CPU, one calling
/// `finish_sweep` in a loop, one calling `collect` every few milliseconds. Stopped on drop.
struct Disturbers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Disturbers {
    fn start(heap: &Heap) -> Disturbers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        threads.push(cpu_hog(stop.clone()));
        threads.push(finish_sweep_loop(heap, stop.clone()));
        {
            let (stop, heap) = (stop.clone(), heap.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(3));
                    heap.collect();
                }
            }));
        }
        Disturbers { stop, threads }
    }
}

impl Drop for Disturbers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            // A panic in a disturber is reported by the join of the test's own threads.
            let _ = t.join();
        }
    }
}

fn heap(verify: bool, span: bool) -> Heap {
    Heap::new(
        Config::default()
            .verify(verify)
            .span_marking(span)
            .gc_percent(Some(20))
            // A background mark helper beside the collector thread, as on an 8-CPU machine.
            .debug_cpus(8),
    )
    .unwrap()
}

// ---- One size class: spans emptied, freed and reused while mutators allocate.

/// All objects of the list workload have this one type, hence one size class.
#[derive(Trace)]
struct Link<'gc> {
    value: u64,
    check: u64,
    next: GcCell<'gc, Option<Gc<'gc, Link<'gc>>>>,
}

#[derive(Trace)]
struct ListRoot<'gc> {
    head: GcCell<'gc, Option<Gc<'gc, Link<'gc>>>>,
}

fn link<'gc>(
    mc: &Mutation<'gc>,
    value: u64,
    next: Option<Gc<'gc, Link<'gc>>>,
) -> Gc<'gc, Link<'gc>> {
    Gc::new(
        mc,
        Link {
            value,
            check: checksum(value),
            next: GcCell::new(next),
        },
    )
}

/// Several mutators rebuild lists of one size class, one garbage object per element, leaving
/// their scope whenever a pause waits; the old list is read (checksums) while the new one is
/// built. A span that ends up in two caches, or a cache allocating into a freed span, hands
/// out a slot that a live object occupies: its checksum then reads wrong.
fn lists_of_one_size_class(verify: bool, span: bool) {
    // Under Miri a third of a 24-byte span (1 024 slots) per list: spans turn over little
    // there (a list of 1 000 ran for over 19 minutes); the native and TSan runs cover it.
    const LEN: u64 = if cfg!(miri) { 300 } else { 20_000 };
    let heap = heap(verify, span);
    let disturbers = Disturbers::start(&heap);
    let deadline = Instant::now() + run_for();
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let heap = heap.clone();
            std::thread::spawn(move || {
                let mut m: Mutator<Rootable!['gc => ListRoot<'gc>]> = heap.mutator(|_| ListRoot {
                    head: GcCell::new(None),
                });
                let mut rounds = 0u64;
                while rounds < 2 || Instant::now() < deadline {
                    rounds += 1;
                    let base = (t << 48) | (rounds << 24);
                    // Build the new list over several scopes; the old one stays reachable
                    // from a second cell until the new one is complete.
                    let mut built = 0u64;
                    let mut new_head_value = None;
                    m.mutate(|mc, root| {
                        // Stash the old list in the first link of the new one's chain end.
                        let old = root.head.get();
                        let anchor = link(mc, base, old);
                        root.head.set(mc, Some(anchor));
                    });
                    while built < LEN {
                        m.mutate(|mc, root| {
                            let anchor = root.head.get().unwrap();
                            // The old list hangs off the anchor; the new list grows after it.
                            while built < LEN {
                                let _garbage = link(mc, 0, None);
                                let v = base + 1 + built;
                                let n = link(mc, v, anchor.next.get());
                                anchor.next.set(mc, Some(n));
                                built += 1;
                                if built.is_multiple_of(64) {
                                    // Read a little of what is reachable.
                                    let mut cur = anchor.next.get();
                                    for _ in 0..32 {
                                        let Some(l) = cur else { break };
                                        assert_eq!(l.check, checksum(l.value), "corrupted link");
                                        cur = l.next.get();
                                    }
                                }
                                if mc.should_yield() {
                                    break;
                                }
                            }
                        });
                    }
                    // Check the whole structure, then cut everything before this round's
                    // links (the previous rounds' lists become garbage).
                    m.mutate(|mc, root| {
                        let anchor = root.head.get().unwrap();
                        let mut cur = anchor.next.get();
                        let mut n = 0u64;
                        let mut last = None;
                        while let Some(l) = cur {
                            assert_eq!(l.check, checksum(l.value), "corrupted link");
                            if l.value >> 24 != base >> 24 {
                                break;
                            }
                            n += 1;
                            last = Some(l);
                            cur = l.next.get();
                        }
                        assert_eq!(n, LEN, "links lost");
                        last.unwrap().next.set(mc, None);
                        new_head_value = Some(anchor.value);
                    });
                    assert_eq!(new_head_value, Some(base));
                }
                rounds
            })
        })
        .collect();
    let rounds: u64 = join_then(threads, || drop(disturbers)).into_iter().sum();
    heap.collect();
    let s = heap.stats();
    eprintln!("lists_of_one_size_class(verify={verify}): {rounds} rounds, {s:?}");
    assert!(s.gc_cycles >= 3, "too few cycles: {s:?}");
    // Every round leaves 2 × LEN objects of garbage per mutator.
    assert!(
        s.objects_freed >= rounds * LEN,
        "garbage not reclaimed: {s:?}"
    );
}

#[test]
fn lists_of_one_size_class_verify_off() {
    lists_of_one_size_class(false, false);
}

#[test]
fn lists_of_one_size_class_verify_on() {
    lists_of_one_size_class(true, false);
}

#[test]
fn lists_of_one_size_class_span_marking_verify_off() {
    lists_of_one_size_class(false, true);
}

#[test]
fn lists_of_one_size_class_span_marking_verify_on() {
    lists_of_one_size_class(true, true);
}

// ---- Mutators that come and go while the weak-clearing window is held open.

/// Short-lived mutators, each filling part of a span of the list workload's one size class and
/// dropping out (its cache's spans go back to the class's lists, also inside the weak-clearing
/// window, which a thread keeps holding open for a few milliseconds at a time), beside
/// long-lived mutators whose lists are checked link by link. A span handed to a dropped
/// mutator's successor while still cached or listed, or pushed to a partial list the window
/// then loses to its sweep, hands out a slot a live link occupies: its checksum reads wrong,
/// or (verify mode) the verifier reports it.
fn mutators_come_and_go_across_the_window(verify: bool) {
    const LEN: u64 = if cfg!(miri) { 50 } else { 600 };
    let heap = heap(verify, false);
    let disturbers = Disturbers::start(&heap);
    let stop = Arc::new(AtomicBool::new(false));
    let holder = {
        let (heap, stop) = (heap.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = 0u64;
            while !stop.load(Ordering::Relaxed) {
                heap.debug_hold_weak_clearing(true);
                heap.debug_start_cycle();
                std::thread::sleep(Duration::from_millis(3));
                held += heap.debug_weaks_pending() as u64;
                heap.debug_hold_weak_clearing(false);
                std::thread::sleep(Duration::from_millis(1));
            }
            held
        })
    };
    let deadline = Instant::now() + run_for();
    // Short-lived mutators dropped while the window was open (seen open just before the drop).
    let drops_in_window = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let (heap, drops_in_window) = (heap.clone(), drops_in_window.clone());
            std::thread::spawn(move || {
                let mut kept: Mutator<Rootable!['gc => ListRoot<'gc>]> =
                    heap.mutator(|_| ListRoot {
                        head: GcCell::new(None),
                    });
                let mut rounds = 0u64;
                while rounds < 4 || Instant::now() < deadline {
                    rounds += 1;
                    let base = (t << 48) | (rounds << 24);
                    // A mutator for one round: a list in its own root, checked, then dropped
                    // with its cache's spans part full.
                    let mut short_lived: Mutator<Rootable!['gc => ListRoot<'gc>]> =
                        heap.mutator(|_| ListRoot {
                            head: GcCell::new(None),
                        });
                    short_lived.mutate(|mc, root| {
                        for k in 0..LEN / 3 {
                            let n = link(mc, base + k, root.head.get());
                            root.head.set(mc, Some(n));
                        }
                    });
                    short_lived.mutate(|_, root| {
                        let mut cur = root.head.get();
                        while let Some(l) = cur {
                            assert_eq!(l.check, checksum(l.value), "corrupted link");
                            cur = l.next.get();
                        }
                    });
                    let in_window = heap.debug_weaks_pending();
                    drop(short_lived);
                    if in_window {
                        drops_in_window.fetch_add(1, Ordering::Relaxed);
                    }
                    // The long-lived list: replaced every round, the old one read first.
                    kept.mutate(|mc, root| {
                        let mut cur = root.head.get();
                        let mut n = 0;
                        while let Some(l) = cur {
                            assert_eq!(l.check, checksum(l.value), "corrupted link");
                            n += 1;
                            cur = l.next.get();
                        }
                        assert!(rounds == 1 || n == LEN, "links lost: {n}");
                        let mut head = None;
                        for k in 0..LEN {
                            head = Some(link(mc, base | (1 << 20) | k, head));
                        }
                        root.head.set(mc, head);
                    });
                }
                rounds
            })
        })
        .collect();
    let rounds: u64 = join_then(threads, || {
        stop.store(true, Ordering::Relaxed);
        drop(disturbers);
    })
    .into_iter()
    .sum();
    let held = holder.join().unwrap();
    heap.collect();
    heap.finish_sweep();
    let s = heap.stats();
    eprintln!(
        "mutators_come_and_go(verify={verify}): {rounds} rounds, {held} windows held, {} drops in \
         a window, {s:?}",
        drops_in_window.load(Ordering::Relaxed)
    );
    if !verify {
        // (Verify mode clears weak references inside the pause: there is no window to hold.)
        assert!(held >= 1, "the window was never held open");
        assert!(
            drops_in_window.load(Ordering::Relaxed) >= 1 || cfg!(miri),
            "no short-lived mutator was dropped while the window was open"
        );
    }
    assert!(s.gc_cycles >= 3, "too few cycles: {s:?}");
    // Each round's short-lived list and the replaced long-lived list are garbage.
    assert!(
        s.objects_freed >= rounds * LEN,
        "garbage not reclaimed: {s:?}"
    );
}

#[test]
fn mutators_come_and_go_across_the_window_verify_off() {
    mutators_come_and_go_across_the_window(false);
}

#[test]
fn mutators_come_and_go_across_the_window_verify_on() {
    mutators_come_and_go_across_the_window(true);
}

// ---- Weak references: upgrades race the clearing; dead targets must be cleared.

/// A weak reference's target: a Rust vector read through the upgraded handle (a stale handle
/// to a reused slot reads a wild vector).
#[derive(Trace)]
struct Target {
    id: u64,
    #[gc(skip)]
    data: Vec<u64>,
}

fn target<'gc>(mc: &Mutation<'gc>, id: u64) -> Gc<'gc, Target> {
    Gc::new(
        mc,
        Target {
            id,
            data: (0..4).map(|k| checksum(id.wrapping_add(k))).collect(),
        },
    )
}

fn check_target(t: &Target, id: u64) {
    assert_eq!(t.id, id, "a weak reference upgraded to another object");
    assert_eq!(t.data.len(), 4, "corrupted target");
    for (k, &d) in t.data.iter().enumerate() {
        assert_eq!(d, checksum(id.wrapping_add(k as u64)), "corrupted target");
    }
}

#[derive(Trace)]
struct WeakRoot<'gc> {
    strong: GcVec<'gc, Option<Gc<'gc, Target>>>,
    weak: GcVec<'gc, Option<GcWeak<'gc, Target>>>,
}

type WeakM = Rootable!['gc => WeakRoot<'gc>];

/// Mutators make weak references to objects of which they keep a third, upgrade older ones
/// all the time (checking what they get) and keep some of what they upgrade; every few rounds
/// one makes weak references to pure garbage, collects, and checks that every one of those is
/// dead. With a thread in `finish_sweep` all the time, sweeping that starts before the dead
/// weak references are cleared makes them look alive (not cleared, then upgraded to reused
/// memory); an upgrade racing the clearing can hand out a target that is then freed.
fn weak_references(verify: bool, span: bool) {
    let heap = heap(verify, span);
    let disturbers = Disturbers::start(&heap);
    let deadline = Instant::now() + run_for();
    let survived = Arc::new(AtomicU64::new(0));
    let checked = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (heap, survived, checked) = (heap.clone(), survived.clone(), checked.clone());
            std::thread::spawn(move || {
                let mut m: Mutator<WeakM> = heap.mutator(|mc| WeakRoot {
                    strong: GcVec::new(mc),
                    weak: GcVec::new(mc),
                });
                // The id each weak reference was made for.
                let mut ids: Vec<u64> = Vec::new();
                let mut next = t << 40;
                let mut rounds = 0u64;
                // At least one round that checks the weak references to garbage (every 8th).
                while rounds < 8 || Instant::now() < deadline {
                    rounds += 1;
                    if ids.len() > 4000 {
                        // Start over (the old vectors and most targets become garbage).
                        m.mutate(|mc, r| {
                            r.strong.truncate(mc, 0);
                            r.weak.truncate(mc, 0);
                        });
                        ids.clear();
                    }
                    m.mutate(|mc, r| {
                        for _ in 0..100 {
                            let o = target(mc, next);
                            r.weak.push(mc, Some(o.downgrade(mc)));
                            ids.push(next);
                            if next % 3 == 0 {
                                r.strong.push(mc, Some(o));
                            }
                            next += 1;
                            let k = (next.wrapping_mul(0x9E37_79B9) >> 7) as usize % ids.len();
                            if let Some(o) = r.weak.get(k).flatten().and_then(|w| w.upgrade(mc)) {
                                check_target(&o, ids[k]);
                                if k.is_multiple_of(5) {
                                    r.strong.push(mc, Some(o));
                                }
                            }
                            if mc.should_yield() {
                                break;
                            }
                        }
                    });
                    if rounds.is_multiple_of(8) {
                        // Weak references to garbage only: after a full collection that
                        // started after the targets became unreachable, all must be dead.
                        let mut fresh = m.mutate(|mc, r| {
                            for _ in 0..50 {
                                let o = target(mc, u64::MAX);
                                r.weak.push(mc, Some(o.downgrade(mc)));
                                ids.push(u64::MAX);
                            }
                            r.weak.len() - 50..r.weak.len()
                        });
                        m.collect();
                        let alive = m.mutate(|mc, r| {
                            fresh
                                .by_ref()
                                .filter(|&k| {
                                    let w = r.weak.get(k).flatten().unwrap();
                                    w.upgrade(mc).is_some() || !w.is_dead()
                                })
                                .count()
                        });
                        survived.fetch_add(alive as u64, Ordering::Relaxed);
                        checked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                rounds
            })
        })
        .collect();
    let rounds: u64 = join_then(threads, || drop(disturbers)).into_iter().sum();
    heap.collect();
    let s = heap.stats();
    eprintln!("weak_references(verify={verify}): {rounds} rounds, {s:?}");
    assert_eq!(
        survived.load(Ordering::Relaxed),
        0,
        "weak references to garbage survived the collection after it became garbage"
    );
    assert!(
        checked.load(Ordering::Relaxed) > 0,
        "no round checked the weak references to garbage"
    );
    assert!(s.objects_freed > 0, "garbage not reclaimed: {s:?}");
}

#[test]
fn weak_references_verify_off() {
    weak_references(false, false);
}

#[test]
fn weak_references_verify_on() {
    weak_references(true, false);
}

#[test]
fn weak_references_span_marking_verify_off() {
    weak_references(false, true);
}

#[test]
fn weak_references_span_marking_verify_on() {
    weak_references(true, true);
}

// ---- The window held open by a hook (deterministic).

/// Between mark termination and the end of weak clearing nothing may be swept: hold the
/// collector in that window and check that a `finish_sweep` call from another thread waits for
/// it (rather than sweeping, which would make dead targets look alive), that nothing is freed
/// meanwhile, and that upgrades see exactly the survivors; then that the window's end clears the
/// dead weak references and frees their targets. (Verify mode clears weak references inside the
/// pause, so there is no window to hold there: this one runs with it off.)
#[test]
fn finish_sweep_waits_for_the_weak_clearing_window() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<WeakM> = heap.mutator(|mc| WeakRoot {
        strong: GcVec::new(mc),
        weak: GcVec::new(mc),
    });
    m.mutate(|mc, r| {
        for id in 0..100 {
            let o = target(mc, id);
            r.weak.push(mc, Some(o.downgrade(mc)));
            if id % 2 == 0 {
                r.strong.push(mc, Some(o));
            }
        }
    });
    hold_before_weak_clearing(&heap);
    let freed0 = heap.stats().objects_freed;
    let (done, sweeper) = common::finish_sweep_on_a_thread(&heap);
    std::thread::sleep(Duration::from_millis(100));
    let returned_in_window = done.load(Ordering::SeqCst);
    let freed_in_window = heap.stats().objects_freed - freed0;
    let alive: Vec<bool> = m.mutate(|mc, r| {
        (0..100)
            .map(|k| {
                let o = r.weak.get(k).flatten().unwrap().upgrade(mc);
                if let Some(o) = o {
                    check_target(&o, k as u64);
                }
                o.is_some()
            })
            .collect()
    });
    let still_held = heap.debug_weaks_pending();
    // Release before asserting (a failed assertion would otherwise leave the collector held).
    heap.debug_hold_weak_clearing(false);
    sweeper.join().unwrap();
    assert!(still_held, "the window closed while held");
    assert!(
        !returned_in_window,
        "finish_sweep returned inside the window"
    );
    assert_eq!(freed_in_window, 0, "something was swept inside the window");
    assert_eq!(alive, (0..100).map(|k| k % 2 == 0).collect::<Vec<_>>());
    // The window's end cleared the dead weak references; the sweep freed their targets.
    heap.finish_sweep();
    let dead: Vec<bool> = m.mutate(|_, r| {
        (0..100)
            .map(|k| r.weak.get(k).flatten().unwrap().is_dead())
            .collect()
    });
    assert_eq!(dead, (0..100).map(|k| k % 2 == 1).collect::<Vec<_>>());
    assert!(
        heap.stats().objects_freed - freed0 >= 50,
        "the dead targets were not freed"
    );
}
