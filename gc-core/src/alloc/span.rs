//! Spans: runs of pages holding slots of one size, with their mark and allocation bitmaps.
//!
//! A span is either **small** (a size class, many slots) or **large** (one object of more than
//! 32 KiB, rounded up to whole pages). Every object of a span has the same type, recorded once
//! in the span ([`TypeTag`]; objects have no header, see [`crate::alloc::span_class`]). A span is
//! **noscan** when its type holds no GC pointers: the marker sets its objects' mark bits and
//! never reads them.
//!
//! # Bitmaps
//!
//! | bitmap  | type                      | written by                         | read by |
//! |---------|---------------------------|------------------------------------|---------|
//! | `alloc` | `BitVec<u64>` in `state`  | owner of `state` (cache refill/flush, sweeper) | allocator, sweeper, verifier |
//! | `mark`  | `MARK_WORDS` atomic words inside the span | marker (`fetch_or`, concurrently), allocation cache (allocate-black), sweeper (clear) | sweeper, verifier, weak processing, marker (claims) |
//! | `scanned` | `MARK_WORDS` atomic words in a separate allocation, which only spans of a heap with span-local marking have | marker (claims, [`Span::claim_grey`]), allocation cache (allocate-black), sweeper (clear) | marker |
//!
//! The mark bits live in the `Span` itself, next to the fields the marker reads with them
//! (`start`, `div_mul`, `tag`): marking an object costs one cache miss on the span instead of
//! one on the span and a dependent one on a separately allocated bitmap. Every size class has
//! at most 1 024 slots, so [`MARK_WORDS`] words always suffice.
//!
//! The scan bits make span-local marking possible (`gc::mark::tracer`): during a mark phase an
//! object of a small span is white (mark 0), grey (mark 1, scan 0: its span is on a span queue,
//! [`Span::enqueue`]) or black (both 1). Sweeping clears both bitmaps.
//!
//! A slot is **allocated** iff its alloc bit is 1 (the allocation cache writes back the bits of
//! the slots it handed out whenever it leaves a 64-slot window or releases the span). After a
//! cycle, a slot is **live** iff its mark bit is 1. Sweeping frees the slots that are allocated
//! and not marked, then makes the mark bitmap the new alloc bitmap and clears the mark bitmap.
//! Bits past `nelems` in the last alloc word are kept at 1 so they are never handed out.
//!
//! # Span states
//!
//! | state            | where it is listed              | who may change `state` |
//! |------------------|---------------------------------|------------------------|
//! | cached           | one mutator's allocation cache  | that mutator (and the collector with the world stopped) |
//! | partial / full   | `Central::partial` / nowhere    | whoever holds the central lock, then the span lock |
//! | empty (kept)     | `Central::empty`                | whoever holds the central lock, then the span lock |
//! | unswept          | `Central::unswept`              | the sweeper that pops it |
//!
//! Every in-use span is also in `Central::all`. Span geometry (`start`, `elem_size`, …) is
//! immutable for the span's life, which is what lets the marker read it without a lock.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::alloc::span_class::TypeTag;

use crate::util::primitive::AtomicU64 as GenAtomic;
// The marking protocol's atomics (loom's under `--cfg loom`, see the loom tests below).
use crate::util::primitive::{AtomicU8, AtomicU64};

use bitvec::prelude::*;
use parking_lot::Mutex;

/// Byte written over every freed slot and every fresh span in verify mode, so that a read of
/// freed memory or a stale pointer shows up (see the verifier).
pub(crate) const POISON: u8 = 0xDB;

/// Mutable allocation state of a span (behind `Span::state`).
pub(crate) struct SpanAlloc {
    /// 1 = slot allocated.
    pub alloc: BitVec<u64, Lsb0>,
    /// Number of allocated slots (count of ones below `nelems`).
    pub allocated: usize,
    /// Whether a mutator cache currently owns this span.
    pub in_cache: bool,
    /// Whether the span is on one of its class's central lists of swept spans (the partial
    /// list, or the empty list).
    pub in_partial: bool,
}

/// Mark-bitmap words in every span: 1 024 slots, the most any size class has (8-byte slots in
/// one 8 KiB page, 16-byte slots in two, 32-byte slots in four; checked by a test).
pub(crate) const MARK_WORDS: usize = 16;

// `Span::dequeue` returns one bit per mark word in a `u32`.
const _: () = assert!(MARK_WORDS <= 32);

