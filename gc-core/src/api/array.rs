//! GC arrays and vectors of traced slots.
//!
//! * [`GcArray<'gc, T>`]: a fixed-length heap array of [`Slot`] values, each an atomic word.
//!   Reading an element is an atomic load; writing one takes the `&Mutation` and runs the write
//!   barrier, exactly like a [`GcCell`].
//! * [`GcVec<'gc, T>`]: a growable vector: a small heap object holding a length and a cell with
//!   its backing `GcArray`. Growth allocates a new, larger array, copies the words and swings
//!   the cell (with the barrier, which shades the old array, so values copied without a barrier
//!   are still reached through it while marking); the old array stays valid until unreachable.
//!
//! Neither is ever a Rust container that a mutator reallocates under the marker: the marker only
//! reads atomic words of arrays whose length never changes.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::alloc::cache::size_class_for;
use crate::api::cell::{GcCell, Invariant, Slot};
use crate::api::gc::Gc;
use crate::api::mutator::Mutation;
use crate::gc::mark::tracer::Tracer;
use crate::gc::object::{Object, TypeInfo, VAR_DATA_OFFSET, VarHeader};
use crate::gc::trace::Trace;
use crate::util::error::AllocError;

/// Allocate a variable-length object of type `info`: a [`VarHeader`] followed by `len` elements
/// of `elem` bytes. Returns the object, with `len` written; elements are uninitialised, unless
/// the flag returned with it says the memory is known to be zero (a large object in pages fresh
/// from the OS: see `Mutation::alloc_raw`).
pub(crate) fn alloc_var(
    mc: &Mutation<'_>,
    info: &'static TypeInfo,
    len: usize,
    elem: usize,
) -> Result<(NonNull<VarHeader>, bool), AllocError> {
    let bytes = len
        .checked_mul(elem)
        .and_then(|b| b.checked_add(VAR_DATA_OFFSET))
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or(AllocError::TooLarge { len })?;
    let (addr, zeroed) = mc.alloc_raw(info, size_class_for(bytes, 8), bytes)?;
    let p = addr as *mut VarHeader;
    // SAFETY: a fresh slot of at least `bytes` bytes, 8-aligned, owned by no one else.
    unsafe { p.write(VarHeader { len }) };
    // SAFETY: non-null (inside the arena).
    Ok((unsafe { NonNull::new_unchecked(p) }, zeroed))
}

struct ArrayInfo<T>(PhantomData<T>);

impl<'gc, T: Slot<'gc>> ArrayInfo<T> {
    const INFO: TypeInfo = TypeInfo {
        trace: if T::NEEDS_TRACE {
            Some(Self::trace_erased)
        } else {
            None
        },
        trace_from: if T::NEEDS_TRACE {
            Some(Self::trace_from_erased)
        } else {
            None
        },
        drop: None,
        name: || "GcArray",
        size: 0,
        pointer_words: 0,
    };

    /// # Safety
    /// `h` must be a live `GcArray` of `T`.
    unsafe fn trace_erased(h: *const Object, t: &mut Tracer) {
        // SAFETY: forwarded.
        unsafe { Self::trace_from_erased(h, 0, t) }
    }

    /// Trace the elements from `start` on: all of them, or (for a concurrent marker) one
    /// chunk, leaving the rest to the tracer as a continuation (Go: oblets), so that no single
    /// scan of a large array holds up a pause or an assist's next check.
    ///
    /// # Safety
    /// `h` must be a live `GcArray` of `T`, and `start` at most its length.
    unsafe fn trace_from_erased(h: *const Object, start: usize, t: &mut Tracer) {
        // SAFETY: by the contract `h` starts a live array object of `T` slots; its length is
        // immutable and its words are atomics.
        let words = unsafe { array_words(h as *const VarHeader) };
        let end = t.array_chunk_end(h, start, words.len());
        t.prefetch_words(&words[start..end]);
        let began = t.begin_deferred();
        for w in &words[start..end] {
            // SAFETY: every word was written by `to_word` of a `T` (at allocation or by `set`).
            unsafe { T::from_word(w.load(Ordering::Acquire)) }.trace(t);
        }
        t.end_deferred(began);
    }
}

/// The element words of an array object.
///
/// # Safety
/// `h` must be a live array object.
unsafe fn array_words<'a>(h: *const VarHeader) -> &'a [AtomicUsize] {
    // SAFETY: an array object is a `VarHeader` followed by `len` initialised `AtomicUsize`s.
    unsafe {
        let len = (*h).len;
        std::slice::from_raw_parts(
            (h as *const u8).add(VAR_DATA_OFFSET) as *const AtomicUsize,
            len,
        )
    }
}

