//! The sweep generation (Go: `mheap.sweepgen`): which spans need sweeping, who may sweep one,
//! and the window after mark termination in which nothing may be swept.
//!
//! A span's own generation `s` is read against the heap's `G`:
//!
//! | `G` | meaning |
//! |-----|---------|
//! | even | sweeping allowed: `s == G - 2` needs sweeping, `s == G - 1` is being swept, `s == G` is swept |
//! | odd  | the **weak-clearing window**: every span that existed at mark termination needs sweeping (`s == G - 1`), none can be claimed |
//!
//! Mark termination (world stopped) makes `G` odd ([`SweepGen::hold`]): every span becomes
//! unswept in O(1), whatever the heap size, and sweeping is forbidden. With the world running,
//! the collector then clears the dead weak references (which needs the mark bits as marking
//! left them), queues the unswept spans for the sweepers, and makes `G` even again
//! ([`SweepGen::open`]), which allows sweeping. Spans made in the window are made swept for
//! the coming even `G` ([`SweepGen::fresh`]).
//!
//! **The claim.** A span is swept only by the thread whose compare-and-swap moves its `s` from
//! `G - 2` to `G - 1` with `G` even ([`SweepGen::try_claim`]): exactly one thread per cycle, and
//! never in the window (an odd `G` makes `G - 2` a value no span has: every span is at `G - 1`
//! or, if made in the window, at `G + 1`). The claimer marks it swept by storing `G`
//! ([`SweepGen::set_swept`]).
//!
//! **The window and `GcWeak::upgrade`.** An upgrade runs in the managed state of a scope, so no
//! pause (in particular no mark termination) happens during it, and it has synchronised with
//! the end of the last pause (scope entry, or the return from a blocking region, acquires the
//! restarted world): it reads the `G` that pause set or a later one. An upgrade that finds `G`
//! even reads a target that the last clearing has already nulled if it was dead (the `Release`
//! store that closed the window comes after the clearing). An upgrade that finds `G` odd decides
//! from the mark bits instead, which only sweeping changes, so it holds the window's lock for
//! reading while it does: the window closes under the same lock held for writing, and cannot
//! close (nor any span be claimed) in the middle of the decision. That read lock (or the even
//! read of `G`) is the upgrade's linearisation point. A target handed out survives until the
//! scope ends: it survived the last marking, is shaded if a cycle is marking now, and a cycle
//! that starts later cannot finish marking before the scope ends ([`crate::api::blocking`] covers a
//! scope that leaves the managed state meanwhile).

use std::sync::atomic::Ordering;

use crate::util::primitive::{AtomicU64, ReadGuard, RwLock};

/// The heap's sweep generation `G` and the weak-clearing window's lock.
pub(crate) struct SweepGen {
    g: AtomicU64,
    window: RwLock,
}

impl SweepGen {
    /// `G` = 2, sweeping allowed.
    pub(crate) fn new() -> SweepGen {
        SweepGen {
            g: AtomicU64::new(2),
            window: RwLock::default(),
        }
    }

    /// The generation a span made now starts at: swept, also in the window (the `G` the window
    /// will open to).
    #[inline]
    pub(crate) fn fresh(&self) -> u64 {
        (self.g.load(Ordering::Acquire) + 1) & !1
    }

    /// Whether the weak-clearing window is open (sweeping forbidden).
    #[inline]
    pub(crate) fn held(&self) -> bool {
        self.g.load(Ordering::Acquire) & 1 == 1
    }

    /// Whether a span at generation `s` still needs sweeping this cycle (neither swept nor being
    /// swept).
    #[inline]
    pub(crate) fn needs_sweep(&self, s: &AtomicU64) -> bool {
        s.load(Ordering::Acquire) + 2 == self.fresh()
    }

    /// Whether a span at generation `s` is swept for this cycle (or made since mark
    /// termination).
    #[inline]
    pub(crate) fn is_swept(&self, s: &AtomicU64) -> bool {
        s.load(Ordering::Acquire) == self.fresh()
    }

