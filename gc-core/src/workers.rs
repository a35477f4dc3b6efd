//! Mark workers: marking in parallel while the world is stopped.
//!
//! With the world stopped every core is free, so the collector thread marks together with
//! `mark_workers - 1` helper threads (by default one worker per core). Helpers live for the
//! collector thread's life, parked on [`Pool`] between cycles.
//!
//! # Work distribution (Go: `gcWork` / `work.full`)
//!
//! Each worker drains a local grey stack. When its stack holds more than a few objects and the
//! **global queue** (`crossbeam_queue::SegQueue` of batches) is empty, it moves the older half of
//! its stack there as one batch for idle workers to take (the oldest entries of a depth-first
//! stack are the roots of the largest unexplored subgraphs). Mark bits are set with an atomic `fetch_or` (two workers may reach
//! the same object; exactly one greys it).
//!
//! # Termination detection
//!
//! | quantity | meaning |
//! |----------|---------|
//! | `idle`   | workers that have no local work and are not holding a batch |
//! | `global` | batches not yet taken |
//!
//! A worker whose stack is empty increments `idle`, then waits. To take a batch it first
//! *decrements* `idle`, then pops (re-incrementing if the pop fails). It may return when it reads
//! `idle == workers` and then finds `global` empty.
//!
//! Invariant: a worker counted in `idle` holds no grey object and pushes nothing. Hence when
//! `idle == workers`, no worker can push any more, and an empty `global` stays empty. A returning
//! worker stays counted as idle, so a later-active worker (one that decremented `idle` and took
//! the last batch between another's two reads) can only return after draining its own work and
//! seeing the queue empty. The collector waits for **every** worker to return, so when it goes on,
//! all grey work is done, whatever order the workers left in. The `SeqCst` accesses to `idle` and
//! the queue's own synchronisation order the pushes before the reads that observe them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::SegQueue;
use parking_lot::{Condvar, Mutex};

use crate::heap::{ObjAddr, Shared};
use crate::mark::Tracer;

/// Local stack length above which a worker offers half of it to the others (only while the
/// global queue is empty, i.e. while some worker may be starving). Low, because tree-shaped
/// graphs keep a depth-first stack short: a binary tree of depth 21 never holds more than ~21.
pub(crate) const SHARE_THRESHOLD: usize = 8;

/// One parallel mark phase: the global queue, the idle count, the totals.
pub(crate) struct MarkJob {
    pub global: SegQueue<Vec<ObjAddr>>,
    idle: AtomicUsize,
    workers: usize,
    marked_bytes: AtomicUsize,
    marked_objects: AtomicU64,
    /// Batches handed through the global queue (a measure of load balancing).
    pub shared_batches: AtomicU64,
}

impl MarkJob {
    pub(crate) fn new(workers: usize) -> MarkJob {
        MarkJob {
            global: SegQueue::new(),
            idle: AtomicUsize::new(0),
            workers,
            marked_bytes: AtomicUsize::new(0),
            marked_objects: AtomicU64::new(0),
            shared_batches: AtomicU64::new(0),
        }
    }

    /// Total bytes and objects marked by the workers that have finished.
    pub(crate) fn totals(&self) -> (usize, u64) {
        (
            self.marked_bytes.load(Ordering::SeqCst),
            self.marked_objects.load(Ordering::SeqCst),
        )
    }
}

/// Run one worker until the termination condition holds, then add its totals to the job.
/// `t` may already hold grey objects (the collector's roots).
pub(crate) fn work(job: &MarkJob, t: &mut Tracer) {
    loop {
        t.drain();
        if let Some(batch) = take(job) {
            t.push_batch(batch);
            continue;
        }
        // Idle: no local work.
        job.idle.fetch_add(1, Ordering::SeqCst);
        loop {
            if job.idle.load(Ordering::SeqCst) == job.workers && job.global.is_empty() {
                job.marked_bytes.fetch_add(t.marked_bytes, Ordering::SeqCst);
                job.marked_objects
                    .fetch_add(t.marked_objects as u64, Ordering::SeqCst);
                return;
            }
            if !job.global.is_empty() {
                job.idle.fetch_sub(1, Ordering::SeqCst);
                if let Some(batch) = job.global.pop() {
                    t.push_batch(batch);
                    break;
                }
                job.idle.fetch_add(1, Ordering::SeqCst);
            }
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }
}

/// Take a batch while active (not counted idle).
fn take(job: &MarkJob) -> Option<Vec<ObjAddr>> {
    job.global.pop()
}

/// Parked helper threads and the job they are given.
#[derive(Default)]
pub(crate) struct Pool {
    state: Mutex<PoolState>,
    start: Condvar,
    done: Condvar,
}

#[derive(Default)]
struct PoolState {
    epoch: u64,
    job: Option<Arc<MarkJob>>,
    finished: usize,
    exit: bool,
}

impl Pool {
    /// Body of a helper thread: wait for a job, work on it, report, repeat until `shutdown`.
    pub(crate) fn helper(&self, h: &Shared) {
        let mut seen = 0;
        loop {
            let job = {
                let mut st = self.state.lock();
                while st.epoch == seen && !st.exit {
                    self.start.wait(&mut st);
                }
                if st.exit {
                    return;
                }
                seen = st.epoch;
                st.job.clone().expect("a job for every epoch")
            };
            let mut t = Tracer::new_parallel(&h.arena, &job);
            work(&job, &mut t);
            let mut st = self.state.lock();
            st.finished += 1;
            self.done.notify_all();
        }
    }

    /// Hand `job` to the helpers (they start at once).
    pub(crate) fn start(&self, job: Arc<MarkJob>) {
        let mut st = self.state.lock();
        st.epoch += 1;
        st.finished = 0;
        st.job = Some(job);
        self.start.notify_all();
    }

    /// Wait until `helpers` helpers have finished the current job, then drop it.
    pub(crate) fn wait(&self, helpers: usize) {
        let mut st = self.state.lock();
        while st.finished < helpers {
            self.done.wait(&mut st);
        }
        st.job = None;
    }

    /// Tell the helpers to exit.
    pub(crate) fn shutdown(&self) {
        let mut st = self.state.lock();
        st.exit = true;
        self.start.notify_all();
    }
}