/// A run of pages holding slots of one size. `repr(C)`, cache-line aligned: the fields marking
/// reads (`start`, `div_mul`, `elem_size`, `tag`, `nelems`, `queued`) fill the first cache
/// line, the mark words follow them (two lines for the smallest classes), then the fields
/// sweeping reads, and last the pointer to the scan words, which only span-local marking has.
/// Spans live in the heap's span slab ([`crate::alloc::span_slab`]), packed at this size.
#[repr(C, align(64))]
pub(crate) struct Span {
    /// Address of the first slot (page aligned).
    pub start: usize,
    /// `ceil(2^32 / elem_size)`: slot index of an offset is `(off * div_mul) >> 32`, exact for
    /// every slot start because the error term `off * (div_mul - 2^32/size) / 2^32` is below
    /// `span bytes / 2^32 < 1` (Go: `mspan.divMul`). Saves a division per marked pointer.
    div_mul: u64,
    /// Slot size in bytes.
    pub elem_size: usize,
    /// The type of every object in the span.
    pub tag: TypeTag,
    /// Mark words in use: `nelems.div_ceil(64)`.
    mark_len: usize,
    /// Number of slots.
    pub nelems: usize,
    /// Whether the span is on a marker's span queue (or the shared queue), its grey objects to
    /// be scanned when it is taken off, and whether only one of them is (see
    /// [`Span::enqueue`]).
    queued: AtomicU8,
    /// Mark bits, set concurrently by the marker (words past `mark_len` stay 0).
    mark: [AtomicU64; MARK_WORDS],
    /// Sweep generation (Go: `mspan.sweepgen`), read against the heap's
    /// [`SweepGen`](crate::alloc::sweepgen::SweepGen): needs sweeping, being swept, or swept.
    /// With `class` and `class_id` in one cache line: the walk that queues every span for
    /// sweeping reads only these.
    pub sweep_gen: GenAtomic,
    /// Size-class index, or `LARGE` for a one-object span.
    pub class: usize,
    /// Span-class id (the central lists the span belongs to), or `LARGE` for a one-object span.
    pub class_id: usize,
    /// Pages in the span.
    pub npages: usize,
    /// Position of this span in `Central::all` (written under that list's lock), so that
    /// freeing a span is O(1) rather than a search of every span.
    pub all_index: AtomicUsize,
    /// Allocation state.
    pub state: Mutex<SpanAlloc>,
    /// Scan bits (Go: `spanInlineMarkBits.scans`), used by span-local marking only: set when a
    /// marker claims a marked object to scan it, and for objects allocated black. A marked
    /// object without its scan bit is grey. A separate allocation that only a heap marking
    /// span-locally gives its spans ([`Span::set_scan_words`]), so that the spans of every other
    /// heap carry 8 bytes for them instead of 128 (a span is five cache lines instead of seven).
    scanned: Option<Box<[AtomicU64; MARK_WORDS]>>,
}

/// [`Span::enqueue`]'s states: not on a span queue.
pub(crate) const UNQUEUED: u8 = 0;
/// On a span queue, and the entry's representative is the only object greyed since.
pub(crate) const QUEUED_ONE: u8 = 1;
/// On a span queue, and other objects may have been greyed since.
pub(crate) const QUEUED_MANY: u8 = 2;

/// `Span::class` of a large-object span.
pub(crate) const LARGE: usize = usize::MAX;

