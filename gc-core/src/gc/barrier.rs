//! The write barrier hook (Go: `mbarrier.go`, the hybrid barrier of proposal 17503).
//!
//! Every store of a pointer-bearing value into a heap slot (a `GcCell`, a `GcArray` element, a
//! `GcVec` element) runs the barrier with the old and the new value **before** the store:
//! [`write_words`] with the two words' pointers for slot types whose word names their one
//! pointer (`Slot::WORD_EDGE`), [`write()`] with the values, traced into the buffer, for others. While marking, the barrier shades both:
//! the old value (Yuasa deletion barrier: a pointer removed from the heap while the marker may
//! not have seen it yet stays reachable) and the new value (Dijkstra insertion barrier).
//!
//! | phase        | `barrier_on` | cost per store |
//! |--------------|--------------|----------------|
//! | off / sweep  | false        | one relaxed load and a predictable branch |
//! | mark         | true         | the pointers of old and new value appended to the mutator's buffer (Go: `wbBuf`) |
//!
//! The concurrent collector turns the flag on in STW 1 and off in STW 2. While marking, a
//! mutator whose buffer reaches [`WB_FLUSH_LEN`] entries shades them itself (marks them and
//! hands the grey ones to the shared queue, Go's `wbBufFlush`); mark termination flushes
//! what is left. (The stop-the-world collector never marks during a scope, so there the flag is
//! only on when forced by a test, `Heap::debug_force_barrier`, and the buffer is drained with the
//! world stopped.)

use std::sync::atomic::Ordering;

use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::Tracer;
use crate::gc::registry::InScope;
use crate::gc::trace::Trace;

/// A mutator shades its write-barrier buffer (Go: `wbBuf`) when it holds this many pointers.
pub(crate) const WB_FLUSH_LEN: usize = 256;

/// Barrier for replacing `old` by `new` in a heap slot. Call before the store.
#[inline(always)]
pub(crate) fn write<T: Trace>(h: &Shared, scope: &InScope<'_>, old: &T, new: &T) {
    if T::NEEDS_TRACE && h.mark.barrier_on.load(Ordering::Relaxed) {
        write_slow(h, scope, |t| {
            old.trace(t);
            new.trace(t);
        });
    }
}

/// Barrier for a value put into or taken out of a container that has no slot to overwrite (an
/// ephemeron table's entry, a finalizer queue): while marking, shade it.
#[inline(always)]
pub(crate) fn shade<T: Trace + ?Sized>(h: &Shared, scope: &InScope<'_>, value: &T) {
    if T::NEEDS_TRACE && h.mark.barrier_on.load(Ordering::Relaxed) {
        write_slow(h, scope, |t| value.trace(t));
    }
}

/// Barrier for replacing, in a heap slot, a value whose pointer is the object at `old` (0 for
/// none) by one whose pointer is at `new` (the slot types that set `Slot::WORD_EDGE`: `Gc`,
/// `Option<Gc>`, the other handles, `NanBox`). Call before the store.
#[inline(always)]
pub(crate) fn write_words(h: &Shared, scope: &InScope<'_>, old: usize, new: usize) {
    if h.mark.barrier_on.load(Ordering::Relaxed) {
        write_words_slow(h, scope, old, new);
    }
}

/// The words' pointers appended to the buffer, as the collecting tracer of [`write_slow`] would
/// append them, without building it (a `GcCell` store with marking on: 16.3 → 6.4 ns).
#[inline(never)]
fn write_words_slow(h: &Shared, scope: &InScope<'_>, old: usize, new: usize) {
    append(h, scope, move |buf| {
        for w in [old, new] {
            if w != 0 {
                buf.push(ObjAddr(w as *const crate::gc::object::Object));
            }
        }
    });
}

/// Change the mutator's buffer with `f` (append to it, or put it back), then, while marking,
/// shade what it holds if it has reached [`WB_FLUSH_LEN`] entries.
#[inline(always)]
fn append(h: &Shared, scope: &InScope<'_>, f: impl FnOnce(&mut Vec<ObjAddr>) + Send) {
    let full = scope.with_local(move |l| {
        f(&mut l.wb_buf);
        l.wb_buf.len() >= WB_FLUSH_LEN
    });
    if full && h.mark.marking.load(Ordering::Relaxed) {
        flush(h, scope);
    }
}

#[cold]
#[inline(never)]
fn write_slow(h: &Shared, scope: &InScope<'_>, report: impl FnOnce(&mut Tracer)) {
    // The edges go straight into the mutator's buffer, lent to the tracer (a store allocates
    // nothing: collecting into a fresh vector and appending it cost two allocations, 70 ns a
    // store). Nobody else touches the buffer while this scope runs; losing it to an unwinding
    // `trace` would lose shaded pointers, so a panic there aborts.
    let guard = crate::util::bug::AbortOnUnwind("the write barrier");
    let buf = scope.with_local(|l| std::mem::take(&mut l.wb_buf));
    let mut t = Tracer::collecting(&h.mheap.arena, buf);
    report(&mut t);
    let buf = t.take_collected();
    guard.disarm();
    append(h, scope, move |b| *b = buf);
}

/// Barrier of a `GcRefCell`'s mutable borrow (`api::refcell`): the first in a cycle's mark
/// phase shades everything the value holds (a deletion barrier over the whole value, once per
/// cycle), and records the cycle in `shaded_in`, which only the borrow's holder touches.
#[inline]
pub(crate) fn snapshot<T: Trace + ?Sized>(
    h: &Shared,
    shaded_in: &std::sync::atomic::AtomicU64,
    value: &T,
) {
    // Inside a scope these do not change (a pause waits for the scope), except across a
    // blocking region, after which the scope reads them again.
    if !h.mark.marking.load(Ordering::Relaxed) {
        return;
    }
    let cycle = h.mark.cycle.load(Ordering::Relaxed);
    if shaded_in.load(Ordering::Relaxed) == cycle {
        return;
    }
    crate::gc::mark::roots::shade_value(h, value);
    shaded_in.store(cycle, Ordering::Relaxed);
}

/// Record one object to shade (a weak reference upgraded while marking).
#[cold]
pub(crate) fn record(h: &Shared, scope: &InScope<'_>, a: ObjAddr) {
    append(h, scope, move |b| b.push(a));
}

/// While marking, shade what the buffer holds (Go: `wbBufFlush`): when it is full, at scope
/// exit, before a blocking region.
pub(crate) fn flush(h: &Shared, scope: &InScope<'_>) {
    // Taken out and put back (the buffer keeps its capacity), only when there is something to
    // shade: every scope exit while marking comes here.
    let taken = scope.with_local(|l| (!l.wb_buf.is_empty()).then(|| std::mem::take(&mut l.wb_buf)));
    if let Some(mut buf) = taken {
        crate::gc::mark::roots::shade(h, buf.drain(..));
        scope.with_local(move |l| l.wb_buf = buf);
    }
}
