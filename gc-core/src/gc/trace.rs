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
/// never calls `trace` on it). `POINTER_WORDS`, if `Some`, and `NONE_IS_NULL`, if `true`, must
/// keep the promises in their documentation: the marker then reads the value's words instead
/// of calling `trace`.
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

    /// The words of a value that hold GC pointers, when reading them is all `trace` does: a bit
    /// mask, bit `k` for the 8-byte word at byte offset `8 k` (Go keeps the same "pointer
    /// bitmap" per type). The marker then reads those words itself instead of calling `trace`
    /// (see `docs/design.md` §5). `None` (the default for a type that may hold a `Gc`): the
    /// marker calls `trace`. `#[derive(Trace)]` computes it for a struct from its fields'; a
    /// hand-written impl is best left with the default.
    ///
    /// `Some(mask)` is a promise, for every value of the type, that (1) `trace` reports exactly
    /// one edge per set bit whose word is not 0, the object whose address is the word's value
    /// (as a `Gc` holds it), and nothing else; (2) each such word is initialised, 8-byte
    /// aligned within the value, and either never written after the value was constructed or
    /// only written atomically, so that an atomic load of it races with nothing. A type that
    /// cannot hold a `Gc` has no pointer words: `Some(0)`.
    const POINTER_WORDS: Option<u64> = if Self::NEEDS_TRACE { None } else { Some(0) };

    /// Whether `Option<Self>` is `None` exactly when every word of [`Trace::POINTER_WORDS`] is
    /// 0, with a `Some`'s words those of its value (a `Gc`: a non-null pointer that
    /// `Option` stores as null for `None`), so that `Option<Self>` has the same pointer words.
    #[doc(hidden)]
    const NONE_IS_NULL: bool = false;

    /// Not API: what `#[derive(Trace)]` computes a struct's pointer words with, and checks a
    /// `#[gc(unsafe_drop)]` type's [`UnsafeDrop`] promise through (see `DeriveKit`). An impl
    /// has no reason to set it; every value of the type is the same.
    #[doc(hidden)]
    const __DERIVE_KIT: DeriveKit = DeriveKit(());

    /// Report every GC pointer reachable from `self` to `tracer`.
    fn trace(&self, tracer: &mut Tracer);
}

/// The promise that a type's `Drop` never reaches the heap through a GC handle it holds: a
/// type that derives [`Trace`] and implements `Drop` says `#[gc(unsafe_drop)]` and makes this
/// promise with `unsafe impl UnsafeDrop for T {}`.
///
/// The sweeper frees every object a cycle found unreachable in the same sweep, in no particular
/// order, and runs each one's drop glue as it goes: when a dead object's `Drop` runs, the
/// objects its `Gc` fields point to may already be freed, and their memory handed out again.
/// Without `#[gc(unsafe_drop)]` the derive makes an `impl Drop` for the type a compile error.
///
/// ```
/// use gc_core::{Gc, Trace, UnsafeDrop};
///
/// #[derive(Trace)]
/// #[gc(unsafe_drop)]
/// struct Handle<'gc> {
///     target: Gc<'gc, u64>,
///     #[gc(skip)]
///     id: u32,
/// }
///
/// // SAFETY: `Handle::drop` reads only `id`, never `target`.
/// unsafe impl UnsafeDrop for Handle<'_> {}
///
/// impl Drop for Handle<'_> {
///     fn drop(&mut self) {
///         println!("handle {} closed", self.id);
///     }
/// }
/// ```
///
/// # Safety
///
/// The type's `Drop::drop` must not dereference, upgrade or otherwise read through any GC
/// handle the value holds (`Gc`, `GcArray`, `GcVec`, `GcStr`, `GcBytes`, a `GcCell` or weak
/// reference of those, a `NanBox` holding one), directly or through the fields it calls into;
/// copying a handle out of `self` to use later is reading through it too. Reading the value's
/// other fields, and dropping them, is fine.
#[diagnostic::on_unimplemented(
    message = "`#[gc(unsafe_drop)]` on `{Self}` needs the promise `unsafe impl gc_core::UnsafeDrop for {Self} {{}}`",
    label = "no `UnsafeDrop` promise",
    note = "the impl promises that the type's `Drop` never dereferences a `Gc`: the objects it points to may be freed before it runs",
    note = "write it with the type's parameters, e.g. `unsafe impl gc_core::UnsafeDrop for Node<'_> {{}}` or `unsafe impl<T: Trace> gc_core::UnsafeDrop for Wrap<T> {{}}`; a type without `Drop` needs neither it nor `#[gc(unsafe_drop)]`"
)]
pub unsafe trait UnsafeDrop {}

