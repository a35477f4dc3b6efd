//! The allocator's heap-wide state (Go: `mheap`): the arena, the central span lists, the heap's
//! size counters, and large-object allocation.
//!
//! The allocator knows nothing of marking or pacing. It keeps the counters below exact; the
//! collector reads them, and decides from what allocation reports (a span taken, the heap grown)
//! whether a cycle or an assist is due.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::alloc::arena::Arena;
use crate::alloc::central::{Central, SpanKind, SpanRef};
use crate::alloc::span::LARGE;
use crate::alloc::span_class::TypeTag;
use crate::util::error::AllocError;

/// The heap's size figures, Go's names. Each says who writes it; all are read by anyone
/// (`Relaxed`: they are figures, not synchronisation).
#[derive(Default)]
pub(crate) struct HeapCounters {
    /// Bytes considered allocated (Go: `heapLive`). A cache that takes a span adds all its free
    /// bytes at once and subtracts what it did not use when it gives the span back (Go:
    /// `mcache.refill`), so the figure is exact whenever the caches are flushed (every pause)
    /// and over by at most one span per class and mutator in between. Written by the allocator;
    /// set to `heap_marked` by the collector at mark termination.
    pub heap_live: AtomicUsize,
    /// Bytes of objects allocated and not yet freed (Go: `totalAlloc − totalFree`), counted a
    /// span at a time like `heap_live`. Written by the allocator (+) and the sweeper (−).
    pub heap_alloc: AtomicUsize,
    /// Scannable heap (Go: `heapScan`): the last cycle's heap scan work plus the bytes of
    /// pointer-bearing spans taken since, up to the start of the next mark phase (what is
    /// allocated while marking is allocated black and never scanned). Written by the allocator
    /// outside mark phases, and by the collector at mark termination.
    pub heap_scan: AtomicUsize,
    /// Live bytes the last mark found (Go: `heapMarked`). Written by the collector at mark
    /// termination.
    pub heap_marked: AtomicUsize,
    /// Of `heap_marked`, the bytes marked by tracing from the roots (not allocated black): the
    /// data live when the last mark began, which the live-heap limit is checked against.
    /// Written by the collector at mark termination.
    pub heap_reached: AtomicUsize,
    /// Bytes and objects allocated black during the current mark phase. Written by the
    /// allocator while marking; reset by the collector at the start of a mark phase.
    pub alloc_black: AtomicUsize,
    pub alloc_black_objects: AtomicU64,
    /// Objects handed out since the heap was created, published a window at a time (when a
    /// cache writes a window back) and per large object. Written by the allocator.
    pub objects_allocated: AtomicU64,
}

/// The allocator's state, owned by the heap.
pub(crate) struct MHeap {
    pub arena: Arena,
    pub central: Central,
    pub counters: HeapCounters,
    /// Verify mode: fresh spans are poisoned (and the sweeper poisons freed slots).
    pub poison: bool,
    /// The live-heap limit (`Config::max_heap`; `usize::MAX`: none): no new span is made while
    /// the last completed mark found more than this live.
    pub max_heap: usize,
    /// With a live-heap limit, no new span is made while `heap_live` is over this bound (set
    /// with the heap goal by the pacer's controller: twice the larger of the goal and the
    /// limit), so a scope that never ends cannot grow the heap without end. `usize::MAX`
    /// without a limit.
    pub heap_bound: AtomicUsize,
    /// How long the GC CPU limiter has been engaged, while that holds the heap stalled by the
    /// pacer's fail-fast window (`PacerConfig::limiter_fail_fast_ns`); 0 otherwise. While it is not 0,
    /// no new span is made. Written by the pacer's controller at each limiter update.
    pub limiter_stall_ns: AtomicU64,
}

/// What an allocation that took a new span reports to the layer above, which decides whether a
/// cycle or a mark assist is due.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TookSpan {
    /// Bytes added to `heap_live` (the span's free bytes, or a large object's size).
    pub bytes: usize,
    /// Whether the span was made fresh from the arena (mapped memory may have grown).
    pub fresh: bool,
}

