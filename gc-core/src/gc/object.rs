//! Object layout: objects have no header; their type is recorded once per span.
//!
//! ```text
//!   span (one type, one size class) ─► tag ─► TypeInfo { trace, trace_from, drop, name, pointer_words }
//!   slot ─► ┌──────────────────────┐
//!           │ payload (T, or len + │  what `Gc<'gc, T>` points to and dereferences to
//!           │  elements for arrays)│
//!           └──────────────────────┘
//! ```
//!
//! `TypeInfo` is a `'static` table per type (a promoted constant), giving the collector what it
//! needs without knowing `T`: how to trace the payload, how to run its drop glue, and a name for
//! diagnostics. Every object of a span has the same type (the allocator keeps one span class per
//! type and size class, see [`crate::alloc::span_class`]), so the span records the table once, as
//! a [`TypeTag`] made by [`TypeInfo::tag`], and [`type_of`] reads it back: a two-pointer node
//! takes 16 bytes, not 24. The size comes from the span too.
//!
//! The collector reads an object only through the typed functions of its span's table, which are
//! the `Trace` impl and drop glue of the type the object was allocated with.

use std::marker::PhantomData;

use crate::alloc::span::Span;
use crate::alloc::span_class::{TypeIdentity, TypeTag};
use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;

/// A heap object of unknown type: `*const Object` is an object's address (a slot start).
#[repr(C)]
pub(crate) struct Object {
    _opaque: [u8; 0],
}

/// Per-type information shared by all objects of one type.
pub(crate) struct TypeInfo {
    /// Traces the object at the given address; `None` for noscan types.
    pub trace: Option<unsafe fn(*const Object, &mut Tracer)>,
    /// Arrays only: traces the elements from the given index on, one chunk at a time (see
    /// [`crate::gc::mark::tracer::ARRAY_CHUNK`]).
    pub trace_from: Option<unsafe fn(*const Object, usize, &mut Tracer)>,
    /// Runs the object's drop glue; `None` if the type has none.
    pub drop: Option<unsafe fn(*mut Object)>,
    /// `std::any::type_name` of the payload, for diagnostics.
    pub name: fn() -> &'static str,
    /// Bytes of a sized object (`size_of::<T>()`); 0 for variable-length objects.
    pub size: usize,
    /// The object's pointer words ([`Trace::POINTER_WORDS`]) when the marker may read them
    /// instead of calling `trace`; 0 when it must call `trace` (and for noscan types).
    pub pointer_words: u64,
}

impl TypeInfo {
    /// The allocator's tag for this type.
    #[inline(always)]
    pub(crate) fn tag(&'static self) -> TypeTag {
        // SAFETY: `self` is immutable `'static` data, and every tag in the crate is made here,
        // from a `TypeInfo` (which `type_of` relies on).
        unsafe {
            TypeTag::new(
                self as *const TypeInfo as *const (),
                self.trace.is_none(),
                self.drop.is_some(),
            )
        }
    }
}

/// The type of every object in `span`.
#[inline(always)]
pub(crate) fn type_of(span: &Span) -> &'static TypeInfo {
    // SAFETY: a span's tag was given by the allocation that made the span, and every tag is made
    // by `TypeInfo::tag` from a `&'static TypeInfo`.
    unsafe { &*(span.tag.ptr() as *const TypeInfo) }
}

/// What the collector makes of the type of `tag` (made by [`TypeInfo::tag`]): its trace,
/// chunked-trace and drop functions, size and name. Two tags with equal identities are handled
/// alike by marking, sweeping and the verifier, so the allocator lets them share a span class
/// (one type's tags can have several addresses: see `alloc::span_class`).
pub(crate) fn identity(tag: TypeTag) -> TypeIdentity {
    // SAFETY: every tag is made by `TypeInfo::tag` from a `&'static TypeInfo`.
    let info = unsafe { &*(tag.ptr() as *const TypeInfo) };
    TypeIdentity {
        words: [
            info.trace.map_or(0, |f| f as usize),
            info.trace_from.map_or(0, |f| f as usize),
            info.drop.map_or(0, |f| f as usize),
            info.size,
            info.pointer_words as usize,
        ],
        name: (info.name)(),
    }
}

