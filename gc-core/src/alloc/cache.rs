//! Per-mutator allocation caches (Go: `mcache`): the lock-free allocation fast path.
//!
//! Each mutator owns one [`MCache`] with a slot per span class. A slot caches one span and a
//! 64-slot **window** of it: `free` holds a 1 for every free slot in the window. Allocation is
//!
//! ```text
//! if free != 0 { i = trailing_zeros(free); free &= free - 1; return base + i * size }
//! ```
//!
//! — no lock, no atomic read-modify-write, no write to the span. Only when the window is empty
//! does the slow path lock the span, write the window's consumed bits back into the span's alloc
//! bitmap, and load the next window (or take another span from [`Central`]).
//!
//! # Who touches a cache
//!
//! The owning mutator, inside its scopes; the collector, only with the world stopped (to flush
//! it); the mutator's `Drop`, under the registry lock. The safepoint handshake orders these, so
//! the cache lives in an `UnsafeCell` without a lock.
//!
//! # Heap accounting (Go: `heapLive` updated at `mcache.refill`)
//!
//! When a cache takes a span, all its free bytes are added to `heap_live` at once; when it gives
//! the span back, the bytes it did not use are subtracted. So `heap_live` is exact whenever the
//! caches are flushed (at every stop-the-world) and an overestimate by at most one span per
//! class in between, at the price of one atomic add per span rather than per object.

use std::ptr;
use std::sync::atomic::Ordering;

use crate::alloc::central::{NUM_SPAN_CLASSES, SpanRef, span_class};
use crate::alloc::size_class::class_for;
use crate::alloc::span::{LARGE, Span};
use crate::gc::heap::Shared;
use crate::gc::sweep;
use crate::util::error::AllocError;

/// The cached state for one span class.
#[derive(Clone, Copy)]
struct ClassCache {
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
    /// The cached span, or null.
    span: *const Span,
}

const EMPTY: ClassCache = ClassCache {
    free: 0,
    window_free: 0,
    base: 0,
    elem_size: 0,
    word: 0,
    span: ptr::null(),
};

/// A mutator's allocation cache.
pub(crate) struct MCache {
    classes: [ClassCache; NUM_SPAN_CLASSES],
    /// Objects handed out and already written back (for metrics, flushed at release).
    pub allocated_objects: u64,
    /// Mark-assist debt in bytes of marking (negative: credit). Reset at every pause.
    assist_debt: f64,
    /// Set while the current scope is stale (it blocked across STW 1): the values stored into
    /// new objects are shaded (see [`crate::api::blocking`]). Owner-only; not touched by flushes.
    pub shade_init: bool,
}

impl MCache {
    pub(crate) fn new() -> MCache {
        MCache {
            classes: [EMPTY; NUM_SPAN_CLASSES],
            allocated_objects: 0,
            assist_debt: 0.0,
            shade_init: false,
        }
    }

    /// Allocate a slot of span class `sc`: the fast path. Returns the slot address.
    #[inline(always)]
    pub(crate) fn alloc_small(&mut self, h: &Shared, sc: usize) -> Result<usize, AllocError> {
        let c = &mut self.classes[sc];
        let f = c.free;
        if f != 0 {
            c.free = f & (f - 1);
            return Ok(c.base + f.trailing_zeros() as usize * c.elem_size);
        }
        self.refill(h, sc)
    }

    /// Write the consumed bits of `c`'s window back into the span's alloc bitmap. While
    /// marking, the window was loaded pre-marked (allocate-black, see [`load_window`]): clear
    /// the marks of the slots it did not hand out and count the ones it did as allocated black.
    fn write_back(
        h: &Shared,
        c: &mut ClassCache,
        span: &Span,
        st: &mut crate::alloc::span::SpanAlloc,
    ) -> u64 {
        let used = c.window_free & !c.free;
        st.alloc.as_raw_mut_slice()[c.word] |= used;
        st.allocated += used.count_ones() as usize;
        if h.marking.load(Ordering::Relaxed) {
            // `Relaxed`: markers only set bits of allocated objects, never of these free slots.
            span.mark_words()[c.word].fetch_and(!c.free, Ordering::Relaxed);
            h.alloc_black.fetch_add(
                used.count_ones() as usize * span.elem_size,
                Ordering::Relaxed,
            );
            h.marked_objects_elsewhere
                .fetch_add(used.count_ones() as u64, Ordering::Relaxed);
        }
        c.window_free = c.free;
        used.count_ones() as u64
    }

