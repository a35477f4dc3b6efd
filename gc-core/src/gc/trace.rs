//! Tracing: how the collector finds the pointers inside an object.
//!
//! Every type stored in the heap (and every root) implements [`Trace`]. Its one job is to call
//! [`Trace::trace`] on each field that may hold a [`Gc`](crate::Gc), so that the marker reaches
//! every live object. Types with no traced field say so with `NEEDS_TRACE = false`; such objects
//! are allocated in **noscan** spans and the marker never reads them.
//!
//! # Why `Trace` is an `unsafe trait`
//!
//! The collector frees whatever tracing does not reach, and calls `trace` on one thread while
//! mutators run on others. An implementation is therefore a promise with three parts
//! (`docs/design.md` §9):
//!
//! 1. it reports every `Gc` the value owns (a missed edge is a use-after-free later);
//! 2. it reads only memory that is immutable since the object was initialised, or atomic
//!    (`GcCell`, `GcArray` slots): no `RefCell<Vec<Gc<_>>>`, no `Mutex<HashMap<_, Gc<_>>>`;
//! 3. it does not allocate, does not touch the heap through a `Mutation`, and does not panic.
//!
//! The impls in this file, and what `#[derive(Trace)]` accepts, keep that promise: interior
//! mutability (`Cell`, `RefCell`, `Mutex`, …) has **no** `Trace` impl, so a field such as
//! `RefCell<Vec<Gc<'gc, T>>>` is a compile error; pointer-free fields of any `'static` type can be
//! skipped with `#[gc(skip)]`. `Box`, `Vec`, `VecDeque`, `HashMap`, `HashSet`, `BTreeMap`,
//! `BTreeSet`, `Option` and tuples are traced through because a heap object is only ever
//! reached through `&T`: nothing can mutate them after allocation, except inside a
//! [`GcRefCell`](crate::GcRefCell), whose borrow flags keep mutators out while the marker
//! reads and whose barrier makes skipping a borrowed value safe.

use crate::gc::mark::tracer::Tracer;

/// A type the collector can trace. Derive it with `#[derive(Trace)]`.
///
/// # Safety
///
/// An implementation must, in `trace`, call `trace` on every value it owns that contains a
/// `Gc` (directly or transitively), must read only memory that is immutable since the value was
/// constructed or is accessed atomically, must not allocate on the GC heap, and must not panic.
/// `NEEDS_TRACE` may be `false` only if the type can never contain a `Gc` (the collector then
/// never calls `trace` on it).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be traced: it does not implement `Trace`",
    label = "not traceable",
    note = "a heap object's mutable fields go in `GcCell` (a `Gc`, a number, a `bool`), \
            `GcArray`/`GcVec` (sequences) or `GcRefCell` (any traced value, such as a `Vec` or \
            `HashMap`): the marker reads objects while mutators run, so `Cell`, `RefCell` and \
            `Mutex` are not traced",
    note = "a field that holds no `Gc` (and is `'static`) can be left untraced with \
            `#[gc(skip)]`; a type of your own can `#[derive(Trace)]`"
)]
pub unsafe trait Trace {
    /// Whether values of this type may contain GC pointers. `false` makes objects of this type
    /// **noscan**: they live in noscan spans and are never read by the marker.
    const NEEDS_TRACE: bool = true;

    /// Report every GC pointer reachable from `self` to `tracer`.
    fn trace(&self, tracer: &mut Tracer);
}

/// Pointer-free leaf types: nothing to trace.
macro_rules! leaf_trace {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: the type holds no `Gc`, so reporting nothing is complete.
        unsafe impl Trace for $t {
            const NEEDS_TRACE: bool = false;
            #[inline(always)]
            fn trace(&self, _: &mut Tracer) {}
        }
    )*};
}

leaf_trace!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    str,
    String,
    std::time::Duration,
    std::time::Instant,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicU8,
    std::sync::atomic::AtomicU16,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicI8,
    std::sync::atomic::AtomicI16,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicIsize,
);

// SAFETY: a `&'static str` points outside the heap and holds no `Gc`.
unsafe impl Trace for &'static str {
    const NEEDS_TRACE: bool = false;
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
}

