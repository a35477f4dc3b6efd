//! NaN-boxed values: one word that holds a float, a small immediate, or a `Gc` pointer.
//!
//! Dynamic-language interpreters want a value type that is one machine word, so it fits a
//! [`GcCell`](crate::GcCell), a [`GcArray`](crate::GcArray) slot and the root stack without a
//! second allocation. [`NanBox<'gc, T>`] is that type, built safely on top of [`Gc`]: users get
//! the packing without writing an `unsafe impl Slot` of their own.
//!
//! # Encoding
//!
//! An IEEE-754 double is a NaN when its exponent bits are all ones and its mantissa is non-zero.
//! Arithmetic only produces the canonical quiet NaN (or its negative, or a NaN operand's
//! payload), so the NaN patterns with more mantissa bits set are free to carry data:
//!
//! | value          | bits                                                    |
//! |----------------|---------------------------------------------------------|
//! | number `f`     | `f.to_bits()` (a NaN in the tag space: `0x7FF8_0000_0000_0000`) |
//! | immediate `v`  | `0x7FFD_0000_0000_0000 \| v` (`v: u32`)                  |
//! | `Gc` at `addr` | `0xFFFC_0000_0000_0000 \| addr` (`addr < 2^48`)          |
//!
//! A word is a number unless all of bits 50..=62 are set (`TAGGED`). Only NaNs have those
//! bits set, and such a NaN is replaced by the canonical NaN, so no stored number has them all
//! set. (Hardware arithmetic yields the canonical NaN, its negative, or an operand's payload,
//! so arithmetic on stored numbers never produces one that needs replacing.)
//!
//! Object addresses on 64-bit targets fit in 48 bits (x86-64 and AArch64 user space); [`NanBox::gc`] checks it, so a pointer that did not fit would
//! be a panic, never a corrupted value.

use std::fmt;
use std::marker::PhantomData;

use crate::api::cell::Slot;
use crate::api::gc::Gc;
use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("gc-core's NanBox needs 64-bit words");

/// Bits 50..=62: exponent all ones, quiet bit, and one more mantissa bit.
const TAGGED: u64 = 0x7FFC_0000_0000_0000;
const SIGN: u64 = 1 << 63;
/// Tag of an immediate: `TAGGED` plus bit 48, sign clear.
const IMM_TAG: u64 = TAGGED | (1 << 48);
/// Tag of a pointer: `TAGGED` plus the sign bit; the low 48 bits hold the address.
const PTR_TAG: u64 = TAGGED | SIGN;
const ADDR_MASK: u64 = (1 << 48) - 1;
/// The one NaN a number may be stored as.
const CANONICAL_NAN: u64 = 0x7FF8_0000_0000_0000;

/// A one-word value: an `f64`, a `u32` immediate, or a `Gc<'gc, T>`. `Copy`; implements
/// [`Slot`] and [`Trace`] (only the pointer case is an edge).
///
/// ```
/// use gc_core::{Config, Gc, Heap, NanBox, Unboxed};
/// let heap = Heap::new(Config::default()).unwrap();
/// let mut m = heap.mutator::<gc_core::NoStack>(|_| ());
/// m.mutate(|mc, _| {
///     let s = Gc::new(mc, 7u64);
///     let values = [NanBox::number(1.5), NanBox::imm(3), NanBox::gc(s)];
///     assert_eq!(values[0].as_number(), Some(1.5));
///     assert_eq!(values[1].as_imm(), Some(3));
///     assert!(matches!(values[2].unbox(), Unboxed::Ptr(g) if *g == 7));
/// });
/// ```
pub struct NanBox<'gc, T> {
    bits: u64,
    _p: PhantomData<Gc<'gc, T>>,
}

impl<T> Clone for NanBox<'_, T> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for NanBox<'_, T> {}

/// The immediate 0 (what interpreters conventionally make their `nil`): so a
/// [`GcVec`](crate::GcVec) of `NanBox`es, whose spare capacity holds `T::default()`, can be
/// made.
impl<T> Default for NanBox<'_, T> {
    #[inline(always)]
    fn default() -> Self {
        Self::imm(0)
    }
}

