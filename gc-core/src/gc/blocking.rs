//! Blocking regions (`Mutation::blocking`): running blocking code inside a scope without holding
//! up the collector (Go: `entersyscall` / `exitsyscall`).
//!
//! A mutator inside a scope must reach a safepoint before any pause can begin, so a scope that
//! blocks (reads a socket, waits on a lock, calls a slow native function) would hold every
//! pause, and with it every other mutator, for as long as it blocks. `Mutation::blocking`
//! runs a closure with the mutator **outside the managed state**: its safepoint state is
//! `OUTSIDE` for the duration, so pauses proceed without it, as Go's do for a goroutine in a
//! system call.
//!
//! # What the closure may do
//!
//! The closure must be `Send`. `&Mutation` is not (`Mutation` is `!Sync`) and neither is
//! `&RootStack`, so the closure cannot allocate, run a write barrier, or touch the mutator's
//! cache, barrier buffer or roots, which the collector may flush or scan while it runs. It may
//! read heap objects through `Gc`s it captured: they stay valid (below), and reads of heap
//! objects are atomic or of immutable data, which the marker reads too. (PyO3's
//! `allow_threads` uses the same bound for the same reason.) The one write it can make is
//! through a `&mut` into a `GcRefCell` borrowed before the region (the guard is `!Send`, the
//! `&mut` it gives is not): every tracer skips a value while its cell is borrowed mutably, the
//! borrow's snapshot barrier covers what it removes, and if a cycle started meanwhile the
//! stale-scope rule below shades the whole value when the borrow ends.
//!
//! # Why the scope's locals stay valid
//!
//! Unlike Go, the collector cannot scan the Rust locals of a blocked scope, yet the code after
//! the closure may use any `Gc` the scope held before it. Each case of where the region falls
//! in a cycle:
//!
//! * **Not marking, or marking with this scope's roots already scanned** (the scope began
//!   after STW 1): every object the scope can hold is reachable from the snapshot of this
//!   cycle or was allocated black, so this cycle marks it (see [`crate::gc::cycle`]) and its
//!   sweep frees none of them.
//! * **A cycle starts (STW 1) while the region runs.** The scope is now *stale*: it began
//!   before the cycle's snapshot, so its locals may hold white objects the marker cannot see.
//!   The mutator set `MutatorRecord::blocking_scope` (under its scan lock) before leaving, and
//!   while it is set the collector neither scans this mutator's roots nor ends marking (the
//!   roots count as unscanned). When the scope ends, its locals are gone, and the mutator scans
//!   its own roots; only then can mark termination succeed. In between, after the closure
//!   returns, every way the scope can make a local object reachable shades it: heap stores
//!   through the barrier (which shades the new value), stash entries (shaded while marking),
//!   root-stack and root-object stores (scanned at the end of the scope), and the initialising
//!   stores of new, black objects, whose values are shaded while the cache's `shade_init` is
//!   set.
//!
//! The cost of that rule: a cycle that **starts** while a scope is blocked cannot finish until
//! that scope ends (its pauses do not wait; its mark phase does, with the world running). A
//! region that may block for long should therefore be the last thing its scope does, or the
//! mutator should leave the scope to block (it is then at a safepoint and holds nothing).
//!
//! With the stop-the-world collector (`Config::concurrent(false)`) a cycle cannot run while any
//! scope containing a blocking region is open; it waits (with the world running) for such
//! scopes to end.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::gc::heap::Shared;
use crate::gc::registry::InScope;

/// The mutator is outside the managed state until this is dropped (also on unwinding), which
/// re-enters it. Meanwhile the collector may flush the mutator's cache and barrier buffer: no
/// `InScope::with_local` may run until `reenter` has entered the managed state.
pub(crate) struct Outside<'s, 'a> {
    h: &'s Shared,
    scope: &'s InScope<'a>,
}

impl Drop for Outside<'_, '_> {
    fn drop(&mut self) {
        reenter(self.h, self.scope);
    }
}

/// Leave the managed state for a blocking region, until the returned guard drops.
///
/// # Panics
/// Inside `RootStack::with` (the stack is borrowed, and the collector may have to read it
/// while the region runs).
pub(crate) fn leave<'s, 'a>(h: &'s Shared, scope: &'s InScope<'a>) -> Outside<'s, 'a> {
    let rec = scope.record();
    if scope.roots().stack_in_use() {
        // The collector (or the verifier) may read the root stack while the region runs: it
        // must not be mutably borrowed then.
        panic!("gc-core: `Mutation::blocking` called inside `RootStack::with`");
    }
    // Shade what the barrier buffered, so that pauses meanwhile find the buffer empty.
    if h.mark.marking.load(Ordering::Relaxed) {
        crate::gc::barrier::flush(h, scope);
    }
    if !rec.blocking_scope.load(Ordering::Relaxed) {
        // Under the scan lock, so a collector deciding whether to scan this mutator's roots sees
        // either the flag or a mutator that is still inside a scope whose roots it must not
        // scan anyway (see `mark::roots::scan_parked`).
        let _scan = rec.scanned.lock();
        rec.blocking_scope.store(true, Ordering::Relaxed);
    }
    // The `Release` store of `OUTSIDE` publishes the flag to the collector's stop.
    h.safepoint.exit(&rec.state);
    Outside { h, scope }
}

