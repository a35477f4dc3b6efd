//! Stopping the world (Go: `stopTheWorldWithSema` / `startTheWorldWithSema`), and the token
//! that proves it is stopped.
//!
//! [`StoppedWorld::stop`] takes the registry lock (no mutator registers or leaves meanwhile)
//! and runs the safepoint handshake's stop ([`crate::gc::safepoint`]): when it returns, every
//! registered mutator is `OUTSIDE` (outside its scopes, or in a blocking region, in which it does
//! not touch its private state: see [`InScope`](crate::gc::registry::InScope)), and everything it
//! wrote before is visible. The
//! token then hands out each mutator's private state and roots as plain references, and
//! restarts the world when dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use crate::gc::heap::Shared;
use crate::gc::registry::{MutatorLocal, MutatorRecord};
use crate::gc::roots::RootSet;
use crate::telemetry::phases::Phase;

/// Proof that the world is stopped: held from the stop until the world restarts (on drop).
pub(crate) struct StoppedWorld<'h> {
    h: &'h Shared,
    registry: MutexGuard<'h, Vec<Arc<MutatorRecord>>>,
    /// When the stop was requested: pauses are measured from here, so a mutator slow to reach
    /// a safepoint shows in them.
    pub t_stop: Instant,
    /// How long the stop waited for mutators to leave their scopes (part of the pause).
    pub scope_wait: Duration,
    /// The mutator it waited for longest ([`Mutator::id`](crate::Mutator::id)), if it waited
    /// for any.
    pub waited_for: Option<usize>,
}

/// One stopped mutator, as the collector may use it.
pub(crate) struct StoppedMutator<'w> {
    pub local: &'w mut MutatorLocal,
    pub roots: &'w dyn RootSet,
}

impl<'h> StoppedWorld<'h> {
    /// Stop the world: wait for every mutator inside a scope to leave it.
    pub(crate) fn stop(h: &'h Shared) -> StoppedWorld<'h> {
        let registry = h.registry.lock();
        let t_stop = Instant::now();
        h.safepoint.request_stop();
        // Assists waiting for background credit inside their scopes give up at once (keeping
        // their debt), so that the stop does not wait for their timeout.
        crate::gc::mark::assist::wake_parked(h);
        let last = h.safepoint.stop(registry.iter().map(|r| &r.state));
        let scope_wait = t_stop.elapsed();
        let waited_for = last.map(|i| registry[i].id);
        h.stats.record_scope_wait(scope_wait, waited_for);
        StoppedWorld {
            h,
            registry,
            t_stop,
            scope_wait,
            waited_for,
        }
    }

    /// The registered mutators.
    pub(crate) fn records(&self) -> &[Arc<MutatorRecord>] {
        &self.registry
    }

    /// Every registered mutator with its private state and roots.
    pub(crate) fn mutators(&mut self) -> impl Iterator<Item = StoppedMutator<'_>> {
        self.registry.iter().map(|r| {
            // SAFETY: the world is stopped and the registry locked (this token's invariant), so
            // each record is registered and its owner `OUTSIDE`; the records are
            // distinct, so the `&mut`s do not alias, and they borrow `self` mutably, so no other
            // access through the token overlaps them.
            let (local, roots) = unsafe { r.parts_stopped() };
            StoppedMutator { local, roots }
        })
    }

    /// End the pause: record it as `phase` of `cycle` (statistics and phase log) and restart the
    /// world. Returns its length.
    pub(crate) fn end_pause(self, cycle: u64, phase: Phase) -> Duration {
        let end = Instant::now();
        let d = end.saturating_duration_since(self.t_stop);
        self.h.stats.record_pause(d);
        self.h.phases.record_span(cycle, phase, self.t_stop, end);
        d
    }
}

impl Drop for StoppedWorld<'_> {
    /// Restart the world (the registry lock is released after, with the guard).
    fn drop(&mut self) {
        self.h.safepoint.start();
    }
}
