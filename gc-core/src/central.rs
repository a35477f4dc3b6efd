//! Central span lists (Go: `mcentral`): where allocation caches get spans and return them.
//!
//! For each **span class** (size class × scan/noscan) there is one lock and two lists:
//!
//! * `partial`: spans with at least one free slot, ready for a cache;
//! * `unswept`: spans queued for sweeping this cycle.
//!
//! # Sweep generations (Go: `mheap.sweepgen`)
//!
//! Mark termination must not touch every span (its pause would grow with the heap), so it only
//! advances the **sweep generation** `g` by 2: every span whose own generation is now `g - 2`
//! needs sweeping. A span is claimed for sweeping by moving its generation from `g - 2` to
//! `g - 1` (compare-and-swap: exactly one thread wins) and marked swept by storing `g`. After
//! the world restarts, the collector walks `all` and queues the unswept spans on their class's
//! `unswept` list ([`Central::queue_unswept`]); in the meantime a span may still sit on a partial
//! list from the last cycle, so whoever takes a span from either list checks its generation and
//! sweeps it first if needed (**lazy sweeping**). A span may therefore be listed twice for a
//! while; the claim makes sure it is swept once, and whoever finds it already swept or being
//! swept just drops that entry.
//!
//! `all` lists every in-use span (for the verifier, teardown and the queueing walk). A span's
//! pages and its `Box<Span>` are freed only by `free_span`, by a sweeper that finds it empty and
//! neither listed nor cached.
//!
//! Lock order: `all` → class lock → span `state` lock; the arena's page lock is a leaf.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::arena::{Arena, PAGE_SIZE};
use crate::object::POISON;
use crate::size_class::{CLASSES, NUM_CLASSES};
use crate::span::{LARGE, Span};

/// Number of span classes: every size class in a scan and a noscan flavour.
pub(crate) const NUM_SPAN_CLASSES: usize = NUM_CLASSES * 2;

/// Span class index for a size class and scan flavour.
#[inline(always)]
pub(crate) const fn span_class(class: usize, noscan: bool) -> usize {
    class * 2 + noscan as usize
}

/// A pointer to a span owned by the heap. Spans are boxed and freed only by `free_span`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SpanRef(pub NonNull<Span>);

// SAFETY: a `SpanRef` is an address; the `Span` it points to is `Sync` (atomics and mutexes) and
// lives until `free_span`, which runs only when no list, cache or marker can hold the span.
unsafe impl Send for SpanRef {}

impl SpanRef {
    /// The span.
    #[inline(always)]
    pub(crate) fn get(&self) -> &Span {
        // SAFETY: spans stay allocated while any `SpanRef` to them is reachable (see the type's
        // invariant above).
        unsafe { self.0.as_ref() }
    }
}

#[derive(Default)]
pub(crate) struct ClassLists {
    pub partial: Vec<SpanRef>,
    pub unswept: Vec<SpanRef>,
}

/// The central lists.
pub(crate) struct Central {
    pub classes: Box<[Mutex<ClassLists>]>,
    pub large_unswept: Mutex<Vec<SpanRef>>,
    /// Spans on the unswept lists (raised before a push, lowered after a pop, so it never
    /// undercounts): "is anything left to sweep" without taking every class lock.
    unswept_len: AtomicUsize,
    pub all: Mutex<Vec<SpanRef>>,
    /// The sweep generation (see the module docs); starts at 2 and grows by 2 per cycle.
    pub sweep_gen: AtomicU64,
    /// Threads between taking a span off an unswept list and placing it after its sweep (sweep
    /// termination waits for them).
    pub sweepers: AtomicUsize,
    /// Metadata of freed spans, kept for reuse by `new_span` (Go recycles `mspan`s the same
    /// way): span turnover then costs no `malloc`/`free`. Measured: with the global allocator
    /// in the loop, the collector freeing thousands of spans at the start of a cycle while a
    /// mutator allocated new ones contended on glibc's arena lock and made the mutator wait
    /// milliseconds (strace showed the futex waits).
    spare: Mutex<Vec<SpanRef>>,
    /// The buffer `queue_unswept` copies `all` into, kept between cycles.
    walk_buf: Mutex<Vec<SpanRef>>,
}

