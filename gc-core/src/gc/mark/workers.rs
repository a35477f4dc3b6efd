//! The mark workers: one pool of helper threads that marks with the collector thread (worker 0)
//! in both modes (Go: `gcBgMarkWorker`).
//!
//! | mode | job | workers | how long |
//! |------|-----|---------|----------|
//! | stop-the-world marking | [`Job::StopTheWorld`] | `Config::mark_workers` (one per core by default, at most 8) | flat out, until the termination protocol of `gc::mark::work` says done; the collector waits for every worker |
//! | concurrent marking | [`Job::Background`] | 25% of the CPUs ([`worker_shares`](crate::pacer::worker_shares)): whole dedicated workers and at most one fractional one | slices of [`DRAIN_SLICE`] units at the worker's CPU share ([`Pace`]), until marking ends |
//!
//! Helpers are spawned with the collector thread and parked on the pool between jobs; the
//! collector hands each mark phase out as a job (an epoch and what to do).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::gc::heap::Shared;
use crate::gc::mark::roots::{hand_over, hand_over_quietly};
use crate::gc::mark::tracer::{Marking, Tracer};
use crate::gc::mark::work::run_stw_worker;
use crate::pacer::controller::WORK_UNIT_BYTES;
use crate::util::clock::CpuLap;

/// Work (objects scanned and edges followed, see `Tracer::drain_budget`) between two checks of
/// a background worker's pace and of the queue.
pub(crate) const DRAIN_SLICE: usize = 1024;

/// What the helpers are to do in the current mark phase.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) enum Job {
    #[default]
    Nothing,
    /// Stop-the-world marking with `workers` workers (the collector thread included).
    StopTheWorld { workers: usize },
    /// Concurrent marking, each helper at its share of a CPU.
    Background,
}

/// The parked helper threads and the job they are given.
#[derive(Default)]
pub(crate) struct Pool {
    state: Mutex<PoolState>,
    start: Condvar,
    done: Condvar,
}

#[derive(Default)]
struct PoolState {
    epoch: u64,
    job: Job,
    finished: usize,
    exit: bool,
}

impl Pool {
    /// Body of helper `i` (the collector thread is worker 0): wait for a job, do its part,
    /// repeat until [`Pool::shutdown`]. `share` is its CPU share in concurrent marking.
    pub(crate) fn helper(&self, h: &Shared, i: usize, share: f64) {
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
                st.job
            };
            match job {
                Job::StopTheWorld { workers } if i < workers => {
                    let mut t = Tracer::marking(h, Marking::Shared(&h.mark.work));
                    run_stw_worker(&h.mark.work, &mut t);
                    hand_over(h, &mut t);
                    let mut st = self.state.lock();
                    st.finished += 1;
                    self.done.notify_all();
                }
                Job::Background => background_worker(h, share),
                _ => {}
            }
        }
    }

    /// Hand `job` to the helpers (they start at once).
    pub(crate) fn start(&self, job: Job) {
        let mut st = self.state.lock();
        st.epoch += 1;
        st.finished = 0;
        st.job = job;
        self.start.notify_all();
    }

    /// Wait until `helpers` helpers have finished the current stop-the-world job.
    pub(crate) fn wait(&self, helpers: usize) {
        let mut st = self.state.lock();
        while st.finished < helpers {
            self.done.wait(&mut st);
        }
        st.job = Job::Nothing;
    }

    /// Tell the helpers to exit.
    pub(crate) fn shutdown(&self) {
        let mut st = self.state.lock();
        st.exit = true;
        self.start.notify_all();
    }
}

