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
//! A worker whose stack is empty first tries to pop a batch; only if that fails does it
//! increment `idle` and wait. To take a batch while waiting it first *decrements* `idle`, then
//! pops (re-incrementing if the pop fails). It returns when it reads `idle == workers` and then
//! finds `global` empty.
//!
//! *Completeness* does not depend on timing: a worker never returns while its own stack holds
//! grey objects or while it has seen the queue non-empty, and the collector waits for **every**
//! worker to return before it goes on, so whatever one worker leaves in the queue another (or the
//! last one) drains. *Progress*: `idle == workers` means no worker holds grey work (an idle worker
//! holds none and pushes nothing), so an empty queue then stays empty and every waiting worker
//! returns; a worker that took the last batch between another's two reads stays active and
//! returns once it has drained it. The `SeqCst` accesses to `idle` and the queue's own
//! synchronisation order the pushes before the reads that observe them.
//!
//! The protocol ([`run_worker`]) is generic over the queue and the local work so that a loom test
//! (`loom_tests` below) checks the real code with a model worker: every interleaving of two
//! workers splitting a small tree of tasks ends with every task done exactly once and both
//! workers returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::SegQueue;
use parking_lot::{Condvar, Mutex};

use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::Tracer;
use crate::util::primitive::{AtomicUsize, spin_wait};

/// Local stack length above which a worker offers half of it to the others (only while the
/// global queue is empty, i.e. while some worker may be starving). Low, because tree-shaped
/// graphs keep a depth-first stack short: a binary tree of depth 21 never holds more than ~21.
pub(crate) const SHARE_THRESHOLD: usize = 8;

/// The queue of grey batches, as the termination protocol sees it.
pub(crate) trait BatchQueue {
    type Batch;
    fn push(&self, b: Self::Batch);
    fn pop(&self) -> Option<Self::Batch>;
    fn is_empty(&self) -> bool;
}

impl BatchQueue for SegQueue<Vec<ObjAddr>> {
    type Batch = Vec<ObjAddr>;
    fn push(&self, b: Self::Batch) {
        SegQueue::push(self, b)
    }
    fn pop(&self) -> Option<Self::Batch> {
        SegQueue::pop(self)
    }
    fn is_empty(&self) -> bool {
        SegQueue::is_empty(self)
    }
}

/// A worker's local side: drain local grey work (sharing batches through the queue as it goes),
/// and accept a batch taken from the queue.
pub(crate) trait LocalWork<Q: BatchQueue> {
    fn drain(&mut self, q: &Q);
    fn push_batch(&mut self, b: Q::Batch);
}

impl LocalWork<SegQueue<Vec<ObjAddr>>> for Tracer {
    fn drain(&mut self, _q: &SegQueue<Vec<ObjAddr>>) {
        // The tracer shares through its job's queue, which is `_q`.
        Tracer::drain(self)
    }
    fn push_batch(&mut self, b: Vec<ObjAddr>) {
        Tracer::push_batch(self, b)
    }
}

/// The idle count of the termination protocol (see the module docs).
pub(crate) struct Termination {
    idle: AtomicUsize,
    workers: usize,
}

impl Termination {
    pub(crate) fn new(workers: usize) -> Termination {
        Termination {
            idle: AtomicUsize::new(0),
            workers,
        }
    }
}

/// Run one worker until the termination condition holds. `w` may already hold grey objects.
pub(crate) fn run_worker<Q: BatchQueue, W: LocalWork<Q>>(term: &Termination, q: &Q, w: &mut W) {
    loop {
        w.drain(q);
        if let Some(batch) = q.pop() {
            w.push_batch(batch);
            continue;
        }
        // Idle: no local work, no batch in hand.
        term.idle.fetch_add(1, Ordering::SeqCst);
        loop {
            if term.idle.load(Ordering::SeqCst) == term.workers && q.is_empty() {
                return;
            }
            if !q.is_empty() {
                // Leave the idle set *before* taking a batch, so that `idle == workers` always
                // means "nobody holds grey work".
                term.idle.fetch_sub(1, Ordering::SeqCst);
                if let Some(batch) = q.pop() {
                    w.push_batch(batch);
                    break;
                }
                term.idle.fetch_add(1, Ordering::SeqCst);
            }
            spin_wait();
        }
    }
}

