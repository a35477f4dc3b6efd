//! Liveness: misuse and panics must end in a clear error, never a hang or a lost object.
//!
//! * a `Mutator` dropped (or made) inside a scope of another mutator of the same heap, while a
//!   collector waits for that scope;
//! * a panic in a `Trace` implementation during a mark assist aborts the process with a report
//!   (unwinding would lose the assist's grey objects and leave marking unable to end);
//! * `Mutation::blocking` inside `RootStack::with` panics (the collector could otherwise find
//!   the root stack borrowed at a safepoint).
//!
//! Each test runs its scenario on a thread with a deadline, so a deadlock fails the test
//! instead of hanging the run.

#![allow(clippy::type_complexity)] // `Rootable![...]` expands to a long type

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gc_core::{Config, Gc, GcCell, Heap, Mutator, Rootable, Trace, Tracer};

mod common;
use common::{run_child, within};

/// Inside a scope of `m`, wait until a requested cycle is waiting for this scope to end.
fn wait_for_a_waiting_collector(mc: &gc_core::Mutation<'_>, heap: &Heap) {
    heap.debug_start_cycle();
    let t = Instant::now();
    while !mc.should_yield() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no cycle asked to stop"
        );
        std::thread::yield_now();
    }
    // The collector now holds the registry while it waits for this scope.
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn mutator_dropped_inside_another_scope_while_a_collector_waits() {
    for verify in [true, false] {
        within(30, "dropping a mutator inside a scope", move || {
            let heap = Heap::new(Config::default().verify(verify)).unwrap();
            let mut m1: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
            let mut m2: Mutator<Rootable!['gc => GcCell<'gc, Option<Gc<'gc, u64>>>]> =
                heap.mutator(|_| GcCell::new(None));
            m2.mutate(|mc, r| r.set(mc, Some(Gc::new(mc, 7))));
            let cycles = heap.stats().gc_cycles;
            m1.mutate(|mc, _| {
                wait_for_a_waiting_collector(mc, &heap);
                drop(m2);
                Gc::new(mc, 1u64);
            });
            // The cycle ran once the scope ended, and m2 is gone: its object is garbage.
            heap.collect();
            let s = heap.stats();
            assert!(s.gc_cycles > cycles, "the waiting cycle did not run");
            assert_eq!(
                s.heap_marked, 0,
                "the dropped mutator's root is still alive: {s:?}"
            );
        });
    }
}

#[test]
fn mutator_made_inside_another_scope_panics_instead_of_deadlocking() {
    within(30, "making a mutator inside a scope", || {
        let heap = Heap::new(Config::default()).unwrap();
        let mut m1: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        let msg = m1.mutate(|mc, _| {
            wait_for_a_waiting_collector(mc, &heap);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _m2: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
            }));
            let e = r.expect_err("making a mutator inside a scope of its heap must panic");
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        assert!(msg.contains("inside a mutation scope"), "{msg}");
        heap.collect();
    });
}

#[test]
#[should_panic(expected = "inside `RootStack::with`")]
fn blocking_inside_root_stack_with_panics() {
    let heap = Heap::new(Config::default().verify(true)).unwrap();
    let mut m: Mutator<Rootable!['gc => ()], Rootable!['gc => Gc<'gc, u64>]> =
        heap.mutator_with_stack(|_| ());
    m.mutate_with_stack(|mc, _, stack| {
        stack.push(Gc::new(mc, 1));
        stack.with(|_v| mc.blocking(|| ()));
    });
}

/// Panics in `trace` when armed (a buggy user `Trace` implementation).
struct PanicsWhenTraced {
    armed: &'static AtomicBool,
}

// SAFETY: no pointers to report; `trace` only panics.
unsafe impl Trace for PanicsWhenTraced {
    fn trace(&self, _: &mut Tracer) {
        if self.armed.load(Ordering::Relaxed) {
            panic!("a Trace implementation panicked");
        }
    }
}

static ARMED: AtomicBool = AtomicBool::new(false);

/// The child process's scenario: objects whose `trace` panics are grey while marking is held,
/// and the mutator allocates until it assists (and so traces one).
fn panic_in_an_assist() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<
        Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Vec<Gc<'gc, PanicsWhenTraced>>>>>],
    > = heap.mutator(|_| GcCell::new(None));
    m.mutate(|mc, r| {
        let v = (0..1000)
            .map(|_| Gc::new(mc, PanicsWhenTraced { armed: &ARMED }))
            .collect();
        r.set(mc, Some(Gc::new(mc, v)));
    });
    // A cycle whose background marker does nothing: the root scan greys the vector, and only
    // an assist can trace it.
    heap.debug_hold_marking(true);
    heap.debug_start_cycle();
    while !m.mutate(|mc, _| mc.debug_marking()) {
        std::thread::yield_now();
    }
    ARMED.store(true, Ordering::Relaxed);
    for _ in 0..2000 {
        m.mutate(|mc, _| {
            for _ in 0..1000 {
                Gc::new(mc, [0u64; 8]);
            }
        });
    }
    eprintln!("no assist traced the objects");
    std::process::exit(3);
}

#[test]
fn panic_in_trace_during_an_assist_aborts_with_a_report() {
    if std::env::var_os("GCCORE_LIVENESS_CHILD").is_some() {
        panic_in_an_assist();
        return;
    }
    let end = run_child(
        "panic_in_trace_during_an_assist_aborts_with_a_report",
        "GCCORE_LIVENESS_CHILD",
        Duration::from_secs(60),
    );
    assert_eq!(
        end.signal,
        Some(SIGABRT),
        "expected an abort, got code {:?}; stderr:\n{}",
        end.code,
        end.stderr
    );
    assert!(
        end.stderr.contains("a Trace implementation panicked")
            && end.stderr.contains("a mark assist"),
        "the report does not say what happened:\n{}",
        end.stderr
    );
}

/// `SIGABRT` (6 on Linux and the BSDs).
const SIGABRT: i32 = 6;