// SAFETY: `PhantomData` holds nothing.
unsafe impl<T: ?Sized> Trace for std::marker::PhantomData<T> {
    const NEEDS_TRACE: bool = false;
    #[inline(always)]
    fn trace(&self, _: &mut Tracer) {}
}

// SAFETY: the payload is traced when present; an `Option` inside a heap object is only reached by
// `&`, so it cannot change after construction.
unsafe impl<T: Trace> Trace for Option<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(v) = self {
            v.trace(tracer);
        }
    }
}

// SAFETY: both variants are traced; immutable behind `&` as for `Option`.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE || E::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        match self {
            Ok(v) => v.trace(tracer),
            Err(e) => e.trace(tracer),
        }
    }
}

// SAFETY: a `Box` is uniquely owned; behind `&` its contents cannot be mutated or reallocated, so
// the marker reads memory that is immutable for the object's lifetime.
unsafe impl<T: Trace + ?Sized> Trace for Box<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        (**self).trace(tracer);
    }
}

// SAFETY: every element is traced.
unsafe impl<T: Trace> Trace for [T] {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::NEEDS_TRACE {
            for v in self {
                v.trace(tracer);
            }
        }
    }
}

// SAFETY: traced as its slice. Behind `&` a `Vec` cannot grow or reallocate, so the buffer the
// marker walks is the one it had when the object was initialised.
unsafe impl<T: Trace> Trace for Vec<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.as_slice().trace(tracer);
    }
}

// SAFETY: every element is traced; behind `&` (or a `GcRefCell` borrow, which keeps mutators
// out while the marker reads) the deque does not change.
unsafe impl<T: Trace> Trace for std::collections::VecDeque<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::NEEDS_TRACE {
            let (a, b) = self.as_slices();
            a.trace(tracer);
            b.trace(tracer);
        }
    }
}

// SAFETY: every key and value is traced (iteration reads the table, never hashes). The hasher
// state is `'static`, so it holds no `Gc` (which would go untraced, and which its drop glue
// could dereference after the sweep freed it). Unchanging as `VecDeque`.
unsafe impl<K: Trace, V: Trace, S: 'static> Trace for std::collections::HashMap<K, V, S> {
    const NEEDS_TRACE: bool = K::NEEDS_TRACE || V::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if Self::NEEDS_TRACE {
            for (k, v) in self {
                k.trace(tracer);
                v.trace(tracer);
            }
        }
    }
}

// SAFETY: every element is traced; the hasher as for `HashMap`.
unsafe impl<T: Trace, S: 'static> Trace for std::collections::HashSet<T, S> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::NEEDS_TRACE {
            for v in self {
                v.trace(tracer);
            }
        }
    }
}

// SAFETY: every key and value is traced (iteration never compares keys); as `VecDeque`.
unsafe impl<K: Trace, V: Trace> Trace for std::collections::BTreeMap<K, V> {
    const NEEDS_TRACE: bool = K::NEEDS_TRACE || V::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if Self::NEEDS_TRACE {
            for (k, v) in self {
                k.trace(tracer);
                v.trace(tracer);
            }
        }
    }
}

// SAFETY: every element is traced; as `BTreeMap`.
unsafe impl<T: Trace> Trace for std::collections::BTreeSet<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::NEEDS_TRACE {
            for v in self {
                v.trace(tracer);
            }
        }
    }
}

// SAFETY: traced as its slice.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.as_slice().trace(tracer);
    }
}

macro_rules! tuple_trace {
    ($(($($n:tt $t:ident),+)),* $(,)?) => {$(
        // SAFETY: every component is traced.
        unsafe impl<$($t: Trace),+> Trace for ($($t,)+) {
            const NEEDS_TRACE: bool = false $(|| $t::NEEDS_TRACE)+;
            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                $(self.$n.trace(tracer);)+
            }
        }
    )*};
}

tuple_trace!(
    (0 A),
    (0 A, 1 B),
    (0 A, 1 B, 2 C),
    (0 A, 1 B, 2 C, 3 D),
    (0 A, 1 B, 2 C, 3 D, 4 E),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F),
);
