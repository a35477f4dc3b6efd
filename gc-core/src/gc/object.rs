//! Object layout: every heap object starts with a one-word header naming its type.
//!
//! ```text
//!   slot ─► ┌──────────────────────┐
//!           │ header: &TypeInfo    │  8 bytes, written once at allocation, immutable after
//!           ├──────────────────────┤
//!           │ payload (T, or len + │  what `Gc<'gc, T>` dereferences to
//!           │  elements for arrays)│
//!           └──────────────────────┘
//! ```
//!
//! `TypeInfo` is a `'static` table per type (a promoted constant), giving the collector what it
//! needs without knowing `T`: how to trace the payload, how to run its drop glue, and a name for
//! diagnostics. The size comes from the span (every slot of a span has the same size), so it is
//! not stored per object.
//!
//! Only the header pointer is ever read by the collector through an untyped pointer; the payload
//! is read through the typed `trace` function stored in the header, which is the `Trace` impl of
//! the type the object was allocated with.

use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;

/// Per-type information shared by all objects of one type.
pub(crate) struct TypeInfo {
    /// Traces the payload of the object at the given header; `None` for noscan types.
    pub trace: Option<unsafe fn(*const Header, &mut Tracer)>,
    /// Arrays only: traces the elements from the given index on, one chunk at a time (see
    /// [`crate::gc::mark::tracer::ARRAY_CHUNK`]).
    pub trace_from: Option<unsafe fn(*const Header, usize, &mut Tracer)>,
    /// Runs the payload's drop glue; `None` if the type has none.
    pub drop: Option<unsafe fn(*mut Header)>,
    /// `std::any::type_name` of the payload, for verifier messages.
    pub name: fn() -> &'static str,
}

/// The first word of every object.
#[repr(C)]
pub(crate) struct Header {
    pub info: &'static TypeInfo,
}

/// A sized object: header then value.
#[repr(C)]
pub(crate) struct GcBox<T> {
    pub header: Header,
    pub value: T,
}

impl<T: Trace> GcBox<T> {
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
    };

    /// # Safety
    /// `h` must be the header of a live `GcBox<T>`.
    unsafe fn trace_erased(h: *const Header, t: &mut Tracer) {
        // SAFETY: by the contract, `h` starts a live, initialised `GcBox<T>` (`repr(C)`, header
        // first); `T: Trace` promises the trace reads only immutable or atomic fields.
        unsafe { (*(h as *const GcBox<T>)).value.trace(t) }
    }

    /// # Safety
    /// `h` must be the header of a dead `GcBox<T>` whose value has not been dropped yet, and
    /// nothing may use the value afterwards.
    unsafe fn drop_erased(h: *mut Header) {
        // SAFETY: by the contract the value is initialised and dropped exactly once, here.
        unsafe { std::ptr::drop_in_place(&raw mut (*(h as *mut GcBox<T>)).value) }
    }
}

/// Variable-length objects (arrays, strings): header, element count, elements.
#[repr(C)]
pub(crate) struct VarHeader {
    pub header: Header,
    pub len: usize,
}

/// Byte offset of the first element after a [`VarHeader`].
pub(crate) const VAR_DATA_OFFSET: usize = std::mem::size_of::<VarHeader>();
