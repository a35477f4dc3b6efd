//! Marking from the mutators' side: each mutator's roots are scanned once per mark phase (by
//! the mutator at its first scope entry, or by the collector while it is parked), and what the
//! barrier recorded, stash entries and stale initialising stores are shaded. Everything greyed
//! here is handed to the shared queue at once.
//!
//! # Why each root set is scanned exactly as it was at the start of marking
//!
//! A mutator's root object and root stack change only inside its scopes, and no scope of the
//! cycle begins before those roots have been scanned: the first scope entry scans them, under
//! the mutator's scan lock (`MutatorRecord::scanned`), which the collector also takes to scan a
//! parked mutator. A mutator dropped before its scan never ran during the cycle, so it moved no
//! pointer anywhere; its roots simply stop being roots (`SCAN_GONE`).

use std::sync::atomic::Ordering;

use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::{GreyBatch, Marking, Tracer};
use crate::gc::registry::{InScope, MutatorRecord, SCAN_GONE};
use crate::gc::trace::Trace;
use crate::pacer::controller::WORK_UNIT_BYTES;
use crate::util::bug::AbortOnUnwind;

/// Scan the scope owner's roots for the cycle `cycle` unless already done, handing the grey
/// objects to the shared queue. Called by the mutator itself at scope entry, before any
/// user code of the scope.
pub(crate) fn scan_own_roots(h: &Shared, scope: &InScope<'_>, cycle: u64) {
    let rec = scope.record();
    let mut scanned = rec.scanned.lock();
    // SAFETY: the record is registered (a scope of it runs), we hold its scan lock, and we are
    // its owner at scope entry, before any user code: nobody writes the roots.
    unsafe { scan_roots_locked(h, rec, &mut scanned, cycle) };
}

/// Collector side of [`scan_own_roots`]: scan a mutator that has not entered a scope since STW 1.
/// Returns `false` if its roots stay unscanned because it is in a scope that contains a
/// blocking region (its owner scans them when that scope ends; see [`crate::gc::blocking`]).
///
/// # Safety
///
/// `rec` must be registered; the caller is the collector.
pub(crate) unsafe fn scan_parked(h: &Shared, rec: &MutatorRecord, cycle: u64) -> bool {
    let mut scanned = rec.scanned.lock();
    if *scanned == cycle || *scanned == SCAN_GONE {
        return true;
    }
    // Set by the owner under this lock before it leaves the managed state in a scope, and
    // cleared under it when that scope ends.
    if rec.blocking_scope.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: the owner is not inside a scope: a scope of this cycle scans at entry (under
    // this lock, so it would have set `scanned`), and a scope begun before STW 1 could only
    // still be open if it blocked, which sets `blocking_scope` first. If the owner enters a
    // scope now, it waits for this lock, then finds the roots scanned.
    unsafe { scan_roots_locked(h, rec, &mut scanned, cycle) };
    true
}

/// Scan `rec`'s roots for `cycle` unless already done; `scanned` is its scan lock, held.
///
/// # Safety
///
/// `rec` must be registered (its roots alive: `Mutator::drop` marks the record gone under the
/// scan lock before freeing them), and nobody may write its roots during the call: their owner
/// writes them only inside its scopes, so the caller is the owner (between a scope's entry or
/// end and any user code) or the owner is outside every scope and must take the lock to enter.
pub(crate) unsafe fn scan_roots_locked(
    h: &Shared,
    rec: &MutatorRecord,
    scanned: &mut u64,
    cycle: u64,
) {
    if *scanned == cycle || *scanned == SCAN_GONE {
        return;
    }
    let guard = AbortOnUnwind("a root scan");
    let mut t = Tracer::marking(h, Marking::Local);
    // SAFETY: the scan lock is held and did not read `SCAN_GONE`; the caller's contract says
    // nobody writes the roots meanwhile.
    unsafe { rec.roots_when_parked() }.trace_roots(&mut t);
    *scanned = cycle;
    h.pacer
        .stack_scan_work
        .fetch_add(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);
    hand_over(h, &mut t);
    guard.disarm();
}

/// Shade the addresses of a write-barrier buffer (mutator side, while marking).
pub(crate) fn shade(h: &Shared, addrs: impl IntoIterator<Item = ObjAddr>) {
    let mut t = Tracer::marking(h, Marking::Local);
    for a in addrs {
        t.edge(a.0);
    }
    hand_over(h, &mut t);
}

/// Shade the pointers a value holds (mutator side, while marking).
pub(crate) fn shade_value<T: Trace + ?Sized>(h: &Shared, value: &T) {
    let guard = AbortOnUnwind("shading a stored value");
    let mut t = Tracer::marking(h, Marking::Local);
    value.trace(&mut t);
    hand_over(h, &mut t);
    guard.disarm();
}

/// Hand a tracer's grey work to the shared queue and its figures (scan work, marked bytes and
/// objects) to the cycle's counters: every tracer but the collector thread's own does this when
/// it stops (or after each slice).
pub(crate) fn hand_over(h: &Shared, t: &mut Tracer) {
    hand_over_to(h, t, |b| h.mark.work.push(b));
}

/// [`hand_over`] for a background worker at the end of a slice: its grey work goes back to
/// the queue without waking a sleeping worker, since it takes a batch again at once
/// (`MarkWork::push_quietly`).
pub(crate) fn hand_over_quietly(h: &Shared, t: &mut Tracer) {
    hand_over_to(h, t, |b| h.mark.work.push_quietly(b));
}

fn hand_over_to(h: &Shared, t: &mut Tracer, push: impl FnOnce(GreyBatch)) {
    debug_assert!(t.batch_closed(), "a tracer handed over with marks pending");
    h.pacer
        .heap_scan_work
        .fetch_add(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);
    h.mark
        .marked_bytes_others
        .fetch_add(t.marked.bytes, Ordering::Relaxed);
    // `Release`: an ephemeron round that reads the count sees the marks (`gc::ephemeron`).
    h.mark
        .marked_objects_others
        .fetch_add(t.marked.objects as u64, Ordering::Release);
    t.marked.bytes = 0;
    t.marked.objects = 0;
    if t.has_grey() {
        push(t.take_grey_batch());
    }
}