/// Come back from a blocking region: wait out any pause, then decide whether the rest of the
/// scope must shade initialising stores.
fn reenter(h: &Shared, scope: &InScope<'_>) {
    let rec = scope.record();
    h.safepoint.enter(&rec.state);
    // Ordered after any pause that happened meanwhile by `enter`'s acquire (`marking` and
    // `mark.cycle` change only with the world stopped).
    if h.mark.marking.load(Ordering::Relaxed) {
        let cycle = h.mark.cycle.load(Ordering::Relaxed);
        if *rec.scanned.lock() != cycle {
            // A cycle started while we were out: this scope is stale (module docs).
            scope.with_local(|l| l.shade_init = true);
        }
    }
}

/// End of a scope that contained a blocking region (called from the scope guard, after the
/// user code, before leaving): if a cycle's marking is waiting for this scope, scan the roots
/// now; then clear the flag and wake the collector.
///
/// Called by the scope's exit, after its user code, with `blocking_scope` set.
pub(crate) fn end_scope(h: &Shared, scope: &InScope<'_>) {
    let rec = scope.record();
    {
        let mut scanned = rec.scanned.lock();
        if h.mark.marking.load(Ordering::Relaxed) {
            let cycle = h.mark.cycle.load(Ordering::Relaxed);
            // SAFETY: we are the owner, at the scope's end after its code: nobody writes the
            // roots; we hold the scan lock, and the record is registered.
            unsafe { crate::gc::mark::roots::scan_roots_locked(h, rec, &mut scanned, cycle) };
        }
        rec.blocking_scope.store(false, Ordering::Relaxed);
        scope.with_local(|l| l.shade_init = false);
    }
    h.blocking_end.wake_all();
}

/// Shade the pointers in `value`, about to be stored into a new (black) object by a stale
/// scope (`MCache::shade_init`).
#[cold]
pub(crate) fn shade_init<T: crate::gc::trace::Trace + ?Sized>(h: &Shared, value: &T) {
    crate::gc::mark::roots::shade_value(h, value);
}

/// Whether the current scope must shade the values it stores into new objects.
#[inline(always)]
pub(crate) fn must_shade_init(scope: &InScope<'_>) -> bool {
    scope.with_local(|l| l.shade_init)
}

/// Collector side: wait (with the world running) until `still_blocked` is false, or a short
/// while has passed, so that the caller can drain grey work that arrived meanwhile.
pub(crate) fn wait_for_scopes(h: &Shared, still_blocked: impl Fn() -> bool) {
    let g = h.blocking_end.lock();
    // Checked under the lock that `end_scope` notifies under: no wake-up is lost.
    if still_blocked() {
        drop(h.blocking_end.wait_for(g, Duration::from_millis(2)));
    }
}

/// Loom model of the blocking-region protocol against a concurrent cycle: one mutator runs a
/// scope that blocks (the flag set under the scan lock, then the real safepoint `exit`; the real
/// `enter` to come back; at scope end, under the scan lock, its own root scan if marking needs
/// it, then the flag cleared), while the collector runs STW 1 with the real handshake, then
/// scans parked mutators (skipping flagged ones) and attempts mark termination (stop the world,
/// require the roots scanned). Checked in every interleaving (two preemptions):
///
/// * the collector never scans the roots while the mutator is inside a scope (its user code
///   could be writing them);
/// * marking never ends while a scope that began before STW 1 is still open (its Rust locals
///   could hold objects the marker never saw).
///
/// Removing the flag (`blocking_scope`), or the collector's check of it, makes the model fail
/// (the collector then scans, and counts as scanned, the roots of a scope that began before
/// STW 1 and is still open).
///
/// `RUSTFLAGS="--cfg loom" cargo test -p gc-core --lib --release loom_`
#[cfg(all(test, not(loom)))]
mod tests {
    use crate::gc::safepoint::AFTER_EXIT;
    use crate::{Config, Gc, Heap, Mutator, Rootable};
    use std::time::{Duration, Instant};

