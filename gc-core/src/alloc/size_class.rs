//! Size classes: how a small allocation request is rounded up to a slot size.
//!
//! Small objects (at most [`MAX_SMALL_SIZE`] bytes) are carved from spans that
//! hold slots of one size. The classes are generated at compile time by a rule, not copied from a
//! table:
//!
//! | range (bytes) | classes                      | step |
//! |---------------|------------------------------|------|
//! | 8 ..= 128     | 8, 16, 24, 32, 48, 64, …, 128 | 8 up to 32, then 16 |
//! | (2ᵏ, 2ᵏ⁺¹]    | 8 classes per doubling        | 2ᵏ / 8 |
//!
//! so above 128 bytes consecutive classes differ by a factor of at most 9/8 and the worst-case
//! **internal fragmentation** (slot bytes not asked for, over slot bytes) is below
//! 1/9 ≈ 11.1 %. Below 128 bytes the relative waste can be larger (a 9-byte request takes a
//! 16-byte slot: 43.75 %) but the absolute waste is at most 15 bytes. The test
//! `worst_case_fragmentation` computes these figures from the generated table.
//!
//! Every class from 32 bytes up is a multiple of 16, so 16-byte-aligned types get a class
//! without padding beyond the alignment round-up.
//!
//! Each class also chooses how many 8 KiB pages its spans have: the fewest pages (at most 16)
//! for which the **tail waste** (span bytes left over after the last whole slot) is at most 1/8
//! of the span. `span_tail_waste` checks that bound.

use crate::alloc::arena::PAGE_SIZE;

/// Largest slot size served from size-classed spans; larger objects get a span of their own.
pub const MAX_SMALL_SIZE: usize = 32 * 1024;

/// One size class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeClass {
    /// Slot size in bytes.
    pub size: usize,
    /// Pages per span of this class.
    pub pages: usize,
    /// Slots per span.
    pub slots: usize,
}

const fn count_classes() -> usize {
    let mut n = 0;
    let mut s = 0;
    while s < MAX_SMALL_SIZE {
        s = next_size(s);
        n += 1;
    }
    n
}

/// The class after `s` (0 gives the first class).
const fn next_size(s: usize) -> usize {
    if s < 32 {
        s + 8
    } else if s < 128 {
        s + 16
    } else {
        // 8 classes per power of two: step = 2^floor(log2 s) / 8.
        let pow = 1usize << (usize::BITS - 1 - s.leading_zeros());
        s + pow / 8
    }
}

const fn pages_for(size: usize) -> usize {
    let mut pages = 1;
    loop {
        let bytes = pages * PAGE_SIZE;
        if bytes >= size && (bytes % size) * 8 <= bytes {
            return pages;
        }
        if pages == 16 {
            // Unreachable for the generated classes (checked by a test); fall back to one slot.
            return size.div_ceil(PAGE_SIZE);
        }
        pages += 1;
    }
}

/// Number of small size classes.
pub const NUM_CLASSES: usize = count_classes();

/// The generated class table, smallest first.
pub const CLASSES: [SizeClass; NUM_CLASSES] = {
    let mut t = [SizeClass {
        size: 0,
        pages: 0,
        slots: 0,
    }; NUM_CLASSES];
    let mut i = 0;
    let mut s = 0;
    while i < NUM_CLASSES {
        s = next_size(s);
        let pages = pages_for(s);
        t[i] = SizeClass {
            size: s,
            pages,
            slots: pages * PAGE_SIZE / s,
        };
        i += 1;
    }
    t
};

const SMALL_LOOKUP_MAX: usize = 1024;
const SMALL_LOOKUP: [u8; SMALL_LOOKUP_MAX / 8 + 1] = {
    let mut t = [0u8; SMALL_LOOKUP_MAX / 8 + 1];
    let mut i = 0;
    while i < t.len() {
        let want = i * 8;
        let mut c = 0;
        while CLASSES[c].size < want {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
};
const LARGE_LOOKUP: [u8; (MAX_SMALL_SIZE - SMALL_LOOKUP_MAX) / 128 + 1] = {
    let mut t = [0u8; (MAX_SMALL_SIZE - SMALL_LOOKUP_MAX) / 128 + 1];
    let mut i = 0;
    while i < t.len() {
        let want = SMALL_LOOKUP_MAX + i * 128;
        let mut c = 0;
        while CLASSES[c].size < want {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
};

/// The class index for a request of `size` bytes (`1 ..= MAX_SMALL_SIZE`) whose slot must be a
/// multiple of `align` (8 or 16). `const` so that `Gc::new::<T>` resolves its class at compile
/// time. Returns `None` for sizes above [`MAX_SMALL_SIZE`].
#[inline]
pub const fn class_for(size: usize, align: usize) -> Option<usize> {
    let size = if size == 0 { 8 } else { size };
    if size > MAX_SMALL_SIZE {
        return None;
    }
    let mut c = if size <= SMALL_LOOKUP_MAX {
        SMALL_LOOKUP[size.div_ceil(8)] as usize
    } else {
        LARGE_LOOKUP[(size - SMALL_LOOKUP_MAX).div_ceil(128)] as usize
    };
    while CLASSES[c].size % align != 0 {
        c += 1;
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_sorted_and_cover_max() {
        assert_eq!(CLASSES[0].size, 8);
        assert_eq!(CLASSES[NUM_CLASSES - 1].size, MAX_SMALL_SIZE);
        for w in CLASSES.windows(2) {
            assert!(w[0].size < w[1].size);
        }
        for c in CLASSES {
            assert!(c.slots >= 1, "{c:?}");
            assert!(c.size < 32 || c.size % 16 == 0, "{c:?}");
        }
    }

    #[test]
    fn lookup_is_smallest_fitting_class() {
        for size in 1..=MAX_SMALL_SIZE {
            let c = class_for(size, 8).unwrap();
            assert!(CLASSES[c].size >= size);
            if c > 0 {
                assert!(CLASSES[c - 1].size < size, "size {size} class {c}");
            }
            let c16 = class_for(size, 16).unwrap();
            assert_eq!(CLASSES[c16].size % 16, 0);
            assert!(CLASSES[c16].size >= size);
        }
        assert_eq!(class_for(MAX_SMALL_SIZE + 1, 8), None);
        assert_eq!(class_for(0, 8), Some(0));
    }

    /// Worst-case internal fragmentation: a request one byte above the previous class.
    #[test]
    fn worst_case_fragmentation() {
        let mut worst_above_128 = 0.0f64;
        for w in CLASSES.windows(2) {
            let (prev, c) = (w[0].size, w[1].size);
            let waste = (c - prev - 1) as f64 / c as f64;
            if prev >= 128 {
                worst_above_128 = worst_above_128.max(waste);
            }
            assert!(c - prev - 1 < c / 8 + 1 || prev < 128);
        }
        assert!(worst_above_128 < 1.0 / 9.0, "{worst_above_128}");
    }

    #[test]
    fn span_tail_waste() {
        for c in CLASSES {
            let bytes = c.pages * PAGE_SIZE;
            assert!(c.pages <= 16);
            assert!((bytes - c.slots * c.size) * 8 <= bytes, "{c:?}");
        }
    }
}
