//! Pacer behaviour on real heaps: the heap stays near its goal in steady state (also when the
//! marker holds the only grey work, one deep structure, so that assists must wait for it), a
//! scope that never polls holds the cycle up and the wait shows in the metrics, an assist
//! holds its mutator past 1.1 × the goal even at a stale assist ratio, the memory
//! limit bounds mapped memory, a limit below the live heap degrades throughput instead of
//! livelocking, and the scavenger gives memory back.
//!
//! These allocate gigabytes, so they run optimised: `scripts/test.sh` runs
//! `cargo test --release -p gc-core --test pacing`; in a debug build they are ignored. The tests
//! take a lock so that they run one at a time (they read the process's CPU time and RSS).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gc_core::gctrace::CycleRecord;
use gc_core::pacer::MAX_OVERSHOOT;
use gc_core::{Config, Gc, GcArray, GcBytes, GcCell, Heap, Mutation, Mutator, Rootable, Trace};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod common;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

#[derive(Trace)]
struct Node<'gc> {
    next: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    a: u64,
    b: u64,
}

/// Nodes per chain: a slot of the live set is a chain of this many nodes.
const CHAIN: usize = 32;

type R = Rootable!['gc => GcArray<'gc, Option<Gc<'gc, Node<'gc>>>>];

/// Heap bytes of one node: three words (objects have no header), a 24-byte size class.
const NODE_BYTES: usize = 24;

/// A mutator whose root holds `live` bytes (about) of node chains.
fn live_set(heap: &Heap, live: usize) -> (Mutator<R>, usize) {
    assert_eq!(std::mem::size_of::<Node<'static>>(), NODE_BYTES);
    let slots = live / (NODE_BYTES * CHAIN);
    let mut m: Mutator<R> = heap.mutator(|mc| GcArray::new(mc, slots, None));
    for i in (0..slots).step_by(1024) {
        m.mutate(|mc, arr| {
            for j in i..(i + 1024).min(slots) {
                arr.set(mc, j, Some(chain(mc, j as u64)));
            }
        });
    }
    (m, slots)
}

fn chain<'gc>(mc: &gc_core::Mutation<'gc>, seed: u64) -> Gc<'gc, Node<'gc>> {
    try_chain(mc, seed).unwrap_or_else(|e| panic!("{e}"))
}

/// Replace random chains until `bytes` have been allocated, in scopes of 256 replacements,
/// calling `each` between scopes. Each replacement also reads `reads` random chains: a program
/// that does nothing but allocate makes the GC take half the CPU, where the CPU limiter (not
/// the pacer) decides.
fn churn(
    m: &mut Mutator<R>,
    slots: usize,
    bytes: usize,
    reads: usize,
    rng: &mut SmallRng,
    mut each: impl FnMut(),
) {
    let per_chain = NODE_BYTES * CHAIN;
    let mut done = 0;
    let mut sum = 0u64;
    while done < bytes {
        m.mutate(|mc, arr| {
            for _ in 0..256 {
                let i = rng.gen_range(0..slots);
                arr.set(mc, i, Some(chain(mc, i as u64)));
                for _ in 0..reads {
                    let mut n = arr.get(rng.gen_range(0..slots));
                    while let Some(node) = n {
                        sum = sum.wrapping_add(node.b);
                        n = node.next.get();
                    }
                }
            }
        });
        std::hint::black_box(sum);
        done += 256 * per_chain;
        each();
    }
}

/// Sum of the chains' `a` fields: every chain must still be intact (a freed node would read
/// as poison in verify mode or as garbage).
fn check_intact(m: &mut Mutator<R>) {
    check_intact_every(m, 1);
}

/// [`check_intact`] for every `step`th chain (those [`drop_three_quarters`] keeps, with 4).
fn check_intact_every(m: &mut Mutator<R>, step: usize) {
    m.mutate(|_, arr| {
        for i in (0..arr.len()).step_by(step) {
            let mut n = arr.get(i);
            let mut len = 0;
            while let Some(node) = n {
                assert_eq!(node.a, i as u64, "chain {i} corrupted");
                n = node.next.get();
                len += 1;
            }
            assert_eq!(len, CHAIN, "chain {i} lost nodes");
        }
    });
}

/// Drop every chain but every fourth: the heap keeps a quarter of its objects, spread over all
/// of its spans.
fn drop_three_quarters(m: &mut Mutator<R>, slots: usize) {
    m.mutate(|mc, arr| {
        for i in 0..slots {
            if i % 4 != 0 {
                arr.set(mc, i, None);
            }
        }
    });
}

/// The records as gctrace lines, with whether the CPU limiter was on.
fn trace(recs: &[CycleRecord]) -> String {
    recs.iter()
        .map(|r| {
            format!(
                "{}, {} MB scanned, {} MB extended goal{}\n",
                r.gctrace_line(),
                (r.heap_scan + r.stack_scan + r.globals_scan) >> 20,
                r.heap_goal_extended >> 20,
                if r.limiter_on { " [limiter on]" } else { "" }
            )
        })
        .collect()
}

fn automatic(records: &[CycleRecord]) -> Vec<&CycleRecord> {
    records.iter().filter(|r| !r.forced).collect()
}

#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn steady_state_heap_at_mark_termination_stays_within_5_percent_of_the_goal() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for gogc in [50u32, 100, 200] {
        let heap = Heap::new(Config::default().gc_percent(Some(gogc))).unwrap();
        let (mut m, slots) = live_set(&heap, 16 * MIB);
        let mut rng = SmallRng::seed_from_u64(gogc as u64);
        // Enough allocation for 20-odd cycles at this GOGC.
        let bytes = 20 * MIB * gogc as usize / 100 * 22;
        churn(&mut m, slots, bytes, 8, &mut rng, || {});
        check_intact(&mut m);
        let recs = heap.take_cycle_records();
        let auto = automatic(&recs);
        assert!(auto.len() >= 12, "GOGC={gogc}: only {} cycles", auto.len());
        // Warm-up: the live set was built (the heap grew) during the first cycles.
        for r in &auto[5..] {
            assert!(
                r.heap_end as f64 <= 1.05 * r.heap_goal as f64,
                "GOGC={gogc}: cycle {} ended at {} MiB, goal {} MiB\n{}",
                r.cycle,
                r.heap_end >> 20,
                r.heap_goal >> 20,
                trace(&recs)
            );
            // The goal follows GOGC: marked × (1 + GOGC/100) from the previous cycle.
            assert!(r.heap_goal >= 4 * MIB * gogc as usize / 100);
        }
        let worst = auto[5..]
            .iter()
            .map(|r| r.heap_end as f64 / r.heap_goal as f64)
            .fold(0.0, f64::max);
        eprintln!(
            "GOGC={gogc}: {} cycles, worst heap ÷ goal {worst:.3}",
            auto.len()
        );
        // Garbage is reclaimed: the live heap found stays near the live set (allocate-black
        // bytes of the cycle included), not near what was allocated.
        let last = auto.last().unwrap();
        assert!(
            last.heap_marked < 16 * MIB * 3,
            "GOGC={gogc}: {} MiB marked",
            last.heap_marked >> 20
        );
        assert!(heap.stats().objects_freed > 0);
    }
}

#[derive(Trace)]
struct Tree<'gc> {
    left: Option<Gc<'gc, Tree<'gc>>>,
    right: Option<Gc<'gc, Tree<'gc>>>,
}

fn tree<'gc>(mc: &Mutation<'gc>, depth: u32) -> Gc<'gc, Tree<'gc>> {
    let (left, right) = if depth == 0 {
        (None, None)
    } else {
        (Some(tree(mc, depth - 1)), Some(tree(mc, depth - 1)))
    };
    Gc::new(mc, Tree { left, right })
}

fn count(t: Option<Gc<'_, Tree<'_>>>) -> u64 {
    t.map_or(0, |t| 1 + count(t.left) + count(t.right))
}

