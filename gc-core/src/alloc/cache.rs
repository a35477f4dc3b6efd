//! Per-mutator allocation caches (Go: `mcache`): the lock-free allocation fast path.
//!
//! Each mutator owns one [`MCache`]: a small two-way set-associative table with an entry per
//! span class it allocates in (a type in a size class: [`crate::alloc::span_class`]), found by
//! hashing the class's key (its type's address and its size class). An entry caches one span and a 64-slot **window** of it: `free`
//! holds a 1 for every free slot in the window. Allocation is
//!
//! ```text
//! e = entry(key); if e.free != 0 { i = trailing_zeros(e.free); e.free &= e.free - 1; return e.base + i * size }
//! ```
//!
//! — no lock, no atomic read-modify-write, no write to the span. Only when the window is empty
//! does the slow path lock the span, write the window's consumed bits back into the span's alloc
//! bitmap, and load the next window (or take another span from [`Central`](crate::alloc::central::Central)).
//!
//! # Who touches a cache
//!
//! The owning mutator, inside its scopes; the collector, only with the world stopped (to flush
//! it); the mutator's `Drop`, under the registry lock. The safepoint handshake orders these, so
//! the cache needs no lock (the collector's mutator record holds it; see `gc::registry`).
//!
//! # What the slow path reports
//!
//! The cache knows nothing of marking or pacing: it is told whether marking is on (`black`:
//! windows are then loaded pre-marked, allocate-black), sweeps lazily through the [`LazySweep`]
//! the collector passes in, and reports a span it took ([`TookSpan`]); the collector decides
//! from that whether a cycle is due and charges the mark assist.
//!
//! # Heap accounting (Go: `heapLive` updated at `mcache.refill`)
//!
//! When a cache takes a span, all its free bytes are added to `heap_live` at once; when it gives
//! the span back, the bytes it did not use are subtracted (see
//! [`HeapCounters`](crate::alloc::mheap::HeapCounters)): one atomic add per span rather than per
//! object.

use std::sync::atomic::Ordering;

use crate::alloc::central::{SpanKind, SpanRef, Swept};
use crate::alloc::mheap::{MHeap, TookSpan};
use crate::alloc::size_class::class_for;
use crate::alloc::span::{Span, SpanAlloc};
use crate::alloc::span_class::{CacheKey, TypeIdentity, TypeTag};
use crate::util::error::AllocError;

/// Entries in a cache (a power of two).
const ENTRIES: usize = 128;

/// The cached state for one span class.
#[derive(Clone, Copy)]
struct ClassCache {
    /// The span class's cache key ([`TypeTag::key`]); [`CacheKey::NONE`] for an unused entry.
    key: CacheKey,
    /// The span class's id (valid when `key` is not `NONE`).
    class_id: usize,
    /// Free slots of the current window (bit i = slot `word * 64 + i`).
    free: u64,
    /// Free slots of the window when it was loaded.
    window_free: u64,
    /// Address of slot `word * 64`.
    base: usize,
    /// Slot size.
    elem_size: usize,
    /// Current window index.
    word: usize,
    /// The cached span.
    span: Option<SpanRef>,
}

impl ClassCache {
    /// Take the lowest free slot of the window, if any.
    #[inline(always)]
    fn pop(&mut self) -> Option<usize> {
        let f = self.free;
        if f == 0 {
            return None;
        }
        self.free = f & (f - 1);
        Some(self.base + f.trailing_zeros() as usize * self.elem_size)
    }
}

const EMPTY: ClassCache = ClassCache {
    key: CacheKey::NONE,
    class_id: 0,
    free: 0,
    window_free: 0,
    base: 0,
    elem_size: 0,
    word: 0,
    span: None,
};

/// The first of the two entries a key may occupy (the other is `index ^ 1`): a multiplicative
/// hash of the type's address and the class (the address's low bits vary little between types).
#[inline(always)]
fn index(key: CacheKey) -> usize {
    (key.ty ^ key.class).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        >> (usize::BITS - ENTRIES.trailing_zeros())
}

/// Lazy sweeping, as the collector provides it to the allocator: the cache pops and claims an
/// unswept span of the class it needs and hands it over to be swept.
pub(crate) trait LazySweep {
    /// Whether to stop sweeping and take a fresh span instead (a pause is waiting).
    fn should_stop(&self) -> bool;
    /// Sweep `s`, which the caller has claimed and which is in no cache and on no list.
    fn sweep(&self, s: SpanRef) -> Swept;
}

/// A mutator's allocation cache: a two-way set-associative table of span classes, keyed by
/// (type, size class).
pub(crate) struct MCache {
    entries: [ClassCache; ENTRIES],
    /// Objects handed out and already written back (published to `objects_allocated` when the
    /// cache is flushed).
    allocated_objects: u64,
}

impl MCache {
    pub(crate) fn new() -> MCache {
        MCache {
            entries: [EMPTY; ENTRIES],
            allocated_objects: 0,
        }
    }