/// A fixed-length heap array of [`Slot`] values.
#[repr(transparent)]
pub struct GcArray<'gc, T: Slot<'gc>> {
    ptr: NonNull<VarHeader>,
    /// Invariant in `T` and `'gc`, as [`GcCell`] is: its slots are written through a shared
    /// handle.
    _t: Invariant<'gc, T>,
}

impl<'gc, T: Slot<'gc>> Clone for GcArray<'gc, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<'gc, T: Slot<'gc>> Copy for GcArray<'gc, T> {}

// SAFETY: the array's elements are atomic words holding `Slot` values (heap pointers, which are
// `Send + Sync`, or plain data); writes need the owning `&Mutation`.
unsafe impl<'gc, T: Slot<'gc>> Send for GcArray<'gc, T> {}
// SAFETY: as for `Send`.
unsafe impl<'gc, T: Slot<'gc>> Sync for GcArray<'gc, T> {}

impl<'gc, T: Slot<'gc>> GcArray<'gc, T> {
    /// An array of `len` copies of `init`. Panics where [`GcArray::try_new`] would return an
    /// [`AllocError`], with its message.
    pub fn new(mc: &Mutation<'gc>, len: usize, init: T) -> Self {
        Self::try_new(mc, len, init).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An array of `len` copies of `init`, or an allocation error.
    pub fn try_new(mc: &Mutation<'gc>, len: usize, init: T) -> Result<Self, AllocError> {
        let (h, zeroed) = alloc_var(mc, Self::type_info(), len, 8)?;
        mc.shade_init(&init);
        let w = init.to_word();
        // Memory known to be zero already holds `len` zero words: writing them again would only
        // touch every page now (a fresh 1 MiB array: hundreds of microseconds of page faults
        // inside one allocation) instead of as the elements are first used.
        if !(zeroed && w == 0) {
            // SAFETY: the element area has room for `len` words; writing them initialises it.
            unsafe {
                let data = (h.as_ptr() as *mut u8).add(VAR_DATA_OFFSET) as *mut AtomicUsize;
                for i in 0..len {
                    data.add(i).write(AtomicUsize::new(w));
                }
            }
        }
        Ok(GcArray {
            ptr: h,
            _t: PhantomData,
        })
    }

    /// An array holding the values of `items`. Panics where [`GcArray::try_from_slice`] would
    /// return an [`AllocError`], with its message.
    pub fn from_slice(mc: &Mutation<'gc>, items: &[T]) -> Self {
        Self::try_from_slice(mc, items).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An array holding the values of `items`, or an allocation error.
    pub fn try_from_slice(mc: &Mutation<'gc>, items: &[T]) -> Result<Self, AllocError> {
        let a = match items.first() {
            Some(&first) => Self::try_new(mc, items.len(), first)?,
            None => return Self::try_empty(mc),
        };
        mc.shade_init(items);
        for (w, v) in a.words().iter().zip(items) {
            // Initialisation of a fresh array: no barrier needed (not yet reachable).
            w.store(v.to_word(), Ordering::Relaxed);
        }
        Ok(a)
    }

    /// The array type's `TypeInfo`, taken in one place for every allocation: the cache finds
    /// a type's span by the `TypeInfo`'s address, and each use of a constant may be given an
    /// address of its own (one span class per address).
    #[inline(always)]
    fn type_info() -> &'static TypeInfo {
        &ArrayInfo::<T>::INFO
    }

    fn try_empty(mc: &Mutation<'gc>) -> Result<Self, AllocError> {
        let (h, _) = alloc_var(mc, Self::type_info(), 0, 8)?;
        Ok(GcArray {
            ptr: h,
            _t: PhantomData,
        })
    }

    #[inline(always)]
    fn words(&self) -> &'gc [AtomicUsize] {
        // SAFETY: `ptr` is a live array object for the whole scope.
        unsafe { array_words(self.ptr.as_ptr()) }
    }

    /// Number of elements.
    #[inline(always)]
    pub fn len(&self) -> usize {
        // SAFETY: `ptr` is a live array object; `len` is immutable.
        unsafe { (*self.ptr.as_ptr()).len }
    }

    /// Whether the array has no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decode an element word of this array.
    #[inline(always)]
    fn decode(w: &AtomicUsize) -> T {
        // SAFETY: every word of a `GcArray<T>` holds the `to_word` of a `T` (stored by the
        // constructors and by `set`), reachable through this array for the scope `'gc`.
        unsafe { T::from_word(w.load(Ordering::Acquire)) }
    }

    /// Element `i`; panics if out of bounds.
    #[inline]
    pub fn get(&self, i: usize) -> T {
        Self::decode(&self.words()[i])
    }

    /// Element `i`, or `None` if out of bounds.
    #[inline]
    pub fn try_get(&self, i: usize) -> Option<T> {
        self.words().get(i).map(Self::decode)
    }

    /// Store `v` at `i` with the write barrier; panics if out of bounds.
    #[inline]
    pub fn set(&self, mc: &Mutation<'gc>, i: usize, v: T) {
        let w = &self.words()[i];
        let old = Self::decode(w);
        mc.write_barrier(old, v);
        w.store(v.to_word(), Ordering::Release);
    }

    /// The elements, in order.
    pub fn iter(self) -> impl Iterator<Item = T> + 'gc {
        self.words().iter().map(Self::decode)
    }

    /// Whether two handles point to the same array.
    pub fn ptr_eq(a: Self, b: Self) -> bool {
        a.ptr == b.ptr
    }
}