type TreeRoot = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Tree<'gc>>>>];
type TreeStack = Rootable!['gc => Gc<'gc, Tree<'gc>>];

/// Binary-trees shape: one long-lived tree, and short-lived trees built one per step. Marking
/// a tree is depth-first, so the background worker holds nearly all grey work on its own stack
/// and assists find little to take: they must wait for its credit (and get work offered), or
/// the heap runs far past its goal (it reached 1.5× the goal here before assists waited).
/// Scopes poll `should_yield` after every tree, as `docs/api.md` asks.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn deep_structures_hold_the_goal_with_waiting_assists() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    deep_structures(&[50, 100, 200]);
}

/// The same with a thread spinning on a CPU (a busy machine): the collector thread loses its
/// CPU for a scheduler tick or more in the middle of marking, which must not let the mutator
/// allocate past the goal. Before assists revised the assist ratio themselves (it went stale
/// while the fractional worker slept or was descheduled) and waited through the termination
/// attempt (they gave up as soon as the collector stopped draining), cycles ended 1.07–1.3×
/// past the goal here in most runs. GOGC=50 is left out: with one of two CPUs taken, the GC CPU
/// limiter is on in most of its cycles (24 of 31 seen), which leaves too few paced ones.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn deep_structures_hold_the_goal_on_a_busy_machine() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stop = Arc::new(AtomicBool::new(false));
    let hog = common::cpu_hog(stop.clone());
    let guard = StopOnDrop(stop);
    deep_structures(&[100, 200]);
    drop(guard);
    hog.join().unwrap();
}

/// Sets the flag when dropped (also when a test panics), so that a helper thread ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn deep_structures(gogcs: &[u32]) {
    for &gogc in gogcs {
        let heap = Heap::new(Config::default().gc_percent(Some(gogc))).unwrap();
        let recs = deep_structures_run(&heap, gogc);
        let auto = automatic(&recs);
        assert!(auto.len() >= 12, "GOGC={gogc}: only {} cycles", auto.len());
        let steady = &auto[5..];
        let ratio = |r: &&CycleRecord| r.heap_end as f64 / r.heap_goal as f64;
        // A cycle in which the GC CPU limiter was on ran part of its mark phase without
        // assists, by design (GC CPU is capped at 50%, memory gives up to the bound below). At
        // GOGC=50 this workload's GC CPU is 35–40%, so the limiter is on in a third of the
        // cycles on a quiet machine and in half of them with another process on a CPU (pauses
        // count at wall time × CPUs); before assists held their mutators past the bound with
        // the limiter on too, such cycles ended up to 1.54× their goal here.
        let (limited, paced): (Vec<&CycleRecord>, Vec<&CycleRecord>) =
            steady.iter().partition(|r| r.limiter_on);
        // With two processes spinning beside it, the limiter was on in 24 of 31 cycles at
        // GOGC=50; at GOGC=100 and 200 it has not been seen on here.
        let min_paced = if gogc >= 100 { steady.len() / 2 } else { 5 };
        // Every cycle must end where the pacer said it may: within 1.1 × its goal, or within
        // 1.1 × the goal it extended to when its scan work passed the pacer's expectation (Go's
        // rule, taken as a growing heap); the paced ones near their goal. Cycles with the
        // limiter on reach the bound, and a stop releases a held mutator for up to a tree
        // (`with_the_limiter_on_and_no_memory_limit_cycles_keep_their_bound`).
        // A paced cycle's mutator, held by its assist at the bound, is let go when the
        // termination stop is requested and allocates on to its next poll, up to a tree of
        // depth 13 (seen once with the CPU hog: 1.101 × the goal, 40 KiB past the bound).
        let mut past_bound = past_their_bound(&paced, TREE_13_BYTES);
        past_bound.extend(past_their_bound(&limited, LIMITED_SLACK));
        let extended = paced
            .iter()
            .filter(|r| r.heap_goal_extended > r.heap_goal)
            .count();
        let mut ratios: Vec<f64> = paced.iter().map(ratio).collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
        let worst = ratios.last().copied().unwrap_or(f64::NAN);
        let worst_limited = limited.iter().map(ratio).fold(0.0, f64::max);
        eprintln!(
            "GOGC={gogc}: {} cycles, paced: heap ÷ goal median {median:.3}, worst {worst:.3}, \
             {extended} with the goal extended; {} with the limiter on: worst {worst_limited:.3}; \
             {} assist waits",
            auto.len(),
            limited.len(),
            heap.stats().assist_parks
        );
        assert!(
            median <= 1.05
                && past_bound.is_empty()
                && extended <= paced.len() / 4
                && paced.len() >= min_paced,
            "GOGC={gogc}: paced cycles: heap ÷ goal median {median:.3}, worst {worst:.3}, \
             {extended} of {} with the goal extended; {worst_limited:.3} in {} cycles with the \
             limiter on; {} cycles past their bound\n{}",
            paced.len(),
            limited.len(),
            past_bound.len(),
            trace(&recs)
        );
    }
}

/// Collect, and check that less than `max` bytes are live afterwards (`what`: the test's
/// setting, for the message).
fn assert_collects_to(heap: &Heap, max: usize, what: &str) {
    heap.collect();
    let live = heap.stats().heap_live;
    assert!(
        live < max,
        "{what}: {} MiB live after a collection",
        live / MIB
    );
}

/// The furthest the pacer lets cycle `r` take the heap: 1.1 × its goal, or the goal it extended
/// to.
fn bound(r: &CycleRecord) -> f64 {
    r.heap_goal_extended.max(r.heap_goal) as f64 * MAX_OVERSHOOT
}

/// The cycles of `recs` that ended more than `slack` bytes past their [`bound`].
fn past_their_bound<'r>(recs: &[&'r CycleRecord], slack: usize) -> Vec<&'r CycleRecord> {
    recs.iter()
        .copied()
        .filter(|r| r.heap_end as f64 > bound(r) + slack as f64)
        .collect()
}

/// The cycles of `recs` whose heap grew past their [`bound`] during the cycle by more than
/// `slack` bytes: a cycle that starts past its bound (its collector thread kept off the CPU
/// between the trigger and the start, while a scope that began before the heap reached the
/// bound runs on: the next scope's entry waits for the start, see
/// [`a_late_cycle_start_holds_mutators_at_their_bound`]) is held from its start, so it counts
/// only if it grew by more than `slack` from there.
fn grew_past_their_bound<'r>(recs: &[&'r CycleRecord], slack: usize) -> Vec<&'r CycleRecord> {
    recs.iter()
        .copied()
        .filter(|r| r.heap_end as f64 > bound(r).max(r.heap_start as f64) + slack as f64)
        .collect()
}

/// Lets go of [`Heap::debug_hold_cycle_start`] when dropped.
struct HeldStart<'h>(&'h Heap);

