//! Several heaps used together: scopes of different heaps nest in one order, and what waits
//! for a heap (entering its scope, `collect()`, `Heap::mutator`, `wait_for_cleanups`, joining
//! its collector when its last handle drops) is refused or deferred where it could deadlock
//! with another thread.

#![allow(clippy::type_complexity)] // `Rootable![...]` expands to a long type

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gc_core::{Config, Gc, Heap, Mutator, Rootable, Trace};

/// Sets its flag when dropped.
struct Tracker(Arc<AtomicBool>);
impl Drop for Tracker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct Flag(
    #[gc(skip)]
    #[allow(dead_code)]
    Tracker,
);

type FlagRoot = Rootable!['gc => Flag];

type UnitRoot = Rootable!['gc => ()];

/// The message of a panic caught by `catch_unwind` ("no panic" if there was none).
fn panic_message(r: std::thread::Result<()>) -> String {
    match r {
        Ok(()) => String::from("no panic"),
        Err(e) => e
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| e.downcast_ref::<String>().cloned())
            .unwrap_or_default(),
    }
}

/// Scopes of two heaps nested in one order on one thread and in the other order on another
/// deadlock when both wait at once (each thread holds one heap's pause back while it waits out
/// the other's): the second order panics, every time and not only when the threads meet, as
/// do `collect()`, `Heap::mutator` and `wait_for_cleanups` of the outer heap inside a scope of
/// the inner one. Both heaps keep working afterwards.
#[test]
fn scopes_of_two_heaps_nested_in_both_orders_panic() {
    let a = Heap::new(Config::default()).unwrap();
    let b = Heap::new(Config::default()).unwrap();
    let mut ma: Mutator<UnitRoot> = a.mutator(|_| ());
    let mut mb: Mutator<UnitRoot> = b.mutator(|_| ());
    // A outside B, twice: one order is fine.
    for _ in 0..2 {
        ma.mutate(|mc, _| {
            Gc::new(mc, 1u64);
            mb.mutate(|mc, _| Gc::new(mc, 2u64).as_ref_gc().to_owned())
        });
    }
    // B outside A, on another thread with mutators of its own: refused.
    let message = std::thread::scope(|t| {
        t.spawn(|| {
            let mut ma: Mutator<UnitRoot> = a.mutator(|_| ());
            let mut mb: Mutator<UnitRoot> = b.mutator(|_| ());
            panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                || mb.mutate(|_, _| ma.mutate(|_, _| ())),
            )))
        })
        .join()
        .unwrap()
    });
    assert!(
        message.contains("mutation scope entered inside a mutation scope of another heap")
            && message.contains("in one order"),
        "{message}"
    );
    // Waiting for A's cycle, or for A's registry, inside a scope of B: refused as well.
    let calls: [(&str, &dyn Fn()); 3] = [
        ("collect()", &|| a.collect()),
        ("Heap::mutator", &|| drop(a.mutator::<UnitRoot>(|_| ()))),
        ("Heap::wait_for_cleanups", &|| a.wait_for_cleanups()),
    ];
    for (what, call) in calls {
        let message = panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || mb.mutate(|_, _| call()),
        )));
        assert!(
            message.starts_with(&format!(
                "gc-core: {what} inside a mutation scope of another heap"
            )),
            "{what}: {message}"
        );
    }
    // Dropping a mutator of A inside a scope of B is not refused: it is unregistered (its root
    // dropped) once the thread has left the scope.
    let dropped = Arc::new(AtomicBool::new(false));
    let extra: Mutator<FlagRoot> = a.mutator(|_| Flag(Tracker(dropped.clone())));
    mb.mutate(|_, _| {
        drop(extra);
        assert!(
            !dropped.load(Ordering::SeqCst),
            "unregistered inside the scope"
        );
    });
    assert!(
        dropped.load(Ordering::SeqCst),
        "not unregistered after the scope"
    );
    // Both heaps still collect, and the allowed order still works.
    ma.collect();
    mb.collect();
    ma.mutate(|_, _| mb.mutate(|_, _| ()));
    assert!(a.stats().gc_cycles >= 1 && b.stats().gc_cycles >= 1);
}

