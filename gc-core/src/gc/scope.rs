//! Mutation scopes as the collector sees them: entering one (the safepoint handshake, the root
//! scan a mark phase needs first), leaving one (shading what the barrier buffered), which
//! heaps the current thread is inside a scope of, and the order in which scopes of different
//! heaps wait for each other.
//!
//! **Waits between heaps.** A thread inside a scope of heap A that waits for heap B (to enter
//! a scope of B, which waits out B's pause; or in B's `collect()`, or for B's registry lock or
//! its cleanups) holds A's pauses back while it waits. Two such waits in opposite directions
//! are a deadlock, as two locks taken in opposite orders are: thread 1 inside A waits for B's
//! pause, whose stop waits for thread 2, inside B and waiting for A's pause, whose stop waits
//! for thread 1. So each such wait is recorded as an edge A → B of a process-wide graph of heap
//! ids (a cleanup of A waiting for B too: whoever waits for A's cleanups waits for it), and a
//! wait that would close a cycle in it panics, whether or not the other threads are waiting at
//! that moment (as a lock-order checker does): the order in which a program nests scopes of
//! different heaps must be one order, the same on every thread. Two waits are deferred instead
//! of recorded: dropping a mutator, or a heap's last handle (joining its collector), inside a
//! scope waits until the thread has left its outermost scope
//! ([`defer_past_scopes`](crate::api::mutator::defer_past_scopes)).

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;

use crate::gc::heap::Shared;
use crate::gc::registry::{InScope, MutatorRecord};