/// Wait (at most 10 s) until `heap` has completed more than `cycles` cycles (`what`: the cycle
/// waited for, in the failure message).
fn wait_for_a_cycle_after(heap: &Heap, cycles: u64, what: &str) {
    common::within(10, what, {
        let heap = heap.clone();
        move || {
            while heap.stats().gc_cycles == cycles {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
}

impl Drop for HeldStart<'_> {
    fn drop(&mut self) {
        self.0.debug_hold_cycle_start(false);
    }
}

/// Hold the start of the next cycle and churn (scopes of `scope_bytes`) until the heap is past
/// the bound of the goal in force, the next-cycle goal of the last cycle record (a late start
/// raises its record's goal to just above where it began, as Go's does); the start stays held
/// while the returned guard lives.
fn churn_past_the_bound_with_the_start_held<'h>(
    heap: &'h Heap,
    m: &mut Mutator<R>,
    slots: usize,
    scope_bytes: usize,
    rng: &mut SmallRng,
    what: &str,
) -> (HeldStart<'h>, f64) {
    let goal = heap
        .take_cycle_records()
        .last()
        .expect("a cycle record")
        .next_goal;
    let bound = goal as f64 * MAX_OVERSHOOT;
    heap.debug_hold_cycle_start(true);
    // Let go also when an assertion fails: dropping the heap waits for its collector.
    let held = HeldStart(heap);
    let mut scopes = 0;
    while (heap.stats().heap_live as f64) < bound {
        churn(m, slots, scope_bytes, 0, rng, || {});
        scopes += 1;
        assert!(scopes < 10_000, "{what}: the heap never reached its bound");
    }
    (held, bound)
}

/// A cycle the trigger requested but the collector has not started (its thread kept off the
/// CPU; here a hook holds it) does not let a mutator run the heap past the bound: its next
/// scope after one that allocated past it waits for the start (up to 50 ms). A mutator that
/// only reads is not held, and once a wait has timed out (the start held by something other
/// than the CPU) no scope waits for that cycle again.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn a_late_cycle_start_holds_mutators_at_their_bound() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // One scope of `churn`: 256 chains replaced.
    let scope_bytes = 256 * NODE_BYTES * CHAIN;
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let (mut m, slots) = live_set(&heap, 8 * MIB);
        let mut reader: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        m.collect();
        let mut rng = SmallRng::seed_from_u64(7);
        let (cycles, waits) = (heap.stats().gc_cycles, heap.stats().late_start_wait);
        let what = format!("verify={verify}");
        let (held, bound) = churn_past_the_bound_with_the_start_held(
            &heap,
            &mut m,
            slots,
            scope_bytes,
            &mut rng,
            &what,
        );
        // Scopes that only read are not held (a held scope is a counted wait).
        let before = heap.stats().late_start_waits;
        for _ in 0..20 {
            reader.mutate(|_, _| ());
        }
        assert_eq!(
            heap.stats().late_start_waits,
            before,
            "verify={verify}: a reading scope waited for the start"
        );
        // The mutator that allocated past the bound waits at its next entry (the hook holds
        // the start, so until the wait times out).
        let t = Instant::now();
        churn(&mut m, slots, scope_bytes, 0, &mut rng, || {});
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(40),
            "verify={verify}: the scope after the bound began after {waited:?}"
        );
        // The embedder sees it (the building of the live set may have waited briefly too).
        let stats = heap.stats();
        let metric = heap.metrics().u64("/gccore/gc/late-start/waits:events");
        assert!(
            stats.late_start_waits >= 1 && metric == Some(stats.late_start_waits),
            "verify={verify}: {} waits, metric {metric:?}",
            stats.late_start_waits
        );
        assert!(
            stats.late_start_wait - waits >= Duration::from_millis(40),
            "verify={verify}: {:?} of waits counted",
            stats.late_start_wait - waits
        );
        // Given up for this cycle: the next scopes are not held.
        let before = heap.stats().late_start_waits;
        for _ in 0..5 {
            churn(&mut m, slots, scope_bytes, 0, &mut rng, || {});
        }
        assert_eq!(
            heap.stats().late_start_waits,
            before,
            "verify={verify}: a scope waited again for a start already waited for in vain"
        );
        drop(held);
        // The held cycle runs (a `collect` now would take it over as its own, forced).
        wait_for_a_cycle_after(&heap, cycles, "the held cycle");
        check_intact(&mut m);
        let recs = heap.take_cycle_records();
        let r = automatic(&recs)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("verify={verify}: no triggered cycle\n{}", trace(&recs)));
        // The last scope below the bound, the one that waited, the five after it.
        let slack = 8 * scope_bytes;
        assert!(
            r.heap_start as f64 <= bound + slack as f64,
            "verify={verify}: the cycle started at {} KiB, its bound {} KiB\n{}",
            r.heap_start >> 10,
            bound as usize >> 10,
            trace(&recs)
        );
        assert!(
            r.heap_start >= r.trigger,
            "verify={verify}: started below its trigger"
        );
        assert_collects_to(&heap, 16 * MIB, &format!("verify={verify}"));
        // Giving up lasts one cycle: the next late start holds the mutator again.
        let cycles = heap.stats().gc_cycles;
        let (held, _) = churn_past_the_bound_with_the_start_held(
            &heap,
            &mut m,
            slots,
            scope_bytes,
            &mut rng,
            &what,
        );
        let t = Instant::now();
        churn(&mut m, slots, scope_bytes, 0, &mut rng, || {});
        let waited = t.elapsed();
        drop(held);
        assert!(
            waited >= Duration::from_millis(40),
            "verify={verify}: after a wait given up in an earlier cycle, the scope after the \
             bound began after {waited:?}"
        );
        wait_for_a_cycle_after(&heap, cycles, "the second held cycle");
        check_intact(&mut m);
    }
}

/// A mutator held at a scope's entry for a late start goes on when the cycle starts, not at
/// the cycle's end or when its wait times out: with the collector held right after it counted
/// the cycle as started (so the cycle cannot end), the wait ends about when the start is let go.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn a_mutator_held_for_a_late_start_goes_on_when_the_cycle_starts() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let scope_bytes = 256 * NODE_BYTES * CHAIN;
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let (mut m, slots) = live_set(&heap, 8 * MIB);
        m.collect();
        let mut rng = SmallRng::seed_from_u64(11);
        let what = format!("verify={verify}");
        // The situation needs the mutator to start waiting within the releaser's first 10 ms
        // and three threads to hand over within 35 ms: a loaded machine can miss either, so
        // it is tried up to five times, and one try that shows the property is enough (a wait
        // that ends at its timeout, or no wait at all, shows in every try).
        let mut tries = Vec::new();
        for _ in 0..5 {
            let cycles = heap.stats().gc_cycles;
            let (held, _) = churn_past_the_bound_with_the_start_held(
                &heap,
                &mut m,
                slots,
                scope_bytes,
                &mut rng,
                &what,
            );
            let (waits, waited) = (heap.stats().late_start_waits, heap.stats().late_start_wait);
            heap.debug_hold_after_cycle_begin(true);
            // Another thread lets the start go 10 ms into the mutator's wait, then holds the
            // cycle right after its start until the wait has ended (at most 45 ms: the wait
            // times out after 50), then lets it go on.
            let releaser = {
                let heap = heap.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(10));
                    heap.debug_hold_cycle_start(false);
                    let t = Instant::now();
                    while !heap.debug_held_after_cycle_begin() {
                        assert!(
                            t.elapsed() < Duration::from_secs(10),
                            "the cycle never began"
                        );
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    let t = Instant::now();
                    while heap.stats().late_start_waits == waits
                        && t.elapsed() < Duration::from_millis(45)
                    {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    heap.debug_hold_after_cycle_begin(false);
                })
            };
            churn(&mut m, slots, scope_bytes, 0, &mut rng, || {});
            let joined = releaser.join();
            heap.debug_hold_after_cycle_begin(false);
            drop(held);
            joined.expect("the releasing thread");
            let stats = heap.stats();
            // (A wait is counted only once the scope found the start late and not yet made:
            // it ended when the start woke it, or at its 50 ms timeout.)
            let (n, this_wait) = (
                stats.late_start_waits - waits,
                stats.late_start_wait - waited,
            );
            wait_for_a_cycle_after(&heap, cycles, "the held cycle");
            check_intact(&mut m);
            if n == 1 && this_wait < Duration::from_millis(45) {
                tries.clear();
                break;
            }
            tries.push((n, this_wait));
        }
        assert!(
            tries.is_empty(),
            "{what}: no try had one wait that ended with the start, let go after 10 ms \
             (waits, their time): {tries:?}"
        );
    }
}

/// A tree of depth 13 (2^14 − 1 nodes of 16 bytes), counted as 2^14 nodes.
const TREE_13_BYTES: usize = (1 << 14) * 16;

/// How far past its bound a cycle with the limiter on may end in the deep-structure tests. Such
/// a cycle reaches the bound, where assists hold the mutators; a held mutator lets go when a
/// stop is requested and allocates on until its next poll of `should_yield`, up to a tree of
/// depth 13, and a termination attempt that finds more work lets marking go on, so allow a few
/// (seen: 1.104 × the goal, about 200 KiB past the bound).
const LIMITED_SLACK: usize = 4 * TREE_13_BYTES;