impl MHeap {
    pub(crate) fn new(
        arena: Arena,
        poison: bool,
        max_heap: Option<usize>,
        span_marking: bool,
    ) -> MHeap {
        MHeap {
            arena,
            central: Central::new(span_marking),
            counters: HeapCounters::default(),
            poison,
            max_heap: max_heap.unwrap_or(usize::MAX),
            heap_bound: AtomicUsize::new(usize::MAX),
            limiter_stall_ns: AtomicU64::new(0),
        }
    }

    /// Bytes of pages in spans that hold objects or have slots for them, and of free pages not
    /// released, as everything but the page allocator counts them: spans kept empty for their
    /// classes are free. Read together, so that the two add up with the rest of the arena.
    pub(crate) fn page_use(&self) -> (usize, usize) {
        let kept = self.central.kept_bytes();
        (
            self.arena.in_use_bytes().saturating_sub(kept),
            self.arena.free_ready_bytes() + kept,
        )
    }

    /// Refuse a new span while the limiter's fail-fast window has passed (see
    /// `limiter_stall_ns`), while the last completed cycle found more than the live-heap limit,
    /// or while the heap is over its bound (see `heap_bound`).
    #[inline]
    pub(crate) fn check_max_heap(&self) -> Result<(), AllocError> {
        let stall = self.limiter_stall_ns.load(Ordering::Relaxed);
        if stall != 0 {
            return Err(AllocError::MemoryLimitStall {
                limiter_on: std::time::Duration::from_nanos(stall),
            });
        }
        // What the last cycle reached, not all it marked: objects allocated black while it
        // marked (much of it garbage, with a cycle's worth of allocation in flight) would make
        // a refusal of data that is not live; they count from the next cycle if they live.
        let live = self.counters.heap_reached.load(Ordering::Relaxed);
        if live > self.max_heap {
            return Err(AllocError::HeapLimit {
                live,
                limit: self.max_heap,
            });
        }
        let heap = self.counters.heap_live.load(Ordering::Relaxed);
        let bound = self.heap_bound.load(Ordering::Relaxed);
        if heap > bound {
            return Err(AllocError::HeapLimitInScope {
                heap,
                bound,
                limit: self.max_heap,
            });
        }
        Ok(())
    }

    /// A fresh span of `kind`, and whether its memory is known to be zero (see
    /// [`Arena::alloc_pages_zeroed`](crate::alloc::arena::Arena::alloc_pages_zeroed)).
    pub(crate) fn new_span(&self, kind: SpanKind) -> Result<(SpanRef, bool), AllocError> {
        self.check_max_heap()?;
        self.central
            .new_span(&self.arena, kind, self.poison)
            .ok_or(AllocError::OutOfMemory {
                requested: match kind {
                    SpanKind::Small(id) => {
                        let c = self.central.classes.get(id).size_class;
                        crate::alloc::size_class::CLASSES[c].size
                    }
                    SpanKind::Large { bytes, .. } => bytes,
                },
                reservation: self.arena.len(),
            })
    }