/// Freed span metadata kept for reuse at most (beyond it, freed for real).
const MAX_SPARE: usize = 1 << 18;

impl Central {
    pub(crate) fn new() -> Central {
        Central {
            classes: (0..NUM_SPAN_CLASSES)
                .map(|_| Mutex::new(ClassLists::default()))
                .collect(),
            large_unswept: Mutex::new(Vec::new()),
            unswept_len: AtomicUsize::new(0),
            all: Mutex::new(Vec::new()),
            sweep_gen: AtomicU64::new(2),
            sweepers: AtomicUsize::new(0),
            spare: Mutex::new(Vec::new()),
            walk_buf: Mutex::new(Vec::new()),
        }
    }

    /// Whether `span` still needs sweeping this cycle (neither swept nor being swept).
    #[inline]
    pub(crate) fn needs_sweep(&self, span: &Span) -> bool {
        span.sweep_gen.load(Ordering::Acquire) + 2 == self.sweep_gen.load(Ordering::Relaxed)
    }

    /// Whether `span` has been swept this cycle.
    #[inline]
    pub(crate) fn is_swept(&self, span: &Span) -> bool {
        span.sweep_gen.load(Ordering::Acquire) == self.sweep_gen.load(Ordering::Relaxed)
    }

    /// Claim `span` for sweeping; true for exactly one caller per cycle.
    #[inline]
    pub(crate) fn try_claim(&self, span: &Span) -> bool {
        let g = self.sweep_gen.load(Ordering::Relaxed);
        span.sweep_gen
            .compare_exchange(g - 2, g - 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Mark a claimed span swept.
    #[inline]
    pub(crate) fn set_swept(&self, span: &Span) {
        span.sweep_gen
            .store(self.sweep_gen.load(Ordering::Relaxed), Ordering::Release);
    }

    /// Make every span unswept (mark termination, world stopped): O(1), whatever the heap
    /// size. The last sweep ended before the cycle began (sweep termination waits for every
    /// sweeper) and nothing became unswept since, so a thread still counted in `sweepers` (a
    /// `collect()` caller finishing its sweep) has found, and will find, nothing to claim
    /// until the spans are queued.
    pub(crate) fn advance_sweep_gen(&self) {
        self.sweep_gen.fetch_add(2, Ordering::Relaxed);
    }

    /// Queue every span that needs sweeping on its unswept list (after `advance_sweep_gen`, on
    /// the collector thread, with the world running).
    ///
    /// The walk reads a copy of `all` (taken in one short critical section, so allocating
    /// mutators are not held up for the walk) and queues everything at the end. No span of the
    /// copy can be freed meanwhile: only a sweeper that took a span from an unswept list frees
    /// it, and those lists stay empty until the end of the walk. Spans created meanwhile are
    /// created swept.
    pub(crate) fn queue_unswept(&self) {
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
        let mut by_class: Vec<Vec<SpanRef>> = (0..NUM_SPAN_CLASSES).map(|_| Vec::new()).collect();
        for &s in all.iter() {
            let sp = s.get();
            // A span on a partial list stays there: whoever takes it sweeps it first, and
            // sweep termination sweeps what is left there (`sweep_stale_partials`).
            if !self.needs_sweep(sp) || sp.state.lock().in_partial {
                continue;
            }
            if sp.class == LARGE {
                large.push(s);
            } else {
                by_class[span_class(sp.class, sp.noscan)].push(s);
            }
        }
        // Hand each list over by swapping when the class has none queued (the usual case), so
        // the class lock, which allocating mutators take, is held for O(1).
        for (sc, mut spans) in by_class.into_iter().enumerate() {
            if !spans.is_empty() {
                self.unswept_len.fetch_add(spans.len(), Ordering::SeqCst);
                let mut l = self.classes[sc].lock();
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

    /// Make a new span for `span_class` (or a large span of `large_bytes` when `span_class` is
    /// `None`), publish it in the page map and list it in `all`. Returns `None` when the arena
    /// is exhausted.
    pub(crate) fn new_span(
        &self,
        arena: &Arena,
        span_class: Option<usize>,
        large_bytes: usize,
        noscan: bool,
        poison: bool,
    ) -> Option<SpanRef> {
        let (npages, elem_size, nelems, class) = match span_class {
            Some(sc) => {
                let c = CLASSES[sc / 2];
                (c.pages, c.size, c.slots, sc / 2)
            }
            None => {
                let pages = large_bytes.div_ceil(PAGE_SIZE);
                (pages, pages * PAGE_SIZE, 1, LARGE)
            }
        };
        let start = arena.alloc_pages(npages)?;
        if poison {
            // SAFETY: `[start, start + npages pages)` was just handed to us by the arena and is
            // referenced by nothing else yet.
            unsafe { std::ptr::write_bytes(start as *mut u8, POISON, npages * PAGE_SIZE) };
        }
        let sweep_gen = self.sweep_gen.load(Ordering::Relaxed);
        let spare = self.spare.lock().pop();
        let r = match spare {
            Some(s) => {
                // SAFETY: a spare span is referenced from nowhere else (`free_span` put it
                // there after unpublishing and unlisting it), so this is the only reference.
                unsafe {
                    (*s.0.as_ptr())
                        .reuse(start, npages, elem_size, nelems, class, noscan, sweep_gen)
                };
                s
            }
            None => {
                let span = Box::new(Span::new(
                    start, npages, elem_size, nelems, class, noscan, sweep_gen,
                ));
                SpanRef(NonNull::from(Box::leak(span)))
            }
        };
        arena.publish(start, npages, r.0.as_ptr());
        let mut all = self.all.lock();
        r.get().all_index.store(all.len(), Ordering::Relaxed);
        all.push(r);
        Some(r)
    }

    /// Unpublish and free an empty span that is on no list and in no cache.
    pub(crate) fn free_span(&self, arena: &Arena, s: SpanRef) {
        let (start, npages) = (s.get().start, s.get().npages);
        {
            // `all_index` is only read and written under this lock.
            let mut all = self.all.lock();
            let i = s.get().all_index.load(Ordering::Relaxed);
            assert!(
                all.get(i) == Some(&s),
                "gc-core bug: freed span missing from the all-spans list"
            );
            all.swap_remove(i);
            if let Some(moved) = all.get(i) {
                moved.get().all_index.store(i, Ordering::Relaxed);
            }
        }
        arena.publish(start, npages, std::ptr::null());
        arena.free_pages(start, npages);
        let mut spare = self.spare.lock();
        if spare.len() < MAX_SPARE {
            spare.push(s);
        } else {
            drop(spare);
            // SAFETY: the span came from `Box::leak` in `new_span`; it is unpublished and
            // unlisted, so this was the last reference.
            drop(unsafe { Box::from_raw(s.0.as_ptr()) });
        }
    }

    /// Free the metadata of the spare spans (heap teardown).
    pub(crate) fn free_spares(&self) {
        for s in std::mem::take(&mut *self.spare.lock()) {
            // SAFETY: spare spans came from `Box::leak` and are referenced from nowhere else.
            drop(unsafe { Box::from_raw(s.0.as_ptr()) });
        }
    }

    /// Number of unswept spans (for tests and `finish_sweep` assertions).
    pub(crate) fn unswept_count(&self) -> usize {
        self.unswept_len.load(Ordering::SeqCst)
    }

    /// Take a span from the unswept list of span class `sc`.
    pub(crate) fn pop_unswept(&self, sc: usize) -> Option<SpanRef> {
        let s = self.classes[sc].lock().unswept.pop();
        if s.is_some() {
            self.unswept_len.fetch_sub(1, Ordering::SeqCst);
        }
        s
    }

    /// Take a large span from the unswept list.
    pub(crate) fn pop_large_unswept(&self) -> Option<SpanRef> {
        let s = self.large_unswept.lock().pop();
        if s.is_some() {
            self.unswept_len.fetch_sub(1, Ordering::SeqCst);
        }
        s
    }
}
