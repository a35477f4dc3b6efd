//! Central span lists (Go: `mcentral`): where allocation caches get spans and return them.
//!
//! For each **span class** (a type in a size class, [`crate::alloc::span_class`]) there is one
//! lock and three lists:
//!
//! * `partial`: spans with at least one free slot, ready for a cache;
//! * `empty`: swept spans with no object left, kept for the class's next allocations (see
//!   below);
//! * `unswept`: spans queued for sweeping this cycle.
//!
//! # Who owns a span
//!
//! Every in-use span is, at any time, in exactly one of these places, and only the owner may
//! sweep it, allocate from it, list it or free it:
//!
//! | place | owner |
//! |-------|-------|
//! | a mutator's allocation cache | that mutator (the collector with the world stopped) |
//! | a `partial` or `empty` list | the list: whoever pops it (under the class lock) owns it next |
//! | an `unswept` list | the list, likewise |
//! | a sweeper's hands | the thread that popped it and won its claim ([`SweepGen::try_claim`]) |
//! | nowhere (full, or just made) | the thread that holds it, else nobody until the next cycle |
//!
//! Partial lists hold only swept spans, so a span popped from one is ready to use. After mark
//! termination every span needs sweeping ([`crate::alloc::sweepgen`]); in the weak-clearing window,
//! when nothing may be swept or taken from a partial list, the collector moves the spans that
//! need sweeping onto the unswept lists ([`Central::queue_unswept`]): full spans (found
//! through `all`) and the spans still on partial lists (taken off them); the empty lists are
//! empty then (the collector freed the kept spans before mark termination). When the window
//! closes every span that needs sweeping is on an unswept list, and the one thread that pops it
//! sweeps it: a background sweeper or `finish_sweep` caller ([`crate::gc::sweep`]), or an
//! allocating mutator (lazy sweeping, [`crate::alloc::cache`]). The claim's compare-and-swap makes the
//! "exactly once" explicit and refuses any sweep in the window.
//!
//! `all` lists every in-use span (for the verifier, teardown and the queueing walk). A span's
//! pages are given back to the arena only by `free_span`, called by the owner of an empty span
//! (a sweeper that popped it, or an allocation or the collector thread that took it off an
//! empty list).
//!
//! # Empty spans
//!
//! A sweeper that empties a span keeps it on its class's `empty` list
//! ([`Central::place_empty`]) instead of giving its pages back. In a steady state (a message
//! buffer, an interpreter's short-lived frames) the class asks for as many spans during the
//! next cycle as the sweep emptied, and a kept span is ready: no page-allocator update (two
//! tree updates to free a run and coalesce it, two more to take one), no page-map writes, no
//! metadata reset. It is bounded so that keeping never grows the heap:
//!
//! * the collector frees the spans no cache took before the next mark termination
//!   ([`Central::free_kept`], on its own thread, before it stops the world): a class keeps at
//!   most what one sweep emptied, and no span is kept in the weak-clearing window, where a
//!   kept span could be neither taken nor freed;
//! * an allocation that would grow the arena, or reuse released pages, frees kept spans first
//!   ([`Central::new_span`]), so a phase change from one class to another reuses the pages;
//! * while retained memory is over the scavenger's goal or 95% of the memory limit, sweeps free empty
//!   spans as before, so the scavenger can release their pages; and with
//!   [`Central::keep_none`] (`Heap::free_os_memory`) they keep none.
//!
//! Kept spans are free memory for the pacer, the scavenger and the metrics
//! (`/memory/classes/heap/free`), though the page allocator sees them in use. Only a sweeper,
//! an allocating mutator (inside a scope) and the collector thread outside its pauses free a
//! kept span: a free from any other thread could run during a pause, under the heap
//! verifier's walk of `all`.
//!
//! Lock order: `all` → class lock → span `state` lock; the arena's page lock and the span
//! metadata lock are leaves.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::alloc::arena::{Arena, Fit, PAGE_SIZE};
use crate::alloc::size_class::CLASSES;
use crate::alloc::span::POISON;
use crate::alloc::span::{LARGE, Span};
use crate::alloc::span_class::{SpanClasses, TypeTag};
use crate::alloc::span_slab::SpanSlab;
use crate::alloc::sweepgen::SweepGen;

/// How far ahead of the span it reads the walk in [`Central::queue_unswept`] prefetches.
const PREFETCH_AHEAD: usize = 8;

/// Cache lines of a `Span` that sweeping it reads: up to the end of its allocation state.
const SWEPT_LINES: usize = (std::mem::offset_of!(Span, state) + 64) / 64;