/// What a [`NanBox`] holds, for `match`.
#[derive(Debug)]
pub enum Unboxed<'gc, T> {
    /// A float (never a NaN in the tag space).
    Number(f64),
    /// A small immediate (an interpreter's `nil`, `true`, `false`, small tags, …).
    Imm(u32),
    /// A pointer to a heap object. (Not named `Gc`: a second item of that name in the crate
    /// would make the compiler print `gc_core::Gc` in every error message about `Gc`.)
    Ptr(Gc<'gc, T>),
}

impl<'gc, T> NanBox<'gc, T> {
    #[inline(always)]
    pub(crate) const fn from_bits(bits: u64) -> Self {
        NanBox {
            bits,
            _p: PhantomData,
        }
    }

    /// A number. A NaN whose bits fall in the tagged range is stored as the canonical NaN
    /// (other NaNs, including every NaN the hardware produces from numbers stored here, are
    /// kept as they are). Branch-free: one mask, compare and conditional move.
    #[inline(always)]
    pub fn number(f: f64) -> Self {
        let bits = f.to_bits();
        Self::from_bits(if bits & TAGGED == TAGGED {
            CANONICAL_NAN
        } else {
            bits
        })
    }

    /// An immediate.
    #[inline(always)]
    pub const fn imm(v: u32) -> Self {
        Self::from_bits(IMM_TAG | v as u64)
    }

    /// A pointer.
    ///
    /// # Panics
    /// If the object's address does not fit in 48 bits (it always does for gc-core's arena on
    /// x86-64 and AArch64 Linux; the check keeps the encoding sound anywhere else).
    #[inline(always)]
    pub fn gc(g: Gc<'gc, T>) -> Self {
        let w = g.to_word() as u64;
        assert!(
            w & !ADDR_MASK == 0,
            "gc-core: object address does not fit a NanBox"
        );
        Self::from_bits(PTR_TAG | w)
    }

    /// Whether this is a number.
    #[inline(always)]
    pub fn is_number(self) -> bool {
        self.bits & TAGGED != TAGGED
    }

    /// The number, if this is one.
    #[inline(always)]
    pub fn as_number(self) -> Option<f64> {
        self.is_number().then(|| f64::from_bits(self.bits))
    }

    /// The immediate, if this is one.
    #[inline(always)]
    pub fn as_imm(self) -> Option<u32> {
        (self.bits >> 32 == IMM_TAG >> 32).then_some(self.bits as u32)
    }

    /// The pointer, if this is one.
    #[inline(always)]
    pub fn as_gc(self) -> Option<Gc<'gc, T>> {
        if self.bits & PTR_TAG == PTR_TAG {
            // SAFETY: only `NanBox::gc` sets both the sign bit and `TAGGED` (numbers with all
            // of `TAGGED` set do not exist, immediates have the sign bit clear), and it stored
            // the address of a `Gc<'gc, T>` of this scope in the low 48 bits.
            Some(unsafe { Gc::from_word((self.bits & ADDR_MASK) as usize) })
        } else {
            None
        }
    }

    /// Split into the three cases.
    #[inline(always)]
    pub fn unbox(self) -> Unboxed<'gc, T> {
        if self.is_number() {
            Unboxed::Number(f64::from_bits(self.bits))
        } else if let Some(g) = self.as_gc() {
            Unboxed::Ptr(g)
        } else {
            Unboxed::Imm(self.bits as u32)
        }
    }

    /// The raw encoding: equal bits mean the same number (bitwise), immediate or object. Useful
    /// for identity comparisons and hashing.
    #[inline(always)]
    pub fn to_bits(self) -> u64 {
        self.bits
    }
}

impl<T> fmt::Debug for NanBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unbox() {
            Unboxed::Number(n) => write!(f, "NanBox::number({n})"),
            Unboxed::Imm(v) => write!(f, "NanBox::imm({v})"),
            Unboxed::Ptr(g) => write!(f, "NanBox::gc({:p})", g.as_ptr()),
        }
    }
}

// SAFETY: the only edge a `NanBox` holds is its pointer, which is reported.
unsafe impl<T> Trace for NanBox<'_, T> {
    const NEEDS_TRACE: bool = true;
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(g) = self.as_gc() {
            g.trace(tracer);
        }
    }
}

