//! The state one heap shares between its handles, its mutators and its collector threads,
//! split by owner.
//!
//! ```text
//! Heap ──┐                          ┌──► collector thread (cycles, background sweeping),
//! Mutator ├─► Arc<Owner> ─► Arc<Shared> ◄┘    mark workers, scavenger
//! Stash ──┘
//! ```
//!
//! | part of [`Shared`] | concern | who writes it |
//! |--------------------|---------|---------------|
//! | `mheap` ([`MHeap`]) | arena, span lists, heap counters | the allocator; the sweeper; the collector at mark termination (see [`HeapCounters`](crate::alloc::mheap::HeapCounters)) |
//! | `settings` ([`Settings`]) | what the `Config` fixed | nobody after creation |
//! | `safepoint`, `registry` | the stop-the-world handshake, the registered mutators | see [`crate::gc::safepoint`], [`crate::gc::registry`] |
//! | `stash`, `weaks` | heap-wide roots, registered weak boxes | handles under their locks; the collector (weak clearing) |
//! | `control` ([`Control`]) | cycle requests and counts, shutdown | see [`crate::gc::collector`] |
//! | `mark` ([`MarkState`]) | the mark phase: flags, grey queue, helpers | the collector in pauses, markers atomically (see [`crate::gc::mark`]) |
//! | `sweep` ([`SweepState`]) | background sweep position, sweep phase record | sweepers |
//! | `pacer` ([`PacerState`]) | GOGC, trigger, goal, assist ratio, scan work, limiter, scavenger goals | see [`crate::pacer::controller`] |
//! | `stats`, `phases`, `cycle_log` | counters, phase and cycle records | each recorder atomically or under the log's lock |
//! | `hooks` ([`Hooks`]) | test hooks | the `Heap::debug_*` methods |
//!
//! Dropping the last `Arc<Shared>` (after the collector thread has exited) runs the drop glue of
//! every remaining object and releases the reservation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::alloc::arena::Arena;
use crate::alloc::mheap::MHeap;
use crate::gc::collector::Control;
use crate::gc::mark::MarkState;
use crate::gc::object::{Object, type_of};
use crate::gc::registry::MutatorRecord;
use crate::gc::roots::StashTable;
use crate::gc::safepoint::Safepoint;
use crate::gc::sweep::SweepState;
use crate::pacer::Policy;
use crate::pacer::controller::PacerState;
use crate::telemetry::gctrace::CycleLog;
use crate::telemetry::metrics::Stats;
use crate::telemetry::phases::PhaseLog;
use crate::util::config::Config;
use crate::util::error::{ConfigError, HeapError};
use crate::util::primitive::Monitor;

/// A raw object address kept in heap-side tables (weak registry, stash, barrier buffers).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ObjAddr(pub *const Object);
// SAFETY: an address; what it points to is only dereferenced by the collector under the
// handshake's ordering.
unsafe impl Send for ObjAddr {}

/// What the `Config` fixed at creation.
pub(crate) struct Settings {
    /// Verify mode: poison freed memory, sweep and verify the heap inside each cycle's pause.
    pub verify: bool,
    /// Concurrent marking (else stop-the-world marking).
    pub concurrent: bool,
    /// Print a gctrace line per cycle.
    pub gctrace: bool,
    /// CPUs the mark workers and the CPU limiter are sized for (Go: `GOMAXPROCS`).
    pub procs: usize,
    /// Mark workers of a stop-the-world mark, the collector thread included.
    pub stw_mark_workers: usize,
    /// Span-local marking ([`Config::span_marking`](crate::Config::span_marking)).
    pub span_marking: bool,
}

