//! Sweeping: free the white objects of a finished cycle, span by span.
//!
//! At mark termination every in-use span is queued on its class's unswept list
//! ([`Central::begin_sweep`](crate::central::Central::begin_sweep)). From then on a span is
//! swept by exactly one of:
//!
//! * the **background sweeper** (the collector thread, between cycles: [`sweep_some`]);
//! * a **mutator** that needs a span of that class (lazy sweeping in the cache refill), so a
//!   span is always swept before its slots are handed out again;
//! * **sweep termination** at the start of the next cycle ([`finish_sweep`]), which sweeps
//!   whatever is left so that the next mark starts from clean mark bits.
//!
//! Popping the span from its list under the class lock is what makes the sweeper its only owner.
//!
//! Sweeping a span: for each slot that is allocated and not marked, run its drop glue (if the
//! span ever held a type with drop glue) and, in verify mode, overwrite it with poison; then the
//! mark bitmap becomes the alloc bitmap and the mark bitmap is cleared. Spans whose objects have
//! no drop glue are swept by bitmap arithmetic alone, without touching the objects.
//!
//! Drop glue runs exactly once per dead object: a slot's alloc bit is cleared by the same sweep
//! that runs its drop glue, and a slot with a clear alloc bit is never dropped again. A panic in
//! drop glue aborts the process (it would otherwise leave the span half-swept).

use std::sync::atomic::Ordering;

use crate::central::{SpanRef, span_class};
use crate::heap::Shared;
use crate::object::{Header, POISON};
use crate::span::LARGE;

/// What a sweep found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Swept {
    /// Free slots after the sweep.
    pub free_slots: usize,
    /// Whether the span holds no object at all now.
    pub empty: bool,
}

/// Sweep one span that the caller has popped from an unswept list (it is on no list and in no
/// cache). The span is left allocated; the caller decides where it goes.
pub(crate) fn sweep_span(h: &Shared, s: SpanRef) -> Swept {
    let span = s.get();
    let mut st = span.state.lock();
    debug_assert!(!st.in_cache);
    let run_drops = span.may_drop.load(Ordering::Relaxed);
    let slow = run_drops || h.verify;
    let nelems = span.nelems;
    let marks = span.mark_words();
    let mut freed = 0usize;
    let mut live = 0usize;
    for (wi, w) in st.alloc.as_raw_mut_slice().iter_mut().enumerate() {
        let valid = if (wi + 1) * 64 <= nelems {
            u64::MAX
        } else {
            (1u64 << (nelems - wi * 64)) - 1
        };
        let m = marks[wi].load(Ordering::Relaxed) & valid;
        let mut dead = *w & !m & valid;
        freed += dead.count_ones() as usize;
        live += m.count_ones() as usize;
        if slow {
            while dead != 0 {
                let i = wi * 64 + dead.trailing_zeros() as usize;
                dead &= dead - 1;
                let addr = span.slot_addr(i);
                if run_drops {
                    run_drop(addr as *mut Header);
                }
                if h.verify {
                    // SAFETY: slot `i` is dead (allocated, unmarked): nothing reachable points
                    // to it and its drop glue has run, so its bytes are ours to overwrite.
                    unsafe { std::ptr::write_bytes(addr as *mut u8, POISON, span.elem_size) };
                }
            }
        }
        *w = m | !valid;
        marks[wi].store(0, Ordering::Relaxed);
    }
    st.allocated = live;
    if live == 0 {
        span.may_drop.store(false, Ordering::Relaxed);
    }
    span.swept.store(true, Ordering::Relaxed);
    drop(st);
    if freed > 0 {
        h.stats
            .objects_freed
            .fetch_add(freed as u64, Ordering::Relaxed);
        h.stats
            .bytes_freed
            .fetch_add((freed * span.elem_size) as u64, Ordering::Relaxed);
    }
    Swept {
        free_slots: nelems - live,
        empty: live == 0,
    }
}

fn run_drop(h: *mut Header) {
    // SAFETY: `h` is the header of a dead object (allocated, unmarked) in a span being swept by
    // this thread alone; its header is intact (only sweeping overwrites dead objects, after
    // this call), and this is the one sweep that frees it.
    let info = unsafe { (*h).info };
    if let Some(d) = info.drop {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: as above; the value is dropped exactly once, here.
            unsafe { d(h) }
        }));
        if r.is_err() {
            eprintln!(
                "gc-core: drop glue of a `{}` panicked during sweeping; aborting",
                (info.name)()
            );
            std::process::abort();
        }
    }
}

/// Place a span swept by the background sweeper: free it if empty, list it as partial if it
/// has free slots, leave it (full) otherwise.
fn place(h: &Shared, s: SpanRef, r: Swept) {
    let span = s.get();
    if r.empty {
        h.central.free_span(&h.arena, s);
    } else if r.free_slots > 0 && span.class != LARGE {
        let mut l = h.central.classes[span_class(span.class, span.noscan)].lock();
        span.state.lock().in_partial = true;
        l.partial.push(s);
    }
}

/// Sweep one unswept span, if any is left. Returns false when there was nothing to sweep.
pub(crate) fn sweep_some(h: &Shared) -> bool {
    if let Some(s) = h.central.large_unswept.lock().pop() {
        let r = sweep_span(h, s);
        place(h, s, r);
        return true;
    }
    let n = h.central.classes.len();
    let start = h.sweep_cursor.load(Ordering::Relaxed) % n;
    for k in 0..n {
        let sc = (start + k) % n;
        let popped = h.central.classes[sc].lock().unswept.pop();
        if let Some(s) = popped {
            h.sweep_cursor.store(sc, Ordering::Relaxed);
            let r = sweep_span(h, s);
            place(h, s, r);
            return true;
        }
    }
    false
}

/// Sweep everything still unswept (sweep termination, `collect`, verify mode).
pub(crate) fn finish_sweep(h: &Shared) {
    while sweep_some(h) {}
}
