//! Deferred marks: a marker's claims on one mark word, set in memory a word at a time.
//!
//! A marker that shares mark bits with others sets a bit with a locked read-modify-write, so
//! that two markers never both take an object for white. That locked operation was half the
//! cost of marking a tree of small nodes allocated together (binary-trees, a parser's tree),
//! where most edges reach objects of the mark word the last edge reached. A [`MarkBatch`]
//! holds the bits of one mark word that its marker claimed but has not set: an object of the
//! batch's word is claimed with a plain load and an OR into the batch, and the batch is set with
//! one `fetch_or` when an edge reaches another word and when the marker's drain ends.
//!
//! * The first *scan* object of a new word is still marked at once with `fetch_or`: when every
//!   claim waited for the next word, the locked operation of a heap reached in random address
//!   order (each edge another word) waited for the next word's cache miss too, 25–30% slower.
//!   Noscan objects (a ring of buffers an array reaches in order) are batched from the first.
//! * Until the batch is set, another marker may find a claimed object white and grey it too:
//!   it is scanned twice, which marks nothing twice, and counted once, because a `fetch_or`
//!   counts only the bits it set.
//! * The plain load may read a stale 0 only for an object another marker marked; an object
//!   allocated during marking (black) is reached only through an `Acquire` load that carries
//!   its mark bit (`docs/design.md` §5 and §9).

use crate::alloc::span::Span;
use crate::util::primitive::AtomicU64;
use std::sync::atomic::Ordering;

/// The mark bits of one word that a marker claimed and has not set yet (see the module docs).
pub(crate) struct MarkBatch {
    /// The batch's span and word (null: none). Valid while the cycle's marking runs: the span
    /// holds an object reached this cycle, so no sweep frees it before the batch is set.
    span: *const Span,
    word: *const AtomicU64,
    w: usize,
    /// Claimed, not yet set (0: empty).
    bits: u64,
}

/// Objects and bytes whose mark bits a [`MarkBatch`] set in memory (what its marker counts as
/// marked by it).
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct Marked {
    pub objects: usize,
    pub bytes: usize,
}

impl MarkBatch {
    pub(crate) const fn new() -> MarkBatch {
        MarkBatch {
            span: std::ptr::null(),
            word: std::ptr::null(),
            w: 0,
            bits: 0,
        }
    }

    /// Claim slot `i` of `span`: whether it was white (then the caller greys it). What this
    /// call sets in memory (the last word's batch, or the object itself) is added to `marked`.
    #[inline(always)]
    pub(crate) fn claim(&mut self, span: &Span, i: usize, marked: &mut Marked) -> bool {
        let word = span.mark_word(i / 64);
        let bit = 1u64 << (i % 64);
        let same = std::ptr::eq(word, self.word);
        if (same && self.bits & bit != 0) || word.load(Ordering::Relaxed) & bit != 0 {
            return false;
        }
        if !same {
            self.set(marked);
            self.span = span;
            self.word = word;
            self.w = i / 64;
            if !span.tag.noscan {
                // The first scan object of a word at once (see the module docs).
                if word.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
                    return false;
                }
                marked.objects += 1;
                marked.bytes += span.elem_size;
                return true;
            }
        }
        self.bits |= bit;
        true
    }

    /// Whether slot `i` of `span` is claimed in this batch and not yet set.
    pub(crate) fn holds(&self, span: &Span, i: usize) -> bool {
        std::ptr::eq(span.mark_word(i / 64), self.word) && self.bits & (1 << (i % 64)) != 0
    }

    /// Whether no claim is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// Set the pending bits, adding the objects they newly marked to `marked`.
    #[inline]
    pub(crate) fn set(&mut self, marked: &mut Marked) {
        if self.bits == 0 {
            return;
        }
        // SAFETY: the batch's span holds an object reached this cycle, so it stays in use
        // until the cycle's marking ends (see the field), and its marker has not ended its
        // drain (the batch is set before).
        let span = unsafe { &*self.span };
        let newly = span.mark_bits(self.w, self.bits);
        self.bits = 0;
        let n = newly.count_ones() as usize;
        marked.objects += n;
        marked.bytes += n * span.elem_size;
    }

    /// Set the pending bits and forget the word (a later drain, perhaps of a later cycle, must
    /// not take a reused span's word for this one).
    pub(crate) fn finish(&mut self, marked: &mut Marked) {
        self.set(marked);
        self.span = std::ptr::null();
        self.word = std::ptr::null();
    }
}