/// The binary-trees shape on `heap`: a long-lived tree of 2^20 nodes built in bounded scopes,
/// then trees of depth 13 built and counted one at a time, polling `should_yield` after each,
/// for 25 times the GOGC runway of a 40 MiB heap; checks every tree and returns the heap's
/// cycle records.
fn deep_structures_run(heap: &Heap, gogc: u32) -> Vec<CycleRecord> {
    let mut m: Mutator<TreeRoot, TreeStack> = heap.mutator_with_stack(|_| GcCell::new(None));
    // The long-lived tree: 2^20 nodes (16 MiB), built in depth-12 pieces (bounded scopes).
    let pieces = 1 << 8;
    for _ in 0..pieces {
        m.mutate_with_stack(|mc, _, stack| stack.push(tree(mc, 11)));
    }
    m.mutate_with_stack(|mc, root, stack| {
        while stack.len() > 1 {
            let mut level = Vec::new();
            while let (Some(r), Some(l)) = (stack.pop(), stack.pop()) {
                level.push(Gc::new(
                    mc,
                    Tree {
                        left: Some(l),
                        right: Some(r),
                    },
                ));
            }
            for t in level.into_iter().rev() {
                stack.push(t);
            }
        }
        root.set(mc, stack.pop());
    });
    let target = 40 * MIB * gogc as usize / 100 * 25;
    let mut built = 0;
    let mut sum = 0;
    while built < target {
        m.mutate(|mc, _| {
            loop {
                sum += count(Some(tree(mc, 13)));
                built += TREE_13_BYTES;
                if built >= target || mc.should_yield() {
                    break;
                }
            }
        });
    }
    assert_eq!(sum as usize, (built / TREE_13_BYTES) * ((1 << 14) - 1));
    let whole = m.mutate(|_, root| count(root.get()));
    assert_eq!(whole, (1 << 20) - 1, "the long-lived tree lost nodes");
    heap.take_cycle_records()
}

/// Without a memory limit, the GC CPU limiter stops assists only below the goal: a GOGC goal
/// always leaves room above the marked heap, so the death spiral the limiter is there for
/// cannot happen. Past the goal assists pay a slice at a time without waiting, and past the
/// bound they hold their mutators, whatever the limiter says. A one-microsecond bucket keeps
/// the limiter on through nearly every mark phase here; the background worker holds the grey
/// work of these deep structures, so an assist that may not wait finds little, and the cycles
/// end at the bound. Without the exception they ran on without assists to 1.2–1.5 × their
/// goal.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn with_the_limiter_on_and_no_memory_limit_cycles_keep_their_bound() {
    limited_cycles_keep_their_bound("no memory limit", |c| c);
}

/// The same under a memory limit that sets the goal and leaves the live heap room: 16 MiB
/// live, the limit's goal about 26 MiB (the GOGC goal would be 32). The limiter treats that
/// goal as a GOGC goal. (Before, it stopped every assist there as in the death spiral, and
/// these cycles ran to 1.8 × their goal: what was allocated meanwhile was marked, which is
/// how treechurn's heap ran to 1.7 × its limit.)
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn with_the_limiter_on_and_room_under_the_memory_limit_cycles_keep_their_bound() {
    let limit = 28 * MIB;
    let recs =
        limited_cycles_keep_their_bound("a 28 MiB memory limit", |c| c.memory_limit(Some(limit)));
    // The limit set the goals.
    let steady = &automatic(&recs)[5..];
    assert!(
        steady.iter().all(|r| r.heap_goal < limit),
        "goals not set by the limit\n{}",
        trace(&recs)
    );
}

/// The deep structures with the limiter on through nearly every mark phase (a one-microsecond
/// bucket), GOGC=100, on heaps made by `config` with verify mode off and on: at least half the
/// steady cycles with the limiter on, none growing past its bound
/// during its mark phase ([`grew_past_their_bound`]), and garbage reclaimed. Returns the
/// verify-mode run's cycle records.
fn limited_cycles_keep_their_bound(
    what: &str,
    config: impl Fn(Config) -> Config,
) -> Vec<CycleRecord> {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = Vec::new();
    for verify in [false, true] {
        let pacer = gc_core::pacer::PacerConfig {
            limiter_capacity_per_proc_ns: 1_000,
            ..Default::default()
        };
        let heap = Heap::new(config(
            Config::default()
                .gc_percent(Some(100))
                .verify(verify)
                .pacer(pacer),
        ))
        .unwrap();
        let recs = deep_structures_run(&heap, 100);
        let auto = automatic(&recs);
        assert!(
            auto.len() >= 12,
            "{what}, verify={verify}: only {} cycles",
            auto.len()
        );
        let steady = &auto[5..];
        let limited = steady.iter().filter(|r| r.limiter_on).count();
        let past = grew_past_their_bound(steady, LIMITED_SLACK);
        // A cycle may start past its bound when its collector thread is kept off the CPU, but
        // not most of them: that would be a trigger that comes too late.
        let started_past = steady
            .iter()
            .filter(|r| r.heap_start as f64 > bound(r))
            .count();
        let worst = steady
            .iter()
            .map(|r| r.heap_end as f64 / r.heap_goal as f64)
            .fold(0.0, f64::max);
        eprintln!(
            "{what}, verify={verify}: {limited} of {} steady cycles with the limiter on, worst \
             heap ÷ goal {worst:.3}, {started_past} started past their bound",
            steady.len()
        );
        assert!(
            started_past <= steady.len() / 2,
            "{what}, verify={verify}: {started_past} of {} cycles started past their bound\n{}",
            steady.len(),
            trace(&recs)
        );
        assert!(
            limited >= steady.len() / 2 && past.is_empty(),
            "{what}, verify={verify}: {limited} of {} cycles with the limiter on, {} past their \
             bound\n{}",
            steady.len(),
            past.len(),
            trace(&recs)
        );
        // Garbage is reclaimed: the short-lived trees are gone once a cycle has run.
        assert_collects_to(
            &heap,
            40 * MIB,
            &format!("{what}, verify={verify}, 16 MiB of trees reachable"),
        );
        last = recs;
    }
    last
}

/// A scope that never polls `should_yield` holds every stop up: the cycle its allocation
/// requests cannot begin until it ends, so the heap grows by what the scope allocates (the
/// bound `docs/api.md` states), the first cycle after it reclaims the garbage, and the wait is
/// what `HeapStats::scope_wait_max` and the gctrace "scope wait" field report, naming this
/// mutator.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn a_scope_that_never_polls_holds_the_cycle_and_the_wait_is_reported() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<TreeRoot> = heap.mutator(|_| GcCell::new(None));
    m.mutate(|mc, root| root.set(mc, Some(tree(mc, 16))));
    m.collect();
    let goal = heap.stats().heap_goal;
    heap.take_cycle_records();
    // Allocate ten goals' worth of garbage in one scope, for at least 50 ms after the trigger.
    let t0 = Instant::now();
    let mut garbage = 0usize;
    m.mutate(|mc, _| {
        while garbage < 10 * goal || t0.elapsed() < Duration::from_millis(100) {
            std::hint::black_box(tree(mc, 10));
            garbage += ((1 << 11) - 1) * 16;
        }
    });
    let held = t0.elapsed();
    let s = heap.stats();
    // The heap grew past the goal by about what the scope allocated (no cycle ran inside it).
    // If this thread lost its CPU as the scope ended, the cycle the scope held up may have run
    // to its end before the read above: then it started with the heap the scope left.
    let early = heap.take_cycle_records();
    let grown = early.first().map_or(s.heap_live, |r| r.heap_start);
    assert!(
        grown > 5 * goal,
        "heap {} MiB, goal {} MiB: a cycle finished inside the scope?",
        grown >> 20,
        goal >> 20
    );
    m.collect();
    let s = heap.stats();
    assert!(
        s.heap_marked < 2 * goal,
        "garbage of the long scope not reclaimed"
    );
    assert_eq!(m.mutate(|_, root| count(root.get())), (1 << 17) - 1);
    // The stop waited for the scope: most of the time after the trigger was crossed.
    assert!(
        s.scope_wait_max >= held / 4 && s.scope_wait_max_mutator == Some(m.id()),
        "scope wait {:?} (mutator {:?}) for a scope of {held:?} (mutator {})",
        s.scope_wait_max,
        s.scope_wait_max_mutator,
        m.id()
    );
    let recs: Vec<_> = early.into_iter().chain(heap.take_cycle_records()).collect();
    let waited = recs
        .iter()
        .find(|r| r.sweep_termination_wait + r.mark_termination_wait >= held / 4)
        .expect("no cycle record shows the wait");
    assert_eq!(waited.waited_for, Some(m.id()));
    assert!(waited.gctrace_line().contains("ms scope wait (mutator"));
}