/// A helper's part of concurrent marking: while marking, take a batch from the shared queue,
/// mark one slice at the worker's CPU share, and hand back what is left, so that the workers,
/// the assists and the collector share the work. It counts itself busy from before it takes a
/// batch until it has handed the rest back, which is what lets mark termination ignore helpers
/// that hold nothing.
fn background_worker(h: &Shared, share: f64) {
    // This cycle's marking only: a worker still sleeping when the next cycle starts returns to
    // the pool and comes back with a fresh pace.
    let cycle = h.mark.cycle.load(Ordering::Relaxed);
    let mut pace = Pace::new(h, share);
    let mut lap = CpuLap::start();
    let mut t = Tracer::marking(h, Marking::Local);
    while h.mark.marking.load(Ordering::Acquire)
        && h.mark.cycle.load(Ordering::Relaxed) == cycle
        && !h.control.stop.load(Ordering::Relaxed)
    {
        if h.hooks.hold_marking.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        // Counted busy, unless the collector is checking for termination (`MarkWork::
        // take_concurrent`: this worker runs through stops).
        // A batch of a later phase, taken after a preemption, is handed back (`None`): the
        // loop's test then ends the worker's turn.
        let current = || h.mark.cycle.load(Ordering::Relaxed);
        let Some(b) = h.mark.work.take_concurrent_of(cycle, current) else {
            // Asleep until a marker, a mutator or the collector pushes a batch, a termination
            // check that closed the queue fails, or marking ends (Go parks a worker that
            // finds no work; polling the queue instead cost each helper about a tenth of a
            // CPU through every wait for a blocked scope).
            h.mark.work.wait_for_batch(WAIT_FOR_WORK_MAX, || {
                h.mark.marking.load(Ordering::Acquire)
                    && h.mark.cycle.load(Ordering::Relaxed) == cycle
                    && !h.control.stop.load(Ordering::Relaxed)
            });
            continue;
        };
        t.push_grey_batch(b);
        background_slice(h, &mut t);
        hand_over_quietly(h, &mut t);
        h.mark.work.leave_handed_over(&t);
        if let Some(cpu) = lap.lap() {
            pace.after(h, cpu);
        }
    }
    pace.book(h, lap.finish());
    pace.finish(h);
}

/// The longest a background worker sleeps for want of work before it looks at the queue again
/// (a bound in case of a missed wake-up: see `MarkWork::wait_for_batch` for what wakes it).
const WAIT_FOR_WORK_MAX: Duration = Duration::from_millis(10);

/// A concurrent marker holding more grey objects than this offers half of them when the queue
/// is empty, at the end of each slice (see `gc::mark::work` for why not at every pop).
const OFFER_MIN: usize = 64;

/// One slice of background marking: drain up to [`DRAIN_SLICE`] units, offer work if the queue
/// is empty, and count the scan work (for the pacer, and as credit assists can steal). The
/// caller books the time over several slices ([`CpuLap`]) and paces itself with [`Pace`].
pub(crate) fn background_slice(h: &Shared, t: &mut Tracer) {
    t.drain_budget(DRAIN_SLICE);
    // An assist waiting for credit can mark instead: offer it work however little there is.
    let parked = h.mark.assists_parked.load(Ordering::Relaxed) > 0;
    t.offer(&h.mark.work, if parked { 1 } else { OFFER_MIN });
    let work = t.take_work() * WORK_UNIT_BYTES;
    h.pacer.heap_scan_work.fetch_add(work, Ordering::Relaxed);
    h.pacer.bg_credit.fetch_add(work as i64, Ordering::SeqCst);
    crate::gc::mark::assist::wake_parked(h);
}

/// Keeps a background worker's CPU use near its share (see [`crate::pacer::worker_shares`]),
/// and lets a fractional worker mark at idle priority (Go: idle mark workers) while a CPU is
/// spare.
///
/// Go runs an idle-priority mark worker on every processor that has nothing else to run. There
/// is no scheduler here to ask, so a fractional worker looks at the process's CPU clock over
/// windows of at least [`IDLE_WINDOW`]: if over the last window the other threads left a CPU
/// unused (`procs × wall − (process CPU − the worker thread's CPU) ≥ IDLE_SPARE × wall`; see
/// [`IdleWindow`] for why all of its thread's time), it marks without
/// pausing through the next window. Of that time it books its share as background marking (Go's
/// fractional worker runs its share whether or not a processor is idle) and the rest as *idle*
/// marking, which the pacer's cons/mark formula counts as Go counts idle utilisation and which
/// the CPU limiter and Go's `GCCPUFraction` leave out, as Go's do (it took CPU nobody wanted).
/// On two CPUs with one busy mutator that doubles the marking rate, and assists hand the
/// worker the bottom of their stacks ([`crate::gc::mark::assist`]) so that it has the work to
/// do; with two busy mutators nothing changes. The process clock sees only this process's
/// threads: another process's load on the "spare" CPU is shared with it by the kernel, as it is
/// with Go's idle workers (measured with a CPU hog beside treechurn: operation latency as with
/// idle marking confined to late cycles; `docs/benchmarks.md`).
///
/// The window runs on from one mark phase to the next ([`Pace::finish`] leaves it, with the
/// decision, in `MarkState::idle_window`): a phase starts by judging the window the last one
/// left, in which the time between the phases (nobody marking) counts, or, if that window is
/// shorter than [`IDLE_WINDOW`], with the decision the last phase ended with. Go's scheduler
/// puts an idle worker on an idle processor the moment marking starts; a window begun afresh
/// with each phase kept the worker at its pace through the first [`IDLE_WINDOW`] of every
/// phase, which on a small heap is all of it (msgbuf's phases last about 1.5 ms), with a CPU
/// standing idle. The time between phases may not be like the phase, though (mutators idle
/// between bursts of allocation, and the bursts start cycles): a phase that starts at idle
/// priority judges itself after [`FIRST_JUDGEMENT`], so beside busy mutators it marks flat out
/// for at most that long.
pub(crate) struct Pace {
    start: Instant,
    busy: Duration,
    share: f64,
    procs: usize,
    window: IdleWindow,
    /// Marking at idle priority until the window ends.
    idle: bool,
}