    /// Allocate a slot of the span class with cache key `key` ([`TypeTag::key`]) from the
    /// current window: the fast path. `None` when the window is empty or the class has no
    /// entry (then [`MCache::refill`]).
    #[inline(always)]
    pub(crate) fn alloc_small(&mut self, key: CacheKey) -> Option<usize> {
        let e = self.find(key)?;
        self.entries[e].pop()
    }

    /// The entry holding `key`: one of its two places, if any.
    #[inline(always)]
    fn find(&self, key: CacheKey) -> Option<usize> {
        let i = index(key);
        if self.entries[i].key == key {
            Some(i)
        } else if self.entries[i ^ 1].key == key {
            Some(i ^ 1)
        } else {
            None
        }
    }

    /// Write the consumed bits of `c`'s window back into the span's alloc bitmap. A window
    /// loaded while marking was pre-marked (allocate-black, see [`load_window`]): clear the
    /// marks of the slots it did not hand out and count the ones it did as allocated black.
    fn write_back(
        mh: &MHeap,
        c: &mut ClassCache,
        span: &Span,
        st: &mut SpanAlloc,
        black: bool,
    ) -> u64 {
        let used = c.window_free & !c.free;
        st.alloc.as_raw_mut_slice()[c.word] |= used;
        st.allocated += used.count_ones() as usize;
        if black {
            // `Relaxed`: markers only set bits of allocated objects, never of these free slots.
            // With span-local marking their scan bits stay set (`Span::mark_black` set both):
            // harmless, since a slot with its mark bit clear is never claimed, and the sweep
            // clears every scan bit (`Span::clear_marks`) before a slot can be handed out again
            // other than black.
            span.mark_word(c.word).fetch_and(!c.free, Ordering::Relaxed);
            let k = &mh.counters;
            k.alloc_black.fetch_add(
                used.count_ones() as usize * span.elem_size,
                Ordering::Relaxed,
            );
            k.alloc_black_objects
                .fetch_add(used.count_ones() as u64, Ordering::Relaxed);
        }
        c.window_free = c.free;
        used.count_ones() as u64
    }

    /// The entry of the span class of `tag` in `size_class`, made if it has none: an unused
    /// entry of its two, or else one whose span is written back and released to its partial
    /// list.
    fn entry(
        &mut self,
        mh: &MHeap,
        tag: TypeTag,
        size_class: usize,
        black: bool,
        identity: impl FnOnce(TypeTag) -> TypeIdentity,
    ) -> Result<usize, AllocError> {
        let key = tag.key(size_class);
        if let Some(e) = self.find(key) {
            return Ok(e);
        }
        let i = index(key);
        let class_id =
            mh.central
                .classes
                .id(tag, size_class, identity)
                .ok_or(AllocError::TooManyTypes {
                    limit: crate::alloc::span_class::MAX_SPAN_CLASSES,
                })?;
        let victim = if self.entries[i].span.is_none() {
            i
        } else {
            i ^ 1
        };
        self.flush_entry(mh, victim, black, true);
        self.entries[victim] = ClassCache {
            key,
            class_id,
            ..EMPTY
        };
        Ok(victim)
    }

    /// Slow path of [`MCache::alloc_small`] for objects of type `tag` in `size_class`: the next
    /// window of the cached span, or a new span (swept lazily through `sweeper`, or fresh).
    /// `black`: marking is on. Returns the slot and, if a span was taken, what to report.
    #[cold]
    #[inline(never)]
    pub(crate) fn refill(
        &mut self,
        mh: &MHeap,
        tag: TypeTag,
        size_class: usize,
        black: bool,
        sweeper: &impl LazySweep,
        identity: impl FnOnce(TypeTag) -> TypeIdentity,
    ) -> Result<(usize, Option<TookSpan>), AllocError> {
        let e = self.entry(mh, tag, size_class, black, identity)?;
        let c = &mut self.entries[e];
        if let Some(s) = c.span {
            // A cached span stays allocated while cached: it is in no list, so no sweeper can
            // free it.
            let span = s.get();
            let mut st = span.state.lock();
            self.allocated_objects += Self::write_back(mh, c, span, &mut st, black);
            let words = st.alloc.as_raw_slice();
            for (w, &word) in words.iter().enumerate().skip(c.word + 1) {
                let free = !word;
                if free != 0 {
                    load_window(span, w, free, black, false);
                    c.word = w;
                    c.free = free;
                    c.window_free = free;
                    c.base = span.start + w * 64 * c.elem_size;
                    drop(st);
                    let addr = c
                        .pop()
                        .unwrap_or_else(|| bug!("a loaded window had no free slot"));
                    return Ok((addr, None));
                }
            }
            drop(st);
            self.release(mh, e, black, false);
        }
        let (s, fresh) = acquire_span(mh, self.entries[e].class_id, sweeper)?;
        let bytes = self.install(mh, e, s, black);
        let addr = self.entries[e]
            .pop()
            .unwrap_or_else(|| bug!("an installed span's window had no free slot"));
        Ok((addr, Some(TookSpan { bytes, fresh })))
    }

