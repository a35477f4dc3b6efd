//! Central span lists (Go: `mcentral`): where allocation caches get spans and return them.
//!
//! For each **span class** (size class × scan/noscan) there is one lock and two lists:
//!
//! * `partial`: swept spans with at least one free slot, ready for a cache;
//! * `unswept`: spans not yet swept this cycle. At mark termination every in-use span is moved
//!   here (the sweep generation advances). A span is swept by whoever pops it: the background
//!   sweeper, or a mutator that needs a span of that class (**lazy sweeping**), so a span is
//!   always swept before its slots are reused and no span is swept twice.
//!
//! `all` lists every in-use span (for the verifier, teardown and the start-of-sweep move).
//! A span's pages and its `Box<Span>` are freed only by `free_span`, when a sweep finds it empty
//! and it is on no list and in no cache.
//!
//! Lock order: class lock → span `state` lock; `all` and the arena's page lock are leaves.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

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
    pub all: Mutex<Vec<SpanRef>>,
}

impl Central {
    pub(crate) fn new() -> Central {
        Central {
            classes: (0..NUM_SPAN_CLASSES)
                .map(|_| Mutex::new(ClassLists::default()))
                .collect(),
            large_unswept: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
        }
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
        let span = Box::new(Span::new(start, npages, elem_size, nelems, class, noscan));
        let r = SpanRef(NonNull::from(Box::leak(span)));
        arena.publish(start, npages, r.0.as_ptr());
        self.all.lock().push(r);
        Some(r)
    }

    /// Unpublish and free an empty span that is on no list and in no cache.
    pub(crate) fn free_span(&self, arena: &Arena, s: SpanRef) {
        let (start, npages) = (s.get().start, s.get().npages);
        {
            let mut all = self.all.lock();
            let i = all
                .iter()
                .rposition(|x| *x == s)
                .expect("freed span missing from the all-spans list");
            all.swap_remove(i);
        }
        arena.publish(start, npages, std::ptr::null());
        arena.free_pages(start, npages);
        // SAFETY: the span came from `Box::leak` in `new_span`; it is unpublished and unlisted,
        // so this was the last reference.
        drop(unsafe { Box::from_raw(s.0.as_ptr()) });
    }

    /// Move every in-use span to the unswept lists (start of a sweep). World stopped; every
    /// cache has been flushed.
    pub(crate) fn begin_sweep(&self) {
        for l in self.classes.iter() {
            let mut l = l.lock();
            debug_assert!(
                l.unswept.is_empty(),
                "sweep did not finish before the cycle"
            );
            for s in l.partial.drain(..) {
                s.get().state.lock().in_partial = false;
            }
        }
        let all = self.all.lock();
        let mut large = self.large_unswept.lock();
        for &s in all.iter() {
            let sp = s.get();
            sp.swept.store(false, Ordering::Relaxed);
            if sp.class == LARGE {
                large.push(s);
            } else {
                self.classes[span_class(sp.class, sp.noscan)]
                    .lock()
                    .unswept
                    .push(s);
            }
        }
    }

    /// Number of unswept spans (for tests and `finish_sweep` assertions).
    pub(crate) fn unswept_count(&self) -> usize {
        self.classes
            .iter()
            .map(|l| l.lock().unswept.len())
            .sum::<usize>()
            + self.large_unswept.lock().len()
    }
}
