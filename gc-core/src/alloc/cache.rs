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