/// The helpers `#[derive(Trace)]` calls, reached through the trait it implements
/// (`<Self as ::gc_core::Trace>::__DERIVE_KIT.add_field(..)`), never by a path of their own.
///
/// The derive's output names items by paths such as `::gc_core::…`, and those resolve in the
/// crate that uses the derive: a crate that declares `extern crate self as gc_core;` and
/// re-exports the real `Trace` and `Tracer` could otherwise swap in a helper of its own and
/// make the `unsafe impl` the derive writes claim the wrong pointer words, in safe code. An
/// associated item of the real trait, and an inherent method of this type (which no other
/// crate can add to, and which method resolution prefers to any trait's method of the same
/// name), are the real ones whatever the paths around them resolve to; if the trait named is
/// not gc-core's, the impl is not gc-core's either and the collector never relies on it.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct DeriveKit(());

impl DeriveKit {
    /// A derive with `#[gc(unsafe_drop)]` calls this with its type, so that the type must
    /// carry the [`UnsafeDrop`] promise, which only an `unsafe impl` can make.
    #[doc(hidden)]
    #[inline]
    pub const fn unsafe_drop<T: UnsafeDrop + ?Sized>(self) {}

    /// A field of type `F` that holds the type being derived, `S`, outside a `Gc` (see
    /// [`HoldsSelf`]): its `NEEDS_TRACE` term, read with `S` as `()`, so that `S`'s own
    /// `NEEDS_TRACE` (being computed) is not asked for.
    #[doc(hidden)]
    #[inline]
    pub const fn needs_trace_holding_self<S, F: HoldsSelf<S>>(self) -> bool {
        <F::Unit as Trace>::NEEDS_TRACE
    }

    /// [`add_field_pointer_words`], for the derive.
    #[doc(hidden)]
    #[inline]
    pub const fn add_field(
        self,
        words: Option<u64>,
        field: Option<u64>,
        offset: usize,
    ) -> Option<u64> {
        add_field_pointer_words(words, field, offset)
    }
}

/// The shapes in which a derived type may hold itself outside a `Gc` (an interpreter's syntax
/// tree, a JSON value): `Self` is `S`, and `Unit` is the same container of `()`.
///
/// The derive reads such a field's `NEEDS_TRACE` from `Unit`
/// ([`DeriveKit::needs_trace_holding_self`]): the type's own `NEEDS_TRACE` is what is being
/// computed, so asking for it through the field is a cycle the compiler rejects. Read as `()`,
/// the term is the least fixpoint: the type needs tracing exactly when some field does other
/// than through itself, which is right because each of these containers needs tracing exactly
/// when its elements (or keys) do. The list is closed (`Sealed`): a container of another kind
/// could make its `NEEDS_TRACE` with `()` smaller than with the type itself (a trait that maps
/// `()` to a number and the type to a `Gc`), and the type would be allocated noscan with `Gc`s
/// inside. The impls match the field's real type, so a different instance of the type
/// (`Box<Node<u8>>` inside `Node<T>`) or a look-alike of one of these names (a type alias of
/// the user's called `Vec`) is not accepted either.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[derive(Trace)]` cannot read through `{Self}`, which holds the type being derived outside a `Gc`",
    label = "holds the type itself",
    note = "write the field as `Box<Self>`, `Vec<Self>`, `VecDeque<Self>`, `Box<[Self]>`, `Option<Box<Self>>`, `Option<Vec<Self>>`, `Vec<(K, Self)>`, `Vec<Vec<Self>>`, `Vec<Box<Self>>`, `Vec<Option<Box<Self>>>`, `HashMap<K, Self>`, `BTreeMap<K, Self>`, `HashSet<Self>` or `BTreeSet<Self>` (the type itself with its own parameters), or put a `Gc` between"
)]
pub trait HoldsSelf<S>: holds_self::Sealed<S> {
    /// The container with the type itself replaced by `()`.
    type Unit: Trace;
}

