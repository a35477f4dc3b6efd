//! Heap figures: counters kept by the collector and the [`HeapStats`] snapshot users read.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::heap::Shared;

/// Counters updated by the allocator, the sweeper and the collector.
#[derive(Default)]
pub(crate) struct Stats {
    pub objects_allocated: AtomicU64,
    pub objects_freed: AtomicU64,
    pub bytes_freed: AtomicU64,
    pub cycles: AtomicU64,
    pub pauses: AtomicU64,
    pub pause_total_ns: AtomicU64,
    pub pause_max_ns: AtomicU64,
    pub last_pause_ns: AtomicU64,
    pub mark_total_ns: AtomicU64,
    pub cycle_total_ns: AtomicU64,
    pub heap_goal: AtomicUsize,
    pub last_marked_objects: AtomicU64,
    pub last_shared_batches: AtomicU64,
    pub assists: AtomicU64,
    pub assist_bytes: AtomicU64,
    pub assist_ns: AtomicU64,
}

impl Stats {
    pub(crate) fn record_cycle(&self, pause: Duration, mark: Duration, cycle: Duration) {
        self.record_pause(pause);
        self.record_cycle_end(mark, cycle);
    }

    /// One stop-the-world pause (measured from the stop request).
    pub(crate) fn record_pause(&self, pause: Duration) {
        let ns = pause.as_nanos() as u64;
        self.pauses.fetch_add(1, Ordering::Relaxed);
        self.pause_total_ns.fetch_add(ns, Ordering::Relaxed);
        self.pause_max_ns.fetch_max(ns, Ordering::Relaxed);
        self.last_pause_ns.store(ns, Ordering::Relaxed);
    }

    /// A completed cycle: its marking time and its time from start to the end of STW 2.
    pub(crate) fn record_cycle_end(&self, mark: Duration, cycle: Duration) {
        self.cycles.fetch_add(1, Ordering::Relaxed);
        self.mark_total_ns
            .fetch_add(mark.as_nanos() as u64, Ordering::Relaxed);
        self.cycle_total_ns
            .fetch_add(cycle.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// A snapshot of the heap's figures.
///
/// Allocation counts include what mutator caches have handed back: each cache publishes its
/// count whenever it gives up a span, so between cycles the figure lags by at most the objects
/// of the spans currently cached (one per size class and mutator); it is exact after a collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Completed collection cycles.
    pub gc_cycles: u64,
    /// Bytes considered allocated now (Go: `heapLive`).
    pub heap_live: usize,
    /// Live bytes found by the last cycle's mark (Go: `heapMarked`).
    pub heap_marked: usize,
    /// Objects found live by the last cycle.
    pub marked_objects: u64,
    /// Batches of grey objects the last cycle's mark workers handed to each other.
    pub mark_shared_batches: u64,
    /// The heap size the last cycle set as the goal for the next (`usize::MAX` with GOGC=off).
    pub heap_goal: usize,
    /// `heap_live` at which the next cycle starts (at or below the goal; `usize::MAX` while a
    /// cycle is marking or with GOGC=off).
    pub heap_trigger: usize,
    /// Bytes of arena pages ever handed out (the high-water mark).
    pub mapped_bytes: usize,
    /// Bytes of arena pages currently in spans.
    pub in_use_bytes: usize,
    /// Objects allocated since the heap was created.
    pub objects_allocated: u64,
    /// Objects freed by sweeping.
    pub objects_freed: u64,
    /// Bytes (slot sizes) freed by sweeping.
    pub bytes_freed: u64,
    /// Stop-the-world pauses (two per concurrent cycle, more when a mark-termination attempt
    /// finds grey objects and marking resumes; one per stop-the-world cycle).
    pub pauses: u64,
    /// Total stop-the-world time.
    pub pause_total: Duration,
    /// Longest stop-the-world pause.
    pub pause_max: Duration,
    /// Last stop-the-world pause.
    pub last_pause: Duration,
    /// Total time spent marking.
    pub mark_total: Duration,
    /// Total time of whole cycles (including the sweep-termination sweep).
    pub cycle_total: Duration,
    /// GC percent (`None` = off).
    pub gc_percent: Option<u32>,
    /// Mark assists run by allocating mutators (Go: `gcAssistAlloc`).
    pub assists: u64,
    /// Bytes marked by mark assists.
    pub assist_bytes: u64,
    /// Time mutators spent in mark assists.
    pub assist_time: Duration,
    /// Live stash handles.
    pub stashed: usize,
    /// Registered weak references not yet cleared.
    pub weak_refs: usize,
}

impl HeapStats {
    pub(crate) fn read(h: &Shared) -> HeapStats {
        let s = &h.stats;
        let d = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        HeapStats {
            gc_cycles: s.cycles.load(Ordering::Relaxed),
            heap_live: h.heap_live.load(Ordering::Relaxed),
            heap_marked: h.heap_marked.load(Ordering::Relaxed),
            marked_objects: s.last_marked_objects.load(Ordering::Relaxed),
            mark_shared_batches: s.last_shared_batches.load(Ordering::Relaxed),
            heap_goal: s.heap_goal.load(Ordering::Relaxed),
            heap_trigger: h.trigger.load(Ordering::Relaxed),
            mapped_bytes: h.arena.mapped_bytes(),
            in_use_bytes: h.arena.in_use_bytes(),
            objects_allocated: s.objects_allocated.load(Ordering::Relaxed),
            objects_freed: s.objects_freed.load(Ordering::Relaxed),
            bytes_freed: s.bytes_freed.load(Ordering::Relaxed),
            pauses: s.pauses.load(Ordering::Relaxed),
            pause_total: d(&s.pause_total_ns),
            pause_max: d(&s.pause_max_ns),
            last_pause: d(&s.last_pause_ns),
            mark_total: d(&s.mark_total_ns),
            cycle_total: d(&s.cycle_total_ns),
            gc_percent: h.gc_percent().map(|p| p as u32),
            assists: s.assists.load(Ordering::Relaxed),
            assist_bytes: s.assist_bytes.load(Ordering::Relaxed),
            assist_time: d(&s.assist_ns),
            stashed: h.stash.lock().len(),
            weak_refs: h.weaks.lock().len(),
        }
    }

    /// Objects allocated and not (yet) freed.
    pub fn live_objects(&self) -> u64 {
        self.objects_allocated.saturating_sub(self.objects_freed)
    }
}
