//! Weak references: a pointer that does not keep its target alive.
//!
//! `Gc::downgrade` allocates a small **weak box** (a noscan object holding the target's address
//! in an atomic) and registers it with the heap. The marker never follows the box's pointer.
//! After mark termination, before anything is swept, the collector walks the registered boxes:
//! a box whose target did not survive the cycle, or is dead to weak references though it
//! survived (queued for finalization, or reached only through queued objects:
//! `gc::finalize`), has its pointer cleared (before the sweep can
//! free the target, so a cleared box never points at a reused slot); boxes that are themselves
//! dead, or already cleared, leave the registry. The concurrent collector does this with the
//! world running, right after STW 2, in the **weak-clearing window** in which nothing is swept
//! ([`crate::alloc::sweepgen`]): a box or target allocated meanwhile is unmarked but alive, which
//! [`is_live`] recognises by its span (tested in `tests/concurrent.rs`,
//! `weak_references_made_while_weak_clearing_is_pending`).
//!
//! `upgrade` outside the window reads the pointer: non-null means the target is alive for the
//! rest of the scope (the last clearing nulled it otherwise, and a cycle that starts later
//! cannot finish marking before the scope ends, blocking regions included). Inside the window it holds the window open while it also checks the target's mark
//! (the linearisation point is that read lock; [`crate::alloc::sweepgen::upgrade_target`]). While
//! marking, upgrade shades the target, so an upgraded object survives the cycle in progress.

use std::sync::atomic::{AtomicPtr, Ordering};

use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::Tracer;
use crate::gc::object::Object;
use crate::gc::registry::InScope;
use crate::gc::trace::Trace;

/// The heap object behind a `GcWeak` (the API type).
#[doc(hidden)]
pub struct WeakBox {
    target: AtomicPtr<Object>,
    /// The heap's count of resurrection rounds when the box was made: a target queued for
    /// finalization by a later round is dead to this reference (`Finalization::queued_since`).
    born: u64,
}

impl WeakBox {
    pub(crate) fn new(h: &Shared, target: *const Object) -> WeakBox {
        WeakBox {
            target: AtomicPtr::new(target as *mut Object),
            born: h.finalize.rounds(),
        }
    }

    /// The target, or null once cleared.
    pub(crate) fn target(&self) -> *const Object {
        self.target.load(Ordering::Acquire)
    }
}

// SAFETY: the target is deliberately not traced (that is what makes the reference weak).
unsafe impl Trace for WeakBox {
    const NEEDS_TRACE: bool = false;
    fn trace(&self, _: &mut Tracer) {}
}

/// Register the weak box at `b` (just allocated) for clearing.
pub(crate) fn register(h: &Shared, b: *const Object) {
    h.weaks.lock().push(ObjAddr(b));
}

/// The target of the weak box `b`, or `None` if it did not survive (`GcWeak::upgrade`).
///
/// A target returned stays alive for the rest of the scope: it survived the last marking
/// ([`upgrade_target`](crate::alloc::sweepgen::upgrade_target): a dead target is nulled before
/// sweeping may begin, and in the weak-clearing window one that did not survive is refused); it
/// is shaded if a cycle is marking (it may be outside the cycle's snapshot, reachable only
/// weakly at STW 1, and is strongly held again); and a cycle that starts later cannot finish
/// marking before this scope ends (also across a blocking region: see `gc::blocking`). A
/// target queued for finalization in the current cycle is refused: it is dead to weak
/// references from then on (`gc::finalize`), as is, once a first resurrection round has queued
/// objects, any target marking left unmarked before it. The set of these objects is filled while
/// marking completes, and emptied once the weak-clearing window has closed (by which time the
/// reference has been cleared), so it is tested twice: as part of the decision made with the
/// window pinned (after the pin is released the window may close and the set be emptied, and
/// a test then would pass a target whose reference already reads as dead), and, outside the
/// window, after the read (marking that resumes after resurrection, before the window opens:
/// the reference is not cleared yet, and the set cannot be emptied before this scope ends).
pub(crate) fn upgrade(h: &Shared, scope: &InScope<'_>, b: &WeakBox) -> Option<*const Object> {
    let p = crate::alloc::sweepgen::upgrade_target(
        &h.mheap.central.sweep_gen,
        || b.target() as usize,
        |p| is_live(h, p as *const Object) && !h.finalize.queued_since(b.born, p),
    )? as *const Object;
    if h.finalize.queued_since(b.born, p as usize) {
        return None;
    }
    if h.mark.marking.load(Ordering::Relaxed) {
        crate::gc::barrier::record(h, scope, ObjAddr(p));
    }
    Some(p)
}