#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn memory_limit_bounds_mapped_memory_under_churn() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let limit = 256 * MIB;
    let heap = Heap::new(Config::default().memory_limit(Some(limit))).unwrap();
    let (mut m, slots) = live_set(&heap, 128 * MIB);
    let mut rng = SmallRng::seed_from_u64(7);
    let mapped = || {
        heap.metrics()
            .u64("/gccore/memory/mapped-ready:bytes")
            .unwrap() as usize
    };
    let mut peak = 0;
    churn(&mut m, slots, 1024 * MIB, 4, &mut rng, || {
        peak = peak.max(mapped())
    });
    check_intact(&mut m);
    let recs = heap.take_cycle_records();
    assert!(automatic(&recs).len() >= 5, "{} cycles", recs.len());
    eprintln!("mapped peak {:.3} × the limit", peak as f64 / limit as f64);
    assert!(
        peak as f64 <= 1.03 * limit as f64,
        "mapped and not released peaked at {} MiB, limit {} MiB\n{}",
        peak >> 20,
        limit >> 20,
        trace(&recs)
    );
    // Without the limit, GOGC=100 on 128 MiB live would aim at about 256 MiB + overshoot:
    // the goals really were capped below the limit.
    assert!(automatic(&recs).iter().all(|r| r.heap_goal < limit));
    // The live heap has room under the limit: no death spiral.
    assert_eq!(
        heap.metrics().u64("/gccore/gc/limiter/goal-has-room:bool"),
        Some(1)
    );
}

/// Where the heap cannot return pages to the OS, mapped memory never falls: a spike past the
/// memory limit must not hold every later goal at the marked heap (cycles back to back for
/// ever), and the limit must still bound the heap in use.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn without_releasing_pages_a_past_spike_does_not_hold_the_goal_down() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let limit = 32 * MIB;
    let heap = Heap::new(Config::default().gc_percent(None).memory_limit(Some(limit))).unwrap();
    heap.debug_stop_releasing();
    assert!(!heap.returns_memory_to_os());
    let mapped = || {
        heap.metrics()
            .u64("/gccore/memory/mapped-ready:bytes")
            .unwrap() as usize
    };
    // The spike: 64 MiB live under a 32 MiB limit, then dropped.
    drop(live_set(&heap, 64 * MIB));
    heap.collect();
    assert!(
        mapped() > 2 * limit,
        "the spike stays mapped: {} MiB",
        mapped() >> 20
    );
    // Then 4 MiB live and 512 MiB of churn, which the free pages of the spike hold.
    let (mut m, slots) = live_set(&heap, 4 * MIB);
    heap.take_cycle_records();
    let mut rng = SmallRng::seed_from_u64(13);
    churn(&mut m, slots, 512 * MIB, 0, &mut rng, || {});
    check_intact(&mut m);
    let recs = heap.take_cycle_records();
    let auto = automatic(&recs);
    // With the overage counted, the goal is the marked heap (about 4 MiB) and cycles run back
    // to back: hundreds in this churn. With the free pages left out, the goal is the limit less
    // the headroom and the spans' fragmentation, so a cycle comes every 20 MiB or so of
    // allocation (the lowest trigger is 0.8 of the way from the marked heap to the goal).
    assert!(
        auto.len() >= 5 && auto.len() <= 60,
        "{} automatic cycles for 512 MiB of churn\n{}",
        auto.len(),
        trace(&recs)
    );
    eprintln!(
        "{} automatic cycles, mapped {} MiB",
        auto.len(),
        mapped() >> 20
    );
    // The limit still sets every goal (GOGC is off), inside it: most near it, some lower while
    // the spans the last cycle left sparse count as fragmentation.
    let mut goals: Vec<usize> = auto.iter().map(|r| r.heap_goal).collect();
    goals.sort_unstable();
    assert!(
        goals[goals.len() - 1] < limit && goals[goals.len() / 2] > limit / 2,
        "{}",
        trace(&recs)
    );
    // No more was mapped for the churn: the spike's free pages were reused.
    assert!(mapped() <= 80 * MIB, "mapped {} MiB", mapped() >> 20);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn limit_below_the_live_heap_completes_with_gc_cpu_at_most_55_percent() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let heap = Heap::new(Config::default().memory_limit(Some(64 * MIB))).unwrap();
    let (mut m, slots) = live_set(&heap, 128 * MIB);
    let before = heap.metrics();
    let mut rng = SmallRng::seed_from_u64(11);
    let t = Instant::now();
    // Long enough that the limiter's initial allowance (its bucket fills before it engages:
    // about 0.4 s at 75% GC) weighs little in the whole run's figure.
    churn(&mut m, slots, 3072 * MIB, 0, &mut rng, || {});
    check_intact(&mut m);
    let after = heap.metrics();
    let frac = after.gc_cpu_fraction_since(&before);
    eprintln!("GC CPU fraction {frac:.3} over {:?}", t.elapsed());
    let recs = heap.take_cycle_records();
    assert!(recs.len() >= 3, "{} cycles", recs.len());
    assert!(
        frac <= 0.55,
        "GC took {:.0}% of the CPU over {:?}; limiter on {} times\n{}",
        frac * 100.0,
        t.elapsed(),
        heap.metrics()
            .u64("/gccore/gc/limiter/enabled-count:events")
            .unwrap(),
        trace(&recs)
    );
    // (The fraction leaves out idle-priority marking, as the limiter does: see
    // `Metrics::gc_cpu_fraction_since`.) The goal could not be met: the limiter must have been
    // what held the CPU back.
    assert!(after.u64("/gc/limiter/last-enabled:gc-cycle").unwrap() > 0);
    // It counts the times it turned on, not the updates it was on for (measured: 33 in 25
    // cycles, and 179 in 41 on a loaded CI machine, where the run took twice as long; counting
    // updates gave 1 066 in 26).
    let turned_on = after
        .u64("/gccore/gc/limiter/enabled-count:events")
        .unwrap();
    assert!(
        (1..=12 * recs.len() as u64).contains(&turned_on),
        "the limiter turned on {turned_on} times in {} cycles",
        recs.len()
    );
    // And the heap knows it: the live heap leaves the limit no room.
    assert_eq!(after.u64("/gccore/gc/limiter/goal-has-room:bool"), Some(0));
}

/// Resident memory of this process, from `/proc/self/status`. The test counts what the heap
/// adds to it: the RSS before the heap was created is subtracted.
fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb << 10
}

type BigR = Rootable!['gc => (GcArray<'gc, Option<Gc<'gc, Node<'gc>>>>, GcArray<'gc, Option<GcBytes<'gc>>>)];

/// Buffers of 1 MiB the spike keeps live at once.
const SPIKE_BUFFERS: usize = 128;