    /// A scope entering a blocking region is flagged as blocked before it leaves the managed
    /// state: held at the first moment a stop could go on without it, a cycle requested then
    /// waits for the scope to end (its Rust locals hold objects the collector cannot see), with
    /// either collector. (Flagged after, the concurrent collector scanned its roots as a parked
    /// mutator's and the cycle ended, freeing what only the locals held; the stop-the-world
    /// one ran its cycle.)
    #[test]
    #[cfg_attr(miri, ignore = "a scope held 300 ms of real time")]
    fn a_scope_is_flagged_blocked_before_it_leaves_the_managed_state() {
        for concurrent in [true, false] {
            let heap = Heap::new(Config::default().concurrent(concurrent).verify(true)).unwrap();
            let (out_tx, out_rx) = std::sync::mpsc::channel::<()>();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let a = {
                let heap = heap.clone();
                std::thread::spawn(move || {
                    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
                    m.mutate(|mc, _| {
                        let local: Vec<Gc<'_, u64>> = (0..2000).map(|i| Gc::new(mc, i)).collect();
                        AFTER_EXIT.with(|f| {
                            *f.borrow_mut() = Some(Box::new(move || {
                                out_tx.send(()).unwrap();
                                go_rx.recv().unwrap();
                            }))
                        });
                        mc.blocking(|| ());
                        assert!(local.iter().enumerate().all(|(i, g)| **g == i as u64));
                    });
                })
            };
            out_rx.recv().unwrap();
            let cycles = heap.stats().gc_cycles;
            let collector = {
                let heap = heap.clone();
                std::thread::spawn(move || heap.collect())
            };
            let t = Instant::now();
            let mut ended = false;
            while t.elapsed() < Duration::from_millis(300) && !ended {
                ended = heap.stats().gc_cycles != cycles;
                std::thread::sleep(Duration::from_millis(1));
            }
            go_tx.send(()).unwrap();
            a.join().unwrap();
            collector.join().unwrap();
            assert!(
                !ended,
                "concurrent={concurrent}: a cycle ended while a scope begun before it was \
                 outside the managed state, not flagged"
            );
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use crate::gc::safepoint::{OUTSIDE, Safepoint};
    use crate::util::primitive::AtomicU8;
    use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use loom::sync::{Arc, Mutex};

    /// The record's scan lock: (cycle whose roots are scanned, `blocking_scope`).
    type Scan = Mutex<(u64, bool)>;

    #[test]
    fn loom_blocked_scope_holds_marking_back() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let sp = Arc::new(Safepoint::default());
            let state = Arc::new(AtomicU8::new(OUTSIDE));
            let scan: Arc<Scan> = Arc::new(Mutex::new((0, false)));
            // 0: not marking; 1: the cycle's cycle (set in STW 1).
            let cycle = Arc::new(AtomicU64::new(0));
            // Model-only observers.
            let in_scope = Arc::new(AtomicBool::new(false));
            let stale_open = Arc::new(AtomicBool::new(false));
            let mutator = {
                let (sp, state, scan, cycle, in_scope, stale_open) = (
                    sp.clone(),
                    state.clone(),
                    scan.clone(),
                    cycle.clone(),
                    in_scope.clone(),
                    stale_open.clone(),
                );
                loom::thread::spawn(move || {
                    // Scope entry: scan own roots if marking (as `ScopeGuard::enter`).
                    sp.enter(&state);
                    let e = cycle.load(Ordering::Relaxed);
                    if e != 0 {
                        scan.lock().unwrap().0 = e;
                    }
                    in_scope.store(true, Ordering::SeqCst);
                    // Locals the collector cannot see: they matter if the scope began before
                    // the cycle's STW 1.
                    stale_open.store(e == 0, Ordering::SeqCst);
                    // `leave`: flag under the scan lock, then outside.
                    scan.lock().unwrap().1 = true;
                    sp.exit(&state);
                    // ... blocked ...
                    // `reenter`.
                    sp.enter(&state);
                    // Scope end (`end_scope`): own root scan if marking needs it, flag off.
                    {
                        let mut s = scan.lock().unwrap();
                        let e = cycle.load(Ordering::Relaxed);
                        if e != 0 && s.0 != e {
                            s.0 = e;
                        }
                        s.1 = false;
                        stale_open.store(false, Ordering::SeqCst);
                        in_scope.store(false, Ordering::SeqCst);
                    }
                    sp.exit(&state);
                })
            };
            // STW 1.
            sp.stop(std::iter::once(&*state));
            cycle.store(1, Ordering::Relaxed);
            sp.start();
            loop {
                // Scan a parked mutator (as `scan_parked`).
                {
                    let mut s = scan.lock().unwrap();
                    if s.0 != 1 && !s.1 {
                        assert!(
                            !in_scope.load(Ordering::SeqCst),
                            "the collector scanned the roots of a mutator inside a scope"
                        );
                        s.0 = 1;
                    }
                }
                // Termination attempt.
                sp.stop(std::iter::once(&*state));
                let scanned = scan.lock().unwrap().0 == 1;
                if scanned {
                    assert!(
                        !stale_open.load(Ordering::SeqCst),
                        "marking ended while a scope begun before STW 1 was still open"
                    );
                    sp.start();
                    break;
                }
                sp.start();
                loom::thread::yield_now();
            }
            mutator.join().unwrap();
        });
    }
}
