//! The heap: the public [`Heap`] handle and the state every part of the collector shares.
//!
//! ```text
//! Heap ──┐                         ┌──► collector thread (cycles, background sweeping)
//! Mutator ├─► Arc<Owner> ─► Arc<Shared> ◄┘
//! Stash ──┘
//! ```
//!
//! `Shared` holds the arena, the central lists, the registry of mutators, the handshake and the
//! heap figures. `Owner` exists so that the collector thread (which holds only `Arc<Shared>`) can
//! be stopped and joined when the last user handle goes: dropping the last `Arc<Owner>` shuts
//! the thread down, after which dropping `Shared` runs the drop glue of every remaining object
//! and releases the reservation.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::Mutation;
use crate::alloc::arena::Arena;
use crate::alloc::central::Central;
use crate::api::config::Config;
use crate::api::mutator::{Mutator, MutatorRecord};
use crate::api::root::{Root, Rootable};
use crate::api::stash::StashTable;
use crate::gc::collector::{self, CollectorState};
use crate::gc::object::Header;
use crate::gc::sweep;
use crate::gc::trace::Trace;
use crate::telemetry::metrics::{HeapStats, Stats};
use crate::util::error::HeapError;

/// A raw object address kept in heap-side tables (weak registry).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ObjAddr(pub *const Header);
// SAFETY: an address; what it points to is only dereferenced by the collector under the
// handshake's ordering.
unsafe impl Send for ObjAddr {}