/// What kind of span [`Central::new_span`] makes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SpanKind {
    /// A span of span class `id` (its size class and type).
    Small(usize),
    /// A one-object span of at least `bytes` for an object of type `tag`.
    Large { bytes: usize, tag: TypeTag },
}

/// A pointer to a span owned by the heap. Spans live in the heap's span slab; a span's use ends
/// in `free_span` (its metadata then waits on the spare list to describe the next span made),
/// when no list, cache or marker holds it, and its slot is freed at heap teardown. Only this
/// folder makes a `SpanRef`, and only for a span in use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SpanRef(pub(in crate::alloc) NonNull<Span>);

// SAFETY: a `SpanRef` is an address; the `Span` it points to is `Sync` (atomics and mutexes) and
// stays in use until `free_span`, which runs only when no list, cache or marker can hold the
// span (its slot outlives that: it is freed at heap teardown).
unsafe impl Send for SpanRef {}

impl SpanRef {
    /// The span's address (for comparison with page-map entries).
    pub(crate) fn as_ptr(&self) -> *const Span {
        self.0.as_ptr()
    }

    /// The span.
    #[inline(always)]
    pub(crate) fn get(&self) -> &Span {
        // SAFETY: spans stay allocated while any `SpanRef` to them is reachable (see the type's
        // invariant above).
        unsafe { self.0.as_ref() }
    }
}

/// What a sweep found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Swept {
    /// Free slots after the sweep.
    pub free_slots: usize,
    /// Whether the span holds no object at all now.
    pub empty: bool,
}

/// The lists of one span class (under the class's lock).
#[derive(Default)]
pub(crate) struct ClassLists {
    pub partial: Vec<SpanRef>,
    /// Swept spans with no object, kept for the class (see the module docs).
    pub empty: Vec<SpanRef>,
    pub unswept: Vec<SpanRef>,
}

/// The central lists.
pub(crate) struct Central {
    /// The span classes and their lists.
    pub classes: SpanClasses,
    pub large_unswept: Mutex<Vec<SpanRef>>,
    /// Spans on the unswept lists (raised before a push, lowered after a pop, so it never
    /// undercounts): "is anything left to sweep" without taking every class lock.
    unswept_len: AtomicUsize,
    pub all: Mutex<Vec<SpanRef>>,
    /// The sweep generation and the weak-clearing window ([`crate::alloc::sweepgen`]).
    pub sweep_gen: SweepGen,
    /// Threads between taking a span off an unswept list and placing it after its sweep (sweep
    /// termination waits for them).
    pub sweepers: AtomicUsize,
    /// Span metadata: the slab every span lives in, and the freed spans kept for reuse by
    /// `new_span` (Go recycles `mspan`s the same way): span turnover then costs no
    /// `malloc`/`free`. Measured: with the global allocator in the loop, the collector freeing
    /// thousands of spans at the start of a cycle while a mutator allocated new ones contended
    /// on glibc's arena lock and made the mutator wait milliseconds (strace showed the futex
    /// waits).
    metadata: Mutex<Metadata>,
    /// The buffer `queue_unswept` copies `all` into, kept between cycles.
    walk_buf: Mutex<Vec<SpanRef>>,
    /// Spans on the empty lists (changed under the class locks): whether there are kept spans
    /// to take or free.
    empties: AtomicUsize,
    /// Bytes of the spans on the empty lists (changed with `empties`).
    kept_bytes: AtomicUsize,
    /// Spans made by [`Central::new_span`] (pages from the page allocator), ever.
    made: AtomicUsize,
    /// The span class where [`Central::take_any_empty`] last found a kept span.
    empty_cursor: AtomicUsize,
    /// While nonzero, sweeps keep no empty span (see [`Central::keep_none`]).
    keep_off: AtomicUsize,
    /// The heap marks span-locally: every span is made with scan words
    /// ([`Span::set_scan_words`]).
    span_local: bool,
}

/// Span metadata ([`Central`]'s `metadata`).
struct Metadata {
    /// Where every span's metadata lives, in use or spare.
    slab: SpanSlab,
    /// Freed spans, their slots to be reused (every one, so a slot is never freed alone: the
    /// metadata of the heap's largest span count stays allocated until the heap is dropped, as
    /// in Go, and `free_os_memory` does not release it).
    spare: Vec<SpanRef>,
}

/// While alive, sweeps keep no empty span ([`Central::keep_none`]).
pub(crate) struct KeepNone<'c>(&'c Central);