    /// Account `bytes` newly taken by an allocation (a span's free bytes, a large object), of a
    /// pointer-bearing type unless `noscan`, with marking on or off (`black`).
    #[inline]
    pub(crate) fn note_taken(&self, bytes: usize, noscan: bool, black: bool) {
        let c = &self.counters;
        c.heap_alloc.fetch_add(bytes, Ordering::Relaxed);
        // Go fixes `heapScan` for the length of a mark phase: it is the worst-case scan work of
        // the cycle, and what is allocated meanwhile is allocated black (never scanned).
        if !noscan && !black {
            c.heap_scan.fetch_add(bytes, Ordering::Relaxed);
        }
        c.heap_live.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Allocate a large object (more than 32 KiB) of type `tag` in a span of its own; `black`
    /// while marking (the object is allocated marked).
    pub(crate) fn alloc_large(
        &self,
        bytes: usize,
        tag: TypeTag,
        black: bool,
    ) -> Result<(usize, TookSpan, bool), AllocError> {
        let (s, zeroed) = self.new_span(SpanKind::Large { bytes, tag })?;
        let span = s.get();
        debug_assert_eq!(span.class, LARGE);
        {
            let mut st = span.state.lock();
            st.alloc.set(0, true);
            st.allocated = 1;
        }
        let c = &self.counters;
        if black {
            span.try_mark(0);
            c.alloc_black.fetch_add(span.elem_size, Ordering::Relaxed);
            c.alloc_black_objects.fetch_add(1, Ordering::Relaxed);
        }
        c.objects_allocated.fetch_add(1, Ordering::Relaxed);
        self.note_taken(span.elem_size, tag.noscan, black);
        Ok((
            span.start,
            TookSpan {
                bytes: span.elem_size,
                fresh: true,
            },
            zeroed,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    /// Taken bytes count as live and allocated, and as heap to scan (Go's `heapScan`) only
    /// for a type with pointers taken while marking is off: objects of noscan types are never
    /// scanned, and what is allocated while marking is allocated black.
    #[test]
    fn only_pointer_bearing_bytes_taken_outside_marking_count_as_heap_to_scan() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let mh = &heap.shared().mheap;
        let c = &mh.counters;
        let read = || {
            (
                c.heap_scan.load(Ordering::Relaxed),
                c.heap_live.load(Ordering::Relaxed),
                c.heap_alloc.load(Ordering::Relaxed),
            )
        };
        let (scan, live, alloc) = read();
        mh.note_taken(4096, true, false);
        assert_eq!(read(), (scan, live + 4096, alloc + 4096), "noscan");
        mh.note_taken(4096, false, true);
        assert_eq!(read(), (scan, live + 8192, alloc + 8192), "black");
        mh.note_taken(4096, false, false);
        assert_eq!(read(), (scan + 4096, live + 12288, alloc + 12288));
    }

    /// A new span is refused once the last cycle reached more than the live-heap limit (a
    /// live heap of exactly the limit is allowed: the limit's trigger still applies there),
    /// once the heap is over its bound (at the bound it is not), and while the limiter's
    /// fail-fast window holds the heap stalled.
    #[test]
    fn new_spans_are_refused_only_past_the_limit_and_the_bound() {
        use crate::util::error::AllocError;
        let limit = 1 << 20;
        let heap = crate::Heap::new(
            crate::Config::default()
                .gc_percent(None)
                .max_heap(Some(limit)),
        )
        .unwrap();
        let mh = &heap.shared().mheap;
        let c = &mh.counters;
        let (reached, live, bound) = (
            c.heap_reached.load(Ordering::Relaxed),
            c.heap_live.load(Ordering::Relaxed),
            mh.heap_bound.load(Ordering::Relaxed),
        );
        assert!(mh.check_max_heap().is_ok());
        c.heap_reached.store(limit, Ordering::Relaxed);
        assert!(
            mh.check_max_heap().is_ok(),
            "a live heap of exactly the limit"
        );
        c.heap_reached.store(limit + 1, Ordering::Relaxed);
        assert!(matches!(
            mh.check_max_heap(),
            Err(AllocError::HeapLimit { live, limit: l }) if live == limit + 1 && l == limit
        ));
        c.heap_reached.store(reached, Ordering::Relaxed);
        mh.heap_bound.store(4 * limit, Ordering::Relaxed);
        c.heap_live.store(4 * limit, Ordering::Relaxed);
        assert!(mh.check_max_heap().is_ok(), "a heap of exactly the bound");
        c.heap_live.store(4 * limit + 1, Ordering::Relaxed);
        assert!(matches!(
            mh.check_max_heap(),
            Err(AllocError::HeapLimitInScope { heap, bound: b, .. }) if heap == 4 * limit + 1 && b == 4 * limit
        ));
        c.heap_live.store(live, Ordering::Relaxed);
        mh.limiter_stall_ns.store(5, Ordering::Relaxed);
        assert!(matches!(
            mh.check_max_heap(),
            Err(AllocError::MemoryLimitStall { .. })
        ));
        mh.limiter_stall_ns.store(0, Ordering::Relaxed);
        mh.heap_bound.store(bound, Ordering::Relaxed);
        assert!(mh.check_max_heap().is_ok());
    }
}