/// Test hooks (`Heap::debug_*`): written by those methods, read by the collector.
#[derive(Default)]
pub(crate) struct Hooks {
    /// Run cycles back to back.
    pub back_to_back: AtomicBool,
    /// The background marker neither marks nor ends the mark phase while set.
    pub hold_marking: AtomicBool,
    /// Mark assists pay nothing while set (their debt stays owed).
    pub hold_assists: AtomicBool,
    /// The collector does not start a requested cycle while set (a collector thread kept off
    /// its CPU).
    pub hold_cycle_start: AtomicBool,
    /// The collector waits before clearing weak references after mark termination while set.
    pub hold_weak_clearing: AtomicBool,
    /// When concurrent marking runs out of grey work, the collector waits while set, holding
    /// the pacer's lock (a collector thread descheduled there), and raises `pacer_stalled`
    /// meanwhile.
    pub stall_holding_pacer: AtomicBool,
    pub pacer_stalled: AtomicBool,
    /// The collector waits right after counting a cycle as started (world stopped, before the
    /// pacer's start of the cycle) while set, and raises `held_after_begin` meanwhile.
    pub hold_after_begin: AtomicBool,
    pub held_after_begin: AtomicBool,
}

/// State shared by the heap handles, the mutators and the collector threads (module docs).
pub(crate) struct Shared {
    /// The allocator's state: see [`MHeap`] and `HeapCounters` for who writes what.
    pub mheap: MHeap,
    /// Fixed at creation.
    pub settings: Settings,
    /// The stop flag of the handshake: written by the collector (stop, start), read by mutators.
    pub safepoint: Safepoint,
    /// Registered mutators: pushed by `Mutator::new`, removed by a mutator's exit, both under
    /// this lock. The collector holds it for a whole stop-the-world phase, so mutators are
    /// neither added nor removed while the world is stopped.
    pub registry: Mutex<Vec<Arc<MutatorRecord>>>,
    /// Ids of new mutators (atomic counter).
    pub next_mutator_id: AtomicUsize,
    /// The heap-wide roots: entries added and removed by `Stash` handles under the lock; greyed
    /// by the collector in STW 1 under it.
    pub stash: Mutex<StashTable>,
    /// Weak boxes registered and not yet found dead: pushed at `downgrade`, filtered by the
    /// collector in the weak-clearing window (see [`crate::gc::weak`]); under the lock.
    pub weaks: Mutex<Vec<ObjAddr>>,
    /// Ephemeron tables deferred by markers, rounds, clearing (see [`crate::gc::ephemeron`]).
    pub ephemerons: crate::gc::ephemeron::Ephemerons,
    /// Finalizer registrations, resurrection, cleanups and their thread (see
    /// [`crate::gc::finalize`]).
    pub finalize: crate::gc::finalize::Finalization,
    /// When cycles run (see [`Control`]).
    pub control: Control,
    /// The mark phase (see [`MarkState`]).
    pub mark: MarkState,
    /// The sweep (see [`SweepState`]).
    pub sweep: SweepState,
    /// The pacer (see [`PacerState`]).
    pub pacer: PacerState,
    /// Notified by a mutator when a scope that contained a blocking region ends; the collector
    /// waits on it (see [`crate::gc::blocking`]).
    pub blocking_end: Monitor,
    /// Counters: each added to atomically by whoever does the work counted.
    pub stats: Stats,
    /// Phase and pause records: appended by the collector (and sweepers) under the log's lock.
    pub phases: PhaseLog,
    /// Per-cycle records: appended by the collector at each cycle's end, under the log's lock.
    pub cycle_log: CycleLog,
    /// Test hooks (see [`Hooks`]).
    pub hooks: Hooks,
    /// The pacer trace file, if asked for: a line per cycle, written by the collector after
    /// each cycle under the trace's lock.
    pub pacer_trace: crate::telemetry::pacertrace::PacerTrace,
    /// Unique for the process's life (an address may be reused by a later heap): names the
    /// heap in the graph of waits between heaps' scopes ([`crate::gc::scope::note_wait_for`]).
    pub id: u64,
}