// SAFETY: the word is the encoding itself, so the round trip is the identity; every word
// `to_word` produces decodes to the same case (see `as_gc`). A pointer case is a `Gc`, which is
// thread-safe to copy like any `Gc` (heap objects are `Send + Sync`); the other cases are data.
// `WORD_EDGE`: `word_edge` decodes the word as `as_gc` does, and `trace` reports exactly that
// `Gc`, if any.
unsafe impl<'gc, T: 'gc> Slot<'gc> for NanBox<'gc, T> {
    const WORD_EDGE: bool = true;
    #[inline(always)]
    fn word_edge(w: usize) -> usize {
        Self::from_bits(w as u64).as_gc().map_or(0, Gc::to_word)
    }
    #[inline(always)]
    fn to_word(self) -> usize {
        self.bits as usize
    }
    #[inline(always)]
    unsafe fn from_word(w: usize) -> Self {
        Self::from_bits(w as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Heap, NoStack};

    #[test]
    fn numbers_round_trip_and_tag_space_nans_are_canonicalised() {
        for f in [
            0.0,
            -0.0,
            1.5,
            -3.25e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::from_bits(1), // subnormal
        ] {
            let v = NanBox::<u8>::number(f);
            assert!(v.is_number());
            assert_eq!(v.as_number().unwrap().to_bits(), f.to_bits());
            assert!(v.as_imm().is_none() && v.as_gc().is_none());
        }
        // NaNs in the tag space are canonicalised; the others are kept bit for bit.
        for nan in [
            f64::from_bits(0x7FFD_0000_0000_0001),
            f64::from_bits(0xFFFC_0000_0000_1234),
            f64::from_bits(u64::MAX),
        ] {
            let v = NanBox::<u8>::number(nan);
            assert!(v.is_number() && v.as_number().unwrap().is_nan());
            assert_eq!(v.to_bits(), CANONICAL_NAN);
        }
        let zero = std::hint::black_box(0.0f64);
        for nan in [
            f64::NAN,
            -f64::NAN,
            zero / zero,
            f64::INFINITY - f64::INFINITY,
        ] {
            let v = NanBox::<u8>::number(nan);
            assert!(v.is_number() && v.as_number().unwrap().is_nan());
            assert_eq!(v.to_bits(), nan.to_bits());
        }
    }

    /// The pointer encoding holds every user-space address of a 48-bit address space
    /// (x86-64's lower half; AArch64 with 48-bit virtual addresses, where `mmap` hands out
    /// addresses with bit 47 set), and its tag bits stay clear of them.
    #[test]
    fn the_pointer_encoding_holds_48_bit_addresses() {
        for addr in [0x1000u64, (1 << 47) | 0x1000, (1 << 48) - 8] {
            let v = NanBox::<u8>::from_bits(PTR_TAG | addr);
            assert!(!v.is_number() && v.as_imm().is_none());
            assert_eq!(v.to_bits() & ADDR_MASK, addr, "{addr:#x}");
            assert_eq!(v.to_bits() & !ADDR_MASK, PTR_TAG, "{addr:#x}");
        }
    }

    #[test]
    fn immediates_and_pointers_round_trip() {
        for i in [0, 1, 2, 0xFFFF_FFFF] {
            let v = NanBox::<u8>::imm(i);
            assert!(!v.is_number() && v.as_gc().is_none());
            assert_eq!(v.as_imm(), Some(i));
            // SAFETY: a word `to_word` produced, decoded as the same type.
            let back = unsafe { NanBox::<u8>::from_word(v.to_word()) };
            assert_eq!(back.as_imm(), Some(i));
        }
        let heap = Heap::new(Config::default()).unwrap();
        let mut m = heap.mutator::<NoStack>(|_| ());
        m.mutate(|mc, _| {
            let g = Gc::new(mc, 99u32);
            let v = NanBox::gc(g);
            assert!(!v.is_number() && v.as_imm().is_none());
            assert!(Gc::ptr_eq(v.as_gc().unwrap(), g));
            assert!(matches!(v.unbox(), Unboxed::Ptr(x) if *x == 99));
        });
    }
}