    /// Claim a span at generation `s` for sweeping: true for exactly one caller per cycle, and
    /// for none while the window is open.
    ///
    /// `AcqRel`: the claimer's sweep reads the mark bits the marker set (ordered before the
    /// world restarted after mark termination, which happens-before any read of the new `G`)
    /// and must see the previous sweep's writes to the span (released by its `set_swept`).
    #[inline]
    pub(crate) fn try_claim(&self, s: &AtomicU64) -> bool {
        let g = self.g.load(Ordering::Acquire);
        g & 1 == 0
            && s.compare_exchange(g - 2, g - 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Mark a span claimed with [`SweepGen::try_claim`] swept (`Release`: its sweep's writes
    /// happen-before whatever reads it swept).
    #[inline]
    pub(crate) fn set_swept(&self, s: &AtomicU64) {
        // Only the claimer writes `s` while it is claimed, so it is still `G - 1` of the `G` it
        // was claimed under (the next mark termination waits for every sweep to finish).
        let claimed = s.load(Ordering::Relaxed);
        debug_assert_eq!(claimed & 1, 1, "set_swept on an unclaimed span");
        s.store(claimed + 1, Ordering::Release);
    }

    /// Mark termination, world stopped: every span needs sweeping and none may be swept.
    pub(crate) fn hold(&self) {
        let old = self.g.fetch_add(1, Ordering::AcqRel);
        debug_assert_eq!(old & 1, 0, "the window opened twice");
    }

    /// End the window: allow sweeping. Waits for upgrades deciding inside the window.
    pub(crate) fn open(&self) {
        let _w = self.window.write();
        let old = self.g.fetch_add(1, Ordering::Release);
        debug_assert_eq!(old & 1, 1, "the window closed twice");
    }

    /// If the window is open, hold it open (a read lock) for a decision that reads mark bits;
    /// `None` when it is closed (then it stays closed while the caller stays in the managed
    /// state of its scope: only a mark termination opens it).
    #[inline]
    pub(crate) fn pin_window(&self) -> Option<ReadGuard<'_>> {
        if !self.held() {
            return None;
        }
        let r = self.window.read();
        // Re-read under the lock: it may have closed before we got it.
        self.held().then_some(r)
    }
}

/// The decision of `GcWeak::upgrade` (the mutator is in the managed state of a scope, so no
/// mark termination happens meanwhile): the target's address if it is alive, read from `target` (a weak box's
/// pointer; 0 once cleared). `live` tells whether a target survived the last marking (valid
/// while the window is pinned).
#[inline]
pub(crate) fn upgrade_target(
    sweeps: &SweepGen,
    target: impl Fn() -> usize,
    live: impl FnOnce(usize) -> bool,
) -> Option<usize> {
    if let Some(_pinned) = sweeps.pin_window() {
        // In the window: the clearing may not have reached this box yet; a target that did not
        // survive the cycle is dead already. Nothing is swept while we hold the window.
        let p = target();
        return (p != 0 && live(p)).then_some(p);
    }
    // Window closed: a dead target has been nulled (see the module docs).
    let p = target();
    (p != 0).then_some(p)
}

/// The generation table of the module docs, walked through one cycle on one thread (the loom
/// models below check the same code under every interleaving).
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_span_goes_from_swept_to_unswept_to_claimed_to_swept_once_a_cycle() {
        let g = SweepGen::new();
        let old = AtomicU64::new(g.fresh());
        assert!(!g.held() && g.is_swept(&old) && !g.needs_sweep(&old));
        assert!(g.pin_window().is_none());
        assert!(!g.try_claim(&old), "a swept span cannot be claimed");

        // Mark termination: every span needs sweeping, none can be claimed.
        g.hold();
        assert!(g.held() && g.pin_window().is_some());
        assert!(g.needs_sweep(&old) && !g.is_swept(&old));
        assert!(!g.try_claim(&old), "nothing is claimed in the window");
        // A span made in the window is swept for the generation the window opens to.
        let made_in_window = AtomicU64::new(g.fresh());
        assert!(g.is_swept(&made_in_window) && !g.needs_sweep(&made_in_window));

        // The window closes: sweeping allowed, each span claimed once.
        g.open();
        assert!(!g.held() && g.pin_window().is_none());
        assert!(g.needs_sweep(&old) && !g.is_swept(&old));
        assert!(g.try_claim(&old));
        assert!(!g.try_claim(&old), "a second claim");
        assert!(!g.needs_sweep(&old) && !g.is_swept(&old), "being swept");
        g.set_swept(&old);
        assert!(g.is_swept(&old) && !g.needs_sweep(&old));
        assert!(!g.try_claim(&made_in_window) && g.is_swept(&made_in_window));
    }

    /// With the window closed an upgrade trusts the weak box (cleared if its target died);
    /// inside it, the target's mark decides.
    #[test]
    fn an_upgrade_reads_the_mark_only_inside_the_window() {
        let g = SweepGen::new();
        let dead = |_: usize| false;
        assert_eq!(upgrade_target(&g, || 64, dead), Some(64));
        assert_eq!(upgrade_target(&g, || 0, |_| true), None);
        g.hold();
        assert_eq!(upgrade_target(&g, || 64, dead), None);
        assert_eq!(upgrade_target(&g, || 64, |p| p == 64), Some(64));
        assert_eq!(upgrade_target(&g, || 0, |_| true), None);
        g.open();
        assert_eq!(upgrade_target(&g, || 64, dead), Some(64));
    }
}

/// Loom models of the sweep claim and of weak clearing against upgrade, with the real
/// [`SweepGen`] code (its atomics and lock are loom's here) and [`upgrade_target`]. The span's
/// memory is a loom `UnsafeCell`, which reports any two unsynchronised accesses (two sweeps at
/// once, or a sweep freeing memory a mutator reads).
///
/// `RUSTFLAGS="--cfg loom" cargo test -p gc-core --lib --release loom_`
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Mutex};

    /// One span: its generation, its memory, how often it was swept, and the lists it can be on
    /// (the class's unswept and partial lists: a `Vec` of at most this one span).
    struct Model {
        sweeps: SweepGen,
        span_gen: AtomicU64,
        memory: UnsafeCell<u32>,
        swept_count: AtomicUsize,
        unswept: Mutex<Vec<()>>,
        partial: Mutex<Vec<()>>,
    }

    // SAFETY: `memory` is accessed only by the owner of the span the protocol designates;
    // loom's `UnsafeCell` checks exactly that.
    unsafe impl Sync for Model {}

    impl Model {
        fn sweep(&self) {
            // SAFETY: only the claimer writes (checked by loom).
            self.memory.with_mut(|m| unsafe { *m += 1 });
            self.swept_count.fetch_add(1, Ordering::SeqCst);
            self.sweeps.set_swept(&self.span_gen);
        }

        /// A sweeper (background sweeper or `finish_sweep`): pop from the unswept list (only
        /// outside the window, checked under the list lock), claim, sweep, list as partial.
        fn sweeper(&self) {
            let popped = {
                let mut l = self.unswept.lock().unwrap();
                if self.sweeps.held() { None } else { l.pop() }
            };
            if popped.is_some() && self.sweeps.try_claim(&self.span_gen) {
                self.sweep();
                self.partial.lock().unwrap().push(());
            }
        }

        /// An allocating mutator (`acquire_span`): outside the window, a partial span (swept,
        /// so its own now) or an unswept one it claims and sweeps; then it allocates in it.
        fn mutator(&self) {
            if self.sweeps.held() {
                return;
            }
            let got = if self.partial.lock().unwrap().pop().is_some() {
                assert!(
                    self.sweeps.is_swept(&self.span_gen),
                    "an unswept span was listed partial"
                );
                true
            } else {
                let popped = self.unswept.lock().unwrap().pop();
                popped.is_some() && self.sweeps.try_claim(&self.span_gen) && {
                    self.sweep();
                    true
                }
            };
            if got {
                // SAFETY: a cached span is the mutator's alone (checked by loom).
                self.memory.with_mut(|m| unsafe { *m += 10 });
            }
        }
    }

    #[test]
    fn loom_two_sweepers_and_an_allocating_mutator_sweep_a_span_once() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let m = Arc::new(Model {
                sweeps: SweepGen::new(),
                span_gen: AtomicU64::new(2),
                memory: UnsafeCell::new(0),
                swept_count: AtomicUsize::new(0),
                unswept: Mutex::new(Vec::new()),
                partial: Mutex::new(Vec::new()),
            });
            // Mark termination: the span becomes unswept, the window opens.
            m.sweeps.hold();
            assert!(m.sweeps.needs_sweep(&m.span_gen));
            let threads: Vec<_> = (0..3)
                .map(|k| {
                    let m = m.clone();
                    loom::thread::spawn(move || if k < 2 { m.sweeper() } else { m.mutator() })
                })
                .collect();
            // The collector queues the span and opens the window while the others run.
            m.unswept.lock().unwrap().push(());
            m.sweeps.open();
            for t in threads {
                t.join().unwrap();
            }
            // Sweep termination: whatever is left.
            m.sweeper();
            assert_eq!(
                m.swept_count.load(Ordering::SeqCst),
                1,
                "span swept twice or never"
            );
            assert!(m.sweeps.is_swept(&m.span_gen));
        });
    }

    /// Two claims of one span racing each other and the window's opening (as a span reached
    /// by two sweepers would be, were it listed twice): the compare-and-swap lets exactly one
    /// win over the cycle, whichever side of the opening each claim falls on. (In the model above the list's lock lets only
    /// one thread reach the claim.)
    #[test]
    fn loom_two_claims_of_one_span_exactly_one_wins() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let sweeps = Arc::new(SweepGen::new());
            let span_gen = Arc::new(AtomicU64::new(2));
            sweeps.hold();
            let claimers: Vec<_> = (0..2)
                .map(|_| {
                    let (sweeps, span_gen) = (sweeps.clone(), span_gen.clone());
                    loom::thread::spawn(move || sweeps.try_claim(&span_gen))
                })
                .collect();
            sweeps.open();
            let mut wins: usize = claimers
                .into_iter()
                .map(|t| t.join().unwrap() as usize)
                .sum();
            wins += sweeps.try_claim(&span_gen) as usize;
            assert_eq!(wins, 1, "a span claimed twice, or never");
        });
    }

    #[test]
    fn loom_upgrade_never_returns_a_target_the_sweep_frees() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            // A dead target (unmarked) in one span, its weak box's pointer, and its memory.
            let sweeps = Arc::new(SweepGen::new());
            let span_gen = Arc::new(AtomicU64::new(2));
            let boxed = Arc::new(AtomicUsize::new(8));
            let memory = Arc::new(UnsafeCellSync(UnsafeCell::new(7u32)));
            sweeps.hold();
            // The mutator's scope begins after mark termination (the restart orders it). Its
            // liveness rule is `GcWeak::upgrade`'s for an unmarked target: alive only if its
            // span has been swept since (then it was allocated after the marking).
            let mutator = {
                let (sweeps, boxed, memory) = (sweeps.clone(), boxed.clone(), memory.clone());
                let span_gen = span_gen.clone();
                loom::thread::spawn(move || {
                    let live = |_| sweeps.is_swept(&span_gen);
                    let got = upgrade_target(&sweeps, || boxed.load(Ordering::Acquire), live);
                    if got.is_some() {
                        // SAFETY: an upgraded target is alive for the scope (loom checks that
                        // the sweep does not free it meanwhile).
                        memory.0.with(|m| assert_eq!(unsafe { *m }, 7));
                    }
                    got
                })
            };
            // The collector: clear the dead target's weak reference, open the window, sweep.
            boxed.store(0, Ordering::Release);
            sweeps.open();
            if sweeps.try_claim(&span_gen) {
                // SAFETY: the claimer frees the dead object (loom checks no reader overlaps).
                memory.0.with_mut(|m| unsafe { *m = 0xdead });
                sweeps.set_swept(&span_gen);
            }
            assert_eq!(mutator.join().unwrap(), None, "a dead target was upgraded");
        });
    }

    /// A live (marked) target is upgraded whatever the interleaving with the window's opening
    /// and the sweep of its span, which clears its mark: a decision that reads the mark bits
    /// holds the window open (re-checked under its lock), and one made after the window closed
    /// reads the box, which the clearing left alone. (Without the re-check, an upgrade that saw
    /// the window held, then got the lock after it closed, read the mark the sweep had just
    /// cleared, before the span was marked swept: `None` for a reachable object.)
    #[test]
    fn loom_upgrade_of_a_live_target_always_succeeds() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let sweeps = Arc::new(SweepGen::new());
            let span_gen = Arc::new(AtomicU64::new(2));
            let boxed = Arc::new(AtomicUsize::new(8));
            let marked = Arc::new(loom::sync::atomic::AtomicBool::new(true));
            sweeps.hold();
            let mutator = {
                let (sweeps, boxed, marked) = (sweeps.clone(), boxed.clone(), marked.clone());
                let span_gen = span_gen.clone();
                loom::thread::spawn(move || {
                    // `weak::is_live`: marked, or in a span swept since the marking.
                    let live = |_| marked.load(Ordering::Acquire) || sweeps.is_swept(&span_gen);
                    upgrade_target(&sweeps, || boxed.load(Ordering::Acquire), live)
                })
            };
            // The collector: open the window, then the sweep claims the span, clears its marks
            // and marks it swept.
            sweeps.open();
            if sweeps.try_claim(&span_gen) {
                marked.store(false, Ordering::Release);
                sweeps.set_swept(&span_gen);
            }
            assert_eq!(
                mutator.join().unwrap(),
                Some(8),
                "a live target was not upgraded"
            );
        });
    }

    struct UnsafeCellSync(UnsafeCell<u32>);
    // SAFETY: accesses are checked by loom.
    unsafe impl Sync for UnsafeCellSync {}
    // SAFETY: as above.
    unsafe impl Send for UnsafeCellSync {}
}