/// State shared by the heap handles, the mutators and the collector thread.
pub(crate) struct Shared {
    pub arena: Arena,
    pub central: Central,
    pub verify: bool,
    pub safepoint: crate::gc::safepoint::Safepoint,
    /// Registered mutators. The collector holds this lock for a whole stop-the-world phase, so
    /// mutators are neither added nor removed while the world is stopped.
    pub registry: Mutex<Vec<Arc<MutatorRecord>>>,
    pub collector: Mutex<CollectorState>,
    /// Wakes the collector thread (requests, shutdown).
    pub collector_wake: Condvar,
    /// Wakes threads waiting for a cycle to complete.
    pub cycle_done: Condvar,
    /// Set by the allocation path when `heap_live` crosses the trigger; cleared by the cycle.
    pub gc_pending: AtomicBool,
    /// GC percent; `u32::MAX` means off.
    pub gc_percent: AtomicU64,
    /// Bytes considered allocated (see `alloc` for how caches account for spans).
    pub heap_live: AtomicUsize,
    /// `heap_live` at which the next cycle starts.
    pub trigger: AtomicUsize,
    /// Live bytes marked by the last cycle.
    pub heap_marked: AtomicUsize,
    pub stats: Stats,
    /// Weak boxes created since they were last processed.
    pub weaks: Mutex<Vec<ObjAddr>>,
    pub stash: Mutex<StashTable>,
    /// Write barrier flag: on while marking (read by every barrier with one relaxed load).
    pub barrier_on: AtomicBool,
    pub sweep_cursor: AtomicUsize,
    pub next_mutator_id: AtomicUsize,
    /// Configured mark workers (collector thread included).
    pub mark_workers: usize,
    /// Helper threads actually running (set by the collector thread at start).
    pub mark_helpers: AtomicUsize,
    /// Parks the helper threads between mark phases.
    pub pool: crate::gc::mark::workers::Pool,
    /// Concurrent marking configured (else stop-the-world marking).
    pub concurrent: bool,
    /// Testing: run cycles back to back (`Heap::debug_back_to_back`).
    pub back_to_back: AtomicBool,
    /// Testing: the background marker neither marks nor ends the mark phase while set
    /// (`Heap::debug_hold_marking`).
    pub hold_marking: AtomicBool,
    /// Testing: the collector waits before clearing weak references after STW 2 while set.
    pub hold_weak_clearing: AtomicBool,
    /// On from STW 1 to STW 2 of a concurrent cycle: objects are allocated black and mutators
    /// scan their roots before their first scope. Changes only with the world stopped.
    pub marking: AtomicBool,
    /// The cycle whose marking is in progress (mutator root scans are stamped with it).
    pub mark_epoch: AtomicU64,
    /// Grey objects handed to the background marker by mutators (root scans, barrier
    /// flushes) and by itself.
    pub grey: crossbeam_queue::SegQueue<crate::gc::mark::tracer::GreyBatch>,
    /// Bytes allocated black during the current mark phase.
    pub alloc_black: AtomicUsize,
    /// Bytes marked during the current mark phase by mutator-side tracers.
    pub marked_by_mutators: AtomicUsize,
    /// Objects marked during the current mark phase other than by the background marker
    /// (mutator-side tracers and allocate-black).
    pub marked_objects_elsewhere: AtomicU64,
    /// Phase timestamps and pauses.
    pub phases: crate::telemetry::phases::PhaseLog,
    /// Mark assist ratio (f64 bits): bytes of marking owed per byte allocated while marking.
    pub assist_ratio: AtomicU64,
    /// Marking done by the background worker and not yet taken by assists (bytes).
    pub bg_credit: std::sync::atomic::AtomicI64,
    /// Mark assists and background helpers holding grey work the collector cannot see (it does
    /// not attempt mark termination, and a termination check fails, while this is not 0).
    pub mark_busy: AtomicUsize,
    /// CPUs the background mark workers are sized for (25% of them).
    pub cpus: usize,
    /// Wakes the background mark helpers when marking starts (and at shutdown).
    pub bg_wake: (Mutex<()>, Condvar),
    /// Set when the collector thread shuts down: the helpers exit.
    pub bg_stop: AtomicBool,
    /// The pacer (see [`crate::pacer::controller`] for who calls it when).
    pub pacer: Mutex<crate::pacer::Pacer>,
    /// The GC CPU limiter and its feed.
    pub limiter: Mutex<crate::pacer::controller::LimiterFeed>,
    /// Whether the GC CPU limiter is on: mark assists are skipped while it is.
    pub limiting: AtomicBool,
    /// When (ns since the heap's creation) the limiter is next due for an update.
    pub limiter_next_ns: AtomicU64,
    /// Print a gctrace line per cycle.
    pub gctrace: bool,
    /// Print a gcpacertrace line per cycle.
    pub pacertrace: bool,
    /// Live-heap limit (`Config::max_heap`; `usize::MAX`: none).
    pub max_heap: usize,
    /// Bytes of objects allocated and not yet freed by sweeping (Go: `totalAlloc − totalFree`),
    /// counted a span at a time like `heap_live`.
    pub heap_alloc: AtomicUsize,
    /// Scannable heap (Go: `heapScan`): the last cycle's heap scan work plus bytes allocated
    /// since, up to the start of the current mark phase, in spans of types with pointers.
    pub heap_scan: AtomicUsize,
    /// Scan work done by the current cycle on the heap, on root stacks and on the stash.
    pub scan_work: AtomicU64,
    pub stack_scan_work: AtomicU64,
    pub globals_scan_work: AtomicU64,
    /// Mapped memory when the trigger was last derived (see `pacing::note_growth`).
    pub last_trigger_mapped: AtomicUsize,
    /// `heap_live` when the current cycle started.
    pub cycle_heap_start: AtomicUsize,
    /// Per-cycle records (gctrace).
    pub cycles: crate::telemetry::gctrace::CycleLog,
    /// The scavenger's goals: retained bytes (GOGC part) and mapped bytes (memory-limit part);
    /// `usize::MAX` where there is nothing to do.
    pub scavenge_goals: (AtomicUsize, AtomicUsize),
    /// Wakes the scavenger thread.
    pub scavenger_wake: (Mutex<()>, Condvar),
    /// The cycle whose sweep is in progress and when it began (recorded when it ends).
    pub sweep_started: Mutex<Option<(u64, std::time::Instant)>>,
    /// Notified when a scope that contained a blocking region ends (see [`crate::api::blocking`]).
    pub blocking_end: (Mutex<()>, Condvar),
}

