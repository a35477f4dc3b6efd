//! Weak references: a pointer that does not keep its target alive.
//!
//! `Gc::downgrade` allocates a small **weak box** (a noscan object holding the target's address
//! in an atomic) and registers it with the heap. The marker never follows the box's pointer.
//! After mark termination, before anything is swept, the collector walks the registered boxes:
//! a box whose target did not survive the cycle has its pointer cleared (before the sweep can
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

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::api::cell::Slot;
use crate::api::gc::Gc;
use crate::api::mutator::Mutation;
use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::Tracer;
use crate::gc::object::Header;
use crate::gc::trace::Trace;
use crate::util::error::AllocError;

/// The heap object behind a [`GcWeak`].
#[doc(hidden)]
pub struct WeakBox {
    target: AtomicPtr<Header>,
}

impl WeakBox {
    /// The target's header, or null once cleared.
    pub(crate) fn target(&self) -> *const Header {
        self.target.load(Ordering::Acquire)
    }
}

// SAFETY: the target is deliberately not traced (that is what makes the reference weak).
unsafe impl Trace for WeakBox {
    const NEEDS_TRACE: bool = false;
    fn trace(&self, _: &mut Tracer) {}
}

/// A weak reference to a `T`. Copy; store it in cells and arrays like a `Gc`.
pub struct GcWeak<'gc, T> {
    inner: Gc<'gc, WeakBox>,
    _t: PhantomData<Gc<'gc, T>>,
}

impl<T> Clone for GcWeak<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for GcWeak<'_, T> {}

impl<'gc, T: Trace + Send + Sync + 'gc> Gc<'gc, T> {
    /// A weak reference to this object.
    ///
    /// # Panics
    /// If the arena is exhausted (see [`Gc::try_downgrade`]).
    pub fn downgrade(self, mc: &Mutation<'gc>) -> GcWeak<'gc, T> {
        match self.try_downgrade(mc) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        }
    }

    /// A weak reference to this object, or an error if the arena cannot hold the weak box.
    pub fn try_downgrade(self, mc: &Mutation<'gc>) -> Result<GcWeak<'gc, T>, AllocError> {
        let inner = Gc::try_new(
            mc,
            WeakBox {
                target: AtomicPtr::new(self.header() as *mut Header),
            },
        )?;
        mc.shared.weaks.lock().push(ObjAddr(inner.header()));
        Ok(GcWeak {
            inner,
            _t: PhantomData,
        })
    }
}

impl<'gc, T> GcWeak<'gc, T> {
    /// The target, if it has not been collected.
    ///
    /// The answer holds for the rest of the scope: a target handed out survives at least until
    /// the scope ends (see [`crate::alloc::sweepgen`] for why no sweep can free it meanwhile).
    pub fn upgrade(&self, mc: &Mutation<'gc>) -> Option<Gc<'gc, T>> {
        let h = mc.shared;
        let p = crate::alloc::sweepgen::upgrade_target(
            &h.central.sweep_gen,
            || self.inner.target.load(Ordering::Acquire) as usize,
            |p| is_live(h, p as *const Header),
        )?;
        if h.marking.load(Ordering::Relaxed) {
            // The target may be outside the cycle's snapshot (reachable only weakly at STW 1):
            // now that it is strongly held again it must be marked (see `crate::gc::concurrent`).
            crate::gc::barrier::record(mc, ObjAddr(p as *const Header));
        }
        // SAFETY: `p` survived the last marking (`upgrade_target`: a dead target is nulled
        // before sweeping may begin, and in the window one that did not survive is refused),
        // it was shaded just above if a cycle is marking, and a cycle that starts later cannot
        // finish marking before this scope ends (also across a blocking region: see
        // `crate::api::blocking`). So it is alive for the rest of the scope. The box was made from a
        // `Gc<T>`, so the type is right.
        Some(unsafe { Gc::from_word(p) })
    }

    /// Whether the target has been collected (its reference cleared). Right after a cycle,
    /// until the collector has cleared the dead references, a target that did not survive may
    /// still read as not dead here while [`GcWeak::upgrade`] already refuses it: `upgrade` is
    /// the authority.
    pub fn is_dead(&self) -> bool {
        self.inner.target.load(Ordering::Acquire).is_null()
    }
}

// SAFETY: an edge to the weak box only, never to the target.
unsafe impl<T> Trace for GcWeak<'_, T> {
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        self.inner.trace(tracer);
    }
}

// SAFETY: the handle is the box's non-null address.
unsafe impl<'gc, T: 'gc> Slot<'gc> for GcWeak<'gc, T> {
    fn to_word(self) -> usize {
        self.inner.to_word()
    }
    unsafe fn from_word(w: usize) -> Self {
        GcWeak {
            // SAFETY: forwarded contract.
            inner: unsafe { Gc::from_word(w) },
            _t: PhantomData,
        }
    }
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
    weaks.retain(|&ObjAddr(b)| {
        if !is_live(h, b) {
            return false;
        }
        // SAFETY: `b` is a marked (live) weak box: registered boxes are `GcBox<WeakBox>`.
        let wb = unsafe { &(*(b as *const crate::gc::object::GcBox<WeakBox>)).value };
        let t = wb.target.load(Ordering::Relaxed);
        if t.is_null() {
            return false;
        }
        if !is_live(h, t) {
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
pub(crate) fn is_live(h: &Shared, obj: *const Header) -> bool {
    let span = h.arena.span_of(obj as usize);
    if span.is_null() {
        return false;
    }
    // SAFETY: non-null page-map entries point to in-use spans.
    let span = unsafe { &*span };
    span.is_marked(span.slot_index(obj as usize)) || h.central.is_swept(span)
}

// SAFETY: `None` is 0, which no box address is.
unsafe impl<'gc, T: 'gc> Slot<'gc> for Option<GcWeak<'gc, T>> {
    fn to_word(self) -> usize {
        self.map_or(0, |w| w.to_word())
    }
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract; 0 is `None`.
        (w != 0).then(|| unsafe { GcWeak::from_word(w) })
    }
}