// SAFETY: the handle is an edge to the array object, whose own `TypeInfo` traces the elements.
// Pointer words: the handle is that object's address, transparent over `NonNull` (so an
// `Option`'s `None` is null).
unsafe impl<'gc, T: Slot<'gc>> Trace for GcArray<'gc, T> {
    const NEEDS_TRACE: bool = true;
    const POINTER_WORDS: Option<u64> = Some(1 << (std::mem::offset_of!(Self, ptr) / 8));
    const NONE_IS_NULL: bool = true;
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        tracer.edge(self.ptr.as_ptr() as *const Object);
    }
}

// SAFETY: the handle is its non-null address.
// `WORD_EDGE`: the word is also the one edge the handle's `trace` reports.
unsafe impl<'gc, T: Slot<'gc>> Slot<'gc> for GcArray<'gc, T> {
    const WORD_EDGE: bool = true;
    const WORD_IS_ADDRESS: bool = true;
    #[inline(always)]
    fn to_word(self) -> usize {
        self.ptr.as_ptr() as usize
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        GcArray {
            // SAFETY: by the contract `w` is a non-null array address.
            ptr: unsafe { NonNull::new_unchecked(w as *mut VarHeader) },
            _t: PhantomData,
        }
    }
}

impl<'gc, T: Slot<'gc> + std::fmt::Debug> std::fmt::Debug for GcArray<'gc, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The heap object behind a [`GcVec`].
#[doc(hidden)]
pub struct VecObj<'gc, T: Slot<'gc>> {
    len: AtomicUsize,
    buf: GcCell<'gc, GcArray<'gc, T>>,
}

// SAFETY: the only edge is the backing array, traced through the cell (so the pointer words are
// the cell's).
unsafe impl<'gc, T: Slot<'gc>> Trace for VecObj<'gc, T> {
    const POINTER_WORDS: Option<u64> = crate::gc::trace::add_field_pointer_words(
        Some(0),
        <GcCell<'gc, GcArray<'gc, T>> as Trace>::POINTER_WORDS,
        std::mem::offset_of!(Self, buf),
    );
    fn trace(&self, tracer: &mut Tracer) {
        self.buf.trace(tracer);
    }
}

/// A growable heap vector of [`Slot`] values. Spare capacity holds `T::default()` (unless
/// threads race on it: below).
///
/// Its methods take `&self`, and mutators on several threads may share one, but a push or pop
/// is not atomic: its length is read, the slot written and the new length stored, as a `Vec`
/// would, so two threads that push, pop or set **the same vector at the same time** may lose
/// elements, leave `T::default()` where an element was popped, or keep an element that was
/// popped (a pop racing with a push that grows the vector copies it first; a `set` of the last
/// element racing with a pop may store its value in the spare capacity, where it stays alive
/// until a push overwrites it). Nothing else: every slot
/// always holds a value of `T`, the length never passes the capacity (the backing array is
/// replaced by a larger one only with an atomic exchange), and every access is bounds-checked.
/// Share a vector that several threads grow behind a lock, or give each thread its own.
/// (Detecting the race, as [`GcRefCell`](crate::GcRefCell) does for its borrows, takes an
/// atomic read-modify-write per push and pop: 3.4 → 14 ns for a push and a pop on this
/// project's machine, about what `GcRefCell` costs; a `GcVec` is the fast choice for a
/// thread's own operand stack.)
#[repr(transparent)]
pub struct GcVec<'gc, T: Slot<'gc> + Default>(Gc<'gc, VecObj<'gc, T>>);

impl<'gc, T: Slot<'gc> + Default> Clone for GcVec<'gc, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<'gc, T: Slot<'gc> + Default> Copy for GcVec<'gc, T> {}