    /// Take `s` (swept, with free slots, not on any list) into entry `e`; returns the bytes
    /// added to `heap_live`.
    fn install(&mut self, mh: &MHeap, e: usize, s: SpanRef, black: bool) -> usize {
        let span = s.get();
        let mut st = span.state.lock();
        debug_assert!(!st.in_cache && !st.in_partial);
        st.in_cache = true;
        let free_bytes = (span.nelems - st.allocated) * span.elem_size;
        let words = st.alloc.as_raw_slice();
        let Some(w) = words.iter().position(|w| !w != 0) else {
            bug!("installed span has no free slot");
        };
        let free = !words[w];
        load_window(span, w, free, black, true);
        drop(st);
        let c = &mut self.entries[e];
        *c = ClassCache {
            free,
            window_free: free,
            base: span.start + w * 64 * span.elem_size,
            elem_size: span.elem_size,
            word: w,
            span: Some(s),
            ..*c
        };
        mh.note_taken(free_bytes, span.tag.noscan, black);
        free_bytes
    }

    /// Give the span cached in entry `e` back (its window written back already); the entry
    /// keeps its span class. With `to_partial`, a span with free slots goes on its central
    /// partial list (mutator exit, eviction); otherwise it is left for the next sweep (world
    /// stopped: every span is about to be queued for sweeping anyway).
    fn release(&mut self, mh: &MHeap, e: usize, black: bool, to_partial: bool) {
        let c = &mut self.entries[e];
        let Some(s) = c.span else {
            return;
        };
        let span = s.get();
        *c = ClassCache {
            key: c.key,
            class_id: c.class_id,
            ..EMPTY
        };
        let (unused, has_free) = {
            let mut st = span.state.lock();
            st.in_cache = false;
            (
                (span.nelems - st.allocated) * span.elem_size,
                st.allocated < span.nelems,
            )
        };
        let k = &mh.counters;
        k.heap_live.fetch_sub(unused, Ordering::Relaxed);
        k.heap_alloc.fetch_sub(unused, Ordering::Relaxed);
        if !span.tag.noscan && !black {
            // As `note_taken` counts it (not while marking). Saturating: the count is reset at
            // mark termination, after every cache's flush, so this only guards a mismatch.
            let _ = k
                .heap_scan
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(unused))
                });
        }
        if to_partial && has_free {
            let mut l = mh.central.classes.get(span.class_id).lists.lock();
            let mut st = span.state.lock();
            if !st.in_partial && !mh.central.needs_sweep(span) {
                st.in_partial = true;
                drop(st);
                l.partial.push(s);
            }
        }
    }

    /// Write back entry `e`'s window and release its span, if it has one.
    fn flush_entry(&mut self, mh: &MHeap, e: usize, black: bool, to_partial: bool) {
        let c = &mut self.entries[e];
        let Some(s) = c.span else {
            return;
        };
        let span = s.get();
        {
            let mut st = span.state.lock();
            self.allocated_objects += Self::write_back(mh, c, span, &mut st, black);
        }
        self.release(mh, e, black, to_partial);
    }

    /// Write back every window and release every span (world stopped, or mutator exit); see
    /// [`MCache::release`] for `to_partial`.
    pub(crate) fn flush(&mut self, mh: &MHeap, black: bool, to_partial: bool) {
        for e in 0..ENTRIES {
            self.flush_entry(mh, e, black, to_partial);
        }
        mh.counters.objects_allocated.fetch_add(
            std::mem::take(&mut self.allocated_objects),
            Ordering::Relaxed,
        );
    }
}

/// Windows ahead of the one being loaded whose memory [`load_window`] prefetches.
const PREFETCH_AHEAD: usize = 2;

/// Bytes of a window's memory [`load_window`] prefetches (the first 16 cache lines: all of a
/// 16-byte class's window; the hardware's streaming prefetcher carries on from there).
const PREFETCH_BYTES: usize = 1024;

/// A window of `span` (word `w`, free slots `free`) is being handed to a cache. While marking
/// (`black`), pre-mark its free slots, so that whatever the cache allocates from it is black
/// (allocated during the mark and never scanned). `write_back` clears the unused ones.
///
/// It also prefetches the start of the window [`PREFETCH_AHEAD`] windows on (and, for the
/// first window of a span, `first`, the ones between): a span's memory was last touched a cycle
/// ago, if ever, and the first store to each window otherwise waited for its cache (and TLB)
/// miss. binary-trees spent 9.6% of its samples on that one store; prefetching a window or
/// two ahead hides it (`docs/benchmarks.md`, "Allocation windows prefetched ahead").
#[inline]
fn load_window(span: &Span, w: usize, free: u64, black: bool, first: bool) {
    let window = 64 * span.elem_size;
    let from = if first { w + 1 } else { w + PREFETCH_AHEAD };
    for ahead in from..=w + PREFETCH_AHEAD {
        if ahead * 64 < span.nelems {
            crate::util::prefetch::prefetch_lines(
                span.start + ahead * window,
                window.min(PREFETCH_BYTES) / 64,
            );
        }
    }
    if black {
        // Scan bits first, so that no marker claims the free slots to scan them. The mark bits
        // must be set here, before any slot of the window is handed out: a marker that later
        // reaches one of its objects (through an `Acquire` load of a location the mutator
        // wrote after the allocation) tests its bit with a plain load before greying it
        // (deferred marks, `gc::mark::batch`), and must see it black, never scan an object
        // being initialised.
        span.mark_black(w, free);
    }
}