/// A fractional worker's idle-detection window: when it began (the wall and the process CPU
/// clocks), how long it must last before it decides, and the worker thread's own CPU clock then.
///
/// The worker's own time is everything its thread ran, not only its marking: on two CPUs the
/// fractional worker is the collector thread, which also sweeps between mark phases and frees
/// the spans kept empty before mark termination. Counted as another thread's load, that work
/// (1–2 ms at a time) made a CPU look busy beside one mutator, and the worker marked at its pace
/// with the CPU standing idle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdleWindow {
    wall: Instant,
    process: u64,
    length: Duration,
    /// The thread that started the window and its CPU clock then.
    thread: (std::thread::ThreadId, u64),
}

impl IdleWindow {
    fn starting(wall: Instant, process: u64, length: Duration) -> IdleWindow {
        IdleWindow {
            wall,
            process,
            length,
            thread: (
                std::thread::current().id(),
                crate::util::clock::thread_cpu_ns(),
            ),
        }
    }

    /// The CPU the calling thread used since the window started; zero if another thread
    /// started it (then all of the process's time counts as the other threads', which errs
    /// towards "no CPU is spare").
    fn own(&self) -> Duration {
        if std::thread::current().id() != self.thread.0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(crate::util::clock::thread_cpu_ns().saturating_sub(self.thread.1))
    }

    /// Whether, from the window's start to `now` (the wall and process CPU clocks), the threads
    /// other than the worker (which used `own` of CPU meanwhile) left a CPU spare
    /// ([`cpu_spare`]); `None` until the window has lasted its length.
    fn spare(&self, procs: usize, now: (Instant, u64), own: Duration) -> Option<bool> {
        let wall = now.0.saturating_duration_since(self.wall);
        if wall < self.length {
            return None;
        }
        let others = now
            .1
            .saturating_sub(self.process)
            .saturating_sub(own.as_nanos() as u64);
        Some(cpu_spare(procs, wall, others))
    }
}

/// The shortest window over which a fractional worker judges whether a CPU is spare (a window
/// runs on until the next judgement after that, and across the time between mark phases).
const IDLE_WINDOW: Duration = Duration::from_millis(2);

/// The first window of a mark phase that starts at idle priority: judged after this much.
const FIRST_JUDGEMENT: Duration = Duration::from_micros(500);

/// The share of a CPU the other threads must have left unused over a window for the worker to
/// mark at idle priority: most of one (the collector's other threads and the clocks'
/// granularity take a little; demanding all of it, the worker almost never saw a spare CPU
/// beside a mutator running flat out).
const IDLE_SPARE: f64 = 0.9;

impl Pace {
    /// A worker's pace for one mark phase, at `share` of a CPU. A fractional worker starts
    /// from the window and the decision the last phase left (see above).
    pub(crate) fn new(h: &Shared, share: f64) -> Pace {
        let now = Instant::now();
        let mut pace = Pace {
            start: now,
            busy: Duration::ZERO,
            share,
            procs: h.settings.procs,
            window: IdleWindow::starting(now, 0, IDLE_WINDOW),
            idle: false,
        };
        if share >= 1.0 {
            // A dedicated worker marks flat out: it has no use for a window.
            return pace;
        }
        let process = crate::util::clock::process_cpu_ns();
        let last = *h.mark.idle_window.lock();
        (pace.window, pace.idle) = resume(last, pace.procs, (now, process));
        pace
    }