/// A one-page span of 512 16-byte slots, for the tests.
#[cfg(test)]
fn test_span(noscan: bool) -> Span {
    static T: u8 = 0;
    let tag = crate::alloc::span_class::test_tag(&T, noscan);
    Span::new(0x10000, 1, 16, 512, 1, 0, tag, 0)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    use super::test_span as span;

    #[test]
    fn claims_are_set_a_word_at_a_time_and_counted_once() {
        for noscan in [false, true] {
            let s = span(noscan);
            let mut b = MarkBatch::new();
            let mut m = Marked::default();
            // Slot 3 is marked by someone else already.
            assert!(s.try_mark(3));
            assert!(b.claim(&s, 1, &mut m));
            assert!(b.claim(&s, 2, &mut m));
            assert!(!b.claim(&s, 2, &mut m), "claimed twice");
            assert!(!b.claim(&s, 3, &mut m), "marked already");
            assert!(b.holds(&s, 2) && !b.holds(&s, 3));
            // The same bit of another word, the same slot of another span: not held.
            assert!(!b.holds(&s, 66));
            assert!(!b.holds(&span(noscan), 2));
            // A scan object's first claim in a word is set at once; the rest wait.
            assert_eq!(s.is_marked(1), !noscan);
            assert!(!s.is_marked(2));
            // Another marker marks slot 2 meanwhile: the batch must not count it.
            assert!(s.try_mark(2));
            // Another word: the batch is set.
            assert!(b.claim(&s, 70, &mut m));
            assert!(s.is_marked(1) && s.is_marked(2));
            b.finish(&mut m);
            assert!(s.is_marked(70) && b.is_empty() && !b.holds(&s, 70));
            assert_eq!(
                m,
                Marked {
                    objects: 2,
                    bytes: 32
                },
                "slots 1 and 70 (2 and 3 were marked by others)"
            );
            assert_eq!(s.marked_count(), 4);
        }
    }

    #[test]
    fn racing_markers_count_every_object_exactly_once() {
        use std::sync::Arc;
        let rounds = if cfg!(miri) { 2 } else { 200 };
        // Whether two markers ever greyed one object: both claimed it before either's mark
        // was set, which only markers in one mark word at the same time can do.
        let mut raced = false;
        for round in 0..rounds {
            let s = Arc::new(span(round % 2 == 0));
            let start = std::sync::Barrier::new(3);
            let claimed: Vec<(Marked, Vec<usize>)> = std::thread::scope(|sc| {
                let hs: Vec<_> = (0..3)
                    .map(|t| {
                        let (s, start) = (s.clone(), &start);
                        sc.spawn(move || {
                            let (mut b, mut m, mut greyed) =
                                (MarkBatch::new(), Marked::default(), Vec::new());
                            // Each marker walks every slot, all from the same end (a third
                            // from the other), started together so that they meet in words.
                            start.wait();
                            for k in 0..512 {
                                let i = if t == 2 { 511 - k } else { k };
                                if b.claim(&s, i, &mut m) {
                                    greyed.push(i);
                                }
                            }
                            b.finish(&mut m);
                            (m, greyed)
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let counted: usize = claimed.iter().map(|(m, _)| m.objects).sum();
            assert_eq!(counted, 512, "every object counted once");
            let mut greyed = vec![false; 512];
            for i in claimed.iter().flat_map(|(_, g)| g) {
                greyed[*i] = true;
            }
            assert!(
                greyed.iter().all(|&g| g),
                "every object greyed at least once"
            );
            assert_eq!(s.marked_count(), 512);
            raced |= claimed.iter().map(|(_, g)| g.len()).sum::<usize>() > 512;
        }
        assert!(
            raced || cfg!(miri),
            "in {rounds} rounds no two markers claimed in one mark word at once"
        );
    }
}

/// loom model checks: whatever the interleaving, a batch and an atomic marker count every
/// object exactly once and grey each at least once, and a batch never greys an object
/// allocated black whose address it read as a marker reads a pointer word.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    fn span() -> Span {
        super::test_span(false)
    }

    #[test]
    fn loom_deferred_marks_count_once() {
        loom::model(|| {
            let s = Arc::new(span());
            let t = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let (mut b, mut m) = (MarkBatch::new(), Marked::default());
                    let g: Vec<bool> = [1, 2, 3].iter().map(|&i| b.claim(&s, i, &mut m)).collect();
                    b.finish(&mut m);
                    (m.objects, g)
                })
            };
            // An atomic marker (the barrier's shading, a root scan) reaching 1 (the batch's
            // first scan object of its word, set at once, so the two race for that bit too),
            // then 3 and 2 (deferred by the batch).
            let other: Vec<bool> = [1, 3, 2].iter().map(|&i| s.try_mark(i)).collect();
            let (n, g) = t.join().unwrap();
            let other_n = other.iter().filter(|&&x| x).count();
            assert_eq!(n + other_n, 3, "each object counted once");
            assert!(g[0] || other[0], "slot 1 greyed");
            assert!(g[1] || other[2], "slot 2 greyed");
            assert!(g[2] || other[1], "slot 3 greyed");
            assert_eq!(s.marked_count(), 3);
        });
    }

    #[test]
    fn loom_deferred_marks_never_grey_a_black_object() {
        loom::model(|| {
            let s = Arc::new(span());
            let published = Arc::new(AtomicBool::new(false));
            let t = {
                let (s, published) = (s.clone(), published.clone());
                // A mutator: its cache takes slots 4 and 5 black, then it stores the new
                // object's address in a cell (`Release`).
                loom::thread::spawn(move || {
                    s.mark_black(0, 0b11_0000);
                    published.store(true, Ordering::Release);
                })
            };
            let (mut b, mut m) = (MarkBatch::new(), Marked::default());
            assert!(b.claim(&s, 3, &mut m));
            // The marker reads the cell as it reads a pointer word; if it finds the new
            // object, it must see it black.
            if published.load(crate::gc::mark::tracer::POINTER_WORD_LOAD) {
                assert!(
                    !b.claim(&s, 4, &mut m),
                    "an object allocated black was greyed"
                );
            }
            b.finish(&mut m);
            t.join().unwrap();
            assert_eq!(m.objects, 1);
        });
    }
}