/// A cycle through three heaps (A outside B, B outside C, then C outside A) is refused too.
#[test]
fn scopes_of_three_heaps_nested_in_a_cycle_panic() {
    let heaps: Vec<Heap> = (0..3)
        .map(|_| Heap::new(Config::default()).unwrap())
        .collect();
    let mut ms: Vec<Mutator<UnitRoot>> = heaps.iter().map(|h| h.mutator(|_| ())).collect();
    let (m0, rest) = ms.split_at_mut(1);
    let (m1, m2) = rest.split_at_mut(1);
    let (m0, m1, m2) = (&mut m0[0], &mut m1[0], &mut m2[0]);
    m0.mutate(|_, _| m1.mutate(|_, _| ()));
    m1.mutate(|_, _| m2.mutate(|_, _| ()));
    // Transitively, A's scopes wait for C's; C outside A would close the cycle.
    let message = panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || m2.mutate(|_, _| m0.mutate(|_, _| ())),
    )));
    assert!(message.contains("in one order"), "{message}");
    // The edges already made still hold: A outside C is the order they imply.
    m0.mutate(|_, _| m2.mutate(|_, _| ()));
}

/// A scope of a heap nested inside another heap's is recorded like an outermost one: a second
/// mutator of the inner heap, or its `collect()`, inside it panics instead of deadlocking; and
/// entering a third heap inside both checks the order against each of them, not only the
/// outermost (C seen outside B, then C inside A inside B: refused).
#[test]
fn scopes_nested_inside_another_heaps_are_checked_like_outer_ones() {
    common::within(60, "nested scopes of three heaps", || {
        let heaps: Vec<Heap> = (0..3)
            .map(|_| Heap::new(Config::default()).unwrap())
            .collect();
        let (a, b, c) = (&heaps[0], &heaps[1], &heaps[2]);
        let mut ma: Mutator<UnitRoot> = a.mutator(|_| ());
        let mut mb: Mutator<UnitRoot> = b.mutator(|_| ());
        let mut mb2: Mutator<UnitRoot> = b.mutator(|_| ());
        let mut mc: Mutator<UnitRoot> = c.mutator(|_| ());
        let message = panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || ma.mutate(|_, _| mb.mutate(|_, _| mb2.mutate(|_, _| ()))),
        )));
        assert!(
            message.contains("already inside a mutation scope of this heap"),
            "{message}"
        );
        let message = panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || ma.mutate(|_, _| mb.mutate(|_, _| b.collect())),
        )));
        assert!(
            message
                .starts_with("gc-core: collect() called inside a mutation scope of the same heap"),
            "{message}"
        );
        // C outside B, then C inside A and B: B's scopes wait for C's, C's for B's.
        mc.mutate(|_, _| mb.mutate(|_, _| ()));
        let message = panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || ma.mutate(|_, _| mb.mutate(|_, _| mc.mutate(|_, _| ()))),
        )));
        assert!(message.contains("in one order"), "{message}");
        // Every heap still collects.
        for m in [&mut ma, &mut mb, &mut mc] {
            m.collect();
        }
        assert!(heaps.iter().all(|h| h.stats().gc_cycles >= 1));
    });
}

/// A cleanup of heap B that waits for heap A, and a thread inside a scope of A that waits for
/// B's cleanups, deadlock when they meet (A's stop waits for the thread, the thread for the
/// cleanup, the cleanup for A's cycle): a cleanup's waits count as waits from inside its heap,
/// so the second of the two, in either order, panics.
#[test]
fn a_cleanup_that_waits_for_another_heap_orders_the_two_heaps() {
    for cleanup_first in [true, false] {
        let a = Heap::new(Config::default()).unwrap();
        let b = Heap::new(Config::default()).unwrap();
        let mut ma: Mutator<UnitRoot> = a.mutator(|_| ());
        let mut mb: Mutator<UnitRoot> = b.mutator(|_| ());
        let in_scope_wait = |ma: &mut Mutator<UnitRoot>| {
            panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                || ma.mutate(|_, _| b.wait_for_cleanups()),
            )))
        };
        if !cleanup_first {
            // A waits for B's cleanups (none yet): A → B.
            assert_eq!(in_scope_wait(&mut ma), "no panic");
        }
        let a2 = a.clone();
        mb.mutate(|mc, _| Gc::new(mc, 1u64).add_cleanup(mc, move || a2.collect()));
        mb.collect();
        b.wait_for_cleanups();
        let panics = b.metrics().u64("/gccore/gc/cleanups/panics:events");
        if cleanup_first {
            // The cleanup collected A (B → A); waiting for B's cleanups inside A is refused.
            assert_eq!(panics, Some(0));
            let message = in_scope_wait(&mut ma);
            assert!(
                message.starts_with("gc-core: Heap::wait_for_cleanups inside a mutation scope"),
                "{message}"
            );
        } else {
            // The cleanup's collect() of A was refused (a cleanup's panic is caught and counted).
            assert_eq!(panics, Some(1));
        }
    }
}

