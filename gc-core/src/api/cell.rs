//! Cells: the only way to change a pointer stored in a heap object.
//!
//! A [`GcCell<'gc, T>`] holds one [`Slot`] value (a `Gc`, an `Option<Gc>`, a weak reference, a
//! number, or a user's one-word tagged value) in an atomic word. Reads are atomic loads, so the
//! marker may read the cell while the mutator writes it (`docs/design.md` §9.1); [`GcCell::set`] takes the
//! `&Mutation` and runs the write barrier before the store, on every path.
//!
//! # Orderings
//!
//! Stores are `Release` and loads `Acquire`: a mutator that loads a `Gc` another mutator stored
//! (objects shared through a stash) then reads the object's fields, which the storer initialised
//! before its store. On x86-64 both compile to plain moves.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::api::gc::Gc;
use crate::api::mutator::Mutation;
use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;

/// A value that fits in one machine word and can live in a [`GcCell`] or a GC array slot.
///
/// # Safety
///
/// `from_word(to_word(v))` must give back `v`, and `from_word` must be sound for every word a
/// `to_word` of this type produced. The value's `Trace` impl must report the pointer the word
/// holds, if any. Slots are read by other threads (the marker, other mutators), so a value must
/// be safe to copy to and use from another thread: a pointer to a heap object (heap objects are
/// `Send + Sync`) or plain data. (This is not a `Send + Sync` bound only because such a bound
/// makes the trait solver loop on self-referential types like `Node { next: GcCell<Option<Gc<Node>>> }`.)
///
/// An implementation that sets [`Slot::WORD_EDGE`] also promises that `word_edge` depends on
/// the word alone and that for every value `v`, `Self::word_edge(v.to_word())` is 0 when `v`'s
/// `trace` reports nothing, and otherwise the address of the one object it reports: the
/// [`Slot::to_word`] of the one handle (`Gc`, `GcArray`, `GcStr`, …) whose `trace` it calls
/// (it must never report more than one). A wrong address is a use-after-free, as a missed edge
/// in `trace` is.
///
/// One that sets [`Slot::WORD_IS_ADDRESS`] also sets `WORD_EDGE` and keeps `word_edge` the
/// identity: its word is 0 or the address of the one object its `trace` reports.
pub unsafe trait Slot<'gc>: Copy + Trace + 'gc {
    /// Whether the write barrier may take the pointer a value holds from its word
    /// ([`Slot::word_edge`]) instead of running its `trace` (see the trait's safety section).
    /// Storing a pointer while the collector marks then costs an append to the mutator's
    /// buffer. Off by default; `Gc`, `Option<Gc>`, the other handles and [`NanBox`](crate::NanBox)
    /// set it.
    const WORD_EDGE: bool = false;
    /// With [`Slot::WORD_EDGE`]: the address of the heap object a word of this type points to
    /// (its handle's [`Slot::to_word`]), 0 for none. By default the word itself (a handle's word
    /// is its object's address, `None` is 0).
    #[inline(always)]
    fn word_edge(w: usize) -> usize {
        w
    }
    /// Whether the word is 0 or the address of the object the value reports (see the trait's
    /// safety section), so that the marker may read a [`GcCell`] of this type as a pointer word
    /// ([`Trace::POINTER_WORDS`]) instead of calling its `trace`. Set by `Gc`, `GcArray`, `GcVec`,
    /// `GcBytes`, `GcStr` and their `Option`s.
    #[doc(hidden)]
    const WORD_IS_ADDRESS: bool = false;
    /// Encode into one word.
    fn to_word(self) -> usize;
    /// Decode a word produced by [`Slot::to_word`].
    ///
    /// # Safety
    /// `w` must come from `to_word` of a value of this type that is still valid (objects it
    /// points to still reachable).
    unsafe fn from_word(w: usize) -> Self;
}

// SAFETY: a `Gc` is its non-null address, the one edge its `trace` reports.
unsafe impl<'gc, T: 'gc> Slot<'gc> for Gc<'gc, T> {
    const WORD_EDGE: bool = true;
    const WORD_IS_ADDRESS: bool = true;
    #[inline(always)]
    fn to_word(self) -> usize {
        Gc::to_word(self)
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract.
        unsafe { Gc::from_word(w) }
    }
}

