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
//! | 2ᵏ + 16, 256 ≤ 2ᵏ ≤ 16 KiB | one **length-header class** after each power of two | |
//!
//! An array or string is a length word followed by its elements, so a power-of-two payload
//! (a 1 KiB buffer, a vector's doubled capacity) asks for 2ᵏ + 8 bytes; without the
//! length-header classes it would round up to 2ᵏ · 9/8, 11 % more than it holds (Go keeps a
//! slice's length outside the array and needs no such class).
//!
//! So above 128 bytes consecutive classes differ by a factor of at most 9/8 and the worst-case
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
//! of the span. A length-header class first tries for a tail of at most 1/32 within 8 pages
//! (a 1040-byte class in one page would waste 11 % of it, as much as the class saves): 3 pages
//! for 1040 bytes, 7 for 2064; from 4112 bytes up only the 1/8 bound can be met.
//! `span_tail_waste` checks these bounds.
//!
//! A regular class (not a length-header one) that fits one page then grows its spans to
//! [`SPAN_PAGES_MIN`] pages (32 KiB) as far as the mark bitmap's 1 024 slots and the tail bound
//! allow: 16-byte slots take 2 pages, 24- and 32-byte slots 3 and 4, and most classes up to
//! 8 KiB 4. A span's record (320 bytes, and an allocation bitmap of up to 128) costs the same
//! whatever the span's size, so one-page spans of 16-byte nodes spent 5 % of the heap on it;
//! and each span is a cache refill, a sweep and an entry in the sweep queue of its own.
//! `small_classes_take_up_to_four_pages` checks the rule.

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

/// Bytes a length-header class adds to its power of two: the length word, rounded up to the
/// 16-byte multiple every class from 32 bytes up keeps.
pub const LENGTH_HEADER: usize = 16;

/// The class after `s` (0 gives the first class).
const fn next_size(s: usize) -> usize {
    if s < 32 {
        s + 8
    } else if s < 128 {
        s + 16
    } else if s >= 256 && s < MAX_SMALL_SIZE && s.is_power_of_two() {
        s + LENGTH_HEADER
    } else {
        // 8 classes per power of two: step = 2^floor(log2 s) / 8, counted from the last
        // regular class (a length-header class sits 16 bytes above one).
        let pow = 1usize << (usize::BITS - 1 - s.leading_zeros());
        let step = pow / 8;
        s - s % step + step
    }
}

/// Whether `size` is a length-header class (2ᵏ + 16).
const fn is_length_header_class(size: usize) -> bool {
    size >= 256 + LENGTH_HEADER && (size - LENGTH_HEADER).is_power_of_two()
}

/// The fewest pages (at most `max`) whose tail waste is at most `1/denominator` of the span.
const fn pages_within(size: usize, denominator: usize, max: usize) -> Option<usize> {
    let mut pages = 1;
    while pages <= max {
        let bytes = pages * PAGE_SIZE;
        if bytes >= size && (bytes % size) * denominator <= bytes {
            return Some(pages);
        }
        pages += 1;
    }
    None
}

/// The pages a class's span grows to when its slots allow (see [`pages_for`]).
pub const SPAN_PAGES_MIN: usize = 4;

/// The most slots a span may have: its mark bitmap's bits.
const MAX_SLOTS: usize = crate::alloc::span::MARK_WORDS * 64;