thread_local! {
    /// Heaps that this thread is inside a mutation scope of: their `Shared` address and id.
    static IN_SCOPE: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

fn key(h: &Shared) -> usize {
    h as *const Shared as usize
}

/// Edges `(a, b)` of the wait graph between heaps (by [`Shared::id`]): a thread inside a scope
/// of heap `a` has waited for heap `b`. Kept acyclic ([`note_wait_for`]); a heap's edges go
/// when it is dropped ([`forget_heap`]).
static WAITS: parking_lot::Mutex<Vec<(u64, u64)>> = parking_lot::Mutex::new(Vec::new());

/// A new heap's id for the wait graph: never reused, unlike its address.
pub(crate) fn new_heap_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The heap with this id is gone: drop its edges.
pub(crate) fn forget_heap(id: u64) {
    WAITS.lock().retain(|&(a, b)| a != id && b != id);
}

/// Whether `to` can be reached from `from` along `edges`.
fn reaches(edges: &[(u64, u64)], from: u64, to: u64) -> bool {
    let mut seen = vec![from];
    let mut next = vec![from];
    while let Some(x) = next.pop() {
        for &(a, b) in edges {
            if a == x && !seen.contains(&b) {
                if b == to {
                    return true;
                }
                seen.push(b);
                next.push(b);
            }
        }
    }
    false
}

thread_local! {
    /// The heap whose cleanup thread this is (its id), or 0. A cleanup that waits for another
    /// heap holds back whoever waits for its heap's cleanups (`Heap::wait_for_cleanups`), as a
    /// scope that waits holds back its heap's pauses: its waits count as waits from inside
    /// that heap ([`run_cleanups_of`]).
    static CLEANUPS_OF: Cell<u64> = const { Cell::new(0) };
    /// Edges of [`WAITS`] this thread has recorded or found there: a cache that spares a
    /// nested scope's entry the process-wide lock once its order is known (an edge leaves the
    /// graph only with a heap, and a heap's id is never reused).
    static KNOWN: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
}

/// This thread runs the cleanups of the heap with id `heap` (its cleanup thread).
pub(crate) fn run_cleanups_of(heap: u64) {
    CLEANUPS_OF.with(|c| c.set(heap));
}

/// Whether this thread is a cleanup thread (of any heap).
pub(crate) fn on_cleanup_thread() -> bool {
    CLEANUPS_OF.try_with(Cell::get).unwrap_or(0) != 0
}

/// Edges kept in a thread's [`KNOWN`] cache before it is emptied (a thread nesting scopes of
/// many short-lived heaps inside a long-lived one would otherwise grow it, and its scans,
/// without bound).
const KNOWN_MAX: usize = 64;

/// This thread is about to wait for heap `h` (`what` says for what): for every other heap it
/// is inside a scope of (or whose cleanups it runs), record that that heap waits for `h`. A
/// thread inside a blocking region counts as inside its scope: a pause does not wait for it,
/// but mark termination may, and so may `collect()`.
///
/// # Panics
/// If `h` has been seen waiting, directly or through other heaps, for one of those heaps: the
/// two waits could deadlock (see the module docs). Nothing is recorded then.
pub(crate) fn note_wait_for(h: &Shared, what: &str) {
    let serving = CLEANUPS_OF.try_with(Cell::get).unwrap_or(0);
    let Ok(outer) = IN_SCOPE.try_with(|s| {
        s.borrow()
            .iter()
            .map(|&(_, id)| id)
            .chain((serving != 0).then_some(serving))
            .filter(|&id| id != h.id)
            .collect::<Vec<u64>>()
    }) else {
        return;
    };
    let known = |a: u64| {
        KNOWN
            .try_with(|k| k.borrow().contains(&(a, h.id)))
            .unwrap_or(false)
    };
    let new: Vec<u64> = outer.into_iter().filter(|&a| !known(a)).collect();
    if new.is_empty() {
        return;
    }
    let mut waits = WAITS.lock();
    // Every edge checked before any is recorded. Edges into `h` add no path out of `h`, so
    // each check holds with the others' edges added.
    if new.iter().any(|&a| reaches(&waits, h.id, a)) {
        drop(waits);
        panic!(
            "gc-core: {what} inside a mutation scope of another heap (or a cleanup of another \
             heap), and this heap has waited for that one before (scopes of the two heaps nested \
             in both orders, or one heap's collect(), mutators or cleanups used inside the \
             other's scope): two threads doing both at once deadlock. Nest scopes of different \
             heaps in one order on every thread."
        );
    }
    for a in new {
        if !waits.contains(&(a, h.id)) {
            waits.push((a, h.id));
        }
        let _ = KNOWN.try_with(|k| {
            let mut k = k.borrow_mut();
            if k.len() >= KNOWN_MAX {
                k.clear();
            }
            k.push((a, h.id));
        });
    }
}

/// Before a call that waits for heap `h` (`what`: its name in messages): refuse it where it
/// would wait for itself, from drop glue a sweep runs or inside a scope of `h` (`why` says what
/// it would wait for there), and record the wait for the order between heaps
/// ([`note_wait_for`]).
///
/// # Panics
/// In those two cases, and where [`note_wait_for`] does.
pub(crate) fn before_waiting_for(h: &Shared, what: &str, why: &str) {
    crate::gc::sweep::refuse_in_drop_glue(what);
    if in_scope_of(h) {
        panic!(
            "gc-core: {what} called inside a mutation scope of the same heap; {why} (deadlock). \
             Call it between scopes."
        );
    }
    note_wait_for(h, what);
}

/// Whether this thread is inside a mutation scope of the heap `h` (a wait for the collector
/// from here could wait for this very scope). False once the thread's record of scopes has been
/// destroyed: that happens only as the thread exits, after every scope on it has ended (a
/// mutator kept in a thread-local is dropped then, with this question asked).
pub(crate) fn in_scope_of(h: &Shared) -> bool {
    IN_SCOPE
        .try_with(|s| s.borrow().iter().any(|&(k, _)| k == key(h)))
        .unwrap_or(false)
}

/// The heap (by `Shared` address) of the outermost scope this thread is inside, if any: when
/// that scope ends, the thread is outside every scope.
pub(crate) fn outermost_scope() -> Option<usize> {
    IN_SCOPE
        .try_with(|s| s.borrow().first().map(|&(k, _)| k))
        .ok()
        .flatten()
}

/// Enter a scope of `record` on its owner's thread: wait for a late cycle to start if the
/// mutator allocated past the heap's bound before it
/// ([`wait_for_late_start`](crate::gc::collector::wait_for_late_start)), wait out any pause,
/// and scan the roots if a mark phase has not seen them yet.
///
/// # Panics
/// If this thread is already inside a scope of this heap (nesting scopes of two mutators of one
/// heap on one thread would deadlock the collector), if it runs drop glue for a sweep, or if
/// it is inside a scope of another heap in the order opposite to one seen before
/// ([`note_wait_for`]).
///
/// # Safety
/// The caller owns `record` (it is registered, on this thread) and is outside its scopes, and
/// the returned token is dropped, through [`exit`], when the scope ends.
pub(crate) unsafe fn enter<'a>(h: &'a Shared, record: &'a MutatorRecord) -> InScope<'a> {
    // A sweep running drop glue on this thread may hold up a pause (verify mode sweeps inside
    // one), which this entry would wait for.
    crate::gc::sweep::refuse_in_drop_glue("a mutation scope entered");
    // One access to the thread-local in the common case (no other scope open). (On a cleanup
    // thread, which waits for nothing here that `Heap::mutator` did not already record: its
    // mutators are made on it, `Mutator` being `!Send`.)
    let (nested, again) = IN_SCOPE.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_empty() {
            s.push((key(h), h.id));
            return (false, false);
        }
        (true, s.iter().any(|&(k, _)| k == key(h)))
    });
    // Panicked outside the borrow, so that a panic hook may ask which scopes are open.
    if again {
        panic!(
            "gc-core: this thread is already inside a mutation scope of this heap; nesting \
             scopes of two mutators of one heap on one thread would deadlock the collector"
        );
    }
    if nested {
        // Entering waits out a pause of `h`, holding back the other heaps' pauses meanwhile.
        note_wait_for(h, "a mutation scope entered");
        IN_SCOPE.with(|s| s.borrow_mut().push((key(h), h.id)));
    }
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
        if let Some(i) = s.iter().rposition(|&(k, _)| k == key(h)) {
            s.remove(i);
        }
    });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_wait_graph_finds_paths_and_forgets_heaps() {
        let edges = [(1, 2), (2, 3), (5, 1)];
        assert!(reaches(&edges, 1, 3));
        assert!(reaches(&edges, 5, 3));
        assert!(!reaches(&edges, 3, 1));
        assert!(!reaches(&edges, 2, 1));
        assert!(!reaches(&edges, 4, 4), "no edge, no path");
        let (x, y) = (new_heap_id(), new_heap_id());
        assert_ne!(x, y);
        WAITS.lock().extend([(x, y), (y, x + 1000)]);
        forget_heap(y);
        assert!(!WAITS.lock().iter().any(|&(a, b)| a == y || b == y));
    }

    /// A heap's edges leave the wait graph when the heap is dropped (a program that makes a
    /// heap per task inside a long-lived heap's scope would otherwise grow it for ever, and
    /// stale edges through dead heaps would refuse nestings that can no longer deadlock).
    #[test]
    fn a_dropped_heap_leaves_the_wait_graph() {
        use crate::{Config, Heap, Mutator, Rootable};
        type Unit = Rootable!['gc => ()];
        let (a, b) = (
            Heap::new(Config::default()).unwrap(),
            Heap::new(Config::default()).unwrap(),
        );
        let (ida, idb) = (a.shared().id, b.shared().id);
        let mut ma: Mutator<Unit> = a.mutator(|_| ());
        let mut mb: Mutator<Unit> = b.mutator(|_| ());
        ma.mutate(|_, _| mb.mutate(|_, _| ()));
        assert!(WAITS.lock().contains(&(ida, idb)));
        drop(mb);
        drop(b);
        assert!(!WAITS.lock().iter().any(|&(x, y)| x == idb || y == idb));
    }
}