mod holds_self {
    /// Closes [`super::HoldsSelf`] to the containers below.
    pub trait Sealed<S> {}
}

macro_rules! holds_self {
    ($([$($g:tt)*] $t:ty => $unit:ty;)*) => {$(
        impl<$($g)*> holds_self::Sealed<S> for $t {}
        impl<$($g)*> HoldsSelf<S> for $t {
            type Unit = $unit;
        }
    )*};
}

holds_self! {
    [S] Box<S> => Box<()>;
    [S] Vec<S> => Vec<()>;
    [S] std::collections::VecDeque<S> => std::collections::VecDeque<()>;
    [S] Box<[S]> => Box<[()]>;
    [S] Option<Box<S>> => Option<Box<()>>;
    [S] Option<Vec<S>> => Option<Vec<()>>;
    [S, K: Trace] Vec<(K, S)> => Vec<(K, ())>;
    [S, K: Trace, H: 'static] std::collections::HashMap<K, S, H>
        => std::collections::HashMap<K, (), H>;
    [S, K: Trace] std::collections::BTreeMap<K, S> => std::collections::BTreeMap<K, ()>;
    [S] Vec<Vec<S>> => Vec<Vec<()>>;
    [S] Vec<Box<S>> => Vec<Box<()>>;
    [S] Vec<Option<Box<S>>> => Vec<Option<Box<()>>>;
    [S, H: 'static] std::collections::HashSet<S, H> => std::collections::HashSet<(), H>;
    [S] std::collections::BTreeSet<S> => std::collections::BTreeSet<()>;
}

/// The pointer words of a struct so far (`words`), with those of a field (`field`) at byte
/// `offset` added; `None` if either is `None` or the field's words do not fit the mask (used by
/// `#[derive(Trace)]` through [`DeriveKit::add_field`], and by the impls for arrays and tuples).
pub(crate) const fn add_field_pointer_words(
    words: Option<u64>,
    field: Option<u64>,
    offset: usize,
) -> Option<u64> {
    match (words, field) {
        (Some(words), Some(0)) => Some(words),
        (Some(words), Some(field)) => {
            // Words at an offset that is not a multiple of 8, or past the 64th: not maskable.
            let shift = offset / 8;
            if !offset.is_multiple_of(8) || shift >= 64 || field.leading_zeros() < shift as u32 {
                None
            } else {
                Some(words | field << shift)
            }
        }
        _ => None,
    }
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
    // `None` stores 0 in the payload's pointer words, which the marker skips as `trace` does.
    const POINTER_WORDS: Option<u64> = if T::NONE_IS_NULL {
        T::POINTER_WORDS
    } else if T::NEEDS_TRACE {
        None
    } else {
        Some(0)
    };
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

// SAFETY: traced as its slice. Pointer words: the element's, once per element (elements are
// `size_of::<T>()` apart).
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    const POINTER_WORDS: Option<u64> = match T::POINTER_WORDS {
        // Pointer-free elements: no words, without a step per element (a megabyte-long array
        // would exhaust const evaluation).
        Some(0) => Some(0),
        // Otherwise an element is at least a word, so the loop ends by the 65th element, past
        // the mask.
        element => {
            let mut words = Some(0);
            let mut i = 0;
            while i < N && words.is_some() {
                words = add_field_pointer_words(words, element, i * std::mem::size_of::<T>());
                i += 1;
            }
            words
        }
    };
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.as_slice().trace(tracer);
    }
}

macro_rules! tuple_trace {
    ($(($($n:tt $t:ident),+)),* $(,)?) => {$(
        // SAFETY: every component is traced. Pointer words: the components' at their offsets,
        // as a derived struct's.
        unsafe impl<$($t: Trace),+> Trace for ($($t,)+) {
            const NEEDS_TRACE: bool = false $(|| $t::NEEDS_TRACE)+;
            const POINTER_WORDS: Option<u64> = {
                let words = Some(0);
                $(let words =
                    add_field_pointer_words(words, $t::POINTER_WORDS, std::mem::offset_of!(Self, $n));)+
                words
            };
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::marker::PhantomData;
    use std::ptr::NonNull;

    use super::*;
    use crate::alloc::arena::{Arena, MIN_RESERVATION};
    use crate::{Gc, GcCell, NanBox};

    /// A `Gc` to `target` (only its address is used: no collector sees it).
    fn handle<'gc>(target: &'gc u64) -> Gc<'gc, u64> {
        Gc {
            ptr: NonNull::from(target),
            _brand: PhantomData,
        }
    }

    /// The edges `v`'s `trace` reports, and what the marker reads from its pointer words
    /// (`None` if the type has none), both sorted.
    fn edges<T: Trace>(v: &T) -> (Vec<usize>, Option<Vec<usize>>) {
        let arena = Arena::new(MIN_RESERVATION).unwrap();
        let mut t = Tracer::collecting(&arena, Vec::new());
        v.trace(&mut t);
        let mut traced: Vec<usize> = t.take_collected().iter().map(|a| a.0 as usize).collect();
        traced.sort_unstable();
        let words = T::POINTER_WORDS.map(|mask| {
            let base = v as *const T as *const usize;
            let mut words: Vec<usize> = (0..64)
                .filter(|k| mask & 1 << k != 0)
                // SAFETY: a pointer word lies inside the value and is initialised.
                .map(|k| unsafe { base.add(k).read() })
                .filter(|&w| w != 0)
                .collect();
            words.sort_unstable();
            words
        });
        (traced, words)
    }

    #[derive(crate::Trace)]
    struct Node<'gc> {
        left: Option<Gc<'gc, u64>>,
        right: Option<Gc<'gc, u64>>,
    }

    #[derive(crate::Trace)]
    struct Mixed<'gc> {
        n: u32,
        first: Gc<'gc, u64>,
        #[gc(skip)]
        _name: String,
        cell: GcCell<'gc, Option<Gc<'gc, u64>>>,
        count: GcCell<'gc, i64>,
        inner: Node<'gc>,
    }

    #[derive(crate::Trace)]
    struct Pair<'gc>(u8, Gc<'gc, u64>);

    /// How many words of a value's type are pointer words.
    trait WordsCount {
        fn trace_words_count(&self) -> Option<u32>;
    }
    impl<T: Trace> WordsCount for T {
        fn trace_words_count(&self) -> Option<u32> {
            T::POINTER_WORDS.map(u64::count_ones)
        }
    }

    #[derive(crate::Trace)]
    struct Wrap<T>(u64, T);

    #[derive(crate::Trace)]
    struct WithVec<'gc> {
        first: Gc<'gc, u64>,
        rest: Vec<Gc<'gc, u64>>,
    }

    #[derive(crate::Trace)]
    struct WithNanBox<'gc> {
        first: Gc<'gc, u64>,
        value: NanBox<'gc, u64>,
    }

    #[test]
    fn pointer_words_hold_what_trace_reports() {
        let targets = [1u64, 2, 3, 4, 5];
        let [a, b, c, d, e] = targets.each_ref().map(handle);
        let addr = |g: Gc<'_, u64>| g.object() as usize;

        let full = Node {
            left: Some(a),
            right: Some(b),
        };
        let half = Node {
            left: None,
            right: Some(c),
        };
        for node in [&full, &half] {
            let (traced, words) = edges(node);
            assert_eq!(Some(traced), words);
        }
        assert_eq!(Node::POINTER_WORDS, Some(0b11));
        assert_eq!(edges(&half).0, [addr(c)]);

        for cell in [None, Some(d)] {
            let m = Mixed {
                n: 7,
                first: a,
                _name: "x".repeat(3),
                cell: GcCell::new(cell),
                count: GcCell::new(-1),
                inner: Node {
                    left: Some(e),
                    right: None,
                },
            };
            let (traced, words) = edges(&m);
            assert_eq!(traced.len(), 2 + cell.is_some() as usize);
            assert_eq!(Some(traced), words);
            assert_eq!(Mixed::POINTER_WORDS.map(u64::count_ones), Some(4));
        }

        let tuple = (7u32, Some(a), c, GcCell::new(None::<Gc<'_, u64>>));
        let (traced, words) = edges(&tuple);
        assert_eq!((traced.len(), Some(traced)), (2, words));
        assert_eq!(tuple.trace_words_count(), Some(3));
        assert_eq!(<(Gc<'_, u64>, Vec<u8>)>::POINTER_WORDS, Some(1));
        assert_eq!(<(u8, Vec<Gc<'_, u64>>)>::POINTER_WORDS, None);
        let (traced, words) = edges(&Pair(1, b));
        assert_eq!(
            (traced.as_slice(), words),
            (&[addr(b)][..], Some(vec![addr(b)]))
        );
        let (traced, words) = edges(&Wrap(9, Some(c)));
        assert_eq!(Some(traced), words);
        assert_eq!(Wrap::<u64>::POINTER_WORDS, Some(0));
        let array = [Some(a), None, Some(e)];
        let (traced, words) = edges(&array);
        assert_eq!((traced.len(), Some(traced)), (2, words));
        assert_eq!(<[Option<Gc<'_, u64>>; 3]>::POINTER_WORDS, Some(0b111));
        assert_eq!(<[Option<Gc<'_, u64>>; 65]>::POINTER_WORDS, None);
        assert_eq!(<[u64; 1 << 24]>::POINTER_WORDS, Some(0));
        assert_eq!(<[Option<Gc<'_, u64>>; 1 << 24]>::POINTER_WORDS, None);
        // Elements wider than a word: the words at each element's offset, not the next word.
        let wide = [(a, 7u64), (b, 0u64)];
        let (traced, words) = edges(&wide);
        assert_eq!(
            (traced.as_slice(), words),
            (&[addr(a), addr(b)][..], Some(vec![addr(a), addr(b)]))
        );
        assert_eq!(<[(Gc<'_, u64>, u64); 2]>::POINTER_WORDS, Some(0b101));
        // Either variant of a `Result` may hold the pointer.
        let needs_trace = [
            <Result<u64, Gc<'_, u64>>>::NEEDS_TRACE,
            <Result<Gc<'_, u64>, u64>>::NEEDS_TRACE,
            <Result<u64, u8>>::NEEDS_TRACE,
        ];
        assert_eq!(needs_trace, [true, true, false]);
        for r in [Ok(7u64), Err(d)] {
            let (traced, _) = edges(&r);
            assert_eq!(traced, r.err().map(addr).into_iter().collect::<Vec<_>>());
        }

        // Fields the marker cannot read as words leave the type to its `trace`.
        assert_eq!(Wrap::<Vec<Gc<'_, u64>>>::POINTER_WORDS, None);
        assert_eq!(WithVec::POINTER_WORDS, None);
        assert_eq!(WithNanBox::POINTER_WORDS, None);
        assert_eq!(GcCell::<'_, NanBox<'_, u64>>::POINTER_WORDS, None);
        assert_eq!(Option::<Option<Gc<'_, u64>>>::POINTER_WORDS, None);
        assert_eq!(<Gc<'_, [u64]>>::POINTER_WORDS, None);
        // The other handles are one pointer word, and so is an `Option` of one.
        assert_eq!(<Option<crate::GcStr<'_>>>::POINTER_WORDS, Some(1));
        assert_eq!(
            <GcCell<'_, Option<crate::GcArray<'_, u64>>>>::POINTER_WORDS,
            Some(1)
        );
        assert_eq!(
            <crate::GcVec<'_, Option<Gc<'_, u64>>>>::POINTER_WORDS,
            Some(1)
        );
        assert_eq!(
            crate::VecObj::<'_, u64>::POINTER_WORDS.map(u64::count_ones),
            Some(1)
        );
    }

    #[test]
    fn field_words_past_the_mask_or_unaligned_are_not_maskable() {
        assert_eq!(add_field_pointer_words(Some(1), Some(1), 8), Some(0b11));
        assert_eq!(add_field_pointer_words(Some(1), Some(0), 4), Some(1));
        assert_eq!(add_field_pointer_words(Some(1), Some(1), 4), None);
        assert_eq!(
            add_field_pointer_words(Some(0), Some(1), 63 * 8),
            Some(1 << 63)
        );
        assert_eq!(add_field_pointer_words(Some(0), Some(0b10), 63 * 8), None);
        assert_eq!(add_field_pointer_words(Some(0), Some(1), 64 * 8), None);
        assert_eq!(add_field_pointer_words(None, Some(1), 0), None);
        assert_eq!(add_field_pointer_words(Some(1), None, 8), None);
    }
}