impl Shared {
    /// Account `bytes` of new allocation (of a type with pointers unless `noscan`); request a
    /// cycle when the trigger is crossed.
    #[inline]
    pub(crate) fn note_alloc(&self, bytes: usize, noscan: bool) {
        self.heap_alloc.fetch_add(bytes, Ordering::Relaxed);
        // Go fixes `heapScan` for the length of a mark phase: it is the worst-case scan work
        // of the cycle, and what is allocated meanwhile is allocated black (never scanned).
        if !noscan && !self.marking.load(Ordering::Relaxed) {
            self.heap_scan.fetch_add(bytes, Ordering::Relaxed);
        }
        let live = self.heap_live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if live >= self.trigger.load(Ordering::Relaxed) && !self.gc_pending.load(Ordering::Relaxed)
        {
            collector::request_cycle(self);
        }
    }

    /// The GC percent, or `None` when off.
    pub(crate) fn gc_percent(&self) -> Option<u64> {
        match self.gc_percent.load(Ordering::Relaxed) {
            u64::MAX => None,
            p => Some(p),
        }
    }
}

impl Drop for Shared {
    /// Heap teardown: every mutator, stash and heap handle is gone and the collector thread has
    /// exited, so every allocated object is dead. Run each one's drop glue once, then free the
    /// span metadata (the reservation is unmapped when `arena` drops).
    fn drop(&mut self) {
        self.central.free_spares();
        let all = std::mem::take(&mut *self.central.all.lock());
        for s in all {
            let span = s.get();
            if span.may_drop.load(Ordering::Relaxed) {
                let st = span.state.lock();
                for i in st.alloc.iter_ones().take_while(|&i| i < span.nelems) {
                    let h = span.slot_addr(i) as *mut Header;
                    // SAFETY: slot `i` is allocated (its alloc bit is set), so it holds an
                    // initialised object that has not been dropped (sweeping clears the alloc
                    // bit of every object it drops); nothing can reach it any more.
                    let info = unsafe { (*h).info };
                    if let Some(d) = info.drop {
                        // SAFETY: as above; dropped exactly once, here.
                        unsafe { d(h) };
                    }
                }
            }
            // SAFETY: the span came from `Box::leak` in `Central::new_span` and is referenced
            // from nowhere else now that `all` has been emptied and no thread remains.
            drop(unsafe { Box::from_raw(s.0.as_ptr()) });
        }
    }
}