#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn scavenger_returns_a_garbage_spike_to_the_os() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let live = 32 * MIB;
    // GOGC=25: in steady state the heap retains about 1.1 × (1 + GOGC/100) × live (Go's
    // scavenger goal: 1.4 × live here) plus its metadata; at the default 100 that would
    // already be 2.2 × live.
    let baseline = rss();
    let heap = Heap::new(Config::default().gc_percent(Some(25))).unwrap();
    if !heap.returns_memory_to_os() {
        eprintln!("this system returns no memory to the OS: nothing to check");
        return;
    }
    // The live set, and the slots that hold the spike.
    let mut m: Mutator<BigR> = heap.mutator(|mc| {
        let slots = live / (NODE_BYTES * CHAIN);
        (
            GcArray::new(mc, slots, None),
            GcArray::new(mc, SPIKE_BUFFERS, None),
        )
    });
    for i in (0..m.mutate(|_, r| r.0.len())).step_by(1024) {
        m.mutate(|mc, r| {
            for j in i..(i + 1024).min(r.0.len()) {
                r.0.set(mc, j, Some(chain(mc, j as u64)));
            }
        });
    }
    let released0 = heap
        .metrics()
        .u64("/memory/classes/heap/released:bytes")
        .unwrap();
    // The spike: 128 MiB of 1 MiB buffers live at once (cycles keep the heap near its goal,
    // so a spike of garbage alone no longer grows it), then all garbage.
    let buf = vec![7u8; MIB];
    for i in 0..SPIKE_BUFFERS {
        m.mutate(|mc, r| r.1.set(mc, i, Some(GcBytes::new(mc, &buf))));
    }
    let spike_rss = rss().saturating_sub(baseline);
    m.mutate(|mc, r| {
        for i in 0..SPIKE_BUFFERS {
            r.1.set(mc, i, None);
        }
    });
    // Quiet allocation: a few short-lived chains now and then, so that cycles keep running.
    let t = Instant::now();
    let mut last = rss().saturating_sub(baseline);
    while t.elapsed() < Duration::from_secs(30) {
        m.mutate(|mc, _| {
            for i in 0..64 {
                std::hint::black_box(chain(mc, i));
            }
        });
        std::thread::sleep(Duration::from_millis(5));
        last = rss().saturating_sub(baseline);
        if last < 2 * live {
            break;
        }
    }
    let metrics = heap.metrics();
    let released = metrics.u64("/memory/classes/heap/released:bytes").unwrap();
    assert!(released > released0, "nothing was released");
    assert!(
        last < 2 * live,
        "RSS (over the {} MiB before the heap) {} MiB after {:?} (spike {} MiB, live {} MiB)\n{}\n{}",
        baseline >> 20,
        last >> 20,
        t.elapsed(),
        spike_rss >> 20,
        live >> 20,
        metrics
            .samples()
            .iter()
            .filter(|s| s.name.contains("memory") || s.name.contains("heap"))
            .map(|s| format!("{} = {:?}\n", s.name, s.value))
            .collect::<String>(),
        trace(&heap.take_cycle_records())
    );
    eprintln!(
        "RSS over the baseline {} MiB -> {} MiB in {:?}; released {} MiB",
        spike_rss >> 20,
        last >> 20,
        t.elapsed(),
        released >> 20
    );
}

/// A chain built with fallible allocation: `Err` at the first refused node.
fn try_chain<'gc>(
    mc: &gc_core::Mutation<'gc>,
    seed: u64,
) -> Result<Gc<'gc, Node<'gc>>, gc_core::AllocError> {
    let mut head = None;
    for k in 0..CHAIN as u64 {
        head = Some(Gc::try_new(
            mc,
            Node {
                next: GcCell::new(head),
                a: seed,
                b: k,
            },
        )?);
    }
    Ok(head.unwrap())
}

/// Churn with fallible allocation until `bytes` are allocated or an allocation fails; the
/// error, if one did.
fn try_churn(
    m: &mut Mutator<R>,
    slots: usize,
    bytes: usize,
    rng: &mut SmallRng,
) -> Option<gc_core::AllocError> {
    let mut done = 0;
    while done < bytes {
        let r = m.mutate(|mc, arr| {
            for _ in 0..256 {
                let i = rng.gen_range(0..slots);
                arr.set(mc, i, Some(try_chain(mc, i as u64)?));
            }
            Ok(())
        });
        if let Err(e) = r {
            return Some(e);
        }
        done += 256 * NODE_BYTES * CHAIN;
    }
    None
}

#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn fail_fast_stalls_allocation_under_a_limit_below_the_live_heap_and_recovers() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pacer = gc_core::pacer::PacerConfig {
        limiter_fail_fast_ns: Some(300_000_000),
        ..Default::default()
    };
    // Fail-fast watches the limiter of concurrent marking (refused without it).
    let config = Config::from_env().unwrap().concurrent(true).pacer(pacer);
    let heap = Heap::new(config).unwrap();
    // Without a memory limit the watch does not count (the limiter may still turn on, e.g.
    // under verify mode's long pauses): the live set is built first, then the limit set.
    let (mut m, slots) = live_set(&heap, 128 * MIB);
    heap.set_memory_limit(Some(64 * MIB));
    let mut rng = SmallRng::seed_from_u64(12);
    let t = Instant::now();
    // The limit is half the live heap: cycles run back to back and the limiter holds the GC
    // near half the CPU, flickering on and off. Within a few seconds the fail-fast window
    // (300 ms of engagement) passes and allocation fails with a clean error.
    let err = try_churn(&mut m, slots, 16 << 30, &mut rng);
    let stalled_after = t.elapsed();
    let Some(gc_core::AllocError::MemoryLimitStall { limiter_on }) = err else {
        panic!("expected MemoryLimitStall after {stalled_after:?}, got {err:?}");
    };
    assert!(limiter_on >= Duration::from_millis(300), "{limiter_on:?}");
    let metrics = heap.metrics();
    assert!(metrics.u64("/gccore/gc/limiter/stalls:events").unwrap() >= 1);
    // Nothing reachable was lost to the refusals.
    check_intact(&mut m);
    // Raising the limit lifts the stall at once; lowering it again starts the watch over.
    heap.set_memory_limit(Some(512 * MIB));
    assert_eq!(
        heap.metrics().u64("/gccore/gc/limiter/stalled:bool"),
        Some(0)
    );
    assert!(m.mutate(|mc, _| Gc::try_new(mc, [0u64; 64]).is_ok()));
    heap.set_memory_limit(Some(64 * MIB));
    // Drop three quarters of the live set: the heap fits its limit, the limiter drains, and
    // allocation works again without any call into the heap beyond allocating.
    drop_three_quarters(&mut m, slots);
    if Config::from_env().unwrap().get_verify() {
        // Verify mode checks the heap inside every pause, and pauses count as GC CPU on every
        // CPU: its cycles alone keep the limiter on, so the stall would not clear. The
        // recovery is checked without it.
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut recovered = false;
    while Instant::now() < deadline {
        let ok = m.mutate(|mc, _| Gc::try_new(mc, [0u64; 4]).is_ok());
        if ok && heap.metrics().u64("/gccore/gc/limiter/stalled:bool") == Some(0) {
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        recovered,
        "still stalled 30 s after the live heap fell under the limit"
    );
    // The quarter kept is intact.
    check_intact_every(&mut m, 4);
    eprintln!("stalled after {stalled_after:?} (limiter engaged {limiter_on:?})");
}

/// A heap that stays past its trigger with nobody allocating (here a memory limit below what
/// the spans left sparse by freed objects map: the goal is the marked heap) runs no cycles
/// while the program is idle; the next allocation that takes a span starts one. Before,
/// each cycle's end found the heap past the next trigger and started another: about 35 cycles
/// a second, half the CPU, for as long as the program sat idle.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn an_idle_heap_past_its_trigger_runs_no_cycles() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let heap = Heap::new(Config::from_env().unwrap()).unwrap();
    let (mut m, slots) = live_set(&heap, 128 * MIB);
    heap.set_memory_limit(Some(64 * MIB));
    // Drop three quarters of the chains: every span keeps a quarter of its objects.
    drop_three_quarters(&mut m, slots);
    m.collect();
    m.collect();
    let goal = heap.metrics().u64("/gc/heap/goal:bytes").unwrap();
    let live = heap
        .metrics()
        .u64("/memory/classes/heap/objects:bytes")
        .unwrap();
    assert!(
        goal <= live + MIB as u64,
        "the test needs a goal at the live heap: goal {goal}, live {live}"
    );
    let cycles = || heap.stats().gc_cycles;
    // Let a cycle the last one asked for finish.
    std::thread::sleep(Duration::from_millis(100));
    // (The trigger reads as off while a cycle marks.)
    let t = Instant::now();
    let s = loop {
        let s = heap.stats();
        if s.heap_trigger != usize::MAX || t.elapsed() > Duration::from_secs(5) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(
        s.heap_live >= s.heap_trigger,
        "the test needs the heap past its trigger: live {}, trigger {}",
        s.heap_live,
        s.heap_trigger
    );
    let before = cycles();
    std::thread::sleep(Duration::from_millis(400));
    let idle = cycles() - before;
    assert!(idle <= 1, "{idle} cycles in 400 ms with no allocation");
    // Allocation takes spans, and cycles run again.
    let before = cycles();
    m.mutate(|mc, _| {
        for _ in 0..64 {
            std::hint::black_box(Gc::new(mc, [0u64; 8192]));
        }
    });
    let t = Instant::now();
    while cycles() == before {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "allocation past the trigger started no cycle"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The quarter kept is intact.
    check_intact_every(&mut m, 4);
}

/// A setting changed while a cycle runs leaves its request to that cycle's end, which starts the
/// next cycle if one is due, also when nobody allocated during it (the rule above would
/// otherwise leave an idle heap past its new trigger uncollected until it allocates); after
/// that one, the idle heap runs no more.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn a_setting_changed_during_a_cycle_starts_the_next_when_due() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let heap = Heap::new(Config::from_env().unwrap().concurrent(true)).unwrap();
    let (mut m, _slots) = live_set(&heap, 32 * MIB);
    m.collect();
    let cycles = || heap.stats().gc_cycles;
    let before = cycles();
    heap.debug_hold_marking(true);
    heap.debug_start_cycle();
    // (Until the held cycle is marking: the setting must change during it.)
    let t = Instant::now();
    while !m.mutate(|mc, _| mc.debug_marking()) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the cycle never began"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Under the live heap: the next cycle is due as soon as this one ends.
    heap.set_memory_limit(Some(16 * MIB));
    heap.debug_hold_marking(false);
    let t = Instant::now();
    while cycles() < before + 2 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} cycles: the one held and none for the new setting",
            cycles() - before
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // (The cycle the setting asked for may still be ending.)
    std::thread::sleep(Duration::from_millis(100));
    let after = cycles();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        cycles() <= after + 1,
        "{} more cycles with no allocation",
        cycles() - after
    );
    check_intact(&mut m);
}

