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
//! The concurrent collector turns the flag on in STW 1 and off in STW 2. While marking, a
//! mutator whose buffer reaches [`WB_FLUSH_LEN`] entries shades them itself (marks them and
//! hands the grey ones to the background marker, Go's `wbBufFlush`); mark termination flushes
//! what is left. (The stop-the-world collector never marks during a scope, so there the flag is
//! only on when forced by a test, `Heap::debug_force_barrier`, and the buffer is drained with the
//! world stopped.)

use std::sync::atomic::Ordering;

use crate::api::mutator::Mutation;
use crate::gc::concurrent::WB_FLUSH_LEN;
use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;

/// Barrier for replacing `old` by `new` in a heap slot. Call before the store.
#[inline(always)]
pub(crate) fn write<T: Trace>(mc: &Mutation<'_>, old: &T, new: &T) {
    if T::NEEDS_TRACE && mc.shared.barrier_on.load(Ordering::Relaxed) {
        write_slow(mc, old, new);
    }
}

/// Record one object to shade (a weak reference upgraded while marking).
#[cold]
pub(crate) fn record(mc: &Mutation<'_>, a: crate::gc::heap::ObjAddr) {
    // SAFETY: the buffer reference is used for this block only; no user code runs meanwhile.
    let buf = unsafe { mc.wb_buf() };
    buf.push(a);
    flush_if_full(mc, buf);
}

/// While marking, shade a full buffer (Go: `wbBufFlush`).
#[inline]
fn flush_if_full(mc: &Mutation<'_>, buf: &mut Vec<crate::gc::heap::ObjAddr>) {
    if buf.len() >= WB_FLUSH_LEN && mc.shared.marking.load(Ordering::Relaxed) {
        // Drained in place: the buffer keeps its capacity.
        crate::gc::concurrent::shade(mc.shared, buf.drain(..));
    }
}

#[cold]
#[inline(never)]
fn write_slow<T: Trace>(mc: &Mutation<'_>, old: &T, new: &T) {
    let mut t = Tracer::new_collect(&mc.shared.arena);
    old.trace(&mut t);
    new.trace(&mut t);
    // SAFETY: the buffer reference is used for this block only; no user code runs meanwhile.
    let buf = unsafe { mc.wb_buf() };
    buf.extend(t.take_collected());
    flush_if_full(mc, buf);
}
