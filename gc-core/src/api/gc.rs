//! `Gc<'gc, T>`: a pointer to a heap object, valid for one mutation scope.
//!
//! A `Gc` is one word, `Copy`, and dereferences to `&T`. (A `Gc` to a trait object,
//! `Gc<'gc, dyn Trait>`, made with [`unsize!`](crate::unsize), is two words: the address and
//! the vtable.) The `'gc` brand ties it to the scope it
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
use crate::gc::object::{Info, Object, TypeInfo};
use crate::gc::trace::Trace;
use crate::util::error::AllocError;

/// A garbage-collected pointer to a `T`, valid for the mutation scope `'gc`.
///
/// `T` may be a trait object: [`unsize!`](crate::unsize) turns a `Gc<'gc, T>` into a
/// `Gc<'gc, dyn Trait + 'gc>` for any trait `T` implements, as `Box<T>` coerces to
/// `Box<dyn Trait>`. The collector still traces the object as the `T` it was allocated as.
///
/// Transparent over its non-null pointer, so that `Option<Gc<'gc, T>>` stores `None` as a null
/// word (which the marker's pointer words rely on, see [`Trace::POINTER_WORDS`]).
#[repr(transparent)]
pub struct Gc<'gc, T: ?Sized> {
    pub(crate) ptr: NonNull<T>,
    pub(crate) _brand: PhantomData<(&'gc T, std::cell::Cell<&'gc ()>)>,
}

impl<T: ?Sized> Clone for Gc<'_, T> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Gc<'_, T> {}

// SAFETY: a `Gc<'_, T>` only gives `&T`, and every allocation requires `T: Send + Sync`; the
// brand keeps it inside its scope, during which the object cannot be freed.
unsafe impl<T: Send + Sync + ?Sized> Send for Gc<'_, T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync + ?Sized> Sync for Gc<'_, T> {}

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
    /// Where [`Gc::try_new`] (the fallible form) would return an
    /// [`AllocError`]: the arena is exhausted, a heap limit or the memory
    /// limit's fail-fast window refuses, too many types; with the error's message.
    #[inline(always)]
    pub fn new(mc: &Mutation<'gc>, value: T) -> Gc<'gc, T> {
        let info = Self::type_info();
        match Self::alloc_fast(mc, info) {
            // SAFETY: a fresh slot for a `T` (see `alloc_fast`).
            Some(p) => unsafe { Self::init(p, value) },
            None => Self::new_slow(mc, value, info),
        }
    }

    /// Allocate `value`, or return the [`AllocError`] that refused it (the
    /// value is dropped).
    #[inline(always)]
    pub fn try_new(mc: &Mutation<'gc>, value: T) -> Result<Gc<'gc, T>, AllocError> {
        let info = Self::type_info();
        match Self::alloc_fast(mc, info) {
            // SAFETY: a fresh slot for a `T` (see `alloc_fast`).
            Some(p) => Ok(unsafe { Self::init(p, value) }),
            None => Self::try_new_slow(mc, value, info),
        }
    }

    /// `T`'s `TypeInfo`, taken in one place for both allocation paths of `new` and
    /// `try_new`: the cache finds a type's span by the `TypeInfo`'s address, and each use of
    /// a constant may be given an address of its own (two addresses for one type are sound,
    /// but cost a span class each, and a fast path with one would never find the slow path's
    /// span).
    #[inline(always)]
    fn type_info() -> &'static TypeInfo {
        &Info::<T>::INFO
    }

    /// The allocation fast path: a fresh slot of `T`'s size class from the mutator's cache
    /// (`None`: take the slow path, which refills the cache or allocates a large object, and
    /// shades the value if the scope must).
    #[inline(always)]
    fn alloc_fast(mc: &Mutation<'gc>, info: &'static TypeInfo) -> Option<*mut T> {
        const {
            assert!(
                std::mem::align_of::<T>() <= 16,
                "gc-core: types aligned to more than 16 bytes cannot be allocated"
            )
        };
        let class = Self::SIZE_CLASS?;
        let addr = mc.alloc_fast(info, class, T::NEEDS_TRACE)?;
        Some(addr as *mut T)
    }

    /// Move `value` into the fresh slot `p`.
    ///
    /// # Safety
    /// `p` must be a fresh slot of at least `size_of::<T>()` bytes, aligned for `T`, owned by
    /// no one else, allocated for `T`'s type in this scope, and (if `T` holds pointers and the
    /// scope must shade what it stores into new objects) `value` shaded.
    #[inline(always)]
    unsafe fn init(p: *mut T, value: T) -> Gc<'gc, T> {
        // SAFETY: by the contract (slots of 16-byte classes and classes ≥ 32 are 16-aligned,
        // which `size_class_for` picks for alignments above 8; large objects are page
        // aligned).
        unsafe { p.write(value) };
        Gc {
            // SAFETY: `p` is non-null (it is inside the arena).
            ptr: unsafe { NonNull::new_unchecked(p) },
            _brand: PhantomData,
        }
    }

    /// [`Gc::new`] when the fast path has no slot.
    #[cold]
    #[inline(never)]
    fn new_slow(mc: &Mutation<'gc>, value: T, info: &'static TypeInfo) -> Gc<'gc, T> {
        match Self::try_new_slow(mc, value, info) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Gc::try_new`] when the fast path has no slot: refill the cache (or allocate a large
    /// object), shade the value if the scope must.
    #[inline(never)]
    fn try_new_slow(
        mc: &Mutation<'gc>,
        value: T,
        info: &'static TypeInfo,
    ) -> Result<Gc<'gc, T>, AllocError> {
        let (addr, _) = mc.alloc_raw(info, Self::SIZE_CLASS, std::mem::size_of::<T>().max(1))?;
        mc.shade_init(&value);
        // SAFETY: `addr` is a fresh slot of at least `size_of::<T>()` bytes of `T`'s type and
        // class, aligned for `T` (see `init`), owned by no one else; the value was shaded.
        Ok(unsafe { Self::init(addr as *mut T, value) })
    }
}

impl<'gc, T: ?Sized> Gc<'gc, T> {
    /// Whether two `Gc`s point to the same object (by address: two `Gc<dyn Trait>` of one
    /// object are equal whatever their vtables).
    #[inline]
    pub fn ptr_eq(a: Gc<'gc, T>, b: Gc<'gc, T>) -> bool {
        std::ptr::addr_eq(a.ptr.as_ptr(), b.ptr.as_ptr())
    }

    /// The object's address (for hashing and identity; it does not change: objects never move).
    #[inline]
    pub fn as_ptr(self) -> *const T {
        self.ptr.as_ptr()
    }

    /// A reference valid for the whole scope (unlike `Deref`, not tied to this handle).
    #[inline]
    pub fn as_ref_gc(self) -> &'gc T {
        // SAFETY: the object is alive for the whole scope `'gc`: no mark termination (and so no
        // sweep) runs while the scope is inside, and one that runs while it is in a blocking
        // region treats what the scope can reach as live (`gc::blocking`); it is only accessed
        // by shared reference.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    pub(crate) fn object(self) -> *const Object {
        self.ptr.as_ptr() as *const Object
    }

    /// The pointer, for [`unsize!`](crate::unsize) only.
    #[doc(hidden)]
    #[inline(always)]
    pub fn __as_non_null(self) -> NonNull<T> {
        self.ptr
    }

    /// A `Gc` of `gc`'s scope from `ptr`, for [`unsize!`](crate::unsize) only.
    ///
    /// # Safety
    ///
    /// `ptr` must point to the object `gc` points to, with metadata valid for the value there
    /// (what an unsizing coercion of `gc.__as_non_null()` gives).
    #[doc(hidden)]
    #[inline(always)]
    pub unsafe fn __unsized<U: ?Sized>(gc: Gc<'gc, T>, ptr: NonNull<U>) -> Gc<'gc, U> {
        debug_assert!(std::ptr::addr_eq(gc.ptr.as_ptr(), ptr.as_ptr()));
        Gc {
            ptr,
            _brand: PhantomData,
        }
    }
}

