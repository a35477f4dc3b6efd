//! Marking: the tracer, the grey-work queues, the workers, and the mark phase's shared state.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use crossbeam_queue::SegQueue;

use crate::util::primitive::Monitor;

pub(crate) mod tracer;
pub(crate) mod workers;

/// The mark phase's shared state. Each field says who writes it.
#[derive(Default)]
pub(crate) struct MarkState {
    /// On from STW 1 to STW 2 of a concurrent cycle: objects are allocated black, mutators scan
    /// their roots before their first scope, assists run. Written with the world stopped.
    pub marking: AtomicBool,
    /// The write barrier (Go: `writeBarrier.enabled`): on while marking, read by every barrier
    /// with one relaxed load. Written with the world stopped (and by
    /// `Heap::debug_force_barrier`).
    pub barrier_on: AtomicBool,
    /// The cycle whose marking is in progress (root scans are stamped with it). Written in
    /// STW 1.
    pub cycle: AtomicU64,
    /// Grey work handed between concurrent markers: mutators' root scans and barrier flushes,
    /// assists, background workers.
    pub grey: SegQueue<tracer::GreyBatch>,
    /// Bytes and objects marked during the current mark phase by every tracer but the
    /// collector thread's own (mutator-side tracers, assists, background helpers), added when
    /// they hand their work over. Reset in STW 1.
    pub marked_bytes_others: AtomicUsize,
    pub marked_objects_others: AtomicU64,
    /// Markers holding grey work the collector cannot see (assists, background helpers): mark
    /// termination is not attempted, and fails, while this is not 0. Raised before taking work
    /// and lowered after handing the rest back (`SeqCst` on both sides).
    pub busy: AtomicUsize,
    /// Wakes the background mark workers when marking starts, and at shutdown.
    pub workers_wake: Monitor,
    /// The stop-the-world mark's helper threads, parked between cycles.
    pub pool: workers::Pool,
    /// Helper threads of the stop-the-world mark actually running (set by the collector thread
    /// at start).
    pub stw_helpers: AtomicUsize,
}