const fn pages_for(size: usize) -> usize {
    if is_length_header_class(size) {
        // At most 64 KiB: every (type, class) pair has spans of its own.
        if let Some(p) = pages_within(size, 32, 8) {
            return p;
        }
    }
    let fewest = match pages_within(size, 8, 16) {
        Some(p) => p,
        // Unreachable for the generated classes (checked by a test); fall back to one slot.
        None => size.div_ceil(PAGE_SIZE),
    };
    if fewest > 1 {
        return fewest;
    }
    // A regular class that fits one page takes as many pages, up to SPAN_PAGES_MIN, as the mark
    // bitmap's slots and the tail bound allow: a span's record costs about 400 bytes whatever
    // its size (5% of a one-page span of 16-byte slots), and each span is a cache refill, a
    // sweep and a place in the sweep queue of its own.
    let mut pages = fewest;
    let mut p = fewest + 1;
    while p <= SPAN_PAGES_MIN {
        let bytes = p * PAGE_SIZE;
        if bytes / size <= MAX_SLOTS && (bytes % size) * 8 <= bytes {
            pages = p;
        }
        p += 1;
    }
    pages
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
/// Above 1 KiB every class is a multiple of 16 bytes (the length-header classes are not
/// multiples of 128), so the table has one entry per 16 bytes.
const LARGE_LOOKUP: [u8; (MAX_SMALL_SIZE - SMALL_LOOKUP_MAX) / 16 + 1] = {
    let mut t = [0u8; (MAX_SMALL_SIZE - SMALL_LOOKUP_MAX) / 16 + 1];
    let mut i = 0;
    while i < t.len() {
        let want = SMALL_LOOKUP_MAX + i * 16;
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
        LARGE_LOOKUP[(size - SMALL_LOOKUP_MAX).div_ceil(16)] as usize
    };
    while !CLASSES[c].size.is_multiple_of(align) {
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
        let regular: Vec<usize> = CLASSES
            .iter()
            .map(|c| c.size)
            .filter(|&s| !is_length_header_class(s))
            .collect();
        for w in regular.windows(2) {
            let (prev, c) = (w[0], w[1]);
            let waste = (c - prev - 1) as f64 / c as f64;
            if prev >= 128 {
                worst_above_128 = worst_above_128.max(waste);
            }
            assert!(c - prev - 1 < c / 8 + 1 || prev < 128);
        }
        assert!(worst_above_128 < 1.0 / 9.0, "{worst_above_128}");
    }

    /// A regular class that fits one page has spans of [`SPAN_PAGES_MIN`] pages, or of the most
    /// pages below that whose slots fit the mark bitmap and whose tail is within 1/8.
    #[test]
    fn small_classes_take_up_to_four_pages() {
        let fits = |size: usize, pages: usize| {
            let bytes = pages * PAGE_SIZE;
            bytes / size <= MAX_SLOTS && (bytes % size) * 8 <= bytes
        };
        for c in CLASSES {
            assert!(c.slots <= MAX_SLOTS, "{c:?}");
            let one_page = !is_length_header_class(c.size) && fits(c.size, 1);
            if one_page {
                assert!(c.pages <= SPAN_PAGES_MIN, "{c:?}");
                assert!(
                    (c.pages + 1..=SPAN_PAGES_MIN).all(|p| !fits(c.size, p)),
                    "{c:?} could take more pages"
                );
            }
        }
        let class = |size: usize| CLASSES[class_for(size, 8).unwrap()];
        assert_eq!((class(8).pages, class(8).slots), (1, 1024));
        assert_eq!((class(16).pages, class(16).slots), (2, 1024));
        assert_eq!((class(32).pages, class(32).slots), (4, 1024));
        assert_eq!((class(1024).pages, class(1024).slots), (4, 32));
        assert_eq!(class(1040).pages, 3);
    }

    #[test]
    fn span_tail_waste() {
        for c in CLASSES {
            let bytes = c.pages * PAGE_SIZE;
            assert!(c.pages <= 16);
            assert!((bytes - c.slots * c.size) * 8 <= bytes, "{c:?}");
        }
    }

    /// A power-of-two payload behind a length word (2ᵏ + 8 bytes) gets a slot 16 bytes above
    /// the power of two, in spans that waste at most 1/32 where 8 pages allow it, so it costs
    /// less span memory per object than the next regular class would.
    #[test]
    fn power_of_two_payloads_with_a_length_word() {
        let mut k = 256;
        while k < MAX_SMALL_SIZE {
            let c = CLASSES[class_for(k + 8, 16).unwrap()];
            assert_eq!(c.size, k + LENGTH_HEADER, "{k}");
            assert!(is_length_header_class(c.size));
            let bytes = c.pages * PAGE_SIZE;
            let per_object = bytes as f64 / c.slots as f64;
            let next = CLASSES[class_for(k + LENGTH_HEADER + 1, 16).unwrap()];
            let next_per_object = (next.pages * PAGE_SIZE) as f64 / next.slots as f64;
            assert!(per_object < next_per_object, "{c:?} vs {next:?}");
            if k <= 2048 {
                assert!((bytes - c.slots * c.size) * 32 <= bytes, "{c:?}");
            }
            // The power of two itself is still a class of its own.
            assert_eq!(CLASSES[class_for(k, 16).unwrap()].size, k);
            k *= 2;
        }
        assert_eq!(CLASSES[class_for(1032, 8).unwrap()].pages, 3);
    }
}