/// Stops and joins the collector thread when the last user handle drops.
pub(crate) struct Owner {
    pub shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        {
            let mut st = self.shared.collector.lock();
            st.shutdown = true;
            self.shared.collector_wake.notify_all();
        }
        if let Some(t) = self.thread.lock().take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

/// A garbage-collected heap. Cheap to clone (a shared handle); `Send + Sync`, so threads can
/// each register a [`Mutator`].
#[derive(Clone)]
pub struct Heap {
    pub(crate) owner: Arc<Owner>,
}

thread_local! {
    /// Heaps (by `Shared` address) that this thread is inside a mutation scope of.
    pub(crate) static IN_SCOPE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Whether this thread is inside a mutation scope of the heap `h` (a wait for the collector
/// from here could wait for this very scope).
pub(crate) fn in_scope_of(h: &Shared) -> bool {
    let key = h as *const Shared as usize;
    IN_SCOPE.with(|s| s.borrow().contains(&key))
}

impl Heap {
    /// Create a heap: reserve the arena and start the collector thread.
    pub fn new(config: Config) -> Result<Heap, HeapError> {
        let arena = Arena::new(config.arena_bytes)?;
        if let Some(l) = config.memory_limit {
            arena.memory_limit.store(l, Ordering::Relaxed);
        }
        let gc_percent = config.gc_percent.map_or(u64::MAX, u64::from);
        let cpus = config
            .cpus
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let shared = Arc::new(Shared {
            arena,
            central: Central::new(),
            verify: config.verify,
            safepoint: Default::default(),
            registry: Mutex::new(Vec::new()),
            collector: Mutex::new(CollectorState::default()),
            collector_wake: Condvar::new(),
            cycle_done: Condvar::new(),
            gc_pending: AtomicBool::new(false),
            gc_percent: AtomicU64::new(gc_percent),
            heap_live: AtomicUsize::new(0),
            // Set by `update_trigger` below, before any mutator exists.
            trigger: AtomicUsize::new(usize::MAX),
            heap_marked: AtomicUsize::new(0),
            stats: Stats::default(),
            weaks: Mutex::new(Vec::new()),
            stash: Mutex::new(StashTable::default()),
            barrier_on: AtomicBool::new(false),
            sweep_cursor: AtomicUsize::new(0),
            next_mutator_id: AtomicUsize::new(0),
            mark_workers: config.mark_workers.max(1),
            mark_helpers: AtomicUsize::new(0),
            pool: Default::default(),
            concurrent: config.concurrent,
            back_to_back: AtomicBool::new(false),
            hold_marking: AtomicBool::new(false),
            hold_weak_clearing: AtomicBool::new(false),
            marking: AtomicBool::new(false),
            mark_epoch: AtomicU64::new(0),
            grey: crossbeam_queue::SegQueue::new(),
            alloc_black: AtomicUsize::new(0),
            marked_by_mutators: AtomicUsize::new(0),
            marked_objects_elsewhere: AtomicU64::new(0),
            phases: crate::telemetry::phases::PhaseLog::new(),
            assist_ratio: AtomicU64::new(0),
            bg_credit: std::sync::atomic::AtomicI64::new(0),
            mark_busy: AtomicUsize::new(0),
            cpus,
            bg_wake: (Mutex::new(()), Condvar::new()),
            bg_stop: AtomicBool::new(false),
            pacer: Mutex::new(crate::pacer::Pacer::new(
                config.gc_percent,
                config.memory_limit.map(|l| l as u64),
                cpus,
            )),
            limiter: Mutex::new(crate::pacer::controller::LimiterFeed::new(cpus)),
            limiting: AtomicBool::new(false),
            limiter_next_ns: AtomicU64::new(0),
            gctrace: config.gctrace,
            pacertrace: config.pacertrace,
            max_heap: config.max_heap.unwrap_or(usize::MAX),
            heap_alloc: AtomicUsize::new(0),
            heap_scan: AtomicUsize::new(0),
            scan_work: AtomicU64::new(0),
            stack_scan_work: AtomicU64::new(0),
            globals_scan_work: AtomicU64::new(0),
            last_trigger_mapped: AtomicUsize::new(0),
            cycle_heap_start: AtomicUsize::new(0),
            cycles: Default::default(),
            scavenge_goals: (AtomicUsize::new(usize::MAX), AtomicUsize::new(usize::MAX)),
            scavenger_wake: (Mutex::new(()), Condvar::new()),
            sweep_started: Mutex::new(None),
            blocking_end: (Mutex::new(()), Condvar::new()),
        });
        crate::pacer::controller::update_trigger(&shared);
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("gc-core collector".into())
            .spawn(move || collector::run(s2))
            .map_err(HeapError::Thread)?;
        Ok(Heap {
            owner: Arc::new(Owner {
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// A heap configured from the environment (`GOGC`, `GCCORE_ARENA`, `GCCORE_VERIFY`).
    pub fn from_env() -> Result<Heap, HeapError> {
        Heap::new(Config::from_env()?)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.owner.shared
    }

    /// Register a mutator for the calling thread. `init` builds its root object inside a first
    /// mutation scope.
    pub fn mutator<R>(
        &self,
        init: impl for<'gc> FnOnce(&Mutation<'gc>) -> Root<'gc, R>,
    ) -> Mutator<R>
    where
        R: for<'gc> Rootable<'gc>,
        for<'gc> Root<'gc, R>: Trace + Sized,
    {
        Mutator::new(self.owner.clone(), init)
    }

    /// Register a mutator with a root stack of `Root<'gc, S>` values.
    pub fn mutator_with_stack<R, S>(
        &self,
        init: impl for<'gc> FnOnce(&Mutation<'gc>) -> Root<'gc, R>,
    ) -> Mutator<R, S>
    where
        R: for<'gc> Rootable<'gc>,
        S: for<'gc> Rootable<'gc>,
        for<'gc> Root<'gc, R>: Trace + Sized,
        for<'gc> Root<'gc, S>: Trace + Sized,
    {
        Mutator::new(self.owner.clone(), init)
    }

    /// Run a full collection and finish its sweep. Blocks until the cycle has completed.
    ///
    /// # Panics
    ///
    /// If the calling thread is inside a mutation scope of this heap (the cycle would wait for
    /// that scope to end: a deadlock). Call it between scopes.
    pub fn collect(&self) {
        collector::collect(self.shared());
    }

    /// Sweep what is left of the last cycle's sweep on the calling thread, and wait for sweeps
    /// running on other threads. Right after a mark termination (while the collector clears
    /// weak references) it first waits for sweeping to be allowed; if a new cycle's mark
    /// termination happens meanwhile, that cycle's sweep is left to the sweepers.
    ///
    /// # Panics
    /// When called from drop glue run by a sweep (it would wait for that sweep: a deadlock).
    pub fn finish_sweep(&self) {
        sweep::refuse_in_drop_glue("Heap::finish_sweep");
        sweep::finish_sweep(self.shared());
    }

    /// A snapshot of the heap's figures.
    pub fn stats(&self) -> HeapStats {
        HeapStats::read(self.shared())
    }

    /// A snapshot of the heap's metrics under Go's `runtime/metrics` names (see
    /// [`metrics::ALL`](crate::telemetry::metrics::ALL)).
    pub fn metrics(&self) -> crate::telemetry::metrics::Metrics {
        crate::telemetry::metrics::Metrics::read(self.shared())
    }

    /// Take the phase records logged since the last call (oldest first): every pause with its
    /// duration (measured from the stop request), every mark and sweep phase. See
    /// [`phases`](crate::telemetry::phases).
    pub fn take_phase_records(&self) -> Vec<crate::telemetry::phases::PhaseRecord> {
        self.shared().phases.take()
    }

    /// Set the GC percent (`None` = off) and return the previous value, like Go's
    /// `debug.SetGCPercent`. The new trigger applies from now on (a cycle starts at once if the
    /// heap is already past it).
    pub fn set_gc_percent(&self, percent: Option<u32>) -> Option<u32> {
        let h = self.shared();
        let old = {
            let mut p = h.pacer.lock();
            h.gc_percent
                .store(percent.map_or(u64::MAX, u64::from), Ordering::Relaxed);
            p.set_gc_percent(percent)
        };
        crate::pacer::controller::update_trigger(h);
        old
    }

    /// Set the soft memory limit (`None`: none) and return the previous one, like Go's
    /// `debug.SetMemoryLimit` (see [`Config::memory_limit`]; values below
    /// [`MIN_MEMORY_LIMIT`](crate::api::config::MIN_MEMORY_LIMIT) are raised to it). A lower limit
    /// applies at once: the trigger moves, and the scavenger starts releasing memory.
    pub fn set_memory_limit(&self, limit: Option<usize>) -> Option<usize> {
        let h = self.shared();
        let limit = limit.map(|l| l.max(crate::api::config::MIN_MEMORY_LIMIT));
        let old = h.pacer.lock().set_memory_limit(limit.map(|l| l as u64));
        h.arena
            .memory_limit
            .store(limit.unwrap_or(usize::MAX), Ordering::Relaxed);
        let goal = limit.map_or(usize::MAX, |l| l / 100 * 95);
        h.scavenge_goals.1.store(goal, Ordering::Relaxed);
        crate::pacer::controller::update_trigger(h);
        crate::pacer::scavenger::wake(h);
        old.map(|l| l as usize)
    }

    /// The records of the cycles completed since the last call (oldest first; at most
    /// [`MAX_CYCLE_RECORDS`](crate::telemetry::gctrace::MAX_CYCLE_RECORDS) are kept): what each cycle
    /// marked, its goal, its phases and CPU — a gctrace line each.
    pub fn take_cycle_records(&self) -> Vec<crate::telemetry::gctrace::CycleRecord> {
        self.shared().cycles.take()
    }

    /// Whether verify mode is on.
    pub fn verify_mode(&self) -> bool {
        self.shared().verify
    }

    /// Turn the write barrier on or off by hand, to exercise its slow path in tests. The
    /// collector itself turns it on only while marking.
    ///
    /// The other `debug_*` hooks only hold the collector back or start cycles: they can make a
    /// program wait (a hold never released), never make it unsound. This one can, hence
    /// `unsafe`.
    ///
    /// # Safety
    /// Must not turn the barrier off while a cycle is marking (nor while one may start before
    /// it is turned on again): stores would then go unshaded and reachable objects be freed.
    /// Turning it on is always sound.
    #[doc(hidden)]
    pub unsafe fn debug_force_barrier(&self, on: bool) {
        self.shared().barrier_on.store(on, Ordering::SeqCst);
    }

    /// Testing: while `on`, the background marker neither scans objects nor ends the mark phase
    /// (mutators still scan their roots, shade and allocate black), so a test can run scopes at
    /// a known point of a cycle. Use with [`Heap::debug_start_cycle`].
    #[doc(hidden)]
    pub fn debug_hold_marking(&self, on: bool) {
        self.shared().hold_marking.store(on, Ordering::SeqCst);
    }

    /// Testing: while `on`, the collector waits after STW 2 before clearing the cycle's dead
    /// weak references (the window in which `GcWeak::upgrade` must treat unmarked targets as
    /// dead). [`Heap::debug_weaks_pending`] tells when a cycle is in that window.
    #[doc(hidden)]
    pub fn debug_hold_weak_clearing(&self, on: bool) {
        self.shared().hold_weak_clearing.store(on, Ordering::SeqCst);
    }

    /// Testing: whether the weak-clearing window is open (from mark termination until the
    /// collector has cleared the dead weak references and queued the spans for sweeping;
    /// nothing is swept meanwhile).
    #[doc(hidden)]
    pub fn debug_weaks_pending(&self) -> bool {
        self.shared().central.sweep_held()
    }

    /// Testing: ask for a cycle without waiting for it.
    #[doc(hidden)]
    pub fn debug_start_cycle(&self) {
        let h = self.shared();
        let mut st = h.collector.lock();
        st.requested = st.requested.max(st.started + 1);
        h.collector_wake.notify_all();
    }

    /// Testing: start a new cycle as soon as the last one ends (so that marking races the
    /// mutators all the time), or stop doing so.
    #[doc(hidden)]
    pub fn debug_back_to_back(&self, on: bool) {
        let h = self.shared();
        h.back_to_back.store(on, Ordering::SeqCst);
        let _st = h.collector.lock();
        h.collector_wake.notify_all();
    }
}

impl std::fmt::Debug for Heap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heap")
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Gc, GcCell, Tracer};
    use std::sync::atomic::AtomicUsize;

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    struct Node<'gc> {
        next: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
        payload: Vec<u64>,
    }
    impl Drop for Node<'_> {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
    // SAFETY: traces the one `Gc`-bearing field; `payload` holds no `Gc`.
    unsafe impl Trace for Node<'_> {
        fn trace(&self, t: &mut Tracer) {
            self.next.trace(t);
        }
    }
    struct RootT<'gc> {
        head: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    }
    // SAFETY: traces its one field.
    unsafe impl Trace for RootT<'_> {
        fn trace(&self, t: &mut Tracer) {
            self.head.trace(t);
        }
    }