    /// Once the window has lasted its length: decide from it whether a CPU is spare, and start
    /// the next.
    fn roll(&mut self, now: Instant) {
        // `spare` checks the length too; checked here first so that the process clock (a
        // system call) is read only when a judgement is due.
        if now.saturating_duration_since(self.window.wall) < self.window.length {
            return;
        }
        let process = crate::util::clock::process_cpu_ns();
        if let Some(spare) = self
            .window
            .spare(self.procs, (now, process), self.window.own())
        {
            self.idle = spare;
            self.window = IdleWindow::starting(now, process, IDLE_WINDOW);
        }
    }

    /// Account `slice` of work (CPU time, as background or idle marking); sleep if the worker
    /// is ahead of its share and no CPU is spare.
    pub(crate) fn after(&mut self, h: &Shared, slice: Duration) {
        if !self.book(h, slice) || self.share >= 1.0 {
            return;
        }
        self.roll(Instant::now());
        if self.idle {
            return;
        }
        let ahead = self.busy.saturating_sub(self.allowed());
        if !ahead.is_zero() {
            // What this worker handed back at the end of its slice is left to the others.
            h.mark.work.wake_one_if_queued();
            std::thread::sleep(ahead.div_f64(self.share).min(Duration::from_millis(2)));
        }
    }

    /// The background marking the worker's share allows since it started.
    fn allowed(&self) -> Duration {
        self.start.elapsed().mul_f64(self.share)
    }

    /// Account `slice` of work (CPU time) as background or idle marking; false when an assist
    /// is waiting (then the worker must not pause).
    pub(crate) fn book(&mut self, h: &Shared, slice: Duration) -> bool {
        // A mutator waiting in an assist for background credit leaves its CPU idle: mark on
        // at idle priority, without pausing, until it can go on (Go runs an idle mark worker on
        // the processor its parked assist left). At idle priority the worker's share is still
        // background marking; only what it marks beyond its share is idle.
        let parked = h.mark.assists_parked.load(Ordering::Relaxed) > 0;
        let bg = background_part(self.idle || parked, self.allowed(), self.busy, slice);
        self.busy += bg;
        h.stats
            .bg_mark_ns
            .fetch_add(bg.as_nanos() as u64, Ordering::Relaxed);
        if bg < slice {
            h.stats
                .idle_mark_ns
                .fetch_add((slice - bg).as_nanos() as u64, Ordering::Relaxed);
        }
        !parked
    }

    /// The end of the worker's mark phase, after its last [`Pace::book`]: a fractional worker
    /// leaves its window and decision to the next phase.
    pub(crate) fn finish(self, h: &Shared) {
        if self.share < 1.0 {
            *h.mark.idle_window.lock() = Some((self.window, self.idle));
        }
    }
}

/// A fractional worker's window and decision at the start of a mark phase (the time `now`, the
/// wall and process CPU clocks), from what the last phase left (`last`): its window judged if
/// it has lasted its length, and a new one started (short if the phase starts at idle
/// priority); else that window goes on, with the last phase's decision. Goes on, not starts
/// afresh: where cycles come less than [`IDLE_WINDOW`] apart (a small heap, a fast mutator:
/// 0.3–0.7 ms phases every 1.7 ms), a window restarted with every phase never lasted long
/// enough to be judged, and a worker that once decided "no CPU spare" kept marking at its pace
/// beside an idle CPU for the rest of the run (2% of its marking at idle priority instead of
/// 44%, in about one run of three of `tests/pacing.rs`'s short-phase test).
fn resume(
    last: Option<(IdleWindow, bool)>,
    procs: usize,
    now: (Instant, u64),
) -> (IdleWindow, bool) {
    let Some((last, idle)) = last else {
        return (IdleWindow::starting(now.0, now.1, IDLE_WINDOW), false);
    };
    match last.spare(procs, now, last.own()) {
        Some(spare) => {
            let length = if spare { FIRST_JUDGEMENT } else { IDLE_WINDOW };
            (IdleWindow::starting(now.0, now.1, length), spare)
        }
        None => (last, idle),
    }
}

/// Whether, over a window of `wall`, threads other than the worker (which used `others_ns` of
/// CPU) left [`IDLE_SPARE`] of a CPU unused on `procs` CPUs.
fn cpu_spare(procs: usize, wall: Duration, others_ns: u64) -> bool {
    let wall = wall.as_nanos() as u64;
    let spare = (procs as u64 * wall).saturating_sub(others_ns);
    spare as f64 >= IDLE_SPARE * wall as f64
}