/// A cleanup of heap `b`, queued (its object garbage, a collection of `b` run) and held at a
/// gate: once the gate opens, it runs `then` and sets the flag. Returns the gate's opener and
/// the flag.
fn a_gated_cleanup(
    b: &Heap,
    then: impl FnOnce() + Send + 'static,
) -> (std::sync::mpsc::Sender<()>, Arc<AtomicBool>) {
    let ran = Arc::new(AtomicBool::new(false));
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let mut mb: Mutator<UnitRoot> = b.mutator(|_| ());
    let flag = ran.clone();
    mb.mutate(|mc, _| {
        Gc::new(mc, 1u64).add_cleanup(mc, move || {
            let _ = gate.recv();
            then();
            flag.store(true, Ordering::SeqCst);
        })
    });
    mb.collect();
    (open, ran)
}

/// Whether `flag` is set within 20 s.
fn set_within_20_s(flag: &AtomicBool) -> bool {
    let t = std::time::Instant::now();
    while !flag.load(Ordering::SeqCst) && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    flag.load(Ordering::SeqCst)
}

/// The last handle of heap B dropped inside a scope of heap A: the join of B's collector and
/// B's teardown, which waits for B's cleanup thread, are deferred until the scope has ended.
/// Done at once, they deadlocked with a queued cleanup of B that collects A (it waited for A's
/// cycle, whose stop waited for the scope).
#[test]
fn the_last_handle_of_a_heap_dropped_inside_another_heaps_scope() {
    let ran = common::within(30, "a heap dropped inside another heap's scope", || {
        let a = Heap::new(Config::default()).unwrap();
        let b = Heap::new(Config::default()).unwrap();
        let a2 = a.clone();
        let (open, ran) = a_gated_cleanup(&b, move || a2.collect());
        let mut ma: Mutator<UnitRoot> = a.mutator(|_| ());
        ma.mutate(|_, _| {
            open.send(()).unwrap();
            drop(b);
        });
        ran.load(Ordering::SeqCst)
    });
    assert!(ran, "the cleanup ran by the end of the scope");
}

/// A cleanup of heap A dropping the last handle of heap B, while a queued cleanup of B waits
/// for A's cleanups: joining B's collector and tearing B down on A's cleanup thread waited for
/// B's cleanup, which waited for A's cleanup thread. A thread of its own does it now.
#[test]
fn a_cleanup_that_drops_another_heaps_last_handle() {
    let done = common::within(30, "a cleanup dropping another heap's last handle", || {
        let a = Heap::new(Config::default()).unwrap();
        let b = Heap::new(Config::default()).unwrap();
        // B's cleanup, queued and held at the gate: it will wait for A's cleanups.
        let a2 = a.clone();
        let (open, done) = a_gated_cleanup(&b, move || a2.wait_for_cleanups());
        // A's cleanup holds B's last handle: it opens the gate, then drops the handle.
        let mut ma: Mutator<UnitRoot> = a.mutator(|_| ());
        ma.mutate(|mc, _| {
            Gc::new(mc, 2u64).add_cleanup(mc, move || {
                open.send(()).unwrap();
                drop(b);
            })
        });
        ma.collect();
        a.wait_for_cleanups();
        set_within_20_s(&done)
    });
    assert!(done, "B's cleanup finished");
}

/// Opens a gate, then drops a heap handle, when dropped.
struct GateThenDrop(Option<(std::sync::mpsc::Sender<()>, Heap)>);
impl Drop for GateThenDrop {
    fn drop(&mut self) {
        if let Some((open, heap)) = self.0.take() {
            open.send(()).unwrap();
            drop(heap);
        }
    }
}

#[derive(Trace)]
struct HoldsHeap(
    #[gc(skip)]
    #[allow(dead_code)]
    GateThenDrop,
);