impl<'gc, T: Slot<'gc> + Default> GcVec<'gc, T> {
    /// An empty vector.
    pub fn new(mc: &Mutation<'gc>) -> Self {
        Self::with_capacity(mc, 0)
    }

    /// An empty vector with room for `cap` elements. Panics where
    /// [`GcVec::try_with_capacity`] would return an [`AllocError`], with its
    /// message.
    pub fn with_capacity(mc: &Mutation<'gc>, cap: usize) -> Self {
        Self::try_with_capacity(mc, cap).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An empty vector with room for `cap` elements, or an allocation error.
    pub fn try_with_capacity(mc: &Mutation<'gc>, cap: usize) -> Result<Self, AllocError> {
        let buf = GcArray::try_new(mc, cap, T::default())?;
        Ok(GcVec(Gc::try_new(
            mc,
            VecObj {
                len: AtomicUsize::new(0),
                buf: GcCell::new(buf),
            },
        )?))
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len.load(Ordering::Acquire)
    }

    /// Whether the vector is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current capacity.
    pub fn capacity(&self) -> usize {
        self.0.buf.get().len()
    }

    /// Element `i`, or `None` past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        if i < self.len() {
            self.0.buf.get().try_get(i)
        } else {
            None
        }
    }

    /// Store `v` at `i` (with the write barrier); panics if `i >= len`.
    #[inline]
    pub fn set(&self, mc: &Mutation<'gc>, i: usize, v: T) {
        assert!(i < self.len(), "GcVec index {i} out of bounds");
        self.0.buf.get().set(mc, i, v);
    }

    /// Append `v`, growing the backing array (doubling) when full. Panics where
    /// [`GcVec::try_push`] would return an [`AllocError`], with its message.
    pub fn push(&self, mc: &Mutation<'gc>, v: T) {
        self.try_push(mc, v).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Append `v`, growing the backing array (doubling) when full; on an allocation error the
    /// vector is unchanged.
    pub fn try_push(&self, mc: &Mutation<'gc>, v: T) -> Result<(), AllocError> {
        // The length is read before the array: every length stored was at most the capacity
        // of the array then, and the array only grows, so `len <= buf.len()`.
        let (len, buf) = loop {
            let len = self.len();
            let buf = self.0.buf.get();
            if len < buf.len() {
                break (len, buf);
            }
            let grown = GcArray::try_new(mc, (len * 2).max(4), T::default())?;
            for (dst, src) in grown.words().iter().zip(buf.words()) {
                // Fresh array, not yet reachable: no barrier. The old array stays reachable
                // until the exchange below, whose barrier shades it.
                dst.store(src.load(Ordering::Acquire), Ordering::Relaxed);
            }
            // Only over the array it copied: a push on another thread that grew it meanwhile
            // keeps its larger one (this one retries), so the capacity never shrinks.
            if self.0.buf.compare_and_set(mc, buf, grown) {
                break (len, grown);
            }
        };
        buf.set(mc, len, v);
        self.0.len.store(len + 1, Ordering::Release);
        Ok(())
    }

    /// Remove and return the last element (its slot is reset to `T::default()`).
    pub fn pop(&self, mc: &Mutation<'gc>) -> Option<T> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        let buf = self.0.buf.get();
        let v = buf.get(len - 1);
        buf.set(mc, len - 1, T::default());
        self.0.len.store(len - 1, Ordering::Release);
        Some(v)
    }

    /// Shorten to `len` elements.
    pub fn truncate(&self, mc: &Mutation<'gc>, len: usize) {
        while self.len() > len {
            self.pop(mc);
        }
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = T> + 'gc {
        let len = self.len();
        self.0.buf.get().iter().take(len)
    }

    /// Whether two handles point to the same vector.
    pub fn ptr_eq(a: Self, b: Self) -> bool {
        Gc::ptr_eq(a.0, b.0)
    }
}

// SAFETY: an edge to the vector object; the pointer words and null `None` of the `Gc` it is
// transparent over.
unsafe impl<'gc, T: Slot<'gc> + Default> Trace for GcVec<'gc, T> {
    const NEEDS_TRACE: bool = true;
    const POINTER_WORDS: Option<u64> = <Gc<'gc, VecObj<'gc, T>> as Trace>::POINTER_WORDS;
    const NONE_IS_NULL: bool = true;
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        self.0.trace(tracer);
    }
}

// SAFETY: the handle is its non-null address.
// `WORD_EDGE`: the word is also the one edge the handle's `trace` reports.
unsafe impl<'gc, T: Slot<'gc> + Default> Slot<'gc> for GcVec<'gc, T> {
    const WORD_EDGE: bool = true;
    const WORD_IS_ADDRESS: bool = true;
    #[inline(always)]
    fn to_word(self) -> usize {
        self.0.to_word()
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract.
        GcVec(unsafe { Gc::from_word(w) })
    }
}

impl<'gc, T: Slot<'gc> + Default + std::fmt::Debug> std::fmt::Debug for GcVec<'gc, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
