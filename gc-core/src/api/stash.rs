//! The stash: heap-wide roots that keep objects alive across scopes and threads.
//!
//! A [`Stash<R>`] is a `'static`, `Send + Sync` handle to one object of type `Root<'gc, R>`.
//! While it exists the object is a root. Any mutator of the same heap can [`fetch`](Stash::fetch)
//! it inside its own scope, which is how mutators on different threads share objects: a `Gc` of
//! one scope can never be used in another, but a stash can carry the object between them.
//! Sharing is sound because every heap object is `Send + Sync` (see [`Gc`]). A
//! [`StashValue<R>`] does the same for a [`NanBox`] value (a number, an immediate, or a pointer).

use std::marker::PhantomData;
use std::sync::Arc;

use crate::api::gc::Gc;
use crate::api::heap::Owner;
use crate::api::mutator::Mutation;
use crate::api::nanbox::{NanBox, Unboxed};
use crate::api::root::{Root, Rootable};
use crate::gc::heap::ObjAddr;

/// A heap-wide root holding one object of type `Root<'gc, R>`.
pub struct Stash<R: for<'gc> Rootable<'gc>> {
    owner: Arc<Owner>,
    slot: usize,
    /// Invariant in `R` (and `Send + Sync` whatever `R` is). `fetch` rebuilds the object's type
    /// from the marker, so a stash covariant in `R` would let a user's marker that is covariant
    /// in a type parameter view a stash of `Root<'gc, M<A>>` as one of `Root<'gc, M<B>>` for a
    /// supertype `B` of `A`, store a `B` into the object through it, and read it back as an `A`.
    _r: PhantomData<fn(R) -> R>,
}

impl<'gc> Mutation<'gc> {
    /// Keep `gc` alive beyond this scope; fetch it back (in any mutator of this heap) with
    /// [`Stash::fetch`].
    pub fn stash<R>(&self, gc: Gc<'gc, Root<'gc, R>>) -> Stash<R>
    where
        R: for<'x> Rootable<'x>,
        Root<'gc, R>: Sized,
    {
        let slot = crate::gc::roots::stash(self.shared, ObjAddr(gc.object()));
        Stash {
            owner: self.owner(),
            slot,
            _r: PhantomData,
        }
    }
}

impl<R: for<'gc> Rootable<'gc>> Stash<R> {
    /// The stashed object, as a `Gc` of the current scope.
    ///
    /// # Panics
    /// If `mc` belongs to a different heap.
    pub fn fetch<'gc>(&self, mc: &Mutation<'gc>) -> Gc<'gc, Root<'gc, R>>
    where
        Root<'gc, R>: Sized,
    {
        assert!(
            std::ptr::eq(&**self.owner.shared, mc.shared),
            "gc-core: Stash::fetch with a mutator of another heap"
        );
        let a = self.owner.shared.stash.lock().get(self.slot);
        // SAFETY: the slot holds the address of a `Root<'_, R>` object stored by `stash`, kept
        // alive as a root since; the returned `Gc` is branded with this scope.
        unsafe { Gc::from_word(a.0 as usize) }
    }
}

/// A heap-wide root holding one [`NanBox`] value: a number, an immediate, or a pointer to a
/// `Root<'gc, R>` object, which is then kept alive as [`Stash`] keeps one. Made by
/// [`Mutation::stash_value`]; `Send + Sync`, so an interpreter can hand a value of its language
/// to another thread (or keep it across scopes) without boxing it in an object first.
pub struct StashValue<R: for<'gc> Rootable<'gc>> {
    inner: StashedBits<R>,
}

enum StashedBits<R: for<'gc> Rootable<'gc>> {
    /// The value pointed to an object: stashed as such.
    Ptr(Stash<R>),
    /// A number or an immediate: its bits (no object to keep alive).
    Bits(u64),
}

impl<'gc> Mutation<'gc> {
    /// Keep the value `v` beyond this scope: a pointer's object stays alive as with
    /// [`Mutation::stash`], a number or immediate is kept as it is. Fetch it back (in any
    /// mutator of this heap) with [`StashValue::fetch`].
    pub fn stash_value<R>(&self, v: NanBox<'gc, Root<'gc, R>>) -> StashValue<R>
    where
        R: for<'x> Rootable<'x>,
        Root<'gc, R>: Sized,
    {
        let inner = match v.unbox() {
            Unboxed::Ptr(gc) => StashedBits::Ptr(self.stash(gc)),
            _ => StashedBits::Bits(v.to_bits()),
        };
        StashValue { inner }
    }
}

impl<R: for<'gc> Rootable<'gc>> StashValue<R> {
    /// The stashed value, in the current scope.
    ///
    /// # Panics
    /// If the value is a pointer and `mc` belongs to a different heap.
    pub fn fetch<'gc>(&self, mc: &Mutation<'gc>) -> NanBox<'gc, Root<'gc, R>>
    where
        Root<'gc, R>: Sized,
    {
        match &self.inner {
            StashedBits::Ptr(s) => NanBox::gc(s.fetch(mc)),
            // A number or an immediate: bits that `NanBox::to_bits` gave for a non-pointer,
            // which no lifetime or heap can invalidate.
            StashedBits::Bits(b) => NanBox::from_bits(*b),
        }
    }
}

impl<R: for<'gc> Rootable<'gc>> Clone for StashValue<R> {
    fn clone(&self) -> Self {
        StashValue {
            inner: match &self.inner {
                StashedBits::Ptr(s) => StashedBits::Ptr(s.clone()),
                StashedBits::Bits(b) => StashedBits::Bits(*b),
            },
        }
    }
}

impl<R: for<'gc> Rootable<'gc>> Clone for Stash<R> {
    fn clone(&self) -> Self {
        let mut t = self.owner.shared.stash.lock();
        let a = t.get(self.slot);
        // No shading: the object is in the stash already, so it was greyed at this cycle's
        // STW 1 (with every stash slot) or shaded when stashed during marking.
        let slot = t.insert(a);
        Stash {
            owner: self.owner.clone(),
            slot,
            _r: PhantomData,
        }
    }
}

impl<R: for<'gc> Rootable<'gc>> Drop for Stash<R> {
    fn drop(&mut self) {
        let mut t = self.owner.shared.stash.lock();
        t.remove(self.slot);
    }
}