impl Drop for KeepNone<'_> {
    fn drop(&mut self) {
        self.0.keep_off.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Kept spans [`Central::new_span`] frees at most to find a run of its size (plus four per
/// page of the run), before it takes released pages or grows the arena instead.
const MAX_FREES_PER_SPAN: usize = 64;

impl Central {
    pub(crate) fn new(span_local: bool) -> Central {
        Central {
            span_local,
            classes: SpanClasses::new(),
            large_unswept: Mutex::new(Vec::new()),
            unswept_len: AtomicUsize::new(0),
            all: Mutex::new(Vec::new()),
            sweep_gen: SweepGen::new(),
            sweepers: AtomicUsize::new(0),
            metadata: Mutex::new(Metadata {
                slab: SpanSlab::new(),
                spare: Vec::new(),
            }),
            walk_buf: Mutex::new(Vec::new()),
            empties: AtomicUsize::new(0),
            kept_bytes: AtomicUsize::new(0),
            made: AtomicUsize::new(0),
            empty_cursor: AtomicUsize::new(0),
            keep_off: AtomicUsize::new(0),
        }
    }

    /// Whether `span` still needs sweeping this cycle (neither swept nor being swept).
    #[inline]
    pub(crate) fn needs_sweep(&self, span: &Span) -> bool {
        self.sweep_gen.needs_sweep(&span.sweep_gen)
    }

    /// Whether `span` has been swept this cycle (or made since mark termination).
    #[inline]
    pub(crate) fn is_swept(&self, span: &Span) -> bool {
        self.sweep_gen.is_swept(&span.sweep_gen)
    }

    /// Claim `span`, which the caller popped from an unswept list, for sweeping.
    #[inline]
    pub(crate) fn try_claim(&self, span: &Span) -> bool {
        self.sweep_gen.try_claim(&span.sweep_gen)
    }

    /// Mark a claimed span swept.
    #[inline]
    pub(crate) fn set_swept(&self, span: &Span) {
        self.sweep_gen.set_swept(&span.sweep_gen);
    }

    /// Whether the weak-clearing window is open: nothing may be swept or taken from a partial
    /// list.
    #[inline]
    pub(crate) fn sweep_held(&self) -> bool {
        self.sweep_gen.held()
    }

    /// Mark termination (world stopped): make every span unswept, in O(1) whatever the heap
    /// size, and open the weak-clearing window. The last sweep ended before the cycle began
    /// (sweep termination swept everything and waited for every sweeper), and nothing became
    /// unswept since, so no sweep is in progress.
    pub(crate) fn advance_sweep_gen(&self) {
        self.sweep_gen.hold();
    }

    /// Queue every span that needs sweeping on its unswept list (on the collector thread, in the
    /// weak-clearing window; [`Central::open_sweep`] closes it after this).
    ///
    /// Runs in the window, so no span is swept, taken from a partial list or freed meanwhile:
    /// the spans that need sweeping are exactly the ones that existed at mark termination, and
    /// they are full and unlisted (found through a copy of `all`) or on a partial list (taken
    /// off it here); none is on an empty list (see [`Central::free_kept`]). Spans made
    /// meanwhile are swept already and stay where they are. Caches hold no unswept span (they
    /// were flushed at mark termination and take only fresh spans in the window).
    pub(crate) fn queue_unswept(&self) {
        debug_assert!(self.sweep_held());
        // The copy goes into a buffer kept from cycle to cycle: its pages are already mapped, so
        // the critical section is a `memcpy` (a fresh 3 MB allocation, page-faulted in under the
        // lock, held up allocating mutators for milliseconds at 1 GiB of heap).
        let mut all = std::mem::take(&mut *self.walk_buf.lock());
        all.clear();
        {
            let l = self.all.lock();
            all.reserve(l.len());
            all.extend_from_slice(&l);
        }
        let mut large = Vec::new();
        let mut by_class: Vec<Vec<SpanRef>> =
            (0..self.classes.count()).map(|_| Vec::new()).collect();
        for (i, &s) in all.iter().enumerate() {
            // The spans are cold: start loading a later one's sweep fields now.
            if let Some(ahead) = all.get(i + PREFETCH_AHEAD) {
                crate::util::prefetch::prefetch(
                    ahead.as_ptr() as usize + std::mem::offset_of!(Span, sweep_gen),
                );
            }
            let sp = s.get();
            if !self.needs_sweep(sp) {
                continue;
            }
            if sp.class == LARGE {
                large.push(s);
            } else {
                by_class[sp.class_id].push(s);
            }
        }
        for (sc, mut spans) in by_class.into_iter().enumerate() {
            let mut l = self.classes.get(sc).lists.lock();
            // The collector freed the kept spans before mark termination, and nothing has been
            // swept (so kept) since.
            if !l.empty.is_empty() {
                bug!("a span kept empty at mark termination");
            }
            // Take the stale spans off the partial list: from now on the unswept list owns them.
            l.partial.retain(|s| {
                let stale = self.needs_sweep(s.get());
                if stale {
                    s.get().state.lock().in_partial = false;
                }
                !stale
            });
            if !spans.is_empty() {
                self.unswept_len.fetch_add(spans.len(), Ordering::SeqCst);
                // Hand the list over by swapping when the class has none queued (the usual
                // case), so the class lock is held for O(1).
                if l.unswept.is_empty() {
                    std::mem::swap(&mut l.unswept, &mut spans);
                } else {
                    l.unswept.extend(spans);
                }
            }
        }
        self.unswept_len.fetch_add(large.len(), Ordering::SeqCst);
        self.large_unswept.lock().extend(large);
        all.clear();
        *self.walk_buf.lock() = all;
    }

    /// Close the weak-clearing window: sweeping may begin. Every span that needs sweeping is on
    /// an unswept list by now (see [`Central::queue_unswept`]).
    pub(crate) fn open_sweep(&self) {
        self.sweep_gen.open();
    }

    /// Make a new span of `kind`, publish it in the page map and list it in `all`. Returns
    /// `None` when the arena is exhausted.
    /// Also says whether the span's memory is known to be zero ([`Arena::alloc_pages_zeroed`];
    /// never when `poison` filled it).
    pub(crate) fn new_span(
        &self,
        arena: &Arena,
        kind: SpanKind,
        poison: bool,
    ) -> Option<(SpanRef, bool)> {
        let (npages, elem_size, nelems, class, class_id, tag) = match kind {
            SpanKind::Small(id) => {
                let sc = self.classes.get(id);
                let c = CLASSES[sc.size_class];
                (c.pages, c.size, c.slots, sc.size_class, id, sc.tag)
            }
            SpanKind::Large { bytes, tag } => {
                let pages = bytes.div_ceil(PAGE_SIZE);
                (pages, pages * PAGE_SIZE, 1, LARGE, LARGE, tag)
            }
        };
        // Before the arena grows or released pages are made resident again, free spans kept
        // empty (for other classes, mostly: the caller found none of its own), one at a time
        // until a free run without released pages fits: at most a bounded number, so that one
        // allocation (a large object among scattered small spans) cannot spend
        // milliseconds freeing them all.
        let mut frees = 0;
        let (start, zeroed) = loop {
            let kept = self.kept_bytes.load(Ordering::Relaxed);
            if kept < npages * PAGE_SIZE || frees >= MAX_FREES_PER_SPAN + 4 * npages {
                break arena.alloc_pages_zeroed(npages, Fit::Grow)?;
            }
            if let Some(run) = arena.alloc_pages_zeroed(npages, Fit::Ready) {
                break run;
            }
            match self.take_any_empty() {
                Some(e) => self.free_span(arena, e),
                None => break arena.alloc_pages_zeroed(npages, Fit::Grow)?,
            }
            frees += 1;
        };
        self.made.fetch_add(1, Ordering::Relaxed);
        if poison {
            // SAFETY: `[start, start + npages pages)` was just handed to us by the arena and is
            // referenced by nothing else yet.
            unsafe { std::ptr::write_bytes(start as *mut u8, POISON, npages * PAGE_SIZE) };
        }
        let sweep_gen = self.sweep_gen.fresh();
        // The metadata lock is held only to pop a spare span or to take a slab slot, never
        // while a span is built (which allocates its bitmap).
        let spare = self.metadata.lock().spare.pop();
        let r = match spare {
            Some(s) => {
                // SAFETY: a spare span is referenced from nowhere else (`free_span` put it
                // there after unpublishing and unlisting it), so this is the only reference.
                let span = unsafe { &mut *s.0.as_ptr() };
                span.reuse(
                    start, npages, elem_size, nelems, class, class_id, tag, sweep_gen,
                );
                span.set_scan_words(self.span_local);
                s
            }
            None => {
                let mut span = Span::new(
                    start, npages, elem_size, nelems, class, class_id, tag, sweep_gen,
                );
                span.set_scan_words(self.span_local);
                SpanRef(self.metadata.lock().slab.alloc(span))
            }
        };
        arena.publish(start, npages, r.0.as_ptr());
        let mut all = self.all.lock();
        r.get().all_index.store(all.len(), Ordering::Relaxed);
        all.push(r);
        Some((r, zeroed && !poison))
    }

    /// Place an empty span that a sweeper popped and swept (so it is listed nowhere and cached
    /// nowhere): keep it on its class's empty list, or free it if it is large, if keeping is
    /// off, or if retained memory is over the scavenger's goal (see the module docs).
    pub(crate) fn place_empty(&self, arena: &Arena, s: SpanRef) {
        let span = s.get();
        if span.class == LARGE {
            self.free_span(arena, s);
            return;
        }
        self.place_swept_batch(arena, span.class_id, &[Some(s)], &[]);
    }

    /// Free every span kept empty (the collector thread, before it stops the world for mark
    /// termination; see the module docs). Returns how many it freed.
    pub(crate) fn free_kept(&self, arena: &Arena) -> usize {
        let mut n = 0;
        while let Some(s) = self.take_any_empty() {
            self.free_span(arena, s);
            n += 1;
        }
        n
    }

    /// Bytes of the spans kept empty for their classes: in use for the page allocator, free
    /// for everything else (the pacer's and the scavenger's figures, the metrics).
    pub(crate) fn kept_bytes(&self) -> usize {
        self.kept_bytes.load(Ordering::Relaxed)
    }

    /// Spans made from the arena's pages so far (not counting kept or partial spans reused).
    #[cfg(test)]
    pub(crate) fn spans_made(&self) -> usize {
        self.made.load(Ordering::Relaxed)
    }

    /// Until the guard is dropped, sweeps free every empty span instead of keeping it. A full
    /// cycle run meanwhile (`Heap::free_os_memory`) leaves no span kept: the collector frees
    /// the kept ones before its mark termination ([`Central::free_kept`]), and its sweep keeps
    /// none.
    pub(crate) fn keep_none(&self) -> KeepNone<'_> {
        self.keep_off.fetch_add(1, Ordering::Relaxed);
        KeepNone(self)
    }

    /// Take a span kept empty for span class `sc` (an id). None in the weak-clearing window
    /// (checked under the list's lock, as [`Central::pop_unswept`] does), though the lists are
    /// empty then anyway: the collector freed the kept spans before mark termination.
    pub(crate) fn pop_empty(&self, sc: usize) -> Option<SpanRef> {
        let mut l = self.classes.get(sc).lists.lock();
        if self.sweep_held() {
            return None;
        }
        let s = l.empty.pop()?;
        self.empties.fetch_sub(1, Ordering::Relaxed);
        self.kept_bytes
            .fetch_sub(s.get().npages * PAGE_SIZE, Ordering::Relaxed);
        // The next kept span is cold, and the class's next refill takes it: have the CPU load
        // the lines a cache reads and writes when it installs a span (as `pop_unswept` does).
        if let Some(next) = l.empty.last() {
            crate::util::prefetch::prefetch_lines(next.as_ptr() as usize, SWEPT_LINES);
        }
        // Popped: ours (see the module docs), so its flag is cleared outside the class lock.
        drop(l);
        let mut st = s.get().state.lock();
        debug_assert!(st.in_partial && st.allocated == 0 && self.is_swept(s.get()));
        st.in_partial = false;
        drop(st);
        Some(s)
    }

    /// Spans kept on the empty lists (for tests).
    #[cfg(test)]
    pub(crate) fn kept_empty(&self) -> usize {
        self.empties.load(Ordering::Relaxed)
    }

    /// Take a span kept empty for any class, to free it ([`Central::new_span`] before the arena
    /// grows, [`Central::free_kept`]). Starts at the class where it last found one; `None` if
    /// none is kept (or in the weak-clearing window).
    fn take_any_empty(&self) -> Option<SpanRef> {
        let n = self.classes.count();
        let start = self.empty_cursor.load(Ordering::Relaxed);
        for k in 0..n {
            if self.empties.load(Ordering::Relaxed) == 0 || self.sweep_held() {
                return None;
            }
            let sc = (start + k) % n;
            if let Some(s) = self.pop_empty(sc) {
                self.empty_cursor.store(sc, Ordering::Relaxed);
                return Some(s);
            }
        }
        None
    }

    /// Unpublish and free an empty span that is on no list and in no cache (its owner's call).
    pub(crate) fn free_span(&self, arena: &Arena, s: SpanRef) {
        let (start, npages) = (s.get().start, s.get().npages);
        #[cfg(debug_assertions)]
        {
            // Idle: nothing allocated in it, owned by no cache, on no list or span queue (an
            // ownership slip would otherwise reuse live memory without a word).
            let st = s.get().state.lock();
            debug_assert!(
                st.allocated == 0 && !st.in_cache && !st.in_partial && !s.get().is_queued(),
                "freeing a span that is not idle"
            );
        }
        {
            // `all_index` is only read and written under this lock.
            let mut all = self.all.lock();
            let i = s.get().all_index.load(Ordering::Relaxed);
            if all.get(i) != Some(&s) {
                bug!("freed span missing from the all-spans list");
            }
            all.swap_remove(i);
            if let Some(moved) = all.get(i) {
                moved.get().all_index.store(i, Ordering::Relaxed);
            }
        }
        arena.publish(start, npages, std::ptr::null());
        arena.free_pages(start, npages);
        self.metadata.lock().spare.push(s);
    }

    /// Heap teardown (no other thread is left): hand every in-use span to `each` (which runs
    /// the drop glue of its remaining objects), then free the metadata of every span. Spare
    /// metadata (of freed spans, empty when freed) is not handed over: its geometry and type
    /// are stale, and its pages may belong to another span by now.
    pub(crate) fn teardown(&mut self, mut each: impl FnMut(&Span)) {
        let md = self.metadata.get_mut();
        md.spare.clear();
        for s in self.all.get_mut().drain(..) {
            each(s.get());
        }
        // SAFETY: `all` and `spare` have been emptied, and `&mut self` means no other thread,
        // list or cache refers to a span: no slot is used after this.
        unsafe { md.slab.clear() };
    }

    /// Number of unswept spans (for tests and `finish_sweep` assertions).
    pub(crate) fn unswept_count(&self) -> usize {
        self.unswept_len.load(Ordering::SeqCst)
    }

    /// Take a span from the unswept list of span class `sc` (an id); none in the weak-clearing window
    /// (checked under the list's lock, after which the window can only close: a span queued in
    /// the window is not popped before it closes, where its claim would fail and the span be
    /// lost to its sweep).
    pub(crate) fn pop_unswept(&self, sc: usize) -> Option<SpanRef> {
        if sc >= self.classes.count() {
            return None;
        }
        let s = {
            let mut l = self.classes.get(sc).lists.lock();
            if self.sweep_held() {
                None
            } else {
                let s = l.unswept.pop();
                // The next span popped from this list (by this sweeper, or by an allocating
                // mutator's lazy sweep) is cold: have the CPU load the fields a sweep reads
                // (the first lines: marking's fields, the mark words, the sweep generation and
                // allocation state) while this one is swept.
                if let Some(next) = l.unswept.last() {
                    crate::util::prefetch::prefetch_lines(next.as_ptr() as usize, SWEPT_LINES);
                }
                s
            }
        };
        if s.is_some() {
            self.unswept_len.fetch_sub(1, Ordering::SeqCst);
            #[cfg(test)]
            self.after_pop();
        }
        s
    }

    /// Take up to `out.len()` spans off span class `sc`'s unswept list into `out`, under one
    /// lock and with one update of the count (the background sweeper's batches, see
    /// `gc::sweep::sweep_batch`), and have the CPU load the lines a sweep reads of each;
    /// returns how many. None in the weak-clearing window (checked under the lock, as
    /// [`Central::pop_unswept`] does).
    pub(crate) fn pop_unswept_batch(&self, sc: usize, out: &mut [Option<SpanRef>]) -> usize {
        if sc >= self.classes.count() {
            return 0;
        }
        let n = {
            let mut l = self.classes.get(sc).lists.lock();
            if self.sweep_held() {
                0
            } else {
                let n = out.len().min(l.unswept.len());
                let from = l.unswept.len() - n;
                for (o, s) in out.iter_mut().zip(l.unswept.drain(from..)) {
                    crate::util::prefetch::prefetch_lines(s.as_ptr() as usize, SWEPT_LINES);
                    *o = Some(s);
                }
                n
            }
        };
        if n > 0 {
            self.unswept_len.fetch_sub(n, Ordering::SeqCst);
            #[cfg(test)]
            self.after_pop();
        }
        n
    }

    /// Place swept spans of the small span class `class_id` that a sweeper popped (so they are
    /// listed nowhere and cached nowhere), under one lock of the class: the `empty` ones kept
    /// on its empty list, or freed if keeping is off or retained memory is over the
    /// scavenger's goal (decided once for the batch: keeping spans does not change what it
    /// reads), the `partial` ones listed as partial. Every entry of both slices is `Some`.
    pub(crate) fn place_swept_batch(
        &self,
        arena: &Arena,
        class_id: usize,
        empty: &[Option<SpanRef>],
        partial: &[Option<SpanRef>],
    ) {
        let keep = self.keep_off.load(Ordering::Relaxed) == 0 && !arena.over_retain_goal();
        let kept = if keep { empty } else { &[] };
        // Still ours (listed nowhere): the flags are set before the class lock, which
        // allocating mutators take, so that the lock is held for the pushes only.
        for s in kept.iter().chain(partial).flatten() {
            let mut st = s.get().state.lock();
            if st.in_cache || st.in_partial || s.get().class_id != class_id {
                bug!("a span popped for sweeping was also cached or listed, or of another class");
            }
            st.in_partial = true;
        }
        if !keep {
            for &s in empty.iter().flatten() {
                self.free_span(arena, s);
            }
        }
        if kept.is_empty() && partial.is_empty() {
            return;
        }
        let mut l = self.classes.get(class_id).lists.lock();
        l.partial.extend(partial.iter().flatten());
        if !kept.is_empty() {
            l.empty.extend(kept.iter().flatten());
            self.empties.fetch_add(kept.len(), Ordering::Relaxed);
            let bytes = kept
                .iter()
                .flatten()
                .map(|s| s.get().npages * PAGE_SIZE)
                .sum();
            self.kept_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Take a large span from the unswept list.
    pub(crate) fn pop_large_unswept(&self) -> Option<SpanRef> {
        let s = {
            let mut l = self.large_unswept.lock();
            if self.sweep_held() { None } else { l.pop() }
        };
        if s.is_some() {
            self.unswept_len.fetch_sub(1, Ordering::SeqCst);
            #[cfg(test)]
            self.after_pop();
        }
        s
    }

    /// Testing: run this thread's [`AFTER_POP`] callback, if set, right after a span was
    /// taken off an unswept list.
    #[cfg(test)]
    fn after_pop(&self) {
        AFTER_POP.with(|f| {
            if let Some(f) = f.get() {
                f(self)
            }
        });
    }
}

#[cfg(test)]
thread_local! {
    /// Testing: called on this thread right after it took spans off an unswept list.
    pub(crate) static AFTER_POP: std::cell::Cell<Option<fn(&Central)>> =
        const { std::cell::Cell::new(None) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::alloc::span_class::test_tag;

    static T: u64 = 0;

    /// The span class of the first size class whose spans take one page, for the tests' type.
    fn test_class(c: &Central) -> (TypeTag, usize) {
        let one_page = (1..CLASSES.len()).find(|&i| CLASSES[i].pages == 1).unwrap();
        let tag = test_tag(&T, true);
        let own = |t: TypeTag| crate::alloc::span_class::TypeIdentity {
            words: [t.ptr() as usize, 0, 0, 0, 0],
            name: "",
        };
        (tag, c.classes.id(tag, one_page, own).unwrap())
    }

    /// At mark termination every span needs sweeping. The queueing walk in the weak-clearing
    /// window lists exactly those, small ones on their class's unswept list and large ones on
    /// the large list, and not a span made in the window (swept already, and its maker's); no
    /// span is popped until the window closes.
    #[test]
    fn the_queueing_walk_lists_the_spans_made_before_mark_termination_only() {
        let arena = Arena::new(64 * PAGE_SIZE).unwrap();
        let mut c = Central::new(false);
        let (tag, id) = test_class(&c);
        let small = SpanKind::Small(id);
        let mut old: Vec<SpanRef> = (0..3)
            .map(|_| c.new_span(&arena, small, false).unwrap().0)
            .collect();
        let large = SpanKind::Large {
            bytes: 3 * PAGE_SIZE,
            tag,
        };
        let big = c.new_span(&arena, large, false).unwrap().0;
        c.advance_sweep_gen();
        let fresh = c.new_span(&arena, small, false).unwrap().0;
        assert!(old.iter().chain([&big]).all(|s| c.needs_sweep(s.get())));
        assert!(!c.needs_sweep(fresh.get()) && c.is_swept(fresh.get()));
        c.queue_unswept();
        assert_eq!(
            c.unswept_count(),
            4,
            "the spans made before mark termination"
        );
        assert_eq!(c.pop_unswept(id), None, "popped in the window");
        assert_eq!(c.pop_large_unswept(), None, "popped in the window");
        c.open_sweep();
        let mut popped = Vec::new();
        while let Some(s) = c.pop_unswept(id) {
            popped.push(s);
        }
        let by_address = |v: &mut Vec<SpanRef>| v.sort_by_key(|s| s.as_ptr() as usize);
        by_address(&mut popped);
        by_address(&mut old);
        assert_eq!(popped, old);
        assert_eq!(c.pop_large_unswept(), Some(big));
        assert_eq!(c.unswept_count(), 0);
        c.teardown(|_| ());
    }

    /// A new span frees spans kept empty (for other classes) until a run of its size is free,
    /// rather than grow the arena: not when the kept bytes cannot make its run, and at most
    /// `MAX_FREES_PER_SPAN` plus four per page of it, after which it grows the arena.
    /// `free_kept` frees the rest and says how many.
    #[test]
    fn a_new_span_frees_kept_spans_before_the_arena_grows_within_a_bound() {
        let arena = Arena::new(512 * PAGE_SIZE).unwrap();
        let mut c = Central::new(false);
        let (tag, id) = test_class(&c);
        let one = |c: &Central| c.new_span(&arena, SpanKind::Small(id), false).unwrap().0;
        let two = SpanKind::Large {
            bytes: 2 * PAGE_SIZE,
            tag,
        };
        // Two kept pages: too few for a three-page run, none freed; exactly a two-page run's
        // bytes, one freed, then too few.
        let (a, b) = (one(&c), one(&c));
        c.place_empty(&arena, a);
        c.place_empty(&arena, b);
        assert_eq!((c.kept_empty(), c.kept_bytes()), (2, 2 * PAGE_SIZE));
        let three = SpanKind::Large {
            bytes: 3 * PAGE_SIZE,
            tag,
        };
        c.new_span(&arena, three, false).unwrap();
        assert_eq!(
            c.kept_empty(),
            2,
            "freed kept pages too few to make the run"
        );
        c.new_span(&arena, two, false).unwrap();
        assert_eq!((c.kept_empty(), c.kept_bytes()), (1, PAGE_SIZE));
        assert_eq!(c.free_kept(&arena), 1);
        // A hundred kept pages, each beside spans in use (the first two reuse the two free
        // pages): no run of two pages is ever free, so the new span frees 64 + 4 × 2 of them
        // and then grows the arena.
        // (Made first: a span made while others are kept takes a kept one's page.)
        let spans: Vec<SpanRef> = (0..200).map(|_| one(&c)).collect();
        for &kept in spans.iter().step_by(2) {
            c.place_empty(&arena, kept);
        }
        assert_eq!(c.kept_empty(), 100);
        c.new_span(&arena, two, false).unwrap();
        assert_eq!(c.kept_empty(), 100 - (MAX_FREES_PER_SPAN + 4 * 2));
        assert_eq!(c.free_kept(&arena), 100 - (MAX_FREES_PER_SPAN + 4 * 2));
        assert_eq!((c.kept_empty(), c.kept_bytes()), (0, 0));
        c.teardown(|_| ());
    }

    /// A large span takes whole pages, its one object all of them; a span's memory is known
    /// zero when the arena's pages are fresh, never when poisoned.
    #[test]
    fn large_spans_take_whole_pages_and_poisoned_memory_is_not_zero() {
        let arena = Arena::new(64 * PAGE_SIZE).unwrap();
        let mut c = Central::new(false);
        let (tag, id) = test_class(&c);
        let large = SpanKind::Large {
            bytes: 2 * PAGE_SIZE + 1,
            tag,
        };
        let (big, zeroed) = c.new_span(&arena, large, false).unwrap();
        let sp = big.get();
        assert_eq!((sp.npages, sp.elem_size, sp.nelems), (3, 3 * PAGE_SIZE, 1));
        assert!(zeroed, "fresh pages");
        let (s, zeroed) = c.new_span(&arena, SpanKind::Small(id), true).unwrap();
        assert!(!zeroed, "poisoned memory taken for zero");
        // SAFETY: the span's first page is mapped and its own, and nothing else writes it.
        let first = unsafe { *(s.get().start as *const u8) };
        assert_eq!(first, POISON);
        c.teardown(|_| ());
    }

    /// A freed span's metadata describes the next span made: large spans made and freed one
    /// after another, and small ones of two classes, use as many slab slots as are in use at
    /// once.
    #[test]
    fn freed_spans_metadata_describes_the_next_span() {
        let arena = Arena::new(64 * PAGE_SIZE).unwrap();
        let mut c = Central::new(false);
        let tag = test_tag(&T, true);
        let own = |t: TypeTag| crate::alloc::span_class::TypeIdentity {
            words: [t.ptr() as usize, 0, 0, 0, 0],
            name: "",
        };
        let small = [1, 5].map(|size_class| c.classes.id(tag, size_class, own).unwrap());
        let rounds = if cfg!(miri) { 20 } else { 500 };
        for i in 0..rounds {
            let large = SpanKind::Large {
                bytes: 3 * PAGE_SIZE,
                tag,
            };
            let (s, _) = c.new_span(&arena, large, false).unwrap();
            let (t, _) = c
                .new_span(&arena, SpanKind::Small(small[i % 2]), false)
                .unwrap();
            c.free_span(&arena, s);
            c.free_span(&arena, t);
        }
        assert_eq!(c.metadata.lock().slab.len(), 2);
        assert_eq!(arena.in_use_bytes(), 0);
        c.teardown(|_| ());
    }
}