impl Span {
    /// A new span over `[start, start + npages pages)` with `nelems` slots of `elem_size`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        start: usize,
        npages: usize,
        elem_size: usize,
        nelems: usize,
        class: usize,
        class_id: usize,
        tag: TypeTag,
        sweep_gen: u64,
    ) -> Span {
        Self::with_buffers(
            start,
            npages,
            elem_size,
            nelems,
            class,
            class_id,
            tag,
            sweep_gen,
            Vec::new(),
        )
    }

    /// Make this (freed) span's metadata describe a new span, reusing its bitmap buffers, so
    /// that span turnover does not go through the global allocator (see `Central`'s spare list).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reuse(
        &mut self,
        start: usize,
        npages: usize,
        elem_size: usize,
        nelems: usize,
        class: usize,
        class_id: usize,
        tag: TypeTag,
        sweep_gen: u64,
    ) {
        let alloc = std::mem::take(&mut self.state.get_mut().alloc).into_vec();
        let scanned = self.scanned.take();
        *self = Self::with_buffers(
            start, npages, elem_size, nelems, class, class_id, tag, sweep_gen, alloc,
        );
        // Kept for `set_scan_words`, which clears them.
        self.scanned = scanned;
    }

    /// Give this span scan words, all clear (kept from an earlier life of its metadata if it
    /// has them), or take them away: with `on`, span-local marking may claim its objects.
    /// Every span of a heap that marks span-locally gets them when it is made.
    pub(crate) fn set_scan_words(&mut self, on: bool) {
        match (&self.scanned, on) {
            (Some(words), true) => words.iter().for_each(|w| w.store(0, Ordering::Relaxed)),
            (None, true) => {
                self.scanned = Some(Box::new(std::array::from_fn(|_| AtomicU64::new(0))))
            }
            (_, false) => self.scanned = None,
        }
    }

    /// [`Span::set_scan_words`] as a builder (tests).
    #[cfg(test)]
    pub(crate) fn with_scan_words(mut self) -> Span {
        self.set_scan_words(true);
        self
    }

    /// The scan words: only spans of a heap that marks span-locally have them.
    #[inline]
    fn scan_words(&self) -> &[AtomicU64; MARK_WORDS] {
        match &self.scanned {
            Some(words) => words,
            None => bug!("span-local marking of a span made without scan words"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn with_buffers(
        start: usize,
        npages: usize,
        elem_size: usize,
        nelems: usize,
        class: usize,
        class_id: usize,
        tag: TypeTag,
        sweep_gen: u64,
        mut alloc: Vec<u64>,
    ) -> Span {
        let words = nelems.div_ceil(64);
        assert!(
            words <= MARK_WORDS,
            "{nelems} slots: more than a span's mark words"
        );
        alloc.clear();
        alloc.resize(words, 0);
        let mut alloc = BitVec::<u64, Lsb0>::from_vec(alloc);
        // Bits past the last slot read as allocated, so the allocator never hands them out.
        // (Set through the raw word: bitvec's partial-element `fill` trips Miri's Stacked
        // Borrows check.)
        if !nelems.is_multiple_of(64) {
            alloc.as_raw_mut_slice()[words - 1] |= !0u64 << (nelems % 64);
        }
        Span {
            start,
            npages,
            elem_size,
            nelems,
            class,
            class_id,
            tag,
            div_mul: (u32::MAX as u64) / (elem_size as u64) + 1,
            mark: std::array::from_fn(|_| AtomicU64::new(0)),
            scanned: None,
            queued: AtomicU8::new(UNQUEUED),
            mark_len: words,
            state: Mutex::new(SpanAlloc {
                alloc,
                allocated: 0,
                in_cache: false,
                in_partial: false,
            }),
            sweep_gen: GenAtomic::new(sweep_gen),
            all_index: AtomicUsize::new(usize::MAX),
        }
    }

    /// Slot index of the object starting at `addr` (which must be a slot start in this span).
    #[inline]
    pub(crate) fn slot_index(&self, addr: usize) -> usize {
        let off = (addr - self.start) as u64;
        ((off * self.div_mul) >> 32) as usize
    }

    /// Address of slot `i`.
    #[inline]
    pub(crate) fn slot_addr(&self, i: usize) -> usize {
        self.start + i * self.elem_size
    }

    /// Whether `addr` is exactly the start of a slot of this span.
    pub(crate) fn is_slot_start(&self, addr: usize) -> bool {
        addr >= self.start
            && addr < self.start + self.nelems * self.elem_size
            && (addr - self.start).is_multiple_of(self.elem_size)
    }

    /// Mark words in use: `nelems.div_ceil(64)`.
    #[inline]
    pub(crate) fn mark_len(&self) -> usize {
        self.mark_len
    }

    /// The bits of word `w` (of the alloc or mark bitmap, below [`Span::mark_len`]) that stand
    /// for slots: all of them but in the last word, where the bits past `nelems` are not slots
    /// (the alloc bitmap keeps them set, so that they are never handed out).
    #[inline]
    pub(crate) fn slot_bits(&self, w: usize) -> u64 {
        if (w + 1) * 64 <= self.nelems {
            u64::MAX
        } else {
            (1u64 << (self.nelems - w * 64)) - 1
        }
    }

    /// The mark words in use.
    #[inline]
    fn mark_words(&self) -> &[AtomicU64] {
        &self.mark[..self.mark_len]
    }

    /// Mark word `w` (below [`Span::mark_len`]).
    #[inline]
    pub(crate) fn mark_word(&self, w: usize) -> &AtomicU64 {
        &self.mark_words()[w]
    }

    /// Set the mark bit of slot `i`; returns true if this call set it (the object was white).
    /// Safe with several markers at once.
    ///
    /// `Relaxed` suffices: the bit only decides which marker greys the object; the object's
    /// contents were published to the marker by the stop-the-world handshake that began the
    /// cycle, and the bit reaches whoever scans the object through [`Span::enqueue`]'s release.
    #[inline]
    pub(crate) fn try_mark(&self, i: usize) -> bool {
        let w = self.mark_word(i / 64);
        let bit = 1u64 << (i % 64);
        if w.load(Ordering::Relaxed) & bit != 0 {
            return false;
        }
        w.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// Set the mark bit of slot `i` when the caller is the only thread touching mark bits (the
    /// single stop-the-world marker): a load and a store instead of a locked `fetch_or`, which
    /// is about a third of the cost of marking an object. Returns true if the object was white.
    #[inline]
    pub(crate) fn try_mark_exclusive(&self, i: usize) -> bool {
        let w = self.mark_word(i / 64);
        let bit = 1u64 << (i % 64);
        let v = w.load(Ordering::Relaxed);
        if v & bit != 0 {
            return false;
        }
        w.store(v | bit, Ordering::Relaxed);
        true
    }

    /// Set the mark bits `bits` of mark word `w` at once (a concurrent marker's batch of the
    /// objects it claimed in one word, see `Tracer::mark_deferred`); returns the bits this call
    /// set (the objects that were white): one locked `fetch_or` for the whole batch, and none
    /// when every bit is set already. `Relaxed` as in [`Span::try_mark`]: the claimer greyed
    /// the objects on its own stack already; the bits decide what is counted, whether other
    /// markers grey the objects too (a duplicate, see `gc::mark::batch`), what an ephemeron
    /// table's key test sees, and once marking has ended, what survives.
    #[inline]
    pub(crate) fn mark_bits(&self, w: usize, bits: u64) -> u64 {
        let word = self.mark_word(w);
        if word.load(Ordering::Relaxed) & bits == bits {
            return 0;
        }
        bits & !word.fetch_or(bits, Ordering::Relaxed)
    }

    /// After a marker newly marked a grey object of this span: whether the caller must put the
    /// span on its span queue, with that object as the entry's *representative* (true once per
    /// trip through a queue; false if the span is queued already, and whoever takes it off will
    /// see the mark).
    ///
    /// The queue state (Go: `spanScanOwnership`) is [`UNQUEUED`], [`QUEUED_ONE`] (queued, and
    /// no other object greyed since: its entry's representative is the only grey object) or
    /// [`QUEUED_MANY`]. The one-object state lets [`Span::dequeue`] name the representative's
    /// mark word alone for claiming instead of every word of the span: a graph whose
    /// objects alternate between spans (an instance, its field table, the next instance) greys
    /// one object per span visit, and scanning a 16-word bitmap for it costs more than the object.
    ///
    /// Why no mark is missed (acquire/release reasoning only, which loom checks): the state is
    /// only ever changed by read-modify-writes (a compare-exchange here, a swap in `dequeue`), so
    /// its writes form one chain, each reading the one before, and any of them that reads a
    /// release write synchronises with it. The state is queued exactly while one entry for the
    /// span waits on a queue. If this call reads `UNQUEUED`, the caller queues the span. If it
    /// reads a queued state, the dequeue of that entry comes later in the chain and reads this
    /// write or a later one: this write (release) synchronises with it (acquire), so the mark
    /// bit, set before, is visible to the claims after the dequeue; and the dequeue reads
    /// `QUEUED_MANY` (this call wrote it, and nothing but a dequeue writes a smaller value), so
    /// its caller claims every word.
    ///
    /// A read-modify-write even when the span is queued already: a plain load that reads a
    /// queued state would not synchronise with the dequeue, which could then miss the mark (the
    /// store-buffering pattern).
    ///
    /// With `exclusive` (the only marker, the world stopped) a load and a store instead of a
    /// locked compare-exchange.
    #[inline]
    pub(crate) fn enqueue(&self, exclusive: bool) -> bool {
        let next = |cur| {
            if cur == UNQUEUED {
                QUEUED_ONE
            } else {
                QUEUED_MANY
            }
        };
        let mut cur = self.queued.load(Ordering::Relaxed);
        if exclusive {
            self.queued.store(next(cur), Ordering::Relaxed);
            return cur == UNQUEUED;
        }
        loop {
            match self.queued.compare_exchange_weak(
                cur,
                next(cur),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return cur == UNQUEUED,
                Err(c) => cur = c,
            }
        }
    }

    /// A marker took this span's entry, whose representative is slot `rep`, off a queue: mark
    /// the span unqueued before it claims the grey objects (a mark made after this point
    /// queues the span again). Returns the mark words that may hold grey objects, one bit each:
    /// every word in use if other objects than the representative may have been greyed
    /// ([`QUEUED_MANY`]), else the representative's word alone (see [`Span::enqueue`]).
    #[inline]
    pub(crate) fn dequeue(&self, rep: usize, exclusive: bool) -> u32 {
        let prev = if exclusive {
            let prev = self.queued.load(Ordering::Relaxed);
            self.queued.store(UNQUEUED, Ordering::Relaxed);
            prev
        } else {
            self.queued.swap(UNQUEUED, Ordering::AcqRel)
        };
        debug_assert_ne!(prev, UNQUEUED, "a span dequeued twice");
        if prev == QUEUED_MANY {
            (1u32 << self.mark_len) - 1
        } else {
            1 << (rep / 64)
        }
    }

    /// Claim the grey objects of mark word `w` for scanning: those marked and not yet scanned,
    /// set scanned in the same step so that no other marker claims them. With `exclusive` (the
    /// only marker, the world stopped) without a read-modify-write.
    ///
    /// Slots pre-marked for allocate-black are set scanned before they are marked
    /// ([`Span::mark_black`]), so a claim never returns a slot that is free or being
    /// initialised.
    #[inline]
    pub(crate) fn claim_grey(&self, w: usize, exclusive: bool) -> u64 {
        let marked = self.mark[w].load(Ordering::Acquire);
        let scanned = &self.scan_words()[w];
        let seen = scanned.load(Ordering::Relaxed);
        let grey = marked & !seen;
        if grey == 0 {
            0
        } else if exclusive {
            scanned.store(seen | grey, Ordering::Relaxed);
            grey
        } else {
            grey & !scanned.fetch_or(grey, Ordering::AcqRel)
        }
    }

    /// Allocate-black: mark the slots `bits` of word `w` (handed to an allocation cache while
    /// marking), before any of them is handed out: the allocating thread then publishes each
    /// object's address only after its mark, so a marker that reaches the object sees it black
    /// (deferred marks test the bit with a plain load, `gc::mark::batch`). With span-local
    /// marking (the span has scan words) set them scanned first, so that no marker claims them
    /// to scan: `Release` on the mark orders the scan bits before it for a claimer that reads
    /// the mark (`Acquire`).
    #[inline]
    pub(crate) fn mark_black(&self, w: usize, bits: u64) {
        if let Some(scanned) = &self.scanned {
            scanned[w].fetch_or(bits, Ordering::Relaxed);
        }
        self.mark[w].fetch_or(bits, Ordering::Release);
    }

    /// Clear mark word `w`, and with span-local marking (the span has scan words) its scan bits
    /// (sweeping: the next cycle starts white).
    #[inline]
    pub(crate) fn clear_marks(&self, w: usize) {
        self.mark[w].store(0, Ordering::Relaxed);
        if let Some(scanned) = &self.scanned {
            scanned[w].store(0, Ordering::Relaxed);
        }
    }

    /// Whether the span is on a span queue (tests and assertions).
    pub(crate) fn is_queued(&self) -> bool {
        self.queued.load(Ordering::Relaxed) != UNQUEUED
    }

    /// Whether slot `i` is marked.
    #[inline]
    pub(crate) fn is_marked(&self, i: usize) -> bool {
        self.mark_word(i / 64).load(Ordering::Relaxed) & (1u64 << (i % 64)) != 0
    }

    /// Number of marked slots.
    pub(crate) fn marked_count(&self) -> usize {
        self.mark_words()
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::alloc::size_class::CLASSES;

    static T0: u8 = 0;
    static T1: u8 = 1;

    fn tag(t: &'static u8, noscan: bool) -> TypeTag {
        crate::alloc::span_class::test_tag(t, noscan)
    }

    #[test]
    fn every_class_fits_the_mark_words() {
        for c in CLASSES {
            assert!(c.slots <= MARK_WORDS * 64, "{c:?}");
        }
        assert_eq!(CLASSES.iter().map(|c| c.slots).max(), Some(MARK_WORDS * 64));
    }

    #[test]
    fn div_mul_is_exact_at_every_slot_start() {
        for c in CLASSES {
            let s = Span::new(0x10000, c.pages, c.size, c.slots, 0, 0, tag(&T0, false), 0);
            for i in 0..c.slots {
                assert_eq!(s.slot_index(s.slot_addr(i)), i, "class {c:?} slot {i}");
            }
        }
    }

    #[test]
    fn mark_bits_test_and_set() {
        let s = Span::new(0x10000, 1, 24, 341, 2, 0, tag(&T0, false), 0);
        assert!(s.try_mark(5));
        assert!(!s.try_mark(5));
        assert!(s.is_marked(5));
        assert!(!s.is_marked(6));
        assert!(s.try_mark(340));
        assert_eq!(s.marked_count(), 2);
        assert!(s.try_mark_exclusive(7));
        assert!(!s.try_mark_exclusive(7));
        assert!(!s.try_mark(7));
        assert_eq!(s.marked_count(), 3);
    }

    #[test]
    fn a_batch_of_mark_bits_returns_the_ones_it_set() {
        let s = Span::new(0x10000, 1, 24, 341, 2, 0, tag(&T0, true), 0);
        assert!(s.try_mark(65));
        // Word 1 holds slots 64..128: slot 65 is marked, 66 and 127 are white.
        let bits = (1 << 1) | (1 << 2) | (1 << 63);
        assert_eq!(s.mark_bits(1, bits), (1 << 2) | (1 << 63));
        assert_eq!(s.mark_bits(1, bits), 0);
        assert!(s.is_marked(66) && s.is_marked(127) && !s.is_marked(64));
        assert_eq!(s.marked_count(), 3);
    }

    /// The bits past the last slot read as allocated, and `slot_bits` leaves exactly them out.
    #[test]
    fn alloc_bits_past_end_are_set() {
        let s = Span::new(0x10000, 1, 24, 341, 2, 0, tag(&T0, false), 0);
        let st = s.state.lock();
        assert_eq!(st.alloc.len(), 384);
        assert!(st.alloc[341..].all());
        assert!(st.alloc[..341].not_any());
        for w in 0..s.mark_len() {
            assert_eq!(s.slot_bits(w), !st.alloc.as_raw_slice()[w], "word {w}");
        }
        assert_eq!(s.slot_bits(5), (1 << (341 - 320)) - 1);
        let full = Span::new(0x10000, 1, 8, 1024, 0, 0, tag(&T0, false), 0);
        assert!((0..full.mark_len()).all(|w| full.slot_bits(w) == u64::MAX));
    }

    /// A span's metadata is five cache lines on a 64-bit target: the geometry, two of mark
    /// words, the sweep fields and allocation state. (The scan words, 128 bytes, live apart.)
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn span_metadata_is_five_cache_lines() {
        assert_eq!(std::mem::size_of::<Span>(), 5 * 64);
    }

    #[test]
    fn reused_metadata_is_as_new() {
        // A used span (bits set, counters moved) reused for a different geometry, bigger and
        // then smaller, must look exactly like a fresh one.
        let mut s = Span::new(0x10000, 1, 24, 341, 2, 0, tag(&T0, false), 4).with_scan_words();
        s.try_mark(3);
        s.try_mark(300);
        s.mark_black(1, 1 << 2);
        {
            let mut st = s.state.lock();
            st.alloc.set(7, true);
            st.allocated = 9;
            st.in_partial = true;
        }
        for (size, n) in [(16, 512), (48, 170)] {
            s.reuse(0x20000, 1, size, n, 1, 7, tag(&T1, true), 6);
            s.set_scan_words(true);
            let fresh = Span::new(0x20000, 1, size, n, 1, 7, tag(&T1, true), 6);
            assert_eq!(s.marked_count(), 0);
            assert!(
                s.scan_words()
                    .iter()
                    .all(|w| w.load(Ordering::Relaxed) == 0),
                "scan words kept, and cleared"
            );
            assert_eq!(s.mark_len(), fresh.mark_len());
            let (st, ft) = (s.state.lock(), fresh.state.lock());
            assert_eq!(st.alloc, ft.alloc);
            assert_eq!(
                (st.allocated, st.in_cache, st.in_partial),
                (0, false, false)
            );
            drop((st, ft));
            assert_eq!(
                (s.start, s.elem_size, s.nelems, s.class_id, s.tag),
                (0x20000, size, n, 7, tag(&T1, true))
            );
            assert_eq!(s.slot_index(0x20000 + 5 * size), 5);
            assert_eq!(s.sweep_gen.load(Ordering::Relaxed), 6);
        }
        s.set_scan_words(false);
        assert!(s.scanned.is_none());
        let fresh = Span::new(0x20000, 1, 16, 512, 1, 7, tag(&T1, true), 6);
        assert!(fresh.scanned.is_none(), "spans are made without scan words");
    }

    #[test]
    fn grey_objects_are_claimed_once_and_black_slots_never() {
        let s = Span::new(0x10000, 1, 16, 512, 1, 0, tag(&T0, false), 0).with_scan_words();
        assert!(s.try_mark(3) && s.try_mark(70));
        // Slots 10 and 11 are handed to an allocation cache while marking.
        s.mark_black(0, (1 << 10) | (1 << 11));
        assert!(s.enqueue(false), "the first grey object queues the span");
        s.dequeue(3, false);
        assert!(s.enqueue(true));
        assert_eq!(
            s.dequeue(70, true),
            0b10,
            "one object greyed: the representative's word suffices"
        );
        assert!(s.enqueue(false));
        assert!(!s.enqueue(false), "queued already");
        assert!(s.is_queued());
        assert_eq!(s.dequeue(3, false), 0xff, "two objects greyed: every word");
        assert!(!s.is_queued());
        assert_eq!(s.claim_grey(0, false), 1 << 3);
        assert_eq!(s.claim_grey(1, true), 1 << 6);
        assert_eq!(s.claim_grey(0, false), 0, "claimed once");
        assert_eq!(s.claim_grey(1, false), 0);
        // Marked after the claim: grey again, and claimable.
        assert!(s.try_mark(4));
        assert_eq!(s.claim_grey(0, false), 1 << 4);
        assert_eq!(s.marked_count(), 5);
        // Sweeping clears both bitmaps.
        for w in 0..s.mark_len() {
            s.clear_marks(w);
        }
        assert!(s.try_mark(3));
        assert_eq!(s.claim_grey(0, false), 1 << 3, "scan bits cleared too");
        assert_eq!(s.claim_grey(0, true), 0);
    }

    /// Take span `k`'s entry with representative `rep` off the queue and claim its grey
    /// objects, recording the claims in `scans` (8 words per span): whether any was claimed
    /// twice, and how many were claimed.
    fn take_and_claim(spans: &[Span], scans: &[AtomicU64], k: usize, rep: usize) -> (bool, u32) {
        let words = spans[k].dequeue(rep, false);
        let (mut twice, mut n) = (false, 0);
        for w in (0..8).filter(|w| words & (1 << w) != 0) {
            let g = spans[k].claim_grey(w, false);
            twice |= scans[k * 8 + w].fetch_or(g, Ordering::Relaxed) & g != 0;
            n += g.count_ones();
        }
        (twice, n)
    }

    /// Randomised stress of the span queue with real threads: markers mark random slots of a
    /// few spans (each marked object "points to" another random slot, marked when scanned) and
    /// share one queue; at the end every marked object was scanned exactly once.
    #[test]
    fn threads_marking_and_scanning_spans_lose_no_grey_object() {
        use std::collections::VecDeque;
        use std::sync::Mutex;
        const SPANS: usize = 4;
        const THREADS: usize = 4;
        let rounds = if cfg!(miri) { 2 } else { 200 };
        for round in 0..rounds {
            let spans: Vec<Span> = (0..SPANS)
                .map(|k| {
                    Span::new(0x10000 * (k + 1), 1, 16, 512, 1, 0, tag(&T0, false), 0)
                        .with_scan_words()
                })
                .collect();
            let queue = Mutex::new(VecDeque::<(usize, usize)>::new());
            let scans: Vec<AtomicU64> = (0..SPANS * 8).map(|_| AtomicU64::new(0)).collect();
            let twice = std::sync::atomic::AtomicBool::new(false);
            let per_thread = if cfg!(miri) { 20 } else { 300 };
            std::thread::scope(|sc| {
                for t in 0..THREADS {
                    let (spans, queue, scans, twice) = (&spans, &queue, &scans, &twice);
                    sc.spawn(move || {
                        let mut seed = (round * 31 + t * 7 + 1) as u64;
                        let mut next = move || {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            seed as usize
                        };
                        let mark = |k: usize, i: usize| {
                            if spans[k].try_mark(i) && spans[k].enqueue(false) {
                                queue.lock().unwrap().push_back((k, i));
                            }
                        };
                        for n in 0..per_thread {
                            mark(next() % SPANS, next() % 512);
                            if n % 3 == 0 {
                                let popped = queue.lock().unwrap().pop_front();
                                if let Some((k, rep)) = popped {
                                    let (again, claimed) = take_and_claim(spans, scans, k, rep);
                                    if again {
                                        twice.store(true, Ordering::Relaxed);
                                    }
                                    // Each scanned object's one child.
                                    for _ in 0..claimed {
                                        mark(next() % SPANS, next() % 512);
                                    }
                                }
                            }
                        }
                    });
                }
            });
            // Drain what is left, as the last marker before termination would (children of
            // these are not modelled: the threads have stopped).
            loop {
                let Some((k, rep)) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                if take_and_claim(&spans, &scans, k, rep).0 {
                    twice.store(true, Ordering::Relaxed);
                }
            }
            assert!(
                !twice.load(Ordering::Relaxed),
                "an object was claimed twice"
            );
            for (k, span) in spans.iter().enumerate() {
                assert!(!span.is_queued());
                for w in 0..8 {
                    assert_eq!(
                        span.mark_word(w).load(Ordering::Relaxed),
                        scans[k * 8 + w].load(Ordering::Relaxed),
                        "round {round}: span {k} word {w}: a marked object was never scanned"
                    );
                }
            }
        }
    }
}

/// loom model checks of the span queue: in every interleaving, every object marked grey is
/// claimed for scanning exactly once by whoever takes its span off the queue, and slots marked
/// for allocate-black are never claimed.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::{Arc, Mutex};

    static T: u8 = 0;

    fn span() -> Span {
        Span::new(
            0x10000,
            1,
            16,
            512,
            1,
            0,
            crate::alloc::span_class::test_tag(&T, false),
            0,
        )
        .with_scan_words()
    }

    /// Queue entries (each one trip of the span through the queue, with its representative)
    /// and the bits claimed, per mark word.
    #[derive(Default)]
    struct Model {
        entries: Mutex<Vec<usize>>,
        claimed: Mutex<[u64; 3]>,
    }

    impl Model {
        fn mark(&self, s: &Span, i: usize) {
            if s.try_mark(i) && s.enqueue(false) {
                self.entries.lock().unwrap().push(i);
            }
        }
        fn pending(&self) -> bool {
            !self.entries.lock().unwrap().is_empty()
        }
        /// Take the span off the queue if it is on it, and claim its grey objects: of every
        /// word, or of the representative's alone when the span was queued for it only.
        fn scan(&self, s: &Span) {
            let Some(rep) = self.entries.lock().unwrap().pop() else {
                return;
            };
            let words = s.dequeue(rep, false);
            for w in (0..3).filter(|w| words & (1 << w) != 0) {
                let g = s.claim_grey(w, false);
                let mut c = self.claimed.lock().unwrap();
                assert_eq!(c[w] & g, 0, "claimed twice");
                c[w] |= g;
            }
        }
    }

    #[test]
    fn loom_span_queue_loses_no_grey_object() {
        loom::model(|| {
            let s = Arc::new(span());
            let m = Arc::new(Model::default());
            // Objects in three different mark words, so that claiming only the
            // representative's word would miss the others.
            let t = {
                let (s, m) = (s.clone(), m.clone());
                loom::thread::spawn(move || {
                    m.mark(&s, 1);
                    m.scan(&s);
                })
            };
            m.mark(&s, 70);
            m.scan(&s);
            m.mark(&s, 130);
            t.join().unwrap();
            // Termination: whoever is left drains the queue.
            while m.pending() {
                m.scan(&s);
            }
            assert!(!s.is_queued());
            assert_eq!(
                *m.claimed.lock().unwrap(),
                [1 << 1, 1 << 6, 1 << 2],
                "every grey object scanned"
            );
        });
    }

    #[test]
    fn loom_black_slots_are_never_claimed() {
        loom::model(|| {
            let s = Arc::new(span());
            let m = Arc::new(Model::default());
            let t = {
                let s = s.clone();
                // An allocation cache takes slots 5 and 6 while marking.
                loom::thread::spawn(move || s.mark_black(0, 0b110_0000))
            };
            m.mark(&s, 1);
            m.scan(&s);
            t.join().unwrap();
            m.mark(&s, 2);
            while m.pending() {
                m.scan(&s);
            }
            assert_eq!(
                *m.claimed.lock().unwrap(),
                [0b110, 0, 0],
                "only the grey objects"
            );
        });
    }
}