/// Spans an allocation may sweep lazily before it takes a fresh span instead (Go:
/// `spanBudget` in `mcentral.cacheSpan`). Right after mark termination most spans of a class
/// may be full of live objects; without a bound one allocation could sweep thousands of them
/// (milliseconds), and no pause can begin meanwhile. The background sweeper does the rest.
const SWEEP_BUDGET: usize = 100;

/// Get a swept span with a free slot for `sc`: from the partial list, by sweeping an unswept
/// span of the class (lazy sweeping, at most [`SWEEP_BUDGET`] spans), from the class's empty
/// list, or fresh from the arena (then `true`).
///
/// Whatever it pops is its own (see [`crate::alloc::central`]): a partial span is swept already,
/// an unswept one it claims and sweeps. In the weak-clearing window it takes a fresh span:
/// nothing may be swept then, and the collector is moving the partial lists' spans to the
/// unswept lists. (Called inside a scope, so the window cannot open meanwhile; it may close,
/// which only means a fresh span taken where a swept one was available.)
fn acquire_span(
    mh: &MHeap,
    sc: usize,
    sweeper: &impl LazySweep,
) -> Result<(SpanRef, bool), AllocError> {
    let lists = &mh.central.classes.get(sc).lists;
    let c = &mh.central;
    let mut budget = SWEEP_BUDGET;
    while !c.sweep_held() && budget > 0 && !sweeper.should_stop() {
        let from_partial = {
            let mut l = lists.lock();
            let s = l.partial.pop();
            if let Some(s) = s {
                s.get().state.lock().in_partial = false;
            }
            s
        };
        if let Some(s) = from_partial {
            if !c.is_swept(s.get()) {
                bug!("an unswept span was on a partial list");
            }
            return Ok((s, false));
        }
        let Some(s) = c.pop_unswept(sc) else { break };
        // Popped outside the window, inside a scope (no mark termination meanwhile): ours.
        if !c.try_claim(s.get()) {
            bug!("a span popped from an unswept list could not be claimed");
        }
        budget -= 1;
        if sweeper.sweep(s).free_slots > 0 {
            return Ok((s, false));
        }
        // Full after sweeping: it stays in `all` only.
    }
    // A span a sweep emptied and kept for the class (cheaper than a fresh one: no page
    // allocation, no page-map writes).
    if let Some(s) = c.pop_empty(sc) {
        return Ok((s, false));
    }
    Ok((mh.new_span(SpanKind::Small(sc))?.0, true))
}

