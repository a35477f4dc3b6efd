//! The [`Heap`] handle: creating a heap, collecting, reading its figures, changing GOGC and the
//! memory limit at run time, and the test hooks.
//!
//! Every handle (`Heap`, `Mutator`, `Stash`) holds an `Arc<Owner>`; dropping the last one stops
//! and joins the collector thread, after which the heap's shared state drops (running the drop
//! glue of every remaining object).

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::api::mutator::{Mutation, Mutator};
use crate::api::root::{Root, Rootable};
use crate::gc::heap::Shared;
use crate::gc::trace::Trace;
use crate::telemetry::metrics::HeapStats;
use crate::util::config::Config;
use crate::util::error::HeapError;

/// Stops and joins the collector thread when the last user handle drops.
///
/// The join waits for the collector thread to exit, and the teardown after it (on the thread
/// that drops the last reference to the heap's state) runs the heap's cleanups, user code that
/// may wait for another heap. So neither is done where that could close a cycle of waits:
/// inside a mutation scope (a cleanup may wait for that scope's heap) they are deferred until
/// the thread has left its outermost scope; on a collector thread (drop glue of another heap's
/// sweep), in drop glue that a sweep runs outside any scope on another thread (`collect`,
/// `finish_sweep`: the next cycle of the swept heap waits for that sweep) or on a cleanup
/// thread (a cleanup of another heap), whose heap the cleanups could wait for, a thread of
/// their own does them.
pub(crate) struct Owner {
    /// Taken by `Drop` (and only there), so that the owner's own reference goes with the join
    /// to the thread that does it: a clone left behind could be the last one (once that thread
    /// has finished), and the teardown would then run here after all, on a cleanup or collector
    /// thread of another heap that the teardown may wait for.
    pub shared: ManuallyDrop<Arc<Shared>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // SAFETY: `shared` is not used again: this is the owner's drop, and the field is read
        // nowhere below but through this binding (the struct is not dropped a second time, and
        // `ManuallyDrop` keeps the field from being dropped after this function).
        let shared = unsafe { ManuallyDrop::take(&mut self.shared) };
        {
            let c = &shared.control;
            let mut st = c.state.lock();
            st.shutdown = true;
            c.wake.notify_all();
        }
        let Some(t) = self.thread.lock().take() else {
            return;
        };
        // The heap's own collector thread (its drop glue dropped the last handle): it exits
        // once this drop glue returns, and its reference to the heap's state is then the last.
        if t.thread().id() == std::thread::current().id() {
            return;
        }
        // Kept alive with the join, so that the teardown runs after the join: where the join
        // runs, never inside this thread's scopes or on a thread serving another heap.
        let join = Join(t, shared);
        // Drop glue of a sweep this thread runs outside any scope (`collect`, `finish_sweep`):
        // the swept heap's next cycle waits for the sweep. (Inside a scope the work is deferred
        // below: no sweep of this thread runs when it leaves its outermost scope.)
        let in_a_sweep =
            crate::gc::sweep::in_drop_glue() && crate::gc::scope::outermost_scope().is_none();
        if crate::gc::collector::on_collector_thread()
            || crate::gc::scope::on_cleanup_thread()
            || in_a_sweep
        {
            let Join(t, shared) = join;
            tear_down_elsewhere(t, shared, |make| {
                spawn_tracing_thread("gc-core teardown", make)
            });
            return;
        }
        if let Some(join) = crate::api::mutator::defer_past_scopes(Box::new(move || join.run())) {
            join();
        }
    }
}

/// The end of a heap: join its collector thread, then drop the last reference to its state
/// held here (which tears the heap down, unless the collector thread, detached, holds one).
struct Join(JoinHandle<()>, Arc<Shared>);

impl Join {
    fn run(self) {
        let Join(t, shared) = self;
        let _ = t.join();
        drop(shared);
    }
}

/// The body of a thread that tears a heap down: it takes the heap from the slot it shares with
/// [`tear_down_elsewhere`] (left there if the thread never starts).
type TeardownBody = Box<dyn FnOnce() + Send>;