/// A fail-fast stall is decided when the limiter is fed, which happens while the collector
/// works. A program that stops allocating when refused, drops data and comes back after a
/// pause found the stall of an episode its pause had ended: its first allocation was refused
/// again (and the program that then backs off again never gets past it). The limiter is fed at
/// the refusal now: a pause longer than a quarter of the window ends the episode, and the
/// allocation goes through.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn a_pause_in_allocation_ends_a_fail_fast_stall() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let window = Duration::from_millis(40);
    let pacer = gc_core::pacer::PacerConfig {
        limiter_fail_fast_ns: Some(window.as_nanos() as u64),
        ..Default::default()
    };
    let config = Config::from_env().unwrap().concurrent(true).pacer(pacer);
    if config.get_verify() {
        // Verify mode's pauses alone keep the limiter on (see the test above).
        return;
    }
    // The situation needs the cycle the refusal asked for to end before the pause is a quarter
    // of the window old (its end feeds the limiter, which would then end the episode itself):
    // a loaded machine that delays that cycle gets another try.
    let mut tries = 0;
    let (heap, mut m) = loop {
        tries += 1;
        let heap = Heap::new(config.clone()).unwrap();
        let (mut m, slots) = live_set(&heap, 128 * MIB);
        heap.set_memory_limit(Some(64 * MIB));
        let mut rng = SmallRng::seed_from_u64(13);
        let err = try_churn(&mut m, slots, 16 << 30, &mut rng);
        assert!(
            matches!(err, Some(gc_core::AllocError::MemoryLimitStall { .. })),
            "{err:?}"
        );
        // Drop three quarters of the live set (the rest fits the limit) and pause: the cycle
        // the refusal asked for ends, and nothing feeds the limiter after it.
        drop_three_quarters(&mut m, slots);
        std::thread::sleep(10 * window);
        let stalled = heap.metrics().u64("/gccore/gc/limiter/stalled:bool");
        if stalled == Some(1) {
            break (heap, m);
        }
        assert!(
            tries < 5,
            "the stall never outlived the cycles that decided it ({stalled:?})"
        );
    };
    // A large object: a span of its own, which a stall refuses.
    let r = m.mutate(|mc, _| Gc::try_new(mc, [7u64; 8192]).map(|g| g[8191]));
    assert_eq!(
        r.ok(),
        Some(7),
        "refused after a pause of {:?}",
        10 * window
    );
    assert_eq!(
        heap.metrics().u64("/gccore/gc/limiter/stalled:bool"),
        Some(0)
    );
}

#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn pacer_trace_has_a_line_per_cycle_with_the_records_figures() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::env::temp_dir().join(format!("gccore-pacertrace-{}.csv", std::process::id()));
    let heap = Heap::new(
        Config::from_env()
            .unwrap()
            .gc_percent(Some(100))
            .pacer_trace(Some(path.clone())),
    )
    .unwrap();
    let (mut m, slots) = live_set(&heap, 16 * MIB);
    let mut rng = SmallRng::seed_from_u64(13);
    churn(&mut m, slots, 256 * MIB, 0, &mut rng, || {});
    let recs = heap.take_cycle_records();
    drop(m);
    drop(heap);
    let (header, rows) = common::take_pacer_trace(&path);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert!(recs.len() >= 5, "{} cycles", recs.len());
    // A cycle may still end while the heap is dropped, after the records were taken.
    assert!(
        rows.len() == recs.len() || rows.len() == recs.len() + 1,
        "one line per cycle: {} lines, {} records",
        rows.len(),
        recs.len()
    );
    let mut last_mutator_cpu = 0.0;
    for (row, rec) in rows.iter().zip(&recs) {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[col("cycle")], rec.cycle.to_string());
        assert_eq!(row[col("heap_end")], rec.heap_end.to_string());
        assert_eq!(row[col("heap_marked")], rec.heap_marked.to_string());
        assert_eq!(row[col("heap_goal")], rec.heap_goal.to_string());
        assert_eq!(row[col("gogc")], "100");
        assert_eq!(row[col("memory_limit")], "off");
        let cpu: f64 = row[col("mutator_cpu_s")].parse().unwrap();
        assert!(cpu >= last_mutator_cpu, "mutator CPU goes forward");
        last_mutator_cpu = cpu;
    }
    // The trigger column is the trigger in force at the start: an automatic cycle started at
    // or past it (less what caches gave back between the request and the stop: the unused
    // bytes of a span they had counted whole, up to a four-page span's), and it lies below
    // the goal.
    for (row, rec) in rows.iter().zip(&recs) {
        assert_eq!(row[col("trigger")], rec.trigger.to_string());
        if !rec.forced {
            assert!(rec.trigger <= rec.heap_start + 32 * 1024, "{rec:?}");
            assert!(rec.trigger < rec.heap_goal, "{rec:?}");
        }
    }
    assert!(last_mutator_cpu > 0.0);
}