impl Shared {
    /// The state of a new heap: reserve the arena, set up the pacer. The collector thread is
    /// started separately ([`crate::gc::collector::spawn`]).
    pub(crate) fn new(config: &Config) -> Result<Arc<Shared>, HeapError> {
        config.pacer.validate().map_err(|why| {
            HeapError::Config(ConfigError {
                var: "Config::pacer",
                value: format!("{} ({why})", config.pacer),
                expected: "knobs that pass PacerConfig::validate",
            })
        })?;
        // The stop-the-world collector has no limiter (nothing to limit: no assists) and does
        // not measure what the square-root rule needs; asking for either there is a mistake.
        let pacer = &config.pacer;
        if !config.concurrent
            && (pacer.limiter_fail_fast_ns.is_some() || pacer.policy != Policy::Proportional)
        {
            return Err(HeapError::Config(ConfigError {
                var: "Config::pacer",
                value: pacer.to_string(),
                expected: "policy=proportional and fail_fast=off with the stop-the-world \
                           collector (Config::concurrent(false)): the limiter and the square-root \
                           rule's measurements belong to concurrent marking",
            }));
        }
        let arena = Arena::new(config.arena_bytes)?;
        if let Some(l) = config.memory_limit {
            arena.memory_limit.store(l, Ordering::Relaxed);
        }
        let procs = config
            .procs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let shared = Arc::new(Shared {
            mheap: MHeap::new(arena, config.verify, config.max_heap, config.span_marking),
            settings: Settings {
                verify: config.verify,
                concurrent: config.concurrent,
                gctrace: config.gctrace,
                procs,
                stw_mark_workers: config.mark_workers.max(1),
                span_marking: config.span_marking,
            },
            safepoint: Safepoint::default(),
            registry: Mutex::new(Vec::new()),
            next_mutator_id: AtomicUsize::new(0),
            stash: Mutex::new(StashTable::default()),
            weaks: Mutex::new(Vec::new()),
            ephemerons: Default::default(),
            finalize: Default::default(),
            control: Control::default(),
            mark: MarkState::default(),
            sweep: SweepState::default(),
            pacer: PacerState::new(config, procs),
            blocking_end: Monitor::default(),
            stats: Stats::default(),
            phases: PhaseLog::new(),
            cycle_log: CycleLog::default(),
            hooks: Hooks::default(),
            pacer_trace: crate::telemetry::pacertrace::PacerTrace::open(
                config.pacer_trace.as_deref(),
            ),
            id: crate::gc::scope::new_heap_id(),
        });
        crate::gc::collector::update_trigger(&shared);
        Ok(shared)
    }
}

impl Drop for Shared {
    /// Heap teardown: every mutator, stash and heap handle is gone and the collector thread has
    /// exited, so every allocated object is dead. Run every cleanup not yet run (see
    /// [`crate::gc::finalize`]), then each object's drop glue once, then free the span metadata
    /// (the reservation is unmapped when the arena drops).
    ///
    /// A panicking drop glue does not stop the others, as in a `Vec`'s drop: every object is
    /// dropped, then the first panic goes on unwinding from here (out of the drop of the last
    /// heap handle or mutator; dropped instead if this thread is unwinding already). Unlike a
    /// sweep, teardown is not half done when it unwinds.
    fn drop(&mut self) {
        // The cleanups first: one still running may record a wait for this heap.
        self.finalize.teardown();
        crate::gc::scope::forget_heap(self.id);
        let mut first = crate::util::unwind::FirstPanic::default();
        self.mheap.central.teardown(|span| {
            let Some(d) = type_of(span).drop else {
                return;
            };
            let st = span.state.lock();
            for i in st.alloc.iter_ones().take_while(|&i| i < span.nelems) {
                let o = span.slot_addr(i) as *mut Object;
                first.run(|| {
                    // SAFETY: slot `i` is allocated (its alloc bit is set), so it holds an
                    // initialised object of the span's type that has not been dropped (sweeping
                    // clears the alloc bit of every object it drops); nothing can reach it any
                    // more. Dropped exactly once, here: a panic of its drop glue is caught and
                    // the slot never visited again.
                    unsafe { d(o) }
                });
            }
        });
        // Not resumed while this thread is already unwinding (the last handle dropped by a
        // panic): a second panic would abort the process.
        first.resume();
    }
}

impl Shared {
    /// The pacer's controller over this heap's figures.
    pub(crate) fn controller(&self) -> crate::pacer::controller::Controller<'_> {
        crate::pacer::controller::Controller {
            p: &self.pacer,
            mheap: &self.mheap,
            stats: &self.stats,
            phases: &self.phases,
            procs: self.settings.procs,
        }
    }
}