/// The [`TypeInfo`] of a sized type `T`.
pub(crate) struct Info<T>(PhantomData<T>);

impl<T: Trace> Info<T> {
    pub(crate) const INFO: TypeInfo = TypeInfo {
        trace: if T::NEEDS_TRACE {
            Some(Self::trace_erased)
        } else {
            None
        },
        trace_from: None,
        drop: if std::mem::needs_drop::<T>() {
            Some(Self::drop_erased)
        } else {
            None
        },
        name: std::any::type_name::<T>,
        size: std::mem::size_of::<T>(),
        pointer_words: match T::POINTER_WORDS {
            // A mask naming a word past the end of a `T` is a broken `unsafe impl Trace` (or a
            // derive fooled by a crate that rebinds `::core`): the marker would read the next
            // slot's memory. Refused when the type is first allocated (a compile-time error).
            Some(words) if T::NEEDS_TRACE => {
                assert!(
                    pointer_words_fit(words, std::mem::size_of::<T>()),
                    "gc-core: Trace::POINTER_WORDS names a word past the end of the type"
                );
                words
            }
            _ => 0,
        },
    };

    /// # Safety
    /// `o` must be a live, initialised `T`.
    unsafe fn trace_erased(o: *const Object, t: &mut Tracer) {
        // SAFETY: by the contract, `o` is a live, initialised `T`; `T: Trace` promises the trace
        // reads only immutable or atomic fields.
        unsafe { (*(o as *const T)).trace(t) }
    }

    /// # Safety
    /// `o` must be a dead `T` that has not been dropped yet, and nothing may use it afterwards.
    unsafe fn drop_erased(o: *mut Object) {
        // SAFETY: by the contract the value is initialised and dropped exactly once, here.
        unsafe { std::ptr::drop_in_place(o as *mut T) }
    }
}

/// Whether every word `words` names (bit `k`: bytes `8 k .. 8 k + 8`) lies inside a value of
/// `size` bytes.
pub(crate) const fn pointer_words_fit(words: u64, size: usize) -> bool {
    size >= 64 * 8 || words >> (size / 8) == 0
}

/// Variable-length objects (arrays, strings): the element count, then the elements.
#[repr(C)]
pub(crate) struct VarHeader {
    pub len: usize,
}

/// Byte offset of the first element after a [`VarHeader`].
pub(crate) const VAR_DATA_OFFSET: usize = std::mem::size_of::<VarHeader>();

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pointer_words_must_lie_inside_the_type() {
        assert!(pointer_words_fit(0, 0));
        assert!(!pointer_words_fit(1, 0));
        assert!(
            !pointer_words_fit(1, 7),
            "a word that would end past a 7-byte value"
        );
        assert!(pointer_words_fit(1, 8));
        assert!(pointer_words_fit(0b11, 16));
        assert!(!pointer_words_fit(0b100, 16));
        assert!(pointer_words_fit(0b100, 24));
        assert!(pointer_words_fit(1 << 63, 64 * 8));
        assert!(!pointer_words_fit(1 << 63, 63 * 8));
        // Every mask derived for the crate's own types fits them.
        for (words, size) in [
            (Info::<crate::Gc<'static, u64>>::INFO.pointer_words, 8),
            (
                Info::<[Option<crate::Gc<'static, u64>>; 3]>::INFO.pointer_words,
                24,
            ),
            (
                Info::<(u64, crate::Gc<'static, u64>)>::INFO.pointer_words,
                16,
            ),
        ] {
            assert!(
                words != 0 && pointer_words_fit(words, size),
                "{words:#b} in {size}"
            );
        }
    }
}
