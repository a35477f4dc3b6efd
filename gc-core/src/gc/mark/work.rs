//! The grey work every marker shares, and how marking knows it is done (Go: `work.full`,
//! `gcWork`, the checks of `gcMarkDone`).
//!
//! Each marker drains a grey stack of its own (its [`Tracer`]). Work moves between markers
//! through one queue of batches ([`MarkWork`], a `crossbeam_queue::SegQueue`):
//!
//! * **balancing** (`Tracer::offer`, Go: `gcWork.balance`): a marker finding the queue empty
//!   hands over the older half of its stack (the bottom of a depth-first stack roots the
//!   largest unexplored subgraphs), so idle workers and assists find work. Stop-the-world
//!   workers offer at every pop, above [`SHARE_MIN`] objects, when another worker waits
//!   ([`MarkWork::hungry`]): every core is marking or waiting for work.
//!   Concurrent workers offer at the end of each slice, above 64 objects: what they offer feeds
//!   the mark assists, and offering at every pop above 8 was measured to move binary-trees
//!   (depth 21, 2 CPUs) to −52% peak RSS but +28% wall time — a pacing trade-off, not this
//!   module's to make. Assists offer after each of their slices, above 4 objects (Go's
//!   `gcDrainN` balances as well): the bottom of an assist's stack is work a background worker
//!   can do instead of the allocating mutator;
//! * mutators hand over what their root scans and barrier flushes greyed, assists and
//!   background workers hand back what they did not finish.
//!
//! # Termination
//!
//! `busy` counts the markers that may hold grey work nobody else can see: a marker raises it
//! before it takes a batch and lowers it only once it holds nothing (it drained everything or
//! handed the rest back). Mutators shade only inside their scopes or at their edges and hand what
//! they greyed over before they return, so **with the world stopped, an empty queue and
//! `busy == 0` mean that no grey object exists outside the caller's own stack**. Both modes end
//! marking on that condition:
//!
//! * stop-the-world marking runs every worker through [`run_worker`]: all start counted busy; a
//!   worker with nothing local and no batch to take lowers `busy` and waits, and returns once
//!   `busy == 0` and the queue is empty. Completeness does not depend on timing: a worker never
//!   returns while its stack holds grey objects or while it has seen the queue non-empty, and the
//!   collector waits for every worker to return, so what one leaves in the queue another drains.
//!   A waiting worker raises `busy` *before* it pops, so `busy == 0` always means nobody holds
//!   work. The `SeqCst` accesses order the pushes before the reads that observe them.
//! * concurrent marking: background workers and assists raise `busy` around each slice; the
//!   collector attempts termination when it holds nothing, the queue is empty and `busy == 0`,
//!   and decides with the world stopped (`gc::cycle`). Assists run inside mutation scopes, so
//!   none runs then; background workers do, and a worker may hand back what it did not mark
//!   between the collector's two reads: a check that read the queue empty while the worker held
//!   its batch, and `busy == 0` after the worker pushed the rest back and left, would end
//!   marking with grey work in the queue. So the check *closes* the queue to them first
//!   ([`MarkWork::idle_and_empty`]): a worker counts itself busy, then takes a batch only if the
//!   queue is not closed ([`MarkWork::take_concurrent`]); the collector closes it, then reads
//!   `busy`, then the queue (a `SeqCst` fence between the store and the load on both sides, the
//!   store-fence-load pattern of the safepoint handshake). Either the collector's read of `busy` comes after the worker's
//!   increment, and then it sees the worker still busy or, if the worker has left, what it
//!   handed back before leaving (in the queue, read next); or the worker reads the queue closed
//!   and takes nothing. Once `busy` reads 0 nobody holds a batch and nobody can take one, so
//!   the queue read after it is final. The collector reopens the queue after every check,
//!   passed or failed ([`MarkWork::reopen`]), so that a cycle never starts with it closed.
//!
//! [`run_worker`] is generic over the queue and the local work so that a loom test checks the
//! real protocol with a model worker: in every interleaving of two workers splitting a small tree
//! of tasks, every task is done exactly once and both workers return. [`take_concurrent`] and
//! [`idle_and_empty`] are generic in the same way, and so is [`hand_back_and_leave`], the end of a
//! concurrent marker's turn: a loom test runs a worker that marks part of a batch and hands the
//! rest back through it against a collector's check, and the check never passes while a task is
//! left.
//!
//! # Sleeping for work
//!
//! A background worker that finds nothing to take sleeps ([`MarkWork::wait_for_batch`]) until a
//! push wakes it ([`push_and_wake`], one sleeper per batch), a failed termination check's
//! reopening finds batches queued ([`MarkWork::wake_all_if_queued`], after the pause), a worker
//! about to pause for its CPU share or leaving an ended cycle has left batches queued
//! ([`MarkWork::wake_one_if_queued`]), or marking ends ([`MarkWork::wake_waiting`], after the
//! pause). Its own hand-back at the end of a slice wakes nobody ([`MarkWork::push_quietly`]):
//! it takes a batch again at once. (The queue's own [`BatchQueue::push`] wakes nobody either:
//! generic code that pushes must wake as [`push_and_wake`] does.) The loom models
//! `loom_pushes_wake_sleeping_background_workers_one_per_batch`,
//! `loom_a_sleeping_background_worker_is_woken_for_work_and_for_the_end` and
//! `loom_a_worker_that_pauses_after_a_quiet_hand_back_wakes_a_sleeper` run the real functions
//! over a lock-free queue model, where a lost wake-up is a deadlock.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_queue::SegQueue;

