//! Weak references: [`GcWeak`], a pointer that does not keep its target alive (the clearing
//! protocol is in `gc::weak`).

use std::marker::PhantomData;

use crate::api::cell::Slot;
use crate::api::gc::Gc;
use crate::api::mutator::Mutation;
use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;
use crate::gc::weak::WeakBox;
use crate::util::error::AllocError;

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
        let inner = Gc::try_new(mc, WeakBox::new(mc.shared, self.object()))?;
        crate::gc::weak::register(mc.shared, inner.object());
        Ok(GcWeak {
            inner,
            _t: PhantomData,
        })
    }
}

impl<'gc, T> GcWeak<'gc, T> {
    /// The target, if it has not been collected. A target queued for finalization, or
    /// unreachable in the cycle that queued objects and kept alive only through them since,
    /// reads as dead from that cycle on (to references made before it: `GcFinalizers`).
    ///
    /// The answer holds for the rest of the scope: a target handed out survives at least until
    /// the scope ends (`docs/design.md`, "`GcWeak::upgrade`'s linearisation point", says why
    /// no sweep can free it meanwhile).
    pub fn upgrade(&self, mc: &Mutation<'gc>) -> Option<Gc<'gc, T>> {
        let p = crate::gc::weak::upgrade(mc.shared, mc.scope(), &self.inner)?;
        // SAFETY: `upgrade` returns a target that stays alive for the rest of the scope (see
        // there); the box was made from a `Gc<T>`, so the type is right.
        Some(unsafe { Gc::from_word(p as usize) })
    }

    /// Whether the reference has been cleared: its target collected, or dead to it as
    /// [`GcWeak::upgrade`] says (finalization). Right after a cycle,
    /// until the collector has cleared the dead references, a target that did not survive may
    /// still read as not dead here while [`GcWeak::upgrade`] already refuses it: `upgrade` is
    /// the authority.
    pub fn is_dead(&self) -> bool {
        self.inner.target().is_null()
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
// `WORD_EDGE`: the word is also the one edge the handle's `trace` reports.
unsafe impl<'gc, T: 'gc> Slot<'gc> for GcWeak<'gc, T> {
    const WORD_EDGE: bool = true;
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

// SAFETY: `None` is 0, which no box address is.
// `WORD_EDGE`: `None` reports nothing; `Some` is the handle's word, the one edge its
// `trace` reports.
unsafe impl<'gc, T: 'gc> Slot<'gc> for Option<GcWeak<'gc, T>> {
    const WORD_EDGE: bool = true;
    fn to_word(self) -> usize {
        self.map_or(0, |w| w.to_word())
    }
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract; 0 is `None`.
        (w != 0).then(|| unsafe { GcWeak::from_word(w) })
    }
}