    #[test]
    fn list_survives_and_garbage_is_dropped() {
        let n = if cfg!(miri) { 50 } else { 5000 };
        let heap = Heap::new(Config::default().verify(true)).unwrap();
        let mut m: Mutator<crate::Rootable!['gc => RootT<'gc>]> = heap.mutator(|_| RootT {
            head: GcCell::new(None),
        });
        m.mutate(|mc, root| {
            for i in 0..n {
                let node = Gc::new(
                    mc,
                    Node {
                        next: GcCell::new(root.head.get()),
                        payload: vec![i as u64; 3],
                    },
                );
                root.head.set(mc, Some(node));
                // Garbage: never linked.
                Gc::new(
                    mc,
                    Node {
                        next: GcCell::new(None),
                        payload: vec![],
                    },
                );
            }
        });
        m.collect();
        let s = heap.stats();
        assert_eq!(DROPS.load(Ordering::Relaxed), n, "{s:?}");
        assert_eq!(s.marked_objects, n as u64);
        let sum = m.mutate(|_, root| {
            let mut cur = root.head.get();
            let mut sum = 0;
            while let Some(node) = cur {
                sum += node.payload[0];
                cur = node.next.get();
            }
            sum
        });
        assert_eq!(sum, (0..n as u64).sum());
        m.mutate(|mc, root| root.head.set(mc, None));
        m.collect();
        assert_eq!(DROPS.load(Ordering::Relaxed), 2 * n);
        assert_eq!(heap.stats().marked_objects, 0);
    }
}
