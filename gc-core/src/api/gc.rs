//! `Gc<'gc, T>`: a pointer to a heap object, valid for one mutation scope.
//!
//! A `Gc` is one word, `Copy`, and dereferences to `&T`. The `'gc` brand ties it to the scope it
//! was obtained in (it is invariant, so two scopes' brands never unify), which is what lets the
//! collector free anything the roots do not reach whenever no scope is running.
//!
//! Heap objects are `Send + Sync`: a marker thread reads their traced fields while mutators run,
//! objects may be shared between mutators on different
//! threads through a [`Stash`](crate::Stash), and their drop glue may run on the sweeper thread.
//! Interior mutability therefore goes through atomics: [`GcCell`](crate::GcCell) for pointers and
//! one-word values, std atomics (with `#[gc(skip)]`) for plain data.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use crate::alloc::cache::size_class_for;
use crate::api::mutator::Mutation;
use crate::gc::mark::tracer::Tracer;
use crate::gc::object::{Info, Object};
use crate::gc::trace::Trace;
use crate::util::error::AllocError;

/// A garbage-collected pointer to a `T`, valid for the mutation scope `'gc`.
pub struct Gc<'gc, T> {
    pub(crate) ptr: NonNull<T>,
    pub(crate) _brand: PhantomData<(&'gc T, std::cell::Cell<&'gc ()>)>,
}

impl<T> Clone for Gc<'_, T> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Gc<'_, T> {}

// SAFETY: a `Gc<'_, T>` only gives `&T`, and every allocation requires `T: Send + Sync`; the
// brand keeps it inside its scope, during which the object cannot be freed.
unsafe impl<T: Send + Sync> Send for Gc<'_, T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync> Sync for Gc<'_, T> {}

impl<'gc, T: Trace + Send + Sync + 'gc> Gc<'gc, T> {
    /// The size class of a `T` (zero-sized types take the smallest slot, so that every
    /// object has its own address and mark bit); `None` for a large object.
    const SIZE_CLASS: Option<usize> = size_class_for(
        if std::mem::size_of::<T>() == 0 {
            1
        } else {
            std::mem::size_of::<T>()
        },
        std::mem::align_of::<T>(),
    );

    /// Allocate `value` on the heap.
    ///
    /// # Panics
    ///
    /// If the arena is exhausted (see [`Gc::try_new`] for the fallible form).
    #[inline]
    pub fn new(mc: &Mutation<'gc>, value: T) -> Gc<'gc, T> {
        match Self::try_new(mc, value) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// Allocate `value`, or return an error if the arena is exhausted (the value is dropped).
    #[inline]
    pub fn try_new(mc: &Mutation<'gc>, value: T) -> Result<Gc<'gc, T>, AllocError> {
        const {
            assert!(
                std::mem::align_of::<T>() <= 16,
                "gc-core: types aligned to more than 16 bytes cannot be allocated"
            )
        };
        let addr = mc.alloc_raw(
            &Info::<T>::INFO,
            Self::SIZE_CLASS,
            std::mem::size_of::<T>().max(1),
        )?;
        mc.shade_init(&value);
        let p = addr as *mut T;
        // SAFETY: `addr` is a fresh slot of at least `size_of::<T>()` bytes, aligned for `T`
        // (slots of 16-byte classes and classes ≥ 32 are 16-aligned, which `size_class_for`
        // picks for alignments above 8; large objects are page aligned), and owned by no one
        // else.
        unsafe { p.write(value) };
        Ok(Gc {
            // SAFETY: `addr` is non-null (it is inside the arena).
            ptr: unsafe { NonNull::new_unchecked(p) },
            _brand: PhantomData,
        })
    }
}

impl<'gc, T> Gc<'gc, T> {
    /// Whether two `Gc`s point to the same object.
    #[inline]
    pub fn ptr_eq(a: Gc<'gc, T>, b: Gc<'gc, T>) -> bool {
        a.ptr == b.ptr
    }

    /// The object's address (for hashing and identity; it does not change: objects never move).
    #[inline]
    pub fn as_ptr(self) -> *const T {
        self.ptr.as_ptr()
    }

    /// A reference valid for the whole scope (unlike `Deref`, not tied to this handle).
    #[inline]
    pub fn as_ref_gc(self) -> &'gc T {
        // SAFETY: the object is alive for the whole scope `'gc` (a collection cannot run while
        // the scope does) and is only accessed by shared reference.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    pub(crate) fn object(self) -> *const Object {
        self.ptr.as_ptr() as *const Object
    }

    /// Encode as a word (the object address), for [`Slot`](crate::Slot) implementations.
    #[inline]
    pub fn to_word(self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Decode a word made by [`Gc::to_word`].
    ///
    /// # Safety
    /// `w` must have come from `to_word` of a `Gc<'gc, T>` of the same scope (or of an earlier
    /// scope, if the object has been reachable from a root ever since).
    #[inline]
    pub unsafe fn from_word(w: usize) -> Gc<'gc, T> {
        Gc {
            // SAFETY: by the contract `w` is a non-null object address.
            ptr: unsafe { NonNull::new_unchecked(w as *mut T) },
            _brand: PhantomData,
        }
    }
}

impl<T> Deref for Gc<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the object is alive while the scope runs (see `as_ref`).
        unsafe { self.ptr.as_ref() }
    }
}

// SAFETY: a `Gc` is an edge to its object: reporting it is all there is to trace. The pointer
// itself is immutable (a `Gc` field changes only by replacing the whole enclosing value, which
// only cells allow, atomically).
unsafe impl<T> Trace for Gc<'_, T> {
    const NEEDS_TRACE: bool = true;
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        tracer.edge(self.object());
    }
}

impl<T: fmt::Debug> fmt::Debug for Gc<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for Gc<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