// SAFETY: `None` is 0, which no object address is, and reports nothing; `Some` is the `Gc`'s
// word, its one edge.
unsafe impl<'gc, T: 'gc> Slot<'gc> for Option<Gc<'gc, T>> {
    const WORD_EDGE: bool = true;
    const WORD_IS_ADDRESS: bool = true;
    #[inline(always)]
    fn to_word(self) -> usize {
        self.map_or(0, Gc::to_word)
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract; 0 is `None`.
        (w != 0).then(|| unsafe { Gc::from_word(w) })
    }
}

macro_rules! int_slot {
    ($($t:ty),*) => {$(
        // SAFETY: lossless round trip through a word; no pointer to report.
        unsafe impl<'gc> Slot<'gc> for $t {
            #[inline(always)]
            fn to_word(self) -> usize { self as usize }
            #[inline(always)]
            unsafe fn from_word(w: usize) -> Self { w as $t }
        }
    )*};
}
int_slot!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

// SAFETY: bit-exact round trip; no pointer.
unsafe impl<'gc> Slot<'gc> for f64 {
    #[inline(always)]
    fn to_word(self) -> usize {
        self.to_bits() as usize
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        f64::from_bits(w as u64)
    }
}

// SAFETY: 0/1 round trip; no pointer.
unsafe impl<'gc> Slot<'gc> for bool {
    #[inline(always)]
    fn to_word(self) -> usize {
        self as usize
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        w != 0
    }
}

/// A mutable one-word slot in a heap object: the only way to change a pointer stored in a heap
/// object. Reads are atomic loads; [`GcCell::set`] takes the `&Mutation` and runs the write
/// barrier before the store. Holds any [`Slot`] value (`Gc`, `Option<Gc>`, weak references,
/// numbers, or a user's one-word tagged value).
pub struct GcCell<'gc, T: Slot<'gc>> {
    word: AtomicUsize,
    _t: Invariant<'gc, T>,
}

/// A phantom invariant in `T` (the `fn(T) -> T`) and in `'gc`, for the handles whose values are
/// written through a shared handle ([`GcCell`], `GcArray`): a `GcCell<T>` must not be usable
/// as a `GcCell<U>` for a supertype `U`, which could store a `U` that is not a `T` (this is why
/// `Cell<T>` is invariant; `tests/ui/handle_variance.rs`).
pub(crate) type Invariant<'gc, T> = PhantomData<(fn(T) -> T, std::cell::Cell<&'gc ()>)>;

// SAFETY: the cell is an atomic word; the values it holds are `Slot`s, which are `Gc`s (Send +
// Sync for heap objects) or plain data. Writes need the owning `&Mutation`.
unsafe impl<'gc, T: Slot<'gc>> Sync for GcCell<'gc, T> {}
// SAFETY: as for `Sync`.
unsafe impl<'gc, T: Slot<'gc>> Send for GcCell<'gc, T> {}