/// Clear the weak boxes whose targets did not survive the cycle (after mark termination has
/// advanced the sweep generation, before anything is swept).
///
/// The concurrent collector runs this with the world running, in the weak-clearing window, which
/// keeps every span unswept (so mark bits are valid and no box or target is freed): it takes the registry,
/// filters it, and puts the survivors back beside the boxes registered meanwhile (allocated
/// after marking, so not in the taken list).
pub(crate) fn process_weaks(h: &Shared) {
    let mut weaks = std::mem::take(&mut *h.weaks.lock());
    #[cfg(all(test, not(loom)))]
    if let Some(f) = AFTER_TAKE.with(|f| f.borrow_mut().take()) {
        f();
    }
    weaks.retain(|&ObjAddr(b)| {
        if !is_live(h, b) {
            return false;
        }
        // SAFETY: `b` is a marked (live) weak box: registered objects are `WeakBox`es.
        let wb = unsafe { &*(b as *const WeakBox) };
        let t = wb.target.load(Ordering::Relaxed);
        if t.is_null() {
            return false;
        }
        if !is_live(h, t) || h.finalize.queued_since(wb.born, t as usize) {
            wb.target.store(std::ptr::null_mut(), Ordering::Release);
            return false;
        }
        true
    });
    h.weaks.lock().extend(weaks);
}

/// Whether the object at `obj` survives the cycle that just marked: it is marked, or it was
/// allocated after mark termination. Valid after marking, before its span is swept (world
/// stopped, or in the weak-clearing window, which holds sweeping off).
///
/// The second case matters while the collector clears weak references with the world running:
/// objects allocated meanwhile are not marked (marking is over) yet alive. They are all in
/// spans taken fresh from the arena after mark termination (caches are flushed in STW 2 and
/// nothing is swept, so no older span is handed out), which carry the current sweep generation,
/// while every span that existed at mark termination is still unswept.
pub(crate) fn is_live(h: &Shared, obj: *const Object) -> bool {
    // SAFETY: called with the world stopped or in the weak-clearing window, where nothing is
    // swept, so no span is freed meanwhile.
    let Some(span) = (unsafe { h.mheap.arena.span_of_live(obj as usize) }) else {
        return false;
    };
    span.is_marked(span.slot_index(obj as usize)) || h.mheap.central.is_swept(span)
}

#[cfg(all(test, not(loom)))]
thread_local! {
    /// Testing: run once, by this thread's next [`process_weaks`], right after it has taken
    /// the registry (where a `downgrade` in another scope may register a box meanwhile).
    static AFTER_TAKE: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::RefCell::new(None) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{Config, Gc, GcWeak, Heap, Mutator, Rootable};

    #[derive(crate::Trace)]
    struct Held<'gc> {
        target: Gc<'gc, u64>,
        weak: GcWeak<'gc, u64>,
    }

    /// A weak box registered while the registry is being processed (taken, filtered with the
    /// world running, put back) stays registered beside the survivors: lost, it would never be
    /// cleared, and once its target died an upgrade would hand out freed memory. The box here
    /// is one already made, taken out of the registry and registered again at that moment.
    #[test]
    fn a_weak_box_registered_while_the_registry_is_processed_stays_registered() {
        let heap = Heap::new(Config::default().gc_percent(None)).unwrap();
        let m: Mutator<Rootable!['gc => Held<'gc>]> = heap.mutator(|mc| {
            let target = Gc::new(mc, 5u64);
            Held {
                target,
                weak: target.downgrade(mc),
            }
        });
        let h = heap.shared();
        let b = h.weaks.lock().pop().expect("the weak box registered");
        let again = heap.clone();
        AFTER_TAKE
            .with(|f| *f.borrow_mut() = Some(Box::new(move || register(again.shared(), b.0))));
        process_weaks(h);
        assert!(
            h.weaks.lock().iter().any(|w| w.0 == b.0),
            "the box registered meanwhile was dropped from the registry"
        );
        drop(m);
    }
}