/// Join the collector thread `t` and drop `shared` on a thread that `spawn` starts (it gets a
/// maker of the thread's body, to call once per attempt), where the teardown cannot close a
/// cycle of waits (see [`Owner`]). If no thread can be started, the collector is left to exit
/// on its own (detached): while it runs it holds the heap's state, and the teardown runs on it
/// as it exits. If it has exited already, the reference here is the last, and dropping it would
/// run the teardown on this thread, where it may wait for what waits for this thread: the heap
/// is leaked instead (its memory stays mapped, its objects' drop glue and its cleanups never
/// run; its edges in the waits between heaps are dropped, as its teardown drops them, and its
/// cleanup thread, if it has one, exits), a policy for a process that cannot start threads.
fn tear_down_elsewhere(
    t: JoinHandle<()>,
    shared: Arc<Shared>,
    spawn: impl FnOnce(&dyn Fn() -> TeardownBody) -> std::io::Result<()>,
) {
    let slot = Arc::new(Mutex::new(Some(Join(t, shared))));
    let body = || -> TeardownBody {
        let slot = slot.clone();
        Box::new(move || {
            if let Some(join) = slot.lock().take() {
                join.run();
            }
        })
    };
    if spawn(&body).is_ok() {
        return;
    }
    if let Some(Join(t, shared)) = slot.lock().take() {
        drop(t);
        if let Some(state) = Arc::into_inner(shared) {
            crate::gc::scope::forget_heap(state.id);
            state.finalize.abandon();
            std::mem::forget(state);
        }
    }
}

/// Start a thread named `name` with a [`TRACING_STACK`](crate::gc::collector::TRACING_STACK),
/// or with the default stack where the system refuses that much (as the collector does), to run
/// a body `make` makes (once per attempt).
fn spawn_tracing_thread(name: &str, make: &dyn Fn() -> TeardownBody) -> std::io::Result<()> {
    let named = || std::thread::Builder::new().name(name.into());
    named()
        .stack_size(crate::gc::collector::TRACING_STACK)
        .spawn(make())
        .or_else(|_| named().spawn(make()))
        .map(drop)
}

/// A garbage-collected heap. Cheap to clone (a shared handle); `Send + Sync`, so threads can
/// each register a [`Mutator`].
#[derive(Clone)]
pub struct Heap {
    pub(crate) owner: Arc<Owner>,
}

