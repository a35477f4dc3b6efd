//! The safepoint handshake: how the collector stops the world.
//!
//! A mutator is at a **safepoint** whenever it is outside a mutation scope: it then holds no
//! `Gc` in a Rust local (the lifetime brand guarantees it), so the collector may read its roots
//! and free anything unreachable. Stopping the world therefore waits only for mutators that are
//! *inside* a scope, and a parked or idle mutator costs the pause nothing.
//!
//! # Protocol
//!
//! Each mutator has a state word; the heap has a `stop` flag.
//!
//! | state     | meaning                         | written by |
//! |-----------|---------------------------------|------------|
//! | `OUTSIDE` | not in a scope: at a safepoint   | the mutator |
//! | `INSIDE`  | running in a scope               | the mutator |
//!
//! * **Enter** (mutator): store `INSIDE`, then load `stop`. If `stop` is set, store `OUTSIDE`,
//!   wake the collector, wait until `stop` is clear, and retry.
//! * **Exit** (mutator): store `OUTSIDE`, then load `stop`; if set, wake the collector.
//! * **Stop** (collector): store `stop = true`, then wait until every state reads `OUTSIDE`.
//! * **Start** (collector): store `stop = false` and wake the waiting mutators.
//!
//! Enter and Stop are the two halves of Dekker's algorithm: each side stores its flag and then
//! loads the other's. With all four accesses `SeqCst`, in the single total order either the
//! mutator's load of `stop` sees `true` (and it backs out) or the collector's load of the state
//! sees `INSIDE` (and it waits); both cannot miss. The wake-ups happen under `lock`, and the
//! collector re-checks the states under `lock` before sleeping, so no wake-up is lost.
//!
//! Memory: the mutator's `SeqCst` store of `OUTSIDE` is a release and the collector's load an
//! acquire, so everything the mutator wrote in its scope (roots, cache) happens-before the
//! collector reads it; symmetrically, `stop = false` publishes the collector's work to every
//! mutator that later loads `stop` on entry.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use parking_lot::{Condvar, Mutex};

/// Mutator state: outside any scope (at a safepoint).
pub(crate) const OUTSIDE: u8 = 0;
/// Mutator state: inside a mutation scope.
pub(crate) const INSIDE: u8 = 1;

/// The heap-wide half of the handshake.
#[derive(Default)]
pub(crate) struct Safepoint {
    /// Set while the collector wants (or has) the world stopped. Mutators poll it
    /// (`should_yield`) with one relaxed load.
    stop: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Safepoint {
    /// Whether the collector is waiting for mutators to reach a safepoint.
    #[inline(always)]
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Enter a scope: returns once `state` is `INSIDE` and no stop is in force.
    #[inline]
    pub(crate) fn enter(&self, state: &AtomicU8) {
        state.store(INSIDE, Ordering::SeqCst);
        if self.stop.load(Ordering::SeqCst) {
            self.enter_slow(state);
        }
    }

    #[cold]
    fn enter_slow(&self, state: &AtomicU8) {
        loop {
            state.store(OUTSIDE, Ordering::SeqCst);
            {
                let mut g = self.lock.lock();
                self.cv.notify_all();
                while self.stop.load(Ordering::SeqCst) {
                    self.cv.wait(&mut g);
                }
            }
            state.store(INSIDE, Ordering::SeqCst);
            if !self.stop.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Leave a scope.
    #[inline]
    pub(crate) fn exit(&self, state: &AtomicU8) {
        state.store(OUTSIDE, Ordering::SeqCst);
        if self.stop.load(Ordering::SeqCst) {
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Stop the world: returns once every state in `states` is `OUTSIDE`. The caller must call
    /// [`Safepoint::start`] afterwards.
    pub(crate) fn stop<'a>(&self, states: impl Iterator<Item = &'a AtomicU8> + Clone) {
        self.stop.store(true, Ordering::SeqCst);
        let mut g = self.lock.lock();
        while states.clone().any(|s| s.load(Ordering::SeqCst) != OUTSIDE) {
            self.cv.wait(&mut g);
        }
    }

    /// Restart the world.
    pub(crate) fn start(&self) {
        let _g = self.lock.lock();
        self.stop.store(false, Ordering::SeqCst);
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// Randomised handshake stress: mutators bump a counter only while inside; while the world
    /// is stopped the counter must not move.
    #[test]
    fn stopped_world_has_no_mutator_inside() {
        let sp = Arc::new(Safepoint::default());
        let n = 3;
        let states: Arc<Vec<AtomicU8>> = Arc::new((0..n).map(|_| AtomicU8::new(OUTSIDE)).collect());
        let work = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let iters = if cfg!(miri) { 20 } else { 2000 };
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (sp, states, work, done) =
                    (sp.clone(), states.clone(), work.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut k = 0u64;
                    while !done.load(Ordering::Relaxed) {
                        sp.enter(&states[i]);
                        work.fetch_add(1, Ordering::Relaxed);
                        k = k.wrapping_mul(6364136223846793005).wrapping_add(1);
                        for _ in 0..(k >> 60) {
                            std::hint::spin_loop();
                        }
                        work.fetch_add(1, Ordering::Relaxed);
                        sp.exit(&states[i]);
                    }
                })
            })
            .collect();
        for _ in 0..iters / 10 {
            sp.stop(states.iter());
            let a = work.load(Ordering::SeqCst);
            assert_eq!(a % 2, 0, "a mutator was inside while the world was stopped");
            std::hint::spin_loop();
            assert_eq!(work.load(Ordering::SeqCst), a);
            sp.start();
        }
        done.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
    }
}