/// Heap A with a mutator, and garbage of A whose drop glue opens the gate of a queued cleanup
/// of heap B that collects A (set when it has finished: the flag returned) and drops B's last
/// handle.
fn garbage_holding_another_heaps_last_handle() -> (Heap, Mutator<UnitRoot>, Arc<AtomicBool>) {
    let a = Heap::new(Config::default()).unwrap();
    let b = Heap::new(Config::default()).unwrap();
    // B's cleanup, queued and held at the gate: it will wait for a cycle of A.
    let a2 = a.clone();
    let (open, done) = a_gated_cleanup(&b, move || a2.collect());
    let mut ma: Mutator<UnitRoot> = a.mutator(|_| ());
    ma.mutate(|mc, _| {
        Gc::new(mc, HoldsHeap(GateThenDrop(Some((open, b)))));
    });
    (a, ma, done)
}

/// Drop glue that heap A's background sweep runs (on A's collector thread) dropping the last
/// handle of heap B, while a queued cleanup of B waits for a cycle of A: joining B's collector
/// and tearing B down (which waits for B's cleanups) on A's collector thread would wait for
/// the cleanup, which waits for A's collector. A thread of its own does it.
#[test]
fn drop_glue_on_a_collector_thread_that_drops_another_heaps_last_handle() {
    let done = common::within(30, "a sweep dropping another heap's last handle", || {
        let (a, _ma, done) = garbage_holding_another_heaps_last_handle();
        // A cycle of A that this thread does not sweep (no `collect`, no allocation here), so
        // its collector thread does.
        a.debug_start_cycle();
        set_within_20_s(&done)
    });
    assert!(done, "B's cleanup finished");
}

/// The same drop glue run by a sweep on a user thread (`Heap::finish_sweep`; `collect` does
/// the same): B's teardown, which waits for B's cleanup, which waits for a cycle of A, which
/// waits for this sweep, goes to a thread of its own there too. (Hooks place the sweep on the
/// test's thread: the cycle that finds the object dead is held before its sweep, and the next
/// one before its start, so that A's collector thread, which would sweep in the background,
/// waits for that start instead, held until this thread's sweep has returned.)
#[test]
fn drop_glue_in_a_user_threads_sweep_that_drops_another_heaps_last_handle() {
    let done = common::within(
        30,
        "a user's sweep dropping another heap's last handle",
        || {
            let (a, _ma, done) = garbage_holding_another_heaps_last_handle();
            common::hold_before_weak_clearing(&a);
            a.debug_hold_cycle_start(true);
            a.debug_start_cycle();
            a.debug_hold_weak_clearing(false);
            // Without a thread of its own for B's teardown this never returns: B's cleanup
            // waits for A's held cycle, the teardown for the cleanup.
            a.finish_sweep();
            a.debug_hold_cycle_start(false);
            set_within_20_s(&done)
        },
    );
    assert!(done, "B's cleanup finished");
}

/// Panics when dropped.
struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a root's drop panicked");
    }
}

#[derive(Trace)]
struct Bomb(
    #[gc(skip)]
    #[allow(dead_code)]
    PanicsOnDrop,
);

type BombRoot = Rootable!['gc => Bomb];

type CellRoot = Rootable!['gc => Gc<'gc, Flag>];

/// Two mutators of heap B dropped inside a scope of heap A go at the end of the scope, the
/// second also when the first's root panics when dropped: the panic goes on, and the second
/// is unregistered (its root dropped, what it held reclaimed by B's next cycle).
#[test]
fn a_root_that_panics_when_dropped_at_a_scopes_end_does_not_keep_the_next_mutator() {
    let a = Heap::new(Config::default()).unwrap();
    let b = Heap::new(Config::default()).unwrap();
    let mut ma: Mutator<UnitRoot> = a.mutator(|_| ());
    let bomb: Mutator<BombRoot> = b.mutator(|_| Bomb(PanicsOnDrop));
    let freed = Arc::new(AtomicBool::new(false));
    let held: Mutator<CellRoot> = b.mutator(|mc| Gc::new(mc, Flag(Tracker(freed.clone()))));
    let message = panic_message(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || {
            ma.mutate(|_, _| {
                drop(bomb);
                drop(held);
            })
        },
    )));
    assert!(message.contains("a root's drop panicked"), "{message}");
    b.collect();
    assert!(
        freed.load(Ordering::SeqCst),
        "the second mutator's object outlived it"
    );
}