/// One parallel mark phase: the global queue, the termination state, the totals.
pub(crate) struct MarkJob {
    pub global: SegQueue<Vec<ObjAddr>>,
    term: Termination,
    marked_bytes: std::sync::atomic::AtomicUsize,
    marked_objects: AtomicU64,
    /// Batches handed through the global queue (a measure of load balancing).
    pub shared_batches: AtomicU64,
}

impl MarkJob {
    pub(crate) fn new(workers: usize) -> MarkJob {
        MarkJob {
            global: SegQueue::new(),
            term: Termination::new(workers),
            marked_bytes: std::sync::atomic::AtomicUsize::new(0),
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

/// Run one mark worker on `job` and add its totals. `t` may already hold grey objects (the
/// collector's roots).
pub(crate) fn work(job: &MarkJob, t: &mut Tracer) {
    run_worker(&job.term, &job.global, t);
    job.marked_bytes.fetch_add(t.marked_bytes, Ordering::SeqCst);
    job.marked_objects
        .fetch_add(t.marked_objects as u64, Ordering::SeqCst);
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
            let mut t = Tracer::new_parallel(&h.mheap.arena, &job);
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

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::{Arc, Mutex};
    use std::collections::VecDeque;

    /// The global queue: batches of tasks (a task is a subtree depth).
    #[derive(Default)]
    struct ModelQueue(Mutex<VecDeque<Vec<u32>>>);

    impl BatchQueue for ModelQueue {
        type Batch = Vec<u32>;
        fn push(&self, b: Vec<u32>) {
            self.0.lock().unwrap().push_back(b)
        }
        fn pop(&self) -> Option<Vec<u32>> {
            self.0.lock().unwrap().pop_front()
        }
        fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }
    }

    /// A worker whose grey objects are tree nodes: a node of depth d > 0 has two children.
    /// It shares eagerly (whenever it holds two tasks and the queue is empty).
    struct ModelWorker {
        stack: Vec<u32>,
        done: Arc<loom::sync::atomic::AtomicUsize>,
    }

    impl LocalWork<ModelQueue> for ModelWorker {
        fn drain(&mut self, q: &ModelQueue) {
            while let Some(d) = self.stack.pop() {
                if self.stack.len() >= 2 && q.is_empty() {
                    let n = self.stack.len() / 2;
                    q.push(self.stack.drain(..n).collect());
                }
                self.done.fetch_add(1, Ordering::SeqCst);
                if d > 0 {
                    self.stack.push(d - 1);
                    self.stack.push(d - 1);
                }
            }
        }
        fn push_batch(&mut self, b: Vec<u32>) {
            self.stack.extend(b);
        }
    }

    #[test]
    fn loom_mark_termination_finishes_all_work() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let q = Arc::new(ModelQueue::default());
            let term = Arc::new(Termination::new(2));
            let done = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            let helper = {
                let (q, term, done) = (q.clone(), term.clone(), done.clone());
                loom::thread::spawn(move || {
                    let mut w = ModelWorker {
                        stack: vec![],
                        done,
                    };
                    run_worker(&term, &*q, &mut w);
                    assert!(w.stack.is_empty());
                })
            };
            // The "collector" starts with the root: a tree of depth 2 (7 tasks).
            let mut w = ModelWorker {
                stack: vec![2],
                done: done.clone(),
            };
            run_worker(&term, &*q, &mut w);
            assert!(w.stack.is_empty());
            helper.join().unwrap();
            assert_eq!(
                done.load(Ordering::SeqCst),
                7,
                "every task done exactly once"
            );
            assert!(q.is_empty());
        });
    }
}