impl<'gc, T> Gc<'gc, T> {
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

impl<T: ?Sized> Deref for Gc<'_, T> {
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
//
// Pointer words: a thin `Gc` is one word, the address it reports (a fat one, to an unsized
// value, is left to `trace`). `#[repr(transparent)]` over `NonNull` makes an `Option<Gc>`'s
// `None` the null word.
unsafe impl<T: ?Sized> Trace for Gc<'_, T> {
    const NEEDS_TRACE: bool = true;
    const POINTER_WORDS: Option<u64> = if std::mem::size_of::<Self>() == 8 {
        Some(1 << (std::mem::offset_of!(Self, ptr) / 8))
    } else {
        None
    };
    const NONE_IS_NULL: bool = std::mem::size_of::<Self>() == 8;
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        tracer.edge(self.object());
    }
}

impl<T: fmt::Debug + ?Sized> fmt::Debug for Gc<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display + ?Sized> fmt::Display for Gc<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// Turn a `Gc<'gc, T>` into a `Gc<'gc, U>` where `U` is an unsized type `T` coerces to, in
/// practice a trait object: `unsize!(gc => dyn Shape + 'gc)`. The stable-Rust stand-in for the
/// coercion `Box<T>` has built in (`CoerceUnsized` is unstable).
///
/// The macro asks the compiler for the coercion itself (a typed `let` of the raw pointer), so
/// only what Rust would coerce compiles: `unsize!(gc => u64)` or a trait `T` does not implement
/// is a type error, never a reinterpretation. The object is still traced, dropped and verified
/// as the `T` it was allocated as (the collector keeps the type with its span, not in the
/// pointer).
///
/// ```
/// use gc_core::{unsize, Config, Gc, Heap, Mutator, Rootable, Trace};
///
/// trait Shape: Send + Sync {
///     fn area(&self) -> f64;
/// }
/// #[derive(Trace)]
/// struct Square(f64);
/// impl Shape for Square {
///     fn area(&self) -> f64 { self.0 * self.0 }
/// }
/// #[derive(Trace)]
/// struct Circle(f64);
/// impl Shape for Circle {
///     fn area(&self) -> f64 { 3.0 * self.0 * self.0 }
/// }
///
/// let heap = Heap::new(Config::default()).unwrap();
/// let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
/// let total = m.mutate(|mc, _| {
///     let shapes: Vec<Gc<dyn Shape>> = vec![
///         unsize!(Gc::new(mc, Square(2.0)) => dyn Shape),
///         unsize!(Gc::new(mc, Circle(1.0)) => dyn Shape),
///     ];
///     shapes.iter().map(|s| s.area()).sum::<f64>()
/// });
/// assert_eq!(total, 7.0);
/// ```
#[macro_export]
macro_rules! unsize {
    ($gc:expr => $ty:ty) => {{
        let gc = $gc;
        // Only an unsizing coercion (or none) turns `NonNull<T>` into `NonNull<$ty>` here.
        let ptr: ::core::ptr::NonNull<$ty> = gc.__as_non_null();
        // SAFETY: `ptr` is `gc`'s own pointer after an unsizing coercion: the same object, with
        // the metadata of the type it was allocated as.
        unsafe { $crate::Gc::__unsized(gc, ptr) }
    }};
}