    /// Slow path: next window of the cached span, or a new span.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, h: &Shared, sc: usize) -> Result<usize, AllocError> {
        let c = &mut self.classes[sc];
        if !c.span.is_null() {
            // SAFETY: a cached span stays allocated while cached: it is in no list, so no
            // sweeper can free it.
            let span = unsafe { &*c.span };
            let mut st = span.state.lock();
            self.allocated_objects += Self::write_back(h, c, span, &mut st);
            let words = st.alloc.as_raw_slice();
            for (w, &word) in words.iter().enumerate().skip(c.word + 1) {
                let free = !word;
                if free != 0 {
                    load_window(h, span, w, free);
                    c.word = w;
                    c.free = free;
                    c.window_free = free;
                    c.base = span.start + w * 64 * c.elem_size;
                    drop(st);
                    let f = c.free;
                    c.free = f & (f - 1);
                    return Ok(c.base + f.trailing_zeros() as usize * c.elem_size);
                }
            }
            drop(st);
            self.release(h, sc, false);
        }
        let s = acquire_span(h, sc)?;
        self.install(h, sc, s);
        self.alloc_small(h, sc)
    }

    /// Take `s` (swept, with free slots, not on any list) into the cache for `sc`.
    fn install(&mut self, h: &Shared, sc: usize, s: SpanRef) {
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
        load_window(h, span, w, free);
        drop(st);
        self.classes[sc] = ClassCache {
            free,
            window_free: free,
            base: span.start + w * 64 * span.elem_size,
            elem_size: span.elem_size,
            word: w,
            span: s.0.as_ptr(),
        };
        h.note_alloc(free_bytes, span.noscan);
        self.charge_assist(h, free_bytes);
    }

    /// Charge `bytes` of new allocation to this mutator's assist debt while marking (see
    /// [`crate::gc::concurrent::assist`]).
    #[inline]
    pub(crate) fn charge_assist(&mut self, h: &Shared, bytes: usize) {
        if h.marking.load(Ordering::Relaxed) {
            self.assist_debt = crate::gc::concurrent::assist(h, self.assist_debt, bytes);
        }
    }

    /// Give the span cached for `sc` back. With `to_partial`, a span with free slots goes on
    /// its central partial list (mutator exit); otherwise it is left for the next sweep
    /// (world stopped: every span is about to be queued for sweeping anyway).
    pub(crate) fn release(&mut self, h: &Shared, sc: usize, to_partial: bool) {
        let c = &mut self.classes[sc];
        if c.span.is_null() {
            return;
        }
        // SAFETY: as in `refill`, a cached span is alive.
        let span = unsafe { &*c.span };
        let s = SpanRef(ptr::NonNull::from(span));
        *c = EMPTY;
        let (unused, has_free) = {
            let mut st = span.state.lock();
            st.in_cache = false;
            (
                (span.nelems - st.allocated) * span.elem_size,
                st.allocated < span.nelems,
            )
        };
        h.heap_live.fetch_sub(unused, Ordering::Relaxed);
        h.heap_alloc.fetch_sub(unused, Ordering::Relaxed);
        if !span.noscan && !h.marking.load(Ordering::Relaxed) {
            // As `note_alloc` counts it (not while marking). Saturating: the count is reset at
            // mark termination, after every cache's flush, so this only guards a mismatch.
            let _ = h
                .heap_scan
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(unused))
                });
        }
        if to_partial && has_free {
            let mut l = h.central.classes[sc].lock();
            let mut st = span.state.lock();
            if !st.in_partial && !h.central.needs_sweep(span) {
                st.in_partial = true;
                drop(st);
                l.partial.push(s);
            }
        }
    }

    /// Write back every window and release every span (world stopped, or mutator exit).
    pub(crate) fn flush(&mut self, h: &Shared, to_partial: bool) {
        self.assist_debt = 0.0;
        for sc in 0..NUM_SPAN_CLASSES {
            let c = &mut self.classes[sc];
            if c.span.is_null() {
                continue;
            }
            // SAFETY: as in `refill`.
            let span = unsafe { &*c.span };
            {
                let mut st = span.state.lock();
                self.allocated_objects += Self::write_back(h, c, span, &mut st);
            }
            self.release(h, sc, to_partial);
        }
        h.stats.objects_allocated.fetch_add(
            std::mem::take(&mut self.allocated_objects),
            Ordering::Relaxed,
        );
    }
}