impl<'gc, T: Slot<'gc>> GcCell<'gc, T> {
    /// A cell holding `v`. (Initialisation needs no barrier: the enclosing object is not yet
    /// reachable by the marker.)
    #[inline]
    pub fn new(v: T) -> Self {
        GcCell {
            word: AtomicUsize::new(v.to_word()),
            _t: PhantomData,
        }
    }

    /// The current value.
    #[inline(always)]
    pub fn get(&self) -> T {
        // SAFETY: the word was produced by `to_word` of a `T` (in `new` or `set`); whatever it
        // points to is reachable through this cell, so still alive in this scope.
        unsafe { T::from_word(self.word.load(Ordering::Acquire)) }
    }

    /// Store `v`, running the write barrier.
    #[inline(always)]
    pub fn set(&self, mc: &Mutation<'gc>, v: T) {
        let old = self.get();
        mc.write_barrier(old, v);
        self.word.store(v.to_word(), Ordering::Release);
    }

    /// Store `new` if the cell still holds `current` (compared by word); whether it did. Runs
    /// the write barrier for `current` and `new` first, as a `set` would (if the exchange
    /// fails, they were shaded for nothing, which is harmless).
    pub(crate) fn compare_and_set(&self, mc: &Mutation<'gc>, current: T, new: T) -> bool {
        mc.write_barrier(current, new);
        self.word
            .compare_exchange(
                current.to_word(),
                new.to_word(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Store `v` and return the previous value, running the write barrier.
    #[inline]
    pub fn replace(&self, mc: &Mutation<'gc>, v: T) -> T {
        let old = self.get();
        mc.write_barrier(old, v);
        self.word.store(v.to_word(), Ordering::Release);
        old
    }
}

// SAFETY: the current value is read atomically and traced; a concurrent `set` has already shaded
// both the old and the new value through the barrier. Pointer words: a cell of a slot whose word
// is its object's address (`Slot::WORD_IS_ADDRESS`) is one atomic pointer word, which `trace`
// reads and reports just as the marker does with the mask.
unsafe impl<'gc, T: Slot<'gc>> Trace for GcCell<'gc, T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    const POINTER_WORDS: Option<u64> = if !T::NEEDS_TRACE {
        Some(0)
    } else if T::WORD_IS_ADDRESS {
        Some(1 << (std::mem::offset_of!(Self, word) / 8))
    } else {
        None
    };
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::NEEDS_TRACE {
            self.get().trace(tracer);
        }
    }
}

impl<'gc, T: Slot<'gc> + std::fmt::Debug> std::fmt::Debug for GcCell<'gc, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GcCell").field(&self.get()).finish()
    }
}

impl<'gc, T: Slot<'gc> + Default> Default for GcCell<'gc, T> {
    fn default() -> Self {
        GcCell::new(T::default())
    }
}

/// `Option<H>` for handle types whose word is a non-null address: `None` is the word 0.
macro_rules! option_handle_slot {
    ($($h:ty),* $(,)?) => {$(
        // SAFETY: the handle's word is a non-null address, so 0 is free to mean `None` (which
        // reports nothing); `Some` is the handle's word, its one edge (the handle sets
        // `WORD_EDGE`).
        unsafe impl<'gc> Slot<'gc> for Option<$h> {
            const WORD_EDGE: bool = <$h as Slot<'gc>>::WORD_EDGE;
            const WORD_IS_ADDRESS: bool = <$h as Slot<'gc>>::WORD_IS_ADDRESS;
            #[inline(always)]
            fn word_edge(w: usize) -> usize {
                if w == 0 { 0 } else { <$h as Slot<'gc>>::word_edge(w) }
            }
            #[inline(always)]
            fn to_word(self) -> usize {
                self.map_or(0, Slot::to_word)
            }
            #[inline(always)]
            unsafe fn from_word(w: usize) -> Self {
                // SAFETY: forwarded contract; 0 is `None`.
                (w != 0).then(|| unsafe { <$h as Slot<'gc>>::from_word(w) })
            }
        }
    )*};
}

option_handle_slot!(crate::GcStr<'gc>, crate::GcBytes<'gc>);

// SAFETY: an array handle's word is its non-null address, so 0 is free to mean `None` (which
// reports nothing); `Some` is the handle's word, its one edge.
unsafe impl<'gc, T: Slot<'gc>> Slot<'gc> for Option<crate::GcArray<'gc, T>> {
    const WORD_EDGE: bool = true;
    const WORD_IS_ADDRESS: bool = true;
    #[inline(always)]
    fn to_word(self) -> usize {
        self.map_or(0, Slot::to_word)
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract; 0 is `None`.
        (w != 0).then(|| unsafe { crate::GcArray::from_word(w) })
    }
}

// SAFETY: a vector handle's word is its non-null address, so 0 is free to mean `None` (which
// reports nothing); `Some` is the handle's word, its one edge.
unsafe impl<'gc, T: Slot<'gc> + Default> Slot<'gc> for Option<crate::GcVec<'gc, T>> {
    const WORD_EDGE: bool = true;
    const WORD_IS_ADDRESS: bool = true;
    #[inline(always)]
    fn to_word(self) -> usize {
        self.map_or(0, Slot::to_word)
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract; 0 is `None`.
        (w != 0).then(|| unsafe { crate::GcVec::from_word(w) })
    }
}