/// The part of a worker's `slice` of marking that is background marking: all of it at the
/// worker's own pace; at idle priority, only what is left of its share (`allowed`, the share of
/// the time since the worker started) after the background marking it has booked (`busy`).
fn background_part(idle: bool, allowed: Duration, busy: Duration, slice: Duration) -> Duration {
    if idle {
        allowed.saturating_sub(busy).min(slice)
    } else {
        slice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A background worker marks what is queued for its cycle, in slices of [`DRAIN_SLICE`],
    /// handing its figures over after each: every object once, its bytes once, its scan work
    /// once (a tree of 2¹³ − 1 two-pointer nodes, marked outside any collection, which no
    /// collection follows: the heap is dropped after).
    #[test]
    fn a_background_worker_marks_its_cycles_work_and_hands_each_slice_over_once() {
        const DEPTH: u32 = if cfg!(miri) { 10 } else { 12 };
        const NODES: u64 = (1 << (DEPTH + 1)) - 1;
        let (heap, _m, root) = crate::gc::mark::test_heaps::rooted_tree(DEPTH);
        let h = heap.shared();
        let objects = || h.mark.marked_objects_others.load(Ordering::Relaxed);
        let bytes = || h.mark.marked_bytes_others.load(Ordering::Relaxed);
        let scan = || h.pacer.heap_scan_work.load(Ordering::Relaxed);
        let before = (objects(), bytes(), scan());
        // The root, marked and queued as a mutator's shading would.
        let mut t = Tracer::marking(h, Marking::Local);
        t.edge(root as *const crate::gc::object::Object);
        hand_over(h, &mut t);
        h.mark.marking.store(true, Ordering::Release);
        std::thread::scope(|s| {
            let worker = s.spawn(|| background_worker(h, 1.0));
            // Every slice hands its figures over: done once every node is counted (the queue
            // and the busy count, read one after the other, can miss work handed back between
            // the two reads).
            let t0 = Instant::now();
            while objects() - before.0 < NODES {
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "the queue never drained"
                );
                std::thread::sleep(MS);
            }
            h.mark.marking.store(false, Ordering::Release);
            h.mark.work.wake_waiting();
            worker.join().unwrap();
        });
        assert_eq!(objects() - before.0, NODES, "every node marked once");
        assert_eq!(
            bytes() - before.1,
            NODES as usize * 16,
            "every node's bytes once"
        );
        // A unit per node scanned and per pointer followed (the root's by the shading).
        let work = 2 * NODES * WORK_UNIT_BYTES;
        assert_eq!(scan() - before.2, work, "the scan work of every slice once");
        assert!(
            work > 2 * (DRAIN_SLICE as u64) * WORK_UNIT_BYTES,
            "several slices"
        );
    }

    /// Beside one mutator running flat out on two CPUs a CPU is spare, even with the other
    /// collector threads' few percent; beside two, or one and a half, none is.
    #[test]
    fn a_cpu_is_spare_beside_one_busy_mutator_of_two_cpus() {
        let ns = |ms: f64| (ms * 1e6) as u64;
        assert!(cpu_spare(2, 2 * MS, ns(2.0)));
        assert!(cpu_spare(2, 2 * MS, ns(2.1)));
        assert!(!cpu_spare(2, 2 * MS, ns(3.0)));
        assert!(!cpu_spare(2, 2 * MS, ns(4.0)));
        assert!(cpu_spare(4, 2 * MS, ns(6.0)));
        assert!(!cpu_spare(1, 2 * MS, ns(0.5)));
        assert!(cpu_spare(1, 2 * MS, 0));
    }

    /// A window decides nothing before [`IDLE_WINDOW`]; then a CPU was spare (two CPUs) if the
    /// process used at most one CPU and a tenth beside the worker's own time, whether the
    /// window spans a mark phase or the time between two (when the worker marks nothing).
    #[test]
    fn a_window_judges_the_cpu_the_other_threads_used() {
        let t0 = Instant::now();
        let at = |ms: u32| t0 + ms * MS;
        let ns = |ms: u64| ms * 1_000_000;
        let none = Duration::ZERO;
        let w = IdleWindow::starting(t0, ns(5), IDLE_WINDOW);
        assert_eq!(w.spare(2, (at(1), ns(5)), none), None);
        assert_eq!(w.spare(2, (at(2), ns(5)), none), Some(true));
        // 40 ms between phases: the mutator ran flat out, another thread took 2 ms.
        assert_eq!(w.spare(2, (at(40), ns(5 + 42)), none), Some(true));
        // Two mutators.
        assert_eq!(w.spare(2, (at(40), ns(5 + 80)), none), Some(false));
        // The worker marked 30 of the 40 ms beside one mutator: still spare.
        assert_eq!(w.spare(2, (at(40), ns(5 + 40 + 30)), 30 * MS), Some(true));
        assert_eq!(w.spare(2, (at(40), ns(5 + 60 + 30)), 30 * MS), Some(false));
        // The worker's thread swept for 8 of the 40 ms between phases beside one mutator:
        // its own work, so a CPU was spare; the same 8 ms from another thread leave none.
        assert_eq!(w.spare(2, (at(40), ns(5 + 40 + 8)), 8 * MS), Some(true));
        assert_eq!(w.spare(2, (at(40), ns(5 + 40 + 8)), none), Some(false));
        // The first window of a phase at idle priority decides after half a millisecond.
        let first = IdleWindow::starting(t0, 0, FIRST_JUDGEMENT);
        let us = |us: u64| t0 + Duration::from_micros(us);
        assert_eq!(first.spare(2, (us(400), 400_000), none), None);
        assert_eq!(first.spare(2, (us(500), 500_000), none), Some(true));
        assert_eq!(first.spare(2, (us(500), 1_000_000), none), Some(false));
    }

    /// A mark phase goes on with the window the last one left until that window has lasted
    /// its length (also when phases come faster than that), and only then judges it and
    /// starts another: short after a spare CPU, [`IDLE_WINDOW`] after none.
    #[test]
    fn a_phase_goes_on_with_a_window_too_short_to_judge() {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let ns = |us: u64| us * 1000;
        // No earlier phase: a full window, not idle.
        let (w, idle) = resume(None, 2, (t0, 0));
        assert_eq!((w.wall, w.length, idle), (t0, IDLE_WINDOW, false));
        // Phases 1.7 ms apart beside one busy mutator (one CPU of the two): the window goes
        // on through the first, keeping its start and the "not idle" decision ...
        let (w1, idle) = resume(Some((w, false)), 2, (at(1700), ns(1700)));
        assert_eq!((w1.wall, idle), (t0, false));
        // ... and is judged at the second, which starts at idle priority with a short window.
        let (w2, idle) = resume(Some((w1, false)), 2, (at(3400), ns(3400)));
        assert!(idle, "a CPU was spare over the 3.4 ms");
        assert_eq!((w2.wall, w2.length), (at(3400), FIRST_JUDGEMENT));
        // Both CPUs busy over the next window: back to the worker's pace.
        let (w3, idle) = resume(Some((w2, true)), 2, (at(4000), ns(3400 + 1200)));
        assert!(!idle);
        assert_eq!((w3.wall, w3.length), (at(4000), IDLE_WINDOW));
    }

    /// A window's own time is its thread's CPU clock (marking or not): not the process's (a
    /// busy thread beside it adds nothing), and nothing when asked from another thread.
    #[test]
    // Miri has no CPU clocks.
    #[cfg_attr(miri, ignore)]
    fn a_window_counts_its_own_threads_cpu() {
        use crate::util::clock::thread_cpu_ns;
        use std::sync::atomic::AtomicBool;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let busy = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        };
        let before = thread_cpu_ns();
        let w = IdleWindow::starting(Instant::now(), 0, IDLE_WINDOW);
        let t0 = thread_cpu_ns();
        // Spin until this thread has run 2 ms (however the machine shares its CPUs).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        while thread_cpu_ns() - t0 < 2_000_000 && Instant::now() < deadline {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let own = w.own();
        let mine = Duration::from_nanos(thread_cpu_ns() - before);
        stop.store(true, Ordering::Relaxed);
        busy.join().unwrap();
        assert!(own >= 2 * MS, "own {own:?} after 2 ms of this thread's CPU");
        assert!(
            own <= mine,
            "own {own:?} is more than this thread's {mine:?}"
        );
        assert_eq!(
            std::thread::spawn(move || w.own()).join().unwrap(),
            Duration::ZERO
        );
    }

    /// A fractional worker at idle priority books its share of the time since it started as
    /// background marking and the rest as idle, and does not count the idle part against its
    /// share; while a mutator waits in an assist it books the same way, and does not pause;
    /// back at its own pace, all of it is background. (Slices booked by hand; no cycle runs.)
    #[test]
    #[cfg_attr(miri, ignore = "bounds in milliseconds of real time")]
    fn a_fractional_worker_books_its_share_first_and_does_not_pause_beside_a_waiting_assist() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let h = heap.shared();
        let now = Instant::now();
        let mut pace = Pace {
            start: now.checked_sub(100 * MS).unwrap(),
            busy: Duration::ZERO,
            share: 0.5,
            procs: 2,
            window: IdleWindow::starting(now, 0, Duration::from_secs(3600)),
            idle: true,
        };
        let bg = || Duration::from_nanos(h.stats.bg_mark_ns.load(Ordering::Relaxed));
        let idle = || Duration::from_nanos(h.stats.idle_mark_ns.load(Ordering::Relaxed));
        let (bg0, idle0) = (bg(), idle());
        assert!(pace.book(h, 40 * MS) && pace.book(h, 40 * MS));
        assert!(
            pace.busy <= pace.allowed(),
            "idle marking counted against the share"
        );
        // The share of 100 ms and more (as long as this thread was held up meanwhile), not all.
        assert!(
            bg() - bg0 >= 50 * MS && bg() - bg0 < 80 * MS,
            "{:?}",
            bg() - bg0
        );
        assert_eq!(bg() - bg0 + idle() - idle0, 80 * MS);
        // An assist waiting for credit: no pause, and what is beyond the share is idle.
        h.mark.assists_parked.store(1, Ordering::SeqCst);
        pace.idle = false;
        let idle1 = idle();
        assert!(
            !pace.book(h, 40 * MS),
            "the worker may pause beside a waiting assist"
        );
        assert!(
            idle() - idle1 >= 20 * MS,
            "booked as background: {:?}",
            idle() - idle1
        );
        h.mark.assists_parked.store(0, Ordering::SeqCst);
        let bg2 = bg();
        assert!(pace.book(h, 40 * MS));
        assert_eq!(bg() - bg2, 40 * MS, "at its own pace: all background");
    }

    /// A fractional worker judges a window that has lasted its length during a phase, both
    /// ways: a CPU found spare turns idle priority on (for a window of [`IDLE_WINDOW`]), and a
    /// window in which none was turns it off again. (1 000 CPUs always leave one spare, none
    /// never does, whatever the clocks read.)
    #[test]
    #[cfg_attr(miri, ignore = "no CPU clocks")]
    fn a_window_due_during_a_phase_is_judged_both_ways() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let h = heap.shared();
        let due = || {
            IdleWindow::starting(
                Instant::now().checked_sub(MS).unwrap(),
                crate::util::clock::process_cpu_ns(),
                Duration::from_micros(1),
            )
        };
        let mut pace = Pace {
            start: Instant::now(),
            busy: Duration::ZERO,
            share: 0.5,
            procs: 1000,
            window: due(),
            idle: false,
        };
        pace.after(h, Duration::ZERO);
        assert!(pace.idle, "a spare CPU found during the phase");
        assert_eq!(pace.window.length, IDLE_WINDOW);
        pace.procs = 0;
        pace.window = due();
        pace.after(h, Duration::ZERO);
        assert!(!pace.idle, "idle priority kept beside busy threads");
    }

    /// At its own pace a worker's marking is all background; at idle priority its share comes
    /// first and the rest is idle, so the idle figure (left out of the GC CPU fraction and the
    /// limiter) is only what no fractional worker would have done.
    #[test]
    fn idle_priority_marking_books_the_share_first() {
        assert_eq!(background_part(false, 5 * MS, 9 * MS, 2 * MS), 2 * MS);
        // 1 ms of the share left: that much is background, the other 2 ms idle.
        assert_eq!(background_part(true, 5 * MS, 4 * MS, 3 * MS), MS);
        // Behind its share by more than the slice: all of it is background.
        assert_eq!(background_part(true, 10 * MS, 4 * MS, 3 * MS), 3 * MS);
        // At or past its share: all idle.
        assert_eq!(
            background_part(true, 5 * MS, 5 * MS, 3 * MS),
            Duration::ZERO
        );
        assert_eq!(
            background_part(true, 5 * MS, 7 * MS, 3 * MS),
            Duration::ZERO
        );
    }
}