/// Size class for a request of `bytes` with alignment `align`, or `None` for a large object.
#[inline(always)]
pub(crate) const fn size_class_for(bytes: usize, align: usize) -> Option<usize> {
    class_for(bytes, if align > 8 { 16 } else { 8 })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::alloc::arena::{Arena, PAGE_SIZE};
    use crate::alloc::size_class::CLASSES;
    use crate::alloc::span_class::test_tag;
    use std::cell::Cell;

    /// Types for the tests' tags: each element's address is a type of its own.
    static TYPES: [u64; 1024] = [0; 1024];

    /// Each tag is its own type identity (its own span class).
    fn own(t: TypeTag) -> TypeIdentity {
        TypeIdentity {
            words: [t.ptr() as usize, 0, 0, 0, 0],
            name: "",
        }
    }

    fn tag(k: usize) -> TypeTag {
        test_tag(&TYPES[k], false)
    }

    /// The size class of 16-byte objects (sixteen windows a span), its slot size and slots.
    fn small() -> (usize, usize, usize) {
        let c = size_class_for(16, 8).unwrap();
        assert!(CLASSES[c].slots > 64 * 4, "several windows a span");
        (c, CLASSES[c].size, CLASSES[c].slots)
    }

    fn heap(pages: usize, span_marking: bool) -> MHeap {
        MHeap::new(
            Arena::new(pages * PAGE_SIZE).unwrap(),
            false,
            None,
            span_marking,
        )
    }

    /// Lazy sweeping as the collector does it, without drop glue: unmarked slots are freed.
    /// Counts its sweeps; `stop` is what `should_stop` says.
    struct Sweeper<'m> {
        mh: &'m MHeap,
        stop: bool,
        sweeps: Cell<usize>,
    }

    impl<'m> Sweeper<'m> {
        fn new(mh: &'m MHeap) -> Self {
            Sweeper {
                mh,
                stop: false,
                sweeps: Cell::new(0),
            }
        }
    }

    impl LazySweep for Sweeper<'_> {
        fn should_stop(&self) -> bool {
            self.stop
        }
        fn sweep(&self, s: SpanRef) -> Swept {
            let span = s.get();
            let mut st = span.state.lock();
            let mut live = 0;
            for (w, word) in st.alloc.as_raw_mut_slice().iter_mut().enumerate() {
                let valid = span.slot_bits(w);
                let m = span.mark_word(w).load(Ordering::Relaxed) & valid;
                *word = m | !valid;
                live += m.count_ones() as usize;
                span.clear_marks(w);
            }
            st.allocated = live;
            self.mh.central.set_swept(span);
            self.sweeps.set(self.sweeps.get() + 1);
            Swept {
                free_slots: span.nelems - live,
                empty: live == 0,
            }
        }
    }

    /// Allocate one object of `tag` in `class`: the fast path, else a refill (whose report is
    /// returned).
    fn alloc(
        c: &mut MCache,
        mh: &MHeap,
        sw: &Sweeper,
        tag: TypeTag,
        class: usize,
        black: bool,
    ) -> (usize, Option<Option<TookSpan>>) {
        match c.alloc_small(tag.key(class)) {
            Some(a) => (a, None),
            None => {
                let (a, took) = c.refill(mh, tag, class, black, sw, own).unwrap();
                (a, Some(took))
            }
        }
    }

    fn span_at(mh: &MHeap, addr: usize) -> &Span {
        // SAFETY (test): `addr` is in a span the test made and has not freed.
        unsafe { &*mh.arena.span_of(addr) }
    }

    /// A cache hands out every slot of its span once, in address order, a window at a time:
    /// the first refill takes a fresh span (reporting all its bytes), the next ones load the
    /// span's next windows (reporting nothing), and the one after the last slot takes another
    /// span. Flushed, the counters are exact: every object counted, what the cache did not use
    /// given back, and the span it left with free slots on its partial list.
    #[test]
    fn a_cache_hands_out_a_span_slot_by_slot_a_window_at_a_time() {
        let mh = heap(64, false);
        let sw = Sweeper::new(&mh);
        let (class, size, slots) = small();
        let mut c = MCache::new();
        assert_eq!(c.alloc_small(tag(0).key(class)), None, "no entry yet");
        let mut addrs = Vec::new();
        let mut windows = 0;
        for i in 0..slots {
            let (a, refill) = alloc(&mut c, &mh, &sw, tag(0), class, false);
            match (i, refill) {
                (0, Some(Some(took))) => {
                    assert_eq!((took.bytes, took.fresh), (slots * size, true));
                }
                (0, r) => panic!("the first allocation reported {r:?}"),
                (_, Some(None)) => windows += 1,
                (_, Some(Some(took))) => panic!("slot {i} took a span: {took:?}"),
                (_, None) => {}
            }
            addrs.push(a);
        }
        assert_eq!(windows, slots / 64 - 1, "one refill a window");
        let span = span_at(&mh, addrs[0]);
        let expect: Vec<usize> = (0..slots).map(|i| span.start + i * size).collect();
        assert_eq!(addrs, expect);
        assert_eq!(mh.counters.heap_live.load(Ordering::Relaxed), slots * size);
        let (a, refill) = alloc(&mut c, &mh, &sw, tag(0), class, false);
        let took = refill
            .flatten()
            .expect("a full span's next allocation takes a span");
        assert!(took.fresh && took.bytes == slots * size);
        let next = span_at(&mh, a);
        assert!(!std::ptr::eq(next, span) && a == next.start);
        c.alloc_small(tag(0).key(class)).unwrap();
        assert_eq!(
            mh.counters.objects_allocated.load(Ordering::Relaxed),
            0,
            "published at the flush"
        );
        c.flush(&mh, false, true);
        let k = &mh.counters;
        assert_eq!(
            k.objects_allocated.load(Ordering::Relaxed),
            slots as u64 + 2
        );
        for figure in [&k.heap_live, &k.heap_alloc, &k.heap_scan] {
            assert_eq!(figure.load(Ordering::Relaxed), (slots + 2) * size);
        }
        assert_eq!(
            (span.state.lock().allocated, next.state.lock().allocated),
            (slots, 2)
        );
        assert!(!span.state.lock().in_cache && !next.state.lock().in_cache);
        let lists = mh.central.classes.get(next.class_id).lists.lock();
        assert_eq!(lists.partial.len(), 1, "only the span with free slots");
        assert!(std::ptr::eq(lists.partial[0].get(), next) && next.state.lock().in_partial);
        assert_eq!(c.alloc_small(tag(0).key(class)), None, "flushed");
    }

    /// While marking, a window is loaded pre-marked (allocate-black): every free slot of it is
    /// black before one is handed out, and slots already allocated keep their marks. Written
    /// back, the slots handed out stay black and are counted as allocated black; the others
    /// are white again. A span taken while marking adds nothing to the scannable heap.
    #[test]
    fn a_window_loaded_while_marking_is_black_and_written_back_black_where_used() {
        for span_marking in [false, true] {
            let mh = heap(64, span_marking);
            let sw = Sweeper::new(&mh);
            let (class, size, slots) = small();
            let mut c = MCache::new();
            let (first, _) = alloc(&mut c, &mh, &sw, tag(0), class, true);
            let span = span_at(&mh, first);
            assert_eq!(span.mark_word(0).load(Ordering::Relaxed), u64::MAX);
            assert_eq!(
                span.mark_word(1).load(Ordering::Relaxed),
                0,
                "the next window"
            );
            for _ in 0..2 {
                alloc(&mut c, &mh, &sw, tag(0), class, true);
            }
            c.flush(&mh, true, true);
            assert_eq!(span.mark_word(0).load(Ordering::Relaxed), 0b111);
            let k = &mh.counters;
            assert_eq!(k.alloc_black.load(Ordering::Relaxed), 3 * size);
            assert_eq!(k.alloc_black_objects.load(Ordering::Relaxed), 3);
            assert_eq!(k.heap_live.load(Ordering::Relaxed), 3 * size);
            assert_eq!(k.heap_scan.load(Ordering::Relaxed), 0, "allocated black");
            // The span again, from its partial list, while marking: the first window is loaded
            // with the three allocated slots' marks as they were and the rest black; only what
            // this cache hands out is counted as allocated black.
            span.mark_word(0).store(0b101, Ordering::Relaxed);
            let (a, took) = alloc(&mut c, &mh, &sw, tag(0), class, true);
            let took = took.flatten().unwrap();
            assert_eq!((a, took.fresh), (span.start + 3 * size, false));
            assert_eq!(took.bytes, (slots - 3) * size);
            assert_eq!(span.mark_word(0).load(Ordering::Relaxed), !0b010);
            c.flush(&mh, true, true);
            assert_eq!(span.mark_word(0).load(Ordering::Relaxed), 0b1101);
            assert_eq!(k.alloc_black_objects.load(Ordering::Relaxed), 4);
            // Not marking: nothing is pre-marked, and a scannable span's bytes are scan work.
            let before = span.mark_word(0).load(Ordering::Relaxed);
            alloc(&mut c, &mh, &sw, tag(0), class, false);
            assert_eq!(span.mark_word(0).load(Ordering::Relaxed), before);
            c.flush(&mh, false, true);
            assert_eq!(span.mark_word(0).load(Ordering::Relaxed), before);
            assert_eq!(k.alloc_black_objects.load(Ordering::Relaxed), 4);
            assert_eq!(k.heap_live.load(Ordering::Relaxed), 5 * size);
            assert_eq!(k.heap_scan.load(Ordering::Relaxed), size);
            assert_eq!(span.state.lock().allocated, 5);
        }
    }

    /// A span given back with free slots goes on its partial list when the cache is flushed
    /// for good (mutator exit, eviction), not when the world is stopped (every span is about to
    /// be queued for sweeping), nor when it needs sweeping; a full span never. Its unused bytes
    /// leave the heap figures, and the scannable heap only for a scannable type.
    #[test]
    fn a_span_given_back_is_listed_as_partial_only_with_free_slots_and_for_good() {
        let mh = heap(64, false);
        let sw = Sweeper::new(&mh);
        let (class, size, slots) = small();
        let k = &mh.counters;
        // A scan figure to subtract from: the last cycle's scan work.
        let scan = 1 << 20;
        k.heap_scan.store(scan, Ordering::Relaxed);
        let partial = |t: TypeTag| {
            let id = mh.central.classes.id(t, class, own).unwrap();
            mh.central.classes.get(id).lists.lock().partial.len()
        };
        let mut c = MCache::new();
        // Full: not listed.
        let (a, _) = alloc(&mut c, &mh, &sw, tag(0), class, false);
        for _ in 1..slots {
            alloc(&mut c, &mh, &sw, tag(0), class, false);
        }
        c.flush(&mh, false, true);
        assert!(!span_at(&mh, a).state.lock().in_partial);
        assert_eq!(partial(tag(0)), 0, "a full span listed");
        // With free slots, world stopped: not listed.
        let (b, _) = alloc(&mut c, &mh, &sw, tag(1), class, false);
        c.flush(&mh, false, false);
        assert!(!span_at(&mh, b).state.lock().in_partial);
        assert_eq!(partial(tag(1)), 0, "listed in a pause");
        assert_eq!(k.heap_live.load(Ordering::Relaxed), (slots + 1) * size);
        assert_eq!(
            k.heap_scan.load(Ordering::Relaxed),
            scan + (slots + 1) * size
        );
        // A noscan type's bytes are not scan work, taken or given back.
        let noscan = test_tag(&TYPES[2], true);
        alloc(&mut c, &mh, &sw, noscan, class, false);
        c.flush(&mh, false, true);
        assert_eq!(partial(noscan), 1);
        assert_eq!(k.heap_live.load(Ordering::Relaxed), (slots + 2) * size);
        assert_eq!(
            k.heap_scan.load(Ordering::Relaxed),
            scan + (slots + 1) * size
        );
        // Cached across a mark termination (which the protocol flushes first): it needs
        // sweeping, and is left to the sweep.
        let (d, _) = alloc(&mut c, &mh, &sw, tag(3), class, false);
        mh.central.advance_sweep_gen();
        c.flush(&mh, false, true);
        assert!(mh.central.needs_sweep(span_at(&mh, d)));
        assert_eq!(partial(tag(3)), 0, "an unswept span listed as partial");
    }

    /// A span whose first windows are full is installed at its first free window, and its
    /// windows are written back where they are: the next window after it is the next free
    /// one, and no slot is handed out twice.
    #[test]
    fn a_span_is_installed_at_its_first_free_window() {
        let mh = heap(64, false);
        let sw = Sweeper::new(&mh);
        let (class, size, slots) = small();
        let id = mh.central.classes.id(tag(0), class, own).unwrap();
        let s = mh.new_span(SpanKind::Small(id)).unwrap().0;
        let span = s.get();
        {
            // Windows 0 to 7 full, the rest free.
            let mut st = span.state.lock();
            st.alloc.as_raw_mut_slice()[..8].fill(u64::MAX);
            st.allocated = 8 * 64;
        }
        mh.central.place_swept_batch(&mh.arena, id, &[], &[Some(s)]);
        let mut c = MCache::new();
        let mut addrs = Vec::new();
        for _ in 0..slots - 8 * 64 {
            addrs.push(alloc(&mut c, &mh, &sw, tag(0), class, false).0);
        }
        let expect: Vec<usize> = (8 * 64..slots).map(|i| span.start + i * size).collect();
        assert_eq!(addrs, expect);
        c.flush(&mh, false, true);
        let st = span.state.lock();
        assert_eq!(st.allocated, slots);
        assert!(st.alloc.as_raw_slice().iter().all(|&w| w == u64::MAX));
    }

    /// `n` types (of one size class) whose keys have the same first entry, of parity `odd`.
    fn sharing_first_entry(class: usize, n: usize, odd: bool) -> Vec<usize> {
        let mut by_entry: Vec<Vec<usize>> = vec![Vec::new(); ENTRIES];
        for k in 0..TYPES.len() {
            let i = index(tag(k).key(class));
            by_entry[i].push(k);
            if by_entry[i].len() == n && (i % 2 == 1) == odd {
                return by_entry[i].clone();
            }
        }
        panic!("no {n} of {} types share a first entry", TYPES.len());
    }

    /// The keys of different types spread over the table (at least half of its entry pairs
    /// for 128 types; 55 expected of a uniform hash), so that a mutator allocating a few types
    /// rarely evicts one.
    #[test]
    fn keys_spread_over_the_table() {
        let (class, ..) = small();
        let mut pairs: Vec<usize> = (0..ENTRIES).map(|k| index(tag(k).key(class)) / 2).collect();
        pairs.sort_unstable();
        pairs.dedup();
        assert!(pairs.len() >= ENTRIES / 4, "{} pairs", pairs.len());
    }

    /// A key is found in either of its two entries (the second is the first's other half of
    /// its pair, for a first entry at an even index or an odd one), and nowhere else.
    #[test]
    fn a_key_is_found_in_either_of_its_two_entries() {
        let (class, ..) = small();
        let mut c = MCache::new();
        let mut parities = [false; 2];
        for k in 0..TYPES.len() {
            let key = tag(k).key(class);
            let i = index(key);
            parities[i % 2] = true;
            for e in [i, i ^ 1] {
                c.entries[e].key = key;
                assert_eq!(c.find(key), Some(e), "type {k} in entry {e}, first {i}");
                c.entries[e].key = CacheKey::NONE;
            }
            let elsewhere = (i + 2) % ENTRIES;
            c.entries[elsewhere].key = key;
            assert_eq!(c.find(key), None);
            c.entries[elsewhere].key = CacheKey::NONE;
        }
        assert_eq!(parities, [true; 2], "first entries of both parities");
    }

    /// A key has two entries. Of three types whose keys have the same first entry, the first
    /// takes it, the second the other entry of the pair (both are cached), and the third evicts
    /// the second (the first entry has a span): its span is written back and listed as partial
    /// with what was allocated of it counted, and taken again by the second type's next
    /// allocation. For a first entry at an even index and at an odd one.
    #[test]
    fn a_third_type_on_an_entry_pair_evicts_the_second_to_its_partial_list() {
        for odd in [false, true] {
            let mh = heap(64, false);
            let sw = Sweeper::new(&mh);
            let (class, size, slots) = small();
            let types = sharing_first_entry(class, 3, odd);
            let key = |k: usize| tag(types[k]).key(class);
            let mut c = MCache::new();
            let (x, _) = alloc(&mut c, &mh, &sw, tag(types[0]), class, false);
            for _ in 0..2 {
                alloc(&mut c, &mh, &sw, tag(types[1]), class, false);
            }
            let (y, _) = alloc(&mut c, &mh, &sw, tag(types[1]), class, false);
            let i = index(key(0));
            assert_eq!((c.find(key(0)), c.find(key(1))), (Some(i), Some(i ^ 1)));
            let (kept, evicted) = (span_at(&mh, x), span_at(&mh, y));
            alloc(&mut c, &mh, &sw, tag(types[2]), class, false);
            assert_eq!(c.find(key(2)), Some(i ^ 1));
            assert!(c.alloc_small(key(0)).is_some(), "the first kept");
            assert_eq!(c.alloc_small(key(1)), None, "the second evicted");
            assert!(c.alloc_small(key(2)).is_some());
            {
                let st = evicted.state.lock();
                assert_eq!(st.allocated, 3);
                assert!(!st.in_cache && st.in_partial);
                assert!(kept.state.lock().in_cache);
            }
            let lists = mh.central.classes.get(evicted.class_id).lists.lock();
            assert_eq!(lists.partial.len(), 1);
            drop(lists);
            assert_eq!(c.allocated_objects, 3, "the evicted window's objects");
            // Three spans taken, one given back less its three objects.
            assert_eq!(
                mh.counters.heap_live.load(Ordering::Relaxed),
                3 * slots * size - (slots - 3) * size
            );
            let (z, took) = alloc(&mut c, &mh, &sw, tag(types[1]), class, false);
            let took = took.flatten().unwrap();
            assert!(!took.fresh && std::ptr::eq(span_at(&mh, z), evicted));
            assert_eq!(z, evicted.start + 3 * size);
        }
    }

    /// Allocate every slot of `s` and mark `live` of them (those below it), as a cycle that
    /// found them live leaves them.
    fn fill(s: SpanRef, live: usize) {
        let span = s.get();
        let mut st = span.state.lock();
        st.alloc.as_raw_mut_slice().fill(u64::MAX);
        st.allocated = span.nelems;
        for w in 0..span.mark_len() {
            let n = live.saturating_sub(w * 64).min(64);
            let bits = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            span.mark_word(w).store(bits, Ordering::Relaxed);
        }
    }

    /// Where a refill's span comes from, in order: the class's partial list; else an unswept
    /// span of the class, swept lazily, at most `SWEEP_BUDGET` of them (not when a pause is
    /// waiting, nor in the weak-clearing window); else a span kept empty for the class; else a
    /// fresh one.
    #[test]
    fn a_refill_takes_a_partial_span_then_sweeps_within_a_budget_then_a_kept_then_a_fresh_one() {
        let mh = heap(512, false);
        let mut sw = Sweeper::new(&mh);
        let (class, _, slots) = small();
        let id = mh.central.classes.id(tag(0), class, own).unwrap();
        let new = || mh.new_span(SpanKind::Small(id)).unwrap().0;
        let acquire = |sw: &Sweeper| {
            let (s, fresh) = acquire_span(&mh, id, sw).unwrap();
            (s, fresh, sw.sweeps.get())
        };
        // Spans a cycle found live: one with free slots under a budget's worth of full ones
        // (the list is popped from the end).
        let half = new();
        fill(half, slots / 2);
        for _ in 0..SWEEP_BUDGET {
            fill(new(), usize::MAX);
        }
        mh.central.advance_sweep_gen();
        mh.central.queue_unswept();
        let (in_window, fresh, sweeps) = acquire(&sw);
        assert_eq!((fresh, sweeps), (true, 0), "nothing swept in the window");
        mh.central.open_sweep();
        mh.central
            .place_swept_batch(&mh.arena, id, &[], &[Some(in_window)]);
        assert_eq!(
            acquire(&sw),
            (in_window, false, 0),
            "the partial span first"
        );
        sw.stop = true;
        let (kept, fresh, sweeps) = acquire(&sw);
        assert_eq!(
            (fresh, sweeps),
            (true, 0),
            "nothing swept with a pause waiting"
        );
        sw.stop = false;
        let (_, fresh, sweeps) = acquire(&sw);
        assert_eq!(
            (fresh, sweeps),
            (true, SWEEP_BUDGET),
            "a budget's worth of full spans swept"
        );
        assert_eq!(acquire(&sw), (half, false, SWEEP_BUDGET + 1));
        assert_eq!(half.get().state.lock().allocated, slots / 2);
        mh.central.place_empty(&mh.arena, kept);
        assert_eq!(mh.central.kept_empty(), 1);
        assert_eq!(
            acquire(&sw),
            (kept, false, SWEEP_BUDGET + 1),
            "the kept span"
        );
        assert_eq!(mh.central.kept_empty(), 0);
        let (_, fresh, _) = acquire(&sw);
        assert!(fresh);
    }

    /// Objects aligned to more than 8 bytes take a class of 16-byte multiples; larger than the
    /// largest class, none.
    #[test]
    fn alignment_over_eight_takes_a_class_of_sixteen_byte_multiples() {
        let eight = size_class_for(24, 8).unwrap();
        let sixteen = size_class_for(24, 16).unwrap();
        assert_eq!(CLASSES[eight].size, 24);
        assert_eq!(CLASSES[sixteen].size, 32);
        assert_eq!(size_class_for(24, 4), Some(eight));
        assert_eq!(
            size_class_for(crate::alloc::size_class::MAX_SMALL_SIZE + 1, 8),
            None
        );
    }
}
