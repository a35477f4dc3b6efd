//! Mutation scopes as the collector sees them: entering one (the safepoint handshake, the root
//! scan a mark phase needs first), leaving one (shading what the barrier buffered), and which
//! heaps the current thread is inside a scope of.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use crate::gc::heap::Shared;
use crate::gc::registry::{InScope, MutatorRecord};

thread_local! {
    /// Heaps (by `Shared` address) that this thread is inside a mutation scope of.
    static IN_SCOPE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn key(h: &Shared) -> usize {
    h as *const Shared as usize
}

/// Whether this thread is inside a mutation scope of the heap `h` (a wait for the collector
/// from here could wait for this very scope). False once the thread's record of scopes has been
/// destroyed: that happens only as the thread exits, after every scope on it has ended (a
/// mutator kept in a thread-local is dropped then, with this question asked).
pub(crate) fn in_scope_of(h: &Shared) -> bool {
    IN_SCOPE
        .try_with(|s| s.borrow().contains(&key(h)))
        .unwrap_or(false)
}

/// Enter a scope of `record` on its owner's thread: wait for a late cycle to start if the
/// mutator allocated past the heap's bound before it
/// ([`wait_for_late_start`](crate::gc::collector::wait_for_late_start)), wait out any pause,
/// and scan the roots if a mark phase has not seen them yet.
///
/// # Panics
/// If this thread is already inside a scope of this heap (nesting scopes of two mutators of one
/// heap on one thread would deadlock the collector).
///
/// # Safety
/// The caller owns `record` (it is registered, on this thread) and is outside its scopes, and
/// the returned token is dropped, through [`exit`], when the scope ends.
pub(crate) unsafe fn enter<'a>(h: &'a Shared, record: &'a MutatorRecord) -> InScope<'a> {
    let nested = IN_SCOPE.with(|s| {
        let mut s = s.borrow_mut();
        if s.contains(&key(h)) {
            panic!(
                "gc-core: this thread is already inside a mutation scope of this heap; nesting \
                 scopes of two mutators of one heap on one thread would deadlock the collector"
            );
        }
        s.push(key(h));
        s.len() > 1
    });
    // Not inside a scope of another heap: its pauses would wait for this one meanwhile.
    if record.late_start.swap(false, Ordering::Relaxed) && !nested {
        crate::gc::collector::wait_for_late_start(h);
    }
    h.safepoint.enter(&record.state);
    // SAFETY: the owner has just entered a scope (state `INSIDE`), by the contract.
    let scope = unsafe { InScope::new(record) };
    // Ordered after STW 1 by `enter`'s acquire of the restarted world (`marking` changes only
    // with the world stopped).
    if h.mark.marking.load(Ordering::Relaxed) {
        let cycle = h.mark.cycle.load(Ordering::Relaxed);
        crate::gc::mark::roots::scan_own_roots(h, &scope, cycle);
    }
    scope
}

/// Leave the scope `scope` (also on unwinding): shade what the barrier buffered while marking,
/// finish a scope that contained a blocking region, and reach the safepoint. The token must not
/// be used afterwards (its owner, the scope guard, drops it right away).
pub(crate) fn exit(h: &Shared, scope: &InScope<'_>) {
    // While marking, shade what the barrier buffered before leaving, so that a pause finds the
    // buffers empty and does no shading work itself.
    if h.mark.marking.load(Ordering::Relaxed) {
        crate::gc::barrier::flush(h, scope);
    }
    let record = scope.record();
    if record.blocking_scope.load(Ordering::Relaxed) {
        crate::gc::blocking::end_scope(h, scope);
    }
    h.safepoint.exit(&record.state);
    IN_SCOPE.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(i) = s.iter().rposition(|&k| k == key(h)) {
            s.swap_remove(i);
        }
    });
}