use crate::gc::mark::tracer::{GreyBatch, Tracer};
use crate::util::primitive::{AtomicBool, AtomicUsize, Monitor, fence, spin_wait};

/// A marker holding more grey objects than this shares half of them when the queue is empty.
/// Low, because tree-shaped graphs keep a depth-first stack short: a binary tree of depth 21
/// never holds more than ~21.
pub(crate) const SHARE_MIN: usize = 8;

/// The shared grey-work queue and the termination count (module docs).
pub(crate) struct MarkWork {
    queue: SegQueue<GreyBatch>,
    /// Markers that may hold grey work the others cannot see.
    busy: AtomicUsize,
    /// Set while the collector checks for termination with the world stopped: the markers that
    /// keep running then (background workers) take no batch ([`MarkWork::take_concurrent`]).
    closed: AtomicBool,
    /// Stop-the-world workers of the current marking ([`MarkWork::start_workers`]).
    workers: AtomicUsize,
    /// Background workers asleep in [`MarkWork::wait_for_batch`], and where they sleep.
    waiting: AtomicUsize,
    idle: Monitor,
    /// Batches handed over by balancing this cycle (a measure of load balancing).
    pub shared_batches: std::sync::atomic::AtomicU64,
}

impl MarkWork {
    pub(crate) fn new() -> MarkWork {
        MarkWork {
            queue: SegQueue::new(),
            busy: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            workers: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            idle: Monitor::default(),
            shared_batches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Hand a batch of grey work over, waking a background worker asleep for want of one
    /// ([`push_and_wake`]).
    pub(crate) fn push(&self, b: GreyBatch) {
        push_and_wake(self, &self.waiting, &self.idle, b);
    }

    /// [`MarkWork::push`] without the wake-up: for a background worker's hand-back at the end
    /// of a slice, which it takes again at once (waking another worker then, at every slice,
    /// cost the pusher a wake-up system call and the sleeper a turn that finds nothing). A
    /// worker that goes on to pause with work queued wakes a sleeper first
    /// ([`MarkWork::wake_one_if_queued`]).
    pub(crate) fn push_quietly(&self, b: GreyBatch) {
        self.queue.push(b);
    }

    /// Take a batch; the caller must be counted busy (see [`MarkWork::enter`]).
    pub(crate) fn pop(&self) -> Option<GreyBatch> {
        self.queue.pop()
    }

    /// Whether the queue is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Count the caller busy (before it takes work).
    pub(crate) fn enter(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    /// Count the caller idle (it holds no grey work).
    pub(crate) fn leave(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// [`MarkWork::leave`] for a marker that marked with `t` and has handed its grey work back
    /// (`roots::hand_over`). Leaving first would let a termination check read `busy == 0` and
    /// an empty queue before the push: marking would end with grey objects unscanned, and the
    /// sweep free what they reach. The order is checked here, where any run catches a swap,
    /// rather than left to the race.
    pub(crate) fn leave_handed_over(&self, t: &Tracer) {
        if t.has_grey() {
            bug!("a marker counted itself idle while holding grey work");
        }
        self.leave();
    }

    /// Hand back the batch `b` untouched and stop counting the caller busy
    /// ([`hand_back_and_leave`], the order the loom model checks).
    pub(crate) fn hand_back_batch_and_leave(&self, b: GreyBatch) {
        hand_back_and_leave(&self.busy, self, Some(b));
        self.wake_one_if_queued();
    }

    /// Markers counted busy.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// A background worker's turn at the queue: counted busy, take a batch unless a
    /// termination check has closed the queue (module docs). `Some`: the caller must
    /// [`leave`](MarkWork::leave) once it holds nothing; `None`: nothing taken, and the caller
    /// is counted idle again.
    pub(crate) fn take_concurrent(&self) -> Option<GreyBatch> {
        take_concurrent(&self.busy, &self.closed, self)
    }

    /// [`MarkWork::take_concurrent`] for a background worker of the mark phase `cycle`
    /// (`current` reads the phase now). Preempted between its loop's test and the pop, a
    /// worker may take a batch of a later phase: that batch is handed back untouched, to that
    /// phase's workers, rather than marked at this phase's pace, and `None` returned as when
    /// nothing was taken (the caller then finds its phase over). The batch was pushed after
    /// the phase's number was stored, and the pop synchronizes with the push, so `current`
    /// reads the new number then.
    pub(crate) fn take_concurrent_of(
        &self,
        cycle: u64,
        current: impl Fn() -> u64,
    ) -> Option<GreyBatch> {
        let b = self.take_concurrent()?;
        if current() != cycle {
            self.hand_back_batch_and_leave(b);
            return None;
        }
        Some(b)
    }

    /// With the world stopped: whether no marker holds grey work and the queue is empty, after
    /// closing the queue to the background workers (module docs). The caller must
    /// [`reopen`](MarkWork::reopen) it before marking goes on.
    pub(crate) fn idle_and_empty(&self) -> bool {
        idle_and_empty(&self.busy, &self.closed, self)
    }

    /// Whether a termination check has the queue closed (assertions).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Let background workers take batches again (after [`MarkWork::idle_and_empty`]). Those
    /// that slept because the queue was closed are woken by [`MarkWork::wake_all_if_queued`],
    /// after the pause (the wake-up takes the sleepers' lock, which a helper the pause does not
    /// stop may hold).
    pub(crate) fn reopen(&self) {
        self.closed.store(false, Ordering::SeqCst);
    }

    /// Wake every background worker asleep for want of work if batches are queued: after a
    /// failed termination check, which may have left several (see [`wake_if_queued`]).
    pub(crate) fn wake_all_if_queued(&self) {
        wake_if_queued(self, &self.waiting, &self.idle, true);
    }

    /// Wake one background worker asleep for want of work if batches are queued: the caller
    /// handed back what it will not mark itself (a worker about to pause, or leaving a cycle
    /// that has ended).
    pub(crate) fn wake_one_if_queued(&self) {
        wake_if_queued(self, &self.waiting, &self.idle, false);
    }

    /// A background worker that took nothing ([`MarkWork::take_concurrent`] returned `None`):
    /// sleep until a batch is pushed by anyone but a worker that takes one again at once
    /// ([`MarkWork::push_quietly`]), a failed termination check reopens the queue with batches
    /// in it, a worker pauses or leaves with batches queued, the caller's mark phase is over
    /// ([`MarkWork::wake_waiting`]; `marking` reads false), or `timeout` passes (a bound for a
    /// missed wake-up, not a poll). See [`wait_for_batch`].
    pub(crate) fn wait_for_batch(&self, timeout: Duration, marking: impl Fn() -> bool) {
        wait_for_batch(&self.waiting, &self.idle, timeout, || {
            !marking() || may_take(&self.closed, self)
        });
    }

    /// Wake every background worker asleep in [`MarkWork::wait_for_batch`]: their mark phase
    /// is over (called after `MarkState::marking` is cleared, once the pause has ended).
    pub(crate) fn wake_waiting(&self) {
        wake_all_waiting(&self.waiting, &self.idle);
    }

    /// Count `n` stop-the-world workers busy before they start (each leaves when it returns).
    pub(crate) fn start_workers(&self, n: usize) {
        debug_assert_eq!(self.busy(), 0);
        self.workers.store(n, Ordering::Relaxed);
        self.busy.store(n, Ordering::SeqCst);
    }

    /// Whether a stop-the-world worker is waiting for work that is not there: the queue is
    /// empty and fewer workers are busy than run. A hint for balancing only (relaxed loads: a
    /// stale answer offers a batch early or a pop late, and the termination protocol does not
    /// depend on it).
    pub(crate) fn hungry(&self) -> bool {
        self.busy.load(Ordering::Relaxed) < self.workers.load(Ordering::Relaxed)
            && self.queue.is_empty()
    }
}

/// The queue as the termination protocol sees it.
pub(crate) trait BatchQueue {
    type Batch;
    fn push(&self, b: Self::Batch);
    fn pop(&self) -> Option<Self::Batch>;
    fn is_empty(&self) -> bool;
}

impl BatchQueue for MarkWork {
    type Batch = GreyBatch;
    /// The queue's own push: [`push_and_wake`] wakes around it.
    fn push(&self, b: GreyBatch) {
        self.queue.push(b)
    }
    fn pop(&self) -> Option<GreyBatch> {
        MarkWork::pop(self)
    }
    fn is_empty(&self) -> bool {
        MarkWork::is_empty(self)
    }
}

/// A worker's local side: drain local grey work (sharing batches through the queue as it goes),
/// and accept a batch taken from the queue.
pub(crate) trait LocalWork<Q: BatchQueue> {
    fn drain(&mut self, q: &Q);
    fn push_batch(&mut self, b: Q::Batch);
}

impl LocalWork<MarkWork> for Tracer {
    fn drain(&mut self, _q: &MarkWork) {
        // The tracer shares through the queue it was made with, which is `_q`.
        Tracer::drain(self)
    }
    fn push_batch(&mut self, b: GreyBatch) {
        self.push_grey_batch(b)
    }
}

/// Run one stop-the-world worker until the termination condition holds (module docs). The
/// worker was counted in `busy` before it started; `w` may already hold grey objects.
pub(crate) fn run_worker<Q: BatchQueue, W: LocalWork<Q>>(busy: &AtomicUsize, q: &Q, w: &mut W) {
    loop {
        w.drain(q);
        if let Some(batch) = q.pop() {
            w.push_batch(batch);
            continue;
        }
        // Idle: no local work, no batch in hand.
        busy.fetch_sub(1, Ordering::SeqCst);
        loop {
            if busy.load(Ordering::SeqCst) == 0 && q.is_empty() {
                return;
            }
            if !q.is_empty() {
                // Count busy again *before* taking a batch, so that `busy == 0` always means
                // "nobody holds grey work".
                busy.fetch_add(1, Ordering::SeqCst);
                if let Some(batch) = q.pop() {
                    w.push_batch(batch);
                    break;
                }
                busy.fetch_sub(1, Ordering::SeqCst);
            }
            spin_wait();
        }
    }
}

/// [`MarkWork::take_concurrent`] on any queue (generic for the loom test): count the caller in
/// `busy`, then take a batch only if `closed` is not set; otherwise, or if the queue is empty,
/// count it idle again. The increment comes before the load of `closed`, with a `SeqCst` fence
/// between them as between the collector's store of `closed` and its load of `busy` (the
/// store-fence-load pattern of the safepoint handshake), so a collector that closes the queue
/// and then reads `busy` either sees this caller counted or made it see the queue closed.
pub(crate) fn take_concurrent<Q: BatchQueue>(
    busy: &AtomicUsize,
    closed: &AtomicBool,
    q: &Q,
) -> Option<Q::Batch> {
    busy.fetch_add(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    if !closed.load(Ordering::SeqCst)
        && let Some(b) = q.pop()
    {
        return Some(b);
    }
    busy.fetch_sub(1, Ordering::SeqCst);
    None
}

/// A marker of [`take_concurrent`] ends its turn: hand back what it did not mark (`rest`), then
/// stop counting itself busy, in that order ([`idle_and_empty`] relies on it: a check that
/// reads `busy == 0` then finds what was handed back in the queue). The loom model's worker
/// ends its turn through this function too.
pub(crate) fn hand_back_and_leave<Q: BatchQueue>(
    busy: &AtomicUsize,
    q: &Q,
    rest: Option<Q::Batch>,
) {
    if let Some(b) = rest {
        q.push(b);
    }
    busy.fetch_sub(1, Ordering::SeqCst);
}

/// [`MarkWork::idle_and_empty`] on any queue: close it, then read `busy`, then the queue. Once
/// `busy` reads 0 no marker of [`take_concurrent`] holds a batch or can take one, and what each
/// pushed back before it left is in the queue (its push comes before its decrement, which
/// this load reads), so an empty queue then means no grey work outside the caller's.
pub(crate) fn idle_and_empty<Q: BatchQueue>(
    busy: &AtomicUsize,
    closed: &AtomicBool,
    q: &Q,
) -> bool {
    closed.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    busy.load(Ordering::SeqCst) == 0 && q.is_empty()
}

/// [`MarkWork::wait_for_batch`] on any waiter count and monitor (generic for the loom test):
/// count the caller waiting, then, under the monitor's lock, sleep unless `ready` (work to
/// take, or no longer wanted). The count is raised before `ready` reads the queue, with a
/// `SeqCst` fence between them, as [`push_and_wake`] puts one between its push and its read
/// of the count (the store-fence-load pattern again): either the pusher sees the caller
/// counted, and then wakes it under the lock, which it can take only once the caller sleeps
/// or before the caller checked; or the caller's `ready` sees the batch. The other changes
/// `ready` reads are announced the same way: the end of marking ([`MarkWork::wake_waiting`]:
/// the store of `marking`, a fence, the read of the count) and a reopened queue
/// ([`wake_if_queued`]).
pub(crate) fn wait_for_batch(
    waiting: &AtomicUsize,
    idle: &Monitor,
    timeout: Duration,
    ready: impl Fn() -> bool,
) {
    waiting.fetch_add(1, Ordering::SeqCst);
    let g = idle.lock();
    fence(Ordering::SeqCst);
    if !ready() {
        drop(idle.wait_for(g, timeout));
    } else {
        drop(g);
    }
    waiting.fetch_sub(1, Ordering::SeqCst);
}

/// Whether a worker of [`take_concurrent`] could take a batch now: the queue is open and not
/// empty (what [`wait_for_batch`]'s sleepers wait for, besides the end of marking).
pub(crate) fn may_take<Q: BatchQueue>(closed: &AtomicBool, q: &Q) -> bool {
    !closed.load(Ordering::SeqCst) && !q.is_empty()
}

/// [`MarkWork::push`] on any queue: push `b`, then wake one worker of [`wait_for_batch`] if
/// any is counted (one batch is work for one; a worker that finishes it looks at the queue
/// again before it sleeps). One `SeqCst` fence and a load when none is: nothing more on the
/// push path of stop-the-world marking, where nobody waits this way.
pub(crate) fn push_and_wake<Q: BatchQueue>(
    q: &Q,
    waiting: &AtomicUsize,
    idle: &Monitor,
    b: Q::Batch,
) {
    q.push(b);
    fence(Ordering::SeqCst);
    if waiting.load(Ordering::Relaxed) > 0 {
        idle.wake_one();
    }
}

/// [`MarkWork::wake_all_if_queued`] and [`MarkWork::wake_one_if_queued`] on any queue: if
/// batches are queued, wake every worker of [`wait_for_batch`] (`all`) or one. After a failed
/// termination check the caller has just reopened the queue (cleared `closed`): the fence
/// orders that store before the read of the count, against the sleeper's increment before its
/// read of `closed`; after a quiet hand-back ([`MarkWork::push_quietly`]) it orders the push
/// before the read, as in [`push_and_wake`].
pub(crate) fn wake_if_queued<Q: BatchQueue>(
    q: &Q,
    waiting: &AtomicUsize,
    idle: &Monitor,
    all: bool,
) {
    if !q.is_empty() {
        fence(Ordering::SeqCst);
        if waiting.load(Ordering::Relaxed) > 0 {
            if all {
                idle.wake_all();
            } else {
                idle.wake_one();
            }
        }
    }
}

/// [`MarkWork::wake_waiting`] on any count and monitor: after the store that ends marking (which
/// the sleepers' `ready` reads), a fence, then wake every sleeper if any is counted.
pub(crate) fn wake_all_waiting(waiting: &AtomicUsize, idle: &Monitor) {
    fence(Ordering::SeqCst);
    if waiting.load(Ordering::Relaxed) > 0 {
        idle.wake_all();
    }
}

/// Run one stop-the-world worker on the heap's queue (see [`run_worker`]).
pub(crate) fn run_stw_worker(work: &MarkWork, t: &mut Tracer) {
    run_worker(&work.busy, work, t);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    /// Longer than any test here may take: a sleeper that is not woken fails the test.
    const LONG: Duration = Duration::from_secs(10);

    /// `w.wait_for_batch` on another thread, returned once the sleeper has looked at the queue
    /// under the sleepers' lock (which it keeps until it sleeps, and a wake-up takes).
    fn asleep<'s>(
        s: &'s std::thread::Scope<'s, '_>,
        w: &'s MarkWork,
    ) -> std::thread::ScopedJoinHandle<'s, ()> {
        let looked = std::sync::Arc::new(AtomicBool::new(false));
        let l = looked.clone();
        let j = s.spawn(move || {
            w.wait_for_batch(LONG, || {
                l.store(true, Ordering::SeqCst);
                true
            })
        });
        let start = Instant::now();
        while !looked.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < LONG,
                "the sleeper never looked at the queue"
            );
            std::thread::yield_now();
        }
        j
    }

    /// A background worker sleeps only while marking goes on and there is no batch it may
    /// take; a push wakes it, and so does a batch handed back by a worker that took one of a
    /// later phase (which is queued again, untouched, and the worker counted idle); no sleeper
    /// is left counted.
    #[test]
    fn workers_sleep_only_without_work_to_take_and_are_woken_for_it() {
        let w = MarkWork::new();
        let t0 = Instant::now();
        // Marking over, or a batch to take: no sleep.
        w.wait_for_batch(LONG, || false);
        w.push_quietly(GreyBatch::default());
        w.wait_for_batch(LONG, || true);
        assert!(w.pop().is_some());
        std::thread::scope(|s| {
            let j = asleep(s, &w);
            w.push(GreyBatch::default());
            j.join().unwrap();
        });
        // A batch handed back untouched wakes a sleeper.
        let b = w.take_concurrent().expect("the batch pushed");
        assert_eq!(w.busy(), 1);
        std::thread::scope(|s| {
            let j = asleep(s, &w);
            w.hand_back_batch_and_leave(b);
            j.join().unwrap();
        });
        assert_eq!(w.busy(), 0);
        // A worker of phase 1 takes the batch after phase 2 has begun: handed back, and the
        // worker counted idle; a worker of phase 2 takes it.
        assert!(w.take_concurrent_of(1, || 2).is_none());
        assert!(!w.is_empty(), "the batch handed back was lost");
        assert_eq!(w.busy(), 0);
        assert!(w.take_concurrent_of(2, || 2).is_some());
        assert_eq!(w.busy(), 1);
        w.leave();
        assert!(t0.elapsed() < LONG / 2, "a sleeper missed its wake-up");
        assert_eq!(
            w.waiting.load(Ordering::SeqCst),
            0,
            "sleepers still counted"
        );
    }

    /// A stop-the-world worker offers work only when one of the workers is waiting for it
    /// (fewer busy than run) and the queue is empty.
    #[test]
    fn the_queue_is_hungry_only_with_a_worker_waiting_and_nothing_queued() {
        let w = MarkWork::new();
        w.start_workers(2);
        assert!(!w.hungry(), "every worker busy");
        w.leave();
        assert!(w.hungry());
        w.push(GreyBatch::default());
        assert!(!w.hungry(), "work queued");
        assert!(w.pop().is_some());
        w.leave();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::{Arc, Mutex};
    use std::collections::VecDeque;

    /// The queue: batches of tasks (a task is a subtree depth).
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

    /// Do one task of `stack` (a node of depth d > 0 has two children).
    fn do_one(stack: &mut Vec<u32>, done: &loom::sync::atomic::AtomicUsize) {
        if let Some(d) = stack.pop() {
            done.fetch_add(1, Ordering::SeqCst);
            if d > 0 {
                stack.push(d - 1);
                stack.push(d - 1);
            }
        }
    }

    /// Concurrent termination: a background worker takes the one batch (a tree of depth 1,
    /// three tasks), does one task and hands the rest back, while the collector, with the
    /// world stopped, checks for termination and otherwise drains the queue itself (a failed
    /// attempt, then marking again). When the check passes, every task is done. (With the
    /// queue read before `busy` and no closing, the check could pass after the worker took the
    /// batch and before it handed the rest back.)
    #[test]
    fn loom_concurrent_termination_sees_work_handed_back() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let q = Arc::new(ModelQueue::default());
            q.push(vec![1]);
            let busy = Arc::new(AtomicUsize::new(0));
            let closed = Arc::new(AtomicBool::new(false));
            let done = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            let worker = {
                let (q, busy, closed, done) =
                    (q.clone(), busy.clone(), closed.clone(), done.clone());
                loom::thread::spawn(move || {
                    if let Some(mut stack) = take_concurrent(&busy, &closed, &*q) {
                        do_one(&mut stack, &done);
                        let rest = (!stack.is_empty()).then_some(stack);
                        hand_back_and_leave(&busy, &*q, rest);
                    }
                })
            };
            loop {
                if idle_and_empty(&busy, &closed, &*q) {
                    break;
                }
                closed.store(false, Ordering::SeqCst);
                if let Some(mut stack) = q.pop() {
                    while !stack.is_empty() {
                        do_one(&mut stack, &done);
                    }
                } else {
                    loom::thread::yield_now();
                }
            }
            assert_eq!(
                done.load(Ordering::SeqCst),
                3,
                "termination with a task left"
            );
            worker.join().unwrap();
            assert_eq!(done.load(Ordering::SeqCst), 3);
        });
    }

    /// A lock-free queue of at most two batches (a batch is a nonzero number), so that the
    /// models of the sleeping workers see the ordering the real queue gives (a push's
    /// `Release`, a pop's `Acquire`), not a mutex's, and so depend on the `SeqCst` fences of
    /// [`push_and_wake`] and [`wait_for_batch`].
    #[derive(Default)]
    struct Slots([loom::sync::atomic::AtomicU32; 2]);

    impl BatchQueue for Slots {
        type Batch = u32;
        fn push(&self, b: u32) {
            let free = self.0.iter().find(|s| {
                s.compare_exchange(0, b, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
            });
            assert!(free.is_some(), "more than two batches queued");
        }
        fn pop(&self) -> Option<u32> {
            self.0.iter().find_map(|s| {
                (s.load(Ordering::Acquire) != 0)
                    .then(|| s.swap(0, Ordering::Acquire))
                    .filter(|&b| b != 0)
            })
        }
        fn is_empty(&self) -> bool {
            self.0.iter().all(|s| s.load(Ordering::Acquire) == 0)
        }
    }

    /// What a background worker shares: the queue, the termination count and flag, the
    /// sleepers' count and monitor, and whether marking is on.
    #[derive(Default)]
    struct Sleepers {
        q: Slots,
        busy: AtomicUsize,
        closed: AtomicBool,
        stopped: AtomicBool,
        waiting: AtomicUsize,
        idle: Monitor,
    }

    impl Sleepers {
        /// A background worker's loop (`workers::background_worker`): take a batch and count
        /// it, or sleep for want of one, until marking ends or it has taken `quota` batches.
        fn worker(&self, quota: u32) -> u32 {
            let mut taken = 0;
            while !self.stopped.load(Ordering::SeqCst) && taken < quota {
                if take_concurrent(&self.busy, &self.closed, &self.q).is_some() {
                    taken += 1;
                    hand_back_and_leave(&self.busy, &self.q, None);
                    continue;
                }
                wait_for_batch(&self.waiting, &self.idle, Duration::from_millis(10), || {
                    self.stopped.load(Ordering::SeqCst) || may_take(&self.closed, &self.q)
                });
            }
            taken
        }
    }

    /// A background worker asleep for want of work ([`wait_for_batch`]) is woken by what makes
    /// work takeable or ends its phase: a batch pushed while a termination check has the queue
    /// closed (the sleeper wakes, finds it closed and sleeps again), the wake-up after the
    /// failed check, and the end of marking. The collector closes the queue, pushes a batch,
    /// reopens the queue and wakes the sleepers as after a failed attempt, then attempts
    /// termination until it passes, and ends marking. In every interleaving the worker takes
    /// the batch and returns (loom's waits have no timeout, so a lost wake-up is a deadlock or
    /// a collector spinning forever: without the wake-up after the check, the worker sleeps
    /// with the batch queued).
    #[test]
    fn loom_a_sleeping_background_worker_is_woken_for_work_and_for_the_end() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let s = Arc::new(Sleepers::default());
            let worker = {
                let s = s.clone();
                loom::thread::spawn(move || s.worker(u32::MAX))
            };
            s.closed.store(true, Ordering::SeqCst);
            push_and_wake(&s.q, &s.waiting, &s.idle, 1);
            s.closed.store(false, Ordering::SeqCst);
            wake_if_queued(&s.q, &s.waiting, &s.idle, true);
            // Each failed attempt reopens the queue and wakes the sleepers, as
            // `gc::cycle::concurrent_mark` does after the retry's pause.
            while !idle_and_empty(&s.busy, &s.closed, &s.q) {
                s.closed.store(false, Ordering::SeqCst);
                wake_if_queued(&s.q, &s.waiting, &s.idle, true);
                loom::thread::yield_now();
            }
            s.stopped.store(true, Ordering::SeqCst);
            wake_all_waiting(&s.waiting, &s.idle);
            assert_eq!(worker.join().unwrap(), 1, "the batch was lost");
        });
    }

    /// Pushes alone wake workers asleep on the open queue, one per batch: two workers each
    /// return once they took one batch, and nothing else wakes them (a lost wake-up is a
    /// deadlock). The queue's ordering is `Release`/`Acquire` only, so the check rests on the
    /// fences: without the one in [`push_and_wake`] or the one in [`wait_for_batch`], a push
    /// can read no sleeper while the sleeper reads an empty queue.
    #[test]
    fn loom_pushes_wake_sleeping_background_workers_one_per_batch() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let s = Arc::new(Sleepers::default());
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.worker(1))
                })
                .collect();
            push_and_wake(&s.q, &s.waiting, &s.idle, 1);
            push_and_wake(&s.q, &s.waiting, &s.idle, 2);
            for w in workers {
                assert_eq!(w.join().unwrap(), 1);
            }
            assert!(s.q.is_empty());
        });
    }

    /// A worker's quiet hand-back ([`MarkWork::push_quietly`]: the queue's own push) wakes
    /// nobody, so a worker that pauses after it instead of taking a batch again wakes a sleeper
    /// first (`workers::Pace::after`, through [`wake_if_queued`]): the sleeper takes the batch
    /// (without that wake-up, or its fence, it sleeps forever in some interleaving).
    #[test]
    fn loom_a_worker_that_pauses_after_a_quiet_hand_back_wakes_a_sleeper() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let s = Arc::new(Sleepers::default());
            let sleeper = {
                let s = s.clone();
                loom::thread::spawn(move || s.worker(1))
            };
            // The pausing worker, counted busy with a batch it took earlier: it hands the
            // rest back quietly, leaves, and wakes a sleeper before its pause.
            s.busy.fetch_add(1, Ordering::SeqCst);
            s.q.push(7);
            hand_back_and_leave(&s.busy, &s.q, None);
            wake_if_queued(&s.q, &s.waiting, &s.idle, false);
            assert_eq!(sleeper.join().unwrap(), 1);
            assert!(s.q.is_empty());
        });
    }

    #[test]
    fn loom_mark_termination_finishes_all_work() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let q = Arc::new(ModelQueue::default());
            // Both workers start counted busy, as `MarkWork::start_workers` counts them.
            let busy = Arc::new(AtomicUsize::new(2));
            let done = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            let helper = {
                let (q, busy, done) = (q.clone(), busy.clone(), done.clone());
                loom::thread::spawn(move || {
                    let mut w = ModelWorker {
                        stack: vec![],
                        done,
                    };
                    run_worker(&busy, &*q, &mut w);
                    assert!(w.stack.is_empty());
                })
            };
            // The "collector" starts with the root: a tree of depth 2 (7 tasks).
            let mut w = ModelWorker {
                stack: vec![2],
                done: done.clone(),
            };
            run_worker(&busy, &*q, &mut w);
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