impl Heap {
    /// Create a heap: reserve the arena and start the collector thread.
    pub fn new(config: Config) -> Result<Heap, HeapError> {
        let shared = Shared::new(&config)?;
        let thread = crate::gc::collector::spawn(shared.clone()).map_err(HeapError::Thread)?;
        Ok(Heap {
            owner: Arc::new(Owner {
                shared: ManuallyDrop::new(shared),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// A heap configured from the environment: every variable [`Config::from_env`] reads
    /// (`GOGC`, `GOMEMLIMIT`, `GODEBUG` (`gctrace`, `gcpacertrace`), and the `GCCORE_*`
    /// settings: `GCCORE_ARENA`, `GCCORE_VERIFY`, `GCCORE_MAX_HEAP`, `GCCORE_MARK_WORKERS`,
    /// `GCCORE_CONCURRENT`, `GCCORE_SPAN_MARKING`, `GCCORE_PACER`, `GCCORE_PACERTRACE`; the
    /// table in [`crate::config`] says what each takes). A malformed value is an error, not a
    /// default.
    pub fn from_env() -> Result<Heap, HeapError> {
        Heap::new(Config::from_env()?)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.owner.shared
    }

    /// Register a mutator for the calling thread. `init` builds its root object inside a first
    /// mutation scope.
    ///
    /// # Panics
    ///
    /// Inside a mutation scope of this heap (the first scope would nest in it), from drop glue
    /// the sweeper runs, and inside a scope of a heap that this heap's scopes have waited for
    /// (scopes of different heaps nest in one order: `docs/api.md`, §6).
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

    /// [`Heap::mutator`] with a fallible `init` (one that allocates with the `try_` forms and
    /// passes an [`AllocError`](crate::AllocError) on, say): on its error the mutator is
    /// unregistered and the error returned.
    pub fn try_mutator<R, E>(
        &self,
        init: impl for<'gc> FnOnce(&Mutation<'gc>) -> Result<Root<'gc, R>, E>,
    ) -> Result<Mutator<R>, E>
    where
        R: for<'gc> Rootable<'gc>,
        for<'gc> Root<'gc, R>: Trace + Sized,
    {
        Mutator::try_new(self.owner.clone(), init)
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
    /// that scope to end: a deadlock), runs drop glue for the sweeper, or is inside a scope of
    /// a heap that this heap's scopes have waited for (scopes of different heaps nest in one
    /// order: `docs/api.md`, §6). Call it between scopes.
    pub fn collect(&self) {
        crate::gc::collector::collect(self.shared());
    }

    /// Run a full collection, then return every free page of the arena to the OS at once
    /// (Go: `debug.FreeOSMemory`); returns the bytes released by this call. The background
    /// scavenger returns memory gradually (1% of the CPUs' time, at most one CPU), which after a spike of
    /// gigabytes takes minutes; call this after such a spike, or before a long idle period.
    /// Pages still holding live objects stay: a span is returned only when all its objects
    /// are dead. Span metadata stays too (a few percent of the largest heap, kept for reuse
    /// until the heap is dropped; see `docs/tuning.md`). Where the heap returns no memory to
    /// the OS ([`Heap::returns_memory_to_os`] is false) it collects and returns 0.
    ///
    /// # Panics
    ///
    /// As [`Heap::collect`].
    pub fn free_os_memory(&self) -> usize {
        let h = self.shared();
        // Spans kept empty for their classes hold pages the scavenger cannot release: the
        // collector frees them before this cycle's mark termination, and its sweep keeps none.
        let keep_none = h.mheap.central.keep_none();
        crate::gc::collector::collect(h);
        drop(keep_none);
        h.mheap.arena.scavenge_all()
    }

    /// Whether the heap returns free pages to the OS (the scavenger, [`Heap::free_os_memory`],
    /// allocation under a memory limit). Only on Linux with OS pages of at most 8 KiB, where
    /// releasing a heap page is exact and leaves it reading as zero; and not after the OS
    /// refused a release (memory locked with `mlock`/`mlockall`), when the pages stay resident.
    /// Where it is false, free pages are kept for reuse and resident memory does not shrink.
    pub fn returns_memory_to_os(&self) -> bool {
        self.shared().mheap.arena.can_release()
    }

    /// Stop returning memory to the OS for good, as on a system where the heap cannot (see
    /// [`Heap::returns_memory_to_os`]): for tests of that policy on a system where it can.
    #[doc(hidden)]
    pub fn debug_stop_releasing(&self) {
        self.shared().mheap.arena.stop_releasing();
    }

    /// Sweep what is left of the last cycle's sweep on the calling thread, and wait for sweeps
    /// running on other threads outside mutation scopes (the background sweeper, other callers
    /// of this and of `collect`). A mutator that is sweeping a span lazily, inside its scope as
    /// it allocates, may still be running that span's drop glue when this returns (the next
    /// cycle's marking waits for it: it waits for the scope). Right after a mark termination
    /// (while the collector clears weak references) it first waits for sweeping to be allowed;
    /// if a new cycle's mark termination happens meanwhile, that cycle's sweep is left to the
    /// sweepers.
    ///
    /// # Panics
    /// When called from drop glue run by a sweep (it would wait for that sweep: a deadlock).
    pub fn finish_sweep(&self) {
        crate::gc::sweep::refuse_in_drop_glue("Heap::finish_sweep");
        crate::gc::sweep::finish_sweep(self.shared());
    }

    /// A snapshot of the heap's figures.
    pub fn stats(&self) -> HeapStats {
        crate::gc::report::heap_stats(self.shared())
    }

    /// A snapshot of the heap's metrics under Go's `runtime/metrics` names (see
    /// [`metrics::ALL`](crate::metrics::ALL)).
    pub fn metrics(&self) -> crate::metrics::Metrics {
        crate::gc::report::metrics(self.shared())
    }

    /// Take the phase records logged since the last call (oldest first): every pause with its
    /// duration (measured from the stop request), every mark and sweep phase. See
    /// [`phases`](crate::phases).
    pub fn take_phase_records(&self) -> Vec<crate::phases::PhaseRecord> {
        self.shared().phases.take()
    }

    /// Set the GC percent (`None` = off) and return the previous value, like Go's
    /// `debug.SetGCPercent`. The new trigger applies from now on (a cycle starts at once if the
    /// heap is already past it).
    pub fn set_gc_percent(&self, percent: Option<u32>) -> Option<u32> {
        let h = self.shared();
        let old = {
            let mut p = h.pacer.model.lock();
            h.pacer
                .gc_percent
                .store(percent.map_or(u64::MAX, u64::from), Ordering::Relaxed);
            p.set_gc_percent(percent)
        };
        crate::gc::collector::update_trigger(h);
        old
    }

    /// Set the soft memory limit (`None`: none) and return the previous one, like Go's
    /// `debug.SetMemoryLimit` (see [`Config::memory_limit`]; values below
    /// [`MIN_MEMORY_LIMIT`](crate::config::MIN_MEMORY_LIMIT) are raised to it). A lower limit
    /// applies at once: the trigger moves, and the scavenger starts releasing memory. A
    /// fail-fast stall ([`AllocError::MemoryLimitStall`](crate::AllocError::MemoryLimitStall))
    /// is lifted, and the watch starts over under the new limit.
    pub fn set_memory_limit(&self, limit: Option<usize>) -> Option<usize> {
        let h = self.shared();
        let limit = limit.map(|l| l.max(crate::util::config::MIN_MEMORY_LIMIT));
        // The pacer's model, the arena (allocation-time scavenging) and the scavenger take the
        // limit under the model's lock, so that two threads setting limits at once leave all
        // three with the same one.
        let old = {
            let mut model = h.pacer.model.lock();
            let old = model.set_memory_limit(limit.map(|l| l as u64));
            h.mheap
                .arena
                .memory_limit
                .store(limit.unwrap_or(usize::MAX), Ordering::Relaxed);
            h.pacer.scavenger.set_memory_limit(limit);
            old
        };
        h.controller().reset_fail_fast();
        crate::gc::collector::update_trigger(h);
        old.map(|l| l as usize)
    }

    /// Wait until the cleanup thread has run every cleanup ([`Gc::add_cleanup`](crate::Gc::add_cleanup))
    /// that completed cycles have queued. A cycle queues the cleanups of the objects it found
    /// dead right after it ends, so after [`Mutator::collect`](crate::Mutator::collect) and
    /// this call, the cleanups of everything that was unreachable before the `collect` have
    /// run.
    ///
    /// # Panics
    /// If called from a cleanup (it would wait for itself; the cleanup's panic is caught and
    /// counted like any other), inside a mutation scope of this heap, or from drop glue the
    /// sweeper runs: a cleanup that calls [`Heap::collect`] would wait for that scope or that
    /// sweep to end, and they for the cleanup (deadlock). Call it between scopes, as `collect`.
    pub fn wait_for_cleanups(&self) {
        let h = self.shared();
        crate::gc::scope::before_waiting_for(
            h,
            "Heap::wait_for_cleanups",
            "a cleanup that collects would wait for that scope to end",
        );
        h.finalize.wait_for_cleanups();
    }

    /// The records of the cycles completed since the last call (oldest first; at most
    /// [`MAX_CYCLE_RECORDS`](crate::gctrace::MAX_CYCLE_RECORDS) are kept): what each cycle
    /// marked, its goal, its phases and CPU — a gctrace line each.
    pub fn take_cycle_records(&self) -> Vec<crate::gctrace::CycleRecord> {
        self.shared().cycle_log.take()
    }

    /// Whether verify mode is on.
    pub fn verify_mode(&self) -> bool {
        self.shared().settings.verify
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
        self.shared().mark.barrier_on.store(on, Ordering::SeqCst);
    }

    /// Testing: while `on`, the background marker neither scans objects nor ends the mark phase
    /// (mutators still scan their roots, shade and allocate black), so a test can run scopes at
    /// a known point of a cycle. Use with [`Heap::debug_start_cycle`].
    #[doc(hidden)]
    pub fn debug_hold_marking(&self, on: bool) {
        self.shared().hooks.hold_marking.store(on, Ordering::SeqCst);
    }

    /// Testing: while `on`, mark assists mark nothing and wait for nothing (an allocating
    /// mutator's debt stays owed until it is turned off), so that with
    /// [`Heap::debug_hold_marking`] a test's white objects stay white until it moves them.
    #[doc(hidden)]
    pub fn debug_hold_assists(&self, on: bool) {
        self.shared().hooks.hold_assists.store(on, Ordering::SeqCst);
    }

    /// Testing: while `on`, the collector waits right after it has counted a cycle as started
    /// (with the world stopped), before the pacer starts the cycle;
    /// [`Heap::debug_held_after_cycle_begin`] tells when it is there.
    #[doc(hidden)]
    pub fn debug_hold_after_cycle_begin(&self, on: bool) {
        self.shared()
            .hooks
            .hold_after_begin
            .store(on, Ordering::SeqCst);
    }

    /// Testing: whether the collector is held by [`Heap::debug_hold_after_cycle_begin`].
    #[doc(hidden)]
    pub fn debug_held_after_cycle_begin(&self) -> bool {
        self.shared().hooks.held_after_begin.load(Ordering::SeqCst)
    }

    /// Testing: while `on`, the collector does not start a requested cycle (as a collector
    /// thread kept off its CPU would not), so a test can run scopes with a cycle due but not
    /// started.
    #[doc(hidden)]
    pub fn debug_hold_cycle_start(&self, on: bool) {
        self.shared()
            .hooks
            .hold_cycle_start
            .store(on, Ordering::SeqCst);
    }

    /// Testing: while `on`, the collector waits after STW 2 before clearing the cycle's dead
    /// weak references (the window in which `GcWeak::upgrade` must treat unmarked targets as
    /// dead). [`Heap::debug_weaks_pending`] tells when a cycle is in that window.
    #[doc(hidden)]
    pub fn debug_hold_weak_clearing(&self, on: bool) {
        self.shared()
            .hooks
            .hold_weak_clearing
            .store(on, Ordering::SeqCst);
    }

    /// Testing: while `on`, the collector stops when concurrent marking runs out of grey work,
    /// holding the pacer's lock (as a collector thread descheduled there would), until it is
    /// turned off; [`Heap::debug_pacer_stalled`] tells when it is there. Mutators then assist
    /// at the last assist ratio the collector set.
    #[doc(hidden)]
    pub fn debug_stall_holding_pacer(&self, on: bool) {
        self.shared()
            .hooks
            .stall_holding_pacer
            .store(on, Ordering::SeqCst);
    }

    /// Testing: whether the collector is stopped by [`Heap::debug_stall_holding_pacer`].
    #[doc(hidden)]
    pub fn debug_pacer_stalled(&self) -> bool {
        self.shared().hooks.pacer_stalled.load(Ordering::SeqCst)
    }

    /// Testing: whether the weak-clearing window is open (from mark termination until the
    /// collector has cleared the dead weak references and queued the spans for sweeping;
    /// nothing is swept meanwhile).
    #[doc(hidden)]
    pub fn debug_weaks_pending(&self) -> bool {
        self.shared().mheap.central.sweep_held()
    }

    /// Testing: how many finalizer registrations and weak references the first resurrection
    /// rounds of all cycles so far looked at with the world stopped.
    #[doc(hidden)]
    pub fn debug_finalization_pause_looked(&self) -> u64 {
        self.shared().finalize.pause_looked.load(Ordering::Relaxed)
    }

    /// Testing: the length of the list of finalizer registrations (with the places of
    /// registrations taken out that it has not dropped yet).
    #[doc(hidden)]
    pub fn debug_finalization_registered(&self) -> usize {
        self.shared().finalize.registered_len()
    }

    /// Testing: ask for a cycle without waiting for it.
    #[doc(hidden)]
    pub fn debug_start_cycle(&self) {
        crate::gc::collector::ask_for_cycle(self.shared());
    }

    /// Testing: start a new cycle as soon as the last one ends (so that marking races the
    /// mutators all the time), or stop doing so.
    #[doc(hidden)]
    pub fn debug_back_to_back(&self, on: bool) {
        let h = self.shared();
        h.hooks.back_to_back.store(on, Ordering::SeqCst);
        let _st = h.control.state.lock();
        h.control.wake.notify_all();
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

    static TORN_DOWN: AtomicUsize = AtomicUsize::new(0);
    static TORN_DOWN_ON: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

    /// Counts its drops, and names the thread of the last: an object of a heap that is torn
    /// down.
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            *TORN_DOWN_ON.lock().unwrap() = std::thread::current().name().map(str::to_owned);
            TORN_DOWN.fetch_add(1, Ordering::SeqCst);
        }
    }
    // SAFETY: holds no `Gc`.
    unsafe impl Trace for Counted {
        fn trace(&self, _: &mut Tracer) {}
    }

    /// A heap holding one `Counted` garbage object, its collector stopped as the drop of its
    /// last handle stops it (not joined: the handle returned), and a reference to its state.
    fn stopped_heap() -> (JoinHandle<()>, Arc<Shared>) {
        let heap = Heap::new(Config::default()).unwrap();
        let mut m: Mutator<crate::Rootable!['gc => ()]> = heap.mutator(|_| ());
        m.mutate(|mc, _| {
            Gc::new(mc, Counted);
        });
        drop(m);
        stop(heap)
    }

    /// Stop the collector of `heap` (whose last handle this is, with no mutator left) as the
    /// drop of its last handle does, without joining it: its thread's handle, and a reference
    /// to its state.
    fn stop(heap: Heap) -> (JoinHandle<()>, Arc<Shared>) {
        let owner = Arc::try_unwrap(heap.owner).ok().expect("the last handle");
        let t = owner.thread.lock().take().expect("a collector thread");
        let shared = Arc::clone(&owner.shared);
        // With no thread to join, the owner's drop only stops the collector.
        drop(owner);
        (t, shared)
    }

    /// A teardown that must not run where the last handle was dropped (drop glue of a sweep,
    /// a collector or cleanup thread) and gets no thread of its own is not run here: once the
    /// collector has exited, this thread's reference is the last and the heap is leaked; while
    /// another reference lives (the running collector's), the teardown is left to it. With a
    /// thread, the teardown runs there. (Before, a refused thread dropped the reference here,
    /// and with the collector gone the teardown ran on this thread.)
    #[test]
    #[cfg_attr(miri, ignore = "leaks a heap on purpose")]
    fn a_teardown_without_a_thread_of_its_own_is_not_run_here() {
        let refused = |_: &dyn Fn() -> TeardownBody| Err(std::io::Error::other("no threads"));
        let exited = |t: &JoinHandle<()>| {
            let start = std::time::Instant::now();
            while !t.is_finished() {
                assert!(start.elapsed().as_secs() < 10, "the collector never exited");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        let (t, shared) = stopped_heap();
        exited(&t);
        tear_down_elsewhere(t, shared, refused);
        assert_eq!(TORN_DOWN.load(Ordering::SeqCst), 0, "torn down here");
        let (t, shared) = stopped_heap();
        let other = Arc::clone(&shared);
        exited(&t);
        tear_down_elsewhere(t, shared, refused);
        assert_eq!(TORN_DOWN.load(Ordering::SeqCst), 0, "torn down here");
        drop(other);
        assert_eq!(
            TORN_DOWN.load(Ordering::SeqCst),
            1,
            "the last holder tears down"
        );
        let (t, shared) = stopped_heap();
        // The first attempt refused (as a 64 MiB stack may be), the second granted.
        tear_down_elsewhere(t, shared, |make| {
            drop(make());
            spawn_tracing_thread("the test's teardown", make)
        });
        let start = std::time::Instant::now();
        while TORN_DOWN.load(Ordering::SeqCst) < 2 {
            assert!(start.elapsed().as_secs() < 10, "never torn down");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(
            TORN_DOWN_ON.lock().unwrap().as_deref(),
            Some("the test's teardown"),
            "torn down on another thread than the one started for it"
        );
    }

    /// A heap leaked because its teardown got no thread (above) while its cleanup thread runs a
    /// cleanup, another queued behind it: once the running one returns, the thread exits (it
    /// lets go of the cleanup runner), and the queued cleanup never runs, nor is what it
    /// captured dropped (it is leaked with the heap). Before, the thread stayed parked for the
    /// life of the process.
    #[test]
    #[cfg_attr(miri, ignore = "leaks a heap on purpose")]
    fn a_leaked_heaps_cleanup_thread_exits_without_running_or_dropping_what_is_queued() {
        use std::sync::atomic::AtomicBool;
        static RUNNING: AtomicBool = AtomicBool::new(false);
        static RELEASE: AtomicBool = AtomicBool::new(false);
        static QUEUED_RAN: AtomicBool = AtomicBool::new(false);
        static QUEUED_DROPPED: AtomicBool = AtomicBool::new(false);
        struct Captured;
        impl Drop for Captured {
            fn drop(&mut self) {
                QUEUED_DROPPED.store(true, Ordering::SeqCst);
            }
        }
        let until = |what: &str, done: &dyn Fn() -> bool| {
            let start = std::time::Instant::now();
            while !done() {
                assert!(start.elapsed().as_secs() < 10, "{what}");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        let heap = Heap::new(Config::default()).unwrap();
        let mut m: Mutator<crate::Rootable!['gc => ()]> = heap.mutator(|_| ());
        m.mutate(|mc, _| {
            // Found dead in one cycle: run in registration order.
            Gc::new(mc, 0u64).add_cleanup(mc, || {
                RUNNING.store(true, Ordering::SeqCst);
                while !RELEASE.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            });
            let captured = Captured;
            Gc::new(mc, 1u64).add_cleanup(mc, move || {
                let _kept = &captured;
                QUEUED_RAN.store(true, Ordering::SeqCst);
            });
        });
        m.collect();
        until("the first cleanup never ran", &|| {
            RUNNING.load(Ordering::SeqCst)
        });
        drop(m);
        let (t, shared) = stop(heap);
        let runner = shared.finalize.runner_for_test();
        assert_eq!(
            runner.strong_count(),
            2,
            "the state's and the cleanup thread's"
        );
        until("the collector never exited", &|| t.is_finished());
        tear_down_elsewhere(t, shared, |_| Err(std::io::Error::other("no threads")));
        RELEASE.store(true, Ordering::SeqCst);
        until("the leaked heap's cleanup thread never exited", &|| {
            runner.strong_count() == 1
        });
        assert!(!QUEUED_RAN.load(Ordering::SeqCst), "a queued cleanup ran");
        assert!(
            !QUEUED_DROPPED.load(Ordering::SeqCst),
            "a queued cleanup was dropped"
        );
    }

    /// A leaked heap's edges in the waits between heaps are dropped, as its teardown drops
    /// them: with A's scope nested around X's and X's around B's, then X leaked, B's scope
    /// around A's closes no cycle of waits (X can no longer wait for anything) and is allowed.
    #[test]
    #[cfg_attr(miri, ignore = "leaks a heap on purpose")]
    fn a_leaked_heap_leaves_the_waits_between_heaps() {
        type U = crate::Rootable!['gc => ()];
        let heap = || Heap::new(Config::default()).unwrap();
        let (a, b, x) = (heap(), heap(), heap());
        let (mut ma, mut mb, mut mx): (Mutator<U>, Mutator<U>, Mutator<U>) =
            (a.mutator(|_| ()), b.mutator(|_| ()), x.mutator(|_| ()));
        ma.mutate(|_, _| mx.mutate(|_, _| ()));
        mx.mutate(|_, _| mb.mutate(|_, _| ()));
        drop(mx);
        let (t, shared) = stop(x);
        let start = std::time::Instant::now();
        while !t.is_finished() {
            assert!(start.elapsed().as_secs() < 10, "the collector never exited");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        tear_down_elsewhere(t, shared, |_| Err(std::io::Error::other("no threads")));
        mb.mutate(|_, _| ma.mutate(|_, _| ()));
    }

    /// A memory limit given at creation reaches the same places as one set later: the pacer's
    /// model and the arena (its releases on growth, span keeping, the fail-fast stall).
    #[test]
    fn a_memory_limit_from_the_config_is_the_setters() {
        const LIMIT: usize = 64 << 20;
        let a = Heap::new(Config::default().memory_limit(Some(LIMIT))).unwrap();
        let b = Heap::new(Config::default()).unwrap();
        b.set_memory_limit(Some(LIMIT));
        for h in [a.shared(), b.shared()] {
            assert_eq!(h.mheap.arena.memory_limit.load(Ordering::Relaxed), LIMIT);
            assert_eq!(h.pacer.model.lock().memory_limit(), Some(LIMIT as u64));
            // The scavenger keeps mapped memory under 95% of it from now on, not from the
            // next cycle's end.
            assert_eq!(h.pacer.scavenger.mapped_goal(), LIMIT / 100 * 95);
        }
    }

    /// Fail-fast refuses allocation only under a memory limit: the GC CPU limiter held on for
    /// twice the window stalls a heap with a limit and not one without. Changing the limit
    /// starts the watch over: the stall is lifted and stays lifted at the next update.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "real-time windows of tens of milliseconds, updated every millisecond"
    )]
    fn fail_fast_stalls_only_under_a_memory_limit_and_starts_over_with_a_new_one() {
        use crate::pacer::CpuLimiter;
        use crate::util::pacer_config::PacerConfig;
        for limit in [None, Some(64 << 20)] {
            let pacer = PacerConfig {
                limiter_fail_fast_ns: Some(40_000_000),
                ..PacerConfig::default()
            };
            let config = Config::default()
                .gc_percent(None)
                .memory_limit(limit)
                .pacer(pacer);
            let heap = Heap::new(config).unwrap();
            let h = heap.shared();
            // The limiter on, its bucket too large for the time of this test to drain.
            {
                let mut f = h.pacer.limiter.lock();
                f.limiter = CpuLimiter::with_capacity(1, u64::MAX / 2);
                assert!(f.limiter.accumulate(0, u64::MAX / 2));
            }
            // Updates a millisecond apart, for twice the window (without a limit), or until the
            // stall (a thread kept off its CPU for a quarter of the window breaks an episode).
            let stalled = || h.mheap.limiter_stall_ns.load(Ordering::Relaxed) != 0;
            let t = std::time::Instant::now();
            let long = std::time::Duration::from_millis(if limit.is_some() { 20_000 } else { 80 });
            while t.elapsed() < long && !stalled() {
                h.controller().update_limiter(true, 1);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert_eq!(stalled(), limit.is_some(), "limit {limit:?}");
            // A stall is one event however many updates see it.
            for _ in 0..5 {
                h.controller().update_limiter(true, 1);
            }
            let stalls = h.stats.limiter_stalls.load(Ordering::Relaxed);
            assert_eq!(stalls, u64::from(limit.is_some()), "limit {limit:?}");
            if limit.is_some() {
                heap.set_memory_limit(Some(1 << 30));
                h.controller().update_limiter(true, 1);
                assert_eq!(h.mheap.limiter_stall_ns.load(Ordering::Relaxed), 0);
            }
        }
    }

    /// The square-root rule learns its rates on a real heap: after cycles that allocated, the
    /// pacer holds estimates of the allocation rate and the collector's speed (without them it
    /// would run GOGC's rule for the heap's whole life).
    #[test]
    #[cfg_attr(miri, ignore = "60 000 allocations and three collections")]
    fn the_square_root_rule_learns_its_rates_from_the_heaps_cycles() {
        use crate::util::pacer_config::{PacerConfig, Policy};
        let pacer = PacerConfig {
            policy: Policy::SqrtRule { c: 1e-8 },
            ..PacerConfig::default()
        };
        let heap = Heap::new(Config::default().pacer(pacer)).unwrap();
        type R = crate::Rootable!['gc => Gc<'gc, [u64; 4]>];
        let mut m: crate::Mutator<R> = heap.mutator(|mc| Gc::new(mc, [1; 4]));
        for _ in 0..3 {
            m.mutate(|mc, _| {
                for i in 0..20_000u64 {
                    Gc::new(mc, [i; 4]);
                }
            });
            m.collect();
        }
        let estimates = heap.shared().pacer.model.lock().sqrt_rule_estimates();
        let (alloc_rate, speed) = estimates.expect("no estimates after three cycles");
        assert!(alloc_rate > 0.0 && speed > 0.0, "{estimates:?}");
    }
}
