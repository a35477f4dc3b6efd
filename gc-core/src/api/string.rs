//! Pointer-free strings and byte buffers, allocated in noscan spans.
//!
//! [`GcStr`] and [`GcBytes`] are immutable after allocation: a length and the bytes.
//! They are never read by the marker (noscan) and have no drop glue, so sweeping them is pure
//! bitmap arithmetic.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::api::array::alloc_var;
use crate::api::cell::Slot;
use crate::api::mutator::Mutation;
use crate::gc::mark::tracer::Tracer;
use crate::gc::object::{Object, TypeInfo, VAR_DATA_OFFSET, VarHeader};
use crate::gc::trace::Trace;
use crate::util::error::AllocError;

static BYTES_INFO: TypeInfo = TypeInfo {
    trace: None,
    trace_from: None,
    drop: None,
    name: || "GcBytes",
    size: 0,
    pointer_words: 0,
};

/// An immutable heap byte buffer.
#[repr(transparent)]
pub struct GcBytes<'gc> {
    ptr: NonNull<VarHeader>,
    _brand: PhantomData<std::cell::Cell<&'gc ()>>,
}

impl Clone for GcBytes<'_> {
    fn clone(&self) -> Self {
        *self
    }
}
impl Copy for GcBytes<'_> {}
// SAFETY: immutable bytes.
unsafe impl Send for GcBytes<'_> {}
// SAFETY: immutable bytes.
unsafe impl Sync for GcBytes<'_> {}

impl<'gc> GcBytes<'gc> {
    /// Copy `bytes` into the heap. Panics where [`GcBytes::try_new`] would return an
    /// [`AllocError`], with its message.
    pub fn new(mc: &Mutation<'gc>, bytes: &[u8]) -> Self {
        Self::try_new(mc, bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Copy `bytes` into the heap, or return an allocation error.
    pub fn try_new(mc: &Mutation<'gc>, bytes: &[u8]) -> Result<Self, AllocError> {
        let (h, _) = alloc_var(mc, &BYTES_INFO, bytes.len(), 1)?;
        // SAFETY: the fresh object has room for `len` bytes after its length.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (h.as_ptr() as *mut u8).add(VAR_DATA_OFFSET),
                bytes.len(),
            )
        };
        Ok(GcBytes {
            ptr: h,
            _brand: PhantomData,
        })
    }

    /// The bytes, valid for the whole scope.
    #[inline]
    pub fn as_bytes(self) -> &'gc [u8] {
        // SAFETY: a live bytes object: `len`, then `len` initialised bytes, immutable.
        unsafe {
            let len = (*self.ptr.as_ptr()).len;
            std::slice::from_raw_parts((self.ptr.as_ptr() as *const u8).add(VAR_DATA_OFFSET), len)
        }
    }

    /// Whether two handles point to the same object.
    pub fn ptr_eq(a: Self, b: Self) -> bool {
        a.ptr == b.ptr
    }
}

impl std::ops::Deref for GcBytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self).as_bytes()
    }
}

impl fmt::Debug for GcBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_bytes(), f)
    }
}

// SAFETY: an edge to a noscan object. Pointer words: the handle is that object's address,
// transparent over `NonNull` (so an `Option`'s `None` is null).
unsafe impl Trace for GcBytes<'_> {
    const POINTER_WORDS: Option<u64> = Some(1 << (std::mem::offset_of!(Self, ptr) / 8));
    const NONE_IS_NULL: bool = true;
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        tracer.edge(self.ptr.as_ptr() as *const Object);
    }
}

// SAFETY: the handle is its non-null address.
// `WORD_EDGE`: the word is also the one edge the handle's `trace` reports.
unsafe impl<'gc> Slot<'gc> for GcBytes<'gc> {
    const WORD_EDGE: bool = true;
    const WORD_IS_ADDRESS: bool = true;
    fn to_word(self) -> usize {
        self.ptr.as_ptr() as usize
    }
    unsafe fn from_word(w: usize) -> Self {
        GcBytes {
            // SAFETY: by the contract `w` is a non-null object address.
            ptr: unsafe { NonNull::new_unchecked(w as *mut VarHeader) },
            _brand: PhantomData,
        }
    }
}

/// An immutable heap string (UTF-8).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct GcStr<'gc>(GcBytes<'gc>);

impl<'gc> GcStr<'gc> {
    /// Copy `s` into the heap. Panics where [`GcStr::try_new`] would return an
    /// [`AllocError`], with its message.
    pub fn new(mc: &Mutation<'gc>, s: &str) -> Self {
        GcStr(GcBytes::new(mc, s.as_bytes()))
    }

    /// Copy `s` into the heap, or return an allocation error.
    pub fn try_new(mc: &Mutation<'gc>, s: &str) -> Result<Self, AllocError> {
        GcBytes::try_new(mc, s.as_bytes()).map(GcStr)
    }

    /// The string, valid for the whole scope.
    #[inline]
    pub fn as_str(self) -> &'gc str {
        // SAFETY: built only from `&str` in `new`, and immutable since.
        unsafe { std::str::from_utf8_unchecked(self.0.as_bytes()) }
    }

    /// Whether two handles point to the same object.
    pub fn ptr_eq(a: Self, b: Self) -> bool {
        GcBytes::ptr_eq(a.0, b.0)
    }
}

impl std::ops::Deref for GcStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        (*self).as_str()
    }
}

impl PartialEq for GcStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for GcStr<'_> {}

/// By text, as `Eq`: a `GcStr` is a value-keyed key in `HashMap`s and
/// [`GcHashMap`](crate::GcHashMap)s, and finds entries by `&str` too (`Borrow<str>`).
impl std::hash::Hash for GcStr<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::borrow::Borrow<str> for GcStr<'_> {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialOrd for GcStr<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By text.
impl Ord for GcStr<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for GcStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for GcStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// SAFETY: an edge to a noscan object; the pointer words and null `None` of the `GcBytes` it is
// transparent over.
unsafe impl Trace for GcStr<'_> {
    const POINTER_WORDS: Option<u64> = <GcBytes<'_> as Trace>::POINTER_WORDS;
    const NONE_IS_NULL: bool = true;
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        self.0.trace(tracer);
    }
}

// SAFETY: as for `GcBytes`.
// `WORD_EDGE`: the word is also the one edge the handle's `trace` reports.
unsafe impl<'gc> Slot<'gc> for GcStr<'gc> {
    const WORD_EDGE: bool = true;
    const WORD_IS_ADDRESS: bool = true;
    fn to_word(self) -> usize {
        self.0.to_word()
    }
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract.
        GcStr(unsafe { GcBytes::from_word(w) })
    }
}