/// Beside one mutator on two CPUs, the fractional mark worker marks at idle priority (the
/// other CPU is spare) from the start of each mark phase, also when phases are shorter than the
/// window over which it looks for a spare CPU (2 ms; here most last about 1 ms): its window
/// runs on from one phase to the next. While a window begun afresh with each phase decided
/// nothing, such phases ran at the worker's pace with a CPU left idle, lasted twice as long
/// and marked 2% at idle priority; now it is 44–49% of the short phases' marking, also beside
/// two CPU hogs (which stretch half the phases past the window). Whether a CPU is spare is
/// judged from this process's own CPU time, so other load does not decide it.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn short_mark_phases_mark_at_idle_priority_beside_one_mutator() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Only phases shorter than the window tell a window carried between phases from one begun
    // afresh in each (a longer phase judges a fresh window within itself), so only those are
    // judged. A slow or busy machine stretches phases: a run with too few short ones is tried
    // again.
    const WINDOW: Duration = Duration::from_millis(2);
    let mut counts = Vec::new();
    let (recs, short) = loop {
        let heap = Heap::new(Config::default().debug_cpus(2)).unwrap();
        let (mut m, slots) = live_set(&heap, MIB);
        let mut rng = SmallRng::seed_from_u64(3);
        churn(&mut m, slots, 400 * MIB, 2, &mut rng, || {});
        check_intact(&mut m);
        let recs = heap.take_cycle_records();
        let steady = &automatic(&recs)[5..];
        assert!(
            steady.len() >= 20,
            "{} cycles\n{}",
            steady.len(),
            trace(&recs)
        );
        let short: Vec<CycleRecord> = steady
            .iter()
            .filter(|r| r.mark < WINDOW)
            .map(|r| (*r).clone())
            .collect();
        counts.push((short.len(), steady.len()));
        if short.len() >= 10 {
            break (recs, short);
        }
        assert!(
            counts.len() < 4,
            "(phases shorter than the 2 ms idle window, steady phases) per run: {counts:?}: \
             no run checked that the window carries over between phases\n{}",
            trace(&recs)
        );
    };
    let bg: Duration = short.iter().map(|r| r.background_cpu).sum();
    let idle: Duration = short.iter().map(|r| r.idle_cpu).sum();
    let share = idle.as_secs_f64() / (bg + idle).as_secs_f64();
    assert!(
        share >= 0.1,
        "{:.0}% of the workers' marking at idle priority in the {} phases shorter than the \
         window\n{}",
        100.0 * share,
        short.len(),
        trace(&recs)
    );
}

/// Past 1.1 × its goal an assist holds its mutator whatever its debt. Debt is charged at the
/// last revised assist ratio, which a mutator cannot revise while another thread holds the
/// pacer's lock; at the end of marking that ratio is close to nothing and the background
/// credit large, so a mutator that paid by debt alone allocated on without bound while the
/// collector thread was descheduled holding the lock. The test stops the collector there
/// (`debug_stall_holding_pacer`) while a second mutator allocates garbage as fast as it can.
#[test]
#[cfg_attr(debug_assertions, ignore = "allocates gigabytes: run with --release")]
fn past_its_bound_an_assist_holds_the_mutator_whatever_its_debt() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for verify in [false, true] {
        let heap = Heap::new(Config::default().gc_percent(Some(100)).verify(verify)).unwrap();
        let (mut m, _slots) = live_set(&heap, 16 * MIB);
        let stop = AtomicBool::new(false);
        let cap = 512 * MIB;
        let allocated = std::thread::scope(|s| {
            let allocator = s.spawn(|| {
                let mut a: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
                let mut bytes = 0;
                // Scopes of 96 KiB: a stop request lets a mutator allocate on until its scope
                // ends, which the 1 MiB of slack below must cover.
                while !stop.load(Ordering::Relaxed) && bytes < cap {
                    a.mutate(|mc, _| {
                        for i in 0..128 {
                            std::hint::black_box(chain(mc, i));
                        }
                    });
                    bytes += 128 * CHAIN * NODE_BYTES;
                }
                bytes
            });
            heap.debug_stall_holding_pacer(true);
            heap.debug_start_cycle();
            let start = Instant::now();
            while !heap.debug_pacer_stalled() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let stalled = heap.debug_pacer_stalled();
            // The allocator runs on for a while with the collector stopped at the end of marking.
            std::thread::sleep(Duration::from_millis(300));
            heap.debug_stall_holding_pacer(false);
            std::thread::sleep(Duration::from_millis(50));
            stop.store(true, Ordering::Relaxed);
            assert!(
                stalled,
                "verify={verify}: the collector never reached the stall"
            );
            allocator.join().unwrap()
        });
        check_intact(&mut m);
        let recs = heap.take_cycle_records();
        // The cycle the collector stalled in (its mark phase lasted the stall). The cycles
        // around it are not this test's: a mutator that does nothing but allocate starts some
        // of them at their goal, before the last cycle's sweep has ended (see `churn`).
        let stalled: Vec<&CycleRecord> = recs
            .iter()
            .filter(|r| r.mark >= Duration::from_millis(250))
            .collect();
        assert_eq!(stalled.len(), 1, "verify={verify}:\n{}", trace(&recs));
        for r in stalled {
            let bound = bound(r);
            assert!(
                r.heap_end as f64 <= bound + MIB as f64,
                "verify={verify}: cycle {} ended at {} MiB, bound {:.1} MiB; the allocator \
                 allocated {} MiB in all\n{}",
                r.cycle,
                r.heap_end / MIB,
                bound / MIB as f64,
                allocated / MIB,
                trace(&recs)
            );
        }
        // And garbage is reclaimed: the allocator's chains are gone once a cycle has run.
        assert_collects_to(
            &heap,
            24 * MIB,
            &format!("verify={verify}, 16 MiB of chains reachable"),
        );
    }
}

/// The stop-the-world collector starts its cycles at the goal (no marking runs alongside the
/// mutators, so there is no runway to leave): every cycle the pacer started had, as its
/// trigger, the goal the cycle before set, and the heap had reached it. (A cycle's own record
/// shows the goal raised to just above where it started, as Go does.)
#[test]
fn the_stop_the_world_collector_triggers_at_the_goal() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let heap = Heap::new(Config::default().concurrent(false)).unwrap();
    let (mut m, slots) = live_set(&heap, 4 * MIB);
    let mut rng = SmallRng::seed_from_u64(5);
    churn(&mut m, slots, 64 * MIB, 0, &mut rng, || {});
    check_intact(&mut m);
    let recs = heap.take_cycle_records();
    let mut paced = 0;
    for w in recs.windows(2) {
        let (before, r) = (&w[0], &w[1]);
        if r.forced {
            continue;
        }
        paced += 1;
        assert_eq!(
            r.trigger,
            before.next_goal,
            "cycle {}\n{}",
            r.cycle,
            trace(&recs)
        );
        assert!(
            r.heap_start >= r.trigger,
            "cycle {}\n{}",
            r.cycle,
            trace(&recs)
        );
    }
    assert!(paced >= 3, "{}", trace(&recs));
}

/// A goal lowered while a cycle marks (here GOGC from 100 to 10) lowers the goal the cycle may
/// extend to as well: the assists' hold protects the new goal, not the old one. Measured: the
/// cycle's extended goal 9.5 MB against its starting goal of 17 MB (it stayed at 17 MB when
/// the extension was not lowered).
#[test]
fn a_goal_lowered_during_marking_lowers_the_extended_goal() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let (mut m, _slots) = live_set(&heap, 8 * MIB);
        m.collect();
        heap.take_cycle_records();
        common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
        heap.set_gc_percent(Some(10));
        heap.debug_hold_assists(false);
        heap.debug_hold_marking(false);
        m.collect();
        let recs = heap.take_cycle_records();
        let r = recs.first().unwrap();
        assert!(
            r.heap_goal_extended < r.heap_goal * 3 / 4,
            "verify={verify}: goal {} extended to {}\n{}",
            r.heap_goal,
            r.heap_goal_extended,
            trace(&recs)
        );
        check_intact(&mut m);
    }
}
