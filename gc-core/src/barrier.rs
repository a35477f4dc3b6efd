//! The write barrier hook (Go: `mbarrier.go`, the hybrid barrier of proposal 17503).
//!
//! Every store of a pointer-bearing value into a heap slot (a [`GcCell`](crate::GcCell), a
//! [`GcArray`](crate::GcArray) element, a [`GcVec`](crate::GcVec) element) calls [`write`]
//! with the old and the new value **before** the store. While marking, the barrier shades both:
//! the old value (Yuasa deletion barrier: a pointer removed from the heap while the marker may
//! not have seen it yet stays reachable) and the new value (Dijkstra insertion barrier).
//!
//! | phase        | `barrier_on` | cost per store |
//! |--------------|--------------|----------------|
//! | off / sweep  | false        | one relaxed load and a predictable branch |
//! | mark         | true         | the pointers of old and new value appended to the mutator's buffer (Go: `wbBuf`) |
//!
//! The buffer is drained into the grey set by the collector with the world stopped (mark
//! termination flushes it). In this stop-the-world collector marking never overlaps a scope,
//! so the flag is only on when forced by a test (`Heap::debug_force_barrier`); the concurrent
//! collector turns it on in STW 1 and off in STW 2.

use std::sync::atomic::Ordering;

use crate::mark::Tracer;
use crate::mutator::Mutation;
use crate::trace::Trace;

/// Barrier for replacing `old` by `new` in a heap slot. Call before the store.
#[inline(always)]
pub(crate) fn write<T: Trace>(mc: &Mutation<'_>, old: &T, new: &T) {
    if T::NEEDS_TRACE && mc.shared.barrier_on.load(Ordering::Relaxed) {
        write_slow(mc, old, new);
    }
}

#[cold]
#[inline(never)]
fn write_slow<T: Trace>(mc: &Mutation<'_>, old: &T, new: &T) {
    let mut t = Tracer::new_collect(&mc.shared.arena);
    old.trace(&mut t);
    new.trace(&mut t);
    // SAFETY: the buffer reference is used for this one extend; no user code runs meanwhile.
    unsafe { mc.wb_buf() }.extend(t.take_collected());
}