/// A window of `span` (word `w`, free slots `free`) is being handed to a cache. While marking,
/// pre-mark its free slots, so that whatever the cache allocates from it is black (allocated
/// during the mark and never scanned: brief §2.3). `write_back` clears the unused ones.
#[inline]
fn load_window(h: &Shared, span: &Span, w: usize, free: u64) {
    if h.marking.load(Ordering::Relaxed) {
        // `Relaxed`: the bits only need to be set before the sweep reads them, which the
        // mark-termination handshake orders.
        span.mark_words()[w].fetch_or(free, Ordering::Relaxed);
    }
}

/// Spans an allocation may sweep lazily before it takes a fresh span instead (Go:
/// `spanBudget` in `mcentral.cacheSpan`). Right after mark termination most spans of a class
/// may be full of live objects; without a bound one allocation could sweep thousands of them
/// (milliseconds), and no pause can begin meanwhile. The background sweeper does the rest.
const SWEEP_BUDGET: usize = 100;

/// Get a swept span with a free slot for `sc`: from the partial list, by sweeping an unswept
/// span of the class (lazy sweeping, at most [`SWEEP_BUDGET`] spans), or fresh from the arena.
///
/// Whatever it pops is its own (see [`crate::alloc::central`]): a partial span is swept already, an
/// unswept one it claims and sweeps. In the weak-clearing window it takes a fresh span: nothing
/// may be swept then, and the collector is moving the partial lists' spans to the unswept lists.
/// (Called inside a scope, so the window cannot open meanwhile; it may close, which only means
/// a fresh span taken where a swept one was available.)
fn acquire_span(h: &Shared, sc: usize) -> Result<SpanRef, AllocError> {
    let c = &h.central;
    let mut budget = SWEEP_BUDGET;
    // Also stop sweeping when a pause is waiting for this mutator.
    while !c.sweep_held() && budget > 0 && !h.safepoint.stop_requested() {
        let from_partial = {
            let mut l = c.classes[sc].lock();
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
            return Ok(s);
        }
        let Some(s) = c.pop_unswept(sc) else { break };
        // Popped outside the window, inside a scope (no mark termination meanwhile): ours.
        if !c.try_claim(s.get()) {
            bug!("a span popped from an unswept list could not be claimed");
        }
        budget -= 1;
        if sweep::sweep_span(h, s).free_slots > 0 {
            return Ok(s);
        }
        // Full after sweeping: it stays in `all` only.
    }
    let noscan = sc % 2 == 1;
    check_max_heap(h)?;
    let s = h
        .central
        .new_span(&h.arena, Some(sc), 0, noscan, h.verify)
        .ok_or(AllocError::OutOfMemory {
            requested: crate::alloc::size_class::CLASSES[sc / 2].size,
            reservation: h.arena.len(),
        })?;
    crate::pacer::controller::note_growth(h);
    Ok(s)
}

/// The live-heap limit ([`Config::max_heap`](crate::Config::max_heap)): new spans are refused
/// while the last completed cycle found more than it live.
#[inline]
fn check_max_heap(h: &Shared) -> Result<(), AllocError> {
    let live = h.heap_marked.load(Ordering::Relaxed);
    if live > h.max_heap {
        return Err(AllocError::HeapLimit {
            live,
            limit: h.max_heap,
        });
    }
    Ok(())
}

/// Allocate a large object (more than 32 KiB) in a span of its own.
pub(crate) fn alloc_large(h: &Shared, bytes: usize, noscan: bool) -> Result<usize, AllocError> {
    check_max_heap(h)?;
    let s = h
        .central
        .new_span(&h.arena, None, bytes, noscan, h.verify)
        .ok_or(AllocError::OutOfMemory {
            requested: bytes,
            reservation: h.arena.len(),
        })?;
    let span = s.get();
    debug_assert_eq!(span.class, LARGE);
    {
        let mut st = span.state.lock();
        st.alloc.set(0, true);
        st.allocated = 1;
    }
    if h.marking.load(Ordering::Relaxed) {
        // Allocate black (see `load_window`).
        span.try_mark(0);
        h.alloc_black.fetch_add(span.elem_size, Ordering::Relaxed);
        h.marked_objects_elsewhere.fetch_add(1, Ordering::Relaxed);
    }
    h.stats.objects_allocated.fetch_add(1, Ordering::Relaxed);
    h.note_alloc(span.elem_size, noscan);
    crate::pacer::controller::note_growth(h);
    Ok(span.start)
}

/// Span class and size class for a request of `bytes` with alignment `align`, or `None` for a
/// large object.
#[inline(always)]
pub(crate) const fn span_class_for(bytes: usize, align: usize, noscan: bool) -> Option<usize> {
    match class_for(bytes, if align > 8 { 16 } else { 8 }) {
        Some(c) => Some(span_class(c, noscan)),
        None => None,
    }
}
